#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""How fast a stop signal takes the pool out of rotation: corral with --drain-delay, a client polling
/health/ready on a fresh connection as fast as it can, and SIGTERM; the time from the kill() to the first
503, per run, then the median and spread over --runs. The same for the agent-check's first "down" (one
connection per poll). Issue 18's bar: within 10 ms. Every run also checks that the workers still serve
during the delay. 127.0.0.1 only; each corral is stopped by its pid (a second SIGTERM ends the delay)."""

import argparse
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def http_status(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return int(s.recv(64).split()[1])


def agent_line(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        return s.makefile("rb").readline().decode()


def one_run(h, tmp, probe):
    port, status_port, agent_port = h.free_port(), h.free_port(), h.free_port()
    control = os.path.join(tmp, f"control-{port}")
    c = h.Corral(["--listen", f"127.0.0.1:{port}", "--status-listen", f"127.0.0.1:{status_port}",
                  "--agent-listen", f"127.0.0.1:{agent_port}", "--count", "2", "--drain-delay", "10s",
                  "--control", control, "--", h.worker_bin()], workdir=tmp, name=f"corral-{port}")
    c.start()
    try:
        h.wait_all_ready(control, 2)
        out = (lambda: http_status(status_port, "/health/ready") == 503) if probe == "health" else \
              (lambda: agent_line(agent_port).startswith("down"))
        assert not out()
        t0 = time.monotonic()
        os.kill(c.pid, signal.SIGTERM)
        while not out():
            if time.monotonic() - t0 > 5:
                raise RuntimeError("never out of rotation")
        took = time.monotonic() - t0
        if h.http_get(port).status != 200:
            raise RuntimeError("the workers stopped serving during the drain delay")
        return took
    finally:
        if c.running():
            c.send_signal(signal.SIGTERM)  # the second one: no delay
        c.wait(30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    h = B.setup(args.build_dir)
    result = {"machine": B.machine(), "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="corral-bench-unready-") as tmp:
        for probe in ("health", "agent"):
            times = [one_run(h, tmp, probe) for _ in range(args.runs)]
            result[probe] = B.stats([t * 1000 for t in times])
            B.log(f"{probe}: SIGTERM to out of rotation, ms: " + " ".join(f"{t * 1000:.2f}" for t in times))
    if not args.json:
        for probe in ("health", "agent"):
            st = result[probe]
            print(f"{probe:6}: median {st['median']:.2f} ms, p90 {st['p90']:.2f} ms, min {st['min']:.2f}, "
                  f"max {st['max']:.2f} ({st['n']} runs)")
        print(f"machine: load average {result['machine']['loadavg_start']} at the start, {B.loadavg()}")
    B.emit(result, args.json)


if __name__ == "__main__":
    main()
