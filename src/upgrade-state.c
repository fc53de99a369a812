/* SPDX-License-Identifier: MIT */
/* The upgrade state's records, written from and read into plain images. */
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
