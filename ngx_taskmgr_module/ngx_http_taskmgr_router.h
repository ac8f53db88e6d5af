/*
 * Copyright (C) taskmgr developers
 *
 * A static table of (method, path pattern) -> handler.  Patterns are
 * matched segment by segment; "{name}" captures one segment.
 */

#ifndef _NGX_HTTP_TASKMGR_ROUTER_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_ROUTER_H_INCLUDED_


#include "ngx_http_taskmgr.h"
#include "ngx_http_taskmgr_json.h"
#include "ngx_http_taskmgr_cache.h"
#include "ngx_http_taskmgr_pg.h"


#define NGX_HTTP_TASKMGR_MAX_PARAMS   4
#define NGX_HTTP_TASKMGR_MAX_SEGMENTS 8

/* route flags */
#define NGX_HTTP_TASKMGR_AUTH   0x01 /* needs a verified caller */
#define NGX_HTTP_TASKMGR_BODY   0x02 /* reads a JSON object body */
#define NGX_HTTP_TASKMGR_ARGS   0x04 /* parses its own query string */
#define NGX_HTTP_TASKMGR_IDEM   0x08 /* honours Idempotency-Key (idem.c) */
#define NGX_HTTP_TASKMGR_UPLOAD 0x10 /* the handler reads the body itself */


/* one row of a tm_api function: see sql/0001_init.sql */
typedef struct {
    ngx_uint_t status;
    ngx_str_t  body; /* NUL-terminated, lives with the request */
    ngx_str_t  meta;
} ngx_http_taskmgr_result_t;


typedef struct ngx_http_taskmgr_api_ctx_s ngx_http_taskmgr_api_ctx_t;

/* returns NGX_DONE when the answer comes later, else a finalize code */
typedef ngx_int_t (*ngx_http_taskmgr_handler_pt)(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx);


typedef struct {
    ngx_uint_t                  method; /* NGX_HTTP_GET, ... */
    const char                 *pattern;
    ngx_http_taskmgr_handler_pt handler;
    ngx_uint_t                  flags;
    ngx_http_taskmgr_field_t   *fields; /* body schema */
} ngx_http_taskmgr_route_t;


struct ngx_http_taskmgr_api_ctx_s {
    ngx_http_taskmgr_route_t    *route;
    ngx_str_t                    params[NGX_HTTP_TASKMGR_MAX_PARAMS];
    ngx_uint_t                   nparams;
    ngx_http_taskmgr_identity_t *identity;
    json_t                      *body;
    ngx_str_t                    body_json; /* validated, compact */

    /* handler scratch across asynchronous steps */
    ngx_str_t str[4];
    ngx_int_t num;
    void     *data;

    /* a tm_api answer kept across an asynchronous step */
    ngx_http_taskmgr_result_t result;

    /* the read cache of GET routes */
    ngx_http_taskmgr_cache_t cache;

    /* Idempotency-Key (idem.c): the key, the claim's token while this
     * request owns it, or the recorded answer to replay */
    ngx_str_t                      idem_key;
    ngx_str_t                      idem_token;
    ngx_str_t                      idem_payload;
    ngx_int_t                      idem_rc;
    ngx_http_taskmgr_pg_handler_pt idem_answer;
    unsigned                       idem_replay : 1;

    /* a route that claims its key itself, after reading its body (an
     * upload): what stands for the body in the fingerprint, and the step
     * run once the claim is taken or the answer is to be replayed */
    ngx_str_t                   idem_body;
    ngx_http_taskmgr_handler_pt idem_next;
};


/*
 * NGX_OK: *route is set and params filled; NGX_HTTP_NOT_FOUND: no pattern
 * matches; NGX_HTTP_NOT_ALLOWED: a pattern matches but not the method,
 * allow lists the methods that would.
 */
ngx_int_t ngx_http_taskmgr_route(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx,
                                 ngx_str_t                  *allow);


#endif /* _NGX_HTTP_TASKMGR_ROUTER_H_INCLUDED_ */
