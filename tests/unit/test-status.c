/* SPDX-License-Identifier: MIT */
/* Tests for status.c: the exact text of `corral status` (table and JSON), /health and /metrics for fixed
 * snapshots, and the reload counters. */

#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "httpd.h"
#include "status.h"

/* The table shows corral's start in local time: make that UTC. */
static void utc(void) {
        setenv("TZ", "UTC", 1);
        tzset();
}

TestSuite(status, .timeout = 10, .init = utc);

typedef enum Scenario {
        SCENARIO_RUNNING,   /* 3 of 3 ready, no rows */
        SCENARIO_RELOADING, /* generation 3 replacing 2: slot 2's old worker ready, its new one starting */
        SCENARIO_DEGRADED,  /* slot 2 throttled after crashes: 2 of 3 ready */
        SCENARIO_DRAINED,   /* running, /health drained, no rows; no config file, sockets, endpoint, accounting */
        SCENARIO_STOPPING,  /* every worker told to stop, no rows */
} Scenario;

typedef struct Snapshot {
        StatusPool pool;
        const char *state; /* the pool state as the formatters spell it */
        const StatusWorker *rows;
        size_t n;
} Snapshot;

#define SEC(s) ((usec_t) (s) * USEC_PER_SEC)
#define MSEC(ms) ((usec_t) (ms) * USEC_PER_MSEC)

/* Slot 0 exited with a status long ago, slot 1 dumped core, slot 2 was SIGKILLed and is being replaced. */
static const StatusWorker rows_reloading[] = {
        { .slot = 0, .pid = 4242, .generation = 3, .state = WORKER_READY, .uptime_usec = SEC(307),
          .ready_after_usec = MSEC(850), .memory_bytes = 13107200, .cpu_usec = MSEC(15350), .restarts = 1,
          .last_exit_code = CLD_EXITED, .last_exit_status = 3,
          .last_exit_ago_usec = SEC(41 * 86400 + 2 * 3600) },
        { .slot = 1, .pid = 4243, .generation = 3, .state = WORKER_READY, .uptime_usec = MSEC(12300),
          .ready_after_usec = MSEC(1200), .memory_bytes = 524288000, .cpu_usec = MSEC(12300), .restarts = 2,
          .last_exit_code = CLD_DUMPED, .last_exit_status = SIGSEGV, .last_exit_ago_usec = MSEC(12500) },
        { .slot = 2, .pid = 4100, .generation = 2, .state = WORKER_READY, .uptime_usec = SEC(306),
          .ready_after_usec = MSEC(100), .memory_bytes = 1073741824, .cpu_usec = MSEC(3060), .restarts = 7,
          .last_exit_code = CLD_KILLED, .last_exit_status = SIGKILL, .last_exit_ago_usec = SEC(307) },
        { .slot = 2, .pid = 4251, .generation = 3, .state = WORKER_STARTING, .uptime_usec = MSEC(850),
          .memory_bytes = 1000, .restarts = 7, .last_exit_code = CLD_KILLED, .last_exit_status = SIGKILL,
          .last_exit_ago_usec = SEC(307) },
};

static const StatusCounters counters = {
        .crashes = 5,
        .failed_starts = 2,
        .recycles = { [RECYCLE_MEMORY] = 3, [RECYCLE_AGE] = 1, [RECYCLE_REQUEST] = 2, [RECYCLE_OOM] = 1 },
        .reloads_ok = 4,
        .reloads_failed = 1,
        .reload_buckets = { 1, 2, 1, 0, 0, 0, 0, 0, 0, 1 },
        .reload_seconds_sum = 700.25,
        .last_reload_end_usec = SEC(1712758834), /* 2024-04-10 14:20:34 UTC */
        .relayed_signals = 9,
};

static char *const command[] = { "/usr/bin/app", "--greeting", "hello world", NULL };
static const StatusSocket sockets[] = {
        { .name = "http", .address = "127.0.0.1:8080", .type = "stream", .has_queue = true, .queued = 3,
          .backlog = 4096 },
        { .name = "dns", .address = "udp:127.0.0.1:5353", .type = "datagram" },
};

/* The one place that builds a StatusPool; x.state is the state as the formatters must spell it. */
static Snapshot snapshot(Scenario s) {
        Snapshot x = {
                .pool = {
                        .name = "app", .control_path = "/run/corral/app/control", .pid = 1234, .version = "1.2.3",
                        .generation = 3, .ready = 3, .wanted = 3, .processes = 3,
                        .start_time_usec = SEC(1709283600), /* 2024-03-01 09:00:00 UTC */
                        .uptime_usec = SEC(45 * 86400 + 3 * 3600),
                        .command = command,
                        .sockets = sockets, .n_sockets = ELEMENTSOF(sockets),
                        .health_listen = "127.0.0.1:9100",
                        .config_path = "/etc/corral/app.conf",
                        .accounting = "cgroup-v2", .memory_source = "memory.current",
                        .notify_rejected = 17,
                        .output_dropped = 5,
                        .sample_busy_usec = 2250, .sample_longest_usec = 1500, .sample_batches = 2,
                        .counters = &counters,
                },
        };

        switch (s) {
        case SCENARIO_RUNNING:
                x.pool.state = POOL_RUNNING;
                x.state = "running";
                break;
        case SCENARIO_RELOADING:
                x.pool.state = POOL_RELOADING;
                x.state = "reloading";
                x.pool.processes = 4;
                x.pool.starting = 1;
                x.rows = rows_reloading;
                x.n = ELEMENTSOF(rows_reloading);
                break;
        case SCENARIO_DEGRADED:
                x.pool.state = POOL_DEGRADED;
                x.state = "degraded";
                x.pool.ready = x.pool.processes = 2;
                x.rows = rows_reloading;
                x.n = 2;
                break;
        case SCENARIO_DRAINED:
                x.pool.state = POOL_RUNNING;
                x.state = "running";
                x.pool.drained = true;
                x.pool.n_sockets = 0;
                x.pool.health_listen = x.pool.config_path = x.pool.accounting = x.pool.memory_source = NULL;
                break;
        case SCENARIO_STOPPING:
                x.pool.state = POOL_STOPPING;
                x.state = "stopping";
                x.pool.ready = 0;
                x.pool.stopping = 3;
                break;
        }
        return x;
}

typedef char *(*format_t)(const StatusPool *p, const StatusWorker *rows, size_t n);

static void expect_output(format_t format, Scenario s, const char *expected) {
        Snapshot x = snapshot(s);
        _cleanup_free_ char *text = format(&x.pool, x.rows, x.n);

        cr_assert_not_null(text);
        cr_assert_str_eq(text, expected, "got:\n%s\nexpected:\n%s", text, expected);
}

/* GET /health must answer code, and GET /health/ready the same but 200 for a 429; both bodies must say so
 * along with the snapshot's figures and the number of ready workers asked for (MinReady=, or all wanted). */
static void expect_health(const Snapshot *x, int code, unsigned min_ready) {
        const char *word = code == 200 ? "ok" : code == 429 ? "degraded" : "unavailable";
        _cleanup_free_ char *text = NULL, *ready_text = NULL, *expected = NULL;
        int r = status_format_health(&x->pool, HEALTH_CHECK_GRADED, &text);
        int r_ready = status_format_health(&x->pool, HEALTH_CHECK_READY, &ready_text);

        cr_assert_eq(r, code, "state '%s', %u/%u ready, min %u, drained %d: %d", x->state, x->pool.ready,
                     x->pool.wanted, x->pool.min_ready, x->pool.drained, r);
        cr_assert_eq(r_ready, code == 429 ? 200 : code, "/health/ready: %d", r_ready);
        expected = strdup_printf("{\"status\":\"%s\",\"state\":\"%s\",\"ready\":%u,\"wanted\":%u,"
                                 "\"min_ready\":%u,\"generation\":%u,\"drained\":%s}\n",
                                 word, x->state, x->pool.ready, x->pool.wanted, min_ready, x->pool.generation,
                                 x->pool.drained ? "true" : "false");
        cr_assert_not_null(text);
        cr_assert_str_eq(text, expected);
        cr_assert_str_eq(ready_text, expected);
}

/* The agent-check line for the snapshot. */
static void expect_agent(const Snapshot *x, const char *expected) {
        _cleanup_free_ char *text = status_format_agent(&x->pool);

        cr_assert_not_null(text);
        cr_assert_str_eq(text, expected);
}

/* corral's facts in the table, the same in every scenario but the drained one. */
#define TABLE_FACTS                                                                                         \
        "     since: 2024-03-01 09:00:00 UTC; up 45d03h\n"                                                  \
        "   command: /usr/bin/app --greeting 'hello world'\n"                                               \
        "   sockets: http=127.0.0.1:8080 (3 waiting of 4096), dns=udp:127.0.0.1:5353 (datagram)\n"                              \
        "    health: 127.0.0.1:9100\n"                                                                      \
        "   control: /run/corral/app/control\n"                                                             \
        "    config: /etc/corral/app.conf\n"                                                                \
        "accounting: cgroup-v2, memory from memory.current\n"
#define TABLE_COLUMNS "SLOT PID     GENERATION STATE    UPTIME READY AFTER MEMORY  CPU%   RESTARTS LAST EXIT\n"

Test(status, table_of_a_reload_in_progress) {
        expect_output(status_format_table, SCENARIO_RELOADING,
                      "ok\n"
                      "app: corral 1.2.3, pid 1234: reloading, generation 3, 3/3 workers ready\n"
                      TABLE_FACTS
                      "    memory: 1.5G in 4 workers\n"
                      "   reloads: 4 ok, 1 failed\n"
                      "\n"
                      TABLE_COLUMNS
                      "0    4242    3          ready    5m07s  850ms       12.5M   5.0    1        status 3 41d02h ago\n"
                      "1    4243    3          ready    12.3s  1.2s        500.0M  100.0  2        SEGV+core 12.5s ago\n"
                      "2    4100    2          ready    5m06s  100ms       1.0G    1.0    7        KILL 5m07s ago\n"
                      "2    4251    3          starting 850ms  -           1000B   0.0    7        KILL 5m07s ago\n");
}

Test(status, table_of_a_degraded_pool) {
        expect_output(status_format_table, SCENARIO_DEGRADED,
                      "degraded\n"
                      "app: corral 1.2.3, pid 1234: degraded, generation 3, 2/3 workers ready\n"
                      TABLE_FACTS
                      "    memory: 512.5M in 2 workers\n"
                      "   reloads: 4 ok, 1 failed\n"
                      "\n"
                      TABLE_COLUMNS
                      "0    4242    3          ready    5m07s  850ms       12.5M   5.0    1        status 3 41d02h ago\n"
                      "1    4243    3          ready    12.3s  1.2s        500.0M  100.0  2        SEGV+core 12.5s ago\n");
}

Test(status, table_of_a_drained_pool_without_rows_sockets_config_or_accounting) {
        expect_output(status_format_table, SCENARIO_DRAINED,
                      "ok\n"
                      "app: corral 1.2.3, pid 1234: running, generation 3, 3/3 workers ready\n"
                      "     since: 2024-03-01 09:00:00 UTC; up 45d03h\n"
                      "   command: /usr/bin/app --greeting 'hello world'\n"
                      "   sockets: none\n"
                      "    health: none\n   control: /run/corral/app/control\n"
                      "    config: none (command line only)\n"
                      "accounting: none\n"
                      "    memory: -\n"
                      "   reloads: 4 ok, 1 failed; /health drained\n"
                      "\n"
                      TABLE_COLUMNS);
}

Test(status, table_of_a_stopping_pool_is_degraded) {
        expect_output(status_format_table, SCENARIO_STOPPING,
                      "degraded\n"
                      "app: corral 1.2.3, pid 1234: stopping, generation 3, 0/3 workers ready\n"
                      TABLE_FACTS
                      "    memory: -\n"
                      "   reloads: 4 ok, 1 failed\n"
                      "\n"
                      TABLE_COLUMNS);
}

/* The JSON object's fields before "memory_bytes", the same in every scenario but the drained one. */
#define JSON_FACTS                                                                                          \
        "\"start_time_usec\":1709283600000000,\"uptime_usec\":3898800000000,"                               \
        "\"command\":[\"/usr/bin/app\",\"--greeting\",\"hello world\"],"                                    \
        "\"sockets\":[{\"name\":\"http\",\"address\":\"127.0.0.1:8080\",\"type\":\"stream\",\"queued\":3,\"backlog\":4096},"              \
        "{\"name\":\"dns\",\"address\":\"udp:127.0.0.1:5353\",\"type\":\"datagram\"}],"                     \
        "\"health_listen\":\"127.0.0.1:9100\",\"config\":\"/etc/corral/app.conf\","                         \
        "\"accounting\":{\"backend\":\"cgroup-v2\",\"memory_source\":\"memory.current\"},"

Test(status, json_of_a_reload_in_progress) {
        expect_output(
                status_format_json, SCENARIO_RELOADING,
                "ok\n"
                "{\"name\":\"app\",\"pid\":1234,\"version\":\"1.2.3\",\"control\":\"/run/corral/app/control\",\"state\":\"reloading\",\"generation\":3,\"ready\":3,"
                "\"wanted\":3,\"processes\":4,\"drained\":false,"
                JSON_FACTS
                "\"memory_bytes\":1611138024,\"reloads_ok\":4,\"reloads_failed\":1,\"notify_rejected\":17,"
                "\"workers\":["
                "{\"slot\":0,\"pid\":4242,\"generation\":3,\"state\":\"ready\",\"uptime_usec\":307000000,"
                "\"ready_after_usec\":850000,\"memory_bytes\":13107200,\"cpu_usec\":15350000,\"restarts\":1,"
                "\"last_exit\":{\"code\":\"exited\",\"status\":3,\"signal\":null,\"core_dumped\":false,"
                "\"ago_usec\":3549600000000}},"
                "{\"slot\":1,\"pid\":4243,\"generation\":3,\"state\":\"ready\",\"uptime_usec\":12300000,"
                "\"ready_after_usec\":1200000,\"memory_bytes\":524288000,\"cpu_usec\":12300000,\"restarts\":2,"
                "\"last_exit\":{\"code\":\"dumped\",\"status\":11,\"signal\":\"SEGV\",\"core_dumped\":true,"
                "\"ago_usec\":12500000}},"
                "{\"slot\":2,\"pid\":4100,\"generation\":2,\"state\":\"ready\",\"uptime_usec\":306000000,"
                "\"ready_after_usec\":100000,\"memory_bytes\":1073741824,\"cpu_usec\":3060000,\"restarts\":7,"
                "\"last_exit\":{\"code\":\"killed\",\"status\":9,\"signal\":\"KILL\",\"core_dumped\":false,"
                "\"ago_usec\":307000000}},"
                "{\"slot\":2,\"pid\":4251,\"generation\":3,\"state\":\"starting\",\"uptime_usec\":850000,"
                "\"ready_after_usec\":null,\"memory_bytes\":1000,\"cpu_usec\":0,\"restarts\":7,"
                "\"last_exit\":{\"code\":\"killed\",\"status\":9,\"signal\":\"KILL\",\"core_dumped\":false,"
                "\"ago_usec\":307000000}}"
                "]}\n");
}

Test(status, json_of_a_drained_pool_without_rows_sockets_config_or_accounting) {
        expect_output(
                status_format_json, SCENARIO_DRAINED,
                "ok\n"
                "{\"name\":\"app\",\"pid\":1234,\"version\":\"1.2.3\",\"control\":\"/run/corral/app/control\",\"state\":\"running\",\"generation\":3,\"ready\":3,"
                "\"wanted\":3,\"processes\":3,\"drained\":true,"
                "\"start_time_usec\":1709283600000000,\"uptime_usec\":3898800000000,"
                "\"command\":[\"/usr/bin/app\",\"--greeting\",\"hello world\"],\"sockets\":[],"
                "\"health_listen\":null,\"config\":null,\"accounting\":null,"
                "\"memory_bytes\":0,\"reloads_ok\":4,\"reloads_failed\":1,\"notify_rejected\":17,\"workers\":[]}\n");
}

Test(status, json_of_a_degraded_pool_with_a_slot_never_exited) {
        static const StatusWorker fresh = { .slot = 0, .pid = 1, .generation = 1, .state = WORKER_READY };
        Snapshot x = snapshot(SCENARIO_DEGRADED);
        _cleanup_free_ char *text = status_format_json(&x.pool, &fresh, 1);

        cr_assert_str_eq(text,
                         "degraded\n"
                         "{\"name\":\"app\",\"pid\":1234,\"version\":\"1.2.3\",\"control\":\"/run/corral/app/control\",\"state\":\"degraded\",\"generation\":3,\"ready\":2,"
                         "\"wanted\":3,\"processes\":2,\"drained\":false,"
                         JSON_FACTS
                         "\"memory_bytes\":0,\"reloads_ok\":4,\"reloads_failed\":1,\"notify_rejected\":17,"
                         "\"workers\":["
                         "{\"slot\":0,\"pid\":1,\"generation\":1,\"state\":\"ready\",\"uptime_usec\":0,"
                         "\"ready_after_usec\":null,\"memory_bytes\":0,\"cpu_usec\":0,\"restarts\":0,"
                         "\"last_exit\":null}]}\n");
}

/* Real-time signals have no fixed name (glibc keeps the first ones for itself), and some numbers none. */
Test(status, last_exit_names_real_time_signals_and_numbers_the_others) {
        const StatusWorker rows[] = {
                { .slot = 0, .pid = 10, .generation = 1, .state = WORKER_READY, .last_exit_code = CLD_KILLED,
                  .last_exit_status = SIGRTMIN + 3, .last_exit_ago_usec = SEC(2) },
                { .slot = 1, .pid = 11, .generation = 1, .state = WORKER_READY, .last_exit_code = CLD_KILLED,
                  .last_exit_status = SIGRTMIN, .last_exit_ago_usec = SEC(2) },
                { .slot = 2, .pid = 12, .generation = 1, .state = WORKER_READY, .last_exit_code = CLD_DUMPED,
                  .last_exit_status = 32, .last_exit_ago_usec = SEC(2) },
        };
        Snapshot x = snapshot(SCENARIO_DRAINED);
        _cleanup_free_ char *table = status_format_table(&x.pool, rows, ELEMENTSOF(rows));
        _cleanup_free_ char *json = status_format_json(&x.pool, rows, ELEMENTSOF(rows));

        cr_assert_not_null(strstr(table, "\n0    10      1          ready    0ms    -           -       0.0    0  "
                                         "      RTMIN+3 2.0s ago\n"), "%s", table);
        cr_assert_not_null(strstr(table, " RTMIN 2.0s ago\n"), "%s", table);
        cr_assert_not_null(strstr(table, " signal 32+core 2.0s ago\n"), "%s", table);
        cr_assert_not_null(strstr(json, "\"last_exit\":{\"code\":\"killed\",\"status\":37,\"signal\":\"RTMIN+3\","
                                        "\"core_dumped\":false,\"ago_usec\":2000000}"), "%s", json);
        cr_assert_not_null(strstr(json, "\"last_exit\":{\"code\":\"dumped\",\"status\":32,\"signal\":null,"
                                        "\"core_dumped\":true,\"ago_usec\":2000000}"), "%s", json);
}

/* A command line and a config path are anyone's bytes: the JSON stays JSON, the table stays one line each. */
Test(status, commands_and_paths_are_escaped) {
        static char *const odd[] = { "/opt/app", "say \"hi\"", "back\\slash", "it's", "tab\there", "\xc3\xa9t\xc3\xa9",
                                     "bad\xff\xc3(", "", NULL };
        Snapshot x = snapshot(SCENARIO_DRAINED);
        _cleanup_free_ char *table = NULL, *json = NULL;

        x.pool.command = odd;
        x.pool.config_path = "/etc/new\nline.conf";
        table = status_format_table(&x.pool, NULL, 0);
        json = status_format_json(&x.pool, NULL, 0);
        cr_assert_not_null(strstr(table, "\n   command: /opt/app 'say \"hi\"' 'back\\slash' 'it'\\''s' 'tab\\x09here' "
                                         "'\xc3\xa9t\xc3\xa9' 'bad\xff\xc3(' ''\n"), "%s", table);
        cr_assert_not_null(strstr(json, "\"command\":[\"/opt/app\",\"say \\\"hi\\\"\",\"back\\\\slash\",\"it's\","
                                        "\"tab\\u0009here\",\"\xc3\xa9t\xc3\xa9\",\"bad\\ufffd\\ufffd(\",\"\"]"),
                           "%s", json);
        cr_assert_not_null(strstr(json, "\"config\":\"/etc/new\\u000aline.conf\""), "%s", json);
        cr_assert_not_null(strstr(table, "\n    config: '/etc/new\\x0aline.conf'\n"), "%s", table);
}

Test(status, health_is_200_with_every_slot_ready) {
        Snapshot x = snapshot(SCENARIO_RUNNING);
        _cleanup_free_ char *text = NULL;

        /* Once to the letter; expect_health() builds the others the same way. */
        cr_assert_eq(status_format_health(&x.pool, HEALTH_CHECK_GRADED, &text), 200);
        cr_assert_str_eq(text, "{\"status\":\"ok\",\"state\":\"running\",\"ready\":3,\"wanted\":3,"
                               "\"min_ready\":3,\"generation\":3,\"drained\":false}\n");
        expect_health(&x, 200, 3);
        /* A roll that keeps every slot ready is healthy too. */
        x = snapshot(SCENARIO_RELOADING);
        expect_health(&x, 200, 3);
}

Test(status, health_is_503_below_min_ready_and_429_from_it_to_full_strength) {
        Snapshot x = snapshot(SCENARIO_DEGRADED);

        /* 2 of 3 ready. */
        expect_health(&x, 503, 3);
        x.pool.min_ready = 2;
        expect_health(&x, 429, 2);
        x.pool.min_ready = 1;
        expect_health(&x, 429, 1);
        x.pool.ready = 1;
        expect_health(&x, 429, 1);
        x.pool.ready = 0;
        expect_health(&x, 503, 1);
        /* A surge above wanted is full strength. */
        x.pool.ready = 4;
        expect_health(&x, 200, 1);
}

Test(status, health_min_ready_above_wanted_means_all) {
        Snapshot x = snapshot(SCENARIO_DEGRADED);

        /* 9 of 3 wanted asks for all 3: 2 ready are not enough, 3 are. */
        x.pool.min_ready = 9;
        expect_health(&x, 503, 3);
        x.pool.ready = 3;
        expect_health(&x, 200, 3);
}

Test(status, health_is_503_when_drained_or_stopping_whatever_is_ready) {
        Snapshot x = snapshot(SCENARIO_DRAINED);

        expect_health(&x, 503, 3);
        x = snapshot(SCENARIO_STOPPING);
        x.pool.ready = 3;
        expect_health(&x, 503, 3);
}

Test(status, health_is_503_for_an_empty_pool) {
        Snapshot x = snapshot(SCENARIO_RUNNING);

        x.pool.ready = x.pool.wanted = 0;
        expect_health(&x, 503, 0);
}

Test(status, agent_weight_follows_the_ready_share) {
        Snapshot x = snapshot(SCENARIO_RUNNING);

        expect_agent(&x, "up ready 100% #3/3 workers ready\n");
        x = snapshot(SCENARIO_DEGRADED);
        expect_agent(&x, "up ready 66% #2/3 workers ready\n");
        /* MinReady= is /health's bar: the agent gives a weight as long as one worker serves. */
        x.pool.min_ready = 3;
        x.pool.ready = 1;
        expect_agent(&x, "up ready 33% #1/3 workers ready\n");
        x.pool.ready = 4;
        expect_agent(&x, "up ready 100% #4/3 workers ready\n");
        /* Never 0%, which HAProxy would take for a drain. */
        x.pool.ready = 1;
        x.pool.wanted = 1000;
        expect_agent(&x, "up ready 1% #1/1000 workers ready\n");
}

Test(status, agent_says_down_drain_and_stopping) {
        Snapshot x = snapshot(SCENARIO_DEGRADED);

        x.pool.ready = 0;
        expect_agent(&x, "down #no worker ready (0/3)\n");
        x.pool.wanted = 0;
        expect_agent(&x, "down #no worker ready (0/0)\n");
        x = snapshot(SCENARIO_DRAINED);
        expect_agent(&x, "drain #drained\n");
        x.pool.ready = 0;
        expect_agent(&x, "drain #drained\n");
        x = snapshot(SCENARIO_STOPPING);
        x.pool.ready = 3;
        expect_agent(&x, "down #stopping\n");
        x.pool.drained = true;
        expect_agent(&x, "down #stopping\n");
}

/* The accept queue gauges: of the http socket, or of no socket at all (headers only). */
#define METRICS_QUEUE_LIMIT_HEAD                                                                            \
        "# HELP corral_listen_queue_limit How many connections a listening socket's accept queue holds.\n"  \
        "# TYPE corral_listen_queue_limit gauge\n"
#define METRICS_QUEUE_HTTP                                                                                  \
        "corral_listen_queue_length{socket=\"http\",address=\"127.0.0.1:8080\"} 3\n"                     \
        METRICS_QUEUE_LIMIT_HEAD                                                                            \
        "corral_listen_queue_limit{socket=\"http\",address=\"127.0.0.1:8080\"} 4096\n"
#define METRICS_QUEUE_NONE METRICS_QUEUE_LIMIT_HEAD
/* The cost of the last accounting pass, when there is accounting. */
#define METRICS_ACCOUNTING                                                                                  \
        "# HELP corral_accounting_pass_seconds Time the last accounting pass over the workers took, all its batches together.\n" \
        "# TYPE corral_accounting_pass_seconds gauge\n"                                                     \
        "corral_accounting_pass_seconds 0.002250\n"                                                         \
        "# HELP corral_accounting_batch_seconds_max The longest batch of the last accounting pass: the longest it held the event loop.\n" \
        "# TYPE corral_accounting_batch_seconds_max gauge\n"                                                \
        "corral_accounting_batch_seconds_max 0.001500\n"                                                    \
        "# HELP corral_accounting_pass_batches Batches, each one turn of the event loop, of the last accounting pass.\n" \
        "# TYPE corral_accounting_pass_batches gauge\n"                                                     \
        "corral_accounting_pass_batches 2\n"

/* Everything but the per-worker series, shared by the metrics tests: the counters are the same. */
#define METRICS_HEAD(starting, ready, stopping, slots_ready, drained, accounting, queue)                                      \
        "# HELP corral_build_info The version of corral, in the label; always 1.\n"                         \
        "# TYPE corral_build_info gauge\n"                                                                  \
        "corral_build_info{version=\"1.2.3\"} 1\n"                                                          \
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"        \
        "# TYPE process_start_time_seconds gauge\n"                                                         \
        "process_start_time_seconds 1709283600.000000\n"                                                    \
        "# HELP corral_workers Worker processes by state.\n"                                                \
        "# TYPE corral_workers gauge\n"                                                                     \
        "corral_workers{state=\"starting\"} " starting "\n"                                                 \
        "corral_workers{state=\"ready\"} " ready "\n"                                                       \
        "corral_workers{state=\"stopping\"} " stopping "\n"                                                 \
        "# HELP corral_workers_wanted Slots the pool keeps.\n"                                              \
        "# TYPE corral_workers_wanted gauge\n"                                                              \
        "corral_workers_wanted 3\n"                                                                         \
        "# HELP corral_slots_ready Slots with a ready worker.\n"                                            \
        "# TYPE corral_slots_ready gauge\n"                                                                 \
        "corral_slots_ready " slots_ready "\n"                                                              \
        "# HELP corral_generation Generation new workers start as.\n"                                       \
        "# TYPE corral_generation gauge\n"                                                                  \
        "corral_generation 3\n"                                                                             \
        "# HELP corral_drained 1 while /health is drained.\n"                                               \
        "# TYPE corral_drained gauge\n"                                                                     \
        "corral_drained " drained "\n"                                                                      \
        "# HELP corral_orphans_reaped_total Processes corral reaped that it did not start: orphans of the "   \
        "workers' children.\n"                                                                              \
        "# TYPE corral_orphans_reaped_total counter\n"                                                      \
        "corral_orphans_reaped_total 0\n"                                                                   \
        "# HELP corral_worker_restarts_total Workers replaced because they ended unexpectedly.\n"           \
        "# TYPE corral_worker_restarts_total counter\n"                                                     \
        "corral_worker_restarts_total{reason=\"crash\"} 5\n"                                                \
        "corral_worker_restarts_total{reason=\"failed-start\"} 2\n"                                         \
        "# HELP corral_worker_recycles_total Workers replaced start-first, by reason.\n"                    \
        "# TYPE corral_worker_recycles_total counter\n"                                                     \
        "corral_worker_recycles_total{reason=\"memory\"} 3\n"                                               \
        "corral_worker_recycles_total{reason=\"cpu\"} 0\n"                                                  \
        "corral_worker_recycles_total{reason=\"age\"} 1\n"                                                  \
        "corral_worker_recycles_total{reason=\"request\"} 2\n"                                              \
        "corral_worker_recycles_total{reason=\"oom\"} 1\n"                                                  \
        "corral_worker_recycles_total{reason=\"watchdog\"} 0\n"                                             \
        "# HELP corral_reloads_total Rolling reloads by result.\n"                                          \
        "# TYPE corral_reloads_total counter\n"                                                             \
        "corral_reloads_total{result=\"ok\"} 4\n"                                                           \
        "corral_reloads_total{result=\"failed\"} 1\n"                                                       \
        "# HELP corral_last_reload_successful 0 when the last reload failed, else 1.\n"                     \
        "# TYPE corral_last_reload_successful gauge\n"                                                      \
        "corral_last_reload_successful 1\n"                                                                 \
        "# HELP corral_last_reload_timestamp_seconds When the last reload ended (before any: the start), Unix time.\n" \
        "# TYPE corral_last_reload_timestamp_seconds gauge\n"                                               \
        "corral_last_reload_timestamp_seconds 1712758834.000000\n"                                          \
        "# HELP corral_reload_duration_seconds Time from a reload request to its end.\n"                    \
        "# TYPE corral_reload_duration_seconds histogram\n"                                                 \
        "corral_reload_duration_seconds_bucket{le=\"1\"} 1\n"                                               \
        "corral_reload_duration_seconds_bucket{le=\"2\"} 3\n"                                               \
        "corral_reload_duration_seconds_bucket{le=\"5\"} 4\n"                                               \
        "corral_reload_duration_seconds_bucket{le=\"10\"} 4\n"                                              \
        "corral_reload_duration_seconds_bucket{le=\"30\"} 4\n"                                              \
        "corral_reload_duration_seconds_bucket{le=\"60\"} 4\n"                                              \
        "corral_reload_duration_seconds_bucket{le=\"120\"} 4\n"                                             \
        "corral_reload_duration_seconds_bucket{le=\"300\"} 4\n"                                             \
        "corral_reload_duration_seconds_bucket{le=\"600\"} 4\n"                                             \
        "corral_reload_duration_seconds_bucket{le=\"+Inf\"} 5\n"                                            \
        "corral_reload_duration_seconds_sum 700.250000\n"                                                   \
        "corral_reload_duration_seconds_count 5\n"                                                          \
        "# HELP corral_notify_rejected_total Notifications dropped: not from a worker, or malformed.\n"     \
        "# TYPE corral_notify_rejected_total counter\n"                                                     \
        "corral_notify_rejected_total 17\n"                                                                 \
        "# HELP corral_signals_relayed_total Signals passed on to the workers.\n"                           \
        "# TYPE corral_signals_relayed_total counter\n"                                                     \
        "corral_signals_relayed_total 9\n"                                                                  \
        "# HELP corral_worker_output_dropped_lines_total Lines of worker output dropped because corral's output was not keeping up.\n" \
        "# TYPE corral_worker_output_dropped_lines_total counter\n"                                        \
        "corral_worker_output_dropped_lines_total 5\n"                                                      \
        accounting                                                                                          \
        "# HELP corral_listen_queue_length Connections waiting in a listening socket's accept queue.\n"      \
        "# TYPE corral_listen_queue_length gauge\n"                                                        \
        queue                                                                                               \
        "# HELP corral_worker_info The worker serving each slot: its pid and generation.\n"                 \
        "# TYPE corral_worker_info gauge\n"
#define METRICS_MEMORY_HEAD                                                                                 \
        "# HELP corral_worker_memory_bytes Memory of the worker serving each slot.\n"                       \
        "# TYPE corral_worker_memory_bytes gauge\n"
#define METRICS_CPU_HEAD                                                                                    \
        "# HELP corral_worker_cpu_seconds_total CPU time of the worker serving each slot.\n"                \
        "# TYPE corral_worker_cpu_seconds_total counter\n"

/* Slot 2's replacement, still starting beside the worker it replaces, has no series of its own. */
Test(status, metrics_of_a_reload_in_progress) {
        expect_output(
                status_format_metrics, SCENARIO_RELOADING,
                METRICS_HEAD("1", "3", "0", "3", "0", METRICS_ACCOUNTING, METRICS_QUEUE_HTTP)
                "corral_worker_info{slot=\"0\",pid=\"4242\",generation=\"3\"} 1\n"
                "corral_worker_info{slot=\"1\",pid=\"4243\",generation=\"3\"} 1\n"
                "corral_worker_info{slot=\"2\",pid=\"4100\",generation=\"2\"} 1\n"
                METRICS_MEMORY_HEAD
                "corral_worker_memory_bytes{slot=\"0\"} 13107200\n"
                "corral_worker_memory_bytes{slot=\"1\"} 524288000\n"
                "corral_worker_memory_bytes{slot=\"2\"} 1073741824\n"
                METRICS_CPU_HEAD
                "corral_worker_cpu_seconds_total{slot=\"0\"} 15.350000\n"
                "corral_worker_cpu_seconds_total{slot=\"1\"} 12.300000\n"
                "corral_worker_cpu_seconds_total{slot=\"2\"} 3.060000\n");
}

Test(status, metrics_of_a_stopping_pool_without_rows) {
        expect_output(status_format_metrics, SCENARIO_STOPPING,
                      METRICS_HEAD("0", "0", "3", "0", "0", METRICS_ACCOUNTING, METRICS_QUEUE_HTTP) METRICS_MEMORY_HEAD METRICS_CPU_HEAD);
}

Test(status, metrics_say_drained) {
        expect_output(status_format_metrics, SCENARIO_DRAINED,
                      METRICS_HEAD("0", "3", "0", "3", "1", "", METRICS_QUEUE_NONE) METRICS_MEMORY_HEAD METRICS_CPU_HEAD);
}

/* One series per slot, whatever the slot holds: the worker being stopped, the replacement starting beside the
 * ready one and the second of two starting ones are left out; a slot with only a stopping worker has none. */
Test(status, metrics_have_one_series_per_slot_for_its_serving_worker) {
        static const StatusWorker rows[] = {
                { .slot = 0, .pid = 100, .generation = 1, .state = WORKER_STOPPING, .memory_bytes = 1 },
                { .slot = 0, .pid = 101, .generation = 2, .state = WORKER_READY, .memory_bytes = 2 },
                { .slot = 0, .pid = 102, .generation = 3, .state = WORKER_STARTING, .memory_bytes = 3 },
                { .slot = 1, .pid = 110, .generation = 2, .state = WORKER_STARTING, .memory_bytes = 4 },
                { .slot = 1, .pid = 111, .generation = 3, .state = WORKER_STARTING, .memory_bytes = 5 },
                { .slot = 2, .pid = 120, .generation = 2, .state = WORKER_STOPPING, .memory_bytes = 6 },
                { .slot = 3, .pid = 130, .generation = 2, .state = WORKER_STARTING, .memory_bytes = 7 },
                { .slot = 3, .pid = 131, .generation = 3, .state = WORKER_READY, .memory_bytes = 8 },
        };
        Snapshot x = snapshot(SCENARIO_RELOADING);
        _cleanup_free_ char *text = status_format_metrics(&x.pool, rows, ELEMENTSOF(rows));

        cr_assert_not_null(text);
        cr_assert_not_null(strstr(text, METRICS_MEMORY_HEAD
                                        "corral_worker_memory_bytes{slot=\"0\"} 2\n"
                                        "corral_worker_memory_bytes{slot=\"1\"} 4\n"
                                        "corral_worker_memory_bytes{slot=\"3\"} 8\n"
                                        METRICS_CPU_HEAD),
                           "%s", text);
        cr_assert_not_null(strstr(text, "# TYPE corral_worker_info gauge\n"
                                        "corral_worker_info{slot=\"0\",pid=\"101\",generation=\"2\"} 1\n"
                                        "corral_worker_info{slot=\"1\",pid=\"110\",generation=\"2\"} 1\n"
                                        "corral_worker_info{slot=\"3\",pid=\"131\",generation=\"3\"} 1\n#"),
                           "%s", text);
}

/* Before any reload, the configuration corral started with counts as the last one, loaded when it started. */
Test(status, metrics_last_reload_before_and_after_one) {
        StatusCounters fresh = {};
        Snapshot x = snapshot(SCENARIO_RUNNING);
        _cleanup_free_ char *before = NULL, *after = NULL;

        x.pool.counters = &fresh;
        before = status_format_metrics(&x.pool, NULL, 0);
        cr_assert_not_null(strstr(before, "\ncorral_last_reload_successful 1\n"), "%s", before);
        cr_assert_not_null(strstr(before, "\ncorral_last_reload_timestamp_seconds 1709283600.000000\n"), "%s", before);
        status_count_reload(&fresh, false, SEC(2), SEC(1709290800) + MSEC(250));
        after = status_format_metrics(&x.pool, NULL, 0);
        cr_assert_not_null(strstr(after, "\ncorral_last_reload_successful 0\n"), "%s", after);
        cr_assert_not_null(strstr(after, "\ncorral_last_reload_timestamp_seconds 1709290800.250000\n"), "%s", after);
        cr_assert_not_null(strstr(after, "\ncorral_reloads_total{result=\"failed\"} 1\n"), "%s", after);
}

Test(status, reload_durations_fall_in_the_bucket_of_their_upper_bound) {
        static const struct {
                usec_t duration;
                size_t bucket;
        } cases[] = {
                { 0, 0 },        { SEC(1), 0 },       { SEC(1) + 1, 1 }, { SEC(2), 1 },  { MSEC(4500), 2 },
                { SEC(10), 3 },  { SEC(29), 4 },      { SEC(60), 5 },    { SEC(61), 6 }, { SEC(300), 7 },
                { SEC(600), 8 }, { SEC(600) + 1, 9 }, { SEC(86400), 9 },
        };
        StatusCounters c = {};
        uint64_t total = 0;
        double sum = 0;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t before = c.reload_buckets[cases[i].bucket];

                status_count_reload(&c, true, cases[i].duration, SEC(1700000000));
                sum += (double) cases[i].duration / (double) USEC_PER_SEC;
                cr_assert_eq(c.reload_buckets[cases[i].bucket], before + 1, "%llu usec not in bucket %zu",
                             (unsigned long long) cases[i].duration, cases[i].bucket);
        }
        cr_assert_float_eq(c.reload_seconds_sum, sum, 1e-6);
        for (size_t i = 0; i <= STATUS_RELOAD_BUCKETS_N; i++)
                total += c.reload_buckets[i];
        cr_assert_eq(total, ELEMENTSOF(cases));
        cr_assert_eq(c.reloads_ok, ELEMENTSOF(cases));
}

Test(status, reloads_count_by_result_and_the_last_one_is_remembered) {
        StatusCounters c = {};

        status_count_reload(&c, false, SEC(3), SEC(1700000000));
        cr_assert_eq(c.reloads_failed, 1);
        cr_assert(c.last_reload_failed);
        cr_assert_eq(c.last_reload_end_usec, SEC(1700000000));
        status_count_reload(&c, true, SEC(4), SEC(1700000100));
        cr_assert_eq(c.reloads_ok, 1);
        cr_assert_eq(c.reloads_failed, 1);
        cr_assert_not(c.last_reload_failed);
        cr_assert_eq(c.last_reload_end_usec, SEC(1700000100));
        cr_assert_eq(c.reload_buckets[2], 2);
}

/* Balance=reuseport: each slot's queue and steered connections, as a column pair of the table (a slot
 * without the figure shows "-"), a "slots" array in the JSON (slots with sockets only) and two series. */
Test(status, slots_of_reuseport_in_table_json_and_metrics) {
        static const StatusSlot slots[] = {
                { .has_sockets = true, .queued = 0, .has_connections = true, .connections = 10 },
                { .has_sockets = true, .queued = 4, .has_connections = true, .connections = 9 },
                { .has_sockets = false },
        };
        Snapshot x = snapshot(SCENARIO_RELOADING);
        _cleanup_free_ char *table = NULL, *json = NULL, *metrics = NULL;

        x.pool.slots = slots;
        x.pool.n_slots = ELEMENTSOF(slots);
        table = status_format_table(&x.pool, x.rows, x.n);
        json = status_format_json(&x.pool, x.rows, x.n);
        metrics = status_format_metrics(&x.pool, x.rows, x.n);
        cr_assert(table && json && metrics);
        cr_assert_not_null(strstr(table, "RESTARTS QUEUED CONNECTIONS LAST EXIT\n"
                                         "0    4242    3          ready    5m07s  850ms       12.5M   5.0    1        "
                                         "0      10          status 3 41d02h ago\n"
                                         "1    4243    3          ready    12.3s  1.2s        500.0M  100.0  2        "
                                         "4      9           SEGV+core 12.5s ago\n"),
                           "%s", table);
        cr_assert_not_null(strstr(table, "1.0G    1.0    7        -      -           KILL 5m07s ago\n"), "%s", table);
        cr_assert_not_null(strstr(json, "],\"slots\":[{\"slot\":0,\"queued\":0,\"connections\":10},"
                                        "{\"slot\":1,\"queued\":4,\"connections\":9}],\"health_listen\":"),
                           "%s", json);
        cr_assert_not_null(strstr(metrics, "# TYPE corral_slot_listen_queue_length gauge\n"
                                           "corral_slot_listen_queue_length{slot=\"0\"} 0\n"
                                           "corral_slot_listen_queue_length{slot=\"1\"} 4\n"
                                           "# HELP corral_slot_connections_total "),
                           "%s", metrics);
        cr_assert_not_null(strstr(metrics, "# TYPE corral_slot_connections_total counter\n"
                                           "corral_slot_connections_total{slot=\"0\"} 10\n"
                                           "corral_slot_connections_total{slot=\"1\"} 9\n# HELP corral_worker_info"),
                           "%s", metrics);
}

/* The largest pool corral allows fits in one /metrics response: COUNT_MAX slots, each with a worker starting
 * beside a ready one and an old one stopping (one series per slot all the same), every figure at its widest,
 * and with Balance=reuseport the two series per slot of the slots' sockets. */
Test(status, metrics_of_the_largest_pool_fit_in_a_response) {
        size_t n = 3 * COUNT_MAX;
        _cleanup_free_ StatusWorker *rows = calloc(n, sizeof(StatusWorker));
        _cleanup_free_ StatusSlot *slots = calloc(COUNT_MAX, sizeof(StatusSlot));
        _cleanup_free_ char *text = NULL;
        Snapshot x = snapshot(SCENARIO_RELOADING);

        cr_assert(rows && slots);
        for (size_t i = 0; i < n; i++)
                rows[i] = (StatusWorker) { .slot = (unsigned) (i / 3), .pid = 4194304 - (pid_t) i,
                                           .generation = UINT_MAX - (unsigned) (i % 3),
                                           .state = i % 3 == 0 ? WORKER_STOPPING : i % 3 == 1 ? WORKER_READY :
                                                                                               WORKER_STARTING,
                                           .uptime_usec = UINT64_MAX, .ready_after_usec = UINT64_MAX,
                                           .memory_bytes = UINT64_MAX, .cpu_usec = UINT64_MAX / 3,
                                           .restarts = UINT_MAX };
        for (size_t k = 0; k < COUNT_MAX; k++)
                slots[k] = (StatusSlot) { .has_sockets = true, .queued = UINT32_MAX, .has_connections = true,
                                          .connections = UINT64_MAX };
        x.pool.slots = slots;
        x.pool.n_slots = COUNT_MAX;
        text = status_format_metrics(&x.pool, rows, n);
        cr_assert_not_null(text);
        cr_assert_not_null(strstr(text, "corral_worker_memory_bytes{slot=\"4095\"} 18446744073709551615\n"));
        cr_assert_lt(strlen(text), (size_t) HTTPD_BODY_MAX, "%zu bytes", strlen(text));
}
