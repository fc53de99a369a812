/* SPDX-License-Identifier: MIT */
/* The configuration: an INI file (parsed with inih) plus command-line twins of every key, turned into an
 * immutable Config. One key table drives parsing, bounds, --help and the command line. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum ReadyMode {
        READY_NOTIFY, /* the worker sends READY=1 */
        READY_EXEC,   /* ready as soon as execve() succeeded */
        READY_DELAY,  /* ready ReadyDelaySec after execve() succeeded */
        _READY_MODE_MAX,
        _READY_MODE_INVALID = -EINVAL,
} ReadyMode;

const char *ready_mode_to_string(ReadyMode m);
ReadyMode ready_mode_from_string(const char *s);

typedef enum WorkerOutputMode {
        WORKER_OUTPUT_AUTO,    /* journal when corral's stderr is the journal, else inherit */
        WORKER_OUTPUT_JOURNAL, /* a journal stream each for stdout and stderr */
        WORKER_OUTPUT_INHERIT, /* corral's own stdout and stderr */
        WORKER_OUTPUT_PREFIX,  /* pipes relayed by corral, each line prefixed with slot and pid */
        WORKER_OUTPUT_JSON,    /* pipes relayed by corral, each line a JSON object with slot and pid */
        _WORKER_OUTPUT_MODE_MAX,
        _WORKER_OUTPUT_MODE_INVALID = -EINVAL,
} WorkerOutputMode;

const char *worker_output_mode_to_string(WorkerOutputMode o);
WorkerOutputMode worker_output_mode_from_string(const char *s);

typedef enum BalanceMode {
        BALANCE_SHARED,    /* every worker accepts on the same listening sockets */
        BALANCE_REUSEPORT, /* each slot has its own SO_REUSEPORT sockets, kept across its workers */
        _BALANCE_MODE_MAX,
        _BALANCE_MODE_INVALID = -EINVAL,
} BalanceMode;

const char *balance_mode_to_string(BalanceMode b);

BalanceMode balance_mode_from_string(const char *s);

typedef enum CountMode {
        COUNT_FIXED, /* exactly count_value workers */
        COUNT_AUTO,  /* one per usable CPU, minus count_value (auto-K), at least one */
        _COUNT_MODE_MAX,
        _COUNT_MODE_INVALID = -EINVAL,
} CountMode;

#define COUNT_MAX 4096U

typedef struct Config {
        char *path;        /* the file this came from, NULL when there was none */
        char *text;        /* its content as read (NUL-terminated; NULL without a file): what an upgrade
                            * hands over, so the next image loads this very config */
        size_t text_size;
        char *name;        /* [Service] Name=, NULL: the default (instance.h) */
        char **exec_start; /* argv of the worker command, never empty after a successful load */
        char **environment;       /* Environment=: NAME=VALUE, in order, checked (env.h) */
        char **environment_files; /* EnvironmentFile=: absolute paths, after a '-' when it may be missing */
        char *working_directory;  /* WorkingDirectory=: an absolute path, NULL: corral's own */

        CountMode count_mode;
        unsigned count_value;

        ReadyMode ready_mode;
        usec_t ready_delay_usec;
        usec_t ready_timeout_usec;
        int stop_signal;
        usec_t stop_timeout_usec;

        uint64_t relay_signals;   /* bit (sig - 1) set: relayed to every worker */
        uint64_t cgroup_memory_high; /* per-worker memory.high, UINT64_MAX: none */
        uint64_t cgroup_memory_max;  /* per-worker memory.max, UINT64_MAX: none */
        usec_t worker_watchdog_usec; /* 0: no per-worker watchdog */
        WorkerOutputMode worker_output; /* WorkerOutput= */
        char *user;  /* [Worker] User=: who the workers run as (resolved by the generation), NULL: corral's */
        char *group; /* [Worker] Group=, NULL: the user's primary group */

        char **listen; /* embedded-mode listen specs, in order (see parse.h) */
        BalanceMode balance; /* Balance= */

        usec_t min_uptime_usec;
        usec_t restart_usec;     /* first backoff delay */
        usec_t backoff_max_usec; /* cap of the exponential backoff */
        int restart_prevent_exit_status; /* exit status meaning "do not respawn", -1 = none */
        unsigned give_up_failures;       /* 0: never give up */

        unsigned max_surge;
        unsigned max_unavailable;

        char *status_listen;  /* [Health] Listen=: embedded-mode health/metrics endpoint, NULL: none */
        usec_t drain_delay_usec; /* [Health] DrainDelaySec= */
        char *agent_listen;   /* [Health] AgentListen=: HAProxy agent-check endpoint (TCP), NULL: none */
        unsigned min_ready;   /* ready workers for /health to say 200; 0: all of them */

        uint64_t recycle_memory_max;   /* bytes, 0: off */
        unsigned recycle_cpu_max_percent; /* 0: off */
        unsigned recycle_samples;
        usec_t check_interval_usec;
        usec_t max_age_usec;           /* 0: off */
        usec_t max_age_jitter_usec;
} Config;

/* Balance=reuseport with a Listen= that is not TCP: -EPROTONOSUPPORT and an allocated message. */
int config_check_balance(const Config *c, char **ret_error);

/* One key of the table, for --help and building the command line. */
typedef struct ConfigKeyInfo {
        const char *section;
        const char *key;
        const char *option;  /* long option name, without the dashes */
        char short_option;   /* 0 when there is none */
        const char *metavar; /* what the value looks like, e.g. "DURATION" */
        const char *help;    /* one line, includes the default */
} ConfigKeyInfo;

/* The table, in --help order; *ret_n receives its length. The memory is static. */
const ConfigKeyInfo *config_key_table(size_t *ret_n);

/* One setting given on the command line: the long option name of a key and its value. Values are
 * applied after the file, in order, so the command line wins. Both strings are borrowed. */
typedef struct ConfigArg {
        const char *option;
        const char *value;
} ConfigArg;

/* Loads the file at path (NULL: none), applies args, then command (argv after "--", NULL or empty:
 * none; it replaces ExecStart=), then verifies the result. On success returns 0 and a new Config the
 * caller owns. On failure returns a negative errno (-EINVAL for invalid content, -ENOENT and friends
 * for an unreadable file) and, when ret_error is non-NULL, a newly allocated one-line message that
 * names the file and line, or the option, and the key, e.g.
 *   "/etc/corral/app.conf:12: Count=: invalid value 'many': expected a number, 'auto' or 'auto-K'"
 *   "--count: invalid value 'many': expected a number, 'auto' or 'auto-K'"
 * Unknown sections and keys are errors. */
int config_load(const char *path, const ConfigArg *args, size_t n_args, char *const *command, Config **ret,
                char **ret_error);

/* The same from the text of the file at path, read before (an upgrade's state carries it): path only
 * names it in messages and in Config.path. */
int config_load_text(const char *path, const char *text, size_t size, const ConfigArg *args, size_t n_args,
                     char *const *command, Config **ret, char **ret_error);

Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* True when sig is in c->relay_signals. */
bool config_relays_signal(const Config *c, int sig);

/* The number of workers this config asks for on a machine with ncpus usable CPUs (>= 1). */
unsigned config_worker_count(const Config *c, unsigned ncpus);
