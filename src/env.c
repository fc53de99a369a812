/* SPDX-License-Identifier: MIT */
/* Worker environment: what corral passes on, what it replaces, and LISTEN_PID and LISTEN_PIDFDID formatted
 * without malloc. */
#include <stdio.h>

#include "env.h"

/* LISTEN_PIDFDID (systemd 259) goes with LISTEN_PID: a newer libsystemd's sd_listen_fds() ignores the
 * sockets when it names a process other than the caller, so one inherited from corral's own start would
 * take every worker's sockets away. */
static const char *const owned_prefixes[] = {
        "LISTEN_FDS=",    "LISTEN_PID=",    "LISTEN_PIDFDID=",   "LISTEN_FDNAMES=", "NOTIFY_SOCKET=",
        "WATCHDOG_USEC=", "WATCHDOG_PID=",  "WORKER_INDEX=",     "WORKER_GENERATION=",
        "WORKER_COUNT=",  "CORRAL_PID=",
};

static bool env_is_owned(const char *entry) {
        for (size_t i = 0; i < ELEMENTSOF(owned_prefixes); i++)
                if (startswith(entry, owned_prefixes[i]))
                        return true;
        return false;
}

/* Appends "NAME=" with room for a number and returns its index in *ret_index. */
static int env_add_slot(char ***l, const char *name, size_t *ret_index) {
        char *e = calloc(1, ENV_PID_ENTRY_SIZE);
        size_t index = strv_length(*l);
        int r;

        if (!e)
                return -ENOMEM;
        snprintf(e, ENV_PID_ENTRY_SIZE, "%s=", name);
        r = strv_consume(l, e);
        if (r < 0)
                return r;
        *ret_index = index;
        return 0;
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

        if (env_add_slot(&l, "LISTEN_PID", &pids.index[pids.n++]) < 0 ||
            env_add_slot(&l, "LISTEN_PIDFDID", &pids.pidfd_id_index) < 0)
                return -ENOMEM;
        pids.has_pidfd_id = true;

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
                if (env_add_slot(&l, "WATCHDOG_PID", &pids.index[pids.n++]) < 0)
                        return -ENOMEM;
        }
#undef ADD

        *ret = TAKE_PTR(l);
        *ret_pids = pids;
        return 0;
}

void env_write_u64(char *entry, uint64_t v) {
        char digits[24];
        size_t n = 0, off = (size_t) (strchr(entry, '=') - entry) + 1;

        do {
                digits[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        while (n > 0)
                entry[off++] = digits[--n];
        entry[off] = 0;
}

void env_remove(char **envp, size_t index) {
        for (size_t i = index; envp[i]; i++)
                envp[i] = envp[i + 1];
}
