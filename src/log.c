/* SPDX-License-Identifier: MIT */
/* Log sinks: the journal (native protocol, so priorities and event fields survive) or stderr lines. */
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
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

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };

        if (!s)
                return -EINVAL;
        if (streq(s, "error"))
                return LOG_ERR;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
                return s[0] - '0';
        return -EINVAL;
}

static void write_stderr(int level, const char *message) {
        const char *prefix = level <= LOG_ERR ? "error: " : level == LOG_WARNING ? "warning: " : "";
        char line[2100];
        int n;

        if (!line_writer) {
                fprintf(stderr, "corral: %s%s\n", prefix, message);
                return;
        }
        n = snprintf(line, sizeof line, "corral: %s%s", prefix, message);
        line_writer(line, MIN((size_t) MAX(n, 0), sizeof line - 1), line_writer_userdata);
}

static void write_journal(int level, const char *message_id, const LogFields *fields, const char *message) {
        char priority[16], msg_id[64];
        _cleanup_free_ char *msg = NULL;
        struct iovec iov[4 + LOG_FIELDS_MAX];
        size_t n = 0;

        msg = strdup_printf("MESSAGE=%s", message);
        if (!msg) {
                write_stderr(level, message);
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
                write_stderr(level, message);
}

static void log_dispatch(int level, const char *message_id, const LogFields *fields, const char *message) {
        if (use_journal)
                write_journal(level, message_id, fields, message);
        else
                write_stderr(level, message);
}

int log_internal(int level, int error, const char *format, ...) {
        char buf[2048];
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
        char buf[2048];
        va_list ap;

        if (level > max_level)
                return 0;
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        log_dispatch(level, message_id, fields, buf);
        return 0;
}
