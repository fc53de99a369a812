/* SPDX-License-Identifier: MIT */
/* Tests for config.c: defaults, every key and its bounds, exact error messages with line numbers, the
 * command line over the file, the command after "--", and the cross-field checks. */

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"

TestSuite(config, .timeout = 10);

/* A temporary config file, removed when the test process ends (criterion forks one per test). */
static char config_path[64];

static const char *write_config(const char *content) {
        FILE *f;
        int fd;

        if (config_path[0])
                unlink(config_path);
        snprintf(config_path, sizeof(config_path), "/tmp/corral-test-config-XXXXXX");
        fd = mkstemp(config_path);
        cr_assert_geq(fd, 0);
        f = fdopen(fd, "w");
        cr_assert_not_null(f);
        cr_assert_eq(fputs(content, f) >= 0, true);
        cr_assert_eq(fclose(f), 0);
        return config_path;
}

static void remove_config(void) {
        if (config_path[0])
                unlink(config_path);
        config_path[0] = 0;
}

static char *mfree_test(char *p) {
        free(p);
        return NULL;
}

static char *const true_cmd[] = { (char *) "/bin/true", NULL };

/* Loads content (NULL: no file) plus args; returns the error message (owned) or NULL, with *ret_config
 * set on success. */
static char *load(const char *content, const ConfigArg *args, size_t n_args, char *const *command,
                  int *ret_r, Config **ret_config) {
        const char *path = content ? write_config(content) : NULL;
        char *error = NULL;
        Config *c = NULL;
        int r;

        r = config_load(path, args, n_args, command, &c, &error);
        if (ret_r)
                *ret_r = r;
        if (r >= 0) {
                cr_assert_null(error);
                cr_assert_not_null(c);
                if (ret_config)
                        *ret_config = c;
                else
                        config_free(c);
        } else {
                cr_assert_null(c);
                cr_assert_not_null(error, "no message for error %d", r);
        }
        return error;
}

static Config *load_ok(const char *content, const ConfigArg *args, size_t n_args) {
        Config *c = NULL;
        _cleanup_free_ char *error = load(content, args, n_args, true_cmd, NULL, &c);

        cr_assert_null(error, "unexpected error: %s", error);
        return c;
}

/* As load_ok(), with ExecStart= from the file. */
static Config *load_command_ok(const char *content) {
        Config *c = NULL;
        _cleanup_free_ char *error = load(content, NULL, 0, NULL, NULL, &c);

        cr_assert_null(error, "unexpected error: %s", error);
        return c;
}

/* expected with its "%s", if any, replaced by the config file's path. */
static char *expand_path(const char *expected) {
        const char *p = strstr(expected, "%s");

        if (!p)
                return strdup(expected);
        return strdup_printf("%.*s%s%s", (int) (p - expected), expected, config_path, p + 2);
}

/* Asserts that content fails with message, where "%s" in the expected message stands for the file. */
static void assert_error(const char *content, const ConfigArg *args, size_t n_args, const char *expected) {
        _cleanup_free_ char *error = NULL, *want = NULL;
        int r;

        error = load(content, args, n_args, true_cmd, &r, NULL);
        cr_assert_eq(r, -EINVAL, "r = %d for '%s'", r, content ?: "");
        want = expand_path(expected);
        cr_assert_str_eq(error, want);
}

Test(config, defaults_without_a_file, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = load_ok(NULL, NULL, 0);

        cr_assert_null(c->path);
        cr_assert_str_eq(c->exec_start[0], "/bin/true");
        cr_assert_null(c->exec_start[1]);
        cr_assert_eq(c->count_mode, COUNT_AUTO);
        cr_assert_eq(c->count_value, 0);
        cr_assert_eq(c->ready_mode, READY_NOTIFY);
        cr_assert_eq(c->worker_output, WORKER_OUTPUT_AUTO);
        cr_assert_eq(c->ready_delay_usec, USEC_PER_SEC);
        cr_assert_eq(c->ready_timeout_usec, 30 * USEC_PER_SEC);
        cr_assert_eq(c->stop_signal, SIGTERM);
        cr_assert_eq(c->stop_timeout_usec, 30 * USEC_PER_SEC);
        cr_assert_null(c->listen);
        cr_assert_eq(c->min_uptime_usec, USEC_PER_SEC);
        cr_assert_eq(c->restart_usec, 100 * USEC_PER_MSEC);
        cr_assert_eq(c->backoff_max_usec, 30 * USEC_PER_SEC);
        cr_assert_eq(c->restart_prevent_exit_status, -1);
        cr_assert_eq(c->max_surge, 1);
        cr_assert_eq(c->max_unavailable, 0);
        cr_assert(config_relays_signal(c, SIGUSR1));
        cr_assert(config_relays_signal(c, SIGUSR2));
        cr_assert(config_relays_signal(c, SIGWINCH));
        cr_assert_not(config_relays_signal(c, SIGTSTP));
        cr_assert_eq(c->worker_watchdog_usec, 0);
        cr_assert_eq(c->recycle_memory_max, 0);
        cr_assert_eq(c->recycle_cpu_max_percent, 0);
        cr_assert_eq(c->recycle_samples, 3);
        cr_assert_eq(c->check_interval_usec, USEC_PER_SEC);
        cr_assert_eq(c->max_age_usec, 0);
        cr_assert_eq(c->max_age_jitter_usec, 0);
}

Test(config, recycle_section, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = load_ok("[Recycle]\nMemoryMax=512M\nCPUMaxPercent=95\nSamples=5\n"
                                                    "CheckIntervalSec=250ms\nMaxAgeSec=24h\nMaxAgeJitterSec=1h\n",
                                                    NULL, 0);

        cr_assert_eq(c->recycle_memory_max, UINT64_C(512) << 20);
        cr_assert_eq(c->recycle_cpu_max_percent, 95);
        cr_assert_eq(c->recycle_samples, 5);
        cr_assert_eq(c->check_interval_usec, 250 * USEC_PER_MSEC);
        cr_assert_eq(c->max_age_usec, 24 * USEC_PER_HOUR);
        cr_assert_eq(c->max_age_jitter_usec, USEC_PER_HOUR);
        assert_error("[Recycle]\nMemoryMax=lots\n", NULL, 0,
                     "%s:2: MemoryMax=: invalid value 'lots': expected a size like '512M', '1G' or a number of bytes");
}

Test(config, relay_signals_take_names_numbers_or_none, .fini = remove_config) {
        Config *c = load_ok("[Worker]\nRelaySignals=SIGTSTP CONT 10\nWorkerWatchdogSec=5s\n", NULL, 0);

        cr_assert(config_relays_signal(c, SIGTSTP));
        cr_assert(config_relays_signal(c, SIGCONT));
        cr_assert(config_relays_signal(c, SIGUSR1));
        cr_assert_not(config_relays_signal(c, SIGUSR2));
        cr_assert_not(config_relays_signal(c, 0));
        cr_assert_not(config_relays_signal(c, 65));
        cr_assert_eq(c->worker_watchdog_usec, 5 * USEC_PER_SEC);
        config_free(c);

        c = load_ok("[Worker]\nRelaySignals=none\n", NULL, 0);
        for (int sig = 1; sig <= 64; sig++)
                cr_assert_not(config_relays_signal(c, sig));
        config_free(c);
}

Test(config, relay_signals_refuse_what_corral_owns, .fini = remove_config) {
        static const char *const owned[] = { "HUP", "TERM", "INT", "CHLD", "KILL", "STOP", "PIPE", "SEGV", "ABRT" };

        for (size_t i = 0; i < ELEMENTSOF(owned); i++) {
                _cleanup_free_ char *content = strdup_printf("[Worker]\nRelaySignals=USR1 %s\n", owned[i]);
                _cleanup_free_ char *want = strdup_printf(
                        "%%s:2: RelaySignals=: invalid value 'USR1 %s': SIG%s cannot be relayed: corral owns it",
                        owned[i], owned[i]);
                assert_error(content, NULL, 0, want);
        }
        assert_error("[Worker]\nRelaySignals=USR1 NOPE\n", NULL, 0,
                     "%s:2: RelaySignals=: invalid value 'USR1 NOPE': unknown signal 'NOPE'");
}

Test(config, file_sets_every_key, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;

        error = load(
                "# corral\n"
                "[Worker]\n"
                "ExecStart=/usr/bin/node \"/srv/my app/server.js\" --port=0\n"
                "Count=auto-2\n"
                "ReadyMode=delay\n"
                "ReadyDelaySec=500ms\n"
                "ReadyTimeoutSec=1min 30s\n"
                "StopSignal=SIGINT\n"
                "StopTimeoutSec=5s\n"
                "[Socket]\n"
                "Listen=http=127.0.0.1:8080\n"
                "Listen=unix:/run/app.sock:0660\n"
                "[Restart]\n"
                "MinUptimeSec=2s\n"
                "RestartSec=250ms\n"
                "BackoffMaxSec=1min\n"
                "RestartPreventExitStatus=78\n"
                "[Reload]\n"
                "MaxSurge=2\n"
                "MaxUnavailable=1\n",
                NULL, 0, NULL, NULL, &c);
        cr_assert_null(error, "%s", error);

        cr_assert_str_eq(c->path, config_path);
        cr_assert_eq(strv_length(c->exec_start), 3);
        cr_assert_str_eq(c->exec_start[1], "/srv/my app/server.js");
        cr_assert_str_eq(c->exec_start[2], "--port=0");
        cr_assert_eq(c->count_mode, COUNT_AUTO);
        cr_assert_eq(c->count_value, 2);
        cr_assert_eq(c->ready_mode, READY_DELAY);
        cr_assert_eq(c->ready_delay_usec, 500 * USEC_PER_MSEC);
        cr_assert_eq(c->ready_timeout_usec, 90 * USEC_PER_SEC);
        cr_assert_eq(c->stop_signal, SIGINT);
        cr_assert_eq(c->stop_timeout_usec, 5 * USEC_PER_SEC);
        cr_assert_eq(strv_length(c->listen), 2);
        cr_assert_str_eq(c->listen[0], "http=127.0.0.1:8080");
        cr_assert_str_eq(c->listen[1], "unix:/run/app.sock:0660");
        cr_assert_eq(c->min_uptime_usec, 2 * USEC_PER_SEC);
        cr_assert_eq(c->restart_usec, 250 * USEC_PER_MSEC);
        cr_assert_eq(c->backoff_max_usec, USEC_PER_MINUTE);
        cr_assert_eq(c->restart_prevent_exit_status, 78);
        cr_assert_eq(c->max_surge, 2);
        cr_assert_eq(c->max_unavailable, 1);
}

typedef struct BoundCase {
        const char *section;
        const char *key;
        const char *value;
        const char *extra;   /* more lines for the same section, to satisfy cross-field checks */
        const char *explain; /* NULL: accepted */
} BoundCase;

#define DURATION_0_1H "expected a duration between 0 and 1h, e.g. '500ms', '30s' or '1min 30s'"
#define DURATION_0_24H "expected a duration between 0 and 1d, e.g. '500ms', '30s' or '1min 30s'"
#define DURATION_1MS_24H "expected a duration between 1ms and 1d, e.g. '500ms', '30s' or '1min 30s'"
#define COUNT_RANGE "expected a number between 1 and 4096, or 'auto-K' with K between 1 and 4095"

#define ENV_NAME "expected NAME=VALUE, NAME of letters, digits and '_', not first a digit"
static const BoundCase bound_cases[] = {
        { "Health", "AgentListen", "127.0.0.1:5555", "", NULL },
        { "Health", "AgentListen", "[::1]:5555", "", NULL },
        { "Health", "AgentListen", "unix:/run/agent.sock", "",
          "HAProxy's agent-check connects over TCP: use HOST:PORT or [ADDRESS]:PORT" },
        { "Health", "AgentListen", "udp:127.0.0.1:5555", "",
          "HAProxy's agent-check connects over TCP: use HOST:PORT or [ADDRESS]:PORT" },
        { "Worker", "Count", "1", "", NULL },
        { "Worker", "Count", "4096", "", NULL },
        { "Worker", "Count", "auto", "", NULL },
        { "Worker", "Count", "auto-1", "", NULL },
        { "Worker", "Count", "auto-4095", "", NULL },
        { "Worker", "Count", "0", "", COUNT_RANGE },
        { "Worker", "Count", "4097", "", COUNT_RANGE },
        { "Worker", "Count", "auto-0", "", COUNT_RANGE },
        { "Worker", "Count", "auto-4096", "", COUNT_RANGE },
        { "Worker", "Count", "-1", "", "expected a number, 'auto' or 'auto-K'" },
        { "Worker", "Count", "Auto", "", "expected a number, 'auto' or 'auto-K'" },
        { "Worker", "ReadyMode", "notify", "", NULL },
        { "Worker", "ReadyMode", "exec", "", NULL },
        { "Worker", "ReadyMode", "delay", "", NULL },
        { "Worker", "ReadyMode", "Notify", "", "expected 'notify', 'exec' or 'delay'" },
        { "Worker", "WorkerOutput", "auto", "", NULL },
        { "Worker", "WorkerOutput", "journal", "", NULL },
        { "Worker", "WorkerOutput", "inherit", "", NULL },
        { "Worker", "WorkerOutput", "prefix", "", NULL },
        { "Worker", "WorkerOutput", "syslog", "", "expected 'auto', 'journal', 'inherit' or 'prefix'" },
        { "Worker", "ReadyDelaySec", "0", "", NULL },
        { "Worker", "ReadyDelaySec", "1h", "ReadyTimeoutSec=2h\n", NULL },
        { "Worker", "ReadyDelaySec", "1h 1us", "", DURATION_0_1H },
        { "Worker", "ReadyDelaySec", "soon", "", DURATION_0_1H },
        { "Worker", "ReadyTimeoutSec", "1ms", "", NULL },
        { "Worker", "ReadyTimeoutSec", "24h", "", NULL },
        { "Worker", "ReadyTimeoutSec", "999us", "", DURATION_1MS_24H },
        { "Worker", "ReadyTimeoutSec", "0", "", DURATION_1MS_24H },
        { "Worker", "ReadyTimeoutSec", "24h 1us", "", DURATION_1MS_24H },
        { "Worker", "StopSignal", "KILL", "", NULL },
        { "Worker", "StopSignal", "SIGINT", "", NULL },
        { "Worker", "StopSignal", "1", "", NULL },
        { "Worker", "StopSignal", "0", "", "expected a signal name like 'TERM' or 'SIGTERM', or a number" },
        { "Worker", "StopSignal", "SIGFOO", "",
          "expected a signal name like 'TERM' or 'SIGTERM', or a number" },
        { "Worker", "StopTimeoutSec", "1ms", "", NULL },
        { "Worker", "StopTimeoutSec", "24h", "", NULL },
        { "Worker", "StopTimeoutSec", "0", "", DURATION_1MS_24H },
        { "Worker", "StopTimeoutSec", "25h", "", DURATION_1MS_24H },
        { "Restart", "MinUptimeSec", "0", "", NULL },
        { "Restart", "MinUptimeSec", "24h", "", NULL },
        { "Restart", "MinUptimeSec", "24h 1us", "", DURATION_0_24H },
        { "Restart", "RestartSec", "0", "", NULL },
        { "Restart", "RestartSec", "1h", "BackoffMaxSec=1h\n", NULL },
        { "Restart", "RestartSec", "61min", "", DURATION_0_1H },
        { "Restart", "BackoffMaxSec", "0", "RestartSec=0\n", NULL },
        { "Restart", "BackoffMaxSec", "24h", "", NULL },
        { "Restart", "BackoffMaxSec", "2d", "", DURATION_0_24H },
        { "Restart", "RestartPreventExitStatus", "0", "", NULL },
        { "Restart", "RestartPreventExitStatus", "255", "", NULL },
        { "Restart", "RestartPreventExitStatus", "256", "", "expected an exit status between 0 and 255" },
        { "Restart", "RestartPreventExitStatus", "-1", "", "expected an exit status between 0 and 255" },
        { "Reload", "MaxSurge", "0", "MaxUnavailable=1\n", NULL },
        { "Reload", "MaxSurge", "4096", "", NULL },
        { "Reload", "MaxSurge", "4097", "", "expected a number between 0 and 4096" },
        { "Reload", "MaxUnavailable", "0", "", NULL },
        { "Reload", "MaxUnavailable", "4096", "", NULL },
        { "Reload", "MaxUnavailable", "4097", "", "expected a number between 0 and 4096" },
        { "Reload", "MaxUnavailable", "x", "", "expected a number between 0 and 4096" },
        { "Worker", "Environment", "A=1 'B=two words' _c=", "", NULL },
        { "Worker", "Environment", "1X=a", "", ENV_NAME },
        { "Worker", "Environment", "A=1 B", "", ENV_NAME },
        { "Worker", "Environment", "A-B=1", "", ENV_NAME },
        { "Worker", "Environment", "A=1 'B=2", "",
          "expected NAME=VALUE assignments separated by blanks, matching quotes" },
        { "Worker", "Environment", "A=1 WORKER_INDEX=2", "",
          "WORKER_INDEX is set by corral for each worker and cannot be overridden" },
        { "Worker", "Environment", "LISTEN_PID=1", "",
          "LISTEN_PID is set by corral for each worker and cannot be overridden" },
        { "Worker", "EnvironmentFile", "/etc/app.env", "", NULL },
        { "Worker", "EnvironmentFile", "-/etc/app.env", "", NULL },
        { "Worker", "EnvironmentFile", "app.env", "", "expected an absolute path, optionally after '-'" },
        { "Worker", "WorkingDirectory", "/srv/app/current", "", NULL },
        { "Worker", "WorkingDirectory", "srv", "", "expected an absolute path" },
        { "Worker", "WorkingDirectory", "-/srv", "", "expected an absolute path" },
};

Test(config, every_key_bound_in_file, .fini = remove_config) {
        for (size_t i = 0; i < ELEMENTSOF(bound_cases); i++) {
                const BoundCase *t = &bound_cases[i];
                _cleanup_free_ char *content = NULL, *error = NULL, *want = NULL;
                int r;

                content = strdup_printf("[%s]\n%s=%s\n%s", t->section, t->key, t->value, t->extra);
                error = load(content, NULL, 0, true_cmd, &r, NULL);
                if (!t->explain) {
                        cr_assert_eq(r, 0, "%s=%s: %s", t->key, t->value, error);
                        continue;
                }
                want = strdup_printf("%s:2: %s=: invalid value '%s': %s", config_path, t->key, t->value,
                                     t->explain);
                cr_assert_str_eq(error, want);
        }
}

Test(config, every_key_bound_on_command_line, .fini = remove_config) {
        size_t n_keys;
        const ConfigKeyInfo *keys = config_key_table(&n_keys);

        for (size_t i = 0; i < ELEMENTSOF(bound_cases); i++) {
                const BoundCase *t = &bound_cases[i];
                _cleanup_free_ char *content = NULL, *error = NULL, *want = NULL;
                const char *option = NULL;
                int r;

                for (size_t k = 0; k < n_keys; k++)
                        if (streq(keys[k].key, t->key))
                                option = keys[k].option;
                cr_assert_not_null(option);

                /* The companion settings go in the file, the value under test on the command line. */
                content = strdup_printf("[%s]\n%s", t->section, t->extra);
                error = load(content, &(ConfigArg){ option, t->value }, 1, true_cmd, &r, NULL);
                if (!t->explain) {
                        cr_assert_eq(r, 0, "--%s=%s: %s", option, t->value, error);
                        continue;
                }
                want = strdup_printf("--%s: invalid value '%s': %s", option, t->value, t->explain);
                cr_assert_str_eq(error, want);
        }
}

Test(config, bad_value_names_file_line_and_key, .fini = remove_config) {
        assert_error(
                "# comment\n"
                "\n"
                "[Worker]\n"
                "; another comment\n"
                "Count=many\n",
                NULL, 0, "%s:5: Count=: invalid value 'many': expected a number, 'auto' or 'auto-K'");
}

Test(config, unknown_section_is_reported_at_its_header, .fini = remove_config) {
        assert_error("[Worker]\nCount=2\n[Workers]\nCount=3\n", NULL, 0, "%s:3: Unknown section 'Workers'");
        assert_error("[Recyle]\n", NULL, 0, "%s:1: Unknown section 'Recyle'");
        assert_error("[worker]\n", NULL, 0, "%s:1: Unknown section 'worker'");
}

Test(config, unknown_key_and_case_sensitivity, .fini = remove_config) {
        assert_error("[Worker]\nFoo=1\n", NULL, 0, "%s:2: [Worker] Foo=: unknown key");
        assert_error("[Worker]\ncount=2\n", NULL, 0, "%s:2: [Worker] count=: unknown key");
        assert_error("[Reload]\nCount=2\n", NULL, 0, "%s:2: [Reload] Count=: unknown key");
}

Test(config, first_error_wins, .fini = remove_config) {
        assert_error("[Worker]\nCount=2\nReadyMode=never\nCount=x\nFoo=bar\n[Nope]\n", NULL, 0,
                     "%s:3: ReadyMode=: invalid value 'never': expected 'notify', 'exec' or 'delay'");
}

Test(config, syntax_errors_have_line_numbers, .fini = remove_config) {
        assert_error("[Worker]\nCount 2\n", NULL, 0,
                     "%s:2: Syntax error: expected '[Section]', 'Key=value' or a comment");
        assert_error("[Worker]\nCount: 2\n", NULL, 0,
                     "%s:2: Syntax error: expected '[Section]', 'Key=value' or a comment");
        assert_error("\n[Worker\n", NULL, 0, "%s:2: Syntax error: missing ']'");
        assert_error("[Worker] Count=2\n", NULL, 0, "%s:1: Syntax error: text after ']'");
        assert_error("Count=2\n", NULL, 0, "%s:1: Count=: Key outside of a section");
}

/* A string of n copies of c. */
static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);

        cr_assert_not_null(s);
        memset(s, c, n);
        s[n] = 0;
        return s;
}

Test(config, long_line_is_read_whole, .fini = remove_config) {
        _cleanup_free_ char *value = repeat('x', 60000), *content = NULL;
        _cleanup_(config_freep) Config *c = NULL;

        content = strdup_printf("[Worker]\nExecStart=/bin/echo %s  ; comment\nCount=2\n", value);
        c = load_command_ok(content);
        cr_assert_eq(strv_length(c->exec_start), 2);
        cr_assert_str_eq(c->exec_start[1], value);
        cr_assert_eq(c->count_value, 2);
}

Test(config, overlong_line_is_an_error, .fini = remove_config) {
        _cleanup_free_ char *content = NULL, *error = NULL, *value = repeat('x', 70000),
                            *half = repeat('y', 40000);
        int r;

        content = strdup_printf("[Worker]\nExecStart=/bin/echo %s\nCount=2\n", value);
        error = load(content, NULL, 0, true_cmd, &r, NULL);
        cr_assert_eq(r, -EINVAL);
        cr_assert(startswith(error, config_path), "%s", error);
        cr_assert_not_null(strstr(error, ":2: Line too long (more than 65534 characters)"), "%s", error);

        free(content);
        free(error);
        content = strdup_printf("[Worker]\nExecStart=/bin/echo\n %s\n %s\nCount=2\n", half, half);
        error = load(content, NULL, 0, true_cmd, &r, NULL);
        cr_assert_eq(r, -EINVAL);
        cr_assert_not_null(
                strstr(error, ":2: Line too long (more than 65534 characters, continuation lines joined)"),
                "%s", error);
}

static void assert_strv(char *const *l, const char *const *want, size_t n) {
        cr_assert_eq(strv_length(l), n);
        for (size_t i = 0; i < n; i++)
                cr_assert_str_eq(l[i], want[i], "word %zu", i);
}

Test(config, continuation_lines_join_with_a_space, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = load_command_ok(
                "[Worker]\n"
                "ExecStart=/usr/bin/app --workers 4   ; the server\n"
                "    --bind \"127.0.0.1:80 \"\n"
                "  # a comment between the lines\n"
                "\t--log-config='a;b' ; the logging\n"
                "  ; another\n"
                "    --name=\\\"x\\\"\n"
                "Count=3\n");
        const char *const want[] = { "/usr/bin/app",  "--workers",        "4",           "--bind",
                                     "127.0.0.1:80 ", "--log-config=a;b", "--name=\"x\"" };

        assert_strv(c->exec_start, want, ELEMENTSOF(want));
        cr_assert_eq(c->count_value, 3);
}

Test(config, continuation_ends_at_a_blank_line_an_unindented_line_or_a_key, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = load_command_ok(
                "[Worker]\n"
                "ExecStart=/usr/bin/app\n"
                "  a\n"
                "  Count=2\n"
                "    ReadyMode=exec\n"
                "Environment=A=1\n"
                "\n"
                "  StopSignal=INT\n"
                "Environment=B=2\n"
                "  C=3\n"
                "# not indented: the end\n"
                "  RelaySignals=none\n");

        cr_assert_eq(strv_length(c->exec_start), 2);
        cr_assert_eq(c->count_value, 2);
        cr_assert_eq(c->ready_mode, READY_EXEC);
        cr_assert_eq(c->stop_signal, SIGINT);
        cr_assert_eq(c->relay_signals, 0);
        cr_assert_eq(strv_length(c->environment), 3);
        cr_assert_str_eq(c->environment[2], "C=3");
}

#define CONTINUATION_ERROR \
        "Continuation line: only ExecStart= and Environment= in [Worker] may continue on indented lines"

Test(config, continuation_of_other_keys_is_an_error, .fini = remove_config) {
        assert_error("[Worker]\nCount=2\n\n  # fine\nStopSignal=TERM\n  # fine too\n  INT\n", NULL, 0,
                     "%s:7: " CONTINUATION_ERROR);
        assert_error("[Socket]\nListen=127.0.0.1:1\n 127.0.0.1:2\n", NULL, 0, "%s:3: " CONTINUATION_ERROR);
        /* An unknown key is reported as such, at its own line. */
        assert_error("[Worker]\nExecStrat=/bin/true\n  -x\n", NULL, 0,
                     "%s:2: [Worker] ExecStrat=: unknown key");
}

Test(config, error_in_a_joined_value_names_its_first_line, .fini = remove_config) {
        assert_error("[Worker]\nCount=1\nEnvironment=A=1\n  B=2\n  LISTEN_FDS=3\n", NULL, 0,
                     "%s:3: Environment=: invalid value 'A=1 B=2 LISTEN_FDS=3': LISTEN_FDS is set by corral "
                     "for each worker and cannot be overridden");
        assert_error("[Worker]\nExecStart=/bin/true\n  'open\n", NULL, 0,
                     "%s:2: ExecStart=: invalid value '/bin/true 'open': expected a command line with "
                     "matching quotes and no trailing backslash");
}

Test(config, environment_accumulates_quoted_and_empty_resets, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = NULL;
        const ConfigArg args[] = {
                { "environment", "FROM_OPTION=1" },
        };

        c = load_ok(
                "[Worker]\n"
                "Environment=GONE=1\n"
                "Environment=\n"
                "Environment=A=1 \"B=two words\" C='it''s' D=\"x=\\\"y\\\"\"\n"
                "Environment=A=2\n"
                "EnvironmentFile=/etc/a.env\n"
                "EnvironmentFile=-/etc/b.env\n"
                "WorkingDirectory=/srv/x\n"
                "WorkingDirectory=/srv/app\n",
                args, ELEMENTSOF(args));
        const char *const want[] = { "A=1", "B=two words", "C=its", "D=x=\"y\"", "A=2", "FROM_OPTION=1" };

        assert_strv(c->environment, want, ELEMENTSOF(want));
        cr_assert_eq(strv_length(c->environment_files), 2);
        cr_assert_str_eq(c->environment_files[1], "-/etc/b.env");
        cr_assert_str_eq(c->working_directory, "/srv/app");
        config_free(c);

        c = load_ok("[Worker]\nEnvironment=A=1\nEnvironmentFile=/etc/a.env\nWorkingDirectory=/srv\n",
                    (const ConfigArg[]){
                            { "environment", "" }, { "environment-file", "" }, { "working-directory", "" } },
                    3);
        cr_assert_null(c->environment);
        cr_assert_null(c->environment_files);
        cr_assert_null(c->working_directory);
}

Test(config, comments_blank_lines_indentation_and_crlf, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = load_ok(
                "\xEF\xBB\xBF# BOM, then a comment\r\n"
                "; semicolon comment\r\n"
                "\r\n"
                "[Worker]\r\n"
                "    Count = 3\r\n"
                "\tReadyMode=exec          ; notify | exec | delay\r\n"
                "  # indented comment\r\n"
                "StopSignal=SIGINT\r\n",
                NULL, 0);

        cr_assert_eq(c->count_mode, COUNT_FIXED);
        cr_assert_eq(c->count_value, 3);
        cr_assert_eq(c->ready_mode, READY_EXEC);
        cr_assert_eq(c->stop_signal, SIGINT);
}

Test(config, line_numbers_count_crlf_lines, .fini = remove_config) {
        assert_error("[Worker]\r\n\r\n# x\r\nCount=none\r\n", NULL, 0,
                     "%s:4: Count=: invalid value 'none': expected a number, 'auto' or 'auto-K'");
}

Test(config, repeated_scalar_key_last_wins, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = load_ok(
                "[Worker]\nCount=2\nCount=5\n[Reload]\nMaxSurge=3\n"
                "[Worker]\nCount=7\n",
                NULL, 0);

        cr_assert_eq(c->count_value, 7);
        cr_assert_eq(c->max_surge, 3);
}

Test(config, empty_assignment_restores_default, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = load_ok(
                "[Worker]\nCount=2\nCount=\nStopSignal=INT\nStopSignal=\n"
                "[Restart]\nRestartPreventExitStatus=3\n"
                "RestartPreventExitStatus=\n",
                NULL, 0);

        cr_assert_eq(c->count_mode, COUNT_AUTO);
        cr_assert_eq(c->stop_signal, SIGTERM);
        cr_assert_eq(c->restart_prevent_exit_status, -1);
}

Test(config, listen_accumulates_and_empty_resets, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = NULL;
        const ConfigArg args[] = {
                { "listen", "udp:[::1]:5353" },
        };

        c = load_ok("[Socket]\nListen=127.0.0.1:1\nListen=\nListen=127.0.0.1:2\nListen=[::1]:3\n", args,
                    ELEMENTSOF(args));
        cr_assert_eq(strv_length(c->listen), 3);
        cr_assert_str_eq(c->listen[0], "127.0.0.1:2");
        cr_assert_str_eq(c->listen[1], "[::1]:3");
        cr_assert_str_eq(c->listen[2], "udp:[::1]:5353");
}

Test(config, listen_empty_on_command_line_clears_file_list, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = NULL;
        const ConfigArg args[] = {
                { "listen", "" },
                { "listen", "unix:/tmp/x.sock" },
        };

        c = load_ok("[Socket]\nListen=127.0.0.1:1\n", args, ELEMENTSOF(args));
        cr_assert_eq(strv_length(c->listen), 1);
        cr_assert_str_eq(c->listen[0], "unix:/tmp/x.sock");
}

Test(config, bad_listen_address_is_a_config_error, .fini = remove_config) {
        assert_error("[Socket]\nListen=127.0.0.1:80\nListen=localhost:80\n", NULL, 0,
                     "%s:3: Listen=: invalid value 'localhost:80': invalid IPv4 address");
        assert_error(NULL, &(ConfigArg){ "listen", "127.0.0.1" }, 1,
                     "--listen: invalid value '127.0.0.1': missing port");
}

Test(config, command_line_overrides_file, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = NULL;
        const ConfigArg args[] = {
                { "count", "4" },
                { "ready-timeout", "5s" },
                { "count", "6" },
                { "stop-signal", "QUIT" },
        };

        c = load_ok("[Worker]\nCount=2\nReadyTimeoutSec=10s\nStopTimeoutSec=3s\n", args, ELEMENTSOF(args));
        cr_assert_eq(c->count_mode, COUNT_FIXED);
        cr_assert_eq(c->count_value, 6);
        cr_assert_eq(c->ready_timeout_usec, 5 * USEC_PER_SEC);
        cr_assert_eq(c->stop_timeout_usec, 3 * USEC_PER_SEC);
        cr_assert_eq(c->stop_signal, SIGQUIT);
}

Test(config, command_line_errors_name_the_option, .fini = remove_config) {
        assert_error(NULL, &(ConfigArg){ "count", "many" }, 1,
                     "--count: invalid value 'many': expected a number, 'auto' or 'auto-K'");
        assert_error(NULL, &(ConfigArg){ "frobnicate", "1" }, 1, "--frobnicate: unknown option");
        assert_error(NULL, &(ConfigArg){ "Count", "1" }, 1, "--Count: unknown option");
}

Test(config, command_after_dashes_replaces_exec_start, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        char *const cmd[] = { (char *) "python3", (char *) "-m", (char *) "http.server", NULL };

        error = load("[Worker]\nExecStart=/usr/bin/node server.js\n", NULL, 0, cmd, NULL, &c);
        cr_assert_null(error, "%s", error);
        cr_assert_eq(strv_length(c->exec_start), 3);
        cr_assert_str_eq(c->exec_start[0], "python3");
        cr_assert_str_eq(c->exec_start[2], "http.server");
}

Test(config, exec_start_from_file_and_option, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        char *const empty[] = { NULL };

        error = load("[Worker]\nExecStart=/bin/sh -c 'exec sleep 1'\n", NULL, 0, empty, NULL, &c);
        cr_assert_null(error, "%s", error);
        cr_assert_eq(strv_length(c->exec_start), 3);
        cr_assert_str_eq(c->exec_start[2], "exec sleep 1");
        c = config_free(c);

        error = mfree_test(error);
        error = load(NULL, &(ConfigArg){ "exec-start", "/bin/echo a\\ b" }, 1, NULL, NULL, &c);
        cr_assert_null(error, "%s", error);
        cr_assert_str_eq(c->exec_start[1], "a b");
}

Test(config, bad_exec_start_is_reported, .fini = remove_config) {
        assert_error("[Worker]\nExecStart=/bin/sh -c 'oops\n", NULL, 0,
                     "%s:2: ExecStart=: invalid value '/bin/sh -c 'oops': expected a command line with "
                     "matching quotes and no trailing backslash");
}

Test(config, no_command_is_an_error, .fini = remove_config) {
        _cleanup_free_ char *error = NULL, *want = NULL;
        Config *c = NULL;
        int r;

        r = config_load(NULL, NULL, 0, NULL, &c, &error);
        cr_assert_eq(r, -EINVAL);
        cr_assert_null(c);
        cr_assert_str_eq(error, "no command: set ExecStart= in [Worker] or pass one after --");

        error = mfree_test(error);
        r = config_load(write_config("[Worker]\nExecStart=/bin/true\nExecStart=\n"), NULL, 0, NULL, &c,
                        &error);
        cr_assert_eq(r, -EINVAL);
        want = strdup_printf("%s: no command: set ExecStart= in [Worker] or pass one after --", config_path);
        cr_assert_str_eq(error, want);
}

Test(config, empty_program_name_is_no_command, .fini = remove_config) {
        _cleanup_free_ char *error = NULL, *want = NULL;
        int r;

        error = load("[Worker]\nExecStart='' --flag\n", NULL, 0, NULL, &r, NULL);
        cr_assert_eq(r, -EINVAL);
        want = expand_path("%s: no command: set ExecStart= in [Worker] or pass one after --");
        cr_assert_str_eq(error, want);
}

Test(config, directory_instead_of_file_is_an_error) {
        _cleanup_free_ char *error = NULL;
        Config *c = NULL;

        cr_assert_eq(config_load("/tmp", NULL, 0, true_cmd, &c, &error), -EISDIR);
        cr_assert_str_eq(error, "Failed to read configuration file /tmp: Is a directory");
}

Test(config, verify_backoff_not_below_restart_delay, .fini = remove_config) {
        assert_error("[Restart]\nRestartSec=2s\nBackoffMaxSec=1s\n", NULL, 0,
                     "%s: BackoffMaxSec=1s is less than RestartSec=2s, the first backoff delay");
        assert_error(NULL, &(ConfigArg){ "restart-delay", "1min" }, 1,
                     "BackoffMaxSec=30s is less than RestartSec=1min, the first backoff delay");
}

Test(config, verify_ready_delay_below_timeout_only_in_delay_mode, .fini = remove_config) {
        _cleanup_(config_freep) Config *c = NULL;

        assert_error("[Worker]\nReadyMode=delay\nReadyDelaySec=30s\n", NULL, 0,
                     "%s: ReadyDelaySec=30s must be less than ReadyTimeoutSec=30s with ReadyMode=delay");
        c = load_ok("[Worker]\nReadyMode=notify\nReadyDelaySec=1h\n", NULL, 0);
        cr_assert_eq(c->ready_delay_usec, USEC_PER_HOUR);
}

Test(config, verify_rolling_restart_can_progress, .fini = remove_config) {
        assert_error("[Reload]\nMaxSurge=0\n", NULL, 0,
                     "%s: MaxSurge=0 and MaxUnavailable=0: a rolling restart could never make progress");
}

Test(config, missing_file_is_enoent, .fini = remove_config) {
        _cleanup_free_ char *error = NULL;
        Config *c = NULL;
        int r;

        r = config_load("/nonexistent/corral.conf", NULL, 0, true_cmd, &c, &error);
        cr_assert_eq(r, -ENOENT);
        cr_assert_null(c);
        cr_assert_str_eq(error,
                         "Failed to read configuration file /nonexistent/corral.conf: "
                         "No such file or directory");
}

Test(config, error_message_is_optional, .fini = remove_config) {
        Config *c = NULL;

        cr_assert_eq(config_load(write_config("[Worker]\nCount=x\n"), NULL, 0, true_cmd, &c, NULL), -EINVAL);
        cr_assert_null(c);
}

Test(config, worker_count_resolves_auto) {
        Config c = { .count_mode = COUNT_FIXED, .count_value = 5 };

        cr_assert_eq(config_worker_count(&c, 64), 5);
        c = (Config){ .count_mode = COUNT_AUTO, .count_value = 0 };
        cr_assert_eq(config_worker_count(&c, 8), 8);
        cr_assert_eq(config_worker_count(&c, 0), 1);
        cr_assert_eq(config_worker_count(&c, 100000), COUNT_MAX);
        c = (Config){ .count_mode = COUNT_AUTO, .count_value = 2 };
        cr_assert_eq(config_worker_count(&c, 8), 6);
        cr_assert_eq(config_worker_count(&c, 2), 1);
        cr_assert_eq(config_worker_count(&c, 1), 1);
}

Test(config, balance_reuseport_needs_tcp_listeners) {
        char *tcp[] = { (char *) "127.0.0.1:8080", (char *) "http2=[::1]:8443", NULL };
        char *mixed[] = { (char *) "127.0.0.1:8080", (char *) "dns=udp:127.0.0.1:53", NULL };
        Config c = { .listen = tcp, .balance = BALANCE_REUSEPORT };
        char *error = NULL;

        cr_assert_eq(balance_mode_from_string("reuseport"), BALANCE_REUSEPORT);
        cr_assert_eq(balance_mode_from_string("shared"), BALANCE_SHARED);
        cr_assert_eq(balance_mode_from_string("round-robin"), _BALANCE_MODE_INVALID);
        cr_assert_eq(config_check_balance(&c, &error), 0);
        c.listen = mixed;
        cr_assert_eq(config_check_balance(&c, &error), -EPROTONOSUPPORT);
        cr_assert_str_eq(error, "Balance=reuseport works with TCP sockets only, and Listen=dns=udp:127.0.0.1:53 is "
                                "not one");
        free(error);
        c.balance = BALANCE_SHARED;
        cr_assert_eq(config_check_balance(&c, &error), 0);
}

Test(config, key_table_is_complete_and_consistent) {
        size_t n;
        const ConfigKeyInfo *keys = config_key_table(&n);

        cr_assert_eq(n, 37);
        for (size_t i = 0; i < n; i++) {
                cr_assert_not_null(keys[i].section);
                cr_assert_not_null(keys[i].key);
                cr_assert_not_null(keys[i].option);
                cr_assert_not_null(keys[i].metavar);
                /* Only the command and the socket list have no default worth printing. */
                if (!streq(keys[i].key, "ExecStart") && !streq(keys[i].key, "Listen"))
                        cr_assert_not_null(strstr(keys[i].help, "(default: "), "%s: no default in help",
                                           keys[i].key);
                for (size_t j = 0; j < i; j++) {
                        cr_assert_str_neq(keys[i].option, keys[j].option);
                        cr_assert(!keys[i].short_option || keys[i].short_option != keys[j].short_option);
                }
        }
        cr_assert_str_eq(keys[1].key, "Count");
        cr_assert_eq(keys[1].short_option, 'n');
        cr_assert_str_eq(keys[1].help,
                         "Number of workers: a number, one per usable CPU, or that minus K "
                         "(default: auto)");
}

Test(config, ready_mode_strings) {
        cr_assert_str_eq(ready_mode_to_string(READY_NOTIFY), "notify");
        cr_assert_str_eq(ready_mode_to_string(READY_EXEC), "exec");
        cr_assert_str_eq(ready_mode_to_string(READY_DELAY), "delay");
        cr_assert_null(ready_mode_to_string(_READY_MODE_MAX));
        cr_assert_eq(ready_mode_from_string("delay"), READY_DELAY);
        cr_assert_eq(ready_mode_from_string("Delay"), _READY_MODE_INVALID);
        cr_assert_eq(ready_mode_from_string(NULL), _READY_MODE_INVALID);
}

Test(config, user_and_group_take_names_or_numbers, .fini = remove_config) {
        Config *c = load_ok("[Worker]\nUser=www-data\nGroup=65534\n", NULL, 0);

        cr_assert_str_eq(c->user, "www-data");
        cr_assert_str_eq(c->group, "65534");
        config_free(c);
        /* Empty resets to corral's own. */
        c = load_ok("[Worker]\nUser=nobody\nUser=\n", NULL, 0);
        cr_assert_null(c->user);
        cr_assert_null(c->group);
        config_free(c);
        assert_error("[Worker]\nUser=-rf\n", NULL, 0,
                     "%s:2: User=: invalid value '-rf': expected a user or group name (1 to 32 of A-Z a-z 0-9 _ . -, "
                     "not first: -) or a number");
        assert_error("[Worker]\nGroup=a/b\n", NULL, 0,
                     "%s:2: Group=: invalid value 'a/b': expected a user or group name (1 to 32 of A-Z a-z 0-9 _ . "
                     "-, not first: -) or a number");
}
