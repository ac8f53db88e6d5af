/*
 * Copyright (C) taskmgr developers
 */


#include "ngx_http_taskmgr_json.h"


static void        ngx_http_taskmgr_json_cleanup(void *data);
static ngx_uint_t  ngx_http_taskmgr_utf8_chars(const char *s, size_t len);
static ngx_int_t   ngx_http_taskmgr_json_time(const char *s, size_t len);
static ngx_int_t   ngx_http_taskmgr_json_email(const char *s, size_t len);
static const char *ngx_http_taskmgr_json_check(ngx_http_taskmgr_field_t *f,
                                               json_t *v, u_char *buf,
                                               size_t size);


json_t *
ngx_http_taskmgr_json_parse(ngx_http_request_t *r, u_char *data, size_t len)
{
    json_t             *j;
    json_error_t        err;
    ngx_pool_cleanup_t *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    j = json_loadb((const char *) data, len, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "taskmgr: bad json: %s", err.text);
        return NULL;
    }

    cln->handler = ngx_http_taskmgr_json_cleanup;
    cln->data = j;

    return j;
}


static void
ngx_http_taskmgr_json_cleanup(void *data)
{
    json_decref(data);
}


ngx_int_t
ngx_http_taskmgr_json_dump(ngx_http_request_t *r, json_t *j, ngx_str_t *out)
{
    size_t len;

    len = json_dumpb(j, NULL, 0, JSON_COMPACT);
    if (len == 0) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(r->pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = json_dumpb(j, (char *) out->data, len, JSON_COMPACT);
    if (out->len != len) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_json_string(json_t *obj, const char *key, ngx_str_t *out)
{
    json_t *v;

    v = obj ? json_object_get(obj, key) : NULL;

    if (v == NULL || !json_is_string(v)) {
        ngx_str_null(out);
        return NGX_DECLINED;
    }

    out->data = (u_char *) json_string_value(v);
    out->len = json_string_length(v);

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_json_validate(ngx_http_request_t *r, json_t *obj,
                               ngx_http_taskmgr_field_t *fields,
                               ngx_uint_t *status, ngx_str_t *errors)
{
    u_char                    msg[128];
    json_t                   *errs, *e, *v;
    ngx_int_t                 rc;
    ngx_uint_t                n;
    const char               *key, *m;
    ngx_pool_cleanup_t       *cln;
    ngx_http_taskmgr_field_t *f;

    if (!json_is_object(obj)) {
        *status = NGX_HTTP_BAD_REQUEST;
        ngx_str_set(errors,
                    "[{\"field\":\"\",\"message\":"
                    "\"the body must be a JSON object\"}]");
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    errs = json_array();
    if (errs == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_taskmgr_json_cleanup;
    cln->data = errs;

    n = 0;
    *status = 0;

    /* unknown members are a 400: the client speaks another contract */
    json_object_foreach(obj, key, v)
    {
        for (f = fields; f->name; f++) {
            if (ngx_strcmp(f->name, key) == 0) {
                break;
            }
        }

        if (f->name == NULL && n < NGX_HTTP_TASKMGR_MAX_ERRORS) {
            e = json_pack("{s:s,s:s}", "field", key, "message",
                          "unknown field");
            if (e == NULL || json_array_append_new(errs, e) != 0) {
                return NGX_ERROR;
            }

            n++;
            *status = NGX_HTTP_BAD_REQUEST;
        }
    }

    if (*status == 0) {
        for (f = fields; f->name; f++) {
            v = json_object_get(obj, f->name);

            if (v == NULL) {
                m = f->required ? "is required" : NULL;

            } else {
                m = ngx_http_taskmgr_json_check(f, v, msg, sizeof(msg));
            }

            if (m == NULL) {
                continue;
            }

            if (n < NGX_HTTP_TASKMGR_MAX_ERRORS) {
                e = json_pack("{s:s,s:s}", "field", f->name, "message", m);
                if (e == NULL || json_array_append_new(errs, e) != 0) {
                    return NGX_ERROR;
                }
            }

            n++;
            *status = NGX_HTTP_UNPROCESSABLE_ENTITY;
        }
    }

    if (n == 0) {
        return NGX_OK;
    }

    rc = ngx_http_taskmgr_json_dump(r, errs, errors);
    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


/* NULL when v is a valid value for f, else the message */
static const char *
ngx_http_taskmgr_json_check(ngx_http_taskmgr_field_t *f, json_t *v, u_char *buf,
                            size_t size)
{
    size_t       len, i;
    json_t      *item;
    json_int_t   n;
    ngx_str_t    s;
    ngx_uint_t   chars;
    const char **e, *str;

    if (json_is_null(v)) {
        return f->nullable ? NULL : "must not be null";
    }

    switch (f->type) {

    case NGX_HTTP_TASKMGR_F_ANY:
        return NULL;

    case NGX_HTTP_TASKMGR_F_INT:
        if (!json_is_integer(v)) {
            return "must be an integer";
        }

        n = json_integer_value(v);
        if (n < f->min || n > f->max) {
            *ngx_snprintf(buf, size - 1, "must be between %i and %i", f->min,
                          f->max) = '\0';
            return (const char *) buf;
        }

        return NULL;

    case NGX_HTTP_TASKMGR_F_STRINGS:
        if (!json_is_array(v)) {
            return "must be an array of strings";
        }

        if ((ngx_int_t) json_array_size(v) > f->max) {
            *ngx_snprintf(buf, size - 1, "must have at most %i items", f->max) =
                '\0';
            return (const char *) buf;
        }

        json_array_foreach(v, i, item)
        {
            if (!json_is_string(item)) {
                return "must be an array of strings";
            }

            chars = ngx_http_taskmgr_utf8_chars(json_string_value(item),
                                                json_string_length(item));
            if (chars < 1 || (ngx_int_t) chars > f->item_max) {
                *ngx_snprintf(buf, size - 1,
                              "items must have 1 to %i characters",
                              f->item_max) = '\0';
                return (const char *) buf;
            }
        }

        return NULL;

    default:
        break;
    }

    if (!json_is_string(v)) {
        return "must be a string";
    }

    str = json_string_value(v);
    len = json_string_length(v);

    switch (f->type) {

    case NGX_HTTP_TASKMGR_F_UUID:
        s.data = (u_char *) str;
        s.len = len;
        return ngx_http_taskmgr_is_uuid(&s) == NGX_OK ? NULL : "must be a UUID";

    case NGX_HTTP_TASKMGR_F_TIME:
        return ngx_http_taskmgr_json_time(str, len) == NGX_OK
            ? NULL
            : "must be an RFC 3339 date-time";

    case NGX_HTTP_TASKMGR_F_ENUM:
        for (e = f->values; *e; e++) {
            if (ngx_strlen(*e) == len && ngx_strncmp(*e, str, len) == 0) {
                return NULL;
            }
        }

        return "is not one of the allowed values";

    case NGX_HTTP_TASKMGR_F_EMAIL:
        if (len > 254 || ngx_http_taskmgr_json_email(str, len) != NGX_OK) {
            return "must be an email address";
        }

        return NULL;

    default: /* NGX_HTTP_TASKMGR_F_STRING */
        chars = ngx_http_taskmgr_utf8_chars(str, len);

        if ((ngx_int_t) chars < f->min || (ngx_int_t) chars > f->max) {
            *ngx_snprintf(buf, size - 1, "must have %i to %i characters",
                          f->min, f->max) = '\0';
            return (const char *) buf;
        }

        return NULL;
    }
}


/* jansson has validated the UTF-8: count the non-continuation bytes */
static ngx_uint_t
ngx_http_taskmgr_utf8_chars(const char *s, size_t len)
{
    size_t     i;
    ngx_uint_t n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (((u_char) s[i] & 0xc0) != 0x80) {
            n++;
        }
    }

    return n;
}


/* YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM); the database checks
 * the calendar */
static ngx_int_t
ngx_http_taskmgr_json_time(const char *s, size_t len)
{
    size_t      i;
    const char *shape = "dddd-dd-ddTdd:dd:dd";

    if (len < 20 || len > 40) {
        return NGX_DECLINED;
    }

    for (i = 0; i < 19; i++) {
        if (shape[i] == 'd') {
            if (s[i] < '0' || s[i] > '9') {
                return NGX_DECLINED;
            }

        } else if (shape[i] == 'T') {
            if (s[i] != 'T' && s[i] != 't') {
                return NGX_DECLINED;
            }

        } else if (s[i] != shape[i]) {
            return NGX_DECLINED;
        }
    }

    if (s[i] == '.') {
        i++;

        if (i >= len || s[i] < '0' || s[i] > '9') {
            return NGX_DECLINED;
        }

        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
    }

    if (i == len - 1 && (s[i] == 'Z' || s[i] == 'z')) {
        return NGX_OK;
    }

    if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 1] >= '0'
        && s[i + 1] <= '9' && s[i + 2] >= '0' && s[i + 2] <= '9'
        && s[i + 3] == ':' && s[i + 4] >= '0' && s[i + 4] <= '9'
        && s[i + 5] >= '0' && s[i + 5] <= '9')
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* one '@' with something on both sides, a dot in the domain, and no
 * spaces or control characters */
static ngx_int_t
ngx_http_taskmgr_json_email(const char *s, size_t len)
{
    size_t i, at, dot;

    at = 0;
    dot = 0;

    for (i = 0; i < len; i++) {
        if ((u_char) s[i] <= ' ' || s[i] == 0x7f) {
            return NGX_DECLINED;
        }

        if (s[i] == '@') {
            if (at) {
                return NGX_DECLINED;
            }

            at = i;

        } else if (s[i] == '.' && at) {
            dot = i;
        }
    }

    if (at == 0 || dot == 0 || dot == at + 1 || dot == len - 1) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}
