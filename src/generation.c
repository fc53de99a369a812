/* SPDX-License-Identifier: MIT */
/* A generation's config, executable, environment and working directory, shared by reference between the
 * manager and the workers started from it. */
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "env.h"
#include "generation.h"
#include "spawn.h"

/* Environment files are small; a larger one is a mistake, not configuration. */
#define ENVIRONMENT_FILE_MAX (1024U * 1024U)

/* Environment= in order, then each EnvironmentFile= in order, a later assignment replacing an earlier one
 * (systemd's order: the files win over Environment=). */
static int generation_environment(const Config *c, char ***ret, char **ret_error) {
        _cleanup_strv_free_ char **l = strv_copy(c->environment);
        int r;

        if (!l && c->environment)
                return -ENOMEM;
        for (char *const *entry = c->environment_files; entry && *entry; entry++) {
                _cleanup_free_ char *data = NULL;
                const char *path = *entry + (**entry == '-');
                char why[256] = "";
                unsigned line = 0;
                size_t size;

                r = read_file_max(path, ENVIRONMENT_FILE_MAX, &data, &size);
                if (r == -ENOENT && **entry == '-')
                        continue;
                if (r < 0) {
                        if (ret_error) {
                                errno = -r;
                                *ret_error = strdup_printf("EnvironmentFile=: cannot read '%s': %m", path);
                        }
                        return r;
                }
                r = env_file_parse(data, size, &l, &line, why, sizeof(why));
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if (ret_error)
                                *ret_error = strdup_printf("EnvironmentFile=%s:%u: %s", path, line, why);
                        return -EINVAL;
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* WorkingDirectory= with every symbolic link resolved now: a deploy that repoints /srv/app/current and
 * reloads starts the new generation in the new release, while a respawned worker of an older generation
 * goes back to that generation's release, the one its code came from. */
static int generation_directory(const Config *c, char **ret, char **ret_error) {
        _cleanup_free_ char *path = NULL;
        struct stat st;
        int r = 0;

        if (!c->working_directory) {
                *ret = NULL;
                return 0;
        }
        path = realpath(c->working_directory, NULL);
        if (!path)
                r = -errno;
        else if (stat(path, &st) < 0)
                r = -errno;
        else if (!S_ISDIR(st.st_mode))
                r = -ENOTDIR;
        if (r < 0) {
                if (ret_error) {
                        errno = -r;
                        *ret_error = strdup_printf("WorkingDirectory=: cannot use '%s': %m",
                                                   c->working_directory);
                }
                return r;
        }
        *ret = TAKE_PTR(path);
        return 0;
}

int generation_new(Config *config, unsigned number, Generation **ret, char **ret_error) {
        _cleanup_free_ char *path = NULL, *directory = NULL, *relative = NULL;
        _cleanup_strv_free_ char **environment = NULL;
        const char *program = config->exec_start[0];
        Credentials credentials;
        Generation *g;
        int r;

        r = generation_directory(config, &directory, ret_error);
        if (r < 0)
                return r;
        /* A relative program path (bin/app, ./app) is relative to the directory the worker starts in. */
        if (directory && program[0] != '/' && strchr(program, '/')) {
                while (startswith(program, "./"))
                        program += 2;
                relative = strdup_printf("%s/%s", directory, program);
                if (!relative)
                        return -ENOMEM;
                program = relative;
        }
        r = find_executable(program, &path);
        if (r < 0) {
                if (ret_error) {
                        errno = -r;
                        *ret_error = strdup_printf("ExecStart=: cannot run '%s': %m", program);
                }
                return r;
        }
        r = generation_environment(config, &environment, ret_error);
        if (r < 0)
                return r;
        r = credentials_resolve(config->user, config->group, &credentials, ret_error);
        if (r < 0)
                return r;
        g = malloc(sizeof(Generation));
        if (!g) {
                credentials_done(&credentials);
                return -ENOMEM;
        }
        *g = (Generation) {
                .n_ref = 1,
                .number = number,
                .config = config,
                .exec_path = TAKE_PTR(path),
                .environment = TAKE_PTR(environment),
                .working_directory = TAKE_PTR(directory),
                .credentials = credentials,
        };
        *ret = g;
        return 0;
}

int generation_new_resolved(Config *config, unsigned number, const GenerationResolved *resolved, Generation **ret) {
        _cleanup_free_ char *path = strdup(resolved->exec_path), *directory = NULL;
        _cleanup_strv_free_ char **environment = strv_copy(resolved->environment);
        Generation *g;

        Credentials credentials = resolved->credentials;

        if (resolved->working_directory && !(directory = strdup(resolved->working_directory)))
                return -ENOMEM;
        if (!path || (resolved->environment && !environment))
                return -ENOMEM;
        credentials.groups = NULL;
        if (resolved->credentials.n_groups > 0) {
                credentials.groups = calloc(resolved->credentials.n_groups, sizeof(gid_t));
                if (!credentials.groups)
                        return -ENOMEM;
                memcpy(credentials.groups, resolved->credentials.groups,
                       resolved->credentials.n_groups * sizeof(gid_t));
        }
        g = malloc(sizeof(Generation));
        if (!g) {
                credentials_done(&credentials);
                return -ENOMEM;
        }
        *g = (Generation) {
                .n_ref = 1,
                .number = number,
                .config = config,
                .exec_path = TAKE_PTR(path),
                .environment = TAKE_PTR(environment),
                .working_directory = TAKE_PTR(directory),
                .credentials = credentials,
        };
        *ret = g;
        return 0;
}

Generation *generation_ref(Generation *g) {
        if (g)
                g->n_ref++;
        return g;
}

Generation *generation_unref(Generation *g) {
        if (!g || --g->n_ref > 0)
                return NULL;
        config_free(g->config);
        free(g->exec_path);
        strv_free(g->environment);
        free(g->working_directory);
        credentials_done(&g->credentials);
        free(g);
        return NULL;
}

void generation_assign(Generation **slot, Generation *g) {
        /* Ref first: g may be the generation *slot already holds the last reference to. */
        g = generation_ref(g);
        generation_unref(*slot);
        *slot = g;
}

PoolConfig generation_pool_config(const Generation *g, unsigned ncpus) {
        const Config *c = g->config;

        return (PoolConfig) {
                .count = config_worker_count(c, ncpus),
                .max_surge = c->max_surge,
                .max_unavailable = c->max_unavailable,
                .min_uptime_usec = c->min_uptime_usec,
                .restart_usec = c->restart_usec,
                .backoff_max_usec = c->backoff_max_usec,
                .prevent_exit_status = c->restart_prevent_exit_status,
                .give_up_failures = c->give_up_failures,
        };
}

static unsigned generation_fds_per_worker(const Generation *g, unsigned fds_per_worker) {
        /* WorkerOutput=prefix or json: corral reads each worker's two pipes for its life. */
        bool relayed = g->config->worker_output == WORKER_OUTPUT_PREFIX || g->config->worker_output == WORKER_OUTPUT_JSON;

        return fds_per_worker + (relayed ? 2 : 0);
}

uint64_t generation_fds_needed(const Generation *g, unsigned ncpus, unsigned fds_per_worker) {
        unsigned workers = config_worker_count(g->config, ncpus) + g->config->max_surge;

        return GENERATION_FD_RESERVE + (uint64_t) workers * generation_fds_per_worker(g, fds_per_worker);
}

int generation_check_fd_limit(const Generation *g, unsigned ncpus, unsigned fds_per_worker, uint64_t limit,
                              char **ret_error) {
        uint64_t need = generation_fds_needed(g, ncpus, fds_per_worker);

        fds_per_worker = generation_fds_per_worker(g, fds_per_worker);
        if (need <= limit)
                return 0;
        if (ret_error)
                *ret_error = strdup_printf("Count=%u needs about %llu file descriptors (%u per worker, %u for corral "
                                           "itself), but the limit is %llu: raise LimitNOFILE= (ulimit -n) or "
                                           "lower Count=",
                                           config_worker_count(g->config, ncpus),
                                           (unsigned long long) need, fds_per_worker, GENERATION_FD_RESERVE,
                                           (unsigned long long) limit);
        return -EMFILE;
}

RecyclePolicy generation_recycle_policy(const Generation *g) {
        const Config *c = g->config;

        return (RecyclePolicy) {
                .memory_max = c->recycle_memory_max,
                .cpu_max_percent = c->recycle_cpu_max_percent,
                .samples = c->recycle_samples,
                .max_age_usec = c->max_age_usec,
                .max_age_jitter_usec = c->max_age_jitter_usec,
        };
}
