/* SPDX-License-Identifier: MIT */
/* The environment a worker is exec'd with, built before fork (no allocation happens in the child). Pure. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
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
        char *const *environment;  /* NAME=VALUE from Environment= and EnvironmentFile=, later ones win */
} WorkerEnvParams;

/* Room for "LISTEN_PIDFDID=" (the longest name) and any 64-bit number, written in the child by
 * env_write_u64(). */
#define ENV_PID_ENTRY_SIZE (sizeof("LISTEN_PIDFDID=") + 20)

/* The entries of an envp that the child fills in about itself: LISTEN_PID first, then WATCHDOG_PID when
 * there is one, get its pid; LISTEN_PIDFDID gets the inode id of a pidfd on itself, or is removed where
 * the kernel has none to give (no pidfs: before Linux 6.9). */
#define ENV_PID_ENTRIES_MAX 2
typedef struct EnvPidEntries {
        size_t index[ENV_PID_ENTRIES_MAX];
        size_t n;
        size_t pidfd_id_index; /* meaningful only when has_pidfd_id */
        bool has_pidfd_id;
} EnvPidEntries;

/* Builds a new envp: base without the variables corral sets (LISTEN_FDS, LISTEN_PID, LISTEN_PIDFDID,
 * LISTEN_FDNAMES, NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, WORKER_INDEX, WORKER_GENERATION, WORKER_COUNT,
 * CORRAL_PID; other names are passed on), with params->environment (NULL: none) set over it (a name already
 * there keeps its place and takes the new value; corral's names are skipped), followed by corral's. The
 * entries the child fills in ("NAME=", with room for a 64-bit number) are returned in *ret_pids. Returns 0
 * or -ENOMEM; the caller owns *ret (strv_free). */
int env_build(char *const *base, const WorkerEnvParams *params, char ***ret, EnvPidEntries *ret_pids);

/* Whether name[0..n) is a portable variable name: letters, digits and '_', not starting with a digit. */
bool env_name_is_valid(const char *name, size_t n);

/* Checks one Environment= assignment. Returns 0; -EINVAL when it is not NAME=VALUE with a valid name;
 * -EPERM when NAME is one of corral's. On failure writes into why (n bytes) what is wrong. */
int env_assignment_check(const char *assignment, char *why, size_t n);

/* Parses the contents of an environment file (EnvironmentFile=): one NAME=VALUE a line, blanks around the
 * '=' and at the ends ignored, empty lines and lines starting with '#' or ';' skipped; a VALUE wholly in
 * "double" quotes (where a backslash escapes the next character) or 'single' quotes is unquoted, any other
 * is taken as written. Each assignment is set on *l (as env_build() does: an existing name takes the new
 * value). Returns 0; -ENOMEM; -EINVAL for a malformed line or -EPERM for one of corral's names, with the
 * line in *ret_line (0: the whole file) and what is wrong in why (n bytes). Pure. */
int env_file_parse(const char *data, size_t size, char ***l, unsigned *ret_line, char *why, size_t n);

/* Writes v in decimal after the '=' of an entry made by env_build(). Async-signal-safe. */
void env_write_u64(char *entry, uint64_t v);
static inline void env_write_pid(char *entry, pid_t pid) {
        env_write_u64(entry, (uint64_t) pid);
}

/* Takes entry index out of envp, moving the later ones up; the string is not freed (in the child the
 * parent's copy owns it). Async-signal-safe. */
void env_remove(char **envp, size_t index);
