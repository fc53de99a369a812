# SPDX-License-Identifier: MIT
"""Embedded mode: corral binds --listen itself, starts N workers that share the sockets, hands each the
systemd socket-activation environment, and stops cleanly on SIGTERM."""

import ctypes
import os
import signal
import socket
import unittest

import corral_harness as h


def pidfd_inode_id(pid):
    """The id libsystemd compares LISTEN_PIDFDID with: the inode number of a pidfd on PID where pidfds
    live on pidfs (Linux 6.9; statfs magic "PIDF"), None before, where they are anonymous inodes."""
    fd = os.pidfd_open(pid)
    try:
        buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is its first field, a long
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.fstatfs(fd, buf) != 0:
            raise OSError(ctypes.get_errno(), "fstatfs")
        if ctypes.c_long.from_buffer(buf).value != 0x50494446:
            return None
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


class Basic(h.CorralTestCase):
    N = 3

    def start_pool(self, listen, n=None, worker_args=(), extra=()):
        n = n or self.N
        args = [a for spec in listen for a in ("--listen", spec)]
        args += ["--count", n, *extra, "--", h.worker_bin(), *worker_args]
        return self.start_corral(args)

    def test_workers_serve_from_distinct_slots(self):
        port = h.free_port()
        c = self.start_pool([f"127.0.0.1:{port}"])
        found = h.collect_workers(port, self.N, corral=c)
        self.assertEqual(set(found), {str(i) for i in range(self.N)})
        pids = {a.pid for a in found.values()}
        self.assertEqual(len(pids), self.N, found)
        for slot, a in found.items():
            self.assertEqual(a.fields, {"slot": slot, "pid": str(a.pid), "generation": "1", "count": str(self.N)})
        # They are corral's own children, and there are exactly N of them.
        self.assertEqual(set(c.worker_pids()), pids)
        self.assertTrue(c.running())

    def test_worker_environment(self):
        port = h.free_port()
        c = self.start_pool([f"http=127.0.0.1:{port}"])
        found = h.collect_workers(port, self.N, path="/env", corral=c)
        notify_sockets = set()
        for slot, a in found.items():
            env = a.env()
            with self.subTest(slot=slot):
                self.assertEqual(env.get("LISTEN_PID"), str(a.pid))
                self.assertEqual(env.get("LISTEN_FDS"), "1")
                self.assertEqual(env.get("LISTEN_FDNAMES"), "http")
                self.assertEqual(env.get("WORKER_INDEX"), slot)
                self.assertEqual(env.get("WORKER_GENERATION"), "1")
                self.assertEqual(env.get("WORKER_COUNT"), str(self.N))
                self.assertEqual(env.get("CORRAL_PID"), str(c.pid))
                self.assertTrue(env.get("NOTIFY_SOCKET"), "NOTIFY_SOCKET not set")
                self.assertNotIn("WATCHDOG_USEC", env)
                # The test runner's own environment is passed through.
                self.assertEqual(env.get("PATH"), os.environ.get("PATH"))
                notify_sockets.add(env["NOTIFY_SOCKET"])
        self.assertEqual(len(notify_sockets), 1, "all workers should share corral's one notify socket")

    def test_listen_pidfdid_is_each_workers_own(self):
        # Started by systemd >= 259, corral inherits a LISTEN_PIDFDID naming itself; passed on, a newer
        # sd_listen_fds() in the worker would ignore its sockets.
        port = h.free_port()
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", self.N, "--", h.worker_bin()],
                              env={"LISTEN_PIDFDID": "4242"})
        for slot, a in h.collect_workers(port, self.N, path="/env", corral=c).items():
            expected = pidfd_inode_id(a.pid)
            with self.subTest(slot=slot, pidfs=expected is not None):
                if expected is None:
                    self.assertNotIn("LISTEN_PIDFDID", a.env())
                else:
                    self.assertEqual(a.env().get("LISTEN_PIDFDID"), str(expected))

    def test_no_leaked_fds(self):
        port = h.free_port()
        c = self.start_pool([f"127.0.0.1:{port}"])
        for slot, a in h.collect_workers(port, self.N, path="/fds", corral=c).items():
            fds = dict(line.split(" ", 1) for line in a.lines())
            with self.subTest(slot=slot):
                self.assertEqual(set(fds), {"0", "1", "2", "3"}, fds)
                self.assertTrue(fds["3"].startswith("socket:"), fds)

    def test_signal_mask_and_dispositions_reset(self):
        port = h.free_port()
        c = self.start_pool([f"127.0.0.1:{port}"])
        for slot, a in h.collect_workers(port, self.N, path="/sigmask", corral=c).items():
            mask = {k: int(v, 16) for k, v in (line.split(":\t") for line in a.lines())}
            with self.subTest(slot=slot):
                self.assertEqual(mask["SigBlk"], 0, f"signals blocked in worker: {mask['SigBlk']:#x}")
                self.assertEqual(mask["SigIgn"], 0, f"signals ignored in worker: {mask['SigIgn']:#x}")

    def test_unix_socket_mode_and_removal(self):
        path = os.path.join(self.tmp, "app.sock")
        c = self.start_pool([f"unix:{path}:0660"], n=2)
        a = h.wait_serving(path)
        self.assertEqual(h.socket_mode(path), (True, 0o660))
        found = h.collect_workers(path, 2, corral=c)
        pids = {x.pid for x in found.values()}
        # Both of corral's workers serve the socket, and nobody else: the first answer came from one of them.
        self.assertEqual(set(c.worker_pids()), pids)
        self.assertEqual(len(pids), 2)
        self.assertIn(a.pid, pids)
        self.assertEqual(c.stop(), 0)
        self.assertFalse(os.path.exists(path), "UNIX socket left behind after exit")

    def test_two_listen_sockets(self):
        p1, p2 = h.free_port(), h.free_port()
        while p2 == p1:
            p2 = h.free_port()
        c = self.start_pool([f"a=127.0.0.1:{p1}", f"b=127.0.0.1:{p2}"], n=2)
        one = h.collect_workers(p1, 2, path="/env", corral=c)
        two = h.collect_workers(p2, 2, corral=c)
        self.assertEqual({a.pid for a in one.values()}, {a.pid for a in two.values()})
        for a in one.values():
            env = a.env()
            self.assertEqual(env["LISTEN_FDS"], "2")
            self.assertEqual(env["LISTEN_FDNAMES"], "a:b")
        for a in h.collect_workers(p2, 2, path="/fds").values():
            self.assertEqual({line.split()[0] for line in a.lines()}, {"0", "1", "2", "3", "4"})

    def test_config_file(self):
        port = h.free_port()
        conf = os.path.join(self.tmp, "corral.conf")
        with open(conf, "w") as f:
            f.write(f"[Worker]\nExecStart={h.worker_bin()} --status from-config\nCount=2\n"
                    f"[Socket]\nListen=127.0.0.1:{port}\n")
        c = self.start_corral(["--config", conf])
        found = h.collect_workers(port, 2, corral=c)
        self.assertEqual(set(found), {"0", "1"})
        self.assertEqual(c.stop(), 0)

    def test_sigterm_clean_exit(self):
        port = h.free_port()
        c = self.start_pool([f"127.0.0.1:{port}"])
        pids = [a.pid for a in h.collect_workers(port, self.N, corral=c).values()]
        self.assertEqual(c.stop(signal.SIGTERM, timeout=10), 0)
        self.assertAllGone(pids)
        # The port is free again: corral closed its sockets.
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))


if __name__ == "__main__":
    unittest.main()
