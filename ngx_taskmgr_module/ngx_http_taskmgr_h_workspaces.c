/*
 * Copyright (C) taskmgr developers
 *
 * /v1/workspaces: the caller's workspaces; creating one makes the caller
 * its owner.
 */


#include "ngx_http_taskmgr_handlers.h"


/* clang-format off */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_workspace_fields[] = {
    { "name", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 200, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


static void ngx_http_taskmgr_workspace_created(ngx_http_taskmgr_pg_query_t *q);


ngx_int_t
ngx_http_taskmgr_h_workspace_list(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_WORKSPACE_LIST,
                                   ngx_http_taskmgr_api_done));
}


ngx_int_t
ngx_http_taskmgr_h_workspace_create(ngx_http_request_t         *r,
                                    ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_api_query(r, ctx,
                                   NGX_HTTP_TASKMGR_SQL_WORKSPACE_CREATE,
                                   ngx_http_taskmgr_workspace_created);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->body_json);
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

    ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
}


ngx_int_t
ngx_http_taskmgr_h_workspace_get(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", &rc)
        != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_WORKSPACE_GET,
                                   ngx_http_taskmgr_api_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}
