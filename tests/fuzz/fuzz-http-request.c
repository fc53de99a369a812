/* SPDX-License-Identifier: MIT */
/* Fuzzes the HTTP request parser for the property its header promises: the verdict and every parsed field
 * are the same however the stream is cut into pieces. The stream is fed whole, cut where the input says,
 * and one byte at a time; any difference aborts.
 *
 * Input: one byte n (its low 4 bits: 0-15 cuts), n little-endian 16-bit cut offsets (taken modulo the
 * stream's length), then the stream. */

#include "fuzz-util.h"
#include "http-request.h"

#define CUTS_MAX 15U

/* What one way of feeding ended with. */
typedef struct Outcome {
        HttpRequest request;
        size_t consumed; /* the sum of what each feed took */
} Outcome;

/* Three requests of 8 KiB each: static, so they need no allocation per input. */
static Outcome whole, cut, bytewise;

static int compare_offsets(const void *a, const void *b) {
        size_t x = *(const size_t *) a, y = *(const size_t *) b;

        return x < y ? -1 : x > y;
}

/* Feeds stream[0..size) in pieces ending at the sorted offsets ends[0..n), then the rest. Once the parser
 * is done or failed it must take nothing more. */
static void feed(Outcome *o, const char *stream, size_t size, const size_t *ends, size_t n) {
        size_t start = 0;

        http_request_init(&o->request);
        o->consumed = 0;
        for (size_t i = 0; i <= n; i++) {
                size_t end = i < n ? ends[i] : size, consumed;
                HttpParseState before = o->request.state, after;

                after = http_request_feed(&o->request, stream + start, end - start, &consumed);
                fuzz_check(consumed <= end - start, "took %zu of %zu bytes", consumed, end - start);
                if (before != HTTP_PARSE_MORE)
                        fuzz_check(after == before && consumed == 0,
                                   "fed after the verdict: state %d, took %zu", after, consumed);
                else if (after == HTTP_PARSE_MORE)
                        fuzz_check(consumed == end - start, "wants more but took %zu of %zu", consumed,
                                   end - start);
                o->consumed += consumed;
                start = end;
        }
}

static void check_same(const Outcome *a, const Outcome *b, const char *how) {
        const HttpRequest *x = &a->request, *y = &b->request;

        fuzz_check(x->state == y->state, "%s: state %d, whole: %d", how, y->state, x->state);
        if (x->state == HTTP_PARSE_MORE)
                return;
        if (x->state == HTTP_PARSE_ERROR) {
                fuzz_check(x->status == y->status && streq_ptr(x->error, y->error),
                           "%s: %d '%s', whole: %d '%s'", how, y->status, y->error, x->status, x->error);
                return;
        }

        /* Where the request ends decides what a keep-alive connection reads next. */
        fuzz_check(a->consumed == b->consumed, "%s: request ends after %zu bytes, whole: %zu", how,
                   b->consumed, a->consumed);
        fuzz_check(x->method == y->method && x->version_minor == y->version_minor && x->close == y->close,
                   "%s: method, version or close differ", how);
        fuzz_check(streq_ptr(x->path, y->path) && streq_ptr(x->query, y->query), "%s: path or query differ",
                   how);
        fuzz_check(x->n_headers == y->n_headers, "%s: %zu headers, whole: %zu", how, y->n_headers,
                   x->n_headers);
        for (size_t i = 0; i < x->n_headers; i++)
                fuzz_check(streq(x->headers[i].name, y->headers[i].name) &&
                                   streq(x->headers[i].value, y->headers[i].value),
                           "%s: header %zu differs", how, i);
}

/* What DONE promises on its own: a GET or HEAD of an origin-form path, and a request that ends with the
 * empty line. */
static void check_done(const Outcome *o, const char *stream) {
        const HttpRequest *r = &o->request;
        const char *end = stream + o->consumed;

        if (r->state != HTTP_PARSE_DONE)
                return;
        fuzz_check(r->method == HTTP_METHOD_GET || r->method == HTTP_METHOD_HEAD, "method %d", r->method);
        fuzz_check(r->path && r->path[0] == '/', "path '%s'", r->path);
        fuzz_check(r->version_minor <= 1, "HTTP/1.%u", r->version_minor);
        fuzz_check(o->consumed >= 2 && end[-1] == '\n' &&
                           (end[-2] == '\n' || (o->consumed >= 3 && end[-2] == '\r' && end[-3] == '\n')),
                   "the request does not end with an empty line");
        fuzz_check(r->version_minor == 0 || http_request_header(r, "Host"), "HTTP/1.1 without Host");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = { data, size };
        size_t n = fuzz_take_u8(&in) & CUTS_MAX, ends[CUTS_MAX], *each;
        const char *stream;
        size_t len;

        for (size_t i = 0; i < n; i++)
                ends[i] = fuzz_take_u16(&in);
        stream = (const char *) in.data;
        len = in.size;
        for (size_t i = 0; i < n; i++)
                ends[i] = len > 0 ? ends[i] % (len + 1) : 0;
        qsort(ends, n, sizeof ends[0], compare_offsets);

        feed(&whole, stream, len, NULL, 0);
        check_done(&whole, stream);

        feed(&cut, stream, len, ends, n);
        check_same(&whole, &cut, "cut");

        each = malloc(sizeof(size_t) * (len + 1));
        fuzz_check(each, "out of memory");
        for (size_t i = 0; i < len; i++)
                each[i] = i + 1;
        feed(&bytewise, stream, len, each, len);
        check_same(&whole, &bytewise, "byte by byte");
        free(each);
        return 0;
}
