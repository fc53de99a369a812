#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""/health under a slowloris attack: what a load balancer sees.

corral runs 2 test workers with its status endpoint on 127.0.0.1. For each N in --connections, N slow
clients (the integration harness's Slowloris: one byte of an endless request head per --interval seconds
each, back at their next tick once dropped; from --sources loopback addresses in turn) trickle for
--duration seconds while a prober GETs /health every --probe-interval seconds with a --probe-timeout
deadline, as HAProxy's `option httpchk` does. Reported: the share of 200s, the failures by kind, probe
latency, the attack's connects and drops, and corral's CPU.

Only 127.0.0.1 (and other 127/8 addresses as sources) is used; every process started is stopped by pid
(pidfd) at the end, and every wait is bounded.

    contrib/bench/slowloris.py --connections 70,100,200 --duration 20 [--sources 4] [--json]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def run_one(h, n, args):
    tmp = tempfile.mkdtemp(prefix=f"corral-bench-slowloris-{n}-")
    port, status_port = h.free_port(), h.free_port()
    control = os.path.join(tmp, "control")
    c = h.Corral(["--listen", f"127.0.0.1:{port}", "--status-listen", f"127.0.0.1:{status_port}", "--count", "2",
                  "--control", control, "--", h.worker_bin()], workdir=tmp, name=f"corral-{n}")
    sources = [f"127.0.0.{2 + i}" for i in range(args.sources)] if args.sources > 1 else ["127.0.0.1"]
    try:
        c.start()
        h.wait_all_ready(control, 2)
        cpu0 = B.proc_cpu_seconds(c.pid, children=False)
        attack = h.Slowloris(status_port, connections=n, interval=args.interval, duration=args.duration + 10,
                             sources=sources).start()
        try:
            time.sleep(args.ramp)
            t0 = time.monotonic()
            prober = h.HealthProber(status_port, interval=args.probe_interval, timeout=args.probe_timeout,
                                    duration=args.duration).start().join()
            elapsed = time.monotonic() - t0
        finally:
            attack.stop()
        cpu = B.proc_cpu_seconds(c.pid, children=False) - cpu0
    finally:
        c.close()
        shutil.rmtree(tmp, ignore_errors=True)
    s = prober.summary()
    return {"connections": n, "sources": len(sources), "interval": args.interval, "duration": args.duration,
            "probes": s["probes"], "ok": s["ok"], "ok_share": s["ok_share"], "failures": s["failures"],
            "probe_p50": s["p50"], "probe_max": s["max"], "attack_connects": attack.connects,
            "attack_dropped_by_corral": attack.ended_by_server, "attack_bytes": attack.bytes_sent,
            "attack_refused": attack.refused, "corral_cpu_share": cpu / (elapsed + args.ramp)}


def report(r):
    B.log(f"N={r['connections']} from {r['sources']} address(es): /health 200 {r['ok']}/{r['probes']} "
          f"({100 * r['ok_share']:.1f} %) {r['failures'] or ''}; probe p50 {B.ms(r['probe_p50'], 2)} ms, "
          f"max {B.ms(r['probe_max'], 2)} ms; attack {r['attack_connects']} connects, "
          f"{r['attack_dropped_by_corral']} dropped by corral, {r['attack_bytes']} bytes; "
          f"corral CPU {100 * r['corral_cpu_share']:.1f} %")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", default="70,100,200", help="comma-separated slow client counts")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between a slow client's bytes")
    ap.add_argument("--sources", type=int, default=1, help="loopback source addresses (127.0.0.2, ...)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of probing per N")
    ap.add_argument("--ramp", type=float, default=2.0, help="seconds of attack before the first probe")
    ap.add_argument("--probe-interval", type=float, default=0.25)
    ap.add_argument("--probe-timeout", type=float, default=2.0)
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    h = B.setup(args.build_dir)
    B.raise_nofile(4096)
    results = {"machine": B.machine(), "corral": B.corral_version(h.corral_bin()), "runs": []}
    for n in (int(x) for x in args.connections.split(",")):
        r = run_one(h, n, args)
        report(r)
        results["runs"].append(r)
    B.emit(results, args.json)


if __name__ == "__main__":
    main()
