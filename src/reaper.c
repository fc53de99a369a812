/* SPDX-License-Identifier: MIT */
/* Reaping the children corral did not start: orphans reparented to it as PID 1 or as a child subreaper. A
 * worker is never waited for here: its exit belongs to its pidfd's child source. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reaper.h"

/* /proc/self/task/TID/children of a pool at its largest, orphans included: a pid is at most 8 bytes. */
#define CHILDREN_MAX (8U * 1024 * 1024)

void reaper_sort(pid_t *pids, size_t n) {
        qsort(pids, n, sizeof(pid_t), pid_compare);
}

static bool kept(pid_t pid, const pid_t *keep, size_t n_keep) {
        return n_keep > 0 && bsearch(&pid, keep, n_keep, sizeof(pid_t), pid_compare);
}

/* Reaps pid if it is a zombie now. Returns 1 if it was reaped, 0 if it runs, -errno. */
static int reap_one(pid_t pid) {
        siginfo_t si = {};

        if (waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG) < 0)
                return errno == ECHILD ? 0 : -errno;
        return si.si_pid != 0;
}

int reaper_reap(ReaperKeepFunc keep_func, void *userdata, unsigned *ret_reaped) {
        _cleanup_free_ char *children = NULL, *path = NULL;
        _cleanup_free_ pid_t *keep = NULL;
        unsigned reaped = 0;
        size_t size, n_keep = 0;
        bool have_keep = false;
        int r;

        *ret_reaped = 0;
        /* The quick way while no zombie of a worker is first in the kernel's line: the one waitable child,
         * looked at without reaping it (WNOWAIT), reaped when it is not a worker's. */
        for (;;) {
                siginfo_t si = {};

                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
                        if (errno == ECHILD)
                                break;
                        return -errno;
                }
                if (si.si_pid == 0)
                        break; /* nothing to reap */
                if (!have_keep) {
                        r = keep_func(userdata, &keep);
                        if (r < 0)
                                return r;
                        n_keep = (size_t) r;
                        have_keep = true;
                }
                if (kept(si.si_pid, keep, n_keep))
                        goto scan;
                r = reap_one(si.si_pid);
                if (r < 0)
                        return r;
                reaped += r;
        }
        *ret_reaped = reaped;
        return 0;

scan:
        /* A worker's zombie waits for its child source: the orphans behind it are found in the list of
         * corral's children (corral runs one thread) and reaped one by one, by pid. */
        path = strdup_printf("/proc/self/task/%d/children", (int) getpid());
        if (!path)
                return -ENOMEM;
        r = read_file_max(path, CHILDREN_MAX, &children, &size);
        if (r < 0)
                return r;
        for (char *p = children, *end; *p; p = end) {
                long v = strtol(p, &end, 10);

                if (end == p)
                        break;
                if (v <= 0 || kept((pid_t) v, keep, n_keep))
                        continue;
                r = reap_one((pid_t) v);
                if (r < 0)
                        return r;
                reaped += r;
        }
        *ret_reaped = reaped;
        return 0;
}

int reaper_become_subreaper(void) {
        /* As PID 1 every orphan of the container comes to corral anyway. */
        if (getpid() == 1)
                return 0;
        return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -errno : 1;
}
