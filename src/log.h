/* SPDX-License-Identifier: MIT */
/* Logging: plain messages and structured lifecycle events, to the journal when stderr is connected to it
 * (JOURNAL_STREAM), as readable lines on stderr otherwise. log_*_errno() return the negative error. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "util.h"

/* Decides once where logs go: the journal when $JOURNAL_STREAM names our stderr, stderr otherwise. */
void log_open(void);
void log_set_max_level(int level);
/* How lines on stderr look (the journal has its own fields): "corral: message" (text), or one JSON object
 * each with the time, level, message, MESSAGE_ID and the event's fields (json: for log collectors). */
typedef enum LogFormat {
        LOG_FORMAT_TEXT,
        LOG_FORMAT_JSON,
        _LOG_FORMAT_MAX,
        _LOG_FORMAT_INVALID = -EINVAL,
} LogFormat;
void log_set_format(LogFormat format);
LogFormat log_format_from_string(const char *s);
/* Whether log_open() chose the journal. */
bool log_to_journal(void);

/* Where lines for stderr go instead of stdio (NULL: stdio again): one line, without its newline. Lets the
 * worker output relay keep corral's own lines whole among the workers' (relay-sink.h). */
typedef void (*log_line_writer_t)(const char *line, size_t n, void *userdata);
void log_set_line_writer(log_line_writer_t writer, void *userdata);
/* "debug", "info", "notice", "warning", "err"/"error", "crit", "alert", "emerg" or 0-7; -EINVAL else. */
int log_level_from_string(const char *s);
/* The syslog name of level 0-7 ("info", "warning", "err", ...), the JSON lines' "level". */
const char *log_level_to_string(int level);

/* Logs at level with errno set to |error| for %m. Returns -|error| (or 0 when error is 0). */
int log_internal(int level, int error, const char *format, ...) _printf_(3, 4);

#define log_full_errno(level, error, ...) log_internal((level), (error), __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(error, ...) log_internal(LOG_DEBUG, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_internal(LOG_WARNING, (error), __VA_ARGS__)
#define log_error_errno(error, ...) log_internal(LOG_ERR, (error), __VA_ARGS__)
#define log_oom() log_internal(LOG_ERR, ENOMEM, "Out of memory.")

/* Extra journal fields of one event, "KEY=value" each. Fixed capacity: add silently drops what does
 * not fit, an event is never lost for its fields. */
#define LOG_FIELDS_MAX 12
#define LOG_FIELD_SIZE 160
typedef struct LogFields {
        unsigned n;
        char field[LOG_FIELDS_MAX][LOG_FIELD_SIZE];
} LogFields;

void log_fields_add(LogFields *f, const char *format, ...) _printf_(2, 3);

/* A lifecycle event: MESSAGE_ID (see message-ids.h), the fields, and the human message. On stderr only
 * the message is printed. Returns 0. */
int log_event(int level, const char *message_id, const LogFields *fields, const char *format, ...)
        _printf_(4, 5);
