/* SPDX-License-Identifier: MIT */
/* Pure parsers for the contents of cgroup and /proc files that the accounting reads: /proc/PID/cgroup,
 * cpu.stat, memory.stat, memory.events, *.pressure, cgroup.procs, smaps_rollup and /proc/PID/stat.
 * No I/O, no logging. Each returns 0 and writes its outputs only on success, -EINVAL for malformed
 * content, -ENOENT when a required key is absent, -ERANGE for numbers that do not fit. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* /proc/PID/cgroup: "0::/path" (cgroup2) and "N:ctrl,ctrl:/path" (v1) lines. Returns in *ret_unified the
 * cgroup2 path and in *ret_memory the path of the v1 hierarchy that holds the memory controller; either is
 * set to NULL when there is no such line. Both are allocated, owned by the caller. A path may contain ':'.
 * Returns -EINVAL when a line does not have the three fields. */
int cgroup_parse_self(const char *s, char **ret_unified, char **ret_memory);

/* One unsigned number, optionally followed by a newline: memory.current, memory.failcnt... "max" (what
 * cgroup2 writes for "no limit") gives UINT64_MAX. */
int cgroup_parse_u64(const char *s, uint64_t *ret);

/* Flat keyed files ("key value" per line: cpu.stat, memory.stat, memory.events, memory.oom_control):
 * the value of key, or -ENOENT when no line has that key. */
int cgroup_parse_keyed(const char *s, const char *key, uint64_t *ret);

/* cpu.stat: usage_usec. */
int cgroup_parse_cpu_stat(const char *s, usec_t *ret_usage_usec);

/* memory.stat: anonymous and file-backed bytes. cgroup2 names them "anon" and "file"; v1 "rss" and
 * "cache" (the hierarchical "total_rss" / "total_cache" are preferred when present). */
int cgroup_parse_memory_stat(const char *s, bool v1, uint64_t *ret_anon, uint64_t *ret_file);

/* memory.events (cgroup2): how often usage went over memory.high, hit memory.max, and how many processes
 * the OOM killer killed. */
typedef struct CgroupMemoryEvents {
        uint64_t high;
        uint64_t max;
        uint64_t oom_kill;
} CgroupMemoryEvents;
int cgroup_parse_memory_events(const char *s, CgroupMemoryEvents *ret);

/* *.pressure (PSI): the "some" or "full" line's avg10, in hundredths of a percent (0..10000), and its
 * total stall time in microseconds. */
int cgroup_parse_pressure(const char *s, const char *kind, unsigned *ret_avg10, usec_t *ret_total);

/* A list of pids separated by whitespace (cgroup.procs, /proc/PID/task/TID/children). Returns the number
 * of pids (possibly 0) and an allocated array in *ret (NULL when empty), owned by the caller. */
int cgroup_parse_pids(const char *s, pid_t **ret);

/* /proc/PID/smaps_rollup: proportional set size, and its anonymous and file parts when the kernel gives
 * them (Pss_Anon, Pss_File, since 5.7), in bytes. Pss is required. */
typedef struct ProcSmapsRollup {
        uint64_t pss;
        uint64_t pss_anon;
        uint64_t pss_file;
        bool has_pss_anon;
        bool has_pss_file;
} ProcSmapsRollup;
int proc_parse_smaps_rollup(const char *s, ProcSmapsRollup *ret);

/* /proc/PID/stat. The comm field (2) may hold spaces and parentheses: the fields after it are found from
 * the last ')'. Times are in clock ticks (fields 14-17), the resident set in pages (24). */
typedef struct ProcStat {
        char state;
        pid_t ppid;
        pid_t session;
        uint64_t utime;
        uint64_t stime;
        uint64_t cutime;
        uint64_t cstime;
        uint64_t threads;   /* field 20 */
        uint64_t rss_pages; /* file, anonymous and shmem pages mapped: never less than the PSS */
} ProcStat;
int proc_parse_stat(const char *s, ProcStat *ret);

/* A zombie, or dead: nothing left of it but its entry. */
static inline bool proc_stat_dead(const ProcStat *st) {
        return st->state == 'Z' || st->state == 'X' || st->state == 'x';
}

/* Clock ticks (sysconf(_SC_CLK_TCK) per second) to microseconds, without overflow for any tick count
 * that fits in usec_t after conversion; saturates otherwise. */
usec_t proc_ticks_to_usec(uint64_t ticks, uint64_t hz);

/* Whether a space-separated controller list (cgroup.controllers, cgroup.subtree_control) names name. */
bool cgroup_controllers_contain(const char *s, const char *name);
