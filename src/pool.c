/* SPDX-License-Identifier: MIT */
/* Pool policy: slots, generations, backoff, start-first rolls and their rollback. Pure: no system calls. */
#include <signal.h>

#include "pool.h"

typedef struct PoolSlot {
        PoolWorker *current;     /* serving (READY) or starting worker of the slot, NULL when empty */
        PoolWorker *replacement; /* STARTING worker that takes over once ready */
        unsigned failures;       /* consecutive failed starts or short runs */
        usec_t restart_at;       /* backoff: nothing is started in the slot before this; 0 = none */
        bool disabled;           /* RestartPreventExitStatus= hit: no respawn until the next reload */
        unsigned restarts;
        PoolExit last_exit;      /* the last unexpected exit, for status */
        usec_t last_exit_usec;   /* 0: none yet */
} PoolSlot;

struct Pool {
        PoolConfig config;        /* of the target generation */
        PoolConfig stable_config; /* of the stable generation, restored by a rollback */
        unsigned generation;      /* target generation */
        unsigned stable_generation;
        unsigned last_generation; /* highest handed out; generations are never reused */

        PoolSlot *slots;
        unsigned n_slots; /* allocated, >= config.count */
        unsigned *scratch;

        PoolWorker *workers, *workers_tail;
        uint64_t next_id;

        bool stopping;
        bool rolling;
        bool rollback; /* the roll in progress returns to the stable generation */
        uint64_t roll_first_id; /* workers with this id or higher were started by the current roll */
        bool reached_ready;     /* every slot was ready at least once: no longer starting */

        PoolRollReport reports[POOL_ROLL_REPORTS_MAX]; /* not yet handed out by a plan */
        size_t n_reports;
        PoolRollReport plan_reports[POOL_ROLL_REPORTS_MAX]; /* handed out by the last plan */

        PoolAction *actions;
        size_t n_actions, n_allocated;
};

static const char *const worker_state_table[_WORKER_STATE_MAX] = {
        [WORKER_STARTING] = "starting",
        [WORKER_READY] = "ready",
        [WORKER_STOPPING] = "stopping",
};

const char *worker_state_to_string(WorkerState s) {
        return s >= 0 && s < _WORKER_STATE_MAX ? worker_state_table[s] : NULL;
}

int worker_state_check_transition(WorkerState from, WorkerState to) {
        /* starting -> ready -> stopping, and starting -> stopping. Leaving the pool is not a state. */
        static const bool allowed[_WORKER_STATE_MAX][_WORKER_STATE_MAX] = {
                [WORKER_STARTING][WORKER_READY] = true,
                [WORKER_STARTING][WORKER_STOPPING] = true,
                [WORKER_READY][WORKER_STOPPING] = true,
        };

        if (from < 0 || from >= _WORKER_STATE_MAX || to < 0 || to >= _WORKER_STATE_MAX)
                return -EINVAL;
        return allowed[from][to] ? 0 : -EINVAL;
}

static const char *const stop_reason_table[_STOP_REASON_MAX] = {
        [STOP_REPLACED] = "replaced", [STOP_FAILED] = "failed",     [STOP_ABORTED] = "aborted",
        [STOP_SCALE_DOWN] = "scale-down", [STOP_SHUTDOWN] = "shutdown", [STOP_ROLL] = "roll",
};

const char *stop_reason_to_string(StopReason r) {
        return r >= 0 && r < _STOP_REASON_MAX ? stop_reason_table[r] : NULL;
}

usec_t pool_backoff_delay(const PoolConfig *c, unsigned n) {
        usec_t d = c->restart_usec;

        for (unsigned i = 1; i < n && d > 0 && d < c->backoff_max_usec; i++)
                d = d > USEC_INFINITY / 2 ? USEC_INFINITY : d * 2;
        return MIN(d, c->backoff_max_usec);
}

static int pool_ensure_slots(Pool *p, unsigned n) {
        PoolSlot *slots;
        unsigned *scratch;

        if (n <= p->n_slots)
                return 0;
        slots = realloc(p->slots, n * sizeof(PoolSlot));
        if (!slots)
                return -ENOMEM;
        p->slots = slots;
        memset(slots + p->n_slots, 0, (n - p->n_slots) * sizeof(PoolSlot));
        scratch = realloc(p->scratch, n * sizeof(unsigned));
        if (!scratch)
                return -ENOMEM;
        p->scratch = scratch;
        p->n_slots = n;
        return 0;
}

Pool *pool_new(const PoolConfig *c) {
        Pool *p = calloc(1, sizeof(Pool));

        if (!p)
                return NULL;
        p->config = p->stable_config = *c;
        p->generation = p->stable_generation = p->last_generation = 1;
        p->next_id = 1;
        if (pool_ensure_slots(p, MAX(c->count, 1U)) < 0)
                return pool_free(p);
        return p;
}

Pool *pool_free(Pool *p) {
        if (!p)
                return NULL;
        while (p->workers) {
                PoolWorker *w = p->workers;
                p->workers = w->next;
                free(w);
        }
        free(p->slots);
        free(p->scratch);
        free(p->actions);
        free(p);
        return NULL;
}

/* Puts w last on the list of live workers (the oldest first). */
static void record_append(Pool *p, PoolWorker *w) {
        w->next = NULL;
        w->prev = p->workers_tail;
        if (p->workers_tail)
                p->workers_tail->next = w;
        else
                p->workers = w;
        p->workers_tail = w;
}

static PoolWorker *record_new(Pool *p, unsigned slot, usec_t now) {
        PoolWorker *w = calloc(1, sizeof(PoolWorker));

        if (!w)
                return NULL;
        w->id = p->next_id++;
        w->slot = slot;
        w->generation = p->generation;
        w->state = WORKER_STARTING;
        w->started_usec = now;
        record_append(p, w);
        return w;
}

static void record_free(Pool *p, PoolWorker *w) {
        PoolSlot *s = &p->slots[w->slot];

        if (s->current == w)
                s->current = NULL;
        if (s->replacement == w)
                s->replacement = NULL;
        if (w->prev)
                w->prev->next = w->next;
        else
                p->workers = w->next;
        if (w->next)
                w->next->prev = w->prev;
        else
                p->workers_tail = w->prev;
        free(w);
}

/* Detaches w from its slot and marks it for a stop action in the next plan. */
static void record_stop(Pool *p, PoolWorker *w, StopReason reason) {
        PoolSlot *s = &p->slots[w->slot];

        if (worker_state_check_transition(w->state, WORKER_STOPPING) < 0)
                return;
        w->state = WORKER_STOPPING;
        w->stop_reason = reason;
        if (s->current == w)
                s->current = NULL;
        if (s->replacement == w)
                s->replacement = NULL;
}

static usec_t slot_throttle(Pool *p, PoolSlot *s, usec_t now) {
        usec_t delay;

        s->failures++;
        delay = pool_backoff_delay(&p->config, s->failures);
        s->restart_at = now + delay;
        return delay;
}

static int push_action(Pool *p, PoolActionType type, PoolWorker *w) {
        if (p->n_actions >= p->n_allocated) {
                size_t n = MAX(p->n_allocated * 2, 16U);
                PoolAction *a = realloc(p->actions, n * sizeof(PoolAction));
                if (!a)
                        return -ENOMEM;
                p->actions = a;
                p->n_allocated = n;
        }
        p->actions[p->n_actions++] = (PoolAction) { .type = type, .worker = w };
        return 0;
}

static int spawn_into(Pool *p, unsigned slot, bool replacement, usec_t now) {
        PoolSlot *s = &p->slots[slot];
        PoolWorker *w;

        /* Reserve the action first so that a failed allocation leaves no record behind. */
        if (push_action(p, POOL_ACTION_SPAWN, NULL) < 0)
                return -ENOMEM;
        w = record_new(p, slot, now);
        if (!w) {
                p->n_actions--;
                return -ENOMEM;
        }
        p->actions[p->n_actions - 1].worker = w;
        if (replacement)
                s->replacement = w;
        else
                s->current = w;
        s->restart_at = 0;
        return 0;
}

static void report(Pool *p, PoolRollReport r) {
        /* At most an abort and the rollback's end come between two plans; keep the newest if more do. */
        if (p->n_reports == POOL_ROLL_REPORTS_MAX)
                p->n_reports--;
        p->reports[p->n_reports++] = r;
}

/* w, started by the current roll, failed: stop the roll's replacements and turn back to the stable
 * generation, or, when the roll already was that return, give up rolling. */
static void abort_roll(Pool *p, const PoolWorker *w, bool ready_timeout, bool was_ready) {
        PoolRollReport r = {
                .generation = p->generation,
                .worker_id = w->id,
                .slot = w->slot,
                .ready_timeout = ready_timeout,
                .was_ready = was_ready,
        };

        for (unsigned i = 0; i < p->n_slots; i++)
                if (p->slots[i].replacement)
                        record_stop(p, p->slots[i].replacement, STOP_ABORTED);

        if (p->rollback) {
                /* Returning to the stable generation failed too: keep what serves, stop rolling. */
                p->rolling = p->rollback = false;
                r.event = POOL_ROLL_ROLLBACK_FAILED;
                report(p, r);
                return;
        }
        r.event = POOL_ROLL_ABORTED;
        report(p, r);
        p->generation = p->stable_generation;
        p->config = p->stable_config;
        p->rollback = true;
        p->roll_first_id = p->next_id;
}

static bool needs_replacement(const Pool *p, const PoolWorker *w) {
        return w->recycle || (p->rolling && w->generation != p->generation);
}

static int compare_slots(const void *a, const void *b, void *userdata) {
        const Pool *p = userdata;

        return pool_worker_compare_rank(p->slots[*(const unsigned *) a].current,
                                        p->slots[*(const unsigned *) b].current);
}

/* Start-first replacement of the slots whose worker is of an older generation or asked to be recycled:
 * at most max_surge replacements alongside serving workers, and at most max_unavailable slots without
 * a ready worker. Worst-ranked workers go first. */
static int replace_step(Pool *p, usec_t now, usec_t *wakeup) {
        unsigned surge = 0, unavailable = 0, n = 0;
        int r;

        for (unsigned i = 0; i < p->config.count; i++) {
                PoolSlot *s = &p->slots[i];

                if (s->disabled)
                        continue;
                if (s->replacement && s->current)
                        surge++;
                if (!s->current || s->current->state != WORKER_READY)
                        unavailable++;
                if (!s->current || s->replacement || !needs_replacement(p, s->current))
                        continue;
                if (s->current->state == WORKER_STARTING) {
                        /* Not serving yet, so nothing to keep up: stop it, the slot is refilled with the
                         * target generation below. A recycle waits until it is ready. */
                        if (!s->current->recycle)
                                record_stop(p, s->current, STOP_ROLL);
                        continue;
                }
                if (s->restart_at > now) {
                        *wakeup = MIN(*wakeup, s->restart_at);
                        continue;
                }
                p->scratch[n++] = i;
        }

        qsort_r(p->scratch, n, sizeof(unsigned), compare_slots, p);

        for (unsigned k = 0; k < n; k++) {
                PoolSlot *s = &p->slots[p->scratch[k]];

                if (surge < p->config.max_surge) {
                        r = spawn_into(p, p->scratch[k], true, now);
                        if (r < 0)
                                return r;
                        surge++;
                } else if (unavailable < p->config.max_unavailable) {
                        record_stop(p, s->current, STOP_ROLL);
                        unavailable++;
                } else
                        break;
        }
        return 0;
}

static bool roll_converged(const Pool *p) {
        for (unsigned i = 0; i < p->config.count; i++) {
                const PoolSlot *s = &p->slots[i];

                if (s->disabled)
                        continue;
                if (s->replacement || !s->current || s->current->state != WORKER_READY ||
                    s->current->generation != p->generation)
                        return false;
        }
        return true;
}

/* Every wanted slot has failed give_up_failures times in a row (a disabled slot counts as failed) and none
 * has a ready worker: the command cannot run here, backing off further helps nobody. */
static bool pool_all_failing(const Pool *p) {
        if (p->config.give_up_failures == 0 || p->config.count == 0)
                return false;
        for (unsigned i = 0; i < p->config.count; i++) {
                const PoolSlot *s = &p->slots[i];

                if (s->current && s->current->state == WORKER_READY)
                        return false;
                if (!s->disabled && s->failures < p->config.give_up_failures)
                        return false;
        }
        return true;
}

int pool_plan(Pool *p, usec_t now, PoolPlan *ret) {
        usec_t wakeup = USEC_INFINITY;
        bool give_up;
        int r;

        p->n_actions = 0;
        /* Decided before anything is spawned: a plan that gives up starts nothing new. */
        give_up = !p->stopping && pool_all_failing(p);

        if (!p->stopping && !give_up) {
                r = replace_step(p, now, &wakeup);
                if (r < 0)
                        return r;

                for (unsigned i = 0; i < p->config.count; i++) {
                        PoolSlot *s = &p->slots[i];

                        if (s->disabled || s->current || s->replacement)
                                continue;
                        if (s->restart_at > now) {
                                wakeup = MIN(wakeup, s->restart_at);
                                continue;
                        }
                        r = spawn_into(p, i, false, now);
                        if (r < 0)
                                return r;
                }

                if (p->rolling && roll_converged(p)) {
                        report(p, (PoolRollReport) {
                                .event = p->rollback ? POOL_ROLL_ROLLBACK_DONE : POOL_ROLL_DONE,
                                .generation = p->generation,
                        });
                        if (!p->rollback) {
                                p->stable_generation = p->generation;
                                p->stable_config = p->config;
                        }
                        p->rolling = p->rollback = false;
                }

                /* Slots beyond the count (after a scale-down) are emptied once no roll needs them. */
                if (!p->rolling)
                        for (unsigned i = p->config.count; i < p->n_slots; i++) {
                                PoolSlot *s = &p->slots[i];

                                if (s->replacement)
                                        record_stop(p, s->replacement, STOP_SCALE_DOWN);
                                if (s->current)
                                        record_stop(p, s->current, STOP_SCALE_DOWN);
                        }
        }

        for (PoolWorker *w = p->workers; w; w = w->next)
                if (w->state == WORKER_STOPPING && !w->stop_sent) {
                        r = push_action(p, POOL_ACTION_STOP, w);
                        if (r < 0)
                                return r;
                        w->stop_sent = true;
                }

        memcpy(p->plan_reports, p->reports, p->n_reports * sizeof(PoolRollReport));
        *ret = (PoolPlan) {
                .actions = p->actions,
                .n_actions = p->n_actions,
                .wakeup_usec = wakeup,
                .reports = p->plan_reports,
                .n_reports = p->n_reports,
                .give_up = give_up,
        };
        p->n_reports = 0;
        return 0;
}

void pool_worker_ready(Pool *p, PoolWorker *w, usec_t now) {
        PoolSlot *s = &p->slots[w->slot];

        if (worker_state_check_transition(w->state, WORKER_READY) < 0)
                return;
        w->state = WORKER_READY;
        w->ready_usec = now;

        if (s->replacement == w) {
                PoolWorker *old = s->current;

                s->current = w;
                s->replacement = NULL;
                if (old)
                        record_stop(p, old, STOP_REPLACED);
        }
        if (!p->reached_ready)
                p->reached_ready = pool_all_ready(p);
}

/* A worker the current roll started failed to start or died young: the deploy is bad. Workers of the same
 * generation started before the roll (a rollback's target is an old generation) are ordinary crashes. */
static bool is_roll_failure(const Pool *p, const PoolWorker *w, bool was_ready, usec_t uptime) {
        return p->rolling && w->generation == p->generation && w->id >= p->roll_first_id &&
               (!was_ready || uptime < p->config.min_uptime_usec);
}

PoolVerdict pool_worker_exited(Pool *p, PoolWorker *w, const PoolExit *e, usec_t now, usec_t *ret_delay) {
        PoolSlot *s = &p->slots[w->slot];
        bool was_ready = w->state == WORKER_READY, was_replacement = s->replacement == w;
        usec_t uptime = now > w->started_usec ? now - w->started_usec : 0, delay = 0;
        PoolVerdict v;

        if (w->state == WORKER_STOPPING)
                v = p->stopping ? POOL_VERDICT_SHUTDOWN : POOL_VERDICT_EXPECTED;
        else if (p->stopping)
                v = POOL_VERDICT_SHUTDOWN;
        else if (w->slot >= p->config.count && !was_replacement)
                v = POOL_VERDICT_EXPECTED; /* its slot is being scaled away: nothing to respawn */
        else if (is_roll_failure(p, w, was_ready, uptime)) {
                record_stop(p, w, STOP_ABORTED);
                abort_roll(p, w, false, was_ready);
                if (!was_replacement)
                        delay = slot_throttle(p, s, now);
                v = POOL_VERDICT_ROLL_ABORTED;
        } else if (was_replacement) {
                /* A recycle replacement failed: the slot keeps its worker and tries again later. */
                delay = slot_throttle(p, s, now);
                v = POOL_VERDICT_THROTTLED;
        } else {
                s->restarts++;
                s->last_exit = *e;
                s->last_exit_usec = now;
                if (e->code == CLD_EXITED && e->status == p->config.prevent_exit_status) {
                        s->disabled = true;
                        v = POOL_VERDICT_DISABLED;
                } else if (was_ready && uptime >= p->config.min_uptime_usec) {
                        s->failures = 0;
                        s->restart_at = 0;
                        v = POOL_VERDICT_RESPAWN;
                } else {
                        delay = slot_throttle(p, s, now);
                        v = POOL_VERDICT_THROTTLED;
                }
        }

        record_free(p, w);
        if (ret_delay)
                *ret_delay = delay;
        return v;
}

PoolVerdict pool_worker_failed(Pool *p, PoolWorker *w, usec_t now, usec_t *ret_delay) {
        PoolSlot *s = &p->slots[w->slot];
        bool was_replacement = s->replacement == w;
        usec_t delay = 0;
        PoolVerdict v;

        if (w->state != WORKER_STARTING || p->stopping)
                return POOL_VERDICT_EXPECTED;

        record_stop(p, w, STOP_FAILED);
        if (is_roll_failure(p, w, false, 0)) {
                abort_roll(p, w, true, false);
                if (!was_replacement)
                        delay = slot_throttle(p, s, now);
                v = POOL_VERDICT_ROLL_ABORTED;
        } else {
                if (!was_replacement)
                        s->restarts++;
                delay = slot_throttle(p, s, now);
                v = POOL_VERDICT_THROTTLED;
        }
        if (ret_delay)
                *ret_delay = delay;
        return v;
}

void pool_worker_recycle(Pool *p, PoolWorker *w) {
        if (w->state == WORKER_READY)
                w->recycle = true;
}

int pool_reload(Pool *p, const PoolConfig *c) {
        if (pool_ensure_slots(p, c->count) < 0)
                return -ENOMEM;

        /* Replacements heading for an older target are not serving: drop them, the roll restarts. */
        for (unsigned i = 0; i < p->n_slots; i++) {
                PoolSlot *s = &p->slots[i];

                if (s->replacement)
                        record_stop(p, s->replacement, STOP_ABORTED);
                /* A new generation deserves a fresh start: forget backoff and disabled slots. */
                s->failures = 0;
                s->restart_at = 0;
                s->disabled = false;
        }

        p->config = *c;
        p->generation = ++p->last_generation;
        p->rolling = true;
        p->rollback = false;
        p->roll_first_id = p->next_id;
        return (int) p->generation;
}

void pool_stop(Pool *p) {
        p->stopping = true;
        p->rolling = p->rollback = false;
        for (PoolWorker *w = p->workers; w; w = w->next)
                if (w->state != WORKER_STOPPING)
                        record_stop(p, w, STOP_SHUTDOWN);
}

void pool_counts(const Pool *p, PoolCounts *ret) {
        PoolCounts c = { .wanted = p->stopping ? 0 : p->config.count };

        for (unsigned i = 0; i < p->config.count && !p->stopping; i++) {
                const PoolSlot *s = &p->slots[i];

                if (s->disabled)
                        c.disabled++;
                else if (s->current && s->current->state == WORKER_READY)
                        c.ready++;
                else if (!s->current && !s->replacement && s->restart_at != 0)
                        c.waiting++;
        }
        for (const PoolWorker *w = p->workers; w; w = w->next) {
                c.workers++;
                if (w->state == WORKER_STARTING)
                        c.starting++;
                else if (w->state == WORKER_STOPPING)
                        c.stopping++;
        }
        *ret = c;
}

bool pool_all_ready(const Pool *p) {
        if (p->stopping)
                return false;
        for (unsigned i = 0; i < p->config.count; i++) {
                const PoolSlot *s = &p->slots[i];
                if (s->disabled || !s->current || s->current->state != WORKER_READY)
                        return false;
        }
        return true;
}

static const char *const pool_state_table[_POOL_STATE_MAX] = {
        [POOL_STARTING] = "starting", [POOL_RUNNING] = "running",   [POOL_RELOADING] = "reloading",
        [POOL_DEGRADED] = "degraded", [POOL_STOPPING] = "stopping",
};

const char *pool_state_to_string(PoolState s) {
        return s >= 0 && s < _POOL_STATE_MAX ? pool_state_table[s] : NULL;
}

PoolState pool_state(const Pool *p) {
        if (p->stopping)
                return POOL_STOPPING;
        if (p->rolling)
                return POOL_RELOADING;
        if (!p->reached_ready)
                return POOL_STARTING;
        return pool_all_ready(p) ? POOL_RUNNING : POOL_DEGRADED;
}

bool pool_is_empty(const Pool *p) {
        return !p->workers;
}

bool pool_is_stopping(const Pool *p) {
        return p->stopping;
}

bool pool_is_rolling(const Pool *p) {
        return p->rolling;
}

unsigned pool_generation(const Pool *p) {
        return p->generation;
}

unsigned pool_stable_generation(const Pool *p) {
        return p->stable_generation;
}

void pool_roll_progress(const Pool *p, unsigned *ret_done, unsigned *ret_total) {
        unsigned done = 0;

        for (unsigned i = 0; i < p->config.count; i++) {
                const PoolSlot *s = &p->slots[i];
                if (s->current && s->current->state == WORKER_READY && s->current->generation == p->generation)
                        done++;
        }
        *ret_done = done;
        *ret_total = p->config.count;
}

bool pool_slot_last_exit(const Pool *p, unsigned slot, PoolExit *ret, usec_t *ret_when) {
        if (slot >= p->n_slots || p->slots[slot].last_exit_usec == 0)
                return false;
        *ret = p->slots[slot].last_exit;
        *ret_when = p->slots[slot].last_exit_usec;
        return true;
}

unsigned pool_slot_restarts(const Pool *p, unsigned slot) {
        return slot < p->n_slots ? p->slots[slot].restarts : 0;
}

const PoolConfig *pool_config(const Pool *p) {
        return &p->config;
}

PoolWorker *pool_workers(const Pool *p) {
        return p->workers;
}

PoolWorker *pool_find_worker(const Pool *p, unsigned slot, uint64_t id) {
        if (slot < p->n_slots) {
                PoolSlot *s = &p->slots[slot];
                if (s->current && s->current->id == id)
                        return s->current;
                if (s->replacement && s->replacement->id == id)
                        return s->replacement;
        }
        /* Stopping workers are detached from their slot. */
        for (PoolWorker *w = p->workers; w; w = w->next)
                if (w->id == id)
                        return w;
        return NULL;
}

int pool_worker_compare_rank(const PoolWorker *a, const PoolWorker *b) {
        if (a->memory_bytes != b->memory_bytes)
                return a->memory_bytes > b->memory_bytes ? -1 : 1;
        if (a->cpu_usec != b->cpu_usec)
                return a->cpu_usec > b->cpu_usec ? -1 : 1;
        if (a->started_usec != b->started_usec)
                return a->started_usec < b->started_usec ? -1 : 1;
        return a->slot < b->slot ? -1 : a->slot > b->slot;
}

int pool_image(const Pool *p, PoolImage *ret) {
        PoolImage img = {
                .config = p->config,
                .stable_config = p->stable_config,
                .generation = p->generation,
                .stable_generation = p->stable_generation,
                .last_generation = p->last_generation,
                .next_id = p->next_id,
                .stopping = p->stopping,
                .rolling = p->rolling,
                .rollback = p->rollback,
                .reached_ready = p->reached_ready,
                .roll_first_id = p->roll_first_id,
                .n_slots = p->n_slots,
        };
        size_t n = 0;

        if (p->n_reports > 0)
                return -EBUSY;
        for (const PoolWorker *w = p->workers; w; w = w->next)
                n++;
        img.slots = calloc(p->n_slots, sizeof(PoolSlotImage));
        img.workers = n > 0 ? calloc(n, sizeof(PoolWorker)) : NULL;
        if (!img.slots || (n > 0 && !img.workers)) {
                pool_image_done(&img);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < p->n_slots; i++) {
                const PoolSlot *s = &p->slots[i];
                img.slots[i] = (PoolSlotImage) {
                        .current_id = s->current ? s->current->id : 0,
                        .replacement_id = s->replacement ? s->replacement->id : 0,
                        .failures = s->failures,
                        .restart_at = s->restart_at,
                        .disabled = s->disabled,
                        .restarts = s->restarts,
                        .last_exit = s->last_exit,
                        .last_exit_usec = s->last_exit_usec,
                };
        }
        for (const PoolWorker *w = p->workers; w; w = w->next) {
                PoolWorker *c = &img.workers[img.n_workers++];
                *c = *w;
                c->process = NULL;
                c->prev = c->next = NULL;
        }
        *ret = img;
        return 0;
}

void pool_image_done(PoolImage *img) {
        free(img->slots);
        free(img->workers);
        *img = (PoolImage) {};
}

/* Every check a live pool satisfies; the first that fails is named. */
static const char *image_check(const PoolImage *img) {
        uint64_t last_id = 0;

        if (img->n_slots < MAX(img->config.count, 1U) || img->n_slots > POOL_IMAGE_SLOTS_MAX)
                return "the number of slots does not fit the count";
        if (img->generation < 1 || img->stable_generation < 1 || img->generation > img->last_generation ||
            img->stable_generation > img->last_generation)
                return "a generation number is out of range";
        if (img->rollback && !img->rolling)
                return "a rollback outside a roll";
        if (img->roll_first_id > img->next_id)
                return "the roll's first worker id is out of range";
        for (size_t i = 0; i < img->n_workers; i++) {
                const PoolWorker *w = &img->workers[i];
                if (w->id <= last_id || w->id >= img->next_id)
                        return "worker ids are not increasing, or not below the next id";
                last_id = w->id;
                if (w->slot >= img->n_slots)
                        return "a worker's slot is out of range";
                if (w->state < 0 || w->state >= _WORKER_STATE_MAX)
                        return "a worker's state is unknown";
                if (w->state == WORKER_STOPPING && (w->stop_reason < 0 || w->stop_reason >= _STOP_REASON_MAX))
                        return "a stopping worker's reason is unknown";
                if (w->generation < 1 || w->generation > img->last_generation)
                        return "a worker's generation is out of range";
                if (w->state == WORKER_READY && w->ready_usec == 0)
                        return "a ready worker has no ready time";
        }
        return NULL;
}

static PoolWorker *image_worker(const PoolImage *img, Pool *p, uint64_t id, unsigned slot, bool replacement,
                                const char **ret_error) {
        PoolWorker *w;

        if (id == 0)
                return NULL;
        for (w = p->workers; w && w->id != id; w = w->next)
                ;
        if (!w || w->slot != slot)
                *ret_error = "a slot names a worker that is not in it";
        else if (w->state == WORKER_STOPPING || (replacement && w->state != WORKER_STARTING))
                *ret_error = "a slot names a worker in the wrong state";
        else if (w->process)
                *ret_error = "a worker is named by its slot twice";
        else {
                w->process = (struct Worker *) img; /* a mark, cleared below */
                return w;
        }
        return NULL;
}

int pool_from_image(const PoolImage *img, Pool **ret, const char **ret_error) {
        const char *error = image_check(img);
        Pool *p;

        if (error) {
                if (ret_error)
                        *ret_error = error;
                return -EINVAL;
        }
        p = pool_new(&img->config);
        if (!p || pool_ensure_slots(p, img->n_slots) < 0) {
                pool_free(p);
                return -ENOMEM;
        }
        p->stable_config = img->stable_config;
        p->generation = img->generation;
        p->stable_generation = img->stable_generation;
        p->last_generation = img->last_generation;
        p->next_id = img->next_id;
        p->stopping = img->stopping;
        p->rolling = img->rolling;
        p->rollback = img->rollback;
        p->reached_ready = img->reached_ready;
        p->roll_first_id = img->roll_first_id;
        for (size_t i = 0; i < img->n_workers; i++) {
                PoolWorker *w = malloc(sizeof(PoolWorker));
                if (!w) {
                        pool_free(p);
                        return -ENOMEM;
                }
                *w = img->workers[i];
                w->process = NULL;
                record_append(p, w);
        }
        for (unsigned i = 0; i < img->n_slots && !error; i++) {
                const PoolSlotImage *si = &img->slots[i];
                PoolSlot *s = &p->slots[i];
                *s = (PoolSlot) {
                        .failures = si->failures,
                        .restart_at = si->restart_at,
                        .disabled = si->disabled,
                        .restarts = si->restarts,
                        .last_exit = si->last_exit,
                        .last_exit_usec = si->last_exit_usec,
                };
                s->current = image_worker(img, p, si->current_id, i, false, &error);
                if (!error)
                        s->replacement = image_worker(img, p, si->replacement_id, i, true, &error);
        }
        /* A starting or ready worker its slot does not name would never be planned for again. */
        for (PoolWorker *w = p->workers; w && !error; w = w->next)
                if (w->state != WORKER_STOPPING && !w->process)
                        error = "a starting or ready worker is not named by its slot";
        for (PoolWorker *w = p->workers; w; w = w->next)
                w->process = NULL;
        if (error) {
                if (ret_error)
                        *ret_error = error;
                pool_free(p);
                return -EINVAL;
        }
        *ret = p;
        return 0;
}
