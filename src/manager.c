/* SPDX-License-Identifier: MIT */
/* Manager: set-up in named steps, signals, pool plans -> actions after every dispatch (reconcile), status
 * to systemd, shutdown. Reloads are manager-reload.c's, workers manager-workers.c's. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "control.h"
#include "log.h"
#include "manager-internal.h"
#include "reaper.h"
#include "message-ids.h"
#include "notify.h"
#include "pool.h"
#include "status.h"
#include "worker.h"

/* ---- status ---- */

/* The STATUS= line: the pool's state with its figures. */
static char *manager_format_status(Manager *m) {
        uint64_t memory = 0;
        char totals[48] = "";
        unsigned done, total;
        PoolCounts c;

        pool_counts(m->pool, &c);
        /* Totals from the last samples, in whole MiB so STATUS= changes only when they really move. */
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                if (pw->state != WORKER_STOPPING)
                        memory += pw->memory_bytes;
        if (memory > 0)
                snprintf(totals, sizeof totals, ", %lluM memory", (unsigned long long) (memory >> 20));

        switch (pool_state(m->pool)) {
        case POOL_STOPPING:
                return strdup_printf("stopping: %u worker%s left", c.workers, c.workers == 1 ? "" : "s");
        case POOL_RELOADING:
                pool_roll_progress(m->pool, &done, &total);
                return strdup_printf("reloading: %u/%u replaced, generation %u", done, total, pool_generation(m->pool));
        case POOL_STARTING:
                return strdup_printf("starting: %u/%u workers ready", c.ready, c.wanted);
        case POOL_DEGRADED:
                return strdup_printf("degraded: %u/%u workers ready, generation %u (%u restarting, %u disabled)%s",
                                     c.ready, c.wanted, pool_generation(m->pool), c.waiting + c.starting, c.disabled,
                                     totals);
        default:
                return strdup_printf("%u/%u workers ready, generation %u%s", c.ready, c.wanted,
                                     pool_generation(m->pool), totals);
        }
}

static void manager_update_status(Manager *m) {
        _cleanup_free_ char *s = manager_format_status(m);
        PoolCounts c;

        if (!s || streq_ptr(s, m->status))
                return;
        free(m->status);
        m->status = TAKE_PTR(s);

        if (!m->ready_sent && pool_all_ready(m->pool)) {
                LogFields f = {};

                m->ready_sent = true;
                pool_counts(m->pool, &c);
                log_fields_add(&f, "WORKER_COUNT=%u", c.wanted);
                log_event(LOG_INFO, MESSAGE_ID_POOL_READY, &f, "all %u worker%s ready", c.wanted,
                          c.wanted == 1 ? "" : "s");
                /* READY=1 carries the status that follows it. */
                free(m->status);
                m->status = strdup_printf("%u/%u workers ready, generation %u", c.ready, c.wanted,
                                          pool_generation(m->pool));
                (void) notify_manager_ready(m->status ?: "");
                return;
        }
        (void) notify_manager_status(m->status);

        /* A long roll that still makes progress must not hit systemd's reload timeout: every step buys
         * the time the next one may take. */
        if (pool_is_rolling(m->pool)) {
                const Config *tc = m->target->config;
                (void) notify_manager_extend_timeout(tc->ready_timeout_usec + tc->stop_timeout_usec + 5 * USEC_PER_SEC);
        }
}

/* ---- signals ---- */

/* Passes sig on to every worker that is not being stopped, through its pidfd. */
static void manager_relay_signal(Manager *m, int sig) {
        unsigned n = 0;
        LogFields f = {};

        if (!config_relays_signal(m->target->config, sig)) {
                log_notice("ignoring SIG%s: not in RelaySignals=", signal_to_string(sig) ?: "?");
                return;
        }
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                if (pw->state != WORKER_STOPPING && pw->process && worker_signal(pw->process, sig) >= 0)
                        n++;
        m->counters.relayed_signals++;
        log_fields_add(&f, "SIGNAL=SIG%s", signal_to_string(sig) ?: "?");
        log_fields_add(&f, "WORKER_COUNT=%u", n);
        log_event(LOG_INFO, MESSAGE_ID_SIGNAL_RELAYED, &f, "relayed SIG%s to %u worker%s", signal_to_string(sig) ?: "?",
                  n, n == 1 ? "" : "s");
}

/* The graceful stop: every worker gets its stop signal. what: "received SIGTERM", "giving up", ... */
static void manager_stop_pool(Manager *m, const char *what) {
        PoolCounts c;
        LogFields f = {};

        if (pool_is_stopping(m->pool))
                return;
        pool_counts(m->pool, &c);
        log_fields_add(&f, "WORKER_COUNT=%u", c.workers);
        log_event(LOG_INFO, MESSAGE_ID_POOL_STOPPING, &f, "%s, stopping %u worker%s", what, c.workers,
                  c.workers == 1 ? "" : "s");
        if (m->reloading)
                manager_reload_finished(m, false, "corral is stopping");
        pool_stop(m->pool);
        free(m->status);
        m->status = strdup_printf("stopping: %u worker%s left", c.workers, c.workers == 1 ? "" : "s");
        (void) notify_manager_stopping(m->status ?: "stopping");
}

static int on_drain_delay_over(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        m->stop_pending = false;
        manager_stop_pool(m, "drain delay over");
        return 0;
}

/* DrainDelaySec=: /health answers 503 and the agent "down" at once (status snapshot), the workers serve on
 * for the delay, then the graceful stop. Returns false when there is no delay to keep. */
static bool manager_delay_stop(Manager *m, const char *signame) {
        usec_t delay = m->target->config->drain_delay_usec;
        char t[FORMAT_USEC_MAX];
        int r;

        /* Called for the first stop signal only: a stop, delayed or not, is never started again. */
        if (delay == 0 || pool_is_stopping(m->pool))
                return false;
        r = sd_event_add_time_relative(m->event, &m->drain_stop_timer, CLOCK_MONOTONIC, delay, 0,
                                       on_drain_delay_over, m);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the drain delay, stopping at once: %m");
                return false;
        }
        (void) sd_event_source_set_priority(m->drain_stop_timer, PRIORITY_SIGNAL);
        m->stop_pending = true;
        log_notice("received %s: /health answers 503 and the agent-check down; the workers serve on for %s "
                   "(DrainDelaySec=), then stop; %s again stops them now", signame,
                   format_usec(t, sizeof t, delay), signame);
        free(m->status);
        m->status = strdup_printf("draining for %s before stopping", format_usec(t, sizeof t, delay));
        (void) notify_manager_stopping(m->status ?: "stopping");
        return true;
}

static void manager_start_stop(Manager *m, const char *signame) {
        _cleanup_free_ char *what = NULL;

        /* signame NULL: corral gives up by itself; only signals count towards "the second one kills". */
        if (!signame) {
                m->stop_pending = false;
                (void) sd_event_source_set_enabled(m->drain_stop_timer, SD_EVENT_OFF);
                manager_stop_pool(m, "giving up");
                return;
        }
        m->term_signals++;
        if (m->stop_pending) {
                /* The second signal during the drain delay cuts it short; the next one kills. */
                m->stop_pending = false;
                m->term_signals--;
                (void) sd_event_source_set_enabled(m->drain_stop_timer, SD_EVENT_OFF);
                what = strdup_printf("received %s again during the drain delay", signame);
                manager_stop_pool(m, what ?: "received a signal again");
                return;
        }
        if (m->term_signals > 1) {
                log_warning("received %s again, killing every worker now", signame);
                manager_kill_workers(m);
                return;
        }
        if (manager_delay_stop(m, signame))
                return;
        what = strdup_printf("received %s", signame);
        manager_stop_pool(m, what ?: "received a signal");
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        switch (si->ssi_signo) {
        case SIGTERM:
                manager_start_stop(m, "SIGTERM");
                break;
        case SIGINT:
                manager_start_stop(m, "SIGINT");
                break;
        case SIGHUP:
                (void) manager_reload(m);
                break;
        case SIGCHLD:
                manager_reap_orphans(m);
                break;
        default:
                manager_relay_signal(m, (int) si->ssi_signo);
                break;
        }
        return 0;
}

static int manager_watch_signal(Manager *m, int sig) {
        sd_event_source *s;
        int r;

        if (m->watched_signals & (UINT64_C(1) << (sig - 1)))
                return 0;
        r = sd_event_add_signal(m->event, &s, sig | SD_EVENT_SIGNAL_PROCMASK, on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIG%s: %m", signal_to_string(sig) ?: "?");
        (void) sd_event_source_set_priority(s, PRIORITY_SIGNAL);
        /* Owned by the loop from here on. */
        (void) sd_event_source_set_floating(s, true);
        sd_event_source_unref(s);
        m->watched_signals |= UINT64_C(1) << (sig - 1);
        return 0;
}

/* The relayed signals of the target generation, and always USR1, USR2 and WINCH: without a source their
 * default action would kill corral whenever RelaySignals= leaves them out. A reload may add some; sources
 * are never removed (a signal left out is then ignored with a notice, not fatal). */
static int manager_watch_relay_signals(Manager *m) {
        int r;

        if (m->relayed == m->target)
                return 0;
        for (int sig = 1; sig <= 64; sig++) {
                if (!config_relays_signal(m->target->config, sig) && sig != SIGUSR1 && sig != SIGUSR2 &&
                    sig != SIGWINCH)
                        continue;
                r = manager_watch_signal(m, sig);
                if (r < 0)
                        return r;
        }
        generation_assign(&m->relayed, m->target);
        return 0;
}

/* ---- reconcile ---- */

/* Asks the pool what to do and does it. A spawn that fails at once is reported back, which may change
 * the plan, so plan again (bounded: a failed spawn throttles its slot). */
static void manager_reconcile(Manager *m) {
        PoolPlan plan = {};

        for (unsigned round = 0; round < 4; round++) {
                bool again = false;
                usec_t now = now_usec(CLOCK_MONOTONIC);

                if (pool_plan(m->pool, now, &plan) < 0) {
                        log_oom();
                        plan.wakeup_usec = now + USEC_PER_SEC;
                        break;
                }
                manager_handle_roll_reports(m, &plan);
                if (plan.give_up) {
                        log_error("every worker slot failed %u times in a row and none is ready: giving up, so "
                                  "that systemd's Restart= can take over", pool_config(m->pool)->give_up_failures);
                        m->exit_code = EXIT_FAILURE;
                        (void) notify_manager_errno(EIO);
                        manager_start_stop(m, NULL);
                        continue;
                }

                for (size_t i = 0; i < plan.n_actions; i++) {
                        PoolWorker *pw = plan.actions[i].worker;

                        if (plan.actions[i].type == POOL_ACTION_STOP)
                                manager_stop_worker(m, pw);
                        else if (manager_spawn_worker(m, pw) < 0)
                                again = true;
                }
                if (!again)
                        break;
        }

        if (plan.wakeup_usec != USEC_INFINITY) {
                (void) sd_event_source_set_time(m->plan_timer, plan.wakeup_usec);
                (void) sd_event_source_set_enabled(m->plan_timer, SD_EVENT_ONESHOT);
        } else
                (void) sd_event_source_set_enabled(m->plan_timer, SD_EVENT_OFF);

        (void) manager_watch_relay_signals(m);
        manager_update_status(m);
}

static int on_post(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        /* The gone are freed after the plan: its roll reports may name one of them. */
        manager_reconcile(m);
        manager_free_gone(m);
        manager_update_slot_sockets(m);
        manager_upgrade_post(m);

        if (pool_is_stopping(m->pool) && pool_is_empty(m->pool))
                return sd_event_exit(m->event, m->exit_code);
        return 0;
}

static int on_sample_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        /* The interval of the target generation, so a reload can change it. */
        (void) sd_event_source_set_time_relative(s, m->target->config->check_interval_usec);
        if (manager_sample(m))
                (void) sd_event_source_set_enabled(m->sample_more, SD_EVENT_ONESHOT);
        return 0;
}

static int on_sample_more(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        if (manager_sample(m))
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static int on_plan_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        /* Nothing to do here: the post source plans after every dispatch. */
        return 0;
}

/* ---- set-up steps ---- */

static const int manager_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };

/* The loop, SIGCHLD blocked, and the stop and reload signals; the relayed ones need the target
 * generation (manager_watch_relay_signals()). */
static int manager_setup_loop(Manager *m) {
        sigset_t ss;
        int r;

        /* sd-event needs SIGCHLD blocked before child sources exist; and its default action: one ignored by
         * whoever started corral (the disposition survives exec) would have the kernel reap the workers
         * behind their child sources' backs. */
        if (sigemptyset(&ss) < 0 || sigaddset(&ss, SIGCHLD) < 0 || sigprocmask(SIG_BLOCK, &ss, NULL) < 0 ||
            signal(SIGCHLD, SIG_DFL) == SIG_ERR)
                return log_error_errno(errno, "Failed to block SIGCHLD: %m");
        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        /* Orphans of the workers' children come to corral (and are reaped on SIGCHLD) rather than to init:
         * nothing of a worker's tree escapes corral's view. */
        r = reaper_become_subreaper();
        if (r < 0)
                log_warning_errno(r, "Failed to become the child subreaper, orphans go to init: %m");
        (void) sd_event_set_watchdog(m->event, true);

        for (size_t i = 0; i < ELEMENTSOF(manager_signals); i++) {
                r = manager_watch_signal(m, manager_signals[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The listen sockets the workers get, as fds 3.. in their order, with their names. */
static int manager_setup_sockets(Manager *m, SocketSet *sockets) {
        int r;

        m->sockets = *sockets;
        *sockets = (SocketSet) {};
        m->fds = calloc(MAX(m->sockets.n, 1U), sizeof(int));
        m->fd_names = socket_set_names(&m->sockets);
        if (!m->fds || !m->fd_names)
                return log_oom();
        for (size_t i = 0; i < m->sockets.n; i++)
                m->fds[i] = m->sockets.sockets[i].fd;
        if (m->first && m->first->config->balance == BALANCE_REUSEPORT) {
                m->slot_sockets = slot_sockets_new(&m->sockets, m->fds);
                if (!m->slot_sockets)
                        return log_oom();
                r = slot_sockets_even(m->slot_sockets);
                if (r < 0)
                        log_warning_errno(r, "Balance=reuseport: cannot load the even steering program (%m; eBPF "
                                             "needs CAP_BPF, e.g. root): new connections are spread by the "
                                             "kernel's hash, unevenly, steered only away from slots that are down");
                else
                        log_info("Balance=reuseport: new connections go to the ready slots in turn (eBPF)%s",
                                 r > 0 ? "; what waits in a slot's sockets when they close moves to a ready slot" : "");
        }
        return 0;
}

/* The health endpoint and the agent-check on their sockets, where there are such. */
static int manager_setup_httpd(Manager *m) {
        const ListenSocket *http = manager_endpoint_socket(m, false), *agent = manager_endpoint_socket(m, true);
        int fd, r;

        /* The servers own the fds they are given; the set keeps its own, to unlink a UNIX path at exit. */
        if (http) {
                fd = fcntl(http->fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return log_error_errno(errno, "Failed to duplicate the status socket: %m");
                r = httpd_new(m->event, fd, PRIORITY_NOTIFY, manager_on_http, m, &m->httpd);
                if (r < 0)
                        return log_error_errno(r, "Failed to serve the health endpoint: %m");
        }
        if (agent) {
                fd = fcntl(agent->fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return log_error_errno(errno, "Failed to duplicate the agent-check socket: %m");
                r = agent_server_new(m->event, fd, PRIORITY_NOTIFY, manager_agent_answer, m, &m->agent);
                if (r < 0)
                        return log_error_errno(r, "Failed to serve the agent-check: %m");
        }
        return 0;
}

/* The workers' notify socket, the health endpoint and the control socket. */
static int manager_setup_endpoints(Manager *m) {
        const ManagerParams *params = &m->params;
        int r;

        r = notify_socket_new(m->event, PRIORITY_NOTIFY, manager_on_worker_notify, m, &m->notify);
        if (r < 0)
                return log_error_errno(r, "Failed to create the worker notify socket: %m");

        if (params->status_socket) {
                m->status_sockets = *params->status_socket;
                *params->status_socket = (SocketSet) {};
        }
        r = manager_setup_httpd(m);
        if (r < 0)
                return r;

        if (params->control_path) {
                r = control_server_new(m->event, params->control_path, PRIORITY_NOTIFY, manager_on_control, m,
                                       &m->control);
                if (r == -EADDRINUSE)
                        return log_error_errno(r, "Another corral is running as '%s': its control socket '%s' answers. "
                                               "Pass --name NAME (or --control PATH) to run a second one.",
                                               params->name, params->control_path);
                if (r < 0 && params->control_optional)
                        log_warning_errno(r, "Running without a control socket: cannot create '%s': %m",
                                          params->control_path);
                else if (r < 0)
                        return log_error_errno(r, "Failed to create the control socket '%s': %m", params->control_path);
        }
        return 0;
}

/* The sampling timer, the plan timer (backoff ends) and the post source that reconciles after every
 * dispatch. */
static int manager_setup_timers(Manager *m) {
        int r;

        r = sd_event_add_time_relative(m->event, &m->sample_timer, CLOCK_MONOTONIC,
                                       m->target->config->check_interval_usec, 0, on_sample_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the sampling timer: %m");
        (void) sd_event_source_set_priority(m->sample_timer, PRIORITY_SAMPLE);
        (void) sd_event_source_set_description(m->sample_timer, "sample");
        (void) sd_event_source_set_enabled(m->sample_timer, SD_EVENT_ON);

        /* A defer source is dispatched once per turn of the loop, after what is pending at a higher
         * priority: the batches of a pass interleave with every other event. */
        r = sd_event_add_defer(m->event, &m->sample_more, on_sample_more, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the sampling source: %m");
        (void) sd_event_source_set_priority(m->sample_more, PRIORITY_SAMPLE);
        (void) sd_event_source_set_description(m->sample_more, "sample-more");
        (void) sd_event_source_set_enabled(m->sample_more, SD_EVENT_OFF);

        r = sd_event_add_time(m->event, &m->plan_timer, CLOCK_MONOTONIC, USEC_INFINITY, 0, on_plan_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the plan timer: %m");
        (void) sd_event_source_set_priority(m->plan_timer, PRIORITY_TIMER);
        (void) sd_event_source_set_description(m->plan_timer, "plan-timer");
        (void) sd_event_source_set_enabled(m->plan_timer, SD_EVENT_OFF);

        r = sd_event_add_post(m->event, &m->post_source, on_post, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the post source: %m");
        (void) sd_event_source_set_description(m->post_source, "reconcile");
        return 0;
}

/* ---- life cycle ---- */

/* A manager with its params, the accounting backend taken; nothing else set up yet. */
static Manager *manager_alloc(const ManagerParams *params) {
        Manager *m = calloc(1, sizeof(Manager));
        char *exe = NULL;

        if (!m)
                return NULL;
        m->params = *params;
        m->cgroups = TAKE_PTR(m->params.cgroups);
        m->pid = getpid();
        m->ncpus = usable_cpus();
        m->upgrade_output = m->upgrade_check_fd = -EBADF;
        /* What an upgrade runs: the file this binary was started from, which a package upgrade replaces
         * (/proc/self/exe names the deleted old file then, and still opens it: the way back). */
        if (readlink_malloc("/proc/self/exe", &exe) >= 0)
                m->exe_path = exe;
        m->self_exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        if (m->self_exe_fd < 0)
                m->self_exe_fd = -EBADF;
        return m;
}

int manager_new(const ManagerParams *params, Generation *generation, SocketSet *sockets, Manager **ret) {
        _cleanup_(generation_unrefp) Generation *g = generation;
        _cleanup_(manager_freep) Manager *m = NULL;
        PoolConfig pc;
        int r;

        m = manager_alloc(params);
        if (!m) {
                socket_set_done(sockets);
                cgroup_manager_free(params->cgroups);
                return log_oom();
        }
        m->started_usec = now_usec(CLOCK_MONOTONIC);
        m->started_realtime_usec = now_usec(CLOCK_REALTIME);
        g->number = 1;
        generation_assign(&m->target, g);
        generation_assign(&m->first, g);
        generation_assign(&m->stable, g);

        srandom((unsigned) (getpid() ^ now_usec(CLOCK_MONOTONIC)));
        r = manager_setup_sockets(m, sockets);
        if (r < 0)
                return r;
        r = manager_setup_loop(m);
        if (r < 0)
                return r;
        r = manager_watch_relay_signals(m);
        if (r < 0)
                return r;
        r = manager_setup_endpoints(m);
        if (r < 0)
                return r;
        r = manager_setup_timers(m);
        if (r < 0)
                return r;

        pc = generation_pool_config(m->target, m->ncpus);
        m->pool = pool_new(&pc);
        if (!m->pool)
                return log_oom();

        *ret = TAKE_PTR(m);
        return 0;
}

/* The sockets of an upgrade's state, of one set, as a SocketSet that owns them. */
static int sockets_from_state(UpgradeState *s, UpgradeSocketSet which, SocketSet *ret) {
        size_t n = 0;

        for (size_t i = 0; i < s->n_sockets; i++)
                n += s->sockets[i].set == which;
        ret->sockets = calloc(MAX(n, 1U), sizeof(ListenSocket));
        if (!ret->sockets)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_sockets; i++) {
                UpgradeSocket *u = &s->sockets[i];
                if (u->set != which)
                        continue;
                /* Close-on-exec again: it was cleared for the exec. */
                (void) fcntl(u->fd, F_SETFD, FD_CLOEXEC);
                ret->sockets[ret->n++] = (ListenSocket) {
                        .fd = TAKE_FD(u->fd),
                        .name = TAKE_PTR(u->name),
                        .family = u->family,
                        .type = u->type,
                        .unix_path = TAKE_PTR(u->unix_path),
                        .unix_id = { .dev = (dev_t) u->unix_dev, .ino = (ino_t) u->unix_ino },
                };
        }
        return 0;
}

int manager_resume(const ManagerParams *params, UpgradeState *state, Manager **ret, bool *ret_fds_taken,
                   char **ret_reason) {
        _cleanup_(manager_freep) Manager *m = NULL;
        SocketSet sockets = {};
        int r;

        *ret_fds_taken = false;
        m = manager_alloc(params);
        if (!m) {
                cgroup_manager_free(params->cgroups);
                return log_oom();
        }
        if (params->upgrade_failure && !(m->upgrade_failure = strdup(params->upgrade_failure)))
                return log_oom();
        srandom((unsigned) (getpid() ^ now_usec(CLOCK_MONOTONIC)));
        r = manager_setup_loop(m);
        if (r < 0)
                return r;
        r = manager_upgrade_restore(m, state, ret_fds_taken, ret_reason);
        if (r < 0) {
                if (!*ret_fds_taken) {
                        /* Freeing the manager must not touch what the state still owns: there is no worker
                         * to kill, and the pool's records name processes it never had. */
                        m->pool = pool_free(m->pool);
                }
                return r;
        }
        if (state->control_fd >= 0) {
                UnixPathId id = { .dev = (dev_t) state->control_dev, .ino = (ino_t) state->control_ino };
                r = control_server_adopt(m->event, TAKE_FD(state->control_fd), state->control_path, &id,
                                         PRIORITY_NOTIFY, manager_on_control, m, &m->control);
                if (r < 0)
                        return log_error_errno(r, "upgrade: cannot take over the control socket: %m");
                /* The clients that asked, answered once the loop runs (manager_run()). */
                for (size_t i = 0; i < state->n_waiter_fds; i++)
                        if (control_server_adopt_waiter(m->control, TAKE_FD(state->waiter_fds[i])) < 0)
                                log_debug("upgrade: a waiting client went away");
        }
        /* From here on the sockets are ours. */
        if (sockets_from_state(state, UPGRADE_SOCKETS_WORKERS, &sockets) < 0 ||
            sockets_from_state(state, UPGRADE_SOCKETS_STATUS, &m->status_sockets) < 0) {
                socket_set_done(&sockets);
                return log_oom();
        }
        r = manager_setup_sockets(m, &sockets);
        if (r < 0)
                return r;
        r = manager_watch_relay_signals(m);
        if (r < 0)
                return r;
        r = manager_setup_httpd(m);
        if (r < 0)
                return r;
        r = manager_setup_timers(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* corral is on its way out: a stop signal arriving now must not turn exit 0 into death by that signal once
 * the signal sources are gone and sd-event unblocks what it blocked for them. */
static void manager_ignore_signals(Manager *m) {
        /* Never SIGCHLD: ignored, it would make the kernel reap every child at once, here and, across the
         * exec of an upgrade that goes back, in the image that comes back, whose child sources would fail. */
        for (int sig = 1; sig <= 64; sig++)
                if (sig != SIGCHLD && (m->watched_signals & (UINT64_C(1) << (sig - 1))))
                        (void) signal(sig, SIG_IGN);
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        manager_ignore_signals(m);
        /* Whatever is left goes with corral: its leaf killed, the process killed and reaped on free. */
        manager_kill_workers(m);
        while (m->workers)
                worker_free(m->workers);
        manager_free_gone(m);
        manager_free_relay(m);
        cgroup_manager_free(m->cgroups);
        sd_event_source_disable_unref(m->sample_timer);
        sd_event_source_disable_unref(m->sample_more);
        pool_free(m->pool);
        control_server_free(m->control);
        sd_event_source_disable_unref(m->drain_stop_timer);
        httpd_free(m->httpd);
        agent_server_free(m->agent);
        socket_set_done(&m->status_sockets);
        notify_socket_free(m->notify);
        sd_event_source_disable_unref(m->plan_timer);
        sd_event_source_disable_unref(m->post_source);
        sd_event_unref(m->event);
        generation_unref(m->target);
        generation_unref(m->stable);
        generation_unref(m->relayed);
        generation_unref(m->first);
        slot_sockets_free(m->slot_sockets); /* before the group it borrows */
        socket_set_done(&m->sockets);
        free(m->sample_batch);
        free(m->fds);
        free(m->fd_names);
        free(m->status);
        free(m->reload_warnings);
        free(m->reload_failure);
        m->upgrade_sentinel = sd_event_source_disable_unref(m->upgrade_sentinel);
        sd_event_source_disable_unref(m->upgrade_timer);
        safe_close(m->upgrade_output);
        safe_close(m->upgrade_check_fd);
        safe_close(m->self_exe_fd);
        free(m->exe_path);
        free(m->upgraded_from);
        free(m->upgrade_failure);
        free(m);
        return NULL;
}

int manager_run(Manager *m) {
        int r;

        for (size_t i = 0; i < m->sockets.n; i++)
                log_debug("socket '%s' on fd %d", m->sockets.sockets[i].name, m->sockets.sockets[i].fd);
        if (m->upgraded_from)
                manager_upgrade_resumed(m, m->upgrade_failure);
        else
                log_info("starting %u worker%s: %s", pool_config(m->pool)->count,
                         pool_config(m->pool)->count == 1 ? "" : "s", m->target->exec_path);

        manager_reconcile(m);
        manager_free_gone(m);
        r = sd_event_loop(m->event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                (void) notify_manager_errno(r);
                return EXIT_SOFTWARE;
        }
        log_info("all workers stopped, exiting");
        return r;
}
