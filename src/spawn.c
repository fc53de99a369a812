/* SPDX-License-Identifier: MIT */
/* fork() + exec() of one worker. The child runs only async-signal-safe calls: the parent may hold locks
 * (malloc, stdio) at fork time, so anything needing them is prepared before the fork. */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <linux/magic.h>

#include "env.h"
#include "spawn.h"

/* linux/magic.h has it from Linux 6.9, the first kernel with pidfs. */
#ifndef PID_FS_MAGIC
#define PID_FS_MAGIC 0x50494446
#endif

static const char *const spawn_stage_table[_SPAWN_STAGE_MAX] = {
        [SPAWN_STAGE_SIGNALS] = "signals", [SPAWN_STAGE_PDEATHSIG] = "pdeathsig",
        [SPAWN_STAGE_SETSID] = "setsid",   [SPAWN_STAGE_FDS] = "fds",
        [SPAWN_STAGE_CGROUP] = "cgroup",   [SPAWN_STAGE_OUTPUT] = "output",
        [SPAWN_STAGE_RLIMIT] = "rlimit",   [SPAWN_STAGE_USER] = "user",
        [SPAWN_STAGE_CHDIR] = "chdir",     [SPAWN_STAGE_EXEC] = "exec",
};

const char *spawn_stage_to_string(SpawnStage s) {
        return s >= 0 && s < _SPAWN_STAGE_MAX ? spawn_stage_table[s] : NULL;
}

_noreturn_ static void child_fail(int status_fd, SpawnStage stage, int error) {
        SpawnError e = { .stage = stage, .error = error };

        /* Nothing to do if the parent cannot read it: it sees exit status 127 either way. */
        (void) !write(status_fd, &e, sizeof e);
        _exit(127);
}

static int child_reset_signals(void) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t ss;

        /* The master blocks the signals its event loop handles; a worker must start with a clean slate,
         * or it would never see SIGTERM. Dispositions first, so nothing pending fires a stale handler. */
        for (int sig = 1; sig < _NSIG; sig++) {
                if (sig == SIGKILL || sig == SIGSTOP)
                        continue;
                (void) sigaction(sig, &sa, NULL);
        }
        if (sigemptyset(&ss) < 0 || sigprocmask(SIG_SETMASK, &ss, NULL) < 0)
                return -errno;
        return 0;
}

/* Makes fds[0] and fds[1] the child's stdout and stderr. Copied above 2 first: corral started with those
 * closed gets its own fds there, so either may be 1 or 2 already. The copies close at exec. */
static int child_set_output(const int fds[2]) {
        int tmp[2];

        for (size_t i = 0; i < 2; i++) {
                tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (tmp[i] < 0)
                        return -errno;
        }
        for (size_t i = 0; i < 2; i++)
                if (dup2(tmp[i], 1 + (int) i) < 0)
                        return -errno;
        return 0;
}

/* Moves the sockets to 3, 4, ... with close-on-exec cleared. Every fd is first duplicated above the
 * target range, so a socket that already sits on another one's target is never clobbered, and dup2()
 * onto a distinct fd is what clears FD_CLOEXEC. */
int child_move_fds(const int *fds, size_t n, int status_fd, int *status_fd_moved) {
        int base = 3 + (int) n, tmp[n > 0 ? n : 1], moved;

        for (size_t i = 0; i < n; i++) {
                tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, base);
                if (tmp[i] < 0)
                        return -errno;
        }
        /* The status pipe must survive too: park it above the range as well. Written only on success: on
         * failure the caller still reports through the pipe where it was. */
        moved = fcntl(status_fd, F_DUPFD_CLOEXEC, base);
        if (moved < 0)
                return -errno;
        *status_fd_moved = moved;
        for (size_t i = 0; i < n; i++)
                if (dup2(tmp[i], 3 + (int) i) < 0)
                        return -errno;
        /* Everything else above the sockets closes at exec, whatever a library may have leaked. */
        (void) close_range((unsigned) base, ~0U, CLOSE_RANGE_CLOEXEC);
        return 0;
}

/* The inode id of a pidfd on the calling process: what libsystemd's sd_listen_fds() compares LISTEN_PIDFDID
 * with (it asks name_to_handle_at() where it can, which gives the same 64-bit number). On pidfs (Linux 6.9)
 * every process has an inode of its own, unique for the boot; before, pidfds were anonymous inodes that all
 * share one number, which identifies nothing: -EOPNOTSUPP. So does a 32-bit ino_t, which cannot hold the
 * id (systemd refuses it there too). Plain syscalls only. */
static int child_pidfd_inode_id(uint64_t *ret) {
        _cleanup_close_ int fd = -EBADF;
        struct statfs sfs;
        struct stat st;

        fd = pidfd_open(getpid(), 0);
        if (fd < 0)
                return -errno;
        if (fstatfs(fd, &sfs) < 0)
                return -errno;
        if (sfs.f_type != PID_FS_MAGIC || sizeof(st.st_ino) < sizeof(uint64_t))
                return -EOPNOTSUPP;
        if (fstat(fd, &st) < 0)
                return -errno;
        *ret = (uint64_t) st.st_ino;
        return 0;
}

/* User=/Group=: last, after everything that needs root (joining the cgroup leaves, which the worker's
 * user cannot write; the rlimit). Groups first, while still allowed to change them, the uid last. A change
 * of credentials clears the parent-death signal (the kernel's commit_creds()), so it is set again, and the
 * parent checked again as after the first time. Plain syscalls only: everything was resolved before fork. */
static int child_drop_privileges(const Credentials *c, pid_t parent) {
        if (!c || !c->set)
                return 0;
        if (setgroups(c->n_groups, c->groups) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
            setresuid(c->uid, c->uid, c->uid) < 0)
                return -errno;
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                return -errno;
        if (getppid() != parent)
                _exit(127);
        return 0;
}

_noreturn_ static void child_run(const SpawnParams *p, pid_t parent, int status_fd) {
        int r;

        r = child_reset_signals();
        if (r < 0)
                child_fail(status_fd, SPAWN_STAGE_SIGNALS, -r);

        /* If the master dies, its workers must not keep serving unsupervised on sockets they share. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                child_fail(status_fd, SPAWN_STAGE_PDEATHSIG, errno);
        if (getppid() != parent)
                _exit(127);

        /* A session of its own: a Ctrl-C on corral's terminal reaches corral only, which stops workers in
         * order instead of them all dying at once. */
        if (setsid() < 0)
                child_fail(status_fd, SPAWN_STAGE_SETSID, errno);

        /* Before anything else runs in the worker: memory is charged where a process was when it
         * allocated, so a later move would leave its start-up allocations behind. */
        for (size_t i = 0; i < p->n_cgroup_procs_fds; i++)
                if (write(p->cgroup_procs_fds[i], "0", 1) < 0)
                        child_fail(status_fd, SPAWN_STAGE_CGROUP, errno);

        if (p->output_fds) {
                r = child_set_output(p->output_fds);
                if (r < 0)
                        child_fail(status_fd, SPAWN_STAGE_OUTPUT, -r);
        }
        r = child_move_fds(p->fds, p->n_fds, status_fd, &status_fd);
        if (r < 0)
                child_fail(status_fd, SPAWN_STAGE_FDS, -r);

        for (size_t i = 0; i < p->pid_entries.n; i++)
                env_write_pid(p->envp[p->pid_entries.index[i]], getpid());
        /* After the pids: removing an entry moves the ones behind it. Without an id the variable must be
         * absent, not empty or wrong: sd_listen_fds() then goes by LISTEN_PID alone. */
        if (p->pid_entries.has_pidfd_id) {
                uint64_t id;

                if (child_pidfd_inode_id(&id) >= 0)
                        env_write_u64(p->envp[p->pid_entries.pidfd_id_index], id);
                else
                        env_remove(p->envp, p->pid_entries.pidfd_id_index);
        }
        /* The soft limit corral was started with, not the one it raised for itself: select() breaks on fds
         * above 1024, and a worker that wants more can raise it as corral did. Last before exec: with
         * thousands of workers corral's free fds are high, where the lower limit would refuse the fds the
         * child still opens (the copies above, the pidfd for LISTEN_PIDFDID). */
        if (p->nofile_soft > 0) {
                struct rlimit rl;

                if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                        child_fail(status_fd, SPAWN_STAGE_RLIMIT, errno);
                if (rl.rlim_cur != (rlim_t) p->nofile_soft) {
                        rl.rlim_cur = MIN((rlim_t) p->nofile_soft, rl.rlim_max);
                        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                                child_fail(status_fd, SPAWN_STAGE_RLIMIT, errno);
                }
        }
        r = child_drop_privileges(p->credentials, parent);
        if (r < 0)
                child_fail(status_fd, SPAWN_STAGE_USER, -r);
        /* As the worker's user: a directory only it may enter is fine. */
        if (p->working_directory && chdir(p->working_directory) < 0)
                child_fail(status_fd, SPAWN_STAGE_CHDIR, errno);
        execve(p->path, p->argv, p->envp);
        child_fail(status_fd, SPAWN_STAGE_EXEC, errno);
}

int spawn_child_pidfd(pid_t pid) {
        /* The child stays a zombie until its child source reaps it, so the pid cannot be reused before
         * the pidfd is open. */
        int pidfd = pidfd_open(pid, 0);

        if (pidfd < 0) {
                int r = -errno;

                /* Without a pidfd no child source will ever reap it: do it here, or it stays a zombie (a
                 * full fd table makes this happen on every respawn). It is ours and SIGKILLed, so the
                 * wait is short. */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        return pidfd;
}

int spawn_worker(const SpawnParams *p, pid_t *ret_pid, int *ret_pidfd, int *ret_status_fd) {
        _cleanup_close_ int status_r = -EBADF, status_w = -EBADF, pidfd = -EBADF;
        int fds[2];
        pid_t parent = getpid(), pid;

        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        status_r = fds[0];
        status_w = fds[1];

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* The write end must block: the child writes one small record and exits. */
                (void) fcntl(status_w, F_SETFL, 0);
                child_run(p, parent, status_w);
        }

        pidfd = spawn_child_pidfd(pid);
        if (pidfd < 0)
                return pidfd;

        *ret_pid = pid;
        *ret_pidfd = TAKE_FD(pidfd);
        *ret_status_fd = TAKE_FD(status_r);
        return 0;
}

int spawn_read_status(int fd, SpawnError *ret) {
        SpawnError e;
        ssize_t n;

        n = read(fd, &e, sizeof e);
        if (n < 0)
                return -errno;
        if (n == 0)
                return 0;
        if ((size_t) n != sizeof e)
                return -EIO;
        *ret = e;
        return 1;
}

static int check_executable(const char *path) {
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EACCES;
        if (access(path, X_OK) < 0)
                return -errno;
        return 0;
}

int find_executable(const char *name, char **ret) {
        const char *path, *p;
        int r, last = -ENOENT;

        if (isempty(name))
                return -EINVAL;
        if (strchr(name, '/')) {
                r = check_executable(name);
                if (r < 0)
                        return r;
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }

        path = getenv("PATH");
        if (!path)
                path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (p = path;; p++) {
                const char *end = strchrnul(p, ':');
                _cleanup_free_ char *candidate = NULL;

                /* An empty PATH element means the current directory. */
                if (end == p)
                        candidate = strdup_printf("./%s", name);
                else
                        candidate = strdup_printf("%.*s/%s", (int) (end - p), p, name);
                if (!candidate)
                        return -ENOMEM;
                r = check_executable(candidate);
                if (r == 0) {
                        *ret = TAKE_PTR(candidate);
                        return 0;
                }
                if (r != -ENOENT && r != -ENOTDIR)
                        last = r;
                if (!*end)
                        break;
                p = end;
        }
        return last;
}
