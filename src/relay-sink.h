/* SPDX-License-Identifier: MIT */
/* One of corral's outputs (its stdout or stderr) as the destination of relayed worker lines: a bounded
 * queue of whole lines written without ever blocking the loop; what does not fit is dropped and counted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "util.h"

typedef struct RelaySink RelaySink;

/* Bytes of whole lines a sink holds while its output cannot take them; a line that does not fit is
 * dropped. */
#define RELAY_SINK_MAX (1024U * 1024U)

/* Called, at most every RELAY_SINK_NOTICE_USEC, with the lines dropped since the last call; and once more
 * from relay_sink_free() when some are still unreported. */
typedef void (*relay_sink_drop_handler_t)(RelaySink *s, uint64_t dropped, void *userdata);
#define RELAY_SINK_NOTICE_USEC (10 * USEC_PER_SEC)

/* A sink writing to fd (borrowed, never closed; its flags are left alone: a pipe or terminal is reopened
 * through /proc/self/fd as a non-blocking file description of our own, a socket is written with
 * MSG_DONTWAIT, a regular file as it is). Its writability watch and notice timer run on e at priority.
 * Returns 0 and the sink in *ret (owned), or -errno. */
int relay_sink_new(sd_event *e, int fd, int64_t priority, relay_sink_drop_handler_t on_drop, void *userdata,
                   RelaySink **ret);

/* Writes what it holds for at most timeout_usec (waiting for the output), counts the rest as dropped,
 * reports unreported drops, and frees it. Accepts and returns NULL. */
RelaySink *relay_sink_free(RelaySink *s, usec_t timeout_usec);

/* Queues one line, prefix + data + "\n" (data holds no newline), and writes what the output takes now.
 * Returns true when queued, false when dropped (the queue is full, or the output failed for good). */
bool relay_sink_line(RelaySink *s, const char *prefix, size_t prefix_len, const char *data, size_t n);

/* Lines dropped since the sink was made. */
uint64_t relay_sink_dropped(const RelaySink *s);
/* Bytes queued, not written yet (0 once the output broke). */
size_t relay_sink_pending(const RelaySink *s);

/* Whether fds a and b are the same file (one pipe, one terminal): then one sink must serve both, or their
 * queues would interleave. */
bool relay_same_file(int a, int b);
