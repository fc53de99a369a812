/* SPDX-License-Identifier: MIT */
/* One generation: its number, the Config it was loaded from, the resolved executable, environment and
 * working directory. Reference
 * counted: the manager holds the target and the stable generation, and every live worker holds the one it
 * was started from, so a worker is always stopped, timed and watched with its own generation's settings,
 * whatever reloads came after it. */
#pragma once

#include "config.h"
#include "credentials.h"
#include "pool.h"
#include "recycle.h"
#include "util.h"

typedef struct Generation {
        unsigned n_ref;
        unsigned number; /* the pool's generation number; 0 until the pool gave it one */
        Config *config;  /* owned, never modified */
        char *exec_path; /* ExecStart='s executable, resolved when the generation was made */
        char **environment;      /* Environment= and the EnvironmentFile= contents, read when it was made */
        char *working_directory; /* WorkingDirectory= with symbolic links resolved then; NULL: none */
        Credentials credentials; /* User=/Group=, resolved when the generation was made */
} Generation;

/* Makes a generation of config, which it takes on success (the caller keeps it on failure). Resolves
 * WorkingDirectory= (realpath), ExecStart='s executable (a relative path with a '/' within that
 * directory) and User=/Group= (credentials.h), and reads the EnvironmentFile=s; when one fails, *ret_error (may be NULL) receives an
 * allocated one-line message naming the key and what is wrong, e.g.
 *   "EnvironmentFile=/etc/app.env:3: LISTEN_FDS is set by corral for each worker and cannot be overridden"
 * Returns 0 and a generation with one reference in *ret, or a negative errno. */
int generation_new(Config *config, unsigned number, Generation **ret, char **ret_error);

/* What generation_new() resolves from the config when the generation is made: the executable, the
 * environment (Environment= and the EnvironmentFile= files as read then), the working directory (its
 * links resolved then) and the credentials (the user and group databases as they were then). An upgrade's next image takes them from the state, not from the files and links
 * as they are now, so each generation stays exactly what it was. */
typedef struct GenerationResolved {
        const char *exec_path;
        char *const *environment;
        const char *working_directory; /* NULL: none */
        Credentials credentials;       /* its groups are copied */
} GenerationResolved;

/* A generation of config (taken on success) with what was resolved already (copied). Returns 0 and the
 * generation in *ret, or -ENOMEM. */
int generation_new_resolved(Config *config, unsigned number, const GenerationResolved *resolved, Generation **ret);

Generation *generation_ref(Generation *g);
/* Drops a reference; the last one frees the config. Accepts and returns NULL. */
Generation *generation_unref(Generation *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(Generation *, generation_unref);

/* Replaces the reference in *slot with a new reference to g (which may be NULL). */
void generation_assign(Generation **slot, Generation *g);

/* What the pool needs of the generation's config; count resolves Count=auto against ncpus. */
PoolConfig generation_pool_config(const Generation *g, unsigned ncpus);

/* The generation's recycling policy. */
RecyclePolicy generation_recycle_policy(const Generation *g);

/* File descriptors corral keeps apart from its workers' (control and health connections, sockets, the
 * loop's own), for generation_check_fd_limit(). */
#define GENERATION_FD_RESERVE 256U

/* The file descriptors the generation's pool may need at most: GENERATION_FD_RESERVE, and fds_per_worker
 * (two more with WorkerOutput=prefix, for its pipes) for each of Count= workers and MaxSurge= more. */
uint64_t generation_fds_needed(const Generation *g, unsigned ncpus, unsigned fds_per_worker);

/* Whether generation_fds_needed() fits in limit file descriptors. Returns 0, or
 * -EMFILE and in *ret_error (may be NULL) an allocated message with the figures and what to raise. */
int generation_check_fd_limit(const Generation *g, unsigned ncpus, unsigned fds_per_worker, uint64_t limit,
                              char **ret_error);
