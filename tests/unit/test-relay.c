/* SPDX-License-Identifier: MIT */
/* Tests for relay-stream.c and relay-sink.c: real pipes on an sd-event loop — lines cut and prefixed, long
 * lines in marked pieces, the tail drained at free, a full output dropping and counting whole lines, a
 * closed one breaking the sink, never a torn line. */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "relay-sink.h"
#include "relay-stream.h"

TestSuite(relay, .timeout = 20);

static uint64_t drops_told;

static void on_drop(RelaySink *s, uint64_t dropped, void *userdata) {
        drops_told += dropped;
}

/* A sink on the write end of a new pipe; out[0] is where the test reads what it writes. */
static RelaySink *sink_on_pipe(sd_event *e, int out[2]) {
        RelaySink *s = NULL;

        cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
        cr_assert_eq(relay_sink_new(e, out[1], 0, on_drop, NULL, &s), 0);
        return s;
}

/* Runs the loop until nothing is pending. */
static void run(sd_event *e) {
        for (int i = 0; i < 1000 && sd_event_run(e, 10 * 1000) > 0; i++)
                ;
}

/* Everything readable from fd now, NUL-terminated. */
static char *slurp(int fd) {
        size_t size = 0, cap = 1 << 16;
        char *buf = malloc(cap + 1);
        int flags = fcntl(fd, F_GETFL);

        cr_assert_not_null(buf);
        (void) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        for (;;) {
                ssize_t k;

                if (size == cap) {
                        cap *= 2;
                        buf = realloc(buf, cap + 1);
                        cr_assert_not_null(buf);
                }
                k = read(fd, buf + size, cap - size);
                if (k <= 0)
                        break;
                size += (size_t) k;
        }
        (void) fcntl(fd, F_SETFL, flags);
        buf[size] = 0;
        return buf;
}

static void write_str(int fd, const char *s) {
        cr_assert_eq(write(fd, s, strlen(s)), (ssize_t) strlen(s));
}

/* A stream of slot/pid into a sink on a pipe: w is the worker's end, out[0] where the test reads. */
typedef struct Fixture {
        sd_event *e;
        RelaySink *s;
        RelayStream *st;
        int out[2], w;
} Fixture;

static void fixture_setup_as(Fixture *f, const RelayLabel *l) {
        drops_told = 0;
        cr_assert_eq(sd_event_new(&f->e), 0);
        f->s = sink_on_pipe(f->e, f->out);
        cr_assert_eq(relay_stream_new(f->s, &f->st, &f->w), 0);
        cr_assert_eq(relay_stream_start(f->st, f->e, 0, l), 0);
}

static void fixture_setup(Fixture *f, unsigned slot, pid_t pid) {
        fixture_setup_as(f, &(RelayLabel) { .slot = slot, .pid = pid });
}

static void fixture_done(Fixture *f) {
        relay_stream_free(f->st);
        relay_sink_free(f->s, 0);
        close(f->out[0]);
        close(f->out[1]);
        sd_event_unref(f->e);
}

/* Writes n bytes from a child (the pipe holds less than a long line), closes the worker's end, and runs the
 * loop until the child is done. */
static void write_from_child(Fixture *f, const char *p, size_t n) {
        pid_t pid = fork();

        cr_assert_geq(pid, 0);
        if (pid == 0) {
                (void) !write(f->w, p, n);
                _exit(0);
        }
        close(f->w);
        for (int i = 0; i < 100 && waitpid(pid, NULL, WNOHANG) == 0; i++)
                run(f->e);
        run(f->e);
}

/* Reads what the sink wrote and compares. */
static void expect_out(Fixture *f, const char *want) {
        char *got = slurp(f->out[0]);

        cr_assert_str_eq(got, want);
        free(got);
}

Test(relay, lines_prefixed_and_unended_tail_kept) {
        Fixture f;

        fixture_setup(&f, 3, 4242);
        write_str(f.w, "one\ntw");
        run(f.e);
        expect_out(&f, "[3 4242] one\n"); /* an unfinished line waits for its end */
        write_str(f.w, "o\n\nthree");
        close(f.w);
        run(f.e);
        expect_out(&f, "[3 4242] two\n[3 4242] \n[3 4242] three\n");
        fixture_done(&f);
        cr_assert_eq(drops_told, 0);
}

Test(relay, long_line_in_marked_pieces) {
        size_t n = 2 * RELAY_LINE_MAX + 100;
        char *line = malloc(n + 1), *got, *p;
        Fixture f;

        fixture_setup(&f, 0, 7);
        for (size_t i = 0; i < n; i++)
                line[i] = (char) ('a' + i % 26);
        line[n] = '\n';
        write_from_child(&f, line, n + 1);
        got = slurp(f.out[0]);
        p = got;
        for (size_t off = 0, piece; off < n; off += piece) {
                const char *prefix = n - off > RELAY_LINE_MAX ? "[0 7+] " : "[0 7] ";

                piece = MIN(n - off, (size_t) RELAY_LINE_MAX);
                cr_assert(strncmp(p, prefix, strlen(prefix)) == 0, "piece at %zu: '%.20s'", off, p);
                p += strlen(prefix);
                cr_assert(memcmp(p, line + off, piece) == 0);
                p += piece;
                cr_assert_eq(*p, '\n');
                p++;
        }
        cr_assert_eq(*p, 0);
        free(got);
        free(line);
        fixture_done(&f);
}

/* Drops the "time" member (its value changes) from each JSON line of s, in place. */
static char *without_time(char *s) {
        char *t;

        while ((t = strstr(s, "\"time\":\""))) {
                char *end = strchr(t + 8, '"');

                cr_assert(end && end - (t + 8) == 27, "time stamp '%.40s'", t);
                memmove(t, end + 2, strlen(end + 2) + 1); /* the closing quote and the comma */
        }
        return s;
}

Test(relay, json_lines_escaped_with_level) {
        Fixture f;
        char *got;

        fixture_setup_as(&f, &(RelayLabel) { .slot = 2, .pid = 77, .json = true, .is_stderr = true });
        /* A quote, a backslash, a tab, a stray byte, a valid two-byte sequence, a syslog level prefix. */
        write_str(f.w, "say \"hi\"\\\t\xff\xc3\xa9\n<3>failed\n<9>not a level\n");
        close(f.w);
        run(f.e);
        got = without_time(slurp(f.out[0]));
        cr_assert_str_eq(got,
                         "{\"source\":\"worker\",\"slot\":2,\"pid\":77,\"stream\":\"stderr\",\"level\":\"warning\","
                         "\"message\":\"say \\\"hi\\\"\\\\\\u0009\\ufffd\xc3\xa9\"}\n"
                         "{\"source\":\"worker\",\"slot\":2,\"pid\":77,\"stream\":\"stderr\",\"level\":\"err\","
                         "\"message\":\"failed\"}\n"
                         "{\"source\":\"worker\",\"slot\":2,\"pid\":77,\"stream\":\"stderr\",\"level\":\"warning\","
                         "\"message\":\"<9>not a level\"}\n");
        free(got);
        fixture_done(&f);
}

Test(relay, json_long_line_in_partial_pieces) {
        size_t n = RELAY_LINE_MAX + 10;
        char *line = malloc(n + 1), *got;
        Fixture f;

        fixture_setup_as(&f, &(RelayLabel) { .slot = 0, .pid = 5, .json = true });
        memset(line, 'q', n);
        line[n] = '\n';
        write_from_child(&f, line, n + 1);
        got = without_time(slurp(f.out[0]));
        /* The first piece is RELAY_LINE_MAX bytes and partial, the second the 10 left. */
        cr_assert(strstr(got, "\"partial\":true}\n{"), "no partial piece first");
        cr_assert(strstr(got, "\"message\":\"qqqqqqqqqq\"}\n") && !strstr(got + strlen(got) - 30, "partial"));
        cr_assert_eq(strlen(got), 2 * strlen("{\"source\":\"worker\",\"slot\":0,\"pid\":5,\"stream\":\"stdout\","
                                            "\"level\":\"info\",\"message\":\"\"}\n") +
                                          n + strlen(",\"partial\":true"));
        free(got);
        free(line);
        fixture_done(&f);
}

Test(relay, free_drains_what_was_not_read) {
        Fixture f;

        fixture_setup(&f, 1, 9);
        write_str(f.w, "last words\nno newline");
        close(f.w);
        /* No loop iteration: the worker's exit came first. */
        f.st = relay_stream_free(f.st);
        expect_out(&f, "[1 9] last words\n[1 9] no newline\n");
        fixture_done(&f);
}

Test(relay, full_output_drops_whole_lines_and_counts_them) {
        char line[1000], *got;
        size_t queued = 0, dropped = 0, lines = 0;
        sd_event *e = NULL;
        int out[2];

        drops_told = 0;
        cr_assert_eq(sd_event_new(&e), 0);
        RelaySink *s = sink_on_pipe(e, out);
        memset(line, 'x', sizeof line);
        /* Nobody reads: the pipe (64 KiB) then the queue (1 MiB) fill, then lines are dropped. */
        for (int i = 0; i < 2000; i++) {
                if (relay_sink_line(s, "[0 1] ", 6, line, sizeof line))
                        queued++;
                else
                        dropped++;
        }
        cr_assert_gt(dropped, 0);
        cr_assert_eq(relay_sink_dropped(s), dropped);
        cr_assert_gt(queued, RELAY_SINK_MAX / (sizeof line + 7));
        /* Now read while the loop writes the rest: every line arrives whole, none torn. */
        for (int i = 0; i < 200; i++) {
                got = slurp(out[0]);
                for (char *p = got, *nl; (nl = strchr(p, '\n')); p = nl + 1, lines++)
                        cr_assert(nl - p == 6 + (long) sizeof line && strncmp(p, "[0 1] xxx", 9) == 0,
                                  "torn line %zu", lines);
                free(got);
                run(e);
        }
        relay_sink_free(s, USEC_PER_SEC);
        got = slurp(out[0]);
        for (char *p = got, *nl; (nl = strchr(p, '\n')); p = nl + 1)
                lines++;
        free(got);
        cr_assert_eq(lines, queued, "%zu lines out, %zu queued", lines, queued);
        cr_assert_eq(drops_told, dropped, "the last notice comes with the free");
        close(out[0]);
        close(out[1]);
        sd_event_unref(e);
}

Test(relay, closed_output_breaks_the_sink) {
        sd_event *e = NULL;
        int out[2];

        drops_told = 0;
        (void) signal(SIGPIPE, SIG_IGN);
        cr_assert_eq(sd_event_new(&e), 0);
        RelaySink *s = sink_on_pipe(e, out);
        close(out[0]);
        cr_assert_eq(relay_sink_line(s, "", 0, "a", 1), true, "queued before the write fails");
        cr_assert_eq(relay_sink_line(s, "", 0, "b", 1), false);
        cr_assert_eq(relay_sink_dropped(s), 2);
        relay_sink_free(s, 0);
        cr_assert_eq(drops_told, 2);
        close(out[1]);
        sd_event_unref(e);
}

Test(relay, same_file) {
        int a[2], b[2], d;

        cr_assert_eq(pipe(a), 0);
        cr_assert_eq(pipe(b), 0);
        d = dup(a[1]);
        cr_assert(relay_same_file(a[1], d));
        cr_assert(!relay_same_file(a[1], b[1]));
        close(a[0]), close(a[1]), close(b[0]), close(b[1]), close(d);
}
