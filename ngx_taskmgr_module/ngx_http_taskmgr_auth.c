/*
 * Copyright (C) taskmgr developers
 *
 * ngx_http_taskmgr_auth_module: bearer JWT authentication in the ACCESS
 * phase, the revocation check in Redis, and the $jwt_* variables.  Inert
 * unless "taskmgr_auth_jwt on" (the variables need only a key in scope);
 * knows nothing of the task API.  With "taskmgr_auth_api_keys on", bearer
 * API keys ("tmk_…") are looked up in PostgreSQL through the pool and are
 * good only under /v1/workspaces/<their workspace>.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_taskmgr.h"
#include "ngx_http_taskmgr_jwt.h"
#include "ngx_http_taskmgr_redis.h"
#include "ngx_http_taskmgr_pg.h"
#include "ngx_http_taskmgr_sql.h"


#define NGX_HTTP_TASKMGR_AUTH_KEY_MAX  65536
#define NGX_HTTP_TASKMGR_AUTH_KEYS_MAX 16
#define NGX_HTTP_TASKMGR_AUTH_KID_MAX  64

/* the revocation verdict of a request */
#define NGX_HTTP_TASKMGR_RV_NONE        0 /* not asked yet */
#define NGX_HTTP_TASKMGR_RV_PENDING     1 /* waiting for Redis */
#define NGX_HTTP_TASKMGR_RV_VALID       2
#define NGX_HTTP_TASKMGR_RV_REVOKED     3
#define NGX_HTTP_TASKMGR_RV_UNAVAILABLE 4

/* a new worker waits up to 20 x 25 ms for its Redis client to connect */
#define NGX_HTTP_TASKMGR_RV_TRIES 20
#define NGX_HTTP_TASKMGR_RV_DELAY 25

/* the API key verdict of a request */
#define NGX_HTTP_TASKMGR_KEY_NONE        0 /* not an API key */
#define NGX_HTTP_TASKMGR_KEY_ASK         1
#define NGX_HTTP_TASKMGR_KEY_PENDING     2 /* waiting for PostgreSQL */
#define NGX_HTTP_TASKMGR_KEY_VALID       3
#define NGX_HTTP_TASKMGR_KEY_INVALID     4
#define NGX_HTTP_TASKMGR_KEY_UNAVAILABLE 5

#define NGX_HTTP_TASKMGR_KEY_SCOPE "/v1/workspaces/"

/* this worker's view of Redis, for logging transitions once */
#define NGX_HTTP_TASKMGR_RV_REDIS_UNKNOWN 0
#define NGX_HTTP_TASKMGR_RV_REDIS_UP      1
#define NGX_HTTP_TASKMGR_RV_REDIS_DOWN    2


typedef struct {
    ngx_http_request_t               *request; /* r->main */
    ngx_http_taskmgr_auth_loc_conf_t *conf;    /* the result holds for it */
    ngx_http_taskmgr_jwt_status_e     status;
    ngx_http_taskmgr_identity_t       identity;
    json_t                           *claims; /* r->pool owns it */
    ngx_uint_t                        rv;     /* NGX_HTTP_TASKMGR_RV_* */
    ngx_uint_t                        tries;
    ngx_event_t                      *retry;
    ngx_uint_t                        key;      /* NGX_HTTP_TASKMGR_KEY_* */
    ngx_str_t                         key_hash; /* SHA-256 of the key */
    ngx_http_taskmgr_identity_t       key_identity;
    unsigned                          key_viewer : 1; /* reads only */
} ngx_http_taskmgr_auth_ctx_t;


static ngx_int_t ngx_http_taskmgr_auth_handler(ngx_http_request_t *r);
static ngx_http_taskmgr_auth_ctx_t *ngx_http_taskmgr_auth_check(
    ngx_http_request_t *r);
static ngx_http_taskmgr_auth_ctx_t *ngx_http_taskmgr_auth_get_ctx(
    ngx_http_request_t *r);
static void       ngx_http_taskmgr_auth_ctx_cleanup(void *data);
static ngx_uint_t ngx_http_taskmgr_auth_rv_keys(
    ngx_http_request_t *r, ngx_http_taskmgr_auth_ctx_t *ctx, ngx_str_t *keys);
static ngx_int_t ngx_http_taskmgr_auth_rv_judge(
    ngx_http_taskmgr_auth_ctx_t *ctx, redisReply **values, size_t n);
static ngx_int_t ngx_http_taskmgr_auth_revocation(
    ngx_http_request_t *r, ngx_http_taskmgr_auth_ctx_t *ctx,
    ngx_http_taskmgr_auth_loc_conf_t *alcf);
static ngx_int_t ngx_http_taskmgr_auth_rv_send(
    ngx_http_request_t *r, ngx_http_taskmgr_auth_ctx_t *ctx);
static void ngx_http_taskmgr_auth_rv_handler(ngx_http_taskmgr_redis_cmd_t *cmd);
static ngx_int_t ngx_http_taskmgr_auth_rv_wait(
    ngx_http_request_t *r, ngx_http_taskmgr_auth_ctx_t *ctx);
static void      ngx_http_taskmgr_auth_rv_retry(ngx_event_t *ev);
static void      ngx_http_taskmgr_auth_rv_cleanup(void *data);
static ngx_int_t ngx_http_taskmgr_auth_rv_parse(
    ngx_http_taskmgr_auth_ctx_t *ctx, redisReply *reply);
static void      ngx_http_taskmgr_auth_rv_state(ngx_log_t *log, ngx_uint_t up,
                                                const char *reason);
static ngx_int_t ngx_http_taskmgr_auth_refuse(ngx_http_request_t *r,
                                              ngx_uint_t          status,
                                              const char         *code,
                                              const char         *detail);
static ngx_int_t ngx_http_taskmgr_auth_parse(ngx_http_request_t *r,
                                             ngx_str_t          *token);
static ngx_int_t ngx_http_taskmgr_auth_api_key(
    ngx_http_request_t *r, ngx_http_taskmgr_auth_ctx_t *ctx);
static void ngx_http_taskmgr_auth_api_key_done(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_auth_api_key_scope(
    ngx_http_request_t *r, ngx_http_taskmgr_auth_ctx_t *ctx);
static ngx_int_t ngx_http_taskmgr_auth_identity_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_taskmgr_auth_claim_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_taskmgr_auth_key_digest_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);

static void *ngx_http_taskmgr_auth_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_taskmgr_auth_merge_loc_conf(ngx_conf_t *cf, void *parent,
                                                  void *child);
static char *ngx_http_taskmgr_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd,
                                       void *conf);
static char *ngx_http_taskmgr_auth_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                            void *conf);
static void  ngx_http_taskmgr_auth_wipe_key(void *data);
static char *ngx_http_taskmgr_auth_alg(ngx_conf_t *cf, ngx_command_t *cmd,
                                       void *conf);
static char *ngx_http_taskmgr_auth_ttl_check(ngx_conf_t *cf, void *post,
                                             void *data);
static ngx_int_t ngx_http_taskmgr_auth_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_taskmgr_auth_init(ngx_conf_t *cf);


/* the algorithms taskmgr_auth_jwt_alg accepts (case-sensitive, as in JWS) */
/* clang-format off */
static ngx_conf_enum_t  ngx_http_taskmgr_auth_algs[] = {
    { ngx_string("HS256"), NGX_HTTP_TASKMGR_JWT_HS256 },
    { ngx_string("RS256"), NGX_HTTP_TASKMGR_JWT_RS256 },
    { ngx_string("ES256"), NGX_HTTP_TASKMGR_JWT_ES256 },
    { ngx_string("EdDSA"), NGX_HTTP_TASKMGR_JWT_EDDSA },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_taskmgr_auth_rv_fallbacks[] = {
    { ngx_string("reads"), NGX_HTTP_TASKMGR_RV_FALLBACK_READS },
    { ngx_string("refuse"), NGX_HTTP_TASKMGR_RV_FALLBACK_REFUSE },
    { ngx_string("accept"), NGX_HTTP_TASKMGR_RV_FALLBACK_ACCEPT },
    { ngx_null_string, 0 }
};
/* clang-format on */


static ngx_uint_t ngx_http_taskmgr_auth_rv_redis =
    NGX_HTTP_TASKMGR_RV_REDIS_UNKNOWN;


static ngx_conf_post_handler_pt ngx_http_taskmgr_auth_ttl_post =
    ngx_http_taskmgr_auth_ttl_check;


/* clang-format off */
static ngx_command_t  ngx_http_taskmgr_auth_commands[] = {

    { ngx_string("taskmgr_auth_jwt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_taskmgr_auth_jwt,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, enable),
      NULL },

    { ngx_string("taskmgr_auth_jwt_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_taskmgr_auth_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_auth_jwt_alg"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_auth_alg,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, alg),
      NULL },

    { ngx_string("taskmgr_auth_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, issuer),
      NULL },

    { ngx_string("taskmgr_auth_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, audience),
      NULL },

    { ngx_string("taskmgr_auth_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, leeway),
      NULL },

    { ngx_string("taskmgr_auth_jwt_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, ttl),
      &ngx_http_taskmgr_auth_ttl_post },

    { ngx_string("taskmgr_auth_revocation"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, revocation),
      NULL },

    { ngx_string("taskmgr_auth_revocation_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, revocation_fallback),
      &ngx_http_taskmgr_auth_rv_fallbacks },

    { ngx_string("taskmgr_auth_api_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_auth_loc_conf_t, api_keys),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_taskmgr_auth_module_ctx = {
    ngx_http_taskmgr_auth_add_variables,    /* preconfiguration */
    ngx_http_taskmgr_auth_init,             /* postconfiguration */

    NULL,                                   /* create main configuration */
    NULL,                                   /* init main configuration */

    NULL,                                   /* create server configuration */
    NULL,                                   /* merge server configuration */

    ngx_http_taskmgr_auth_create_loc_conf,  /* create location configuration */
    ngx_http_taskmgr_auth_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_taskmgr_auth_module = {
    NGX_MODULE_V1,
    &ngx_http_taskmgr_auth_module_ctx,      /* module context */
    ngx_http_taskmgr_auth_commands,         /* module directives */
    NGX_HTTP_MODULE,                        /* module type */
    NULL,                                   /* init master */
    NULL,                                   /* init module */
    NULL,                                   /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    NULL,                                   /* exit process */
    NULL,                                   /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_taskmgr_auth_vars[] = {

    { ngx_string("jwt_sub"), NULL,
      ngx_http_taskmgr_auth_identity_variable,
      offsetof(ngx_http_taskmgr_identity_t, sub),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("jwt_sid"), NULL,
      ngx_http_taskmgr_auth_identity_variable,
      offsetof(ngx_http_taskmgr_identity_t, sid),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("jwt_jti"), NULL,
      ngx_http_taskmgr_auth_identity_variable,
      offsetof(ngx_http_taskmgr_identity_t, jti),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("jwt_claim_"), NULL,
      ngx_http_taskmgr_auth_claim_variable,
      0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string("taskmgr_api_key_digest"), NULL,
      ngx_http_taskmgr_auth_key_digest_variable,
      0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};
/* clang-format on */


static ngx_int_t
ngx_http_taskmgr_auth_handler(ngx_http_request_t *r)
{
    ngx_str_t                         challenge;
    const char                       *code, *detail;
    ngx_http_taskmgr_auth_ctx_t      *ctx;
    ngx_http_taskmgr_auth_loc_conf_t *alcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_auth_module);

    if (!alcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_taskmgr_auth_check(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->key != NGX_HTTP_TASKMGR_KEY_NONE) {
        return ngx_http_taskmgr_auth_api_key(r, ctx);
    }

    switch (ctx->status) {

    case NGX_HTTP_TASKMGR_JWT_VALID:
        if (alcf->revocation) {
            return ngx_http_taskmgr_auth_revocation(r, ctx, alcf);
        }

        /* NGX_OK: passed (with "satisfy all", go on to the next handler) */
        return NGX_OK;

    case NGX_HTTP_TASKMGR_JWT_FAILED:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;

    case NGX_HTTP_TASKMGR_JWT_MISSING:
        ngx_str_set(&challenge, "Bearer");
        code = "unauthorized";
        detail = "A bearer token is required.";
        break;

    case NGX_HTTP_TASKMGR_JWT_EXPIRED:
        ngx_str_set(&challenge, "Bearer error=\"invalid_token\"");
        code = "token_expired";
        detail = "The access token has expired.";
        break;

    default: /* NGX_HTTP_TASKMGR_JWT_INVALID */
        ngx_str_set(&challenge, "Bearer error=\"invalid_token\"");
        code = "unauthorized";
        detail = "The access token is not valid.";
        break;
    }

    if (ngx_http_taskmgr_add_header(r, "WWW-Authenticate", &challenge)
        != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_taskmgr_auth_refuse(r, NGX_HTTP_UNAUTHORIZED, code, detail);
}


static ngx_int_t
ngx_http_taskmgr_auth_refuse(ngx_http_request_t *r, ngx_uint_t status,
                             const char *code, const char *detail)
{
    ngx_int_t rc;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    rc = ngx_http_taskmgr_send_problem(r, status, code, detail);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * The revocation check of a verified token: one MGET of
 * tmk:{<sub>}:rv:<sid> (the session is revoked) and tmk:{<sub>}:rva (every
 * token of the user issued at or before that unix time is revoked), both
 * in the user's hash slot.  The verdict is kept in the ctx, which outlives
 * internal redirects, so a request asks Redis once.
 */

static ngx_int_t
ngx_http_taskmgr_auth_revocation(ngx_http_request_t               *r,
                                 ngx_http_taskmgr_auth_ctx_t      *ctx,
                                 ngx_http_taskmgr_auth_loc_conf_t *alcf)
{
    ngx_int_t rc;
    ngx_str_t challenge;

    switch (ctx->rv) {

    case NGX_HTTP_TASKMGR_RV_NONE:
        rc = ngx_http_taskmgr_auth_rv_send(r, ctx);

        if (rc == NGX_OK) {
            ctx->rv = NGX_HTTP_TASKMGR_RV_PENDING;

            /* notice a client that goes away while Redis answers */
            r->read_event_handler = ngx_http_test_reading;

            return NGX_AGAIN;
        }

        if (rc != NGX_DECLINED) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /*
         * a worker that never reached Redis yet (just started, or just
         * reloaded) gives its client a moment to connect
         */

        if (ngx_http_taskmgr_auth_rv_redis == NGX_HTTP_TASKMGR_RV_REDIS_UNKNOWN
            && ctx->tries < NGX_HTTP_TASKMGR_RV_TRIES)
        {
            return ngx_http_taskmgr_auth_rv_wait(r, ctx);
        }

        ngx_http_taskmgr_auth_rv_state(r->connection->log, 0, "not connected");
        ctx->rv = NGX_HTTP_TASKMGR_RV_UNAVAILABLE;
        break;

    case NGX_HTTP_TASKMGR_RV_PENDING:
        return NGX_AGAIN;

    default:
        break;
    }

    switch (ctx->rv) {

    case NGX_HTTP_TASKMGR_RV_VALID:
        ctx->identity.revocation_checked = 1;
        return NGX_OK;

    case NGX_HTTP_TASKMGR_RV_REVOKED:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "taskmgr: JWT rejected: revoked");

        ngx_str_set(&challenge, "Bearer error=\"invalid_token\"");

        if (ngx_http_taskmgr_add_header(r, "WWW-Authenticate", &challenge)
            != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_taskmgr_auth_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                            "unauthorized",
                                            "The access token has been "
                                            "revoked.");

    default: /* NGX_HTTP_TASKMGR_RV_UNAVAILABLE */
        break;
    }

    switch (alcf->revocation_fallback) {

    case NGX_HTTP_TASKMGR_RV_FALLBACK_ACCEPT:
        return NGX_OK;

    case NGX_HTTP_TASKMGR_RV_FALLBACK_READS:
        if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD | NGX_HTTP_OPTIONS)) {
            return NGX_OK;
        }

        break;

    default: /* NGX_HTTP_TASKMGR_RV_FALLBACK_REFUSE */
        break;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "taskmgr: request refused: token revocation cannot be "
                  "checked");

    return ngx_http_taskmgr_auth_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "dependency_unavailable",
                                        "The token revocation check is "
                                        "unavailable.");
}


/* "tmk:{<sub>}:rva" and "tmk:{<sub>}:rv:<sid>" (sub and sid are UUIDs):
 * returns how many keys (1 or 2), 0 on allocation failure */
static ngx_uint_t
ngx_http_taskmgr_auth_rv_keys(ngx_http_request_t          *r,
                              ngx_http_taskmgr_auth_ctx_t *ctx, ngx_str_t *keys)
{
    u_char                      *p;
    ngx_http_taskmgr_identity_t *id;

    id = &ctx->identity;

    p = ngx_pnalloc(r->pool, sizeof("tmk:{}:rva") - 1 + id->sub.len);
    if (p == NULL) {
        return 0;
    }

    keys[0].data = p;
    keys[0].len = ngx_sprintf(p, "tmk:{%V}:rva", &id->sub) - p;

    if (id->sid.len == 0) {
        return 1;
    }

    p = ngx_pnalloc(r->pool,
                    sizeof("tmk:{}:rv:") - 1 + id->sub.len + id->sid.len);
    if (p == NULL) {
        return 0;
    }

    keys[1].data = p;
    keys[1].len = ngx_sprintf(p, "tmk:{%V}:rv:%V", &id->sub, &id->sid) - p;

    return 2;
}


static ngx_int_t
ngx_http_taskmgr_auth_rv_send(ngx_http_request_t          *r,
                              ngx_http_taskmgr_auth_ctx_t *ctx)
{
    ngx_str_t                     argv[3];
    ngx_uint_t                    n;
    ngx_http_taskmgr_redis_cmd_t *cmd;

    ngx_str_set(&argv[0], "MGET");

    n = ngx_http_taskmgr_auth_rv_keys(r, ctx, &argv[1]);
    if (n == 0) {
        return NGX_ERROR;
    }

    cmd = ngx_http_taskmgr_redis_cmd_create(r, ngx_http_taskmgr_auth_rv_handler,
                                            ctx);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_redis_send(cmd, (int) (1 + n), argv);
}


static void
ngx_http_taskmgr_auth_rv_handler(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_taskmgr_auth_ctx_t *ctx;

    ctx = cmd->data;
    r = ctx->request;
    c = r->connection;

    if (cmd->reply == NULL) {
        ngx_http_taskmgr_auth_rv_state(
            c->log, 0, cmd->rc == NGX_OK ? "no reply" : "unavailable");
        ctx->rv = NGX_HTTP_TASKMGR_RV_UNAVAILABLE;

    } else if (ngx_http_taskmgr_auth_rv_parse(ctx, cmd->reply) != NGX_OK) {
        ngx_http_taskmgr_auth_rv_state(c->log, 0, "unexpected reply");
        ctx->rv = NGX_HTTP_TASKMGR_RV_UNAVAILABLE;

    } else {
        ngx_http_taskmgr_auth_rv_state(c->log, 1, NULL);
    }

    r->read_event_handler = ngx_http_block_reading;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_taskmgr_auth_rv_wait(ngx_http_request_t          *r,
                              ngx_http_taskmgr_auth_ctx_t *ctx)
{
    ngx_pool_cleanup_t *cln;

    if (ctx->retry == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->retry = ngx_pcalloc(r->pool, sizeof(ngx_event_t));
        if (ctx->retry == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->retry->handler = ngx_http_taskmgr_auth_rv_retry;
        ctx->retry->data = ctx;
        ctx->retry->log = r->connection->log;

        cln->handler = ngx_http_taskmgr_auth_rv_cleanup;
        cln->data = ctx->retry;
    }

    ctx->tries++;
    ctx->rv = NGX_HTTP_TASKMGR_RV_PENDING;

    ngx_add_timer(ctx->retry, NGX_HTTP_TASKMGR_RV_DELAY);

    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


static void
ngx_http_taskmgr_auth_rv_retry(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_taskmgr_auth_ctx_t *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    ctx->rv = NGX_HTTP_TASKMGR_RV_NONE;
    r->read_event_handler = ngx_http_block_reading;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_taskmgr_auth_rv_cleanup(void *data)
{
    ngx_event_t *ev = data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }
}


static ngx_int_t
ngx_http_taskmgr_auth_rv_parse(ngx_http_taskmgr_auth_ctx_t *ctx,
                               redisReply                  *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_auth_rv_judge(ctx, reply->element, reply->elements);
}


/* the verdict from the values of the keys of ngx_http_taskmgr_auth_rv_keys;
 * NGX_ERROR leaves ctx->rv as it was */
static ngx_int_t
ngx_http_taskmgr_auth_rv_judge(ngx_http_taskmgr_auth_ctx_t *ctx,
                               redisReply **values, size_t n)
{
    ngx_int_t   t;
    redisReply *el;

    if (n != (ctx->identity.sid.len ? 2 : 1)) {
        return NGX_ERROR;
    }

    /* the session */

    if (n == 2 && values[1]->type != REDIS_REPLY_NIL) {
        ctx->rv = NGX_HTTP_TASKMGR_RV_REVOKED;
        return NGX_OK;
    }

    /* every token of the user issued at or before T */

    el = values[0];

    if (el->type == REDIS_REPLY_NIL) {
        ctx->rv = NGX_HTTP_TASKMGR_RV_VALID;
        return NGX_OK;
    }

    if (el->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    t = ngx_atoi((u_char *) el->str, el->len);

    /*
     * Not a time: fail safe, as if every token were revoked.  Otherwise
     * strictly before: a login in the same second after logout-all must
     * work.  Tokens of that second issued before it are refused by their
     * session's rv key, which logout-all writes for every session too.
     */
    ctx->rv = (t == NGX_ERROR || (ngx_int_t) ctx->identity.iat < t)
        ? NGX_HTTP_TASKMGR_RV_REVOKED
        : NGX_HTTP_TASKMGR_RV_VALID;

    return NGX_OK;
}


/*
 * The rate limiter runs before the access phase and may fetch the
 * revocation keys in its own script call, saving the access phase its
 * round trip: the keys of a verified token whose location checks
 * revocation and whose verdict is not known yet (0: none to fetch).
 */

ngx_uint_t
ngx_http_taskmgr_auth_prefetch_keys(ngx_http_request_t *r, ngx_str_t *keys)
{
    ngx_http_taskmgr_auth_ctx_t      *ctx;
    ngx_http_taskmgr_auth_loc_conf_t *alcf;

    r = r->main;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_auth_module);

    if (!alcf->enable || alcf->revocation != 1) {
        return 0;
    }

    ctx = ngx_http_taskmgr_auth_check(r);

    if (ctx == NULL || ctx->key != NGX_HTTP_TASKMGR_KEY_NONE
        || ctx->status != NGX_HTTP_TASKMGR_JWT_VALID
        || ctx->rv != NGX_HTTP_TASKMGR_RV_NONE)
    {
        return 0;
    }

    return ngx_http_taskmgr_auth_rv_keys(r, ctx, keys);
}


/* the values the limiter fetched; anything unexpected leaves the check to
 * the access phase */
void
ngx_http_taskmgr_auth_prefetched(ngx_http_request_t *r, redisReply **values,
                                 size_t n)
{
    ngx_http_taskmgr_auth_ctx_t *ctx;

    r = r->main;

    ctx = ngx_http_taskmgr_auth_get_ctx(r);

    if (ctx == NULL || ctx->rv != NGX_HTTP_TASKMGR_RV_NONE
        || ctx->status != NGX_HTTP_TASKMGR_JWT_VALID)
    {
        return;
    }

    if (ngx_http_taskmgr_auth_rv_judge(ctx, values, n) == NGX_OK) {
        ngx_http_taskmgr_auth_rv_state(r->connection->log, 1, NULL);
    }
}


/* logs the transitions of this worker's view of Redis, once each */

static void
ngx_http_taskmgr_auth_rv_state(ngx_log_t *log, ngx_uint_t up,
                               const char *reason)
{
    if (up) {
        if (ngx_http_taskmgr_auth_rv_redis == NGX_HTTP_TASKMGR_RV_REDIS_DOWN) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "taskmgr: redis is available again, token "
                          "revocation is checked again");
        }

        ngx_http_taskmgr_auth_rv_redis = NGX_HTTP_TASKMGR_RV_REDIS_UP;
        return;
    }

    if (ngx_http_taskmgr_auth_rv_redis != NGX_HTTP_TASKMGR_RV_REDIS_DOWN) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "taskmgr: redis is unavailable (%s), token revocation "
                      "cannot be checked: taskmgr_auth_revocation_fallback "
                      "applies",
                      reason);
    }

    ngx_http_taskmgr_auth_rv_redis = NGX_HTTP_TASKMGR_RV_REDIS_DOWN;
}


/*
 * Verifies the bearer token of r->main once per location conf and caches
 * the result in the ctx; the access handler, the variables and
 * ngx_http_taskmgr_auth_identity() all go through here, so a variable read
 * before the ACCESS phase (e.g. by a rate limiter) never sees an unverified
 * claim.  Returns NULL on allocation failure only.
 */

static ngx_http_taskmgr_auth_ctx_t *
ngx_http_taskmgr_auth_check(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_str_t                         token;
    ngx_http_taskmgr_auth_ctx_t      *ctx;
    ngx_http_taskmgr_auth_loc_conf_t *alcf;

    ngx_pool_cleanup_t *cln;

    r = r->main;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_auth_module);
    ctx = ngx_http_taskmgr_auth_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_taskmgr_auth_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        /* the ctx outlives internal redirects through this cleanup */

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NULL;
        }

        cln->handler = ngx_http_taskmgr_auth_ctx_cleanup;
        cln->data = ctx;

        ctx->request = r;
        ngx_http_set_ctx(r, ctx, ngx_http_taskmgr_auth_module);

    } else if (ctx->conf == alcf) {
        return ctx;
    }

    /* first check, or the location (and maybe the key) changed since */

    ctx->conf = alcf;
    ctx->claims = NULL;
    ngx_memzero(&ctx->identity, sizeof(ngx_http_taskmgr_identity_t));

    if (alcf->keys == NULL || alcf->keys->nelts == 0) {
        /* nothing to verify with: no identity */
        ctx->status = NGX_HTTP_TASKMGR_JWT_INVALID;
        return ctx;
    }

    rc = ngx_http_taskmgr_auth_parse(r, &token);

    if (rc == NGX_DECLINED) {
        ctx->status = NGX_HTTP_TASKMGR_JWT_MISSING;
        return ctx;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "taskmgr: malformed bearer credentials");
        ctx->status = NGX_HTTP_TASKMGR_JWT_INVALID;
        return ctx;
    }

    if (alcf->api_keys && token.len > sizeof("tmk_") - 1
        && ngx_strncmp(token.data, "tmk_", sizeof("tmk_") - 1) == 0)
    {
        /* an API key: PostgreSQL decides in the access phase (once) */
        if (ctx->key == NGX_HTTP_TASKMGR_KEY_VALID) {
            ctx->identity = ctx->key_identity;
            ctx->status = NGX_HTTP_TASKMGR_JWT_VALID;
            return ctx;
        }

        ctx->status = NGX_HTTP_TASKMGR_JWT_INVALID;

        if (ctx->key == NGX_HTTP_TASKMGR_KEY_NONE) {
            if (ngx_http_taskmgr_sha256_hex(r->pool, &token, &ctx->key_hash)
                != NGX_OK) {
                return NULL;
            }

            ctx->key = NGX_HTTP_TASKMGR_KEY_ASK;
        }

        return ctx;
    }

    ctx->key = NGX_HTTP_TASKMGR_KEY_NONE;

    ctx->status = ngx_http_taskmgr_jwt_verify(r, alcf, &token, &ctx->identity,
                                              &ctx->claims);

    /*
     * ctx->rv is kept: the same token names the same user, session and
     * issue time under any key that verifies it
     */

    return ctx;
}


/*
 * An internal redirect clears the module ctx; the pool cleanup still
 * points to it (the way the realip module keeps its address).
 */

static ngx_http_taskmgr_auth_ctx_t *
ngx_http_taskmgr_auth_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_taskmgr_auth_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_taskmgr_auth_module);

    if (ctx != NULL) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_taskmgr_auth_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_taskmgr_auth_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_taskmgr_auth_ctx_cleanup(void *data)
{
    /* a marker only: the ctx lives in the request pool */
}


/*
 * "Authorization: Bearer <token>": NGX_OK with the token, NGX_DECLINED if
 * there is no header or another scheme, NGX_ERROR if the credentials are
 * malformed.  The token must be an RFC 6750 b64token.
 */

static ngx_int_t
ngx_http_taskmgr_auth_parse(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char          *p, *last;
    ngx_table_elt_t *h;

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1)
            != 0)
    {
        return NGX_DECLINED;
    }

    p = h->value.data + sizeof("Bearer ") - 1;
    last = h->value.data + h->value.len;

    /* RFC 6750: one or more spaces after the scheme */
    while (p < last && *p == ' ') {
        p++;
    }

    if (p == last) {
        return NGX_ERROR;
    }

    token->data = p;

    for (/* void */; p < last; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
            || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'
            || *p == '~' || *p == '+' || *p == '/')
        {
            continue;
        }

        break;
    }

    /* trailing "=" padding only */

    while (p < last && *p == '=') {
        p++;
    }

    if (p != last || p == token->data || *token->data == '=') {
        return NGX_ERROR;
    }

    token->len = last - token->data;

    return NGX_OK;
}


/*
 * An API key: one lookup of its hash through the PostgreSQL pool (the
 * worker goes on meanwhile), then the workspace scope.  PostgreSQL is the
 * truth, so a deleted or expired key stops at the next request; it also
 * caps the role in every statement.
 */

static ngx_int_t
ngx_http_taskmgr_auth_api_key(ngx_http_request_t          *r,
                              ngx_http_taskmgr_auth_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_str_t                    challenge;
    ngx_http_taskmgr_pg_query_t *q;

    switch (ctx->key) {

    case NGX_HTTP_TASKMGR_KEY_ASK:
        q = ngx_http_taskmgr_pg_query_create(
            r, NGX_HTTP_TASKMGR_SQL_API_KEY_AUTH,
            ngx_http_taskmgr_auth_api_key_done);
        if (q == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        q->data = ctx;
        ngx_http_taskmgr_pg_param(q, &ctx->key_hash);

        rc = ngx_http_taskmgr_pg_submit(q);

        if (rc == NGX_OK) {
            ctx->key = NGX_HTTP_TASKMGR_KEY_PENDING;
            r->read_event_handler = ngx_http_test_reading;
            return NGX_AGAIN;
        }

        if (rc != NGX_HTTP_SERVICE_UNAVAILABLE) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->key = NGX_HTTP_TASKMGR_KEY_UNAVAILABLE;
        break;

    case NGX_HTTP_TASKMGR_KEY_PENDING:
        return NGX_AGAIN;

    case NGX_HTTP_TASKMGR_KEY_VALID:
        return ngx_http_taskmgr_auth_api_key_scope(r, ctx);

    case NGX_HTTP_TASKMGR_KEY_INVALID:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "taskmgr: API key rejected: unknown or expired");

        ngx_str_set(&challenge, "Bearer error=\"invalid_token\"");

        if (ngx_http_taskmgr_add_header(r, "WWW-Authenticate", &challenge)
            != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_taskmgr_auth_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                            "unauthorized",
                                            "The API key is not valid.");

    default: /* NGX_HTTP_TASKMGR_KEY_UNAVAILABLE */
        break;
    }

    return ngx_http_taskmgr_auth_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "dependency_unavailable",
                                        "The API key cannot be checked now.");
}


static void
ngx_http_taskmgr_auth_api_key_done(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                      *p, *last, *f[4];
    ngx_str_t                    s;
    ngx_uint_t                   n;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_taskmgr_auth_ctx_t *ctx;
    ngx_http_taskmgr_identity_t *id;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;

    ctx->key = NGX_HTTP_TASKMGR_KEY_UNAVAILABLE;

    if (q->rc != NGX_OK || q->sqlstate != NULL
        || ngx_http_taskmgr_pg_value(q, 0, &s) != NGX_OK)
    {
        ngx_log_error(
            NGX_LOG_WARN, c->log, 0, "taskmgr: API key lookup failed%s%s",
            q->sqlstate ? ", sqlstate " : "", q->sqlstate ? q->sqlstate : "");
        goto done;
    }

    if (s.len != 3 || ngx_strncmp(s.data, "200", 3) != 0) {
        ctx->key = NGX_HTTP_TASKMGR_KEY_INVALID;
        goto done;
    }

    /* meta: "<key id> <user id> <workspace id> <role>" */

    if (ngx_http_taskmgr_pg_value(q, 2, &s) != NGX_OK || s.data == NULL) {
        goto done;
    }

    p = s.data;
    last = s.data + s.len;

    for (n = 0; n < 4 && p < last; n++) {
        f[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        p++;
    }

    if (n != 4 || f[1] - f[0] != NGX_HTTP_TASKMGR_UUID_LEN + 1
        || f[2] - f[1] != NGX_HTTP_TASKMGR_UUID_LEN + 1
        || f[3] - f[2] != NGX_HTTP_TASKMGR_UUID_LEN + 1)
    {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "taskmgr: unexpected API key lookup answer");
        goto done;
    }

    id = &ctx->key_identity;
    ngx_memzero(id, sizeof(ngx_http_taskmgr_identity_t));

    id->sid.data = f[0];
    id->sid.len = NGX_HTTP_TASKMGR_UUID_LEN;
    id->sub.data = f[1];
    id->sub.len = NGX_HTTP_TASKMGR_UUID_LEN;
    id->key_ws.data = f[2];
    id->key_ws.len = NGX_HTTP_TASKMGR_UUID_LEN;
    id->api_key = 1;
    id->revocation_checked = 1;

    ctx->key_viewer = (last - f[3] == sizeof("viewer") - 1
                       && ngx_strncmp(f[3], "viewer", last - f[3]) == 0);

    ctx->identity = *id;
    ctx->status = NGX_HTTP_TASKMGR_JWT_VALID;
    ctx->key = NGX_HTTP_TASKMGR_KEY_VALID;

done:

    r->read_event_handler = ngx_http_block_reading;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/*
 * A key is good for its workspace's resources only: another workspace is
 * 404 (as one that does not exist), anything else (the account, other
 * keys, the workspace list) 403.  A viewer key only reads (PostgreSQL caps
 * the other roles).
 */

static ngx_int_t
ngx_http_taskmgr_auth_api_key_scope(ngx_http_request_t          *r,
                                    ngx_http_taskmgr_auth_ctx_t *ctx)
{
    u_char    *p, *last, *seg;
    size_t     len;
    ngx_str_t *ws;

    ws = &ctx->identity.key_ws;
    len = sizeof(NGX_HTTP_TASKMGR_KEY_SCOPE) - 1;

    if (r->uri.len > len
        && ngx_strncmp(r->uri.data, NGX_HTTP_TASKMGR_KEY_SCOPE, len) == 0)
    {
        seg = r->uri.data + len;
        last = r->uri.data + r->uri.len;

        for (p = seg; p < last && *p != '/'; p++) { /* void */
        }

        if ((size_t) (p - seg) == ws->len
            && ngx_strncasecmp(seg, ws->data, ws->len) == 0)
        {
            if (ctx->key_viewer
                && !(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
                return ngx_http_taskmgr_auth_refuse(
                    r, NGX_HTTP_FORBIDDEN, "forbidden",
                    "A viewer API key only reads.");
            }

            return NGX_OK;
        }

        return ngx_http_taskmgr_auth_refuse(r, NGX_HTTP_NOT_FOUND, "not_found",
                                            "workspace not found");
    }

    return ngx_http_taskmgr_auth_refuse(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                        "An API key is good only for the "
                                        "resources of its workspace.");
}


ngx_http_taskmgr_identity_t *
ngx_http_taskmgr_auth_identity(ngx_http_request_t *r)
{
    ngx_http_taskmgr_auth_ctx_t *ctx;

    ctx = ngx_http_taskmgr_auth_check(r);

    if (ctx == NULL || ctx->status != NGX_HTTP_TASKMGR_JWT_VALID) {
        return NULL;
    }

    return &ctx->identity;
}


static ngx_int_t
ngx_http_taskmgr_auth_identity_variable(ngx_http_request_t        *r,
                                        ngx_http_variable_value_t *v,
                                        uintptr_t                  data)
{
    ngx_str_t                   *s;
    ngx_http_taskmgr_auth_ctx_t *ctx;

    ctx = ngx_http_taskmgr_auth_check(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->status != NGX_HTTP_TASKMGR_JWT_VALID) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) &ctx->identity + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


/*
 * $taskmgr_api_key_digest: for an API key presented where
 * taskmgr_auth_api_keys is on, the first 128 bits (hex) of its SHA-256,
 * known before the key is checked (the access phase asks PostgreSQL), so a
 * limit zone keyed on it counts the key's requests from the preaccess
 * phase on, where $jwt_sub is still empty for a key.  Not the stored hash
 * (all 256 bits): logged or in a limit's Redis key, it opens nothing.
 */

#define NGX_HTTP_TASKMGR_KEY_DIGEST_LEN 32

static ngx_int_t
ngx_http_taskmgr_auth_key_digest_variable(ngx_http_request_t        *r,
                                          ngx_http_variable_value_t *v,
                                          uintptr_t                  data)
{
    ngx_http_taskmgr_auth_ctx_t *ctx;

    ctx = ngx_http_taskmgr_auth_check(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->key == NGX_HTTP_TASKMGR_KEY_NONE
        || ctx->key_hash.len < NGX_HTTP_TASKMGR_KEY_DIGEST_LEN)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = NGX_HTTP_TASKMGR_KEY_DIGEST_LEN;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->key_hash.data;

    return NGX_OK;
}


/* $jwt_claim_<name>: a string or integer claim of a verified token */

static ngx_int_t
ngx_http_taskmgr_auth_claim_variable(ngx_http_request_t        *r,
                                     ngx_http_variable_value_t *v,
                                     uintptr_t                  data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                      *p;
    size_t                       len;
    json_t                      *claim;
    ngx_http_taskmgr_auth_ctx_t *ctx;

    len = sizeof("jwt_claim_") - 1;

    ctx = ngx_http_taskmgr_auth_check(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->status != NGX_HTTP_TASKMGR_JWT_VALID || ctx->claims == NULL
        || name->len <= len)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    claim = json_object_getn(ctx->claims, (const char *) name->data + len,
                             name->len - len);

    if (claim != NULL && json_is_string(claim)) {
        v->data = (u_char *) json_string_value(claim);
        v->len = json_string_length(claim);

    } else if (claim != NULL && json_is_integer(claim)) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%L", (int64_t) json_integer_value(claim)) - p;

    } else {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static void *
ngx_http_taskmgr_auth_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_taskmgr_auth_loc_conf_t *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_auth_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->key_srcs = NULL;
     *     conf->keys = NULL;
     *     conf->issuer = { 0, NULL };
     *     conf->audience = { 0, NULL };
     *     conf->enable_file = NULL;
     *     conf->enable_line = 0;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->alg = NGX_CONF_UNSET_UINT;
    conf->leeway = NGX_CONF_UNSET;
    conf->ttl = NGX_CONF_UNSET;
    conf->revocation = NGX_CONF_UNSET;
    conf->revocation_fallback = NGX_CONF_UNSET_UINT;
    conf->api_keys = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_taskmgr_auth_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_taskmgr_auth_loc_conf_t *prev = parent;
    ngx_http_taskmgr_auth_loc_conf_t *conf = child;

    ngx_http_taskmgr_main_conf_t *mcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    if (conf->enable_file == NULL) {
        conf->enable_file = prev->enable_file;
        conf->enable_line = prev->enable_line;
    }

    ngx_conf_merge_uint_value(conf->alg, prev->alg, NGX_HTTP_TASKMGR_JWT_HS256);

    /* a level with key lines does not inherit those of the levels above */

    if (conf->key_srcs == NULL) {
        conf->key_srcs = prev->key_srcs;

        if (prev->keys != NULL && prev->alg == conf->alg) {
            conf->keys = prev->keys;
        }
    }

    if (conf->key_srcs != NULL && conf->keys == NULL) {
        if (ngx_http_taskmgr_jwt_load_keys(cf, conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_merge_str_value(conf->issuer, prev->issuer, "");
    ngx_conf_merge_str_value(conf->audience, prev->audience, "");
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 30);
    ngx_conf_merge_sec_value(conf->ttl, prev->ttl, 900);

    /* revocation: on by default where a Redis is configured */

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_taskmgr_module);

    ngx_conf_merge_value(conf->revocation, prev->revocation,
                         mcf->redis_addr.len ? 1 : 0);
    ngx_conf_merge_uint_value(conf->revocation_fallback,
                              prev->revocation_fallback,
                              NGX_HTTP_TASKMGR_RV_FALLBACK_READS);

    if (conf->revocation == 1 && mcf->redis_addr.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "taskmgr: \"taskmgr_auth_revocation on\" needs "
                      "\"taskmgr_redis\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->api_keys, prev->api_keys, 0);

    if (conf->api_keys == 1 && mcf->pg_dsn.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "taskmgr: \"taskmgr_auth_api_keys on\" needs "
                      "\"taskmgr_pg_dsn\"");
        return NGX_CONF_ERROR;
    }

    if (conf->enable && conf->keys == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "taskmgr: \"taskmgr_auth_jwt\" is on but no "
                      "\"taskmgr_auth_jwt_key_file\" is defined for it "
                      "in %s:%ui",
                      conf->enable_file ? (char *) conf->enable_file : "?",
                      conf->enable_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_taskmgr_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_auth_loc_conf_t *alcf = conf;

    char *rv;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* for the "no key" message at merge time */
    alcf->enable_file = cf->conf_file->file.name.data;
    alcf->enable_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/*
 * taskmgr_auth_jwt_key_file <path> [kid=<id>]: reads the file at
 * configuration time (in the master), so a reload reads it again.  The
 * bytes are parsed at merge time for the location's algorithm; they are
 * never logged, and they are wiped when the configuration pool goes away.
 */

static char *
ngx_http_taskmgr_auth_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_auth_loc_conf_t *alcf = conf;

    char                           *rv;
    off_t                           size;
    u_char                         *buf, *p;
    ssize_t                         n;
    ngx_str_t                      *value, path, kid, *wipe;
    ngx_uint_t                      i;
    ngx_file_t                      file;
    ngx_pool_cleanup_t             *cln;
    ngx_http_taskmgr_jwt_key_src_t *src;

    value = cf->args->elts;
    path = value[1];
    ngx_str_null(&kid);

    if (cf->args->nelts == 3) {
        if (value[2].len <= 4 || ngx_strncmp(value[2].data, "kid=", 4) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr: invalid parameter \"%V\" "
                               "(expected kid=<id>)",
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        kid.data = value[2].data + 4;
        kid.len = value[2].len - 4;

        for (i = 0, p = kid.data; i < kid.len; i++, p++) {
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
                  || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
                  || *p == '.'))
            {
                break;
            }
        }

        if (i != kid.len || kid.len > NGX_HTTP_TASKMGR_AUTH_KID_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr: a kid is 1 to %d letters, digits, "
                               "\"-\", \"_\" or \".\"",
                               NGX_HTTP_TASKMGR_AUTH_KID_MAX);
            return NGX_CONF_ERROR;
        }
    }

    if (alcf->key_srcs == NULL) {
        alcf->key_srcs = ngx_array_create(
            cf->pool, 2, sizeof(ngx_http_taskmgr_jwt_key_src_t));
        if (alcf->key_srcs == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (alcf->key_srcs->nelts >= NGX_HTTP_TASKMGR_AUTH_KEYS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: at most %d JWT keys per level",
                           NGX_HTTP_TASKMGR_AUTH_KEYS_MAX);
        return NGX_CONF_ERROR;
    }

    if (path.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: empty key file name");
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = path;
    file.log = cf->log;

    file.fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "taskmgr: " ngx_open_file_n " \"%V\" failed", &path);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;

    if (ngx_fd_info(file.fd, &file.info) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "taskmgr: " ngx_fd_info_n " \"%V\" failed", &path);
        goto done;
    }

    size = ngx_file_size(&file.info);

    if (!ngx_is_file(&file.info) || size > NGX_HTTP_TASKMGR_AUTH_KEY_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: key file \"%V\" is not a regular file "
                           "of at most %d bytes",
                           &path, NGX_HTTP_TASKMGR_AUTH_KEY_MAX);
        goto done;
    }

    buf = ngx_pnalloc(cf->pool, (size_t) size + 1);
    if (buf == NULL) {
        goto done;
    }

    /* wipe the key bytes with the configuration */

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        goto done;
    }

    wipe = cln->data;
    wipe->data = buf;
    wipe->len = (size_t) size + 1;
    cln->handler = ngx_http_taskmgr_auth_wipe_key;

    n = ngx_read_file(&file, buf, (size_t) size, 0);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "taskmgr: " ngx_read_file_n " \"%V\" failed", &path);
        goto done;
    }

    if ((off_t) n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: " ngx_read_file_n " \"%V\" returned "
                           "only %z bytes instead of %O",
                           &path, n, size);
        goto done;
    }

    buf[size] = '\0';

    /* parsed for the algorithm at merge time, which knows it */

    src = ngx_array_push(alcf->key_srcs);
    if (src == NULL) {
        goto done;
    }

    src->kid = kid;
    src->file = path;
    src->data.data = buf;
    src->data.len = (size_t) size;
    src->conf_file = cf->conf_file->file.name.data;
    src->conf_line = cf->conf_file->line;

    rv = NGX_CONF_OK;

done:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      "taskmgr: " ngx_close_file_n " \"%V\" failed", &path);
    }

    return rv;
}


static void
ngx_http_taskmgr_auth_wipe_key(void *data)
{
    ngx_str_t *key = data;

    ngx_explicit_memzero(key->data, key->len);
}


static char *
ngx_http_taskmgr_auth_alg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_auth_loc_conf_t *alcf = conf;

    ngx_str_t       *value;
    ngx_conf_enum_t *e;

    if (alcf->alg != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (e = ngx_http_taskmgr_auth_algs; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strncmp(e->name.data, value[1].data, value[1].len) == 0)
        {
            alcf->alg = e->value;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "taskmgr: unsupported JWT algorithm \"%V\"", &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_taskmgr_auth_ttl_check(ngx_conf_t *cf, void *post, void *data)
{
    time_t *tp = data;

    if (*tp < 1) {
        return "must be at least 1s";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_taskmgr_auth_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t *var, *v;

    for (v = ngx_http_taskmgr_auth_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_auth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt       *h;
    ngx_http_core_main_conf_t *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_taskmgr_auth_handler;

    return NGX_OK;
}
