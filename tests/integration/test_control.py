# SPDX-License-Identifier: MIT
"""The control socket under pressure: its path (only a stale corral socket is replaced, only corral's own
socket is removed at exit, a frozen corral keeps its path), a full fd table, replies larger than a socket
buffer, and idle connections that must not lock the operator out."""

import contextlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import threading
import time
import unittest

import corral_harness as h


def cpu_seconds(pid):
    """utime + stime of PID from /proc/PID/stat, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect_nonblocking(path):
    """A connection to the control socket at PATH, or None when its backlog is full."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK)
    try:
        s.connect(path)
    except BlockingIOError:
        s.close()
        return None
    return s


class IdleFlood:
    """Holds COUNT connections to the control socket at PATH that never send a request, and opens a new one
    for each that corral closes, until stop(): what a stuck or hostile local client does."""

    def __init__(self, path, count):
        self.path = path
        self.count = count
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        held = []
        try:
            while not self._stop.is_set():
                while len(held) < self.count:
                    s = connect_nonblocking(self.path)
                    if s is None:
                        break  # the backlog is full: try again after the wait below
                    held.append(s)
                for s in select.select(held, [], [], 0.01)[0]:
                    s.close()
                    held.remove(s)
                    self.reopened += 1
        finally:
            for s in held:
                s.close()

    def stop(self):
        self._stop.set()
        self._thread.join(10)


class ControlSocket(h.CorralTestCase):
    def corral_args(self, control, count=1):
        return ["--listen", "127.0.0.1:0", "--count", count, "--ready-mode", "exec", "--cgroup-root", "none",
                "--control", control, "--", h.worker_bin()]

    def status(self, control, timeout=10):
        return subprocess.run([h.corral_bin(), "status", "--json", "--control", control], capture_output=True,
                              text=True, timeout=h.scaled(timeout), env=h.clean_env())

    @staticmethod
    def resume(corral):
        with contextlib.suppress(ProcessLookupError):
            os.kill(corral.pid, signal.SIGCONT)

    def assertRefused(self, control, name):
        """corral with --control CONTROL exits non-zero at start-up, names the path, starts no worker."""
        c = self.start_corral(self.corral_args(control), name=name)
        rc = c.wait(10)
        self.assertNotEqual(rc, 0, c.output())
        self.assertIn(f"'{control}'", c.output())
        self.assertNotIn("started", c.output())
        return c

    def test_refuses_a_path_that_is_not_a_stale_corral_socket(self):
        path = os.path.join(self.tmp, "file")
        with open(path, "w") as f:
            f.write("precious\n")
        self.assertRefused(path, "file")
        with open(path) as f:
            self.assertEqual(f.read(), "precious\n")

        path = os.path.join(self.tmp, "dir")
        os.mkdir(path)
        self.assertRefused(path, "dir")
        self.assertTrue(os.path.isdir(path))

        # Another daemon's live stream socket.
        path = os.path.join(self.tmp, "stream")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
            other.bind(path)
            other.listen(1)
            ino = os.stat(path).st_ino
            self.assertRefused(path, "stream")
            self.assertEqual(os.stat(path).st_ino, ino)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(path)  # still its socket

        # A running corral.
        path = os.path.join(self.tmp, "control")
        self.start_corral(self.corral_args(path, 2), name="first")
        h.wait_all_ready(path, 2)
        self.assertRefused(path, "second")
        self.assertEqual(self.status(path).returncode, 0)

    def test_replaces_a_stale_socket_and_removes_only_its_own(self):
        control = os.path.join(self.tmp, "control")
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as dead:
            dead.bind(control)  # a corral that was SIGKILLed leaves this behind
        c = self.start_corral(self.corral_args(control))
        h.wait_all_ready(control, 1)
        # Someone moves corral's socket away and puts something of theirs at the path: corral leaves it.
        os.rename(control, control + ".moved")
        with open(control, "w") as f:
            f.write("theirs\n")
        self.assertEqual(c.stop(), 0)
        self.assertTrue(os.path.exists(control), "corral removed what someone else put at its path")
        with open(control) as f:
            self.assertEqual(f.read(), "theirs\n")

    def test_a_frozen_corral_keeps_its_path(self):
        control = os.path.join(self.tmp, "control")
        first = self.start_corral(self.corral_args(control, 2), name="frozen")
        h.wait_all_ready(control, 2)
        ino = os.stat(control).st_ino
        first.send_signal(signal.SIGSTOP)
        self.addCleanup(self.resume, first)  # runs before the harness's SIGTERM
        # Clients that came while it was stopped (monitoring, say) fill its backlog: a blocking connect()
        # would wait for room forever.
        queued = []
        for _ in range(64):
            s = connect_nonblocking(control)
            if s is None:
                break
            queued.append(s)
        else:
            self.fail("the backlog of the stopped corral never filled")
        try:
            # A stopped corral is alive: it may be continued, so its path is not taken.
            started = time.monotonic()
            self.assertRefused(control, "second")
            self.assertLess(time.monotonic() - started, h.scaled(5))
            self.assertEqual(os.stat(control).st_ino, ino)
        finally:
            for s in queued:
                s.close()
        self.resume(first)
        self.assertEqual(self.status(control).returncode, 0)
        self.assertEqual(first.stop(), 0)

    def test_a_full_fd_table_does_not_make_corral_spin(self):
        control = os.path.join(self.tmp, "control")
        c = self.start_corral(self.corral_args(control))
        h.wait_all_ready(control, 1)
        # No fd number above those open now: accept() fails with EMFILE while connections wait.
        top = max(int(fd) for fd in os.listdir(f"/proc/{c.pid}/fd"))
        soft, hard = resource.prlimit(c.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(c.pid, resource.RLIMIT_NOFILE, (top + 1, hard))
        waiting = [s for s in (connect_nonblocking(control) for _ in range(32)) if s]
        try:
            time.sleep(0.5)
            before, started = cpu_seconds(c.pid), time.monotonic()
            time.sleep(3)
            share = (cpu_seconds(c.pid) - before) / (time.monotonic() - started)
        finally:
            resource.prlimit(c.pid, resource.RLIMIT_NOFILE, (soft, hard))
            for s in waiting:
                s.close()
        print(f"\ncorral's CPU with its fd table full: {share:.1%} of a core", flush=True)
        self.assertLess(share, 0.2)
        self.assertRegex(c.output(), r"Too many open files")
        self.assertEqual(self.status(control).returncode, 0)

    def test_status_of_a_large_pool_arrives_whole(self):
        control = os.path.join(self.tmp, "control")
        # 500 rows of JSON are well above 64 KiB; sleep(1) is the cheapest worker there is.
        self.start_corral(["--listen", "127.0.0.1:0", "--count", 500, "--ready-mode", "exec", "--cgroup-root",
                           "none", "--stop-timeout", "5s", "--control", control, "--", "/bin/sleep", "600"])
        h.wait_all_ready(control, 500, timeout=120)
        p = self.status(control)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertGreater(len(p.stdout), 64 * 1024)
        st = json.loads(p.stdout)
        self.assertEqual(len(st["workers"]), 500)
        self.assertEqual(sorted(w["slot"] for w in st["workers"]), list(range(500)))
        p = subprocess.run([h.corral_bin(), "status", "--control", control], capture_output=True, text=True,
                           timeout=h.scaled(10), env=h.clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.splitlines()[-1].split()[0], "499")

    def test_idle_connections_do_not_lock_the_operator_out(self):
        control = os.path.join(self.tmp, "control")
        self.start_corral(self.corral_args(control))
        h.wait_all_ready(control, 1)
        flood = IdleFlood(control, 80).start()
        tries, ok, failures = 50, 0, []
        deadline = time.monotonic() + h.scaled(120)
        try:
            time.sleep(0.5)
            for _ in range(tries):
                if time.monotonic() > deadline:
                    break
                try:
                    p = self.status(control, timeout=5)
                except subprocess.TimeoutExpired:
                    failures.append("timed out")
                    continue
                if p.returncode == 0 and json.loads(p.stdout)["ready"] == 1:
                    ok += 1
                else:
                    failures.append(p.stderr.strip())
        finally:
            flood.stop()
        print(f"\ncorral status with 80 idle connections held: {ok} of {tries} succeeded; "
              f"{flood.reopened} idle connections closed by corral and re-opened", flush=True)
        self.assertGreaterEqual(ok, 0.99 * tries, failures[:5])


if __name__ == "__main__":
    unittest.main()
