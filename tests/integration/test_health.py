# SPDX-License-Identifier: MIT
"""The health and metrics endpoint: /health follows readiness, MinReady= and drain; /metrics is valid
Prometheus text (checked by the real prometheus_client parser) whose counters move; a socket named
corral-status from systemd is kept by corral and never reaches the workers; bad HTTP gets 4xx."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

import corral_harness as h

PROMETHEUS_PARSER = """
import sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[s.name + ("{" + labels + "}" if labels else "")] = s.value
import json
print(json.dumps(out))
"""


def parse_metrics(text):
    """Parses with Debian's python3-prometheus-client (installed by scripts/setup.sh) under /usr/bin/python3,
    which may differ from the interpreter running the tests."""
    p = subprocess.run(["/usr/bin/python3", "-c", PROMETHEUS_PARSER], input=text, capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        raise AssertionError(f"prometheus_client rejected /metrics:\n{p.stderr}\n{text}")
    return json.loads(p.stdout)


def raw_request(port, data, timeout=10, half_close=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=h.scaled(timeout))
    try:
        if data:
            s.sendall(data)
        if half_close and data:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


class Health(h.CorralTestCase):
    def start(self, count=2, *extra, cmd=None):
        self.port, self.status_port = h.free_port(), h.free_port()
        self.control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--status-listen", f"127.0.0.1:{self.status_port}",
                               "--count", count, "--control", self.control, *extra, "--",
                               *(cmd or [h.worker_bin()])])
        return c

    def get(self, path):
        return h.http_get(self.status_port, path)

    def health_status(self):
        """The /health status code, or None while corral is not listening yet."""
        try:
            return self.get("/health").status
        except OSError:
            return None

    def wait_metric(self, key, value, timeout=10):
        """Waits until /metrics has KEY (as parse_metrics() names it) at VALUE."""
        h.wait_until(lambda: h.metrics(self.status_port).get(key) == value, timeout,
                     message=f"{key} never {value}: {h.metrics(self.status_port).get(key)}")

    def version(self):
        p = subprocess.run([h.corral_bin(), "--version"], capture_output=True, text=True, timeout=h.scaled(10))
        return p.stdout.split()[1]

    def ctl(self, *args):
        return subprocess.run([h.corral_bin(), *args, "--control", self.control], capture_output=True, text=True,
                              timeout=h.scaled(60), env=h.clean_env())

    def test_health_follows_readiness_and_drain(self):
        self.start(2)
        h.wait_all_ready(self.control, 2)
        a = self.get("/health")
        self.assertEqual(a.status, 200)
        body = json.loads(a.text)
        self.assertEqual((body["status"], body["ready"], body["wanted"], body["drained"]), ("ok", 2, 2, False))
        self.assertEqual(self.ctl("drain").returncode, 0)
        a = self.get("/health")
        self.assertEqual(a.status, 503)
        self.assertTrue(json.loads(a.text)["drained"])
        # Draining touches no worker.
        self.assertEqual(h.http_get(self.port).status, 200)
        self.assertEqual(self.ctl("undrain").returncode, 0)
        self.assertEqual(self.get("/health").status, 200)
        self.assertEqual(self.get("/nope").status, 404)

    def test_min_ready(self):
        cmd, _ = h.spawn_counter_command(self.tmp, {"1": ["--exit-at-start", "3"], None: []})
        c = self.start(2, "--restart-prevent-exit-status", "3", "--min-ready", "1", cmd=cmd)
        c.wait_for_line(r"slot 1: exit status 3", timeout=20)
        h.wait_until(lambda: self.health_status() == 200, 10, message="/health never 200 with 1 of 2 ready")
        body = json.loads(self.get("/health").text)
        self.assertEqual((body["ready"], body["wanted"], body["min_ready"]), (1, 2, 1))

    def test_health_503_until_all_ready_by_default(self):
        self.start(2, "--ready-timeout", "30s", cmd=[h.worker_bin(), "--no-ready"])
        h.wait_until(lambda: self.health_status() == 503, 10, message="no answer")
        self.assertEqual(json.loads(self.get("/health").text)["ready"], 0)

    def test_metrics_parse_and_counters_move(self):
        c = self.start(2, "--ready-timeout", "10s")
        h.wait_all_ready(self.control, 2)
        m = parse_metrics(self.get("/metrics").text)
        self.assertEqual(m["corral_workers{state=ready}"], 2)
        self.assertEqual(m["corral_workers_wanted"], 2)
        self.assertEqual(m["corral_worker_restarts_total{reason=crash}"], 0)
        self.assertEqual(m["corral_reloads_total{result=ok}"], 0)
        pids = [int(k.split("pid=")[1].split(",")[0]) for k in m if k.startswith("corral_worker_info{")]
        self.assertEqual(len(pids), 2)
        self.assertTrue(all(m[k] > 0 for k in m if k.startswith("corral_worker_memory_bytes{")))

        os.kill(pids[0], signal.SIGKILL)
        self.wait_metric("corral_worker_restarts_total{reason=crash}", 1)
        self.assertEqual(self.ctl("reload", "--wait").returncode, 0)
        h.send_datagram(h.http_get(self.port, "/env").env()["NOTIFY_SOCKET"], b"READY=1")  # not a worker
        c.send_signal(signal.SIGUSR2)
        self.wait_metric("corral_signals_relayed_total", 1)
        m = parse_metrics(self.get("/metrics").text)
        self.assertEqual(m["corral_worker_restarts_total{reason=crash}"], 1)
        self.assertEqual(m["corral_reloads_total{result=ok}"], 1)
        self.assertEqual(m["corral_reload_duration_seconds_count"], 1)
        self.assertEqual(m["corral_reload_duration_seconds_bucket{le=+Inf}"], 1)
        self.assertGreater(m["corral_reload_duration_seconds_sum"], 0)
        self.assertEqual(m["corral_generation"], 2)
        self.assertGreaterEqual(m["corral_notify_rejected_total"], 1)
        self.assertEqual(m["corral_signals_relayed_total"], 1)

    def test_metrics_pass_promtool_and_keep_their_series_across_a_reload(self):
        """A dashboard keeps a slot's history: the per-worker series carry the slot alone, so a reload with the
        same Count= (or a crash) starts no new series; corral_worker_info joins the slot to its pid and
        generation. The text passes promtool at rest and in the middle of the roll, when a slot holds its
        worker and the replacement starting beside it."""
        self.start(2, cmd=[h.worker_bin(), "--ready-delay", "1"])
        h.wait_all_ready(self.control, 2, timeout=30)
        per_worker = ("corral_worker_memory_bytes{", "corral_worker_cpu_seconds_total{")

        def series(m):
            return sorted(k for k in m if k.startswith(per_worker))

        def info(m):
            return sorted(k for k in m if k.startswith("corral_worker_info{"))

        before_text = h.metrics_text(self.status_port)
        h.check_metrics(before_text)
        before = h.metrics(self.status_port)
        self.assertEqual(series(before), ["corral_worker_cpu_seconds_total{slot=0}",
                                          "corral_worker_cpu_seconds_total{slot=1}",
                                          "corral_worker_memory_bytes{slot=0}", "corral_worker_memory_bytes{slot=1}"])
        self.assertTrue(all(k.endswith(",slot=0}") or k.endswith(",slot=1}") for k in info(before)), before)
        self.assertEqual(before["process_start_time_seconds"], before["corral_last_reload_timestamp_seconds"])
        self.assertLess(abs(before["process_start_time_seconds"] - time.time()), 120)
        self.assertEqual(before["corral_last_reload_successful"], 1)
        self.assertEqual(self.ctl("reload").returncode, 0)

        def mid_roll():
            text = h.metrics_text(self.status_port)
            m = dict(h.metrics_samples(text))
            return (text, m) if m["corral_generation"] == 2 and m["corral_workers{state=starting}"] >= 1 else None
        mid_text, mid = h.wait_until(mid_roll, 10, message="no replacement ever seen starting")
        h.check_metrics(mid_text)
        self.assertEqual(series(mid), series(before))
        self.assertEqual(len(info(mid)), 2)

        self.wait_metric("corral_reloads_total{result=ok}", 1, timeout=30)
        after_text = h.metrics_text(self.status_port)
        h.check_metrics(after_text)
        after = h.metrics(self.status_port)
        self.assertEqual(series(after), series(before))
        self.assertEqual(len(info(after)), 2)
        self.assertTrue(all("generation=2," in k for k in info(after)), info(after))
        self.assertFalse(set(info(after)) & set(info(before)), "the info series must name the new workers")
        self.assertGreater(after["corral_last_reload_timestamp_seconds"], before["process_start_time_seconds"])
        self.assertEqual(after["corral_last_reload_successful"], 1)
        self.assertEqual(after["corral_build_info{version=" + self.version() + "}"], 1)

    def test_bad_http_gets_4xx_and_the_pool_keeps_serving(self):
        c = self.start(1)
        h.wait_all_ready(self.control, 1)
        cases = [
            (b"garbage\r\n\r\n", b"HTTP/1.1 400"),
            (b"GET /health HTTP/1.1\r\n\r\n", b"HTTP/1.1 400"),  # HTTP/1.1 without Host
            (b"POST /health HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 405"),
            (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", b"HTTP/1.1 431"),
            (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 414"),
            (b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", b"HTTP/1.1 505"),
            (b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", b"HTTP/1.1 413"),
            (b"\x00\xff\xfe\r\n\r\n", b"HTTP/1.1 400"),
        ]
        for request, expected in cases:
            reply = raw_request(self.status_port, request)
            self.assertTrue(reply.startswith(expected), (request[:40], reply[:80]))
        # A client that sends nothing is answered 408 and dropped, never left to hold a slot.
        reply = raw_request(self.status_port, b"", timeout=15, half_close=False)
        self.assertTrue(reply.startswith(b"HTTP/1.1 408"), reply[:80])
        self.assertEqual(self.get("/health").status, 200)
        self.assertTrue(c.running())

    def test_health_survives_slowloris(self):
        """200 slow clients (a byte a second each, back at their next tick once dropped) must not starve
        /health: a load balancer probing every 250 ms sees at least 99 % 200s, and the other paths keep
        working."""
        self.start(2)
        h.wait_all_ready(self.control, 2)
        attack = h.Slowloris(self.status_port, connections=200, interval=1.0, duration=h.scaled(30)).start()
        try:
            time.sleep(2)  # every slow client has connected and is trickling
            prober = h.HealthProber(self.status_port, interval=0.25, timeout=2.0, duration=20).start().join()
            others = [self.get("/metrics").status, self.get("/nope").status]
        finally:
            attack.stop()
        s = prober.summary()
        print(f"\nslowloris: {attack.connects} connects, {attack.ended_by_server} ended by corral, "
              f"{attack.bytes_sent} bytes, {attack.refused} refused; /health: {s}", file=sys.stderr)
        self.assertGreater(attack.bytes_sent, 1000, "the slow clients did not trickle")
        self.assertGreaterEqual(s["probes"], 75)
        self.assertGreaterEqual(s["ok_share"], 0.99, s)
        self.assertEqual(others, [200, 404])
        self.assertEqual(self.get("/health").status, 200)

    def test_systemd_status_socket_is_kept_from_the_workers(self):
        http_sock = h.bind_tcp()
        status_sock = h.bind_tcp()
        self.addCleanup(http_sock.close)
        self.addCleanup(status_sock.close)
        port, status_port = http_sock.getsockname()[1], status_sock.getsockname()[1]
        control = os.path.join(self.tmp, "control")
        self.start_corral(["--count", 2, "--control", control, "--", h.worker_bin()], mode="fds",
                          sockets=[(http_sock, "http"), (status_sock, "corral-status")])
        h.wait_all_ready(control, 2)
        env = h.http_get(port, "/env").env()
        self.assertEqual(env["LISTEN_FDS"], "1")
        self.assertEqual(env["LISTEN_FDNAMES"], "http")
        self.assertEqual(h.http_get(status_port, "/health").status, 200)


if __name__ == "__main__":
    unittest.main()
