/* SPDX-License-Identifier: MIT */
/* UNIX socket files: telling a stale one from a live one without waiting, binding with the file's mode set
 * from the start, and unlinking at exit only the file we bound. Shared by the listen sockets and the control
 * socket; helpers only, they log nothing. */
#pragma once

#include <sys/types.h>

/* The socket file a bind created, to recognise it at exit. */
typedef struct UnixPathId {
        dev_t dev;
        ino_t ino;
} UnixPathId;

/* Binds fd, an AF_UNIX socket, to path; the socket file is created with mode (0: as the umask says). What
 * is at path already is replaced only if it is a stale socket file (nobody listening on it, of whatever
 * type). Returns 0; -EADDRINUSE when a live socket is there (it took the probe's connection, its backlog is
 * full, or it is of another type); -EEXIST when something else is there (a file, a directory, a symlink,
 * which is never followed); -ENAMETOOLONG; or another negative errno (-EACCES: the probe cannot tell).
 * Never waits on another process. *ret_id (optional) names the file bound, for unix_path_unlink_own(). */
int unix_path_bind(int fd, const char *path, mode_t mode, UnixPathId *ret_id);

/* Unlinks path if it is still the socket file id names. Returns 1 when it unlinked, 0 when path is gone or
 * is something else now (someone replaced it: theirs), or a negative errno. */
int unix_path_unlink_own(const char *path, const UnixPathId *id);
