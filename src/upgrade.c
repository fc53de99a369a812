/* SPDX-License-Identifier: MIT */
/* An upgrade's system calls: sealed memfd, close-on-exec flags, the sentinel child, execve. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"
#include "state.h"
#include "upgrade.h"

extern char **environ;

int upgrade_state_fd_new(const char *text, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        size_t done = 0;

        fd = memfd_create("corral-upgrade-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        while (done < size) {
                ssize_t n = write(fd, text + done, size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (size_t) n;
        }
        /* Sealed, the next image can trust that what it reads is what this one wrote, whoever else holds
         * the fd. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int upgrade_state_fd_read(int fd, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t done = 0;
        int seals;

        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return -errno;
        if (!(seals & F_SEAL_WRITE) || !(seals & F_SEAL_SHRINK))
                return -EPERM;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size < 0 || (uint64_t) st.st_size > STATE_SIZE_MAX)
                return -E2BIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (done < (size_t) st.st_size) {
                ssize_t n = pread(fd, buf + done, (size_t) st.st_size - done, (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (size_t) n;
        }
        buf[done] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = done;
        return 0;
}

int upgrade_fds_keep(const int *fds, size_t n, bool keep) {
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                int flags;

                if (fds[i] < 0)
                        continue;
                flags = fcntl(fds[i], F_GETFD);
                if (flags < 0 || fcntl(fds[i], F_SETFD, keep ? flags & ~FD_CLOEXEC : flags | FD_CLOEXEC) < 0)
                        r = r < 0 ? r : -errno;
        }
        return r;
}

char **upgrade_argv(const char *exe, int state_fd, int previous_exe_fd, bool check, const char *extra,
                    char *const *argv) {
        size_t n = strv_length(argv), k = 0;
        char **v = calloc(n + 5, sizeof(char *));

        if (!v)
                return NULL;
        if (!(v[k++] = strdup(exe)))
                return strv_free(v);
        if (check && !(v[k++] = strdup(UPGRADE_CHECK_OPTION)))
                return strv_free(v);
        if (!(v[k++] = strdup_printf(UPGRADE_STATE_OPTION "%d:%d", state_fd, previous_exe_fd >= 0 ? previous_exe_fd : -1)))
                return strv_free(v);
        if (extra && !(v[k++] = strdup(extra)))
                return strv_free(v);
        for (size_t i = 1; i < n; i++)
                if (!(v[k++] = strdup(argv[i])))
                        return strv_free(v);
        return v;
}

int upgrade_sentinel_spawn(const char *exe, char *const *argv, int state_fd, pid_t *ret_pid, int *ret_pidfd,
                           int *ret_output) {
        _cleanup_(close_pairp) int out[2] = { -EBADF, -EBADF };
        _cleanup_close_ int pidfd = -EBADF;
        sigset_t all;
        pid_t pid;

        if (pipe2(out, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* The child: async-signal-safe calls only. Its stdin is the state (read from offset 0 with
                 * pread, so a shared file offset does not matter). */
                struct sigaction dfl = { .sa_handler = SIG_DFL };
                for (int sig = 1; sig < NSIG; sig++)
                        (void) sigaction(sig, &dfl, NULL);
                (void) sigemptyset(&all);
                (void) sigprocmask(SIG_SETMASK, &all, NULL);
                if (dup2(state_fd, STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
                    dup2(out[1], STDERR_FILENO) < 0)
                        _exit(127);
                execve(exe, argv, environ);
                _exit(127);
        }
        pidfd = spawn_child_pidfd(pid);
        if (pidfd < 0)
                return pidfd;
        if (fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) {
                int r = -errno;
                (void) pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
                (void) waitid(P_PIDFD, (id_t) pidfd, &(siginfo_t) {}, WEXITED);
                return r;
        }
        *ret_pid = pid;
        *ret_pidfd = TAKE_FD(pidfd);
        *ret_output = TAKE_FD(out[0]);
        return 0;
}

int upgrade_exec(const char *exe, int exe_fd, char *const *argv) {
        if (exe_fd >= 0)
                fexecve(exe_fd, argv, environ);
        else
                execve(exe, argv, environ);
        return -errno;
}

int upgrade_parse_state_option(const char *value, int *ret_state_fd, int *ret_previous_exe_fd) {
        int state_fd, previous, n = 0;

        if (sscanf(value, "%d:%d%n", &state_fd, &previous, &n) != 2 || value[n] != '\0' || state_fd < 0 ||
            previous < -1)
                return -EINVAL;
        *ret_state_fd = state_fd;
        *ret_previous_exe_fd = previous < 0 ? -EBADF : previous;
        return 0;
}
