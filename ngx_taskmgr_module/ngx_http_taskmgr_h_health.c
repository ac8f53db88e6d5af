/*
 * Copyright (C) taskmgr developers
 *
 * taskmgr_healthz: the process answers.  taskmgr_readyz: a round trip to
 * PostgreSQL through this worker's pool succeeds and, when taskmgr_redis
 * is configured, a PING through this worker's Redis client too; both
 * checks run at the same time.
 */


#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_redis.h"


typedef struct {
    ngx_uint_t pending;
    unsigned   postgres : 1; /* ok */
    unsigned   redis : 1;    /* ok */
    unsigned   check_redis : 1;
} ngx_http_taskmgr_readyz_ctx_t;


static void ngx_http_taskmgr_readyz_pg_done(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_readyz_redis_done(
    ngx_http_taskmgr_redis_cmd_t *cmd);
static void      ngx_http_taskmgr_readyz_end(ngx_http_request_t            *r,
                                             ngx_http_taskmgr_readyz_ctx_t *ctx);
static ngx_int_t ngx_http_taskmgr_readyz_send(
    ngx_http_request_t *r, ngx_http_taskmgr_readyz_ctx_t *ctx);


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
    ngx_int_t                      rc;
    ngx_str_t                      ping = ngx_string("PING");
    ngx_http_taskmgr_pg_query_t   *q;
    ngx_http_taskmgr_main_conf_t  *mcf;
    ngx_http_taskmgr_readyz_ctx_t *ctx;
    ngx_http_taskmgr_redis_cmd_t  *cmd;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_taskmgr_readyz_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    mcf = ngx_http_taskmgr_main_conf();
    ctx->check_redis = (mcf && mcf->redis_addr.len);

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_PING,
                                         ngx_http_taskmgr_readyz_pg_done);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q->data = ctx;

    if (ngx_http_taskmgr_pg_submit(q) == NGX_OK) {
        ctx->pending++;
    }

    if (ctx->check_redis) {
        cmd = ngx_http_taskmgr_redis_cmd_create(
            r, ngx_http_taskmgr_readyz_redis_done, ctx);
        if (cmd == NULL) {
            /* the PostgreSQL check may be running: answer when it ends */
            rc = NGX_ERROR;

        } else {
            rc = ngx_http_taskmgr_redis_send(cmd, 1, &ping);
        }

        if (rc == NGX_OK) {
            ctx->pending++;
        }
    }

    if (ctx->pending == 0) {
        return ngx_http_taskmgr_readyz_send(r, ctx);
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_taskmgr_readyz_pg_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_http_taskmgr_readyz_ctx_t *ctx;

    ctx = q->data;
    ctx->postgres = (q->rc == NGX_OK && q->res != NULL && q->sqlstate == NULL);

    ngx_http_taskmgr_readyz_end(q->request, ctx);
}


static void
ngx_http_taskmgr_readyz_redis_done(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    ngx_http_taskmgr_readyz_ctx_t *ctx;

    ctx = cmd->data;
    ctx->redis = (cmd->rc == NGX_OK && cmd->reply != NULL
                  && cmd->reply->type == REDIS_REPLY_STATUS);

    ngx_http_taskmgr_readyz_end(cmd->request, ctx);
}


/* one check ended; the last one answers */
static void
ngx_http_taskmgr_readyz_end(ngx_http_request_t            *r,
                            ngx_http_taskmgr_readyz_ctx_t *ctx)
{
    if (--ctx->pending) {
        return;
    }

    ngx_http_finalize_request(r, ngx_http_taskmgr_readyz_send(r, ctx));
}


static ngx_int_t
ngx_http_taskmgr_readyz_send(ngx_http_request_t            *r,
                             ngx_http_taskmgr_readyz_ctx_t *ctx)
{
    u_char    *p;
    ngx_str_t  body;
    ngx_uint_t ok;

    if (ngx_http_taskmgr_add_header(r, "Cache-Control",
                                    &ngx_http_taskmgr_no_store)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ok = ctx->postgres && (ctx->redis || !ctx->check_redis);

    body.data = ngx_pnalloc(r->pool, 128);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(
        body.data, "{\"status\":\"%s\",\"checks\":{\"postgres\":\"%s\"",
        ok ? "ready" : "unavailable", ctx->postgres ? "ok" : "unavailable");

    if (ctx->check_redis) {
        p = ngx_sprintf(p, ",\"redis\":\"%s\"",
                        ctx->redis ? "ok" : "unavailable");
    }

    p = ngx_cpymem(p, "}}", 2);
    body.len = p - body.data;

    return ngx_http_taskmgr_send_json(
        r, ok ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE, &body);
}
