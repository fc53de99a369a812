# SPDX-License-Identifier: MIT
"""Crashes: a dead worker is replaced in its own slot, a crash loop backs off exponentially instead of
fork-storming, a "permanent failure" exit status is not respawned, and an exec failure is reported with
its stage and errno."""

import http.client
import os
import re
import signal
import time
import unittest

import corral_harness as h


class Crash(h.CorralTestCase):
    def test_killed_worker_replaced_in_same_slot(self):
        port = h.free_port()
        control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 3, "--restart-delay", "100ms",
                               "--control", control, "--", h.worker_bin()])
        before = h.collect_workers(port, 3, corral=c)
        victim = before["1"].pid
        os.kill(victim, signal.SIGKILL)

        def replaced():
            try:
                now = h.collect_workers(port, 3, timeout=2, corral=c)
            except AssertionError:
                return None
            return now if now["1"].pid != victim else None
        after = h.wait_until(replaced, 10, message=f"slot 1 (pid {victim}) was not replaced")
        self.assertFalse(h.pid_alive(victim))
        self.assertEqual(after["0"].pid, before["0"].pid, "slot 0 was touched")
        self.assertEqual(after["2"].pid, before["2"].pid, "slot 2 was touched")
        self.assertIn(after["1"].pid, c.worker_pids())
        self.assertEqual(after["1"].fields["generation"], "1")
        self.assertEqual(after["1"].fields["count"], "3")
        # corral's account of it: slot 1 restarted once after a SIGKILL, the others never.
        _, st = h.control_status(control)
        slots = {w["slot"]: w for w in st["workers"]}
        self.assertEqual(sorted(slots), [0, 1, 2], st)
        self.assertEqual(slots[1]["pid"], after["1"].pid)
        last = slots[1]["last_exit"]
        self.assertEqual({k: last[k] for k in ("code", "status", "signal", "core_dumped")},
                         {"code": "killed", "status": signal.SIGKILL, "signal": "KILL", "core_dumped": False}, st)
        self.assertGreater(last["ago_usec"], 0)
        self.assertEqual(slots[1]["restarts"], 1)
        self.assertEqual([(slots[i]["last_exit"], slots[i]["restarts"]) for i in (0, 2)], [(None, 0)] * 2)

    def test_crash_loop_backs_off(self):
        port = h.free_port()
        cmd, spawns = h.spawn_counter_command(self.tmp, ["--crash-at-start"])
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 1, "--min-uptime", "1s",
                               "--restart-delay", "100ms", "--backoff-max", "1s", "--", *cmd])
        h.wait_until(lambda: h.read_spawns(spawns), 10, message="worker never started")
        # The measurement window: with 100ms doubling up to 1s, about 6 starts fit in 3s; a storm
        # would be hundreds.
        time.sleep(h.scaled(3.0))
        starts = h.read_spawns(spawns)
        self.assertGreaterEqual(len(starts), 3, f"crashed worker not respawned: {starts}")
        self.assertLessEqual(len(starts), 8, f"no backoff: {len(starts)} starts in 3s")
        self.assertEqual(len({pid for _, pid in starts}), len(starts))
        self.assertTrue(all(slot == "0" for slot, _ in starts), starts)
        # corral itself survives the crash loop: it gives up only with GiveUpAfterFailures=, 0 (never) here.
        self.assertTrue(c.running(), f"corral exited ({c.proc.returncode}) in a crash loop")
        self.assertEqual(c.stop(), 0)

    def test_restart_prevent_exit_status(self):
        port = h.free_port()
        cmd, spawns = h.spawn_counter_command(self.tmp, {"0": ["--exit-at-start", "3"],
                                                         "1": ["--exit-at-start", "4"], None: []})
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 3, "--restart-delay", "100ms",
                               "--backoff-max", "500ms", "--restart-prevent-exit-status", 3, "--", *cmd])
        served = h.wait_serving(port)
        self.assertEqual(served.slot, "2")

        def slot_starts(slot):
            return [pid for s, pid in h.read_spawns(spawns) if s == slot]
        # Slot 1 (status 4) is respawned: it proves time has passed for slot 0 to have been respawned too.
        h.wait_until(lambda: len(slot_starts("1")) >= 3, 10, message="slot 1 (exit 4) not respawned")
        self.assertEqual(len(slot_starts("0")), 1, "slot 0 exited with a prevented status and was respawned")
        first = slot_starts("0")[0]
        c.wait_for_line(rf"\b{first}\b.*status 3", timeout=5)
        self.assertTrue(c.running())
        self.assertEqual(h.http_get(port).pid, served.pid)

    def test_exec_failure_reports_stage_and_errno(self):
        port = h.free_port()
        garbage = h.write_executable(os.path.join(self.tmp, "garbage"), b"\x00\x01\x02\x03not a program\xff\n")
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 1, "--restart-delay", "100ms",
                               "--", garbage])
        c.wait_for_line(r"failed at stage 'exec'.*Exec format error", timeout=10)
        # Nothing answers, and nothing was left running in its place.
        with self.assertRaises((OSError, http.client.HTTPException)):
            h.http_get(port, timeout=0.5)
        self.assertEqual(c.stop(), 0)

    def test_gives_up_so_systemd_can_restart(self):
        port = h.free_port()
        notify = self.notify_receiver()
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 2, "--restart-delay", "10ms",
                               "--backoff-max", "50ms", "--give-up-after", 3, "--", h.worker_bin(), "--crash-at-start"],
                              notify_socket=notify.path)
        rc = c.wait(h.scaled(20))
        self.assertEqual(rc, 1, c.output())
        self.assertIn("giving up", c.output())
        # Every slot failed 3 times before corral gave up; one may have gone on failing while the other
        # caught up, but never without bound.
        starts = [int(m) for m in re.findall(r"worker (\d+) \(pid \d+, generation 1\) started", c.output())]
        for slot in (0, 1):
            self.assertGreaterEqual(starts.count(slot), 3, starts)
            self.assertLessEqual(starts.count(slot), 6, starts)
        notify.wait_for("ERRNO", timeout=5)
        self.assertFalse([d for d in notify.datagrams() if d.get("READY") == "1"])


if __name__ == "__main__":
    unittest.main()
