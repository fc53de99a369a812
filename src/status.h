/* SPDX-License-Identifier: MIT */
/* `corral status` output: the pool line and one row per worker, as an aligned table or as one JSON
 * object. Pure formatting of a snapshot the manager takes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pool.h"
#include "recycle.h"
#include "util.h"

/* Upper bounds (seconds) of the reload duration histogram buckets; +Inf is implied. */
#define STATUS_RELOAD_BUCKETS { 1, 2, 5, 10, 30, 60, 120, 300, 600 }
#define STATUS_RELOAD_BUCKETS_N 9

/* Counters the manager keeps for /metrics; they only grow. */
typedef struct StatusCounters {
        uint64_t crashes;        /* unexpected exits of ready workers */
        uint64_t failed_starts;  /* exec failures, exits before ready, ready timeouts */
        uint64_t recycles[_RECYCLE_REASON_MAX]; /* by RecycleReason */
        uint64_t reload_buckets[STATUS_RELOAD_BUCKETS_N + 1]; /* not cumulative; last: over the top bound */
        double reload_seconds_sum;
        uint64_t relayed_signals;
} StatusCounters;

typedef struct StatusPool {
        PoolState state;
        unsigned generation;
        unsigned ready, wanted, workers, starting, stopping;
        unsigned min_ready; /* for /health; 0: all */
        bool drained;
        unsigned reloads_ok, reloads_failed;
        usec_t uptime_usec;
        uint64_t notify_rejected;
        const StatusCounters *counters;
} StatusPool;

typedef struct StatusWorker {
        unsigned slot;
        pid_t pid;
        unsigned generation;
        const char *state;
        usec_t uptime_usec;
        usec_t ready_after_usec; /* 0: not ready (yet) */
        uint64_t memory_bytes;
        usec_t cpu_usec;
        unsigned restarts;
        int last_exit_code;        /* CLD_EXITED/KILLED/DUMPED of the slot's last unexpected exit, 0: none */
        int last_exit_status;      /* exit status or signal */
        usec_t last_exit_ago_usec; /* how long ago */
} StatusWorker;

/* Both return an allocated reply for the control socket, or NULL on OOM: a first line "ok" (running or
 * reloading) or "degraded" (anything else), then the text. */
char *status_format_table(const StatusPool *p, const StatusWorker *rows, size_t n);
char *status_format_json(const StatusPool *p, const StatusWorker *rows, size_t n);

/* GET /health: 200 while at least min_ready (0: all wanted) workers are ready, the pool is not stopping
 * and not drained; 503 otherwise. Returns the status code and an allocated JSON body in *ret_body. */
int status_format_health(const StatusPool *p, char **ret_body);

/* GET /metrics: Prometheus text exposition format 0.0.4. Allocated, NULL on OOM. */
char *status_format_metrics(const StatusPool *p, const StatusWorker *rows, size_t n);

/* Counts one reload of the given duration into the histogram. */
void status_count_reload(StatusCounters *c, usec_t duration);
