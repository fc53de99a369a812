#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Bounded HTTP load client for the end-to-end tier. Run in the container's network namespace
(nsenter -n). CONCURRENCY threads send GET / on keep-alive connections until SIGTERM/SIGINT or
--duration seconds; then prints one JSON summary line. A request that fails on a reused keep-alive
connection before any byte of the answer came back is retried once on a fresh connection (what HTTP
clients do, RFC 9112 9.3.1) and counted as "retried"; every other failure counts as "failed", and
connection refusals also as "refused".

--once: one request on a fresh connection; prints {"ok", "latency_s", "pid", ...} (activation latency)."""

import argparse
import http.client
import json
import signal
import sys
import threading
import time


def one_request(port, timeout):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        r = conn.getresponse()
        r.read()
        return {"ok": r.status == 200, "status": r.status, "latency_s": time.monotonic() - t0,
                "pid": r.getheader("X-Worker-Pid"), "generation": r.getheader("X-Worker-Generation")}
    except OSError as e:
        return {"ok": False, "error": repr(e), "latency_s": time.monotonic() - t0}
    finally:
        conn.close()


class Load:
    def __init__(self, port, concurrency, duration, timeout, keepalive=True):
        self.port, self.concurrency, self.duration, self.timeout = port, concurrency, duration, timeout
        self.headers = {} if keepalive else {"Connection": "close"}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = self.failed = self.refused = self.retried = 0
        self.max_latency = 0.0
        self.pids, self.generations, self.errors = set(), set(), {}

    @staticmethod
    def _tally():
        return {"ok": 0, "failed": 0, "refused": 0, "retried": 0, "max_latency": 0.0, "pids": set(), "gens": set(),
                "errors": {}}

    def _flush(self, t):
        """Adds a thread's tallies T to the totals and clears them."""
        with self.lock:
            self.ok += t["ok"]
            self.failed += t["failed"]
            self.refused += t["refused"]
            self.retried += t["retried"]
            self.max_latency = max(self.max_latency, t["max_latency"])
            self.pids |= t["pids"]
            self.generations |= t["gens"]
            for k, v in t["errors"].items():
                self.errors[k] = self.errors.get(k, 0) + v
        t.update(self._tally())

    def counts(self):
        """The totals so far (threads add theirs every 64 answers, and at once after a failure)."""
        with self.lock:
            return {"ok": self.ok, "failed": self.failed, "refused": self.refused, "retried": self.retried,
                    "errors": dict(self.errors)}

    def run_thread(self, deadline):
        t = self._tally()
        conn, reused = None, False
        while not self.stop.is_set() and time.monotonic() < deadline:
            t0 = time.monotonic()
            for attempt in (0, 1):
                if conn is None:
                    conn, reused = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout), False
                try:
                    conn.request("GET", "/", headers=self.headers)
                    r = conn.getresponse()
                    r.read()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                    conn.close()
                    conn = None
                    if reused and attempt == 0:
                        t["retried"] += 1
                        continue
                    t["failed"] += 1
                    t["errors"][repr(e)[:80]] = t["errors"].get(repr(e)[:80], 0) + 1
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = None
                    t["failed"] += 1
                    if isinstance(e, ConnectionRefusedError):
                        t["refused"] += 1
                    t["errors"][repr(e)[:80]] = t["errors"].get(repr(e)[:80], 0) + 1
                    time.sleep(0.01)
                    break
                if r.status == 200:
                    t["ok"] += 1
                    t["pids"].add(r.getheader("X-Worker-Pid"))
                    t["gens"].add(r.getheader("X-Worker-Generation"))
                else:
                    t["failed"] += 1
                    t["errors"][f"HTTP {r.status}"] = t["errors"].get(f"HTTP {r.status}", 0) + 1
                t["max_latency"] = max(t["max_latency"], time.monotonic() - t0)
                if r.will_close:
                    conn.close()
                    conn = None
                else:
                    reused = True
                break
            if t["ok"] >= 64 or t["failed"]:
                self._flush(t)
        if conn is not None:
            conn.close()
        self._flush(t)

    def run(self):
        start = time.monotonic()
        deadline = start + self.duration
        threads = [threading.Thread(target=self.run_thread, args=(deadline,), daemon=True)
                   for _ in range(self.concurrency)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and not self.stop.is_set():
            time.sleep(0.05)
        self.stop.set()
        end = time.monotonic() + 2 * self.timeout + 2
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        hung = sum(t.is_alive() for t in threads)
        return {"ok": self.ok, "failed": self.failed + hung, "refused": self.refused, "retried": self.retried,
                "hung_threads": hung, "seconds": round(time.monotonic() - start, 3),
                "max_latency_s": round(self.max_latency, 4), "pids": sorted(p for p in self.pids if p),
                "generations": sorted(g for g in self.generations if g), "errors": self.errors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60.0, help="upper bound; SIGTERM ends it sooner")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--no-keepalive", action="store_true", help="a new connection per request")
    a = ap.parse_args()
    if a.once:
        print(json.dumps(one_request(a.port, a.timeout)))
        return 0
    load = Load(a.port, a.concurrency, a.duration, a.timeout, keepalive=not a.no_keepalive)
    signal.signal(signal.SIGTERM, lambda *_: load.stop.set())
    signal.signal(signal.SIGINT, lambda *_: load.stop.set())
    # Readiness for the caller: the threads are about to start.
    print("started", file=sys.stderr, flush=True)
    print(json.dumps(load.run()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
