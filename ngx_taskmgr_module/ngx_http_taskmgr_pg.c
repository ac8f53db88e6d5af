/*
 * Copyright (C) taskmgr developers
 *
 * Connection states: DOWN -> CONNECTING -> PREPARING -> IDLE <-> BUSY.
 * Any failure goes back to DOWN and a reconnect timer with back-off.
 * Events are level-triggered: the read event stays registered while the
 * connection is up (it notices EOF on idle connections), the write event
 * only while libpq has output to flush or waits to write during connect.
 */


#include "ngx_http_taskmgr_pg.h"
#include "ngx_http_taskmgr_sql.h"


#define NGX_HTTP_TASKMGR_PG_BACKOFF_MIN 100
#define NGX_HTTP_TASKMGR_PG_BACKOFF_MAX 5000


typedef enum {
    NGX_HTTP_TASKMGR_PG_DOWN = 0,
    NGX_HTTP_TASKMGR_PG_CONNECTING,
    NGX_HTTP_TASKMGR_PG_PREPARING,
    NGX_HTTP_TASKMGR_PG_IDLE,
    NGX_HTTP_TASKMGR_PG_BUSY
} ngx_http_taskmgr_pg_state_e;


struct ngx_http_taskmgr_pg_conn_s {
    PGconn                      *pgconn;
    ngx_connection_t            *c;
    ngx_http_taskmgr_pg_pool_t  *pool;
    ngx_http_taskmgr_pg_query_t *query;
    ngx_http_taskmgr_pg_state_e  state;
    ngx_queue_t                  idle; /* in pool->idle */
    ngx_event_t                  reconnect;
    ngx_msec_t                   backoff;
    ngx_uint_t                   index;
    unsigned                     flushing : 1;
    unsigned                     in_idle : 1;
};


struct ngx_http_taskmgr_pg_pool_s {
    ngx_http_taskmgr_main_conf_t *mcf;
    ngx_pool_t                   *pool;
    ngx_log_t                    *log;
    ngx_http_taskmgr_pg_conn_t   *conns;
    ngx_uint_t                    nconns;
    ngx_uint_t                    nup;    /* not DOWN */
    ngx_uint_t                    nready; /* IDLE or BUSY */
    ngx_queue_t                   idle;
    ngx_queue_t                   waiting;
    ngx_uint_t                    nwaiting;
    ngx_str_t                     setup;
    unsigned                      destroying : 1;
};


static void      ngx_http_taskmgr_pg_connect(ngx_http_taskmgr_pg_conn_t *pc);
static void      ngx_http_taskmgr_pg_reconnect_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_taskmgr_pg_bind(ngx_http_taskmgr_pg_conn_t *pc);
static void      ngx_http_taskmgr_pg_unbind(ngx_http_taskmgr_pg_conn_t *pc);
static ngx_int_t ngx_http_taskmgr_pg_want(ngx_http_taskmgr_pg_conn_t *pc,
                                          ngx_uint_t read, ngx_uint_t write);
static void      ngx_http_taskmgr_pg_event_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_taskmgr_pg_poll(ngx_http_taskmgr_pg_conn_t *pc);
static ngx_int_t ngx_http_taskmgr_pg_flush(ngx_http_taskmgr_pg_conn_t *pc);
static ngx_int_t ngx_http_taskmgr_pg_receive(ngx_http_taskmgr_pg_conn_t *pc);
static void      ngx_http_taskmgr_pg_fail(ngx_http_taskmgr_pg_conn_t *pc,
                                          const char                 *what);
static void      ngx_http_taskmgr_pg_close(ngx_http_taskmgr_pg_conn_t *pc);
static void      ngx_http_taskmgr_pg_set_idle(ngx_http_taskmgr_pg_conn_t *pc);
static ngx_int_t ngx_http_taskmgr_pg_send(ngx_http_taskmgr_pg_conn_t  *pc,
                                          ngx_http_taskmgr_pg_query_t *q);
static void      ngx_http_taskmgr_pg_dispatch(ngx_http_taskmgr_pg_pool_t *pool);
static void      ngx_http_taskmgr_pg_complete(ngx_http_taskmgr_pg_query_t *q,
                                              ngx_int_t rc, PGresult *res);
static void ngx_http_taskmgr_pg_fail_waiting(ngx_http_taskmgr_pg_pool_t *pool);
static void ngx_http_taskmgr_pg_timeout_handler(ngx_event_t *ev);
static void ngx_http_taskmgr_pg_cleanup(void *data);
static void ngx_http_taskmgr_pg_notice(void *arg, const char *message);
static void ngx_http_taskmgr_pg_res_cleanup(void *data);


ngx_http_taskmgr_pg_pool_t *
ngx_http_taskmgr_pg_pool_create(ngx_cycle_t                  *cycle,
                                ngx_http_taskmgr_main_conf_t *mcf)
{
    ngx_uint_t                  i;
    ngx_pool_t                 *p;
    ngx_http_taskmgr_pg_conn_t *pc;
    ngx_http_taskmgr_pg_pool_t *pool;

    p = ngx_create_pool(4096, cycle->log);
    if (p == NULL) {
        return NULL;
    }

    pool = ngx_pcalloc(p, sizeof(ngx_http_taskmgr_pg_pool_t));
    if (pool == NULL) {
        ngx_destroy_pool(p);
        return NULL;
    }

    pool->mcf = mcf;
    pool->pool = p;
    pool->log = cycle->log;
    pool->nconns = mcf->pg_pool_size;
    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->waiting);

    if (ngx_http_taskmgr_sql_setup(p, mcf->pg_query_timeout, &pool->setup)
        != NGX_OK)
    {
        ngx_destroy_pool(p);
        return NULL;
    }

    pool->conns =
        ngx_pcalloc(p, pool->nconns * sizeof(ngx_http_taskmgr_pg_conn_t));
    if (pool->conns == NULL) {
        ngx_destroy_pool(p);
        return NULL;
    }

    for (i = 0; i < pool->nconns; i++) {
        pc = &pool->conns[i];
        pc->pool = pool;
        pc->index = i;
        pc->reconnect.handler = ngx_http_taskmgr_pg_reconnect_handler;
        pc->reconnect.data = pc;
        pc->reconnect.log = cycle->log;
        pc->reconnect.cancelable = 1;
    }

    for (i = 0; i < pool->nconns; i++) {
        ngx_http_taskmgr_pg_connect(&pool->conns[i]);
    }

    return pool;
}


void
ngx_http_taskmgr_pg_pool_destroy(ngx_http_taskmgr_pg_pool_t *pool)
{
    ngx_uint_t                  i;
    ngx_http_taskmgr_pg_conn_t *pc;

    pool->destroying = 1;

    ngx_http_taskmgr_pg_fail_waiting(pool);

    for (i = 0; i < pool->nconns; i++) {
        pc = &pool->conns[i];

        if (pc->reconnect.timer_set) {
            ngx_del_timer(&pc->reconnect);
        }

        if (pc->query) {
            ngx_http_taskmgr_pg_complete(pc->query,
                                         NGX_HTTP_SERVICE_UNAVAILABLE, NULL);
            pc->query = NULL;
        }

        ngx_http_taskmgr_pg_close(pc);
    }

    ngx_destroy_pool(pool->pool);
}


static void
ngx_http_taskmgr_pg_connect(ngx_http_taskmgr_pg_conn_t *pc)
{
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = pc->pool->mcf;

    if (ngx_exiting || ngx_terminate || ngx_quit || pc->pool->destroying) {
        return;
    }

    pc->pgconn =
        PQconnectStartParams((const char *const *) mcf->pg_keywords->elts,
                             (const char *const *) mcf->pg_values->elts, 0);

    if (pc->pgconn == NULL) {
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "taskmgr: postgres: PQconnectStartParams() failed");
        ngx_http_taskmgr_pg_fail(pc, NULL);
        return;
    }

    if (PQstatus(pc->pgconn) == CONNECTION_BAD) {
        ngx_http_taskmgr_pg_fail(pc, "connect");
        return;
    }

    (void) PQsetNoticeProcessor(pc->pgconn, ngx_http_taskmgr_pg_notice, pc);

    pc->state = NGX_HTTP_TASKMGR_PG_CONNECTING;
    pc->pool->nup++;

    if (ngx_http_taskmgr_pg_bind(pc) != NGX_OK) {
        ngx_http_taskmgr_pg_fail(pc, NULL);
        return;
    }

    ngx_add_timer(pc->c->read, mcf->pg_connect_timeout);

    /* libpq starts by waiting for the socket to become writable */
    if (ngx_http_taskmgr_pg_want(pc, 0, 1) != NGX_OK) {
        ngx_http_taskmgr_pg_fail(pc, NULL);
    }
}


static void
ngx_http_taskmgr_pg_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_taskmgr_pg_conn_t *pc;

    pc = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "taskmgr: postgres: reconnecting #%ui", pc->index);

    ngx_http_taskmgr_pg_connect(pc);
}


static ngx_int_t
ngx_http_taskmgr_pg_bind(ngx_http_taskmgr_pg_conn_t *pc)
{
    int               fd;
    ngx_connection_t *c;

    fd = PQsocket(pc->pgconn);
    if (fd == -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, pc->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = pc;
    c->read->handler = ngx_http_taskmgr_pg_event_handler;
    c->write->handler = ngx_http_taskmgr_pg_event_handler;
    c->read->log = pc->pool->log;
    c->write->log = pc->pool->log;
    c->log = pc->pool->log;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    pc->c = c;

    return NGX_OK;
}


/* forget the nginx connection; libpq owns and closes the socket */
static void
ngx_http_taskmgr_pg_unbind(ngx_http_taskmgr_pg_conn_t *pc)
{
    ngx_connection_t *c;

    c = pc->c;
    if (c == NULL) {
        return;
    }

    /* libpq closes the socket in PQfinish(), or has closed it already */
    pc->c = NULL;
    ngx_http_taskmgr_release_connection(c);
}


static ngx_int_t
ngx_http_taskmgr_pg_want(ngx_http_taskmgr_pg_conn_t *pc, ngx_uint_t read,
                         ngx_uint_t write)
{
    ngx_connection_t *c;

    c = pc->c;

    if (read && !c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (!read && c->read->active) {
        if (ngx_del_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (write && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (!write && c->write->active) {
        if (ngx_del_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_taskmgr_pg_event_handler(ngx_event_t *ev)
{
    ngx_int_t                   rc;
    ngx_connection_t           *c;
    ngx_http_taskmgr_pg_conn_t *pc;

    c = ev->data;
    pc = c->data;

    if (ev->timedout) {
        ev->timedout = 0;
        ngx_http_taskmgr_pg_fail(pc, "connect timed out");
        return;
    }

    switch (pc->state) {

    case NGX_HTTP_TASKMGR_PG_CONNECTING:
        rc = ngx_http_taskmgr_pg_poll(pc);
        break;

    case NGX_HTTP_TASKMGR_PG_PREPARING:
    case NGX_HTTP_TASKMGR_PG_BUSY:
    case NGX_HTTP_TASKMGR_PG_IDLE:
        rc = NGX_OK;

        /* libpq: on read readiness consume input first, then flush */
        if (!ev->write) {
            rc = ngx_http_taskmgr_pg_receive(pc);
        }

        if (rc == NGX_OK && pc->flushing) {
            rc = ngx_http_taskmgr_pg_flush(pc);
        }

        break;

    default:
        rc = NGX_OK;
        break;
    }

    if (rc == NGX_ERROR) {
        ngx_http_taskmgr_pg_fail(pc, "i/o");
    }
}


static ngx_int_t
ngx_http_taskmgr_pg_poll(ngx_http_taskmgr_pg_conn_t *pc)
{
    PostgresPollingStatusType st;

    st = PQconnectPoll(pc->pgconn);

    /* libpq may switch sockets while it tries addresses */
    if (PQsocket(pc->pgconn) != pc->c->fd) {
        ngx_msec_t left;

        left = pc->c->read->timer_set
            ? (ngx_msec_t) (pc->c->read->timer.key - ngx_current_msec)
            : pc->pool->mcf->pg_connect_timeout;

        ngx_http_taskmgr_pg_unbind(pc);

        if (st == PGRES_POLLING_FAILED
            || ngx_http_taskmgr_pg_bind(pc) != NGX_OK) {
            ngx_http_taskmgr_pg_fail(pc, "connect");
            return NGX_DONE;
        }

        ngx_add_timer(pc->c->read, left);
    }

    switch (st) {

    case PGRES_POLLING_READING:
        return ngx_http_taskmgr_pg_want(pc, 1, 0);

    case PGRES_POLLING_WRITING:
        return ngx_http_taskmgr_pg_want(pc, 0, 1);

    case PGRES_POLLING_OK:
        break;

    default:
        ngx_http_taskmgr_pg_fail(pc, "connect");
        return NGX_DONE;
    }

    if (PQsetnonblocking(pc->pgconn, 1) != 0) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "taskmgr: postgres: connected #%ui", pc->index);

    /* set the session up and prepare every statement in one round trip */
    if (!PQsendQuery(pc->pgconn, (char *) pc->pool->setup.data)) {
        return NGX_ERROR;
    }

    pc->state = NGX_HTTP_TASKMGR_PG_PREPARING;

    if (ngx_http_taskmgr_pg_want(pc, 1, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_taskmgr_pg_flush(pc);
}


static ngx_int_t
ngx_http_taskmgr_pg_flush(ngx_http_taskmgr_pg_conn_t *pc)
{
    int rc;

    rc = PQflush(pc->pgconn);

    if (rc == -1) {
        return NGX_ERROR;
    }

    pc->flushing = (rc == 1);

    return ngx_http_taskmgr_pg_want(pc, 1, pc->flushing);
}


static ngx_int_t
ngx_http_taskmgr_pg_receive(ngx_http_taskmgr_pg_conn_t *pc)
{
    PGresult                    *res;
    PGnotify                    *n;
    ngx_http_taskmgr_pg_query_t *q;

    if (!PQconsumeInput(pc->pgconn)) {
        return NGX_ERROR;
    }

    while ((n = PQnotifies(pc->pgconn)) != NULL) {
        PQfreemem(n);
    }

    if (pc->state == NGX_HTTP_TASKMGR_PG_IDLE) {
        /* nothing is expected: EOF or a server message was consumed */
        if (PQstatus(pc->pgconn) != CONNECTION_OK) {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    for (;;) {

        if (PQisBusy(pc->pgconn)) {
            return NGX_OK;
        }

        res = PQgetResult(pc->pgconn);

        if (res == NULL) {
            break;
        }

        if (pc->state == NGX_HTTP_TASKMGR_PG_PREPARING) {
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                              "taskmgr: postgres: preparing statements "
                              "failed: %s",
                              PQresultErrorMessage(res));
                PQclear(res);
                return NGX_ERROR;
            }

            PQclear(res);
            continue;
        }

        q = pc->query;

        if (q == NULL || q->res != NULL) {
            /* the request went away, or an unexpected extra result */
            PQclear(res);
            continue;
        }

        q->res = res;
    }

    /* the command cycle is complete */

    if (PQtransactionStatus(pc->pgconn) != PQTRANS_IDLE) {
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "taskmgr: postgres: connection left inside "
                      "a transaction, closing it");
        return NGX_ERROR;
    }

    if (pc->state == NGX_HTTP_TASKMGR_PG_PREPARING) {
        if (pc->c->read->timer_set) {
            ngx_del_timer(pc->c->read);
        }

        pc->backoff = 0;
        pc->pool->nready++;
        ngx_http_taskmgr_pg_set_idle(pc);
        ngx_http_taskmgr_pg_dispatch(pc->pool);
        return NGX_OK;
    }

    q = pc->query;
    pc->query = NULL;
    pc->state = NGX_HTTP_TASKMGR_PG_IDLE;
    ngx_http_taskmgr_pg_set_idle(pc);

    if (q) {
        res = q->res;
        q->res = NULL;
        q->conn = NULL;
        ngx_http_taskmgr_pg_complete(q, NGX_OK, res);
    }

    ngx_http_taskmgr_pg_dispatch(pc->pool);

    return NGX_OK;
}


static void
ngx_http_taskmgr_pg_set_idle(ngx_http_taskmgr_pg_conn_t *pc)
{
    /*
     * Not marked c->idle: an exiting worker still serves the requests it
     * has (a keepalive client may send one more while it shuts down); the
     * connections hold no timer, so they do not delay the exit, and
     * exit_process closes them.
     */
    pc->state = NGX_HTTP_TASKMGR_PG_IDLE;

    if (!pc->in_idle) {
        ngx_queue_insert_tail(&pc->pool->idle, &pc->idle);
        pc->in_idle = 1;
    }
}


/* a connection broke: fail its query, schedule a reconnect */
static void
ngx_http_taskmgr_pg_fail(ngx_http_taskmgr_pg_conn_t *pc, const char *what)
{
    ngx_http_taskmgr_pg_pool_t  *pool;
    ngx_http_taskmgr_pg_query_t *q;

    pool = pc->pool;

    if (what && pc->pgconn) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "taskmgr: postgres: connection #%ui failed (%s): %s",
                      pc->index, what, PQerrorMessage(pc->pgconn));
    }

    q = pc->query;
    pc->query = NULL;

    ngx_http_taskmgr_pg_close(pc);

    if (q) {
        q->conn = NULL;
        ngx_http_taskmgr_pg_complete(q, NGX_HTTP_SERVICE_UNAVAILABLE, NULL);
    }

    if (ngx_exiting || ngx_terminate || ngx_quit || pool->destroying) {
        return;
    }

    pc->backoff = pc->backoff
        ? ngx_min(pc->backoff * 2, NGX_HTTP_TASKMGR_PG_BACKOFF_MAX)
        : NGX_HTTP_TASKMGR_PG_BACKOFF_MIN;

    if (!pc->reconnect.timer_set) {
        ngx_add_timer(&pc->reconnect, pc->backoff);
    }

    if (pool->nup == 0) {
        /* nothing can serve the waiters any time soon */
        ngx_http_taskmgr_pg_fail_waiting(pool);
    }
}


static void
ngx_http_taskmgr_pg_close(ngx_http_taskmgr_pg_conn_t *pc)
{
    ngx_http_taskmgr_pg_pool_t *pool;

    pool = pc->pool;

    if (pc->in_idle) {
        ngx_queue_remove(&pc->idle);
        pc->in_idle = 0;
    }

    if (pc->state == NGX_HTTP_TASKMGR_PG_IDLE
        || pc->state == NGX_HTTP_TASKMGR_PG_BUSY)
    {
        pool->nready--;
    }

    if (pc->state != NGX_HTTP_TASKMGR_PG_DOWN) {
        pool->nup--;
    }

    pc->state = NGX_HTTP_TASKMGR_PG_DOWN;
    pc->flushing = 0;

    ngx_http_taskmgr_pg_unbind(pc);

    if (pc->pgconn) {
        PQfinish(pc->pgconn);
        pc->pgconn = NULL;
    }
}


ngx_http_taskmgr_pg_query_t *
ngx_http_taskmgr_pg_query_create(ngx_http_request_t *r, ngx_uint_t stmt,
                                 ngx_http_taskmgr_pg_handler_pt handler)
{
    ngx_http_cleanup_t          *cln;
    ngx_http_taskmgr_pg_query_t *q;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NULL;
    }

    q = ngx_pcalloc(r->pool, sizeof(ngx_http_taskmgr_pg_query_t));
    if (q == NULL) {
        return NULL;
    }

    q->stmt = stmt;
    q->handler = handler;
    q->request = r;
    q->mem = r->pool;
    q->log = r->connection->log;
    q->timer.handler = ngx_http_taskmgr_pg_timeout_handler;
    q->timer.data = q;
    q->timer.log = r->connection->log;
    q->done = 1; /* until submitted */

    cln->handler = ngx_http_taskmgr_pg_cleanup;
    cln->data = q;

    return q;
}


ngx_http_taskmgr_pg_query_t *
ngx_http_taskmgr_pg_query_create_bg(ngx_pool_t *mem, ngx_log_t *log,
                                    ngx_uint_t                     stmt,
                                    ngx_http_taskmgr_pg_handler_pt handler)
{
    ngx_http_taskmgr_pg_query_t *q;

    q = ngx_pcalloc(mem, sizeof(ngx_http_taskmgr_pg_query_t));
    if (q == NULL) {
        return NULL;
    }

    q->stmt = stmt;
    q->handler = handler;
    q->mem = mem;
    q->log = log;
    q->timer.handler = ngx_http_taskmgr_pg_timeout_handler;
    q->timer.data = q;
    q->timer.log = log;
    q->done = 1;

    return q;
}


void
ngx_http_taskmgr_pg_param(ngx_http_taskmgr_pg_query_t *q, ngx_str_t *value)
{
    u_char *p;

    if (q->nparams >= NGX_HTTP_TASKMGR_PG_MAX_PARAMS) {
        /* a programming error: the statement will fail loudly */
        q->nparams++;
        return;
    }

    if (value == NULL || value->data == NULL) {
        q->params[q->nparams] = NULL;
        q->lengths[q->nparams] = 0;
        q->nparams++;
        return;
    }

    /* libpq reads text parameters up to their NUL */
    p = ngx_pnalloc(q->mem, value->len + 1);
    if (p == NULL) {
        q->nparams = NGX_HTTP_TASKMGR_PG_MAX_PARAMS + 1;
        return;
    }

    ngx_memcpy(p, value->data, value->len);
    p[value->len] = '\0';

    q->params[q->nparams] = (const char *) p;
    q->lengths[q->nparams] = (int) value->len;
    q->nparams++;
}


ngx_int_t
ngx_http_taskmgr_pg_submit(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_queue_t                  *qq;
    ngx_http_taskmgr_pg_conn_t   *pc;
    ngx_http_taskmgr_pg_pool_t   *pool;
    ngx_http_taskmgr_main_conf_t *mcf;

    mcf = ngx_http_taskmgr_main_conf();
    pool = mcf ? mcf->pg : NULL;

    if (q->nparams > NGX_HTTP_TASKMGR_PG_MAX_PARAMS) {
        ngx_log_error(NGX_LOG_ALERT, q->log, 0,
                      "taskmgr: postgres: too many parameters or "
                      "no memory for them");
        return NGX_ERROR;
    }

    if (pool == NULL || pool->nup == 0) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    q->pool = pool;
    q->done = 0;
    q->rc = NGX_OK;
    q->res = NULL;
    q->sqlstate = NULL;

    while (!ngx_queue_empty(&pool->idle)) {
        qq = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(qq, ngx_http_taskmgr_pg_conn_t, idle);

        if (ngx_http_taskmgr_pg_send(pc, q) == NGX_OK) {
            ngx_add_timer(&q->timer, mcf->pg_query_timeout);
            return NGX_OK;
        }

        ngx_http_taskmgr_pg_fail(pc, "send");

        if (pool->nup == 0) {
            q->done = 1;
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }

    if (pool->nwaiting >= mcf->pg_queue_size) {
        q->done = 1;
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "taskmgr: postgres: wait queue full (%ui)",
                      pool->nwaiting);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_queue_insert_tail(&pool->waiting, &q->queue);
    pool->nwaiting++;
    q->waiting = 1;
    ngx_add_timer(&q->timer, mcf->pg_query_timeout);

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_pg_send(ngx_http_taskmgr_pg_conn_t  *pc,
                         ngx_http_taskmgr_pg_query_t *q)
{
    if (!PQsendQueryPrepared(pc->pgconn,
                             ngx_http_taskmgr_sql_stmts[q->stmt].name,
                             (int) q->nparams, q->params, q->lengths, NULL, 0))
    {
        return NGX_ERROR;
    }

    if (pc->in_idle) {
        ngx_queue_remove(&pc->idle);
        pc->in_idle = 0;
    }

    pc->state = NGX_HTTP_TASKMGR_PG_BUSY;
    pc->query = q;
    q->conn = pc;

    if (ngx_http_taskmgr_pg_flush(pc) != NGX_OK) {
        pc->query = NULL;
        q->conn = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_taskmgr_pg_dispatch(ngx_http_taskmgr_pg_pool_t *pool)
{
    ngx_queue_t                 *qq;
    ngx_http_taskmgr_pg_conn_t  *pc;
    ngx_http_taskmgr_pg_query_t *q;

    while (!ngx_queue_empty(&pool->waiting) && !ngx_queue_empty(&pool->idle)) {
        qq = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qq, ngx_http_taskmgr_pg_query_t, queue);

        qq = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(qq, ngx_http_taskmgr_pg_conn_t, idle);

        ngx_queue_remove(&q->queue);
        pool->nwaiting--;
        q->waiting = 0;

        if (ngx_http_taskmgr_pg_send(pc, q) != NGX_OK) {
            /* put the query back in front and drop the connection */
            ngx_queue_insert_head(&pool->waiting, &q->queue);
            pool->nwaiting++;
            q->waiting = 1;
            ngx_http_taskmgr_pg_fail(pc, "send");
        }
    }
}


static void
ngx_http_taskmgr_pg_fail_waiting(ngx_http_taskmgr_pg_pool_t *pool)
{
    ngx_queue_t                 *qq;
    ngx_http_taskmgr_pg_query_t *q;

    while (!ngx_queue_empty(&pool->waiting)) {
        qq = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qq, ngx_http_taskmgr_pg_query_t, queue);
        ngx_queue_remove(qq);
        pool->nwaiting--;
        q->waiting = 0;
        ngx_http_taskmgr_pg_complete(q, NGX_HTTP_SERVICE_UNAVAILABLE, NULL);
    }
}


/*
 * Hands the outcome to the query's handler.  The handler usually
 * finalizes the request, which frees q: nothing touches q afterwards.
 */
static void
ngx_http_taskmgr_pg_complete(ngx_http_taskmgr_pg_query_t *q, ngx_int_t rc,
                             PGresult *res)
{
    ngx_connection_t   *c;
    ngx_pool_cleanup_t *cln;

    if (q->done) {
        if (res) {
            PQclear(res);
        }
        return;
    }

    q->done = 1;

    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    if (q->res && q->res != res) {
        /* a partial result: the cycle broke off (timeout, lost link) */
        PQclear(q->res);
    }

    q->rc = rc;
    q->res = res;
    q->sqlstate = NULL;

    if (res && PQresultStatus(res) != PGRES_TUPLES_OK
        && PQresultStatus(res) != PGRES_COMMAND_OK)
    {
        q->sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (q->sqlstate == NULL) {
            q->sqlstate = "XX000";
        }
    }

    c = q->request ? q->request->connection : NULL;

    if (res) {
        /* the result lives as long as the request: response bodies point
         * into it instead of being copied */
        cln = ngx_pool_cleanup_add(q->mem, 0);
        if (cln == NULL) {
            PQclear(res);
            q->res = NULL;
            q->sqlstate = NULL;
            q->rc = NGX_ERROR;

        } else {
            cln->handler = ngx_http_taskmgr_pg_res_cleanup;
            cln->data = res;
        }
    }

    q->handler(q);

    if (c) {
        ngx_http_run_posted_requests(c);
    }
}


static void
ngx_http_taskmgr_pg_timeout_handler(ngx_event_t *ev)
{
    ngx_http_taskmgr_pg_conn_t  *pc;
    ngx_http_taskmgr_pg_query_t *q;

    q = ev->data;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "taskmgr: postgres: query timed out%s",
                  q->waiting ? " while waiting for a connection" : "");

    if (q->waiting) {
        ngx_queue_remove(&q->queue);
        q->pool->nwaiting--;
        q->waiting = 0;
        ngx_http_taskmgr_pg_complete(q, NGX_HTTP_SERVICE_UNAVAILABLE, NULL);
        return;
    }

    pc = q->conn;

    if (pc) {
        /*
         * libpq 15 cancels only with the blocking PQcancel(); close the
         * connection instead, statement_timeout ends the backend's work
         */
        pc->query = NULL;
        q->conn = NULL;
        ngx_http_taskmgr_pg_fail(pc, NULL);
    }

    ngx_http_taskmgr_pg_complete(q, NGX_HTTP_SERVICE_UNAVAILABLE, NULL);
}


/* the request is going away: make sure no late result touches it */
static void
ngx_http_taskmgr_pg_cleanup(void *data)
{
    ngx_http_taskmgr_pg_query_t *q = data;

    if (q->done) {
        return;
    }

    q->done = 1;

    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    if (q->waiting) {
        ngx_queue_remove(&q->queue);
        q->pool->nwaiting--;
        q->waiting = 0;
    }

    if (q->conn) {
        /* the connection drains and discards the result */
        q->conn->query = NULL;
        q->conn = NULL;
    }

    if (q->res) {
        /* a partial result received before the request went away */
        PQclear(q->res);
        q->res = NULL;
    }
}


ngx_int_t
ngx_http_taskmgr_pg_value(ngx_http_taskmgr_pg_query_t *q, int col,
                          ngx_str_t *out)
{
    if (q->res == NULL || q->sqlstate != NULL || PQntuples(q->res) < 1
        || col >= PQnfields(q->res) || PQgetisnull(q->res, 0, col))
    {
        out->len = 0;
        out->data = NULL;
        return NGX_DECLINED;
    }

    out->data = (u_char *) PQgetvalue(q->res, 0, col);
    out->len = PQgetlength(q->res, 0, col);

    return NGX_OK;
}


static void
ngx_http_taskmgr_pg_notice(void *arg, const char *message)
{
    ngx_http_taskmgr_pg_conn_t *pc = arg;

    ngx_log_error(NGX_LOG_INFO, pc->pool->log, 0, "taskmgr: postgres: %s",
                  message);
}


static void
ngx_http_taskmgr_pg_res_cleanup(void *data)
{
    PQclear(data);
}
