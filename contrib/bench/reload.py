#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Rolling reloads under constant HTTP load.

For each N in --workers: corral runs N test workers (--ready-delay 0.5, MaxSurge=1 unless told otherwise)
on 127.0.0.1; the integration harness's LoadGenerator keeps --connections keep-alive connections busy (a
thread each, Python's cyclic GC off while loading); after a steady-state window, `corral reload --wait`
runs --reloads times back to back. Reported: failed and retried requests, each reload's duration and its
ratio to the ideal ceil(N / MaxSurge) x the worker's own ready time (the median "worker X (pid P) ready
after T" of the initial start, which includes fork+exec), the longest time without any successful answer
during the reloads (and, for reference, in the steady window), p50/p99 latency and requests/s in steady
state and during reloads.

Only 127.0.0.1 is used; every process started is stopped by pid (pidfd) at the end, and every wait is
bounded.

    contrib/bench/reload.py --workers 4 --reloads 20 --connections 50 [--json]
"""

import argparse
import re
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def write_config(path, h, n, ready_delay, surge):
    command = " ".join([h.worker_bin(), "--ready-delay", str(ready_delay)])
    with open(path + ".new", "w") as f:
        f.write(f"[Worker]\nExecStart={command}\nCount={n}\nReadyTimeoutSec=30s\nStopTimeoutSec=10s\n"
                f"[Reload]\nMaxSurge={surge}\nMaxUnavailable=0\n")
    os.rename(path + ".new", path)


def ready_times(lines):
    out = []
    for line in lines:
        m = re.search(r"worker \d+ \(pid \d+\) ready after (.+)$", line)
        if m:
            out.append(B.parse_span(m.group(1)))
    return out


def max_gap(times):
    times = sorted(times)
    if len(times) < 2:
        return None, None
    g, at = max((b - a, a) for a, b in zip(times, times[1:]))
    return g, at


def run_one(h, n, args):
    tmp = tempfile.mkdtemp(prefix=f"corral-bench-reload-{n}-")
    port = h.free_port()
    control = os.path.join(tmp, "control")
    conf = os.path.join(tmp, "corral.conf")
    write_config(conf, h, n, args.ready_delay, args.max_surge)
    per_reload_bound = 30 + 4 * math.ceil(n / args.max_surge) * args.ready_delay
    load_bound = args.steady + 2 + args.reloads * per_reload_bound + 10
    fc = B.ForeignCpu()
    tree_cpu = 0.0
    c = h.Corral(["--config", conf, "--listen", f"127.0.0.1:{port}", "--control", control], workdir=tmp,
                 name=f"corral-{n}")
    load = None
    try:
        c.start()
        c.wait_for_line(rf"all {n} workers ready", timeout=30 + n)
        initial_ready = ready_times(c.log.lines())
        worker_ready = B.median(initial_ready)
        h.wait_serving(port, timeout=10)
        B.log(f"N={n}: {n} workers ready (median ready after {B.ms(worker_ready)} ms); load with "
              f"{args.connections} connections, {args.steady}s steady state, then {args.reloads} reloads")

        load = h.LoadGenerator(port, concurrency=args.connections, duration=load_bound, timeout=10).start()
        time.sleep(1.0 + args.steady)  # 1 s warm-up (connections opened), then the steady window
        steady_window = (load.started_at + 1.0, time.monotonic())

        windows, reloads = [], []
        for i in range(args.reloads):
            mark = len(c.log.lines())
            t0 = time.monotonic()
            p = subprocess.run([h.corral_bin(), "reload", "--wait", "--control", control], capture_output=True,
                               text=True, timeout=per_reload_bound, env=h.clean_env())
            t1 = time.monotonic()
            windows.append((t0, t1))
            if p.returncode != 0:
                raise RuntimeError(f"reload {i + 1} failed (rc {p.returncode}): {p.stdout}{p.stderr}")
            time.sleep(0.05)  # let the log reader catch up with the last lines of this roll
            reload_ready = ready_times(c.log.lines()[mark:])
            reloads.append({"duration": t1 - t0, "replacement_ready_median": B.median(reload_ready),
                            "replacements": len(reload_ready)})
            B.log(f"  reload {i + 1}/{args.reloads}: {t1 - t0:.3f}s ({p.stdout.strip()})")
        time.sleep(1.0)
    finally:
        if load is not None:
            load.stop()
        if c.running():
            tree_cpu = B.tree_cpu_seconds(c.pid)
        c.close()
    machine_use = fc.stop(tree_cpu)

    records = load.records()
    s = load.summary()
    ok = [r for r in records if r.ok]
    r0, r1 = windows[0][0], windows[-1][1]

    def in_windows(t):
        return any(a <= t <= b for a, b in windows)

    steady_ok = [r for r in ok if r.start >= steady_window[0] and r.start + r.latency <= steady_window[1]]
    steady_ends = [r.start + r.latency for r in ok if steady_window[0] <= r.start + r.latency <= steady_window[1]]
    reload_ok = [r for r in ok if in_windows(r.start)]
    reload_ends = [r.start + r.latency for r in ok if r0 <= r.start + r.latency <= r1]
    reload_time = sum(b - a for a, b in windows)
    gap, gap_at = max_gap(reload_ends)
    steady_gap, _ = max_gap(steady_ends)
    ideal = math.ceil(n / args.max_surge) * worker_ready
    durations = [x["duration"] for x in reloads]
    failures_in_reloads = sum(1 for r in records if not r.ok and in_windows(r.start))

    result = {
        "workers": n, "max_surge": args.max_surge, "ready_delay": args.ready_delay,
        "connections": args.connections, "reloads": args.reloads,
        "requests": s["requests"], "ok": s["ok"], "failed": s["failed"], "retried": s["retried"],
        "failed_during_reloads": failures_in_reloads, "failure_reasons": s["failure_reasons"],
        "worker_ready_initial": {"median": worker_ready, "values": initial_ready,
                                 "source": "corral log 'ready after' of the initial start"},
        "ideal_reload": ideal,
        "reload_duration": B.stats(durations),
        "reload_ratio_median": B.median(durations) / ideal if ideal else None,
        "reload_ratio_max": max(durations) / ideal if ideal else None,
        "replacement_ready_median": B.median([x["replacement_ready_median"] for x in reloads]),
        "reload_durations": durations,
        "longest_gap_during_reloads": gap,
        "longest_gap_at": (gap_at - r0) if gap_at is not None else None,
        "longest_gap_steady": steady_gap,
        "steady": {"seconds": steady_window[1] - steady_window[0], "requests": len(steady_ok),
                   "rps": len(steady_ends) / (steady_window[1] - steady_window[0]),
                   "p50": B.pct([r.latency for r in steady_ok], 50),
                   "p99": B.pct([r.latency for r in steady_ok], 99),
                   "max": max((r.latency for r in steady_ok), default=None)},
        "during_reloads": {"seconds": reload_time, "requests": len(reload_ok),
                           "rps": sum(1 for t in reload_ends if in_windows(t)) / reload_time,
                           "p50": B.pct([r.latency for r in reload_ok], 50),
                           "p99": B.pct([r.latency for r in reload_ok], 99),
                           "max": max((r.latency for r in reload_ok), default=None)},
        "overall_rps": s["ok"] / (load.stopped_at - load.started_at),
        "slowest_during_reloads": [
            {"latency": r.latency, "offset_in_reload": r.start - next(a for a, b in windows if a <= r.start <= b),
             "pid": r.pid, "generation": r.generation, "retried": r.retried}
            for r in sorted(reload_ok, key=lambda r: -r.latency)[:5]],
        "machine_use": machine_use, "busy": machine_use["busy"],
    }
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def report(r):
    d, st, rl = r["reload_duration"], r["steady"], r["during_reloads"]
    B.log(f"\n== N={r['workers']} MaxSurge={r['max_surge']} ready-delay={r['ready_delay']}s "
          f"connections={r['connections']} reloads={r['reloads']}")
    B.log(f"requests {r['requests']}  ok {r['ok']}  failed {r['failed']} "
          f"(during reloads {r['failed_during_reloads']})  retried {r['retried']}  {r['failure_reasons'] or ''}")
    B.log(f"worker ready time (initial start, median) {B.ms(r['worker_ready_initial']['median'])} ms; "
          f"ideal reload {r['ideal_reload']:.3f}s; replacement ready under load (median) "
          f"{B.ms(r['replacement_ready_median'])} ms")
    B.log(f"reload duration median {d['median']:.3f}s  p90 {d['p90']:.3f}s  max {d['max']:.3f}s  "
          f"ratio to ideal median {r['reload_ratio_median']:.3f}  max {r['reload_ratio_max']:.3f}")
    B.log(f"longest gap without a successful answer: during reloads {B.ms(r['longest_gap_during_reloads'])} ms, "
          f"steady {B.ms(r['longest_gap_steady'])} ms")
    B.log(f"steady:  {st['rps']:.0f} req/s  p50 {B.ms(st['p50'], 2)} ms  p99 {B.ms(st['p99'], 2)} ms  "
          f"max {B.ms(st['max'])} ms")
    B.log(f"reloads: {rl['rps']:.0f} req/s  p50 {B.ms(rl['p50'], 2)} ms  p99 {B.ms(rl['p99'], 2)} ms  "
          f"max {B.ms(rl['max'])} ms")
    mu = r["machine_use"]
    B.log(f"slowest during reloads: " + ", ".join(f"{B.ms(x['latency'])} ms at +{x['offset_in_reload']:.2f}s "
                                                  f"(gen {x['generation']})" for x in r["slowest_during_reloads"]))
    B.log(f"machine: busy {mu['machine_busy_cores']:.2f} cores, this benchmark {mu['own_cores']:.2f}, others "
          f"{mu['foreign_cores']:.2f} (before the run, without us: {mu['background_cores_before']:.2f}); "
          f"load average before {mu['loadavg_before']}"
          + (f"  ** {r['busy']}" if r["busy"] else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="4,16", help="comma-separated worker counts (default 4,16)")
    ap.add_argument("--reloads", type=int, default=20)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--ready-delay", type=float, default=0.5, help="the test worker's --ready-delay")
    ap.add_argument("--max-surge", type=int, default=1)
    ap.add_argument("--steady", type=float, default=5.0, help="seconds of steady state before the reloads")
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x]
    if not counts or min(counts) < 1 or args.reloads < 1 or args.connections < 1 or args.max_surge < 1:
        ap.error("bad arguments")
    h = B.setup(args.build_dir)
    out = B.result("reload", h, runs=[])
    for n in counts:
        r = run_one(h, n, args)
        report(r)
        out["runs"].append(r)
    B.emit(out, args.json)
    return 1 if any(r["failed"] for r in out["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
