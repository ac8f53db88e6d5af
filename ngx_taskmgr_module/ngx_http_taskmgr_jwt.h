/*
 * Copyright (C) taskmgr developers
 *
 * JWT support shared by the auth module and the token issuer: the auth
 * location conf, the keys and the verification entry point.
 */

#ifndef _NGX_HTTP_TASKMGR_JWT_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_JWT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ngx_http_taskmgr.h"


/* longest token accepted for verification, in bytes */
#define NGX_HTTP_TASKMGR_JWT_MAX_LEN 8192

/* the algorithms taskmgr_auth_jwt_alg selects */
#define NGX_HTTP_TASKMGR_JWT_HS256 1
#define NGX_HTTP_TASKMGR_JWT_RS256 2
#define NGX_HTTP_TASKMGR_JWT_ES256 3
#define NGX_HTTP_TASKMGR_JWT_EDDSA 4

/* taskmgr_auth_revocation_fallback */
#define NGX_HTTP_TASKMGR_RV_FALLBACK_READS  0
#define NGX_HTTP_TASKMGR_RV_FALLBACK_REFUSE 1
#define NGX_HTTP_TASKMGR_RV_FALLBACK_ACCEPT 2


typedef enum {
    NGX_HTTP_TASKMGR_JWT_VALID = 0,
    NGX_HTTP_TASKMGR_JWT_MISSING, /* no "Authorization: Bearer" */
    NGX_HTTP_TASKMGR_JWT_INVALID, /* any reason but expiry */
    NGX_HTTP_TASKMGR_JWT_EXPIRED, /* "exp" (plus leeway) has passed */
    NGX_HTTP_TASKMGR_JWT_FAILED   /* internal error, e.g. no memory */
} ngx_http_taskmgr_jwt_status_e;


/* one taskmgr_auth_jwt_key_file line, as read at configuration time */
typedef struct {
    ngx_str_t  kid;  /* empty: none */
    ngx_str_t  file; /* full path, for messages */
    ngx_str_t  data; /* the file's bytes (wiped with the configuration) */
    u_char    *conf_file;
    ngx_uint_t conf_line;
} ngx_http_taskmgr_jwt_key_src_t;


/* a key ready for the configured algorithm */
typedef struct {
    ngx_str_t                kid;    /* empty: none */
    ngx_str_t                file;   /* for messages */
    ngx_str_t                secret; /* HS256: the shared secret */
    ngx_http_taskmgr_hmac_t *hmac;   /* HS256: keyed with it */
    EVP_PKEY *pkey; /* RS256, ES256, EdDSA; freed with the configuration */
    unsigned  can_sign : 1;
} ngx_http_taskmgr_jwt_key_t;


/* location conf of ngx_http_taskmgr_auth_module */
typedef struct {
    ngx_flag_t   enable;
    ngx_array_t *key_srcs; /* of ngx_http_taskmgr_jwt_key_src_t */
    ngx_array_t *keys;     /* of ngx_http_taskmgr_jwt_key_t; [0] signs */
    ngx_uint_t   alg;      /* NGX_HTTP_TASKMGR_JWT_* */
    ngx_str_t    issuer;   /* empty: not checked, not issued */
    ngx_str_t    audience; /* empty: not checked, not issued */
    time_t       leeway;
    time_t       ttl;

    ngx_flag_t revocation;
    ngx_uint_t revocation_fallback;

    ngx_flag_t api_keys; /* "Bearer tmk_…" looked up in PostgreSQL */

    u_char    *enable_file;
    ngx_uint_t enable_line;
} ngx_http_taskmgr_auth_loc_conf_t;


/*
 * Parses the key sources of alcf for alcf->alg into alcf->keys (at
 * configuration time): HS256 keys are secrets of at least 32 bytes, the
 * others PEM keys of the algorithm's type (a private key signs and
 * verifies, a public key only verifies).  NGX_ERROR after an [emerg].
 */
ngx_int_t ngx_http_taskmgr_jwt_load_keys(
    ngx_conf_t *cf, ngx_http_taskmgr_auth_loc_conf_t *alcf);

/*
 * Verifies token (the bare JWT, without "Bearer ") against alcf: the
 * signature with the key its "kid" names (the signing key when it names
 * none), the pinned algorithm, "exp" (required), "nbf", "iat", "iss",
 * "aud", "sub" (a UUID, required) and "sid" (a UUID, optional).  On
 * NGX_HTTP_TASKMGR_JWT_VALID, id is filled with copies in r->pool and, if
 * claims is not NULL, *claims is set to the claim set, which r->pool owns
 * (freed by a pool cleanup).
 */
ngx_http_taskmgr_jwt_status_e ngx_http_taskmgr_jwt_verify(
    ngx_http_request_t *r, ngx_http_taskmgr_auth_loc_conf_t *alcf,
    ngx_str_t *token, ngx_http_taskmgr_identity_t *id, json_t **claims);


#endif /* _NGX_HTTP_TASKMGR_JWT_H_INCLUDED_ */
