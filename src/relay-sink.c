/* SPDX-License-Identifier: MIT */
/* A sink of relayed lines: corral's stdout or stderr behind a bounded queue of whole lines. The loop never
 * waits for it: a full output is watched for room, and a line that finds the queue full is dropped. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay-sink.h"

struct RelaySink {
        int fd;         /* what is written to: our own description when own_fd, else the borrowed fd */
        bool own_fd;
        bool is_socket; /* written with send(MSG_DONTWAIT) */
        bool broken;    /* the output failed for good (EPIPE, EIO...): everything is dropped */
        bool waiting;   /* the output was full: the writability watch is on */

        /* buf[head, tail) holds whole lines, each ending in '\n'; only the first may have been written in
         * part, up to head. Nothing else is ever written to the output between the pieces of a line. */
        char *buf;
        size_t head, tail;

        sd_event_source *io_source;    /* EPOLLOUT; NULL where epoll cannot watch it (a regular file) */
        sd_event_source *notice_timer;
        uint64_t dropped, unreported;
        usec_t last_notice_usec;
        relay_sink_drop_handler_t on_drop;
        void *userdata;
};

size_t relay_sink_pending(const RelaySink *s) {
        return s->broken ? 0 : s->tail - s->head;
}

bool relay_same_file(int a, int b) {
        struct stat sa, sb;

        return fstat(a, &sa) >= 0 && fstat(b, &sb) >= 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

uint64_t relay_sink_dropped(const RelaySink *s) {
        return s->dropped;
}

/* Our own file description of fd's file, non-blocking: O_NONBLOCK set on a description we share would
 * reach the shell or the terminal that handed it to us (and every program that later inherits it). */
static int sink_open(RelaySink *s, int fd) {
        char path[32];
        struct stat st;
        int nfd, flags;

        if (fstat(fd, &st) < 0)
                return -errno;
        s->fd = fd;
        if (S_ISSOCK(st.st_mode)) {
                s->is_socket = true;
                return 0;
        }
        if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
                return 0; /* never full: plain writes */

        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        nfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (nfd < 0) {
                /* No /proc, or a FIFO that cannot be reopened: a copy of the shared description, made
                 * non-blocking after all. Better than a loop that waits on a terminal. */
                nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (nfd < 0)
                        return -errno;
                flags = fcntl(nfd, F_GETFL);
                if (flags < 0 || fcntl(nfd, F_SETFL, flags | O_NONBLOCK) < 0) {
                        int r = -errno;

                        (void) close(nfd);
                        return r;
                }
        }
        s->fd = nfd;
        s->own_fd = true;
        return 0;
}

static int on_notice(sd_event_source *t, uint64_t usec, void *userdata) {
        RelaySink *s = userdata;
        uint64_t n = s->unreported;

        s->unreported = 0;
        s->last_notice_usec = now_usec(CLOCK_MONOTONIC);
        if (n > 0 && s->on_drop)
                s->on_drop(s, n, s->userdata);
        return 0;
}

/* A burst of drops is told in one notice, a second after it began, and notices come at most every
 * RELAY_SINK_NOTICE_USEC. */
static void sink_drop(RelaySink *s, uint64_t lines) {
        usec_t now = now_usec(CLOCK_MONOTONIC), when;
        int enabled = SD_EVENT_OFF;

        if (lines == 0)
                return;
        s->dropped += lines;
        s->unreported += lines;
        if (!s->notice_timer || sd_event_source_get_enabled(s->notice_timer, &enabled) < 0 ||
            enabled != SD_EVENT_OFF)
                return;
        when = now + USEC_PER_SEC;
        if (s->last_notice_usec > 0)
                when = MAX(when, s->last_notice_usec + RELAY_SINK_NOTICE_USEC);
        if (sd_event_source_set_time(s->notice_timer, when) >= 0)
                (void) sd_event_source_set_enabled(s->notice_timer, SD_EVENT_ONESHOT);
}

static uint64_t count_lines(const char *p, size_t n) {
        uint64_t lines = 0;

        for (const char *end = p + n; (p = memchr(p, '\n', (size_t) (end - p))); p++)
                lines++;
        return lines;
}

/* The next write: the rest of the first line, then whole lines while the total stays within PIPE_BUF, so a
 * write of short lines is atomic on a pipe; a longer line goes alone. */
static size_t sink_chunk(const RelaySink *s) {
        const char *p = s->buf + s->head, *end = s->buf + s->tail, *nl;
        size_t n;

        nl = memchr(p, '\n', (size_t) (end - p));
        n = nl ? (size_t) (nl - p) + 1 : (size_t) (end - p);
        while (p + n < end) {
                nl = memchr(p + n, '\n', (size_t) (end - p - n));
                if (!nl || (size_t) (nl - p) + 1 > PIPE_BUF)
                        break;
                n = (size_t) (nl - p) + 1;
        }
        return n;
}

/* Writes until the queue is empty (0), the output is full (-EAGAIN), or it failed (-errno: the queue is
 * dropped and the sink broken). */
static int sink_flush(RelaySink *s) {
        while (s->head < s->tail) {
                size_t n = sink_chunk(s);
                ssize_t k;

                if (s->is_socket)
                        k = send(s->fd, s->buf + s->head, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                else
                        k = write(s->fd, s->buf + s->head, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        return -EAGAIN;
                if (k <= 0) {
                        int r = k < 0 ? -errno : -EIO;

                        sink_drop(s, count_lines(s->buf + s->head, s->tail - s->head));
                        s->head = s->tail = 0;
                        s->broken = true;
                        return r;
                }
                s->head += (size_t) k;
        }
        s->head = s->tail = 0;
        return 0;
}

static void sink_kick(RelaySink *s) {
        int r = sink_flush(s);

        s->waiting = r == -EAGAIN && s->io_source;
        if (s->io_source)
                (void) sd_event_source_set_enabled(s->io_source, s->waiting ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int on_writable(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        sink_kick(userdata);
        return 0;
}

bool relay_sink_line(RelaySink *s, const char *prefix, size_t prefix_len, const char *data, size_t n) {
        size_t need = prefix_len + n + 1;

        if (s->broken) {
                sink_drop(s, 1);
                return false;
        }
        if (RELAY_SINK_MAX - s->tail < need && s->head > 0) {
                memmove(s->buf, s->buf + s->head, s->tail - s->head);
                s->tail -= s->head;
                s->head = 0;
        }
        if (RELAY_SINK_MAX - s->tail < need) {
                sink_drop(s, 1);
                return false;
        }
        memcpy(s->buf + s->tail, prefix, prefix_len);
        memcpy(s->buf + s->tail + prefix_len, data, n);
        s->buf[s->tail + need - 1] = '\n';
        s->tail += need;
        if (!s->waiting)
                sink_kick(s);
        return true;
}

int relay_sink_new(sd_event *e, int fd, int64_t priority, relay_sink_drop_handler_t on_drop, void *userdata,
                   RelaySink **ret) {
        RelaySink *s;
        int r;

        s = calloc(1, sizeof(RelaySink));
        if (!s)
                return -ENOMEM;
        s->fd = -EBADF;
        s->on_drop = on_drop;
        s->userdata = userdata;
        s->buf = malloc(RELAY_SINK_MAX);
        r = s->buf ? sink_open(s, fd) : -ENOMEM;
        if (r < 0)
                goto fail;

        r = sd_event_add_io(e, &s->io_source, s->fd, EPOLLOUT, on_writable, s);
        if (r == -EPERM)
                s->io_source = NULL; /* a regular file: always writable, epoll refuses it */
        else if (r < 0)
                goto fail;
        else {
                (void) sd_event_source_set_enabled(s->io_source, SD_EVENT_OFF);
                (void) sd_event_source_set_priority(s->io_source, priority);
                (void) sd_event_source_set_description(s->io_source, "relay-sink");
        }
        r = sd_event_add_time(e, &s->notice_timer, CLOCK_MONOTONIC, USEC_INFINITY, 0, on_notice, s);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(s->notice_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_priority(s->notice_timer, priority);
        (void) sd_event_source_set_description(s->notice_timer, "relay-drop-notice");
        *ret = s;
        return 0;

fail:
        s->on_drop = NULL;
        relay_sink_free(s, 0);
        return r;
}

RelaySink *relay_sink_free(RelaySink *s, usec_t timeout_usec) {
        usec_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;

        if (!s)
                return NULL;
        /* At exit the loop is gone: wait for room here, but only so long. */
        while (s->head < s->tail && sink_flush(s) == -EAGAIN) {
                usec_t now = now_usec(CLOCK_MONOTONIC);
                struct pollfd p = { .fd = s->fd, .events = POLLOUT };

                if (now >= deadline || poll(&p, 1, (int) MAX((deadline - now) / USEC_PER_MSEC, 1U)) <= 0)
                        break;
        }
        sink_drop(s, count_lines(s->buf + s->head, s->tail - s->head));
        if (s->unreported > 0 && s->on_drop)
                s->on_drop(s, s->unreported, s->userdata);
        sd_event_source_disable_unref(s->io_source);
        sd_event_source_disable_unref(s->notice_timer);
        if (s->own_fd)
                (void) close(s->fd);
        free(s->buf);
        free(s);
        return NULL;
}
