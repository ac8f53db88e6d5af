/*
 * Copyright (C) taskmgr developers
 */


#include "ngx_http_taskmgr_sql.h"


#define TM_CALL(fn, args)                                                      \
    "SELECT status, body, meta FROM tm_api." fn "(" args ")"

/* task functions answer rows of tm_api.task_row */
#define TM_ROWS(fn, args) "SELECT * FROM tm_api." fn "(" args ")"

/*
 * A write under an Idempotency-Key (parameters key and token): one
 * statement, so the write and its record commit together or not at all;
 * the record holds the write's row, from which a replay rebuilds the
 * answer.  st: the write's status column.
 */
#define TM_IDEM(call, st, key, token)                                          \
    "WITH w AS MATERIALIZED (" call "), "                                      \
    "k AS MATERIALIZED (SELECT tm.idem_done($1, " key ", " token "::uuid, "    \
    "w." st ", to_jsonb(w)) AS done FROM w) "                                  \
    "SELECT w.* FROM w, k"


/*
 * The first argument of a write: the caller's user id ($1), passed through
 * tm.audit_ctx(), which first sets the audit context of the transaction
 * (session $2, request id rid, client address ip) for the triggers of
 * sql/0007_audit.sql.  An argument is evaluated before the function it is
 * given to runs, so the context is in place before any row is written.
 */
#define TM_AUDIT(rid, ip) "tm.audit_ctx($1, $2, " rid ", " ip ")"

/*
 * The same for a write with no caller yet (register: the new user makes
 * their workspace and owner membership): the audit context is set while
 * the first argument, arg, is evaluated; tm.audit_ctx() answers its NULL
 * user id, so the CASE answers arg itself.
 */
#define TM_AUDIT_ANON(arg, rid, ip)                                            \
    "CASE WHEN tm.audit_ctx(NULL, NULL, " rid ", " ip ") IS NULL "             \
    "THEN " arg " END"

/* an upload's row; meta: "<id> <expiry of the links>" ($9, chosen by nginx
 * before the write), so that a replay signs the same links */
#define TM_ATTACH_CREATE                                                       \
    "SELECT status, body, meta || ' ' || $9 AS meta "                          \
    "FROM tm_api.attachment_create(" TM_AUDIT("$10", "$11")                    \
    ", $2, $3, $4, $5, $6, $7, $8)"


ngx_http_taskmgr_sql_stmt_t ngx_http_taskmgr_sql_stmts[] = {
    { "tm_ping", "SELECT 1" },
    { "tm_register",
      TM_CALL("register",
              TM_AUDIT_ANON("$1", "$9", "$10") ", $2, $3, $4, $5, $6, $7, $8") },
    { "tm_login_lookup", TM_CALL("login_lookup_mfa", "$1") },
    { "tm_session_create",
      TM_CALL("session_create", "$1, $2, $3, $4, $5, $6") },
    { "tm_refresh", TM_CALL("refresh_rotate", "$1, $2, $3") },
    { "tm_logout", TM_CALL("logout_session", "$1, $2") },
    { "tm_logout_all", TM_CALL("logout_all", "$1, $2") },
    { "tm_session_list", TM_CALL("session_list", "$1, $2") },
    { "tm_session_revoke", TM_CALL("session_revoke", "$1, $2, $3") },
    { "tm_password_lookup", TM_CALL("password_lookup", "$1, $2") },
    { "tm_password_set", TM_CALL("password_set", "$1, $2, $3, $4") },
    { "tm_me", TM_CALL("me", "$1, $2") },
    { "tm_me_update", TM_CALL("me_update", "$1, $2, $3") },
    { "tm_workspace_list", TM_CALL("workspace_list", "$1, $2") },
    { "tm_workspace_create",
      TM_CALL("workspace_create", TM_AUDIT("$4", "$5") ", $2, $3") },
    { "tm_workspace_create_idem",
      TM_IDEM(TM_CALL("workspace_create", TM_AUDIT("$4", "$5") ", $2, $3"),
              "status", "$6", "$7") },
    { "tm_workspace_get", TM_CALL("workspace_get", "$1, $2, $3") },
    { "tm_task_list", TM_ROWS("task_list", "$1, $2, $3, $4, NULL, NULL") },
    { "tm_task_list_after", TM_ROWS("task_list", "$1, $2, $3, $4, $5, $6") },
    { "tm_task_find",
      TM_ROWS("task_find",
              "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14") },
    { "tm_task_get", TM_ROWS("task_get", "$1, $2, $3, $4") },
    { "tm_task_create",
      TM_ROWS("task_create", TM_AUDIT("$5", "$6") ", $2, $3, $4") },
    { "tm_task_create_idem",
      TM_IDEM(TM_ROWS("task_create", TM_AUDIT("$5", "$6") ", $2, $3, $4"),
              "http_status", "$7", "$8") },
    { "tm_task_update",
      TM_ROWS("task_update", TM_AUDIT("$7", "$8") ", $2, $3, $4, $5, $6") },
    { "tm_task_update_idem",
      TM_IDEM(
          TM_ROWS("task_update", TM_AUDIT("$7", "$8") ", $2, $3, $4, $5, $6"),
          "http_status", "$9", "$10") },
    { "tm_task_delete",
      TM_ROWS("task_delete", TM_AUDIT("$6", "$7") ", $2, $3, $4, $5") },
    { "tm_task_purge",
      TM_ROWS("task_purge", TM_AUDIT("$6", "$7") ", $2, $3, $4, $5") },
    { "tm_task_restore",
      TM_ROWS("task_restore", TM_AUDIT("$6", "$7") ", $2, $3, $4, $5") },
    { "tm_task_restore_idem",
      TM_IDEM(TM_ROWS("task_restore", TM_AUDIT("$6", "$7") ", $2, $3, $4, $5"),
              "http_status", "$8", "$9") },
    { "tm_task_bulk",
      TM_CALL("task_bulk", TM_AUDIT("$5", "$6") ", $2, $3, $4") },
    { "tm_task_bulk_idem",
      TM_IDEM(TM_CALL("task_bulk", TM_AUDIT("$5", "$6") ", $2, $3, $4"),
              "status", "$7", "$8") },
    { "tm_idem_begin",
      "SELECT outcome, token, payload FROM tm_api.idem_begin($1, $2, $3, $4)" },
    { "tm_idem_abort", "SELECT tm_api.idem_abort($1, $2, $3, $4)" },
    { "tm_idem_task_row",
      "SELECT (jsonb_populate_record(NULL::tm_api.task_row, $1::jsonb)).*" },
    { "tm_idem_result",
      "SELECT status, body, meta "
      "FROM jsonb_populate_record(NULL::tm_api.result, $1::jsonb)" },
    { "tm_purge", "SELECT tm_api.purge($1, $2)" },
    { "tm_project_list", TM_CALL("project_list", "$1, $2, $3, $4, $5") },
    { "tm_project_get", TM_CALL("project_get", "$1, $2, $3, $4") },
    { "tm_project_create",
      TM_CALL("project_create", TM_AUDIT("$5", "$6") ", $2, $3, $4") },
    { "tm_project_create_idem",
      TM_IDEM(TM_CALL("project_create", TM_AUDIT("$5", "$6") ", $2, $3, $4"),
              "status", "$7", "$8") },
    { "tm_project_update",
      TM_CALL("project_update", TM_AUDIT("$7", "$8") ", $2, $3, $4, $5, $6") },
    { "tm_project_update_idem",
      TM_IDEM(TM_CALL("project_update",
                      TM_AUDIT("$7", "$8") ", $2, $3, $4, $5, $6"),
              "status", "$9", "$10") },
    { "tm_project_delete",
      TM_CALL("project_delete", TM_AUDIT("$6", "$7") ", $2, $3, $4, $5") },
    { "tm_comment_list", TM_CALL("comment_list", "$1, $2, $3, $4, $5, $6") },
    { "tm_comment_get", TM_CALL("comment_get", "$1, $2, $3, $4, $5") },
    { "tm_comment_create",
      TM_CALL("comment_create", TM_AUDIT("$6", "$7") ", $2, $3, $4, $5") },
    { "tm_comment_create_idem",
      TM_IDEM(
          TM_CALL("comment_create", TM_AUDIT("$6", "$7") ", $2, $3, $4, $5"),
          "status", "$8", "$9") },
    { "tm_comment_update",
      TM_CALL("comment_update",
              TM_AUDIT("$8", "$9") ", $2, $3, $4, $5, $6, $7") },
    { "tm_comment_update_idem",
      TM_IDEM(TM_CALL("comment_update",
                      TM_AUDIT("$8", "$9") ", $2, $3, $4, $5, $6, $7"),
              "status", "$10", "$11") },
    { "tm_comment_delete",
      TM_CALL("comment_delete", TM_AUDIT("$7", "$8") ", $2, $3, $4, $5, $6") },
    { "tm_session_create_mfa",
      TM_CALL("session_create_mfa", "$1, $2, $3, $4, $5, $6, $7, $8") },
    { "tm_mfa_totp_setup", TM_CALL("mfa_totp_setup", "$1, $2, $3") },
    { "tm_mfa_totp_state", TM_CALL("mfa_totp_state", "$1, $2") },
    { "tm_mfa_totp_enable", TM_CALL("mfa_totp_enable", "$1, $2, $3, $4, $5") },
    { "tm_mfa_totp_disable", TM_CALL("mfa_totp_disable", "$1, $2, $3, $4") },
    { "tm_mfa_totp_failed", TM_CALL("mfa_totp_failed", "$1, $2") },
    { "tm_auth_token_send", TM_CALL("auth_token_send", "$1, $2, $3, $4, $5") },
    { "tm_auth_token_lookup", TM_CALL("auth_token_lookup", "$1, $2") },
    { "tm_password_reset", TM_CALL("password_reset", "$1, $2") },
    { "tm_magic_link_consume",
      TM_CALL("magic_link_consume", "$1, $2, $3, $4, $5, $6, $7, $8") },
    { "tm_api_key_create",
      TM_CALL("api_key_create", "$1, $2, $3, $4, $5, $6, $7, $8") },
    { "tm_api_key_list", TM_CALL("api_key_list", "$1, $2") },
    { "tm_api_key_delete", TM_CALL("api_key_delete", "$1, $2, $3") },
    { "tm_api_key_auth", TM_CALL("api_key_auth", "$1") },
    { "tm_audit_list", TM_CALL("audit_list", "$1, $2, $3, $4, $5, $6, $7") },
    { "tm_task_activity", TM_CALL("task_activity", "$1, $2, $3, $4, $5, $6") },
    { "tm_attach_check", TM_CALL("attachment_check", "$1, $2, $3, $4") },
    { "tm_attach_create", TM_ATTACH_CREATE },
    { "tm_attach_create_idem",
      TM_IDEM(TM_ATTACH_CREATE, "status", "$12", "$13") },
    { "tm_attach_list", TM_CALL("attachment_list", "$1, $2, $3, $4") },
    { "tm_attach_get", TM_CALL("attachment_get", "$1, $2, $3, $4") },
    { "tm_attach_delete",
      TM_CALL("attachment_delete", TM_AUDIT("$5", "$6") ", $2, $3, $4") },
    { "tm_attach_orphans", "SELECT tm_api.attachment_orphans($1::text[])" },
    { NULL, NULL }
};


ngx_int_t
ngx_http_taskmgr_sql_setup(ngx_pool_t *pool, ngx_msec_t timeout, ngx_str_t *out)
{
    u_char                      *p;
    size_t                       len;
    ngx_uint_t                   i;
    ngx_http_taskmgr_sql_stmt_t *s;

    static const char head[] =
        "SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC'; "
        "SET application_name = 'taskmgr-nginx'; "
        "SET statement_timeout = ";

    len = sizeof(head) - 1 + NGX_INT_T_LEN + sizeof("; ") - 1;

    for (i = 0; i < NGX_HTTP_TASKMGR_SQL_LAST; i++) {
        s = &ngx_http_taskmgr_sql_stmts[i];
        len += sizeof("PREPARE  AS ; ") - 1 + ngx_strlen(s->name)
            + ngx_strlen(s->sql);
    }

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    p = ngx_sprintf(p, "%s%M; ", head, timeout);

    for (i = 0; i < NGX_HTTP_TASKMGR_SQL_LAST; i++) {
        s = &ngx_http_taskmgr_sql_stmts[i];
        p = ngx_sprintf(p, "PREPARE %s AS %s; ", s->name, s->sql);
    }

    *p = '\0';
    out->len = p - out->data;

    if (out->len > len) {
        return NGX_ERROR;
    }

    return NGX_OK;
}
