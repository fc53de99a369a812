# SPDX-License-Identifier: MIT
"""Bad input: broken configuration and options fail early with the documented exit codes (64 usage,
78 config, 1 startup) and a message that says what is wrong; garbage sent to the workers' notify socket by
a stranger is dropped while the pool keeps serving."""

import os
import re
import subprocess
import sys
import time
import unittest

import corral_harness as h

EX_USAGE = 64
EX_CONFIG = 78


class BadStartup(h.CorralTestCase):
    def run_corral(self, args, timeout=10, **kw):
        c = self.start_corral(args, **kw)
        return c.wait(timeout), c.output(), c

    def write_config(self, text, name="corral.conf"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_bad_value_in_config_file(self):
        port = h.free_port()
        conf = self.write_config(f"[Worker]\nExecStart={h.worker_bin()}\nCount=lots\n"
                                 f"[Socket]\nListen=127.0.0.1:{port}\n")
        rc, out, _ = self.run_corral(["--config", conf])
        self.assertEqual(rc, EX_CONFIG, out)
        self.assertIn(f"{conf}:3", out)
        self.assertIn("Count", out)

    def test_unknown_key_in_config_file(self):
        port = h.free_port()
        conf = self.write_config(f"[Worker]\nExecStart={h.worker_bin()}\nCount=2\n"
                                 f"[Socket]\nListen=127.0.0.1:{port}\nListenBacklog=12\n")
        rc, out, _ = self.run_corral(["--config", conf])
        self.assertEqual(rc, EX_CONFIG, out)
        self.assertIn(f"{conf}:6", out)
        self.assertIn("ListenBacklog", out)

    def test_missing_config_file(self):
        missing = os.path.join(self.tmp, "nope.conf")
        rc, out, _ = self.run_corral(["--config", missing])
        self.assertEqual(rc, EX_CONFIG, out)
        self.assertIn(missing, out)

    def test_bad_count_option(self):
        port = h.free_port()
        for bad in ("abc", "-1", "0", "auto-x", "99999999999"):
            with self.subTest(count=bad):
                rc, out, _ = self.run_corral(["--listen", f"127.0.0.1:{port}", f"--count={bad}", "--",
                                              h.worker_bin()])
                self.assertEqual(rc, EX_CONFIG, out)
                self.assertRegex(out, re.escape(bad) + "|count|Count")

    def test_bad_duration_option(self):
        port = h.free_port()
        rc, out, _ = self.run_corral(["--listen", f"127.0.0.1:{port}", "--stop-timeout", "soon", "--",
                                      h.worker_bin()])
        self.assertEqual(rc, EX_CONFIG, out)
        self.assertIn("soon", out)

    def test_unknown_option_is_usage_error(self):
        rc, out, _ = self.run_corral(["--no-such-option", "--", h.worker_bin()])
        self.assertEqual(rc, EX_USAGE, out)

    def test_missing_command_is_usage_error(self):
        rc, out, _ = self.run_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--count", 1])
        self.assertEqual(rc, EX_USAGE, out)

    def test_command_not_found(self):
        missing = os.path.join(self.tmp, "no-such-worker")
        rc, out, _ = self.run_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--", missing])
        self.assertEqual(rc, EX_CONFIG, out)
        self.assertIn(missing, out)

    def test_busy_port(self):
        busy = h.bind_tcp()
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        cmd, spawns = h.spawn_counter_command(self.tmp, [])
        rc, out, _ = self.run_corral(["--listen", f"127.0.0.1:{port}", "--count", 2, "--", *cmd])
        self.assertEqual(rc, 1, out)
        self.assertIn("Address already in use", out)
        self.assertIn(str(port), out)
        self.assertEqual(h.read_spawns(spawns), [], "a worker was forked before the sockets were bound")

    def test_bad_listen_spec(self):
        rc, out, _ = self.run_corral(["--listen", "127.0.0.1:notaport", "--", h.worker_bin()])
        self.assertIn(rc, (EX_USAGE, EX_CONFIG), out)
        self.assertIn("notaport", out)

    def test_no_sockets_at_all(self):
        cmd, spawns = h.spawn_counter_command(self.tmp, [])
        rc, out, _ = self.run_corral(["--count", 1, "--", *cmd])
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out.lower(), r"socket|listen")
        self.assertEqual(h.read_spawns(spawns), [])


class HostileNotify(h.CorralTestCase):
    def test_garbage_datagrams_are_dropped(self):
        port, status_port = h.free_port(), h.free_port()
        n = self.notify_receiver()
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--status-listen", f"127.0.0.1:{status_port}",
                               "--count", 2, "--check-interval", "200ms", "--", h.worker_bin()],
                              notify_socket=n.path)
        n.wait_for("READY", "1", timeout=10)
        before = h.collect_workers(port, 2, path="/env", corral=c)
        notify_socket = before["0"].env()["NOTIFY_SOCKET"]
        self.assertNotEqual(notify_socket, n.path)
        # The sampler keeps its workers' files open from its first pass on: count after it.
        h.wait_until(lambda: h.metrics(status_port).get("corral_accounting_pass_batches", 0) >= 1, 10,
                     message="no sampling pass")
        fds_before = h.fd_count(c.pid)
        datagrams_before = len(n.datagrams())

        garbage = [
            b"READY=1",                              # not from a worker: must not count for any slot
            b"STOPPING=1\nRECYCLE=1\nWATCHDOG=1",
            b"",
            b"\x00\xff\xfe binary \x00 junk",
            b"=\n==\nNOEQUALS\n\n\n",
            b"STATUS=" + b"x" * 4000,
            ("STATUS=" + "\u00e9\u4e2d" * 100).encode(),
            b"READY=1\n" * 2000,
        ]
        for g in garbage:
            self.assertIsNone(h.send_datagram(notify_socket, g), g[:40])
        # Oversized: bigger than any notify message corral should accept (the kernel may refuse it).
        h.send_datagram(notify_socket, b"STATUS=" + b"y" * 200000, sndbuf=1 << 20)
        # File descriptors passed along must be closed by corral, not piled up.
        for _ in range(32):
            r, w = os.pipe()
            try:
                self.assertIsNone(h.send_datagram(notify_socket, b"FDSTORE=1", fds=[r, w]))
            finally:
                os.close(r)
                os.close(w)
        # The sends above block (with a timeout) while corral's queue is full, so corral has read all but the
        # last few; give those, and a wrongly accepted RECYCLE=1 or STOPPING=1, time to show.
        time.sleep(h.scaled(1.0))

        after = h.collect_workers(port, 2, corral=c)
        self.assertEqual({s: a.pid for s, a in after.items()}, {s: a.pid for s, a in before.items()},
                         "workers were replaced after garbage datagrams")
        self.assertTrue(c.running())
        # corral read and dropped them all: its fd count settles back (allow slack for timers etc.).
        self.assertLessEqual(h.fd_count(c.pid), fds_before + 4, f"corral had {fds_before} fds: received fds leaked?")
        # Nothing the stranger sent went up to "systemd".
        for d in n.datagrams()[datagrams_before:]:
            self.assertFalse(d.has("STOPPING"), d)
            self.assertFalse(d.has("READY", "1"), d)
        self.assertEqual(c.stop(), 0)

    def test_a_flood_from_another_uid_costs_little_and_holds_up_no_worker(self):
        """A stranger (nobody) floods the notify socket with well-formed READY=1 as fast as corral reads them
        while two-worker reloads run: each `reload --wait` stays near its quiet time and corral well below a
        core (before: 70 us a datagram, a whole core, reloads of 0.4-1.7 s)."""
        port, status_port = h.free_port(), h.free_port()
        control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--status-listen", f"127.0.0.1:{status_port}",
                               "--count", 2, "--control", control, "--", h.worker_bin()])
        h.wait_all_ready(control, 2)
        notify_socket = h.http_get(port, "/env").env()["NOTIFY_SOCKET"]

        def reload():
            t0 = time.monotonic()
            p = subprocess.run([h.corral_bin(), "reload", "--wait", "--control", control], capture_output=True,
                               text=True, timeout=h.scaled(30), env=h.clean_env())
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            return time.monotonic() - t0

        quiet = [reload() for _ in range(3)]
        rejected0 = h.metrics(status_port).get("corral_notify_rejected_total", 0)
        with h.NotifyFlood(notify_socket, duration=h.scaled(8), processes=2) as flood:
            cpu0, t0 = proc_cpu_seconds(c.pid), time.monotonic()
            time.sleep(1.0)
            flooded = [reload() for _ in range(5)]
            time.sleep(max(0.0, 4.0 - (time.monotonic() - t0)))
            cpu = (proc_cpu_seconds(c.pid) - cpu0) / (time.monotonic() - t0)
            flood.kill()
        rejected = h.metrics(status_port).get("corral_notify_rejected_total", 0) - rejected0
        print(f"\nquiet reloads {[round(x, 3) for x in quiet]} s, flooded {[round(x, 3) for x in flooded]} s; "
              f"corral CPU {100 * cpu:.1f} % of a core; {rejected:.0f} datagrams rejected", file=sys.stderr)
        self.assertGreater(rejected, 10000, "the flood did not reach corral")
        self.assertLess(max(flooded), h.scaled(1.0), f"quiet: {quiet}, flooded: {flooded}")
        self.assertLess(cpu, 0.25, "corral's share of a core under the flood")
        self.assertEqual(h.collect_workers(port, 2, corral=c).keys(), {"0", "1"})
        self.assertEqual(c.stop(), 0)


def proc_cpu_seconds(pid):
    """utime + stime of PID in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    unittest.main()
