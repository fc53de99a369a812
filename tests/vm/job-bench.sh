#!/bin/bash
# SPDX-License-Identifier: MIT
# A benchmark job for tests/vm/run.sh --job (not a test tier, not in CI): the master's idle CPU, its last
# sampling pass, VmRSS and fds with the delegated cgroup v2 accounting backend beside the /proc backend
# (--cgroup-root none), in one guest boot, alternating v2, proc, v2, proc. contrib/bench/startup.py runs
# in a transient unit with Delegate=yes and LimitNOFILE= as corral@.service has them. TCG inflates every
# figure: compare the two backends of one boot, not the guest with the host.
#
#   CORRAL_VM_CACHE=/var/cache/corral-vm-bench CORRAL_VM_EXTRA_PACKAGES=python3 CORRAL_VM_MEM=4096 \
#   CORRAL_VM_TIMEOUT=3000 tests/vm/run.sh --job tests/vm/job-bench.sh --with contrib/bench \
#       --with tests/integration/corral_harness.py --keep-logs DIR BUILD_DIR
#
# CORRAL_VM_JOB_PAIRS, _ORDER, _COUNTS, _IDLE, _SCALE_N, _SCRAPES, _SCALE_KILLS, _RUN_TIMEOUT change the defaults
# below. Prints `vm: bench-<backend>-<pair>: PASS|FAIL (<figures>)` per run and `bench-json <backend>
# <pair> <JSON>` with startup.py's whole result, also left in the job folder's out/ (--keep-logs copies it).
set -u
J=/job
PAIRS=2
# The backends of each pair, in order ("proc v2" checks that the first run of a boot is not favoured).
ORDER='v2 proc'
COUNTS=256,1024
IDLE=10
SCALE_N=1024
SCRAPES=3
# startup.py needs at least one: its summary takes the median and max of the kill times.
SCALE_KILLS=1
# The harness's waits (all ready, each line) times this: fork+exec is ~30x slower under TCG.
HARNESS_SCALE=10
RUN_TIMEOUT=1500
# shellcheck source=/dev/null
[[ -f $J/job.env ]] && . "$J/job.env"
failed=0

note() {
    echo "[$(cut -d' ' -f1 /proc/uptime)] $*"
}

result() { # CHECK PASS|FAIL DETAIL
    echo "vm: $1: $2 ($3)"
    [[ $2 != FAIL ]] || failed=1
}

install -m 0755 "$J/corral" "$J/corral-test-worker" /usr/local/bin/
mkdir -p "$J/out"
mkdir -p /root/corral
cp -a "$J/contrib" "$J/tests" /root/corral/

# The unit's main process: it moves itself into harness/ and hands every controller on, so that each
# corral can run alone in a cgroup of its own with them, as corral@.service's main process does (a corral
# sharing its cgroup with the harness could enable no controller: the no-internal-processes rule).
cat >/usr/local/bin/corral-bench-unit <<'EOF'
#!/bin/bash
set -eu
cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
mkdir "$cg/harness"
echo $$ >"$cg/harness/cgroup.procs"
sed 's/\([^ ]\+\)/+\1/g' "$cg/cgroup.controllers" >"$cg/cgroup.subtree_control"
echo "unit cgroup $cg: subtree_control '$(cat "$cg/cgroup.subtree_control")', LimitNOFILE $(ulimit -Sn):$(ulimit -Hn)" >&2
export CORRAL_BENCH_CGROUP=$cg
exec python3 /root/corral/contrib/bench/startup.py "$@"
EOF
# CORRAL_BIN for startup.py: a pool's start (its arguments begin with --count) runs corral in pool-PID below
# the unit, alone; `corral status` and --version run where they are.
cat >/usr/local/bin/corral-pool <<'EOF'
#!/bin/bash
if [[ ${1-} == --count ]]; then
    d=$CORRAL_BENCH_CGROUP/pool-$$
    mkdir "$d" && echo $$ >"$d/cgroup.procs" || exit 1
fi
exec /usr/local/bin/corral "$@"
EOF
chmod 0755 /usr/local/bin/corral-bench-unit /usr/local/bin/corral-pool

note "guest: kernel $(uname -r), $(systemctl --version | head -n 1), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo), controllers '$(cat /sys/fs/cgroup/cgroup.controllers)', $(corral --version | head -n 1)"
note "parameters: pairs $PAIRS of '$ORDER', counts $COUNTS, idle $IDLE s, scale $SCALE_N (scrapes $SCRAPES, kills $SCALE_KILLS), harness timeouts x$HARNESS_SCALE, $RUN_TIMEOUT s per run"

# bench-summary JSON: one line of the figures per pool.
cat >/usr/local/bin/bench-summary <<'EOF'
#!/usr/bin/python3
import json, sys
r = json.load(open(sys.argv[1]))
out = []
for c in r["counts"]:
    cpu, ns, idle = c.get("master_idle_cpu_seconds"), c.get("master_idle_schedstat_ns"), c.get("idle_seconds")
    if cpu is None or ns is None:
        out.append(f"N={c['workers']}: failed")
        continue
    out.append(f"N={c['workers']}: idle CPU {cpu:.2f} s ticks, {ns / 1e9:.3f} s schedstat over {idle:.1f} s "
               f"({100 * ns / 1e9 / idle:.2f} % of a core), VmRSS {c['master_vmrss_kb']} kB, "
               f"{c['master_fds']} fds, all ready after {c['start_to_all_ready_stats']['max']:.1f} s")
for s in r["scale"]:
    out.append(f"scale N={s['workers']}: pass {s['sample_pass_ms']} ms in {s['sample_batches']} batches, "
               f"longest {s['sample_batch_max_ms']} ms, VmRSS {s['master_vmrss_kb']} kB, {s['master_fds']} fds")
mu = r["machine_use"]
out.append(f"guest load {mu['loadavg_before']} -> {mu['loadavg_after']}, others {mu['foreign_cores']:.2f} cores")
print("; ".join(out))
EOF
chmod 0755 /usr/local/bin/bench-summary

# run BACKEND PAIR: one startup.py run in its own Delegate=yes unit.
run() {
    local backend=$1 pair=$2 out=/root/bench-$1-$2.json err=/root/bench-$1-$2.log corral_args='' t0 rc
    [[ $backend == proc ]] && corral_args='--cgroup-root none'
    note "run $backend $pair: load $(cut -d' ' -f1-3 /proc/loadavg), MemAvailable $(awk '/MemAvailable/ { print int($2 / 1024) " MiB" }' /proc/meminfo)"
    t0=$SECONDS
    # The harness echoes corral's lines (CORRAL_TEST_ECHO): the accounting line says which backend ran.
    # Files, not --pipe: with --pipe and stdout a file, startup.py's stderr ended up in that file, over its JSON.
    systemd-run --unit="corral-bench-$backend-$pair" --quiet --wait --collect -p Delegate=yes \
        -p LimitNOFILE=1024:524288 -p TasksMax=infinity -p RuntimeMaxSec="$RUN_TIMEOUT" \
        -p StandardOutput="truncate:$out" -p StandardError="truncate:$err" \
        --setenv=CORRAL_BIN=/usr/local/bin/corral-pool --setenv=CORRAL_TEST_WORKER=/usr/local/bin/corral-test-worker \
        --setenv=CORRAL_TEST_TIMEOUT_SCALE="$HARNESS_SCALE" --setenv=CORRAL_TEST_ECHO=1 \
        --setenv=PYTHONDONTWRITEBYTECODE=1 \
        /usr/local/bin/corral-bench-unit --build-dir /usr/local/bin --counts "$COUNTS" --starts 1 --samples 0 \
        --idle "$IDLE" --scale "$SCALE_N" --scrapes "$SCRAPES" --scale-kills "$SCALE_KILLS" \
        --corral-args "$corral_args" --json
    rc=$?
    grep -Ev '^\[corral-[0-9]+\] (corral: worker [0-9]+ \(pid|test-worker [0-9]+:)' "$err" | sed 's/^/    /'
    cp "$out" "$err" "$J/out/" 2>/dev/null
    if ((rc == 0)) && [[ -s $out ]]; then
        result "bench-$backend-$pair" PASS "$((SECONDS - t0)) s: $(bench-summary "$out")"
        echo "bench-json $backend $pair $(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$out")"
    else
        result "bench-$backend-$pair" FAIL "startup.py exited $rc after $((SECONDS - t0)) s"
        [[ -s $out ]] && tail -c 1500 "$out" | sed 's/^/    out| /'
        journalctl -u "corral-bench-$backend-$pair" --no-pager -o cat | tail -n 20 | sed 's/^/    /'
    fi
}

for pair in $(seq 1 "$PAIRS"); do
    for backend in $ORDER; do
        run "$backend" "$pair"
    done
done
exit "$failed"
