/*
 * Copyright (C) taskmgr developers
 *
 * Task attachments.
 *
 * Upload: POST /v1/workspaces/{ws}/tasks/{id}/attachments?name=<file name>
 * with the raw file as the body and its type as Content-Type.  The name,
 * the declared type (taskmgr_attachment_types) and Content-Length
 * (taskmgr_attachment_max_size) are checked first, then PostgreSQL says
 * whether the caller may upload to this task (tm_api.attachment_check);
 * only then is the body read.  nginx streams it to a temporary file under
 * client_body_temp_path; a request body filter of this module hashes it
 * (SHA-256), counts it (chunked bodies) and keeps its first bytes for the
 * magic-byte check while it streams, so the file is never read again.  The
 * file is then linked to <taskmgr_attachment_path>/ab/cd/<sha256> (a
 * hard link: client_body_temp_path must be on the same file system; an
 * existing file of the same content is kept) by a thread of the pool named
 * by taskmgr_attachment_thread_pool, so that no stat(), mkdir() or link()
 * runs in the event loop, and one tm_api call records the row.
 *
 * Reads: GET .../tasks/{id}/attachments (the task's list) and
 * GET /v1/workspaces/{ws}/attachments/{id}; DELETE of the latter.  Every
 * attachment object gets a download_url signed here:
 *   /v1/files/<id>/<sha256>?exp=<unix>&type=<type>&name=<name>&sig=<hex>
 * sig = HMAC-SHA256(key, "<id>\n<sha256>\n<exp>\n<type>\n<name>").
 *
 * Download: taskmgr_attachment_files (a location of its own, no token)
 * checks the signature and the expiry and sends the file from disk, as the
 * static module does (sendfile where the location enables it).
 *
 * Garbage collection (taskmgr_attachment_gc, worker 0): a timer walks a
 * slice of the store in the thread pool (files older than the grace), asks
 * tm_api.attachment_orphans which of them no row names, and removes those
 * in the thread pool.  A removal renames the file to <sha256>.gc first and
 * deletes it only if its mtime is still old; an upload of the same content
 * touches the file (or links it anew if it is gone) before its row is
 * written, so a file is never removed under a row being written.  The walk
 * also removes directories it reads empty (<path>/ab/cd, then <path>/ab
 * after its last leaf); an upload whose directory went between its mkdir()
 * and its link() makes it again.
 */


#include "ngx_http_taskmgr_handlers.h"
#include <openssl/evp.h>
#include <openssl/crypto.h>


#define NGX_HTTP_TASKMGR_ATT_HEAD     1024
#define NGX_HTTP_TASKMGR_ATT_NAME_MAX 255
#define NGX_HTTP_TASKMGR_ATT_SHA_LEN  64
#define NGX_HTTP_TASKMGR_GONE         410


#if !(NGX_THREADS)
#error "taskmgr needs nginx built with --with-threads"
#endif


typedef struct {
    ngx_str_t   path; /* full, no trailing slash; empty: no attachments */
    ngx_path_t *store;
    ngx_str_t   url_key;
    ngx_http_taskmgr_hmac_t *url_hmac; /* keyed with url_key */
    time_t                   url_ttl;
    off_t                    max_size;
    ngx_array_t             *types; /* of ngx_str_t, lowercase */
    ngx_str_t                thread_pool_name;
    ngx_thread_pool_t       *thread_pool; /* stores uploaded files */
    ngx_msec_t               gc_interval; /* 0: no collection */
    time_t                   gc_grace;
} ngx_http_taskmgr_attach_main_conf_t;


/*
 * One upload's file store, run by a thread: it touches this struct only
 * (and never logs); the event loop logs what failed.
 */
typedef struct {
    ngx_http_request_t *request;
    u_char             *temp; /* the body's temporary file, NUL-terminated */
    u_char             *file; /* <path>/ab/cd/<sha256>, NUL-terminated */
    size_t              dir_len; /* of <path> */
    const char         *failed;  /* the call that failed, or NULL */
    ngx_err_t           err;
    ngx_err_t           touch_err; /* of an existing file's utimensat() */
} ngx_http_taskmgr_attach_store_t;


/* the garbage collection's bounds: per slice of the walk */
#define NGX_HTTP_TASKMGR_GC_DIRS  4096 /* of the 65536 leaf directories */
#define NGX_HTTP_TASKMGR_GC_FILES 1000 /* candidates (and per directory) */
#define NGX_HTTP_TASKMGR_GC_LEAVES 65536

/* one slice of the collection, shared by its thread and the event loop */
typedef struct {
    u_char     *path; /* <path>/ab/cd/<sha256>, built in place */
    u_char     *tomb; /* <path>/ab/cd/<sha256>.gc */
    size_t      dir_len;
    time_t      before; /* files modified earlier are candidates */
    ngx_uint_t  walk;   /* 1: the walk, 0: the removal */
    ngx_uint_t  cursor; /* in: the first leaf directory; out: the next */
    ngx_uint_t  n;      /* digests in sha */
    ngx_uint_t  full;   /* the walk stopped at GC_FILES candidates */
    u_char     *sha;    /* n * 64 hex digits */
    ngx_uint_t  removed;
    ngx_uint_t  kept;     /* touched by an upload since the walk */
    ngx_uint_t  restored; /* <sha256>.gc whose file was missing */
    ngx_uint_t  dirs;     /* empty directories removed by the walk */
    ngx_uint_t  errors;
    ngx_err_t   err;      /* the first error and its call */
    const char *failed;
} ngx_http_taskmgr_attach_gc_work_t;

typedef struct {
    ngx_event_t                          timer;
    ngx_pool_t                          *pool; /* of the slice in flight */
    ngx_http_taskmgr_attach_main_conf_t *amcf;
    ngx_uint_t                           cursor;
    ngx_uint_t                           stopping;
} ngx_http_taskmgr_attach_gc_t;


/* the state of one upload while its body streams */
typedef struct {
    EVP_MD_CTX *sha;
    off_t       size;
    off_t       max;
    size_t      head_len;
    u_char      head[NGX_HTTP_TASKMGR_ATT_HEAD];
    ngx_str_t   type;
    ngx_str_t   name;
    ngx_str_t   hex;
    ngx_str_t   size_text;
    unsigned    active : 1;
    unsigned    too_large : 1;
} ngx_http_taskmgr_attach_ctx_t;


typedef ngx_int_t (*ngx_http_taskmgr_sniff_pt)(u_char *p, size_t n, off_t size);

typedef struct {
    const char               *type;
    ngx_http_taskmgr_sniff_pt sniff;
} ngx_http_taskmgr_magic_t;


static ngx_int_t ngx_http_taskmgr_attach_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_taskmgr_attach_init_process(ngx_cycle_t *cycle);
static void ngx_http_taskmgr_attach_exit_process(ngx_cycle_t *cycle);
static char *ngx_http_taskmgr_attachment_gc(ngx_conf_t *cf, ngx_command_t *cmd,
                                            void *conf);
static void ngx_http_taskmgr_attach_gc_run(ngx_event_t *ev);
static void     *ngx_http_taskmgr_attach_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_taskmgr_attach_init_main_conf(ngx_conf_t *cf, void *conf);
static char *ngx_http_taskmgr_attachment_path(ngx_conf_t    *cf,
                                              ngx_command_t *cmd, void *conf);
static char *ngx_http_taskmgr_attachment_key(ngx_conf_t *cf, ngx_command_t *cmd,
                                             void *conf);
static char *ngx_http_taskmgr_attachment_types(ngx_conf_t    *cf,
                                               ngx_command_t *cmd, void *conf);
static char *ngx_http_taskmgr_attachment_files(ngx_conf_t    *cf,
                                               ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_taskmgr_attach_body_filter(ngx_http_request_t *r,
                                                     ngx_chain_t        *in);
static void ngx_http_taskmgr_attach_checked(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_attach_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_taskmgr_attach_commit(ngx_http_request_t         *r,
                                                ngx_http_taskmgr_api_ctx_t *ctx);
static void ngx_http_taskmgr_attach_store_thread(void *data, ngx_log_t *log);
static void ngx_http_taskmgr_attach_stored(ngx_event_t *ev);
static ngx_int_t ngx_http_taskmgr_attach_insert(
    ngx_http_request_t *r, ngx_http_taskmgr_api_ctx_t *ctx);
static void ngx_http_taskmgr_attach_answer(ngx_http_taskmgr_pg_query_t *q);
static ngx_int_t ngx_http_taskmgr_files_handler(ngx_http_request_t *r);

static ngx_int_t ngx_http_taskmgr_sniff_png(u_char *p, size_t n, off_t size);
static ngx_int_t ngx_http_taskmgr_sniff_jpeg(u_char *p, size_t n, off_t size);
static ngx_int_t ngx_http_taskmgr_sniff_gif(u_char *p, size_t n, off_t size);
static ngx_int_t ngx_http_taskmgr_sniff_webp(u_char *p, size_t n, off_t size);
static ngx_int_t ngx_http_taskmgr_sniff_pdf(u_char *p, size_t n, off_t size);
static ngx_int_t ngx_http_taskmgr_sniff_zip(u_char *p, size_t n, off_t size);
static ngx_int_t ngx_http_taskmgr_sniff_text(u_char *p, size_t n, off_t size);


static ngx_http_request_body_filter_pt ngx_http_next_request_body_filter;


/* clang-format off */
static ngx_http_taskmgr_magic_t  ngx_http_taskmgr_magic[] = {
    { "image/png", ngx_http_taskmgr_sniff_png },
    { "image/jpeg", ngx_http_taskmgr_sniff_jpeg },
    { "image/gif", ngx_http_taskmgr_sniff_gif },
    { "image/webp", ngx_http_taskmgr_sniff_webp },
    { "application/pdf", ngx_http_taskmgr_sniff_pdf },
    { "application/zip", ngx_http_taskmgr_sniff_zip },
    { "text/plain", ngx_http_taskmgr_sniff_text },
    { NULL, NULL }
};


static ngx_command_t  ngx_http_taskmgr_attach_commands[] = {

    { ngx_string("taskmgr_attachment_path"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_attachment_path,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_attachment_url_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_attachment_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_attachment_url_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_attach_main_conf_t, url_ttl),
      NULL },

    { ngx_string("taskmgr_attachment_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_attach_main_conf_t, max_size),
      NULL },

    { ngx_string("taskmgr_attachment_types"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_taskmgr_attachment_types,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_attachment_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_attach_main_conf_t, thread_pool_name),
      NULL },

    { ngx_string("taskmgr_attachment_gc"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_taskmgr_attachment_gc,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("taskmgr_attachment_gc_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_taskmgr_attach_main_conf_t, gc_grace),
      NULL },

    { ngx_string("taskmgr_attachment_files"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_taskmgr_attachment_files,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_taskmgr_attach_module_ctx = {
    NULL,                                     /* preconfiguration */
    ngx_http_taskmgr_attach_init,             /* postconfiguration */

    ngx_http_taskmgr_attach_create_main_conf, /* create main configuration */
    ngx_http_taskmgr_attach_init_main_conf,   /* init main configuration */

    NULL,                                     /* create server configuration */
    NULL,                                     /* merge server configuration */

    NULL,                                     /* create location configuration */
    NULL                                      /* merge location configuration */
};


ngx_module_t  ngx_http_taskmgr_attach_module = {
    NGX_MODULE_V1,
    &ngx_http_taskmgr_attach_module_ctx,   /* module context */
    ngx_http_taskmgr_attach_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_taskmgr_attach_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_taskmgr_attach_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};
/* clang-format on */


static ngx_http_taskmgr_attach_gc_t ngx_http_taskmgr_attach_gc;


/* ------------------------------------------------------------ config ---- */


static void *
ngx_http_taskmgr_attach_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_taskmgr_attach_main_conf_t *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_taskmgr_attach_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    amcf->url_ttl = NGX_CONF_UNSET;
    amcf->max_size = NGX_CONF_UNSET;
    amcf->gc_interval = NGX_CONF_UNSET_MSEC;
    amcf->gc_grace = NGX_CONF_UNSET;
    amcf->types = NGX_CONF_UNSET_PTR;

    return amcf;
}


static char *
ngx_http_taskmgr_attach_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_taskmgr_attach_main_conf_t *amcf = conf;

    ngx_uint_t i;
    ngx_str_t *t;

    static const char *defaults[] = {
        "image/png",       "image/jpeg", "image/gif", "image/webp",
        "application/pdf", "text/plain", NULL
    };

    ngx_conf_init_value(amcf->url_ttl, 300);
    ngx_conf_init_value(amcf->max_size, 10 * 1024 * 1024);

    if (amcf->url_ttl < 1 || amcf->url_ttl > 7 * 24 * 3600) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_attachment_url_ttl must be between "
                           "1s and 7d");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_msec_value(amcf->gc_interval, 60000);
    ngx_conf_init_value(amcf->gc_grace, 3600);

    if (amcf->gc_grace < 1 || amcf->gc_grace > 365 * 24 * 3600) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_attachment_gc_grace must be between "
                           "1s and 365d");
        return NGX_CONF_ERROR;
    }

    if (amcf->max_size < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_attachment_max_size must be positive");
        return NGX_CONF_ERROR;
    }

    if (amcf->types == NGX_CONF_UNSET_PTR) {
        amcf->types = ngx_array_create(cf->pool, 8, sizeof(ngx_str_t));
        if (amcf->types == NULL) {
            return NGX_CONF_ERROR;
        }

        for (i = 0; defaults[i]; i++) {
            t = ngx_array_push(amcf->types);
            if (t == NULL) {
                return NGX_CONF_ERROR;
            }

            t->data = (u_char *) defaults[i];
            t->len = ngx_strlen(defaults[i]);
        }
    }

    if (amcf->path.len && amcf->url_key.len == 0) {
        /* links then die with a reload and differ between instances */
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "taskmgr_attachment_url_key_file is not set: "
                           "download links are signed with a random key "
                           "of this configuration");

        if (ngx_http_taskmgr_random_token(cf->pool, 32, &amcf->url_key)
            != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (amcf->path.len) {
        if (amcf->thread_pool_name.len == 0) {
            ngx_str_set(&amcf->thread_pool_name, "default");
        }

        amcf->thread_pool = ngx_thread_pool_add(cf, &amcf->thread_pool_name);
        if (amcf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }

        amcf->url_hmac = ngx_http_taskmgr_hmac_create(cf->pool, &amcf->url_key);
        if (amcf->url_hmac == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr: cannot key HMAC-SHA256 for "
                               "attachment links");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_taskmgr_attachment_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_attach_main_conf_t *amcf = conf;

    ngx_str_t  *value;
    ngx_path_t *path;

    if (amcf->path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    amcf->path = value[1];

    while (amcf->path.len > 1 && amcf->path.data[amcf->path.len - 1] == '/') {
        amcf->path.len--;
    }

    /* relative to the prefix, as client_body_temp_path */
    if (ngx_conf_full_name(cf->cycle, &amcf->path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (amcf->path.len > NGX_MAX_PATH - 16 - NGX_HTTP_TASKMGR_ATT_SHA_LEN) {
        return "is too long";
    }

    /* nginx creates it at start, owned by the worker user */
    path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (path == NULL) {
        return NGX_CONF_ERROR;
    }

    path->name = amcf->path;
    path->conf_file = cf->conf_file->file.name.data;
    path->line = cf->conf_file->line;

    amcf->store = path;

    if (ngx_add_path(cf, &amcf->store) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_taskmgr_attachment_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_attach_main_conf_t *amcf = conf;

    char *rv;

    if (amcf->url_key.data) {
        return "is duplicate";
    }

    rv = ngx_http_taskmgr_read_secret(cf, cmd, &amcf->url_key);

    if (rv == NGX_CONF_OK && amcf->url_key.len < 32) {
        return "must hold at least 32 bytes";
    }

    return rv;
}


static ngx_http_taskmgr_magic_t *
ngx_http_taskmgr_magic_find(ngx_str_t *type)
{
    ngx_uint_t i;

    for (i = 0; ngx_http_taskmgr_magic[i].type; i++) {
        if (type->len == ngx_strlen(ngx_http_taskmgr_magic[i].type)
            && ngx_strncmp(type->data, ngx_http_taskmgr_magic[i].type,
                           type->len)
                == 0)
        {
            return &ngx_http_taskmgr_magic[i];
        }
    }

    return NULL;
}


static char *
ngx_http_taskmgr_attachment_types(ngx_conf_t *cf, ngx_command_t *cmd,
                                  void *conf)
{
    ngx_http_taskmgr_attach_main_conf_t *amcf = conf;

    ngx_uint_t i;
    ngx_str_t *value, *t;

    if (amcf->types != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    amcf->types =
        ngx_array_create(cf->pool, cf->args->nelts, sizeof(ngx_str_t));
    if (amcf->types == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        ngx_strlow(value[i].data, value[i].data, value[i].len);

        if (ngx_http_taskmgr_magic_find(&value[i]) == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "taskmgr_attachment_types: \"%V\" is not a "
                               "type whose content can be checked (image/png, "
                               "image/jpeg, image/gif, image/webp, "
                               "application/pdf, application/zip, "
                               "text/plain)",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        t = ngx_array_push(amcf->types);
        if (t == NULL) {
            return NGX_CONF_ERROR;
        }

        *t = value[i];
    }

    return NGX_CONF_OK;
}


/* taskmgr_attachment_gc off | <interval> */
static char *
ngx_http_taskmgr_attachment_gc(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_taskmgr_attach_main_conf_t *amcf = conf;

    ngx_str_t *value;
    ngx_msec_t ms;

    if (amcf->gc_interval != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        amcf->gc_interval = 0;
        return NGX_CONF_OK;
    }

    ms = ngx_parse_time(&value[1], 0);

    if (ms == (ngx_msec_t) NGX_ERROR || ms < 100 || ms > 24 * 3600 * 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "taskmgr_attachment_gc takes \"off\" or an "
                           "interval between 100ms and 24h, not \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    amcf->gc_interval = ms;

    return NGX_CONF_OK;
}


static char *
ngx_http_taskmgr_attachment_files(ngx_conf_t *cf, ngx_command_t *cmd,
                                  void *conf)
{
    ngx_http_core_loc_conf_t *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate or conflicts with another content handler";
    }

    clcf->handler = ngx_http_taskmgr_files_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_taskmgr_attach_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_taskmgr_attach_body_filter;

    return NGX_OK;
}


/* ----------------------------------------------------- magic bytes ---- */


static ngx_int_t
ngx_http_taskmgr_sniff_png(u_char *p, size_t n, off_t size)
{
    return n >= 8 && ngx_memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0;
}


static ngx_int_t
ngx_http_taskmgr_sniff_jpeg(u_char *p, size_t n, off_t size)
{
    return n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff;
}


static ngx_int_t
ngx_http_taskmgr_sniff_gif(u_char *p, size_t n, off_t size)
{
    return n >= 6
        && (ngx_memcmp(p, "GIF87a", 6) == 0 || ngx_memcmp(p, "GIF89a", 6) == 0);
}


static ngx_int_t
ngx_http_taskmgr_sniff_webp(u_char *p, size_t n, off_t size)
{
    return n >= 12 && ngx_memcmp(p, "RIFF", 4) == 0
        && ngx_memcmp(p + 8, "WEBP", 4) == 0;
}


static ngx_int_t
ngx_http_taskmgr_sniff_pdf(u_char *p, size_t n, off_t size)
{
    return n >= 5 && ngx_memcmp(p, "%PDF-", 5) == 0;
}


static ngx_int_t
ngx_http_taskmgr_sniff_zip(u_char *p, size_t n, off_t size)
{
    return n >= 4
        && (ngx_memcmp(p, "PK\x03\x04", 4) == 0
            || ngx_memcmp(p, "PK\x05\x06", 4) == 0);
}


/*
 * The code point at *p, strictly decoded (no overlong forms, surrogates or
 * stray continuation bytes); *p moves past it.  0xffffffff: invalid;
 * 0xfffffffe: cut short by end.
 */
static uint32_t
ngx_http_taskmgr_utf8_next(u_char **p, u_char *end)
{
    u_char  *s;
    size_t   i, len;
    uint32_t c, min;

    s = *p;
    c = *s;

    if (c < 0x80) {
        *p = s + 1;
        return c;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        len = 1;
        c &= 0x1f;
        min = 0x80;

    } else if (c >= 0xe0 && c <= 0xef) {
        len = 2;
        c &= 0x0f;
        min = 0x800;

    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 3;
        c &= 0x07;
        min = 0x10000;

    } else {
        return 0xffffffff;
    }

    for (i = 1; i <= len; i++) {
        if (s + i >= end) {
            return 0xfffffffe;
        }

        if ((s[i] & 0xc0) != 0x80) {
            return 0xffffffff;
        }

        c = (c << 6) | (s[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0xffffffff;
    }

    *p = s + len + 1;

    return c;
}


/*
 * Text: the first bytes (up to 1 KiB) are valid UTF-8 without NUL or other
 * control characters than tab, line feed, form feed and carriage return.  A
 * character cut by the end of the window counts as valid when the file goes
 * on.
 */
static ngx_int_t
ngx_http_taskmgr_sniff_text(u_char *p, size_t n, off_t size)
{
    u_char  *s, *end;
    uint32_t c;

    s = p;
    end = p + n;

    while (s < end) {
        if (*s < 0x80) {
            if (*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r'
                && *s != '\f') {
                return 0;
            }

            if (*s == 0x7f) {
                return 0;
            }

            s++;
            continue;
        }

        c = ngx_http_taskmgr_utf8_next(&s, end);

        if (c == 0xfffffffe && (off_t) n < size) {
            /* cut by the window */
            return 1;
        }

        if (c > 0x10ffff) {
            return 0;
        }
    }

    return 1;
}


/* ------------------------------------------------------------ upload ---- */


/* a SHA-256 as the store names it: 64 lowercase hex digits */
static ngx_uint_t
ngx_http_taskmgr_attach_is_sha(u_char *p, size_t len)
{
    size_t i;

    if (len != NGX_HTTP_TASKMGR_ATT_SHA_LEN) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_taskmgr_attach_refuse(ngx_http_request_t *r, ngx_uint_t status,
                               const char *code, const char *detail)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_taskmgr_send_problem(r, status, code, detail);
}


static void
ngx_http_taskmgr_attach_sha_cleanup(void *data)
{
    EVP_MD_CTX_free(data);
}


/*
 * The file name of ?name=: 1..255 characters of UTF-8, no "/", "\" or
 * control characters, not "." or "..".
 */
static ngx_int_t
ngx_http_taskmgr_attach_name(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char    *p, *dst, *s, *end;
    uint32_t   c;
    ngx_str_t  raw;
    ngx_uint_t n;

    if (ngx_http_arg(r, (u_char *) "name", 4, &raw) != NGX_OK || raw.len == 0
        || raw.len > NGX_HTTP_TASKMGR_ATT_NAME_MAX * 4 * 3)
    {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, raw.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    dst = p;
    s = raw.data;
    ngx_unescape_uri(&dst, &s, raw.len, 0);

    name->data = p;
    name->len = dst - p;

    if (name->len == 0 || name->len > NGX_HTTP_TASKMGR_ATT_NAME_MAX * 4
        || (name->len == 1 && p[0] == '.')
        || (name->len == 2 && p[0] == '.' && p[1] == '.'))
    {
        return NGX_DECLINED;
    }

    s = name->data;
    end = name->data + name->len;
    n = 0;

    while (s < end) {
        if (*s < 0x80) {
            if (*s < 0x20 || *s == 0x7f || *s == '/' || *s == '\\') {
                return NGX_DECLINED;
            }

            s++;

        } else {
            c = ngx_http_taskmgr_utf8_next(&s, end);

            if (c > 0x10ffff || (c >= 0x80 && c < 0xa0)) {
                return NGX_DECLINED;
            }
        }

        if (++n > NGX_HTTP_TASKMGR_ATT_NAME_MAX) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* the media type of Content-Type, lowercase, when it is an allowed one */
static ngx_int_t
ngx_http_taskmgr_attach_type(ngx_http_request_t                  *r,
                             ngx_http_taskmgr_attach_main_conf_t *amcf,
                             ngx_str_t                           *type)
{
    size_t     len;
    u_char    *p;
    ngx_str_t *ct, *t;
    ngx_uint_t i;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    ct = &r->headers_in.content_type->value;

    for (len = 0; len < ct->len && ct->data[len] != ';' && ct->data[len] != ' ';
         len++)
    {
        /* void */
    }

    if (len == 0 || len > 127) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(p, ct->data, len);

    t = amcf->types->elts;

    for (i = 0; i < amcf->types->nelts; i++) {
        if (t[i].len == len && ngx_strncmp(t[i].data, p, len) == 0) {
            *type = t[i];
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_taskmgr_h_attach_upload(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx)
{
    u_char                              *p;
    ngx_int_t                            rc;
    ngx_str_t                            key, value;
    ngx_http_taskmgr_pg_query_t         *q;
    ngx_http_taskmgr_attach_ctx_t       *actx;
    ngx_http_taskmgr_attach_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_taskmgr_attach_module);

    if (amcf->path.len == 0) {
        return ngx_http_taskmgr_attach_refuse(
            r, NGX_HTTP_NOT_FOUND, "not_found", "attachments are not enabled");
    }

    if (ngx_http_taskmgr_is_uuid(&ctx->params[0]) != NGX_OK) {
        return ngx_http_taskmgr_attach_refuse(
            r, NGX_HTTP_NOT_FOUND, "not_found", "workspace not found");
    }

    if (ngx_http_taskmgr_is_uuid(&ctx->params[1]) != NGX_OK) {
        return ngx_http_taskmgr_attach_refuse(r, NGX_HTTP_NOT_FOUND,
                                              "not_found", "task not found");
    }

    /* the only query parameter is name */
    p = r->args.data;

    while (
        ngx_http_taskmgr_arg_next(&p, r->args.data + r->args.len, &key, &value)
        == NGX_OK)
    {
        if (key.len != 4 || ngx_strncmp(key.data, "name", 4) != 0) {
            if (ngx_http_discard_request_body(r) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_taskmgr_api_bad_arg(r, &key, "unknown parameter");
        }
    }

    actx = ngx_pcalloc(r->pool, sizeof(ngx_http_taskmgr_attach_ctx_t));
    if (actx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_taskmgr_attach_name(r, &actx->name);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&key, "name");

        return ngx_http_taskmgr_api_bad_arg(r, &key,
                                            "the file name must be 1 to 255 "
                                            "characters of UTF-8 without "
                                            "slashes or control characters");
    }

    rc = ngx_http_taskmgr_attach_type(r, amcf, &actx->type);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_taskmgr_attach_refuse(
            r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
            "this type of file cannot be attached");
    }

    if (r->headers_in.content_length_n > amcf->max_size) {
        return ngx_http_taskmgr_attach_refuse(
            r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
            "the file is larger than attachments may be");
    }

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        return ngx_http_taskmgr_attach_refuse(r, NGX_HTTP_BAD_REQUEST,
                                              "validation_failed",
                                              "the body must be the file");
    }

    actx->max = amcf->max_size;
    ngx_http_set_ctx(r, actx, ngx_http_taskmgr_attach_module);

    /* may this caller upload to this task?  Asked before the body is read,
     * so that refused uploads never reach the disk */
    q = ngx_http_taskmgr_api_query(r, ctx, NGX_HTTP_TASKMGR_SQL_ATTACH_CHECK,
                                   ngx_http_taskmgr_attach_checked);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->params[1]);
    }

    rc = ngx_http_taskmgr_api_submit(r, q);

    if (rc != NGX_DONE) {
        (void) ngx_http_discard_request_body(r);
    }

    return rc;
}


static void
ngx_http_taskmgr_attach_checked(ngx_http_taskmgr_pg_query_t *q)
{
    ngx_int_t                      rc;
    ngx_pool_cleanup_t            *cln;
    ngx_http_request_t            *r;
    ngx_http_taskmgr_result_t      res;
    ngx_http_taskmgr_attach_ctx_t *actx;

    r = q->request;
    actx = ngx_http_get_module_ctx(r, ngx_http_taskmgr_attach_module);

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        (void) ngx_http_discard_request_body(r);
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status != NGX_HTTP_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
        return;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    actx->sha = EVP_MD_CTX_new();
    if (actx->sha == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_taskmgr_attach_sha_cleanup;
    cln->data = actx->sha;

    if (EVP_DigestInit_ex(actx->sha, ngx_http_taskmgr_sha256(), NULL) != 1) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    actx->active = 1;

    /* streamed to a temporary file that keeps its name (so that it can be
     * linked into the store) and is deleted with the request */
    r->request_body_in_file_only = 1;
    r->request_body_in_persistent_file = 1;
    r->request_body_in_clean_file = 1;
    r->request_body_file_log_level = 0;

    rc = ngx_http_read_client_request_body(
        r, ngx_http_taskmgr_attach_body_handler);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        /* the rest of the body is never read: the connection cannot stay */
        r->keepalive = 0;
        r->lingering_close = 1;

        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(
                r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
                "the file is larger than attachments may be"));
        return;
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    /* the body reader holds the request now: drop the query's hold */
    ngx_http_taskmgr_api_finish(r, NGX_DONE);
}


/* hashes, counts and keeps the head of an upload's body as it streams */
static ngx_int_t
ngx_http_taskmgr_attach_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                         n, take;
    ngx_buf_t                     *b;
    ngx_chain_t                   *cl;
    ngx_http_taskmgr_attach_ctx_t *actx;

    actx = (r == r->main)
        ? ngx_http_get_module_ctx(r, ngx_http_taskmgr_attach_module)
        : NULL;

    if (actx == NULL || !actx->active) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_special(b) || !ngx_buf_in_memory(b)) {
            continue;
        }

        n = b->last - b->pos;

        if (n == 0) {
            continue;
        }

        actx->size += n;

        if (actx->size > actx->max) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "taskmgr: attachment body over %O bytes refused",
                          actx->max);
            actx->too_large = 1;
            actx->active = 0;
            r->keepalive = 0;
            r->lingering_close = 1;
            return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        }

        if (actx->head_len < NGX_HTTP_TASKMGR_ATT_HEAD) {
            take = ngx_min(n, NGX_HTTP_TASKMGR_ATT_HEAD - actx->head_len);
            ngx_memcpy(actx->head + actx->head_len, b->pos, take);
            actx->head_len += take;
        }

        if (EVP_DigestUpdate(actx->sha, b->pos, n) != 1) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


/* <path>/ab/cd/<sha256 hex>, NUL-terminated */
static u_char *
ngx_http_taskmgr_attach_file(ngx_pool_t *pool, ngx_str_t *dir, u_char *hex,
                             size_t *len)
{
    u_char *p, *file;

    file = ngx_pnalloc(pool, dir->len + 7 + NGX_HTTP_TASKMGR_ATT_SHA_LEN + 1);
    if (file == NULL) {
        return NULL;
    }

    p = ngx_sprintf(file, "%V/%*s/%*s/%*s", dir, (size_t) 2, hex, (size_t) 2,
                    hex + 2, (size_t) NGX_HTTP_TASKMGR_ATT_SHA_LEN, hex);
    *p = '\0';
    *len = p - file;

    return file;
}


/*
 * In a thread: creates the directory file[0 .. end) (one level; one that
 * exists is fine).  NGX_OK; NGX_AGAIN when its parent is gone (the garbage
 * collection removed it, empty, since it was made); or NGX_ERROR with
 * st->err and st->failed set.
 */
static ngx_int_t
ngx_http_taskmgr_attach_mkdir(ngx_http_taskmgr_attach_store_t *st, size_t end)
{
    u_char    save;
    ngx_err_t err;

    save = st->file[end];
    st->file[end] = '\0';

    err = 0;

    if (ngx_create_dir(st->file, 0700) == NGX_FILE_ERROR) {
        err = ngx_errno;
    }

    if (err == NGX_ENOENT) {
        st->file[end] = save;
        return NGX_AGAIN;
    }

    if (err != 0 && err != NGX_EEXIST) {
        /* st->file stays cut at the directory for the log */
        st->err = err;
        st->failed = ngx_create_dir_n;
        return NGX_ERROR;
    }

    st->file[end] = save;

    return NGX_OK;
}


/*
 * In a thread: links the temporary file to its content address.  A file of
 * the same content that is there already is kept.
 */
static void
ngx_http_taskmgr_attach_store_thread(void *data, ngx_log_t *log)
{
    ngx_http_taskmgr_attach_store_t *st = data;

    ngx_int_t       rc;
    ngx_err_t       err;
    ngx_uint_t      tries;
    ngx_file_info_t fi;

    (void) log;

    if (ngx_file_info(st->file, &fi) != NGX_FILE_ERROR) {
        /*
         * the same content is stored already: its mtime says "in use" to
         * the garbage collection, which may have renamed it away since;
         * then it is linked anew below
         */
        if (utimensat(AT_FDCWD, (char *) st->file, NULL, 0) == 0) {
            return;
        }

        err = ngx_errno;

        if (err != NGX_ENOENT) {
            st->touch_err = err;
            return;
        }
    }

    /*
     * <path>/ab, then <path>/ab/cd, then the link.  The collection removes
     * empty directories: one it removed between these steps is made again
     * (bounded; it only removes a directory it found empty).
     */
    for (tries = 0; /* void */; tries++) {
        rc = ngx_http_taskmgr_attach_mkdir(st, st->dir_len + 3);

        if (rc == NGX_OK) {
            rc = ngx_http_taskmgr_attach_mkdir(st, st->dir_len + 6);
        }

        if (rc == NGX_ERROR) {
            return;
        }

        if (rc == NGX_OK) {
            if (link((char *) st->temp, (char *) st->file) == 0) {
                return;
            }

            err = ngx_errno;

            if (err == NGX_EEXIST) {
                return;
            }

        } else {
            err = NGX_ENOENT;
        }

        if (err != NGX_ENOENT || tries == 3) {
            st->err = err;
            st->failed = (rc == NGX_OK) ? "link()" : ngx_create_dir_n;
            return;
        }
    }
}


/* posts the file's store to the thread pool: NGX_DONE or a finalize code */
static ngx_int_t
ngx_http_taskmgr_attach_store(ngx_http_request_t                  *r,
                              ngx_http_taskmgr_attach_main_conf_t *amcf,
                              ngx_http_taskmgr_attach_ctx_t       *actx)
{
    size_t                           len;
    ngx_thread_task_t               *task;
    ngx_http_taskmgr_attach_store_t *st;

    task = ngx_thread_task_alloc(r->pool,
                                 sizeof(ngx_http_taskmgr_attach_store_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st = task->ctx;

    st->request = r;
    st->temp = r->request_body->temp_file->file.name.data;
    st->dir_len = amcf->path.len;
    st->file = ngx_http_taskmgr_attach_file(r->pool, &amcf->path,
                                            actx->hex.data, &len);
    if (st->file == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task->handler = ngx_http_taskmgr_attach_store_thread;
    task->event.data = st;
    task->event.handler = ngx_http_taskmgr_attach_stored;

    r->main->blocked++;

    if (ngx_thread_task_post(amcf->thread_pool, task) != NGX_OK) {
        /* the pool's queue is full; nginx has logged it */
        r->main->blocked--;

        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "dependency_unavailable",
                                             "the file store is busy, "
                                             "retry shortly");
    }

    return NGX_DONE;
}


/* in the event loop once the thread is done: the row, or a 500 */
static void
ngx_http_taskmgr_attach_stored(ngx_event_t *ev)
{
    ngx_int_t                        rc;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_taskmgr_api_ctx_t      *ctx;
    ngx_http_taskmgr_attach_store_t *st;

    st = ev->data;
    r = st->request;
    c = r->connection;

    r->main->blocked--;

    ctx = ngx_http_taskmgr_api_ctx(r);

    if (st->touch_err) {
        ngx_log_error(NGX_LOG_WARN, c->log, st->touch_err,
                      "utimensat() \"%s\" failed (the garbage collection "
                      "may take the file while its row is written)",
                      st->file);
    }

    if (st->failed == NULL) {
        rc = ngx_http_taskmgr_attach_insert(r, ctx);

    } else {
        if (st->err == NGX_EXDEV) {
            ngx_log_error(NGX_LOG_CRIT, c->log, st->err,
                          "%s \"%s\" to \"%s\" failed (client_body_temp_path "
                          "and taskmgr_attachment_path must be on one file "
                          "system)",
                          st->failed, st->temp, st->file);

        } else {
            ngx_log_error(NGX_LOG_CRIT, c->log, st->err, "%s \"%s\" failed",
                          st->failed, st->file);
        }

        rc = ngx_http_taskmgr_send_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           "internal",
                                           "the file could not be stored");
    }

    /* no row: a claimed Idempotency-Key goes */
    ngx_http_taskmgr_idem_step_done(r, ctx, rc);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_taskmgr_attach_body_handler(ngx_http_request_t *r)
{
    u_char                        *p;
    ngx_int_t                      rc;
    unsigned int                   mdlen;
    u_char                         md[EVP_MAX_MD_SIZE];
    ngx_http_taskmgr_magic_t      *magic;
    ngx_http_taskmgr_api_ctx_t    *ctx;
    ngx_http_taskmgr_attach_ctx_t *actx;

    ctx = ngx_http_taskmgr_api_ctx(r);
    actx = ngx_http_get_module_ctx(r, ngx_http_taskmgr_attach_module);

    actx->active = 0;

    if (actx->size == 0 || r->request_body == NULL
        || r->request_body->temp_file == NULL)
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(r, NGX_HTTP_BAD_REQUEST,
                                          "validation_failed",
                                          "the body must be the file"));
        return;
    }

    if (r->request_body->temp_file->file.offset != actx->size) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "taskmgr: attachment temp file has %O bytes, %O seen",
                      r->request_body->temp_file->file.offset, actx->size);
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    magic = ngx_http_taskmgr_magic_find(&actx->type);

    if (magic == NULL || !magic->sniff(actx->head, actx->head_len, actx->size))
    {
        ngx_http_taskmgr_api_finish(
            r,
            ngx_http_taskmgr_send_problem(
                r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                "the content of the file is not of its declared type"));
        return;
    }

    if (EVP_DigestFinal_ex(actx->sha, md, &mdlen) != 1 || mdlen != 32) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    actx->hex.data = ngx_pnalloc(r->pool, NGX_HTTP_TASKMGR_ATT_SHA_LEN);
    p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
    if (actx->hex.data == NULL || p == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    actx->hex.len = ngx_hex_dump(actx->hex.data, md, 32) - actx->hex.data;
    actx->size_text.data = p;
    actx->size_text.len = ngx_sprintf(p, "%O", actx->size) - p;

    /* Idempotency-Key: the file stands for the body in the fingerprint */
    ctx->idem_next = ngx_http_taskmgr_attach_commit;

    p = ngx_pnalloc(r->pool, actx->name.len + actx->type.len + actx->hex.len
                                 + actx->size_text.len + 3);
    if (p == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->idem_body.data = p;
    ctx->idem_body.len = ngx_sprintf(p, "%V\n%V\n%V\n%V", &actx->name,
                                     &actx->type, &actx->hex,
                                     &actx->size_text)
        - p;

    rc = ngx_http_taskmgr_idem_begin(r, ctx);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_taskmgr_attach_commit(r, ctx);
    }

    if (rc != NGX_DONE) {
        ngx_http_taskmgr_api_finish(r, rc);
    }
}


/*
 * The upload's write, once its body is checked (and its Idempotency-Key
 * claimed): the file goes to its content address, then the row.  On a
 * replay, the recorded answer instead.  NGX_DONE or a finalize code.
 */
static ngx_int_t
ngx_http_taskmgr_attach_commit(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    ngx_int_t                            rc;
    ngx_http_taskmgr_attach_ctx_t       *actx;
    ngx_http_taskmgr_attach_main_conf_t *amcf;

    actx = ngx_http_get_module_ctx(r, ngx_http_taskmgr_attach_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_taskmgr_attach_module);

    rc = ngx_http_taskmgr_idem_replay(r, ctx, NGX_HTTP_TASKMGR_SQL_IDEM_RESULT,
                                      ngx_http_taskmgr_attach_answer);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* the row is written once the thread has stored the file */
    return ngx_http_taskmgr_attach_store(r, amcf, actx);
}


/* the upload's row, once its file is stored: NGX_DONE or a finalize code */
static ngx_int_t
ngx_http_taskmgr_attach_insert(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    u_char                              *p;
    ngx_str_t                            exp;
    ngx_http_taskmgr_pg_query_t         *q;
    ngx_http_taskmgr_attach_ctx_t       *actx;
    ngx_http_taskmgr_attach_main_conf_t *amcf;

    actx = ngx_http_get_module_ctx(r, ngx_http_taskmgr_attach_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_taskmgr_attach_module);

    /* the links' expiry, kept with the row's answer */
    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    exp.data = p;
    exp.len = ngx_sprintf(p, "%T", ngx_time() + amcf->url_ttl) - p;

    q = ngx_http_taskmgr_api_query(
        r, ctx, ngx_http_taskmgr_idem_stmt(ctx, NGX_HTTP_TASKMGR_SQL_ATTACH_CREATE),
        ngx_http_taskmgr_attach_answer);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
    ngx_http_taskmgr_pg_param(q, &ctx->params[1]);
    ngx_http_taskmgr_pg_param(q, &actx->hex);
    ngx_http_taskmgr_pg_param(q, &actx->size_text);
    ngx_http_taskmgr_pg_param(q, &actx->type);
    ngx_http_taskmgr_pg_param(q, &actx->name);
    ngx_http_taskmgr_pg_param(q, &exp);
    ngx_http_taskmgr_api_audit_params(r, q);
    ngx_http_taskmgr_idem_params(q, ctx);

    /* a stored file whose row is never written stays: content-addressed,
     * harmless */
    return ngx_http_taskmgr_api_submit(r, q);
}


/* ------------------------------------------------------------- reads ---- */


static ngx_int_t
ngx_http_taskmgr_attach_sign(ngx_http_taskmgr_attach_main_conf_t *amcf,
                             ngx_str_t *id, ngx_str_t *sha, time_t exp,
                             ngx_str_t *type, ngx_str_t *name, u_char *hex,
                             ngx_log_t *log)
{
    u_char   *p, *msg;
    size_t    len;
    ngx_int_t rc;
    u_char    md[NGX_HTTP_TASKMGR_HMAC_LEN];

    len = id->len + sha->len + NGX_TIME_T_LEN + type->len + name->len + 4;

    msg = ngx_alloc(len, log);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(msg, "%V\n%V\n%T\n%V\n%V", id, sha, exp, type, name);

    rc = ngx_http_taskmgr_hmac(amcf->url_hmac, msg, p - msg, md);

    if (rc == NGX_OK) {
        ngx_hex_dump(hex, md, NGX_HTTP_TASKMGR_HMAC_LEN);

    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "taskmgr: HMAC of an attachment link failed");
    }

    ngx_free(msg);

    return rc;
}


/* adds download_url and download_expires_at to one attachment object */
static ngx_int_t
ngx_http_taskmgr_attach_link(ngx_http_request_t                  *r,
                             ngx_http_taskmgr_attach_main_conf_t *amcf,
                             json_t *obj, time_t exp)
{
    u_char   *p, *url;
    size_t    len;
    uintptr_t etype, ename;
    ngx_tm_t  tm;
    ngx_str_t id, sha, type, name, at;
    u_char    sig[64];

    if (ngx_http_taskmgr_json_string(obj, "id", &id) != NGX_OK
        || ngx_http_taskmgr_json_string(obj, "sha256", &sha) != NGX_OK
        || ngx_http_taskmgr_json_string(obj, "content_type", &type) != NGX_OK
        || ngx_http_taskmgr_json_string(obj, "name", &name) != NGX_OK
        || id.data == NULL || sha.data == NULL || type.data == NULL
        || name.data == NULL)
    {
        return NGX_ERROR;
    }

    if (ngx_http_taskmgr_attach_sign(amcf, &id, &sha, exp, &type, &name, sig,
                                     r->connection->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    etype = ngx_escape_uri(NULL, type.data, type.len, NGX_ESCAPE_ARGS);
    ename = ngx_escape_uri(NULL, name.data, name.len, NGX_ESCAPE_ARGS);

    len = sizeof("/v1/files//?exp=&type=&name=&sig=") + id.len + sha.len
        + NGX_TIME_T_LEN + type.len + 2 * etype + name.len + 2 * ename + 64;

    url = ngx_pnalloc(r->pool, len);
    if (url == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(url, "/v1/files/%V/%V?exp=%T&type=", &id, &sha, exp);
    p = (u_char *) ngx_escape_uri(p, type.data, type.len, NGX_ESCAPE_ARGS);
    p = ngx_cpymem(p, "&name=", 6);
    p = (u_char *) ngx_escape_uri(p, name.data, name.len, NGX_ESCAPE_ARGS);
    p = ngx_cpymem(p, "&sig=", 5);
    p = ngx_cpymem(p, sig, 64);

    at.data = ngx_pnalloc(r->pool, sizeof("1970-01-01T00:00:00Z"));
    if (at.data == NULL) {
        return NGX_ERROR;
    }

    ngx_gmtime(exp, &tm);
    at.len = ngx_sprintf(at.data, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                         tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                         tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec)
        - at.data;

    if (json_object_set_new(obj, "download_url",
                            json_stringn((char *) url, p - url))
            != 0
        || json_object_set_new(obj, "download_expires_at",
                               json_stringn((char *) at.data, at.len))
            != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the answer of create, get and list: the objects get their links */
static void
ngx_http_taskmgr_attach_answer(ngx_http_taskmgr_pg_query_t *q)
{
    u_char                              *p;
    size_t                               i;
    time_t                               exp;
    json_t                              *j, *data;
    ngx_int_t                            rc;
    ngx_str_t                            body, loc, cc, id;
    ngx_http_request_t                  *r;
    ngx_http_taskmgr_result_t            res;
    ngx_http_taskmgr_api_ctx_t          *ctx;
    ngx_http_taskmgr_attach_main_conf_t *amcf;

    r = q->request;
    ctx = ngx_http_taskmgr_api_ctx(r);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_taskmgr_attach_module);

    if (ngx_http_taskmgr_idem_failed(q) == NGX_DONE) {
        return;
    }

    if (ngx_http_taskmgr_api_result(q, &res, &rc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, rc);
        return;
    }

    if (res.status >= NGX_HTTP_BAD_REQUEST || res.body.data == NULL) {
        ngx_http_taskmgr_api_finish(r, ngx_http_taskmgr_api_respond(r, &res));
        return;
    }

    j = ngx_http_taskmgr_json_parse(r, res.body.data, res.body.len);
    if (j == NULL) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* a create's meta: "<id> <expiry>", chosen before the write so that a
     * replay signs the same links; reads sign with a fresh expiry */
    exp = ngx_time() + amcf->url_ttl;
    id = res.meta;

    p = id.len ? ngx_strlchr(id.data, id.data + id.len, ' ') : NULL;

    if (p != NULL) {
        id.len = p - id.data;
        exp = ngx_atotm(p + 1, res.meta.data + res.meta.len - (p + 1));

        if (exp == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "taskmgr: an attachment answer has a bad expiry");
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    data = json_object_get(j, "data");

    if (json_is_array(data)) {
        for (i = 0; i < json_array_size(data); i++) {
            if (ngx_http_taskmgr_attach_link(r, amcf, json_array_get(data, i),
                                             exp)
                != NGX_OK)
            {
                ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }
        }

    } else if (ngx_http_taskmgr_attach_link(r, amcf, j, exp) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_taskmgr_json_dump(r, j, &body) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the links expire: nobody keeps a copy */
    ngx_str_set(&cc, "private, no-store");
    if (ngx_http_taskmgr_add_header(r, "Cache-Control", &cc) != NGX_OK) {
        ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (res.status == NGX_HTTP_CREATED && id.len) {
        p = ngx_pnalloc(r->pool,
                        sizeof("/v1/workspaces//attachments/")
                            + ctx->params[0].len + id.len);
        if (p == NULL) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        loc.data = p;
        loc.len = ngx_sprintf(p, "/v1/workspaces/%V/attachments/%V",
                              &ctx->params[0], &id)
            - p;

        if (ngx_http_taskmgr_add_header(r, "Location", &loc) != NGX_OK) {
            ngx_http_taskmgr_api_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_taskmgr_api_finish(
        r, ngx_http_taskmgr_send_json(r, res.status, &body));
}


static ngx_int_t
ngx_http_taskmgr_attach_ids(ngx_http_request_t         *r,
                            ngx_http_taskmgr_api_ctx_t *ctx, const char *what,
                            ngx_int_t *rc)
{
    if (ngx_http_taskmgr_api_uuid_param(r, ctx, 0, "workspace not found", rc)
            != NGX_OK
        || ngx_http_taskmgr_api_uuid_param(r, ctx, 1, what, rc) != NGX_OK)
    {
        return NGX_DONE;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_taskmgr_attach_read(ngx_http_request_t         *r,
                             ngx_http_taskmgr_api_ctx_t *ctx, ngx_uint_t stmt,
                             const char *what, ngx_http_taskmgr_pg_handler_pt h)
{
    ngx_int_t                            rc;
    ngx_http_taskmgr_pg_query_t         *q;
    ngx_http_taskmgr_attach_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_taskmgr_attach_module);

    if (amcf->path.len == 0) {
        return ngx_http_taskmgr_send_problem(r, NGX_HTTP_NOT_FOUND, "not_found",
                                             "attachments are not enabled");
    }

    if (ngx_http_taskmgr_attach_ids(r, ctx, what, &rc) != NGX_OK) {
        return rc;
    }

    q = ngx_http_taskmgr_api_query(r, ctx, stmt, h);
    if (q != NULL) {
        ngx_http_taskmgr_pg_param(q, &ctx->params[0]);
        ngx_http_taskmgr_pg_param(q, &ctx->params[1]);

        if (stmt == NGX_HTTP_TASKMGR_SQL_ATTACH_DELETE) {
            /* a write: its audit entry's request id and address */
            ngx_http_taskmgr_api_audit_params(r, q);
        }
    }

    return ngx_http_taskmgr_api_submit(r, q);
}


ngx_int_t
ngx_http_taskmgr_h_attach_list(ngx_http_request_t         *r,
                               ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_attach_read(
        r, ctx, NGX_HTTP_TASKMGR_SQL_ATTACH_LIST, "task not found",
        ngx_http_taskmgr_attach_answer);
}


ngx_int_t
ngx_http_taskmgr_h_attach_get(ngx_http_request_t         *r,
                              ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_attach_read(r, ctx, NGX_HTTP_TASKMGR_SQL_ATTACH_GET,
                                        "attachment not found",
                                        ngx_http_taskmgr_attach_answer);
}


ngx_int_t
ngx_http_taskmgr_h_attach_delete(ngx_http_request_t         *r,
                                 ngx_http_taskmgr_api_ctx_t *ctx)
{
    return ngx_http_taskmgr_attach_read(
        r, ctx, NGX_HTTP_TASKMGR_SQL_ATTACH_DELETE, "attachment not found",
        ngx_http_taskmgr_api_done);
}


/* --------------------------------------------------------- download ---- */


static ngx_int_t
ngx_http_taskmgr_files_arg(ngx_http_request_t *r, const char *name,
                           ngx_str_t *out, size_t max)
{
    u_char   *dst, *src;
    ngx_str_t raw;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK
        || raw.len == 0 || raw.len > max)
    {
        return NGX_DECLINED;
    }

    out->data = ngx_pnalloc(r->pool, raw.len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    dst = out->data;
    src = raw.data;
    ngx_unescape_uri(&dst, &src, raw.len, 0);
    out->len = dst - out->data;

    return NGX_OK;
}


/* Content-Disposition: attachment; filename="<ASCII>"; filename*=UTF-8''.. */
static ngx_int_t
ngx_http_taskmgr_files_disposition(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char   *p, *q, c;
    size_t    i;
    ngx_str_t v;

    static const char hex[] = "0123456789ABCDEF";

    v.data = ngx_pnalloc(r->pool,
                         sizeof("attachment; filename=\"\"; "
                                "filename*=UTF-8''")
                             + name->len * 4);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(v.data, "attachment; filename=\"", 22);

    for (i = 0; i < name->len; i++) {
        c = name->data[i];
        *p++ = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%')
            ? c
            : '_';
    }

    p = ngx_cpymem(p, "\"; filename*=UTF-8''", 20);

    for (i = 0; i < name->len; i++) {
        c = name->data[i];
        q = (u_char *) ngx_strchr("!#$&+-.^_`|~", c);

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || (c != '\0' && q != NULL))
        {
            *p++ = c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }

    v.len = p - v.data;

    return ngx_http_taskmgr_add_header(r, "Content-Disposition", &v);
}


static ngx_int_t
ngx_http_taskmgr_files_refuse(ngx_http_request_t *r, ngx_uint_t status,
                              const char *code, const char *detail)
{
    ngx_str_t cc = ngx_string("no-store");

    if (ngx_http_taskmgr_add_header(r, "Cache-Control", &cc) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_taskmgr_send_problem(r, status, code, detail);
}


static ngx_int_t
ngx_http_taskmgr_files_handler(ngx_http_request_t *r)
{
    u_char                              *file, *end, *seg;
    size_t                               len;
    time_t                               exp, now;
    ngx_int_t                            rc;
    ngx_buf_t                           *b;
    ngx_str_t                            id, sha, sexp, type, name, sig, v;
    ngx_chain_t                          out;
    ngx_open_file_info_t                 of;
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_taskmgr_attach_main_conf_t *amcf;
    u_char                               mine[64];

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_taskmgr_attach_module);

    if (amcf->path.len == 0) {
        return ngx_http_taskmgr_files_refuse(r, NGX_HTTP_NOT_FOUND, "not_found",
                                             "attachments are not enabled");
    }

    /* .../<id>/<sha256>: the last two segments of the path */
    end = r->uri.data + r->uri.len;

    if (r->uri.len
        < NGX_HTTP_TASKMGR_UUID_LEN + NGX_HTTP_TASKMGR_ATT_SHA_LEN + 2) {
        goto not_found;
    }

    seg = end - NGX_HTTP_TASKMGR_ATT_SHA_LEN;
    sha.data = seg;
    sha.len = NGX_HTTP_TASKMGR_ATT_SHA_LEN;
    id.data = seg - 1 - NGX_HTTP_TASKMGR_UUID_LEN;
    id.len = NGX_HTTP_TASKMGR_UUID_LEN;

    if (seg[-1] != '/' || id.data[-1] != '/'
        || ngx_http_taskmgr_is_uuid(&id) != NGX_OK)
    {
        goto not_found;
    }

    if (!ngx_http_taskmgr_attach_is_sha(sha.data, sha.len)) {
        goto not_found;
    }

    if (ngx_http_taskmgr_files_arg(r, "exp", &sexp, NGX_TIME_T_LEN) != NGX_OK
        || ngx_http_taskmgr_files_arg(r, "type", &type, 127 * 3) != NGX_OK
        || ngx_http_taskmgr_files_arg(r, "name", &name,
                                      NGX_HTTP_TASKMGR_ATT_NAME_MAX * 4 * 3)
            != NGX_OK
        || ngx_http_taskmgr_files_arg(r, "sig", &sig, 64) != NGX_OK
        || sig.len != 64)
    {
        return ngx_http_taskmgr_files_refuse(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                             "the link is not valid");
    }

    exp = ngx_atotm(sexp.data, sexp.len);

    if (exp == NGX_ERROR
        || ngx_http_taskmgr_attach_sign(amcf, &id, &sha, exp, &type, &name,
                                        mine, r->connection->log)
            != NGX_OK)
    {
        return ngx_http_taskmgr_files_refuse(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                             "the link is not valid");
    }

    ngx_strlow(sig.data, sig.data, sig.len);

    if (CRYPTO_memcmp(mine, sig.data, 64) != 0) {
        return ngx_http_taskmgr_files_refuse(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                             "the link is not valid");
    }

    now = ngx_time();

    if (exp < now) {
        return ngx_http_taskmgr_files_refuse(r, NGX_HTTP_TASKMGR_GONE,
                                             "link_expired",
                                             "the link has expired, ask for "
                                             "a new one");
    }

    file = ngx_http_taskmgr_attach_file(r->pool, &amcf->path, sha.data, &len);
    if (file == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ngx_memzero(&of, sizeof(ngx_open_file_info_t));

    of.read_ahead = clcf->read_ahead;
    of.directio = clcf->directio;
    of.valid = clcf->open_file_cache_valid;
    of.min_uses = clcf->open_file_cache_min_uses;
    of.errors = clcf->open_file_cache_errors;
    of.events = clcf->open_file_cache_events;

    v.data = file;
    v.len = len;

    if (ngx_open_cached_file(clcf->open_file_cache, &v, &of, r->pool) != NGX_OK)
    {
        if (of.err == NGX_ENOENT || of.err == NGX_ENOTDIR) {
            goto not_found;
        }

        ngx_log_error(NGX_LOG_CRIT, r->connection->log, of.err,
                      "%s \"%s\" failed", of.failed, file);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!of.is_file) {
        goto not_found;
    }

    r->root_tested = !r->error_page;
    r->allow_ranges = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = of.size;
    r->headers_out.last_modified_time = of.mtime;

    r->headers_out.content_type = type;
    r->headers_out.content_type_len = type.len;
    r->headers_out.content_type_lowcase = NULL;

    ngx_str_set(&v, "nosniff");
    if (ngx_http_taskmgr_add_header(r, "X-Content-Type-Options", &v) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&v, "private");
    if (ngx_http_taskmgr_add_header(r, "Cache-Control", &v) != NGX_OK
        || ngx_http_taskmgr_files_disposition(r, &name) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->file_pos = 0;
    b->file_last = of.size;
    b->in_file = b->file_last ? 1 : 0;
    b->last_buf = 1;
    b->last_in_chain = 1;

    b->file->fd = of.fd;
    b->file->name.data = file;
    b->file->name.len = len;
    b->file->log = r->connection->log;
    b->file->directio = of.is_directio;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);

not_found:

    return ngx_http_taskmgr_files_refuse(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such file");
}


/* ------------------------------------------------ garbage collection ---- */


static void ngx_http_taskmgr_attach_gc_thread(void *data, ngx_log_t *log);
static void ngx_http_taskmgr_attach_gc_walked(ngx_event_t *ev);
static void ngx_http_taskmgr_attach_gc_orphans(ngx_http_taskmgr_pg_query_t *q);
static void ngx_http_taskmgr_attach_gc_removed(ngx_event_t *ev);
static void ngx_http_taskmgr_attach_gc_next(
    ngx_http_taskmgr_attach_gc_work_t *w);
static void ngx_http_taskmgr_attach_gc_rmdir(
    ngx_http_taskmgr_attach_gc_work_t *w);


static ngx_int_t
ngx_http_taskmgr_attach_init_process(ngx_cycle_t *cycle)
{
    ngx_http_taskmgr_main_conf_t        *mcf;
    ngx_http_taskmgr_attach_gc_t        *gc;
    ngx_http_taskmgr_attach_main_conf_t *amcf;

    gc = &ngx_http_taskmgr_attach_gc;
    ngx_memzero(gc, sizeof(ngx_http_taskmgr_attach_gc_t));

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_taskmgr_attach_module);
    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_taskmgr_module);

    if (amcf == NULL || mcf == NULL || amcf->path.len == 0
        || amcf->gc_interval == 0 || amcf->thread_pool == NULL
        || mcf->pg_keywords == NULL
        || (ngx_process == NGX_PROCESS_WORKER && ngx_worker != 0))
    {
        return NGX_OK;
    }

    gc->amcf = amcf;
    gc->timer.handler = ngx_http_taskmgr_attach_gc_run;
    gc->timer.log = cycle->log;
    gc->timer.data = gc;
    gc->timer.cancelable = 1;

    ngx_add_timer(&gc->timer, amcf->gc_interval);

    return NGX_OK;
}


static void
ngx_http_taskmgr_attach_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_taskmgr_attach_gc_t *gc;

    (void) cycle;

    gc = &ngx_http_taskmgr_attach_gc;
    gc->stopping = 1;

    if (gc->timer.timer_set) {
        ngx_del_timer(&gc->timer);
    }

    /* a slice in flight keeps its pool (reachable from gc): its thread or
     * query may still hold it */
}


/* no new slice or step: the worker is exiting or the collection stopped */
static ngx_uint_t
ngx_http_taskmgr_attach_gc_stopping(void)
{
    return ngx_http_taskmgr_attach_gc.stopping || ngx_exiting || ngx_quit
           || ngx_terminate;
}


/*
 * The end of a slice (w: NULL if it never started): its pool goes, the
 * next one is timed; after a slice that stopped at its count of candidates,
 * within a second.
 */
static void
ngx_http_taskmgr_attach_gc_next(ngx_http_taskmgr_attach_gc_work_t *w)
{
    ngx_msec_t                    after;
    ngx_http_taskmgr_attach_gc_t *gc;

    gc = &ngx_http_taskmgr_attach_gc;

    after = gc->amcf->gc_interval;

    if (w && w->full && after > 1000) {
        after = 1000;
    }

    if (gc->pool) {
        ngx_destroy_pool(gc->pool);
        gc->pool = NULL;
    }

    if (ngx_http_taskmgr_attach_gc_stopping()) {
        return;
    }

    ngx_add_timer(&gc->timer, after);
}


static ngx_int_t
ngx_http_taskmgr_attach_gc_post(ngx_http_taskmgr_attach_gc_work_t *w,
                                ngx_event_handler_pt               done)
{
    ngx_thread_task_t            *task;
    ngx_http_taskmgr_attach_gc_t *gc;

    gc = &ngx_http_taskmgr_attach_gc;

    task = ngx_thread_task_alloc(gc->pool, 0);
    if (task == NULL) {
        return NGX_ERROR;
    }

    task->ctx = w;
    task->handler = ngx_http_taskmgr_attach_gc_thread;
    task->event.data = w;
    task->event.handler = done;
    task->event.log = gc->timer.log;

    return ngx_thread_task_post(gc->amcf->thread_pool, task);
}


/* the timer: a slice of the walk */
static void
ngx_http_taskmgr_attach_gc_run(ngx_event_t *ev)
{
    ngx_http_taskmgr_attach_gc_t        *gc;
    ngx_http_taskmgr_attach_gc_work_t   *w;
    ngx_http_taskmgr_attach_main_conf_t *amcf;

    gc = ev->data;
    amcf = gc->amcf;

    if (gc->pool || ngx_http_taskmgr_attach_gc_stopping()) {
        return;
    }

    w = NULL;

    gc->pool = ngx_create_pool(4096, ev->log);
    if (gc->pool == NULL) {
        goto failed;
    }

    w = ngx_pcalloc(gc->pool, sizeof(ngx_http_taskmgr_attach_gc_work_t));
    if (w == NULL) {
        goto failed;
    }

    /* <path>/ab/cd/<64 hex>.gc and its NUL */
    w->path = ngx_pnalloc(gc->pool, amcf->path.len + 7
                                        + NGX_HTTP_TASKMGR_ATT_SHA_LEN + 4);
    w->tomb = ngx_pnalloc(gc->pool, amcf->path.len + 7
                                        + NGX_HTTP_TASKMGR_ATT_SHA_LEN + 4);
    w->sha = ngx_pnalloc(gc->pool, NGX_HTTP_TASKMGR_GC_FILES
                                       * NGX_HTTP_TASKMGR_ATT_SHA_LEN);
    if (w->path == NULL || w->tomb == NULL || w->sha == NULL) {
        goto failed;
    }

    ngx_memcpy(w->path, amcf->path.data, amcf->path.len);
    w->dir_len = amcf->path.len;
    w->before = ngx_time() - amcf->gc_grace;
    w->walk = 1;
    w->cursor = gc->cursor;

    if (ngx_http_taskmgr_attach_gc_post(w, ngx_http_taskmgr_attach_gc_walked)
        == NGX_OK)
    {
        return;
    }

failed:

    ngx_http_taskmgr_attach_gc_next(w);
}


static void
ngx_http_taskmgr_attach_gc_error(ngx_http_taskmgr_attach_gc_work_t *w,
                                 const char *call, ngx_err_t err)
{
    if (w->errors++ == 0) {
        w->err = err;
        w->failed = call;
    }
}


/* w->path and w->tomb: <leaf>/<sha256> and <leaf>/<sha256>.gc */
static void
ngx_http_taskmgr_attach_gc_names(ngx_http_taskmgr_attach_gc_work_t *w,
                                 size_t leaf_len, u_char *sha)
{
    u_char *p;

    ngx_memcpy(w->path + leaf_len, sha, NGX_HTTP_TASKMGR_ATT_SHA_LEN);
    w->path[leaf_len + NGX_HTTP_TASKMGR_ATT_SHA_LEN] = '\0';

    p = ngx_cpymem(w->tomb, w->path, leaf_len + NGX_HTTP_TASKMGR_ATT_SHA_LEN);
    ngx_memcpy(p, ".gc", sizeof(".gc"));
}


/*
 * In a thread: one leaf directory's candidates (files older than the
 * grace).  A <sha256>.gc left by a removal that did not finish goes back to
 * its name when the file is missing, and goes when the file is there.
 * leaf_len: w->path holds "<path>/ab/cd/" up to it.
 */
static void
ngx_http_taskmgr_attach_gc_leaf(ngx_http_taskmgr_attach_gc_work_t *w,
                                size_t                             leaf_len)
{
    DIR           *dir;
    size_t         len;
    ngx_err_t      err;
    ngx_uint_t     seen, found, entries, complete;
    struct stat    sb;
    struct dirent *de;

    w->path[leaf_len - 1] = '\0';

    dir = opendir((char *) w->path);

    w->path[leaf_len - 1] = '/';

    if (dir == NULL) {
        err = ngx_errno;
        if (err != NGX_ENOENT && err != NGX_ENOTDIR) {
            ngx_http_taskmgr_attach_gc_error(w, "opendir()", err);
        }
        return;
    }

    found = 0;
    entries = 0;
    complete = 0;

    /* bounded: at most GC_FILES candidates of one directory a cycle */
    for (seen = 0; seen < 4 * NGX_HTTP_TASKMGR_GC_FILES; seen++) {
        ngx_set_errno(0);
        de = readdir(dir);

        if (de == NULL) {
            err = ngx_errno;
            if (err) {
                ngx_http_taskmgr_attach_gc_error(w, "readdir()", err);

            } else {
                complete = 1;
            }
            break;
        }

        if (de->d_name[0] == '.'
            && (de->d_name[1] == '\0'
                || (de->d_name[1] == '.' && de->d_name[2] == '\0')))
        {
            continue;
        }

        entries++;

        len = ngx_strlen(de->d_name);

        if (len == NGX_HTTP_TASKMGR_ATT_SHA_LEN + 3
            && ngx_strcmp(de->d_name + NGX_HTTP_TASKMGR_ATT_SHA_LEN, ".gc") == 0
            && ngx_http_taskmgr_attach_is_sha((u_char *) de->d_name,
                                                 NGX_HTTP_TASKMGR_ATT_SHA_LEN))
        {
            ngx_http_taskmgr_attach_gc_names(w, leaf_len,
                                             (u_char *) de->d_name);

            if (lstat((char *) w->path, &sb) == 0) {
                if (unlink((char *) w->tomb) == -1 && ngx_errno != NGX_ENOENT)
                {
                    ngx_http_taskmgr_attach_gc_error(w, "unlink()", ngx_errno);
                }

            } else if (rename((char *) w->tomb, (char *) w->path) == 0) {
                w->restored++;

            } else if (ngx_errno != NGX_ENOENT) {
                ngx_http_taskmgr_attach_gc_error(w, "rename()", ngx_errno);
            }

            continue;
        }

        if (!ngx_http_taskmgr_attach_is_sha((u_char *) de->d_name, len)) {
            continue;
        }

        ngx_http_taskmgr_attach_gc_names(w, leaf_len, (u_char *) de->d_name);

        if (lstat((char *) w->path, &sb) == -1) {
            err = ngx_errno;
            if (err != NGX_ENOENT) {
                ngx_http_taskmgr_attach_gc_error(w, "lstat()", err);
            }
            continue;
        }

        if (!S_ISREG(sb.st_mode) || sb.st_mtime >= w->before) {
            continue;
        }

        ngx_memcpy(w->sha + w->n * NGX_HTTP_TASKMGR_ATT_SHA_LEN, de->d_name,
                   NGX_HTTP_TASKMGR_ATT_SHA_LEN);
        w->n++;

        if (w->n == NGX_HTTP_TASKMGR_GC_FILES
            || ++found == NGX_HTTP_TASKMGR_GC_FILES)
        {
            break;
        }
    }

    closedir(dir);

    /*
     * Read to its end and empty (its last files removed by an earlier
     * slice): it goes.  An upload that links into it meanwhile makes it
     * again (ngx_http_taskmgr_attach_store_thread).
     */
    if (complete && entries == 0) {
        w->path[leaf_len - 1] = '\0';
        ngx_http_taskmgr_attach_gc_rmdir(w);
        w->path[leaf_len - 1] = '/';
    }
}


/* In a thread: removes the directory w->path if it is empty. */
static void
ngx_http_taskmgr_attach_gc_rmdir(ngx_http_taskmgr_attach_gc_work_t *w)
{
    ngx_err_t err;

    if (rmdir((char *) w->path) == 0) {
        w->dirs++;
        return;
    }

    err = ngx_errno;

    /* not empty (any more), or gone already */
    if (err != ENOTEMPTY && err != NGX_EEXIST && err != NGX_ENOENT) {
        ngx_http_taskmgr_attach_gc_error(w, "rmdir()", err);
    }
}


/* In a thread: a slice of the walk, or the removal of the orphans. */
static void
ngx_http_taskmgr_attach_gc_thread(void *data, ngx_log_t *log)
{
    ngx_http_taskmgr_attach_gc_work_t *w = data;

    u_char      *leaf;
    size_t       leaf_len;
    ngx_uint_t   i, visited;
    struct stat  sb;

    (void) log;

    if (w->walk) {
        for (visited = 0;
             visited < NGX_HTTP_TASKMGR_GC_DIRS
             && w->cursor < NGX_HTTP_TASKMGR_GC_LEAVES
             && w->n < NGX_HTTP_TASKMGR_GC_FILES;
             visited++)
        {
            leaf = ngx_sprintf(w->path + w->dir_len, "/%02xi",
                               w->cursor >> 8);
            *leaf = '\0';

            /* a missing first level: its 256 leaves at once */
            if ((w->cursor & 0xff) == 0 && lstat((char *) w->path, &sb) == -1)
            {
                if (ngx_errno != NGX_ENOENT) {
                    ngx_http_taskmgr_attach_gc_error(w, "lstat()", ngx_errno);
                }

                w->cursor += 256;
                continue;
            }

            leaf = ngx_sprintf(leaf, "/%02xi/", w->cursor & 0xff);
            leaf_len = leaf - w->path;

            ngx_http_taskmgr_attach_gc_leaf(w, leaf_len);

            /* after its last leaf, <path>/ab itself, if empty now */
            if ((w->cursor & 0xff) == 0xff) {
                w->path[w->dir_len + 3] = '\0';
                ngx_http_taskmgr_attach_gc_rmdir(w);
            }

            w->cursor++;
        }

        return;
    }

    for (i = 0; i < w->n; i++) {
        leaf = ngx_sprintf(w->path + w->dir_len, "/%*s/%*s/", (size_t) 2,
                           w->sha + i * NGX_HTTP_TASKMGR_ATT_SHA_LEN,
                           (size_t) 2,
                           w->sha + i * NGX_HTTP_TASKMGR_ATT_SHA_LEN + 2);
        leaf_len = leaf - w->path;

        ngx_http_taskmgr_attach_gc_names(
            w, leaf_len, w->sha + i * NGX_HTTP_TASKMGR_ATT_SHA_LEN);

        /*
         * Renamed first: an upload that touches the file from now on finds
         * it gone and links its own copy.  One that touched it before the
         * rename (its row may be on its way) left a new mtime: the file
         * goes back.
         */
        if (lstat((char *) w->path, &sb) == -1) {
            /* gone since the walk (another instance's collection) */
            continue;
        }

        if (sb.st_mtime >= w->before) {
            w->kept++;
            continue;
        }

        if (rename((char *) w->path, (char *) w->tomb) == -1) {
            if (ngx_errno != NGX_ENOENT) {
                ngx_http_taskmgr_attach_gc_error(w, "rename()", ngx_errno);
            }
            continue;
        }

        if (lstat((char *) w->tomb, &sb) == 0 && sb.st_mtime < w->before) {
            if (unlink((char *) w->tomb) == 0) {
                w->removed++;

            } else {
                ngx_http_taskmgr_attach_gc_error(w, "unlink()", ngx_errno);
            }

            continue;
        }

        w->kept++;

        /* ENOENT: another instance's walk put it back already */
        if (rename((char *) w->tomb, (char *) w->path) == -1
            && ngx_errno != NGX_ENOENT)
        {
            ngx_http_taskmgr_attach_gc_error(w, "rename()", ngx_errno);
        }
    }
}


/* the first file-system error of a slice and their count */
static void
ngx_http_taskmgr_attach_gc_log_errors(ngx_http_taskmgr_attach_gc_work_t *w,
                                      ngx_log_t                         *log)
{
    if (w->errors) {
        ngx_log_error(NGX_LOG_ERR, log, w->err,
                      "taskmgr: attachment gc: %s failed (%ui errors) in "
                      "\"%V\"",
                      w->failed, w->errors,
                      &ngx_http_taskmgr_attach_gc.amcf->path);
    }
}


/* the walk is done: which of its candidates does no row name? */
static void
ngx_http_taskmgr_attach_gc_walked(ngx_event_t *ev)
{
    u_char                            *p;
    ngx_str_t                          arr;
    ngx_uint_t                         i;
    ngx_http_taskmgr_attach_gc_t      *gc;
    ngx_http_taskmgr_pg_query_t       *q;
    ngx_http_taskmgr_attach_gc_work_t *w;

    w = ev->data;
    gc = &ngx_http_taskmgr_attach_gc;

    ngx_http_taskmgr_attach_gc_log_errors(w, ev->log);

    if (w->restored) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "taskmgr: attachment gc: restored %ui files from "
                      "an unfinished removal",
                      w->restored);
    }

    if (w->dirs) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "taskmgr: attachment gc removed %ui empty directories",
                      w->dirs);
    }

    /* a whole pass done: start again at the first leaf */
    gc->cursor = (w->cursor >= NGX_HTTP_TASKMGR_GC_LEAVES) ? 0 : w->cursor;
    w->full = (w->n == NGX_HTTP_TASKMGR_GC_FILES);

    if (w->n == 0 || ngx_http_taskmgr_attach_gc_stopping()) {
        ngx_http_taskmgr_attach_gc_next(w);
        return;
    }

    /* {sha,sha,...} */
    arr.data = ngx_pnalloc(gc->pool, w->n * (NGX_HTTP_TASKMGR_ATT_SHA_LEN + 1)
                                         + 2);
    if (arr.data == NULL) {
        ngx_http_taskmgr_attach_gc_next(w);
        return;
    }

    p = arr.data;
    *p++ = '{';

    for (i = 0; i < w->n; i++) {
        if (i) {
            *p++ = ',';
        }
        p = ngx_cpymem(p, w->sha + i * NGX_HTTP_TASKMGR_ATT_SHA_LEN,
                       NGX_HTTP_TASKMGR_ATT_SHA_LEN);
    }

    *p++ = '}';
    arr.len = p - arr.data;

    q = ngx_http_taskmgr_pg_query_create_bg(gc->pool, ev->log,
                                            NGX_HTTP_TASKMGR_SQL_ATTACH_ORPHANS,
                                            ngx_http_taskmgr_attach_gc_orphans);
    if (q == NULL) {
        ngx_http_taskmgr_attach_gc_next(w);
        return;
    }

    q->data = w;
    ngx_http_taskmgr_pg_param(q, &arr);

    if (ngx_http_taskmgr_pg_submit(q) != NGX_OK) {
        ngx_http_taskmgr_attach_gc_next(w);
    }
}


/* the orphans: removed in the thread pool */
static void
ngx_http_taskmgr_attach_gc_orphans(ngx_http_taskmgr_pg_query_t *q)
{
    int                                i, rows;
    ngx_http_taskmgr_attach_gc_work_t *w;

    w = q->data;

    if (q->rc != NGX_OK || q->res == NULL) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "taskmgr: attachment gc: the database did not answer");
        goto next;
    }

    if (q->sqlstate) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "taskmgr: attachment gc failed (%s): %s", q->sqlstate,
                      PQresultErrorMessage(q->res));
        goto next;
    }

    rows = PQntuples(q->res);

    if (PQnfields(q->res) != 1 || rows < 0
        || (ngx_uint_t) rows > w->n)
    {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "taskmgr: attachment gc: unexpected answer");
        goto next;
    }

    /* the orphans replace the candidates (the answer goes with the pool) */
    w->n = 0;

    for (i = 0; i < rows; i++) {
        if (PQgetisnull(q->res, i, 0)
            || PQgetlength(q->res, i, 0) != NGX_HTTP_TASKMGR_ATT_SHA_LEN
            || !ngx_http_taskmgr_attach_is_sha(
                (u_char *) PQgetvalue(q->res, i, 0),
                NGX_HTTP_TASKMGR_ATT_SHA_LEN))
        {
            continue;
        }

        ngx_memcpy(w->sha + w->n * NGX_HTTP_TASKMGR_ATT_SHA_LEN,
                   PQgetvalue(q->res, i, 0), NGX_HTTP_TASKMGR_ATT_SHA_LEN);
        w->n++;
    }

    if (w->n == 0 || ngx_http_taskmgr_attach_gc_stopping()) {
        goto next;
    }

    w->walk = 0;
    w->errors = 0;

    if (ngx_http_taskmgr_attach_gc_post(w, ngx_http_taskmgr_attach_gc_removed)
        == NGX_OK)
    {
        return;
    }

next:

    ngx_http_taskmgr_attach_gc_next(w);
}


static void
ngx_http_taskmgr_attach_gc_removed(ngx_event_t *ev)
{
    ngx_http_taskmgr_attach_gc_work_t *w;

    w = ev->data;

    ngx_http_taskmgr_attach_gc_log_errors(w, ev->log);

    if (w->removed || w->kept) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "taskmgr: attachment gc removed %ui files, kept %ui "
                      "in use again",
                      w->removed, w->kept);
    }

    ngx_http_taskmgr_attach_gc_next(w);
}
