/* SPDX-License-Identifier: MIT */
/* HAProxy's agent-check on the loop: each connection gets one line, then corral's half of it closes. What
 * HAProxy sends (agent-send) is read and dropped until it closes its half, so that closing never resets a
 * connection with unread data in it, which could cost HAProxy the line. */
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "event-pause.h"

#define AGENT_ACCEPT_BATCH 16
#define AGENT_ACCEPT_RETRY_USEC (100 * USEC_PER_MSEC)

typedef struct AgentConnection AgentConnection;

struct AgentConnection {
        AgentServer *server;
        int fd;
        sd_event_source *io, *timer;
        AgentConnection *prev, *next; /* newest first */
};

struct AgentServer {
        sd_event *event;
        int fd;
        int64_t priority;
        sd_event_source *io, *accept_retry;
        agent_answer_t answer;
        void *userdata;
        AgentConnection *connections, *oldest;
        unsigned n_connections;
        uint64_t n_answered;
};

static void connection_free(AgentConnection *c) {
        AgentServer *s = c->server;

        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                s->oldest = c->prev;
        s->n_connections--;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        free(c);
}

static int on_connection_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        AgentConnection *c = userdata;
        char buf[512];

        /* Whatever comes is dropped; a bounded read per wakeup, the rest at the next one. */
        for (unsigned i = 0; i < 8; i++) {
                ssize_t k = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

                if (k > 0)
                        continue;
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                break; /* the peer's end (0), or a reset */
        }
        connection_free(c);
        return 0;
}

static int on_connection_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        connection_free(userdata);
        return 0;
}

/* Answers cfd at once and keeps it until the peer closes its half, or AGENT_LINGER_USEC. Takes cfd. */
static void connection_answer(AgentServer *s, int cfd) {
        _cleanup_free_ char *line = s->answer(s, s->userdata);
        AgentConnection *c;

        /* A line of a few dozen bytes on a new connection always fits its send buffer. */
        if (!line || send(cfd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ||
            shutdown(cfd, SHUT_WR) < 0) {
                safe_close(cfd);
                return;
        }
        s->n_answered++;
        if (s->n_connections >= AGENT_CONNECTIONS_MAX)
                connection_free(s->oldest);
        c = calloc(1, sizeof(AgentConnection));
        if (!c) {
                safe_close(cfd);
                return;
        }
        *c = (AgentConnection) { .server = s, .fd = cfd, .next = s->connections };
        if (sd_event_add_io(s->event, &c->io, cfd, EPOLLIN | EPOLLRDHUP, on_connection_io, c) < 0 ||
            sd_event_add_time_relative(s->event, &c->timer, CLOCK_MONOTONIC, AGENT_LINGER_USEC, 0,
                                       on_connection_timeout, c) < 0) {
                sd_event_source_disable_unref(c->io);
                safe_close(cfd);
                free(c);
                return;
        }
        (void) sd_event_source_set_priority(c->io, s->priority);
        (void) sd_event_source_set_priority(c->timer, s->priority);
        if (s->connections)
                s->connections->prev = c;
        else
                s->oldest = c;
        s->connections = c;
        s->n_connections++;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        AgentServer *s = userdata;

        for (unsigned i = 0; i < AGENT_ACCEPT_BATCH; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd >= 0) {
                        connection_answer(s, cfd);
                        continue;
                }
                if (errno == EAGAIN)
                        return 0;
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        event_source_pause(s->io, &s->accept_retry, AGENT_ACCEPT_RETRY_USEC,
                                           "agent-accept-retry");
                        return 0;
                }
                /* ECONNABORTED and the like concern that one connection. */
        }
        return 0;
}

int agent_server_new(sd_event *e, int listen_fd, int64_t priority, agent_answer_t answer, void *userdata,
                     AgentServer **ret) {
        _cleanup_close_ int fd = listen_fd;
        AgentServer *s;
        int r;

        r = fd_prepare_listener(fd);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(AgentServer));
        if (!s)
                return -ENOMEM;
        *s = (AgentServer) {
                .event = sd_event_ref(e),
                .fd = TAKE_FD(fd),
                .priority = priority,
                .answer = answer,
                .userdata = userdata,
        };
        r = sd_event_add_io(e, &s->io, s->fd, EPOLLIN, on_accept, s);
        if (r < 0) {
                agent_server_free(s);
                return r;
        }
        (void) sd_event_source_set_priority(s->io, priority);
        (void) sd_event_source_set_description(s->io, "agent-accept");
        *ret = s;
        return 0;
}

AgentServer *agent_server_free(AgentServer *s) {
        if (!s)
                return NULL;
        while (s->connections)
                connection_free(s->connections);
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->accept_retry);
        safe_close(s->fd);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

uint64_t agent_server_n_answered(const AgentServer *s) {
        return s->n_answered;
}
