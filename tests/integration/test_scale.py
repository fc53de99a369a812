# SPDX-License-Identifier: MIT
"""A pool of 1,024 workers, CI-sized: it starts, serves, is sampled in batches, answers status and /metrics
with every worker in them, replaces a crashed worker, and stops with nothing left. Bounded (about 10-20 s
on 2 cores); a regression that breaks large pools fails here. The costs at this size and at 4,096 are
contrib/bench/startup.py --scale's, in docs/performance.md."""

import os
import resource
import signal
import time

import corral_harness as h

N = 1024
# What the pool needs of the fd table: corral keeps a pidfd, one or two leaf directories, a memory.events
# watch and the sampled files per worker; the harness's own limit is what corral may raise its own to.
FDS_NEEDED = 8 * N + 1024


class Scale(h.CorralTestCase):
    def test_a_pool_of_1024_workers(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertTrue(hard == resource.RLIM_INFINITY or hard >= FDS_NEEDED,
                        f"RLIMIT_NOFILE's hard limit {hard} is below the {FDS_NEEDED} a pool of {N} may need")
        port, status_port = h.free_port(), h.free_port()
        control = os.path.join(self.tmp, "control")
        c = self.start_corral(["--listen", f"127.0.0.1:{port}", "--status-listen", f"127.0.0.1:{status_port}",
                               "--count", str(N), "--control", control, "--ready-mode", "notify",
                               "--ready-timeout", "120s", "--min-uptime", "1s", "--",
                               h.worker_bin(), "--ready-delay", "0"])
        c.wait_for_line(rf"all {N} workers ready", timeout=120)
        h.wait_serving(port)

        _, st = h.control_status(control)
        pids = {w["slot"]: w["pid"] for w in st["workers"]}
        self.assertEqual((st["ready"], st["wanted"], st["processes"]), (N, N, N))
        self.assertEqual(sorted(pids), list(range(N)))
        self.assertEqual(len(set(pids.values())), N)

        # The sampler goes over the pool in batches (of about 2 ms each); a pass completes, every worker gets
        # its figures, and the per-slot series are all there, once each.
        if st["accounting"]:
            h.wait_until(lambda: h.metrics(status_port).get("corral_accounting_pass_batches", 0) >= 1, 10,
                         message="no complete sampling pass")
        text = h.metrics_text(status_port, timeout=30)
        h.check_metrics(text)
        m = h.metrics_samples(text)
        self.assertEqual(sum(1 for k, _ in m if k.startswith("corral_worker_info{")), N)
        if st["accounting"]:
            h.wait_until(lambda: all(w["memory_bytes"] > 0 for w in h.control_status(control)[1]["workers"]), 10,
                         message="a worker without memory figures")

        # A crash in a pool this size is replaced like in any other, and the rest keep serving.
        victim = pids[N // 2]
        h.sigkill(victim)
        c.wait_for_line(rf"worker {N // 2} \(pid \d+, generation 1\) started", timeout=10)
        h.wait_until(lambda: h.control_status(control)[1]["ready"] == N, 20, message="the crashed slot not ready")
        h.wait_serving(port)

        everyone = c.snapshot_tree()
        started = time.monotonic()
        c.proc.send_signal(signal.SIGTERM)
        self.assertEqual(c.proc.wait(h.scaled(60)), 0)
        stop = time.monotonic() - started
        left = [p for p in everyone if os.path.exists(f"/proc/{p}")]
        self.assertEqual(left, [], f"{len(left)} of {len(everyone)} processes left after the stop ({stop:.2f} s)")
