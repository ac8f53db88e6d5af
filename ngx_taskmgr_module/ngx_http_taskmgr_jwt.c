/*
 * Copyright (C) taskmgr developers
 *
 * Issuing and verifying access tokens (JWT) with libjwt 1.10.
 *
 * libjwt 1.10 checks only the signature (and rejects "alg":"none" when a
 * key is given); everything else, including the algorithm pin, is checked
 * here.  libjwt 1.10 has no jwt_free_str(): the strings it returns come from
 * malloc(), or from jansson's allocator for jwt_get_grants_json().
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <jwt.h>

#include "ngx_http_taskmgr.h"
#include "ngx_http_taskmgr_jwt.h"


static char     *ngx_http_taskmgr_jwt_cstr(ngx_pool_t *pool, ngx_str_t *s);
static ngx_int_t ngx_http_taskmgr_jwt_copy(ngx_pool_t *pool, json_t *v,
                                           ngx_str_t *out);
static ngx_int_t ngx_http_taskmgr_jwt_str_eq(json_t *v, ngx_str_t *s);
static ngx_int_t ngx_http_taskmgr_jwt_aud_ok(json_t *v, ngx_str_t *aud);
static void      ngx_http_taskmgr_jwt_json_cleanup(void *data);
static void      ngx_http_taskmgr_jwt_json_free(char *s);


ngx_int_t
ngx_http_taskmgr_jwt_issue(ngx_http_request_t *r, ngx_str_t *sub,
                           ngx_str_t *sid, ngx_str_t *token, time_t *expires_in)
{
    int                               err;
    char                             *enc, *csub, *csid, *cjti, *ciss, *caud;
    size_t                            len;
    time_t                            now;
    jwt_t                            *jwt;
    ngx_int_t                         rc;
    ngx_str_t                         jti;
    ngx_http_taskmgr_auth_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_auth_module);

    if (alcf->key.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: cannot issue a token: no "
                      "\"taskmgr_auth_jwt_key_file\" in this location");
        return NGX_ERROR;
    }

    if (ngx_http_taskmgr_is_uuid(sub) != NGX_OK
        || (sid != NULL && sid->len != 0
            && ngx_http_taskmgr_is_uuid(sid) != NGX_OK))
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: cannot issue a token: subject or session "
                      "is not a UUID");
        return NGX_ERROR;
    }

    if (ngx_http_taskmgr_uuid_v7(r->pool, &jti) != NGX_OK) {
        return NGX_ERROR;
    }

    csub = ngx_http_taskmgr_jwt_cstr(r->pool, sub);
    cjti = ngx_http_taskmgr_jwt_cstr(r->pool, &jti);

    if (csub == NULL || cjti == NULL) {
        return NGX_ERROR;
    }

    csid = NULL;
    ciss = NULL;
    caud = NULL;

    if (sid != NULL && sid->len != 0) {
        csid = ngx_http_taskmgr_jwt_cstr(r->pool, sid);
        if (csid == NULL) {
            return NGX_ERROR;
        }
    }

    if (alcf->issuer.len != 0) {
        ciss = ngx_http_taskmgr_jwt_cstr(r->pool, &alcf->issuer);
        if (ciss == NULL) {
            return NGX_ERROR;
        }
    }

    if (alcf->audience.len != 0) {
        caud = ngx_http_taskmgr_jwt_cstr(r->pool, &alcf->audience);
        if (caud == NULL) {
            return NGX_ERROR;
        }
    }

    now = ngx_time();

    jwt = NULL;
    enc = NULL;
    rc = NGX_ERROR;

    err = jwt_new(&jwt);
    if (err != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, err,
                      "taskmgr: jwt_new() failed");
        return NGX_ERROR;
    }

    if (jwt_add_header(jwt, "typ", "JWT") != 0
        || jwt_add_grant(jwt, "sub", csub) != 0
        || (csid != NULL && jwt_add_grant(jwt, "sid", csid) != 0)
        || jwt_add_grant(jwt, "jti", cjti) != 0
        || jwt_add_grant_int(jwt, "iat", (long) now) != 0
        || jwt_add_grant_int(jwt, "exp", (long) (now + alcf->ttl)) != 0
        || (ciss != NULL && jwt_add_grant(jwt, "iss", ciss) != 0)
        || (caud != NULL && jwt_add_grant(jwt, "aud", caud) != 0))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: adding JWT claims failed");
        goto done;
    }

    err = jwt_set_alg(jwt, (jwt_alg_t) alcf->alg, alcf->key.data,
                      (int) alcf->key.len);
    if (err != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, err,
                      "taskmgr: jwt_set_alg() failed");
        goto done;
    }

    enc = jwt_encode_str(jwt);
    if (enc == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      "taskmgr: jwt_encode_str() failed");
        goto done;
    }

    len = ngx_strlen(enc);

    token->data = ngx_pnalloc(r->pool, len);
    if (token->data == NULL) {
        goto done;
    }

    ngx_memcpy(token->data, enc, len);
    token->len = len;

    *expires_in = alcf->ttl;

    rc = NGX_OK;

done:

    if (enc != NULL) {
        free(enc);
    }

    jwt_free(jwt);

    return rc;
}


ngx_http_taskmgr_jwt_status_e
ngx_http_taskmgr_jwt_verify(ngx_http_request_t               *r,
                            ngx_http_taskmgr_auth_loc_conf_t *alcf,
                            ngx_str_t *token, ngx_http_taskmgr_identity_t *id,
                            json_t **claims)
{
    int                 err;
    char               *json, *tok;
    time_t              now;
    jwt_t              *jwt;
    json_t             *root, *v, *sub, *sid, *jti;
    jwt_alg_t           alg;
    ngx_log_t          *log;
    json_int_t          exp, iat;
    const char         *reason;
    json_error_t        jerr;
    ngx_pool_cleanup_t *cln;

    log = r->connection->log;

    if (alcf->key.len == 0) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "taskmgr: JWT verification without a key");
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    if (token->len == 0 || token->len > NGX_HTTP_TASKMGR_JWT_MAX_LEN
        || ngx_strlchr(token->data, token->data + token->len, '\0') != NULL)
    {
        reason = "bad length";
        goto invalid;
    }

    tok = ngx_pnalloc(r->pool, token->len + 1);
    if (tok == NULL) {
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    ngx_memcpy(tok, token->data, token->len);
    tok[token->len] = '\0';

    /* the key makes libjwt check the signature and refuse "none" */

    jwt = NULL;

    err = jwt_decode(&jwt, tok, alcf->key.data, (int) alcf->key.len);

    if (err != 0 || jwt == NULL) {
        if (err == ENOMEM) {
            ngx_log_error(NGX_LOG_ERR, log, err,
                          "taskmgr: jwt_decode() failed");
            return NGX_HTTP_TASKMGR_JWT_FAILED;
        }

        reason = "malformed or bad signature";
        goto invalid;
    }

    alg = jwt_get_alg(jwt);

    if (alg == JWT_ALG_NONE || alg != (jwt_alg_t) alcf->alg) {
        jwt_free(jwt);
        reason = "algorithm not allowed";
        goto invalid;
    }

    json = jwt_get_grants_json(jwt, NULL);

    jwt_free(jwt);

    if (json == NULL) {
        reason = "no claims";
        goto invalid;
    }

    /* registered before the claims exist, so they are freed on every path */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_taskmgr_jwt_json_free(json);
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    cln->handler = ngx_http_taskmgr_jwt_json_cleanup;
    cln->data = NULL;

    root = json_loads(json, 0, &jerr);

    ngx_http_taskmgr_jwt_json_free(json);

    if (root == NULL) {
        reason = "claims unreadable";
        goto invalid;
    }

    cln->data = root;

    if (!json_is_object(root)) {
        reason = "claims are not an object";
        goto invalid;
    }

    now = ngx_time();

    v = json_object_get(root, "exp");
    if (v == NULL || !json_is_integer(v)) {
        reason = "no integer \"exp\"";
        goto invalid;
    }

    exp = json_integer_value(v);

    v = json_object_get(root, "nbf");
    if (v != NULL) {
        if (!json_is_integer(v)) {
            reason = "\"nbf\" is not an integer";
            goto invalid;
        }

        if (json_integer_value(v) > (json_int_t) now + alcf->leeway) {
            reason = "not valid yet";
            goto invalid;
        }
    }

    iat = 0;

    v = json_object_get(root, "iat");
    if (v != NULL) {
        if (!json_is_integer(v)) {
            reason = "\"iat\" is not an integer";
            goto invalid;
        }

        iat = json_integer_value(v);

        if (iat > (json_int_t) now + alcf->leeway) {
            reason = "issued in the future";
            goto invalid;
        }
    }

    if (alcf->issuer.len != 0
        && ngx_http_taskmgr_jwt_str_eq(json_object_get(root, "iss"),
                                       &alcf->issuer)
            != NGX_OK)
    {
        reason = "wrong issuer";
        goto invalid;
    }

    if (alcf->audience.len != 0
        && ngx_http_taskmgr_jwt_aud_ok(json_object_get(root, "aud"),
                                       &alcf->audience)
            != NGX_OK)
    {
        reason = "wrong audience";
        goto invalid;
    }

    sub = json_object_get(root, "sub");
    sid = json_object_get(root, "sid");
    jti = json_object_get(root, "jti");

    if (sub == NULL || !json_is_string(sub)
        || (sid != NULL && !json_is_string(sid))
        || (jti != NULL && !json_is_string(jti)))
    {
        reason = "\"sub\", \"sid\" or \"jti\" is missing or not a string";
        goto invalid;
    }

    if (ngx_http_taskmgr_jwt_copy(r->pool, sub, &id->sub) != NGX_OK
        || ngx_http_taskmgr_jwt_copy(r->pool, sid, &id->sid) != NGX_OK
        || ngx_http_taskmgr_jwt_copy(r->pool, jti, &id->jti) != NGX_OK)
    {
        ngx_memzero(id, sizeof(ngx_http_taskmgr_identity_t));
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    if (ngx_http_taskmgr_is_uuid(&id->sub) != NGX_OK
        || (sid != NULL && ngx_http_taskmgr_is_uuid(&id->sid) != NGX_OK))
    {
        ngx_memzero(id, sizeof(ngx_http_taskmgr_identity_t));
        reason = "\"sub\" or \"sid\" is not a UUID";
        goto invalid;
    }

    /* last, so that "expired" means "valid but for its age" */

    if (exp <= (json_int_t) now - alcf->leeway) {
        ngx_memzero(id, sizeof(ngx_http_taskmgr_identity_t));

        ngx_log_error(NGX_LOG_INFO, log, 0, "taskmgr: JWT rejected: expired");

        return NGX_HTTP_TASKMGR_JWT_EXPIRED;
    }

    id->iat = (time_t) iat;
    id->exp = (time_t) exp;

    if (claims != NULL) {
        *claims = root;
    }

    return NGX_HTTP_TASKMGR_JWT_VALID;

invalid:

    ngx_log_error(NGX_LOG_INFO, log, 0, "taskmgr: JWT rejected: %s", reason);

    return NGX_HTTP_TASKMGR_JWT_INVALID;
}


static char *
ngx_http_taskmgr_jwt_cstr(ngx_pool_t *pool, ngx_str_t *s)
{
    char *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return p;
}


/* copies a string claim (v may be NULL: an empty result) */

static ngx_int_t
ngx_http_taskmgr_jwt_copy(ngx_pool_t *pool, json_t *v, ngx_str_t *out)
{
    size_t len;

    if (v == NULL) {
        ngx_str_null(out);
        return NGX_OK;
    }

    len = json_string_length(v);

    out->data = ngx_pnalloc(pool, len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, json_string_value(v), len);
    out->data[len] = '\0';
    out->len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_jwt_str_eq(json_t *v, ngx_str_t *s)
{
    if (v == NULL || !json_is_string(v) || json_string_length(v) != s->len
        || ngx_memcmp(json_string_value(v), s->data, s->len) != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* "aud" is a string or an array of strings (RFC 7519, 4.1.3) */

static ngx_int_t
ngx_http_taskmgr_jwt_aud_ok(json_t *v, ngx_str_t *aud)
{
    size_t i;

    if (v == NULL) {
        return NGX_DECLINED;
    }

    if (json_is_string(v)) {
        return ngx_http_taskmgr_jwt_str_eq(v, aud);
    }

    if (!json_is_array(v)) {
        return NGX_DECLINED;
    }

    for (i = 0; i < json_array_size(v); i++) {
        if (ngx_http_taskmgr_jwt_str_eq(json_array_get(v, i), aud) == NGX_OK) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


static void
ngx_http_taskmgr_jwt_json_cleanup(void *data)
{
    json_t *root = data;

    if (root != NULL) {
        json_decref(root);
    }
}


/* jwt_get_grants_json() returns json_dumps() output */

static void
ngx_http_taskmgr_jwt_json_free(char *s)
{
    json_free_t   free_fn;
    json_malloc_t malloc_fn;

    json_get_alloc_funcs(&malloc_fn, &free_fn);

    free_fn(s);
}
