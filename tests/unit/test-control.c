/* SPDX-License-Identifier: MIT */
/* Tests for control.c: every request form control_parse_request() accepts and the ones it rejects, and the
 * bounds the server applies before parsing (size, trailing newline), on a real socket and sd-event loop. */

#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"

TestSuite(control, .timeout = 10);

#define ARG_UNTOUCHED 4242U

/* Parses s; the argument starts at a marker so that a write is seen. */
static ControlCommand parse(const char *s, unsigned *ret_arg) {
        *ret_arg = ARG_UNTOUCHED;
        return control_parse_request(s, ret_arg);
}

static void expect_reject(const char *s) {
        unsigned arg;
        ControlCommand cmd = parse(s, &arg);

        cr_assert_eq(cmd, _CONTROL_COMMAND_INVALID, "'%s' accepted as command %d", s, cmd);
        cr_assert_eq(arg, ARG_UNTOUCHED, "'%s' rejected but wrote the argument (%u)", s, arg);
}

Test(control, every_verb_without_argument_is_accepted) {
        static const struct {
                const char *request;
                ControlCommand cmd;
        } cases[] = {
                { "reload", CONTROL_RELOAD }, { "reload --wait", CONTROL_RELOAD_WAIT },
                { "status", CONTROL_STATUS }, { "status --json", CONTROL_STATUS_JSON },
                { "drain", CONTROL_DRAIN },   { "undrain", CONTROL_UNDRAIN },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                unsigned arg;
                ControlCommand cmd = parse(cases[i].request, &arg);

                cr_assert_eq(cmd, cases[i].cmd, "'%s': %d, expected %d", cases[i].request, cmd,
                             cases[i].cmd);
                cr_assert_eq(arg, ARG_UNTOUCHED, "'%s' wrote an argument", cases[i].request);
        }
}

Test(control, recycle_takes_a_decimal_slot) {
        static const struct {
                const char *request;
                unsigned slot;
        } cases[] = {
                { "recycle 0", 0 }, { "recycle 3", 3 }, { "recycle 42", 42 }, { "recycle 99999", 99999 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                unsigned arg;
                ControlCommand cmd = parse(cases[i].request, &arg);

                cr_assert_eq(cmd, CONTROL_RECYCLE, "'%s': %d", cases[i].request, cmd);
                cr_assert_eq(arg, cases[i].slot, "'%s': slot %u", cases[i].request, arg);
        }
}

Test(control, recycle_rejects_a_bad_slot_number) {
        static const char *const cases[] = {
                "recycle",          /* no argument */
                "recycle ",         /* empty argument */
                "recycle -1",       /* strtoul() would wrap it */
                "recycle +1",       /* only digits */
                "recycle x",
                "recycle 0x10",     /* decimal only */
                "recycle 1e3",
                "recycle 3.0",
                "recycle 100000",   /* above the bound */
                "recycle 4294967296",
                "recycle 18446744073709551616", /* ERANGE */
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                expect_reject(cases[i]);
}

Test(control, unknown_verbs_are_rejected) {
        static const char *const cases[] = {
                "restart", "stop", "RELOAD", "Status", "reload --now", "status --yaml", "reload --wai",
                "recycle-all", "help", "ok",
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                expect_reject(cases[i]);
}

Test(control, surrounding_whitespace_and_trailing_junk_are_rejected) {
        static const char *const cases[] = {
                " reload",         "reload ",        "reload\n",        "reload\t",       "reload--wait",
                "reload  --wait",  "reload --wait ", "status --json x", "status  --json", "drain now",
                "undrain\r\n",     "recycle  3",     "recycle\t3",      "recycle 3 ",     "recycle 3\n",
                "recycle 3x",      "recycle 3 4",    "recycle 3,4",
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                expect_reject(cases[i]);
}

Test(control, empty_request_is_rejected) {
        expect_reject("");
        expect_reject(" ");
        expect_reject("\n");
}

Test(control, long_requests_are_rejected) {
        char buf[4 * CONTROL_REQUEST_MAX];

        /* A valid verb drowned in padding, and a slot number far too long to be one. */
        snprintf(buf, sizeof buf, "status%*s", 2 * CONTROL_REQUEST_MAX, "");
        expect_reject(buf);
        memset(buf, '9', sizeof buf - 1);
        buf[sizeof buf - 1] = 0;
        memcpy(buf, "recycle ", 8);
        expect_reject(buf);
}

/* The server: a request reaches the parser only within CONTROL_REQUEST_MAX bytes, one trailing newline
 * stripped. Driven from this thread: the client's send is queued by the kernel, then the loop runs until
 * the reply is there. */

typedef struct Seen {
        unsigned calls;
        ControlCommand cmd;
        unsigned arg;
} Seen;

static void on_request(ControlServer *s, ControlConnection *c, ControlCommand cmd, unsigned arg,
                       void *userdata) {
        Seen *seen = userdata;

        seen->calls++;
        seen->cmd = cmd;
        seen->arg = arg;
        control_reply(c, "ok\n");
}

/* Sends request (n bytes) to a fresh server and returns its reply (allocated); *seen says what the handler
 * got. */
static char *exchange(const void *request, size_t n, Seen *seen) {
        char dir[] = "/tmp/corral-test-control-XXXXXX", path[sizeof dir + 16], reply[CONTROL_REPLY_MAX];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(control_server_freep) ControlServer *s = NULL;
        _cleanup_close_ int fd = -EBADF;
        sd_event *e = NULL;
        struct pollfd pfd;
        ssize_t got;
        int r;

        *seen = (Seen) {};
        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/control", dir);
        cr_assert_eq(sd_event_new(&e), 0);
        r = control_server_new(e, path, 0, on_request, seen, &s);
        cr_assert_eq(r, 0, "control_server_new(): %s", strerror(-r));

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        strcpy(sa.sun_path, path);
        cr_assert_eq(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0, "connect: %m");
        cr_assert_eq(send(fd, request, n, MSG_NOSIGNAL), (ssize_t) n, "send: %m");

        pfd = (struct pollfd) { .fd = fd, .events = POLLIN };
        for (int i = 0; i < 100 && poll(&pfd, 1, 0) == 0; i++) {
                r = sd_event_run(e, 50 * USEC_PER_MSEC);
                cr_assert_geq(r, 0, "sd_event_run(): %s", strerror(-r));
        }
        got = recv(fd, reply, sizeof reply - 1, MSG_DONTWAIT);
        cr_assert_gt(got, 0, "no reply: %m");
        reply[got] = 0;

        s = control_server_free(s);
        sd_event_unref(e);
        cr_assert_eq(rmdir(dir), 0, "rmdir: %m");
        return strdup(reply);
}

Test(control, server_strips_one_trailing_newline) {
        _cleanup_free_ char *reply = NULL;
        Seen seen;

        reply = exchange("recycle 7\n", 10, &seen);
        cr_assert_str_eq(reply, "ok\n");
        cr_assert_eq(seen.calls, 1);
        cr_assert_eq(seen.cmd, CONTROL_RECYCLE);
        cr_assert_eq(seen.arg, 7);
        free(reply);

        /* Only one: a second newline is junk. */
        reply = exchange("status\n\n", 8, &seen);
        cr_assert_str_eq(reply,
                         "error: unknown request; expected reload [--wait], status [--json], recycle SLOT, "
                         "drain or undrain\n");
        cr_assert_eq(seen.calls, 0);
}

Test(control, server_refuses_a_request_over_the_limit_before_parsing) {
        char buf[CONTROL_REQUEST_MAX + 1];
        _cleanup_free_ char *reply = NULL;
        Seen seen;

        /* Exactly at the limit: parsed, and rejected for what it says. */
        memset(buf, ' ', sizeof buf);
        memcpy(buf, "status", 6);
        reply = exchange(buf, CONTROL_REQUEST_MAX, &seen);
        cr_assert(startswith(reply, "error: unknown request"), "%s", reply);
        cr_assert_eq(seen.calls, 0);
        free(reply);

        /* One byte more: refused as too long. */
        reply = exchange(buf, CONTROL_REQUEST_MAX + 1, &seen);
        cr_assert_str_eq(reply, "error: request too long\n");
        cr_assert_eq(seen.calls, 0);
}
