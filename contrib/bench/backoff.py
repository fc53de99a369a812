#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""New connections while one slot is down: --workers test workers under corral, wrk opening a fresh
connection for every request (Connection: close) for --duration seconds at steady state, then slot 1's
worker SIGKILLed with the slot held back (RestartSec= above the run, MinUptimeSec= 1h: every crash counts
as a quick failure) and wrk again for --duration seconds while the slot has no worker. Reports p50/p99 and
requests per second of both windows, their ratio, and wrk's errors, per run and as medians with the spread.

Issue 16's bar for Balance=reuseport: p99 while a slot is held back within 10 % of steady state (no new
connection stranded behind the dead slot's socket). --modes: "shared" (one socket: a dead worker changes
nothing but the capacity), "reuseport" (corral as root: the eBPF round robin over the ready slots) and
"reuseport-classic" (corral as uid 65534 through setpriv, where eBPF is refused: the classic BPF program
picks a ready slot at random).

Needs wrk (apt-get install -y wrk) and, for reuseport-classic, root; installs nothing. Only 127.0.0.1 is
used; every process started is stopped by pid; every run is bounded (wrk -d, subprocess timeout).

    contrib/bench/backoff.py [--workers 4] [--connections 16] [--duration 3] [--runs 3] [--json]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
from throughput import parse_wrk  # noqa: E402


def wrk_window(wrk, port, args):
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "--timeout", "5s",
           "-H", "Connection: close", f"http://127.0.0.1:{port}/"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 30)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr}{p.stdout}")
    return parse_wrk(p.stdout), " ".join(cmd[:-1] + ["http://127.0.0.1:PORT/"])


def run_once(h, wrk, args, mode):
    tmp = tempfile.mkdtemp(prefix="corral-bench-backoff-")
    port, control = h.free_port(), os.path.join(tmp, "control")
    balance = [] if mode == "shared" else ["--balance", "reuseport"]
    prefix = []
    if mode == "reuseport-classic":
        os.chmod(tmp, 0o777)
        prefix = [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"]
    hold = args.duration + 3
    c = h.Corral(["--count", str(args.workers), "--listen", f"127.0.0.1:{port}", *balance, "--control", control,
                  "--min-uptime", "1h", "--restart-delay", f"{hold}s", "--backoff-max", f"{hold}s", "--",
                  h.worker_bin(), "--ready-delay", "0"], workdir=tmp, name=f"corral-backoff-{mode}", prefix=prefix)
    try:
        c.start()
        h.wait_all_ready(control, args.workers)
        h.wait_serving(port, timeout=10)
        steady, cmd = wrk_window(wrk, port, args)
        _, st = h.control_status(control)
        victim = [w["pid"] for w in st["workers"] if w["slot"] == 1][0]
        os.kill(victim, signal.SIGKILL)
        h.wait_until(lambda: h.control_status(control)[1]["ready"] == args.workers - 1, 5,
                     message="slot 1 still counted ready")
        down, _ = wrk_window(wrk, port, args)
        _, st = h.control_status(control)
        held = not any(w["slot"] == 1 for w in st["workers"])
    finally:
        c.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"steady": steady, "down": down, "held_throughout": held,
            "p99_ratio": down["p99"] / steady["p99"] if steady["p99"] else None}, cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=int, default=3, help="seconds of each window")
    ap.add_argument("--runs", type=int, default=3, help="runs of each mode, alternating")
    ap.add_argument("--modes", default="shared,reuseport,reuseport-classic")
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - {"shared", "reuseport", "reuseport-classic"} or not 2 <= args.workers <= 64 \
            or not 1 <= args.duration <= 30 or args.connections < 1 or args.runs < 1 or args.threads < 1:
        ap.error("bad arguments")
    if "reuseport-classic" in modes and (os.geteuid() != 0 or not shutil.which("setpriv")):
        ap.error("reuseport-classic needs root and setpriv")
    wrk = B.require_tool("wrk", "wrk")
    h = B.setup(args.build_dir)
    B.raise_nofile(4096)
    out = B.result("backoff", h, runs={m: [] for m in modes})
    fc = B.ForeignCpu()
    for i in range(args.runs):
        for mode in (modes if i % 2 == 0 else modes[::-1]):
            r, cmd = run_once(h, wrk, args, mode)
            out["wrk_command"] = cmd
            out["runs"][mode].append(r)
            s, d = r["steady"], r["down"]
            B.log(f"run {i + 1}/{args.runs} {mode:17}: steady {s['rps']:.0f} req/s p99 {B.ms(s['p99'], 2)} ms; "
                  f"slot 1 down {d['rps']:.0f} req/s p99 {B.ms(d['p99'], 2)} ms (x{r['p99_ratio']:.2f}), "
                  f"errors {d['socket_errors']}, non-2xx {d['non_2xx']}, held throughout: {r['held_throughout']}")
    B.log(f"\n== {args.workers} workers, wrk: {out['wrk_command']} ({args.runs} runs per mode)")
    B.log(f"{'mode':17} {'steady p99 ms':>20} {'down p99 ms':>20} {'ratio':>18} {'errors':>8}   median (min-max)")
    out["summary"] = {}
    for mode in modes:
        runs = out["runs"][mode]
        s = {"steady_p99": B.stats([r["steady"]["p99"] for r in runs]),
             "down_p99": B.stats([r["down"]["p99"] for r in runs]),
             "p99_ratio": B.stats([r["p99_ratio"] for r in runs]),
             "errors": sum(r["down"]["socket_errors"] + r["down"]["non_2xx"] for r in runs)}
        out["summary"][mode] = s
        B.log(f"{mode:17} {B.span(s['steady_p99'], '.2f', 1000, 7)} {B.span(s['down_p99'], '.2f', 1000, 7)} "
              f"{B.span(s['p99_ratio'], '.2f', width=6)} {s['errors']:>8}")
    B.machine_use_done(out, fc)
    B.emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
