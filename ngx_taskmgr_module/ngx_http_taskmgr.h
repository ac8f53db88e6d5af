/*
 * Copyright (C) taskmgr developers
 *
 * Umbrella header: shared types and the functions one file of the
 * taskmgr modules offers to the others.
 */

#ifndef _NGX_HTTP_TASKMGR_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>


/* an HMAC-SHA256 keyed once (OpenSSL's EVP_MAC_CTX): the one-shot HMAC()
 * fetches the algorithm on every call, several times slower */
typedef struct evp_mac_ctx_st ngx_http_taskmgr_hmac_t;

/* SHA-256 fetched once per process (EVP_sha256() is fetched implicitly on
 * every digest by OpenSSL 3) */
const struct evp_md_st *ngx_http_taskmgr_sha256(void);

#define NGX_HTTP_TASKMGR_HMAC_LEN 32


#define NGX_HTTP_TASKMGR_UUID_LEN       36
#define NGX_HTTP_TASKMGR_REQUEST_ID_MAX 128
#define NGX_HTTP_UNPROCESSABLE_ENTITY   422


extern ngx_module_t ngx_http_taskmgr_module;
extern ngx_module_t ngx_http_taskmgr_auth_module;
extern ngx_module_t ngx_http_taskmgr_api_module;
extern ngx_module_t ngx_http_taskmgr_attach_module;


typedef struct ngx_http_taskmgr_pg_pool_s ngx_http_taskmgr_pg_pool_t;


/* main conf of the core module (http{} level) */
typedef struct {
    /* PostgreSQL */
    ngx_array_t *pg_keywords; /* of char *, NULL-ended */
    ngx_array_t *pg_values;   /* of char *, NULL-ended */
    ngx_str_t    pg_dsn;
    ngx_str_t    pg_password;
    ngx_uint_t   pg_pool_size;
    ngx_uint_t   pg_queue_size;
    ngx_msec_t   pg_query_timeout;
    ngx_msec_t   pg_connect_timeout;

    /* Redis (taskmgr_redis: an IPv4 address and port, or unix:<path>) */
    ngx_str_t  redis_addr; /* as written, for logs; empty: no Redis */
    char      *redis_ip;   /* NUL-terminated, or NULL */
    char      *redis_unix; /* NUL-terminated path, or NULL */
    int        redis_port;
    ngx_str_t  redis_password; /* NUL-terminated, or empty */
    ngx_str_t  redis_user;     /* ACL user, or empty */
    ngx_uint_t redis_database;
    ngx_uint_t redis_pool_size;
    ngx_msec_t redis_timeout;
    ngx_msec_t redis_connect_timeout;

    /* the worker's copies of cache entries (bytes per worker; 0: none) */
    size_t cache_local_size;

    /* password hashing (argon2id) */
    ngx_thread_pool_t *pw_thread_pool;
    ngx_str_t          pw_thread_pool_name;
    ngx_uint_t         argon2_t_cost;
    ngx_uint_t         argon2_m_cost; /* KiB */
    ngx_uint_t         argon2_parallelism;

    /* HMAC-SHA256 key of task list cursors (taskmgr_cursor_secret_file,
     * else random per configuration) */
    ngx_str_t                cursor_secret;
    ngx_http_taskmgr_hmac_t *cursor_hmac; /* keyed with it */

    /* the background purge (purge.c): soft-deleted tasks older than
     * task_purge_after (0: never), a batch every task_purge_interval */
    time_t     task_purge_after;
    ngx_msec_t task_purge_interval;

    /* the key that seals TOTP secrets at rest (AES-256-GCM; 32 bytes, or
     * empty: secrets are stored as they are) */
    ngx_str_t mfa_key;

    /* per-worker state, created in init_process */
    ngx_http_taskmgr_pg_pool_t      *pg;
    struct ngx_http_taskmgr_redis_s *redis;
} ngx_http_taskmgr_main_conf_t;


/* identity of a caller, set by the auth module after a verified token */
typedef struct {
    ngx_str_t sub; /* user id, a UUID */
    ngx_str_t sid; /* session id, a UUID, or empty */
    ngx_str_t jti;
    time_t    iat;
    time_t    exp;

    /* an API key (sid is its id): valid in key_ws only, with its role at
     * most (PostgreSQL caps the role, the auth module the workspace) */
    ngx_str_t key_ws;

    /* Redis said neither the session nor the user's tokens are revoked (or
     * PostgreSQL just found the API key) */
    unsigned revocation_checked : 1;
    unsigned api_key : 1;
} ngx_http_taskmgr_identity_t;


/* ngx_http_taskmgr_module.c */
ngx_http_taskmgr_main_conf_t *ngx_http_taskmgr_main_conf(void);
void ngx_http_taskmgr_request_id(ngx_http_request_t *r, ngx_str_t *id);
/* reads a key file of 1..4096 bytes (trailing white space dropped) */
char *ngx_http_taskmgr_read_secret(ngx_conf_t *cf, ngx_command_t *cmd,
                                   ngx_str_t *out);

/* ngx_http_taskmgr_purge.c: in one worker only */
ngx_int_t ngx_http_taskmgr_purge_init(ngx_cycle_t                  *cycle,
                                      ngx_http_taskmgr_main_conf_t *mcf);
void      ngx_http_taskmgr_purge_stop(void);

/* ngx_http_taskmgr_http.c: responses */
void      ngx_http_taskmgr_release_connection(ngx_connection_t *c);
ngx_int_t ngx_http_taskmgr_send(ngx_http_request_t *r, ngx_uint_t status,
                                ngx_str_t *content_type, ngx_str_t *body);
ngx_int_t ngx_http_taskmgr_send_json(ngx_http_request_t *r, ngx_uint_t status,
                                     ngx_str_t *body);
ngx_int_t ngx_http_taskmgr_send_problem(ngx_http_request_t *r,
                                        ngx_uint_t status, const char *code,
                                        const char *detail);
ngx_int_t ngx_http_taskmgr_send_problem_errors(ngx_http_request_t *r,
                                               ngx_uint_t          status,
                                               const char         *code,
                                               const char         *detail,
                                               ngx_str_t          *errors_json);
ngx_int_t ngx_http_taskmgr_add_header(ngx_http_request_t *r, const char *name,
                                      ngx_str_t *value);
ngx_table_elt_t *ngx_http_taskmgr_find_out_header(ngx_http_request_t *r,
                                                  const char         *name);
ngx_table_elt_t *ngx_http_taskmgr_find_header(ngx_http_request_t *r,
                                              const char         *name);
size_t           ngx_http_taskmgr_json_escaped_len(u_char *p, size_t n);
u_char   *ngx_http_taskmgr_json_escape_to(u_char *dst, u_char *p, size_t n);
ngx_int_t ngx_http_taskmgr_json_escape(ngx_pool_t *pool, ngx_str_t *in,
                                       ngx_str_t *out);

/* ngx_http_taskmgr_auth.c */
ngx_http_taskmgr_identity_t *ngx_http_taskmgr_auth_identity(
    ngx_http_request_t *r);

/* ngx_http_taskmgr_jwt.c: issues an access token signed with the key,
 * algorithm, issuer, audience and lifetime of r's auth location conf */
ngx_int_t ngx_http_taskmgr_jwt_issue(ngx_http_request_t *r, ngx_str_t *sub,
                                     ngx_str_t *sid, ngx_str_t *token,
                                     time_t *expires_in);

/* ngx_http_taskmgr_crypto.c */
ngx_int_t ngx_http_taskmgr_random_token(ngx_pool_t *pool, size_t nbytes,
                                        ngx_str_t *out);
ngx_int_t ngx_http_taskmgr_sha256_hex(ngx_pool_t *pool, ngx_str_t *in,
                                      ngx_str_t *out);
ngx_int_t ngx_http_taskmgr_uuid_v7(ngx_pool_t *pool, ngx_str_t *out);
/* keyed at configuration time, freed with the pool; NULL on failure */
ngx_http_taskmgr_hmac_t *ngx_http_taskmgr_hmac_create(ngx_pool_t *pool,
                                                      ngx_str_t  *key);
/* out: NGX_HTTP_TASKMGR_HMAC_LEN bytes */
ngx_int_t ngx_http_taskmgr_hmac(ngx_http_taskmgr_hmac_t *hmac, u_char *in,
                                size_t len, u_char *out);
ngx_int_t ngx_http_taskmgr_is_uuid(ngx_str_t *s);

/*
 * Password hashing and verification run in the thread pool named by
 * taskmgr_password_thread_pool.  The handler is called in the event loop
 * once the work is done: rc is NGX_OK (hash set, or password matched),
 * NGX_DECLINED (password did not match) or NGX_ERROR.  The request is held
 * with r->main->blocked while the thread runs.
 */
typedef void (*ngx_http_taskmgr_pw_handler_pt)(ngx_http_request_t *r,
                                               ngx_int_t rc, ngx_str_t *hash);

ngx_int_t ngx_http_taskmgr_password_hash(
    ngx_http_request_t *r, ngx_str_t *password,
    ngx_http_taskmgr_pw_handler_pt handler);
/* encoded == NULL verifies against a dummy hash and answers NGX_DECLINED,
 * so that unknown accounts cost the same time as known ones */
ngx_int_t ngx_http_taskmgr_password_verify(
    ngx_http_request_t *r, ngx_str_t *password, ngx_str_t *encoded,
    ngx_http_taskmgr_pw_handler_pt handler);
/* the answer when either could not start (rc: what it returned): 503
 * dependency_unavailable when the thread pool's queue is full (NGX_BUSY),
 * else 500 */
ngx_int_t ngx_http_taskmgr_password_refused(ngx_http_request_t *r,
    ngx_int_t rc);


#endif /* _NGX_HTTP_TASKMGR_H_INCLUDED_ */
