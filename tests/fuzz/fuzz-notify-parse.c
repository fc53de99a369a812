/* SPDX-License-Identifier: MIT */
/* Fuzzes notify_message_parse(), the parser of every datagram a worker sends, against a reference
 * reading of the protocol: the verdict, each flag (the last assignment of its key wins) and STATUS=. */

#include <string.h>

#include "fuzz-util.h"
#include "notify.h"

/* The value of the last line of data that starts with key ("READY="), or NULL; *ret_len its length. */
static const char *last_value(const char *data, size_t size, const char *key, size_t *ret_len) {
        const char *found = NULL, *end = data + size;
        size_t k = strlen(key);

        for (const char *l = data; l < end;) {
                const char *nl = memchr(l, '\n', (size_t) (end - l)) ?: end;

                if ((size_t) (nl - l) >= k && memcmp(l, key, k) == 0) {
                        found = l + k;
                        *ret_len = (size_t) (nl - found);
                }
                l = nl + 1;
        }
        return found;
}

static bool value_is_1(const char *data, size_t size, const char *key) {
        size_t n = 0;
        const char *v = last_value(data, size, key, &n);

        return v && n == 1 && v[0] == '1';
}

/* Malformed: a NUL anywhere, or a line that is not empty and has no '='. */
static bool malformed(const char *data, size_t size) {
        const char *end = data + size;

        if (memchr(data, 0, size))
                return true;
        for (const char *l = data; l < end;) {
                const char *nl = memchr(l, '\n', (size_t) (end - l)) ?: end;

                if (nl > l && !memchr(l, '=', (size_t) (nl - l)))
                        return true;
                l = nl + 1;
        }
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *in = (const char *) data, *status;
        _cleanup_free_ char *buf = NULL;
        NotifyMessage m = { .status = "untouched" };
        size_t status_len = 0;
        int r;

        /* The parser's contract: size + 1 bytes, the last one its to write the terminator into. */
        buf = malloc(size + 1);
        fuzz_check(buf, "out of memory");
        memcpy(buf, data, size);
        r = notify_message_parse(buf, size, &m);

        fuzz_check(r == 0 || r == -EBADMSG, "unexpected return %d", r);
        fuzz_check((r == -EBADMSG) == malformed(in, size), "verdict %d disagrees with the reference", r);
        if (r < 0) {
                fuzz_check(streq(m.status, "untouched"), "output written on failure");
                return 0;
        }

        fuzz_check(m.ready == value_is_1(in, size, "READY="), "READY= misread");
        fuzz_check(m.stopping == value_is_1(in, size, "STOPPING="), "STOPPING= misread");
        fuzz_check(m.watchdog == value_is_1(in, size, "WATCHDOG="), "WATCHDOG= misread");
        fuzz_check(m.recycle == value_is_1(in, size, "RECYCLE="), "RECYCLE= misread");
        fuzz_check(m.reloading == value_is_1(in, size, "RELOADING="), "RELOADING= misread");

        /* STATUS= points into the buffer at the last assignment's value, terminated where its line ended. */
        status = last_value(in, size, "STATUS=", &status_len);
        fuzz_check(!m.status == !status, "STATUS= presence misread");
        if (status) {
                fuzz_check(m.status == buf + (status - in), "STATUS= does not point at its value");
                fuzz_check(strlen(m.status) == status_len, "STATUS= not terminated at its line end");
        }
        return 0;
}
