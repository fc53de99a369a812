# SPDX-License-Identifier: MIT
"""Shutdown: SIGTERM/SIGINT stop the pool and exit 0; a worker that ignores SIGTERM is killed after the
stop timeout; a stopped worker is woken to act on it; a leftover grandchild does not
hang corral; a second SIGTERM does not wait."""

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

    def test_leftover_grandchild_does_not_hang(self):
        c, _, pids = self.start_pool(1, ["--spawn-child"])
        grandchildren = h.wait_until(lambda: h.child_pids(pids[0]), 5, message="no grandchild")
        c.snapshot_tree()  # tracked by pidfd: cleanup kills it whatever corral does
        self.assertEqual(c.stop(signal.SIGTERM, timeout=5), 0)
        self.assertAllGone(pids, timeout=2)
        # The grandchild may be killed (cgroup) or left behind (plain fork/exec); either way corral exited.
        self.assertIsNotNone(grandchildren)

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
            conn.request("GET", "/")
            conn.getresponse().read()
            conns.append(conn)
        c.send_signal(signal.SIGTERM)
        # Whatever is still asked on these connections is answered or refused, never left hanging; the
        # workers exit once their connections are done and corral then exits 0.
        for conn in conns:
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
            except (OSError, h.http.client.HTTPException):
                pass
            finally:
                conn.close()
        self.assertEqual(c.wait(10), 0)
        self.assertAllGone(pids, timeout=2)


if __name__ == "__main__":
    unittest.main()
