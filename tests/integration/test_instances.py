# SPDX-License-Identifier: MIT
"""Instances by name and the client's robustness (issue 11): default control sockets below /run/corral
(root) and $XDG_RUNTIME_DIR/corral (other users), `corral list`, finding the one instance, a second corral
of the same name refused; client timeouts against a mute or stopped corral, keepalives during a long
`reload --wait`; strict command lines and one exit code per kind of mistake; `corral check`; a reload
that changes what cannot change live says so to its client."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import corral_harness as h

NOBODY = 65534


class Instances(h.CorralTestCase):
    def unique(self, tag):
        return f"itest-{os.getpid()}-{tag}"

    def corral(self, *args, env=None, timeout=30, user=None):
        """Runs the corral client (or check) with ARGS: (exit code, stdout, stderr)."""
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
        p = subprocess.run(prefix + [h.corral_bin(), *map(str, args)], capture_output=True, text=True,
                           timeout=h.scaled(timeout), env=h.clean_env(env))
        return p.returncode, p.stdout, p.stderr

    def list_rows(self, **kw):
        rc, out, err = self.corral("list", **kw)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "PID", "STATE", "READY", "GENERATION", "CONTROL"])
        return {row[0]: row for row in (line.split() for line in lines[1:])}

    def start_named(self, instance, count=1, env=None, **kw):
        env = dict(env or {}, RUNTIME_DIRECTORY="")
        c = self.start_corral(["--name", instance, "--listen", f"127.0.0.1:{h.free_port()}", "--count", count,
                               "--cgroup-root", "none", "--", h.worker_bin()], env=env, **kw)
        return c

    @unittest.skipUnless(os.geteuid() == 0, "/run/corral is root's")
    def test_two_named_instances_side_by_side_as_root(self):
        a, b = self.unique("a"), self.unique("b")
        ca, cb = self.start_named(a, 2), self.start_named(b, 1)
        for name, count in ((a, 2), (b, 1)):
            h.wait_all_ready(f"/run/corral/{name}/control", count)
            self.assertEqual(os.stat(f"/run/corral/{name}").st_mode & 0o777, 0o700)
        rows = self.list_rows()
        self.assertEqual(rows[a][1:], [str(ca.pid), "running", "2/2", "1", f"/run/corral/{a}/control"])
        self.assertEqual(rows[b][1:], [str(cb.pid), "running", "1/1", "1", f"/run/corral/{b}/control"])

        rc, out, err = self.corral("status", a)
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith(f"{a}: corral "), out)
        self.assertIn(f"pid {ca.pid}: running", out)
        rc, out, err = self.corral("reload", "--wait", b)
        self.assertEqual((rc, out), (0, "generation 2\n"), err)
        self.assertEqual(self.list_rows()[b][4], "2")
        rc, out, err = self.corral("drain", a)
        self.assertEqual((rc, out), (0, "drained\n"), err)

        # A second corral of the same name is refused, naming the name; the first keeps running.
        dup = self.start_named(a, 1, name="dup")
        self.assertExitedWithin(dup, 10, expected=1)
        self.assertRegex(dup.output(), rf"Another corral is running as '{a}'.*--name")
        rc, _, err = self.corral("status", a)
        self.assertEqual(rc, 0, err)

        # Its directory goes with it; the other instance is untouched.
        self.assertEqual(ca.stop(timeout=20), 0)
        self.assertFalse(os.path.exists(f"/run/corral/{a}"))
        rc, out, err = self.corral("status", a)
        self.assertEqual(rc, 3, out + err)
        self.assertIn(f"not running: no control socket at '/run/corral/{a}/control'", err)
        self.assertNotIn(a, self.list_rows())
        self.assertIn(b, self.list_rows())

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "runs corral as nobody (needs root)")
    def test_user_instances_in_xdg_runtime_dir_and_the_only_one(self):
        xdg = tempfile.mkdtemp(prefix="corral-xdg-")
        self.addCleanup(shutil.rmtree, xdg, True)
        os.chown(xdg, NOBODY, NOBODY)
        os.chmod(xdg, 0o700)
        env = {"XDG_RUNTIME_DIR": xdg, "RUNTIME_DIRECTORY": ""}
        as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

        # No instance: exit 3, saying where it looked.
        rc, out, err = self.corral("status", env=env, user=NOBODY)
        self.assertEqual(rc, 3, out + err)
        self.assertIn(f"no corral is running (no control socket below '{xdg}/corral')", err)

        # One instance with the default name (the command's file name): found without a name.
        first = self.start_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--count", 1, "--cgroup-root", "none",
                                   "--", h.worker_bin()], env=env, prefix=as_nobody, name="first")
        control = f"{xdg}/corral/corral-test-worker/control"
        h.wait_until(lambda: os.path.exists(control), 10)
        st = os.stat(os.path.dirname(control))
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (NOBODY, 0o700))
        self.assertEqual(os.stat(f"{xdg}/corral").st_mode & 0o777, 0o700)

        def ready():
            rc, out, _ = self.corral("status", "--json", env=env, user=NOBODY)
            return rc == 0 and '"ready":1,' in out
        h.wait_until(ready, 15)
        rc, out, err = self.corral("status", env=env, user=NOBODY)
        self.assertEqual(rc, 0, err)
        self.assertIn(f"corral-test-worker: corral ", out)
        self.assertIn(f"   control: {control}", out)

        # A second one, named: now the name is needed, and the message lists both.
        second = self.start_named("second", 1, env=env, prefix=as_nobody)
        h.wait_until(lambda: os.path.exists(f"{xdg}/corral/second/control"), 10)
        rc, out, err = self.corral("status", env=env, user=NOBODY)
        self.assertEqual(rc, 64, out + err)
        self.assertIn("2 instances are running (corral-test-worker, second): name one", err)
        rows = self.list_rows(env=env, user=NOBODY)
        self.assertEqual(sorted(rows), ["corral-test-worker", "second"])
        self.assertEqual(rows["corral-test-worker"][1], str(first.pid))
        self.assertEqual(rows["second"][1], str(second.pid))

        # A stale socket (a SIGKILLed corral's) is not an instance: it is left out, and replaced at start.
        second.stop(signal.SIGKILL)
        self.assertTrue(os.path.exists(f"{xdg}/corral/second/control"))
        self.assertEqual(sorted(self.list_rows(env=env, user=NOBODY)), ["corral-test-worker"])
        rc, out, err = self.corral("status", env=env, user=NOBODY)
        self.assertEqual(rc, 0, err)
        again = self.start_named("second", 1, env=env, prefix=as_nobody, name="again")
        h.wait_until(lambda: "second" in self.list_rows(env=env, user=NOBODY) and
                     self.list_rows(env=env, user=NOBODY)["second"][1] == str(again.pid), 15)

        # Without XDG_RUNTIME_DIR a user's corral has no default place: it says so and runs without one.
        lone = self.start_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--count", 1, "--cgroup-root", "none",
                                  "--", h.worker_bin()], env={"RUNTIME_DIRECTORY": "", "XDG_RUNTIME_DIR": ""},
                                 prefix=as_nobody, name="lone")
        lone.wait_for_line(r"No control socket: XDG_RUNTIME_DIR is not set", 10)
        time.sleep(0.3)
        self.assertTrue(lone.running())


class Client(h.CorralTestCase):
    def corral(self, *args, env=None, timeout=30):
        t0 = time.monotonic()
        p = subprocess.run([h.corral_bin(), *map(str, args)], capture_output=True, text=True,
                           timeout=h.scaled(timeout), env=h.clean_env(env))
        return p.returncode, p.stdout, p.stderr, time.monotonic() - t0

    def test_a_mute_socket_times_out(self):
        """A socket that accepts and says nothing, and one whose backlog is full and never accepts: the
        client gives up after --timeout with exit 75 instead of hanging."""
        path = os.path.join(self.tmp, "mute")
        mute = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mute.bind(path)
        mute.listen(1)
        self.addCleanup(mute.close)
        rc, out, err, took = self.corral("status", "--control", path, "--timeout", "1s")
        self.assertEqual(rc, 75, out + err)
        self.assertIn(f"corral: no answer on '{path}' within 1s", err)
        self.assertTrue(0.9 <= took < h.scaled(4), took)

        # Fill the backlog without accepting: connect() itself has to wait, and gives up in time too.
        full = os.path.join(self.tmp, "full")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server.bind(full)
        server.listen(0)
        self.addCleanup(server.close)
        fillers = []
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.setblocking(False)
            try:
                s.connect(full)
            except BlockingIOError:
                s.close()
                break
            fillers.append(s)
        self.addCleanup(lambda: [s.close() for s in fillers])
        rc, out, err, took = self.corral("reload", "--control", full, "--timeout", "500ms")
        self.assertEqual(rc, 75, out + err)
        self.assertTrue(took < h.scaled(3), took)

    def test_what_is_not_a_corral(self):
        plain = os.path.join(self.tmp, "file")
        open(plain, "w").close()
        rc, _, err, _ = self.corral("status", "--control", plain)
        self.assertEqual(rc, 3)
        self.assertEqual(err, f"corral: '{plain}' is not a socket: not a corral control socket\n")
        stale = os.path.join(self.tmp, "stale")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.bind(stale)
        s.close()
        rc, _, err, _ = self.corral("status", "--control", stale)
        self.assertEqual(rc, 3)
        self.assertIn("nothing listens on", err)
        rc, _, err, _ = self.corral("status", "--control", os.path.join(self.tmp, "none"))
        self.assertEqual(rc, 3)
        self.assertIn("not running: no control socket at", err)

    def test_reload_wait_outlasts_the_timeout_but_not_a_stopped_corral(self):
        """A roll of about 3 s with --timeout 1s: keepalives carry the wait. A corral stopped (SIGSTOP)
        during the roll is noticed within the timeout."""
        control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{h.free_port()}", "--count", 1, "--control", control,
                               "--ready-timeout", "30s", "--", h.worker_bin(), "--ready-delay", "3"])
        h.wait_all_ready(control, 1, timeout=20)
        rc, out, err, took = self.corral("reload", "--wait", "--timeout", "1s", "--control", control)
        self.assertEqual((rc, out), (0, "generation 2\n"), err)
        self.assertGreater(took, 2.5)

        proc = subprocess.Popen([h.corral_bin(), "reload", "--wait", "--timeout", "1s", "--control", control],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.clean_env())
        try:
            time.sleep(0.5)
            os.kill(c.pid, signal.SIGSTOP)
            t0 = time.monotonic()
            out, err = proc.communicate(timeout=h.scaled(10))
            took = time.monotonic() - t0
        finally:
            os.kill(c.pid, signal.SIGCONT)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 75, out + err)
        self.assertIn("within 1s", err)
        self.assertLess(took, h.scaled(3))
        h.wait_all_ready(control, 1, timeout=20)

    def test_command_line_mistakes(self):
        cases = [
            (["top"], 64, "corral: error: unknown verb 'top'; the verbs are check, list, status, reload, recycle, "
                          "drain, undrain, upgrade, and a worker command goes after --"),
            (["--count", "2", "/bin/true"], 64, "unexpected argument '/bin/true': the worker command goes after --"),
            (["--check", "1s", "--", "/bin/true"], 64, "corral: error: unknown option '--check'; see --help"),
            (["--cou", "2", "--", "/bin/true"], 64, "unknown option '--cou'"),
            (["--count"], 64, "option '--count' needs a value"),
            (["-Z"], 64, "unknown option '-Z'"),
            (["--log-level", "verbose", "--", "/bin/true"], 78, "--log-level: invalid value 'verbose'"),
            (["--count", "lots", "--", "/bin/true"], 78, "count"),
            (["status", "--jso"], 64, "status: unknown option '--jso'"),
            (["status", "--timeout", "soon"], 78, "--timeout: invalid duration 'soon'"),
            (["status", "a", "b"], 64, "status: unexpected argument 'b'"),
            (["status", "a/b"], 64, "'a/b' is not an instance name"),
            (["recycle"], 64, "usage: corral recycle SLOT [NAME]"),
            (["status", "--wait"], 64, "--wait goes with reload"),
            (["--name", "a/b", "--", "/bin/true"], 78, "--name: invalid value 'a/b'"),
        ]
        for args, code, message in cases:
            with self.subTest(args=args):
                rc, out, err, _ = self.corral(*args, env={"RUNTIME_DIRECTORY": ""})
                self.assertEqual(rc, code, out + err)
                self.assertIn(message, err)
                self.assertTrue(err.startswith("corral: "), err)
                self.assertNotIn(h.corral_bin(), err)

    def test_help_and_docs_agree_on_exit_codes(self):
        rc, out, err, _ = self.corral("--help")
        self.assertEqual(rc, 0, err)
        text = " ".join(out.split("Exit status:")[1].split())
        for code in ("0 stopped cleanly", "1 startup failure", "64 usage error", "78 configuration error",
                     "3 corral not running", "4 permission denied", "75 no answer in time"):
            self.assertIn(code, text)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        man = open(os.path.join(root, "docs", "corral.8.scd")).read()
        readme = open(os.path.join(root, "README.md")).read()
        for code in ("64", "75", "78", "3", "4"):
            self.assertTrue(re.search(rf"^\*{code}\*$", man, re.M), f"corral(8) does not document exit status {code}")
            self.assertTrue(re.search(rf"^\| {code} \|", readme, re.M), f"README does not document exit status {code}")
        for verb in ("check", "list", "status", "reload", "recycle", "drain", "undrain", "upgrade"):
            self.assertTrue(re.search(rf"^\*corral (\w+\*\|\*)?{verb}\*", man, re.M), f"corral(8) does not document {verb}")


class Check(h.CorralTestCase):
    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_good_and_bad_files(self):
        good = self.write("good.conf", f"[Service]\nName=shop\n[Worker]\nExecStart={h.worker_bin()} --greeting hi\n"
                                       "Count=3\n[Socket]\nListen=127.0.0.1:8080\n[Health]\nListen=127.0.0.1:9100\n")
        p = subprocess.run([h.corral_bin(), "check", "--config", good], capture_output=True, text=True,
                           timeout=h.scaled(10), env=h.clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, f"{good}: ok: shop, 3 workers of {h.worker_bin()}, ready by notify; sockets: "
                                   "127.0.0.1:8080; health: 127.0.0.1:9100\n")
        # Options override the file, as at start; nothing was started or bound.
        p = subprocess.run([h.corral_bin(), "check", "--config", good, "--count", "1", "--ready-mode", "exec"],
                           capture_output=True, text=True, timeout=h.scaled(10), env=h.clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("ok: shop, 1 workers of", p.stdout)
        self.assertIn("ready by exec", p.stdout)

        for name, text, message in [
                ("typo.conf", "[Worker]\nExecStart=/bin/true\nCont=3\n", r"typo.conf:3: \[Worker\] Cont=: unknown key"),
                ("count.conf", "[Worker]\nExecStart=/bin/true\nCount=-1\n", r"count.conf:3: .*Count="),
                ("listen.conf", "[Worker]\nExecStart=/bin/true\n[Socket]\nListen=127.0.0.1:99999\n",
                 r"listen.conf:4: .*Listen="),
                ("exec.conf", "[Worker]\nExecStart=/nonexistent/app\n", r"ExecStart=: cannot run '/nonexistent/app'"),
                ("empty.conf", "[Worker]\nCount=2\n", r"ExecStart=")]:
            with self.subTest(name=name):
                path = self.write(name, text)
                p = subprocess.run([h.corral_bin(), "check", "-c", path], capture_output=True, text=True,
                                   timeout=h.scaled(10), env=h.clean_env())
                self.assertEqual(p.returncode, 78, p.stdout + p.stderr)
                self.assertEqual(p.stdout, "")
                self.assertRegex(p.stderr, message)
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)

    def test_reload_tells_the_client_what_cannot_change(self):
        port, other = h.free_port(), h.free_port()
        control = os.path.join(self.tmp, "control")
        conf = self.write("app.conf", f"[Worker]\nExecStart={h.worker_bin()}\nCount=1\n[Socket]\n"
                                      f"Listen=127.0.0.1:{port}\n")
        self.start_corral(["--config", conf, "--control", control])
        h.wait_all_ready(control, 1)
        self.write("app.conf", f"[Worker]\nExecStart={h.worker_bin()}\nCount=1\n[Socket]\nListen=127.0.0.1:{other}\n")
        for args in (["reload", "--wait"], ["reload"]):
            p = subprocess.run([h.corral_bin(), *args, "--control", control], capture_output=True, text=True,
                               timeout=h.scaled(30), env=h.clean_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"^(generation|reloading to generation) \d+\n$")
            self.assertEqual(p.stderr, "corral: warning: [Socket] Listen= changed, but the listening sockets cannot "
                                       "change while corral runs: restart corral to apply it\n")
            h.wait_all_ready(control, 1)
        # A failed reload names why, to the client too.
        self.write("app.conf", "[Worker]\nExecStart=/nonexistent/app\n")
        p = subprocess.run([h.corral_bin(), "reload", "--control", control], capture_output=True, text=True,
                           timeout=h.scaled(30), env=h.clean_env())
        self.assertEqual(p.returncode, 1)
        self.assertIn("corral: reload failed: ExecStart=: cannot run '/nonexistent/app'", p.stderr)
        h.http_get(port, "/")


if __name__ == "__main__":
    unittest.main()
