/*
 * Copyright (C) taskmgr developers
 *
 * /v1/workspaces/{ws}/tasks/{id}/comments: list (oldest first, keyset on
 * id), create; .../comments/{cid}: get, PATCH (the author), DELETE (the
 * author, or an admin/owner).  The comments of a soft-deleted task answer
 * 404 like the task.  Answers are built by the helpers of
 * ngx_http_taskmgr_h_projects.c; reads are not cached, writes bump the
 * tenant's cache generation.
 */


#include "ngx_http_taskmgr_handlers.h"


/* clang-format off */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_comment_fields[] = {
    { "body", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 10000, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


static const char *ngx_http_taskmgr_comment_what[] = { "workspace not found",
                                                       "task not found",
                                                       "comment not found" };


/* every path id must be a UUID; a malformed one is 404 like a missing one */
static ngx_int_t
ngx_http_taskmgr_comment_ids(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx, ngx_int_t *rc)
{
    ngx_uint_t i;

    for (i = 0; i < ctx->nparams && i < 3; i++) {
        if (ngx_http_taskmgr_api_uuid_param(
                r, ctx, i, ngx_http_taskmgr_comment_what[i], rc)
            != NGX_OK)
        {
            return NGX_DONE;
        }
    }

    return NGX_OK;
}


/* a query with the path ids as its parameters after uid and sid */
static ngx_http_taskmgr_pg_query_t *
ngx_http_taskmgr_comment_query(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
                               ngx_http_taskmgr_pg_handler_pt h)
{
    ngx_uint_t                   i;
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_api_query(r, ctx, stmt, h);
    if (q == NULL) {
        return NULL;
    }

    for (i = 0; i < ctx->nparams; i++) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[i]);
    }

    return q;
}


ngx_int_t
ngx_http_taskmgr_h_comment_list(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    cursor;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_comment_ids(r, ctx, &rc) != NGX_OK
        || ngx_http_taskmgr_page_args(r, &ctx->str[0], &cursor, &rc) != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_comment_query(r, ctx,
                                       NGX_HTTP_TASKMGR_SQL_COMMENT_LIST,
                                       ngx_http_taskmgr_page_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->str[0]);
        ngx_http_taskmgr_pg_param(q, cursor.len ? &cursor : NULL);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_comment_create(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_comment_ids(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    rc = ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_RESULT,
                                      ngx_http_taskmgr_object_answer);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    q = ngx_http_taskmgr_comment_query(
        r, ctx,
        ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_COMMENT_CREATE),
        ngx_http_taskmgr_object_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->body_json);
        ngx_http_taskmgr_api_audit_params(r, q);
        ngx_http_taskmgr_idem_params(q, ctx);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_comment_get(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t rc;

    if (ngx_http_taskmgr_comment_ids(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_comment_query(r, ctx, NGX_HTTP_TASKMGR_SQL_COMMENT_GET,
                                       ngx_http_taskmgr_object_answer));
}


ngx_int_t
ngx_http_taskmgr_h_comment_update(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    version;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_comment_ids(r, ctx, &rc) != NGX_OK
        || ngx_http_taskmgr_if_match_version(r,
                                             "If-Match must be the "
                                             "comment's ETag",
                                             &version, &rc)
            != NGX_OK)
    {
        return rc;
    }

    rc = ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_RESULT,
                                      ngx_http_taskmgr_object_answer);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    q = ngx_http_taskmgr_comment_query(
        r, ctx,
        ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_COMMENT_UPDATE),
        ngx_http_taskmgr_object_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->body_json);
        ngx_http_taskmgr_pg_param(q, version.len ? &version : NULL);
        ngx_http_taskmgr_api_audit_params(r, q);
        ngx_http_taskmgr_idem_params(q, ctx);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_comment_delete(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    version;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_comment_ids(r, ctx, &rc) != NGX_OK
        || ngx_http_taskmgr_if_match_version(r,
                                             "If-Match must be the "
                                             "comment's ETag",
                                             &version, &rc)
            != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_comment_query(r, ctx,
                                       NGX_HTTP_TASKMGR_SQL_COMMENT_DELETE,
                                       ngx_http_taskmgr_object_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, version.len ? &version : NULL);
        ngx_http_taskmgr_api_audit_params(r, q);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}
