/* SPDX-License-Identifier: MIT */
/* Manager: reloads — the config re-read into a new generation, the roll handed to the pool — and every
 * outcome of a roll, which the pool reports in its plans: the target and stable generations follow. */
#include <stdio.h>

#include "manager-internal.h"
#include "message-ids.h"

void manager_reload_finished(Manager *m, bool ok, const char *why) {
        LogFields f = {};

        /* Reported even when no reload is pending: a roll that outlived a later reload which failed at once
         * (an invalid file) still ends, and systemd and the counters hear of it. */
        m->reloading = false;
        log_fields_add(&f, "WORKER_GENERATION=%u", pool_generation(m->pool));
        if (ok)
                log_event(LOG_INFO, MESSAGE_ID_RELOAD_DONE, &f, "reload done: every worker is generation %u",
                          pool_generation(m->pool));
        else {
                log_fields_add(&f, "REASON=%s", why);
                log_event(LOG_ERR, MESSAGE_ID_RELOAD_FAILED, &f, "reload failed: %s", why);
        }
        status_count_reload(&m->counters, ok, now_usec(CLOCK_MONOTONIC) - m->reload_started_usec,
                            now_usec(CLOCK_REALTIME));
        free(m->reload_failure);
        m->reload_failure = ok ? NULL : strdup(why);
        if (m->control) {
                _cleanup_free_ char *reply =
                        ok ? strdup_printf("ok: generation %u\n%s", pool_generation(m->pool), m->reload_warnings ?: "") :
                             strdup_printf("error: reload failed: %s\n%s", why, m->reload_warnings ?: "");
                control_server_finish_waiters(m->control, reply ?: (ok ? "ok\n" : "error: reload failed\n"));
        }
        /* Every way out of a reload tells systemd it is over, success or not. */
        free(m->status);
        m->status = NULL;
        (void) notify_manager_ready(ok ? "reload done" : "reload failed");
}

/* What a reload cannot change, against what corral started with: said in the log and, as "warning: " lines, to the client that asked. */
static void manager_reload_check_fixed(Manager *m, const Config *config) {
        static const char listen[] = "[Socket] Listen= changed, but the listening sockets cannot change while "
                                     "corral runs: restart corral to apply it",
                          health[] = "[Health] Listen= or AgentListen= changed, but the health and agent endpoints "
                                     "cannot move while corral runs: restart corral to apply it",
                          name[] = "[Service] Name= changed, but the instance keeps its name and control socket "
                                   "while corral runs: restart corral to apply it",
                          balance[] = "[Socket] Balance= changed, but how the workers share the sockets cannot "
                                      "change while corral runs: restart corral to apply it";
        const Config *old = m->first->config;
        bool changed[4] = {
                !strv_equal(config->listen, old->listen),
                !streq_ptr(config->status_listen, old->status_listen) ||
                        !streq_ptr(config->agent_listen, old->agent_listen),
                !streq_ptr(config->name, old->name),
                config->balance != old->balance,
        };
        const char *texts[4] = { listen, health, name, balance };
        char *w = NULL;

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                char *joined;

                if (!changed[i])
                        continue;
                log_warning("reload: %s", texts[i]);
                joined = strdup_printf("%swarning: %s\n", w ?: "", texts[i]);
                free(w);
                w = joined; /* out of memory: the log has said it */
        }
        m->reload_warnings = w;
}

int manager_reload(Manager *m) {
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_(generation_unrefp) Generation *g = NULL;
        _cleanup_free_ char *error = NULL;
        PoolConfig pc;
        LogFields f = {};
        int r, number;

        if (pool_is_stopping(m->pool) || m->stop_pending)
                return -ESHUTDOWN;
        if (m->upgrading) {
                /* The exec would cut the roll off; the state carries no roll. */
                log_warning("reload refused: an upgrade is in progress; reload when it is over");
                free(m->reload_failure);
                m->reload_failure = strdup("an upgrade is in progress; reload when it is over");
                return -EBUSY;
        }

        (void) notify_manager_reloading("reloading: reading configuration");
        if (!m->reloading)
                m->reload_started_usec = now_usec(CLOCK_MONOTONIC);
        m->reloading = true;

        free(m->reload_warnings);
        m->reload_warnings = NULL;
        r = config_load(m->params.config_path, m->params.args, m->params.n_args, m->params.command, &config, &error);
        if (r < 0) {
                manager_reload_finished(m, false, error ?: "failed to load the configuration");
                return r;
        }
        manager_reload_check_fixed(m, config);

        r = generation_new(config, 0, &g, &error);
        if (r < 0) {
                manager_reload_finished(m, false, error ?: "cannot run ExecStart=");
                return r;
        }
        TAKE_PTR(config);
        r = generation_check_fd_limit(g, m->ncpus, cgroup_manager_fds_per_worker(m->cgroups), nofile_limit(),
                                      &error);
        if (r < 0) {
                manager_reload_finished(m, false, error ?: "Count= needs more file descriptors than allowed");
                return r;
        }

        /* The roll replaces the heaviest workers first: fresh figures for the ranking. Only figures: an
         * extra sample must not count towards the recycling policy's consecutive checks. */
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next) {
                CgroupSample cs;
                (void) manager_read_accounting(pw, &cs);
        }

        pc = generation_pool_config(g, m->ncpus);
        number = pool_reload(m->pool, &pc);
        if (number < 0) {
                manager_reload_finished(m, false, "out of memory");
                return log_oom();
        }
        /* A reload during a roll supersedes the roll's target; the stable generation stays, and so does
         * the superseded one for as long as its workers live. */
        g->number = (unsigned) number;
        generation_assign(&m->target, g);

        log_fields_add(&f, "WORKER_GENERATION=%u", g->number);
        log_event(LOG_INFO, MESSAGE_ID_RELOAD_STARTED, &f, "reloading: rolling %u workers to generation %u", pc.count,
                  g->number);
        return 0;
}

/* "worker 2 (pid 123) of generation 3 exited with status 1 before it was ready": the worker whose failure
 * ended a roll, from the report and the worker itself (still on a list: reports come in the plan that
 * follows the failure, before the gone are freed). */
static void format_roll_failure(Manager *m, const PoolRollReport *r, char *buf, size_t size) {
        Worker *w = manager_find_worker(m, r->worker_id);
        char how[160], t[FORMAT_USEC_MAX];

        if (!w)
                snprintf(buf, size, "worker %u of generation %u failed", r->slot, r->generation);
        else if (r->ready_timeout)
                snprintf(buf, size, "worker %u (pid %d) of generation %u was not ready within ReadyTimeoutSec=%s",
                         w->slot, (int) w->pid, w->generation->number,
                         format_usec(t, sizeof t, w->generation->config->ready_timeout_usec));
        else
                snprintf(buf, size, "worker %u (pid %d) of generation %u %s%s", w->slot, (int) w->pid,
                         w->generation->number, worker_describe_exit(w, how, sizeof how),
                         w->pid == 0 ? "" : r->was_ready ? " soon after start" : " before it was ready");
}

void manager_handle_roll_reports(Manager *m, const PoolPlan *plan) {
        char what[512], why[600];

        for (size_t i = 0; i < plan->n_reports; i++) {
                const PoolRollReport *r = &plan->reports[i];

                switch (r->event) {
                case POOL_ROLL_DONE:
                        generation_assign(&m->stable, m->target);
                        manager_reload_finished(m, true, NULL);
                        break;
                case POOL_ROLL_ABORTED:
                        /* The pool went back to the stable generation: so do new spawns. */
                        generation_assign(&m->target, m->stable);
                        format_roll_failure(m, r, what, sizeof what);
                        snprintf(why, sizeof why, "%s; keeping generation %u", what, m->stable->number);
                        manager_reload_finished(m, false, why);
                        break;
                case POOL_ROLL_ROLLBACK_DONE:
                        log_notice("rolled back: every worker is generation %u again", r->generation);
                        break;
                case POOL_ROLL_ROLLBACK_FAILED:
                        format_roll_failure(m, r, what, sizeof what);
                        log_error("rollback to generation %u failed too (%s); keeping the workers that serve",
                                  r->generation, what);
                        break;
                default:
                        break;
                }
        }
}
