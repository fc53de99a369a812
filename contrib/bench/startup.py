#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Start-up, idle cost and crash recovery of corral with the test worker (ReadyMode=notify, --ready-delay 0).

For each N in --counts (default 1,4,64,1024), corral is started --starts times; each time:
  - start-to-all-ready: from just before corral is exec'd to its log line "all N workers ready";
  - spawn-to-ready: every "worker X (pid P) ready after T" line (corral's own measurement, from fork to
    READY=1, so fork + exec + the worker's init);
and on the first start of each N, once everything is ready and after a 1 s settle:
  - the master's VmRSS and Pss (/proc/<corral pid>/smaps_rollup), its open fds, the workers' total Pss;
  - the master's CPU time (utime+stime from /proc/<pid>/stat, in clock ticks, and the ns run time from
    /proc/<pid>/schedstat) over --idle seconds (default 10) of idling.
Then crash-to-respawn on pools of --respawn-workers (default 1 and 4): --samples times (default 20), SIGKILL one
worker by pid (a pidfd) and measure until (a) corral logs "worker S (pid Q, generation G) started" for its
slot and (b) the new worker of that slot answers HTTP (probed with a burst of fresh connections, so that it
gets one of them as soon as it accepts; with N=1 the queued probe is answered by the new worker itself, so
that figure is exact, with N=4 it may lag by a probe burst, ~2 ms). Waits --min-uptime + 0.3 s between kills so that each crash counts
as "ran long enough" and is respawned at once (no backoff).

With --scale N[,N...], one more pool of each N, with a control socket and /metrics: the last sampling pass
over it as /metrics reports it (its duration, batches and longest batch: the longest the sampler held the
event loop), the master's CPU (schedstat) for each of --scrapes `corral status --json` and /metrics
requests, and kill-to-"started" (the fork) and kill-to-"ready" (exec and READY=1: an upper bound of
crash-to-exec) for --scale-kills workers (0: none), then as many again while another process scrapes
/metrics back to back. --corral-args passes more arguments to every corral ('--cgroup-root none': the /proc
accounting backend).

Only 127.0.0.1 is used; every process started is stopped by pid (pidfd) at the end; every wait is bounded.
The soft RLIMIT_NOFILE is raised (within the hard limit) for N=1024; the run aborts if it cannot cope.

    contrib/bench/startup.py [--counts 1,4,64,1024] [--starts 3] [--idle 10] [--samples 20] [--json]
    contrib/bench/startup.py --counts 1024,4096 --starts 1 --samples 0 --scale 4096   # issue 15's figures
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def smaps_rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        pass
    return out


def vm_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def mem_available_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return None


def schedstat_ns(pid):
    """Nanoseconds PID's threads ran on a cpu (first field of /proc/PID/schedstat); None if unavailable."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def ready_after_values(lines):
    out = []
    for line in lines:
        m = re.search(r"worker \d+ \(pid \d+\) ready after (.+)$", line)
        if m:
            out.append(B.parse_span(m.group(1)))
    return out


def start_pool(h, n, tmp, extra=(), control=None):
    port = h.free_port()
    args = ["--count", str(n), "--ready-mode", "notify", "--ready-timeout", "120s", "--stop-timeout", "10s",
            "--listen", f"127.0.0.1:{port}", *extra]
    if control:
        args += ["--control", control]
    args += ["--", h.worker_bin(), "--ready-delay", "0"]
    return h.Corral(args, workdir=tmp, name=f"corral-{n}"), port


def measure_count(h, n, args):
    """Starts a pool of N --starts times. Returns the per-N result dict."""
    res = {"workers": n, "start_to_all_ready": [], "spawn_to_ready": [], "errors": []}
    for i in range(args.starts):
        tmp = tempfile.mkdtemp(prefix=f"corral-bench-start-{n}-")
        c, port = start_pool(h, n, tmp, extra=args.corral_args.split())
        try:
            c.start()
            try:
                c.wait_for_line(rf"all {n} workers? ready", timeout=max(30, n * 0.1))
            except AssertionError as e:
                res["errors"].append(str(e)[-2000:])
                B.log(f"N={n}: start {i + 1} did not reach 'all ready': {str(e)[-500:]}")
                break
            t_ready = time.monotonic() - c.started_at
            spawn = ready_after_values(c.log.lines())
            res["start_to_all_ready"].append(t_ready)
            res["spawn_to_ready"].extend(spawn)
            B.log(f"N={n} start {i + 1}/{args.starts}: all ready after {t_ready * 1000:.1f} ms; spawn-to-ready "
                  f"median {B.ms(B.median(spawn), 2)} ms, max {B.ms(max(spawn), 2)} ms")
            if i == 0:
                h.wait_serving(port, timeout=10)
                time.sleep(1.0)
                roll = smaps_rollup(c.pid)
                workers = c.worker_pids()
                res["master_vmrss_kb"] = vm_rss_kb(c.pid)
                res["master_rss_kb"] = roll.get("Rss")
                res["master_pss_kb"] = roll.get("Pss")
                res["master_fds"] = h.fd_count(c.pid)
                res["worker_pids"] = len(workers)
                res["workers_pss_total_kb"] = sum(smaps_rollup(p).get("Pss", 0) for p in workers)
                res["mem_available_mb"] = mem_available_mb()
                cpu0, ns0, t0 = B.proc_cpu_seconds(c.pid, children=False), schedstat_ns(c.pid), time.monotonic()
                time.sleep(args.idle)
                cpu1, ns1, t1 = B.proc_cpu_seconds(c.pid, children=False), schedstat_ns(c.pid), time.monotonic()
                # utime+stime come in clock ticks (10 ms at CLK_TCK=100); schedstat has ns resolution.
                res["master_idle_schedstat_ns"] = ns1 - ns0 if ns0 is not None and ns1 is not None else None
                res["idle_seconds"] = t1 - t0
                res["master_idle_cpu_seconds"] = cpu1 - cpu0
                res["master_vmrss_kb_after_idle"] = vm_rss_kb(c.pid)
                res["clk_tck"] = os.sysconf("SC_CLK_TCK")
                B.log(f"N={n}: master VmRSS {res['master_vmrss_kb']} kB, Pss {res['master_pss_kb']} kB, "
                      f"{res['master_fds']} fds; workers' Pss total {res['workers_pss_total_kb'] / 1024:.1f} MB; "
                      f"master CPU {cpu1 - cpu0:.3f} s (utime+stime), {res['master_idle_schedstat_ns']} ns (schedstat) "
                      f"over {t1 - t0:.1f} s idle")
        finally:
            t_stop = time.monotonic()
            c.close()
            res.setdefault("stop_seconds", []).append(time.monotonic() - t_stop)
            shutil.rmtree(tmp, ignore_errors=True)
    st = B.stats(res["start_to_all_ready"])
    res["start_to_all_ready_stats"] = st
    res["spawn_to_ready_stats"] = B.stats(res["spawn_to_ready"])
    del res["spawn_to_ready"]  # 1000s of values: keep the statistics only
    return res


def probe_slot(port, slot, old_pid, burst, deadline):
    """Bursts of BURST fresh connections until one is answered by a worker of SLOT that is not OLD_PID.
    Returns (monotonic time of that answer, new pid) or (None, None) at DEADLINE."""
    while time.monotonic() < deadline:
        conns = []
        for _ in range(burst):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                c.connect()
                c.request("GET", "/", headers={"Connection": "close"})
                conns.append(c)
            except OSError:
                c.close()
        for c in conns:
            try:
                r = c.getresponse()
                r.read()
                pid = r.getheader("X-Worker-Pid")
                if r.status == 200 and r.getheader("X-Worker-Slot") == str(slot) and pid and int(pid) != old_pid:
                    t = time.monotonic()
                    for other in conns:
                        other.close()
                    return t, int(pid)
            except (OSError, http.client.HTTPException):
                pass
            finally:
                c.close()
    return None, None


def measure_respawn(h, args, n):
    tmp = tempfile.mkdtemp(prefix="corral-bench-respawn-")
    control = os.path.join(tmp, "control")
    c, port = start_pool(h, n, tmp, extra=["--min-uptime", f"{args.min_uptime}s"], control=control)
    samples = []
    try:
        c.start()
        c.wait_for_line(rf"all {n} workers? ready", timeout=30)
        h.wait_serving(port, timeout=10)
        time.sleep(args.min_uptime + 0.3)
        for i in range(args.samples):
            slot = i % n
            st = json.loads(subprocess.run([h.corral_bin(), "status", "--json", "--control", control],
                                           capture_output=True, text=True, timeout=10, env=h.clean_env()).stdout)
            old = next(w["pid"] for w in st["workers"] if w["slot"] == slot)
            c.tracker.track(old)
            mark = len(c.log.lines())
            logged = {}
            pat = rf"worker {slot} \(pid (\d+), generation \d+\) started"

            def watch():
                try:
                    m = c.log.wait_for_line(pat, timeout=10, start=mark)
                    logged["t"] = time.monotonic()
                    logged["pid"] = int(m.group(1))
                except AssertionError:
                    pass
            th = threading.Thread(target=watch, daemon=True)
            th.start()
            t0 = h.sigkill(old)
            t_http, new = probe_slot(port, slot, old, burst=2 * n, deadline=t0 + 10)
            th.join(11)
            if t_http is None or "t" not in logged:
                raise RuntimeError(f"sample {i + 1}: slot {slot} did not come back (http={t_http}, log={logged})")
            c.tracker.track(new)
            s = {"slot": slot, "old_pid": old, "new_pid": new, "to_started_log": logged["t"] - t0,
                 "to_http": t_http - t0}
            samples.append(s)
            B.log(f"respawn {i + 1}/{args.samples}: slot {slot} pid {old} -> {new}: 'started' logged after "
                  f"{s['to_started_log'] * 1000:.2f} ms, answering after {s['to_http'] * 1000:.2f} ms")
            time.sleep(args.min_uptime + 0.3)
        crashes = c.log.count(r"worker \d+ \(pid \d+\) .*signal")
    finally:
        c.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"workers": n, "min_uptime": args.min_uptime, "samples": samples, "crash_lines": crashes,
            "to_started_log": B.stats([s["to_started_log"] for s in samples]),
            "to_http": B.stats([s["to_http"] for s in samples])}


def metrics_text(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        return r.read().decode()
    finally:
        c.close()


def metric(text, name):
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def timed_requests(pid, count, request):
    """Runs request() COUNT times, one at a time. Returns the master's CPU (schedstat, ms) and the client's
    wall time (ms) of each."""
    cpu, wall = [], []
    for _ in range(count):
        ns0, t0 = schedstat_ns(pid), time.monotonic()
        request()
        t1, ns1 = time.monotonic(), schedstat_ns(pid)
        cpu.append((ns1 - ns0) / 1e6)
        wall.append((t1 - t0) * 1000)
    return cpu, wall


def ms_or_dash(v):
    """A figure already in ms, with 2 digits, or "-" when there is none."""
    return "-" if v is None else f"{v:.2f}"


def kill_to_started(h, c, slot, pid, timeout=30):
    """SIGKILLs the worker PID of SLOT. Returns the seconds until corral logs its replacement's start (the
    fork), the seconds until it logs the replacement ready (READY=1, which the test worker sends first thing
    after exec: an upper bound of crash-to-exec), and the replacement's pid."""
    mark = len(c.log.lines())
    c.tracker.track(pid)
    t0 = h.sigkill(pid)
    m = c.log.wait_for_line(rf"worker {slot} \(pid (\d+), generation \d+\) started", timeout=timeout, start=mark)
    t = time.monotonic() - t0
    new = int(m.group(1))
    c.tracker.track(new)
    c.log.wait_for_line(rf"worker {slot} \(pid {new}\) ready after", timeout=timeout, start=mark)
    return t, time.monotonic() - t0, new


# Scrapes /metrics back to back until killed (bounded by the bench's kill, and by 60 s in any case).
SCRAPER = """
import http.client, sys, time
end = time.monotonic() + 60
while time.monotonic() < end:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
    c.request("GET", "/metrics")
    c.getresponse().read()
    c.close()
"""


def measure_scale(h, n, args):
    """One pool of N workers with a control socket and /metrics: the sampler's passes (from /metrics), the
    master's CPU per `status --json` and per /metrics scrape, and kill-to-respawn with and without a scraper
    running beside it."""
    tmp = tempfile.mkdtemp(prefix=f"corral-bench-scale-{n}-")
    control = os.path.join(tmp, "control")
    hport = h.free_port()
    c, port = start_pool(h, n, tmp, extra=["--status-listen", f"127.0.0.1:{hport}", "--min-uptime", "1s",
                                           *args.corral_args.split()], control=control)
    res = {"workers": n}
    try:
        c.start()
        c.wait_for_line(rf"all {n} workers? ready", timeout=max(60, n * 0.1))
        res["start_to_all_ready"] = time.monotonic() - c.started_at
        time.sleep(args.min_uptime + 1.5)
        text = metrics_text(hport)
        # None from a corral before these metrics (a side-by-side run against an older build).
        pass_s, batch_s = metric(text, "corral_accounting_pass_seconds"), metric(text, "corral_accounting_batch_seconds_max")
        res["sample_pass_ms"] = pass_s * 1000 if pass_s is not None else None
        res["sample_batch_max_ms"] = batch_s * 1000 if batch_s is not None else None
        res["sample_batches"] = metric(text, "corral_accounting_pass_batches")
        res["master_vmrss_kb"] = vm_rss_kb(c.pid)
        res["master_fds"] = h.fd_count(c.pid)
        st_cpu, st_wall = timed_requests(c.pid, args.scrapes, lambda: h.control_status(control))
        m_cpu, m_wall = timed_requests(c.pid, args.scrapes, lambda: metrics_text(hport))
        res["status_json_cpu_ms"], res["status_json_wall_ms"] = B.stats(st_cpu), B.stats(st_wall)
        res["metrics_cpu_ms"], res["metrics_wall_ms"] = B.stats(m_cpu), B.stats(m_wall)
        res["metrics_bytes"] = len(metrics_text(hport))
        B.log(f"N={n}: sampling pass {res['sample_pass_ms']} ms in {res['sample_batches']} batches, longest "
              f"{res['sample_batch_max_ms']} ms; status --json: master CPU median {B.median(st_cpu):.2f} ms "
              f"(max {max(st_cpu):.2f}); /metrics: master CPU median {B.median(m_cpu):.2f} ms (max {max(m_cpu):.2f}), "
              f"{res['metrics_bytes']} bytes")

        pids = {w["pid"]: w["slot"] for w in h.control_status(control)[1]["workers"]}
        quiet, scraped, quiet_ready, scraped_ready = [], [], [], []
        for i, (pid, slot) in enumerate(list(pids.items())[:2 * args.scale_kills]):
            scraper = None
            if i % 2:
                # Its own process, so that it does not hold this one's GIL while the log is watched.
                scraper = subprocess.Popen([sys.executable, "-c", SCRAPER, str(hport)], stdout=subprocess.DEVNULL)
                time.sleep(0.1)
            try:
                t, t_ready, new = kill_to_started(h, c, slot, pid)
            finally:
                if scraper:
                    scraper.kill()
                    scraper.wait(10)
            (scraped if scraper else quiet).append(t * 1000)
            (scraped_ready if scraper else quiet_ready).append(t_ready * 1000)
            time.sleep(args.min_uptime + 0.3)
        res["kill_to_started_ms"], res["kill_to_started_scraping_ms"] = B.stats(quiet), B.stats(scraped)
        res["kill_to_ready_ms"], res["kill_to_ready_scraping_ms"] = B.stats(quiet_ready), B.stats(scraped_ready)
        if quiet and scraped:  # --scale-kills 0: no kills
            B.log(f"N={n}: kill -> 'started' logged: median {B.median(quiet):.2f} ms (max {max(quiet):.2f}); with a "
                  f"/metrics scraper running: median {B.median(scraped):.2f} ms (max {max(scraped):.2f})")
            B.log(f"N={n}: kill -> 'ready' logged (exec and READY=1 included): median {B.median(quiet_ready):.2f} ms "
                  f"(max {max(quiet_ready):.2f}); with the scraper: median {B.median(scraped_ready):.2f} ms "
                  f"(max {max(scraped_ready):.2f})")
    finally:
        c.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1,4,64,1024", help="comma-separated worker counts")
    ap.add_argument("--starts", type=int, default=3, help="starts per count (start-to-ready samples)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement")
    ap.add_argument("--samples", type=int, default=20, help="crash-to-respawn samples (0: skip)")
    ap.add_argument("--respawn-workers", default="1,4",
                    help="comma-separated pool sizes for the respawn measurement (default 1,4)")
    ap.add_argument("--min-uptime", type=float, default=1.0, help="corral --min-uptime for the respawn pool")
    ap.add_argument("--scale", default="",
                    help="comma-separated pool sizes for the scale measurement: sampling passes, status and "
                         "/metrics cost, respawn during scrapes (default: none)")
    ap.add_argument("--scrapes", type=int, default=20, help="status and /metrics requests per --scale pool")
    ap.add_argument("--scale-kills", type=int, default=5,
                    help="kills per --scale pool without, and as many with, a scraper running")
    ap.add_argument("--corral-args", default="",
                    help="more arguments for corral, e.g. '--cgroup-root none' for the /proc accounting backend")
    ap.add_argument("--build-dir", default=B.default_build_dir())
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",") if x]
    respawn_counts = [int(x) for x in args.respawn_workers.split(",") if x]
    scale_counts = [int(x) for x in args.scale.split(",") if x]
    if not counts or min(counts) < 1 or args.starts < 1 or args.samples < 0 or min(respawn_counts or [0]) < 1:
        ap.error("bad arguments")
    h = B.setup(args.build_dir)
    nofile = B.raise_nofile(max(4096, 8 * max(counts + scale_counts) + 1024))
    out = B.result("startup", h, rlimit_nofile=nofile, counts=[])
    fc = B.ForeignCpu()
    for n in counts:
        out["counts"].append(measure_count(h, n, args))
    if args.samples:
        out["respawn"] = [measure_respawn(h, args, n) for n in respawn_counts]
    out["scale"] = [measure_scale(h, n, args) for n in scale_counts]
    out["machine_use"] = fc.stop(0.0)
    out["busy"] = out["machine_use"]["busy"]

    B.log("\n== startup (ReadyMode=notify, test worker --ready-delay 0)")
    B.log(f"{'N':>5} {'start->all ready ms (median/max)':>34} {'spawn->ready ms (median/p90/max)':>34} "
          f"{'VmRSS kB':>9} {'Pss kB':>7} {'fds':>5} {'CPU s/10s idle':>15}")
    for r in out["counts"]:
        a, s = r["start_to_all_ready_stats"], r["spawn_to_ready_stats"]
        if not a["n"]:
            B.log(f"{r['workers']:>5} failed: {r['errors']}")
            continue
        cpu = r.get("master_idle_cpu_seconds")
        B.log(f"{r['workers']:>5} {B.ms(a['median']):>22} / {B.ms(a['max']):>9} "
              f"{B.ms(s['median'], 2):>16} / {B.ms(s['p90'], 2)} / {B.ms(s['max'], 2):>8} "
              f"{r.get('master_vmrss_kb', '-'):>9} {r.get('master_pss_kb', '-'):>7} {r.get('master_fds', '-'):>5} "
              f"{'-' if cpu is None else f'{cpu:.3f}':>15}")
    if args.samples:
        for rs in out["respawn"]:
            for k, label in (("to_started_log", "kill -> 'started' logged"), ("to_http", "kill -> new worker answers")):
                s = rs[k]
                B.log(f"respawn (N={rs['workers']}, {s['n']} samples) {label}: median {B.ms(s['median'], 2)} ms, "
                      f"p90 {B.ms(s['p90'], 2)} ms, max {B.ms(s['max'], 2)} ms")
    for r in out["scale"]:
        B.log(f"scale N={r['workers']}: all ready after {r['start_to_all_ready']:.2f} s; sampling pass "
              f"{r['sample_pass_ms']} ms in {r['sample_batches']} batches (longest {r['sample_batch_max_ms']} ms); "
              f"master CPU per status --json {B.ms(r['status_json_cpu_ms']['median'] / 1000, 2)} ms, per /metrics "
              f"{B.ms(r['metrics_cpu_ms']['median'] / 1000, 2)} ms (medians); kill -> started "
              f"{ms_or_dash(r['kill_to_started_ms']['median'])} ms, while scraping "
              f"{ms_or_dash(r['kill_to_started_scraping_ms']['median'])} ms, kill -> ready "
              f"{ms_or_dash(r['kill_to_ready_ms']['median'])} ms; VmRSS {r['master_vmrss_kb']} kB, "
              f"{r['master_fds']} fds")
    mu = out["machine_use"]
    B.log(f"machine: others kept {mu['background_cores_before']:.2f} cores busy before the run; load average "
          f"{mu['loadavg_before']}" + (f"  ** {out['busy']}" if out["busy"] else ""))
    B.emit(out, args.json)
    return 0 if all(r["start_to_all_ready_stats"]["n"] for r in out["counts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
