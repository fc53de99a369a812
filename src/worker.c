/* SPDX-License-Identifier: MIT */
/* A worker: process mechanics (pidfd child source, exec status pipe, one timer, watchdog, stop and kill),
 * its leaf and memory.events watch, its recycling state, and their release in one place. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker.h"

static void worker_emit(Worker *w, const WorkerEvent *ev) {
        w->handler(w, ev, w->userdata);
}

static void worker_unlink(Worker *w) {
        if (!w->list)
                return;
        if (w->prev)
                w->prev->next = w->next;
        else
                *w->list = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->list = NULL;
        w->prev = w->next = NULL;
}

void worker_move(Worker *w, Worker **list) {
        worker_unlink(w);
        w->list = list;
        w->next = *list;
        if (*list)
                (*list)->prev = w;
        *list = w;
}

int worker_new(const WorkerParams *p, Worker **list, Worker **ret) {
        Worker *w;

        w = calloc(1, sizeof(Worker));
        if (!w) {
                cgroup_worker_free(p->cgroup);
                return -ENOMEM;
        }
        w->id = p->id;
        w->slot = p->slot;
        w->generation = generation_ref(p->generation);
        w->cgroup = p->cgroup;
        w->child_priority = p->child_priority;
        w->timer_priority = p->timer_priority;
        w->handler = p->handler;
        w->userdata = p->userdata;
        worker_move(w, list);
        *ret = w;
        return 0;
}

static void worker_exited(Worker *w, const siginfo_t *si);
static int worker_arm_timer(Worker *w, WorkerEventType type, usec_t delay);

/* The worker was SIGKILLed a while ago and its exit has still not been dispatched. Seen with sanitized
 * workers, whose exit-time leak check ptrace-attaches to them: the pidfd reported the exit while only the
 * tracer could collect it, and sd-event (which then finds nothing to wait for) never looked again. Ask the
 * kernel directly; if the worker is gone, reap it here and take the source's place. */
static void worker_check_reaped(Worker *w) {
        siginfo_t si = {};
        int pidfd;

        pidfd = sd_event_source_get_child_pidfd(w->child_source);
        if (pidfd < 0 || waitid(P_PIDFD, (id_t) pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0) {
                (void) worker_arm_timer(w, WORKER_EVENT_KILLED, USEC_PER_SEC);
                return;
        }
        (void) sd_event_source_set_enabled(w->child_source, SD_EVENT_OFF);
        (void) sd_event_source_set_child_process_own(w->child_source, false);
        /* Reaped only after: until then the zombie pins the process group id worker_exited() kills. The
         * worker stays valid: the manager frees it after the dispatch. */
        worker_exited(w, &si);
        (void) waitid(P_PIDFD, (id_t) pidfd, &si, WEXITED);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;
        WorkerEvent ev = { .type = w->timer_event };

        if (w->timer_event == WORKER_EVENT_KILLED) {
                if (w->reap_check) {
                        worker_check_reaped(w);
                        return 0;
                }
                worker_kill(w);
                worker_emit(w, &ev);
                return 0;
        }
        worker_emit(w, &ev);
        return 0;
}

static int worker_arm_timer(Worker *w, WorkerEventType type, usec_t delay) {
        usec_t when = now_usec(CLOCK_MONOTONIC) + delay;
        int r;

        w->timer_event = type;
        r = sd_event_source_set_time(w->timer_source, when);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(w->timer_source, SD_EVENT_ONESHOT);
}

static void worker_disarm_timer(Worker *w) {
        (void) sd_event_source_set_enabled(w->timer_source, SD_EVENT_OFF);
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;
        WorkerEvent ev = { .type = WORKER_EVENT_WATCHDOG };

        worker_emit(w, &ev);
        return 0;
}

int worker_watchdog_ping(Worker *w) {
        usec_t usec = w->generation->config->worker_watchdog_usec;
        int r;

        if (w->exited || !w->timer_source || usec == 0)
                return 0;
        if (!w->watchdog_source) {
                r = sd_event_add_time_relative(sd_event_source_get_event(w->timer_source), &w->watchdog_source,
                                               CLOCK_MONOTONIC, usec, 0, on_watchdog, w);
                if (r < 0)
                        return r;
                int64_t prio = 0;
                (void) sd_event_source_get_priority(w->timer_source, &prio);
                (void) sd_event_source_set_priority(w->watchdog_source, prio);
                (void) sd_event_source_set_description(w->watchdog_source, "worker-watchdog");
                return 0;
        }
        r = sd_event_source_set_time_relative(w->watchdog_source, usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(w->watchdog_source, SD_EVENT_ONESHOT);
}

/* Returns true when the status pipe was settled by this call. */
static bool worker_check_status(Worker *w) {
        const Config *c = w->generation->config;
        WorkerEvent ev = {};
        int r;

        if (w->exec_done)
                return true;
        r = spawn_read_status(sd_event_source_get_io_fd(w->status_source), &ev.error);
        if (r == -EAGAIN || r == -EINTR)
                return false;

        w->exec_done = true;
        w->status_source = sd_event_source_disable_unref(w->status_source);
        if (r == 1) {
                ev.type = WORKER_EVENT_EXEC_FAILED;
                worker_emit(w, &ev);
                return true;
        }

        /* EOF (or an unreadable pipe, which only a dying child causes): exec went through. */
        if (c->ready_mode == READY_DELAY && !w->exited)
                (void) worker_arm_timer(w, WORKER_EVENT_READY_DELAY, c->ready_delay_usec);
        ev.type = WORKER_EVENT_EXEC_OK;
        worker_emit(w, &ev);
        return true;
}

static int on_status(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) worker_check_status(userdata);
        return 0;
}

/* Whether the OOM killer struck the worker's leaf since its last sample: with a SIGKILL exit, most
 * likely the worker itself. Its leaf was new when it started, so the count started at 0. */
static bool worker_new_oom_kill(Worker *w) {
        const RecycleState *r = &w->recycle;
        CgroupSample cs;

        if (!w->cgroup || cgroup_worker_sample(w->cgroup, 0, &cs) < 0 || !(cs.flags & CGROUP_SAMPLE_EVENTS_OOM_KILL))
                return false;
        if (r->has_last && !r->last.oom_valid)
                return false;
        return cs.events_oom_kill > (r->has_last ? r->last.oom_kills : 0);
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        worker_exited(userdata, si);
        return 0;
}

static void worker_exited(Worker *w, const siginfo_t *si) {
        WorkerEvent ev = { .type = WORKER_EVENT_EXITED, .siginfo = si };

        /* Child exits are dispatched first: read what the child wrote before it exited, so an exec
         * failure is reported before the exit it caused. */
        if (!w->exec_done && w->status_source)
                (void) worker_check_status(w);
        w->exec_done = true;
        w->status_source = sd_event_source_disable_unref(w->status_source);

        w->exit_code = si->si_code;
        w->exit_status = si->si_status;
        w->oom_killed = si->si_code == CLD_KILLED && si->si_status == SIGKILL && worker_new_oom_kill(w);

        /* Until this callback returns the worker is an unreaped zombie, so its pid (which is also its
         * process group id, it called setsid()) cannot be reused: killing the group now cannot hit a
         * stranger. This takes down whatever it left behind in its session, and the leaf whatever left
         * the session but stayed in the worker's cgroup. */
        (void) kill(-w->pid, SIGKILL);
        /* What left the session too: the leaf's at once; the proc backend's when the worker is freed, after
         * the manager's next plan, which starts its replacement when one is due (manager.c, on_post()), so a
         * crash is not answered later the larger the pool. */
        if (w->cgroup && cgroup_worker_kill_is_slow(w->cgroup))
                w->kill_left = true;
        else if (w->cgroup)
                (void) cgroup_worker_kill(w->cgroup);

        w->exited = true;
        worker_disarm_timer(w);
        (void) sd_event_source_set_enabled(w->watchdog_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(w->events_source, SD_EVENT_OFF);
        worker_emit(w, &ev);
}

static int on_memory_events(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        WorkerEvent ev = { .type = WORKER_EVENT_MEMORY };
        char buf[512];

        /* kernfs keeps POLLPRI raised until the file is read again through this fd. */
        if (lseek(fd, 0, SEEK_SET) >= 0)
                (void) !read(fd, buf, sizeof buf);
        worker_emit(w, &ev);
        return 0;
}

/* memory.high breaches and OOM kills are seen at once, not at the next sample. Worth having, never
 * worth failing a worker for. */
static void worker_watch_memory_events(Worker *w, sd_event *e, int64_t priority) {
        int fd;

        fd = cgroup_worker_events_fd(w->cgroup);
        if (fd < 0 || sd_event_add_io(e, &w->events_source, fd, EPOLLPRI, on_memory_events, w) < 0)
                return;
        (void) sd_event_source_set_priority(w->events_source, priority);
        (void) sd_event_source_set_description(w->events_source, "worker-memory-events");
}

/* Watches the process behind pidfd (taken on success): its exit, and its one timer (disarmed). */
static int worker_watch(Worker *w, sd_event *e, int pidfd) {
        int r;

        r = sd_event_add_child_pidfd(e, &w->child_source, pidfd, WEXITED, on_child, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_child_pidfd_own(w->child_source, true);
        (void) sd_event_source_set_child_process_own(w->child_source, true);
        (void) sd_event_source_set_priority(w->child_source, w->child_priority);
        (void) sd_event_source_set_description(w->child_source, "worker-exit");

        r = sd_event_add_time(e, &w->timer_source, CLOCK_MONOTONIC, USEC_INFINITY, 0, on_timer, w);
        if (r < 0) {
                /* Not owned yet: the caller still has pidfd and the process. */
                (void) sd_event_source_set_child_pidfd_own(w->child_source, false);
                (void) sd_event_source_set_child_process_own(w->child_source, false);
                w->child_source = sd_event_source_disable_unref(w->child_source);
                return r;
        }
        (void) sd_event_source_set_priority(w->timer_source, w->timer_priority);
        (void) sd_event_source_set_description(w->timer_source, "worker-timer");
        (void) sd_event_source_set_enabled(w->timer_source, SD_EVENT_OFF);
        return 0;
}

int worker_start(Worker *w, sd_event *e, const SpawnParams *sp, double random01) {
        _cleanup_close_ int pidfd = -EBADF, status_fd = -EBADF;
        const Config *c = w->generation->config;
        SpawnParams p = *sp;
        int r;

        if (w->cgroup)
                p.n_cgroup_procs_fds = cgroup_worker_procs_fds(w->cgroup, p.cgroup_procs_fds);
        r = spawn_worker(&p, &w->pid, &pidfd, &status_fd);
        /* With a thousand workers these add up: the child has joined its leaf, or never will. */
        if (w->cgroup)
                cgroup_worker_close_procs_fds(w->cgroup);
        if (r < 0)
                return r;
        w->started_usec = now_usec(CLOCK_MONOTONIC);
        RecyclePolicy policy = generation_recycle_policy(w->generation);
        recycle_state_init(&w->recycle, &policy, w->started_usec, random01);

        r = worker_watch(w, e, pidfd);
        if (r < 0)
                goto fail;
        TAKE_FD(pidfd);

        r = sd_event_add_io(e, &w->status_source, status_fd, EPOLLIN, on_status, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_io_fd_own(w->status_source, true);
        TAKE_FD(status_fd);
        (void) sd_event_source_set_description(w->status_source, "worker-exec-status");

        if (c->ready_mode != READY_EXEC) {
                r = worker_arm_timer(w, WORKER_EVENT_READY_TIMEOUT, c->ready_timeout_usec);
                if (r < 0)
                        goto fail;
        } else
                worker_disarm_timer(w);

        if (w->cgroup) {
                (void) cgroup_worker_attach_pid(w->cgroup, w->pid);
                worker_watch_memory_events(w, e, w->timer_priority);
        }
        return 0;

fail:
        /* The child source, if it exists, kills and reaps the process when freed; else do it here, or
         * the child stays a zombie. */
        if (!w->child_source && pidfd >= 0) {
                (void) kill(w->pid, SIGKILL);
                (void) waitid(P_PIDFD, (id_t) pidfd, NULL, WEXITED);
        }
        w->child_source = sd_event_source_disable_unref(w->child_source);
        w->status_source = sd_event_source_disable_unref(w->status_source);
        w->timer_source = sd_event_source_disable_unref(w->timer_source);
        w->pid = 0;
        return r;
}

int worker_adopt(Worker *w, sd_event *e, pid_t pid, int pidfd, usec_t started_usec, const RecycleState *recycle,
                 usec_t watchdog_usec) {
        _cleanup_close_ int fd = pidfd;
        int r;

        w->pid = pid;
        w->started_usec = started_usec;
        w->exec_done = true;
        w->recycle = *recycle;

        /* A worker that exited while the exec ran is a zombie now: its pidfd is readable at once and the
         * exit is dispatched like any other. */
        r = worker_watch(w, e, fd);
        if (r < 0)
                goto fail;
        TAKE_FD(fd);
        worker_disarm_timer(w);

        if (watchdog_usec > 0) {
                r = worker_watchdog_ping(w);
                if (r >= 0 && w->watchdog_source)
                        r = sd_event_source_set_time(w->watchdog_source, watchdog_usec);
                if (r < 0)
                        goto fail;
        }
        if (w->cgroup)
                worker_watch_memory_events(w, e, w->timer_priority);
        return 0;

fail:
        /* The worker is not ours to kill: it served before the upgrade and may still. Leave it running
         * (its pidfd closes); the caller decides. */
        if (w->child_source)
                (void) sd_event_source_set_child_process_own(w->child_source, false);
        w->child_source = sd_event_source_disable_unref(w->child_source);
        w->timer_source = sd_event_source_disable_unref(w->timer_source);
        w->watchdog_source = sd_event_source_disable_unref(w->watchdog_source);
        w->pid = 0;
        return r;
}

int worker_pidfd(const Worker *w) {
        return w->child_source ? sd_event_source_get_child_pidfd(w->child_source) : -EBADF;
}

usec_t worker_watchdog_deadline(const Worker *w) {
        int enabled = SD_EVENT_OFF;
        uint64_t usec = 0;

        if (!w->watchdog_source || sd_event_source_get_enabled(w->watchdog_source, &enabled) < 0 ||
            enabled == SD_EVENT_OFF || sd_event_source_get_time(w->watchdog_source, &usec) < 0)
                return 0;
        return usec;
}

void worker_ready(Worker *w) {
        if (!w->exited && w->timer_source &&
            (w->timer_event == WORKER_EVENT_READY_TIMEOUT || w->timer_event == WORKER_EVENT_READY_DELAY))
                worker_disarm_timer(w);
}

int worker_signal(Worker *w, int sig) {
        int r;

        if (w->exited || !w->child_source)
                return 0;
        r = sd_event_source_send_child_signal(w->child_source, sig, NULL, 0);
        if (r == -ESRCH)
                return 0;
        return r;
}

int worker_stop(Worker *w) {
        const Config *c = w->generation->config;
        int sig = w->abort_on_stop ? SIGABRT : c->stop_signal;
        int r;

        if (w->exited || !w->child_source)
                return 0;
        /* A stopped process would sit on a TERM forever, so wake it first. First, not after: a CONT
         * sent after the TERM can land while the worker, acting on the TERM, is being stopped by a
         * ptrace attach of its own (a crash reporter, LeakSanitizer at exit), and a CONT discards
         * that pending stop, leaving the tracer waiting for ever. Seen in the ASan tier. */
        if (sig != SIGKILL)
                (void) worker_signal(w, SIGCONT);
        r = worker_signal(w, sig);
        (void) worker_arm_timer(w, WORKER_EVENT_KILLED, c->stop_timeout_usec);
        return r;
}

void worker_kill(Worker *w) {
        if (w->exited || !w->child_source)
                return;
        (void) worker_signal(w, SIGKILL);
        /* The worker is not reaped before its child source fires, so its process group id is still
         * pinned; see on_child(). */
        (void) kill(-w->pid, SIGKILL);
        if (w->cgroup)
                (void) cgroup_worker_kill(w->cgroup);
        /* Its exit comes through the child source; if it has not within a second, look. */
        if (w->timer_source && worker_arm_timer(w, WORKER_EVENT_KILLED, USEC_PER_SEC) >= 0)
                w->reap_check = true;
}

int worker_sample(Worker *w, CgroupSample *ret) {
        if (!w->cgroup || w->exited || !w->child_source)
                return 0;
        return cgroup_worker_sample(w->cgroup, 0, ret);
}

const char *worker_describe_exit(const Worker *w, char *buf, size_t size) {
        if (w->exit_code == 0)
                snprintf(buf, size, "could not be started");
        else if (w->exit_code == CLD_EXITED)
                snprintf(buf, size, "exited with status %d", w->exit_status);
        else
                snprintf(buf, size, "killed by signal %s%s%s", signal_to_string(w->exit_status) ?: "?",
                         w->exit_code == CLD_DUMPED ? " (core dumped)" : "",
                         w->oom_killed ? " (the OOM killer, its cgroup's memory limit)" : "");
        return buf;
}

void worker_log_fields(LogFields *f, const Worker *w) {
        log_fields_add(f, "WORKER_PID=%d", (int) w->pid);
        log_fields_add(f, "WORKER_SLOT=%u", w->slot);
        log_fields_add(f, "WORKER_GENERATION=%u", w->generation->number);
}

Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->timer_source);
        sd_event_source_disable_unref(w->watchdog_source);
        sd_event_source_disable_unref(w->status_source);
        /* The watch goes before the leaf: freeing the leaf closes the fd it watches. */
        sd_event_source_disable_unref(w->events_source);
        /* Kills and reaps a process still there. */
        sd_event_source_disable_unref(w->child_source);
        worker_output_free(w->output);
        if (w->kill_left)
                (void) cgroup_worker_kill_left(w->cgroup);
        cgroup_worker_free(w->cgroup);
        generation_unref(w->generation);
        worker_unlink(w);
        free(w);
        return NULL;
}
