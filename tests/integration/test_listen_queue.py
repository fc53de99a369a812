# SPDX-License-Identifier: MIT
"""The listen queue (issue 15 item 3): for every TCP socket corral holds, the connections waiting to be
accepted and the queue's limit, from TCP_INFO, in `corral status` (table and JSON) and /metrics, equal to
what `ss -lnt` shows as Recv-Q and Send-Q. A pool made to fall behind: its workers SIGSTOPped, so the
connections a client makes pile up in the kernel's accept queue; SIGCONT drains it."""
import os
import signal
import socket
import subprocess
import unittest

import corral_harness as h

WAITING = 7


def ss_queue(port):
    """(Recv-Q, Send-Q) of the listener on 127.0.0.1:PORT, as ss -lnt prints them."""
    p = subprocess.run(["ss", "-lntH", f"sport = :{port}"], capture_output=True, text=True, timeout=10)
    rows = [line.split() for line in p.stdout.splitlines() if line.strip()]
    if len(rows) != 1:
        raise AssertionError(f"ss -lnt shows {len(rows)} listeners on port {port}: {p.stdout!r} {p.stderr!r}")
    return int(rows[0][1]), int(rows[0][2])


class ListenQueue(h.CorralTestCase):
    def test_a_pool_that_falls_behind_shows_its_queue(self):
        port, status_port = h.free_port(), h.free_port()
        control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--status-listen", f"127.0.0.1:{status_port}",
                               "--count", 2, "--control", control, "--", h.worker_bin()])
        st = h.wait_all_ready(control, 2)
        sock = st["sockets"][0]
        self.assertEqual(sock["queued"], 0)
        self.assertEqual((sock["queued"], sock["backlog"]), ss_queue(port))
        h.check_status_schema(subprocess.run([h.corral_bin(), "status", "--json", "--control", control],
                                             capture_output=True, text=True, env=h.clean_env(),
                                             timeout=h.scaled(10)).stdout)

        pids = [w["pid"] for w in st["workers"]]
        clients = []
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            # Each connect completes in the kernel (the handshake needs no accept()), then waits in the queue.
            for _ in range(WAITING):
                s = socket.create_connection(("127.0.0.1", port), timeout=h.scaled(5))
                clients.append(s)
            h.wait_until(lambda: ss_queue(port)[0] == WAITING, h.scaled(5), message="the queue never filled")
            _, st = h.control_status(control)
            recv_q, send_q = ss_queue(port)
            self.assertEqual((st["sockets"][0]["queued"], st["sockets"][0]["backlog"]), (recv_q, send_q))
            self.assertEqual(recv_q, WAITING)

            p = subprocess.run([h.corral_bin(), "status", "--control", control], capture_output=True, text=True,
                               env=h.clean_env(), timeout=h.scaled(10))
            self.assertRegex(p.stdout, rf"sockets: listen=127\.0\.0\.1:{port} \({WAITING} waiting of {send_q}\)")

            text = h.metrics_text(status_port)
            h.check_metrics(text)
            m = h.metrics(status_port)
            self.assertEqual(m[f"corral_listen_queue_length{{address=127.0.0.1:{port},socket=listen}}"], WAITING)
            self.assertEqual(m[f"corral_listen_queue_limit{{address=127.0.0.1:{port},socket=listen}}"], send_q)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        # Awake, the workers take what waited.
        h.wait_until(lambda: ss_queue(port)[0] == 0, h.scaled(10), message="the queue was never drained")
        h.wait_until(lambda: h.control_status(control)[1]["sockets"][0]["queued"] == 0, h.scaled(5))
        for s in clients:
            s.close()
        self.assertTrue(c.running())

    def test_a_unix_socket_has_no_queue_figures(self):
        path = os.path.join(self.tmp, "app.sock")
        control = os.path.join(self.tmp, "control")
        self.start_corral(["--listen", f"unix:{path}", "--count", 1, "--control", control, "--", h.worker_bin()])
        st = h.wait_all_ready(control, 1)
        self.assertEqual(len(st["sockets"]), 1)
        for sock in st["sockets"]:
            self.assertNotIn("queued", sock, sock)
            self.assertNotIn("backlog", sock, sock)
        p = subprocess.run([h.corral_bin(), "status", "--control", control], capture_output=True, text=True,
                           env=h.clean_env(), timeout=h.scaled(10))
        self.assertNotRegex(p.stdout, r"waiting of")


if __name__ == "__main__":
    unittest.main()
