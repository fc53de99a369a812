/* SPDX-License-Identifier: MIT */
/* The manager owns the event loop, the generations, the sockets, the pool, the notify socket and the
 * workers; it turns events into pool reports and carries out what pool_plan() decides. */
#pragma once

#include "cgroup.h"
#include "config.h"
#include "generation.h"
#include "sockets.h"

typedef struct Manager Manager;

typedef struct ManagerParams {
        /* How the config was loaded, so a reload can do it again. All borrowed for the manager's life. */
        const char *config_path;
        char *const *argv; /* corral's own, for the exec of an upgrade */
        const ConfigArg *args;
        size_t n_args;
        char *const *command;
        const char *name;         /* the instance's name */
        const char *control_path; /* NULL: no control socket */
        const char *control_base; /* the directory made for it, removed at exit (an upgrade passes it on) */
        bool control_optional;    /* a default path: failing to bind it (but for a live corral there) is a
                                   * warning, not an error */
        SocketSet *status_socket; /* the health/metrics socket(s); taken over by manager_new(), may be empty */
        CgroupManager *cgroups;   /* the accounting backend, taken over by manager_new(); NULL: none */
        uint64_t nofile_soft;     /* RLIMIT_NOFILE soft limit workers start with (corral raised its own) */
        const char *upgrade_failure; /* resuming after an upgrade that failed: why its successor could not */
} ManagerParams;

/* Takes the first generation's reference, the sockets and params->cgroups (on success and failure alike);
 * the generation becomes number 1. Sets up the loop, signals, endpoints and timers. Returns 0, or a
 * negative errno after logging why. */
int manager_new(const ManagerParams *params, Generation *generation, SocketSet *sockets, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

typedef struct UpgradeState UpgradeState;
/* The manager of an image started by an upgrade, from the state the one before handed over (whose fds it
 * takes; params->status_socket is unused). Returns 0; or -errno after logging, with *ret_fds_taken false
 * when nothing of the state was taken yet, so the caller can still go back to the binary before, and then
 * *ret_reason (may be NULL; allocated, or left NULL) saying why. */
int manager_resume(const ManagerParams *params, UpgradeState *state, Manager **ret, bool *ret_fds_taken,
                   char **ret_reason);

/* Starts the workers and runs until the pool is stopped. Returns the process exit code. */
int manager_run(Manager *m);
