/*
 * Copyright (C) taskmgr developers
 *
 * Random tokens, SHA-256, UUIDs and argon2id password hashing in an nginx
 * thread pool.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <argon2.h>

#include "ngx_http_taskmgr.h"


#if !(NGX_THREADS)
#error "taskmgr needs nginx built with --with-threads"
#endif


#define NGX_HTTP_TASKMGR_RANDOM_MAX  256
#define NGX_HTTP_TASKMGR_PW_MAX_LEN  4096
#define NGX_HTTP_TASKMGR_PW_SALT_LEN 16
#define NGX_HTTP_TASKMGR_PW_HASH_LEN 32
#define NGX_HTTP_TASKMGR_PW_ARGON2ID "$argon2id$"


typedef struct {
    ngx_http_request_t            *request;
    ngx_http_taskmgr_pw_handler_pt handler;

    /* the thread touches only the fields below */
    u_char    *password;
    size_t     password_len;
    char      *encoded;      /* NUL-terminated */
    size_t     encoded_size; /* hash: buffer size */
    u_char     salt[NGX_HTTP_TASKMGR_PW_SALT_LEN];
    uint32_t   t_cost;
    uint32_t   m_cost;
    uint32_t   parallelism;
    ngx_uint_t verify;   /* unsigned:1 */
    ngx_uint_t bad_hash; /* unsigned:1 */
    int        argon2_rc;
    ngx_int_t  rc;
} ngx_http_taskmgr_pw_ctx_t;


static ngx_int_t ngx_http_taskmgr_pw_start(
    ngx_http_request_t *r, ngx_str_t *password, ngx_str_t *encoded,
    ngx_uint_t verify, ngx_http_taskmgr_pw_handler_pt handler);
static void ngx_http_taskmgr_pw_thread(void *data, ngx_log_t *log);
static void ngx_http_taskmgr_pw_done(ngx_event_t *ev);


ngx_int_t
ngx_http_taskmgr_random_token(ngx_pool_t *pool, size_t nbytes, ngx_str_t *out)
{
    u_char    raw[NGX_HTTP_TASKMGR_RANDOM_MAX];
    ngx_str_t src;

    if (nbytes == 0 || nbytes > NGX_HTTP_TASKMGR_RANDOM_MAX) {
        ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                      "taskmgr: random token of %uz bytes requested", nbytes);
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, ngx_base64_encoded_length(nbytes));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    if (RAND_bytes(raw, (int) nbytes) != 1) {
        ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                      "taskmgr: RAND_bytes() failed");
        return NGX_ERROR;
    }

    src.len = nbytes;
    src.data = raw;

    /* base64url without padding */
    ngx_encode_base64url(out, &src);

    ngx_explicit_memzero(raw, nbytes);

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_sha256_hex(ngx_pool_t *pool, ngx_str_t *in, ngx_str_t *out)
{
    u_char      *p;
    unsigned int len;
    u_char       md[EVP_MAX_MD_SIZE];

    if (EVP_Digest(in->len ? in->data : (u_char *) "", in->len, md, &len,
                   ngx_http_taskmgr_sha256(), NULL)
        != 1)
    {
        ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                      "taskmgr: EVP_Digest(sha256) failed");
        return NGX_ERROR;
    }

    p = ngx_pnalloc(pool, (size_t) len * 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    out->len = ngx_hex_dump(p, md, len) - p;

    return NGX_OK;
}


const EVP_MD *
ngx_http_taskmgr_sha256(void)
{
    static EVP_MD *md;

    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);

        if (md == NULL) {
            return EVP_sha256();
        }
    }

    return md;
}


static void
ngx_http_taskmgr_hmac_cleanup(void *data)
{
    EVP_MAC_CTX_free(data);
}


ngx_http_taskmgr_hmac_t *
ngx_http_taskmgr_hmac_create(ngx_pool_t *pool, ngx_str_t *key)
{
    EVP_MAC            *mac;
    OSSL_PARAM          params[2];
    EVP_MAC_CTX        *ctx;
    ngx_pool_cleanup_t *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        return NULL;
    }

    ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the ctx holds its own reference */

    if (ctx == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_taskmgr_hmac_cleanup;
    cln->data = ctx;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    if (EVP_MAC_init(ctx, key->data, key->len, params) != 1) {
        return NULL;
    }

    return ctx;
}


/* a worker is single-threaded: the keyed ctx is reset and reused */
ngx_int_t
ngx_http_taskmgr_hmac(ngx_http_taskmgr_hmac_t *hmac, u_char *in, size_t len,
                      u_char *out)
{
    size_t n;

    if (EVP_MAC_init(hmac, NULL, 0, NULL) != 1
        || EVP_MAC_update(hmac, in, len) != 1
        || EVP_MAC_final(hmac, out, &n, NGX_HTTP_TASKMGR_HMAC_LEN) != 1
        || n != NGX_HTTP_TASKMGR_HMAC_LEN)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_uuid_v7(ngx_pool_t *pool, ngx_str_t *out)
{
    u_char     *p;
    uint64_t    ms;
    ngx_time_t *tp;
    u_char      b[16];

    if (RAND_bytes(b + 6, 10) != 1) {
        ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                      "taskmgr: RAND_bytes() failed");
        return NGX_ERROR;
    }

    p = ngx_pnalloc(pool, NGX_HTTP_TASKMGR_UUID_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();
    ms = (uint64_t) tp->sec * 1000 + tp->msec;

    /* RFC 9562: 48-bit unix_ts_ms, version 7, variant 10, random bits */

    b[0] = (u_char) (ms >> 40);
    b[1] = (u_char) (ms >> 32);
    b[2] = (u_char) (ms >> 24);
    b[3] = (u_char) (ms >> 16);
    b[4] = (u_char) (ms >> 8);
    b[5] = (u_char) ms;
    b[6] = (u_char) (0x70 | (b[6] & 0x0f));
    b[8] = (u_char) (0x80 | (b[8] & 0x3f));

    out->data = p;

    p = ngx_hex_dump(p, b, 4);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 4, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 6, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 8, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 10, 6);

    out->len = p - out->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_is_uuid(ngx_str_t *s)
{
    u_char     ch;
    ngx_uint_t i;

    if (s == NULL || s->len != NGX_HTTP_TASKMGR_UUID_LEN) {
        return NGX_DECLINED;
    }

    for (i = 0; i < NGX_HTTP_TASKMGR_UUID_LEN; i++) {
        ch = s->data[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') {
                return NGX_DECLINED;
            }

            continue;
        }

        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')
            || (ch >= 'A' && ch <= 'F'))
        {
            continue;
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_password_hash(ngx_http_request_t *r, ngx_str_t *password,
                               ngx_http_taskmgr_pw_handler_pt handler)
{
    return ngx_http_taskmgr_pw_start(r, password, NULL, 0, handler);
}


ngx_int_t
ngx_http_taskmgr_password_verify(ngx_http_request_t *r, ngx_str_t *password,
                                 ngx_str_t                     *encoded,
                                 ngx_http_taskmgr_pw_handler_pt handler)
{
    return ngx_http_taskmgr_pw_start(r, password, encoded, 1, handler);
}


static ngx_int_t
ngx_http_taskmgr_pw_start(ngx_http_request_t *r, ngx_str_t *password,
                          ngx_str_t *encoded, ngx_uint_t verify,
                          ngx_http_taskmgr_pw_handler_pt handler)
{
    ngx_thread_task_t            *task;
    ngx_http_taskmgr_pw_ctx_t    *ctx;
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = ngx_http_taskmgr_main_conf();

    if (mcf == NULL || mcf->pw_thread_pool == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: no thread pool for password hashing");
        return NGX_ERROR;
    }

    if (password->len > NGX_HTTP_TASKMGR_PW_MAX_LEN
        || (ngx_uint_t) (uint32_t) mcf->argon2_t_cost != mcf->argon2_t_cost
        || (ngx_uint_t) (uint32_t) mcf->argon2_m_cost != mcf->argon2_m_cost
        || (ngx_uint_t) (uint32_t) mcf->argon2_parallelism
            != mcf->argon2_parallelism)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: password or argon2 parameters out of range");
        return NGX_ERROR;
    }

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_taskmgr_pw_ctx_t));
    if (task == NULL) {
        return NGX_ERROR;
    }

    ctx = task->ctx;

    ctx->request = r;
    ctx->handler = handler;
    ctx->verify = verify;
    ctx->t_cost = (uint32_t) mcf->argon2_t_cost;
    ctx->m_cost = (uint32_t) mcf->argon2_m_cost;
    ctx->parallelism = (uint32_t) mcf->argon2_parallelism;

    if (verify) {
        if (encoded != NULL) {
            ctx->encoded = ngx_pnalloc(r->pool, encoded->len + 1);
            if (ctx->encoded == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(ctx->encoded, encoded->data, encoded->len);
            ctx->encoded[encoded->len] = '\0';
        }

    } else {
        ctx->encoded_size =
            argon2_encodedlen(ctx->t_cost, ctx->m_cost, ctx->parallelism,
                              NGX_HTTP_TASKMGR_PW_SALT_LEN,
                              NGX_HTTP_TASKMGR_PW_HASH_LEN, Argon2_id);

        ctx->encoded = ngx_pnalloc(r->pool, ctx->encoded_size);
        if (ctx->encoded == NULL) {
            return NGX_ERROR;
        }

        ctx->encoded[0] = '\0';
    }

    /* a salt for hashing; for the dummy verification it only costs time */

    if (RAND_bytes(ctx->salt, NGX_HTTP_TASKMGR_PW_SALT_LEN) != 1) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: RAND_bytes() failed");
        return NGX_ERROR;
    }

    ctx->password = ngx_pnalloc(r->pool, password->len + 1);
    if (ctx->password == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->password, password->data, password->len);
    ctx->password_len = password->len;

    task->handler = ngx_http_taskmgr_pw_thread;
    task->event.data = ctx;
    task->event.handler = ngx_http_taskmgr_pw_done;

    r->main->blocked++;

    if (ngx_thread_task_post(mcf->pw_thread_pool, task) != NGX_OK) {
        /* the pool's queue is full; nginx has logged it */
        r->main->blocked--;
        ngx_explicit_memzero(ctx->password, ctx->password_len);
        return NGX_BUSY;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_password_refused(ngx_http_request_t *r, ngx_int_t rc)
{
    if (rc == NGX_BUSY) {
        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "dependency_unavailable",
                                             "password hashing is busy, "
                                             "retry shortly");
    }

    return ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         "internal", NULL);
}


/* runs in a thread of the pool: touches ctx only, never logs */

static void
ngx_http_taskmgr_pw_thread(void *data, ngx_log_t *log)
{
    ngx_http_taskmgr_pw_ctx_t *ctx = data;

    int    rc;
    u_char dummy[NGX_HTTP_TASKMGR_PW_HASH_LEN];

    if (!ctx->verify) {
        rc = argon2id_hash_encoded(
            ctx->t_cost, ctx->m_cost, ctx->parallelism, ctx->password,
            ctx->password_len, ctx->salt, NGX_HTTP_TASKMGR_PW_SALT_LEN,
            NGX_HTTP_TASKMGR_PW_HASH_LEN, ctx->encoded, ctx->encoded_size);

        ctx->rc = (rc == ARGON2_OK) ? NGX_OK : NGX_ERROR;

    } else if (ctx->encoded != NULL
               && ngx_strncmp(ctx->encoded, NGX_HTTP_TASKMGR_PW_ARGON2ID,
                              sizeof(NGX_HTTP_TASKMGR_PW_ARGON2ID) - 1)
                   == 0)
    {
        rc = argon2id_verify(ctx->encoded, ctx->password, ctx->password_len);

        switch (rc) {

        case ARGON2_OK:
            ctx->rc = NGX_OK;
            break;

        case ARGON2_VERIFY_MISMATCH:
            ctx->rc = NGX_DECLINED;
            break;

        case ARGON2_MEMORY_ALLOCATION_ERROR:
            ctx->rc = NGX_ERROR;
            break;

        default:
            /* a malformed stored hash never matches */
            ctx->bad_hash = 1;
            ctx->rc = NGX_DECLINED;
            break;
        }

    } else {

        /*
         * no account, or a stored hash that is not argon2id: do the work
         * of one verification with the configured parameters (the cost
         * of a real one) and answer "no match"
         */

        ctx->bad_hash = (ctx->encoded != NULL);

        rc = argon2id_hash_raw(ctx->t_cost, ctx->m_cost, ctx->parallelism,
                               ctx->password, ctx->password_len, ctx->salt,
                               NGX_HTTP_TASKMGR_PW_SALT_LEN, dummy,
                               NGX_HTTP_TASKMGR_PW_HASH_LEN);

        ngx_explicit_memzero(dummy, NGX_HTTP_TASKMGR_PW_HASH_LEN);

        ctx->rc = (rc == ARGON2_OK) ? NGX_DECLINED : NGX_ERROR;
    }

    ctx->argon2_rc = rc;

    ngx_explicit_memzero(ctx->password, ctx->password_len);
}


/* runs in the event loop once the thread is done */

static void
ngx_http_taskmgr_pw_done(ngx_event_t *ev)
{
    ngx_str_t                  hash, *out;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_taskmgr_pw_ctx_t *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    r->main->blocked--;

    if (ctx->rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "taskmgr: argon2id %s failed: %s",
                      ctx->verify ? "verification" : "hashing",
                      argon2_error_message(ctx->argon2_rc));

    } else if (ctx->bad_hash) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "taskmgr: stored password hash is not a valid "
                      "argon2id hash");
    }

    out = NULL;

    if (!ctx->verify && ctx->rc == NGX_OK) {
        hash.data = (u_char *) ctx->encoded;
        hash.len = ngx_strlen(ctx->encoded);
        out = &hash;
    }

    ctx->handler(r, ctx->rc, out);

    ngx_http_run_posted_requests(c);
}
