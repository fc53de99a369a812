/* SPDX-License-Identifier: MIT */
/* Small shared helpers: cleanup attributes, fd and string utilities, time. No logging here. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint64_t usec_t;

#define USEC_INFINITY ((usec_t) UINT64_MAX)
#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define USEC_PER_SEC ((usec_t) 1000000ULL)
#define USEC_PER_MINUTE (60ULL * USEC_PER_SEC)
#define USEC_PER_HOUR (60ULL * USEC_PER_MINUTE)
#define USEC_PER_DAY (24ULL * USEC_PER_HOUR)
#define NSEC_PER_USEC ((uint64_t) 1000ULL)

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _sentinel_ __attribute__((sentinel))
#define _unused_ __attribute__((unused))
#define _noreturn_ __attribute__((noreturn))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define CLAMP(x, lo, hi) ((x) < (lo) ? (lo) : (x) > (hi) ? (hi) : (x))

/* Hand over ownership of a pointer or fd held by a _cleanup_ variable. */
#define TAKE_PTR(p)                                                                                       \
        ({                                                                                                \
                typeof(p) _p_ = (p);                                                                      \
                (p) = NULL;                                                                               \
                _p_;                                                                                      \
        })
#define TAKE_FD(fd)                                                                                       \
        ({                                                                                                \
                int _fd_ = (fd);                                                                          \
                (fd) = -EBADF;                                                                            \
                _fd_;                                                                                     \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                           \
        static inline void func##p(type *p) {                                                             \
                if (*p)                                                                                   \
                        func(*p);                                                                         \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Close an fd if it is valid, keep errno, and return -EBADF so callers can write fd = safe_close(fd). */
int safe_close(int fd);
/* Checks that fd is a listening SOCK_STREAM socket (-EINVAL if not, -EBADF for a negative fd) and makes it
 * non-blocking and close-on-exec: sockets from LISTEN_FDS come with neither flag. Non-blocking, because a
 * connection can be reset between the wakeup and accept(); close-on-exec, because workers must not inherit
 * it. Returns 0 or -errno. */
int fd_prepare_listener(int fd);
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)
void close_pairp(int (*p)[2]);

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}
static inline bool isempty(const char *s) {
        return !s || !*s;
}
/* Returns a pointer just past prefix in s, or NULL when s does not start with prefix. */
const char *startswith(const char *s, const char *prefix);
/* Whether s ends with suffix. */
bool endswith(const char *s, const char *suffix);

/* NULL-terminated string vectors ("strv"). */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char *const *l);
char **strv_copy(char *const *l);
bool strv_equal(char *const *a, char *const *b);
/* Appends a copy of value; returns 0 or -ENOMEM (the vector is unchanged on failure). */
int strv_extend(char ***l, const char *value);
/* Appends value itself, which the vector owns whatever happens (it is freed on failure). */
int strv_consume(char ***l, char *value);

/* Formats into a newly allocated string; NULL on OOM. */
char *strdup_printf(const char *format, ...) _printf_(1, 2);

/* The target of the symlink at path, allocated. Returns 0 or -errno. */
int readlink_malloc(const char *path, char **ret);

usec_t now_usec(clockid_t clock);

/* qsort()/bsearch() order of pid_t values. */
int pid_compare(const void *a, const void *b);
/* CPUs this process may run on (its affinity mask), at least 1. */
unsigned usable_cpus(void);
/* The soft RLIMIT_NOFILE: how many fds this process may open; UINT64_MAX when unlimited or unknown. */
uint64_t nofile_limit(void);
/* Formats a duration like "1.5s", "250ms", "2min 3s" into buf (at least FORMAT_USEC_MAX bytes). */
#define FORMAT_USEC_MAX 64
const char *format_usec(char *buf, size_t size, usec_t u);
/* Formats a byte count like "512.0M" into buf (at least FORMAT_BYTES_MAX bytes). */
#define FORMAT_BYTES_MAX 16
const char *format_bytes(char *buf, size_t size, uint64_t bytes);

/* Reads the whole file at path, at most max bytes. Returns 0 with an allocated copy, NUL-terminated, in
 * *ret and its size in *ret_size; -EFBIG when the file is larger; or the negative errno of opening or
 * reading it. */
int read_file_max(const char *path, size_t max, char **ret, size_t *ret_size);

/* Signal names without the SIG prefix ("TERM"), NULL for unknown numbers. The reverse is
 * signal_from_string() in parse.h. */
const char *signal_to_string(int sig);

/* Exit codes corral itself uses (sysexits-style where one fits; 3 and 4 as LSB status codes: "not
 * running", "unknown"/not allowed). */
enum {
        EXIT_NOT_RUNNING = 3,
        EXIT_DENIED = 4,
        EXIT_USAGE = 64,
        EXIT_SOFTWARE = 70,
        EXIT_OSERR = 71,
        EXIT_TEMPFAIL = 75, /* the daemon did not answer in time */
        EXIT_CONFIG = 78,
};
