/* SPDX-License-Identifier: MIT */
/* /proc accounting of a process tree, for the proc backend and for cgroups without the memory controller.
 * proc_fd is an open directory fd on /proc (or a fake of it). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"

/* The trees rooted at roots (a worker, then the orphans it left: see proc_children_sessions()), following
 * /proc/PID/task/TID/children; the roots that run come first, in their order. Returns the number of pids
 * and the array in *ret (owned by the caller), or 0 and NULL when no root runs (a zombie's children, if
 * any, already belong to someone else). Processes that exit during the walk are skipped. */
int proc_trees_collect(int proc_fd, const pid_t *roots, size_t n_roots, pid_t **ret);

/* A child of corral's that is not a worker: an orphan re-parented to corral (the child subreaper, or PID 1),
 * with the session it kept from the worker that started its tree. */
typedef struct ProcChild {
        pid_t pid;
        pid_t session;
} ProcChild;

/* The running children of parent whose pids are not in skip (sorted: the workers), with their sessions,
 * sorted by session. Returns their number and the array in *ret (owned; NULL when none), or -errno. */
int proc_children_sessions(int proc_fd, pid_t parent, const pid_t *skip, size_t n_skip, ProcChild **ret);

/* Adds up PSS (smaps_rollup) and, if want_cpu, utime+stime+cutime+cstime (stat; hz ticks per second) of
 * pids into s, setting its flags. Pids that are gone are skipped, so are descendants (not pids[0]) that
 * refuse us (EACCES). Returns 0 or -errno. */
int proc_tree_sum(int proc_fd, uint64_t hz, const pid_t *pids, size_t n, bool want_cpu, CgroupSample *s);

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
