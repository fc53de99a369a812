/* SPDX-License-Identifier: MIT */
/* Manager: upgrades in place (`corral upgrade`). The new binary first runs as a sentinel that must read
 * this very state; then, at a quiet point, the state goes into a sealed memfd and corral execs the new
 * binary in its own pid with every fd it needs kept open; the new image restores the manager from the
 * state and adopts each worker through its pidfd. Workers are never signalled. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "manager-internal.h"
#include "message-ids.h"
#include "upgrade.h"

#define UPGRADE_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define UPGRADE_OUTPUT_MAX 1024

/* ---- the state ---- */

/* Adds g to the generations of s unless it is there. */
static int state_add_generation(UpgradeState *s, size_t allocated, const Generation *g) {
        const Config *c = g->config;

        for (size_t i = 0; i < s->n_generations; i++)
                if (s->generations[i].number == g->number)
                        return 0;
        if (s->n_generations >= allocated)
                return -ENOBUFS;
        /* Borrowed: the state is written, never freed with upgrade_state_done(). */
        s->generations[s->n_generations++] = (UpgradeGeneration) {
                .number = g->number,
                .exec_path = g->exec_path,
                .config_path = c->path,
                .config_text = c->text,
                .config_size = c->text_size,
                .environment = g->environment,
                .working_directory = g->working_directory,
                .credentials_set = g->credentials.set,
                .uid = g->credentials.uid,
                .gid = g->credentials.gid,
                .groups = g->credentials.groups,
                .n_groups = g->credentials.n_groups,
        };
        return 0;
}

/* Frees what manager_upgrade_state() allocated; the strings in it are borrowed. */
static void state_release(UpgradeState *s) {
        free(s->sockets);
        free(s->generations);
        free(s->workers);
        free(s->waiter_fds);
        pool_image_done(&s->pool);
        *s = (UpgradeState) {};
}

static void state_add_sockets(UpgradeState *s, const SocketSet *set, UpgradeSocketSet which) {
        for (size_t i = 0; i < set->n; i++) {
                const ListenSocket *l = &set->sockets[i];
                s->sockets[s->n_sockets++] = (UpgradeSocket) {
                        .set = which,
                        .fd = l->fd,
                        .name = l->name,
                        .family = l->family,
                        .type = l->type,
                        .unix_path = l->unix_path,
                        .unix_dev = (uint64_t) l->unix_id.dev,
                        .unix_ino = (uint64_t) l->unix_id.ino,
                };
        }
}

/* The whole state as it is now. Only at a quiet point (see manager_upgrade_busy()): every worker ready. */
static int manager_upgrade_state(Manager *m, UpgradeState *ret) {
        UpgradeState s = {
                .writer_version = (char *) CORRAL_VERSION,
                .pid = m->pid,
                .started_usec = m->started_usec,
                .started_realtime_usec = m->started_realtime_usec,
                .target = m->target->number,
                .stable = m->stable->number,
                .first = m->first->number,
                .relayed = m->relayed ? m->relayed->number : m->target->number,
                .drained = m->drained,
                .ready_sent = m->ready_sent,
                .exit_code = m->exit_code,
                .counters = m->counters,
                .reload_warnings = m->reload_warnings,
                .reload_failure = m->reload_failure,
                .n_worker_uids = m->n_worker_uids,
                .untraced = m->untraced,
                .notify_rejected = notify_socket_rejected(m->notify),
                .exe_path = m->exe_path,
                .nofile_soft = m->params.nofile_soft,
                .previous_exe_fd = m->self_exe_fd,
                .notify_fd = notify_socket_fd(m->notify),
                .control_fd = -EBADF,
                .control_base = (char *) m->params.control_base,
        };
        size_t n_workers = 0, n_generations;
        int r;

        memcpy(s.worker_uids, m->worker_uids, MIN(sizeof(m->worker_uids), sizeof(s.worker_uids)));
        if (m->control) {
                UnixPathId id;
                s.control_fd = control_server_fd(m->control, &id);
                s.control_path = (char *) m->params.control_path;
                s.control_dev = (uint64_t) id.dev;
                s.control_ino = (uint64_t) id.ino;
                r = control_server_waiter_fds(m->control, &s.waiter_fds, &s.n_waiter_fds);
                if (r < 0)
                        return r;
        }
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next)
                n_workers++;
        n_generations = n_workers + 4;
        s.sockets = calloc(MAX(m->sockets.n + m->status_sockets.n, 1U), sizeof(UpgradeSocket));
        s.generations = calloc(n_generations, sizeof(UpgradeGeneration));
        s.workers = calloc(MAX(n_workers, 1U), sizeof(UpgradeWorker));
        if (!s.sockets || !s.generations || !s.workers) {
                state_release(&s);
                return -ENOMEM;
        }
        state_add_sockets(&s, &m->sockets, UPGRADE_SOCKETS_WORKERS);
        state_add_sockets(&s, &m->status_sockets, UPGRADE_SOCKETS_STATUS);
        (void) state_add_generation(&s, n_generations, m->target);
        (void) state_add_generation(&s, n_generations, m->stable);
        (void) state_add_generation(&s, n_generations, m->first);
        if (m->relayed)
                (void) state_add_generation(&s, n_generations, m->relayed);
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next) {
                Worker *w = pw->process;
                (void) state_add_generation(&s, n_generations, w->generation);
                s.workers[s.n_workers++] = (UpgradeWorker) {
                        .id = w->id,
                        .slot = w->slot,
                        .generation = w->generation->number,
                        .pid = w->pid,
                        .pidfd = worker_pidfd(w),
                        .started_usec = w->started_usec,
                        .watchdog_usec = worker_watchdog_deadline(w),
                        .recycle = w->recycle,
                };
                worker_output_fds(w->output, s.workers[s.n_workers - 1].output_fds);
        }
        r = pool_image(m->pool, &s.pool);
        if (r < 0) {
                state_release(&s);
                return r;
        }
        *ret = s;
        return 0;
}

/* Why an upgrade is refused at once: what would not be over within its time. */
static const char *manager_upgrade_refused(Manager *m) {
        if (pool_is_stopping(m->pool) || m->stop_pending)
                return "corral is stopping";
        if (m->reloading || pool_is_rolling(m->pool))
                return "a reload is in progress";
        return NULL;
}

/* Why an upgrade cannot happen now, or NULL. Only ready workers cross it: a starting worker's exec status
 * pipe and ready timeout, a stopping one's kill timer, would have to cross too, for a moment's wait. */
static const char *manager_upgrade_busy(Manager *m) {
        if (pool_is_stopping(m->pool) || m->stop_pending)
                return "corral is stopping";
        if (m->reloading || pool_is_rolling(m->pool))
                return "a reload is in progress";
        for (PoolWorker *pw = pool_workers(m->pool); pw; pw = pw->next) {
                if (pw->state == WORKER_STOPPING)
                        return "a worker is being stopped";
                if (pw->state != WORKER_READY || !pw->process || !pw->process->exec_done || !pw->process->child_source)
                        return "a worker is starting";
        }
        if (m->gone)
                return "a worker is exiting";
        /* Requests in flight would see their connection closed by the exec: let them finish (each is
         * bounded in time) rather than fail a `corral status` or a health check. */
        if (m->control && control_server_n_busy(m->control) > 0)
                return "a control request is being answered";
        if (m->httpd && httpd_n_connections(m->httpd) > 0)
                return "a health or metrics request is being answered";
        /* Relayed lines queued for corral's own output would be lost with the image. */
        if (manager_output_pending(m) > 0)
                return "relayed worker output is waiting for corral's stdout";
        return NULL;
}

/* ---- the old image ---- */

static void manager_upgrade_cleanup(Manager *m) {
        /* A sentinel still running is nobody's child source's any more: the orphan reaper's once it exits. */
        m->upgrade_sentinel = sd_event_source_disable_unref(m->upgrade_sentinel);
        m->upgrade_timer = sd_event_source_disable_unref(m->upgrade_timer);
        m->upgrade_output = safe_close(m->upgrade_output);
        m->upgrade_check_fd = safe_close(m->upgrade_check_fd);
        m->upgrading = m->upgrade_check_pending = m->upgrade_exec_pending = false;
}

void manager_upgrade_failed(Manager *m, const char *why) {
        _cleanup_free_ char *reply = strdup_printf("error: upgrade failed: %s\n", why);
        LogFields f = {};

        log_fields_add(&f, "REASON=%s", why);
        log_fields_add(&f, "EXECUTABLE=%s", m->exe_path ?: "");
        log_event(LOG_ERR, MESSAGE_ID_UPGRADE_FAILED, &f, "upgrade failed: %s", why);
        if (m->control)
                control_server_finish_waiters(m->control, reply ?: "error: upgrade failed\n");
        manager_upgrade_cleanup(m);
}

/* The sentinel's output, one line of it at most, without the control characters a terminal would act on. */
static void read_output(int fd, char *buf, size_t size) {
        ssize_t n = read(fd, buf, size - 1);
        size_t len = n > 0 ? (size_t) n : 0;

        buf[len] = '\0';
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
                buf[--len] = '\0';
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) buf[i] < ' ')
                        buf[i] = ' ';
}

static int on_sentinel_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Manager *m = userdata;
        char output[UPGRADE_OUTPUT_MAX], *why;

        read_output(m->upgrade_output, output, sizeof output);
        /* sd-event reaps it when this returns, before the orphan reaper can run again. */
        m->upgrade_sentinel = sd_event_source_disable_unref(m->upgrade_sentinel);
        if (si->si_code == CLD_EXITED && si->si_status == 0) {
                log_info("upgrade: '%s' checked the state: %s", m->exe_path, output);
                m->upgrade_exec_pending = true;
                return 0;
        }
        if (si->si_code == CLD_EXITED && si->si_status == 127 && !output[0])
                why = strdup_printf("'%s' could not be executed", m->exe_path);
        else if (si->si_code == CLD_EXITED)
                why = strdup_printf("'%s' failed its check (exit status %d)%s%s", m->exe_path, si->si_status,
                                    output[0] ? ": " : "", output);
        else
                why = strdup_printf("'%s' was killed by signal %s during its check%s%s", m->exe_path,
                                    signal_to_string(si->si_status) ?: "?", output[0] ? ": " : "", output);
        manager_upgrade_failed(m, why ?: "the new binary failed its check");
        free(why);
        return 0;
}

static int on_upgrade_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->upgrade_sentinel)
                manager_upgrade_failed(m, "the new binary did not finish its check within 10s");
        else {
                _cleanup_free_ char *why = strdup_printf("corral did not come to rest within 10s: %s",
                                                         manager_upgrade_busy(m) ?: "?");
                manager_upgrade_failed(m, why ?: "corral did not come to rest within 10s");
        }
        return 0;
}

/* Starts the sentinel on the state as it is now, a quiet point; the exec writes the state afresh. */
static void manager_upgrade_check(Manager *m) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *text = NULL, *why = NULL;
        UpgradeState s = {};
        int pidfd = -EBADF, r;
        pid_t pid = 0;
        size_t size;

        m->upgrade_check_pending = false;
        r = manager_upgrade_state(m, &s);
        if (r >= 0) {
                r = upgrade_state_write(&s, &text, &size);
                state_release(&s);
        }
        if (r >= 0)
                r = m->upgrade_check_fd = upgrade_state_fd_new(text, size);
        argv = r >= 0 ? upgrade_argv(m->exe_path, STDIN_FILENO, -EBADF, true, NULL, m->params.argv) : NULL;
        if (r >= 0 && !argv)
                r = -ENOMEM;
        if (r >= 0)
                r = upgrade_sentinel_spawn(m->exe_path, argv, m->upgrade_check_fd, &pid, &pidfd, &m->upgrade_output);
        if (r >= 0) {
                r = sd_event_add_child_pidfd(m->event, &m->upgrade_sentinel, pidfd, WEXITED, on_sentinel_exit, m);
                if (r < 0) {
                        (void) pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
                        (void) waitid(P_PIDFD, (id_t) pidfd, &(siginfo_t) {}, WEXITED);
                        safe_close(pidfd);
                }
        }
        if (r < 0) {
                errno = -r;
                why = strdup_printf("could not start the check of '%s': %m", m->exe_path);
                manager_upgrade_failed(m, why ?: "could not start the check");
                return;
        }
        (void) sd_event_source_set_child_pidfd_own(m->upgrade_sentinel, true);
        (void) sd_event_source_set_child_process_own(m->upgrade_sentinel, true);
        (void) sd_event_source_set_priority(m->upgrade_sentinel, PRIORITY_CHILD);
        (void) sd_event_source_set_description(m->upgrade_sentinel, "upgrade-sentinel");
        log_info("upgrade: checking '%s' (pid %d) against the state", m->exe_path, (int) pid);
}

void manager_upgrade_request(Manager *m, ControlConnection *c) {
        _cleanup_free_ char *reply = NULL;
        const char *refused;
        int r;

        if (m->upgrading) {
                control_hold(c); /* answered with the upgrade already under way */
                return;
        }
        if (m->slot_sockets) {
                log_notice("upgrade refused: Balance=reuseport");
                control_reply(c, "error: cannot upgrade in place with Balance=reuseport: the slots' own sockets "
                                 "are not carried across the exec yet; restart corral instead\n");
                return;
        }
        refused = manager_upgrade_refused(m);
        if (refused) {
                log_notice("upgrade refused: %s", refused);
                reply = strdup_printf("error: cannot upgrade now: %s; try again when it is over\n", refused);
                control_reply(c, reply ?: "error: cannot upgrade now\n");
                return;
        }
        m->upgrading = true;
        control_hold(c);
        if (!m->exe_path || access(m->exe_path, X_OK) < 0) {
                reply = strdup_printf("cannot run '%s': %s", m->exe_path ?: "?",
                                      m->exe_path ? strerror(errno) : "corral does not know its own path");
                manager_upgrade_failed(m, reply ?: "cannot run the new binary");
                return;
        }
        /* The check and the exec each wait for a quiet point (manager_upgrade_post()), within the deadline. */
        m->upgrade_check_pending = true;
        m->upgrade_deadline = now_usec(CLOCK_MONOTONIC) + UPGRADE_TIMEOUT_USEC;
        r = sd_event_add_time(m->event, &m->upgrade_timer, CLOCK_MONOTONIC, m->upgrade_deadline, 0,
                              on_upgrade_timeout, m);
        if (r < 0) {
                errno = -r;
                reply = strdup_printf("could not arm its timer: %m");
                manager_upgrade_failed(m, reply ?: "could not arm its timer");
                return;
        }
        (void) sd_event_source_set_priority(m->upgrade_timer, PRIORITY_TIMER);
        (void) sd_event_source_set_description(m->upgrade_timer, "upgrade-deadline");
}

/* Every fd the next image needs: the sockets, the endpoints, the waiting clients, the workers' pidfds,
 * this binary and the state. */
static int collect_fds(const UpgradeState *s, int state_fd, int **ret, size_t *ret_n) {
        size_t n = 0;
        int *fds = calloc(s->n_sockets + s->n_waiter_fds + 3 * s->n_workers + 4, sizeof(int));

        if (!fds)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_sockets; i++)
                fds[n++] = s->sockets[i].fd;
        for (size_t i = 0; i < s->n_waiter_fds; i++)
                fds[n++] = s->waiter_fds[i];
        for (size_t i = 0; i < s->n_workers; i++) {
                fds[n++] = s->workers[i].pidfd;
                fds[n++] = s->workers[i].output_fds[0];
                fds[n++] = s->workers[i].output_fds[1];
        }
        fds[n++] = s->notify_fd;
        fds[n++] = s->control_fd;
        fds[n++] = s->previous_exe_fd;
        fds[n++] = state_fd;
        *ret = fds;
        *ret_n = n;
        return 0;
}

static void manager_upgrade_exec(Manager *m) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *text = NULL, *why = NULL;
        _cleanup_free_ int *fds = NULL;
        _cleanup_close_ int state_fd = -EBADF;
        UpgradeState s = {};
        LogFields f = {};
        size_t size, n_fds = 0;
        int r;

        r = manager_upgrade_state(m, &s);
        if (r >= 0)
                r = upgrade_state_write(&s, &text, &size);
        if (r >= 0)
                r = state_fd = upgrade_state_fd_new(text, size);
        if (r >= 0)
                r = collect_fds(&s, state_fd, &fds, &n_fds);
        if (r >= 0) {
                argv = upgrade_argv(m->exe_path, state_fd, m->self_exe_fd, false, NULL, m->params.argv);
                if (!argv)
                        r = -ENOMEM;
        }
        state_release(&s);
        if (r < 0) {
                errno = -r;
                why = strdup_printf("could not hand the state over: %m");
                manager_upgrade_failed(m, why ?: "could not hand the state over");
                return;
        }

        log_fields_add(&f, "EXECUTABLE=%s", m->exe_path);
        log_event(LOG_INFO, MESSAGE_ID_UPGRADE_STARTED, &f, "upgrade: executing '%s' in place (%zu bytes of state)",
                  m->exe_path, size);
        (void) notify_manager_reloading("upgrading corral in place");
        r = upgrade_fds_keep(fds, n_fds, true);
        if (r >= 0)
                r = upgrade_exec(m->exe_path, -EBADF, argv);
        /* Still here: the exec failed, and this image carries on as it was. */
        (void) upgrade_fds_keep(fds, n_fds, false);
        errno = -r;
        why = strdup_printf("executing '%s' failed: %m", m->exe_path);
        (void) notify_manager_ready("upgrade failed");
        manager_upgrade_failed(m, why ?: "the exec failed");
}

void manager_upgrade_post(Manager *m) {
        if (!(m->upgrade_check_pending || m->upgrade_exec_pending) || manager_upgrade_busy(m))
                return;
        if (m->upgrade_check_pending)
                manager_upgrade_check(m);
        else
                manager_upgrade_exec(m);
}

/* ---- the new image ---- */

static Generation *find_generation(Generation **gens, size_t n, unsigned number) {
        for (size_t i = 0; i < n; i++)
                if (gens[i]->number == number)
                        return gens[i];
        return NULL;
}

/* Logs why a resume failed and hands the reason up, for the image before to tell its clients. */
_printf_(3, 4) static int restore_fail(char **ret_reason, int r, const char *format, ...) {
        _cleanup_free_ char *why = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&why, format, ap) < 0)
                why = NULL;
        va_end(ap);
        log_error_errno(r, "upgrade: cannot resume: %s", why ?: "out of memory");
        if (ret_reason && why)
                *ret_reason = TAKE_PTR(why);
        return r;
}

static int restore_generations(Manager *m, const UpgradeState *s, Generation **gens, char **ret_reason) {
        for (size_t i = 0; i < s->n_generations; i++) {
                const UpgradeGeneration *ug = &s->generations[i];
                _cleanup_(config_freep) Config *c = NULL;
                _cleanup_free_ char *error = NULL;
                int r;

                r = config_load_text(ug->config_path, ug->config_text, ug->config_size, m->params.args,
                                     m->params.n_args, m->params.command, &c, &error);
                if (r >= 0)
                        r = generation_new_resolved(c, ug->number,
                                                    &(GenerationResolved) {
                                                            .exec_path = ug->exec_path,
                                                            .environment = ug->environment,
                                                            .working_directory = ug->working_directory,
                                                            .credentials = {
                                                                    .set = ug->credentials_set,
                                                                    .uid = ug->uid,
                                                                    .gid = ug->gid,
                                                                    .groups = ug->groups,
                                                                    .n_groups = ug->n_groups,
                                                            },
                                                    },
                                                    &gens[i]);
                if (r < 0)
                        return restore_fail(ret_reason, r, "generation %u does not load: %s", ug->number,
                                            error ?: "out of memory");
                TAKE_PTR(c);
        }
        generation_assign(&m->target, find_generation(gens, s->n_generations, s->target));
        generation_assign(&m->stable, find_generation(gens, s->n_generations, s->stable));
        generation_assign(&m->first, find_generation(gens, s->n_generations, s->first));
        generation_assign(&m->relayed, find_generation(gens, s->n_generations, s->relayed));
        return 0;
}

int manager_upgrade_restore(Manager *m, UpgradeState *s, bool *ret_fds_taken, char **ret_reason) {
        Generation **gens = NULL;
        const char *why = NULL;
        int r;

        *ret_fds_taken = false;
#ifdef CORRAL_TEST_NO_RESUME
        /* A deliberately broken build for the upgrade tests (tests/CMakeLists.txt): it passes its check,
         * then cannot resume, so the image before must come back. */
        return restore_fail(ret_reason, -EIO, "this test build does not resume, on purpose");
#endif
        if (s->pid != getpid())
                return restore_fail(ret_reason, -EINVAL, "the state is of pid %d, this is %d", (int) s->pid,
                                    (int) getpid());
        m->started_usec = s->started_usec;
        m->started_realtime_usec = s->started_realtime_usec;
        m->drained = s->drained;
        m->ready_sent = s->ready_sent;
        m->exit_code = s->exit_code;
        m->counters = s->counters;
        m->reload_warnings = TAKE_PTR(s->reload_warnings);
        m->reload_failure = TAKE_PTR(s->reload_failure);
        memcpy(m->worker_uids, s->worker_uids, MIN(sizeof(m->worker_uids), sizeof(s->worker_uids)));
        m->n_worker_uids = s->n_worker_uids;
        m->untraced = s->untraced;
        m->upgraded_from = TAKE_PTR(s->writer_version);
        /* The path corral was started from, whatever binary now runs: /proc/self/exe of an image that went
         * back to the binary before names a deleted file. */
        free(m->exe_path);
        m->exe_path = TAKE_PTR(s->exe_path);

        gens = calloc(MAX(s->n_generations, 1U), sizeof(Generation *));
        if (!gens)
                return log_oom();
        r = restore_generations(m, s, gens, ret_reason);
        if (r >= 0 && pool_from_image(&s->pool, &m->pool, &why) < 0)
                r = restore_fail(ret_reason, -EINVAL, "the pool does not restore: %s", why);
        /* Up to here nothing of the state was taken: a failure can still go back to the binary before. */
        *ret_fds_taken = r >= 0;
        if (r >= 0) {
                r = notify_socket_adopt(m->event, TAKE_FD(s->notify_fd), PRIORITY_NOTIFY, manager_on_worker_notify, m,
                                        &m->notify);
                if (r < 0)
                        log_error_errno(r, "upgrade: cannot take over the notify socket: %m");
        }
        if (r >= 0)
                notify_socket_set_rejected(m->notify, s->notify_rejected);
        for (size_t i = 0; r >= 0 && i < s->n_workers; i++) {
                UpgradeWorker *uw = &s->workers[i];
                PoolWorker *pw = pool_find_worker(m->pool, uw->slot, uw->id);
                Generation *g = find_generation(gens, s->n_generations, uw->generation);
                int pidfd = TAKE_FD(uw->pidfd);

                if (!pw || !g) {
                        safe_close(pidfd);
                        r = log_error_errno(-EINVAL, "upgrade: worker %u has no record", uw->slot);
                        break;
                }
                r = manager_adopt_worker(m, pw, g, &(UpgradeWorker) { .pidfd = pidfd, .id = uw->id, .slot = uw->slot,
                                                                      .pid = uw->pid, .started_usec = uw->started_usec,
                                                                      .watchdog_usec = uw->watchdog_usec,
                                                                      .recycle = uw->recycle,
                                                                      .output_fds = { TAKE_FD(uw->output_fds[0]),
                                                                                      TAKE_FD(uw->output_fds[1]) } });
        }
        for (size_t i = 0; i < s->n_generations; i++)
                generation_unref(gens[i]);
        free(gens);
        if (r < 0)
                return r;

        return 0;
}

void manager_upgrade_resumed(Manager *m, const char *failure) {
        _cleanup_free_ char *reply = NULL;
        LogFields f = {};
        PoolCounts c;

        pool_counts(m->pool, &c);
        log_fields_add(&f, "VERSION=%s", CORRAL_VERSION);
        log_fields_add(&f, "FROM_VERSION=%s", m->upgraded_from ?: "?");
        log_fields_add(&f, "WORKER_COUNT=%u", c.workers);
        if (failure) {
                /* This image is the one that ran before: its successor could not resume and came back. */
                log_fields_add(&f, "REASON=%s", failure);
                log_event(LOG_ERR, MESSAGE_ID_UPGRADE_FAILED, &f,
                          "upgrade failed: the new binary could not resume (%s); corral %s carries on with %u workers",
                          failure, CORRAL_VERSION, c.workers);
                reply = strdup_printf("error: upgrade failed: the new binary could not resume: %s; corral %s carries on\n",
                                      failure, CORRAL_VERSION);
        } else {
                log_event(LOG_INFO, MESSAGE_ID_UPGRADE_DONE, &f, "upgraded in place from corral %s to %s, %u workers kept",
                          m->upgraded_from ?: "?", CORRAL_VERSION, c.workers);
                reply = strdup_printf("ok: upgraded to corral %s (from %s), pid %d, %u workers kept\n", CORRAL_VERSION,
                                      m->upgraded_from ?: "?", (int) m->pid, c.workers);
        }
        if (m->control)
                control_server_finish_waiters(m->control, reply ?: (failure ? "error: upgrade failed\n" : "ok\n"));
        (void) notify_manager_ready(failure ? "upgrade failed" : "upgraded");
}
