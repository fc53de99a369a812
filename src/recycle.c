/* SPDX-License-Identifier: MIT */
/* Recycling policy: limits over consecutive samples, CPU rates between samples, age with jitter. */
#include "recycle.h"

static const char *const recycle_reason_table[_RECYCLE_REASON_MAX] = {
        [RECYCLE_NONE] = "none",       [RECYCLE_MEMORY] = "memory", [RECYCLE_CPU] = "cpu",
        [RECYCLE_AGE] = "age",         [RECYCLE_REQUEST] = "request", [RECYCLE_OOM] = "oom",
        [RECYCLE_WATCHDOG] = "watchdog",
};

const char *recycle_reason_to_string(RecycleReason r) {
        return r >= 0 && r < _RECYCLE_REASON_MAX ? recycle_reason_table[r] : NULL;
}

bool recycle_policy_active(const RecyclePolicy *p) {
        return p->memory_max > 0 || p->cpu_max_percent > 0 || p->max_age_usec > 0;
}

void recycle_state_init(RecycleState *s, const RecyclePolicy *p, usec_t started_usec, double random01) {
        *s = (RecycleState) { .started = started_usec, .deadline = USEC_INFINITY };

        if (p->max_age_usec > 0) {
                if (random01 < 0 || random01 >= 1)
                        random01 = 0;
                s->deadline = started_usec + p->max_age_usec + (usec_t) (random01 * (double) p->max_age_jitter_usec);
        }
}

static void set_out(uint64_t *ret_value, uint64_t *ret_limit, uint64_t value, uint64_t limit) {
        if (ret_value)
                *ret_value = value;
        if (ret_limit)
                *ret_limit = limit;
}

RecycleReason recycle_check(RecycleState *s, const RecyclePolicy *p, const RecycleSample *sample,
                            uint64_t *ret_value, uint64_t *ret_limit) {
        unsigned samples = MAX(p->samples, 1U);
        RecycleReason r = RECYCLE_NONE;
        uint64_t value = 0, limit = 0;

        /* A new OOM kill in its cgroup: the worker lost a process (often itself, which the exit handles);
         * whatever is left is in an unknown state. The cgroup is the worker's own and was new when it
         * started, so before the first sample the count was 0: a kill before then counts too. */
        if (sample->oom_valid && (!s->has_last || s->last.oom_valid)) {
                uint64_t before = s->has_last ? s->last.oom_kills : 0;

                if (sample->oom_kills > before) {
                        r = RECYCLE_OOM;
                        value = sample->oom_kills - before;
                }
        }

        if (sample->memory_valid && p->memory_max > 0) {
                s->memory_over = sample->memory > p->memory_max ? s->memory_over + 1 : 0;
                if (r == RECYCLE_NONE && s->memory_over >= samples) {
                        r = RECYCLE_MEMORY;
                        value = sample->memory;
                        limit = p->memory_max;
                }
        }

        /* CPU is a rate: only between two samples, and only when time passed (a clock step back or two
         * samples in one tick say nothing). */
        if (sample->cpu_valid && s->has_last && s->last.cpu_valid && sample->at > s->last.at) {
                usec_t used = sample->cpu_usec > s->last.cpu_usec ? sample->cpu_usec - s->last.cpu_usec : 0;
                s->cpu_percent = (unsigned) MIN((used * 100) / (sample->at - s->last.at), (usec_t) 100000);
                if (p->cpu_max_percent > 0) {
                        s->cpu_over = s->cpu_percent > p->cpu_max_percent ? s->cpu_over + 1 : 0;
                        if (r == RECYCLE_NONE && s->cpu_over >= samples) {
                                r = RECYCLE_CPU;
                                value = s->cpu_percent;
                                limit = p->cpu_max_percent;
                        }
                }
        }

        if (r == RECYCLE_NONE && s->deadline != USEC_INFINITY && sample->at >= s->deadline) {
                r = RECYCLE_AGE;
                value = sample->at - s->started;
                limit = s->deadline - s->started;
        }

        s->last = *sample;
        s->has_last = true;
        if (r != RECYCLE_NONE)
                set_out(ret_value, ret_limit, value, limit);
        return r;
}
