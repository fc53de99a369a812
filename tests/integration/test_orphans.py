#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Orphans: corral is the child subreaper of its workers' trees (PID 1 in a container is the same), so what
a worker's child leaves when it double-forks comes to corral, which reaps it on SIGCHLD without ever taking
a worker's exit status from its child source. 10,000 orphans leave 0 zombies. As PID 1 of a pid namespace
(unshare(1) as root: what a container runtime does to its entrypoint) it reaps them too and stops on SIGTERM
with exit 0 after its drain delay."""

import os
import signal
import sys
import unittest

import corral_harness as h

# A worker that double-forks COUNT times, then exits with the status it is given (or, given "sleep", stays).
ORPHANER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "orphaner.py")

# A worker whose child double-forks a leftover: in the worker's session, with a process group of its own,
# holding MIB MiB; it writes its pid to PIDFILE, then PIDFILE.ready once the memory is touched.
LEFTOVER = r"""
import os, time
if os.fork() == 0:
    os.setpgid(0, 0)
    if os.fork() == 0:
        time.sleep(0.2)  # its parent is gone: re-parented to corral
        block = bytearray(MIB << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        with open("PIDFILE", "w") as f:
            f.write(str(os.getpid()))
        open("PIDFILE.ready", "w").close()
        time.sleep(3600)
    os._exit(0)
os.wait()
time.sleep(3600)
"""


def kill_quietly(pidfd):
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def zombies(pid):
    n = 0
    for c in children(pid):
        try:
            with open(f"/proc/{c}/stat") as f:
                n += f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            pass
    return n


class Orphans(h.CorralTestCase):
    def wrapper(self, name, head):
        """An executable script in the test's directory: HEAD, then the arguments it was given."""
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(f'{head} "$@"\n')
        os.chmod(path, 0o755)
        return path

    def test_ten_thousand_orphans_leave_no_zombie_and_the_worker_keeps_its_exit_status(self):
        count = 10000
        status_port = h.free_port()
        c = self.start_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--status-listen", f"127.0.0.1:{status_port}",
                               "--count", "1", "--ready-mode", "exec", "--restart-prevent-exit-status", "5",
                               "--control", os.path.join(self.tmp, "control"), "--",
                               sys.executable, ORPHANER, str(count), "5"])
        # The worker's own exit is its child source's: the status is the one it exited with.
        c.wait_for_line(r"worker 0 \(pid \d+\) exited with status 5", timeout=120)
        h.wait_until(lambda: h.metrics(status_port)["corral_orphans_reaped_total"] == count, 60,
                     message=f"orphans reaped: {h.metrics(status_port)['corral_orphans_reaped_total']} of {count}")
        self.assertEqual(zombies(c.pid), 0)
        self.assertEqual(children(c.pid), [])
        self.assertEqual(c.output().count("exited with status 5"), 1)
        self.assertEqual(c.stop(), 0)

    def test_proc_accounting_counts_and_kills_what_a_worker_left_in_its_session(self):
        # --cgroup-root none: no leaf holds the worker's processes. A child that double-forks out of the
        # worker's tree and leaves its process group (a kill(-pgid) misses it) but keeps its session is
        # re-parented to corral: its 64 MiB count in the worker's memory, and it dies with the worker.
        mib = 64
        script = LEFTOVER.replace("MIB", str(mib)).replace("PIDFILE", os.path.join(self.tmp, "leftover"))
        control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--count", "1", "--ready-mode", "exec",
                               "--cgroup-root", "none", "--check-interval", "200ms", "--control", control, "--",
                               sys.executable, "-c", script])
        c.wait_for_line(r"all 1 worker ready", timeout=20)
        pidfile = os.path.join(self.tmp, "leftover")
        h.wait_until(lambda: os.path.exists(pidfile + ".ready"), 20, message="the leftover never started")
        with open(pidfile) as f:
            leftover = int(f.read())
        worker = h.control_status(control)[1]["workers"][0]["pid"]
        with open(f"/proc/{leftover}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ppid, pgid, session = (int(x) for x in fields[1:4])
        self.assertEqual((ppid, session), (c.pid, worker), "not an orphan of corral's in the worker's session")
        self.assertNotEqual(pgid, worker, "still in the worker's process group")
        h.wait_until(lambda: h.control_status(control)[1]["workers"][0]["memory_bytes"] >= mib << 20, 20,
                     message=f"the leftover's memory is not counted: {h.control_status(control)[1]['workers'][0]}")
        fd = os.pidfd_open(leftover)
        self.addCleanup(os.close, fd)
        self.addCleanup(kill_quietly, fd)  # should the test fail with the leftover alive
        h.sigkill(worker)
        c.wait_for_line(rf"worker 0 \(pid {worker}\) killed by signal KILL", timeout=10)
        h.wait_until(lambda: not os.path.exists(f"/proc/{leftover}") or zombies(c.pid) == 0 and
                     leftover not in children(c.pid), 10, message="the leftover outlived its worker")
        self.assertEqual(c.stop(), 0)

    def test_a_sigchld_ignored_by_whoever_started_corral_changes_nothing(self):
        # An ignored SIGCHLD survives exec and would have the kernel reap the workers behind corral's back
        # (bash's trap '' ignores it; dash's does not).
        wrapper = self.wrapper("corral-sigchld-ignored", f"#!/bin/bash\ntrap '' CHLD\nexec {h.corral_bin()}")
        control = os.path.join(self.tmp, "control")
        port = h.free_port()
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", "2", "--control", control, "--",
                               h.worker_bin()], binary=wrapper)
        h.wait_all_ready(control, 2)
        victim = h.http_get(port).pid
        h.sigkill(victim)
        c.wait_for_line(rf"worker \d \(pid {victim}\) killed by signal KILL", timeout=10)
        h.wait_until(lambda: len(h.control_status(control)[1]["workers"]) == 2, 10)
        h.wait_all_ready(control, 2)
        self.assertEqual(c.stop(), 0)

    def test_as_pid_1_of_a_pid_namespace_it_reaps_orphans_and_stops_on_sigterm(self):
        # What a container runtime does to its entrypoint, without the runtime: a new pid namespace whose
        # PID 1 is corral. --kill-child: should the test kill unshare, corral goes with it.
        wrapper = self.wrapper("corral-pid1",
                               f"#!/bin/sh\nexec unshare --pid --fork --mount-proc --kill-child {h.corral_bin()}")
        # A corral outside, started first: the one inside must not take it for a dead instance whose cgroup
        # leaves to clean up (on a hybrid host without a cgroup namespace both see the same cgroups).
        outside_control = os.path.join(self.tmp, "outside")
        outside = self.start_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--count", "2", "--control",
                                     outside_control, "--", h.worker_bin()], name="outside")
        h.wait_all_ready(outside_control, 2)
        outside_pids = {w["pid"] for w in h.control_status(outside_control)[1]["workers"]}
        count, status_port = 1000, h.free_port()
        c = self.start_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--status-listen", f"127.0.0.1:{status_port}",
                               "--count", "1", "--ready-mode", "exec", "--drain-delay", "1s",
                               "--control", os.path.join(self.tmp, "control"), "--",
                               sys.executable, ORPHANER, str(count), "sleep"], binary=wrapper)
        c.wait_for_line(r"all 1 worker ready", timeout=20)
        h.wait_until(lambda: h.metrics(status_port)["corral_orphans_reaped_total"] == count, 60,
                     message=f"orphans reaped: {h.metrics(status_port)['corral_orphans_reaped_total']} of {count}")
        (corral,) = children(c.pid)  # unshare's one child
        with open(f"/proc/{corral}/status") as f:
            self.assertRegex(f.read(), r"\nNSpid:\t\d+\t1\n", "corral is not PID 1 of its namespace")
        self.assertEqual(zombies(corral), 0)
        self.assertEqual({w["pid"] for w in h.control_status(outside_control)[1]["workers"]}, outside_pids)
        self.assertNotIn("killed by signal", outside.output())
        # PID 1 gets only the signals it handles: SIGTERM is one of them (unshare passes none on).
        fd = os.pidfd_open(corral)
        try:
            signal.pidfd_send_signal(fd, signal.SIGTERM)
        finally:
            os.close(fd)
        c.wait_for_line(r"drain delay over, stopping 1 worker", timeout=10)
        self.assertEqual(c.wait(20), 0)


if __name__ == "__main__":
    unittest.main()
