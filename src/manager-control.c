/* SPDX-License-Identifier: MIT */
/* Manager: operator requests from the control socket (reload, status, recycle) and the status snapshot. */
#include <stdio.h>

#include "manager-internal.h"
#include "status.h"

static int compare_rows(const void *a, const void *b) {
        const StatusWorker *x = a, *y = b;

        if (x->slot != y->slot)
                return x->slot < y->slot ? -1 : 1;
        return x->generation < y->generation ? -1 : x->generation > y->generation;
}

static void manager_status_snapshot(Manager *m, StatusPool *ret_pool, StatusWorker **ret_rows, size_t *ret_n) {
        usec_t now = now_usec(CLOCK_MONOTONIC);
        StatusWorker *rows;
        PoolCounts c;
        size_t n = 0;

        pool_counts(m->pool, &c);
        *ret_pool = (StatusPool) {
                .starting = c.starting,
                .stopping = c.stopping,
                .min_ready = m->target->config->min_ready,
                .drained = m->drained,
                .counters = &m->counters,
                .state = pool_state(m->pool),
                .generation = pool_generation(m->pool),
                .ready = c.ready,
                .wanted = c.wanted,
                .workers = c.workers,
                .reloads_ok = m->reloads_ok,
                .reloads_failed = m->reloads_failed,
                .uptime_usec = now - m->started_usec,
                .notify_rejected = notify_socket_rejected(m->notify),
        };
        rows = calloc(MAX(c.workers, 1U), sizeof(StatusWorker));
        for (PoolWorker *pw = pool_workers(m->pool); rows && pw; pw = pw->next) {
                Worker *w = pw->process;
                PoolExit last = {};
                CgroupSample cs;
                usec_t when = 0;

                if (!w)
                        continue;
                (void) pool_slot_last_exit(m->pool, pw->slot, &last, &when);
                /* Fresh figures; no recycling decision is taken here, that is the sampling timer's. */
                (void) manager_read_accounting(pw, &cs);
                rows[n++] = (StatusWorker) {
                        .slot = pw->slot,
                        .pid = w->pid,
                        .generation = pw->generation,
                        .state = worker_state_to_string(pw->state),
                        .uptime_usec = now - w->started_usec,
                        .ready_after_usec = pw->ready_usec ? pw->ready_usec - pw->started_usec : 0,
                        .memory_bytes = pw->memory_bytes,
                        .cpu_usec = pw->cpu_usec,
                        .restarts = pool_slot_restarts(m->pool, pw->slot),
                        .last_exit_code = last.code,
                        .last_exit_status = last.status,
                        .last_exit_ago_usec = when ? now - when : 0,
                };
        }
        /* By slot, then generation: a slot being replaced shows its old worker above its new one. */
        if (rows)
                qsort(rows, n, sizeof(StatusWorker), compare_rows);
        *ret_rows = rows;
        *ret_n = n;
}

void manager_on_control(ControlServer *s, ControlConnection *c, ControlCommand cmd, unsigned arg, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *text = NULL;

        switch (cmd) {
        case CONTROL_RELOAD:
                if (manager_reload(m) < 0) {
                        control_reply(c, "error: reload failed, see the log\n");
                        return;
                }
                text = strdup_printf("ok: reloading to generation %u\n", pool_generation(m->pool));
                control_reply(c, text ?: "ok\n");
                return;
        case CONTROL_RELOAD_WAIT:
                if (pool_is_stopping(m->pool)) {
                        control_reply(c, "error: corral is stopping\n");
                        return;
                }
                /* Held first, so that a reload failing at once answers it too. */
                control_hold(c);
                (void) manager_reload(m);
                return;
        case CONTROL_STATUS:
        case CONTROL_STATUS_JSON: {
                _cleanup_free_ StatusWorker *rows = NULL;
                StatusPool sp;
                size_t n;

                manager_status_snapshot(m, &sp, &rows, &n);
                text = cmd == CONTROL_STATUS_JSON ? status_format_json(&sp, rows, n) : status_format_table(&sp, rows, n);
                if (!text) {
                        control_reply(c, "error: out of memory\n");
                        return;
                }
                control_reply(c, text);
                return;
        }
        case CONTROL_DRAIN:
        case CONTROL_UNDRAIN:
                m->drained = cmd == CONTROL_DRAIN;
                log_notice("%s: /health answers %s", m->drained ? "drained" : "undrained", m->drained ? "503" : "by readiness again");
                control_reply(c, m->drained ? "ok: drained\n" : "ok: undrained\n");
                return;
        case CONTROL_RECYCLE:
                for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                        if (pw->slot == arg && pw->state == WORKER_READY && pw->process) {
                                pool_worker_recycle(m->pool, pw);
                                m->counters.recycles[RECYCLE_REQUEST]++;
                                log_info("worker %u (pid %d) is recycled on request", pw->slot, (int) pw->process->pid);
                                text = strdup_printf("ok: recycling worker %u (pid %d)\n", pw->slot,
                                                     (int) pw->process->pid);
                                control_reply(c, text ?: "ok\n");
                                return;
                        }
                control_reply(c, "error: no ready worker in that slot\n");
                return;
        default:
                control_reply(c, "error: unsupported request\n");
                return;
        }
}

void manager_on_http(Httpd *h, const HttpRequest *req, HttpdResponse *resp, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ StatusWorker *rows = NULL;
        _cleanup_free_ char *body = NULL;
        StatusPool sp;
        size_t n;
        int code;

        if (!streq(req->path, "/health") && !streq(req->path, "/metrics")) {
                (void) httpd_respond(resp, 404, NULL, "not found: try /health or /metrics\n");
                return;
        }
        manager_status_snapshot(m, &sp, &rows, &n);
        if (streq(req->path, "/health")) {
                code = status_format_health(&sp, &body);
                (void) httpd_respond(resp, body ? code : 500, "application/json", body ?: "{}\n");
                return;
        }
        body = status_format_metrics(&sp, rows, n);
        (void) httpd_respond(resp, body ? 200 : 500, "text/plain; version=0.0.4; charset=utf-8", body ?: "");
}
