/* SPDX-License-Identifier: MIT */
/* cgroup.c on this host for real: the hybrid backend (cgroup2 + v1 memory) and the cgroup2-only backend on
 * cgroups the test creates below its own and removes afterwards, the /proc backend on a real process
 * tree, and a real process's parent. A worker joins its leaves through the procs fds as spawn.c does,
 * forks a grandchild, allocates and spins; the test samples it and kills it. Tests that the host cannot
 * run are skipped, with the reason. */

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup-parse.h"
#include "cgroup-proc.h"
#include "cgroup.h"

TestSuite(cgroup_host, .timeout = 30);

#define MIB (1024ULL * 1024ULL)

/* The workload of the real tests: a worker that joins its leaves through the procs fds (as spawn.c does
 * between fork and exec), forks a grandchild, touches 32 MiB and spins; and a second process that joins
 * through the same fds afterwards, their offset advanced by the first write. */
typedef struct Workload {
        pid_t worker, grandchild, second;
        int grandchild_pidfd; /* not our child: its end is seen through a pidfd */
} Workload;

#define WORKLOAD_BYTES (32 * MIB)

_noreturn_ static void workload_child(const int *fds, size_t n, int ready_fd, bool spin) {
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (size_t i = 0; i < n; i++)
                if (write(fds[i], "0", 1) != 1)
                        _exit(10);
        if (spin) {
                pid_t g = fork();
                /* volatile: at -O2 the compiler may drop writes to memory that never escapes, and with them
                 * the very allocation this test measures. */
                volatile char *mem;

                if (g < 0)
                        _exit(11);
                if (g == 0) {
                        /* No PDEATHSIG: it must die of the kill under test, as a worker's child would,
                         * not of its parent's death. The alarm bounds its life if the kill misses it. */
                        alarm(20);
                        for (;;)
                                pause();
                }
                mem = malloc(WORKLOAD_BYTES);
                if (!mem)
                        _exit(12);
                for (size_t k = 0; k < WORKLOAD_BYTES; k++)
                        mem[k] = 0x5a;
                if (write(ready_fd, &g, sizeof(g)) != sizeof(g))
                        _exit(13);
                for (volatile unsigned long i = 0;; i++)
                        mem[i % WORKLOAD_BYTES]++;
        }
        if (write(ready_fd, &(pid_t) { 0 }, sizeof(pid_t)) != sizeof(pid_t))
                _exit(13);
        for (;;)
                pause();
}

/* Starts the workload; a test with n == 0 (proc backend) gets no second process. Returns 0 or a message. */
static const char *workload_start(CgroupWorker *w, Workload *ret) {
        int fds[CGROUP_PROCS_FDS_MAX], p[2];
        size_t n = cgroup_worker_procs_fds(w, fds);
        Workload wl = {};
        pid_t got;

        if (pipe2(p, O_CLOEXEC) < 0)
                return "pipe2 failed";
        wl.worker = fork();
        if (wl.worker < 0)
                return "fork failed";
        if (wl.worker == 0)
                workload_child(fds, n, p[1], true);
        if (n > 0) {
                wl.second = fork();
                if (wl.second < 0)
                        return "fork failed";
                if (wl.second == 0)
                        workload_child(fds, n, p[1], false);
        }
        for (unsigned i = 0; i < (n > 0 ? 2u : 1u); i++) {
                struct pollfd pfd = { .fd = p[0], .events = POLLIN };

                if (poll(&pfd, 1, 10000) <= 0 || read(p[0], &got, sizeof(got)) != sizeof(got))
                        return "workload did not start (joining its cgroup failed?)";
                if (got > 0)
                        wl.grandchild = got;
        }
        close(p[0]);
        close(p[1]);
        wl.grandchild_pidfd = (int) syscall(SYS_pidfd_open, wl.grandchild, 0);
        if (wl.grandchild_pidfd < 0)
                return "pidfd_open on the grandchild failed";
        *ret = wl;
        return NULL;
}

/* Whether the process behind pidfd ends within ms. */
static bool exits_within(int pidfd, int ms) {
        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

        return poll(&pfd, 1, ms) == 1;
}

static bool killed_by_sigkill(pid_t pid) {
        int status;

        return waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Samples, lets the workload spin, samples again, kills and checks all of it died of SIGKILL. Used by the
 * proc test directly and by the cgroup tests in a child (no criterion asserts there): returns NULL or
 * what failed. */
static const char *workload_check(CgroupWorker *w, Workload *wl, char *buf, size_t size) {
        CgroupSample s1, s2;
        int r;

        sleep_ms(200);
        r = cgroup_worker_sample(w, 0, &s1);
        if (r != 1 || !(s1.flags & CGROUP_SAMPLE_MEMORY_CURRENT) || !(s1.flags & CGROUP_SAMPLE_CPU_USAGE))
                return snprintf(buf, size, "first sample: r=%d flags=0x%x", r, s1.flags), buf;
        if (s1.memory_current < WORKLOAD_BYTES)
                return snprintf(buf, size, "memory_current %" PRIu64 " < 32 MiB", s1.memory_current), buf;
        sleep_ms(400);
        r = cgroup_worker_sample(w, 0, &s2);
        /* Only "it grows": on a busy 2-CPU host the spinner may get a fraction of a CPU. */
        if (r != 1 || s2.cpu_usage_usec < s1.cpu_usage_usec + 10 * USEC_PER_MSEC)
                return snprintf(buf, size, "cpu did not grow by 10ms in 400ms of spinning: %" PRIu64 " -> %" PRIu64,
                                s1.cpu_usage_usec, s2.cpu_usage_usec),
                       buf;
        if (cgroup_worker_populated(w) != 1)
                return "not populated while running";

        r = cgroup_worker_kill(w);
        if (r <= 0)
                return snprintf(buf, size, "kill returned %d", r), buf;
        if (!killed_by_sigkill(wl->worker))
                return "worker not killed by SIGKILL";
        if (wl->second > 0 && !killed_by_sigkill(wl->second))
                return "second process not killed by SIGKILL";
        /* corral is no subreaper: the grandchild is not ours to reap, and nothing but the kill ends it
         * this soon. */
        bool gone = exits_within(wl->grandchild_pidfd, 2000);
        close(wl->grandchild_pidfd);
        if (!gone)
                return "grandchild still alive 2s after the kill";
        for (unsigned i = 0; cgroup_worker_populated(w) != 0; i++) {
                if (i > 200)
                        return "still populated 2s after the kill";
                sleep_ms(10);
        }
        r = cgroup_worker_kill(w);
        if (r != 0)
                return snprintf(buf, size, "second kill returned %d, expected nothing left", r), buf;
        return NULL;
}

Test(cgroup_host, real_proc_backend) {
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m = NULL;
        CgroupWorker *w = NULL;
        const char *failed;
        char buf[256];
        CgroupSample s;
        Workload wl;

        cr_assert_eq(cgroup_manager_new(NULL, "/proc", 0, &m, &reason), 0);
        cr_assert_eq(cgroup_manager_backend(m), CGROUP_BACKEND_PROC, "%s", reason);
        cr_assert(strstr(reason, "turned off"), "%s", reason);
        cr_assert_eq(cgroup_worker_new(m, 0, 1, &w), 0);

        failed = workload_start(w, &wl);
        cr_assert_null(failed, "%s", failed);
        cr_assert_eq(cgroup_worker_attach_pid(w, wl.worker), 0);
        failed = workload_check(w, &wl, buf, sizeof(buf));
        cr_assert_null(failed, "%s", failed);
        /* Reaped: the worker is gone, which is an answer, not an error. */
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 0);

        cgroup_worker_free(w);
        cgroup_manager_free(m);
}

Test(cgroup_host, real_get_ppid) {
        _cleanup_free_ char *reason = NULL;
        _cleanup_close_ int proc_fd = -EBADF;
        CgroupManager *m = NULL;
        pid_t ppid = -1, child;
        int status;

        proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(proc_fd, 0);
        cr_assert_eq(proc_pid_get_ppid(proc_fd, getpid(), &ppid), 0);
        cr_assert_eq(ppid, getppid());

        child = fork();
        cr_assert_geq(child, 0);
        if (child == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                pause();
                _exit(0);
        }
        cr_assert_eq(cgroup_manager_new(NULL, "/proc", 0, &m, &reason), 0);
        cr_assert_eq(cgroup_manager_get_ppid(m, child, &ppid), 0);
        cr_assert_eq(ppid, getpid());
        cr_assert_eq(kill(child, SIGKILL), 0);
        cr_assert_eq(waitpid(child, &status, 0), child);
        cr_assert_eq(proc_pid_get_ppid(proc_fd, child, &ppid), -ESRCH);
        cgroup_manager_free(m);
}

/* Kills whatever is left in a test cgroup and removes it, depth first. */
static void cgroup_remove_tree(const char *path) {
        _cleanup_free_ char *procs_path = strdup_printf("%s/cgroup.procs", path);
        _cleanup_free_ char *procs = NULL;
        size_t n = 0;
        DIR *d;
        FILE *f;

        d = opendir(path);
        if (!d)
                return;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_type == DT_DIR && de->d_name[0] != '.') {
                        _cleanup_free_ char *sub = strdup_printf("%s/%s", path, de->d_name);
                        cgroup_remove_tree(sub);
                }
        closedir(d);

        f = fopen(procs_path, "re");
        if (f) {
                if (getdelim(&procs, &n, '\0', f) > 0) {
                        _cleanup_free_ pid_t *pids = NULL;
                        int k = cgroup_parse_pids(procs, &pids);

                        for (int i = 0; i < k; i++)
                                (void) kill(pids[i], SIGKILL);
                }
                fclose(f);
        }
        /* Killed processes leave their cgroup asynchronously. */
        for (unsigned i = 0; i < 300 && rmdir(path) < 0 && errno == EBUSY; i++)
                sleep_ms(10);
}

static int write_pid(const char *dir) {
        _cleanup_free_ char *p = strdup_printf("%s/cgroup.procs", dir);
        FILE *f = fopen(p, "we");

        if (!f)
                return -errno;
        fprintf(f, "%d", (int) getpid());
        return fclose(f) < 0 ? -errno : 0;
}

static bool endswith_supervisor(const char *path) {
        size_t n = strlen(path);

        return n >= 11 && streq(path + n - 11, "/supervisor");
}

/* Runs in the child, inside the test's own cgroups. */
static const char *real_scenario(const char *cgroupfs, CgroupBackend expected, char *buf, size_t size) {
        _cleanup_free_ char *reason = NULL;
        CgroupWorker *w = NULL, *w2 = NULL;
        CgroupSample s;
        CgroupManager *m = NULL;
        const char *failed;
        Workload wl;
        int r;

        r = cgroup_manager_new(cgroupfs, "/proc", 0, &m, &reason);
        if (r < 0)
                return snprintf(buf, size, "cgroup_manager_new: %s", strerror(-r)), buf;
        if (cgroup_manager_backend(m) != expected)
                return snprintf(buf, size, "backend %s: %s", cgroup_backend_to_string(cgroup_manager_backend(m)),
                                reason),
                       buf;
        if (expected == CGROUP_BACKEND_V2) {
                _cleanup_free_ char *self = NULL, *u = NULL, *mem = NULL;
                size_t n = 0;
                FILE *f = fopen("/proc/self/cgroup", "re");

                if (!f)
                        return "cannot open /proc/self/cgroup";
                r = getdelim(&self, &n, '\0', f) > 0 ? cgroup_parse_self(self, &u, &mem) : -EIO;
                fclose(f);
                if (r < 0 || !u || !endswith_supervisor(u))
                        return snprintf(buf, size, "not moved into supervisor/: %s", u ?: "?"), buf;
        }
        cgroup_manager_set_keep_below(m, UINT64_MAX);
        r = cgroup_worker_new(m, 0, 1, &w);
        if (r >= 0)
                r = cgroup_worker_new(m, 0, 2, &w2);
        if (r < 0)
                return snprintf(buf, size, "cgroup_worker_new: %s", strerror(-r)), buf;

        failed = workload_start(w, &wl);
        if (failed)
                return failed;
        cgroup_worker_close_procs_fds(w);
        failed = workload_check(w, &wl, buf, size);
        if (failed)
                return failed;
        /* The sampler keeps cpu.stat open: once the leaf is removed behind its back, the kept fd reads
         * ENODEV, and the sample says the worker is gone rather than failing or reading stale figures. */
        if (unlinkat(cgroup_worker_v2_dirfd(w), "../worker-0-1", AT_REMOVEDIR) < 0)
                return snprintf(buf, size, "rmdir worker-0-1: %s", strerror(errno)), buf;
        r = cgroup_worker_sample(w, 0, &s);
        if (r != 0)
                return snprintf(buf, size, "sample of a removed leaf: %d, expected 0 (gone)", r), buf;

        r = cgroup_worker_set_memory_limits(w, UINT64_MAX, 64 * MIB);
        if (r != (expected == CGROUP_BACKEND_HYBRID ? 0 : -EOPNOTSUPP))
                return snprintf(buf, size, "set_memory_limits: %d", r), buf;
        if (cgroup_worker_events_fd(w) != -EOPNOTSUPP)
                return "events fd without a cgroup2 memory controller";

        cgroup_worker_free(w);
        if (faccessat(cgroup_worker_v2_dirfd(w2), "../worker-0-1", F_OK, 0) >= 0 || errno != ENOENT)
                return "worker-0-1 not removed on free";
        cgroup_worker_free(w2);
        r = cgroup_manager_gc(m);
        if (r != 0)
                return snprintf(buf, size, "gc left %d leaves", r), buf;
        cgroup_manager_free(m);
        return NULL;
}

/* Creates <hierarchy><own path>/<name> for each hierarchy asked for, runs the scenario in a child that
 * moved itself there, and removes everything afterwards, whatever happened. */
static void real_cgroup_test(bool hybrid) {
        _cleanup_free_ char *content = NULL, *unified = NULL, *memory = NULL, *u = NULL, *mem = NULL;
        char name[64], msg[512] = "", fake_root[] = "/tmp/corral-cgreal-XXXXXX", *link = NULL;
        size_t n = 0;
        int p[2], status;
        ssize_t k;
        pid_t pid;
        FILE *f;

        f = fopen("/proc/self/cgroup", "re");
        cr_assert_not_null(f);
        cr_assert_gt(getdelim(&content, &n, '\0', f), 0);
        fclose(f);
        cr_assert_eq(cgroup_parse_self(content, &unified, &memory), 0);
        if (!unified || access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) < 0)
                cr_skip_test("no hybrid cgroup2 mount at /sys/fs/cgroup/unified on this host");
        if (hybrid && (!memory || access("/sys/fs/cgroup/memory/cgroup.procs", F_OK) < 0))
                cr_skip_test("no v1 memory controller at /sys/fs/cgroup/memory on this host");

        snprintf(name, sizeof(name), "corral-cgtest-%d", (int) getpid());
        u = strdup_printf("/sys/fs/cgroup/unified%s/%s", streq(unified, "/") ? "" : unified, name);
        if (mkdir(u, 0755) < 0)
                cr_skip_test("cannot create the test cgroup '%s': %s", u, strerror(errno));
        if (hybrid) {
                mem = strdup_printf("/sys/fs/cgroup/memory%s/%s", streq(memory, "/") ? "" : memory, name);
                if (mkdir(mem, 0755) < 0) {
                        int e = errno;

                        cgroup_remove_tree(u);
                        cr_skip_test("cannot create the test cgroup '%s': %s", mem, strerror(e));
                }
        } else {
                /* A cgroupfs root with the real cgroup2 on unified/ and no v1 memory: the probe must take
                 * the cgroup2-only path (supervisor/ move, PSS memory). */
                cr_assert_not_null(mkdtemp(fake_root));
                link = strdup_printf("%s/unified", fake_root);
                cr_assert_eq(symlink("/sys/fs/cgroup/unified", link), 0);
        }

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                char buf[512];
                const char *failed;
                int r;

                r = write_pid(u);
                if (r >= 0 && mem)
                        r = write_pid(mem);
                if (r < 0) {
                        snprintf(buf, sizeof(buf), "could not join the test cgroups: %s", strerror(-r));
                        failed = buf;
                } else
                        failed = real_scenario(hybrid ? "/sys/fs/cgroup" : fake_root,
                                               hybrid ? CGROUP_BACKEND_HYBRID : CGROUP_BACKEND_V2, buf, sizeof(buf));
                if (failed)
                        (void) !write(p[1], failed, strlen(failed));
                _exit(failed ? 1 : 0);
        }
        close(p[1]);
        k = read(p[0], msg, sizeof(msg) - 1);
        msg[k > 0 ? k : 0] = '\0';
        close(p[0]);
        cr_assert_eq(waitpid(pid, &status, 0), pid);

        /* Clean up before judging: a failed assert must not leave cgroups behind. */
        cgroup_remove_tree(u);
        if (mem)
                cgroup_remove_tree(mem);
        if (link) {
                unlink(link);
                rmdir(fake_root);
                free(link);
        }
        cr_expect(access(u, F_OK) < 0, "test cgroup '%s' left behind", u);
        cr_expect(!mem || access(mem, F_OK) < 0, "test cgroup '%s' left behind", mem);

        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", msg[0] ? msg : "scenario crashed");
}

Test(cgroup_host, real_hybrid_backend) {
        real_cgroup_test(true);
}

Test(cgroup_host, real_cgroup2_backend_without_memory_controller) {
        real_cgroup_test(false);
}
