/* SPDX-License-Identifier: MIT */
/* Control socket server (bounded: connection count, request size and deadline, reply deadline; replies of
 * any size written from the loop) and its client. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "unix-path.h"

#define CONTROL_CONNECTIONS_MAX 64
/* A request is one short message that a client sends right after connect(): a second is plenty, and a client
 * that sends nothing gives its place back soon, for an operator who may need it. */
#define CONTROL_REQUEST_TIMEOUT_USEC (1 * USEC_PER_SEC)
/* What a client that does not read its reply may cost: the reply's memory, for this long. */
#define CONTROL_REPLY_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* Up to a batch of connections per wakeup, and at most a burst of wakeups per interval (800 connections a
 * second, far more than operators make). */
#define CONTROL_ACCEPT_BATCH 16
#define CONTROL_ACCEPT_BURST 5
#define CONTROL_ACCEPT_INTERVAL_USEC (100 * USEC_PER_MSEC)
#define CONTROL_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)
/* How often a held connection (`reload --wait`) hears that corral is still at it: with the loop's timer
 * slack (250 ms), well within a client's shortest sensible timeout of a second. */
#define CONTROL_KEEPALIVE_INTERVAL_USEC (400 * USEC_PER_MSEC)

typedef enum ConnectionState {
        CONNECTION_READING,  /* no request yet: may make room for a newcomer */
        CONNECTION_HANDLING, /* in the handler */
        CONNECTION_HELD,     /* a waiter, answered by control_server_finish_waiters() */
        CONNECTION_WRITING,  /* the reply goes out as the client reads it */
} ConnectionState;

struct ControlConnection {
        ControlServer *server;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        ConnectionState state;
        bool refused; /* the peer may not use us: its request is read, then refused */
        pid_t pid;    /* the peer's, 0 if unknown */
        char *reply;  /* the part of the reply that did not go out at once, its NUL included */
        size_t reply_size, written;
        ControlConnection *prev, *next; /* newest first */
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
        ControlConnection *handling; /* the connection in the handler, NULL once it is freed */
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
        if (streq(s, "summary"))
                return CONTROL_SUMMARY;
        if (streq(s, "connections"))
                return CONTROL_CONNECTIONS;
        if (streq(s, "upgrade"))
                return CONTROL_UPGRADE;
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
        if (s->handling == c)
                s->handling = NULL;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        free(c->reply);
        free(c);
}

/* Sends as much of data as the socket takes now, in messages the kernel accepts whole. Returns the bytes
 * sent, or a negative errno when the connection is broken. */
static ssize_t connection_send(ControlConnection *c, const char *data, size_t size) {
        size_t sent = 0, message = CONTROL_MESSAGE_MAX;
        socklen_t len = sizeof(int);
        int sndbuf;

        /* A SOCK_SEQPACKET message larger than the send buffer fails with EMSGSIZE; half of it leaves room
         * for one more in flight. */
        if (getsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) >= 0 && sndbuf > 0)
                message = MIN(message, (size_t) sndbuf / 2);
        while (sent < size) {
                ssize_t n = send(c->fd, data + sent, MIN(size - sent, message), MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                sent += n;
        }
        return sent;
}

void control_reply(ControlConnection *c, const char *text) {
        size_t size = strlen(text) + 1; /* the NUL tells the client it has the whole reply */
        ssize_t sent;

        c->state = CONNECTION_WRITING;
        /* Most replies fit into the socket at once; a larger one is copied and goes out as the client
         * reads it, so the loop never waits for a client. */
        sent = connection_send(c, text, size);
        if (sent < 0 || (size_t) sent == size) {
                connection_free(c);
                return;
        }
        c->reply_size = size - sent;
        c->reply = malloc(c->reply_size);
        if (c->reply)
                memcpy(c->reply, text + sent, c->reply_size);
        /* Closing cuts the reply short, which the client notices: out of memory, that is all we can do. */
        if (!c->reply || sd_event_source_set_io_events(c->io, EPOLLOUT) < 0 ||
            sd_event_source_set_time_relative(c->timer, CONTROL_REPLY_TIMEOUT_USEC) < 0 ||
            sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                connection_free(c);
}

/* A keepalive to a waiter, at once and then every interval: its client times out on silence, not on the
 * length of a roll. One that does not fit now (the client does not read) is skipped. */
static void connection_keepalive(ControlConnection *c) {
        static const char keepalive = CONTROL_KEEPALIVE;

        (void) send(c->fd, &keepalive, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sd_event_source_set_time_relative(c->timer, CONTROL_KEEPALIVE_INTERVAL_USEC) < 0 ||
            sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
}

void control_hold(ControlConnection *c) {
        c->state = CONNECTION_HELD;
        connection_keepalive(c);
}

void control_server_finish_waiters(ControlServer *s, const char *text) {
        ControlConnection *c = s->connections, *next;

        for (; c; c = next) {
                next = c->next;
                if (c->state == CONNECTION_HELD)
                        control_reply(c, text);
        }
}

static int on_connection_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        ControlConnection *c = userdata;

        if (c->state == CONNECTION_WRITING)
                connection_free(c); /* the client sees its reply cut short */
        else if (c->state == CONNECTION_HELD)
                connection_keepalive(c);
        else
                control_reply(c, "error: no request received in time\n");
        return 0;
}

static void connection_write(ControlConnection *c) {
        ssize_t sent = connection_send(c, c->reply + c->written, c->reply_size - c->written);

        if (sent < 0 || c->written + sent == c->reply_size) {
                connection_free(c);
                return;
        }
        c->written += sent;
}

static void connection_read(ControlConnection *c) {
        ControlServer *s = c->server;
        char buf[CONTROL_REQUEST_MAX + 1];
        ControlCommand cmd;
        unsigned arg = 0;
        ssize_t n;

        n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        connection_free(c);
                return;
        }
        if (n == 0) {
                connection_free(c);
                return;
        }
        if ((size_t) n > CONTROL_REQUEST_MAX) {
                control_reply(c, "error: request too long\n");
                return;
        }
        if (c->refused) {
                control_reply(c, "error: permission denied\n");
                return;
        }
        /* The parser sees a C string: what follows a NUL would be dropped unseen. */
        if (memchr(buf, 0, n)) {
                control_reply(c, "error: request contains a NUL byte\n");
                return;
        }
        buf[n] = 0;
        if (buf[n - 1] == '\n')
                buf[n - 1] = 0;

        cmd = control_parse_request(buf, &arg);
        if (cmd < 0) {
                control_reply(c, "error: unknown request; expected reload [--wait], status [--json], summary, recycle SLOT, drain, undrain, connections or upgrade\n");
                return;
        }

        c->state = CONNECTION_HANDLING;
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        s->handling = c;
        s->handler(s, c, cmd, arg, s->userdata);
        if (s->handling && s->handling->state == CONNECTION_HANDLING)
                control_reply(s->handling, "error: request not handled\n");
        s->handling = NULL;
}

static int on_connection_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        ControlConnection *c = userdata;

        switch (c->state) {
        case CONNECTION_READING:
                connection_read(c);
                break;
        case CONNECTION_WRITING:
                if (revents & (EPOLLHUP | EPOLLERR))
                        connection_free(c);
                else
                        connection_write(c);
                break;
        default:
                /* A waiter only ever hangs up. */
                connection_free(c);
        }
        return 0;
}

/* Makes room for a newcomer: a connection that has not sent a request (none is queued either) is told so
 * and closed: of the process that holds the most connections, the one idle longest. So a client that hoards
 * connections loses its own first, and a `corral status` caught between connect() and send() last. Returns
 * false when every connection is busy (handled, held or being answered). */
static bool connection_evict(ControlServer *s) {
        ControlConnection *victim = NULL;
        unsigned victim_holds = 0;

        for (ControlConnection *c = s->connections; c; c = c->next) {
                unsigned holds = 0;
                int queued = 0;

                if (c->state != CONNECTION_READING || ioctl(c->fd, FIONREAD, &queued) < 0 || queued > 0)
                        continue;
                for (ControlConnection *d = s->connections; d; d = d->next)
                        holds += d->pid == c->pid;
                /* The list is newest first: on a tie, the later one is older. */
                if (holds >= victim_holds) {
                        victim = c;
                        victim_holds = holds;
                }
        }
        if (!victim)
                return false;
        control_reply(victim, "error: too many connections\n");
        return true;
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
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                c->refused = true;
        else {
                c->refused = cred.uid != 0 && cred.uid != geteuid();
                c->pid = cred.pid;
        }
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
        static const char busy[] = "error: too many connections\n"; /* its NUL ends the reply */
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
                /* Full of clients that are served or waited on: nothing to take back from them. */
                if (s->n_connections >= CONTROL_CONNECTIONS_MAX && !connection_evict(s)) {
                        (void) send(cfd, busy, sizeof busy, MSG_DONTWAIT | MSG_NOSIGNAL);
                        continue;
                }
                if (connection_new(s, cfd) >= 0)
                        TAKE_FD(cfd);
        }
        return 0;
}

static ControlServer *control_server_alloc(sd_event *e, const char *path, int64_t priority,
                                          control_handler_t handler, void *userdata) {
        ControlServer *s = calloc(1, sizeof(ControlServer));

        if (!s)
                return NULL;
        s->fd = -EBADF;
        s->event = sd_event_ref(e);
        s->priority = priority;
        s->handler = handler;
        s->userdata = userdata;
        s->path = strdup(path);
        if (!s->path)
                return control_server_free(s);
        return s;
}

/* Accepts from s->fd, listening already. */
static int control_server_serve(ControlServer *s) {
        int r;

        r = sd_event_add_io(s->event, &s->io, s->fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(s->io, s->priority);
        (void) sd_event_source_set_description(s->io, "control");
        /* When accept() fails for lack of fds or memory, the connection stays queued and the socket
         * readable: retrying at once would spin at 100 % of a core. The rate limit rests the source for the
         * rest of the interval instead, whatever the cause. */
        return sd_event_source_set_ratelimit(s->io, CONTROL_ACCEPT_INTERVAL_USEC, CONTROL_ACCEPT_BURST);
}

int control_server_new(sd_event *e, const char *path, int64_t priority, control_handler_t handler,
                       void *userdata, ControlServer **ret) {
        _cleanup_(control_server_freep) ControlServer *s = control_server_alloc(e, path, priority, handler, userdata);
        int r;

        if (!s)
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
        r = control_server_serve(s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int control_server_adopt(sd_event *e, int fd, const char *path, const UnixPathId *path_id, int64_t priority,
                         control_handler_t handler, void *userdata, ControlServer **ret) {
        _cleanup_(control_server_freep) ControlServer *s = control_server_alloc(e, path, priority, handler, userdata);
        int type = 0, listening = 0, r;

        if (!s) {
                safe_close(fd);
                return -ENOMEM;
        }
        s->fd = fd;
        s->path_id = *path_id;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t) { sizeof type }) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &(socklen_t) { sizeof listening }) < 0)
                return -errno;
        if (type != SOCK_SEQPACKET || !listening)
                return -ENOTSOCK;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        r = control_server_serve(s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int control_server_adopt_waiter(ControlServer *s, int fd) {
        int r;

        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        r = connection_new(s, fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        control_hold(s->connections); /* connection_new() puts the newest first */
        return 0;
}

int control_server_fd(const ControlServer *s, UnixPathId *ret_path_id) {
        if (ret_path_id)
                *ret_path_id = s->path_id;
        return s->fd;
}

unsigned control_server_n_busy(const ControlServer *s) {
        unsigned n = 0;

        for (const ControlConnection *c = s->connections; c; c = c->next)
                n += c->state != CONNECTION_HELD;
        return n;
}

int control_server_waiter_fds(const ControlServer *s, int **ret, size_t *ret_n) {
        size_t n = 0;
        int *fds;

        for (const ControlConnection *c = s->connections; c; c = c->next)
                n += c->state == CONNECTION_HELD;
        fds = calloc(MAX(n, 1U), sizeof(int));
        if (!fds)
                return -ENOMEM;
        n = 0;
        for (const ControlConnection *c = s->connections; c; c = c->next)
                if (c->state == CONNECTION_HELD)
                        fds[n++] = c->fd;
        *ret = fds;
        *ret_n = n;
        return 0;
}

int control_connection_fd(const ControlConnection *c) {
        return c->fd;
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
