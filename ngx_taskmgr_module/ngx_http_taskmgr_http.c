/*
 * Copyright (C) taskmgr developers
 *
 * Response helpers shared by every taskmgr module: JSON bodies, RFC 9457
 * problem details, header lookups.
 */


#include "ngx_http_taskmgr.h"


typedef struct {
    const char *code;
    const char *title;
} ngx_http_taskmgr_problem_title_t;


static ngx_table_elt_t *ngx_http_taskmgr_list_find(ngx_list_t *list,
                                                   const char *name,
                                                   ngx_uint_t  out);


static ngx_http_taskmgr_problem_title_t ngx_http_taskmgr_titles[] = {
    { "validation_failed", "Validation failed" },
    { "unauthorized", "Unauthorized" },
    { "token_expired", "Token expired" },
    { "mfa_required", "Second factor required" },
    { "forbidden", "Forbidden" },
    { "not_found", "Not found" },
    { "method_not_allowed", "Method not allowed" },
    { "conflict", "Conflict" },
    { "precondition_failed", "Precondition failed" },
    { "payload_too_large", "Payload too large" },
    { "unsupported_media_type", "Unsupported media type" },
    { "account_locked", "Account locked" },
    { "rate_limited", "Too many requests" },
    { "quota_exceeded", "Quota exceeded" },
    { "dependency_unavailable", "Dependency unavailable" },
    { "internal", "Internal error" },
    { NULL, NULL }
};


static ngx_str_t ngx_http_taskmgr_json_type =
    ngx_string("application/json; charset=utf-8");
static ngx_str_t ngx_http_taskmgr_problem_type =
    ngx_string("application/problem+json");


ngx_int_t
ngx_http_taskmgr_send(ngx_http_request_t *r, ngx_uint_t status,
                      ngx_str_t *content_type, ngx_str_t *body)
{
    ngx_int_t   rc;
    ngx_buf_t  *b;
    ngx_chain_t out;

    r->headers_out.status = status;

    if (status == NGX_HTTP_NO_CONTENT || status == NGX_HTTP_NOT_MODIFIED
        || body == NULL || body->len == 0)
    {
        if (status == NGX_HTTP_NO_CONTENT || status == NGX_HTTP_NOT_MODIFIED) {
            r->header_only = 1;
            ngx_http_clear_content_length(r);

        } else {
            r->headers_out.content_length_n = 0;
        }

        if (content_type && status != NGX_HTTP_NO_CONTENT
            && status != NGX_HTTP_NOT_MODIFIED)
        {
            r->headers_out.content_type = *content_type;
            r->headers_out.content_type_len = content_type->len;
        }

        rc = ngx_http_send_header(r);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            return rc;
        }

        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    r->headers_out.content_type = *content_type;
    r->headers_out.content_type_len = content_type->len;
    r->headers_out.content_length_n = body->len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_taskmgr_send_json(ngx_http_request_t *r, ngx_uint_t status,
                           ngx_str_t *body)
{
    return ngx_http_taskmgr_send(r, status, &ngx_http_taskmgr_json_type, body);
}


ngx_int_t
ngx_http_taskmgr_send_problem(ngx_http_request_t *r, ngx_uint_t status,
                              const char *code, const char *detail)
{
    return ngx_http_taskmgr_send_problem_errors(r, status, code, detail, NULL);
}


ngx_int_t
ngx_http_taskmgr_send_problem_errors(ngx_http_request_t *r, ngx_uint_t status,
                                     const char *code, const char *detail,
                                     ngx_str_t *errors_json)
{
    u_char                           *p;
    size_t                            len;
    ngx_str_t                         body, id, d, ed;
    ngx_str_t                         cc = ngx_string("no-store");
    ngx_str_t                         retry = ngx_string("1");
    ngx_str_t                         bearer = ngx_string("Bearer");
    const char                       *title;
    ngx_http_taskmgr_problem_title_t *t;

    title = "Error";

    for (t = ngx_http_taskmgr_titles; t->code; t++) {
        if (ngx_strcmp(t->code, code) == 0) {
            title = t->title;
            break;
        }
    }

    ngx_http_taskmgr_request_id(r, &id);

    d.data = (u_char *) (detail ? detail : title);
    d.len = ngx_strlen(d.data);

    if (ngx_http_taskmgr_json_escape(r->pool, &d, &ed) != NGX_OK) {
        return NGX_ERROR;
    }

    len = sizeof("{\"type\":\"https://taskmgr.dev/problems/\",\"title\":\"\","
                 "\"status\":,\"code\":\"\",\"detail\":\"\","
                 "\"request_id\":\"\",\"errors\":}")
        - 1 + 2 * ngx_strlen(code) + ngx_strlen(title) + NGX_INT_T_LEN + ed.len
        + id.len + (errors_json ? errors_json->len : 0);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body.data = p;

    /* code, title and the request id hold no characters JSON escapes */
    p = ngx_sprintf(p,
                    "{\"type\":\"https://taskmgr.dev/problems/%s\","
                    "\"title\":\"%s\",\"status\":%ui,\"code\":\"%s\","
                    "\"detail\":\"%V\",\"request_id\":\"%V\"",
                    code, title, status, code, &ed, &id);

    if (errors_json && errors_json->len) {
        p = ngx_sprintf(p, ",\"errors\":%V", errors_json);
    }

    *p++ = '}';
    body.len = p - body.data;

    if (body.len > len) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: problem body overflow");
        return NGX_ERROR;
    }

    /* RFC 9110: a 401 names the scheme; the auth module may have set a
     * more precise challenge already */
    if (status == NGX_HTTP_UNAUTHORIZED
        && ngx_http_taskmgr_find_out_header(r, "WWW-Authenticate") == NULL)
    {
        if (ngx_http_taskmgr_add_header(r, "WWW-Authenticate", &bearer)
            != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        if (ngx_http_taskmgr_add_header(r, "Retry-After", &retry) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_taskmgr_add_header(r, "Cache-Control", &cc) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_send(r, status, &ngx_http_taskmgr_problem_type,
                                 &body);
}


ngx_int_t
ngx_http_taskmgr_add_header(ngx_http_request_t *r, const char *name,
                            ngx_str_t *value)
{
    ngx_table_elt_t *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}


/* a header of a request or response list, by case-insensitive name */
static ngx_table_elt_t *
ngx_http_taskmgr_list_find(ngx_list_t *list, const char *name, ngx_uint_t out)
{
    size_t           len;
    ngx_uint_t       i;
    ngx_list_part_t *part;
    ngx_table_elt_t *h;

    if (name == NULL) {
        return NULL;
    }

    len = ngx_strlen(name);
    part = &list->part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        /* in a response, hash 0 marks a header that was removed */
        if ((!out || h[i].hash != 0) && h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }

    return NULL;
}


ngx_table_elt_t *
ngx_http_taskmgr_find_out_header(ngx_http_request_t *r, const char *name)
{
    return ngx_http_taskmgr_list_find(&r->headers_out.headers, name, 1);
}


ngx_table_elt_t *
ngx_http_taskmgr_find_header(ngx_http_request_t *r, const char *name)
{
    return ngx_http_taskmgr_list_find(&r->headers_in.headers, name, 0);
}


size_t
ngx_http_taskmgr_json_escaped_len(u_char *p, size_t n)
{
    size_t len;

    for (len = n; n; n--, p++) {
        if (*p == '"' || *p == '\\') {
            len++;

        } else if (*p < 0x20) {
            len += 5;
        }
    }

    return len;
}


u_char *
ngx_http_taskmgr_json_escape_to(u_char *dst, u_char *p, size_t n)
{
    static u_char hex[] = "0123456789abcdef";

    for (/* void */; n; n--, p++) {
        if (*p == '"' || *p == '\\') {
            *dst++ = '\\';
            *dst++ = *p;

        } else if (*p < 0x20) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[*p >> 4];
            *dst++ = hex[*p & 0xf];

        } else {
            *dst++ = *p;
        }
    }

    return dst;
}


ngx_int_t
ngx_http_taskmgr_json_escape(ngx_pool_t *pool, ngx_str_t *in, ngx_str_t *out)
{
    size_t len;

    len = ngx_http_taskmgr_json_escaped_len(in->data, in->len);

    if (len == in->len) {
        *out = *in;
        return NGX_OK;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_http_taskmgr_json_escape_to(out->data, in->data, in->len)
        - out->data;

    return NGX_OK;
}


/*
 * Gives back the ngx_connection_t of a socket a library owns (libpq,
 * hiredis): the library closes the socket right after, or has closed it
 * already, which removes it from epoll, so the events only get their flags
 * reset (NGX_CLOSE_EVENT) and no epoll_ctl() meets a closed descriptor.
 */
void
ngx_http_taskmgr_release_connection(ngx_connection_t *c)
{
    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}
