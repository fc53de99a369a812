/* SPDX-License-Identifier: MIT */
/* The proc backend's half: a worker's process tree from /proc/PID/task/TID/children (and the trees of the
 * orphans it left, found among corral's children by their session), its PSS and CPU time, stop-then-kill
 * of the whole tree, and a process's parent. Everything relative to the /proc directory fd.
 * No logging. */

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "cgroup-io.h"
#include "cgroup-parse.h"
#include "cgroup-proc.h"

#define KILL_ROUNDS_MAX 16U

static int proc_read_stat(int proc_fd, pid_t pid, ProcStat *ret) {
        _cleanup_free_ char *s = NULL;
        char path[64];
        int r;

        (void) snprintf(path, sizeof(path), "%d/stat", (int) pid);
        r = dir_read_file(proc_fd, path, &s);
        if (r < 0)
                return r;
        return proc_parse_stat(s, ret);
}

/* Adds to the tree's stat what stat says of one of its processes. cutime/cstime hold the time of children
 * the process has reaped: a worker that forks short-lived helpers is charged for them. */
static void tree_stat_add(ProcTreeStat *sum, const ProcStat *st) {
        sum->ticks += st->utime + st->stime + st->cutime + st->cstime;
        sum->rss_pages += st->rss_pages;
        sum->threads += st->threads;
}

/* Appends those of more that *pids does not hold yet (a process re-parented during a walk could be listed
 * twice). */
static int pids_append_new(pid_t **pids, size_t *n, const pid_t *more, size_t n_more) {
        for (size_t i = 0; i < n_more; i++) {
                int r;

                if (pid_set_contains(*pids, *n, more[i]))
                        continue;
                r = pid_set_add(pids, n, more[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int pids_append(pid_t **pids, size_t *n, const pid_t *more, size_t n_more) {
        for (size_t i = 0; i < n_more; i++) {
                int r = pid_set_add(pids, n, more[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The children of every thread of pid, as /proc/PID/task/TID/children lists them: each once (a child is
 * listed under the one thread that forked it). Appended to *pids, *n. threads: pid's thread count from its
 * stat, 0 when unknown; with one thread, its children are read without listing the task directory. */
static int proc_read_children(int proc_fd, pid_t pid, unsigned threads, pid_t **pids, size_t *n) {
        _cleanup_(closedirp) DIR *d = NULL;
        char path[64];
        int fd, r;

        if (threads == 1) {
                _cleanup_free_ pid_t *children = NULL;

                (void) snprintf(path, sizeof(path), "%d/task/%d/children", (int) pid, (int) pid);
                r = dir_read_pids(proc_fd, path, &children);
                return r < 0 ? r : pids_append(pids, n, children, (size_t) r);
        }
        (void) snprintf(path, sizeof(path), "%d/task", (int) pid);
        fd = openat(proc_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        for (struct dirent *de; (de = readdir(d));) {
                _cleanup_free_ pid_t *children = NULL;
                char file[NAME_MAX + 16];

                if (de->d_name[0] == '.')
                        continue;
                (void) snprintf(file, sizeof(file), "%s/children", de->d_name);
                r = dir_read_pids(dirfd(d), file, &children);
                if (errno_is_gone(r))
                        continue; /* the thread exited meanwhile */
                if (r < 0)
                        return r;
                r = pids_append(pids, n, children, (size_t) r);
                if (r < 0)
                        return r;
        }
        return 0;
}

int proc_trees_collect(int proc_fd, const pid_t *roots, size_t n_roots, const ProcRootRead *first, pid_t **ret,
                       ProcTreeStat *ret_stat) {
        _cleanup_free_ pid_t *seen = NULL, *pids = NULL;
        size_t n_seen = 0, n = 0;
        ProcTreeStat sum = {};
        int r;

        /* seen: every pid met, roots first, each once; pids: those that run, in the same order. Each one's
         * stat is read once: whether it runs, its threads (where its children are listed), and its CPU time
         * and resident set for ret_stat. */
        r = pids_append_new(&seen, &n_seen, roots, n_roots);
        if (r < 0)
                return r;
        n_roots = n_seen;
        for (size_t i = 0; i < n_seen; i++) {
                bool known = i == 0 && first;
                ProcStat st;

                r = known ? (st = first->stat, 0) : proc_read_stat(proc_fd, seen[i], &st);
                /* A root that is a zombie is gone (its children belong to someone else by now); a descendant
                 * that is one still holds its CPU time until its parent reaps it (then the parent's cutime
                 * does): it stays in, childless, or the tree's CPU time would drop for a moment. */
                if (errno_is_gone(r) || (r >= 0 && i < n_roots && proc_stat_dead(&st)))
                        continue;
                if (r < 0)
                        return r;
                r = pid_set_add(&pids, &n, seen[i]);
                if (r < 0)
                        return r;
                tree_stat_add(&sum, &st);
                if (proc_stat_dead(&st))
                        continue;
                {
                        _cleanup_free_ pid_t *read = NULL;
                        const pid_t *children;
                        size_t n_children = 0;

                        if (known && first->n_children >= 0) {
                                children = first->children;
                                n_children = (size_t) first->n_children;
                        } else {
                                r = proc_read_children(proc_fd, seen[i], (unsigned) MIN(st.threads, UINT_MAX), &read,
                                                       &n_children);
                                if (errno_is_gone(r))
                                        continue;
                                if (r < 0)
                                        return r;
                                children = read;
                        }
                        r = pids_append_new(&seen, &n_seen, children, n_children);
                        if (r < 0)
                                return r;
                }
        }
        if (ret_stat)
                *ret_stat = sum;
        *ret = TAKE_PTR(pids);
        return (int) n;
}

int proc_tree_stat(int proc_fd, const pid_t *pids, size_t n, ProcTreeStat *ret) {
        ProcTreeStat sum = {};
        int r;

        for (size_t i = 0; i < n; i++) {
                ProcStat st;

                r = proc_read_stat(proc_fd, pids[i], &st);
                if (errno_is_gone(r))
                        continue;
                if (r < 0)
                        return r;
                tree_stat_add(&sum, &st);
        }
        *ret = sum;
        return 0;
}

int proc_tree_pss(int proc_fd, const pid_t *pids, size_t n, CgroupSample *s) {
        ProcSmapsRollup total = { .has_pss_anon = true, .has_pss_file = true };
        int r;

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *c = NULL;
                ProcSmapsRollup one;
                char path[64];

                (void) snprintf(path, sizeof(path), "%d/smaps_rollup", (int) pids[i]);
                r = dir_read_file(proc_fd, path, &c);
                if (r >= 0)
                        r = proc_parse_smaps_rollup(c, &one);
                /* A zombie or kernel thread has an empty smaps_rollup (-ENOENT from the parser); a
                 * descendant that changed credentials may refuse us (-EACCES): both own no memory we
                 * could charge to the worker. The worker's own pid must be readable. */
                if (r < 0 && !errno_is_gone(r) && (r != -EACCES || i == 0))
                        return r;
                if (r >= 0) {
                        total.pss += one.pss;
                        total.pss_anon += one.pss_anon;
                        total.pss_file += one.pss_file;
                        total.has_pss_anon = total.has_pss_anon && one.has_pss_anon;
                        total.has_pss_file = total.has_pss_file && one.has_pss_file;
                }
        }

        s->memory_current = total.pss;
        s->flags |= CGROUP_SAMPLE_MEMORY_CURRENT;
        if (total.has_pss_anon) {
                s->memory_anon = total.pss_anon;
                s->flags |= CGROUP_SAMPLE_MEMORY_ANON;
        }
        if (total.has_pss_file) {
                s->memory_file = total.pss_file;
                s->flags |= CGROUP_SAMPLE_MEMORY_FILE;
        }
        return 0;
}

static int compare_sessions(const void *a, const void *b) {
        return pid_compare(&((const ProcChild *) a)->session, &((const ProcChild *) b)->session);
}

int proc_children_sessions(int proc_fd, pid_t parent, const pid_t *skip, size_t n_skip, ProcChild **ret) {
        _cleanup_free_ ProcChild *out = NULL;
        _cleanup_free_ pid_t *children = NULL;
        size_t n_children = 0, n = 0;
        int r;

        /* Thousands of workers: read without proc_append_children()'s duplicate check (quadratic). */
        r = proc_read_children(proc_fd, parent, /* threads= */ 0, &children, &n_children);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_children; i++) {
                ProcStat st;
                ProcChild *p;

                if (n_skip > 0 && bsearch(&children[i], skip, n_skip, sizeof(pid_t), pid_compare))
                        continue;
                r = proc_read_stat(proc_fd, children[i], &st);
                if (errno_is_gone(r) || (r >= 0 && proc_stat_dead(&st)))
                        continue;
                if (r < 0)
                        return r;
                p = reallocarray(out, n + 1, sizeof(ProcChild));
                if (!p)
                        return -ENOMEM;
                out = p;
                out[n++] = (ProcChild) { .pid = children[i], .session = st.session };
        }
        if (n > 1)
                qsort(out, n, sizeof(ProcChild), compare_sessions);
        *ret = TAKE_PTR(out);
        return (int) n;
}

int proc_trees_kill(int proc_fd, const pid_t *roots, size_t n_roots) {
        _cleanup_free_ pid_t *stopped = NULL;
        size_t n_stopped = 0;
        int killed = 0, error = 0, r;

        if (n_roots == 0)
                return 0;
        /* Whatever fails on the way, everything stopped gets killed: never leave a tree stopped. */
        for (unsigned round = 0; round < KILL_ROUNDS_MAX && error == 0; round++) {
                _cleanup_free_ pid_t *pids = NULL;
                bool fresh = false;

                r = proc_trees_collect(proc_fd, roots, n_roots, NULL, &pids, NULL);
                if (r < 0) {
                        error = r;
                        break;
                }
                for (int i = 0; i < r; i++) {
                        if (pid_set_contains(stopped, n_stopped, pids[i]))
                                continue;
                        r = pid_set_add(&stopped, &n_stopped, pids[i]);
                        if (r < 0) {
                                error = r;
                                break;
                        }
                        fresh = true;
                        if (kill(pids[i], SIGSTOP) < 0 && errno != ESRCH)
                                error = -errno;
                }
                if (!fresh)
                        break;
        }
        for (size_t i = 0; i < n_stopped; i++) {
                if (kill(stopped[i], SIGKILL) >= 0)
                        killed++;
                else if (errno != ESRCH && error == 0)
                        error = -errno;
        }
        return error < 0 ? error : killed;
}

int proc_pid_running(int proc_fd, pid_t pid) {
        ProcStat st;
        int r;

        if (pid <= 0)
                return 0;
        r = proc_read_stat(proc_fd, pid, &st);
        if (errno_is_gone(r))
                return 0;
        return r < 0 ? r : !proc_stat_dead(&st);
}

int proc_pid_get_ppid(int proc_fd, pid_t pid, pid_t *ret) {
        ProcStat st;
        int r;

        if (pid <= 0)
                return -ESRCH;
        r = proc_read_stat(proc_fd, pid, &st);
        if (r == -ENOENT)
                return -ESRCH;
        if (r < 0)
                return r;
        *ret = st.ppid;
        return 0;
}
