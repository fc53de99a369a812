/* SPDX-License-Identifier: MIT */
/* Small shared helpers: fds, strings, string vectors, reading a small file, clocks, human-readable durations
 * and sizes, and signal names. Nothing here logs. */

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "util.h"

int safe_close(int fd) {
        if (fd >= 0) {
                int saved_errno = errno;

                /* On Linux close() releases the fd even when it fails with EINTR, so never retry it: the
                 * number may already belong to someone else. */
                (void) close(fd);
                errno = saved_errno;
        }
        return -EBADF;
}

void close_pairp(int (*p)[2]) {
        (*p)[0] = safe_close((*p)[0]);
        (*p)[1] = safe_close((*p)[1]);
}

const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        if (strncmp(s, prefix, n) != 0)
                return NULL;
        return s + n;
}

bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        if (!l)
                return 0;
        while (l[n])
                n++;
        return n;
}

char **strv_copy(char *const *l) {
        size_t n = strv_length(l);
        char **c;

        c = calloc(n + 1, sizeof(char *));
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(l[i]);
                if (!c[i])
                        return strv_free(c);
        }
        return c;
}

int strv_consume(char ***l, char *value) {
        size_t n;
        char **c;

        /* "_consume": value is ours whatever happens, so a caller can write strv_consume(&l, TAKE_PTR(s))
         * without a leak on OOM. */
        if (!value)
                return -EINVAL;

        n = strv_length(*l);
        c = reallocarray(*l, n + 2, sizeof(char *));
        if (!c) {
                free(value);
                return -ENOMEM;
        }
        c[n] = value;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int strv_extend(char ***l, const char *value) {
        char *v;

        if (!value)
                return -EINVAL;

        v = strdup(value);
        if (!v)
                return -ENOMEM;
        return strv_consume(l, v);
}

char *strdup_printf(const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return NULL;
        return s;
}

unsigned usable_cpus(void) {
        cpu_set_t set;

        if (sched_getaffinity(0, sizeof set, &set) < 0)
                return 1;
        return MAX(CPU_COUNT(&set), 1);
}

uint64_t nofile_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return UINT64_MAX;
        return (uint64_t) rl.rlim_cur;
}

usec_t now_usec(clockid_t clock) {
        struct timespec ts;

        /* Only fails for an invalid clock id, which is a programming error. */
        if (clock_gettime(clock, &ts) < 0)
                abort();
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Appends "<whole>[.<fraction>]<unit>" where fraction is rem/unit without trailing zeros. */
static size_t append_with_fraction(char *buf, size_t size, size_t pos, usec_t whole, usec_t rem, usec_t unit,
                                   const char *suffix) {
        char frac[16] = "";
        int r;

        if (rem > 0) {
                size_t digits = 0, k = 0;

                for (usec_t u = unit; u > 1; u /= 10)
                        digits++;
                r = snprintf(frac, sizeof(frac), ".%0*" PRIu64, (int) digits, rem);
                if (r < 0 || (size_t) r >= sizeof(frac))
                        frac[0] = 0;
                k = strlen(frac);
                while (k > 1 && frac[k - 1] == '0')
                        frac[--k] = 0;
        }

        r = snprintf(buf + pos, size - pos, "%s%" PRIu64 "%s%s", pos > 0 ? " " : "", whole, frac, suffix);
        if (r < 0 || (size_t) r >= size - pos)
                return size - 1;
        return pos + (size_t) r;
}

const char *format_usec(char *buf, size_t size, usec_t u) {
        static const struct {
                const char *suffix;
                usec_t usec;
        } units[] = {
                { "d", USEC_PER_DAY },
                { "h", USEC_PER_HOUR },
                { "min", USEC_PER_MINUTE },
        };
        size_t pos = 0;

        if (size == 0)
                return buf;
        buf[0] = 0;

        if (u == USEC_INFINITY) {
                snprintf(buf, size, "infinity");
                return buf;
        }
        if (u == 0) {
                snprintf(buf, size, "0");
                return buf;
        }

        for (size_t i = 0; i < ELEMENTSOF(units) && pos < size - 1; i++) {
                if (u < units[i].usec)
                        continue;
                pos = append_with_fraction(buf, size, pos, u / units[i].usec, 0, 1, units[i].suffix);
                u %= units[i].usec;
        }

        /* Below a minute, the seconds carry the sub-second part as a fraction ("1.5s"); below a second,
         * milliseconds do ("1.25ms"); below that, plain microseconds. */
        if (u == 0 || pos >= size - 1)
                return buf;
        if (u >= USEC_PER_SEC)
                append_with_fraction(buf, size, pos, u / USEC_PER_SEC, u % USEC_PER_SEC, USEC_PER_SEC, "s");
        else if (u >= USEC_PER_MSEC)
                append_with_fraction(buf, size, pos, u / USEC_PER_MSEC, u % USEC_PER_MSEC, USEC_PER_MSEC,
                                     "ms");
        else
                append_with_fraction(buf, size, pos, u, 0, 1, "us");
        return buf;
}

const char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char suffixes[] = "KMGTPE";
        uint64_t factor = 1024;
        size_t i = 0;

        if (size == 0)
                return buf;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 "B", bytes);
                return buf;
        }

        /* Integer arithmetic so 2^64-1 does not lose precision through a double. */
        while (i + 1 < sizeof(suffixes) - 1 && bytes / factor >= 1024) {
                factor *= 1024;
                i++;
        }
        snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "%c", bytes / factor, (bytes % factor) * 10 / factor,
                 suffixes[i]);
        return buf;
}

static const char *const signal_names[] = {
        [SIGHUP] = "HUP",   [SIGINT] = "INT",       [SIGQUIT] = "QUIT", [SIGILL] = "ILL",
        [SIGTRAP] = "TRAP", [SIGABRT] = "ABRT",     [SIGBUS] = "BUS",   [SIGFPE] = "FPE",
        [SIGKILL] = "KILL", [SIGUSR1] = "USR1",     [SIGSEGV] = "SEGV", [SIGUSR2] = "USR2",
        [SIGPIPE] = "PIPE", [SIGALRM] = "ALRM",     [SIGTERM] = "TERM", [SIGSTKFLT] = "STKFLT",
        [SIGCHLD] = "CHLD", [SIGCONT] = "CONT",     [SIGSTOP] = "STOP", [SIGTSTP] = "TSTP",
        [SIGTTIN] = "TTIN", [SIGTTOU] = "TTOU",     [SIGURG] = "URG",   [SIGXCPU] = "XCPU",
        [SIGXFSZ] = "XFSZ", [SIGVTALRM] = "VTALRM", [SIGPROF] = "PROF", [SIGWINCH] = "WINCH",
        [SIGIO] = "IO",     [SIGPWR] = "PWR",       [SIGSYS] = "SYS",
};

const char *signal_to_string(int sig) {
        if (sig <= 0 || (size_t) sig >= ELEMENTSOF(signal_names))
                return NULL;
        return signal_names[sig];
}

bool strv_equal(char *const *a, char *const *b) {
        size_t i = 0;

        for (; a && a[i] && b && b[i]; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return (!a || !a[i]) && (!b || !b[i]);
}

int readlink_malloc(const char *path, char **ret) {
        for (size_t size = 256; size <= 65536; size *= 2) {
                char *buf = malloc(size);
                ssize_t n;

                if (!buf)
                        return -ENOMEM;
                n = readlink(path, buf, size);
                if (n < 0) {
                        int r = -errno;
                        free(buf);
                        return r;
                }
                if ((size_t) n < size) {
                        buf[n] = '\0';
                        *ret = buf;
                        return 0;
                }
                free(buf);
        }
        return -ENAMETOOLONG;
}

int read_file_max(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        char *shrunk;
        FILE *f;
        size_t n = 0;
        int r = 0;

        f = fopen(path, "re");
        if (!f)
                return -errno;

        /* One byte more than allowed, to tell "exactly at the limit" from "over it", and one for the NUL. */
        buf = malloc(max + 2);
        if (!buf)
                r = -ENOMEM;
        else {
                n = fread(buf, 1, max + 1, f);
                if (ferror(f))
                        r = errno > 0 ? -errno : -EIO;
                else if (n > max)
                        r = -EFBIG;
        }
        fclose(f);
        if (r < 0)
                return r;

        /* Often kept for long (a Config keeps its file's text): no more than it takes. */
        shrunk = realloc(buf, n + 1);
        if (shrunk)
                buf = shrunk;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

int fd_prepare_listener(int fd) {
        int v = 0, flags;
        socklen_t len = sizeof v;

        if (fd < 0)
                return -EBADF;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
                return errno == ENOTSOCK ? -EINVAL : -errno;
        if (!v)
                return -EINVAL;
        len = sizeof v;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
                return -errno;
        if (v != SOCK_STREAM)
                return -EINVAL;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;
        return 0;
}

int pid_compare(const void *a, const void *b) {
        pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;

        return (x > y) - (x < y);
}
