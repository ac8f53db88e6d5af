/*
 * Copyright (C) taskmgr developers
 *
 * Connection states: DOWN -> CONNECTING -> READY.  A new connection queues
 * its handshake (AUTH, SELECT, or a PING when neither is configured) ahead
 * of everything else and takes commands once every handshake reply came
 * back without error; the connect timer covers connect and handshake.  Any
 * failure goes back to DOWN and a reconnect timer with back-off.
 *
 * hiredis owns the socket: it is wrapped in an ngx_connection_t whose
 * events follow hiredis's addRead/delRead/addWrite/delWrite hooks
 * (level-triggered, so a read of at most 16 KiB per call loses nothing);
 * the cleanup hook forgets the ngx_connection_t (fd = -1, events deleted
 * with NGX_CLOSE_EVENT) and hiredis closes the socket itself.
 *
 * Every command gets a slot (ngx_alloc) as hiredis's privdata.  The slot
 * points at the command, or at NULL once the command timed out or its
 * request went away; hiredis calls back exactly once per slot (a NULL
 * reply when the connection is freed), and the slot is freed then.
 */


#include "ngx_http_taskmgr_redis.h"
#include <ngx_sha1.h>


#define NGX_HTTP_TASKMGR_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_TASKMGR_REDIS_BACKOFF_MAX  5000
#define NGX_HTTP_TASKMGR_REDIS_MAX_TIMEOUTS 3

/* EVALSHA <sha1> <nkeys> argv... */
#define NGX_HTTP_TASKMGR_REDIS_MAX_ARGV (NGX_HTTP_TASKMGR_REDIS_MAX_ARGS + 3)


typedef enum {
    NGX_HTTP_TASKMGR_REDIS_DOWN = 0,
    NGX_HTTP_TASKMGR_REDIS_CONNECTING,
    NGX_HTTP_TASKMGR_REDIS_READY
} ngx_http_taskmgr_redis_state_e;


typedef struct {
    ngx_http_taskmgr_redis_t      *rd;
    redisAsyncContext             *ac;
    ngx_connection_t              *c;
    ngx_http_taskmgr_redis_state_e state;
    ngx_event_t                    connect_timer;
    ngx_event_t                    reconnect;
    ngx_msec_t                     backoff;
    ngx_uint_t                     index;
    ngx_uint_t                     npending;   /* commands sent, not answered */
    ngx_uint_t                     nhandshake; /* handshake replies awaited */
    ngx_uint_t                     ntimeouts;  /* in a row, no reply between */
    unsigned                       flushing : 1; /* in redisAsyncHandleWrite */
} ngx_http_taskmgr_redis_conn_t;


struct ngx_http_taskmgr_redis_s {
    ngx_http_taskmgr_main_conf_t  *mcf;
    ngx_log_t                     *log;
    ngx_http_taskmgr_redis_conn_t *conns;
    ngx_uint_t                     nconns;
    ngx_uint_t                     nready;
    ngx_uint_t                     next; /* round robin */
    unsigned                       destroying : 1;
};


/* hiredis's privdata for one command (one allocation with its copies) */
typedef struct {
    ngx_http_taskmgr_redis_cmd_t  *cmd; /* NULL: nobody waits any more */
    ngx_http_taskmgr_redis_conn_t *conn;

    /* EVALSHA sent: on NOSCRIPT, EVAL <source> args[0..nargs-1] */
    ngx_http_taskmgr_redis_script_t *script;
    int                              nargs;
    ngx_str_t                       *args;
} ngx_http_taskmgr_redis_slot_t;


/* connections of this worker lost so far (see the header) */
static ngx_uint_t ngx_http_taskmgr_redis_epoch_n;


static void ngx_http_taskmgr_redis_connect(ngx_http_taskmgr_redis_conn_t *rc);
static ngx_int_t ngx_http_taskmgr_redis_handshake(
    ngx_http_taskmgr_redis_conn_t *rc);
static void      ngx_http_taskmgr_redis_reconnect_handler(ngx_event_t *ev);
static void      ngx_http_taskmgr_redis_connect_timeout(ngx_event_t *ev);
static ngx_int_t ngx_http_taskmgr_redis_bind(ngx_http_taskmgr_redis_conn_t *rc);
static void ngx_http_taskmgr_redis_unbind(ngx_http_taskmgr_redis_conn_t *rc);
static void ngx_http_taskmgr_redis_read_handler(ngx_event_t *ev);
static void ngx_http_taskmgr_redis_write_handler(ngx_event_t *ev);
static void ngx_http_taskmgr_redis_add_read(void *data);
static void ngx_http_taskmgr_redis_del_read(void *data);
static void ngx_http_taskmgr_redis_add_write(void *data);
static void ngx_http_taskmgr_redis_del_write(void *data);
static void ngx_http_taskmgr_redis_ev_cleanup(void *data);
static void ngx_http_taskmgr_redis_on_connect(const redisAsyncContext *ac,
                                              int                      status);
static void ngx_http_taskmgr_redis_on_disconnect(const redisAsyncContext *ac,
                                                 int status);
static void ngx_http_taskmgr_redis_handshake_reply(redisAsyncContext *ac,
                                                   void *r, void *privdata);
static void ngx_http_taskmgr_redis_set_ready(ngx_http_taskmgr_redis_conn_t *rc);
static void ngx_http_taskmgr_redis_lost(ngx_http_taskmgr_redis_conn_t *rc,
                                        const char                    *why);
static void ngx_http_taskmgr_redis_close(ngx_http_taskmgr_redis_conn_t *rc,
                                         const char                    *why);
static ngx_int_t ngx_http_taskmgr_redis_submit(
    ngx_http_taskmgr_redis_cmd_t *cmd, ngx_http_taskmgr_redis_slot_t *slot,
    int argc, const char **argv, size_t *lens);
static void ngx_http_taskmgr_redis_reply(redisAsyncContext *ac, void *r,
                                         void *privdata);
static void ngx_http_taskmgr_redis_complete(ngx_http_taskmgr_redis_cmd_t *cmd,
                                            ngx_int_t rc, redisReply *reply);
static void ngx_http_taskmgr_redis_timeout_handler(ngx_event_t *ev);
static void ngx_http_taskmgr_redis_cleanup(void *data);


static ngx_http_taskmgr_redis_t *
ngx_http_taskmgr_redis_get(void)
{
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = ngx_http_taskmgr_main_conf();

    return mcf ? mcf->redis : NULL;
}


ngx_http_taskmgr_redis_t *
ngx_http_taskmgr_redis_create(ngx_cycle_t                  *cycle,
                              ngx_http_taskmgr_main_conf_t *mcf)
{
    ngx_uint_t                     i;
    ngx_http_taskmgr_redis_t      *rd;
    ngx_http_taskmgr_redis_conn_t *rc;

    rd = ngx_pcalloc(cycle->pool, sizeof(ngx_http_taskmgr_redis_t));
    if (rd == NULL) {
        return NULL;
    }

    rd->nconns = mcf->redis_pool_size;

    rd->conns = ngx_pcalloc(cycle->pool, rd->nconns * sizeof(*rd->conns));
    if (rd->conns == NULL) {
        return NULL;
    }

    rd->mcf = mcf;
    rd->log = cycle->log;

    for (i = 0; i < rd->nconns; i++) {
        rc = &rd->conns[i];
        rc->rd = rd;
        rc->index = i;

        rc->reconnect.handler = ngx_http_taskmgr_redis_reconnect_handler;
        rc->reconnect.data = rc;
        rc->reconnect.log = cycle->log;
        rc->reconnect.cancelable = 1;

        rc->connect_timer.handler = ngx_http_taskmgr_redis_connect_timeout;
        rc->connect_timer.data = rc;
        rc->connect_timer.log = cycle->log;
        rc->connect_timer.cancelable = 1;
    }

    for (i = 0; i < rd->nconns; i++) {
        ngx_http_taskmgr_redis_connect(&rd->conns[i]);
    }

    return rd;
}


/*
 * exit_process: every connection is freed (hiredis calls back the pending
 * commands with a NULL reply and closes its socket)
 */
void
ngx_http_taskmgr_redis_destroy(ngx_http_taskmgr_redis_t *rd)
{
    ngx_uint_t                     i;
    ngx_http_taskmgr_redis_conn_t *rc;

    rd->destroying = 1;

    for (i = 0; i < rd->nconns; i++) {
        rc = &rd->conns[i];

        if (rc->reconnect.timer_set) {
            ngx_del_timer(&rc->reconnect);
        }

        ngx_http_taskmgr_redis_close(rc, NULL);
    }

    /* rd itself lives in the cycle pool */
}


ngx_int_t
ngx_http_taskmgr_redis_script(ngx_http_taskmgr_redis_script_t *s)
{
    u_char     digest[20];
    ngx_sha1_t sha1;

    if (s->source.len == 0) {
        return NGX_ERROR;
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, s->source.data, s->source.len);
    ngx_sha1_final(digest, &sha1);

    *ngx_hex_dump(s->sha1, digest, sizeof(digest)) = '\0';

    return NGX_OK;
}


/* ------------------------------------------------------ connections --- */


static ngx_uint_t
ngx_http_taskmgr_redis_stopping(ngx_http_taskmgr_redis_t *rd)
{
    return ngx_exiting || ngx_terminate || ngx_quit || rd->destroying;
}


/* the first failure after being up (or at start) is an error, retries are
 * noted at info level */
static ngx_uint_t
ngx_http_taskmgr_redis_fail_level(ngx_http_taskmgr_redis_conn_t *rc)
{
    return rc->backoff ? NGX_LOG_INFO : NGX_LOG_ERR;
}


static void
ngx_http_taskmgr_redis_schedule(ngx_http_taskmgr_redis_conn_t *rc)
{
    if (ngx_http_taskmgr_redis_stopping(rc->rd)) {
        return;
    }

    rc->backoff = rc->backoff
        ? ngx_min(rc->backoff * 2, NGX_HTTP_TASKMGR_REDIS_BACKOFF_MAX)
        : NGX_HTTP_TASKMGR_REDIS_BACKOFF_MIN;

    if (!rc->reconnect.timer_set) {
        ngx_add_timer(&rc->reconnect, rc->backoff);
    }
}


static void
ngx_http_taskmgr_redis_connect(ngx_http_taskmgr_redis_conn_t *rc)
{
    redisAsyncContext            *ac;
    ngx_http_taskmgr_redis_t     *rd;
    ngx_http_taskmgr_main_conf_t *mcf;

    rd = rc->rd;
    mcf = rd->mcf;

    if (ngx_http_taskmgr_redis_stopping(rd) || rc->ac) {
        return;
    }

    if (mcf->redis_unix) {
        ac = redisAsyncConnectUnix(mcf->redis_unix);

    } else {
        /* an IPv4 literal: getaddrinfo() does no lookup */
        ac = redisAsyncConnect(mcf->redis_ip, mcf->redis_port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "taskmgr: redis: redisAsyncConnect() failed");
        ngx_http_taskmgr_redis_schedule(rc);
        return;
    }

    if (ac->err) {
        ngx_log_error(ngx_http_taskmgr_redis_fail_level(rc), rd->log, 0,
                      "taskmgr: redis: connection #%ui to %V failed: %s",
                      rc->index, &mcf->redis_addr, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_taskmgr_redis_schedule(rc);
        return;
    }

    rc->ac = ac;
    rc->state = NGX_HTTP_TASKMGR_REDIS_CONNECTING;
    rc->npending = 0;
    rc->nhandshake = 0;
    rc->ntimeouts = 0;

    if (ngx_http_taskmgr_redis_bind(rc) != NGX_OK) {
        /* no hooks yet: hiredis only closes its socket */
        rc->ac = NULL;
        rc->state = NGX_HTTP_TASKMGR_REDIS_DOWN;
        redisAsyncFree(ac);
        ngx_http_taskmgr_redis_schedule(rc);
        return;
    }

    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_taskmgr_redis_add_read;
    ac->ev.delRead = ngx_http_taskmgr_redis_del_read;
    ac->ev.addWrite = ngx_http_taskmgr_redis_add_write;
    ac->ev.delWrite = ngx_http_taskmgr_redis_del_write;
    ac->ev.cleanup = ngx_http_taskmgr_redis_ev_cleanup;

    (void) redisAsyncSetConnectCallback(ac, ngx_http_taskmgr_redis_on_connect);
    (void) redisAsyncSetDisconnectCallback(
        ac, ngx_http_taskmgr_redis_on_disconnect);

    ngx_add_timer(&rc->connect_timer, mcf->redis_connect_timeout);

    if (ngx_http_taskmgr_redis_handshake(rc) != NGX_OK) {
        ngx_http_taskmgr_redis_close(rc, "queueing the handshake failed");
        return;
    }

    /* connect(2) is in progress: its end shows as writability */
    ngx_http_taskmgr_redis_add_write(rc);
}


/* AUTH and SELECT, or PING, queued before anything else */
static ngx_int_t
ngx_http_taskmgr_redis_handshake(ngx_http_taskmgr_redis_conn_t *rc)
{
    int                           argc;
    u_char                        db[NGX_INT_T_LEN];
    size_t                        lens[3];
    const char                   *argv[3];
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = rc->rd->mcf;

    if (mcf->redis_password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        lens[argc++] = 4;

        if (mcf->redis_user.len) {
            argv[argc] = (const char *) mcf->redis_user.data;
            lens[argc++] = mcf->redis_user.len;
        }

        argv[argc] = (const char *) mcf->redis_password.data;
        lens[argc++] = mcf->redis_password.len;

        if (redisAsyncCommandArgv(rc->ac,
                                  ngx_http_taskmgr_redis_handshake_reply, rc,
                                  argc, argv, lens)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rc->nhandshake++;
    }

    if (mcf->redis_database) {
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = (const char *) db;
        lens[1] = ngx_sprintf(db, "%ui", mcf->redis_database) - db;

        if (redisAsyncCommandArgv(rc->ac,
                                  ngx_http_taskmgr_redis_handshake_reply, rc, 2,
                                  argv, lens)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rc->nhandshake++;
    }

    if (rc->nhandshake == 0) {
        /* a server that accepts but never answers must not count as up */
        argv[0] = "PING";
        lens[0] = 4;

        if (redisAsyncCommandArgv(rc->ac,
                                  ngx_http_taskmgr_redis_handshake_reply, rc, 1,
                                  argv, lens)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rc->nhandshake++;
    }

    return NGX_OK;
}


static void
ngx_http_taskmgr_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_taskmgr_redis_conn_t *rc;

    rc = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "taskmgr: redis: reconnecting #%ui", rc->index);

    ngx_http_taskmgr_redis_connect(rc);
}


static void
ngx_http_taskmgr_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_taskmgr_redis_conn_t *rc;

    rc = ev->data;

    if (rc->state != NGX_HTTP_TASKMGR_REDIS_CONNECTING) {
        return;
    }

    ngx_http_taskmgr_redis_close(rc, "connect or handshake timed out");
}


static ngx_int_t
ngx_http_taskmgr_redis_bind(ngx_http_taskmgr_redis_conn_t *rc)
{
    ngx_log_t        *log;
    ngx_connection_t *c;

    log = rc->rd->log;

    c = ngx_get_connection(rc->ac->c.fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = rc;
    c->read->handler = ngx_http_taskmgr_redis_read_handler;
    c->write->handler = ngx_http_taskmgr_redis_write_handler;
    c->read->log = log;
    c->write->log = log;
    c->log = log;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    rc->c = c;

    return NGX_OK;
}


/* forget the nginx connection; hiredis owns and closes the socket */
static void
ngx_http_taskmgr_redis_unbind(ngx_http_taskmgr_redis_conn_t *rc)
{
    ngx_connection_t *c;

    c = rc->c;
    if (c == NULL) {
        return;
    }

    rc->c = NULL;

    /* hiredis closes the socket right after */
    ngx_http_taskmgr_release_connection(c);
}


static void
ngx_http_taskmgr_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t              *c;
    ngx_http_taskmgr_redis_conn_t *rc;

    c = ev->data;
    rc = c->data;

    if (rc->ac == NULL) {
        /* cannot happen: the context is freed before we return */
        ngx_http_taskmgr_redis_unbind(rc);
        return;
    }

    /* may free the context (and unbind c): nothing is touched after */
    redisAsyncHandleRead(rc->ac);
}


static void
ngx_http_taskmgr_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t              *c;
    ngx_http_taskmgr_redis_conn_t *rc;

    c = ev->data;
    rc = c->data;

    if (rc->ac == NULL) {
        ngx_http_taskmgr_redis_unbind(rc);
        return;
    }

    /* rc outlives the context: the flag is safe to clear afterwards */
    rc->flushing = 1;
    redisAsyncHandleWrite(rc->ac);
    rc->flushing = 0;
}


/* hiredis's event hooks: idempotent, no-ops once unbound */

static void
ngx_http_taskmgr_redis_add_read(void *data)
{
    ngx_http_taskmgr_redis_conn_t *rc = data;

    if (rc->c == NULL || rc->c->read->active) {
        return;
    }

    if (ngx_add_event(rc->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, rc->rd->log, 0,
                      "taskmgr: redis: adding a read event failed");
    }
}


static void
ngx_http_taskmgr_redis_del_read(void *data)
{
    ngx_http_taskmgr_redis_conn_t *rc = data;

    if (rc->c == NULL || !rc->c->read->active) {
        return;
    }

    (void) ngx_del_event(rc->c->read, NGX_READ_EVENT, 0);
}


static void
ngx_http_taskmgr_redis_add_write(void *data)
{
    ngx_http_taskmgr_redis_conn_t *rc = data;

    if (rc->c == NULL || rc->c->write->active) {
        return;
    }

    /*
     * A command was queued on a connected socket: write it at the end of
     * this turn of the event loop, together with every other command queued
     * meanwhile, without asking epoll first (a connected socket's buffer has
     * room almost always).  Only what a write leaves behind waits for a write
     * event.
     */
    if (!rc->flushing && rc->state == NGX_HTTP_TASKMGR_REDIS_READY) {
        if (!rc->c->write->posted) {
            ngx_post_event(rc->c->write, &ngx_posted_events);
        }

        return;
    }

    if (ngx_add_event(rc->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, rc->rd->log, 0,
                      "taskmgr: redis: adding a write event failed");
    }
}


static void
ngx_http_taskmgr_redis_del_write(void *data)
{
    ngx_http_taskmgr_redis_conn_t *rc = data;

    if (rc->c == NULL) {
        return;
    }

    if (rc->c->write->posted) {
        ngx_delete_posted_event(rc->c->write);
    }

    if (!rc->c->write->active) {
        return;
    }

    (void) ngx_del_event(rc->c->write, NGX_WRITE_EVENT, 0);
}


/*
 * hiredis frees the context (an error, EOF, or our redisAsyncFree()): may
 * be called more than once for the same context
 */
static void
ngx_http_taskmgr_redis_ev_cleanup(void *data)
{
    ngx_http_taskmgr_redis_conn_t *rc = data;

    ngx_http_taskmgr_redis_unbind(rc);
    ngx_http_taskmgr_redis_lost(rc, NULL);
}


static void
ngx_http_taskmgr_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_taskmgr_redis_conn_t *rc;

    rc = ac->data;

    if (rc == NULL || rc->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns */
        ngx_http_taskmgr_redis_lost(rc, NULL);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rc->rd->log, 0,
                   "taskmgr: redis: connected #%ui", rc->index);

    /* must not free the context here: hiredis goes on using it */
}


static void
ngx_http_taskmgr_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_taskmgr_redis_conn_t *rc;

    rc = ac->data;

    if (rc && rc->ac == ac) {
        ngx_http_taskmgr_redis_lost(rc, NULL);
    }
}


static void
ngx_http_taskmgr_redis_handshake_reply(redisAsyncContext *ac, void *r,
                                       void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_taskmgr_redis_conn_t *rc = privdata;

    if (rc->ac != ac) {
        /* the context is going away */
        return;
    }

    if (reply == NULL) {
        ngx_http_taskmgr_redis_lost(rc, NULL);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* inside a callback: hiredis frees the context when it returns;
         * hiredis NUL-terminates reply->str */
        ngx_http_taskmgr_redis_close(
            rc, reply->str ? reply->str : "handshake failed");
        return;
    }

    if (--rc->nhandshake == 0) {
        ngx_http_taskmgr_redis_set_ready(rc);
    }
}


static void
ngx_http_taskmgr_redis_set_ready(ngx_http_taskmgr_redis_conn_t *rc)
{
    ngx_http_taskmgr_redis_t *rd;

    rd = rc->rd;

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    rc->state = NGX_HTTP_TASKMGR_REDIS_READY;
    rc->backoff = 0;
    rc->ntimeouts = 0;

    if (rd->nready++ == 0) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0, "taskmgr: redis: up (%V)",
                      &rd->mcf->redis_addr);
    }
}


/*
 * The context is gone or going (hiredis frees it, or we are about to):
 * account for it once and schedule a reconnect.  Never frees the context.
 */
static void
ngx_http_taskmgr_redis_lost(ngx_http_taskmgr_redis_conn_t *rc, const char *why)
{
    redisAsyncContext        *ac;
    ngx_http_taskmgr_redis_t *rd;

    ac = rc->ac;
    if (ac == NULL) {
        return;
    }

    rd = rc->rd;
    rc->ac = NULL;
    ngx_http_taskmgr_redis_epoch_n++;

    if (why == NULL) {
        /* ac->err is copied from ac->c only after some callbacks */
        why = ac->c.err ? ac->c.errstr : "connection closed";
    }

    if (!rd->destroying) {
        ngx_log_error(ngx_http_taskmgr_redis_fail_level(rc), rd->log, 0,
                      "taskmgr: redis: connection #%ui to %V failed: %s",
                      rc->index, &rd->mcf->redis_addr, why);
    }

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (rc->state == NGX_HTTP_TASKMGR_REDIS_READY && --rd->nready == 0
        && !rd->destroying)
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0, "taskmgr: redis: down (%V): %s",
                      &rd->mcf->redis_addr, why);
    }

    rc->state = NGX_HTTP_TASKMGR_REDIS_DOWN;
    rc->nhandshake = 0;

    ngx_http_taskmgr_redis_schedule(rc);
}


/*
 * Drops a connection: its pending commands are called back with a NULL
 * reply (at once, or when the hiredis callback we are in returns).
 */
static void
ngx_http_taskmgr_redis_close(ngx_http_taskmgr_redis_conn_t *rc, const char *why)
{
    redisAsyncContext *ac;

    ac = rc->ac;
    if (ac == NULL) {
        return;
    }

    ngx_http_taskmgr_redis_lost(rc, why);

    redisAsyncFree(ac);
}


/* --------------------------------------------------------- commands --- */


ngx_http_taskmgr_redis_cmd_t *
ngx_http_taskmgr_redis_cmd_create(ngx_http_request_t               *r,
                                  ngx_http_taskmgr_redis_handler_pt handler,
                                  void                             *data)
{
    ngx_http_cleanup_t           *cln;
    ngx_http_taskmgr_redis_cmd_t *cmd;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NULL;
    }

    cmd = ngx_pcalloc(r->pool, sizeof(ngx_http_taskmgr_redis_cmd_t));
    if (cmd == NULL) {
        return NULL;
    }

    cmd->request = r;
    cmd->handler = handler;
    cmd->data = data;
    cmd->done = 1; /* until sent */

    cln->handler = ngx_http_taskmgr_redis_cleanup;
    cln->data = cmd;

    return cmd;
}


ngx_int_t
ngx_http_taskmgr_redis_send(ngx_http_taskmgr_redis_cmd_t *cmd, int argc,
                            ngx_str_t *argv)
{
    int                            i;
    size_t                         lens[NGX_HTTP_TASKMGR_REDIS_MAX_ARGV];
    const char                    *args[NGX_HTTP_TASKMGR_REDIS_MAX_ARGV];
    ngx_http_taskmgr_redis_t      *rd;
    ngx_http_taskmgr_redis_slot_t *slot;

    if (argc < 1 || argc > NGX_HTTP_TASKMGR_REDIS_MAX_ARGS || !cmd->done) {
        return NGX_ERROR;
    }

    rd = ngx_http_taskmgr_redis_get();
    if (rd == NULL || rd->nready == 0) {
        return NGX_DECLINED;
    }

    for (i = 0; i < argc; i++) {
        args[i] = (const char *) argv[i].data;
        lens[i] = argv[i].len;
    }

    slot = ngx_alloc(sizeof(ngx_http_taskmgr_redis_slot_t), rd->log);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(slot, sizeof(ngx_http_taskmgr_redis_slot_t));

    return ngx_http_taskmgr_redis_submit(cmd, slot, argc, args, lens);
}


ngx_int_t
ngx_http_taskmgr_redis_eval(ngx_http_taskmgr_redis_cmd_t    *cmd,
                            ngx_http_taskmgr_redis_script_t *script, int nkeys,
                            int argc, ngx_str_t *argv)
{
    int                            i;
    u_char                        *p;
    size_t                         size, lens[NGX_HTTP_TASKMGR_REDIS_MAX_ARGV];
    const char                    *args[NGX_HTTP_TASKMGR_REDIS_MAX_ARGV];
    ngx_http_taskmgr_redis_t      *rd;
    ngx_http_taskmgr_redis_slot_t *slot;

    if (argc < 0 || argc > NGX_HTTP_TASKMGR_REDIS_MAX_ARGS || nkeys < 0
        || nkeys > argc || script->sha1[0] == '\0' || !cmd->done)
    {
        return NGX_ERROR;
    }

    rd = ngx_http_taskmgr_redis_get();
    if (rd == NULL || rd->nready == 0) {
        return NGX_DECLINED;
    }

    /* the slot keeps nkeys and the arguments for an EVAL on NOSCRIPT */

    size = sizeof(ngx_http_taskmgr_redis_slot_t)
        + (argc + 1) * sizeof(ngx_str_t) + NGX_INT_T_LEN;

    for (i = 0; i < argc; i++) {
        size += argv[i].len;
    }

    slot = ngx_alloc(size, rd->log);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(slot, sizeof(ngx_http_taskmgr_redis_slot_t));

    slot->script = script;
    slot->nargs = argc + 1;
    slot->args = (ngx_str_t *) (slot + 1);

    p = (u_char *) (slot->args + argc + 1);

    slot->args[0].data = p;
    p = ngx_sprintf(p, "%d", nkeys);
    slot->args[0].len = p - slot->args[0].data;

    for (i = 0; i < argc; i++) {
        slot->args[i + 1].data = p;
        slot->args[i + 1].len = argv[i].len;
        p = ngx_cpymem(p, argv[i].data, argv[i].len);
    }

    args[0] = "EVALSHA";
    lens[0] = 7;
    args[1] = (const char *) script->sha1;
    lens[1] = 40;

    for (i = 0; i < slot->nargs; i++) {
        args[i + 2] = (const char *) slot->args[i].data;
        lens[i + 2] = slot->args[i].len;
    }

    return ngx_http_taskmgr_redis_submit(cmd, slot, slot->nargs + 2, args,
                                         lens);
}


/* round robin over ready connections with room; takes the slot */
static ngx_int_t
ngx_http_taskmgr_redis_submit(ngx_http_taskmgr_redis_cmd_t  *cmd,
                              ngx_http_taskmgr_redis_slot_t *slot, int argc,
                              const char **argv, size_t *lens)
{
    ngx_uint_t                     i, n;
    ngx_http_taskmgr_redis_t      *rd;
    ngx_http_taskmgr_redis_conn_t *rc;

    rd = ngx_http_taskmgr_redis_get();

    /*
     * A connection with a write already queued for this turn of the event
     * loop takes the command too: one write, one read, one wake-up of Redis
     * for all of them.  Otherwise round robin.
     */
    for (i = 0; i < rd->nconns; i++) {
        rc = &rd->conns[i];

        if (rc->state == NGX_HTTP_TASKMGR_REDIS_READY && rc->c
            && rc->c->write->posted
            && rc->npending < NGX_HTTP_TASKMGR_REDIS_MAX_PENDING)
        {
            rd->next = i;
            break;
        }
    }

    for (i = 0; i < rd->nconns; i++) {
        n = (rd->next + i) % rd->nconns;
        rc = &rd->conns[n];

        if (rc->state != NGX_HTTP_TASKMGR_REDIS_READY
            || rc->npending >= NGX_HTTP_TASKMGR_REDIS_MAX_PENDING)
        {
            continue;
        }

        slot->conn = rc;
        slot->cmd = cmd;

        if (redisAsyncCommandArgv(rc->ac, ngx_http_taskmgr_redis_reply, slot,
                                  argc, argv, lens)
            != REDIS_OK)
        {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "taskmgr: redis: redisAsyncCommandArgv() failed "
                          "on connection #%ui",
                          rc->index);
            continue;
        }

        rc->npending++;

        if (!rc->c->write->posted) {
            rd->next = (n + 1) % rd->nconns;
        }

        cmd->done = 0;
        cmd->rc = NGX_OK;
        cmd->reply = NULL;
        cmd->slot = slot;

        cmd->timer.handler = ngx_http_taskmgr_redis_timeout_handler;
        cmd->timer.data = cmd;
        cmd->timer.log = cmd->request ? cmd->request->connection->log : rd->log;

        ngx_add_timer(&cmd->timer, rd->mcf->redis_timeout);

        return NGX_OK;
    }

    ngx_free(slot);

    return NGX_DECLINED;
}


/* hiredis's callback: exactly once per slot */
static void
ngx_http_taskmgr_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    int                            i;
    size_t                         lens[NGX_HTTP_TASKMGR_REDIS_MAX_ARGV];
    redisReply                    *reply = r;
    const char                    *argv[NGX_HTTP_TASKMGR_REDIS_MAX_ARGV];
    ngx_http_taskmgr_redis_cmd_t  *cmd;
    ngx_http_taskmgr_redis_conn_t *rc;
    ngx_http_taskmgr_redis_slot_t *slot = privdata;

    rc = slot->conn;
    cmd = slot->cmd;

    rc->npending--;

    if (reply == NULL) {
        /* the context is being freed: stop dispatching to it now */
        if (rc->ac == ac) {
            ngx_http_taskmgr_redis_lost(rc, NULL);
        }

    } else {
        rc->ntimeouts = 0;
    }

    if (cmd && reply && slot->script && reply->type == REDIS_REPLY_ERROR
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
        && rc->ac == ac)
    {
        /* the server does not know the script (yet): send its source */

        argv[0] = "EVAL";
        lens[0] = 4;
        argv[1] = (const char *) slot->script->source.data;
        lens[1] = slot->script->source.len;

        for (i = 0; i < slot->nargs; i++) {
            argv[i + 2] = (const char *) slot->args[i].data;
            lens[i + 2] = slot->args[i].len;
        }

        if (redisAsyncCommandArgv(ac, ngx_http_taskmgr_redis_reply, slot,
                                  slot->nargs + 2, argv, lens)
            == REDIS_OK)
        {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rc->rd->log, 0,
                           "taskmgr: redis: NOSCRIPT, sending EVAL");
            slot->script = NULL;
            rc->npending++;
            return;
        }
    }

    ngx_free(slot);

    if (cmd) {
        cmd->slot = NULL;
        ngx_http_taskmgr_redis_complete(cmd, reply ? NGX_OK : NGX_ERROR, reply);
    }
}


/*
 * Hands the outcome to the command's handler.  The handler may finalize
 * the request, which frees cmd: nothing touches cmd afterwards.
 */
static void
ngx_http_taskmgr_redis_complete(ngx_http_taskmgr_redis_cmd_t *cmd, ngx_int_t rc,
                                redisReply *reply)
{
    ngx_connection_t *c;

    if (cmd->done) {
        return;
    }

    cmd->done = 1;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    cmd->rc = rc;
    cmd->reply = reply;

    c = cmd->request ? cmd->request->connection : NULL;

    cmd->handler(cmd);

    if (c) {
        ngx_http_run_posted_requests(c);
    }
}


static void
ngx_http_taskmgr_redis_timeout_handler(ngx_event_t *ev)
{
    ngx_http_taskmgr_redis_cmd_t  *cmd;
    ngx_http_taskmgr_redis_conn_t *rc;
    ngx_http_taskmgr_redis_slot_t *slot;

    cmd = ev->data;
    slot = cmd->slot;
    rc = NULL;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0, "taskmgr: redis: command timed out");

    if (slot) {
        /* hiredis still holds the slot and frees it when it calls back */
        rc = slot->conn;
        slot->cmd = NULL;
        cmd->slot = NULL;
    }

    ngx_http_taskmgr_redis_complete(cmd, NGX_ERROR, NULL);

    /* cmd may be gone now */

    if (rc && rc->ac && ++rc->ntimeouts >= NGX_HTTP_TASKMGR_REDIS_MAX_TIMEOUTS)
    {
        ngx_http_taskmgr_redis_close(rc, "commands time out");
    }
}


/* the request is going away: a late reply must not touch it */
static void
ngx_http_taskmgr_redis_cleanup(void *data)
{
    ngx_http_taskmgr_redis_cmd_t *cmd = data;

    ngx_http_taskmgr_redis_slot_t *slot;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    slot = cmd->slot;

    if (slot) {
        slot->cmd = NULL;
        cmd->slot = NULL;
    }

    cmd->done = 1;
}


ngx_uint_t
ngx_http_taskmgr_redis_epoch(void)
{
    return ngx_http_taskmgr_redis_epoch_n;
}


ngx_uint_t
ngx_http_taskmgr_redis_ready(void)
{
    ngx_http_taskmgr_redis_t *rd;

    rd = ngx_http_taskmgr_redis_get();

    return rd != NULL && rd->nready > 0;
}


void
ngx_http_taskmgr_redis_cmd_init(ngx_http_taskmgr_redis_cmd_t     *cmd,
                                ngx_http_taskmgr_redis_handler_pt handler,
                                void                             *data)
{
    ngx_memzero(cmd, sizeof(ngx_http_taskmgr_redis_cmd_t));

    cmd->handler = handler;
    cmd->data = data;
    cmd->done = 1; /* until sent */
}
