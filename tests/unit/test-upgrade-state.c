/* SPDX-License-Identifier: MIT */
/* Tests for the pool's part of the upgrade state (upgrade-state.c, pool_image()/pool_from_image()): a
 * pool in the middle of a roll, a backoff and a recycle comes back identical and plans the same; a state
 * or image that disagrees with itself is refused, naming what. */

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>

#include "pool.h"
#include "upgrade-state.h"

TestSuite(upgrade_state, .timeout = 10);

DEFINE_TRIVIAL_CLEANUP_FUNC(Pool *, pool_free);

#define T0 (1000 * USEC_PER_SEC)

static PoolConfig config_make(unsigned count) {
        return (PoolConfig){
                .count = count,
                .max_surge = 1,
                .min_uptime_usec = USEC_PER_SEC,
                .restart_usec = 100 * USEC_PER_MSEC,
                .backoff_max_usec = 10 * USEC_PER_SEC,
                .prevent_exit_status = 3,
                .give_up_failures = 7,
        };
}

static PoolPlan plan(Pool *p, usec_t now) {
        PoolPlan pl;

        cr_assert_eq(pool_plan(p, now, &pl), 0);
        return pl;
}

static PoolWorker *find(Pool *p, uint64_t id) {
        for (PoolWorker *w = pool_workers(p); w; w = w->next)
                if (w->id == id)
                        return w;
        return NULL;
}

/* A pool of 4 at T0+5s: slot 0 crashed young and waits out its backoff, slot 2's worker is marked for
 * recycling (its replacement starting); with roll, a reload's roll is under way instead (a reload forgets
 * backoffs): a replacement starting in one slot at T0+10s. */
static Pool *busy_pool(bool roll) {
        PoolConfig c = config_make(4);
        Pool *p = pool_new(&c);
        PoolExit crash = { .code = CLD_KILLED, .status = SIGSEGV };
        PoolPlan pl;
        usec_t delay = 0;

        cr_assert_not_null(p);
        pl = plan(p, T0);
        cr_assert_eq(pl.n_actions, 4);
        for (PoolWorker *w = pool_workers(p); w; w = w->next)
                pool_worker_ready(p, w, T0 + USEC_PER_SEC);
        plan(p, T0 + USEC_PER_SEC);
        cr_assert_eq(pool_worker_exited(p, find(p, 1), &crash, T0 + 5 * USEC_PER_SEC, &delay),
                     POOL_VERDICT_RESPAWN);
        pl = plan(p, T0 + 5 * USEC_PER_SEC);
        cr_assert_eq(pl.n_actions, 1);
        cr_assert_eq(pool_worker_exited(p, pl.actions[0].worker, &crash, T0 + 5 * USEC_PER_SEC + 1, &delay),
                     POOL_VERDICT_THROTTLED);
        plan(p, T0 + 5 * USEC_PER_SEC + 1);
        pool_worker_recycle(p, find(p, 3));
        if (roll)
                cr_assert_eq(pool_reload(p, &c), 2);
        plan(p, roll ? T0 + 10 * USEC_PER_SEC : T0 + 5 * USEC_PER_SEC + 2);
        cr_assert_eq(pool_is_rolling(p), roll);
        return p;
}

static void assert_images_equal(const PoolImage *a, const PoolImage *b) {
        cr_assert_arr_eq(&a->config, &b->config, sizeof(PoolConfig));
        cr_assert_arr_eq(&a->stable_config, &b->stable_config, sizeof(PoolConfig));
        cr_assert_eq(a->generation, b->generation);
        cr_assert_eq(a->stable_generation, b->stable_generation);
        cr_assert_eq(a->last_generation, b->last_generation);
        cr_assert_eq(a->next_id, b->next_id);
        cr_assert_eq(a->stopping, b->stopping);
        cr_assert_eq(a->rolling, b->rolling);
        cr_assert_eq(a->rollback, b->rollback);
        cr_assert_eq(a->reached_ready, b->reached_ready);
        cr_assert_eq(a->roll_first_id, b->roll_first_id);
        cr_assert_eq(a->n_slots, b->n_slots);
        cr_assert_arr_eq(a->slots, b->slots, a->n_slots * sizeof(PoolSlotImage));
        cr_assert_eq(a->n_workers, b->n_workers);
        for (size_t i = 0; i < a->n_workers; i++) {
                const PoolWorker *x = &a->workers[i], *y = &b->workers[i];
                cr_assert_eq(x->id, y->id);
                cr_assert_eq(x->slot, y->slot);
                cr_assert_eq(x->generation, y->generation);
                cr_assert_eq(x->state, y->state);
                if (x->state == WORKER_STOPPING)
                        cr_assert_eq(x->stop_reason, y->stop_reason);
                cr_assert_eq(x->started_usec, y->started_usec);
                cr_assert_eq(x->ready_usec, y->ready_usec);
                cr_assert_eq(x->recycle, y->recycle);
                cr_assert_eq(x->stop_sent, y->stop_sent);
                cr_assert_eq(x->memory_bytes, y->memory_bytes);
                cr_assert_eq(x->cpu_usec, y->cpu_usec);
        }
}

static char *write_image(const PoolImage *img) {
        _cleanup_(state_writer_freep) StateWriter *w = state_writer_new();
        char *text;
        size_t size;

        upgrade_state_put_pool(w, img);
        cr_assert_eq(state_writer_finish(w, &text, &size), 0);
        return text;
}

/* Reads a pool back from text, through the state format. Returns the pool, or NULL with *ret_error. */
static int read_pool(const char *text, Pool **ret, char **ret_error) {
        _cleanup_(state_reader_freep) StateReader *r = NULL;
        PoolImage img;
        const char *why = NULL;
        int k;

        cr_assert_eq(state_reader_new(text, strlen(text), &r, NULL), 0);
        k = upgrade_state_get_pool(r, &img, ret_error);
        if (k < 0)
                return k;
        k = pool_from_image(&img, ret, &why);
        pool_image_done(&img);
        if (k < 0 && ret_error)
                *ret_error = strdup(why);
        return k;
}

static void round_trip(bool roll) {
        _cleanup_(pool_freep) Pool *p = busy_pool(roll), *q = NULL;
        _cleanup_free_ char *text = NULL, *text2 = NULL;
        PoolImage a, b;

        cr_assert_eq(pool_image(p, &a), 0);
        text = write_image(&a);
        cr_assert_eq(read_pool(text, &q, NULL), 0);
        cr_assert_eq(pool_image(q, &b), 0);
        assert_images_equal(&a, &b);
        /* Written again, the text is the same byte for byte. */
        text2 = write_image(&b);
        cr_assert_str_eq(text, text2);
        /* The scenario has what it should: a backoff or a roll, a recycle mark, a replacement starting. */
        if (roll)
                cr_assert(a.rolling);
        else {
                cr_assert_gt(a.slots[0].restart_at, T0 + 5 * USEC_PER_SEC);
                cr_assert_eq(a.slots[0].last_exit.status, SIGSEGV);
                cr_assert_eq(a.slots[0].failures, 1);
        }
        cr_assert(strstr(text, " recycle=1"), "%s", text);
        cr_assert(strstr(text, " state=starting"), "%s", text);
        pool_image_done(&a);
        pool_image_done(&b);
}

Test(upgrade_state, a_pool_in_backoff_and_recycling_comes_back_identical) {
        round_trip(false);
}

Test(upgrade_state, a_pool_in_a_roll_comes_back_identical) {
        round_trip(true);
}

/* Same events, same decisions: readiness of every starting worker and time passing, planned alike. */
static void same_plans(bool roll) {
        _cleanup_(pool_freep) Pool *p = busy_pool(roll), *q = NULL;
        _cleanup_free_ char *text = NULL;
        PoolImage a;

        cr_assert_eq(pool_image(p, &a), 0);
        text = write_image(&a);
        pool_image_done(&a);
        cr_assert_eq(read_pool(text, &q, NULL), 0);

        for (usec_t t = roll ? T0 + 10 * USEC_PER_SEC : T0 + 5 * USEC_PER_SEC + 3; t < T0 + 40 * USEC_PER_SEC;
             t += 50 * USEC_PER_MSEC) {
                PoolPlan x = plan(p, t), y = plan(q, t);
                cr_assert_eq(x.n_actions, y.n_actions, "at +%llus", (unsigned long long) (t - T0) / USEC_PER_SEC);
                cr_assert_eq(x.wakeup_usec, y.wakeup_usec);
                cr_assert_eq(x.n_reports, y.n_reports);
                for (size_t i = 0; i < x.n_actions; i++) {
                        cr_assert_eq(x.actions[i].type, y.actions[i].type);
                        cr_assert_eq(x.actions[i].worker->id, y.actions[i].worker->id);
                        cr_assert_eq(x.actions[i].worker->slot, y.actions[i].worker->slot);
                        cr_assert_eq(x.actions[i].worker->generation, y.actions[i].worker->generation);
                }
                for (size_t i = 0; i < x.n_actions; i++) {
                        PoolExit gone = { .code = CLD_EXITED };
                        PoolWorker *wx = x.actions[i].worker, *wy = find(q, wx->id);
                        if (x.actions[i].type == POOL_ACTION_STOP) {
                                pool_worker_exited(p, wx, &gone, t + 1, NULL);
                                pool_worker_exited(q, wy, &gone, t + 1, NULL);
                        }
                }
                for (PoolWorker *w = pool_workers(p); w; w = w->next)
                        if (w->state == WORKER_STARTING && w->started_usec + USEC_PER_SEC <= t) {
                                PoolWorker *v = find(q, w->id);
                                cr_assert_not_null(v);
                                pool_worker_ready(p, w, t);
                                pool_worker_ready(q, v, t);
                        }
        }
        cr_assert_not(pool_is_rolling(p));
        cr_assert_not(pool_is_rolling(q));
        cr_assert_eq(pool_generation(q), roll ? 2 : 1);
        cr_assert(pool_all_ready(q));
}

Test(upgrade_state, a_restored_pool_in_backoff_plans_what_the_original_would) {
        same_plans(false);
}

Test(upgrade_state, a_restored_pool_in_a_roll_plans_what_the_original_would) {
        same_plans(true);
}

Test(upgrade_state, an_image_is_refused_while_reports_wait) {
        PoolConfig c = config_make(1);
        _cleanup_(pool_freep) Pool *p = pool_new(&c);
        PoolExit crash = { .code = CLD_EXITED, .status = 1 };
        PoolImage img;
        PoolPlan pl = plan(p, T0);

        pool_worker_ready(p, pl.actions[0].worker, T0);
        plan(p, T0);
        pool_reload(p, &c);
        pl = plan(p, T0 + 1);
        cr_assert_eq(pool_worker_exited(p, pl.actions[0].worker, &crash, T0 + 2, NULL), POOL_VERDICT_ROLL_ABORTED);
        cr_assert_eq(pool_image(p, &img), -EBUSY);
        plan(p, T0 + 3);
        cr_assert_eq(pool_image(p, &img), 0);
        pool_image_done(&img);
}

typedef struct Edit {
        const char *from, *to, *says;
} Edit;

/* Each edit of the state's text makes it disagree with itself; the message names the disagreement. */
static void check_edits(bool roll, const Edit *edits, size_t n_edits) {
        _cleanup_(pool_freep) Pool *p = busy_pool(roll);
        _cleanup_free_ char *text = NULL;
        PoolImage img;

        cr_assert_eq(pool_image(p, &img), 0);
        text = write_image(&img);
        pool_image_done(&img);

        for (size_t i = 0; i < n_edits; i++) {
                _cleanup_free_ char *edited = NULL, *error = NULL;
                Pool *q = NULL;
                const char *at = strstr(text, edits[i].from);

                cr_assert_not_null(at, "edit %zu: '%s' not in the state:\n%s", i, edits[i].from, text);
                edited = strdup_printf("%.*s%s%s", (int) (at - text), text, edits[i].to,
                                       at + strlen(edits[i].from));
                cr_assert_lt(read_pool(edited, &q, &error), 0, "edit %zu accepted:\n%s", i, edited);
                cr_assert_null(q);
                cr_assert_not_null(error);
                cr_assert(strstr(error, edits[i].says), "edit %zu: '%s' does not say '%s'", i, error,
                          edits[i].says);
        }
}

Test(upgrade_state, a_state_that_disagrees_with_itself_is_refused) {
        static const Edit edits[] = {
                { " next-id=", " next-id=1 x=", "not below the next id" },
                { "\npool-worker id=2 slot=1", "\npool-worker id=2 slot=3", "not in it" },
                { "\nslot index=3 current=", "\nslot index=3 current=0 x=", "not named by its slot" },
                { " state=ready", " state=stopping stop-reason=shutdown", "wrong state" },
                { " rollback=0", " rollback=1", "a rollback outside a roll" },
                { " state=ready", " state=sleeping", "'state' is missing or malformed" },
                { " stable-generation=", " x=", "'stable-generation' is missing" },
                { "\nslot index=1", "\nslot index=0", "a second record of the same index" },
                { "\nslot index=1", "\nslot index=9", "beyond the pool's slots" },
                { " slots=4", " slots=5", "fewer slot records" },
                { " workers=", " workers=9 x=", "fewer pool-worker records" },
                { "\npool-config which=stable", "\npool-config which=target", "a second one of the same kind" },
                { "\npool-config which=stable", "\npool-config which=other", "'which' must be" },
                { " last-generation=1", " last-generation=0", "a generation number is out of range" },
        };
        static const Edit roll_edits[] = {
                { " roll-first-id=", " roll-first-id=99 x=", "the roll's first worker id is out of range" },
                { " generation=2", " generation=3", "out of range" },
        };

        check_edits(false, edits, ELEMENTSOF(edits));
        check_edits(true, roll_edits, ELEMENTSOF(roll_edits));
}

Test(upgrade_state, a_state_without_a_pool_is_refused) {
        _cleanup_(state_reader_freep) StateReader *r = NULL;
        _cleanup_free_ char *error = NULL;
        const char *text = "corral-state 1.0\nslot index=0\nend\n";
        PoolImage img;

        cr_assert_eq(state_reader_new(text, strlen(text), &r, NULL), 0);
        cr_assert_eq(upgrade_state_get_pool(r, &img, &error), -EBADMSG);
        cr_assert(strstr(error, "line 2: a pool's record before the pool record"), "%s", error);
}
