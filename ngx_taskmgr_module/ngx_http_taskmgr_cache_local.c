/*
 * Copyright (C) taskmgr developers
 *
 * The worker's own copies of cache entries.  A copy is keyed by tenant and
 * route and remembers the tenant generation it was read under; it is served
 * only after Redis confirmed, in the same round trip as the member and
 * session markers, that the generation is still the tenant's current one.
 * So a hit moves a few bytes from Redis instead of the whole entry, and a
 * copy is never fresher or staler than the Redis entry it stands for.
 *
 * Copies live at most the cache TTL, are dropped when any Redis connection
 * of the worker is lost (Redis may have restarted and counted generations
 * afresh), and are evicted least recently used first beyond
 * taskmgr_cache_local_size.  A copy in use by a request is freed only when
 * the last such request is done with it.
 */


#include "ngx_http_taskmgr_handlers.h"
#include "ngx_http_taskmgr_redis.h"
#include "ngx_http_taskmgr_cache.h"


typedef struct {
    ngx_rbtree_t      tree;
    ngx_rbtree_node_t sentinel;
    ngx_queue_t       lru; /* most recently used first */
    size_t            size;
    ngx_uint_t        epoch;
    unsigned          ready : 1;
} ngx_http_taskmgr_cache_local_store_t;


static void ngx_http_taskmgr_cache_local_init(void);
static void ngx_http_taskmgr_cache_local_unlink(
    ngx_http_taskmgr_cache_local_t *e);
static void ngx_http_taskmgr_cache_local_release(void *data);
static void ngx_http_taskmgr_cache_local_flush(void);


static ngx_http_taskmgr_cache_local_store_t ngx_http_taskmgr_cache_local_store;


static void
ngx_http_taskmgr_cache_local_init(void)
{
    ngx_http_taskmgr_cache_local_store_t *st;

    st = &ngx_http_taskmgr_cache_local_store;

    ngx_rbtree_init(&st->tree, &st->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&st->lru);
    st->size = 0;
    st->epoch = ngx_http_taskmgr_redis_epoch();
    st->ready = 1;
}


/*
 * The copy of ws + route, referenced until r ends, or NULL.  Copies from
 * before a lost Redis connection, expired ones, and every copy when the
 * store is off, are never returned.
 */
ngx_http_taskmgr_cache_local_t *
ngx_http_taskmgr_cache_local_get(ngx_http_request_t *r, ngx_str_t *key)
{
    uint32_t                              hash;
    ngx_pool_cleanup_t                   *cln;
    ngx_http_taskmgr_main_conf_t         *mcf;
    ngx_http_taskmgr_cache_local_t       *e;
    ngx_http_taskmgr_cache_local_store_t *st;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_taskmgr_module);
    st = &ngx_http_taskmgr_cache_local_store;

    if (mcf->cache_local_size == 0 || !st->ready) {
        return NULL;
    }

    if (st->epoch != ngx_http_taskmgr_redis_epoch()) {
        ngx_http_taskmgr_cache_local_flush();
        return NULL;
    }

    hash = ngx_crc32_short(key->data, key->len);

    e = (ngx_http_taskmgr_cache_local_t *) ngx_str_rbtree_lookup(&st->tree, key,
                                                                 hash);
    if (e == NULL) {
        return NULL;
    }

    if ((ngx_msec_int_t) (e->expires - ngx_current_msec) <= 0) {
        ngx_http_taskmgr_cache_local_unlink(e);
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_taskmgr_cache_local_release;
    cln->data = e;
    e->refs++;

    ngx_queue_remove(&e->queue);
    ngx_queue_insert_head(&st->lru, &e->queue);

    return e;
}


/* a copy turned out outdated: nobody gets it any more */
void
ngx_http_taskmgr_cache_local_drop(ngx_http_taskmgr_cache_local_t *e)
{
    if (!e->dead) {
        ngx_http_taskmgr_cache_local_unlink(e);
    }
}


/*
 * Keeps a copy of "<etag>\n<link>\n<body>" read under generation gen,
 * replacing an older one, and references it until r ends.  NULL: not kept
 * (store off, too big, no memory): the caller has its own bytes.
 */
ngx_http_taskmgr_cache_local_t *
ngx_http_taskmgr_cache_local_put(ngx_http_request_t *r, ngx_str_t *key,
                                 ngx_str_t *gen, ngx_str_t *etag,
                                 ngx_str_t *link, ngx_str_t *body,
                                 ngx_msec_t ttl)
{
    u_char                               *p;
    size_t                                size;
    ngx_queue_t                          *q;
    ngx_pool_cleanup_t                   *cln;
    ngx_http_taskmgr_main_conf_t         *mcf;
    ngx_http_taskmgr_cache_local_t       *e, *old;
    ngx_http_taskmgr_cache_local_store_t *st;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_taskmgr_module);
    st = &ngx_http_taskmgr_cache_local_store;

    if (mcf->cache_local_size == 0 || ttl == 0) {
        return NULL;
    }

    if (!st->ready) {
        ngx_http_taskmgr_cache_local_init();
    }

    if (st->epoch != ngx_http_taskmgr_redis_epoch()) {
        ngx_http_taskmgr_cache_local_flush();
    }

    size = sizeof(ngx_http_taskmgr_cache_local_t) + key->len + gen->len
        + etag->len + link->len + body->len;

    if (size > mcf->cache_local_size / 4) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    e = ngx_alloc(size, r->connection->log);
    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, sizeof(ngx_http_taskmgr_cache_local_t));

    p = (u_char *) e + sizeof(ngx_http_taskmgr_cache_local_t);

    e->node.str.data = p;
    e->node.str.len = key->len;
    p = ngx_cpymem(p, key->data, key->len);

    e->gen.data = p;
    e->gen.len = gen->len;
    p = ngx_cpymem(p, gen->data, gen->len);

    e->etag.data = p;
    e->etag.len = etag->len;
    p = ngx_cpymem(p, etag->data, etag->len);

    e->link.data = p;
    e->link.len = link->len;
    p = ngx_cpymem(p, link->data, link->len);

    e->body.data = p;
    e->body.len = body->len;
    ngx_memcpy(p, body->data, body->len);

    e->node.node.key = ngx_crc32_short(key->data, key->len);
    e->size = size;
    e->expires = ngx_current_msec + ttl;
    e->refs = 1;

    cln->handler = ngx_http_taskmgr_cache_local_release;
    cln->data = e;

    old = (ngx_http_taskmgr_cache_local_t *) ngx_str_rbtree_lookup(
        &st->tree, key, (uint32_t) e->node.node.key);
    if (old) {
        ngx_http_taskmgr_cache_local_unlink(old);
    }

    /* room: least recently used copies go first */
    while (st->size + size > mcf->cache_local_size
           && !ngx_queue_empty(&st->lru)) {
        q = ngx_queue_last(&st->lru);
        ngx_http_taskmgr_cache_local_unlink(
            ngx_queue_data(q, ngx_http_taskmgr_cache_local_t, queue));
    }

    ngx_rbtree_insert(&st->tree, &e->node.node);
    ngx_queue_insert_head(&st->lru, &e->queue);
    st->size += size;

    return e;
}


/* out of the tree and the list; freed now or by its last request */
static void
ngx_http_taskmgr_cache_local_unlink(ngx_http_taskmgr_cache_local_t *e)
{
    ngx_http_taskmgr_cache_local_store_t *st;

    st = &ngx_http_taskmgr_cache_local_store;

    ngx_rbtree_delete(&st->tree, &e->node.node);
    ngx_queue_remove(&e->queue);
    st->size -= e->size;
    e->dead = 1;

    if (e->refs == 0) {
        ngx_free(e);
    }
}


static void
ngx_http_taskmgr_cache_local_release(void *data)
{
    ngx_http_taskmgr_cache_local_t *e = data;

    if (--e->refs == 0 && e->dead) {
        ngx_free(e);
    }
}


static void
ngx_http_taskmgr_cache_local_flush(void)
{
    ngx_queue_t                          *q;
    ngx_http_taskmgr_cache_local_store_t *st;

    st = &ngx_http_taskmgr_cache_local_store;

    while (!ngx_queue_empty(&st->lru)) {
        q = ngx_queue_head(&st->lru);
        ngx_http_taskmgr_cache_local_unlink(
            ngx_queue_data(q, ngx_http_taskmgr_cache_local_t, queue));
    }

    st->epoch = ngx_http_taskmgr_redis_epoch();
}


/* exit_process: requests are gone, every copy goes */
void
ngx_http_taskmgr_cache_local_destroy(void)
{
    if (ngx_http_taskmgr_cache_local_store.ready) {
        ngx_http_taskmgr_cache_local_flush();
    }
}
