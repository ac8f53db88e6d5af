/*
 * Copyright (C) taskmgr developers
 *
 * The core module: PostgreSQL, Redis and password-hashing settings, the
 * per-worker PostgreSQL pool and Redis client, and the request id (variable
 * and response header).
 */


#include "ngx_http_taskmgr.h"
#include "ngx_http_taskmgr_pg.h"
#include "ngx_http_taskmgr_redis.h"
#include "ngx_http_taskmgr_cache.h"


typedef struct {
    ngx_flag_t request_id;
} ngx_http_taskmgr_loc_conf_t;


static ngx_int_t ngx_http_taskmgr_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_taskmgr_init(ngx_conf_t *cf);
static void     *ngx_http_taskmgr_create_main_conf(ngx_conf_t *cf);
static char     *ngx_http_taskmgr_init_main_conf(ngx_conf_t *cf, void *conf);
static void     *ngx_http_taskmgr_create_loc_conf(ngx_conf_t *cf);
static char     *ngx_http_taskmgr_merge_loc_conf(ngx_conf_t *cf, void *parent,
                                                 void *child);
static char     *ngx_http_taskmgr_pg_dsn(ngx_conf_t *cf, ngx_command_t *cmd,
                                         void *conf);
static char     *ngx_http_taskmgr_pg_password_file(ngx_conf_t    *cf,
                                                   ngx_command_t *cmd, void *conf);
static char     *ngx_http_taskmgr_argon2(ngx_conf_t *cf, ngx_command_t *cmd,
                                         void *conf);
static char     *ngx_http_taskmgr_redis(ngx_conf_t *cf, ngx_command_t *cmd,
                                        void *conf);
static char     *ngx_http_taskmgr_redis_password_file(ngx_conf_t    *cf,
                                                      ngx_command_t *cmd,
                                                      void          *conf);
static char     *ngx_http_taskmgr_cursor_secret_file(ngx_conf_t    *cf,
                                                     ngx_command_t *cmd,
                                                     void          *conf);
static char     *ngx_http_taskmgr_strdup(ngx_pool_t *pool, const char *s);

static char *ngx_http_taskmgr_mfa_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                           void *conf);
static ngx_int_t ngx_http_taskmgr_push_kv(ngx_conf_t                   *cf,
                                          ngx_http_taskmgr_main_conf_t *mcf,
                                          const char *k, const char *v);
static ngx_int_t ngx_http_taskmgr_init_process(ngx_cycle_t *cycle);
static void      ngx_http_taskmgr_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_taskmgr_request_id_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_taskmgr_header_filter(ngx_http_request_t *r);


static ngx_conf_num_bounds_t ngx_http_taskmgr_pool_size_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};

static ngx_conf_num_bounds_t ngx_http_taskmgr_queue_size_bounds = {
    ngx_conf_check_num_bounds, 0, 1000000
};

static ngx_conf_num_bounds_t ngx_http_taskmgr_redis_pool_size_bounds = {
    ngx_conf_check_num_bounds, 1, 64
};

static ngx_conf_num_bounds_t ngx_http_taskmgr_redis_database_bounds = {
    ngx_conf_check_num_bounds, 0, 1000000
};


/* clang-format off */
static ngx_command_t  ngx_http_taskmgr_commands[] = {

    { ngx_string("taskmgr_pg_dsn"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_pg_dsn,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_pg_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_pg_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_cursor_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_cursor_secret_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_pg_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, pg_pool_size),
      &ngx_http_taskmgr_pool_size_bounds },

    { ngx_string("taskmgr_pg_queue_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, pg_queue_size),
      &ngx_http_taskmgr_queue_size_bounds },

    { ngx_string("taskmgr_pg_query_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, pg_query_timeout),
      NULL },

    { ngx_string("taskmgr_task_purge_after"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, task_purge_after),
      NULL },

    { ngx_string("taskmgr_task_purge_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, task_purge_interval),
      NULL },

    { ngx_string("taskmgr_pg_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, pg_connect_timeout),
      NULL },

    { ngx_string("taskmgr_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_redis_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_redis_user"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, redis_user),
      NULL },

    { ngx_string("taskmgr_redis_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, redis_database),
      &ngx_http_taskmgr_redis_database_bounds },

    { ngx_string("taskmgr_redis_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, redis_pool_size),
      &ngx_http_taskmgr_redis_pool_size_bounds },

    { ngx_string("taskmgr_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("taskmgr_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, redis_connect_timeout),
      NULL },

    { ngx_string("taskmgr_cache_local_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, cache_local_size),
      NULL },

    { ngx_string("taskmgr_password_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_main_conf_t, pw_thread_pool_name),
      NULL },

    { ngx_string("taskmgr_argon2"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_taskmgr_argon2,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_mfa_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_mfa_key_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_request_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_loc_conf_t, request_id),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_taskmgr_module_ctx = {
    ngx_http_taskmgr_add_variables,        /* preconfiguration */
    ngx_http_taskmgr_init,                 /* postconfiguration */

    ngx_http_taskmgr_create_main_conf,     /* create main configuration */
    ngx_http_taskmgr_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_taskmgr_create_loc_conf,      /* create location configuration */
    ngx_http_taskmgr_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_taskmgr_module = {
    NGX_MODULE_V1,
    &ngx_http_taskmgr_module_ctx,          /* module context */
    ngx_http_taskmgr_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_taskmgr_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_taskmgr_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};
/* clang-format on */


static ngx_str_t ngx_http_taskmgr_request_id_name =
    ngx_string("taskmgr_request_id");
static ngx_str_t ngx_http_taskmgr_x_request_id = ngx_string("X-Request-Id");

static ngx_int_t ngx_http_taskmgr_request_id_index = NGX_ERROR;
static ngx_int_t ngx_http_taskmgr_nginx_request_id_index = NGX_ERROR;

static ngx_http_output_header_filter_pt ngx_http_next_header_filter;


ngx_http_taskmgr_main_conf_t *
ngx_http_taskmgr_main_conf(void)
{
    return ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_taskmgr_module);
}


static ngx_int_t
ngx_http_taskmgr_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t *var;

    var = ngx_http_add_variable(cf, &ngx_http_taskmgr_request_id_name, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_taskmgr_request_id_variable;

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_init(ngx_conf_t *cf)
{
    ngx_str_t name = ngx_string("request_id");

    ngx_http_taskmgr_request_id_index =
        ngx_http_get_variable_index(cf, &ngx_http_taskmgr_request_id_name);
    if (ngx_http_taskmgr_request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    ngx_http_taskmgr_nginx_request_id_index =
        ngx_http_get_variable_index(cf, &name);
    if (ngx_http_taskmgr_nginx_request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_taskmgr_header_filter;

    return NGX_OK;
}


static void *
ngx_http_taskmgr_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->pg_keywords = NULL;
     *     mcf->pg_values = NULL;
     *     mcf->pg_dsn = { 0, NULL };
     *     mcf->pg_password = { 0, NULL };
     *     mcf->pw_thread_pool = NULL;
     *     mcf->pw_thread_pool_name = { 0, NULL };
     *     mcf->pg = NULL;
     *     mcf->redis_addr = { 0, NULL };
     *     mcf->redis_ip = NULL;
     *     mcf->redis_unix = NULL;
     *     mcf->redis_port = 0;
     *     mcf->redis_password = { 0, NULL };
     *     mcf->redis_user = { 0, NULL };
     *     mcf->mfa_key = { 0, NULL };
     *     mcf->redis = NULL;
     */

    mcf->pg_pool_size = NGX_CONF_UNSET_UINT;
    mcf->pg_queue_size = NGX_CONF_UNSET_UINT;
    mcf->pg_query_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg_connect_timeout = NGX_CONF_UNSET_MSEC;
    mcf->task_purge_after = NGX_CONF_UNSET;
    mcf->task_purge_interval = NGX_CONF_UNSET_MSEC;
    mcf->argon2_t_cost = NGX_CONF_UNSET_UINT;
    mcf->argon2_m_cost = NGX_CONF_UNSET_UINT;
    mcf->argon2_parallelism = NGX_CONF_UNSET_UINT;
    mcf->redis_database = NGX_CONF_UNSET_UINT;
    mcf->redis_pool_size = NGX_CONF_UNSET_UINT;
    mcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    mcf->redis_connect_timeout = NGX_CONF_UNSET_MSEC;
    mcf->cache_local_size = NGX_CONF_UNSET_SIZE;

    return mcf;
}


static char *
ngx_http_taskmgr_strdup(ngx_pool_t *pool, const char *s)
{
    char  *p;
    size_t len;

    len = ngx_strlen(s);

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len + 1);

    return p;
}


static ngx_int_t
ngx_http_taskmgr_push_kv(ngx_conf_t *cf, ngx_http_taskmgr_main_conf_t *mcf,
                         const char *k, const char *v)
{
    char **kp, **vp;

    kp = ngx_array_push(mcf->pg_keywords);
    vp = ngx_array_push(mcf->pg_values);

    if (kp == NULL || vp == NULL) {
        return NGX_ERROR;
    }

    *kp = (char *) k;
    *vp = (char *) v;

    return NGX_OK;
}


static char *
ngx_http_taskmgr_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_taskmgr_main_conf_t *mcf = conf;

    char             *err, *s, *v;
    PQconninfoOption *opts, *o;
    ngx_str_t         name = ngx_string("default");

    ngx_conf_init_uint_value(mcf->pg_pool_size, 8);
    ngx_conf_init_uint_value(mcf->pg_queue_size, 1024);
    ngx_conf_init_msec_value(mcf->pg_query_timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg_connect_timeout, 3000);
    ngx_conf_init_value(mcf->task_purge_after, 30 * 24 * 3600);
    ngx_conf_init_msec_value(mcf->task_purge_interval, 60000);

    if (mcf->task_purge_interval < 100
        || mcf->task_purge_interval > 24 * 3600 * 1000)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_task_purge_interval must be between "
                           "100ms and 1d");
        return NGX_CONF_ERROR;
    }

    if (mcf->task_purge_after > 3650 * 24 * 3600) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_task_purge_after must be at most 3650d");
        return NGX_CONF_ERROR;
    }
    ngx_conf_init_uint_value(mcf->argon2_t_cost, 2);
    ngx_conf_init_uint_value(mcf->argon2_m_cost, 19456);
    ngx_conf_init_uint_value(mcf->argon2_parallelism, 1);
    ngx_conf_init_uint_value(mcf->redis_database, 0);
    ngx_conf_init_uint_value(mcf->redis_pool_size, 2);
    ngx_conf_init_msec_value(mcf->redis_timeout, 200);
    ngx_conf_init_msec_value(mcf->redis_connect_timeout, 1000);
    ngx_conf_init_size_value(mcf->cache_local_size, 8 * 1024 * 1024);

    if (mcf->cursor_secret.data == NULL) {
        /* a key of this configuration: list cursors stay valid across
         * workers, not across reloads or instances (set the file then) */
        if (ngx_http_taskmgr_random_token(cf->pool, 32, &mcf->cursor_secret)
            != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    mcf->cursor_hmac =
        ngx_http_taskmgr_hmac_create(cf->pool, &mcf->cursor_secret);
    if (mcf->cursor_hmac == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: HMAC-SHA256 is not available");
        return NGX_CONF_ERROR;
    }

    if (mcf->redis_addr.len == 0
        && (mcf->redis_password.len || mcf->redis_user.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_redis_password_file or taskmgr_redis_user "
                           "is set but taskmgr_redis is not");
        return NGX_CONF_ERROR;
    }

    if (mcf->redis_user.len && mcf->redis_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_redis_user needs "
                           "taskmgr_redis_password_file");
        return NGX_CONF_ERROR;
    }

    if (mcf->pw_thread_pool_name.len == 0) {
        mcf->pw_thread_pool_name = name;
    }

    mcf->pw_thread_pool = ngx_thread_pool_add(cf, &mcf->pw_thread_pool_name);
    if (mcf->pw_thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mcf->pg_dsn.len == 0) {
        return NGX_CONF_OK;
    }

    err = NULL;
    opts = PQconninfoParse((char *) mcf->pg_dsn.data, &err);
    if (opts == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_pg_dsn is invalid: %s",
                           err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }
        return NGX_CONF_ERROR;
    }

    mcf->pg_keywords = ngx_array_create(cf->pool, 16, sizeof(char *));
    mcf->pg_values = ngx_array_create(cf->pool, 16, sizeof(char *));
    if (mcf->pg_keywords == NULL || mcf->pg_values == NULL) {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "host") == 0 && o->val[0] != '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr_pg_dsn: use \"hostaddr=<ip>\" or "
                               "a unix socket directory instead of "
                               "\"host=%s\": a name lookup would block "
                               "the worker",
                               o->val);
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        if (ngx_strcmp(o->keyword, "password") == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr_pg_dsn must not hold a password, "
                               "use taskmgr_pg_password_file");
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        s = ngx_http_taskmgr_strdup(cf->pool, o->keyword);
        v = ngx_http_taskmgr_strdup(cf->pool, o->val);

        if (s == NULL || v == NULL
            || ngx_http_taskmgr_push_kv(cf, mcf, s, v) != NGX_OK) {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }
    }

    PQconninfoFree(opts);

    if (mcf->pg_password.len) {
        if (ngx_http_taskmgr_push_kv(cf, mcf, "password",
                                     (char *) mcf->pg_password.data)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_taskmgr_push_kv(cf, mcf, NULL, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_taskmgr_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_taskmgr_loc_conf_t *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->request_id = NGX_CONF_UNSET;

    return lcf;
}


static char *
ngx_http_taskmgr_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_taskmgr_loc_conf_t *prev = parent;
    ngx_http_taskmgr_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->request_id, prev->request_id, 0);

    return NGX_CONF_OK;
}


static char *
ngx_http_taskmgr_pg_dsn(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_main_conf_t *mcf = conf;

    ngx_str_t *value;

    if (mcf->pg_dsn.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "is empty";
    }

    /* conf strings are NUL-terminated */
    mcf->pg_dsn = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_taskmgr_pg_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                  void *conf)
{
    ngx_http_taskmgr_main_conf_t *mcf = conf;

    if (mcf->pg_password.data) {
        return "is duplicate";
    }

    return ngx_http_taskmgr_read_secret(cf, cmd, &mcf->pg_password);
}


static char *
ngx_http_taskmgr_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                     void *conf)
{
    ngx_http_taskmgr_main_conf_t *mcf = conf;

    if (mcf->redis_password.data) {
        return "is duplicate";
    }

    return ngx_http_taskmgr_read_secret(cf, cmd, &mcf->redis_password);
}


static char *
ngx_http_taskmgr_cursor_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                    void *conf)
{
    ngx_http_taskmgr_main_conf_t *mcf = conf;

    char *rv;

    if (mcf->cursor_secret.data) {
        return "is duplicate";
    }

    rv = ngx_http_taskmgr_read_secret(cf, cmd, &mcf->cursor_secret);

    if (rv == NGX_CONF_OK && mcf->cursor_secret.len < 32) {
        return "must hold a key of at least 32 bytes";
    }

    return rv;
}


/* 64 hex digits: the 256-bit key that seals TOTP secrets (h_mfa.c) */
static char *
ngx_http_taskmgr_mfa_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_main_conf_t *mcf = conf;

    char      *rv;
    u_char    *key;
    ngx_int_t  n;
    ngx_str_t  hex;
    ngx_uint_t i;

    if (mcf->mfa_key.data) {
        return "is duplicate";
    }

    rv = ngx_http_taskmgr_read_secret(cf, cmd, &hex);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    key = ngx_pnalloc(cf->pool, 32);
    if (key == NULL) {
        ngx_explicit_memzero(hex.data, hex.len);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_OK;

    if (hex.len != 64) {
        rv = "must name a file of 64 hex digits (256 bits)";

    } else {
        for (i = 0; i < 32; i++) {
            n = ngx_hextoi(hex.data + 2 * i, 2);
            if (n == NGX_ERROR) {
                rv = "must name a file of 64 hex digits (256 bits)";
                break;
            }

            key[i] = (u_char) n;
        }
    }

    ngx_explicit_memzero(hex.data, hex.len);

    if (rv != NGX_CONF_OK) {
        ngx_explicit_memzero(key, 32);
        return rv;
    }

    mcf->mfa_key.data = key;
    mcf->mfa_key.len = 32;

    return NGX_CONF_OK;
}


/*
 * Reads the small secret file named by the directive's argument at
 * configuration time, trimming trailing whitespace; the result is
 * NUL-terminated.
 */
char *
ngx_http_taskmgr_read_secret(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *out)
{
    u_char         *buf;
    ssize_t         n;
    ngx_fd_t        fd;
    ngx_str_t      *value, path;
    ngx_file_info_t fi;

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &path);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || ngx_file_size(&fi) > 4096
        || ngx_file_size(&fi) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" must hold 1 to 4096 bytes", &cmd->name,
                           &path);
        (void) ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    buf = ngx_pnalloc(cf->pool, ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, buf, ngx_file_size(&fi));
    (void) ngx_close_file(fd);

    if (n <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "reading \"%V\" failed", &path);
        return NGX_CONF_ERROR;
    }

    while (n > 0
           && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '
               || buf[n - 1] == '\t'))
    {
        n--;
    }

    if (n == 0) {
        return "is empty";
    }

    buf[n] = '\0';
    out->data = buf;
    out->len = n;

    return NGX_CONF_OK;
}


/*
 * taskmgr_redis <ipv4>:<port> | unix:<path>.  A host name is refused: the
 * lookup would block the worker (hiredis resolves with getaddrinfo()).
 */
static char *
ngx_http_taskmgr_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_main_conf_t *mcf = conf;

    u_char    *colon;
    ngx_int_t  port;
    ngx_str_t *value, host;
    in_addr_t  addr;

    if (mcf->redis_addr.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        if (value[1].len - 5 >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr_redis: unix socket path \"%V\" "
                               "is too long",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        /* conf strings are NUL-terminated */
        mcf->redis_unix = (char *) value[1].data + 5;
        mcf->redis_addr = value[1];
        return NGX_CONF_OK;
    }

    colon = ngx_strlchr(value[1].data, value[1].data + value[1].len, ':');
    if (colon == NULL || value[1].data[0] == '[') {
        goto invalid;
    }

    /* exactly one colon: an IPv6 literal is not taken */
    if (ngx_strlchr(colon + 1, value[1].data + value[1].len, ':') != NULL) {
        goto invalid;
    }

    host.data = value[1].data;
    host.len = colon - value[1].data;

    port = ngx_atoi(colon + 1, value[1].data + value[1].len - colon - 1);
    if (port < 1 || port > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_redis: invalid port in \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    addr = ngx_inet_addr(host.data, host.len);
    if (host.len == 0 || addr == INADDR_NONE) {
        goto invalid;
    }

    mcf->redis_ip = ngx_pnalloc(cf->pool, host.len + 1);
    if (mcf->redis_ip == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn((u_char *) mcf->redis_ip, host.data, host.len + 1);
    mcf->redis_port = (int) port;
    mcf->redis_addr = value[1];

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "taskmgr_redis: use \"<ipv4 address>:<port>\" or "
                       "\"unix:<path>\" instead of \"%V\": a host name "
                       "lookup would block the worker",
                       &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_taskmgr_argon2(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_main_conf_t *mcf = conf;

    ngx_int_t  n;
    ngx_str_t *value, v;
    ngx_uint_t i, *field, min, max;

    if (mcf->argon2_t_cost != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "t_cost=", 7) == 0) {
            field = &mcf->argon2_t_cost;
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;
            min = 1;
            max = 100;

        } else if (ngx_strncmp(value[i].data, "m_cost=", 7) == 0) {
            field = &mcf->argon2_m_cost;
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;
            min = 8;
            max = 4 * 1024 * 1024;

        } else if (ngx_strncmp(value[i].data, "parallelism=", 12) == 0) {
            field = &mcf->argon2_parallelism;
            v.data = value[i].data + 12;
            v.len = value[i].len - 12;
            min = 1;
            max = 64;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        n = ngx_atoi(v.data, v.len);
        if (n == NGX_ERROR || (ngx_uint_t) n < min || (ngx_uint_t) n > max) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value in \"%V\" (%ui..%ui)", &value[i],
                               min, max);
            return NGX_CONF_ERROR;
        }

        *field = n;
    }

    if (mcf->argon2_t_cost == NGX_CONF_UNSET_UINT) {
        mcf->argon2_t_cost = 2;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_taskmgr_init_process(ngx_cycle_t *cycle)
{
    ngx_http_taskmgr_main_conf_t *mcf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_taskmgr_module);
    if (mcf == NULL) {
        return NGX_OK;
    }

    if (mcf->pg_keywords) {
        mcf->pg = ngx_http_taskmgr_pg_pool_create(cycle, mcf);
        if (mcf->pg == NULL) {
            return NGX_ERROR;
        }
    }

    if (mcf->redis_addr.len) {
        mcf->redis = ngx_http_taskmgr_redis_create(cycle, mcf);
        if (mcf->redis == NULL) {
            return NGX_ERROR;
        }
    }

    return ngx_http_taskmgr_purge_init(cycle, mcf);
}


static void
ngx_http_taskmgr_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_taskmgr_module);
    if (mcf == NULL) {
        return;
    }

    ngx_http_taskmgr_cache_local_destroy();
    ngx_http_taskmgr_purge_stop();

    if (mcf->redis) {
        ngx_http_taskmgr_redis_destroy(mcf->redis);
        mcf->redis = NULL;
    }

    if (mcf->pg) {
        ngx_http_taskmgr_pg_pool_destroy(mcf->pg);
        mcf->pg = NULL;
    }
}


/* a client's own id is kept when it is 1..128 of [A-Za-z0-9._:-] */
static ngx_int_t
ngx_http_taskmgr_request_id_variable(ngx_http_request_t        *r,
                                     ngx_http_variable_value_t *v,
                                     uintptr_t                  data)
{
    ngx_uint_t                 i;
    ngx_table_elt_t           *h;
    ngx_http_variable_value_t *rv;

    h = ngx_http_taskmgr_find_header(r, "X-Request-Id");

    if (h && h->value.len > 0
        && h->value.len <= NGX_HTTP_TASKMGR_REQUEST_ID_MAX) {
        for (i = 0; i < h->value.len; i++) {
            u_char ch = h->value.data[i];

            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z')
                  || (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_'
                  || ch == '.' || ch == ':'))
            {
                break;
            }
        }

        if (i == h->value.len) {
            v->data = h->value.data;
            v->len = h->value.len;
            v->valid = 1;
            v->no_cacheable = 0;
            v->not_found = 0;
            return NGX_OK;
        }
    }

    rv = ngx_http_get_indexed_variable(r,
                                       ngx_http_taskmgr_nginx_request_id_index);
    if (rv == NULL || rv->not_found) {
        v->not_found = 1;
        return NGX_OK;
    }

    *v = *rv;

    return NGX_OK;
}


void
ngx_http_taskmgr_request_id(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_variable_value_t *v;

    v = ngx_http_get_indexed_variable(r->main,
                                      ngx_http_taskmgr_request_id_index);
    if (v == NULL || v->not_found) {
        ngx_str_null(id);
        return;
    }

    id->data = v->data;
    id->len = v->len;
}


static ngx_int_t
ngx_http_taskmgr_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                    id;
    ngx_table_elt_t             *h;
    ngx_http_taskmgr_loc_conf_t *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_module);

    if (!lcf->request_id || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ngx_http_taskmgr_request_id(r, &id);

    if (id.len) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key = ngx_http_taskmgr_x_request_id;
        h->value = id;
    }

    return ngx_http_next_header_filter(r);
}
