#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Upgrade: many `corral upgrade` in a row under a closed-loop load, with how long each took (the
client's wall time: the check, the exec and the resume), how long the control socket went unanswered
(a second client asks `status` over and over; the longest answer during the run), and corral's RSS and
fd count every --every upgrades. Says whether anything grows and whether anything failed.

  contrib/bench/upgrade.py --upgrades 1000                   # the long run (about 1-2 min here)
  contrib/bench/upgrade.py --upgrades 100 --check            # exits 1 unless every upgrade succeeded,
                                                             # no request failed, no worker changed,
                                                             # fds are flat and RSS grew < --rss-growth-kb

corral runs from a copy of the build's binary in a temporary directory; every upgrade execs that same
file. Bounded: every wait has a deadline, and corral and its workers are stopped however the run ends.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import benchlib as B

sys.path.insert(0, os.path.join(B.ROOT, "tests", "e2e"))
from load import Load  # noqa: E402




class ControlProbe:
    """Asks `status` on the control socket in a loop, one connection each; keeps each answer's latency."""

    def __init__(self, path):
        self.path, self.latencies, self.errors = path, [], 0
        self.stop = threading.Event()
        self.lock = threading.Lock()  # held while a request is out: a checkpoint takes it to count fds alone
        self.thread = threading.Thread(target=self.run, daemon=True, name="control-probe")

    def ask(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(10)
        try:
            s.connect(self.path)
            s.send(b"status")
            while True:
                m = s.recv(65536)
                if not m or m.endswith(b"\0"):
                    return bool(m)
        finally:
            s.close()

    def run(self):
        while not self.stop.is_set():
            with self.lock:
                t0 = time.monotonic()
                try:
                    ok = self.ask()
                except OSError:
                    ok = False
                if ok:
                    self.latencies.append(time.monotonic() - t0)
                else:
                    self.errors += 1
            time.sleep(0.002)


def run(args, h):
    workdir = tempfile.mkdtemp(prefix="corral-upgrade-bench-")
    binary = os.path.join(workdir, "corral")
    shutil.copy2(h.corral_bin(), binary)
    control = os.path.join(workdir, "control")
    port = h.free_port()
    corral = h.Corral(["--listen", f"127.0.0.1:{port}", "--count", args.workers, "--control", control, "--",
                       h.worker_bin()], workdir=workdir, name="upgrade", binary=binary)
    result = {"benchmark": "upgrade", "command": " ".join(sys.argv), "machine": B.machine(), "workers": args.workers,
              "connections": args.connections, "rows": []}
    with corral:
        h.wait_all_ready(control, args.workers)
        before = {w["slot"]: w["pid"] for w in h.control_status(control)[1]["workers"]}
        load = Load(port, args.connections, duration=24 * 3600, timeout=5)
        load_thread = threading.Thread(target=lambda: setattr(load, "result", load.run()), daemon=True)
        load_thread.start()
        probe = ControlProbe(control)
        times, failed = [], 0
        time.sleep(1)
        t0 = time.monotonic()
        probe.thread.start()
        try:
            with probe.lock:
                time.sleep(0.05)
                result["rows"].append({"upgrade": 0, "rss_kb": B.rss_kb(corral.pid), "fds": B.fd_count(corral.pid)})
            for i in range(1, args.upgrades + 1):
                t = time.monotonic()
                p = subprocess.run([h.corral_bin(), "upgrade", "--control", control], capture_output=True, text=True,
                                   timeout=60)
                times.append(time.monotonic() - t)
                if p.returncode != 0:
                    failed += 1
                    B.log(f"  upgrade {i} failed: {p.stdout.strip()} {p.stderr.strip()}")
                if i % args.every == 0 or i == args.upgrades:
                    with probe.lock:  # no control request in flight: its connection is an fd too
                        time.sleep(0.05)  # corral closes the last one after its answer went out
                        row = {"upgrade": i, "rss_kb": B.rss_kb(corral.pid), "fds": B.fd_count(corral.pid),
                               "requests_ok": load.counts()["ok"], "requests_failed": load.counts()["failed"]}
                    result["rows"].append(row)
                    B.log(f"  {i:5}: rss {row['rss_kb']} kB, {row['fds']} fds, {row['requests_ok']} ok, "
                          f"{row['requests_failed']} failed")
        finally:
            probe.stop.set()
            probe.thread.join(15)
            load.stop.set()
            load_thread.join(30)
        counts = getattr(load, "result", None) or load.counts()
        after = {w["slot"]: w["pid"] for w in h.control_status(control)[1]["workers"]}
        result["seconds"] = round(time.monotonic() - t0, 1)
        result["failed_upgrades"] = failed
        result["requests"] = {k: counts[k] for k in ("ok", "failed")}
        result["workers_changed"] = sorted(s for s in before if after.get(s) != before[s])
        result["corral_pid_kept"] = h.control_status(control)[1]["pid"] == corral.pid
        def in_ms(stats):
            return {k: v if k == "n" or v is None else round(v * 1000, 2) for k, v in stats.items()}
        result["upgrade_ms"] = in_ms(B.stats(times))
        result["control_answer_ms"] = in_ms(B.stats(probe.latencies))
        result["control_answer_ms"]["p99"] = round(B.pct(probe.latencies, 99) * 1000, 2) if probe.latencies else None
        result["control_probe_errors"] = probe.errors
        result["loadavg_end"] = B.loadavg()
        corral.stop(signal.SIGTERM, timeout=30)
    B.growth(result)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upgrades", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--every", type=int, default=100, help="a checkpoint every N upgrades")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every upgrade succeeded, no request failed, no worker changed, fds stayed "
                         "flat and RSS grew less than --rss-growth-kb")
    ap.add_argument("--rss-growth-kb", type=int, default=512)
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    h = B.setup(args.build_dir)
    r = run(args, h)
    u, c = r["upgrade_ms"], r["control_answer_ms"]
    B.log(f"upgrade: {args.upgrades} upgrades in {r['seconds']} s ({r['failed_upgrades']} failed); each "
          f"{u['median']} ms median, {u['p90']} ms p90, {u['max']} ms max; control socket answered in "
          f"{c['median']} ms median, {c['p99']} ms p99, {c['max']} ms max ({r['control_probe_errors']} errors); "
          f"{r['requests']['ok']} requests ok, {r['requests']['failed']} failed; workers changed: "
          f"{r['workers_changed'] or 'none'}; fds {r['fds_min']}..{r['fds_max']}; RSS {r['rss_first_kb']} -> "
          f"{r['rss_last_kb']} kB; load average at the end {r['loadavg_end']}")
    B.emit(r, args.json)
    if args.check:
        problems = []
        if r["requests"]["ok"] == 0:
            problems.append("no request was answered: the load never ran")
        if r["failed_upgrades"]:
            problems.append(f"{r['failed_upgrades']} upgrades failed")
        if r["requests"]["failed"]:
            problems.append(f"{r['requests']['failed']} requests failed")
        if r["workers_changed"] or not r["corral_pid_kept"]:
            problems.append("a pid changed")
        B.check("upgrade", r, problems, args.rss_growth_kb)


if __name__ == "__main__":
    main()
