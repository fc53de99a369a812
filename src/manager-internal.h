/* SPDX-License-Identifier: MIT */
/* The Manager object, shared by the files that implement it: manager.c (set-up, signals, reconcile,
 * STATUS=), manager-control.c (operator requests), manager-reload.c (reloads and roll outcomes),
 * manager-workers.c (starting and stopping workers, their events and notifications, sampling),
 * manager-output.c (the workers' stdout and stderr). Calls go one way only, in that order. Not for use
 * outside them. */
#pragma once

#include <signal.h>

#include <systemd/sd-event.h>

#include "cgroup.h"
#include "config.h"
#include "generation.h"
#include "control.h"
#include "log.h"
#include "manager.h"
#include "notify.h"
#include "httpd.h"
#include "agent.h"
#include "pool.h"
#include "relay-sink.h"
#include "slot-sockets.h"
#include "sockets.h"
#include "status.h"
#include "upgrade-state.h"
#include "worker.h"

/* Child exits first (they settle what the other events refer to), then signals, worker notifications,
 * timers. */
enum {
        PRIORITY_CHILD = -30,
        PRIORITY_SIGNAL = -20,
        PRIORITY_NOTIFY = -10,
        PRIORITY_TIMER = 0,
        PRIORITY_SAMPLE = 10,
        PRIORITY_OUTPUT_SINK = 19, /* room in corral's stdout or stderr for relayed lines, before reading more */
        PRIORITY_OUTPUT = 20,      /* relayed worker output: what is left when nothing else waits */
};

/* What one sampling pass over the workers cost the loop (wall clock, CLOCK_MONOTONIC). */
typedef struct SamplePass {
        usec_t busy_usec;    /* all its batches together */
        usec_t longest_usec; /* its longest batch: the longest the loop was held */
        unsigned batches;
} SamplePass;

struct Manager {
        sd_event *event;
        ManagerParams params;
        pid_t pid;
        unsigned ncpus;

        /* The pool keeps generation numbers; these are the generations behind its target and stable
         * numbers, with their configs. A worker holds its own generation, which may be neither. */
        Generation *target;  /* what new workers are started as: pool_generation() */
        Generation *stable;  /* what a rollback returns to: pool_stable_generation() */
        Generation *relayed; /* whose RelaySignals= have signal sources */
        Generation *first;   /* what corral started with: its sockets and name are those of this config */

        SocketSet sockets;
        int *fds;
        char *fd_names;
        SlotSockets *slot_sockets; /* Balance=reuseport: each slot's own sockets; NULL: shared */

        NotifySocket *notify;
        ControlServer *control;
        CgroupManager *cgroups;
        sd_event_source *sample_timer;
        sd_event_source *sample_more; /* a defer source: the pass's next batch, on the next turn */
        unsigned sample_next_slot;    /* where the pass's next batch starts; 0: a new pass */
        unsigned sample_batch_slots;  /* how many slots the next batch takes; 0: none was taken yet */
        PoolWorker **sample_batch;     /* a batch's records in slot order (valid during the batch only) */
        size_t sample_batch_size;      /* room in it */
        SamplePass sample_pass;       /* the pass under way */
        SamplePass sample_last;       /* the last complete pass, for /metrics */
        SocketSet status_sockets; /* corral's own endpoints: "corral-agent", and the health endpoint's */
        Httpd *httpd;
        AgentServer *agent;
        /* /metrics' corral_connections, counted at most once per METRICS_CONNECTIONS_MAX_AGE_USEC: the kernel
         * walks its whole table of TCP connections for a count, whatever the pool's size. */
        uint64_t metrics_connections;
        usec_t metrics_connections_usec; /* CLOCK_MONOTONIC of the count; 0: none yet, or it failed */
        bool drained;
        bool stop_pending;                 /* DrainDelaySec=: a stop signal came, the delay runs */
        sd_event_source *drain_stop_timer; /* its end */
        /* Whether a load balancer has heard of the drain: the last answer of the agent or of /health
         * (/health/ready) before it, and whether one was given while drained. */
        usec_t drained_usec, polled_usec;
        bool drain_seen;
        StatusCounters counters;
        usec_t reload_started_usec;
        char *reload_warnings; /* "warning: " lines about the last reload's config, NULL: none */
        char *reload_failure;  /* why the last reload failed, NULL: it did not */
        Pool *pool;
        Worker *workers; /* every worker with a pool record: starting, ready, stopping */
        Worker *gone;    /* exited, or never started: freed after the current dispatch */
        RelaySink *relay_sinks[2]; /* WorkerOutput=prefix: corral's stdout and stderr (one sink twice when
                                    * they are the same file), made when first needed */
        bool output_warned;        /* a worker's output could not be set up: said once */

        sd_event_source *plan_timer;
        sd_event_source *post_source;

        uint64_t watched_signals; /* bit (sig - 1): a signal source exists */
        bool ready_sent;
        int exit_code; /* what corral exits with once the pool is empty */
        bool memory_limits_warned;
        bool reloading; /* a reload was requested and is not finished */
        usec_t started_usec;          /* CLOCK_MONOTONIC */
        usec_t started_realtime_usec; /* the same moment on CLOCK_REALTIME, for process_start_time_seconds */
        unsigned term_signals;
        char *status;
        usec_t reject_logged_usec;
        usec_t fd_error_logged_usec; /* the last "Too many open files" said about a spawn */
        unsigned fd_errors_unlogged;
        /* Who may notify: the uids the pool's workers run as (manager-workers.c). */
        uid_t worker_uids[8];
        unsigned n_worker_uids;
        /* The budget for tracing notifiers through /proc: this window's start and the traces in it. */
        usec_t trace_window_usec;
        unsigned trace_window_count;
        uint64_t untraced; /* notifications dropped because the budget was spent */

        /* Upgrades in place (manager-upgrade.c). */
        char *exe_path;               /* this binary, as /proc/self/exe named it at start: what is run next */
        int self_exe_fd;              /* this binary, open: what a successor that cannot resume goes back to */
        bool upgrading;               /* `corral upgrade` asked; the sentinel runs or the exec waits */
        bool upgrade_check_pending;   /* run the sentinel at the next quiet point */
        bool upgrade_exec_pending;    /* the sentinel passed: exec at the next quiet point */
        usec_t upgrade_deadline;      /* give up when not done by then */
        sd_event_source *upgrade_sentinel; /* its pidfd */
        sd_event_source *upgrade_timer;
        int upgrade_output;           /* the sentinel's stdout and stderr */
        int upgrade_check_fd;         /* the state the sentinel reads */
        char *upgraded_from;          /* after a resume: the version that handed over */
        char *upgrade_failure;        /* after a fallback: why the successor could not resume */
};

/* The socket of corral's agent-check (agent), or of its health endpoint: the first other one, which an
 * upgrade from a corral that had no agent-check names as it was bound. NULL: none. */
static inline const ListenSocket *manager_endpoint_socket(const Manager *m, bool agent) {
        for (size_t i = 0; i < m->status_sockets.n; i++)
                if (streq(m->status_sockets.sockets[i].name, "corral-agent") == agent)
                        return &m->status_sockets.sockets[i];
        return NULL;
}

/* manager-upgrade.c */
/* `corral upgrade`: checks that it can be done now, runs the sentinel, holds c for the answer. */
void manager_upgrade_request(Manager *m, ControlConnection *c);
/* After every dispatch: the exec, once the sentinel passed and the pool is quiet. */
void manager_upgrade_post(Manager *m);
/* Ends an upgrade that did not happen: its clients get "error: why", the log says it. */
void manager_upgrade_failed(Manager *m, const char *why);
/* Fills m from the state the image before wrote: generations, counters, the pool, the notify socket, the
 * workers (adopted). The loop exists already; manager_resume() takes the rest (sockets, control socket,
 * waiting clients). Returns 0 or -errno after logging. */
int manager_upgrade_restore(Manager *m, UpgradeState *s, bool *ret_fds_taken, char **ret_reason);
/* The end of a resume: the waiting clients answered, the journal and systemd told (READY=1). failure: this
 * image came back because its successor could not resume, and why. */
void manager_upgrade_resumed(Manager *m, const char *failure);

/* manager-reload.c */
/* Re-reads the config and starts a roll to a new generation. Returns 0 when the roll started, or a
 * negative errno when the reload failed at once (it has been reported then). */
int manager_reload(Manager *m);
/* Ends a reload: journal record, counters, `reload --wait` clients, READY=1 to systemd. */
void manager_reload_finished(Manager *m, bool ok, const char *why);
/* Acts on a plan's roll outcomes: the target and stable generations follow the pool's. */
void manager_handle_roll_reports(Manager *m, const PoolPlan *plan);

/* manager-workers.c */
/* Carries out a plan's actions for one record: starts a worker for it, or stops its worker. A spawn that
 * fails is reported to the pool as an exit; returns -errno then. */
int manager_spawn_worker(Manager *m, PoolWorker *pw);
void manager_stop_worker(Manager *m, PoolWorker *pw);
/* Takes over a ready worker the image before an upgrade started, for its pool record pw (restored): its
 * leaf, pidfd (taken whatever happens) and recycling state, under generation g. Returns 0 or -errno (the
 * process is then left alone: it is not ours to stop). */
int manager_adopt_worker(Manager *m, PoolWorker *pw, Generation *g, const UpgradeWorker *uw);
/* SIGKILLs every worker now (a second stop signal). */
void manager_kill_workers(Manager *m);
/* On SIGCHLD: reaps the children that are not workers (orphans; reaper.h), counted in counters.orphans_reaped. */
void manager_reap_orphans(Manager *m);
/* Frees the workers that exited; called after each dispatch. */
void manager_free_gone(Manager *m);
/* The worker of a pool record id, live or gone; NULL when freed already. */
Worker *manager_find_worker(Manager *m, uint64_t id);
/* Reads the accounting of a record's worker into the record's memory_bytes and cpu_usec, deciding nothing.
 * Returns 1 with *ret filled, 0 when there is nothing to read (no process, no leaf, gone), or -errno. */
int manager_read_accounting(PoolWorker *pw, CgroupSample *ret);
/* A sampling pass goes over the pool in batches of slots, each one turn of the loop, so that a worker's exit,
 * a notification or a control request waits for one batch, not for the pass. Each batch takes as many slots
 * as the last one's pace says fit in SAMPLE_BATCH_USEC (the first SAMPLE_BATCH_SLOTS_FIRST; within MIN and
 * MAX: a batch walks the pool's list once, so thousands of tiny batches would cost more than they save), and
 * ends early when it has run that long already. */
#define SAMPLE_BATCH_USEC (2 * USEC_PER_MSEC)
#define SAMPLE_BATCH_SLOTS_FIRST 64U
#define SAMPLE_BATCH_SLOTS_MIN 16U
#define SAMPLE_BATCH_SLOTS_MAX 1024U
/* Samples the next batch of the pass and feeds the recycling policy. Returns true while batches are left
 * (call again on a later turn of the loop), false once the pass is complete, having removed the empty
 * leaves left behind. */
bool manager_sample(Manager *m);
/* Balance=reuseport, after every dispatch: closes the sockets of slots beyond Count= that no worker uses any
 * more, and steers new connections to the slots with a ready worker. */
void manager_update_slot_sockets(Manager *m);
void manager_on_worker_notify(NotifySocket *n, const struct ucred *sender, const NotifyMessage *msg,
                              void *userdata);

/* manager-output.c */
/* The stdout and stderr a new worker gets from its generation's WorkerOutput=: a new WorkerOutput, or NULL
 * for corral's own (inherit, or what could not be set up: said once). */
WorkerOutput *manager_worker_output(Manager *m, const Worker *w);
/* A relayed output again for a worker adopted by an upgrade, from its pipes' read ends (taken on success).
 * NULL on failure (said). */
WorkerOutput *manager_worker_output_adopt(Manager *m, const Worker *w, const int fds[2]);
/* Bytes of relayed output queued for corral's stdout and stderr, not written yet. */
size_t manager_output_pending(const Manager *m);
/* Lines of worker output (and of corral's own, when relayed) dropped so far. */
uint64_t manager_output_dropped(const Manager *m);
/* Frees the relay sinks once the workers are gone, writing what they hold for at most a second. */
void manager_free_relay(Manager *m);

/* manager-control.c */
void manager_on_http(Httpd *h, const HttpRequest *req, HttpdResponse *resp, void *userdata);
/* The agent-check's line for the pool as it is now (status_format_agent()). */
char *manager_agent_answer(AgentServer *a, void *userdata);
/* The connections open on the workers' TCP addresses (sock-diag.h). Returns 0 or -errno. */
int manager_count_connections(Manager *m, uint64_t *ret);
#define METRICS_CONNECTIONS_MAX_AGE_USEC USEC_PER_SEC
void manager_on_control(ControlServer *s, ControlConnection *c, ControlCommand cmd, unsigned arg, void *userdata);
