/*
 * Copyright (C) taskmgr developers
 *
 * The catalogue of named statements every connection prepares once.
 * Each API statement calls one function of the tm_api schema and answers
 * one row (status int, body text, meta text); see sql/.
 */

#ifndef _NGX_HTTP_TASKMGR_SQL_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_SQL_H_INCLUDED_


#include "ngx_http_taskmgr.h"


typedef enum {
    NGX_HTTP_TASKMGR_SQL_PING = 0,
    NGX_HTTP_TASKMGR_SQL_REGISTER,
    NGX_HTTP_TASKMGR_SQL_LOGIN_LOOKUP,
    NGX_HTTP_TASKMGR_SQL_SESSION_CREATE,
    NGX_HTTP_TASKMGR_SQL_REFRESH,
    NGX_HTTP_TASKMGR_SQL_LOGOUT,
    NGX_HTTP_TASKMGR_SQL_LOGOUT_ALL,
    NGX_HTTP_TASKMGR_SQL_SESSION_LIST,
    NGX_HTTP_TASKMGR_SQL_SESSION_REVOKE,
    NGX_HTTP_TASKMGR_SQL_PASSWORD_LOOKUP,
    NGX_HTTP_TASKMGR_SQL_PASSWORD_SET,
    NGX_HTTP_TASKMGR_SQL_ME,
    NGX_HTTP_TASKMGR_SQL_ME_UPDATE,
    NGX_HTTP_TASKMGR_SQL_WORKSPACE_LIST,
    NGX_HTTP_TASKMGR_SQL_WORKSPACE_CREATE,
    NGX_HTTP_TASKMGR_SQL_WORKSPACE_GET,
    NGX_HTTP_TASKMGR_SQL_TASK_LIST,
    NGX_HTTP_TASKMGR_SQL_TASK_LIST_AFTER,
    NGX_HTTP_TASKMGR_SQL_TASK_GET,
    NGX_HTTP_TASKMGR_SQL_TASK_CREATE,
    NGX_HTTP_TASKMGR_SQL_TASK_UPDATE,
    NGX_HTTP_TASKMGR_SQL_TASK_DELETE,
    NGX_HTTP_TASKMGR_SQL_TASK_RESTORE,
    NGX_HTTP_TASKMGR_SQL_SESSION_CREATE_MFA,
    NGX_HTTP_TASKMGR_SQL_MFA_TOTP_SETUP,
    NGX_HTTP_TASKMGR_SQL_MFA_TOTP_STATE,
    NGX_HTTP_TASKMGR_SQL_MFA_TOTP_ENABLE,
    NGX_HTTP_TASKMGR_SQL_MFA_TOTP_DISABLE,
    NGX_HTTP_TASKMGR_SQL_MFA_TOTP_FAILED,
    NGX_HTTP_TASKMGR_SQL_AUTH_TOKEN_SEND,
    NGX_HTTP_TASKMGR_SQL_AUTH_TOKEN_LOOKUP,
    NGX_HTTP_TASKMGR_SQL_PASSWORD_RESET,
    NGX_HTTP_TASKMGR_SQL_MAGIC_LINK_CONSUME,
    NGX_HTTP_TASKMGR_SQL_API_KEY_CREATE,
    NGX_HTTP_TASKMGR_SQL_API_KEY_LIST,
    NGX_HTTP_TASKMGR_SQL_API_KEY_DELETE,
    NGX_HTTP_TASKMGR_SQL_API_KEY_AUTH,
    NGX_HTTP_TASKMGR_SQL_LAST
} ngx_http_taskmgr_sql_e;


typedef struct {
    const char *name;
    const char *sql;
} ngx_http_taskmgr_sql_stmt_t;


extern ngx_http_taskmgr_sql_stmt_t ngx_http_taskmgr_sql_stmts[];

/* one simple-query string that sets the session up and prepares every
 * statement; built once per worker */
ngx_int_t ngx_http_taskmgr_sql_setup(ngx_pool_t *pool, ngx_msec_t timeout,
                                     ngx_str_t *out);


#endif /* _NGX_HTTP_TASKMGR_SQL_H_INCLUDED_ */
