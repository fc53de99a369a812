# SPDX-License-Identifier: MIT
"""The fleet tier: a real HAProxy (Debian's) in front of three corral instances, the "hosts" h1, h2 and h3,
all on 127.0.0.1. HAProxy reads each host's `[Health] AgentListen=` (agent-check: weight, drain) and
`/health/ready` (httpchk), and spreads a closed-loop keep-alive load (tests/e2e/load.py) over them while
contrib/fleet/roll.sh, or contrib/fleet/roll.yml under ansible-playbook, rolls a new release over the hosts one
at a time: drain --wait, deploy, reload --wait, undrain, wait until HAProxy takes the host back.

What must hold: no request fails, and HAProxy neither retried nor redispatched one (its own counters); at no
moment is more than one host out of HAProxy's rotation; each rolled host was seen by HAProxy as
"DRAIN (agent)"; at the end every host runs the new generation (corral status --json) and HAProxy has all
three UP at the weight their agents report. A bad release on h2 (workers that never become ready) stops the
roll there: roll.sh exits 1 naming h2, h1 runs the new release, h2 (rolled back by corral, undrained) and h3
(never touched) serve the old one, and still no request fails.

The tier needs haproxy and socat (roll.sh asks HAProxy's runtime API through it), and ansible-core for the
playbook: scripts/setup.sh --fleet installs them. A missing one is a skip that says so, and this file then
exits 77, which ctest reports as skipped, not passed; with CORRAL_REQUIRE_FLEET=1 (scripts/test.sh, after
setup.sh --fleet) a missing one is a failure. Every process is stopped through a pidfd and every file is in a
temporary directory that is removed."""

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import corral_harness as h

ROOT = os.path.normpath(os.path.join(h.HERE, "..", ".."))
FLEET = os.path.join(ROOT, "contrib", "fleet")
ROLL = os.path.join(FLEET, "roll.sh")
PLAYBOOK = os.path.join(FLEET, "roll.yml")
HAPROXY_EXAMPLE = os.path.join(FLEET, "haproxy.cfg")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from load import Load  # noqa: E402

HOSTS = ("h1", "h2", "h3")
COUNT = 2
BACKEND = "app"


def missing(what, package):
    """Skips the test, or fails it where the fleet's packages must be there (CI, after setup.sh --fleet)."""
    message = f"{what} is missing (Debian package {package}; scripts/setup.sh --fleet installs it)"
    if os.environ.get("CORRAL_REQUIRE_FLEET") == "1":
        raise AssertionError(message)
    raise unittest.SkipTest(message)


def need(program, package):
    # Debian puts haproxy in /usr/sbin, which a user's PATH often lacks.
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if not path:
        missing(program, package)
    return path


def runtime_api(sock, command, timeout=3):
    """One command to HAProxy's runtime API at SOCK (non-interactive: it answers and closes); the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(h.scaled(timeout))
        s.connect(sock)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(data)


def show_stat(sock):
    """`show stat` as {svname: {column: value}} for the backend's rows (servers and BACKEND) and FRONTEND."""
    rows = list(csv.reader(runtime_api(sock, "show stat").splitlines()))
    if not rows or not rows[0] or not rows[0][0].startswith("#"):
        raise AssertionError(f"show stat: no header in {rows[:2]}")
    header = [c.lstrip("# ") for c in rows[0]]
    out = {}
    for row in rows[1:]:
        if len(row) >= 2 and row[0] in (BACKEND, "fe"):
            out[row[1]] = dict(zip(header, row))
    return out


def servers_state(sock):
    """`show servers state BACKEND` as {srv_name: {column: value}}, columns named by its header."""
    lines = runtime_api(sock, f"show servers state {BACKEND}").splitlines()
    header = next((line.split()[1:] for line in lines if line.startswith("# ")), None)
    if not header:
        raise AssertionError(f"show servers state: no header in {lines[:3]}")
    return {d["srv_name"]: d for d in (dict(zip(header, line.split())) for line in lines
                                        if line and line[0].isdigit() and len(line.split()) == len(header))}


class Watch:
    """Polls HAProxy's `show stat` every 50 ms in a thread: which statuses each server went through, and the
    most servers out of rotation (a status other than UP or "UP n/m" going down) at one poll."""

    def __init__(self, sock):
        self.sock = sock
        self.seen = {host: set() for host in HOSTS}
        self.max_out = 0
        self.out_at_max = None
        self.polls = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="haproxy-watch")

    def _run(self):
        while not self._stop.is_set():
            try:
                stat = show_stat(self.sock)
            except (OSError, AssertionError):
                self.errors += 1
            else:
                self.polls += 1
                statuses = {host: stat[host]["status"] for host in HOSTS if host in stat}
                for host, status in statuses.items():
                    self.seen[host].add(status)
                out = sorted(host for host, status in statuses.items() if not status.startswith("UP"))
                if len(out) > self.max_out:
                    self.max_out, self.out_at_max = len(out), statuses
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        return False


class LoadThread:
    """tests/e2e/load.py's Load in a thread, through HAProxy's frontend, as test_stacks runs it."""

    def __init__(self, port):
        self.load = Load(port, 8, duration=h.scaled(120), timeout=10, keepalive=True)
        self.thread = threading.Thread(target=lambda: setattr(self.load, "result", self.load.run()), daemon=True)
        self.thread.start()

    def wait_ok(self, more, timeout=10):
        """Waits until MORE requests beyond those answered so far were answered."""
        target = self.load.counts()["ok"] + more
        h.wait_until(lambda: self.load.counts()["ok"] >= target, timeout, interval=0.02,
                     message=f"the load got no {more} answers in {timeout}s: {self.load.counts()}")

    def stop(self):
        self.load.stop.set()
        self.thread.join(h.scaled(30))
        return getattr(self.load, "result", None) or self.load.counts()


# contrib/fleet/haproxy.cfg with shorter intervals: health checks every 500 ms (250 ms on the way up or down),
# the agent every 200 ms. pool-max-conn 0 as there: the test worker never closes an idle keep-alive
# connection, so one HAProxy kept idle towards a drained host would keep its drain --wait from returning.
# The socket is read-only ("level user"): all roll.sh and roll.yml do is read.
HAPROXY_CFG = """\
global
    stats socket {sock} mode 600 level user

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    retries 2
    option redispatch

frontend fe
    bind 127.0.0.1:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server check inter 500ms fastinter 250ms downinter 250ms fall 2 rise 2 agent-check agent-inter 200ms weight 100 pool-max-conn 0
{servers}
"""


class Fleet:
    """Three corral hosts, each with its own config file, control socket, worker port, /health port and agent
    port, and a HAProxy in front of them; all started by start(), all stopped by the test's cleanups."""

    def __init__(self, test):
        self.test = test
        self.dir = test.tmp
        self.haproxy_bin = need("haproxy", "haproxy")
        self.sock = os.path.join(self.dir, "haproxy.sock")
        self.port = h.free_port()
        self.hosts = {name: {"port": h.free_port(), "status": h.free_port(), "agent": h.free_port(),
                             "control": os.path.join(self.dir, name, "control"),
                             "config": os.path.join(self.dir, f"{name}.conf")} for name in HOSTS}
        self.corrals = {}
        self.haproxy = None

    def config_text(self, name, release, bad=False):
        host = self.hosts[name]
        worker = h.worker_bin() + (" --no-ready" if bad else "")
        # A bad release: workers that never say READY=1; corral gives each 2 s, then rolls back.
        return (f"[Worker]\nExecStart={worker}\nCount={COUNT}\nEnvironment=RELEASE={release}\n"
                f"ReadyTimeoutSec={'2s' if bad else '10s'}\nStopTimeoutSec=5s\n"
                f"[Socket]\nListen=127.0.0.1:{host['port']}\n"
                f"[Health]\nListen=127.0.0.1:{host['status']}\nAgentListen=127.0.0.1:{host['agent']}\n")

    def write_next(self, name, release, bad=False):
        """The release the roll's deploy step installs on host NAME: DIR/NAME.next.conf."""
        with open(os.path.join(self.dir, f"{name}.next.conf"), "w") as f:
            f.write(self.config_text(name, release, bad))

    def start(self):
        for name, host in self.hosts.items():
            os.makedirs(os.path.dirname(host["control"]), exist_ok=True)
            with open(host["config"], "w") as f:
                f.write(self.config_text(name, "v1"))
            self.corrals[name] = self.test.start_corral(
                ["--config", host["config"], "--name", f"fleet-{name}", "--control", host["control"]], name=name)
        for name, host in self.hosts.items():
            h.wait_all_ready(host["control"], COUNT)
        servers = "\n".join(f"    server {name} 127.0.0.1:{host['port']} port {host['status']} agent-port {host['agent']}"
                            for name, host in self.hosts.items())
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(sock=self.sock, port=self.port, backend=BACKEND, servers=servers))
        log = open(os.path.join(self.dir, "haproxy.log"), "w")
        self.test.addCleanup(log.close)
        # -db: in the foreground, not forked, so this pid is HAProxy's and stopping it stops HAProxy.
        self.haproxy = subprocess.Popen([self.haproxy_bin, "-db", "-f", cfg], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        self.haproxy_pidfd = os.pidfd_open(self.haproxy.pid)
        self.test.addCleanup(self.stop_haproxy)
        h.wait_until(self.all_in_rotation, 15, interval=0.05,
                     message=f"HAProxy never had {HOSTS} UP with their agents answering:\n{self.haproxy_log()}")
        return self

    def stop_haproxy(self):
        if self.haproxy is None:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.haproxy_pidfd, signal.SIGTERM)
        try:
            self.haproxy.wait(h.scaled(5))
        except subprocess.TimeoutExpired:
            signal.pidfd_send_signal(self.haproxy_pidfd, signal.SIGKILL)
            self.haproxy.wait(5)
        os.close(self.haproxy_pidfd)
        self.haproxy = None

    def haproxy_log(self, full=False):
        with open(os.path.join(self.dir, "haproxy.log"), errors="replace") as f:
            text = f.read()
        return text if full else text[-3000:]

    def all_in_rotation(self):
        """True once HAProxy has every host UP, its health check and its agent answering, at full weight."""
        if self.haproxy.poll() is not None:
            raise AssertionError(f"haproxy exited with {self.haproxy.returncode}:\n{self.haproxy_log()}")
        try:
            stat, state = show_stat(self.sock), servers_state(self.sock)
        except (OSError, AssertionError):
            return False
        return all(stat[n]["status"] == "UP" and stat[n]["check_status"] == "L7OK"
                   and stat[n]["agent_status"] == "L7OK" and state[n]["srv_admin_state"] == "0"
                   and state[n]["srv_uweight"] == "100" for n in HOSTS)

    def status(self, name):
        _, st = h.control_status(self.hosts[name]["control"])
        return st

    def release_served(self, name):
        """The RELEASE= of the workers that answer on host NAME's own port, past HAProxy; each slot asked."""
        answers = h.collect_workers(self.hosts[name]["port"], COUNT, path="/env")
        return {a.env().get("RELEASE") for a in answers.values()}

    def roll(self, *extra, spec=None):
        """Runs contrib/fleet/roll.sh over the hosts (SERVER=CONTROL, by default the three), with a deploy step
        that installs each host's DIR/NAME.next.conf; returns the CompletedProcess, its output echoed."""
        spec = spec or [f"{n}={self.hosts[n]['control']}" for n in HOSTS]
        cmd = [ROLL, "--via", "local", "--corral", h.corral_bin(), "--backend", BACKEND,
               "--haproxy-socket", self.sock, "--drain-timeout", "20s", "--lb-timeout", "20",
               "--deploy", 'cp -- "$FLEET_DIR/$1.next.conf" "$FLEET_DIR/$1.conf"', *extra, *spec]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=h.scaled(120),
                           env=h.clean_env({"FLEET_DIR": self.dir}))
        sys.stderr.write(f"\n$ roll.sh ... (exit {p.returncode})\n{p.stdout}{p.stderr}")
        return p

    def backend_errors(self):
        """HAProxy's own count of what a client would never see: connection and response errors on the
        backend, retries and redispatches, and 5xx answers it gave."""
        stat = show_stat(self.sock)
        back = {k: int(stat["BACKEND"][k] or 0) for k in ("econ", "eresp", "wretr", "wredis")}
        back["frontend_hrsp_5xx"] = int(stat["FRONTEND"]["hrsp_5xx"] or 0)
        return back


class FleetTestCase(h.CorralTestCase):
    def setUp(self):
        super().setUp()
        need("socat", "socat")
        if not os.access(h.corral_bin(), os.X_OK):
            raise AssertionError(f"no corral binary at {h.corral_bin()}")

    def assertNoRequestFailed(self, result, fleet):
        self.assertEqual(result.get("hung_threads", 0), 0, result)
        self.assertEqual(result["failed"], 0, f"failed requests: {result}")
        # Through HAProxy the client's keep-alive connection is HAProxy's, which closes it for nothing here:
        # a retried request would be a connection HAProxy dropped.
        self.assertEqual(result["retried"], 0, f"requests retried on a new connection: {result}")
        self.assertEqual(fleet.backend_errors(), {"econ": 0, "eresp": 0, "wretr": 0, "wredis": 0,
                                                  "frontend_hrsp_5xx": 0})

    def assertServing(self, fleet, name, generation, release):
        st = fleet.status(name)
        self.assertEqual((st["state"], st["ready"], st["wanted"], st["drained"]), ("running", COUNT, COUNT, False),
                         f"{name}: {st}")
        self.assertEqual(st["generation"], generation, f"{name}: {st}")
        self.assertEqual({w["generation"] for w in st["workers"]}, {generation}, f"{name}: {st['workers']}")
        self.assertEqual(fleet.release_served(name), {release}, name)
        return st

    def assertAllInRotation(self, fleet):
        # The last agent answers and health checks may still be on their way after the roll's last step.
        h.wait_until(fleet.all_in_rotation, 5, interval=0.05,
                     message=f"HAProxy does not have every host UP at weight 100: {show_stat(fleet.sock)}")

    def assertDrainSeen(self, fleet, watch, rolled, untouched=()):
        """HAProxy took the ROLLED hosts out through their agents one at a time, in that order, and never an
        UNTOUCHED one. HAProxy's log has every change of a server's state in the order it applied them: a
        host is out of rotation from "enters drain state" or "is DOWN" until "is UP", and never two at once.
        Its `show stat` said "DRAIN (agent)" at least once (each drain lasts at least one agent interval,
        200 ms, against the watch's 50 ms polls: a starved poller could miss one, not all)."""
        out, drained, most = set(), [], (0, None)
        events = re.findall(rf"Server {BACKEND}/(\w+) (enters drain state|is DOWN|is UP)", fleet.haproxy_log(full=True))
        for name, what in events:
            if what == "is UP":
                out.discard(name)
            else:
                out.add(name)
                if what == "enters drain state":
                    drained.append(name)
            most = max(most, (len(out), sorted(out)), key=lambda m: m[0])
        self.assertEqual(drained, list(rolled), f"HAProxy's state changes: {events}")
        self.assertEqual(most[0], 1, f"out of rotation at once: {most[1]}; HAProxy's state changes: {events}")
        self.assertEqual(out, set(), f"still out at the end: {out}")
        for name in untouched:
            self.assertNotIn("DRAIN (agent)", watch.seen[name], f"{name} was drained")
        self.assertTrue(any("DRAIN (agent)" in watch.seen[name] for name in rolled), f"statuses seen: {watch.seen}")
        self.assertLessEqual(watch.max_out, 1, f"hosts out of rotation at once: {watch.out_at_max}")

    @staticmethod
    def report(what, result, roll_output, seconds):
        per_host = re.findall(r"roll: (h\d): rolled in ([\d.]+) s", roll_output)
        hosts = ", ".join(f"{n} {s} s" for n, s in per_host) or "-"
        sys.stderr.write(f"\nfleet {what}: {result['ok'] + result['failed']} requests, {result['failed']} failed, "
                         f"{result['retried']} retried, generations seen {result['generations']}; "
                         f"per host: {hosts}; {seconds:.1f} s\n")


def roll_under_load(fleet, **kw):
    """fleet.roll(**kw) under a closed-loop load through HAProxy, watching HAProxy's server states; returns
    (watch, the roll's CompletedProcess, its seconds, the load's summary)."""
    with Watch(fleet.sock) as watch:
        load = LoadThread(fleet.port)
        try:
            load.wait_ok(200)
            t0 = time.monotonic()
            p = fleet.roll(**kw)
            seconds = time.monotonic() - t0
            load.wait_ok(200)
        finally:
            result = load.stop()
    return watch, p, seconds, result


class TestFleetRoll(FleetTestCase):
    def test_roll_under_load(self):
        """roll.sh over the three hosts: every host at the new generation, no request failed, one host out of
        rotation at a time, each seen by HAProxy as DRAIN (agent)."""
        fleet = Fleet(self).start()
        for name in HOSTS:
            fleet.write_next(name, "v2")
        watch, p, seconds, result = roll_under_load(fleet)
        self.report("roll", result, p.stdout, seconds)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout.splitlines()[-1], r"^roll: done: 3 hosts rolled")
        self.assertNoRequestFailed(result, fleet)
        self.assertEqual(result["generations"], ["1", "2"], "the load was not served by both generations")
        for name in HOSTS:
            st = self.assertServing(fleet, name, 2, "v2")
            self.assertEqual(st["reloads_ok"], 1, name)
            # roll.sh's own read of `show servers state`: the agent's drain flag, before drain --wait.
            self.assertRegex(p.stdout, rf"roll: {name}: load balancers take it out: ok in [\d.]+ s \([A-Z]+, drain,")
        self.assertDrainSeen(fleet, watch, HOSTS)
        self.assertAllInRotation(fleet)

    def test_bad_deploy_stops_the_roll(self):
        """A release whose workers never become ready, on h2: the roll stops there with exit 1 naming h2; h1
        runs the new release, h2 (rolled back, undrained, back in rotation) and h3 (never drained) the old
        one; no request failed."""
        fleet = Fleet(self).start()
        fleet.write_next("h1", "v2")
        fleet.write_next("h2", "v2", bad=True)
        fleet.write_next("h3", "v2")
        watch, p, seconds, result = roll_under_load(fleet)
        self.report("bad deploy", result, p.stdout, seconds)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        last = p.stdout.splitlines()[-1]
        self.assertRegex(last, r"^roll: FAILED: stopped at h2 \(reload failed\)")
        self.assertIn("not touched: h3", last)
        self.assertRegex(p.stdout, r"roll: h2: reload --wait: FAILED \(exit 1\).*keeping generation 1")
        self.assertNoRequestFailed(result, fleet)
        self.assertServing(fleet, "h1", 2, "v2")
        h2 = self.assertServing(fleet, "h2", 1, "v1")
        self.assertEqual((h2["reloads_ok"], h2["reloads_failed"]), (0, 1), h2)
        h3 = self.assertServing(fleet, "h3", 1, "v1")
        self.assertEqual((h3["reloads_ok"], h3["reloads_failed"]), (0, 0), h3)
        self.assertDrainSeen(fleet, watch, ("h1", "h2"), untouched=("h3",))
        self.assertAllInRotation(fleet)

    def test_roll_refuses_to_start_with_a_host_out(self):
        """Before touching a host, roll.sh checks HAProxy: a host already drained, or a server name HAProxy
        does not know, stops it with nothing drained."""
        fleet = Fleet(self).start()
        for name in HOSTS:
            fleet.write_next(name, "v2")
        p = fleet.roll(spec=[f"h1={fleet.hosts['h1']['control']}", f"h4={fleet.hosts['h3']['control']}"])
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("no server 'h4' in backend 'app'", p.stdout)
        self.assertFalse(fleet.status("h1")["drained"])

        d = subprocess.run([h.corral_bin(), "drain", "--control", fleet.hosts["h3"]["control"]], capture_output=True,
                           text=True, timeout=h.scaled(10), env=h.clean_env())
        self.assertEqual(d.returncode, 0, d.stderr)
        h.wait_until(lambda: not show_stat(fleet.sock)["h3"]["status"].startswith("UP"), 10,
                     message="HAProxy kept the drained h3 in rotation")
        p = fleet.roll()
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"app/h3 is not ready \(.*drain.*\): a serial roll takes out one host at a time")
        for name in HOSTS:
            st = fleet.status(name)
            self.assertEqual((st["generation"], st["drained"]), (1, name == "h3"), f"{name}: {st}")


class TestFleetPlaybook(FleetTestCase):
    def test_playbook_roll_under_load(self):
        """contrib/fleet/roll.yml under ansible-playbook (-c local, the three hosts as inventory hosts): the
        same roll, the same outcome as roll.sh's."""
        playbook = shutil.which("ansible-playbook")
        if not playbook:
            missing("ansible-playbook", "ansible-core")
        fleet = Fleet(self).start()
        inventory = os.path.join(self.tmp, "inventory")
        with open(inventory, "w") as f:
            f.write("[corral]\n")
            for name, host in fleet.hosts.items():
                f.write(f"{name} corral_control={host['control']} corral_config_src={self.tmp}/{name}.next.conf"
                        f" corral_config_dest={host['config']}\n")
            f.write(f"[corral:vars]\nansible_connection=local\nansible_python_interpreter=/usr/bin/python3\n"
                    f"corral_bin={h.corral_bin()}\ncorral_drain_timeout=20s\nhaproxy_socket={fleet.sock}\n"
                    f"haproxy_timeout=20\n")
        for name in HOSTS:
            fleet.write_next(name, "v2")
        # Ansible's own state (~/.ansible, its temporary files) goes to the test's directory.
        env = h.clean_env({"HOME": self.tmp, "ANSIBLE_HOME": os.path.join(self.tmp, "ansible"),
                           "ANSIBLE_LOCAL_TEMP": os.path.join(self.tmp, "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
                           "ANSIBLE_RETRY_FILES_ENABLED": "0"})
        with Watch(fleet.sock) as watch:
            load = LoadThread(fleet.port)
            try:
                load.wait_ok(200)
                t0 = time.monotonic()
                p = subprocess.run([playbook, "-i", inventory, PLAYBOOK], capture_output=True, text=True,
                                   timeout=h.scaled(180), env=env)
                seconds = time.monotonic() - t0
                load.wait_ok(200)
            finally:
                result = load.stop()
        sys.stderr.write(f"\n$ ansible-playbook -i inventory roll.yml (exit {p.returncode}, {seconds:.1f} s)\n"
                         f"{p.stdout[-3000:]}{p.stderr[-2000:]}")
        self.report("playbook", result, "", seconds)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr)
        self.assertNoRequestFailed(result, fleet)
        self.assertEqual(result["generations"], ["1", "2"])
        for name in HOSTS:
            self.assertServing(fleet, name, 2, "v2")
        self.assertDrainSeen(fleet, watch, HOSTS)
        self.assertAllInRotation(fleet)


class TestFleetExamples(unittest.TestCase):
    def test_haproxy_example_is_valid(self):
        """contrib/fleet/haproxy.cfg, as shipped, passes `haproxy -c`."""
        haproxy = need("haproxy", "haproxy")
        p = subprocess.run([haproxy, "-c", "-f", HAPROXY_EXAMPLE], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_roll_usage(self):
        """roll.sh: --help exits 0, a usage error 64, before anything is touched."""
        p = subprocess.run([ROLL, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Usage: contrib/fleet/roll.sh", p.stdout)
        for args in ([], ["--bogus", "h1"], ["--haproxy-socket", "/nonexistent", "h1"], ["--lb-timeout", "1m", "h1"]):
            p = subprocess.run([ROLL, *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 64, f"{args}: {p.stdout}{p.stderr}")


if __name__ == "__main__":
    result = unittest.main(exit=False).result
    # 77: ctest's SKIP_RETURN_CODE for this test; a run that skipped something has not passed.
    sys.exit(1 if not result.wasSuccessful() else 77 if result.skipped else 0)
