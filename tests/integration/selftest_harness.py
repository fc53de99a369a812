# SPDX-License-Identifier: MIT
"""Checks the harness and the test worker without corral: the worker itself stands in for the binary
(CORRAL_BIN is pointed at corral-test-worker), started with sockets the test binds or under
systemd-socket-activate. Registered with CTest as integration-selftest-harness (the name has no test_
prefix so that the test_*.py glob, which runs corral, leaves it out); by hand:

    CORRAL_TEST_WORKER=build/tests/corral-test-worker python3 -m unittest -v selftest_harness
"""

import json
import os
import signal
import socket
import time
import unittest

import corral_harness as h

os.environ["CORRAL_BIN"] = h.worker_bin()


class WorkerAlone(h.CorralTestCase):
    def start_worker(self, args=(), sockets=None, env=None, notify=None, slot="0"):
        sockets = sockets or [(h.bind_tcp(), "http")]
        for s, _ in sockets:
            self.addCleanup(s.close)
        e = {"WORKER_INDEX": slot, "WORKER_GENERATION": "1", "WORKER_COUNT": "1", **(env or {})}
        w = self.start_corral(list(args), mode="fds", sockets=sockets, env=e,
                              notify_socket=notify.path if notify else None)
        port = sockets[0][0].getsockname()[1] if sockets[0][0].family == socket.AF_INET else None
        return w, port

    def test_serves_env_fds_sigmask(self):
        n = self.notify_receiver()
        sockets = [(h.bind_tcp(), "a"), (h.bind_tcp(), "b")]
        w, port = self.start_worker(["--status", "hello there"], sockets=sockets, notify=n)
        a = h.wait_serving(port)
        self.assertEqual(a.pid, w.pid)
        self.assertEqual(a.fields, {"slot": "0", "pid": str(w.pid), "generation": "1", "count": "1"})
        self.assertEqual(h.http_get(sockets[1][0].getsockname()[1]).pid, w.pid)
        env = h.http_get(port, "/env").env()
        self.assertEqual(env["LISTEN_PID"], str(w.pid))
        self.assertEqual(env["LISTEN_FDS"], "2")
        self.assertEqual(env["LISTEN_FDNAMES"], "a:b")
        fds = {int(line.split()[0]) for line in h.http_get(port, "/fds").lines()}
        self.assertEqual(fds, {0, 1, 2, 3, 4})
        mask = dict(line.split(":\t") for line in h.http_get(port, "/sigmask").lines())
        self.assertEqual(int(mask["SigBlk"], 16), 0)
        self.assertEqual(h.http_get(port, "/cwd").lines(), [self.tmp])
        self.assertEqual(h.http_get(port, "/argv").lines(), [h.worker_bin(), "--status", "hello there"])
        _, d = n.wait_for("READY", "1")
        self.assertEqual(d.get("STATUS"), "hello there")
        self.assertEqual(d.pid, w.pid)
        self.assertEqual(w.stop(), 0)

    def test_ready_delay_and_notify_via_child(self):
        n = self.notify_receiver()
        w, _ = self.start_worker(["--ready-delay", "0.5"], notify=n)
        _, d = n.wait_for("READY", "1", timeout=5)
        self.assertGreaterEqual(d.time - w.started_at, 0.45)
        n2 = self.notify_receiver()
        w2, _ = self.start_worker(["--notify-via-child"], notify=n2)
        _, d = n2.wait_for("READY", "1", timeout=5)
        self.assertNotEqual(d.pid, w2.pid)
        # Read when the datagram came: the helper exits as soon as its barrier is answered.
        self.assertEqual(d.ppid, w2.pid)

    def test_no_ready(self):
        n = self.notify_receiver()
        w, port = self.start_worker(["--no-ready"], notify=n)
        h.wait_serving(port)
        time.sleep(0.3)
        self.assertEqual(n.datagrams(), [])

    def test_exits_and_crashes(self):
        for args, path, rc in ((["--exit-at-start", "3"], None, 3), (["--crash-at-start"], None, -11),
                               ([], "/crash", -11), ([], "/exit/7", 7)):
            w, port = self.start_worker(args)
            if path:
                h.wait_serving(port)
                with self.assertRaises(Exception):
                    h.http_get(port, path, timeout=2)
            self.assertEqual(w.wait(5), rc, (args, path))

    def test_no_sockets(self):
        c = self.start_corral([], mode="embedded")
        self.assertEqual(c.wait(5), 2)
        self.assertIn("no listening sockets", c.output())

    def test_ignore_sigterm_and_hang(self):
        w, port = self.start_worker(["--ignore-sigterm"])
        h.wait_serving(port)
        w.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertEqual(h.http_get(port).pid, w.pid)
        w.send_signal(signal.SIGKILL)
        self.assertEqual(w.wait(5), -9)
        w, port = self.start_worker([])
        h.wait_serving(port)
        with self.assertRaises(OSError):
            h.http_get(port, "/hang", timeout=0.5)
        self.assertTrue(w.running())
        self.assertEqual(w.stop(signal.SIGTERM, 5), -15)

    def test_signals_logged(self):
        w, port = self.start_worker([])
        h.wait_serving(port)
        w.send_signal(signal.SIGUSR2)
        w.wait_for_line(r"^worker 0 got SIGUSR2$", 5)

    def test_spawn_child_left_behind(self):
        w, port = self.start_worker(["--spawn-child"])
        h.wait_serving(port)
        kids = h.wait_until(lambda: h.child_pids(w.pid), 5)
        w.snapshot_tree()
        self.assertEqual(w.stop(), 0)
        self.assertTrue(h.pid_alive(kids[0]))
        w.tracker.kill_all()
        h.wait_until(lambda: not h.pid_alive(kids[0]), 5)

    def test_drain_answers_in_flight_with_close(self):
        w, port = self.start_worker(["--drain-ms", "3000"])
        h.wait_serving(port)
        conns = []
        for _ in range(5):
            c = h.http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            self.assertFalse(r.will_close)
            conns.append(c)
        w.send_signal(signal.SIGTERM)
        w.wait_for_line("draining 5 connections", 5)
        for c in conns:
            c.request("GET", "/")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.will_close)
            r.read()
            c.close()
        self.assertEqual(w.wait(5), 0)

    def test_drain_closes_idle_and_exits(self):
        w, port = self.start_worker(["--drain-ms", "10000"])
        h.wait_serving(port)
        c = h.http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        c.getresponse().read()
        t0 = time.monotonic()
        w.send_signal(signal.SIGTERM)
        self.assertEqual(w.wait(5), 0)
        self.assertLess(time.monotonic() - t0, 2)
        c.close()

    def test_shared_socket_and_load(self):
        s = h.bind_tcp(backlog=512)
        self.addCleanup(s.close)
        ws = [self.start_worker([], sockets=[(s, "http")], slot=str(i))[0] for i in range(3)]
        port = s.getsockname()[1]
        found = h.collect_workers(port, 3, timeout=10)
        self.assertEqual({a.pid for a in found.values()}, {w.pid for w in ws})
        for keepalive in (True, False):
            load = h.LoadGenerator(port, concurrency=16, duration=1.5, keepalive=keepalive).start().join()
            summary = load.summary()
            self.assertEqual(summary["failed"], 0, summary)
            self.assertGreater(summary["ok"], 100, summary)
            # Spread is up to the scheduler (one worker can starve on a busy machine): at least two.
            self.assertLessEqual(set(summary["pids"]), {w.pid for w in ws}, summary)
            self.assertGreaterEqual(len(summary["pids"]), 2, summary)

    def test_unix_socket(self):
        path = os.path.join(self.tmp, "w.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(16)
        w, _ = self.start_worker([], sockets=[(s, "unix")])
        a = h.wait_serving(path)
        self.assertEqual(a.pid, w.pid)

    def test_socket_activate_mode(self):
        port = h.free_port()
        n = self.notify_receiver()
        c = self.start_corral(["--status", "sa"], mode="socket-activate", activate_port=port,
                              notify_socket=n.path, env={"WORKER_INDEX": "0"})
        a = h.wait_serving(port)
        self.assertEqual(a.pid, c.pid)
        env = h.http_get(port, "/env").env()
        self.assertEqual(env["LISTEN_FDNAMES"], "http")
        self.assertEqual(env["LISTEN_PID"], str(c.pid))
        n.wait_for("READY", "1")
        self.assertEqual(c.stop(), 0)

    def test_garbage_datagram_helpers(self):
        n = self.notify_receiver()
        r, w = os.pipe()
        self.assertIsNone(h.send_datagram(n.path, b"A=1\nB=2", fds=[r]))
        _, d = n.wait_for("B", "2")
        self.assertEqual(d.nfds, 1)
        self.assertEqual(d.pid, os.getpid())
        os.close(r)
        os.close(w)
        err = h.send_datagram(n.path, b"X" * (1 << 20))
        self.assertIsInstance(err, OSError)


class Checkers(unittest.TestCase):
    """check_metrics() and check_status_schema() must refuse what they are there to catch."""

    GOOD_METRICS = ("# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n"
                    'x_requests_total{slot="0"} 1\nx_requests_total{slot="1"} 2\n')

    def test_check_metrics_refuses_a_series_twice_and_what_promtool_refuses(self):
        with self.assertRaisesRegex(AssertionError, r"twice: \['x_requests_total\{slot=0\}'\]"):
            h.check_metrics(self.GOOD_METRICS + 'x_requests_total{slot="0"} 3\n')
        h.check_metrics(self.GOOD_METRICS)
        with self.assertRaisesRegex(AssertionError, r'should have "_total" suffix'):
            h.check_metrics("# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests 1\n")
        with self.assertRaisesRegex(AssertionError, r"promtool check metrics: exit"):
            h.check_metrics('x_requests_total 1\n# HELP x_requests_total Requests.\n'
                            "# TYPE x_requests_total counter\n")

    def test_check_status_schema_refuses_what_the_schema_forbids(self):
        exit_ = {"code": "exited", "status": 3, "signal": None, "core_dumped": False, "ago_usec": 1}
        worker = {"slot": 0, "pid": 2, "generation": 1, "state": "ready", "uptime_usec": 5, "ready_after_usec": None,
                  "memory_bytes": 0, "cpu_usec": 0, "restarts": 1, "last_exit": exit_}
        status = {"name": "app", "pid": 1, "version": "1", "control": None, "state": "running", "generation": 1, "ready": 1, "wanted": 1,
                  "processes": 1, "drained": False, "start_time_usec": 1, "uptime_usec": 1, "command": ["x"],
                  "sockets": [{"name": "http", "address": "127.0.0.1:1", "type": "stream"}],
                  "health_listen": None, "config": None, "accounting": None, "memory_bytes": 0, "reloads_ok": 0,
                  "reloads_failed": 0, "notify_rejected": 0, "workers": [worker]}
        h.check_status_schema(json.dumps(status))
        for path, value, message in [
                (("workers", 0, "last_exit", "signal"), "KILL", r"/workers/0/last_exit: .* not valid"),
                (("workers", 0, "state"), "gone", r"/workers/0/state: 'gone' is not one of"),
                (("slot_sockets",), [], r"/: Additional properties are not allowed \('slot_sockets' was unexpected\)"),
                (("slots",), [{"slot": 0}], r"/slots/0: 'queued' is a required property"),
                (("accounting",), {"backend": "cgroup-v2"}, r"/accounting: .* not valid"),
                (("pid",), "1", r"/pid: '1' is not of type 'integer'"),
                (("name",), "a/b", r"/name: 'a/b' does not match")]:
            broken = json.loads(json.dumps(status))
            target = broken
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            with self.assertRaisesRegex(AssertionError, message):
                h.check_status_schema(json.dumps(broken))
        del status["workers"]
        with self.assertRaisesRegex(AssertionError, r"/: 'workers' is a required property"):
            h.check_status_schema(json.dumps(status))


if __name__ == "__main__":
    unittest.main()
