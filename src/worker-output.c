/* SPDX-License-Identifier: MIT */
/* A worker's own stdout and stderr: journal streams or relayed pipes, prepared in the parent before fork. */
#include <stdio.h>
#include <syslog.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "worker-output.h"

char *worker_output_identifier(const char *name, unsigned slot) {
        /* '/' is not allowed in an instance name, so NAME/SLOT cannot be read two ways. */
        return strdup_printf("%s/%u", name, slot);
}

int worker_output_new(const WorkerOutputParams *p, WorkerOutput **ret) {
        static const int priority[2] = { WORKER_OUTPUT_STDOUT_PRIORITY, WORKER_OUTPUT_STDERR_PRIORITY };
        _cleanup_(worker_output_freep) WorkerOutput *o = NULL;
        int r;

        o = calloc(1, sizeof(WorkerOutput));
        if (!o)
                return -ENOMEM;
        o->mode = p->mode;
        o->child_fds[0] = o->child_fds[1] = -EBADF;
        for (size_t i = 0; i < 2; i++) {
                if (p->mode == WORKER_OUTPUT_JOURNAL) {
                        /* Connects from here, so the stream's first _PID is corral's; journald (244 and
                         * later) takes every line's sender from its SCM_CREDENTIALS, which is the worker's. */
                        r = sd_journal_stream_fd(p->identifier, priority[i], /* level_prefix= */ 1);
                        if (r < 0)
                                return r;
                        o->child_fds[i] = r;
                } else {
                        r = relay_stream_new(p->sinks[i], &o->streams[i], &o->child_fds[i]);
                        if (r < 0)
                                return r;
                }
        }
        *ret = TAKE_PTR(o);
        return 0;
}

int worker_output_adopt(const WorkerOutputParams *p, const int fds[2], WorkerOutput **ret) {
        _cleanup_(worker_output_freep) WorkerOutput *o = calloc(1, sizeof(WorkerOutput));
        int r;

        if (!o)
                return -ENOMEM;
        o->mode = p->mode;
        o->child_fds[0] = o->child_fds[1] = -EBADF;
        for (size_t i = 0; i < 2; i++) {
                r = relay_stream_adopt(p->sinks[i], fds[i], &o->streams[i]);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

void worker_output_fds(const WorkerOutput *o, int ret[2]) {
        for (size_t i = 0; i < 2; i++)
                ret[i] = o && o->streams[i] ? relay_stream_fd(o->streams[i]) : -EBADF;
}

int worker_output_started(WorkerOutput *o, sd_event *e, int64_t priority, unsigned slot, pid_t pid) {
        int r = 0;

        /* Ours closed, the pipes see EOF once the worker and whatever inherited them are gone. */
        for (size_t i = 0; i < 2; i++)
                o->child_fds[i] = safe_close(o->child_fds[i]);
        for (size_t i = 0; i < 2 && r >= 0; i++)
                if (o->streams[i])
                        r = relay_stream_start(o->streams[i], e, priority,
                                               &(RelayLabel) { .slot = slot, .pid = pid,
                                                               .json = o->mode == WORKER_OUTPUT_JSON,
                                                               .is_stderr = i == 1 });
        return r;
}

WorkerOutput *worker_output_free(WorkerOutput *o) {
        if (!o)
                return NULL;
        for (size_t i = 0; i < 2; i++) {
                safe_close(o->child_fds[i]);
                relay_stream_free(o->streams[i]);
        }
        free(o);
        return NULL;
}
