#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Medians across repeated runs of the benchmarks: give it the --json outputs of reload.py, startup.py and
throughput.py (any mix, any number of runs each) and it prints, per key number, the median and each run's
value — what docs/performance.md reports. Throughput pools every wrk run of every invocation; the
with/without ratio is listed per invocation.

    contrib/bench/summarize.py results/reload4-1.json results/reload4-2.json results/startup-*.json ...
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def get(d, path):
    for k in path.split("."):
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d


RELOAD = [("failed", "failed", 1), ("retried", "retried", 1), ("requests", "requests", 1),
          ("worker ready (initial) ms", "worker_ready_initial.median", 1000),
          ("ideal reload s", "ideal_reload", 1), ("reload duration median s", "reload_duration.median", 1),
          ("reload duration max s", "reload_duration.max", 1), ("ratio median", "reload_ratio_median", 1),
          ("ratio max", "reload_ratio_max", 1), ("replacement ready under load ms", "replacement_ready_median", 1000),
          ("longest gap during reloads ms", "longest_gap_during_reloads", 1000),
          ("longest gap steady ms", "longest_gap_steady", 1000),
          ("steady p50 ms", "steady.p50", 1000), ("steady p99 ms", "steady.p99", 1000),
          ("reload p50 ms", "during_reloads.p50", 1000), ("reload p99 ms", "during_reloads.p99", 1000),
          ("reload max ms", "during_reloads.max", 1000),
          ("steady req/s", "steady.rps", 1), ("reload req/s", "during_reloads.rps", 1),
          ("others' cores before", "machine_use.background_cores_before", 1)]
STARTUP = [("start->all ready ms", "start_to_all_ready_stats.median", 1000),
           ("spawn->ready median ms", "spawn_to_ready_stats.median", 1000),
           ("spawn->ready p90 ms", "spawn_to_ready_stats.p90", 1000),
           ("spawn->ready max ms", "spawn_to_ready_stats.max", 1000),
           ("master VmRSS kB", "master_vmrss_kb", 1), ("master Rss kB", "master_rss_kb", 1),
           ("master Pss kB", "master_pss_kb", 1),
           ("master fds", "master_fds", 1), ("workers Pss MB", "workers_pss_total_kb", 1 / 1024),
           ("master CPU s / idle", "master_idle_cpu_seconds", 1),
           ("master schedstat us / idle", "master_idle_schedstat_ns", 1e-3), ("idle s", "idle_seconds", 1),
           ("stop s (first start)", "stop_seconds", 1)]
RESPAWN = [("kill->'started' median ms", "to_started_log.median", 1000),
           ("kill->'started' p90 ms", "to_started_log.p90", 1000), ("kill->'started' max ms", "to_started_log.max", 1000),
           ("kill->answers median ms", "to_http.median", 1000), ("kill->answers p90 ms", "to_http.p90", 1000),
           ("kill->answers max ms", "to_http.max", 1000)]
THROUGHPUT = [("req/s", "rps", 1), ("p50 ms", "p50", 1000), ("p99 ms", "p99", 1000), ("errors", "errors", 1),
              ("corral master CPU s", "master_cpu_seconds", 1)]


def line(label, values, scale):
    vals = [None if v is None else (v[0] if isinstance(v, list) else v) * scale for v in values]
    med = B.median(vals)
    fmt = (lambda x: "-" if x is None else (f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"))
    print(f"  {label:36} median {fmt(med):>10}   runs: {', '.join(fmt(v) for v in vals)}")


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) >= 2 else 64
    docs = []
    for p in sys.argv[1:]:
        with open(p) as f:
            docs.append(json.load(f))
    groups = {}
    for d in docs:
        if d["benchmark"] == "reload":
            for r in d["runs"]:
                groups.setdefault(("reload", r["workers"]), []).append(r)
        elif d["benchmark"] == "startup":
            for r in d["counts"]:
                groups.setdefault(("startup", r["workers"]), []).append(r)
            for r in d.get("respawn") or []:
                groups.setdefault(("respawn", r["workers"]), []).append(r)
        elif d["benchmark"] == "throughput":
            for key in ("with_corral", "without_corral"):  # every wrk run, pooled over the invocations
                for r in d[key]:
                    groups.setdefault(("throughput", key), []).append(
                        dict(r, errors=r["socket_errors"] + r["non_2xx"]))
            groups.setdefault(("throughput", "ratio"), []).append({"rps_ratio": d["rps_ratio"]})
    table = {"reload": RELOAD, "startup": STARTUP, "respawn": RESPAWN, "throughput": THROUGHPUT}
    for (kind, key), runs in sorted(groups.items(), key=lambda x: (x[0][0], str(x[0][1]))):
        print(f"{kind} {key} ({len(runs)} runs)")
        fields = table[kind] if key != "ratio" else [("with/without req/s", "rps_ratio", 1)]
        for label, path, scale in fields:
            line(label, [get(r, path) for r in runs], scale)
    for d in docs:
        m = d["machine"]
        print(f"# {d['benchmark']}: {d['command']} | {m['date']} | load {m['loadavg_start']} | "
              f"{(d.get('busy') or [r.get('busy') for r in d.get('runs', [])])}")


if __name__ == "__main__":
    sys.exit(main())
