/* SPDX-License-Identifier: MIT */
/* The manager owns the event loop, the generations, the sockets, the pool, the notify socket and the
 * workers; it turns events into pool reports and carries out what pool_plan() decides. */
#pragma once

#include "config.h"
#include "generation.h"
#include "sockets.h"

typedef struct Manager Manager;

typedef struct ManagerParams {
        /* How the config was loaded, so a reload can do it again. All borrowed for the manager's life. */
        const char *config_path;
        const ConfigArg *args;
        size_t n_args;
        char *const *command;
        const char *control_path; /* NULL: no control socket */
        SocketSet *status_socket; /* the health/metrics socket(s); taken over by manager_new(), may be empty */
        const char *cgroup_root;  /* cgroupfs to account workers in, NULL: /proc accounting only */
} ManagerParams;

/* Takes the first generation's reference and the sockets (on success and failure alike); the generation
 * becomes number 1. Sets up the loop, signals, endpoints, accounting and timers. Returns 0, or a negative
 * errno after logging why. */
int manager_new(const ManagerParams *params, Generation *generation, SocketSet *sockets, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Starts the workers and runs until the pool is stopped. Returns the process exit code. */
int manager_run(Manager *m);
