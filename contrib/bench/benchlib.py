# SPDX-License-Identifier: MIT
"""Shared helpers for the corral benchmarks: where the binaries are, the integration harness (imported from
tests/integration), machine facts, duration parsing, percentiles and JSON output.

Binaries: --build-dir DIR (default $CORRAL_BUILD_DIR, else /tmp/bbench, else ./build) holds `corral` and
`tests/corral-test-worker`; $CORRAL_BIN / $CORRAL_TEST_WORKER override each one.
"""

import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def default_build_dir():
    if os.environ.get("CORRAL_BUILD_DIR"):
        return os.environ["CORRAL_BUILD_DIR"]
    for d in ("/tmp/bbench", os.path.join(ROOT, "build")):
        if os.access(os.path.join(d, "corral"), os.X_OK):
            return d
    return "/tmp/bbench"


def setup(build_dir):
    """Points the harness at the binaries in BUILD_DIR and imports it; returns the module."""
    corral = os.environ.get("CORRAL_BIN") or os.path.join(build_dir, "corral")
    worker = os.environ.get("CORRAL_TEST_WORKER") or os.path.join(build_dir, "tests", "corral-test-worker")
    for p in (corral, worker):
        if not os.access(p, os.X_OK):
            sys.exit(f"{p} is missing: build first (cmake -S {ROOT} -B {build_dir} "
                     f"-DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build {build_dir} -j2) or pass --build-dir")
    os.environ["CORRAL_BIN"] = os.path.abspath(corral)
    os.environ["CORRAL_TEST_WORKER"] = os.path.abspath(worker)
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import corral_harness
    return corral_harness


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------------
# Machine

def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def machine():
    model = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)), "kernel": platform.release(),
            "cpu_model": model, "mem_total_mb": mem_kb // 1024 if mem_kb else None, "loadavg_start": loadavg(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def cpu_busy_seconds():
    """CPU seconds spent by everything on the machine (all cpus, /proc/stat: everything but idle and
    iowait), for telling how much of the machine other people's work took during a run."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid, children=True):
    """utime+stime of PID (plus cutime+cstime, its reaped children, when CHILDREN) in seconds; 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return 0.0
    x = data[data.rindex(")") + 2:].split()
    ticks = int(x[11]) + int(x[12]) + ((int(x[13]) + int(x[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


class ForeignCpu:
    """Measures how many cores the rest of the machine used while a run went on: busy CPU time of the whole
    machine minus this process (and its reaped children) minus the process trees passed to stop()."""

    def __init__(self, baseline=2.0):
        # Before anything of ours runs: how busy is the machine without us?
        b0, t0 = cpu_busy_seconds(), time.monotonic()
        time.sleep(baseline)
        self.background = (cpu_busy_seconds() - b0) / (time.monotonic() - t0)
        self.t0 = time.monotonic()
        self.busy0 = cpu_busy_seconds()
        t = os.times()
        self.self0 = t.user + t.system + t.children_user + t.children_system
        self.load0 = loadavg()

    def stop(self, tree_cpu_seconds=0.0):
        """TREE_CPU_SECONDS: CPU the benchmarked processes used during the run (they started after
        __init__). Returns a dict; 'foreign_cores' is the average number of cores others kept busy."""
        elapsed = time.monotonic() - self.t0
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system - self.self0 + tree_cpu_seconds
        busy = cpu_busy_seconds() - self.busy0
        foreign = max(0.0, busy - own)
        n = os.cpu_count() or 1
        r = {"seconds": elapsed, "background_cores_before": self.background, "psi_cpu": psi_cpu(),
             "machine_busy_cores": busy / elapsed, "own_cores": own / elapsed,
             "foreign_cores": foreign / elapsed, "loadavg_before": self.load0, "loadavg_after": loadavg()}
        worst = max(self.background, foreign / elapsed)
        r["busy"] = (f"machine shared: other processes kept {self.background:.2f} of {n} cores busy just before the "
                     f"run, {foreign / elapsed:.2f} (estimate) during it" if worst > 0.15 * n else None)
        return r


def psi_cpu():
    """The 'some' line of /proc/pressure/cpu (share of time runnable tasks waited for a cpu), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().strip()
    except OSError:
        return None


def tree_cpu_seconds(pid):
    """CPU of PID, its reaped children, and its live children (with theirs): for a corral process."""
    total = proc_cpu_seconds(pid)
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = []
    kids = set()
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return total + sum(proc_cpu_seconds(k) for k in kids)


# ---------------------------------------------------------------------------------------------------------
# Numbers

_UNITS = {"d": 86400.0, "h": 3600.0, "min": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


def parse_span(text):
    """corral's format_usec() output ("502.081ms", "1.5s", "1min 2.5s", "950us", "0") in seconds."""
    text = text.strip()
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    for m in re.finditer(r"([0-9]+(?:\.[0-9]+)?)\s*(min|ms|us|d|h|s)", text):
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"not a time span: {text!r}")
    return total


def pct(values, p):
    """Nearest-rank percentile (P in 0..100) of VALUES; None when empty."""
    v = sorted(values)
    if not v:
        return None
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def stats(values):
    v = [x for x in values if x is not None]
    return {"n": len(v), "median": median(v), "p90": pct(v, 90), "max": max(v) if v else None,
            "min": min(v) if v else None}


def ms(x, digits=1):
    return "-" if x is None else f"{x * 1000:.{digits}f}"


def span(s, spec="", scale=1, width=0):
    """A summary cell "median (min-max)" from s (stats() or a dict with those keys): each figure times scale
    (1000: seconds as ms) in format spec, the median right-aligned in width; "-" for a missing figure."""
    def f(x):
        return "-" if x is None else format(x * scale, spec)
    return f"{f(s['median']):>{width}} ({f(s['min'])}-{f(s['max'])})"


def result(name, h, **fields):
    """The head of a benchmark's JSON result: its name, the machine, corral's version (of the harness H) and
    the command line as run, then FIELDS."""
    return {"benchmark": name, "machine": machine(), "corral": corral_version(h.corral_bin()),
            "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]), **fields}


def machine_use_done(out, fc):
    """Stops ForeignCpu FC into OUT ("machine_use", "busy") and logs how busy the others kept the machine."""
    out["machine_use"] = fc.stop(0.0)
    out["busy"] = out["machine_use"]["busy"]
    log(f"machine: others kept {out['machine_use']['background_cores_before']:.2f} cores busy before the run"
        + (f"  ** {out['busy']}" if out["busy"] else ""))


def emit(result, as_json):
    if as_json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")


def require_tool(name, package):
    path = shutil.which(name)
    if not path:
        sys.exit(f"{name} is not installed: apt-get install -y {package} (this script installs nothing)")
    return path


def raise_nofile(wanted):
    """Raises the soft RLIMIT_NOFILE up to WANTED (within the hard limit); returns the soft limit now."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def corral_version(corral_bin):
    try:
        return subprocess.run([corral_bin, "--version"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------------------------------------------
# Growth over many cycles (soak.py, upgrade.py)

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def growth(result):
    """Adds fds_min/fds_max and the RSS figures to RESULT from its checkpoint rows (rss_kb, fds)."""
    rows = result["rows"]
    result["fds_min"], result["fds_max"] = min(r["fds"] for r in rows), max(r["fds"] for r in rows)
    result["rss_first_kb"], result["rss_last_kb"] = rows[0]["rss_kb"], rows[-1]["rss_kb"]
    result["rss_growth_kb"] = rows[-1]["rss_kb"] - rows[1]["rss_kb"] if len(rows) > 1 else 0


def check(name, result, problems, rss_growth_kb):
    """--check: adds the growth problems (fds moved, RSS grew more than RSS_GROWTH_KB) to PROBLEMS, says
    the verdict and exits 1 when there is any."""
    if result["fds_max"] != result["fds_min"]:
        problems.append(f"fd count moved: {result['fds_min']}..{result['fds_max']}")
    if result["rss_growth_kb"] > rss_growth_kb:
        problems.append(f"RSS grew {result['rss_growth_kb']} kB")
    if problems:
        log(f"{name}: FAILED: " + "; ".join(problems))
        sys.exit(1)
    log(f"{name}: passed")
