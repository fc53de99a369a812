/* SPDX-License-Identifier: MIT */
/* Manager: what happens to workers — exec results, readiness, exits and their verdicts, ready timeouts,
 * stop timeouts — and the notifications they send. */
#include <stdio.h>
#include <string.h>

#include "manager-internal.h"
#include "message-ids.h"

static void format_exit(char *buf, size_t size, const siginfo_t *si) {
        if (si->si_code == CLD_EXITED)
                snprintf(buf, size, "exited with status %d", si->si_status);
        else
                snprintf(buf, size, "killed by signal %s%s",
                         signal_to_string(si->si_status) ?: "?", si->si_code == CLD_DUMPED ? " (core dumped)" : "");
}

static void manager_worker_ready(Manager *m, Worker *w) {
        PoolWorker *pw = w->pool_worker;
        char t[FORMAT_USEC_MAX];
        LogFields f = {};

        if (!pw || pw->state != WORKER_STARTING)
                return;
        pool_worker_ready(m->pool, pw, now_usec(CLOCK_MONOTONIC));
        worker_ready(w);
        (void) worker_watchdog_ping(w, generation_config(m, pw->generation)->worker_watchdog_usec);
        worker_fields(&f, w, pw);
        log_event(LOG_INFO, MESSAGE_ID_WORKER_READY, &f, "worker %u (pid %d) ready after %s", pw->slot,
                  (int) w->pid, format_usec(t, sizeof t, now_usec(CLOCK_MONOTONIC) - w->started_usec));
}

void manager_log_verdict(Manager *m, Worker *w, PoolWorker *pw, PoolVerdict v, usec_t delay,
                                const char *what) {
        char t[FORMAT_USEC_MAX], why[256];
        LogFields f = {};

        worker_fields(&f, w, pw);
        switch (v) {
        case POOL_VERDICT_THROTTLED:
                log_fields_add(&f, "RESTART_DELAY_USEC=%llu", (unsigned long long) delay);
                log_event(LOG_WARNING, MESSAGE_ID_WORKER_THROTTLED, &f, "slot %u: respawning in %s", pw->slot,
                          format_usec(t, sizeof t, delay));
                break;
        case POOL_VERDICT_DISABLED:
                log_event(LOG_ERR, MESSAGE_ID_WORKER_DISABLED, &f,
                          "slot %u: exit status %d is RestartPreventExitStatus=, not restarting it", pw->slot,
                          pool_config(m->pool)->prevent_exit_status);
                break;
        case POOL_VERDICT_ROLL_ABORTED:
                snprintf(why, sizeof why, "worker %u (pid %d) of generation %u %s; keeping generation %u",
                         pw->slot, (int) w->pid, pw->generation, what, pool_generation(m->pool));
                manager_roll_aborted(m, why);
                break;
        default:
                break;
        }
}

/* Whether the OOM killer struck the worker's cgroup since its last sample: with a SIGKILL exit, most
 * likely the worker itself. Its cgroup was new when it started, so the count started at 0. */
static bool worker_new_oom_kill(Worker *w) {
        const RecycleState *r = &w->recycle;
        CgroupSample cs;

        if (!w->cgroup || cgroup_worker_sample(w->cgroup, &cs) < 0 || !(cs.flags & CGROUP_SAMPLE_EVENTS_OOM_KILL))
                return false;
        if (r->has_last && !r->last.oom_valid)
                return false;
        return cs.events_oom_kill > (r->has_last ? r->last.oom_kills : 0);
}

/* pool_worker_exited() frees the record, so verdict logging takes what it needs from a copy made first. */
static void manager_worker_gone(Manager *m, Worker *w, const siginfo_t *si) {
        PoolWorker *pw = w->pool_worker, copy;
        PoolExit e = { .code = si->si_code, .status = si->si_status };
        char how[160], t[FORMAT_USEC_MAX], what[224];
        usec_t delay = 0, now = now_usec(CLOCK_MONOTONIC);
        bool expected, was_ready;
        PoolVerdict v;
        LogFields f = {};

        w->next_dead = m->dead;
        m->dead = w;
        format_exit(how, sizeof how, si);
        if (si->si_code == CLD_KILLED && si->si_status == SIGKILL && worker_new_oom_kill(w))
                strncat(how, " (the OOM killer, its cgroup's memory limit)", sizeof how - strlen(how) - 1);
        /* Whatever the worker left in its cgroup goes with it (its session is killed in worker.c). */
        if (w->cgroup)
                (void) cgroup_worker_kill(w->cgroup);
        if (!pw)
                return;
        copy = *pw;

        expected = pw->state == WORKER_STOPPING || pool_is_stopping(m->pool);
        was_ready = pw->state == WORKER_READY;
        worker_fields(&f, w, pw);
        log_fields_add(&f, "EXIT_CODE=%s", si->si_code == CLD_EXITED ? "exited" :
                                           si->si_code == CLD_DUMPED ? "dumped" : "killed");
        log_fields_add(&f, "EXIT_STATUS=%d", si->si_status);
        log_fields_add(&f, "UPTIME_USEC=%llu", (unsigned long long) (now - w->started_usec));
        if (expected)
                log_event(LOG_INFO, MESSAGE_ID_WORKER_EXITED, &f, "worker %u (pid %d) %s", pw->slot,
                          (int) w->pid, how);
        else
                log_event(LOG_WARNING, MESSAGE_ID_WORKER_CRASHED, &f, "worker %u (pid %d) %s after %s%s", pw->slot,
                          (int) w->pid, how, format_usec(t, sizeof t, now - w->started_usec),
                          was_ready ? "" : ", before it was ready");

        if (!expected) {
                if (was_ready)
                        m->counters.crashes++;
                else
                        m->counters.failed_starts++;
        }
        v = pool_worker_exited(m->pool, pw, &e, now, &delay);
        w->pool_worker = NULL;
        snprintf(what, sizeof what, "%s%s", how, was_ready ? " soon after start" : " before it was ready");
        manager_log_verdict(m, w, &copy, v, delay, what);
}

static void manager_worker_timed_out(Manager *m, Worker *w) {
        PoolWorker *pw = w->pool_worker, copy;
        char t[FORMAT_USEC_MAX], what[160];
        usec_t delay = 0;
        PoolVerdict v;
        LogFields f = {};

        if (!pw || pw->state != WORKER_STARTING)
                return;
        copy = *pw;
        worker_fields(&f, w, pw);
        log_fields_add(&f, "REASON=ready-timeout");
        log_event(LOG_WARNING, MESSAGE_ID_WORKER_START_FAILED, &f, "worker %u (pid %d) not ready after %s, stopping it",
                  pw->slot, (int) w->pid,
                  format_usec(t, sizeof t, generation_config(m, pw->generation)->ready_timeout_usec));
        m->counters.failed_starts++;
        v = pool_worker_failed(m->pool, pw, now_usec(CLOCK_MONOTONIC), &delay);
        snprintf(what, sizeof what, "was not ready within ReadyTimeoutSec=%s", t);
        manager_log_verdict(m, w, &copy, v, delay, what);
}

void manager_on_worker_event(Worker *w, const WorkerEvent *ev, void *userdata) {
        Manager *m = userdata;
        PoolWorker *pw = w->pool_worker;
        char t[FORMAT_USEC_MAX];
        LogFields f = {};

        switch (ev->type) {
        case WORKER_EVENT_EXEC_OK:
                if (pw && generation_config(m, pw->generation)->ready_mode == READY_EXEC)
                        manager_worker_ready(m, w);
                break;
        case WORKER_EVENT_EXEC_FAILED:
                if (!pw)
                        break;
                worker_fields(&f, w, pw);
                log_fields_add(&f, "REASON=spawn-%s", spawn_stage_to_string(ev->error.stage) ?: "unknown");
                log_fields_add(&f, "ERRNO=%d", ev->error.error);
                errno = ev->error.error;
                log_event(LOG_ERR, MESSAGE_ID_WORKER_START_FAILED, &f, "worker %u (pid %d) failed at stage '%s': %m",
                          pw->slot, (int) w->pid, spawn_stage_to_string(ev->error.stage) ?: "unknown");
                break;
        case WORKER_EVENT_EXITED:
                manager_worker_gone(m, w, ev->siginfo);
                break;
        case WORKER_EVENT_READY_TIMEOUT:
                manager_worker_timed_out(m, w);
                break;
        case WORKER_EVENT_READY_DELAY:
                manager_worker_ready(m, w);
                break;
        case WORKER_EVENT_WATCHDOG:
                if (!pw || pw->state != WORKER_READY)
                        break;
                worker_fields(&f, w, pw);
                log_fields_add(&f, "REASON=watchdog");
                log_event(LOG_WARNING, MESSAGE_ID_WORKER_WATCHDOG, &f,
                          "worker %u (pid %d) sent no WATCHDOG=1 for %s, replacing it and aborting it", pw->slot,
                          (int) w->pid,
                          format_usec(t, sizeof t, generation_config(m, pw->generation)->worker_watchdog_usec));
                /* Start-first like a recycle; SIGABRT once the replacement serves, for a core dump. */
                w->abort_on_stop = true;
                m->counters.recycles[RECYCLE_WATCHDOG]++;
                pool_worker_recycle(m->pool, pw);
                break;
        case WORKER_EVENT_KILLED:
                if (w->cgroup)
                        (void) cgroup_worker_kill(w->cgroup);
                if (!pw)
                        break;
                worker_fields(&f, w, pw);
                log_event(LOG_WARNING, MESSAGE_ID_WORKER_KILLED, &f, "worker %u (pid %d) did not stop within %s, killed it",
                          pw->slot, (int) w->pid,
                          format_usec(t, sizeof t, generation_config(m, pw->generation)->stop_timeout_usec));
                break;
        }
}

static Worker *manager_find_worker(Manager *m, pid_t pid) {
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next) {
                Worker *w = pw->userdata;
                if (w && w->pid == pid)
                        return w;
        }
        return NULL;
}

/* A datagram from a worker, from any process below it or from any process in its cgroup counts for that
 * worker, as NotifyAccess=all does for a unit: a Node worker can only notify through a child
 * (systemd-notify --ready), and a helper that double-forked is no longer below its worker. */
static Worker *manager_attribute(Manager *m, pid_t sender) {
        CgroupWorker *cw;
        pid_t pid = sender;

        for (unsigned depth = 0; depth < 16 && pid > 1 && pid != m->pid; depth++) {
                Worker *w = manager_find_worker(m, pid);
                if (w)
                        return w;
                if (cgroup_manager_get_ppid(m->cgroups, pid, &pid) < 0)
                        break;
        }
        cw = cgroup_manager_find_pid(m->cgroups, sender);
        for (PoolWorker *pw = pool_workers(m->pool); cw && pw; pw = pw->next) {
                Worker *w = pw->userdata;
                if (w && w->cgroup == cw)
                        return w;
        }
        return NULL;
}

void manager_on_worker_notify(NotifySocket *n, pid_t pid, const NotifyMessage *msg, void *userdata) {
        Manager *m = userdata;
        Worker *w = msg ? manager_attribute(m, pid) : NULL;
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (!msg || !w || !w->pool_worker) {
                /* notify.c counted a malformed one already; one from a stranger is counted here. */
                uint64_t total = msg ? notify_socket_reject(n) : notify_socket_rejected(n);

                /* Log at most one every 10 s: a flood must not flood the journal. */
                if (now - m->reject_logged_usec >= 10 * USEC_PER_SEC || m->reject_logged_usec == 0) {
                        LogFields f = {};
                        m->reject_logged_usec = now;
                        log_fields_add(&f, "SENDER_PID=%d", (int) pid);
                        log_fields_add(&f, "REJECTED_TOTAL=%llu", (unsigned long long) total);
                        log_event(LOG_WARNING, MESSAGE_ID_NOTIFY_REJECTED, &f,
                                  "dropped a notification from pid %d: %s (%llu dropped so far)", (int) pid,
                                  msg ? "not a worker" : "malformed, too long or without credentials",
                                  (unsigned long long) total);
                }
                return;
        }

        if (msg->status)
                log_debug("worker %u (pid %d) status: %s", w->pool_worker->slot, (int) w->pid, msg->status);
        if (msg->ready)
                manager_worker_ready(m, w);
        if (msg->watchdog && w->pool_worker->state == WORKER_READY && !w->abort_on_stop)
                (void) worker_watchdog_ping(w, generation_config(m, w->pool_worker->generation)->worker_watchdog_usec);
        if (msg->recycle && w->pool_worker->state == WORKER_READY) {
                log_info("worker %u (pid %d) asked to be recycled", w->pool_worker->slot, (int) w->pid);
                m->counters.recycles[RECYCLE_REQUEST]++;
                pool_worker_recycle(m->pool, w->pool_worker);
        }
}

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
        Worker *w = pw->userdata;
        int r;

        if (!w || !w->cgroup || w->exited)
                return 0;
        r = cgroup_worker_sample(w->cgroup, ret);
        if (r < 0)
                log_debug_errno(r, "Failed to sample worker %u (pid %d): %m", pw->slot, (int) w->pid);
        if (r <= 0)
                return r; /* gone between the exit and its event, or unreadable for now */
        if (ret->flags & CGROUP_SAMPLE_MEMORY_CURRENT)
                pw->memory_bytes = ret->memory_current;
        if (ret->flags & CGROUP_SAMPLE_CPU_USAGE)
                pw->cpu_usec = ret->cpu_usage_usec;
        return 1;
}

void manager_sample_worker(Manager *m, Worker *w) {
        PoolWorker *pw = w->pool_worker;
        RecyclePolicy policy = RECYCLE_POLICY(m->target.config);
        RecycleSample rs = { .at = now_usec(CLOCK_MONOTONIC) };
        char a[FORMAT_USEC_MAX], b[FORMAT_USEC_MAX], what[2 * FORMAT_USEC_MAX + 64];
        uint64_t value = 0, limit = 0;
        RecycleReason reason;
        CgroupSample cs;
        LogFields f = {};

        if (!pw || manager_read_accounting(pw, &cs) <= 0)
                return;
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

        worker_fields(&f, w, pw);
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
                         format_recycle_value(a, sizeof a, reason, value), format_recycle_value(b, sizeof b, reason, limit));
        log_event(LOG_NOTICE, MESSAGE_ID_WORKER_RECYCLED, &f, "worker %u (pid %d) is recycled: %s", pw->slot,
                  (int) w->pid, what);
        m->counters.recycles[reason]++;
        pool_worker_recycle(m->pool, pw);
}

void manager_sample(Manager *m) {
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                if (pw->userdata)
                        manager_sample_worker(m, pw->userdata);
        (void) cgroup_manager_gc(m->cgroups);
}
