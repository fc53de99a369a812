/* SPDX-License-Identifier: MIT */
/* The upgrade state format: a writer into a growing buffer and a strict reader. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>

#include "state.h"

struct StateWriter {
        char *buf;
        size_t size, allocated;
        bool oom;
};

struct StateReader {
        char *text; /* a copy, cut into NUL-terminated pieces */
        StateRecord *records;
        size_t n_records;
        unsigned major, minor;
};

static bool is_word(const char *s, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
                      s[i] == '_'))
                        return false;
        return true;
}

static void append(StateWriter *w, const char *s, size_t n) {
        if (w->oom)
                return;
        if (w->size + n + 1 > w->allocated) {
                size_t a = MAX(w->allocated * 2, w->size + n + 1);
                char *b = a <= STATE_SIZE_MAX + 1 ? realloc(w->buf, a) : NULL;
                if (!b) {
                        w->oom = true;
                        return;
                }
                w->buf = b;
                w->allocated = a;
        }
        memcpy(w->buf + w->size, s, n);
        w->size += n;
        w->buf[w->size] = '\0';
}

static void appendf(StateWriter *w, const char *format, ...) _printf_(2, 3);
static void appendf(StateWriter *w, const char *format, ...) {
        char b[64];
        va_list ap;
        int n;

        va_start(ap, format);
        n = vsnprintf(b, sizeof(b), format, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(b)) {
                w->oom = true; /* never: callers format numbers and words */
                return;
        }
        append(w, b, n);
}

StateWriter *state_writer_new(void) {
        StateWriter *w = calloc(1, sizeof(StateWriter));

        if (!w)
                return NULL;
        appendf(w, "corral-state %u.%u", STATE_VERSION_MAJOR, STATE_VERSION_MINOR);
        if (w->oom)
                return state_writer_free(w);
        return w;
}

StateWriter *state_writer_free(StateWriter *w) {
        if (!w)
                return NULL;
        free(w->buf);
        free(w);
        return NULL;
}

void state_record(StateWriter *w, const char *type) {
        append(w, "\n", 1);
        append(w, type, strlen(type));
}

static void put_key(StateWriter *w, const char *key) {
        append(w, " ", 1);
        append(w, key, strlen(key));
        append(w, "=", 1);
}

void state_put_u64(StateWriter *w, const char *key, uint64_t value) {
        put_key(w, key);
        appendf(w, "%" PRIu64, value);
}

void state_put_i64(StateWriter *w, const char *key, int64_t value) {
        put_key(w, key);
        appendf(w, "%" PRIi64, value);
}

void state_put_bool(StateWriter *w, const char *key, bool value) {
        put_key(w, key);
        append(w, value ? "1" : "0", 1);
}

void state_put_bytes(StateWriter *w, const char *key, const void *value, size_t size) {
        const unsigned char *p = value;
        size_t start = 0;

        put_key(w, key);
        /* Runs of plain characters go in one piece; a space, a backslash and anything outside printable
         * ASCII as \xHH, so a record stays one line and a value never looks like the next field. */
        for (size_t i = 0; i < size; i++) {
                if (p[i] > ' ' && p[i] < 0x7f && p[i] != '\\')
                        continue;
                append(w, (const char *) p + start, i - start);
                appendf(w, "\\x%02x", p[i]);
                start = i + 1;
        }
        append(w, (const char *) p + start, size - start);
}

void state_put_str(StateWriter *w, const char *key, const char *value) {
        state_put_bytes(w, key, value, strlen(value));
}

int state_writer_finish(StateWriter *w, char **ret, size_t *ret_size) {
        append(w, "\nend\n", 5);
        if (w->oom)
                return -ENOMEM;
        *ret = TAKE_PTR(w->buf);
        *ret_size = w->size;
        w->size = w->allocated = 0;
        return 0;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* Unescapes s in place; returns the length, or -EBADMSG. */
static ssize_t unescape(char *s) {
        char *out = s;

        for (char *p = s; *p; p++) {
                int hi, lo;

                if (*p != '\\') {
                        *out++ = *p;
                        continue;
                }
                if (p[1] != 'x' || (hi = hex_digit(p[2])) < 0 || (lo = hex_digit(p[3])) < 0)
                        return -EBADMSG;
                *out++ = (char) (hi << 4 | lo);
                p += 3;
        }
        *out = '\0';
        return out - s;
}

static int fail(char **ret_error, int r, unsigned line, const char *what) {
        if (ret_error)
                *ret_error = line > 0 ? strdup_printf("upgrade state, line %u: %s", line, what)
                                      : strdup_printf("upgrade state: %s", what);
        return r;
}

/* Digits, without a sign, spaces or a leading zero (but "0" itself); *p is moved past them. */
static bool parse_number(const char **p, unsigned *ret) {
        unsigned v = 0;
        const char *s = *p;

        if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
                return false;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > 100000)
                        return false;
                v = v * 10 + (*s - '0');
        }
        *p = s;
        *ret = v;
        return true;
}

static int parse_header(StateReader *r, const char *line, char **ret_error) {
        const char *v = startswith(line, "corral-state ");
        unsigned major, minor;

        if (!v || !parse_number(&v, &major) || *v++ != '.' || !parse_number(&v, &minor) || *v != '\0')
                return fail(ret_error, -EBADMSG, 1, "not a corral state (no 'corral-state MAJOR.MINOR')");
        if (major != STATE_VERSION_MAJOR) {
                if (ret_error)
                        *ret_error = strdup_printf("upgrade state: format %u.%u, this corral reads %u.x",
                                                   major, minor, STATE_VERSION_MAJOR);
                return -EPROTONOSUPPORT;
        }
        r->major = major;
        r->minor = minor;
        return 0;
}

static int parse_record(StateRecord *rec, char *line, unsigned number, char **ret_error) {
        char *p = line, *sp = strchr(line, ' ');
        size_t n_fields = 0;

        rec->line = number;
        if (!is_word(line, sp ? (size_t) (sp - line) : strlen(line)))
                return fail(ret_error, -EBADMSG, number, "a record must start with its type");
        for (char *q = sp; q; q = strchr(q + 1, ' '))
                n_fields++;
        rec->fields = n_fields > 0 ? calloc(n_fields, sizeof(StateField)) : NULL;
        if (n_fields > 0 && !rec->fields)
                return -ENOMEM;
        rec->type = line;
        for (p = sp; p;) {
                char *field = p + 1, *next = strchr(field, ' '), *eq;
                StateField *f = &rec->fields[rec->n_fields];
                ssize_t len;

                *p = '\0';
                if (next)
                        *next = '\0';
                eq = strchr(field, '=');
                if (!eq || !is_word(field, eq - field))
                        return fail(ret_error, -EBADMSG, number, "a field must be key=value");
                *eq = '\0';
                for (size_t i = 0; i < rec->n_fields; i++)
                        if (streq(rec->fields[i].key, field))
                                return fail(ret_error, -EBADMSG, number, "a key appears twice");
                len = unescape(eq + 1);
                if (len < 0)
                        return fail(ret_error, -EBADMSG, number, "a bad escape in a value");
                f->key = field;
                f->value = eq + 1;
                f->size = len;
                rec->n_fields++;
                p = next;
        }
        return 0;
}

int state_reader_new(const char *text, size_t size, StateReader **ret, char **ret_error) {
        _cleanup_(state_reader_freep) StateReader *r = NULL;
        size_t n_lines = 0;
        unsigned number = 1;
        bool ended = false;
        char *line;
        int k;

        if (size > STATE_SIZE_MAX)
                return fail(ret_error, -E2BIG, 0, "larger than the 64 MiB a state may take");
        if (memchr(text, '\0', size))
                return fail(ret_error, -EBADMSG, 0, "a NUL byte in the text");
        r = calloc(1, sizeof(StateReader));
        if (!r || !(r->text = malloc(size + 1)))
                return -ENOMEM;
        memcpy(r->text, text, size);
        r->text[size] = '\0';
        for (size_t i = 0; i < size; i++)
                n_lines += text[i] == '\n';
        if (size == 0 || text[size - 1] != '\n')
                return fail(ret_error, -EBADMSG, 0, "cut short (the last line has no newline)");
        r->records = calloc(n_lines, sizeof(StateRecord));
        if (!r->records)
                return -ENOMEM;

        line = r->text;
        for (char *nl; (nl = strchr(line, '\n')); line = nl + 1, number++) {
                *nl = '\0';
                if (ended)
                        return fail(ret_error, -EBADMSG, number, "something after 'end'");
                if (number == 1) {
                        k = parse_header(r, line, ret_error);
                        if (k < 0)
                                return k;
                        continue;
                }
                if (streq(line, "end")) {
                        ended = true;
                        continue;
                }
                k = parse_record(&r->records[r->n_records], line, number, ret_error);
                r->n_records++;
                if (k < 0)
                        return k;
        }
        if (!ended)
                return fail(ret_error, -EBADMSG, 0, "cut short (no 'end' line)");
        *ret = TAKE_PTR(r);
        return 0;
}

StateReader *state_reader_free(StateReader *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_records; i++)
                free(r->records[i].fields);
        free(r->records);
        free(r->text);
        free(r);
        return NULL;
}

void state_reader_version(const StateReader *r, unsigned *ret_major, unsigned *ret_minor) {
        *ret_major = r->major;
        *ret_minor = r->minor;
}

size_t state_reader_count(const StateReader *r) {
        return r->n_records;
}

const StateRecord *state_reader_get(const StateReader *r, size_t i) {
        return i < r->n_records ? &r->records[i] : NULL;
}

static const StateField *field(const StateRecord *rec, const char *key) {
        for (size_t i = 0; i < rec->n_fields; i++)
                if (streq(rec->fields[i].key, key))
                        return &rec->fields[i];
        return NULL;
}

int state_get_u64(const StateRecord *rec, const char *key, uint64_t max, uint64_t *ret) {
        const StateField *f = field(rec, key);
        uint64_t v = 0;

        if (!f)
                return -ENOENT;
        if (f->size == 0 || f->size > 20 || (f->size > 1 && f->value[0] == '0'))
                return -EINVAL;
        for (size_t i = 0; i < f->size; i++) {
                unsigned d;

                if (f->value[i] < '0' || f->value[i] > '9')
                        return -EINVAL;
                d = f->value[i] - '0';
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int state_get_unsigned(const StateRecord *rec, const char *key, unsigned *ret) {
        uint64_t v;
        int r = state_get_u64(rec, key, UINT32_MAX, &v);

        if (r < 0)
                return r;
        *ret = (unsigned) v;
        return 0;
}

int state_get_i64(const StateRecord *rec, const char *key, int64_t *ret) {
        const StateField *f = field(rec, key);
        StateField positive;
        StateRecord one = { .fields = &positive, .n_fields = 1 };
        uint64_t v;
        bool neg;
        int r;

        if (!f)
                return -ENOENT;
        neg = f->size > 0 && f->value[0] == '-';
        positive = (StateField) { .key = key, .value = f->value + neg, .size = f->size - neg };
        r = state_get_u64(&one, key, neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX, &v);
        if (r < 0)
                return r;
        if (neg && v == 0)
                return -EINVAL;
        *ret = neg ? (int64_t) (0 - v) : (int64_t) v;
        return 0;
}

int state_get_bool(const StateRecord *rec, const char *key, bool *ret) {
        uint64_t v;
        int r = state_get_u64(rec, key, 1, &v);

        if (r == -ERANGE)
                return -EINVAL;
        if (r < 0)
                return r;
        *ret = v == 1;
        return 0;
}

int state_get_str(const StateRecord *rec, const char *key, const char **ret) {
        const StateField *f = field(rec, key);

        if (!f)
                return -ENOENT;
        if (strlen(f->value) != f->size)
                return -EINVAL;
        *ret = f->value;
        return 0;
}

int state_get_bytes(const StateRecord *rec, const char *key, const void **ret, size_t *ret_size) {
        const StateField *f = field(rec, key);

        if (!f)
                return -ENOENT;
        *ret = f->value;
        *ret_size = f->size;
        return 0;
}
