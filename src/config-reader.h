/* SPDX-License-Identifier: MIT */
/* The line reader for inih (ini_parse_stream()): inih (at least up to r55) neither passes line numbers to
 * the handler nor stops at the first error, so the reader hands out the file one logical line at a time,
 * counts them, checks what inih would silently accept, joins continuation lines, and ends the input once an
 * error was recorded. The handler records its errors with config_reader_fail() too. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

typedef struct ConfigReader {
        const char *path; /* for messages */
        const char *data; /* the file's text */
        size_t size, pos;
        unsigned line;    /* where the logical line being parsed starts: the line of messages */
        unsigned n_read;  /* physical lines read */
        char section[32]; /* the current section, "" before the first */
        int error;        /* the first error, 0: none */
        char *message;    /* its "FILE:LINE: ..." message, owned */

        /* What the config knows: sections, keys, and which keys may go on over indented lines (and the rule,
         * said when another one does). */
        bool (*section_known)(const char *section);
        bool (*is_key)(const char *section, const char *key);
        bool (*may_continue)(const char *section, const char *key);
        const char *continuation_rule;
} ConfigReader;

/* inih's reader: stream is the ConfigReader. */
char *config_reader(char *str, int num, void *stream);

/* Records the first error as "FILE:LINE: <message>"; returns false, which is inih's "failed" too. */
bool config_reader_fail(ConfigReader *p, int error, const char *format, ...) _printf_(3, 4);
