/* SPDX-License-Identifier: MIT */
/* Tests for json.c: every byte string becomes valid JSON (escapes, U+FFFD for what is not UTF-8), pieces
 * never cut a sequence, and the time stamp's form. */

#include <criterion/criterion.h>

#include "json.h"

TestSuite(json, .timeout = 10);

/* The escaped form of the n bytes at s, NUL-terminated. */
static const char *escaped(const char *s, size_t n) {
        static char out[JSON_ESCAPE_MAX(64) + 1];

        cr_assert_leq(n, 64);
        out[json_escape(out, s, n)] = 0;
        return out;
}

#define ESC(lit) escaped(lit, sizeof(lit) - 1)

Test(json, escapes_quotes_backslashes_and_controls) {
        cr_assert_str_eq(ESC("plain text"), "plain text");
        cr_assert_str_eq(ESC("a\"b\\c"), "a\\\"b\\\\c");
        cr_assert_str_eq(ESC("\n\t\x01\x1f\x7f"), "\\u000a\\u0009\\u0001\\u001f\\u007f");
        /* A NUL inside the bytes is a character like any other. */
        cr_assert_str_eq(ESC("a\0b"), "a\\u0000b");
}

Test(json, keeps_utf8_and_replaces_what_is_not) {
        cr_assert_str_eq(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8e"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8e");
        cr_assert_str_eq(ESC("\xff"), "\\ufffd");
        cr_assert_str_eq(ESC("\x80x"), "\\ufffdx");             /* a stray continuation byte */
        cr_assert_str_eq(ESC("\xc0\xaf"), "\\ufffd\\ufffd");     /* overlong */
        cr_assert_str_eq(ESC("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd"); /* a surrogate */
        cr_assert_str_eq(ESC("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd"); /* above U+10FFFF */
        /* Cut short at the end of the bytes: never read past them. */
        cr_assert_str_eq(escaped("\xe2\x82\xac", 2), "\\ufffd\\ufffd");
}

Test(json, worst_case_fits_the_bound) {
        char in[64], out[JSON_ESCAPE_MAX(64)];

        memset(in, 0x01, sizeof in);
        cr_assert_eq(json_escape(out, in, sizeof in), JSON_ESCAPE_MAX(sizeof in));
        memset(in, 0xff, sizeof in);
        cr_assert_eq(json_escape(out, in, sizeof in), JSON_ESCAPE_MAX(sizeof in));
}

Test(json, pieces_end_between_sequences) {
        const char *s = "ab\xe2\x82\xac" "cd";

        cr_assert_eq(json_piece(s, 7, 16), 7);
        cr_assert_eq(json_piece(s, 7, 4), 2); /* 4 would cut the euro sign after its second byte */
        cr_assert_eq(json_piece(s, 7, 5), 5);
        cr_assert_eq(json_piece("abcdefgh", 8, 4), 4);
}

Test(json, time_stamp_is_rfc3339_utc_with_microseconds) {
        char t[JSON_TIME_MAX];

        cr_assert_eq(json_time(t, 1796512862123456ULL), 29);
        cr_assert_str_eq(t, "\"2026-12-05T23:21:02.123456Z\"");
        json_time(t, 0);
        cr_assert_str_eq(t, "\"1970-01-01T00:00:00.000000Z\"");
}
