/* SPDX-License-Identifier: MIT */
/* Manager: its workers' stdout and stderr — which WorkerOutput= a worker gets, the journal streams or relay
 * pipes made for it, the relay's sinks on corral's own stdout and stderr (corral's lines go through them
 * too, so that none lands inside a relayed one), and the notices of dropped lines. */
#include <unistd.h>

#include "manager-internal.h"
#include "message-ids.h"

static void manager_log_line(const char *line, size_t n, void *userdata) {
        Manager *m = userdata;

        (void) relay_sink_line(m->relay_sinks[1], "", 0, line, n);
}

static void manager_on_output_dropped(RelaySink *s, uint64_t dropped, void *userdata) {
        Manager *m = userdata;
        const char *which = m->relay_sinks[0] == m->relay_sinks[1] ? "stdout and stderr" :
                            s == m->relay_sinks[0]                 ? "stdout" :
                                                                     "stderr";
        LogFields f = {};

        log_fields_add(&f, "DROPPED=%llu", (unsigned long long) dropped);
        log_fields_add(&f, "DROPPED_TOTAL=%llu", (unsigned long long) relay_sink_dropped(s));
        log_event(LOG_WARNING, MESSAGE_ID_WORKER_OUTPUT_DROPPED, &f,
                  "dropped %llu lines of worker output: corral's %s is not keeping up (%llu in all)",
                  (unsigned long long) dropped, which, (unsigned long long) relay_sink_dropped(s));
}

static int manager_relay_sinks(Manager *m) {
        int r;

        if (m->relay_sinks[0])
                return 0;
        r = relay_sink_new(m->event, STDOUT_FILENO, PRIORITY_OUTPUT_SINK, manager_on_output_dropped, m,
                           &m->relay_sinks[0]);
        if (r < 0)
                return r;
        if (relay_same_file(STDOUT_FILENO, STDERR_FILENO))
                m->relay_sinks[1] = m->relay_sinks[0];
        else {
                r = relay_sink_new(m->event, STDERR_FILENO, PRIORITY_OUTPUT_SINK, manager_on_output_dropped, m,
                                   &m->relay_sinks[1]);
                if (r < 0) {
                        m->relay_sinks[0] = relay_sink_free(m->relay_sinks[0], 0);
                        return r;
                }
        }
        if (!log_to_journal())
                log_set_line_writer(manager_log_line, m);
        return 0;
}

WorkerOutput *manager_worker_output(Manager *m, const Worker *w) {
        WorkerOutputParams p = { .mode = w->generation->config->worker_output };
        _cleanup_free_ char *identifier = NULL;
        WorkerOutput *o = NULL;
        int r = 0;

        if (p.mode == WORKER_OUTPUT_AUTO)
                p.mode = log_to_journal() ? WORKER_OUTPUT_JOURNAL : WORKER_OUTPUT_INHERIT;
        if (p.mode == WORKER_OUTPUT_INHERIT)
                return NULL;

        if (p.mode == WORKER_OUTPUT_JOURNAL) {
                identifier = worker_output_identifier(m->params.name, w->slot);
                p.identifier = identifier;
                r = identifier ? 0 : -ENOMEM;
        } else {
                r = manager_relay_sinks(m);
                p.sinks[0] = m->relay_sinks[0];
                p.sinks[1] = m->relay_sinks[1];
        }
        if (r >= 0)
                r = worker_output_new(&p, &o);
        if (r < 0 && !m->output_warned) {
                /* Output is worth having, never worth refusing a worker for. */
                m->output_warned = true;
                log_warning_errno(r, "WorkerOutput=%s failed for worker %u, its output goes to corral's: %m",
                                  worker_output_mode_to_string(p.mode), w->slot);
        }
        return o;
}

WorkerOutput *manager_worker_output_adopt(Manager *m, const Worker *w, const int fds[2]) {
        /* The generation's config crossed the upgrade with it: its mode is the one the pipes were made for. */
        WorkerOutputParams p = { .mode = w->generation->config->worker_output == WORKER_OUTPUT_JSON ?
                                                 WORKER_OUTPUT_JSON :
                                                 WORKER_OUTPUT_PREFIX };
        WorkerOutput *o = NULL;
        int r;

        r = manager_relay_sinks(m);
        p.sinks[0] = m->relay_sinks[0];
        p.sinks[1] = m->relay_sinks[1];
        if (r >= 0)
                r = worker_output_adopt(&p, fds, &o);
        if (r < 0)
                log_warning_errno(r, "Failed to relay the output of worker %u (pid %d) again: %m", w->slot, (int) w->pid);
        return o;
}

size_t manager_output_pending(const Manager *m) {
        size_t n = 0;

        for (size_t i = 0; i < 2; i++)
                if (m->relay_sinks[i] && (i == 0 || m->relay_sinks[1] != m->relay_sinks[0]))
                        n += relay_sink_pending(m->relay_sinks[i]);
        return n;
}

uint64_t manager_output_dropped(const Manager *m) {
        uint64_t n = 0;

        for (size_t i = 0; i < 2; i++)
                if (m->relay_sinks[i] && (i == 0 || m->relay_sinks[1] != m->relay_sinks[0]))
                        n += relay_sink_dropped(m->relay_sinks[i]);
        return n;
}

void manager_free_relay(Manager *m) {
        /* stdout first: its last notice still goes through the stderr sink. */
        if (m->relay_sinks[1] != m->relay_sinks[0])
                m->relay_sinks[0] = relay_sink_free(m->relay_sinks[0], USEC_PER_SEC);
        log_set_line_writer(NULL, NULL);
        m->relay_sinks[1] = relay_sink_free(m->relay_sinks[1], USEC_PER_SEC);
        m->relay_sinks[0] = NULL;
}
