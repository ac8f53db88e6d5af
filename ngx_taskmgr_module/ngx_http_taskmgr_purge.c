/*
 * Copyright (C) taskmgr developers
 *
 * The background purge: in worker 0 only, every taskmgr_task_purge_interval
 * one bounded batch (tm_api.purge) deletes tasks soft-deleted longer than
 * taskmgr_task_purge_after, and expired Idempotency-Key records, through
 * the worker's PostgreSQL pool.  Never more than one batch in flight; a
 * full batch runs the next one at once.
 */


#include "ngx_http_taskmgr.h"
#include "ngx_http_taskmgr_pg.h"
#include "ngx_http_taskmgr_sql.h"


#define NGX_HTTP_TASKMGR_PURGE_BATCH 1000


static void ngx_http_taskmgr_purge_run(ngx_event_t *ev);
static void ngx_http_taskmgr_purge_done(ngx_http_taskmgr_pg_query_t *q);


static ngx_event_t ngx_http_taskmgr_purge_timer;
static ngx_pool_t *ngx_http_taskmgr_purge_pool; /* of the batch in flight */
static ngx_uint_t  ngx_http_taskmgr_purge_stopping;


ngx_int_t
ngx_http_taskmgr_purge_init(ngx_cycle_t                  *cycle,
                            ngx_http_taskmgr_main_conf_t *mcf)
{
    if (mcf->pg == NULL || mcf->task_purge_after == 0
        || (ngx_process == NGX_PROCESS_WORKER && ngx_worker != 0))
    {
        return NGX_OK;
    }

    ngx_http_taskmgr_purge_stopping = 0;
    ngx_http_taskmgr_purge_timer.handler = ngx_http_taskmgr_purge_run;
    ngx_http_taskmgr_purge_timer.log = cycle->log;
    ngx_http_taskmgr_purge_timer.data = mcf;
    ngx_http_taskmgr_purge_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_taskmgr_purge_timer, mcf->task_purge_interval);

    return NGX_OK;
}


void
ngx_http_taskmgr_purge_stop(void)
{
    ngx_http_taskmgr_purge_stopping = 1;

    if (ngx_http_taskmgr_purge_timer.timer_set) {
        ngx_del_timer(&ngx_http_taskmgr_purge_timer);
    }
}


static void
ngx_http_taskmgr_purge_run(ngx_event_t *ev)
{
    u_char                       *p;
    ngx_str_t                     after, limit;
    ngx_http_taskmgr_main_conf_t *mcf;
    ngx_http_taskmgr_pg_query_t  *q;

    mcf = ev->data;

    if (ngx_http_taskmgr_purge_stopping || ngx_exiting || ngx_quit
        || ngx_terminate || ngx_http_taskmgr_purge_pool)
    {
        return;
    }

    ngx_http_taskmgr_purge_pool = ngx_create_pool(1024, ev->log);
    if (ngx_http_taskmgr_purge_pool == NULL) {
        goto again;
    }

    p = ngx_pnalloc(ngx_http_taskmgr_purge_pool, 2 * NGX_TIME_T_LEN);
    if (p == NULL) {
        goto failed;
    }

    after.data = p;
    after.len = ngx_sprintf(p, "%T", mcf->task_purge_after) - p;
    limit.data = p + after.len;
    limit.len = ngx_sprintf(limit.data, "%d", NGX_HTTP_TASKMGR_PURGE_BATCH)
        - limit.data;

    q = ngx_http_taskmgr_pg_query_create_bg(ngx_http_taskmgr_purge_pool,
                                            ev->log, NGX_HTTP_TASKMGR_SQL_PURGE,
                                            ngx_http_taskmgr_purge_done);
    if (q == NULL) {
        goto failed;
    }

    q->data = mcf;
    ngx_http_taskmgr_pg_param(q, &after);
    ngx_http_taskmgr_pg_param(q, &limit);

    if (ngx_http_taskmgr_pg_submit(q) == NGX_OK) {
        return;
    }

failed:

    ngx_destroy_pool(ngx_http_taskmgr_purge_pool);
    ngx_http_taskmgr_purge_pool = NULL;

again:

    ngx_add_timer(ev, mcf->task_purge_interval);
}


static void
ngx_http_taskmgr_purge_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                     n;
    ngx_msec_t                    next;
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = q->data;
    n = -1;

    if (q->rc != NGX_OK || q->res == NULL) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "taskmgr: purge: the database did not answer");

    } else if (q->sqlstate) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0, "taskmgr: purge failed (%s): %s",
                      q->sqlstate, PQresultErrorMessage(q->res));

    } else if (PQntuples(q->res) == 1 && !PQgetisnull(q->res, 0, 0)) {
        n = ngx_atoi((u_char *) PQgetvalue(q->res, 0, 0),
                     PQgetlength(q->res, 0, 0));

        if (n > 0) {
            ngx_log_error(NGX_LOG_INFO, q->log, 0,
                          "taskmgr: purge deleted %i tasks", n);
        }
    }

    /* the result is freed with the pool */
    ngx_destroy_pool(ngx_http_taskmgr_purge_pool);
    ngx_http_taskmgr_purge_pool = NULL;

    if (ngx_http_taskmgr_purge_stopping || ngx_exiting || ngx_quit
        || ngx_terminate) {
        return;
    }

    /* a full batch: there may be more, go on soon */
    next = (n >= NGX_HTTP_TASKMGR_PURGE_BATCH) ? 10 : mcf->task_purge_interval;

    ngx_add_timer(&ngx_http_taskmgr_purge_timer, next);
}
