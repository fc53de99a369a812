/* SPDX-License-Identifier: MIT */
/* File helpers shared by the cgroup code (cgroup.c, cgroup-proc.c): reads and writes relative to a directory
 * fd, and small pid sets. Each returns 0 (or a count) or -errno and writes outputs only on success. */
#pragma once

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* A process or leaf that vanished between listing and acting: a normal outcome, not a failure. */
static inline bool errno_is_gone(int r) {
        return r == -ENOENT || r == -ESRCH || r == -ENODEV;
}

static inline void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

/* The whole file, NUL-terminated, in *ret (owned by the caller). cgroup and /proc files report size 0:
 * read until EOF, up to 16 MiB (-EFBIG beyond). */
int dir_read_file(int dirfd, const char *name, char **ret);
/* A small file read again through an fd kept open: pread() from offset 0, as cgroupfs generates the file
 * afresh for it. NUL-terminated in buf; returns the length, -EFBIG when it does not fit in size - 1 bytes,
 * or -errno. */
int fd_read_text(int fd, char *buf, size_t size);
/* One write() of s, without O_CREAT (a missing file is a missing controller) or O_TRUNC. Short: -EIO. */
int dir_write_file(int dirfd, const char *name, const char *s);
/* A one-number file (cgroup_parse_u64), a "key value" file (cgroup_parse_keyed), a pid list
 * (cgroup_parse_pids: returns the count). */
int dir_read_u64(int dirfd, const char *name, uint64_t *ret);
int dir_read_keyed(int dirfd, const char *name, const char *key, uint64_t *ret);
int dir_read_pids(int dirfd, const char *name, pid_t **ret);
/* Opens name for writing and closes it again: the permission check that tells EACCES and EROFS. */
int dir_check_writable(int dirfd, const char *name);

/* An unordered pid set as a plain array; add fails with -E2BIG past 65536 entries. */
bool pid_set_contains(const pid_t *pids, size_t n, pid_t pid);
int pid_set_add(pid_t **pids, size_t *n, pid_t pid);
