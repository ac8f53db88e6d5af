/*
 * Copyright (C) taskmgr developers
 *
 * /v1/workspaces/{ws}/tasks: list (keyset pages), create, get, patch,
 * soft delete, restore.  Membership, roles and tenancy are checked by the
 * tm_api functions in the same round trip as the work itself.
 */


#include "ngx_http_taskmgr_handlers.h"
#include <ngx_md5.h>


#define NGX_HTTP_TASKMGR_LIMIT_DEFAULT 50
#define NGX_HTTP_TASKMGR_LIMIT_MAX     200
#define NGX_HTTP_TASKMGR_TS_LEN        (sizeof("2026-11-22T10:00:00.000Z") - 1)
#define TM_TS_LEN                      NGX_HTTP_TASKMGR_TS_LEN

/* columns of tm_api.task_row */
#define TM_COL_HTTP_STATUS 0
#define TM_COL_DETAIL      1
#define TM_COL_ID          2
#define TM_COL_CREATED_AT  14
#define TM_COL_VERSION     18
#define TM_COL_LAST        19

#define TM_JSON_STRING 0
#define TM_JSON_RAW    1
#define TM_JSON_TIME   2

#define TM_FIELDS 17


typedef struct {
    ngx_str_t  key;
    int        col;
    ngx_uint_t type;
} ngx_http_taskmgr_task_field_t;


/* the task representation, in API.md order */
/* clang-format off */
static ngx_http_taskmgr_task_field_t  ngx_http_taskmgr_task_fields[] = {
    { ngx_string("{\"id\":"), 2, TM_JSON_STRING },
    { ngx_string(",\"workspace_id\":"), 3, TM_JSON_STRING },
    { ngx_string(",\"project_id\":"), 4, TM_JSON_STRING },
    { ngx_string(",\"parent_id\":"), 5, TM_JSON_STRING },
    { ngx_string(",\"title\":"), 6, TM_JSON_STRING },
    { ngx_string(",\"description\":"), 7, TM_JSON_STRING },
    { ngx_string(",\"status\":"), 8, TM_JSON_STRING },
    { ngx_string(",\"priority\":"), 9, TM_JSON_RAW },
    { ngx_string(",\"due_at\":"), 10, TM_JSON_TIME },
    { ngx_string(",\"assignee_id\":"), 11, TM_JSON_STRING },
    { ngx_string(",\"labels\":"), 12, TM_JSON_RAW },
    { ngx_string(",\"created_by\":"), 13, TM_JSON_STRING },
    { ngx_string(",\"created_at\":"), 14, TM_JSON_TIME },
    { ngx_string(",\"updated_at\":"), 15, TM_JSON_TIME },
    { ngx_string(",\"completed_at\":"), 16, TM_JSON_TIME },
    { ngx_string(",\"deleted_at\":"), 17, TM_JSON_TIME },
    { ngx_string(",\"version\":"), 18, TM_JSON_RAW }
};
/* clang-format on */


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
static ngx_int_t ngx_http_taskmgr_task_valid_time(u_char *p);
static void ngx_http_taskmgr_task_cached(ngx_http_request_t *r, ngx_int_t rc);
static ngx_int_t ngx_http_taskmgr_task_list_db(ngx_http_request_t         *r,
                                               ngx_http_taskmgr_api_ctx_t *ctx);
static ngx_int_t ngx_http_taskmgr_task_get_db(ngx_http_request_t         *r,
                                              ngx_http_taskmgr_api_ctx_t *ctx);
static void      ngx_http_taskmgr_task_written(ngx_http_request_t         *r,
                                               ngx_http_taskmgr_api_ctx_t *ctx,
                                               ngx_uint_t status, ngx_str_t *body);
static void ngx_http_taskmgr_task_bumped(ngx_http_request_t *r, ngx_int_t rc);


static ngx_str_t ngx_http_taskmgr_dash = ngx_string("-");
static ngx_str_t ngx_http_taskmgr_empty = ngx_null_string;
static ngx_int_t ngx_http_taskmgr_task_list_etag(ngx_http_request_t *r,
                                                 PGresult *res, int n,
                                                 ngx_str_t *cursor);
static ngx_int_t ngx_http_taskmgr_task_cursor(ngx_str_t *cursor, ngx_str_t *ts,
                                              ngx_str_t *id, ngx_pool_t *pool);
static ngx_int_t ngx_http_taskmgr_task_if_match(ngx_http_request_t *r,
                                                ngx_str_t          *version,
                                                ngx_int_t          *rc);
static ngx_int_t ngx_http_taskmgr_task_check(ngx_http_taskmgr_pg_query_t *q,
                                             ngx_int_t                   *rc);
static ngx_int_t ngx_http_taskmgr_task_send(ngx_http_request_t *r,
                                            ngx_uint_t status, ngx_str_t *body);
static u_char *ngx_http_taskmgr_task_time(u_char *dst, u_char *src, size_t len);
static ngx_int_t ngx_http_taskmgr_task_json(ngx_http_request_t *r,
                                            PGresult *res, int from, int to,
                                            ngx_str_t *cursor, ngx_str_t *out);
static ngx_int_t ngx_http_taskmgr_task_next_cursor(ngx_http_request_t *r,
                                                   PGresult *res, int row,
                                                   ngx_str_t *cursor);
static ngx_http_taskmgr_pg_query_t *ngx_http_taskmgr_task_query(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
    ngx_http_taskmgr_pg_handler_pt handler, ngx_uint_t with_id, ngx_int_t *rc);


ngx_int_t
ngx_http_taskmgr_h_task_list(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    u_char    *p, *end, *amp, *eq, *dst;
    ngx_int_t  rc, limit;
    ngx_str_t  name, value, cursor, ts, id, route;
    ngx_uint_t seen;

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
                return ngx_http_taskmgr_api_bad_arg(r, &name, "given twice");
            }

            seen |= 1;
            limit = ngx_atoi(value.data, value.len);

            if (limit < 1 || limit > NGX_HTTP_TASKMGR_LIMIT_MAX) {
                return ngx_http_taskmgr_api_bad_arg(
                    r, &name, "must be an integer from 1 to 200");
            }

        } else if (name.len == 6 && ngx_strncmp(name.data, "cursor", 6) == 0) {
            if (seen & 2) {
                return ngx_http_taskmgr_api_bad_arg(r, &name, "given twice");
            }

            seen |= 2;
            cursor = value;

        } else {
            return ngx_http_taskmgr_api_bad_arg(r, &name, "unknown parameter");
        }
    }

    if (cursor.data
        && ngx_http_taskmgr_task_cursor(&cursor, &ts, &id, r->pool) != NGX_OK)
    {
        ngx_str_set(&name, "cursor");
        return ngx_http_taskmgr_api_bad_arg(r, &name, "malformed or tampered");
    }

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", &rc)
        != NGX_OK)
    {
        return rc;
    }

    ctx->num = limit;
    ctx->str[0] = cursor;
    ctx->str[1] = ts;
    ctx->str[2] = id;

    /* the cache entry of this page: "l:<limit>:<cursor>" */
    route.len = sizeof("l::-") - 1 + NGX_INT_T_LEN + cursor.len;
    route.data = ngx_pnalloc(r->pool, route.len);
    if (route.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    route.len = ngx_sprintf(route.data, "l:%i:%V", limit,
                            cursor.data ? &cursor : &ngx_http_taskmgr_dash)
        - route.data;

    if (ngx_http_taskmgr_cache_lookup(r, &ctx->cache, &ctx->params[0], &route,
                                      ngx_http_taskmgr_task_cached)
        == NGX_OK)
    {
        return NGX_DONE;
    }

    return ngx_http_taskmgr_task_list_db(r, ctx);
}


/* the cache answered a lookup of a page (one path parameter) or a task */
static void
ngx_http_taskmgr_task_cached(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc == NGX_OK) {
        rc = ngx_http_taskmgr_api_send_hit(r, &ctx->cache);

    } else if (ctx->nparams == 1) {
        rc = ngx_http_taskmgr_task_list_db(r, ctx);

    } else {
        rc = ngx_http_taskmgr_task_get_db(r, ctx);
    }

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


/* the page from PostgreSQL: str[0] cursor, str[1] and str[2] its parts */
static ngx_int_t
ngx_http_taskmgr_task_list_db(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    lim;
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_task_query(r, ctx,
                                    ctx->str[0].data
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

    lim.len = ngx_sprintf(lim.data, "%i", ctx->num) - lim.data;

    ngx_http_taskmgr_pg_param(q, &lim);

    if (ctx->str[0].data) {
        ngx_http_taskmgr_pg_param(q, &ctx->str[1]);
        ngx_http_taskmgr_pg_param(q, &ctx->str[2]);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * The list answer: {"data":[…],"next_cursor":…} from up to limit + 1 rows;
 * with a next page also Link: <…?limit=N&cursor=…>; rel="next".
 */
static void
ngx_http_taskmgr_task_listed(ngx_http_taskmgr_pg_query_t *q)
{
    int                         n, nrows;
    u_char                     *p;
    size_t                      len;
    ngx_int_t                   rc;
    ngx_str_t                   link, cursor, body;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_task_check(q, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    nrows = PQntuples(q->res);
    n = ngx_min(nrows, (int) ctx->num);
    ngx_str_null(&cursor);

    if (nrows > n) {
        if (ngx_http_taskmgr_task_next_cursor(r, q->res, n - 1, &cursor)
            != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        len = sizeof("<?limit=&cursor=>; rel=\"next\"") - 1 + r->uri.len
            + NGX_INT_T_LEN + cursor.len;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        /* the cursor is base64url: safe in a query string */
        link.data = p;
        link.len = ngx_sprintf(p, "<%V?limit=%i&cursor=%V>; rel=\"next\"",
                               &r->uri, ctx->num, &cursor)
            - p;

        if (ngx_http_taskmgr_add_header(r, "Link", &link) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    if (ngx_http_taskmgr_task_json(r, q->res, 0, n, &cursor, &body) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the page's validator: its tasks' ids and versions, and the cursor
     * (cheaper than hashing the whole body) */
    rc = ngx_http_taskmgr_task_list_etag(r, q->res, n, &cursor);

    if (rc == NGX_ERROR) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED) {
        if (ngx_http_taskmgr_api_cache_private(r) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_taskmgr_api_finish(
            r, ngx_http_taskmgr_send(r, NGX_HTTP_NOT_MODIFIED, NULL, NULL));
        return;
    }

    if (ngx_http_taskmgr_cache_header(r, &ctx->cache) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_taskmgr_cache_store(r, &ctx->cache, &r->headers_out.etag->value,
                                 nrows > n ? &link : &ngx_http_taskmgr_empty,
                                 &body);

    ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_task_send(r, 200, &body));
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
    ngx_int_t rc;
    ngx_str_t route;

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", &rc)
            != NGX_OK
        || ngx_http_taskmgr_api_uuid_param(r, ctx, 1, "task not found", &rc)
            != NGX_OK)
    {
        return rc;
    }

    /* the cache entry of this task: "t:<id>" */
    route.len = 2 + ctx->params[1].len;
    route.data = ngx_pnalloc(r->pool, route.len);
    if (route.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(route.data, "t:%V", &ctx->params[1]);

    if (ngx_http_taskmgr_cache_lookup(r, &ctx->cache, &ctx->params[0], &route,
                                      ngx_http_taskmgr_task_cached)
        == NGX_OK)
    {
        return NGX_DONE;
    }

    return ngx_http_taskmgr_task_get_db(r, ctx);
}


static ngx_int_t
ngx_http_taskmgr_task_get_db(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

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

    q = ngx_http_taskmgr_task_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_DELETE,
                                    ngx_http_taskmgr_task_answer, 1, &rc);
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

    q = ngx_http_taskmgr_task_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_RESTORE,
                                    ngx_http_taskmgr_task_answer, 1, &rc);
    if (q == NULL) {
        return rc;
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * One task: ETag from its version, Location for a created one; GET
 * honours If-None-Match.  DELETE answers 204.
 */
static void
ngx_http_taskmgr_task_answer(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_str_t                   id, version, etag, loc, body;
    ngx_uint_t                  status;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_task_check(q, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (PQntuples(q->res) != 1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: statement %s answered %d rows",
                      ngx_http_taskmgr_sql_stmts[q->stmt].name,
                      PQntuples(q->res));
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    status = ngx_atoi((u_char *) PQgetvalue(q->res, 0, TM_COL_HTTP_STATUS),
                      PQgetlength(q->res, 0, TM_COL_HTTP_STATUS));

    if (status == NGX_HTTP_NO_CONTENT) {
        ngx_http_taskmgr_task_written(r, ctx, status, NULL);
        return;
    }

    id.data = (u_char *) PQgetvalue(q->res, 0, TM_COL_ID);
    id.len = PQgetlength(q->res, 0, TM_COL_ID);
    version.data = (u_char *) PQgetvalue(q->res, 0, TM_COL_VERSION);
    version.len = PQgetlength(q->res, 0, TM_COL_VERSION);

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
        if (ngx_http_taskmgr_api_cache_private(r) != NGX_OK
            || ngx_http_taskmgr_cache_header(r, &ctx->cache) != NGX_OK)
        {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_taskmgr_api_finish(
            r, ngx_http_taskmgr_send(r, NGX_HTTP_NOT_MODIFIED, NULL, NULL));
        return;
    }

    if (status == NGX_HTTP_CREATED) {
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

    if (ngx_http_taskmgr_task_json(r, q->res, 0, 1, NULL, &body) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        ngx_http_taskmgr_task_written(r, ctx, status, &body);
        return;
    }

    if (ngx_http_taskmgr_cache_header(r, &ctx->cache) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_taskmgr_cache_store(r, &ctx->cache, &etag, &ngx_http_taskmgr_empty,
                                 &body);

    ngx_http_taskmgr_api_finish(r,
                                ngx_http_taskmgr_task_send(r, status, &body));
}


/*
 * A write succeeded: the tenant's cache generation goes up before the
 * answer leaves, so no reader sees the old state afterwards.
 */
static void
ngx_http_taskmgr_task_written(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx,
                              ngx_uint_t status, ngx_str_t *body)
{
    ctx->num = status;

    if (body) {
        ctx->str[3] = *body;

    } else {
        ngx_str_null(&ctx->str[3]);
    }

    if (ngx_http_taskmgr_cache_bump(r, &ctx->params[0],
                                    ngx_http_taskmgr_task_bumped)
        == NGX_OK)
    {
        return;
    }

    ngx_http_taskmgr_task_bumped(r, NGX_OK);
}


static void
ngx_http_taskmgr_task_bumped(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ctx->num == NGX_HTTP_NO_CONTENT) {
        ngx_http_taskmgr_api_finish(
            r, ngx_http_taskmgr_send(r, NGX_HTTP_NO_CONTENT, NULL, NULL));
        return;
    }

    ngx_http_taskmgr_api_finish(
        r, ngx_http_taskmgr_task_send(r, ctx->num, &ctx->str[3]));
}


/*
 * Transport and SQL errors, then an error row (http_status >= 400).
 * NGX_OK, or NGX_DONE with *rc the finalize code of the answer sent.
 */
static ngx_int_t
ngx_http_taskmgr_task_check(ngx_http_taskmgr_pg_query_t *q, ngx_int_t *rc)
{
    ngx_int_t status;

    if (ngx_http_taskmgr_api_check(q, rc) != NGX_OK) {
        return NGX_DONE;
    }

    if (PQnfields(q->res) != TM_COL_LAST) {
        ngx_log_error(NGX_LOG_ERR, q->request->connection->log, 0,
                      "taskmgr: statement %s answered %d columns, "
                      "is the schema migrated?",
                      ngx_http_taskmgr_sql_stmts[q->stmt].name,
                      PQnfields(q->res));
        *rc = ngx_http_taskmgr_send_problem(
            q->request, NGX_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL);
        return NGX_DONE;
    }

    if (PQntuples(q->res) == 0) {
        return NGX_OK;
    }

    status = ngx_atoi((u_char *) PQgetvalue(q->res, 0, TM_COL_HTTP_STATUS),
                      PQgetlength(q->res, 0, TM_COL_HTTP_STATUS));

    if (status >= NGX_HTTP_BAD_REQUEST) {
        *rc = ngx_http_taskmgr_send_problem(
            q->request, status, ngx_http_taskmgr_api_status_code(status),
            PQgetvalue(q->res, 0, TM_COL_DETAIL));
        return NGX_DONE;
    }

    if (status < NGX_HTTP_OK) {
        *rc = ngx_http_taskmgr_send_problem(
            q->request, NGX_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL);
        return NGX_DONE;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_task_send(ngx_http_request_t *r, ngx_uint_t status,
                           ngx_str_t *body)
{
    ngx_http_taskmgr_result_t res;

    res.status = status;
    res.body = *body;
    ngx_str_null(&res.meta);

    return ngx_http_taskmgr_api_respond(r, &res);
}


/*
 * W/"<md5 of id:version of each task and the cursor>": any change to a
 * task bumps its version.  As ngx_http_taskmgr_api_etag().
 */
static ngx_int_t
ngx_http_taskmgr_task_list_etag(ngx_http_request_t *r, PGresult *res, int n,
                                ngx_str_t *cursor)
{
    int       row;
    u_char    digest[16], *p;
    ngx_str_t etag;
    ngx_md5_t md5;

    ngx_md5_init(&md5);

    for (row = 0; row < n; row++) {
        ngx_md5_update(&md5, PQgetvalue(res, row, TM_COL_ID),
                       PQgetlength(res, row, TM_COL_ID));
        ngx_md5_update(&md5, ":", 1);
        ngx_md5_update(&md5, PQgetvalue(res, row, TM_COL_VERSION),
                       PQgetlength(res, row, TM_COL_VERSION));
        ngx_md5_update(&md5, ";", 1);
    }

    ngx_md5_update(&md5, cursor->data, cursor->len);
    ngx_md5_final(digest, &md5);

    p = ngx_pnalloc(r->pool, sizeof("W/\"\"") - 1 + 32);
    if (p == NULL) {
        return NGX_ERROR;
    }

    etag.data = p;
    p = ngx_cpymem(p, "W/\"", 3);
    p = ngx_hex_dump(p, digest, 16);
    *p++ = '"';
    etag.len = p - etag.data;

    return ngx_http_taskmgr_api_etag(r, &etag);
}


/* "2026-11-22 10:00:00.12+00" (PostgreSQL, UTC) -> RFC 3339 with ms */
static u_char *
ngx_http_taskmgr_task_time(u_char *dst, u_char *src, size_t len)
{
    size_t i, n;

    if (len < 19 || src[10] != ' ') {
        /* not the shape PostgreSQL prints for UTC: pass it on */
        return ngx_cpymem(dst, src, ngx_min(len, TM_TS_LEN));
    }

    dst = ngx_cpymem(dst, src, 10);
    *dst++ = 'T';
    dst = ngx_cpymem(dst, src + 11, 8);
    *dst++ = '.';

    i = 19;

    if (i < len && src[i] == '.') {
        i++;
    }

    /* PostgreSQL drops trailing zeros of the fraction: pad to ms */
    for (n = 0; n < 3; n++) {
        if (i < len && src[i] >= '0' && src[i] <= '9') {
            *dst++ = src[i++];

        } else {
            *dst++ = '0';
        }
    }

    *dst++ = 'Z';

    return dst;
}


/*
 * Tasks rows [from, to) as JSON: one object when cursor is NULL, else the
 * list body with cursor (empty: null) as next_cursor.
 */
static ngx_int_t
ngx_http_taskmgr_task_json(ngx_http_request_t *r, PGresult *res, int from,
                           int to, ngx_str_t *cursor, ngx_str_t *out)
{
    int        row;
    u_char    *p, *v;
    size_t     len, vlen;
    ngx_uint_t i, pass;

    p = NULL;
    len = 0;

    for (pass = 0; pass < 2; pass++) {

        if (pass == 1) {
            out->data = ngx_pnalloc(r->pool, len);
            if (out->data == NULL) {
                return NGX_ERROR;
            }

            p = out->data;
        }

#define TM_PUT(s, n)                                                           \
    if (pass) {                                                                \
        p = ngx_cpymem(p, s, n);                                               \
    } else {                                                                   \
        len += n;                                                              \
    }

        if (cursor) {
            TM_PUT("{\"data\":[", sizeof("{\"data\":[") - 1);
        }

        for (row = from; row < to; row++) {

            if (row > from) {
                TM_PUT(",", 1);
            }

            for (i = 0; i < TM_FIELDS; i++) {
                TM_PUT(ngx_http_taskmgr_task_fields[i].key.data,
                       ngx_http_taskmgr_task_fields[i].key.len);

                if (PQgetisnull(res, row, ngx_http_taskmgr_task_fields[i].col))
                {
                    TM_PUT("null", 4);
                    continue;
                }

                v = (u_char *) PQgetvalue(res, row,
                                          ngx_http_taskmgr_task_fields[i].col);
                vlen =
                    PQgetlength(res, row, ngx_http_taskmgr_task_fields[i].col);

                switch (ngx_http_taskmgr_task_fields[i].type) {

                case TM_JSON_RAW:
                    TM_PUT(v, vlen);
                    break;

                case TM_JSON_TIME:
                    if (pass) {
                        *p++ = '"';
                        p = ngx_http_taskmgr_task_time(p, v, vlen);
                        *p++ = '"';

                    } else {
                        len += 2 + TM_TS_LEN;
                    }

                    break;

                default: /* TM_JSON_STRING */
                    if (pass) {
                        *p++ = '"';
                        p = ngx_http_taskmgr_json_escape_to(p, v, vlen);
                        *p++ = '"';

                    } else {
                        len += 2 + ngx_http_taskmgr_json_escaped_len(v, vlen);
                    }

                    break;
                }
            }

            TM_PUT("}", 1);
        }

        if (cursor) {
            if (cursor->len) {
                TM_PUT("],\"next_cursor\":\"",
                       sizeof("],\"next_cursor\":\"") - 1);
                TM_PUT(cursor->data, cursor->len);
                TM_PUT("\"}", 2);

            } else {
                TM_PUT("],\"next_cursor\":null}",
                       sizeof("],\"next_cursor\":null}") - 1);
            }
        }

#undef TM_PUT
    }

    out->len = p - out->data;

    if (out->len > len) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: task json overflow");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* base64url("<created_at>|<id>") of a row */
static ngx_int_t
ngx_http_taskmgr_task_next_cursor(ngx_http_request_t *r, PGresult *res, int row,
                                  ngx_str_t *cursor)
{
    u_char    buf[TM_TS_LEN + 1 + NGX_HTTP_TASKMGR_UUID_LEN], *p;
    ngx_str_t raw;

    if (PQgetisnull(res, row, TM_COL_CREATED_AT)
        || PQgetlength(res, row, TM_COL_ID) != NGX_HTTP_TASKMGR_UUID_LEN)
    {
        return NGX_ERROR;
    }

    p = ngx_http_taskmgr_task_time(
        buf, (u_char *) PQgetvalue(res, row, TM_COL_CREATED_AT),
        PQgetlength(res, row, TM_COL_CREATED_AT));

    if (p != buf + TM_TS_LEN) {
        return NGX_ERROR;
    }

    *p++ = '|';
    p = ngx_cpymem(p, PQgetvalue(res, row, TM_COL_ID),
                   NGX_HTTP_TASKMGR_UUID_LEN);

    raw.data = buf;
    raw.len = p - buf;

    cursor->data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(raw.len));
    if (cursor->data == NULL) {
        return NGX_ERROR;
    }

    ngx_encode_base64url(cursor, &raw);

    return NGX_OK;
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


/* a real calendar date and time of day in "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static ngx_int_t
ngx_http_taskmgr_task_valid_time(u_char *p)
{
    ngx_int_t y, mo, d, h, mi, sec, days;

    static ngx_int_t mdays[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    y = ngx_atoi(p, 4);
    mo = ngx_atoi(p + 5, 2);
    d = ngx_atoi(p + 8, 2);
    h = ngx_atoi(p + 11, 2);
    mi = ngx_atoi(p + 14, 2);
    sec = ngx_atoi(p + 17, 2);

    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) {
        return NGX_DECLINED;
    }

    days = mdays[mo - 1];

    if (mo == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        days = 29;
    }

    return d <= days ? NGX_OK : NGX_DECLINED;
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

    if (ngx_http_taskmgr_task_valid_time(ts->data) != NGX_OK) {
        return NGX_DECLINED;
    }

    id->data = raw.data + NGX_HTTP_TASKMGR_TS_LEN + 1;
    id->len = NGX_HTTP_TASKMGR_UUID_LEN;

    return ngx_http_taskmgr_is_uuid(id);
}


/*
 * If-Match: "<version>" (or *).  version is left NULL when
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

    /* If-Match compares strongly (RFC 9110): a weak validator never
     * matches */
    if (last - p > 2 && p[0] == 'W' && p[1] == '/') {
        p = last;
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
