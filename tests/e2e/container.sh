#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# corral as a container's entrypoint: PID 1 of a systemd-nspawn container (no --boot, no systemd inside,
# the host's network), behind a real HAProxy on the host: its exit status through nspawn, a stop under
# load, the stop timeout, 10,000 orphans, a crash loop. One line per scenario,
# `container: <scenario>: PASS|FAIL (<figures>)`, then a summary line.
# Exit status: 0 every scenario passed, 1 any failed (or the set-up did), 64 usage.
# shellcheck disable=SC2317 # the small predicates below are called through check and wait_until
set -uo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: tests/e2e/container.sh [--keep-logs DIR] BUILD_DIR

BUILD_DIR is a corral build directory (holding corral and tests/corral-test-worker). Needs root,
mmdebstrap and systemd-container (scripts/setup.sh --e2e), haproxy and socat (--fleet), python3
and curl. The rootfs (Debian bookworm with libsystemd0, libinih1 and python3-minimal, no
systemd) is built once and cached in $CORRAL_E2E_CACHE (default /var/cache/corral-e2e).

  --keep-logs DIR  copy each container's console (corral's output), HAProxy's and the
                   host pool's logs into DIR
  -h, --help       show this help
EOF_USAGE
}

E2E_KEEP_LOGS=''
build_dir=''
while (($# > 0)); do
    case $1 in
        --keep-logs)
            E2E_KEEP_LOGS=${2:?--keep-logs needs a directory}
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            echo "container.sh: unknown option '$1'" >&2
            usage >&2
            exit 64
            ;;
        *)
            [[ -z $build_dir ]] || {
                usage >&2
                exit 64
            }
            build_dir=$1
            shift
            ;;
    esac
done
[[ -n $build_dir ]] || {
    usage >&2
    exit 64
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_dir=$(cd "$here/../.." && pwd)
build_dir=$(cd "$build_dir" && pwd) || exit 64
E2E_CACHE=${CORRAL_E2E_CACHE:-/var/cache/corral-e2e}
# shellcheck source=tests/e2e/lib.sh
source "$here/lib.sh"
E2E_TAG=container
if [[ -n $E2E_KEEP_LOGS ]]; then
    mkdir -p "$E2E_KEEP_LOGS" && E2E_KEEP_LOGS=$(cd "$E2E_KEEP_LOGS" && pwd)
fi

DRAIN_DELAY=2 # s, --drain-delay
STOP_TIMEOUT=5 # s, --stop-timeout: what a worker gets after the drain delay
WORKERS=2
ORPHANS=10000
# Inside the container: the build and source trees, bound read-only; the shipped example config.
CORRAL=/opt/corral-build/corral
WORKER=/opt/corral-build/tests/corral-test-worker
EXAMPLE_CONF=/opt/corral-src/contrib/container/corral.conf

TMP=''
ROOTFS=''
HOST_PID='' HAPROXY_PID=''
LOAD_PIDS=()

# ---- the host side: ports, a second pool, HAProxy, the load -----------------------------------------
# free_ports N: N distinct free TCP ports on 127.0.0.1, one a line (all bound at once, then released).
free_ports() {
    python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

http_code() { # PORT PATH: the status code of GET PATH, 000 when nothing answered
    curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1$2"
}
answers() { [[ $(http_code "$1" "$2") == "$3" ]]; } # PORT PATH CODE

num() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; } # A OP B: compares two decimals, e.g. num 0.3 '<' 2

metric() { # PORT NAME: the value of a metric in corral's /metrics
    curl -s -m 2 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# stop_pid PID NAME: SIGTERM to a process this script started, SIGKILL after 10 s.
stop_pid() {
    [[ -n $1 ]] || return 0
    if alive "$1"; then
        kill -TERM "$1" 2>/dev/null
        wait_gone "$1" 10 || {
            e2e_log "$2 ignored SIGTERM, sending SIGKILL"
            kill -KILL "$1" 2>/dev/null
        }
    fi
    wait "$1" 2>/dev/null
    return 0
}

# The pool that stays up, on the host: the other server in HAProxy's backend.
start_host_pool() { # PORT STATUS_PORT
    "$build_dir/corral" --name "container-host-$$" --control "$TMP/host.control" --cgroup-root none \
        --listen "127.0.0.1:$1" --status-listen "127.0.0.1:$2" --count "$WORKERS" --stop-timeout 5s \
        -- "$build_dir/tests/corral-test-worker" </dev/null >"$TMP/host-pool.log" 2>&1 &
    HOST_PID=$!
}

# HAProxy as contrib/fleet/haproxy.cfg has it (httpchk on /health/ready, retries, redispatch, no idle
# server connections), checking every 100 ms and taking a server out at the first failed check.
start_haproxy() { # PORT CT_PORT CT_STATUS HOST_PORT HOST_STATUS
    cat >"$TMP/haproxy.cfg" <<EOF
global
    stats socket $TMP/haproxy.sock mode 600 level user

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    retries 2
    option redispatch

frontend fe
    bind 127.0.0.1:$1
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server check inter 100ms fall 1 rise 1 pool-max-conn 0
    server container 127.0.0.1:$2 port $3
    server host 127.0.0.1:$4 port $5
EOF
    # -db: in the foreground, so this pid is HAProxy's.
    haproxy -db -f "$TMP/haproxy.cfg" </dev/null >"$TMP/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
}

# ha_stat PROXY SERVER FIELD...: fields of one row of HAProxy's `show stat`, space-separated.
ha_stat() {
    local proxy=$1 server=$2
    shift 2
    echo "show stat" | timeout 3 socat - "UNIX-CONNECT:$TMP/haproxy.sock" 2>/dev/null |
        awk -F, -v px="$proxy" -v sv="$server" -v want="$*" '
            NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
            $1 == px && $2 == sv { n = split(want, w, " "); out = "";
                for (i = 1; i <= n; i++) out = out (i > 1 ? " " : "") $(col[w[i]]); print out }'
}
ha_up() { [[ $(ha_stat app "$1" status) == UP ]]; }
ha_down() { [[ $(ha_stat app "$1" status) == DOWN* ]]; }

# The load: closed-loop clients through HAProxy (tests/e2e/load.py on the host), some on keep-alive
# connections, some with a connection per request.
loads_start() { # PORT CONCURRENCY
    local mode extra
    for mode in keepalive close; do
        extra=()
        [[ $mode == keepalive ]] || extra=(--no-keepalive)
        python3 "$here/load.py" --port "$1" --concurrency "$2" --duration 60 --timeout 10 "${extra[@]}" \
            >"$TMP/load-$mode.json" 2>"$TMP/load-$mode.err" &
        LOAD_PIDS+=($!)
    done
    wait_until 5 grep -q started "$TMP/load-keepalive.err" "$TMP/load-close.err"
}
loads_stop() {
    local pid
    for pid in "${LOAD_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid"
    done
    LOAD_PIDS=()
}
# load_sum: one JSON document adding up both clients' summaries.
load_sum() {
    python3 -c 'import json, sys
t = {"ok": 0, "failed": 0, "refused": 0, "retried": 0, "hung_threads": 0, "errors": {}}
for f in sys.argv[1:]:
    try:
        j = json.load(open(f))
    except ValueError:
        j = {"failed": 1, "errors": {"no summary from the load client": 1}}
    for k in ("ok", "failed", "refused", "retried", "hung_threads"):
        t[k] += j.get(k, 0)
    for k, v in j.get("errors", {}).items():
        t["errors"][k] = t["errors"].get(k, 0) + v
print(json.dumps(t))' "$TMP/load-keepalive.json" "$TMP/load-close.json"
}
jget() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; } # JSON KEY

# ---- the container ---------------------------------------------------------------------------------
# ct_start SCENARIO CORRAL_ARGS...: corral as PID 1 of a container of the cached rootfs (a tmpfs overlay on
# top: the cache is never written), the build and source trees bound read-only, the host's network, its
# output on nspawn's (--console=pipe). --kill-signal=SIGTERM: SIGTERM to nspawn is SIGTERM to corral, what
# `docker stop` and `podman stop` do (without it nspawn SIGKILLs a container it did not --boot).
ct_start() {
    local scenario=$1
    shift
    start_nspawn "corral-e2e-entrypoint-$scenario-$$" -D "$ROOTFS" --volatile=overlay --console=pipe \
        --kill-signal=SIGTERM --quiet --bind-ro="$build_dir:/opt/corral-build" \
        --bind-ro="$src_dir:/opt/corral-src" -- "$CORRAL" "$@"
}

ct_is_corral() { # corral is the container's PID 1
    grep -qP '^NSpid:\t\d+\t1$' "/proc/$CT_LEADER/status" && [[ $(cat "/proc/$CT_LEADER/comm") == corral ]]
}

# ct_wait_exit SECONDS: waits for nspawn to exit; sets CT_RC (its exit status) and CT_EXIT (seconds, from
# CT_T0). CT_RC is empty when it did not exit in time.
CT_RC='' CT_EXIT='' CT_T0=0
ct_wait_exit() {
    CT_RC='' CT_EXIT=''
    local end=$(($(now_us) + $1 * 1000000))
    while alive "$CT_PID"; do
        (($(now_us) < end)) || return 1
        sleep 0.02
    done
    CT_EXIT=$(elapsed "$CT_T0")
    wait "$CT_PID"
    CT_RC=$?
}

# ct_zombies: "ZOMBIES PROCESSES" of the container's pid namespace, seen from the host.
ct_zombies() {
    python3 -c 'import os, sys
ns = os.readlink(f"/proc/{sys.argv[1]}/ns/pid")
zombies = procs = 0
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        if os.readlink(f"/proc/{p}/ns/pid") != ns:
            continue
        with open(f"/proc/{p}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        continue
    procs += 1
    zombies += state == "Z"
print(zombies, procs)' "$CT_LEADER"
}

console_has() { grep -q -- "$1" "$CT_DIR/console.log"; }

keep_logs() { # NAME FILE...
    local name=$1 f
    shift
    [[ -n $E2E_KEEP_LOGS ]] || return 0
    for f; do
        [[ -f $f ]] && cp "$f" "$E2E_KEEP_LOGS/$name-${f##*/}"
    done
    return 0
}

# stop_host_side: the load, HAProxy and the host's pool, by the pids this script started (their logs kept).
stop_host_side() {
    ((${#LOAD_PIDS[@]} == 0)) || loads_stop >/dev/null 2>&1
    stop_pid "$HAPROXY_PID" haproxy
    stop_pid "$HOST_PID" "the host's corral"
    HAPROXY_PID='' HOST_PID=''
    if [[ -n $TMP && -d $TMP ]]; then
        keep_logs "$CT_NAME" "$TMP/haproxy.log" "$TMP/haproxy.cfg" "$TMP/host-pool.log"
        rm -f "$TMP/haproxy.log" "$TMP/haproxy.cfg" "$TMP/host-pool.log"
    fi
}

# cleanup: everything this script started, by the pid it started, and every cgroup it created. Safe to
# call twice.
cleanup() {
    local rc=0
    stop_host_side
    [[ -z $CT_DIR ]] || keep_logs "$CT_NAME" "$CT_DIR/console.log"
    teardown_container || rc=1
    [[ -z $TMP ]] || rm -rf "$TMP"
    return $rc
}

# ---- scenarios -------------------------------------------------------------------------------------
# scenario NAME: runs sc_NAME (with - as _), which may return early and leaves its figures in FIGURES; then
# stops what it started, tears its container down (a forced teardown fails the scenario) and reports.
FIGURES=''
scenario() {
    begin
    FIGURES=''
    "sc_${1//-/_}"
    stop_host_side
    [[ -z $CT_DIR ]] || keep_logs "$CT_NAME" "$CT_DIR/console.log"
    check "torn down without force" teardown_container
    finish "$1" "${FIGURES:-no figures}"
}

# stop-under-load: HAProxy balances over the container's pool and one on the host; under load, SIGTERM to
# nspawn. The container's /health turns 503 at once, HAProxy takes it out within the drain delay, the
# workers serve on until then, nspawn exits 0 (corral's status) within drain delay + stop timeout + 1 s,
# and no request fails.
sc_stop_under_load() {
    local ports ha ct_port ct_status host_port host_status
    mapfile -t ports < <(free_ports 5)
    ha=${ports[0]} ct_port=${ports[1]} ct_status=${ports[2]} host_port=${ports[3]} host_status=${ports[4]}
    start_host_pool "$host_port" "$host_status"
    # The shipped example config, sockets on 127.0.0.1 (the host's network), the test worker.
    check "the container starts" ct_start stop --config "$EXAMPLE_CONF" --count "$WORKERS" --listen '' \
        --listen "127.0.0.1:$ct_port" --status-listen "127.0.0.1:$ct_status" --drain-delay "${DRAIN_DELAY}s" \
        --stop-timeout "${STOP_TIMEOUT}s" -- "$WORKER" || return
    check "corral is PID 1 of the container" ct_is_corral
    if ! wait_until 15 answers "$ct_status" /health/ready 200 ||
        ! wait_until 15 answers "$host_status" /health/ready 200; then
        check "both pools ready" false
        FIGURES="/health/ready: container $(http_code "$ct_status" /health/ready),"
        FIGURES+=" host $(http_code "$host_status" /health/ready)"
        return
    fi
    start_haproxy "$ha" "$ct_port" "$ct_status" "$host_port" "$host_status"
    if ! wait_until 10 ha_up container || ! wait_until 10 ha_up host; then
        check "HAProxy has both servers UP" false
        FIGURES="HAProxy: container $(ha_stat app container status), host $(ha_stat app host status)"
        return
    fi
    loads_start "$ha" 4
    ct_served() { (($(ha_stat app container stot) > 20)); }
    check "the container's pool serves through HAProxy" wait_until 10 ct_served
    sleep 0.5

    # SIGTERM to nspawn, as `podman stop` sends it; measure what follows from here.
    local t0 code='' delay_503='?' delay_down='?' served_at_exit ct_at_term
    ct_at_term=$(ha_stat app container stot)
    CT_T0=$(now)
    t0=$CT_T0
    kill -TERM "$CT_PID"
    while (($(now_us) - t0 < 5000000)); do
        code=$(http_code "$ct_status" /health)
        [[ $code == 200 ]] || break
        sleep 0.005
    done
    delay_503=$(elapsed "$t0")
    check "/health answers 503 after SIGTERM (got $code)" eq "$code" 503
    check "... at once: within 1 s (${delay_503} s)" num "$delay_503" '<' 1
    check "/health/ready answers 503 too" answers "$ct_status" /health/ready 503
    if wait_until 5 ha_down container; then
        delay_down=$(elapsed "$t0")
    fi
    check "HAProxy takes the container out within the drain delay (${delay_down} s)" \
        num "${delay_down/\?/99}" '<' "$DRAIN_DELAY"
    ct_wait_exit $((DRAIN_DELAY + STOP_TIMEOUT + 20))
    served_at_exit=$(ha_stat app host stot)
    check "nspawn exited (in ${CT_EXIT:-more than $((DRAIN_DELAY + STOP_TIMEOUT + 20))} s)" test -n "$CT_RC"
    check "nspawn exit status 0, corral's (got ${CT_RC:-none})" eq "${CT_RC:-none}" 0
    local bound=$((DRAIN_DELAY + STOP_TIMEOUT + 1))
    check "not before the drain delay (${CT_EXIT:-?} s >= $DRAIN_DELAY s)" num "${CT_EXIT:-0}" '>=' "$DRAIN_DELAY"
    check "within drain delay + stop timeout + 1 s (${CT_EXIT:-?} s <= $bound s)" num "${CT_EXIT:-99}" '<=' "$bound"
    check "corral got SIGTERM and drained" console_has "received SIGTERM: /health answers 503"
    check "corral stopped its workers and exited" console_has "all workers stopped, exiting"
    # The host's pool carries the load on its own.
    host_served_more() { (($(ha_stat app host stot) > served_at_exit + 20)); }
    check "the host's pool serves on" wait_until 10 host_served_more
    loads_stop
    local sum ct_stot host_stot errs
    sum=$(load_sum)
    read -r ct_stot host_stot <<<"$(ha_stat app container stot) $(ha_stat app host stot)"
    errs=$(printf '%s ' "$(ha_stat app BACKEND econ eresp wretr wredis)" "$(ha_stat fe FRONTEND hrsp_5xx)")
    check "requests answered ($(jget "$sum" ok))" test "$(jget "$sum" ok)" -gt 0
    check "the container answered on after SIGTERM, until HAProxy took it out ($((ct_stot - ct_at_term)) requests)" \
        test "$ct_stot" -gt "$ct_at_term"
    check "zero failed requests ($sum)" eq "$(jget "$sum" failed)" 0
    check "zero retried requests" eq "$(jget "$sum" retried)" 0
    check "no hung client" eq "$(jget "$sum" hung_threads)" 0
    check "HAProxy: no connection/response error, retry, redispatch, 5xx (econ eresp wretr wredis 5xx: $errs)" \
        eq "$errs" "0 0 0 0 0 "
    FIGURES="SIGTERM -> /health 503 in ${delay_503} s, HAProxy DOWN in ${delay_down} s, nspawn exit ${CT_RC:-none} in ${CT_EXIT:-?} s (drain ${DRAIN_DELAY} s, stop timeout ${STOP_TIMEOUT} s); requests $(($(jget "$sum" ok) + $(jget "$sum" failed))), failed $(jget "$sum" failed), retried $(jget "$sum" retried); HAProxy sessions: container $ct_stot ($((ct_stot - ct_at_term)) after SIGTERM), host $host_stot"
}

# stop-timeout: workers that ignore SIGTERM. corral SIGKILLs them after the stop timeout, so that nspawn
# still exits 0 within drain delay + stop timeout + 1 s (here 1 s + 2 s + 1 s): the bound an orchestrator's
# grace period has to cover (contrib/container/deployment.yaml's terminationGracePeriodSeconds).
sc_stop_timeout() {
    local ports drain=1 stop=2
    mapfile -t ports < <(free_ports 2)
    check "the container starts" ct_start stop-timeout --listen "127.0.0.1:${ports[0]}" \
        --status-listen "127.0.0.1:${ports[1]}" --count "$WORKERS" --drain-delay "${drain}s" \
        --stop-timeout "${stop}s" -- "$WORKER" --ignore-sigterm || return
    check "the pool is ready" wait_until 15 answers "${ports[1]}" /health/ready 200
    CT_T0=$(now)
    kill -TERM "$CT_PID"
    ct_wait_exit $((drain + stop + 20))
    check "nspawn exit status 0 (got ${CT_RC:-none})" eq "${CT_RC:-none}" 0
    check "not before drain delay + stop timeout (${CT_EXIT:-?} s >= $((drain + stop)) s)" \
        num "${CT_EXIT:-0}" '>=' $((drain + stop))
    check "within drain delay + stop timeout + 1 s (${CT_EXIT:-?} s <= $((drain + stop + 1)) s)" \
        num "${CT_EXIT:-99}" '<=' $((drain + stop + 1))
    check "corral killed the workers after the stop timeout" console_has "did not stop within ${stop}s, killed it"
    FIGURES="workers ignoring SIGTERM, drain ${drain} s, stop timeout ${stop} s: nspawn exit ${CT_RC:-none} in ${CT_EXIT:-?} s"
}

# orphans: a worker that double-forks 10,000 times; corral, PID 1, reaps every orphan: no zombie in the
# container, corral_orphans_reaped_total >= 10,000; then SIGTERM, exit 0.
sc_orphans() {
    local ports status_port reaped=0 t_reaped='?' zp t0
    mapfile -t ports < <(free_ports 2)
    status_port=${ports[1]}
    t0=$(now)
    check "the container starts" ct_start orphans --listen "127.0.0.1:${ports[0]}" \
        --status-listen "127.0.0.1:$status_port" --count 1 --ready-mode exec \
        -- /usr/bin/python3 /opt/corral-src/tests/integration/orphaner.py "$ORPHANS" sleep || return
    check "corral is PID 1 of the container" ct_is_corral
    all_reaped() {
        reaped=$(metric "$status_port" corral_orphans_reaped_total)
        ((${reaped:-0} >= ORPHANS))
    }
    if wait_until 60 all_reaped; then
        t_reaped=$(elapsed "$t0")
    fi
    check "corral_orphans_reaped_total >= $ORPHANS (${reaped:-none})" test "${reaped:-0}" -ge "$ORPHANS"
    zp=$(ct_zombies)
    check "no zombie in the container (zombies, processes: $zp)" eq "${zp%% *}" 0
    CT_T0=$(now)
    kill -TERM "$CT_PID"
    ct_wait_exit $((STOP_TIMEOUT + 20))
    check "nspawn exit status 0 after SIGTERM (got ${CT_RC:-none})" eq "${CT_RC:-none}" 0
    check "corral stopped on that SIGTERM" console_has "received SIGTERM"
    FIGURES="$ORPHANS double forks: ${reaped:-?} reaped in ${t_reaped} s from the container's start, zombies/processes in the container $zp; nspawn exit ${CT_RC:-none} in ${CT_EXIT:-?} s after SIGTERM"
}

# exit-status: nspawn exits with its PID 1's status, corral's, not a status of its own: a bad option value
# makes corral exit 78 (EX_CONFIG), which nspawn never returns for itself.
sc_exit_status() {
    CT_T0=$(now)
    # It exits before start_nspawn sees its PID 1 (which it then calls "did not start").
    ct_start exit-status --count bogus -- "$WORKER" 2>/dev/null
    ct_wait_exit 30
    check "nspawn exit status 78, corral's for a bad option value (got ${CT_RC:-none})" eq "${CT_RC:-none}" 78
    check "corral said why" console_has "--count: invalid value 'bogus'"
    FIGURES="corral --count bogus: nspawn exit ${CT_RC:-none} in ${CT_EXIT:-?} s"
}

# crash-loop: with the shipped config's GiveUpAfterFailures=, a worker that always fails ends the container
# by itself, and nspawn exits with corral's give-up status, 1.
sc_crash_loop() {
    local give_up ports
    give_up=$(sed -n 's/^GiveUpAfterFailures=//p' "$src_dir/contrib/container/corral.conf")
    mapfile -t ports < <(free_ports 2)
    CT_T0=$(now)
    check "the container starts" ct_start crash-loop --config "$EXAMPLE_CONF" --count "$WORKERS" --listen '' \
        --listen "127.0.0.1:${ports[0]}" --status-listen "127.0.0.1:${ports[1]}" -- /bin/false || return
    ct_wait_exit 60
    check "the container exits by itself (in ${CT_EXIT:-more than 60} s)" test -n "$CT_RC"
    check "nspawn exit status 1, corral's give-up status (got ${CT_RC:-none})" eq "${CT_RC:-none}" 1
    check "corral gave up" console_has "giving up"
    FIGURES="GiveUpAfterFailures=$give_up: nspawn exit ${CT_RC:-none} ${CT_EXIT:-?} s after start; $(grep -c 'exited with status 1' "$CT_DIR/console.log") worker exits"
}

main() {
    local t_start tool f
    t_start=$(now)
    ((EUID == 0)) || { echo "container: FAIL: needs root" >&2; exit 1; }
    for tool in mmdebstrap systemd-nspawn haproxy socat python3 curl flock; do
        command -v "$tool" >/dev/null || { echo "container: FAIL: $tool is not installed" >&2; exit 1; }
    done
    for f in corral tests/corral-test-worker; do
        [[ -x $build_dir/$f ]] || { echo "container: FAIL: $build_dir/$f is missing (build first)" >&2; exit 1; }
    done
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/corral-container.XXXXXX")
    trap 'cleanup' EXIT
    trap 'exit 1' INT TERM
    local t0
    t0=$(now)
    if ! ROOTFS=$(ensure_rootfs entrypoint); then
        result rootfs FAIL "see $E2E_CACHE/build-entrypoint.log"
        summary_exit "$(elapsed "$t_start")"
    fi
    e2e_log "rootfs entrypoint ready in $(elapsed "$t0") s"
    local sc
    for sc in exit-status stop-under-load stop-timeout orphans crash-loop; do
        scenario "$sc"
    done
    cleanup || result teardown FAIL "processes or cgroups had to be forced away"
    summary_exit "$(elapsed "$t_start")"
}

main
