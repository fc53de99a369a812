/* SPDX-License-Identifier: MIT */
/* A worker's accounting sample: memory, memory events, CPU time and pressure from its leaves (or PSS from
 * /proc). The files every periodic sample needs stay open per worker and are read again with pread(), which
 * costs the master about a third of an open + read + close each (docs/performance.md, section 5); PSS is
 * read again only when the resident set says it may have moved or a limit is near (pss_due()). */

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "cgroup-parse.h"
#include "cgroup-proc.h"

/* Room for a kept file: cpu.stat, the longest, is under 400 bytes on Linux 6.x. */
#define KEPT_FILE_MAX 4096

void cgroup_worker_close_files(CgroupWorker *w) {
        for (size_t i = 0; i < _CGROUP_FILE_MAX; i++)
                w->files[i] = safe_close(w->files[i]);
}

/* Reads name in dir through the fd kept in w->files[which], opening it the first time. cgroupfs generates
 * the file afresh for a read at offset 0, as for a new open. A kept file whose cgroup or controller went
 * away reads -ENODEV: it is closed and looked up by name again, so the caller learns -ENOENT and can tell
 * a vanished leaf from a missing controller. An fd numbered at or above the manager's keep_below is closed
 * after the read, not kept: that room is the pool's (cgroup_manager_set_keep_below()). Returns the length
 * read into buf, or -errno. */
static int read_kept(CgroupWorker *w, CgroupFile which, int dir, const char *name, char *buf, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (w->files[which] >= 0) {
                r = fd_read_text(w->files[which], buf, size);
                if (r != -ENODEV)
                        return r;
                w->files[which] = safe_close(w->files[which]);
        }
        fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        r = fd_read_text(fd, buf, size);
        if (r >= 0 && (uint64_t) fd < w->manager->keep_below)
                w->files[which] = TAKE_FD(fd);
        return r;
}

static int read_kept_u64(CgroupWorker *w, CgroupFile which, int dir, const char *name, uint64_t *ret) {
        char buf[KEPT_FILE_MAX];
        int r;

        r = read_kept(w, which, dir, name, buf, sizeof(buf));
        return r < 0 ? r : cgroup_parse_u64(buf, ret);
}

/* memory.events through the events watch's own fd when one is open (reading it there also settles the
 * watch: what woke it has been read), else through a kept fd of its own. */
static int read_memory_events(CgroupWorker *w, char *buf, size_t size) {
        if (w->events_fd >= 0)
                return fd_read_text(w->events_fd, buf, size);
        return read_kept(w, CGROUP_FILE_MEMORY_EVENTS, w->v2_fd, "memory.events", buf, size);
}

static int sample_memory_cgroup(CgroupWorker *w, unsigned want, CgroupSample *s) {
        bool v1 = w->manager->memory == MEMORY_V1;
        int dir = v1 ? w->v1_fd : w->v2_fd;
        char buf[KEPT_FILE_MAX];
        CgroupMemoryEvents e;
        int r;

        r = read_kept_u64(w, CGROUP_FILE_MEMORY_CURRENT, dir, v1 ? "memory.usage_in_bytes" : "memory.current",
                          &s->memory_current);
        if (r < 0)
                return leaf_missing(dir, r);
        s->flags |= CGROUP_SAMPLE_MEMORY_CURRENT;

        if (want & (CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE)) {
                /* Asked for by a report, not by every tick: opened for the occasion. */
                _cleanup_free_ char *stat = NULL;

                r = dir_read_file(dir, "memory.stat", &stat);
                if (r >= 0 && cgroup_parse_memory_stat(stat, v1, &s->memory_anon, &s->memory_file) >= 0)
                        s->flags |= CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE;
                else if (r < 0 && r != -ENOENT)
                        return r;
        }

        if (v1) {
                /* v1 has no "high"; failcnt counts hits of the limit (no policy uses it: only when asked
                 * for), oom_control's oom_kill (4.13+) the OOM kills. */
                if ((want & CGROUP_SAMPLE_EVENTS_MAX) && dir_read_u64(dir, "memory.failcnt", &s->events_max) >= 0)
                        s->flags |= CGROUP_SAMPLE_EVENTS_MAX;
                if (read_kept(w, CGROUP_FILE_OOM_CONTROL, dir, "memory.oom_control", buf, sizeof(buf)) >= 0 &&
                    cgroup_parse_keyed(buf, "oom_kill", &s->events_oom_kill) >= 0)
                        s->flags |= CGROUP_SAMPLE_EVENTS_OOM_KILL;
                return 1;
        }

        r = read_memory_events(w, buf, sizeof(buf));
        if (r >= 0 && cgroup_parse_memory_events(buf, &e) >= 0) {
                s->events_high = e.high;
                s->events_max = e.max;
                s->events_oom_kill = e.oom_kill;
                s->flags |= CGROUP_SAMPLE_EVENTS_HIGH | CGROUP_SAMPLE_EVENTS_MAX | CGROUP_SAMPLE_EVENTS_OOM_KILL;
        } else if (r < 0 && r != -ENOENT)
                return r;
        return 1;
}

/* How far below the truth the tree's resident set may read, in pages. */
static uint64_t rss_lag(const CgroupWorker *w, const ProcTreeStat *st) {
        return w->manager->rss_lag_pages + 3 * 64 * st->threads;
}

/* Whether the PSS of a tree of n processes (their stat added up in st) must be read afresh (cgroup.h,
 * cgroup_manager_set_pss_exact_from()). */
static bool pss_due(const CgroupWorker *w, const ProcTreeStat *st, size_t n, unsigned want, usec_t now) {
        const CgroupManager *m = w->manager;
        uint64_t rss_pages = st->rss_pages, drift = w->pss_rss_pages / 16;

        if (want & (CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE))
                return true;
        if (w->pss_usec == 0 || now - w->pss_usec >= CGROUP_PSS_MAX_AGE_USEC || n != w->pss_pids)
                return true;
        if (rss_pages > w->pss_rss_pages + drift || rss_pages + drift < w->pss_rss_pages)
                return true;
        /* Near the limit: within 1/16 of it, or within what the kernel's resident counters may read low
         * (per CPU on 6.2+; before, up to 64 pages per thread and counter). */
        return m->pss_exact_from > 0 &&
               rss_pages + rss_pages / 16 + rss_lag(w, st) >= m->pss_exact_from / m->page_size;
}

/* Memory of a tree of processes as PSS, afresh or the last figures (pss_due()), and with want_cpu its CPU
 * time, into s. tree: the processes' stat added up, NULL to read it here. Returns 0 or -errno. */
static int sample_pss(CgroupWorker *w, const pid_t *pids, size_t n, const ProcTreeStat *tree, unsigned want,
                      bool want_cpu, CgroupSample *s) {
        usec_t now = now_usec(CLOCK_MONOTONIC);
        ProcTreeStat st;
        CgroupSample pss = {};
        int r;

        if (tree)
                st = *tree;
        else {
                r = proc_tree_stat(w->manager->proc_fd, pids, n, &st);
                if (r < 0)
                        return r;
        }
        if (pss_due(w, &st, n, want, now)) {
                r = proc_tree_pss(w->manager->proc_fd, pids, n, &pss);
                if (r < 0)
                        return r;
                w->pss = pss;
                w->pss_rss_pages = st.rss_pages;
                w->pss_pids = n;
                w->pss_usec = now;
        } else {
                uint64_t rss = (st.rss_pages + rss_lag(w, &st)) * w->manager->page_size;

                pss = w->pss;
                pss.memory_current = MIN(pss.memory_current, rss);
                pss.memory_anon = MIN(pss.memory_anon, rss);
                pss.memory_file = MIN(pss.memory_file, rss);
        }
        s->memory_current = pss.memory_current;
        s->memory_anon = pss.memory_anon;
        s->memory_file = pss.memory_file;
        s->flags |= pss.flags & (CGROUP_SAMPLE_MEMORY_CURRENT | CGROUP_SAMPLE_MEMORY_ANON | CGROUP_SAMPLE_MEMORY_FILE);
        if (want_cpu) {
                s->cpu_usage_usec = proc_ticks_to_usec(st.ticks, w->manager->hz);
                s->flags |= CGROUP_SAMPLE_CPU_USAGE;
        }
        return 0;
}

static int sample_cgroup(CgroupWorker *w, unsigned want, CgroupSample *s) {
        _cleanup_free_ char *pressure = NULL;
        char cpu[KEPT_FILE_MAX];
        usec_t total;
        int r;

        if (w->manager->memory == MEMORY_PSS) {
                _cleanup_free_ pid_t *pids = NULL;

                r = dir_read_pids(worker_procs_dir(w), "cgroup.procs", &pids);
                if (r < 0)
                        return leaf_missing(worker_procs_dir(w), r);
                r = sample_pss(w, pids, (size_t) r, NULL, want, /* want_cpu= */ false, s);
                if (r >= 0)
                        r = 1;
        } else
                r = sample_memory_cgroup(w, want, s);
        if (r <= 0)
                return r;

        if (w->v2_fd < 0)
                return 1;
        r = read_kept(w, CGROUP_FILE_CPU_STAT, w->v2_fd, "cpu.stat", cpu, sizeof(cpu));
        if (r >= 0 && cgroup_parse_cpu_stat(cpu, &s->cpu_usage_usec) >= 0)
                s->flags |= CGROUP_SAMPLE_CPU_USAGE;
        else if (r < 0)
                return leaf_missing(w->v2_fd, r);

        if (!(want & CGROUP_SAMPLE_MEMORY_PRESSURE))
                return 1;
        /* PSI may be compiled out or disabled (psi=0): then there is no pressure file. */
        r = dir_read_file(w->v2_fd, "memory.pressure", &pressure);
        if (r >= 0 && cgroup_parse_pressure(pressure, "some", &s->memory_pressure_some_avg10, &total) >= 0)
                s->flags |= CGROUP_SAMPLE_MEMORY_PRESSURE;
        else if (r < 0 && r != -ENOENT && r != -EOPNOTSUPP)
                return r;
        return 1;
}

/* The orphans' list is this old at most when a sample uses it. */
#define ORPHANS_MAX_AGE_USEC (USEC_PER_SEC / 2)

/* Looks through corral's children for orphans (the workers skipped: no /proc read for them). */
static int orphans_refresh(CgroupManager *m, bool fresh) {
        _cleanup_free_ pid_t *workers = NULL;
        usec_t now = now_usec(CLOCK_MONOTONIC);
        ProcChild *orphans = NULL;
        size_t n = 0;
        int r;

        if (!fresh && m->orphans_usec > 0 && now - m->orphans_usec < ORPHANS_MAX_AGE_USEC)
                return 0;
        for (CgroupWorker *w = m->workers; w; w = w->next)
                n++;
        workers = calloc(MAX(n, 1U), sizeof(pid_t));
        if (!workers)
                return -ENOMEM;
        n = 0;
        for (CgroupWorker *w = m->workers; w; w = w->next)
                if (w->pid > 0)
                        workers[n++] = w->pid;
        qsort(workers, n, sizeof(pid_t), pid_compare);
        r = proc_children_sessions(m->proc_fd, m->self, workers, n, &orphans);
        if (r < 0)
                return r;
        free(m->orphans);
        m->orphans = orphans;
        m->n_orphans = (size_t) r;
        m->orphans_usec = now;
        return 0;
}

int cgroup_worker_proc_roots(CgroupWorker *w, bool fresh, pid_t **ret) {
        CgroupManager *m = w->manager;
        size_t lo = 0, hi, n = 0;
        pid_t *roots;
        int r;

        /* A failed look keeps the last list for a sample (the worker itself is always there); a kill, which
         * asks for a fresh one, must not signal pids of a stale list, which may be other processes' now. */
        r = orphans_refresh(m, fresh);
        if (r < 0 && fresh)
                return r;
        hi = m->n_orphans;
        while (lo < hi) { /* the first orphan of the worker's session */
                size_t mid = lo + (hi - lo) / 2;

                if (m->orphans[mid].session < w->pid)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (hi = lo; hi < m->n_orphans && m->orphans[hi].session == w->pid; hi++)
                ;
        roots = calloc(1 + hi - lo, sizeof(pid_t));
        if (!roots)
                return -ENOMEM;
        roots[n++] = w->pid;
        for (size_t i = lo; i < hi; i++)
                if (m->orphans[i].pid != w->pid)
                        roots[n++] = m->orphans[i].pid;
        *ret = roots;
        return (int) n;
}

/* Proc backend: the worker's stat and, with one thread, its children, through fds kept open (a /proc file
 * of a pid stays that process's: it cannot read a later process that reuses the pid). Returns 1, 0 when the
 * worker is gone or a zombie, or -errno. */
static int read_proc_root(CgroupWorker *w, ProcRootRead *ret, pid_t **children) {
        int proc_fd = w->manager->proc_fd;
        char name[64], buf[KEPT_FILE_MAX];
        int r;

        (void) snprintf(name, sizeof(name), "%d/stat", (int) w->pid);
        r = read_kept(w, CGROUP_FILE_PROC_STAT, proc_fd, name, buf, sizeof(buf));
        if (r >= 0)
                r = proc_parse_stat(buf, &ret->stat);
        if (errno_is_gone(r) || (r >= 0 && proc_stat_dead(&ret->stat)))
                return 0;
        if (r < 0)
                return r;
        ret->children = NULL;
        ret->n_children = -1;
        if (ret->stat.threads != 1)
                return 1;
        (void) snprintf(name, sizeof(name), "%d/task/%d/children", (int) w->pid, (int) w->pid);
        /* One pread gets what fits in the kernel's page of the seq_file, records whole: a list that fills
         * more than half the buffer may go on, and proc_trees_collect() reads it to its end; so it does
         * after any failure. */
        r = read_kept(w, CGROUP_FILE_PROC_CHILDREN, proc_fd, name, buf, sizeof(buf));
        if (r >= 0 && (size_t) r > sizeof(buf) / 2)
                r = -EFBIG;
        if (r >= 0)
                r = cgroup_parse_pids(buf, children);
        if (r >= 0) {
                ret->children = *children;
                ret->n_children = r;
        }
        return 1;
}

int cgroup_worker_sample(CgroupWorker *w, unsigned want, CgroupSample *ret) {
        CgroupSample s = {};
        int r;

        if (w->manager->backend == CGROUP_BACKEND_PROC) {
                _cleanup_free_ pid_t *pids = NULL, *roots = NULL, *children = NULL;
                ProcTreeStat tree;
                ProcRootRead first;

                if (w->pid <= 0)
                        return -ESRCH;
                r = read_proc_root(w, &first, &children);
                if (r > 0)
                        r = cgroup_worker_proc_roots(w, /* fresh= */ false, &roots);
                if (r > 0)
                        r = proc_trees_collect(w->manager->proc_fd, roots, (size_t) r, &first, &pids, &tree);
                /* The worker comes first, or it is gone (0): what it left is no longer counted for it. */
                if (r > 0 && pids[0] == w->pid) {
                        r = sample_pss(w, pids, (size_t) r, &tree, want, /* want_cpu= */ true, &s);
                        if (r >= 0)
                                r = 1;
                } else if (r >= 0)
                        r = 0;
        } else
                r = sample_cgroup(w, want, &s);
        if (r < 0)
                return r;

        *ret = r > 0 ? s : (CgroupSample) {};
        return r;
}
