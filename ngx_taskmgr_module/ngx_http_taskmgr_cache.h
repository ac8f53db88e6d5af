/*
 * Copyright (C) taskmgr developers
 *
 * The read cache in Redis: per-tenant generations, entries keyed by the
 * generation, a member marker and a session marker so that a hit needs no
 * PostgreSQL round trip, and a short single-flight lock per entry.
 */

#ifndef _NGX_HTTP_TASKMGR_CACHE_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_CACHE_H_INCLUDED_


#include "ngx_http_taskmgr.h"


#define NGX_HTTP_TASKMGR_CACHE_OFF    0 /* not a cacheable request */
#define NGX_HTTP_TASKMGR_CACHE_BYPASS 1 /* cacheable, Redis not usable */
#define NGX_HTTP_TASKMGR_CACHE_MISS   2
#define NGX_HTTP_TASKMGR_CACHE_HIT    3


typedef void (*ngx_http_taskmgr_cache_done_pt)(ngx_http_request_t *r,
                                               ngx_int_t           rc);


/* a worker's copy of an entry (ngx_http_taskmgr_cache_local.c) */
typedef struct {
    ngx_str_node_t node; /* "<ws> <route>" */
    ngx_queue_t    queue;
    ngx_str_t      gen;
    ngx_str_t      etag;
    ngx_str_t      link;
    ngx_str_t      body;
    ngx_msec_t     expires;
    size_t         size;
    ngx_uint_t     refs;
    unsigned       dead : 1;
} ngx_http_taskmgr_cache_local_t;


typedef struct {
    ngx_uint_t                      state;
    ngx_str_t                       ws;
    ngx_str_t                       route;
    ngx_str_t                       gen;
    ngx_str_t                       etag; /* of a hit */
    ngx_str_t                       link; /* of a hit, may be empty */
    ngx_str_t                       body; /* of a hit */
    ngx_uint_t                      pending;
    ngx_str_t                       lkey;  /* "<ws> <route>" */
    ngx_http_taskmgr_cache_local_t *local; /* the copy being checked */
    ngx_http_taskmgr_cache_done_pt  done;
    void                           *wait;
    unsigned                        found : 1;
    unsigned                        member : 1;
    unsigned                        session : 1;
    unsigned                        locked : 1;
    unsigned                        failed : 1;
} ngx_http_taskmgr_cache_t;


/* configuration time: the lookup script's SHA1 */
ngx_int_t ngx_http_taskmgr_cache_init(void);

/*
 * Looks the request's representation up.  NGX_OK: done(r, rc) follows,
 * rc NGX_OK for a hit (etag, link, body set) or NGX_DECLINED for a miss.
 * NGX_DECLINED: the cache is off or Redis unusable now (state BYPASS):
 * read PostgreSQL at once.
 */
ngx_int_t ngx_http_taskmgr_cache_lookup(ngx_http_request_t       *r,
                                        ngx_http_taskmgr_cache_t *cache,
                                        ngx_str_t *ws, ngx_str_t *route,
                                        ngx_http_taskmgr_cache_done_pt done);

/* after a miss read PostgreSQL: stores the answer (fire and forget) */
void ngx_http_taskmgr_cache_store(ngx_http_request_t       *r,
                                  ngx_http_taskmgr_cache_t *cache,
                                  ngx_str_t *etag, ngx_str_t *link,
                                  ngx_str_t *body);

/*
 * A write to the tenant ws: bumps its generation.  NGX_OK: done(r, rc)
 * follows once Redis answered (rc NGX_ERROR when it failed or timed out).
 * NGX_DECLINED: no cache configured or Redis unusable: answer at once.
 */
ngx_int_t ngx_http_taskmgr_cache_bump(ngx_http_request_t *r, ngx_str_t *ws,
                                      ngx_http_taskmgr_cache_done_pt done);

/* a session ended: its marker goes, as ngx_http_taskmgr_cache_bump() */
ngx_int_t ngx_http_taskmgr_cache_end_session(
    ngx_http_request_t *r, ngx_str_t *uid, ngx_str_t *sid,
    ngx_http_taskmgr_cache_done_pt done);

/* the worker's copies */
ngx_http_taskmgr_cache_local_t *ngx_http_taskmgr_cache_local_get(
    ngx_http_request_t *r, ngx_str_t *key);
ngx_http_taskmgr_cache_local_t *ngx_http_taskmgr_cache_local_put(
    ngx_http_request_t *r, ngx_str_t *key, ngx_str_t *gen, ngx_str_t *etag,
    ngx_str_t *link, ngx_str_t *body, ngx_msec_t ttl);
void ngx_http_taskmgr_cache_local_drop(ngx_http_taskmgr_cache_local_t *e);
void ngx_http_taskmgr_cache_local_destroy(void);

/* X-Cache: HIT, MISS or BYPASS for a cacheable request */
ngx_int_t ngx_http_taskmgr_cache_header(ngx_http_request_t       *r,
                                        ngx_http_taskmgr_cache_t *cache);


#endif /* _NGX_HTTP_TASKMGR_CACHE_H_INCLUDED_ */
