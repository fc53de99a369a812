#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs inside the VM (tests/vm/run.sh), as root, under systemd 252 on a pure cgroup2 with the memory
# controller, from the 9p job folder /job: installs this build's corral as corral@vm.service
# (Delegate=yes) with a 127.0.0.1:8080 socket and 2 test workers, then checks the cgroup v2 backend for
# real. Prints `vm: <check>: PASS|FAIL|SKIPPED (<detail>)` per check; progress lines start with '['.
# Exit status 1 when a check failed. Timeouts allow for TCG (3-30x slower than the host), times $SCALE.
# shellcheck disable=SC2317 # the predicates below are called through wait_for
set -u
J=/job
SCALE=1
# shellcheck source=/dev/null
[[ -f $J/job.env ]] && . "$J/job.env"

UNIT=corral@vm.service
SOCKET=corral@vm.socket
CTL=/run/corral/vm/control
URL=http://127.0.0.1:8080
MSG_RECYCLED=$(sed -n 's/^#define MESSAGE_ID_WORKER_RECYCLED "\([0-9a-f]*\)".*/\1/p' "$J/message-ids.h")
failed=0

note() {
    echo "[$(cut -d' ' -f1 /proc/uptime)] $*"
}

result() { # CHECK PASS|FAIL|SKIPPED DETAIL
    echo "vm: $1: $2 ($3)"
    [[ $2 != FAIL ]] || failed=1
}

# secs N: N seconds times SCALE (integer result).
secs() {
    awk -v n="$1" -v s="$SCALE" 'BEGIN { printf "%d\n", n * s + 0.5 }'
}

now_ms() {
    local s
    s=$(cut -d' ' -f1 /proc/uptime)
    echo $((${s%.*} * 1000 + 10#${s#*.} * 10))
}

# wait_for SECONDS CMD...: polls CMD every 200 ms until it succeeds (0) or the time is up (1).
wait_for() {
    local deadline=$(($(now_ms) + $(secs "$1") * 1000))
    shift
    until "$@"; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.2
    done
}

status_json() {
    corral status --json --control "$CTL" 2>/dev/null | tail -n 1
}

# "slot pid" for every worker of the status, one per line.
worker_slots() {
    status_json | grep -o '"slot":[0-9]*,"pid":[0-9]*' | sed 's/"slot":\([0-9]*\),"pid":\([0-9]*\)/\1 \2/'
}

ready_count() {
    status_json | sed -n 's/.*"ready":\([0-9]*\).*/\1/p'
}

ready_is() { # N: corral status says N workers are ready
    [[ $(ready_count) == "$1" ]]
}

# cg_of PID: the cgroup2 path of PID ("/system.slice/..."), empty when it is gone.
cg_of() {
    sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null
}

# get PATH: GETs URL/PATH with a fresh connection, prints "STATUS PID" (X-Worker-Pid).
get() {
    curl -sS -m "$(secs 60)" -H 'Connection: close' -D - -o /dev/null "$URL$1" 2>/dev/null | tr -d '\r' |
        awk 'NR == 1 { code = $2 } tolower($1) == "x-worker-pid:" { pid = $2 } END { print code, pid }'
}

gone() { # PID: no such process, or a zombie waiting for its parent
    local st
    st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [[ -z $st || $st == Z ]]
}

recycled_for() { # PID [REASON]: the journal has MESSAGE_ID=WORKER_RECYCLED for that pid with REASON (memory)
    journalctl -o json --no-pager "MESSAGE_ID=$MSG_RECYCLED" "WORKER_PID=$1" 2>/dev/null | grep -q "\"REASON\":\"${2:-memory}\""
}

# ---- 1. install corral as a Delegate=yes service ---------------------------------------------------
note "kernel $(uname -r), $(systemctl --version | head -n 1), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
install -m 0755 "$J/corral" "$J/corral-test-worker" /usr/local/bin/
sed 's|@BINDIR@|/usr/local/bin|g' "$J/corral@.service" >/etc/systemd/system/corral@.service
install -m 0644 "$J/corral@.socket" /etc/systemd/system/corral@.socket
mkdir -p /etc/systemd/system/corral@vm.socket.d /etc/systemd/system/corral@vm.service.d /etc/corral
printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:8080\n' >/etc/systemd/system/corral@vm.socket.d/port.conf
# TCG: the first exec of everything is slow.
printf '[Service]\nTimeoutStartSec=%s\n' "$(secs 300)" >/etc/systemd/system/corral@vm.service.d/vm.conf

has_memory_limit=0
has_memory_high=0
corral --help 2>&1 | grep -q -- '--memory-limit' && has_memory_limit=1
corral --help 2>&1 | grep -q -- '--memory-high' && has_memory_high=1
LIMIT_MAX=256M LIMIT_MAX_BYTES=268435456
LIMIT_HIGH=192M LIMIT_HIGH_BYTES=201326592
{
    printf '[Worker]\nExecStart=/usr/local/bin/corral-test-worker\nCount=2\nReadyTimeoutSec=%s\nStopTimeoutSec=%s\n' \
        "$(secs 120)s" "$(secs 20)s"
    ((has_memory_limit)) && printf 'MemoryLimit=%s\n' "$LIMIT_MAX"
    ((has_memory_high)) && printf 'MemoryHigh=%s\n' "$LIMIT_HIGH"
    printf '[Recycle]\nMemoryMax=64M\nSamples=2\nCheckIntervalSec=500ms\n'
} >/etc/corral/vm.conf
note "config:"
sed 's/^/    /' /etc/corral/vm.conf

systemctl daemon-reload
t0=$(now_ms)
if systemctl start "$SOCKET" && timeout "$(secs 300)" systemctl start "$UNIT"; then
    wait_for 60 ready_is 2
    result install PASS "$UNIT active with $(ready_count) ready workers after $((($(now_ms) - t0) / 1000)) s"
else
    result install FAIL "$UNIT did not start: $(systemctl show -P Result "$UNIT")"
    systemctl status --no-pager "$UNIT" 2>&1 | tail -n 20
    journalctl -u "$UNIT" --no-pager | tail -n 30
    exit 1
fi

CG=$(systemctl show -P ControlGroup "$UNIT")
MAINPID=$(systemctl show -P MainPID "$UNIT")
CGROOT=/sys/fs/cgroup$CG
note "corral pid $MAINPID, service cgroup $CG"

# ---- 2. accounting backend, supervisor/ and worker leaves, memory.current --------------------------
acct=''
wait_for 10 bash -c "journalctl -u $UNIT -o cat --no-pager | grep -q '^accounting: '"
acct=$(journalctl -u "$UNIT" -o cat --no-pager | grep -m 1 '^accounting: ')
if [[ $acct == 'accounting: cgroup v2 '* && $acct == *'memory from memory.current'* ]]; then
    result accounting-cgroup-v2 PASS "$acct"
elif [[ $acct == 'accounting: cgroup v2 '* ]]; then
    result accounting-cgroup-v2 FAIL "cgroup v2 but not from memory.current: $acct"
else
    result accounting-cgroup-v2 FAIL "expected 'accounting: cgroup v2 ...', got '${acct:-no accounting line}'"
fi

self_cg=$(cg_of "$MAINPID")
if [[ $self_cg == "$CG/supervisor" ]]; then
    result supervisor-leaf PASS "corral (pid $MAINPID) in $self_cg; $CG has subtree_control '$(cat "$CGROOT/cgroup.subtree_control")'"
else
    result supervisor-leaf FAIL "corral (pid $MAINPID) in '$self_cg', expected '$CG/supervisor'"
fi

leaves_ok=1 leaves_detail='' first_leaf=''
mapfile -t slots < <(worker_slots)
((${#slots[@]} == 2)) || {
    leaves_ok=0
    leaves_detail="corral status lists ${#slots[@]} workers, expected 2; "
}
for sp in "${slots[@]}"; do
    read -r slot pid <<<"$sp"
    wcg=$(cg_of "$pid")
    leaves_detail+="slot $slot pid $pid in ${wcg:-?}; "
    if [[ $wcg =~ ^"$CG"/worker-"$slot"-[0-9]+$ ]]; then
        [[ -n $first_leaf ]] || first_leaf=$wcg
    else
        leaves_ok=0
    fi
done
result worker-leaves "$( ((leaves_ok)) && echo PASS || echo FAIL)" "${leaves_detail%; }"

if [[ -n $first_leaf ]]; then
    mc=$(cat "/sys/fs/cgroup$first_leaf/memory.current" 2>&1)
    if [[ $mc =~ ^[0-9]+$ ]] && ((mc > 0)); then
        result memory-current PASS "$first_leaf/memory.current = $mc"
    else
        result memory-current FAIL "$first_leaf/memory.current: '$mc'"
    fi
else
    result memory-current FAIL "no worker leaf to read"
fi

# ---- 5. per-worker memory.max (and memory.high) ------------------------------------------------------
if ((!has_memory_limit)); then
    result memory-max SKIPPED "corral --help has no per-worker memory limit option (--memory-limit/MemoryLimit=)"
elif [[ -z $first_leaf ]]; then
    result memory-max FAIL "no worker leaf to read"
else
    mx=$(cat "/sys/fs/cgroup$first_leaf/memory.max" 2>&1)
    mh=$(cat "/sys/fs/cgroup$first_leaf/memory.high" 2>&1)
    if [[ $mx == "$LIMIT_MAX_BYTES" ]] && { ((!has_memory_high)) || [[ $mh == "$LIMIT_HIGH_BYTES" ]]; }; then
        result memory-max PASS "MemoryLimit=$LIMIT_MAX: memory.max = $mx; MemoryHigh=$LIMIT_HIGH: memory.high = $mh"
    else
        result memory-max FAIL "MemoryLimit=$LIMIT_MAX MemoryHigh=$LIMIT_HIGH: memory.max = '$mx' (want $LIMIT_MAX_BYTES), memory.high = '$mh' (want $LIMIT_HIGH_BYTES)"
    fi
fi

# ---- 3. a leaking worker is recycled with REASON=memory ---------------------------------------------
pids_before=" $(worker_slots | awk '{ print $2 }' | tr '\n' ' ')"
read -r code P < <(get /leak/100)
if [[ $code != 200 || -z $P ]]; then
    result recycle-memory FAIL "GET /leak/100 answered '${code:-nothing}' (pid '${P:-?}')"
else
    t0=$(now_ms)
    P_cg=$(cg_of "$P")
    P_mem=$(cat "/sys/fs/cgroup$P_cg/memory.current" 2>/dev/null || echo '?')
    note "worker pid $P leaked 100 MiB (leaf $P_cg, memory.current $P_mem right after)"
    detail=''
    ok=1
    if wait_for 120 recycled_for "$P"; then
        t_rec=$((($(now_ms) - t0) / 1000))
        entry=$(journalctl -o cat --no-pager "MESSAGE_ID=$MSG_RECYCLED" "WORKER_PID=$P" | head -n 1)
        detail="journal after ${t_rec} s: '$entry'"
    else
        ok=0
        detail="no MESSAGE_ID=$MSG_RECYCLED REASON=memory for pid $P within $(secs 120) s"
        journalctl -u "$UNIT" -o cat --no-pager | tail -n 15
    fi
    if ((ok)); then
        if wait_for 60 gone "$P"; then
            detail+="; pid $P gone"
        else
            ok=0
            detail+="; pid $P still alive after $(secs 60) s"
        fi
        if [[ -n $P_cg ]] && ! wait_for 30 test ! -d "/sys/fs/cgroup$P_cg"; then
            ok=0
            detail+="; its leaf $P_cg is still there"
        fi
    fi
    if ((ok)); then
        # The replacement: two ready workers again, none of them P.
        fresh=''
        if wait_for 120 ready_is 2; then
            for sp in $(worker_slots | awk '{ print $2 }'); do
                [[ $sp == "$P" ]] && ok=0
                [[ " $pids_before " == *" $sp "* ]] || fresh=$sp
            done
        else
            ok=0
            detail+="; not 2 ready workers again within $(secs 120) s"
        fi
        # Both workers accept on the one socket: ask until the new one has answered.
        served='' bad=''
        for _ in $(seq 1 40); do
            read -r c p < <(get /)
            [[ $c == 200 ]] || bad+=" $c"
            [[ $p == "$P" ]] && bad+=" pid$P"
            served+=" $p"
            [[ -n $fresh && $p == "$fresh" ]] && break
        done
        if [[ -n $bad ]]; then
            ok=0
            detail+="; bad answers:$bad"
        elif [[ -z $fresh ]]; then
            ok=0
            detail+="; no new worker pid in corral status"
        elif [[ " $served " == *" $fresh "* ]]; then
            detail+="; new worker pid $fresh in $(cg_of "$fresh") served"
        else
            ok=0
            detail+="; new worker pid $fresh never answered in 40 requests (served by:$served)"
        fi
    fi
    result recycle-memory "$( ((ok)) && echo PASS || echo FAIL)" "$detail"
fi

# ---- 4. cgroup.kill: a worker killed with -9 takes its leaf's other processes with it ---------------
# Two leftovers in the leaf: the /spin child (the worker's own child, in its process group) and a
# process that left the worker's session and process group (setsid) but sits in the same leaf, which
# only a kill through the cgroup (cgroup.kill) can reach.
read -r code W < <(get /spin)
W_cg=$(cg_of "$W")
if [[ $code != 200 || -z $W || -z $W_cg ]]; then
    result cgroup-kill FAIL "GET /spin answered '${code:-nothing}' (pid '${W:-?}', cgroup '${W_cg:-?}')"
    result cgroup-kill-escaped FAIL "not run: no worker to spin"
else
    spin_child() { # the worker's child, in the worker's leaf
        local c
        for c in $(ps -o pid= --ppid "$W"); do
            [[ $(cg_of "$c") == "$W_cg" ]] && echo "$c" && return 0
        done
        return 1
    }
    wait_for 30 spin_child >/dev/null
    C=$(spin_child)
    setsid sleep 600 </dev/null >/dev/null 2>&1 &
    E=$!
    disown "$E"
    echo "$E" >"/sys/fs/cgroup$W_cg/cgroup.procs" 2>/dev/null || note "could not move pid $E into $W_cg"
    E_cg=$(cg_of "$E")
    note "worker $W in $W_cg: spinning child ${C:-none}, escaped process $E (sid $(ps -o sid= -p "$E" | tr -d ' '), in $E_cg)"
    t0=$(now_ms)
    kill -9 "$W"
    c_ok=0 e_ok=0 leaf_ok=0
    [[ -n $C ]] && wait_for 20 gone "$C" && c_ok=1
    t_c=$(($(now_ms) - t0))
    [[ $E_cg == "$W_cg" ]] && wait_for 20 gone "$E" && e_ok=1
    t_e=$(($(now_ms) - t0))
    wait_for 20 test ! -d "/sys/fs/cgroup$W_cg" && leaf_ok=1
    t_l=$(($(now_ms) - t0))
    leaf_txt="leaf $W_cg $( ((leaf_ok)) && echo "removed after $t_l ms" || echo "still there after $(secs 20) s: procs $(tr '\n' ' ' <"/sys/fs/cgroup$W_cg/cgroup.procs" 2>/dev/null)")"
    if ((c_ok && leaf_ok)); then
        result cgroup-kill PASS "kill -9 worker $W: its /spin child $C gone after $t_c ms; $leaf_txt"
    else
        result cgroup-kill FAIL "kill -9 worker $W: /spin child ${C:-never seen} $( ((c_ok)) && echo gone || echo 'still alive') after $t_c ms; $leaf_txt"
    fi
    if [[ $E_cg != "$W_cg" ]]; then
        result cgroup-kill-escaped FAIL "could not put the escaped process $E into $W_cg (it is in '$E_cg')"
    elif ((e_ok)); then
        result cgroup-kill-escaped PASS "setsid process $E in the worker's leaf, outside its process group, gone after $t_e ms"
    else
        result cgroup-kill-escaped FAIL "setsid process $E in the worker's leaf survived the worker's kill by $(secs 20) s"
    fi
    kill -9 "$E" 2>/dev/null
    [[ -n $C ]] && kill -9 "$C" 2>/dev/null
fi

# ---- 6. an OOM kill in a worker's leaf: the worker is recycled at once, woken by memory.events ------
# A second instance on port 8081 with a small memory.max and a sampling interval of an hour, so only the
# memory.events wake-up can tell corral in time. GET /hog/N forks a child that grows by N MiB: the OOM
# killer picks it, the worker survives and is replaced, start-first.
if ((!has_memory_limit)); then
    result recycle-oom SKIPPED "corral --help has no per-worker memory limit option (--memory-limit/MemoryLimit=)"
else
    mkdir -p /etc/systemd/system/corral@oom.socket.d /etc/systemd/system/corral@oom.service.d
    printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:8081\n' >/etc/systemd/system/corral@oom.socket.d/port.conf
    cp /etc/systemd/system/corral@vm.service.d/vm.conf /etc/systemd/system/corral@oom.service.d/vm.conf
    printf '[Worker]\nExecStart=/usr/local/bin/corral-test-worker\nCount=2\nReadyTimeoutSec=%s\nStopTimeoutSec=%s\nMemoryLimit=48M\n[Recycle]\nCheckIntervalSec=1h\n' \
        "$(secs 120)s" "$(secs 20)s" >/etc/corral/oom.conf
    systemctl daemon-reload
    oom_ok=1 detail=''
    if systemctl start corral@oom.socket && timeout "$(secs 300)" systemctl start corral@oom.service &&
        CTL=/run/corral/oom/control wait_for 60 ready_is 2; then
        pids_before=" $(CTL=/run/corral/oom/control worker_slots | awk '{ print $2 }' | tr '\n' ' ')"
        read -r code P < <(URL=http://127.0.0.1:8081 get /hog/200)
        P_cg=$(cg_of "$P")
        t0=$(now_ms)
        if [[ $code != 200 || -z $P || -z $P_cg ]]; then
            oom_ok=0
            detail="GET /hog/200 answered '${code:-nothing}' (pid '${P:-?}', cgroup '${P_cg:-?}')"
        elif wait_for 60 recycled_for "$P" oom; then
            entry=$(journalctl -o cat --no-pager "MESSAGE_ID=$MSG_RECYCLED" "WORKER_PID=$P" | head -n 1)
            detail="journal after $(($(now_ms) - t0)) ms: '$entry'"
            kills=$(journalctl -k --no-pager | grep -c "oom-kill:.*oom_memcg=$P_cg,")
            detail+="; kernel log: $kills OOM kill(s) in $P_cg"
            ((kills >= 1)) || oom_ok=0
            wait_for 60 gone "$P" || { oom_ok=0; detail+="; pid $P still alive"; }
            if CTL=/run/corral/oom/control wait_for 120 ready_is 2; then
                fresh=$(CTL=/run/corral/oom/control worker_slots | awk -v b="$pids_before" '{ if (index(b, " " $2 " ") == 0) print $2 }')
                [[ -n $fresh ]] && detail+="; replaced by pid $fresh" || { oom_ok=0; detail+="; no new worker"; }
            else
                oom_ok=0
                detail+="; not 2 ready workers again within $(secs 120) s"
            fi
        else
            oom_ok=0
            detail="no REASON=oom recycle record for pid $P within $(secs 60) s; leaf memory.events: $(tr '\n' ' ' <"/sys/fs/cgroup$P_cg/memory.events" 2>/dev/null)"
            journalctl -u corral@oom.service -o cat --no-pager | tail -n 15
        fi
    else
        oom_ok=0
        detail="corral@oom.service did not start with 2 ready workers"
    fi
    result recycle-oom "$( ((oom_ok)) && echo PASS || echo FAIL)" "$detail"
    timeout "$(secs 120)" systemctl stop corral@oom.service corral@oom.socket
fi

# ---- stop: every worker leaf goes with the service ---------------------------------------------------
wait_for 60 ready_is 2
t0=$(now_ms)
if timeout "$(secs 120)" systemctl stop "$UNIT"; then
    res=$(systemctl show -P Result "$UNIT")
    left=$(find "$CGROOT" -maxdepth 1 -name 'worker-*' 2>/dev/null | wc -l)
    if [[ $res == success && ! -d $CGROOT ]]; then
        result stop PASS "systemctl stop in $(($(now_ms) - t0)) ms, Result=success, service cgroup removed"
    else
        result stop FAIL "Result=$res, service cgroup $( [[ -d $CGROOT ]] && echo "still there with $left worker leaves" || echo removed)"
    fi
else
    result stop FAIL "systemctl stop did not return within $(secs 120) s"
fi

note "corral's journal:"
journalctl -u "$UNIT" -o short-monotonic --no-pager | tail -n 40 | sed 's/^/    /'

# ---- 7. corral as a container's entrypoint under podman + crun ---------------------------------------
# shellcheck source=tests/vm/job-podman.sh
. "$J/job-podman.sh"
exit "$failed"
