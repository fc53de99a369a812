/* SPDX-License-Identifier: MIT */
/* Manager: operator requests from the control socket (reload, status, recycle, drain) and the status
 * snapshot: corral's own facts, its sockets and accounting, and every worker. */
#include <stdio.h>

#include "manager-internal.h"
#include "sock-diag.h"
#include "status.h"

static int compare_rows(const void *a, const void *b) {
        const StatusWorker *x = a, *y = b;

        if (x->slot != y->slot)
                return x->slot < y->slot ? -1 : 1;
        return x->generation < y->generation ? -1 : x->generation > y->generation;
}

/* What `corral status`, /health and /metrics are formatted from. The pool's pointers point into the
 * Manager and into the arrays here: valid until the next dispatch, freed by snapshot_done(). */
typedef struct Snapshot {
        StatusPool pool;
        StatusWorker *rows;
        size_t n_rows;
        StatusSocket *sockets;
        char (*addresses)[SOCKET_ADDRESS_MAX]; /* the workers' sockets', then the health endpoint's */
        StatusSlot *slots;
} Snapshot;

static void snapshot_done(Snapshot *s) {
        free(s->slots);
        free(s->rows);
        free(s->sockets);
        free(s->addresses);
}

/* Balance=reuseport: every slot's own sockets' queues, and what the even steering handed them. An address's
 * queue is all its slots' sockets' together: slot 0's (the group's own, in s->sockets already) and the
 * others', added here from the same read. */
static void manager_snapshot_slots(Manager *m, Snapshot *s) {
        _cleanup_free_ uint32_t *queued = NULL, *backlog = NULL;
        size_t n, n_sockets = m->sockets.n;

        if (!m->slot_sockets)
                return;
        n = MAX(slot_sockets_n(m->slot_sockets), 1U); /* slot 0 has the group's sockets from the start */
        s->slots = calloc(n, sizeof(StatusSlot));
        queued = calloc(MAX(n_sockets, 1U), sizeof(uint32_t));
        backlog = calloc(MAX(n_sockets, 1U), sizeof(uint32_t));
        if (!s->slots || !queued || !backlog)
                return;
        for (size_t k = 0; k < n; k++) {
                StatusSlot *sl = &s->slots[k];

                if (k == 0) {
                        sl->has_sockets = true;
                        for (size_t i = 0; i < n_sockets; i++)
                                sl->queued += s->sockets[i].queued;
                } else if (slot_sockets_queues(m->slot_sockets, (unsigned) k, queued, backlog) >= 0) {
                        sl->has_sockets = true;
                        for (size_t i = 0; i < n_sockets; i++) {
                                sl->queued += queued[i];
                                if (s->sockets[i].has_queue) {
                                        s->sockets[i].queued += queued[i];
                                        s->sockets[i].backlog += backlog[i];
                                }
                        }
                }
                sl->has_connections = sl->has_sockets &&
                                      slot_sockets_connections(m->slot_sockets, (unsigned) k, &sl->connections) >= 0;
        }
        s->pool.slots = s->slots;
        s->pool.n_slots = n;
}

/* The listen sockets with their addresses, as the kernel has them now. */
static void manager_snapshot_sockets(Manager *m, Snapshot *s) {
        const ListenSocket *health = manager_endpoint_socket(m, false);
        size_t n = m->sockets.n;

        s->sockets = calloc(MAX(n, 1U), sizeof(StatusSocket));
        s->addresses = calloc(n + 1, sizeof(*s->addresses));
        if (!s->sockets || !s->addresses)
                return;
        for (size_t i = 0; i < n; i++) {
                const ListenSocket *l = &m->sockets.sockets[i];

                s->sockets[i] = (StatusSocket) {
                        .name = l->name,
                        .address = listen_socket_address(l, s->addresses[i], SOCKET_ADDRESS_MAX) ?: "?",
                        .type = listen_socket_type(l),
                };
                s->sockets[i].has_queue = listen_socket_queue(l, &s->sockets[i].queued, &s->sockets[i].backlog) >= 0;
        }
        s->pool.sockets = s->sockets;
        s->pool.n_sockets = n;
        manager_snapshot_slots(m, s);
        if (health)
                s->pool.health_listen = listen_socket_address(health, s->addresses[n], SOCKET_ADDRESS_MAX);
}

/* The workers, fresh figures included, by slot then generation: a slot being replaced shows its old worker
 * above its new one. */
static void manager_snapshot_workers(Manager *m, Snapshot *s, usec_t now) {
        s->rows = calloc(MAX(s->pool.processes, 1U), sizeof(StatusWorker));
        for (PoolWorker *pw = pool_workers(m->pool); s->rows && pw; pw = pw->next) {
                Worker *w = pw->process;
                PoolExit last = {};
                CgroupSample cs;
                usec_t when = 0;

                if (!w)
                        continue;
                (void) pool_slot_last_exit(m->pool, pw->slot, &last, &when);
                /* The figures of the last sampling pass (at most CheckIntervalSec= old): reading every
                 * worker's files again would cost a request tens of ms at 4096 workers. A worker no pass has
                 * reached yet is read now. No recycling decision is taken here, that is the sampler's. */
                if (!pw->sampled)
                        (void) manager_read_accounting(pw, &cs);
                s->rows[s->n_rows++] = (StatusWorker) {
                        .slot = pw->slot,
                        .pid = w->pid,
                        .generation = pw->generation,
                        .state = pw->state,
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
        if (s->rows)
                qsort(s->rows, s->n_rows, sizeof(StatusWorker), compare_rows);
}

/* Takes a snapshot; on OOM, rows or sockets are missing from it, never the pool's figures. */
static void manager_snapshot(Manager *m, Snapshot *ret) {
        usec_t now = now_usec(CLOCK_MONOTONIC);
        PoolCounts c;

        pool_counts(m->pool, &c);
        *ret = (Snapshot) {
                .pool = {
                        .name = m->params.name,
                        .control_path = m->control ? m->params.control_path : NULL,
                        .pid = m->pid,
                        .version = CORRAL_VERSION,
                        .state = pool_state(m->pool),
                        .generation = pool_generation(m->pool),
                        .ready = c.ready,
                        .wanted = c.wanted,
                        .processes = c.workers,
                        .starting = c.starting,
                        .stopping = c.stopping,
                        .min_ready = m->target->config->min_ready,
                        .drained = m->drained,
                        .stop_pending = m->stop_pending,
                        .start_time_usec = m->started_realtime_usec,
                        .uptime_usec = now - m->started_usec,
                        .command = m->target->config->exec_start,
                        .config_path = m->params.config_path,
                        .notify_rejected = notify_socket_rejected(m->notify),
                        .output_dropped = manager_output_dropped(m),
                        .sample_busy_usec = m->sample_last.busy_usec,
                        .sample_longest_usec = m->sample_last.longest_usec,
                        .sample_batches = m->sample_last.batches,
                        .counters = &m->counters,
                },
        };
        if (m->cgroups) {
                ret->pool.accounting = cgroup_backend_to_string(cgroup_manager_backend(m->cgroups));
                ret->pool.memory_source = cgroup_manager_memory_source(m->cgroups);
        }
        manager_snapshot_sockets(m, ret);
        manager_snapshot_workers(m, ret, now);
}

/* A load balancer polls the agent or /health: note it, and whether it heard of a drain. */
static void manager_note_poll(Manager *m) {
        m->polled_usec = now_usec(CLOCK_MONOTONIC);
        if (m->drained)
                m->drain_seen = true;
}

/* Drained, but the load balancer that polled just before has not polled since: new connections may
 * still come, whatever the count says now. Given up after DRAIN_SEEN_WAIT_USEC (a poller gone for good). */
#define DRAIN_SEEN_WAIT_USEC (10 * USEC_PER_SEC)
static bool manager_drain_unseen(Manager *m) {
        return m->drained && !m->drain_seen && m->polled_usec > 0 &&
               m->polled_usec + DRAIN_SEEN_WAIT_USEC >= m->drained_usec &&
               now_usec(CLOCK_MONOTONIC) < m->drained_usec + DRAIN_SEEN_WAIT_USEC;
}

void manager_on_control(ControlServer *s, ControlConnection *c, ControlCommand cmd, unsigned arg, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *text = NULL;

        switch (cmd) {
        case CONTROL_RELOAD:
                if (manager_reload(m) < 0) {
                        text = strdup_printf("error: reload failed: %s\n", m->reload_failure ?: "see the log");
                        control_reply(c, text ?: "error: reload failed\n");
                        return;
                }
                text = strdup_printf("ok: reloading to generation %u\n%s", pool_generation(m->pool),
                                     m->reload_warnings ?: "");
                control_reply(c, text ?: "ok\n");
                return;
        case CONTROL_RELOAD_WAIT:
                if (pool_is_stopping(m->pool) || m->stop_pending) {
                        control_reply(c, "error: corral is stopping\n");
                        return;
                }
                if (m->upgrading) {
                        control_reply(c, "error: reload failed: an upgrade is in progress; reload when it is over\n");
                        return;
                }
                /* Held first, so that a reload failing at once answers it too. */
                control_hold(c);
                (void) manager_reload(m);
                return;
        case CONTROL_STATUS:
        case CONTROL_STATUS_JSON:
        case CONTROL_SUMMARY: {
                _cleanup_(snapshot_done) Snapshot snap = {};

                manager_snapshot(m, &snap);
                text = cmd == CONTROL_STATUS_JSON ? status_format_json(&snap.pool, snap.rows, snap.n_rows) :
                       cmd == CONTROL_SUMMARY     ? status_format_summary(&snap.pool) :
                                                    status_format_table(&snap.pool, snap.rows, snap.n_rows);
                if (!text) {
                        control_reply(c, "error: out of memory\n");
                        return;
                }
                control_reply(c, text);
                return;
        }
        case CONTROL_UPGRADE:
                manager_upgrade_request(m, c);
                return;
        case CONTROL_CONNECTIONS: {
                uint64_t n;
                int r = manager_count_connections(m, &n);

                text = r < 0 ? strdup_printf("error: cannot count the connections: %s\n", strerror(-r)) :
                               strdup_printf("ok: %" PRIu64 "%s\n", n,
                                             manager_drain_unseen(m) ? " unseen" : "");
                control_reply(c, text ?: "error: out of memory\n");
                return;
        }
        case CONTROL_DRAIN:
        case CONTROL_UNDRAIN:
                if (cmd == CONTROL_DRAIN && !m->drained) {
                        m->drained_usec = now_usec(CLOCK_MONOTONIC);
                        m->drain_seen = false;
                }
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

int manager_count_connections(Manager *m, uint64_t *ret) {
        int r = sock_diag_count_connections(m->fds, m->sockets.n, ret);

        if (r < 0)
                log_debug_errno(r, "Failed to count the connections (sock_diag): %m");
        return r;
}

/* corral_connections for /metrics: a count at most a second old, so that back-to-back scrapes do not have
 * the kernel walk its TCP table for each (corral drain --wait counts afresh). Returns whether there is one. */
static bool manager_metrics_connections(Manager *m, uint64_t *ret) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (m->metrics_connections_usec == 0 ||
            now - m->metrics_connections_usec >= METRICS_CONNECTIONS_MAX_AGE_USEC) {
                int r = manager_count_connections(m, &m->metrics_connections);

                m->metrics_connections_usec = r >= 0 ? now : 0;
        }
        *ret = m->metrics_connections;
        return m->metrics_connections_usec != 0;
}

void manager_on_http(Httpd *h, const HttpRequest *req, HttpdResponse *resp, void *userdata) {
        Manager *m = userdata;
        _cleanup_(snapshot_done) Snapshot snap = {};
        _cleanup_free_ char *body = NULL;
        bool health = streq(req->path, "/health"), ready = streq(req->path, "/health/ready");
        int code;

        if (!health && !ready && !streq(req->path, "/metrics")) {
                (void) httpd_respond(resp, 404, NULL, "not found: try /health, /health/ready or /metrics\n");
                return;
        }
        manager_snapshot(m, &snap);
        if (health || ready) {
                manager_note_poll(m);
                code = status_format_health(&snap.pool, health ? HEALTH_CHECK_GRADED : HEALTH_CHECK_READY, &body);
                (void) httpd_respond(resp, body ? code : 500, "application/json", body ?: "{}\n");
                return;
        }
        snap.pool.has_connections = manager_metrics_connections(m, &snap.pool.connections);
        body = status_format_metrics(&snap.pool, snap.rows, snap.n_rows);
        (void) httpd_respond(resp, body ? 200 : 500, "text/plain; version=0.0.4; charset=utf-8", body ?: "");
}

char *manager_agent_answer(AgentServer *a, void *userdata) {
        Manager *m = userdata;
        PoolCounts c;
        StatusPool p;

        /* The agent needs the pool's figures only: no snapshot of workers and sockets for each check. */
        manager_note_poll(m);
        pool_counts(m->pool, &c);
        p = (StatusPool) {
                .state = pool_state(m->pool),
                .ready = c.ready,
                .wanted = c.wanted,
                .drained = m->drained,
                .stop_pending = m->stop_pending,
        };
        return status_format_agent(&p);
}
