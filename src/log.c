/* SPDX-License-Identifier: MIT */
/* Log sinks: the journal (native protocol, so priorities and event fields survive) or stderr lines. */
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "json.h"
#include "log.h"

/* The longest message, formatted, with its NUL: longer ones are cut (the JSON line is sized by it). */
#define LOG_MESSAGE_MAX 2048

static int max_level = LOG_INFO;
static LogFormat line_format = LOG_FORMAT_TEXT;
static bool use_journal = false;
static log_line_writer_t line_writer;
static void *line_writer_userdata;

/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected to stdout/stderr. Only trust it when it
 * really is our stderr: a shell started from a service inherits the variable with another stderr. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

void log_open(void) {
        use_journal = stderr_is_journal();
}

bool log_to_journal(void) {
        return use_journal;
}

void log_set_line_writer(log_line_writer_t writer, void *userdata) {
        line_writer = writer;
        line_writer_userdata = userdata;
}

void log_set_max_level(int level) {
        max_level = level;
}

void log_set_format(LogFormat f) {
        line_format = f;
}

LogFormat log_format_from_string(const char *s) {
        if (streq_ptr(s, "text"))
                return LOG_FORMAT_TEXT;
        if (streq_ptr(s, "json"))
                return LOG_FORMAT_JSON;
        return _LOG_FORMAT_INVALID;
}

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

const char *log_level_to_string(int level) {
        return level_names[CLAMP(level, LOG_EMERG, LOG_DEBUG)];
}

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        if (streq(s, "error"))
                return LOG_ERR;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (streq(s, level_names[i]))
                        return (int) i;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
                return s[0] - '0';
        return -EINVAL;
}

/* Appends ,"key":value for a journal field "KEY=value": the key in lower case, the value a number when it
 * is one (a pid, a slot, a size), a string otherwise. */
static char *json_field(char *o, const char *field) {
        const char *eq = strchr(field, '='), *v;
        size_t digits;

        if (!eq || eq == field)
                return o;
        o = stpcpy(o, ",\"");
        for (const char *k = field; k < eq; k++)
                *o++ = (char) (*k >= 'A' && *k <= 'Z' ? *k - 'A' + 'a' : *k);
        o = stpcpy(o, "\":");
        v = eq + 1;
        digits = strspn(v + (*v == '-'), "0123456789");
        if (digits > 0 && digits <= 15 && v[(*v == '-') + digits] == 0 && (digits == 1 || v[*v == '-'] != '0'))
                return stpcpy(o, v);
        *o++ = '"';
        o += json_escape(o, v, strlen(v));
        *o++ = '"';
        return o;
}

/* One JSON object: the time, "source":"corral", the level, the message, its MESSAGE_ID and fields. */
static size_t format_json(char *out, int level, const char *message_id, const LogFields *fields,
                          const char *message) {
        char *o = out;

        o = stpcpy(o, "{\"time\":");
        o += json_time(o, now_usec(CLOCK_REALTIME));
        o += sprintf(o, ",\"source\":\"corral\",\"pid\":%d,\"level\":\"%s\",\"message\":\"", (int) getpid(),
                     log_level_to_string(level));
        o += json_escape(o, message, strlen(message));
        *o++ = '"';
        if (message_id)
                o += sprintf(o, ",\"message_id\":\"%s\"", message_id);
        for (unsigned i = 0; fields && i < fields->n; i++)
                o = json_field(o, fields->field[i]);
        o = stpcpy(o, "}");
        return (size_t) (o - out);
}

static void write_stderr(int level, const char *message_id, const LogFields *fields, const char *message) {
        const char *prefix = level <= LOG_ERR ? "error: " : level == LOG_WARNING ? "warning: " : "";
        /* JSON: the message and every field escaped, and the rest. */
        static char line[JSON_ESCAPE_MAX(LOG_MESSAGE_MAX + LOG_FIELDS_MAX * LOG_FIELD_SIZE) + 1024];
        size_t n;

        if (line_format == LOG_FORMAT_JSON)
                n = format_json(line, level, message_id, fields, message);
        else
                n = (size_t) MAX(snprintf(line, sizeof line, "corral: %s%s", prefix, message), 0);
        n = MIN(n, sizeof line - 1);
        if (line_writer)
                line_writer(line, n, line_writer_userdata);
        else
                fprintf(stderr, "%.*s\n", (int) n, line);
}

static void write_journal(int level, const char *message_id, const LogFields *fields, const char *message) {
        char priority[16], msg_id[64];
        _cleanup_free_ char *msg = NULL;
        struct iovec iov[4 + LOG_FIELDS_MAX];
        size_t n = 0;

        msg = strdup_printf("MESSAGE=%s", message);
        if (!msg) {
                write_stderr(level, message_id, fields, message);
                return;
        }
        snprintf(priority, sizeof priority, "PRIORITY=%d", level);
        iov[n++] = (struct iovec) { msg, strlen(msg) };
        iov[n++] = (struct iovec) { priority, strlen(priority) };
        iov[n++] = (struct iovec) { (char *) "SYSLOG_IDENTIFIER=corral", strlen("SYSLOG_IDENTIFIER=corral") };
        if (message_id) {
                snprintf(msg_id, sizeof msg_id, "MESSAGE_ID=%s", message_id);
                iov[n++] = (struct iovec) { msg_id, strlen(msg_id) };
        }
        for (unsigned i = 0; fields && i < fields->n; i++)
                iov[n++] = (struct iovec) { (char *) fields->field[i], strlen(fields->field[i]) };

        if (sd_journal_sendv(iov, (int) n) < 0)
                write_stderr(level, message_id, fields, message);
}

static void log_dispatch(int level, const char *message_id, const LogFields *fields, const char *message) {
        if (use_journal)
                write_journal(level, message_id, fields, message);
        else
                write_stderr(level, message_id, fields, message);
}

int log_internal(int level, int error, const char *format, ...) {
        char buf[LOG_MESSAGE_MAX];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return -error;

        /* %m in format reads errno: point it at the error we are logging. */
        errno = error;
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        log_dispatch(level, NULL, NULL, buf);
        return -error;
}

void log_fields_add(LogFields *f, const char *format, ...) {
        va_list ap;

        if (f->n >= LOG_FIELDS_MAX)
                return;
        va_start(ap, format);
        vsnprintf(f->field[f->n], LOG_FIELD_SIZE, format, ap);
        va_end(ap);
        f->n++;
}

int log_event(int level, const char *message_id, const LogFields *fields, const char *format, ...) {
        char buf[LOG_MESSAGE_MAX];
        va_list ap;

        if (level > max_level)
                return 0;
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        log_dispatch(level, message_id, fields, buf);
        return 0;
}
