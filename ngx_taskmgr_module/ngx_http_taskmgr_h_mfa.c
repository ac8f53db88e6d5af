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
 */


#include <openssl/rand.h>

#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_totp.h"


#define NGX_HTTP_TASKMGR_RECOVERY_CODES 10
#define NGX_HTTP_TASKMGR_RECOVERY_BYTES 8 /* 16 hex digits */
#define NGX_HTTP_TASKMGR_RECOVERY_LEN   (2 * NGX_HTTP_TASKMGR_RECOVERY_BYTES)

#define NGX_HTTP_TASKMGR_TOTP_ISSUER "taskmgr"


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


/*
 * The second factor of a login or a magic link.  mfa: "<secret> <last
 * step>" of an enabled TOTP; the code is the body's totp_code.  NGX_OK:
 * *step or *recovery is set for PostgreSQL to take.  NGX_DONE: answered,
 * *rc is the finalize code (401 mfa_required without a code, 401 with a
 * wrong one).
 */
ngx_int_t
ngx_http_taskmgr_mfa_second_factor(ngx_http_request_t         *r,
                                   ngx_http_taskmgr_api_ctx_t *ctx,
                                   ngx_str_t *mfa, ngx_str_t **step,
                                   ngx_str_t **recovery, ngx_int_t *rc)
{
    ngx_int_t n;
    ngx_str_t secret, last, code;

    if (ngx_http_taskmgr_api_split_meta(mfa, &secret, &last) != NGX_OK
        || (n = ngx_atoi(last.data, last.len)) == NGX_ERROR)
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
    u_char    raw[NGX_HTTP_TASKMGR_TOTP_SECRET_BYTES];
    ngx_str_t secret;
    ngx_str_t issuer = ngx_string(NGX_HTTP_TASKMGR_TOTP_ISSUER);
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

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_MFA_TOTP_SETUP,
                                   ngx_http_taskmgr_mfa_setup_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &secret);
        ngx_http_taskmgr_pg_param(q, &issuer);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/* the answer holds the secret: not to be stored by any cache */
static void
ngx_http_taskmgr_mfa_setup_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                 rc;
    ngx_http_request_t       *r;
    ngx_http_taskmgr_result_t res;

    r = q->request;

    if (ngx_http_taskmgr_api_result(q, &res, &rc) == NGX_OK) {
        if (res.status == NGX_HTTP_OK
            && ngx_http_taskmgr_add_header(r, "Cache-Control",
                                           &ngx_http_taskmgr_mfa_no_store)
                != NGX_OK)
        {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

        } else {
            rc = ngx_http_taskmgr_api_respond(r, &res);
        }
    }

    ngx_http_taskmgr_api_finish(r, rc);
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
    ngx_str_t                   code, one, hash, step;
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
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
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

    (void) ngx_http_taskmgr_json_string(ctx->body, "code", &code);

    s = ngx_http_taskmgr_totp_verify(res.body.data, res.body.len, code.data,
                                     code.len, ngx_time(), 0);
    if (s < 0) {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_mfa_wrong_code(r));
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
    ngx_int_t                   rc;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status != NGX_HTTP_NO_CONTENT) {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
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
    ngx_str_t                   code, kind, last, *step, *recovery;
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
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
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

    rc = (n == NGX_ERROR)
        ? NGX_ERROR
        : ngx_http_taskmgr_mfa_check(r, &res.body, n, &code, &step, &recovery);

    if (rc == NGX_DECLINED) {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_mfa_wrong_code(r));
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
