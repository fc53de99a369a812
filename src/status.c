/* SPDX-License-Identifier: MIT */
/* Formatting of `corral status`: a table readable at 80 columns and the same facts as JSON. */
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
        return streq(p->state, "running") || streq(p->state, "reloading") ? "ok" : "degraded";
}

char *status_format_table(const StatusPool *p, const StatusWorker *rows, size_t n) {
        char up[FORMAT_USEC_MAX], rdy[FORMAT_USEC_MAX], mem[FORMAT_BYTES_MAX];
        Buf b = {};

        b.f = open_memstream(&b.data, &b.size);
        if (!b.f)
                return NULL;
        fprintf(b.f, "%s\ncorral: %s, generation %u, %u/%u workers ready, reloads %u ok / %u failed, up %s\n",
                status_verdict(p), p->state, p->generation, p->ready, p->wanted, p->reloads_ok, p->reloads_failed,
                format_usec(up, sizeof up, p->uptime_usec));
        fprintf(b.f, "%-5s %-8s %-4s %-9s %-12s %-10s %-9s %s\n", "SLOT", "PID", "GEN", "STATE", "UPTIME", "READY-IN",
                "MEMORY", "RESTARTS");
        for (size_t i = 0; i < n; i++)
                fprintf(b.f, "%-5u %-8d %-4u %-9s %-12s %-10s %-9s %u\n", rows[i].slot, (int) rows[i].pid,
                        rows[i].generation, rows[i].state, format_usec(up, sizeof up, rows[i].uptime_usec),
                        rows[i].ready_after_usec ? format_usec(rdy, sizeof rdy, rows[i].ready_after_usec) : "-",
                        rows[i].memory_bytes ? format_bytes(mem, sizeof mem, rows[i].memory_bytes) : "-",
                        rows[i].restarts);
        if (fclose(b.f) != 0) {
                free(b.data);
                return NULL;
        }
        return b.data;
}

char *status_format_json(const StatusPool *p, const StatusWorker *rows, size_t n) {
        Buf b = {};

        b.f = open_memstream(&b.data, &b.size);
        if (!b.f)
                return NULL;
        /* Every string printed here is one of ours (states), never user input: no escaping needed. */
        fprintf(b.f,
                "%s\n{\"state\":\"%s\",\"generation\":%u,\"ready\":%u,\"wanted\":%u,\"workers\":%u,"
                "\"reloads_ok\":%u,\"reloads_failed\":%u,\"uptime_usec\":%llu,\"notify_rejected\":%llu,\"slots\":[",
                status_verdict(p), p->state, p->generation, p->ready, p->wanted, p->workers, p->reloads_ok,
                p->reloads_failed,
                (unsigned long long) p->uptime_usec, (unsigned long long) p->notify_rejected);
        for (size_t i = 0; i < n; i++)
                fprintf(b.f,
                        "%s{\"slot\":%u,\"pid\":%d,\"generation\":%u,\"state\":\"%s\",\"uptime_usec\":%llu,"
                        "\"ready_after_usec\":%llu,\"memory_bytes\":%llu,\"restarts\":%u}",
                        i ? "," : "", rows[i].slot, (int) rows[i].pid, rows[i].generation, rows[i].state,
                        (unsigned long long) rows[i].uptime_usec, (unsigned long long) rows[i].ready_after_usec,
                        (unsigned long long) rows[i].memory_bytes, rows[i].restarts);
        fputs("]}\n", b.f);
        if (fclose(b.f) != 0) {
                free(b.data);
                return NULL;
        }
        return b.data;
}
