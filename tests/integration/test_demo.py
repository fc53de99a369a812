# SPDX-License-Identifier: MIT
"""scripts/demo.sh against this build (--no-setup): the foreground demo's banner (corral's pid, the commands
to try, which must work as printed) and `--tour`, the unattended headline, whose summary table must show
every step held with 0 failed requests. Both run in a runtime directory of their own, never in /run."""
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import corral_harness as h

ROOT = os.path.normpath(os.path.join(h.HERE, "..", ".."))
DEMO = os.path.join(ROOT, "scripts", "demo.sh")
STEPS = ["steady serving", "rolling reload", "SIGKILL a worker", "bad deploy"]


class Demo(h.CorralTestCase):
    def setUp(self):
        super().setUp()
        build = os.path.dirname(h.corral_bin())
        if os.path.realpath(os.path.join(build, "tests", "corral-test-worker")) != os.path.realpath(h.worker_bin()):
            self.fail(f"demo.sh finds the worker in CORRAL_BUILD_DIR/tests: {build} is not CORRAL_TEST_WORKER's")
        self.runtime = tempfile.mkdtemp(prefix="run-", dir=self.tmp)
        self.xdg = tempfile.mkdtemp(prefix="xdg-", dir=self.tmp)
        os.chmod(self.xdg, 0o700)
        self.env = h.clean_env({"CORRAL_BUILD_DIR": build, "RUNTIME_DIRECTORY": self.runtime,
                                "XDG_RUNTIME_DIR": self.xdg})
        self.tracker = h.ProcessTracker()
        self.addCleanup(self.tracker.kill_all)

    def watch(self, proc):
        """Notes every process below PROC while it runs (pidfds), so a cleanup can kill what it left."""
        def loop():
            while proc.poll() is None:
                for pid in [proc.pid] + h.descendant_pids(proc.pid):
                    self.tracker.track(pid)
                time.sleep(0.05)
        threading.Thread(target=loop, daemon=True).start()

    def stop(self, proc, sig=signal.SIGTERM):
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(h.scaled(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def test_tour_holds_every_step(self):
        proc = subprocess.Popen(["bash", DEMO, "--tour", "--no-setup"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
                                cwd=self.tmp)
        self.watch(proc)
        self.addCleanup(self.stop, proc)
        try:
            out, _ = proc.communicate(timeout=h.scaled(120))
        except subprocess.TimeoutExpired:
            self.stop(proc)  # SIGTERM: the tour stops its corral and prints what it has
            out, _ = proc.communicate(timeout=10)
            self.fail(f"the tour took more than {h.scaled(120):.0f} s:\n{out}")
        self.assertEqual(proc.returncode, 0, out)
        self.assertRegex(out, r"\ntour: PASSED in \d+\.\d s\n", out)

        # The summary table: one row per step, every one with requests answered and 0 failed.
        lines = out.splitlines()
        header = [i for i, line in enumerate(lines) if line.split()[:4] == ["STEP", "REQUESTS", "FAILED", "RETRIED"]]
        self.assertEqual(len(header), 1, out)
        rows = lines[header[0] + 1:header[0] + 1 + len(STEPS) + 1]
        for step, row in zip(STEPS + ["clean stop"], rows):
            self.assertTrue(row.strip().startswith(step), f"{step!r} not in {row!r}\n{out}")
        for step, row in zip(STEPS, rows):
            m = re.match(r"\s*" + re.escape(step) + r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+\.\d\d)\s+ok: ", row)
            self.assertIsNotNone(m, f"{row!r}\n{out}")
            sent, failed, retried, seconds = int(m[1]), int(m[2]), int(m[3]), float(m[4])
            self.assertGreater(sent, 0, row)
            self.assertEqual(failed, 0, row)
            self.assertLessEqual(retried, sent, row)
            self.assertGreater(seconds, 0.5, row)
        self.assertRegex(rows[-1], r"ok: SIGTERM, corral exited 0$")

        # What each step did, in its own words and numbers from the run.
        self.assertRegex(out, r"generation 1 -> 2: \d+ workers replaced start-first")
        self.assertRegex(out, r"\$ kill -KILL (\d+) .*\n.*worker \d+ \(pid \1\) back as pid \d+: seen ready")
        self.assertRegex(out, r"reload --wait  ->  exit 1: corral: reload failed: worker \d+ \(pid \d+\) of "
                              r"generation 3 exited with status 1 before it was ready; keeping generation 2")
        self.assertIn("ok: reload --wait failed (exit 1)", out)

        # corral is gone, its temporary directory too, and nothing went into the runtime directories.
        pid = int(re.search(r"^corral pid (\d+) ", out, re.M)[1])
        self.assertFalse(h.pid_alive(pid))
        tmpdir = re.search(r"^config (\S+)/corral\.conf,", out, re.M)[1]
        self.assertFalse(os.path.exists(tmpdir))
        self.assertEqual(os.listdir(self.runtime) + os.listdir(self.xdg), [])

    def test_demo_banner_commands_work(self):
        port, status_port = h.free_port(), h.free_port()
        env = dict(self.env, PORT=str(port), STATUS_PORT=str(status_port), COUNT="2")
        proc = subprocess.Popen(["bash", DEMO, "--no-setup"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, cwd=self.tmp,
                                start_new_session=True)
        self.watch(proc)
        self.addCleanup(self.stop, proc)
        log = h.LogCapture(proc.stdout, os.path.join(self.tmp, "demo.log"))
        self.addCleanup(log.close)
        log.wait_for_line(r"Press Ctrl-C to stop the pool", 10)
        banner = log.text()

        # demo.sh execs corral: the banner's pid is corral's.
        self.assertIn(f"corral (pid {proc.pid}): 2 workers behind http://127.0.0.1:{port}/, health on "
                      f"http://127.0.0.1:{status_port}/health", banner)
        commands = dict(re.findall(r"^ {6}(\S.*?)\s+# (.*)$", banner, re.M))
        corral_cmds = [c for c in commands if c.split()[1:] in (["status"], ["reload", "--wait"])]
        self.assertEqual(len(corral_cmds), 2, banner)
        status_cmd, reload_cmd = sorted(corral_cmds, key=len)
        self.assertEqual(os.path.realpath(shlex.split(status_cmd)[0]), os.path.realpath(h.corral_bin()))
        self.assertIn("kill -9 PID", commands)
        self.assertIn(f"curl http://127.0.0.1:{port}/", commands)
        self.assertIn("scripts/demo.sh --tour", banner)

        def run(cmd):
            return subprocess.run(shlex.split(cmd), capture_output=True, text=True, env=env, cwd=self.tmp,
                                  timeout=h.scaled(30))

        def status():
            p = run(status_cmd + " --json")
            return json.loads(p.stdout) if p.returncode == 0 else None

        def settled():
            s = status()
            return s if s and s["ready"] == 2 and s["processes"] == 2 else None
        s = h.wait_until(settled, 15)
        self.assertEqual((s["name"], s["pid"]), ("demo", proc.pid))
        self.assertEqual(h.http_get(status_port, "/health").status, 200)
        self.assertEqual(h.http_get(port).status, 200)

        p = run(reload_cmd)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "generation 2"), p.stderr)

        # Kill a worker, as the banner says, with a pid from status: a new one takes its slot.
        victim = h.wait_until(settled, 15)["workers"][0]
        os.kill(victim["pid"], signal.SIGKILL)

        def back():
            s = settled()
            w = [w for w in s["workers"] if w["slot"] == victim["slot"]] if s else []
            return w and w[0]["pid"] != victim["pid"] and w[0]["restarts"] == 1
        h.wait_until(back, 15, message="the killed worker did not come back")

        # Ctrl-C stops the pool cleanly.
        os.killpg(proc.pid, signal.SIGINT)
        self.assertEqual(proc.wait(h.scaled(20)), 0, log.text())
        self.assertEqual(os.listdir(self.runtime), [])

    def test_bad_arguments(self):
        p = subprocess.run(["bash", DEMO, "--no-setup", "--tuor"], capture_output=True, text=True, env=self.env,
                           timeout=30)
        self.assertEqual((p.returncode, p.stdout), (64, ""))
        self.assertEqual(p.stderr, "demo.sh: error: unknown argument '--tuor' (see scripts/demo.sh --help)\n")
        p = subprocess.run(["bash", DEMO, "--help"], capture_output=True, text=True, env=self.env, timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--no-setup", p.stdout)
        p = subprocess.run(["bash", DEMO, "--tour", "--no-setup"], capture_output=True, text=True, timeout=30,
                           env=dict(self.env, CORRAL_BUILD_DIR=self.tmp))
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"demo.sh: error: '{self.tmp}/corral' was not built", p.stderr)


if __name__ == "__main__":
    unittest.main()
