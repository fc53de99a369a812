/* SPDX-License-Identifier: MIT */
/* Control socket server (bounded: connection count, request size, request timeout) and its client. */
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "unix-path.h"

#define CONTROL_CONNECTIONS_MAX 64
#define CONTROL_REQUEST_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* Up to a batch of connections per wakeup, and at most a burst of wakeups per interval (800 connections a
 * second, far more than operators make). */
#define CONTROL_ACCEPT_BATCH 16
#define CONTROL_ACCEPT_BURST 5
#define CONTROL_ACCEPT_INTERVAL_USEC (100 * USEC_PER_MSEC)
#define CONTROL_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)

struct ControlConnection {
        ControlServer *server;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        bool held;
        bool replied;
        bool refused; /* the peer may not use us: its request is read, then refused */
        ControlConnection *prev, *next;
};

struct ControlServer {
        sd_event *event;
        int fd;
        char *path;
        UnixPathId path_id;
        sd_event_source *io;
        usec_t accept_logged_usec;
        int64_t priority;
        control_handler_t handler;
        void *userdata;
        ControlConnection *connections;
        unsigned n_connections;
};

ControlCommand control_parse_request(const char *s, unsigned *ret_arg) {
        const char *v;
        char *end;
        unsigned long n;

        if (streq(s, "reload"))
                return CONTROL_RELOAD;
        if (streq(s, "reload --wait"))
                return CONTROL_RELOAD_WAIT;
        if (streq(s, "status"))
                return CONTROL_STATUS;
        if (streq(s, "status --json"))
                return CONTROL_STATUS_JSON;
        if (streq(s, "drain"))
                return CONTROL_DRAIN;
        if (streq(s, "undrain"))
                return CONTROL_UNDRAIN;
        /* One spelling per slot, the one status prints: "007" is refused rather than guessed at (octal to
         * some readers). */
        if ((v = startswith(s, "recycle ")) && *v >= '0' && *v <= '9' && (v[0] != '0' || !v[1])) {
                errno = 0;
                n = strtoul(v, &end, 10);
                if (errno == 0 && !*end && n < 100000) {
                        *ret_arg = (unsigned) n;
                        return CONTROL_RECYCLE;
                }
        }
        return _CONTROL_COMMAND_INVALID;
}

static void connection_free(ControlConnection *c) {
        ControlServer *s = c->server;

        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_connections--;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        free(c);
}

void control_reply(ControlConnection *c, const char *text) {
        /* Best effort and non-blocking: a client that went away or does not read loses its answer, the
         * loop never waits for it. */
        (void) send(c->fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
        c->replied = true;
        connection_free(c);
}

void control_hold(ControlConnection *c) {
        c->held = true;
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
}

void control_server_finish_waiters(ControlServer *s, const char *text) {
        ControlConnection *c = s->connections, *next;

        for (; c; c = next) {
                next = c->next;
                if (c->held)
                        control_reply(c, text);
        }
}

static int on_connection_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        control_reply(userdata, "error: no request received in time\n");
        return 0;
}

static int on_connection_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        ControlConnection *c = userdata;
        ControlServer *s = c->server;
        char buf[CONTROL_REQUEST_MAX + 1];
        ControlCommand cmd;
        unsigned arg = 0;
        ssize_t n;

        if (c->held) {
                /* A waiter only ever hangs up. */
                if (revents & (EPOLLHUP | EPOLLERR | EPOLLIN))
                        connection_free(c);
                return 0;
        }

        n = recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                connection_free(c);
                return 0;
        }
        if (n == 0) {
                connection_free(c);
                return 0;
        }
        if ((size_t) n > CONTROL_REQUEST_MAX) {
                control_reply(c, "error: request too long\n");
                return 0;
        }
        if (c->refused) {
                control_reply(c, "error: permission denied\n");
                return 0;
        }
        /* The parser sees a C string: what follows a NUL would be dropped unseen. */
        if (memchr(buf, 0, n)) {
                control_reply(c, "error: request contains a NUL byte\n");
                return 0;
        }
        buf[n] = 0;
        if (buf[n - 1] == '\n')
                buf[n - 1] = 0;

        cmd = control_parse_request(buf, &arg);
        if (cmd < 0) {
                control_reply(c, "error: unknown request; expected reload [--wait], status [--json], recycle SLOT, drain or undrain\n");
                return 0;
        }

        s->handler(s, c, cmd, arg, s->userdata);
        return 0;
}

static int connection_new(ControlServer *s, int fd) {
        ControlConnection *c;
        struct ucred cred;
        socklen_t len = sizeof cred;
        int r;

        c = calloc(1, sizeof(ControlConnection));
        if (!c)
                return -ENOMEM;
        c->server = s;
        /* The socket file is 0600 already; the peer check holds even if someone loosens that. The refusal
         * comes after the request is read: closing with it unread would reset the connection and lose the
         * answer. */
        c->refused = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
                     (cred.uid != 0 && cred.uid != geteuid());
        c->fd = fd;
        c->next = s->connections;
        if (c->next)
                c->next->prev = c;
        s->connections = c;
        s->n_connections++;

        r = sd_event_add_io(s->event, &c->io, c->fd, EPOLLIN, on_connection_io, c);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &c->timer, CLOCK_MONOTONIC, CONTROL_REQUEST_TIMEOUT_USEC,
                                               0, on_connection_timeout, c);
        if (r < 0) {
                c->fd = -EBADF; /* the caller still owns it */
                connection_free(c);
                return r;
        }
        (void) sd_event_source_set_priority(c->io, s->priority);
        (void) sd_event_source_set_priority(c->timer, s->priority);
        (void) sd_event_source_set_description(c->io, "control-connection");
        (void) sd_event_source_set_description(c->timer, "control-timeout");
        return 0;
}

/* Nobody else sees this (no request arrives to fail), so it is logged here, once in a while. */
static void accept_failed(ControlServer *s, int error) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (s->accept_logged_usec == 0 || now - s->accept_logged_usec >= CONTROL_LOG_INTERVAL_USEC) {
                s->accept_logged_usec = now;
                log_warning_errno(error, "Cannot accept on the control socket '%s', will retry: %m", s->path);
        }
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        static const char busy[] = "error: too many connections\n";
        ControlServer *s = userdata;

        /* A batch per wakeup, so that a flood of connections cannot starve the rest of the loop. */
        for (unsigned i = 0; i < CONTROL_ACCEPT_BATCH; i++) {
                _cleanup_close_ int cfd = -EBADF;

                cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (cfd < 0) {
                        if (errno == EAGAIN)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                accept_failed(s, errno);
                                return 0;
                        }
                        /* ECONNABORTED and such concern that one connection. */
                        continue;
                }
                if (s->n_connections >= CONTROL_CONNECTIONS_MAX) {
                        (void) send(cfd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                        continue;
                }
                if (connection_new(s, cfd) >= 0)
                        TAKE_FD(cfd);
        }
        return 0;
}

int control_server_new(sd_event *e, const char *path, int64_t priority, control_handler_t handler,
                       void *userdata, ControlServer **ret) {
        _cleanup_(control_server_freep) ControlServer *s = NULL;
        int r;

        s = calloc(1, sizeof(ControlServer));
        if (!s)
                return -ENOMEM;
        s->fd = -EBADF;
        s->event = sd_event_ref(e);
        s->priority = priority;
        s->handler = handler;
        s->userdata = userdata;

        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;
        s->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s->fd < 0)
                return -errno;
        /* Created 0600 from the start: no window where another user could connect. */
        r = unix_path_bind(s->fd, path, 0600, &s->path_id);
        if (r < 0)
                return r;
        if (listen(s->fd, 16) < 0)
                return -errno;

        r = sd_event_add_io(e, &s->io, s->fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(s->io, priority);
        (void) sd_event_source_set_description(s->io, "control");
        /* When accept() fails for lack of fds or memory, the connection stays queued and the socket
         * readable: retrying at once would spin at 100 % of a core. The rate limit rests the source for the
         * rest of the interval instead, whatever the cause. */
        r = sd_event_source_set_ratelimit(s->io, CONTROL_ACCEPT_INTERVAL_USEC, CONTROL_ACCEPT_BURST);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

ControlServer *control_server_free(ControlServer *s) {
        if (!s)
                return NULL;
        while (s->connections)
                connection_free(s->connections);
        sd_event_source_disable_unref(s->io);
        /* Unlink before close: once closed, another corral may bind the path and we would remove its socket.
         * And only our own: someone may have put something else there meanwhile. */
        if (s->path)
                (void) unix_path_unlink_own(s->path, &s->path_id);
        safe_close(s->fd);
        free(s->path);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

char *control_default_path(void) {
        const char *d = getenv("RUNTIME_DIRECTORY");
        size_t n;

        if (isempty(d))
                return NULL;
        /* systemd separates several RuntimeDirectory= entries with ':'; use the first. */
        n = strcspn(d, ":");
        return strdup_printf("%.*s/control", (int) n, d);
}

int control_client_run(const char *path, const char *request) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        ssize_t n, sent;
        int send_errno;

        if (strlen(path) >= sizeof sa.sun_path) {
                fprintf(stderr, "corral: control socket path too long: %s\n", path);
                return 1;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                fprintf(stderr, "corral: socket: %m\n");
                return 1;
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                if (errno == EACCES || errno == EPERM) {
                        fprintf(stderr, "corral: permission denied: '%s' is for root and corral's own user\n", path);
                        return 4;
                }
                fprintf(stderr, "corral: not running (cannot connect to '%s': %m)\n", path);
                return 3;
        }
        /* corral may answer and close before reading anything (a refused peer): then sending fails, but
         * its answer is waiting, so read it either way. */
        sent = send(fd, request, strlen(request), MSG_NOSIGNAL);
        send_errno = errno;

        buf = malloc(CONTROL_REPLY_MAX + 1);
        if (!buf)
                return 1;
        do
                n = recv(fd, buf, CONTROL_REPLY_MAX, sent < 0 ? MSG_DONTWAIT : 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
                if (sent < 0)
                        fprintf(stderr, "corral: failed to send the request: %s\n", strerror(send_errno));
                else
                        fprintf(stderr, "corral: no reply (%s)\n", n < 0 ? strerror(errno) : "connection closed");
                return 1;
        }
        buf[n] = 0;

        if (startswith(buf, "error: ")) {
                fprintf(stderr, "corral: %s", buf + 7);
                /* corral checked our credentials (SO_PEERCRED) and refused them. */
                return startswith(buf, "error: permission denied") ? 4 : 1;
        }
        /* "ok\n" or "degraded\n" then the payload, or "ok: message\n". A degraded pool is an answer, but
         * not a healthy one: exit 1, as `systemctl is-active` style scripts expect. */
        if (startswith(buf, "degraded\n")) {
                fputs(buf + 9, stdout);
                return 1;
        }
        if (startswith(buf, "ok\n"))
                fputs(buf + 3, stdout);
        else if (startswith(buf, "ok: "))
                fputs(buf + 4, stdout);
        else
                fputs(buf, stdout);
        return startswith(buf, "ok") ? 0 : 1;
}
