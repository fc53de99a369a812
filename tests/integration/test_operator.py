# SPDX-License-Identifier: MIT
"""What an operator reaches for: signal relay, the per-worker watchdog, corral status and its exit codes,
recycle on request and from the worker (RECYCLE=1), and the pid file."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import unittest

import corral_harness as h


class Operator(h.CorralTestCase):
    def start(self, count, *extra, worker_args=()):
        self.port = h.free_port()
        self.control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--count", count, "--control", self.control,
                               *extra, "--", h.worker_bin(), *worker_args])
        h.wait_all_ready(self.control, count)
        return c

    def ctl(self, *args):
        p = subprocess.run([h.corral_bin(), *args, "--control", self.control], capture_output=True, text=True,
                           timeout=h.scaled(30), env=h.clean_env())
        return p.returncode, p.stdout, p.stderr

    def status(self):
        rc, out, err = self.ctl("status", "--json")
        return rc, json.loads(out)

    def wait_gone_and_replaced(self, pid, timeout=15):
        """Waits until corral status lists PID no more (a worker is listed until it was reaped, stopping
        included) and every slot is ready again."""
        def done():
            st = self.status()[1]
            return pid not in {w["pid"] for w in st["workers"]} and st["ready"] == st["wanted"]
        h.wait_until(done, timeout, message=f"worker {pid} still listed, or its slot not ready again")

    def test_relayed_signals_reach_every_worker_and_others_are_ignored(self):
        c = self.start(3, "--relay-signals", "SIGUSR2 SIGWINCH")
        c.send_signal(signal.SIGUSR2)
        for slot in range(3):
            c.wait_for_line(rf"worker {slot} got SIGUSR2", timeout=10)
        c.wait_for_line(r"relayed SIGUSR2 to 3 workers", timeout=5)
        # USR1 is not relayed here: corral must neither die of it nor pass it on.
        c.send_signal(signal.SIGUSR1)
        c.wait_for_line(r"ignoring SIGUSR1", timeout=5)
        self.assertTrue(c.running())
        self.assertEqual(c.output().count("got SIGUSR1"), 0)
        self.assertEqual(h.http_get(self.port).status, 200)

    def test_relay_signals_refuses_what_corral_owns(self):
        p = subprocess.run([h.corral_bin(), "--listen", "127.0.0.1:0", "--relay-signals", "SIGUSR1 SIGTERM", "--",
                            h.worker_bin()], capture_output=True, text=True, timeout=h.scaled(10), env=h.clean_env())
        self.assertEqual(p.returncode, 78)
        self.assertIn("SIGTERM cannot be relayed", p.stderr)

    def test_hung_worker_is_replaced_start_first_and_aborted(self):
        c = self.start(2, "--worker-watchdog", "1s", worker_args=["--watchdog"])
        before = {w["pid"] for w in self.status()[1]["workers"]}
        env = h.http_get(self.port, "/env").env()
        self.assertEqual(env["WATCHDOG_USEC"], "1000000")
        self.assertEqual(env["WATCHDOG_PID"], env["LISTEN_PID"])
        time.sleep(2.5)  # healthy workers keep pinging: nothing is replaced
        self.assertEqual({w["pid"] for w in self.status()[1]["workers"]}, before)
        self.assertNotIn("WATCHDOG=1 for", c.output())

        load = h.LoadGenerator(self.port, concurrency=4, duration=h.scaled(30), keepalive=False, timeout=10).start()
        try:
            time.sleep(0.5)
            hang_at = time.monotonic()
            try:
                h.http_get(self.port, "/hang", timeout=0.5)
            except Exception:
                pass  # the hung worker never answers
            match = c.wait_for_line(r"worker \d \(pid (\d+)\) sent no WATCHDOG=1", timeout=10)
            hung = int(match.group(1))
            self.assertIn(hung, before)
            c.wait_for_line(rf"\(pid {hung}\) killed by signal ABRT", timeout=15)
            time.sleep(0.5)
        finally:
            load.stop()
        # What the hung worker held when it hung is lost with it; every request started after that was
        # served by the others, and the replacement was ready before the hung one was stopped.
        late = [r for r in load.records() if r.start > hang_at + 0.05]
        self.assertTrue(late)
        self.assertEqual([r for r in late if not r.ok], [])
        out = c.output()
        self.assertLess(out.index("sent no WATCHDOG=1"), out.index(f"(pid {hung}) killed by signal ABRT"))
        rc, st = self.status()
        self.assertEqual(rc, 0)
        self.assertNotIn(hung, {w["pid"] for w in st["workers"]})
        self.assertEqual(len(st["workers"]), 2)

    def test_status_table_json_and_exit_codes(self):
        c = self.start(2)
        rc, out, err = self.ctl("status")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        blank = lines.index("")
        self.assertRegex(lines[0], rf"^corral-test-worker: corral \S+, pid {c.pid}: running, generation 1, 2/2 workers ready$")
        # corral's own facts, as `systemctl status` shows a unit's, then the workers.
        facts = dict(line.strip().split(": ", 1) for line in lines[1:blank])
        self.assertEqual(list(facts), ["since", "command", "sockets", "health", "control", "config", "accounting",
                                       "memory", "reloads"], out)
        self.assertEqual(facts["command"], shlex.join([h.worker_bin()]))
        self.assertRegex(facts["sockets"], rf"^listen=127\.0\.0\.1:{self.port} \(0 waiting of \d+\)$")
        self.assertEqual((facts["health"], facts["config"]), ("none", "none (command line only)"))
        self.assertRegex(facts["accounting"], r"^(cgroup-v2|hybrid|proc), memory from \S+$")
        self.assertRegex(facts["memory"], r"^\S+ in 2 workers$")
        self.assertEqual(facts["reloads"], "0 ok, 0 failed")
        self.assertRegex(lines[blank + 1], r"^SLOT\s+PID\s+GENERATION\s+STATE\s+UPTIME\s+READY AFTER\s+MEMORY\s+"
                                           r"CPU%\s+RESTARTS\s+LAST EXIT$")
        rows = [line.split() for line in lines[blank + 2:]]
        self.assertEqual([r[0] for r in rows], ["0", "1"], out)
        self.assertTrue(all(len(line) <= 100 for line in lines[blank:]), out)
        rc, st = self.status()
        self.assertEqual((st["name"], st["pid"], st["command"], st["config"], st["health_listen"], st["processes"]),
                         ("corral-test-worker", c.pid, [h.worker_bin()], None, None, 2))
        self.assertEqual(st["control"], facts["control"])
        self.assertEqual(st["sockets"], [{"name": "listen", "address": f"127.0.0.1:{self.port}", "type": "stream",
                                          "queued": 0, "backlog": st["sockets"][0]["backlog"]}])
        self.assertGreater(st["sockets"][0]["backlog"], 0)
        version = subprocess.run([h.corral_bin(), "--version"], capture_output=True, text=True, timeout=h.scaled(10))
        self.assertEqual(f"corral {st['version']}\n", version.stdout)
        # After a crash, the slot's row says how it ended.
        victim = int(rows[1][1])
        os.kill(victim, signal.SIGKILL)
        def replaced():
            st = self.status()[1]  # one snapshot for both conditions
            return st["ready"] == 2 and victim not in {w["pid"] for w in st["workers"]}
        h.wait_until(replaced, 10, message="not replaced")
        rc, out, err = self.ctl("status")
        self.assertRegex(out.splitlines()[-1], r"^1 .* 1\s+KILL \S+ ago$", out)
        rc, st = self.status()
        self.assertEqual(st["workers"][1]["last_exit"]["signal"], "KILL")
        self.assertEqual((rc, st["state"], st["ready"], st["wanted"]), (0, "running", 2, 2))
        # Not running: exit 3.
        p = subprocess.run([h.corral_bin(), "status", "--control", os.path.join(self.tmp, "nope")],
                           capture_output=True, text=True, timeout=h.scaled(10))
        self.assertEqual(p.returncode, 3)
        self.assertIn("not running", p.stderr)

    def test_status_json_is_valid_against_its_schema(self):
        """docs/status.schema.json describes what corral really prints: at rest with a config file and a
        health endpoint, after a worker was killed (a structured last_exit), and in the middle of a roll (a
        slot with a replacement starting beside its worker, ready_after_usec null)."""
        self.port, status_port = h.free_port(), h.free_port()
        self.control = os.path.join(self.tmp, "control")
        conf = os.path.join(self.tmp, "corral.conf")
        with open(conf, "w") as f:
            f.write(f"[Worker]\nExecStart={h.worker_bin()} --ready-delay 1\nCount=2\n"
                    f"[Socket]\nListen=http=127.0.0.1:{self.port}\n[Health]\nListen=127.0.0.1:{status_port}\n")
        self.start_corral(["--config", conf, "--control", self.control])
        h.wait_all_ready(self.control, 2, timeout=30)

        def status_text():
            rc, out, err = self.ctl("status", "--json")
            self.assertIn(rc, (0, 1), err)
            return out

        first = status_text()
        h.check_status_schema(first)
        st = json.loads(first)
        self.assertEqual((st["config"], st["health_listen"]), (conf, f"127.0.0.1:{status_port}"))
        # A real-time signal kills by default and has no fixed name: corral names it from SIGRTMIN. (Not
        # SIGSEGV: a worker built with ASan catches that one and exits 1.)
        victim = st["workers"][0]["pid"]
        os.kill(victim, signal.SIGRTMIN + 3)
        self.wait_gone_and_replaced(victim)
        crashed = status_text()
        h.check_status_schema(crashed)
        last = json.loads(crashed)["workers"][0]["last_exit"]
        self.assertEqual((last["code"], last["status"], last["signal"], last["core_dumped"]),
                         ("killed", signal.SIGRTMIN + 3, "RTMIN+3", False), last)
        self.assertRegex(self.ctl("status")[1], r"\n0 .* 1\s+RTMIN\+3 \S+ ago\n")

        self.assertEqual(self.ctl("reload")[0], 0)
        def mid_roll():
            text = status_text()
            st = json.loads(text)
            return text if st["state"] == "reloading" and any(w["ready_after_usec"] is None for w in st["workers"]) \
                else None
        h.check_status_schema(h.wait_until(mid_roll, 10, message="no replacement ever seen starting"))

    def test_other_users_are_refused(self):
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv to act as another user")
        self.start(1)
        self.assertEqual(os.stat(self.control).st_mode & 0o777, 0o600)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", h.corral_bin(), "status",
                     "--control", self.control]
        p = subprocess.run(as_nobody, capture_output=True, text=True, timeout=h.scaled(10))
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("permission denied: ", p.stderr)  # the kernel refused the connect
        # Even with the file and its directory opened up, corral itself checks who asks (SO_PEERCRED).
        os.chmod(self.tmp, 0o755)
        os.chmod(self.control, 0o666)
        p = subprocess.run(as_nobody, capture_output=True, text=True, timeout=h.scaled(10))
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertEqual(p.stderr, "corral: permission denied\n")  # corral's own refusal
        self.assertEqual(self.ctl("status")[0], 0)

    def test_status_degraded_exits_1(self):
        port = h.free_port()
        self.control = os.path.join(self.tmp, "control")
        cmd, _ = h.spawn_counter_command(self.tmp, {"1": ["--exit-at-start", "3"], None: []})
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 2, "--control", self.control,
                               "--restart-prevent-exit-status", "3", "--", *cmd])
        c.wait_for_line(r"slot 1: exit status 3 is RestartPreventExitStatus=", timeout=20)
        h.wait_until(lambda: self.status()[1]["ready"] == 1, 10, message="slot 0 never ready")
        rc, st = self.status()
        self.assertEqual((rc, st["state"]), (1, "starting"))

    def test_recycle_on_request_and_from_the_worker(self):
        c = self.start(2)
        rc, st = self.status()
        by_slot = {w["slot"]: w["pid"] for w in st["workers"]}
        rc, out, err = self.ctl("recycle", "1")
        self.assertEqual(rc, 0, err)
        self.wait_gone_and_replaced(by_slot[1])
        rc, st = self.status()
        now = {w["slot"]: w["pid"] for w in st["workers"]}
        self.assertEqual(now[0], by_slot[0])
        self.assertNotEqual(now[1], by_slot[1])
        self.assertEqual({w["generation"] for w in st["workers"]}, {1})
        # A worker asking for it: RECYCLE=1 from the worker's own pid (GET /recycle makes it send one).
        victim = h.http_get(self.port, "/recycle")
        pid = int(victim.headers["X-Worker-Pid"])
        c.wait_for_line(rf"\(pid {pid}\) asked to be recycled", timeout=10)
        self.wait_gone_and_replaced(pid)
        rc, st = self.status()
        self.assertEqual(len(st["workers"]), 2)
        self.assertNotIn(pid, {w["pid"] for w in st["workers"]})
        self.assertEqual(st["state"], "running")

    def test_pid_file_is_written_and_removed(self):
        pid_file = os.path.join(self.tmp, "corral.pid")
        c = self.start(1, "--pid-file", pid_file)
        with open(pid_file) as f:
            self.assertEqual(f.read(), f"{c.pid}\n")
        self.assertEqual(c.stop(), 0)
        self.assertFalse(os.path.exists(pid_file))


if __name__ == "__main__":
    unittest.main()
