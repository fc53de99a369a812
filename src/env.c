/* SPDX-License-Identifier: MIT */
/* Worker environment: what corral passes on, what it replaces, and LISTEN_PID formatted without malloc. */
#include <stdio.h>

#include "env.h"

static const char *const owned_prefixes[] = {
        "LISTEN_FDS=",     "LISTEN_PID=",   "LISTEN_FDNAMES=", "NOTIFY_SOCKET=", "WATCHDOG_USEC=",
        "WATCHDOG_PID=",   "WORKER_INDEX=", "WORKER_GENERATION=", "WORKER_COUNT=", "CORRAL_PID=",
};

static bool env_is_owned(const char *entry) {
        for (size_t i = 0; i < ELEMENTSOF(owned_prefixes); i++)
                if (startswith(entry, owned_prefixes[i]))
                        return true;
        return false;
}

/* Appends "NAME=" with room for a pid and records its index. */
static int env_add_pid_entry(char ***l, const char *name, EnvPidEntries *pids) {
        char *e = calloc(1, ENV_PID_ENTRY_SIZE);

        if (!e)
                return -ENOMEM;
        snprintf(e, ENV_PID_ENTRY_SIZE, "%s=", name);
        pids->index[pids->n++] = strv_length(*l);
        return strv_consume(l, e);
}

int env_build(char *const *base, const WorkerEnvParams *params, char ***ret, EnvPidEntries *ret_pids) {
        _cleanup_strv_free_ char **l = NULL;
        EnvPidEntries pids = {};

        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (char *const *p = base; p && *p; p++)
                if (!env_is_owned(*p) && strchr(*p, '=') && strv_extend(&l, *p) < 0)
                        return -ENOMEM;

        if (env_add_pid_entry(&l, "LISTEN_PID", &pids) < 0)
                return -ENOMEM;

#define ADD(...)                                                                                          \
        do {                                                                                              \
                char *_s = strdup_printf(__VA_ARGS__);                                                    \
                if (!_s || strv_consume(&l, _s) < 0)                                                      \
                        return -ENOMEM;                                                                   \
        } while (0)
        ADD("LISTEN_FDS=%u", params->n_fds);
        if (params->fd_names)
                ADD("LISTEN_FDNAMES=%s", params->fd_names);
        if (params->notify_socket)
                ADD("NOTIFY_SOCKET=%s", params->notify_socket);
        ADD("WORKER_INDEX=%u", params->index);
        ADD("WORKER_GENERATION=%u", params->generation);
        ADD("WORKER_COUNT=%u", params->count);
        ADD("CORRAL_PID=%d", (int) params->corral_pid);
        if (params->watchdog_usec > 0) {
                ADD("WATCHDOG_USEC=%llu", (unsigned long long) params->watchdog_usec);
                if (env_add_pid_entry(&l, "WATCHDOG_PID", &pids) < 0)
                        return -ENOMEM;
        }
#undef ADD

        *ret = TAKE_PTR(l);
        *ret_pids = pids;
        return 0;
}

void env_write_pid(char *entry, pid_t pid) {
        char digits[24];
        size_t n = 0, off = (size_t) (strchr(entry, '=') - entry) + 1;
        unsigned long v = (unsigned long) pid;

        do {
                digits[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        while (n > 0)
                entry[off++] = digits[--n];
        entry[off] = 0;
}
