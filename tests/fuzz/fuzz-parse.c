/* SPDX-License-Identifier: MIT */
/* Fuzzes the strict value parsers of parse.c, each with the input as its string: unsigned, durations,
 * sizes, booleans, command lines, signal names and listen specs. What one accepts must print back and
 * parse again to the same value (durations through format_usec(), command lines re-quoted, signals by
 * name, listen specs written out in full); the input's first 8 bytes, read as a number, go the other way
 * round. */

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <strings.h>

#include "fuzz-util.h"
#include "parse.h"

static void fuzz_unsigned(const char *s) {
        const char *digits;
        unsigned v, w;
        char buf[16];

        if (parse_unsigned(s, 0, UINT_MAX, &v) < 0) {
                fuzz_check(parse_unsigned(s, 1, 65535, &w) < 0, "'%s' in a narrower range only", s);
                return;
        }
        /* Leading zeros are the only other way to write it. */
        snprintf(buf, sizeof buf, "%u", v);
        digits = s + strspn(s, "0");
        fuzz_check(streq(buf, digits) || (v == 0 && *digits == 0), "'%s' read as %u", s, v);
        if (parse_unsigned(s, 1, 65535, &w) >= 0)
                fuzz_check(w == v && v >= 1 && v <= 65535, "'%s' read as %u within [1, 65535]", s, w);
}

static void check_usec_round_trip(usec_t v, const char *what) {
        char buf[FORMAT_USEC_MAX];
        usec_t w = 0;
        int r;

        format_usec(buf, sizeof buf, v);
        r = parse_usec(buf, &w);
        fuzz_check(r == 0 && w == v, "%s %" PRIu64 " formats as '%s', which parses as %d/%" PRIu64, what, v,
                   buf, r, w);
}

static void fuzz_usec(const char *s, uint64_t raw) {
        usec_t v;

        if (parse_usec(s, &v) >= 0) {
                fuzz_check(v != USEC_INFINITY, "'%s' gives infinity", s);
                check_usec_round_trip(v, "parsed");
        }
        if (raw != USEC_INFINITY)
                check_usec_round_trip(raw, "raw");
}

static void fuzz_size(const char *s, uint64_t raw) {
        char buf[32];
        uint64_t v;
        int r;

        (void) parse_size(s, &v);

        snprintf(buf, sizeof buf, "%" PRIu64, raw);
        fuzz_check(parse_size(buf, &v) == 0 && v == raw, "'%s' bytes", buf);
        snprintf(buf, sizeof buf, "%" PRIu64 "KiB", raw);
        r = parse_size(buf, &v);
        if (raw > UINT64_MAX / 1024)
                fuzz_check(r == -ERANGE, "'%s' does not fit, yet parses: %d", buf, r);
        else
                fuzz_check(r == 0 && v == raw * 1024, "'%s'", buf);
}

static void fuzz_boolean(const char *s) {
        static const char *const words[] = { "1", "yes", "true", "on", "0", "no", "false", "off" };
        bool b, known = false;

        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strcasecmp(s, words[i]) == 0)
                        known = true;
        fuzz_check((parse_boolean(s, &b) >= 0) == known, "'%s'", s);
}

/* Each word in double quotes, with '"' and '\' escaped: how a config writer would quote it. */
static char *quote_words(char **words) {
        size_t size = 1;
        char *s, *p;

        for (char **w = words; *w; w++)
                size += 2 * strlen(*w) + 3;
        p = s = malloc(size);
        fuzz_check(s, "out of memory");
        for (char **w = words; *w; w++) {
                *p++ = '"';
                for (const char *c = *w; *c; c++) {
                        if (*c == '"' || *c == '\\')
                                *p++ = '\\';
                        *p++ = *c;
                }
                *p++ = '"';
                *p++ = ' ';
        }
        *p = 0;
        return s;
}

static void fuzz_command_line(const char *s) {
        _cleanup_strv_free_ char **words = NULL, **again = NULL;
        _cleanup_free_ char *quoted = NULL;
        int r;

        if (parse_command_line(s, &words) < 0)
                return;
        fuzz_check(strv_length(words) >= 1, "'%s' gives no words", s);
        for (char **w = words; *w; w++)
                fuzz_check(strlen(*w) <= strlen(s), "a word longer than the line");
        quoted = quote_words(words);
        r = parse_command_line(quoted, &again);
        fuzz_check(r == 0 && strv_equal(words, again), "'%s' re-quoted as '%s' parses differently (%d)", s,
                   quoted, r);
}

static void check_signal_name(int sig) {
        const char *name = signal_to_string(sig);
        char buf[32];

        if (!name)
                return;
        snprintf(buf, sizeof buf, "SIG%s", name);
        fuzz_check(signal_from_string(name) == sig && signal_from_string(buf) == sig, "signal %d is '%s'",
                   sig, name);
}

static void fuzz_signal(const char *s, uint64_t raw) {
        int sig = signal_from_string(s);

        fuzz_check(sig == -EINVAL || (sig >= 1 && sig < _NSIG), "'%s' gives %d", s, sig);
        if (sig > 0)
                check_signal_name(sig);
        check_signal_name((int) (raw % _NSIG));
}

/* The spec written out in full, as a user could have written it. */
static void format_listen_spec(const ListenSpec *spec, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN];
        const char *kind = spec->kind == LISTEN_UDP ? "udp" : "tcp";

        if (spec->kind == LISTEN_UNIX_STREAM) {
                if (spec->mode)
                        snprintf(buf, size, "%s=unix:%s:%04o", spec->name, spec->path, spec->mode);
                else
                        snprintf(buf, size, "%s=unix:%s", spec->name, spec->path);
        } else if (spec->addr.ss_family == AF_INET6) {
                const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *) &spec->addr;

                inet_ntop(AF_INET6, &sa->sin6_addr, host, sizeof host);
                snprintf(buf, size, "%s=%s:[%s]:%u", spec->name, kind, host, ntohs(sa->sin6_port));
        } else {
                const struct sockaddr_in *sa = (const struct sockaddr_in *) &spec->addr;

                inet_ntop(AF_INET, &sa->sin_addr, host, sizeof host);
                snprintf(buf, size, "%s=%s:%s:%u", spec->name, kind, host, ntohs(sa->sin_port));
        }
}

static void fuzz_listen_spec(const char *s) {
        const char *reason = NULL;
        ListenSpec spec, again;
        char buf[256];
        bool same;
        int r;

        r = listen_spec_parse(s, &spec, &reason);
        if (r < 0) {
                fuzz_check(r == -EINVAL && reason, "'%s' refused with %d and no reason", s, r);
                return;
        }
        fuzz_check(spec.kind >= 0 && spec.kind < _LISTEN_KIND_MAX, "'%s': kind %d", s, spec.kind);
        fuzz_check(spec.name[0] && strlen(spec.name) < sizeof spec.name, "'%s': bad name", s);
        if (spec.kind == LISTEN_UNIX_STREAM)
                fuzz_check(spec.path[0] == '/' && spec.mode <= 0777, "'%s': path '%s' mode %o", s, spec.path,
                           spec.mode);
        else
                fuzz_check((spec.addr.ss_family == AF_INET && spec.addr_len == sizeof(struct sockaddr_in)) ||
                                   (spec.addr.ss_family == AF_INET6 &&
                                    spec.addr_len == sizeof(struct sockaddr_in6)),
                           "'%s': family %d, length %u", s, spec.addr.ss_family, (unsigned) spec.addr_len);

        format_listen_spec(&spec, buf, sizeof buf);
        r = listen_spec_parse(buf, &again, &reason);
        fuzz_check(r == 0, "'%s' written out as '%s' is refused: %s", s, buf, reason);
        same = again.kind == spec.kind && streq(again.name, spec.name) && again.addr_len == spec.addr_len &&
                memcmp(&again.addr, &spec.addr, spec.addr_len) == 0 && streq(again.path, spec.path) &&
                again.mode == spec.mode;
        fuzz_check(same, "'%s' written out as '%s' parses differently", s, buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = fuzz_strndup(data, size);
        FuzzInput in = { data, size };
        uint64_t raw = fuzz_take_u64(&in);

        fuzz_unsigned(s);
        fuzz_usec(s, raw);
        fuzz_size(s, raw);
        fuzz_boolean(s);
        fuzz_command_line(s);
        fuzz_signal(s, raw);
        fuzz_listen_spec(s);
        return 0;
}
