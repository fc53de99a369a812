/* SPDX-License-Identifier: MIT */
/* Tests for status.c: the exact text of `corral status` (table and JSON), /health and /metrics for fixed
 * snapshots, and the reload histogram. */

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>

#include "status.h"

TestSuite(status, .timeout = 10);

typedef enum Scenario {
        SCENARIO_RUNNING,   /* 3 of 3 ready, no rows */
        SCENARIO_RELOADING, /* generation 3 replacing 2: slot 2's old worker ready, its new one starting */
        SCENARIO_DEGRADED,  /* slot 2 throttled after crashes: 2 of 3 ready */
        SCENARIO_DRAINED,   /* running, /health drained, no rows */
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
        { .slot = 0, .pid = 4242, .generation = 3, .state = "ready", .uptime_usec = SEC(307),
          .ready_after_usec = MSEC(850), .memory_bytes = 13107200, .cpu_usec = MSEC(15350), .restarts = 1,
          .last_exit_code = CLD_EXITED, .last_exit_status = 3,
          .last_exit_ago_usec = SEC(41 * 86400 + 2 * 3600) },
        { .slot = 1, .pid = 4243, .generation = 3, .state = "ready", .uptime_usec = MSEC(12300),
          .ready_after_usec = MSEC(1200), .memory_bytes = 524288000, .cpu_usec = MSEC(12300), .restarts = 2,
          .last_exit_code = CLD_DUMPED, .last_exit_status = SIGSEGV, .last_exit_ago_usec = MSEC(12500) },
        { .slot = 2, .pid = 4100, .generation = 2, .state = "ready", .uptime_usec = SEC(306),
          .ready_after_usec = MSEC(100), .memory_bytes = 1073741824, .cpu_usec = MSEC(3060), .restarts = 7,
          .last_exit_code = CLD_KILLED, .last_exit_status = SIGKILL, .last_exit_ago_usec = SEC(307) },
        { .slot = 2, .pid = 4251, .generation = 3, .state = "starting", .uptime_usec = MSEC(850),
          .memory_bytes = 1000, .restarts = 7, .last_exit_code = CLD_KILLED, .last_exit_status = SIGKILL,
          .last_exit_ago_usec = SEC(307) },
};

static const StatusCounters counters = {
        .crashes = 5,
        .failed_starts = 2,
        .recycles = { [RECYCLE_MEMORY] = 3, [RECYCLE_AGE] = 1, [RECYCLE_REQUEST] = 2, [RECYCLE_OOM] = 1 },
        .reload_buckets = { 1, 2, 1, 0, 0, 0, 0, 0, 0, 1 },
        .reload_seconds_sum = 700.25,
        .relayed_signals = 9,
};

/* The one place that builds a StatusPool; x.state is the state as the formatters must spell it. */
static Snapshot snapshot(Scenario s) {
        Snapshot x = {
                .pool = {
                        .generation = 3, .ready = 3, .wanted = 3, .workers = 3,
                        .reloads_ok = 4, .reloads_failed = 1,
                        .uptime_usec = SEC(45 * 86400 + 3 * 3600),
                        .notify_rejected = 17,
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
                x.pool.workers = 4;
                x.pool.starting = 1;
                x.rows = rows_reloading;
                x.n = ELEMENTSOF(rows_reloading);
                break;
        case SCENARIO_DEGRADED:
                x.pool.state = POOL_DEGRADED;
                x.state = "degraded";
                x.pool.ready = x.pool.workers = 2;
                x.rows = rows_reloading;
                x.n = 2;
                break;
        case SCENARIO_DRAINED:
                x.pool.state = POOL_RUNNING;
                x.state = "running";
                x.pool.drained = true;
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

/* /health must answer code, and the body must say so along with the snapshot's figures and the number of
 * ready workers it asked for (MinReady=, or all wanted). */
static void expect_health(const Snapshot *x, int code, unsigned min_ready) {
        _cleanup_free_ char *text = NULL, *expected = NULL;
        int r = status_format_health(&x->pool, &text);

        cr_assert_eq(r, code, "state '%s', %u/%u ready, min %u, drained %d: %d", x->state, x->pool.ready,
                     x->pool.wanted, x->pool.min_ready, x->pool.drained, r);
        expected = strdup_printf("{\"status\":\"%s\",\"state\":\"%s\",\"ready\":%u,\"wanted\":%u,"
                                 "\"min_ready\":%u,\"generation\":%u,\"drained\":%s}\n",
                                 code == 200 ? "ok" : "unavailable", x->state, x->pool.ready, x->pool.wanted,
                                 min_ready, x->pool.generation, x->pool.drained ? "true" : "false");
        cr_assert_not_null(text);
        cr_assert_str_eq(text, expected);
}

Test(status, table_of_a_reload_in_progress) {
        expect_output(status_format_table, SCENARIO_RELOADING,
                      "ok\n"
                      "corral: reloading, generation 3, 3/3 workers ready, up 45d03h\n"
                      "reloads: 4 ok, 1 failed\n"
                      "SLOT PID     GEN STATE    UPTIME READY  MEM    CPU%  RST  LAST EXIT\n"
                      "0    4242    3   ready    5m07s  850ms  12.5M  5.0   1    status 3 41d02h ago\n"
                      "1    4243    3   ready    12.3s  1.2s   500.0M 100.0 2    SEGV+core 12.5s ago\n"
                      "2    4100    2   ready    5m06s  100ms  1.0G   1.0   7    KILL 5m07s ago\n"
                      "2    4251    3   starting 850ms  -      1000B  0.0   7    KILL 5m07s ago\n");
}

Test(status, table_of_a_degraded_pool) {
        expect_output(status_format_table, SCENARIO_DEGRADED,
                      "degraded\n"
                      "corral: degraded, generation 3, 2/3 workers ready, up 45d03h\n"
                      "reloads: 4 ok, 1 failed\n"
                      "SLOT PID     GEN STATE    UPTIME READY  MEM    CPU%  RST  LAST EXIT\n"
                      "0    4242    3   ready    5m07s  850ms  12.5M  5.0   1    status 3 41d02h ago\n"
                      "1    4243    3   ready    12.3s  1.2s   500.0M 100.0 2    SEGV+core 12.5s ago\n");
}

Test(status, table_of_a_drained_pool_without_rows) {
        expect_output(status_format_table, SCENARIO_DRAINED,
                      "ok\n"
                      "corral: running, generation 3, 3/3 workers ready, up 45d03h\n"
                      "reloads: 4 ok, 1 failed; /health drained\n"
                      "SLOT PID     GEN STATE    UPTIME READY  MEM    CPU%  RST  LAST EXIT\n");
}

Test(status, table_of_a_stopping_pool_is_degraded) {
        expect_output(status_format_table, SCENARIO_STOPPING,
                      "degraded\n"
                      "corral: stopping, generation 3, 0/3 workers ready, up 45d03h\n"
                      "reloads: 4 ok, 1 failed\n"
                      "SLOT PID     GEN STATE    UPTIME READY  MEM    CPU%  RST  LAST EXIT\n");
}

Test(status, json_of_a_reload_in_progress) {
        expect_output(
                status_format_json, SCENARIO_RELOADING,
                "ok\n"
                "{\"state\":\"reloading\",\"generation\":3,\"ready\":3,\"wanted\":3,\"workers\":4,"
                "\"reloads_ok\":4,\"reloads_failed\":1,\"uptime_usec\":3898800000000,\"notify_rejected\":17,"
                "\"drained\":false,\"slots\":["
                "{\"slot\":0,\"pid\":4242,\"generation\":3,\"state\":\"ready\",\"uptime_usec\":307000000,"
                "\"ready_after_usec\":850000,\"memory_bytes\":13107200,\"cpu_usec\":15350000,\"restarts\":1,"
                "\"last_exit\":\"status 3 41d02h ago\"},"
                "{\"slot\":1,\"pid\":4243,\"generation\":3,\"state\":\"ready\",\"uptime_usec\":12300000,"
                "\"ready_after_usec\":1200000,\"memory_bytes\":524288000,\"cpu_usec\":12300000,"
                "\"restarts\":2,\"last_exit\":\"SEGV+core 12.5s ago\"},"
                "{\"slot\":2,\"pid\":4100,\"generation\":2,\"state\":\"ready\",\"uptime_usec\":306000000,"
                "\"ready_after_usec\":100000,\"memory_bytes\":1073741824,\"cpu_usec\":3060000,"
                "\"restarts\":7,\"last_exit\":\"KILL 5m07s ago\"},"
                "{\"slot\":2,\"pid\":4251,\"generation\":3,\"state\":\"starting\",\"uptime_usec\":850000,"
                "\"ready_after_usec\":0,\"memory_bytes\":1000,\"cpu_usec\":0,\"restarts\":7,"
                "\"last_exit\":\"KILL 5m07s ago\"}"
                "]}\n");
}

Test(status, json_of_a_drained_pool_without_rows) {
        expect_output(
                status_format_json, SCENARIO_DRAINED,
                "ok\n"
                "{\"state\":\"running\",\"generation\":3,\"ready\":3,\"wanted\":3,\"workers\":3,"
                "\"reloads_ok\":4,\"reloads_failed\":1,\"uptime_usec\":3898800000000,\"notify_rejected\":17,"
                "\"drained\":true,\"slots\":[]}\n");
}

Test(status, json_of_a_degraded_pool_with_a_slot_never_exited) {
        static const StatusWorker fresh = { .slot = 0, .pid = 1, .generation = 1, .state = "ready" };
        Snapshot x = snapshot(SCENARIO_DEGRADED);
        _cleanup_free_ char *text = status_format_json(&x.pool, &fresh, 1);

        cr_assert_str_eq(text,
                         "degraded\n"
                         "{\"state\":\"degraded\",\"generation\":3,\"ready\":2,\"wanted\":3,\"workers\":2,"
                         "\"reloads_ok\":4,\"reloads_failed\":1,\"uptime_usec\":3898800000000,"
                         "\"notify_rejected\":17,\"drained\":false,\"slots\":["
                         "{\"slot\":0,\"pid\":1,\"generation\":1,\"state\":\"ready\",\"uptime_usec\":0,"
                         "\"ready_after_usec\":0,\"memory_bytes\":0,\"cpu_usec\":0,\"restarts\":0,"
                         "\"last_exit\":null}]}\n");
}

Test(status, health_is_200_with_every_slot_ready) {
        Snapshot x = snapshot(SCENARIO_RUNNING);
        _cleanup_free_ char *text = NULL;

        /* Once to the letter; expect_health() builds the others the same way. */
        cr_assert_eq(status_format_health(&x.pool, &text), 200);
        cr_assert_str_eq(text, "{\"status\":\"ok\",\"state\":\"running\",\"ready\":3,\"wanted\":3,"
                               "\"min_ready\":3,\"generation\":3,\"drained\":false}\n");
        expect_health(&x, 200, 3);
        /* A roll that keeps every slot ready is healthy too. */
        x = snapshot(SCENARIO_RELOADING);
        expect_health(&x, 200, 3);
}

Test(status, health_is_503_below_min_ready_and_200_at_it) {
        Snapshot x = snapshot(SCENARIO_DEGRADED);

        expect_health(&x, 503, 3);
        x.pool.min_ready = 2;
        expect_health(&x, 200, 2);
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

/* Everything but the per-worker series, shared by both metrics tests: the counters are the same. */
#define METRICS_HEAD(starting, ready, stopping, slots_ready, drained)                                       \
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
        "# HELP corral_uptime_seconds Time since corral started.\n"                                         \
        "# TYPE corral_uptime_seconds gauge\n"                                                              \
        "corral_uptime_seconds 3898800.000\n"                                                               \
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
        "# HELP corral_worker_memory_bytes Memory of each worker.\n"                                        \
        "# TYPE corral_worker_memory_bytes gauge\n"

Test(status, metrics_of_a_reload_in_progress) {
        expect_output(
                status_format_metrics, SCENARIO_RELOADING,
                METRICS_HEAD("1", "3", "0", "3", "0")
                "corral_worker_memory_bytes{slot=\"0\",pid=\"4242\",generation=\"3\"} 13107200\n"
                "corral_worker_memory_bytes{slot=\"1\",pid=\"4243\",generation=\"3\"} 524288000\n"
                "corral_worker_memory_bytes{slot=\"2\",pid=\"4100\",generation=\"2\"} 1073741824\n"
                "corral_worker_memory_bytes{slot=\"2\",pid=\"4251\",generation=\"3\"} 1000\n"
                "# HELP corral_worker_cpu_seconds_total CPU time of each worker.\n"
                "# TYPE corral_worker_cpu_seconds_total counter\n"
                "corral_worker_cpu_seconds_total{slot=\"0\",pid=\"4242\",generation=\"3\"} 15.350000\n"
                "corral_worker_cpu_seconds_total{slot=\"1\",pid=\"4243\",generation=\"3\"} 12.300000\n"
                "corral_worker_cpu_seconds_total{slot=\"2\",pid=\"4100\",generation=\"2\"} 3.060000\n"
                "corral_worker_cpu_seconds_total{slot=\"2\",pid=\"4251\",generation=\"3\"} 0.000000\n");
}

Test(status, metrics_of_a_stopping_pool_without_rows) {
        expect_output(
                status_format_metrics, SCENARIO_STOPPING,
                METRICS_HEAD("0", "0", "3", "0", "0")
                "# HELP corral_worker_cpu_seconds_total CPU time of each worker.\n"
                "# TYPE corral_worker_cpu_seconds_total counter\n");
}

Test(status, metrics_say_drained) {
        expect_output(
                status_format_metrics, SCENARIO_DRAINED,
                METRICS_HEAD("0", "3", "0", "3", "1")
                "# HELP corral_worker_cpu_seconds_total CPU time of each worker.\n"
                "# TYPE corral_worker_cpu_seconds_total counter\n");
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

                status_count_reload(&c, cases[i].duration);
                sum += (double) cases[i].duration / (double) USEC_PER_SEC;
                cr_assert_eq(c.reload_buckets[cases[i].bucket], before + 1, "%llu usec not in bucket %zu",
                             (unsigned long long) cases[i].duration, cases[i].bucket);
        }
        cr_assert_float_eq(c.reload_seconds_sum, sum, 1e-6);
        for (size_t i = 0; i <= STATUS_RELOAD_BUCKETS_N; i++)
                total += c.reload_buckets[i];
        cr_assert_eq(total, ELEMENTSOF(cases));
}
