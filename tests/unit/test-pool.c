/* SPDX-License-Identifier: MIT */
/* Tests for the pool policy (pool.c): the test plays the manager, carries out every plan and reports
 * readiness, exits and timeouts with explicit times. Startup, backoff, shutdown, rolls, rollback and
 * ranking. */

#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>

#include "pool.h"

TestSuite(pool, .timeout = 10);

DEFINE_TRIVIAL_CLEANUP_FUNC(Pool *, pool_free);
#define _cleanup_pool_ _cleanup_(pool_freep)

#define T0 (1000 * USEC_PER_SEC)
#define MIN_UPTIME (1 * USEC_PER_SEC)
#define RESTART (100 * USEC_PER_MSEC)
#define BACKOFF_MAX (1 * USEC_PER_SEC)

static PoolConfig config_make(unsigned count, unsigned max_surge, unsigned max_unavailable) {
        return (PoolConfig){
                .count = count,
                .max_surge = max_surge,
                .max_unavailable = max_unavailable,
                .min_uptime_usec = MIN_UPTIME,
                .restart_usec = RESTART,
                .backoff_max_usec = BACKOFF_MAX,
                .prevent_exit_status = -1,
        };
}

/* One plan, carried out: what was spawned and what was stopped, checked against the plan contract. */
typedef struct Step {
        PoolPlan plan;
        PoolWorker *spawned[64];
        size_t n_spawned;
        PoolWorker *stopped[64];
        size_t n_stopped;
} Step;

static Step plan(Pool *p, usec_t now) {
        Step s = {};
        int r;

        r = pool_plan(p, now, &s.plan);
        cr_assert_eq(r, 0, "pool_plan() = %d", r);
        for (size_t i = 0; i < s.plan.n_actions; i++) {
                const PoolAction *a = &s.plan.actions[i];

                cr_assert_not_null(a->worker);
                if (a->type == POOL_ACTION_SPAWN) {
                        cr_assert_eq(a->worker->state, WORKER_STARTING);
                        cr_assert_eq(a->worker->started_usec, now);
                        cr_assert_lt(a->worker->slot, pool_config(p)->count);
                        cr_assert_lt(s.n_spawned, ELEMENTSOF(s.spawned));
                        s.spawned[s.n_spawned++] = a->worker;
                } else {
                        cr_assert_eq(a->type, POOL_ACTION_STOP);
                        cr_assert_eq(a->worker->state, WORKER_STOPPING);
                        cr_assert(a->worker->stop_sent);
                        for (size_t k = 0; k < s.n_stopped; k++)
                                cr_assert_neq(s.stopped[k], a->worker, "worker stopped twice in one plan");
                        cr_assert_lt(s.n_stopped, ELEMENTSOF(s.stopped));
                        s.stopped[s.n_stopped++] = a->worker;
                }
        }
        return s;
}

/* Whether the plan reports the roll event e. */
static bool has_report(const PoolPlan *plan, PoolRollEvent e) {
        for (size_t i = 0; i < plan->n_reports; i++)
                if (plan->reports[i].event == e)
                        return true;
        return false;
}

static bool step_stops(const Step *s, const PoolWorker *w) {
        for (size_t i = 0; i < s->n_stopped; i++)
                if (s->stopped[i] == w)
                        return true;
        return false;
}

static void ready(Pool *p, PoolWorker *w, usec_t now) {
        pool_worker_ready(p, w, now);
        cr_assert_eq(w->state, WORKER_READY);
        cr_assert_eq(w->ready_usec, now);
}

/* Reports an exit; w is freed afterwards. */
static PoolVerdict exit_worker(Pool *p, PoolWorker *w, int code, int status, usec_t now, usec_t *ret_delay) {
        PoolExit e = { .code = code, .status = status };
        unsigned before = 0, after = 0;
        PoolVerdict v;

        for (PoolWorker *i = pool_workers(p); i; i = i->next)
                before++;
        v = pool_worker_exited(p, w, &e, now, ret_delay);
        for (PoolWorker *i = pool_workers(p); i; i = i->next)
                after++;
        cr_assert_eq(after, before - 1, "exited worker still listed");
        return v;
}

static PoolVerdict crash(Pool *p, PoolWorker *w, usec_t now, usec_t *ret_delay) {
        return exit_worker(p, w, CLD_KILLED, SIGSEGV, now, ret_delay);
}

/* The live worker of slot in state (the first one), or NULL. */
static PoolWorker *slot_worker(Pool *p, unsigned slot, WorkerState state) {
        for (PoolWorker *w = pool_workers(p); w; w = w->next)
                if (w->slot == slot && w->state == state)
                        return w;
        return NULL;
}

static unsigned n_workers(Pool *p, WorkerState state) {
        unsigned n = 0;

        for (PoolWorker *w = pool_workers(p); w; w = w->next)
                if (w->state == state)
                        n++;
        return n;
}

static unsigned n_generation(Pool *p, unsigned generation, bool include_stopping) {
        unsigned n = 0;

        for (PoolWorker *w = pool_workers(p); w; w = w->next)
                if (w->generation == generation && (include_stopping || w->state != WORKER_STOPPING))
                        n++;
        return n;
}

/* A pool whose first plan was carried out and whose workers are all ready at now. */
static Pool *start_pool(const PoolConfig *c, usec_t now) {
        Pool *p = pool_new(c);
        Step s;

        cr_assert_not_null(p);
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, c->count);
        for (size_t i = 0; i < s.n_spawned; i++)
                ready(p, s.spawned[i], now);
        cr_assert(pool_all_ready(p));
        return p;
}

typedef struct DriveResult {
        unsigned roll_done;
        unsigned rollback_done;
        unsigned rollback_failed;
        unsigned plans;
        unsigned spawned;
        unsigned stopped;
        unsigned stop_reasons[_STOP_REASON_MAX];
} DriveResult;

/* Plays a well-behaved manager until a plan has nothing to do and no roll is in progress: spawned workers
 * become ready, stopped workers exit. Checks that at least min_serving workers are ready (and not being
 * stopped) after every event. */
static DriveResult drive(Pool *p, usec_t *now, unsigned min_serving) {
        DriveResult d = {};

        for (unsigned iteration = 0;; iteration++) {
                Step s;

                cr_assert_lt(iteration, 100, "pool does not converge");
                *now += 10 * USEC_PER_MSEC;
                s = plan(p, *now);
                d.plans++;
                d.roll_done += has_report(&s.plan, POOL_ROLL_DONE);
                d.rollback_done += has_report(&s.plan, POOL_ROLL_ROLLBACK_DONE);
                d.rollback_failed += has_report(&s.plan, POOL_ROLL_ROLLBACK_FAILED);
                cr_assert_geq(n_workers(p, WORKER_READY), min_serving);

                if (s.n_spawned == 0 && s.n_stopped == 0 && !pool_is_rolling(p))
                        return d;

                for (size_t i = 0; i < s.n_stopped; i++) {
                        d.stopped++;
                        d.stop_reasons[s.stopped[i]->stop_reason]++;
                        cr_assert_eq(exit_worker(p, s.stopped[i], CLD_EXITED, 0, *now, NULL),
                                     POOL_VERDICT_EXPECTED);
                        cr_assert_geq(n_workers(p, WORKER_READY), min_serving);
                }
                *now += 10 * USEC_PER_MSEC;
                for (size_t i = 0; i < s.n_spawned; i++) {
                        d.spawned++;
                        ready(p, s.spawned[i], *now);
                        cr_assert_geq(n_workers(p, WORKER_READY), min_serving);
                }
        }
}

Test(pool, first_plan_spawns_count_workers_of_generation_1) {
        PoolConfig c = config_make(4, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        bool seen[4] = {};
        Step s;

        cr_assert_not_null(p);
        cr_assert_eq(pool_generation(p), 1);
        cr_assert_eq(pool_stable_generation(p), 1);
        cr_assert(pool_is_empty(p));

        s = plan(p, T0);
        cr_assert_eq(s.plan.n_actions, 4);
        cr_assert_eq(s.n_spawned, 4);
        cr_assert_eq(s.plan.n_reports, 0);
        cr_assert_eq(s.plan.wakeup_usec, USEC_INFINITY);
        for (size_t i = 0; i < s.n_spawned; i++) {
                cr_assert_eq(s.spawned[i]->generation, 1);
                cr_assert_lt(s.spawned[i]->slot, 4);
                cr_assert_not(seen[s.spawned[i]->slot], "slot %u spawned twice", s.spawned[i]->slot);
                seen[s.spawned[i]->slot] = true;
                cr_assert_eq(pool_find_worker(p, s.spawned[i]->slot, s.spawned[i]->id), s.spawned[i]);
                for (size_t k = 0; k < i; k++)
                        cr_assert_neq(s.spawned[k]->id, s.spawned[i]->id);
        }
        cr_assert_not(pool_is_empty(p));
        cr_assert_not(pool_is_rolling(p));
}

Test(pool, second_plan_without_events_does_nothing) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        Step s;

        cr_assert_not_null(p);
        s = plan(p, T0);
        cr_assert_eq(s.n_spawned, 3);
        s = plan(p, T0 + 1);
        cr_assert_eq(s.plan.n_actions, 0);
        cr_assert_eq(s.plan.wakeup_usec, USEC_INFINITY);
        s = plan(p, T0 + USEC_PER_HOUR);
        cr_assert_eq(s.plan.n_actions, 0);
}

Test(pool, all_ready_only_when_every_slot_is_ready) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        PoolCounts counts;
        Step s;

        cr_assert_not_null(p);
        cr_assert_not(pool_all_ready(p));
        s = plan(p, T0);
        cr_assert_eq(s.n_spawned, 3);

        pool_counts(p, &counts);
        cr_assert_eq(counts.wanted, 3);
        cr_assert_eq(counts.ready, 0);
        cr_assert_eq(counts.starting, 3);
        cr_assert_eq(counts.stopping, 0);
        cr_assert_eq(counts.waiting, 0);
        cr_assert_eq(counts.disabled, 0);
        cr_assert_eq(counts.workers, 3);

        for (size_t i = 0; i < 3; i++) {
                cr_assert_not(pool_all_ready(p));
                ready(p, s.spawned[i], T0 + 10);
                pool_counts(p, &counts);
                cr_assert_eq(counts.ready, i + 1);
                cr_assert_eq(counts.starting, 3 - (i + 1));
        }
        cr_assert(pool_all_ready(p));
        pool_counts(p, &counts);
        cr_assert_eq(counts.wanted, 3);
        cr_assert_eq(counts.ready, 3);
        cr_assert_eq(counts.workers, 3);

        /* Ready twice is not a state change. */
        pool_worker_ready(p, s.spawned[0], T0 + 20);
        cr_assert_eq(s.spawned[0]->ready_usec, T0 + 10);
}

Test(pool, long_lived_crash_respawns_at_once) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        PoolWorker *w = slot_worker(p, 1, WORKER_READY);
        usec_t now = T0 + MIN_UPTIME + 1, delay = 4242;
        Step s;

        cr_assert_not_null(w);
        cr_assert_eq(crash(p, w, now, &delay), POOL_VERDICT_RESPAWN);
        cr_assert_eq(delay, 0);
        cr_assert_not(pool_all_ready(p));
        cr_assert_eq(pool_slot_restarts(p, 1), 1);

        s = plan(p, now);
        cr_assert_eq(s.plan.n_actions, 1);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.spawned[0]->slot, 1);
        cr_assert_eq(s.spawned[0]->generation, 1);
        cr_assert_eq(s.plan.wakeup_usec, USEC_INFINITY);
        ready(p, s.spawned[0], now + 1);
        cr_assert(pool_all_ready(p));
}

Test(pool, quick_crash_is_throttled_until_the_delay_passed) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        PoolWorker *w = slot_worker(p, 2, WORKER_READY);
        usec_t now = T0 + MIN_UPTIME - 1, delay = 0;
        PoolCounts counts;
        Step s;

        cr_assert_eq(crash(p, w, now, &delay), POOL_VERDICT_THROTTLED);
        cr_assert_eq(delay, RESTART);
        cr_assert_eq(pool_slot_restarts(p, 2), 1);

        s = plan(p, now);
        cr_assert_eq(s.plan.n_actions, 0);
        cr_assert_eq(s.plan.wakeup_usec, now + RESTART);
        pool_counts(p, &counts);
        cr_assert_eq(counts.waiting, 1);
        cr_assert_eq(counts.ready, 2);
        cr_assert_eq(counts.workers, 2);

        s = plan(p, now + RESTART - 1);
        cr_assert_eq(s.plan.n_actions, 0);
        cr_assert_eq(s.plan.wakeup_usec, now + RESTART);

        s = plan(p, now + RESTART);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.spawned[0]->slot, 2);
        cr_assert_eq(s.spawned[0]->generation, 1);
        cr_assert_eq(s.plan.wakeup_usec, USEC_INFINITY);
        pool_counts(p, &counts);
        cr_assert_eq(counts.waiting, 0);
        cr_assert_eq(counts.starting, 1);
}

Test(pool, crash_before_ready_is_throttled) {
        PoolConfig c = config_make(1, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        usec_t delay = 0;
        Step s;

        cr_assert_not_null(p);
        s = plan(p, T0);
        cr_assert_eq(s.n_spawned, 1);
        /* Even long after its start: it never became ready. */
        cr_assert_eq(exit_worker(p, s.spawned[0], CLD_EXITED, 1, T0 + 10 * MIN_UPTIME, &delay),
                     POOL_VERDICT_THROTTLED);
        cr_assert_eq(delay, RESTART);
}

Test(pool, failed_spawn_is_reported_as_exit) {
        PoolConfig c = config_make(1, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        usec_t delay = 0;
        Step s;

        cr_assert_not_null(p);
        s = plan(p, T0);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(exit_worker(p, s.spawned[0], 0, 0, T0, &delay), POOL_VERDICT_THROTTLED);
        cr_assert_eq(delay, RESTART);
        cr_assert(pool_is_empty(p));
        s = plan(p, T0);
        cr_assert_eq(s.plan.n_actions, 0);
        cr_assert_eq(s.plan.wakeup_usec, T0 + RESTART);
}

Test(pool, repeated_quick_crashes_double_the_delay_up_to_the_cap) {
        static const usec_t expected[] = {
                100 * USEC_PER_MSEC,  200 * USEC_PER_MSEC,  400 * USEC_PER_MSEC,  800 * USEC_PER_MSEC,
                1000 * USEC_PER_MSEC, 1000 * USEC_PER_MSEC, 1000 * USEC_PER_MSEC,
        };
        PoolConfig c = config_make(1, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0;

        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                PoolWorker *w = slot_worker(p, 0, WORKER_READY);
                usec_t delay = 0;
                Step s;

                cr_assert_not_null(w);
                now += 50 * USEC_PER_MSEC;
                cr_assert_eq(crash(p, w, now, &delay), POOL_VERDICT_THROTTLED);
                cr_assert_eq(delay, expected[i], "crash %zu: delay %" PRIu64 ", expected %" PRIu64, i + 1,
                             delay, expected[i]);

                s = plan(p, now);
                cr_assert_eq(s.plan.n_actions, 0);
                cr_assert_eq(s.plan.wakeup_usec, now + delay);
                now += delay;
                s = plan(p, now);
                cr_assert_eq(s.n_spawned, 1);
                ready(p, s.spawned[0], now + 1);
        }
        cr_assert_eq(pool_slot_restarts(p, 0), ELEMENTSOF(expected));
}

Test(pool, long_run_resets_the_backoff) {
        PoolConfig c = config_make(1, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0, delay = 0;
        Step s;

        for (unsigned i = 0; i < 3; i++) {
                now += 10 * USEC_PER_MSEC;
                cr_assert_eq(crash(p, slot_worker(p, 0, WORKER_READY), now, &delay), POOL_VERDICT_THROTTLED);
                now += delay;
                s = plan(p, now);
                cr_assert_eq(s.n_spawned, 1);
                ready(p, s.spawned[0], now);
        }
        cr_assert_eq(delay, 4 * RESTART);

        now += MIN_UPTIME;
        cr_assert_eq(crash(p, slot_worker(p, 0, WORKER_READY), now, &delay), POOL_VERDICT_RESPAWN);
        cr_assert_eq(delay, 0);
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 1);
        ready(p, s.spawned[0], now);

        now += 10 * USEC_PER_MSEC;
        cr_assert_eq(crash(p, slot_worker(p, 0, WORKER_READY), now, &delay), POOL_VERDICT_THROTTLED);
        cr_assert_eq(delay, RESTART, "backoff not reset by a long run");
}

Test(pool, backoff_delay_table) {
        PoolConfig c = config_make(1, 1, 0);

        c.restart_usec = 100 * USEC_PER_MSEC;
        c.backoff_max_usec = 30 * USEC_PER_SEC;
        cr_assert_eq(pool_backoff_delay(&c, 1), 100 * USEC_PER_MSEC);
        cr_assert_eq(pool_backoff_delay(&c, 2), 200 * USEC_PER_MSEC);
        cr_assert_eq(pool_backoff_delay(&c, 3), 400 * USEC_PER_MSEC);
        cr_assert_eq(pool_backoff_delay(&c, 4), 800 * USEC_PER_MSEC);
        cr_assert_eq(pool_backoff_delay(&c, 9), 25600 * USEC_PER_MSEC);
        cr_assert_eq(pool_backoff_delay(&c, 10), 30 * USEC_PER_SEC);
        cr_assert_eq(pool_backoff_delay(&c, 100), 30 * USEC_PER_SEC);
        cr_assert_eq(pool_backoff_delay(&c, UINT32_MAX), 30 * USEC_PER_SEC);

        /* A first delay above the cap is capped. */
        c.restart_usec = 5 * USEC_PER_SEC;
        c.backoff_max_usec = 2 * USEC_PER_SEC;
        cr_assert_eq(pool_backoff_delay(&c, 1), 2 * USEC_PER_SEC);

        /* Equal: no growth. */
        c.restart_usec = c.backoff_max_usec = USEC_PER_SEC;
        cr_assert_eq(pool_backoff_delay(&c, 1), USEC_PER_SEC);
        cr_assert_eq(pool_backoff_delay(&c, 50), USEC_PER_SEC);

        /* No delay at all stays at none. */
        c.restart_usec = 0;
        c.backoff_max_usec = USEC_PER_SEC;
        cr_assert_eq(pool_backoff_delay(&c, 1), 0);
        cr_assert_eq(pool_backoff_delay(&c, 64), 0);
}

Test(pool, backoff_delay_does_not_overflow) {
        PoolConfig c = config_make(1, 1, 0);

        c.restart_usec = USEC_INFINITY / 2 + 1;
        c.backoff_max_usec = USEC_INFINITY;
        cr_assert_eq(pool_backoff_delay(&c, 1), USEC_INFINITY / 2 + 1);
        cr_assert_eq(pool_backoff_delay(&c, 2), USEC_INFINITY);
        cr_assert_eq(pool_backoff_delay(&c, UINT32_MAX), USEC_INFINITY);

        c.restart_usec = 3;
        cr_assert_eq(pool_backoff_delay(&c, 63), (usec_t) 3 << 62);
        /* 3 * 2^63 does not fit: saturates instead of wrapping. */
        cr_assert_eq(pool_backoff_delay(&c, 64), USEC_INFINITY);
        cr_assert_eq(pool_backoff_delay(&c, 1000), USEC_INFINITY);

        c.restart_usec = USEC_INFINITY - 1;
        c.backoff_max_usec = USEC_INFINITY - 2;
        cr_assert_eq(pool_backoff_delay(&c, 1), USEC_INFINITY - 2);
        cr_assert_eq(pool_backoff_delay(&c, 5), USEC_INFINITY - 2);

        c.restart_usec = 1;
        c.backoff_max_usec = USEC_INFINITY - 1;
        cr_assert_eq(pool_backoff_delay(&c, 64), (usec_t) 1 << 63);
        cr_assert_eq(pool_backoff_delay(&c, 65), USEC_INFINITY - 1);
}

Test(pool, prevent_exit_status_disables_the_slot) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = NULL;
        PoolWorker *w;
        PoolCounts counts;
        usec_t delay = 4242;
        Step s;

        c.prevent_exit_status = 42;
        p = start_pool(&c, T0);
        w = slot_worker(p, 0, WORKER_READY);
        cr_assert_eq(exit_worker(p, w, CLD_EXITED, 42, T0 + 10, &delay), POOL_VERDICT_DISABLED);
        cr_assert_eq(delay, 0);

        for (usec_t t = T0 + 10; t < T0 + USEC_PER_HOUR; t += 10 * USEC_PER_MINUTE) {
                s = plan(p, t);
                cr_assert_eq(s.plan.n_actions, 0);
                cr_assert_eq(s.plan.wakeup_usec, USEC_INFINITY);
        }
        cr_assert_null(slot_worker(p, 0, WORKER_STARTING));
        cr_assert_not(pool_all_ready(p));
        pool_counts(p, &counts);
        cr_assert_eq(counts.wanted, 3);
        cr_assert_eq(counts.disabled, 1);
        cr_assert_eq(counts.ready, 2);
        cr_assert_eq(counts.waiting, 0);
        cr_assert_eq(counts.workers, 2);
}

Test(pool, other_exit_status_or_signal_does_not_disable) {
        PoolConfig c = config_make(2, 1, 0);
        _cleanup_pool_ Pool *p = NULL;

        c.prevent_exit_status = 42;
        p = start_pool(&c, T0);
        cr_assert_eq(exit_worker(p, slot_worker(p, 0, WORKER_READY), CLD_EXITED, 41, T0 + MIN_UPTIME, NULL),
                     POOL_VERDICT_RESPAWN);
        /* Killed by signal 42 is not exit status 42. */
        cr_assert_eq(exit_worker(p, slot_worker(p, 1, WORKER_READY), CLD_KILLED, 42, T0 + MIN_UPTIME, NULL),
                     POOL_VERDICT_RESPAWN);
        cr_assert_eq(plan(p, T0 + MIN_UPTIME).n_spawned, 2);
}

Test(pool, ready_timeout_stops_the_worker_once_and_throttles_the_slot) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        PoolWorker *late;
        PoolCounts counts;
        usec_t now = T0 + 30 * USEC_PER_SEC, delay = 0;
        Step s;

        cr_assert_not_null(p);
        s = plan(p, T0);
        ready(p, s.spawned[0], T0 + 1);
        ready(p, s.spawned[1], T0 + 1);
        late = s.spawned[2];

        cr_assert_eq(pool_worker_failed(p, late, now, &delay), POOL_VERDICT_THROTTLED);
        cr_assert_eq(delay, RESTART);
        cr_assert_eq(late->state, WORKER_STOPPING);
        cr_assert_eq(late->stop_reason, STOP_FAILED);

        s = plan(p, now);
        cr_assert_eq(s.plan.n_actions, 1);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], late);
        cr_assert_eq(s.plan.wakeup_usec, now + RESTART);
        pool_counts(p, &counts);
        cr_assert_eq(counts.waiting, 1);
        cr_assert_eq(counts.stopping, 1);

        s = plan(p, now + 1);
        cr_assert_eq(s.plan.n_actions, 0);

        /* Failing it again changes nothing. */
        cr_assert_eq(pool_worker_failed(p, late, now + 2, NULL), POOL_VERDICT_EXPECTED);

        s = plan(p, now + RESTART);
        cr_assert_eq(s.n_stopped, 0);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.spawned[0]->slot, 2);

        cr_assert_eq(exit_worker(p, late, CLD_KILLED, SIGTERM, now + RESTART + 1, NULL),
                     POOL_VERDICT_EXPECTED);
        s = plan(p, now + RESTART + 2);
        cr_assert_eq(s.plan.n_actions, 0);
}

Test(pool, stop_stops_every_worker_once_and_spawns_nothing) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        PoolWorker *w[3];
        PoolCounts counts;
        Step s;

        cr_assert_not_null(p);
        s = plan(p, T0);
        for (size_t i = 0; i < 3; i++)
                w[i] = s.spawned[i];
        ready(p, w[0], T0 + 1);
        ready(p, w[1], T0 + 1);
        /* w[2] is still starting, and slot 1 crashed quickly so it waits out a backoff. */
        cr_assert_eq(crash(p, w[1], T0 + 2, NULL), POOL_VERDICT_THROTTLED);

        pool_stop(p);
        cr_assert(pool_is_stopping(p));
        cr_assert_not(pool_all_ready(p));
        pool_counts(p, &counts);
        cr_assert_eq(counts.wanted, 0);
        cr_assert_eq(counts.stopping, 2);

        s = plan(p, T0 + 3);
        cr_assert_eq(s.n_spawned, 0);
        cr_assert_eq(s.n_stopped, 2);
        cr_assert(step_stops(&s, w[0]));
        cr_assert(step_stops(&s, w[2]));
        cr_assert_eq(w[0]->stop_reason, STOP_SHUTDOWN);
        cr_assert_eq(w[2]->stop_reason, STOP_SHUTDOWN);
        cr_assert_eq(s.plan.wakeup_usec, USEC_INFINITY);

        s = plan(p, T0 + USEC_PER_HOUR);
        cr_assert_eq(s.plan.n_actions, 0);

        /* Readiness or a timeout after the stop changes nothing. */
        pool_worker_ready(p, w[2], T0 + 4);
        cr_assert_eq(w[2]->state, WORKER_STOPPING);
        cr_assert_eq(pool_worker_failed(p, w[2], T0 + 4, NULL), POOL_VERDICT_EXPECTED);

        cr_assert_eq(exit_worker(p, w[0], CLD_EXITED, 0, T0 + 5, NULL), POOL_VERDICT_SHUTDOWN);
        cr_assert_not(pool_is_empty(p));
        s = plan(p, T0 + 5);
        cr_assert_eq(s.plan.n_actions, 0);
        cr_assert_eq(exit_worker(p, w[2], CLD_KILLED, SIGKILL, T0 + 6, NULL), POOL_VERDICT_SHUTDOWN);
        cr_assert(pool_is_empty(p));
        s = plan(p, T0 + USEC_PER_DAY);
        cr_assert_eq(s.plan.n_actions, 0);
        pool_counts(p, &counts);
        cr_assert_eq(counts.workers, 0);
}

Test(pool, stop_does_not_stop_a_worker_twice) {
        PoolConfig c = config_make(2, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        PoolWorker *recycled = slot_worker(p, 0, WORKER_READY), *other = slot_worker(p, 1, WORKER_READY);
        Step s;

        /* Recycle slot 0: its replacement becomes ready, the old worker gets its STOP before the
         * shutdown. */
        pool_worker_recycle(p, recycled);
        s = plan(p, T0 + 1);
        cr_assert_eq(s.n_spawned, 1);
        ready(p, s.spawned[0], T0 + 2);
        s = plan(p, T0 + 3);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], recycled);

        pool_stop(p);
        cr_assert_eq(recycled->stop_reason, STOP_REPLACED);
        s = plan(p, T0 + 4);
        cr_assert_eq(s.n_spawned, 0);
        cr_assert_eq(s.n_stopped, 2);
        cr_assert_not(step_stops(&s, recycled));
        cr_assert(step_stops(&s, other));
}

Test(pool, state_transition_table) {
        static const struct {
                WorkerState from, to;
                bool allowed;
        } table[] = {
                { WORKER_STARTING, WORKER_STARTING, false }, { WORKER_STARTING, WORKER_READY, true },
                { WORKER_STARTING, WORKER_STOPPING, true },  { WORKER_READY, WORKER_STARTING, false },
                { WORKER_READY, WORKER_READY, false },       { WORKER_READY, WORKER_STOPPING, true },
                { WORKER_STOPPING, WORKER_STARTING, false }, { WORKER_STOPPING, WORKER_READY, false },
                { WORKER_STOPPING, WORKER_STOPPING, false },
        };
        static const WorkerState bad[] = { _WORKER_STATE_INVALID, -1, _WORKER_STATE_MAX, 100, INT32_MAX };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                cr_assert_eq(worker_state_check_transition(table[i].from, table[i].to),
                             table[i].allowed ? 0 : -EINVAL, "%s -> %s",
                             worker_state_to_string(table[i].from), worker_state_to_string(table[i].to));

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                for (WorkerState s = 0; s < _WORKER_STATE_MAX; s++) {
                        cr_assert_eq(worker_state_check_transition(bad[i], s), -EINVAL);
                        cr_assert_eq(worker_state_check_transition(s, bad[i]), -EINVAL);
                }
}

Test(pool, names_of_states_and_stop_reasons) {
        cr_assert_str_eq(worker_state_to_string(WORKER_STARTING), "starting");
        cr_assert_str_eq(worker_state_to_string(WORKER_READY), "ready");
        cr_assert_str_eq(worker_state_to_string(WORKER_STOPPING), "stopping");
        cr_assert_null(worker_state_to_string(_WORKER_STATE_MAX));
        cr_assert_null(worker_state_to_string(_WORKER_STATE_INVALID));

        for (StopReason r = 0; r < _STOP_REASON_MAX; r++)
                cr_assert_not_null(stop_reason_to_string(r), "stop reason %d has no name", r);
        cr_assert_str_eq(stop_reason_to_string(STOP_SCALE_DOWN), "scale-down");
        cr_assert_null(stop_reason_to_string(_STOP_REASON_MAX));
        cr_assert_null(stop_reason_to_string(_STOP_REASON_INVALID));
}

Test(pool, reload_replaces_one_slot_at_a_time_start_first) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        PoolWorker *pending = NULL;
        unsigned done, total, roll_done = 0, replaced = 0;
        bool slot_done[3] = {};
        usec_t now = T0 + USEC_PER_MINUTE;

        cr_assert_eq(pool_reload(p, &c), 2);
        cr_assert_eq(pool_generation(p), 2);
        cr_assert_eq(pool_stable_generation(p), 1);
        cr_assert(pool_is_rolling(p));
        pool_roll_progress(p, &done, &total);
        cr_assert_eq(done, 0);
        cr_assert_eq(total, 3);

        for (unsigned step = 0; step < 4; step++) {
                PoolWorker *old = NULL;
                Step s;

                if (pending) {
                        old = slot_worker(p, pending->slot, WORKER_READY);
                        cr_assert_not_null(old);
                        cr_assert_eq(old->generation, 1);
                        ready(p, pending, now);
                        cr_assert_geq(n_workers(p, WORKER_READY), 3);
                        /* The replaced worker is now being stopped, but its stop is the next plan's. */
                        cr_assert_eq(old->state, WORKER_STOPPING);
                        cr_assert_eq(old->stop_reason, STOP_REPLACED);
                        slot_done[pending->slot] = true;
                        pool_roll_progress(p, &done, &total);
                        cr_assert_eq(done, step);
                        cr_assert_eq(total, 3);
                }
                now += USEC_PER_SEC;
                s = plan(p, now);
                cr_assert_geq(n_workers(p, WORKER_READY), 3);
                roll_done += has_report(&s.plan, POOL_ROLL_DONE);

                if (old) {
                        cr_assert_eq(s.n_stopped, 1, "step %u", step);
                        cr_assert_eq(s.stopped[0], old);
                        replaced++;
                } else
                        cr_assert_eq(s.n_stopped, 0);

                if (step < 3) {
                        cr_assert_eq(s.n_spawned, 1, "step %u: %zu spawns", step, s.n_spawned);
                        pending = s.spawned[0];
                        cr_assert_eq(pending->generation, 2);
                        cr_assert_not(slot_done[pending->slot], "slot %u replaced twice", pending->slot);
                        /* Start-first: the slot's old worker keeps serving. */
                        cr_assert_not_null(slot_worker(p, pending->slot, WORKER_READY));
                        cr_assert_eq(s.plan.n_reports, 0);
                        cr_assert(pool_is_rolling(p));
                } else {
                        cr_assert_eq(s.n_spawned, 0);
                        cr_assert(has_report(&s.plan, POOL_ROLL_DONE));
                }

                /* Nothing new without an event. */
                s = plan(p, now);
                cr_assert_eq(s.plan.n_actions, 0);
                roll_done += has_report(&s.plan, POOL_ROLL_DONE);

                if (old)
                        cr_assert_eq(exit_worker(p, old, CLD_EXITED, 0, now, NULL), POOL_VERDICT_EXPECTED);
                cr_assert_geq(n_workers(p, WORKER_READY), 3);
        }

        cr_assert_eq(replaced, 3);
        cr_assert_eq(roll_done, 1);
        cr_assert_not(pool_is_rolling(p));
        cr_assert_eq(pool_stable_generation(p), 2);
        cr_assert_eq(pool_generation(p), 2);
        pool_roll_progress(p, &done, &total);
        cr_assert_eq(done, 3);
        cr_assert_eq(total, 3);
        cr_assert_eq(n_generation(p, 2, true), 3);
        cr_assert_eq(n_generation(p, 1, true), 0);
        cr_assert(pool_all_ready(p));
        cr_assert_eq(plan(p, now + USEC_PER_HOUR).plan.n_reports, 0);
}

/* Runs a reload roll with max_surge 1 and returns the order in which slots were replaced. */
static void roll_order(Pool *p, usec_t now, unsigned order[static 3]) {
        PoolConfig c = *pool_config(p);

        cr_assert_geq(pool_reload(p, &c), 2);
        for (unsigned k = 0; k < 3; k++) {
                Step s = plan(p, now);

                for (size_t i = 0; i < s.n_stopped; i++)
                        cr_assert_eq(exit_worker(p, s.stopped[i], CLD_EXITED, 0, now, NULL),
                                     POOL_VERDICT_EXPECTED);
                cr_assert_eq(s.n_spawned, 1);
                order[k] = s.spawned[0]->slot;
                ready(p, s.spawned[0], now);
                now += USEC_PER_SEC;
        }
}

Test(pool, roll_replaces_the_biggest_memory_user_first) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        unsigned order[3];

        slot_worker(p, 0, WORKER_READY)->memory_bytes = 100 << 20;
        slot_worker(p, 1, WORKER_READY)->memory_bytes = 300 << 20;
        slot_worker(p, 2, WORKER_READY)->memory_bytes = 200 << 20;
        /* More CPU does not beat more memory. */
        slot_worker(p, 0, WORKER_READY)->cpu_usec = USEC_PER_HOUR;

        roll_order(p, T0 + USEC_PER_MINUTE, order);
        cr_assert_eq(order[0], 1);
        cr_assert_eq(order[1], 2);
        cr_assert_eq(order[2], 0);
}

Test(pool, roll_ranking_ties_go_to_cpu_then_age) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        PoolWorker *w0 = slot_worker(p, 0, WORKER_READY), *w1 = slot_worker(p, 1, WORKER_READY),
                   *w2 = slot_worker(p, 2, WORKER_READY);
        unsigned order[3];

        w0->memory_bytes = w1->memory_bytes = w2->memory_bytes = 64 << 20;
        w0->cpu_usec = 5 * USEC_PER_SEC;
        w1->cpu_usec = 1 * USEC_PER_SEC;
        w2->cpu_usec = 5 * USEC_PER_SEC;
        /* w2 is older than w0. */
        w0->started_usec = T0 + 500;
        w2->started_usec = T0 + 400;

        roll_order(p, T0 + USEC_PER_MINUTE, order);
        cr_assert_eq(order[0], 2);
        cr_assert_eq(order[1], 0);
        cr_assert_eq(order[2], 1);
}

Test(pool, compare_rank) {
        PoolWorker a = { .slot = 0, .memory_bytes = 200, .cpu_usec = 1, .started_usec = 50 };
        PoolWorker b = { .slot = 1, .memory_bytes = 100, .cpu_usec = 9, .started_usec = 10 };

        /* Memory first. */
        cr_assert_lt(pool_worker_compare_rank(&a, &b), 0);
        cr_assert_gt(pool_worker_compare_rank(&b, &a), 0);

        /* Then CPU. */
        b.memory_bytes = 200;
        cr_assert_gt(pool_worker_compare_rank(&a, &b), 0);
        cr_assert_lt(pool_worker_compare_rank(&b, &a), 0);

        /* Then age: the older goes first. */
        b.cpu_usec = 1;
        cr_assert_gt(pool_worker_compare_rank(&a, &b), 0);
        cr_assert_lt(pool_worker_compare_rank(&b, &a), 0);

        /* Then the slot, so that the order is total. */
        b.started_usec = 50;
        cr_assert_lt(pool_worker_compare_rank(&a, &b), 0);
        cr_assert_gt(pool_worker_compare_rank(&b, &a), 0);
        cr_assert_eq(pool_worker_compare_rank(&a, &a), 0);

        /* Extremes do not wrap. */
        a.memory_bytes = UINT64_MAX;
        b.memory_bytes = 0;
        cr_assert_lt(pool_worker_compare_rank(&a, &b), 0);
        cr_assert_gt(pool_worker_compare_rank(&b, &a), 0);
}

Test(pool, max_surge_2_replaces_two_at_once) {
        PoolConfig c = config_make(3, 2, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE;
        PoolWorker *old;
        DriveResult d;
        Step s;

        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 2);
        cr_assert_eq(s.n_stopped, 0);
        cr_assert_neq(s.spawned[0]->slot, s.spawned[1]->slot);
        cr_assert_eq(s.spawned[0]->generation, 2);
        cr_assert_eq(s.spawned[1]->generation, 2);
        cr_assert_eq(n_workers(p, WORKER_READY), 3);
        cr_assert_eq(plan(p, now).plan.n_actions, 0);

        /* One is ready: its old worker goes and the third slot starts. */
        old = slot_worker(p, s.spawned[0]->slot, WORKER_READY);
        ready(p, s.spawned[0], now + 1);
        s = plan(p, now + 2);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], old);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.spawned[0]->generation, 2);
        cr_assert_eq(exit_worker(p, old, CLD_EXITED, 0, now + 3, NULL), POOL_VERDICT_EXPECTED);

        now += 10;
        for (PoolWorker *w = pool_workers(p); w; w = w->next)
                if (w->state == WORKER_STARTING)
                        ready(p, w, now);
        d = drive(p, &now, 3);
        cr_assert_eq(d.roll_done, 1);
        cr_assert_eq(d.spawned, 0);
        cr_assert_eq(d.stopped, 2);
        cr_assert_eq(n_generation(p, 2, true), 3);
        cr_assert_eq(pool_stable_generation(p), 2);
}

Test(pool, max_unavailable_stops_first_and_refills_in_the_same_plan) {
        PoolConfig c = config_make(3, 0, 1);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE;
        unsigned roll_done = 0;
        bool slot_done[3] = {};

        cr_assert_eq(pool_reload(p, &c), 2);
        for (unsigned k = 0; k < 3; k++) {
                Step s = plan(p, now);

                roll_done += has_report(&s.plan, POOL_ROLL_DONE);
                cr_assert_eq(s.n_stopped, 1, "step %u", k);
                cr_assert_eq(s.n_spawned, 1);
                cr_assert_eq(s.stopped[0]->stop_reason, STOP_ROLL);
                cr_assert_eq(s.stopped[0]->generation, 1);
                cr_assert_eq(s.spawned[0]->generation, 2);
                cr_assert_eq(s.spawned[0]->slot, s.stopped[0]->slot);
                cr_assert_not(slot_done[s.spawned[0]->slot]);
                slot_done[s.spawned[0]->slot] = true;
                /* At most one slot unavailable. */
                cr_assert_eq(n_workers(p, WORKER_READY), 2);
                cr_assert_eq(plan(p, now + 1).plan.n_actions, 0);

                cr_assert_eq(exit_worker(p, s.stopped[0], CLD_EXITED, 0, now + 2, NULL),
                             POOL_VERDICT_EXPECTED);
                ready(p, s.spawned[0], now + 3);
                cr_assert_eq(n_workers(p, WORKER_READY), 3);
                now += USEC_PER_SEC;
        }
        {
                Step s = plan(p, now);

                cr_assert_eq(s.plan.n_actions, 0);
                roll_done += has_report(&s.plan, POOL_ROLL_DONE);
        }
        cr_assert_eq(roll_done, 1);
        cr_assert_eq(pool_stable_generation(p), 2);
        cr_assert_eq(n_generation(p, 2, true), 3);
}

Test(pool, replacement_exit_before_ready_aborts_the_roll) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE, delay = 4242;
        PoolWorker *old, *replacement;
        unsigned rollback_done = 0;
        DriveResult d;
        Step s;

        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 1);
        replacement = s.spawned[0];
        old = slot_worker(p, replacement->slot, WORKER_READY);
        cr_assert_not_null(old);

        cr_assert_eq(exit_worker(p, replacement, CLD_EXITED, 1, now + 1, &delay), POOL_VERDICT_ROLL_ABORTED);
        cr_assert_eq(old->state, WORKER_READY);
        cr_assert_eq(old->generation, 1);
        cr_assert_eq(pool_generation(p), 1);
        cr_assert_eq(pool_stable_generation(p), 1);
        cr_assert_eq(n_workers(p, WORKER_READY), 3);

        for (unsigned i = 0; i < 5; i++) {
                s = plan(p, now + 2 + i * USEC_PER_MINUTE);
                cr_assert_eq(s.plan.n_actions, 0, "plan %u after the abort", i);
                rollback_done += has_report(&s.plan, POOL_ROLL_ROLLBACK_DONE);
                cr_assert_not(has_report(&s.plan, POOL_ROLL_DONE));
        }
        cr_assert_eq(rollback_done, 1);
        cr_assert_not(pool_is_rolling(p));
        cr_assert_eq(n_generation(p, 2, true), 0);
        cr_assert(pool_all_ready(p));

        /* A later reload gets a fresh generation and can succeed. */
        now += USEC_PER_HOUR;
        cr_assert_eq(pool_reload(p, &c), 3);
        d = drive(p, &now, 3);
        cr_assert_eq(d.roll_done, 1);
        cr_assert_eq(d.rollback_done, 0);
        cr_assert_eq(pool_stable_generation(p), 3);
        cr_assert_eq(n_generation(p, 3, true), 3);
        cr_assert_eq(n_generation(p, 1, true), 0);
}

Test(pool, replacement_ready_timeout_aborts_the_roll) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE;
        PoolWorker *old, *replacement;
        unsigned rollback_done = 0;
        Step s;

        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now);
        replacement = s.spawned[0];
        old = slot_worker(p, replacement->slot, WORKER_READY);

        cr_assert_eq(pool_worker_failed(p, replacement, now + 30 * USEC_PER_SEC, NULL),
                     POOL_VERDICT_ROLL_ABORTED);
        cr_assert_eq(replacement->state, WORKER_STOPPING);
        cr_assert_eq(pool_generation(p), 1);

        s = plan(p, now + 30 * USEC_PER_SEC);
        cr_assert_eq(s.n_spawned, 0);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], replacement);
        rollback_done += has_report(&s.plan, POOL_ROLL_ROLLBACK_DONE);
        cr_assert_eq(old->state, WORKER_READY);

        cr_assert_eq(exit_worker(p, replacement, CLD_KILLED, SIGTERM, now + 31 * USEC_PER_SEC, NULL),
                     POOL_VERDICT_EXPECTED);
        for (unsigned i = 0; i < 3; i++) {
                s = plan(p, now + (32 + i) * USEC_PER_SEC);
                cr_assert_eq(s.plan.n_actions, 0);
                rollback_done += has_report(&s.plan, POOL_ROLL_ROLLBACK_DONE);
        }
        cr_assert_eq(rollback_done, 1);
        cr_assert_eq(n_generation(p, 1, true), 3);
        cr_assert(pool_all_ready(p));
}

Test(pool, abort_rolls_replaced_slots_back_start_first) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE;
        PoolWorker *first, *second, *back, *old;
        unsigned rollback_done = 0;
        Step s;

        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now);
        first = s.spawned[0];
        old = slot_worker(p, first->slot, WORKER_READY);
        ready(p, first, now + 1);
        s = plan(p, now + 2);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], old);
        cr_assert_eq(s.n_spawned, 1);
        second = s.spawned[0];
        cr_assert_eq(exit_worker(p, old, CLD_EXITED, 0, now + 3, NULL), POOL_VERDICT_EXPECTED);

        /* The second replacement crashes: generation 2 is bad. */
        uint64_t second_id = second->id;
        unsigned second_slot = second->slot;
        cr_assert_eq(crash(p, second, now + 4, NULL), POOL_VERDICT_ROLL_ABORTED);
        cr_assert_eq(pool_generation(p), 1);
        cr_assert(pool_is_rolling(p));
        cr_assert_eq(first->state, WORKER_READY);
        cr_assert_eq(n_workers(p, WORKER_READY), 3);

        /* Rollback: the generation-2 worker keeps serving until its generation-1 replacement is ready. The
         * abort comes with this plan, naming the worker that caused it. */
        s = plan(p, now + 5);
        cr_assert_eq(s.n_stopped, 0);
        cr_assert_eq(s.n_spawned, 1);
        back = s.spawned[0];
        cr_assert_eq(back->slot, first->slot);
        cr_assert_eq(back->generation, 1);
        cr_assert_eq(s.plan.n_reports, 1);
        cr_assert_eq(s.plan.reports[0].event, POOL_ROLL_ABORTED);
        cr_assert_eq(s.plan.reports[0].generation, 2);
        cr_assert_eq(s.plan.reports[0].worker_id, second_id);
        cr_assert_eq(s.plan.reports[0].slot, second_slot);
        cr_assert_not(s.plan.reports[0].ready_timeout);
        cr_assert_not(s.plan.reports[0].was_ready);
        cr_assert_eq(plan(p, now + 5).plan.n_reports, 0, "a report is handed out once");
        rollback_done += has_report(&s.plan, POOL_ROLL_ROLLBACK_DONE);
        cr_assert_eq(first->state, WORKER_READY);
        cr_assert_eq(plan(p, now + 6).plan.n_actions, 0);

        ready(p, back, now + 7);
        cr_assert_eq(n_workers(p, WORKER_READY), 3);
        s = plan(p, now + 8);
        cr_assert_eq(s.n_spawned, 0);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], first);
        cr_assert_eq(first->stop_reason, STOP_REPLACED);
        rollback_done += has_report(&s.plan, POOL_ROLL_ROLLBACK_DONE);
        cr_assert_eq(exit_worker(p, first, CLD_EXITED, 0, now + 9, NULL), POOL_VERDICT_EXPECTED);

        for (unsigned i = 0; i < 3; i++) {
                s = plan(p, now + 10 + i);
                cr_assert_eq(s.plan.n_actions, 0);
                rollback_done += has_report(&s.plan, POOL_ROLL_ROLLBACK_DONE);
                cr_assert_not(has_report(&s.plan, POOL_ROLL_DONE));
        }
        cr_assert_eq(rollback_done, 1);
        cr_assert_not(pool_is_rolling(p));
        cr_assert_eq(pool_stable_generation(p), 1);
        cr_assert_eq(n_generation(p, 1, true), 3);
        cr_assert_eq(n_generation(p, 2, true), 0);
        cr_assert(pool_all_ready(p));
}

Test(pool, reload_during_a_roll_converges_on_the_newest_generation) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE;
        PoolWorker *first, *in_flight, *old;
        DriveResult d;
        Step s;

        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now);
        first = s.spawned[0];
        old = slot_worker(p, first->slot, WORKER_READY);
        ready(p, first, now + 1);
        s = plan(p, now + 2);
        cr_assert_eq(s.n_spawned, 1);
        in_flight = s.spawned[0];
        cr_assert_eq(in_flight->generation, 2);
        cr_assert_eq(exit_worker(p, old, CLD_EXITED, 0, now + 3, NULL), POOL_VERDICT_EXPECTED);

        cr_assert_eq(pool_reload(p, &c), 3);
        cr_assert_eq(pool_generation(p), 3);
        cr_assert(pool_is_rolling(p));
        cr_assert_eq(in_flight->state, WORKER_STOPPING);
        cr_assert_eq(in_flight->stop_reason, STOP_ABORTED);

        now += 4;
        s = plan(p, now);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], in_flight);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.spawned[0]->generation, 3);
        cr_assert_eq(s.plan.n_reports, 0);
        cr_assert_eq(n_workers(p, WORKER_READY), 3);
        /* The superseded replacement exits late; that is no roll failure. */
        cr_assert_eq(exit_worker(p, in_flight, CLD_KILLED, SIGTERM, now + 1, NULL), POOL_VERDICT_EXPECTED);
        ready(p, s.spawned[0], now + 2);

        d = drive(p, &now, 3);
        cr_assert_eq(d.roll_done, 1);
        cr_assert_eq(d.rollback_done, 0);
        cr_assert_eq(pool_stable_generation(p), 3);
        cr_assert_eq(n_generation(p, 3, true), 3);
        cr_assert_eq(n_generation(p, 2, false), 0);
        cr_assert_eq(n_generation(p, 1, false), 0);
        for (unsigned slot = 0; slot < 3; slot++) {
                PoolWorker *w = slot_worker(p, slot, WORKER_READY);

                cr_assert_not_null(w);
                cr_assert_eq(w->generation, 3);
        }
        cr_assert(pool_all_ready(p));
}

Test(pool, reload_scales_up) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE;
        bool new_slot[5] = {};
        unsigned n_replacements = 0, done, total;
        DriveResult d;
        Step s;

        c.count = 5;
        cr_assert_eq(pool_reload(p, &c), 2);
        pool_roll_progress(p, &done, &total);
        cr_assert_eq(total, 5);
        s = plan(p, now);
        for (size_t i = 0; i < s.n_spawned; i++) {
                cr_assert_eq(s.spawned[i]->generation, 2);
                if (s.spawned[i]->slot >= 3)
                        new_slot[s.spawned[i]->slot] = true;
                else
                        n_replacements++;
        }
        cr_assert(new_slot[3]);
        cr_assert(new_slot[4]);
        cr_assert_leq(n_replacements, 1);
        cr_assert_eq(s.n_stopped, 0);
        for (size_t i = 0; i < s.n_spawned; i++)
                ready(p, s.spawned[i], now + 1);

        d = drive(p, &now, 3);
        cr_assert_eq(d.roll_done, 1);
        cr_assert_eq(n_generation(p, 2, true), 5);
        for (unsigned slot = 0; slot < 5; slot++)
                cr_assert_not_null(slot_worker(p, slot, WORKER_READY));
        cr_assert(pool_all_ready(p));
        pool_roll_progress(p, &done, &total);
        cr_assert_eq(done, 5);
        cr_assert_eq(total, 5);
}

Test(pool, reload_scales_down_after_the_roll_converged) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        PoolWorker *extra = slot_worker(p, 2, WORKER_READY);
        usec_t now = T0 + USEC_PER_MINUTE;
        bool extra_stopped = false;
        unsigned roll_done = 0;
        PoolCounts counts;

        c.count = 2;
        cr_assert_eq(pool_reload(p, &c), 2);
        for (unsigned iteration = 0; iteration < 20 && !extra_stopped; iteration++) {
                Step s = plan(p, now);

                roll_done += has_report(&s.plan, POOL_ROLL_DONE);
                for (size_t i = 0; i < s.n_spawned; i++)
                        cr_assert_lt(s.spawned[i]->slot, 2);
                if (step_stops(&s, extra)) {
                        cr_assert_eq(extra->stop_reason, STOP_SCALE_DOWN);
                        cr_assert(has_report(&s.plan, POOL_ROLL_DONE),
                                     "slot 2 stopped before the roll converged");
                        cr_assert_not(pool_is_rolling(p));
                        extra_stopped = true;
                } else
                        cr_assert_eq(extra->state, WORKER_READY);
                for (size_t i = 0; i < s.n_stopped; i++)
                        cr_assert_eq(exit_worker(p, s.stopped[i], CLD_EXITED, 0, now, NULL),
                                     POOL_VERDICT_EXPECTED);
                for (size_t i = 0; i < s.n_spawned; i++)
                        ready(p, s.spawned[i], now + 1);
                now += USEC_PER_SEC;
        }
        cr_assert(extra_stopped);
        cr_assert_eq(roll_done, 1);
        cr_assert_eq(plan(p, now).plan.n_actions, 0);
        cr_assert_eq(n_generation(p, 2, true), 2);
        cr_assert_eq(n_generation(p, 1, true), 0);
        pool_counts(p, &counts);
        cr_assert_eq(counts.wanted, 2);
        cr_assert_eq(counts.ready, 2);
        cr_assert_eq(counts.workers, 2);
        cr_assert(pool_all_ready(p));
}

Test(pool, recycle_replaces_a_worker_with_the_same_generation) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        PoolWorker *w = slot_worker(p, 1, WORKER_READY), *replacement;
        usec_t now = T0 + USEC_PER_MINUTE;
        Step s;

        pool_worker_recycle(p, w);
        cr_assert(w->recycle);
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.n_stopped, 0);
        replacement = s.spawned[0];
        cr_assert_eq(replacement->slot, 1);
        cr_assert_eq(replacement->generation, 1);
        cr_assert_not(replacement->recycle);
        cr_assert_eq(w->state, WORKER_READY);
        cr_assert_not(pool_is_rolling(p));
        cr_assert_eq(plan(p, now + 1).plan.n_actions, 0);

        ready(p, replacement, now + 2);
        cr_assert_eq(n_workers(p, WORKER_READY), 3);
        s = plan(p, now + 3);
        cr_assert_eq(s.n_spawned, 0);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], w);
        cr_assert_eq(w->stop_reason, STOP_REPLACED);
        cr_assert_eq(s.plan.n_reports, 0);
        cr_assert_eq(exit_worker(p, w, CLD_EXITED, 0, now + 4, NULL), POOL_VERDICT_EXPECTED);
        cr_assert_eq(plan(p, now + 5).plan.n_actions, 0);
        cr_assert_eq(pool_generation(p), 1);
        cr_assert(pool_all_ready(p));
}

Test(pool, recycle_of_a_starting_worker_is_ignored) {
        PoolConfig c = config_make(1, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        Step s;

        cr_assert_not_null(p);
        s = plan(p, T0);
        pool_worker_recycle(p, s.spawned[0]);
        cr_assert_not(s.spawned[0]->recycle);
        cr_assert_eq(plan(p, T0 + 1).plan.n_actions, 0);
}

Test(pool, failed_recycle_replacement_keeps_the_serving_worker) {
        PoolConfig c = config_make(1, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        PoolWorker *w = slot_worker(p, 0, WORKER_READY);
        usec_t now = T0 + USEC_PER_MINUTE, delay = 0;
        Step s;

        pool_worker_recycle(p, w);
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(crash(p, s.spawned[0], now + 1, &delay), POOL_VERDICT_THROTTLED);
        cr_assert_eq(delay, RESTART);
        cr_assert_eq(w->state, WORKER_READY);
        cr_assert(pool_all_ready(p));

        s = plan(p, now + 1);
        cr_assert_eq(s.plan.n_actions, 0);
        cr_assert_eq(s.plan.wakeup_usec, now + 1 + RESTART);
        s = plan(p, now + 1 + RESTART);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.spawned[0]->slot, 0);
}

Test(pool, young_crash_of_a_ready_new_generation_worker_aborts_the_roll) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE, delay = 0;
        PoolWorker *first, *old;
        unsigned slot;
        DriveResult d;
        Step s;

        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now);
        first = s.spawned[0];
        slot = first->slot;
        old = slot_worker(p, slot, WORKER_READY);
        ready(p, first, now + 1);
        s = plan(p, now + 2);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(exit_worker(p, old, CLD_EXITED, 0, now + 3, NULL), POOL_VERDICT_EXPECTED);

        /* Ready, but dead within MinUptimeSec: the deploy is bad. The in-flight replacement is stopped. */
        cr_assert_eq(crash(p, first, now + MIN_UPTIME / 2, &delay), POOL_VERDICT_ROLL_ABORTED);
        cr_assert_eq(delay, RESTART);
        cr_assert_eq(pool_generation(p), 1);
        cr_assert_eq(s.spawned[0]->state, WORKER_STOPPING);
        cr_assert_eq(s.spawned[0]->stop_reason, STOP_ABORTED);

        now += MIN_UPTIME / 2;
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 0);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.plan.wakeup_usec, now + RESTART);
        cr_assert_eq(exit_worker(p, s.stopped[0], CLD_EXITED, 0, now, NULL), POOL_VERDICT_EXPECTED);

        now += RESTART;
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.spawned[0]->slot, slot);
        cr_assert_eq(s.spawned[0]->generation, 1);
        ready(p, s.spawned[0], now);
        d = drive(p, &now, 3);
        cr_assert_eq(d.rollback_done, 1);
        cr_assert_eq(d.roll_done, 0);
        cr_assert_eq(n_generation(p, 1, true), 3);
}

Test(pool, failed_rollback_keeps_what_serves) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE;
        PoolWorker *first, *old;
        DriveResult d;
        Step s;

        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now);
        first = s.spawned[0];
        old = slot_worker(p, first->slot, WORKER_READY);
        ready(p, first, now + 1);
        s = plan(p, now + 2);
        cr_assert_eq(exit_worker(p, old, CLD_EXITED, 0, now + 3, NULL), POOL_VERDICT_EXPECTED);
        cr_assert_eq(crash(p, s.spawned[0], now + 4, NULL), POOL_VERDICT_ROLL_ABORTED);

        /* The generation-1 replacement of the rollback fails too. */
        s = plan(p, now + 5);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(s.spawned[0]->generation, 1);
        cr_assert_eq(crash(p, s.spawned[0], now + 6, NULL), POOL_VERDICT_ROLL_ABORTED);
        cr_assert_not(pool_is_rolling(p));
        cr_assert_eq(first->state, WORKER_READY);

        s = plan(p, now + 7);
        cr_assert(has_report(&s.plan, POOL_ROLL_ROLLBACK_FAILED));
        cr_assert_eq(s.plan.n_actions, 0);
        now += 8;
        d = drive(p, &now, 3);
        cr_assert_eq(d.spawned + d.stopped + d.rollback_done + d.rollback_failed + d.roll_done, 0);
        cr_assert_eq(pool_stable_generation(p), 1);
        cr_assert(pool_all_ready(p));
}

Test(pool, rollback_ignores_a_crash_of_a_worker_it_did_not_start) {
        PoolConfig c = config_make(3, 1, 0);
        _cleanup_pool_ Pool *p = start_pool(&c, T0);
        usec_t now = T0 + USEC_PER_MINUTE, delay = 0;
        PoolWorker *young, *first;
        DriveResult d;
        Step s;

        /* Slot 2 is respawned just before the reload: a young generation-1 worker the rollback did not
         * start. */
        cr_assert_eq(crash(p, slot_worker(p, 2, WORKER_READY), now, NULL), POOL_VERDICT_RESPAWN);
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 1);
        young = s.spawned[0];
        ready(p, young, now + 1);

        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now + 2);
        cr_assert_eq(s.n_spawned, 1);
        first = s.spawned[0];
        cr_assert_neq(first->slot, 2, "the older workers go first");
        ready(p, first, now + 3);
        s = plan(p, now + 4);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(exit_worker(p, s.stopped[0], CLD_EXITED, 0, now + 5, NULL), POOL_VERDICT_EXPECTED);
        cr_assert_eq(s.n_spawned, 1);
        cr_assert_eq(crash(p, s.spawned[0], now + 6, NULL), POOL_VERDICT_ROLL_ABORTED);
        cr_assert(pool_is_rolling(p));

        /* The young worker dies during the rollback: an ordinary throttled crash, the rollback goes on. */
        cr_assert_eq(crash(p, young, now + 7, &delay), POOL_VERDICT_THROTTLED);
        cr_assert_eq(delay, RESTART);
        cr_assert(pool_is_rolling(p));

        now += 8 + RESTART;
        d = drive(p, &now, 1);
        cr_assert_eq(d.rollback_done, 1);
        cr_assert_eq(d.rollback_failed, 0);
        cr_assert_eq(n_generation(p, 2, true), 0);
        cr_assert_eq(n_generation(p, 1, false), 3);
        cr_assert(pool_all_ready(p));
}

Test(pool, gives_up_when_every_slot_keeps_failing) {
        PoolConfig c = config_make(2, 1, 0);
        usec_t now = T0;
        _cleanup_pool_ Pool *p = NULL;

        c.give_up_failures = 3;
        p = pool_new(&c);
        cr_assert_not_null(p);
        for (unsigned round = 1; round <= 3; round++) {
                Step s = plan(p, now);

                cr_assert_not(s.plan.give_up, "gave up after %u rounds", round - 1);
                cr_assert_eq(s.n_spawned, 2);
                for (size_t i = 0; i < s.n_spawned; i++)
                        cr_assert_eq(crash(p, s.spawned[i], now + 1, NULL), POOL_VERDICT_THROTTLED);
                now += 2 * BACKOFF_MAX;
        }
        /* The backoff has ended here, yet the plan that gives up starts nothing: a record nobody starts
         * would keep the pool from ever being empty. */
        {
                Step s = plan(p, now);
                cr_assert(s.plan.give_up);
                cr_assert_eq(s.n_spawned, 0);
        }
}

Test(pool, does_not_give_up_while_one_slot_serves) {
        PoolConfig c = config_make(2, 1, 0);
        usec_t now = T0;
        _cleanup_pool_ Pool *p = NULL;
        Step s;

        c.give_up_failures = 2;
        p = pool_new(&c);
        s = plan(p, now);
        ready(p, s.spawned[0], now);
        cr_assert_eq(crash(p, s.spawned[1], now + 1, NULL), POOL_VERDICT_THROTTLED);
        for (unsigned round = 0; round < 5; round++) {
                now += 2 * BACKOFF_MAX;
                s = plan(p, now);
                cr_assert_not(s.plan.give_up);
                cr_assert_eq(s.n_spawned, 1);
                cr_assert_eq(crash(p, s.spawned[0], now + 1, NULL), POOL_VERDICT_THROTTLED);
        }
        /* Off by default. */
        c = config_make(1, 1, 0);
        pool_free(p);
        p = pool_new(&c);
        for (unsigned round = 0; round < 10; round++) {
                s = plan(p, now);
                cr_assert_not(s.plan.give_up);
                crash(p, s.spawned[0], now + 1, NULL);
                now += 2 * BACKOFF_MAX;
        }
}

Test(pool, abort_by_ready_timeout_is_reported_with_the_next_plan) {
        PoolConfig c = config_make(2, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        usec_t now = T0;
        PoolWorker *late;
        Step s;

        drive(p, &now, 0);
        cr_assert_eq(pool_reload(p, &c), 2);
        s = plan(p, now);
        cr_assert_eq(s.n_spawned, 1);
        late = s.spawned[0];

        /* The reload's first replacement never gets ready: the verdict says the roll is aborted, and the
         * plan after it reports the abort, then the rollback's end, each once. */
        cr_assert_eq(pool_worker_failed(p, late, now + 1, NULL), POOL_VERDICT_ROLL_ABORTED);
        s = plan(p, now + 2);
        cr_assert_eq(s.n_stopped, 1);
        cr_assert_eq(s.stopped[0], late);
        cr_assert(has_report(&s.plan, POOL_ROLL_ABORTED));
        cr_assert(has_report(&s.plan, POOL_ROLL_ROLLBACK_DONE), "nothing was replaced: the rollback is done at once");
        cr_assert_eq(s.plan.reports[0].event, POOL_ROLL_ABORTED, "the abort comes first");
        cr_assert(s.plan.reports[0].ready_timeout);
        cr_assert_eq(s.plan.reports[0].slot, late->slot);
        cr_assert_eq(s.plan.reports[0].generation, 2);
        cr_assert_eq(s.plan.reports[1].generation, 1);
        cr_assert_not(has_report(&s.plan, POOL_ROLL_DONE));
        cr_assert_eq(plan(p, now + 3).plan.n_reports, 0);
}

Test(pool, state_follows_start_roll_degradation_and_stop) {
        PoolConfig c = config_make(2, 1, 0);
        _cleanup_pool_ Pool *p = pool_new(&c);
        usec_t now = T0;
        Step s;

        cr_assert_eq(pool_state(p), POOL_STARTING);
        s = plan(p, now);
        ready(p, s.spawned[0], now + 1);
        cr_assert_eq(pool_state(p), POOL_STARTING, "one of two ready is still starting");
        ready(p, s.spawned[1], now + 2);
        cr_assert_eq(pool_state(p), POOL_RUNNING);
        cr_assert_str_eq(pool_state_to_string(pool_state(p)), "running");

        /* A crash after start is degradation, not starting again. */
        cr_assert_eq(crash(p, s.spawned[0], now + 2 * MIN_UPTIME, NULL), POOL_VERDICT_RESPAWN);
        cr_assert_eq(pool_state(p), POOL_DEGRADED);
        s = plan(p, now + 2 * MIN_UPTIME);
        ready(p, s.spawned[0], now + 2 * MIN_UPTIME + 1);
        cr_assert_eq(pool_state(p), POOL_RUNNING);

        cr_assert_eq(pool_reload(p, &c), 2);
        cr_assert_eq(pool_state(p), POOL_RELOADING);
        now += 3 * MIN_UPTIME;
        drive(p, &now, 2);
        cr_assert_eq(pool_state(p), POOL_RUNNING);

        pool_stop(p);
        cr_assert_eq(pool_state(p), POOL_STOPPING);
        cr_assert_str_eq(pool_state_to_string(POOL_STOPPING), "stopping");
        cr_assert_null(pool_state_to_string(_POOL_STATE_MAX));
}
