/* SPDX-License-Identifier: MIT */
/* Worker process mechanics: pidfd child source, exec status pipe, one timer, stop and kill. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker.h"

static void worker_emit(Worker *w, const WorkerEvent *ev) {
        w->handler(w, ev, w->userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;
        WorkerEvent ev = { .type = w->timer_event };

        if (w->timer_event == WORKER_EVENT_KILLED)
                worker_kill(w);
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

int worker_watchdog_ping(Worker *w, usec_t usec) {
        int r;

        if (w->exited || usec == 0)
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
        if (w->ready_delay_usec != USEC_INFINITY && !w->exited)
                (void) worker_arm_timer(w, WORKER_EVENT_READY_DELAY, w->ready_delay_usec);
        ev.type = WORKER_EVENT_EXEC_OK;
        worker_emit(w, &ev);
        return true;
}

static int on_status(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) worker_check_status(userdata);
        return 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Worker *w = userdata;
        WorkerEvent ev = { .type = WORKER_EVENT_EXITED, .siginfo = si };

        /* Child exits are dispatched first: read what the child wrote before it exited, so an exec
         * failure is reported before the exit it caused. */
        if (!w->exec_done && w->status_source)
                (void) worker_check_status(w);
        w->exec_done = true;
        w->status_source = sd_event_source_disable_unref(w->status_source);

        /* Until this callback returns the worker is an unreaped zombie, so its pid (which is also its
         * process group id, it called setsid()) cannot be reused: killing the group now cannot hit a
         * stranger. This takes down whatever it left behind in its session. */
        (void) kill(-w->pid, SIGKILL);

        w->exited = true;
        worker_disarm_timer(w);
        (void) sd_event_source_set_enabled(w->watchdog_source, SD_EVENT_OFF);
        worker_emit(w, &ev);
        return 0;
}

int worker_start(sd_event *e, const WorkerStartParams *p, PoolWorker *pw, Worker **ret) {
        _cleanup_close_ int pidfd = -EBADF, status_fd = -EBADF;
        Worker *w;
        int r;

        w = calloc(1, sizeof(Worker));
        if (!w)
                return -ENOMEM;
        w->pool_worker = pw;
        w->handler = p->handler;
        w->userdata = p->userdata;
        w->ready_delay_usec = p->ready_delay_usec;

        r = spawn_worker(p->spawn, &w->pid, &pidfd, &status_fd);
        if (r < 0) {
                free(w);
                return r;
        }
        w->started_usec = now_usec(CLOCK_MONOTONIC);

        r = sd_event_add_child_pidfd(e, &w->child_source, pidfd, WEXITED, on_child, w);
        if (r < 0)
                goto fail;
        TAKE_FD(pidfd);
        (void) sd_event_source_set_child_pidfd_own(w->child_source, true);
        (void) sd_event_source_set_child_process_own(w->child_source, true);
        (void) sd_event_source_set_priority(w->child_source, p->child_priority);
        (void) sd_event_source_set_description(w->child_source, "worker-exit");

        r = sd_event_add_io(e, &w->status_source, status_fd, EPOLLIN, on_status, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_io_fd_own(w->status_source, true);
        TAKE_FD(status_fd);
        (void) sd_event_source_set_description(w->status_source, "worker-exec-status");

        r = sd_event_add_time(e, &w->timer_source, CLOCK_MONOTONIC, USEC_INFINITY, 0, on_timer, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_priority(w->timer_source, p->timer_priority);
        (void) sd_event_source_set_description(w->timer_source, "worker-timer");
        if (p->ready_timeout_usec != USEC_INFINITY) {
                r = worker_arm_timer(w, WORKER_EVENT_READY_TIMEOUT, p->ready_timeout_usec);
                if (r < 0)
                        goto fail;
        } else
                worker_disarm_timer(w);

        *ret = w;
        return 0;

fail:
        /* The child source, if it exists, kills and reaps the process when freed. */
        if (!w->child_source && pidfd >= 0) {
                (void) kill(w->pid, SIGKILL);
                (void) waitid(P_PIDFD, (id_t) pidfd, NULL, WEXITED);
        }
        worker_free(w);
        return r;
}

void worker_ready(Worker *w) {
        if (!w->exited && (w->timer_event == WORKER_EVENT_READY_TIMEOUT || w->timer_event == WORKER_EVENT_READY_DELAY))
                worker_disarm_timer(w);
}

int worker_signal(Worker *w, int sig) {
        int r;

        if (w->exited)
                return 0;
        r = sd_event_source_send_child_signal(w->child_source, sig, NULL, 0);
        if (r == -ESRCH)
                return 0;
        return r;
}

int worker_stop(Worker *w, int sig, usec_t timeout_usec) {
        int r;

        if (w->exited)
                return 0;
        /* A stopped process would sit on a TERM forever, so wake it first. First, not after: a CONT
         * sent after the TERM can land while the worker, acting on the TERM, is being stopped by a
         * ptrace attach of its own (a crash reporter, LeakSanitizer at exit), and a CONT discards
         * that pending stop, leaving the tracer waiting for ever. Seen in the ASan tier. */
        if (sig != SIGKILL)
                (void) worker_signal(w, SIGCONT);
        r = worker_signal(w, sig);
        (void) worker_arm_timer(w, WORKER_EVENT_KILLED, timeout_usec);
        return r;
}

void worker_kill(Worker *w) {
        if (w->exited)
                return;
        (void) worker_signal(w, SIGKILL);
        /* The worker is not reaped before its child source fires, so its process group id is still
         * pinned; see on_child(). */
        (void) kill(-w->pid, SIGKILL);
}

Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->timer_source);
        sd_event_source_disable_unref(w->watchdog_source);
        sd_event_source_disable_unref(w->events_source);
        sd_event_source_disable_unref(w->status_source);
        sd_event_source_disable_unref(w->child_source);
        free(w);
        return NULL;
}
