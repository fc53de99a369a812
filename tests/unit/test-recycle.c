/* SPDX-License-Identifier: MIT */
/* Tests for the recycling policy (recycle.c): limits over consecutive samples, CPU rates, age with
 * jitter, OOM kills. */
#include <criterion/criterion.h>

#include "recycle.h"

TestSuite(recycle, .timeout = 10);

#define T0 (1000 * USEC_PER_SEC)
#define MIB (UINT64_C(1) << 20)

static RecycleSample mem_sample(usec_t at, uint64_t bytes) {
        return (RecycleSample) { .at = at, .memory = bytes, .memory_valid = true };
}

static RecycleSample cpu_sample(usec_t at, usec_t cpu) {
        return (RecycleSample) { .at = at, .cpu_usec = cpu, .cpu_valid = true };
}

static RecycleReason feed(RecycleState *s, const RecyclePolicy *p, RecycleSample x, uint64_t *ret_value,
                          uint64_t *ret_limit) {
        return recycle_check(s, p, &x, ret_value, ret_limit);
}

Test(recycle, no_policy_never_recycles) {
        RecyclePolicy p = { .samples = 3 };
        RecycleState s;

        cr_assert_not(recycle_policy_active(&p));
        recycle_state_init(&s, &p, T0, 0.5);
        for (unsigned i = 0; i < 100; i++) {
                RecycleSample x = { .at = T0 + i * USEC_PER_HOUR, .memory = UINT64_MAX, .memory_valid = true,
                                    .cpu_usec = i * USEC_PER_HOUR, .cpu_valid = true };
                cr_assert_eq(recycle_check(&s, &p, &x, NULL, NULL), RECYCLE_NONE);
        }
}

Test(recycle, memory_over_the_limit_for_samples_checks_in_a_row) {
        RecyclePolicy p = { .memory_max = 100 * MIB, .samples = 3 };
        uint64_t value = 0, limit = 0;
        RecycleState s;

        cr_assert(recycle_policy_active(&p));
        recycle_state_init(&s, &p, T0, 0);
        cr_assert_eq(feed(&s, &p, mem_sample(T0 + 1, 150 * MIB), NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(feed(&s, &p, mem_sample(T0 + 2, 150 * MIB), NULL, NULL), RECYCLE_NONE);
        /* A dip resets the count: a spike is not a leak. */
        cr_assert_eq(feed(&s, &p, mem_sample(T0 + 3, 100 * MIB), NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(feed(&s, &p, mem_sample(T0 + 4, 101 * MIB), NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(feed(&s, &p, mem_sample(T0 + 5, 102 * MIB), NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(feed(&s, &p, mem_sample(T0 + 6, 103 * MIB), &value, &limit),
                     RECYCLE_MEMORY);
        cr_assert_eq(value, 103 * MIB);
        cr_assert_eq(limit, 100 * MIB);
}

Test(recycle, memory_samples_of_one_acts_at_once) {
        RecyclePolicy p = { .memory_max = 10 * MIB, .samples = 1 };
        RecycleState s;

        recycle_state_init(&s, &p, T0, 0);
        cr_assert_eq(feed(&s, &p, mem_sample(T0, 10 * MIB), NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(feed(&s, &p, mem_sample(T0 + 1, 10 * MIB + 1), NULL, NULL),
                     RECYCLE_MEMORY);
}

Test(recycle, invalid_memory_samples_are_ignored) {
        RecyclePolicy p = { .memory_max = 10 * MIB, .samples = 1 };
        RecycleSample x = { .at = T0, .memory = 100 * MIB, .memory_valid = false };
        RecycleState s;

        recycle_state_init(&s, &p, T0, 0);
        cr_assert_eq(recycle_check(&s, &p, &x, NULL, NULL), RECYCLE_NONE);
}

Test(recycle, cpu_rate_between_samples) {
        RecyclePolicy p = { .cpu_max_percent = 90, .samples = 2 };
        uint64_t value = 0, limit = 0;
        RecycleState s;

        recycle_state_init(&s, &p, T0, 0);
        /* The first sample gives no rate. */
        cr_assert_eq(feed(&s, &p, cpu_sample(T0, 0), NULL, NULL), RECYCLE_NONE);
        /* 0.5 s of CPU in 1 s: 50 %. */
        cr_assert_eq(feed(&s, &p, cpu_sample(T0 + USEC_PER_SEC, USEC_PER_SEC / 2), NULL, NULL),
                     RECYCLE_NONE);
        cr_assert_eq(s.cpu_percent, 50);
        /* Spinning: 100 % twice. */
        cr_assert_eq(feed(&s, &p, cpu_sample(T0 + 2 * USEC_PER_SEC, 3 * USEC_PER_SEC / 2),
                                   NULL, NULL),
                     RECYCLE_NONE);
        cr_assert_eq(s.cpu_percent, 100);
        cr_assert_eq(feed(&s, &p, cpu_sample(T0 + 3 * USEC_PER_SEC, 5 * USEC_PER_SEC / 2),
                                   &value, &limit),
                     RECYCLE_CPU);
        cr_assert_eq(value, 100);
        cr_assert_eq(limit, 90);
}

Test(recycle, cpu_of_several_threads_exceeds_one_core) {
        RecyclePolicy p = { .cpu_max_percent = 150, .samples = 1 };
        RecycleState s;

        recycle_state_init(&s, &p, T0, 0);
        feed(&s, &p, cpu_sample(T0, 0), NULL, NULL);
        cr_assert_eq(feed(&s, &p, cpu_sample(T0 + USEC_PER_SEC, 2 * USEC_PER_SEC), NULL, NULL),
                     RECYCLE_CPU);
        cr_assert_eq(s.cpu_percent, 200);
}

Test(recycle, cpu_without_elapsed_time_or_going_back_says_nothing) {
        RecyclePolicy p = { .cpu_max_percent = 10, .samples = 1 };
        RecycleState s;

        recycle_state_init(&s, &p, T0, 0);
        feed(&s, &p, cpu_sample(T0, USEC_PER_SEC), NULL, NULL);
        cr_assert_eq(feed(&s, &p, cpu_sample(T0, 5 * USEC_PER_SEC), NULL, NULL), RECYCLE_NONE);
        /* A counter that went backwards (a new cgroup) counts as no use, not as a huge one. */
        cr_assert_eq(feed(&s, &p, cpu_sample(T0 + USEC_PER_SEC, 0), NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(s.cpu_percent, 0);
}

Test(recycle, age_with_jitter) {
        RecyclePolicy p = { .max_age_usec = USEC_PER_HOUR, .max_age_jitter_usec = 10 * USEC_PER_MINUTE, .samples = 1 };
        uint64_t value = 0, limit = 0;
        RecycleState a, b;

        recycle_state_init(&a, &p, T0, 0.0);
        recycle_state_init(&b, &p, T0, 0.5);
        cr_assert_eq(a.deadline, T0 + USEC_PER_HOUR);
        cr_assert_eq(b.deadline, T0 + USEC_PER_HOUR + 5 * USEC_PER_MINUTE);

        cr_assert_eq(recycle_check(&a, &p, &(RecycleSample) { .at = T0 + USEC_PER_HOUR - 1 }, NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(recycle_check(&a, &p, &(RecycleSample) { .at = T0 + USEC_PER_HOUR }, &value, &limit), RECYCLE_AGE);
        cr_assert_eq(value, USEC_PER_HOUR);
        cr_assert_eq(limit, USEC_PER_HOUR);
        cr_assert_eq(recycle_check(&b, &p, &(RecycleSample) { .at = T0 + USEC_PER_HOUR }, NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(recycle_check(&b, &p, &(RecycleSample) { .at = T0 + USEC_PER_HOUR + 5 * USEC_PER_MINUTE }, NULL, NULL),
                     RECYCLE_AGE);
}

Test(recycle, out_of_range_random_is_clamped) {
        RecyclePolicy p = { .max_age_usec = USEC_PER_HOUR, .max_age_jitter_usec = USEC_PER_HOUR };
        RecycleState s;

        recycle_state_init(&s, &p, T0, 7.0);
        cr_assert_eq(s.deadline, T0 + USEC_PER_HOUR);
        recycle_state_init(&s, &p, T0, -1.0);
        cr_assert_eq(s.deadline, T0 + USEC_PER_HOUR);
}

Test(recycle, new_oom_kill_recycles) {
        RecyclePolicy p = { .samples = 3 };
        uint64_t value = 0;
        RecycleState s;

        recycle_state_init(&s, &p, T0, 0);
        cr_assert_eq(recycle_check(&s, &p, &(RecycleSample) { .at = T0, .oom_kills = 0, .oom_valid = true }, NULL, NULL),
                     RECYCLE_NONE);
        cr_assert_eq(recycle_check(&s, &p, &(RecycleSample) { .at = T0 + 1, .oom_kills = 0, .oom_valid = true }, NULL,
                                   NULL),
                     RECYCLE_NONE);
        cr_assert_eq(recycle_check(&s, &p, &(RecycleSample) { .at = T0 + 2, .oom_kills = 1, .oom_valid = true }, &value,
                                   NULL),
                     RECYCLE_OOM);
        cr_assert_eq(value, 1);
        /* Counted once: the next sample with the same count is quiet. */
        cr_assert_eq(recycle_check(&s, &p, &(RecycleSample) { .at = T0 + 3, .oom_kills = 1, .oom_valid = true }, NULL,
                                   NULL),
                     RECYCLE_NONE);
}

Test(recycle, oom_kill_before_the_first_sample_recycles) {
        RecyclePolicy p = { .samples = 3 };
        uint64_t value = 0;
        RecycleState s;

        /* The worker's cgroup is new: two kills seen by the very first sample are two new kills. */
        recycle_state_init(&s, &p, T0, 0);
        cr_assert_eq(recycle_check(&s, &p, &(RecycleSample) { .at = T0, .oom_kills = 2, .oom_valid = true }, &value,
                                   NULL),
                     RECYCLE_OOM);
        cr_assert_eq(value, 2);
}

Test(recycle, oom_kill_after_an_unreadable_sample_waits_for_a_baseline) {
        RecyclePolicy p = { .samples = 3 };
        RecycleState s;

        recycle_state_init(&s, &p, T0, 0);
        cr_assert_eq(recycle_check(&s, &p, &(RecycleSample) { .at = T0 }, NULL, NULL), RECYCLE_NONE);
        cr_assert_eq(recycle_check(&s, &p, &(RecycleSample) { .at = T0 + 1, .oom_kills = 5, .oom_valid = true }, NULL,
                                   NULL),
                     RECYCLE_NONE);
        cr_assert_eq(recycle_check(&s, &p, &(RecycleSample) { .at = T0 + 2, .oom_kills = 6, .oom_valid = true }, NULL,
                                   NULL),
                     RECYCLE_OOM);
}

Test(recycle, reason_names) {
        cr_assert_str_eq(recycle_reason_to_string(RECYCLE_MEMORY), "memory");
        cr_assert_str_eq(recycle_reason_to_string(RECYCLE_CPU), "cpu");
        cr_assert_str_eq(recycle_reason_to_string(RECYCLE_AGE), "age");
        cr_assert_str_eq(recycle_reason_to_string(RECYCLE_REQUEST), "request");
        cr_assert_str_eq(recycle_reason_to_string(RECYCLE_OOM), "oom");
        cr_assert_str_eq(recycle_reason_to_string(RECYCLE_WATCHDOG), "watchdog");
        cr_assert_null(recycle_reason_to_string(_RECYCLE_REASON_MAX));
}
