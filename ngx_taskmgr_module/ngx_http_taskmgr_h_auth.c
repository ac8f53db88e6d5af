/*
 * Copyright (C) taskmgr developers
 *
 * /v1/auth/{register,login,refresh,logout,logout-all,sessions,password},
 * password reset, magic links and /v1/me.
 *
 * Passwords are hashed and checked in a thread pool; refresh tokens are
 * 256-bit random strings stored only as SHA-256 hashes.  Ended sessions are
 * written to Redis as revocation keys; failed logins are counted in Redis
 * per account and per client address.
 *
 * Password reset and magic link tokens are 256-bit random strings too,
 * stored as SHA-256 hashes; the email with the link goes to the outbox
 * table in the same transaction.
 */


#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_redis.h"
#include "ngx_http_taskmgr_jwt.h"


#define NGX_HTTP_TASKMGR_REFRESH_BYTES 32

/* revocation keys outlive the access tokens they revoke by this much */
#define NGX_HTTP_TASKMGR_REVOKE_LEEWAY 60

/* password block list: bounds of the file read at configuration time */
#define NGX_HTTP_TASKMGR_BLOCKLIST_MAX_SIZE  (16 * 1024 * 1024)
#define NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINES 1000000
#define NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINE  256

/* the email's local part is checked in passwords from this length on */
#define NGX_HTTP_TASKMGR_LOCAL_PART_MIN 3

#define NGX_HTTP_TASKMGR_LOCKED 423

/* password reset and magic link tokens: bytes, lifetimes, link paths */
#define NGX_HTTP_TASKMGR_LINK_TOKEN_BYTES 32
#define NGX_HTTP_TASKMGR_RESET_TTL        1800
#define NGX_HTTP_TASKMGR_MAGIC_TTL        900
#define NGX_HTTP_TASKMGR_RESET_PATH       "/reset-password?token="
#define NGX_HTTP_TASKMGR_MAGIC_PATH       "/magic-link?token="


/* clang-format off */
ngx_http_taskmgr_field_t  ngx_http_taskmgr_register_fields[] = {
    { "email", NGX_HTTP_TASKMGR_F_EMAIL, 1, 0, 3, 254, NULL, 0 },
    { "password", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 12, 256, NULL, 0 },
    { "name", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 200, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_login_fields[] = {
    { "email", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 254, NULL, 0 },
    { "password", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 256, NULL, 0 },
    { "totp_code", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 6, 16, NULL, 0 },
    { "device_name", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 1, 200, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_refresh_fields[] = {
    { "refresh_token", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 512, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_password_fields[] = {
    { "current_password", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 256, NULL, 0 },
    { "new_password", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 12, 256, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_email_fields[] = {
    { "email", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 254, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_password_reset_fields[] = {
    { "token", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 128, NULL, 0 },
    { "new_password", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 12, 256, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_magic_consume_fields[] = {
    { "token", NGX_HTTP_TASKMGR_F_STRING, 1, 0, 1, 128, NULL, 0 },
    { "totp_code", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 6, 16, NULL, 0 },
    { "device_name", NGX_HTTP_TASKMGR_F_STRING, 0, 1, 1, 200, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};

ngx_http_taskmgr_field_t  ngx_http_taskmgr_me_fields[] = {
    { "name", NGX_HTTP_TASKMGR_F_STRING, 0, 0, 1, 200, NULL, 0 },
    { "locale", NGX_HTTP_TASKMGR_F_STRING, 0, 0, 2, 35, NULL, 0 },
    { "timezone", NGX_HTTP_TASKMGR_F_STRING, 0, 0, 1, 64, NULL, 0 },
    { NULL, 0, 0, 0, 0, 0, NULL, 0 }
};
/* clang-format on */


/*
 * Revocation: KEYS[1] tmk:{<uid>}:rva; ARGV[1] lifetime (s), ARGV[2] "1"
 * to write rva, ARGV[3] its value (unix seconds), ARGV[4] session ids,
 * space separated: each gets tmk:{<uid>}:rv:<sid> and loses its read
 * cache marker tmk:{<uid>}:s:<sid>.  The keys built here carry the hash
 * tag of KEYS[1], so they live in the same cluster slot.
 */
static ngx_http_taskmgr_redis_script_t ngx_http_taskmgr_revoke_script = {
    ngx_string("local p = string.sub(KEYS[1], 1, -4)\n"
               "if ARGV[2] == '1' then\n"
               "  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[1])\n"
               "end\n"
               "local n = 0\n"
               "for sid in string.gmatch(ARGV[4], '%S+') do\n"
               "  redis.call('SET', p .. 'rv:' .. sid, '1', 'EX', ARGV[1])\n"
               "  redis.call('DEL', p .. 's:' .. sid)\n"
               "  n = n + 1\n"
               "end\n"
               "return n\n"),
    ""
};


/*
 * Login failures: KEYS[1] the account's counter tmk:{<email hash>}:lf (a
 * hash: f failures, lu locked until, ms), KEYS[2] the client address's
 * counter tmk:{ip:<addr>}:lf.  ARGV: 1 account threshold (0: off),
 * 2 window (ms), 3 first lock (ms), 4 longest lock (ms), 5 address
 * threshold (0: off), 6 address window (ms), 7 "try" or "ok".
 *
 * "try" answers {423, ms} while the account is locked, {429, ms} when the
 * address is over its threshold, else {0, 0} after counting the attempt as
 * a failure in advance (so a failed login needs no second call): from the
 * threshold on, each failure locks the account for the first lock, doubled
 * per further failure, at most the longest lock.  The account's failures
 * are forgotten a window after the last failure or lock.  "ok" (a
 * successful login) forgets the account's failures and takes the attempt
 * back from the address.
 */
static ngx_http_taskmgr_redis_script_t ngx_http_taskmgr_lockout_script = {
    ngx_string(
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / "
        "1000)\n"
        "local max, win = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
        "local lock, maxlock = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
        "local ipmax, ipwin = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
        "if ARGV[7] == 'ok' then\n"
        "  redis.call('DEL', KEYS[1])\n"
        "  if ipmax > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') > 0"
        " then\n"
        "    redis.call('DECR', KEYS[2])\n"
        "  end\n"
        "  return {0, 0}\n"
        "end\n"
        "if max > 0 then\n"
        "  local lu = tonumber(redis.call('HGET', KEYS[1], 'lu') or '0')\n"
        "  if lu > now then\n"
        "    return {423, lu - now}\n"
        "  end\n"
        "end\n"
        "if ipmax > 0 then\n"
        "  local n = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
        "  if n >= ipmax then\n"
        "    local ttl = redis.call('PTTL', KEYS[2])\n"
        "    if ttl < 0 then\n"
        "      redis.call('PEXPIRE', KEYS[2], ipwin)\n"
        "      ttl = ipwin\n"
        "    end\n"
        "    return {429, ttl}\n"
        "  end\n"
        "  if redis.call('INCR', KEYS[2]) == 1 then\n"
        "    redis.call('PEXPIRE', KEYS[2], ipwin)\n"
        "  end\n"
        "end\n"
        "if max > 0 then\n"
        "  local f = redis.call('HINCRBY', KEYS[1], 'f', 1)\n"
        "  local d = 0\n"
        "  if f >= max then\n"
        "    d = lock * 2 ^ math.min(f - max, 40)\n"
        "    if d > maxlock then\n"
        "      d = maxlock\n"
        "    end\n"
        "    redis.call('HSET', KEYS[1], 'lu', string.format('%d', now + d))\n"
        "  end\n"
        "  redis.call('PEXPIRE', KEYS[1], string.format('%d', win + d))\n"
        "end\n"
        "return {0, 0}\n"),
    ""
};


/* this worker's view of Redis for login failures, to log changes once */
static ngx_uint_t ngx_http_taskmgr_lockout_down;


static void ngx_http_taskmgr_register_hashed(ngx_http_request_t *r,
                                             ngx_int_t rc, ngx_str_t *hash);
static void ngx_http_taskmgr_login_looked_up(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_login_verified(ngx_http_request_t *r, ngx_int_t rc,
                                            ngx_str_t *hash);
static void ngx_http_taskmgr_tokens_done(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_tokens_respond(ngx_http_request_t        *r,
                                            ngx_http_taskmgr_result_t *res);
static void ngx_http_taskmgr_login_mfa_done(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_login_mfa_forgot(
    ngx_http_taskmgr_redis_cmd_t *cmd);
static ngx_int_t ngx_http_taskmgr_link_token_send(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx, const char *purpose,
    const char *path, time_t ttl);
static ngx_int_t ngx_http_taskmgr_link_token_lookup(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx, const char *purpose,
    ngx_http_taskmgr_pg_handler_pt handler);
static void ngx_http_taskmgr_reset_looked_up(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_reset_hashed(ngx_http_request_t *r, ngx_int_t rc,
                                          ngx_str_t *hash);
static void ngx_http_taskmgr_reset_done(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_magic_looked_up(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t  ngx_http_taskmgr_new_refresh(ngx_http_request_t         *r,
                                               ngx_http_taskmgr_api_ctx_t *ctx);
static void       ngx_http_taskmgr_session_params(ngx_http_request_t          *r,
                                                  ngx_http_taskmgr_api_ctx_t  *ctx,
                                                  ngx_http_taskmgr_pg_query_t *q);
static ngx_str_t *ngx_http_taskmgr_refresh_ttl(ngx_http_request_t *r);

static ngx_int_t ngx_http_taskmgr_password_rules(ngx_http_request_t *r,
                                                 ngx_str_t          *pw,
                                                 ngx_str_t          *email,
                                                 const char         *field,
                                                 ngx_int_t          *rc);
static ngx_int_t ngx_http_taskmgr_revoke(ngx_http_request_t *r, ngx_str_t *uid,
                                         ngx_str_t *sids, ngx_uint_t all,
                                         ngx_http_taskmgr_cache_done_pt done);
static void ngx_http_taskmgr_revoke_reply(ngx_http_taskmgr_redis_cmd_t *cmd);
static void ngx_http_taskmgr_revoked_respond(ngx_http_request_t *r,
                                             ngx_int_t           rc);
static void ngx_http_taskmgr_ended(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_lockout(ngx_http_request_t         *r,
                                          ngx_http_taskmgr_api_ctx_t *ctx,
                                          const char                 *mode,
                                          ngx_http_taskmgr_redis_handler_pt h);
static void ngx_http_taskmgr_lockout_reply(ngx_http_taskmgr_redis_cmd_t *cmd);
static void ngx_http_taskmgr_lockout_ignore(ngx_http_taskmgr_redis_cmd_t *cmd);
static void ngx_http_taskmgr_lockout_state(ngx_log_t *log, ngx_uint_t up,
                                           const char *reason);
static ngx_int_t ngx_http_taskmgr_login_lookup(ngx_http_request_t         *r,
                                               ngx_http_taskmgr_api_ctx_t *ctx);
static void ngx_http_taskmgr_password_looked_up(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_password_verified(ngx_http_request_t *r,
                                               ngx_int_t rc, ngx_str_t *hash);
static void ngx_http_taskmgr_password_hashed(ngx_http_request_t *r,
                                             ngx_int_t rc, ngx_str_t *hash);


/*
 * ctx->str[0]: the new refresh token, str[1]: its hash, str[2]: user id
 */


ngx_int_t
ngx_http_taskmgr_h_register(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t rc;
    ngx_str_t pw, email;

    (void) ngx_http_taskmgr_json_string(ctx->body, "password", &pw);
    (void) ngx_http_taskmgr_json_string(ctx->body, "email", &email);

    if (ngx_http_taskmgr_password_rules(r, &pw, &email, "password", &rc)
        != NGX_OK) {
        return rc;
    }

    rc = ngx_http_taskmgr_password_hash(r, &pw,
                                        ngx_http_taskmgr_register_hashed);
    if (rc != NGX_OK) {
        return ngx_http_taskmgr_password_refused(r, rc);
    }

    return NGX_DONE;
}


static void
ngx_http_taskmgr_register_hashed(ngx_http_request_t *r, ngx_int_t rc,
                                 ngx_str_t *hash)
{
    ngx_str_t                    email, name;
    ngx_http_taskmgr_api_ctx_t  *ctx;
    ngx_http_taskmgr_pg_query_t *q;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc != NGX_OK || hash == NULL
        || ngx_http_taskmgr_new_refresh(r, ctx) != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    (void) ngx_http_taskmgr_json_string(ctx->body, "email", &email);
    (void) ngx_http_taskmgr_json_string(ctx->body, "name", &name);

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_REGISTER,
                                         ngx_http_taskmgr_tokens_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &email);
        ngx_http_taskmgr_pg_param(q, hash);
        ngx_http_taskmgr_pg_param(q, &name);
        ngx_http_taskmgr_session_params(r, ctx, q);
        ngx_http_taskmgr_api_audit_params(r, q);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


/*
 * Login: the failure counters first (one script call), then the account's
 * hash, the password check in the thread pool and the new session.
 */
ngx_int_t
ngx_http_taskmgr_h_login(ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx)
{
    if (ngx_http_taskmgr_lockout(r, ctx, "try", ngx_http_taskmgr_lockout_reply)
        == NGX_OK)
    {
        return NGX_DONE;
    }

    return ngx_http_taskmgr_login_lookup(r, ctx);
}


static void
ngx_http_taskmgr_lockout_reply(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    u_char                     *p;
    ngx_int_t                   rc, status;
    long long                   ms;
    ngx_str_t                   retry;
    redisReply                 *rep;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = cmd->request;
    ctx = ngx_http_taskmgr_api_ctx(r);
    rep = cmd->reply;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2
        || rep->element[0]->type != REDIS_REPLY_INTEGER
        || rep->element[1]->type != REDIS_REPLY_INTEGER)
    {
        ngx_http_taskmgr_lockout_state(r->connection->log, 0,
                                       rep == NULL ? "no answer"
                                           : rep->type == REDIS_REPLY_ERROR
                                           ? "script error"
                                           : "unexpected reply");

        rc = ngx_http_taskmgr_login_lookup(r, ctx);
        if (rc != NGX_DONE) {
            ngx_http_taskmgr_api_finish(r, rc);
        }

        return;
    }

    ngx_http_taskmgr_lockout_state(r->connection->log, 1, NULL);

    status = (ngx_int_t) rep->element[0]->integer;
    ms = rep->element[1]->integer;

    if (status != NGX_HTTP_TASKMGR_LOCKED
        && status != NGX_HTTP_TOO_MANY_REQUESTS) {
        rc = ngx_http_taskmgr_login_lookup(r, ctx);
        if (rc != NGX_DONE) {
            ngx_http_taskmgr_api_finish(r, rc);
        }

        return;
    }

    /* Retry-After in whole seconds, rounded up */
    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    retry.data = p;
    retry.len = ngx_sprintf(p, "%L", ms > 0 ? (ms + 999) / 1000 : 1) - p;

    if (ngx_http_taskmgr_add_header(r, "Retry-After", &retry) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (status == NGX_HTTP_TASKMGR_LOCKED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "taskmgr: login refused: account locked");

        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(
                r, NGX_HTTP_TASKMGR_LOCKED, "account_locked",
                "too many failed logins: retry after the time in "
                "Retry-After"));
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "taskmgr: login refused: too many failures from %V",
                  &r->connection->addr_text);

    ngx_http_taskmgr_api_finish(
        r,
        ngx_http_taskmgr_send_problem(
            r, NGX_HTTP_TOO_MANY_REQUESTS, "rate_limited",
            "too many failed logins from this address: retry after the "
            "time in Retry-After"));
}


/*
 * Sends the failure script for this login (mode "try" or "ok").  NGX_OK:
 * the handler follows.  NGX_DECLINED: lockout is off here or Redis is not
 * usable now (logged once): go on without it.
 */
static ngx_int_t
ngx_http_taskmgr_lockout(ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx,
                         const char *mode, ngx_http_taskmgr_redis_handler_pt h)
{
    u_char                          *p;
    size_t                           len;
    int64_t                          v[6];
    ngx_str_t                        email, hash, argv[9];
    ngx_uint_t                       i;
    ngx_http_taskmgr_main_conf_t    *mcf;
    ngx_http_taskmgr_redis_cmd_t    *cmd;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);
    mcf = ngx_http_taskmgr_main_conf();

    if ((alcf->login_max_failures == 0 && alcf->login_ip_max_failures == 0)
        || mcf->redis_addr.len == 0)
    {
        return NGX_DECLINED;
    }

    /* the account: SHA-256 of the lower-cased email, so that the key does
     * not show the address */
    (void) ngx_http_taskmgr_json_string(ctx->body, "email", &email);

    p = ngx_pnalloc(r->pool, email.len);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    ngx_strlow(p, email.data, email.len);
    email.data = p;

    if (ngx_http_taskmgr_sha256_hex(r->pool, &email, &hash) != NGX_OK) {
        return NGX_DECLINED;
    }

    len = sizeof("tmk:{ip:}:lf") - 1 + r->connection->addr_text.len;

    p = ngx_pnalloc(r->pool, sizeof("tmk:{}:lf") - 1 + hash.len + len);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    argv[0].data = p;
    p = ngx_sprintf(p, "tmk:{%V}:lf", &hash);
    argv[0].len = p - argv[0].data;

    argv[1].data = p;
    p = ngx_sprintf(p, "tmk:{ip:%V}:lf", &r->connection->addr_text);
    argv[1].len = p - argv[1].data;

    /* thresholds and times (ms) for the script */
    v[0] = alcf->login_max_failures;
    v[1] = (int64_t) alcf->login_failure_window * 1000;
    v[2] = (int64_t) alcf->login_lock_time * 1000;
    v[3] = (int64_t) alcf->login_max_lock_time * 1000;
    v[4] = alcf->login_ip_max_failures;
    v[5] = (int64_t) alcf->login_ip_window * 1000;

    for (i = 0; i < 6; i++) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_DECLINED;
        }

        argv[i + 2].data = p;
        argv[i + 2].len = ngx_sprintf(p, "%L", v[i]) - p;
    }

    argv[8].data = (u_char *) mode;
    argv[8].len = ngx_strlen(mode);

    cmd = ngx_http_taskmgr_redis_cmd_create(r, h, NULL);
    if (cmd == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_taskmgr_redis_eval(cmd, &ngx_http_taskmgr_lockout_script, 2, 9,
                                    argv)
        != NGX_OK)
    {
        ngx_http_taskmgr_lockout_state(r->connection->log, 0, "not connected");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the answer to "ok" is not waited for */
static void
ngx_http_taskmgr_lockout_ignore(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    if (cmd->reply == NULL || cmd->reply->type == REDIS_REPLY_ERROR) {
        ngx_http_taskmgr_lockout_state(cmd->request->connection->log, 0,
                                       cmd->reply ? "script error"
                                                  : "no answer");
    }
}


/* logs this worker's changes of view once each, not a line per login */
static void
ngx_http_taskmgr_lockout_state(ngx_log_t *log, ngx_uint_t up,
                               const char *reason)
{
    if (up) {
        if (ngx_http_taskmgr_lockout_down) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "taskmgr: redis is available again, failed logins "
                          "are counted again");
        }

        ngx_http_taskmgr_lockout_down = 0;
        return;
    }

    if (!ngx_http_taskmgr_lockout_down) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "taskmgr: redis is unavailable (%s), failed logins are "
                      "not counted",
                      reason);
    }

    ngx_http_taskmgr_lockout_down = 1;
}


static ngx_int_t
ngx_http_taskmgr_login_lookup(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_str_t                    email;
    ngx_http_taskmgr_pg_query_t *q;

    (void) ngx_http_taskmgr_json_string(ctx->body, "email", &email);

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_LOGIN_LOOKUP,
                                         ngx_http_taskmgr_login_looked_up);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &email);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * Unknown accounts verify against a dummy hash: the answer and its timing
 * do not tell which emails exist.
 */
static void
ngx_http_taskmgr_login_looked_up(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_str_t                   pw, *encoded;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    encoded = NULL;

    if (res.status == NGX_HTTP_OK && res.body.len && res.meta.len) {
        /* "<user id>" or "<user id> <TOTP secret> <last step>" */
        if (ngx_http_taskmgr_api_split_meta(&res.meta, &ctx->str[2],
                                            &ctx->result.meta)
            != NGX_OK)
        {
            ctx->str[2] = res.meta;
            ngx_str_null(&ctx->result.meta);
        }

        ctx->str[3] = res.body;
        encoded = &ctx->str[3];
    }

    (void) ngx_http_taskmgr_json_string(ctx->body, "password", &pw);

    rc = ngx_http_taskmgr_password_verify(r, &pw, encoded,
                                          ngx_http_taskmgr_login_verified);
    if (rc != NGX_OK) {
        ngx_http_taskmgr_api_finish(r,
                                    ngx_http_taskmgr_password_refused(r, rc));
    }
}


static void
ngx_http_taskmgr_login_verified(ngx_http_request_t *r, ngx_int_t rc,
                                ngx_str_t *hash)
{
    ngx_str_t                   *step, *recovery;
    ngx_http_taskmgr_api_ctx_t  *ctx;
    ngx_http_taskmgr_pg_query_t *q;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc == NGX_DECLINED || (rc == NGX_OK && ctx->str[2].len == 0)) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_UNAUTHORIZED,
                                          "unauthorized",
                                          "invalid email or password"));
        return;
    }

    if (rc != NGX_OK || ngx_http_taskmgr_new_refresh(r, ctx) != NGX_OK) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    /*
     * TOTP on: the attempt stays counted as a failure (no "ok") until the
     * second factor is taken by PostgreSQL, so that a known password does
     * not reset the counter for guessing codes.
     */
    if (ctx->result.meta.len) {
        if (ngx_http_taskmgr_mfa_second_factor(
                r, ctx, &ctx->str[2], &ctx->result.meta, &step, &recovery, &rc)
            != NGX_OK)
        {
            ngx_http_taskmgr_api_finish(r, rc);
            return;
        }

        q = ngx_http_taskmgr_pg_query_create(
            r, NGX_HTTP_TASKMGR_SQL_SESSION_CREATE_MFA,
            ngx_http_taskmgr_login_mfa_done);
        if (q != NULL) {
            ngx_http_taskmgr_pg_param(q, &ctx->str[2]);
            ngx_http_taskmgr_pg_param(q, step);
            ngx_http_taskmgr_pg_param(q, recovery);
            ngx_http_taskmgr_session_params(r, ctx, q);
        }

        rc = ngx_http_taskmgr_api_submit(r, q);

        if (rc != NGX_DONE) {
            ngx_http_taskmgr_api_finish(r, rc);
        }

        return;
    }

    /* the account's failures are forgotten (not waited for: the session is
     * created meanwhile, and Redis answers first) */
    (void) ngx_http_taskmgr_lockout(r, ctx, "ok",
                                    ngx_http_taskmgr_lockout_ignore);

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_SESSION_CREATE,
                                         ngx_http_taskmgr_tokens_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->str[2]);
        ngx_http_taskmgr_session_params(r, ctx, q);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


ngx_int_t
ngx_http_taskmgr_h_refresh(ngx_http_request_t         *r,
                           ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_str_t                    old, old_hash;
    ngx_http_taskmgr_pg_query_t *q;

    (void) ngx_http_taskmgr_json_string(ctx->body, "refresh_token", &old);

    if (ngx_http_taskmgr_sha256_hex(r->pool, &old, &old_hash) != NGX_OK
        || ngx_http_taskmgr_new_refresh(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_REFRESH,
                                         ngx_http_taskmgr_tokens_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &old_hash);
        ngx_http_taskmgr_pg_param(q, &ctx->str[1]);
        ngx_http_taskmgr_pg_param(q, ngx_http_taskmgr_refresh_ttl(r));
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * A login with TOTP on: the failures are forgotten once PostgreSQL took the
 * code, before the answer (the request waits for Redis's reply, so that the
 * command is not dropped with the request).
 */
static void
ngx_http_taskmgr_login_mfa_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &ctx->result, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (ctx->result.status == NGX_HTTP_OK
        && ngx_http_taskmgr_lockout(r, ctx, "ok",
                                    ngx_http_taskmgr_login_mfa_forgot)
            == NGX_OK)
    {
        return;
    }

    ngx_http_taskmgr_tokens_respond(r, &ctx->result);
}


static void
ngx_http_taskmgr_login_mfa_forgot(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    ngx_http_taskmgr_lockout_ignore(cmd);

    ngx_http_taskmgr_tokens_respond(
        cmd->request, &ngx_http_taskmgr_api_ctx(cmd->request)->result);
}


/*
 * register, login, refresh and magic links end here: meta is "<user id>
 * <session id>", body the user (NULL for refresh).
 */
static void
ngx_http_taskmgr_tokens_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                 rc;
    ngx_http_taskmgr_result_t res;

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(q->request, rc);
        return;
    }

    ngx_http_taskmgr_tokens_respond(q->request, &res);
}


static void
ngx_http_taskmgr_tokens_respond(ngx_http_request_t        *r,
                                ngx_http_taskmgr_result_t *res_in)
{
    u_char                     *p;
    size_t                      len;
    time_t                      expires_in;
    ngx_str_t                   uid, sid, access, body;
    ngx_str_t                   cc = ngx_string("no-store");
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);
    res = *res_in;

    if (res.status == NGX_HTTP_UNAUTHORIZED && res.body.data != NULL
        && ngx_strcmp(res.body.data, "token_reuse") == 0
        && ngx_http_taskmgr_api_split_meta(&res.meta, &uid, &sid) == NGX_OK)
    {
        /* the family is revoked in PostgreSQL: its access tokens too */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "taskmgr: refresh token reuse, session %V revoked", &sid);

        ctx->result.status = NGX_HTTP_UNAUTHORIZED;
        ngx_str_set(&ctx->result.body, "unauthorized");
        ngx_str_set(&ctx->result.meta,
                    "refresh token reuse detected, session revoked");

        if (ngx_http_taskmgr_revoke(r, &uid, &sid, 0,
                                    ngx_http_taskmgr_revoked_respond)
            != NGX_OK)
        {
            ngx_http_taskmgr_revoked_respond(r, NGX_OK);
        }

        return;
    }

    if (res.status >= NGX_HTTP_BAD_REQUEST) {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
        return;
    }

    if (ngx_http_taskmgr_api_split_meta(&res.meta, &uid, &sid) != NGX_OK
        || ngx_http_taskmgr_jwt_issue(r, &uid, &sid, &access, &expires_in)
            != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    len = sizeof("{\"user\":,\"access_token\":\"\",\"refresh_token\":\"\","
                 "\"token_type\":\"Bearer\",\"expires_in\":}")
        - 1 + res.body.len + access.len + ctx->str[0].len + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    body.data = p;

    /* tokens are base64url and JWT characters: nothing to escape */
    *p++ = '{';

    if (res.body.len) {
        p = ngx_sprintf(p, "\"user\":%V,", &res.body);
    }

    p = ngx_sprintf(p,
                    "\"access_token\":\"%V\",\"refresh_token\":\"%V\","
                    "\"token_type\":\"Bearer\",\"expires_in\":%T}",
                    &access, &ctx->str[0], expires_in);

    body.len = p - body.data;

    if (ngx_http_taskmgr_add_header(r, "Cache-Control", &cc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_taskmgr_api_finish(
        r, ngx_http_taskmgr_send_json(r, res.status, &body));
}


ngx_int_t
ngx_http_taskmgr_h_logout(ngx_http_request_t         *r,
                          ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_LOGOUT,
                                   ngx_http_taskmgr_ended));
}


ngx_int_t
ngx_http_taskmgr_h_logout_all(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_LOGOUT_ALL,
                                   ngx_http_taskmgr_ended));
}


ngx_int_t
ngx_http_taskmgr_h_session_list(ngx_http_request_t         *r,
                                ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_SESSION_LIST,
                                   ngx_http_taskmgr_api_done));
}


ngx_int_t
ngx_http_taskmgr_h_session_delete(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_taskmgr_pg_query_t *q;

    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "no such session", &rc)
        != NGX_OK)
    {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_SESSION_REVOKE,
                                   ngx_http_taskmgr_ended);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * logout, logout-all, DELETE of a session and password change end here:
 * PostgreSQL has ended the sessions listed in meta (the truth: every API
 * statement checks the session); their revocation keys go to Redis before
 * the answer.  logout-all also writes the user's revoke-all time.
 */
static void
ngx_http_taskmgr_ended(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_uint_t                  all;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &ctx->result, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    all = (q->stmt == NGX_HTTP_TASKMGR_SQL_LOGOUT_ALL);

    if (ctx->result.status < NGX_HTTP_BAD_REQUEST
        && (all || ctx->result.meta.len)
        && ngx_http_taskmgr_revoke(r, &ctx->identity->sub, &ctx->result.meta,
                                   all, ngx_http_taskmgr_revoked_respond)
            == NGX_OK)
    {
        return;
    }

    ngx_http_taskmgr_revoked_respond(r, NGX_OK);
}


static void
ngx_http_taskmgr_revoked_respond(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ctx->result.status == NGX_HTTP_NO_CONTENT) {
        /* the sessions' ids are not part of the answer */
        ngx_str_null(&ctx->result.meta);
    }

    ngx_http_taskmgr_api_finish(r,
                                ngx_http_taskmgr_api_respond(r, &ctx->result));
}


/*
 * Writes the revocation keys of uid: rv:<sid> for every id in sids (space
 * separated), and with all the revoke-all time rva.  Their lifetime is the
 * access token lifetime of this location plus a minute.  NGX_OK: done
 * follows.  NGX_DECLINED: no Redis, or not usable now (logged): answer at
 * once, PostgreSQL refuses the sessions anyway.
 */
static ngx_int_t
ngx_http_taskmgr_revoke(ngx_http_request_t *r, ngx_str_t *uid, ngx_str_t *sids,
                        ngx_uint_t all, ngx_http_taskmgr_cache_done_pt done)
{
    u_char                           *p;
    ngx_str_t                         argv[5];
    ngx_http_taskmgr_main_conf_t     *mcf;
    ngx_http_taskmgr_redis_cmd_t     *cmd;
    ngx_http_taskmgr_auth_loc_conf_t *aucf;

    mcf = ngx_http_taskmgr_main_conf();

    if (mcf->redis_addr.len == 0) {
        return NGX_DECLINED;
    }

    aucf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_auth_module);

    p = ngx_pnalloc(r->pool,
                    sizeof("tmk:{}:rva") - 1 + uid->len + 2 * NGX_TIME_T_LEN);
    if (p == NULL) {
        goto failed;
    }

    argv[0].data = p;
    p = ngx_sprintf(p, "tmk:{%V}:rva", uid);
    argv[0].len = p - argv[0].data;

    argv[1].data = p;
    p = ngx_sprintf(p, "%T", aucf->ttl + NGX_HTTP_TASKMGR_REVOKE_LEEWAY);
    argv[1].len = p - argv[1].data;

    argv[2].data = (u_char *) (all ? "1" : "0");
    argv[2].len = 1;

    argv[3].data = p;
    p = ngx_sprintf(p, "%T", ngx_time());
    argv[3].len = p - argv[3].data;

    argv[4] = *sids;

    cmd = ngx_http_taskmgr_redis_cmd_create(r, ngx_http_taskmgr_revoke_reply,
                                            (void *) done);
    if (cmd == NULL) {
        goto failed;
    }

    if (ngx_http_taskmgr_redis_eval(cmd, &ngx_http_taskmgr_revoke_script, 1, 5,
                                    argv)
        == NGX_OK)
    {
        return NGX_OK;
    }

failed:

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "taskmgr: revocation of sessions of user %V not written to "
                  "redis (not connected); PostgreSQL refuses them",
                  uid);

    return NGX_DECLINED;
}


static void
ngx_http_taskmgr_revoke_reply(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    ngx_http_taskmgr_cache_done_pt done;

    done = (ngx_http_taskmgr_cache_done_pt) cmd->data;

    if (cmd->reply == NULL || cmd->reply->type != REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_WARN, cmd->request->connection->log, 0,
                      "taskmgr: revocation not written to redis (%s); "
                      "PostgreSQL refuses the sessions",
                      cmd->reply ? "error reply" : "no answer");

        done(cmd->request, NGX_ERROR);
        return;
    }

    done(cmd->request, NGX_OK);
}


/*
 * POST /v1/auth/password: look the hash and email up, check the new
 * password's rules, verify the current one, hash the new one (both in the
 * thread pool), then store it if the hash is still the one verified and
 * end every other session.  ctx->str[2]: the email, str[3]: the old hash.
 */
ngx_int_t
ngx_http_taskmgr_h_password(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_PASSWORD_LOOKUP,
                                   ngx_http_taskmgr_password_looked_up));
}


static void
ngx_http_taskmgr_password_looked_up(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_str_t                   pw;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_expect(q, &res, NGX_HTTP_OK) != NGX_OK) {
        return;
    }

    ctx->str[2] = res.meta;
    ctx->str[3] = res.body;

    (void) ngx_http_taskmgr_json_string(ctx->body, "new_password", &pw);

    if (ngx_http_taskmgr_password_rules(r, &pw, &ctx->str[2], "new_password",
                                        &rc)
        != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    (void) ngx_http_taskmgr_json_string(ctx->body, "current_password", &pw);

    rc = ngx_http_taskmgr_password_verify(r, &pw, &ctx->str[3],
                                          ngx_http_taskmgr_password_verified);
    if (rc != NGX_OK) {
        ngx_http_taskmgr_api_finish(r,
                                    ngx_http_taskmgr_password_refused(r, rc));
    }
}


static void
ngx_http_taskmgr_password_verified(ngx_http_request_t *r, ngx_int_t rc,
                                   ngx_str_t *hash)
{
    ngx_str_t                   pw, errors;
    ngx_http_taskmgr_api_ctx_t *ctx;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc == NGX_DECLINED) {
        ngx_str_set(&errors,
                    "[{\"field\":\"current_password\","
                    "\"message\":\"is not the current password\"}]");

        ngx_http_taskmgr_api_finish(r,
                                    ngx_http_taskmgr_send_problem_errors(
                                        r, NGX_HTTP_FORBIDDEN, "forbidden",
                                        "the current password is wrong",
                                        &errors));
        return;
    }

    (void) ngx_http_taskmgr_json_string(ctx->body, "new_password", &pw);

    if (rc == NGX_OK) {
        rc = ngx_http_taskmgr_password_hash(r, &pw,
                                            ngx_http_taskmgr_password_hashed);
    }

    if (rc != NGX_OK) {
        ngx_http_taskmgr_api_finish(r,
                                    ngx_http_taskmgr_password_refused(r, rc));
    }
}


static void
ngx_http_taskmgr_password_hashed(ngx_http_request_t *r, ngx_int_t rc,
                                 ngx_str_t *hash)
{
    ngx_http_taskmgr_api_ctx_t  *ctx;
    ngx_http_taskmgr_pg_query_t *q;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc != NGX_OK || hash == NULL) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_PASSWORD_SET,
                                   ngx_http_taskmgr_ended);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->str[3]);
        ngx_http_taskmgr_pg_param(q, hash);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


/*
 * POST /v1/auth/password/forgot and /v1/auth/magic-link {email}: always
 * 202, for unknown emails too.  A known email gets a new token (replacing
 * its previous one of this kind) and an outbox row with the link.
 */
ngx_int_t
ngx_http_taskmgr_h_password_forgot(ngx_http_request_t         *r,
                                   ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_link_token_send(r, ctx, "password_reset",
                                            NGX_HTTP_TASKMGR_RESET_PATH,
                                            NGX_HTTP_TASKMGR_RESET_TTL);
}


ngx_int_t
ngx_http_taskmgr_h_magic_link(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_link_token_send(r, ctx, "magic_link",
                                            NGX_HTTP_TASKMGR_MAGIC_PATH,
                                            NGX_HTTP_TASKMGR_MAGIC_TTL);
}


static ngx_int_t
ngx_http_taskmgr_link_token_send(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx,
                                 const char *purpose, const char *path,
                                 time_t ttl)
{
    size_t                       len;
    ngx_str_t                    email, token, hash, link, kind, secs;
    ngx_http_taskmgr_pg_query_t *q;

    (void) ngx_http_taskmgr_json_string(ctx->body, "email", &email);

    if (ngx_http_taskmgr_random_token(r->pool,
                                      NGX_HTTP_TASKMGR_LINK_TOKEN_BYTES, &token)
            != NGX_OK
        || ngx_http_taskmgr_sha256_hex(r->pool, &token, &hash) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(path);

    link.data = ngx_pnalloc(r->pool, len + token.len + NGX_TIME_T_LEN);
    if (link.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    link.len = ngx_sprintf(link.data, "%s%V", path, &token) - link.data;

    secs.data = link.data + link.len;
    secs.len = ngx_sprintf(secs.data, "%T", ttl) - secs.data;

    kind.data = (u_char *) purpose;
    kind.len = ngx_strlen(purpose);

    q = ngx_http_taskmgr_pg_query_create(
        r, NGX_HTTP_TASKMGR_SQL_AUTH_TOKEN_SEND, ngx_http_taskmgr_api_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &email);
        ngx_http_taskmgr_pg_param(q, &kind);
        ngx_http_taskmgr_pg_param(q, &hash);
        ngx_http_taskmgr_pg_param(q, &link);
        ngx_http_taskmgr_pg_param(q, &secs);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/* the body's token: its hash goes to ctx->str[3], then the lookup */
static ngx_int_t
ngx_http_taskmgr_link_token_lookup(ngx_http_request_t            *r,
                                   ngx_http_taskmgr_api_ctx_t    *ctx,
                                   const char                    *purpose,
                                   ngx_http_taskmgr_pg_handler_pt handler)
{
    ngx_str_t                    token, kind;
    ngx_http_taskmgr_pg_query_t *q;

    (void) ngx_http_taskmgr_json_string(ctx->body, "token", &token);

    if (ngx_http_taskmgr_sha256_hex(r->pool, &token, &ctx->str[3]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    kind.data = (u_char *) purpose;
    kind.len = ngx_strlen(purpose);

    q = ngx_http_taskmgr_pg_query_create(
        r, NGX_HTTP_TASKMGR_SQL_AUTH_TOKEN_LOOKUP, handler);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->str[3]);
        ngx_http_taskmgr_pg_param(q, &kind);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


/*
 * POST /v1/auth/password/reset {token, new_password}: the token's account
 * (for the password rules), the new hash in the thread pool, then the token
 * is used up, the password set and every session ended (rva and rv keys
 * as logout-all).  A bad, used, replaced or expired token is 401.
 */
ngx_int_t
ngx_http_taskmgr_h_password_reset(ngx_http_request_t         *r,
                                  ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_link_token_lookup(r, ctx, "password_reset",
                                              ngx_http_taskmgr_reset_looked_up);
}


static void
ngx_http_taskmgr_reset_looked_up(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_str_t                   pw;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_expect(q, &res, NGX_HTTP_OK) != NGX_OK) {
        return;
    }

    (void) ngx_http_taskmgr_json_string(ctx->body, "new_password", &pw);

    if (ngx_http_taskmgr_password_rules(r, &pw, &res.body, "new_password", &rc)
        != NGX_OK)
    {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    rc = ngx_http_taskmgr_password_hash(r, &pw, ngx_http_taskmgr_reset_hashed);
    if (rc != NGX_OK) {
        ngx_http_taskmgr_api_finish(r,
                                    ngx_http_taskmgr_password_refused(r, rc));
    }
}


static void
ngx_http_taskmgr_reset_hashed(ngx_http_request_t *r, ngx_int_t rc,
                              ngx_str_t *hash)
{
    ngx_http_taskmgr_api_ctx_t  *ctx;
    ngx_http_taskmgr_pg_query_t *q;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (rc != NGX_OK || hash == NULL) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    q = ngx_http_taskmgr_pg_query_create(r, NGX_HTTP_TASKMGR_SQL_PASSWORD_RESET,
                                         ngx_http_taskmgr_reset_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->str[3]);
        ngx_http_taskmgr_pg_param(q, hash);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


/* meta: "<user id>" and the ended sessions' ids */
static void
ngx_http_taskmgr_reset_done(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_str_t                   uid, sids;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_result(q, &ctx->result, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (ctx->result.status == NGX_HTTP_NO_CONTENT && ctx->result.meta.len) {
        if (ngx_http_taskmgr_api_split_meta(&ctx->result.meta, &uid, &sids)
            != NGX_OK) {
            uid = ctx->result.meta;
            ngx_str_set(&sids, "");
        }

        if (ngx_http_taskmgr_revoke(r, &uid, &sids, 1,
                                    ngx_http_taskmgr_revoked_respond)
            == NGX_OK)
        {
            return;
        }
    }

    ngx_http_taskmgr_revoked_respond(r, NGX_OK);
}


/*
 * POST /v1/auth/magic-link/consume {token, totp_code?, device_name?}: a
 * new session, as a login; with TOTP on, the code is asked as at login
 * (the token stays usable until a session is made with it).
 */
ngx_int_t
ngx_http_taskmgr_h_magic_consume(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_link_token_lookup(r, ctx, "magic_link",
                                              ngx_http_taskmgr_magic_looked_up);
}


static void
ngx_http_taskmgr_magic_looked_up(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_str_t                   mfa, *step, *recovery;
    ngx_http_request_t         *r;
    ngx_http_taskmgr_result_t   res;
    ngx_http_taskmgr_api_ctx_t *ctx;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);

    if (ngx_http_taskmgr_api_expect(q, &res, NGX_HTTP_OK) != NGX_OK) {
        return;
    }

    step = NULL;
    recovery = NULL;

    if (ngx_http_taskmgr_api_split_meta(&res.meta, &ctx->str[2], &mfa)
        == NGX_OK) {
        if (ngx_http_taskmgr_mfa_second_factor(r, ctx, &ctx->str[2], &mfa,
                                               &step, &recovery, &rc)
            != NGX_OK)
        {
            ngx_http_taskmgr_api_finish(r, rc);
            return;
        }
    }

    if (ngx_http_taskmgr_new_refresh(r, ctx) != NGX_OK) {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", NULL));
        return;
    }

    q = ngx_http_taskmgr_pg_query_create(
        r, NGX_HTTP_TASKMGR_SQL_MAGIC_LINK_CONSUME,
        ngx_http_taskmgr_tokens_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->str[3]);
        ngx_http_taskmgr_pg_param(q, step);
        ngx_http_taskmgr_pg_param(q, recovery);
        ngx_http_taskmgr_session_params(r, ctx, q);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


ngx_int_t
ngx_http_taskmgr_h_me(ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_api_submit(
        r,
        ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_ME,
                                   ngx_http_taskmgr_api_done));
}


ngx_int_t
ngx_http_taskmgr_h_me_update(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_ME_UPDATE,
                                   ngx_http_taskmgr_api_done);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->body_json);
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


static ngx_int_t
ngx_http_taskmgr_new_refresh(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx)
{
    if (ngx_http_taskmgr_random_token(r->pool, NGX_HTTP_TASKMGR_REFRESH_BYTES,
                                      &ctx->str[0])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_sha256_hex(r->pool, &ctx->str[0], &ctx->str[1]);
}


/* refresh hash, device name, client address, user agent, lifetime */
static void
ngx_http_taskmgr_session_params(ngx_http_request_t          *r,
                                ngx_http_taskmgr_api_ctx_t  *ctx,
                                ngx_http_taskmgr_pg_query_t *q)
{
    ngx_str_t device;

    ngx_http_taskmgr_pg_param(q, &ctx->str[1]);

    if (ngx_http_taskmgr_json_string(ctx->body, "device_name", &device)
        != NGX_OK) {
        ngx_http_taskmgr_pg_param(q, NULL);

    } else {
        ngx_http_taskmgr_pg_param(q, &device);
    }

    ngx_http_taskmgr_pg_param(q, &r->connection->addr_text);
    ngx_http_taskmgr_pg_param(
        q, r->headers_in.user_agent ? &r->headers_in.user_agent->value : NULL);
    ngx_http_taskmgr_pg_param(q, ngx_http_taskmgr_refresh_ttl(r));
}


static ngx_str_t *
ngx_http_taskmgr_refresh_ttl(ngx_http_request_t *r)
{
    ngx_str_t                       *s;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

    s = ngx_palloc(r->pool, sizeof(ngx_str_t) + NGX_TIME_T_LEN);
    if (s == NULL) {
        return NULL;
    }

    s->data = (u_char *) (s + 1);
    s->len = ngx_sprintf(s->data, "%T", alcf->refresh_ttl) - s->data;

    return s;
}


/*
 * The rules of a new password beyond its length (checked by the field
 * table): it must not contain the local part of the account's email, and
 * must not be in the block list (case-insensitive).  NGX_OK, or NGX_DONE
 * with a 422 sent and *rc its finalize code.
 */
static ngx_int_t
ngx_http_taskmgr_password_rules(ngx_http_request_t *r, ngx_str_t *pw,
                                ngx_str_t *email, const char *field,
                                ngx_int_t *rc)
{
    u_char                          *lpw, *at;
    size_t                           n;
    ngx_str_t                        errors, local;
    const char                      *message;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

    lpw = ngx_pnalloc(r->pool, pw->len + 1);
    if (lpw == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    ngx_strlow(lpw, pw->data, pw->len);
    lpw[pw->len] = '\0';

    message = NULL;

    at = ngx_strlchr(email->data, email->data + email->len, '@');
    local.data = email->data;
    local.len = at ? (size_t) (at - email->data) : email->len;

    if (local.len >= NGX_HTTP_TASKMGR_LOCAL_PART_MIN && local.len <= pw->len) {
        for (n = 0; n + local.len <= pw->len; n++) {
            if (ngx_strncasecmp(lpw + n, local.data, local.len) == 0) {
                message = "must not contain the email address";
                break;
            }
        }
    }

    if (message == NULL && alcf->pw_blocklist
        && ngx_hash_find(alcf->pw_blocklist, ngx_hash_key(lpw, pw->len), lpw,
                         pw->len)
            != NULL)
    {
        message = "is too common: it is in a list of breached passwords";
    }

    ngx_explicit_memzero(lpw, pw->len);

    if (message == NULL) {
        return NGX_OK;
    }

    errors.data =
        ngx_pnalloc(r->pool,
                    sizeof("[{\"field\":\"\",\"message\":"
                           "\"\"}]")
                        - 1 + ngx_strlen(field) + ngx_strlen(message));
    if (errors.data == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    errors.len =
        ngx_sprintf(errors.data, "[{\"field\":\"%s\",\"message\":\"%s\"}]",
                    field, message)
        - errors.data;

    *rc = ngx_http_taskmgr_send_problem_errors(
        r, NGX_HTTP_UNPROCESSABLE_ENTITY, "validation_failed",
        "some fields are invalid", &errors);
    return NGX_DONE;
}


/*
 * taskmgr_password_blocklist <file> | off: one password a line, read at
 * configuration time into a hash of the lower-cased lines.  Empty lines
 * and lines starting with "#" are skipped, and so are lines longer than
 * NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINE bytes; the file must be at most
 * NGX_HTTP_TASKMGR_BLOCKLIST_MAX_SIZE bytes and
 * NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINES lines.
 */
char *
ngx_http_taskmgr_password_blocklist(ngx_conf_t *cf, ngx_command_t *cmd,
                                    void *conf)
{
    ngx_http_taskmgr_api_loc_conf_t *alcf = conf;

    u_char                *buf, *p, *end, *nl, *line;
    size_t                 len, size;
    ssize_t                n;
    ngx_fd_t               fd;
    ngx_str_t             *value, name, key;
    ngx_uint_t             lines;
    ngx_file_info_t        fi;
    ngx_hash_init_t        hinit;
    ngx_hash_keys_arrays_t ha;

    if (alcf->pw_blocklist != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        alcf->pw_blocklist = NULL;
        return NGX_CONF_OK;
    }

    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    buf = NULL;
    size = 0;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &name);
        goto failed;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_TASKMGR_BLOCKLIST_MAX_SIZE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "password block list \"%V\" is larger than %d "
                           "bytes",
                           &name, NGX_HTTP_TASKMGR_BLOCKLIST_MAX_SIZE);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    buf = ngx_alloc(size + 1, cf->log);
    if (buf == NULL) {
        goto failed;
    }

    len = 0;

    while (len < size) {
        n = ngx_read_fd(fd, buf + len, size - len);

        if (n == -1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               ngx_read_fd_n " \"%V\" failed", &name);
            goto failed;
        }

        if (n == 0) {
            break;
        }

        len += n;
    }

    (void) ngx_close_file(fd);
    fd = NGX_INVALID_FILE;

    ha.pool = cf->pool;
    ha.temp_pool = cf->temp_pool;

    if (ngx_hash_keys_array_init(&ha, NGX_HASH_LARGE) != NGX_OK) {
        goto failed;
    }

    p = buf;
    end = buf + len;
    lines = 0;

    while (p < end) {
        nl = ngx_strlchr(p, end, '\n');
        if (nl == NULL) {
            nl = end;
        }

        line = p;
        n = nl - p;
        p = nl + 1;

        if (++lines > NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINES) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "password block list \"%V\" has more than %d "
                               "lines",
                               &name, NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINES);
            goto failed;
        }

        if (n > 0 && line[n - 1] == '\r') {
            n--;
        }

        if (n == 0 || line[0] == '#' || n > NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINE)
        {
            continue;
        }

        key.data = ngx_pnalloc(cf->temp_pool, n);
        if (key.data == NULL) {
            goto failed;
        }

        ngx_strlow(key.data, line, n);
        key.len = n;

        /* NGX_BUSY: a duplicate */
        if (ngx_hash_add_key(&ha, &key, (void *) 1, NGX_HASH_READONLY_KEY)
            == NGX_ERROR) {
            goto failed;
        }
    }

    ngx_free(buf);
    buf = NULL;

    alcf->pw_blocklist = ngx_pcalloc(cf->pool, sizeof(ngx_hash_t));
    if (alcf->pw_blocklist == NULL) {
        return NGX_CONF_ERROR;
    }

    hinit.hash = alcf->pw_blocklist;
    hinit.key = ngx_hash_key;
    hinit.max_size = 4 * NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINES;
    hinit.bucket_size =
        ngx_align(NGX_HTTP_TASKMGR_BLOCKLIST_MAX_LINE + 2 * sizeof(void *),
                  ngx_cacheline_size);
    hinit.name = "taskmgr_password_blocklist";
    hinit.pool = cf->pool;
    hinit.temp_pool = cf->temp_pool;

    if (ngx_hash_init(&hinit, ha.keys.elts, ha.keys.nelts) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_DEBUG, cf, 0,
                       "password block list \"%V\": %ui passwords", &name,
                       ha.keys.nelts);

    return NGX_CONF_OK;

failed:

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
    }

    if (buf) {
        ngx_free(buf);
    }

    return NGX_CONF_ERROR;
}


char *
ngx_http_taskmgr_auth_api_merge(ngx_conf_t                      *cf,
                                ngx_http_taskmgr_api_loc_conf_t *prev,
                                ngx_http_taskmgr_api_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->pw_blocklist, prev->pw_blocklist, NULL);
    ngx_conf_merge_uint_value(conf->login_max_failures,
                              prev->login_max_failures, 5);
    ngx_conf_merge_sec_value(conf->login_failure_window,
                             prev->login_failure_window, 15 * 60);
    ngx_conf_merge_sec_value(conf->login_lock_time, prev->login_lock_time, 60);
    ngx_conf_merge_sec_value(conf->login_max_lock_time,
                             prev->login_max_lock_time, 3600);
    ngx_conf_merge_uint_value(conf->login_ip_max_failures,
                              prev->login_ip_max_failures, 50);
    ngx_conf_merge_sec_value(conf->login_ip_window, prev->login_ip_window,
                             15 * 60);

    if (conf->login_max_failures > 1000
        || conf->login_ip_max_failures > 1000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_login_max_failures must be at most 1000 "
                           "and taskmgr_login_ip_max_failures at most "
                           "1000000 (0: off)");
        return NGX_CONF_ERROR;
    }

    if (conf->login_failure_window < 1 || conf->login_failure_window > 86400
        || conf->login_ip_window < 1 || conf->login_ip_window > 86400
        || conf->login_lock_time < 1 || conf->login_lock_time > 86400
        || conf->login_max_lock_time < conf->login_lock_time
        || conf->login_max_lock_time > 7 * 86400)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_login_failure_window, "
                           "taskmgr_login_ip_window and "
                           "taskmgr_login_lock_time must be between 1s and "
                           "1d, taskmgr_login_max_lock_time between "
                           "taskmgr_login_lock_time and 7d");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* configuration time: the scripts' SHA1s */
ngx_int_t
ngx_http_taskmgr_auth_api_init(ngx_conf_t *cf)
{
    if (ngx_http_taskmgr_redis_script(&ngx_http_taskmgr_revoke_script) != NGX_OK
        || ngx_http_taskmgr_redis_script(&ngx_http_taskmgr_lockout_script)
            != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
