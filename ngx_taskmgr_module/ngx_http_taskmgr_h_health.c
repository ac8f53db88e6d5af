/*
 * Copyright (C) taskmgr developers
 *
 * taskmgr_healthz: the process answers.  taskmgr_readyz: a round trip to
 * PostgreSQL through this worker's pool succeeds.
 */


#include "ngx_http_taskmgr_handlers.h"


static void      ngx_http_taskmgr_readyz_done(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_readyz_send(ngx_http_request_t *r,
                                              ngx_uint_t          ok);


static ngx_str_t ngx_http_taskmgr_no_store = ngx_string("no-store");


ngx_int_t
ngx_http_taskmgr_healthz_handler(ngx_http_request_t *r)
{
    ngx_str_t body = ngx_string("{\"status\":\"ok\"}");

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_taskmgr_add_header(r, "Cache-Control",
                                    &ngx_http_taskmgr_no_store)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_taskmgr_send_json(r, NGX_HTTP_OK, &body);
}


ngx_int_t
ngx_http_taskmgr_readyz_handler(ngx_http_request_t *r)
{
    ngx_http_taskmgr_pg_query_t *q;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_PING,
                                         ngx_http_taskmgr_readyz_done);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_taskmgr_pg_submit(q) != NGX_OK) {
        return ngx_http_taskmgr_readyz_send(r, 0);
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_taskmgr_readyz_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_uint_t ok;

    ok = (q->rc == NGX_OK && q->res != NULL && q->sqlstate == NULL);

    ngx_http_finalize_request(q->request,
                              ngx_http_taskmgr_readyz_send(q->request, ok));
}


static ngx_int_t
ngx_http_taskmgr_readyz_send(ngx_http_request_t *r, ngx_uint_t ok)
{
    ngx_str_t body;

    if (ngx_http_taskmgr_add_header(r, "Cache-Control",
                                    &ngx_http_taskmgr_no_store)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ok) {
        ngx_str_set(&body,
                    "{\"status\":\"ready\","
                    "\"checks\":{\"postgres\":\"ok\"}}");
        return ngx_http_taskmgr_send_json(r, NGX_HTTP_OK, &body);
    }

    ngx_str_set(&body,
                "{\"status\":\"unavailable\","
                "\"checks\":{\"postgres\":\"unavailable\"}}");

    return ngx_http_taskmgr_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE, &body);
}
