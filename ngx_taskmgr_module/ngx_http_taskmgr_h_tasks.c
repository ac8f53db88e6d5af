/*
 * Copyright (C) taskmgr developers
 *
 * /v1/workspaces/{ws}/tasks: list (keyset pages), create, get, patch,
 * soft delete, restore.  Membership, roles and tenancy are checked by the
 * tm_api functions in the same round trip as the work itself.
 */


#include "ngx_http_taskmgr_handlers.h"


#define NGX_HTTP_TASKMGR_LIMIT_DEFAULT 50
#define NGX_HTTP_TASKMGR_LIMIT_MAX     200
#define NGX_HTTP_TASKMGR_TS_LEN        (sizeof("2026-11-22T10:00:00.000Z") - 1)


static const char *ngx_http_taskmgr_statuses[] = { "todo", "in_progress",
                                                   "done", "archived", NULL };


/* clang-format off */
#define TM_TASK_FIELDS(title_required)                                       \
    { "title", NGX_HTTP_TASKMGR_F_STRING, title_required, 0, 1, 500,         \
      NULL, 0 },                                                             \
    { "description", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 0, 100000, NULL, 0 }, \
    { "status", NGX_HTTP_TASKMGR_F_ENUM, 0, 0, 0, 0,                         \
      ngx_http_taskmgr_statuses, 0 },                                        \
    { "priority", NGX_HTTP_TASKMGR_F_INT, 0, 0, 0, 4, NULL, 0 },             \
    { "due_at", NGX_HTTP_TASKMGR_F_TIME, 0, 1, 0, 0, NULL, 0 },              \
    { "assignee_id", NGX_HTTP_TASKMGR_F_UUID, 0, 1, 0, 0, NULL, 0 },         \
    { "project_id", NGX_HTTP_TASKMGR_F_UUID, 0, 1, 0, 0, NULL, 0 },          \
    { "parent_id", NGX_HTTP_TASKMGR_F_UUID, 0, 1, 0, 0, NULL, 0 },           \
    { "labels", NGX_HTTP_TASKMGR_F_STRINGS, 0, 1, 0, 50, NULL, 64 },         \
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }

ngx_http_taskmgr_field_t  ngx_http_taskmgr_task_create_fields[] = {
    TM_TASK_FIELDS(1)
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_task_patch_fields[] = {
    TM_TASK_FIELDS(0)
};
/* clang-format on */


static void      ngx_http_taskmgr_task_listed(ngx_http_taskmgr_pg_query_t *q);
static void      ngx_http_taskmgr_task_answer(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_task_bad_param(ngx_http_request_t *r,
                                                 ngx_str_t          *name,
                                                 const char         *message);
static ngx_int_t ngx_http_taskmgr_task_cursor(ngx_str_t *cursor, ngx_str_t *ts,
                                              ngx_str_t *id, ngx_pool_t *pool);
static ngx_int_t ngx_http_taskmgr_task_if_match(ngx_http_request_t *r,
                                                ngx_str_t          *version,
                                                ngx_int_t          *rc);
static ngx_int_t ngx_http_taskmgr_task_no_args(ngx_http_request_t *r,
                                               ngx_int_t          *rc);
static ngx_http_taskmgr_pg_query_t *ngx_http_taskmgr_task_query(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
    ngx_http_taskmgr_pg_handler_pt handler, ngx_uint_t with_id, ngx_int_t *rc);


ngx_int_t
ngx_http_taskmgr_h_task_list(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    u_char                      *p, *end, *amp, *eq, *dst;
    ngx_int_t                    rc, limit;
    ngx_str_t                    name, value, cursor, ts, id, lim;
    ngx_uint_t                   seen;
    ngx_http_taskmgr_pg_query_t *q;

    limit = NGX_HTTP_TASKMGR_LIMIT_DEFAULT;
    ngx_str_null(&cursor);
    seen = 0;

    p = r->args.data;
    end = r->args.data + r->args.len;

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        eq = ngx_strlchr(p, amp, '=');

        name.data = p;
        name.len = (eq ? eq : amp) - p;
        value.data = eq ? eq + 1 : amp;
        value.len = amp - value.data;

        p = amp + 1;

        if (name.len == 0) {
            continue;
        }

        /* unescape in place copies: names and values are short */
        dst = ngx_pnalloc(r->pool, name.len + value.len);
        if (dst == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        {
            u_char *s, *d;

            s = name.data;
            d = dst;
            ngx_unescape_uri(&d, &s, name.len, 0);
            name.data = dst;
            name.len = d - dst;

            s = value.data;
            dst = d;
            ngx_unescape_uri(&d, &s, value.len, 0);
            value.data = dst;
            value.len = d - dst;
        }

        if (name.len == 5 && ngx_strncmp(name.data, "limit", 5) == 0) {
            if (seen & 1) {
                return ngx_http_taskmgr_task_bad_param(r, &name, "given twice");
            }

            seen |= 1;
            limit = ngx_atoi(value.data, value.len);

            if (limit < 1 || limit > NGX_HTTP_TASKMGR_LIMIT_MAX) {
                return ngx_http_taskmgr_task_bad_param(
                    r, &name, "must be an integer from 1 to 200");
            }

        } else if (name.len == 6 && ngx_strncmp(name.data, "cursor", 6) == 0) {
            if (seen & 2) {
                return ngx_http_taskmgr_task_bad_param(r, &name, "given twice");
            }

            seen |= 2;
            cursor = value;

        } else {
            return ngx_http_taskmgr_task_bad_param(r, &name,
                                                   "unknown parameter");
        }
    }

    if (cursor.data
        && ngx_http_taskmgr_task_cursor(&cursor, &ts, &id, r->pool) != NGX_OK)
    {
        ngx_str_set(&name, "cursor");
        return ngx_http_taskmgr_task_bad_param(r, &name,
                                               "malformed or tampered");
    }

    q = ngx_http_taskmgr_task_query(r, ctx,
                                    cursor.data
                                        ? NGX_HTTP_TASKMGR_SQL_TASK_LIST_AFTER
                                        : NGX_HTTP_TASKMGR_SQL_TASK_LIST,
                                    ngx_http_taskmgr_task_listed, 0, &rc);
    if (q == NULL) {
        return rc;
    }

    lim.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (lim.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lim.len = ngx_sprintf(lim.data, "%i", limit) - lim.data;
    ctx->num = limit;

    ngx_http_taskmgr_pg_param(q, &lim);

    if (cursor.data) {
        ngx_http_taskmgr_pg_param(q, &ts);
        ngx_http_taskmgr_pg_param(q, &id);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/* adds Link: <…?limit=N&cursor=…>; rel="next" when there is a next page */
static void
ngx_http_taskmgr_task_listed(ngx_http_taskmgr_pg_query_t *q)
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
        len = sizeof("<?limit=&cursor=>; rel=\"next\"") - 1 + r->uri.len
            + NGX_INT_T_LEN + res.meta.len;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        /* the cursor is base64url: safe in a query string */
        link.data = p;
        link.len = ngx_sprintf(p, "<%V?limit=%i&cursor=%V>; rel=\"next\"",
                               &r->uri, ctx->num, &res.meta)
            - p;

        if (ngx_http_taskmgr_add_header(r, "Link", &link) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
}


ngx_int_t
ngx_http_taskmgr_h_task_create(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_task_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_CREATE,
                                    ngx_http_taskmgr_task_answer, 0, &rc);
    if (q == NULL) {
        return rc;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->body_json);

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_task_get(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_task_no_args(r, &rc) != NGX_OK) {
        return rc;
    }

    q = ngx_http_taskmgr_task_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_GET,
                                    ngx_http_taskmgr_task_answer, 1, &rc);
    if (q == NULL) {
        return rc;
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_task_update(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    version;
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_task_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_UPDATE,
                                    ngx_http_taskmgr_task_answer, 1, &rc);
    if (q == NULL) {
        return rc;
    }

    if (ngx_http_taskmgr_task_if_match(r, &version, &rc) != NGX_OK) {
        return rc;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->body_json);
    ngx_http_taskmgr_pg_param(q, &version);

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_task_delete(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    version;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_task_no_args(r, &rc) != NGX_OK) {
        return rc;
    }

    q = ngx_http_taskmgr_task_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_DELETE,
                                    ngx_http_taskmgr_api_done, 1, &rc);
    if (q == NULL) {
        return rc;
    }

    if (ngx_http_taskmgr_task_if_match(r, &version, &rc) != NGX_OK) {
        return rc;
    }

    ngx_http_taskmgr_pg_param(q, &version);

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_task_restore(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_task_no_args(r, &rc) != NGX_OK) {
        return rc;
    }

    q = ngx_http_taskmgr_task_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_RESTORE,
                                    ngx_http_taskmgr_task_answer, 1, &rc);
    if (q == NULL) {
        return rc;
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * A task in the body; meta "<id> <version>" gives ETag, and Location for
 * a created one.  GET honours If-None-Match.
 */
static void
ngx_http_taskmgr_task_answer(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_str_t                   id, version, etag, loc;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status >= NGX_HTTP_BAD_REQUEST
        || ngx_http_taskmgr_api_split_meta(&res.meta, &id, &version) != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
        return;
    }

    p = ngx_pnalloc(r->pool, version.len + 2);
    if (p == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    etag.data = p;
    *p++ = '"';
    p = ngx_cpymem(p, version.data, version.len);
    *p++ = '"';
    etag.len = p - etag.data;

    rc = ngx_http_taskmgr_api_etag(r, &etag);

    if (rc == NGX_ERROR) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED && (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        if (ngx_http_taskmgr_api_cache_private(r) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_taskmgr_api_finish(
            r, ngx_http_taskmgr_send(r, NGX_HTTP_NOT_MODIFIED, NULL, NULL));
        return;
    }

    if (res.status == NGX_HTTP_CREATED) {
        p = ngx_pnalloc(r->pool,
                        sizeof("/v1/workspaces//tasks/") - 1
                            + ctx->params[0].len + id.len);
        if (p == NULL) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        loc.data = p;
        loc.len =
            ngx_sprintf(p, "/v1/workspaces/%V/tasks/%V", &ctx->params[0], &id)
            - p;

        if (ngx_http_taskmgr_add_header(r, "Location", &loc) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
}


/* caller, workspace and (with_id) task id; malformed ids answer 404 */
static ngx_http_taskmgr_pg_query_t *
ngx_http_taskmgr_task_query(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
                            ngx_http_taskmgr_pg_handler_pt handler,
                            ngx_uint_t with_id, ngx_int_t *rc)
{
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", rc)
        != NGX_OK)
    {
        return NULL;
    }

    if (with_id
        && ngx_http_taskmgr_api_uuid_param(r, ctx, 1, "task not found", rc)
            != NGX_OK)
    {
        return NULL;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, stmt, handler);
    if (q == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->params[0]);

    if (with_id) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[1]);
    }

    return q;
}


static ngx_int_t
ngx_http_taskmgr_task_bad_param(ngx_http_request_t *r, ngx_str_t *name,
                                const char *message)
{
    u_char   *p;
    size_t    len;
    ngx_str_t esc, errors;

    if (name->len > 64) {
        name->len = 64;
    }

    if (ngx_http_taskmgr_json_escape(r->pool, name, &esc) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("[{\"field\":\"\",\"message\":\"\"}]") - 1 + esc.len
        + ngx_strlen(message);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    errors.data = p;
    errors.len =
        ngx_sprintf(p, "[{\"field\":\"%V\",\"message\":\"%s\"}]", &esc, message)
        - p;

    return ngx_http_taskmgr_send_problem_errors(
        r, NGX_HTTP_BAD_REQUEST, "validation_failed", "invalid query parameter",
        &errors);
}


/* NGX_OK, or NGX_DONE with *rc the finalize code of the 400 sent */
static ngx_int_t
ngx_http_taskmgr_task_no_args(ngx_http_request_t *r, ngx_int_t *rc)
{
    ngx_str_t name;

    if (r->args.len == 0) {
        return NGX_OK;
    }

    name.data = r->args.data;
    name.len = 0;

    while (name.len < r->args.len && name.data[name.len] != '='
           && name.data[name.len] != '&')
    {
        name.len++;
    }

    *rc = ngx_http_taskmgr_task_bad_param(r, &name, "unknown parameter");

    return NGX_DONE;
}


/* base64url("YYYY-MM-DDTHH:MM:SS.mmmZ|<uuid>") */
static ngx_int_t
ngx_http_taskmgr_task_cursor(ngx_str_t *cursor, ngx_str_t *ts, ngx_str_t *id,
                             ngx_pool_t *pool)
{
    ngx_str_t  raw;
    ngx_uint_t i;

    if (cursor->len == 0 || cursor->len > 128) {
        return NGX_DECLINED;
    }

    raw.data = ngx_pnalloc(pool, ngx_base64_decoded_length(cursor->len));
    if (raw.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(&raw, cursor) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (raw.len != NGX_HTTP_TASKMGR_TS_LEN + 1 + NGX_HTTP_TASKMGR_UUID_LEN
        || raw.data[NGX_HTTP_TASKMGR_TS_LEN] != '|')
    {
        return NGX_DECLINED;
    }

    ts->data = raw.data;
    ts->len = NGX_HTTP_TASKMGR_TS_LEN;

    for (i = 0; i < ts->len; i++) {
        if ("dddd-dd-ddTdd:dd:dd.dddZ"[i] == 'd') {
            if (ts->data[i] < '0' || ts->data[i] > '9') {
                return NGX_DECLINED;
            }

        } else if (ts->data[i] != "dddd-dd-ddTdd:dd:dd.dddZ"[i]) {
            return NGX_DECLINED;
        }
    }

    id->data = raw.data + NGX_HTTP_TASKMGR_TS_LEN + 1;
    id->len = NGX_HTTP_TASKMGR_UUID_LEN;

    return ngx_http_taskmgr_is_uuid(id);
}


/*
 * If-Match: "<version>" (or W/"…", or *).  version is left NULL when
 * there is no precondition; an unparsable one can never match: 412 is
 * sent and NGX_DONE returned with *rc its finalize code.
 */
static ngx_int_t
ngx_http_taskmgr_task_if_match(ngx_http_request_t *r, ngx_str_t *version,
                               ngx_int_t *rc)
{
    u_char          *p, *last;
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

    if (last - p > 2 && p[0] == 'W' && p[1] == '/') {
        p += 2;
    }

    if (last - p >= 3 && *p == '"' && last[-1] == '"') {
        p++;
        last--;
    }

    if (last - p < 1 || last - p > 10 || ngx_atoi(p, last - p) == NGX_ERROR
        || ngx_atoi(p, last - p) > 2147483647)
    {
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_PRECONDITION_FAILED,
                                            "precondition_failed",
                                            "If-Match must be the task's "
                                            "ETag");
        return NGX_DONE;
    }

    version->data = p;
    version->len = last - p;

    return NGX_OK;
}
