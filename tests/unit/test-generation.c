/* SPDX-License-Identifier: MIT */
/* Tests for generation.c: a generation made from a config (the executable resolved, or a message naming
 * it), references, and the file descriptor budget of its Count=. */

#include <criterion/criterion.h>

#include "generation.h"

TestSuite(generation, .timeout = 10);

static Generation *make(const char *count, const char *exec) {
        char *command[] = { (char *) exec, NULL };
        ConfigArg args[] = { { .option = "count", .value = count } };
        _cleanup_free_ char *error = NULL;
        Config *c = NULL;
        Generation *g = NULL;
        int r;

        r = config_load(NULL, args, ELEMENTSOF(args), command, &c, &error);
        cr_assert_eq(r, 0, "config_load: %s", error ?: "?");
        r = generation_new(c, 7, &g, &error);
        cr_assert_eq(r, 0, "generation_new: %s", error ?: "?");
        return g;
}

Test(generation, new_resolves_the_executable_and_counts_references) {
        Generation *g = make("4", "/bin/true");

        cr_assert_eq(g->number, 7);
        cr_assert_eq(g->n_ref, 1);
        cr_assert_str_eq(g->exec_path, "/bin/true");
        cr_assert_eq(generation_ref(g), g);
        cr_assert_eq(g->n_ref, 2);
        cr_assert_null(generation_unref(g));
        cr_assert_eq(g->n_ref, 1);
        cr_assert_null(generation_unref(g));
}

Test(generation, a_command_that_cannot_run_is_named) {
        char *command[] = { (char *) "/nonexistent/corral-test", NULL };
        _cleanup_free_ char *error = NULL;
        Config *c = NULL;
        Generation *g = NULL;

        cr_assert_eq(config_load(NULL, NULL, 0, command, &c, &error), 0);
        cr_assert_eq(generation_new(c, 1, &g, &error), -ENOENT);
        cr_assert_null(g);
        cr_assert_str_eq(error, "ExecStart=: cannot run '/nonexistent/corral-test': No such file or directory");
        config_free(c); /* kept by the caller on failure */
}

Test(generation, assign_keeps_the_last_reference_alive) {
        Generation *g = make("1", "/bin/true"), *slot = NULL;

        generation_assign(&slot, g);
        cr_assert_eq(g->n_ref, 2);
        generation_unref(g);
        generation_assign(&slot, slot); /* onto itself, holding the only reference: must not free it */
        cr_assert_eq(slot->n_ref, 1);
        generation_assign(&slot, NULL);
        cr_assert_null(slot);
}

Test(generation, fd_budget_covers_count_and_surge) {
        Generation *g = make("100", "/bin/true");
        _cleanup_free_ char *error = NULL;
        /* 256 for corral, 4 for each of 100 workers and 1 surge: 660. */

        cr_assert_eq(generation_check_fd_limit(g, 1, 4, 660, &error), 0);
        cr_assert_null(error);
        cr_assert_eq(generation_check_fd_limit(g, 1, 4, 659, &error), -EMFILE);
        cr_assert_str_eq(error, "Count=100 needs about 660 file descriptors (4 per worker, 256 for corral itself), "
                                "but the limit is 659: raise LimitNOFILE= (ulimit -n) or lower Count=");
        cr_assert_eq(generation_check_fd_limit(g, 1, 4, UINT64_MAX, NULL), 0);
        /* WorkerOutput=prefix: two pipes more per worker. */
        g->config->worker_output = WORKER_OUTPUT_PREFIX;
        cr_assert_eq(generation_check_fd_limit(g, 1, 4, 862, NULL), 0);
        cr_assert_eq(generation_check_fd_limit(g, 1, 4, 861, NULL), -EMFILE);
        generation_unref(g);
}
