/* SPDX-License-Identifier: MIT */
/* The health and metrics endpoint: a small HTTP/1.1 server on the event loop, bounded in connections,
 * request size, response size and time. One request per connection: every response carries
 * Connection: close and the server closes after it. */
#pragma once

#include <systemd/sd-event.h>

#include "http-request.h"
#include "util.h"

/* Open connections, in all and from one peer (an IP address, an IPv6 /64, a uid on an AF_UNIX socket). A
 * new connection over either bound is never refused: it takes the place of the oldest connection still
 * reading its request head (else of the oldest lingering one, else of the oldest being written to), of
 * its own peer when that peer is over its share, so a slow client costs only its own peer's. */
#define HTTPD_CONNECTIONS_MAX 64
#define HTTPD_PEER_CONNECTIONS_MAX 16
/* From accept to the end of the request head, however it trickles in: a health check is one segment of
 * under 100 bytes, so this is generous; a request not complete by then is answered 408. */
#define HTTPD_HEAD_TIMEOUT_USEC (2 * USEC_PER_SEC)
/* From accept to the end of the response. */
#define HTTPD_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* A response body: /metrics of the largest pool, 4,096 slots with every figure at its widest, is 1.3 MB
 * (tests/unit/test-status.c). */
#define HTTPD_BODY_MAX (4 * 1024 * 1024)

typedef struct Httpd Httpd;
typedef struct HttpdResponse HttpdResponse;

/* Answers one complete GET or HEAD request by calling httpd_respond() before it returns; a request left
 * unanswered gets a 500. Runs synchronously on the loop, so it must be quick, and must not free the server.
 * For HEAD, respond as for GET: the server sends the headers (with the GET body's Content-Length) only. */
typedef void (*httpd_handler_t)(Httpd *h, const HttpRequest *req, HttpdResponse *resp, void *userdata);

/* Serves listen_fd, a listening SOCK_STREAM socket (TCP or AF_UNIX), for instance the one systemd passes
 * as "corral-status" or one bound for --status-listen. The server owns listen_fd whatever happens
 * (_consume): it is closed on failure and by httpd_free(). It is set O_NONBLOCK and close-on-exec, which
 * also affects systemd's copy of the socket. Returns 0, -EINVAL when listen_fd is not a listening stream
 * socket, or another negative errno. */
int httpd_new(sd_event *e, int listen_fd, int64_t priority, httpd_handler_t handler, void *userdata,
              Httpd **ret);
/* Closes the listening socket and every connection, without answering them. */
Httpd *httpd_free(Httpd *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(Httpd *, httpd_free);

/* Sets the response, replacing an earlier one: status 200-599 except 204 and 304 (they have no
 * Content-Length), content_type (NULL: "text/plain; charset=utf-8"), body (NULL: empty), which is copied.
 * Returns 0; -EINVAL for a bad status or content type, -E2BIG for a body over HTTPD_BODY_MAX, -ENOMEM;
 * after a failure the client gets a 500 unless a later call succeeds. */
int httpd_respond(HttpdResponse *resp, int status, const char *content_type, const char *body);

/* The deadlines for connections accepted from now on: for the request head (default
 * HTTPD_HEAD_TIMEOUT_USEC, never past the other) and for the response (default HTTPD_TIMEOUT_USEC); for
 * tests. */
void httpd_set_timeouts(Httpd *h, usec_t head_usec, usec_t usec);
unsigned httpd_n_connections(const Httpd *h);
/* Connections closed to make room for a newer one. */
uint64_t httpd_n_evicted(const Httpd *h);
