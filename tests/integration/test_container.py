#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""contrib/container: what can be proven without a container runtime or Kubernetes. corral runs the
example's config and app (sockets and endpoints moved to 127.0.0.1); the Deployment's probes answer as the
manifest expects (readiness on /health/ready, liveness on /metrics); the signal sequence of a pod's stop
holds: SIGTERM makes readiness fail at once while the app keeps serving for DrainDelaySec=, then corral
exits 0; the Containerfile's ENTRYPOINT options and the config's WorkerOutput=json make every line corral
writes a JSON object; and the manifest's terminationGracePeriodSeconds covers the drain delay plus
StopTimeoutSec=. (Under a real container runtime: tests/vm, podman; tests/e2e/container.sh, nspawn.)"""

import json
import os
import re
import signal
import sys
import time
import unittest

import corral_harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.normpath(os.path.join(HERE, "..", "..", "contrib", "container"))


def seconds(value):
    m = re.fullmatch(r"(\d+)(s?)", value)
    assert m, value
    return int(m.group(1))


def config_value(key):
    with open(os.path.join(EXAMPLE, "corral.conf")) as f:
        m = re.search(rf"^{key}=(.*)$", f.read(), re.M)
    assert m, key
    return m.group(1).strip()


def manifest_probe(kind):
    with open(os.path.join(EXAMPLE, "deployment.yaml")) as f:
        text = f.read()
    m = re.search(rf"{kind}:\s*\n\s*httpGet: {{path: (\S+), port: (\w+)}}", text)
    assert m, kind
    return m.group(1), m.group(2)


def entrypoint_options():
    """The Containerfile's ENTRYPOINT after the binary, with its --config VALUE left out (the test's own)."""
    with open(os.path.join(EXAMPLE, "Containerfile")) as f:
        argv = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", f.read(), re.M).group(1))
    assert argv[0] == "/usr/bin/corral" and argv[1] == "--config", argv
    return argv[3:]


class ContainerExample(h.CorralTestCase):
    def test_grace_period_covers_the_drain_delay_and_the_stop_timeout(self):
        with open(os.path.join(EXAMPLE, "deployment.yaml")) as f:
            grace = int(re.search(r"terminationGracePeriodSeconds: (\d+)", f.read()).group(1))
        self.assertGreater(grace, seconds(config_value("DrainDelaySec")) + seconds(config_value("StopTimeoutSec")))

    def test_probes_and_the_stop_sequence(self):
        port, status_port = h.free_port(), h.free_port()
        c = self.start_corral(["--config", os.path.join(EXAMPLE, "corral.conf"), *entrypoint_options(), "--count", "2",
                               "--listen", "", "--listen", f"127.0.0.1:{port}",
                               "--status-listen", f"127.0.0.1:{status_port}",
                               "--control", os.path.join(self.tmp, "control"), "--",
                               sys.executable, os.path.join(EXAMPLE, "app.py")])
        c.wait_for_line(r'"message":"all 2 workers ready"', timeout=30)
        ready_path, port_name = manifest_probe("readinessProbe")
        live_path, _ = manifest_probe("livenessProbe")
        self.assertEqual(port_name, "status")
        h.wait_until(lambda: h.http_get(status_port, ready_path).status == 200, 20,
                     message="readiness never passed")
        self.assertEqual(h.http_get(status_port, live_path).status, 200)
        self.assertIn(b"hello from pid", h.http_get(port).body)
        # The worker's output goes to corral's own as JSON objects with slot and pid (WorkerOutput=json).
        line = c.wait_for_line(r'^\{"source":"worker",.*\\"GET / HTTP/1\.1\\" 200', timeout=10).string
        e = json.loads(line)
        self.assertEqual((e["stream"], e["level"]), ("stderr", "warning"), e)
        self.assertIn(e["slot"], (0, 1))

        delay = seconds(config_value("DrainDelaySec"))
        t0 = time.monotonic()
        c.send_signal(signal.SIGTERM)
        h.wait_until(lambda: h.http_get(status_port, ready_path).status == 503, 5,
                     message="readiness still passing after SIGTERM")
        took = time.monotonic() - t0
        self.assertLess(took, delay / 2, "readiness took most of the drain delay to fail")
        # Still serving, and alive, while the endpoints catch up.
        self.assertEqual(h.http_get(port).status, 200)
        self.assertEqual(h.http_get(status_port, live_path).status, 200)
        self.assertEqual(c.wait(delay + seconds(config_value("StopTimeoutSec")) + 10), 0)
        self.assertGreaterEqual(time.monotonic() - t0, delay)
        for line in c.log.lines():  # every line on stderr, corral's and the workers', is one JSON object
            self.assertIn(json.loads(line)["source"], ("corral", "worker"), line)


if __name__ == "__main__":
    unittest.main()
