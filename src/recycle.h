/* SPDX-License-Identifier: MIT */
/* Recycling policy: PURE. From a worker's accounting samples decide whether it should be replaced
 * (start-first, by the pool) and why: memory over MemoryMax= for Samples= checks in a row, CPU over
 * CPUMaxPercent= for Samples= checks (a runaway loop), older than MaxAgeSec= plus its jitter, or an OOM
 * kill in its cgroup. Time and randomness are passed in. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

typedef enum RecycleReason {
        RECYCLE_NONE,
        RECYCLE_MEMORY,
        RECYCLE_CPU,
        RECYCLE_AGE,
        RECYCLE_REQUEST, /* RECYCLE=1 from the worker, or corral recycle SLOT */
        RECYCLE_OOM,
        RECYCLE_WATCHDOG,
        _RECYCLE_REASON_MAX,
        _RECYCLE_REASON_INVALID = -EINVAL,
} RecycleReason;

/* "memory", "cpu", "age", "request", "oom", "watchdog": the REASON= of the journal event. */
const char *recycle_reason_to_string(RecycleReason r);

typedef struct RecyclePolicy {
        uint64_t memory_max;     /* bytes; 0: off */
        unsigned cpu_max_percent; /* of one core; 0: off */
        unsigned samples;        /* consecutive checks over a limit before acting, >= 1 */
        usec_t max_age_usec;     /* 0: off */
        usec_t max_age_jitter_usec;
} RecyclePolicy;

/* One sample of a worker's accounting. */
typedef struct RecycleSample {
        usec_t at;           /* CLOCK_MONOTONIC */
        uint64_t memory;     /* bytes (memory.current, or PSS of the process tree) */
        bool memory_valid;
        usec_t cpu_usec;     /* cumulative CPU time */
        bool cpu_valid;
        uint64_t oom_kills;  /* cumulative oom_kill count of its cgroup */
        bool oom_valid;
} RecycleSample;

/* Per-worker state the policy keeps between samples. */
typedef struct RecycleState {
        usec_t started;        /* when the worker started */
        usec_t deadline;       /* when age recycles it; USEC_INFINITY: never */
        unsigned memory_over;  /* consecutive samples over MemoryMax= */
        unsigned cpu_over;     /* consecutive samples over CPUMaxPercent= */
        RecycleSample last;    /* previous sample, for CPU rates and OOM deltas */
        bool has_last;
        unsigned cpu_percent;  /* CPU use over the last interval, in percent of one core */
} RecycleState;

/* Initialises the state of a worker started at started_usec. random01 in [0, 1) places its age deadline
 * within the jitter, so workers started together do not all recycle together. */
void recycle_state_init(RecycleState *s, const RecyclePolicy *p, usec_t started_usec, double random01);

/* Feeds one sample. Returns the reason to recycle now (RECYCLE_NONE: keep it). *ret_value and
 * *ret_limit (may be NULL) receive the measured value and the limit behind the verdict (bytes, percent,
 * the age and the age limit in usec, or the number of new OOM kills). */
RecycleReason recycle_check(RecycleState *s, const RecyclePolicy *p, const RecycleSample *sample,
                            uint64_t *ret_value, uint64_t *ret_limit);

/* True when any policy is on, i.e. samples are worth taking. */
bool recycle_policy_active(const RecyclePolicy *p);
