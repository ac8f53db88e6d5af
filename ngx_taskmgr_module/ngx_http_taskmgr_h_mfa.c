/*
 * Copyright (C) taskmgr developers
 *
 * /v1/auth/mfa/totp: set up, confirm (answers the recovery codes once),
 * disable; and the second-factor check that login and magic links share.
 *
 * Codes are checked here (the secret comes from PostgreSQL with the last
 * time step used); PostgreSQL then takes the step only if it is later than
 * the last one (a code works once, also under concurrent requests) or
 * deletes the recovery code's hash (once as well).
 *
 * With taskmgr_mfa_key_file, secrets are sealed before they reach
 * PostgreSQL: "v1." and base64url of nonce (12 bytes), AES-256-GCM
 * ciphertext and tag (16 bytes), the user id as additional data (a sealed
 * secret copied to another user does not open).  Without the key they are
 * stored as they are; stored plain secrets keep working once a key is set.
 */


#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_totp.h"


#define NGX_HTTP_TASKMGR_RECOVERY_CODES 10
#define NGX_HTTP_TASKMGR_RECOVERY_BYTES 8 /* 16 hex digits */
#define NGX_HTTP_TASKMGR_RECOVERY_LEN   (2 * NGX_HTTP_TASKMGR_RECOVERY_BYTES)

#define NGX_HTTP_TASKMGR_TOTP_ISSUER "taskmgr"

#define NGX_HTTP_TASKMGR_SEAL_PREFIX "v1."
#define NGX_HTTP_TASKMGR_SEAL_NONCE  12
#define NGX_HTTP_TASKMGR_SEAL_TAG    16
#define NGX_HTTP_TASKMGR_SEAL_RAW                                              \
    (NGX_HTTP_TASKMGR_SEAL_NONCE + NGX_HTTP_TASKMGR_TOTP_SECRET_LEN            \
     + NGX_HTTP_TASKMGR_SEAL_TAG)


/* clang-format off */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_mfa_code_fields[] = {
    { "code", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 6, 16, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


static ngx_str_t ngx_http_taskmgr_mfa_no_store = ngx_string("no-store");


static void ngx_http_taskmgr_mfa_setup_done(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_mfa_confirm_state(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_mfa_confirm_done(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_mfa_disable_state(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_mfa_check(ngx_http_request_t *r,
                                            ngx_str_t          *secret,
                                            int64_t last_step, ngx_str_t *code,
                                            ngx_str_t **step,
                                            ngx_str_t **recovery);
static ngx_int_t ngx_http_taskmgr_mfa_wrong_code(ngx_http_request_t *r);
static ngx_int_t ngx_http_taskmgr_mfa_state_error(
    ngx_http_request_t *r, ngx_http_taskmgr_result_t *res);
static void ngx_http_taskmgr_mfa_failed(ngx_http_request_t         *r,
                                        ngx_http_taskmgr_api_ctx_t *ctx);
static void ngx_http_taskmgr_mfa_failed_done(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_mfa_seal(ngx_http_request_t *r,
                                           ngx_str_t *uid, ngx_str_t *plain,
                                           ngx_str_t *sealed);
static ngx_int_t ngx_http_taskmgr_mfa_open(ngx_http_request_t *r,
                                           ngx_str_t *uid, ngx_str_t *stored,
                                           ngx_str_t *plain);
static u_char   *ngx_http_taskmgr_mfa_uri_escape(u_char *dst, ngx_str_t *s);


/*
 * The second factor of a login or a magic link.  mfa: "<stored secret>
 * <last step>" of uid's enabled TOTP; the code is the body's totp_code.
 * NGX_OK:
 * *step or *recovery is set for PostgreSQL to take.  NGX_DONE: answered,
 * *rc is the finalize code (401 mfa_required without a code, 401 with a
 * wrong one).
 */
ngx_int_t
ngx_http_taskmgr_mfa_second_factor(ngx_http_request_t         *r,
                                   ngx_http_taskmgr_api_ctx_t *ctx,
                                   ngx_str_t *uid, ngx_str_t *mfa,
                                   ngx_str_t **step, ngx_str_t **recovery,
                                   ngx_int_t *rc)
{
    ngx_int_t n;
    ngx_str_t stored, secret, last, code;

    if (ngx_http_taskmgr_api_split_meta(mfa, &stored, &last) != NGX_OK
        || (n = ngx_atoi(last.data, last.len)) == NGX_ERROR
        || ngx_http_taskmgr_mfa_open(r, uid, &stored, &secret) != NGX_OK)
    {
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                            "internal", NULL);
        return NGX_DONE;
    }

    if (ngx_http_taskmgr_json_string(ctx->body, "totp_code", &code) != NGX_OK) {
        *rc = ngx_http_taskmgr_send_problem(
            r, NGX_HTTP_UNAUTHORIZED, "mfa_required",
            "a TOTP code (totp_code) is required, or a recovery code");
        return NGX_DONE;
    }

    switch (ngx_http_taskmgr_mfa_check(r, &secret, n, &code, step, recovery)) {
    case NGX_OK:
        return NGX_OK;

    case NGX_DECLINED:
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_UNAUTHORIZED,
                                            "unauthorized",
                                            "invalid email, password or code");
        return NGX_DONE;

    default:
        *rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                            "internal", NULL);
        return NGX_DONE;
    }
}


/*
 * A code of 6 digits is a TOTP code: NGX_OK with *step the time step it
 * matched (after last_step).  16 hex digits are a recovery code: NGX_OK
 * with *recovery its SHA-256 (PostgreSQL knows whether it is one).
 * NGX_DECLINED: neither.
 */
static ngx_int_t
ngx_http_taskmgr_mfa_check(ngx_http_request_t *r, ngx_str_t *secret,
                           int64_t last_step, ngx_str_t *code, ngx_str_t **step,
                           ngx_str_t **recovery)
{
    u_char    *p;
    int64_t    s;
    ngx_str_t *v, low;
    ngx_uint_t i;

    *step = NULL;
    *recovery = NULL;

    v = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (v == NULL) {
        return NGX_ERROR;
    }

    if (code->len == NGX_HTTP_TASKMGR_TOTP_DIGITS) {
        s = ngx_http_taskmgr_totp_verify(secret->data, secret->len, code->data,
                                         code->len, ngx_time(), last_step);
        if (s < 0) {
            return NGX_DECLINED;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%L", s) - p;
        *step = v;

        return NGX_OK;
    }

    if (code->len != NGX_HTTP_TASKMGR_RECOVERY_LEN) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, code->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < code->len; i++) {
        p[i] = ngx_tolower(code->data[i]);

        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return NGX_DECLINED;
        }
    }

    low.data = p;
    low.len = code->len;

    if (ngx_http_taskmgr_sha256_hex(r->pool, &low, v) != NGX_OK) {
        return NGX_ERROR;
    }

    *recovery = v;

    return NGX_OK;
}


/*
 * POST /v1/auth/mfa/totp: a new 160-bit secret, pending until confirmed.
 */
ngx_int_t
ngx_http_taskmgr_h_mfa_totp_setup(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    u_char                       raw[NGX_HTTP_TASKMGR_TOTP_SECRET_BYTES];
    ngx_str_t                    secret, stored;
    ngx_http_taskmgr_pg_query_t *q;

    secret.data = ngx_pnalloc(r->pool, NGX_HTTP_TASKMGR_TOTP_SECRET_LEN);
    if (secret.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: RAND_bytes() failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    secret.len = ngx_http_taskmgr_base32_encode(secret.data, raw, sizeof(raw));
    ngx_explicit_memzero(raw, sizeof(raw));

    if (ngx_http_taskmgr_mfa_seal(r, &ctx->identity->sub, &secret, &stored)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->str[0] = secret;

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_MFA_TOTP_SETUP,
                                   ngx_http_taskmgr_mfa_setup_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &stored);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * 200 {"secret":"…","otpauth_uri":"otpauth://totp/<issuer>:<email>?…"}
 * (meta: the email).  The answer holds the secret: no-store.
 */
static void
ngx_http_taskmgr_mfa_setup_done(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                   *p;
    ngx_str_t                 body, *secret;
    ngx_str_t                 issuer = ngx_string(NGX_HTTP_TASKMGR_TOTP_ISSUER);
    ngx_http_request_t       *r;
    ngx_http_taskmgr_result_t res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);
    secret = &ctx->str[0];

    if (ngx_http_taskmgr_api_expect(q, &res, NGX_HTTP_OK) != NGX_OK) {
        return;
    }

    /* every character of the issuer and the email may take 3 */
    body.data = ngx_pnalloc(
        r->pool,
        sizeof("{\"secret\":\"\",\"otpauth_uri\":\"otpauth://totp/:"
               "?secret=&issuer=&algorithm=SHA1&digits=6&period=30\"}")
            - 1 + 2 * secret->len + 6 * issuer.len + 3 * res.meta.len);
    if (body.data == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_sprintf(body.data,
                    "{\"secret\":\"%V\",\"otpauth_uri\":\"otpauth://totp/",
                    secret);
    p = ngx_http_taskmgr_mfa_uri_escape(p, &issuer);
    *p++ = ':';
    p = ngx_http_taskmgr_mfa_uri_escape(p, &res.meta);
    p = ngx_sprintf(p, "?secret=%V&issuer=", secret);
    p = ngx_http_taskmgr_mfa_uri_escape(p, &issuer);
    p = ngx_cpymem(p, "&algorithm=SHA1&digits=6&period=30\"}",
                   sizeof("&algorithm=SHA1&digits=6&period=30\"}") - 1);
    body.len = p - body.data;

    if (ngx_http_taskmgr_add_header(r, "Cache-Control",
                                    &ngx_http_taskmgr_mfa_no_store)
        != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_taskmgr_api_finish(
        r, ngx_http_taskmgr_send_json(r, NGX_HTTP_OK, &body));
}


/* RFC 3986 percent-encoding of all but the unreserved characters: the
 * result needs no JSON escaping either */
static u_char *
ngx_http_taskmgr_mfa_uri_escape(u_char *dst, ngx_str_t *s)
{
    u_char     c;
    ngx_uint_t i;

    static u_char hex[] = "0123456789ABCDEF";

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~')
        {
            *dst++ = c;
            continue;
        }

        *dst++ = '%';
        *dst++ = hex[c >> 4];
        *dst++ = hex[c & 0x0f];
    }

    return dst;
}


/*
 * POST /v1/auth/mfa/totp/confirm {code}: the pending secret and a code
 * made from it enable TOTP; the answer is 200 with the ten recovery codes,
 * shown this once (PostgreSQL keeps their SHA-256 hashes).
 * ctx->str[0]: the answer, str[1]: the hashes, space separated.
 */
ngx_int_t
ngx_http_taskmgr_h_mfa_totp_confirm(ngx_http_request_t         *r,
                                    ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_MFA_TOTP_STATE,
                                   ngx_http_taskmgr_mfa_confirm_state));
}


static void
ngx_http_taskmgr_mfa_confirm_state(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                     *p, *h;
    u_char                      raw[NGX_HTTP_TASKMGR_RECOVERY_BYTES];
    int64_t                     s;
    ngx_int_t                   rc;
    ngx_str_t                   code, one, hash, step, secret;
    ngx_uint_t                  i;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status != NGX_HTTP_OK) {
        ngx_http_taskmgr_api_finish(r,
                                    ngx_http_taskmgr_mfa_state_error(r, &res));
        return;
    }

    if (res.meta.len != sizeof("pending") - 1
        || ngx_strncmp(res.meta.data, "pending", res.meta.len) != 0)
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_CONFLICT, "conflict",
                                          "TOTP is already enabled"));
        return;
    }

    if (ngx_http_taskmgr_mfa_open(r, &ctx->identity->sub, &res.body, &secret)
        != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    (void) ngx_http_taskmgr_json_string(ctx->body, "code", &code);

    s = ngx_http_taskmgr_totp_verify(secret.data, secret.len, code.data,
                                     code.len, ngx_time(), 0);
    if (s < 0) {
        ngx_http_taskmgr_mfa_failed(r, ctx);
        return;
    }

    step.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);

    /* {"recovery_codes":["<16 hex>",...]} and the hashes */
    ctx->str[0].data =
        ngx_pnalloc(r->pool,
                    sizeof("{\"recovery_codes\":[]}") - 1
                        + NGX_HTTP_TASKMGR_RECOVERY_CODES
                            * (NGX_HTTP_TASKMGR_RECOVERY_LEN + 3));
    ctx->str[1].data =
        ngx_pnalloc(r->pool, NGX_HTTP_TASKMGR_RECOVERY_CODES * (64 + 1));

    if (step.data == NULL || ctx->str[0].data == NULL
        || ctx->str[1].data == NULL) {
        goto failed;
    }

    step.len = ngx_sprintf(step.data, "%L", s) - step.data;

    p = ngx_cpymem(ctx->str[0].data, "{\"recovery_codes\":[",
                   sizeof("{\"recovery_codes\":[") - 1);
    h = ctx->str[1].data;

    for (i = 0; i < NGX_HTTP_TASKMGR_RECOVERY_CODES; i++) {
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            goto failed;
        }

        if (i) {
            *p++ = ',';
            *h++ = ' ';
        }

        *p++ = '"';
        one.data = p;
        p = ngx_hex_dump(p, raw, sizeof(raw));
        one.len = p - one.data;
        *p++ = '"';

        if (ngx_http_taskmgr_sha256_hex(r->pool, &one, &hash) != NGX_OK) {
            goto failed;
        }

        h = ngx_cpymem(h, hash.data, hash.len);
    }

    ngx_explicit_memzero(raw, sizeof(raw));

    *p++ = ']';
    *p++ = '}';
    ctx->str[0].len = p - ctx->str[0].data;
    ctx->str[1].len = h - ctx->str[1].data;

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_MFA_TOTP_ENABLE,
                                   ngx_http_taskmgr_mfa_confirm_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &res.body);
        ngx_http_taskmgr_pg_param(q, &step);
        ngx_http_taskmgr_pg_param(q, &ctx->str[1]);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }

    return;

failed:

    ngx_explicit_memzero(raw, sizeof(raw));

    ngx_http_taskmgr_api_finish(
        r,
        ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal", NULL));
}


static void
ngx_http_taskmgr_mfa_confirm_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_expect(q, &res, NGX_HTTP_NO_CONTENT) != NGX_OK) {
        return;
    }

    if (ngx_http_taskmgr_add_header(r, "Cache-Control",
                                    &ngx_http_taskmgr_mfa_no_store)
        != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_taskmgr_api_finish(
        r, ngx_http_taskmgr_send_json(r, NGX_HTTP_OK, &ctx->str[0]));
}


/*
 * DELETE /v1/auth/mfa/totp {code}: a TOTP code (not used before) or a
 * recovery code turns TOTP off and forgets the recovery codes.
 */
ngx_int_t
ngx_http_taskmgr_h_mfa_totp_disable(ngx_http_request_t         *r,
                                    ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_MFA_TOTP_STATE,
                                   ngx_http_taskmgr_mfa_disable_state));
}


static void
ngx_http_taskmgr_mfa_disable_state(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc, n;
    ngx_str_t                   code, kind, last, secret, *step, *recovery;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status != NGX_HTTP_OK) {
        ngx_http_taskmgr_api_finish(r,
                                    ngx_http_taskmgr_mfa_state_error(r, &res));
        return;
    }

    if (ngx_http_taskmgr_api_split_meta(&res.meta, &kind, &last) != NGX_OK) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_CONFLICT, "conflict",
                                          "TOTP is not enabled"));
        return;
    }

    n = ngx_atoi(last.data, last.len);
    (void) ngx_http_taskmgr_json_string(ctx->body, "code", &code);

    if (n == NGX_ERROR
        || ngx_http_taskmgr_mfa_open(r, &ctx->identity->sub, &res.body, &secret)
            != NGX_OK)
    {
        rc = NGX_ERROR;

    } else {
        rc = ngx_http_taskmgr_mfa_check(r, &secret, n, &code, &step, &recovery);
    }

    if (rc == NGX_DECLINED) {
        ngx_http_taskmgr_mfa_failed(r, ctx);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    q = ngx_http_taskmgr_api_query(r, ctx,
                                   NGX_HTTP_TASKMGR_SQL_MFA_TOTP_DISABLE,
                                   ngx_http_taskmgr_api_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, step);
        ngx_http_taskmgr_pg_param(q, recovery);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


/*
 * A wrong code for confirm or disable is counted in PostgreSQL before the
 * 403: five in 15 minutes stop both for the rest of the window (429).
 */
static void
ngx_http_taskmgr_mfa_failed(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t rc;

    rc = ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_MFA_TOTP_FAILED,
                                   ngx_http_taskmgr_mfa_failed_done));

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


static void
ngx_http_taskmgr_mfa_failed_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                 rc;
    ngx_http_request_t       *r;
    ngx_http_taskmgr_result_t res;

    r = q->request;

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    ngx_http_taskmgr_api_finish(r,
                                res.status == NGX_HTTP_FORBIDDEN
                                    ? ngx_http_taskmgr_mfa_wrong_code(r)
                                    : ngx_http_taskmgr_api_respond(r, &res));
}


/* the state lookup's refusals; 429 carries the seconds left in meta */
static ngx_int_t
ngx_http_taskmgr_mfa_state_error(ngx_http_request_t        *r,
                                 ngx_http_taskmgr_result_t *res)
{
    if (res->status == NGX_HTTP_TOO_MANY_REQUESTS) {
        if (ngx_http_taskmgr_add_header(r, "Retry-After", &res->meta) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_taskmgr_send_problem(
            r, NGX_HTTP_TOO_MANY_REQUESTS, "rate_limited",
            "too many wrong codes, try again later");
    }

    return ngx_http_taskmgr_api_respond(r, res);
}


/* as a wrong current password: 403 naming the field */
static ngx_int_t
ngx_http_taskmgr_mfa_wrong_code(ngx_http_request_t *r)
{
    ngx_str_t errors = ngx_string(
        "[{\"field\":\"code\",\"message\":\"is not a valid code\"}]");

    return ngx_http_taskmgr_send_problem_errors(
        r, NGX_HTTP_FORBIDDEN, "forbidden", "the code is wrong or was used",
        &errors);
}


/*
 * The stored form of a secret: sealed with the key, or as it is without
 * one.
 */
static ngx_int_t
ngx_http_taskmgr_mfa_seal(ngx_http_request_t *r, ngx_str_t *uid,
                          ngx_str_t *plain, ngx_str_t *sealed)
{
    int                           len, ok;
    u_char                        raw[NGX_HTTP_TASKMGR_SEAL_RAW];
    ngx_str_t                     src, out;
    EVP_CIPHER_CTX               *cctx;
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = ngx_http_taskmgr_main_conf();

    if (mcf->mfa_key.len == 0) {
        *sealed = *plain;
        return NGX_OK;
    }

    if (plain->len != NGX_HTTP_TASKMGR_TOTP_SECRET_LEN
        || RAND_bytes(raw, NGX_HTTP_TASKMGR_SEAL_NONCE) != 1)
    {
        return NGX_ERROR;
    }

    cctx = EVP_CIPHER_CTX_new();
    if (cctx == NULL) {
        return NGX_ERROR;
    }

    ok = EVP_EncryptInit_ex(cctx, EVP_aes_256_gcm(), NULL, mcf->mfa_key.data,
                            raw)
            == 1
        && EVP_EncryptUpdate(cctx, NULL, &len, uid->data, (int) uid->len) == 1
        && EVP_EncryptUpdate(cctx, raw + NGX_HTTP_TASKMGR_SEAL_NONCE, &len,
                             plain->data, (int) plain->len)
            == 1
        && len == (int) plain->len
        && EVP_EncryptFinal_ex(cctx, raw + NGX_HTTP_TASKMGR_SEAL_NONCE + len,
                               &len)
            == 1
        && EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG,
                               NGX_HTTP_TASKMGR_SEAL_TAG,
                               raw + NGX_HTTP_TASKMGR_SEAL_NONCE
                                   + NGX_HTTP_TASKMGR_TOTP_SECRET_LEN)
            == 1;

    EVP_CIPHER_CTX_free(cctx);

    if (!ok) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: sealing a TOTP secret failed");
        return NGX_ERROR;
    }

    sealed->data =
        ngx_pnalloc(r->pool,
                    sizeof(NGX_HTTP_TASKMGR_SEAL_PREFIX) - 1
                        + ngx_base64_encoded_length(NGX_HTTP_TASKMGR_SEAL_RAW));
    if (sealed->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sealed->data, NGX_HTTP_TASKMGR_SEAL_PREFIX,
               sizeof(NGX_HTTP_TASKMGR_SEAL_PREFIX) - 1);

    src.data = raw;
    src.len = sizeof(raw);
    out.data = sealed->data + sizeof(NGX_HTTP_TASKMGR_SEAL_PREFIX) - 1;

    ngx_encode_base64url(&out, &src);

    sealed->len = sizeof(NGX_HTTP_TASKMGR_SEAL_PREFIX) - 1 + out.len;

    return NGX_OK;
}


/* the base32 secret of a stored one; NGX_ERROR (logged) if it does not
 * open (no key, another key, another user's, or tampered with) */
static ngx_int_t
ngx_http_taskmgr_mfa_open(ngx_http_request_t *r, ngx_str_t *uid,
                          ngx_str_t *stored, ngx_str_t *plain)
{
    int                           len, ok;
    u_char                        raw[NGX_HTTP_TASKMGR_SEAL_RAW + 3];
    size_t                        plen;
    ngx_str_t                     src, dst;
    EVP_CIPHER_CTX               *cctx;
    ngx_http_taskmgr_main_conf_t *mcf;

    plen = sizeof(NGX_HTTP_TASKMGR_SEAL_PREFIX) - 1;

    if (stored->len < plen
        || ngx_strncmp(stored->data, NGX_HTTP_TASKMGR_SEAL_PREFIX, plen) != 0)
    {
        *plain = *stored;
        return NGX_OK;
    }

    mcf = ngx_http_taskmgr_main_conf();

    src.data = stored->data + plen;
    src.len = stored->len - plen;
    dst.data = raw;

    if (mcf->mfa_key.len == 0
        || ngx_base64_decoded_length(src.len) > sizeof(raw)
        || ngx_decode_base64url(&dst, &src) != NGX_OK
        || dst.len != NGX_HTTP_TASKMGR_SEAL_RAW)
    {
        goto failed;
    }

    plain->data = ngx_pnalloc(r->pool, NGX_HTTP_TASKMGR_TOTP_SECRET_LEN);
    if (plain->data == NULL) {
        return NGX_ERROR;
    }

    cctx = EVP_CIPHER_CTX_new();
    if (cctx == NULL) {
        return NGX_ERROR;
    }

    ok = EVP_DecryptInit_ex(cctx, EVP_aes_256_gcm(), NULL, mcf->mfa_key.data,
                            raw)
            == 1
        && EVP_DecryptUpdate(cctx, NULL, &len, uid->data, (int) uid->len) == 1
        && EVP_DecryptUpdate(cctx, plain->data, &len,
                             raw + NGX_HTTP_TASKMGR_SEAL_NONCE,
                             NGX_HTTP_TASKMGR_TOTP_SECRET_LEN)
            == 1
        && len == NGX_HTTP_TASKMGR_TOTP_SECRET_LEN
        && EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_TAG,
                               NGX_HTTP_TASKMGR_SEAL_TAG,
                               raw + NGX_HTTP_TASKMGR_SEAL_NONCE
                                   + NGX_HTTP_TASKMGR_TOTP_SECRET_LEN)
            == 1
        && EVP_DecryptFinal_ex(cctx, plain->data + len, &len) == 1;

    EVP_CIPHER_CTX_free(cctx);

    if (ok) {
        plain->len = NGX_HTTP_TASKMGR_TOTP_SECRET_LEN;
        return NGX_OK;
    }

    ngx_explicit_memzero(plain->data, NGX_HTTP_TASKMGR_TOTP_SECRET_LEN);

failed:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "taskmgr: the TOTP secret of user %V does not open%s", uid,
                  mcf->mfa_key.len ? "" : " (no taskmgr_mfa_key_file)");

    return NGX_ERROR;
}
