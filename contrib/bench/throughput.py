#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Data-path cost of corral: wrk against 2 test workers (a) under corral and (b) started WITHOUT corral,
sharing one listening socket handed over the same way (LISTEN_FDS=1 on fd 3, LISTEN_PID = the worker's pid)
by a small Python launcher. Same socket options (SO_REUSEADDR, backlog SOMAXCONN), same worker binary and
arguments (--ready-delay 0), same wrk command: --duration seconds, --connections keep-alive connections,
--threads wrk threads. The two setups alternate (A B, B A, A B, ...), --runs times each; the medians are reported. For (a) the
CPU time corral's master used during the wrk run is reported too (it never touches a connection).

Needs wrk (apt-get install -y wrk); this script installs nothing. Only 127.0.0.1 is used; every process
started is stopped by pid (pidfd); every run is bounded (wrk -d, subprocess timeout).

    contrib/bench/throughput.py [--duration 10] [--connections 50] [--threads 2] [--runs 3] [--json]
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def parse_latency(text):
    m = re.match(r"([0-9.]+)(us|ms|s|m)$", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(2)]


def parse_wrk(out):
    r = {"rps": None, "p50": None, "p99": None, "requests": None, "socket_errors": None, "non_2xx": 0}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    for pctl in ("50", "99"):
        m = re.search(rf"^\s+{pctl}(?:\.000)?%\s+(\S+)", out, re.M)
        r[f"p{pctl}"] = parse_latency(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non_2xx"] = int(m.group(1)) if m else 0
    return r


def conn_sockets(pid):
    """Sockets PID holds, minus its one listening socket: the connections it serves."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    n = 0
    for fd in fds:
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n - 1


def run_wrk(wrk, port, args, worker_pids, script=None):
    """Runs wrk (with the Lua SCRIPT, if any); halfway through, counts the connections each worker holds (wrk
    keeps its connections for the whole run, so how they split between the workers at connect time decides
    how the load is shared). Returns the parsed result, with the output in "raw", and the command as run,
    the port and the script's directory left out."""
    lua = ["-s", script] if script else []
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "--timeout", "5s",
           *lua, f"http://127.0.0.1:{port}/"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(args.duration / 2)
        split = [conn_sockets(pid) for pid in worker_pids]
        out, err = p.communicate(timeout=args.duration + 30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {err}{out}")
    r = parse_wrk(out)
    r["raw"] = out
    r["connections_per_worker"] = split
    shown = cmd[:-3] + ["-s", os.path.basename(script)] if script else cmd[:-1]
    return r, " ".join(shown + ["http://127.0.0.1:PORT/"])


def with_corral(h, wrk, args):
    tmp = tempfile.mkdtemp(prefix="corral-bench-tp-")
    port = h.free_port()
    c = h.Corral(["--count", "2", "--ready-mode", "notify", "--listen", f"127.0.0.1:{port}", "--",
                  h.worker_bin(), "--ready-delay", "0"], workdir=tmp, name="corral-tp")
    try:
        c.start()
        c.wait_for_line(r"all 2 workers ready", timeout=30)
        h.collect_workers(port, 2, timeout=10, corral=c)
        cpu0 = B.proc_cpu_seconds(c.pid, children=False)
        r, cmd = run_wrk(wrk, port, args, c.worker_pids())
        r["master_cpu_seconds"] = B.proc_cpu_seconds(c.pid, children=False) - cpu0
    finally:
        c.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return r, cmd


class BareWorkers:
    """Test workers started without corral: worker i (WORKER_INDEX=i) gets the listening socket fds[i] from
    the harness's fd wrapper (a few lines of Python that put the socket on fd 3, set LISTEN_PID to its own
    pid, then exec the worker). stop() SIGKILLs them by pidfd and waits for them."""

    def __init__(self, h):
        self.h, self.tracker, self.procs = h, h.ProcessTracker(), []

    def start(self, fds):
        for i, fd in enumerate(fds):
            p = subprocess.Popen([sys.executable, "-c", self.h._FD_WRAPPER, "1", str(fd), "http",
                                  self.h.worker_bin(), "--ready-delay", "0"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 pass_fds=[fd], env=self.h.clean_env({"WORKER_INDEX": str(i)}),
                                 start_new_session=True)
            self.tracker.track(p.pid)
            self.procs.append(p)
        return [p.pid for p in self.procs]

    def stop(self):
        self.tracker.kill_all()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


def without_corral(h, wrk, args):
    """Two test workers on one socket this script bound (BareWorkers)."""
    sock = h.bind_tcp(0, backlog=socket.SOMAXCONN)
    port = sock.getsockname()[1]
    workers = BareWorkers(h)
    try:
        pids = workers.start([sock.fileno()] * 2)
        h.collect_workers(port, 2, timeout=10)
        r, cmd = run_wrk(wrk, port, args, pids)
    finally:
        workers.stop()
        sock.close()
    return r, cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="runs of each setup, alternating")
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    if args.duration < 1 or args.duration > 120 or args.connections < 1 or args.runs < 1 or args.threads < 1:
        ap.error("bad arguments")
    wrk = B.require_tool("wrk", "wrk")
    h = B.setup(args.build_dir)
    out = B.result("throughput", h, with_corral=[], without_corral=[])
    fc = B.ForeignCpu()
    for i in range(args.runs):
        order = [("with_corral", with_corral), ("without_corral", without_corral)]
        for key, fn in (order if i % 2 == 0 else order[::-1]):  # ABBAAB...: no setup always goes first
            r, cmd = fn(h, wrk, args)
            out["wrk_command"] = cmd
            out[key].append(r)
            extra = f", corral master CPU {r['master_cpu_seconds']:.3f} s" if "master_cpu_seconds" in r else ""
            B.log(f"run {i + 1}/{args.runs} {key:15}: {r['rps']:.0f} req/s, p50 {B.ms(r['p50'], 2)} ms, "
                  f"p99 {B.ms(r['p99'], 2)} ms, errors {r['socket_errors']}, non-2xx {r['non_2xx']}, "
                  f"connections per worker {r['connections_per_worker']}{extra}")
    out["machine_use"] = fc.stop(0.0)
    out["busy"] = out["machine_use"]["busy"]
    for key in ("with_corral", "without_corral"):
        runs = out[key]
        out[key + "_median"] = {k: B.median([r[k] for r in runs]) for k in ("rps", "p50", "p99")}
        out[key + "_median"]["errors"] = sum(r["socket_errors"] + r["non_2xx"] for r in runs)
        out[key + "_median"]["best_rps"] = max(r["rps"] for r in runs)
    a, b = out["with_corral_median"], out["without_corral_median"]
    out["rps_ratio"] = a["rps"] / b["rps"] if b["rps"] else None
    B.log(f"\n== wrk: {out['wrk_command']}")
    B.log(f"{'setup':16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'best req/s':>10}   (medians of {args.runs} runs)")
    for key in ("with_corral", "without_corral"):
        m = out[key + "_median"]
        B.log(f"{key:16} {m['rps']:>9.0f} {B.ms(m['p50'], 2):>8} {B.ms(m['p99'], 2):>8} {m['errors']:>7} {m['best_rps']:>10.0f}")
    B.log(f"with/without req/s ratio: {out['rps_ratio']:.3f}; others kept "
          f"{out['machine_use']['background_cores_before']:.2f} cores busy before the run"
          + (f"  ** {out['busy']}" if out["busy"] else ""))
    for key in ("with_corral", "without_corral"):
        for r in out[key]:
            r.pop("raw", None) if not args.json else None
    B.emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
