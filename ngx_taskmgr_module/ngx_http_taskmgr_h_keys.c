/*
 * Copyright (C) taskmgr developers
 *
 * /v1/api-keys: create (the key is shown once), list, delete.  A key is
 * "tmk_" and 256 random bits in base64url; PostgreSQL keeps its SHA-256.
 * The auth module resolves "Authorization: Bearer tmk_…" in the access
 * phase (ngx_http_taskmgr_auth.c).
 */


#include "ngx_http_taskmgr_handlers.h"


#define NGX_HTTP_TASKMGR_API_KEY_BYTES  32
#define NGX_HTTP_TASKMGR_API_KEY_PREFIX 12 /* "tmk_" and 8 characters */


static const char *ngx_http_taskmgr_api_key_roles[] = { "owner", "admin",
                                                        "member", "viewer",
                                                        NULL };

/* clang-format off */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_api_key_fields[] = {
    { "name", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 200, NULL, 0 },
    { "workspace_id", NGX_HTTP_TASKMGR_F_UUID, 1, 0, 0, 0, NULL, 0 },
    { "role", NGX_HTTP_TASKMGR_F_ENUM, 1, 0, 0, 0,
      ngx_http_taskmgr_api_key_roles, 0 },
    { "expires_at", NGX_HTTP_TASKMGR_F_TIME, 0, 1, 0, 0, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


static void ngx_http_taskmgr_api_key_created(ngx_http_taskmgr_pg_query_t *q);


/*
 * POST /v1/api-keys {name, workspace_id, role, expires_at?}: 201 with the
 * key (only in this answer), Location and Cache-Control: no-store.
 * ctx->str[0]: the key.
 */
ngx_int_t
ngx_http_taskmgr_h_api_key_create(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    u_char                      *p;
    ngx_str_t                    rnd, hash, prefix, name, ws, role, expires;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_random_token(r->pool, NGX_HTTP_TASKMGR_API_KEY_BYTES,
                                      &rnd)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, sizeof("tmk_") - 1 + rnd.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->str[0].data = p;
    p = ngx_cpymem(p, "tmk_", sizeof("tmk_") - 1);
    p = ngx_cpymem(p, rnd.data, rnd.len);
    ctx->str[0].len = p - ctx->str[0].data;

    ngx_explicit_memzero(rnd.data, rnd.len);

    if (ngx_http_taskmgr_sha256_hex(r->pool, &ctx->str[0], &hash) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    prefix.data = ctx->str[0].data;
    prefix.len = NGX_HTTP_TASKMGR_API_KEY_PREFIX;

    (void) ngx_http_taskmgr_json_string(ctx->body, "name", &name);
    (void) ngx_http_taskmgr_json_string(ctx->body, "workspace_id", &ws);
    (void) ngx_http_taskmgr_json_string(ctx->body, "role", &role);

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_API_KEY_CREATE,
                                   ngx_http_taskmgr_api_key_created);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &name);
        ngx_http_taskmgr_pg_param(q, &ws);
        ngx_http_taskmgr_pg_param(q, &role);

        if (ngx_http_taskmgr_json_string(ctx->body, "expires_at", &expires)
            == NGX_OK) {
            ngx_http_taskmgr_pg_param(q, &expires);

        } else {
            ngx_http_taskmgr_pg_param(q, NULL);
        }

        ngx_http_taskmgr_pg_param(q, &hash);
        ngx_http_taskmgr_pg_param(q, &prefix);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


static void
ngx_http_taskmgr_api_key_created(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_str_t                   body, location;
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

    if (res.status != NGX_HTTP_CREATED || res.body.len < 2
        || res.body.data[0] != '{' || res.meta.len == 0)
    {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
        return;
    }

    /* {"key":"tmk_…", and the stored key's fields; the key is base64url */
    body.data = ngx_pnalloc(
        r->pool, sizeof("{\"key\":\"\",") - 1 + ctx->str[0].len + res.body.len);
    location.data =
        ngx_pnalloc(r->pool, sizeof("/v1/api-keys/") - 1 + res.meta.len);

    if (body.data == NULL || location.data == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_sprintf(body.data, "{\"key\":\"%V\",", &ctx->str[0]);
    p = ngx_cpymem(p, res.body.data + 1, res.body.len - 1);
    body.len = p - body.data;

    location.len = ngx_sprintf(location.data, "/v1/api-keys/%V", &res.meta)
        - location.data;

    if (ngx_http_taskmgr_add_header(r, "Cache-Control", &cc) != NGX_OK
        || ngx_http_taskmgr_add_header(r, "Location", &location) != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_taskmgr_api_finish(
        r, ngx_http_taskmgr_send_json(r, NGX_HTTP_CREATED, &body));
}


/* GET /v1/api-keys: the caller's keys, without secrets, newest first */
ngx_int_t
ngx_http_taskmgr_h_api_key_list(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_API_KEY_LIST,
                                   ngx_http_taskmgr_api_done));
}


/* DELETE /v1/api-keys/{id}: the key stops working at the next request */
ngx_int_t
ngx_http_taskmgr_h_api_key_delete(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "no such API key", &rc)
        != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_API_KEY_DELETE,
                                   ngx_http_taskmgr_api_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}
