/* SPDX-License-Identifier: MIT */
/* Per-worker accounting and control: a cgroup leaf per worker (delegated cgroup v2, or the hybrid layout
 * of cgroup2 plus the v1 memory controller), or /proc accounting of the worker's process tree where no
 * cgroup is ours to manage. Helpers only: nothing here logs above debug. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

typedef enum CgroupBackend {
        /* Delegated cgroup v2 (Delegate=yes): corral moves itself into supervisor/, enables the available
         * controllers and gives each worker a leaf beside it. */
        CGROUP_BACKEND_V2,
        /* cgroup2 (the "unified" mount) for cpu.stat, cgroup.kill and cgroup.events, plus the v1 memory
         * controller for memory: one leaf per worker in each, under corral's own cgroups. */
        CGROUP_BACKEND_HYBRID,
        /* No cgroup of ours: PSS from smaps_rollup and utime+stime summed over the worker's process tree. */
        CGROUP_BACKEND_PROC,
        _CGROUP_BACKEND_MAX,
        _CGROUP_BACKEND_INVALID = -EINVAL,
} CgroupBackend;

/* "cgroup-v2", "hybrid", "proc". */
const char *cgroup_backend_to_string(CgroupBackend b);

typedef struct CgroupManager CgroupManager;
typedef struct CgroupWorker CgroupWorker;

/* Probes the backend once, at startup. cgroupfs_root is "/sys/fs/cgroup" and proc_root "/proc"; tests pass
 * a fake tree (every file is read and written relative to directory fds of these two). A NULL cgroupfs_root
 * turns cgroups off: the proc backend. self is the pid whose cgroups are read from <proc_root>/<self>/cgroup
 * and which the v2 backend moves into supervisor/ (0 means getpid()).
 *
 * Never fails for lack of cgroups: it falls back to CGROUP_BACKEND_PROC. Returns 0, the manager in *ret
 * (owned by the caller) and in *ret_reason (owned by the caller, may be NULL) one line saying which backend
 * was chosen and why, for the caller to log once. Returns -ENOMEM, or the error opening proc_root. */
int cgroup_manager_new(
                const char *cgroupfs_root,
                const char *proc_root,
                pid_t self,
                CgroupManager **ret,
                char **ret_reason);

/* Frees the manager; workers still alive are freed first (their leaves removed where possible). Accepts and
 * returns NULL. Leaves that were still populated are left behind. */
CgroupManager *cgroup_manager_free(CgroupManager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(CgroupManager *, cgroup_manager_free);

CgroupBackend cgroup_manager_backend(const CgroupManager *m);

/* File descriptors each worker's process and leaf keep open while it lives: its pidfd, the status pipe
 * until exec, and the leaf's directory and events fds. For the check against RLIMIT_NOFILE. */
unsigned cgroup_manager_fds_per_worker(const CgroupManager *m);

/* Where memory_current comes from: "memory.current", "memory.usage_in_bytes" or "pss" (the v2 backend
 * without the memory controller sums the PSS of the processes in the leaf). */
const char *cgroup_manager_memory_source(const CgroupManager *m);

/* Retries the removal of worker leaves that were still populated when their worker was freed, and removes
 * empty "worker-*" leaves that no live worker owns (left over by an earlier instance). Lists the base
 * directories only while something is left to remove (after the manager's start, or a leaf that could not
 * be removed when its worker was freed): otherwise it costs nothing. Returns how many leaves remain to be
 * removed (>= 0), or -errno when a base directory could not be listed. */
int cgroup_manager_gc(CgroupManager *m);

/* Sampling files are kept open per worker only on fds below this (default 0: none are kept). The manager
 * sets it to what its pool may need of the fd limit (generation_fds_needed()) below the limit, so that
 * kept files never take the room promised to Count=, MaxSurge= and corral's own connections. */
void cgroup_manager_set_keep_below(CgroupManager *m, uint64_t fd);

/* Where memory is PSS (the proc backend, or cgroups without a memory controller), reading it makes the
 * kernel walk every page table of every process: the dearest part of a sample by far. A sample reads it
 * afresh when the tree's resident set (from /proc/PID/stat, cheap) is within 1/16 of bytes or above, or
 * within what the kernel's per-CPU counters may read low (0: never for this reason), its processes or
 * resident set changed (by more than 1/16), it is older than CGROUP_PSS_MAX_AGE_USEC, or a report asks for
 * anon/file; otherwise the last figures stand, capped by the resident set and that margin (PSS never
 * exceeds the resident set). With bytes the memory limit of a policy, the policy's verdict is
 * the same as if PSS were read every time: below the limit in resident set is below it in PSS. */
void cgroup_manager_set_pss_exact_from(CgroupManager *m, uint64_t bytes);
#define CGROUP_PSS_MAX_AGE_USEC (10 * USEC_PER_SEC)

/* The worker whose leaf holds pid: found by the name of pid's cgroup2 cgroup (from <proc>/<pid>/cgroup)
 * and confirmed in that leaf's cgroup.procs, since another instance names its leaves alike. NULL when
 * none does, or with the proc backend. A process in a cgroup below a worker's leaf is not found. */
CgroupWorker *cgroup_manager_find_pid(CgroupManager *m, pid_t pid);

/* The parent of pid, read from the manager's /proc (proc_pid_get_ppid()): the walk up from a notification's
 * sender to a worker. Returns 0, -ESRCH when pid is gone, -ENODEV without a manager, or -errno. */
int cgroup_manager_get_ppid(CgroupManager *m, pid_t pid, pid_t *ret);

/* Creates the leaf (leaves: cgroup2 and v1 memory for the hybrid backend) "worker-<slot>-<worker_id>".
 * The id is in the name because two workers of one slot coexist during a start-first replacement; it must
 * be unique per slot for the manager's life. An existing empty leaf of that name (a leftover) is reused, a
 * populated one refused with -EBUSY. The proc backend makes no leaf: call cgroup_worker_attach_pid().
 * Returns 0 and the worker (owned by the caller; free it before the manager), or -errno. */
int cgroup_worker_new(CgroupManager *m, unsigned slot, uint64_t worker_id, CgroupWorker **ret);

/* The leaf of a live worker started before an upgrade (same slot and id, so the same name), for the next
 * image: it must exist; it is not emptied or checked. The proc backend only records pid. Returns 0 and the
 * worker (owned by the caller), or -errno (-ENOENT: no such leaf). */
int cgroup_worker_adopt(CgroupManager *m, unsigned slot, uint64_t worker_id, pid_t pid, CgroupWorker **ret);

/* Removes the leaves. One still populated (the worker's processes have not all exited) stays and is
 * retried by cgroup_manager_gc(). Closes every fd the worker owns, including the events fd: disable any
 * event source on it first. Accepts and returns NULL. */
CgroupWorker *cgroup_worker_free(CgroupWorker *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(CgroupWorker *, cgroup_worker_free);

/* "worker-<slot>-<id>", owned by the worker. */
const char *cgroup_worker_name(const CgroupWorker *w);

#define CGROUP_PROCS_FDS_MAX 2
/* The open (write-only, close-on-exec) cgroup.procs fds of the worker's leaves: cgroup2 first, then the
 * v1 memory leaf. The child writes "0" to each between fork and exec, so everything it allocates is
 * charged to the worker (memory is charged where a process was when it allocated). Fills ret_fds (unused
 * entries -EBADF) and returns how many there are: 0 for the proc backend, or after
 * cgroup_worker_close_procs_fds(). The fds stay owned by the worker. */
size_t cgroup_worker_procs_fds(const CgroupWorker *w, int ret_fds[static CGROUP_PROCS_FDS_MAX]);

/* Closes the procs fds once the child is forked: with 1024 workers the fds add up. */
void cgroup_worker_close_procs_fds(CgroupWorker *w);

/* The cgroup2 leaf's directory fd for clone3(CLONE_INTO_CGROUP), owned by the worker, or -EOPNOTSUPP. */
int cgroup_worker_v2_dirfd(const CgroupWorker *w);

/* Records the worker's main pid (the root of the tree the proc backend accounts and kills). Harmless for
 * the cgroup backends. Returns 0 or -EINVAL. */
int cgroup_worker_attach_pid(CgroupWorker *w, pid_t pid);

typedef enum CgroupSampleFlags {
        CGROUP_SAMPLE_MEMORY_CURRENT = 1u << 0,
        CGROUP_SAMPLE_MEMORY_ANON = 1u << 1,
        CGROUP_SAMPLE_MEMORY_FILE = 1u << 2,
        CGROUP_SAMPLE_EVENTS_HIGH = 1u << 3,
        CGROUP_SAMPLE_EVENTS_MAX = 1u << 4,
        CGROUP_SAMPLE_EVENTS_OOM_KILL = 1u << 5,
        CGROUP_SAMPLE_CPU_USAGE = 1u << 6,
        CGROUP_SAMPLE_MEMORY_PRESSURE = 1u << 7,
} CgroupSampleFlags;

typedef struct CgroupSample {
        unsigned flags;                      /* CgroupSampleFlags: which fields below are valid */
        uint64_t memory_current;             /* bytes; see cgroup_manager_memory_source() */
        uint64_t memory_anon;                /* bytes */
        uint64_t memory_file;                /* bytes (page cache; proc backend: file-backed PSS) */
        uint64_t events_high;                /* v2 memory.events high */
        uint64_t events_max;                 /* v2 memory.events max, v1 memory.failcnt */
        uint64_t events_oom_kill;            /* v2 memory.events oom_kill, v1 memory.oom_control oom_kill */
        usec_t cpu_usage_usec;               /* user+system since the worker started; proc backend: may
                                              * drop when a descendant leaves the tree, clamp deltas at 0 */
        unsigned memory_pressure_some_avg10; /* hundredths of a percent, 0..10000 */
} CgroupSample;

/* Reads the worker's counters: memory (current), its events and CPU always; the optional parts only when
 * want (CgroupSampleFlags) asks for them: CGROUP_SAMPLE_EVENTS_MAX on cgroup v1 (memory.failcnt; v2 has it
 * in memory.events, read anyway), CGROUP_SAMPLE_MEMORY_ANON/_FILE (memory.stat, which makes the
 * kernel flush per-CPU statistics: by far the dearest file at a thousand workers a second) and
 * CGROUP_SAMPLE_MEMORY_PRESSURE. Returns 1 with *ret filled in (flags say which fields are valid), 0 when
 * the worker is gone (its leaf vanished, or for the proc backend its main pid exited; *ret is zeroed), or
 * -errno when a file that should be there cannot be read (-ESRCH: proc backend and no pid attached). Files a
 * backend may lack (pressure, events) just leave their flag clear. An empty leaf still samples (1). The
 * always-read files stay open in the worker after the first sample (on fds below the manager's
 * cgroup_manager_set_keep_below()) and are closed with it. */
int cgroup_worker_sample(CgroupWorker *w, unsigned want, CgroupSample *ret);

/* Sets memory.high and memory.max (v2; UINT64_MAX means "max") or memory.limit_in_bytes := max (v1).
 * Returns 0, 1 when high could not be applied (v1 has no equivalent; max was), -EOPNOTSUPP for the proc
 * backend or the v2 backend without the memory controller, or -errno. */
int cgroup_worker_set_memory_limits(CgroupWorker *w, uint64_t high, uint64_t max);

/* SIGKILLs the worker and all its descendants: cgroup.kill where the kernel has it (5.14), else SIGKILL to
 * every pid in cgroup.procs, re-read until no new pid shows up (bounded); the proc backend SIGSTOPs the tree
 * until it stops growing, then SIGKILLs it. Processes die asynchronously: the caller sees the main pid's
 * exit on its pidfd. Returns >0 when something was signalled, 0 when nothing was left to kill (a
 * process gone between read and kill is not an error), or -errno once every process it could reach has
 * been signalled anyway. */
int cgroup_worker_kill(CgroupWorker *w);

/* cgroup_worker_kill() once the worker's own process has been reaped: what it left behind (its leaf's
 * processes, or the orphans of its session), never its pid, which may be another process's by now. */
int cgroup_worker_kill_left(CgroupWorker *w);

/* Whether killing what an exited worker left is worth putting off until its replacement may have started:
 * the proc backend's look through all of corral's children for the orphans of the worker's session costs
 * about 5 ms at 4,096 workers (docs/performance.md, section 15); a leaf's cgroup.kill is one write. */
bool cgroup_worker_kill_is_slow(const CgroupWorker *w);

/* Whether any process is left: cgroup.events "populated" (cgroup2), cgroup.procs non-empty (v1), the main
 * pid alive and not a zombie (proc). Returns 1, 0, or -errno. */
int cgroup_worker_populated(CgroupWorker *w);

/* An fd on the v2 leaf's memory.events for sd_event_add_io(..., EPOLLPRI, ...): kernfs signals a change
 * with POLLPRI (and POLLERR); re-read with cgroup_worker_sample() then. Owned by the worker, opened on the
 * first call. Returns the fd or -EOPNOTSUPP (no cgroup2 memory controller), or -errno. */
int cgroup_worker_events_fd(CgroupWorker *w);
