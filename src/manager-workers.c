/* SPDX-License-Identifier: MIT */
/* Manager: its workers — starting and stopping them as plans say, what happens to them (exec results,
 * readiness, exits and their verdicts, ready and stop timeouts, watchdogs), the notifications they send,
 * and sampling them for the recycling policy. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "manager-internal.h"
#include "message-ids.h"
#include "reaper.h"

/* The pool's record of w, or NULL once the pool forgot it (after it exited). */
static PoolWorker *manager_record(Manager *m, const Worker *w) {
        return pool_find_worker(m->pool, w->slot, w->id);
}

static Generation *manager_generation(Manager *m, unsigned number) {
        if (m->target && m->target->number == number)
                return m->target;
        if (m->stable && m->stable->number == number)
                return m->stable;
        return NULL;
}

Worker *manager_find_worker(Manager *m, uint64_t id) {
        for (Worker *w = m->workers; w; w = w->next)
                if (w->id == id)
                        return w;
        for (Worker *w = m->gone; w; w = w->next)
                if (w->id == id)
                        return w;
        return NULL;
}

void manager_free_gone(Manager *m) {
        while (m->gone)
                worker_free(m->gone);
}

void manager_kill_workers(Manager *m) {
        for (Worker *w = m->workers; w; w = w->next)
                worker_kill(w);
}

/* Every process a child source waits for: the workers (also those being freed) and the sentinel. */
static int manager_keep_children(void *userdata, pid_t **ret) {
        Manager *m = userdata;
        size_t n = 0, max = 1;
        pid_t *keep, pid;

        for (Worker *w = m->workers; w; w = w->next)
                max++;
        for (Worker *w = m->gone; w; w = w->next)
                max++;
        keep = malloc(max * sizeof(pid_t));
        if (!keep)
                return -ENOMEM;
        for (Worker *w = m->workers; w; w = w->next)
                keep[n++] = w->pid;
        for (Worker *w = m->gone; w; w = w->next)
                keep[n++] = w->pid;
        /* The sentinel's, while its source has to reap it. */
        if (m->upgrade_sentinel && sd_event_source_get_child_pid(m->upgrade_sentinel, &pid) >= 0)
                keep[n++] = pid;
        reaper_sort(keep, n);
        *ret = keep;
        return (int) n;
}

void manager_reap_orphans(Manager *m) {
        unsigned reaped;
        int r;

        r = reaper_reap(manager_keep_children, m, &reaped);
        if (r == -ENOMEM)
                log_oom(); /* the next SIGCHLD tries again */
        else if (r < 0)
                log_debug_errno(r, "Failed to reap orphans: %m");
        m->counters.orphans_reaped += reaped;
}

/* ---- verdicts ---- */

/* Logs what the pool decided about a worker that is gone or failed (throttled, disabled). A roll it
 * aborted is reported by the next plan. */
static void manager_log_verdict(Manager *m, const Worker *w, PoolVerdict v, usec_t delay) {
        char t[FORMAT_USEC_MAX];
        LogFields f = {};

        worker_log_fields(&f, w);
        switch (v) {
        case POOL_VERDICT_THROTTLED:
                log_fields_add(&f, "RESTART_DELAY_USEC=%llu", (unsigned long long) delay);
                log_event(LOG_WARNING, MESSAGE_ID_WORKER_THROTTLED, &f, "slot %u: respawning in %s", w->slot,
                          format_usec(t, sizeof t, delay));
                break;
        case POOL_VERDICT_DISABLED:
                log_event(LOG_ERR, MESSAGE_ID_WORKER_DISABLED, &f,
                          "slot %u: exit status %d is RestartPreventExitStatus=, not restarting it", w->slot,
                          pool_config(m->pool)->prevent_exit_status);
                break;
        default:
                break;
        }
}

/* Reports to the pool that w is gone; its record is freed, w waits on the gone list for the end of the
 * dispatch. */
static void manager_report_exit(Manager *m, Worker *w, PoolWorker *pw) {
        PoolExit e = { .code = w->exit_code, .status = w->exit_status };
        usec_t delay = 0;
        PoolVerdict v;

        worker_move(w, &m->gone);
        if (!pw)
                return;
        v = pool_worker_exited(m->pool, pw, &e, now_usec(CLOCK_MONOTONIC), &delay);
        manager_log_verdict(m, w, v, delay);
}

/* ---- plan actions ---- */

/* While the fd table is full every spawn fails alike, a thousand slots at a time: say it once per 10 s,
 * with how many were not said. Returns whether to log this one; other errors always are. */
static bool manager_log_spawn_error(Manager *m, int r) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (r != -EMFILE && r != -ENFILE)
                return true;
        if (m->fd_error_logged_usec != 0 && now - m->fd_error_logged_usec < 10 * USEC_PER_SEC) {
                m->fd_errors_unlogged++;
                return false;
        }
        if (m->fd_errors_unlogged > 0)
                log_warning("%u more spawn errors for lack of file descriptors in the last 10 s",
                            m->fd_errors_unlogged);
        m->fd_error_logged_usec = now;
        m->fd_errors_unlogged = 0;
        return true;
}

static void manager_on_worker_event(Worker *w, const WorkerEvent *ev, void *userdata);
static void manager_note_worker_uids(Manager *m, const Generation *g);

/* Memory limits are worth having, not worth refusing a worker for; a failure is said once. */
static void manager_set_memory_limits(Manager *m, Worker *w) {
        const Config *c = w->generation->config;
        int r;

        if (!w->cgroup || (c->cgroup_memory_high == UINT64_MAX && c->cgroup_memory_max == UINT64_MAX))
                return;
        r = cgroup_worker_set_memory_limits(w->cgroup, c->cgroup_memory_high, c->cgroup_memory_max);
        if (r == 0 || m->memory_limits_warned)
                return;
        m->memory_limits_warned = true;
        if (r == 1)
                log_warning("MemoryHigh= needs cgroup v2; only MemoryLimit= applies here");
        else
                log_warning_errno(r, "MemoryHigh=/MemoryLimit= not applied: %m");
}

static int manager_start_worker(Manager *m, Worker *w) {
        const Generation *g = w->generation;
        _cleanup_strv_free_ char **envp = NULL;
        WorkerEnvParams ep = {
                .n_fds = (unsigned) m->sockets.n,
                .fd_names = m->fd_names,
                .notify_socket = notify_socket_address(m->notify),
                .index = w->slot,
                .generation = g->number,
                .count = pool_config(m->pool)->count,
                .corral_pid = m->pid,
                .watchdog_usec = g->config->worker_watchdog_usec,
                .environment = g->environment,
        };
        SpawnParams sp = {
                .path = g->exec_path,
                .argv = g->config->exec_start,
                .fds = m->fds,
                .n_fds = m->sockets.n,
                .nofile_soft = m->params.nofile_soft,
                .working_directory = g->working_directory,
                .credentials = &g->credentials,
        };

        _cleanup_(worker_output_freep) WorkerOutput *output = NULL;
        int r;

        r = env_build(environ, &ep, &envp, &sp.pid_entries);
        if (r < 0)
                return r;
        sp.envp = envp;
        if (m->slot_sockets) {
                /* The slot's own sockets, the same for every worker of the slot. */
                r = slot_sockets_get(m->slot_sockets, w->slot, &sp.fds);
                if (r < 0)
                        return log_warning_errno(r, "Failed to bind the sockets of slot %u: %m", w->slot);
        }
        manager_set_memory_limits(m, w);
        manager_note_worker_uids(m, g);
        output = manager_worker_output(m, w);
        sp.output_fds = output ? output->child_fds : NULL;
        r = worker_start(w, m->event, &sp, (double) random() / ((double) RAND_MAX + 1.0));
        if (r < 0 || !output)
                return r;
        (void) worker_output_started(output, m->event, PRIORITY_OUTPUT, w->slot, w->pid);
        w->output = TAKE_PTR(output);
        return 0;
}

/* A worker object on the manager's list, not started: its leaf cw (taken, may be NULL). */
static int manager_new_worker(Manager *m, unsigned slot, uint64_t id, Generation *g, CgroupWorker *cw, Worker **ret) {
        return worker_new(&(WorkerParams) {
                                  .id = id,
                                  .slot = slot,
                                  .generation = g,
                                  .cgroup = cw,
                                  .child_priority = PRIORITY_CHILD,
                                  .timer_priority = PRIORITY_TIMER,
                                  .handler = manager_on_worker_event,
                                  .userdata = m,
                          },
                          &m->workers, ret);
}

int manager_spawn_worker(Manager *m, PoolWorker *pw) {
        Generation *g = manager_generation(m, pw->generation);
        CgroupWorker *cw = NULL;
        Worker *w;
        LogFields f = {};
        int r;

        if (!g) {
                /* The pool only spawns its target or, rolling back, its stable generation. */
                log_error("no configuration for generation %u, not starting worker %u", pw->generation, pw->slot);
                (void) pool_worker_exited(m->pool, pw, &(PoolExit) {}, now_usec(CLOCK_MONOTONIC), NULL);
                return -ESRCH;
        }

        /* Accounting is worth having, not worth refusing a worker for: without its leaf the worker runs
         * uncounted (logged), never not at all. */
        if (m->cgroups) {
                r = cgroup_worker_new(m->cgroups, pw->slot, pw->id, &cw);
                if (r < 0 && manager_log_spawn_error(m, r))
                        log_warning_errno(r, "Failed to create the cgroup of worker %u, running it without: %m",
                                          pw->slot);
        }
        r = manager_new_worker(m, pw->slot, pw->id, g, cw, &w);
        if (r < 0) {
                log_oom();
                (void) pool_worker_exited(m->pool, pw, &(PoolExit) {}, now_usec(CLOCK_MONOTONIC), NULL);
                return r;
        }

        r = manager_start_worker(m, w);
        if (r < 0) {
                if (manager_log_spawn_error(m, r))
                        log_error_errno(r, "Failed to start worker %u: %m", w->slot);
                manager_report_exit(m, w, pw);
                return r;
        }
        pw->process = w;
        worker_log_fields(&f, w);
        log_event(LOG_INFO, MESSAGE_ID_WORKER_STARTED, &f, "worker %u (pid %d, generation %u) started", w->slot,
                  (int) w->pid, g->number);
        return 0;
}

int manager_adopt_worker(Manager *m, PoolWorker *pw, Generation *g, const UpgradeWorker *uw) {
        CgroupWorker *cw = NULL;
        Worker *w;
        int r;

        /* Its leaf has its name: the same slot and id. Missing (accounting changed under us), it runs on
         * uncounted, like a worker whose leaf could not be made. */
        if (m->cgroups) {
                r = cgroup_worker_adopt(m->cgroups, uw->slot, uw->id, uw->pid, &cw);
                if (r < 0)
                        log_warning_errno(r, "Failed to find the cgroup of worker %u (pid %d), running it without: %m",
                                          uw->slot, (int) uw->pid);
        }
        r = manager_new_worker(m, uw->slot, uw->id, g, cw, &w);
        if (r < 0) {
                safe_close(uw->pidfd);
                return log_oom();
        }
        r = worker_adopt(w, m->event, uw->pid, uw->pidfd, uw->started_usec, &uw->recycle, uw->watchdog_usec);
        if (r < 0) {
                safe_close(uw->output_fds[0]);
                safe_close(uw->output_fds[1]);
                worker_free(w);
                return log_error_errno(r, "Failed to watch worker %u (pid %d) again: %m", uw->slot, (int) uw->pid);
        }
        pw->process = w;
        if (uw->output_fds[0] >= 0) {
                w->output = manager_worker_output_adopt(m, w, uw->output_fds);
                if (!w->output) {
                        safe_close(uw->output_fds[0]);
                        safe_close(uw->output_fds[1]);
                } else
                        (void) worker_output_started(w->output, m->event, PRIORITY_OUTPUT, w->slot, w->pid);
        }
        return 0;
}

void manager_stop_worker(Manager *m, PoolWorker *pw) {
        Worker *w = pw->process;

        /* A record no process was started for has nothing to wait for: it is gone now, or the pool would
         * wait for its exit forever. */
        if (!w) {
                (void) pool_worker_exited(m->pool, pw, &(PoolExit) {}, now_usec(CLOCK_MONOTONIC), NULL);
                return;
        }
        log_debug("stopping worker %u (pid %d): %s", w->slot, (int) w->pid, stop_reason_to_string(pw->stop_reason));
        if (m->term_signals > 1 || worker_stop(w) < 0)
                worker_kill(w);
}

/* ---- worker events ---- */

static void manager_worker_ready(Manager *m, Worker *w, PoolWorker *pw) {
        char t[FORMAT_USEC_MAX];
        LogFields f = {};

        if (!pw || pw->state != WORKER_STARTING)
                return;
        pool_worker_ready(m->pool, pw, now_usec(CLOCK_MONOTONIC));
        worker_ready(w);
        (void) worker_watchdog_ping(w);
        worker_log_fields(&f, w);
        log_event(LOG_INFO, MESSAGE_ID_WORKER_READY, &f, "worker %u (pid %d) ready after %s", w->slot, (int) w->pid,
                  format_usec(t, sizeof t, now_usec(CLOCK_MONOTONIC) - w->started_usec));
}

static void manager_worker_gone(Manager *m, Worker *w, PoolWorker *pw) {
        char how[160], t[FORMAT_USEC_MAX];
        usec_t now = now_usec(CLOCK_MONOTONIC);
        bool expected, was_ready;
        LogFields f = {};

        if (!pw) {
                worker_move(w, &m->gone);
                return;
        }
        expected = pw->state == WORKER_STOPPING || pool_is_stopping(m->pool);
        was_ready = pw->state == WORKER_READY;
        worker_describe_exit(w, how, sizeof how);
        worker_log_fields(&f, w);
        log_fields_add(&f, "EXIT_CODE=%s", w->exit_code == CLD_EXITED ? "exited" :
                                           w->exit_code == CLD_DUMPED ? "dumped" : "killed");
        log_fields_add(&f, "EXIT_STATUS=%d", w->exit_status);
        log_fields_add(&f, "UPTIME_USEC=%llu", (unsigned long long) (now - w->started_usec));
        if (expected)
                log_event(LOG_INFO, MESSAGE_ID_WORKER_EXITED, &f, "worker %u (pid %d) %s", w->slot, (int) w->pid, how);
        else {
                log_event(LOG_WARNING, MESSAGE_ID_WORKER_CRASHED, &f, "worker %u (pid %d) %s after %s%s", w->slot,
                          (int) w->pid, how, format_usec(t, sizeof t, now - w->started_usec),
                          was_ready ? "" : ", before it was ready");
                if (was_ready)
                        m->counters.crashes++;
                else
                        m->counters.failed_starts++;
        }
        manager_report_exit(m, w, pw);
}

static void manager_worker_timed_out(Manager *m, Worker *w, PoolWorker *pw) {
        char t[FORMAT_USEC_MAX];
        usec_t delay = 0;
        PoolVerdict v;
        LogFields f = {};

        if (!pw || pw->state != WORKER_STARTING)
                return;
        worker_log_fields(&f, w);
        log_fields_add(&f, "REASON=ready-timeout");
        log_event(LOG_WARNING, MESSAGE_ID_WORKER_START_FAILED, &f, "worker %u (pid %d) not ready after %s, stopping it",
                  w->slot, (int) w->pid, format_usec(t, sizeof t, w->generation->config->ready_timeout_usec));
        m->counters.failed_starts++;
        v = pool_worker_failed(m->pool, pw, now_usec(CLOCK_MONOTONIC), &delay);
        manager_log_verdict(m, w, v, delay);
}

static void manager_worker_watchdog(Manager *m, Worker *w, PoolWorker *pw) {
        char t[FORMAT_USEC_MAX];
        LogFields f = {};

        if (!pw || pw->state != WORKER_READY)
                return;
        worker_log_fields(&f, w);
        log_fields_add(&f, "REASON=watchdog");
        log_event(LOG_WARNING, MESSAGE_ID_WORKER_WATCHDOG, &f,
                  "worker %u (pid %d) sent no WATCHDOG=1 for %s, replacing it and aborting it", w->slot, (int) w->pid,
                  format_usec(t, sizeof t, w->generation->config->worker_watchdog_usec));
        /* Start-first like a recycle; SIGABRT once the replacement serves, for a core dump. */
        w->abort_on_stop = true;
        m->counters.recycles[RECYCLE_WATCHDOG]++;
        pool_worker_recycle(m->pool, pw);
}

static void manager_sample_worker(Manager *m, Worker *w, PoolWorker *pw);

static void manager_on_worker_event(Worker *w, const WorkerEvent *ev, void *userdata) {
        Manager *m = userdata;
        PoolWorker *pw = manager_record(m, w);
        char t[FORMAT_USEC_MAX];
        LogFields f = {};

        switch (ev->type) {
        case WORKER_EVENT_EXEC_OK:
                if (w->generation->config->ready_mode == READY_EXEC)
                        manager_worker_ready(m, w, pw);
                break;
        case WORKER_EVENT_EXEC_FAILED:
                if (!pw)
                        break;
                worker_log_fields(&f, w);
                log_fields_add(&f, "REASON=spawn-%s", spawn_stage_to_string(ev->error.stage) ?: "unknown");
                log_fields_add(&f, "ERRNO=%d", ev->error.error);
                errno = ev->error.error;
                log_event(LOG_ERR, MESSAGE_ID_WORKER_START_FAILED, &f, "worker %u (pid %d) failed at stage '%s': %m",
                          w->slot, (int) w->pid, spawn_stage_to_string(ev->error.stage) ?: "unknown");
                break;
        case WORKER_EVENT_EXITED:
                manager_worker_gone(m, w, pw);
                break;
        case WORKER_EVENT_READY_TIMEOUT:
                manager_worker_timed_out(m, w, pw);
                break;
        case WORKER_EVENT_READY_DELAY:
                manager_worker_ready(m, w, pw);
                break;
        case WORKER_EVENT_WATCHDOG:
                manager_worker_watchdog(m, w, pw);
                break;
        case WORKER_EVENT_KILLED:
                if (!pw)
                        break;
                worker_log_fields(&f, w);
                log_event(LOG_WARNING, MESSAGE_ID_WORKER_KILLED, &f,
                          "worker %u (pid %d) did not stop within %s, killed it", w->slot, (int) w->pid,
                          format_usec(t, sizeof t, w->generation->config->stop_timeout_usec));
                break;
        case WORKER_EVENT_MEMORY:
                /* Only this worker's events changed: only it is sampled. */
                manager_sample_worker(m, w, pw);
                break;
        }
}

/* ---- notifications ---- */

/* At most this many notifiers per window are traced through /proc (a parent walk and a cgroup lookup: ~70 us
 * each) to find their worker; past that, a datagram from a pid that is not a worker's is dropped unread. A
 * flood from a process of the workers' own uid thus costs a bounded share of a core, and the workers' own
 * datagrams, found by their pid, are never held up. Helpers below a worker notify rarely. */
#define NOTIFY_TRACE_WINDOW_USEC (100 * USEC_PER_MSEC)
#define NOTIFY_TRACE_BURST 100

static void manager_add_worker_uid(Manager *m, uid_t uid) {
        for (unsigned k = 0; k < m->n_worker_uids; k++)
                if (m->worker_uids[k] == uid)
                        return;
        if (m->n_worker_uids < ELEMENTSOF(m->worker_uids))
                m->worker_uids[m->n_worker_uids++] = uid;
}

/* The uids a worker about to start runs as join the set a notification may come from: corral's own (a
 * worker inherits its real uid, which the kernel stamps on its datagrams, and its effective one, which a
 * sender may claim instead), or its generation's User=. Reloads that change User= time and again would
 * fill the set: then it is made anew from the workers still running. */
static void manager_note_worker_uids(Manager *m, const Generation *g) {
        const uid_t uids[] = { getuid(), geteuid(), g->credentials.uid };

        if (m->n_worker_uids + ELEMENTSOF(uids) > ELEMENTSOF(m->worker_uids)) {
                m->n_worker_uids = 0;
                for (Worker *w = m->workers; w; w = w->next)
                        if (w->generation->credentials.set && !w->exited)
                                manager_add_worker_uid(m, w->generation->credentials.uid);
        }
        for (size_t i = 0; i < ELEMENTSOF(uids) - !g->credentials.set; i++)
                manager_add_worker_uid(m, uids[i]);
}

static bool manager_is_worker_uid(const Manager *m, uid_t uid) {
        for (unsigned k = 0; k < m->n_worker_uids; k++)
                if (m->worker_uids[k] == uid)
                        return true;
        return false;
}

static Worker *manager_find_pid(Manager *m, pid_t pid) {
        for (Worker *w = m->workers; w; w = w->next)
                if (w->pid == pid && !w->exited)
                        return w;
        return NULL;
}

/* Whether one more notifier may be traced through /proc in this window. */
static bool manager_trace_allowed(Manager *m, usec_t now) {
        if (now - m->trace_window_usec >= NOTIFY_TRACE_WINDOW_USEC) {
                m->trace_window_usec = now;
                m->trace_window_count = 0;
        }
        if (m->trace_window_count >= NOTIFY_TRACE_BURST)
                return false;
        m->trace_window_count++;
        return true;
}

/* A datagram from a worker, from any process below it or from any process in its cgroup counts for that
 * worker, as NotifyAccess=all does for a unit: a Node worker can only notify through a child
 * (systemd-notify --ready), and a helper that double-forked is no longer below its worker. The cheap checks
 * come first, so that a flood from a stranger costs a comparison per datagram: a uid no worker runs as
 * cannot be a worker's, a worker's own pid needs no search; only then, within the budget, the walk up the
 * sender's parents (depth 16) and the lookup of its cgroup. Returns the worker, or NULL and why not. */
static Worker *manager_attribute(Manager *m, const struct ucred *sender, usec_t now, const char **ret_why) {
        CgroupWorker *cw;
        pid_t pid = sender->pid;
        Worker *w;

        if (!manager_is_worker_uid(m, sender->uid)) {
                *ret_why = "from a uid no worker runs as";
                return NULL;
        }
        w = manager_find_pid(m, pid);
        if (w)
                return w;
        if (!manager_trace_allowed(m, now)) {
                m->untraced++;
                *ret_why = "not a worker's pid, and too many such to trace";
                return NULL;
        }
        for (unsigned depth = 0; depth < 16 && pid > 1 && pid != m->pid; depth++) {
                w = manager_find_pid(m, pid);
                if (w)
                        return w;
                if (cgroup_manager_get_ppid(m->cgroups, pid, &pid) < 0)
                        break;
        }
        cw = cgroup_manager_find_pid(m->cgroups, sender->pid);
        for (w = m->workers; cw && w; w = w->next)
                if (w->cgroup == cw)
                        return w;
        *ret_why = "not a worker";
        return NULL;
}

void manager_on_worker_notify(NotifySocket *n, const struct ucred *sender, const NotifyMessage *msg,
                              void *userdata) {
        Manager *m = userdata;
        usec_t now = now_usec(CLOCK_MONOTONIC);
        const char *why = "malformed, too long or without credentials";
        Worker *w = msg ? manager_attribute(m, sender, now, &why) : NULL;
        PoolWorker *pw = w ? manager_record(m, w) : NULL;

        if (!msg || !pw) {
                /* notify.c counted a malformed one already; one from a stranger is counted here. */
                uint64_t total = msg ? notify_socket_reject(n) : notify_socket_rejected(n);
                pid_t pid = sender ? sender->pid : 0;

                /* Log at most one every 10 s: a flood must not flood the journal. */
                if (now - m->reject_logged_usec >= 10 * USEC_PER_SEC || m->reject_logged_usec == 0) {
                        LogFields f = {};
                        m->reject_logged_usec = now;
                        log_fields_add(&f, "SENDER_PID=%d", (int) pid);
                        if (sender)
                                log_fields_add(&f, "SENDER_UID=%u", (unsigned) sender->uid);
                        log_fields_add(&f, "REJECTED_TOTAL=%llu", (unsigned long long) total);
                        log_fields_add(&f, "UNTRACED_TOTAL=%llu", (unsigned long long) m->untraced);
                        log_event(LOG_WARNING, MESSAGE_ID_NOTIFY_REJECTED, &f,
                                  "dropped a notification from pid %d: %s (%llu dropped so far)", (int) pid,
                                  w ? "not a worker" : why, (unsigned long long) total);
                }
                return;
        }
        if (msg->status)
                log_debug("worker %u (pid %d) status: %s", w->slot, (int) w->pid, msg->status);
        if (msg->ready)
                manager_worker_ready(m, w, pw);
        if (msg->watchdog && pw->state == WORKER_READY && !w->abort_on_stop)
                (void) worker_watchdog_ping(w);
        if (msg->recycle && pw->state == WORKER_READY) {
                log_info("worker %u (pid %d) asked to be recycled", w->slot, (int) w->pid);
                m->counters.recycles[RECYCLE_REQUEST]++;
                pool_worker_recycle(m->pool, pw);
        }
}

/* ---- sampling ---- */

/* "512.0M", "97%", "1d 2h", "1" for the recycle event's value and limit. */
static const char *format_recycle_value(char *buf, size_t size, RecycleReason r, uint64_t v) {
        switch (r) {
        case RECYCLE_MEMORY:
                return format_bytes(buf, size, v);
        case RECYCLE_CPU:
                snprintf(buf, size, "%llu%%", (unsigned long long) v);
                return buf;
        case RECYCLE_AGE:
                return format_usec(buf, size, v);
        default:
                snprintf(buf, size, "%llu", (unsigned long long) v);
                return buf;
        }
}

int manager_read_accounting(PoolWorker *pw, CgroupSample *ret) {
        Worker *w = pw->process;
        int r;

        if (!w)
                return 0;
        r = worker_sample(w, ret);
        if (r < 0)
                log_debug_errno(r, "Failed to sample worker %u (pid %d): %m", w->slot, (int) w->pid);
        if (r <= 0)
                return r; /* gone between the exit and its event, or unreadable for now */
        if (ret->flags & CGROUP_SAMPLE_MEMORY_CURRENT)
                pw->memory_bytes = ret->memory_current;
        if (ret->flags & CGROUP_SAMPLE_CPU_USAGE)
                pw->cpu_usec = ret->cpu_usage_usec;
        return 1;
}

/* Samples one worker and feeds the recycling policy, which may ask the pool to replace it. The policy is
 * the target generation's: a reload that tightens a limit applies it to the workers it is replacing. */
static void manager_sample_worker(Manager *m, Worker *w, PoolWorker *pw) {
        RecyclePolicy policy = generation_recycle_policy(m->target);
        RecycleSample rs = { .at = now_usec(CLOCK_MONOTONIC) };
        char a[FORMAT_USEC_MAX], b[FORMAT_USEC_MAX], what[2 * FORMAT_USEC_MAX + 64];
        uint64_t value = 0, limit = 0;
        RecycleReason reason;
        CgroupSample cs;
        LogFields f = {};

        /* PSS is read afresh for a worker resident near the limit it is judged by: the verdicts stay exact. */
        cgroup_manager_set_pss_exact_from(m->cgroups, policy.memory_max);
        if (!pw || manager_read_accounting(pw, &cs) <= 0)
                return;
        /* A worker caught between fork and exec may have nothing charged yet: not a figure to show. */
        if (pw->memory_bytes > 0)
                pw->sampled = true;
        rs.memory = pw->memory_bytes;
        rs.memory_valid = cs.flags & CGROUP_SAMPLE_MEMORY_CURRENT;
        rs.cpu_usec = pw->cpu_usec;
        rs.cpu_valid = cs.flags & CGROUP_SAMPLE_CPU_USAGE;
        rs.oom_kills = cs.events_oom_kill;
        rs.oom_valid = cs.flags & CGROUP_SAMPLE_EVENTS_OOM_KILL;

        reason = recycle_check(&w->recycle, &policy, &rs, &value, &limit);
        /* Asked once is enough; a starting worker is judged once it serves. */
        if (reason == RECYCLE_NONE || pw->state != WORKER_READY || pw->recycle || w->abort_on_stop)
                return;

        worker_log_fields(&f, w);
        log_fields_add(&f, "REASON=%s", recycle_reason_to_string(reason));
        log_fields_add(&f, "VALUE=%llu", (unsigned long long) value);
        log_fields_add(&f, "LIMIT=%llu", (unsigned long long) limit);
        log_fields_add(&f, "MEMORY_CURRENT=%llu", (unsigned long long) pw->memory_bytes);
        log_fields_add(&f, "CPU_USAGE_USEC=%llu", (unsigned long long) pw->cpu_usec);
        if (reason == RECYCLE_OOM) /* a count, with no limit */
                snprintf(what, sizeof what, "oom, %llu process(es) of its cgroup killed by the OOM killer",
                         (unsigned long long) value);
        else
                snprintf(what, sizeof what, "%s %s, limit %s", recycle_reason_to_string(reason),
                         format_recycle_value(a, sizeof a, reason, value),
                         format_recycle_value(b, sizeof b, reason, limit));
        log_event(LOG_NOTICE, MESSAGE_ID_WORKER_RECYCLED, &f, "worker %u (pid %d) is recycled: %s", w->slot,
                  (int) w->pid, what);
        m->counters.recycles[reason]++;
        pool_worker_recycle(m->pool, pw);
}

/* At the start of a pass: the sampling files may be kept open on the fds that the pool, at its largest, will
 * not need. Its workers' fds are open already (below); what stays free is the room for the rest of its
 * largest (MaxSurge= more workers, corral's own connections), and GENERATION_FD_RESERVE once more in case
 * the per-worker figure falls short of the real one. */
static void manager_sample_keep_files(Manager *m) {
        unsigned per_worker = cgroup_manager_fds_per_worker(m->cgroups);
        uint64_t limit = nofile_limit(), need, held;
        PoolCounts c;

        if (!m->cgroups)
                return;
        pool_counts(m->pool, &c);
        need = generation_fds_needed(m->target, m->ncpus, per_worker) + GENERATION_FD_RESERVE;
        held = (uint64_t) c.workers * per_worker;
        cgroup_manager_set_keep_below(m->cgroups, limit + held > need ? limit + held - need : 0);
}

static int compare_slots(const void *a, const void *b) {
        const PoolWorker *x = *(PoolWorker *const *) a, *y = *(PoolWorker *const *) b;

        return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* The records of slots [first, end) with a process, in slot order, into m->sample_batch (the pool's list is in
 * spawn order: respawns and recycles go to its tail). Sets *more when a record lies beyond. Returns their
 * number, or -ENOMEM. */
static int manager_sample_collect(Manager *m, unsigned first, unsigned end, bool *more) {
        size_t n = 0;

        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next) {
                if (!pw->process || pw->slot < first)
                        continue;
                if (pw->slot >= end) {
                        *more = true;
                        continue;
                }
                if (n == m->sample_batch_size) {
                        size_t size = MAX(2 * m->sample_batch_size, 64U);
                        PoolWorker **b = reallocarray(m->sample_batch, size, sizeof(PoolWorker *));

                        if (!b)
                                return -ENOMEM;
                        m->sample_batch = b;
                        m->sample_batch_size = size;
                }
                m->sample_batch[n++] = pw;
        }
        qsort(m->sample_batch, n, sizeof(PoolWorker *), compare_slots);
        return (int) n;
}

bool manager_sample(Manager *m) {
        unsigned first = m->sample_next_slot, slots = m->sample_batch_slots ?: SAMPLE_BATCH_SLOTS_FIRST;
        unsigned end = first + slots;
        usec_t start = now_usec(CLOCK_MONOTONIC), took;
        bool more = false;
        int n;

        if (first == 0)
                manager_sample_keep_files(m);
        n = manager_sample_collect(m, first, end, &more);
        if (n < 0) {
                log_oom(); /* the pass goes on at the next tick */
                return false;
        }
        for (int i = 0; i < n; i++) {
                PoolWorker *pw = m->sample_batch[i];

                /* A batch dearer than the last one's pace said (PSS due for many workers at once, the orphans
                 * looked at again) ends once it has run SAMPLE_BATCH_USEC, after the slot it is in: the next
                 * batch starts at the next slot, so no worker is sampled twice in a pass. */
                if (pw->slot >= end) {
                        more = true;
                        break;
                }
                manager_sample_worker(m, pw->process, pw);
                if (end > pw->slot + 1 && now_usec(CLOCK_MONOTONIC) - start >= SAMPLE_BATCH_USEC)
                        end = pw->slot + 1;
        }
        if (!more)
                (void) cgroup_manager_gc(m->cgroups);

        took = now_usec(CLOCK_MONOTONIC) - start;
        /* The next batch at this one's pace: as many slots as take about SAMPLE_BATCH_USEC. */
        m->sample_batch_slots = (unsigned) CLAMP((uint64_t) (end - first) * SAMPLE_BATCH_USEC / MAX(took, 1U),
                                                 (uint64_t) SAMPLE_BATCH_SLOTS_MIN,
                                                 (uint64_t) SAMPLE_BATCH_SLOTS_MAX);
        m->sample_pass.busy_usec += took;
        m->sample_pass.longest_usec = MAX(m->sample_pass.longest_usec, took);
        m->sample_pass.batches++;
        if (more) {
                m->sample_next_slot = end;
                return true;
        }
        m->sample_last = m->sample_pass;
        m->sample_pass = (SamplePass) {};
        m->sample_next_slot = 0;
        return false;
}

void manager_update_slot_sockets(Manager *m) {
        unsigned count = pool_config(m->pool)->count, n;
        _cleanup_free_ bool *used = NULL, *ready = NULL;
        int r;

        if (!m->slot_sockets)
                return;
        n = MAX(slot_sockets_n(m->slot_sockets), 1U);
        used = calloc(n, sizeof(bool));
        ready = calloc(n, sizeof(bool));
        if (!used || !ready)
                return;
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                if (pw->slot < n) {
                        used[pw->slot] = true;
                        ready[pw->slot] = ready[pw->slot] || pw->state == WORKER_READY;
                }
        /* Scale-down: the sockets of slots beyond Count= that no worker uses any more. */
        for (unsigned k = count; k < n; k++)
                if (!used[k])
                        slot_sockets_close(m->slot_sockets, k);
        r = slot_sockets_steer(m->slot_sockets, ready, n);
        if (r < 0)
                log_debug_errno(r, "Failed to steer new connections to the ready slots: %m");
}

