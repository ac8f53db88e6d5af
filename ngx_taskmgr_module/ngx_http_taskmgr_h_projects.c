/*
 * Copyright (C) taskmgr developers
 *
 * /v1/workspaces/{ws}/projects: list (keyset on id), create, get, PATCH
 * (merge patch, If-Match), DELETE (admin/owner; 409 while live tasks use
 * the project).  And the helpers the project and comment routes share:
 * the page parameters (limit, cursor), If-Match "<version>", the answer of
 * one object (ETag, Location) and of a page (Link).
 *
 * These reads are not cached in Redis: they always read PostgreSQL.  Every
 * write bumps the tenant's cache generation before it answers, as the task
 * writes do (a project delete changes tasks' project_id).
 */


#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_cache.h"


/* clang-format off */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_project_create_fields[] = {
    { "name", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 200, NULL, 0 },
    { "description", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 0, 10000, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_project_patch_fields[] = {
    { "name", NGX_HTTP_TASKMGR_F_STRING, 0, 0, 1, 200, NULL, 0 },
    { "description", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 0, 10000, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


static void ngx_http_taskmgr_object_written(ngx_http_request_t *r,
                                            ngx_int_t           rc);


/*
 * The next name=value pair of a query string, from *pos on (empty pairs
 * are skipped): NGX_OK, or NGX_DECLINED at its end.
 */
ngx_int_t
ngx_http_taskmgr_arg_next(u_char **pos, u_char *end, ngx_str_t *name,
                          ngx_str_t *value)
{
    u_char *p, *amp, *eq;

    for (p = *pos; p < end; /* void */) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        eq = ngx_strlchr(p, amp, '=');

        name->data = p;
        name->len = (eq ? eq : amp) - p;
        value->data = eq ? eq + 1 : amp;
        value->len = amp - value->data;

        p = amp + 1;

        if (name->len || value->len) {
            *pos = p;
            return NGX_OK;
        }
    }

    *pos = end;
    return NGX_DECLINED;
}


/*
 * A page's limit=1..200: NGX_OK, or NGX_DONE with *rc the finalize code of
 * the 400 sent.
 */
ngx_int_t
ngx_http_taskmgr_arg_limit(ngx_http_request_t *r, ngx_str_t *name,
                           ngx_str_t *value, ngx_int_t *rc)
{
    ngx_int_t n;

    n = (value->len >= 1 && value->len <= 3) ? ngx_atoi(value->data, value->len)
                                             : NGX_ERROR;

    if (n < 1 || n > 200) {
        *rc = ngx_http_taskmgr_api_bad_arg(r, name,
                                           "must be an integer from 1 to 200");
        return NGX_DONE;
    }

    return NGX_OK;
}


/*
 * The page parameters: limit (1..200, default 50) and cursor (the
 * next_cursor of the page before: an id).  Anything else is 400 naming
 * the parameter.  NGX_OK with limit and cursor set (cursor NULL when
 * absent), or NGX_DONE with *rc the finalize code of the answer sent.
 */
ngx_int_t
ngx_http_taskmgr_page_args(ngx_http_request_t *r, ngx_str_t *limit,
                           ngx_str_t *cursor, ngx_int_t *rc)
{
    u_char    *p;
    ngx_str_t  name, value;
    ngx_uint_t seen_limit;

    seen_limit = 0;
    ngx_str_set(limit, "50");
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

            *limit = value;
            continue;
        }

        if (name.len == 6 && ngx_strncmp(name.data, "cursor", 6) == 0) {
            if (cursor->data) {
                goto twice;
            }

            if (ngx_http_taskmgr_is_uuid(&value) != NGX_OK) {
                *rc = ngx_http_taskmgr_api_bad_arg(
                    r, &name, "must be the next_cursor of a page");
                return NGX_DONE;
            }

            *cursor = value;
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


/*
 * If-Match: "<version>" (or *).  version is left NULL when there is no
 * precondition; an unparsable one can never match: 412 is sent and
 * NGX_DONE returned with *rc its finalize code.
 */
ngx_int_t
ngx_http_taskmgr_if_match_version(ngx_http_request_t *r, const char *detail,
                                  ngx_str_t *version, ngx_int_t *rc)
{
    u_char          *p, *last;
    ngx_int_t        n;
    ngx_table_elt_t *h;

    ngx_str_null(version);

    h = r->headers_in.if_match;
    if (h == NULL) {
        return NGX_OK;
    }

    p = h->value.data;
    last = p + h->value.len;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    if (last - p == 1 && *p == '*') {
        return NGX_OK;
    }

    /* strong comparison (RFC 9110): a weak validator never matches */
    if (last - p > 2 && p[0] == 'W' && p[1] == '/') {
        p = last;
    }

    if (last - p >= 3 && *p == '"' && last[-1] == '"') {
        p++;
        last--;
    }

    n = (last - p >= 1 && last - p <= 10) ? ngx_atoi(p, last - p) : NGX_ERROR;

    if (n == NGX_ERROR || n > 2147483647) {
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_PRECONDITION_FAILED,
                                            "precondition_failed", detail);
        return NGX_DONE;
    }

    version->data = p;
    version->len = last - p;

    return NGX_OK;
}


/*
 * The answer of one object (meta "<id> <version>"): ETag "<version>",
 * Location (the request's path and the id) for a 201; a GET honours
 * If-None-Match.  A write bumps the tenant's cache generation (path
 * parameter 0) before it answers; 204 answers no body.
 */
void
ngx_http_taskmgr_object_answer(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_str_t                   id, version, etag, loc;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_idem_failed(q) == NGX_DONE) {
        return;
    }

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status >= NGX_HTTP_BAD_REQUEST) {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
        return;
    }

    if (res.status != NGX_HTTP_NO_CONTENT) {
        if (ngx_http_taskmgr_api_split_meta(&res.meta, &id, &version) != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "taskmgr: statement %s answered no id and version",
                          ngx_http_taskmgr_sql_stmts[q->stmt].name);
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        p = ngx_pnalloc(r->pool, version.len + 2);
        if (p == NULL) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        etag.data = p;
        etag.len = ngx_sprintf(p, "\"%V\"", &version) - p;

        rc = ngx_http_taskmgr_api_etag(r, &etag);
        if (rc == NGX_ERROR) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)) {
            if (ngx_http_taskmgr_api_cache_private(r) != NGX_OK) {
                ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            ngx_http_taskmgr_api_finish(
                r,
                rc == NGX_DECLINED
                    ? ngx_http_taskmgr_send(r, NGX_HTTP_NOT_MODIFIED, NULL,
                                            NULL)
                    : ngx_http_taskmgr_send_json(r, res.status, &res.body));
            return;
        }

        if (res.status == NGX_HTTP_CREATED) {
            p = ngx_pnalloc(r->pool, r->uri.len + 1 + id.len);
            if (p == NULL) {
                ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            loc.data = p;
            loc.len = ngx_sprintf(p, "%V/%V", &r->uri, &id) - p;

            if (ngx_http_taskmgr_add_header(r, "Location", &loc) != NGX_OK) {
                ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }
        }
    }

    /* a write: readers of the tenant's cache see it from now on */
    ctx->result = res;

    if (ngx_http_taskmgr_cache_bump(r, &ctx->params[0],
                                    ngx_http_taskmgr_object_written)
        == NGX_OK)
    {
        return;
    }

    ngx_http_taskmgr_object_written(r, NGX_OK);
}


static void
ngx_http_taskmgr_object_written(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ctx->result.status == NGX_HTTP_NO_CONTENT) {
        ngx_http_taskmgr_api_finish(
            r, ngx_http_taskmgr_send(r, NGX_HTTP_NO_CONTENT, NULL, NULL));
        return;
    }

    ngx_http_taskmgr_api_finish(
        r,
        ngx_http_taskmgr_send_json(r, ctx->result.status, &ctx->result.body));
}


/*
 * The answer of a page (meta: the next cursor or NULL): Link rel="next"
 * with the request's limit (ctx->str[0]), weak ETag of the body.
 */
void
ngx_http_taskmgr_page_answer(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                     *p;
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
        p = ngx_pnalloc(r->pool,
                        sizeof("<?limit=&cursor=>; rel=\"next\"") - 1
                            + r->uri.len + ctx->str[0].len + res.meta.len);
        if (p == NULL) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        link.data = p;
        link.len = ngx_sprintf(p, "<%V?limit=%V&cursor=%V>; rel=\"next\"",
                               &r->uri, &ctx->str[0], &res.meta)
            - p;

        if (ngx_http_taskmgr_add_header(r, "Link", &link) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
}


/* the route's path ids (all of them) must be UUIDs; a malformed one is 404 */
static ngx_int_t
ngx_http_taskmgr_project_ids(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx, ngx_int_t *rc)
{
    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", rc)
        != NGX_OK)
    {
        return NGX_DONE;
    }

    if (ctx->nparams > 1
        && ngx_http_taskmgr_api_uuid_param(r, ctx, 1, "project not found", rc)
            != NGX_OK)
    {
        return NGX_DONE;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_h_project_list(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    cursor;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_project_ids(r, ctx, &rc) != NGX_OK
        || ngx_http_taskmgr_page_args(r, &ctx->str[0], &cursor, &rc) != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_PROJECT_LIST,
                                   ngx_http_taskmgr_page_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->str[0]);
        ngx_http_taskmgr_pg_param(q, cursor.len ? &cursor : NULL);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_project_create(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_project_ids(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    rc = ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_RESULT,
                                      ngx_http_taskmgr_object_answer);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(
        r, ctx,
        ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_PROJECT_CREATE),
        ngx_http_taskmgr_object_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->body_json);
        ngx_http_taskmgr_api_audit_params(r, q);
        ngx_http_taskmgr_idem_params(q, ctx);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_project_get(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_project_ids(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_PROJECT_GET,
                                   ngx_http_taskmgr_object_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->params[1]);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_project_update(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    version;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_project_ids(r, ctx, &rc) != NGX_OK
        || ngx_http_taskmgr_if_match_version(r,
                                             "If-Match must be the "
                                             "project's ETag",
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

    q = ngx_http_taskmgr_api_query(
        r, ctx,
        ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_PROJECT_UPDATE),
        ngx_http_taskmgr_object_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->params[1]);
        ngx_http_taskmgr_pg_param(q, &ctx->body_json);
        ngx_http_taskmgr_pg_param(q, version.len ? &version : NULL);
        ngx_http_taskmgr_api_audit_params(r, q);
        ngx_http_taskmgr_idem_params(q, ctx);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_project_delete(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    version;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_project_ids(r, ctx, &rc) != NGX_OK
        || ngx_http_taskmgr_if_match_version(r,
                                             "If-Match must be the "
                                             "project's ETag",
                                             &version, &rc)
            != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_PROJECT_DELETE,
                                   ngx_http_taskmgr_object_answer);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->params[1]);
        ngx_http_taskmgr_pg_param(q, version.len ? &version : NULL);
        ngx_http_taskmgr_api_audit_params(r, q);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}
