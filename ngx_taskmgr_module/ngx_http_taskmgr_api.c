/*
 * Copyright (C) taskmgr developers
 *
 * The task API content handler: route, authenticate, read and validate the
 * body, hand over to a resource handler; and the helpers handlers share to
 * call PostgreSQL and answer.
 */


#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_query.h"
#include <ngx_md5.h>


static ngx_int_t ngx_http_taskmgr_api_init(ngx_conf_t *cf);
static void     *ngx_http_taskmgr_api_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_taskmgr_api_merge_loc_conf(ngx_conf_t *cf, void *parent,
                                                 void *child);
static char *ngx_http_taskmgr_api(ngx_conf_t *cf, ngx_command_t *cmd,
                                  void *conf);
static char *ngx_http_taskmgr_healthz(ngx_conf_t *cf, ngx_command_t *cmd,
                                      void *conf);
static char *ngx_http_taskmgr_readyz(ngx_conf_t *cf, ngx_command_t *cmd,
                                     void *conf);
static ngx_int_t ngx_http_taskmgr_api_handler(ngx_http_request_t *r);
static void      ngx_http_taskmgr_api_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_taskmgr_api_body(ngx_http_request_t         *r,
                                           ngx_http_taskmgr_api_ctx_t *ctx,
                                           ngx_int_t                  *rc);
static ngx_int_t ngx_http_taskmgr_api_json_type(ngx_http_request_t *r);
static ngx_int_t ngx_http_taskmgr_api_sql_error(ngx_http_request_t          *r,
                                                ngx_http_taskmgr_pg_query_t *q);
static ngx_str_t ngx_http_taskmgr_api_empty = ngx_null_string;


static ngx_int_t ngx_http_taskmgr_api_body_etag(ngx_http_request_t *r,
                                                ngx_str_t          *body);


/* clang-format off */
static ngx_command_t  ngx_http_taskmgr_api_commands[] = {

    { ngx_string("taskmgr_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_taskmgr_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_api_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("taskmgr_refresh_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, refresh_ttl),
      NULL },

    { ngx_string("taskmgr_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, cache),
      NULL },

    { ngx_string("taskmgr_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, cache_ttl),
      NULL },

    { ngx_string("taskmgr_cache_max_entry_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, cache_max_entry_size),
      NULL },

    { ngx_string("taskmgr_search_offset_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, search_offset_max),
      NULL },

    { ngx_string("taskmgr_password_blocklist"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_password_blocklist,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_login_max_failures"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, login_max_failures),
      NULL },

    { ngx_string("taskmgr_login_failure_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, login_failure_window),
      NULL },

    { ngx_string("taskmgr_login_lock_time"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, login_lock_time),
      NULL },

    { ngx_string("taskmgr_login_max_lock_time"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, login_max_lock_time),
      NULL },

    { ngx_string("taskmgr_login_ip_max_failures"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, login_ip_max_failures),
      NULL },

    { ngx_string("taskmgr_login_ip_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_api_loc_conf_t, login_ip_window),
      NULL },

    { ngx_string("taskmgr_healthz"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_taskmgr_healthz,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_readyz"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_taskmgr_readyz,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_taskmgr_api_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_taskmgr_api_init,             /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_taskmgr_api_create_loc_conf,  /* create location configuration */
    ngx_http_taskmgr_api_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_taskmgr_api_module = {
    NGX_MODULE_V1,
    &ngx_http_taskmgr_api_module_ctx,      /* module context */
    ngx_http_taskmgr_api_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};
/* clang-format on */


static ngx_int_t
ngx_http_taskmgr_api_init(ngx_conf_t *cf)
{
    if (ngx_http_taskmgr_auth_api_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_cache_init();
}


static void *
ngx_http_taskmgr_api_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_api_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    alcf->enable = NGX_CONF_UNSET;
    alcf->max_body_size = NGX_CONF_UNSET_SIZE;
    alcf->refresh_ttl = NGX_CONF_UNSET;
    alcf->cache = NGX_CONF_UNSET;
    alcf->cache_ttl = NGX_CONF_UNSET_MSEC;
    alcf->cache_max_entry_size = NGX_CONF_UNSET_SIZE;
    alcf->search_offset_max = NGX_CONF_UNSET_UINT;
    alcf->pw_blocklist = NGX_CONF_UNSET_PTR;
    alcf->login_max_failures = NGX_CONF_UNSET_UINT;
    alcf->login_failure_window = NGX_CONF_UNSET;
    alcf->login_lock_time = NGX_CONF_UNSET;
    alcf->login_max_lock_time = NGX_CONF_UNSET;
    alcf->login_ip_max_failures = NGX_CONF_UNSET_UINT;
    alcf->login_ip_window = NGX_CONF_UNSET;

    return alcf;
}


static char *
ngx_http_taskmgr_api_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_taskmgr_api_loc_conf_t *prev = parent;
    ngx_http_taskmgr_api_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_taskmgr_main_conf_t *mcf;

    /* taskmgr_api is a location's own content handler: not inherited */
    if (conf->enable == NGX_CONF_UNSET) {
        conf->enable = 0;
    }
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              1024 * 1024);
    ngx_conf_merge_sec_value(conf->refresh_ttl, prev->refresh_ttl,
                             30 * 24 * 3600);
    ngx_conf_merge_value(conf->cache, prev->cache, 0);
    ngx_conf_merge_msec_value(conf->cache_ttl, prev->cache_ttl, 30000);
    ngx_conf_merge_size_value(conf->cache_max_entry_size,
                              prev->cache_max_entry_size, 256 * 1024);
    ngx_conf_merge_uint_value(conf->search_offset_max, prev->search_offset_max,
                              1000);

    if (conf->search_offset_max < 1
        || conf->search_offset_max > NGX_HTTP_TASKMGR_LIST_OFFSET_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_search_offset_max must be between 1 and "
                           "%d",
                           NGX_HTTP_TASKMGR_LIST_OFFSET_MAX);
        return NGX_CONF_ERROR;
    }

    if (conf->cache) {
        mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_taskmgr_module);

        if (mcf->redis_addr.len == 0) {
            /* the same configuration serves without Redis: reads simply
             * go to PostgreSQL */
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "taskmgr_cache is ignored: no taskmgr_redis "
                               "in http{}");
            conf->cache = 0;
        }
    }

    if (conf->refresh_ttl < 60 || conf->refresh_ttl > 365 * 24 * 3600) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_refresh_ttl must be between "
                           "1m and 365d");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_taskmgr_auth_api_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != ngx_http_taskmgr_api_handler) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_api conflicts with another content "
                           "handler in the same location");
        return NGX_CONF_ERROR;
    }

    /* bodies are parsed from memory: they must never spill to a file */

    if (clcf->client_body_buffer_size < conf->max_body_size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "client_body_buffer_size (%uz) must be at least "
                           "taskmgr_api_max_body_size (%uz)",
                           clcf->client_body_buffer_size, conf->max_body_size);
        return NGX_CONF_ERROR;
    }

    if (clcf->client_max_body_size
        && clcf->client_max_body_size < (off_t) conf->max_body_size)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "client_max_body_size must be at least "
                           "taskmgr_api_max_body_size (%uz), so that "
                           "oversized bodies get a JSON answer",
                           conf->max_body_size);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_taskmgr_set_handler(ngx_conf_t *cf, ngx_http_handler_pt handler)
{
    ngx_http_core_loc_conf_t *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate or conflicts with another content handler";
    }

    clcf->handler = handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_taskmgr_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_api_loc_conf_t *alcf = conf;

    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_taskmgr_module);

    if (mcf->pg_dsn.len == 0) {
        /* main conf directives may come later in http{}: checked at
         * request time too, this catches the common mistake early */
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "taskmgr_api: taskmgr_pg_dsn is not set yet "
                           "(it must appear in http{})");
    }

    alcf->enable = 1;

    return ngx_http_taskmgr_set_handler(cf, ngx_http_taskmgr_api_handler);
}


static char *
ngx_http_taskmgr_healthz(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_taskmgr_set_handler(cf, ngx_http_taskmgr_healthz_handler);
}


static char *
ngx_http_taskmgr_readyz(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_taskmgr_set_handler(cf, ngx_http_taskmgr_readyz_handler);
}


ngx_http_taskmgr_api_ctx_t *
ngx_http_taskmgr_api_ctx(ngx_http_request_t *r)
{
    return ngx_http_get_module_ctx(r, ngx_http_taskmgr_api_module);
}


static ngx_int_t
ngx_http_taskmgr_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        allow;
    ngx_http_taskmgr_api_ctx_t      *ctx;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_taskmgr_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_taskmgr_api_module);

    rc = ngx_http_taskmgr_route(r, ctx, &allow);

    if (rc != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_HTTP_NOT_ALLOWED) {
            if (ngx_http_taskmgr_add_header(r, "Allow", &allow) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_taskmgr_send_problem(r, NGX_HTTP_NOT_ALLOWED,
                                                 "method_not_allowed",
                                                 "method not allowed here");
        }

        if (rc == NGX_HTTP_NOT_FOUND) {
            return ngx_http_taskmgr_send_problem(
                r, NGX_HTTP_NOT_FOUND, "not_found", "no such resource");
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* preconditions are the handlers' business: nginx's not-modified
     * filter would compare If-Match with the ETag of a write's answer */
    r->disable_not_modified = 1;

    if (!(ctx->route->flags & NGX_HTTP_TASKMGR_ARGS) && r->args.len) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_taskmgr_api_bad_arg(r, NULL, "unknown parameter");
    }

    if (ctx->route->flags & NGX_HTTP_TASKMGR_AUTH) {
        ctx->identity = ngx_http_taskmgr_auth_identity(r);

        if (ctx->identity == NULL) {
            /* taskmgr_auth_jwt is off here: refuse rather than serve */
            if (ngx_http_discard_request_body(r) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_taskmgr_send_problem(r, NGX_HTTP_UNAUTHORIZED,
                                                 "unauthorized",
                                                 "authentication required");
        }
    }

    if (ctx->route->flags & NGX_HTTP_TASKMGR_UPLOAD) {
        /* the handler decides whether and how the body is read */
        rc = ctx->route->handler(r, ctx);

        if (rc == NGX_DONE) {
            r->main->count++;
        }

        return rc;
    }

    if (!(ctx->route->flags & NGX_HTTP_TASKMGR_BODY)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_taskmgr_idem_begin(r, ctx);

        if (rc == NGX_DECLINED) {
            rc = ctx->route->handler(r, ctx);
        }

        if (rc == NGX_DONE) {
            r->main->count++;
        }

        return rc;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

    if (ngx_http_taskmgr_api_json_type(r) != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                             "unsupported_media_type",
                                             "the body must be "
                                             "application/json");
    }

    if (r->headers_in.content_length_n > (off_t) alcf->max_body_size) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_taskmgr_send_problem(
            r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
            "the body is larger than this endpoint accepts");
    }

    r->request_body_in_single_buf = 1;

    rc =
        ngx_http_read_client_request_body(r, ngx_http_taskmgr_api_body_handler);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        /* a chunked body over client_max_body_size; the rest of it is
         * never read, so the connection cannot be kept */
        r->keepalive = 0;
        r->lingering_close = 1;

        return ngx_http_taskmgr_send_problem(
            r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
            "the body is larger than this endpoint accepts");
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_taskmgr_api_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_body(r, ctx, &rc) == NGX_OK) {
        rc = ngx_http_taskmgr_idem_begin(r, ctx);

        if (rc == NGX_DECLINED) {
            rc = ctx->route->handler(r, ctx);
        }
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * NGX_OK: ctx->body holds a valid object.  NGX_DONE: an error answer was
 * sent, *rc is its finalize code.
 */
static ngx_int_t
ngx_http_taskmgr_api_body(ngx_http_request_t         *r,
                          ngx_http_taskmgr_api_ctx_t *ctx, ngx_int_t *rc)
{
    u_char                          *p;
    size_t                           len;
    ngx_str_t                        errors;
    ngx_uint_t                       status;
    ngx_chain_t                     *cl;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_BAD_REQUEST,
                                            "validation_failed",
                                            "a JSON body is required");
        return NGX_DONE;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (ngx_buf_special(cl->buf)) {
            /* the empty end-of-body marker of chunked bodies */
            continue;
        }

        if (cl->buf->in_file || !ngx_buf_in_memory(cl->buf)) {
            *rc = ngx_http_taskmgr_send_problem(
                r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
                "the body is larger than this endpoint accepts");
            return NGX_DONE;
        }

        len += cl->buf->last - cl->buf->pos;
    }

    if (len == 0) {
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_BAD_REQUEST,
                                            "validation_failed",
                                            "a JSON body is required");
        return NGX_DONE;
    }

    if (len > alcf->max_body_size) {
        *rc = ngx_http_taskmgr_send_problem(
            r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
            "the body is larger than this endpoint accepts");
        return NGX_DONE;
    }

    if (r->request_body->bufs->next == NULL
        || (r->request_body->bufs->next->next == NULL
            && ngx_buf_special(r->request_body->bufs->next->buf)))
    {
        p = r->request_body->bufs->buf->pos;

    } else {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DONE;
        }

        len = 0;
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            if (ngx_buf_special(cl->buf)) {
                continue;
            }

            ngx_memcpy(p + len, cl->buf->pos, cl->buf->last - cl->buf->pos);
            len += cl->buf->last - cl->buf->pos;
        }
    }

    ctx->body = ngx_http_taskmgr_json_parse(r, p, len);

    if (ctx->body == NULL) {
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_BAD_REQUEST,
                                            "validation_failed",
                                            "the body is not valid JSON");
        return NGX_DONE;
    }

    switch (ngx_http_taskmgr_json_validate(r, ctx->body, ctx->route->fields,
                                           &status, &errors))
    {
    case NGX_OK:
        break;

    case NGX_DECLINED:
        *rc = ngx_http_taskmgr_send_problem_errors(
            r, status, "validation_failed",
            status == NGX_HTTP_BAD_REQUEST
                ? "the body does not match this endpoint"
                : "some fields are invalid",
            &errors);
        return NGX_DONE;

    default:
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    if (ngx_http_taskmgr_json_dump(r, ctx->body, &ctx->body_json) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    return NGX_OK;
}


/* application/json, with parameters, or application/merge-patch+json */
static ngx_int_t
ngx_http_taskmgr_api_json_type(ngx_http_request_t *r)
{
    size_t     len;
    u_char    *p;
    ngx_str_t *ct;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    ct = &r->headers_in.content_type->value;
    p = ct->data;

    for (len = 0; len < ct->len && p[len] != ';' && p[len] != ' '; len++) {
        /* void */
    }

    if ((len == sizeof("application/json") - 1
         && ngx_strncasecmp(p, (u_char *) "application/json", len) == 0)
        || (len == sizeof("application/merge-patch+json") - 1
            && ngx_strncasecmp(p, (u_char *) "application/merge-patch+json",
                               len)
                == 0))
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * A query whose first two parameters are the caller: user id and session
 * id (NULL for tokens without a session).
 */
ngx_http_taskmgr_pg_query_t *
ngx_http_taskmgr_api_query(ngx_http_request_t         *r,
                           ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
                           ngx_http_taskmgr_pg_handler_pt handler)
{
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_pg_query_create(r, stmt, handler);
    if (q == NULL) {
        return NULL;
    }

    if (ctx->identity) {
        ngx_http_taskmgr_pg_param(q, &ctx->identity->sub);
        ngx_http_taskmgr_pg_param(
            q, ctx->identity->sid.len ? &ctx->identity->sid : NULL);
    }

    return q;
}


/*
 * The audit context of a write (sql/0007_audit.sql): the request id (the
 * one X-Request-Id answers) and the client's address (after realip, if
 * configured), NULL for a unix-socket client.  Both are bound parameters.
 */
void
ngx_http_taskmgr_api_audit_params(ngx_http_request_t          *r,
                                  ngx_http_taskmgr_pg_query_t *q)
{
    ngx_str_t        *ip, rid;
    ngx_connection_t *c;

    c = r->connection;

    ngx_http_taskmgr_request_id(r, &rid);

    switch (c->sockaddr->sa_family) {
    case AF_INET:
#if (NGX_HAVE_INET6)
    case AF_INET6:
#endif
        ip = c->addr_text.len ? &c->addr_text : NULL;
        break;
    default:
        ip = NULL;
    }

    ngx_http_taskmgr_pg_param(q, rid.len ? &rid : NULL);
    ngx_http_taskmgr_pg_param(q, ip);
}


/* NGX_DONE when submitted, else the finalize code of the 503 sent */
ngx_int_t
ngx_http_taskmgr_api_submit(ngx_http_request_t          *r,
                            ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t rc;

    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_taskmgr_pg_submit(q);

    if (rc == NGX_OK) {
        return NGX_DONE;
    }

    if (rc == NGX_HTTP_SERVICE_UNAVAILABLE) {
        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "dependency_unavailable",
                                             "the database is busy or "
                                             "unreachable, retry shortly");
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * NGX_OK: the query answered without an SQL error.  NGX_DONE: an error
 * answer was sent and *rc is its finalize code.
 */
ngx_int_t
ngx_http_taskmgr_api_check(ngx_http_taskmgr_pg_query_t *q, ngx_int_t *rc)
{
    ngx_http_request_t *r;

    r = q->request;

    if (q->rc == NGX_HTTP_SERVICE_UNAVAILABLE) {
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "dependency_unavailable",
                                            "the database did not answer "
                                            "in time, retry shortly");
        return NGX_DONE;
    }

    if (q->rc != NGX_OK || q->res == NULL) {
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                            "internal", NULL);
        return NGX_DONE;
    }

    if (q->sqlstate) {
        *rc = ngx_http_taskmgr_api_sql_error(r, q);
        return NGX_DONE;
    }

    return NGX_OK;
}


/*
 * NGX_OK: res holds the first row (status, body, meta).  NGX_DONE: an
 * error answer was sent and *rc is its finalize code.
 */
ngx_int_t
ngx_http_taskmgr_api_result(ngx_http_taskmgr_pg_query_t *q,
                            ngx_http_taskmgr_result_t *res, ngx_int_t *rc)
{
    ngx_int_t           n;
    ngx_str_t           s;
    ngx_http_request_t *r;

    r = q->request;

    if (ngx_http_taskmgr_api_check(q, rc) != NGX_OK) {
        return NGX_DONE;
    }

    if (ngx_http_taskmgr_pg_value(q, 0, &s) != NGX_OK
        || (n = ngx_atoi(s.data, s.len)) == NGX_ERROR || n < 100 || n > 599)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: unexpected result shape from statement %s",
                      ngx_http_taskmgr_sql_stmts[q->stmt].name);
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                            "internal", NULL);
        return NGX_DONE;
    }

    res->status = n;
    (void) ngx_http_taskmgr_pg_value(q, 1, &res->body);
    (void) ngx_http_taskmgr_pg_value(q, 2, &res->meta);

    return NGX_OK;
}


/* the problem code of an error status answered by a tm_api function */
const char *
ngx_http_taskmgr_api_status_code(ngx_uint_t status)
{
    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_UNPROCESSABLE_ENTITY:
        return "validation_failed";
    case NGX_HTTP_UNAUTHORIZED:
        return "unauthorized";
    case NGX_HTTP_FORBIDDEN:
        return "forbidden";
    case NGX_HTTP_NOT_FOUND:
        return "not_found";
    case NGX_HTTP_CONFLICT:
        return "conflict";
    case NGX_HTTP_PRECONDITION_FAILED:
        return "precondition_failed";
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        return "dependency_unavailable";
    default:
        return "internal";
    }
}


static ngx_int_t
ngx_http_taskmgr_api_sql_error(ngx_http_request_t          *r,
                               ngx_http_taskmgr_pg_query_t *q)
{
    const char *st;

    st = q->sqlstate;

    /* class 22 (data exception), 23 (integrity) are the client's input */
    if (ngx_strncmp(st, "22", 2) == 0 || ngx_strcmp(st, "23514") == 0
        || ngx_strcmp(st, "23503") == 0 || ngx_strcmp(st, "23502") == 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "taskmgr: statement %s rejected input (%s)",
                      ngx_http_taskmgr_sql_stmts[q->stmt].name, st);
        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                             "validation_failed",
                                             "a value is out of range or "
                                             "refers to nothing");
    }

    if (ngx_strcmp(st, "23505") == 0) {
        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_CONFLICT, "conflict",
                                             "that already exists");
    }

    if (ngx_strcmp(st, "40001") == 0 || ngx_strcmp(st, "40P01") == 0
        || ngx_strcmp(st, "57014") == 0 || ngx_strncmp(st, "08", 2) == 0
        || ngx_strcmp(st, "55P03") == 0 || ngx_strcmp(st, "53300") == 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: statement %s failed (%s): %s",
                      ngx_http_taskmgr_sql_stmts[q->stmt].name, st,
                      PQresultErrorMessage(q->res));
        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "dependency_unavailable",
                                             "the database could not finish "
                                             "in time, retry shortly");
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "taskmgr: statement %s failed (%s): %s",
                  ngx_http_taskmgr_sql_stmts[q->stmt].name, st,
                  PQresultErrorMessage(q->res));

    return ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         "internal", NULL);
}


/* the plain answer: a problem for status >= 400, else the JSON body */
ngx_int_t
ngx_http_taskmgr_api_respond(ngx_http_request_t        *r,
                             ngx_http_taskmgr_result_t *res)
{
    if (res->status >= NGX_HTTP_BAD_REQUEST) {
        return ngx_http_taskmgr_send_problem(r, res->status,
                                             (const char *) res->body.data,
                                             (const char *) res->meta.data);
    }

    if ((r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))
        && res->status == NGX_HTTP_OK) {
        if (ngx_http_taskmgr_api_cache_private(r) != NGX_OK) {
            return NGX_ERROR;
        }

        if (r->headers_out.etag == NULL) {
            switch (ngx_http_taskmgr_api_body_etag(r, &res->body)) {
            case NGX_OK:
                break;
            case NGX_DECLINED:
                return ngx_http_taskmgr_send(r, NGX_HTTP_NOT_MODIFIED, NULL,
                                             NULL);
            default:
                return NGX_ERROR;
            }
        }
    }

    return ngx_http_taskmgr_send_json(r, res->status, &res->body);
}


/* a weak validator for representations without a version: MD5 of the
 * body */
static ngx_int_t
ngx_http_taskmgr_api_body_etag(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char   *p, digest[16];
    ngx_md5_t md5;
    ngx_str_t etag;

    p = ngx_pnalloc(r->pool, sizeof("W/\"\"") - 1 + 32);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, body->data, body->len);
    ngx_md5_final(digest, &md5);

    etag.data = p;
    p = ngx_cpymem(p, "W/\"", 3);
    p = ngx_hex_dump(p, digest, 16);
    *p++ = '"';
    etag.len = p - etag.data;

    return ngx_http_taskmgr_api_etag(r, &etag);
}


/*
 * Sets ETag.  NGX_DECLINED when the request's If-None-Match holds it
 * (weak comparison): the caller answers 304.
 */
ngx_int_t
ngx_http_taskmgr_api_etag(ngx_http_request_t *r, ngx_str_t *etag)
{
    u_char          *p, *end, *start;
    ngx_str_t        mine, theirs;
    ngx_table_elt_t *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value = *etag;
    r->headers_out.etag = h;

    if (r->headers_in.if_none_match == NULL) {
        return NGX_OK;
    }

    mine = *etag;
    if (mine.len > 2 && mine.data[0] == 'W' && mine.data[1] == '/') {
        mine.data += 2;
        mine.len -= 2;
    }

    p = r->headers_in.if_none_match->value.data;
    end = p + r->headers_in.if_none_match->value.len;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\t')) {
            p++;
        }

        start = p;
        while (p < end && *p != ',') {
            p++;
        }

        theirs.data = start;
        theirs.len = p - start;

        while (theirs.len
               && (theirs.data[theirs.len - 1] == ' '
                   || theirs.data[theirs.len - 1] == '\t'))
        {
            theirs.len--;
        }

        if (theirs.len == 1 && theirs.data[0] == '*') {
            return NGX_DECLINED;
        }

        if (theirs.len > 2 && theirs.data[0] == 'W' && theirs.data[1] == '/') {
            theirs.data += 2;
            theirs.len -= 2;
        }

        if (theirs.len == mine.len
            && ngx_strncmp(theirs.data, mine.data, mine.len) == 0)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* the completion of a query whose row is the whole answer */
void
ngx_http_taskmgr_api_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                 rc;
    ngx_http_taskmgr_result_t res;

    if (ngx_http_taskmgr_api_result(q, &res, &rc) == NGX_OK) {
        rc = ngx_http_taskmgr_api_respond(q->request, &res);
    }

    ngx_http_taskmgr_api_finish(q->request, rc);
}


/*
 * The answer of q's tm_api call when its status is the expected one:
 * NGX_OK.  Otherwise the request is finalized (a transport or SQL error,
 * or the answer as it is) and NGX_DONE returned.
 */
ngx_int_t
ngx_http_taskmgr_api_expect(ngx_http_taskmgr_pg_query_t *q,
                            ngx_http_taskmgr_result_t *res, ngx_uint_t status)
{
    ngx_int_t rc;

    if (ngx_http_taskmgr_api_result(q, res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(q->request, rc);
        return NGX_DONE;
    }

    if (res->status != status) {
        ngx_http_taskmgr_api_finish(
            q->request, ngx_http_taskmgr_api_respond(q->request, res));
        return NGX_DONE;
    }

    return NGX_OK;
}


void
ngx_http_taskmgr_api_finish(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_finalize_request(r, rc);
}


/*
 * Path parameter i must be a UUID; a malformed one answers 404 like an
 * unknown one.  NGX_OK, or NGX_DONE with *rc the finalize code.
 */
ngx_int_t
ngx_http_taskmgr_api_uuid_param(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t i,
                                const char *what, ngx_int_t *rc)
{
    if (i < ctx->nparams && ngx_http_taskmgr_is_uuid(&ctx->params[i]) == NGX_OK)
    {
        return NGX_OK;
    }

    *rc =
        ngx_http_taskmgr_send_problem(r, NGX_HTTP_NOT_FOUND, "not_found", what);
    return NGX_DONE;
}


/* splits "a b" */
ngx_int_t
ngx_http_taskmgr_api_split_meta(ngx_str_t *meta, ngx_str_t *a, ngx_str_t *b)
{
    u_char *sp;

    if (meta->data == NULL) {
        return NGX_ERROR;
    }

    sp = ngx_strlchr(meta->data, meta->data + meta->len, ' ');
    if (sp == NULL) {
        return NGX_ERROR;
    }

    a->data = meta->data;
    a->len = sp - meta->data;
    b->data = sp + 1;
    b->len = meta->data + meta->len - b->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_api_cache_private(ngx_http_request_t *r)
{
    ngx_str_t v = ngx_string("private, no-cache");

    return ngx_http_taskmgr_add_header(r, "Cache-Control", &v);
}


/*
 * 400 naming a query parameter; name NULL: the first one of the request.
 */
ngx_int_t
ngx_http_taskmgr_api_bad_arg(ngx_http_request_t *r, ngx_str_t *name,
                             const char *message)
{
    u_char   *p;
    size_t    len;
    ngx_str_t esc, errors, first;

    if (name == NULL) {
        first.data = r->args.data;
        first.len = 0;

        while (first.len < r->args.len && first.data[first.len] != '='
               && first.data[first.len] != '&')
        {
            first.len++;
        }

        name = &first;
    }

    esc.len = ngx_min(name->len, 64);
    esc.data = name->data;

    if (ngx_http_taskmgr_json_escape(r->pool, &esc, &esc) != NGX_OK) {
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


/* a representation from the cache: Link, validators, X-Cache, body */
ngx_int_t
ngx_http_taskmgr_api_send_hit(ngx_http_request_t       *r,
                              ngx_http_taskmgr_cache_t *cache)
{
    ngx_int_t rc;

    if (cache->link.len
        && ngx_http_taskmgr_add_header(r, "Link", &cache->link) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_taskmgr_api_cache_private(r) != NGX_OK
        || ngx_http_taskmgr_cache_header(r, cache) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_taskmgr_api_etag(r, &cache->etag);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_taskmgr_send(r, NGX_HTTP_NOT_MODIFIED, NULL, NULL);
    }

    return ngx_http_taskmgr_send_json(r, NGX_HTTP_OK, &cache->body);
}


/*
 * As ngx_http_taskmgr_api_respond() for a cacheable read whose lookup
 * missed: a 200 also goes to the cache, with its weak validator.
 */
ngx_int_t
ngx_http_taskmgr_api_respond_cached(ngx_http_request_t        *r,
                                    ngx_http_taskmgr_result_t *res)
{
    ngx_int_t                   rc;
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (res->status != NGX_HTTP_OK
        || ctx->cache.state == NGX_HTTP_TASKMGR_CACHE_OFF)
    {
        return ngx_http_taskmgr_api_respond(r, res);
    }

    if (ngx_http_taskmgr_cache_header(r, &ctx->cache) != NGX_OK
        || ngx_http_taskmgr_api_cache_private(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_taskmgr_api_body_etag(r, &res->body);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    ngx_http_taskmgr_cache_store(r, &ctx->cache, &r->headers_out.etag->value,
                                 &ngx_http_taskmgr_api_empty, &res->body);

    if (rc == NGX_DECLINED) {
        return ngx_http_taskmgr_send(r, NGX_HTTP_NOT_MODIFIED, NULL, NULL);
    }

    return ngx_http_taskmgr_send_json(r, res->status, &res->body);
}
