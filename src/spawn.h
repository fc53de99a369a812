/* SPDX-License-Identifier: MIT */
/* Everything between fork() and exec() of a worker, async-signal-safe only, and how a failure there
 * reaches the parent: {stage, errno} through a close-on-exec pipe. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "credentials.h"
#include "env.h"
#include "util.h"

typedef enum SpawnStage {
        SPAWN_STAGE_SIGNALS,
        SPAWN_STAGE_PDEATHSIG,
        SPAWN_STAGE_SETSID,
        SPAWN_STAGE_FDS,
        SPAWN_STAGE_CGROUP,
        SPAWN_STAGE_OUTPUT,
        SPAWN_STAGE_RLIMIT,
        SPAWN_STAGE_USER,
        SPAWN_STAGE_CHDIR,
        SPAWN_STAGE_EXEC,
        _SPAWN_STAGE_MAX,
        _SPAWN_STAGE_INVALID = -EINVAL,
} SpawnStage;

const char *spawn_stage_to_string(SpawnStage s);

typedef struct SpawnParams {
        const char *path;        /* resolved executable (find_executable) */
        char *const *argv;
        char **envp;             /* built by env_build() */
        EnvPidEntries pid_entries; /* entries of envp the child fills in: its pid, its pidfd inode id */
        const int *output_fds;   /* [2]: become fds 1 and 2 in the child (worker-output.h); NULL: inherited */
        const int *fds;          /* sockets that become fds 3, 4, ... in the child */
        size_t n_fds;
        int cgroup_procs_fds[2]; /* open cgroup.procs files to join before exec (v2 and v1 memory) */
        size_t n_cgroup_procs_fds;
        uint64_t nofile_soft;    /* RLIMIT_NOFILE soft limit to exec with (corral raised its own); 0: as is */
        const char *working_directory; /* chdir() here before exec; NULL: stay in corral's */
        const Credentials *credentials; /* switched to last before exec; NULL or not set: corral's own */
} SpawnParams;

/* What the child writes to the status pipe when it fails before exec. */
typedef struct SpawnError {
        int32_t stage;
        int32_t error;
} SpawnError;

/* A pidfd for pid, a child of ours not reaped yet; when none can be opened, the child is SIGKILLed and
 * reaped here (nothing else would). Returns the fd or -errno. */
int spawn_child_pidfd(pid_t pid);

/* Forks a worker. On success returns 0 with its pid, a pidfd (owned, close-on-exec) and the read end of
 * the status pipe (owned, non-blocking, close-on-exec): end-of-file there means exec succeeded, a
 * SpawnError means it failed and the child exits 127. Fails only if the parent could not fork. */
int spawn_worker(const SpawnParams *p, pid_t *ret_pid, int *ret_pidfd, int *ret_status_fd);

/* Child side, between fork and exec (async-signal-safe, no malloc): makes fds[0..n) the fds 3, 4, ... in
 * that order with close-on-exec cleared, whatever numbers they had (on another one's target, on their own,
 * above or below); puts a copy of status_fd above them in *status_fd_moved (written once that copy
 * exists, so a failure can still be reported through it, or else through status_fd); marks every fd from
 * 3 + n up close-on-exec, so only 0-2 and the moved ones cross exec. Returns 0 or -errno. Exported for
 * the unit tests. */
int child_move_fds(const int *fds, size_t n, int status_fd, int *status_fd_moved);

/* Reads the status pipe. Returns 0 when exec succeeded (EOF), 1 with *ret filled in when the child
 * failed, -EAGAIN when nothing is there yet, or another negative errno. */
int spawn_read_status(int fd, SpawnError *ret);

/* Resolves name the way execvp() would (a name with a slash is taken as is) and checks it is an
 * executable regular file. Returns 0 and an allocated path, or -ENOENT / -EACCES / -ENOEXEC... */
int find_executable(const char *name, char **ret);
