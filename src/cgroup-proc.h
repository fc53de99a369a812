/* SPDX-License-Identifier: MIT */
/* /proc accounting of a process tree, for the proc backend and for cgroups without the memory controller.
 * proc_fd is an open directory fd on /proc (or a fake of it). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"

/* The tree rooted at root, root first, following /proc/PID/task/TID/children. Returns the number of pids
 * and the array in *ret (owned by the caller), or 0 and NULL when root is gone or a zombie (its children,
 * if any, already belong to someone else). Processes that exit during the walk are skipped. */
int proc_tree_collect(int proc_fd, pid_t root, pid_t **ret);

/* Adds up PSS (smaps_rollup) and, if want_cpu, utime+stime+cutime+cstime (stat; hz ticks per second) of
 * pids into s, setting its flags. Pids that are gone are skipped, so are descendants (not pids[0]) that
 * refuse us (EACCES). Returns 0 or -errno. */
int proc_tree_sum(int proc_fd, uint64_t hz, const pid_t *pids, size_t n, bool want_cpu, CgroupSample *s);

/* SIGSTOPs the tree until it stops growing (bounded), then SIGKILLs it. A descendant that was re-parented
 * away before the walk (its parent died first) is out of reach: corral is no subreaper, such orphans go to
 * init; what stayed in the worker's session is still killed with its process group (worker.c). Returns the
 * number of processes killed (0: nothing left), or -errno. */
int proc_tree_kill(int proc_fd, pid_t root);

/* 1 when pid exists and is not a zombie, 0 when gone, or -errno. */
int proc_pid_running(int proc_fd, pid_t pid);

/* The parent of pid, from <proc>/<pid>/stat (a zombie still has one; 0 for a process whose parent is
 * outside its pid namespace). Returns 0, -ESRCH when pid is gone, or -errno. */
int proc_pid_get_ppid(int proc_fd, pid_t pid, pid_t *ret);
