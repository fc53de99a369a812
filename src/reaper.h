/* SPDX-License-Identifier: MIT */
/* Orphans: corral is their reaper as PID 1 (a container's entrypoint) and, everywhere else, as a child
 * subreaper (PR_SET_CHILD_SUBREAPER), so that what a worker's children leave behind when they double-fork
 * comes to corral instead of to init, and is reaped on the next SIGCHLD. Workers are left to their child
 * sources: reaping one here would take its exit status from it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util.h"

/* Sorts pids for a ReaperKeepFunc's list. */
void reaper_sort(pid_t *pids, size_t n);

/* The children reaper_reap() must leave alone (the workers and any other child with a child source), sorted
 * (reaper_sort()): their number, with the array in *ret (the caller's to free), or -errno. */
typedef int (*ReaperKeepFunc)(void *userdata, pid_t **ret);

/* Reaps every child of corral that has exited and is not one that keep_func lists. The list is asked for only
 * once a waitable child is seen: a SIGCHLD whose zombie a child source has reaped already (a worker's exit,
 * the common case) costs one waitid(), however large the pool. Returns 0 and how many were reaped, or
 * -errno. */
int reaper_reap(ReaperKeepFunc keep_func, void *userdata, unsigned *ret_reaped);

/* Makes corral the reaper of its descendants' orphans: 1, or 0 as PID 1 (it is theirs already), or
 * -errno. */
int reaper_become_subreaper(void);
