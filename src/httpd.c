/* SPDX-License-Identifier: MIT */
/* The status HTTP server: non-blocking accept, one bounded request and one bounded response per connection,
 * deadlines per connection (a short one for the request head), room for every new client made by closing
 * an older one, and a lingering close so that an early error response is not lost. */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event-pause.h"
#include "httpd.h"

/* After the response, how long we wait for the client to close first (never longer than the timeout). */
#define HTTPD_LINGER_USEC (1 * USEC_PER_SEC)
/* How much a lingering client may still send before we stop listening and close. */
#define HTTPD_LINGER_BYTES_MAX (64 * 1024)
/* When accept() fails for lack of fds or memory, the listening socket stays readable: back off. */
#define HTTPD_ACCEPT_RETRY_USEC (100 * USEC_PER_MSEC)
#define HTTPD_ACCEPT_BATCH 16
#define HTTPD_CONTENT_TYPE_MAX 128
#define HTTPD_DEFAULT_CONTENT_TYPE "text/plain; charset=utf-8"

typedef enum ConnectionState {
        CONNECTION_READING,
        CONNECTION_WRITING,
        CONNECTION_LINGERING,
} ConnectionState;

/* What a connection counts against for HTTPD_PEER_CONNECTIONS_MAX. */
typedef struct HttpdPeer {
        int family;
        uint8_t addr[8];
} HttpdPeer;

struct HttpdResponse {
        bool head;
        char *data; /* status line, headers and (unless head) the body */
        size_t size;
};

typedef struct HttpdConnection HttpdConnection;
struct HttpdConnection {
        Httpd *server;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        ConnectionState state;
        HttpdPeer peer;
        usec_t accepted;
        usec_t deadline; /* for the response */
        HttpdResponse response;
        size_t written;
        size_t drained;
        HttpdConnection *prev, *next;
        HttpRequest request; /* 9 KiB, most of it the request buffer */
};

struct Httpd {
        sd_event *event;
        int fd;
        sd_event_source *io;
        sd_event_source *accept_retry;
        int64_t priority;
        usec_t head_timeout, timeout;
        httpd_handler_t handler;
        void *userdata;
        HttpdConnection *connections; /* newest first */
        unsigned n_connections;
        uint64_t n_evicted;
};

static void connection_free(HttpdConnection *c) {
        Httpd *s = c->server;

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
        free(c->response.data);
        free(c);
}

static bool content_type_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > HTTPD_CONTENT_TYPE_MAX)
                return false;
        /* It goes into a header line verbatim: no CR, LF or other control character may sneak in. */
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < ' ' || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

int httpd_respond(HttpdResponse *resp, int status, const char *content_type, const char *body) {
        char head[256 + HTTPD_CONTENT_TYPE_MAX];
        size_t body_size = body ? strnlen(body, HTTPD_BODY_MAX + 1) : 0, size;
        char *data;
        int k;

        free(resp->data);
        resp->data = NULL;
        resp->size = 0;

        content_type = content_type ?: HTTPD_DEFAULT_CONTENT_TYPE;
        if (status < 200 || status > 599 || status == 204 || status == 304 ||
            !content_type_valid(content_type))
                return -EINVAL;
        if (body_size > HTTPD_BODY_MAX)
                return -E2BIG;

        k = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "\r\n",
                     status, http_status_to_string(status), content_type, body_size,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "");
        if (k < 0 || (size_t) k >= sizeof head)
                return -EINVAL;

        size = k + (resp->head ? 0 : body_size);
        data = malloc(size);
        if (!data)
                return -ENOMEM;
        memcpy(data, head, k);
        if (!resp->head && body_size > 0)
                memcpy(data + k, body, body_size);
        resp->data = data;
        resp->size = size;
        return 0;
}

static int connection_respond_error(HttpdConnection *c, int status, const char *error) {
        char body[256];

        /* Known once the request line parsed, even if a later line failed. */
        c->response.head = c->request.method == HTTP_METHOD_HEAD;

        (void) snprintf(body, sizeof body, "%d %s: %s\n", status, http_status_to_string(status), error);
        return httpd_respond(&c->response, status, NULL, body);
}

static int connection_set_timer(HttpdConnection *c, usec_t when) {
        int r;

        r = sd_event_source_set_time(c->timer, when);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
}

static usec_t connection_linger_usec(HttpdConnection *c) {
        return MIN(HTTPD_LINGER_USEC, c->server->timeout);
}

/* Each of these may free c; callers return right after. */

static void connection_drain(HttpdConnection *c) {
        char buf[4096];
        ssize_t n;

        n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0 || (c->drained += n) > HTTPD_LINGER_BYTES_MAX)
                connection_free(c);
}

static void connection_linger(HttpdConnection *c) {
        usec_t now;

        free(c->response.data);
        c->response.data = NULL;
        /* Our FIN tells the client the response is complete. Closing outright while its request bytes are
         * still unread would send a RST instead, which may destroy the response before the client read it
         * (an early 431 or 408, typically): so read and discard until the client closes, or time is up. */
        (void) shutdown(c->fd, SHUT_WR);
        c->state = CONNECTION_LINGERING;
        /* A connection without a live timer could stay forever: on any failure here, close. */
        if (sd_event_source_set_io_events(c->io, EPOLLIN) < 0 ||
            sd_event_now(sd_event_source_get_event(c->io), CLOCK_MONOTONIC, &now) < 0 ||
            connection_set_timer(c, MIN(now, c->deadline) + connection_linger_usec(c)) < 0) {
                connection_free(c);
                return;
        }
        connection_drain(c);
}

static void connection_write(HttpdConnection *c) {
        ssize_t n;

        n = send(c->fd, c->response.data + c->written, c->response.size - c->written,
                 MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        connection_free(c);
                return;
        }
        c->written += n;
        if (c->written >= c->response.size)
                connection_linger(c);
}

static void connection_start_write(HttpdConnection *c) {
        if (!c->response.data) {
                if (connection_respond_error(c, 500, "no response") < 0) {
                        connection_free(c);
                        return;
                }
        }
        c->state = CONNECTION_WRITING;
        c->written = 0;
        if (sd_event_source_set_io_events(c->io, EPOLLOUT) < 0) {
                connection_free(c);
                return;
        }
        /* Most responses fit into the socket buffer: try at once, not after another loop iteration. */
        connection_write(c);
}

static void connection_read(HttpdConnection *c) {
        Httpd *s = c->server;
        char buf[4096];
        ssize_t n;

        n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        connection_free(c);
                return;
        }
        if (n == 0) {
                /* A client that connected and went away gets nothing; one that half-closed in the middle
                 * of a request can still read why it failed. */
                if (c->request.size == 0) {
                        connection_free(c);
                        return;
                }
                (void) connection_respond_error(c, 400, "incomplete request");
        } else {
                switch (http_request_feed(&c->request, buf, n, NULL)) {
                case HTTP_PARSE_MORE:
                        return;
                case HTTP_PARSE_ERROR:
                        (void) connection_respond_error(c, c->request.status, c->request.error);
                        break;
                case HTTP_PARSE_DONE:
                        c->response.head = c->request.method == HTTP_METHOD_HEAD;
                        s->handler(s, &c->request, &c->response, s->userdata);
                        break;
                }
        }

        /* The head is in: from now on the response deadline applies, not the head's. */
        if (connection_set_timer(c, c->deadline) < 0) {
                connection_free(c);
                return;
        }
        connection_start_write(c);
}

static int on_connection_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        HttpdConnection *c = userdata;

        switch (c->state) {
        case CONNECTION_READING:
                connection_read(c);
                break;
        case CONNECTION_WRITING:
                connection_write(c);
                break;
        case CONNECTION_LINGERING:
                connection_drain(c);
                break;
        }
        return 0;
}

static int on_connection_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        HttpdConnection *c = userdata;
        usec_t now;

        if (c->state != CONNECTION_READING ||
            sd_event_now(sd_event_source_get_event(src), CLOCK_MONOTONIC, &now) < 0) {
                /* Still writing: the client does not read. Lingering: it had its time. */
                connection_free(c);
                return 0;
        }

        /* The 408 gets a short grace period of its own to be written and read. */
        if (connection_set_timer(c, now + connection_linger_usec(c)) < 0 ||
            connection_respond_error(c, 408, "request not received in time") < 0) {
                connection_free(c);
                return 0;
        }
        connection_start_write(c);
        return 0;
}

static int connection_new(Httpd *s, int fd, const HttpdPeer *peer, HttpdConnection **ret) {
        HttpdConnection *c;
        int r;

        c = calloc(1, sizeof(HttpdConnection));
        if (!c)
                return -ENOMEM;
        c->server = s;
        c->fd = fd;
        c->state = CONNECTION_READING;
        c->peer = *peer;
        c->next = s->connections;
        http_request_init(&c->request);
        if (c->next)
                c->next->prev = c;
        s->connections = c;
        s->n_connections++;

        r = sd_event_now(s->event, CLOCK_MONOTONIC, &c->accepted);
        if (r >= 0) {
                c->deadline = c->accepted + s->timeout;
                r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_connection_io, c);
        }
        if (r >= 0)
                r = sd_event_add_time(s->event, &c->timer, CLOCK_MONOTONIC,
                                      c->accepted + MIN(s->head_timeout, s->timeout), 0,
                                      on_connection_timeout, c);
        if (r < 0) {
                c->fd = -EBADF; /* the caller still owns it */
                connection_free(c);
                return r;
        }
        (void) sd_event_source_set_priority(c->io, s->priority);
        (void) sd_event_source_set_priority(c->timer, s->priority);
        (void) sd_event_source_set_description(c->io, "httpd-connection");
        (void) sd_event_source_set_description(c->timer, "httpd-timeout");
        *ret = c;
        return 0;
}

/* An IPv4 address, an IPv6 /64 (a host commonly holds a whole /64, so a finer key would let one host take
 * every place), or the uid behind an AF_UNIX connection. An IPv4 client of a dual-stack socket counts as
 * its IPv4 address, not as the ::ffff:0:0/96 prefix all of them share. */
static void peer_from_address(int fd, const struct sockaddr_storage *sa, HttpdPeer *ret) {
        HttpdPeer p = { .family = sa->ss_family };

        if (sa->ss_family == AF_INET)
                memcpy(p.addr, &((const struct sockaddr_in *) sa)->sin_addr, 4);
        else if (sa->ss_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;

                if (IN6_IS_ADDR_V4MAPPED(a)) {
                        p.family = AF_INET;
                        memcpy(p.addr, a->s6_addr + 12, 4);
                } else
                        memcpy(p.addr, a->s6_addr, 8);
        } else if (sa->ss_family == AF_UNIX) {
                struct ucred cred;
                socklen_t len = sizeof cred;

                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) >= 0)
                        memcpy(p.addr, &cred.uid, sizeof cred.uid);
        }
        *ret = p;
}

static bool peer_equal(const HttpdPeer *a, const HttpdPeer *b) {
        return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* Which connection gives way first: one that has not sent its request head yet costs its client least to
 * repeat and is what a slow or idle client holds; one lingering has had its response. */
static unsigned connection_rank(const HttpdConnection *c) {
        switch (c->state) {
        case CONNECTION_READING:
                return 0;
        case CONNECTION_LINGERING:
                return 1;
        default:
                return 2;
        }
}

/* Closes the connection that gives way to a new one from peer: when peer holds its share, one of its own,
 * else, when the server is full, anyone's. The lowest rank goes, the oldest among equals. */
static void server_make_room(Httpd *s, const HttpdPeer *peer) {
        static const char timeout[] = "HTTP/1.1 408 Request Timeout\r\n"
                                      "Content-Type: text/plain; charset=utf-8\r\n"
                                      "Content-Length: 51\r\n"
                                      "Connection: close\r\n"
                                      "\r\n"
                                      "408 Request Timeout: place given to a newer client\n";
        HttpdConnection *victim = NULL;
        unsigned n_peer = 0;
        bool own;

        for (HttpdConnection *c = s->connections; c; c = c->next)
                n_peer += peer_equal(&c->peer, peer);
        own = n_peer >= HTTPD_PEER_CONNECTIONS_MAX;
        if (!own && s->n_connections < HTTPD_CONNECTIONS_MAX)
                return;

        /* Newest first: "<=" keeps going to the oldest of a rank (the loop's time stamps can be equal). */
        for (HttpdConnection *c = s->connections; c; c = c->next)
                if ((!own || peer_equal(&c->peer, peer)) &&
                    (!victim || connection_rank(c) < connection_rank(victim) ||
                     (connection_rank(c) == connection_rank(victim) && c->accepted <= victim->accepted)))
                        victim = c;

        /* A client that was still sending learns why; its unread bytes may turn this into a reset. */
        if (victim->state == CONNECTION_READING)
                (void) send(victim->fd, timeout, sizeof timeout - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        connection_free(victim);
        s->n_evicted++;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Httpd *s = userdata;

        /* A batch per wakeup, so that a flood of connections cannot starve the rest of the loop. */
        for (unsigned i = 0; i < HTTPD_ACCEPT_BATCH; i++) {
                _cleanup_close_ int cfd = -EBADF;
                struct sockaddr_storage sa = {};
                socklen_t len = sizeof sa;
                HttpdConnection *c;
                HttpdPeer peer;

                cfd = accept4(fd, (struct sockaddr *) &sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                event_source_pause(s->io, &s->accept_retry, HTTPD_ACCEPT_RETRY_USEC,
                                                   "httpd-accept-retry");
                                return 0;
                        }
                        /* ECONNABORTED, EPROTO, EPERM (firewall) and such concern that one connection. */
                        continue;
                }
                peer_from_address(cfd, &sa, &peer);
                server_make_room(s, &peer);
                if (connection_new(s, cfd, &peer, &c) < 0)
                        continue;
                TAKE_FD(cfd);
                /* A real client sends its request with the handshake or right behind it: answer it now,
                 * before later connections could make it give way. */
                connection_read(c);
        }
        return 0;
}

int httpd_new(sd_event *e, int listen_fd, int64_t priority, httpd_handler_t handler, void *userdata,
              Httpd **ret) {
        _cleanup_close_ int fd = listen_fd;
        _cleanup_(httpd_freep) Httpd *s = NULL;
        int r;

        r = fd_prepare_listener(fd);
        if (r < 0)
                return r;

        s = malloc(sizeof(Httpd));
        if (!s)
                return -ENOMEM;
        *s = (Httpd) {
                .event = sd_event_ref(e),
                .fd = TAKE_FD(fd),
                .priority = priority,
                .head_timeout = HTTPD_HEAD_TIMEOUT_USEC,
                .timeout = HTTPD_TIMEOUT_USEC,
                .handler = handler,
                .userdata = userdata,
        };

        r = sd_event_add_io(e, &s->io, s->fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(s->io, priority);
        (void) sd_event_source_set_description(s->io, "httpd");

        *ret = TAKE_PTR(s);
        return 0;
}

Httpd *httpd_free(Httpd *s) {
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

void httpd_set_timeouts(Httpd *s, usec_t head_usec, usec_t usec) {
        s->head_timeout = head_usec;
        s->timeout = usec;
}

unsigned httpd_n_connections(const Httpd *s) {
        return s->n_connections;
}

uint64_t httpd_n_evicted(const Httpd *s) {
        return s->n_evicted;
}
