/* SPDX-License-Identifier: MIT */
/* Tests for control.c: every request form control_parse_request() accepts and the ones it rejects; the
 * server on a real socket and sd-event loop: the bounds it applies before parsing (size, trailing newline,
 * NUL bytes), its socket path, accepting with the fd table full, room kept for an operator; replies of any
 * size, and a client that gets them whole or fails. */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control-client.h"
#include "control.h"
#include "tmpdir.h"

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
                { "summary", CONTROL_SUMMARY }, { "upgrade", CONTROL_UPGRADE },
                { "connections", CONTROL_CONNECTIONS },
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
                "recycle 00",       /* one spelling per slot, as status prints it: no leading zeros */
                "recycle 007",
                "recycle 010",      /* octal to some readers, ten to others */
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

Test(control, upgrade_takes_nothing) {
        expect_reject("upgrade --wait");
        expect_reject("upgrade now");
        expect_reject("upgrade ");
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

static bool drop_requests; /* on_request() neither replies nor holds */

static void on_request(ControlServer *s, ControlConnection *c, ControlCommand cmd, unsigned arg,
                       void *userdata) {
        Seen *seen = userdata;

        seen->calls++;
        seen->cmd = cmd;
        seen->arg = arg;
        if (!drop_requests)
                control_reply(c, "ok\n");
}

/* Sends request (n bytes) to a fresh server and returns its reply (allocated); *seen says what the handler
 * got. */
static char *exchange(const void *request, size_t n, Seen *seen) {
        char dir[] = "/tmp/corral-test-control-XXXXXX", path[sizeof dir + 16], reply[CONTROL_MESSAGE_MAX];
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
                         "error: unknown request; expected reload [--wait], status [--json], summary, recycle SLOT, "
                         "drain, undrain, connections or upgrade\n");
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

Test(control, server_rejects_a_request_with_an_embedded_nul) {
        /* The parser sees C strings: the bytes after a NUL must not be dropped unseen. A C client sending
         * its terminator along is no exception. */
        static const struct {
                const char *bytes;
                size_t n;
        } cases[] = { { "status\0junk", 11 }, { "status", 7 } };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *reply = NULL;
                Seen seen;

                reply = exchange(cases[i].bytes, cases[i].n, &seen);
                cr_assert_str_eq(reply, "error: request contains a NUL byte\n");
                cr_assert_eq(seen.calls, 0);
        }
}

/* The socket path: only a stale socket is replaced, and only our own socket is unlinked at exit. */

/* A UNIX socket of type bound at path: listening (stream and seqpacket) and returned, or closed and left
 * behind as a stale socket file when live is false. */
static int socket_at(const char *path, int type, bool live) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0, "bind %s: %m", path);
        if (!live) {
                close(fd);
                return -EBADF;
        }
        if (type != SOCK_DGRAM)
                cr_assert_eq(listen(fd, 0), 0);
        return fd;
}

static int server_at(sd_event *e, const char *path, ControlServer **ret) {
        static Seen seen;

        return control_server_new(e, path, 0, on_request, &seen, ret);
}

/* Connects to path without blocking the loop: while the backlog is full, the loop runs and accepts. */
static int connect_looping(sd_event *e, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        cr_assert_geq(fd, 0);
        strcpy(sa.sun_path, path);
        for (int i = 0; connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0; i++) {
                cr_assert_eq(errno, EAGAIN, "connect: %m");
                cr_assert_lt(i, 500, "the server does not accept");
                cr_assert_geq(sd_event_run(e, 10 * USEC_PER_MSEC), 0);
        }
        return fd;
}

static ino_t inode_of(const char *path) {
        struct stat st;

        cr_assert_eq(lstat(path, &st), 0, "%s: %m", path);
        return st.st_ino;
}

Test(control, server_refuses_a_path_that_is_not_a_socket, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *file = strdup_printf("%s/file", tmpdir), *dir = strdup_printf("%s/dir", tmpdir);
        _cleanup_free_ char *link = strdup_printf("%s/link", tmpdir), *stale = strdup_printf("%s/s", tmpdir);
        ControlServer *s = NULL;
        sd_event *e = NULL;
        char buf[16] = {};
        int fd;

        cr_assert_eq(sd_event_new(&e), 0);
        fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert_eq(write(fd, "precious\n", 9), 9);
        close(fd);
        cr_assert_eq(mkdir(dir, 0700), 0);
        /* Even to a stale socket: what a symlink points to is not ours to judge. */
        socket_at(stale, SOCK_SEQPACKET, false);
        cr_assert_eq(symlink(stale, link), 0);

        cr_assert_eq(server_at(e, file, &s), -EEXIST);
        cr_assert_eq(server_at(e, dir, &s), -EEXIST);
        cr_assert_eq(server_at(e, link, &s), -EEXIST);
        cr_assert_null(s);

        fd = open(file, O_RDONLY | O_CLOEXEC);
        cr_assert_eq(read(fd, buf, sizeof buf - 1), 9, "the file was removed or changed");
        cr_assert_str_eq(buf, "precious\n");
        close(fd);
        cr_assert_eq(rmdir(dir), 0, "the directory is gone: %m");
        cr_assert_eq(readlink(link, buf, sizeof buf), (ssize_t) MIN(strlen(stale), sizeof buf));
        sd_event_unref(e);
}

Test(control, server_refuses_a_live_socket_of_any_kind, .init = make_tmpdir, .fini = remove_tmpdir) {
        static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
        ControlServer *s = NULL;
        sd_event *e = NULL;

        cr_assert_eq(sd_event_new(&e), 0);
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                _cleanup_free_ char *path = strdup_printf("%s/live-%zu", tmpdir, i);
                int fd = socket_at(path, types[i], true);
                ino_t ino = inode_of(path);

                cr_assert_eq(server_at(e, path, &s), -EADDRINUSE, "socket type %d taken over", types[i]);
                cr_assert_null(s);
                cr_assert_eq(inode_of(path), ino, "socket type %d replaced", types[i]);
                close(fd);
        }
        sd_event_unref(e);
}

Test(control, server_replaces_a_stale_socket, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir);
        ControlServer *s = NULL;
        sd_event *e = NULL;

        cr_assert_eq(sd_event_new(&e), 0);
        socket_at(path, SOCK_SEQPACKET, false);
        cr_assert_eq(server_at(e, path, &s), 0);
        close(connect_looping(e, path));
        s = control_server_free(s);
        cr_assert_eq(access(path, F_OK), -1, "not unlinked at exit");
        sd_event_unref(e);
}

Test(control, server_probe_of_a_frozen_server_does_not_wait, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ControlServer *s = NULL;
        int fd, queued[8], n = 0;
        sd_event *e = NULL;
        usec_t start;

        /* A server that stopped accepting (SIGSTOPped, say) with its backlog full: a blocking connect() to
         * it waits for room forever. */
        cr_assert_eq(sd_event_new(&e), 0);
        fd = socket_at(path, SOCK_SEQPACKET, true);
        strcpy(sa.sun_path, path);
        for (; n < (int) ELEMENTSOF(queued); n++) {
                queued[n] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (connect(queued[n], (struct sockaddr *) &sa, sizeof sa) < 0) {
                        cr_assert_eq(errno, EAGAIN, "connect: %m");
                        break;
                }
        }
        cr_assert_lt(n, (int) ELEMENTSOF(queued), "the backlog never filled");

        start = now_usec(CLOCK_MONOTONIC);
        cr_assert_eq(server_at(e, path, &s), -EADDRINUSE);
        cr_assert_lt(now_usec(CLOCK_MONOTONIC) - start, USEC_PER_SEC);
        for (int i = 0; i <= n; i++)
                close(queued[i]);
        close(fd);
        sd_event_unref(e);
}

Test(control, server_unlinks_only_its_own_socket_at_exit, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir);
        _cleanup_free_ char *moved = strdup_printf("%s/moved", tmpdir);
        ControlServer *s = NULL;
        sd_event *e = NULL;
        int fd;

        /* Someone moved our socket away and put something else at its path while we ran: theirs now. */
        cr_assert_eq(sd_event_new(&e), 0);
        cr_assert_eq(server_at(e, path, &s), 0);
        cr_assert_eq(rename(path, moved), 0);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        s = control_server_free(s);
        cr_assert_eq(access(path, F_OK), 0, "someone else's file was unlinked");
        sd_event_unref(e);
}

/* Accepting: a full fd table does not make the loop spin. */

/* Runs the loop until fd has something to read (a message or the end), for at most timeout. */
static bool run_until_readable(sd_event *e, int fd, usec_t timeout) {
        usec_t end = now_usec(CLOCK_MONOTONIC) + timeout;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        while (poll(&pfd, 1, 0) == 0) {
                if (now_usec(CLOCK_MONOTONIC) > end)
                        return false;
                cr_assert_geq(sd_event_run(e, 10 * USEC_PER_MSEC), 0);
        }
        return true;
}

static void expect_message(int fd, const char *text) {
        char buf[512];
        ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);

        cr_assert_gt(n, 0, "no message: %m");
        buf[n] = 0;
        cr_assert_str_eq(buf, text);
}

Test(control, a_full_fd_table_pauses_accepting, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir);
        struct rlimit old, full;
        ControlServer *s = NULL;
        sd_event *e = NULL;
        unsigned dispatched = 0;
        usec_t end;
        int fd, free_fd;

        /* accept() failing with EMFILE leaves the connection queued and the listening socket readable: a
         * loop that retries at once spins at 100 % of a core until an fd frees up. */
        cr_assert_eq(sd_event_new(&e), 0);
        cr_assert_eq(server_at(e, path, &s), 0);
        fd = connect_looping(e, path);
        cr_assert_eq(send(fd, "status", 6, MSG_NOSIGNAL), 6);
        free_fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
        cr_assert_geq(free_fd, 0);
        close(free_fd);
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
        full = (struct rlimit) { .rlim_cur = free_fd, .rlim_max = old.rlim_max };
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &full), 0);

        end = now_usec(CLOCK_MONOTONIC) + 500 * USEC_PER_MSEC;
        while (now_usec(CLOCK_MONOTONIC) < end) {
                int r = sd_event_run(e, 10 * USEC_PER_MSEC);
                if (r < 0)
                        break;
                dispatched += r > 0;
        }
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        cr_assert_lt(dispatched, 100, "%u dispatches in 500 ms with the fd table full", dispatched);

        /* Once fds are free again, the waiting client is served. */
        cr_assert(run_until_readable(e, fd, 2 * USEC_PER_SEC), "not served after the pause");
        expect_message(fd, "ok\n");
        close(fd);
        control_server_free(s);
        sd_event_unref(e);
}

/* Large replies: they arrive whole, or the client fails. */

static void run_for(sd_event *e, usec_t duration) {
        usec_t end = now_usec(CLOCK_MONOTONIC) + duration;

        while (now_usec(CLOCK_MONOTONIC) < end)
                cr_assert_geq(sd_event_run(e, 10 * USEC_PER_MSEC), 0);
}

#define BIG_REPLY_SIZE (1024 * 1024)

static char *big_reply(void) {
        char *text = malloc(BIG_REPLY_SIZE + 1), *p = text;

        cr_assert_not_null(text);
        p = stpcpy(p, "ok\n");
        for (unsigned i = 0; p + 32 < text + BIG_REPLY_SIZE; i++)
                p += sprintf(p, "{\"row\": %9u, \"pad\": \"xx\"}\n", i);
        *p = 0;
        return text;
}

static void on_big_request(ControlServer *s, ControlConnection *c, ControlCommand cmd, unsigned arg,
                           void *userdata) {
        control_reply(c, userdata);
}

/* Runs `corral status` against path in a child, stdout and stderr to files in tmpdir, while this process
 * runs the loop e (NULL: the caller serves path by hand and calls wait_client() itself). */
static pid_t start_client(const char *path) {
        pid_t pid = fork();

        cr_assert_geq(pid, 0);
        if (pid == 0) {
                _cleanup_free_ char *out = strdup_printf("%s/stdout", tmpdir);
                _cleanup_free_ char *err = strdup_printf("%s/stderr", tmpdir);
                int o = open(out, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
                int x = open(err, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
                int rc;

                if (o < 0 || x < 0 || dup2(o, STDOUT_FILENO) < 0 || dup2(x, STDERR_FILENO) < 0)
                        _exit(99);
                rc = control_client_run(path, "status", 5 * USEC_PER_SEC);
                fflush(stdout);
                fflush(stderr);
                _exit(rc);
        }
        return pid;
}

/* Waits for the client (running the loop e meanwhile, unless NULL); returns its exit code. */
static int wait_client(sd_event *e, pid_t pid) {
        usec_t end = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                cr_assert_geq(r, 0);
                if (r == pid)
                        break;
                if (now_usec(CLOCK_MONOTONIC) > end) {
                        kill(pid, SIGKILL);
                        cr_assert_fail("the client did not finish");
                }
                if (e)
                        cr_assert_geq(sd_event_run(e, 10 * USEC_PER_MSEC), 0);
                else
                        usleep(10000);
        }
        cr_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static char *client_output(const char *name) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", tmpdir, name);
        char *text = calloc(1, 2 * BIG_REPLY_SIZE);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        size_t n = 0;
        ssize_t k;

        cr_assert_geq(fd, 0);
        while ((k = read(fd, text + n, 2 * BIG_REPLY_SIZE - 1 - n)) > 0)
                n += k;
        close(fd);
        return text;
}

Test(control, client_gets_a_reply_larger_than_the_send_buffer_whole, .init = make_tmpdir,
     .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir), *text = big_reply();
        _cleanup_free_ char *out = NULL, *err = NULL;
        ControlServer *s = NULL;
        sd_event *e = NULL;
        int sndbuf = 0, fd;
        socklen_t len = sizeof sndbuf;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
        close(fd);
        cr_assert_gt(strlen(text), (size_t) sndbuf, "the reply must not fit into one send buffer");

        cr_assert_eq(sd_event_new(&e), 0);
        cr_assert_eq(control_server_new(e, path, 0, on_big_request, text, &s), 0);
        cr_assert_eq(wait_client(e, start_client(path)), 0);
        out = client_output("stdout");
        err = client_output("stderr");
        cr_assert_str_empty(err);
        cr_assert_eq(strlen(out), strlen(text) - 3, "got %zu of %zu bytes", strlen(out), strlen(text) - 3);
        cr_assert(streq(out, text + 3), "the reply arrived changed");
        control_server_free(s);
        sd_event_unref(e);
}

Test(control, a_client_that_does_not_read_blocks_no_one, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir), *text = big_reply();
        _cleanup_free_ char *out = NULL;
        ControlServer *s = NULL;
        sd_event *e = NULL;
        int slow;

        /* One client asks and does not read; the loop goes on serving, and the slow one still gets all. */
        cr_assert_eq(sd_event_new(&e), 0);
        cr_assert_eq(control_server_new(e, path, 0, on_big_request, text, &s), 0);
        slow = connect_looping(e, path);
        cr_assert_eq(send(slow, "status", 6, MSG_NOSIGNAL), 6);
        run_for(e, 100 * USEC_PER_MSEC);
        cr_assert_eq(wait_client(e, start_client(path)), 0);
        out = client_output("stdout");
        cr_assert(streq(out, text + 3), "the second client got %zu bytes", strlen(out));

        for (size_t got = 0;;) {
                char buf[256 * 1024];
                ssize_t n = recv(slow, buf, sizeof buf, MSG_DONTWAIT);

                if (n < 0 && errno == EAGAIN) {
                        cr_assert_geq(sd_event_run(e, 10 * USEC_PER_MSEC), 0);
                        continue;
                }
                cr_assert_gt(n, 0, "the slow client's reply ended after %zu bytes: %m", got);
                cr_assert_eq(memcmp(buf, text + got, MIN((size_t) n, strlen(text) - got)), 0);
                got += n;
                if (buf[n - 1] == 0) {
                        cr_assert_eq(got, strlen(text) + 1);
                        break;
                }
        }
        close(slow);
        control_server_free(s);
        sd_event_unref(e);
}

/* A server played by hand: accepts one connection, waits for the request, reads it or not, sends the
 * messages, closes. */
static void serve_by_hand(const char *path, bool read_request, const char *const *messages, const size_t *sizes,
                          size_t n, int *ret_rc, char **ret_out, char **ret_err) {
        int l = socket_at(path, SOCK_SEQPACKET, true), c, queued = 0;
        pid_t pid = start_client(path);

        c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        cr_assert_geq(c, 0);
        for (int i = 0; i < 500 && queued == 0; i++) {
                cr_assert_eq(ioctl(c, FIONREAD, &queued), 0);
                usleep(10000);
        }
        cr_assert_gt(queued, 0, "no request");
        if (read_request)
                cr_assert_eq(recv(c, (char[CONTROL_REQUEST_MAX]) {}, CONTROL_REQUEST_MAX, 0), queued);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(send(c, messages[i], sizes[i], MSG_NOSIGNAL), (ssize_t) sizes[i]);
        /* Closed with the request unread, the client sees a reset before the replies. */
        close(c);
        close(l);
        *ret_rc = wait_client(NULL, pid);
        *ret_out = client_output("stdout");
        *ret_err = client_output("stderr");
}

Test(control, client_fails_loudly_on_a_reply_cut_short, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir), *out = NULL, *err = NULL;
        const char *cut[] = { "ok\n{\"slots\": [", "{\"pid\": 1}" };
        const size_t sizes[] = { strlen(cut[0]), strlen(cut[1]) };
        int rc;

        serve_by_hand(path, true, cut, sizes, 2, &rc, &out, &err);
        cr_assert_neq(rc, 0);
        cr_assert_str_empty(out, "printed a partial reply: %s", out);
        cr_assert(strstr(err, "cut short"), "stderr: %s", err);
}

Test(control, client_reads_the_reply_through_a_reset, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir), *out = NULL, *err = NULL;
        const char *whole[] = { "ok\nfirst ", "second\n" };
        const size_t sizes[] = { strlen(whole[0]), strlen(whole[1]) + 1 };
        int rc;

        serve_by_hand(path, false, whole, sizes, 2, &rc, &out, &err);
        cr_assert_eq(rc, 0, "stderr: %s", err);
        cr_assert_str_eq(out, "first second\n");
}

Test(control, a_request_the_handler_drops_is_answered) {
        _cleanup_free_ char *reply = NULL;
        Seen seen;

        /* A handler that neither replies nor holds: the client hears so at once, not after a deadline. */
        drop_requests = true;
        reply = exchange("status", 6, &seen);
        cr_assert_str_eq(reply, "error: request not handled\n");
        cr_assert_eq(seen.calls, 1);
}

/* Connection bounds: a short deadline for the request, and a full server makes room for a new client. */

Test(control, an_idle_connection_gets_a_short_deadline, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir);
        ControlServer *s = NULL;
        sd_event *e = NULL;
        usec_t start;
        int fd;

        /* A request is one short message sent right after connect(): a client silent for a second is not
         * going to send one, and holds a connection an operator may need. */
        cr_assert_eq(sd_event_new(&e), 0);
        cr_assert_eq(server_at(e, path, &s), 0);
        start = now_usec(CLOCK_MONOTONIC);
        fd = connect_looping(e, path);
        cr_assert(run_until_readable(e, fd, 3 * USEC_PER_SEC), "never closed");
        cr_assert_lt(now_usec(CLOCK_MONOTONIC) - start, 1500 * USEC_PER_MSEC);
        expect_message(fd, "error: no request received in time\n");
        close(fd);
        control_server_free(s);
        sd_event_unref(e);
}

/* A connection to path that another process made: the peer's credentials are taken at connect(), and this
 * process keeps the socket after the child is gone. */
static int connect_as_another_process(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), status;
        pid_t pid;

        cr_assert_geq(fd, 0);
        strcpy(sa.sun_path, path);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
                _exit(connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "connect failed in the child");
        return fd;
}

Test(control, a_full_server_evicts_the_oldest_idle_connection_of_the_biggest_holder, .init = make_tmpdir,
     .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/control", tmpdir);
        int idle[63], other, fd;
        ControlServer *s = NULL;
        sd_event *e = NULL;

        /* Another process's single idle connection is the oldest; this process holds the other 63. */
        cr_assert_eq(sd_event_new(&e), 0);
        cr_assert_eq(server_at(e, path, &s), 0);
        other = connect_as_another_process(path);
        run_for(e, 50 * USEC_PER_MSEC);
        for (size_t i = 0; i < ELEMENTSOF(idle); i++)
                idle[i] = connect_looping(e, path);
        run_for(e, 50 * USEC_PER_MSEC);

        /* The operator gets in; the oldest connection of the biggest holder makes room, nothing else. */
        fd = connect_looping(e, path);
        cr_assert_eq(send(fd, "status", 6, MSG_NOSIGNAL), 6);
        cr_assert(run_until_readable(e, fd, USEC_PER_SEC), "no answer");
        expect_message(fd, "ok\n");
        cr_assert(run_until_readable(e, idle[0], 0), "the oldest idle connection is still open");
        expect_message(idle[0], "error: too many connections\n");
        for (size_t i = 1; i <= ELEMENTSOF(idle); i++) {
                struct pollfd pfd = { .fd = i < ELEMENTSOF(idle) ? idle[i] : other, .events = POLLIN };
                cr_assert_eq(poll(&pfd, 1, 0), 0, "connection %zu closed too (63: the other process's)", i);
        }
        for (size_t i = 0; i < ELEMENTSOF(idle); i++)
                close(idle[i]);
        close(other);
        close(fd);
        control_server_free(s);
        sd_event_unref(e);
}
