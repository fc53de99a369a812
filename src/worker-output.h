/* SPDX-License-Identifier: MIT */
/* A worker's stdout and stderr when they are not corral's own: two journal streams opened for it, or two
 * relayed pipes. Made before the fork (the child gets child_fds as its fds 1 and 2), owned by the Worker. */
#pragma once

#include <sys/types.h>
#include <syslog.h>

#include <systemd/sd-event.h>

#include "config.h"
#include "relay-sink.h"
#include "relay-stream.h"

/* The journal priorities of a worker's lines without a "<N>" prefix. */
#define WORKER_OUTPUT_STDOUT_PRIORITY LOG_INFO
#define WORKER_OUTPUT_STDERR_PRIORITY LOG_WARNING

typedef struct WorkerOutput {
        WorkerOutputMode mode;
        int child_fds[2];           /* for the child's stdout and stderr; closed by worker_output_started() */
        RelayStream *streams[2];    /* WORKER_OUTPUT_PREFIX, WORKER_OUTPUT_JSON */
} WorkerOutput;

typedef struct WorkerOutputParams {
        WorkerOutputMode mode;  /* WORKER_OUTPUT_JOURNAL, WORKER_OUTPUT_PREFIX or WORKER_OUTPUT_JSON */
        const char *identifier; /* journal: SYSLOG_IDENTIFIER= of its lines, see worker_output_identifier() */
        RelaySink *sinks[2];    /* relayed: where its stdout and stderr lines go (the same one twice is fine) */
} WorkerOutputParams;

/* "NAME/SLOT": the journal identifier of a worker's lines, NAME the instance's name. Allocated. */
char *worker_output_identifier(const char *name, unsigned slot);

/* Opens the journal streams (sd_journal_stream_fd(), with "<N>" prefixes honoured) or makes the pipes.
 * Returns 0 and the object in *ret (owned), or -errno (no journald listening: -ENOENT, -ECONNREFUSED). */
int worker_output_new(const WorkerOutputParams *p, WorkerOutput **ret);

/* The relayed output (p's mode: WORKER_OUTPUT_PREFIX or WORKER_OUTPUT_JSON) of a worker an image before an
 * upgrade started: the read ends of its two pipes (p's sinks). Returns 0 and the object, or -errno; start it
 * with worker_output_started(). */
int worker_output_adopt(const WorkerOutputParams *p, const int fds[2], WorkerOutput **ret);
/* The read ends an upgrade keeps open across the exec (owned by o), -EBADF where there is none (journal
 * streams are the worker's alone; o may be NULL). */
void worker_output_fds(const WorkerOutput *o, int ret[2]);

/* The child runs: closes our copies of its ends, and starts relaying at priority. Returns 0 or -errno (the
 * child's output still goes where it was sent; relaying what it writes failed). */
int worker_output_started(WorkerOutput *o, sd_event *e, int64_t priority, unsigned slot, pid_t pid);

/* Relays what is left in the pipes, closes everything. Accepts and returns NULL. */
WorkerOutput *worker_output_free(WorkerOutput *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(WorkerOutput *, worker_output_free);
