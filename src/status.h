/* SPDX-License-Identifier: MIT */
/* `corral status` output: the pool line and one row per worker, as an aligned table or as one JSON
 * object. Pure formatting of a snapshot the manager takes. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

typedef struct StatusPool {
        const char *state; /* running, starting, reloading, degraded, stopping */
        unsigned generation;
        unsigned ready, wanted, workers;
        unsigned reloads_ok, reloads_failed;
        usec_t uptime_usec;
        uint64_t notify_rejected;
} StatusPool;

typedef struct StatusWorker {
        unsigned slot;
        pid_t pid;
        unsigned generation;
        const char *state;
        usec_t uptime_usec;
        usec_t ready_after_usec; /* 0: not ready (yet) */
        uint64_t memory_bytes;
        unsigned restarts;
} StatusWorker;

/* Both return an allocated reply for the control socket, or NULL on OOM: a first line "ok" (running or
 * reloading) or "degraded" (anything else), then the text. */
char *status_format_table(const StatusPool *p, const StatusWorker *rows, size_t n);
char *status_format_json(const StatusPool *p, const StatusWorker *rows, size_t n);
