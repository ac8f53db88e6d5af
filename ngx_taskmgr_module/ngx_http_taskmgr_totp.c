/*
 * Copyright (C) taskmgr developers
 */


#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_taskmgr_totp.h"


static const char ngx_http_taskmgr_base32_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";


long
ngx_http_taskmgr_hotp(const unsigned char *key, size_t key_len,
                      uint64_t counter, unsigned digits)
{
    int           i;
    unsigned      md_len, off;
    unsigned long bin, mod;
    unsigned char msg[8], md[EVP_MAX_MD_SIZE];

    if (digits == 0 || digits > 9 || key_len > NGX_HTTP_TASKMGR_TOTP_KEY_MAX) {
        return -1;
    }

    for (i = 7; i >= 0; i--) {
        msg[i] = (unsigned char) (counter & 0xff);
        counter >>= 8;
    }

    if (HMAC(EVP_sha1(), key, (int) key_len, msg, sizeof(msg), md, &md_len)
            == NULL
        || md_len != 20)
    {
        return -1;
    }

    /* dynamic truncation (RFC 4226 5.3) */
    off = md[19] & 0x0f;
    bin = ((unsigned long) (md[off] & 0x7f) << 24)
        | ((unsigned long) md[off + 1] << 16)
        | ((unsigned long) md[off + 2] << 8) | (unsigned long) md[off + 3];

    mod = 1;
    while (digits--) {
        mod *= 10;
    }

    OPENSSL_cleanse(md, sizeof(md));

    return (long) (bin % mod);
}


size_t
ngx_http_taskmgr_base32_encode(unsigned char *dst, const unsigned char *src,
                               size_t n)
{
    size_t        i, len;
    unsigned      bits;
    unsigned long acc;

    len = 0;
    acc = 0;
    bits = 0;

    for (i = 0; i < n; i++) {
        acc = (acc << 8) | src[i];
        bits += 8;

        while (bits >= 5) {
            bits -= 5;
            dst[len++] = ngx_http_taskmgr_base32_alphabet[(acc >> bits) & 31];
        }
    }

    if (bits) {
        dst[len++] = ngx_http_taskmgr_base32_alphabet[(acc << (5 - bits)) & 31];
    }

    return len;
}


long
ngx_http_taskmgr_base32_decode(unsigned char *dst, size_t dst_len,
                               const unsigned char *src, size_t n)
{
    size_t        i, len;
    unsigned      bits, v;
    unsigned long acc;

    len = 0;
    acc = 0;
    bits = 0;

    for (i = 0; i < n; i++) {
        if (src[i] >= 'A' && src[i] <= 'Z') {
            v = src[i] - 'A';

        } else if (src[i] >= '2' && src[i] <= '7') {
            v = src[i] - '2' + 26;

        } else {
            return -1;
        }

        acc = (acc << 5) | v;
        bits += 5;

        if (bits >= 8) {
            bits -= 8;

            if (len == dst_len) {
                return -1;
            }

            dst[len++] = (unsigned char) ((acc >> bits) & 0xff);
        }
    }

    return (long) len;
}


int64_t
ngx_http_taskmgr_totp_verify(const unsigned char *secret, size_t secret_len,
                             const unsigned char *code, size_t code_len,
                             time_t now, int64_t last_step)
{
    int           d;
    long          want, key_len, got;
    size_t        i;
    int64_t       step, found;
    unsigned char key[NGX_HTTP_TASKMGR_TOTP_KEY_MAX];

    if (code_len != NGX_HTTP_TASKMGR_TOTP_DIGITS || now < 0) {
        return -1;
    }

    want = 0;

    for (i = 0; i < code_len; i++) {
        if (code[i] < '0' || code[i] > '9') {
            return -1;
        }

        want = want * 10 + (code[i] - '0');
    }

    key_len =
        ngx_http_taskmgr_base32_decode(key, sizeof(key), secret, secret_len);
    if (key_len <= 0) {
        return -1;
    }

    found = -1;

    /* every step of the window is computed: the time spent does not tell
     * which one matched */
    for (d = -NGX_HTTP_TASKMGR_TOTP_WINDOW; d <= NGX_HTTP_TASKMGR_TOTP_WINDOW;
         d++) {
        step = (int64_t) (now / NGX_HTTP_TASKMGR_TOTP_PERIOD) + d;

        if (step < 0) {
            continue;
        }

        got = ngx_http_taskmgr_hotp(key, (size_t) key_len, (uint64_t) step,
                                    NGX_HTTP_TASKMGR_TOTP_DIGITS);

        if (got == want && step > last_step && found < 0) {
            found = step;
        }
    }

    OPENSSL_cleanse(key, sizeof(key));

    return found;
}
