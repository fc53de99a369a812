# SPDX-License-Identifier: MIT
"""Shutdown: SIGTERM/SIGINT stop the pool and exit 0; a worker that ignores SIGTERM is killed after the
stop timeout; a stopped worker is woken to act on it; a grandchild a worker left behind dies with it
instead of hanging corral; requests in flight are answered; a second SIGTERM does not wait."""

import os
import signal
import time
import unittest

import corral_harness as h


class Shutdown(h.CorralTestCase):
    def start_pool(self, n, worker_args=(), extra=(), notify=None):
        port = h.free_port()
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", n, *extra, "--", h.worker_bin(),
                               *worker_args], notify_socket=notify.path if notify else None)
        pids = [a.pid for a in h.collect_workers(port, n, corral=c).values()]
        return c, port, pids

    def test_stop_timeout_kills_worker_ignoring_sigterm(self):
        c, _, pids = self.start_pool(2, ["--ignore-sigterm"], ["--stop-timeout", "1s"])
        t0 = time.monotonic()
        self.assertEqual(c.stop(signal.SIGTERM, timeout=3), 0)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.8, f"exited after {elapsed:.2f}s, before the stop timeout")
        self.assertAllGone(pids, timeout=2)

    def test_leftover_grandchild_is_killed_and_does_not_hang(self):
        c, _, pids = self.start_pool(1, ["--spawn-child"])
        grandchildren = h.wait_until(lambda: h.child_pids(pids[0]), 5, message="no grandchild")
        c.snapshot_tree()  # tracked by pidfd: cleanup kills it whatever corral does
        # Left to itself the grandchild outlives its worker by a minute. It sits in its worker's process group
        # (and cgroup leaf, where there is one), which corral SIGKILLs as the worker exits: it is gone by the
        # time corral exits, with or without cgroups.
        self.assertEqual(c.stop(signal.SIGTERM, timeout=5), 0)
        self.assertAllGone(pids + grandchildren, timeout=2)

    def test_stopped_worker_is_woken_to_act_on_sigterm(self):
        c, _, pids = self.start_pool(2, extra=["--stop-timeout", "30s"])
        os.kill(pids[0], signal.SIGSTOP)
        h.wait_until(lambda: h.proc_state(pids[0]) == "T", 5, message=f"worker {pids[0]} never stopped")
        # Woken by corral's SIGCONT, the stopped worker drains and exits 0 well before the 30 s stop
        # timeout would kill it.
        self.assertEqual(c.stop(signal.SIGTERM, timeout=10), 0)
        c.wait_for_line(rf"\(pid {pids[0]}\) exited with status 0", timeout=1)
        self.assertAllGone(pids, timeout=2)

    def test_second_sigterm_kills_at_once(self):
        n = self.notify_receiver()
        c, _, pids = self.start_pool(2, ["--ignore-sigterm"], ["--stop-timeout", "30s"], notify=n)
        n.wait_for("READY", "1", timeout=10)
        c.send_signal(signal.SIGTERM)
        # Only once corral acted on the first one: two pending SIGTERMs would merge into one.
        n.wait_for("STOPPING", "1", timeout=5)
        t0 = time.monotonic()
        c.send_signal(signal.SIGTERM)
        rc = c.wait(3)
        self.assertLess(time.monotonic() - t0, h.scaled(3))
        self.assertGreaterEqual(rc, 0, f"corral died of signal {-rc}")
        self.assertAllGone(pids, timeout=2)

    def test_sigint_works_like_sigterm(self):
        n = self.notify_receiver()
        c, _, pids = self.start_pool(2, notify=n)
        n.wait_for("READY", "1", timeout=10)
        self.assertEqual(c.stop(signal.SIGINT, timeout=10), 0)
        n.wait_for("STOPPING", "1", timeout=1)
        self.assertAllGone(pids, timeout=2)

    def test_sigterm_drains_in_flight_requests(self):
        c, port, pids = self.start_pool(2, ["--drain-ms", "3000"])
        conns = []
        for _ in range(4):
            conn = h.http.client.HTTPConnection("127.0.0.1", port, timeout=h.scaled(5))
            self.addCleanup(conn.close)
            conn.request("GET", "/")
            conn.getresponse().read()
            # In flight when SIGTERM comes: the worker has the request line and a header, not the end.
            conn.sock.sendall(b"GET / HTTP/1.1\r\nHost: corral-test\r\n")
            conns.append(conn)
        c.send_signal(signal.SIGTERM)
        # Both workers got the StopSignal corral relayed and are draining (their own line, not corral's).
        h.wait_until(lambda: c.log.count(r"^test-worker \d+: draining ") >= 2, 5, message="workers not draining")
        # Every request in flight is answered in full, with "Connection: close" from a draining worker;
        # the workers exit once their connections are done and corral then exits 0.
        failures = []
        for conn in conns:
            try:
                conn.sock.sendall(b"\r\n")
                r = h.http.client.HTTPResponse(conn.sock, method="GET")
                r.begin()
                r.read()
                if r.status != 200 or not r.will_close:
                    failures.append(f"HTTP {r.status}, will_close={r.will_close}")
            except (OSError, h.http.client.HTTPException) as e:
                failures.append(repr(e))
        self.assertEqual(failures, [], f"{len(failures)} of {len(conns)} in-flight requests failed")
        self.assertEqual(c.wait(10), 0)
        self.assertAllGone(pids, timeout=2)


if __name__ == "__main__":
    unittest.main()
