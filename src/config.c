/* SPDX-License-Identifier: MIT */
/* The configuration: one key table drives the INI file (through inih), the command-line twins, --help and
 * the defaults. Loading builds a fresh Config that is never modified afterwards. */

#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>

#include "config-reader.h"
#include "config.h"
#include "env.h"
#include "parse.h"

/* Files larger than this are not configuration files; refuse them instead of reading them into memory. */
#define CONFIG_FILE_MAX (1024U * 1024U)

/* The longest line, continuation lines joined: a long command of options for a Python or Java server runs to
 * several KiB, and one argument may be 128 KiB (MAX_ARG_STRLEN). */
#define CONFIG_LINE_MAX (64U * 1024U)

typedef struct ConfigKey ConfigKey;

/* Parses value into the field at c + k->offset. value is NULL only for keys without a default, and then
 * means "reset to none". On failure returns -EINVAL or -ERANGE and writes what was expected into why. */
typedef int (*ConfigParseFn)(const ConfigKey *k, const char *value, Config *c, char *why, size_t n);

struct ConfigKey {
        ConfigKeyInfo info;
        const char *def; /* the default, in the same syntax as the file; NULL: none */
        ConfigParseFn parse;
        size_t offset;
        uint64_t min, max;
};

static void *config_field(const ConfigKey *k, Config *c) {
        return (uint8_t *) c + k->offset;
}

static int config_parse_command(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        char ***field = config_field(k, c), **argv = NULL;
        int r;

        if (value) {
                r = parse_command_line(value, &argv);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        snprintf(why, n,
                                 "expected a command line with matching quotes and no trailing backslash");
                        return r;
                }
        }
        strv_free(*field);
        *field = argv;
        return 0;
}

static int config_parse_count(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        const char *minus;
        unsigned v;
        int r;

        if (streq(value, "auto")) {
                c->count_mode = COUNT_AUTO;
                c->count_value = 0;
                return 0;
        }

        if ((minus = startswith(value, "auto-"))) {
                r = parse_unsigned(minus, 1, COUNT_MAX - 1, &v);
                if (r >= 0) {
                        c->count_mode = COUNT_AUTO;
                        c->count_value = v;
                        return 0;
                }
        } else {
                r = parse_unsigned(value, (unsigned) k->min, (unsigned) k->max, &v);
                if (r >= 0) {
                        c->count_mode = COUNT_FIXED;
                        c->count_value = v;
                        return 0;
                }
        }

        if (r == -ERANGE)
                snprintf(why, n, "expected a number between %u and %u, or 'auto-K' with K between 1 and %u",
                         (unsigned) k->min, (unsigned) k->max, COUNT_MAX - 1);
        else
                snprintf(why, n, "expected a number, 'auto' or 'auto-K'");
        return r;
}

/* One of an enum's names: v is what its _from_string() made of the value. The enums are int-sized. */
static int config_parse_choice(const ConfigKey *k, int v, const char *expected, Config *c, char *why, size_t n) {
        if (v < 0) {
                snprintf(why, n, "expected %s", expected);
                return -EINVAL;
        }
        *(int *) config_field(k, c) = v;
        return 0;
}

static int config_parse_ready_mode(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        return config_parse_choice(k, ready_mode_from_string(value), "'notify', 'exec' or 'delay'", c, why, n);
}

static int config_parse_worker_output(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        return config_parse_choice(k, worker_output_mode_from_string(value),
                                   "'auto', 'journal', 'inherit' or 'prefix'", c, why, n);
}

static int config_parse_balance(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        return config_parse_choice(k, balance_mode_from_string(value), "'shared' or 'reuseport'", c, why, n);
}

static int config_parse_duration(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        char a[FORMAT_USEC_MAX], b[FORMAT_USEC_MAX];
        usec_t u;
        int r;

        r = parse_usec(value, &u);
        if (r >= 0 && (u < k->min || u > k->max))
                r = -ERANGE;
        if (r < 0) {
                snprintf(why, n, "expected a duration between %s and %s, e.g. '500ms', '30s' or '1min 30s'",
                         format_usec(a, sizeof(a), k->min), format_usec(b, sizeof(b), k->max));
                return r;
        }
        *(usec_t *) config_field(k, c) = u;
        return 0;
}

static int config_parse_unsigned(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        unsigned v;
        int r;

        r = parse_unsigned(value, (unsigned) k->min, (unsigned) k->max, &v);
        if (r < 0) {
                snprintf(why, n, "expected a number between %" PRIu64 " and %" PRIu64, k->min, k->max);
                return r;
        }
        *(unsigned *) config_field(k, c) = v;
        return 0;
}

static int config_parse_size(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        uint64_t v;

        if (parse_size(value, &v) < 0) {
                snprintf(why, n, "expected a size like '512M', '1G' or a number of bytes");
                return -EINVAL;
        }
        if (v < k->min || v > k->max) {
                snprintf(why, n, "must be between %" PRIu64 " and %" PRIu64 " bytes", k->min, k->max);
                return -ERANGE;
        }
        *(uint64_t *) config_field(k, c) = v;
        return 0;
}

/* A size or "infinity", for limits that are off unless set. */
static int config_parse_limit(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        if (streq(value, "infinity")) {
                *(uint64_t *) config_field(k, c) = UINT64_MAX;
                return 0;
        }
        return config_parse_size(k, value, c, why, n);
}

static int config_parse_exit_status(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        unsigned v;
        int r;

        if (!value) {
                *(int *) config_field(k, c) = -1;
                return 0;
        }
        r = parse_unsigned(value, (unsigned) k->min, (unsigned) k->max, &v);
        if (r < 0) {
                snprintf(why, n, "expected an exit status between %u and %u", (unsigned) k->min,
                         (unsigned) k->max);
                return r;
        }
        *(int *) config_field(k, c) = (int) v;
        return 0;
}

static int config_parse_signal(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        int sig = signal_from_string(value);

        if (sig < 0) {
                snprintf(why, n, "expected a signal name like 'TERM' or 'SIGTERM', or a number");
                return -EINVAL;
        }
        *(int *) config_field(k, c) = sig;
        return 0;
}

/* Signals corral acts on itself (stop, reload, children), cannot catch, or gets only from its own faults:
 * relaying them would take them away from corral or make no sense. */
static bool signal_relayable(int sig) {
        switch (sig) {
        case SIGHUP: case SIGTERM: case SIGINT: case SIGCHLD: case SIGKILL: case SIGSTOP: case SIGPIPE:
        case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGABRT: case SIGTRAP: case SIGSYS:
                return false;
        default:
                return sig > 0 && sig <= 64;
        }
}

static int config_parse_signal_set(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        _cleanup_strv_free_ char **words = NULL;
        uint64_t mask = 0;
        int r;

        if (streq(value, "none")) {
                *(uint64_t *) config_field(k, c) = 0;
                return 0;
        }
        r = parse_command_line(value, &words);
        if (r < 0) {
                snprintf(why, n, "expected signal names separated by spaces, or 'none'");
                return -EINVAL;
        }
        for (char **w = words; *w; w++) {
                int sig = signal_from_string(*w);

                if (sig < 0) {
                        snprintf(why, n, "unknown signal '%s'", *w);
                        return -EINVAL;
                }
                if (!signal_relayable(sig)) {
                        snprintf(why, n, "SIG%s cannot be relayed: corral owns it", signal_to_string(sig) ?: "?");
                        return -EINVAL;
                }
                mask |= UINT64_C(1) << (sig - 1);
        }
        *(uint64_t *) config_field(k, c) = mask;
        return 0;
}

bool config_relays_signal(const Config *c, int sig) {
        return sig > 0 && sig <= 64 && (c->relay_signals & (UINT64_C(1) << (sig - 1)));
}

static int config_parse_status_listen(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        char **field = config_field(k, c);
        const char *reason = NULL;
        ListenSpec spec;
        char *copy;

        if (!value) {
                free(*field);
                *field = NULL;
                return 0;
        }
        if (listen_spec_parse(value, &spec, &reason) < 0) {
                snprintf(why, n, "%s", reason ?: "invalid address");
                return -EINVAL;
        }
        /* HAProxy's agent-check connects over TCP only (agent-addr, agent-port). */
        if (streq(k->info.key, "AgentListen") && spec.kind != LISTEN_TCP) {
                snprintf(why, n, "HAProxy's agent-check connects over TCP: use HOST:PORT or [ADDRESS]:PORT");
                return -EINVAL;
        }
        if (spec.kind == LISTEN_UDP) {
                snprintf(why, n, "the health endpoint speaks HTTP: use a TCP or unix: address");
                return -EINVAL;
        }
        copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int config_parse_name(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        char **field = config_field(k, c);
        char *copy = NULL;

        if (value && !instance_name_is_valid(value)) {
                snprintf(why, n, "expected 1 to %d of A-Z a-z 0-9 _ . @ : - (not first: . -)", INSTANCE_NAME_MAX);
                return -EINVAL;
        }
        if (value && !(copy = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

/* Environment=: assignments split like a command line, each checked; NULL empties the list. */
static int config_parse_environment(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        _cleanup_strv_free_ char **words = NULL;
        char ***field = config_field(k, c);
        int r;

        if (!value) {
                *field = strv_free(*field);
                return 0;
        }
        r = parse_command_line(value, &words);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                snprintf(why, n, "expected NAME=VALUE assignments separated by blanks, matching quotes");
                return r;
        }
        for (char **w = words; *w; w++) {
                r = env_assignment_check(*w, why, n);
                if (r < 0)
                        return -EINVAL;
        }
        for (char **w = words; *w; w++) {
                r = strv_extend(field, *w);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An absolute path, after a '-' where allow_dash. */
static int config_check_path(const char *value, bool allow_dash, char *why, size_t n) {
        if ((allow_dash && value[0] == '-' ? value[1] : value[0]) == '/')
                return 0;
        snprintf(why, n, "expected an absolute path%s", allow_dash ? ", optionally after '-'" : "");
        return -EINVAL;
}

static int config_parse_environment_file(const ConfigKey *k, const char *value, Config *c, char *why,
                                         size_t n) {
        char ***field = config_field(k, c);

        if (!value) {
                *field = strv_free(*field);
                return 0;
        }
        if (config_check_path(value, true, why, n) < 0)
                return -EINVAL;
        return strv_extend(field, value);
}

static int config_parse_directory(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        char **field = config_field(k, c), *copy = NULL;

        if (value && config_check_path(value, false, why, n) < 0)
                return -EINVAL;
        if (value && !(copy = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

/* A user or group name as useradd(8) takes them, or a number; whether it exists is the generation's to
 * find out (a reload resolves it again). */
static int config_parse_user(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        char **field = config_field(k, c);
        char *copy = NULL;

        if (value && (isempty(value) || strlen(value) > 32 || value[0] == '-' ||
                      value[strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")])) {
                snprintf(why, n, "expected a user or group name (1 to 32 of A-Z a-z 0-9 _ . -, not first: -) "
                                 "or a number");
                return -EINVAL;
        }
        if (value && !(copy = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int config_parse_listen(const ConfigKey *k, const char *value, Config *c, char *why, size_t n) {
        char ***field = config_field(k, c);
        const char *reason = NULL;
        ListenSpec spec;
        int r;

        /* An empty assignment clears the list, as in systemd units, so a drop-in or the command line can
         * replace addresses instead of only adding to them. */
        if (!value) {
                *field = strv_free(*field);
                return 0;
        }

        /* Checked now, so a typo is reported with its line; bound later by sockets.c. */
        r = listen_spec_parse(value, &spec, &reason);
        if (r < 0) {
                snprintf(why, n, "%s", reason ?: "invalid address");
                return r;
        }
        return strv_extend(field, value);
}

int config_check_balance(const Config *c, char **ret_error) {
        if (c->balance != BALANCE_REUSEPORT)
                return 0;
        for (char **l = c->listen; l && *l; l++) {
                const char *reason = NULL;
                ListenSpec spec;

                if (listen_spec_parse(*l, &spec, &reason) >= 0 && spec.kind != LISTEN_TCP) {
                        *ret_error = strdup_printf("Balance=reuseport works with TCP sockets only, and Listen=%s "
                                                   "is not one", *l);
                        return -EPROTONOSUPPORT;
                }
        }
        return 0;
}

/* clang-format off */
/* A row with a default: the same literal is parsed at startup and quoted in --help. */
#define KEY(sec, name, opt, sopt, meta, d, h, fn, field, mn, mx)                                          \
        {                                                                                                 \
                .info = { sec, name, opt, sopt, meta, h " (default: " d ")" }, .def = d, .parse = fn,     \
                .offset = offsetof(Config, field), .min = mn, .max = mx,                                  \
        }
#define KEY_NO_DEFAULT(sec, name, opt, sopt, meta, h, fn, field, mn, mx)                                  \
        {                                                                                                 \
                .info = { sec, name, opt, sopt, meta, h }, .def = NULL, .parse = fn,                      \
                .offset = offsetof(Config, field), .min = mn, .max = mx,                                  \
        }

static const ConfigKey config_keys[] = {
        KEY_NO_DEFAULT("Worker", "ExecStart", "exec-start", 0, "COMMAND",
                       "Command line of the worker program; a command after -- replaces it",
                       config_parse_command, exec_start, 0, 0),
        KEY("Worker", "Count", "count", 'n', "N|auto|auto-K", "auto",
            "Number of workers: a number, one per usable CPU, or that minus K",
            config_parse_count, count_mode, 1, COUNT_MAX),
        KEY("Worker", "ReadyMode", "ready-mode", 0, "notify|exec|delay", "notify",
            "How a worker becomes ready: it sends READY=1, at exec, or after ReadyDelaySec=",
            config_parse_ready_mode, ready_mode, 0, 0),
        KEY("Worker", "ReadyDelaySec", "ready-delay", 0, "DURATION", "1s",
            "With ReadyMode=delay, time from exec until the worker counts as ready",
            config_parse_duration, ready_delay_usec, 0, USEC_PER_HOUR),
        KEY("Worker", "ReadyTimeoutSec", "ready-timeout", 0, "DURATION", "30s",
            "Time a new worker has to become ready, or it is a failed start",
            config_parse_duration, ready_timeout_usec, USEC_PER_MSEC, USEC_PER_DAY),
        KEY("Worker", "StopSignal", "stop-signal", 0, "SIGNAL", "SIGTERM",
            "Signal that asks a worker to exit",
            config_parse_signal, stop_signal, 0, 0),
        KEY("Worker", "StopTimeoutSec", "stop-timeout", 0, "DURATION", "30s",
            "Time a stopping worker gets before SIGKILL",
            config_parse_duration, stop_timeout_usec, USEC_PER_MSEC, USEC_PER_DAY),
        KEY("Worker", "RelaySignals", "relay-signals", 0, "SIGNALS", "SIGUSR1 SIGUSR2 SIGWINCH",
            "Signals corral passes on to every worker, or 'none'; not HUP, TERM, INT, CHLD (corral's own), KILL, "
            "STOP, PIPE or fault signals",
            config_parse_signal_set, relay_signals, 0, 0),
        KEY("Worker", "WorkerWatchdogSec", "worker-watchdog", 0, "DURATION", "0",
            "A ready worker that sends no WATCHDOG=1 for this long is replaced and aborted; 0 turns it off",
            config_parse_duration, worker_watchdog_usec, 0, USEC_PER_HOUR),
        KEY("Worker", "WorkerOutput", "worker-output", 0, "auto|journal|inherit|prefix|json", "auto",
            "Where workers' stdout and stderr go: journal streams named NAME/SLOT, corral's own, or relayed "
            "by corral as whole lines prefixed '[SLOT PID] ' or as JSON objects with slot and pid; auto is "
            "journal when corral logs to the journal, else inherit",
            config_parse_worker_output, worker_output, 0, 0),
        KEY("Worker", "MemoryHigh", "memory-high", 0, "SIZE", "infinity",
            "memory.high of each worker's cgroup: the kernel throttles it above this, and corral checks it at "
            "once (cgroup v2)",
            config_parse_limit, cgroup_memory_high, 4096, UINT64_C(1) << 50),
        KEY("Worker", "MemoryLimit", "memory-limit", 0, "SIZE", "infinity",
            "memory.max of each worker's cgroup (memory.limit_in_bytes on cgroup v1): the kernel OOM-kills "
            "above this",
            config_parse_limit, cgroup_memory_max, 4096, UINT64_C(1) << 50),
        KEY_NO_DEFAULT("Worker", "Environment", "environment", 0, "NAME=VALUE...",
                       "Variables for the workers, repeatable, quoted as on a command line; an empty value "
                       "clears the list (default: none)",
                       config_parse_environment, environment, 0, 0),
        KEY_NO_DEFAULT("Worker", "EnvironmentFile", "environment-file", 0, "[-]PATH",
                       "File of NAME=VALUE lines for the workers, read at start and reload, repeatable; "
                       "'-': may be missing (default: none)",
                       config_parse_environment_file, environment_files, 0, 0),
        KEY_NO_DEFAULT("Worker", "WorkingDirectory", "working-directory", 0, "PATH",
                       "Directory the workers start in, symbolic links resolved at start and reload "
                       "(default: corral's own)",
                       config_parse_directory, working_directory, 0, 0),
        KEY_NO_DEFAULT("Worker", "User", "user", 0, "USER",
                       "Run the workers as this user: corral started as root switches them before exec "
                       "(default: corral's own user)",
                       config_parse_user, user, 0, 0),
        KEY_NO_DEFAULT("Worker", "Group", "group", 0, "GROUP",
                       "Run the workers with this primary group (default: User='s primary group, else corral's)",
                       config_parse_user, group, 0, 0),
        KEY_NO_DEFAULT("Socket", "Listen", "listen", 'l', "ADDRESS",
                       "Socket to bind without socket activation, repeatable: [NAME=][tcp:|udp:]IP:PORT or "
                       "[NAME=]unix:PATH[:MODE]; an empty value clears the list",
                       config_parse_listen, listen, 0, 0),
        KEY("Socket", "Balance", "balance", 0, "shared|reuseport", "shared",
            "How workers share the TCP sockets: all accept on the same ones, or each slot has its own "
            "SO_REUSEPORT socket (bound by corral, kept across the slot's workers) and the kernel spreads new "
            "connections over the slots",
            config_parse_balance, balance, 0, 0),
        KEY("Restart", "MinUptimeSec", "min-uptime", 0, "DURATION", "1s",
            "A worker that crashes after running this long is restarted at once, one that crashes sooner "
            "after a backoff",
            config_parse_duration, min_uptime_usec, 0, USEC_PER_DAY),
        KEY("Restart", "RestartSec", "restart-delay", 0, "DURATION", "100ms",
            "First restart backoff delay; it doubles with each quick crash",
            config_parse_duration, restart_usec, 0, USEC_PER_HOUR),
        KEY("Restart", "BackoffMaxSec", "backoff-max", 0, "DURATION", "30s",
            "Cap of the restart backoff delay",
            config_parse_duration, backoff_max_usec, 0, USEC_PER_DAY),
        KEY_NO_DEFAULT("Restart", "RestartPreventExitStatus", "restart-prevent-exit-status", 0, "STATUS",
                       "Exit status that means a permanent failure, the slot is not restarted "
                       "(default: none)",
                       config_parse_exit_status, restart_prevent_exit_status, 0, 255),
        KEY("Restart", "GiveUpAfterFailures", "give-up-after", 0, "N", "0",
            "Exit with status 1 once every slot failed this many times in a row and none is ready, so "
            "systemd's Restart= takes over; 0 never gives up",
            config_parse_unsigned, give_up_failures, 0, 1000000),
        KEY("Reload", "MaxSurge", "max-surge", 0, "N", "1",
            "Extra workers a rolling restart may run at once",
            config_parse_unsigned, max_surge, 0, COUNT_MAX),
        KEY("Reload", "MaxUnavailable", "max-unavailable", 0, "N", "0",
            "Workers a rolling restart may stop before their replacements are ready",
            config_parse_unsigned, max_unavailable, 0, COUNT_MAX),
        KEY_NO_DEFAULT("Health", "Listen", "status-listen", 0, "ADDRESS",
                       "Serve GET /health and GET /metrics here (embedded mode; under systemd pass a socket named "
                       "corral-status instead)",
                       config_parse_status_listen, status_listen, 0, 0),
        KEY_NO_DEFAULT("Health", "AgentListen", "agent-listen", 0, "ADDRESS",
                       "Answer HAProxy's agent-check here (TCP; a weight from the ready share, drain, down); under "
                       "systemd pass a socket named corral-agent instead (default: none)",
                       config_parse_status_listen, agent_listen, 0, 0),
        KEY("Health", "DrainDelaySec", "drain-delay", 0, "DURATION", "0",
            "On SIGTERM or SIGINT, answer /health with 503 and the agent-check with down, keep serving this "
            "long, then stop the workers; a second signal stops them at once",
            config_parse_duration, drain_delay_usec, 0, USEC_PER_HOUR),
        KEY("Health", "MinReady", "min-ready", 0, "N", "0",
            "Ready workers needed for /health to answer 200 (429 from here up to all of them) and /health/ready "
            "200; 0 means all of them",
            config_parse_unsigned, min_ready, 0, COUNT_MAX),
        KEY("Recycle", "MemoryMax", "recycle-memory-max", 0, "SIZE", "0",
            "Replace a worker whose memory stays above this for Samples= checks; 0 turns it off",
            config_parse_size, recycle_memory_max, 0, UINT64_C(1) << 50),
        KEY("Recycle", "CPUMaxPercent", "recycle-cpu-max", 0, "PERCENT", "0",
            "Replace a worker using more than this percent of one core for Samples= checks; 0 turns it off",
            config_parse_unsigned, recycle_cpu_max_percent, 0, 100000),
        KEY("Recycle", "Samples", "recycle-samples", 0, "N", "3",
            "Consecutive checks over a limit before a worker is replaced",
            config_parse_unsigned, recycle_samples, 1, 1000),
        KEY("Recycle", "CheckIntervalSec", "check-interval", 0, "DURATION", "1s",
            "How often worker memory and CPU are sampled",
            config_parse_duration, check_interval_usec, 10 * USEC_PER_MSEC, USEC_PER_HOUR),
        KEY("Recycle", "MaxAgeSec", "max-age", 0, "DURATION", "0",
            "Replace a worker older than this (plus its jitter); 0 turns it off",
            config_parse_duration, max_age_usec, 0, 365 * USEC_PER_DAY),
        KEY("Recycle", "MaxAgeJitterSec", "max-age-jitter", 0, "DURATION", "0",
            "Random extra age per worker, so workers started together are not recycled together",
            config_parse_duration, max_age_jitter_usec, 0, 365 * USEC_PER_DAY),
        KEY_NO_DEFAULT("Service", "Name", "name", 0, "NAME",
                       "Instance name: names the control socket's directory (/run/corral/NAME, or "
                       "$XDG_RUNTIME_DIR/corral/NAME) and corral list's rows (default: the unit's instance under "
                       "systemd, e.g. app for corral@app.service, else the command's file name)",
                       config_parse_name, name, 0, 0),
};
/* clang-format on */

const ConfigKeyInfo *config_key_table(size_t *ret_n) {
        /* The public part of each row, laid out contiguously; filled once, on first use. */
        static ConfigKeyInfo infos[ELEMENTSOF(config_keys)];

        if (!infos[0].key)
                for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                        infos[i] = config_keys[i].info;
        if (ret_n)
                *ret_n = ELEMENTSOF(infos);
        return infos;
}

static const char *const ready_mode_table[_READY_MODE_MAX] = {
        [READY_NOTIFY] = "notify",
        [READY_EXEC] = "exec",
        [READY_DELAY] = "delay",
};

const char *ready_mode_to_string(ReadyMode m) {
        if (m < 0 || m >= _READY_MODE_MAX)
                return NULL;
        return ready_mode_table[m];
}

ReadyMode ready_mode_from_string(const char *s) {
        for (ReadyMode m = 0; m < _READY_MODE_MAX; m++)
                if (streq_ptr(s, ready_mode_table[m]))
                        return m;
        return _READY_MODE_INVALID;
}

static const char *const worker_output_mode_table[_WORKER_OUTPUT_MODE_MAX] = {
        [WORKER_OUTPUT_AUTO] = "auto",
        [WORKER_OUTPUT_JOURNAL] = "journal",
        [WORKER_OUTPUT_INHERIT] = "inherit",
        [WORKER_OUTPUT_PREFIX] = "prefix",
        [WORKER_OUTPUT_JSON] = "json",
};

const char *worker_output_mode_to_string(WorkerOutputMode o) {
        return o >= 0 && o < _WORKER_OUTPUT_MODE_MAX ? worker_output_mode_table[o] : NULL;
}

WorkerOutputMode worker_output_mode_from_string(const char *s) {
        for (WorkerOutputMode o = 0; o < _WORKER_OUTPUT_MODE_MAX; o++)
                if (streq_ptr(s, worker_output_mode_table[o]))
                        return o;
        return _WORKER_OUTPUT_MODE_INVALID;
}

static const char *const balance_mode_table[_BALANCE_MODE_MAX] = {
        [BALANCE_SHARED] = "shared",
        [BALANCE_REUSEPORT] = "reuseport",
};

const char *balance_mode_to_string(BalanceMode b) {
        return b >= 0 && b < _BALANCE_MODE_MAX ? balance_mode_table[b] : NULL;
}

BalanceMode balance_mode_from_string(const char *s) {
        for (BalanceMode b = 0; b < _BALANCE_MODE_MAX; b++)
                if (streq_ptr(s, balance_mode_table[b]))
                        return b;
        return _BALANCE_MODE_INVALID;
}

static bool config_section_known(const char *section) {
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (streq(config_keys[i].info.section, section))
                        return true;
        return false;
}

static const ConfigKey *config_key_by_name(const char *section, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (streq(config_keys[i].info.section, section) && streq(config_keys[i].info.key, key))
                        return &config_keys[i];
        return NULL;
}

static const ConfigKey *config_key_by_option(const char *option) {
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (streq_ptr(config_keys[i].info.option, option))
                        return &config_keys[i];
        return NULL;
}

/* Applies one assignment. An empty value restores the default, as systemd does for most settings. */
static int config_apply(const ConfigKey *k, const char *value, Config *c, char *explain, size_t size) {
        return k->parse(k, isempty(value) ? k->def : value, c, explain, size);
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->text);
        strv_free(c->exec_start);
        strv_free(c->environment);
        strv_free(c->environment_files);
        free(c->working_directory);
        strv_free(c->listen);
        free(c->status_listen);
        free(c->agent_listen);
        free(c->name);
        free(c->user);
        free(c->group);
        free(c);
        return NULL;
}

static int config_new(Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;
        char explain[256];
        int r;

        c = calloc(1, sizeof(Config));
        if (!c)
                return -ENOMEM;
        c->restart_prevent_exit_status = -1;

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                if (!config_keys[i].def)
                        continue;
                r = config_apply(&config_keys[i], config_keys[i].def, c, explain, sizeof(explain));
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

/* State shared by the reader and the handler. */
typedef struct ConfigParser {
        ConfigReader reader; /* first: inih hands the same pointer to both */
        Config *config;
} ConfigParser;

static bool config_is_key(const char *section, const char *key) {
        return config_key_by_name(section, key);
}

/* Only the keys that hold lists of words take more than one line. */
static bool config_may_continue(const char *section, const char *key) {
        return streq(section, "Worker") && (streq(key, "ExecStart") || streq(key, "Environment"));
}

static int config_handler(void *user, const char *section, const char *name, const char *value) {
        ConfigParser *parser = user;
        ConfigReader *p = &parser->reader;
        const ConfigKey *k;
        char explain[256] = "";
        int r;

        if (p->error < 0)
                return 0;

        if (isempty(section))
                return config_reader_fail(p, -EINVAL, "%s=: Key outside of a section", name);

        k = config_key_by_name(section, name);
        if (!k)
                return config_reader_fail(p, -EINVAL, "[%s] %s=: unknown key", section, name);

        r = config_apply(k, value, parser->config, explain, sizeof(explain));
        if (r == -ENOMEM) {
                p->error = r;
                return 0;
        }
        if (r < 0)
                return config_reader_fail(p, r, "%s=: invalid value '%s': %s", name, value, explain);
        return 1;
}

/* Parses c->text, the file's content, named path in messages. */
static int config_parse_text(Config *c, const char *path, char **ret_error) {
        ConfigParser parser = {
                .reader = {
                        .path = path,
                        .data = c->text,
                        .size = c->text_size,
                        .section_known = config_section_known,
                        .is_key = config_is_key,
                        .may_continue = config_may_continue,
                        .continuation_rule = "only ExecStart= and Environment= in [Worker] may continue on "
                                             "indented lines",
                },
                .config = c,
        };
        ConfigReader *p = &parser.reader;
        int r;

        /* Debian's libinih reads its limits at run time: a line buffer of 200 bytes on the stack is the
         * default, too small for a real command line. A heap buffer of CONFIG_LINE_MAX instead, allocated
         * once per file; corral is inih's only user in the process. */
        ini_use_stack = false;
        ini_allow_realloc = false;
        ini_initial_alloc = (int) CONFIG_LINE_MAX;
        ini_max_line = (int) CONFIG_LINE_MAX;

        r = ini_parse_stream(config_reader, p, config_handler, &parser);
        if (p->error < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(p->message);
                free(p->message);
                return p->error;
        }
        if (r < 0)
                return -ENOMEM;
        if (r > 0) {
                /* Not reached with the checks in config_reader(), but never ignore what inih reports. */
                if (ret_error)
                        *ret_error = strdup_printf("%s:%i: Syntax error", path, r);
                return -EINVAL;
        }
        return 0;
}

static int config_apply_args(Config *c, const ConfigArg *args, size_t n_args, char **ret_error) {
        for (size_t i = 0; i < n_args; i++) {
                const ConfigKey *k = config_key_by_option(args[i].option);
                char explain[256] = "";
                int r;

                if (!k) {
                        if (ret_error)
                                *ret_error = strdup_printf("--%s: unknown option", args[i].option);
                        return -EINVAL;
                }

                r = config_apply(k, args[i].value, c, explain, sizeof(explain));
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if (ret_error)
                                *ret_error = strdup_printf("--%s: invalid value '%s': %s", args[i].option,
                                                           args[i].value, explain);
                        return r;
                }
        }
        return 0;
}

/* Checks that need more than one key. Messages name the file when there is one, since a reload that fails
 * here must point at what to fix. */
static int config_verify(const Config *c, char **ret_error) {
        char a[FORMAT_USEC_MAX], b[FORMAT_USEC_MAX];
        _cleanup_free_ char *m = NULL;

        if (strv_length(c->exec_start) == 0 || isempty(c->exec_start[0]))
                m = strdup_printf("no command: set ExecStart= in [Worker] or pass one after --");
        else if (c->backoff_max_usec < c->restart_usec)
                m = strdup_printf("BackoffMaxSec=%s is less than RestartSec=%s, the first backoff delay",
                                  format_usec(a, sizeof(a), c->backoff_max_usec),
                                  format_usec(b, sizeof(b), c->restart_usec));
        else if (c->ready_mode == READY_DELAY && c->ready_delay_usec >= c->ready_timeout_usec)
                m = strdup_printf(
                        "ReadyDelaySec=%s must be less than ReadyTimeoutSec=%s "
                        "with ReadyMode=delay",
                        format_usec(a, sizeof(a), c->ready_delay_usec),
                        format_usec(b, sizeof(b), c->ready_timeout_usec));
        else if (c->max_surge + c->max_unavailable < 1)
                m = strdup_printf(
                        "MaxSurge=0 and MaxUnavailable=0: a rolling restart could never make progress");
        else
                return 0;

        if (!m)
                return -ENOMEM;
        if (ret_error)
                *ret_error = c->path ? strdup_printf("%s: %s", c->path, m) : TAKE_PTR(m);
        return -EINVAL;
}

/* Loads a config from text, the content of the file at path (both NULL: no file). */
static int config_load_internal(const char *path, char *text, size_t size, const ConfigArg *args, size_t n_args,
                                char *const *command, Config **ret, char **ret_error) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = config_new(&c);
        if (r < 0) {
                free(text);
                return r;
        }
        c->text = text;
        c->text_size = size;

        if (path) {
                c->path = strdup(path);
                if (!c->path)
                        return -ENOMEM;
                r = config_parse_text(c, path, &error);
                if (r < 0)
                        goto fail;
        }

        r = config_apply_args(c, args, n_args, &error);
        if (r < 0)
                goto fail;

        if (command && command[0]) {
                char **argv = strv_copy(command);

                if (!argv)
                        return -ENOMEM;
                strv_free(c->exec_start);
                c->exec_start = argv;
        }

        r = config_verify(c, &error);
        if (r < 0)
                goto fail;

        *ret = TAKE_PTR(c);
        return 0;

fail:
        if (ret_error)
                *ret_error = TAKE_PTR(error);
        return r;
}

int config_load(const char *path, const ConfigArg *args, size_t n_args, char *const *command, Config **ret,
                char **ret_error) {
        char *text = NULL;
        size_t size = 0;
        int r;

        if (path) {
                r = read_file_max(path, CONFIG_FILE_MAX, &text, &size);
                if (r < 0) {
                        if (ret_error)
                                *ret_error = strdup_printf("Failed to read configuration file %s: %s", path,
                                                           strerror(-r));
                        return r;
                }
        }
        return config_load_internal(path, text, size, args, n_args, command, ret, ret_error);
}

int config_load_text(const char *path, const char *text, size_t size, const ConfigArg *args, size_t n_args,
                     char *const *command, Config **ret, char **ret_error) {
        char *copy = NULL;

        if (path) {
                if (size > CONFIG_FILE_MAX) {
                        if (ret_error)
                                *ret_error = strdup_printf("%s: larger than a configuration file may be", path);
                        return -EFBIG;
                }
                copy = malloc(size + 1);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, text, size);
                copy[size] = '\0';
        }
        return config_load_internal(path, copy, size, args, n_args, command, ret, ret_error);
}

unsigned config_worker_count(const Config *c, unsigned ncpus) {
        ncpus = MAX(ncpus, 1U);

        switch (c->count_mode) {
        case COUNT_AUTO:
                return MIN(ncpus > c->count_value ? ncpus - c->count_value : 1U, COUNT_MAX);
        case COUNT_FIXED:
        default:
                return c->count_value;
        }
}
