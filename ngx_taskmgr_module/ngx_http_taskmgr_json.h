/*
 * Copyright (C) taskmgr developers
 *
 * Bounded JSON request parsing (jansson) and table-driven validation.
 */

#ifndef _NGX_HTTP_TASKMGR_JSON_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_JSON_H_INCLUDED_


#include "ngx_http_taskmgr.h"
#include <jansson.h>


#define NGX_HTTP_TASKMGR_MAX_ERRORS 20


typedef enum {
    NGX_HTTP_TASKMGR_F_STRING = 0,
    NGX_HTTP_TASKMGR_F_INT,
    NGX_HTTP_TASKMGR_F_UUID,
    NGX_HTTP_TASKMGR_F_TIME,
    NGX_HTTP_TASKMGR_F_ENUM,
    NGX_HTTP_TASKMGR_F_EMAIL,
    NGX_HTTP_TASKMGR_F_STRINGS,
    NGX_HTTP_TASKMGR_F_ANY /* any value: the handler checks it */
} ngx_http_taskmgr_field_type_e;


typedef struct {
    const char                   *name;
    ngx_http_taskmgr_field_type_e type;
    ngx_uint_t                    required;
    ngx_uint_t                    nullable;
    ngx_int_t                     min; /* chars, value or items */
    ngx_int_t                     max;
    const char                  **values;   /* ENUM: NULL-ended */
    ngx_int_t                     item_max; /* STRINGS: chars per item */
} ngx_http_taskmgr_field_t;


/* parses an object of at most max bytes; NULL when malformed (400) */
json_t *ngx_http_taskmgr_json_parse(ngx_http_request_t *r, u_char *data,
                                    size_t len);

/*
 * NGX_OK when obj is an object whose members all appear in fields and hold
 * valid values; otherwise *status is 400 (unknown member) or 422 (bad
 * value) and *errors the JSON array of {"field","message"}.
 */
ngx_int_t ngx_http_taskmgr_json_validate(ngx_http_request_t *r, json_t *obj,
                                         ngx_http_taskmgr_field_t *fields,
                                         ngx_uint_t *status, ngx_str_t *errors);

/* compact dump into r->pool */
ngx_int_t ngx_http_taskmgr_json_dump(ngx_http_request_t *r, json_t *j,
                                     ngx_str_t *out);

/* a member's string value, or NULL */
ngx_int_t ngx_http_taskmgr_json_string(json_t *obj, const char *key,
                                       ngx_str_t *out);


#endif /* _NGX_HTTP_TASKMGR_JSON_H_INCLUDED_ */
