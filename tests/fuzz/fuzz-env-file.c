/* SPDX-License-Identifier: MIT */
/* Fuzzes env_file_parse(), the reader of EnvironmentFile=: what it accepts is a list of valid assignments
 * that a worker may get (no name twice, none of corral's), which written back in double quotes parses to
 * the same list; what it refuses names a line of the input and says why. */

#include "env.h"
#include "fuzz-util.h"

/* Far beyond a real environment file; larger inputs only slow the run down. */
#define INPUT_MAX (64U * 1024U)

/* Each entry as NAME="VALUE", with '"' and '\' escaped: the one quoting that holds any value. */
static char *write_back(char *const *l, size_t *ret_size) {
        size_t size = 1;
        char *out, *p;

        for (char *const *e = l; e && *e; e++)
                size += 2 * strlen(*e) + 4;
        out = p = malloc(size);
        fuzz_check(out, "out of memory");
        for (char *const *e = l; e && *e; e++) {
                const char *eq = strchr(*e, '=');

                p += sprintf(p, "%.*s=\"", (int) (eq - *e), *e);
                for (const char *v = eq + 1; *v; v++) {
                        if (*v == '"' || *v == '\\')
                                *p++ = '\\';
                        *p++ = *v;
                }
                p += sprintf(p, "\"\n");
        }
        *p = 0;
        *ret_size = (size_t) (p - out);
        return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_strv_free_ char **l = NULL, **again = NULL;
        _cleanup_free_ char *text = NULL;
        char why[256] = "";
        unsigned line = 0, lines = 1;
        size_t text_size;
        int r;

        if (size > INPUT_MAX)
                return -1; /* not added to the corpus */
        for (size_t i = 0; i < size; i++)
                lines += data[i] == '\n';

        r = env_file_parse((const char *) data, size, &l, &line, why, sizeof why);
        fuzz_check(r == 0 || r == -EINVAL || r == -EPERM, "returned %d", r);
        if (r < 0) {
                fuzz_check(why[0] && !strchr(why, '\n'), "no one-line reason: '%s'", why);
                fuzz_check(line <= lines, "line %u of %u", line, lines);
                fuzz_check(line > 0 || memchr(data, 0, size), "no line for '%s'", why);
                return 0;
        }

        for (char **e = l; e && *e; e++) {
                size_t n = strcspn(*e, "=");

                fuzz_check(env_assignment_check(*e, why, sizeof why) == 0, "'%s' kept: %s", *e, why);
                for (char **f = l; f < e; f++)
                        fuzz_check(strncmp(*f, *e, n + 1) != 0, "'%.*s' twice", (int) n, *e);
        }

        text = write_back(l, &text_size);
        r = env_file_parse(text, text_size, &again, &line, why, sizeof why);
        fuzz_check(r == 0, "written back, line %u is refused: %s\n%s", line, why, text);
        fuzz_check(strv_equal(l, again), "written back, it reads differently:\n%s", text);
        return 0;
}
