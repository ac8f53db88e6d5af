/*
 * Copyright (C) taskmgr developers
 */


#include "ngx_http_taskmgr_handlers.h"


#define TM_AUTH      NGX_HTTP_TASKMGR_AUTH
#define TM_AUTH_BODY (NGX_HTTP_TASKMGR_AUTH | NGX_HTTP_TASKMGR_BODY)
#define TM_BODY      NGX_HTTP_TASKMGR_BODY
#define TM_IDEM      NGX_HTTP_TASKMGR_IDEM


/* clang-format off */
static ngx_http_taskmgr_route_t  ngx_http_taskmgr_routes[] = {

    { NGX_HTTP_POST, "/v1/auth/register", ngx_http_taskmgr_h_register,
      TM_BODY, ngx_http_taskmgr_register_fields },
    { NGX_HTTP_POST, "/v1/auth/login", ngx_http_taskmgr_h_login,
      TM_BODY, ngx_http_taskmgr_login_fields },
    { NGX_HTTP_POST, "/v1/auth/refresh", ngx_http_taskmgr_h_refresh,
      TM_BODY, ngx_http_taskmgr_refresh_fields },
    { NGX_HTTP_POST, "/v1/auth/logout", ngx_http_taskmgr_h_logout,
      TM_AUTH, NULL },
    { NGX_HTTP_POST, "/v1/auth/logout-all", ngx_http_taskmgr_h_logout_all,
      TM_AUTH, NULL },
    { NGX_HTTP_GET, "/v1/auth/sessions", ngx_http_taskmgr_h_session_list,
      TM_AUTH, NULL },
    { NGX_HTTP_DELETE, "/v1/auth/sessions/{id}",
      ngx_http_taskmgr_h_session_delete, TM_AUTH, NULL },
    { NGX_HTTP_POST, "/v1/auth/password", ngx_http_taskmgr_h_password,
      TM_AUTH_BODY, ngx_http_taskmgr_password_fields },
    { NGX_HTTP_POST, "/v1/auth/password/forgot",
      ngx_http_taskmgr_h_password_forgot, TM_BODY,
      ngx_http_taskmgr_email_fields },
    { NGX_HTTP_POST, "/v1/auth/password/reset",
      ngx_http_taskmgr_h_password_reset, TM_BODY,
      ngx_http_taskmgr_password_reset_fields },
    { NGX_HTTP_POST, "/v1/auth/magic-link", ngx_http_taskmgr_h_magic_link,
      TM_BODY, ngx_http_taskmgr_email_fields },
    { NGX_HTTP_POST, "/v1/auth/magic-link/consume",
      ngx_http_taskmgr_h_magic_consume, TM_BODY,
      ngx_http_taskmgr_magic_consume_fields },
    { NGX_HTTP_POST, "/v1/auth/mfa/totp", ngx_http_taskmgr_h_mfa_totp_setup,
      TM_AUTH, NULL },
    { NGX_HTTP_POST, "/v1/auth/mfa/totp/confirm",
      ngx_http_taskmgr_h_mfa_totp_confirm, TM_AUTH_BODY,
      ngx_http_taskmgr_mfa_code_fields },
    { NGX_HTTP_DELETE, "/v1/auth/mfa/totp",
      ngx_http_taskmgr_h_mfa_totp_disable, TM_AUTH_BODY,
      ngx_http_taskmgr_mfa_code_fields },

    { NGX_HTTP_POST, "/v1/api-keys", ngx_http_taskmgr_h_api_key_create,
      TM_AUTH_BODY, ngx_http_taskmgr_api_key_fields },
    { NGX_HTTP_GET, "/v1/api-keys", ngx_http_taskmgr_h_api_key_list,
      TM_AUTH, NULL },
    { NGX_HTTP_DELETE, "/v1/api-keys/{id}", ngx_http_taskmgr_h_api_key_delete,
      TM_AUTH, NULL },

    { NGX_HTTP_GET, "/v1/me", ngx_http_taskmgr_h_me, TM_AUTH, NULL },
    { NGX_HTTP_PATCH, "/v1/me", ngx_http_taskmgr_h_me_update,
      TM_AUTH_BODY, ngx_http_taskmgr_me_fields },

    { NGX_HTTP_GET, "/v1/workspaces", ngx_http_taskmgr_h_workspace_list,
      TM_AUTH, NULL },
    { NGX_HTTP_POST, "/v1/workspaces", ngx_http_taskmgr_h_workspace_create,
      TM_AUTH_BODY | TM_IDEM, ngx_http_taskmgr_workspace_fields },
    { NGX_HTTP_GET, "/v1/workspaces/{ws}", ngx_http_taskmgr_h_workspace_get,
      TM_AUTH, NULL },

    { NGX_HTTP_GET, "/v1/workspaces/{ws}/tasks",
      ngx_http_taskmgr_h_task_list, TM_AUTH | NGX_HTTP_TASKMGR_ARGS, NULL },
    { NGX_HTTP_POST, "/v1/workspaces/{ws}/tasks",
      ngx_http_taskmgr_h_task_create, TM_AUTH_BODY | TM_IDEM,
      ngx_http_taskmgr_task_create_fields },
    { NGX_HTTP_POST, "/v1/workspaces/{ws}/tasks/bulk",
      ngx_http_taskmgr_h_task_bulk, TM_AUTH_BODY | TM_IDEM,
      ngx_http_taskmgr_task_bulk_fields },
    { NGX_HTTP_GET, "/v1/workspaces/{ws}/tasks/{id}",
      ngx_http_taskmgr_h_task_get, TM_AUTH, NULL },
    { NGX_HTTP_PATCH, "/v1/workspaces/{ws}/tasks/{id}",
      ngx_http_taskmgr_h_task_update, TM_AUTH_BODY | TM_IDEM,
      ngx_http_taskmgr_task_patch_fields },
    { NGX_HTTP_DELETE, "/v1/workspaces/{ws}/tasks/{id}",
      ngx_http_taskmgr_h_task_delete, TM_AUTH | NGX_HTTP_TASKMGR_ARGS, NULL },
    { NGX_HTTP_POST, "/v1/workspaces/{ws}/tasks/{id}/restore",
      ngx_http_taskmgr_h_task_restore, TM_AUTH | TM_IDEM, NULL },
    { NGX_HTTP_GET, "/v1/workspaces/{ws}/tasks/{id}/activity",
      ngx_http_taskmgr_h_task_activity, TM_AUTH | NGX_HTTP_TASKMGR_ARGS,
      NULL },

    { NGX_HTTP_GET, "/v1/workspaces/{ws}/tasks/{id}/comments",
      ngx_http_taskmgr_h_comment_list, TM_AUTH | NGX_HTTP_TASKMGR_ARGS,
      NULL },
    { NGX_HTTP_POST, "/v1/workspaces/{ws}/tasks/{id}/comments",
      ngx_http_taskmgr_h_comment_create, TM_AUTH_BODY | TM_IDEM,
      ngx_http_taskmgr_comment_fields },
    { NGX_HTTP_GET, "/v1/workspaces/{ws}/tasks/{id}/comments/{cid}",
      ngx_http_taskmgr_h_comment_get, TM_AUTH, NULL },
    { NGX_HTTP_PATCH, "/v1/workspaces/{ws}/tasks/{id}/comments/{cid}",
      ngx_http_taskmgr_h_comment_update, TM_AUTH_BODY | TM_IDEM,
      ngx_http_taskmgr_comment_fields },
    { NGX_HTTP_DELETE, "/v1/workspaces/{ws}/tasks/{id}/comments/{cid}",
      ngx_http_taskmgr_h_comment_delete, TM_AUTH, NULL },

    { NGX_HTTP_GET, "/v1/workspaces/{ws}/tasks/{id}/attachments",
      ngx_http_taskmgr_h_attach_list, TM_AUTH, NULL },
    { NGX_HTTP_POST, "/v1/workspaces/{ws}/tasks/{id}/attachments",
      ngx_http_taskmgr_h_attach_upload,
      TM_AUTH | NGX_HTTP_TASKMGR_ARGS | NGX_HTTP_TASKMGR_UPLOAD | TM_IDEM,
      NULL },
    { NGX_HTTP_GET, "/v1/workspaces/{ws}/attachments/{id}",
      ngx_http_taskmgr_h_attach_get, TM_AUTH, NULL },
    { NGX_HTTP_DELETE, "/v1/workspaces/{ws}/attachments/{id}",
      ngx_http_taskmgr_h_attach_delete, TM_AUTH, NULL },

    { NGX_HTTP_GET, "/v1/workspaces/{ws}/projects",
      ngx_http_taskmgr_h_project_list, TM_AUTH | NGX_HTTP_TASKMGR_ARGS,
      NULL },
    { NGX_HTTP_POST, "/v1/workspaces/{ws}/projects",
      ngx_http_taskmgr_h_project_create, TM_AUTH_BODY | TM_IDEM,
      ngx_http_taskmgr_project_create_fields },
    { NGX_HTTP_GET, "/v1/workspaces/{ws}/projects/{id}",
      ngx_http_taskmgr_h_project_get, TM_AUTH, NULL },
    { NGX_HTTP_PATCH, "/v1/workspaces/{ws}/projects/{id}",
      ngx_http_taskmgr_h_project_update, TM_AUTH_BODY | TM_IDEM,
      ngx_http_taskmgr_project_patch_fields },
    { NGX_HTTP_DELETE, "/v1/workspaces/{ws}/projects/{id}",
      ngx_http_taskmgr_h_project_delete, TM_AUTH, NULL },

    { NGX_HTTP_GET, "/v1/workspaces/{ws}/audit-log",
      ngx_http_taskmgr_h_audit_list, TM_AUTH | NGX_HTTP_TASKMGR_ARGS, NULL },

    { 0, NULL, NULL, 0, NULL }
};
/* clang-format on */


static const char *ngx_http_taskmgr_method_names[] = { "GET", "POST", "PATCH",
                                                       "DELETE", NULL };

static ngx_uint_t ngx_http_taskmgr_method_bits[] = {
    NGX_HTTP_GET, NGX_HTTP_POST, NGX_HTTP_PATCH, NGX_HTTP_DELETE, 0
};


/*
 * Matches the path against one pattern; captures go to ctx->params.
 */
static ngx_int_t
ngx_http_taskmgr_route_match(const char *pattern, ngx_str_t *path,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    u_char     *p, *end, *seg;
    size_t      plen;
    ngx_uint_t  n;
    const char *pp, *pseg;

    p = path->data;
    end = path->data + path->len;
    pp = pattern;
    n = 0;

    while (*pp) {
        if (*pp != '/' || p >= end || *p != '/') {
            return NGX_DECLINED;
        }

        pp++;
        p++;

        pseg = pp;
        while (*pp && *pp != '/') {
            pp++;
        }
        plen = pp - pseg;

        seg = p;
        while (p < end && *p != '/') {
            p++;
        }

        if (pseg[0] == '{') {
            if (p == seg || n >= NGX_HTTP_TASKMGR_MAX_PARAMS) {
                return NGX_DECLINED;
            }

            ctx->params[n].data = seg;
            ctx->params[n].len = p - seg;
            n++;
            continue;
        }

        if ((size_t) (p - seg) != plen || ngx_strncmp(seg, pseg, plen) != 0) {
            return NGX_DECLINED;
        }
    }

    if (p != end) {
        return NGX_DECLINED;
    }

    ctx->nparams = n;

    return NGX_OK;
}


ngx_int_t
ngx_http_taskmgr_route(ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx,
                       ngx_str_t *allow)
{
    u_char                   *p;
    ngx_uint_t                i, method, allowed;
    ngx_http_taskmgr_route_t *rt;

    method = (r->method == NGX_HTTP_HEAD) ? NGX_HTTP_GET : r->method;
    allowed = 0;

    for (rt = ngx_http_taskmgr_routes; rt->pattern; rt++) {
        if (ngx_http_taskmgr_route_match(rt->pattern, &r->uri, ctx) != NGX_OK) {
            continue;
        }

        if (rt->method == method) {
            ctx->route = rt;
            return NGX_OK;
        }

        allowed |= rt->method;
    }

    if (allowed == 0) {
        return NGX_HTTP_NOT_FOUND;
    }

    p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PATCH, DELETE"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    allow->data = p;

    for (i = 0; ngx_http_taskmgr_method_names[i]; i++) {
        if (allowed & ngx_http_taskmgr_method_bits[i]) {
            if (p != allow->data) {
                *p++ = ',';
                *p++ = ' ';
            }

            p = ngx_cpymem(p, ngx_http_taskmgr_method_names[i],
                           ngx_strlen(ngx_http_taskmgr_method_names[i]));

            if (ngx_http_taskmgr_method_bits[i] == NGX_HTTP_GET) {
                p = ngx_cpymem(p, ", HEAD", 6);
            }
        }
    }

    allow->len = p - allow->data;

    return NGX_HTTP_NOT_ALLOWED;
}
