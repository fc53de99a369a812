/* SPDX-License-Identifier: MIT */
/* One worker output (its stdout or its stderr) relayed line by line: the read end of a pipe whose write end
 * the worker gets, cut into lines that go whole to a sink, prefixed with the worker's slot and pid or as
 * one JSON object each. */
#pragma once

#include <sys/types.h>

#include <systemd/sd-event.h>

#include "relay-sink.h"

typedef struct RelayStream RelayStream;

/* The longest piece relayed as one line. A longer line is cut into pieces of this size; every piece but
 * the last is prefixed "[SLOT PID+] " instead of "[SLOT PID] " (in JSON, has "partial":true), so the line
 * can be put back together. */
#define RELAY_LINE_MAX (16U * 1024U)

/* Makes the pipe. Returns 0, the stream in *ret (owned) and the write end in *ret_write_fd (owned,
 * close-on-exec: for the child, which makes it its fd 1 or 2), or -errno. sink is borrowed and must outlive
 * the stream. */
int relay_stream_new(RelaySink *sink, RelayStream **ret, int *ret_write_fd);

/* A stream on fd, the read end of a pipe relay_stream_new() made, inherited across an upgrade's execve()
 * (taken on success). What a line had in the image before, unfinished, is lost. Returns 0 or -errno. */
int relay_stream_adopt(RelaySink *sink, int fd, RelayStream **ret);
/* The read end, owned by s: what an upgrade keeps open. */
int relay_stream_fd(const RelayStream *s);

/* Who wrote a stream's lines, and how they are relayed. */
typedef struct RelayLabel {
        unsigned slot;
        pid_t pid;
        bool json;      /* a JSON object per line (WorkerOutput=json), else "[SLOT PID] " before it */
        bool is_stderr; /* JSON: "stream" and the default "level" (info for stdout, warning for stderr) */
} RelayLabel;

/* Starts reading at priority once the worker runs. Returns 0 or -errno. */
int relay_stream_start(RelayStream *s, sd_event *e, int64_t priority, const RelayLabel *label);

/* Reads what is in the pipe now (its writer is gone, or about to be), relays it and an unended last line,
 * and frees the stream. Accepts and returns NULL. */
RelayStream *relay_stream_free(RelayStream *s);
