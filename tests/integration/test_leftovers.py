# SPDX-License-Identifier: MIT
"""What a failure leaves behind: a child a worker daemonized outlives a SIGKILLed corral and holds the
port, so the next corral kills it before binding. The file descriptor limit is raised for corral, given
back to the workers, and checked against Count= at start and at reload."""

import os
import re
import resource
import select
import signal
import subprocess
import time
import unittest

import corral_harness as h


def pidfd(pid):
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def gone_within(fd, seconds):
    """Whether the process behind pidfd FD has exited within SECONDS."""
    return fd is None or bool(select.select([fd], [], [], h.scaled(seconds))[0])


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError(f"no 'Max open files' in /proc/{pid}/limits")


class Leftovers(h.CorralTestCase):
    def test_next_start_kills_what_a_sigkilled_corral_left_in_its_cgroups(self):
        port = h.free_port()
        c1 = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 1, "--", h.worker_bin(),
                                "--escaped-child"])
        accounting = c1.wait_for_line(r"accounting: (.*)", timeout=10).group(1)
        if not accounting.startswith("hybrid cgroups: worker leaves"):
            # Delegated cgroup v2 means systemd, which kills the whole unit with its main process.
            raise unittest.SkipTest(f"no hybrid cgroups of ours here: {accounting}")
        escaped = int(c1.wait_for_line(r"spawned escaped child (\d+)", timeout=10).group(1))
        c1.tracker.track(escaped)  # whatever happens, cleanup reaches it by pidfd
        h.wait_serving(port)
        fd = pidfd(escaped)
        self.assertIsNotNone(fd, "the escaped child is already gone")
        self.addCleanup(os.close, fd)

        # corral and its worker die (the worker of PDEATHSIG); the escaped child is in neither's process
        # group, lives on and keeps the listening socket.
        c1.stop(signal.SIGKILL, timeout=5)
        time.sleep(0.3)
        self.assertFalse(gone_within(fd, 0), "the escaped child died with corral: nothing to test")

        c2 = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 1, "--", h.worker_bin()])
        c2.wait_for_line(r"killed what a dead corral left", timeout=10)
        self.assertTrue(gone_within(fd, 2), f"escaped child {escaped} survived the next start")
        workers = h.collect_workers(port, 1, corral=c2)
        self.assertEqual({a.pid for a in workers.values()}, set(c2.worker_pids()),
                         "the port is not served by the new corral's worker")
        self.assertEqual(c2.stop(signal.SIGTERM, timeout=10), 0)

    def test_nofile_raised_for_corral_and_given_back_to_workers(self):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY or hard <= 512:
            raise unittest.SkipTest(f"hard RLIMIT_NOFILE {hard}: nothing to raise to")
        port = h.free_port()
        # The test worker raises its own limit: the shell in front of it says what it was given.
        seen = os.path.join(self.tmp, "nofile")
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 1, "--", "/bin/sh", "-c",
                               f'ulimit -n > {seen}; exec "$0"', h.worker_bin()],
                              prefix=["prlimit", f"--nofile=512:{hard}", "--"])
        h.collect_workers(port, 1, corral=c)
        self.assertEqual(soft_nofile(c.pid), hard, "corral did not raise its own soft limit")
        with open(seen) as f:
            self.assertEqual(f.read().strip(), "512", "the worker did not get the old soft limit back")
        self.assertEqual(c.stop(signal.SIGTERM, timeout=10), 0)

    def test_count_beyond_the_fd_limit_is_refused_at_start_and_reload(self):
        port = h.free_port()
        conf = os.path.join(self.tmp, "corral.conf")
        with open(conf, "w") as f:
            f.write(f"[Worker]\nExecStart={h.worker_bin()}\nCount=2\n")
        prefix = ["prlimit", "--nofile=300:300", "--"]
        # 2 workers fit in 300 fds; 200 do not: the start is refused with the figures, exit 78, nothing forked.
        bad = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 200, "--", h.worker_bin()],
                                prefix=prefix, name="too-many")
        self.assertEqual(bad.wait(10), 78)
        self.assertRegex(bad.output(), r"Count=200 needs about \d+ file descriptors .* the limit is 300")
        self.assertEqual(h.child_pids(bad.pid) if bad.running() else [], [])

        control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--config", conf, "--listen", f"127.0.0.1:{port}", "--control", control],
                              prefix=prefix)
        h.wait_all_ready(control, 2)
        with open(conf, "w") as f:
            f.write(f"[Worker]\nExecStart={h.worker_bin()}\nCount=200\n")
        r = subprocess.run([h.corral_bin(), "reload", "--wait", "--control", control], capture_output=True,
                           text=True, timeout=h.scaled(20))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("file descriptors", r.stdout + r.stderr)
        _, status = h.control_status(control)
        self.assertEqual(status["generation"], 1)
        self.assertEqual(status["ready"], 2)
        self.assertEqual(c.stop(signal.SIGTERM, timeout=10), 0)


if __name__ == "__main__":
    unittest.main()
