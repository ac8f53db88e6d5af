/*
 * Copyright (C) taskmgr developers
 *
 * Resource handlers of the task API and the helpers they share (api.c).
 */

#ifndef _NGX_HTTP_TASKMGR_HANDLERS_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_HANDLERS_H_INCLUDED_


#include "ngx_http_taskmgr.h"
#include "ngx_http_taskmgr_pg.h"
#include "ngx_http_taskmgr_sql.h"
#include "ngx_http_taskmgr_json.h"
#include "ngx_http_taskmgr_router.h"


typedef struct {
    ngx_flag_t enable;
    size_t     max_body_size;
    time_t     refresh_ttl;
    ngx_flag_t cache;
    ngx_msec_t cache_ttl;
    size_t     cache_max_entry_size;
    /* a search's offset pages end at this many matches */
    ngx_uint_t search_offset_max;

    /* passwords and login brute force (h_auth.c) */
    ngx_hash_t *pw_blocklist; /* NULL: no list */
    ngx_uint_t  login_max_failures;
    time_t      login_failure_window;
    time_t      login_lock_time;
    time_t      login_max_lock_time;
    ngx_uint_t  login_ip_max_failures;
    time_t      login_ip_window;
} ngx_http_taskmgr_api_loc_conf_t;


/* api.c */
ngx_http_taskmgr_api_ctx_t  *ngx_http_taskmgr_api_ctx(ngx_http_request_t *r);
ngx_http_taskmgr_pg_query_t *ngx_http_taskmgr_api_query(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
    ngx_http_taskmgr_pg_handler_pt handler);
ngx_int_t   ngx_http_taskmgr_api_submit(ngx_http_request_t          *r,
                                        ngx_http_taskmgr_pg_query_t *q);
void        ngx_http_taskmgr_api_audit_params(ngx_http_request_t          *r,
                                              ngx_http_taskmgr_pg_query_t *q);
ngx_int_t   ngx_http_taskmgr_api_check(ngx_http_taskmgr_pg_query_t *q,
                                       ngx_int_t                   *rc);
const char *ngx_http_taskmgr_api_status_code(ngx_uint_t status);
ngx_int_t   ngx_http_taskmgr_api_result(ngx_http_taskmgr_pg_query_t *q,
                                        ngx_http_taskmgr_result_t   *res,
                                        ngx_int_t                   *rc);
ngx_int_t   ngx_http_taskmgr_api_respond(ngx_http_request_t        *r,
                                         ngx_http_taskmgr_result_t *res);
void        ngx_http_taskmgr_api_done(ngx_http_taskmgr_pg_query_t *q);
ngx_int_t   ngx_http_taskmgr_api_expect(ngx_http_taskmgr_pg_query_t *q,
                                        ngx_http_taskmgr_result_t   *res,
                                        ngx_uint_t                   status);
void        ngx_http_taskmgr_api_finish(ngx_http_request_t *r, ngx_int_t rc);
ngx_int_t   ngx_http_taskmgr_api_uuid_param(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx,
                                            ngx_uint_t i, const char *what,
                                            ngx_int_t *rc);
ngx_int_t   ngx_http_taskmgr_api_split_meta(ngx_str_t *meta, ngx_str_t *a,
                                            ngx_str_t *b);
ngx_int_t   ngx_http_taskmgr_api_cache_private(ngx_http_request_t *r);
ngx_int_t   ngx_http_taskmgr_api_etag(ngx_http_request_t *r, ngx_str_t *etag);
ngx_int_t   ngx_http_taskmgr_api_send_hit(ngx_http_request_t       *r,
                                          ngx_http_taskmgr_cache_t *cache);
ngx_int_t   ngx_http_taskmgr_api_respond_cached(ngx_http_request_t        *r,
                                                ngx_http_taskmgr_result_t *res);
ngx_int_t   ngx_http_taskmgr_api_bad_arg(ngx_http_request_t *r, ngx_str_t *name,
                                         const char *message);

/* ngx_http_taskmgr_idem.c: Idempotency-Key */
ngx_int_t  ngx_http_taskmgr_idem_begin(ngx_http_request_t         *r,
                                       ngx_http_taskmgr_api_ctx_t *ctx);
ngx_uint_t ngx_http_taskmgr_idem_stmt(ngx_http_taskmgr_api_ctx_t *ctx,
                                      ngx_uint_t                  stmt);
void       ngx_http_taskmgr_idem_params(ngx_http_taskmgr_pg_query_t *q,
                                        ngx_http_taskmgr_api_ctx_t  *ctx);
ngx_int_t  ngx_http_taskmgr_idem_replay(ngx_http_request_t            *r,
                                        ngx_http_taskmgr_api_ctx_t    *ctx,
                                        ngx_uint_t                     stmt,
                                        ngx_http_taskmgr_pg_handler_pt handler);
ngx_int_t  ngx_http_taskmgr_idem_failed(ngx_http_taskmgr_pg_query_t *q);
void       ngx_http_taskmgr_idem_step_done(ngx_http_request_t         *r,
                                           ngx_http_taskmgr_api_ctx_t *ctx,
                                           ngx_int_t                   rc);

/* ngx_http_taskmgr_h_auth.c */
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_register_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_login_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_refresh_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_me_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_password_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_email_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_password_reset_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_magic_consume_fields[];

ngx_int_t ngx_http_taskmgr_auth_api_init(ngx_conf_t *cf);
char *ngx_http_taskmgr_password_blocklist(ngx_conf_t *cf, ngx_command_t *cmd,
                                          void *conf);
char *ngx_http_taskmgr_auth_api_merge(ngx_conf_t                      *cf,
                                      ngx_http_taskmgr_api_loc_conf_t *prev,
                                      ngx_http_taskmgr_api_loc_conf_t *conf);

ngx_int_t ngx_http_taskmgr_h_register(ngx_http_request_t         *r,
                                      ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_login(ngx_http_request_t         *r,
                                   ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_refresh(ngx_http_request_t         *r,
                                     ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_logout(ngx_http_request_t         *r,
                                    ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_logout_all(ngx_http_request_t         *r,
                                        ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_session_list(ngx_http_request_t         *r,
                                          ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_session_delete(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_password(ngx_http_request_t         *r,
                                      ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_password_forgot(ngx_http_request_t         *r,
                                             ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_password_reset(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_magic_link(ngx_http_request_t         *r,
                                        ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_magic_consume(ngx_http_request_t         *r,
                                           ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_me(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_me_update(ngx_http_request_t         *r,
                                       ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_mfa.c */
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_mfa_code_fields[];

ngx_int_t ngx_http_taskmgr_mfa_second_factor(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx, ngx_str_t *uid,
    ngx_str_t *mfa, ngx_str_t **step, ngx_str_t **recovery, ngx_int_t *rc);
ngx_int_t ngx_http_taskmgr_h_mfa_totp_setup(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_mfa_totp_confirm(ngx_http_request_t         *r,
                                              ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_mfa_totp_disable(ngx_http_request_t         *r,
                                              ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_keys.c */
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_api_key_fields[];

ngx_int_t ngx_http_taskmgr_h_api_key_create(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_api_key_list(ngx_http_request_t         *r,
                                          ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_api_key_delete(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_workspaces.c */
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_workspace_fields[];

ngx_int_t ngx_http_taskmgr_h_workspace_list(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_workspace_create(ngx_http_request_t         *r,
                                              ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_workspace_get(ngx_http_request_t         *r,
                                           ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_tasks.c */
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_task_create_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_task_patch_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_task_bulk_fields[];

ngx_int_t ngx_http_taskmgr_h_task_list(ngx_http_request_t         *r,
                                       ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_task_create(ngx_http_request_t         *r,
                                         ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_task_get(ngx_http_request_t         *r,
                                      ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_task_update(ngx_http_request_t         *r,
                                         ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_task_delete(ngx_http_request_t         *r,
                                         ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_task_restore(ngx_http_request_t         *r,
                                          ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_task_bulk(ngx_http_request_t         *r,
                                       ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_projects.c: projects and the helpers of the
 * project and comment routes */
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_project_create_fields[];
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_project_patch_fields[];

ngx_int_t ngx_http_taskmgr_arg_next(u_char **pos, u_char *end, ngx_str_t *name,
                                    ngx_str_t *value);
ngx_int_t ngx_http_taskmgr_arg_limit(ngx_http_request_t *r, ngx_str_t *name,
                                     ngx_str_t *value, ngx_int_t *rc);
ngx_int_t ngx_http_taskmgr_page_args(ngx_http_request_t *r, ngx_str_t *limit,
                                     ngx_str_t *cursor, ngx_int_t *rc);
ngx_int_t ngx_http_taskmgr_if_match_version(ngx_http_request_t *r,
                                            const char         *detail,
                                            ngx_str_t *version, ngx_int_t *rc);
void      ngx_http_taskmgr_object_answer(ngx_http_taskmgr_pg_query_t *q);
void      ngx_http_taskmgr_page_answer(ngx_http_taskmgr_pg_query_t *q);

ngx_int_t ngx_http_taskmgr_h_project_list(ngx_http_request_t         *r,
                                          ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_project_create(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_project_get(ngx_http_request_t         *r,
                                         ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_project_update(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_project_delete(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_comments.c */
extern ngx_http_taskmgr_field_t ngx_http_taskmgr_comment_fields[];

ngx_int_t ngx_http_taskmgr_h_comment_list(ngx_http_request_t         *r,
                                          ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_comment_create(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_comment_get(ngx_http_request_t         *r,
                                         ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_comment_update(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_comment_delete(ngx_http_request_t         *r,
                                            ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_audit.c */
ngx_int_t ngx_http_taskmgr_h_audit_list(ngx_http_request_t         *r,
                                        ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_task_activity(ngx_http_request_t         *r,
                                           ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_attach.c */
ngx_int_t ngx_http_taskmgr_h_attach_upload(ngx_http_request_t         *r,
                                           ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_attach_list(ngx_http_request_t         *r,
                                         ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_attach_get(ngx_http_request_t         *r,
                                        ngx_http_taskmgr_api_ctx_t *ctx);
ngx_int_t ngx_http_taskmgr_h_attach_delete(ngx_http_request_t         *r,
                                           ngx_http_taskmgr_api_ctx_t *ctx);

/* ngx_http_taskmgr_h_health.c */
ngx_int_t ngx_http_taskmgr_healthz_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_taskmgr_readyz_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_TASKMGR_HANDLERS_H_INCLUDED_ */
