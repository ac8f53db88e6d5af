/*
 * Copyright (C) taskmgr developers
 *
 * ngx_http_taskmgr_limit_module: request rate limits in the PREACCESS
 * phase.  GCRA in Redis (one script call for all the limits of a request,
 * on Redis's clock, so every nginx instance on one Redis shares the
 * limits), and a shared-memory GCRA per zone as the per-node fallback
 * while Redis is unavailable.  Inert unless "taskmgr_limit" applies to a
 * location; knows nothing of the task API.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include "ngx_http_taskmgr.h"
#include "ngx_http_taskmgr_redis.h"


/* bytes of the SHA-1 of a key value that name its bucket */
#define NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN 16

/* limits per location */
#define NGX_HTTP_TASKMGR_LIMIT_MAX 8

/*
 * The limits of the requests a worker starts in one turn of its event loop
 * go to Redis in one script call: at most this many requests and keys
 * (each key takes two arguments, each request one).
 */
#define NGX_HTTP_TASKMGR_LIMIT_BATCH      32
#define NGX_HTTP_TASKMGR_LIMIT_BATCH_KEYS 64

/* keys a later phase asks to be read with the limits (token revocation):
 * at most this many per request and per batch */
#define NGX_HTTP_TASKMGR_LIMIT_READS       2
#define NGX_HTTP_TASKMGR_LIMIT_BATCH_READS 64

#if (NGX_HTTP_TASKMGR_LIMIT_READS > 3)
#error "a request's reads are its count's two low bits"
#endif

#if (NGX_HTTP_TASKMGR_LIMIT_BATCH_KEYS < NGX_HTTP_TASKMGR_LIMIT_MAX)
#error "a batch must hold the limits of one request"
#endif

/* keys, reads, the number of keys, one argument per key and per request */
#define NGX_HTTP_TASKMGR_LIMIT_BATCH_ARGS                                      \
    (2 * NGX_HTTP_TASKMGR_LIMIT_BATCH_KEYS                                     \
     + NGX_HTTP_TASKMGR_LIMIT_BATCH_READS + 1 + NGX_HTTP_TASKMGR_LIMIT_BATCH)

#if (NGX_HTTP_TASKMGR_LIMIT_BATCH_ARGS > NGX_HTTP_TASKMGR_REDIS_MAX_ARGS)
#error "a batch exceeds the Redis client's argument count"
#endif

#define NGX_HTTP_TASKMGR_LIMIT_LOCAL       0
#define NGX_HTTP_TASKMGR_LIMIT_FAIL_OPEN   1
#define NGX_HTTP_TASKMGR_LIMIT_FAIL_CLOSED 2

/* the worker's view of Redis, for logging transitions once */
#define NGX_HTTP_TASKMGR_LIMIT_REDIS_UNKNOWN 0
#define NGX_HTTP_TASKMGR_LIMIT_REDIS_UP      1
#define NGX_HTTP_TASKMGR_LIMIT_REDIS_DOWN    2


/* a bucket in shared memory, overlaid on ngx_rbtree_node_t's color */
typedef struct {
    u_char      color;
    u_char      dummy;
    u_char      digest[NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN];
    ngx_queue_t queue;
    int64_t     tat; /* theoretical arrival time, microseconds */
} ngx_http_taskmgr_limit_node_t;


typedef struct {
    ngx_rbtree_t      rbtree;
    ngx_rbtree_node_t sentinel;
    ngx_queue_t       queue; /* LRU, most recent first */
} ngx_http_taskmgr_limit_shctx_t;


typedef struct {
    ngx_str_t                       name;
    ngx_http_complex_value_t        key;
    int64_t                         interval; /* microseconds per request */
    ngx_uint_t                      capacity; /* burst + 1 */
    ngx_uint_t                      window;   /* seconds to refill */
    ngx_str_t                       policy;   /* RateLimit-Policy value */
    ngx_shm_zone_t                 *shm_zone;
    ngx_slab_pool_t                *shpool;
    ngx_http_taskmgr_limit_shctx_t *sh;
} ngx_http_taskmgr_limit_zone_t;


/* one "taskmgr_limit" */
typedef struct {
    ngx_str_t                      zone_name;
    ngx_http_taskmgr_limit_zone_t *zone;
    ngx_uint_t                     on_error;
    ngx_flag_t                     dry_run;
    u_char                        *file;
    ngx_uint_t                     line;
} ngx_http_taskmgr_limit_t;


typedef struct {
    ngx_array_t zones; /* of ngx_http_taskmgr_limit_zone_t * */
} ngx_http_taskmgr_limit_main_conf_t;


typedef struct {
    ngx_array_t *limits; /* of ngx_http_taskmgr_limit_t; NULL: off */
} ngx_http_taskmgr_limit_loc_conf_t;


/* a limit applied to the request, and its answer */
typedef struct {
    ngx_http_taskmgr_limit_t *limit;
    u_char                    digest[NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN];
    ngx_uint_t                remaining;
    ngx_msec_t                reset; /* until the bucket is full again */
    ngx_msec_t                retry; /* until a request passes */
    unsigned                  result : 1;
    unsigned                  allowed : 1;
    unsigned                  unavailable : 1; /* fail_closed, no Redis */
} ngx_http_taskmgr_limit_entry_t;


typedef struct ngx_http_taskmgr_limit_batch_s ngx_http_taskmgr_limit_batch_t;


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_taskmgr_limit_entry_t *entries;
    ngx_uint_t                      nentries;
    ngx_http_taskmgr_limit_entry_t *strictest;      /* for the headers */
    ngx_uint_t                      status;         /* 0, 429 or 503 */
    ngx_http_taskmgr_limit_batch_t *batch;          /* while in one */
    ngx_uint_t                      slot;           /* its index there */
    ngx_str_t  reads[NGX_HTTP_TASKMGR_LIMIT_READS]; /* for the access phase */
    ngx_uint_t nreads;
    unsigned   waiting : 1;
    unsigned   decided : 1;
} ngx_http_taskmgr_limit_ctx_t;


/*
 * Requests whose limits go to Redis in one script call.  A request that
 * ends meanwhile leaves a NULL in ctx[]; the batch is freed by its reply
 * handler (or when it had nobody left to send for).
 */
struct ngx_http_taskmgr_limit_batch_s {
    ngx_http_taskmgr_redis_cmd_t  cmd;
    ngx_queue_t                   queue; /* waiting to be sent */
    ngx_http_taskmgr_limit_ctx_t *ctx[NGX_HTTP_TASKMGR_LIMIT_BATCH];
    ngx_uint_t                    first[NGX_HTTP_TASKMGR_LIMIT_BATCH];
    ngx_uint_t                    rfirst[NGX_HTTP_TASKMGR_LIMIT_BATCH];
    ngx_uint_t                    n;      /* requests */
    ngx_uint_t                    nkeys;  /* their limits */
    ngx_uint_t                    nreads; /* their reads */
    ngx_str_t                     argv[NGX_HTTP_TASKMGR_LIMIT_BATCH_ARGS];
    u_char counts[NGX_HTTP_TASKMGR_LIMIT_BATCH][NGX_INT_T_LEN];
    u_char total[NGX_INT_T_LEN];
};


static ngx_int_t ngx_http_taskmgr_limit_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_taskmgr_limit_start(
    ngx_http_request_t *r, ngx_http_taskmgr_limit_loc_conf_t *llcf,
    ngx_http_taskmgr_limit_ctx_t **ctxp);
static ngx_int_t ngx_http_taskmgr_limit_enqueue(
    ngx_http_taskmgr_limit_ctx_t *ctx);
static void      ngx_http_taskmgr_limit_flush(ngx_event_t *ev);
static ngx_int_t ngx_http_taskmgr_limit_redis_send(
    ngx_http_taskmgr_limit_batch_t *b);
static ngx_int_t ngx_http_taskmgr_limit_redis_args(
    ngx_http_taskmgr_limit_batch_t *b, ngx_http_taskmgr_limit_ctx_t *ctx,
    ngx_uint_t first);
static void ngx_http_taskmgr_limit_redis_handler(
    ngx_http_taskmgr_redis_cmd_t *cmd);
static ngx_int_t ngx_http_taskmgr_limit_redis_parse(
    ngx_http_taskmgr_limit_ctx_t *ctx, redisReply *reply, ngx_uint_t first);
static void ngx_http_taskmgr_limit_resume(ngx_http_taskmgr_limit_ctx_t *ctx);
static void ngx_http_taskmgr_limit_redis_state(ngx_log_t *log, ngx_uint_t up,
                                               const char *reason,
                                               ngx_str_t  *detail);
static void ngx_http_taskmgr_limit_fallback(ngx_http_taskmgr_limit_ctx_t *ctx);
static void ngx_http_taskmgr_limit_local(ngx_http_taskmgr_limit_entry_t *e,
                                         int64_t now, ngx_uint_t commit);
static ngx_http_taskmgr_limit_node_t *ngx_http_taskmgr_limit_lookup(
    ngx_http_taskmgr_limit_zone_t *zone, u_char *digest);
static ngx_http_taskmgr_limit_node_t *ngx_http_taskmgr_limit_insert(
    ngx_http_taskmgr_limit_zone_t *zone, u_char *digest, int64_t now);
static void ngx_http_taskmgr_limit_expire(ngx_http_taskmgr_limit_zone_t *zone,
                                          int64_t now, ngx_uint_t force);
static void ngx_http_taskmgr_limit_gcra(ngx_http_taskmgr_limit_entry_t *e,
                                        int64_t tat, int64_t now,
                                        int64_t *new_tat);
static ngx_int_t ngx_http_taskmgr_limit_decide(
    ngx_http_request_t *r, ngx_http_taskmgr_limit_ctx_t *ctx);
static ngx_http_taskmgr_limit_ctx_t *ngx_http_taskmgr_limit_get_ctx(
    ngx_http_request_t *r);
static void      ngx_http_taskmgr_limit_cleanup(void *data);
static ngx_int_t ngx_http_taskmgr_limit_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_taskmgr_limit_set_header(ngx_http_request_t *r,
                                                   ngx_str_t          *name,
                                                   ngx_str_t          *value);

static void *ngx_http_taskmgr_limit_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_taskmgr_limit_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_taskmgr_limit_merge_loc_conf(ngx_conf_t *cf, void *parent,
                                                   void *child);
static char *ngx_http_taskmgr_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
                                         void *conf);
static char *ngx_http_taskmgr_limit(ngx_conf_t *cf, ngx_command_t *cmd,
                                    void *conf);
static ngx_int_t ngx_http_taskmgr_limit_init_zone(ngx_shm_zone_t *shm_zone,
                                                  void           *data);
static void      ngx_http_taskmgr_limit_rbtree_insert_value(
         ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
         ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_taskmgr_limit_init(ngx_conf_t *cf);


/*
 * GCRA for every limit of a batch of requests in one call.  ARGV[1] is the
 * number L of limits; KEYS[i] (i <= L) is the bucket of limit i and
 * ARGV[1 + i] its "<microseconds per request> <capacity> <dry run 0|1>"
 * (parsed once per distinct value).  The keys after the L limits are only
 * read, for a later phase of their request (the token revocation check).
 * The last ARGVs give, request by request, 4 x its number of limits + its
 * number of reads, the keys being in request order.  Requests are decided
 * in order, each seeing what the ones before it charged, exactly as
 * separate calls would.  The clock is Redis's (TIME), so all nginx
 * instances agree.  A bucket holds its theoretical arrival time (TAT) in
 * microseconds and expires when it is full again.  A request's buckets are
 * charged only when none of its enforcing limits refuses: a refused request
 * costs nothing.  A dry-run limit is computed and charged like an enforcing
 * one, but never refuses.  Every key is read by one MGET at the start
 * (one command instead of a GET per key: inside a script, a command's
 * dispatch costs more than a GET's work) and each bucket is written at
 * most once per call.
 *
 * Returns Redis's time (microseconds), then for each limit the TAT its
 * request saw (0: none), then the value of each read key (nil: none).
 * nginx derives the answers (allowed, remaining, reset, retry) with the
 * same arithmetic as the per-node fallback, ngx_http_taskmgr_limit_gcra():
 * Redis does only the work that must be atomic.
 */
static ngx_http_taskmgr_redis_script_t ngx_http_taskmgr_limit_script = {
    ngx_string(
        "if redis.replicate_commands then redis.replicate_commands() end\n"
        "local t = redis.call('TIME')\n"
        "local now = t[1] * 1000000 + t[2]\n"
        "local v = #KEYS > 0 and redis.call('MGET', unpack(KEYS)) or {}\n"
        "local nl = tonumber(ARGV[1])\n"
        "local known, dirty, zones, out = {}, {}, {}, {now}\n"
        "local first, rfirst = 1, nl + 1\n"
        "for g = nl + 2, #ARGV do\n"
        "  local c = tonumber(ARGV[g])\n"
        "  local nr = c % 4\n"
        "  local last = first + (c - nr) / 4 - 1\n"
        "  local pass = true\n"
        "  for i = first, last do\n"
        "    local k, a = KEYS[i], ARGV[i + 1]\n"
        "    local z = zones[a]\n"
        "    if z == nil then\n"
        "      local iv, cap, dry = string.match(a, '^(%d+) (%d+) ([01])$')\n"
        "      iv = tonumber(iv)\n"
        "      z = {iv, iv * tonumber(cap), dry == '0'}\n"
        "      zones[a] = z\n"
        "    end\n"
        "    local cur = known[k]\n"
        "    if cur == nil then\n"
        "      cur = tonumber(v[i]) or 0\n"
        "      known[k] = cur\n"
        "    end\n"
        "    out[i + 1] = cur\n"
        "    if cur < now then cur = now end\n"
        "    if z[3] and cur + z[1] - z[2] > now then pass = false end\n"
        "  end\n"
        "  if pass then\n"
        "    for i = first, last do\n"
        "      local k = KEYS[i]\n"
        "      local z = zones[ARGV[i + 1]]\n"
        "      local cur = known[k]\n"
        "      if cur < now then cur = now end\n"
        "      cur = cur + z[1]\n"
        "      if cur - z[2] <= now then\n"
        "        known[k] = cur\n"
        "        dirty[k] = true\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "  for j = rfirst, rfirst + nr - 1 do\n"
        "    out[j + 1] = v[j]\n"
        "  end\n"
        "  first, rfirst = last + 1, rfirst + nr\n"
        "end\n"
        "for k in pairs(dirty) do\n"
        "  local c = known[k]\n"
        "  redis.call('SET', k, c, 'PX', math.ceil((c - now) / 1000))\n"
        "end\n"
        "return out\n"),
    ""
};


/* per worker: batches waiting for the end of the event loop's turn */
static ngx_queue_t ngx_http_taskmgr_limit_batches;
static ngx_event_t ngx_http_taskmgr_limit_flush_event;


/* per worker: Redis as the limiter last saw it */
static ngx_uint_t ngx_http_taskmgr_limit_redis =
    NGX_HTTP_TASKMGR_LIMIT_REDIS_UNKNOWN;

static ngx_http_output_header_filter_pt ngx_http_next_header_filter;


/* clang-format off */
static ngx_conf_enum_t  ngx_http_taskmgr_limit_on_error[] = {
    { ngx_string("local"), NGX_HTTP_TASKMGR_LIMIT_LOCAL },
    { ngx_string("fail_open"), NGX_HTTP_TASKMGR_LIMIT_FAIL_OPEN },
    { ngx_string("fail_closed"), NGX_HTTP_TASKMGR_LIMIT_FAIL_CLOSED },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_taskmgr_limit_commands[] = {

    { ngx_string("taskmgr_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_taskmgr_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_taskmgr_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_taskmgr_limit_module_ctx = {
    NULL,                                    /* preconfiguration */
    ngx_http_taskmgr_limit_init,             /* postconfiguration */

    ngx_http_taskmgr_limit_create_main_conf, /* create main configuration */
    NULL,                                    /* init main configuration */

    NULL,                                    /* create server configuration */
    NULL,                                    /* merge server configuration */

    ngx_http_taskmgr_limit_create_loc_conf,  /* create location configuration */
    ngx_http_taskmgr_limit_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_taskmgr_limit_module = {
    NGX_MODULE_V1,
    &ngx_http_taskmgr_limit_module_ctx,      /* module context */
    ngx_http_taskmgr_limit_commands,         /* module directives */
    NGX_HTTP_MODULE,                         /* module type */
    NULL,                                    /* init master */
    NULL,                                    /* init module */
    NULL,                                    /* init process */
    NULL,                                    /* init thread */
    NULL,                                    /* exit thread */
    NULL,                                    /* exit process */
    NULL,                                    /* exit master */
    NGX_MODULE_V1_PADDING
};
/* clang-format on */


static ngx_str_t ngx_http_taskmgr_limit_h_policy =
    ngx_string("RateLimit-Policy");
static ngx_str_t ngx_http_taskmgr_limit_h_ratelimit = ngx_string("RateLimit");
static ngx_str_t ngx_http_taskmgr_limit_h_limit =
    ngx_string("X-RateLimit-Limit");
static ngx_str_t ngx_http_taskmgr_limit_h_remaining =
    ngx_string("X-RateLimit-Remaining");
static ngx_str_t ngx_http_taskmgr_limit_h_reset =
    ngx_string("X-RateLimit-Reset");
static ngx_str_t ngx_http_taskmgr_limit_h_retry = ngx_string("Retry-After");


/*
 * The first call evaluates the keys and sends the script; it returns
 * NGX_AGAIN, which parks the request in this phase handler (the phase
 * engine owns the request's one reference, as with limit_req's delay).
 * The reply handler clears ctx->waiting and runs the phases again, which
 * calls this handler again.  Once decided, the handler passes (internal
 * redirects find the ctx again through its pool cleanup: a request is
 * limited once).
 */

static ngx_int_t
ngx_http_taskmgr_limit_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_http_taskmgr_limit_ctx_t      *ctx;
    ngx_http_taskmgr_limit_loc_conf_t *llcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_taskmgr_limit_get_ctx(r);

    if (ctx == NULL) {
        llcf = ngx_http_get_module_loc_conf(r, ngx_http_taskmgr_limit_module);

        if (llcf->limits == NULL) {
            return NGX_DECLINED;
        }

        rc = ngx_http_taskmgr_limit_start(r, llcf, &ctx);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (ctx->waiting) {
        return NGX_AGAIN;
    }

    if (ctx->decided) {
        return NGX_DECLINED;
    }

    ctx->decided = 1;

    return ngx_http_taskmgr_limit_decide(r, ctx);
}


/*
 * NGX_OK: the ctx is ready to decide; NGX_AGAIN: waiting for Redis;
 * NGX_DECLINED: no limit applies (every key empty); or an error status.
 */

static ngx_int_t
ngx_http_taskmgr_limit_start(ngx_http_request_t                *r,
                             ngx_http_taskmgr_limit_loc_conf_t *llcf,
                             ngx_http_taskmgr_limit_ctx_t     **ctxp)
{
    u_char                          digest[20];
    ngx_str_t                       key;
    ngx_uint_t                      i;
    ngx_sha1_t                      sha1;
    ngx_pool_cleanup_t             *cln;
    ngx_http_taskmgr_limit_t       *limit;
    ngx_http_taskmgr_limit_ctx_t   *ctx;
    ngx_http_taskmgr_limit_entry_t *e;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_taskmgr_limit_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->entries = ngx_pcalloc(
        r->pool, llcf->limits->nelts * sizeof(ngx_http_taskmgr_limit_entry_t));
    if (ctx->entries == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the ctx outlives internal redirects through this cleanup */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_taskmgr_limit_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_taskmgr_limit_module);
    *ctxp = ctx;

    limit = llcf->limits->elts;

    for (i = 0; i < llcf->limits->nelts; i++) {

        if (ngx_http_complex_value(r, &limit[i].zone->key, &key) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (key.len == 0) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "taskmgr limit: empty key, zone \"%V\" skipped",
                           &limit[i].zone->name);
            continue;
        }

        e = &ctx->entries[ctx->nentries++];
        e->limit = &limit[i];

        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, key.data, key.len);
        ngx_sha1_final(digest, &sha1);

        ngx_memcpy(e->digest, digest, NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN);
    }

    if (ctx->nentries == 0) {
        ctx->decided = 1;
        return NGX_DECLINED;
    }

    if (!ngx_http_taskmgr_redis_ready()) {
        ngx_http_taskmgr_limit_redis_state(r->connection->log, 0,
                                           "not connected", NULL);
        ngx_http_taskmgr_limit_fallback(ctx);
        return NGX_OK;
    }

    /* the token revocation keys ride along: one round trip less */
    ctx->nreads = ngx_http_taskmgr_auth_prefetch_keys(r, ctx->reads);

    if (ngx_http_taskmgr_limit_enqueue(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->waiting = 1;

    /* notice a client that goes away while Redis answers */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


/* joins the batch being filled in this turn of the event loop */
static ngx_int_t
ngx_http_taskmgr_limit_enqueue(ngx_http_taskmgr_limit_ctx_t *ctx)
{
    ngx_event_t                    *ev;
    ngx_queue_t                    *q;
    ngx_http_taskmgr_limit_batch_t *b;

    ev = &ngx_http_taskmgr_limit_flush_event;

    if (ev->handler == NULL) {
        ev->handler = ngx_http_taskmgr_limit_flush;
        ev->log = ngx_cycle->log;
        ngx_queue_init(&ngx_http_taskmgr_limit_batches);
    }

    b = NULL;

    if (!ngx_queue_empty(&ngx_http_taskmgr_limit_batches)) {
        q = ngx_queue_last(&ngx_http_taskmgr_limit_batches);
        b = ngx_queue_data(q, ngx_http_taskmgr_limit_batch_t, queue);

        if (b->n == NGX_HTTP_TASKMGR_LIMIT_BATCH
            || b->nkeys + ctx->nentries > NGX_HTTP_TASKMGR_LIMIT_BATCH_KEYS
            || b->nreads + ctx->nreads > NGX_HTTP_TASKMGR_LIMIT_BATCH_READS)
        {
            b = NULL;
        }
    }

    if (b == NULL) {
        b = ngx_alloc(sizeof(ngx_http_taskmgr_limit_batch_t), ngx_cycle->log);
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->n = 0;
        b->nkeys = 0;
        b->nreads = 0;
        ngx_http_taskmgr_redis_cmd_init(
            &b->cmd, ngx_http_taskmgr_limit_redis_handler, b);
        ngx_queue_insert_tail(&ngx_http_taskmgr_limit_batches, &b->queue);
    }

    ctx->batch = b;
    ctx->slot = b->n;
    b->ctx[b->n++] = ctx;
    b->nkeys += ctx->nentries;
    b->nreads += ctx->nreads;

    if (!ev->posted) {
        ngx_post_event(ev, &ngx_posted_events);
    }

    return NGX_OK;
}


/* the end of the turn: every batch goes (a request ended meanwhile: NULL) */
static void
ngx_http_taskmgr_limit_flush(ngx_event_t *ev)
{
    ngx_uint_t                      i, n;
    ngx_queue_t                    *q;
    ngx_http_taskmgr_limit_ctx_t   *ctx;
    ngx_http_taskmgr_limit_batch_t *b;

    while (!ngx_queue_empty(&ngx_http_taskmgr_limit_batches)) {
        q = ngx_queue_head(&ngx_http_taskmgr_limit_batches);
        ngx_queue_remove(q);
        b = ngx_queue_data(q, ngx_http_taskmgr_limit_batch_t, queue);

        /* close the gaps */

        n = 0;
        b->nkeys = 0;
        b->nreads = 0;

        for (i = 0; i < b->n; i++) {
            ctx = b->ctx[i];

            if (ctx == NULL) {
                continue;
            }

            ctx->slot = n;
            b->ctx[n] = ctx;
            b->first[n] = b->nkeys;
            b->rfirst[n] = b->nreads;
            b->nkeys += ctx->nentries;
            b->nreads += ctx->nreads;
            n++;
        }

        b->n = n;

        if (n == 0) {
            ngx_free(b);
            continue;
        }

        if (ngx_http_taskmgr_limit_redis_send(b) == NGX_OK) {
            continue;
        }

        /* Redis went away meanwhile, or no memory: decide here */

        ngx_http_taskmgr_limit_redis_state(ev->log, 0, "unavailable", NULL);

        for (i = 0; i < b->n; i++) {
            ctx = b->ctx[i];

            if (ctx != NULL) {
                ngx_http_taskmgr_limit_fallback(ctx);
                ngx_http_taskmgr_limit_resume(ctx);
            }
        }

        ngx_free(b);
    }
}


static ngx_int_t
ngx_http_taskmgr_limit_redis_send(ngx_http_taskmgr_limit_batch_t *b)
{
    ngx_str_t                    *arg;
    ngx_uint_t                    i, j, args;
    ngx_http_taskmgr_limit_ctx_t *ctx;

    /* KEYS: the limits, then the reads; ARGV: the number of limits, one
     * argument per limit, one per request (4 x its limits + its reads) */

    args = b->nkeys + b->nreads;

    arg = &b->argv[args];
    arg->data = b->total;
    arg->len = ngx_sprintf(b->total, "%ui", b->nkeys) - b->total;

    for (i = 0; i < b->n; i++) {
        ctx = b->ctx[i];

        if (ngx_http_taskmgr_limit_redis_args(b, ctx, b->first[i]) != NGX_OK) {
            return NGX_ERROR;
        }

        for (j = 0; j < ctx->nreads; j++) {
            b->argv[b->nkeys + b->rfirst[i] + j] = ctx->reads[j];
        }

        arg = &b->argv[args + 1 + b->nkeys + i];
        arg->data = b->counts[i];
        arg->len =
            ngx_sprintf(b->counts[i], "%ui", 4 * ctx->nentries + ctx->nreads)
            - b->counts[i];
    }

    return ngx_http_taskmgr_redis_eval(
        &b->cmd, &ngx_http_taskmgr_limit_script, (int) args,
        (int) (args + 1 + b->nkeys + b->n), b->argv);
}


/* a request's keys and their arguments, from argv[first] on (in its pool:
 * the Redis client copies them before the call returns) */
static ngx_int_t
ngx_http_taskmgr_limit_redis_args(ngx_http_taskmgr_limit_batch_t *b,
                                  ngx_http_taskmgr_limit_ctx_t   *ctx,
                                  ngx_uint_t                      first)
{
    u_char                         *p;
    size_t                          len;
    ngx_str_t                      *key, *arg;
    ngx_uint_t                      i;
    ngx_pool_t                     *pool;
    ngx_http_taskmgr_limit_zone_t  *zone;
    ngx_http_taskmgr_limit_entry_t *e;

    pool = ctx->request->pool;

    for (i = 0; i < ctx->nentries; i++) {
        e = &ctx->entries[i];
        zone = e->limit->zone;
        key = &b->argv[first + i];
        arg = &b->argv[b->nkeys + b->nreads + 1 + first + i];

        /* "tmk:{<zone>:<hex digest>}:rl": the braces are the Cluster hash
         * tag, so one bucket lives on one shard */

        len = sizeof("tmk:{:}:rl") - 1 + zone->name.len
            + 2 * NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN;

        p = ngx_pnalloc(pool, len + 2 * NGX_INT64_LEN + sizeof("  0") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        key->data = p;
        p = ngx_sprintf(p, "tmk:{%V:", &zone->name);
        p = ngx_hex_dump(p, e->digest, NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN);
        p = ngx_cpymem(p, "}:rl", sizeof("}:rl") - 1);
        key->len = p - key->data;

        arg->data = p;
        p = ngx_sprintf(p, "%L %ui %d", zone->interval, zone->capacity,
                        e->limit->dry_run ? 1 : 0);
        arg->len = p - arg->data;
    }

    return NGX_OK;
}


static void
ngx_http_taskmgr_limit_redis_handler(ngx_http_taskmgr_redis_cmd_t *cmd)
{
    ngx_str_t                       detail;
    ngx_uint_t                      i, up;
    redisReply                     *reply;
    ngx_http_taskmgr_limit_ctx_t   *ctx;
    ngx_http_taskmgr_limit_batch_t *b;

    b = cmd->data;
    reply = cmd->reply;
    up = 0;

    if (reply == NULL) {
        ngx_http_taskmgr_limit_redis_state(
            ngx_cycle->log, 0, cmd->rc == NGX_OK ? "no reply" : "unavailable",
            NULL);

    } else if (reply->type == REDIS_REPLY_ERROR) {
        detail.data = (u_char *) reply->str;
        detail.len = reply->len;
        ngx_http_taskmgr_limit_redis_state(ngx_cycle->log, 0, "script error",
                                           &detail);

    } else if (reply->type != REDIS_REPLY_ARRAY
               || reply->elements != 1 + b->nkeys + b->nreads)
    {
        ngx_http_taskmgr_limit_redis_state(ngx_cycle->log, 0,
                                           "unexpected reply", NULL);

    } else {
        up = 1;
    }

    /*
     * Each request goes on (and may end, which frees its ctx) before the
     * next is looked at; a request that ended earlier left a NULL.
     */

    for (i = 0; i < b->n; i++) {
        ctx = b->ctx[i];

        if (ctx == NULL) {
            continue;
        }

        if (up
            && ngx_http_taskmgr_limit_redis_parse(ctx, reply, b->first[i])
                == NGX_OK) {
            if (ctx->nreads) {
                ngx_http_taskmgr_auth_prefetched(
                    ctx->request, &reply->element[1 + b->nkeys + b->rfirst[i]],
                    ctx->nreads);
            }

            ngx_http_taskmgr_limit_redis_state(ctx->request->connection->log, 1,
                                               NULL, NULL);

        } else {
            if (up) {
                ngx_http_taskmgr_limit_redis_state(
                    ctx->request->connection->log, 0, "unexpected reply", NULL);
            }

            ngx_http_taskmgr_limit_fallback(ctx);
        }

        ngx_http_taskmgr_limit_resume(ctx);
    }

    ngx_free(b);
}


/* the limits are decided: the phases go on */
static void
ngx_http_taskmgr_limit_resume(ngx_http_taskmgr_limit_ctx_t *ctx)
{
    ngx_connection_t   *c;
    ngx_http_request_t *r;

    r = ctx->request;
    c = r->connection;

    ctx->batch = NULL;
    ctx->waiting = 0;
    r->read_event_handler = ngx_http_block_reading;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/* the request's answers, from the TATs its keys saw (key first on) */
static ngx_int_t
ngx_http_taskmgr_limit_redis_parse(ngx_http_taskmgr_limit_ctx_t *ctx,
                                   redisReply *reply, ngx_uint_t first)
{
    int64_t                         now, tat;
    ngx_uint_t                      i;
    redisReply                     *el;
    ngx_http_taskmgr_limit_entry_t *e;

    if (1 + first + ctx->nentries > reply->elements) {
        return NGX_ERROR;
    }

    el = reply->element[0];

    if (el->type != REDIS_REPLY_INTEGER || el->integer <= 0) {
        return NGX_ERROR;
    }

    now = el->integer;

    for (i = 0; i < ctx->nentries; i++) {
        el = reply->element[1 + first + i];

        if (el->type != REDIS_REPLY_INTEGER || el->integer < 0) {
            return NGX_ERROR;
        }

        e = &ctx->entries[i];
        ngx_http_taskmgr_limit_gcra(e, el->integer, now, &tat);
    }

    return NGX_OK;
}


/*
 * Logs the transitions of this worker's view of Redis, once each: the
 * per-node fallback starts and ends without a line per request.
 */

static void
ngx_http_taskmgr_limit_redis_state(ngx_log_t *log, ngx_uint_t up,
                                   const char *reason, ngx_str_t *detail)
{
    ngx_str_t none = ngx_null_string;

    if (up) {
        if (ngx_http_taskmgr_limit_redis == NGX_HTTP_TASKMGR_LIMIT_REDIS_DOWN) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "taskmgr: redis is available again, rate limits "
                          "are shared again");
        }

        ngx_http_taskmgr_limit_redis = NGX_HTTP_TASKMGR_LIMIT_REDIS_UP;
        return;
    }

    if (ngx_http_taskmgr_limit_redis != NGX_HTTP_TASKMGR_LIMIT_REDIS_DOWN) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "taskmgr: redis is unavailable (%s%s%V), rate limits "
                      "fall back to this node",
                      reason, detail ? ": " : "", detail ? detail : &none);
    }

    ngx_http_taskmgr_limit_redis = NGX_HTTP_TASKMGR_LIMIT_REDIS_DOWN;
}


/*
 * Redis did not answer: each limit follows its on_redis_error.  The local
 * limits are decided like the script does (all limits first, then the
 * buckets are charged only if no enforcing limit refused).
 */

static void
ngx_http_taskmgr_limit_fallback(ngx_http_taskmgr_limit_ctx_t *ctx)
{
    int64_t                         now;
    ngx_uint_t                      i, pass;
    ngx_time_t                     *tp;
    ngx_http_taskmgr_limit_entry_t *e;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000000 + (int64_t) tp->msec * 1000;

    pass = 1;

    for (i = 0; i < ctx->nentries; i++) {
        e = &ctx->entries[i];

        switch (e->limit->on_error) {

        case NGX_HTTP_TASKMGR_LIMIT_FAIL_OPEN:
            break;

        case NGX_HTTP_TASKMGR_LIMIT_FAIL_CLOSED:
            e->unavailable = 1;

            if (!e->limit->dry_run) {
                pass = 0;
            }

            break;

        default: /* NGX_HTTP_TASKMGR_LIMIT_LOCAL */
            ngx_http_taskmgr_limit_local(e, now, 0);

            if (!e->allowed && !e->limit->dry_run) {
                pass = 0;
            }
        }
    }

    if (!pass) {
        return;
    }

    for (i = 0; i < ctx->nentries; i++) {
        e = &ctx->entries[i];

        if (e->result && e->allowed) {
            ngx_http_taskmgr_limit_local(e, now, 1);
        }
    }
}


/*
 * commit 0: computes the answer of the zone's bucket; commit 1: charges the
 * bucket for the request (computed again under the lock, so concurrent
 * workers never lose a charge).
 */

static void
ngx_http_taskmgr_limit_local(ngx_http_taskmgr_limit_entry_t *e, int64_t now,
                             ngx_uint_t commit)
{
    int64_t                        tat;
    ngx_http_taskmgr_limit_node_t *lr;
    ngx_http_taskmgr_limit_zone_t *zone;

    zone = e->limit->zone;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_http_taskmgr_limit_expire(zone, now, 0);

    lr = ngx_http_taskmgr_limit_lookup(zone, e->digest);

    if (!commit) {
        ngx_http_taskmgr_limit_gcra(e, lr ? lr->tat : 0, now, &tat);
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return;
    }

    if (lr == NULL) {
        lr = ngx_http_taskmgr_limit_insert(zone, e->digest, now);
    }

    if (lr != NULL) {
        /* charged even if a concurrent request filled the bucket since */
        lr->tat = ngx_max(lr->tat, now) + zone->interval;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* GCRA: the answer for a bucket whose TAT is tat (0: a full bucket) */

static void
ngx_http_taskmgr_limit_gcra(ngx_http_taskmgr_limit_entry_t *e, int64_t tat,
                            int64_t now, int64_t *new_tat)
{
    int64_t                        cur, at;
    ngx_http_taskmgr_limit_zone_t *zone;

    zone = e->limit->zone;

    cur = ngx_max(tat, now);
    *new_tat = cur + zone->interval;
    at = *new_tat - (int64_t) zone->capacity * zone->interval;

    e->result = 1;

    if (now < at) {
        e->allowed = 0;
        e->remaining = 0;
        e->reset = (ngx_msec_t) ((cur - now + 999) / 1000);
        e->retry = (ngx_msec_t) ((at - now + 999) / 1000);
        return;
    }

    e->allowed = 1;
    e->remaining = (ngx_uint_t) ((now - at) / zone->interval);
    e->reset = (ngx_msec_t) ((*new_tat - now + 999) / 1000);
    e->retry = 0;
}


static ngx_http_taskmgr_limit_node_t *
ngx_http_taskmgr_limit_lookup(ngx_http_taskmgr_limit_zone_t *zone,
                              u_char                        *digest)
{
    ngx_int_t                      rc;
    uint32_t                       hash;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_taskmgr_limit_node_t *lr;

    ngx_memcpy(&hash, digest, sizeof(uint32_t));

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        lr = (ngx_http_taskmgr_limit_node_t *) &node->color;

        rc = ngx_memcmp(digest, lr->digest, NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN);

        if (rc == 0) {
            ngx_queue_remove(&lr->queue);
            ngx_queue_insert_head(&zone->sh->queue, &lr->queue);
            return lr;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* called with the zone locked; NULL when the zone is full of live buckets */

static ngx_http_taskmgr_limit_node_t *
ngx_http_taskmgr_limit_insert(ngx_http_taskmgr_limit_zone_t *zone,
                              u_char *digest, int64_t now)
{
    size_t                         size;
    uint32_t                       hash;
    ngx_rbtree_node_t             *node;
    ngx_http_taskmgr_limit_node_t *lr;

    size = offsetof(ngx_rbtree_node_t, color)
        + sizeof(ngx_http_taskmgr_limit_node_t);

    node = ngx_slab_alloc_locked(zone->shpool, size);

    if (node == NULL) {
        ngx_http_taskmgr_limit_expire(zone, now, 1);

        node = ngx_slab_alloc_locked(zone->shpool, size);
        if (node == NULL) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "taskmgr: limit zone \"%V\" is full, a request "
                          "was not counted",
                          &zone->name);
            return NULL;
        }
    }

    ngx_memcpy(&hash, digest, sizeof(uint32_t));

    node->key = hash;
    lr = (ngx_http_taskmgr_limit_node_t *) &node->color;
    ngx_memcpy(lr->digest, digest, NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN);
    lr->tat = 0;

    ngx_rbtree_insert(&zone->sh->rbtree, node);
    ngx_queue_insert_head(&zone->sh->queue, &lr->queue);

    return lr;
}


/*
 * Removes up to two buckets that are full again (TAT in the past: the same
 * as no bucket), least recently used first; force also removes the least
 * recently used live bucket first, to make room.
 */

static void
ngx_http_taskmgr_limit_expire(ngx_http_taskmgr_limit_zone_t *zone, int64_t now,
                              ngx_uint_t force)
{
    ngx_uint_t                     n;
    ngx_queue_t                   *q;
    ngx_rbtree_node_t             *node;
    ngx_http_taskmgr_limit_node_t *lr;

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&zone->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&zone->sh->queue);
        lr = ngx_queue_data(q, ngx_http_taskmgr_limit_node_t, queue);

        if (!(force && n == 0) && lr->tat > now) {
            return;
        }

        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *) ((u_char *) lr
                                      - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&zone->sh->rbtree, node);
        ngx_slab_free_locked(zone->shpool, node);
    }
}


/* the verdict: NGX_DECLINED (pass) or NGX_DONE after a 429 or 503 */

static ngx_int_t
ngx_http_taskmgr_limit_decide(ngx_http_request_t           *r,
                              ngx_http_taskmgr_limit_ctx_t *ctx)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    ngx_http_taskmgr_limit_entry_t *e, *s;

    s = NULL;

    for (i = 0; i < ctx->nentries; i++) {
        e = &ctx->entries[i];

        if (e->unavailable) {
            if (e->limit->dry_run) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "taskmgr: limit zone \"%V\" would refuse the "
                              "request without redis (dry run)",
                              &e->limit->zone->name);

            } else if (ctx->status == 0) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "taskmgr: limit zone \"%V\" refuses the "
                              "request without redis",
                              &e->limit->zone->name);
                ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;
            }

            continue;
        }

        if (!e->result) {
            continue;
        }

        if (e->limit->dry_run) {
            if (!e->allowed) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "taskmgr: limit zone \"%V\" would limit the "
                              "request (dry run), retry after %Mms",
                              &e->limit->zone->name, e->retry);
            }

            continue;
        }

        /* the strictest: a refusal with the longest wait, else the
         * fewest remaining requests, then the longest reset */

        if (s == NULL) {
            s = e;

        } else if (!e->allowed) {
            if (s->allowed || e->retry > s->retry) {
                s = e;
            }

        } else if (s->allowed
                   && (e->remaining < s->remaining
                       || (e->remaining == s->remaining
                           && e->reset > s->reset)))
        {
            s = e;
        }
    }

    ctx->strictest = s;

    if (ctx->status == 0 && s && !s->allowed) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "taskmgr: limiting request by zone \"%V\", "
                      "retry after %Mms",
                      &s->limit->zone->name, s->retry);
        ctx->status = NGX_HTTP_TOO_MANY_REQUESTS;
    }

    if (ctx->status == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (ctx->status == NGX_HTTP_TOO_MANY_REQUESTS) {
        rc = ngx_http_taskmgr_send_problem(r, ctx->status, "rate_limited",
                                           "Too many requests: retry after "
                                           "the time in Retry-After.");
    } else {
        rc = ngx_http_taskmgr_send_problem(r, ctx->status,
                                           "dependency_unavailable",
                                           "The rate limiter is unavailable.");
    }

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * An internal redirect clears the module ctx; the pool cleanup still
 * points to it (the way the realip module keeps its address).
 */

static ngx_http_taskmgr_limit_ctx_t *
ngx_http_taskmgr_limit_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t           *cln;
    ngx_http_taskmgr_limit_ctx_t *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_taskmgr_limit_module);

    /* named locations clear the ctx without setting r->internal */

    if (ctx == NULL) {

        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_taskmgr_limit_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_taskmgr_limit_module);
                break;
            }
        }
    }

    return ctx;
}


static void
ngx_http_taskmgr_limit_cleanup(void *data)
{
    ngx_http_taskmgr_limit_ctx_t *ctx = data;

    /* the request ends while its batch waits: the batch forgets it */
    if (ctx->batch) {
        ctx->batch->ctx[ctx->slot] = NULL;
        ctx->batch = NULL;
    }
}


/* the rate limit headers of the strictest limit, on every response */

static ngx_int_t
ngx_http_taskmgr_limit_header_filter(ngx_http_request_t *r)
{
    u_char                         *p;
    time_t                          reset;
    ngx_str_t                       v;
    ngx_http_taskmgr_limit_ctx_t   *ctx;
    ngx_http_taskmgr_limit_zone_t  *zone;
    ngx_http_taskmgr_limit_entry_t *s;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_taskmgr_limit_get_ctx(r);

    if (ctx == NULL || ctx->strictest == NULL) {
        return ngx_http_next_header_filter(r);
    }

    s = ctx->strictest;
    zone = s->limit->zone;
    reset = (time_t) ((s->reset + 999) / 1000);

    if (ngx_http_taskmgr_limit_set_header(r, &ngx_http_taskmgr_limit_h_policy,
                                          &zone->policy)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool,
                    zone->name.len + sizeof("\"\";r=;t=") - 1 + NGX_INT_T_LEN
                        + NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v.data = p;
    v.len =
        ngx_sprintf(p, "\"%V\";r=%ui;t=%T", &zone->name, s->remaining, reset)
        - p;

    if (ngx_http_taskmgr_limit_set_header(
            r, &ngx_http_taskmgr_limit_h_ratelimit, &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN + NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v.data = p;
    v.len = ngx_sprintf(p, "%ui", zone->capacity) - p;

    if (ngx_http_taskmgr_limit_set_header(r, &ngx_http_taskmgr_limit_h_limit,
                                          &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    v.data = v.data + v.len;
    v.len = ngx_sprintf(v.data, "%ui", s->remaining) - v.data;

    if (ngx_http_taskmgr_limit_set_header(
            r, &ngx_http_taskmgr_limit_h_remaining, &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    v.data = v.data + v.len;
    v.len = ngx_sprintf(v.data, "%T", reset) - v.data;

    if (ngx_http_taskmgr_limit_set_header(r, &ngx_http_taskmgr_limit_h_reset,
                                          &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->status == NGX_HTTP_TOO_MANY_REQUESTS && !s->allowed) {
        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        /* whole seconds, rounded up: never earlier than the bucket allows */
        v.data = p;
        v.len = ngx_sprintf(p, "%T", (time_t) ((s->retry + 999) / 1000)) - p;

        if (ngx_http_taskmgr_limit_set_header(
                r, &ngx_http_taskmgr_limit_h_retry, &v)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_taskmgr_limit_set_header(ngx_http_request_t *r, ngx_str_t *name,
                                  ngx_str_t *value)
{
    ngx_table_elt_t *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = *name;
    h->value = *value;
    h->lowcase_key = NULL;

    return NGX_OK;
}


static void *
ngx_http_taskmgr_limit_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_taskmgr_limit_main_conf_t *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_limit_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&lmcf->zones, cf->pool, 4,
                       sizeof(ngx_http_taskmgr_limit_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return lmcf;
}


static void *
ngx_http_taskmgr_limit_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_taskmgr_limit_loc_conf_t *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_limit_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->limits = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_taskmgr_limit_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_taskmgr_limit_loc_conf_t *prev = parent;
    ngx_http_taskmgr_limit_loc_conf_t *conf = child;

    ngx_uint_t                          i, j;
    ngx_http_taskmgr_limit_t           *limit;
    ngx_http_taskmgr_limit_zone_t     **zones;
    ngx_http_taskmgr_limit_main_conf_t *lmcf;

    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);

    if (conf->limits == NULL) {
        return NGX_CONF_OK;
    }

    /* zones may be declared after their first use in http{} */

    lmcf =
        ngx_http_conf_get_module_main_conf(cf, ngx_http_taskmgr_limit_module);
    zones = lmcf->zones.elts;
    limit = conf->limits->elts;

    for (i = 0; i < conf->limits->nelts; i++) {

        if (limit[i].zone != NULL) {
            continue;
        }

        for (j = 0; j < lmcf->zones.nelts; j++) {
            if (zones[j]->name.len == limit[i].zone_name.len
                && ngx_strncmp(zones[j]->name.data, limit[i].zone_name.data,
                               limit[i].zone_name.len)
                    == 0)
            {
                limit[i].zone = zones[j];
                break;
            }
        }

        if (limit[i].zone == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "taskmgr: unknown taskmgr_limit_zone \"%V\" "
                          "in %s:%ui",
                          &limit[i].zone_name, limit[i].file, limit[i].line);
            return NGX_CONF_ERROR;
        }

        for (j = 0; j < i; j++) {
            if (limit[j].zone == limit[i].zone) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "taskmgr: taskmgr_limit zone \"%V\" is used "
                              "twice in one location, in %s:%ui",
                              &limit[i].zone_name, limit[i].file,
                              limit[i].line);
                return NGX_CONF_ERROR;
            }
        }
    }

    return NGX_CONF_OK;
}


/*
 * taskmgr_limit_zone <name> key=<complex value> rate=<n>r/s|r/m
 *                    [burst=<n>] [size=<size>]
 */

static char *
ngx_http_taskmgr_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_limit_main_conf_t *lmcf = conf;

    u_char                          *p;
    size_t                           size;
    ssize_t                          n;
    ngx_int_t                        rate, per, burst;
    ngx_str_t                       *value, s, key;
    ngx_uint_t                       i;
    ngx_http_taskmgr_limit_zone_t   *zone, **zp;
    ngx_http_compile_complex_value_t ccv;

    value = cf->args->elts;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_limit_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->name = value[1];

    if (zone->name.len == 0 || zone->name.len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: invalid zone name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* the name goes into RateLimit headers (an sf-string) and Redis keys */

    for (p = zone->name.data; p < zone->name.data + zone->name.len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'
              || *p == '.'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr: invalid zone name \"%V\": use "
                               "letters, digits, \"_\", \"-\" and \".\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    ngx_str_null(&key);
    size = 10 * 1024 * 1024;
    rate = 0;
    per = 1;
    burst = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            key.data = value[i].data + 4;
            key.len = value[i].len - 4;
            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;
            p = s.data + s.len;

            if (s.len > 3 && ngx_strncmp(p - 3, "r/s", 3) == 0) {
                per = 1;

            } else if (s.len > 3 && ngx_strncmp(p - 3, "r/m", 3) == 0) {
                per = 60;

            } else {
                goto invalid;
            }

            rate = ngx_atoi(s.data, s.len - 3);
            if (rate <= 0 || rate > 1000000) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            burst = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (burst < 0 || burst > 1000000) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            n = ngx_parse_size(&s);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            if (n < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "taskmgr: zone \"%V\" is too small",
                                   &value[1]);
                return NGX_CONF_ERROR;
            }

            size = (size_t) n;
            continue;
        }

        goto invalid;
    }

    if (key.len == 0 || rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: \"%V\" needs key= and rate=", &cmd->name);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &key;
    ccv.complex_value = &zone->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    zone->interval = (int64_t) per * 1000000 / rate;
    zone->capacity = (ngx_uint_t) burst + 1;
    zone->window =
        (ngx_uint_t) (((int64_t) zone->capacity * zone->interval + 999999)
                      / 1000000);

    /* RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers): the bucket
     * holds q requests and refills completely in w seconds */

    p = ngx_pnalloc(cf->pool,
                    zone->name.len + sizeof("\"\";q=;w=") - 1
                        + 2 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->policy.data = p;
    zone->policy.len = ngx_sprintf(p, "\"%V\";q=%ui;w=%ui", &zone->name,
                                   zone->capacity, zone->window)
        - p;

    zone->shm_zone = ngx_shared_memory_add(cf, &zone->name, size,
                                           &ngx_http_taskmgr_limit_module);
    if (zone->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: duplicate taskmgr_limit_zone \"%V\"",
                           &zone->name);
        return NGX_CONF_ERROR;
    }

    zone->shm_zone->init = ngx_http_taskmgr_limit_init_zone;
    zone->shm_zone->data = zone;

    zp = ngx_array_push(&lmcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = zone;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "taskmgr: invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


/* taskmgr_limit off | zone=<name> [dry_run] [on_redis_error=<mode>] */

static char *
ngx_http_taskmgr_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_limit_loc_conf_t *llcf = conf;

    ngx_str_t                *value, s;
    ngx_uint_t                i;
    ngx_conf_enum_t          *m;
    ngx_http_taskmgr_limit_t *limit;

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        if (llcf->limits != NGX_CONF_UNSET_PTR) {
            return "is duplicate";
        }

        llcf->limits = NULL;
        return NGX_CONF_OK;
    }

    if (llcf->limits == NULL) {
        return "is combined with \"off\"";
    }

    if (llcf->limits == NGX_CONF_UNSET_PTR) {
        llcf->limits =
            ngx_array_create(cf->pool, 2, sizeof(ngx_http_taskmgr_limit_t));
        if (llcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (llcf->limits->nelts == NGX_HTTP_TASKMGR_LIMIT_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: more than %d \"taskmgr_limit\" in one "
                           "location",
                           NGX_HTTP_TASKMGR_LIMIT_MAX);
        return NGX_CONF_ERROR;
    }

    limit = ngx_array_push(llcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(limit, sizeof(ngx_http_taskmgr_limit_t));
    limit->on_error = NGX_HTTP_TASKMGR_LIMIT_LOCAL;
    limit->file = cf->conf_file->file.name.data;
    limit->line = cf->conf_file->line;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            limit->zone_name.data = value[i].data + 5;
            limit->zone_name.len = value[i].len - 5;
            continue;
        }

        if (ngx_strcmp(value[i].data, "dry_run") == 0) {
            limit->dry_run = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "on_redis_error=", 15) == 0) {
            s.data = value[i].data + 15;
            s.len = value[i].len - 15;

            for (m = ngx_http_taskmgr_limit_on_error; m->name.len; m++) {
                if (m->name.len == s.len
                    && ngx_strncmp(m->name.data, s.data, s.len) == 0) {
                    break;
                }
            }

            if (m->name.len == 0) {
                goto invalid;
            }

            limit->on_error = m->value;
            continue;
        }

        goto invalid;
    }

    if (limit->zone_name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr: \"%V\" needs zone=", &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "taskmgr: invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


/*
 * A reload keeps the buckets of a zone of the same name (and size: nginx
 * makes a new zone otherwise): their TATs stay meaningful with a new rate.
 */

static ngx_int_t
ngx_http_taskmgr_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_taskmgr_limit_zone_t *ozone = data;

    size_t                         len;
    ngx_http_taskmgr_limit_zone_t *zone;

    zone = shm_zone->data;

    if (ozone) {
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh =
        ngx_slab_alloc(zone->shpool, sizeof(ngx_http_taskmgr_limit_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_taskmgr_limit_rbtree_insert_value);
    ngx_queue_init(&zone->sh->queue);

    len = sizeof(" in taskmgr_limit_zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in taskmgr_limit_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is handled (and logged) by the limiter itself */
    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_taskmgr_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
                                           ngx_rbtree_node_t *node,
                                           ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t            **p;
    ngx_http_taskmgr_limit_node_t *lrn, *lrnt;

    for (;;) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            lrn = (ngx_http_taskmgr_limit_node_t *) &node->color;
            lrnt = (ngx_http_taskmgr_limit_node_t *) &temp->color;

            p = (ngx_memcmp(lrn->digest, lrnt->digest,
                            NGX_HTTP_TASKMGR_LIMIT_DIGEST_LEN)
                 < 0)
                ? &temp->left
                : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_int_t
ngx_http_taskmgr_limit_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt                *h;
    ngx_http_core_main_conf_t          *cmcf;
    ngx_http_taskmgr_limit_main_conf_t *lmcf;

    lmcf =
        ngx_http_conf_get_module_main_conf(cf, ngx_http_taskmgr_limit_module);

    /* no zone, no limit: no phase handler, no filter */

    if (lmcf->zones.nelts == 0) {
        return NGX_OK;
    }

    if (ngx_http_taskmgr_redis_script(&ngx_http_taskmgr_limit_script) != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_taskmgr_limit_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_taskmgr_limit_header_filter;

    return NGX_OK;
}
