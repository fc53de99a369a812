/* SPDX-License-Identifier: MIT */
/* Tests for spawn.c through the real fork and exec: the environment a worker ends up with, read from
 * /proc/PID/environ of the exec'd child (exactly the envp it was given, duplicates included). */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

TestSuite(spawn, .timeout = 10);

/* Written apart from spawn.c on purpose, so a mistake there cannot hide here: on pidfs (Linux 6.9,
 * statfs magic "PIDF") the inode number of a pidfd is its process's id; before, pidfds were anonymous
 * inodes. Returns true and the id on pidfs, false otherwise. */
static bool pidfd_pidfs_inode(int pidfd, uint64_t *ret) {
        struct statfs sfs;
        struct stat st;

        cr_assert_eq(fstatfs(pidfd, &sfs), 0, "fstatfs: %m");
        if (sfs.f_type != 0x50494446)
                return false;
        cr_assert_eq(fstat(pidfd, &st), 0, "fstat: %m");
        *ret = (uint64_t) st.st_ino;
        return true;
}

/* The value of the only entry called name in a NUL-separated environment block, NULL when there is
 * none; fails the test when there are several. */
static const char *environ_get(const char *block, size_t size, const char *name) {
        const char *found = NULL;

        for (const char *e = block; e < block + size; e += strlen(e) + 1) {
                const char *v = startswith(e, name);

                if (!v || *v != '=')
                        continue;
                cr_assert_null(found, "%s appears twice", name);
                found = v + 1;
        }
        return found;
}

Test(spawn, worker_gets_its_own_listen_pidfdid_or_none) {
        /* What corral may have inherited from systemd: its own ids, wrong for any worker. */
        char *base[] = { "PATH=/usr/bin:/bin", "LISTEN_PID=1", "LISTEN_PIDFDID=4242", NULL };
        char *argv[] = { "/bin/sh", "-c", "read x <&3", NULL };
        WorkerEnvParams ep = {
                .n_fds = 1,
                .index = 0,
                .generation = 1,
                .count = 1,
                .corral_pid = getpid(),
                .watchdog_usec = 30 * USEC_PER_SEC,
        };
        _cleanup_close_ int pidfd = -EBADF, status_fd = -EBADF, environ_fd = -EBADF;
        _cleanup_(close_pairp) int p[2] = { -EBADF, -EBADF };
        _cleanup_strv_free_ char **envp = NULL;
        SpawnParams sp = { .path = argv[0], .argv = argv };
        struct pollfd pfd;
        char path[64], block[8192], expected[32];
        const char *id;
        SpawnError e;
        ssize_t n;
        uint64_t inode;
        pid_t pid;
        int status;

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        cr_assert_eq(env_build(base, &ep, &envp, &sp.pid_entries), 0);
        sp.envp = envp;
        sp.fds = &p[0];
        sp.n_fds = 1;
        cr_assert_eq(spawn_worker(&sp, &pid, &pidfd, &status_fd), 0);

        /* EOF on the status pipe: exec happened, /proc/PID/environ is the worker's. */
        pfd = (struct pollfd){ .fd = status_fd, .events = POLLIN };
        cr_assert_eq(poll(&pfd, 1, 5000), 1);
        cr_assert_eq(spawn_read_status(status_fd, &e), 0, "the child failed at stage %d: %s", e.stage,
                     strerror(e.error));
        snprintf(path, sizeof path, "/proc/%d/environ", (int) pid);
        environ_fd = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(environ_fd, 0, "%s: %m", path);
        n = read(environ_fd, block, sizeof block);
        cr_assert_gt(n, 0);
        cr_assert_lt(n, (ssize_t) sizeof block);

        snprintf(expected, sizeof expected, "%d", (int) pid);
        cr_assert_str_eq(environ_get(block, (size_t) n, "LISTEN_PID"), expected);
        /* Filled in after a possible removal shifted the entries: still the right one. */
        cr_assert_str_eq(environ_get(block, (size_t) n, "WATCHDOG_PID"), expected);
        id = environ_get(block, (size_t) n, "LISTEN_PIDFDID");
        if (pidfd_pidfs_inode(pidfd, &inode)) {
                snprintf(expected, sizeof expected, "%llu", (unsigned long long) inode);
                cr_assert_not_null(id, "pidfs, but no LISTEN_PIDFDID");
                cr_assert_str_eq(id, expected);
        } else
                cr_assert_null(id, "no pidfs, but LISTEN_PIDFDID=%s", id);

        /* EOF on fd 3 ends the shell. */
        p[1] = safe_close(p[1]);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
}
