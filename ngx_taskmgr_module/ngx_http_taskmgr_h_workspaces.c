/*
 * Copyright (C) taskmgr developers
 *
 * /v1/workspaces: the caller's workspaces; creating one makes the caller
 * its owner.
 *
 * Cached reads: a workspace under its tenant's generation, one entry per
 * reader ("w:<uid>": the representation carries the reader's role); the
 * caller's list under the caller's own generation ("tmk:{<uid>}:gen",
 * route "wl"), which creating a workspace bumps.  Whatever later changes a
 * membership or a workspace must bump the tenant and every member's list.
 */


#include "ngx_http_taskmgr_handlers.h"


/* clang-format off */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_workspace_fields[] = {
    { "name", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 200, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


static void ngx_http_taskmgr_workspace_created(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_workspace_bumped(ngx_http_request_t *r,
                                              ngx_int_t           rc);
static void ngx_http_taskmgr_workspace_cached(ngx_http_request_t *r,
                                              ngx_int_t           rc);
static ngx_int_t ngx_http_taskmgr_workspace_read(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx);
static void ngx_http_taskmgr_workspace_answer(ngx_http_taskmgr_pg_query_t *q);


static ngx_str_t ngx_http_taskmgr_workspace_list_route = ngx_string("wl");


ngx_int_t
ngx_http_taskmgr_h_workspace_list(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    if (ngx_http_taskmgr_cache_lookup(r, &ctx->cache, &ctx->identity->sub,
                                      &ngx_http_taskmgr_workspace_list_route,
                                      ngx_http_taskmgr_workspace_cached)
        == NGX_OK)
    {
        return NGX_DONE;
    }

    return ngx_http_taskmgr_workspace_read(r, ctx);
}


/* the cache answered: a hit, or read PostgreSQL */
static void
ngx_http_taskmgr_workspace_cached(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc == NGX_OK) {
        rc = ngx_http_taskmgr_api_send_hit(r, &ctx->cache);

    } else {
        rc = ngx_http_taskmgr_workspace_read(r, ctx);
    }

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


/* the list (no path parameter) or one workspace from PostgreSQL */
static ngx_int_t
ngx_http_taskmgr_workspace_read(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_api_query(r, ctx,
                                   ctx->nparams
                                       ? NGX_HTTP_TASKMGR_SQL_WORKSPACE_GET
                                       : NGX_HTTP_TASKMGR_SQL_WORKSPACE_LIST,
                                   ngx_http_taskmgr_workspace_answer);

    if (q != NULL && ctx->nparams) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


static void
ngx_http_taskmgr_workspace_answer(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                 rc;
    ngx_http_taskmgr_result_t res;

    if (ngx_http_taskmgr_api_result(q, &res, &rc) == NGX_OK) {
        rc = ngx_http_taskmgr_api_respond_cached(q->request, &res);
    }

    ngx_http_taskmgr_api_finish(q->request, rc);
}


ngx_int_t
ngx_http_taskmgr_h_workspace_create(ngx_http_request_t         *r,
                                    ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    rc = ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_RESULT,
                                      ngx_http_taskmgr_workspace_created);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(
        r, ctx,
        ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_WORKSPACE_CREATE),
        ngx_http_taskmgr_workspace_created);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->body_json);
        ngx_http_taskmgr_api_audit_params(r, q);
        ngx_http_taskmgr_idem_params(q, ctx);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


static void
ngx_http_taskmgr_workspace_created(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                   *p;
    ngx_int_t                 rc;
    ngx_str_t                 loc;
    ngx_http_request_t       *r;
    ngx_http_taskmgr_result_t res;

    r = q->request;

    if (ngx_http_taskmgr_idem_failed(q) == NGX_DONE) {
        return;
    }

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status == NGX_HTTP_CREATED && res.meta.len) {
        p = ngx_pnalloc(r->pool, sizeof("/v1/workspaces/") - 1 + res.meta.len);
        if (p == NULL) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        loc.data = p;
        loc.len = ngx_sprintf(p, "/v1/workspaces/%V", &res.meta) - p;

        if (ngx_http_taskmgr_add_header(r, "Location", &loc) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    if (res.status != NGX_HTTP_CREATED) {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
        return;
    }

    /* the caller's cached list goes stale before the answer leaves */
    ngx_http_taskmgr_api_ctx(r)->result = res;

    if (ngx_http_taskmgr_cache_bump(r,
                                    &ngx_http_taskmgr_api_ctx(r)->identity->sub,
                                    ngx_http_taskmgr_workspace_bumped)
        == NGX_OK)
    {
        return;
    }

    ngx_http_taskmgr_workspace_bumped(r, NGX_OK);
}


static void
ngx_http_taskmgr_workspace_bumped(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    ngx_http_taskmgr_api_finish(r,
                                ngx_http_taskmgr_api_respond(r, &ctx->result));
}


ngx_int_t
ngx_http_taskmgr_h_workspace_get(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t rc;
    ngx_str_t route;

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", &rc)
        != NGX_OK)
    {
        return rc;
    }

    /* one entry per reader: "w:<uid>" */
    route.len = 2 + ctx->identity->sub.len;
    route.data = ngx_pnalloc(r->pool, route.len);
    if (route.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(route.data, "w:%V", &ctx->identity->sub);

    if (ngx_http_taskmgr_cache_lookup(r, &ctx->cache, &ctx->params[0], &route,
                                      ngx_http_taskmgr_workspace_cached)
        == NGX_OK)
    {
        return NGX_DONE;
    }

    return ngx_http_taskmgr_workspace_read(r, ctx);
}
