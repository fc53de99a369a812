# SPDX-License-Identifier: MIT
"""The example workers in contrib/examples (Node, plain Python, gunicorn) run under the real corral: both
workers become ready the way each example says it does, answer, survive a rolling reload under a small
load without a failed request, and stop gracefully (nobody needs SIGKILL) when corral stops."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

import corral_harness as h

ROOT = os.path.normpath(os.path.join(h.HERE, "..", ".."))
EXAMPLES = os.path.join(ROOT, "contrib", "examples")
SYSTEM_PYTHON = "/usr/bin/python3"
COUNT = 2


def system_python():
    """Debian's python3 (the one its python3-gunicorn is for); any python3 will do for the plain example."""
    return SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable


def gunicorn_version():
    """gunicorn's version as importable by /usr/bin/python3, or None."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return None
    try:
        p = subprocess.run([SYSTEM_PYTHON, "-c", "import gunicorn; print(gunicorn.__version__)"],
                           capture_output=True, text=True, timeout=30, env=h.clean_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


class Examples(h.CorralTestCase):
    def corralctl(self, *args, timeout=60):
        p = subprocess.run([h.corral_bin(), *args, "--control", self.control], capture_output=True, text=True,
                           timeout=h.scaled(timeout), env=h.clean_env())
        return p.returncode, p.stdout, p.stderr

    def status(self):
        rc, out, err = self.corralctl("status", "--json")
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def reload_under_load(self, c, generation, keepalive):
        """One rolling reload to GENERATION while 8 clients send requests; returns the load summary and
        the pool's status once the old generation is gone."""
        old = self.status()
        old_pids = {w["pid"] for w in old["workers"]}
        c.snapshot_tree()
        old_tree = set(h.descendant_pids(c.pid))

        load = h.LoadGenerator(self.port, concurrency=8, duration=h.scaled(60), keepalive=keepalive,
                               timeout=10).start()
        try:
            time.sleep(0.5)
            c.snapshot_tree()
            rc, out, err = self.corralctl("reload", "--wait")
            c.snapshot_tree()
            time.sleep(0.5)
        finally:
            load.stop()
        self.assertEqual(rc, 0, f"reload failed: {out}{err}")
        self.assertIn(f"generation {generation}", out)

        s = load.summary()
        self.assertGreater(s["ok"], 0, "the load generator got no answer at all")
        self.assertEqual(s["failed"], 0, f"failed requests during the reload (keepalive={keepalive}): "
                                          f"{s['failure_reasons']}")
        self.assertEqual({str(generation - 1), str(generation)} - set(s["generations"]), set(),
                         f"both generations should have served: {s}")

        # "reload --wait" returns once every slot has a ready new worker; the last old one may still be
        # draining (gunicorn takes about half a second to stop). Wait for it, bounded.
        def settled():
            st = self.status()
            return st if len(st["workers"]) == COUNT and all(w["generation"] == generation for w in st["workers"]) \
                else None
        new = h.wait_until(settled, 20, interval=0.1, message="the old generation did not stop")
        self.assertTrue(all(w["state"] == "ready" for w in new["workers"]), new)
        new_pids = {w["pid"] for w in new["workers"]}
        self.assertEqual(len(new_pids), COUNT)
        self.assertFalse(new_pids & old_pids, "the reload kept a worker")
        # The old generation is gone, process trees included (gunicorn's own workers, systemd-notify).
        self.assertAllGone(old_tree, timeout=15)
        return s, new

    def run_example(self, command, runtime):
        """Runs COMMAND as COUNT workers, checks the answers, reloads under load (without and with
        keep-alive connections) and stops. Returns the answers of the first and of the last generation
        ({slot: Answer})."""
        self.port = h.free_port()
        self.control = os.path.join(self.tmp, "control")
        notify = self.notify_receiver()
        c = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--count", COUNT, "--control", self.control,
                               "--ready-timeout", "30s", "--stop-timeout", "20s", "--", *command],
                              notify_socket=notify.path)
        # corral's own READY=1 comes once every worker said READY=1 through the example's own mechanism.
        notify.wait_for("READY", "1", timeout=30)
        first = self.status()
        self.assertEqual(first["state"], "running", first)
        self.assertEqual(len(first["workers"]), COUNT, first)
        self.assertTrue(all(w["state"] == "ready" and w["generation"] == 1 for w in first["workers"]), first)

        before = h.collect_workers(self.port, COUNT, timeout=15, corral=c)
        for slot, a in before.items():
            self.assertEqual(a.generation, "1", a)
            self.assertIn(f"runtime={runtime}", a.text)
            self.assertEqual(a.fields.get("slot"), slot)

        lines = []
        for generation, keepalive in ((2, False), (3, True)):
            s, _ = self.reload_under_load(c, generation, keepalive)
            lines.append(f"{s['requests']} requests ({'keep-alive' if keepalive else 'one per connection'}),"
                         f" 0 failed, {s['retried']} retried, max {s['max'] * 1000:.0f} ms")

        after = h.collect_workers(self.port, COUNT, timeout=15, corral=c)
        for a in after.values():
            self.assertEqual(a.generation, "3", a)
            self.assertNotIn(a.pid, {b.pid for b in before.values()})

        # Every notification came from a worker's tree, and nobody had to be killed.
        self.assertEqual(self.status()["notify_rejected"], 0, c.output())
        c.snapshot_tree()
        tree = set(h.descendant_pids(c.pid))
        self.assertEqual(c.stop(timeout=15), 0, "corral did not stop cleanly")
        self.assertEqual(c.log.count(r"did not stop within"), 0, c.output())
        self.assertAllGone(tree, timeout=5)
        print(f"\n{runtime} reloads: " + "; ".join(lines), file=sys.stderr)
        return before, after

    def test_node(self):
        node = shutil.which("node") or shutil.which("nodejs")
        if not node:
            self.skipTest("node is not installed")
        if not shutil.which("systemd-notify"):
            self.skipTest("systemd-notify (package systemd) is not installed: the Node example sends READY=1 "
                          "through it")
        before, after = self.run_example([node, os.path.join(EXAMPLES, "node", "server.js")], "node/")

    def test_python(self):
        self.run_example([system_python(), os.path.join(EXAMPLES, "python", "server.py")], "python/")

    def test_gunicorn(self):
        version = gunicorn_version()
        if not version:
            self.skipTest(f"gunicorn cannot be imported by {SYSTEM_PYTHON} (apt-get install python3-gunicorn)")
        directory = os.path.join(EXAMPLES, "gunicorn")
        before, after = self.run_example(
            [SYSTEM_PYTHON, "-m", "gunicorn", "--config", os.path.join(directory, "gunicorn.conf.py"),
             "--workers", "1", "--chdir", directory, "app:app"], "gunicorn/")
        # The answer comes from gunicorn's worker process, a child of the gunicorn master that corral runs.
        for a in list(before.values()) + list(after.values()):
            self.assertNotEqual(a.fields.get("master"), str(a.pid), a)


if __name__ == "__main__":
    unittest.main()
