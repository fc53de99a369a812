#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""How evenly a pool shares the load: --workers test workers under corral, wrk with --connections
keep-alive connections for --duration seconds, and each response counted by the X-Worker-Slot header the
test worker sends (a wrk Lua script sums the counts of its threads). Reports each slot's share of the
requests, max/min (inf when a slot served nothing), Jain's fairness index ((sum x)^2 / (n * sum x^2): 1.0
is perfectly even, 1/n all on one worker), requests per second and p99, per run, and the medians with the
spread over --runs runs.

Issue 16's bar for Balance=reuseport: max/min <= 1.25 and Jain >= 0.98, throughput not below shared.
--modes lists the set-ups to compare: Balance= modes of corral (passed as --balance MODE; "shared" passes
nothing, so that the benchmark runs against a corral that has no such option), and "bare-shared" and
"bare-reuseport": the same workers without corral, on one shared socket or on one SO_REUSEPORT socket
each (what the kernel does on its own, before corral builds anything on it). Halfway through each run,
the connections each worker holds are counted too (/proc/PID/fd).

Needs wrk (apt-get install -y wrk); installs nothing. Only 127.0.0.1 is used; every process started is
stopped by pid (pidfd); every run is bounded (wrk -d, subprocess timeout).

    contrib/bench/balance.py [--workers 16] [--connections 50] [--threads 2] [--duration 8] [--runs 3] [--json]
"""

import argparse
import os
import re
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
from throughput import BareWorkers, run_wrk  # noqa: E402

# Counts responses per X-Worker-Slot in each wrk thread; done() sums the threads' tables and prints them.
COUNT_SLOTS = """
counts = {}  -- a global: thread:get() reads globals
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  local s = headers["X-Worker-Slot"]
  if s then counts[s] = (counts[s] or 0) + 1 end
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("SLOT %s %d\\n", k, v)) end
end
"""


def jain(xs):
    s, sq = sum(xs), sum(x * x for x in xs)
    return s * s / (len(xs) * sq) if sq else None


def fairness(counts, workers):
    """Per-slot request counts (a slot that served nothing counts as 0) -> the shares and their figures."""
    xs = [counts.get(str(i), 0) for i in range(workers)]
    lo, hi = min(xs), max(xs)
    return {"per_slot": xs, "max_min": hi / lo if lo else float("inf"), "jain": jain(xs),
            "idle_slots": sum(1 for x in xs if x == 0), "max_share": hi / sum(xs) if sum(xs) else None}


def corral_pool(h, args, mode, tmp):
    """The pool under corral; MODE "shared" passes no --balance. Returns (port, worker pids, stop)."""
    port = h.free_port()
    extra = [] if mode == "shared" else ["--balance", mode]
    c = h.Corral(["--count", str(args.workers), "--ready-mode", "notify", "--listen", f"127.0.0.1:{port}", *extra,
                  "--", h.worker_bin(), "--ready-delay", "0"], workdir=tmp, name=f"corral-balance-{mode}")
    try:
        c.start()
        c.wait_for_line(rf"all {args.workers} workers ready", timeout=30)
        h.wait_serving(port, timeout=10)
        return port, c.worker_pids(), c.close
    except BaseException:
        c.close()
        raise


def bare_pool(h, args, mode):
    """The same workers without corral, each handed its socket(s) by the harness's fd wrapper: "bare-shared",
    one listening socket for all (what corral does today), or "bare-reuseport", one SO_REUSEPORT socket per
    worker on the same port (the kernel picks one per new connection by a hash of its addresses and ports).
    Returns (port, worker pids, stop)."""
    socks = []
    for i in range(args.workers if mode == "bare-reuseport" else 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mode == "bare-reuseport":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", socks[0].getsockname()[1] if socks else 0))
        s.listen(socket.SOMAXCONN)
        socks.append(s)
    port = socks[0].getsockname()[1]
    workers = BareWorkers(h)

    def stop():
        workers.stop()
        for s in socks:
            s.close()
    try:
        pids = workers.start([socks[i % len(socks)].fileno() for i in range(args.workers)])
        h.collect_workers(port, 1, timeout=10)
        time.sleep(0.5)  # every worker has exec'd and listens by now (the test worker starts in ~2 ms)
        return port, pids, stop
    except BaseException:
        stop()
        raise


def run_once(h, wrk, script, args, mode):
    tmp = tempfile.mkdtemp(prefix="corral-bench-balance-")
    port, pids, stop = bare_pool(h, args, mode) if mode.startswith("bare-") else corral_pool(h, args, mode, tmp)
    try:
        r, cmd = run_wrk(wrk, port, args, pids, script=script)
    finally:
        stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out = r.pop("raw")
    r.update(fairness({m.group(1): int(m.group(2)) for m in re.finditer(r"^SLOT (\S+) (\d+)$", out, re.M)},
                      args.workers))
    r["connections_per_worker"] = sorted((n or 0 for n in r["connections_per_worker"]), reverse=True)
    return r, cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3, help="runs of each mode, alternating")
    ap.add_argument("--modes", default="shared", help="comma-separated Balance= modes (default: shared)")
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not modes or not 1 <= args.workers <= 256 or not 1 <= args.duration <= 120 or args.connections < 1 \
            or args.runs < 1 or args.threads < 1:
        ap.error("bad arguments")
    wrk = B.require_tool("wrk", "wrk")
    h = B.setup(args.build_dir)
    B.raise_nofile(4096)
    tmp = tempfile.mkdtemp(prefix="corral-bench-balance-lua-")
    script = os.path.join(tmp, "count-slots.lua")
    with open(script, "w") as f:
        f.write(COUNT_SLOTS)
    out = B.result("balance", h, runs={m: [] for m in modes})
    fc = B.ForeignCpu()
    try:
        for i in range(args.runs):
            for mode in (modes if i % 2 == 0 else modes[::-1]):
                r, cmd = run_once(h, wrk, script, args, mode)
                out["wrk_command"] = cmd
                out["runs"][mode].append(r)
                B.log(f"run {i + 1}/{args.runs} {mode:9}: {r['rps']:.0f} req/s, p99 {B.ms(r['p99'], 2)} ms, "
                      f"max/min {r['max_min']:.2f}, Jain {r['jain']:.3f}, idle slots {r['idle_slots']}, "
                      f"per slot {r['per_slot']}, connections per worker {r['connections_per_worker']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    B.log(f"\n== {args.workers} workers, wrk: {out['wrk_command']} ({args.runs} runs per mode)")
    B.log(f"{'mode':9} {'req/s':>16} {'p99 ms':>16} {'max/min':>16} {'Jain':>18} {'idle slots':>11}   median (min-max)")
    out["summary"] = {}
    for mode in modes:
        runs = out["runs"][mode]
        s = {k: {"median": B.median([r[k] for r in runs]), "min": min(r[k] for r in runs),
                 "max": max(r[k] for r in runs)} for k in ("rps", "p99", "max_min", "jain", "idle_slots")}
        out["summary"][mode] = s
        B.log(f"{mode:9} {B.span(s['rps'], '.0f', width=7)} {B.span(s['p99'], '.1f', 1000, 6)} "
              f"{B.span(s['max_min'], '.2f', width=6)} {B.span(s['jain'], '.3f', width=6)} "
              f"{B.span(s['idle_slots'], width=5)}")
    B.machine_use_done(out, fc)
    B.emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
