/*
 * Copyright (C) taskmgr developers
 *
 * ngx_http_taskmgr_headers_module: security headers and CORS by directive.
 * A header filter adds them to every response of a location (also the
 * 401, 404, 429 and 5xx answers of the other modules and nginx's own
 * error pages); CORS preflights are answered in the REWRITE phase, before
 * the rate limiter (PREACCESS) and authentication (ACCESS).  Inert unless
 * its directives appear; knows nothing of the task API.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_taskmgr.h"


#define NGX_HTTP_TASKMGR_CORS_ORIGINS_MAX 64
#define NGX_HTTP_TASKMGR_CORS_ORIGIN_MAX  256


typedef struct {
    ngx_flag_t security;
    time_t     hsts_max_age; /* 0: no Strict-Transport-Security */
    ngx_str_t  hsts;         /* the header value */

    ngx_array_t *cors_origins; /* of ngx_str_t; NULL: unset */
    ngx_flag_t   cors_any;     /* "*" */
    ngx_flag_t   cors_off;     /* "taskmgr_cors_origins off" */
    ngx_flag_t   cors_credentials;
    ngx_str_t    cors_methods;
    ngx_str_t    cors_headers;
    ngx_str_t    cors_expose;
    time_t       cors_max_age;
    ngx_str_t    cors_max_age_str;
} ngx_http_taskmgr_headers_loc_conf_t;


static ngx_int_t ngx_http_taskmgr_headers_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_taskmgr_headers_preflight(ngx_http_request_t *r);
static ngx_int_t ngx_http_taskmgr_headers_origin_ok(
    ngx_http_taskmgr_headers_loc_conf_t *hlcf, ngx_str_t *origin);
static ngx_int_t ngx_http_taskmgr_headers_set(ngx_http_request_t *r,
                                              const char         *name,
                                              ngx_str_t          *value);
static char     *ngx_http_taskmgr_headers_origins(ngx_conf_t    *cf,
                                                  ngx_command_t *cmd, void *conf);
static void     *ngx_http_taskmgr_headers_create_loc_conf(ngx_conf_t *cf);
static char     *ngx_http_taskmgr_headers_merge_loc_conf(ngx_conf_t *cf,
                                                         void *parent, void *child);
static ngx_int_t ngx_http_taskmgr_headers_init(ngx_conf_t *cf);


/* clang-format off */
static ngx_command_t  ngx_http_taskmgr_headers_commands[] = {

    { ngx_string("taskmgr_security_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_headers_loc_conf_t, security),
      NULL },

    { ngx_string("taskmgr_security_hsts_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_headers_loc_conf_t, hsts_max_age),
      NULL },

    { ngx_string("taskmgr_cors_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_taskmgr_headers_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_cors_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_headers_loc_conf_t, cors_credentials),
      NULL },

    { ngx_string("taskmgr_cors_methods"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_headers_loc_conf_t, cors_methods),
      NULL },

    { ngx_string("taskmgr_cors_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_headers_loc_conf_t, cors_headers),
      NULL },

    { ngx_string("taskmgr_cors_expose_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_headers_loc_conf_t, cors_expose),
      NULL },

    { ngx_string("taskmgr_cors_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_headers_loc_conf_t, cors_max_age),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_taskmgr_headers_module_ctx = {
    NULL,                                     /* preconfiguration */
    ngx_http_taskmgr_headers_init,            /* postconfiguration */

    NULL,                                     /* create main conf */
    NULL,                                     /* init main conf */

    NULL,                                     /* create server conf */
    NULL,                                     /* merge server conf */

    ngx_http_taskmgr_headers_create_loc_conf, /* create location conf */
    ngx_http_taskmgr_headers_merge_loc_conf   /* merge location conf */
};


ngx_module_t  ngx_http_taskmgr_headers_module = {
    NGX_MODULE_V1,
    &ngx_http_taskmgr_headers_module_ctx,     /* module context */
    ngx_http_taskmgr_headers_commands,        /* module directives */
    NGX_HTTP_MODULE,                          /* module type */
    NULL,                                     /* init master */
    NULL,                                     /* init module */
    NULL,                                     /* init process */
    NULL,                                     /* init thread */
    NULL,                                     /* exit thread */
    NULL,                                     /* exit process */
    NULL,                                     /* exit master */
    NGX_MODULE_V1_PADDING
};
/* clang-format on */


static ngx_http_output_header_filter_pt ngx_http_next_header_filter;


static ngx_int_t
ngx_http_taskmgr_headers_filter(ngx_http_request_t *r)
{
    ngx_str_t                            v, *origin;
    ngx_table_elt_t                     *h;
    ngx_http_taskmgr_headers_loc_conf_t *hlcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_headers_module);

    if (hlcf->security) {
        ngx_str_set(&v, "nosniff");
        if (ngx_http_taskmgr_headers_set(r, "X-Content-Type-Options", &v)
            != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_str_set(&v, "DENY");
        if (ngx_http_taskmgr_headers_set(r, "X-Frame-Options", &v) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_str_set(&v, "default-src 'none'; frame-ancestors 'none'");
        if (ngx_http_taskmgr_headers_set(r, "Content-Security-Policy", &v)
            != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_str_set(&v, "no-referrer");
        if (ngx_http_taskmgr_headers_set(r, "Referrer-Policy", &v) != NGX_OK) {
            return NGX_ERROR;
        }

#if (NGX_HTTP_SSL)
        /* RFC 6797, 7.2: only over a secure transport */
        if (r->connection->ssl && hlcf->hsts.len) {
            if (ngx_http_taskmgr_headers_set(r, "Strict-Transport-Security",
                                             &hlcf->hsts)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
#endif
    }

    if (hlcf->cors_origins == NULL) {
        return ngx_http_next_header_filter(r);
    }

    /* the answer depends on Origin, whatever it is */

    ngx_str_set(&v, "Origin");
    if (ngx_http_taskmgr_add_header(r, "Vary", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    h = ngx_http_taskmgr_find_header(r, "Origin");

    if (h == NULL) {
        return ngx_http_next_header_filter(r);
    }

    origin = &h->value;

    if (ngx_http_taskmgr_headers_origin_ok(hlcf, origin) != NGX_OK) {
        /* a disallowed origin gets no CORS header at all */
        return ngx_http_next_header_filter(r);
    }

    if (hlcf->cors_any && !hlcf->cors_credentials) {
        ngx_str_set(&v, "*");
        origin = &v;
    }

    if (ngx_http_taskmgr_add_header(r, "Access-Control-Allow-Origin", origin)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (hlcf->cors_credentials) {
        ngx_str_set(&v, "true");
        if (ngx_http_taskmgr_add_header(r, "Access-Control-Allow-Credentials",
                                        &v)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (hlcf->cors_expose.len) {
        if (ngx_http_taskmgr_add_header(r, "Access-Control-Expose-Headers",
                                        &hlcf->cors_expose)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


/*
 * REWRITE phase: a CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered here, so it costs no rate
 * limit and needs no token: 204 for an allowed origin (the filter adds
 * the origin headers), 403 for any other.
 */

static ngx_int_t
ngx_http_taskmgr_headers_preflight(ngx_http_request_t *r)
{
    ngx_table_elt_t                     *origin;
    ngx_http_taskmgr_headers_loc_conf_t *hlcf;

    if (r != r->main || r->method != NGX_HTTP_OPTIONS) {
        return NGX_DECLINED;
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_headers_module);

    if (hlcf->cors_origins == NULL) {
        return NGX_DECLINED;
    }

    origin = ngx_http_taskmgr_find_header(r, "Origin");

    if (origin == NULL
        || ngx_http_taskmgr_find_header(r, "Access-Control-Request-Method")
            == NULL)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (ngx_http_taskmgr_headers_origin_ok(hlcf, &origin->value) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "taskmgr: CORS preflight from a disallowed origin");

        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                             "This origin is not allowed.");
    }

    if (ngx_http_taskmgr_add_header(r, "Access-Control-Allow-Methods",
                                    &hlcf->cors_methods)
            != NGX_OK
        || ngx_http_taskmgr_add_header(r, "Access-Control-Allow-Headers",
                                       &hlcf->cors_headers)
            != NGX_OK
        || ngx_http_taskmgr_add_header(r, "Access-Control-Max-Age",
                                       &hlcf->cors_max_age_str)
            != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = -1;
    r->header_only = 1;

    /* header only: the header is the whole answer */

    return ngx_http_send_header(r);
}


static ngx_int_t
ngx_http_taskmgr_headers_origin_ok(ngx_http_taskmgr_headers_loc_conf_t *hlcf,
                                   ngx_str_t                           *origin)
{
    ngx_str_t *o;
    ngx_uint_t i;

    if (hlcf->cors_any) {
        return NGX_OK;
    }

    o = hlcf->cors_origins->elts;

    for (i = 0; i < hlcf->cors_origins->nelts; i++) {
        if (o[i].len == origin->len
            && ngx_strncmp(o[i].data, origin->data, origin->len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* adds a header unless the response has one of that name already */

static ngx_int_t
ngx_http_taskmgr_headers_set(ngx_http_request_t *r, const char *name,
                             ngx_str_t *value)
{
    if (ngx_http_taskmgr_find_out_header(r, name) != NULL) {
        return NGX_OK;
    }

    return ngx_http_taskmgr_add_header(r, name, value);
}


/* taskmgr_cors_origins off | * | <origin> ... */

static char *
ngx_http_taskmgr_headers_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_headers_loc_conf_t *hlcf = conf;

    u_char    *p, *host;
    ngx_str_t *value, *o;
    ngx_uint_t i;

    if (hlcf->cors_origins != NULL || hlcf->cors_off) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        hlcf->cors_off = 1;
        return NGX_CONF_OK;
    }

    if (cf->args->nelts - 1 > NGX_HTTP_TASKMGR_CORS_ORIGINS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: at most %d CORS origins",
                           NGX_HTTP_TASKMGR_CORS_ORIGINS_MAX);
        return NGX_CONF_ERROR;
    }

    hlcf->cors_origins =
        ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_str_t));
    if (hlcf->cors_origins == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 1 && value[i].data[0] == '*') {
            if (cf->args->nelts != 2) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "taskmgr: CORS origin \"*\" cannot be "
                                   "combined with others");
                return NGX_CONF_ERROR;
            }

            hlcf->cors_any = 1;
            continue;
        }

        /* an origin (RFC 6454): scheme "://" host [ ":" port ], no path */

        p = value[i].data;

        if (ngx_strncmp(p, "https://", 8) == 0) {
            host = p + 8;

        } else if (ngx_strncmp(p, "http://", 7) == 0) {
            host = p + 7;

        } else {
            host = NULL;
        }

        if (host != NULL) {
            for (p = host; p < value[i].data + value[i].len; p++) {
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                      || *p == '-' || *p == '.' || *p == ':' || *p == '['
                      || *p == ']'))
                {
                    break;
                }
            }
        }

        if (host == NULL || p != value[i].data + value[i].len || host == p
            || value[i].len > NGX_HTTP_TASKMGR_CORS_ORIGIN_MAX)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr: invalid CORS origin \"%V\" "
                               "(expected http[s]://host[:port] in lower "
                               "case, without a path)",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        o = ngx_array_push(hlcf->cors_origins);
        if (o == NULL) {
            return NGX_CONF_ERROR;
        }

        *o = value[i];
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_taskmgr_headers_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_taskmgr_headers_loc_conf_t *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_headers_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->hsts = { 0, NULL };
     *     conf->cors_origins = NULL;
     *     conf->cors_any = 0;
     *     conf->cors_off = 0;
     *     conf->cors_methods = { 0, NULL };
     *     conf->cors_headers = { 0, NULL };
     *     conf->cors_expose = { 0, NULL };
     *     conf->cors_max_age_str = { 0, NULL };
     */

    conf->security = NGX_CONF_UNSET;
    conf->hsts_max_age = NGX_CONF_UNSET;
    conf->cors_credentials = NGX_CONF_UNSET;
    conf->cors_max_age = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_taskmgr_headers_merge_loc_conf(ngx_conf_t *cf, void *parent,
                                        void *child)
{
    ngx_http_taskmgr_headers_loc_conf_t *prev = parent;
    ngx_http_taskmgr_headers_loc_conf_t *conf = child;

    u_char *p;

    ngx_conf_merge_value(conf->security, prev->security, 0);
    ngx_conf_merge_sec_value(conf->hsts_max_age, prev->hsts_max_age,
                             365 * 86400);

    if (conf->hsts_max_age > 0) {
        p = ngx_pnalloc(cf->pool, sizeof("max-age=") - 1 + NGX_TIME_T_LEN);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        conf->hsts.data = p;
        conf->hsts.len = ngx_sprintf(p, "max-age=%T", conf->hsts_max_age) - p;
    }

    if (conf->cors_origins == NULL && !conf->cors_off) {
        conf->cors_origins = prev->cors_origins;
        conf->cors_any = prev->cors_any;
    }

    ngx_conf_merge_value(conf->cors_credentials, prev->cors_credentials, 0);
    ngx_conf_merge_str_value(conf->cors_methods, prev->cors_methods,
                             "GET, POST, PATCH, DELETE");
    ngx_conf_merge_str_value(conf->cors_headers, prev->cors_headers,
                             "Authorization, Content-Type, Idempotency-Key, "
                             "If-Match, If-None-Match, X-Request-Id");
    ngx_conf_merge_str_value(conf->cors_expose, prev->cors_expose,
                             "ETag, Link, Location, Retry-After, X-Request-Id, "
                             "X-Total-Count, X-Total-Count-Capped, RateLimit, "
                             "RateLimit-Policy");
    ngx_conf_merge_sec_value(conf->cors_max_age, prev->cors_max_age, 600);

    if (conf->cors_any && conf->cors_credentials) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "taskmgr: \"taskmgr_cors_origins *\" cannot be used "
                      "with \"taskmgr_cors_credentials on\": list the "
                      "origins");
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->cors_max_age_str.data = p;
    conf->cors_max_age_str.len = ngx_sprintf(p, "%T", conf->cors_max_age) - p;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_taskmgr_headers_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt       *h;
    ngx_http_core_main_conf_t *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_taskmgr_headers_preflight;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_taskmgr_headers_filter;

    return NGX_OK;
}
