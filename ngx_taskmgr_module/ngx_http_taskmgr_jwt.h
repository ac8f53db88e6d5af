/*
 * Copyright (C) taskmgr developers
 *
 * JWT support shared by the auth module and the token issuer: the auth
 * location conf and the verification entry point.
 */

#ifndef _NGX_HTTP_TASKMGR_JWT_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_JWT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_taskmgr.h"


/* longest token accepted for verification, in bytes */
#define NGX_HTTP_TASKMGR_JWT_MAX_LEN 8192


typedef enum {
    NGX_HTTP_TASKMGR_JWT_VALID = 0,
    NGX_HTTP_TASKMGR_JWT_MISSING, /* no "Authorization: Bearer" */
    NGX_HTTP_TASKMGR_JWT_INVALID, /* any reason but expiry */
    NGX_HTTP_TASKMGR_JWT_EXPIRED, /* "exp" (plus leeway) has passed */
    NGX_HTTP_TASKMGR_JWT_FAILED   /* internal error, e.g. no memory */
} ngx_http_taskmgr_jwt_status_e;


/* location conf of ngx_http_taskmgr_auth_module */
typedef struct {
    ngx_flag_t enable;
    ngx_str_t  key;      /* key bytes (HS: the shared secret) */
    ngx_str_t  key_file; /* for log messages only */
    ngx_uint_t alg;      /* jwt_alg_t */
    ngx_str_t  issuer;   /* empty: not checked, not issued */
    ngx_str_t  audience; /* empty: not checked, not issued */
    time_t     leeway;
    time_t     ttl;

    u_char    *enable_file;
    ngx_uint_t enable_line;
} ngx_http_taskmgr_auth_loc_conf_t;


/*
 * Verifies token (the bare JWT, without "Bearer ") against alcf: the
 * signature with the configured key, the pinned algorithm, "exp" (required),
 * "nbf", "iat", "iss", "aud", "sub" (a UUID, required) and "sid" (a UUID,
 * optional).  On NGX_HTTP_TASKMGR_JWT_VALID, id is filled with copies in
 * r->pool and, if claims is not NULL, *claims is set to the claim set,
 * which r->pool owns (freed by a pool cleanup).
 */
ngx_http_taskmgr_jwt_status_e ngx_http_taskmgr_jwt_verify(
    ngx_http_request_t *r, ngx_http_taskmgr_auth_loc_conf_t *alcf,
    ngx_str_t *token, ngx_http_taskmgr_identity_t *id, json_t **claims);


#endif /* _NGX_HTTP_TASKMGR_JWT_H_INCLUDED_ */
