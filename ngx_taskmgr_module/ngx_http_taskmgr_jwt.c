/*
 * Copyright (C) taskmgr developers
 *
 * Issuing and verifying access tokens (JWS compact serialisation, RFC 7515
 * and 7519) with OpenSSL 3 EVP: HS256, RS256, ES256 (P-256, raw R||S
 * signatures) and EdDSA (Ed25519).  One algorithm is configured per
 * location; a token whose header names another is refused before any key
 * is touched.  Keys are parsed at configuration time, never per request.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "ngx_http_taskmgr.h"
#include "ngx_http_taskmgr_jwt.h"


#define NGX_HTTP_TASKMGR_JWT_HS_MIN  32
#define NGX_HTTP_TASKMGR_JWT_RSA_MIN 2048
#define NGX_HTTP_TASKMGR_JWT_SIG_MAX 1024 /* RSA up to 8192 bits */
#define NGX_HTTP_TASKMGR_JWT_HDR_MAX 1024


static ngx_str_t ngx_http_taskmgr_jwt_alg_names[] = {
    ngx_null_string,     ngx_string("HS256"), ngx_string("RS256"),
    ngx_string("ES256"), ngx_string("EdDSA"),
};


static ngx_int_t ngx_http_taskmgr_jwt_load_key(
    ngx_conf_t *cf, ngx_uint_t alg, ngx_http_taskmgr_jwt_key_src_t *src,
    ngx_http_taskmgr_jwt_key_t *key);
static int  ngx_http_taskmgr_jwt_no_passphrase(char *buf, int size, int rwflag,
                                               void *u);
static void ngx_http_taskmgr_jwt_pkey_cleanup(void *data);
static ngx_int_t ngx_http_taskmgr_jwt_sign(ngx_http_request_t         *r,
                                           ngx_uint_t                  alg,
                                           ngx_http_taskmgr_jwt_key_t *key,
                                           ngx_str_t *input, ngx_str_t *sig);
static ngx_int_t ngx_http_taskmgr_jwt_check_sig(ngx_log_t *log, ngx_uint_t alg,
                                                ngx_http_taskmgr_jwt_key_t *key,
                                                ngx_str_t *input,
                                                ngx_str_t *sig);
static ngx_int_t ngx_http_taskmgr_jwt_b64(ngx_pool_t *pool, u_char *p,
                                          size_t len, ngx_str_t *out);
static ngx_int_t ngx_http_taskmgr_jwt_unb64(ngx_pool_t *pool, u_char *p,
                                            size_t len, ngx_str_t *out);
static ngx_int_t ngx_http_taskmgr_jwt_dump(ngx_pool_t *pool, json_t *v,
                                           ngx_str_t *out);
static ngx_int_t ngx_http_taskmgr_jwt_copy(ngx_pool_t *pool, json_t *v,
                                           ngx_str_t *out);
static ngx_int_t ngx_http_taskmgr_jwt_str_eq(json_t *v, ngx_str_t *s);
static ngx_int_t ngx_http_taskmgr_jwt_aud_ok(json_t *v, ngx_str_t *aud);
static void      ngx_http_taskmgr_jwt_json_cleanup(void *data);


ngx_int_t
ngx_http_taskmgr_jwt_load_keys(ngx_conf_t                       *cf,
                               ngx_http_taskmgr_auth_loc_conf_t *alcf)
{
    ngx_uint_t                      i, j, n;
    ngx_http_taskmgr_jwt_key_t     *key;
    ngx_http_taskmgr_jwt_key_src_t *src;

    src = alcf->key_srcs->elts;
    n = alcf->key_srcs->nelts;

    alcf->keys =
        ngx_array_create(cf->pool, n, sizeof(ngx_http_taskmgr_jwt_key_t));
    if (alcf->keys == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {

        if (n > 1 && src[i].kid.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "taskmgr: with several JWT keys every "
                          "\"taskmgr_auth_jwt_key_file\" needs a kid= "
                          "(\"%V\" in %s:%ui has none)",
                          &src[i].file, src[i].conf_file, src[i].conf_line);
            return NGX_ERROR;
        }

        for (j = 0; j < i; j++) {
            if (src[j].kid.len == src[i].kid.len
                && ngx_strncmp(src[j].kid.data, src[i].kid.data, src[i].kid.len)
                    == 0)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "taskmgr: duplicate JWT kid \"%V\" in %s:%ui",
                              &src[i].kid, src[i].conf_file, src[i].conf_line);
                return NGX_ERROR;
            }
        }

        key = ngx_array_push(alcf->keys);
        if (key == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(key, sizeof(ngx_http_taskmgr_jwt_key_t));

        if (ngx_http_taskmgr_jwt_load_key(cf, alcf->alg, &src[i], key)
            != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_jwt_load_key(ngx_conf_t *cf, ngx_uint_t alg,
                              ngx_http_taskmgr_jwt_key_src_t *src,
                              ngx_http_taskmgr_jwt_key_t     *key)
{
    BIO                *bio;
    char                group[64];
    size_t              len, glen;
    EVP_PKEY           *pkey;
    const char         *want;
    ngx_str_t          *name;
    ngx_pool_cleanup_t *cln;

    key->kid = src->kid;
    key->file = src->file;
    name = &ngx_http_taskmgr_jwt_alg_names[alg];

    len = src->data.len;

    if (alg == NGX_HTTP_TASKMGR_JWT_HS256) {

        if (len >= sizeof("-----BEGIN") - 1
            && ngx_strncmp(src->data.data, "-----BEGIN",
                           sizeof("-----BEGIN") - 1)
                == 0)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "taskmgr: \"%V\" (%s:%ui) holds a PEM key, but "
                          "HS256 needs a shared secret",
                          &src->file, src->conf_file, src->conf_line);
            return NGX_ERROR;
        }

        while (len > 0
               && (src->data.data[len - 1] == '\n'
                   || src->data.data[len - 1] == '\r'
                   || src->data.data[len - 1] == ' '
                   || src->data.data[len - 1] == '\t'))
        {
            len--;
        }

        if (len < NGX_HTTP_TASKMGR_JWT_HS_MIN) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "taskmgr: key in \"%V\" is shorter than %d bytes "
                          "(%s:%ui)",
                          &src->file, NGX_HTTP_TASKMGR_JWT_HS_MIN,
                          src->conf_file, src->conf_line);
            return NGX_ERROR;
        }

        key->secret.data = src->data.data;
        key->secret.len = len;
        key->can_sign = 1;

        key->hmac = ngx_http_taskmgr_hmac_create(cf->pool, &key->secret);
        if (key->hmac == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "taskmgr: HMAC-SHA256 is not available");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    /* registered first, so the key is freed with the configuration */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_taskmgr_jwt_pkey_cleanup;
    cln->data = NULL;

    bio = BIO_new_mem_buf(src->data.data, (int) len);
    if (bio == NULL) {
        return NGX_ERROR;
    }

    pkey = PEM_read_bio_PrivateKey(bio, NULL,
                                   ngx_http_taskmgr_jwt_no_passphrase, NULL);

    if (pkey != NULL) {
        key->can_sign = 1;

    } else {
        (void) BIO_reset(bio);
        pkey = PEM_read_bio_PUBKEY(bio, NULL,
                                   ngx_http_taskmgr_jwt_no_passphrase, NULL);
    }

    BIO_free(bio);
    ERR_clear_error();

    if (pkey == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "taskmgr: \"%V\" (%s:%ui) holds no unencrypted PEM "
                      "private or public key, which %V needs",
                      &src->file, src->conf_file, src->conf_line, name);
        return NGX_ERROR;
    }

    cln->data = pkey;
    key->pkey = pkey;

    want = NULL;

    switch (alg) {

    case NGX_HTTP_TASKMGR_JWT_RS256:
        if (!EVP_PKEY_is_a(pkey, "RSA")) {
            want = "an RSA key";

        } else if (EVP_PKEY_get_bits(pkey) < NGX_HTTP_TASKMGR_JWT_RSA_MIN) {
            want = "an RSA key of at least 2048 bits";

        } else if (EVP_PKEY_get_size(pkey) > NGX_HTTP_TASKMGR_JWT_SIG_MAX) {
            want = "an RSA key of at most 8192 bits";
        }

        break;

    case NGX_HTTP_TASKMGR_JWT_ES256:
        glen = 0;

        if (!EVP_PKEY_is_a(pkey, "EC")
            || EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1
            || glen >= sizeof(group)
            || (ngx_strcmp(group, "prime256v1") != 0
                && ngx_strcmp(group, "P-256") != 0
                && ngx_strcmp(group, "secp256r1") != 0))
        {
            want = "an EC key on the P-256 curve";
        }

        break;

    default: /* NGX_HTTP_TASKMGR_JWT_EDDSA */
        if (!EVP_PKEY_is_a(pkey, "ED25519")) {
            want = "an Ed25519 key";
        }

        break;
    }

    if (want != NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "taskmgr: \"%V\" (%s:%ui): %V needs %s", &src->file,
                      src->conf_file, src->conf_line, name, want);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* encrypted keys are refused: no prompt on the master's terminal */

static int
ngx_http_taskmgr_jwt_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return 0;
}


static void
ngx_http_taskmgr_jwt_pkey_cleanup(void *data)
{
    EVP_PKEY *pkey = data;

    if (pkey != NULL) {
        EVP_PKEY_free(pkey);
    }
}


ngx_int_t
ngx_http_taskmgr_jwt_issue(ngx_http_request_t *r, ngx_str_t *sub,
                           ngx_str_t *sid, ngx_str_t *token, time_t *expires_in)
{
    u_char                           *p;
    time_t                            now;
    json_t                           *hdr, *cl;
    ngx_int_t                         rc;
    ngx_str_t                         jti, hjson, cjson, h64, c64, input, sig;
    ngx_str_t                         s64;
    ngx_http_taskmgr_jwt_key_t       *key;
    ngx_http_taskmgr_auth_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_auth_module);

    if (alcf->keys == NULL || alcf->keys->nelts == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: cannot issue a token: no "
                      "\"taskmgr_auth_jwt_key_file\" in this location");
        return NGX_ERROR;
    }

    key = alcf->keys->elts;

    if (!key->can_sign) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: cannot issue a token: the signing key "
                      "\"%V\" (the first \"taskmgr_auth_jwt_key_file\") "
                      "is a public key",
                      &key->file);
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

    now = ngx_time();
    rc = NGX_ERROR;

    hdr = json_object();
    cl = json_object();

    if (hdr == NULL || cl == NULL) {
        goto done;
    }

    if (json_object_set_new(
            hdr, "alg",
            json_stringn(
                (char *) ngx_http_taskmgr_jwt_alg_names[alcf->alg].data,
                ngx_http_taskmgr_jwt_alg_names[alcf->alg].len))
            != 0
        || json_object_set_new(hdr, "typ", json_string("JWT")) != 0
        || (key->kid.len
            && json_object_set_new(
                   hdr, "kid",
                   json_stringn((char *) key->kid.data, key->kid.len))
                != 0))
    {
        goto done;
    }

    if (json_object_set_new(cl, "sub",
                            json_stringn((char *) sub->data, sub->len))
            != 0
        || (sid != NULL && sid->len
            && json_object_set_new(cl, "sid",
                                   json_stringn((char *) sid->data, sid->len))
                != 0)
        || json_object_set_new(cl, "jti",
                               json_stringn((char *) jti.data, jti.len))
            != 0
        || json_object_set_new(cl, "iat", json_integer((json_int_t) now)) != 0
        || json_object_set_new(cl, "exp",
                               json_integer((json_int_t) (now + alcf->ttl)))
            != 0
        || (alcf->issuer.len
            && json_object_set_new(
                   cl, "iss",
                   json_stringn((char *) alcf->issuer.data, alcf->issuer.len))
                != 0)
        || (alcf->audience.len
            && json_object_set_new(cl, "aud",
                                   json_stringn((char *) alcf->audience.data,
                                                alcf->audience.len))
                != 0))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: adding JWT claims failed");
        goto done;
    }

    if (ngx_http_taskmgr_jwt_dump(r->pool, hdr, &hjson) != NGX_OK
        || ngx_http_taskmgr_jwt_dump(r->pool, cl, &cjson) != NGX_OK
        || ngx_http_taskmgr_jwt_b64(r->pool, hjson.data, hjson.len, &h64)
            != NGX_OK
        || ngx_http_taskmgr_jwt_b64(r->pool, cjson.data, cjson.len, &c64)
            != NGX_OK)
    {
        goto done;
    }

    input.len = h64.len + 1 + c64.len;
    input.data = ngx_pnalloc(r->pool, input.len);
    if (input.data == NULL) {
        goto done;
    }

    p = ngx_cpymem(input.data, h64.data, h64.len);
    *p++ = '.';
    ngx_memcpy(p, c64.data, c64.len);

    if (ngx_http_taskmgr_jwt_sign(r, alcf->alg, key, &input, &sig) != NGX_OK
        || ngx_http_taskmgr_jwt_b64(r->pool, sig.data, sig.len, &s64) != NGX_OK)
    {
        goto done;
    }

    token->len = input.len + 1 + s64.len;
    token->data = ngx_pnalloc(r->pool, token->len);
    if (token->data == NULL) {
        goto done;
    }

    p = ngx_cpymem(token->data, input.data, input.len);
    *p++ = '.';
    ngx_memcpy(p, s64.data, s64.len);

    *expires_in = alcf->ttl;

    rc = NGX_OK;

done:

    if (hdr != NULL) {
        json_decref(hdr);
    }

    if (cl != NULL) {
        json_decref(cl);
    }

    return rc;
}


static ngx_int_t
ngx_http_taskmgr_jwt_sign(ngx_http_request_t *r, ngx_uint_t alg,
                          ngx_http_taskmgr_jwt_key_t *key, ngx_str_t *input,
                          ngx_str_t *sig)
{
    u_char        der[NGX_HTTP_TASKMGR_JWT_SIG_MAX];
    size_t        len;
    ngx_int_t     rc;
    EVP_MD_CTX   *md;
    ECDSA_SIG    *es;
    const u_char *p;
    const BIGNUM *br, *bs;
    const EVP_MD *type;

    if (alg == NGX_HTTP_TASKMGR_JWT_HS256) {
        sig->data = ngx_pnalloc(r->pool, EVP_MAX_MD_SIZE);
        if (sig->data == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_taskmgr_hmac(key->hmac, input->data, input->len, sig->data)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "taskmgr: HMAC-SHA256 failed");
            return NGX_ERROR;
        }

        sig->len = NGX_HTTP_TASKMGR_HMAC_LEN;
        return NGX_OK;
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    type = (alg == NGX_HTTP_TASKMGR_JWT_EDDSA) ? NULL : EVP_sha256();
    len = sizeof(der);

    if (EVP_DigestSignInit(md, NULL, type, NULL, key->pkey) != 1
        || EVP_DigestSign(md, der, &len, input->data, input->len) != 1)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: EVP_DigestSign() failed");
        goto done;
    }

    if (alg != NGX_HTTP_TASKMGR_JWT_ES256) {
        sig->data = ngx_pnalloc(r->pool, len);
        if (sig->data == NULL) {
            goto done;
        }

        ngx_memcpy(sig->data, der, len);
        sig->len = len;
        rc = NGX_OK;
        goto done;
    }

    /* ES256 in JWS: the raw R||S (RFC 7518, 3.4), not DER */

    p = der;
    es = d2i_ECDSA_SIG(NULL, &p, (long) len);
    if (es == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: d2i_ECDSA_SIG() failed");
        goto done;
    }

    ECDSA_SIG_get0(es, &br, &bs);

    sig->data = ngx_pnalloc(r->pool, 64);

    if (sig->data != NULL && BN_bn2binpad(br, sig->data, 32) == 32
        && BN_bn2binpad(bs, sig->data + 32, 32) == 32)
    {
        sig->len = 64;
        rc = NGX_OK;
    }

    ECDSA_SIG_free(es);

done:

    EVP_MD_CTX_free(md);
    ERR_clear_error();

    return rc;
}


/* NGX_OK: the signature holds; NGX_DECLINED: it does not; NGX_ERROR */

static ngx_int_t
ngx_http_taskmgr_jwt_check_sig(ngx_log_t *log, ngx_uint_t alg,
                               ngx_http_taskmgr_jwt_key_t *key,
                               ngx_str_t *input, ngx_str_t *sig)
{
    int           n;
    u_char        mac[EVP_MAX_MD_SIZE], der[80], *p;
    BIGNUM       *br, *bs;
    ngx_int_t     rc;
    unsigned int  mdlen;
    EVP_MD_CTX   *md;
    ECDSA_SIG    *es;
    const u_char *s;
    size_t        slen;
    const EVP_MD *type;

    if (alg == NGX_HTTP_TASKMGR_JWT_HS256) {
        if (ngx_http_taskmgr_hmac(key->hmac, input->data, input->len, mac)
            != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, log, 0, "taskmgr: HMAC-SHA256 failed");
            return NGX_ERROR;
        }

        mdlen = NGX_HTTP_TASKMGR_HMAC_LEN;

        if (sig->len != mdlen || CRYPTO_memcmp(mac, sig->data, mdlen) != 0) {
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    s = sig->data;
    slen = sig->len;

    switch (alg) {

    case NGX_HTTP_TASKMGR_JWT_RS256:
        if ((int) slen != EVP_PKEY_get_size(key->pkey)) {
            return NGX_DECLINED;
        }
        break;

    case NGX_HTTP_TASKMGR_JWT_EDDSA:
        if (slen != 64) {
            return NGX_DECLINED;
        }
        break;

    default: /* ES256: R||S to DER */
        if (slen != 64) {
            return NGX_DECLINED;
        }

        es = ECDSA_SIG_new();
        br = BN_bin2bn(s, 32, NULL);
        bs = BN_bin2bn(s + 32, 32, NULL);

        if (es == NULL || br == NULL || bs == NULL
            || ECDSA_SIG_set0(es, br, bs) != 1) {
            ECDSA_SIG_free(es);
            BN_free(br);
            BN_free(bs);
            return NGX_ERROR;
        }

        n = i2d_ECDSA_SIG(es, NULL);

        if (n <= 0 || (size_t) n > sizeof(der)) {
            ECDSA_SIG_free(es);
            return NGX_ERROR;
        }

        p = der;
        n = i2d_ECDSA_SIG(es, &p);

        ECDSA_SIG_free(es);

        if (n <= 0) {
            return NGX_ERROR;
        }

        s = der;
        slen = (size_t) n;
        break;
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    type = (alg == NGX_HTTP_TASKMGR_JWT_EDDSA) ? NULL : EVP_sha256();

    if (EVP_DigestVerifyInit(md, NULL, type, NULL, key->pkey) != 1) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "taskmgr: EVP_DigestVerifyInit() failed");
        rc = NGX_ERROR;

    } else {
        rc = EVP_DigestVerify(md, s, slen, input->data, input->len) == 1
            ? NGX_OK
            : NGX_DECLINED;
    }

    EVP_MD_CTX_free(md);
    ERR_clear_error();

    return rc;
}


/* base64url without padding (RFC 7515, 2) */

static ngx_int_t
ngx_http_taskmgr_jwt_b64(ngx_pool_t *pool, u_char *p, size_t len,
                         ngx_str_t *out)
{
    ngx_str_t src;

    out->data = ngx_pnalloc(pool, ngx_base64_encoded_length(len));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    src.data = p;
    src.len = len;

    ngx_encode_base64url(out, &src);

    return NGX_OK;
}


/* a segment: base64url characters only (no padding), decoded into pool */

static ngx_int_t
ngx_http_taskmgr_jwt_unb64(ngx_pool_t *pool, u_char *p, size_t len,
                           ngx_str_t *out)
{
    size_t    i;
    ngx_str_t src;

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')
              || (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '_'))
        {
            return NGX_DECLINED;
        }
    }

    out->data = ngx_pnalloc(pool, ngx_base64_decoded_length(len) + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    src.data = p;
    src.len = len;

    if (ngx_decode_base64url(out, &src) != NGX_OK) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_jwt_dump(ngx_pool_t *pool, json_t *v, ngx_str_t *out)
{
    size_t len;

    len = json_dumpb(v, NULL, 0, JSON_COMPACT);
    if (len == 0) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    if (json_dumpb(v, (char *) out->data, len, JSON_COMPACT) != len) {
        return NGX_ERROR;
    }

    out->len = len;

    return NGX_OK;
}


ngx_http_taskmgr_jwt_status_e
ngx_http_taskmgr_jwt_verify(ngx_http_request_t               *r,
                            ngx_http_taskmgr_auth_loc_conf_t *alcf,
                            ngx_str_t *token, ngx_http_taskmgr_identity_t *id,
                            json_t **claims)
{
    u_char                     *d1, *d2, *last;
    time_t                      now;
    json_t                     *root, *hdr, *v, *sub, *sid, *jti;
    ngx_int_t                   rc;
    ngx_str_t                   hbin, cbin, sbin, input, *name;
    ngx_log_t                  *log;
    json_int_t                  exp, iat;
    ngx_uint_t                  i;
    const char                 *reason;
    json_error_t                jerr;
    ngx_pool_cleanup_t         *cln;
    ngx_http_taskmgr_jwt_key_t *keys, *key;

    log = r->connection->log;

    if (alcf->keys == NULL || alcf->keys->nelts == 0) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "taskmgr: JWT verification without a key");
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    if (token->len == 0 || token->len > NGX_HTTP_TASKMGR_JWT_MAX_LEN) {
        reason = "bad length";
        goto invalid;
    }

    /* header.claims.signature: exactly two dots */

    last = token->data + token->len;

    d1 = ngx_strlchr(token->data, last, '.');
    d2 = d1 ? ngx_strlchr(d1 + 1, last, '.') : NULL;

    if (d1 == NULL || d2 == NULL || ngx_strlchr(d2 + 1, last, '.') != NULL
        || d1 == token->data || d2 == d1 + 1
        || (size_t) (d1 - token->data) > NGX_HTTP_TASKMGR_JWT_HDR_MAX)
    {
        reason = "malformed";
        goto invalid;
    }

    rc = ngx_http_taskmgr_jwt_unb64(r->pool, token->data, d1 - token->data,
                                    &hbin);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    if (rc != NGX_OK) {
        reason = "malformed header";
        goto invalid;
    }

    hdr =
        json_loadb((char *) hbin.data, hbin.len, JSON_REJECT_DUPLICATES, &jerr);

    if (hdr == NULL || !json_is_object(hdr)) {
        if (hdr) {
            json_decref(hdr);
        }

        reason = "header is not a JSON object";
        goto invalid;
    }

    /* the algorithm is pinned: the header must name exactly ours */

    name = &ngx_http_taskmgr_jwt_alg_names[alcf->alg];

    if (ngx_http_taskmgr_jwt_str_eq(json_object_get(hdr, "alg"), name)
        != NGX_OK) {
        json_decref(hdr);
        reason = "algorithm not allowed";
        goto invalid;
    }

    if (json_object_get(hdr, "crit") != NULL) {
        json_decref(hdr);
        reason = "unsupported \"crit\" header";
        goto invalid;
    }

    keys = alcf->keys->elts;
    v = json_object_get(hdr, "kid");

    if (v == NULL) {
        /* no kid: the signing key only */
        key = &keys[0];

    } else {
        key = NULL;

        if (json_is_string(v)) {
            for (i = 0; i < alcf->keys->nelts; i++) {
                if (keys[i].kid.len
                    && ngx_http_taskmgr_jwt_str_eq(v, &keys[i].kid) == NGX_OK) {
                    key = &keys[i];
                    break;
                }
            }
        }
    }

    json_decref(hdr);

    if (key == NULL) {
        reason = "unknown kid";
        goto invalid;
    }

    rc = ngx_http_taskmgr_jwt_unb64(r->pool, d2 + 1, last - d2 - 1, &sbin);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    if (rc != NGX_OK || sbin.len > NGX_HTTP_TASKMGR_JWT_SIG_MAX) {
        reason = "malformed signature";
        goto invalid;
    }

    input.data = token->data;
    input.len = d2 - token->data;

    rc = ngx_http_taskmgr_jwt_check_sig(log, alcf->alg, key, &input, &sbin);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    if (rc != NGX_OK) {
        reason = "bad signature";
        goto invalid;
    }

    /* signed by us: now the claims */

    rc = ngx_http_taskmgr_jwt_unb64(r->pool, d1 + 1, d2 - d1 - 1, &cbin);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    if (rc != NGX_OK) {
        reason = "malformed claims";
        goto invalid;
    }

    /* registered before the claims exist, so they are freed on every path */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_TASKMGR_JWT_FAILED;
    }

    cln->handler = ngx_http_taskmgr_jwt_json_cleanup;
    cln->data = NULL;

    root =
        json_loadb((char *) cbin.data, cbin.len, JSON_REJECT_DUPLICATES, &jerr);

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
