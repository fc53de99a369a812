/* SPDX-License-Identifier: MIT */
/* The control socket's client, behind `corral status/reload/recycle/drain/undrain/list`: one request, the
 * whole reply or an error, and never a hang. Every wait has a deadline: connecting (a frozen corral with a
 * full backlog), the reply's first message, and the gap between two messages. A corral holding a
 * `reload --wait` sends a keepalive message (CONTROL_KEEPALIVE, control.h) every 0.4 s until it answers,
 * so a long roll is waited for while a dead or stopped corral is still noticed. */
#pragma once

#include "util.h"

/* Sends request to the socket at path; the reply (its NUL not included) into *ret. Errors: -ENOENT nothing
 * at path, -ENOTSOCK not a socket, -ECONNREFUSED nothing listens there (a stale socket), -EACCES/-EPERM
 * not allowed, -ETIMEDOUT no answer within timeout, -EPIPE the connection ended before the reply did,
 * -EBADMSG a malformed reply, -EMSGSIZE one too large, another negative errno. *ret_size: how much came,
 * also on error. */
int control_client_call(const char *path, const char *request, usec_t timeout, char **ret, size_t *ret_size);

/* control_client_call(), then prints the reply on stdout (nothing of a reply cut short) and what went
 * wrong on stderr, "corral: " first; "warning: " lines of the reply go to stderr. Returns the exit code: 0
 * for an "ok" reply, 1 for "degraded" (status of an unhealthy pool), "error: " or a reply cut short or
 * malformed, 3 (EXIT_NOT_RUNNING) when corral is not running there, 4 (EXIT_DENIED) when the caller may not
 * use it, 75 (EXIT_TEMPFAIL) when it did not answer in time. */
int control_client_run(const char *path, const char *request, usec_t timeout);

/* control_client_call() for a request answered "ok: N" or "ok: N unseen" (a count in decimal; the word for
 * `connections`: a drain the load balancer has not polled yet), into *ret and *ret_unseen; prints nothing
 * else. Returns 0, or the exit code after saying what went wrong, as control_client_run(). */
int control_client_count(const char *path, const char *request, usec_t timeout, uint64_t *ret, bool *ret_unseen);
