/* SPDX-License-Identifier: MIT */
/* /proc accounting of a process tree, for the proc backend and for cgroups without the memory controller.
 * proc_fd is an open directory fd on /proc (or a fake of it). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup-parse.h"
#include "cgroup.h"

/* What /proc/PID/stat says of pids, added up: CPU time (utime+stime+cutime+cstime, in clock ticks), the
 * resident set (pages) and the threads. Cheap: counters, no walk of the address space. */
typedef struct ProcTreeStat {
        uint64_t ticks;
        uint64_t rss_pages;
        uint64_t threads;
} ProcTreeStat;

/* What a caller read of roots[0] already (through fds it keeps open), for proc_trees_collect() to use
 * instead of reading it again: its stat (it runs), and its children when it has one thread. */
struct ProcRootRead {
        ProcStat stat;
        const pid_t *children; /* borrowed */
        int n_children;        /* < 0: not read */
};

/* The trees rooted at roots (a worker, then the orphans it left: see proc_children_sessions()), following
 * /proc/PID/task/TID/children; the roots that run come first, in their order. Returns the number of pids
 * and the array in *ret (owned by the caller), or 0 and NULL when no root runs (a zombie's children, if
 * any, already belong to someone else). Processes that exit during the walk are skipped; a zombie below a
 * root is kept (its CPU time counts until it is reaped).
 * With ret_stat, the stat of the pids returned, added up (read on the way: one read per process). first, if
 * not NULL, is what the caller read of roots[0], which runs. */
typedef struct ProcRootRead ProcRootRead;
int proc_trees_collect(int proc_fd, const pid_t *roots, size_t n_roots, const ProcRootRead *first, pid_t **ret,
                       ProcTreeStat *ret_stat);

/* A child of corral's that is not a worker: an orphan re-parented to corral (the child subreaper, or PID 1),
 * with the session it kept from the worker that started its tree. */
typedef struct ProcChild {
        pid_t pid;
        pid_t session;
} ProcChild;

/* The running children of parent whose pids are not in skip (sorted: the workers), with their sessions,
 * sorted by session. Returns their number and the array in *ret (owned; NULL when none), or -errno. */
int proc_children_sessions(int proc_fd, pid_t parent, const pid_t *skip, size_t n_skip, ProcChild **ret);

/* Adds up the stat of pids into *ret; pids that are gone are skipped. Returns 0 or -errno. */
int proc_tree_stat(int proc_fd, const pid_t *pids, size_t n, ProcTreeStat *ret);

/* Adds up the PSS (smaps_rollup: the kernel walks every page table of the process, the costly read) of
 * pids into s, setting its memory flags. Pids that are gone are skipped, so are descendants (not pids[0])
 * that refuse us (EACCES). Returns 0 or -errno. */
int proc_tree_pss(int proc_fd, const pid_t *pids, size_t n, CgroupSample *s);

/* SIGSTOPs the trees until they stop growing (bounded), then SIGKILLs them. The roots are the worker and the
 * orphans it left in its session (re-parented to corral, the child subreaper): an orphan that left the
 * session (setsid()) cannot be told apart and is out of reach (a cgroup backend's leaf keeps it). Returns
 * the number of processes killed (0: nothing left), or -errno. */
int proc_trees_kill(int proc_fd, const pid_t *roots, size_t n_roots);

/* 1 when pid exists and is not a zombie, 0 when gone, or -errno. */
int proc_pid_running(int proc_fd, pid_t pid);

/* The parent of pid, from <proc>/<pid>/stat (a zombie still has one; 0 for a process whose parent is
 * outside its pid namespace). Returns 0, -ESRCH when pid is gone, or -errno. */
int proc_pid_get_ppid(int proc_fd, pid_t pid, pid_t *ret);
