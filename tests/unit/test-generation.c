/* SPDX-License-Identifier: MIT */
/* Tests for generation.c: a generation made from a config (the executable resolved, or a message naming
 * it), its environment files and working directory, references, and the file descriptor budget of its
 * Count=. */

#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/stat.h>

#include "generation.h"
#include "tmpdir.h"

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

/* Makes a generation of the options args, for command; returns generation_new()'s result, and the
 * generation or the message. */
static int make_with(const ConfigArg *args, size_t n_args, const char *command, Generation **ret,
                     char **ret_error) {
        char *argv[] = { (char *) command, NULL };
        _cleanup_free_ char *error = NULL;
        Config *c = NULL;
        int r;

        cr_assert_eq(config_load(NULL, args, n_args, argv, &c, &error), 0, "config_load: %s", error ?: "?");
        r = generation_new(c, 1, ret, ret_error);
        if (r < 0)
                config_free(c);
        return r;
}

static char *write_tmp(const char *name, const char *text) {
        char *path = strdup_printf("%s/%s", tmpdir, name);
        FILE *f = fopen(path, "we");

        cr_assert_not_null(f);
        cr_assert_geq(fputs(text, f), 0);
        cr_assert_eq(fclose(f), 0);
        return path;
}

Test(generation, environment_files_are_read_in_order_after_environment, .init = make_tmpdir,
     .fini = remove_tmpdir) {
        _cleanup_free_ char *a = write_tmp("a.env", "# a\nA=from-a\nB='b c'\n"),
                            *b = write_tmp("b.env", "A=from-b\n");
        _cleanup_free_ char *missing = strdup_printf("-%s/missing.env", tmpdir);
        const ConfigArg args[] = {
                { "environment", "A=from-config C=1" },
                { "environment-file", a },
                { "environment-file", missing },
                { "environment-file", b },
        };
        Generation *g = NULL;
        const char *const want[] = { "A=from-b", "C=1", "B=b c" };

        cr_assert_eq(make_with(args, ELEMENTSOF(args), "/bin/true", &g, NULL), 0);
        cr_assert_eq(strv_length(g->environment), ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                cr_assert_str_eq(g->environment[i], want[i]);
        cr_assert_null(g->working_directory);
        generation_unref(g);
}

Test(generation, a_bad_environment_file_is_named_with_its_line, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *bad = write_tmp("bad.env", "A=1\n\nWORKER_COUNT=3\n"), *want = NULL,
                            *error = NULL;
        _cleanup_free_ char *missing = strdup_printf("%s/missing.env", tmpdir);
        _cleanup_free_ char *error2 = NULL, *want2 = NULL;
        Generation *g = NULL;

        cr_assert_eq(make_with(&(ConfigArg){ "environment-file", bad }, 1, "/bin/true", &g, &error),
                     -EINVAL);
        want = strdup_printf(
                "EnvironmentFile=%s:3: WORKER_COUNT is set by corral for each worker and cannot be "
                "overridden",
                bad);
        cr_assert_str_eq(error, want);

        /* Without the '-', a missing file is an error too. */
        cr_assert_eq(make_with(&(ConfigArg){ "environment-file", missing }, 1, "/bin/true", &g, &error2),
                     -ENOENT);
        want2 = strdup_printf("EnvironmentFile=: cannot read '%s': No such file or directory", missing);
        cr_assert_str_eq(error2, want2);
}

Test(generation, working_directory_is_resolved_when_the_generation_is_made, .init = make_tmpdir,
     .fini = remove_tmpdir) {
        _cleanup_free_ char *r1 = strdup_printf("%s/r1", tmpdir), *r2 = strdup_printf("%s/r2", tmpdir);
        _cleanup_free_ char *link = strdup_printf("%s/current", tmpdir), *app = NULL, *error = NULL;
        Generation *g1 = NULL, *g2 = NULL;
        const ConfigArg args[] = { { "working-directory", link } };

        cr_assert_eq(mkdir(r1, 0755), 0);
        cr_assert_eq(mkdir(r2, 0755), 0);
        cr_assert_eq(symlink("r1", link), 0);
        cr_assert_eq(make_with(args, 1, "/bin/true", &g1, NULL), 0);
        cr_assert_str_eq(g1->working_directory, r1);

        /* The deploy: the link now names r2; the generation made before keeps r1. A program given as a
         * relative path is looked for in the generation's own directory. */
        cr_assert_eq(unlink(link), 0);
        cr_assert_eq(symlink("r2", link), 0);
        cr_assert_eq(make_with(args, 1, "./app", &g2, &error), -ENOENT);
        app = strdup_printf("%s/app", r2);
        cr_assert_eq(symlink("/bin/true", app), 0);
        cr_assert_eq(make_with(args, 1, "./app", &g2, NULL), 0);
        cr_assert_str_eq(g2->working_directory, r2);
        cr_assert_str_eq(g2->exec_path, app);
        cr_assert_str_eq(g1->working_directory, r1);
        generation_unref(g1);
        generation_unref(g2);
        unlink(app);
        unlink(link);
        rmdir(r1);
        rmdir(r2);
}

Test(generation, missing_working_directory_is_named, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *gone = strdup_printf("%s/gone", tmpdir), *file = write_tmp("file", ""),
                            *want = NULL;
        _cleanup_free_ char *error = NULL, *error2 = NULL, *want2 = NULL;
        Generation *g = NULL;

        cr_assert_eq(make_with(&(ConfigArg){ "working-directory", gone }, 1, "/bin/true", &g, &error),
                     -ENOENT);
        want = strdup_printf("WorkingDirectory=: cannot use '%s': No such file or directory", gone);
        cr_assert_str_eq(error, want);
        cr_assert_eq(make_with(&(ConfigArg){ "working-directory", file }, 1, "/bin/true", &g, &error2),
                     -ENOTDIR);
        want2 = strdup_printf("WorkingDirectory=: cannot use '%s': Not a directory", file);
        cr_assert_str_eq(error2, want2);
}
