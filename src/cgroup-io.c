/* SPDX-License-Identifier: MIT */
/* File helpers for the cgroup code: whole-file reads and single writes relative to a directory fd (so
 * everything works on a fake tree), and small pid sets. No logging. */

#include <fcntl.h>
#include <unistd.h>

#include "cgroup-io.h"
#include "cgroup-parse.h"

/* Files bigger than this are not cgroup or /proc files we understand. */
#define READ_FILE_MAX (16U * 1024U * 1024U)
/* Bound on the pid sets the proc backend and the kill loops build. */
#define PID_SET_MAX 65536U

int dir_read_file(int dirfd, const char *name, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        /* cgroup and /proc files report size 0 and are generated on read: read until EOF. */
        for (;;) {
                ssize_t n;

                if (allocated - size < 2) {
                        size_t a = allocated ? allocated * 2 : 4096;
                        char *p;

                        if (a > READ_FILE_MAX)
                                return -EFBIG;
                        p = realloc(buf, a);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        allocated = a;
                }
                n = read(fd, buf + size, allocated - size - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        if (!buf) {
                buf = strdup("");
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

int fd_read_text(int fd, char *buf, size_t size) {
        ssize_t k;

        if (size < 2)
                return -EINVAL;
        /* One read: seq_file hands a small file over whole (as a regular file does), and a second read only
         * to see EOF would have cgroupfs generate the file twice. */
        do
                k = pread(fd, buf, size - 1, 0);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if ((size_t) k == size - 1)
                return -EFBIG;
        buf[k] = '\0';
        return (int) k;
}

int dir_write_file(int dirfd, const char *name, const char *s) {
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(s);
        ssize_t k;

        /* No O_CREAT: a missing file means a missing controller (or leaf), never something to create. No
         * O_TRUNC either: cgroupfs takes each write() whole, wherever the offset is. */
        fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        k = write(fd, s, n);
        if (k < 0)
                return -errno;
        if ((size_t) k != n)
                return -EIO;
        return 0;
}

int dir_read_u64(int dirfd, const char *name, uint64_t *ret) {
        _cleanup_free_ char *s = NULL;
        int r;

        r = dir_read_file(dirfd, name, &s);
        if (r < 0)
                return r;
        return cgroup_parse_u64(s, ret);
}

int dir_read_keyed(int dirfd, const char *name, const char *key, uint64_t *ret) {
        _cleanup_free_ char *s = NULL;
        int r;

        r = dir_read_file(dirfd, name, &s);
        if (r < 0)
                return r;
        return cgroup_parse_keyed(s, key, ret);
}

/* Opening for writing is the honest permission check: it fails with EACCES for a cgroup not delegated to
 * us and EROFS on a read-only mount, and writes nothing. */
int dir_check_writable(int dirfd, const char *name) {
        int fd;

        fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        safe_close(fd);
        return 0;
}

int dir_read_pids(int dirfd, const char *name, pid_t **ret) {
        _cleanup_free_ char *s = NULL;
        int r;

        r = dir_read_file(dirfd, name, &s);
        if (r < 0)
                return r;
        return cgroup_parse_pids(s, ret);
}

bool pid_set_contains(const pid_t *pids, size_t n, pid_t pid) {
        for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

int pid_set_add(pid_t **pids, size_t *n, pid_t pid) {
        pid_t *p;

        if (*n >= PID_SET_MAX)
                return -E2BIG;
        p = reallocarray(*pids, *n + 1, sizeof(pid_t));
        if (!p)
                return -ENOMEM;
        p[(*n)++] = pid;
        *pids = p;
        return 0;
}
