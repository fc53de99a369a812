/* SPDX-License-Identifier: MIT */
/* Strict value parsers shared by the config file and the command line. Pure: no I/O, no logging.
 * Every parser returns 0 and writes *ret only on success, -EINVAL for malformed input and -ERANGE for
 * values out of range; nothing is accepted with trailing garbage. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* Unsigned decimal integer within [min, max]. No sign, no leading or trailing spaces. */
int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret);

/* Duration in systemd's style: "30s", "500ms", "1min 30s", "2h", "1d", "10us"; a bare number is seconds
 * (may have a fraction: "1.5"). Units: us usec, ms msec, s sec, m min, h hr, d day. */
int parse_usec(const char *s, usec_t *ret);

/* Size with binary suffixes: "512M", "1G", "64K", "1.5G"; a bare number is bytes. K M G T (base 1024),
 * optionally followed by "B" or "iB". */
int parse_size(const char *s, uint64_t *ret);

/* "yes/no/true/false/on/off/1/0". Returns 0 or 1 in *ret. */
int parse_boolean(const char *s, bool *ret);

/* Splits a command line into words: whitespace separated, "double" and 'single' quotes group, a
 * backslash escapes the next character in and outside double quotes. No variable expansion. Returns
 * -EINVAL for an unterminated quote or an empty command. */
int parse_command_line(const char *s, char ***ret);

/* A signal by name or number: "TERM", "SIGTERM", "15", "RTMIN+2", "SIGRTMAX-1" (realtime numbers are
 * glibc's, read at run time). Returns the signal or -EINVAL. The reverse is signal_to_string() (util.h). */
int signal_from_string(const char *s);
