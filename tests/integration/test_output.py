# SPDX-License-Identifier: MIT
"""Worker output (WorkerOutput=): the prefix relay keeps every line whole and attributed, however many
workers write at once and however long their lines; a stdout nobody reads costs dropped lines, counted and
reported, never a stalled corral; a reload changes the output of the new generation; WorkerOutput=journal
without a journald falls back to corral's own output; WorkerOutput=json and --log-format json make every
line on corral's stdout and stderr one JSON object, the workers' with slot and pid, corral's own with its
event's MESSAGE_ID and fields. (Under a real journald: tests/e2e, worker-output.)"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest

import corral_harness as h

LINE_RE = re.compile(r"^\[(\d+) (\d+)(\+?)\] (.*)$", re.S)
STARTED_RE = re.compile(r"^corral: worker (\d+) \(pid (\d+), generation (\d+)\) started$")
DROPPED_RE = re.compile(r"dropped (\d+) lines of worker output: corral's (\w+(?: and \w+)?) is not keeping up "
                        r"\((\d+) in all\)")


def expected_body(stream, slot, pid, seq, size):
    """What the test worker writes (tests/worker, log_line()), without the newline."""
    head = f"LOG {stream} {slot} {pid} {seq} "
    pattern = f"{slot}.{seq}."
    n = size - 1 - len(head)
    return head + (pattern * (n // len(pattern) + 1))[:n]


class Reader:
    """Reads a pipe to its end in a thread, keeping its lines (bytes decoded as latin-1: one char a byte)."""

    def __init__(self, fileobj):
        self.lines = []
        self.n_lines = 0
        self._thread = threading.Thread(target=self._run, args=(fileobj,), daemon=True)
        self._thread.start()

    def _run(self, f):
        # Big reads, split at the end: a reader as fast as Python gets, so that drops are corral's doing.
        self._chunks = []
        fd = f.fileno()
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            self._chunks.append(b)
            self.n_lines += b.count(b"\n")
        self.lines = b"".join(self._chunks).decode("latin-1").splitlines(keepends=True)
        f.close()

    def join(self, timeout):
        self._thread.join(h.scaled(timeout))
        return not self._thread.is_alive()


class Output(h.CorralTestCase):
    def started_pids(self, c):
        """{slot: pid} of every worker corral said it started, generation 1."""
        pids = {}
        for line in c.log.lines():
            m = STARTED_RE.match(line)
            if m:
                pids.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        return pids

    def dropped(self, c, which):
        """Lines dropped on corral's WHICH ("stdout", "stderr"), from its last notice."""
        n = 0
        for line in c.log.lines():
            m = line.startswith("corral: ") and DROPPED_RE.search(line)
            if m and which in m.group(2):
                n = int(m.group(3))
        return n

    def check_lines(self, lines, stream, size, pids, n_lines, own_prefix=None):
        """Every line a whole relayed line of a known worker (or one of corral's own, starting with
        OWN_PREFIX); returns {slot: [seq...]} of the LOG lines and the count of bad ones."""
        seqs, bad = {}, []
        for raw in lines:
            if not raw.endswith("\n"):
                bad.append(("unended", raw[:120]))
                continue
            line = raw[:-1]
            m = LINE_RE.match(line)
            if not m:
                if own_prefix is None or not line.startswith(own_prefix) or "LOG " in line:
                    bad.append(("unprefixed", line[:120]))
                continue
            slot, pid, more, body = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
            if pid not in pids.get(slot, ()):
                bad.append(("wrong slot or pid", line[:120]))
                continue
            if not body.startswith("LOG "):
                if "LOG " in body or more:
                    bad.append(("mixed", line[:120]))
                continue
            fields = body.split(" ", 5)
            try:
                seq = int(fields[4])
            except (IndexError, ValueError):
                bad.append(("torn", line[:120]))
                continue
            if more or fields[1] != stream or fields[2] != str(slot) or fields[3] != str(pid) or \
                    body != expected_body(stream, slot, pid, seq, size):
                bad.append(("torn or mixed", line[:120]))
                continue
            seqs.setdefault(slot, []).append(seq)
        return seqs, bad

    def test_prefix_16_workers_8k_lines_whole_and_attributed(self):
        workers, n_lines, size = 16, int(os.environ.get("CORRAL_OUTPUT_LINES", "200")), 8192
        port = h.free_port()
        control = os.path.join(self.tmp, "control")
        # corral's stdout is a pipe read by cat (into a file): a reader that keeps up, unlike a Python thread
        # sharing two cores with 16 busy workers. Its stderr is the harness's, read line by line in Python.
        path = os.path.join(self.tmp, "stdout")
        with open(path, "wb") as f:
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=f)
        self.addCleanup(cat.kill)
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", workers, "--worker-output", "prefix",
                               "--control", control, "--", h.worker_bin(), "--log-lines", n_lines,
                               "--log-bytes", size, "--log-every", 10], stdout=cat.stdin)
        cat.stdin.close()
        want = workers * n_lines
        started = time.monotonic()

        def relayed():
            with open(path, "rb") as f:
                n = f.read().count(b"\n")
            return n + self.dropped(c, "stdout") >= want and \
                sum(1 for l in c.log.lines() if l.startswith("[") and " LOG err " in l[:40]) + \
                self.dropped(c, "stderr") >= want
        h.wait_until(relayed, 120, interval=0.2, message=f"not all of {want} lines on stdout and stderr relayed")
        elapsed = time.monotonic() - started
        self.assertEqual(c.stop(), 0)
        self.assertEqual(cat.wait(h.scaled(10)), 0)
        with open(path, "rb") as f:
            out = f.read().decode("latin-1").splitlines(keepends=True)

        pids = self.started_pids(c)
        self.assertEqual(sorted(pids), list(range(workers)))
        for stream, lines, own in (("out", out, None), ("err", [l + "\n" for l in c.log.lines()], "corral: ")):
            seqs, bad = self.check_lines(lines, stream, size, pids, n_lines, own)
            self.assertEqual(bad[:5], [], f"{len(bad)} bad lines on std{stream}")
            dropped = self.dropped(c, "stdout" if stream == "out" else "stderr")
            got = sum(len(s) for s in seqs.values())
            self.assertEqual(got + dropped, want, f"std{stream}: {got} relayed, {dropped} dropped")
            for slot, s in seqs.items():
                self.assertEqual(s, sorted(set(s)), f"slot {slot}: lines out of order or twice on std{stream}")
            print(f"\nstd{stream}: {workers} workers x {n_lines} lines of {size} bytes: {got} whole and attributed, "
                  f"0 torn, 0 mixed, {dropped} dropped, {elapsed:.2f} s", flush=True)

    def test_long_lines_cut_into_marked_pieces(self):
        port = h.free_port()
        size = 40000  # two whole pieces of 16 KiB and a last one
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 1, "--worker-output", "prefix", "--",
                               h.worker_bin(), "--log-lines", 3, "--log-bytes", size], stdout=subprocess.PIPE)
        out = Reader(c.proc.stdout)
        h.wait_until(lambda: out.n_lines >= 9, 20, message="the long lines were not relayed")
        self.assertEqual(c.stop(), 0)
        self.assertTrue(out.join(10))
        pid = min(self.started_pids(c)[0])
        lines, pieces = [], []
        for raw in out.lines:
            m = LINE_RE.match(raw.rstrip("\n"))
            self.assertTrue(m and int(m.group(2)) == pid, raw[:120])
            pieces.append(m.group(4))
            self.assertLessEqual(len(m.group(4)), 16384)
            if not m.group(3):
                lines.append("".join(pieces))
                pieces = []
        self.assertEqual(pieces, [])
        self.assertEqual(lines, [expected_body("out", 0, pid, seq, size) for seq in range(3)])
        self.assertEqual(len(out.lines), 9, "each 39999-byte line in 3 pieces")

    def test_unread_stdout_drops_lines_never_stalls(self):
        port, status_port = h.free_port(), h.free_port()
        control = os.path.join(self.tmp, "control")
        r, w = os.pipe()  # nobody reads r
        self.addCleanup(os.close, r)
        try:
            c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 4, "--worker-output", "prefix",
                                   "--status-listen", f"127.0.0.1:{status_port}", "--control", control, "--",
                                   h.worker_bin(), "--log-bytes", 4096, "--log-every", 1],
                                  stdout=w)
        finally:
            os.close(w)
        c.wait_for_line(r"dropped \d+ lines of worker output: corral's stdout is not keeping up", timeout=20)
        worst_status = worst_health = 0.0
        for _ in range(10):
            t = time.monotonic()
            rc, st = h.control_status(control, timeout=5)
            worst_status = max(worst_status, time.monotonic() - t)
            self.assertEqual(rc, 0, st)
            t = time.monotonic()
            self.assertEqual(h.http_get(status_port, "/health", timeout=5).status, 200)
            worst_health = max(worst_health, time.monotonic() - t)
            time.sleep(0.1)
        dropped = h.metrics(status_port)["corral_worker_output_dropped_lines_total"]
        self.assertGreater(dropped, 0)
        # The workers were not held up either: they keep writing, and stderr (read) keeps getting lines.
        before = c.log.count(r"^\[\d+ \d+\] LOG err ")
        h.wait_until(lambda: c.log.count(r"^\[\d+ \d+\] LOG err ") > before + 20, 10,
                     message="workers stopped writing")
        self.assertLess(worst_status, h.scaled(1.0), "corral status was slow")
        self.assertLess(worst_health, h.scaled(1.0), "/health was slow")
        t = time.monotonic()
        self.assertEqual(c.stop(timeout=15), 0)
        stop_s = time.monotonic() - t
        print(f"\nunread stdout: {dropped:.0f} lines dropped by the time of /metrics; slowest corral status "
              f"{worst_status * 1000:.0f} ms, slowest /health {worst_health * 1000:.0f} ms, stop {stop_s:.2f} s",
              flush=True)

    def test_reload_changes_the_output_of_the_new_generation(self):
        port = h.free_port()
        control = os.path.join(self.tmp, "control")
        conf = os.path.join(self.tmp, "app.conf")

        def write(mode):
            with open(conf, "w") as f:
                f.write(f"[Worker]\nExecStart={h.worker_bin()}\nCount=2\nWorkerOutput={mode}\n"
                        f"[Socket]\nListen=127.0.0.1:{port}\n")
        write("inherit")
        c = self.start_corral(["--config", conf, "--control", control])
        h.wait_all_ready(control, 2)
        self.assertEqual(c.log.count(r"^test-worker \d: pid \d+ serving"), 2)
        write("prefix")
        start = len(c.log.lines())
        c.send_signal(signal.SIGHUP)
        pids = [int(c.wait_for_line(rf"^\[{slot} (\d+)\] test-worker {slot}: pid \1 serving", timeout=20,
                                    start=start).group(1)) for slot in (0, 1)]
        self.assertEqual(c.stop(), 0)
        # The last line a worker writes before it exits is read after its exit, not lost.
        for slot, pid in enumerate(pids):
            self.assertEqual(c.log.count(rf"^\[{slot} {pid}\] test-worker {slot}: drained, \d+ connections left, "
                                         r"exiting$"), 1, f"slot {slot}: its last line was lost")

    def test_json_lines_for_workers_and_corral(self):
        port = h.free_port()
        control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--log-format", "json", "--listen", f"127.0.0.1:{port}", "--count", 2,
                               "--worker-output", "json", "--control", control, "--", h.worker_bin(),
                               "--log-lines", 3, "--log-bytes", 100, "--log-level-line"], stdout=subprocess.PIPE)
        out = Reader(c.proc.stdout)
        h.wait_all_ready(control, 2)
        h.wait_until(lambda: out.n_lines >= 8 and c.log.count(r'"message":"LOG err ') >= 6, 20,
                     message="the workers' lines were not relayed")
        started = [json.loads(l) for l in c.log.lines() if '"message_id":"7d91c7b1a6d34bfcaa25f1d8dc983df0"' in l]
        self.assertEqual(len(started), 2, c.log.lines())
        victim = started[0]["worker_pid"]
        h.sigkill(victim)
        c.wait_for_line(r'"message_id":"1bcd44d3a6ae4e6780c87b2e699c2c38"', timeout=20)
        self.assertEqual(c.stop(), 0)
        self.assertTrue(out.join(10))

        stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        pids = {e["worker_pid"]: e["worker_slot"] for e in started}
        err = [json.loads(l) for l in c.log.lines()]  # every line on stderr is one JSON object
        for e in err:
            self.assertRegex(e["time"], stamp)
            self.assertIn(e["source"], ("corral", "worker"), e)
        own = [e for e in err if e["source"] == "corral"]
        self.assertTrue(all(e["pid"] == c.proc.pid and e["level"] in ("info", "notice", "warning", "err")
                            for e in own), own)
        crash = [e for e in own if e.get("message_id") == "1bcd44d3a6ae4e6780c87b2e699c2c38"]
        self.assertEqual(len(crash), 1, own)
        self.assertEqual((crash[0]["worker_pid"], crash[0]["worker_slot"], crash[0]["level"]),
                         (victim, pids[victim], "warning"), crash[0])
        self.assertIn(f"pid {victim}", crash[0]["message"])

        relayed = [json.loads(l) for l in out.lines] + [e for e in err if e["source"] == "worker"]
        logs = {}
        for e in relayed:
            self.assertEqual(set(e), {"source", "slot", "pid", "stream", "time", "level", "message"}, e)
            self.assertRegex(e["time"], stamp)
            if e["pid"] in pids:
                self.assertEqual(e["slot"], pids[e["pid"]], e)
            if e["message"].startswith("LOG "):
                stream = e["message"].split(" ")[1]
                self.assertEqual((e["stream"], e["level"]),
                                 ("stdout", "info") if stream == "out" else ("stderr", "warning"), e)
                self.assertEqual(e["message"], expected_body(stream, e["slot"], e["pid"],
                                                             int(e["message"].split(" ")[4]), 100))
                logs.setdefault((e["pid"], stream), []).append(e)
        for pid in pids:
            self.assertEqual([len(logs.get((pid, s), [])) for s in ("out", "err")], [3, 3], f"pid {pid}")
        # "<3>LOG-PRIO SLOT PID" on stdout: the syslog prefix is the level, as in the journal.
        prio = [e for e in relayed if e["message"].startswith("LOG-PRIO ")]
        self.assertEqual(sorted(e["pid"] for e in prio if e["pid"] in pids), sorted(pids))
        self.assertTrue(all(e["level"] == "err" and e["stream"] == "stdout" for e in prio), prio)

    def test_journal_without_journald_falls_back(self):
        if os.path.exists("/run/systemd/journal/stdout"):
            raise unittest.SkipTest("a journald listens here: the e2e tier tests WorkerOutput=journal")
        port = h.free_port()
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--count", 2, "--worker-output", "journal",
                               "--", h.worker_bin()])
        c.wait_for_line(r"WorkerOutput=journal failed for worker \d, its output goes to corral's")
        for slot in (0, 1):
            c.wait_for_line(rf"^test-worker {slot}: pid \d+ serving")
        self.assertEqual(c.stop(), 0)
        self.assertEqual(c.log.count(r"WorkerOutput=journal failed"), 1, "said more than once")


if __name__ == "__main__":
    unittest.main()
