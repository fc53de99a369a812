/* SPDX-License-Identifier: MIT */
/* The Manager object, shared by the files that implement it: manager.c (life cycle, signals, reconcile,
 * reload), manager-workers.c (worker events and notifications), manager-control.c (operator requests).
 * Not for use outside them. */
#pragma once

#include <signal.h>

#include <systemd/sd-event.h>

#include "cgroup.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "manager.h"
#include "notify.h"
#include "httpd.h"
#include "pool.h"
#include "sockets.h"
#include "status.h"
#include "worker.h"

/* Child exits first (they settle what the other events refer to), then signals, worker notifications,
 * timers. */
enum {
        PRIORITY_CHILD = -30,
        PRIORITY_SIGNAL = -20,
        PRIORITY_NOTIFY = -10,
        PRIORITY_TIMER = 0,
        PRIORITY_SAMPLE = 10,
};

/* A config with what spawning under it needs, for one generation. */
typedef struct Generation {
        Config *config;
        char *exec_path;
        unsigned number;
} Generation;

struct Manager {
        sd_event *event;
        ManagerParams params;
        pid_t pid;
        unsigned ncpus;

        Generation target; /* what new workers are started as */
        Generation stable; /* the last generation every slot reached; may share target's config */

        SocketSet sockets;
        int *fds;
        char *fd_names;

        NotifySocket *notify;
        ControlServer *control;
        CgroupManager *cgroups;
        sd_event_source *sample_timer;
        SocketSet status_sockets;
        Httpd *httpd;
        bool drained;
        StatusCounters counters;
        usec_t reload_started_usec;
        Pool *pool;
        Worker *dead; /* exited workers, freed after the current dispatch */

        sd_event_source *plan_timer;
        sd_event_source *post_source;

        uint64_t watched_signals; /* bit (sig - 1): a signal source exists */
        bool ready_sent;
        int exit_code; /* what corral exits with once the pool is empty */
        bool memory_limits_warned;
        bool reloading; /* a reload was requested and is not finished */
        unsigned reloads_ok, reloads_failed;
        unsigned roll_done_reported;
        usec_t started_usec;
        unsigned term_signals;
        char *status;
        usec_t reject_logged_usec;
};

/* The recycling policy of a config. */
#define RECYCLE_POLICY(c)                                                                                 \
        {                                                                                                 \
                .memory_max = (c)->recycle_memory_max, .cpu_max_percent = (c)->recycle_cpu_max_percent,   \
                .samples = (c)->recycle_samples, .max_age_usec = (c)->max_age_usec,                       \
                .max_age_jitter_usec = (c)->max_age_jitter_usec,                                          \
        }

/* The config of a live generation: the target's, or the stable one's. */
Config *generation_config(const Manager *m, unsigned generation);
/* WORKER_PID=, WORKER_SLOT=, WORKER_GENERATION= for a journal event. */
void worker_fields(LogFields *f, const Worker *w, const PoolWorker *pw);

/* manager.c */
int manager_reload(Manager *m);
void manager_reload_finished(Manager *m, bool ok, const char *why);
void manager_roll_aborted(Manager *m, const char *why);

/* manager-workers.c */
/* Reads a worker's accounting into pw->memory_bytes and pw->cpu_usec, deciding nothing. Returns 1 with
 * *ret filled, 0 when there is nothing to read (no leaf, gone), or a negative errno. */
int manager_read_accounting(PoolWorker *pw, CgroupSample *ret);
/* Samples one worker and feeds the recycling policy, which may ask the pool to replace it. */
void manager_sample_worker(Manager *m, Worker *w);
/* Samples every worker (the sampling timer), then removes empty leaves left behind. */
void manager_sample(Manager *m);
/* Logs what a verdict means (throttled, disabled, roll aborted); pw may be a copy of a freed record. */
void manager_log_verdict(Manager *m, Worker *w, PoolWorker *pw, PoolVerdict v, usec_t delay, const char *what);
void manager_on_worker_event(Worker *w, const WorkerEvent *ev, void *userdata);
void manager_on_worker_notify(NotifySocket *n, pid_t pid, const NotifyMessage *msg, void *userdata);

/* manager-control.c */
void manager_on_http(Httpd *h, const HttpRequest *req, HttpdResponse *resp, void *userdata);
void manager_on_control(ControlServer *s, ControlConnection *c, ControlCommand cmd, unsigned arg, void *userdata);
