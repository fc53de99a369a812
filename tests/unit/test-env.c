/* SPDX-License-Identifier: MIT */
/* Tests for the worker environment (env.c): what is passed on, what corral replaces, LISTEN_PID and
 * LISTEN_PIDFDID written in place (or the latter removed) as the child does it. The child itself:
 * test-spawn.c. */

#include <criterion/criterion.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "env.h"

TestSuite(env, .timeout = 10);

static const WorkerEnvParams params_full = {
        .n_fds = 2,
        .fd_names = "http:admin",
        .notify_socket = "@corral/1234/00000000deadbeef",
        .index = 1,
        .generation = 7,
        .count = 4,
        .corral_pid = 1234,
};

static char **build(char *const *base, const WorkerEnvParams *params, size_t *ret_index) {
        char **l = NULL;
        EnvPidEntries pids = {};
        int r;

        r = env_build(base, params, &l, &pids);
        cr_assert_eq(r, 0, "env_build() = %d", r);
        cr_assert_not_null(l);
        cr_assert_eq(pids.n, params->watchdog_usec ? 2 : 1);
        cr_assert_lt(pids.index[0], strv_length(l));
        /* The LISTEN_PIDFDID slot is always reserved, right behind LISTEN_PID. */
        cr_assert(pids.has_pidfd_id);
        cr_assert_eq(pids.pidfd_id_index, pids.index[0] + 1);
        cr_assert_str_eq(l[pids.pidfd_id_index], "LISTEN_PIDFDID=");
        *ret_index = pids.index[0];
        return l;
}

static void assert_env(char *const *l, const char *const *expected, size_t n) {
        cr_assert_eq(strv_length(l), n, "%zu entries, expected %zu", strv_length(l), n);
        for (size_t i = 0; i < n; i++)
                cr_assert_str_eq(l[i], expected[i], "entry %zu", i);
        cr_assert_null(l[n]);
}

Test(env, owned_variables_are_replaced_and_the_rest_kept_in_order) {
        char *base[] = {
                "PATH=/usr/bin:/bin",
                "LISTEN_FDS=9",
                "HOME=/var/lib/app",
                "LISTEN_PID=1",
                "LISTEN_PIDFDID=4242",
                "LISTEN_FDNAMES=old",
                "NOTIFY_SOCKET=/run/systemd/notify",
                "LANG=C.UTF-8",
                "WATCHDOG_USEC=30000000",
                "WATCHDOG_PID=1",
                "WORKER_INDEX=9",
                "WORKER_GENERATION=9",
                "WORKER_COUNT=9",
                "CORRAL_PID=9",
                "EMPTY=",
                "A=b=c",
                NULL,
        };
        static const char *const expected[] = {
                "PATH=/usr/bin:/bin",
                "HOME=/var/lib/app",
                "LANG=C.UTF-8",
                "EMPTY=",
                "A=b=c",
                "LISTEN_PID=",
                "LISTEN_PIDFDID=",
                "LISTEN_FDS=2",
                "LISTEN_FDNAMES=http:admin",
                "NOTIFY_SOCKET=@corral/1234/00000000deadbeef",
                "WORKER_INDEX=1",
                "WORKER_GENERATION=7",
                "WORKER_COUNT=4",
                "CORRAL_PID=1234",
        };
        _cleanup_strv_free_ char **l = NULL;
        size_t idx;

        l = build(base, &params_full, &idx);
        assert_env(l, expected, ELEMENTSOF(expected));
        cr_assert_eq(idx, 5);
        cr_assert_str_eq(l[idx], "LISTEN_PID=");

        /* Copies, not the caller's strings; the base is untouched. */
        cr_assert_neq(l[0], base[0]);
        cr_assert_str_eq(base[1], "LISTEN_FDS=9");
}

Test(env, names_that_only_share_a_prefix_are_kept) {
        char *base[] = { "NOTIFY_SOCKETS=2", "XLISTEN_FDS=3", "CORRAL_PIDFILE=4", "listen_fds=5",
                         "LISTEN_PIDFDIDX=6", NULL };
        _cleanup_strv_free_ char **l = NULL;
        size_t idx;

        l = build(base, &params_full, &idx);
        cr_assert_eq(idx, 5);
        for (size_t i = 0; i < 5; i++)
                cr_assert_str_eq(l[i], base[i]);
}

Test(env, entries_without_equals_are_dropped) {
        char *base[] = { "NOEQUALS", "KEEP=1", "", "LISTEN_FDS", "ALSO=2", NULL };
        static const char *const expected[] = {
                "KEEP=1",         "ALSO=2",         "LISTEN_PID=",
                "LISTEN_PIDFDID=",
                "LISTEN_FDS=0",   "WORKER_INDEX=0", "WORKER_GENERATION=1",
                "WORKER_COUNT=1", "CORRAL_PID=1",
        };
        WorkerEnvParams params = { .n_fds = 0, .index = 0, .generation = 1, .count = 1, .corral_pid = 1 };
        _cleanup_strv_free_ char **l = NULL;
        size_t idx;

        l = build(base, &params, &idx);
        assert_env(l, expected, ELEMENTSOF(expected));
        cr_assert_eq(idx, 2);
}

Test(env, null_base_works) {
        static const char *const expected[] = {
                "LISTEN_PID=",
                "LISTEN_PIDFDID=",
                "LISTEN_FDS=2",
                "LISTEN_FDNAMES=http:admin",
                "NOTIFY_SOCKET=@corral/1234/00000000deadbeef",
                "WORKER_INDEX=1",
                "WORKER_GENERATION=7",
                "WORKER_COUNT=4",
                "CORRAL_PID=1234",
        };
        _cleanup_strv_free_ char **l = NULL;
        size_t idx;

        l = build(NULL, &params_full, &idx);
        assert_env(l, expected, ELEMENTSOF(expected));
        cr_assert_eq(idx, 0);
}

Test(env, empty_base_works) {
        char *base[] = { NULL };
        _cleanup_strv_free_ char **l = NULL;
        size_t idx;

        l = build(base, &params_full, &idx);
        cr_assert_eq(idx, 0);
        cr_assert_eq(strv_length(l), 9);
}

Test(env, missing_fd_names_and_notify_socket_are_omitted) {
        char *base[] = { "PATH=/bin", "LISTEN_FDNAMES=stale", "NOTIFY_SOCKET=/run/systemd/notify", NULL };
        static const char *const expected[] = {
                "PATH=/bin",
                "LISTEN_PID=",
                "LISTEN_PIDFDID=",
                "LISTEN_FDS=3",
                "WORKER_INDEX=4294967295",
                "WORKER_GENERATION=4294967295",
                "WORKER_COUNT=4294967295",
                "CORRAL_PID=2147483647",
        };
        WorkerEnvParams params = {
                .n_fds = 3,
                .index = UINT_MAX,
                .generation = UINT_MAX,
                .count = UINT_MAX,
                .corral_pid = INT_MAX,
        };
        _cleanup_strv_free_ char **l = NULL;
        size_t idx;

        l = build(base, &params, &idx);
        assert_env(l, expected, ELEMENTSOF(expected));
        cr_assert_eq(idx, 1);
}

Test(env, write_fills_the_slots_in_place) {
        static const struct {
                bool pidfd_id; /* the LISTEN_PIDFDID slot, else LISTEN_PID */
                uint64_t value;
                const char *expected;
        } table[] = {
                { false, 1, "LISTEN_PID=1" },
                { false, 42, "LISTEN_PID=42" },
                { false, 4194304, "LISTEN_PID=4194304" },
                { false, INT_MAX, "LISTEN_PID=2147483647" },
                { false, 10, "LISTEN_PID=10" }, /* shorter after longer: no digits left over */
                { false, 9, "LISTEN_PID=9" },
                { true, 0, "LISTEN_PIDFDID=0" },
                { true, UINT64_C(4294967296), "LISTEN_PIDFDID=4294967296" },
                { true, UINT64_MAX, "LISTEN_PIDFDID=18446744073709551615" },
                { true, 7, "LISTEN_PIDFDID=7" },
        };
        _cleanup_strv_free_ char **l = NULL;
        EnvPidEntries pids = {};

        cr_assert_eq(env_build(NULL, &params_full, &l, &pids), 0);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                size_t idx = table[i].pidfd_id ? pids.pidfd_id_index : pids.index[0];

                /* The slots were allocated before fork with room for the longest value. */
                cr_assert_lt(strlen(table[i].expected), ENV_PID_ENTRY_SIZE);
                if (table[i].pidfd_id)
                        env_write_u64(l[idx], table[i].value);
                else
                        env_write_pid(l[idx], (pid_t) table[i].value);
                cr_assert_str_eq(l[idx], table[i].expected);
        }
        /* Each write touched its own slot only. */
        cr_assert_str_eq(l[pids.index[0]], "LISTEN_PID=9");
        cr_assert_str_eq(l[pids.pidfd_id_index], "LISTEN_PIDFDID=7");
        cr_assert_str_eq(l[pids.pidfd_id_index + 1], "LISTEN_FDS=2");
}

Test(env, write_matches_printf) {
        char entry[ENV_PID_ENTRY_SIZE], expected[ENV_PID_ENTRY_SIZE];

        for (uint64_t v = 1; v < UINT64_MAX / 11; v = v * 11 + 3) {
                memcpy(entry, "LISTEN_PIDFDID=", sizeof("LISTEN_PIDFDID="));
                env_write_u64(entry, v);
                snprintf(expected, sizeof expected, "LISTEN_PIDFDID=%" PRIu64, v);
                cr_assert_str_eq(entry, expected);
        }
}

Test(env, watchdog_gets_usec_and_a_pid_entry) {
        WorkerEnvParams p = params_full;
        _cleanup_strv_free_ char **l = NULL;
        EnvPidEntries pids = {};

        p.watchdog_usec = 5 * USEC_PER_SEC;
        cr_assert_eq(env_build(NULL, &p, &l, &pids), 0);
        cr_assert_eq(pids.n, 2);
        cr_assert_str_eq(l[pids.index[0]], "LISTEN_PID=");
        cr_assert_str_eq(l[pids.pidfd_id_index], "LISTEN_PIDFDID=");
        cr_assert_str_eq(l[pids.index[1]], "WATCHDOG_PID=");
        cr_assert_str_eq(l[pids.index[1] - 1], "WATCHDOG_USEC=5000000");
        env_write_pid(l[pids.index[1]], 4194304);
        cr_assert_str_eq(l[pids.index[1]], "WATCHDOG_PID=4194304");
}

/* What the child does where the kernel has no pidfs: the slot goes, the entries behind it move up. */
Test(env, remove_drops_the_pidfd_id_slot_and_keeps_the_rest) {
        char *base[] = { "PATH=/bin", "LISTEN_PIDFDID=4242", NULL };
        WorkerEnvParams p = params_full;
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char **before = NULL;
        EnvPidEntries pids = {};
        size_t n, k;

        p.watchdog_usec = 5 * USEC_PER_SEC;
        cr_assert_eq(env_build(base, &p, &l, &pids), 0);
        n = strv_length(l);
        before = calloc(n + 1, sizeof(char *));
        cr_assert_not_null(before);
        memcpy(before, l, (n + 1) * sizeof(char *));

        k = pids.pidfd_id_index;
        env_remove(l, k);
        cr_assert_str_eq(before[k], "LISTEN_PIDFDID=");
        cr_assert_eq(strv_length(l), n - 1);
        for (size_t i = 0; i < n - 1; i++)
                cr_assert_eq(l[i], before[i < k ? i : i + 1], "entry %zu", i);
        for (size_t i = 0; l[i]; i++)
                cr_assert_null(startswith(l[i], "LISTEN_PIDFDID="), "'%s' left", l[i]);

        /* The last entry too. */
        env_remove(l, n - 2);
        cr_assert_str_eq(before[n - 1], "WATCHDOG_PID=");
        cr_assert_eq(strv_length(l), n - 2);
        cr_assert_str_eq(l[n - 3], "WATCHDOG_USEC=5000000");

        /* env_remove() freed nothing: the strings are before's now. */
        free(before[k]);
        free(before[n - 1]);
}

Test(env, environment_is_set_over_the_base_and_cannot_take_corral_names) {
        char *base[] = { "PATH=/bin", "HOME=/root", "LANG=C", NULL };
        char *environment[] = { "HOME=/srv/app", "NEW=1", "LISTEN_FDS=9", "NEW=2", "EMPTY=", NULL };
        WorkerEnvParams params = params_full;
        _cleanup_strv_free_ char **l = NULL;
        size_t index;

        params.environment = environment;
        l = build(base, &params, &index);
        const char *const expected[] = { "PATH=/bin", "HOME=/srv/app", "LANG=C", "NEW=2", "EMPTY=" };
        /* corral's own follow, as without a base or an environment. */
        char *none[] = { NULL };
        size_t own_index;
        _cleanup_strv_free_ char **own = build(none, &params_full, &own_index);

        cr_assert_eq(strv_length(l), ELEMENTSOF(expected) + strv_length(own));
        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                cr_assert_str_eq(l[i], expected[i]);
        assert_env(l + ELEMENTSOF(expected), (const char *const *) own, strv_length(own));
        cr_assert_eq(index, ELEMENTSOF(expected) + own_index);
}

Test(env, assignment_check_names_what_is_wrong) {
        char why[128];

        cr_assert_eq(env_assignment_check("A_1=x y", why, sizeof why), 0);
        cr_assert_eq(env_assignment_check("_=", why, sizeof why), 0);
        cr_assert_eq(env_assignment_check("LISTEN_FDSX=1", why, sizeof why), 0);
        cr_assert_eq(env_assignment_check("A", why, sizeof why), -EINVAL);
        cr_assert_eq(env_assignment_check("=1", why, sizeof why), -EINVAL);
        cr_assert_eq(env_assignment_check("9A=1", why, sizeof why), -EINVAL);
        cr_assert_eq(env_assignment_check("A.B=1", why, sizeof why), -EINVAL);
        cr_assert_str_eq(why, "expected NAME=VALUE, NAME of letters, digits and '_', not first a digit");
        cr_assert_eq(env_assignment_check("CORRAL_PID=1", why, sizeof why), -EPERM);
        cr_assert_str_eq(why, "CORRAL_PID is set by corral for each worker and cannot be overridden");
        cr_assert_eq(env_assignment_check("WATCHDOG_USEC=1", why, sizeof why), -EPERM);
}

/* Parses text into a fresh list; returns the result, the list in *ret (owned) and the error line. */
static int parse_file(const char *text, char ***ret, unsigned *ret_line, char *why, size_t n) {
        *ret = NULL;
        *ret_line = 0;
        return env_file_parse(text, strlen(text), ret, ret_line, why, n);
}

Test(env, file_takes_comments_quotes_and_blanks) {
        _cleanup_strv_free_ char **l = NULL;
        char why[128] = "";
        unsigned line;

        cr_assert_eq(parse_file("# comment\r\n"
                                "; other comment\n"
                                "\n"
                                "  PLAIN=a b  \r\n"
                                "SPACED = 'single \"quoted\" '\n"
                                "ESCAPED=\"a \\\"b\\\" \\\\ c\"\n"
                                "EMPTY=\n"
                                "RAW=it's #not a comment\n"
                                "PLAIN=again\n"
                                "LAST=no newline",
                                &l, &line, why, sizeof why),
                     0, "%u: %s", line, why);
        const char *const expected[] = { "PLAIN=again", "SPACED=single \"quoted\" ", "ESCAPED=a \"b\" \\ c",
                                         "EMPTY=",      "RAW=it's #not a comment",   "LAST=no newline" };
        assert_env(l, expected, ELEMENTSOF(expected));
}

Test(env, file_errors_name_the_line) {
        static const struct {
                const char *text;
                int r;
                unsigned line;
                const char *why;
        } cases[] = {
                { "A=1\nB\n", -EINVAL, 2,
                  "expected NAME=VALUE, NAME of letters, digits and '_', not first a digit" },
                { "A=1\n\n1A=2\n", -EINVAL, 3,
                  "expected NAME=VALUE, NAME of letters, digits and '_', not first a digit" },
                { "export A=1\n", -EINVAL, 1,
                  "expected NAME=VALUE, NAME of letters, digits and '_', not first a digit" },
                { "A=\"open\n", -EINVAL, 1, "missing closing \"" },
                { "A='x' y\n", -EINVAL, 1, "text after the closing '" },
                { "A=1\nNOTIFY_SOCKET=/x\n", -EPERM, 2,
                  "NOTIFY_SOCKET is set by corral for each worker and cannot be "
                  "overridden" },
                { "A = 1\n  LISTEN_PID = 2\n", -EPERM, 2,
                  "LISTEN_PID is set by corral for each worker and cannot be "
                  "overridden" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_strv_free_ char **l = NULL;
                char why[128] = "";
                unsigned line;

                cr_assert_eq(parse_file(cases[i].text, &l, &line, why, sizeof why), cases[i].r, "%s",
                             cases[i].text);
                cr_assert_eq(line, cases[i].line, "%s", cases[i].text);
                cr_assert_str_eq(why, cases[i].why);
        }
}

Test(env, file_with_a_nul_byte_is_refused) {
        _cleanup_strv_free_ char **l = NULL;
        char why[128] = "";
        unsigned line = 9;

        cr_assert_eq(env_file_parse("A=1\0B=2\n", 8, &l, &line, why, sizeof why), -EINVAL);
        cr_assert_eq(line, 0);
        cr_assert_str_eq(why, "the file contains a NUL byte");
}
