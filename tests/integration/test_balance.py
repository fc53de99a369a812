# SPDX-License-Identifier: MIT
"""Balance=reuseport (issue 16, embedded mode): each slot has its own SO_REUSEPORT listening socket, bound by
corral in the group of the one it bound first; a slot's replacement (crash, reload) gets the very same socket;
the kernel spreads new connections over the slots; under load, reloads fail no request; connections that
waited in a dead worker's queue are served by its replacement, none reset; while a slot has no ready
worker, a steering program sends new connections to the slots that have one; a scale-down closes the sockets
of the slots that are gone, and with the even steering what waited in them goes to a ready slot. Each slot's
queue and the connections steered to it show in status and /metrics. With sockets from systemd (ReusePort=yes), slot 0 keeps systemd's own and the
other slots join its group. UDP, systemd's sockets without SO_REUSEPORT or of another owner, and
`corral upgrade` are refused with a message that says why."""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import corral_harness as h

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from load import Load  # noqa: E402


def socket_inode(pid, fd=3):
    """The inode of PID's fd FD when it is a socket ("socket:[N]" -> N)."""
    link = os.readlink(f"/proc/{pid}/fd/{fd}")
    assert link.startswith("socket:["), link
    return int(link[8:-1])


def reuseport_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def read_answer(s):
    """Reads S to its end and closes it: the answer's head."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")


def header(head, name):
    """The value of header NAME (lower case) in HEAD."""
    return [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith(name + ":")][0]


def ss_queue_by_inode(port):
    """{socket inode: Recv-Q} of the listeners on 127.0.0.1:PORT, as ss -lnte shows them."""
    p = subprocess.run(["ss", "-lnteH", f"sport = :{port}"], capture_output=True, text=True, timeout=10)
    out = {}
    for line in p.stdout.splitlines():
        ino = [w for w in line.split() if w.startswith("ino:")]
        if ino:
            out[int(ino[0][4:])] = int(line.split()[1])
    return out


class Balance(h.CorralTestCase):
    def start_passed(self, sock, count=4, prefix=()):
        """corral with SOCK passed as systemd passes a .socket unit's (LISTEN_FDS, named http)."""
        self.control = os.path.join(self.tmp, "control")
        self.port = sock.getsockname()[1]
        c = h.Corral(["--balance", "reuseport", "--count", str(count), "--control", self.control, "--",
                      h.worker_bin()], mode="fds", sockets=[(sock, "http")], workdir=self.tmp, name="passed",
                     prefix=prefix)
        self.addCleanup(c.close)
        c.start()
        return c

    def start(self, count=4, extra=(), config=None):
        self.control = os.path.join(self.tmp, "control")
        if not config:
            self.port = h.free_port()
        args = ["--config", config] if config else ["--listen", f"127.0.0.1:{self.port}", "--count", str(count),
                                                      "--balance", "reuseport"]
        c = self.start_corral([*args, "--control", self.control, *extra, "--", h.worker_bin()])
        h.wait_all_ready(self.control, count)
        return c

    def slots(self):
        """{slot: (pid, inode of its fd 3)} of the ready workers."""
        _, st = h.control_status(self.control)
        return {w["slot"]: (w["pid"], socket_inode(w["pid"])) for w in st["workers"] if w["state"] == "ready"}

    def start_config(self, count):
        """corral with Balance=reuseport from a config file with Count=COUNT (set_count() changes it)."""
        self.conf, self.port = os.path.join(self.tmp, "corral.conf"), h.free_port()
        self.write_config(count)
        return self.start(count, config=self.conf)

    def write_config(self, count):
        with open(self.conf, "w") as f:
            f.write(f"[Worker]\nExecStart={h.worker_bin()}\nCount={count}\n[Socket]\nListen=127.0.0.1:{self.port}\n"
                    "Balance=reuseport\n")

    def set_count(self, count):
        """Count=COUNT by a reload of the config file, waited for."""
        self.write_config(count)
        p = self.ctl("reload", "--wait")
        self.assertEqual(p.returncode, 0, p.stderr)

    def ctl(self, *args, timeout=60):
        return subprocess.run([h.corral_bin(), *args, "--control", self.control], capture_output=True, text=True,
                              timeout=h.scaled(timeout), env=h.clean_env())

    def test_each_slot_keeps_its_own_socket(self):
        c = self.start(4)
        before = self.slots()
        self.assertEqual(sorted(before), [0, 1, 2, 3])
        self.assertEqual(len({ino for _, ino in before.values()}), 4, f"slots share a socket: {before}")
        # Every slot's socket is corral's too (it keeps the queue while the slot's worker changes).
        self.assertLessEqual({ino for _, ino in before.values()}, socket_inodes(c.pid))
        # The kernel spreads new connections over the slots' sockets: fresh connections reach every slot.
        h.collect_workers(self.port, 4, corral=c)

        # A crash: the replacement of slot 2 gets slot 2's socket, nobody else's.
        h.sigkill(before[2][0])
        h.wait_until(lambda: self.slots().get(2, (before[2][0],))[0] != before[2][0], 10,
                     message="slot 2 not replaced")
        after = self.slots()
        self.assertEqual({s: ino for s, (_, ino) in after.items()}, {s: ino for s, (_, ino) in before.items()})

        # A reload: every slot's new worker takes over its slot's socket.
        p = self.ctl("reload", "--wait")
        self.assertEqual(p.returncode, 0, p.stderr)
        rolled = self.slots()
        self.assertTrue(all(rolled[s][0] != after[s][0] for s in rolled), rolled)
        self.assertEqual({s: ino for s, (_, ino) in rolled.items()}, {s: ino for s, (_, ino) in before.items()})

    def under_load(self, clients, reloads, then=None):
        """Runs CLIENTS closed-loop clients, does RELOADS reloads (each waited for, then more requests
        served), then THEN() if given (more requests served after it too; a list: each in turn); returns
        the load's result."""
        load = Load(self.port, clients, duration=3600, timeout=h.scaled(5))
        thread = threading.Thread(target=lambda: setattr(load, "result", load.run()), daemon=True)
        thread.start()

        def served_after(what):
            before = load.counts()["ok"]
            what()
            h.wait_until(lambda: load.counts()["ok"] > before + 50, 20, message="nothing served after it")

        def reload():
            p = self.ctl("reload", "--wait")
            self.assertEqual(p.returncode, 0, p.stderr)
        try:
            h.wait_until(lambda: load.counts()["ok"] > 200, 20, message="the load never got going")
            for _ in range(reloads):
                served_after(reload)
            for step in (then if isinstance(then, list) else [then] if then else []):
                served_after(step)
        finally:
            load.stop.set()
            thread.join(h.scaled(30))
        return load.result

    def ready_pids(self):
        """{slot: pid} of the ready workers."""
        _, st = h.control_status(self.control)
        return {w["slot"]: w["pid"] for w in st["workers"] if w["state"] == "ready"}

    def crash_one(self, rng):
        """SIGKILLs the worker of a random ready slot and waits until the slot has a ready replacement."""
        pids = self.ready_pids()
        slot = rng.choice(sorted(pids))
        victim = pids[slot]
        h.sigkill(victim)
        h.wait_until(lambda: self.ready_pids().get(slot, victim) != victim, 10, message=f"slot {slot} not replaced")

    def test_reloads_and_crashes_under_load(self):
        # 20 reloads under 32 keep-alive clients: every request answered.
        self.start(4)
        result = self.under_load(32, 20)
        self.assertEqual(result["failed"], 0, result)
        self.assertEqual(len(result["generations"]), 21, result)
        # 20 SIGKILLs of random workers: a SIGKILL takes the requests in flight on its worker with it (reset,
        # or closed without an answer; docs/performance.md section 8), nothing else fails and nothing is
        # refused: what waited in a dead worker's socket is served by its replacement.
        rng = random.Random(16)
        result = self.under_load(32, 0, then=[lambda: self.crash_one(rng) for _ in range(20)])
        self.assertLessEqual(result["failed"], 20, result)
        self.assertEqual(result["refused"], 0, result)
        for error in result["errors"]:
            self.assertRegex(error, r"RemoteDisconnected|ConnectionResetError", result)
        _, st = h.control_status(self.control)
        self.assertEqual(sum(w["restarts"] for w in st["workers"]), 20, st["workers"])

    def test_scale_down_and_up_under_load_fail_nothing(self):
        # Count=4 -> 2 -> 4 by config reloads under load: slots 2 and 3 close their sockets and open new ones.
        self.start_config(4)

        def scale(n):
            def step():
                self.set_count(n)
                h.wait_until(lambda: sorted(self.slots()) == list(range(n)), 10, message=f"not {n} slots")
            return step
        result = self.under_load(32, 0, then=[scale(2), scale(4), scale(1), scale(4)])
        self.assertEqual(result["failed"], 0, result)
        self.assertEqual(len({ino for _, ino in self.slots().values()}), 4)

    def test_connections_waiting_on_a_dead_slot_are_served_by_its_replacement(self):
        c = self.start(2)
        slots = self.slots()
        stopped = slots[1][0]
        c.tracker.track(stopped)
        os.kill(stopped, signal.SIGSTOP)
        try:
            # Fresh connections, each with a request sent: the kernel puts about half of them in slot 1's
            # queue, where the stopped worker does not accept them.
            conns = []
            for _ in range(24):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=h.scaled(10))
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                conns.append(s)
            # corral status counts what waits in every slot's socket (slot 0's accepts at once): the ~12
            # connections in slot 1's queue show, against the limits of both sockets.
            h.wait_until(lambda: h.control_status(self.control)[1]["sockets"][0]["queued"] > 0, 5,
                         message="the connections waiting in slot 1's socket do not show in corral status")
            sock = h.control_status(self.control)[1]["sockets"][0]
            self.assertLessEqual(sock["queued"], 24, sock)
            self.assertEqual(sock["backlog"] % 2, 0, sock)
            h.sigkill(stopped)
            # Slot 1's socket outlives its worker: the replacement accepts what waited there; none is reset.
            answered = {}
            for s in conns:
                head = read_answer(s)
                self.assertTrue(head.startswith("HTTP/1.1 200"), head)
                answered.setdefault(header(head, "x-worker-slot"), set()).add(int(header(head, "x-worker-pid")))
        finally:
            try:
                os.kill(stopped, signal.SIGCONT)
            except ProcessLookupError:
                pass
        # Slot 1's share was answered by the new worker of slot 1, not by slot 0 and not by the dead one.
        self.assertIn("1", answered, answered)
        self.assertNotIn(stopped, answered["1"])
        self.assertEqual(answered["1"], {self.slots()[1][0]})

    def test_nothing_new_waits_behind_a_slot_that_is_down(self):
        # With the even steering (eBPF, as root): slot 1 is not in the ready list.
        c = self.nothing_new_waits_behind_a_slot_that_is_down()
        c.wait_for_line(r"new connections go to the ready slots in turn \(eBPF\)", timeout=1)

    def test_nothing_new_waits_behind_a_slot_that_is_down_without_privileges(self):
        # Without CAP_BPF, with the classic program: it says so at start, and still steers.
        if os.geteuid() != 0:
            self.skipTest("needs root to start corral as another user")
        os.chmod(self.tmp, 0o777)
        c = self.nothing_new_waits_behind_a_slot_that_is_down(
            prefix=[shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"])
        c.wait_for_line(r"Balance=reuseport: cannot load the even steering program \(Operation not permitted; "
                        r"eBPF needs CAP_BPF", timeout=1)

    def nothing_new_waits_behind_a_slot_that_is_down(self, prefix=()):
        # Slot 1's worker fails at start and, by RestartPreventExitStatus=, is not started again: its socket
        # stays in the group with nobody accepting. The steering program sends every new connection to
        # slot 0; without it, about half would wait in slot 1's queue for good.
        self.port, self.control = h.free_port(), os.path.join(self.tmp, "control")
        cmd, _ = h.spawn_counter_command(self.tmp, {"1": ["--exit-at-start", "3"], None: []})
        c = self.start_corral(["--listen", f"127.0.0.1:{self.port}", "--count", "2", "--balance", "reuseport",
                               "--restart-prevent-exit-status", "3", "--control", self.control, "--", *cmd],
                              prefix=prefix)
        c.wait_for_line(r"slot 1: exit status 3", timeout=20)
        h.wait_serving(self.port)
        conns = [socket.create_connection(("127.0.0.1", self.port), timeout=h.scaled(5)) for _ in range(24)]
        for s in conns:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for i, s in enumerate(conns):
            try:
                head = s.recv(4096).decode(errors="replace")
            except socket.timeout:
                self.fail(f"connection {i} of 24 got no answer in 5 s: stranded behind slot 1")
            finally:
                s.close()
            self.assertIn("X-Worker-Slot: 0", head)
        return c

    def test_new_connections_go_to_the_slots_in_turn(self):
        # The even steering: 8 slots, 40 keep-alive connections opened one after the other, each held open.
        # Round robin gives every worker exactly 5 (the kernel's hash alone gave 1 to 7 of 50 over 16).
        c = self.start(8)
        c.wait_for_line(r"new connections go to the ready slots in turn \(eBPF\)", timeout=1)
        conns = []
        try:
            seen = {}
            for _ in range(40):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=h.scaled(5))
                conns.append(s)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                head = s.recv(4096).decode(errors="replace")
                slot = header(head, "x-worker-slot")
                seen[slot] = seen.get(slot, 0) + 1
        finally:
            for s in conns:
                s.close()
        self.assertEqual(sorted(seen), [str(k) for k in range(8)], seen)
        self.assertEqual(set(seen.values()), {5}, seen)

    def test_each_slot_shows_its_queue_and_connections(self):
        # Slot 1's worker stopped: the 2 connections of 8 that the round robin hands slot 1 wait in slot 1's
        # queue, which status, /metrics and ss agree on; every slot counts the 2 it was handed.
        status_port = h.free_port()
        self.start(4, extra=["--status-listen", f"127.0.0.1:{status_port}"])
        stopped = self.slots()[1]
        clients = []
        os.kill(stopped[0], signal.SIGSTOP)
        try:
            for _ in range(8):
                clients.append(socket.create_connection(("127.0.0.1", self.port), timeout=h.scaled(5)))
            h.wait_until(lambda: ss_queue_by_inode(self.port).get(stopped[1]) == 2, 5,
                         message="slot 1's queue never filled")
            h.wait_until(lambda: sum(ss_queue_by_inode(self.port).values()) == 2, 5,
                         message="the other slots never took theirs")
            p = self.ctl("status", "--json")
            h.check_status_schema(p.stdout)
            _, st = h.control_status(self.control)
            self.assertEqual([(x["slot"], x["queued"]) for x in st["slots"]], [(0, 0), (1, 2), (2, 0), (3, 0)])
            self.assertEqual(st["sockets"][0]["queued"], 2)
            table = self.ctl("status").stdout
            self.assertRegex(table, r"\n1 +%d +1 +ready .* 2 +2 +-\n" % stopped[0])
            text = h.metrics_text(status_port)
            h.check_metrics(text)
            m = h.metrics(status_port)
            self.assertEqual([m[f"corral_slot_listen_queue_length{{slot={k}}}"] for k in range(4)], [0, 2, 0, 0])
            self.assertEqual([m[f"corral_slot_connections_total{{slot={k}}}"] for k in range(4)], [2, 2, 2, 2])
        finally:
            os.kill(stopped[0], signal.SIGCONT)
            for s in clients:
                s.close()
        h.wait_until(lambda: [x["queued"] for x in h.control_status(self.control)[1]["slots"]] == [0] * 4, 10,
                     message="slot 1's queue was never drained")

    def test_scale_down_closes_the_slots_sockets(self):
        c = self.start_config(4)
        before = self.slots()
        self.set_count(2)
        h.wait_until(lambda: sorted(self.slots()) == [0, 1], 10, message="slots 2 and 3 still there")
        held = socket_inodes(c.pid)
        self.assertNotIn(before[2][1], held)
        self.assertNotIn(before[3][1], held)
        self.assertIn(before[0][1], held)
        self.assertIn(before[1][1], held)
        h.collect_workers(self.port, 2, corral=c)

    def test_scale_down_hands_what_waits_in_a_closing_slot_to_a_ready_one(self):
        # Slot 3's worker hangs (GET /hang: it accepts nothing more, and SIGTERM kills it at once): of 8 new
        # connections the round robin puts 2 in slot 3's socket. Count=4 -> 2: slot 3's socket closes with
        # them in it, and the eBPF program (SELECT_OR_MIGRATE) moves them to a ready slot, which answers them:
        # none reset, whatever net.ipv4.tcp_migrate_req says.
        if tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2]) < (5, 14):
            self.skipTest("SELECT_OR_MIGRATE needs Linux 5.14")
        c = self.start_config(4)
        c.wait_for_line(r"what waits in a slot's sockets when they close moves to a ready slot", timeout=1)

        def request(path="/"):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=h.scaled(10))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return s

        def answer(s):
            head = read_answer(s)
            self.assertTrue(head.startswith("HTTP/1.1 200"), head)
            return header(head, "x-worker-slot")

        # The round robin hands connection K to slot K % 4: fill up to slot 3's turn, then hang it.
        handed = sum(x.get("connections", 0) for x in h.control_status(self.control)[1]["slots"])
        for _ in range((3 - handed % 4) % 4):
            self.assertNotEqual(answer(request()), "3")
        hung = request("/hang")
        c.wait_for_line(r"test-worker 3: hanging", timeout=10)
        conns = [request() for _ in range(8)]
        h.wait_until(lambda: [x["queued"] for x in h.control_status(self.control)[1]["slots"]][3] == 2, 5,
                     message="slot 3's queue never filled")
        counted = [x["connections"] for x in h.control_status(self.control)[1]["slots"]][:2]
        self.set_count(2)
        answered = []
        for s in conns:
            try:
                answered.append(answer(s))
            except ConnectionResetError:
                self.fail(f"a connection waiting in slot 3's socket was reset; answered before it: {answered}")
        hung.close()
        # Slot 3's two were answered by slot 0 or 1 (slot 2's worker answered its own before it stopped).
        self.assertEqual(len(answered), 8)
        self.assertNotIn("3", answered)
        self.assertEqual(sorted(self.slots()), [0, 1])
        # A connection moved from a closing socket is not counted again where it lands.
        self.assertEqual([x["connections"] for x in h.control_status(self.control)[1]["slots"]], counted)

    def test_sockets_from_systemd_with_reuseport_yes(self):
        # What ReusePort=yes in a .socket unit gives: a listener with SO_REUSEPORT, owned by corral's user.
        sock = reuseport_listener()
        self.addCleanup(sock.close)
        c = self.start_passed(sock)
        h.wait_all_ready(self.control, 4)
        before = self.slots()
        inodes = {ino for _, ino in before.values()}
        self.assertEqual(len(inodes), 4, f"slots share a socket: {before}")
        # Slot 0 serves on systemd's own socket (no member of the group that nobody accepts on).
        self.assertEqual(before[0][1], os.fstat(sock.fileno()).st_ino)
        h.collect_workers(self.port, 4, corral=c)

        def crash():
            victim = self.slots()[2][0]
            h.sigkill(victim)
            h.wait_until(lambda: self.slots().get(2, (victim,))[0] != victim, 10, message="slot 2 not replaced")
        result = self.under_load(16, 3, then=crash)
        self.assertEqual((result["failed"], result["ok"] > 0), (0, True), result)
        self.assertEqual({s: ino for s, (_, ino) in self.slots().items()},
                         {s: ino for s, (_, ino) in before.items()})
        self.assertEqual(c.stop(), 0)

    def test_what_cannot_balance_is_refused(self):
        cases = [
            (["--listen", "udp:127.0.0.1:0", "--balance", "reuseport"], "Balance=reuseport works with TCP sockets only"),
            (["--listen", "127.0.0.1:0", "--balance", "roundrobin"], "'shared' or 'reuseport'"),
        ]
        for args, message in cases:
            for verb in ([], ["check"]):
                p = subprocess.run([h.corral_bin(), *verb, *args, "--", h.worker_bin()], capture_output=True,
                                   text=True, timeout=h.scaled(10), env=h.clean_env())
                self.assertEqual(p.returncode, 78, (verb, args, p.stderr))
                self.assertIn(message, p.stderr, (verb, args))
        # A socket from systemd without ReusePort=yes: no group to join, refused at start.
        sock = h.bind_tcp(0)
        self.addCleanup(sock.close)
        c = self.start_passed(sock)
        self.assertEqual(c.proc.wait(h.scaled(10)), 78)
        self.assertIn("Balance=reuseport needs ReusePort=yes in the .socket unit: systemd passed 'http' "
                      f"(127.0.0.1:{self.port}) without SO_REUSEPORT", c.output())
        # One of another owner (systemd binds as root, corral runs as another user): the kernel would refuse
        # the slots' sockets, so corral does at start.
        if os.geteuid() == 0:
            sock = reuseport_listener()
            self.addCleanup(sock.close)
            os.chmod(self.tmp, 0o777)
            c = self.start_passed(sock, prefix=[shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"])
            self.assertEqual(c.proc.wait(h.scaled(10)), 78, c.output())
            self.assertIn("cannot join the SO_REUSEPORT group of 'http'", c.output())
            self.assertIn("belongs to uid 0 and corral runs as uid 65534", c.output())
        # An upgrade in place would lose the slots' sockets: refused, and the pool keeps serving.
        self.start(2)
        p = self.ctl("upgrade")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("Balance=reuseport", p.stdout + p.stderr)
        h.wait_all_ready(self.control, 2)
