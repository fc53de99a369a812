/* SPDX-License-Identifier: MIT */
/* Tests for http-request.c (every outcome, whatever way the bytes are cut) and httpd.c, served for real on
 * an sd-event loop from 127.0.0.1 to a client thread. */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "httpd.h"

TestSuite(http, .timeout = 30);

#define DONE 0
#define MORE 1

/* Parses s whole, then in pieces of several sizes: the outcome must not depend on the cut. expected is
 * DONE, MORE or the error status. Returns the request parsed whole. */
static const HttpRequest *expect_n(const char *s, size_t n, int expected) {
        static const size_t steps[] = { 1, 2, 3, 7, 64, 1000 };
        static HttpRequest whole, cut;
        HttpParseState st;

        http_request_init(&whole);
        st = http_request_feed(&whole, s, n, NULL);
        if (expected == DONE || expected == MORE)
                cr_assert_eq(st, expected == DONE ? HTTP_PARSE_DONE : HTTP_PARSE_MORE,
                             "'%.80s': state %d, status %d (%s)", s, st, whole.status, whole.error ?: "");
        else {
                cr_assert_eq(st, HTTP_PARSE_ERROR, "'%.80s': state %d, expected error %d", s, st, expected);
                cr_assert_eq(whole.status, expected, "'%.80s': status %d (%s), expected %d", s, whole.status,
                             whole.error, expected);
                cr_assert_not_null(whole.error);
        }

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                http_request_init(&cut);
                st = HTTP_PARSE_MORE;
                for (size_t off = 0; off < n && st == HTTP_PARSE_MORE; off += steps[i])
                        st = http_request_feed(&cut, s + off, MIN(steps[i], n - off), NULL);
                cr_assert_eq(st, whole.state, "'%.80s' in steps of %zu: state %d", s, steps[i], st);
                cr_assert_eq(cut.status, whole.status, "'%.80s' in steps of %zu: status %d", s, steps[i],
                             cut.status);
                if (st != HTTP_PARSE_DONE)
                        continue;
                cr_assert_str_eq(cut.path, whole.path);
                cr_assert(streq_ptr(cut.query, whole.query));
                cr_assert_eq(cut.close, whole.close);
                cr_assert_eq(cut.n_headers, whole.n_headers);
        }
        return &whole;
}
#define expect(s, expected) expect_n((s), strlen(s), (expected))

/* "GET <target> HTTP/1.1" with a Host header, padded with one more header to exactly total bytes. */
static char *request_sized(size_t total) {
        static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
        char *s = malloc(total + 1);

        cr_assert_not_null(s);
        cr_assert_geq(total, sizeof head - 1 + 4);
        memcpy(s, head, sizeof head - 1);
        memset(s + sizeof head - 1, 'a', total - (sizeof head - 1) - 4);
        memcpy(s + total - 4, "\r\n\r\n", 5);
        return s;
}

static char *request_with_target(size_t target_len) {
        char *s = malloc(target_len + 64);

        cr_assert_not_null(s);
        s[0] = '/';
        memset(s + 1, 'p', target_len - 1);
        s[target_len] = 0;
        memmove(s + 4, s, target_len + 1);
        memcpy(s, "GET ", 4);
        strcat(s, " HTTP/1.1\r\nHost: x\r\n\r\n");
        return s;
}

static char *request_with_headers(unsigned n) {
        char *s = malloc(64 + n * 16);

        cr_assert_not_null(s);
        strcpy(s, "GET / HTTP/1.1\r\nHost: x\r\n");
        for (unsigned i = 1; i < n; i++)
                sprintf(s + strlen(s), "X-H%u: v\r\n", i);
        strcat(s, "\r\n");
        return s;
}

Test(http, parse_get) {
        const HttpRequest *r = expect("GET /health HTTP/1.1\r\nHost: localhost:8080\r\n"
                                      "User-Agent: t\r\n\r\n",
                                      DONE);

        cr_assert_eq(r->method, HTTP_METHOD_GET);
        cr_assert_str_eq(r->path, "/health");
        cr_assert_null(r->query);
        cr_assert_eq(r->version_minor, 1);
        cr_assert_not(r->close);
        cr_assert_eq(r->n_headers, 2);
        cr_assert_str_eq(http_request_header(r, "host"), "localhost:8080");
        cr_assert_str_eq(http_request_header(r, "USER-AGENT"), "t");
        cr_assert_null(http_request_header(r, "Accept"));
}

Test(http, parse_head) {
        const HttpRequest *r = expect("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", DONE);

        cr_assert_eq(r->method, HTTP_METHOD_HEAD);
        cr_assert_str_eq(r->path, "/metrics");
        cr_assert_str_eq(http_method_to_string(r->method), "HEAD");
}

Test(http, parse_query_string) {
        const HttpRequest *r = expect("GET /metrics?format=text&x=%20y HTTP/1.1\r\nHost: x\r\n\r\n", DONE);

        cr_assert_str_eq(r->path, "/metrics");
        cr_assert_str_eq(r->query, "format=text&x=%20y");
        r = expect("GET /a? HTTP/1.1\r\nHost: x\r\n\r\n", DONE);
        cr_assert_str_eq(r->path, "/a");
        cr_assert_str_eq(r->query, "");
        r = expect("GET /?a?b=/c HTTP/1.1\r\nHost: x\r\n\r\n", DONE);
        cr_assert_str_eq(r->path, "/");
        cr_assert_str_eq(r->query, "a?b=/c");
}

Test(http, parse_http10_and_connection) {
        const HttpRequest *r = expect("GET / HTTP/1.0\r\n\r\n", DONE);

        cr_assert_eq(r->version_minor, 0);
        cr_assert(r->close, "HTTP/1.0 closes by default");
        cr_assert_not(expect("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", DONE)->close);
        r = expect("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive,  CLOSE\r\n\r\n", DONE);
        cr_assert(r->close);
        r = expect("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed, upgrade\r\n\r\n", DONE);
        cr_assert_not(r->close);
}

Test(http, parse_line_ends_and_whitespace) {
        const HttpRequest *r;

        /* Bare LF, mixed line ends, optional whitespace, an empty value, obs-text. */
        r = expect("GET / HTTP/1.1\nHost:  x \t\nX-Empty:\r\nX-Obs: caf\xc3\xa9\n\n", DONE);
        cr_assert_str_eq(http_request_header(r, "Host"), "x");
        cr_assert_str_eq(http_request_header(r, "X-Empty"), "");
        cr_assert_str_eq(http_request_header(r, "X-Obs"), "caf\xc3\xa9");
        expect("GET / HTTP/1.1\rHost: x\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", 400);
        expect("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

Test(http, parse_incomplete_needs_more) {
        static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
        const size_t end = strlen("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        HttpRequest r;
        size_t used;

        expect("", MORE);
        expect("GET / HTTP/1.1", MORE);
        expect("GET / HTTP/1.1\r\nHost: x\r\n", MORE);
        expect("GET / HTTP/1.1\r\nHost: x\r\n\r", MORE);

        /* Byte by byte: MORE until the very last byte of the empty line, which is all that is taken. */
        http_request_init(&r);
        for (size_t i = 0; i < sizeof req - 1; i++) {
                HttpParseState st = http_request_feed(&r, req + i, 1, &used);

                if (i < end - 1) {
                        cr_assert_eq(st, HTTP_PARSE_MORE, "done early at byte %zu", i);
                        cr_assert_eq(used, 1);
                } else {
                        cr_assert_eq(st, HTTP_PARSE_DONE);
                        cr_assert_eq(used, i == end - 1 ? 1 : 0, "byte %zu: consumed %zu", i, used);
                }
        }
        http_request_init(&r);
        cr_assert_eq(http_request_feed(&r, req, sizeof req - 1, &used), HTTP_PARSE_DONE);
        cr_assert_eq(used, end);
}

Test(http, parse_method_not_allowed) {
        expect("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405);
        expect("PUT /x HTTP/1.1\r\n", 405);
        expect("OPTIONS * HTTP/1.1\r\n", 405);
        expect("get / HTTP/1.1\r\n", 405);
        expect("G(T / HTTP/1.1\r\n", 400);
}

Test(http, parse_bad_request_line) {
        expect("garbage\r\n", 400);
        expect("GET /\r\n", 400);
        expect("GET  / HTTP/1.1\r\n", 400);
        expect(" GET / HTTP/1.1\r\n", 400);
        expect("GET / HTTP/1.1 \r\n", 400);
        expect("GET / HTTP/1.1 x\r\n", 400);
        expect("GET\t/ HTTP/1.1\r\n", 400);
        expect("GET http://host/ HTTP/1.1\r\n", 400);
        expect("GET x HTTP/1.1\r\n", 400);
        expect("GET /a#frag HTTP/1.1\r\n", 400);
        expect("GET /\x7f HTTP/1.1\r\n", 400);
        expect("GET /caf\xc3\xa9 HTTP/1.1\r\n", 400);
}

Test(http, parse_http_version) {
        expect("GET / HTTP/2.0\r\n", 505);
        expect("GET / HTTP/1.2\r\n", 505);
        expect("GET / HTTP/0.9\r\n", 505);
        expect("GET / HTTP/1\r\n", 400);
        expect("GET / http/1.1\r\n", 400);
        expect("GET / HTTP/1.10\r\n", 400);
        expect("GET / HTTP/a.b\r\n", 400);
        expect("GET / \r\n", 400);
}

Test(http, parse_bad_header_lines) {
        expect("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\n: value\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nNa(me: x\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nX: a\tz\r\nHost: x\r\n\r\n", DONE);
}

Test(http, parse_header_folding_rejected) {
        expect("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400);
}

Test(http, parse_nul_bytes) {
        static const char *const reqs[] = {
                "G\0T / HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET / HTTP/1.1\0\r\nHost: x\r\n\r\n",
                "GET / HTTP/1.1\r\nHo\0t: x\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: \0\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: x\r\n\0\r\n\r\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(reqs); i++)
                expect_n(reqs[i], strlen(reqs[i]) + 1 + strlen(reqs[i] + strlen(reqs[i]) + 1), 400);
}

Test(http, parse_no_body) {
        cr_assert_eq(expect("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", DONE)->n_headers, 2);
        expect("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 000\r\n\r\n", DONE);
        expect("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 413);
        expect("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n", 413);
        expect("GET / HTTP/1.1\r\ncontent-length: 1 \r\n", 413);
        expect("GET / HTTP/1.1\r\nContent-Length: -1\r\n", 400);
        expect("GET / HTTP/1.1\r\nContent-Length: 1,1\r\n", 400);
        expect("GET / HTTP/1.1\r\nContent-Length:\r\n", 400);
        expect("GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n", 400);
        expect("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 400);
        expect("GET / HTTP/1.1\r\ntransfer-encoding: identity\r\n", 400);
}

Test(http, parse_host_required_once) {
        expect("GET / HTTP/1.1\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
        expect("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400);
        expect("GET / HTTP/1.1\r\nHost:\r\n\r\n", DONE);
}

Test(http, parse_request_size_limit) {
        _cleanup_free_ char *at = request_sized(HTTP_REQUEST_MAX);
        _cleanup_free_ char *over = request_sized(HTTP_REQUEST_MAX + 1);
        _cleanup_free_ char *far = request_sized(3 * HTTP_REQUEST_MAX);

        cr_assert_eq(strlen(at), HTTP_REQUEST_MAX);
        expect(at, DONE);
        expect(over, 431);
        expect(far, 431);
        /* Known to be too large before the end arrives. */
        expect_n(far, HTTP_REQUEST_MAX, 431);
        expect_n(over, HTTP_REQUEST_MAX - 1, MORE);
}

Test(http, parse_target_limit) {
        _cleanup_free_ char *at = request_with_target(HTTP_TARGET_MAX);
        _cleanup_free_ char *over = request_with_target(HTTP_TARGET_MAX + 1);
        _cleanup_free_ char *far = request_with_target(7000);
        _cleanup_free_ char *junk = request_with_target(10);

        cr_assert_str_eq(strchr(expect(at, DONE)->path, 0) - 4, "pppp");
        expect(over, 414);
        expect(far, 414);
        /* Without the line end yet: refused as soon as the line cannot be a request line any more. */
        expect_n(far, 2200, 414);
        expect_n(far, 2000, MORE);

        /* A short target but a line that does not end: malformed, not too long a target. */
        junk = realloc(junk, 4000);
        cr_assert_not_null(junk);
        memset(junk + 15, 'v', 3000);
        junk[3015] = 0;
        expect(junk, 400);
}

Test(http, parse_header_count_limit) {
        _cleanup_free_ char *at = request_with_headers(HTTP_HEADERS_MAX);
        _cleanup_free_ char *over = request_with_headers(HTTP_HEADERS_MAX + 1);

        cr_assert_eq(expect(at, DONE)->n_headers, HTTP_HEADERS_MAX);
        expect(over, 431);
}

Test(http, parse_done_is_final) {
        HttpRequest r;
        size_t used = 99;

        http_request_init(&r);
        cr_assert_eq(http_request_feed(&r, "POST / HTTP/1.1\r\n", 17, NULL), HTTP_PARSE_ERROR);
        cr_assert_eq(http_request_feed(&r, "GET / HTTP/1.1\r\n", 16, &used), HTTP_PARSE_ERROR);
        cr_assert_eq(used, 0);
        cr_assert_eq(r.status, 405);
        cr_assert_str_eq(http_status_to_string(431), "Request Header Fields Too Large");
        cr_assert_str_eq(http_status_to_string(299), "");
        cr_assert_null(http_method_to_string(_HTTP_METHOD_MAX));
}

/* The server, for real: the loop runs in the test's thread, a client thread talks to it and ends the loop
 * when it is done. Only the loop thread asserts; the client leaves its results in Client. */

#define CLIENT_EXCHANGES_MAX 4

typedef struct Client Client;
struct Client {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        void (*run)(Client *c);
        int done_fd;
        const char *requests[CLIENT_EXCHANGES_MAX]; /* default run: one connection each, in order */
        char *responses[CLIENT_EXCHANGES_MAX];      /* everything received until EOF, NUL-terminated */
        size_t sizes[CLIENT_EXCHANGES_MAX];
        int rcvbuf, sndbuf; /* small buffers, to make the server wait for the client */
        unsigned n_readable, n_ok;
        usec_t elapsed;
        /* run_crowd: n_idle silent connections, HTTPD_PEER_CONNECTIONS_MAX from each of 127.0.0.2, .3, ...,
         * then requests[1] from 127.0.0.<newcomer>; first_answered is the first silent one answered. */
        unsigned n_idle;
        uint8_t newcomer;
        int first_answered;
        usec_t head_elapsed; /* run_trickle_then_slow_read: until the answer to the trickle ended */
};

static unsigned max_connections_seen;
static uint64_t evicted_seen;
static int handler_results[CLIENT_EXCHANGES_MAX];
static unsigned n_handler_calls;

static const char *big_body(void) {
        static char body[HTTPD_BODY_MAX + 1];

        for (size_t i = 0; i < HTTPD_BODY_MAX; i++)
                body[i] = 'a' + i % 26;
        return body;
}

static void handler(Httpd *h, const HttpRequest *req, HttpdResponse *resp, void *userdata) {
        _cleanup_free_ char *buf = NULL;
        int r;

        max_connections_seen = MAX(max_connections_seen, httpd_n_connections(h));
        evicted_seen = httpd_n_evicted(h);
        if (streq(req->path, "/health"))
                r = httpd_respond(resp, 200, NULL, "ok\n");
        else if (streq(req->path, "/echo")) {
                buf = strdup_printf("%s|%s", req->path, req->query ?: "(null)");
                r = httpd_respond(resp, 200, "text/x-echo", buf);
        } else if (streq(req->path, "/big"))
                r = httpd_respond(resp, 200, "application/octet-stream", big_body());
        else if (streq(req->path, "/too-big")) {
                buf = calloc(1, HTTPD_BODY_MAX + 2);
                cr_assert_not_null(buf);
                memset(buf, 'x', HTTPD_BODY_MAX + 1);
                r = httpd_respond(resp, 200, NULL, buf);
        } else if (streq(req->path, "/bad-type"))
                r = httpd_respond(resp, 200, "text/plain\r\nX-Injected: 1", "x");
        else if (streq(req->path, "/silent"))
                r = 0;
        else
                r = httpd_respond(resp, 404, NULL, "not found\n");
        if (n_handler_calls < CLIENT_EXCHANGES_MAX)
                handler_results[n_handler_calls++] = r;
}

/* From 127.0.0.<source> (all of 127/8 is loopback: distinct peers on one machine), or from anywhere when
 * source is 0. */
static int client_connect_from(const Client *c, uint8_t source) {
        struct sockaddr_in from = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000000 | source) };
        struct timeval tv = { .tv_sec = 5 };
        int fd;

        fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (c->rcvbuf > 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &c->rcvbuf, sizeof c->rcvbuf);
        if ((source > 0 && bind(fd, (const struct sockaddr *) &from, sizeof from) < 0) ||
            connect(fd, (const struct sockaddr *) &c->addr, c->addr_len) < 0) {
                safe_close(fd);
                return -errno;
        }
        return fd;
}

static int client_connect(const Client *c) {
        return client_connect_from(c, 0);
}

/* Reads until EOF, an error or the receive timeout. */
static size_t client_read_all(int fd, char **ret) {
        size_t size = 0, allocated = 4096;
        char *buf = malloc(allocated);
        ssize_t n;

        while (buf) {
                if (allocated - size < 4096) {
                        char *b = realloc(buf, allocated *= 2);

                        if (!b)
                                break;
                        buf = b;
                }
                n = recv(fd, buf + size, allocated - size - 1, 0);
                if (n <= 0)
                        break;
                size += n;
        }
        if (buf)
                buf[size] = 0;
        *ret = buf;
        return size;
}

static void client_exchange_from(Client *c, size_t i, uint8_t source) {
        int fd = client_connect_from(c, source);

        if (fd < 0)
                return;
        if (send(fd, c->requests[i], strlen(c->requests[i]), MSG_NOSIGNAL) >= 0)
                c->sizes[i] = client_read_all(fd, &c->responses[i]);
        safe_close(fd);
}

static void client_exchange(Client *c, size_t i) {
        client_exchange_from(c, i, 0);
}

static void run_exchanges(Client *c) {
        for (size_t i = 0; i < CLIENT_EXCHANGES_MAX && c->requests[i]; i++)
                client_exchange(c, i);
}

static void *client_thread(void *p) {
        Client *c = p;
        usec_t start = now_usec(CLOCK_MONOTONIC);

        (c->run ?: run_exchanges)(c);
        c->elapsed = now_usec(CLOCK_MONOTONIC) - start;
        (void) write(c->done_fd, "x", 1);
        return NULL;
}

static int on_client_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_too_long(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), -ETIMEDOUT);
}

static int listen_tcp(Client *c) {
        struct sockaddr_in *sin = (struct sockaddr_in *) &c->addr;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        *sin = (struct sockaddr_in) { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        c->addr_len = sizeof *sin;
        /* Accepted sockets inherit it. */
        if (c->sndbuf > 0)
                cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &c->sndbuf, sizeof c->sndbuf), 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) sin, sizeof *sin), 0);
        cr_assert_eq(listen(fd, 128), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *) &c->addr, &c->addr_len), 0);
        return fd;
}

/* Serves listen_fd (owned) until the client is done, then frees the server with whatever is still open.
 * Timeouts of 0 keep the defaults. */
static void serve(Client *c, int listen_fd, usec_t head_timeout, usec_t timeout) {
        sd_event *e = NULL;
        sd_event_source *done = NULL;
        Httpd *h = NULL;
        pthread_t t;
        int p[2], r;

        max_connections_seen = n_handler_calls = 0;
        evicted_seen = 0;
        cr_assert_eq(sd_event_new(&e), 0);
        cr_assert_eq(httpd_new(e, listen_fd, 0, handler, NULL, &h), 0);
        if (head_timeout > 0 || timeout > 0)
                httpd_set_timeouts(h, head_timeout ?: HTTPD_HEAD_TIMEOUT_USEC,
                                   timeout ?: HTTPD_TIMEOUT_USEC);
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        cr_assert_geq(sd_event_add_io(e, &done, p[0], EPOLLIN, on_client_done, NULL), 0);
        r = sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 20 * USEC_PER_SEC, 0, on_too_long, NULL);
        cr_assert_geq(r, 0);
        c->done_fd = p[1];
        cr_assert_eq(pthread_create(&t, NULL, client_thread, c), 0);
        r = sd_event_loop(e);
        cr_assert_eq(pthread_join(t, NULL), 0);
        cr_assert_eq(r, 0, "the client did not finish in time");
        httpd_free(h);
        sd_event_source_disable_unref(done);
        safe_close(p[0]);
        safe_close(p[1]);
        sd_event_unref(e);
}

/* Both deadlines at timeout, or the defaults for 0. */
static void serve_tcp(Client *c, usec_t timeout) {
        serve(c, listen_tcp(c), timeout, timeout);
}

static int status_of(const char *resp) {
        int status = -1;

        cr_assert_not_null(resp, "no response");
        cr_assert_eq(sscanf(resp, "HTTP/1.1 %d ", &status), 1, "not a response: '%.80s'", resp);
        return status;
}

static const char *body_of(const char *resp) {
        const char *b = strstr(resp, "\r\n\r\n");

        cr_assert_not_null(b, "no end of headers: '%.200s'", resp);
        return b + 4;
}

static void client_free(Client *c) {
        for (size_t i = 0; i < CLIENT_EXCHANGES_MAX; i++)
                free(c->responses[i]);
}

Test(http, serve_200_with_body) {
        Client c = { .requests = { "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                                   "GET /echo?a=1 HTTP/1.0\r\n\r\n" } };

        serve_tcp(&c, 0);
        cr_assert_str_eq(c.responses[0],
                         "HTTP/1.1 200 OK\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 3\r\n"
                         "Connection: close\r\n"
                         "\r\n"
                         "ok\n");
        cr_assert_eq(status_of(c.responses[1]), 200);
        cr_assert(strstr(c.responses[1], "\r\nContent-Type: text/x-echo\r\n"));
        cr_assert_str_eq(body_of(c.responses[1]), "/echo|a=1");
        client_free(&c);
}

Test(http, serve_404_from_handler) {
        Client c = { .requests = { "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" } };

        serve_tcp(&c, 0);
        cr_assert_eq(status_of(c.responses[0]), 404);
        cr_assert_str_eq(body_of(c.responses[0]), "not found\n");
        client_free(&c);
}

Test(http, serve_head_has_no_body) {
        Client c = { .requests = { "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n",
                                   "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n" } };

        serve_tcp(&c, 0);
        cr_assert_eq(status_of(c.responses[0]), 200);
        cr_assert(strstr(c.responses[0], "\r\nContent-Length: 3\r\n"));
        cr_assert_str_eq(body_of(c.responses[0]), "");
        cr_assert_eq(status_of(c.responses[1]), 404);
        cr_assert_str_eq(body_of(c.responses[1]), "");
        client_free(&c);
}

Test(http, serve_400_for_garbage) {
        Client c = { .requests = { "garbage\r\n\r\n", "\x01\x02\x03\xff\r\n",
                                   "GET / HTTP/1.1\r\n Host: x\r\n\r\n" } };

        serve_tcp(&c, 0);
        for (size_t i = 0; i < 3; i++) {
                cr_assert_eq(status_of(c.responses[i]), 400);
                cr_assert(startswith(body_of(c.responses[i]), "400 Bad Request: "));
        }
        cr_assert_eq(n_handler_calls, 0);
        client_free(&c);
}

Test(http, serve_405_says_allow) {
        Client c = { .requests = { "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n" } };

        serve_tcp(&c, 0);
        cr_assert_eq(status_of(c.responses[0]), 405);
        cr_assert(strstr(c.responses[0], "\r\nAllow: GET, HEAD\r\n"));
        client_free(&c);
}

Test(http, serve_431_for_huge_headers) {
        _cleanup_free_ char *req = request_sized(4 * HTTP_REQUEST_MAX);
        Client c = { .requests = { req, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" } };

        serve_tcp(&c, 0);
        /* All of it arrives, not a reset: the server read on until the client had closed. */
        cr_assert_eq(status_of(c.responses[0]), 431);
        cr_assert_str_eq(body_of(c.responses[0]),
                         "431 Request Header Fields Too Large: request header section too large\n");
        cr_assert_eq(status_of(c.responses[1]), 200);
        client_free(&c);
}

Test(http, serve_handler_failures_are_500) {
        Client c = { .requests = { "GET /silent HTTP/1.1\r\nHost: x\r\n\r\n",
                                   "GET /too-big HTTP/1.1\r\nHost: x\r\n\r\n",
                                   "GET /bad-type HTTP/1.1\r\nHost: x\r\n\r\n" } };

        serve_tcp(&c, 0);
        for (size_t i = 0; i < 3; i++)
                cr_assert_eq(status_of(c.responses[i]), 500);
        cr_assert_null(strstr(c.responses[2], "X-Injected"));
        cr_assert_eq(handler_results[1], -E2BIG);
        cr_assert_eq(handler_results[2], -EINVAL);
        client_free(&c);
}

Test(http, serve_largest_body) {
        Client c = { .requests = { "GET /big HTTP/1.1\r\nHost: x\r\n\r\n" },
                     .rcvbuf = 4096,
                     .sndbuf = 4096 };
        _cleanup_free_ char *expected = strdup_printf("\r\nContent-Length: %d\r\n", HTTPD_BODY_MAX);

        serve_tcp(&c, 0);
        cr_assert_eq(status_of(c.responses[0]), 200);
        cr_assert(strstr(c.responses[0], expected));
        cr_assert_eq(strlen(body_of(c.responses[0])), HTTPD_BODY_MAX);
        cr_assert_eq(memcmp(body_of(c.responses[0]), big_body(), HTTPD_BODY_MAX), 0);
        client_free(&c);
}

static void run_idle(Client *c) {
        int fd = client_connect(c);

        if (fd < 0)
                return;
        if (c->requests[0])
                (void) send(fd, c->requests[0], strlen(c->requests[0]), MSG_NOSIGNAL);
        c->sizes[0] = client_read_all(fd, &c->responses[0]);
        safe_close(fd);
}

Test(http, serve_408_for_silence_and_slowness) {
        Client idle = { .run = run_idle },
               slow = { .run = run_idle, .requests = { "GET / HTTP/1.1\r\nHost: x\r\n" } };

        serve_tcp(&idle, 200 * USEC_PER_MSEC);
        cr_assert_eq(status_of(idle.responses[0]), 408);
        cr_assert_geq(idle.elapsed, 190 * USEC_PER_MSEC);
        cr_assert_lt(idle.elapsed, 2 * USEC_PER_SEC);
        serve_tcp(&slow, 200 * USEC_PER_MSEC);
        cr_assert_eq(status_of(slow.responses[0]), 408);
        client_free(&idle);
        client_free(&slow);
}

static void run_half_close(Client *c) {
        int fd = client_connect(c);

        if (fd < 0)
                return;
        (void) send(fd, "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL);
        (void) shutdown(fd, SHUT_WR);
        c->sizes[0] = client_read_all(fd, &c->responses[0]);
        safe_close(fd);
}

Test(http, serve_400_for_request_cut_short) {
        Client c = { .run = run_half_close };

        serve_tcp(&c, 0);
        cr_assert_eq(status_of(c.responses[0]), 400);
        cr_assert_str_eq(body_of(c.responses[0]), "400 Bad Request: incomplete request\n");
        client_free(&c);
}

static void run_not_reading(Client *c) {
        int fd = client_connect(c);

        if (fd < 0)
                return;
        (void) send(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 31, MSG_NOSIGNAL);
        /* Read nothing past the server's deadline and its grace period, then see who is still there. */
        usleep(800 * 1000);
        client_exchange(c, 1);
        safe_close(fd);
}

Test(http, serve_drops_a_client_that_does_not_read) {
        Client c = { .run = run_not_reading,
                     .rcvbuf = 4096,
                     .sndbuf = 4096,
                     .requests = { NULL, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" } };

        serve_tcp(&c, 300 * USEC_PER_MSEC);
        cr_assert_eq(status_of(c.responses[1]), 200);
        cr_assert_eq(max_connections_seen, 1, "%u connections", max_connections_seen);
        client_free(&c);
}

static void run_crowd(Client *c) {
        struct pollfd p[HTTPD_CONNECTIONS_MAX] = {};
        int writer = -EBADF;

        c->first_answered = -1;
        if (c->requests[2]) {
                /* Oldest of all: a response too big for the small buffers, read only at the end. */
                writer = client_connect_from(c, 2);
                (void) send(writer, c->requests[2], strlen(c->requests[2]), MSG_NOSIGNAL);
                usleep(100 * 1000);
        }
        for (size_t i = 0; i < c->n_idle && i < ELEMENTSOF(p); i++)
                p[i] = (struct pollfd) {
                        .fd = client_connect_from(c, 2 + i / HTTPD_PEER_CONNECTIONS_MAX),
                        .events = POLLIN,
                };
        /* Every one of them accepted before the newcomer arrives. */
        usleep(100 * 1000);
        client_exchange_from(c, 1, c->newcomer);
        usleep(100 * 1000);
        if (poll(p, c->n_idle, 0) >= 0)
                for (size_t i = 0; i < c->n_idle; i++) {
                        if (!p[i].revents)
                                continue;
                        c->n_readable++;
                        if (c->first_answered < 0) {
                                c->first_answered = (int) i;
                                c->sizes[0] = client_read_all(p[i].fd, &c->responses[0]);
                        }
                }
        for (size_t i = 0; i < c->n_idle; i++)
                safe_close(p[i].fd);
        if (writer >= 0)
                c->sizes[2] = client_read_all(writer, &c->responses[2]);
        safe_close(writer);
}

static void assert_gave_way(const Client *c, int which) {
        cr_assert_eq(c->n_readable, 1, "%u silent connections answered", c->n_readable);
        cr_assert_eq(c->first_answered, which);
        cr_assert_eq(status_of(c->responses[0]), 408);
        cr_assert(strstr(c->responses[0], "\r\nContent-Length: 51\r\n"));
        cr_assert_str_eq(body_of(c->responses[0]), "408 Request Timeout: place given to a newer client\n");
        cr_assert_eq(evicted_seen, 1);
}

/* n_idle silent connections, HTTPD_PEER_CONNECTIONS_MAX from each peer, then a request from
 * 127.0.0.<newcomer>, which must be answered. */
static void serve_crowd(Client *c, unsigned n_idle, uint8_t newcomer) {
        c->run = run_crowd;
        c->n_idle = n_idle;
        c->newcomer = newcomer;
        c->requests[1] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        serve_tcp(c, 0);
        cr_assert_eq(status_of(c->responses[1]), 200);
}

Test(http, serve_a_peer_at_its_share_gives_way_to_itself) {
        Client c = {};

        serve_crowd(&c, HTTPD_PEER_CONNECTIONS_MAX, 2);
        assert_gave_way(&c, 0);
        cr_assert_eq(max_connections_seen, HTTPD_PEER_CONNECTIONS_MAX);
        client_free(&c);
}

Test(http, serve_a_peer_at_its_share_costs_no_other_peer) {
        Client c = {};

        serve_crowd(&c, HTTPD_PEER_CONNECTIONS_MAX, 3);
        cr_assert_eq(c.n_readable, 0);
        cr_assert_eq(evicted_seen, 0);
        cr_assert_eq(max_connections_seen, HTTPD_PEER_CONNECTIONS_MAX + 1);
        client_free(&c);
}

Test(http, serve_a_full_server_makes_room_for_a_new_client) {
        Client c = {};

        serve_crowd(&c, HTTPD_CONNECTIONS_MAX, 2 + HTTPD_CONNECTIONS_MAX / HTTPD_PEER_CONNECTIONS_MAX);
        assert_gave_way(&c, 0);
        cr_assert_eq(max_connections_seen, HTTPD_CONNECTIONS_MAX);
        client_free(&c);
}

Test(http, serve_a_silent_client_gives_way_before_a_response) {
        Client c = { .rcvbuf = 4096,
                     .sndbuf = 4096,
                     .requests = { [2] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n" } };

        serve_crowd(&c, HTTPD_PEER_CONNECTIONS_MAX - 1, 2);
        assert_gave_way(&c, 0);
        /* The older connection, being written to, was left alone and got all of it. */
        cr_assert_eq(status_of(c.responses[2]), 200);
        cr_assert_eq(strlen(body_of(c.responses[2])), HTTPD_BODY_MAX);
        client_free(&c);
}

static void run_trickle_then_slow_read(Client *c) {
        static const char head[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        usec_t start = now_usec(CLOCK_MONOTONIC);
        int fd = client_connect(c);

        if (fd < 0)
                return;
        /* A byte every 50 ms would take 1.7 s for the whole head: far past the head's deadline. */
        for (size_t i = 0; i < sizeof head - 1; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };

                if (poll(&p, 1, 50) != 0 || send(fd, head + i, 1, MSG_NOSIGNAL) < 0)
                        break;
        }
        c->sizes[0] = client_read_all(fd, &c->responses[0]);
        c->head_elapsed = now_usec(CLOCK_MONOTONIC) - start;
        safe_close(fd);

        /* A response is not held to the head's deadline: read it only after that passed. */
        fd = client_connect(c);
        if (fd < 0)
                return;
        (void) send(fd, c->requests[1], strlen(c->requests[1]), MSG_NOSIGNAL);
        usleep(500 * 1000);
        c->sizes[1] = client_read_all(fd, &c->responses[1]);
        safe_close(fd);
}

Test(http, serve_the_request_head_has_a_deadline_of_its_own) {
        Client c = { .run = run_trickle_then_slow_read,
                     .rcvbuf = 4096,
                     .sndbuf = 4096,
                     .requests = { NULL, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n" } };

        serve(&c, listen_tcp(&c), 200 * USEC_PER_MSEC, 3 * USEC_PER_SEC);
        cr_assert_eq(status_of(c.responses[0]), 408);
        /* The 408 is written at the head's deadline and the server closes after it (the client does). */
        cr_assert_geq(c.head_elapsed, 190 * USEC_PER_MSEC);
        cr_assert_lt(c.head_elapsed, 1500 * USEC_PER_MSEC);
        cr_assert_eq(status_of(c.responses[1]), 200);
        cr_assert_eq(strlen(body_of(c.responses[1])), HTTPD_BODY_MAX);
        client_free(&c);
}

Test(http, serve_unix_socket) {
        Client c = { .requests = { "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" } };
        struct sockaddr_un *sun = (struct sockaddr_un *) &c.addr;
        char dir[] = "/tmp/test-http-XXXXXX";
        int fd;

        cr_assert_not_null(mkdtemp(dir));
        *sun = (struct sockaddr_un) { .sun_family = AF_UNIX };
        snprintf(sun->sun_path, sizeof sun->sun_path, "%s/status", dir);
        c.addr_len = sizeof *sun;
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) sun, sizeof *sun), 0);
        cr_assert_eq(listen(fd, 16), 0);
        serve(&c, fd, 0, 0);
        cr_assert_eq(status_of(c.responses[0]), 200);
        (void) unlink(sun->sun_path);
        (void) rmdir(dir);
        client_free(&c);
}

Test(http, new_takes_the_listening_socket) {
        sd_event *e = NULL;
        Httpd *h = NULL;
        Client c = {};
        int fd, p[2];

        cr_assert_eq(sd_event_new(&e), 0);
        /* Like a socket from LISTEN_FDS: blocking and inherited across exec until the server takes it. */
        fd = listen_tcp(&c);
        cr_assert_eq(fcntl(fd, F_SETFD, 0), 0);
        cr_assert_eq(httpd_new(e, fd, 0, handler, NULL, &h), 0);
        cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        cr_assert_eq(httpd_n_connections(h), 0);
        cr_assert_null(httpd_free(h));
        cr_assert(fcntl(fd, F_GETFD) < 0 && errno == EBADF);

        /* Refused, and closed all the same. */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(httpd_new(e, fd, 0, handler, NULL, &h), -EINVAL);
        cr_assert(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(httpd_new(e, fd, 0, handler, NULL, &h), -EINVAL);
        cr_assert(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        cr_assert_eq(httpd_new(e, p[0], 0, handler, NULL, &h), -EINVAL);
        safe_close(p[1]);
        cr_assert_eq(httpd_new(e, -EBADF, 0, handler, NULL, &h), -EBADF);
        sd_event_unref(e);
}
