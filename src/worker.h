/* SPDX-License-Identifier: MIT */
/* One worker: its process (pidfd child source, exec status pipe, ready/stop timer, watchdog, signals
 * through the pidfd), the generation it was started from, its cgroup leaf with the memory.events watch,
 * and the recycling policy's view of it. One object with one destructor. Its state in the roll (starting,
 * ready, stopping) is the pool's, in the PoolWorker record of the same id. */
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "cgroup.h"
#include "generation.h"
#include "log.h"
#include "recycle.h"
#include "spawn.h"
#include "worker-output.h"
#include "util.h"

typedef struct Worker Worker;

typedef enum WorkerEventType {
        WORKER_EVENT_EXEC_OK,       /* execve() succeeded */
        WORKER_EVENT_EXEC_FAILED,   /* the child failed before exec: event->error */
        WORKER_EVENT_EXITED,        /* it is gone (w->exit_code, w->exit_status); event->siginfo */
        WORKER_EVENT_READY_TIMEOUT, /* not ready within its generation's ReadyTimeoutSec= */
        WORKER_EVENT_READY_DELAY,   /* ReadyMode=delay: the delay passed */
        WORKER_EVENT_KILLED,        /* the stop timeout passed: it and its leaf were SIGKILLed */
        WORKER_EVENT_WATCHDOG,      /* no WATCHDOG=1 within its generation's WatchdogSec= */
        WORKER_EVENT_MEMORY,        /* its leaf's memory.events changed (memory.high breach, OOM kill) */
} WorkerEventType;

typedef struct WorkerEvent {
        WorkerEventType type;
        const siginfo_t *siginfo; /* WORKER_EVENT_EXITED */
        SpawnError error;         /* WORKER_EVENT_EXEC_FAILED */
} WorkerEvent;

typedef void (*worker_handler_t)(Worker *w, const WorkerEvent *ev, void *userdata);

struct Worker {
        /* Who it is, fixed for its life. */
        uint64_t id;            /* its pool record's id */
        unsigned slot;
        Generation *generation; /* a reference: the settings it is started, watched and stopped with */
        pid_t pid;              /* 0 until started */
        usec_t started_usec;    /* CLOCK_MONOTONIC; 0 until started */

        /* How it is doing. */
        bool exec_done;
        bool exited;
        int exit_code;        /* si_code of its exit (CLD_EXITED, CLD_KILLED, CLD_DUMPED); 0 until then */
        int exit_status;      /* exit status or signal */
        bool oom_killed;      /* its SIGKILL came with a new OOM kill in its leaf */
        bool abort_on_stop;   /* stop it with SIGABRT, for a core dump (its watchdog expired) */
        bool reap_check;      /* killed: the timer now checks that its exit was seen */
        bool kill_left;       /* exited: what it left is killed when it is freed (cgroup_worker_kill_is_slow()) */
        RecycleState recycle; /* the recycling policy's view of it */

        WorkerOutput *output;           /* its own stdout and stderr, owned; NULL: corral's */
        CgroupWorker *cgroup;           /* its leaf, owned; NULL without accounting */
        sd_event_source *events_source; /* on the leaf's memory.events (cgroup v2), or NULL */
        sd_event_source *child_source;
        sd_event_source *status_source;
        sd_event_source *timer_source;
        WorkerEventType timer_event;
        sd_event_source *watchdog_source;

        int64_t child_priority, timer_priority;
        worker_handler_t handler;
        void *userdata;
        Worker **list; /* the owner's list it is on, or NULL */
        Worker *prev, *next;
};

typedef struct WorkerParams {
        uint64_t id;
        unsigned slot;
        Generation *generation; /* referenced */
        CgroupWorker *cgroup;   /* taken, whatever happens; may be NULL */
        int64_t child_priority;
        int64_t timer_priority;
        worker_handler_t handler;
        void *userdata;
} WorkerParams;

/* A worker not started yet, put on *list (the owner's). Returns 0 and the worker in *ret (owned through the
 * list: free it with worker_free()), or -ENOMEM (p->cgroup is freed then). */
int worker_new(const WorkerParams *p, Worker **list, Worker **ret);

/* Forks it (sp: path, argv, envp, sockets; the leaf's cgroup.procs fds are added here) and starts
 * watching it: exit, exec status, the ready timeout or delay of its generation, memory.events. Draws its
 * age deadline with random01 in [0, 1). Returns 0, or a negative errno when no process was started. */
int worker_start(Worker *w, sd_event *e, const SpawnParams *sp, double random01);

/* Takes over a worker that an image before an upgrade started (the same process, still our child): its
 * pid, pidfd (taken whatever happens), start time, recycling state and watchdog deadline (0: none), with
 * w's cgroup leaf adopted by the caller. Its exec is done and its ready timeout, if any, over: only ready
 * workers cross an upgrade. Returns 0, or -errno with nothing watched (the process left alone). */
int worker_adopt(Worker *w, sd_event *e, pid_t pid, int pidfd, usec_t started_usec, const RecycleState *recycle,
                 usec_t watchdog_usec);
/* Its pidfd (owned by the worker), -EBADF when not started; what an upgrade keeps open across the exec. */
int worker_pidfd(const Worker *w);
/* When its watchdog runs out (CLOCK_MONOTONIC), 0 when none is armed. */
usec_t worker_watchdog_deadline(const Worker *w);

/* Moves it to another list of its owner (e.g. the exited ones, freed after the dispatch). */
void worker_move(Worker *w, Worker **list);

/* Disarms the ready timeout once the worker is ready. */
void worker_ready(Worker *w);

/* Arms the per-worker watchdog with its generation's WatchdogSec= (if any), or re-arms it: called when the
 * worker is ready and for every WATCHDOG=1 it sends. */
int worker_watchdog_ping(Worker *w);

/* Sends its generation's StopSignal= (SIGABRT if abort_on_stop) and arms its StopTimeoutSec=, after which
 * it is killed (WORKER_EVENT_KILLED). Harmless for a worker that already exited. */
int worker_stop(Worker *w);

/* SIGKILL now, to the worker, to what it left in its process group and to everything in its leaf. */
void worker_kill(Worker *w);

/* Any signal through the pidfd; a worker already gone is not an error (returns 0). */
int worker_signal(Worker *w, int sig);

/* Reads its leaf's (or its /proc tree's) counters; see cgroup_worker_sample(). Returns 0 when there is
 * nothing to read (no accounting, not started or exited). */
int worker_sample(Worker *w, CgroupSample *ret);

/* "exited with status 3", "killed by signal KILL (the OOM killer, ...)", "killed by signal SEGV (core
 * dumped)", or "could not be started" for one that never ran. Returns buf. */
const char *worker_describe_exit(const Worker *w, char *buf, size_t size);

/* WORKER_PID=, WORKER_SLOT=, WORKER_GENERATION= for its journal events. */
void worker_log_fields(LogFields *f, const Worker *w);

/* Releases everything it owns, in order: timers and watches, the process (killed and reaped if still
 * there), its output (what is left in its pipes relayed), then the leaf (removed, or left to cgroup_manager_gc() while still populated) and its
 * generation; and takes it off its list. Accepts and returns NULL. */
Worker *worker_free(Worker *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Worker *, worker_free);
