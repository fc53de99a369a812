/* SPDX-License-Identifier: MIT */
/* Tests for notify.c: the datagram parser, and real datagrams through the worker notify socket on an
 * sd-event loop (credentials, passed fds, oversized datagrams). */

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "notify.h"

TestSuite(notify, .timeout = 10);

/* Parses a copy of s (with the extra byte the parser needs), so string literals can be used. */
static int parse(const char *s, size_t size, char **ret_buf, NotifyMessage *ret) {
        char *buf = malloc(size + 1);

        cr_assert_not_null(buf);
        memcpy(buf, s, size);
        *ret_buf = buf;
        return notify_message_parse(buf, size, ret);
}

static NotifyMessage parse_ok(const char *s, char **ret_buf) {
        NotifyMessage m;
        int r;

        r = parse(s, strlen(s), ret_buf, &m);
        cr_assert_eq(r, 0, "'%s' rejected: %d", s, r);
        return m;
}

Test(notify, ready) {
        _cleanup_free_ char *buf = NULL;
        NotifyMessage m = parse_ok("READY=1", &buf);

        cr_assert(m.ready);
        cr_assert_not(m.stopping);
        cr_assert_not(m.watchdog);
        cr_assert_not(m.recycle);
        cr_assert_not(m.reloading);
        cr_assert_null(m.status);
}

Test(notify, status_keeps_spaces_and_equals) {
        _cleanup_free_ char *buf = NULL;
        NotifyMessage m = parse_ok("STATUS=Serving 3 requests, load=0.5 a==b ", &buf);

        cr_assert_not(m.ready);
        cr_assert_not_null(m.status);
        cr_assert_str_eq(m.status, "Serving 3 requests, load=0.5 a==b ");
}

Test(notify, empty_status_is_not_absent) {
        _cleanup_free_ char *buf = NULL;
        NotifyMessage m = parse_ok("STATUS=", &buf);

        cr_assert_not_null(m.status);
        cr_assert_str_eq(m.status, "");
}

Test(notify, several_lines_with_trailing_newline) {
        _cleanup_free_ char *buf = NULL;
        NotifyMessage m = parse_ok("READY=1\nSTATUS=up and running\nWATCHDOG=1\n", &buf);

        cr_assert(m.ready);
        cr_assert(m.watchdog);
        cr_assert_str_eq(m.status, "up and running");
        cr_assert_not(m.stopping);
}

Test(notify, blank_lines_are_skipped) {
        _cleanup_free_ char *buf = NULL;
        NotifyMessage m = parse_ok("\n\nREADY=1\n\n\nSTATUS=x\n\n", &buf);

        cr_assert(m.ready);
        cr_assert_str_eq(m.status, "x");
}

Test(notify, unknown_keys_are_ignored) {
        _cleanup_free_ char *buf = NULL;
        NotifyMessage m = parse_ok("MAINPID=1\nX_CUSTOM=a b c\nFDSTORE=1\nREADY=1\nERRNO=5\nBUSERROR=x.y\n",
                                   &buf);

        cr_assert(m.ready);
        cr_assert_null(m.status);
        cr_assert_not(m.stopping);
        cr_assert_not(m.watchdog);
}

Test(notify, ready_other_than_1_is_not_ready) {
        static const char *const not_ready[] = { "READY=0",  "READY=",   "READY=yes", "READY=11",
                                                 "READY= 1", "READY=1 ", "ready=1",   "XREADY=1" };

        for (size_t i = 0; i < ELEMENTSOF(not_ready); i++) {
                _cleanup_free_ char *buf = NULL;
                NotifyMessage m = parse_ok(not_ready[i], &buf);

                cr_assert_not(m.ready, "'%s' counted as ready", not_ready[i]);
        }
}

Test(notify, watchdog_recycle_stopping_reloading) {
        {
                _cleanup_free_ char *buf = NULL;
                NotifyMessage m = parse_ok("WATCHDOG=1", &buf);

                cr_assert(m.watchdog);
                cr_assert_not(m.ready || m.recycle || m.stopping || m.reloading);
        }
        {
                _cleanup_free_ char *buf = NULL;
                NotifyMessage m = parse_ok("RECYCLE=1", &buf);

                cr_assert(m.recycle);
                cr_assert_not(m.ready || m.watchdog || m.stopping || m.reloading);
        }
        {
                _cleanup_free_ char *buf = NULL;
                NotifyMessage m = parse_ok("STOPPING=1", &buf);

                cr_assert(m.stopping);
                cr_assert_not(m.ready || m.watchdog || m.recycle || m.reloading);
        }
        {
                _cleanup_free_ char *buf = NULL;
                NotifyMessage m = parse_ok("RELOADING=1", &buf);

                cr_assert(m.reloading);
                cr_assert_not(m.ready || m.watchdog || m.recycle || m.stopping);
        }
        {
                _cleanup_free_ char *buf = NULL;
                NotifyMessage m = parse_ok("WATCHDOG=0\nRECYCLE=0\nSTOPPING=0\nRELOADING=0", &buf);

                cr_assert_not(m.ready || m.watchdog || m.recycle || m.stopping || m.reloading);
        }
}

Test(notify, empty_datagram_sets_nothing) {
        _cleanup_free_ char *buf = NULL;
        NotifyMessage m = { .ready = true, .status = "sentinel" };

        cr_assert_eq(parse("", 0, &buf, &m), 0);
        cr_assert_not(m.ready || m.watchdog || m.recycle || m.stopping || m.reloading);
        cr_assert_null(m.status);
}

Test(notify, embedded_nul_is_rejected) {
        static const char msg[] = "READY=1\0STATUS=x";
        static const char msg_end[] = "READY=1\0";
        _cleanup_free_ char *buf = NULL, *buf2 = NULL;
        NotifyMessage m = { .status = "sentinel" };

        cr_assert_eq(parse(msg, sizeof msg - 1, &buf, &m), -EBADMSG);
        cr_assert_eq(parse(msg_end, sizeof msg_end - 1, &buf2, &m), -EBADMSG);
        cr_assert_str_eq(m.status, "sentinel", "output written on failure");
        cr_assert_not(m.ready);
}

Test(notify, line_without_equals_is_rejected) {
        static const char *const bad[] = {
                "READY",
                "READY=1\nGARBAGE\n",
                "READY=1\nGARBAGE",
                "STATUS=a\n \n",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *buf = NULL;
                NotifyMessage m = { .status = "sentinel" };

                cr_assert_eq(parse(bad[i], strlen(bad[i]), &buf, &m), -EBADMSG, "'%s' accepted", bad[i]);
                cr_assert_str_eq(m.status, "sentinel");
        }
}

Test(notify, buffer_of_exactly_the_maximum_size) {
        _cleanup_free_ char *buf = malloc(NOTIFY_BUFFER_MAX + 1);
        size_t prefix = strlen("READY=1\nSTATUS=");
        NotifyMessage m;

        cr_assert_not_null(buf);
        memcpy(buf, "READY=1\nSTATUS=", prefix);
        memset(buf + prefix, 'x', NOTIFY_BUFFER_MAX - prefix);
        buf[NOTIFY_BUFFER_MAX] = '!'; /* the parser terminates the buffer here */
        cr_assert_eq(notify_message_parse(buf, NOTIFY_BUFFER_MAX, &m), 0);
        cr_assert(m.ready);
        cr_assert_not_null(m.status);
        cr_assert_eq(strlen(m.status), NOTIFY_BUFFER_MAX - prefix);
        cr_assert_eq(buf[NOTIFY_BUFFER_MAX], 0);
}

/* The real socket. */

#define FLOOD_SIZE (4 * NOTIFY_REJECT_BURST)

typedef struct Received {
        unsigned calls;     /* accepted datagrams */
        unsigned rejected;  /* calls with no message: malformed, too long, no credentials */
        usec_t rejected_at[FLOOD_SIZE];
        pid_t rejected_pid;
        pid_t pid;
        uid_t uid;
        NotifyMessage message;
        char status[NOTIFY_BUFFER_MAX + 1];
        size_t status_len;
} Received;

static void on_message(NotifySocket *n, const struct ucred *sender, const NotifyMessage *m, void *userdata) {
        Received *r = userdata;

        if (!m) {
                if (r->rejected < FLOOD_SIZE)
                        r->rejected_at[r->rejected] = now_usec(CLOCK_MONOTONIC);
                r->rejected++;
                r->rejected_pid = sender ? sender->pid : 0;
                return;
        }
        cr_assert_not_null(sender);
        r->calls++;
        r->pid = sender->pid;
        r->uid = sender->uid;
        r->message = *m;
        r->status_len = 0;
        if (m->status) {
                /* It points into the receive buffer, which is gone after the callback. */
                r->status_len = strlen(m->status);
                memcpy(r->status, m->status, r->status_len + 1);
        }
        r->message.status = NULL;
}

static void send_datagram(const char *address, const void *data, size_t size, int fd_to_pass) {
        union {
                struct cmsghdr hdr;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct iovec iov = { (void *) data, size };
        struct msghdr mh = {
                .msg_name = &sa,
                .msg_iov = &iov,
                .msg_iovlen = 1,
        };
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(address);
        ssize_t n;

        cr_assert_lt(len, sizeof sa.sun_path);
        memcpy(sa.sun_path, address, len);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = 0;
        mh.msg_namelen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len);

        if (fd_to_pass >= 0) {
                struct cmsghdr *c;

                mh.msg_control = &control;
                mh.msg_controllen = sizeof control;
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
        }

        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        cr_assert_eq(n, (ssize_t) size, "sendmsg: %m");
}

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        cr_assert_not_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

typedef struct Loop {
        sd_event *event;
        NotifySocket *socket;
        Received received;
} Loop;

static void loop_setup(Loop *l) {
        int r;

        *l = (Loop){};
        r = sd_event_new(&l->event);
        cr_assert_geq(r, 0);
        r = notify_socket_new(l->event, -10, on_message, &l->received, &l->socket);
        cr_assert_eq(r, 0, "notify_socket_new() = %d", r);
        cr_assert_not_null(l->socket);
        cr_assert_eq(strncmp(notify_socket_address(l->socket), "@corral/", strlen("@corral/")), 0);
        cr_assert_eq(notify_socket_rejected(l->socket), 0);
}

static void loop_done(Loop *l) {
        l->socket = notify_socket_free(l->socket);
        cr_assert_null(l->socket);
        l->event = sd_event_unref(l->event);
}

static void loop_run(Loop *l) {
        int r = sd_event_run(l->event, USEC_PER_SEC);

        cr_assert_gt(r, 0, "sd_event_run() = %d: nothing dispatched", r);
}

Test(notify, socket_round_trip_with_credentials) {
        static const char msg[] = "READY=1\nSTATUS=Listening on 2 sockets";
        Loop l;

        loop_setup(&l);
        send_datagram(notify_socket_address(l.socket), msg, strlen(msg), -EBADF);
        loop_run(&l);
        cr_assert_eq(l.received.calls, 1);
        cr_assert_eq(l.received.pid, getpid());
        cr_assert_eq(l.received.uid, getuid());
        cr_assert(l.received.message.ready);
        cr_assert_str_eq(l.received.status, "Listening on 2 sockets");
        cr_assert_eq(notify_socket_rejected(l.socket), 0);
        loop_done(&l);
}

Test(notify, socket_drains_several_datagrams) {
        Loop l;

        loop_setup(&l);
        send_datagram(notify_socket_address(l.socket), "STATUS=1", 8, -EBADF);
        send_datagram(notify_socket_address(l.socket), "STATUS=2", 8, -EBADF);
        send_datagram(notify_socket_address(l.socket), "READY=1", 7, -EBADF);
        loop_run(&l);
        cr_assert_eq(l.received.calls, 3);
        cr_assert(l.received.message.ready);
        loop_done(&l);
}

Test(notify, socket_closes_passed_fds) {
        static const char msg[] = "READY=1";
        int before, fd;
        Loop l;

        loop_setup(&l);
        before = count_fds();
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        send_datagram(notify_socket_address(l.socket), msg, strlen(msg), fd);
        cr_assert_eq(close(fd), 0);
        /* The fd is in flight now, held only by the datagram. */
        cr_assert_eq(count_fds(), before);

        loop_run(&l);
        cr_assert_eq(l.received.calls, 1, "the handler did not run for a datagram with an fd");
        cr_assert(l.received.message.ready);
        cr_assert_eq(count_fds(), before, "the passed fd was not closed on the receiving side");
        loop_done(&l);
}

Test(notify, socket_closes_fds_of_rejected_datagrams) {
        int before, fd;
        Loop l;

        loop_setup(&l);
        before = count_fds();
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        send_datagram(notify_socket_address(l.socket), "GARBAGE", 7, fd);
        cr_assert_eq(close(fd), 0);

        loop_run(&l);
        cr_assert_eq(l.received.calls, 0);
        cr_assert_eq(l.received.rejected, 1);
        cr_assert_eq(l.received.rejected_pid, getpid());
        cr_assert_eq(notify_socket_rejected(l.socket), 1);
        cr_assert_eq(count_fds(), before, "the passed fd was not closed on the receiving side");
        loop_done(&l);
}

Test(notify, socket_rejects_oversized_datagrams) {
        _cleanup_free_ char *big = malloc(NOTIFY_BUFFER_MAX + 1);
        Loop l;

        cr_assert_not_null(big);
        memcpy(big, "READY=1\nSTATUS=", strlen("READY=1\nSTATUS="));
        memset(big + strlen("READY=1\nSTATUS="), 'x', NOTIFY_BUFFER_MAX + 1 - strlen("READY=1\nSTATUS="));

        loop_setup(&l);
        send_datagram(notify_socket_address(l.socket), big, NOTIFY_BUFFER_MAX + 1, -EBADF);
        loop_run(&l);
        cr_assert_eq(l.received.calls, 0, "an oversized datagram reached the handler as a message");
        cr_assert_eq(l.received.rejected, 1);
        cr_assert_eq(notify_socket_rejected(l.socket), 1);

        /* The socket still works afterwards, and exactly NOTIFY_BUFFER_MAX bytes are accepted. */
        send_datagram(notify_socket_address(l.socket), big, NOTIFY_BUFFER_MAX, -EBADF);
        loop_run(&l);
        cr_assert_eq(l.received.calls, 1);
        cr_assert(l.received.message.ready);
        cr_assert_eq(l.received.status_len, NOTIFY_BUFFER_MAX - strlen("READY=1\nSTATUS="));
        cr_assert_eq(notify_socket_rejected(l.socket), 1);
        loop_done(&l);
}

Test(notify, socket_rejects_malformed_datagrams) {
        static const char nul[] = "READY=1\0x";
        Loop l;

        loop_setup(&l);
        send_datagram(notify_socket_address(l.socket), nul, sizeof nul - 1, -EBADF);
        send_datagram(notify_socket_address(l.socket), "GARBAGE", 7, -EBADF);
        loop_run(&l);
        cr_assert_eq(l.received.calls, 0);
        cr_assert_eq(l.received.rejected, 2);
        cr_assert_eq(notify_socket_rejected(l.socket), 2);
        cr_assert_eq(notify_socket_reject(l.socket), 3);
        cr_assert_eq(notify_socket_rejected(l.socket), 3);
        loop_done(&l);
}

/* What sd_notify() does, without asserts (it runs in a child): blocking sends, waiting while the queue is
 * full. */
static void send_blocking(const char *address, const char *data, unsigned n) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(address);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        memcpy(sa.sun_path, address, len);
        sa.sun_path[0] = 0;
        for (unsigned i = 0; i < n; i++)
                (void) sendto(fd, data, strlen(data), MSG_NOSIGNAL, (struct sockaddr *) &sa,
                              (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len));
        safe_close(fd);
}

Test(notify, socket_reads_a_flood_within_its_budget) {
        usec_t start;
        pid_t child;
        Loop l;

        loop_setup(&l);
        child = fork();
        cr_assert_geq(child, 0);
        if (child == 0) {
                send_blocking(notify_socket_address(l.socket), "GARBAGE", FLOOD_SIZE);
                send_blocking(notify_socket_address(l.socket), "READY=1", 1);
                _exit(0);
        }
        start = now_usec(CLOCK_MONOTONIC);
        while (l.received.calls == 0 && now_usec(CLOCK_MONOTONIC) - start < 5 * USEC_PER_SEC)
                (void) sd_event_run(l.event, 100 * USEC_PER_MSEC);
        cr_assert_eq(waitpid(child, NULL, 0), child);

        /* The datagram behind the flood arrived, and all of the flood was read... */
        cr_assert_eq(l.received.calls, 1);
        cr_assert(l.received.message.ready);
        cr_assert_eq(l.received.rejected, FLOOD_SIZE);
        cr_assert_eq(notify_socket_rejected(l.socket), FLOOD_SIZE);
        /* ...but at most NOTIFY_REJECT_BURST of it a window: any 2 * BURST + 1 in a row span three windows,
         * however fast or slow the sender was. */
        for (size_t i = 0; i + 2 * NOTIFY_REJECT_BURST < FLOOD_SIZE; i++) {
                usec_t span = l.received.rejected_at[i + 2 * NOTIFY_REJECT_BURST] - l.received.rejected_at[i];

                cr_assert_geq(span, NOTIFY_REJECT_WINDOW_USEC, "datagrams %zu..%zu read within %llu us", i,
                              i + 2 * NOTIFY_REJECT_BURST, (unsigned long long) span);
        }
        loop_done(&l);
}

Test(notify, socket_free_accepts_null) {
        cr_assert_null(notify_socket_free(NULL));
}
