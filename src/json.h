/* SPDX-License-Identifier: MIT */
/* JSON text from anyone's bytes: strings that are always valid JSON, and the time stamp of a log line. */
#pragma once

#include <stddef.h>

#include "util.h"

/* The most json_escape() writes for n bytes: six ("\u001f", "\ufffd") for each byte at worst. */
#define JSON_ESCAPE_MAX(n) (6 * (size_t) (n))

/* Writes the n bytes at s (NULs allowed) as the inside of a JSON string (no quotes) to dst, which holds at
 * least JSON_ESCAPE_MAX(n) bytes. Quotes and backslashes are escaped, control characters become \u00XX,
 * and a byte that does not start a valid UTF-8 sequence becomes U+FFFD. Returns the bytes written (no
 * NUL). */
size_t json_escape(char *dst, const char *s, size_t n);

/* How many of the n bytes at s to escape in one piece of at most max bytes (max >= 4) so that no UTF-8
 * sequence is cut: the piece ends before a continuation byte's lead. */
size_t json_piece(const char *s, size_t n, size_t max);

/* The bytes a JSON time stamp takes: "2026-12-05T23:01:02.123456Z", its quotes and a NUL. */
#define JSON_TIME_MAX 32
/* Writes t (CLOCK_REALTIME) as a quoted RFC 3339 UTC time stamp with microseconds. Returns its length. */
size_t json_time(char dst[static JSON_TIME_MAX], usec_t t);
