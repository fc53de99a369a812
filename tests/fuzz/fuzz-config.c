/* SPDX-License-Identifier: MIT */
/* Fuzzes config_load() on a file holding the input: inih, the key table and every value parser behind it,
 * and config_verify(). A loaded Config must satisfy what the rest of corral assumes of it; a refused one
 * must come with a one-line message that names the file. */

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "env.h"
#include "fuzz-util.h"
#include "parse.h"

/* Far beyond any real config (and as long as its longest line); larger inputs only slow the run down. */
#define INPUT_MAX (64U * 1024U)

static int file_fd = -EBADF;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* A memfd rather than a file on disk: rewritten for every input, never left behind by a crash. The
         * loader opens it by path like any config file. */
        file_fd = memfd_create("corral-fuzz.conf", MFD_CLOEXEC);
        fuzz_check(file_fd >= 0, "memfd_create: %m");
        snprintf(path, sizeof path, "/proc/self/fd/%d", file_fd);
        return 0;
}

static void check_config(const Config *c) {
        char why[256];
        ListenSpec spec;

        fuzz_check(c->exec_start && !isempty(c->exec_start[0]), "no command");
        fuzz_check(c->count_value <= COUNT_MAX && (c->count_mode == COUNT_AUTO || c->count_value >= 1),
                   "Count=%u (mode %d)", c->count_value, c->count_mode);
        fuzz_check(c->ready_mode >= 0 && c->ready_mode < _READY_MODE_MAX, "ready mode %d", c->ready_mode);
        fuzz_check(c->stop_signal >= 1 && c->stop_signal < _NSIG, "StopSignal=%d", c->stop_signal);
        fuzz_check(c->backoff_max_usec >= c->restart_usec, "BackoffMaxSec= below RestartSec=");
        fuzz_check(c->ready_mode != READY_DELAY || c->ready_delay_usec < c->ready_timeout_usec,
                   "ReadyDelaySec= not below ReadyTimeoutSec=");
        fuzz_check(c->max_surge + c->max_unavailable >= 1, "a roll could not make progress");
        /* What the workers get must be assignments they may get, and the paths absolute. */
        for (char **e = c->environment; e && *e; e++)
                fuzz_check(env_assignment_check(*e, why, sizeof why) == 0, "Environment='%s' kept: %s", *e, why);
        for (char **e = c->environment_files; e && *e; e++)
                fuzz_check((*e)[**e == '-'] == '/', "EnvironmentFile='%s' kept", *e);
        fuzz_check(!c->working_directory || c->working_directory[0] == '/', "WorkingDirectory='%s' kept",
                   c->working_directory);
        /* The addresses are kept as text and bound later: they must parse then. */
        for (char **l = c->listen; l && *l; l++)
                fuzz_check(listen_spec_parse(*l, &spec, NULL) == 0, "Listen='%s' kept, does not parse", *l);
        fuzz_check(!c->status_listen || listen_spec_parse(c->status_listen, &spec, NULL) == 0,
                   "[Health] Listen='%s' kept but does not parse", c->status_listen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        if (size > INPUT_MAX)
                return -1; /* not added to the corpus */
        fuzz_check(ftruncate(file_fd, 0) == 0 && pwrite(file_fd, data, size, 0) == (ssize_t) size,
                   "writing the config: %m");

        r = config_load(path, NULL, 0, NULL, &c, &error);
        fuzz_check((r == 0) == !!c, "returned %d with%s a Config", r, c ? "" : "out");
        if (r == 0) {
                fuzz_check(!error, "success with an error message '%s'", error);
                check_config(c);
                return 0;
        }

        fuzz_check(r != -ENOMEM, "out of memory");
        fuzz_check(error, "error %d without a message", r);
        fuzz_check(startswith(error, path), "message '%s' does not name the file", error);
        fuzz_check(!strchr(error, '\n'), "message '%s' is not one line", error);
        return 0;
}
