/*
 * Copyright (C) taskmgr developers
 *
 * /v1/workspaces/{ws}/tasks: list (keyset pages), create, get, patch,
 * soft delete, restore.  Membership, roles and tenancy are checked by the
 * tm_api functions in the same round trip as the work itself.
 */


#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_query.h"
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

static const char *ngx_http_taskmgr_bulk_actions[] = { "update", "delete",
                                                       "restore", NULL };

/* ids and patch are checked by ngx_http_taskmgr_task_bulk_check() */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_task_bulk_fields[] = {
    { "action", NGX_HTTP_TASKMGR_F_ENUM, 1, 0, 0, 0,
      ngx_http_taskmgr_bulk_actions, 0 },
    { "ids", NGX_HTTP_TASKMGR_F_ANY, 1, 0, 0, 0, NULL, 0 },
    { "patch", NGX_HTTP_TASKMGR_F_ANY, 0, 0, 0, 0, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


#define NGX_HTTP_TASKMGR_BULK_MAX 500


static void ngx_http_taskmgr_task_listed(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_task_answer(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_task_cached(ngx_http_request_t *r, ngx_int_t rc);
static ngx_int_t ngx_http_taskmgr_task_list_db(ngx_http_request_t         *r,
                                               ngx_http_taskmgr_api_ctx_t *ctx);
static ngx_int_t ngx_http_taskmgr_task_get_db(ngx_http_request_t         *r,
                                              ngx_http_taskmgr_api_ctx_t *ctx);
static void      ngx_http_taskmgr_task_written(ngx_http_request_t         *r,
                                               ngx_http_taskmgr_api_ctx_t *ctx,
                                               ngx_uint_t status, ngx_str_t *body);
static void ngx_http_taskmgr_task_bumped(ngx_http_request_t *r, ngx_int_t rc);


static void      ngx_http_taskmgr_task_bulked(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_task_bulk_check(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx, ngx_int_t *rc);
static ngx_int_t ngx_http_taskmgr_task_bad_field(ngx_http_request_t *r,
                                                 u_char *field, size_t len,
                                                 const char *message);
static ngx_int_t ngx_http_taskmgr_task_permanent(ngx_http_request_t *r,
                                                 ngx_int_t          *rc);


static ngx_str_t ngx_http_taskmgr_empty = ngx_null_string;
static ngx_int_t ngx_http_taskmgr_task_list_etag(ngx_http_request_t *r,
                                                 PGresult *res, int from,
                                                 int to, ngx_str_t *cursor);
static ngx_int_t ngx_http_taskmgr_task_next_link(ngx_http_request_t      *r,
                                                 ngx_http_taskmgr_list_t *list,
                                                 const char              *name,
                                                 ngx_str_t               *value,
                                                 ngx_str_t               *link);
static ngx_int_t ngx_http_taskmgr_task_check(ngx_http_taskmgr_pg_query_t *q,
                                             ngx_int_t                   *rc);
static ngx_int_t ngx_http_taskmgr_task_send(ngx_http_request_t *r,
                                            ngx_uint_t status, ngx_str_t *body);
static u_char *ngx_http_taskmgr_task_time(u_char *dst, u_char *src, size_t len);
static ngx_int_t ngx_http_taskmgr_task_json(ngx_http_request_t *r,
                                            PGresult *res, int from, int to,
                                            ngx_str_t *cursor, ngx_str_t *out);
static ngx_http_taskmgr_pg_query_t *ngx_http_taskmgr_task_query(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
    ngx_http_taskmgr_pg_handler_pt handler, ngx_uint_t with_id, ngx_int_t *rc);


ngx_int_t
ngx_http_taskmgr_h_task_list(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                        rc;
    ngx_str_t                        route;
    ngx_http_taskmgr_list_t         *list;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    list = ngx_pcalloc(r->pool, sizeof(ngx_http_taskmgr_list_t));
    if (list == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

    rc = ngx_http_taskmgr_list_parse(r, list, alcf->search_offset_max);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_taskmgr_api_bad_arg(r, &list->bad_name,
                                            list->bad_message);
    }

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", &rc)
        != NGX_OK)
    {
        return rc;
    }

    ctx->num = list->limit;
    ctx->data = list;

    /* offset pages carry X-Total-Count, which the cache does not keep */
    if (list->offset_mode) {
        return ngx_http_taskmgr_task_list_db(r, ctx);
    }

    /* the cache entry of this page: every parameter that changes it */
    if (ngx_http_taskmgr_list_route(r, list, &route) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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


/*
 * The page from PostgreSQL: the default list (newest first, no filter)
 * through its own prepared statements, anything else through
 * tm_api.task_find with the fragments of ngx_http_taskmgr_query.c.
 */
static ngx_int_t
ngx_http_taskmgr_task_list_db(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    lim, off, yes, no;
    ngx_http_taskmgr_list_t     *list;
    ngx_http_taskmgr_list_sql_t  sql;
    ngx_http_taskmgr_pg_query_t *q;

    list = ctx->data;

    lim.data = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN);
    if (lim.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lim.len = ngx_sprintf(lim.data, "%i", list->limit) - lim.data;

    if (list->fast) {
        q = ngx_http_taskmgr_task_query(
            r, ctx,
            list->has_cursor ? NGX_HTTP_TASKMGR_SQL_TASK_LIST_AFTER
                             : NGX_HTTP_TASKMGR_SQL_TASK_LIST,
            ngx_http_taskmgr_task_listed, 0, &rc);
        if (q == NULL) {
            return rc;
        }

        ngx_http_taskmgr_pg_param(q, &lim);

        if (list->has_cursor) {
            /* created_at as PostgreSQL printed it, and id */
            ngx_http_taskmgr_pg_param(q, &list->after[0]);
            ngx_http_taskmgr_pg_param(q, &list->after[1]);
        }

        return ngx_http_taskmgr_api_submit(r, q);
    }

    if (ngx_http_taskmgr_list_sql(r, list, &sql) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: list query does not fit");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q = ngx_http_taskmgr_task_query(r, ctx, NGX_HTTP_TASKMGR_SQL_TASK_FIND,
                                    ngx_http_taskmgr_task_listed, 0, &rc);
    if (q == NULL) {
        return rc;
    }

    off.data = lim.data + lim.len;
    off.len = ngx_sprintf(off.data, "%i", list->offset) - off.data;
    ngx_str_set(&yes, "t");
    ngx_str_set(&no, "f");

    ngx_http_taskmgr_pg_param(q, &sql.where);
    ngx_http_taskmgr_pg_param(q, sql.after.data ? &sql.after : NULL);
    ngx_http_taskmgr_pg_param(q, &sql.order);
    ngx_http_taskmgr_pg_param(q, &lim);
    ngx_http_taskmgr_pg_param(q, &off);
    ngx_http_taskmgr_pg_param(q, list->offset_mode ? &yes : &no);
    ngx_http_taskmgr_pg_param(q, list->q.data ? &list->q : NULL);
    ngx_http_taskmgr_pg_param(q, list->ranked ? &yes : &no);
    ngx_http_taskmgr_pg_param(q, sql.gin.data ? &sql.gin : NULL);
    ngx_http_taskmgr_pg_param(q, &sql.args);
    ngx_http_taskmgr_pg_param(q, sql.split.data ? &sql.split : NULL);

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * The list answer: {"data":[…],"next_cursor":…} from up to limit + 1 rows;
 * with a next page also Link: <…?…&cursor=…>; rel="next" (offset pages:
 * page= or offset=, and X-Total-Count from the leading count row).
 */
static void
ngx_http_taskmgr_task_listed(ngx_http_taskmgr_pg_query_t *q)
{
    int                         n, nrows, from;
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_str_t                   link, cursor, body, total, v;
    ngx_uint_t                  more, capped;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_list_t    *list;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);
    list = ctx->data;

    if (ngx_http_taskmgr_task_check(q, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    nrows = PQntuples(q->res);
    from = 0;

    if (list->offset_mode) {
        if (nrows < 1 || !PQgetisnull(q->res, 0, TM_COL_ID)
            || PQgetisnull(q->res, 0, TM_COL_DETAIL))
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "taskmgr: task_find answered no count row");
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        total.data = (u_char *) PQgetvalue(q->res, 0, TM_COL_DETAIL);
        total.len = PQgetlength(q->res, 0, TM_COL_DETAIL);

        /* "10000+": the count stopped there, a lower bound */
        capped = (total.len > 1 && total.data[total.len - 1] == '+');

        if (capped) {
            total.len--;
        }

        ngx_str_set(&v, "true");

        if (ngx_http_taskmgr_add_header(r, "X-Total-Count", &total) != NGX_OK
            || (capped
                && ngx_http_taskmgr_add_header(r, "X-Total-Count-Capped", &v)
                    != NGX_OK))
        {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        from = 1;
    }

    n = ngx_min(nrows - from, (int) list->limit);
    more = (nrows - from > n);
    ngx_str_null(&cursor);
    ngx_str_null(&link);

    if (more) {
        if (!list->offset_mode) {
            if (ngx_http_taskmgr_list_cursor(r, list, q->res, from + n - 1,
                                             &cursor)
                != NGX_OK)
            {
                ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            rc = ngx_http_taskmgr_task_next_link(r, list, "cursor", &cursor,
                                                 &link);

        } else {
            p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
            if (p == NULL) {
                ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            v.data = p;

            if (list->page) {
                v.len = ngx_sprintf(p, "%i", list->page + 1) - p;
                rc =
                    ngx_http_taskmgr_task_next_link(r, list, "page", &v, &link);

            } else {
                v.len = ngx_sprintf(p, "%i", list->offset + list->limit) - p;
                rc = ngx_http_taskmgr_task_next_link(r, list, "offset", &v,
                                                     &link);
            }
        }

        if (rc != NGX_OK
            || ngx_http_taskmgr_add_header(r, "Link", &link) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    if (ngx_http_taskmgr_task_json(r, q->res, from, from + n, &cursor, &body)
        != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the page's validator: its tasks' ids and versions, and the cursor
     * (cheaper than hashing the whole body) */
    rc = ngx_http_taskmgr_task_list_etag(r, q->res, from, from + n, &cursor);

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

    if (!list->offset_mode) {
        ngx_http_taskmgr_cache_store(
            r, &ctx->cache, &r->headers_out.etag->value,
            more ? &link : &ngx_http_taskmgr_empty, &body);
    }

    ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_task_send(r, 200, &body));
}


/*
 * <uri?<the query without cursor, page, offset>&name=value>; rel="next";
 * value is base64url or digits, the query is the client's own with the
 * characters that would end the <...> or the header percent-encoded.
 */
static ngx_int_t
ngx_http_taskmgr_task_next_link(ngx_http_request_t      *r,
                                ngx_http_taskmgr_list_t *list, const char *name,
                                ngx_str_t *value, ngx_str_t *link)
{
    u_char    *p, ch;
    size_t     len;
    ngx_uint_t i;

    static u_char hex[] = "0123456789ABCDEF";

    len = sizeof("<?&=>; rel=\"next\"") - 1 + r->uri.len + 3 * list->base.len
        + ngx_strlen(name) + value->len;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    link->data = p;
    p = ngx_sprintf(p, "<%V?", &r->uri);

    for (i = 0; i < list->base.len; i++) {
        ch = list->base.data[i];

        if (ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>' || ch == '"') {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 0x0f];

        } else {
            *p++ = ch;
        }
    }

    if (list->base.len) {
        *p++ = '&';
    }

    p = ngx_sprintf(p, "%s=%V>; rel=\"next\"", name, value);
    link->len = p - link->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_h_task_create(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    rc =
        ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_TASK_ROW,
                                     ngx_http_taskmgr_task_answer);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    q = ngx_http_taskmgr_task_query(
        r, ctx,
        ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_TASK_CREATE),
        ngx_http_taskmgr_task_answer, 0, &rc);
    if (q == NULL) {
        return rc;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->body_json);
    ngx_http_taskmgr_api_audit_params(r, q);
    ngx_http_taskmgr_idem_params(q, ctx);

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

    rc =
        ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_TASK_ROW,
                                     ngx_http_taskmgr_task_answer);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    q = ngx_http_taskmgr_task_query(
        r, ctx,
        ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_TASK_UPDATE),
        ngx_http_taskmgr_task_answer, 1, &rc);
    if (q == NULL) {
        return rc;
    }

    if (ngx_http_taskmgr_if_match_version(r, "If-Match must be the task's ETag",
                                          &version, &rc)
        != NGX_OK)
    {
        return rc;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->body_json);
    ngx_http_taskmgr_pg_param(q, &version);
    ngx_http_taskmgr_api_audit_params(r, q);
    ngx_http_taskmgr_idem_params(q, ctx);

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_task_delete(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc, permanent;
    ngx_str_t                    version;
    ngx_http_taskmgr_pg_query_t *q;

    permanent = ngx_http_taskmgr_task_permanent(r, &rc);
    if (permanent == NGX_ERROR) {
        return rc;
    }

    q = ngx_http_taskmgr_task_query(r, ctx,
                                    permanent
                                        ? NGX_HTTP_TASKMGR_SQL_TASK_PURGE
                                        : NGX_HTTP_TASKMGR_SQL_TASK_DELETE,
                                    ngx_http_taskmgr_task_answer, 1, &rc);
    if (q == NULL) {
        return rc;
    }

    if (ngx_http_taskmgr_if_match_version(r, "If-Match must be the task's ETag",
                                          &version, &rc)
        != NGX_OK)
    {
        return rc;
    }

    ngx_http_taskmgr_pg_param(q, &version);
    ngx_http_taskmgr_api_audit_params(r, q);

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_task_restore(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    version;
    ngx_http_taskmgr_pg_query_t *q;

    rc =
        ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_TASK_ROW,
                                     ngx_http_taskmgr_task_answer);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    q = ngx_http_taskmgr_task_query(
        r, ctx,
        ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_TASK_RESTORE),
        ngx_http_taskmgr_task_answer, 1, &rc);
    if (q == NULL) {
        return rc;
    }

    if (ngx_http_taskmgr_if_match_version(r, "If-Match must be the task's ETag",
                                          &version, &rc)
        != NGX_OK)
    {
        return rc;
    }

    ngx_http_taskmgr_pg_param(q, &version);
    ngx_http_taskmgr_api_audit_params(r, q);
    ngx_http_taskmgr_idem_params(q, ctx);

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

    if (ngx_http_taskmgr_idem_failed(q) == NGX_DONE) {
        return;
    }

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
ngx_http_taskmgr_task_list_etag(ngx_http_request_t *r, PGresult *res, int from,
                                int to, ngx_str_t *cursor)
{
    int       row;
    u_char    digest[16], *p;
    ngx_str_t etag;
    ngx_md5_t md5;

    ngx_md5_init(&md5);

    for (row = from; row < to; row++) {
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


/*
 * DELETE's one parameter: permanent=true|false.  1 or 0; NGX_ERROR with
 * *rc the finalize code of the 400 sent.
 */
static ngx_int_t
ngx_http_taskmgr_task_permanent(ngx_http_request_t *r, ngx_int_t *rc)
{
    u_char   *p, *end, *amp, *eq;
    ngx_int_t permanent;
    ngx_str_t name, value;

    permanent = 0;
    p = r->args.data;
    end = p + r->args.len;

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        eq = ngx_strlchr(p, amp, '=');

        name.data = p;
        name.len = (eq ? eq : amp) - p;

        if (eq) {
            value.data = eq + 1;
            value.len = amp - value.data;

        } else {
            ngx_str_null(&value);
        }

        if (name.len != sizeof("permanent") - 1
            || ngx_strncmp(name.data, "permanent", name.len) != 0)
        {
            *rc = ngx_http_taskmgr_api_bad_arg(r, &name, "unknown parameter");
            return NGX_ERROR;
        }

        if (value.len == 4 && ngx_strncmp(value.data, "true", 4) == 0) {
            permanent = 1;

        } else if (value.len == 5 && ngx_strncmp(value.data, "false", 5) == 0) {
            permanent = 0;

        } else {
            *rc =
                ngx_http_taskmgr_api_bad_arg(r, &name, "must be true or false");
            return NGX_ERROR;
        }

        p = amp + 1;
    }

    return permanent;
}


ngx_int_t
ngx_http_taskmgr_h_task_bulk(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    rc = ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_RESULT,
                                      ngx_http_taskmgr_task_bulked);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_taskmgr_task_bulk_check(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    q = ngx_http_taskmgr_task_query(
        r, ctx, ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_TASK_BULK),
        ngx_http_taskmgr_task_bulked, 0, &rc);
    if (q == NULL) {
        return rc;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->body_json);
    ngx_http_taskmgr_api_audit_params(r, q);
    ngx_http_taskmgr_idem_params(q, ctx);

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * ids: 1 to 500 distinct task ids; patch: with update only, a task patch.
 * NGX_OK, or NGX_DONE with *rc the finalize code of the answer sent.
 */
static ngx_int_t
ngx_http_taskmgr_task_bulk_check(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx, ngx_int_t *rc)
{
    u_char     *p, *d, field[32];
    size_t      i, j, n, len;
    json_t     *ids, *patch, *item;
    ngx_str_t   action, id, errors, prefixed;
    ngx_uint_t  status;
    const char *s;

    static const char key[] = "\"field\":\"";

    ids = json_object_get(ctx->body, "ids");

    if (!json_is_array(ids)) {
        *rc = ngx_http_taskmgr_task_bad_field(r, (u_char *) "ids", 3,
                                              "must be an array of task ids");
        return NGX_DONE;
    }

    n = json_array_size(ids);

    if (n < 1 || n > NGX_HTTP_TASKMGR_BULK_MAX) {
        *rc = ngx_http_taskmgr_task_bad_field(r, (u_char *) "ids", 3,
                                              "must hold 1 to 500 ids");
        return NGX_DONE;
    }

    for (i = 0; i < n; i++) {
        item = json_array_get(ids, i);
        len = ngx_sprintf(field, "ids[%uz]", i) - field;

        id.data = (u_char *) json_string_value(item);
        id.len = json_is_string(item) ? json_string_length(item) : 0;

        if (id.data == NULL || ngx_http_taskmgr_is_uuid(&id) != NGX_OK) {
            *rc = ngx_http_taskmgr_task_bad_field(r, field, len,
                                                  "must be a task id (UUID)");
            return NGX_DONE;
        }

        for (j = 0; j < i; j++) {
            s = json_string_value(json_array_get(ids, j));

            if (ngx_strncasecmp((u_char *) s, id.data, id.len) == 0) {
                *rc = ngx_http_taskmgr_task_bad_field(r, field, len,
                                                      "is a duplicate");
                return NGX_DONE;
            }
        }
    }

    if (ngx_http_taskmgr_json_string(ctx->body, "action", &action) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    patch = json_object_get(ctx->body, "patch");

    if (action.len != sizeof("update") - 1
        || ngx_strncmp(action.data, "update", action.len) != 0)
    {
        if (patch != NULL) {
            *rc = ngx_http_taskmgr_task_bad_field(r, (u_char *) "patch", 5,
                                                  "only with action update");
            return NGX_DONE;
        }

        return NGX_OK;
    }

    if (!json_is_object(patch)) {
        *rc = ngx_http_taskmgr_task_bad_field(
            r, (u_char *) "patch", 5,
            patch ? "must be an object" : "is required with action update");
        return NGX_DONE;
    }

    switch (ngx_http_taskmgr_json_validate(
        r, patch, ngx_http_taskmgr_task_patch_fields, &status, &errors))
    {
    case NGX_OK:
        return NGX_OK;

    case NGX_DECLINED:
        break;

    default:
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    /* the patch's fields are named patch.<field> */
    n = 0;
    for (p = errors.data; p < errors.data + errors.len; p++) {
        if (ngx_strncmp(p, key, sizeof(key) - 1) == 0) {
            n++;
        }
    }

    prefixed.data = ngx_pnalloc(r->pool, errors.len + n * 6);
    if (prefixed.data == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    d = prefixed.data;
    p = errors.data;

    while (p < errors.data + errors.len) {
        if ((size_t) (errors.data + errors.len - p) >= sizeof(key) - 1
            && ngx_strncmp(p, key, sizeof(key) - 1) == 0)
        {
            d = ngx_cpymem(d, key, sizeof(key) - 1);
            d = ngx_cpymem(d, "patch.", 6);
            p += sizeof(key) - 1;
            continue;
        }

        *d++ = *p++;
    }

    prefixed.len = d - prefixed.data;

    *rc = ngx_http_taskmgr_send_problem_errors(
        r, status, "validation_failed",
        status == NGX_HTTP_BAD_REQUEST ? "the body does not match this endpoint"
                                       : "some fields are invalid",
        &prefixed);
    return NGX_DONE;
}


/* 400 validation_failed naming one body field */
static ngx_int_t
ngx_http_taskmgr_task_bad_field(ngx_http_request_t *r, u_char *field,
                                size_t len, const char *message)
{
    u_char   *p;
    ngx_str_t errors;

    p = ngx_pnalloc(r->pool,
                    sizeof("[{\"field\":\"\",\"message\":\"\"}]") - 1 + len
                        + ngx_strlen(message));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    errors.data = p;
    errors.len = ngx_sprintf(p, "[{\"field\":\"%*s\",\"message\":\"%s\"}]", len,
                             field, message)
        - p;

    return ngx_http_taskmgr_send_problem_errors(
        r, NGX_HTTP_BAD_REQUEST, "validation_failed",
        "the body does not match this endpoint", &errors);
}


/* 200 {"ids":[…]}: the tenant's cache generation goes up once */
static void
ngx_http_taskmgr_task_bulked(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_idem_failed(q) == NGX_DONE) {
        return;
    }

    if (ngx_http_taskmgr_api_expect(q, &res, NGX_HTTP_OK) != NGX_OK) {
        return;
    }

    ngx_http_taskmgr_task_written(r, ctx, res.status, &res.body);
}
