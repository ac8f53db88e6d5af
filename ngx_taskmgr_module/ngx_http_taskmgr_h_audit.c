/*
 * Copyright (C) taskmgr developers
 *
 * The audit trail (sql/0007_audit.sql), read only:
 *
 *   GET /v1/workspaces/{ws}/audit-log          owner and admin; filters
 *                                              entity_type and actor_id
 *   GET /v1/workspaces/{ws}/tasks/{id}/activity any member who can see the
 *                                              task (soft-deleted too)
 *
 * Both newest first, keyset pages: limit (1..200, default 50) and cursor
 * (the next_cursor of the page before, an entry id).  Not cached in Redis:
 * they always read PostgreSQL (Cache-Control: private, no-cache and a weak
 * ETag, as the other uncached reads).  Entries are written only by the
 * triggers of the audited tables; no route writes them.
 */


#include "ngx_http_taskmgr_handlers.h"


#define NGX_HTTP_TASKMGR_AUDIT_FILTERS 0x01 /* entity_type, actor_id */


static ngx_int_t ngx_http_taskmgr_audit_args(ngx_http_request_t         *r,
                                             ngx_http_taskmgr_api_ctx_t *ctx,
                                             ngx_uint_t filters,
                                             ngx_str_t *cursor, ngx_int_t *rc);
static ngx_int_t ngx_http_taskmgr_audit_is_type(ngx_str_t *v);
static void      ngx_http_taskmgr_audit_page(ngx_http_taskmgr_pg_query_t *q);


/*
 * The query string: limit -> ctx->str[0], entity_type -> ctx->str[1],
 * actor_id -> ctx->str[2] (the filters only with filters set), cursor ->
 * *cursor.  Anything else, a repeat or a bad value is 400 naming the
 * parameter: NGX_DONE with *rc the finalize code of that answer.
 */
static ngx_int_t
ngx_http_taskmgr_audit_args(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t filters,
                            ngx_str_t *cursor, ngx_int_t *rc)
{
    u_char    *p;
    off_t      n;
    ngx_str_t  name, value;
    ngx_uint_t seen_limit;

    seen_limit = 0;
    ngx_str_set(&ctx->str[0], "50");
    ngx_str_null(&ctx->str[1]);
    ngx_str_null(&ctx->str[2]);
    ngx_str_null(cursor);

    p = r->args.data;

    while (
        ngx_http_taskmgr_arg_next(&p, r->args.data + r->args.len, &name, &value)
        == NGX_OK)
    {
        if (name.len == 5 && ngx_strncmp(name.data, "limit", 5) == 0) {
            if (seen_limit++) {
                goto twice;
            }

            if (ngx_http_taskmgr_arg_limit(r, &name, &value, rc) != NGX_OK) {
                return NGX_DONE;
            }

            ctx->str[0] = value;
            continue;
        }

        if (name.len == 6 && ngx_strncmp(name.data, "cursor", 6) == 0) {
            if (cursor->data) {
                goto twice;
            }

            /* an entry id: 1 .. 2^63 - 1 */
            n = (value.len >= 1 && value.len <= 19 && value.data[0] != '0')
                ? ngx_atoof(value.data, value.len)
                : NGX_ERROR;

            if (n == NGX_ERROR) {
                *rc = ngx_http_taskmgr_api_bad_arg(
                    r, &name, "must be the next_cursor of a page");
                return NGX_DONE;
            }

            *cursor = value;
            continue;
        }

        if (filters && name.len == 11
            && ngx_strncmp(name.data, "entity_type", 11) == 0) {
            if (ctx->str[1].data) {
                goto twice;
            }

            if (ngx_http_taskmgr_audit_is_type(&value) != NGX_OK) {
                *rc = ngx_http_taskmgr_api_bad_arg(
                    r, &name, "must be task, project, comment or member");
                return NGX_DONE;
            }

            ctx->str[1] = value;
            continue;
        }

        if (filters && name.len == 8
            && ngx_strncmp(name.data, "actor_id", 8) == 0) {
            if (ctx->str[2].data) {
                goto twice;
            }

            if (ngx_http_taskmgr_is_uuid(&value) != NGX_OK) {
                *rc =
                    ngx_http_taskmgr_api_bad_arg(r, &name, "must be a user id");
                return NGX_DONE;
            }

            ctx->str[2] = value;
            continue;
        }

        *rc = ngx_http_taskmgr_api_bad_arg(r, &name, "unknown parameter");
        return NGX_DONE;
    }

    return NGX_OK;

twice:

    *rc = ngx_http_taskmgr_api_bad_arg(r, &name, "given twice");
    return NGX_DONE;
}


static ngx_int_t
ngx_http_taskmgr_audit_is_type(ngx_str_t *v)
{
    ngx_uint_t i;

    static const char *types[] = { "task",   "project",    "comment",
                                   "member", "attachment", NULL };

    for (i = 0; types[i]; i++) {
        if (v->len == ngx_strlen(types[i])
            && ngx_strncmp(v->data, types[i], v->len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_taskmgr_h_audit_list(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    cursor;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", &rc)
            != NGX_OK
        || ngx_http_taskmgr_audit_args(r, ctx, NGX_HTTP_TASKMGR_AUDIT_FILTERS,
                                       &cursor, &rc)
            != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_AUDIT_LIST,
                                   ngx_http_taskmgr_audit_page);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->str[0]);
        ngx_http_taskmgr_pg_param(q, cursor.len ? &cursor : NULL);
        ngx_http_taskmgr_pg_param(q, ctx->str[1].len ? &ctx->str[1] : NULL);
        ngx_http_taskmgr_pg_param(q, ctx->str[2].len ? &ctx->str[2] : NULL);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_task_activity(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    cursor;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", &rc)
            != NGX_OK
        || ngx_http_taskmgr_api_uuid_param(r, ctx, 1, "task not found", &rc)
            != NGX_OK
        || ngx_http_taskmgr_audit_args(r, ctx, 0, &cursor, &rc) != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_ACTIVITY,
                                   ngx_http_taskmgr_audit_page);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->params[1]);
        ngx_http_taskmgr_pg_param(q, &ctx->str[0]);
        ngx_http_taskmgr_pg_param(q, cursor.len ? &cursor : NULL);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * A page (meta: the next cursor or NULL): Link rel="next" with the
 * request's limit and filters, which were validated and need no escaping.
 */
static void
ngx_http_taskmgr_audit_page(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                     *p;
    size_t                      len;
    ngx_int_t                   rc;
    ngx_str_t                   link;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status == NGX_HTTP_OK && res.meta.len) {
        len = sizeof("<?limit=&entity_type=&actor_id=&cursor=>; rel=\"next\"")
            - 1 + r->uri.len + ctx->str[0].len + ctx->str[1].len
            + ctx->str[2].len + res.meta.len;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        link.data = p;
        p = ngx_sprintf(p, "<%V?limit=%V", &r->uri, &ctx->str[0]);

        if (ctx->str[1].len) {
            p = ngx_sprintf(p, "&entity_type=%V", &ctx->str[1]);
        }

        if (ctx->str[2].len) {
            p = ngx_sprintf(p, "&actor_id=%V", &ctx->str[2]);
        }

        p = ngx_sprintf(p, "&cursor=%V>; rel=\"next\"", &res.meta);
        link.len = p - link.data;

        if (ngx_http_taskmgr_add_header(r, "Link", &link) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
}
