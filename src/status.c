/* SPDX-License-Identifier: MIT */
/* Formatting of `corral status` (a table for people, JSON for programs: docs/status.schema.json), /health
 * and /metrics. */
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "json.h"
#include "status.h"

/* A growing string; on allocation failure it turns NULL and stays so. */
typedef struct Buf {
        FILE *f;
        char *data;
        size_t size;
} Buf;

static bool buf_open(Buf *b) {
        *b = (Buf) {};
        b->f = open_memstream(&b->data, &b->size);
        return b->f;
}

/* Returns the text, or NULL when writing it failed. */
static char *buf_close(Buf *b) {
        if (fclose(b->f) != 0) {
                free(b->data);
                return NULL;
        }
        return b->data;
}

/* The first line of a status reply: "ok" for a pool that serves at full strength (running, or rolling
 * without losing capacity), "degraded" otherwise; the client turns it into its exit status. */
static const char *status_verdict(const StatusPool *p) {
        return p->state == POOL_RUNNING || p->state == POOL_RELOADING ? "ok" : "degraded";
}

/* A duration in at most 6 columns: "850ms", "12.3s", "5m07s", "3h12m", "41d02h". */
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

/* A CLOCK_REALTIME time in local time, as the journal shows it: "2024-03-01 09:00:00 UTC". */
static const char *format_realtime(char *buf, size_t size, usec_t u) {
        time_t t = (time_t) (u / USEC_PER_SEC);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "@%llu", (unsigned long long) (u / USEC_PER_SEC));
        return buf;
}

/* A signal's name without "SIG": "SEGV", "RTMIN+3" (as signal_from_string() reads them), or NULL for a
 * number without one. glibc reserves the first real-time signals, so SIGRTMIN is known at run time only. */
#define SIGNAL_NAME_MAX 16
static const char *signal_name(char *buf, size_t size, int sig) {
        if (signal_to_string(sig))
                return signal_to_string(sig);
        if (sig < SIGRTMIN || sig > SIGRTMAX)
                return NULL;
        if (sig == SIGRTMIN)
                return "RTMIN";
        snprintf(buf, size, "RTMIN+%d", sig - SIGRTMIN);
        return buf;
}

/* siginfo's si_code of an exit, as systemd names it (ExecMainCode=). */
static const char *exit_code_to_string(int code) {
        return code == CLD_EXITED ? "exited" : code == CLD_DUMPED ? "dumped" : "killed";
}

/* "status 3 5m07s ago", "SEGV+core 2.0s ago", "RTMIN+3 1.0s ago", "signal 32 1.0s ago", or "-". */
static const char *format_last_exit(char *buf, size_t size, const StatusWorker *w) {
        char ago[16], sig[SIGNAL_NAME_MAX];
        const char *name;

        if (w->last_exit_code == 0)
                return "-";
        format_short(ago, sizeof ago, w->last_exit_ago_usec);
        name = signal_name(sig, sizeof sig, w->last_exit_status);
        if (w->last_exit_code == CLD_EXITED)
                snprintf(buf, size, "status %d %s ago", w->last_exit_status, ago);
        else if (name)
                snprintf(buf, size, "%s%s %s ago", name, w->last_exit_code == CLD_DUMPED ? "+core" : "", ago);
        else
                snprintf(buf, size, "signal %d%s %s ago", w->last_exit_status,
                         w->last_exit_code == CLD_DUMPED ? "+core" : "", ago);
        return buf;
}

/* CPU use over the worker's life, in percent of one core. */
static double cpu_percent(const StatusWorker *w) {
        return w->uptime_usec > 0 ? 100.0 * (double) w->cpu_usec / (double) w->uptime_usec : 0;
}

static uint64_t total_memory(const StatusWorker *rows, size_t n) {
        uint64_t sum = 0;

        for (size_t i = 0; i < n; i++)
                sum += rows[i].memory_bytes;
        return sum;
}

/* A command-line argument or a path for people: as it is where the shell would take it so, else in single
 * quotes, with control characters as \xNN so that it stays on its line (the JSON has the exact bytes). */
static void table_word(FILE *f, const char *s) {
        static const char plain[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-";

        if (*s && s[strspn(s, plain)] == 0) {
                fputs(s, f);
                return;
        }
        fputc('\'', f);
        for (const unsigned char *c = (const unsigned char *) s; *c; c++)
                if (*c == '\'')
                        fputs("'\\''", f);
                else if (*c < 0x20 || *c == 0x7f)
                        fprintf(f, "\\x%02x", *c);
                else
                        fputc(*c, f);
        fputc('\'', f);
}

/* corral's own facts, labelled the way `systemctl status` labels a unit's. */
static void table_facts(FILE *f, const StatusPool *p, const StatusWorker *rows, size_t n) {
        char since[64], up[16], mem[FORMAT_BYTES_MAX];
        uint64_t memory = total_memory(rows, n);

        format_realtime(since, sizeof since, p->start_time_usec);
        fprintf(f, "     since: %s; up %s\n   command:", since, format_short(up, sizeof up, p->uptime_usec));
        for (char *const *a = p->command; a && *a; a++) {
                fputc(' ', f);
                table_word(f, *a);
        }
        fputs("\n   sockets: ", f);
        if (p->n_sockets == 0)
                fputs("none", f);
        for (size_t i = 0; i < p->n_sockets; i++) {
                fprintf(f, "%s%s=%s", i > 0 ? ", " : "", p->sockets[i].name, p->sockets[i].address);
                if (!streq(p->sockets[i].type, "stream"))
                        fprintf(f, " (%s)", p->sockets[i].type);
                if (p->sockets[i].has_queue)
                        fprintf(f, " (%" PRIu32 " waiting of %" PRIu32 ")", p->sockets[i].queued, p->sockets[i].backlog);
        }
        fprintf(f, "\n    health: %s\n   control: ", p->health_listen ?: "none");
        if (p->control_path)
                table_word(f, p->control_path);
        else
                fputs("none", f);
        fputs("\n    config: ", f);
        if (p->config_path)
                table_word(f, p->config_path);
        else
                fputs("none (command line only)", f);
        if (p->accounting)
                fprintf(f, "\naccounting: %s, memory from %s\n", p->accounting, p->memory_source);
        else
                fputs("\naccounting: none\n", f);
        if (memory > 0)
                fprintf(f, "    memory: %s in %zu worker%s\n", format_bytes(mem, sizeof mem, memory), n,
                        n == 1 ? "" : "s");
        else
                fputs("    memory: -\n", f);
        fprintf(f, "   reloads: %llu ok, %llu failed%s\n", (unsigned long long) p->counters->reloads_ok,
                (unsigned long long) p->counters->reloads_failed, p->drained ? "; /health drained" : "");
}

char *status_format_table(const StatusPool *p, const StatusWorker *rows, size_t n) {
        char up[16], rdy[16], mem[FORMAT_BYTES_MAX], last[48];
        Buf b;

        if (!buf_open(&b))
                return NULL;
        fprintf(b.f, "%s\n%s: corral %s, pid %d: %s, generation %u, %u/%u workers ready\n", status_verdict(p),
                p->name, p->version, (int) p->pid, pool_state_to_string(p->state), p->generation, p->ready,
                p->wanted);
        table_facts(b.f, p, rows, n);

        /* About 100 columns: 4+7+10+8+6+11+7+6+8 plus spaces, and the last exit; with Balance=reuseport,
         * the slot's queue and the connections steered to it before that. */
        fprintf(b.f, "\n%-4s %-7s %-10s %-8s %-6s %-11s %-7s %-6s %-8s ", "SLOT", "PID", "GENERATION", "STATE",
                "UPTIME", "READY AFTER", "MEMORY", "CPU%", "RESTARTS");
        if (p->slots)
                fprintf(b.f, "%-6s %-11s ", "QUEUED", "CONNECTIONS");
        fputs("LAST EXIT\n", b.f);
        for (size_t i = 0; i < n; i++) {
                const StatusWorker *w = &rows[i];

                fprintf(b.f, "%-4u %-7d %-10u %-8s %-6s %-11s %-7s %-6.1f %-8u ", w->slot, (int) w->pid,
                        w->generation, worker_state_to_string(w->state),
                        format_short(up, sizeof up, w->uptime_usec),
                        w->ready_after_usec ? format_short(rdy, sizeof rdy, w->ready_after_usec) : "-",
                        w->memory_bytes ? format_bytes(mem, sizeof mem, w->memory_bytes) : "-",
                        cpu_percent(w), w->restarts);
                if (p->slots) {
                        const StatusSlot *sl = w->slot < p->n_slots ? &p->slots[w->slot] : NULL;
                        char q[16] = "-", c[24] = "-";

                        if (sl && sl->has_sockets)
                                snprintf(q, sizeof q, "%" PRIu32, sl->queued);
                        if (sl && sl->has_connections)
                                snprintf(c, sizeof c, "%" PRIu64, sl->connections);
                        fprintf(b.f, "%-6s %-11s ", q, c);
                }
                fprintf(b.f, "%s\n", format_last_exit(last, sizeof last, w));
        }
        return buf_close(&b);
}

/* A JSON string, or null for NULL. Commands and paths are anyone's bytes: json_escape() keeps the output
 * JSON whatever they hold. */
static void json_string(FILE *f, const char *s) {
        char buf[JSON_ESCAPE_MAX(256)];
        size_t n;

        if (!s) {
                fputs("null", f);
                return;
        }
        fputc('"', f);
        for (n = strlen(s); n > 0;) {
                size_t k = json_piece(s, n, 256);

                fwrite(buf, 1, json_escape(buf, s, k), f);
                s += k;
                n -= k;
        }
        fputc('"', f);
}

static void json_last_exit(FILE *f, const StatusWorker *w) {
        char sig[SIGNAL_NAME_MAX];

        if (w->last_exit_code == 0) {
                fputs("null", f);
                return;
        }
        fprintf(f, "{\"code\":\"%s\",\"status\":%d,\"signal\":", exit_code_to_string(w->last_exit_code),
                w->last_exit_status);
        /* "signal" is null for an exit status, and for a signal without a name (the number is "status"). */
        json_string(f, w->last_exit_code != CLD_EXITED ? signal_name(sig, sizeof sig, w->last_exit_status) : NULL);
        fprintf(f, ",\"core_dumped\":%s,\"ago_usec\":%llu}",
                w->last_exit_code == CLD_DUMPED ? "true" : "false", (unsigned long long) w->last_exit_ago_usec);
}

static void json_worker(FILE *f, const StatusWorker *w) {
        fprintf(f, "{\"slot\":%u,\"pid\":%d,\"generation\":%u,\"state\":\"%s\",\"uptime_usec\":%llu,"
                   "\"ready_after_usec\":",
                w->slot, (int) w->pid, w->generation, worker_state_to_string(w->state),
                (unsigned long long) w->uptime_usec);
        if (w->ready_after_usec)
                fprintf(f, "%llu", (unsigned long long) w->ready_after_usec);
        else
                fputs("null", f);
        fprintf(f, ",\"memory_bytes\":%llu,\"cpu_usec\":%llu,\"restarts\":%u,\"last_exit\":",
                (unsigned long long) w->memory_bytes, (unsigned long long) w->cpu_usec, w->restarts);
        json_last_exit(f, w);
        fputc('}', f);
}

char *status_format_summary(const StatusPool *p) {
        return strdup_printf("ok\n%s\t%d\t%s\t%u\t%u\t%u\n", p->name, (int) p->pid, pool_state_to_string(p->state),
                             p->ready, p->wanted, p->generation);
}

char *status_format_json(const StatusPool *p, const StatusWorker *rows, size_t n) {
        Buf b;

        if (!buf_open(&b))
                return NULL;
        fprintf(b.f, "%s\n{\"name\":", status_verdict(p));
        json_string(b.f, p->name);
        fprintf(b.f, ",\"pid\":%d,\"version\":", (int) p->pid);
        json_string(b.f, p->version);
        fputs(",\"control\":", b.f);
        if (p->control_path)
                json_string(b.f, p->control_path);
        else
                fputs("null", b.f);
        fprintf(b.f,
                ",\"state\":\"%s\",\"generation\":%u,\"ready\":%u,\"wanted\":%u,\"processes\":%u,\"drained\":%s,"
                "\"start_time_usec\":%llu,\"uptime_usec\":%llu,\"command\":[",
                pool_state_to_string(p->state), p->generation, p->ready, p->wanted, p->processes,
                p->drained ? "true" : "false", (unsigned long long) p->start_time_usec,
                (unsigned long long) p->uptime_usec);
        for (char *const *a = p->command; a && *a; a++) {
                if (a != p->command)
                        fputc(',', b.f);
                json_string(b.f, *a);
        }
        fputs("],\"sockets\":[", b.f);
        for (size_t i = 0; i < p->n_sockets; i++) {
                fputs(i > 0 ? ",{\"name\":" : "{\"name\":", b.f);
                json_string(b.f, p->sockets[i].name);
                fputs(",\"address\":", b.f);
                json_string(b.f, p->sockets[i].address);
                fprintf(b.f, ",\"type\":\"%s\"", p->sockets[i].type);
                if (p->sockets[i].has_queue)
                        fprintf(b.f, ",\"queued\":%" PRIu32 ",\"backlog\":%" PRIu32, p->sockets[i].queued,
                                p->sockets[i].backlog);
                fputc('}', b.f);
        }
        fputc(']', b.f);
        if (p->slots) {
                bool first = true;

                fputs(",\"slots\":[", b.f);
                for (size_t k = 0; k < p->n_slots; k++) {
                        if (!p->slots[k].has_sockets)
                                continue;
                        fprintf(b.f, "%s{\"slot\":%zu,\"queued\":%" PRIu32, first ? "" : ",", k,
                                p->slots[k].queued);
                        if (p->slots[k].has_connections)
                                fprintf(b.f, ",\"connections\":%" PRIu64, p->slots[k].connections);
                        fputc('}', b.f);
                        first = false;
                }
                fputc(']', b.f);
        }
        fputs(",\"health_listen\":", b.f);
        json_string(b.f, p->health_listen);
        fputs(",\"config\":", b.f);
        json_string(b.f, p->config_path);
        if (p->accounting)
                fprintf(b.f, ",\"accounting\":{\"backend\":\"%s\",\"memory_source\":\"%s\"}", p->accounting,
                        p->memory_source);
        else
                fputs(",\"accounting\":null", b.f);
        fprintf(b.f,
                ",\"memory_bytes\":%llu,\"reloads_ok\":%llu,\"reloads_failed\":%llu,\"notify_rejected\":%llu,"
                "\"workers\":[",
                (unsigned long long) total_memory(rows, n), (unsigned long long) p->counters->reloads_ok,
                (unsigned long long) p->counters->reloads_failed, (unsigned long long) p->notify_rejected);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        fputc(',', b.f);
                json_worker(b.f, &rows[i]);
        }
        fputs("]}\n", b.f);
        return buf_close(&b);
}

/* How the pool stands for a load balancer: out (drained, stopping, below MinReady=, nothing wanted), in at
 * full strength (every wanted slot ready), or in with fewer than wanted. */
typedef enum Standing {
        STANDING_OUT,
        STANDING_DEGRADED,
        STANDING_FULL,
} Standing;

static unsigned status_min_ready(const StatusPool *p) {
        return p->min_ready > 0 ? MIN(p->min_ready, p->wanted) : p->wanted;
}

static Standing status_standing(const StatusPool *p) {
        if (p->drained || p->stop_pending || p->state == POOL_STOPPING || p->wanted == 0 ||
            p->ready < status_min_ready(p))
                return STANDING_OUT;
        return p->ready >= p->wanted ? STANDING_FULL : STANDING_DEGRADED;
}

int status_format_health(const StatusPool *p, HealthCheck check, char **ret_body) {
        static const char *const words[] = {
                [STANDING_OUT] = "unavailable", [STANDING_DEGRADED] = "degraded", [STANDING_FULL] = "ok"
        };
        Standing st = status_standing(p);
        int code;

        if (st == STANDING_OUT)
                code = 503;
        else if (st == STANDING_DEGRADED && check == HEALTH_CHECK_GRADED)
                code = 429; /* Consul's "warning"; still above the bar */
        else
                code = 200;
        *ret_body = strdup_printf("{\"status\":\"%s\",\"state\":\"%s\",\"ready\":%u,\"wanted\":%u,\"min_ready\":%u,"
                                  "\"generation\":%u,\"drained\":%s}\n",
                                  words[st], pool_state_to_string(p->state), p->ready, p->wanted, status_min_ready(p),
                                  p->generation, p->drained ? "true" : "false");
        return code;
}

char *status_format_agent(const StatusPool *p) {
        unsigned percent;

        /* The admin state first: an operator's drain stands even while workers come and go. */
        if (p->state == POOL_STOPPING || p->stop_pending)
                return strdup("down #stopping\n");
        if (p->drained)
                return strdup("drain #drained\n");
        if (p->ready == 0 || p->wanted == 0)
                return strdup_printf("down #no worker ready (0/%u)\n", p->wanted);
        /* Rounded down but never 0%, which HAProxy reads as a drain; a surge above wanted is 100%. */
        percent = (unsigned) MIN((uint64_t) p->ready * 100 / p->wanted, 100U);
        return strdup_printf("up ready %u%% #%u/%u workers ready\n", MAX(percent, 1U), p->ready, p->wanted);
}

void status_count_reload(StatusCounters *c, bool ok, usec_t duration, usec_t end_realtime) {
        static const unsigned bounds[STATUS_RELOAD_BUCKETS_N] = STATUS_RELOAD_BUCKETS;
        size_t i = 0;

        if (ok)
                c->reloads_ok++;
        else
                c->reloads_failed++;
        c->last_reload_failed = !ok;
        c->last_reload_end_usec = end_realtime;
        while (i < STATUS_RELOAD_BUCKETS_N && duration > bounds[i] * USEC_PER_SEC)
                i++;
        c->reload_buckets[i]++;
        c->reload_seconds_sum += (double) duration / (double) USEC_PER_SEC;
}

/* Whether rows[i] speaks for its slot in /metrics. A slot's series must stay the same series across
 * replacements (a dashboard keeps its history, a join on corral_worker_info finds one worker), so each slot
 * has one: its serving worker, the ready one not being stopped, else its first starting one. A replacement
 * still starting beside a ready worker and the workers being stopped are left out. */
static bool row_speaks_for_slot(const StatusWorker *rows, size_t n, size_t i) {
        if (rows[i].state == WORKER_STOPPING)
                return false;
        if (rows[i].state == WORKER_READY)
                return true;
        /* Starting: it speaks unless its slot has a ready worker or an earlier starting one. */
        for (size_t j = i; j > 0 && rows[j - 1].slot == rows[i].slot; j--)
                if (rows[j - 1].state != WORKER_STOPPING)
                        return false;
        for (size_t j = i + 1; j < n && rows[j].slot == rows[i].slot; j++)
                if (rows[j].state == WORKER_READY)
                        return false;
        return true;
}

static void metric_header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value in the exposition format's escaping: backslash, double quote and line feed. */
static void metric_label_value(FILE *f, const char *v) {
        for (; *v; v++)
                if (*v == '\\' || *v == '"')
                        fprintf(f, "\\%c", *v);
                else if (*v == '\n')
                        fputs("\\n", f);
                else
                        fputc(*v, f);
}

/* The accept queues of the TCP listeners: one gauge of what waits, one of the limit. */
static void metrics_listen_queues(FILE *f, const StatusPool *p) {
        static const struct {
                const char *name, *help;
        } gauges[] = {
                { "corral_listen_queue_length", "Connections waiting in a listening socket's accept queue." },
                { "corral_listen_queue_limit", "How many connections a listening socket's accept queue holds." },
        };

        for (size_t g = 0; g < ELEMENTSOF(gauges); g++) {
                metric_header(f, gauges[g].name, "gauge", gauges[g].help);
                for (size_t i = 0; i < p->n_sockets; i++) {
                        if (!p->sockets[i].has_queue)
                                continue;
                        fprintf(f, "%s{socket=\"", gauges[g].name);
                        metric_label_value(f, p->sockets[i].name);
                        fputs("\",address=\"", f);
                        metric_label_value(f, p->sockets[i].address);
                        fprintf(f, "\"} %" PRIu32 "\n", g == 0 ? p->sockets[i].queued : p->sockets[i].backlog);
                }
        }
}

/* Balance=reuseport: each slot's queue, and the connections the even steering handed it. */
static void metrics_slots(FILE *f, const StatusPool *p) {
        bool counted = false;

        if (!p->slots)
                return;
        metric_header(f, "corral_slot_listen_queue_length", "gauge",
                      "Connections waiting in the accept queues of a slot's own sockets (Balance=reuseport).");
        for (size_t k = 0; k < p->n_slots; k++) {
                if (p->slots[k].has_sockets)
                        fprintf(f, "corral_slot_listen_queue_length{slot=\"%zu\"} %" PRIu32 "\n", k,
                                p->slots[k].queued);
                counted = counted || p->slots[k].has_connections;
        }
        if (!counted)
                return;
        metric_header(f, "corral_slot_connections_total", "counter",
                      "New connections the even steering handed to a slot's sockets (Balance=reuseport, eBPF).");
        for (size_t k = 0; k < p->n_slots; k++)
                if (p->slots[k].has_connections)
                        fprintf(f, "corral_slot_connections_total{slot=\"%zu\"} %" PRIu64 "\n", k,
                                p->slots[k].connections);
}

char *status_format_metrics(const StatusPool *p, const StatusWorker *rows, size_t n) {
        static const unsigned bounds[STATUS_RELOAD_BUCKETS_N] = STATUS_RELOAD_BUCKETS;
        const StatusCounters *c = p->counters;
        uint64_t cumulative = 0;
        Buf b;

        if (!buf_open(&b))
                return NULL;

        /* The version is ours (a compile definition): no label escaping needed. */
        metric_header(b.f, "corral_build_info", "gauge", "The version of corral, in the label; always 1.");
        fprintf(b.f, "corral_build_info{version=\"%s\"} 1\n", p->version);
        metric_header(b.f, "process_start_time_seconds", "gauge",
                      "Start time of the process since unix epoch in seconds.");
        fprintf(b.f, "process_start_time_seconds %.6f\n", (double) p->start_time_usec / (double) USEC_PER_SEC);

        metric_header(b.f, "corral_workers", "gauge", "Worker processes by state.");
        fprintf(b.f,
                "corral_workers{state=\"starting\"} %u\ncorral_workers{state=\"ready\"} %u\n"
                "corral_workers{state=\"stopping\"} %u\n",
                p->starting, p->processes - p->starting - p->stopping, p->stopping);
        metric_header(b.f, "corral_workers_wanted", "gauge", "Slots the pool keeps.");
        fprintf(b.f, "corral_workers_wanted %u\n", p->wanted);
        metric_header(b.f, "corral_slots_ready", "gauge", "Slots with a ready worker.");
        fprintf(b.f, "corral_slots_ready %u\n", p->ready);
        metric_header(b.f, "corral_generation", "gauge", "Generation new workers start as.");
        fprintf(b.f, "corral_generation %u\n", p->generation);
        metric_header(b.f, "corral_drained", "gauge", "1 while /health is drained.");
        fprintf(b.f, "corral_drained %d\n", p->drained ? 1 : 0);
        metric_header(b.f, "corral_orphans_reaped_total", "counter",
                      "Processes corral reaped that it did not start: orphans of the workers' children.");
        fprintf(b.f, "corral_orphans_reaped_total %" PRIu64 "\n", p->counters->orphans_reaped);
        if (p->has_connections) {
                metric_header(b.f, "corral_connections", "gauge",
                              "TCP connections open on the workers' listening addresses (accepted or queued).");
                fprintf(b.f, "corral_connections %" PRIu64 "\n", p->connections);
        }

        metric_header(b.f, "corral_worker_restarts_total", "counter",
                      "Workers replaced because they ended unexpectedly.");
        fprintf(b.f, "corral_worker_restarts_total{reason=\"crash\"} %llu\n"
                     "corral_worker_restarts_total{reason=\"failed-start\"} %llu\n",
                (unsigned long long) c->crashes, (unsigned long long) c->failed_starts);
        metric_header(b.f, "corral_worker_recycles_total", "counter",
                      "Workers replaced start-first, by reason.");
        for (RecycleReason r = RECYCLE_MEMORY; r < _RECYCLE_REASON_MAX; r++)
                fprintf(b.f, "corral_worker_recycles_total{reason=\"%s\"} %llu\n", recycle_reason_to_string(r),
                        (unsigned long long) c->recycles[r]);

        metric_header(b.f, "corral_reloads_total", "counter", "Rolling reloads by result.");
        fprintf(b.f,
                "corral_reloads_total{result=\"ok\"} %llu\ncorral_reloads_total{result=\"failed\"} %llu\n",
                (unsigned long long) c->reloads_ok, (unsigned long long) c->reloads_failed);
        /* Before any reload, the configuration corral started with is the last one that loaded. */
        metric_header(b.f, "corral_last_reload_successful", "gauge", "0 when the last reload failed, else 1.");
        fprintf(b.f, "corral_last_reload_successful %d\n", c->last_reload_failed ? 0 : 1);
        metric_header(b.f, "corral_last_reload_timestamp_seconds", "gauge",
                      "When the last reload ended (before any: the start), Unix time.");
        fprintf(b.f, "corral_last_reload_timestamp_seconds %.6f\n",
                (double) (c->last_reload_end_usec ?: p->start_time_usec) / (double) USEC_PER_SEC);
        metric_header(b.f, "corral_reload_duration_seconds", "histogram",
                      "Time from a reload request to its end.");
        for (size_t i = 0; i < STATUS_RELOAD_BUCKETS_N; i++) {
                cumulative += c->reload_buckets[i];
                fprintf(b.f, "corral_reload_duration_seconds_bucket{le=\"%u\"} %llu\n", bounds[i],
                        (unsigned long long) cumulative);
        }
        cumulative += c->reload_buckets[STATUS_RELOAD_BUCKETS_N];
        fprintf(b.f, "corral_reload_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                     "corral_reload_duration_seconds_sum %.6f\ncorral_reload_duration_seconds_count %llu\n",
                (unsigned long long) cumulative, c->reload_seconds_sum, (unsigned long long) cumulative);

        metric_header(b.f, "corral_notify_rejected_total", "counter",
                      "Notifications dropped: not from a worker, or malformed.");
        fprintf(b.f, "corral_notify_rejected_total %llu\n", (unsigned long long) p->notify_rejected);
        metric_header(b.f, "corral_signals_relayed_total", "counter", "Signals passed on to the workers.");
        fprintf(b.f, "corral_signals_relayed_total %llu\n", (unsigned long long) c->relayed_signals);
        metric_header(b.f, "corral_worker_output_dropped_lines_total", "counter",
                      "Lines of worker output dropped because corral's output was not keeping up.");
        fprintf(b.f, "corral_worker_output_dropped_lines_total %llu\n", (unsigned long long) p->output_dropped);

        if (p->accounting) {
                metric_header(b.f, "corral_accounting_pass_seconds", "gauge",
                              "Time the last accounting pass over the workers took, all its batches together.");
                fprintf(b.f, "corral_accounting_pass_seconds %.6f\n",
                        (double) p->sample_busy_usec / (double) USEC_PER_SEC);
                metric_header(b.f, "corral_accounting_batch_seconds_max", "gauge",
                              "The longest batch of the last accounting pass: the longest it held the event loop.");
                fprintf(b.f, "corral_accounting_batch_seconds_max %.6f\n",
                        (double) p->sample_longest_usec / (double) USEC_PER_SEC);
                metric_header(b.f, "corral_accounting_pass_batches", "gauge",
                              "Batches, each one turn of the event loop, of the last accounting pass.");
                fprintf(b.f, "corral_accounting_pass_batches %u\n", p->sample_batches);
        }
        metrics_listen_queues(b.f, p);
        metrics_slots(b.f, p);
        metric_header(b.f, "corral_worker_info", "gauge",
                      "The worker serving each slot: its pid and generation.");
        for (size_t i = 0; i < n; i++)
                if (row_speaks_for_slot(rows, n, i))
                        fprintf(b.f, "corral_worker_info{slot=\"%u\",pid=\"%d\",generation=\"%u\"} 1\n",
                                rows[i].slot, (int) rows[i].pid, rows[i].generation);
        metric_header(b.f, "corral_worker_memory_bytes", "gauge", "Memory of the worker serving each slot.");
        for (size_t i = 0; i < n; i++)
                if (row_speaks_for_slot(rows, n, i))
                        fprintf(b.f, "corral_worker_memory_bytes{slot=\"%u\"} %llu\n", rows[i].slot,
                                (unsigned long long) rows[i].memory_bytes);
        metric_header(b.f, "corral_worker_cpu_seconds_total", "counter",
                      "CPU time of the worker serving each slot.");
        for (size_t i = 0; i < n; i++)
                if (row_speaks_for_slot(rows, n, i))
                        fprintf(b.f, "corral_worker_cpu_seconds_total{slot=\"%u\"} %.6f\n", rows[i].slot,
                                (double) rows[i].cpu_usec / (double) USEC_PER_SEC);
        return buf_close(&b);
}
