# SPDX-License-Identifier: MIT
"""Upgrading corral in place (issue 13): `corral upgrade` execs the binary corral was started from in
corral's own pid, keeping every worker, socket and counter. Under a closed-loop load on 127.0.0.1 (keep-alive
on and off) no request fails and no worker pid changes; a missing, non-executable, failing or crashing
binary, or one of another state format, changes nothing; one that passes its check and then cannot resume
hands back to the binary before; an upgrade waits for no roll but refuses one in progress; a backoff
crosses the exec with its deadline."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import corral_harness as h

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from load import Load  # noqa: E402


def variant(var):
    path = os.environ.get(var)
    if not path or not os.access(path, os.X_OK):
        raise AssertionError(f"{var} is not set to a built test binary (run through ctest)")
    return path


class Upgrade(h.CorralTestCase):
    def setUp(self):
        super().setUp()
        # corral runs from a copy an upgrade test can replace, as a package upgrade replaces /usr/bin/corral.
        self.bin = os.path.join(self.tmp, "bin", "corral")
        os.makedirs(os.path.dirname(self.bin))
        shutil.copy2(h.corral_bin(), self.bin)
        self.control = os.path.join(self.tmp, "control")
        self.port = h.free_port()

    def start(self, count=3, extra=(), worker_args=()):
        c = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--count", count, "--control", self.control,
                               *extra, "--", h.worker_bin(), *worker_args], binary=self.bin)
        h.wait_all_ready(self.control, count)
        return c

    def install(self, source):
        """Puts SOURCE where corral was started from, by rename, as dpkg does."""
        tmp = self.bin + ".new"
        if source is None:
            os.unlink(self.bin)
            return
        if isinstance(source, bytes):
            with open(tmp, "wb") as f:
                f.write(source)
            os.chmod(tmp, 0o755)
        else:
            shutil.copy2(source, tmp)
        os.rename(tmp, self.bin)

    def upgrade(self, timeout=30):
        p = subprocess.run([h.corral_bin(), "upgrade", "--control", self.control], capture_output=True, text=True,
                           timeout=h.scaled(timeout), env=h.clean_env())
        return p.returncode, p.stdout + p.stderr

    def workers(self):
        _, st = h.control_status(self.control)
        return st, {w["slot"]: w["pid"] for w in st["workers"]}

    def assert_unchanged(self, corral, pids, rc_out=None):
        st, now = self.workers()
        self.assertEqual(st["pid"], corral.pid)
        self.assertEqual(now, pids, "a worker changed across the upgrade")
        self.assertEqual(st["state"], "running")
        h.wait_serving(self.port)

    def test_upgrades_under_load_keep_every_worker_and_request(self):
        corral = self.start(count=4)
        st0, pids = self.workers()
        fds0 = h.fd_count(corral.pid)
        for keepalive in (True, False):
            load = Load(self.port, 50, duration=3600, timeout=h.scaled(5), keepalive=keepalive)
            thread = threading.Thread(target=lambda: setattr(load, "result", load.run()), daemon=True)
            thread.start()
            h.wait_until(lambda: load.counts()["ok"] > 200, h.scaled(20), message="the load never got going")
            for i in range(10):
                before = load.counts()["ok"]
                rc, out = self.upgrade()
                self.assertEqual(rc, 0, out)
                self.assertRegex(out, rf"^upgraded to corral \S+ \(from \S+\), pid {corral.pid}, 4 workers kept")
                # Served between upgrades: the next one runs under load, not in a lull.
                h.wait_until(lambda: load.counts()["ok"] > before + 50, h.scaled(20),
                             message=f"no requests served after upgrade {i + 1}")
            load.stop.set()
            thread.join(h.scaled(30))
            result = load.result
            self.assertEqual(result["failed"], 0, f"keep-alive {keepalive}: {result}")
            self.assertGreater(result["ok"], 1000, result)
            self.assertEqual(set(result["pids"]), {str(p) for p in pids.values()}, result)
        self.assert_unchanged(corral, pids)
        self.assertEqual(corral.output().count("upgraded in place from corral"), 20)
        st, _ = self.workers()
        self.assertEqual(st["start_time_usec"], st0["start_time_usec"])
        # No fd leaks in 20 execs: the same number of fds as before them (measured alike, between requests).
        self.assertEqual(h.fd_count(corral.pid), fds0)

    def test_counters_status_and_metrics_carry_over(self):
        agent_port = h.free_port()
        # Each worker notifies from an orphan it leaves (re-parented to corral, reaped there): the counter of
        # reaped orphans has something to carry over.
        corral = self.start(count=2, extra=["--status-listen", f"127.0.0.1:{h.free_port()}",
                                            "--agent-listen", f"127.0.0.1:{agent_port}"],
                            worker_args=["--notify-via-orphan"])
        status_port = int(corral.args[corral.args.index("--status-listen") + 1].rsplit(":", 1)[1])
        p = subprocess.run([h.corral_bin(), "reload", "--wait", "--control", self.control], capture_output=True,
                           text=True, timeout=h.scaled(30), env=h.clean_env())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        h.wait_all_ready(self.control, 2)
        st, pids = self.workers()
        victim = pids[1]
        os.kill(victim, signal.SIGKILL)
        h.wait_until(lambda: self.workers()[1].get(1) not in (None, victim), h.scaled(10))
        h.wait_all_ready(self.control, 2)
        before, pids = self.workers()
        h.wait_until(lambda: h.metrics(status_port)["corral_orphans_reaped_total"] >= 5, 10,
                     message="the orphans that notified were not reaped")
        m_before = h.metrics(status_port)
        rc, out = self.upgrade()
        self.assertEqual(rc, 0, out)
        after, now = self.workers()
        self.assertEqual(now, pids)
        for key in ("pid", "generation", "reloads_ok", "reloads_failed", "start_time_usec", "name", "control"):
            self.assertEqual(after[key], before[key], key)
        self.assertEqual([w["restarts"] for w in after["workers"]], [w["restarts"] for w in before["workers"]])
        # The same exit, as long ago as before plus the time between the two answers.
        def exits(st):
            return [dict(w["last_exit"], ago_usec=None) if w["last_exit"] else None for w in st["workers"]]
        self.assertEqual(exits(after), exits(before))
        self.assertGreaterEqual(after["workers"][1]["last_exit"]["ago_usec"], before["workers"][1]["last_exit"]["ago_usec"])
        m_after = h.metrics(status_port)
        for name in ("corral_worker_restarts_total", "corral_reloads_total", "process_start_time_seconds",
                     "corral_last_reload_timestamp_seconds", "corral_worker_info", "corral_generation",
                     "corral_orphans_reaped_total"):
            got = {k: v for k, v in m_after.items() if k.split("{")[0] == name}
            want = {k: v for k, v in m_before.items() if k.split("{")[0] == name}
            self.assertTrue(want, f"{name} not in /metrics")
            self.assertEqual(got, want, name)
        # Both endpoints crossed the exec on their sockets, and the agent-check tells a drain as before.
        self.assertEqual(h.http_get(status_port, "/health").status, 200)
        p = subprocess.run([h.corral_bin(), "drain", "--control", self.control], capture_output=True, text=True,
                           timeout=h.scaled(30), env=h.clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        rc, out = self.upgrade()
        self.assertEqual(rc, 0, out)
        with socket.create_connection(("127.0.0.1", agent_port), timeout=h.scaled(5)) as s:
            self.assertEqual(s.makefile("rb").read(), b"drain #drained\n")
        self.assertEqual(h.http_get(status_port, "/health").status, 503)

    def test_a_binary_that_cannot_take_over_changes_nothing(self):
        corral = self.start(count=2)
        _, pids = self.workers()
        good = self.bin + ".good"
        shutil.copy2(self.bin, good)
        cases = [
            (None, "cannot run .*No such file or directory"),
            (b"#!/bin/sh\necho 'not today' >&2\nexit 3\n", r"failed its check \(exit status 3\): not today"),
            (b"#!/bin/sh\nkill -SEGV $$\n", "was killed by signal SEGV during its check"),
            (os.urandom(64), "could not be executed"),
            (variant("CORRAL_TEST_STATE_V2"), r"failed its check .*format 1\.0, this corral reads 2\.x"),
        ]
        for source, reason in cases:
            with self.subTest(reason=reason):
                self.install(source)
                rc, out = self.upgrade()
                self.assertEqual(rc, 1, out)
                self.assertRegex(out, "upgrade failed: (.*corral. )?" + reason)
                self.assert_unchanged(corral, pids)
        self.install(good)
        os.chmod(self.bin, 0o644)
        rc, out = self.upgrade()
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, "cannot run .*Permission denied")
        # One journal event per failure (the log capture may trail the client's answer a little).
        h.wait_until(lambda: corral.output().count("upgrade failed") == len(cases) + 1, h.scaled(5),
                     message="not every failed upgrade was logged")
        os.chmod(self.bin, 0o755)
        rc, out = self.upgrade()
        self.assertEqual(rc, 0, out)
        self.assert_unchanged(corral, pids)

    def test_a_failed_exec_leaves_the_old_image_running(self):
        # The binary passes its check, then is no longer executable when the exec comes: execve() fails and
        # the image that tried carries on, as if nothing had been asked.
        corral = self.start(count=2)
        _, pids = self.workers()
        self.install(b'#!/bin/sh\n"' + h.corral_bin().encode() + b'" "$@"\nrc=$?\nchmod -x "$0"\nexit $rc\n')
        rc, out = self.upgrade()
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"upgrade failed: executing '.*' failed: Permission denied")
        self.assert_unchanged(corral, pids)
        corral.wait_for_line(r"upgrade: '.*' checked the state")
        # And it still upgrades once the binary is back.
        self.install(h.corral_bin())
        rc, out = self.upgrade()
        self.assertEqual(rc, 0, out)
        self.assert_unchanged(corral, pids)

    def test_a_binary_that_cannot_resume_hands_back_to_the_one_before(self):
        corral = self.start(count=2)
        _, pids = self.workers()
        good = self.bin + ".good"
        shutil.copy2(self.bin, good)
        self.install(variant("CORRAL_TEST_NO_RESUME"))
        rc, out = self.upgrade()
        self.assertEqual(rc, 1, out)
        self.assertIn("the new binary could not resume: this test build does not resume, on purpose", out)
        self.assertIn("carries on", out)
        self.assert_unchanged(corral, pids)
        corral.wait_for_line(r"this test build does not resume, on purpose")
        corral.wait_for_line(r"going back to the binary before")
        # The image that came back still upgrades, to a good binary at the same path.
        self.install(good)
        rc, out = self.upgrade()
        self.assertEqual(rc, 0, out)
        self.assert_unchanged(corral, pids)

    def test_a_roll_in_progress_refuses_the_upgrade_and_the_upgrade_refuses_a_reload(self):
        corral = self.start(count=2, worker_args=["--ready-delay", "1.5"])
        reload = subprocess.Popen([h.corral_bin(), "reload", "--wait", "--control", self.control],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=h.clean_env())
        try:
            h.wait_until(lambda: self.workers()[0]["state"] == "reloading", h.scaled(10))
            rc, out = self.upgrade()
            self.assertEqual(rc, 1, out)
            self.assertIn("cannot upgrade now: a reload is in progress", out)
            self.assertEqual(reload.wait(h.scaled(30)), 0, reload.stdout.read())
        finally:
            if reload.poll() is None:
                reload.kill()
                reload.wait()
        h.wait_all_ready(self.control, 2)
        _, pids = self.workers()
        # A slow sentinel holds the upgrade open: a reload meanwhile is refused, then the upgrade goes on.
        self.install(b"#!/bin/sh\nsleep 1\nexec " + h.corral_bin().encode() + b' "$@"\n')
        up = subprocess.Popen([h.corral_bin(), "upgrade", "--control", self.control], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=h.clean_env())
        try:
            corral.wait_for_line(r"upgrade: checking")
            p = subprocess.run([h.corral_bin(), "reload", "--wait", "--control", self.control], capture_output=True,
                               text=True, timeout=h.scaled(10), env=h.clean_env())
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("an upgrade is in progress", p.stdout + p.stderr)
            self.assertEqual(up.wait(h.scaled(30)), 0, up.stdout.read())
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
        self.assert_unchanged(corral, pids)

    def test_a_generation_keeps_what_it_resolved(self):
        # The config as the generation read it, its environment file and its directory's link as resolved
        # then: changed on disk before the upgrade, none of them reaches a worker respawned after it.
        releases = [os.path.join(self.tmp, r) for r in ("r1", "r2")]
        for r in releases:
            os.mkdir(r)
        current = os.path.join(self.tmp, "current")
        os.symlink(releases[0], current)
        envfile = os.path.join(self.tmp, "env")
        with open(envfile, "w") as f:
            f.write("COLOUR=blue\n")
        conf = os.path.join(self.tmp, "app.conf")
        with open(conf, "w") as f:
            f.write(f"[Worker]\nExecStart={h.worker_bin()}\nEnvironment=SHAPE=round\nEnvironmentFile={envfile}\n"
                    f"WorkingDirectory={current}\nCount=2\n[Restart]\nMinUptimeSec=0\n")
        corral = self.start_corral(["--config", conf, "--listen", f"127.0.0.1:{self.port}", "--control", self.control],
                                   binary=self.bin)
        h.wait_all_ready(self.control, 2)
        with open(envfile, "w") as f:
            f.write("COLOUR=red\n")
        with open(conf, "a") as f:
            f.write("[Service]\nName=changed\n")
        os.symlink(releases[1], current + ".new")
        os.rename(current + ".new", current)
        rc, out = self.upgrade()
        self.assertEqual(rc, 0, out)
        _, pids = self.workers()
        os.kill(pids[0], signal.SIGKILL)
        h.wait_until(lambda: self.workers()[1].get(0) not in (None, pids[0]), h.scaled(10))
        h.wait_all_ready(self.control, 2)
        new = self.workers()[1][0]
        with open(f"/proc/{new}/environ", "rb") as f:
            env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        self.assertEqual((env[b"COLOUR"], env[b"SHAPE"]), (b"blue", b"round"))
        self.assertEqual(os.readlink(f"/proc/{new}/cwd"), releases[0])
        st, _ = self.workers()
        self.assertEqual(st["name"], "corral-test-worker")
        self.assertEqual(st["pid"], corral.pid)

    def test_relayed_output_crosses_the_upgrade(self):
        # WorkerOutput=prefix: the pipes' read ends cross the exec, so the workers keep writing (no EPIPE, no
        # SIGPIPE) and every line, short enough to be written whole, is relayed once, before or after.
        self.relayed_output_crosses_the_upgrade("prefix")

    def test_json_output_crosses_the_upgrade(self):
        # WorkerOutput=json: the same pipes, and the new image formats them as the old one did.
        self.relayed_output_crosses_the_upgrade("json")

    def relayed_output_crosses_the_upgrade(self, mode):
        n_lines = 300
        out = os.path.join(self.tmp, "stdout")
        with open(out, "wb") as f:
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=f)
        self.addCleanup(cat.kill)
        corral = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--count", 2, "--control", self.control,
                                    "--worker-output", mode, "--", h.worker_bin(), "--log-lines", n_lines,
                                    "--log-bytes", 100, "--log-every", 10], binary=self.bin, stdout=cat.stdin)
        cat.stdin.close()
        h.wait_all_ready(self.control, 2)
        _, pids = self.workers()
        for _ in range(3):
            time.sleep(0.5)
            rc, out_text = self.upgrade()
            self.assertEqual(rc, 0, out_text)

        def as_prefix(line):
            if mode == "prefix":
                return line
            e = json.loads(line)
            return f"[{e['slot']} {e['pid']}] {e['message']}"

        def lines():
            with open(out, "rb") as f:
                return [as_prefix(l) for l in f.read().decode("latin-1").splitlines() if "LOG out " in l]
        h.wait_until(lambda: len(lines()) >= 2 * n_lines, h.scaled(30), interval=0.2,
                     message="not every stdout line was relayed")
        got = lines()
        self.assertEqual(len(got), 2 * n_lines, got[-3:])
        for slot, pid in pids.items():
            seqs = [int(l.split()[6]) for l in got if l.startswith(f"[{slot} {pid}] LOG out {slot} {pid} ")]
            self.assertEqual(len(seqs), n_lines, f"slot {slot}")
            self.assertEqual(seqs, sorted(set(seqs)), f"slot {slot}: lines lost, twice or out of order")
        self.assert_unchanged(corral, pids)
        self.assertEqual(corral.stop(), 0)

    def test_an_upgrade_waits_for_a_starting_worker(self):
        corral = self.start(count=2, worker_args=["--ready-delay", "1.5"])
        _, pids = self.workers()
        p = subprocess.run([h.corral_bin(), "recycle", "0", "--control", self.control], capture_output=True,
                           text=True, timeout=h.scaled(10), env=h.clean_env())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        t0 = time.monotonic()
        rc, out = self.upgrade()
        self.assertEqual(rc, 0, out)
        # Not carried: its replacement became ready (1.5 s) and the old worker of slot 0 was gone first.
        self.assertGreater(time.monotonic() - t0, 1.0)
        st, now = self.workers()
        self.assertEqual(now[1], pids[1])
        self.assertNotEqual(now[0], pids[0])
        self.assertEqual([w["state"] for w in st["workers"]], ["ready", "ready"])
        self.assertEqual(st["pid"], corral.pid)

    def test_a_backoff_crosses_the_upgrade_with_its_deadline(self):
        corral = self.start(count=2, extra=["--min-uptime", "30s", "--restart-delay", "3s"])
        _, pids = self.workers()
        victim = pids[1]
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # The first quick crash is respawned at once; the respawn, killed young, waits out the 3 s backoff.
        h.wait_until(lambda: self.workers()[1].get(1) not in (None, victim), h.scaled(10))
        second = self.workers()[1][1]
        killed = time.monotonic()
        os.kill(second, signal.SIGKILL)
        h.wait_until(lambda: 1 not in self.workers()[1], h.scaled(10))
        rc, out = self.upgrade()
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.workers()[1].get(0), pids[0])
        self.assertNotIn(1, self.workers()[1], "the slot was respawned before its backoff ended")
        h.wait_until(lambda: 1 in self.workers()[1], h.scaled(15), interval=0.05)
        waited = time.monotonic() - killed
        self.assertGreaterEqual(waited, 2.9, "the backoff was not honoured across the upgrade")
        h.wait_all_ready(self.control, 2)


if __name__ == "__main__":
    unittest.main()
