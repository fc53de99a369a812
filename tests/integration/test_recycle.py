# SPDX-License-Identifier: MIT
"""Recycling by accounting, for real on this host's cgroups (hybrid: cgroup2 leaves plus the v1 memory
controller) and with /proc accounting: a leaking worker is replaced start-first on memory, a runaway one
on CPU (its spinning child removed with it), old ones on age with jitter, one whose child the OOM killer
took on "oom"; zero failed requests. A worker the OOM killer took itself is named so and replaced."""

import os
import re
import time
import unittest

import corral_harness as h


class Recycle(h.CorralTestCase):
    def start(self, *extra, count=2, accounting=()):
        self.port = h.free_port()
        c = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--count", count, "--check-interval", "200ms",
                               *accounting, *extra, "--", h.worker_bin()])
        c.wait_for_line(rf"all {count} workers? ready", timeout=20)
        return c

    def recycled(self, c, reason, timeout=20):
        m = c.wait_for_line(rf"worker (\d+) \(pid (\d+)\) is recycled: {reason} (\S+), limit (\S+)", timeout=timeout)
        return int(m.group(2)), m.group(3), m.group(4)

    def leak_and_check(self, accounting):
        # The limit sits well above any worker's baseline (an ASan build's is ~60 MB), the leak well above it.
        c = self.start("--recycle-memory-max", "200M", "--recycle-samples", "2", accounting=accounting)
        m = self.recycle_under_load(c, "/leak/300", r"is recycled: memory (\S+), limit (\S+)")
        self.assertEqual(m.group(2), "200.0M")
        return c

    def recycle_under_load(self, c, path, recycled):
        """GETs PATH under load: the worker that answered is recycled (its record matches RECYCLED), exits 0
        once replaced, and no request fails. Returns the match of the record."""
        load = h.LoadGenerator(self.port, concurrency=4, duration=h.scaled(30), keepalive=False, timeout=10).start()
        try:
            victim = h.http_get(self.port, path).pid
            m = c.wait_for_line(rf"worker \d+ \(pid {victim}\) {recycled}", timeout=20)
            c.wait_for_line(rf"\(pid {victim}\) exited with status 0", timeout=20)
            time.sleep(0.3)
        finally:
            load.stop()
        s = load.summary()
        self.assertEqual(s["failed"], 0, s["failure_reasons"])
        self.assert_replaced_first(c, victim)
        return m

    def assert_replaced_first(self, c, victim):
        """Start-first: a replacement was ready after VICTIM was marked for recycling and before it exited."""
        out = c.output()
        ready = re.search(rf"worker \d+ \(pid (\d+)\) ready after", out[out.index(f"(pid {victim}) is recycled"):])
        self.assertIsNotNone(ready)
        self.assertLess(out.index(f"(pid {ready.group(1)}) ready after"), out.index(f"(pid {victim}) exited"))

    def test_leaking_worker_recycled_on_memory_with_cgroups(self):
        c = self.leak_and_check(())
        self.assertRegex(c.output(), r"accounting: (hybrid cgroups|cgroup v2)")

    def test_leaking_worker_recycled_on_memory_with_proc_accounting(self):
        c = self.leak_and_check(("--cgroup-root", "none"))
        self.assertRegex(c.output(), r"accounting: .*(/proc|process tree|PSS)")

    def test_runaway_worker_recycled_on_cpu_with_its_child(self):
        c = self.start("--recycle-cpu-max", "50", "--recycle-samples", "3", count=1)
        victim = h.http_get(self.port, "/spin").pid
        h.wait_until(lambda: [p for p in h.child_pids(victim)], 5, message="no spinning child")
        spinner = h.child_pids(victim)[0]
        pid, value, limit = self.recycled(c, "cpu")
        self.assertEqual(pid, victim)
        self.assertEqual(limit, "50%")
        self.assertGreater(int(value.rstrip("%")), 50)
        c.wait_for_line(rf"\(pid {victim}\) exited", timeout=20)
        self.assertAllGone([victim, spinner], timeout=5)
        self.assertEqual(h.http_get(self.port).status, 200)

    def test_max_age_with_jitter(self):
        c = self.start("--max-age", "2s", "--max-age-jitter", "2s", count=3)
        seen = set()
        deadline = time.monotonic() + h.scaled(20)
        while len(seen) < 3 and time.monotonic() < deadline:
            for m in re.finditer(r"worker (\d+) \(pid \d+\) is recycled: age (\S+), limit (\S+)", c.output()):
                seen.add((m.group(1), m.group(3)))
            time.sleep(0.2)
        slots = {s for s, _ in seen}
        self.assertEqual(slots, {"0", "1", "2"}, c.output())
        limits = {l for _, l in seen}
        self.assertGreater(len(limits), 1, f"no jitter: every worker got the same age limit {limits}")
        self.assertEqual(h.http_get(self.port).status, 200)

    def start_with_memory_limit(self, *extra, count):
        c = self.start("--memory-limit", *extra, count=count)
        if not re.search(r"accounting: hybrid cgroups", c.output()):
            self.skipTest("needs the hybrid cgroup layout of these machines (v1 memory controller)")
        return c

    def test_memory_limit_lands_in_the_worker_cgroup(self):
        c = self.start_with_memory_limit("256M", "--memory-high", "200M", count=1)
        pid = h.http_get(self.port).pid
        with open(f"/proc/{pid}/cgroup") as f:
            memory = [l.split(":", 2)[2].strip() for l in f if l.split(":")[1] == "memory"][0]
        self.assertRegex(memory, rf"/corral-{c.pid}/worker-0-\d+$")
        with open(f"/sys/fs/cgroup/memory{memory}/memory.limit_in_bytes") as f:
            self.assertEqual(int(f.read()), 256 << 20)
        c.wait_for_line(r"MemoryHigh= needs cgroup v2", timeout=5)

    # Real OOM kills, inside the memory cgroups corral made for its workers (the limit is theirs alone).
    def test_oom_killed_child_recycles_its_worker(self):
        c = self.start_with_memory_limit("192M", count=2)
        m = self.recycle_under_load(c, "/hog/400", r"is recycled: oom, (\d+) process")
        self.assertGreaterEqual(int(m.group(1)), 1)

    def test_oom_killed_worker_says_so_and_is_replaced(self):
        c = self.start_with_memory_limit("192M", count=1)
        victim = h.http_get(self.port).pid
        try:
            h.http_get(self.port, "/leak/400")
        except (OSError, h.http.client.HTTPException):
            pass  # killed while answering
        c.wait_for_line(rf"worker 0 \(pid {victim}\) killed by signal KILL \(the OOM killer", timeout=20)
        self.assertNotEqual(h.http_get(self.port).pid, victim)


if __name__ == "__main__":
    unittest.main()
