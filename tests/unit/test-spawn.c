/* SPDX-License-Identifier: MIT */
/* Tests for spawn.c: find_executable() on a temporary tree and PATH, child_move_fds() run in a forked
 * child on fds laid out in awkward places, checked by inode and close-on-exec flag, and the environment a
 * worker ends up with through the real fork and exec (LISTEN_PIDFDID). */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

TestSuite(spawn, .timeout = 10);

/* find_executable() ------------------------------------------------------------------------------------ */

/* A temporary tree: exec/tool (0755), exec2/tool (0755), noexec/tool (0644), isdir/tool/ (a directory),
 * empty/, afile (a regular file where a directory is expected). Made in the test's own process: criterion
 * runs each test in a fresh one, so chdir() and setenv() do not leak. */
static char tree[] = "/tmp/corral-test-spawn-XXXXXX";

static char *at(const char *rel) {
        char *p = strdup_printf("%s/%s", tree, rel);

        cr_assert_not_null(p);
        return p;
}

static void make_file(const char *rel, mode_t mode) {
        _cleanup_free_ char *p = at(rel);
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

        cr_assert_geq(fd, 0, "%s: %m", p);
        cr_assert_eq(write(fd, "#!/bin/sh\n", 10), 10);
        cr_assert_eq(fchmod(fd, mode), 0); /* whatever the umask */
}

static void make_dir(const char *rel) {
        _cleanup_free_ char *p = at(rel);

        cr_assert_eq(mkdir(p, 0755), 0, "%s: %m", p);
}

static void make_tree(void) {
        cr_assert_not_null(mkdtemp(tree), "mkdtemp(%s): %m", tree);
        make_dir("exec");
        make_file("exec/tool", 0755);
        make_dir("exec2");
        make_file("exec2/tool", 0755);
        make_dir("noexec");
        make_file("noexec/tool", 0644);
        make_dir("isdir");
        make_dir("isdir/tool");
        make_dir("empty");
        make_file("afile", 0644);
}

static void remove_tree(void) {
        static const char *const files[] = { "exec/tool", "exec2/tool", "noexec/tool", "afile" };
        static const char *const dirs[] = { "exec", "exec2", "noexec", "isdir/tool", "isdir", "empty" };

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *p = at(files[i]);
                (void) unlink(p);
        }
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *p = at(dirs[i]);
                (void) rmdir(p);
        }
        (void) rmdir(tree);
}

#define TREE .init = make_tree, .fini = remove_tree

/* PATH from directories of the tree, "" standing for an empty element. NULL-terminated. */
static void set_path(const char *first, ...) {
        _cleanup_free_ char *path = NULL;
        va_list ap;

        va_start(ap, first);
        for (const char *d = first; d; d = va_arg(ap, const char *)) {
                _cleanup_free_ char *elem = isempty(d) ? strdup("") : d[0] == '/' ? strdup(d) : at(d);
                char *joined = strdup_printf("%s%s%s", path ?: "", path ? ":" : "", elem);

                cr_assert_not_null(joined);
                free(path);
                path = joined;
        }
        va_end(ap);
        cr_assert_eq(setenv("PATH", path, 1), 0);
}

static void expect_found(const char *name, const char *expected) {
        _cleanup_free_ char *ret = NULL;
        int r = find_executable(name, &ret);

        cr_assert_eq(r, 0, "'%s' (PATH=%s): %s", name, getenv("PATH") ?: "(unset)", strerror(-r));
        cr_assert_str_eq(ret, expected);
}

static void expect_error(const char *name, int error) {
        char *ret = (char *) "untouched";
        int r = find_executable(name, &ret);

        cr_assert_eq(r, error, "'%s' (PATH=%s): %d (%s), expected %d (%s)", name,
                     getenv("PATH") ?: "(unset)", r, strerror(-r), error, strerror(-error));
        cr_assert_str_eq(ret, "untouched", "failed, but wrote its result");
}

Test(spawn, find_executable_absolute_path_is_taken_as_is, TREE) {
        _cleanup_free_ char *tool = at("exec/tool");

        /* Not looked up in PATH, even where PATH has a tool of that name first. */
        set_path("exec2", NULL);
        expect_found(tool, tool);
}

Test(spawn, find_executable_absolute_path_that_is_not_an_executable_file, TREE) {
        _cleanup_free_ char *noexec = at("noexec/tool"), *dir = at("isdir/tool"), *missing = at("exec/nope"),
                            *below_file = at("afile/tool");

        expect_error(noexec, -EACCES);
        expect_error(dir, -EISDIR);
        expect_error(missing, -ENOENT);
        expect_error(below_file, -ENOTDIR);
        expect_error("/dev/null", -EACCES); /* not a regular file */
}

Test(spawn, find_executable_relative_path_with_a_slash_is_not_searched, TREE) {
        cr_assert_eq(chdir(tree), 0);
        set_path("exec", NULL);
        expect_found("exec/tool", "exec/tool");
        expect_found("./exec/tool", "./exec/tool");
        /* exec2/exec/tool does not exist: a name with a slash is never tried below a PATH entry. */
        set_path("", NULL);
        cr_assert_eq(chdir("exec2"), 0);
        expect_error("exec/tool", -ENOENT);
        expect_error("./noexec", -ENOENT);
        cr_assert_eq(chdir("../noexec"), 0);
        expect_error("./tool", -EACCES);
}

Test(spawn, find_executable_takes_the_first_executable_in_path, TREE) {
        _cleanup_free_ char *expected = at("exec/tool");

        /* Skipped on the way: a missing directory, a file where a directory should be, an empty directory,
         * a non-executable file and a directory of that name. */
        set_path("/nonexistent", "afile", "empty", "noexec", "isdir", "exec", "exec2", NULL);
        expect_found("tool", expected);
}

Test(spawn, find_executable_only_a_non_executable_file_in_path_is_eacces, TREE) {
        set_path("empty", "noexec", "/nonexistent", NULL);
        expect_error("tool", -EACCES);
}

Test(spawn, find_executable_only_a_directory_in_path_is_eisdir, TREE) {
        set_path("isdir", "empty", NULL);
        expect_error("tool", -EISDIR);
}

Test(spawn, find_executable_not_found_anywhere_is_enoent, TREE) {
        set_path("empty", "/nonexistent", "afile", NULL);
        expect_error("tool", -ENOENT);
        set_path("exec", NULL);
        expect_error("nope", -ENOENT);
}

Test(spawn, find_executable_empty_path_element_is_the_current_directory, TREE) {
        _cleanup_free_ char *exec = at("exec");

        cr_assert_eq(chdir(exec), 0);
        set_path("", "exec2", NULL);
        expect_found("tool", "./tool");
        set_path("empty", "", NULL); /* trailing */
        expect_found("tool", "./tool");
        set_path("empty", "", "exec2", NULL); /* in the middle */
        expect_found("tool", "./tool");
}

Test(spawn, find_executable_unset_path_searches_the_default_directories, TREE) {
        _cleanup_free_ char *ret = NULL;

        cr_assert_eq(unsetenv("PATH"), 0);
        cr_assert_eq(find_executable("sh", &ret), 0);
        cr_assert(streq(ret, "/usr/local/bin/sh") || streq(ret, "/usr/bin/sh") || streq(ret, "/bin/sh"),
                  "%s", ret);
        expect_error("corral-test-no-such-command", -ENOENT);
}

Test(spawn, find_executable_empty_name_is_einval, TREE) {
        set_path("exec", NULL);
        expect_error("", -EINVAL);
        expect_error(NULL, -EINVAL);
}

/* child_move_fds() ------------------------------------------------------------------------------------- */

#define FD_SCAN_MAX 1024
#define PARK_FD 900 /* where the forked child keeps its report pipe, far from everything tested */

typedef struct FdPlacement {
        int fd;
        bool inheritable; /* placed without close-on-exec, as a socket from systemd would be */
} FdPlacement;

typedef struct FdLayout {
        FdPlacement files[8]; /* a distinct file at each of these; fd 0 ends the list */
        int pass[8];          /* the fds given to child_move_fds(), in order */
        size_t n_pass;
        int status_fd; /* where the status pipe sits */
} FdLayout;

static bool same_file(int fd, const struct stat *st) {
        struct stat now;

        return fstat(fd, &now) >= 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

static int report_fd = -EBADF; /* the forked child's end of the report pipe */

/* In the forked child: sends the message to the parent and exits 1. */
_noreturn_ _printf_(1, 2) static void child_failf(const char *format, ...) {
        char buf[256];
        va_list ap;
        int n;

        va_start(ap, format);
        n = vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);
        (void) !write(report_fd, buf, MIN((size_t) MAX(n, 0), sizeof buf - 1));
        _exit(1);
}

/* Runs in the forked child: lays out the files, calls child_move_fds() and checks the result. Returns only
 * when everything is right. */
static void check_layout_in_child(const FdLayout *l) {
        struct stat status, want[8];
        int status_pipe[2], moved = -EBADF, r;

        /* Made high, then put in place: making one must not land on a place already laid out. */
        for (size_t i = 0; l->files[i].fd > 0; i++) {
                int mfd = memfd_create("corral-test", MFD_CLOEXEC), high;

                if (mfd < 0 || (high = fcntl(mfd, F_DUPFD_CLOEXEC, 500 + (int) i)) < 0)
                        child_failf("memfd: %m");
                (void) close(mfd);
                if (dup3(high, l->files[i].fd, l->files[i].inheritable ? 0 : O_CLOEXEC) < 0)
                        child_failf("dup3 to %d: %m", l->files[i].fd);
                (void) close(high);
        }
        if (pipe2(status_pipe, O_CLOEXEC) < 0 || fstat(status_pipe[1], &status) < 0)
                child_failf("pipe: %m");
        if (status_pipe[1] != l->status_fd) {
                if (dup3(status_pipe[1], l->status_fd, O_CLOEXEC) < 0)
                        child_failf("dup3 to %d: %m", l->status_fd);
                (void) close(status_pipe[1]);
        }
        (void) close(status_pipe[0]);
        for (size_t i = 0; i < l->n_pass; i++)
                if (fstat(l->pass[i], &want[i]) < 0)
                        child_failf("nothing at %d: %m", l->pass[i]);

        r = child_move_fds(l->pass, l->n_pass, l->status_fd, &moved);
        if (r < 0)
                child_failf("child_move_fds(): %s", strerror(-r));

        for (size_t i = 0; i < l->n_pass; i++) {
                int fd = 3 + (int) i, flags = fcntl(fd, F_GETFD);

                if (!same_file(fd, &want[i]))
                        child_failf("fd %d is not the file that was at %d", fd, l->pass[i]);
                if (flags != 0)
                        child_failf("fd %d (was %d): flags %#x, close-on-exec not cleared", fd, l->pass[i],
                                    (unsigned) flags);
        }
        if (moved < 3 + (int) l->n_pass)
                child_failf("status pipe moved to %d, inside 0..%zu", moved, 2 + l->n_pass);
        if (!same_file(moved, &status))
                child_failf("fd %d is not the status pipe", moved);
        /* Nothing from the first fd above the range up crosses exec: originals, copies, leaks. */
        for (int fd = 3 + (int) l->n_pass; fd < FD_SCAN_MAX; fd++) {
                int flags = fcntl(fd, F_GETFD);

                if (flags >= 0 && !(flags & FD_CLOEXEC))
                        child_failf("fd %d above the range would cross exec", fd);
        }
}

/* Forks a child that checks layout l and reports through a pipe parked at PARK_FD; asserts it passed. */
static void expect_moved(const FdLayout *l) {
        char msg[256] = {};
        int report[2], status;
        ssize_t n;
        pid_t pid;

        cr_assert_eq(pipe2(report, O_CLOEXEC), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                report_fd = fcntl(report[1], F_DUPFD_CLOEXEC, PARK_FD);
                if (report_fd < 0)
                        _exit(2);
                (void) close(report[1]);
                (void) close(report[0]);
                check_layout_in_child(l);
                _exit(0);
        }
        (void) close(report[1]);
        n = read(report[0], msg, sizeof msg - 1);
        (void) close(report[0]);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status), "child died: status %#x", (unsigned) status);
        cr_assert_eq(WEXITSTATUS(status), 0, "%s", n > 0 ? msg : "child failed without a message");
}

Test(spawn, move_fds_fds_already_in_the_range_in_reverse_order) {
        expect_moved(&(FdLayout) {
                .files = { { 3 }, { 4 }, { 5 } },
                .pass = { 5, 4, 3 },
                .n_pass = 3,
                .status_fd = 10,
        });
}

Test(spawn, move_fds_fd_already_on_its_own_target_loses_close_on_exec) {
        expect_moved(&(FdLayout) {
                .files = { { 3 }, { 4 } },
                .pass = { 3, 4 },
                .n_pass = 2,
                .status_fd = 7,
        });
}

Test(spawn, move_fds_fds_above_and_below_with_the_status_pipe_on_a_target) {
        /* 3 goes to 4, 6 stays, 20 and 11 come down; the status pipe sits on 5, which 11 needs. The ones
         * from above are inheritable, as sockets from systemd are; a leak at 30 too. */
        expect_moved(&(FdLayout) {
                .files = { { 3 }, { 6 }, { 11, true }, { 20, true }, { 30, true } },
                .pass = { 20, 3, 11, 6 },
                .n_pass = 4,
                .status_fd = 5,
        });
}

Test(spawn, move_fds_fds_far_above_a_status_pipe_at_3) {
        expect_moved(&(FdLayout) {
                .files = { { 40, true }, { 41 } },
                .pass = { 41, 40 },
                .n_pass = 2,
                .status_fd = 3,
        });
}

Test(spawn, move_fds_one_file_passed_twice_fills_both_places) {
        expect_moved(&(FdLayout) {
                .files = { { 4 } },
                .pass = { 4, 4 },
                .n_pass = 2,
                .status_fd = 12,
        });
}

Test(spawn, move_fds_no_fds_still_parks_the_status_pipe_and_closes_the_rest_at_exec) {
        expect_moved(&(FdLayout) {
                .files = { { 3, true }, { 8, true } },
                .n_pass = 0,
                .status_fd = 5,
        });
}

/* ---- the environment a worker ends up with, through the real fork and exec ---- */


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

/* ---- failures between fork and exec leave nothing behind and lose nothing ---- */

/* In a forked child with only fds 0-2 (so the test's own are out of the way), runs fn and exits with what it
 * returns; the parent asserts exit 0 or shows the code. */
static void in_bare_child(int (*fn)(void)) {
        int status;
        pid_t pid;

        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                (void) close_range(3, ~0U, 0);
                _exit(fn());
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status), "child died: status %#x", (unsigned) status);
        cr_assert_eq(WEXITSTATUS(status), 0, "child check %d failed", WEXITSTATUS(status));
}

/* Only fds 3 and 4 are left to open: spawn_worker()'s status pipe takes both, the fork works, and
 * pidfd_open() fails with EMFILE after it. The child must not be left a zombie nobody will reap. */
static int check_no_zombie_after_pidfd_failure(void) {
        char *argv[] = { (char *) "/bin/true", NULL }, *envp[] = { NULL };
        SpawnParams p = { .path = "/bin/true", .argv = argv, .envp = envp };
        struct rlimit rl;
        int pidfd, status_fd, r;
        pid_t pid;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 10;
        rl.rlim_cur = 5;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 11;
        r = spawn_worker(&p, &pid, &pidfd, &status_fd);
        if (r != -EMFILE)
                return 12;
        /* No child left at all: reaped, not a zombie. */
        if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
                return 13;
        return 0;
}

Test(spawn, pidfd_failure_after_fork_leaves_no_zombie) {
        in_bare_child(check_no_zombie_after_pidfd_failure);
}

/* child_move_fds() fails to park the status pipe (the fd table is full): the caller must still hold the
 * pipe where it was, so the child's stage and errno reach the parent instead of a bare exit 127. */
static int check_failure_reported_through_the_pipe(void) {
        int status_pipe[2], sfd, file, r;
        SpawnError e = {};
        struct rlimit rl;

        file = memfd_create("corral-test", MFD_CLOEXEC);
        if (file != 3 || pipe2(status_pipe, O_CLOEXEC) < 0)
                return 10;
        /* The pipe's write end goes to 0, so fds 0-3 are taken, 4 is free: the socket's copy takes 4, and
         * there is no room left for the pipe's. */
        if (dup3(status_pipe[1], 0, O_CLOEXEC) < 0 || close(status_pipe[1]) < 0)
                return 11;
        if (fcntl(status_pipe[0], F_DUPFD_CLOEXEC, 100) < 0)
                return 12;
        status_pipe[0] = 100;
        (void) close(4);
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 13;
        rl.rlim_cur = 5;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 14;

        sfd = 0;
        r = child_move_fds(&file, 1, sfd, &sfd);
        if (r != -EMFILE)
                return 15;
        /* What child_run() does with it. */
        e = (SpawnError) { .stage = SPAWN_STAGE_FDS, .error = -r };
        if (write(sfd, &e, sizeof e) != sizeof e)
                return 16;
        e = (SpawnError) {};
        if (spawn_read_status(status_pipe[0], &e) != 1 || e.stage != SPAWN_STAGE_FDS || e.error != EMFILE)
                return 17;
        return 0;
}

Test(spawn, a_failed_move_still_reports_through_the_status_pipe) {
        in_bare_child(check_failure_reported_through_the_pipe);
}

/* Spawns argv with working_directory and waits for the status pipe; returns what spawn_read_status() said,
 * the child reaped. */
static int spawn_in(const char *working_directory, char **argv, SpawnError *ret) {
        _cleanup_close_ int pidfd = -EBADF, status_fd = -EBADF;
        char *envp[] = { NULL };
        SpawnParams sp = {
                .path = argv[0], .argv = argv, .envp = envp, .working_directory = working_directory,
        };
        struct pollfd pfd;
        pid_t pid;
        int r;

        cr_assert_eq(spawn_worker(&sp, &pid, &pidfd, &status_fd), 0);
        pfd = (struct pollfd){ .fd = status_fd, .events = POLLIN };
        cr_assert_eq(poll(&pfd, 1, 5000), 1);
        r = spawn_read_status(status_fd, ret);
        cr_assert_eq(waitpid(pid, NULL, 0), pid);
        return r;
}

Test(spawn, worker_starts_in_its_working_directory) {
        char dir[] = "/tmp/corral-test-cwd-XXXXXX", *argv[] = { "/bin/sh", "-c", "pwd > out", NULL },
             line[64] = "";
        _cleanup_free_ char *out = NULL;
        SpawnError e = {};
        FILE *f;

        cr_assert_not_null(mkdtemp(dir));
        cr_assert_eq(spawn_in(dir, argv, &e), 0, "failed at stage %d: %s", e.stage, strerror(e.error));
        out = strdup_printf("%s/out", dir);
        f = fopen(out, "re");
        cr_assert_not_null(f, "%s: %m", out);
        cr_assert_not_null(fgets(line, sizeof line, f));
        fclose(f);
        unlink(out);
        cr_assert_eq(rmdir(dir), 0);
        line[strcspn(line, "\n")] = 0;
        cr_assert_str_eq(line, dir);
}

Test(spawn, missing_working_directory_fails_at_stage_chdir) {
        char *argv[] = { "/bin/true", NULL };
        SpawnError e = {};

        cr_assert_eq(spawn_in("/nonexistent/corral-test", argv, &e), 1);
        cr_assert_eq(e.stage, SPAWN_STAGE_CHDIR);
        cr_assert_eq(e.error, ENOENT);
        cr_assert_str_eq(spawn_stage_to_string(SPAWN_STAGE_CHDIR), "chdir");
}
