/* SPDX-License-Identifier: MIT */
/* The worker notify socket and corral's own notifications to systemd. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <fcntl.h>

#include "notify.h"

struct NotifySocket {
        int fd;
        sd_event_source *source;
        sd_event_source *resume;
        int64_t priority;
        char address[64];
        notify_handler_t handler;
        void *userdata;
        uint64_t rejected;
        usec_t window_usec;
        unsigned window_rejects;
};

int notify_message_parse(char *buf, size_t size, NotifyMessage *ret) {
        NotifyMessage m = {};
        char *line = buf, *end = buf + size;

        if (memchr(buf, 0, size))
                return -EBADMSG;
        buf[size] = 0;

        while (line < end) {
                char *nl = strchr(line, '\n');
                const char *v;

                if (nl)
                        *nl = 0;
                if (*line) {
                        if (!strchr(line, '='))
                                return -EBADMSG;
                        if ((v = startswith(line, "READY=")))
                                m.ready = streq(v, "1");
                        else if ((v = startswith(line, "STOPPING=")))
                                m.stopping = streq(v, "1");
                        else if ((v = startswith(line, "WATCHDOG=")))
                                m.watchdog = streq(v, "1");
                        else if ((v = startswith(line, "RECYCLE=")))
                                m.recycle = streq(v, "1");
                        else if ((v = startswith(line, "RELOADING=")))
                                m.reloading = streq(v, "1");
                        else if ((v = startswith(line, "STATUS=")))
                                m.status = v;
                }
                if (!nl)
                        break;
                line = nl + 1;
        }
        *ret = m;
        return 0;
}

static void notify_receive_one(NotifySocket *n, char *buf, bool *ret_again) {
        union {
                struct cmsghdr hdr;
                uint8_t buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 16)];
        } control;
        struct iovec iov = { buf, NOTIFY_BUFFER_MAX };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        struct ucred *cred = NULL;
        int fds[16];
        size_t n_fds = 0;
        NotifyMessage m;
        ssize_t len;

        *ret_again = false;
        len = recvmsg(n->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
        if (len < 0)
                return; /* EAGAIN: drained. Anything else is not worth stopping the loop for. */
        *ret_again = true;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET)
                        continue;
                if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
                        cred = (struct ucred *) CMSG_DATA(c);
                else if (c->cmsg_type == SCM_RIGHTS) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k && n_fds < ELEMENTSOF(fds); i++)
                                memcpy(&fds[n_fds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                }
        }

        if (cred && cred->pid <= 0)
                cred = NULL;
        if (!cred || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t) len > NOTIFY_BUFFER_MAX ||
            notify_message_parse(buf, (size_t) len, &m) < 0) {
                notify_socket_reject(n);
                /* Tell the receiver too (message NULL), so it can log it; it must not count it again. */
                n->handler(n, cred, NULL, n->userdata);
        } else
                n->handler(n, cred, &m, n->userdata);

        /* corral keeps no fd store: passed fds are closed, but only now. The one a BARRIER=1 carries holds
         * its sender (systemd-notify, a worker's helper) until it is closed; closed before the handler
         * ran, the sender could exit and be reaped before the handler traces it to its worker. */
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
}

static int on_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        NotifySocket *n = userdata;

        (void) sd_event_source_set_enabled(n->source, SD_EVENT_ON);
        return 0;
}

/* Stops reading until the window ends; without a timer to resume, reading goes on. */
static void notify_socket_pause(NotifySocket *n) {
        usec_t until = n->window_usec + NOTIFY_REJECT_WINDOW_USEC;
        int r;

        if (!n->resume) {
                /* Accuracy 0 would mean sd-event's default of 250 ms: far longer than the pause. */
                r = sd_event_add_time(sd_event_source_get_event(n->source), &n->resume, CLOCK_MONOTONIC,
                                      until, USEC_PER_MSEC, on_resume, n);
                if (r < 0)
                        return;
                (void) sd_event_source_set_priority(n->resume, n->priority);
                (void) sd_event_source_set_description(n->resume, "worker-notify-resume");
        } else if (sd_event_source_set_time(n->resume, until) < 0 ||
                   sd_event_source_set_enabled(n->resume, SD_EVENT_ONESHOT) < 0)
                return;
        (void) sd_event_source_set_enabled(n->source, SD_EVENT_OFF);
}

static int on_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        NotifySocket *n = userdata;
        char buf[NOTIFY_BUFFER_MAX + 1];
        bool again = true;

        /* Drain a bounded batch, so a flood of datagrams cannot starve child exits and timers. */
        for (unsigned i = 0; i < 64 && again; i++) {
                notify_receive_one(n, buf, &again);
                if (n->window_rejects >= NOTIFY_REJECT_BURST &&
                    now_usec(CLOCK_MONOTONIC) < n->window_usec + NOTIFY_REJECT_WINDOW_USEC) {
                        notify_socket_pause(n);
                        break;
                }
        }
        return 0;
}

/* Serves n->fd, bound already, from the loop. */
static int notify_socket_serve(NotifySocket *n, sd_event *e) {
        int r;

        r = sd_event_add_io(e, &n->source, n->fd, EPOLLIN, on_notify, n);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(n->source, n->priority);
        (void) sd_event_source_set_description(n->source, "worker-notify");
        return 0;
}

static NotifySocket *notify_socket_alloc(int64_t priority, notify_handler_t handler, void *userdata) {
        NotifySocket *n = calloc(1, sizeof(NotifySocket));

        if (!n)
                return NULL;
        n->fd = -EBADF;
        n->handler = handler;
        n->userdata = userdata;
        n->priority = priority;
        return n;
}

int notify_socket_new(sd_event *e, int64_t priority, notify_handler_t handler, void *userdata,
                      NotifySocket **ret) {
        _cleanup_(notify_socket_freep) NotifySocket *n = notify_socket_alloc(priority, handler, userdata);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint64_t nonce;
        size_t len;
        int one = 1, r;

        if (!n)
                return -ENOMEM;
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (n->fd < 0)
                return -errno;
        if (setsockopt(n->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
                return -errno;

        /* Abstract namespace: nothing on disk to clean up after a crash. The nonce keeps a restarted corral
         * with a recycled pid from colliding with a socket a stray worker still holds. */
        nonce = now_usec(CLOCK_MONOTONIC) ^ ((uint64_t) getpid() << 32);
        snprintf(n->address, sizeof n->address, "@corral/%d/%016llx", (int) getpid(), (unsigned long long) nonce);
        len = strlen(n->address);
        memcpy(sa.sun_path, n->address, len);
        sa.sun_path[0] = 0;
        if (bind(n->fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len)) < 0)
                return -errno;

        r = notify_socket_serve(n, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(n);
        return 0;
}

int notify_socket_adopt(sd_event *e, int fd, int64_t priority, notify_handler_t handler, void *userdata,
                        NotifySocket **ret) {
        _cleanup_(notify_socket_freep) NotifySocket *n = notify_socket_alloc(priority, handler, userdata);
        struct sockaddr_un sa = {};
        socklen_t salen = sizeof sa;
        size_t len;
        int type = 0, r;

        if (!n) {
                safe_close(fd);
                return -ENOMEM;
        }
        n->fd = fd;
        if (getsockname(fd, (struct sockaddr *) &sa, &salen) < 0)
                return -errno;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t) { sizeof type }) < 0)
                return -errno;
        len = salen - offsetof(struct sockaddr_un, sun_path);
        /* Only what notify_socket_new() makes: an abstract datagram socket named @corral/... */
        if (sa.sun_family != AF_UNIX || type != SOCK_DGRAM || salen <= offsetof(struct sockaddr_un, sun_path) ||
            sa.sun_path[0] != 0 || len >= sizeof n->address || len < 8 || memcmp(sa.sun_path + 1, "corral/", 7) != 0)
                return -ENOTSOCK;
        memcpy(n->address, sa.sun_path, len);
        n->address[0] = '@';
        n->address[len] = '\0';
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        r = notify_socket_serve(n, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(n);
        return 0;
}

int notify_socket_fd(const NotifySocket *n) {
        return n->fd;
}

NotifySocket *notify_socket_free(NotifySocket *n) {
        if (!n)
                return NULL;
        sd_event_source_disable_unref(n->source);
        sd_event_source_disable_unref(n->resume);
        safe_close(n->fd);
        free(n);
        return NULL;
}

const char *notify_socket_address(const NotifySocket *n) {
        return n->address;
}

uint64_t notify_socket_reject(NotifySocket *n) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (now - n->window_usec >= NOTIFY_REJECT_WINDOW_USEC) {
                n->window_usec = now;
                n->window_rejects = 0;
        }
        n->window_rejects++;
        return ++n->rejected;
}

uint64_t notify_socket_rejected(const NotifySocket *n) {
        return n->rejected;
}

void notify_socket_set_rejected(NotifySocket *n, uint64_t rejected) {
        n->rejected = rejected;
}

int notify_manager_ready(const char *status) {
        return sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

int notify_manager_status(const char *status) {
        return sd_notifyf(0, "STATUS=%s", status);
}

int notify_manager_stopping(const char *status) {
        return sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}

int notify_manager_reloading(const char *status) {
        /* systemd >= 253 fails a notify-reload without MONOTONIC_USEC=; always send the pair. */
        return sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s",
                          (unsigned long long) now_usec(CLOCK_MONOTONIC), status);
}

int notify_manager_extend_timeout(usec_t usec) {
        return sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long) usec);
}

int notify_manager_errno(int error) {
        return sd_notifyf(0, "ERRNO=%d", error < 0 ? -error : error);
}
