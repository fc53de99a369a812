#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`corral reload --wait` while a stranger floods the workers' notify socket.

corral runs --workers test workers (they send READY=1 at once). --reloads reloads are timed without a
flood, then again while --processes processes running as nobody (the integration harness's NotifyFlood:
blocking sends of well-formed READY=1 datagrams, as fast as corral takes them) flood the socket whose
address the workers find in NOTIFY_SOCKET. --uid 0 floods as corral's own user instead, which takes
corral's slow path (the /proc trace). Reported: reload --wait durations in both phases, the flood
rate, corral's CPU during the flood (share of one core) and its CPU per flood datagram, and what corral
counted as rejected. Needs root (to run the flood as nobody).

Every process started is stopped by pid at the end, and every wait is bounded.

    contrib/bench/notify_flood.py --reloads 10 --duration 10 [--processes 2] [--json]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def notify_socket_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    return env[b"NOTIFY_SOCKET"].decode()


def reloads(h, control, n):
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        p = subprocess.run([h.corral_bin(), "reload", "--wait", "--control", control], capture_output=True,
                           text=True, timeout=120, env=h.clean_env())
        out.append(time.monotonic() - t0)
        if p.returncode != 0:
            raise RuntimeError(f"reload failed (rc {p.returncode}): {p.stdout}{p.stderr}")
    return out


def run(h, args):
    tmp = tempfile.mkdtemp(prefix="corral-bench-flood-")
    port, status_port = h.free_port(), h.free_port()
    control = os.path.join(tmp, "control")
    c = h.Corral(["--listen", f"127.0.0.1:{port}", "--status-listen", f"127.0.0.1:{status_port}", "--count",
                  str(args.workers), "--control", control, "--", h.worker_bin()], workdir=tmp, name="corral")
    flood = None
    try:
        c.start()
        h.wait_all_ready(control, args.workers)
        address = notify_socket_of(c.worker_pids()[0])
        quiet = reloads(h, control, args.reloads)
        rejected0 = h.metrics(status_port).get("corral_notify_rejected_total", 0)
        cpu0, t0 = B.proc_cpu_seconds(c.pid, children=False), time.monotonic()
        flood = h.NotifyFlood(address, duration=args.duration, processes=args.processes, uid=args.uid,
                              gid=args.uid).start()
        time.sleep(1.0)
        flooded = reloads(h, control, args.reloads)
        sent = flood.stop().sent()
        cpu, elapsed = B.proc_cpu_seconds(c.pid, children=False) - cpu0, time.monotonic() - t0
        rejected = h.metrics(status_port).get("corral_notify_rejected_total", 0) - rejected0
    finally:
        if flood:
            flood.kill()
        c.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"workers": args.workers, "processes": args.processes, "uid": args.uid, "reloads_quiet": B.stats(quiet),
            "reloads_flooded": B.stats(flooded), "flood_sent": sent, "flood_seconds": args.duration,
            "flood_rate": sent / args.duration, "rejected": rejected, "corral_cpu_share": cpu / elapsed,
            "corral_cpu_per_datagram_us": 1e6 * cpu / sent if sent else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of flood")
    ap.add_argument("--processes", type=int, default=1, help="flooding processes")
    ap.add_argument("--uid", type=int, default=65534,
                    help="the flooders' uid and gid (default nobody; 0: corral's own, as root)")
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    h = B.setup(args.build_dir)
    r = run(h, args)
    q, f = r["reloads_quiet"], r["reloads_flooded"]
    B.log(f"{r['workers']} workers: reload --wait quiet median {B.ms(q['median'])} ms, max {B.ms(q['max'])} ms; "
          f"flooded median {B.ms(f['median'])} ms, max {B.ms(f['max'])} ms ({f['n']} reloads)")
    B.log(f"flood: {r['processes']} process(es) as uid {r['uid']}, {r['flood_sent']} datagrams in {r['flood_seconds']:.0f} s "
          f"({r['flood_rate']:.0f}/s), corral rejected {r['rejected']:.0f}; corral CPU "
          f"{100 * r['corral_cpu_share']:.1f} % of a core, "
          f"{r['corral_cpu_per_datagram_us'] or 0:.2f} us per datagram")
    B.emit({"machine": B.machine(), "corral": B.corral_version(h.corral_bin()), **r}, args.json)


if __name__ == "__main__":
    main()
