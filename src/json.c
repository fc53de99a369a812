/* SPDX-License-Identifier: MIT */
/* JSON strings and time stamps, written into the caller's buffer (the relay formats a line per call). */
#include <stdio.h>

#include "json.h"

/* The length of the UTF-8 sequence at s, of which n bytes are there (1 to 4), or 0 when it is not one: a
 * stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF, or cut short. */
static size_t utf8_sequence_length(const unsigned char *s, size_t n) {
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2;
        else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                len = 3;
                lo = s[0] == 0xe0 ? 0xa0 : lo;
                hi = s[0] == 0xed ? 0x9f : hi;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                len = 4;
                lo = s[0] == 0xf0 ? 0x90 : lo;
                hi = s[0] == 0xf4 ? 0x8f : hi;
        } else
                return 0;
        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        return len;
}

size_t json_escape(char *dst, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *c = (const unsigned char *) s, *end = c + n;
        char *p = dst;

        while (c < end) {
                size_t len = utf8_sequence_length(c, (size_t) (end - c));

                if (*c == '"' || *c == '\\') {
                        *p++ = '\\';
                        *p++ = (char) *c;
                } else if (*c < 0x20 || *c == 0x7f) {
                        memcpy(p, "\\u00", 4);
                        p[4] = hex[*c >> 4];
                        p[5] = hex[*c & 0xf];
                        p += 6;
                } else if (len == 0) {
                        memcpy(p, "\\ufffd", 6);
                        p += 6;
                } else {
                        memcpy(p, c, len);
                        p += len;
                }
                c += MAX(len, 1U);
        }
        return (size_t) (p - dst);
}

size_t json_piece(const char *s, size_t n, size_t max) {
        size_t k = max;

        if (n <= max)
                return n;
        /* Back to the start of the sequence that the cut would split (at most three continuation bytes). */
        while (k > max - 3 && ((unsigned char) s[k] & 0xc0) == 0x80)
                k--;
        return k;
}

size_t json_time(char dst[static JSON_TIME_MAX], usec_t t) {
        time_t secs = (time_t) (t / USEC_PER_SEC);
        struct tm tm;
        int n;

        if (!gmtime_r(&secs, &tm))
                tm = (struct tm) { .tm_year = 70, .tm_mday = 1 };
        n = snprintf(dst, JSON_TIME_MAX, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06uZ\"", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned) (t % USEC_PER_SEC));
        return (size_t) CLAMP(n, 0, JSON_TIME_MAX - 1);
}
