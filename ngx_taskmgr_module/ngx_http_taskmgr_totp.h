/*
 * Copyright (C) taskmgr developers
 *
 * TOTP (RFC 6238) over HOTP (RFC 4226) with HMAC-SHA-1, and base32
 * (RFC 4648).  Plain C and OpenSSL only, so that t/unit/totp_test.c
 * builds it without nginx.
 */

#ifndef _NGX_HTTP_TASKMGR_TOTP_H_INCLUDED_
#define _NGX_HTTP_TASKMGR_TOTP_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>


#define NGX_HTTP_TASKMGR_TOTP_PERIOD       30
#define NGX_HTTP_TASKMGR_TOTP_DIGITS       6
#define NGX_HTTP_TASKMGR_TOTP_WINDOW       1  /* steps either side */
#define NGX_HTTP_TASKMGR_TOTP_SECRET_BYTES 20 /* 160 bits, as RFC 4226 */
#define NGX_HTTP_TASKMGR_TOTP_SECRET_LEN   32 /* base32 of 20 bytes */
#define NGX_HTTP_TASKMGR_TOTP_KEY_MAX      64


/* the HOTP value of counter (digits 1..9), or -1 on error */
long ngx_http_taskmgr_hotp(const unsigned char *key, size_t key_len,
                           uint64_t counter, unsigned digits);

/* base32 without padding; dst holds (n * 8 + 4) / 5 bytes; answers that */
size_t ngx_http_taskmgr_base32_encode(unsigned char       *dst,
                                      const unsigned char *src, size_t n);

/* upper-case base32 without padding into at most dst_len bytes; the
 * length, or -1 when malformed or too long */
long ngx_http_taskmgr_base32_decode(unsigned char *dst, size_t dst_len,
                                    const unsigned char *src, size_t n);

/*
 * Checks a code of NGX_HTTP_TASKMGR_TOTP_DIGITS ASCII digits against the
 * base32 secret at time now, one step either side, only for steps after
 * last_step (a used code does not work twice).  The step that matched, or
 * -1.
 */
int64_t ngx_http_taskmgr_totp_verify(const unsigned char *secret,
                                     size_t               secret_len,
                                     const unsigned char *code, size_t code_len,
                                     time_t now, int64_t last_step);


#endif /* _NGX_HTTP_TASKMGR_TOTP_H_INCLUDED_ */
