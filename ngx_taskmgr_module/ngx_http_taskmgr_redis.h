/*
 * Copyright (C) taskmgr developers
 *
 * Per-worker asynchronous Redis client: hiredis's async API on nginx
 * events, a few pipelined connections, reconnect with back-off, a timer per
 * command, and server-side scripts called by SHA (loaded again on
 * NOSCRIPT).
 */

#ifndef _NGX_HTTP_TASKMGR_REDIS_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_REDIS_H_INCLUDED_


#include "ngx_http_taskmgr.h"
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define NGX_HTTP_TASKMGR_REDIS_MAX_ARGS    256
#define NGX_HTTP_TASKMGR_REDIS_MAX_PENDING 1024 /* per connection */


typedef struct ngx_http_taskmgr_redis_s     ngx_http_taskmgr_redis_t;
typedef struct ngx_http_taskmgr_redis_cmd_s ngx_http_taskmgr_redis_cmd_t;

typedef void (*ngx_http_taskmgr_redis_handler_pt)(
    ngx_http_taskmgr_redis_cmd_t *cmd);


/* a Lua script, loaded by every connection on first use */
typedef struct {
    ngx_str_t source;
    u_char    sha1[41]; /* hex, set by ngx_http_taskmgr_redis_script() */
} ngx_http_taskmgr_redis_script_t;


/*
 * A command lives in the request pool (or, with request NULL, wherever its
 * owner keeps it: ngx_http_taskmgr_redis_cmd_init()).  Its handler is called exactly
 * once, from the event loop, never from inside the call that sent it.
 * reply is NULL when Redis is unavailable, timed out or the connection
 * broke (rc then says why); otherwise it may be a REDIS_REPLY_ERROR.  The
 * reply is freed when the handler returns: copy what you keep.
 */
struct ngx_http_taskmgr_redis_cmd_s {
    ngx_http_request_t               *request;
    void                             *data;
    ngx_http_taskmgr_redis_handler_pt handler;

    ngx_int_t   rc; /* NGX_OK, NGX_ERROR */
    redisReply *reply;

    /* private */
    ngx_event_t timer;
    void       *slot;
    unsigned    done : 1;
};


/* created in init_process from the core main conf; NULL when no
 * taskmgr_redis is configured */
ngx_http_taskmgr_redis_t *ngx_http_taskmgr_redis_create(
    ngx_cycle_t *cycle, ngx_http_taskmgr_main_conf_t *mcf);
void ngx_http_taskmgr_redis_destroy(ngx_http_taskmgr_redis_t *rd);


/* computes the script's SHA1 once (at configuration time) */
ngx_int_t ngx_http_taskmgr_redis_script(ngx_http_taskmgr_redis_script_t *s);

/*
 * Send a command (argv of argc strings) or a script (EVALSHA, falling back
 * to EVAL on NOSCRIPT).  NGX_OK: the handler will be called.
 * NGX_DECLINED: Redis is not configured or not reachable now (no connection
 * up, or every one holds NGX_HTTP_TASKMGR_REDIS_MAX_PENDING commands): the
 * caller takes its fallback path at once, the handler is not called.
 * NGX_ERROR (the handler is not called either): argc out of 1..MAX_ARGS
 * (0..MAX_ARGS for a script), nkeys > argc, a script without its SHA1,
 * cmd still in flight, or no memory.  The argv strings are copied before
 * the call returns; a cmd may be sent again once its handler ran.
 */
ngx_int_t ngx_http_taskmgr_redis_send(ngx_http_taskmgr_redis_cmd_t *cmd,
                                      int argc, ngx_str_t *argv);
ngx_int_t ngx_http_taskmgr_redis_eval(ngx_http_taskmgr_redis_cmd_t    *cmd,
                                      ngx_http_taskmgr_redis_script_t *script,
                                      int nkeys, int argc, ngx_str_t *argv);

/*
 * Goes up whenever a connection of this worker to Redis is lost: whatever
 * the worker learnt from Redis before may be gone with it (a restart).
 */
ngx_uint_t ngx_http_taskmgr_redis_epoch(void);

/* Redis can take a command now (a connection is up) */
ngx_uint_t ngx_http_taskmgr_redis_ready(void);

/*
 * Prepares a command that belongs to no request (the caller owns its
 * memory, keeps it until the handler ran, and may free it in the handler).
 */
void ngx_http_taskmgr_redis_cmd_init(ngx_http_taskmgr_redis_cmd_t     *cmd,
                                     ngx_http_taskmgr_redis_handler_pt handler,
                                     void                             *data);

/* allocates a command in r->pool with a request cleanup that detaches it */
ngx_http_taskmgr_redis_cmd_t *ngx_http_taskmgr_redis_cmd_create(
    ngx_http_request_t *r, ngx_http_taskmgr_redis_handler_pt handler,
    void *data);


/*
 * ngx_http_taskmgr_auth.c: the token revocation keys the rate limiter may
 * fetch in its script call for the access phase (0: none), and their
 * values once fetched.
 */
ngx_uint_t ngx_http_taskmgr_auth_prefetch_keys(ngx_http_request_t *r,
                                               ngx_str_t          *keys);
void       ngx_http_taskmgr_auth_prefetched(ngx_http_request_t *r,
                                            redisReply **values, size_t n);


#endif /* _NGX_HTTP_TASKMGR_REDIS_H_INCLUDED_ */
