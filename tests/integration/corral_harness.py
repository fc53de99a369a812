# SPDX-License-Identifier: MIT
"""Helpers for the integration tests: start the real corral binary (embedded, with sockets bound by the
test, or under systemd-socket-activate), read its log with deadlines, talk HTTP to its workers, receive its
sd_notify datagrams, generate load, and clean up every process started — always by pid, never by name.

Environment: CORRAL_BIN and CORRAL_TEST_WORKER (absolute paths, set by CTest); CORRAL_PROMTOOL (set by
CTest when CMake found promtool); CORRAL_TEST_TIMEOUT_SCALE (a float, default 1) stretches every deadline
for slow builds (sanitizers, emulation).
"""

import array
import atexit
import collections
import contextlib
import gc
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TIMEOUT_SCALE = float(os.environ.get("CORRAL_TEST_TIMEOUT_SCALE", "1") or "1")
HERE = os.path.dirname(os.path.abspath(__file__))


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


def _find_binary(var, candidates):
    path = os.environ.get(var)
    if path:
        return path
    root = os.path.normpath(os.path.join(HERE, "..", ".."))
    for c in candidates:
        p = os.path.join(root, c)
        if os.access(p, os.X_OK):
            return p
    raise RuntimeError(f"{var} is not set (CTest sets it; run the tests through ctest or export it)")


def corral_bin():
    return _find_binary("CORRAL_BIN", ["build/corral"])


def worker_bin():
    return _find_binary("CORRAL_TEST_WORKER", ["build/tests/corral-test-worker"])


def clean_env(extra=None):
    """The test process's environment without anything that would make corral or a worker believe it
    runs under systemd, plus EXTRA."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTEN_", "WORKER_", "WATCHDOG_")) and
           k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "CORRAL_PID", "INVOCATION_ID")}
    env.update(extra or {})
    return env


# ---------------------------------------------------------------------------------------------------------
# Waiting

def wait_until(predicate, timeout, interval=0.02, message=None):
    """Polls PREDICATE until it returns something truthy, which is returned. Raises AssertionError with
    MESSAGE after TIMEOUT seconds (scaled)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {scaled(timeout):.1f}s")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------------
# Processes

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid):
    """Direct children of PID (all its threads), from /proc/PID/task/*/children; [] if PID is gone."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return sorted(set(out))


def descendant_pids(pid):
    out, todo = [], [pid]
    while todo:
        for c in child_pids(todo.pop()):
            if c not in out:
                out.append(c)
                todo.append(c)
    return out


def proc_state(pid):
    """The state letter from /proc/PID/stat, or None when the process does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2]


def pid_alive(pid):
    """True while PID exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z", "X")


def proc_ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(")") + 2:].split()[1])


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def sigkill(pid):
    """SIGKILLs PID through a pidfd (never a recycled pid); returns time.monotonic() just before the kill."""
    fd = os.pidfd_open(pid)
    try:
        t0 = time.monotonic()
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)
    return t0


class ProcessTracker:
    """Holds a pidfd for each process a test has seen, so that cleanup can SIGKILL whatever is left
    without ever hitting a recycled pid."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pidfds = {}

    def track(self, pid):
        with self._lock:
            if pid in self._pidfds or pid <= 1 or pid == os.getpid():
                return
            try:
                self._pidfds[pid] = os.pidfd_open(pid)
            except OSError:
                pass

    def kill_all(self):
        with self._lock:
            items = list(self._pidfds.items())
            self._pidfds.clear()
        for pid, fd in items:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)


_trackers = []


@atexit.register
def _kill_everything_left():
    for t in list(_trackers):
        t.kill_all()


# ---------------------------------------------------------------------------------------------------------
# Log capture

class LogCapture:
    """Reads a pipe line by line in a thread. Lines are kept in memory (and copied to a file) so a test
    can wait for one with a deadline. EOF is not awaited by anyone: a leftover grandchild may hold the
    pipe open long after corral exited."""

    def __init__(self, fileobj, path=None, echo_prefix=None):
        self._cond = threading.Condition()
        self._lines = []
        self._eof = False
        self._file = open(path, "w", buffering=1) if path else None
        self._echo = echo_prefix
        self._thread = threading.Thread(target=self._run, args=(fileobj,), daemon=True)
        self._thread.start()

    def _run(self, fileobj):
        try:
            for raw in iter(fileobj.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
                if self._file:
                    self._file.write(line + "\n")
                if self._echo:
                    sys.stderr.write(f"{self._echo}{line}\n")
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            with contextlib.suppress(OSError, ValueError):
                fileobj.close()

    def lines(self):
        with self._cond:
            return list(self._lines)

    def text(self):
        return "\n".join(self.lines())

    def wait_for_line(self, regex, timeout=10, start=0):
        """Waits for the first line at index >= START matching REGEX (re.search); returns the match.
        Raises AssertionError on timeout or when the stream ended without a match."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + scaled(timeout)
        i = start
        with self._cond:
            while True:
                while i < len(self._lines):
                    m = pattern.search(self._lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    tail = "\n".join(self._lines[-30:])
                    why = "output ended" if self._eof else f"{scaled(timeout):.1f}s passed"
                    raise AssertionError(f"no line matching {regex!r} ({why}); last lines:\n{tail}")
                self._cond.wait(min(left, 0.5))

    def count(self, regex):
        pattern = re.compile(regex)
        return sum(1 for line in self.lines() if pattern.search(line))

    def wait_eof(self, timeout):
        with self._cond:
            return self._cond.wait_for(lambda: self._eof, scaled(timeout))

    def close(self):
        if self._file:
            self._file.close()
            self._file = None


# ---------------------------------------------------------------------------------------------------------
# corral itself

# Runs as the program corral is exec'd from: moves the sockets the test bound to fds 3.. and sets LISTEN_*
# for its own pid, which exec keeps. (dash cannot redirect fds above 9 and preexec_fn is unsafe with
# threads, so this is a few lines of Python.)
_FD_WRAPPER = r"""
import fcntl, os, sys
n = int(sys.argv[1]); fds = [int(x) for x in sys.argv[2:2 + n]]; names = sys.argv[2 + n]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 200) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(n), LISTEN_FDNAMES=names)
os.execv(sys.argv[3 + n], sys.argv[3 + n:])
"""


class Corral:
    """One corral process. Use as a context manager, or call close() (idempotent) — it stops corral
    (SIGTERM, then SIGKILL after a deadline) and SIGKILLs every descendant it saw, by pidfd.

    args: corral's arguments (without the binary). mode: "embedded" (corral binds --listen itself),
    "fds" (the test binds SOCKETS — a list of (socket, name) — and hands them over as LISTEN_FDS), or
    "socket-activate" (systemd-socket-activate binds 127.0.0.1:ACTIVATE_PORT, named "http", and execs
    corral on the first connection, which this class makes)."""

    def __init__(self, args, *, env=None, mode="embedded", sockets=(), activate_port=None,
                 activate_fdname="http", notify_socket=None, workdir=None, name="corral", echo=False, prefix=(),
                 binary=None, stdout=None):
        self.args = [str(a) for a in args]
        self.binary = binary  # another corral binary than the build's, e.g. a copy an upgrade test replaces
        self.stdout = stdout  # None: stdout and stderr together in self.log; else corral's stdout (as Popen takes it)
        self.prefix = list(prefix)  # a command that execs corral in place, e.g. prlimit
        self.mode = mode
        self.sockets = list(sockets)
        self.activate_port = activate_port
        self.activate_fdname = activate_fdname
        self.workdir = workdir or tempfile.mkdtemp(prefix="corral-test-")
        self.name = name
        self.env = clean_env(env)
        # Without a name or --control, corral puts its control socket in /run/corral/NAME, NAME defaulting to
        # the command's file name: tests running side by side would take each other's. Its RUNTIME_DIRECTORY
        # (as systemd would set it) keeps each in its own directory; a test of the default places sets "".
        if "RUNTIME_DIRECTORY" not in self.env:
            self.env["RUNTIME_DIRECTORY"] = tempfile.mkdtemp(prefix=f"{name}-run-", dir=self.workdir)
        if notify_socket:
            self.env["NOTIFY_SOCKET"] = notify_socket
        self.echo = echo or bool(os.environ.get("CORRAL_TEST_ECHO"))
        self.proc = None
        self.log = None
        self.tracker = ProcessTracker()
        _trackers.append(self.tracker)
        self.started_at = None
        self.activated_at = None
        self.exited_at = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------------
    def command(self):
        corral = self.prefix + [self.binary or corral_bin()] + self.args
        if self.mode == "embedded":
            return corral
        if self.mode == "fds":
            fds = [s.fileno() for s, _ in self.sockets]
            names = ":".join(n for _, n in self.sockets)
            return [sys.executable, "-c", _FD_WRAPPER, str(len(fds))] + [str(f) for f in fds] + [names] + corral
        if self.mode == "socket-activate":
            exe = shutil.which("systemd-socket-activate")
            if not exe:
                raise unittest.SkipTest("systemd-socket-activate not installed")
            cmd = [exe, "-l", f"127.0.0.1:{self.activate_port}", f"--fdname={self.activate_fdname}"]
            # It hands its child only LISTEN_* and the -E variables: pass our whole (clean) environment.
            for k in sorted(self.env):
                cmd += ["-E", k]
            return cmd + corral
        raise ValueError(self.mode)

    def start(self):
        pass_fds = [s.fileno() for s, _ in self.sockets] if self.mode == "fds" else ()
        self.started_at = time.monotonic()
        split = self.stdout is not None
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.stdout if split else subprocess.PIPE,
                                     stderr=subprocess.PIPE if split else subprocess.STDOUT, env=self.env,
                                     pass_fds=pass_fds, cwd=self.workdir, start_new_session=True)
        self.tracker.track(self.proc.pid)
        self.log = LogCapture(self.proc.stderr if split else self.proc.stdout,
                              os.path.join(self.workdir, f"{self.name}.log"),
                              echo_prefix=f"[{self.name}] " if self.echo else None)
        if self.mode == "socket-activate":
            self._trigger_activation()
        return self

    def _trigger_activation(self):
        """systemd-socket-activate only execs corral on the first connection: make one once it listens.
        The connection stays queued in the backlog and is served (then dropped) by a worker later."""
        def connect():
            if self.proc.poll() is not None:
                raise AssertionError(f"systemd-socket-activate exited: {self.proc.returncode}\n{self.log.text()}")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.connect(("127.0.0.1", self.activate_port))
            except OSError:
                s.close()
                return None
            return s
        self._trigger = wait_until(connect, 10, message="systemd-socket-activate never listened")
        self.activated_at = time.monotonic()
        self._trigger.sendall(b"GET /activation-trigger HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.log.wait_for_line(r"Execing|Exec", timeout=10)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout):
        """Waits for corral to exit; returns its return code (negative: killed by that signal). Raises
        AssertionError after TIMEOUT (scaled)."""
        try:
            rc = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} (pid {self.pid}) still running after {scaled(timeout):.1f}s;"
                                 f" last lines:\n" + "\n".join(self.log.lines()[-30:])) from None
        if self.exited_at is None:
            self.exited_at = time.monotonic()
            # The reader thread may still be behind: let it drain the pipe. Bounded, since a leftover
            # grandchild can hold the pipe open past corral's exit.
            self.log.wait_eof(2)
        return rc

    def send_signal(self, sig):
        self.snapshot_tree()
        if self.running():
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends SIG and waits for the exit; returns the return code."""
        self.send_signal(sig)
        return self.wait(timeout)

    def close(self):
        if self._closed or self.proc is None:
            return
        self._closed = True
        try:
            self.snapshot_tree()
            if self.running():
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(scaled(5))
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            self.tracker.kill_all()
            if self.log:
                self.log.close()
            if hasattr(self, "_trigger"):
                self._trigger.close()

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- inspection ---------------------------------------------------------------------------------
    def snapshot_tree(self):
        """Records (by pidfd) every current descendant so cleanup can reach it; returns them."""
        if self.proc is None:
            return []
        pids = descendant_pids(self.proc.pid)
        for p in pids:
            self.tracker.track(p)
        return pids

    def worker_pids(self):
        """Direct children of corral (its workers), tracked for cleanup."""
        pids = child_pids(self.proc.pid) if self.running() else []
        for p in pids:
            self.tracker.track(p)
        return pids

    def wait_for_line(self, regex, timeout=10, start=0):
        return self.log.wait_for_line(regex, timeout, start)

    def output(self):
        return self.log.text() if self.log else ""


# ---------------------------------------------------------------------------------------------------------
# HTTP

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Answer:
    """One HTTP answer from a test worker."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8", "replace")
        self.fields = dict(kv.split("=", 1) for kv in self.text.split() if "=" in kv) \
            if self.text.startswith("slot=") else {}
        pid = headers.get("X-Worker-Pid")
        self.pid = int(pid) if pid else None
        self.slot = headers.get("X-Worker-Slot")
        self.generation = headers.get("X-Worker-Generation")

    def lines(self):
        return self.text.splitlines()

    def env(self):
        return dict(line.split("=", 1) for line in self.lines() if "=" in line)

    def __repr__(self):
        return f"Answer({self.status}, slot={self.slot}, pid={self.pid}, {self.text[:60]!r})"


def http_get(target, path="/", timeout=5, headers=None):
    """GET PATH from TARGET: a port on 127.0.0.1, or the path of a UNIX socket. One connection per call
    ("Connection: close"). Returns an Answer; raises OSError/http.client errors on failure."""
    if isinstance(target, int):
        conn = http.client.HTTPConnection("127.0.0.1", target, timeout=scaled(timeout))
    else:
        conn = _UnixHTTPConnection(target, scaled(timeout))
    try:
        conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
        r = conn.getresponse()
        return Answer(r.status, dict(r.getheaders()), r.read())
    finally:
        conn.close()


def wait_serving(target, timeout=10, path="/"):
    """Polls TARGET until a worker answers 200; returns that Answer."""
    def attempt():
        try:
            a = http_get(target, path, timeout=2)
            return a if a.status == 200 else None
        except (OSError, http.client.HTTPException):
            return None
    return wait_until(attempt, timeout, interval=0.05, message=f"nobody answered on {target} within {timeout}s")


def collect_workers(target, count, timeout=10, path="/", corral=None):
    """Sends requests (several connections at once, to spread them over the workers sharing the socket)
    until COUNT distinct slots answered. Returns {slot: Answer}, with the newest answer per slot. If
    CORRAL is given, every pid seen is tracked for cleanup."""
    found = {}
    deadline = time.monotonic() + scaled(timeout)
    batch = max(4, 2 * count)
    while time.monotonic() < deadline:
        conns = []
        for _ in range(batch):
            try:
                if isinstance(target, int):
                    c = http.client.HTTPConnection("127.0.0.1", target, timeout=scaled(3))
                else:
                    c = _UnixHTTPConnection(target, scaled(3))
                c.connect()
                conns.append(c)
            except OSError:
                pass
        for c in conns:
            try:
                c.request("GET", path, headers={"Connection": "close"})
                r = c.getresponse()
                a = Answer(r.status, dict(r.getheaders()), r.read())
                if a.status == 200 and a.slot is not None:
                    found[a.slot] = a
                    if corral and a.pid:
                        corral.tracker.track(a.pid)
            except (OSError, http.client.HTTPException):
                pass
            finally:
                c.close()
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"only slots {sorted(found)} answered on {target} within {scaled(timeout):.1f}s,"
                         f" wanted {count}")


# ---------------------------------------------------------------------------------------------------------
# corral's own account: `corral status --json` and /metrics. A test checks a fact there rather than in the
# English of a log line when corral reports it in both.

def control_status(control, timeout=30):
    """`corral status --json` on the control socket at CONTROL: (exit code, the JSON object). Exit code 1 is
    a degraded pool, which still comes with its JSON; any other failure raises AssertionError."""
    p = subprocess.run([corral_bin(), "status", "--json", "--control", control], capture_output=True, text=True,
                       timeout=scaled(timeout), env=clean_env())
    if p.returncode not in (0, 1) or not p.stdout:
        raise AssertionError(f"corral status --json: exit {p.returncode}: {p.stderr.strip()}")
    return p.returncode, json.loads(p.stdout)


STATUS_SCHEMA = os.path.normpath(os.path.join(HERE, "..", "..", "docs", "status.schema.json"))
_SCHEMA_CHECK = """
import json, sys
import jsonschema
with open(sys.argv[1]) as f:
    schema = json.load(f)
jsonschema.Draft202012Validator.check_schema(schema)
for e in sorted(jsonschema.Draft202012Validator(schema).iter_errors(json.load(sys.stdin)), key=str):
    print("/" + "/".join(str(p) for p in e.absolute_path) + ": " + e.message)
"""


def check_status_schema(text):
    """Fails unless TEXT, the JSON that `corral status --json` prints, is valid against docs/status.schema.json
    (itself checked against draft 2020-12). Checked by Debian's python3-jsonschema (scripts/setup.sh installs
    it) under /usr/bin/python3, which may differ from the interpreter running the tests."""
    p = subprocess.run(["/usr/bin/python3", "-c", _SCHEMA_CHECK, STATUS_SCHEMA], input=text, capture_output=True,
                       text=True, timeout=scaled(30))
    if p.returncode != 0 or p.stdout:
        raise AssertionError(f"corral status --json against {STATUS_SCHEMA}:\n{p.stdout}{p.stderr}\n{text}")


def wait_all_ready(control, count, timeout=20):
    """Waits until corral, asked on CONTROL, runs with COUNT of COUNT workers ready (what it logs as "all N
    workers ready"); returns that status."""
    def ready():
        try:
            _, st = control_status(control, timeout=5)
        except AssertionError:
            return None  # not listening yet
        return st if (st["state"], st["ready"], st["wanted"]) == ("running", count, count) else None
    return wait_until(ready, timeout, interval=0.1, message=f"corral on {control} never had {count} workers ready")


_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_METRIC_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics_samples(text):
    """The samples of a /metrics text, in order, as ("name{label=value,...}", float), labels sorted."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if not m:
            raise AssertionError(f"not a sample line in /metrics: {line!r}")
        labels = ",".join(f"{k}={v}" for k, v in sorted(_METRIC_LABEL.findall(m.group(2) or "")))
        out.append((m.group(1) + ("{" + labels + "}" if labels else ""), float(m.group(3))))
    return out


def metrics_text(target, timeout=5):
    """GET /metrics from TARGET (a port on 127.0.0.1 or a UNIX path): its text."""
    a = http_get(target, "/metrics", timeout)
    if a.status != 200:
        raise AssertionError(f"/metrics answered {a.status}: {a.text[:200]}")
    return a.text


def metrics(target, timeout=5):
    """GET /metrics from TARGET as {"name{label=value,...}": float}, labels sorted: the keys test_health's
    check with prometheus_client produces."""
    return dict(metrics_samples(metrics_text(target, timeout)))


def promtool():
    """promtool, from CORRAL_PROMTOOL (CTest sets it when CMake found one; scripts/setup.sh unpacks one into
    the build directory) or PATH; None when there is none."""
    path = os.environ.get("CORRAL_PROMTOOL") or shutil.which("promtool")
    return path if path and os.access(path, os.X_OK) else None


def check_metrics(text):
    """Fails unless TEXT is /metrics as Prometheus would keep it: no series twice (promtool 2.42 does not
    check that, Prometheus rejects such a scrape), and `promtool check metrics` passes it: its parser (HELP
    and TYPE before a family's samples, label syntax) and its linter (counters end in _total, base units,
    snake_case, ...). Without promtool the test is skipped after the first check."""
    twice = sorted(k for k, n in collections.Counter(k for k, _ in metrics_samples(text)).items() if n > 1)
    if twice:
        raise AssertionError(f"series in /metrics twice: {twice}\n{text}")
    tool = promtool()
    if not tool:
        raise unittest.SkipTest("promtool not found: scripts/setup.sh unpacks it into BUILD/tools")
    p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=scaled(30))
    if p.returncode != 0:
        raise AssertionError(f"promtool check metrics: exit {p.returncode}:\n{p.stdout}{p.stderr}\n{text}")


# ---------------------------------------------------------------------------------------------------------
# sd_notify receiver

SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)
SO_PASSCRED = getattr(socket, "SO_PASSCRED", 16)


class Datagram:
    def __init__(self, data, pid, uid, gid, nfds, when, ppid=None):
        self.data = data
        self.pid, self.uid, self.gid = pid, uid, gid
        self.ppid = ppid  # the sender's parent when the datagram was read, None if it was gone already
        self.nfds = nfds
        self.time = when
        text = data.decode("utf-8", "replace")
        self.fields = [tuple(line.split("=", 1)) for line in text.split("\n") if "=" in line]

    def get(self, key, default=None):
        for k, v in self.fields:
            if k == key:
                return v
        return default

    def has(self, key, value=None):
        return any(k == key and (value is None or v == value) for k, v in self.fields)

    def __repr__(self):
        return f"Datagram(pid={self.pid}, {self.data[:120]!r})"


class NotifyReceiver:
    """An AF_UNIX datagram socket at a temporary path standing in for systemd's NOTIFY_SOCKET. Records
    every datagram in order with the sender's credentials; closes any fds passed along."""

    def __init__(self, directory=None):
        self._dir = directory or tempfile.mkdtemp(prefix="corral-notify-")
        self.path = os.path.join(self._dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._cond = threading.Condition()
        self._datagrams = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        creds_len = struct.calcsize("3i")
        ancsize = socket.CMSG_SPACE(creds_len) + socket.CMSG_SPACE(253 * 4)
        while not self._stop:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                data, anc, _, _ = self.sock.recvmsg(1 << 17, ancsize, socket.MSG_CMSG_CLOEXEC)
            except OSError:
                if self._stop:
                    return
                continue
            pid = uid = gid = None
            fds = array.array("i")
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SCM_CREDENTIALS:
                    pid, uid, gid = struct.unpack("3i", cdata[:creds_len])
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
            # The sender's parent, read now: a sender that waits on a barrier (BARRIER=1 with an fd) is still
            # there until that fd is closed below, and may be gone right after.
            ppid = proc_ppid(pid) if pid else None
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with self._cond:
                self._datagrams.append(Datagram(data, pid, uid, gid, len(fds), time.monotonic(), ppid))
                self._cond.notify_all()

    def datagrams(self):
        with self._cond:
            return list(self._datagrams)

    def wait_for(self, key, value=None, timeout=10, start=0):
        """Waits for the first datagram at index >= START carrying KEY (=VALUE if given); returns
        (index, Datagram)."""
        deadline = time.monotonic() + scaled(timeout)
        with self._cond:
            while True:
                for i in range(start, len(self._datagrams)):
                    if self._datagrams[i].has(key, value):
                        return i, self._datagrams[i]
                left = deadline - time.monotonic()
                if left <= 0:
                    want = key if value is None else f"{key}={value}"
                    raise AssertionError(f"no datagram with {want} within {scaled(timeout):.1f}s;"
                                         f" got {self._datagrams}")
                self._cond.wait(min(left, 0.5))

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def notify_address(value):
    """The sockaddr for a NOTIFY_SOCKET value: a path, or "@name" for an abstract socket."""
    if value.startswith("@"):
        return "\0" + value[1:]
    return value


def send_datagram(notify_socket, data, fds=(), sndbuf=None):
    """Sends DATA (bytes) to NOTIFY_SOCKET from this process, optionally passing FDS. Returns None or the
    OSError raised (a too-big datagram may be refused by the kernel, which is fine for the tests)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        # A full receive queue blocks the sender: bounded, so a receiver that stopped reading fails the
        # test instead of hanging it.
        s.settimeout(scaled(5))
        if sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        try:
            s.sendmsg([data], anc, 0, notify_address(notify_socket))
        except OSError as e:
            return e
    return None


_FLOOD = r"""
import socket, struct, sys, time
address, duration = sys.argv[1], float(sys.argv[2])
address = "\0" + address[1:] if address.startswith("@") else address
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
# A full queue blocks the sender, as it blocks sd_notify(); for at most 0.2 s, to see the deadline.
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 200000))
sent = 0
end = time.monotonic() + duration
while time.monotonic() < end:
    for _ in range(256):
        try:
            s.sendto(b"READY=1", address)
            sent += 1
        except BlockingIOError:
            pass
        except OSError:  # the receiver is gone
            end = 0
            break
print(sent, flush=True)
"""


class NotifyFlood:
    """PROCESSES processes running as UID (nobody by default: an unprivileged stranger), each sending
    well-formed READY=1 datagrams to NOTIFY_SOCKET as fast as the receiver takes them (blocking sends, as
    sd_notify() does) for DURATION seconds. Needs root to switch to UID. Every process is killed by pid at
    stop(); sent() is the total the processes reported."""

    def __init__(self, notify_socket, duration=10.0, uid=65534, gid=65534, processes=1):
        self.address = notify_socket
        self.duration, self.uid, self.gid, self.n = duration, uid, gid, processes
        self.procs = []
        self.started_at = self.stopped_at = None
        self._sent = None

    def start(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("a flood from another uid needs root to switch to it")
        self.started_at = time.monotonic()
        # The system's interpreter: the one running the tests may live where nobody cannot read it.
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                ["/usr/bin/python3", "-c", _FLOOD, self.address, str(self.duration)], stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL, user=self.uid, group=self.gid, extra_groups=[], cwd="/",
                env=clean_env()))
        return self

    def stop(self):
        total = 0
        for p in self.procs:
            try:
                out, _ = p.communicate(timeout=self.duration + scaled(5))
                total += int(out.split()[0]) if out.split() else 0
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.stopped_at = time.monotonic()
        self._sent = total
        return self

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def sent(self):
        return self._sent

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        return False


# ---------------------------------------------------------------------------------------------------------
# Load

class RequestRecord:
    __slots__ = ("start", "latency", "ok", "status", "error", "pid", "slot", "generation", "retried")

    def __init__(self, start, latency, ok, status=None, error=None, pid=None, slot=None, generation=None,
                 retried=False):
        self.start, self.latency, self.ok, self.status, self.error = start, latency, ok, status, error
        self.pid, self.slot, self.generation, self.retried = pid, slot, generation, retried

    def __repr__(self):
        return (f"RequestRecord(t={self.start:.3f}, ok={self.ok}, status={self.status}, error={self.error!r},"
                f" pid={self.pid}, gen={self.generation})")


class LoadGenerator:
    """CONCURRENCY threads sending GET PATH to TARGET (port or UNIX path) until DURATION seconds passed,
    MAX_REQUESTS were sent or stop() was called. KEEPALIVE reuses connections. A request that fails on a
    reused keep-alive connection before any byte of the answer came back is retried once on a fresh
    connection (what HTTP clients do, RFC 9112 9.3.1) and marked retried=True; any other failure counts.
    Times are time.monotonic()."""

    def __init__(self, target, concurrency=8, duration=10.0, max_requests=None, keepalive=True, path="/",
                 timeout=5.0):
        self.target, self.concurrency, self.duration = target, concurrency, duration
        self.max_requests, self.keepalive, self.path, self.timeout = max_requests, keepalive, path, timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._records = []
        self._threads = []
        self.started_at = self.stopped_at = None

    def _connect(self):
        if isinstance(self.target, int):
            return http.client.HTTPConnection("127.0.0.1", self.target, timeout=self.timeout)
        return _UnixHTTPConnection(self.target, self.timeout)

    def _claim(self):
        with self._lock:
            if self.max_requests is not None and self._sent >= self.max_requests:
                return False
            self._sent += 1
            return True

    def _one(self, conn, reused):
        headers = {} if self.keepalive else {"Connection": "close"}
        conn.request("GET", self.path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        return r, body

    def _run(self, deadline):
        records = []
        conn, reused = None, False
        while not self._stop.is_set() and time.monotonic() < deadline and self._claim():
            t0 = time.monotonic()
            retried = False
            for attempt in (0, 1):
                if conn is None:
                    conn, reused = self._connect(), False
                try:
                    r, body = self._one(conn, reused)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                    conn.close()
                    conn = None
                    if reused and attempt == 0:
                        retried = True
                        continue
                    records.append(RequestRecord(t0, time.monotonic() - t0, False, error=repr(e),
                                                 retried=retried))
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = None
                    records.append(RequestRecord(t0, time.monotonic() - t0, False, error=repr(e),
                                                 retried=retried))
                    break
                pid = r.getheader("X-Worker-Pid")
                records.append(RequestRecord(t0, time.monotonic() - t0, r.status == 200, status=r.status,
                                             error=None if r.status == 200 else f"HTTP {r.status}",
                                             pid=int(pid) if pid else None, slot=r.getheader("X-Worker-Slot"),
                                             generation=r.getheader("X-Worker-Generation"), retried=retried))
                if not self.keepalive or r.will_close:
                    conn.close()
                    conn = None
                else:
                    reused = True
                break
        if conn is not None:
            conn.close()
        with self._lock:
            self._records.extend(records)

    def start(self):
        # The cyclic garbage collector stops every thread while it walks all objects; with hundreds of
        # thousands of request records that is tens of milliseconds in which no request completes, which
        # would be measured as a server stall. The records hold no cycles: switch it off while loading.
        self._gc_was_enabled = gc.isenabled()
        gc.disable()
        self.started_at = time.monotonic()
        deadline = self.started_at + self.duration
        for i in range(self.concurrency):
            t = threading.Thread(target=self._run, args=(deadline,), daemon=True, name=f"load-{i}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        return self.join()

    def join(self, timeout=None):
        """Waits for every thread (bounded: duration + request timeout + margin by default)."""
        limit = timeout if timeout is not None else self.duration + 2 * self.timeout + 5
        end = time.monotonic() + limit
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            raise AssertionError("load generator threads did not finish")
        self.stopped_at = time.monotonic()
        if getattr(self, "_gc_was_enabled", False):
            gc.enable()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- results ------------------------------------------------------------------------------------
    def records(self):
        with self._lock:
            return sorted(self._records, key=lambda r: r.start)

    def successes(self):
        return [r for r in self.records() if r.ok]

    def failures(self):
        return [r for r in self.records() if not r.ok]

    def summary(self):
        recs = self.records()
        lat = sorted(r.latency for r in recs if r.ok)

        def pct(p):
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
        reasons = {}
        for r in recs:
            if not r.ok:
                reasons[r.error] = reasons.get(r.error, 0) + 1
        return {"requests": len(recs), "ok": len(lat), "failed": len(recs) - len(lat),
                "retried": sum(1 for r in recs if r.retried), "failure_reasons": reasons,
                "p50": pct(0.50), "p99": pct(0.99), "max": lat[-1] if lat else None,
                "pids": sorted({r.pid for r in recs if r.pid}),
                "generations": sorted({r.generation for r in recs if r.generation})}


class Slowloris:
    """CONNECTIONS slow clients against 127.0.0.1:PORT, all in one thread on non-blocking sockets: each sends
    one more byte of a request head that never ends every INTERVAL seconds, and reconnects at its next tick
    once the server closed or reset it. Ends after DURATION seconds (or at stop()), closing every socket.
    SOURCES: loopback addresses the connections come from, in turn (all of 127/8 is loopback, so one
    machine can look like several clients). Counts connects, refused connects, bytes sent and connections
    the server ended."""

    HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "

    def __init__(self, port, connections=200, interval=1.0, duration=20.0, sources=("127.0.0.1",)):
        self.port, self.n, self.interval, self.duration = port, connections, interval, duration
        self.sources = list(sources)
        self.connects = self.refused = self.bytes_sent = self.ended_by_server = 0
        self.max_open = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="slowloris")

    def _connect(self, i):
        """Connection I anew, and whether it could send its first byte yet (1) or not (0); or None."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((self.sources[i % len(self.sources)], 0))
        err = s.connect_ex(("127.0.0.1", self.port))
        if err not in (0, 115):  # EINPROGRESS
            s.close()
            self.refused += 1
            return None, 0
        self.connects += 1
        return s, self._send(s, 0)

    def _send(self, s, offset):
        """Sends the byte at OFFSET of the endless head; returns how many were sent."""
        try:
            n = s.send(self.HEAD[offset:offset + 1] or b"a")
        except OSError:
            return 0  # still connecting, or reset (the poll reports that)
        self.bytes_sent += n
        return n

    def _run(self):
        socks, sent = [None] * self.n, [0] * self.n
        start = time.monotonic()
        # Spread over the interval, so the server sees a steady trickle rather than bursts.
        ticks = [start + i * self.interval / self.n for i in range(self.n)]
        poller = select.poll()
        by_fd = {}
        try:
            while not self._stop.is_set() and time.monotonic() - start < self.duration:
                now = time.monotonic()
                for fd, _ in poller.poll(max(0, min(min(ticks) - now, 0.05)) * 1000):
                    i = by_fd[fd]
                    try:
                        data = socks[i].recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        poller.unregister(fd)
                        del by_fd[fd]
                        socks[i].close()
                        socks[i] = None
                        self.ended_by_server += 1
                now = time.monotonic()
                for i in range(self.n):
                    if ticks[i] > now:
                        continue
                    ticks[i] += self.interval
                    if socks[i] is None:
                        socks[i], sent[i] = self._connect(i)
                        if socks[i] is not None:
                            by_fd[socks[i].fileno()] = i
                            poller.register(socks[i].fileno(), select.POLLIN)
                    else:
                        sent[i] += self._send(socks[i], sent[i])
                self.max_open = max(self.max_open, len(by_fd))
        finally:
            for s in socks:
                if s is not None:
                    s.close()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(scaled(5))
        if self._thread.is_alive():
            raise AssertionError("slowloris thread did not finish")
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class HealthProber:
    """What a load balancer does: GET PATH on 127.0.0.1:PORT every INTERVAL seconds, each probe in its own
    thread (a slow answer does not delay the next one) with TIMEOUT seconds for the whole exchange, until
    DURATION seconds passed. results(): [(start, latency, status or None, error or None)]."""

    def __init__(self, port, path="/health", interval=0.25, timeout=2.0, duration=20.0):
        self.port, self.path, self.interval, self.timeout, self.duration = port, path, interval, timeout, duration
        self._lock = threading.Lock()
        self._results = []
        self._threads = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="prober")

    def _probe(self):
        t0 = time.monotonic()
        status, error = None, None
        try:
            status = http_get(self.port, self.path, timeout=self.timeout).status
        except (OSError, http.client.HTTPException) as e:
            error = type(e).__name__
        with self._lock:
            self._results.append((t0, time.monotonic() - t0, status, error))

    def _run(self):
        start = time.monotonic()
        k = 0
        while not self._stop.is_set() and k * self.interval < self.duration:
            t = threading.Thread(target=self._probe, daemon=True)
            t.start()
            self._threads.append(t)
            k += 1
            self._stop.wait(max(0, start + k * self.interval - time.monotonic()))

    def start(self):
        self._thread.start()
        return self

    def join(self):
        self._thread.join(self.duration + scaled(5))
        for t in self._threads:
            t.join(scaled(self.timeout) + 1)
        if self._thread.is_alive() or any(t.is_alive() for t in self._threads):
            raise AssertionError("prober threads did not finish")
        return self

    def stop(self):
        self._stop.set()
        return self.join()

    def results(self):
        with self._lock:
            return sorted(self._results)

    def summary(self):
        r = self.results()
        lat = sorted(x[1] for x in r if x[2] == 200)
        reasons = {}
        for _, _, status, error in r:
            if status != 200:
                key = error or f"HTTP {status}"
                reasons[key] = reasons.get(key, 0) + 1
        return {"probes": len(r), "ok": len(lat), "ok_share": len(lat) / len(r) if r else 0.0,
                "failures": reasons, "p50": lat[len(lat) // 2] if lat else None,
                "max": lat[-1] if lat else None}


# ---------------------------------------------------------------------------------------------------------
# Sockets bound by the test

def bind_tcp(port=0, backlog=128):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    return s


def socket_mode(path):
    st = os.stat(path)
    return stat.S_ISSOCK(st.st_mode), stat.S_IMODE(st.st_mode)


def write_executable(path, content, mode=0o755):
    with open(path, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    os.chmod(path, mode)
    return path


def spawn_counter_command(directory, worker_args, name="spawns"):
    """A command line for corral that appends "<WORKER_INDEX> <pid>" to DIRECTORY/NAME each time it is
    started and then execs the test worker (same pid) with WORKER_ARGS. WORKER_ARGS may be a dict
    {slot: args} with key None as the default, to give slots different behaviour. Returns (argv, path)."""
    path = os.path.join(directory, name)
    open(path, "w").close()
    if isinstance(worker_args, dict):
        cases = []
        for slot, args in worker_args.items():
            if slot is None:
                continue
            cases.append(f'{slot}) exec "$W" {" ".join(_shquote(a) for a in args)} ;;')
        default = " ".join(_shquote(a) for a in worker_args.get(None, []))
        body = f'case "$WORKER_INDEX" in {" ".join(cases)} *) exec "$W" {default} ;; esac'
    else:
        body = f'exec "$W" {" ".join(_shquote(a) for a in worker_args)}'
    script = f'echo "$WORKER_INDEX $$" >> {_shquote(path)}; W={_shquote(worker_bin())}; {body}'
    return ["/bin/sh", "-c", script], path


def read_spawns(path):
    """[(slot, pid)] from a spawn_counter_command file."""
    with open(path) as f:
        return [(a, int(b)) for a, b in (line.split() for line in f if line.strip())]


def _shquote(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


# ---------------------------------------------------------------------------------------------------------
# Test case base

class CorralTestCase(unittest.TestCase):
    """Gives each test a temporary directory and start_corral()/notify_receiver() whose processes and
    sockets are cleaned up whatever happens; prints the captured corral output of a failed test."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=f"corral-{self._testMethodName[:40]}-")
        self._corrals = []
        self.addCleanup(self._cleanup_tmp)

    def _cleanup_tmp(self):
        if os.environ.get("CORRAL_TEST_KEEP"):
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_corral(self, args, **kw):
        kw.setdefault("workdir", self.tmp)
        kw.setdefault("name", f"corral{len(self._corrals)}")
        c = Corral(args, **kw)
        self._corrals.append(c)
        self.addCleanup(c.close)
        c.start()
        return c

    def notify_receiver(self):
        r = NotifyReceiver(tempfile.mkdtemp(prefix="notify-", dir=self.tmp))
        self.addCleanup(r.close)
        return r

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            for c in self._corrals:
                sys.stderr.write(f"\n----- {c.name} (pid {c.proc.pid if c.proc else '-'}): "
                                 f"{' '.join(c.args)}\n{c.output()}\n----- end of {c.name}\n")
        return out

    def assertExitedWithin(self, corral, timeout, expected=0):
        rc = corral.wait(timeout)
        self.assertEqual(rc, expected, f"{corral.name} exit status {rc}, wanted {expected}")
        return rc

    def assertAllGone(self, pids, timeout=5):
        wait_until(lambda: not [p for p in pids if pid_alive(p)], timeout,
                   message=f"still alive: {[p for p in pids if pid_alive(p)]}")
