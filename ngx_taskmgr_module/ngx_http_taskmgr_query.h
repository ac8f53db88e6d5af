/*
 * Copyright (C) taskmgr developers
 *
 * The task listing query language (API.md "Listing"): the query string
 * parsed against allow-lists, the SQL fragments of tm_api.task_find built
 * only from fixed text of this file, and signed keyset cursors.
 */

#ifndef _NGX_HTTP_TASKMGR_QUERY_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_QUERY_H_INCLUDED_


#include "ngx_http_taskmgr.h"
#include <libpq-fe.h>


#define NGX_HTTP_TASKMGR_LIST_SORT_MAX   6    /* distinct sort fields */
#define NGX_HTTP_TASKMGR_LIST_FILTER_MAX 16   /* filter[...] parameters */
#define NGX_HTTP_TASKMGR_LIST_IN_MAX     100  /* values of an in/nin list */
#define NGX_HTTP_TASKMGR_LIST_VALUE_MAX  4000 /* bytes of one filter value */
#define NGX_HTTP_TASKMGR_LIST_Q_MAX      256  /* characters of q */
#define NGX_HTTP_TASKMGR_LIST_CURSOR_MAX 4096
#define NGX_HTTP_TASKMGR_LIST_OFFSET_MAX 100000
#define NGX_HTTP_TASKMGR_LIST_FIELDS     10 /* filterable fields */
#define NGX_HTTP_TASKMGR_LIST_OPS        9
/* sort keys: the fields, maybe the rank, and id */
#define NGX_HTTP_TASKMGR_LIST_KEYS (NGX_HTTP_TASKMGR_LIST_SORT_MAX + 2)

#define NGX_HTTP_TASKMGR_DELETED_HIDE    0
#define NGX_HTTP_TASKMGR_DELETED_INCLUDE 1
#define NGX_HTTP_TASKMGR_DELETED_ONLY    2


typedef struct {
    ngx_uint_t key; /* index in the sort key table */
    ngx_uint_t desc;
} ngx_http_taskmgr_list_key_t;


typedef struct {
    ngx_int_t limit;
    ngx_int_t offset;
    ngx_int_t page; /* page mode: 1.., else 0 */
    unsigned  offset_mode : 1;
    unsigned  ranked : 1; /* q without sort: by ts_rank */
    unsigned  fast : 1;   /* the default list: prepared statements */
    unsigned  has_cursor : 1;

    ngx_uint_t                  nkeys; /* including id */
    ngx_http_taskmgr_list_key_t keys[NGX_HTTP_TASKMGR_LIST_KEYS];

    /* filters[field][op], data NULL when absent */
    ngx_str_t  filters[NGX_HTTP_TASKMGR_LIST_FIELDS][NGX_HTTP_TASKMGR_LIST_OPS];
    ngx_uint_t nfilters;

    ngx_str_t  q; /* data NULL when absent */
    ngx_uint_t deleted;

    ngx_str_t cursor;                            /* as given */
    ngx_str_t after[NGX_HTTP_TASKMGR_LIST_KEYS]; /* its values */

    ngx_str_t sort;  /* canonical sort spec, "-priority,due_at" */
    ngx_str_t canon; /* canonical query (sort, filters, q, deleted) */
    ngx_str_t base;  /* the raw query string without cursor/page/offset */

    /* the error of a refused query string */
    ngx_str_t   bad_name;
    const char *bad_message;
} ngx_http_taskmgr_list_t;


/*
 * Parses r->args.  NGX_OK; NGX_DECLINED with bad_name and bad_message set
 * (answer 400); NGX_ERROR (no memory).  search_max: how deep a search's
 * offset pages go (offset + limit; taskmgr_search_offset_max).
 */
ngx_int_t ngx_http_taskmgr_list_parse(ngx_http_request_t      *r,
                                      ngx_http_taskmgr_list_t *list,
                                      ngx_uint_t               search_max);

/* the cache route of this page: "l:<hex sha256>" */
ngx_int_t ngx_http_taskmgr_list_route(ngx_http_request_t      *r,
                                      ngx_http_taskmgr_list_t *list,
                                      ngx_str_t               *route);

/* the text parameters of tm_api.task_find; data NULL: none (SQL NULL) */
typedef struct {
    ngx_str_t where; /* p_where: the filters */
    ngx_str_t after; /* p_after: the keyset condition of a cursor */
    ngx_str_t gin;   /* p_gin: the tests the probe weighs */
    ngx_str_t order; /* p_order */
    ngx_str_t split; /* p_split: the branches, (condition, order) pairs */
    ngx_str_t args;  /* p_args: array literal of the values */
} ngx_http_taskmgr_list_sql_t;


ngx_int_t ngx_http_taskmgr_list_sql(ngx_http_request_t          *r,
                                    ngx_http_taskmgr_list_t     *list,
                                    ngx_http_taskmgr_list_sql_t *sql);

/* a test a GIN index serves (label eq/in, q) under a btree order: see
 * p_gin of tm_api.task_find */
ngx_uint_t ngx_http_taskmgr_list_probe(ngx_http_taskmgr_list_t *list);

/* the signed cursor after the row of res */
ngx_int_t ngx_http_taskmgr_list_cursor(ngx_http_request_t      *r,
                                       ngx_http_taskmgr_list_t *list,
                                       PGresult *res, int row,
                                       ngx_str_t *cursor);


#endif /* _NGX_HTTP_TASKMGR_QUERY_H_INCLUDED_ */
