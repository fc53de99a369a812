/* SPDX-License-Identifier: MIT */
/* Tests for the strict value parsers (parse.c: numbers, durations, sizes, command lines, signals, listen
 * addresses) and the small formatting and string helpers (util.c). */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include "parse.h"
#include "util.h"

TestSuite(parse, .timeout = 10);
TestSuite(util, .timeout = 10);

static usec_t usec_of(const char *s) {
        usec_t u = 4242;
        int r = parse_usec(s, &u);

        cr_assert_eq(r, 0, "parse_usec(\"%s\") = %d", s, r);
        return u;
}

static uint64_t size_of(const char *s) {
        uint64_t v = 4242;
        int r = parse_size(s, &v);

        cr_assert_eq(r, 0, "parse_size(\"%s\") = %d", s, r);
        return v;
}

Test(parse, unsigned_accepts_plain_decimal_within_bounds) {
        unsigned v = 0;

        cr_assert_eq(parse_unsigned("0", 0, 10, &v), 0);
        cr_assert_eq(v, 0);
        cr_assert_eq(parse_unsigned("10", 0, 10, &v), 0);
        cr_assert_eq(v, 10);
        cr_assert_eq(parse_unsigned("007", 0, 10, &v), 0);
        cr_assert_eq(v, 7);
        cr_assert_eq(parse_unsigned("4294967295", 0, UINT32_MAX, &v), 0);
        cr_assert_eq(v, 4294967295U);
}

Test(parse, unsigned_rejects_signs_spaces_and_garbage) {
        static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "1x", "0x10", "1.0", "1e3", "١" };
        unsigned v = 77;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(parse_unsigned(bad[i], 0, 100, &v), -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(parse_unsigned(NULL, 0, 100, &v), -EINVAL);
        cr_assert_eq(v, 77, "output written on failure");
}

Test(parse, unsigned_out_of_bounds_or_overflow_is_erange) {
        unsigned v = 77;

        cr_assert_eq(parse_unsigned("11", 0, 10, &v), -ERANGE);
        cr_assert_eq(parse_unsigned("0", 1, 10, &v), -ERANGE);
        cr_assert_eq(parse_unsigned("4294967296", 0, UINT32_MAX, &v), -ERANGE);
        cr_assert_eq(parse_unsigned("99999999999999999999999", 0, UINT32_MAX, &v), -ERANGE);
        cr_assert_eq(v, 77);
}

Test(parse, usec_units) {
        cr_assert_eq(usec_of("10us"), 10);
        cr_assert_eq(usec_of("10usec"), 10);
        cr_assert_eq(usec_of("500ms"), 500 * USEC_PER_MSEC);
        cr_assert_eq(usec_of("500msec"), 500 * USEC_PER_MSEC);
        cr_assert_eq(usec_of("30s"), 30 * USEC_PER_SEC);
        cr_assert_eq(usec_of("30sec"), 30 * USEC_PER_SEC);
        cr_assert_eq(usec_of("2m"), 2 * USEC_PER_MINUTE);
        cr_assert_eq(usec_of("2min"), 2 * USEC_PER_MINUTE);
        cr_assert_eq(usec_of("2h"), 2 * USEC_PER_HOUR);
        cr_assert_eq(usec_of("2hr"), 2 * USEC_PER_HOUR);
        cr_assert_eq(usec_of("1d"), USEC_PER_DAY);
        cr_assert_eq(usec_of("1day"), USEC_PER_DAY);
}

Test(parse, usec_bare_number_is_seconds_with_fraction) {
        cr_assert_eq(usec_of("0"), 0);
        cr_assert_eq(usec_of("5"), 5 * USEC_PER_SEC);
        cr_assert_eq(usec_of("1.5"), 1500 * USEC_PER_MSEC);
        cr_assert_eq(usec_of("0.000001"), 1);
}

Test(parse, usec_combined_and_fractional_components) {
        cr_assert_eq(usec_of("1min 30s"), 90 * USEC_PER_SEC);
        cr_assert_eq(usec_of("1min30s"), 90 * USEC_PER_SEC);
        cr_assert_eq(usec_of("1h 2min 3s 4ms"),
                     USEC_PER_HOUR + 2 * USEC_PER_MINUTE + 3 * USEC_PER_SEC + 4 * USEC_PER_MSEC);
        cr_assert_eq(usec_of("1.5s"), 1500 * USEC_PER_MSEC);
        cr_assert_eq(usec_of("0.5min"), 30 * USEC_PER_SEC);
        cr_assert_eq(usec_of("2.25ms"), 2250);
        cr_assert_eq(usec_of("5 s"), 5 * USEC_PER_SEC);
}

Test(parse, usec_rejects_malformed) {
        static const char *const bad[] = { "",    " 1s",   "1s ",   "-1s",      "+1s",    "1x",
                                           "s",   "1.s",   ".5s",   "1..5s",    "1.5.5s", "1min 30",
                                           "1 2", "1sec5", "1mins", "infinity", "1s,2s" };
        usec_t u = 77;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(parse_usec(bad[i], &u), -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(u, 77);
}

Test(parse, usec_overflow_is_erange) {
        usec_t u = 77;

        cr_assert_eq(parse_usec("99999999999999999999", &u), -ERANGE);
        cr_assert_eq(parse_usec("999999999999999d", &u), -ERANGE);
        cr_assert_eq(parse_usec("18446744073709551615us", &u), -ERANGE);
        cr_assert_eq(parse_usec("18446744073709551614us 2us", &u), -ERANGE);
        cr_assert_eq(u, 77);
}

Test(parse, size_suffixes_are_binary) {
        cr_assert_eq(size_of("0"), 0);
        cr_assert_eq(size_of("100"), 100);
        cr_assert_eq(size_of("100B"), 100);
        cr_assert_eq(size_of("64K"), 64 * 1024);
        cr_assert_eq(size_of("512M"), 512ULL << 20);
        cr_assert_eq(size_of("512MB"), 512ULL << 20);
        cr_assert_eq(size_of("512MiB"), 512ULL << 20);
        cr_assert_eq(size_of("1G"), 1ULL << 30);
        cr_assert_eq(size_of("1.5G"), 3ULL << 29);
        cr_assert_eq(size_of("2T"), 2ULL << 40);
}

Test(parse, size_rejects_malformed_and_overflow) {
        static const char *const bad[] = { "",    "M",   "1.5", "1X",  "1 M", " 1M",
                                           "1M ", "-1M", "1Mi", "1iB", "1k",  "1.2.3G" };
        uint64_t v = 77;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(parse_size(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(parse_size("16E", &v), -ERANGE);
        cr_assert_eq(parse_size("99999999999999999999", &v), -ERANGE);
        cr_assert_eq(v, 77);
}

Test(parse, boolean_words) {
        static const char *const yes[] = { "1", "yes", "true", "on", "YES", "True" };
        static const char *const no[] = { "0", "no", "false", "off", "NO", "Off" };
        bool b;

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                b = false;
                cr_assert_eq(parse_boolean(yes[i], &b), 0);
                cr_assert(b, "%s", yes[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(no); i++) {
                b = true;
                cr_assert_eq(parse_boolean(no[i], &b), 0);
                cr_assert(!b, "%s", no[i]);
        }
        cr_assert_eq(parse_boolean("", &b), -EINVAL);
        cr_assert_eq(parse_boolean("2", &b), -EINVAL);
        cr_assert_eq(parse_boolean("yes ", &b), -EINVAL);
}

static void assert_words(const char *line, const char *const *expected, size_t n) {
        _cleanup_strv_free_ char **words = NULL;

        cr_assert_eq(parse_command_line(line, &words), 0, "'%s' rejected", line);
        cr_assert_eq(strv_length(words), n, "'%s' gave %zu words", line, strv_length(words));
        for (size_t i = 0; i < n; i++)
                cr_assert_str_eq(words[i], expected[i]);
}

Test(parse, command_line_splits_on_whitespace) {
        assert_words("/usr/bin/node  /srv/app/server.js\t--port 8080",
                     (const char *const[]){ "/usr/bin/node", "/srv/app/server.js", "--port", "8080" }, 4);
        assert_words("  prog  ", (const char *const[]){ "prog" }, 1);
}

Test(parse, command_line_quotes_and_escapes) {
        assert_words("sh -c 'echo \"hi there\"; exit 3'",
                     (const char *const[]){ "sh", "-c", "echo \"hi there\"; exit 3" }, 3);
        assert_words("a \"b c\" d", (const char *const[]){ "a", "b c", "d" }, 3);
        assert_words("a\\ b \"q\\\"uote\" 'back\\slash'",
                     (const char *const[]){ "a b", "q\"uote", "back\\slash" }, 3);
        assert_words("x\"y z\"w ''", (const char *const[]){ "xy zw", "" }, 2);
}

Test(parse, command_line_rejects_unterminated_and_empty) {
        char **words = NULL;

        cr_assert_eq(parse_command_line("a 'b", &words), -EINVAL);
        cr_assert_eq(parse_command_line("a \"b", &words), -EINVAL);
        cr_assert_eq(parse_command_line("a b\\", &words), -EINVAL);
        cr_assert_eq(parse_command_line("", &words), -EINVAL);
        cr_assert_eq(parse_command_line("   \t ", &words), -EINVAL);
        cr_assert_null(words);
}

static ListenSpec listen_spec_of(const char *s) {
        const char *reason = NULL;
        ListenSpec spec;

        cr_assert_eq(listen_spec_parse(s, &spec, &reason), 0, "'%s' rejected: %s", s, reason);
        return spec;
}

static uint16_t spec_port(const ListenSpec *spec) {
        if (spec->addr.ss_family == AF_INET6)
                return ntohs(((const struct sockaddr_in6 *) &spec->addr)->sin6_port);
        return ntohs(((const struct sockaddr_in *) &spec->addr)->sin_port);
}

Test(parse, listen_spec_tcp_forms) {
        ListenSpec spec = listen_spec_of("127.0.0.1:8080");
        struct sockaddr_in *sin = (struct sockaddr_in *) &spec.addr;

        cr_assert_eq(spec.kind, LISTEN_TCP);
        cr_assert_str_eq(spec.name, "listen");
        cr_assert_eq(sin->sin_family, AF_INET);
        cr_assert_eq(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
        cr_assert_eq(spec_port(&spec), 8080);
        cr_assert_eq(spec.addr_len, sizeof(struct sockaddr_in));

        spec = listen_spec_of("tcp:0.0.0.0:0");
        cr_assert_eq(spec.kind, LISTEN_TCP);
        cr_assert_eq(spec_port(&spec), 0);

        spec = listen_spec_of("[::1]:443");
        cr_assert_eq(spec.kind, LISTEN_TCP);
        cr_assert_eq(spec.addr.ss_family, AF_INET6);
        cr_assert_eq(spec_port(&spec), 443);
        cr_assert_eq(spec.addr_len, sizeof(struct sockaddr_in6));
        cr_assert(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *) &spec.addr)->sin6_addr));

        spec = listen_spec_of("tcp:[::]:65535");
        cr_assert_eq(spec_port(&spec), 65535);
}

Test(parse, listen_spec_udp_forms) {
        ListenSpec spec = listen_spec_of("udp:127.0.0.1:5353");

        cr_assert_eq(spec.kind, LISTEN_UDP);
        cr_assert_eq(spec.addr.ss_family, AF_INET);
        cr_assert_eq(spec_port(&spec), 5353);

        spec = listen_spec_of("dns=udp:[::1]:53");
        cr_assert_eq(spec.kind, LISTEN_UDP);
        cr_assert_eq(spec.addr.ss_family, AF_INET6);
        cr_assert_str_eq(spec.name, "dns");
}

Test(parse, listen_spec_unix_forms) {
        ListenSpec spec = listen_spec_of("unix:/run/app.sock");

        cr_assert_eq(spec.kind, LISTEN_UNIX_STREAM);
        cr_assert_str_eq(spec.path, "/run/app.sock");
        cr_assert_eq(spec.mode, 0);

        spec = listen_spec_of("unix:/run/app.sock:0660");
        cr_assert_str_eq(spec.path, "/run/app.sock");
        cr_assert_eq(spec.mode, 0660);

        spec = listen_spec_of("unix:/run/app.sock:600");
        cr_assert_eq(spec.mode, 0600);

        /* A colon that is not followed by an octal mode belongs to the path. */
        spec = listen_spec_of("unix:/run/a:b.sock");
        cr_assert_str_eq(spec.path, "/run/a:b.sock");
        cr_assert_eq(spec.mode, 0);

        /* '=' after the first ':' is part of the path, not a name. */
        spec = listen_spec_of("unix:/run/a=b.sock");
        cr_assert_str_eq(spec.name, "listen");
        cr_assert_str_eq(spec.path, "/run/a=b.sock");
}

Test(parse, listen_spec_names) {
        ListenSpec spec = listen_spec_of("http=127.0.0.1:80");

        cr_assert_str_eq(spec.name, "http");
        cr_assert_eq(spec_port(&spec), 80);

        spec = listen_spec_of("admin.v2_x-y=unix:/run/admin.sock:0600");
        cr_assert_str_eq(spec.name, "admin.v2_x-y");
        cr_assert_eq(spec.mode, 0600);

        spec = listen_spec_of("v6=[::1]:80");
        cr_assert_str_eq(spec.name, "v6");
}

Test(parse, listen_spec_rejects_bad_forms_with_reasons) {
        static const struct {
                const char *spec;
                const char *reason;
        } bad[] = {
                { "", "empty address" },
                { "127.0.0.1", "missing port" },
                { "127.0.0.1:", "invalid port, expected a number between 0 and 65535" },
                { "127.0.0.1:65536", "invalid port, expected a number between 0 and 65535" },
                { "127.0.0.1:-1", "invalid port, expected a number between 0 and 65535" },
                { "127.0.0.1:80x", "invalid port, expected a number between 0 and 65535" },
                { ":80", "missing address (use 0.0.0.0 or [::] for all addresses)" },
                { "localhost:80", "invalid IPv4 address" },
                { "256.0.0.1:80", "invalid IPv4 address" },
                { "::1:80", "IPv6 addresses must be written in brackets, e.g. [::1]:8080" },
                { "[::1]", "missing port" },
                { "[::1]80", "missing port" },
                { "[::1:80", "missing ']' after IPv6 address" },
                { "[127.0.0.1]:80", "invalid IPv6 address" },
                { "udp:127.0.0.1", "missing port" },
                { "unix:", "UNIX socket path must be absolute" },
                { "unix:app.sock", "UNIX socket path must be absolute" },
                { "unix:/x:0000", "invalid mode, expected an octal mode between 0001 and 0777" },
                { "unix:/x:1777", "invalid mode, expected an octal mode between 0001 and 0777" },
                { "=127.0.0.1:80", "invalid name, expected 1 to 63 characters" },
                { "my name=127.0.0.1:80", "invalid name, expected letters, digits, '-', '_' or '.'" },
                { "sctp:127.0.0.1:80", "unknown socket type, expected 'tcp:', 'udp:' or 'unix:'" },
                { "http://127.0.0.1:80", "unknown socket type, expected 'tcp:', 'udp:' or 'unix:'" },
        };
        ListenSpec spec = { .mode = 0123 };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const char *reason = NULL;

                cr_assert_eq(listen_spec_parse(bad[i].spec, &spec, &reason), -EINVAL, "'%s' accepted",
                             bad[i].spec);
                cr_assert_str_eq(reason, bad[i].reason, "'%s'", bad[i].spec);
        }
        cr_assert_eq(spec.mode, 0123, "output written on failure");
        cr_assert_eq(listen_spec_parse("x", &spec, NULL), -EINVAL);
}

Test(parse, listen_spec_rejects_overlong_name_and_path) {
        char name[80], path[200], *s;
        const char *reason = NULL;
        ListenSpec spec;

        memset(name, 'n', sizeof(name) - 1);
        name[sizeof(name) - 1] = 0;
        s = strdup_printf("%s=127.0.0.1:80", name);
        cr_assert_eq(listen_spec_parse(s, &spec, &reason), -EINVAL);
        cr_assert_str_eq(reason, "invalid name, expected 1 to 63 characters");
        free(s);

        path[0] = '/';
        memset(path + 1, 'p', sizeof(path) - 2);
        path[sizeof(path) - 1] = 0;
        s = strdup_printf("unix:%s", path);
        cr_assert_eq(listen_spec_parse(s, &spec, &reason), -EINVAL);
        cr_assert_str_eq(reason, "UNIX socket path too long");
        free(s);
}

Test(util, format_usec_human_readable) {
        char buf[FORMAT_USEC_MAX];

        cr_assert_str_eq(format_usec(buf, sizeof(buf), 0), "0");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), 10), "10us");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), 250 * USEC_PER_MSEC), "250ms");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), 1250), "1.25ms");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), 1500 * USEC_PER_MSEC), "1.5s");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), 30 * USEC_PER_SEC), "30s");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), 123 * USEC_PER_SEC), "2min 3s");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), USEC_PER_HOUR), "1h");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), USEC_PER_DAY + USEC_PER_HOUR + 1), "1d 1h 1us");
        cr_assert_str_eq(format_usec(buf, sizeof(buf), USEC_INFINITY), "infinity");
}

Test(util, format_usec_round_trips_through_parse_usec) {
        static const usec_t values[] = { 1,       999,      1000,           1001,
                                         1500000, 90000000, 86400000001ULL, 3 * USEC_PER_DAY };
        char buf[FORMAT_USEC_MAX];

        for (size_t i = 0; i < ELEMENTSOF(values); i++)
                cr_assert_eq(usec_of(format_usec(buf, sizeof(buf), values[i])), values[i], "%s", buf);
}

Test(util, format_usec_truncates_safely) {
        char buf[6];

        format_usec(buf, sizeof(buf), USEC_PER_DAY + USEC_PER_HOUR);
        cr_assert_eq(strlen(buf), 5);
}

Test(util, format_bytes_binary_units) {
        char buf[FORMAT_BYTES_MAX];

        cr_assert_str_eq(format_bytes(buf, sizeof(buf), 0), "0B");
        cr_assert_str_eq(format_bytes(buf, sizeof(buf), 1023), "1023B");
        cr_assert_str_eq(format_bytes(buf, sizeof(buf), 1024), "1.0K");
        cr_assert_str_eq(format_bytes(buf, sizeof(buf), 1536), "1.5K");
        cr_assert_str_eq(format_bytes(buf, sizeof(buf), 2047), "1.9K");
        cr_assert_str_eq(format_bytes(buf, sizeof(buf), 512ULL << 20), "512.0M");
        cr_assert_str_eq(format_bytes(buf, sizeof(buf), 3ULL << 29), "1.5G");
        cr_assert_str_eq(format_bytes(buf, sizeof(buf), UINT64_MAX), "15.9E");
}

Test(parse, signal_names_both_ways) {
        cr_assert_str_eq(signal_to_string(SIGTERM), "TERM");
        cr_assert_str_eq(signal_to_string(SIGKILL), "KILL");
        cr_assert_str_eq(signal_to_string(SIGWINCH), "WINCH");
        cr_assert_null(signal_to_string(0));
        cr_assert_null(signal_to_string(-1));
        cr_assert_null(signal_to_string(SIGRTMIN));

        cr_assert_eq(signal_from_string("TERM"), SIGTERM);
        cr_assert_eq(signal_from_string("SIGTERM"), SIGTERM);
        cr_assert_eq(signal_from_string("SIGUSR2"), SIGUSR2);
        cr_assert_eq(signal_from_string("15"), SIGTERM);
        cr_assert_eq(signal_from_string("9"), SIGKILL);
        cr_assert_eq(signal_from_string("RTMIN+2"), SIGRTMIN + 2);
        cr_assert_eq(signal_from_string("SIGRTMAX"), SIGRTMAX);

        for (int sig = 1; sig < SIGRTMIN; sig++)
                if (signal_to_string(sig))
                        cr_assert_eq(signal_from_string(signal_to_string(sig)), sig);
}

Test(parse, signal_from_string_rejects_unknown) {
        static const char *const bad[] = { "",     "0",     "-15",        "65",      "SIG",     "SIGFOO",
                                           "term", "TERM ", "SIGSIGTERM", "RTMIN+0", "RTMIN+99" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(signal_from_string(bad[i]), -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(signal_from_string(NULL), -EINVAL);
}

Test(util, strv_extend_copy_and_consume) {
        _cleanup_strv_free_ char **l = NULL, **c = NULL;

        cr_assert_eq(strv_length(l), 0);
        cr_assert_eq(strv_extend(&l, "a"), 0);
        cr_assert_eq(strv_consume(&l, strdup("b")), 0);
        cr_assert_eq(strv_length(l), 2);
        cr_assert_null(l[2]);

        c = strv_copy(l);
        cr_assert_not_null(c);
        cr_assert_eq(strv_length(c), 2);
        cr_assert_str_eq(c[1], "b");
        cr_assert_neq(c[1], l[1]);
        cr_assert_eq(strv_extend(&l, NULL), -EINVAL);
}

Test(util, startswith_and_safe_close) {
        int fds[2] = { -EBADF, -EBADF };

        cr_assert_str_eq(startswith("SIGTERM", "SIG"), "TERM");
        cr_assert_null(startswith("TERM", "SIG"));
        cr_assert_str_eq(startswith("x", ""), "x");

        cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
        close_pairp(&fds);
        cr_assert_eq(fds[0], -EBADF);
        cr_assert_eq(fds[1], -EBADF);
        errno = 1234;
        cr_assert_eq(safe_close(-EBADF), -EBADF);
        cr_assert_eq(errno, 1234);
}

Test(util, strdup_printf_formats) {
        _cleanup_free_ char *s = strdup_printf("%s:%u", "file", 12U);

        cr_assert_str_eq(s, "file:12");
}
