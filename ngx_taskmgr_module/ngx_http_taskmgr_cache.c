/*
 * Copyright (C) taskmgr developers
 *
 * Keys (the braces are a Redis Cluster hash tag):
 *
 *   tmk:{<ws>}:gen                   the tenant's generation, up by writes
 *   tmk:{<ws>}:c:<gen>:<route>       "<etag>\n<link>\n<body>" of a read
 *   tmk:{<ws>}:l:<gen>:<route>       single-flight lock of a miss
 *   tmk:{<ws>}:m:<uid>               the user was a member a moment ago
 *   tmk:{<uid>}:s:<sid>              the session was live a moment ago
 *
 * A hit needs the entry, the member marker and (for tokens with a session)
 * the session marker.  The markers are written only after PostgreSQL
 * answered a read for that caller, and live a few seconds, so a hit never
 * serves a caller PostgreSQL would refuse for longer than that.  Logout
 * deletes the session marker at once.
 *
 * When the worker holds its own copy of the entry
 * (ngx_http_taskmgr_cache_local.c), a hit asks Redis only for the
 * generation and the markers (MGET and EXISTS, one round trip) and answers
 * from the copy if the generation is still the one it was read under.
 */


#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_redis.h"
#include "ngx_http_taskmgr_cache.h"


#define NGX_HTTP_TASKMGR_CACHE_LOCK_MS    "2000"
#define NGX_HTTP_TASKMGR_CACHE_MEMBER_S   "10"
#define NGX_HTTP_TASKMGR_CACHE_SESSION_MS "5000"
#define NGX_HTTP_TASKMGR_CACHE_WAITS      3
#define NGX_HTTP_TASKMGR_CACHE_WAIT_MS    15


/*
 * A generation that is not there (a new tenant, a flushed or restarted
 * Redis) starts at the current time in microseconds, so that no number is
 * ever used twice for a tenant: a copy of an entry can be trusted by its
 * generation alone.
 *
 * KEYS[1] generation, KEYS[2] member marker; ARGV[1] key prefix,
 * ARGV[2] route, ARGV[3] lock lifetime (ms).  Answers
 * {found, generation, value, flags}: flags 1 member, 2 lock taken.
 * The entry and lock keys are built here from the generation; they carry
 * the same hash tag as KEYS[1], so they live in the same cluster slot.
 */
static ngx_http_taskmgr_redis_script_t ngx_http_taskmgr_cache_script = {
    ngx_string(
        "local gen = redis.call('GET', KEYS[1])\n"
        "if not gen then\n"
        "  local t = redis.call('TIME')\n"
        "  gen = t[1] .. string.format('%06d', t[2])\n"
        "  redis.call('SET', KEYS[1], gen)\n"
        "end\n"
        "if redis.call('EXISTS', KEYS[2]) == 0 then\n"
        "  return {0, gen, '', 0}\n"
        "end\n"
        "local v = redis.call('GET', ARGV[1] .. 'c:' .. gen .. ':' .. "
        "ARGV[2])\n"
        "if v then\n"
        "  return {1, gen, v, 1}\n"
        "end\n"
        "if redis.call('SET', ARGV[1] .. 'l:' .. gen .. ':' .. ARGV[2], '1',\n"
        "              'NX', 'PX', ARGV[3]) then\n"
        "  return {0, gen, '', 3}\n"
        "end\n"
        "return {0, gen, '', 1}\n"),
    ""
};


/* a write: KEYS[1] the generation, up by one (see above when missing) */
static ngx_http_taskmgr_redis_script_t ngx_http_taskmgr_cache_bump_script = {
    ngx_string("local g = redis.call('INCR', KEYS[1])\n"
               "if g == 1 then\n"
               "  local t = redis.call('TIME')\n"
               "  redis.call('SET', KEYS[1], t[1] .. string.format('%06d', "
               "t[2]))\n"
               "end\n"
               "return 1\n"),
    ""
};


typedef struct {
    ngx_http_request_t       *request;
    ngx_http_taskmgr_cache_t *cache;
    ngx_event_t               timer;
    ngx_uint_t                waits;
} ngx_http_taskmgr_cache_wait_t;


static ngx_int_t ngx_http_taskmgr_cache_send_lookup(
    ngx_http_request_t *r, ngx_http_taskmgr_cache_t *cache);
static ngx_int_t ngx_http_taskmgr_cache_send_check(
    ngx_http_request_t *r, ngx_http_taskmgr_cache_t *cache);
static void ngx_http_taskmgr_cache_send_session(
    ngx_http_request_t *r, ngx_http_taskmgr_cache_t *cache);
static void ngx_http_taskmgr_cache_check_reply(
    ngx_http_taskmgr_redis_cmd_t *cmd);
static void ngx_http_taskmgr_cache_checked(ngx_http_request_t       *r,
                                           ngx_http_taskmgr_cache_t *cache);
static void ngx_http_taskmgr_cache_lookup_reply(
    ngx_http_taskmgr_redis_cmd_t *cmd);
static void ngx_http_taskmgr_cache_session_reply(
    ngx_http_taskmgr_redis_cmd_t *cmd);
static void ngx_http_taskmgr_cache_decide(ngx_http_request_t       *r,
                                          ngx_http_taskmgr_cache_t *cache);
static void ngx_http_taskmgr_cache_wait_handler(ngx_event_t *ev);
static void ngx_http_taskmgr_cache_wait_cleanup(void *data);
static void ngx_http_taskmgr_cache_ignore(ngx_http_taskmgr_redis_cmd_t *cmd);
static void ngx_http_taskmgr_cache_write_reply(
    ngx_http_taskmgr_redis_cmd_t *cmd);
static ngx_int_t ngx_http_taskmgr_cache_key(ngx_pool_t *pool, ngx_str_t *out,
                                            const char *fmt, ngx_str_t *a,
                                            ngx_str_t *b, ngx_str_t *c);
static ngx_int_t ngx_http_taskmgr_cache_write(
    ngx_http_request_t *r, ngx_http_taskmgr_redis_script_t *script,
    ngx_str_t *key, ngx_http_taskmgr_cache_done_pt done);
static ngx_int_t ngx_http_taskmgr_cache_fire(ngx_http_request_t *r, int argc,
                                             ngx_str_t *argv);
static ngx_int_t ngx_http_taskmgr_cache_copy(ngx_pool_t *pool,
                                             redisReply *reply, ngx_str_t *out);


ngx_int_t
ngx_http_taskmgr_cache_init(void)
{
    if (ngx_http_taskmgr_redis_script(&ngx_http_taskmgr_cache_script) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_redis_script(&ngx_http_taskmgr_cache_bump_script);
}


ngx_int_t
ngx_http_taskmgr_cache_lookup(ngx_http_request_t       *r,
                              ngx_http_taskmgr_cache_t *cache, ngx_str_t *ws,
                              ngx_str_t                     *route,
                              ngx_http_taskmgr_cache_done_pt done)
{
    ngx_int_t                        rc;
    ngx_http_taskmgr_identity_t     *id;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

    id = ngx_http_taskmgr_auth_identity(r);

    /* keys are built from the caller's id: a user id this service issued */
    if (!alcf->cache || id == NULL
        || ngx_http_taskmgr_is_uuid(&id->sub) != NGX_OK) {
        cache->state = NGX_HTTP_TASKMGR_CACHE_OFF;
        return NGX_DECLINED;
    }

    cache->state = NGX_HTTP_TASKMGR_CACHE_BYPASS;
    cache->ws = *ws;
    cache->route = *route;
    cache->done = done;

    if (ngx_http_taskmgr_cache_key(r->pool, &cache->lkey, "%V %V", ws, route,
                                   NULL)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    cache->local = ngx_http_taskmgr_cache_local_get(r, &cache->lkey);

    if (cache->local) {
        rc = ngx_http_taskmgr_cache_send_check(r, cache);

    } else {
        rc = ngx_http_taskmgr_cache_send_lookup(r, cache);
    }

    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    cache->state = NGX_HTTP_TASKMGR_CACHE_MISS;

    return NGX_OK;
}


/* the lookup script and, for a session token, the session marker: both in
 * flight at once (one round trip on a pipelined connection) */
static ngx_int_t
ngx_http_taskmgr_cache_send_lookup(ngx_http_request_t       *r,
                                   ngx_http_taskmgr_cache_t *cache)
{
    ngx_str_t                     argv[5];
    ngx_http_taskmgr_identity_t  *id;
    ngx_http_taskmgr_redis_cmd_t *cmd;

    id = ngx_http_taskmgr_auth_identity(r);
    if (id == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_taskmgr_cache_key(r->pool, &argv[0], "tmk:{%V}:gen",
                                   &cache->ws, NULL, NULL)
            != NGX_OK
        || ngx_http_taskmgr_cache_key(r->pool, &argv[1], "tmk:{%V}:m:%V",
                                      &cache->ws, &id->sub, NULL)
            != NGX_OK
        || ngx_http_taskmgr_cache_key(r->pool, &argv[2],
                                      "tmk:{%V}:", &cache->ws, NULL, NULL)
            != NGX_OK)
    {
        return NGX_ERROR;
    }

    argv[3] = cache->route;
    ngx_str_set(&argv[4], NGX_HTTP_TASKMGR_CACHE_LOCK_MS);

    cmd = ngx_http_taskmgr_redis_cmd_create(
        r, ngx_http_taskmgr_cache_lookup_reply, cache);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cache->found = 0;
    cache->member = 0;
    cache->locked = 0;
    cache->failed = 0;
    cache->session = (id->sid.len == 0 || id->revocation_checked);
    cache->pending = 0;

    if (ngx_http_taskmgr_redis_eval(cmd, &ngx_http_taskmgr_cache_script, 2, 5,
                                    argv)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    cache->pending++;

    ngx_http_taskmgr_cache_send_session(r, cache);

    return NGX_OK;
}


/*
 * The worker has a copy: the generation and the member marker (one MGET,
 * same hash slot) and the session marker, pipelined.
 */
static ngx_int_t
ngx_http_taskmgr_cache_send_check(ngx_http_request_t       *r,
                                  ngx_http_taskmgr_cache_t *cache)
{
    ngx_str_t                     argv[3];
    ngx_http_taskmgr_identity_t  *id;
    ngx_http_taskmgr_redis_cmd_t *cmd;

    id = ngx_http_taskmgr_auth_identity(r);
    if (id == NULL) {
        return NGX_DECLINED;
    }

    ngx_str_set(&argv[0], "MGET");

    if (ngx_http_taskmgr_cache_key(r->pool, &argv[1], "tmk:{%V}:gen",
                                   &cache->ws, NULL, NULL)
            != NGX_OK
        || ngx_http_taskmgr_cache_key(r->pool, &argv[2], "tmk:{%V}:m:%V",
                                      &cache->ws, &id->sub, NULL)
            != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmd = ngx_http_taskmgr_redis_cmd_create(
        r, ngx_http_taskmgr_cache_check_reply, cache);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cache->found = 0;
    cache->member = 0;
    cache->locked = 0;
    cache->failed = 0;
    cache->session = (id->sid.len == 0 || id->revocation_checked);
    cache->pending = 0;

    if (ngx_http_taskmgr_redis_send(cmd, 3, argv) != NGX_OK) {
        return NGX_DECLINED;
    }

    cache->pending++;

    ngx_http_taskmgr_cache_send_session(r, cache);

    return NGX_OK;
}


/* for a token with a session: is its marker there (in the same round trip) */
static void
ngx_http_taskmgr_cache_send_session(ngx_http_request_t       *r,
                                    ngx_http_taskmgr_cache_t *cache)
{
    ngx_str_t                     argv[2];
    ngx_http_taskmgr_identity_t  *id;
    ngx_http_taskmgr_redis_cmd_t *cmd;

    id = ngx_http_taskmgr_auth_identity(r);

    /*
     * The access phase already asked Redis whether the session is revoked
     * (everything that ends a session writes that down there): no need to
     * ask for the marker too.
     */
    if (id == NULL || id->sid.len == 0 || id->revocation_checked) {
        return;
    }

    ngx_str_set(&argv[0], "EXISTS");

    if (ngx_http_taskmgr_cache_key(r->pool, &argv[1], "tmk:{%V}:s:%V", &id->sub,
                                   &id->sid, NULL)
        != NGX_OK)
    {
        /* the first command is in flight: finish as a miss */
        cache->failed = 1;
        return;
    }

    cmd = ngx_http_taskmgr_redis_cmd_create(
        r, ngx_http_taskmgr_cache_session_reply, cache);
    if (cmd == NULL) {
        cache->failed = 1;
        return;
    }

    if (ngx_http_taskmgr_redis_send(cmd, 2, argv) == NGX_OK) {
        cache->pending++;

    } else {
        cache->failed = 1;
    }
}


static void
ngx_http_taskmgr_cache_check_reply(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    redisReply               *rep, *g;
    ngx_http_request_t       *r;
    ngx_http_taskmgr_cache_t *cache;

    r = cmd->request;
    cache = cmd->data;
    rep = cmd->reply;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        cache->failed = 1;
        goto done;
    }

    g = rep->element[0];

    if (g->type == REDIS_REPLY_STRING) {
        if (ngx_http_taskmgr_cache_copy(r->pool, g, &cache->gen) != NGX_OK) {
            cache->failed = 1;
            goto done;
        }

    } else if (g->type == REDIS_REPLY_NIL) {
        /* no copy is of this generation: the lookup script starts one */
        ngx_str_null(&cache->gen);

    } else {
        cache->failed = 1;
        goto done;
    }

    cache->member = (rep->element[1]->type == REDIS_REPLY_STRING);
    cache->found =
        (cache->gen.data != NULL && cache->gen.len == cache->local->gen.len
         && ngx_memcmp(cache->gen.data, cache->local->gen.data, cache->gen.len)
             == 0);

done:

    if (--cache->pending == 0) {
        ngx_http_taskmgr_cache_decide(r, cache);
    }
}


/* decide() for the check of a copy */
static void
ngx_http_taskmgr_cache_checked(ngx_http_request_t       *r,
                               ngx_http_taskmgr_cache_t *cache)
{
    ngx_http_taskmgr_cache_local_t *e;

    e = cache->local;
    cache->local = NULL;

    if (cache->failed) {
        cache->state = NGX_HTTP_TASKMGR_CACHE_BYPASS;
        cache->done(r, NGX_DECLINED);
        return;
    }

    if (!cache->found) {
        /* generations only go up: this copy is of no use any more */
        ngx_http_taskmgr_cache_local_drop(e);
    }

    if (cache->gen.data != NULL && (!cache->member || !cache->session)) {
        /* PostgreSQL decides, and its answer renews the markers */
        cache->state = NGX_HTTP_TASKMGR_CACHE_MISS;
        cache->done(r, NGX_DECLINED);
        return;
    }

    if (cache->found) {
        cache->etag = e->etag;
        cache->link = e->link;
        cache->body = e->body;
        cache->state = NGX_HTTP_TASKMGR_CACHE_HIT;
        cache->done(r, NGX_OK);
        return;
    }

    /*
     * The tenant wrote since the copy was made, or its generation is gone
     * (the script starts a new one): what does Redis hold now
     */
    if (ngx_http_taskmgr_cache_send_lookup(r, cache) != NGX_OK) {
        cache->state = NGX_HTTP_TASKMGR_CACHE_BYPASS;
        cache->done(r, NGX_DECLINED);
    }
}


static void
ngx_http_taskmgr_cache_lookup_reply(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    u_char                          *p, *nl, *last;
    ngx_str_t                        etag, link, body;
    redisReply                      *rep, *e;
    ngx_http_request_t              *r;
    ngx_http_taskmgr_cache_t        *cache;
    ngx_http_taskmgr_cache_local_t  *copy;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    r = cmd->request;
    cache = cmd->data;
    rep = cmd->reply;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4
        || rep->element[0]->type != REDIS_REPLY_INTEGER
        || rep->element[3]->type != REDIS_REPLY_INTEGER
        || ngx_http_taskmgr_cache_copy(r->pool, rep->element[1], &cache->gen)
            != NGX_OK)
    {
        if (rep && rep->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "taskmgr: cache lookup failed: %*s",
                          (size_t) rep->len, rep->str);
        }

        cache->failed = 1;
        goto done;
    }

    cache->member = (rep->element[3]->integer & 1) ? 1 : 0;
    cache->locked = (rep->element[3]->integer & 2) ? 1 : 0;

    e = rep->element[2];

    if (rep->element[0]->integer == 1 && e->type == REDIS_REPLY_STRING) {

        /* "<etag>\n<link>\n<body>", in the reply until we return */
        p = (u_char *) e->str;
        last = p + e->len;

        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            goto done;
        }

        etag.data = p;
        etag.len = nl - p;
        p = nl + 1;

        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            goto done;
        }

        link.data = p;
        link.len = nl - p;
        body.data = nl + 1;
        body.len = last - (nl + 1);

        alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

        copy = ngx_http_taskmgr_cache_local_put(
            r, &cache->lkey, &cache->gen, &etag, &link, &body, alcf->cache_ttl);
        if (copy) {
            cache->etag = copy->etag;
            cache->link = copy->link;
            cache->body = copy->body;

        } else {
            p = ngx_pnalloc(r->pool, e->len ? e->len : 1);
            if (p == NULL) {
                cache->failed = 1;
                goto done;
            }

            ngx_memcpy(p, e->str, e->len);

            cache->etag.data = p;
            cache->etag.len = etag.len;
            cache->link.data = p + (link.data - etag.data);
            cache->link.len = link.len;
            cache->body.data = p + (body.data - etag.data);
            cache->body.len = body.len;
        }

        cache->found = 1;
    }

done:

    if (--cache->pending == 0) {
        ngx_http_taskmgr_cache_decide(r, cache);
    }
}


static void
ngx_http_taskmgr_cache_session_reply(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    redisReply               *rep;
    ngx_http_taskmgr_cache_t *cache;

    cache = cmd->data;
    rep = cmd->reply;

    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        cache->failed = 1;

    } else {
        cache->session = (rep->integer == 1);
    }

    if (--cache->pending == 0) {
        ngx_http_taskmgr_cache_decide(cmd->request, cache);
    }
}


static void
ngx_http_taskmgr_cache_decide(ngx_http_request_t       *r,
                              ngx_http_taskmgr_cache_t *cache)
{
    ngx_http_cleanup_t            *cln;
    ngx_http_taskmgr_cache_wait_t *w;

    if (cache->local) {
        ngx_http_taskmgr_cache_checked(r, cache);
        return;
    }

    if (cache->failed) {
        cache->state = NGX_HTTP_TASKMGR_CACHE_BYPASS;
        cache->done(r, NGX_DECLINED);
        return;
    }

    if (cache->found && cache->member && cache->session) {
        cache->state = NGX_HTTP_TASKMGR_CACHE_HIT;
        cache->done(r, NGX_OK);
        return;
    }

    cache->state = NGX_HTTP_TASKMGR_CACHE_MISS;

    w = cache->wait;

    /*
     * Another request of a known member holds the lock: it is filling this
     * entry, wait a little for it (single flight) before reading through.
     */
    if (cache->found || !cache->member || !cache->session || cache->locked
        || (w && w->waits >= NGX_HTTP_TASKMGR_CACHE_WAITS))
    {
        cache->done(r, NGX_DECLINED);
        return;
    }

    if (w == NULL) {
        cln = ngx_http_cleanup_add(r, sizeof(ngx_http_taskmgr_cache_wait_t));
        if (cln == NULL) {
            cache->done(r, NGX_DECLINED);
            return;
        }

        w = cln->data;
        ngx_memzero(w, sizeof(ngx_http_taskmgr_cache_wait_t));

        w->request = r;
        w->cache = cache;
        w->timer.handler = ngx_http_taskmgr_cache_wait_handler;
        w->timer.data = w;
        w->timer.log = r->connection->log;

        cln->handler = ngx_http_taskmgr_cache_wait_cleanup;
        cache->wait = w;
    }

    w->waits++;
    ngx_add_timer(&w->timer, NGX_HTTP_TASKMGR_CACHE_WAIT_MS);
}


static void
ngx_http_taskmgr_cache_wait_handler(ngx_event_t *ev)
{
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_taskmgr_cache_wait_t *w;

    w = ev->data;
    r = w->request;
    c = r->connection;

    if (ngx_http_taskmgr_cache_send_lookup(r, w->cache) != NGX_OK) {
        w->cache->state = NGX_HTTP_TASKMGR_CACHE_BYPASS;
        w->cache->done(r, NGX_DECLINED);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_taskmgr_cache_wait_cleanup(void *data)
{
    ngx_http_taskmgr_cache_wait_t *w = data;

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
}


void
ngx_http_taskmgr_cache_store(ngx_http_request_t       *r,
                             ngx_http_taskmgr_cache_t *cache, ngx_str_t *etag,
                             ngx_str_t *link, ngx_str_t *body)
{
    u_char                          *p;
    ngx_str_t                        argv[5], value, ttl;
    ngx_http_taskmgr_identity_t     *id;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    if (cache->state != NGX_HTTP_TASKMGR_CACHE_MISS || cache->gen.data == NULL)
    {
        return;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);
    id = ngx_http_taskmgr_auth_identity(r);

    if (id == NULL) {
        return;
    }

    /* the markers: PostgreSQL just let this caller read this tenant */

    argv[0].data = (u_char *) "SET";
    argv[0].len = 3;
    argv[2].data = (u_char *) "1";
    argv[2].len = 1;
    argv[3].data = (u_char *) "EX";
    argv[3].len = 2;
    ngx_str_set(&argv[4], NGX_HTTP_TASKMGR_CACHE_MEMBER_S);

    if (ngx_http_taskmgr_cache_key(r->pool, &argv[1], "tmk:{%V}:m:%V",
                                   &cache->ws, &id->sub, NULL)
            != NGX_OK
        || ngx_http_taskmgr_cache_fire(r, 5, argv) != NGX_OK)
    {
        return;
    }

    if (id->sid.len) {
        argv[3].data = (u_char *) "PX";
        ngx_str_set(&argv[4], NGX_HTTP_TASKMGR_CACHE_SESSION_MS);

        if (ngx_http_taskmgr_cache_key(r->pool, &argv[1], "tmk:{%V}:s:%V",
                                       &id->sub, &id->sid, NULL)
                != NGX_OK
            || ngx_http_taskmgr_cache_fire(r, 5, argv) != NGX_OK)
        {
            return;
        }
    }

    if (etag->len + link->len + body->len + 2 > alcf->cache_max_entry_size) {
        return;
    }

    value.len = etag->len + 1 + link->len + 1 + body->len;
    value.data = ngx_pnalloc(r->pool, value.len);
    if (value.data == NULL) {
        return;
    }

    p = ngx_cpymem(value.data, etag->data, etag->len);
    *p++ = '\n';
    p = ngx_cpymem(p, link->data, link->len);
    *p++ = '\n';
    ngx_memcpy(p, body->data, body->len);

    ttl.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (ttl.data == NULL) {
        return;
    }

    ttl.len = ngx_sprintf(ttl.data, "%M", alcf->cache_ttl) - ttl.data;

    argv[2] = value;
    argv[3].data = (u_char *) "PX";
    argv[3].len = 2;
    argv[4] = ttl;

    if (ngx_http_taskmgr_cache_key(r->pool, &argv[1], "tmk:{%V}:c:%V:%V",
                                   &cache->ws, &cache->gen, &cache->route)
            != NGX_OK
        || ngx_http_taskmgr_cache_fire(r, 5, argv) != NGX_OK)
    {
        return;
    }

    (void) ngx_http_taskmgr_cache_local_put(r, &cache->lkey, &cache->gen, etag,
                                            link, body, alcf->cache_ttl);

    if (cache->locked) {
        argv[0].data = (u_char *) "DEL";
        argv[0].len = 3;

        if (ngx_http_taskmgr_cache_key(r->pool, &argv[1], "tmk:{%V}:l:%V:%V",
                                       &cache->ws, &cache->gen, &cache->route)
            == NGX_OK)
        {
            (void) ngx_http_taskmgr_cache_fire(r, 2, argv);
        }
    }
}


ngx_int_t
ngx_http_taskmgr_cache_bump(ngx_http_request_t *r, ngx_str_t *ws,
                            ngx_http_taskmgr_cache_done_pt done)
{
    ngx_str_t key;

    if (ngx_http_taskmgr_cache_key(r->pool, &key, "tmk:{%V}:gen", ws, NULL,
                                   NULL)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return ngx_http_taskmgr_cache_write(r, &ngx_http_taskmgr_cache_bump_script,
                                        &key, done);
}


ngx_int_t
ngx_http_taskmgr_cache_end_session(ngx_http_request_t *r, ngx_str_t *uid,
                                   ngx_str_t                     *sid,
                                   ngx_http_taskmgr_cache_done_pt done)
{
    ngx_str_t key;

    if (sid->len == 0
        || ngx_http_taskmgr_cache_key(r->pool, &key, "tmk:{%V}:s:%V", uid, sid,
                                      NULL)
            != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return ngx_http_taskmgr_cache_write(r, NULL, &key, done);
}


/* a write whose answer the request waits for: the script on the key, or
 * "DEL <key>" */
static ngx_int_t
ngx_http_taskmgr_cache_write(ngx_http_request_t              *r,
                             ngx_http_taskmgr_redis_script_t *script,
                             ngx_str_t                       *key,
                             ngx_http_taskmgr_cache_done_pt   done)
{
    ngx_int_t                        rc;
    ngx_str_t                        argv[2];
    ngx_http_taskmgr_redis_cmd_t    *cmd;
    ngx_http_taskmgr_api_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_api_module);

    if (!alcf->cache) {
        return NGX_DECLINED;
    }

    cmd = ngx_http_taskmgr_redis_cmd_create(
        r, ngx_http_taskmgr_cache_write_reply, (void *) done);
    if (cmd == NULL) {
        return NGX_DECLINED;
    }

    if (script) {
        rc = ngx_http_taskmgr_redis_eval(cmd, script, 1, 1, key);

    } else {
        ngx_str_set(&argv[0], "DEL");
        argv[1] = *key;
        rc = ngx_http_taskmgr_redis_send(cmd, 2, argv);
    }

    return rc == NGX_OK ? NGX_OK : NGX_DECLINED;
}


static void
ngx_http_taskmgr_cache_write_reply(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    ngx_int_t                      rc;
    ngx_http_taskmgr_cache_done_pt done;

    done = (ngx_http_taskmgr_cache_done_pt) cmd->data;

    rc = (cmd->reply && cmd->reply->type != REDIS_REPLY_ERROR) ? NGX_OK
                                                               : NGX_ERROR;

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, cmd->request->connection->log, 0,
                      "taskmgr: cache invalidation failed; cached reads "
                      "of this tenant may be stale until they expire");
    }

    done(cmd->request, rc);
}


ngx_int_t
ngx_http_taskmgr_cache_header(ngx_http_request_t       *r,
                              ngx_http_taskmgr_cache_t *cache)
{
    ngx_str_t v;

    switch (cache->state) {
    case NGX_HTTP_TASKMGR_CACHE_HIT:
        ngx_str_set(&v, "HIT");
        break;
    case NGX_HTTP_TASKMGR_CACHE_MISS:
        ngx_str_set(&v, "MISS");
        break;
    case NGX_HTTP_TASKMGR_CACHE_BYPASS:
        ngx_str_set(&v, "BYPASS");
        break;
    default:
        return NGX_OK;
    }

    return ngx_http_taskmgr_add_header(r, "X-Cache", &v);
}


static void
ngx_http_taskmgr_cache_ignore(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    if (cmd->reply && cmd->reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, cmd->request->connection->log, 0,
                      "taskmgr: cache write failed: %*s",
                      (size_t) cmd->reply->len, cmd->reply->str);
    }
}


/* a command whose answer nobody waits for */
static ngx_int_t
ngx_http_taskmgr_cache_fire(ngx_http_request_t *r, int argc, ngx_str_t *argv)
{
    ngx_http_taskmgr_redis_cmd_t *cmd;

    cmd = ngx_http_taskmgr_redis_cmd_create(r, ngx_http_taskmgr_cache_ignore,
                                            NULL);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_redis_send(cmd, argc, argv) == NGX_OK ? NGX_OK
                                                                  : NGX_ERROR;
}


/* fmt takes up to three %V */
static ngx_int_t
ngx_http_taskmgr_cache_key(ngx_pool_t *pool, ngx_str_t *out, const char *fmt,
                           ngx_str_t *a, ngx_str_t *b, ngx_str_t *c)
{
    size_t len;

    len = ngx_strlen(fmt) + (a ? a->len : 0) + (b ? b->len : 0)
        + (c ? c->len : 0);

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_snprintf(out->data, len, fmt, a, b, c) - out->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_cache_copy(ngx_pool_t *pool, redisReply *reply, ngx_str_t *out)
{
    if (reply->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    out->len = reply->len;
    out->data = ngx_pnalloc(pool, out->len ? out->len : 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, reply->str, reply->len);

    return NGX_OK;
}
