/* SPDX-License-Identifier: MIT */
/* The environment a worker is exec'd with, built before fork (no allocation happens in the child). Pure. */
#pragma once

#include <sys/types.h>

#include "util.h"

typedef struct WorkerEnvParams {
        unsigned n_fds;            /* LISTEN_FDS */
        const char *fd_names;      /* LISTEN_FDNAMES, "a:b:c" */
        const char *notify_socket; /* NOTIFY_SOCKET: corral's private socket */
        unsigned index;            /* WORKER_INDEX */
        unsigned generation;       /* WORKER_GENERATION */
        unsigned count;            /* WORKER_COUNT */
        pid_t corral_pid;          /* CORRAL_PID */
} WorkerEnvParams;

/* Room for "LISTEN_PID=" and any pid, written in the child by env_write_listen_pid(). */
#define ENV_LISTEN_PID_SIZE (sizeof("LISTEN_PID=") + 20)

/* Builds a new envp: base without the variables corral sets (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES,
 * NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, WORKER_INDEX, WORKER_GENERATION, WORKER_COUNT, CORRAL_PID;
 * other names are passed on), followed by corral's. The LISTEN_PID entry has room for the pid and its index
 * is returned in *ret_listen_pid_index. Returns 0 or -ENOMEM; the caller owns *ret (strv_free). */
int env_build(char *const *base, const WorkerEnvParams *params, char ***ret, size_t *ret_listen_pid_index);

/* Writes "LISTEN_PID=<pid>" into an entry made by env_build(). Async-signal-safe. */
void env_write_listen_pid(char *entry, pid_t pid);
