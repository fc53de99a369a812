/* SPDX-License-Identifier: MIT */
/* Command-line checks getopt does not make. */
#include <string.h>

#include "cmdline.h"

static const struct option *find_long(const struct option *options, const char *name, size_t n) {
        for (const struct option *o = options; o->name; o++)
                if (strlen(o->name) == n && strncmp(o->name, name, n) == 0)
                        return o;
        return NULL;
}

int cmdline_find_abbreviated(int argc, char *const argv[], const struct option *options, const char *shortopts) {
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];

                if (strcmp(a, "--") == 0)
                        return 0;
                if (a[0] != '-' || a[1] == 0)
                        continue;
                if (a[1] == '-') {
                        size_t n = strcspn(a + 2, "=");
                        const struct option *o = find_long(options, a + 2, n);

                        if (!o)
                                return i;
                        if (o->has_arg == required_argument && a[2 + n] != '=')
                                i++;
                        continue;
                }
                /* A cluster of short options: the first that takes an argument takes the rest, or the next. */
                for (const char *c = a + 1; *c; c++) {
                        const char *s = *c != ':' ? strchr(shortopts, *c) : NULL;

                        if (s && s[1] == ':') {
                                if (!c[1])
                                        i++;
                                break;
                        }
                }
        }
        return 0;
}
