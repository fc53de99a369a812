/* SPDX-License-Identifier: MIT */
/* The system calls of an upgrade in place: the state in a sealed memfd, the fds kept open across
 * execve(), the sentinel that runs the new binary in its check mode first, and the exec itself. Helpers
 * only: nothing here logs above debug; the manager decides. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util.h"

/* The option that hands an image its state: argv[1] of the exec and of the sentinel. */
#define UPGRADE_STATE_OPTION "--upgrade-state="
/* With it, the sentinel checks the state and exits: 0 when this binary can resume from it. */
#define UPGRADE_CHECK_OPTION "--upgrade-check"
/* argv[2] of an image re-executed after its successor failed to resume: why it failed. */
#define UPGRADE_FAILED_OPTION "--upgrade-failed="

/* A memfd holding text, sealed against every change, close-on-exec. Returns the fd or -errno. */
int upgrade_state_fd_new(const char *text, size_t size);
/* Reads the whole state from such an fd, from its start (it may be read again by a fallback). Returns 0
 * and the NUL-terminated text, -EPERM when it is not sealed against writes, or -errno. */
int upgrade_state_fd_read(int fd, char **ret, size_t *ret_size);

/* Sets (keep false) or clears (keep true) FD_CLOEXEC on every fd >= 0 of fds. Returns 0 or the first
 * -errno (having tried them all). */
int upgrade_fds_keep(const int *fds, size_t n, bool keep);

/* The argv of the next image: exe, [UPGRADE_CHECK_OPTION,] UPGRADE_STATE_OPTION "FD:PREVIOUS" (the
 * previous binary's fd, -1: none), extra (may be NULL), then argv[1..] of this one. NULL on OOM. */
char **upgrade_argv(const char *exe, int state_fd, int previous_exe_fd, bool check, const char *extra,
                    char *const *argv);
/* Parses the value of UPGRADE_STATE_OPTION. Returns 0 or -EINVAL. */
int upgrade_parse_state_option(const char *value, int *ret_state_fd, int *ret_previous_exe_fd);

/* Starts the sentinel: exe with argv, the state fd as its stdin, stdout and stderr into a pipe whose read
 * end (non-blocking) comes back in *ret_output; default signal mask and dispositions. Returns 0 with its
 * pid and pidfd, or -errno. */
int upgrade_sentinel_spawn(const char *exe, char *const *argv, int state_fd, pid_t *ret_pid, int *ret_pidfd,
                           int *ret_output);

/* execve(exe, argv, environ), or fexecve(exe_fd, ...) when exe_fd >= 0. Signals stay blocked across it,
 * so what arrives meanwhile waits for the next image's loop. Returns only on failure: -errno. */
int upgrade_exec(const char *exe, int exe_fd, char *const *argv);
