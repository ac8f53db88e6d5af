/*
 * Copyright (C) taskmgr developers
 *
 * Idempotency-Key on the routes flagged NGX_HTTP_TASKMGR_IDEM.
 *
 * 1. tm_api.idem_begin claims (user, key) for the request's fingerprint
 *    (SHA-256 of method, path, If-Match and the validated body), or answers
 *    the recorded answer, 409 (in flight) or 422 (another request).
 * 2. The route's handler runs its write through the _IDEM twin of its
 *    statement: the write and the record commit in one statement.
 * 3. A replay hands the recorded row to the route's own answer callback
 *    (through tm_idem_task_row or tm_idem_result), so the answer is built
 *    by the same code as the first one: byte for byte the same.
 * 4. A write that failed (transport, SQL error, 5xx) releases the claim
 *    before the answer is sent (best effort; an abandoned claim is taken
 *    over after 60 s, and its write can then never commit).
 *
 * An upload (h_attach.c) claims its key itself once its body is on disk:
 * ctx->idem_body stands for the body (name, type, SHA-256 and size of the
 * file) and ctx->idem_next runs instead of the route's handler.
 */


#include "ngx_http_taskmgr_handlers.h"


#define NGX_HTTP_TASKMGR_IDEM_KEY_MAX 255


static void      ngx_http_taskmgr_idem_begun(ngx_http_taskmgr_pg_query_t *q);
static void      ngx_http_taskmgr_idem_replayed(ngx_http_taskmgr_pg_query_t *q);
static void      ngx_http_taskmgr_idem_aborted(ngx_http_taskmgr_pg_query_t *q);
static void      ngx_http_taskmgr_idem_released(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_idem_release(ngx_http_request_t         *r,
                                               ngx_http_taskmgr_api_ctx_t *ctx,
                                               ngx_int_t                   rc);
static ngx_http_taskmgr_pg_query_t *ngx_http_taskmgr_idem_abort_query(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx,
    ngx_http_taskmgr_pg_handler_pt handler);


/*
 * NGX_DECLINED: no Idempotency-Key, the handler runs as usual.  NGX_DONE:
 * the claim was submitted.  Else the finalize code of the answer sent.
 */
ngx_int_t
ngx_http_taskmgr_idem_begin(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx)
{
    u_char                      *p;
    size_t                       len, blen;
    ngx_str_t                    in, fp, ifm, *key;
    ngx_uint_t                   i;
    ngx_table_elt_t             *h;
    ngx_http_taskmgr_pg_query_t *q;

    if (!(ctx->route->flags & NGX_HTTP_TASKMGR_IDEM) || ctx->identity == NULL) {
        return NGX_DECLINED;
    }

    h = ngx_http_taskmgr_find_header(r, "Idempotency-Key");
    if (h == NULL) {
        return NGX_DECLINED;
    }

    key = &h->value;

    if (key->len == 0 || key->len > NGX_HTTP_TASKMGR_IDEM_KEY_MAX) {
        goto invalid;
    }

    for (i = 0; i < key->len; i++) {
        if (key->data[i] < 0x20 || key->data[i] > 0x7e) {
            goto invalid;
        }
    }

    /*
     * Every path parameter of these routes is an id: a malformed one is
     * answered 404 by the handler without a write, and without taking a
     * claim (the answer would otherwise reach the client before the claim
     * is let go, and a quick retry would see it in flight).
     */
    for (i = 0; i < ctx->nparams; i++) {
        if (ngx_http_taskmgr_is_uuid(&ctx->params[i]) != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    ctx->idem_key = *key;

    if (r->headers_in.if_match) {
        ifm = r->headers_in.if_match->value;

    } else {
        ngx_str_null(&ifm);
    }

    /* the body with its keys sorted: the same JSON object is the same
     * request, however it is written */
    if (ctx->idem_body.len) {
        blen = ctx->idem_body.len;

    } else {
        blen = ctx->body
            ? json_dumpb(ctx->body, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS)
            : 0;
    }

    len = r->method_name.len + 1 + r->uri.len + 1 + ifm.len + 1 + blen;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    in.data = p;
    p = ngx_sprintf(p, "%V %V\n%V\n", &r->method_name, &r->uri, &ifm);

    if (ctx->idem_body.len) {
        p = ngx_cpymem(p, ctx->idem_body.data, blen);

    } else if (blen) {
        if (json_dumpb(ctx->body, (char *) p, blen,
                       JSON_COMPACT | JSON_SORT_KEYS)
            != blen)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p += blen;
    }

    in.len = p - in.data;

    if (ngx_http_taskmgr_sha256_hex(r->pool, &in, &fp) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_BEGIN,
                                   ngx_http_taskmgr_idem_begun);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->idem_key);
    ngx_http_taskmgr_pg_param(q, &fp);

    return ngx_http_taskmgr_api_submit(r, q);

invalid:

    return ngx_http_taskmgr_send_problem(r, NGX_HTTP_BAD_REQUEST,
                                         "validation_failed",
                                         "Idempotency-Key must be 1 to 255 "
                                         "printable ASCII characters");
}


static void
ngx_http_taskmgr_idem_begun(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_str_t                   outcome;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_api_ctx_t *ctx;
    ngx_http_taskmgr_handler_pt next;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    /* what runs once the claim is taken, or to replay */
    next = ctx->idem_next ? ctx->idem_next : ctx->route->handler;

    if (ngx_http_taskmgr_api_check(q, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (PQntuples(q->res) != 1 || PQnfields(q->res) != 3
        || ngx_http_taskmgr_pg_value(q, 0, &outcome) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "taskmgr: idem_begin answered an unexpected shape");
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    if (outcome.len == 2 && ngx_strncmp(outcome.data, "go", 2) == 0) {
        if (ngx_http_taskmgr_pg_value(q, 1, &ctx->idem_token) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_taskmgr_idem_step_done(r, ctx, next(r, ctx));
        return;
    }

    if (outcome.len == 6 && ngx_strncmp(outcome.data, "replay", 6) == 0) {
        if (ngx_http_taskmgr_pg_value(q, 2, &ctx->idem_payload) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ctx->idem_replay = 1;

        rc = next(r, ctx);

        if (rc != NGX_DONE) {
            ngx_http_taskmgr_api_finish(r, rc);
        }

        return;
    }

    if (outcome.len == 4 && ngx_strncmp(outcome.data, "busy", 4) == 0) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_CONFLICT, "conflict",
                                          "a request with this "
                                          "Idempotency-Key is still in "
                                          "progress"));
        return;
    }

    ngx_http_taskmgr_api_finish(
        r,
        ngx_http_taskmgr_send_problem(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                      "validation_failed",
                                      "this Idempotency-Key was used "
                                      "with a different request"));
}


/* the statement of a write: its _IDEM twin while the request holds a key */
ngx_uint_t
ngx_http_taskmgr_idem_stmt(ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt)
{
    return ctx->idem_token.len ? stmt + 1 : stmt;
}


/* the twin's two last parameters: key and token */
void
ngx_http_taskmgr_idem_params(ngx_http_taskmgr_pg_query_t *q,
                             ngx_http_taskmgr_api_ctx_t  *ctx)
{
    if (ctx->idem_token.len) {
        ngx_http_taskmgr_pg_param(q, &ctx->idem_key);
        ngx_http_taskmgr_pg_param(q, &ctx->idem_token);
    }
}


/*
 * On a replay: the recorded row through stmt (tm_idem_task_row or
 * tm_idem_result) to handler, the route's own answer.  NGX_DECLINED when
 * this is no replay, else as ngx_http_taskmgr_api_submit().
 */
ngx_int_t
ngx_http_taskmgr_idem_replay(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
                             ngx_http_taskmgr_pg_handler_pt handler)
{
    ngx_http_taskmgr_pg_query_t *q;

    if (!ctx->idem_replay) {
        return NGX_DECLINED;
    }

    ctx->idem_answer = handler;

    q = ngx_http_taskmgr_pg_query_create(r, stmt,
                                         ngx_http_taskmgr_idem_replayed);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->idem_payload);

    return ngx_http_taskmgr_api_submit(r, q);
}


static void
ngx_http_taskmgr_idem_replayed(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_str_t                   yes = ngx_string("true");
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(q->request);

    if (q->rc == NGX_OK && q->res && q->sqlstate == NULL
        && ngx_http_taskmgr_add_header(q->request, "Idempotent-Replayed", &yes)
            != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(q->request, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->idem_answer(q);
}


/*
 * Called first by the answer of a write.  NGX_OK: answer as usual.
 * NGX_DONE: the write failed and its claim is being released; q's handler
 * is called again afterwards.
 */
ngx_int_t
ngx_http_taskmgr_idem_failed(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                    status;
    ngx_http_request_t          *r;
    ngx_http_taskmgr_api_ctx_t  *ctx;
    ngx_http_taskmgr_pg_query_t *aq;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ctx->idem_token.len == 0 || ctx->idem_replay) {
        return NGX_OK;
    }

    if (q->rc == NGX_OK && q->res && q->sqlstate == NULL) {
        if (PQntuples(q->res) < 1 || PQnfields(q->res) < 1) {
            return NGX_OK;
        }

        status = ngx_atoi((u_char *) PQgetvalue(q->res, 0, 0),
                          PQgetlength(q->res, 0, 0));

        if (status < NGX_HTTP_INTERNAL_SERVER_ERROR) {
            return NGX_OK;
        }
    }

    aq = ngx_http_taskmgr_idem_abort_query(r, ctx,
                                           ngx_http_taskmgr_idem_aborted);
    if (aq == NULL) {
        return NGX_OK;
    }

    aq->data = q;

    if (ngx_http_taskmgr_pg_submit(aq) != NGX_OK) {
        return NGX_OK;
    }

    return NGX_DONE;
}


static void
ngx_http_taskmgr_idem_aborted(ngx_http_taskmgr_pg_query_t *aq)
{
    ngx_http_taskmgr_pg_query_t *q;

    q = aq->data;

    if (aq->rc != NGX_OK || aq->sqlstate) {
        ngx_log_error(NGX_LOG_WARN, aq->request->connection->log, 0,
                      "taskmgr: an Idempotency-Key claim could not be "
                      "released; it is abandoned after 60 s");
    }

    q->handler(q);
}


/*
 * A step of a claimed write (the route's handler, or an upload's step after
 * its file is stored) returned rc: NGX_DONE, its query is on its way; else
 * it answered without a write (e.g. a 503), so the claim goes first.  The
 * answer may reach the client before the release, so a retry at once can
 * still see the claim in flight (409).  Without a claim, rc is answered.
 */
void
ngx_http_taskmgr_idem_step_done(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx, ngx_int_t rc)
{
    if (rc != NGX_DONE) {
        rc = ngx_http_taskmgr_idem_release(r, ctx, rc);
    }

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


/* the claim goes, then r is finalized with rc (NGX_DONE) or rc at once */
static ngx_int_t
ngx_http_taskmgr_idem_release(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx, ngx_int_t rc)
{
    ngx_http_taskmgr_pg_query_t *aq;

    aq = ngx_http_taskmgr_idem_abort_query(r, ctx,
                                           ngx_http_taskmgr_idem_released);
    if (aq == NULL) {
        return rc;
    }

    ctx->idem_rc = rc;

    if (ngx_http_taskmgr_pg_submit(aq) != NGX_OK) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_taskmgr_idem_released(ngx_http_taskmgr_pg_query_t *aq)
{
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(aq->request);

    ngx_http_taskmgr_api_finish(aq->request, ctx->idem_rc);
}


/* tm_idem_abort of the request's claim; the claim is no longer used */
static ngx_http_taskmgr_pg_query_t *
ngx_http_taskmgr_idem_abort_query(ngx_http_request_t            *r,
                                  ngx_http_taskmgr_api_ctx_t    *ctx,
                                  ngx_http_taskmgr_pg_handler_pt handler)
{
    ngx_str_t                    token;
    ngx_http_taskmgr_pg_query_t *aq;

    token = ctx->idem_token;
    ngx_str_null(&ctx->idem_token);

    if (token.len == 0) {
        return NULL;
    }

    aq = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_ABORT,
                                    handler);
    if (aq == NULL) {
        return NULL;
    }

    ngx_http_taskmgr_pg_param(aq, &ctx->idem_key);
    ngx_http_taskmgr_pg_param(aq, &token);

    return aq;
}
