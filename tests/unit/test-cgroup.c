/* SPDX-License-Identifier: MIT */
/* Tests for cgroup.c (and cgroup-proc.c, cgroup-io.c) against fake cgroupfs and /proc trees built in a
 * temporary directory: probe and reason of each backend, the supervisor/ move, leaves made and removed,
 * sampling, limits, kill, missing and unreadable files, workers gone between read and act, a process's
 * parent. The same code on real cgroups and processes: test-cgroup-host.c; the parsers:
 * test-cgroup-parse.c. */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
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

/* Every optional part of a sample. */
#define WANT_ALL                                                                                            \
        (CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE | CGROUP_SAMPLE_MEMORY_PRESSURE | CGROUP_SAMPLE_EVENTS_MAX)

TestSuite(cgroup, .timeout = 30);

#define FAKE_PID 4242
#define MIB (1024ULL * 1024ULL)

/* ---- fake trees ---- */

typedef struct Tree {
        char root[64];
        char cg[96];
        char proc[96];
} Tree;

static void tree_init(Tree *t) {
        strcpy(t->root, "/tmp/corral-cgtest-XXXXXX");
        cr_assert_not_null(mkdtemp(t->root));
        snprintf(t->cg, sizeof(t->cg), "%s/cg", t->root);
        snprintf(t->proc, sizeof(t->proc), "%s/proc", t->root);
        cr_assert_eq(mkdir(t->cg, 0755), 0);
        cr_assert_eq(mkdir(t->proc, 0755), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

static void tree_done(Tree *t) {
        cr_assert_eq(nftw(t->root, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* The path of rel in the tree; valid until the next call. */
static const char *at(const Tree *t, const char *rel) {
        static char path[512];

        snprintf(path, sizeof(path), "%s/%s", t->root, rel);
        return path;
}

static void rm_rel(const Tree *t, const char *rel) {
        cr_assert_eq(nftw(at(t, rel), rm_one, 16, FTW_DEPTH | FTW_PHYS), 0, "rm %s: %m", rel);
}

static void mkdir_p(char *path) {
        for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
                *p = '\0';
                cr_assert(mkdir(path, 0755) >= 0 || errno == EEXIST, "mkdir %s: %m", path);
                *p = '/';
        }
}

static void put(const Tree *t, const char *rel, const char *content) {
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", t->root, rel);
        mkdir_p(path);
        f = fopen(path, "we");
        cr_assert_not_null(f, "%s: %m", path);
        fputs(content, f);
        cr_assert_eq(fclose(f), 0);
}

static char *get(const Tree *t, const char *rel) {
        char path[512], *s = NULL;
        size_t n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", t->root, rel);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        if (getdelim(&s, &n, '\0', f) < 0) {
                free(s);
                s = strdup("");
        }
        fclose(f);
        return s;
}

static bool exists(const Tree *t, const char *rel) {
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", t->root, rel);
        return access(path, F_OK) >= 0;
}

static void assert_file(const Tree *t, const char *rel, const char *expected) {
        _cleanup_free_ char *s = get(t, rel);

        cr_assert_not_null(s, "%s missing", rel);
        cr_assert_str_eq(s, expected, "%s: '%s' != '%s'", rel, s, expected);
}

#define SVC "cg/svc/corral.service"

/* A unified layout with corral's delegated cgroup at /svc/corral.service, and what mkdir would make. */
static void tree_v2(Tree *t, const char *controllers) {
        tree_init(t);
        put(t, "cg/cgroup.controllers", "cpuset cpu io memory pids\n");
        put(t, SVC "/cgroup.procs", "4242\n");
        put(t, SVC "/cgroup.subtree_control", "");
        put(t, SVC "/cgroup.controllers", controllers);
        put(t, SVC "/supervisor/cgroup.procs", "");
        put(t, "proc/4242/cgroup", "0::/svc/corral.service\n");
}

/* The files the kernel would put in a fresh cgroup2 leaf with the memory controller enabled. */
static void leaf_v2(const Tree *t, const char *dir, bool populated) {
        static const struct {
                const char *name, *content;
        } files[] = {
                { "cgroup.procs", "" },
                { "cgroup.kill", "" },
                { "memory.current", "123456789\n" },
                { "memory.stat", "anon 100000000\nfile 20000000\nkernel 3000000\n" },
                { "memory.events", "low 0\nhigh 7\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n" },
                { "cpu.stat", "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\n" },
                { "memory.pressure", "some avg10=1.50 avg60=0.00 avg300=0.00 total=42\n"
                                     "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n" },
                { "memory.high", "" },
                { "memory.max", "" },
        };
        char rel[256];

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                snprintf(rel, sizeof(rel), "%s/%s", dir, files[i].name);
                put(t, rel, files[i].content);
        }
        snprintf(rel, sizeof(rel), "%s/cgroup.events", dir);
        put(t, rel, populated ? "populated 1\nfrozen 0\n" : "populated 0\nfrozen 0\n");
}

static CgroupManager *manager_new_ok(const Tree *t, CgroupBackend expected, char **ret_reason) {
        CgroupManager *m = NULL;
        char *reason = NULL;

        cr_assert_eq(cgroup_manager_new(t->cg, t->proc, FAKE_PID, &m, &reason), 0);
        cr_assert_not_null(reason);
        cr_assert_eq(cgroup_manager_backend(m), expected, "backend %s, reason: %s",
                     cgroup_backend_to_string(cgroup_manager_backend(m)), reason);
        if (ret_reason)
                *ret_reason = reason;
        else
                free(reason);
        return m;
}

Test(cgroup, v2_probe_moves_to_supervisor_and_enables_controllers) {
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m;
        Tree t;

        tree_v2(&t, "cpu io memory pids\n");
        m = manager_new_ok(&t, CGROUP_BACKEND_V2, &reason);
        cr_assert(strstr(reason, "delegated at '/svc/corral.service'"), "%s", reason);
        cr_assert(strstr(reason, "memory.current"), "%s", reason);
        assert_file(&t, SVC "/supervisor/cgroup.procs", "4242");
        assert_file(&t, SVC "/cgroup.subtree_control", "+memory +cpu +pids");
        cr_assert_str_eq(cgroup_manager_memory_source(m), "memory.current");
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, v2_probe_without_memory_controller_uses_pss) {
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m;
        Tree t;

        tree_v2(&t, "cpu io\n");
        m = manager_new_ok(&t, CGROUP_BACKEND_V2, &reason);
        assert_file(&t, SVC "/cgroup.subtree_control", "+cpu");
        cr_assert_str_eq(cgroup_manager_memory_source(m), "pss");
        cr_assert(strstr(reason, "memory from pss"), "%s", reason);
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, v2_probe_already_in_supervisor) {
        CgroupManager *m;
        Tree t;

        tree_v2(&t, "memory\n");
        put(&t, "proc/4242/cgroup", "0::/svc/corral.service/supervisor\n");
        m = manager_new_ok(&t, CGROUP_BACKEND_V2, NULL);
        assert_file(&t, SVC "/cgroup.subtree_control", "+memory");
        cr_assert(!exists(&t, SVC "/supervisor/supervisor"));
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, v2_probe_refuses_root_cgroup) {
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m;
        Tree t;

        tree_v2(&t, "memory\n");
        put(&t, "proc/4242/cgroup", "0::/\n");
        m = manager_new_ok(&t, CGROUP_BACKEND_PROC, &reason);
        cr_assert(strstr(reason, "cgroup2 root"), "%s", reason);
        cr_assert(strstr(reason, "accounting from /proc"), "%s", reason);
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, v2_probe_missing_subtree_control_falls_back) {
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m;
        Tree t;

        tree_v2(&t, "memory\n");
        cr_assert_eq(unlink(at(&t, SVC "/cgroup.subtree_control")), 0);
        m = manager_new_ok(&t, CGROUP_BACKEND_PROC, &reason);
        cr_assert(strstr(reason, "not delegated"), "%s", reason);
        cr_assert(strstr(reason, strerror(ENOENT)), "%s", reason);
        assert_file(&t, SVC "/supervisor/cgroup.procs", "");
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, v2_probe_failed_move_removes_supervisor) {
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m;
        Tree t;

        /* No supervisor/ files: mkdir works but the (fake) leaf has no cgroup.procs to write to. */
        tree_v2(&t, "memory\n");
        put(&t, SVC "/supervisor/cgroup.procs", "");
        cr_assert_eq(unlink(at(&t, SVC "/supervisor/cgroup.procs")), 0);
        cr_assert_eq(rmdir(at(&t, SVC "/supervisor")), 0);
        m = manager_new_ok(&t, CGROUP_BACKEND_PROC, &reason);
        cr_assert(strstr(reason, "supervisor"), "%s", reason);
        cr_assert(!exists(&t, SVC "/supervisor"), "probe left its supervisor/ behind");
        assert_file(&t, SVC "/cgroup.subtree_control", "");
        cgroup_manager_free(m);
        tree_done(&t);
}

/* Drops the capabilities that let root ignore file modes, in this test's own process (criterion runs
 * each test in one), so that a mode really denies access. */
static void drop_dac_capabilities(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2];
        uint32_t mask = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH) | (1u << CAP_FOWNER);

        cr_assert_eq(syscall(SYS_capget, &h, d), 0);
        d[0].effective &= ~mask;
        d[0].permitted &= ~mask;
        d[0].inheritable &= ~mask;
        cr_assert_eq(syscall(SYS_capset, &h, d), 0, "capset: %m");
}

static void chmod_rel(const Tree *t, const char *rel, mode_t mode) {
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", t->root, rel);
        cr_assert_eq(chmod(path, mode), 0);
}

static void assert_denied(const Tree *t, const char *rel, int flags) {
        char path[512];
        int fd;

        /* The premise of the test, checked: the kernel really refuses us. */
        snprintf(path, sizeof(path), "%s/%s", t->root, rel);
        fd = open(path, flags | O_CLOEXEC);
        cr_assert_lt(fd, 0, "%s still accessible, the test would prove nothing", path);
        cr_assert_eq(errno, EACCES);
}

Test(cgroup, v2_probe_eacces_falls_back) {
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m;
        Tree t;

        tree_v2(&t, "memory\n");
        chmod_rel(&t, SVC "/cgroup.procs", 0444);
        drop_dac_capabilities();
        assert_denied(&t, SVC "/cgroup.procs", O_WRONLY);

        m = manager_new_ok(&t, CGROUP_BACKEND_PROC, &reason);
        cr_assert(strstr(reason, strerror(EACCES)), "%s", reason);
        assert_file(&t, SVC "/supervisor/cgroup.procs", "");
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, v2_worker_lifecycle) {
        CgroupWorker *w = NULL, *w2 = NULL;
        int fds[CGROUP_PROCS_FDS_MAX];
        CgroupManager *m;
        CgroupSample s;
        Tree t;

        tree_v2(&t, "cpu memory pids\n");
        m = manager_new_ok(&t, CGROUP_BACKEND_V2, NULL);

        /* Without the files the kernel makes, the leaf is unusable: the error comes back and nothing is
         * left behind. */
        cr_assert_eq(cgroup_worker_new(m, 3, 7, &w), -ENOENT);
        cr_assert(!exists(&t, SVC "/worker-3-7"));

        /* Two workers of one slot side by side, as during a start-first replacement. */
        leaf_v2(&t, SVC "/worker-3-7", true);
        leaf_v2(&t, SVC "/worker-3-8", false);
        cr_assert_eq(cgroup_worker_new(m, 3, 7, &w), 0);
        cr_assert_eq(cgroup_worker_new(m, 3, 8, &w2), 0);
        cr_assert_str_eq(cgroup_worker_name(w), "worker-3-7");
        cr_assert_str_eq(cgroup_worker_name(w2), "worker-3-8");
        cr_assert_geq(cgroup_worker_v2_dirfd(w), 0);

        cr_assert_eq(cgroup_worker_procs_fds(w, fds), 1);
        cr_assert_geq(fds[0], 0);
        cr_assert_eq(fds[1], -EBADF);
        cr_assert(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
        cr_assert_eq(write(fds[0], "0", 1), 1);
        assert_file(&t, SVC "/worker-3-7/cgroup.procs", "0");
        cgroup_worker_close_procs_fds(w);
        cr_assert_eq(cgroup_worker_procs_fds(w, fds), 0);

        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 1);
        cr_assert_eq(s.flags, CGROUP_SAMPLE_MEMORY_CURRENT | CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE |
                                      CGROUP_SAMPLE_EVENTS_HIGH | CGROUP_SAMPLE_EVENTS_MAX |
                                      CGROUP_SAMPLE_EVENTS_OOM_KILL | CGROUP_SAMPLE_CPU_USAGE |
                                      CGROUP_SAMPLE_MEMORY_PRESSURE);
        cr_assert_eq(s.memory_current, 123456789);
        cr_assert_eq(s.memory_anon, 100000000);
        cr_assert_eq(s.memory_file, 20000000);
        cr_assert_eq(s.events_high, 7);
        cr_assert_eq(s.events_max, 2);
        cr_assert_eq(s.events_oom_kill, 1);
        cr_assert_eq(s.cpu_usage_usec, 5000);
        cr_assert_eq(s.memory_pressure_some_avg10, 150);

        cr_assert_eq(cgroup_worker_set_memory_limits(w, 400 * MIB, UINT64_MAX), 0);
        assert_file(&t, SVC "/worker-3-7/memory.high", "419430400");
        assert_file(&t, SVC "/worker-3-7/memory.max", "max");

        cr_assert_geq(cgroup_worker_events_fd(w), 0);
        cr_assert_eq(cgroup_worker_events_fd(w), cgroup_worker_events_fd(w));

        cr_assert_eq(cgroup_worker_populated(w), 1);
        cr_assert_eq(cgroup_worker_kill(w), 1);
        assert_file(&t, SVC "/worker-3-7/cgroup.kill", "1");
        cr_assert_eq(cgroup_worker_populated(w2), 0);
        cr_assert_eq(cgroup_worker_kill(w2), 0);
        assert_file(&t, SVC "/worker-3-8/cgroup.kill", "");

        /* A fake leaf keeps its files, as a real one keeps its processes: rmdir fails, gc retries. */
        cgroup_worker_free(w);
        cgroup_worker_free(w2);
        cr_assert(exists(&t, SVC "/worker-3-7"));
        cr_assert_eq(cgroup_manager_gc(m), 2);
        rm_rel(&t, SVC "/worker-3-7");
        cr_assert_eq(mkdir(at(&t, SVC "/worker-3-7"), 0755), 0);
        cr_assert_eq(cgroup_manager_gc(m), 1);
        cr_assert(!exists(&t, SVC "/worker-3-7"));
        cr_assert(exists(&t, SVC "/worker-3-8"));

        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, find_pid_by_the_leaf_it_sits_in) {
        CgroupWorker *w = NULL, *w2 = NULL;
        CgroupManager *m;
        Tree t;

        tree_v2(&t, "cpu memory pids\n");
        m = manager_new_ok(&t, CGROUP_BACKEND_V2, NULL);
        leaf_v2(&t, SVC "/worker-0-1", true);
        leaf_v2(&t, SVC "/worker-1-2", true);
        cr_assert_eq(cgroup_worker_new(m, 0, 1, &w), 0);
        cr_assert_eq(cgroup_worker_new(m, 1, 2, &w2), 0);
        put(&t, SVC "/worker-1-2/cgroup.procs", "500\n501\n");
        put(&t, "proc/501/cgroup", "0::/svc/corral.service/worker-1-2\n");
        cr_assert_eq(cgroup_manager_find_pid(m, 501), w2);
        /* Another instance's leaf of the same name: the name alone is not enough. */
        put(&t, "proc/502/cgroup", "0::/svc/other.service/worker-1-2\n");
        cr_assert_null(cgroup_manager_find_pid(m, 502));
        /* Gone, in no worker's leaf, or below one: not found. */
        cr_assert_null(cgroup_manager_find_pid(m, 503));
        put(&t, "proc/504/cgroup", "0::/user.slice/session-1.scope\n");
        cr_assert_null(cgroup_manager_find_pid(m, 504));
        put(&t, "proc/505/cgroup", "0::/svc/corral.service/worker-1-2/sub\n");
        cr_assert_null(cgroup_manager_find_pid(m, 505));

        cgroup_worker_free(w);
        cgroup_worker_free(w2);
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, v2_startup_gc_removes_stale_empty_leaves) {
        CgroupManager *m;
        Tree t;

        tree_v2(&t, "memory\n");
        cr_assert_eq(mkdir(at(&t, SVC "/worker-0-1"), 0755), 0);
        leaf_v2(&t, SVC "/worker-1-1", true);
        cr_assert_eq(mkdir(at(&t, SVC "/other"), 0755), 0);
        m = manager_new_ok(&t, CGROUP_BACKEND_V2, NULL);
        cr_assert(!exists(&t, SVC "/worker-0-1"));
        cr_assert(exists(&t, SVC "/worker-1-1"));
        cr_assert(exists(&t, SVC "/other"));
        cr_assert(exists(&t, SVC "/supervisor"));
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, v2_sample_missing_and_unreadable_files) {
        CgroupWorker *w = NULL;
        CgroupManager *m;
        CgroupSample s;
        Tree t;

        tree_v2(&t, "cpu memory\n");
        m = manager_new_ok(&t, CGROUP_BACKEND_V2, NULL);
        leaf_v2(&t, SVC "/worker-0-1", true);
        cr_assert_eq(cgroup_worker_new(m, 0, 1, &w), 0);

        /* Optional files gone: their flags clear, the rest still there. */
        rm_rel(&t, SVC "/worker-0-1/memory.events");
        rm_rel(&t, SVC "/worker-0-1/memory.pressure");
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 1);
        cr_assert_eq(s.flags & (CGROUP_SAMPLE_EVENTS_MAX | CGROUP_SAMPLE_MEMORY_PRESSURE), 0);
        cr_assert(s.flags & CGROUP_SAMPLE_MEMORY_CURRENT);
        cr_assert(s.flags & CGROUP_SAMPLE_CPU_USAGE);
        cr_assert_eq(cgroup_worker_events_fd(w), -EOPNOTSUPP);

        /* Unreadable is an error, not an absence; not read at all when not wanted. */
        chmod_rel(&t, SVC "/worker-0-1/memory.stat", 0);
        drop_dac_capabilities();
        assert_denied(&t, SVC "/worker-0-1/memory.stat", O_RDONLY);
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), -EACCES);
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.flags & (CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE | CGROUP_SAMPLE_MEMORY_PRESSURE), 0);
        cr_assert(s.flags & CGROUP_SAMPLE_MEMORY_CURRENT);
        chmod_rel(&t, SVC "/worker-0-1/memory.stat", 0644);

        /* Below the manager's keep_below, the files every sample reads stay open and are read again from
         * the start: a rewrite shows. */
        cgroup_manager_set_keep_below(m, UINT64_MAX);
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        put(&t, SVC "/worker-0-1/memory.current", "7\n");
        put(&t, SVC "/worker-0-1/cpu.stat", "usage_usec 9\nuser_usec 5\nsystem_usec 4\n");
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.memory_current, 7);
        cr_assert_eq(s.cpu_usage_usec, 9);
        /* Kept: a fake tree's unlinked file still reads (cgroupfs would answer ENODEV, see
         * test-cgroup-host.c). */
        cr_assert_eq(unlink(at(&t, SVC "/worker-0-1/memory.current")), 0);
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.memory_current, 7);
        cgroup_worker_free(w);
        cgroup_manager_set_keep_below(m, 0);

        /* memory.current missing in a leaf that is still there: a missing controller, an error. (A fresh
         * worker: cgroupfs answers a kept fd of a removed file with ENODEV, which a fake tree cannot.) */
        leaf_v2(&t, SVC "/worker-0-2", true);
        cr_assert_eq(cgroup_worker_new(m, 0, 2, &w), 0);
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1); /* keep_below 0: nothing kept */
        cr_assert_eq(unlink(at(&t, SVC "/worker-0-2/memory.current")), 0);
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), -ENOENT);

        /* The leaf removed behind our back: the worker is gone, not a failure. */
        rm_rel(&t, SVC "/worker-0-2");
        s.flags = 99;
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 0);
        cr_assert_eq(s.flags, 0);

        cgroup_worker_free(w);
        cgroup_manager_free(m);
        tree_done(&t);
}

/* A hybrid layout: cgroup2 on unified/ (no memory controller) and v1 memory beside it. */
static void tree_hybrid(Tree *t) {
        tree_init(t);
        put(t, "cg/unified/cgroup.controllers", "hugetlb\n");
        put(t, "cg/unified/test/cgroup.procs", "");
        put(t, "cg/unified/test/cgroup.subtree_control", "");
        put(t, "cg/memory/mach/svc/cgroup.procs", "");
        put(t, "cg/memory/mach/svc/memory.usage_in_bytes", "4096\n");
        put(t, "proc/4242/cgroup", "9:name=systemd:/\n4:memory:/mach/svc\n1:cpu:/\n0::/test\n");
}

static void leaf_hybrid(const Tree *t, const char *name, const char *procs) {
        char rel[256];

        snprintf(rel, sizeof(rel), "cg/unified/test/corral-4242/%s/cgroup.procs", name);
        put(t, rel, procs);
        snprintf(rel, sizeof(rel), "cg/unified/test/corral-4242/%s/cpu.stat", name);
        put(t, rel, "usage_usec 777\nuser_usec 700\nsystem_usec 77\n");
        snprintf(rel, sizeof(rel), "cg/memory/mach/svc/corral-4242/%s/cgroup.procs", name);
        put(t, rel, procs);
        snprintf(rel, sizeof(rel), "cg/memory/mach/svc/corral-4242/%s/memory.usage_in_bytes", name);
        put(t, rel, "52428800\n");
        snprintf(rel, sizeof(rel), "cg/memory/mach/svc/corral-4242/%s/memory.stat", name);
        put(t, rel, "cache 4096\nrss 40960\ntotal_cache 8192\ntotal_rss 81920\n");
        snprintf(rel, sizeof(rel), "cg/memory/mach/svc/corral-4242/%s/memory.failcnt", name);
        put(t, rel, "5\n");
        snprintf(rel, sizeof(rel), "cg/memory/mach/svc/corral-4242/%s/memory.oom_control", name);
        put(t, rel, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
        snprintf(rel, sizeof(rel), "cg/memory/mach/svc/corral-4242/%s/memory.limit_in_bytes", name);
        put(t, rel, "");
}

Test(cgroup, hybrid_probe_and_sample) {
        _cleanup_free_ char *reason = NULL;
        int fds[CGROUP_PROCS_FDS_MAX];
        CgroupWorker *w = NULL;
        CgroupManager *m;
        CgroupSample s;
        Tree t;

        tree_hybrid(&t);
        m = manager_new_ok(&t, CGROUP_BACKEND_HYBRID, &reason);
        cr_assert(strstr(reason, "'/test/corral-4242'") && strstr(reason, "'/mach/svc/corral-4242'"), "%s", reason);
        cr_assert_str_eq(cgroup_manager_memory_source(m), "memory.usage_in_bytes");
        /* Nothing moved, nothing enabled. */
        assert_file(&t, "cg/unified/test/cgroup.subtree_control", "");
        cr_assert(!exists(&t, "cg/unified/test/supervisor"));

        leaf_hybrid(&t, "worker-0-1", "");
        cr_assert_eq(cgroup_worker_new(m, 0, 1, &w), 0);
        cr_assert_eq(cgroup_worker_procs_fds(w, fds), 2);
        cr_assert_eq(write(fds[0], "0", 1), 1);
        cr_assert_eq(write(fds[1], "0", 1), 1);
        assert_file(&t, "cg/unified/test/corral-4242/worker-0-1/cgroup.procs", "0");
        assert_file(&t, "cg/memory/mach/svc/corral-4242/worker-0-1/cgroup.procs", "0");

        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 1);
        cr_assert_eq(s.flags, CGROUP_SAMPLE_MEMORY_CURRENT | CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE |
                                      CGROUP_SAMPLE_EVENTS_MAX | CGROUP_SAMPLE_EVENTS_OOM_KILL |
                                      CGROUP_SAMPLE_CPU_USAGE);
        cr_assert_eq(s.memory_current, 50 * MIB);
        cr_assert_eq(s.memory_anon, 81920);
        cr_assert_eq(s.memory_file, 8192);
        cr_assert_eq(s.events_max, 5);
        cr_assert_eq(s.events_oom_kill, 2);
        cr_assert_eq(s.cpu_usage_usec, 777);

        cr_assert_eq(cgroup_worker_set_memory_limits(w, UINT64_MAX, 1024 * MIB), 0);
        assert_file(&t, "cg/memory/mach/svc/corral-4242/worker-0-1/memory.limit_in_bytes", "1073741824");
        cr_assert_eq(cgroup_worker_set_memory_limits(w, 512 * MIB, 1024 * MIB), 1);
        cr_assert_eq(cgroup_worker_events_fd(w), -EOPNOTSUPP);

        cgroup_worker_free(w);
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, hybrid_without_v1_memory_uses_cgroup2_alone) {
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m;
        Tree t;

        tree_hybrid(&t);
        cr_assert_eq(unlink(at(&t, "cg/memory/mach/svc/cgroup.procs")), 0);
        put(&t, "cg/unified/test/supervisor/cgroup.procs", "");
        put(&t, "cg/unified/test/cgroup.controllers", "");
        m = manager_new_ok(&t, CGROUP_BACKEND_V2, &reason);
        cr_assert_str_eq(cgroup_manager_memory_source(m), "pss");
        assert_file(&t, "cg/unified/test/supervisor/cgroup.procs", "4242");
        assert_file(&t, "cg/unified/test/cgroup.subtree_control", "");
        cgroup_manager_free(m);
        tree_done(&t);
}

/* A child that waits to be killed, and exits 0 on SIGTERM so the test can tell the signals apart. */
static pid_t fork_sleeper(void) {
        pid_t pid = fork();

        cr_assert_geq(pid, 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;)
                        pause();
        }
        return pid;
}

static void assert_killed(pid_t pid) {
        int status;

        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status 0x%x", status);
}

static pid_t reaped_pid(void) {
        pid_t pid = fork();

        cr_assert_geq(pid, 0);
        if (pid == 0)
                _exit(0);
        cr_assert_eq(waitpid(pid, NULL, 0), pid);
        return pid;
}

Test(cgroup, kill_without_cgroup_kill_signals_every_listed_pid) {
        char procs[64];
        CgroupWorker *w = NULL;
        CgroupManager *m;
        pid_t a, b, gone;
        Tree t;

        tree_hybrid(&t);
        m = manager_new_ok(&t, CGROUP_BACKEND_HYBRID, NULL);
        a = fork_sleeper();
        b = fork_sleeper();
        gone = reaped_pid();
        /* gone stands for a process that exited between the read of cgroup.procs and the kill. */
        snprintf(procs, sizeof(procs), "%d\n%d\n%d\n", (int) a, (int) gone, (int) b);
        /* A populated leftover is not taken over; an empty one is. */
        leaf_hybrid(&t, "worker-1-1", procs);
        cr_assert_eq(cgroup_worker_new(m, 1, 1, &w), -EBUSY);
        cr_assert(exists(&t, "cg/unified/test/corral-4242/worker-1-1"));
        leaf_hybrid(&t, "worker-1-1", "");
        cr_assert_eq(cgroup_worker_new(m, 1, 1, &w), 0);
        cr_assert_eq(cgroup_worker_populated(w), 0);
        put(&t, "cg/unified/test/corral-4242/worker-1-1/cgroup.procs", procs);
        cr_assert_eq(cgroup_worker_populated(w), 1);

        cr_assert_eq(cgroup_worker_kill(w), 2);
        assert_killed(a);
        assert_killed(b);

        /* Only the dead are listed now: nothing to kill, and no error. */
        snprintf(procs, sizeof(procs), "%d\n", (int) gone);
        put(&t, "cg/unified/test/corral-4242/worker-1-1/cgroup.procs", procs);
        cr_assert_eq(cgroup_worker_kill(w), 0);

        cgroup_worker_free(w);
        cgroup_manager_free(m);
        tree_done(&t);
}

/* ---- /proc backend, fake ---- */

/* A process of the fake /proc resident in rss_kb (stat's field 24, in pages) with pss_kb of PSS. */
static void fake_proc_rss(const Tree *t, int pid, char state, int utime, int stime, int pss_kb, int rss_kb,
                          const char *children) {
        char rel[128], content[512];

        snprintf(rel, sizeof(rel), "proc/%d/stat", pid);
        snprintf(content, sizeof(content),
                 "%d (srv (x)) %c 1 %d %d 0 -1 4194560 100 0 0 0 %d %d 1 1 20 0 1 0 5 4096 %ld\n", pid, state, pid,
                 pid, utime, stime, rss_kb * 1024L / sysconf(_SC_PAGESIZE));
        put(t, rel, content);
        snprintf(rel, sizeof(rel), "proc/%d/smaps_rollup", pid);
        snprintf(content, sizeof(content), "0-1 ---p 0 00:00 0 [rollup]\nRss: %d kB\nPss: %d kB\nPss_Anon: %d kB\n"
                 "Pss_File: 0 kB\n", rss_kb, pss_kb, pss_kb);
        put(t, rel, content);
        snprintf(rel, sizeof(rel), "proc/%d/task/%d/children", pid, pid);
        put(t, rel, children);
}

/* A proc backend manager for corral (pid 4242) on a fresh fake tree. */
static CgroupManager *fake_proc_manager(Tree *t, char **reason) {
        tree_init(t);
        put(t, "proc/4242/cgroup", "0::/svc\n");
        return manager_new_ok(t, CGROUP_BACKEND_PROC, reason);
}

/* Resident in twice its PSS, as a worker that shares half of what it maps with others. */
static void fake_proc(const Tree *t, int pid, char state, int utime, int stime, int pss_kb, const char *children) {
        fake_proc_rss(t, pid, state, utime, stime, pss_kb, pss_kb * 2, children);
}

Test(cgroup, proc_backend_sums_the_tree) {
        _cleanup_free_ char *reason = NULL;
        int fds[CGROUP_PROCS_FDS_MAX];
        CgroupWorker *w = NULL;
        CgroupManager *m;
        CgroupSample s;
        long hz = sysconf(_SC_CLK_TCK);
        Tree t;

        tree_init(&t);
        put(&t, "proc/4242/cgroup", "0::/svc\n");
        put(&t, "cg/unrelated", "");
        m = manager_new_ok(&t, CGROUP_BACKEND_PROC, &reason);
        cr_assert(strstr(reason, "v1 only"), "%s", reason);

        /* 100 -> 101 (via its main thread), 100 -> 102 (via thread 105), 101 -> 103; 104 is listed but
         * exited before it could be read. */
        fake_proc(&t, 100, 'S', 10, 5, 1000, "101 ");
        put(&t, "proc/100/task/105/children", "102 104");
        /* 100 has two threads (stat's field 20): its task directory is listed. The others have one: their
         * main thread's children file is read directly, without a listing. */
        put(&t, "proc/100/stat", "100 (srv) S 1 100 100 0 -1 4194560 100 0 0 0 10 5 1 1 20 0 2 0 5 4096 500\n");
        fake_proc(&t, 101, 'R', 20, 0, 2000, "103");
        fake_proc(&t, 102, 'S', 0, 1, 300, "");
        fake_proc(&t, 103, 'S', 4, 0, 24, "");

        cr_assert_eq(cgroup_worker_new(m, 0, 1, &w), 0);
        cr_assert_eq(cgroup_worker_procs_fds(w, fds), 0);
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), -ESRCH);
        cr_assert_eq(cgroup_worker_attach_pid(w, 100), 0);

        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 1);
        cr_assert_eq(s.flags, CGROUP_SAMPLE_MEMORY_CURRENT | CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE |
                                      CGROUP_SAMPLE_CPU_USAGE);
        cr_assert_eq(s.memory_current, (1000 + 2000 + 300 + 24) * 1024);
        cr_assert_eq(s.memory_anon, s.memory_current);
        cr_assert_eq(s.memory_file, 0);
        /* utime+stime+cutime+cstime: (15+2) + (20+2) + (1+2) + (4+2) = 48 ticks. */
        cr_assert_eq(s.cpu_usage_usec, proc_ticks_to_usec(48, (uint64_t) hz));
        /* A descendant that exited but is not reaped yet keeps counting its CPU time (once reaped, its
         * parent's cutime holds it): the total never drops for a moment. */
        fake_proc(&t, 103, 'Z', 4, 0, 0, "");
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 1);
        cr_assert_eq(s.cpu_usage_usec, proc_ticks_to_usec(48, (uint64_t) hz));
        cr_assert_eq(s.memory_current, (1000 + 2000 + 300) * 1024);

        cr_assert_eq(cgroup_worker_set_memory_limits(w, UINT64_MAX, UINT64_MAX), -EOPNOTSUPP);
        cr_assert_eq(cgroup_worker_events_fd(w), -EOPNOTSUPP);
        cr_assert_eq(cgroup_worker_v2_dirfd(w), -EOPNOTSUPP);
        cr_assert_eq(cgroup_worker_populated(w), 1);

        /* The main process became a zombie: gone, its orphans are no longer the worker's. */
        fake_proc(&t, 100, 'Z', 10, 5, 0, "");
        cr_assert_eq(cgroup_worker_populated(w), 0);
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 0);
        /* ... and reaped. */
        rm_rel(&t, "proc/100");
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 0);
        /* A kill looks through corral's children afresh, and a look that fails is an error: the last list's
         * pids may be other processes' by now. */
        cr_assert_eq(cgroup_worker_kill(w), -ENOENT);
        put(&t, "proc/4242/task/4242/children", "100 ");
        cr_assert_eq(cgroup_worker_kill(w), 0);
        cr_assert_eq(cgroup_worker_kill_left(w), 0);

        cgroup_worker_free(w);
        cgroup_manager_free(m);
        tree_done(&t);
}

/* PSS is read again only when it may have moved: the tree's resident set or processes changed, or it is
 * near the limit set for exactness; otherwise the last figure stands (never above the resident set). */
Test(cgroup, proc_backend_reads_pss_again_only_when_it_may_have_moved) {
        _cleanup_free_ char *reason = NULL;
        CgroupWorker *w = NULL;
        CgroupManager *m;
        CgroupSample s;
        Tree t;

        m = fake_proc_manager(&t, &reason);
        fake_proc_rss(&t, 100, 'S', 10, 5, 1000, 4096, "101");
        fake_proc_rss(&t, 101, 'S', 1, 1, 2000, 4096, "");
        cr_assert_eq(cgroup_worker_new(m, 0, 1, &w), 0);
        cr_assert_eq(cgroup_worker_attach_pid(w, 100), 0);
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.memory_current, 3000 * 1024);

        /* PSS moved, the resident set did not: the last figure stands, CPU time is fresh. */
        fake_proc_rss(&t, 101, 'S', 7, 1, 2500, 4096, "");
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.memory_current, 3000 * 1024);
        cr_assert_eq(s.cpu_usage_usec, proc_ticks_to_usec(10 + 5 + 7 + 1 + 4 * 1, (uint64_t) sysconf(_SC_CLK_TCK)));
        /* A report that asks for anon/file reads it. */
        cr_assert_eq(cgroup_worker_sample(w, CGROUP_SAMPLE_MEMORY_ANON, &s), 1);
        cr_assert_eq(s.memory_current, 3500 * 1024);

        /* A limit within 1/16 of the resident set (8 MiB): read every time. */
        fake_proc_rss(&t, 101, 'S', 7, 1, 2600, 4096, "");
        cgroup_manager_set_pss_exact_from(m, 8400 * 1024);
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.memory_current, 3600 * 1024);
        /* ... and not with the limit well above it and the margin for the kernel's per-CPU counters (a few
         * MiB on a few CPUs, 1.5 GiB on 256). */
        cgroup_manager_set_pss_exact_from(m, UINT64_C(1) << 40);
        fake_proc_rss(&t, 101, 'S', 7, 1, 2700, 4096, "");
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.memory_current, 3600 * 1024);

        /* The resident set grew by more than 1/16: read. */
        fake_proc_rss(&t, 101, 'S', 7, 1, 2800, 6000, "");
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.memory_current, 3800 * 1024);

        /* A process left the tree: read. */
        fake_proc_rss(&t, 100, 'S', 10, 5, 1000, 4096, "");
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_eq(s.memory_current, 1000 * 1024);

        /* Shrunk by less than 1/16 with the last PSS above it: never reported above the resident set and
         * the margin for the kernel's counters (64 GiB to 62 GiB; the margin is under 2 GiB up to 256 CPUs). */
        fake_proc_rss(&t, 100, 'S', 10, 5, 64 << 20, 64 << 20, "");
        cr_assert_eq(cgroup_worker_sample(w, CGROUP_SAMPLE_MEMORY_ANON, &s), 1);
        cr_assert_eq(s.memory_current, UINT64_C(64) << 30);
        fake_proc_rss(&t, 100, 'S', 10, 5, 64 << 20, 62 << 20, "");
        cr_assert_eq(cgroup_worker_sample(w, 0, &s), 1);
        cr_assert_geq(s.memory_current, UINT64_C(62) << 30);
        cr_assert_lt(s.memory_current, UINT64_C(64) << 30);

        cgroup_worker_free(w);
        cgroup_manager_free(m);
        tree_done(&t);
}

/* Like fake_proc(), for a process in session's session (not its leader): an orphan a worker left. */
static void fake_orphan(const Tree *t, int pid, int session, int pss_kb, const char *children) {
        char rel[128], content[512];

        fake_proc(t, pid, 'S', 1, 1, pss_kb, children);
        snprintf(rel, sizeof(rel), "proc/%d/stat", pid);
        snprintf(content, sizeof(content), "%d (orphan) S 4242 %d %d 0 -1 4194560 100 0 0 0 1 1 0 0 20 0 1 0 5 4096 10\n",
                 pid, session, session);
        put(t, rel, content);
}

Test(cgroup, proc_backend_counts_the_orphans_of_a_worker) {
        _cleanup_free_ char *reason = NULL;
        CgroupWorker *w = NULL, *other = NULL;
        CgroupManager *m;
        CgroupSample s;
        Tree t;

        m = fake_proc_manager(&t, &reason);
        /* corral (4242) has the workers 100 and 300 as children, and three orphans re-parented to it: 200
         * (with a child 201) and 202 left by worker 100, 400 by worker 300; 500 is a zombie left by 100.
         * (Killing them is tested with real processes: test_orphans.py; these pids are fake.) */
        put(&t, "proc/4242/task/4242/children", "100 200 300 202 400 500");
        fake_proc(&t, 100, 'S', 10, 5, 1000, "");
        fake_proc(&t, 300, 'S', 10, 5, 3000, "");
        fake_orphan(&t, 200, 100, 200, "201");
        fake_orphan(&t, 201, 100, 20, "");
        fake_orphan(&t, 202, 100, 2, "");
        fake_orphan(&t, 400, 300, 4, "");
        fake_orphan(&t, 500, 100, 0, "");
        put(&t, "proc/500/stat", "500 (z) Z 4242 100 100 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n");

        cr_assert_eq(cgroup_worker_new(m, 0, 1, &w), 0);
        cr_assert_eq(cgroup_worker_attach_pid(w, 100), 0);
        cr_assert_eq(cgroup_worker_new(m, 1, 1, &other), 0);
        cr_assert_eq(cgroup_worker_attach_pid(other, 300), 0);

        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 1);
        cr_assert_eq(s.memory_current, (1000 + 200 + 20 + 2) * 1024);
        cr_assert_eq(cgroup_worker_sample(other, WANT_ALL, &s), 1);
        cr_assert_eq(s.memory_current, (3000 + 4) * 1024);

        /* The worker gone, its orphans are not counted for it any more (its slot's next worker has its own
         * pid, so its own session). */
        fake_proc(&t, 100, 'Z', 10, 5, 0, "");
        cr_assert_eq(cgroup_worker_sample(w, WANT_ALL, &s), 0);

        cgroup_worker_free(other);
        cgroup_worker_free(w);
        cgroup_manager_free(m);
        tree_done(&t);
}

Test(cgroup, proc_get_ppid_from_the_stat_file) {
        _cleanup_close_ int proc_fd = -EBADF;
        CgroupManager *m;
        pid_t ppid = -1;
        Tree t;

        tree_init(&t);
        put(&t, "proc/4242/cgroup", "0::/svc\n");
        m = manager_new_ok(&t, CGROUP_BACKEND_PROC, NULL);
        proc_fd = open(t.proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(proc_fd, 0);

        /* fake_proc() writes ppid 1; a comm with spaces and parentheses must not shift the fields. */
        fake_proc(&t, 100, 'S', 0, 0, 0, "");
        put(&t, "proc/101/stat", "101 (a) b (c) S 100 101 101 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 4096 10\n");
        cr_assert_eq(proc_pid_get_ppid(proc_fd, 101, &ppid), 0);
        cr_assert_eq(ppid, 100);
        cr_assert_eq(proc_pid_get_ppid(proc_fd, 100, &ppid), 0);
        cr_assert_eq(ppid, 1);
        /* A zombie still names its parent. */
        put(&t, "proc/102/stat", "102 (z) Z 101 102 102 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n");
        cr_assert_eq(proc_pid_get_ppid(proc_fd, 102, &ppid), 0);
        cr_assert_eq(ppid, 101);

        /* Through the manager, which reads its own /proc. */
        ppid = -1;
        cr_assert_eq(cgroup_manager_get_ppid(m, 101, &ppid), 0);
        cr_assert_eq(ppid, 100);
        cr_assert_eq(cgroup_manager_get_ppid(NULL, 101, &ppid), -ENODEV);

        /* Gone, never there, or not a pid: -ESRCH, and *ret untouched. */
        ppid = -1;
        rm_rel(&t, "proc/101");
        cr_assert_eq(proc_pid_get_ppid(proc_fd, 101, &ppid), -ESRCH);
        cr_assert_eq(cgroup_manager_get_ppid(m, 101, &ppid), -ESRCH);
        cr_assert_eq(proc_pid_get_ppid(proc_fd, 999, &ppid), -ESRCH);
        cr_assert_eq(proc_pid_get_ppid(proc_fd, 0, &ppid), -ESRCH);
        cr_assert_eq(ppid, -1);
        /* A stat file that does not parse is an error, not a parent. */
        put(&t, "proc/103/stat", "103 (truncated\n");
        cr_assert_lt(proc_pid_get_ppid(proc_fd, 103, &ppid), 0);
        cr_assert_eq(ppid, -1);

        cgroup_manager_free(m);
        tree_done(&t);
}

static void mkdir_rel(const Tree *t, const char *rel) {
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", t->root, rel);
        cr_assert(mkdir(path, 0755) >= 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
}

Test(cgroup, hybrid_instance_directories_are_ours_and_cleaned_up) {
        char dead[64], dead_leaf[96], alive[64], rel[160];
        CgroupManager *m;
        Tree t;

        tree_hybrid(&t);
        /* A corral that died without cleaning up, with an empty leaf, and a live one that must be left. */
        snprintf(dead, sizeof dead, "corral-%d", (int) reaped_pid());
        snprintf(dead_leaf, sizeof dead_leaf, "%s/worker-0-7", dead);
        snprintf(alive, sizeof alive, "corral-%d", (int) getpid());
        for (size_t i = 0; i < 2; i++) {
                const char *base = i == 0 ? "cg/unified/test" : "cg/memory/mach/svc";
                snprintf(rel, sizeof rel, "%s/%s", base, dead);
                mkdir_rel(&t, rel);
                snprintf(rel, sizeof rel, "%s/%s", base, dead_leaf);
                mkdir_rel(&t, rel);
                snprintf(rel, sizeof rel, "%s/%s", base, alive);
                mkdir_rel(&t, rel);
        }

        m = manager_new_ok(&t, CGROUP_BACKEND_HYBRID, NULL);
        for (size_t i = 0; i < 2; i++) {
                const char *base = i == 0 ? "cg/unified/test" : "cg/memory/mach/svc";
                snprintf(rel, sizeof rel, "%s/%s", base, dead);
                cr_assert(!exists(&t, rel), "%s of a dead corral was left", rel);
                snprintf(rel, sizeof rel, "%s/%s", base, alive);
                cr_assert(exists(&t, rel), "%s of a live process was removed", rel);
                snprintf(rel, sizeof rel, "%s/corral-%d", base, FAKE_PID);
                cr_assert(exists(&t, rel));
        }

        /* Our directory goes away with the manager once it is empty (where the leaves go inside it is
         * checked by hybrid_probe_and_sample; fake leaves hold files, so they could not be removed here). */
        cgroup_manager_free(m);
        cr_assert(!exists(&t, "cg/unified/test/corral-4242"));
        cr_assert(!exists(&t, "cg/memory/mach/svc/corral-4242"));
}
