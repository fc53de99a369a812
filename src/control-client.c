/* SPDX-License-Identifier: MIT */
/* The control socket's client: deadlines on every wait, keepalives skipped, the reply whole or an error. */
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control-client.h"
#include "control.h"

/* Milliseconds left until deadline for poll(), 0 when it has passed (rounded up: never a busy loop). */
static int ms_left(usec_t deadline) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (now >= deadline)
                return 0;
        return (int) MIN((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (usec_t) INT32_MAX);
}

/* Waits until fd has events or the deadline passes: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, usec_t deadline) {
        struct pollfd p = { .fd = fd, .events = events };

        for (;;) {
                int ms = ms_left(deadline), n;

                if (ms == 0)
                        return -ETIMEDOUT;
                n = poll(&p, 1, ms);
                if (n > 0)
                        return 0;
                if (n < 0 && errno != EINTR)
                        return -errno;
        }
}

static int client_connect(const char *path, usec_t deadline, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A full backlog (a corral that is stopped, or buried in connections) is EAGAIN on a non-blocking
         * AF_UNIX connect: try again until the deadline. Once queued, the connection is made. */
        while (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                if (ms_left(deadline) == 0)
                        return -ETIMEDOUT;
                (void) usleep(10 * 1000);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int client_send(int fd, const char *request, usec_t deadline) {
        for (;;) {
                int r;

                if (send(fd, request, strlen(request), MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
                        return 0;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                r = wait_fd(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
}

/* Reads a reply up to its closing NUL into *ret; keepalives before it are skipped and restart the wait. */
static int client_read_reply(int fd, usec_t timeout, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;
        usec_t deadline = now_usec(CLOCK_MONOTONIC) + timeout;
        bool reset = false;
        int r = 0;

        for (;;) {
                ssize_t n;

                if (size + CONTROL_MESSAGE_MAX > allocated) {
                        char *p;

                        if (allocated >= CONTROL_REPLY_SIZE_MAX) {
                                r = -EMSGSIZE;
                                break;
                        }
                        allocated = MIN(MAX(2 * allocated, (size_t) 4 * CONTROL_MESSAGE_MAX),
                                        (size_t) CONTROL_REPLY_SIZE_MAX + CONTROL_MESSAGE_MAX);
                        p = realloc(buf, allocated);
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        buf = p;
                }
                n = recv(fd, buf + size, CONTROL_MESSAGE_MAX, MSG_TRUNC | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                r = wait_fd(fd, POLLIN, deadline);
                                if (r < 0)
                                        break;
                                continue;
                        }
                        /* corral closed with our request unread (it refused or turned us away): the kernel
                         * reports the reset first, then the messages still queued. */
                        if (errno == ECONNRESET && !reset) {
                                reset = true;
                                continue;
                        }
                        r = -errno;
                        break;
                }
                if (n == 0) {
                        r = -EPIPE;
                        break;
                }
                /* MSG_TRUNC: the length of the message, not of what fitted. */
                if (n > CONTROL_MESSAGE_MAX) {
                        r = -EBADMSG;
                        break;
                }
                deadline = now_usec(CLOCK_MONOTONIC) + timeout;
                if (size == 0 && n == 1 && buf[0] == CONTROL_KEEPALIVE)
                        continue;
                size += n;
                if (buf[size - 1] == 0)
                        break;
        }
        *ret_size = size;
        if (r < 0)
                return r;
        if (memchr(buf, 0, size - 1))
                return -EBADMSG;
        *ret_size = size - 1;
        *ret = TAKE_PTR(buf);
        return 0;
}

int control_client_call(const char *path, const char *request, usec_t timeout, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        int r, send_error;

        *ret_size = 0;
        r = client_connect(path, now_usec(CLOCK_MONOTONIC) + timeout, &fd);
        if (r < 0)
                return r;
        /* corral may answer and close before reading anything (a refused peer): then sending fails, but
         * its answer is waiting, so read it either way. */
        send_error = client_send(fd, request, now_usec(CLOCK_MONOTONIC) + timeout);
        if (send_error == -ETIMEDOUT)
                return send_error;
        r = client_read_reply(fd, timeout, ret, ret_size);
        if (r < 0 && *ret_size == 0 && send_error < 0)
                return send_error;
        return r;
}

/* Prints the reply's payload: "warning: " lines on stderr, the rest on stdout. */
static void print_payload(const char *text) {
        while (*text) {
                size_t n = strcspn(text, "\n");
                bool nl = text[n] == '\n';

                if (startswith(text, "warning: "))
                        fprintf(stderr, "corral: %.*s\n", (int) n, text);
                else
                        fprintf(stdout, "%.*s%s", (int) n, text, nl ? "\n" : "");
                text += n + nl;
        }
}

/* Says what went wrong with a call (r < 0, size bytes of reply came) and returns the exit code. */
static int report_failure(const char *path, int r, size_t size, usec_t timeout) {
        char t[FORMAT_USEC_MAX];

        switch (r) {
        case -ENOENT:
                fprintf(stderr, "corral: not running: no control socket at '%s'\n", path);
                return EXIT_NOT_RUNNING;
        case -ENOTSOCK:
                fprintf(stderr, "corral: '%s' is not a socket: not a corral control socket\n", path);
                return EXIT_NOT_RUNNING;
        case -ECONNREFUSED:
                fprintf(stderr, "corral: not running: nothing listens on '%s' (a stale socket)\n", path);
                return EXIT_NOT_RUNNING;
        case -EACCES:
        case -EPERM:
                fprintf(stderr, "corral: permission denied: '%s' is for root and corral's own user\n", path);
                return EXIT_DENIED;
        case -ETIMEDOUT:
                fprintf(stderr, "corral: no answer on '%s' within %s: corral is stopped or overloaded (--timeout "
                        "sets the wait)\n", path, format_usec(t, sizeof t, timeout));
                return EXIT_TEMPFAIL;
        case -EPIPE:
        case -EBADMSG:
        case -EMSGSIZE:
                if (size == 0)
                        fprintf(stderr, "corral: no reply on '%s' (connection closed)\n", path);
                else if (r == -EPIPE)
                        fprintf(stderr, "corral: reply cut short after %zu bytes (connection closed)\n", size);
                else
                        fprintf(stderr, "corral: malformed reply (%s)\n", strerror(-r));
                return 1;
        default:
                fprintf(stderr, "corral: '%s': %s\n", path, strerror(-r));
                return 1;
        }
}

/* control_client_call(), saying what went wrong: returns 0 with the reply (not an "error: ") in *ret, or the
 * exit code. */
static int call_reporting(const char *path, const char *request, usec_t timeout, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r;

        r = control_client_call(path, request, timeout, &buf, &size);
        if (r < 0)
                return report_failure(path, r, size, timeout);
        if (startswith(buf, "error: ")) {
                fprintf(stderr, "corral: %s", buf + 7);
                /* corral checked our credentials (SO_PEERCRED) and refused them. */
                return startswith(buf, "error: permission denied") ? EXIT_DENIED : 1;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

int control_client_run(const char *path, const char *request, usec_t timeout) {
        _cleanup_free_ char *buf = NULL;
        int r;

        r = call_reporting(path, request, timeout, &buf);
        if (r != 0)
                return r;
        /* "ok\n" or "degraded\n" then the payload, or "ok: message\n". A degraded pool is an answer, but
         * not a healthy one: exit 1, as `systemctl is-active` style scripts expect. */
        if (startswith(buf, "degraded\n")) {
                print_payload(buf + 9);
                return 1;
        }
        if (startswith(buf, "ok\n"))
                print_payload(buf + 3);
        else if (startswith(buf, "ok: "))
                print_payload(buf + 4);
        else
                print_payload(buf);
        return startswith(buf, "ok") ? 0 : 1;
}

int control_client_count(const char *path, const char *request, usec_t timeout, uint64_t *ret, bool *ret_unseen) {
        _cleanup_free_ char *buf = NULL;
        const char *v;
        char *end;
        int r;

        r = call_reporting(path, request, timeout, &buf);
        if (r != 0)
                return r;
        v = startswith(buf, "ok: ");
        errno = 0;
        if (v && *v >= '0' && *v <= '9') {
                unsigned long long n = strtoull(v, &end, 10);

                if (errno == 0 && (streq(end, "\n") || streq(end, " unseen\n"))) {
                        *ret = n;
                        *ret_unseen = streq(end, " unseen\n");
                        return 0;
                }
        }
        fprintf(stderr, "corral: malformed reply to '%s': %.80s\n", request, buf);
        return 1;
}
