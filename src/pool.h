/* SPDX-License-Identifier: MIT */
/* The pool: PURE policy. What is wanted (N slots of generation G) against what is (the workers in each
 * slot and their states); backoff, rolling replacement, rollback, ranking. Time is passed in; no system
 * calls, no logging, so every decision is unit-tested without forking. The manager reports events
 * (spawned, ready, exited, failed) and carries out the actions pool_plan() returns. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum WorkerState {
        WORKER_STARTING, /* forked, not ready yet */
        WORKER_READY,    /* serving */
        WORKER_STOPPING, /* the stop signal was (or is about to be) sent; waiting for it to exit */
        _WORKER_STATE_MAX,
        _WORKER_STATE_INVALID = -EINVAL,
} WorkerState;

const char *worker_state_to_string(WorkerState s);
/* The one transition function: returns 0, or -EINVAL for a move the state table forbids. */
int worker_state_check_transition(WorkerState from, WorkerState to);

/* Why a worker is being stopped. */
typedef enum StopReason {
        STOP_REPLACED,   /* its replacement became ready (reload roll or recycle) */
        STOP_FAILED,     /* it did not become ready in time */
        STOP_ABORTED,    /* a replacement whose roll was aborted or superseded */
        STOP_SCALE_DOWN, /* its slot is beyond the configured count */
        STOP_SHUTDOWN,   /* the pool is stopping */
        STOP_ROLL,       /* stopped before its replacement started (MaxUnavailable) or not yet ready */
        _STOP_REASON_MAX,
        _STOP_REASON_INVALID = -EINVAL,
} StopReason;

const char *stop_reason_to_string(StopReason r);

typedef struct PoolWorker PoolWorker;
struct PoolWorker {
        uint64_t id; /* unique for the pool's life */
        unsigned slot;
        unsigned generation;
        WorkerState state;
        StopReason stop_reason; /* valid in WORKER_STOPPING */
        usec_t started_usec;
        usec_t ready_usec; /* 0 until ready */
        bool recycle;      /* asked to be replaced, start-first */
        bool stop_sent;    /* the manager was told to stop it */

        /* Accounting, filled in by the manager, used for ranking. */
        uint64_t memory_bytes;
        usec_t cpu_usec;
        bool sampled; /* the two above come from a sampling pass (or a memory event), not only a request */

        /* The caller's object for the process started for this record (NULL until one is): the pool
         * never looks inside it. The record goes before the process does (pool_worker_exited()), so
         * this never dangles; the process finds its record again with pool_find_worker(). */
        struct Worker *process;
        PoolWorker *prev, *next;
};

typedef struct PoolConfig {
        unsigned count;
        unsigned max_surge;
        unsigned max_unavailable;
        usec_t min_uptime_usec;
        usec_t restart_usec;
        usec_t backoff_max_usec;
        int prevent_exit_status; /* -1: none */
        unsigned give_up_failures; /* every slot failed this often in a row, none ready: give up. 0: never */
} PoolConfig;

typedef struct Pool Pool;

/* A new pool of generation 1 with no workers; the first pool_plan() spawns them. NULL on OOM. */
Pool *pool_new(const PoolConfig *c);
/* Frees the pool and every PoolWorker record (not the userdata). Returns NULL. */
Pool *pool_free(Pool *p);

typedef enum PoolActionType {
        POOL_ACTION_SPAWN, /* start worker->slot at worker->generation; the record is in WORKER_STARTING */
        POOL_ACTION_STOP,  /* send the stop signal to worker (now WORKER_STOPPING) */
} PoolActionType;

typedef struct PoolAction {
        PoolActionType type;
        PoolWorker *worker;
} PoolAction;

typedef enum PoolRollEvent {
        POOL_ROLL_DONE,            /* the reload roll reached its generation on every slot */
        POOL_ROLL_ABORTED,         /* a worker of the new generation failed: back to the stable one */
        POOL_ROLL_ROLLBACK_DONE,   /* after an aborted roll, every slot is back on the stable generation */
        POOL_ROLL_ROLLBACK_FAILED, /* the rollback itself failed; the pool keeps what it has */
        _POOL_ROLL_EVENT_MAX,
        _POOL_ROLL_EVENT_INVALID = -EINVAL,
} PoolRollEvent;

/* How a roll ended, or turned back. Every outcome of a roll is reported this way, in the next plan. */
typedef struct PoolRollReport {
        PoolRollEvent event;
        unsigned generation; /* DONE: the one reached; ABORTED: the one given up; ROLLBACK_*: the stable one */
        /* ABORTED, ROLLBACK_FAILED: the worker whose failure ended it, and how it failed. */
        uint64_t worker_id;
        unsigned slot;
        bool ready_timeout; /* it was not ready in time (else it exited) */
        bool was_ready;     /* it exited after it was ready, within MinUptimeSec= */
} PoolRollReport;

#define POOL_ROLL_REPORTS_MAX 4

typedef struct PoolPlan {
        const PoolAction *actions; /* owned by the pool, valid until the next pool_plan() */
        size_t n_actions;
        usec_t wakeup_usec; /* plan again at this time at the latest; USEC_INFINITY: no need */
        const PoolRollReport *reports; /* roll outcomes since the last plan, oldest first; owned by the pool */
        size_t n_reports;
        bool give_up; /* every slot keeps failing: time to exit and let systemd's Restart= take over */
} PoolPlan;

/* Decides what to do now. Creates the records of workers to spawn and moves workers to stop into
 * WORKER_STOPPING: the caller must carry out every action, and report a spawn that failed through
 * pool_worker_exited(). Returns 0 or -ENOMEM (then nothing was decided). */
int pool_plan(Pool *p, usec_t now, PoolPlan *ret);

/* Event reports from the manager. */
void pool_worker_ready(Pool *p, PoolWorker *w, usec_t now);

typedef enum PoolVerdict {
        POOL_VERDICT_EXPECTED,     /* it was being stopped */
        POOL_VERDICT_RESPAWN,      /* unexpected exit; the slot is respawned now */
        POOL_VERDICT_THROTTLED,    /* unexpected exit; respawn after the backoff delay */
        POOL_VERDICT_DISABLED,     /* its exit status forbids a restart; the slot stays empty */
        POOL_VERDICT_ROLL_ABORTED, /* a new-generation worker failed: the roll stops, old workers stay; the
                                    * next plan reports POOL_ROLL_ABORTED (or POOL_ROLL_ROLLBACK_FAILED) */
        POOL_VERDICT_SHUTDOWN,     /* the pool is stopping, nothing is respawned */
        _POOL_VERDICT_MAX,
} PoolVerdict;

/* How a worker ended: si_code of its SIGCHLD (CLD_EXITED, CLD_KILLED, CLD_DUMPED) and si_status, or
 * code 0 when it was never started (fork failed). */
typedef struct PoolExit {
        int code;
        int status;
} PoolExit;

/* Reports that w is gone and frees its record. *ret_delay (may be NULL) receives the backoff delay for
 * POOL_VERDICT_THROTTLED. */
PoolVerdict pool_worker_exited(Pool *p, PoolWorker *w, const PoolExit *e, usec_t now, usec_t *ret_delay);

/* Reports that a STARTING worker did not become ready in time: it is stopped (STOP_FAILED), the slot is
 * throttled like a crash, and a roll it belongs to is aborted. Returns the verdict like the above. */
PoolVerdict pool_worker_failed(Pool *p, PoolWorker *w, usec_t now, usec_t *ret_delay);

/* Asks for w to be replaced start-first (RECYCLE=1, accounting). */
void pool_worker_recycle(Pool *p, PoolWorker *w);

/* Starts a rolling replacement of every slot by generation+1 under the new config (which may change the
 * count). A reload during a roll supersedes it: replacements of the older target are stopped and the
 * roll converges on the newest generation. Returns the new generation, or -ENOMEM. */
int pool_reload(Pool *p, const PoolConfig *c);

/* Stops every worker; nothing is spawned from now on. */
void pool_stop(Pool *p);

/* What the pool as a whole is doing: one answer for STATUS=, `corral status` and /health. */
typedef enum PoolState {
        POOL_STARTING,  /* not every slot has been ready yet */
        POOL_RUNNING,   /* every wanted slot has a ready worker */
        POOL_RELOADING, /* a reload roll or its rollback is in progress */
        POOL_DEGRADED,  /* after start, some wanted slots have no ready worker */
        POOL_STOPPING,
        _POOL_STATE_MAX,
        _POOL_STATE_INVALID = -EINVAL,
} PoolState;

/* "starting", "running", "reloading", "degraded", "stopping". */
const char *pool_state_to_string(PoolState s);
PoolState pool_state(const Pool *p);

typedef struct PoolCounts {
        unsigned wanted;   /* slots that should have a worker */
        unsigned ready;    /* slots whose serving worker is ready */
        unsigned starting; /* workers starting, replacements included */
        unsigned stopping;
        unsigned waiting;  /* empty slots waiting out a backoff */
        unsigned disabled;
        unsigned workers;  /* processes alive */
} PoolCounts;

void pool_counts(const Pool *p, PoolCounts *ret);

/* True when every wanted slot has a ready worker (disabled slots count as not ready). */
bool pool_all_ready(const Pool *p);
bool pool_is_empty(const Pool *p);
bool pool_is_stopping(const Pool *p);
/* True while a reload roll or a rollback is in progress. */
bool pool_is_rolling(const Pool *p);
unsigned pool_generation(const Pool *p);
/* The last generation that every slot reached: what a rollback returns to. */
unsigned pool_stable_generation(const Pool *p);
/* Roll progress: slots replaced so far and slots to replace. */
void pool_roll_progress(const Pool *p, unsigned *ret_done, unsigned *ret_total);
/* The last unexpected exit of a slot and when it happened; false when there was none. */
bool pool_slot_last_exit(const Pool *p, unsigned slot, PoolExit *ret, usec_t *ret_when);
/* Restarts of a slot so far (unexpected exits). */
unsigned pool_slot_restarts(const Pool *p, unsigned slot);
const PoolConfig *pool_config(const Pool *p);

/* All live workers, oldest first; iterate with ->next. */
PoolWorker *pool_workers(const Pool *p);
/* The live record of id in slot (cheap: a slot's current and replacement are checked first), or NULL
 * once the pool forgot it. */
PoolWorker *pool_find_worker(const Pool *p, unsigned slot, uint64_t id);

/* The pool as plain data, for the upgrade state: what pool_image() copies out and pool_from_image()
 * checks and takes back. Workers are copies (process, prev, next NULL), oldest first; a slot names its
 * current and replacement worker by id (0: none). */
/* Slots an image may have: far beyond any Count= corral accepts. */
#define POOL_IMAGE_SLOTS_MAX 65536U

typedef struct PoolSlotImage {
        uint64_t current_id, replacement_id;
        unsigned failures;
        usec_t restart_at;
        bool disabled;
        unsigned restarts;
        PoolExit last_exit;
        usec_t last_exit_usec;
} PoolSlotImage;

typedef struct PoolImage {
        PoolConfig config, stable_config;
        unsigned generation, stable_generation, last_generation;
        uint64_t next_id;
        bool stopping, rolling, rollback, reached_ready;
        uint64_t roll_first_id;
        PoolSlotImage *slots;
        unsigned n_slots;
        PoolWorker *workers;
        size_t n_workers;
} PoolImage;

/* Copies the pool out. Returns 0, -EBUSY while roll reports wait for the next plan (take the image right
 * after a plan), or -ENOMEM. Free with pool_image_done(). */
int pool_image(const Pool *p, PoolImage *ret);
void pool_image_done(PoolImage *img);
/* A pool from an image, checked: slots, states, ids, generations and roll fields must agree as a live
 * pool's would. Returns 0 and the pool in *ret, -EINVAL (and in *ret_error, may be NULL, a static
 * string saying what disagrees), or -ENOMEM. */
int pool_from_image(const PoolImage *img, Pool **ret, const char **ret_error);

/* Replacement order: negative when a should be replaced before b (more memory, then more CPU, then
 * older). */
int pool_worker_compare_rank(const PoolWorker *a, const PoolWorker *b);

/* Backoff before the n-th consecutive respawn (n >= 1): restart_usec * 2^(n-1), capped. */
usec_t pool_backoff_delay(const PoolConfig *c, unsigned n);
