/* SPDX-License-Identifier: MIT */
/* The upgrade state's records, written from and read into plain images. */
#include <stdio.h>

#include "upgrade-state.h"

static void put_pool_config(StateWriter *w, const char *which, const PoolConfig *c) {
        state_record(w, "pool-config");
        state_put_str(w, "which", which);
        state_put_u64(w, "count", c->count);
        state_put_u64(w, "max-surge", c->max_surge);
        state_put_u64(w, "max-unavailable", c->max_unavailable);
        state_put_u64(w, "min-uptime", c->min_uptime_usec);
        state_put_u64(w, "restart", c->restart_usec);
        state_put_u64(w, "backoff-max", c->backoff_max_usec);
        state_put_i64(w, "prevent-exit-status", c->prevent_exit_status);
        state_put_u64(w, "give-up-failures", c->give_up_failures);
}

void upgrade_state_put_pool(StateWriter *w, const PoolImage *img) {
        state_record(w, "pool");
        state_put_u64(w, "generation", img->generation);
        state_put_u64(w, "stable-generation", img->stable_generation);
        state_put_u64(w, "last-generation", img->last_generation);
        state_put_u64(w, "next-id", img->next_id);
        state_put_bool(w, "stopping", img->stopping);
        state_put_bool(w, "rolling", img->rolling);
        state_put_bool(w, "rollback", img->rollback);
        state_put_bool(w, "reached-ready", img->reached_ready);
        state_put_u64(w, "roll-first-id", img->roll_first_id);
        state_put_u64(w, "slots", img->n_slots);
        state_put_u64(w, "workers", img->n_workers);
        put_pool_config(w, "target", &img->config);
        put_pool_config(w, "stable", &img->stable_config);
        for (unsigned i = 0; i < img->n_slots; i++) {
                const PoolSlotImage *s = &img->slots[i];
                state_record(w, "slot");
                state_put_u64(w, "index", i);
                state_put_u64(w, "current", s->current_id);
                state_put_u64(w, "replacement", s->replacement_id);
                state_put_u64(w, "failures", s->failures);
                state_put_u64(w, "restart-at", s->restart_at);
                state_put_bool(w, "disabled", s->disabled);
                state_put_u64(w, "restarts", s->restarts);
                state_put_i64(w, "exit-code", s->last_exit.code);
                state_put_i64(w, "exit-status", s->last_exit.status);
                state_put_u64(w, "exit-at", s->last_exit_usec);
        }
        for (size_t i = 0; i < img->n_workers; i++) {
                const PoolWorker *pw = &img->workers[i];
                state_record(w, "pool-worker");
                state_put_u64(w, "id", pw->id);
                state_put_u64(w, "slot", pw->slot);
                state_put_u64(w, "generation", pw->generation);
                state_put_str(w, "state", worker_state_to_string(pw->state));
                if (pw->state == WORKER_STOPPING)
                        state_put_str(w, "stop-reason", stop_reason_to_string(pw->stop_reason));
                state_put_u64(w, "started", pw->started_usec);
                state_put_u64(w, "ready", pw->ready_usec);
                state_put_bool(w, "recycle", pw->recycle);
                state_put_bool(w, "stop-sent", pw->stop_sent);
                state_put_u64(w, "memory", pw->memory_bytes);
                state_put_u64(w, "cpu", pw->cpu_usec);
        }
}

/* Field reading with the first error kept: each getter below is a no-op once one failed. */
typedef struct Fields {
        const StateRecord *rec;
        const char *bad; /* the first key missing or malformed */
} Fields;

static void get_u64(Fields *f, const char *key, uint64_t max, uint64_t *ret) {
        if (!f->bad && state_get_u64(f->rec, key, max, ret) < 0)
                f->bad = key;
}

static void get_unsigned(Fields *f, const char *key, unsigned *ret) {
        if (!f->bad && state_get_unsigned(f->rec, key, ret) < 0)
                f->bad = key;
}

static void get_int(Fields *f, const char *key, int *ret) {
        int64_t v;

        if (f->bad)
                return;
        if (state_get_i64(f->rec, key, &v) < 0 || v < INT32_MIN || v > INT32_MAX)
                f->bad = key;
        else
                *ret = (int) v;
}

static void get_bool(Fields *f, const char *key, bool *ret) {
        if (!f->bad && state_get_bool(f->rec, key, ret) < 0)
                f->bad = key;
}

static void get_enum(Fields *f, const char *key, const char *(*to_string)(int), int max, int *ret) {
        const char *s;

        if (f->bad)
                return;
        if (state_get_str(f->rec, key, &s) < 0) {
                f->bad = key;
                return;
        }
        for (int i = 0; i < max; i++)
                if (streq_ptr(to_string(i), s)) {
                        *ret = i;
                        return;
                }
        f->bad = key;
}

static const char *state_name(int i) {
        return worker_state_to_string(i);
}

static const char *stop_reason_name(int i) {
        return stop_reason_to_string(i);
}

static int bad_record(const StateRecord *rec, const char *what, char **ret_error) {
        if (ret_error)
                *ret_error = strdup_printf("upgrade state, line %u: %s", rec->line, what);
        return -EBADMSG;
}

static int bad_field(const Fields *f, char **ret_error) {
        if (ret_error)
                *ret_error = strdup_printf("upgrade state, line %u: %s: '%s' is missing or malformed",
                                           f->rec->line, f->rec->type, f->bad);
        return -EBADMSG;
}

static int get_pool_config(const StateRecord *rec, PoolImage *img, bool *seen, char **ret_error) {
        Fields f = { .rec = rec };
        const char *which;
        PoolConfig c = {};
        bool stable;

        if (state_get_str(rec, "which", &which) < 0 || !(streq(which, "target") || streq(which, "stable")))
                return bad_record(rec, "pool-config: 'which' must be target or stable", ret_error);
        stable = streq(which, "stable");
        get_unsigned(&f, "count", &c.count);
        get_unsigned(&f, "max-surge", &c.max_surge);
        get_unsigned(&f, "max-unavailable", &c.max_unavailable);
        get_u64(&f, "min-uptime", UINT64_MAX, &c.min_uptime_usec);
        get_u64(&f, "restart", UINT64_MAX, &c.restart_usec);
        get_u64(&f, "backoff-max", UINT64_MAX, &c.backoff_max_usec);
        get_int(&f, "prevent-exit-status", &c.prevent_exit_status);
        get_unsigned(&f, "give-up-failures", &c.give_up_failures);
        if (f.bad)
                return bad_field(&f, ret_error);
        if (seen[stable])
                return bad_record(rec, "pool-config: a second one of the same kind", ret_error);
        seen[stable] = true;
        *(stable ? &img->stable_config : &img->config) = c;
        return 0;
}

static int get_slot(const StateRecord *rec, PoolImage *img, bool *seen, char **ret_error) {
        Fields f = { .rec = rec };
        PoolSlotImage s = {};
        unsigned index = 0;

        get_unsigned(&f, "index", &index);
        get_u64(&f, "current", UINT64_MAX, &s.current_id);
        get_u64(&f, "replacement", UINT64_MAX, &s.replacement_id);
        get_unsigned(&f, "failures", &s.failures);
        get_u64(&f, "restart-at", UINT64_MAX, &s.restart_at);
        get_bool(&f, "disabled", &s.disabled);
        get_unsigned(&f, "restarts", &s.restarts);
        get_int(&f, "exit-code", &s.last_exit.code);
        get_int(&f, "exit-status", &s.last_exit.status);
        get_u64(&f, "exit-at", UINT64_MAX, &s.last_exit_usec);
        if (f.bad)
                return bad_field(&f, ret_error);
        if (index >= img->n_slots)
                return bad_record(rec, "slot: 'index' beyond the pool's slots", ret_error);
        if (seen[index])
                return bad_record(rec, "slot: a second record of the same index", ret_error);
        seen[index] = true;
        img->slots[index] = s;
        return 0;
}

static int get_worker(const StateRecord *rec, PoolImage *img, size_t n_allocated, char **ret_error) {
        Fields f = { .rec = rec };
        PoolWorker w = {};
        int state = 0, reason = 0;

        get_u64(&f, "id", UINT64_MAX, &w.id);
        get_unsigned(&f, "slot", &w.slot);
        get_unsigned(&f, "generation", &w.generation);
        get_enum(&f, "state", state_name, _WORKER_STATE_MAX, &state);
        if (state == WORKER_STOPPING)
                get_enum(&f, "stop-reason", stop_reason_name, _STOP_REASON_MAX, &reason);
        get_u64(&f, "started", UINT64_MAX, &w.started_usec);
        get_u64(&f, "ready", UINT64_MAX, &w.ready_usec);
        get_bool(&f, "recycle", &w.recycle);
        get_bool(&f, "stop-sent", &w.stop_sent);
        get_u64(&f, "memory", UINT64_MAX, &w.memory_bytes);
        get_u64(&f, "cpu", UINT64_MAX, &w.cpu_usec);
        if (f.bad)
                return bad_field(&f, ret_error);
        if (img->n_workers >= n_allocated)
                return bad_record(rec, "pool-worker: more than the pool record's 'workers'", ret_error);
        w.state = state;
        w.stop_reason = reason;
        img->workers[img->n_workers++] = w;
        return 0;
}

int upgrade_state_get_pool(const StateReader *r, PoolImage *ret, char **ret_error) {
        PoolImage img = {};
        bool seen_pool = false, seen_config[2] = {};
        _cleanup_free_ bool *seen_slots = NULL;
        uint64_t n_workers = 0;
        unsigned n_slots_seen = 0;
        int k = 0;

        for (size_t i = 0; i < state_reader_count(r) && k >= 0; i++) {
                const StateRecord *rec = state_reader_get(r, i);
                Fields f = { .rec = rec };

                if (streq(rec->type, "pool")) {
                        if (seen_pool) {
                                k = bad_record(rec, "a second pool record", ret_error);
                                break;
                        }
                        seen_pool = true;
                        get_unsigned(&f, "generation", &img.generation);
                        get_unsigned(&f, "stable-generation", &img.stable_generation);
                        get_unsigned(&f, "last-generation", &img.last_generation);
                        get_u64(&f, "next-id", UINT64_MAX, &img.next_id);
                        get_bool(&f, "stopping", &img.stopping);
                        get_bool(&f, "rolling", &img.rolling);
                        get_bool(&f, "rollback", &img.rollback);
                        get_bool(&f, "reached-ready", &img.reached_ready);
                        get_u64(&f, "roll-first-id", UINT64_MAX, &img.roll_first_id);
                        get_u64(&f, "workers", POOL_IMAGE_SLOTS_MAX * 4ULL, &n_workers);
                        {
                                uint64_t n_slots = 0;
                                get_u64(&f, "slots", POOL_IMAGE_SLOTS_MAX, &n_slots);
                                img.n_slots = n_slots;
                        }
                        if (f.bad) {
                                k = bad_field(&f, ret_error);
                                break;
                        }
                        img.slots = calloc(MAX(img.n_slots, 1U), sizeof(PoolSlotImage));
                        img.workers = calloc(MAX(n_workers, 1U), sizeof(PoolWorker));
                        seen_slots = calloc(MAX(img.n_slots, 1U), sizeof(bool));
                        if (!img.slots || !img.workers || !seen_slots)
                                k = -ENOMEM;
                } else if (streq(rec->type, "pool-config") || streq(rec->type, "slot") ||
                           streq(rec->type, "pool-worker")) {
                        if (!seen_pool)
                                k = bad_record(rec, "a pool's record before the pool record", ret_error);
                        else if (streq(rec->type, "pool-config"))
                                k = get_pool_config(rec, &img, seen_config, ret_error);
                        else if (streq(rec->type, "slot")) {
                                k = get_slot(rec, &img, seen_slots, ret_error);
                                n_slots_seen++;
                        }
                        else
                                k = get_worker(rec, &img, n_workers, ret_error);
                }
        }
        if (k >= 0 && !seen_pool) {
                if (ret_error)
                        *ret_error = strdup("upgrade state: no pool record");
                k = -EBADMSG;
        } else if (k >= 0 && (!seen_config[0] || !seen_config[1])) {
                if (ret_error)
                        *ret_error = strdup("upgrade state: the pool's target or stable config is missing");
                k = -EBADMSG;
        } else if (k >= 0 && n_slots_seen != img.n_slots) {
                if (ret_error)
                        *ret_error = strdup("upgrade state: fewer slot records than the pool says");
                k = -EBADMSG;
        } else if (k >= 0 && img.n_workers != n_workers) {
                if (ret_error)
                        *ret_error = strdup("upgrade state: fewer pool-worker records than the pool says");
                k = -EBADMSG;
        }
        if (k < 0) {
                pool_image_done(&img);
                return k;
        }
        *ret = img;
        return 0;
}

/* ---- the whole state ---- */

static const char *const socket_set_table[_UPGRADE_SOCKETS_MAX] = {
        [UPGRADE_SOCKETS_WORKERS] = "workers",
        [UPGRADE_SOCKETS_STATUS] = "status",
};

static const char *socket_set_name(int i) {
        return i >= 0 && i < _UPGRADE_SOCKETS_MAX ? socket_set_table[i] : NULL;
}

static const char *recycle_reason_name(int i) {
        return recycle_reason_to_string(i);
}

static void put_fd(StateWriter *w, const char *key, int fd) {
        state_put_i64(w, key, fd >= 0 ? fd : -1);
}

static void put_str_or_none(StateWriter *w, const char *key, const char *value) {
        /* Absent means NULL; an empty string stays an empty string. */
        if (value)
                state_put_str(w, key, value);
}

static void put_manager(StateWriter *w, const UpgradeState *s) {
        const StatusCounters *c = &s->counters;
        char buf[64];

        state_record(w, "manager");
        state_put_str(w, "version", s->writer_version);
        state_put_u64(w, "pid", (uint64_t) s->pid);
        state_put_u64(w, "started", s->started_usec);
        state_put_u64(w, "started-realtime", s->started_realtime_usec);
        state_put_u64(w, "target", s->target);
        state_put_u64(w, "stable", s->stable);
        state_put_u64(w, "first", s->first);
        state_put_u64(w, "relayed", s->relayed);
        state_put_bool(w, "drained", s->drained);
        state_put_bool(w, "ready-sent", s->ready_sent);
        state_put_i64(w, "exit-code", s->exit_code);
        put_str_or_none(w, "reload-warnings", s->reload_warnings);
        put_str_or_none(w, "reload-failure", s->reload_failure);
        state_put_u64(w, "untraced", s->untraced);
        state_put_u64(w, "notify-rejected", s->notify_rejected);
        put_fd(w, "notify-fd", s->notify_fd);
        put_fd(w, "control-fd", s->control_fd);
        put_str_or_none(w, "control-path", s->control_path);
        state_put_u64(w, "control-dev", s->control_dev);
        state_put_u64(w, "control-ino", s->control_ino);
        put_str_or_none(w, "control-base", s->control_base);
        put_str_or_none(w, "exe-path", s->exe_path);
        state_put_u64(w, "nofile-soft", s->nofile_soft);
        put_fd(w, "previous-exe-fd", s->previous_exe_fd);
        for (size_t i = 0; i < s->n_waiter_fds; i++) {
                state_record(w, "waiter");
                put_fd(w, "fd", s->waiter_fds[i]);
        }

        state_record(w, "counters");
        state_put_u64(w, "crashes", c->crashes);
        state_put_u64(w, "failed-starts", c->failed_starts);
        state_put_u64(w, "reloads-ok", c->reloads_ok);
        state_put_u64(w, "reloads-failed", c->reloads_failed);
        /* %.17g reads back to the same double. */
        snprintf(buf, sizeof buf, "%.17g", c->reload_seconds_sum);
        state_put_str(w, "reload-seconds-sum", buf);
        state_put_bool(w, "last-reload-failed", c->last_reload_failed);
        state_put_u64(w, "last-reload-end", c->last_reload_end_usec);
        state_put_u64(w, "relayed-signals", c->relayed_signals);
        state_put_u64(w, "orphans-reaped", c->orphans_reaped);
        for (size_t i = 0; i < ELEMENTSOF(c->reload_buckets); i++) {
                snprintf(buf, sizeof buf, "reload-bucket-%zu", i);
                state_put_u64(w, buf, c->reload_buckets[i]);
        }
        for (int i = 0; i < _RECYCLE_REASON_MAX; i++)
                if (recycle_reason_name(i)) {
                        snprintf(buf, sizeof buf, "recycles-%s", recycle_reason_name(i));
                        state_put_u64(w, buf, c->recycles[i]);
                }
        for (unsigned i = 0; i < s->n_worker_uids; i++) {
                state_record(w, "worker-uid");
                state_put_u64(w, "uid", s->worker_uids[i]);
        }
}

static void put_recycle(StateWriter *w, const RecycleState *r) {
        state_put_u64(w, "recycle-started", r->started);
        state_put_u64(w, "recycle-deadline", r->deadline);
        state_put_u64(w, "memory-over", r->memory_over);
        state_put_u64(w, "cpu-over", r->cpu_over);
        state_put_u64(w, "cpu-percent", r->cpu_percent);
        state_put_bool(w, "has-last", r->has_last);
        state_put_u64(w, "last-at", r->last.at);
        state_put_u64(w, "last-memory", r->last.memory);
        state_put_bool(w, "last-memory-valid", r->last.memory_valid);
        state_put_u64(w, "last-cpu", r->last.cpu_usec);
        state_put_bool(w, "last-cpu-valid", r->last.cpu_valid);
        state_put_u64(w, "last-oom-kills", r->last.oom_kills);
        state_put_bool(w, "last-oom-valid", r->last.oom_valid);
}

int upgrade_state_write(const UpgradeState *s, char **ret, size_t *ret_size) {
        _cleanup_(state_writer_freep) StateWriter *w = state_writer_new();

        if (!w)
                return -ENOMEM;
        put_manager(w, s);
        for (size_t i = 0; i < s->n_sockets; i++) {
                const UpgradeSocket *k = &s->sockets[i];
                state_record(w, "socket");
                state_put_str(w, "set", socket_set_name(k->set));
                put_fd(w, "fd", k->fd);
                state_put_str(w, "name", k->name);
                state_put_i64(w, "family", k->family);
                state_put_i64(w, "type", k->type);
                put_str_or_none(w, "unix-path", k->unix_path);
                state_put_u64(w, "unix-dev", k->unix_dev);
                state_put_u64(w, "unix-ino", k->unix_ino);
        }
        for (size_t i = 0; i < s->n_generations; i++) {
                const UpgradeGeneration *g = &s->generations[i];
                state_record(w, "generation");
                state_put_u64(w, "number", g->number);
                state_put_str(w, "exec-path", g->exec_path);
                put_str_or_none(w, "config-path", g->config_path);
                if (g->config_text)
                        state_put_bytes(w, "config-text", g->config_text, g->config_size);
                put_str_or_none(w, "working-directory", g->working_directory);
                if (g->credentials_set) {
                        state_put_u64(w, "uid", g->uid);
                        state_put_u64(w, "gid", g->gid);
                        state_put_u64(w, "groups", g->n_groups);
                }
                for (size_t k = 0; g->credentials_set && k < g->n_groups; k++) {
                        state_record(w, "group");
                        state_put_u64(w, "generation", g->number);
                        state_put_u64(w, "gid", g->groups[k]);
                }
                for (char *const *e = g->environment; e && *e; e++) {
                        state_record(w, "environment");
                        state_put_u64(w, "generation", g->number);
                        state_put_str(w, "entry", *e);
                }
        }
        for (size_t i = 0; i < s->n_workers; i++) {
                const UpgradeWorker *k = &s->workers[i];
                state_record(w, "worker");
                state_put_u64(w, "id", k->id);
                state_put_u64(w, "slot", k->slot);
                state_put_u64(w, "generation", k->generation);
                state_put_u64(w, "pid", (uint64_t) k->pid);
                put_fd(w, "pidfd", k->pidfd);
                state_put_u64(w, "started", k->started_usec);
                state_put_u64(w, "watchdog", k->watchdog_usec);
                if (k->output_fds[0] >= 0 && k->output_fds[1] >= 0) {
                        put_fd(w, "stdout-fd", k->output_fds[0]);
                        put_fd(w, "stderr-fd", k->output_fds[1]);
                }
                put_recycle(w, &k->recycle);
        }
        upgrade_state_put_pool(w, &s->pool);
        return state_writer_finish(w, ret, ret_size);
}

void upgrade_state_done(UpgradeState *s) {
        free(s->writer_version);
        free(s->reload_warnings);
        free(s->reload_failure);
        free(s->control_path);
        free(s->control_base);
        free(s->exe_path);
        free(s->waiter_fds);
        for (size_t i = 0; i < s->n_sockets; i++) {
                free(s->sockets[i].name);
                free(s->sockets[i].unix_path);
        }
        free(s->sockets);
        for (size_t i = 0; i < s->n_generations; i++) {
                free(s->generations[i].exec_path);
                free(s->generations[i].config_path);
                free(s->generations[i].config_text);
                strv_free(s->generations[i].environment);
                free(s->generations[i].groups);
                free(s->generations[i].working_directory);
        }
        free(s->generations);
        free(s->workers);
        pool_image_done(&s->pool);
        *s = (UpgradeState) {};
}

static void get_fd(Fields *f, const char *key, int *ret) {
        int64_t v;

        if (f->bad)
                return;
        if (state_get_i64(f->rec, key, &v) < 0 || v < -1 || v > INT32_MAX)
                f->bad = key;
        else
                *ret = v < 0 ? -EBADF : (int) v;
}

static void get_pid(Fields *f, const char *key, pid_t *ret) {
        uint64_t v;

        get_u64(f, key, INT32_MAX, &v);
        if (!f->bad && v == 0)
                f->bad = key;
        else if (!f->bad)
                *ret = (pid_t) v;
}

/* An allocated copy of a text value; optional: absent leaves *ret NULL. */
static void get_strdup(Fields *f, const char *key, bool optional, char **ret) {
        const char *v;
        int r;

        if (f->bad)
                return;
        r = state_get_str(f->rec, key, &v);
        if (r == -ENOENT && optional)
                return;
        if (r < 0) {
                f->bad = key;
                return;
        }
        *ret = strdup(v);
        if (!*ret)
                f->bad = "(out of memory)";
}

static void get_manager(Fields *f, UpgradeState *s) {
        int64_t exit_code = 0;

        get_strdup(f, "version", false, &s->writer_version);
        get_pid(f, "pid", &s->pid);
        get_u64(f, "started", UINT64_MAX, &s->started_usec);
        get_u64(f, "started-realtime", UINT64_MAX, &s->started_realtime_usec);
        get_unsigned(f, "target", &s->target);
        get_unsigned(f, "stable", &s->stable);
        get_unsigned(f, "first", &s->first);
        get_unsigned(f, "relayed", &s->relayed);
        get_bool(f, "drained", &s->drained);
        get_bool(f, "ready-sent", &s->ready_sent);
        if (!f->bad && (state_get_i64(f->rec, "exit-code", &exit_code) < 0 || exit_code < 0 || exit_code > 255))
                f->bad = "exit-code";
        s->exit_code = (int) exit_code;
        get_strdup(f, "reload-warnings", true, &s->reload_warnings);
        get_strdup(f, "reload-failure", true, &s->reload_failure);
        get_u64(f, "untraced", UINT64_MAX, &s->untraced);
        get_u64(f, "notify-rejected", UINT64_MAX, &s->notify_rejected);
        get_fd(f, "notify-fd", &s->notify_fd);
        get_fd(f, "control-fd", &s->control_fd);
        get_strdup(f, "control-path", true, &s->control_path);
        get_u64(f, "control-dev", UINT64_MAX, &s->control_dev);
        get_u64(f, "control-ino", UINT64_MAX, &s->control_ino);
        get_strdup(f, "control-base", true, &s->control_base);
        get_strdup(f, "exe-path", true, &s->exe_path);
        get_u64(f, "nofile-soft", UINT64_MAX, &s->nofile_soft);
        get_fd(f, "previous-exe-fd", &s->previous_exe_fd);
        if (!f->bad && s->notify_fd < 0)
                f->bad = "notify-fd";
        if (!f->bad && (s->control_fd >= 0) != (s->control_path != NULL))
                f->bad = "control-path";
}

static void get_counters(Fields *f, StatusCounters *c) {
        const char *sum;
        char *end, key[64];

        get_u64(f, "crashes", UINT64_MAX, &c->crashes);
        get_u64(f, "failed-starts", UINT64_MAX, &c->failed_starts);
        get_u64(f, "reloads-ok", UINT64_MAX, &c->reloads_ok);
        get_u64(f, "reloads-failed", UINT64_MAX, &c->reloads_failed);
        if (!f->bad) {
                if (state_get_str(f->rec, "reload-seconds-sum", &sum) < 0)
                        f->bad = "reload-seconds-sum";
                else {
                        errno = 0;
                        c->reload_seconds_sum = strtod(sum, &end);
                        if (errno != 0 || end == sum || *end != '\0' || !(c->reload_seconds_sum >= 0))
                                f->bad = "reload-seconds-sum";
                }
        }
        get_bool(f, "last-reload-failed", &c->last_reload_failed);
        get_u64(f, "last-reload-end", UINT64_MAX, &c->last_reload_end_usec);
        get_u64(f, "relayed-signals", UINT64_MAX, &c->relayed_signals);
        /* Written since orphans were reaped: 0 from a writer before. */
        if (!f->bad && state_get_u64(f->rec, "orphans-reaped", UINT64_MAX, &c->orphans_reaped) < 0)
                c->orphans_reaped = 0;
        for (size_t i = 0; i < ELEMENTSOF(c->reload_buckets); i++) {
                snprintf(key, sizeof key, "reload-bucket-%zu", i);
                get_u64(f, key, UINT64_MAX, &c->reload_buckets[i]);
        }
        /* A counter of a reason this version does not know is skipped; one it knows but the writer did not
         * is 0. */
        for (int i = 0; i < _RECYCLE_REASON_MAX && !f->bad; i++) {
                uint64_t v;
                if (!recycle_reason_name(i))
                        continue;
                snprintf(key, sizeof key, "recycles-%s", recycle_reason_name(i));
                if (state_get_u64(f->rec, key, UINT64_MAX, &v) == 0)
                        c->recycles[i] = v;
        }
}

static int get_socket(Fields *f, UpgradeState *s) {
        UpgradeSocket k = { .fd = -EBADF };
        int set = 0, family = 0, type = 0;

        get_enum(f, "set", socket_set_name, _UPGRADE_SOCKETS_MAX, &set);
        get_fd(f, "fd", &k.fd);
        get_strdup(f, "name", false, &k.name);
        get_int(f, "family", &family);
        get_int(f, "type", &type);
        get_strdup(f, "unix-path", true, &k.unix_path);
        get_u64(f, "unix-dev", UINT64_MAX, &k.unix_dev);
        get_u64(f, "unix-ino", UINT64_MAX, &k.unix_ino);
        if (!f->bad && k.fd < 0)
                f->bad = "fd";
        k.set = set;
        k.family = family;
        k.type = type;
        s->sockets[s->n_sockets++] = k; /* freed with the state, even when a field was bad */
        return f->bad ? -EBADMSG : 0;
}

static int get_generation(Fields *f, UpgradeState *s) {
        UpgradeGeneration g = {};
        const void *text;
        size_t size;

        get_unsigned(f, "number", &g.number);
        get_strdup(f, "exec-path", false, &g.exec_path);
        get_strdup(f, "config-path", true, &g.config_path);
        get_strdup(f, "working-directory", true, &g.working_directory);
        if (!f->bad && state_get_u64(f->rec, "uid", UINT32_MAX - 1, &(uint64_t) { 0 }) != -ENOENT) {
                uint64_t uid = 0, gid = 0, n = 0;
                get_u64(f, "uid", UINT32_MAX - 1, &uid);
                get_u64(f, "gid", UINT32_MAX - 1, &gid);
                get_u64(f, "groups", 65536, &n);
                g.credentials_set = true;
                g.uid = (uid_t) uid;
                g.gid = (gid_t) gid;
                g.n_groups = 0;
                g.groups = n > 0 ? calloc(n, sizeof(gid_t)) : NULL;
                if (!f->bad && n > 0 && !g.groups)
                        f->bad = "(out of memory)";
                g.groups_allocated = n;
        }
        if (!f->bad && state_get_bytes(f->rec, "config-text", &text, &size) == 0) {
                g.config_text = malloc(size + 1);
                if (!g.config_text)
                        f->bad = "(out of memory)";
                else {
                        memcpy(g.config_text, text, size);
                        g.config_text[size] = '\0';
                        g.config_size = size;
                }
        }
        if (!f->bad && (g.config_text != NULL) != (g.config_path != NULL))
                f->bad = "config-text";
        if (!f->bad && g.number == 0)
                f->bad = "number";
        for (size_t i = 0; i < s->n_generations && !f->bad; i++)
                if (s->generations[i].number == g.number)
                        f->bad = "number";
        s->generations[s->n_generations++] = g;
        return f->bad ? -EBADMSG : 0;
}

static UpgradeGeneration *find_generation_record(UpgradeState *s, unsigned number) {
        for (size_t i = 0; i < s->n_generations; i++)
                if (s->generations[i].number == number)
                        return &s->generations[i];
        return NULL;
}

/* A supplementary group of a generation's credentials, after that generation's record, in order. */
static int get_group(Fields *f, UpgradeState *s) {
        UpgradeGeneration *g;
        unsigned number = 0;
        uint64_t gid = 0;

        get_unsigned(f, "generation", &number);
        get_u64(f, "gid", UINT32_MAX - 1, &gid);
        g = f->bad ? NULL : find_generation_record(s, number);
        if (!f->bad && (!g || !g->credentials_set || g->n_groups >= g->groups_allocated))
                f->bad = "generation";
        if (!f->bad)
                g->groups[g->n_groups++] = (gid_t) gid;
        return f->bad ? -EBADMSG : 0;
}

/* An entry of a generation's environment, after that generation's record, in order. */
static int get_environment(Fields *f, UpgradeState *s) {
        UpgradeGeneration *g = NULL;
        const char *entry;
        unsigned number = 0;

        get_unsigned(f, "generation", &number);
        if (!f->bad && state_get_str(f->rec, "entry", &entry) < 0)
                f->bad = "entry";
        for (size_t i = 0; !f->bad && i < s->n_generations; i++)
                if (s->generations[i].number == number)
                        g = &s->generations[i];
        if (!f->bad && !g)
                f->bad = "generation";
        if (!f->bad && strv_extend(&g->environment, entry) < 0)
                f->bad = "(out of memory)";
        return f->bad ? -EBADMSG : 0;
}

static int get_worker_record(Fields *f, UpgradeState *s) {
        UpgradeWorker k = { .pidfd = -EBADF, .output_fds = { -EBADF, -EBADF } };
        RecycleState *r = &k.recycle;

        get_u64(f, "id", UINT64_MAX, &k.id);
        get_unsigned(f, "slot", &k.slot);
        get_unsigned(f, "generation", &k.generation);
        get_pid(f, "pid", &k.pid);
        get_fd(f, "pidfd", &k.pidfd);
        get_u64(f, "started", UINT64_MAX, &k.started_usec);
        get_u64(f, "watchdog", UINT64_MAX, &k.watchdog_usec);
        if (!f->bad && state_get_i64(f->rec, "stdout-fd", &(int64_t) { 0 }) != -ENOENT) {
                get_fd(f, "stdout-fd", &k.output_fds[0]);
                get_fd(f, "stderr-fd", &k.output_fds[1]);
                if (!f->bad && (k.output_fds[0] < 0 || k.output_fds[1] < 0))
                        f->bad = "stdout-fd";
        }
        get_u64(f, "recycle-started", UINT64_MAX, &r->started);
        get_u64(f, "recycle-deadline", UINT64_MAX, &r->deadline);
        get_unsigned(f, "memory-over", &r->memory_over);
        get_unsigned(f, "cpu-over", &r->cpu_over);
        get_unsigned(f, "cpu-percent", &r->cpu_percent);
        get_bool(f, "has-last", &r->has_last);
        get_u64(f, "last-at", UINT64_MAX, &r->last.at);
        get_u64(f, "last-memory", UINT64_MAX, &r->last.memory);
        get_bool(f, "last-memory-valid", &r->last.memory_valid);
        get_u64(f, "last-cpu", UINT64_MAX, &r->last.cpu_usec);
        get_bool(f, "last-cpu-valid", &r->last.cpu_valid);
        get_u64(f, "last-oom-kills", UINT64_MAX, &r->last.oom_kills);
        get_bool(f, "last-oom-valid", &r->last.oom_valid);
        if (!f->bad && k.pidfd < 0)
                f->bad = "pidfd";
        s->workers[s->n_workers++] = k;
        return f->bad ? -EBADMSG : 0;
}

static const UpgradeGeneration *find_generation(const UpgradeState *s, unsigned number) {
        for (size_t i = 0; i < s->n_generations; i++)
                if (s->generations[i].number == number)
                        return &s->generations[i];
        return NULL;
}

/* References between records: what the manager, the workers and the pool name must be there. */
static const char *check_references(const UpgradeState *s) {
        const unsigned manager_generations[] = { s->target, s->stable, s->first, s->relayed };

        for (size_t i = 0; i < s->n_generations; i++)
                if (s->generations[i].n_groups != s->generations[i].groups_allocated)
                        return "a generation has fewer group records than it says";

        for (size_t i = 0; i < ELEMENTSOF(manager_generations); i++)
                if (!find_generation(s, manager_generations[i]))
                        return "the manager names a generation that has no record";
        if (s->pool.generation != s->target || s->pool.stable_generation != s->stable)
                return "the pool's generations are not the manager's";
        if (s->n_workers != s->pool.n_workers)
                return "the workers are not the pool's";
        for (size_t i = 0; i < s->n_workers; i++) {
                const UpgradeWorker *w = &s->workers[i];
                const PoolWorker *pw = &s->pool.workers[i];
                if (w->id != pw->id || w->slot != pw->slot || w->generation != pw->generation)
                        return "a worker is not its pool record";
                if (!find_generation(s, w->generation))
                        return "a worker names a generation that has no record";
        }
        return NULL;
}

int upgrade_state_read(const char *text, size_t size, UpgradeState *ret, char **ret_error) {
        _cleanup_(state_reader_freep) StateReader *r = NULL;
        UpgradeState s = { .notify_fd = -EBADF, .control_fd = -EBADF, .previous_exe_fd = -EBADF };
        size_t n[4] = {};
        bool seen_manager = false, seen_counters = false;
        const char *why;
        int k;

        k = state_reader_new(text, size, &r, ret_error);
        if (k < 0)
                return k;
        for (size_t i = 0; i < state_reader_count(r); i++) {
                const char *t = state_reader_get(r, i)->type;
                n[0] += streq(t, "socket");
                n[1] += streq(t, "generation");
                n[2] += streq(t, "worker");
                n[3] += streq(t, "waiter");
        }
        s.sockets = calloc(MAX(n[0], 1U), sizeof(UpgradeSocket));
        s.generations = calloc(MAX(n[1], 1U), sizeof(UpgradeGeneration));
        s.workers = calloc(MAX(n[2], 1U), sizeof(UpgradeWorker));
        s.waiter_fds = calloc(MAX(n[3], 1U), sizeof(int));
        if (!s.sockets || !s.generations || !s.workers || !s.waiter_fds) {
                upgrade_state_done(&s);
                return -ENOMEM;
        }

        for (size_t i = 0; i < state_reader_count(r); i++) {
                const StateRecord *rec = state_reader_get(r, i);
                Fields f = { .rec = rec };

                k = 0;
                if (streq(rec->type, "manager") || streq(rec->type, "counters")) {
                        bool *seen = streq(rec->type, "manager") ? &seen_manager : &seen_counters;
                        if (*seen) {
                                k = bad_record(rec, "a second record of its kind", ret_error);
                                break;
                        }
                        *seen = true;
                        if (streq(rec->type, "manager"))
                                get_manager(&f, &s);
                        else
                                get_counters(&f, &s.counters);
                        k = f.bad ? -EBADMSG : 0;
                } else if (streq(rec->type, "worker-uid")) {
                        uint64_t uid = 0;
                        get_u64(&f, "uid", UINT32_MAX - 1, &uid);
                        if (!f.bad && s.n_worker_uids < ELEMENTSOF(s.worker_uids))
                                s.worker_uids[s.n_worker_uids++] = (uid_t) uid;
                        k = f.bad ? -EBADMSG : 0;
                } else if (streq(rec->type, "waiter")) {
                        int fd = -EBADF;
                        get_fd(&f, "fd", &fd);
                        if (!f.bad && fd < 0)
                                f.bad = "fd";
                        if (!f.bad)
                                s.waiter_fds[s.n_waiter_fds++] = fd;
                        k = f.bad ? -EBADMSG : 0;
                } else if (streq(rec->type, "environment")) {
                        k = get_environment(&f, &s);
                } else if (streq(rec->type, "group")) {
                        k = get_group(&f, &s);
                } else if (streq(rec->type, "socket"))
                        k = get_socket(&f, &s);
                else if (streq(rec->type, "generation"))
                        k = get_generation(&f, &s);
                else if (streq(rec->type, "worker"))
                        k = get_worker_record(&f, &s);
                if (k < 0) {
                        if (f.bad)
                                k = bad_field(&f, ret_error);
                        break;
                }
        }
        if (k >= 0 && (!seen_manager || !seen_counters)) {
                if (ret_error)
                        *ret_error = strdup("upgrade state: no manager or counters record");
                k = -EBADMSG;
        }
        if (k >= 0)
                k = upgrade_state_get_pool(r, &s.pool, ret_error);
        if (k >= 0 && (why = check_references(&s))) {
                if (ret_error)
                        *ret_error = strdup_printf("upgrade state: %s", why);
                k = -EBADMSG;
        }
        if (k < 0) {
                upgrade_state_done(&s);
                return k;
        }
        *ret = s;
        return 0;
}
