/*
 * Copyright (C) taskmgr developers
 *
 * /v1/auth/{register,login,refresh,logout} and /v1/me.
 *
 * Passwords are hashed and checked in a thread pool; refresh tokens are
 * 256-bit random strings stored only as SHA-256 hashes.
 */


#include "ngx_http_taskmgr_handlers.h"


#define NGX_HTTP_TASKMGR_REFRESH_BYTES 32


/* clang-format off */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_register_fields[] = {
    { "email", NGX_HTTP_TASKMGR_F_EMAIL, 1, 0, 3, 254, NULL, 0 },
    { "password", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 12, 256, NULL, 0 },
    { "name", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 200, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_login_fields[] = {
    { "email", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 254, NULL, 0 },
    { "password", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 256, NULL, 0 },
    { "totp_code", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 6, 16, NULL, 0 },
    { "device_name", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 1, 200, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_refresh_fields[] = {
    { "refresh_token", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 512, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_me_fields[] = {
    { "name", NGX_HTTP_TASKMGR_F_STRING, 0, 0, 1, 200, NULL, 0 },
    { "locale", NGX_HTTP_TASKMGR_F_STRING, 0, 0, 2, 35, NULL, 0 },
    { "timezone", NGX_HTTP_TASKMGR_F_STRING, 0, 0, 1, 64, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


static void ngx_http_taskmgr_register_hashed(ngx_http_request_t *r,
                                             ngx_int_t rc, ngx_str_t *hash);
static void ngx_http_taskmgr_login_looked_up(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_login_verified(ngx_http_request_t *r, ngx_int_t rc,
                                            ngx_str_t *hash);
static void ngx_http_taskmgr_logged_out(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_logout_done(ngx_http_request_t *r, ngx_int_t rc);
static void ngx_http_taskmgr_tokens_done(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t  ngx_http_taskmgr_new_refresh(ngx_http_request_t         *r,
                                               ngx_http_taskmgr_api_ctx_t *ctx);
static void       ngx_http_taskmgr_session_params(ngx_http_request_t          *r,
                                                  ngx_http_taskmgr_api_ctx_t  *ctx,
                                                  ngx_http_taskmgr_pg_query_t *q);
static ngx_str_t *ngx_http_taskmgr_refresh_ttl(ngx_http_request_t *r);


/*
 * ctx->str[0]: the new refresh token, str[1]: its hash, str[2]: user id
 */


ngx_int_t
ngx_http_taskmgr_h_register(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_str_t pw;

    (void) ngx_http_taskmgr_json_string(ctx->body, "password", &pw);

    if (ngx_http_taskmgr_password_hash(r, &pw, ngx_http_taskmgr_register_hashed)
        != NGX_OK)
    {
        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                             "internal", NULL);
    }

    return NGX_DONE;
}


static void
ngx_http_taskmgr_register_hashed(ngx_http_request_t *r, ngx_int_t rc,
                                 ngx_str_t *hash)
{
    ngx_str_t                    email, name;
    ngx_http_taskmgr_api_ctx_t  *ctx;
    ngx_http_taskmgr_pg_query_t *q;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc != NGX_OK || hash == NULL
        || ngx_http_taskmgr_new_refresh(r, ctx) != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    (void) ngx_http_taskmgr_json_string(ctx->body, "email", &email);
    (void) ngx_http_taskmgr_json_string(ctx->body, "name", &name);

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_REGISTER,
                                         ngx_http_taskmgr_tokens_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &email);
        ngx_http_taskmgr_pg_param(q, hash);
        ngx_http_taskmgr_pg_param(q, &name);
        ngx_http_taskmgr_session_params(r, ctx, q);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


ngx_int_t
ngx_http_taskmgr_h_login(ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_str_t                    email;
    ngx_http_taskmgr_pg_query_t *q;

    (void) ngx_http_taskmgr_json_string(ctx->body, "email", &email);

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_LOGIN_LOOKUP,
                                         ngx_http_taskmgr_login_looked_up);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &email);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * Unknown accounts verify against a dummy hash: the answer and its timing
 * do not tell which emails exist.
 */
static void
ngx_http_taskmgr_login_looked_up(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_str_t                   pw, *encoded;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    encoded = NULL;

    if (res.status == NGX_HTTP_OK && res.body.len && res.meta.len) {
        ctx->str[2] = res.meta;
        ctx->str[3] = res.body;
        encoded = &ctx->str[3];
    }

    (void) ngx_http_taskmgr_json_string(ctx->body, "password", &pw);

    if (ngx_http_taskmgr_password_verify(r, &pw, encoded,
                                         ngx_http_taskmgr_login_verified)
        != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
    }
}


static void
ngx_http_taskmgr_login_verified(ngx_http_request_t *r, ngx_int_t rc,
                                ngx_str_t *hash)
{
    ngx_http_taskmgr_api_ctx_t  *ctx;
    ngx_http_taskmgr_pg_query_t *q;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc == NGX_DECLINED || (rc == NGX_OK && ctx->str[2].len == 0)) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "invalid email or password"));
        return;
    }

    if (rc != NGX_OK || ngx_http_taskmgr_new_refresh(r, ctx) != NGX_OK) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_SESSION_CREATE,
                                         ngx_http_taskmgr_tokens_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->str[2]);
        ngx_http_taskmgr_session_params(r, ctx, q);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


ngx_int_t
ngx_http_taskmgr_h_refresh(ngx_http_request_t         *r,
                           ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_str_t                    old, old_hash;
    ngx_http_taskmgr_pg_query_t *q;

    (void) ngx_http_taskmgr_json_string(ctx->body, "refresh_token", &old);

    if (ngx_http_taskmgr_sha256_hex(r->pool, &old, &old_hash) != NGX_OK
        || ngx_http_taskmgr_new_refresh(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_REFRESH,
                                         ngx_http_taskmgr_tokens_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &old_hash);
        ngx_http_taskmgr_pg_param(q, &ctx->str[1]);
        ngx_http_taskmgr_pg_param(q, ngx_http_taskmgr_refresh_ttl(r));
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * register, login and refresh end here: meta is "<user id> <session id>",
 * body the user (NULL for refresh).
 */
static void
ngx_http_taskmgr_tokens_done(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                     *p;
    size_t                      len;
    time_t                      expires_in;
    ngx_int_t                   rc;
    ngx_str_t                   uid, sid, access, body;
    ngx_str_t                   cc = ngx_string("no-store");
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status >= NGX_HTTP_BAD_REQUEST) {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
        return;
    }

    if (ngx_http_taskmgr_api_split_meta(&res.meta, &uid, &sid) != NGX_OK
        || ngx_http_taskmgr_jwt_issue(r, &uid, &sid, &access, &expires_in)
            != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    len = sizeof("{\"user\":,\"access_token\":\"\",\"refresh_token\":\"\","
                 "\"token_type\":\"Bearer\",\"expires_in\":}")
        - 1 + res.body.len + access.len + ctx->str[0].len + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    body.data = p;

    /* tokens are base64url and JWT characters: nothing to escape */
    *p++ = '{';

    if (res.body.len) {
        p = ngx_sprintf(p, "\"user\":%V,", &res.body);
    }

    p = ngx_sprintf(p,
                    "\"access_token\":\"%V\",\"refresh_token\":\"%V\","
                    "\"token_type\":\"Bearer\",\"expires_in\":%T}",
                    &access, &ctx->str[0], expires_in);

    body.len = p - body.data;

    if (ngx_http_taskmgr_add_header(r, "Cache-Control", &cc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_taskmgr_api_finish(
        r, ngx_http_taskmgr_send_json(r, res.status, &body));
}


ngx_int_t
ngx_http_taskmgr_h_logout(ngx_http_request_t         *r,
                          ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_LOGOUT,
                                   ngx_http_taskmgr_logged_out));
}


/* the session is revoked in PostgreSQL; its cache marker goes too before
 * the answer, so no cached read is served to its tokens any more */
static void
ngx_http_taskmgr_logged_out(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &ctx->result, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (ctx->result.status < NGX_HTTP_BAD_REQUEST
        && ngx_http_taskmgr_cache_end_session(r, &ctx->identity->sub,
                                              &ctx->identity->sid,
                                              ngx_http_taskmgr_logout_done)
            == NGX_OK)
    {
        return;
    }

    ngx_http_taskmgr_logout_done(r, NGX_OK);
}


static void
ngx_http_taskmgr_logout_done(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    ngx_http_taskmgr_api_finish(r,
                                ngx_http_taskmgr_api_respond(r, &ctx->result));
}


ngx_int_t
ngx_http_taskmgr_h_me(ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_ME,
                                   ngx_http_taskmgr_api_done));
}


ngx_int_t
ngx_http_taskmgr_h_me_update(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_ME_UPDATE,
                                   ngx_http_taskmgr_api_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->body_json);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


static ngx_int_t
ngx_http_taskmgr_new_refresh(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    if (ngx_http_taskmgr_random_token(r->pool, NGX_HTTP_TASKMGR_REFRESH_BYTES,
                                      &ctx->str[0])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_sha256_hex(r->pool, &ctx->str[0], &ctx->str[1]);
}


/* refresh hash, device name, client address, user agent, lifetime */
static void
ngx_http_taskmgr_session_params(ngx_http_request_t          *r,
                                ngx_http_taskmgr_api_ctx_t  *ctx,
                                ngx_http_taskmgr_pg_query_t *q)
{
    ngx_str_t device;

    ngx_http_taskmgr_pg_param(q, &ctx->str[1]);

    if (ngx_http_taskmgr_json_string(ctx->body, "device_name", &device)
        != NGX_OK) {
        ngx_http_taskmgr_pg_param(q, NULL);

    } else {
        ngx_http_taskmgr_pg_param(q, &device);
    }

    ngx_http_taskmgr_pg_param(q, &r->connection->addr_text);
    ngx_http_taskmgr_pg_param(
        q, r->headers_in.user_agent ? &r->headers_in.user_agent->value : NULL);
    ngx_http_taskmgr_pg_param(q, ngx_http_taskmgr_refresh_ttl(r));
}


static ngx_str_t *
ngx_http_taskmgr_refresh_ttl(ngx_http_request_t *r)
{
    ngx_str_t                       *s;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

    s = ngx_palloc(r->pool, sizeof(ngx_str_t) + NGX_TIME_T_LEN);
    if (s == NULL) {
        return NULL;
    }

    s->data = (u_char *) (s + 1);
    s->len = ngx_sprintf(s->data, "%T", alcf->refresh_ttl) - s->data;

    return s;
}
