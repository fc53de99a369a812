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
        usec_t watchdog_usec;      /* WATCHDOG_USEC and WATCHDOG_PID when not 0 */
} WorkerEnvParams;

/* Room for "WATCHDOG_PID=" (the longest name) and any pid, written in the child by env_write_pid(). */
#define ENV_PID_ENTRY_SIZE (sizeof("WATCHDOG_PID=") + 20)

/* The entries of an envp that must receive the worker's own pid in the child: LISTEN_PID first, then
 * WATCHDOG_PID when there is one. */
#define ENV_PID_ENTRIES_MAX 2
typedef struct EnvPidEntries {
        size_t index[ENV_PID_ENTRIES_MAX];
        size_t n;
} EnvPidEntries;

/* Builds a new envp: base without the variables corral sets (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES,
 * NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, WORKER_INDEX, WORKER_GENERATION, WORKER_COUNT, CORRAL_PID;
 * other names are passed on), followed by corral's. The pid entries have room for the pid; their indexes
 * are returned in *ret_pids. Returns 0 or -ENOMEM; the caller owns *ret (strv_free). */
int env_build(char *const *base, const WorkerEnvParams *params, char ***ret, EnvPidEntries *ret_pids);

/* Writes pid after the '=' of an entry made by env_build(). Async-signal-safe. */
void env_write_pid(char *entry, pid_t pid);
