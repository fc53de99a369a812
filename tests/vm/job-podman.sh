# SPDX-License-Identifier: MIT
# Sourced by tests/vm/job.sh after its own checks: corral as the entrypoint (PID 1) of a container run by a
# real OCI runtime, podman 4.3 + crun, on the guest's pure cgroup2. No registry is reachable: the container
# runs from a rootfs directory with the guest's /usr bound in read-only. Uses job.sh's result, secs, now_ms
# and wait_for; prints `vm: podman-<check>: ...` lines.
# shellcheck shell=bash
# shellcheck disable=SC2317 # the predicates below are called through wait_for

PM_DIR=/var/lib/corral-podman
PM_ROOTFS=$PM_DIR/rootfs
ORPHANS=${ORPHANS:-10000}
pm_names=()
pm_pids=()

# pm_start NAME CORRAL_ARGS...: runs corral as the entrypoint of container NAME, detached, on the guest's
# network. The rlimits are explicit: podman's defaults (nofile 1048576) need not fit the caller's. podman's
# complaints go to PM_DIR/NAME.err (pm_failed).
pm_start() {
    local name=$1
    shift
    pm_names+=("$name")
    timeout "$(secs 120)" podman run -d --name "$name" --network host --log-driver k8s-file \
        --ulimit nofile=65536:65536 --ulimit nproc=65536:65536 -v /usr:/usr:ro \
        --rootfs "$PM_ROOTFS" /usr/local/bin/corral "$@" >/dev/null 2>"$PM_DIR/$name.err"
}

pm_failed() { # NAME: why pm_start failed, on one line
    echo "podman run failed: $(tr '\n' ' ' <"$PM_DIR/$1.err") $(podman logs "$1" 2>&1 | tail -n 5 | tr '\n' ' ')"
}

pm_inspect() { # NAME FORMAT
    podman inspect --format "$2" "$1" 2>/dev/null
}

pm_logs() { # NAME: the container's output (corral's log, the workers' output), indented
    podman logs "$1" 2>&1 | tail -n "${2:-20}" | sed 's/^/    /'
}

http_code() { # URL: the status code of a GET, 000 when nothing answered
    curl -s -o /dev/null -m "$(secs 10)" -w '%{http_code}' "$1"
}

answers() { # URL CODE
    [[ $(http_code "$1") == "$2" ]]
}

metric() { # PORT NAME: the value of a metric in corral's /metrics on 127.0.0.1:PORT
    curl -s -m "$(secs 10)" "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

metric_at_least() { # PORT NAME MIN
    local v
    v=$(metric "$1" "$2")
    [[ -n $v ]] && ((${v%.*} >= $3))
}

state_of() { # PID: the one-letter state, empty when gone
    sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null
}

# zombies_in PIDNS: zombies among every process of the guest in that pid namespace (ns/pid link text).
zombies_in() {
    local p n=0
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/ns/pid" 2>/dev/null) == "$1" && $(state_of "${p#/proc/}") == Z ]] && ((n++))
    done
    echo "$n"
}

procs_in() { # PIDNS: how many processes of the guest are in that pid namespace
    local p n=0
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/ns/pid" 2>/dev/null) == "$1" ]] && ((n++))
    done
    echo "$n"
}

pm_cleanup() {
    local p
    for p in "${pm_pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pm_pids[@]}"; do
        wait_for 10 gone "$p" || kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    ((${#pm_names[@]} == 0)) || timeout "$(secs 60)" podman rm -f -t 0 "${pm_names[@]}" >/dev/null 2>&1
}

podman_group() {
    if ! command -v podman >/dev/null || ! command -v haproxy >/dev/null; then
        local c
        for c in pid1 orphans stop-under-load crash-loop; do
            result "podman-$c" SKIPPED "the image has no podman or haproxy (VM_PACKAGES in tests/vm/run.sh)"
        done
        return
    fi
    # vfs: no overlay mount test at storage init (a --rootfs container stores nothing in it anyway); cgroupfs:
    # podman makes the container's cgroup itself instead of asking systemd over D-Bus; netavark, not the CNI
    # plugins the image lacks (--network host uses neither). In files, before podman's first run creates its
    # database: a database made with another storage driver refuses every later command.
    mkdir -p /etc/containers
    printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
        >/etc/containers/storage.conf
    printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n[network]\nnetwork_backend = "netavark"\n' \
        >/etc/containers/containers.conf
    note "podman: $(podman --version), $(crun --version | head -n 1), $(haproxy -v | head -n 1)"

    # The rootfs: the guest's merged-/usr layout, its /usr bound in read-only at run time, and the bits of
    # /etc the loader and user lookups read. corral and the test worker are in /usr/local/bin.
    local d
    mkdir -p "$PM_ROOTFS"/{etc,usr,proc,sys,dev,run,tmp,var/tmp,root}
    for d in bin sbin lib lib64; do
        [[ -L /$d ]] && ln -sfn "$(readlink "/$d")" "$PM_ROOTFS/$d"
    done
    cp -a /etc/passwd /etc/group /etc/ld.so.cache /etc/ld.so.conf /etc/ld.so.conf.d "$PM_ROOTFS/etc/"

    podman_orphans
    podman_stop_under_load
    podman_crash_loop
    pm_cleanup
}

# ---- orphans: corral as PID 1 reaps what a worker's double-forks leave ------------------------------------
# The worker is a shell loop: ( : & ) forks a subshell that forks a child and exits at once, so the child
# (or its zombie) is reparented to PID 1, corral. ORPHANS of them, then the worker stays (exec sleep).
podman_orphans() {
    local t0 t_run t_reaped c kids=() pid ns nspid comm reaped zc zn n_procs detail ok=1
    t0=$(now_ms)
    # shellcheck disable=SC2016 # the script is the worker's, its $1 and $i are its own
    if ! pm_start corral-orphans --listen 127.0.0.1:8084 --status-listen 127.0.0.1:9184 --count 1 \
        --ready-mode exec --stop-timeout 10s -- \
        /bin/sh -c 'i=0; while [ $i -lt "$1" ]; do ( : & ); i=$((i + 1)); done; exec sleep 3600' orphaner "$ORPHANS"; then
        result podman-pid1 FAIL "$(pm_failed corral-orphans)"
        result podman-orphans FAIL "not run: the container did not start"
        return
    fi
    t_run=$(($(now_ms) - t0))
    pid=$(pm_inspect corral-orphans '{{.State.Pid}}')
    nspid=$(sed -n 's/^NSpid:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null | tr '\t' ' ')
    comm=$(cat "/proc/$pid/comm" 2>/dev/null)
    ns=$(readlink "/proc/$pid/ns/pid" 2>/dev/null)
    note "podman run corral-orphans: ${t_run} ms, corral pid $pid (NSpid $nspid) in $(cg_of "$pid")"
    if [[ $comm == corral && $nspid =~ ^[0-9]+\ 1$ && $ns != "$(readlink /proc/self/ns/pid)" ]]; then
        result podman-pid1 PASS "podman run --rootfs in ${t_run} ms; the entrypoint corral is guest pid $pid, PID 1 of its own pid namespace (NSpid '$nspid', $ns), cgroup $(cg_of "$pid")"
    else
        ok=0
        result podman-pid1 FAIL "the container's pid $pid: comm '$comm', NSpid '$nspid', pid ns '$ns'"
    fi
    note "corral in the container: $(podman logs corral-orphans 2>&1 | grep -m 1 'accounting:')"
    # 10,000 take ~56 s in the guest (TCG) where the same loop takes ~2.4 s on the host: CORRAL_VM_ORPHANS
    # (run.sh) lowers the count.
    if wait_for 240 metric_at_least 9184 corral_orphans_reaped_total "$ORPHANS"; then
        t_reaped=$(($(now_ms) - t0))
        reaped=$(metric 9184 corral_orphans_reaped_total)
        detail="$ORPHANS double-forks, corral_orphans_reaped_total $reaped after $((t_reaped / 1000)).$((t_reaped % 1000 / 100)) s"
        # The last orphan may still be on its way: give it a moment, then count.
        no_zombie_in() { [[ $(zombies_in "$1") == 0 ]]; }
        wait_for 10 no_zombie_in "$ns"
        zc=0
        read -ra kids <"/proc/$pid/task/$pid/children"
        for c in "${kids[@]}"; do
            [[ $(state_of "$c") == Z ]] && ((zc++))
        done
        zn=$(zombies_in "$ns")
        n_procs=$(procs_in "$ns")
        detail+="; zombies: $zc among corral's children (${#kids[@]} left), $zn in its pid namespace ($n_procs processes)"
        ((zc == 0 && zn == 0 && ${reaped%.*} >= ORPHANS)) || ok=0
    else
        ok=0
        detail="corral_orphans_reaped_total '$(metric 9184 corral_orphans_reaped_total)' < $ORPHANS after $(secs 240) s"
        pm_logs corral-orphans
    fi
    result podman-orphans "$( ((ok)) && echo PASS || echo FAIL)" "$detail"
    timeout "$(secs 60)" podman stop -t 10 corral-orphans >/dev/null 2>&1
}

# ---- podman stop under load through HAProxy ---------------------------------------------------------------
# HAProxy in the guest checks /health/ready of two corrals every 100 ms: one in the container, one run
# directly in the guest (where requests go once the container's /health/ready answers 503). A closed-loop
# client asks through HAProxy while `podman stop` runs: corral answers 503 at once, keeps serving for its
# drain delay, then stops its workers, which finish what they have and exit; corral exits 0.
PM_DRAIN=2 PM_STOP_TIMEOUT=10 PM_PODMAN_T=20

load_loop() { # OUT STOPFILE: sequential GETs through HAProxy until STOPFILE exists, one "CODE SERVER" line each
    local args=() k
    for ((k = 0; k < 20; k++)); do
        args+=(-o /dev/null http://127.0.0.1:8090/)
    done
    while [[ ! -e $2 ]]; do
        curl -s -m "$(secs 30)" -w '%{http_code} %header{x-server}\n' "${args[@]}" >>"$1"
    done
}

lines_at_least() { # FILE N [PATTERN]: FILE has N lines (matching PATTERN)
    (($(count_lines "$1" 0 999999999 "${3:-.}") >= $2))
}

count_lines() { # FILE FROM TO PATTERN: lines FROM+1..TO of FILE matching PATTERN (awk regex)
    awk -v a="$2" -v b="$3" -v p="$4" 'NR > a && NR <= b && $0 ~ p { n++ } END { print n + 0 }' "$1"
}

podman_stop_under_load() {
    local w=$PM_DIR/load peer hap loader t0 t_stop rc code n_before n_stop n_all fails detail ok=1
    mkdir -p "$w"
    rm -f "$w"/*
    /usr/local/bin/corral --name podman-peer --cgroup-root none --listen 127.0.0.1:8083 \
        --status-listen 127.0.0.1:9183 --count 2 --stop-timeout 10s -- /usr/local/bin/corral-test-worker \
        >"$w/peer.log" 2>&1 &
    peer=$!
    pm_pids+=("$peer")
    if ! pm_start corral-load --listen 127.0.0.1:8082 --status-listen 127.0.0.1:9182 --count 2 \
        --drain-delay "${PM_DRAIN}s" --stop-timeout "${PM_STOP_TIMEOUT}s" -- /usr/local/bin/corral-test-worker; then
        result podman-stop-under-load FAIL "$(pm_failed corral-load)"
        return
    fi
    if ! wait_for 120 answers http://127.0.0.1:9182/health/ready 200 ||
        ! wait_for 120 answers http://127.0.0.1:9183/health/ready 200; then
        result podman-stop-under-load FAIL "/health/ready: container $(http_code http://127.0.0.1:9182/health/ready), guest $(http_code http://127.0.0.1:9183/health/ready)"
        pm_logs corral-load
        return
    fi
    cat >"$w/haproxy.cfg" <<EOF
global
    maxconn 200
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend www
    bind 127.0.0.1:8090
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    http-response set-header X-Server %s
    default-server check inter 100ms fastinter 100ms downinter 100ms fall 1 rise 1 pool-max-conn 0
    server container 127.0.0.1:8082 port 9182
    server guest 127.0.0.1:8083 port 9183
EOF
    haproxy -db -f "$w/haproxy.cfg" </dev/null >"$w/haproxy.log" 2>&1 &
    hap=$!
    pm_pids+=("$hap")
    # Both servers up: each has answered through HAProxy.
    : >"$w/warmup"
    served_both() {
        curl -s -m "$(secs 10)" -o /dev/null -w '%{http_code} %header{x-server}\n' http://127.0.0.1:8090/ >>"$w/warmup"
        grep -q '^200 container$' "$w/warmup" && grep -q '^200 guest$' "$w/warmup"
    }
    if ! wait_for 60 served_both; then
        result podman-stop-under-load FAIL "HAProxy never served from both corrals: $(sort "$w/warmup" | uniq -c | tr '\n' ' ')"
        sed 's/^/    /' "$w/haproxy.log"
        return
    fi

    load_loop "$w/requests" "$w/stop" &
    loader=$!
    wait_for 60 lines_at_least "$w/requests" 20 container
    n_before=$(wc -l <"$w/requests")
    t0=$(now_ms)
    timeout "$(secs 120)" podman stop -t "$PM_PODMAN_T" corral-load >/dev/null 2>"$w/stop.err"
    rc=$?
    t_stop=$(($(now_ms) - t0))
    n_stop=$(wc -l <"$w/requests")
    # Some more requests after the container is gone, all to the guest's corral.
    wait_for 30 lines_at_least "$w/requests" $((n_stop + 20))
    touch "$w/stop"
    wait "$loader"
    n_all=$(wc -l <"$w/requests")
    code=$(pm_inspect corral-load '{{.State.ExitCode}}')
    fails=$(count_lines "$w/requests" 0 "$n_all" '^[^2]')
    local bound=$(($(secs $((PM_DRAIN + PM_STOP_TIMEOUT + 1))) * 1000))
    detail="podman stop -t $PM_PODMAN_T (drain delay ${PM_DRAIN}s, StopTimeoutSec=${PM_STOP_TIMEOUT}s): rc $rc in ${t_stop} ms (bound ${bound} ms), exit code '$code'"
    detail+="; $n_all requests through HAProxy, $fails failed: before $n_before ($(count_lines "$w/requests" 0 "$n_before" container) container)"
    detail+=", during the stop $((n_stop - n_before)) ($(count_lines "$w/requests" "$n_before" "$n_stop" container) container)"
    detail+=", after $((n_all - n_stop)) ($(count_lines "$w/requests" "$n_stop" "$n_all" container) container)"
    detail+="; HAProxy: $(grep -o 'Server app/container is DOWN[^.]*' "$w/haproxy.log" | head -n 1)"
    ((rc == 0 && t_stop <= bound)) || ok=0
    [[ $code == 0 ]] || ok=0
    ((fails == 0 && n_all > n_stop && $(count_lines "$w/requests" 0 "$n_before" container) > 0)) || ok=0
    result podman-stop-under-load "$( ((ok)) && echo PASS || echo FAIL)" "$detail"
    if ((!ok)); then
        note "non-2xx answers: $(awk '$1 !~ /^2/' "$w/requests" | sort | uniq -c | tr '\n' ' ')"
        sed 's/^/    /' "$w/stop.err" "$w/haproxy.log"
    fi
    note "the container's log:"
    pm_logs corral-load 12
}

# ---- a crash loop: corral gives up and the container exits with its status -------------------------------
podman_crash_loop() {
    local t0 t_exit code waited detail ok=1 give_up=3
    t0=$(now_ms)
    if ! pm_start corral-crash --listen 127.0.0.1:8085 --count 2 --give-up-after "$give_up" -- /bin/false; then
        result podman-crash-loop FAIL "$(pm_failed corral-crash)"
        return
    fi
    waited=$(timeout "$(secs 120)" podman wait corral-crash 2>&1)
    t_exit=$(($(now_ms) - t0))
    code=$(pm_inspect corral-crash '{{.State.ExitCode}}')
    detail="worker /bin/false, --give-up-after $give_up: the container exited by itself after ${t_exit} ms; podman wait '$waited', State.ExitCode '$code'"
    detail+="; corral: '$(podman logs corral-crash 2>&1 | grep -m 1 -o 'every worker slot failed.*giving up')'"
    [[ $waited == 1 && $code == 1 ]] || ok=0
    result podman-crash-loop "$( ((ok)) && echo PASS || echo FAIL)" "$detail"
    ((ok)) || pm_logs corral-crash
}

podman_group
