/*
 * Copyright (C) taskmgr developers
 *
 * The task listing query language.  The SQL this file writes is made of
 * the fixed fragments below, column and type names of the static tables,
 * and parameter numbers: every value of the client is an element of the
 * p_args array ($2[n] in tm_api.task_find) or the search text ($3).
 */


#include "ngx_http_taskmgr_query.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>


#define TM_T_ENUM  0
#define TM_T_INT   1
#define TM_T_UUID  2
#define TM_T_TIME  3
#define TM_T_LABEL 4

#define TM_OP_EQ  0
#define TM_OP_NE  1
#define TM_OP_LT  2
#define TM_OP_LTE 3
#define TM_OP_GT  4
#define TM_OP_GTE 5
#define TM_OP_IN  6
#define TM_OP_NIN 7
#define TM_OP_IS  8

#define TM_KEY_CREATED_AT 0
#define TM_KEY_DUE_AT     2
#define TM_KEY_PRIORITY   3
#define TM_KEY_STATUS     5
#define TM_KEY_RANK       6
#define TM_KEY_ID         7

#define TM_FIELD_STATUS   0
#define TM_FIELD_PRIORITY 1
#define TM_SPLIT_MAX      40 /* 4 statuses x 5 priorities x NULL or not */

#define TM_CURSOR_VERSION 1
#define TM_DIGEST_LEN     16
#define TM_MAC_LEN        NGX_HTTP_TASKMGR_HMAC_LEN
#define TM_VALUE_NULL     0xffff
#define TM_SQL_MAX        16384
#define TM_GIN_MAX        1024
#define TM_ARGS_MAX                                                            \
    (NGX_HTTP_TASKMGR_LIST_FILTER_MAX + NGX_HTTP_TASKMGR_LIST_KEYS)

#define TM_SEEN_LIMIT    0x01
#define TM_SEEN_CURSOR   0x02
#define TM_SEEN_PAGE     0x04
#define TM_SEEN_PER_PAGE 0x08
#define TM_SEEN_OFFSET   0x10
#define TM_SEEN_SORT     0x20
#define TM_SEEN_Q        0x40
#define TM_SEEN_DELETED  0x80


typedef struct {
    ngx_str_t   name;
    const char *col;
    const char *type; /* SQL type of the bound value */
    ngx_uint_t  kind;
    ngx_uint_t  nullable;
    ngx_uint_t  ordered; /* lt, lte, gt, gte make sense */
} ngx_http_taskmgr_filter_field_t;


typedef struct {
    ngx_str_t   name;
    const char *expr;
    const char *type;
    int         col; /* of tm_api.task_row */
    ngx_uint_t  nullable;
} ngx_http_taskmgr_sort_field_t;


typedef struct {
    u_char *p;
    u_char *last;
} ngx_http_taskmgr_buf_t;


/* clang-format off */
static ngx_http_taskmgr_filter_field_t  ngx_http_taskmgr_filter_fields[] = {
    { ngx_string("status"), "t.status", "text", TM_T_ENUM, 0, 0 },
    { ngx_string("priority"), "t.priority", "smallint", TM_T_INT, 0, 1 },
    { ngx_string("assignee_id"), "t.assignee_id", "uuid", TM_T_UUID, 1, 1 },
    { ngx_string("project_id"), "t.project_id", "uuid", TM_T_UUID, 1, 1 },
    { ngx_string("parent_id"), "t.parent_id", "uuid", TM_T_UUID, 1, 1 },
    { ngx_string("label"), "t.labels", "text", TM_T_LABEL, 0, 0 },
    { ngx_string("due_at"), "t.due_at", "timestamptz", TM_T_TIME, 1, 1 },
    { ngx_string("created_at"), "t.created_at", "timestamptz", TM_T_TIME,
      0, 1 },
    { ngx_string("updated_at"), "t.updated_at", "timestamptz", TM_T_TIME,
      0, 1 },
    { ngx_string("completed_at"), "t.completed_at", "timestamptz", TM_T_TIME,
      1, 1 }
};

static ngx_str_t  ngx_http_taskmgr_filter_ops[] = {
    ngx_string("eq"), ngx_string("ne"), ngx_string("lt"), ngx_string("lte"),
    ngx_string("gt"), ngx_string("gte"), ngx_string("in"), ngx_string("nin"),
    ngx_string("is")
};

static const char  *ngx_http_taskmgr_cmp[] = {
    "=", "<>", "<", "<=", ">", ">="
};

/* the user's sort fields, then the rank of a search and the tiebreak */
static ngx_http_taskmgr_sort_field_t  ngx_http_taskmgr_sort_fields[] = {
    { ngx_string("created_at"), "t.created_at", "timestamptz", 14, 0 },
    { ngx_string("updated_at"), "t.updated_at", "timestamptz", 15, 0 },
    { ngx_string("due_at"), "t.due_at", "timestamptz", 10, 1 },
    { ngx_string("priority"), "t.priority", "smallint", 9, 0 },
    { ngx_string("title"), "t.title", "text", 6, 0 },
    { ngx_string("status"), "t.status", "text", 8, 0 },
    { ngx_string("rank"),
      "ts_rank(t.search, websearch_to_tsquery('english', $3))", "real", 1,
      0 },
    { ngx_string("id"), "t.id", "uuid", 2, 0 }
};
/* clang-format on */

static const char *ngx_http_taskmgr_list_statuses[] = { "todo", "in_progress",
                                                        "done", "archived",
                                                        NULL };

/* the values of a split sort key, ascending (as PostgreSQL orders them) */
static const char *ngx_http_taskmgr_split_statuses[] = { "archived", "done",
                                                         "in_progress",
                                                         "todo" };
static const char *ngx_http_taskmgr_split_priorities[] = { "0", "1", "2", "3",
                                                           "4" };


static ngx_int_t ngx_http_taskmgr_list_bad(ngx_http_taskmgr_list_t *list,
                                           ngx_str_t               *name,
                                           const char              *message);
static ngx_int_t ngx_http_taskmgr_list_unescape(ngx_pool_t *pool, ngx_str_t *s,
                                                ngx_uint_t plus);
static ngx_int_t ngx_http_taskmgr_list_number(ngx_str_t *v, ngx_int_t min,
                                              ngx_int_t max);
static ngx_int_t ngx_http_taskmgr_list_sort(ngx_http_taskmgr_list_t *list,
                                            ngx_str_t               *value);
static ngx_int_t ngx_http_taskmgr_list_filter(ngx_http_taskmgr_list_t *list,
                                              ngx_str_t               *name,
                                              ngx_str_t               *value);
static ngx_int_t ngx_http_taskmgr_list_value(ngx_uint_t kind, ngx_str_t *v);
static ngx_int_t ngx_http_taskmgr_list_text_ok(ngx_str_t *v, size_t max_chars);
static ngx_int_t ngx_http_taskmgr_list_time_ok(ngx_str_t *v);
static ngx_int_t ngx_http_taskmgr_list_finish(ngx_http_request_t      *r,
                                              ngx_http_taskmgr_list_t *list);
static ngx_int_t ngx_http_taskmgr_list_canon(ngx_http_request_t      *r,
                                             ngx_http_taskmgr_list_t *list);
static ngx_int_t ngx_http_taskmgr_list_decode(ngx_http_request_t      *r,
                                              ngx_http_taskmgr_list_t *list);
static void      ngx_http_taskmgr_list_digest(ngx_str_t *in, u_char *out);
static ngx_int_t ngx_http_taskmgr_list_mac(u_char *p, size_t len, u_char *mac);
static void ngx_http_taskmgr_put(ngx_http_taskmgr_buf_t *b, const char *fmt,
                                 ...);
static void ngx_http_taskmgr_put_key(ngx_http_taskmgr_buf_t      *b,
                                     ngx_http_taskmgr_list_key_t *k,
                                     ngx_uint_t arg, ngx_uint_t null,
                                     ngx_uint_t eq);
static void ngx_http_taskmgr_list_order(ngx_http_taskmgr_buf_t  *b,
                                        ngx_http_taskmgr_list_t *list,
                                        ngx_uint_t               from);
static void ngx_http_taskmgr_list_after(ngx_http_taskmgr_buf_t  *b,
                                        ngx_http_taskmgr_list_t *list,
                                        ngx_uint_t from, ngx_uint_t first);
static ngx_uint_t ngx_http_taskmgr_list_allows(ngx_http_taskmgr_list_t *list,
                                               ngx_uint_t f, ngx_str_t *v);
static ngx_uint_t ngx_http_taskmgr_list_same(ngx_str_t *a, ngx_str_t *b);
static ngx_uint_t ngx_http_taskmgr_list_has(ngx_str_t *l, ngx_str_t *v);
static ngx_int_t  ngx_http_taskmgr_list_split(ngx_http_request_t      *r,
                                              ngx_http_taskmgr_list_t *list,
                                              ngx_uint_t               nsplit,
                                              ngx_uint_t nulls, ngx_uint_t first,
                                              ngx_str_t *split);


static ngx_int_t
ngx_http_taskmgr_list_bad(ngx_http_taskmgr_list_t *list, ngx_str_t *name,
                          const char *message)
{
    list->bad_name = *name;
    list->bad_message = message;

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_taskmgr_list_parse(ngx_http_request_t      *r,
                            ngx_http_taskmgr_list_t *list,
                            ngx_uint_t               search_max)
{
    u_char    *p, *end, *amp, *eq, *b;
    size_t     len;
    ngx_int_t  n, per_page;
    ngx_str_t  name, value, raw;
    ngx_uint_t seen, bit, position;

    list->limit = 50;
    per_page = 0;
    seen = 0;

    list->base.data = ngx_pnalloc(r->pool, r->args.len + 1);
    if (list->base.data == NULL) {
        return NGX_ERROR;
    }

    b = list->base.data;

    p = r->args.data;
    end = r->args.data + r->args.len;

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        eq = ngx_strlchr(p, amp, '=');

        raw.data = p;
        raw.len = amp - p;

        name.data = p;
        name.len = (eq ? eq : amp) - p;
        value.data = eq ? eq + 1 : amp;
        value.len = amp - value.data;

        p = amp + 1;

        if (name.len == 0) {
            continue;
        }

        if (ngx_http_taskmgr_list_unescape(r->pool, &name, 0) != NGX_OK) {
            return NGX_ERROR;
        }

        bit = 0;
        position = 0;

        if (name.len == 5 && ngx_strncmp(name.data, "limit", 5) == 0) {
            bit = TM_SEEN_LIMIT;

        } else if (name.len == 6 && ngx_strncmp(name.data, "cursor", 6) == 0) {
            bit = TM_SEEN_CURSOR;
            position = 1;

        } else if (name.len == 4 && ngx_strncmp(name.data, "page", 4) == 0) {
            bit = TM_SEEN_PAGE;
            position = 1;

        } else if (name.len == 8 && ngx_strncmp(name.data, "per_page", 8) == 0)
        {
            bit = TM_SEEN_PER_PAGE;

        } else if (name.len == 6 && ngx_strncmp(name.data, "offset", 6) == 0) {
            bit = TM_SEEN_OFFSET;
            position = 1;

        } else if (name.len == 4 && ngx_strncmp(name.data, "sort", 4) == 0) {
            bit = TM_SEEN_SORT;

        } else if (name.len == 1 && name.data[0] == 'q') {
            bit = TM_SEEN_Q;

        } else if (name.len == 7 && ngx_strncmp(name.data, "deleted", 7) == 0) {
            bit = TM_SEEN_DELETED;

        } else if (name.len < 7 || ngx_strncmp(name.data, "filter[", 7) != 0) {
            return ngx_http_taskmgr_list_bad(list, &name, "unknown parameter");
        }

        if (bit) {
            if (seen & bit) {
                return ngx_http_taskmgr_list_bad(list, &name, "given twice");
            }

            seen |= bit;
        }

        if (!position) {
            /* the query string of the next page keeps this parameter */
            if (b != list->base.data) {
                *b++ = '&';
            }

            b = ngx_cpymem(b, raw.data, raw.len);
        }

        if (value.len > NGX_HTTP_TASKMGR_LIST_CURSOR_MAX * 3) {
            return ngx_http_taskmgr_list_bad(list, &name, "is too long");
        }

        if (ngx_http_taskmgr_list_unescape(r->pool, &value, bit == TM_SEEN_Q)
            != NGX_OK) {
            return NGX_ERROR;
        }

        switch (bit) {

        case TM_SEEN_LIMIT:
            list->limit = ngx_http_taskmgr_list_number(&value, 1, 200);
            if (list->limit == NGX_ERROR) {
                return ngx_http_taskmgr_list_bad(
                    list, &name, "must be an integer from 1 to 200");
            }
            break;

        case TM_SEEN_PER_PAGE:
            per_page = ngx_http_taskmgr_list_number(&value, 1, 200);
            if (per_page == NGX_ERROR) {
                return ngx_http_taskmgr_list_bad(
                    list, &name, "must be an integer from 1 to 200");
            }
            break;

        case TM_SEEN_PAGE:
            n = ngx_http_taskmgr_list_number(
                &value, 1, NGX_HTTP_TASKMGR_LIST_OFFSET_MAX + 1);
            if (n == NGX_ERROR) {
                return ngx_http_taskmgr_list_bad(list, &name,
                                                 "must be an integer from 1");
            }
            list->page = n;
            break;

        case TM_SEEN_OFFSET:
            list->offset = ngx_http_taskmgr_list_number(
                &value, 0, NGX_HTTP_TASKMGR_LIST_OFFSET_MAX);
            if (list->offset == NGX_ERROR) {
                return ngx_http_taskmgr_list_bad(
                    list, &name, "must be an integer from 0 to 100000");
            }
            break;

        case TM_SEEN_CURSOR:
            if (value.len == 0 || value.len > NGX_HTTP_TASKMGR_LIST_CURSOR_MAX)
            {
                return ngx_http_taskmgr_list_bad(list, &name,
                                                 "malformed or tampered");
            }
            list->cursor = value;
            list->has_cursor = 1;
            break;

        case TM_SEEN_SORT:
            if (ngx_http_taskmgr_list_sort(list, &value) != NGX_OK) {
                return ngx_http_taskmgr_list_bad(list, &name,
                                                 list->bad_message);
            }
            break;

        case TM_SEEN_Q:
            if (value.len == 0
                || ngx_http_taskmgr_list_text_ok(&value,
                                                 NGX_HTTP_TASKMGR_LIST_Q_MAX)
                    != NGX_OK)
            {
                return ngx_http_taskmgr_list_bad(
                    list, &name, "must be 1 to 256 characters of text");
            }
            list->q = value;
            break;

        case TM_SEEN_DELETED:
            if (value.len == 7 && ngx_strncmp(value.data, "include", 7) == 0) {
                list->deleted = NGX_HTTP_TASKMGR_DELETED_INCLUDE;

            } else if (value.len == 4
                       && ngx_strncmp(value.data, "only", 4) == 0) {
                list->deleted = NGX_HTTP_TASKMGR_DELETED_ONLY;

            } else {
                return ngx_http_taskmgr_list_bad(list, &name,
                                                 "must be include or only");
            }
            break;

        default: /* filter[...] */
            if (ngx_http_taskmgr_list_filter(list, &name, &value) != NGX_OK) {
                return ngx_http_taskmgr_list_bad(list, &name,
                                                 list->bad_message);
            }
            break;
        }
    }

    list->base.len = b - list->base.data;

    /* offset pages: page and per_page (API.md), or offset and limit */

    if ((seen & TM_SEEN_PAGE) && (seen & TM_SEEN_OFFSET)) {
        ngx_str_set(&name, "offset");
        return ngx_http_taskmgr_list_bad(list, &name,
                                         "cannot be combined with page");
    }

    if ((seen & TM_SEEN_PER_PAGE) && (seen & TM_SEEN_LIMIT)) {
        ngx_str_set(&name, "per_page");
        return ngx_http_taskmgr_list_bad(list, &name,
                                         "cannot be combined with limit");
    }

    if ((seen & TM_SEEN_PER_PAGE) && (seen & TM_SEEN_OFFSET)) {
        ngx_str_set(&name, "per_page");
        return ngx_http_taskmgr_list_bad(list, &name,
                                         "goes with page, not offset");
    }

    if (seen & (TM_SEEN_PAGE | TM_SEEN_PER_PAGE | TM_SEEN_OFFSET)) {
        list->offset_mode = 1;

        if (seen & TM_SEEN_PER_PAGE) {
            list->limit = per_page;
        }

        if (seen & (TM_SEEN_PAGE | TM_SEEN_PER_PAGE)) {
            if (list->page == 0) {
                list->page = 1;
            }

            if ((list->page - 1) * list->limit
                > NGX_HTTP_TASKMGR_LIST_OFFSET_MAX) {
                ngx_str_set(&name, "page");
                return ngx_http_taskmgr_list_bad(
                    list, &name, "reaches past 100000 tasks: use the cursor");
            }

            list->offset = (list->page - 1) * list->limit;
        }

        if (list->has_cursor) {
            ngx_str_set(&name, "cursor");
            return ngx_http_taskmgr_list_bad(
                list, &name, "cannot be combined with page or offset");
        }

        /*
         * a search's offset pages end at search_max matches: reaching a
         * deep offset walks the sort's index and reads the heap row of
         * every task passed to test the words (a common word at offset
         * 9,950 of the bench's 1,000,000 tasks: 62-64 ms p50, 74-83 p99);
         * the cursor reaches every match at the cost of one page
         */

        if (list->q.data != NULL
            && (ngx_uint_t) (list->offset + list->limit) > search_max)
        {
            if (list->page) {
                ngx_str_set(&name, "page");
            } else {
                ngx_str_set(&name, "offset");
            }

            len = sizeof("with q, offset pages end at the first  matches: "
                         "use the cursor")
                + NGX_INT_T_LEN;

            p = ngx_pnalloc(r->pool, len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            *ngx_snprintf(p, len - 1,
                          "with q, offset pages end at the first %ui matches: "
                          "use the cursor",
                          search_max) = '\0';

            return ngx_http_taskmgr_list_bad(list, &name, (const char *) p);
        }
    }

    return ngx_http_taskmgr_list_finish(r, list);
}


/* a copy, %XX decoded; plus: '+' is a space too (form encoding) */
static ngx_int_t
ngx_http_taskmgr_list_unescape(ngx_pool_t *pool, ngx_str_t *s, ngx_uint_t plus)
{
    u_char    *src, *dst, *d;
    ngx_uint_t i;

    dst = ngx_pnalloc(pool, s->len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    src = s->data;
    d = dst;
    ngx_unescape_uri(&d, &src, s->len, 0);

    s->data = dst;
    s->len = d - dst;

    if (plus) {
        for (i = 0; i < s->len; i++) {
            if (s->data[i] == '+') {
                s->data[i] = ' ';
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_list_number(ngx_str_t *v, ngx_int_t min, ngx_int_t max)
{
    ngx_int_t n;

    if (v->len == 0 || v->len > 7) {
        return NGX_ERROR;
    }

    n = ngx_atoi(v->data, v->len);

    if (n == NGX_ERROR || n < min || n > max) {
        return NGX_ERROR;
    }

    return n;
}


/* sort=-priority,due_at: known fields, each once, at most 6 */
static ngx_int_t
ngx_http_taskmgr_list_sort(ngx_http_taskmgr_list_t *list, ngx_str_t *value)
{
    u_char    *p, *end, *comma;
    ngx_str_t  f;
    ngx_uint_t i, k, desc, used;

    p = value->data;
    end = p + value->len;
    used = 0;
    list->nkeys = 0;

    if (value->len == 0) {
        list->bad_message = "must name at least one field";
        return NGX_DECLINED;
    }

    while (p <= end) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        f.data = p;
        f.len = comma - p;
        p = comma + 1;

        desc = 0;

        if (f.len && f.data[0] == '-') {
            desc = 1;
            f.data++;
            f.len--;
        }

        k = TM_KEY_RANK;

        for (i = 0; i < TM_KEY_RANK; i++) {
            if (f.len == ngx_http_taskmgr_sort_fields[i].name.len
                && ngx_strncmp(f.data,
                               ngx_http_taskmgr_sort_fields[i].name.data, f.len)
                    == 0)
            {
                k = i;
                break;
            }
        }

        if (k == TM_KEY_RANK) {
            list->bad_message =
                "fields are created_at, updated_at, due_at, priority, title, "
                "status, each with an optional - for descending";
            return NGX_DECLINED;
        }

        if (used & (1 << k)) {
            list->bad_message = "names a field twice";
            return NGX_DECLINED;
        }

        used |= 1 << k;

        if (list->nkeys == NGX_HTTP_TASKMGR_LIST_SORT_MAX) {
            list->bad_message = "names too many fields";
            return NGX_DECLINED;
        }

        list->keys[list->nkeys].key = k;
        list->keys[list->nkeys].desc = desc;
        list->nkeys++;
    }

    return NGX_OK;
}


/* filter[field]=v or filter[field][op]=v */
static ngx_int_t
ngx_http_taskmgr_list_filter(ngx_http_taskmgr_list_t *list, ngx_str_t *name,
                             ngx_str_t *value)
{
    u_char                          *p, *end, *rb, *comma;
    ngx_str_t                        field, op, item;
    ngx_uint_t                       i, f, o, n;
    ngx_http_taskmgr_filter_field_t *ff;

    p = name->data + 7;
    end = name->data + name->len;

    rb = ngx_strlchr(p, end, ']');
    if (rb == NULL) {
        list->bad_message = "must be filter[field] or filter[field][op]";
        return NGX_DECLINED;
    }

    field.data = p;
    field.len = rb - p;
    p = rb + 1;

    if (p == end) {
        ngx_str_set(&op, "eq");

    } else {
        if (*p != '[' || end[-1] != ']' || end - p < 3) {
            list->bad_message = "must be filter[field] or filter[field][op]";
            return NGX_DECLINED;
        }

        op.data = p + 1;
        op.len = end - 1 - op.data;
    }

    f = NGX_HTTP_TASKMGR_LIST_FIELDS;

    for (i = 0; i < NGX_HTTP_TASKMGR_LIST_FIELDS; i++) {
        if (field.len == ngx_http_taskmgr_filter_fields[i].name.len
            && ngx_strncmp(field.data,
                           ngx_http_taskmgr_filter_fields[i].name.data,
                           field.len)
                == 0)
        {
            f = i;
            break;
        }
    }

    if (f == NGX_HTTP_TASKMGR_LIST_FIELDS) {
        list->bad_message =
            "unknown field: status, priority, assignee_id, project_id, "
            "parent_id, label, due_at, created_at, updated_at, completed_at";
        return NGX_DECLINED;
    }

    o = NGX_HTTP_TASKMGR_LIST_OPS;

    for (i = 0; i < NGX_HTTP_TASKMGR_LIST_OPS; i++) {
        if (op.len == ngx_http_taskmgr_filter_ops[i].len
            && ngx_strncmp(op.data, ngx_http_taskmgr_filter_ops[i].data, op.len)
                == 0)
        {
            o = i;
            break;
        }
    }

    if (o == NGX_HTTP_TASKMGR_LIST_OPS) {
        list->bad_message =
            "unknown operator: eq, ne, lt, lte, gt, gte, in, nin, is";
        return NGX_DECLINED;
    }

    ff = &ngx_http_taskmgr_filter_fields[f];

    if (o >= TM_OP_LT && o <= TM_OP_GTE && !ff->ordered) {
        list->bad_message = "this field has no order: use eq, ne, in, nin "
                            "or is";
        return NGX_DECLINED;
    }

    if (list->filters[f][o].data) {
        list->bad_message = "given twice";
        return NGX_DECLINED;
    }

    if (list->nfilters == NGX_HTTP_TASKMGR_LIST_FILTER_MAX) {
        list->bad_message = "too many filters (at most 16)";
        return NGX_DECLINED;
    }

    if (value->len > NGX_HTTP_TASKMGR_LIST_VALUE_MAX) {
        list->bad_message = "value is too long";
        return NGX_DECLINED;
    }

    if (o == TM_OP_IS) {
        if (!((value->len == 4 && ngx_strncmp(value->data, "null", 4) == 0)
              || (value->len == 7
                  && ngx_strncmp(value->data, "notnull", 7) == 0)))
        {
            list->bad_message = "is takes null or notnull";
            return NGX_DECLINED;
        }

    } else if (o == TM_OP_IN || o == TM_OP_NIN) {
        p = value->data;
        end = p + value->len;
        n = 0;

        while (p <= end) {
            comma = ngx_strlchr(p, end, ',');
            if (comma == NULL) {
                comma = end;
            }

            item.data = p;
            item.len = comma - p;
            p = comma + 1;

            if (++n > NGX_HTTP_TASKMGR_LIST_IN_MAX) {
                list->bad_message = "lists at most 100 values";
                return NGX_DECLINED;
            }

            if (ngx_http_taskmgr_list_value(ff->kind, &item) != NGX_OK) {
                list->bad_message = "a value of the list is not valid for "
                                    "this field";
                return NGX_DECLINED;
            }
        }

    } else if (ngx_http_taskmgr_list_value(ff->kind, value) != NGX_OK) {
        switch (ff->kind) {
        case TM_T_ENUM:
            list->bad_message = "must be todo, in_progress, done or archived";
            break;
        case TM_T_INT:
            list->bad_message = "must be an integer from 0 to 4";
            break;
        case TM_T_UUID:
            list->bad_message = "must be a UUID";
            break;
        case TM_T_TIME:
            list->bad_message = "must be an RFC 3339 date-time";
            break;
        default:
            list->bad_message = "must be a label of 1 to 64 characters";
            break;
        }

        return NGX_DECLINED;
    }

    list->filters[f][o] = *value;
    list->nfilters++;

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_list_value(ngx_uint_t kind, ngx_str_t *v)
{
    ngx_uint_t i;

    switch (kind) {

    case TM_T_ENUM:
        for (i = 0; ngx_http_taskmgr_list_statuses[i]; i++) {
            if (v->len == ngx_strlen(ngx_http_taskmgr_list_statuses[i])
                && ngx_strncmp(v->data, ngx_http_taskmgr_list_statuses[i],
                               v->len)
                    == 0)
            {
                return NGX_OK;
            }
        }

        return NGX_DECLINED;

    case TM_T_INT:
        return (v->len == 1 && v->data[0] >= '0' && v->data[0] <= '4')
            ? NGX_OK
            : NGX_DECLINED;

    case TM_T_UUID:
        return ngx_http_taskmgr_is_uuid(v);

    case TM_T_TIME:
        return ngx_http_taskmgr_list_time_ok(v);

    default: /* TM_T_LABEL */
        return ngx_http_taskmgr_list_text_ok(v, 64);
    }
}


/* 1..max_chars characters of UTF-8, no control characters */
static ngx_int_t
ngx_http_taskmgr_list_text_ok(ngx_str_t *v, size_t max_chars)
{
    u_char  *p, *end;
    size_t   n;
    uint32_t ch;

    if (v->len == 0) {
        return NGX_DECLINED;
    }

    p = v->data;
    end = p + v->len;
    n = 0;

    while (p < end) {
        if (*p < 0x80) {
            if (*p < 0x20 || *p == 0x7f) {
                return NGX_DECLINED;
            }

            p++;

        } else {
            ch = ngx_utf8_decode(&p, end - p);
            if (ch > 0x10ffff) {
                return NGX_DECLINED;
            }
        }

        if (++n > max_chars) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * RFC 3339: YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM), a real date.
 */
static ngx_int_t
ngx_http_taskmgr_list_time_ok(ngx_str_t *v)
{
    u_char    *p, *end;
    ngx_int_t  y, mo, d, h, mi, s, days;
    ngx_uint_t i, n;

    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    static ngx_int_t  mdays[] = {
         31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (v->len < sizeof(shape) || v->len > 40) {
        return NGX_DECLINED;
    }

    p = v->data;
    end = p + v->len;

    for (i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd') {
            if (p[i] < '0' || p[i] > '9') {
                return NGX_DECLINED;
            }

        } else if (p[i] != shape[i]) {
            return NGX_DECLINED;
        }
    }

    y = ngx_atoi(p, 4);
    mo = ngx_atoi(p + 5, 2);
    d = ngx_atoi(p + 8, 2);
    h = ngx_atoi(p + 11, 2);
    mi = ngx_atoi(p + 14, 2);
    s = ngx_atoi(p + 17, 2);

    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) {
        return NGX_DECLINED;
    }

    days = mdays[mo - 1];

    if (mo == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        days = 29;
    }

    if (d > days) {
        return NGX_DECLINED;
    }

    p += sizeof(shape) - 1;

    if (p < end && *p == '.') {
        p++;

        for (n = 0; p < end && *p >= '0' && *p <= '9'; n++) {
            p++;
        }

        if (n < 1 || n > 6) {
            return NGX_DECLINED;
        }
    }

    if (end - p == 1 && *p == 'Z') {
        return NGX_OK;
    }

    if (end - p != 6 || (*p != '+' && *p != '-') || p[3] != ':') {
        return NGX_DECLINED;
    }

    for (i = 1; i < 6; i++) {
        if (i != 3 && (p[i] < '0' || p[i] > '9')) {
            return NGX_DECLINED;
        }
    }

    if (ngx_atoi(p + 1, 2) > 23 || ngx_atoi(p + 4, 2) > 59) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the keys, the canonical query, the fast path and the cursor */
static ngx_int_t
ngx_http_taskmgr_list_finish(ngx_http_request_t      *r,
                             ngx_http_taskmgr_list_t *list)
{
    ngx_uint_t desc;

    if (list->nkeys == 0) {
        if (list->q.data) {
            list->ranked = 1;
            list->keys[0].key = TM_KEY_RANK;

        } else {
            list->keys[0].key = TM_KEY_CREATED_AT;
        }

        list->keys[0].desc = 1;
        list->nkeys = 1;
    }

    /* the tiebreak follows the direction of the last key, so that one
     * index serves the whole order */
    desc = list->keys[list->nkeys - 1].desc;
    list->keys[list->nkeys].key = TM_KEY_ID;
    list->keys[list->nkeys].desc = desc;
    list->nkeys++;

    list->fast = !list->offset_mode && list->nfilters == 0
        && list->q.data == NULL
        && list->deleted == NGX_HTTP_TASKMGR_DELETED_HIDE && list->nkeys == 2
        && list->keys[0].key == TM_KEY_CREATED_AT && list->keys[0].desc;

    if (ngx_http_taskmgr_list_canon(r, list) != NGX_OK) {
        return NGX_ERROR;
    }

    if (list->has_cursor) {
        return ngx_http_taskmgr_list_decode(r, list);
    }

    return NGX_OK;
}


/*
 * sort: "-priority,due_at" ("-rank" for a ranked search); canon: the sort,
 * the deleted mode, q and every filter, each value length-prefixed so that
 * two different queries never read the same.
 */
static ngx_int_t
ngx_http_taskmgr_list_canon(ngx_http_request_t      *r,
                            ngx_http_taskmgr_list_t *list)
{
    u_char    *p;
    size_t     len;
    ngx_uint_t i, f, o;

    len = 0;

    for (i = 0; i + 1 < list->nkeys; i++) {
        len += 2 + ngx_http_taskmgr_sort_fields[list->keys[i].key].name.len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    list->sort.data = p;

    for (i = 0; i + 1 < list->nkeys; i++) {
        if (i) {
            *p++ = ',';
        }

        if (list->keys[i].desc) {
            *p++ = '-';
        }

        p = ngx_cpymem(
            p, ngx_http_taskmgr_sort_fields[list->keys[i].key].name.data,
            ngx_http_taskmgr_sort_fields[list->keys[i].key].name.len);
    }

    list->sort.len = p - list->sort.data;

    len = sizeof("s=:;d=0;q=:;") - 1 + 2 * NGX_SIZE_T_LEN + list->sort.len
        + list->q.len;

    for (f = 0; f < NGX_HTTP_TASKMGR_LIST_FIELDS; f++) {
        for (o = 0; o < NGX_HTTP_TASKMGR_LIST_OPS; o++) {
            if (list->filters[f][o].data) {
                len += sizeof("f.=:;") - 1 + 2 * NGX_INT_T_LEN + NGX_SIZE_T_LEN
                    + list->filters[f][o].len;
            }
        }
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    list->canon.data = p;
    p = ngx_sprintf(p, "s=%uz:%V;d=%ui;", list->sort.len, &list->sort,
                    list->deleted);

    if (list->q.data) {
        p = ngx_sprintf(p, "q=%uz:%V;", list->q.len, &list->q);
    }

    for (f = 0; f < NGX_HTTP_TASKMGR_LIST_FIELDS; f++) {
        for (o = 0; o < NGX_HTTP_TASKMGR_LIST_OPS; o++) {
            if (list->filters[f][o].data) {
                p = ngx_sprintf(p, "f%ui.%ui=%uz:%V;", f, o,
                                list->filters[f][o].len, &list->filters[f][o]);
            }
        }
    }

    list->canon.len = p - list->canon.data;

    if (list->canon.len > len) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: list canon overflow");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_taskmgr_list_digest(ngx_str_t *in, u_char *out)
{
    u_char       md[EVP_MAX_MD_SIZE];
    unsigned int n;

    if (EVP_Digest(in->data, in->len, md, &n, ngx_http_taskmgr_sha256(), NULL)
        != 1) {
        ngx_memzero(md, sizeof(md));
    }

    ngx_memcpy(out, md, TM_DIGEST_LEN);
}


static ngx_int_t
ngx_http_taskmgr_list_mac(u_char *p, size_t len, u_char *mac)
{
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = ngx_http_taskmgr_main_conf();

    if (mcf == NULL || mcf->cursor_hmac == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_hmac(mcf->cursor_hmac, p, len, mac);
}


/*
 * The cursor: base64url of
 *   1, len(sort), sort, digest(canon)[16], n, n values (2-byte length, or
 *   0xffff for NULL, then the bytes), HMAC-SHA256 of all that.
 */
static ngx_int_t
ngx_http_taskmgr_list_decode(ngx_http_request_t      *r,
                             ngx_http_taskmgr_list_t *list)
{
    u_char     *p, *end, digest[TM_DIGEST_LEN], mac[TM_MAC_LEN];
    size_t      len;
    ngx_str_t   raw, name;
    ngx_uint_t  i;
    const char *bad;

    ngx_str_set(&name, "cursor");
    bad = "malformed or tampered";

    raw.data =
        ngx_pnalloc(r->pool, ngx_base64_decoded_length(list->cursor.len));
    if (raw.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(&raw, &list->cursor) != NGX_OK
        || raw.len < 1 + 1 + TM_DIGEST_LEN + 1 + TM_MAC_LEN)
    {
        return ngx_http_taskmgr_list_bad(list, &name, bad);
    }

    end = raw.data + raw.len - TM_MAC_LEN;

    if (ngx_http_taskmgr_list_mac(raw.data, end - raw.data, mac) != NGX_OK) {
        return NGX_ERROR;
    }

    if (CRYPTO_memcmp(mac, end, TM_MAC_LEN) != 0) {
        return ngx_http_taskmgr_list_bad(list, &name, bad);
    }

    p = raw.data;

    if (*p++ != TM_CURSOR_VERSION) {
        return ngx_http_taskmgr_list_bad(list, &name, bad);
    }

    len = *p++;

    if ((size_t) (end - p) < len + TM_DIGEST_LEN + 1) {
        return ngx_http_taskmgr_list_bad(list, &name, bad);
    }

    if (len != list->sort.len || ngx_memcmp(p, list->sort.data, len) != 0) {
        return ngx_http_taskmgr_list_bad(list, &name,
                                         "was issued for another sort");
    }

    p += len;

    ngx_http_taskmgr_list_digest(&list->canon, digest);

    if (ngx_memcmp(p, digest, TM_DIGEST_LEN) != 0) {
        return ngx_http_taskmgr_list_bad(
            list, &name, "was issued for other filters, search or deleted");
    }

    p += TM_DIGEST_LEN;

    if (*p++ != list->nkeys) {
        return ngx_http_taskmgr_list_bad(list, &name, bad);
    }

    for (i = 0; i < list->nkeys; i++) {
        if (end - p < 2) {
            return ngx_http_taskmgr_list_bad(list, &name, bad);
        }

        len = (p[0] << 8) | p[1];
        p += 2;

        if (len == TM_VALUE_NULL) {
            if (!ngx_http_taskmgr_sort_fields[list->keys[i].key].nullable) {
                return ngx_http_taskmgr_list_bad(list, &name, bad);
            }

            ngx_str_null(&list->after[i]);
            continue;
        }

        if ((size_t) (end - p) < len || len == 0) {
            return ngx_http_taskmgr_list_bad(list, &name, bad);
        }

        list->after[i].data = p;
        list->after[i].len = len;
        p += len;
    }

    if (p != end
        || ngx_http_taskmgr_is_uuid(&list->after[list->nkeys - 1]) != NGX_OK)
    {
        return ngx_http_taskmgr_list_bad(list, &name, bad);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_list_cursor(ngx_http_request_t      *r,
                             ngx_http_taskmgr_list_t *list, PGresult *res,
                             int row, ngx_str_t *cursor)
{
    int        col;
    u_char    *p, *buf;
    size_t     len, vlen;
    ngx_str_t  raw;
    ngx_uint_t i;

    len = 1 + 1 + list->sort.len + TM_DIGEST_LEN + 1 + TM_MAC_LEN;

    for (i = 0; i < list->nkeys; i++) {
        col = ngx_http_taskmgr_sort_fields[list->keys[i].key].col;
        len += 2 + PQgetlength(res, row, col);
    }

    if (list->sort.len > 255 || len > NGX_HTTP_TASKMGR_LIST_CURSOR_MAX * 3 / 4)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: list cursor of %uz bytes", len);
        return NGX_ERROR;
    }

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = buf;
    *p++ = TM_CURSOR_VERSION;
    *p++ = (u_char) list->sort.len;
    p = ngx_cpymem(p, list->sort.data, list->sort.len);
    ngx_http_taskmgr_list_digest(&list->canon, p);
    p += TM_DIGEST_LEN;
    *p++ = (u_char) list->nkeys;

    for (i = 0; i < list->nkeys; i++) {
        col = ngx_http_taskmgr_sort_fields[list->keys[i].key].col;

        if (PQgetisnull(res, row, col)) {
            *p++ = 0xff;
            *p++ = 0xff;
            continue;
        }

        vlen = PQgetlength(res, row, col);
        *p++ = (u_char) (vlen >> 8);
        *p++ = (u_char) (vlen & 0xff);
        p = ngx_cpymem(p, PQgetvalue(res, row, col), vlen);
    }

    if (ngx_http_taskmgr_list_mac(buf, p - buf, p) != NGX_OK) {
        return NGX_ERROR;
    }

    p += TM_MAC_LEN;

    raw.data = buf;
    raw.len = p - buf;

    cursor->data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(raw.len));
    if (cursor->data == NULL) {
        return NGX_ERROR;
    }

    ngx_encode_base64url(cursor, &raw);

    return NGX_OK;
}


ngx_uint_t
ngx_http_taskmgr_list_probe(ngx_http_taskmgr_list_t *list)
{
    ngx_uint_t f;

    /* a ranked search too: its candidates are the newest matches */

    if (list->q.data) {
        return 1;
    }

    for (f = 0; f < NGX_HTTP_TASKMGR_LIST_FIELDS; f++) {
        if (ngx_http_taskmgr_filter_fields[f].kind == TM_T_LABEL
            && (list->filters[f][TM_OP_EQ].data
                || list->filters[f][TM_OP_IN].data))
        {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_taskmgr_list_route(ngx_http_request_t      *r,
                            ngx_http_taskmgr_list_t *list, ngx_str_t *route)
{
    u_char       md[EVP_MAX_MD_SIZE], *p;
    unsigned int n;
    EVP_MD_CTX  *md_ctx;
    u_char       head[sizeof("|l=|o=|c=") + 2 * NGX_INT_T_LEN];
    size_t       hlen;

    hlen = ngx_sprintf(head, "|l=%i|o=%i|c=", list->limit, list->offset) - head;

    md_ctx = EVP_MD_CTX_new();
    if (md_ctx == NULL) {
        return NGX_ERROR;
    }

    if (EVP_DigestInit_ex(md_ctx, ngx_http_taskmgr_sha256(), NULL) != 1
        || EVP_DigestUpdate(md_ctx, list->canon.data, list->canon.len) != 1
        || EVP_DigestUpdate(md_ctx, head, hlen) != 1
        || EVP_DigestUpdate(md_ctx, list->cursor.data, list->cursor.len) != 1
        || EVP_DigestFinal_ex(md_ctx, md, &n) != 1)
    {
        EVP_MD_CTX_free(md_ctx);
        return NGX_ERROR;
    }

    EVP_MD_CTX_free(md_ctx);

    p = ngx_pnalloc(r->pool, 2 + 2 * n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    route->data = p;
    *p++ = 'l';
    *p++ = ':';
    p = ngx_hex_dump(p, md, n);
    route->len = p - route->data;

    return NGX_OK;
}


static void
ngx_http_taskmgr_put(ngx_http_taskmgr_buf_t *b, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    b->p = ngx_vslprintf(b->p, b->last, fmt, args);
    va_end(args);
}


/*
 * One key of the keyset condition against the cursor value $2[arg]:
 * eq: the row ties with the cursor row on this key; else: it comes after
 * it.  NULL sorts above every value (ASC: last, DESC: first).
 */
static void
ngx_http_taskmgr_put_key(ngx_http_taskmgr_buf_t      *b,
                         ngx_http_taskmgr_list_key_t *k, ngx_uint_t arg,
                         ngx_uint_t null, ngx_uint_t eq)
{
    ngx_http_taskmgr_sort_field_t *sf;

    sf = &ngx_http_taskmgr_sort_fields[k->key];

    if (eq) {
        if (null) {
            ngx_http_taskmgr_put(b, "%s IS NULL", sf->expr);

        } else {
            ngx_http_taskmgr_put(b, "%s = ($2[%ui])::%s", sf->expr, arg,
                                 sf->type);
        }

        return;
    }

    if (null) {
        /* after a NULL: nothing ascending, every value descending */
        ngx_http_taskmgr_put(b, k->desc ? "%s IS NOT NULL" : "false", sf->expr);
        return;
    }

    if (sf->nullable && !k->desc) {
        ngx_http_taskmgr_put(b, "(%s > ($2[%ui])::%s OR %s IS NULL)", sf->expr,
                             arg, sf->type, sf->expr);
        return;
    }

    ngx_http_taskmgr_put(b, "%s %s ($2[%ui])::%s", sf->expr,
                         k->desc ? "<" : ">", arg, sf->type);
}


/* the array literal of p_args: {"v1","v2",NULL}, quotes and backslashes
 * escaped */
static ngx_int_t
ngx_http_taskmgr_list_array(ngx_http_request_t *r, ngx_str_t *vals,
                            ngx_uint_t n, ngx_str_t *out)
{
    u_char    *p;
    size_t     len;
    ngx_uint_t i, j;

    len = 2;

    for (i = 0; i < n; i++) {
        len += 5 + 2 * vals[i].len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    *p++ = '{';

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        if (vals[i].data == NULL) {
            p = ngx_cpymem(p, "NULL", 4);
            continue;
        }

        *p++ = '"';

        for (j = 0; j < vals[i].len; j++) {
            if (vals[i].data[j] == '"' || vals[i].data[j] == '\\') {
                *p++ = '\\';
            }

            *p++ = vals[i].data[j];
        }

        *p++ = '"';
    }

    *p++ = '}';
    out->len = p - out->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_list_sql(ngx_http_request_t *r, ngx_http_taskmgr_list_t *list,
                          ngx_http_taskmgr_list_sql_t *sql)
{
    u_char                          *buf;
    ngx_str_t                        vals[TM_ARGS_MAX];
    u_char                          *gbuf;
    ngx_uint_t                       f, o, n, i, first, probe, nsplit, nulls;
    ngx_http_taskmgr_buf_t           b, g, *dst;
    ngx_http_taskmgr_filter_field_t *ff;

    buf = ngx_pnalloc(r->pool, TM_SQL_MAX);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    b.p = buf;
    b.last = buf + TM_SQL_MAX;
    n = 0;

    /* the GIN tests of a probed query go to their own text (p_gin) */
    probe = ngx_http_taskmgr_list_probe(list);

    gbuf = ngx_pnalloc(r->pool, TM_GIN_MAX);
    if (gbuf == NULL) {
        return NGX_ERROR;
    }

    g.p = gbuf;
    g.last = gbuf + TM_GIN_MAX;

    switch (list->deleted) {
    case NGX_HTTP_TASKMGR_DELETED_INCLUDE:
        ngx_http_taskmgr_put(&b, "true");
        break;
    case NGX_HTTP_TASKMGR_DELETED_ONLY:
        ngx_http_taskmgr_put(&b, "t.deleted_at IS NOT NULL");
        break;
    default:
        ngx_http_taskmgr_put(&b, "t.deleted_at IS NULL");
        break;
    }

    for (f = 0; f < NGX_HTTP_TASKMGR_LIST_FIELDS; f++) {
        ff = &ngx_http_taskmgr_filter_fields[f];

        for (o = 0; o < NGX_HTTP_TASKMGR_LIST_OPS; o++) {
            if (list->filters[f][o].data == NULL) {
                continue;
            }

            dst = &b;

            if (probe && ff->kind == TM_T_LABEL
                && (o == TM_OP_EQ || o == TM_OP_IN)) {
                dst = &g;
            }

            ngx_http_taskmgr_put(dst, dst->p == gbuf ? "" : " AND ");

            if (o == TM_OP_IS) {
                /* no value is bound: null or notnull */
                if (ff->kind == TM_T_LABEL) {
                    ngx_http_taskmgr_put(&b,
                                         list->filters[f][o].len == 4
                                             ? "%s = '{}'"
                                             : "%s <> '{}'",
                                         ff->col);

                } else {
                    ngx_http_taskmgr_put(&b,
                                         list->filters[f][o].len == 4
                                             ? "%s IS NULL"
                                             : "%s IS NOT NULL",
                                         ff->col);
                }

                continue;
            }

            vals[n++] = list->filters[f][o];

            if (ff->kind == TM_T_LABEL) {
                switch (o) {
                case TM_OP_EQ:
                    ngx_http_taskmgr_put(dst, "%s @> ARRAY[$2[%ui]]", ff->col,
                                         n);
                    break;
                case TM_OP_NE:
                    ngx_http_taskmgr_put(dst, "NOT (%s @> ARRAY[$2[%ui]])",
                                         ff->col, n);
                    break;
                case TM_OP_IN:
                    ngx_http_taskmgr_put(
                        dst, "%s && string_to_array($2[%ui], ',')", ff->col, n);
                    break;
                default: /* TM_OP_NIN */
                    ngx_http_taskmgr_put(
                        dst, "NOT (%s && string_to_array($2[%ui], ','))",
                        ff->col, n);
                    break;
                }

                continue;
            }

            switch (o) {
            case TM_OP_NE:
                /* ne and nin also match a NULL */
                ngx_http_taskmgr_put(&b,
                                     ff->nullable
                                         ? "%s IS DISTINCT FROM ($2[%ui])::%s"
                                         : "%s <> ($2[%ui])::%s",
                                     ff->col, n, ff->type);
                break;
            case TM_OP_IN:
                ngx_http_taskmgr_put(
                    &b, "%s = ANY (string_to_array($2[%ui], ',')::%s[])",
                    ff->col, n, ff->type);
                break;
            case TM_OP_NIN:
                if (ff->nullable) {
                    ngx_http_taskmgr_put(&b, "(%s IS NULL OR ", ff->col);
                }

                ngx_http_taskmgr_put(
                    &b, "%s <> ALL (string_to_array($2[%ui], ',')::%s[])",
                    ff->col, n, ff->type);

                if (ff->nullable) {
                    ngx_http_taskmgr_put(&b, ")");
                }
                break;
            default: /* eq lt lte gt gte */
                ngx_http_taskmgr_put(&b, "%s %s ($2[%ui])::%s", ff->col,
                                     ngx_http_taskmgr_cmp[o], n, ff->type);
                break;
            }
        }
    }

    if (list->q.data) {
        dst = probe ? &g : &b;
        ngx_http_taskmgr_put(dst, dst->p == gbuf ? "" : " AND ");
        ngx_http_taskmgr_put(dst,
                             "t.search @@ "
                             "websearch_to_tsquery('english', $3)");
    }

    first = n + 1;

    if (list->has_cursor) {
        for (i = 0; i < list->nkeys; i++) {
            vals[n++] = list->after[i];
        }
    }

    sql->where.data = buf;
    sql->where.len = b.p - buf;

    sql->gin.data = (g.p == gbuf) ? NULL : gbuf;
    sql->gin.len = g.p - gbuf;

    if (g.p == g.last) {
        return NGX_ERROR;
    }

    /*
     * a sort that starts with status or priority: one branch per value;
     * due_at next and more keys after it: its NULLs apart
     */

    nsplit = 0;

    while (!list->ranked && nsplit + 1 < list->nkeys
           && (list->keys[nsplit].key == TM_KEY_STATUS
               || list->keys[nsplit].key == TM_KEY_PRIORITY))
    {
        nsplit++;
    }

    nulls = !list->ranked && nsplit + 2 < list->nkeys
        && list->keys[nsplit].key == TM_KEY_DUE_AT;

    ngx_str_null(&sql->after);
    ngx_str_null(&sql->split);

    if (nsplit || nulls) {
        if (ngx_http_taskmgr_list_split(r, list, nsplit, nulls, first,
                                        &sql->split)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (list->has_cursor) {
        sql->after.data = b.p;
        ngx_http_taskmgr_list_after(&b, list, 0, first);
        sql->after.len = b.p - sql->after.data;
    }

    sql->order.data = b.p;
    ngx_http_taskmgr_list_order(&b, list, 0);
    sql->order.len = b.p - sql->order.data;

    if (b.p == b.last) {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_list_array(r, vals, n, &sql->args);
}


/* ORDER BY of the keys from "from" on */
static void
ngx_http_taskmgr_list_order(ngx_http_taskmgr_buf_t  *b,
                            ngx_http_taskmgr_list_t *list, ngx_uint_t from)
{
    ngx_uint_t                     i;
    ngx_http_taskmgr_sort_field_t *sf;

    for (i = from; i < list->nkeys; i++) {
        sf = &ngx_http_taskmgr_sort_fields[list->keys[i].key];

        ngx_http_taskmgr_put(
            b, "%s%s %s%s", i > from ? ", " : "", sf->expr,
            list->keys[i].desc ? "DESC" : "ASC",
            sf->nullable ? (list->keys[i].desc ? " NULLS FIRST" : " NULLS LAST")
                         : "");
    }
}


/*
 * The keyset condition on the keys from "from" on: the row comes after the
 * cursor row in their order.  The cursor value of key i is $2[first + i].
 */
static void
ngx_http_taskmgr_list_after(ngx_http_taskmgr_buf_t  *b,
                            ngx_http_taskmgr_list_t *list, ngx_uint_t from,
                            ngx_uint_t first)
{
    ngx_uint_t                     i, same, null;
    ngx_http_taskmgr_sort_field_t *sf;

    same = 1;

    for (i = from; i < list->nkeys; i++) {
        sf = &ngx_http_taskmgr_sort_fields[list->keys[i].key];

        if (sf->nullable || list->keys[i].desc != list->keys[from].desc) {
            same = 0;
        }
    }

    if (same) {
        /* one direction, no NULLs: a row comparison an index serves */
        ngx_http_taskmgr_put(b, "(");

        for (i = from; i < list->nkeys; i++) {
            ngx_http_taskmgr_put(
                b, "%s%s", i > from ? ", " : "",
                ngx_http_taskmgr_sort_fields[list->keys[i].key].expr);
        }

        ngx_http_taskmgr_put(b, ") %s (", list->keys[from].desc ? "<" : ">");

        for (i = from; i < list->nkeys; i++) {
            ngx_http_taskmgr_put(
                b, "%s($2[%ui])::%s", i > from ? ", " : "", first + i,
                ngx_http_taskmgr_sort_fields[list->keys[i].key].type);
        }

        ngx_http_taskmgr_put(b, ")");
        return;
    }

    /* a bound on the first key an index can use, then the exact
     * condition: after(k0) OR (tie(k0) AND (after(k1) OR ...)) */
    sf = &ngx_http_taskmgr_sort_fields[list->keys[from].key];
    null = (list->after[from].data == NULL);

    if (!sf->nullable) {
        ngx_http_taskmgr_put(b, "%s %s ($2[%ui])::%s AND ", sf->expr,
                             list->keys[from].desc ? "<=" : ">=", first + from,
                             sf->type);

    } else if (!null && list->keys[from].desc) {
        ngx_http_taskmgr_put(b, "%s <= ($2[%ui])::%s AND ", sf->expr,
                             first + from, sf->type);

    } else if (null && !list->keys[from].desc) {
        ngx_http_taskmgr_put(b, "%s IS NULL AND ", sf->expr);
    }

    for (i = from; i + 1 < list->nkeys; i++) {
        null = (list->after[i].data == NULL);
        ngx_http_taskmgr_put(b, "(");
        ngx_http_taskmgr_put_key(b, &list->keys[i], first + i, null, 0);
        ngx_http_taskmgr_put(b, " OR (");
        ngx_http_taskmgr_put_key(b, &list->keys[i], first + i, null, 1);
        ngx_http_taskmgr_put(b, " AND ");
    }

    ngx_http_taskmgr_put_key(b, &list->keys[i], first + i, 0, 0);

    for (i = from; i + 1 < list->nkeys; i++) {
        ngx_http_taskmgr_put(b, "))");
    }
}


/* value v (of a split key's field f) passes the filters of f */
static ngx_uint_t
ngx_http_taskmgr_list_allows(ngx_http_taskmgr_list_t *list, ngx_uint_t f,
                             ngx_str_t *v)
{
    ngx_str_t *fl;

    fl = list->filters[f];

    /* status and priority are never NULL */
    if (fl[TM_OP_IS].data && fl[TM_OP_IS].len == 4) {
        return 0;
    }

    if ((fl[TM_OP_EQ].data && !ngx_http_taskmgr_list_same(&fl[TM_OP_EQ], v))
        || (fl[TM_OP_NE].data && ngx_http_taskmgr_list_same(&fl[TM_OP_NE], v))
        || (fl[TM_OP_IN].data && !ngx_http_taskmgr_list_has(&fl[TM_OP_IN], v))
        || (fl[TM_OP_NIN].data && ngx_http_taskmgr_list_has(&fl[TM_OP_NIN], v)))
    {
        return 0;
    }

    /* priority: one digit each, validated */
    if ((fl[TM_OP_LT].data && !(v->data[0] < fl[TM_OP_LT].data[0]))
        || (fl[TM_OP_LTE].data && !(v->data[0] <= fl[TM_OP_LTE].data[0]))
        || (fl[TM_OP_GT].data && !(v->data[0] > fl[TM_OP_GT].data[0]))
        || (fl[TM_OP_GTE].data && !(v->data[0] >= fl[TM_OP_GTE].data[0])))
    {
        return 0;
    }

    return 1;
}


static ngx_uint_t
ngx_http_taskmgr_list_same(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len && ngx_strncmp(a->data, b->data, a->len) == 0;
}


/* v is an item of the comma list l */
static ngx_uint_t
ngx_http_taskmgr_list_has(ngx_str_t *l, ngx_str_t *v)
{
    u_char   *p, *end, *comma;
    ngx_str_t item;

    p = l->data;
    end = p + l->len;

    while (p <= end) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        item.data = p;
        item.len = comma - p;
        p = comma + 1;

        if (ngx_http_taskmgr_list_same(&item, v)) {
            return 1;
        }
    }

    return 0;
}


/*
 * p_split: pairs of a condition and an order, one pair a branch, in the
 * order of the sort.  The leading nsplit keys (status, priority) have a
 * handful of values: one branch per combination of them, without the
 * values the filters exclude, each ordered by the keys after them.  With
 * "nulls" (due_at follows them, and more keys after it) each combination
 * has two branches: due_at IS NOT NULL ordered by due_at and the rest, and
 * due_at IS NULL ordered by the rest only (NULLs first when descending).
 * Branches before the cursor's are left out; the cursor's own gets the
 * keyset condition of the keys it is ordered by.  The values are the fixed
 * ones of this file, written as literals.
 */
static ngx_int_t
ngx_http_taskmgr_list_split(ngx_http_request_t      *r,
                            ngx_http_taskmgr_list_t *list, ngx_uint_t nsplit,
                            ngx_uint_t nulls, ngx_uint_t first,
                            ngx_str_t *split)
{
    u_char                *buf, *start;
    ngx_str_t              pairs[2 * TM_SPLIT_MAX], v[2];
    ngx_uint_t             c, j, k, n[2], total, npairs, started, key, f;
    ngx_uint_t             part, nparts, null, from;
    ngx_http_taskmgr_buf_t b;

    buf = ngx_pnalloc(r->pool, TM_SQL_MAX);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    b.p = buf;
    b.last = buf + TM_SQL_MAX;

    n[0] = n[1] = 1;
    total = 1;

    for (j = 0; j < nsplit; j++) {
        n[j] = (list->keys[j].key == TM_KEY_STATUS) ? 4 : 5;
        total *= n[j];
    }

    nparts = nulls ? 2 : 1;
    npairs = 0;
    started = !list->has_cursor;

    for (c = 0; c < total; c++) {

        /* the values of this combination, the first key varying slowest */
        for (j = 0; j < nsplit; j++) {
            k = (j == 0 && nsplit == 2) ? c / n[1] : c % n[j];

            if (list->keys[j].desc) {
                k = n[j] - 1 - k;
            }

            key = list->keys[j].key;
            v[j].data = (u_char *) (key == TM_KEY_STATUS
                                        ? ngx_http_taskmgr_split_statuses[k]
                                        : ngx_http_taskmgr_split_priorities[k]);
            v[j].len = ngx_strlen(v[j].data);
        }

        for (j = 0; j < nsplit; j++) {
            f = (list->keys[j].key == TM_KEY_STATUS) ? TM_FIELD_STATUS
                                                     : TM_FIELD_PRIORITY;
            if (!ngx_http_taskmgr_list_allows(list, f, &v[j])) {
                break;
            }
        }

        if (j < nsplit) {
            continue;
        }

        for (part = 0; part < nparts; part++) {

            /* NULL sorts above every value: first descending */
            null = nulls && (part == 0) == list->keys[nsplit].desc;

            if (!started) {
                /* the branches before the cursor's are done */
                for (j = 0; j < nsplit; j++) {
                    if (list->after[j].data == NULL
                        || !ngx_http_taskmgr_list_same(&list->after[j], &v[j]))
                    {
                        break;
                    }
                }

                if (j < nsplit
                    || (nulls && (list->after[nsplit].data == NULL) != null)) {
                    continue;
                }
            }

            from = nsplit + (null ? 1 : 0);

            start = b.p;

            for (j = 0; j < nsplit; j++) {
                key = list->keys[j].key;
                ngx_http_taskmgr_put(
                    &b, key == TM_KEY_STATUS ? "%s%s = '%V'" : "%s%s = %V",
                    j ? " AND " : "", ngx_http_taskmgr_sort_fields[key].expr,
                    &v[j]);
            }

            if (nulls) {
                ngx_http_taskmgr_put(&b, "%st.due_at IS %s",
                                     nsplit ? " AND " : "",
                                     null ? "NULL" : "NOT NULL");
            }

            if (!started) {
                ngx_http_taskmgr_put(&b, " AND ");
                ngx_http_taskmgr_list_after(&b, list, from, first);
                started = 1;
            }

            pairs[npairs].data = start;
            pairs[npairs].len = b.p - start;
            npairs++;

            start = b.p;
            ngx_http_taskmgr_list_order(&b, list, from);
            pairs[npairs].data = start;
            pairs[npairs].len = b.p - start;
            npairs++;
        }
    }

    if (b.p == b.last) {
        return NGX_ERROR;
    }

    /* no combination left: an empty page (and a count of 0) */
    if (npairs == 0) {
        ngx_str_set(&pairs[0], "false");
        ngx_str_set(&pairs[1], "t.id");
        npairs = 2;
    }

    return ngx_http_taskmgr_list_array(r, pairs, npairs, split);
}
