# SPDX-License-Identifier: MIT
"""Under socket activation (systemd-socket-activate hands corral fd 3) with a NOTIFY_SOCKET owned by the
test: corral says READY=1 only once all N workers are ready, STOPPING=1 on SIGTERM, and never lets a
worker's own datagrams through to systemd."""

import os
import signal
import time
import unittest

import corral_harness as h


class SocketActivated(h.CorralTestCase):
    def start_activated(self, corral_args, worker_cmd, notify):
        port = h.free_port()
        self.control = os.path.join(self.tmp, "control")
        c = self.start_corral([*corral_args, "--control", self.control, "--", *worker_cmd], mode="socket-activate",
                              activate_port=port, notify_socket=notify.path)
        return c, port

    def assertNoneRejected(self):
        """corral dropped no notification so far: every datagram counted for a worker."""
        _, st = h.control_status(self.control)
        self.assertEqual(st["notify_rejected"], 0, st)

    def test_ready_only_when_all_workers_ready_then_stopping(self):
        n = self.notify_receiver()
        slow = 1.5
        cmd, _ = h.spawn_counter_command(self.tmp, {"2": ["--ready-delay", slow], None: []})
        c, port = self.start_activated(["--count", 3], cmd, n)

        i, ready = n.wait_for("READY", "1", timeout=15)
        # Slot 2 cannot have been ready before `slow` seconds after corral was exec'd.
        self.assertGreaterEqual(ready.time - c.activated_at, slow - 0.1,
                                f"READY=1 after {ready.time - c.activated_at:.2f}s, before the slow worker")
        before = n.datagrams()[:i]
        self.assertFalse([d for d in before if d.has("READY")], before)
        self.assertTrue(ready.get("STATUS"), f"READY=1 without STATUS=: {ready}")

        found = h.collect_workers(port, 3, path="/env", corral=c)
        for slot, a in found.items():
            env = a.env()
            self.assertEqual(env["LISTEN_FDNAMES"], "http")
            self.assertEqual(env["LISTEN_FDS"], "1")
            self.assertEqual(env["LISTEN_PID"], str(a.pid))
            self.assertNotEqual(env["NOTIFY_SOCKET"], n.path, "workers must talk to corral, not to systemd")
            self.assertEqual(env["CORRAL_PID"], str(c.pid))

        c.send_signal(signal.SIGTERM)
        j, _ = n.wait_for("STOPPING", "1", timeout=10, start=i + 1)
        self.assertEqual(c.wait(10), 0)
        self.assertAllGone([a.pid for a in found.values()])

        datagrams = n.datagrams()
        self.assertEqual(sum(1 for d in datagrams if d.has("READY", "1")), 1, datagrams)
        self.assertEqual({d.pid for d in datagrams}, {c.pid}, "datagrams from someone other than corral")
        self.assertGreater(j, i)

    def test_ready_waits_for_every_slot_even_when_fast(self):
        n = self.notify_receiver()
        c, port = self.start_activated(["--count", 4], [h.worker_bin(), "--ready-delay", "0.3"], n)
        n.wait_for("READY", "1", timeout=15)
        # Right after READY=1 every slot answers.
        found = h.collect_workers(port, 4, timeout=5, corral=c)
        self.assertEqual(len({a.pid for a in found.values()}), 4)

    def test_no_ready_worker_blocks_ready_and_times_out(self):
        n = self.notify_receiver()
        status_port = h.free_port()
        c, port = self.start_activated(["--count", 2, "--ready-timeout", "1s", "--restart-delay", "100ms",
                                        "--status-listen", f"127.0.0.1:{status_port}"],
                                       [h.worker_bin(), "--no-ready"], n)
        first = h.wait_until(lambda: len(c.worker_pids()) >= 2 and c.worker_pids(), 10,
                             message="corral did not start 2 workers")
        # Those workers never become ready: after the timeout corral gets rid of them...
        self.assertAllGone(first, timeout=6)
        # ...because they timed out (the reason is only in the log; the count of failed starts is the
        # same for an exit before READY=1), not because they crashed...
        for pid in first:
            c.wait_for_line(rf"\(pid {pid}\) not ready after 1s, stopping it", timeout=1)
        m = h.metrics(status_port)
        self.assertGreaterEqual(m["corral_worker_restarts_total{reason=failed-start}"], 2, m)
        self.assertEqual(m["corral_worker_restarts_total{reason=crash}"], 0, m)
        # ...and never tells systemd it is ready, nor says so on the control socket.
        time.sleep(h.scaled(0.5))
        self.assertFalse([d for d in n.datagrams() if d.has("READY", "1")], n.datagrams())
        rc, st = h.control_status(self.control)
        self.assertEqual((rc, st["state"], st["ready"]), (1, "starting", 0), st)

    def test_ready_from_worker_child_counts(self):
        # Each worker's child sends READY=1, then BARRIER=1, and exits as soon as corral closed the barrier's
        # fd; the worker reaps it at once. Both datagrams count for the worker: none is dropped as coming
        # from a stranger (it was, now and then, when corral closed the fd before tracing the sender).
        n = self.notify_receiver()
        c, port = self.start_activated(["--count", 8], [h.worker_bin(), "--notify-via-child"], n)
        _, ready = n.wait_for("READY", "1", timeout=15)
        self.assertEqual(ready.pid, c.pid)
        self.assertEqual(len(h.collect_workers(port, 8, corral=c)), 8)
        # Each helper exits once corral closed its barrier's fd: with all of them gone every datagram was
        # handled.
        workers = c.worker_pids()
        h.wait_until(lambda: not [p for w in workers for p in h.child_pids(w)], 10, message="helpers still there")
        self.assertNoneRejected()
        self.assertEqual(c.stop(), 0)

    def test_ready_from_orphaned_helper_in_worker_cgroup_counts(self):
        # The helper double-forks: re-parented, it is no longer below its worker, but it still sits in the
        # worker's cgroup, which names the worker (as NotifyAccess=all does for a unit).
        n = self.notify_receiver()
        c, port = self.start_activated(["--count", 2], [h.worker_bin(), "--notify-via-orphan"], n)
        if not c.wait_for_line(r"accounting: (hybrid cgroups|cgroup v2)|accounting: ", timeout=10).group(1):
            self.skipTest("needs a cgroup per worker; this machine gives corral /proc accounting only")
        _, ready = n.wait_for("READY", "1", timeout=15)
        self.assertEqual(ready.pid, c.pid)
        self.assertEqual(len(h.collect_workers(port, 2, corral=c)), 2)
        self.assertNoneRejected()
        self.assertEqual(c.stop(), 0)

    def test_worker_status_not_forwarded_as_ready(self):
        # A worker's READY=1/STATUS= go to corral; systemd only ever hears corral's own datagrams.
        n = self.notify_receiver()
        c, port = self.start_activated(["--count", 2], [h.worker_bin(), "--status", "worker-secret"], n)
        n.wait_for("READY", "1", timeout=15)
        h.collect_workers(port, 2, corral=c)
        self.assertEqual(c.stop(), 0)
        for d in n.datagrams():
            self.assertEqual(d.pid, c.pid)


if __name__ == "__main__":
    unittest.main()
