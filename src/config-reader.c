/* SPDX-License-Identifier: MIT */
/* The line reader inih reads a config file's text through: physical lines counted, sections and syntax
 * checked, comments and indentation handled, continuation lines joined, and the first error recorded as
 * "FILE:LINE: message". What the keys are is the config's to say, through the callbacks. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config-reader.h"

/* Records the first error as "FILE:LINE: <message>"; returns false, which is inih's "failed" too. */
bool config_reader_fail(ConfigReader *p, int error, const char *format, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&m, format, ap);
        va_end(ap);

        p->message = r < 0 ? NULL : strdup_printf("%s:%u: %s", p->path, p->line, m);
        p->error = p->message ? error : -ENOMEM;
        return false;
}

/* Sections and syntax are checked here, on the raw line, because inih calls the handler only for
 * key=value pairs and reports other problems as a bare line number. */
static bool config_check_line(ConfigReader *p, const char *line) {
        const char *end, *rest;
        int n;

        if (*line == 0 || *line == '#' || *line == ';')
                return true;

        if (*line == '[') {
                end = strchr(line, ']');
                if (!end)
                        return config_reader_fail(p, -EINVAL, "Syntax error: missing ']'");
                rest = end + 1 + strspn(end + 1, " \t");
                if (*rest != 0 && *rest != '#' && *rest != ';')
                        return config_reader_fail(p, -EINVAL, "Syntax error: text after ']'");
                n = (int) (end - line - 1);
                if (!p->section_known(strndupa(line + 1, n)))
                        return config_reader_fail(p, -EINVAL, "Unknown section '%.*s'", n, line + 1);
                snprintf(p->section, sizeof(p->section), "%.*s", n, line + 1);
                return true;
        }

        /* inih also takes "Key: value" (Python's configparser); systemd's syntax does not. */
        if (line[strcspn(line, "=:")] != '=')
                return config_reader_fail(p, -EINVAL,
                                          "Syntax error: expected '[Section]', 'Key=value' or a comment");
        return true;
}

/* The next physical line, without its line end, a BOM on the first line, and leading blanks; *ret_indented
 * says whether there were any. False at the end of the input or on a NUL byte (an error is recorded). */
static bool config_next_line(ConfigReader *p, const char **ret, size_t *ret_len, bool *ret_indented) {
        const char *start, *eol;
        size_t len;

        if (p->pos >= p->size)
                return false;
        start = p->data + p->pos;
        eol = memchr(start, '\n', p->size - p->pos);
        len = eol ? (size_t) (eol - start) : p->size - p->pos;
        p->pos += len + (eol ? 1 : 0);
        p->n_read++;

        if (memchr(start, 0, len)) {
                p->line = p->n_read;
                return config_reader_fail(p, -EINVAL, "Line contains a NUL byte");
        }
        if (len > 0 && start[len - 1] == '\r')
                len--;
        if (p->n_read == 1 && len >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0) {
                start += 3;
                len -= 3;
        }
        *ret_indented = len > 0 && (*start == ' ' || *start == '\t');
        while (len > 0 && (*start == ' ' || *start == '\t')) {
                start++;
                len--;
        }
        *ret = start;
        *ret_len = len;
        return true;
}

/* The length of line[0..len) without a comment (a ';' after a blank, as inih has it) and trailing blanks. */
static size_t config_strip_comment(const char *line, size_t len) {
        for (size_t i = 1; i < len; i++)
                if (line[i] == ';' && (line[i - 1] == ' ' || line[i - 1] == '\t')) {
                        len = i;
                        break;
                }
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
                len--;
        return len;
}

/* Whether line[0..len) assigns a key of the current section ("Key=" or "Key ="). */
static bool config_line_is_key(const ConfigReader *p, const char *line, size_t len) {
        const char *eq = memchr(line, '=', len);
        size_t n = eq ? (size_t) (eq - line) : 0;

        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
                n--;
        return n > 0 && p->is_key(p->section, strndupa(line, n));
}

/* Appends the indented lines that continue the assignment in str[0..*len) (joined with a space, comments
 * taken out). An indented line continues the value unless it is empty, a comment (skipped), or itself an
 * assignment to a key of the section: a file indented throughout reads as it did before continuation lines
 * existed. Only the keys that hold lists of words take more than one line. */
static bool config_join_continuations(ConfigReader *p, char *str, size_t *len, size_t max) {
        bool joined = false, may_continue;
        const char *line, *key;
        size_t n, at;

        n = strcspn(str, "=");
        while (n > 0 && (str[n - 1] == ' ' || str[n - 1] == '\t'))
                n--;
        key = strndupa(str, n);
        /* An unknown key is reported as such by the handler, not at the lines after it. */
        if (!p->is_key(p->section, key))
                return true;
        may_continue = p->may_continue(p->section, key);

        for (;;) {
                size_t pos = p->pos;
                unsigned n_read = p->n_read;
                bool indented;

                if (!config_next_line(p, &line, &n, &indented)) {
                        if (p->error < 0)
                                return false;
                        break;
                }
                if (indented && n > 0 && (*line == '#' || *line == ';'))
                        continue;
                if (!indented || n == 0 || config_line_is_key(p, line, n)) {
                        p->pos = pos;
                        p->n_read = n_read;
                        break;
                }
                if (!may_continue) {
                        p->line = p->n_read;
                        return config_reader_fail(p, -EINVAL, "Continuation line: %s", p->continuation_rule);
                }
                if (!joined) {
                        *len = config_strip_comment(str, *len);
                        joined = true;
                }
                n = config_strip_comment(line, n);
                at = *len;
                if (at + 1 + n > max)
                        return config_reader_fail(p, -EINVAL,
                                                  "Line too long (more than %zu characters, continuation "
                                                  "lines joined)",
                                                  max);
                str[at] = ' ';
                memcpy(str + at + 1, line, n);
                *len = at + 1 + n;
        }
        str[*len] = 0;
        return true;
}

char *config_reader(char *str, int num, void *stream) {
        ConfigReader *p = stream;
        const char *start;
        size_t len;
        bool indented;

        /* Indentation is dropped: inih would take an indented line as the continuation of the previous value
         * (Python's multi-line values), without a line number or a way to tell which key may have one;
         * continuations are joined here instead. */
        if (p->error < 0 || num < 3 || !config_next_line(p, &start, &len, &indented))
                return NULL;
        p->line = p->n_read;

        /* inih needs room for "\n\0" and silently drops the rest of a longer line. */
        if (len > (size_t) num - 2) {
                config_reader_fail(p, -EINVAL, "Line too long (more than %i characters)", num - 2);
                return NULL;
        }
        memcpy(str, start, len);
        str[len] = 0;
        if (!config_check_line(p, str))
                return NULL;
        if (*str != 0 && *str != '#' && *str != ';' && *str != '[' &&
            !config_join_continuations(p, str, &len, (size_t) num - 2))
                return NULL;
        str[len] = '\n';
        str[len + 1] = 0;
        return str;
}

