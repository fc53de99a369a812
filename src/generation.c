/* SPDX-License-Identifier: MIT */
/* A generation's config and executable, shared by reference between the manager and the workers
 * started from it. */
#include <stdio.h>

#include "generation.h"
#include "spawn.h"

int generation_new(Config *config, unsigned number, Generation **ret, char **ret_error) {
        _cleanup_free_ char *path = NULL;
        Credentials credentials;
        Generation *g;
        int r;

        r = find_executable(config->exec_start[0], &path);
        if (r < 0) {
                if (ret_error) {
                        errno = -r;
                        *ret_error = strdup_printf("ExecStart=: cannot run '%s': %m", config->exec_start[0]);
                }
                return r;
        }
        r = credentials_resolve(config->user, config->group, &credentials, ret_error);
        if (r < 0)
                return r;
        g = malloc(sizeof(Generation));
        if (!g) {
                credentials_done(&credentials);
                return -ENOMEM;
        }
        *g = (Generation) { .n_ref = 1, .number = number, .config = config, .exec_path = TAKE_PTR(path),
                            .credentials = credentials };
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

int generation_check_fd_limit(const Generation *g, unsigned ncpus, unsigned fds_per_worker, uint64_t limit,
                              char **ret_error) {
        unsigned workers = config_worker_count(g->config, ncpus) + g->config->max_surge;
        uint64_t need = GENERATION_FD_RESERVE + (uint64_t) workers * fds_per_worker;

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
