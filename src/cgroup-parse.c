/* SPDX-License-Identifier: MIT */
/* Parsers for cgroup and /proc file contents (see cgroup-parse.h). Pure: strings in, numbers out. The
 * kernel's formats are taken as documented in Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/memory.rst
 * and proc(5); anything else is -EINVAL rather than a guess. */

#include <limits.h>

#include "cgroup-parse.h"

/* Parses the n characters at s as an unsigned decimal number; all of them must be digits. */
static int parse_u64_span(const char *s, size_t n, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                unsigned d;

                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                d = (unsigned) (s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* Like parse_u64_span(), but "max" means no limit. */
static int parse_value_span(const char *s, size_t n, uint64_t *ret) {
        if (n == 3 && strncmp(s, "max", 3) == 0) {
                *ret = UINT64_MAX;
                return 0;
        }
        return parse_u64_span(s, n, ret);
}

/* Length of the line at s, without its newline. */
static size_t line_length(const char *s) {
        return strcspn(s, "\n");
}

/* Advances past the line at s and its newline; NULL at the end of the string. */
static const char *next_line(const char *s) {
        s += line_length(s);
        return *s ? s + 1 : NULL;
}

int cgroup_parse_u64(const char *s, uint64_t *ret) {
        size_t n = line_length(s);

        /* Exactly one line: a second one would mean this is not the file we think it is. */
        if (s[n] == '\n' && s[n + 1] != '\0')
                return -EINVAL;
        return parse_value_span(s, n, ret);
}

static bool list_contains(const char *list, size_t n, const char *word) {
        size_t w = strlen(word);

        for (size_t i = 0; i < n;) {
                size_t k = strcspn(list + i, ",");

                if (k > n - i)
                        k = n - i;
                if (k == w && strncmp(list + i, word, w) == 0)
                        return true;
                i += k + 1;
        }
        return false;
}

int cgroup_parse_self(const char *s, char **ret_unified, char **ret_memory) {
        _cleanup_free_ char *unified = NULL, *memory = NULL;

        for (const char *l = s; l && *l; l = next_line(l)) {
                size_t n = line_length(l);
                const char *c1, *c2, *path;
                char **target = NULL;
                size_t path_len;

                if (n == 0)
                        continue;
                c1 = memchr(l, ':', n);
                if (!c1)
                        return -EINVAL;
                c2 = memchr(c1 + 1, ':', n - (size_t) (c1 + 1 - l));
                if (!c2)
                        return -EINVAL;
                path = c2 + 1;
                path_len = n - (size_t) (path - l);
                if (path_len == 0 || path[0] != '/')
                        return -EINVAL;

                if (c1 - l == 1 && l[0] == '0' && c2 == c1 + 1)
                        target = &unified;
                else if (list_contains(c1 + 1, (size_t) (c2 - c1 - 1), "memory"))
                        target = &memory;
                if (!target || *target)
                        continue;
                *target = strndup(path, path_len);
                if (!*target)
                        return -ENOMEM;
        }

        *ret_unified = TAKE_PTR(unified);
        *ret_memory = TAKE_PTR(memory);
        return 0;
}

int cgroup_parse_keyed(const char *s, const char *key, uint64_t *ret) {
        size_t k = strlen(key);

        for (const char *l = s; l && *l; l = next_line(l)) {
                size_t n = line_length(l);

                if (n > k && l[k] == ' ' && strncmp(l, key, k) == 0)
                        return parse_value_span(l + k + 1, n - k - 1, ret);
        }
        return -ENOENT;
}

int cgroup_parse_cpu_stat(const char *s, usec_t *ret_usage_usec) {
        return cgroup_parse_keyed(s, "usage_usec", ret_usage_usec);
}

int cgroup_parse_memory_stat(const char *s, bool v1, uint64_t *ret_anon, uint64_t *ret_file) {
        uint64_t anon, file;
        int r;

        if (v1) {
                /* total_* include descendants; a worker leaf has none, but prefer the sums anyway so a
                 * worker that makes its own sub-cgroups is still counted whole. */
                r = cgroup_parse_keyed(s, "total_rss", &anon);
                if (r == -ENOENT)
                        r = cgroup_parse_keyed(s, "rss", &anon);
                if (r < 0)
                        return r;
                r = cgroup_parse_keyed(s, "total_cache", &file);
                if (r == -ENOENT)
                        r = cgroup_parse_keyed(s, "cache", &file);
                if (r < 0)
                        return r;
        } else {
                r = cgroup_parse_keyed(s, "anon", &anon);
                if (r < 0)
                        return r;
                r = cgroup_parse_keyed(s, "file", &file);
                if (r < 0)
                        return r;
        }
        *ret_anon = anon;
        *ret_file = file;
        return 0;
}

int cgroup_parse_memory_events(const char *s, CgroupMemoryEvents *ret) {
        CgroupMemoryEvents e;
        int r;

        r = cgroup_parse_keyed(s, "high", &e.high);
        if (r < 0)
                return r;
        r = cgroup_parse_keyed(s, "max", &e.max);
        if (r < 0)
                return r;
        r = cgroup_parse_keyed(s, "oom_kill", &e.oom_kill);
        if (r < 0)
                return r;
        *ret = e;
        return 0;
}

/* "12.34" (what the kernel prints with "%lu.%02lu") to 1234. */
static int parse_centi(const char *s, size_t n, unsigned *ret) {
        const char *dot = memchr(s, '.', n);
        uint64_t whole, frac = 0;
        size_t nf;
        int r;

        r = parse_u64_span(s, dot ? (size_t) (dot - s) : n, &whole);
        if (r < 0)
                return r;
        if (dot) {
                nf = n - (size_t) (dot + 1 - s);
                if (nf < 1 || nf > 2)
                        return -EINVAL;
                r = parse_u64_span(dot + 1, nf, &frac);
                if (r < 0)
                        return r;
                if (nf == 1)
                        frac *= 10;
        }
        if (whole > 100 || whole * 100 + frac > 10000)
                return -ERANGE;
        *ret = (unsigned) (whole * 100 + frac);
        return 0;
}

int cgroup_parse_pressure(const char *s, const char *kind, unsigned *ret_avg10, usec_t *ret_total) {
        size_t k = strlen(kind);

        for (const char *l = s; l && *l; l = next_line(l)) {
                size_t n = line_length(l);
                bool have_avg10 = false, have_total = false;
                unsigned avg10 = 0;
                usec_t total = 0;
                int r;

                if (n <= k || l[k] != ' ' || strncmp(l, kind, k) != 0)
                        continue;

                for (size_t i = k + 1; i < n;) {
                        size_t w = strcspn(l + i, " \n");
                        const char *word = l + i;

                        if (w > 7 && strncmp(word, "avg10=", 6) == 0) {
                                r = parse_centi(word + 6, w - 6, &avg10);
                                have_avg10 = true;
                        } else if (w > 6 && strncmp(word, "total=", 6) == 0) {
                                r = parse_u64_span(word + 6, w - 6, &total);
                                have_total = true;
                        } else
                                r = 0;
                        if (r < 0)
                                return r;
                        i += w + 1;
                }
                if (!have_avg10 || !have_total)
                        return -EINVAL;
                *ret_avg10 = avg10;
                *ret_total = total;
                return 0;
        }
        return -ENOENT;
}

int cgroup_parse_pids(const char *s, pid_t **ret) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0, allocated = 0;

        for (size_t i = 0;;) {
                uint64_t v;
                size_t w;
                int r;

                i += strspn(s + i, " \t\n");
                if (s[i] == '\0')
                        break;
                w = strcspn(s + i, " \t\n");
                r = parse_u64_span(s + i, w, &v);
                if (r < 0)
                        return r;
                if (v == 0 || v > INT_MAX)
                        return -ERANGE;
                if (n == allocated) {
                        size_t a = allocated ? allocated * 2 : 16;
                        pid_t *p = reallocarray(pids, a, sizeof(pid_t));

                        if (!p)
                                return -ENOMEM;
                        pids = p;
                        allocated = a;
                }
                pids[n++] = (pid_t) v;
                i += w;
        }
        if (n > INT_MAX)
                return -ERANGE;
        *ret = TAKE_PTR(pids);
        return (int) n;
}

/* "Pss:     1234 kB" → 1234 * 1024. */
static int parse_kb_line(const char *l, size_t n, uint64_t *ret) {
        size_t i = strspn(l, " \t"), w;
        uint64_t v;
        int r;

        w = strcspn(l + i, " \t\n");
        if (i + w > n)
                return -EINVAL;
        r = parse_u64_span(l + i, w, &v);
        if (r < 0)
                return r;
        if (strncmp(l + i + w, " kB", 3) != 0)
                return -EINVAL;
        if (v > UINT64_MAX / 1024)
                return -ERANGE;
        *ret = v * 1024;
        return 0;
}

int proc_parse_smaps_rollup(const char *s, ProcSmapsRollup *ret) {
        ProcSmapsRollup m = {};
        bool have_pss = false;

        for (const char *l = s; l && *l; l = next_line(l)) {
                size_t n = line_length(l);
                const char *v;
                int r;

                if ((v = startswith(l, "Pss:"))) {
                        r = parse_kb_line(v, n - 4, &m.pss);
                        have_pss = true;
                } else if ((v = startswith(l, "Pss_Anon:"))) {
                        r = parse_kb_line(v, n - 9, &m.pss_anon);
                        m.has_pss_anon = true;
                } else if ((v = startswith(l, "Pss_File:"))) {
                        r = parse_kb_line(v, n - 9, &m.pss_file);
                        m.has_pss_file = true;
                } else
                        r = 0;
                if (r < 0)
                        return r;
        }
        if (!have_pss)
                return -ENOENT;
        *ret = m;
        return 0;
}

int proc_parse_stat(const char *s, ProcStat *ret) {
        const char *open = strchr(s, '('), *close = strrchr(s, ')'), *p;
        uint64_t f[25] = {};
        char state;

        /* comm is whatever the process put there with prctl(PR_SET_NAME), including ") (": only the last
         * ')' is reliable. */
        if (!open || !close || close < open || close[1] != ' ')
                return -EINVAL;
        p = close + 2;
        state = *p;
        if (state < 'A' || state > 'z' || p[1] != ' ')
                return -EINVAL;
        p += 2;
        for (unsigned field = 4; field <= 24; field++) {
                size_t w = strcspn(p, " \n");
                int r;

                /* tty_nr (7), tpgid (8), priority (18) and nice (19) may be negative; they are not needed. */
                if (field == 7 || field == 8 || field == 18 || field == 19) {
                        if (w == 0)
                                return -EINVAL;
                } else {
                        r = parse_u64_span(p, w, &f[field]);
                        if (r < 0)
                                return r;
                }
                p += w;
                if (*p != ' ' && field < 24)
                        return -EINVAL;
                p++;
        }
        if (f[4] > INT_MAX || f[6] > INT_MAX)
                return -ERANGE;

        *ret = (ProcStat) {
                .state = state,
                .ppid = (pid_t) f[4],
                .session = (pid_t) f[6],
                .utime = f[14],
                .stime = f[15],
                .cutime = f[16],
                .cstime = f[17],
                .threads = f[20],
                .rss_pages = f[24],
        };
        return 0;
}

usec_t proc_ticks_to_usec(uint64_t ticks, uint64_t hz) {
        unsigned __int128 usec;

        if (hz == 0)
                return 0;
        /* ticks * 10^6 always fits in 128 bits: exact for every result usec_t can hold, whatever hz is. */
        usec = (unsigned __int128) ticks * USEC_PER_SEC / hz;
        return usec > UINT64_MAX ? UINT64_MAX : (usec_t) usec;
}

bool cgroup_controllers_contain(const char *s, const char *name) {
        size_t k = strlen(name);

        for (size_t i = 0;;) {
                size_t w;

                i += strspn(s + i, " \n");
                if (s[i] == '\0')
                        return false;
                w = strcspn(s + i, " \n");
                if (w == k && strncmp(s + i, name, k) == 0)
                        return true;
                i += w;
        }
}
