/* SPDX-License-Identifier: MIT */
/* `corral status` output: corral's own facts, the pool line and one row per worker, as an aligned table or
 * as one JSON object (docs/status.schema.json); /health and /metrics. Pure formatting of a snapshot the
 * manager takes. */
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

/* Counters the manager keeps for /metrics; they only grow. All zero: nothing happened yet. */
typedef struct StatusCounters {
        uint64_t crashes;        /* unexpected exits of ready workers */
        uint64_t failed_starts;  /* exec failures, exits before ready, ready timeouts */
        uint64_t recycles[_RECYCLE_REASON_MAX]; /* by RecycleReason */
        uint64_t reloads_ok, reloads_failed;
        uint64_t reload_buckets[STATUS_RELOAD_BUCKETS_N + 1]; /* not cumulative; last: over the top bound */
        double reload_seconds_sum;
        bool last_reload_failed;
        usec_t last_reload_end_usec; /* CLOCK_REALTIME; 0: no reload yet */
        uint64_t relayed_signals;
        uint64_t orphans_reaped; /* children corral did not start, reaped as their subreaper or PID 1 */
} StatusCounters;

/* One of the workers' listen sockets. Strings borrowed. */
typedef struct StatusSocket {
        const char *name;    /* its LISTEN_FDNAMES entry */
        const char *address; /* in --listen syntax: "127.0.0.1:8080", "udp:[::1]:53", "unix:/run/app.sock" */
        const char *type;    /* "stream", "datagram", "seqpacket" */
        bool has_queue;      /* a TCP listener: the two below are the kernel's */
        uint32_t queued;     /* connections waiting to be accepted (ss -lnt's Recv-Q) */
        uint32_t backlog;    /* how many may wait (Send-Q: listen()'s backlog, capped by somaxconn) */
} StatusSocket;

/* Balance=reuseport: a slot's own listening sockets, which every worker of the slot shares in turn. */
typedef struct StatusSlot {
        bool has_sockets;     /* the slot has sockets (else the rest is 0): */
        uint32_t queued;      /* connections waiting in their accept queues */
        bool has_connections; /* the even steering runs: */
        uint64_t connections; /* new connections it handed to them so far */
} StatusSlot;

/* corral and its pool. Every pointer is borrowed; strings may hold anything a config file can. */
typedef struct StatusPool {
        const char *name; /* the instance's name */
        const char *control_path; /* NULL: no control socket */
        pid_t pid;
        const char *version;
        PoolState state;
        unsigned generation;
        unsigned ready, wanted, processes, starting, stopping;
        unsigned min_ready; /* for /health; 0: all */
        bool drained;
        bool stop_pending; /* a stop waits out DrainDelaySec=: /health 503, the agent down */
        usec_t start_time_usec; /* CLOCK_REALTIME when corral started */
        usec_t uptime_usec;
        char *const *command;        /* ExecStart= of the generation new workers start as */
        const StatusSocket *sockets; /* what the workers get, in LISTEN_FDS order */
        size_t n_sockets;
        const StatusSlot *slots; /* Balance=reuseport: indexed by slot; NULL: shared sockets */
        size_t n_slots;
        const char *health_listen; /* the /health and /metrics endpoint's address; NULL: none */
        const char *config_path;   /* NULL: the command line only */
        const char *accounting;    /* "cgroup-v2", "hybrid", "proc"; NULL: no accounting */
        const char *memory_source; /* "memory.current", "memory.usage_in_bytes", "pss" */
        uint64_t notify_rejected;
        uint64_t output_dropped; /* lines of worker output the relay dropped (WorkerOutput=prefix) */
        /* The last complete accounting pass over the workers (batches: 0 when none was yet). */
        usec_t sample_busy_usec, sample_longest_usec;
        unsigned sample_batches;
        bool has_connections;  /* counted for /metrics only */
        uint64_t connections;  /* open on the workers' TCP addresses (sock-diag.h) */
        const StatusCounters *counters;
} StatusPool;

typedef struct StatusWorker {
        unsigned slot;
        pid_t pid;
        unsigned generation;
        WorkerState state;
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
 * reloading) or "degraded" (anything else), then the text. rows are sorted by slot. */
char *status_format_table(const StatusPool *p, const StatusWorker *rows, size_t n);
char *status_format_json(const StatusPool *p, const StatusWorker *rows, size_t n);

/* `corral list`'s line: "ok\n" then NAME, PID, STATE, READY, WANTED, GENERATION separated by tabs (a name
 * holds none). Allocated, NULL on OOM. */
char *status_format_summary(const StatusPool *p);

/* What a /health request asks: GRADED (GET /health) tells full strength (200) from degraded, fewer ready
 * than wanted but at least min_ready (0: all wanted), (429, Consul's "warning"); READY (GET /health/ready),
 * for engines that read any 4xx as a failure, answers both with 200. Either is 503 while drained, stopping,
 * below min_ready or wanting no worker. */
typedef enum HealthCheck {
        HEALTH_CHECK_GRADED,
        HEALTH_CHECK_READY,
} HealthCheck;

/* Returns the status code and an allocated JSON body in *ret_body (NULL on OOM). */
int status_format_health(const StatusPool *p, HealthCheck check, char **ret_body);

/* The one line corral answers HAProxy's agent-check with (allocated, NULL on OOM): "down #stopping",
 * "drain #drained", "down #no worker ready (0/N)", or "up ready P% #R/N workers ready" with P the ready
 * share of the wanted workers (1..100). "ready" cancels a drain the agent set before, never an operator's
 * own on HAProxy's side; "up" counts only where HAProxy's own health checks agree. */
char *status_format_agent(const StatusPool *p);

/* GET /metrics: Prometheus text exposition format 0.0.4; per-worker series carry the slot only, for the
 * slot's serving worker (rows sorted by slot). Allocated, NULL on OOM. */
char *status_format_metrics(const StatusPool *p, const StatusWorker *rows, size_t n);

/* Counts one reload that ended at end_realtime (CLOCK_REALTIME) after duration, ok or failed. */
void status_count_reload(StatusCounters *c, bool ok, usec_t duration, usec_t end_realtime);
