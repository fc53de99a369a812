#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Soak: many `corral reload --wait` under a closed-loop load, then many SIGKILLs of random workers, with
corral's RSS and fd count every --every cycles. Says whether anything grows and whether anything failed.

  contrib/bench/soak.py --reloads 1000 --kills 3000            # the long soak (about 10-15 min here)
  contrib/bench/soak.py --reloads 100 --kills 300 --check      # CI-sized: exits 1 unless every reload
                                                               # succeeded, fds are flat and RSS grew
                                                               # less than --rss-growth-kb

Load: --connections keep-alive clients on 127.0.0.1, each sending GET / in a loop, counting answers and
failures (a request that fails on a reused connection before any byte came back is retried once on a
fresh one, as HTTP clients do). A SIGKILLed worker takes its in-flight requests with it: the kill phase
reports its failures, the reload phase must have none. Bounded: every wait has a deadline, and corral
and its workers are stopped however the run ends.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import benchlib as B

sys.path.insert(0, os.path.join(B.ROOT, "tests", "e2e"))
from load import Load  # noqa: E402


def start_load(port, connections):
    """The end-to-end tier's keep-alive load client (tests/e2e/load.py), run in a thread until stopped."""
    load = Load(port, connections, duration=24 * 3600, timeout=5)
    thread = threading.Thread(target=lambda: setattr(load, "result", load.run()), daemon=True, name="soak-load")
    thread.start()
    return load, thread


def stop_load(load, thread):
    load.stop.set()
    thread.join(30)
    return load.result if hasattr(load, "result") else load.counts()


def status(h, control):
    return h.control_status(control, timeout=10)[1]


def wait_ready(h, control, workers, timeout=10):
    """Waits until every slot has a ready worker and nothing else runs (no draining leftovers)."""
    deadline = time.monotonic() + timeout
    while True:
        s = status(h, control)
        if s["ready"] == workers and s["processes"] == workers:
            return s
        if time.monotonic() > deadline:
            raise RuntimeError(f"pool not back to {workers} ready workers: {s['ready']} ready, "
                               f"{s['processes']} processes")
        time.sleep(0.02)


def checkpoint(h, corral, control, workers, phase, cycle, load, t0):
    wait_ready(h, control, workers)
    c = load.counts()
    row = {"phase": phase, "cycle": cycle, "seconds": round(time.monotonic() - t0, 1), "rss_kb": B.rss_kb(corral.pid),
           "fds": B.fd_count(corral.pid), "requests_ok": c["ok"], "requests_failed": c["failed"]}
    B.log(f"  {phase} {cycle:5}: rss {row['rss_kb']} kB, {row['fds']} fds, {c['ok']} ok, {c['failed']} failed")
    return row


def run(args, h):
    workdir = tempfile.mkdtemp(prefix="corral-soak-")
    control = os.path.join(workdir, "control")
    port = h.free_port()
    corral = h.Corral(["--listen", f"127.0.0.1:{port}", "--count", args.workers, "--control", control,
                       "--min-uptime", "0", "--", h.worker_bin(), "--drain-ms", "200"], workdir=workdir, name="soak")
    result = {"benchmark": "soak", "command": " ".join(sys.argv), "machine": B.machine(), "workers": args.workers,
              "connections": args.connections, "rows": []}
    with corral:
        h.wait_all_ready(control, args.workers)
        load, load_thread = start_load(port, args.connections)
        t0 = time.monotonic()
        try:
            time.sleep(1)
            result["rows"].append(checkpoint(h, corral, control, args.workers, "start", 0, load, t0))
            failed_reloads = 0
            for i in range(1, args.reloads + 1):
                p = subprocess.run([h.corral_bin(), "reload", "--wait", "--control", control], capture_output=True,
                                   text=True, timeout=60)
                if p.returncode != 0:
                    failed_reloads += 1
                    B.log(f"  reload {i} failed: {p.stdout.strip()} {p.stderr.strip()}")
                if i % args.every == 0 or i == args.reloads:
                    result["rows"].append(checkpoint(h, corral, control, args.workers, "reload", i, load, t0))
            reload_requests = load.counts()
            rng = random.Random(args.seed)
            for i in range(1, args.kills + 1):
                s = wait_ready(h, control, args.workers)
                victim = rng.choice([w["pid"] for w in s["workers"] if w["state"] == "ready"])
                os.kill(victim, signal.SIGKILL)
                h.wait_until(lambda: not h.pid_alive(victim), 5, message=f"worker {victim} survived SIGKILL")
                if i % args.every == 0 or i == args.kills:
                    result["rows"].append(checkpoint(h, corral, control, args.workers, "kill", i, load, t0))
        finally:
            counts = stop_load(load, load_thread)
        result["failed_reloads"] = failed_reloads
        result["requests"] = counts
        result["reload_phase_failed_requests"] = reload_requests["failed"]
        result["kill_phase_failed_requests"] = counts["failed"] - reload_requests["failed"]
        result["seconds"] = round(time.monotonic() - t0, 1)
        corral.stop(signal.SIGTERM, timeout=30)
    B.growth(result)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reloads", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--every", type=int, default=100, help="a checkpoint every N cycles")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every reload succeeded, fds stayed flat and RSS grew less than "
                         "--rss-growth-kb")
    ap.add_argument("--rss-growth-kb", type=int, default=512)
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    h = B.setup(args.build_dir)
    r = run(args, h)
    B.log(f"soak: {args.reloads} reloads ({r['failed_reloads']} failed, {r['reload_phase_failed_requests']} failed "
          f"requests), {args.kills} kills ({r['kill_phase_failed_requests']} failed requests), "
          f"{r['requests']['ok']} requests ok in {r['seconds']} s; fds {r['fds_min']}..{r['fds_max']}; "
          f"RSS {r['rss_first_kb']} -> {r['rss_last_kb']} kB (growth after the first cycles "
          f"{r['rss_growth_kb']} kB)")
    B.emit(r, args.json)
    if args.check:
        problems = []
        if r["requests"]["ok"] == 0:
            problems.append("no request was answered: the load never ran")
        if r["failed_reloads"]:
            problems.append(f"{r['failed_reloads']} reloads failed")
        if r["reload_phase_failed_requests"]:
            problems.append(f"{r['reload_phase_failed_requests']} requests failed during the reloads")
        B.check("soak", r, problems, args.rss_growth_kb)


if __name__ == "__main__":
    main()
