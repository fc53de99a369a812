/* SPDX-License-Identifier: MIT */
/* Manager: loop, signals, configs per generation, worker events -> pool reports, pool plans -> actions,
 * status to systemd, reload and shutdown orchestration. */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "control.h"
#include "env.h"
#include "log.h"
#include "manager-internal.h"
#include "message-ids.h"
#include "notify.h"
#include "pool.h"
#include "spawn.h"
#include "status.h"
#include "worker.h"

static int manager_watch_relay_signals(Manager *m, const Config *c);
static void manager_start_stop(Manager *m, const char *signame);
static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata);

Config *generation_config(const Manager *m, unsigned generation) {
        return generation == m->stable.number ? m->stable.config : m->target.config;
}

void worker_fields(LogFields *f, const Worker *w, const PoolWorker *pw) {
        log_fields_add(f, "WORKER_PID=%d", (int) w->pid);
        log_fields_add(f, "WORKER_SLOT=%u", pw->slot);
        log_fields_add(f, "WORKER_GENERATION=%u", pw->generation);
}

static void generation_done(Generation *g, const Generation *other) {
        /* The stable and target generations may share one config. */
        if (!other || other->config != g->config) {
                config_free(g->config);
                free(g->exec_path);
        }
        *g = (Generation) {};
}

static int generation_init(Generation *g, Config *config, unsigned number, char **ret_error) {
        char *path = NULL;
        int r;

        r = find_executable(config->exec_start[0], &path);
        if (r < 0) {
                if (ret_error) {
                        errno = -r;
                        *ret_error = strdup_printf("ExecStart=: cannot run '%s': %m", config->exec_start[0]);
                }
                return r;
        }
        *g = (Generation) { .config = config, .exec_path = path, .number = number };
        return 0;
}

static PoolConfig pool_config_from(const Config *c, unsigned ncpus) {
        return (PoolConfig) {
                .count = config_worker_count(c, ncpus),
                .max_surge = c->max_surge,
                .max_unavailable = c->max_unavailable,
                .min_uptime_usec = c->min_uptime_usec,
                .restart_usec = c->restart_usec,
                .backoff_max_usec = c->backoff_max_usec,
                .prevent_exit_status = c->restart_prevent_exit_status,
                .give_up_failures = c->give_up_failures,
        };
}

static unsigned usable_cpus(void) {
        cpu_set_t set;

        if (sched_getaffinity(0, sizeof set, &set) < 0)
                return 1;
        return MAX(CPU_COUNT(&set), 1);
}

/* ---- status ---- */

static void manager_update_status(Manager *m) {
        _cleanup_free_ char *s = NULL;
        uint64_t memory = 0;
        char totals[48] = "";
        PoolCounts c;

        pool_counts(m->pool, &c);
        /* Totals from the last samples, in whole MiB so STATUS= changes only when they really move. */
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                if (pw->state != WORKER_STOPPING)
                        memory += pw->memory_bytes;
        if (memory > 0)
                snprintf(totals, sizeof totals, ", %lluM memory", (unsigned long long) (memory >> 20));
        if (pool_is_stopping(m->pool))
                s = strdup_printf("stopping: %u worker%s left", c.workers, c.workers == 1 ? "" : "s");
        else if (pool_is_rolling(m->pool)) {
                unsigned done, total;
                pool_roll_progress(m->pool, &done, &total);
                s = strdup_printf("reloading: %u/%u replaced, generation %u", done, total,
                                  pool_generation(m->pool));
        } else if (!m->ready_sent)
                s = strdup_printf("starting: %u/%u workers ready", c.ready, c.wanted);
        else if (c.ready < c.wanted)
                s = strdup_printf("degraded: %u/%u workers ready, generation %u (%u restarting, %u disabled)%s",
                                  c.ready, c.wanted, pool_generation(m->pool), c.waiting + c.starting,
                                  c.disabled, totals);
        else
                s = strdup_printf("%u/%u workers ready, generation %u%s", c.ready, c.wanted,
                                  pool_generation(m->pool), totals);
        if (!s || streq_ptr(s, m->status))
                return;

        free(m->status);
        m->status = TAKE_PTR(s);

        if (!m->ready_sent && pool_all_ready(m->pool)) {
                LogFields f = {};

                m->ready_sent = true;
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
                const Config *tc = m->target.config;
                (void) notify_manager_extend_timeout(tc->ready_timeout_usec + tc->stop_timeout_usec + 5 * USEC_PER_SEC);
        }
}

/* ---- reload results ---- */

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
        if (ok)
                m->reloads_ok++;
        else
                m->reloads_failed++;
        status_count_reload(&m->counters, now_usec(CLOCK_MONOTONIC) - m->reload_started_usec);
        if (m->control) {
                _cleanup_free_ char *reply = ok ? strdup_printf("ok: generation %u\n", pool_generation(m->pool)) :
                                                  strdup_printf("error: reload failed: %s\n", why);
                control_server_finish_waiters(m->control, reply ?: (ok ? "ok\n" : "error: reload failed\n"));
        }
        /* Every way out of a reload tells systemd it is over, success or not. */
        free(m->status);
        m->status = NULL;
        (void) notify_manager_ready(ok ? "reload done" : "reload failed");
}

void manager_roll_aborted(Manager *m, const char *why) {
        /* The pool went back to the stable generation: so do new spawns. */
        if (m->target.config != m->stable.config)
                generation_done(&m->target, &m->stable);
        m->target = m->stable;
        manager_reload_finished(m, false, why);
}

/* ---- plan execution ---- */

static int on_memory_events(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        char buf[512];

        /* kernfs keeps POLLPRI raised until the file is read again through this fd. Only this worker's
         * events changed: only it is sampled. */
        if (lseek(fd, 0, SEEK_SET) >= 0)
                (void) !read(fd, buf, sizeof buf);
        manager_sample_worker(w->userdata, w);
        return 0;
}

static int manager_spawn(Manager *m, PoolWorker *pw) {
        Generation *g = pw->generation == m->stable.number ? &m->stable : &m->target;
        _cleanup_strv_free_ char **envp = NULL;
        WorkerEnvParams ep = {
                .n_fds = (unsigned) m->sockets.n,
                .fd_names = m->fd_names,
                .notify_socket = notify_socket_address(m->notify),
                .index = pw->slot,
                .generation = pw->generation,
                .count = pool_config(m->pool)->count,
                .corral_pid = m->pid,
                .watchdog_usec = g->config->worker_watchdog_usec,
        };
        SpawnParams sp = {
                .path = g->exec_path,
                .argv = g->config->exec_start,
                .fds = m->fds,
                .n_fds = m->sockets.n,
        };
        CgroupWorker *cw = NULL;
        WorkerStartParams wp = {
                .spawn = &sp,
                .ready_timeout_usec = g->config->ready_mode == READY_EXEC ? USEC_INFINITY : g->config->ready_timeout_usec,
                .ready_delay_usec = g->config->ready_mode == READY_DELAY ? g->config->ready_delay_usec : USEC_INFINITY,
                .child_priority = PRIORITY_CHILD,
                .timer_priority = PRIORITY_TIMER,
                .handler = manager_on_worker_event,
                .userdata = m,
        };
        Worker *w;
        LogFields f = {};
        int r;

        r = env_build(environ, &ep, &envp, &sp.pid_entries);
        if (r < 0)
                return r;
        sp.envp = envp;

        /* Accounting is worth having, not worth refusing a worker for: without its leaf the worker runs
         * uncounted (logged), never not at all. */
        if (m->cgroups) {
                r = cgroup_worker_new(m->cgroups, pw->slot, pw->id, &cw);
                if (r < 0)
                        log_warning_errno(r, "Failed to create the cgroup of worker %u, running it without: %m",
                                          pw->slot);
                else
                        sp.n_cgroup_procs_fds = cgroup_worker_procs_fds(cw, sp.cgroup_procs_fds);
        }

        if (cw && (g->config->cgroup_memory_high != UINT64_MAX || g->config->cgroup_memory_max != UINT64_MAX)) {
                r = cgroup_worker_set_memory_limits(cw, g->config->cgroup_memory_high, g->config->cgroup_memory_max);
                if (r != 0 && !m->memory_limits_warned) {
                        m->memory_limits_warned = true;
                        if (r == 1)
                                log_warning("MemoryHigh= needs cgroup v2; only MemoryLimit= applies here");
                        else
                                log_warning_errno(r, "MemoryHigh=/MemoryLimit= not applied: %m");
                }
        }

        r = worker_start(m->event, &wp, pw, &w);
        if (cw)
                cgroup_worker_close_procs_fds(cw);
        if (r < 0) {
                cgroup_worker_free(cw);
                return r;
        }
        pw->userdata = w;
        w->cgroup = cw;
        if (cw) {
                (void) cgroup_worker_attach_pid(cw, w->pid);
                /* memory.high breaches and OOM kills are seen at once, not at the next sample. */
                int efd = cgroup_worker_events_fd(cw);
                if (efd >= 0 && sd_event_add_io(m->event, &w->events_source, efd, EPOLLPRI, on_memory_events, w) >= 0) {
                        (void) sd_event_source_set_priority(w->events_source, PRIORITY_TIMER);
                        (void) sd_event_source_set_description(w->events_source, "worker-memory-events");
                }
        }
        recycle_state_init(&w->recycle, &(RecyclePolicy) RECYCLE_POLICY(g->config), w->started_usec,
                           (double) random() / ((double) RAND_MAX + 1.0));
        worker_fields(&f, w, pw);
        log_event(LOG_INFO, MESSAGE_ID_WORKER_STARTED, &f, "worker %u (pid %d, generation %u) started", pw->slot,
                  (int) w->pid, pw->generation);
        return 0;
}

static void manager_stop_worker(Manager *m, PoolWorker *pw) {
        Worker *w = pw->userdata;
        const Config *c = generation_config(m, pw->generation);

        /* A record no process was started for has nothing to wait for: it is gone now, or the pool would
         * wait for its exit forever. */
        if (!w) {
                (void) pool_worker_exited(m->pool, pw, &(PoolExit) {}, now_usec(CLOCK_MONOTONIC), NULL);
                return;
        }
        log_debug("stopping worker %u (pid %d): %s", pw->slot, (int) w->pid, stop_reason_to_string(pw->stop_reason));
        if (m->term_signals > 1)
                worker_kill(w);
        else if (worker_stop(w, w->abort_on_stop ? SIGABRT : c->stop_signal, c->stop_timeout_usec) < 0)
                worker_kill(w);
}

static void manager_handle_roll_event(Manager *m, PoolRollEvent ev) {
        switch (ev) {
        case POOL_ROLL_DONE:
                if (m->stable.config != m->target.config)
                        generation_done(&m->stable, &m->target);
                m->stable = m->target;
                manager_reload_finished(m, true, NULL);
                break;
        case POOL_ROLL_ROLLBACK_DONE:
                log_notice("rolled back: every worker is generation %u again", pool_generation(m->pool));
                break;
        case POOL_ROLL_ROLLBACK_FAILED:
                log_error("rollback to generation %u failed too; keeping the workers that serve",
                          pool_stable_generation(m->pool));
                break;
        case POOL_ROLL_NONE:
                break;
        }
}

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
                manager_handle_roll_event(m, plan.roll_event);
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
                        int r;

                        if (plan.actions[i].type == POOL_ACTION_STOP) {
                                manager_stop_worker(m, pw);
                                continue;
                        }
                        r = manager_spawn(m, pw);
                        if (r < 0) {
                                PoolExit e = {};
                                PoolWorker copy = *pw;
                                Worker fake = { .pid = 0 };
                                usec_t delay = 0;
                                PoolVerdict v;

                                log_error_errno(r, "Failed to start worker %u: %m", pw->slot);
                                v = pool_worker_exited(m->pool, pw, &e, now_usec(CLOCK_MONOTONIC), &delay);
                                manager_log_verdict(m, &fake, &copy, v, delay, "could not be started");
                                again = true;
                        }
                }
                if (!again)
                        break;
        }

        if (plan.wakeup_usec != USEC_INFINITY) {
                (void) sd_event_source_set_time(m->plan_timer, plan.wakeup_usec);
                (void) sd_event_source_set_enabled(m->plan_timer, SD_EVENT_ONESHOT);
        } else
                (void) sd_event_source_set_enabled(m->plan_timer, SD_EVENT_OFF);

        manager_update_status(m);
}

static int on_post(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        while (m->dead) {
                Worker *w = m->dead;
                m->dead = w->next_dead;
                cgroup_worker_free(w->cgroup);
                worker_free(w);
        }
        manager_reconcile(m);

        if (pool_is_stopping(m->pool) && pool_is_empty(m->pool))
                return sd_event_exit(m->event, m->exit_code);
        return 0;
}

static int on_sample_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        manager_sample(m);
        /* The interval of the target generation, so a reload can change it. */
        (void) sd_event_source_set_time_relative(s, m->target.config->check_interval_usec);
        return 0;
}

static int on_plan_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        /* Nothing to do here: the post source plans after every dispatch. */
        return 0;
}

/* ---- signals: stop and reload ---- */

static void manager_start_stop(Manager *m, const char *signame) {
        PoolCounts c;
        LogFields f = {};

        /* signame NULL: corral gives up by itself; only signals count towards "the second one kills". */
        if (signame)
                m->term_signals++;
        if (m->term_signals > 1) {
                log_warning("received %s again, killing every worker now", signame);
                for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                        if (pw->userdata)
                                worker_kill(pw->userdata);
                return;
        }
        if (pool_is_stopping(m->pool))
                return;
        pool_counts(m->pool, &c);
        log_fields_add(&f, "WORKER_COUNT=%u", c.workers);
        log_event(LOG_INFO, MESSAGE_ID_POOL_STOPPING, &f, "%s%s, stopping %u worker%s", signame ? "received " : "",
                  signame ?: "giving up", c.workers, c.workers == 1 ? "" : "s");
        if (m->reloading)
                manager_reload_finished(m, false, "corral is stopping");
        pool_stop(m->pool);
        free(m->status);
        m->status = strdup_printf("stopping: %u worker%s left", c.workers, c.workers == 1 ? "" : "s");
        (void) notify_manager_stopping(m->status ?: "stopping");
}

/* Re-reads the config and starts a roll to a new generation. Returns 0 when the roll started, or a
 * negative errno when the reload failed at once (it has been reported then). */
int manager_reload(Manager *m) {
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_free_ char *error = NULL;
        Generation g = {};
        PoolConfig pc;
        LogFields f = {};
        int r, generation;

        if (pool_is_stopping(m->pool))
                return -ESHUTDOWN;

        (void) notify_manager_reloading("reloading: reading configuration");
        if (!m->reloading)
                m->reload_started_usec = now_usec(CLOCK_MONOTONIC);
        m->reloading = true;

        r = config_load(m->params.config_path, m->params.args, m->params.n_args, m->params.command, &config, &error);
        if (r < 0) {
                manager_reload_finished(m, false, error ?: "failed to load the configuration");
                return r;
        }
        if (!strv_equal(config->listen, m->target.config->listen))
                log_warning("reload: [Socket] Listen= cannot change while corral runs; restart corral to change sockets");
        if (!streq_ptr(config->status_listen, m->target.config->status_listen))
                log_warning("reload: [Health] Listen= cannot change while corral runs; restart corral to change it");

        r = generation_init(&g, config, 0, &error);
        if (r < 0) {
                manager_reload_finished(m, false, error ?: "cannot run ExecStart=");
                return r;
        }
        TAKE_PTR(config);
        (void) manager_watch_relay_signals(m, g.config);

        /* The roll replaces the heaviest workers first: fresh figures for the ranking. Only figures: an
         * extra sample must not count towards the recycling policy's consecutive checks. */
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next) {
                CgroupSample cs;
                (void) manager_read_accounting(pw, &cs);
        }

        pc = pool_config_from(g.config, m->ncpus);
        generation = pool_reload(m->pool, &pc);
        if (generation < 0) {
                generation_done(&g, NULL);
                manager_reload_finished(m, false, "out of memory");
                return log_oom();
        }
        g.number = (unsigned) generation;

        /* A reload during a roll supersedes the roll's target; the stable generation stays. */
        if (m->target.config != m->stable.config)
                generation_done(&m->target, &m->stable);
        m->target = g;

        log_fields_add(&f, "WORKER_GENERATION=%u", g.number);
        log_event(LOG_INFO, MESSAGE_ID_RELOAD_STARTED, &f, "reloading: rolling %u workers to generation %u", pc.count,
                  g.number);
        return 0;
}

/* Passes sig on to every worker that is not being stopped, through its pidfd. */
static void manager_relay_signal(Manager *m, int sig) {
        unsigned n = 0;
        LogFields f = {};

        if (!config_relays_signal(m->target.config, sig)) {
                log_notice("ignoring SIG%s: not in RelaySignals=", signal_to_string(sig) ?: "?");
                return;
        }
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                if (pw->state != WORKER_STOPPING && pw->userdata && worker_signal(pw->userdata, sig) >= 0)
                        n++;
        m->counters.relayed_signals++;
        log_fields_add(&f, "SIGNAL=SIG%s", signal_to_string(sig) ?: "?");
        log_fields_add(&f, "WORKER_COUNT=%u", n);
        log_event(LOG_INFO, MESSAGE_ID_SIGNAL_RELAYED, &f, "relayed SIG%s to %u worker%s", signal_to_string(sig) ?: "?",
                  n, n == 1 ? "" : "s");
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

/* The relayed signals of a config, and always USR1, USR2 and WINCH: without a source their default
 * action would kill corral whenever RelaySignals= leaves them out. */
static int manager_watch_relay_signals(Manager *m, const Config *c) {
        int r;

        for (int sig = 1; sig <= 64; sig++)
                if (config_relays_signal(c, sig) || sig == SIGUSR1 || sig == SIGUSR2 || sig == SIGWINCH) {
                        r = manager_watch_signal(m, sig);
                        if (r < 0)
                                return r;
                }
        return 0;
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
        default:
                manager_relay_signal(m, (int) si->ssi_signo);
                break;
        }
        return 0;
}

/* ---- life cycle ---- */

static const int manager_signals[] = { SIGTERM, SIGINT, SIGHUP };

int manager_new(const ManagerParams *params, Config *config, SocketSet *sockets, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_(config_freep) Config *c = config;
        _cleanup_free_ char *error = NULL;
        PoolConfig pc;
        sigset_t ss;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m) {
                socket_set_done(sockets);
                return log_oom();
        }
        m->sockets = *sockets;
        *sockets = (SocketSet) {};
        m->params = *params;
        m->pid = getpid();
        m->ncpus = usable_cpus();
        m->started_usec = now_usec(CLOCK_MONOTONIC);

        r = generation_init(&m->target, c, 1, &error);
        if (r < 0)
                return log_error_errno(r, "%s", error);
        TAKE_PTR(c);
        m->stable = m->target;

        m->fds = calloc(MAX(m->sockets.n, 1U), sizeof(int));
        m->fd_names = socket_set_names(&m->sockets);
        if (!m->fds || !m->fd_names)
                return log_oom();
        for (size_t i = 0; i < m->sockets.n; i++)
                m->fds[i] = m->sockets.sockets[i].fd;

        /* sd-event needs SIGCHLD blocked before child sources exist. */
        if (sigemptyset(&ss) < 0 || sigaddset(&ss, SIGCHLD) < 0 || sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return log_error_errno(errno, "Failed to block SIGCHLD: %m");

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        (void) sd_event_set_watchdog(m->event, true);

        for (size_t i = 0; i < ELEMENTSOF(manager_signals); i++) {
                r = manager_watch_signal(m, manager_signals[i]);
                if (r < 0)
                        return r;
        }
        r = manager_watch_relay_signals(m, m->target.config);
        if (r < 0)
                return r;

        r = notify_socket_new(m->event, PRIORITY_NOTIFY, manager_on_worker_notify, m, &m->notify);
        if (r < 0)
                return log_error_errno(r, "Failed to create the worker notify socket: %m");

        if (params->status_socket) {
                m->status_sockets = *params->status_socket;
                *params->status_socket = (SocketSet) {};
        }
        if (m->status_sockets.n > 0) {
                /* httpd owns the fd it is given; the set keeps its own, to unlink a UNIX path at exit. */
                int fd = fcntl(m->status_sockets.sockets[0].fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return log_error_errno(errno, "Failed to duplicate the status socket: %m");
                r = httpd_new(m->event, fd, PRIORITY_NOTIFY, manager_on_http, m, &m->httpd);
                if (r < 0)
                        return log_error_errno(r, "Failed to serve the health endpoint: %m");
        }

        if (params->cgroup_root) {
                _cleanup_free_ char *reason = NULL;
                r = cgroup_manager_new(params->cgroup_root, "/proc", 0, &m->cgroups, &reason);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up worker accounting, using /proc: %m");
                else
                        log_info("accounting: %s", reason);
        }
        if (!m->cgroups) {
                _cleanup_free_ char *reason = NULL;
                r = cgroup_manager_new(NULL, "/proc", 0, &m->cgroups, &reason);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up /proc accounting, running without: %m");
                else if (!params->cgroup_root)
                        log_info("accounting: %s", reason);
        }
        srandom((unsigned) (getpid() ^ now_usec(CLOCK_MONOTONIC)));
        r = sd_event_add_time_relative(m->event, &m->sample_timer, CLOCK_MONOTONIC,
                                       m->target.config->check_interval_usec, 0, on_sample_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the sampling timer: %m");
        (void) sd_event_source_set_priority(m->sample_timer, PRIORITY_SAMPLE);
        (void) sd_event_source_set_description(m->sample_timer, "sample");
        (void) sd_event_source_set_enabled(m->sample_timer, SD_EVENT_ON);

        if (params->control_path) {
                r = control_server_new(m->event, params->control_path, PRIORITY_NOTIFY, manager_on_control, m, &m->control);
                if (r < 0)
                        return log_error_errno(r, "Failed to create the control socket '%s': %m", params->control_path);
        }

        pc = pool_config_from(m->target.config, m->ncpus);
        m->pool = pool_new(&pc);
        if (!m->pool)
                return log_oom();

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

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* Freeing a worker's child source kills and reaps a process that is still there. */
        for (PoolWorker *pw = m->pool ? pool_workers(m->pool) : NULL; pw; pw = pw->next)
                if (pw->userdata) {
                        Worker *w = pw->userdata;
                        cgroup_worker_kill(w->cgroup);
                        cgroup_worker_free(w->cgroup);
                        worker_free(w);
                }
        while (m->dead) {
                Worker *w = m->dead;
                m->dead = w->next_dead;
                cgroup_worker_free(w->cgroup);
                worker_free(w);
        }
        cgroup_manager_free(m->cgroups);
        sd_event_source_disable_unref(m->sample_timer);
        pool_free(m->pool);
        control_server_free(m->control);
        httpd_free(m->httpd);
        socket_set_done(&m->status_sockets);
        notify_socket_free(m->notify);
        sd_event_source_disable_unref(m->plan_timer);
        sd_event_source_disable_unref(m->post_source);
        sd_event_unref(m->event);
        if (m->target.config != m->stable.config)
                generation_done(&m->target, NULL);
        generation_done(&m->stable, NULL);
        socket_set_done(&m->sockets);
        free(m->fds);
        free(m->fd_names);
        free(m->status);
        free(m);
        return NULL;
}

int manager_run(Manager *m) {
        int r;

        for (size_t i = 0; i < m->sockets.n; i++)
                log_debug("socket '%s' on fd %d", m->sockets.sockets[i].name, m->sockets.sockets[i].fd);
        log_info("starting %u worker%s: %s", pool_config(m->pool)->count, pool_config(m->pool)->count == 1 ? "" : "s",
                 m->target.exec_path);

        manager_reconcile(m);
        r = sd_event_loop(m->event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                (void) notify_manager_errno(r);
                return EXIT_SOFTWARE;
        }
        log_info("all workers stopped, exiting");
        return r;
}
