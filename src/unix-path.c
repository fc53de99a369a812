/* SPDX-License-Identifier: MIT */
/* UNIX socket files: stale or live, bind with a mode, unlink only our own. */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unix-path.h"
#include "util.h"

static int unix_path_address(const char *path, struct sockaddr_un *ret) {
        size_t n = strlen(path);

        if (n == 0)
                return -EINVAL;
        if (n >= sizeof ret->sun_path)
                return -ENAMETOOLONG;
        *ret = (struct sockaddr_un) { .sun_family = AF_UNIX };
        memcpy(ret->sun_path, path, n + 1);
        return 0;
}

/* Makes path free for a socket of type: 0 when nothing is there or a stale socket file was removed. */
static int unix_path_remove_stale(const char *path, int type) {
        struct sockaddr_un sa;
        _cleanup_close_ int fd = -EBADF;
        struct stat st, again;
        int r;

        r = unix_path_address(path, &sa);
        if (r < 0)
                return r;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;

        /* A socket file outlives the process that bound it; only a connect() tells whether anyone still
         * listens. Non-blocking, because an AF_UNIX connect() never waits for the peer to accept: it is
         * queued at once, or fails at once, or (blocking) waits for room in a full backlog — forever, if the
         * owner is frozen (SIGSTOP). With O_NONBLOCK that last case is EAGAIN, so the probe never waits. A
         * peer that holds the file is alive, answering or not: a stopped process may be continued. */
        fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) >= 0)
                return -EADDRINUSE;
        switch (errno) {
        case ECONNREFUSED:
                /* Nobody bound to the file: stale, of whatever type (the kernel forgot it with its socket). */
                break;
        case ENOENT:
                return 0; /* gone meanwhile */
        case EAGAIN:
        case EPROTOTYPE: /* another kind of socket, bound by a live process */
                return -EADDRINUSE;
        default:
                return -errno;
        }

        /* Unlink the file we probed, not one that took its place since. */
        if (lstat(path, &again) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (again.st_dev != st.st_dev || again.st_ino != st.st_ino)
                return -EADDRINUSE;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int unix_path_bind(int fd, const char *path, mode_t mode, UnixPathId *ret_id) {
        struct sockaddr_un sa;
        socklen_t len = sizeof(int);
        mode_t old_umask = 0;
        struct stat st;
        int type, r;

        r = unix_path_address(path, &sa);
        if (r < 0)
                return r;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return -errno;
        r = unix_path_remove_stale(path, type);
        if (r < 0)
                return r;

        /* bind() creates the inode with 0777 & ~umask; setting the umask around it gives the mode from the
         * start, with no window where a chmod() has not happened yet. corral is single-threaded, so changing
         * the process umask briefly is safe. */
        if (mode != 0)
                old_umask = umask(~mode & 0777);
        r = bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 ? -errno : 0;
        if (mode != 0)
                (void) umask(old_umask);
        if (r < 0)
                return r;

        if (ret_id) {
                if (lstat(path, &st) < 0) {
                        r = -errno;
                        (void) unlink(path);
                        return r;
                }
                *ret_id = (UnixPathId) { .dev = st.st_dev, .ino = st.st_ino };
        }
        return 0;
}

int unix_path_unlink_own(const char *path, const UnixPathId *id) {
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode) || st.st_dev != id->dev || st.st_ino != id->ino)
                return 0;
        if (unlink(path) < 0)
                return errno == ENOENT ? 0 : -errno;
        return 1;
}
