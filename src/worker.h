/* SPDX-License-Identifier: MIT */
/* One worker process: its pidfd child source, exec status pipe, timer (ready timeout, ready delay or
 * stop timeout) and signals, all through the pidfd. Its state lives in the pool's PoolWorker record;
 * this object is the mechanics. */
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "pool.h"
#include "recycle.h"
#include "spawn.h"
#include "util.h"

typedef struct Worker Worker;
struct CgroupWorker;

typedef enum WorkerEventType {
        WORKER_EVENT_EXEC_OK,       /* execve() succeeded */
        WORKER_EVENT_EXEC_FAILED,   /* the child failed before exec: event->error */
        WORKER_EVENT_EXITED,        /* it is gone: event->siginfo */
        WORKER_EVENT_READY_TIMEOUT, /* not ready within the ready timeout */
        WORKER_EVENT_READY_DELAY,   /* ReadyMode=delay: the delay passed */
        WORKER_EVENT_KILLED,        /* the stop timeout passed and SIGKILL was sent */
        WORKER_EVENT_WATCHDOG,      /* no WATCHDOG=1 within the watchdog interval */
} WorkerEventType;

typedef struct WorkerEvent {
        WorkerEventType type;
        const siginfo_t *siginfo; /* WORKER_EVENT_EXITED */
        SpawnError error;         /* WORKER_EVENT_EXEC_FAILED */
} WorkerEvent;

typedef void (*worker_handler_t)(Worker *w, const WorkerEvent *ev, void *userdata);

struct Worker {
        PoolWorker *pool_worker; /* NULL once the pool forgot it (after it exited) */
        pid_t pid;
        usec_t started_usec;     /* CLOCK_MONOTONIC */
        bool exec_done;
        bool exited;

        sd_event_source *child_source;
        sd_event_source *status_source;
        sd_event_source *timer_source;
        WorkerEventType timer_event;
        sd_event_source *watchdog_source;
        usec_t watchdog_usec;
        bool abort_on_stop; /* stop it with SIGABRT, for a core dump (a hung worker) */
        struct CgroupWorker *cgroup; /* its leaf, owned by the manager; NULL without accounting */
        sd_event_source *events_source; /* on its memory.events (cgroup v2), or NULL */
        RecycleState recycle;        /* the recycling policy's view of it */
        usec_t ready_delay_usec;

        worker_handler_t handler;
        void *userdata;
        Worker *next_dead; /* the manager's list of exited workers awaiting worker_free() */
};

typedef struct WorkerStartParams {
        const SpawnParams *spawn;
        usec_t ready_timeout_usec; /* USEC_INFINITY: none */
        usec_t ready_delay_usec;   /* ReadyMode=delay, else USEC_INFINITY */
        int64_t child_priority;
        int64_t timer_priority;
        worker_handler_t handler;
        void *userdata;
} WorkerStartParams;

/* Forks the worker and starts watching it. Returns 0 and the new Worker (owned by the caller), or a
 * negative errno when nothing was started. */
int worker_start(sd_event *e, const WorkerStartParams *p, PoolWorker *pw, Worker **ret);

/* Disarms the ready timeout once the worker is ready. */
void worker_ready(Worker *w);

/* Arms the per-worker watchdog (usec > 0), or re-arms it: called when the worker is ready and for every
 * WATCHDOG=1 it sends. */
int worker_watchdog_ping(Worker *w, usec_t usec);

/* Sends sig (the StopSignal) and arms the stop timeout, after which SIGKILL follows. Harmless for a
 * worker that already exited. */
int worker_stop(Worker *w, int sig, usec_t timeout_usec);

/* SIGKILL now, to the worker and to what it left in its process group. */
void worker_kill(Worker *w);

/* Any signal through the pidfd; a worker already gone is not an error (returns 0). */
int worker_signal(Worker *w, int sig);

/* Frees the sources (a still-running process is killed and reaped). Returns NULL. */
Worker *worker_free(Worker *w);
