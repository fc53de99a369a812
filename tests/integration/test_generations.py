# SPDX-License-Identifier: MIT
"""Every live generation keeps its own settings: after a superseding reload (generation 2, then generation 3
while the first roll still runs) the generation-2 workers that still run or drain are stopped with
generation 2's StopTimeoutSec and watched with its WorkerWatchdogSec, not generation 3's (issue 9, item 2)."""

import json
import os
import re
import resource
import select
import signal
import subprocess
import time
import unittest

import corral_harness as h

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def ignores_sigterm(pid):
    """True when PID exists and has SIGTERM set to SIG_IGN (/proc/PID/status SigIgn). The test worker does
    that early in main() with --ignore-sigterm: a process caught between fork and exec, or before that line,
    would still die of SIGTERM, and is no witness."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & SIGTERM_BIT)
    except OSError:
        pass
    return False


def exited(pidfd):
    """True once the process behind PIDFD has exited (a pidfd polls readable then)."""
    return bool(select.select([pidfd], [], [], 0)[0])


class Generations(h.CorralTestCase):
    def write_config(self, worker_args, count, stop_timeout, extra=""):
        path = os.path.join(self.tmp, "corral.conf")
        command = " ".join([h.worker_bin()] + list(worker_args))
        with open(path + ".new", "w") as f:
            f.write(f"[Worker]\nExecStart={command}\nCount={count}\nReadyTimeoutSec=30s\n"
                    f"StopTimeoutSec={stop_timeout}\n{extra}"
                    # The roll this test relies on: one replacement at a time, start-first.
                    f"[Reload]\nMaxSurge=1\nMaxUnavailable=0\n")
        os.rename(path + ".new", path)
        return path

    def start_pool(self, worker_args, count, stop_timeout, extra="", args=()):
        self.port = h.free_port()
        self.control = os.path.join(self.tmp, "control")
        self.notify = self.notify_receiver()
        conf = self.write_config(worker_args, count, stop_timeout, extra)
        c = self.start_corral(["--config", conf, "--listen", f"127.0.0.1:{self.port}", "--control", self.control,
                               *args], notify_socket=self.notify.path)
        self.notify.wait_for("READY", "1", timeout=20)
        return c

    def corralctl(self, *args):
        p = subprocess.run([h.corral_bin(), *args, "--control", self.control], capture_output=True, text=True,
                           timeout=h.scaled(30), env=h.clean_env())
        return p.returncode, p.stdout, p.stderr

    def status(self, corral):
        rc, out, err = self.corralctl("status", "--json")
        self.assertIn(rc, (0, 1), err)
        st = json.loads(out)
        for w in st["workers"]:
            corral.tracker.track(w["pid"])  # killed by pidfd at cleanup whatever happens
        return st

    def reload(self):
        rc, out, err = self.corralctl("reload")
        self.assertEqual(rc, 0, f"reload refused: {out}{err}")

    def wait_mid_roll_to_2(self, corral, witness, starting_too=False):
        """Waits until the roll to generation 2 is under way and not done: generation 2 is the target, at
        least one generation-2 worker is ready and a generation-1 worker still serves (so the roll has a
        slot left to replace, and generation 2 is not the stable one). WITNESS(pid) must hold for that
        ready worker, and with STARTING_TOO for a generation-2 replacement still starting as well.
        Returns the status."""
        def mid_roll():
            st = self.status(corral)
            rows = st["workers"]
            if st["generation"] != 2 or st["state"] != "reloading":
                return None
            if not any(w["generation"] == 1 and w["state"] == "ready" for w in rows):
                return None
            for state in ("ready", "starting") if starting_too else ("ready",):
                if not any(w["generation"] == 2 and w["state"] == state and witness(w["pid"]) for w in rows):
                    return None
            return st
        return h.wait_until(mid_roll, 20, interval=0.02,
                            message=f"never saw the roll to generation 2 half done: {self.status(corral)}")

    def shut_down_at_once(self, corral, pids):
        """SIGTERM, then once corral acted on it a second SIGTERM, which kills every worker at once. Only
        while a worker that ignores SIGTERM keeps corral running: a second SIGTERM that comes while corral
        is exiting anyway may find it with its signal sources gone."""
        corral.send_signal(signal.SIGTERM)
        self.notify.wait_for("STOPPING", "1", timeout=5)
        corral.send_signal(signal.SIGTERM)
        rc = corral.wait(5)
        self.assertGreaterEqual(rc, 0, f"corral died of signal {-rc}")
        self.assertAllGone(pids, timeout=3)

    def test_superseded_generation_keeps_its_stop_timeout(self):
        """Generation 2 ignores SIGTERM and has StopTimeoutSec=30s; generation 3, which supersedes it
        mid-roll, has 1s. A generation-2 worker that got SIGTERM after that must still be alive 4 s later:
        killed at ~1 s means it was stopped with generation 3's setting."""
        count = 4
        hold = min(h.scaled(4), 20)  # well past 1 s, well short of 30 s
        c = self.start_pool(["--ready-delay", "0.2"], count, "5s")

        # Generation 2: each replacement takes 2 s to be ready, so the roll over 4 slots takes about 8 s.
        self.write_config(["--ignore-sigterm", "--ready-delay", "2"], count, "30s")
        self.reload()
        # Wait for a ready generation-2 worker (generation 3 will replace it start-first, then stop it) and
        # one still starting (superseded: stopped at once), both already ignoring SIGTERM.
        mid = self.wait_mid_roll_to_2(c, ignores_sigterm, starting_too=True)

        # Witnesses: the generation-2 workers that ignore SIGTERM already (the ready ones, which generation 3
        # replaces start-first and then stops; a starting one, whose roll is superseded, is stopped at once).
        victims = {w["pid"]: f'slot {w["slot"]}, {w["state"]}' for w in mid["workers"]
                   if w["generation"] == 2 and ignores_sigterm(w["pid"])}
        self.assertGreaterEqual(len(victims), 2, mid)
        pidfds = {pid: os.pidfd_open(pid) for pid in victims}
        self.addCleanup(lambda: [os.close(fd) for fd in pidfds.values()])

        # Generation 3 supersedes it: it drains on SIGTERM and has a short stop timeout.
        self.write_config(["--ready-delay", "0.5"], count, "1s")
        self.reload()
        t_reload = time.monotonic()
        after = self.status(c)
        self.assertEqual(after["generation"], 3,
                         f"the second reload did not make generation 3 the target: {after}")

        # Watch each witness: when corral is first seen stopping it, and when (if) it dies.
        seen_stopping, died, generation_then = {}, {}, {}
        deadline = t_reload + h.scaled(20)
        while True:
            st = self.status(c)
            now = time.monotonic()
            for w in st["workers"]:
                if w["pid"] in victims and w["state"] == "stopping" and w["pid"] not in seen_stopping:
                    seen_stopping[w["pid"]] = now
                    generation_then[w["pid"]] = st["generation"]
            for pid, fd in pidfds.items():
                if pid not in died and exited(fd):
                    died[pid] = time.monotonic()
            settled = [seen_stopping.get(p, died.get(p)) for p in victims]
            if all(t is not None for t in settled) and now >= max(settled) + hold:
                break
            if now >= deadline:
                break
            time.sleep(0.05)
        log_before_shutdown = c.output()

        def describe(pid):
            seen, gone = seen_stopping.get(pid), died.get(pid)
            s = f"pid {pid} ({victims[pid]} at the reload)"
            s += f": seen stopping {seen - t_reload:+.2f}s after the reload" if seen else ": never seen stopping"
            if gone is not None:
                s += f", dead {gone - (seen or t_reload):.2f}s after" + (" that" if seen else " the reload")
            else:
                s += ", still alive"
            return s
        report = "; ".join(describe(p) for p in sorted(victims))

        missing = [p for p in victims if p not in seen_stopping and p not in died]
        self.assertFalse(missing, f"generation-2 workers never stopped within {h.scaled(20):.0f}s: {report}")
        # Generation 3 was the target while they were stopped: this is the case the issue is about.
        self.assertEqual(set(generation_then.values()), {3}, report)
        killed = [p for p in victims if p in died]
        self.assertFalse(killed, "generation-2 workers (StopTimeoutSec=30s) were killed well before their stop "
                                 f"timeout, as with generation 3's StopTimeoutSec=1s: {report}")
        # Secondary, from the log: corral did not kill any of them for not stopping in time.
        for pid in victims:
            self.assertNotRegex(log_before_shutdown, rf"\(pid {pid}\) did not stop within", report)
            self.assertTrue(h.pid_alive(pid), report)

        # The superseding reload landed mid-roll: only the roll to generation 3 completed, and every slot
        # is generation 3 now (the stopping witnesses aside).
        h.wait_until(lambda: self.status(c)["state"] == "running", 15,
                     message="the roll to generation 3 never ended")
        final = self.status(c)
        self.assertEqual(final["reloads_ok"], 1,
                         f"the roll to generation 2 completed before it was superseded: {final}")
        self.assertEqual({w["generation"] for w in final["workers"] if w["state"] != "stopping"}, {3}, final)

        self.shut_down_at_once(c, list(victims))

    def test_superseded_generation_keeps_its_worker_watchdog(self):
        """Generation 2 pings WATCHDOG=1 every 2 s under WorkerWatchdogSec=6s; generation 3, which supersedes
        it mid-roll, has WorkerWatchdogSec=1s and takes 10 s to be ready, so the generation-2 workers keep
        serving meanwhile. Their pings must re-arm 6 s, not 1 s: no watchdog may fire."""
        count = 3
        status_port = h.free_port()
        # Should the watchdog fire, the worker is aborted (SIGABRT) when stopped: no core file from that.
        core = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, core[1]))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_CORE, core)
        c = self.start_pool(["--ready-delay", "0.2"], count, "5s",
                            args=["--status-listen", f"127.0.0.1:{status_port}"])

        def watchdog_recycles():
            text = h.http_get(status_port, "/metrics").text
            m = re.search(r'^corral_worker_recycles_total\{reason="watchdog"\} (\d+)$', text, re.M)
            self.assertIsNotNone(m, text)
            return int(m.group(1))

        self.write_config(["--watchdog", "--ready-delay", "1.5"], count, "5s", "WorkerWatchdogSec=6s\n")
        self.reload()
        mid = self.wait_mid_roll_to_2(c, lambda pid: True)
        self.write_config(["--watchdog", "--ready-delay", "10"], count, "5s", "WorkerWatchdogSec=1s\n")
        self.reload()
        t_reload = time.monotonic()
        witnesses = [w["pid"] for w in mid["workers"] if w["generation"] == 2 and w["state"] == "ready"]
        self.assertEqual(self.status(c)["generation"], 3)

        # Two and a half ping periods of generation 2; generation 3 is not ready yet (10 s), so nothing
        # replaces the witnesses meanwhile.
        time.sleep(max(0.0, t_reload + 5.0 - time.monotonic()))
        st = self.status(c)
        rows = {w["pid"]: w for w in st["workers"]}
        self.assertEqual(st["generation"], 3, st)
        self.assertFalse([w for w in st["workers"] if w["generation"] == 3 and w["state"] == "ready"],
                         f"generation 3 became ready too early for this test: {st}")
        for pid in witnesses:
            self.assertEqual(rows.get(pid, {}).get("state"), "ready", f"witness {pid} no longer serves: {st}")
        self.assertEqual(watchdog_recycles(), 0,
                         "the watchdog fired for a generation-2 worker that pings every 2 s under its "
                         "WorkerWatchdogSec=6s (generation 3 has 1s)")
        for pid in witnesses:
            self.assertNotRegex(c.output(), rf"\(pid {pid}\) sent no WATCHDOG=1")

        # Every worker here drains on SIGTERM: one SIGTERM stops them all at once.
        self.assertEqual(c.stop(signal.SIGTERM, timeout=10), 0)
        self.assertAllGone([w["pid"] for w in st["workers"]], timeout=3)


if __name__ == "__main__":
    unittest.main()
