# SPDX-License-Identifier: MIT
"""The health and metrics endpoint: /health follows readiness (200 full, 429 degraded from MinReady= up, 503)
and drain, /health/ready the same in two codes; /metrics is valid Prometheus text (checked by the real
prometheus_client parser) whose counters move; a socket named corral-status from systemd is kept by corral and
never reaches the workers; bad HTTP gets 4xx. The HAProxy agent-check answers (weight from the ready share
during a crash and a roll, drain, down while nothing is ready and while stopping), and `corral drain --wait`
waits for the kernel's count of open connections, which /metrics exports."""

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
        # Degraded but at MinReady=: Consul's "warning" on /health, plain 200 on /health/ready.
        h.wait_until(lambda: self.health_status() == 429, 10, message="/health never 429 with 1 of 2 ready")
        body = json.loads(self.get("/health").text)
        self.assertEqual((body["status"], body["ready"], body["wanted"], body["min_ready"]), ("degraded", 1, 2, 1))
        a = self.get("/health/ready")
        self.assertEqual((a.status, json.loads(a.text)["status"]), (200, "degraded"))
        self.assertEqual(self.ctl("drain").returncode, 0)
        self.assertEqual((self.get("/health").status, self.get("/health/ready").status), (503, 503))

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
        # The datagram and the signal are separate events: the signal's may come first.
        h.wait_until(lambda: h.metrics(self.status_port).get("corral_notify_rejected_total", 0) >= 1, 10,
                     message="the stray notification was never counted")
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
        agent_sock = h.bind_tcp()
        self.addCleanup(http_sock.close)
        self.addCleanup(status_sock.close)
        self.addCleanup(agent_sock.close)
        port, status_port = http_sock.getsockname()[1], status_sock.getsockname()[1]
        control = os.path.join(self.tmp, "control")
        # The agent's socket comes first: neither endpoint depends on the order systemd passes them in.
        self.start_corral(["--count", 2, "--control", control, "--", h.worker_bin()], mode="fds",
                          sockets=[(agent_sock, "corral-agent"), (http_sock, "http"), (status_sock, "corral-status")])
        h.wait_all_ready(control, 2)
        env = h.http_get(port, "/env").env()
        self.assertEqual(env["LISTEN_FDS"], "1")
        self.assertEqual(env["LISTEN_FDNAMES"], "http")
        self.assertEqual(h.http_get(status_port, "/health").status, 200)
        self.assertEqual(agent_line(agent_sock.getsockname()[1]), "up ready 100% #2/2 workers ready\n")



def agent_line(port):
    """One agent-check exchange as HAProxy makes it: connect, read until corral closes."""
    return raw_request(port, b"").decode()


class Agent(h.CorralTestCase):
    """[Health] AgentListen=: HAProxy's agent-check protocol, one line per connection."""

    def start(self, count, cmd, *extra, config=None):
        self.port, self.agent_port, self.status_port = h.free_port(), h.free_port(), h.free_port()
        self.control = os.path.join(self.tmp, "control")
        args = ["--listen", f"127.0.0.1:{self.port}", "--agent-listen", f"127.0.0.1:{self.agent_port}",
                "--status-listen", f"127.0.0.1:{self.status_port}", "--count", str(count), "--control", self.control,
                *extra]
        if config:
            args = ["--config", config, *args]
        else:
            args += ["--", *cmd]
        return self.start_corral(args)

    def ctl(self, *args, timeout=60):
        return subprocess.run([h.corral_bin(), *args, "--control", self.control], capture_output=True, text=True,
                              timeout=h.scaled(timeout), env=h.clean_env())

    def agent(self):
        return agent_line(self.agent_port)

    def wait_agent(self, expected, timeout=10):
        def says():
            try:
                return self.agent()
            except OSError as e:  # not listening yet
                return repr(e)
        h.wait_until(lambda: says() == expected, timeout, interval=0.05,
                     message=f"agent never said {expected!r}: {says()!r}")

    def test_weight_follows_the_ready_share_then_drain_and_stop(self):
        cmd, _ = h.spawn_counter_command(self.tmp, {"3": ["--exit-at-start", "3"], None: ["--ignore-sigterm"]})
        c = self.start(4, cmd, "--restart-prevent-exit-status", "3", "--stop-timeout", "3s")
        c.wait_for_line(r"slot 3: exit status 3", timeout=20)
        self.wait_agent("up ready 75% #3/4 workers ready\n")
        # What HAProxy may send first (agent-send) is read and dropped; the answer is the same.
        self.assertEqual(raw_request(self.agent_port, b"backend/server\n", half_close=False),
                         b"up ready 75% #3/4 workers ready\n")
        self.assertEqual(self.ctl("drain").returncode, 0)
        self.assertEqual(self.agent(), "drain #drained\n")
        self.assertEqual(self.ctl("undrain").returncode, 0)
        self.assertEqual(self.agent(), "up ready 75% #3/4 workers ready\n")
        # Stopping: the workers ignore SIGTERM for up to StopTimeoutSec=, and the agent says down meanwhile.
        c.send_signal(signal.SIGTERM)
        self.wait_agent("down #stopping\n", timeout=5)
        c.wait(h.scaled(20))

    def test_down_while_no_worker_is_ready(self):
        self.start(2, [h.worker_bin(), "--no-ready"], "--ready-timeout", "60s")
        self.wait_agent("down #no worker ready (0/2)\n")

    def test_weight_during_a_roll_that_may_go_below_strength(self):
        conf = os.path.join(self.tmp, "corral.conf")

        def write(ready_delay):
            with open(conf + ".new", "w") as f:
                f.write(f"[Worker]\nExecStart={h.worker_bin()} --ready-delay {ready_delay}\nCount=4\n"
                        "[Reload]\nMaxSurge=0\nMaxUnavailable=1\n")
            os.rename(conf + ".new", conf)

        write("0")
        self.start(4, None, config=conf)
        h.wait_all_ready(self.control, 4)
        self.assertEqual(self.agent(), "up ready 100% #4/4 workers ready\n")
        write("0.3")  # seconds: each new worker takes a while: the slot it replaces is down meanwhile
        seen = set()
        p = subprocess.Popen([h.corral_bin(), "reload", "--wait", "--control", self.control], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=h.clean_env())
        try:
            while p.poll() is None:
                seen.add(self.agent())
                time.sleep(0.02)
        finally:
            out, err = p.communicate(timeout=h.scaled(60))
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("up ready 75% #3/4 workers ready\n", seen)
        self.assertLessEqual(seen, {"up ready 75% #3/4 workers ready\n", "up ready 100% #4/4 workers ready\n"})
        self.assertEqual(self.agent(), "up ready 100% #4/4 workers ready\n")

    def test_drain_wait_waits_for_the_balancer_that_polls_to_hear_of_it(self):
        self.start(2, [h.worker_bin()])
        h.wait_all_ready(self.control, 2)
        # A balancer polls; between its requests no connection may be open, which proves nothing yet.
        self.assertEqual(self.agent(), "up ready 100% #2/2 workers ready\n")
        p = subprocess.Popen([h.corral_bin(), "drain", "--wait", "--timeout", "20s", "--control", self.control],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.clean_env())
        try:
            time.sleep(0.6)
            self.assertIsNone(p.poll(), "drain --wait returned before the balancer polled")
            self.assertEqual(self.agent(), "drain #drained\n")
            out, err = p.communicate(timeout=h.scaled(10))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("no connections open", out)

    def test_drain_wait_counts_the_open_connections(self):
        # No balancer polls here: drain --wait waits for the connections alone.
        self.start(2, [h.worker_bin()])
        h.wait_all_ready(self.control, 2)
        self.assertEqual(h.metrics(self.status_port)["corral_connections"], 0)
        # Three keep-alive connections that have been served, and one still in the accept queue or not.
        conns = [socket.create_connection(("127.0.0.1", self.port), timeout=h.scaled(5)) for _ in range(3)]
        try:
            for s in conns:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertIn(b"200", s.recv(4096))
            h.wait_until(lambda: h.metrics(self.status_port)["corral_connections"] == 3, 5)
            t0 = time.monotonic()
            p = self.ctl("drain", "--wait", "--timeout", "1s")
            self.assertEqual(p.returncode, 75, p.stdout + p.stderr)
            self.assertGreaterEqual(time.monotonic() - t0, 1.0)
            self.assertIn("3 connections still open after 1s", p.stderr)
            self.assertEqual(self.agent(), "drain #drained\n")
            self.assertEqual(h.http_get(self.status_port, "/health").status, 503)
            # Closed while a second drain --wait waits: it returns as soon as the kernel counts none.
            p = subprocess.Popen([h.corral_bin(), "drain", "--wait", "--timeout", "20s", "--control", self.control],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.clean_env())
            time.sleep(0.5)
            self.assertIsNone(p.poll())
        finally:
            for s in conns:
                s.close()
        out, err = p.communicate(timeout=h.scaled(20))
        self.assertEqual(p.returncode, 0, err)
        self.assertRegex(out, r"^drained\nno connections open \(after \d+\.\ds\)\n$")
        self.assertEqual(h.metrics(self.status_port)["corral_connections"], 0)
        # The workers served throughout: draining is the load balancer's signal, not a stop.
        self.assertEqual(h.http_get(self.port).status, 200)
        self.assertEqual(self.ctl("undrain").returncode, 0)
        self.assertEqual(self.agent(), "up ready 100% #2/2 workers ready\n")


class DrainDelay(h.CorralTestCase):
    """DrainDelaySec=: a stop signal takes the pool out of rotation first, keeps serving, then stops."""

    def start(self, delay):
        self.port, self.agent_port, self.status_port = h.free_port(), h.free_port(), h.free_port()
        self.control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--agent-listen", f"127.0.0.1:{self.agent_port}",
                               "--status-listen", f"127.0.0.1:{self.status_port}", "--count", "2",
                               "--drain-delay", delay, "--control", self.control, "--", h.worker_bin()])
        h.wait_all_ready(self.control, 2)
        return c

    def test_sigterm_goes_unready_serves_for_the_delay_then_stops(self):
        c = self.start("2s")
        self.assertEqual(h.http_get(self.status_port, "/health").status, 200)
        t0 = time.monotonic()
        c.send_signal(signal.SIGTERM)
        h.wait_until(lambda: h.http_get(self.status_port, "/health").status == 503, 5,
                     message="/health never 503 after SIGTERM")
        self.assertEqual(h.http_get(self.status_port, "/health/ready").status, 503)
        self.assertEqual(agent_line(self.agent_port), "down #stopping\n")
        # The workers serve on meanwhile, and nothing else may start: a reload is refused.
        for _ in range(5):
            self.assertEqual(h.http_get(self.port).status, 200)
        p = subprocess.run([h.corral_bin(), "reload", "--control", self.control], capture_output=True, text=True,
                           timeout=h.scaled(10), env=h.clean_env())
        self.assertNotEqual(p.returncode, 0, p.stdout)
        c.wait_for_line(r"drain delay over, stopping 2 workers", timeout=10)
        self.assertGreaterEqual(time.monotonic() - t0, 2.0)
        self.assertEqual(c.wait(20), 0)

    def test_a_second_sigterm_skips_the_delay(self):
        c = self.start("60s")
        c.send_signal(signal.SIGTERM)
        c.wait_for_line(r"serve on for 1min", timeout=10)
        c.send_signal(signal.SIGTERM)
        c.wait_for_line(r"received SIGTERM again during the drain delay, stopping 2 workers", timeout=10)
        self.assertEqual(c.wait(20), 0)


if __name__ == "__main__":
    unittest.main()
