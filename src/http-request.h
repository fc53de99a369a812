/* SPDX-License-Identifier: MIT */
/* A strict, incremental HTTP/1.1 request parser for the status endpoint: GET and HEAD only, no body, every
 * size bounded. Pure: no I/O, no allocation, no logging. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* The request line and the header section together, line ends and the final empty line included. */
#define HTTP_REQUEST_MAX 8192
#define HTTP_TARGET_MAX 2048
#define HTTP_HEADERS_MAX 64

typedef enum HttpMethod {
        HTTP_METHOD_GET,
        HTTP_METHOD_HEAD,
        _HTTP_METHOD_MAX,
        _HTTP_METHOD_INVALID = -EINVAL,
} HttpMethod;

typedef enum HttpParseState {
        HTTP_PARSE_MORE,  /* feed more bytes */
        HTTP_PARSE_DONE,  /* a complete request: the fields below are valid */
        HTTP_PARSE_ERROR, /* answer with .status and .error, then close */
} HttpParseState;

typedef struct HttpHeader {
        const char *name;  /* as sent; names compare case-insensitively */
        const char *value; /* without surrounding whitespace */
} HttpHeader;

/* All strings point into .buf: an HttpRequest is used where it was initialized and never copied. */
typedef struct HttpRequest {
        HttpParseState state;
        int status;        /* HTTP_PARSE_ERROR: 400, 405, 413, 414, 431 or 505 */
        const char *error; /* HTTP_PARSE_ERROR: a short static explanation for the response body */

        HttpMethod method;
        unsigned version_minor; /* HTTP/1.0 or HTTP/1.1 */
        const char *path;       /* the request-target up to '?', as sent (not percent-decoded) */
        const char *query;      /* what follows '?', or NULL when there is no '?' */
        bool close;             /* the client asked for Connection: close (implied for HTTP/1.0) */
        HttpHeader headers[HTTP_HEADERS_MAX];
        size_t n_headers;

        /* Private. */
        size_t size, scan, line_start;
        unsigned n_host, n_content_length;
        bool got_request_line, keep_alive;
        char buf[HTTP_REQUEST_MAX];
} HttpRequest;

void http_request_init(HttpRequest *r);

/* Feeds size bytes of the stream. Returns the new state; once DONE or ERROR, further feeding changes
 * nothing. *ret_consumed (may be NULL) is how many of the bytes were taken: on DONE those up to the end of
 * the empty line that ends the request, the rest belongs to whatever follows. CRLF and bare LF both end a
 * line; a CR elsewhere, a NUL, obsolete line folding and any empty line before the request line are
 * errors. HTTP/1.1 requires exactly one Host header. The result does not depend on how the stream is cut
 * into pieces. */
HttpParseState http_request_feed(HttpRequest *r, const void *data, size_t size, size_t *ret_consumed);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *http_request_header(const HttpRequest *r, const char *name);

const char *http_method_to_string(HttpMethod m);
/* The reason phrase for a status code ("Not Found"), "" for codes without one here. */
const char *http_status_to_string(int status);
