/* SPDX-License-Identifier: MIT */
/* The cgroup manager's and leaves' insides, shared by cgroup.c (probe, leaves, limits, kill) and
 * cgroup-sample.c (reading a leaf's accounting). Nothing else includes this. */
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include "cgroup-io.h"
#include "cgroup-proc.h"
#include "cgroup.h"

typedef enum MemorySource {
        MEMORY_V2,  /* memory.current & co. in the cgroup2 leaf */
        MEMORY_V1,  /* memory.usage_in_bytes & co. in the v1 memory leaf */
        MEMORY_PSS, /* summed PSS of the leaf's processes, or of the process tree */
} MemorySource;

/* The files every periodic sample reads, kept open per worker (see cgroup-sample.c). */
typedef enum CgroupFile {
        CGROUP_FILE_MEMORY_CURRENT, /* v2 memory.current, v1 memory.usage_in_bytes */
        CGROUP_FILE_MEMORY_EVENTS,  /* v2 memory.events, when no events watch is open to read instead */
        CGROUP_FILE_OOM_CONTROL,    /* v1 memory.oom_control */
        CGROUP_FILE_CPU_STAT,       /* cgroup2 cpu.stat */
        CGROUP_FILE_PROC_STAT,      /* proc backend: the worker's /proc/PID/stat */
        CGROUP_FILE_PROC_CHILDREN,  /* proc backend: its main thread's children */
        _CGROUP_FILE_MAX,
} CgroupFile;

struct CgroupManager {
        CgroupBackend backend;
        MemorySource memory;
        int proc_fd;
        int v2_fd; /* where cgroup2 worker leaves go, or -EBADF */
        int v1_fd; /* where v1 memory worker leaves go, or -EBADF */
        int v2_parent_fd, v1_parent_fd; /* hybrid: the cgroups holding our instance directories */
        char instance[48];              /* hybrid: "corral-<pid>" (in a nested pid namespace
                                         * "corral-<pid>-<namespace inode>"), our directory in each, or "" */
        uint64_t hz;
        pid_t self; /* corral: whose children the proc backend looks through for orphans */
        ProcChild *orphans; /* proc backend: corral's children that are no worker, by session (cache) */
        size_t n_orphans;
        usec_t orphans_usec; /* CLOCK_MONOTONIC of the last look, 0: never */
        CgroupWorker *workers;
        bool gc_pending; /* a leaf could not be removed yet: cgroup_manager_gc() has work */
        uint64_t keep_below; /* sampling files are kept open only on fds below this */
        uint64_t page_size;
        uint64_t rss_lag_pages; /* how far below the truth /proc/PID/stat's resident set may read, per CPU counters */
        uint64_t pss_exact_from; /* bytes: a tree resident at or above this has its PSS read afresh; 0: none */
};

struct CgroupWorker {
        CgroupManager *manager;
        CgroupWorker *prev, *next;
        char *name;
        int v2_fd, v1_fd;
        int procs_fds[CGROUP_PROCS_FDS_MAX];
        int events_fd;
        int files[_CGROUP_FILE_MAX]; /* kept open for sampling, or -EBADF (not yet, or not kept) */
        pid_t pid;
        /* PSS sources: the last PSS read (its memory figures and flags), and the tree as it was then. */
        CgroupSample pss;
        uint64_t pss_rss_pages;
        size_t pss_pids;
        usec_t pss_usec; /* CLOCK_MONOTONIC; 0: never read */
};

/* The directory whose cgroup.procs lists the worker's processes. */
static inline int worker_procs_dir(const CgroupWorker *w) {
        return w->v2_fd >= 0 ? w->v2_fd : w->v1_fd;
}

/* A required file is missing: either the leaf itself vanished (the worker is gone, 0) or the file is just
 * not there (a controller is missing, -ENOENT). */
static inline int leaf_missing(int dir_fd, int r) {
        if (r == -ENOENT && faccessat(dir_fd, "cgroup.procs", F_OK, 0) < 0 && errno_is_gone(-errno))
                return 0;
        return r;
}

/* Proc backend: the roots of the worker's processes, its pid and then the orphans it left in its session
 * (from the manager's list of them, looked at again when older than half a second, or now if fresh: then
 * a failed look is an error, not the last list). Returns their number (at least 1) and the array in *ret
 * (owned), or -errno. */
int cgroup_worker_proc_roots(CgroupWorker *w, bool fresh, pid_t **ret);

/* Closes the sampling files kept open (cgroup-sample.c); the worker's other fds are cgroup.c's. */
void cgroup_worker_close_files(CgroupWorker *w);
