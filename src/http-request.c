/* SPDX-License-Identifier: MIT */
/* The strict HTTP/1.1 request parser: lines are parsed as soon as they are complete, in place in a fixed
 * buffer, so memory is bounded and a bad request is rejected at its first bad line. */
#include <strings.h>

#include "http-request.h"

/* The longest request line that can be valid: a method far longer than any real one, the longest target,
 * the version, two spaces and the CRLF. Longer lines are judged on this prefix alone, so the verdict is
 * the same whether or not the line end has arrived yet. */
#define HTTP_REQUEST_LINE_MAX (HTTP_TARGET_MAX + 64)

static const char *const http_method_table[_HTTP_METHOD_MAX] = {
        [HTTP_METHOD_GET] = "GET",
        [HTTP_METHOD_HEAD] = "HEAD",
};

const char *http_method_to_string(HttpMethod m) {
        if (m < 0 || m >= _HTTP_METHOD_MAX)
                return NULL;
        return http_method_table[m];
}

const char *http_status_to_string(int status) {
        static const struct {
                int status;
                const char *reason;
        } table[] = {
                { 200, "OK" },
                { 400, "Bad Request" },
                { 403, "Forbidden" },
                { 404, "Not Found" },
                { 405, "Method Not Allowed" },
                { 408, "Request Timeout" },
                { 413, "Content Too Large" },
                { 414, "URI Too Long" },
                { 431, "Request Header Fields Too Large" },
                { 500, "Internal Server Error" },
                { 501, "Not Implemented" },
                { 503, "Service Unavailable" },
                { 505, "HTTP Version Not Supported" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].status == status)
                        return table[i].reason;
        return "";
}

void http_request_init(HttpRequest *r) {
        /* Field by field: the buffer is written before it is read and need not be cleared. */
        r->state = HTTP_PARSE_MORE;
        r->status = 0;
        r->error = NULL;
        r->method = _HTTP_METHOD_INVALID;
        r->version_minor = 0;
        r->path = r->query = NULL;
        r->close = false;
        r->n_headers = 0;
        r->size = r->scan = r->line_start = 0;
        r->n_host = r->n_content_length = 0;
        r->got_request_line = r->keep_alive = false;
}

static void fail(HttpRequest *r, int status, const char *error) {
        r->state = HTTP_PARSE_ERROR;
        r->status = status;
        r->error = error;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_tchar(s[i]))
                        return false;
        return true;
}

static bool is_ows(char c) {
        return c == ' ' || c == '\t';
}

/* A line too long to be a request line: a long target is 414, anything else is malformed. Looks only at
 * the first HTTP_REQUEST_LINE_MAX + 1 bytes. */
static void fail_long_request_line(HttpRequest *r, const char *p) {
        const size_t n = HTTP_REQUEST_LINE_MAX + 1;
        const char *sp1, *sp2;

        sp1 = memchr(p, ' ', n);
        if (sp1) {
                sp2 = memchr(sp1 + 1, ' ', p + n - sp1 - 1);
                if ((size_t) ((sp2 ?: p + n) - sp1 - 1) > HTTP_TARGET_MAX)
                        return fail(r, 414, "request target too long");
        }
        fail(r, 400, "request line too long");
}

static void parse_request_line(HttpRequest *r, char *p, size_t len) {
        char *sp1, *sp2, *target, *version, *q;
        size_t target_len;

        /* Exactly "method SP target SP version": no other spaces, so no empty fields either. */
        sp1 = memchr(p, ' ', len);
        sp2 = sp1 ? memchr(sp1 + 1, ' ', p + len - sp1 - 1) : NULL;
        if (!sp2 || memchr(sp2 + 1, ' ', p + len - sp2 - 1))
                return fail(r, 400, "malformed request line");
        target = sp1 + 1;
        target_len = sp2 - target;
        version = sp2 + 1;

        if (target_len > HTTP_TARGET_MAX)
                return fail(r, 414, "request target too long");
        if (!is_token(p, sp1 - p))
                return fail(r, 400, "malformed method");
        if (target_len == 0)
                return fail(r, 400, "malformed request line");
        /* Visible ASCII only (RFC 3986; anything else must be percent-encoded), and no fragment. */
        for (size_t i = 0; i < target_len; i++) {
                unsigned char c = target[i];

                if (c <= ' ' || c >= 0x7f || c == '#')
                        return fail(r, 400, "invalid character in request target");
        }
        if (strlen(version) != 8 || !startswith(version, "HTTP/") || version[5] < '0' || version[5] > '9' ||
            version[6] != '.' || version[7] < '0' || version[7] > '9')
                return fail(r, 400, "malformed HTTP version");
        if (!streq(version, "HTTP/1.0") && !streq(version, "HTTP/1.1"))
                return fail(r, 505, "only HTTP/1.0 and HTTP/1.1 are supported");

        *sp1 = 0;
        if (streq(p, "GET"))
                r->method = HTTP_METHOD_GET;
        else if (streq(p, "HEAD"))
                r->method = HTTP_METHOD_HEAD;
        else
                return fail(r, 405, "only GET and HEAD are allowed");
        /* Origin form only: no absolute form (we are no proxy), and '*' is for OPTIONS. */
        if (target[0] != '/')
                return fail(r, 400, "request target must start with '/'");

        *sp2 = 0;
        q = strchr(target, '?');
        if (q) {
                *q = 0;
                r->query = q + 1;
        }
        r->path = target;
        r->version_minor = version[7] - '0';
        r->got_request_line = true;
}

static void parse_connection(HttpRequest *r, const char *v) {
        /* A comma-separated list of tokens; only "close" and "keep-alive" matter to us. */
        while (*v) {
                size_t n;

                v += strspn(v, " \t,");
                n = strcspn(v, " \t,");
                if (n == 5 && strncasecmp(v, "close", 5) == 0)
                        r->close = true;
                else if (n == 10 && strncasecmp(v, "keep-alive", 10) == 0)
                        r->keep_alive = true;
                v += n;
        }
}

static void parse_header(HttpRequest *r, char *p, size_t len) {
        char *colon, *value, *end;

        if (is_ows(p[0]))
                return fail(r, 400, "obsolete header line folding is not supported");
        colon = memchr(p, ':', len);
        /* Whitespace before the colon is not a tchar, which rejects it as RFC 9112 demands. */
        if (!colon || !is_token(p, colon - p))
                return fail(r, 400, "malformed header line");
        if (r->n_headers >= HTTP_HEADERS_MAX)
                return fail(r, 431, "too many header fields");

        *colon = 0;
        value = colon + 1;
        end = p + len;
        while (value < end && is_ows(*value))
                value++;
        while (end > value && is_ows(end[-1]))
                end--;
        *end = 0;
        /* Field values are VCHAR, SP, HTAB and obs-text; every other control character is refused. */
        for (const char *c = value; c < end; c++)
                if ((unsigned char) *c < ' ' ? *c != '\t' : *c == 0x7f)
                        return fail(r, 400, "invalid character in header value");

        if (strcasecmp(p, "Content-Length") == 0) {
                if (++r->n_content_length > 1 || *value == 0 ||
                    strspn(value, "0123456789") != strlen(value))
                        return fail(r, 400, "invalid Content-Length");
                if (strspn(value, "0") != strlen(value))
                        return fail(r, 413, "requests have no body here");
        } else if (strcasecmp(p, "Transfer-Encoding") == 0)
                return fail(r, 400, "requests have no body here, Transfer-Encoding is not supported");
        else if (strcasecmp(p, "Host") == 0) {
                if (++r->n_host > 1)
                        return fail(r, 400, "more than one Host header");
        } else if (strcasecmp(p, "Connection") == 0)
                parse_connection(r, value);

        r->headers[r->n_headers++] = (HttpHeader) { .name = p, .value = value };
}

static void finish(HttpRequest *r) {
        if (r->version_minor == 1 && r->n_host == 0)
                return fail(r, 400, "HTTP/1.1 requires a Host header");
        if (r->version_minor == 0 && !r->keep_alive)
                r->close = true;
        r->state = HTTP_PARSE_DONE;
}

static void parse_line(HttpRequest *r, char *p, size_t len) {
        /* len excludes the LF; a CR right before it belongs to the line end. */
        if (len > 0 && p[len - 1] == '\r')
                len--;
        /* Before the byte checks, to give the same answer as when the line end has not arrived yet. */
        if (!r->got_request_line && len > HTTP_REQUEST_LINE_MAX)
                return fail_long_request_line(r, p);
        p[len] = 0;
        if (memchr(p, 0, len))
                return fail(r, 400, "NUL byte in request");
        if (memchr(p, '\r', len))
                return fail(r, 400, "CR not followed by LF");

        if (!r->got_request_line)
                parse_request_line(r, p, len);
        else if (len == 0)
                finish(r);
        else
                parse_header(r, p, len);
}

HttpParseState http_request_feed(HttpRequest *r, const void *data, size_t size, size_t *ret_consumed) {
        size_t start = r->size, n;

        if (r->state != HTTP_PARSE_MORE) {
                if (ret_consumed)
                        *ret_consumed = 0;
                return r->state;
        }

        n = MIN(size, sizeof r->buf - r->size);
        if (n > 0)
                memcpy(r->buf + r->size, data, n);
        r->size += n;

        while (r->state == HTTP_PARSE_MORE) {
                char *nl = memchr(r->buf + r->scan, '\n', r->size - r->scan);

                if (!nl) {
                        r->scan = r->size;
                        /* One byte of slack: it may be the CR of a line just short enough. */
                        if (!r->got_request_line && r->size - r->line_start > HTTP_REQUEST_LINE_MAX + 1)
                                fail_long_request_line(r, r->buf + r->line_start);
                        else if (r->size >= sizeof r->buf)
                                fail(r, 431, "request header section too large");
                        break;
                }
                r->scan = nl - r->buf + 1;
                parse_line(r, r->buf + r->line_start, nl - (r->buf + r->line_start));
                r->line_start = r->scan;
        }

        if (ret_consumed)
                *ret_consumed = r->state == HTTP_PARSE_DONE ? r->scan - start : n;
        return r->state;
}

const char *http_request_header(const HttpRequest *r, const char *name) {
        for (size_t i = 0; i < r->n_headers; i++)
                if (strcasecmp(r->headers[i].name, name) == 0)
                        return r->headers[i].value;
        return NULL;
}
