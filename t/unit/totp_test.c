/*
 * Copyright (C) taskmgr developers
 *
 * Unit test of the TOTP core (ngx_http_taskmgr_totp.c): the RFC 6238
 * Appendix B SHA-1 vectors, RFC 4226 Appendix D HOTP values, base32
 * (RFC 4648 section 10) and the verification window and replay rule.
 * Built and run by `make test` (target unit).
 */

#include <stdio.h>
#include <string.h>

#include "ngx_http_taskmgr_totp.h"


static int failures, checks;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        checks++;                                                              \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            printf("not ok %d - ", checks);                                    \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
        } else {                                                               \
            printf("ok %d - ", checks);                                        \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
        }                                                                      \
    } while (0)


int
main(void)
{
    size_t        i, n;
    long          got, len;
    int64_t       step;
    unsigned char buf[64];
    char          code[16];

    /* RFC 6238 Appendix B, SHA-1 rows: 8 digits, ASCII key
     * "12345678901234567890", T0 = 0, X = 30 */
    static const struct {
        long long time;
        long      totp;
    } rfc6238[] = {
        { 59LL, 94287082L },         { 1111111109LL, 7081804L },
        { 1111111111LL, 14050471L }, { 1234567890LL, 89005924L },
        { 2000000000LL, 69279037L }, { 20000000000LL, 65353130L },
    };

    /* RFC 4226 Appendix D: 6 digits, same key, counters 0..9 */
    static const long rfc4226[] = { 755224, 287082, 359152, 969429, 338314,
                                    254676, 287922, 162583, 399871, 520489 };

    static const unsigned char key[] = "12345678901234567890";

    /* RFC 4648 section 10, without padding */
    static const char *b32in[] = { "",     "f",     "fo",    "foo",
                                   "foob", "fooba", "foobar" };
    static const char *b32out[] = { "",        "MY",       "MZXQ",      "MZXW6",
                                    "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI" };

    for (i = 0; i < sizeof(rfc6238) / sizeof(rfc6238[0]); i++) {
        got = ngx_http_taskmgr_hotp(key, 20, (uint64_t) (rfc6238[i].time / 30),
                                    8);
        CHECK(got == rfc6238[i].totp,
              "RFC 6238 SHA-1 at %lld: %08ld (want %08ld)", rfc6238[i].time,
              got, rfc6238[i].totp);
    }

    for (i = 0; i < sizeof(rfc4226) / sizeof(rfc4226[0]); i++) {
        got = ngx_http_taskmgr_hotp(key, 20, i, 6);
        CHECK(got == rfc4226[i], "RFC 4226 HOTP counter %zu: %06ld", i, got);
    }

    CHECK(ngx_http_taskmgr_hotp(key, 20, 0, 0) == -1, "0 digits refused");
    CHECK(ngx_http_taskmgr_hotp(key, 20, 0, 10) == -1, "10 digits refused");

    for (i = 0; i < sizeof(b32in) / sizeof(b32in[0]); i++) {
        n = ngx_http_taskmgr_base32_encode(
            buf, (const unsigned char *) b32in[i], strlen(b32in[i]));
        CHECK(n == strlen(b32out[i]) && memcmp(buf, b32out[i], n) == 0,
              "base32 of \"%s\"", b32in[i]);

        len = ngx_http_taskmgr_base32_decode(buf, sizeof(buf),
                                             (const unsigned char *) b32out[i],
                                             strlen(b32out[i]));
        CHECK(len == (long) strlen(b32in[i])
                  && memcmp(buf, b32in[i], (size_t) len) == 0,
              "base32 decode of \"%s\"", b32out[i]);
    }

    CHECK(ngx_http_taskmgr_base32_decode(buf, sizeof(buf),
                                         (const unsigned char *) "MZ1W", 4)
              == -1,
          "base32: '1' refused");
    CHECK(ngx_http_taskmgr_base32_decode(buf, sizeof(buf),
                                         (const unsigned char *) "mzxw6", 5)
              == -1,
          "base32: lower case refused");
    CHECK(ngx_http_taskmgr_base32_decode(buf, 2,
                                         (const unsigned char *) "MZXW6", 5)
              == -1,
          "base32: output bound kept");

    /* the key of the vectors in base32 */
    n = ngx_http_taskmgr_base32_encode(buf, key, 20);
    CHECK(n == 32 && memcmp(buf, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 32) == 0,
          "base32 of the RFC key");

    /* verify: 6 digits at t = 1111111109 (step 37037036) */
    got = ngx_http_taskmgr_hotp(key, 20, 37037036, 6);
    snprintf(code, sizeof(code), "%06ld", got);

    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) code, 6,
                                        1111111109, 0);
    CHECK(step == 37037036, "verify: the current step");
    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) code, 6,
                                        1111111109 + 30, 0);
    CHECK(step == 37037036, "verify: one step late is accepted");
    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) code, 6,
                                        1111111109 - 30, 0);
    CHECK(step == 37037036, "verify: one step early is accepted");
    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) code, 6,
                                        1111111109 + 60, 0);
    CHECK(step == -1, "verify: two steps late is refused");
    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) code, 6,
                                        1111111109 - 60, 0);
    CHECK(step == -1, "verify: two steps early is refused");
    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) code, 6,
                                        1111111109, 37037036);
    CHECK(step == -1, "verify: a used step is refused (replay)");
    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) code, 6,
                                        1111111109, 37037035);
    CHECK(step == 37037036, "verify: a step after the last used one");

    code[5] = (char) (code[5] == '9' ? '0' : code[5] + 1);
    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) code, 6,
                                        1111111109, 0);
    CHECK(step == -1, "verify: a wrong digit is refused");

    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) "12345", 5,
                                        1111111109, 0);
    CHECK(step == -1, "verify: 5 digits refused");
    step = ngx_http_taskmgr_totp_verify(buf, 32, (unsigned char *) "12a456", 6,
                                        1111111109, 0);
    CHECK(step == -1, "verify: a letter refused");
    step = ngx_http_taskmgr_totp_verify((unsigned char *) "not base32!", 11,
                                        (unsigned char *) "123456", 6,
                                        1111111109, 0);
    CHECK(step == -1, "verify: a malformed secret refused");

    printf("1..%d\n", checks);

    return failures ? 1 : 0;
}
