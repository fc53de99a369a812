#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end tier: corral under a real systemd (PID 1 of a systemd-nspawn container booted from a
# cached Debian bookworm rootfs), driven through systemctl and asserted on what systemd and the
# journal report. One line per scenario, `e2e: <scenario>: PASS|FAIL|SKIP (<figures>)`, then a
# summary line. Exit status: 0 every scenario passed; 1 any failed (or the set-up did); 2 none failed
# but some were skipped (systemd 254 unavailable: bookworm-backports unreachable; no go on the host for
# stack-go); 64 usage.
set -uo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: tests/e2e/run.sh [OPTIONS] BUILD_DIR

BUILD_DIR is a corral build directory (holding corral, units/corral@.service and
tests/corral-test-worker). Needs root, mmdebstrap, systemd-container and debhelper (the
package is built with scripts/deb.sh, once as is and once as a newer version for the upgrade),
and the git history (a corral from before `corral upgrade` is built from it).

Options:
  --systemd LIST   systemd versions to run under, comma-separated: 252 (bookworm), 254
                   (bookworm-backports) (default: 252,254). 254 falls back to 252 when
                   bookworm-backports cannot be reached, and says so.
  --keep-logs DIR  copy each container's console log and journal into DIR
  --deb FILE       the package to install (corral_VERSION_ARCH.deb, from scripts/deb.sh);
                   default: built here
  -h, --help       show this help

Environment: CORRAL_E2E_CACHE (default /var/cache/corral-e2e) holds the rootfs between runs;
CORRAL_E2E_MIRROR, CORRAL_E2E_SECURITY_MIRROR and CORRAL_E2E_BACKPORTS_MIRROR override the
Debian mirrors.
Exit status: 0 all passed, 1 something failed, 2 nothing failed but something was skipped.
EOF_USAGE
}

flavours=252,254
E2E_KEEP_LOGS=''
build_dir=''
deb_given=''
while (($# > 0)); do
    case $1 in
        --systemd)
            flavours=${2:?--systemd needs a list}
            shift 2
            ;;
        --keep-logs)
            E2E_KEEP_LOGS=${2:?--keep-logs needs a directory}
            shift 2
            ;;
        --deb)
            deb_given=${2:?--deb needs a file}
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            echo "run.sh: unknown option '$1'" >&2
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
build_dir=$(cd "$build_dir" && pwd) || exit 64
if [[ -n $deb_given ]]; then
    deb_given=$(cd "$(dirname "$deb_given")" && pwd)/$(basename "$deb_given")
    [[ -f $deb_given ]] || { echo "run.sh: no package '$deb_given'" >&2; exit 64; }
fi
# The unit pair and the catalog come from the tree the build was configured from.
src_dir=$(sed -n 's/^corral_SOURCE_DIR:STATIC=//p' "$build_dir/CMakeCache.txt" 2>/dev/null)
[[ -n $src_dir && -d $src_dir/units ]] || src_dir=$(cd "$here/../.." && pwd)
E2E_CACHE=${CORRAL_E2E_CACHE:-/var/cache/corral-e2e}
# shellcheck source=tests/e2e/lib.sh
source "$here/lib.sh"
if [[ -n $E2E_KEEP_LOGS ]]; then
    mkdir -p "$E2E_KEEP_LOGS" && E2E_KEEP_LOGS=$(cd "$E2E_KEEP_LOGS" && pwd)
fi

WORKERS=4
PORT=8080
CONTROL=/run/corral/app/control
UNIT=corral@app.service
SOCKET=corral@app.socket
WORKER=/usr/local/bin/corral-test-worker
READY_DELAY=0.3:0.6 # per worker, so a roll of 4 takes ~1.2-2.4 s: a reload that does not wait shows
MSG_CRASHED=1bcd44d3a6ae4e6780c87b2e699c2c38
MSG_STARTED=7d91c7b1a6d34bfcaa25f1d8dc983df0
MSG_RELOAD_FAILED=e437e9b4d82e47b8ad0b5dedbd699408
MSG_STOP_KILLED=6e73f14f664f46f5b1ac1b17824723d8
MSG_UPGRADE_DONE=86ee88414cce4214adffe152e1013a74

# ---- queries ---------------------------------------------------------------------------------------
prop() { ct systemctl show --value -p "$2" "$1"; }
show() { # one line, in this order
    local p
    for p in ActiveState SubState Result StatusText MainPID; do printf '%s=%s ' "$p" "$(prop "$UNIT" "$p")"; done
}
# shellcheck disable=SC2053 # $2 is a glob pattern
matches() { [[ $1 == $2 ]] || { e2e_log "    expected '$2', got '$1'"; return 1; }; }

# pool_json: corral's own view (slots, pids, generation) through its control socket.
pool_json() { ct corral status --json --control "$CONTROL" 2>/dev/null | sed -n '/^{/,$p'; }
pyjson() { # EXPR: evaluates EXPR with j = the JSON document on stdin
    python3 -c 'import json, sys; j = json.loads(sys.stdin.read() or "null"); r = eval(sys.argv[1]); print(" ".join(map(str, r)) if isinstance(r, (list, tuple, set)) else r)' "$1"
}
worker_pids() { pool_json | pyjson 'sorted(w["pid"] for w in j["workers"])'; }

# The pool settled: every slot ready, all of generation GEN, no extra worker, unit active/running.
pool_settled() { # GEN
    local j
    j=$(pool_json) || return 1
    [[ $(pyjson "len(j['workers']) == $WORKERS and all(w['state'] == 'ready' and w['generation'] == $1 for w in j['workers']) and j['processes'] == $WORKERS" <<<"$j") == True ]] &&
        [[ $(prop "$UNIT" SubState) == running ]]
}

# StatusText is "N/N workers ready, generation G", possibly followed by ", <totals>" (memory).
status_text_ok() { # TEXT GEN
    [[ $1 == "$WORKERS/$WORKERS workers ready, generation $2" || $1 == "$WORKERS/$WORKERS workers ready, generation $2, "* ]] ||
        { e2e_log "    expected StatusText '$WORKERS/$WORKERS workers ready, generation $2[, ...]', got '$1'"; return 1; }
}
status_text_is() { status_text_ok "$(prop "$UNIT" StatusText)" "$1"; }

# Journal records of the unit with MESSAGE_ID written since SINCE (now_us), as JSON lines. Filtered
# here, not with `--after-cursor=C MESSAGE_ID=X`: journalctl < 255 skips the first matching entry
# after a cursor whose own entry does not match (systemd issue #30288, fixed by PR #30336), which
# hides exactly the one record a scenario looks for.
journal_since() { # SINCE MESSAGE_ID
    ct journalctl -o json --no-pager -u "$UNIT" 2>/dev/null | python3 -c '
import json, sys
since, mid = int(sys.argv[1]), sys.argv[2]
for line in sys.stdin:
    r = json.loads(line)
    if r.get("MESSAGE_ID") == mid and int(r["__REALTIME_TIMESTAMP"]) >= since:
        print(line, end="")' "$1" "$2"
}
has_journal() { [[ -n $(journal_since "$1" "$2") ]]; }

# ---- load ------------------------------------------------------------------------------------------
LOAD_PID='' LOAD_OUT=''
load_start() { # CONCURRENCY [LOAD_ARGS...]
    LOAD_OUT=$(mktemp "${TMPDIR:-/tmp}/corral-e2e-load.XXXXXX")
    nsenter -t "$CT_LEADER" -n -- python3 "$here/load.py" --port "$PORT" --concurrency "$1" --duration 90 --timeout 10 "${@:2}" \
        >"$LOAD_OUT" 2>"$LOAD_OUT.err" &
    LOAD_PID=$!
    wait_until 5 grep -q started "$LOAD_OUT.err"
    sleep 1 # steady state before the event
}
load_stop() { # sets LOAD_SUM to the JSON summary (not in a subshell: it waits for the client)
    LOAD_SUM='{}'
    [[ -n $LOAD_PID ]] || return 1
    kill -TERM "$LOAD_PID" 2>/dev/null
    wait "$LOAD_PID"
    LOAD_PID=''
    LOAD_SUM=$(cat "$LOAD_OUT")
    [[ -n $LOAD_SUM ]] || { LOAD_SUM='{}'; e2e_log "load client: $(cat "$LOAD_OUT.err")"; }
    rm -f "$LOAD_OUT" "$LOAD_OUT.err"
}
load_figures() { pyjson 'j and "requests %d, failed %d, refused %d, retried %d, max latency %.3f s" % (j["ok"] + j["failed"], j["failed"], j["refused"], j["retried"], j["max_latency_s"])'; }

# ---- set-up inside the container ------------------------------------------------------------------
write_config() { # EXTRA_WORKER_ARGS...
    ct sh -c "mkdir -p /etc/corral && cat > /etc/corral/app.conf.new && mv /etc/corral/app.conf.new /etc/corral/app.conf" <<EOF
[Worker]
ExecStart=$WORKER --ready-delay $READY_DELAY $*
Count=$WORKERS
ReadyTimeoutSec=10s
StopTimeoutSec=10s

[Reload]
MaxSurge=1
MaxUnavailable=0
EOF
}

# apt_install DEB: `apt-get install ./corral_*.deb` as a user runs it, inside the container (no network:
# the Depends are in the rootfs already). Its output goes to APT_OUT.
APT_OUT=''
apt_install() {
    APT_OUT=$(ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "/opt/corral-debs/$1" 2>&1)
}
installed_version() { ct dpkg-query -W -f='${Version}' corral 2>/dev/null; }

# install_corral NOTIFY_RELOAD: the package (apt-get install), a TCP port for the socket, the test worker.
install_corral() {
    local t0 rc
    t0=$(now)
    apt_install "$DEB_OLD"
    rc=$?
    ((rc == 0)) || { e2e_log "apt-get install $DEB_OLD failed ($rc): $APT_OUT"; return 1; }
    e2e_log "apt-get install $DEB_OLD: $(elapsed "$t0") s, corral $(installed_version) installed"
    ct install -D -m 0755 /opt/corral-build/tests/corral-test-worker "$WORKER" &&
        ct mkdir -p /etc/systemd/system/corral@app.socket.d || return 1
    ct sh -c 'cat > /etc/systemd/system/corral@app.socket.d/e2e.conf' <<EOF
[Socket]
ListenStream=127.0.0.1:$PORT
EOF
    if [[ $1 == 1 ]]; then
        ct install -D -m 0644 /opt/corral-src/contrib/notify-reload.conf \
            /etc/systemd/system/corral@app.service.d/notify-reload.conf || return 1
    fi
    write_config && ct systemctl daemon-reload
}

# ---- scenarios -------------------------------------------------------------------------------------
ACTIVATION_OK=0

sc_activation() {
    local name=$1 expect_type=$2
    begin
    check "$SOCKET starts" ct systemctl start "$SOCKET"
    check "service not started before the first connection" eq "$(prop "$UNIT" ActiveState)" inactive
    check "service Type=$expect_type" eq "$(prop "$UNIT" Type)" "$expect_type"
    local first latency='?'
    first=$(ctnet python3 "$here/load.py" --port "$PORT" --once --timeout 30)
    latency=$(pyjson '"%.3f" % j["latency_s"]' <<<"$first")
    check "first connection answered ($first)" eq "$(pyjson 'j["ok"]' <<<"$first")" True
    check "pool settles at generation 1" wait_until 15 pool_settled 1
    local st
    st=$(show)
    check "ActiveState=active SubState=running" matches "$st" "*ActiveState=active SubState=running*"
    check "StatusText shows the pool" wait_until 5 status_text_is 1
    check "MainPID is corral" eq "$(ct cat "/proc/$(prop "$UNIT" MainPID)/comm" 2>/dev/null)" corral
    # Every worker serves: a connection per request (keep-alive connections stick to the worker that
    # accepted them), every pid the pool reports answers.
    load_start 20 --no-keepalive
    local sum pids
    load_stop; sum=$LOAD_SUM
    pids=$(worker_pids)
    check "no failed request ($sum)" eq "$(pyjson 'j["failed"]' <<<"$sum")" 0
    check "all $WORKERS workers served (served by $(pyjson 'j["pids"]' <<<"$sum"), pool $pids)" \
        eq "$(pyjson 'sorted(map(int, j["pids"]))' <<<"$sum")" "$pids"
    ((${#fails[@]})) || ACTIVATION_OK=1
    finish "$name" "activation latency ${latency} s, $WORKERS/$WORKERS ready, $(load_figures <<<"$sum"); $st"
}

# sc_reload NAME: `systemctl reload` under load blocks until the roll is over, succeeds, replaces
# every worker, drops nothing.
sc_reload() {
    local name=$1
    begin
    local before gen t0 rc dur sum after status_after
    before=$(worker_pids)
    gen=$(pool_json | pyjson 'j["generation"]')
    load_start 24
    t0=$(now)
    ct timeout 120 systemctl reload "$UNIT"
    rc=$?
    dur=$(elapsed "$t0")
    # Taken at once: a reload that returned before the roll ended shows here.
    status_after=$(pool_json | pyjson '"gen %d, %d/%d ready, states %s" % (j["generation"], j["ready"], j["wanted"], ",".join(w["state"] + "@" + str(w["generation"]) for w in j["workers"]))')
    local sub_after
    sub_after=$(prop "$UNIT" SubState)
    sleep 0.5
    load_stop; sum=$LOAD_SUM
    after=$(worker_pids)
    check "systemctl reload exits 0 (got $rc)" eq "$rc" 0
    check "the roll was over when it returned ($status_after, SubState=$sub_after)" pool_settled $((gen + 1))
    check "SubState=running right after the reload" eq "$sub_after" running
    check "it took at least one ready delay per worker (${dur} s)" \
        python3 -c "import sys; sys.exit(float(sys.argv[1]) < $WORKERS * 0.3)" "$dur"
    check "all worker pids changed (before: $before, after: $after)" \
        python3 -c 'import sys; a, b = set(sys.argv[1].split()), set(sys.argv[2].split()); sys.exit(not (a and b and not a & b))' "$before" "$after"
    check "ActiveState=active" eq "$(prop "$UNIT" ActiveState)" active
    check "StatusText generation $((gen + 1))" wait_until 5 status_text_is $((gen + 1))
    check "zero failed requests" eq "$(pyjson 'j["failed"]' <<<"$sum")" 0
    check "zero retried requests" eq "$(pyjson 'j["retried"]' <<<"$sum")" 0
    finish "$name" "reload ${dur} s, exit $rc, generation $gen -> $((gen + 1)), $(load_figures <<<"$sum")"
}

# sc_bad_deploy NAME STRICT: a new generation that crashes at start. STRICT=1 (ExecReload= helper):
# `systemctl reload` must fail. STRICT=0 (Type=notify-reload): systemd cannot tell a failed roll from
# a good one (contrib/notify-reload.conf says so), so only the exit status is reported.
sc_bad_deploy() {
    local name=$1 strict=$2
    begin
    local before gen cur t0 rc dur sum after out
    before=$(worker_pids)
    gen=$(pool_json | pyjson 'j["generation"]')
    cur=$(now_us)
    write_config --crash-at-start
    load_start 24
    t0=$(now)
    out=$(ct timeout 120 systemctl reload "$UNIT" 2>&1)
    rc=$?
    dur=$(elapsed "$t0")
    sleep 0.5
    load_stop; sum=$LOAD_SUM
    after=$(worker_pids)
    ((!strict)) || check "systemctl reload exits non-zero" test "$rc" -ne 0
    check "not left reloading: SubState=running" eq "$(prop "$UNIT" SubState)" running
    check "StatusText generation $gen" wait_until 5 status_text_is "$gen"
    check "the unit stays active/running ($(show))" matches "$(show)" "*ActiveState=active SubState=running*"
    check "the old workers still serve (before: $before, after: $after)" eq "$after" "$before"
    check "generation stays $gen" pool_settled "$gen"
    check "served only by the old workers ($(pyjson 'j["pids"]' <<<"$sum"))" \
        python3 -c 'import sys; sys.exit(not (sys.argv[1].split() and set(sys.argv[1].split()) <= set(sys.argv[2].split())))' \
        "$(pyjson 'j["pids"]' <<<"$sum")" "$before"
    check "zero failed requests" eq "$(pyjson 'j["failed"]' <<<"$sum")" 0
    check "a 'reload failed' journal record" wait_until 5 has_journal "$cur" "$MSG_RELOAD_FAILED"
    local reason
    reason=$(journal_since "$cur" "$MSG_RELOAD_FAILED" | head -n1 | pyjson 'j.get("REASON", "?")' 2>/dev/null)
    write_config # the good configuration back, for what follows
    finish "$name" "systemctl reload exit $rc in ${dur} s${out:+ (${out//$'\n'/ })}; corral: reload failed, REASON=$reason; $(load_figures <<<"$sum")"
}

# sc_accounting NAME: with Delegate=yes corral gives every worker a cgroup leaf below the service's own
# and keeps itself apart (cgroup v2: its supervisor/ leaf); corral status shows memory and CPU from them.
sc_accounting() {
    local name=$1
    begin
    local main cg line own j pid wcg leaves=0
    main=$(prop "$UNIT" MainPID)
    cg=$(prop "$UNIT" ControlGroup)
    line=$(ct journalctl -u "$UNIT" -o cat --no-pager | grep -m1 "accounting:")
    check "accounting backend logged ($line)" matches "$line" "*accounting: cgroup v2*"
    own=$(ct sh -c "sed -n 's/^0:://p' /proc/$main/cgroup")
    check "corral in its own leaf ($own)" eq "$own" "$cg/supervisor"
    j=$(pool_json)
    for pid in $(pyjson '" ".join(str(w["pid"]) for w in j["workers"])' <<<"$j"); do
        wcg=$(ct sh -c "sed -n 's/^0:://p' /proc/$pid/cgroup")
        check "worker $pid in a leaf of its own ($wcg)" matches "$wcg" "$cg/worker-*-*"
        leaves=$((leaves + 1))
    done
    check "memory and CPU figures in corral status" python3 -c 'import json, sys
j = json.loads(sys.argv[1])
sys.exit(not (j["workers"] and all(w["memory_bytes"] > 0 for w in j["workers"])))' "$j"
    finish "$name" "$leaves worker leaves under $cg, corral in $own; $(pyjson '"memory %s, cpu_usec %s" % ([w["memory_bytes"] for w in j["workers"]], [w["cpu_usec"] for w in j["workers"]])' <<<"$j")"
}

# sc_unprivileged NAME: the shipped unit runs the pool as a user systemd makes up (DynamicUser=yes): corral
# and every worker run as that user, not root; the workers still get their cgroup leaves below the
# delegated cgroup and memory figures; root reaches the control socket by the instance's name; and
# `systemd-analyze security` rates the unit (the figure the README quotes).
sc_unprivileged() {
    local name=$1
    begin
    local main uid j pid wuid wcg cg leaves=0 out exposure
    main=$(prop "$UNIT" MainPID)
    cg=$(prop "$UNIT" ControlGroup)
    uid=$(ct sh -c "awk '/^Uid:/ { print \$2, \$3, \$4, \$5 }' /proc/$main/status")
    check "corral runs as a non-root user (Uid: $uid)" test -n "$uid" -a "${uid%% *}" != 0
    check "corral's real, effective, saved and fs uids agree ($uid)" eq "$uid" "$(printf '%s ' ${uid%% *}{,,,} | sed 's/ $//')"
    j=$(pool_json)
    for pid in $(pyjson '" ".join(str(w["pid"]) for w in j["workers"])' <<<"$j"); do
        wuid=$(ct sh -c "awk '/^Uid:/ { print \$2, \$3, \$4, \$5 }' /proc/$pid/status")
        check "worker $pid runs as corral's user ($wuid)" eq "$wuid" "$uid"
        wcg=$(ct sh -c "sed -n 's/^0:://p' /proc/$pid/cgroup")
        check "worker $pid in a leaf of its own ($wcg)" matches "$wcg" "$cg/worker-*-*"
        leaves=$((leaves + 1))
    done
    check "$WORKERS workers seen" eq "$leaves" "$WORKERS"
    check "memory figures for every worker" python3 -c 'import json, sys
j = json.loads(sys.argv[1])
sys.exit(not (j["workers"] and all(w["memory_bytes"] > 0 for w in j["workers"])))' "$j"
    out=$(ct corral status app 2>&1)
    check "root: 'corral status app' finds and reads the pool ($(head -n1 <<<"$out"))" matches "$(head -n1 <<<"$out")" "app: corral *running*"
    exposure=$(ct systemd-analyze security --no-pager "$UNIT" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    check "systemd-analyze security: exposure $exposure at most 2.0" python3 -c 'import sys; sys.exit(not float(sys.argv[1] or 99) <= 2.0)' "$exposure"
    finish "$name" "corral and $leaves workers as uid ${uid%% *}, each in a leaf under $cg; systemd-analyze security exposure $exposure"
}

sc_crash() {
    local name=$1
    begin
    local j victim slot gen cur t0 repl dur
    j=$(pool_json)
    victim=$(pyjson 'j["workers"][0]["pid"]' <<<"$j")
    slot=$(pyjson 'j["workers"][0]["slot"]' <<<"$j")
    gen=$(pyjson 'j["workers"][0]["generation"]' <<<"$j")
    cur=$(now_us)
    t0=$(now)
    check "SIGKILL worker $victim" ct kill -KILL "$victim"
    replaced() {
        repl=$(pool_json | pyjson "[w['pid'] for w in j['workers'] if w['slot'] == $slot and w['state'] == 'ready' and w['pid'] != $victim]")
        [[ -n $repl ]]
    }
    check "slot $slot gets a ready replacement" wait_until 15 replaced
    dur=$(elapsed "$t0")
    replaced
    check "pool back to $WORKERS/$WORKERS ready" wait_until 5 pool_settled "$gen"
    check "StatusText back to generation $gen" wait_until 5 status_text_is "$gen"
    check "unit still active" eq "$(prop "$UNIT" ActiveState)" active
    # The journal: crashed for the victim, started for the replacement, with the worker fields.
    local crashed started
    wait_until 5 has_journal "$cur" "$MSG_STARTED"
    crashed=$(journal_since "$cur" "$MSG_CRASHED")
    started=$(journal_since "$cur" "$MSG_STARTED")
    check "crashed record WORKER_PID=$victim WORKER_SLOT=$slot WORKER_GENERATION=$gen (got: $(head -c 600 <<<"$crashed"))" \
        grep -q . <(python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if (r.get("WORKER_PID"), r.get("WORKER_SLOT"), r.get("WORKER_GENERATION")) == tuple(sys.argv[1:4]):
        print("ok")' "$victim" "$slot" "$gen" <<<"$crashed")
    check "started record WORKER_PID=$repl WORKER_SLOT=$slot WORKER_GENERATION=$gen (got: $(head -c 600 <<<"$started"))" \
        grep -q . <(python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if (r.get("WORKER_PID"), r.get("WORKER_SLOT"), r.get("WORKER_GENERATION")) == tuple(sys.argv[1:4]):
        print("ok")' "$repl" "$slot" "$gen" <<<"$started")
    # The catalog: the package installed it, systemd's dpkg trigger updated the catalog database, and
    # journalctl -x explains the crash.
    local x
    check "the package's catalog is installed" ct test -f /usr/lib/systemd/catalog/corral.catalog
    x=$(ct journalctl -x --no-pager -u "$UNIT" --since="@${cur%??????}" | grep -A12 'killed by signal KILL')
    check "journalctl -x shows the catalog subject" grep -q 'Subject: corral: worker exited unexpectedly' <<<"$x"
    check "journalctl -x shows the catalog text" grep -q 'MinUptimeSec=' <<<"$x"
    finish "$name" "worker $victim replaced by $repl in ${dur} s; journal: crashed + started with WORKER_*; the package's catalog shown by journalctl -x"
}

# corral upgrade under load: the binary replaced by rename (as dpkg does), then upgraded in place three
# times: same MainPID, no restart, the same workers, nothing failed, an UPGRADE_DONE journal record each.
sc_upgrade() {
    local name=$1
    begin
    local main restarts pids bin cur t0 rc out dur sum i
    check "pool settles before the upgrade" wait_until 15 pool_settled "$(pool_json | pyjson 'j["generation"]')"
    main=$(prop "$UNIT" MainPID)
    restarts=$(prop "$UNIT" NRestarts)
    pids=$(worker_pids)
    bin=$(prop "$UNIT" ExecStart | sed -n 's/.*path=\([^ ;]*\).*/\1/p')
    check "the unit runs the package's /usr/bin/corral ($bin)" eq "$bin" /usr/bin/corral
    cur=$(now_us)
    load_start 24
    t0=$(now)
    for i in 1 2 3; do
        ct sh -c "cp '$bin' '$bin.new' && mv '$bin.new' '$bin'"
        out=$(ct corral upgrade app 2>&1)
        rc=$?
        check "corral upgrade app #$i exits 0 (got $rc: $out)" eq "$rc" 0
    done
    dur=$(elapsed "$t0")
    sleep 1
    load_stop; sum=$LOAD_SUM
    check "same MainPID ($main -> $(prop "$UNIT" MainPID))" eq "$(prop "$UNIT" MainPID)" "$main"
    check "NRestarts unchanged" eq "$(prop "$UNIT" NRestarts)" "$restarts"
    check "unit active/running" matches "$(show)" "*ActiveState=active SubState=running*"
    check "the same workers ($pids -> $(worker_pids))" eq "$(worker_pids)" "$pids"
    check "zero failed requests" eq "$(pyjson 'j["failed"]' <<<"$sum")" 0
    check "three UPGRADE_DONE journal records" wait_until 5 \
        test "$(journal_since "$cur" "$MSG_UPGRADE_DONE" | wc -l)" -eq 3
    finish "$name" "3 upgrades in ${dur} s, $(load_figures <<<"$sum")"
}

# sc_deb_upgrade NAME: `apt-get install` of a newer package (same code, higher version) under load. Its
# postinst upgrades the running instance in place: the same MainPID, NRestarts unchanged, every worker pid
# unchanged, zero failed requests, and corral status reports the new version.
sc_deb_upgrade() {
    local name=$1
    begin
    local main restarts pids t0 rc dur sum version
    check "pool settles before the package upgrade" wait_until 15 pool_settled "$(pool_json | pyjson 'j["generation"]')"
    check "corral $DEB_OLD_VERSION is installed" eq "$(installed_version)" "$DEB_OLD_VERSION"
    check "corral status reports $DEB_OLD_VERSION" eq "$(pool_json | pyjson 'j["version"]')" "$DEB_OLD_VERSION"
    main=$(prop "$UNIT" MainPID)
    restarts=$(prop "$UNIT" NRestarts)
    pids=$(worker_pids)
    load_start 24
    t0=$(now)
    apt_install "$DEB_NEW"
    rc=$?
    dur=$(elapsed "$t0")
    sleep 1
    load_stop; sum=$LOAD_SUM
    e2e_log "  apt-get install $DEB_NEW: $(grep -E '^corral:' <<<"$APT_OUT" | tr '\n' ' ')"
    check "apt-get install $DEB_NEW exits 0 (got $rc: $(tail -n 3 <<<"$APT_OUT" | tr '\n' ' '))" eq "$rc" 0
    check "corral $DEB_NEW_VERSION is installed" eq "$(installed_version)" "$DEB_NEW_VERSION"
    check "postinst upgraded the instance in place" grep -q "^corral: instance 'app': upgraded to corral $DEB_NEW_VERSION" <<<"$APT_OUT"
    version=$(pool_json | pyjson 'j["version"]')
    check "corral status reports $DEB_NEW_VERSION (got $version)" eq "$version" "$DEB_NEW_VERSION"
    check "corral --version says $DEB_NEW_VERSION" eq "$(ct corral --version)" "corral $DEB_NEW_VERSION"
    check "same MainPID ($main -> $(prop "$UNIT" MainPID))" eq "$(prop "$UNIT" MainPID)" "$main"
    check "NRestarts unchanged" eq "$(prop "$UNIT" NRestarts)" "$restarts"
    check "unit active/running" matches "$(show)" "*ActiveState=active SubState=running*"
    check "every worker pid unchanged ($pids -> $(worker_pids))" eq "$(worker_pids)" "$pids"
    check "zero failed requests" eq "$(pyjson 'j["failed"]' <<<"$sum")" 0
    finish "$name" "$DEB_OLD_VERSION -> $DEB_NEW_VERSION by apt-get in ${dur} s, MainPID $main kept, $WORKERS workers kept, $(load_figures <<<"$sum")"
}

# sc_deb_not_upgraded NAME: a package change whose postinst cannot upgrade the instances, for both
# reasons: corral@app refuses while a reload rolls, corral@old runs a corral from before `corral upgrade`
# (drop-in ExecStart=). It warns, naming each instance and why, exits 0 and leaves both running on the
# binary they had: same MainPID, no restart. The operator's `corral upgrade app` afterwards moves app.
# The change is back to the first package (apt-get --allow-downgrades: dpkg runs postinst configure with
# the old version all the same).
OLD_UNIT=corral@old.service
sc_deb_not_upgraded() {
    local name=$1
    begin
    local gen main restarts rc t0 dur version out old_main
    ct install -D -m 0755 /opt/corral-debs/corral-pre-upgrade /usr/local/lib/corral-old/corral &&
        ct mkdir -p "/etc/systemd/system/$OLD_UNIT.d" &&
        ct sh -c "printf '[Service]\nExecStart=\nExecStart=/usr/local/lib/corral-old/corral --config /etc/corral/old.conf\nExecReload=\nExecReload=/usr/local/lib/corral-old/corral reload --wait\n' >/etc/systemd/system/$OLD_UNIT.d/old.conf" &&
        ct cp /etc/corral/app.conf /etc/corral/old.conf && ct systemctl daemon-reload &&
        ct timeout 60 systemctl start "$OLD_UNIT"
    check "corral@old started with the corral from before 'corral upgrade'" test $? -eq 0
    old_listed() { ct corral list | grep -q '^old '; }
    check "corral list shows old" wait_until 15 old_listed
    old_main=$(prop "$OLD_UNIT" MainPID)
    check "corral@old runs /usr/local/lib/corral-old/corral" eq "$(ct readlink "/proc/$old_main/exe")" /usr/local/lib/corral-old/corral
    check "pool settles before" wait_until 15 pool_settled "$(pool_json | pyjson 'j["generation"]')"
    gen=$(pool_json | pyjson 'j["generation"]')
    main=$(prop "$UNIT" MainPID)
    restarts=$(prop "$UNIT" NRestarts)
    # A roll of 4 workers that take 2 s each to be ready: ~8 s during which corral refuses to upgrade.
    READY_DELAY=2 write_config
    ct systemctl reload --no-block "$UNIT"
    rolling() { [[ $(pool_json | pyjson 'any(w["generation"] > '"$gen"' for w in j["workers"])') == True ]]; }
    check "a reload rolls" wait_until 5 rolling
    # The generation the roll goes to (not always gen + 1: a failed roll used up a number too).
    gen=$(pool_json | pyjson 'max(w["generation"] for w in j["workers"])')
    t0=$(now)
    APT_OUT=$(ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades "/opt/corral-debs/$DEB_OLD" 2>&1)
    rc=$?
    dur=$(elapsed "$t0")
    e2e_log "  apt-get install $DEB_OLD during a roll: $(grep -E '^corral:' <<<"$APT_OUT" | tr '\n' ' ')"
    check "apt-get exits 0 (got $rc)" eq "$rc" 0
    check "corral $DEB_OLD_VERSION is installed" eq "$(installed_version)" "$DEB_OLD_VERSION"
    check "postinst warns that 'app' was not upgraded, and why" \
        grep -q "^corral: WARNING: instance 'app' was not upgraded (the upgrade in place failed: .*cannot upgrade now: " <<<"$APT_OUT"
    check "postinst says it keeps running on the old binary" grep -q "keeps running on the old binary" <<<"$APT_OUT"
    check "postinst warns that 'old' was not upgraded: too old" \
        grep -q "^corral: WARNING: instance 'old' was not upgraded (its corral is too old to upgrade in place)" <<<"$APT_OUT"
    check "corral@old still runs, same MainPID ($old_main -> $(prop "$OLD_UNIT" MainPID)), no restart" \
        matches "$(prop "$OLD_UNIT" MainPID) $(prop "$OLD_UNIT" NRestarts) $(prop "$OLD_UNIT" ActiveState)" "$old_main 0 active"
    check "the pool settles at generation $gen" wait_until 30 pool_settled "$gen"
    version=$(pool_json | pyjson 'j["version"]')
    check "still the old binary: corral status reports $DEB_NEW_VERSION (got $version)" eq "$version" "$DEB_NEW_VERSION"
    check "same MainPID ($main -> $(prop "$UNIT" MainPID))" eq "$(prop "$UNIT" MainPID)" "$main"
    check "NRestarts unchanged" eq "$(prop "$UNIT" NRestarts)" "$restarts"
    write_config
    out=$(ct corral upgrade app 2>&1)
    check "the operator's corral upgrade app afterwards ($out)" grep -q "upgraded to corral $DEB_OLD_VERSION" <<<"$out"
    check "corral status reports $DEB_OLD_VERSION" eq "$(pool_json | pyjson 'j["version"]')" "$DEB_OLD_VERSION"
    ct timeout 60 systemctl stop "$OLD_UNIT" corral@old.socket &&
        ct rm -rf "/etc/systemd/system/$OLD_UNIT.d" /etc/corral/old.conf /usr/local/lib/corral-old &&
        ct systemctl daemon-reload
    check "corral@old stopped and removed" test $? -eq 0
    finish "$name" "apt-get in ${dur} s: app (rolling) and old (pre-upgrade corral) warned about, kept their MainPIDs; corral upgrade then moved app"
}

# sc_remove_purge NAME: `apt-get remove` stops nothing (the enabled, running pool keeps serving on the
# removed binary); `apt-get purge` stops the instance and leaves no file of the package, no enablement
# link, no loaded unit and no user behind, while the operator's own files stay.
sc_remove_purge() {
    local name=$1
    begin
    local files main rc first left links units users
    files=$(ct sh -c 'dpkg-query -L corral | while read -r f; do [ -d "$f" ] || echo "$f"; done')
    check "systemctl enable --now $SOCKET" ct systemctl enable --now "$SOCKET"
    first=$(ctnet python3 "$here/load.py" --port "$PORT" --once --timeout 30)
    check "the pool serves before the removal ($first)" eq "$(pyjson 'j["ok"]' <<<"$first")" True
    svc_active() { [[ $(prop "$UNIT" ActiveState) == active ]]; }
    check "the service is active" wait_until 15 svc_active
    main=$(prop "$UNIT" MainPID)
    APT_OUT=$(ct env DEBIAN_FRONTEND=noninteractive apt-get remove -y corral 2>&1)
    rc=$?
    check "apt-get remove exits 0 (got $rc)" eq "$rc" 0
    check "removed: /usr/bin/corral is gone" ct test ! -e /usr/bin/corral
    check "removal stopped nothing: same MainPID ($main -> $(prop "$UNIT" MainPID))" eq "$(prop "$UNIT" MainPID)" "$main"
    first=$(ctnet python3 "$here/load.py" --port "$PORT" --once --timeout 30)
    check "the pool still serves after the removal ($first)" eq "$(pyjson 'j["ok"]' <<<"$first")" True
    check "the conffile stays until the purge" ct test -f /etc/corral/app.conf.example
    APT_OUT=$(ct env DEBIAN_FRONTEND=noninteractive apt-get purge -y corral 2>&1)
    rc=$?
    check "apt-get purge exits 0 (got $rc: $(tail -n 3 <<<"$APT_OUT" | tr '\n' ' '))" eq "$rc" 0
    check "dpkg knows no corral" test -z "$(ct dpkg-query -W -f='${Status}' corral 2>/dev/null)"
    # shellcheck disable=SC2086 # one word per file
    left=$(ct sh -c 'for f; do if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done' sh $files)
    check "no file of the package left (left: $left)" test -z "$left"
    gone() { ! ct kill -0 "$main" 2>/dev/null; }
    check "corral ($main) stopped by the purge" wait_until 15 gone
    links=$(ct find /etc/systemd/system -name 'corral@*' -path '*.wants/*')
    check "no enablement link left ($links)" test -z "$links"
    units=$(ct systemctl list-units --all --plain --no-legend 'corral@*')
    check "no corral unit loaded ($units)" test -z "$units"
    users=$(ct getent passwd | grep -i corral)
    check "no user left ($users)" test -z "$users"
    check "no state left in /var/lib" test -z "$(ct find /var/lib /var/lib/private -maxdepth 1 -name 'corral*' 2>/dev/null)"
    check "the operator's /etc/corral/app.conf stays" ct test -f /etc/corral/app.conf
    finish "$name" "remove kept MainPID $main serving; purge stopped it and left none of $(wc -w <<<"$files") files, no link, unit or user"
}

sc_restart() {
    local name=$1
    begin
    local old_main t0 rc dur sum new_main
    old_main=$(prop "$UNIT" MainPID)
    load_start 24
    t0=$(now)
    ct timeout 120 systemctl restart "$UNIT"
    rc=$?
    dur=$(elapsed "$t0")
    sleep 1 # requests queued during the restart are answered by the new pool
    load_stop; sum=$LOAD_SUM
    new_main=$(prop "$UNIT" MainPID)
    check "systemctl restart exits 0 (got $rc)" eq "$rc" 0
    check "new main pid ($old_main -> $new_main)" test "$new_main" != "$old_main" -a "$new_main" != 0
    check "pool settles at generation 1" wait_until 15 pool_settled 1
    check "socket stayed active" eq "$(prop "$SOCKET" ActiveState)" active
    check "zero refused connections" eq "$(pyjson 'j["refused"]' <<<"$sum")" 0
    check "zero failed requests" eq "$(pyjson 'j["failed"]' <<<"$sum")" 0
    local served new_pids
    served=$(pyjson 'j["pids"]' <<<"$sum")
    new_pids=$(worker_pids)
    check "the new pool served queued requests (served by $served, new pool $new_pids)" \
        python3 -c 'import sys; sys.exit(not set(sys.argv[1].split()) & set(sys.argv[2].split()))' "$served" "$new_pids"
    finish "$name" "restart ${dur} s, $(load_figures <<<"$sum")"
}

# sc_reuseport NAME: Balance=reuseport under socket activation (issue 16), the supported set-up: the socket
# with ReusePort=yes and TCP only (the shipped unit's UNIX socket is refused with Balance=reuseport), corral
# as root (contrib/reuseport.conf) and its workers as nobody ([Worker] User=).
# Every slot has a socket of its own in the group of systemd's, slot 0 systemd's own; a reload and a crash
# under load fail nothing. Put back as it was at the end.
sc_reuseport() {
    local name=$1
    begin
    # Before a start, `corral check --unit` asks systemd over D-Bus and says what a start would refuse: the
    # shipped socket is a UNIX one without ReusePort=, the shipped service runs with DynamicUser=yes.
    local out rc
    write_config && ct sh -c "printf '\n[Socket]\nBalance=reuseport\n' >> /etc/corral/app.conf"
    out=$(ct corral check --config /etc/corral/app.conf --unit "$UNIT" 2>&1)
    rc=$?
    check "check --unit with the shipped units exits 78 (got $rc: $out)" eq "$rc" 78
    check "it names the socket's ReusePort=no" grep -q "$SOCKET: ReusePort=no" <<<"$out"
    check "it names the UNIX ListenStream=" grep -q "$SOCKET: ListenStream=/run/corral-app.sock: Balance=reuseport works with TCP sockets only" <<<"$out"
    check "it names DynamicUser=yes" grep -q "$UNIT: DynamicUser=yes" <<<"$out"
    ct mkdir -p "/etc/systemd/system/$UNIT.d" "/etc/systemd/system/$SOCKET.d" &&
        ct install -m 0644 /opt/corral-src/contrib/reuseport.conf "/etc/systemd/system/$UNIT.d/reuseport.conf" &&
        ct sh -c "printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:$PORT\nReusePort=yes\n' > /etc/systemd/system/$SOCKET.d/reuseport.conf" &&
        write_config && ct sed -i 's/^\[Worker\]$/[Worker]\nUser=nobody/' /etc/corral/app.conf &&
        ct sh -c "printf '\n[Socket]\nBalance=reuseport\n' >> /etc/corral/app.conf" &&
        ct systemctl daemon-reload && ct timeout 60 systemctl stop "$UNIT" "$SOCKET" &&
        ct systemctl start "$SOCKET"
    check "ReusePort=yes on the socket, corral's config Balance=reuseport" test $? -eq 0
    check "ReusePort=yes" eq "$(prop "$SOCKET" ReusePort)" yes
    out=$(ct corral check --config /etc/corral/app.conf --unit "$UNIT" 2>&1)
    rc=$?
    check "check --unit with the supported set-up exits 0 (got $rc: $out)" eq "$rc" 0
    check "it shows systemd's socket with ReusePort=yes" grep -qF "from $UNIT: $SOCKET (127.0.0.1:$PORT, ReusePort=yes)" <<<"$out"
    local first
    first=$(ctnet python3 "$here/load.py" --port "$PORT" --once --timeout 30)
    check "first connection answered ($first)" eq "$(pyjson 'j["ok"]' <<<"$first")" True
    check "pool settles at generation 1" wait_until 15 pool_settled 1
    local main p uids='' inodes='' slot0 systemd_fds
    main=$(prop "$UNIT" MainPID)
    check "corral runs as root" eq "$(ct awk '/^Uid:/ { print $2 }' "/proc/$main/status")" 0
    for p in $(worker_pids | tr -d '[],'); do
        uids+="$(ct awk '/^Uid:/ { print $2 }' "/proc/$p/status") "
        inodes+="$(ct readlink "/proc/$p/fd/3") "
    done
    check "every worker runs as nobody ($uids)" eq "$(tr ' ' '\n' <<<"$uids" | sort -u | xargs)" 65534
    check "every slot has a socket of its own ($inodes)" eq "$(tr ' ' '\n' <<<"$inodes" | sort -u | grep -c socket)" "$WORKERS"
    slot0=$(pool_json | pyjson '[w["pid"] for w in j["workers"] if w["slot"] == 0][0]')
    systemd_fds=$(ct ls -l /proc/1/fd 2>/dev/null)
    check "slot 0 serves on systemd's own socket ($(ct readlink "/proc/$slot0/fd/3"))" \
        grep -qF "$(ct readlink "/proc/$slot0/fd/3")" <<<"$systemd_fds"
    local gen rc victim sum
    gen=$(pool_json | pyjson 'j["generation"]')
    load_start 24
    ct timeout 120 systemctl reload "$UNIT"
    rc=$?
    victim=$(pool_json | pyjson '[w["pid"] for w in j["workers"] if w["slot"] == 1][0]')
    ct kill -KILL "$victim"
    sleep 1.5 # the replacement is ready (ready delay) and serves
    load_stop; sum=$LOAD_SUM
    check "systemctl reload exits 0 (got $rc)" eq "$rc" 0
    check "slot 1's crashed worker $victim replaced" wait_until 10 pool_settled $((gen + 1))
    check "zero failed requests over the reload and the crash" eq "$(pyjson 'j["failed"]' <<<"$sum")" 0
    # As it was: the shipped unprivileged unit, the socket without ReusePort=, Balance=shared.
    ct rm -f "/etc/systemd/system/$UNIT.d/reuseport.conf" "/etc/systemd/system/$SOCKET.d/reuseport.conf" &&
        write_config && ct systemctl daemon-reload && ct timeout 60 systemctl stop "$UNIT" "$SOCKET" &&
        ct systemctl start "$SOCKET" && ctnet python3 "$here/load.py" --port "$PORT" --once --timeout 30 >/dev/null
    check "put back: the shipped units serve again" wait_until 15 pool_settled 1
    local steering
    steering=$(ct journalctl -u "$UNIT" -o cat | grep -o 'Balance=reuseport: [a-z ]*' | tail -n 1)
    finish "$name" "$WORKERS slots on their own sockets, '$steering', $(load_figures <<<"$sum")"
}

# The master's own watchdog: under WatchdogSec= corral pings systemd from its event loop, so a healthy
# pool outlives several watchdog periods while a frozen master is killed and restarted by systemd.
# The workers do not inherit the master's watchdog. WatchdogSignal=SIGKILL: no core dump of corral.
sc_watchdog() {
    local name=$1
    begin
    ct mkdir -p "/etc/systemd/system/$UNIT.d" &&
        ct sh -c "printf '[Service]\nWatchdogSec=2s\nWatchdogSignal=SIGKILL\n' > /etc/systemd/system/$UNIT.d/watchdog.conf" &&
        ct systemctl daemon-reload && ct timeout 60 systemctl restart "$UNIT"
    check "restart with WatchdogSec=2s" test $? -eq 0
    check "pool settles at generation 1" wait_until 15 pool_settled 1
    check "WatchdogUSec=2s" eq "$(prop "$UNIT" WatchdogUSec)" 2s
    local env
    env=$(ctnet python3 -c 'import sys, urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/env" % sys.argv[1], timeout=10).read().decode())' "$PORT")
    check "a worker answered /env" grep -q '^WORKER_INDEX=' <<<"$env"
    check "workers do not inherit WATCHDOG_USEC/WATCHDOG_PID" test -z "$(grep '^WATCHDOG_' <<<"$env")"
    local main restarts pids
    main=$(prop "$UNIT" MainPID)
    restarts=$(prop "$UNIT" NRestarts)
    pids=$(worker_pids)
    sleep 6 # three watchdog periods
    check "still active after 3 watchdog periods ($(show))" matches "$(show)" "ActiveState=active SubState=running *MainPID=$main "
    check "no restart while healthy (NRestarts $restarts -> $(prop "$UNIT" NRestarts))" eq "$(prop "$UNIT" NRestarts)" "$restarts"
    # Freeze the master: its pings stop, systemd kills it and, Restart=on-failure, starts a new one.
    local cur t0 new_main dur
    cur=$(now_us)
    t0=$(now)
    check "SIGSTOP corral ($main)" ct kill -STOP "$main"
    restarted() {
        new_main=$(prop "$UNIT" MainPID)
        [[ $new_main != "$main" && $new_main != 0 ]]
    }
    check "systemd replaced the frozen master" wait_until 15 restarted
    dur=$(elapsed "$t0")
    check "NRestarts went up by one" eq "$(prop "$UNIT" NRestarts)" $((restarts + 1))
    timed_out() { ct journalctl --no-pager -u "$UNIT" --since="@${cur%??????}" | grep -q 'Watchdog timeout'; }
    check "systemd's journal says 'Watchdog timeout'" wait_until 5 timed_out
    check "the new pool settles at generation 1" wait_until 15 pool_settled 1
    local left
    left=$(for p in $main $pids; do ct kill -0 "$p" 2>/dev/null && echo "$p"; done)
    check "the frozen master and its workers are gone (left: $left)" test -z "$left"
    ct rm -f "/etc/systemd/system/$UNIT.d/watchdog.conf" && ct systemctl daemon-reload
    finish "$name" "healthy for 3 periods of WatchdogSec=2s; frozen master $main replaced by $new_main in ${dur} s"
}

# Worker output under journald (WorkerOutput=auto is journal here): after a reload to workers that each
# write 20 lines on stdout, 20 on stderr and one "<3>" line, every line is in the journal once, with the
# writing worker's _PID, SYSLOG_IDENTIFIER=app/SLOT, and PRIORITY 6 (stdout), 4 (stderr) or 3 ("<3>").
sc_worker_output() {
    local name=$1
    begin
    local gen cur rc slots got=''
    gen=$(pool_json | pyjson 'j["generation"]')
    write_config --log-lines 20 --log-level-line
    cur=$(now_us)
    ct timeout 120 systemctl reload "$UNIT"
    rc=$?
    check "systemctl reload exits 0 (got $rc)" eq "$rc" 0
    check "pool settled at generation $((gen + 1))" wait_until 20 pool_settled $((gen + 1))
    slots=$(pool_json | pyjson '" ".join("%d:%d" % (w["slot"], w["pid"]) for w in j["workers"])')
    lines_ok() {
        got=$(ct journalctl -o json --no-pager -u "$UNIT" 2>/dev/null | python3 -c '
import json, sys
since, slots = int(sys.argv[1]), dict(map(int, s.split(":")) for s in sys.argv[2].split())
def body(stream, slot, pid, seq, size=100):
    head = f"LOG {stream} {slot} {pid} {seq} "
    pat, n = f"{slot}.{seq}.", size - 1 - len(head)
    return head + (pat * (n // len(pat) + 1))[:n]
want = {(slot, m): 0 for slot in slots for m in ("out", "err", "prio")}
bad = []
for line in sys.stdin:
    r = json.loads(line)
    msg = r.get("MESSAGE")
    if int(r["__REALTIME_TIMESTAMP"]) < since or not isinstance(msg, str) or not msg.startswith("LOG"):
        continue
    f = msg.split(" ")
    slot = int(f[2]) if f[0] == "LOG" else int(f[1])
    kind, prio = (f[1], {"out": "6", "err": "4"}[f[1]]) if f[0] == "LOG" else ("prio", "3")
    pid = slots.get(slot)
    if r.get("_PID") != str(pid) or r.get("SYSLOG_IDENTIFIER") != f"app/{slot}" or r.get("PRIORITY") != prio or \
            (kind != "prio" and msg != body(kind, slot, pid, int(f[4]))) or (kind == "prio" and msg != f"LOG-PRIO {slot} {pid}"):
        bad.append({k: r.get(k) for k in ("MESSAGE", "_PID", "SYSLOG_IDENTIFIER", "PRIORITY")})
        continue
    want[(slot, kind)] += 1
counts = sorted(set(want.values()))
print(f"{sum(want.values())} lines: per worker {counts}; bad {len(bad)} {bad[:3]}")
sys.exit(not (not bad and all(n == (1 if k[1] == "prio" else 20) for k, n in want.items())))' "$cur" "$slots")
    }
    check "every worker line in the journal with its _PID, app/SLOT and priority" wait_until 15 lines_ok
    lines_ok
    e2e_log "  journal: $got (workers $slots)"
    finish "$name" "$got; workers $slots"
}

sc_stop() {
    local name=$1
    begin
    local main pids cg cur t0 rc dur left timeout_s
    main=$(prop "$UNIT" MainPID)
    pids="$main $(worker_pids)"
    cg=$(prop "$UNIT" ControlGroup)
    cur=$(now_us)
    timeout_s=$(prop "$UNIT" TimeoutStopUSec)
    t0=$(now)
    ct timeout 120 systemctl stop "$UNIT" 2>/dev/null # (its warning: the socket can start it again)
    rc=$?
    dur=$(elapsed "$t0")
    check "systemctl stop exits 0 (got $rc)" eq "$rc" 0
    check "stopped within the worker stop timeout (10 s): ${dur} s" \
        python3 -c "import sys; sys.exit(float(sys.argv[1]) >= 10)" "$dur"
    ct systemctl is-active --quiet "$UNIT"
    check "is-active says inactive" test $? -eq 3
    check "ActiveState=inactive Result=success ($(show))" matches "$(show)" "*ActiveState=inactive SubState=dead Result=success*"
    check "corral exited 0" eq "$(prop "$UNIT" ExecMainStatus)" 0
    left=$(for p in $pids; do ct kill -0 "$p" 2>/dev/null && echo "$p"; done)
    check "no process left of $pids (left: $left)" test -z "$left"
    local procs=''
    if [[ -n $cg ]]; then
        procs=$(ct sh -c "cat /sys/fs/cgroup/unified$cg/cgroup.procs /sys/fs/cgroup/systemd$cg/cgroup.procs /sys/fs/cgroup$cg/cgroup.procs 2>/dev/null")
    fi
    check "cgroup $cg empty or gone (procs: $procs)" test -z "$procs"
    check "no worker killed after the stop timeout" test -z "$(journal_since "$cur" "$MSG_STOP_KILLED")"
    finish "$name" "stop ${dur} s (TimeoutStopSec=$timeout_s), exit $rc, $(wc -w <<<"$pids") processes gone, cgroup empty"
}

# sc_stack_go NAME: contrib/examples/go as a user deploys it: its app.conf as /etc/corral/app.conf, its
# drop-in, the binary in /srv/app, under the shipped unprivileged unit. The pool starts (Count=auto),
# every worker runs as the unit's non-root user with the drop-in's GOMAXPROCS=1, and two reloads under
# load fail no request. Built on the host (go from scripts/setup.sh --stacks).
GO_EXAMPLE=''
sc_stack_go() {
    local name=$1
    if [[ -z $GO_EXAMPLE ]]; then
        result "$name" SKIP "go or go-systemd is not installed on the host (scripts/setup.sh --stacks)"
        return
    fi
    begin
    ct mkdir -p /srv/app "/etc/systemd/system/$UNIT.d" &&
        ct sh -c 'cat > /srv/app/corral-example-go && chmod 0755 /srv/app/corral-example-go' <"$GO_EXAMPLE" &&
        ct sh -c 'cat > /etc/corral/app.conf' <"$src_dir/contrib/examples/go/app.conf" &&
        ct sh -c "cat > /etc/systemd/system/$UNIT.d/go.conf" <"$src_dir/contrib/examples/go/drop-in.conf" &&
        ct systemctl daemon-reload && ct timeout 60 systemctl restart "$UNIT"
    check "the Go example's config, drop-in and binary installed, the unit restarted" test $? -eq 0
    go_settled() { # GEN: every wanted slot ready at GEN, nothing else
        [[ $(pool_json | pyjson "j['wanted'] > 0 and len(j['workers']) == j['wanted'] and all(w['state'] == 'ready' and w['generation'] == $1 for w in j['workers'])") == True ]]
    }
    check "the pool settles at generation 1" wait_until 20 go_settled 1
    local j pid uid wanted sum figures=''
    j=$(pool_json)
    wanted=$(pyjson 'j["wanted"]' <<<"$j")
    for pid in $(pyjson '" ".join(str(w["pid"]) for w in j["workers"])' <<<"$j"); do
        uid=$(ct sh -c "awk '/^Uid:/ { print \$2 }' /proc/$pid/status")
        check "worker $pid runs /srv/app/corral-example-go" eq "$(ct readlink "/proc/$pid/exe")" /srv/app/corral-example-go
        check "worker $pid runs as a non-root user ($uid)" test -n "$uid" -a "$uid" != 0
        check "worker $pid has the drop-in's GOMAXPROCS=1" ct grep -qz '^GOMAXPROCS=1$' "/proc/$pid/environ"
    done
    local gen
    for gen in 2 3; do
        load_start 16
        ct timeout 120 systemctl reload "$UNIT"
        check "systemctl reload to generation $gen exits 0" test $? -eq 0
        check "the pool settles at generation $gen" wait_until 20 go_settled "$gen"
        sleep 0.5
        load_stop; sum=$LOAD_SUM
        check "zero failed requests in reload $((gen - 1)) ($sum)" eq "$(pyjson 'j["failed"]' <<<"$sum")" 0
        figures+="; reload $((gen - 1)): $(load_figures <<<"$sum")"
    done
    finish "$name" "$wanted Go workers as uid $uid$figures"
}

# ---- one container per systemd version -------------------------------------------------------------
cleanup() {
    if [[ -n $LOAD_PID ]]; then
        kill -KILL "$LOAD_PID" 2>/dev/null
        wait "$LOAD_PID" 2>/dev/null
        LOAD_PID=''
    fi
    [[ -z $LOAD_OUT ]] || rm -f "$LOAD_OUT" "$LOAD_OUT.err"
    if [[ -n $CT_PID ]]; then
        if [[ -n $E2E_KEEP_LOGS && -n $CT_LEADER ]]; then
            ct journalctl --no-pager -o short-monotonic >"$E2E_KEEP_LOGS/journal-$CT_NAME.txt" 2>&1 || true
        fi
        teardown_container || { result "teardown" FAIL "processes or cgroups had to be forced away"; }
    fi
}
TMP_DIRS=()
trap 'cleanup; rm -rf "${TMP_DIRS[@]}"' EXIT
trap 'echo "e2e: summary: FAIL (interrupted; tearing down)"; exit 130' INT TERM

run_in() { # FLAVOUR ROOTFS SUFFIX
    local flavour=$1 rootfs=$2 sfx=$3 t0
    t0=$(now)
    if ! boot_container "$flavour" "$rootfs" "$build_dir" "$src_dir" "$DEB_DIR"; then
        result "boot$sfx" FAIL "systemd $flavour container did not boot"
        cleanup
        return
    fi
    local version
    version=$(ct systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
    e2e_log "systemd $version booted as PID 1 in $(elapsed "$t0") s (container $CT_NAME, nspawn $CT_PID, leader $CT_LEADER)"
    local t_install
    t_install=$(now)
    if ! install_corral "$([[ $flavour == 254 ]] && echo 1 || echo 0)"; then
        result "install$sfx" FAIL "could not install corral into the container"
        cleanup
        return
    fi
    e2e_log "corral installed in $(elapsed "$t_install") s"
    ACTIVATION_OK=0
    if [[ $flavour == 254 ]]; then
        sc_activation "socket-activation$sfx" notify-reload
        if ((ACTIVATION_OK)); then
            sc_unprivileged "unprivileged$sfx"
            sc_reload "notify-reload$sfx"
            sc_bad_deploy "bad-deploy-notify-reload$sfx" 0
            sc_crash "crash$sfx"
            sc_upgrade "upgrade$sfx"
            sc_deb_upgrade "deb-upgrade$sfx"
            sc_deb_not_upgraded "deb-not-upgraded$sfx"
            sc_restart "restart$sfx"
            sc_worker_output "worker-output$sfx"
            sc_stop "stop$sfx"
            sc_remove_purge "remove-purge$sfx"
        else
            local s
            for s in unprivileged notify-reload bad-deploy-notify-reload crash upgrade deb-upgrade deb-not-upgraded restart worker-output stop remove-purge; do
                result "$s$sfx" FAIL "not run: the pool did not come up"
            done
        fi
    else
        sc_activation "socket-activation$sfx" notify
        if ((ACTIVATION_OK)); then
            sc_accounting "accounting$sfx"
            sc_unprivileged "unprivileged$sfx"
            sc_reload "reload-under-load$sfx"
            sc_bad_deploy "bad-deploy$sfx" 1
            sc_crash "crash$sfx"
            sc_upgrade "upgrade$sfx"
            sc_deb_upgrade "deb-upgrade$sfx"
            sc_deb_not_upgraded "deb-not-upgraded$sfx"
            sc_restart "restart$sfx"
            sc_reuseport "reuseport$sfx"
            sc_watchdog "watchdog$sfx"
            sc_worker_output "worker-output$sfx"
            sc_stop "stop$sfx"
            sc_stack_go "stack-go$sfx"
            sc_remove_purge "remove-purge$sfx"
        else
            local s
            for s in accounting unprivileged reload-under-load bad-deploy crash upgrade deb-upgrade deb-not-upgraded restart reuseport watchdog worker-output stop stack-go remove-purge; do
                result "$s$sfx" FAIL "not run: the pool did not come up"
            done
        fi
    fi
    t0=$(now)
    cleanup
    e2e_log "container torn down in $(elapsed "$t0") s"
}

# build_debs: the package to install (given with --deb, or built from the source tree), a newer build of
# the same code, version VERSION+e2e1, for the upgrade under load, and a corral binary from before
# `corral upgrade` (from the git history), in DEB_DIR (bound into the container).
DEB_DIR='' DEB_OLD='' DEB_NEW='' DEB_OLD_VERSION='' DEB_NEW_VERSION=''
# The parent of the commit that added `corral upgrade` (ef71f94): its corral answers "unknown request".
PRE_UPGRADE_REF=ef71f94^
build_debs() {
    local t0 log
    t0=$(now)
    DEB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/corral-e2e-debs.XXXXXX")
    TMP_DIRS+=("$DEB_DIR")
    chmod 0755 "$DEB_DIR"
    log=$DEB_DIR/build.log
    if [[ -n $deb_given ]]; then
        cp "$deb_given" "$DEB_DIR/"
    elif ! "$src_dir/scripts/deb.sh" "$DEB_DIR" >"$log" 2>&1; then
        e2e_log "FAIL: building the package failed: $(cat "$log")"
        return 1
    fi
    DEB_OLD=$(cd "$DEB_DIR" && echo corral_*.deb)
    DEB_OLD_VERSION=$(dpkg-deb -f "$DEB_DIR/$DEB_OLD" Version)
    DEB_NEW_VERSION=$DEB_OLD_VERSION+e2e1
    if ! "$src_dir/scripts/deb.sh" --version "$DEB_NEW_VERSION" "$DEB_DIR" >"$log" 2>&1; then
        e2e_log "FAIL: building the package $DEB_NEW_VERSION failed: $(cat "$log")"
        return 1
    fi
    DEB_NEW=$(cd "$DEB_DIR" && echo "corral_${DEB_NEW_VERSION}_"*.deb)
    [[ -f $DEB_DIR/$DEB_OLD && -f $DEB_DIR/$DEB_NEW ]] || { e2e_log "FAIL: packages missing in $DEB_DIR"; return 1; }
    # A corral from before `corral upgrade`, for the instance a package upgrade finds too old.
    local d=$DEB_DIR/pre-upgrade
    mkdir -p "$d/src"
    if ! { git -C "$src_dir" archive "$PRE_UPGRADE_REF" | tar -x -C "$d/src" &&
        cmake -S "$d/src" -B "$d/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORRAL_TESTS=OFF &&
        cmake --build "$d/build" -j"$(nproc)" --target corral; } >"$log" 2>&1; then
        e2e_log "FAIL: building corral $PRE_UPGRADE_REF (before corral upgrade) failed: $(tail -n 20 "$log")"
        return 1
    fi
    cp "$d/build/corral" "$DEB_DIR/corral-pre-upgrade"
    rm -rf "$d" "$log"
    e2e_log "packages $DEB_OLD and $DEB_NEW, and corral $PRE_UPGRADE_REF, ready in $(elapsed "$t0") s"
}

main() {
    local t_start f rootfs
    t_start=$(now)
    ((EUID == 0)) || { echo "e2e: FAIL: needs root" >&2; exit 1; }
    local tool
    for tool in mmdebstrap systemd-nspawn nsenter python3 flock dpkg-buildpackage dh git cmake; do
        command -v "$tool" >/dev/null || { echo "e2e: FAIL: $tool is not installed" >&2; exit 1; }
    done
    for f in corral units/corral@.service tests/corral-test-worker; do
        [[ -e $build_dir/$f ]] || { echo "e2e: FAIL: $build_dir/$f is missing (build first)" >&2; exit 1; }
    done
    if command -v go >/dev/null && [[ -d /usr/share/gocode/src/github.com/coreos/go-systemd ]]; then
        local go_dir
        go_dir=$(mktemp -d "${TMPDIR:-/tmp}/corral-e2e-go.XXXXXX")
        TMP_DIRS+=("$go_dir")
        if GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=$go_dir/cache HOME=$go_dir \
            go build -o "$go_dir/corral-example-go" "$src_dir/contrib/examples/go/main.go" >"$go_dir/build.log" 2>&1; then
            GO_EXAMPLE=$go_dir/corral-example-go
        else
            e2e_log "building contrib/examples/go failed: $(cat "$go_dir/build.log")"
        fi
    fi
    build_debs || exit 1
    IFS=, read -r -a fl <<<"$flavours"
    for f in "${fl[@]}"; do
        case $f in
            252) ;;
            254) ;;
            *) echo "e2e: unknown systemd version '$f' (252 or 254)" >&2; exit 64 ;;
        esac
        local t0 sfx=''
        ((${#fl[@]} == 1)) || sfx="@$f"
        t0=$(now)
        if ! rootfs=$(ensure_rootfs "$f"); then
            if [[ $f == 254 ]] && ! curl -fsS -m 20 -o /dev/null "$E2E_BACKPORTS_MIRROR/dists/bookworm-backports/InRelease" 2>/dev/null; then
                # The only scenario that needs 254 is notify-reload (Type=notify-reload is >= 253):
                # everything else already ran on 252. Say so, and do not call it a pass.
                e2e_log "bookworm-backports is unreachable at $E2E_BACKPORTS_MIRROR: no systemd 254; falling back to the systemd 252 results above"
                result "notify-reload$sfx" SKIP "needs systemd >= 253 from bookworm-backports, which is unreachable"
                continue
            fi
            result "rootfs$sfx" FAIL "systemd $f rootfs could not be built, see $E2E_CACHE/build-$f.log"
            continue
        fi
        e2e_log "rootfs $f ready in $(elapsed "$t0") s"
        run_in "$f" "$rootfs" "$sfx"
    done
    summary_exit "$(elapsed "$t_start")"
}

main
