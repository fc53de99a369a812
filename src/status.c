/* SPDX-License-Identifier: MIT */
/* Formatting of `corral status`: a table readable at 80 columns and the same facts as JSON. */
#include <signal.h>
#include <stdio.h>

#include "status.h"

/* A growing string; on allocation failure it turns NULL and stays so. */
typedef struct Buf {
        FILE *f;
        char *data;
        size_t size;
} Buf;

/* The first line of a status reply: "ok" for a pool that serves at full strength (running, or rolling
 * without losing capacity), "degraded" otherwise; the client turns it into its exit status. */
static const char *status_verdict(const StatusPool *p) {
        return p->state == POOL_RUNNING || p->state == POOL_RELOADING ? "ok" : "degraded";
}

/* A duration in at most 7 columns: "850ms", "12.3s", "5m07s", "3h12m", "41d02h". */
static const char *format_short(char *buf, size_t size, usec_t u) {
        if (u < USEC_PER_SEC)
                snprintf(buf, size, "%llums", (unsigned long long) (u / USEC_PER_MSEC));
        else if (u < USEC_PER_MINUTE)
                snprintf(buf, size, "%.1fs", (double) u / (double) USEC_PER_SEC);
        else if (u < USEC_PER_HOUR)
                snprintf(buf, size, "%llum%02llus", (unsigned long long) (u / USEC_PER_MINUTE),
                         (unsigned long long) (u % USEC_PER_MINUTE / USEC_PER_SEC));
        else if (u < USEC_PER_DAY)
                snprintf(buf, size, "%lluh%02llum", (unsigned long long) (u / USEC_PER_HOUR),
                         (unsigned long long) (u % USEC_PER_HOUR / USEC_PER_MINUTE));
        else
                snprintf(buf, size, "%llud%02lluh", (unsigned long long) (u / USEC_PER_DAY),
                         (unsigned long long) (u % USEC_PER_DAY / USEC_PER_HOUR));
        return buf;
}

/* "status 3 5m07s ago", "SEGV+core 2s ago", or "-". */
static const char *format_last_exit(char *buf, size_t size, const StatusWorker *w) {
        char ago[16];

        if (w->last_exit_code == 0)
                return "-";
        format_short(ago, sizeof ago, w->last_exit_ago_usec);
        if (w->last_exit_code == CLD_EXITED)
                snprintf(buf, size, "status %d %s ago", w->last_exit_status, ago);
        else
                snprintf(buf, size, "%s%s %s ago", signal_to_string(w->last_exit_status) ?: "signal",
                         w->last_exit_code == CLD_DUMPED ? "+core" : "", ago);
        return buf;
}

/* CPU use over the worker's life, in percent of one core. */
static double cpu_percent(const StatusWorker *w) {
        return w->uptime_usec > 0 ? 100.0 * (double) w->cpu_usec / (double) w->uptime_usec : 0;
}

char *status_format_table(const StatusPool *p, const StatusWorker *rows, size_t n) {
        char up[FORMAT_USEC_MAX], rdy[16], mem[FORMAT_BYTES_MAX], last[48];
        Buf b = {};

        b.f = open_memstream(&b.data, &b.size);
        if (!b.f)
                return NULL;
        fprintf(b.f, "%s\ncorral: %s, generation %u, %u/%u workers ready, up %s\nreloads: %u ok, %u failed%s\n",
                status_verdict(p), pool_state_to_string(p->state), p->generation, p->ready, p->wanted,
                format_short(up, sizeof up, p->uptime_usec), p->reloads_ok, p->reloads_failed,
                p->drained ? "; /health drained" : "");
        /* 80 columns: 5+8+4+9+7+7+7+6+5 plus spaces, and the last exit. */
        fprintf(b.f, "%-4s %-7s %-3s %-8s %-6s %-6s %-6s %-5s %-4s %s\n", "SLOT", "PID", "GEN", "STATE", "UPTIME",
                "READY", "MEM", "CPU%", "RST", "LAST EXIT");
        for (size_t i = 0; i < n; i++)
                fprintf(b.f, "%-4u %-7d %-3u %-8s %-6s %-6s %-6s %-5.1f %-4u %s\n", rows[i].slot, (int) rows[i].pid,
                        rows[i].generation, rows[i].state, format_short(up, sizeof up, rows[i].uptime_usec),
                        rows[i].ready_after_usec ? format_short(rdy, sizeof rdy, rows[i].ready_after_usec) : "-",
                        rows[i].memory_bytes ? format_bytes(mem, sizeof mem, rows[i].memory_bytes) : "-",
                        cpu_percent(&rows[i]), rows[i].restarts, format_last_exit(last, sizeof last, &rows[i]));
        if (fclose(b.f) != 0) {
                free(b.data);
                return NULL;
        }
        return b.data;
}

char *status_format_json(const StatusPool *p, const StatusWorker *rows, size_t n) {
        char last[48];
        Buf b = {};

        b.f = open_memstream(&b.data, &b.size);
        if (!b.f)
                return NULL;
        /* Every string printed here is one of ours (states), never user input: no escaping needed. */
        fprintf(b.f,
                "%s\n{\"state\":\"%s\",\"generation\":%u,\"ready\":%u,\"wanted\":%u,\"workers\":%u,"
                "\"reloads_ok\":%u,\"reloads_failed\":%u,\"uptime_usec\":%llu,\"notify_rejected\":%llu,"
                "\"drained\":%s,\"slots\":[",
                status_verdict(p), pool_state_to_string(p->state), p->generation, p->ready, p->wanted, p->workers,
                p->reloads_ok, p->reloads_failed, (unsigned long long) p->uptime_usec, (unsigned long long) p->notify_rejected,
                p->drained ? "true" : "false");
        for (size_t i = 0; i < n; i++)
                fprintf(b.f,
                        "%s{\"slot\":%u,\"pid\":%d,\"generation\":%u,\"state\":\"%s\",\"uptime_usec\":%llu,"
                        "\"ready_after_usec\":%llu,\"memory_bytes\":%llu,\"cpu_usec\":%llu,\"restarts\":%u,"
                        "\"last_exit\":%s%s%s}",
                        i ? "," : "", rows[i].slot, (int) rows[i].pid, rows[i].generation, rows[i].state,
                        (unsigned long long) rows[i].uptime_usec, (unsigned long long) rows[i].ready_after_usec,
                        (unsigned long long) rows[i].memory_bytes, (unsigned long long) rows[i].cpu_usec,
                        rows[i].restarts, rows[i].last_exit_code ? "\"" : "null",
                        rows[i].last_exit_code ? format_last_exit(last, sizeof last, &rows[i]) : "",
                        rows[i].last_exit_code ? "\"" : "");
        fputs("]}\n", b.f);
        if (fclose(b.f) != 0) {
                free(b.data);
                return NULL;
        }
        return b.data;
}

static bool status_healthy(const StatusPool *p) {
        unsigned need = p->min_ready > 0 ? MIN(p->min_ready, p->wanted) : p->wanted;

        return !p->drained && p->state != POOL_STOPPING && p->wanted > 0 && p->ready >= need;
}

int status_format_health(const StatusPool *p, char **ret_body) {
        bool ok = status_healthy(p);

        *ret_body = strdup_printf("{\"status\":\"%s\",\"state\":\"%s\",\"ready\":%u,\"wanted\":%u,\"min_ready\":%u,"
                                  "\"generation\":%u,\"drained\":%s}\n",
                                  ok ? "ok" : "unavailable", pool_state_to_string(p->state), p->ready, p->wanted,
                                  p->min_ready > 0 ? MIN(p->min_ready, p->wanted) : p->wanted, p->generation,
                                  p->drained ? "true" : "false");
        return ok ? 200 : 503;
}

void status_count_reload(StatusCounters *c, usec_t duration) {
        static const unsigned bounds[STATUS_RELOAD_BUCKETS_N] = STATUS_RELOAD_BUCKETS;
        size_t i = 0;

        while (i < STATUS_RELOAD_BUCKETS_N && duration > bounds[i] * USEC_PER_SEC)
                i++;
        c->reload_buckets[i]++;
        c->reload_seconds_sum += (double) duration / (double) USEC_PER_SEC;
}

char *status_format_metrics(const StatusPool *p, const StatusWorker *rows, size_t n) {
        static const unsigned bounds[STATUS_RELOAD_BUCKETS_N] = STATUS_RELOAD_BUCKETS;
        const StatusCounters *c = p->counters;
        uint64_t cumulative = 0;
        Buf b = {};

        b.f = open_memstream(&b.data, &b.size);
        if (!b.f)
                return NULL;

        fputs("# HELP corral_workers Worker processes by state.\n# TYPE corral_workers gauge\n", b.f);
        fprintf(b.f, "corral_workers{state=\"starting\"} %u\ncorral_workers{state=\"ready\"} %u\n"
                     "corral_workers{state=\"stopping\"} %u\n",
                p->starting, p->workers - p->starting - p->stopping, p->stopping);
        fprintf(b.f, "# HELP corral_workers_wanted Slots the pool keeps.\n# TYPE corral_workers_wanted gauge\n"
                     "corral_workers_wanted %u\n", p->wanted);
        fprintf(b.f, "# HELP corral_slots_ready Slots with a ready worker.\n# TYPE corral_slots_ready gauge\n"
                     "corral_slots_ready %u\n", p->ready);
        fprintf(b.f, "# HELP corral_generation Generation new workers start as.\n# TYPE corral_generation gauge\n"
                     "corral_generation %u\n", p->generation);
        fprintf(b.f, "# HELP corral_drained 1 while /health is drained.\n# TYPE corral_drained gauge\n"
                     "corral_drained %d\n", p->drained ? 1 : 0);
        fprintf(b.f, "# HELP corral_uptime_seconds Time since corral started.\n# TYPE corral_uptime_seconds gauge\n"
                     "corral_uptime_seconds %.3f\n", (double) p->uptime_usec / (double) USEC_PER_SEC);

        fputs("# HELP corral_worker_restarts_total Workers replaced because they ended unexpectedly.\n"
              "# TYPE corral_worker_restarts_total counter\n", b.f);
        fprintf(b.f, "corral_worker_restarts_total{reason=\"crash\"} %llu\n"
                     "corral_worker_restarts_total{reason=\"failed-start\"} %llu\n",
                (unsigned long long) c->crashes, (unsigned long long) c->failed_starts);
        fputs("# HELP corral_worker_recycles_total Workers replaced start-first, by reason.\n"
              "# TYPE corral_worker_recycles_total counter\n", b.f);
        for (RecycleReason r = RECYCLE_MEMORY; r < _RECYCLE_REASON_MAX; r++)
                fprintf(b.f, "corral_worker_recycles_total{reason=\"%s\"} %llu\n", recycle_reason_to_string(r),
                        (unsigned long long) c->recycles[r]);

        fprintf(b.f, "# HELP corral_reloads_total Rolling reloads by result.\n# TYPE corral_reloads_total counter\n"
                     "corral_reloads_total{result=\"ok\"} %u\ncorral_reloads_total{result=\"failed\"} %u\n",
                p->reloads_ok, p->reloads_failed);
        fputs("# HELP corral_reload_duration_seconds Time from a reload request to its end.\n"
              "# TYPE corral_reload_duration_seconds histogram\n", b.f);
        for (size_t i = 0; i < STATUS_RELOAD_BUCKETS_N; i++) {
                cumulative += c->reload_buckets[i];
                fprintf(b.f, "corral_reload_duration_seconds_bucket{le=\"%u\"} %llu\n", bounds[i],
                        (unsigned long long) cumulative);
        }
        cumulative += c->reload_buckets[STATUS_RELOAD_BUCKETS_N];
        fprintf(b.f, "corral_reload_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                     "corral_reload_duration_seconds_sum %.6f\ncorral_reload_duration_seconds_count %llu\n",
                (unsigned long long) cumulative, c->reload_seconds_sum, (unsigned long long) cumulative);

        fprintf(b.f, "# HELP corral_notify_rejected_total Notifications dropped: not from a worker, or malformed.\n"
                     "# TYPE corral_notify_rejected_total counter\ncorral_notify_rejected_total %llu\n",
                (unsigned long long) p->notify_rejected);
        fprintf(b.f, "# HELP corral_signals_relayed_total Signals passed on to the workers.\n"
                     "# TYPE corral_signals_relayed_total counter\ncorral_signals_relayed_total %llu\n",
                (unsigned long long) c->relayed_signals);

        fputs("# HELP corral_worker_memory_bytes Memory of each worker.\n# TYPE corral_worker_memory_bytes gauge\n",
              b.f);
        for (size_t i = 0; i < n; i++)
                fprintf(b.f, "corral_worker_memory_bytes{slot=\"%u\",pid=\"%d\",generation=\"%u\"} %llu\n",
                        rows[i].slot, (int) rows[i].pid, rows[i].generation, (unsigned long long) rows[i].memory_bytes);
        fputs("# HELP corral_worker_cpu_seconds_total CPU time of each worker.\n"
              "# TYPE corral_worker_cpu_seconds_total counter\n", b.f);
        for (size_t i = 0; i < n; i++)
                fprintf(b.f, "corral_worker_cpu_seconds_total{slot=\"%u\",pid=\"%d\",generation=\"%u\"} %.6f\n",
                        rows[i].slot, (int) rows[i].pid, rows[i].generation,
                        (double) rows[i].cpu_usec / (double) USEC_PER_SEC);

        if (fclose(b.f) != 0) {
                free(b.data);
                return NULL;
        }
        return b.data;
}
