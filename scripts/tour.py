#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The headline, unattended (`scripts/demo.sh --tour`): a pool of test workers under a bounded keep-alive load on
127.0.0.1 goes through steady serving, a rolling reload, a SIGKILLed worker and a bad deploy that is rolled back;
each step prints the requests sent, the failed ones and the time it took. Exits 0 only if every step held: no
request failed and each step ended as it should. Then corral is stopped with SIGTERM and must exit 0.

Everything lives in a fresh temporary directory (the config file, the control socket, corral's log), the ports
are free ones picked at start, and the instance has its own name, so a running `scripts/demo.sh` is left alone.
The load client is the end-to-end tier's (tests/e2e/load.py), one run of it per step, so each step's figures
are exactly that step's answers."""

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from load import Load  # noqa: E402

CONFIG = """\
# Written by scripts/tour.py; the bad-deploy step rewrites ExecStart= and puts it back.
[Service]
Name={name}

[Worker]
ExecStart={exec_start}
Count={count}
ReadyTimeoutSec=5s
StopTimeoutSec=5s

[Socket]
Listen=127.0.0.1:{port}

[Health]
Listen=127.0.0.1:{health_port}
"""


class TourFailed(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def span(seconds):
    """A duration as people read it: milliseconds below a second."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def say(msg=""):
    print(msg, flush=True)


class Tour:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="corral-tour-")
        self.config = os.path.join(self.dir, "corral.conf")
        self.control = os.path.join(self.dir, "control")
        self.log_path = os.path.join(self.dir, "corral.log")
        self.port, self.health_port = free_port(), free_port()
        self.name = f"demo-tour-{os.getpid()}"
        self.good_exec = shlex.join([args.worker, "--drain-ms", "200"])
        self.corral = None
        self.rows = []
        self.stop_seconds = 0.0

    # -- corral ------------------------------------------------------------------------------------------------
    def write_config(self, exec_start):
        tmp = self.config + ".new"
        with open(tmp, "w") as f:
            f.write(CONFIG.format(name=self.name, exec_start=exec_start, count=self.args.count, port=self.port,
                                  health_port=self.health_port))
        os.replace(tmp, self.config)

    def client(self, *verb, timeout=30):
        """Runs `corral VERB... --control PATH`: (exit code, stdout, stderr)."""
        p = subprocess.run([self.args.corral, *verb, "--control", self.control], capture_output=True, text=True,
                           timeout=timeout)
        return p.returncode, p.stdout.strip(), p.stderr.strip()

    def status(self):
        rc, out, err = self.client("status", "--json", timeout=10)
        if rc not in (0, 1):
            raise TourFailed(f"corral status exited {rc}: {err}")
        return json.loads(out)

    def wait_pool(self, predicate, what, timeout=15):
        """Polls `corral status --json` until PREDICATE(status) holds; returns the status and the seconds it took."""
        t0 = time.monotonic()
        while True:
            if self.corral.poll() is not None:
                raise TourFailed(f"corral exited ({self.corral.returncode}) while waiting for {what}")
            s = self.status()
            if predicate(s):
                return s, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise TourFailed(f"no {what} after {timeout} s: {s['ready']}/{s['wanted']} ready, "
                                 f"{s['processes']} processes, generation {s['generation']}")
            time.sleep(0.02)

    def settled(self, s):
        """Every slot has a ready worker of the current generation and nothing else runs."""
        n = self.args.count
        return (s["ready"] == n and s["processes"] == n and
                all(w["state"] == "ready" and w["generation"] == s["generation"] for w in s["workers"]))

    def start(self):
        self.write_config(self.good_exec)
        log = open(self.log_path, "w")
        # Its own session: a Ctrl-C at the terminal reaches the tour, which stops corral itself.
        t0 = time.monotonic()
        self.corral = subprocess.Popen([self.args.corral, "--config", self.config, "--control", self.control],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + 10
        while not os.path.exists(self.control):
            if self.corral.poll() is not None or time.monotonic() > deadline:
                raise TourFailed("corral did not start")
            time.sleep(0.02)
        s, _ = self.wait_pool(self.settled, "ready pool")
        took = time.monotonic() - t0
        say(f"corral pid {self.corral.pid} (instance {self.name}): {s['ready']} workers ready on "
            f"http://127.0.0.1:{self.port}/ after {span(took)}; health on http://127.0.0.1:{self.health_port}/health")
        say(f"config {self.config}, control socket {self.control}, log {self.log_path}")
        say(f"load: {self.args.connections} keep-alive connections sending GET / during each step\n")

    def stop(self):
        """SIGTERM, then wait; returns corral's exit status (SIGKILL after 20 s, reported as a failure)."""
        if self.corral is None or self.corral.poll() is not None:
            return self.corral.returncode if self.corral else None
        t0 = time.monotonic()
        self.corral.send_signal(signal.SIGTERM)
        try:
            rc = self.corral.wait(20)
            self.stop_seconds = time.monotonic() - t0
            return rc
        except subprocess.TimeoutExpired:
            self.corral.kill()
            self.corral.wait(5)
            return None

    # -- steps -------------------------------------------------------------------------------------------------
    def step(self, title, action):
        """Runs ACTION under a fresh load; ACTION returns (held, outcome, short), SHORT the outcome for the table.
        Records one row of the table."""
        say(f"[{len(self.rows) + 1}] {title}")
        self.wait_pool(self.settled, "settled pool before the step")
        load = Load(self.port, self.args.connections, duration=60, timeout=5)
        result = {}
        thread = threading.Thread(target=lambda: result.update(load.run()), daemon=True)
        t0 = time.monotonic()
        thread.start()
        try:
            time.sleep(0.5)  # the load is flowing before anything happens
            held, outcome, short = action()
            time.sleep(0.5)  # and still flowing after
        finally:
            load.stop.set()
            thread.join(30)
        seconds = time.monotonic() - t0
        sent = result.get("ok", 0) + result.get("failed", 0)
        failed = result.get("failed", 0) if result else None
        if not result:
            held, outcome, short = False, outcome + "; the load client did not finish", "load client hung"
        elif result["ok"] == 0:
            held, outcome, short = False, outcome + "; no request was answered", "nothing answered"
        if failed:
            held, short = False, f"{failed} requests failed"
            outcome += f"; errors: {result['errors']}"
        gens = ",".join(result.get("generations", [])) or "-"
        retried = result.get("retried", 0)
        self.rows.append({"step": title, "sent": sent, "failed": failed, "retried": retried, "seconds": seconds,
                          "held": held, "generations": gens, "outcome": outcome, "short": short})
        say(f"    {'ok' if held else 'FAILED'}: {outcome}")
        say(f"    {sent} requests, {failed} failed ({retried} retried once on a fresh connection after their "
            f"keep-alive connection closed), answered by generation {gens}, {seconds:.2f} s\n")

    def steady(self):
        s = self.status()
        time.sleep(self.args.steady)
        after = self.status()
        held = after["generation"] == s["generation"] and [w["pid"] for w in after["workers"]] == \
            [w["pid"] for w in s["workers"]]
        return held, f"{after['ready']}/{after['wanted']} workers of generation {after['generation']} " \
                     f"served for {self.args.steady:g} s, none replaced", \
            f"{after['ready']} workers, generation {after['generation']}"

    def reload(self):
        before = self.status()
        t0 = time.monotonic()
        rc, out, err = self.client("reload", "--wait", timeout=60)
        took = time.monotonic() - t0
        say(f"    $ corral reload --wait  ->  exit {rc}: {out or err}")
        if rc != 0:
            return False, f"reload --wait failed (exit {rc}): {err}", f"reload --wait exit {rc}"
        s, _ = self.wait_pool(self.settled, "settled pool after the reload")
        held = s["generation"] == before["generation"] + 1
        return held, f"generation {before['generation']} -> {s['generation']}: {self.args.count} workers " \
                     f"replaced start-first in {span(took)}", \
            f"generation {before['generation']} -> {s['generation']} in {span(took)}"

    def kill(self):
        before = self.status()
        victim = before["workers"][0]
        say(f"    $ kill -KILL {victim['pid']}  (worker {victim['slot']})")
        t0 = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)

        def back(s):
            w = [w for w in s["workers"] if w["slot"] == victim["slot"]]
            return self.settled(s) and w and w[0]["pid"] != victim["pid"]
        s, _ = self.wait_pool(back, f"new worker in slot {victim['slot']}")
        took = time.monotonic() - t0
        new = [w for w in s["workers"] if w["slot"] == victim["slot"]][0]
        return True, f"worker {victim['slot']} (pid {victim['pid']}) back as pid {new['pid']}: seen ready " \
                     f"{span(took)} after the kill (polling corral status)", \
            f"worker {victim['slot']} back within {span(took)}"

    def bad_deploy(self):
        before = self.status()
        bad = shlex.join([self.args.worker, "--exit-at-start", "1"])
        self.write_config(bad)
        say(f"    ExecStart= now a build that exits at start: {bad}")
        try:
            t0 = time.monotonic()
            rc, out, err = self.client("reload", "--wait", timeout=60)
            took = time.monotonic() - t0
            say(f"    $ corral reload --wait  ->  exit {rc}: {err or out}")
        finally:
            self.write_config(self.good_exec)
            say("    ExecStart= restored")
        s, _ = self.wait_pool(self.settled, "settled pool after the rollback")
        pids_kept = sorted(w["pid"] for w in s["workers"]) == sorted(w["pid"] for w in before["workers"])
        problems = []
        if rc == 0:
            problems.append("reload --wait succeeded")
        if s["generation"] != before["generation"]:
            problems.append(f"generation {s['generation']}, not {before['generation']}")
        if not pids_kept:
            problems.append("the serving workers changed")
        if s["reloads_failed"] != before["reloads_failed"] + 1:
            problems.append("no failed reload counted")
        if problems:
            return False, "; ".join(problems), problems[0]
        return True, f"reload --wait failed (exit {rc}) in {span(took)}; still generation {s['generation']} on the " \
                     f"same {len(s['workers'])} workers", \
            f"refused (exit {rc}), kept generation {s['generation']}"

    # -- the whole run -----------------------------------------------------------------------------------------
    def table(self, stop_rc):
        say("  STEP              REQUESTS   FAILED  RETRIED   SECONDS  RESULT")
        for r in self.rows:
            failed = "-" if r["failed"] is None else r["failed"]
            say(f"  {r['step']:<17} {r['sent']:>8} {failed:>8} {r['retried']:>8} {r['seconds']:>9.2f}  "
                f"{'ok' if r['held'] else 'FAILED'}: {r['short']}")
        say(f"  {'clean stop':<17} {'-':>8} {'-':>8} {'-':>8} {self.stop_seconds:>9.2f}  "
            f"{'ok' if stop_rc == 0 else 'FAILED'}: SIGTERM, corral exited {stop_rc}")

    def run(self):
        t0 = time.monotonic()
        stop_rc = None
        error = None
        try:
            self.start()
            self.step("steady serving", self.steady)
            self.step("rolling reload", self.reload)
            self.step("SIGKILL a worker", self.kill)
            self.step("bad deploy", self.bad_deploy)
        except TourFailed as e:
            error = str(e)
        except KeyboardInterrupt:
            error = "interrupted"
        finally:
            stop_rc = self.stop()
        if error:
            say(f"tour: {error}")
        if stop_rc != 0:
            say(f"tour: corral did not stop cleanly: exit status {stop_rc}")
        self.table(stop_rc)
        passed = not error and stop_rc == 0 and len(self.rows) == 4 and all(r["held"] for r in self.rows)
        say(f"\ntour: {'PASSED' if passed else 'FAILED'} in {time.monotonic() - t0:.1f} s")
        if passed:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            say(f"tour: corral's log is {self.log_path}; its last lines:")
            with open(self.log_path, errors="replace") as f:
                for line in f.read().splitlines()[-20:]:
                    say(f"    {line}")
        return 0 if passed else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corral", required=True, help="the corral binary")
    ap.add_argument("--worker", required=True, help="the test worker (tests/corral-test-worker)")
    ap.add_argument("--count", type=int, default=4, help="workers (default 4)")
    ap.add_argument("--connections", type=int, default=8, help="keep-alive load connections (default 8)")
    ap.add_argument("--steady", type=float, default=3, help="seconds of the steady step (default 3)")
    args = ap.parse_args()
    for p in (args.corral, args.worker):
        if not os.access(p, os.X_OK):
            print(f"tour: '{p}' is not an executable", file=sys.stderr)
            return 78
    args.corral, args.worker = os.path.abspath(args.corral), os.path.abspath(args.worker)
    if args.count < 1 or args.connections < 1 or not 0 < args.steady <= 30:
        print("tour: --count and --connections must be at least 1, --steady above 0 and at most 30", file=sys.stderr)
        return 64
    # SIGTERM (a test's timeout, a supervisor) ends the tour the way Ctrl-C does: corral is stopped first.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return Tour(args).run()


if __name__ == "__main__":
    sys.exit(main())
