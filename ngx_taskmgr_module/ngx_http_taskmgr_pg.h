/*
 * Copyright (C) taskmgr developers
 *
 * Per-worker pool of non-blocking libpq connections driven by nginx
 * events, with a bounded FIFO of waiting queries.
 */

#ifndef _NGX_HTTP_TASKMGR_PG_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_PG_H_INCLUDED_


#include "ngx_http_taskmgr.h"
#include <libpq-fe.h>


#define NGX_HTTP_TASKMGR_PG_MAX_PARAMS 16


typedef struct ngx_http_taskmgr_pg_query_s ngx_http_taskmgr_pg_query_t;
typedef struct ngx_http_taskmgr_pg_conn_s  ngx_http_taskmgr_pg_conn_t;

typedef void (*ngx_http_taskmgr_pg_handler_pt)(ngx_http_taskmgr_pg_query_t *q);


/*
 * A query lives in the request pool.  Its handler is called exactly once,
 * from the event loop, never from inside ngx_http_taskmgr_pg_submit().
 * rc is NGX_OK (res holds the result, which may be an SQL error: see
 * sqlstate) or NGX_HTTP_SERVICE_UNAVAILABLE (no backend, timed out, or the
 * connection died), or NGX_ERROR.  res is freed with the request pool.
 */
struct ngx_http_taskmgr_pg_query_s {
    ngx_uint_t  stmt;
    ngx_uint_t  nparams;
    const char *params[NGX_HTTP_TASKMGR_PG_MAX_PARAMS];
    int         lengths[NGX_HTTP_TASKMGR_PG_MAX_PARAMS];

    ngx_http_taskmgr_pg_handler_pt handler;
    ngx_http_request_t            *request; /* NULL: a background query */
    void                          *data;
    ngx_pool_t                    *mem; /* params and res live here */
    ngx_log_t                     *log;

    ngx_int_t   rc;
    PGresult   *res;
    const char *sqlstate; /* NULL on success */

    /* private */
    ngx_queue_t                 queue;
    ngx_event_t                 timer;
    ngx_http_taskmgr_pg_conn_t *conn;
    ngx_http_taskmgr_pg_pool_t *pool;
    unsigned                    waiting : 1;
    unsigned                    done : 1;
};


ngx_http_taskmgr_pg_pool_t *ngx_http_taskmgr_pg_pool_create(
    ngx_cycle_t *cycle, ngx_http_taskmgr_main_conf_t *mcf);
void ngx_http_taskmgr_pg_pool_destroy(ngx_http_taskmgr_pg_pool_t *pool);

ngx_http_taskmgr_pg_query_t *ngx_http_taskmgr_pg_query_create(
    ngx_http_request_t *r, ngx_uint_t stmt,
    ngx_http_taskmgr_pg_handler_pt handler);
/*
 * A query of no request (a worker's timer): it and its result live in mem,
 * which the caller keeps until the handler was called (also at worker
 * exit, with NGX_HTTP_SERVICE_UNAVAILABLE).
 */
ngx_http_taskmgr_pg_query_t *ngx_http_taskmgr_pg_query_create_bg(
    ngx_pool_t *mem, ngx_log_t *log, ngx_uint_t stmt,
    ngx_http_taskmgr_pg_handler_pt handler);
void ngx_http_taskmgr_pg_param(ngx_http_taskmgr_pg_query_t *q,
                               ngx_str_t                   *value);

/* NGX_OK: the handler will be called; NGX_HTTP_SERVICE_UNAVAILABLE: the
 * queue is full or every connection is down, answer at once */
ngx_int_t ngx_http_taskmgr_pg_submit(ngx_http_taskmgr_pg_query_t *q);


/* text value of the single row's column, or NULL when SQL NULL */
ngx_int_t ngx_http_taskmgr_pg_value(ngx_http_taskmgr_pg_query_t *q, int col,
                                    ngx_str_t *out);


#endif /* _NGX_HTTP_TASKMGR_PG_H_INCLUDED_ */
