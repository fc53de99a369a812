# SPDX-License-Identifier: MIT
"""[Worker] User= and Group= (--user, --group): corral started as root runs its workers as another user,
dropping their privileges between fork and exec, and keeps root itself. The workers still get their
sockets, their READY=1 is still theirs (the notify attribution knows their uid), accounting and recycling
still work, and a reload can change the user. Unknown names and a corral that is not root are config errors
(exit 78) that name what is wrong."""

import grp
import os
import pwd
import shutil
import signal
import subprocess
import time
import unittest

import corral_harness as h

NOBODY = pwd.getpwnam("nobody")
DAEMON = pwd.getpwnam("daemon")


def ids(pid):
    """(real, effective, saved, fs) uids, the same gids, and the supplementary groups of PID."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return (tuple(map(int, fields["Uid"])), tuple(map(int, fields["Gid"])),
            sorted(map(int, fields["Groups"])))


def supplementary(user, gid):
    return sorted(set(os.getgrouplist(user, gid)))


@unittest.skipUnless(os.geteuid() == 0, "switching workers to another user needs root")
class Privileges(h.CorralTestCase):
    def setUp(self):
        super().setUp()
        # The worker's user must be able to reach the program: a copy in a directory anyone can enter, not
        # the build tree, which may sit below a private home.
        self.bin_dir = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin_dir)
        os.chmod(self.tmp, 0o711)
        self.worker = os.path.join(self.bin_dir, "corral-test-worker")
        shutil.copy(h.worker_bin(), self.worker)
        os.chmod(self.worker, 0o755)
        self.port = h.free_port()
        self.control = os.path.join(self.tmp, "control")
        self.conf = os.path.join(self.tmp, "app.conf")

    def write_config(self, user, group=None, count=2):
        with open(self.conf + ".new", "w") as f:
            f.write(f"[Worker]\nExecStart={self.worker}\nCount={count}\nReadyTimeoutSec=10s\nUser={user}\n"
                    + (f"Group={group}\n" if group else "")
                    + "[Recycle]\nCheckIntervalSec=200ms\nSamples=2\nMemoryMax=200M\n")
        os.rename(self.conf + ".new", self.conf)

    def status(self):
        rc, st = h.control_status(self.control)
        self.assertEqual(rc, 0, st)
        return st

    def assert_workers_run_as(self, st, uid, gid, groups):
        self.assertTrue(st["workers"], st)
        for w in st["workers"]:
            self.assertEqual(ids(w["pid"]), ((uid,) * 4, (gid,) * 4, groups), f"worker {w}")

    def reload(self, c, generation):
        p = subprocess.run([h.corral_bin(), "reload", "--wait", "--control", self.control], capture_output=True,
                           text=True, timeout=h.scaled(60), env=h.clean_env())
        return p.returncode, p.stdout + p.stderr

    def test_workers_run_as_nobody_and_a_reload_changes_the_user(self):
        self.write_config("nobody")
        notify = self.notify_receiver()
        c = self.start_corral(["--config", self.conf, "--listen", f"127.0.0.1:{self.port}",
                               "--control", self.control], notify_socket=notify.path)
        # corral's READY=1 comes only once both workers said READY=1 as nobody and were believed.
        notify.wait_for("READY", "1", timeout=h.scaled(20))
        st = self.status()
        self.assertEqual(st["state"], "running", st)
        self.assert_workers_run_as(st, NOBODY.pw_uid, NOBODY.pw_gid,
                                   supplementary("nobody", NOBODY.pw_gid))
        # corral itself keeps root.
        self.assertEqual(ids(c.pid)[0], (0, 0, 0, 0))
        # They serve on the sockets they were given; each in a cgroup leaf of its own, counted.
        answers = h.collect_workers(self.port, 2, timeout=10, corral=c)
        self.assertEqual(sorted(a.pid for a in answers.values()), sorted(w["pid"] for w in st["workers"]))
        for w in st["workers"]:
            with open(f"/proc/{w['pid']}/cgroup") as f:
                self.assertRegex(f.read(), rf"/worker-{w['slot']}-\d+\n")
        h.wait_until(lambda: all(w["memory_bytes"] > 0 for w in self.status()["workers"]), 10,
                     message="no memory figures for the workers")

        # Recycling by memory: the leaking worker is replaced by a ready one, also nobody's.
        load = h.LoadGenerator(self.port, concurrency=4, duration=h.scaled(30), keepalive=False, timeout=10).start()
        try:
            victim = h.http_get(self.port, "/leak/300").pid
            c.wait_for_line(rf"\(pid {victim}\) is recycled: memory", timeout=20)
            c.wait_for_line(rf"\(pid {victim}\) exited with status 0", timeout=20)
        finally:
            load.stop()
        self.assertEqual(load.summary()["failed"], 0, load.summary()["failure_reasons"])
        st = h.wait_until(lambda: (lambda s: s if len(s["workers"]) == 2 and victim not in
                                   [w["pid"] for w in s["workers"]] else None)(self.status()), 10)
        self.assert_workers_run_as(st, NOBODY.pw_uid, NOBODY.pw_gid, supplementary("nobody", NOBODY.pw_gid))

        # A reload to another user and group: the new generation runs as them, and is ready (notified).
        group = grp.getgrnam("adm") if "adm" in [g.gr_name for g in grp.getgrall()] else grp.getgrgid(DAEMON.pw_gid)
        self.write_config("daemon", group.gr_name)
        rc, out = self.reload(c, 2)
        self.assertEqual(rc, 0, out)
        st = h.wait_until(lambda: (lambda s: s if all(w["generation"] == 2 for w in s["workers"])
                                   and len(s["workers"]) == 2 else None)(self.status()), 20)
        self.assert_workers_run_as(st, DAEMON.pw_uid, group.gr_gid, supplementary("daemon", group.gr_gid))
        self.assertEqual(self.status()["notify_rejected"], 0, c.output())

        # A reload to a user that does not exist fails, naming it; the pool keeps serving as it was.
        self.write_config("no-such-user-corral")
        rc, out = self.reload(c, 3)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("unknown user 'no-such-user-corral'", out)
        st = self.status()
        self.assertTrue(all(w["generation"] == 2 for w in st["workers"]), st)
        self.assertEqual(h.http_get(self.port).status, 200)
        self.assertEqual(c.stop(timeout=15), 0, c.output())

    def test_workers_as_another_user_still_die_with_corral(self):
        # A change of credentials clears the parent-death signal: the child sets it again after
        # setresuid(), or these workers would serve on, unsupervised, after corral is SIGKILLed.
        c = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--count", 2, "--user", "nobody",
                               "--control", self.control, "--", self.worker])
        c.wait_for_line(r"all 2 workers ready", timeout=20)
        pids = [w["pid"] for w in self.status()["workers"]]
        self.assertTrue(all(ids(p)[0][0] == NOBODY.pw_uid for p in pids))
        c.send_signal(signal.SIGKILL)
        self.assertAllGone(pids, timeout=5)

    def run_corral(self, *args, preexec_fn=None):
        p = subprocess.run([h.corral_bin(), "--listen", f"127.0.0.1:{self.port}", *args, "--", self.worker],
                           capture_output=True, text=True, timeout=h.scaled(20), env=h.clean_env(),
                           preexec_fn=preexec_fn, cwd=self.tmp)
        return p.returncode, p.stderr

    def test_unknown_user_or_group_is_a_config_error(self):
        rc, err = self.run_corral("--user", "no-such-user-corral")
        self.assertEqual(rc, 78, err)
        self.assertIn("User=: unknown user 'no-such-user-corral'", err)
        rc, err = self.run_corral("--user", "nobody", "--group", "no-such-group-corral")
        self.assertEqual(rc, 78, err)
        self.assertIn("Group=: unknown group 'no-such-group-corral'", err)
        rc, err = self.run_corral("--user", "no body")
        self.assertEqual(rc, 78, err)
        self.assertIn("--user: invalid value 'no body'", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_not_root_cannot_switch_users(self):
        def become_nobody():
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)

        rc, err = self.run_corral("--user", "daemon", preexec_fn=become_nobody)
        self.assertEqual(rc, 78, err)
        self.assertIn(f"User=: corral runs as uid {NOBODY.pw_uid}, not root: it cannot start workers as user "
                      "'daemon'", err)


if __name__ == "__main__":
    unittest.main()
