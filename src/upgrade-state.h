/* SPDX-License-Identifier: MIT */
/* PURE: what corral hands its next image across execve(), as records of the state format (state.h):
 * the manager's facts and counters, the sockets and endpoints (by fd number: they stay open across the
 * exec), the generations (their config file's text), the workers (pid, pidfd, recycling state) and the
 * pool (its configs, slots and worker records). Names, not numbers, for enums, so a reordered enum never
 * changes a state's meaning. Plain data in, plain data out: the manager fills and reads these structs. */
#pragma once

#include <sys/types.h>

#include "pool.h"
#include "recycle.h"
#include "state.h"
#include "status.h"

typedef enum UpgradeSocketSet {
        UPGRADE_SOCKETS_WORKERS, /* handed to every worker */
        UPGRADE_SOCKETS_STATUS,  /* the health endpoint's */
        _UPGRADE_SOCKETS_MAX,
        _UPGRADE_SOCKETS_INVALID = -EINVAL,
} UpgradeSocketSet;

typedef struct UpgradeSocket {
        UpgradeSocketSet set;
        int fd;
        char *name;
        int family, type;
        char *unix_path; /* NULL: not a UNIX socket corral bound */
        uint64_t unix_dev, unix_ino;
} UpgradeSocket;

typedef struct UpgradeGeneration {
        unsigned number;
        char *exec_path;   /* resolved when it was made */
        char *config_path; /* NULL: no file, the command line only */
        char *config_text; /* the file's text when the generation was made; NULL without a file */
        size_t config_size;
        char **environment;      /* as resolved when it was made (Environment=, EnvironmentFile=s) */
        char *working_directory; /* as resolved when it was made; NULL: none */
        bool credentials_set;    /* User=/Group= as resolved when it was made */
        uid_t uid;
        gid_t gid;
        gid_t *groups;
        size_t n_groups, groups_allocated; /* read: how many "group" records follow, and came */
} UpgradeGeneration;

typedef struct UpgradeWorker {
        uint64_t id; /* its pool-worker record's */
        unsigned slot, generation;
        pid_t pid;
        int pidfd;
        usec_t started_usec;
        usec_t watchdog_usec; /* when its watchdog runs out; 0: none armed */
        int output_fds[2];    /* WorkerOutput=prefix: the read ends of its stdout and stderr pipes; -EBADF: none */
        RecycleState recycle;
} UpgradeWorker;

typedef struct UpgradeState {
        /* Which corral wrote it, for the messages of the one that reads it. */
        char *writer_version;
        pid_t pid;
        usec_t started_usec, started_realtime_usec;
        unsigned target, stable, first, relayed; /* generation numbers */
        bool drained, ready_sent;
        int exit_code;
        StatusCounters counters;
        char *reload_warnings, *reload_failure; /* NULL: none */
        uid_t worker_uids[8];
        unsigned n_worker_uids;
        uint64_t untraced, notify_rejected;

        char *exe_path;       /* the binary corral was started from: what later upgrades run */
        uint64_t nofile_soft; /* the RLIMIT_NOFILE soft limit workers start with */
        int previous_exe_fd;  /* the binary that wrote this state, to go back to; -EBADF: none */

        int notify_fd;
        int control_fd; /* -EBADF: none */
        char *control_path;
        uint64_t control_dev, control_ino;
        char *control_base; /* the directory corral made for the control socket, removed at exit; NULL: none */
        int *waiter_fds;    /* the `corral upgrade` clients to answer */
        size_t n_waiter_fds;

        UpgradeSocket *sockets;
        size_t n_sockets;
        UpgradeGeneration *generations;
        size_t n_generations;
        UpgradeWorker *workers;
        size_t n_workers;
        PoolImage pool;
} UpgradeState;

/* Writes the whole state. Returns 0 and the text (owned by the caller), or -ENOMEM. */
int upgrade_state_write(const UpgradeState *s, char **ret, size_t *ret_size);
/* Reads a whole state: the format, every record this version knows, and references between them (each
 * worker's generation and pool record, the manager's generations). Returns 0 and *ret (free with
 * upgrade_state_done()); -EPROTONOSUPPORT (another major version), -EBADMSG, -E2BIG with an allocated
 * message in *ret_error (may be NULL); or -ENOMEM. */
int upgrade_state_read(const char *text, size_t size, UpgradeState *ret, char **ret_error);
void upgrade_state_done(UpgradeState *s);

/* Records "pool", "pool-config" (target, stable), "slot" and "pool-worker". */
void upgrade_state_put_pool(StateWriter *w, const PoolImage *img);

/* Reads them back. Returns 0 and a filled image (free with pool_image_done()), -EBADMSG with an
 * allocated message in *ret_error (may be NULL) naming the record's line and what is wrong, or -ENOMEM.
 * Consistency between the records is pool_from_image()'s to check. */
int upgrade_state_get_pool(const StateReader *r, PoolImage *ret, char **ret_error);
