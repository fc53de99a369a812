/* SPDX-License-Identifier: MIT */
/* A relayed worker output: a pipe read from the loop, cut into lines, each handed whole to its sink. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "relay-stream.h"

/* Read per dispatch, so that a chatty worker cannot hold the loop: the rest waits for the next one. */
#define RELAY_READ_BUDGET (64U * 1024U)
/* Read at the end: a grandchild still writing cannot keep the drain going for ever. */
#define RELAY_DRAIN_MAX (4U * 1024U * 1024U)

struct RelayStream {
        RelaySink *sink;
        int fd; /* the read end */
        sd_event_source *source;
        /* "[SLOT PID] " and "[SLOT PID+] "; for JSON, the object's first members and "" */
        char prefix[96], prefix_more[48];
        size_t prefix_len, prefix_more_len;
        bool json, is_stderr;
        bool eof;
        size_t len; /* bytes of an unfinished line in buf */
        char buf[RELAY_LINE_MAX];
};

int relay_stream_new(RelaySink *sink, RelayStream **ret, int *ret_write_fd) {
        RelayStream *s;
        int p[2];

        s = malloc(sizeof(RelayStream));
        if (!s)
                return -ENOMEM;
        if (pipe2(p, O_CLOEXEC) < 0) {
                int r = -errno;

                free(s);
                return r;
        }
        /* Only our end is non-blocking: the worker writes as it would to a terminal, and waits when the pipe
         * is full. */
        (void) fcntl(p[0], F_SETFL, O_NONBLOCK);
        *s = (RelayStream) { .sink = sink, .fd = p[0] };
        *ret = s;
        *ret_write_fd = p[1];
        return 0;
}

int relay_stream_adopt(RelaySink *sink, int fd, RelayStream **ret) {
        RelayStream *s = malloc(sizeof(RelayStream));

        if (!s)
                return -ENOMEM;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                int r = -errno;
                free(s);
                return r;
        }
        *s = (RelayStream) { .sink = sink, .fd = fd };
        *ret = s;
        return 0;
}

int relay_stream_fd(const RelayStream *s) {
        return s->fd;
}

/* A line as one JSON object: the members the stream starts with, the time, the level (a syslog "<N>" in
 * front of the line sets it, as in the journal), the message, and whether it is a piece of a longer line. */
static void stream_emit_json(RelayStream *s, const char *p, size_t n, bool more) {
        static char out[JSON_ESCAPE_MAX(RELAY_LINE_MAX) + 256];
        int level = s->is_stderr ? LOG_WARNING : LOG_INFO;
        char *o = out;

        if (n >= 3 && p[0] == '<' && p[1] >= '0' && p[1] <= '7' && p[2] == '>') {
                level = p[1] - '0';
                p += 3;
                n -= 3;
        }
        o = mempcpy(o, s->prefix, s->prefix_len);
        o = mempcpy(o, "\"time\":", 7);
        o += json_time(o, now_usec(CLOCK_REALTIME));
        o += sprintf(o, ",\"level\":\"%s\",\"message\":\"", log_level_to_string(level));
        o += json_escape(o, p, n);
        o = stpcpy(o, more ? "\",\"partial\":true}" : "\"}");
        (void) relay_sink_line(s->sink, "", 0, out, (size_t) (o - out));
}

static void stream_emit(RelayStream *s, const char *p, size_t n, bool more) {
        if (s->json)
                stream_emit_json(s, p, n, more);
        else if (more)
                (void) relay_sink_line(s->sink, s->prefix_more, s->prefix_more_len, p, n);
        else
                (void) relay_sink_line(s->sink, s->prefix, s->prefix_len, p, n);
}

/* Hands on every complete line in buf, and a full buffer without one as a piece; keeps the rest. */
static void stream_split(RelayStream *s) {
        const char *p = s->buf, *end = s->buf + s->len, *nl;

        while ((nl = memchr(p, '\n', (size_t) (end - p)))) {
                stream_emit(s, p, (size_t) (nl - p), false);
                p = nl + 1;
        }
        if (p == s->buf && s->len == sizeof s->buf) {
                stream_emit(s, p, s->len, true);
                p = end;
        }
        s->len = (size_t) (end - p);
        if (s->len > 0 && p != s->buf)
                memmove(s->buf, p, s->len);
}

/* Reads up to budget bytes. Returns the bytes read. */
static size_t stream_read(RelayStream *s, size_t budget) {
        size_t total = 0;

        while (!s->eof && total < budget) {
                ssize_t k = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        break;
                if (k <= 0) {
                        /* EOF (or a read error, which ends the stream too): a last line without its
                         * newline still goes out. */
                        s->eof = true;
                        if (s->len > 0)
                                stream_emit(s, s->buf, s->len, false);
                        s->len = 0;
                        break;
                }
                s->len += (size_t) k;
                total += (size_t) k;
                stream_split(s);
        }
        return total;
}

static int on_readable(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        RelayStream *s = userdata;

        (void) stream_read(s, RELAY_READ_BUDGET);
        if (s->eof)
                (void) sd_event_source_set_enabled(src, SD_EVENT_OFF);
        return 0;
}

int relay_stream_start(RelayStream *s, sd_event *e, int64_t priority, const RelayLabel *l) {
        int r;

        s->json = l->json;
        s->is_stderr = l->is_stderr;
        if (l->json)
                s->prefix_len = (size_t) snprintf(s->prefix, sizeof s->prefix,
                                                  "{\"source\":\"worker\",\"slot\":%u,\"pid\":%d,\"stream\":\"%s\",",
                                                  l->slot, (int) l->pid, l->is_stderr ? "stderr" : "stdout");
        else {
                s->prefix_len = (size_t) snprintf(s->prefix, sizeof s->prefix, "[%u %d] ", l->slot, (int) l->pid);
                s->prefix_more_len = (size_t) snprintf(s->prefix_more, sizeof s->prefix_more, "[%u %d+] ",
                                                       l->slot, (int) l->pid);
        }
        r = sd_event_add_io(e, &s->source, s->fd, EPOLLIN, on_readable, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(s->source, priority);
        (void) sd_event_source_set_description(s->source, "worker-output");
        return 0;
}

RelayStream *relay_stream_free(RelayStream *s) {
        if (!s)
                return NULL;
        s->source = sd_event_source_disable_unref(s->source);
        /* The tail the worker wrote just before it exited may not have been read yet: child exits are
         * dispatched before output. */
        if (s->prefix_len > 0) {
                (void) stream_read(s, RELAY_DRAIN_MAX);
                if (s->len > 0)
                        stream_emit(s, s->buf, s->len, false);
        }
        (void) close(s->fd);
        free(s);
        return NULL;
}
