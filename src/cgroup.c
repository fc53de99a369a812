/* SPDX-License-Identifier: MIT */
/* The cgroup manager and per-worker leaves: backend probe, leaf creation and removal, sampling, memory
 * limits, kill. Every path is relative to a directory fd (cgroupfs root, /proc, a base cgroup, a leaf),
 * so the tests run all of it against a fake tree of plain files. */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "cgroup-parse.h"
#include "cgroup-proc.h"
#include "log.h"

/* Bound on the rounds of the kill loop without cgroup.kill. */
#define KILL_ROUNDS_MAX 16U

static const char *const backend_table[_CGROUP_BACKEND_MAX] = {
        [CGROUP_BACKEND_V2] = "cgroup-v2",
        [CGROUP_BACKEND_HYBRID] = "hybrid",
        [CGROUP_BACKEND_PROC] = "proc",
};

const char *cgroup_backend_to_string(CgroupBackend b) {
        if (b < 0 || b >= _CGROUP_BACKEND_MAX)
                return NULL;
        return backend_table[b];
}

/* The controllers corral enables for its worker leaves, when the parent offers them. */
static const char *const wanted_controllers[] = { "memory", "cpu", "pids" };

/* Opens a cgroup path ("/a/b", "/") below a hierarchy's mount fd. */
static int open_cgroup_dir(int mount_fd, const char *path) {
        const char *rel = path + strspn(path, "/");
        int fd;

        fd = openat(mount_fd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* ---- probe ---- */

/* Delegated cgroup v2: base is our own cgroup (or its parent when we already sit in supervisor/). */
static int probe_v2(CgroupManager *m, int mount_fd, const char *path, pid_t self, char **ret_reason) {
        _cleanup_free_ char *base_path = NULL, *controllers = NULL, *enabled = NULL;
        _cleanup_close_ int base_fd = -EBADF, sup_fd = -EBADF;
        char enable[32] = "", pid_str[16];
        bool created = false;
        const char *sup;
        int r, enable_r;

        base_path = strdup(path);
        if (!base_path)
                return -ENOMEM;
        sup = strrchr(base_path, '/');
        if (sup && streq(sup, "/supervisor"))
                base_path[sup == base_path ? 1 : sup - base_path] = '\0';
        if (streq(base_path, "/")) {
                *ret_reason = strdup("corral runs in the cgroup2 root, which is not delegated to it");
                return -EPERM;
        }

        base_fd = open_cgroup_dir(mount_fd, base_path);
        if (base_fd >= 0)
                r = dir_check_writable(base_fd, "cgroup.procs");
        else
                r = base_fd;
        if (r >= 0)
                r = dir_check_writable(base_fd, "cgroup.subtree_control");
        if (r < 0) {
                *ret_reason = strdup_printf("cgroup2 '%s' is not delegated to corral: %s", base_path,
                                            strerror(-r));
                return r;
        }

        /* The no-internal-processes rule: controllers can be enabled for the leaves only once our own
         * cgroup holds no process, so corral moves itself into a leaf of its own first. */
        if (mkdirat(base_fd, "supervisor", 0755) >= 0)
                created = true;
        else if (errno != EEXIST)
                r = -errno;
        if (r >= 0) {
                sup_fd = openat(base_fd, "supervisor", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                r = sup_fd < 0 ? -errno : 0;
        }
        if (r >= 0) {
                (void) snprintf(pid_str, sizeof(pid_str), "%d", (int) self);
                r = dir_write_file(sup_fd, "cgroup.procs", pid_str);
        }
        if (r < 0) {
                if (created)
                        (void) unlinkat(base_fd, "supervisor", AT_REMOVEDIR);
                *ret_reason = strdup_printf("could not move corral into '%s/supervisor': %s", base_path,
                                            strerror(-r));
                return r;
        }

        r = dir_read_file(base_fd, "cgroup.controllers", &controllers);
        if (r < 0)
                controllers = NULL;
        for (size_t i = 0; controllers && i < ELEMENTSOF(wanted_controllers); i++)
                if (cgroup_controllers_contain(controllers, wanted_controllers[i])) {
                        if (enable[0])
                                strcat(enable, " ");
                        strcat(enable, "+");
                        strcat(enable, wanted_controllers[i]);
                }
        /* Enabling fails with EBUSY when another process still sits in our cgroup. Leaves still work
         * then, without controllers: memory falls back to PSS, cpu.stat and cgroup.kill remain. */
        enable_r = enable[0] ? dir_write_file(base_fd, "cgroup.subtree_control", enable) : 0;
        if (enable_r < 0)
                log_debug_errno(enable_r, "Failed to enable '%s' below '%s': %m", enable, base_path);
        if (dir_read_file(base_fd, "cgroup.subtree_control", &enabled) < 0)
                enabled = NULL;

        /* The kernel lists enabled controllers without the '+'; a successful write of "+memory" says the
         * same thing. */
        m->memory = (enable_r >= 0 && strstr(enable, "+memory")) ||
                                    (enabled && cgroup_controllers_contain(enabled, "memory")) ?
                            MEMORY_V2 :
                            MEMORY_PSS;
        m->v2_fd = TAKE_FD(base_fd);
        *ret_reason = strdup_printf("cgroup v2 delegated at '%s': corral moved into supervisor/, controllers "
                                    "'%s'%s%s, memory from %s",
                                    base_path, enable[0] ? enable : "(none available)",
                                    enable_r < 0 ? " could not be enabled: " : " enabled",
                                    enable_r < 0 ? strerror(-enable_r) : "",
                                    cgroup_manager_memory_source(m));
        return 0;
}

/* Opens (creating it if needed) the directory name below parent_fd. */
static int instance_dir(int parent_fd, const char *name) {
        int fd;

        if (mkdirat(parent_fd, name, 0755) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* SIGKILLs every pid listed in cgroup.procs of dir_fd, re-reading until a round brings no new one: a
 * process forked between read and kill is in the same leaf (it cannot leave) and shows up next round, and
 * once SIGKILL is pending a process can fork no more. Only where cgroup.kill is missing (before 5.14, v1): a
 * pid read here could in theory be reused between read and kill, which cgroup.kill rules out. Returns the
 * number of processes signalled or -errno (after signalling every one it could). */
static int kill_procs_of(int dir_fd) {
        _cleanup_free_ pid_t *seen = NULL;
        size_t n_seen = 0;
        int killed = 0, error = 0, r;

        for (unsigned round = 0; round < KILL_ROUNDS_MAX; round++) {
                _cleanup_free_ pid_t *pids = NULL;
                bool fresh = false;

                r = dir_read_pids(dir_fd, "cgroup.procs", &pids);
                if (r < 0) {
                        if (!errno_is_gone(r))
                                error = r;
                        break;
                }
                for (int i = 0; i < r; i++) {
                        if (pid_set_contains(seen, n_seen, pids[i]))
                                continue;
                        int k = pid_set_add(&seen, &n_seen, pids[i]);
                        if (k < 0)
                                return k;
                        fresh = true;
                        if (kill(pids[i], SIGKILL) >= 0)
                                killed++;
                        else if (errno != ESRCH && error == 0)
                                error = -errno; /* go on: kill all the others anyway */
                }
                if (!fresh)
                        break;
        }
        return error < 0 ? error : killed;
}

/* pidfds of killed leftovers, waited for before their leaves are removed. Bounded: a crash leaves at most
 * a leaf per worker, and the bound is only on how many exits are waited for. */
typedef struct PidfdSet {
        int fds[256];
        size_t n;
} PidfdSet;

/* Kills what is left in a dead instance's leaf (cgroup.kill where the leaf has it), unless the leaf can be
 * removed at once, being empty. Returns how many processes were signalled (cgroup.kill: 1 if any were). */
static int gc_dead_leaf_kill(int inst_fd, const char *name, PidfdSet *waits) {
        _cleanup_close_ int leaf = -EBADF;
        _cleanup_free_ pid_t *pids = NULL;
        int n;

        if (unlinkat(inst_fd, name, AT_REMOVEDIR) >= 0 || errno != EBUSY)
                return 0;
        leaf = openat(inst_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (leaf < 0)
                return 0;
        /* Watched before the kill: the leaf could be removed while a leftover's exit was still under way
         * (a big address space, a sanitized one reserves terabytes, takes a while to tear down) and its
         * fds, the listening sockets among them, still open: the next bind failed. Its pidfd says when
         * the exit is done. */
        n = dir_read_pids(leaf, "cgroup.procs", &pids);
        for (int i = 0; i < n && waits->n < ELEMENTSOF(waits->fds); i++) {
                int fd = pidfd_open(pids[i], 0);
                if (fd >= 0)
                        waits->fds[waits->n++] = fd;
        }
        if (dir_write_file(leaf, "cgroup.kill", "1") >= 0)
                return 1;
        return MAX(kill_procs_of(leaf), 0);
}

/* Waits until every watched process has exited, or deadline; closes the pidfds. */
static void pidfd_set_wait(PidfdSet *s, usec_t deadline) {
        for (size_t i = 0; i < s->n; i++) {
                struct pollfd p = { .fd = s->fds[i], .events = POLLIN };
                usec_t now = now_usec(CLOCK_MONOTONIC);

                if (now < deadline)
                        (void) poll(&p, 1, (int) ((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
                safe_close(s->fds[i]);
        }
        s->n = 0;
}

/* Removes the worker leaves of an instance directory, then the directory, retrying while killed processes
 * are still leaving (they do so asynchronously) until deadline. */
static void gc_dead_instance_remove(int parent_fd, int inst_fd, const char *name, usec_t deadline) {
        for (;;) {
                _cleanup_(closedirp) DIR *leaves = fdopendir(fcntl(inst_fd, F_DUPFD_CLOEXEC, 3));
                bool busy = false;

                for (struct dirent *le; leaves && (le = readdir(leaves));)
                        if (startswith(le->d_name, "worker-") && unlinkat(inst_fd, le->d_name, AT_REMOVEDIR) < 0 &&
                            errno == EBUSY)
                                busy = true;
                if (!busy || now_usec(CLOCK_MONOTONIC) >= deadline)
                        break;
                (void) usleep(10 * 1000);
        }
        (void) unlinkat(parent_fd, name, AT_REMOVEDIR);
}

/* The instance directories of corral processes that are gone, as a crash or SIGKILL leaves them behind:
 * whatever is still running in their worker leaves (a worker's child that left its session, holding the
 * listening sockets it inherited) is killed, then the leaves and the directory are removed. Only our own
 * naming, only dead pids. Returns how many leftover processes were signalled. */
static unsigned gc_dead_instances(int parent_fd) {
        _cleanup_(closedirp) DIR *d = NULL;
        PidfdSet waits = {};
        unsigned killed = 0;
        usec_t deadline = 0;
        int fd;

        fd = openat(parent_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return 0;
        }
        for (struct dirent *de; (de = readdir(d));) {
                const char *p = startswith(de->d_name, "corral-");
                _cleanup_close_ int inst = -EBADF;
                _cleanup_(closedirp) DIR *leaves = NULL;
                char *end;
                long pid;

                if (!p || !*p)
                        continue;
                errno = 0;
                pid = strtol(p, &end, 10);
                if (errno != 0 || *end || pid <= 0 || kill((pid_t) pid, 0) >= 0 || errno != ESRCH)
                        continue;
                inst = openat(parent_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (inst < 0)
                        continue;
                leaves = fdopendir(fcntl(inst, F_DUPFD_CLOEXEC, 3));
                for (struct dirent *le; leaves && (le = readdir(leaves));)
                        if (startswith(le->d_name, "worker-"))
                                killed += (unsigned) gc_dead_leaf_kill(inst, le->d_name, &waits);
                /* One bound for the whole start-up, however many leaves a crash left. */
                if (deadline == 0)
                        deadline = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
                pidfd_set_wait(&waits, deadline);
                gc_dead_instance_remove(parent_fd, inst, de->d_name, deadline);
        }
        return killed;
}

/* When corral is the first process of a pid namespace of its own (a container's entrypoint; its parent is
 * outside: getppid() is 0), the inode of that namespace; else 0. */
static uint64_t own_pid_namespace(void) {
        struct stat st;

        if (getpid() != 1 && getppid() != 0)
                return 0;
        return stat("/proc/self/ns/pid", &st) < 0 ? 0 : (uint64_t) st.st_ino;
}

static int probe_hybrid(CgroupManager *m, int unified_fd, int memory_mount_fd, const char *unified_path,
                        const char *memory_path, pid_t self, char **ret_reason) {
        _cleanup_close_ int v2 = -EBADF, v1 = -EBADF, iv2 = -EBADF, iv1 = -EBADF;
        const char *what = "cgroup2", *path = unified_path;
        unsigned leftovers;
        uint64_t pidns;
        int r;

        v2 = open_cgroup_dir(unified_fd, unified_path);
        r = v2 < 0 ? v2 : dir_check_writable(v2, "cgroup.procs");
        if (r >= 0) {
                what = "v1 memory";
                path = memory_path;
                v1 = memory_mount_fd < 0 ? -ENOENT : open_cgroup_dir(memory_mount_fd, memory_path);
                r = v1 < 0 ? v1 : dir_check_writable(v1, "cgroup.procs");
        }
        if (r >= 0)
                r = faccessat(v1, "memory.usage_in_bytes", R_OK, 0) < 0 ? -errno : 0;
        if (r < 0) {
                *ret_reason = strdup_printf("hybrid cgroups, but the %s cgroup '%s' is not usable: %s", what,
                                            path, strerror(-r));
                return r;
        }

        /* Nothing delegated these cgroups to us: others may live in them too, another corral among them.
         * Our leaves go into a directory of our own, corral-<pid>, so instances never collide and a crash
         * leaves its traces in one place (removed by the next start). No move into supervisor/ is needed:
         * no controller is enabled in our cgroup2 subtree and v1 has no no-internal-processes rule. */
        /* As PID 1 of a pid namespace of its own (a container without a cgroup namespace of its own),
         * corral cannot tell a live corral's pid outside from a dead one's, nor is its own pid unique: it
         * touches no other instance's directory, and names its own after the namespace too, a name no
         * corral takes for a pid and removes. What a crash leaves there stays for the container's owner. */
        pidns = own_pid_namespace();
        if (pidns == 0) {
                leftovers = gc_dead_instances(v2);
                leftovers += gc_dead_instances(v1);
                snprintf(m->instance, sizeof m->instance, "corral-%d", (int) self);
        } else {
                leftovers = 0;
                snprintf(m->instance, sizeof m->instance, "corral-%d-%" PRIu64, (int) self, pidns);
        }
        iv2 = instance_dir(v2, m->instance);
        iv1 = iv2 < 0 ? iv2 : instance_dir(v1, m->instance);
        if (iv1 < 0) {
                (void) unlinkat(v2, m->instance, AT_REMOVEDIR);
                *ret_reason = strdup_printf("hybrid cgroups, but creating '%s' failed: %s", m->instance, strerror(-iv1));
                m->instance[0] = 0;
                return iv1;
        }
        m->memory = MEMORY_V1;
        m->v2_fd = TAKE_FD(iv2);
        m->v1_fd = TAKE_FD(iv1);
        m->v2_parent_fd = TAKE_FD(v2);
        m->v1_parent_fd = TAKE_FD(v1);
        /* Paths as /proc/self/cgroup gives them; the root is "/", which must not double the slash. */
        *ret_reason = strdup_printf("hybrid cgroups: worker leaves in cgroup2 '%s/%s' (cpu.stat, cgroup.kill) and "
                                    "in v1 memory '%s/%s' (memory.usage_in_bytes)%s",
                                    streq(unified_path, "/") ? "" : unified_path, m->instance,
                                    streq(memory_path, "/") ? "" : memory_path, m->instance,
                                    leftovers > 0 ? "; killed what a dead corral left in its leaves" : "");
        return 0;
}

static int probe(CgroupManager *m, const char *cgroupfs_root, pid_t self, char **ret_reason) {
        _cleanup_free_ char *content = NULL, *unified = NULL, *memory = NULL, *why = NULL, *hybrid_why = NULL;
        char *joined;
        _cleanup_close_ int root_fd = -EBADF, unified_fd = -EBADF, memory_fd = -EBADF;
        char path[64];
        int r;

        if (!cgroupfs_root) {
                why = strdup("cgroup accounting turned off");
                goto fallback;
        }

        (void) snprintf(path, sizeof(path), "%d/cgroup", (int) self);
        r = dir_read_file(m->proc_fd, path, &content);
        if (r >= 0)
                r = cgroup_parse_self(content, &unified, &memory);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                why = strdup_printf("cannot read /proc/%d/cgroup: %s", (int) self, strerror(-r));
                goto fallback;
        }
        if (!unified) {
                why = strdup("no cgroup2 hierarchy");
                goto fallback;
        }

        root_fd = open(cgroupfs_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0) {
                why = strdup_printf("cannot open '%s': %s", cgroupfs_root, strerror(errno));
                goto fallback;
        }

        /* cgroup.controllers at the top means cgroup2 is mounted there (unified layout); in the hybrid
         * layout it is mounted on unified/ and the v1 controllers beside it. */
        if (faccessat(root_fd, "cgroup.controllers", F_OK, 0) >= 0) {
                r = probe_v2(m, root_fd, unified, self, &why);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0) {
                        m->backend = CGROUP_BACKEND_V2;
                        *ret_reason = TAKE_PTR(why);
                        return 0;
                }
                goto fallback;
        }

        unified_fd = openat(root_fd, "unified", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (unified_fd < 0 || faccessat(unified_fd, "cgroup.controllers", F_OK, 0) < 0) {
                why = strdup("cgroup v1 only, no cgroup2 hierarchy mounted");
                goto fallback;
        }
        if (memory) {
                memory_fd = openat(root_fd, "memory", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                r = probe_hybrid(m, unified_fd, memory_fd, unified, memory, self, &why);
        } else
                why = strdup("hybrid cgroups without a v1 memory controller"), r = -ENOENT;
        if (r == -ENOMEM)
                return r;
        if (r >= 0) {
                m->backend = CGROUP_BACKEND_HYBRID;
                *ret_reason = TAKE_PTR(why);
                return 0;
        }

        /* The v1 memory hierarchy is not ours; cgroup2 without memory still gives cpu.stat and a kill that
         * reaches every descendant, with memory from PSS. */
        hybrid_why = TAKE_PTR(why);
        r = probe_v2(m, unified_fd, unified, self, &why);
        if (r == -ENOMEM || !why || !hybrid_why)
                return -ENOMEM;
        joined = strdup_printf("%s; %s", r >= 0 ? why : hybrid_why, r >= 0 ? hybrid_why : why);
        free(why);
        why = TAKE_PTR(joined);
        if (r >= 0) {
                m->backend = CGROUP_BACKEND_V2;
                *ret_reason = TAKE_PTR(why);
                return 0;
        }

fallback:
        m->backend = CGROUP_BACKEND_PROC;
        m->memory = MEMORY_PSS;
        *ret_reason = strdup_printf("no usable cgroup (%s): accounting from /proc, PSS and utime+stime of "
                                    "each worker's process tree",
                                    why ?: "out of memory");
        return 0;
}

/* ---- manager ---- */

int cgroup_manager_new(
                const char *cgroupfs_root,
                const char *proc_root,
                pid_t self,
                CgroupManager **ret,
                char **ret_reason) {
        _cleanup_(cgroup_manager_freep) CgroupManager *m = NULL;
        _cleanup_free_ char *reason = NULL;
        long hz;
        int r;

        m = calloc(1, sizeof(CgroupManager));
        if (!m)
                return -ENOMEM;
        *m = (CgroupManager) {
                .backend = CGROUP_BACKEND_PROC,
                .memory = MEMORY_PSS,
                .proc_fd = -EBADF,
                .v2_fd = -EBADF,
                .v1_fd = -EBADF,
                .v2_parent_fd = -EBADF,
                .v1_parent_fd = -EBADF,
        };
        hz = sysconf(_SC_CLK_TCK);
        m->hz = hz > 0 ? (uint64_t) hz : 100;
        m->page_size = (uint64_t) MAX(sysconf(_SC_PAGESIZE), 1L);
        {
                /* Linux 6.2+ keeps the resident counters (file, anon, shmem) per CPU and reads them without
                 * summing: each may read up to batch x CPUs low, batch = max(32, 2 x CPUs). */
                uint64_t cpus = (uint64_t) MAX(sysconf(_SC_NPROCESSORS_CONF), 1L);

                m->rss_lag_pages = 3 * MAX(32U, 2 * cpus) * cpus;
        }

        m->proc_fd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (m->proc_fd < 0)
                return -errno;

        m->self = self > 0 ? self : getpid();
        r = probe(m, cgroupfs_root, m->self, &reason);
        if (r < 0)
                return r;
        if (!reason)
                return -ENOMEM;

        /* Leaves of an earlier instance that crashed or was killed: remove the empty ones now. */
        m->gc_pending = true;
        (void) cgroup_manager_gc(m);

        *ret = TAKE_PTR(m);
        if (ret_reason)
                *ret_reason = TAKE_PTR(reason);
        return 0;
}

CgroupManager *cgroup_manager_free(CgroupManager *m) {
        if (!m)
                return NULL;
        while (m->workers)
                cgroup_worker_free(m->workers);
        safe_close(m->proc_fd);
        safe_close(m->v2_fd);
        safe_close(m->v1_fd);
        if (m->instance[0]) {
                /* Empty once every worker leaf is gone; a populated one stays for the next start's gc. */
                (void) unlinkat(m->v2_parent_fd, m->instance, AT_REMOVEDIR);
                (void) unlinkat(m->v1_parent_fd, m->instance, AT_REMOVEDIR);
        }
        safe_close(m->v2_parent_fd);
        safe_close(m->v1_parent_fd);
        free(m->orphans);
        free(m);
        return NULL;
}

unsigned cgroup_manager_fds_per_worker(const CgroupManager *m) {
        /* pidfd and status pipe; v2: the leaf's directory and memory.events; hybrid: two leaf directories. */
        if (!m || m->backend == CGROUP_BACKEND_PROC)
                return 2;
        return 4;
}

CgroupBackend cgroup_manager_backend(const CgroupManager *m) {
        return m->backend;
}

const char *cgroup_manager_memory_source(const CgroupManager *m) {
        switch (m->memory) {
        case MEMORY_V2:
                return "memory.current";
        case MEMORY_V1:
                return "memory.usage_in_bytes";
        default:
                return "pss";
        }
}

static int names_compare(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The live workers' leaf names, sorted, so that a gc over thousands of leaves costs N log N, not N². */
static int manager_leaf_names(const CgroupManager *m, const char ***ret, size_t *ret_n) {
        const char **names;
        size_t n = 0;

        for (const CgroupWorker *w = m->workers; w; w = w->next)
                n++;
        names = calloc(MAX(n, 1U), sizeof(char *));
        if (!names)
                return -ENOMEM;
        n = 0;
        for (const CgroupWorker *w = m->workers; w; w = w->next)
                names[n++] = w->name;
        qsort(names, n, sizeof(char *), names_compare);
        *ret = names;
        *ret_n = n;
        return 0;
}

static int gc_base(int base_fd, const char **owned, size_t n_owned) {
        _cleanup_(closedirp) DIR *d = NULL;
        int fd, left = 0;

        if (base_fd < 0)
                return 0;
        fd = openat(base_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        for (struct dirent *de; (de = readdir(d));) {
                const char *name = de->d_name;

                if (!startswith(name, "worker-") || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
                        continue;
                if (bsearch(&name, owned, n_owned, sizeof(char *), names_compare))
                        continue;
                if (unlinkat(base_fd, name, AT_REMOVEDIR) >= 0 || errno == ENOENT)
                        continue;
                /* EBUSY: processes are still in it (a real cgroup); ENOTEMPTY: a fake tree's files. */
                log_debug_errno(errno, "Cannot remove cgroup leaf '%s' yet: %m", name);
                left++;
        }
        return left;
}

int cgroup_manager_gc(CgroupManager *m) {
        _cleanup_free_ const char **owned = NULL;
        size_t n_owned;
        int a, b;

        /* Nothing left behind since the last pass: no need to list thousands of leaves every tick. */
        if (!m->gc_pending)
                return 0;
        a = manager_leaf_names(m, &owned, &n_owned);
        if (a < 0)
                return a;
        a = gc_base(m->v2_fd, owned, n_owned);
        if (a < 0)
                return a;
        b = gc_base(m->v1_fd, owned, n_owned);
        if (b < 0)
                return b;
        m->gc_pending = a + b > 0;
        return a + b;
}

/* ---- workers ---- */

/* Makes (or reuses an empty) leaf name below base_fd and opens it and its cgroup.procs. */
/* Opens (and makes) a worker's leaf; with adopt, the leaf of a live worker of ours, made by the image
 * before an upgrade: it must exist, is populated, and needs no cgroup.procs fd (ret_procs untouched). */
static int leaf_open(int base_fd, const char *name, bool adopt, int *ret_dir, int *ret_procs) {
        _cleanup_close_ int dir = -EBADF, procs = -EBADF;
        _cleanup_free_ pid_t *stale = NULL;
        bool created = false;
        int r = 0;

        if (adopt) {
                dir = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dir < 0)
                        return -errno;
                *ret_dir = TAKE_FD(dir);
                return 0;
        }
        if (mkdirat(base_fd, name, 0755) >= 0)
                created = true;
        else if (errno != EEXIST)
                return -errno;

        dir = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                r = -errno;
        /* A leftover of an earlier instance may still hold its processes: never count them as ours. */
        if (r >= 0 && !created && dir_read_pids(dir, "cgroup.procs", &stale) > 0)
                r = -EBUSY;
        if (r >= 0) {
                procs = openat(dir, "cgroup.procs", O_WRONLY | O_CLOEXEC | O_NOCTTY);
                if (procs < 0)
                        r = -errno;
        }
        if (r < 0) {
                if (created)
                        (void) unlinkat(base_fd, name, AT_REMOVEDIR);
                return r;
        }
        *ret_dir = TAKE_FD(dir);
        *ret_procs = TAKE_FD(procs);
        return 0;
}

static int cgroup_worker_open(CgroupManager *m, unsigned slot, uint64_t worker_id, bool adopt, CgroupWorker **ret) {
        _cleanup_(cgroup_worker_freep) CgroupWorker *w = NULL;
        size_t n = 0;
        int r;

        w = calloc(1, sizeof(CgroupWorker));
        if (!w)
                return -ENOMEM;
        *w = (CgroupWorker) {
                .v2_fd = -EBADF,
                .v1_fd = -EBADF,
                .procs_fds = { -EBADF, -EBADF },
                .events_fd = -EBADF,
        };
        for (size_t i = 0; i < _CGROUP_FILE_MAX; i++)
                w->files[i] = -EBADF;
        w->name = strdup_printf("worker-%u-%" PRIu64, slot, worker_id);
        if (!w->name)
                return -ENOMEM;

        /* Linked before the leaves exist so that a failure below removes what was made, via free. */
        w->manager = m;
        w->next = m->workers;
        if (m->workers)
                m->workers->prev = w;
        m->workers = w;

        if (m->v2_fd >= 0) {
                r = leaf_open(m->v2_fd, w->name, adopt, &w->v2_fd, &w->procs_fds[n]);
                if (r < 0)
                        return r;
                n++;
        }
        if (m->v1_fd >= 0) {
                r = leaf_open(m->v1_fd, w->name, adopt, &w->v1_fd, &w->procs_fds[n]);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(w);
        return 0;
}

int cgroup_worker_new(CgroupManager *m, unsigned slot, uint64_t worker_id, CgroupWorker **ret) {
        return cgroup_worker_open(m, slot, worker_id, false, ret);
}

int cgroup_worker_adopt(CgroupManager *m, unsigned slot, uint64_t worker_id, pid_t pid, CgroupWorker **ret) {
        CgroupWorker *w;
        int r;

        r = cgroup_worker_open(m, slot, worker_id, true, &w);
        if (r < 0)
                return r;
        (void) cgroup_worker_attach_pid(w, pid);
        *ret = w;
        return 0;
}

CgroupWorker *cgroup_worker_free(CgroupWorker *w) {
        if (!w)
                return NULL;

        if (w->manager) {
                if (w->prev)
                        w->prev->next = w->next;
                else
                        w->manager->workers = w->next;
                if (w->next)
                        w->next->prev = w->prev;
        }
        cgroup_worker_close_procs_fds(w);
        cgroup_worker_close_files(w);
        safe_close(w->events_fd);

        /* A populated leaf cannot be removed (EBUSY); cgroup_manager_gc() finds it by its name later. */
        if (w->v2_fd >= 0 && unlinkat(w->manager->v2_fd, w->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
                log_debug_errno(errno, "Failed to remove cgroup2 leaf '%s', left for later: %m", w->name);
                w->manager->gc_pending = true;
        }
        if (w->v1_fd >= 0 && unlinkat(w->manager->v1_fd, w->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
                log_debug_errno(errno, "Failed to remove v1 memory leaf '%s', left for later: %m", w->name);
                w->manager->gc_pending = true;
        }
        safe_close(w->v2_fd);
        safe_close(w->v1_fd);
        free(w->name);
        free(w);
        return NULL;
}

const char *cgroup_worker_name(const CgroupWorker *w) {
        return w->name;
}

size_t cgroup_worker_procs_fds(const CgroupWorker *w, int ret_fds[static CGROUP_PROCS_FDS_MAX]) {
        size_t n = 0;

        for (size_t i = 0; i < CGROUP_PROCS_FDS_MAX; i++) {
                ret_fds[i] = -EBADF;
                if (w->procs_fds[i] >= 0)
                        ret_fds[n++] = w->procs_fds[i];
        }
        return n;
}

void cgroup_worker_close_procs_fds(CgroupWorker *w) {
        for (size_t i = 0; i < CGROUP_PROCS_FDS_MAX; i++)
                w->procs_fds[i] = safe_close(w->procs_fds[i]);
}

int cgroup_worker_v2_dirfd(const CgroupWorker *w) {
        return w->v2_fd >= 0 ? w->v2_fd : -EOPNOTSUPP;
}

int cgroup_worker_attach_pid(CgroupWorker *w, pid_t pid) {
        if (pid <= 0)
                return -EINVAL;
        w->pid = pid;
        return 0;
}

void cgroup_manager_set_pss_exact_from(CgroupManager *m, uint64_t bytes) {
        if (m)
                m->pss_exact_from = bytes;
}

void cgroup_manager_set_keep_below(CgroupManager *m, uint64_t fd) {
        m->keep_below = fd;
}

CgroupWorker *cgroup_manager_find_pid(CgroupManager *m, pid_t pid) {
        _cleanup_free_ char *content = NULL, *unified = NULL, *memory = NULL;
        const char *leaf;
        char path[64];

        if (!m || m->backend == CGROUP_BACKEND_PROC || pid <= 0)
                return NULL;
        (void) snprintf(path, sizeof(path), "%d/cgroup", (int) pid);
        if (dir_read_file(m->proc_fd, path, &content) < 0 || cgroup_parse_self(content, &unified, &memory) < 0 ||
            !unified)
                return NULL;
        leaf = strrchr(unified, '/');
        leaf = leaf ? leaf + 1 : unified;
        for (CgroupWorker *w = m->workers; w; w = w->next) {
                _cleanup_free_ pid_t *pids = NULL;
                int n;

                if (!w->name || strcmp(w->name, leaf) != 0)
                        continue;
                n = dir_read_pids(worker_procs_dir(w), "cgroup.procs", &pids);
                return n > 0 && pid_set_contains(pids, (size_t) n, pid) ? w : NULL;
        }
        return NULL;
}

int cgroup_manager_get_ppid(CgroupManager *m, pid_t pid, pid_t *ret) {
        if (!m)
                return -ENODEV;
        return proc_pid_get_ppid(m->proc_fd, pid, ret);
}

static void format_limit(char buf[static 32], uint64_t v, bool v1) {
        if (v == UINT64_MAX)
                strcpy(buf, v1 ? "-1" : "max");
        else
                (void) snprintf(buf, 32, "%" PRIu64, v);
}

int cgroup_worker_set_memory_limits(CgroupWorker *w, uint64_t high, uint64_t max) {
        char buf[32];
        int r;

        switch (w->manager->memory) {
        case MEMORY_V2:
                format_limit(buf, max, false);
                r = dir_write_file(w->v2_fd, "memory.max", buf);
                if (r < 0)
                        return r;
                format_limit(buf, high, false);
                return dir_write_file(w->v2_fd, "memory.high", buf);
        case MEMORY_V1:
                /* v1's soft limit only matters under global pressure: not a stand-in for memory.high. */
                format_limit(buf, max, true);
                r = dir_write_file(w->v1_fd, "memory.limit_in_bytes", buf);
                if (r < 0)
                        return r;
                return high != UINT64_MAX;
        default:
                return -EOPNOTSUPP;
        }
}

/* The worker's trees, its own (with_root) and those it left: see cgroup_worker_kill(). */
static int kill_trees(CgroupWorker *w, bool with_root) {
        int r;

        if (w->manager->backend == CGROUP_BACKEND_PROC) {
                _cleanup_free_ pid_t *roots = NULL;
                int n = cgroup_worker_proc_roots(w, /* fresh= */ true, &roots);
                size_t skip = with_root ? 0 : 1; /* the worker is the first root */

                if (n < 0)
                        return n;
                return proc_trees_kill(w->manager->proc_fd, roots + skip, (size_t) n - skip);
        }

        if (w->v2_fd >= 0) {
                r = cgroup_worker_populated(w);
                if (r == 0)
                        return 0;
                /* cgroup.kill (5.14) reaches every descendant at once, even those forking right now. */
                r = dir_write_file(w->v2_fd, "cgroup.kill", "1");
                if (r >= 0)
                        return 1;
                if (r != -ENOENT)
                        return r;
        }
        return kill_procs_of(worker_procs_dir(w));
}

int cgroup_worker_kill(CgroupWorker *w) {
        return kill_trees(w, /* with_root= */ true);
}

int cgroup_worker_kill_left(CgroupWorker *w) {
        return kill_trees(w, /* with_root= */ false);
}

bool cgroup_worker_kill_is_slow(const CgroupWorker *w) {
        return w->manager->backend == CGROUP_BACKEND_PROC;
}

int cgroup_worker_populated(CgroupWorker *w) {
        _cleanup_free_ pid_t *pids = NULL;
        uint64_t v;
        int r;

        if (w->manager->backend == CGROUP_BACKEND_PROC)
                return proc_pid_running(w->manager->proc_fd, w->pid);

        if (w->v2_fd >= 0) {
                r = dir_read_keyed(w->v2_fd, "cgroup.events", "populated", &v);
                if (r >= 0)
                        return v > 0;
                if (r != -ENOENT)
                        return r;
        }
        r = dir_read_pids(worker_procs_dir(w), "cgroup.procs", &pids);
        if (r < 0)
                return leaf_missing(worker_procs_dir(w), r);
        return r > 0;
}

int cgroup_worker_events_fd(CgroupWorker *w) {
        if (w->manager->memory != MEMORY_V2)
                return -EOPNOTSUPP;
        if (w->events_fd < 0) {
                w->events_fd = openat(w->v2_fd, "memory.events", O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
                if (w->events_fd < 0)
                        return errno == ENOENT ? -EOPNOTSUPP : -errno;
        }
        return w->events_fd;
}
