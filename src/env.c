/* SPDX-License-Identifier: MIT */
/* Worker environment: what corral passes on, what it replaces, what Environment= and EnvironmentFile= add,
 * and LISTEN_PID and LISTEN_PIDFDID formatted without malloc. */
#include <stdio.h>
#include <string.h>

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

bool env_name_is_valid(const char *name, size_t n) {
        if (n == 0 || (name[0] >= '0' && name[0] <= '9'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(name[i] == '_' || (name[i] >= 'A' && name[i] <= 'Z') ||
                      (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
                        return false;
        return true;
}

/* Puts assignment in place of the entry with the same name, or at the end. */
static int env_set(char ***l, const char *assignment) {
        size_t n = strcspn(assignment, "=") + 1;
        char *copy;

        for (char **e = *l; e && *e; e++)
                if (strncmp(*e, assignment, n) == 0) {
                        copy = strdup(assignment);
                        if (!copy)
                                return -ENOMEM;
                        free(*e);
                        *e = copy;
                        return 0;
                }
        return strv_extend(l, assignment);
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

/* Checks the NAME of an assignment, name[0..k) (k: where the '=' is, or 0 without one). */
static int env_check_name(const char *name, size_t k, char *why, size_t n) {
        if (!env_name_is_valid(name, k)) {
                snprintf(why, n, "expected NAME=VALUE, NAME of letters, digits and '_', not first a digit");
                return -EINVAL;
        }
        for (size_t i = 0; i < ELEMENTSOF(owned_prefixes); i++)
                if (strlen(owned_prefixes[i]) == k + 1 && memcmp(owned_prefixes[i], name, k) == 0) {
                        snprintf(why, n, "%.*s is set by corral for each worker and cannot be overridden",
                                 (int) k, name);
                        return -EPERM;
                }
        return 0;
}

int env_assignment_check(const char *a, char *why, size_t n) {
        const char *eq = strchr(a, '=');

        return env_check_name(a, eq ? (size_t) (eq - a) : 0, why, n);
}

/* One VALUE of an environment file, after the '=' and the blanks that follow it, up to the end of the line,
 * into out (room for len + 1). */
static int env_file_value(const char *s, size_t len, char *out, char *why, size_t n) {
        size_t o = 0, i = 0;
        char quote;

        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
        if (len == 0 || (s[0] != '"' && s[0] != '\'')) {
                memcpy(out, s, len);
                out[len] = 0;
                return 0;
        }
        quote = s[i++];
        for (; i < len && s[i] != quote; i++) {
                if (quote == '"' && s[i] == '\\' && i + 1 < len)
                        i++;
                out[o++] = s[i];
        }
        if (i >= len) {
                snprintf(why, n, "missing closing %c", quote);
                return -EINVAL;
        }
        if (i + 1 != len) {
                snprintf(why, n, "text after the closing %c", quote);
                return -EINVAL;
        }
        out[o] = 0;
        return 0;
}

int env_file_parse(const char *data, size_t size, char ***l, unsigned *ret_line, char *why, size_t n) {
        _cleanup_free_ char *entry = NULL;
        unsigned line = 0;
        int r;

        if (memchr(data, 0, size)) {
                snprintf(why, n, "the file contains a NUL byte");
                *ret_line = 0;
                return -EINVAL;
        }
        entry = malloc(size + 1);
        if (!entry)
                return -ENOMEM;

        for (size_t pos = 0; pos < size;) {
                const char *s = data + pos, *eol = memchr(s, '\n', size - pos), *eq;
                size_t len = eol ? (size_t) (eol - s) : size - pos, k;

                pos += len + (eol ? 1 : 0);
                line++;
                if (len > 0 && s[len - 1] == '\r')
                        len--;
                while (len > 0 && (*s == ' ' || *s == '\t')) {
                        s++;
                        len--;
                }
                if (len == 0 || *s == '#' || *s == ';')
                        continue;

                eq = memchr(s, '=', len);
                k = eq ? (size_t) (eq - s) : 0;
                while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t'))
                        k--;
                r = env_check_name(s, k, why, n);
                if (r < 0) {
                        *ret_line = line;
                        return r;
                }
                memcpy(entry, s, k);
                entry[k] = '=';
                len -= (size_t) (eq + 1 - s);
                s = eq + 1;
                while (len > 0 && (*s == ' ' || *s == '\t')) {
                        s++;
                        len--;
                }
                r = env_file_value(s, len, entry + k + 1, why, n);
                if (r < 0) {
                        *ret_line = line;
                        return r;
                }
                r = env_set(l, entry);
                if (r < 0)
                        return r;
        }
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
        /* Checked when the config was loaded; checked again so that nothing can take corral's names. */
        for (char *const *p = params->environment; p && *p; p++)
                if (!env_is_owned(*p) && strchr(*p, '=') && env_set(&l, *p) < 0)
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
