#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A rolling deploy over corral hosts behind HAProxy, one host at a time (the shape of an Ansible
# `serial: 1` play): drain until no connection is left, deploy, reload, undrain, and wait until every
# load balancer has taken the host back, before the next host is touched.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: contrib/fleet/roll.sh [OPTIONS] HOST...

Rolls a new generation over the corral of each HOST, in order, one at a time:
  1. corral drain           /health/ready answers 503 and the HAProxy agent-check "drain"
  2. wait until every load balancer (--haproxy-socket, --haproxy-cmd) has taken the host's
     server out (drain or maintenance flag, down, or weight 0); without one, --drain-grace
  3. corral drain --wait    returns once the kernel counts no connection left on the workers'
                            addresses; only now does that mean something: before step 2 a
                            count of zero may just be a moment with no request in flight
  4. --deploy CMD           (optional) put the new release or configuration in place
  5. corral reload --wait   start-first rolling restart; its exit status is the truth
  6. corral undrain
  7. wait until every load balancer sees the server UP, in no drain or maintenance state,
     with a weight above 0
The next host is touched only after step 7. The first failure stops the roll with exit 1, and the
last line names the host and the step.

HOST is [SERVER=]TARGET: TARGET says how the host's corral is reached (see --via), SERVER is its
server's name in the HAProxy backend (default: TARGET without any user@ and from its first dot).

Options:
  --via ssh|local|CMD      how corral runs on a host. ssh (default): `ssh TARGET corral ...`.
                           local: this machine's corral; TARGET is an instance NAME, or the path
                           of its control socket when it has a '/'. CMD: any command that takes
                           TARGET and then corral's arguments, e.g. 'ssh -o BatchMode=yes -J bastion'
  --corral PATH            corral on the hosts (default: corral)
  --instance NAME          the corral instance on each host, for ssh and CMD (default: the only
                           one running there)
  --deploy CMD             run CMD here, by bash, between drain and reload, with the host's SERVER
                           as $1 and TARGET as $2, e.g. --deploy 'rsync -a release/ "$2":/srv/app/'
  --backend NAME           the HAProxy backend that holds the servers (needed with --haproxy-*)
  --haproxy-socket PATH    a load balancer's runtime API socket here, asked through socat;
                           repeatable: every load balancer must take the host back
  --haproxy-cmd CMD        a command that passes its stdin to a load balancer's runtime API and
                           prints the answer, run by bash, e.g.
                           'ssh lb1 socat STDIO UNIX-CONNECT:/run/haproxy/admin.sock'; repeatable
  --drain-timeout DURATION how long drain --wait waits for the connections to end (default: 60s;
                           longer than the app's keep-alive idle timeout, see docs/fleet.md)
  --lb-timeout SECONDS     how long to wait for the load balancers to take a host out (step 2)
                           and back (step 7) (default: 30)
  --drain-grace SECONDS    with no load balancer to ask: the wait of step 2, longer than the
                           load balancers' agent or health check interval (default: 3)
  --keep-failed-drained    leave a host whose reload failed drained (see below)
  -h, --help               show this help

Before the first host, every server must be ready in every load balancer: draining one more host
while another is out would take more than one host out at a time, which a serial roll promises
not to do. Undrain or leave out the host that is out, then roll.

When a step fails:
  drain     (a connection still open at --drain-timeout, or corral unreachable) the host is
            undrained again and the roll stops: nothing on it changed.
  deploy    the host is undrained again and the roll stops: it still runs what it ran.
  reload    corral has rolled the host back: it serves its previous generation, the same workers
            as before the roll. It is undrained, and the load balancers must take it back,
            before the roll stops, so that a bad release costs the fleet no capacity while you
            look at it; the agent-check and /health/ready still keep the host out should it not
            serve. With --keep-failed-drained it stays drained (out of traffic, for a look at it).
  undrain, wait: the roll stops and says in which state it left the host.
The hosts before the failed one run the new release, the ones after it were not touched.

Exit status: 0 every host rolled, 1 the roll stopped at a host (named on the last line),
64 usage error, 130 interrupted (the host being rolled may be left drained: the message says).

Example (three hosts reached by ssh, one HAProxy):
  contrib/fleet/roll.sh --instance app --backend app \
      --haproxy-cmd 'ssh lb1 socat STDIO UNIX-CONNECT:/run/haproxy/admin.sock' \
      --deploy 'scp app.conf "$2":/etc/corral/app.conf' web1 web2 web3
EOF
}

die_usage() {
    echo "roll.sh: error: $*" >&2
    echo "Try 'contrib/fleet/roll.sh --help'." >&2
    exit 64
}

via=ssh
corral=corral
instance=
deploy=
backend=
drain_timeout=60s
lb_timeout=30
drain_grace=3
keep_failed_drained=0
lb_kinds=()
lb_args=()
hosts=()

need_arg() {
    (($# >= 2)) || die_usage "$1 needs an argument"
}

while (($# > 0)); do
    case $1 in
        --via) need_arg "$@"; via=$2; shift 2 ;;
        --corral) need_arg "$@"; corral=$2; shift 2 ;;
        --instance) need_arg "$@"; instance=$2; shift 2 ;;
        --deploy) need_arg "$@"; deploy=$2; shift 2 ;;
        --backend) need_arg "$@"; backend=$2; shift 2 ;;
        --haproxy-socket) need_arg "$@"; lb_kinds+=(socket); lb_args+=("$2"); shift 2 ;;
        --haproxy-cmd) need_arg "$@"; lb_kinds+=(cmd); lb_args+=("$2"); shift 2 ;;
        --drain-timeout) need_arg "$@"; drain_timeout=$2; shift 2 ;;
        --lb-timeout) need_arg "$@"; lb_timeout=$2; shift 2 ;;
        --drain-grace) need_arg "$@"; drain_grace=$2; shift 2 ;;
        --keep-failed-drained) keep_failed_drained=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; hosts+=("$@"); break ;;
        -*) die_usage "unknown option '$1'" ;;
        *) hosts+=("$1"); shift ;;
    esac
done

((${#hosts[@]} > 0)) || die_usage "no HOST given"
[[ $lb_timeout =~ ^[0-9]+$ ]] || die_usage "--lb-timeout takes whole seconds, not '$lb_timeout'"
[[ $drain_grace =~ ^[0-9]+(\.[0-9]+)?$ ]] || die_usage "--drain-grace takes seconds, not '$drain_grace'"
# ssh joins its arguments into a command line for the remote shell, other commands (docker exec,
# machinectl) pass them on as they are: words without blanks or shell metacharacters mean the same
# to both, so nothing needs quoting for one and not the other.
safe_word='^[A-Za-z0-9_./@:+=-]+$'
[[ $via == local || $corral =~ $safe_word ]] || die_usage "--corral '$corral': only letters, digits and _./@:+=- please"
[[ -z $instance || $instance =~ $safe_word ]] || die_usage "--instance '$instance': not a plain name"
[[ $drain_timeout =~ $safe_word ]] || die_usage "--drain-timeout '$drain_timeout': e.g. 60s, 2min"
if ((${#lb_kinds[@]} > 0)) && [[ -z $backend ]]; then
    die_usage "--haproxy-socket and --haproxy-cmd need --backend"
fi
# socat because HAProxy's management guide uses it and Debian ships it (1.5 MB); nc -U exists only in
# netcat-openbsd, and bash cannot open a UNIX socket.
for i in "${!lb_kinds[@]}"; do
    if [[ ${lb_kinds[i]} == socket ]] && ! command -v socat >/dev/null; then
        die_usage "--haproxy-socket needs socat (apt-get install socat), or use --haproxy-cmd"
    fi
done

servers=()
targets=()
for h in "${hosts[@]}"; do
    if [[ $h == *=* ]]; then
        servers+=("${h%%=*}")
        targets+=("${h#*=}")
    else
        s=${h#*@}
        servers+=("${s%%.*}")
        targets+=("$h")
    fi
    [[ -n ${servers[-1]} && -n ${targets[-1]} ]] || die_usage "HOST '$h': want [SERVER=]TARGET"
    if [[ $via != local ]]; then
        [[ ${targets[-1]} =~ $safe_word ]] || die_usage "HOST '$h': not a plain host name"
    fi
done

via_cmd=()
if [[ $via != local ]]; then
    read -r -a via_cmd <<<"$via"
    ((${#via_cmd[@]} > 0)) || die_usage "--via is empty"
fi

# Microseconds from EPOCHREALTIME (bash 5), so timings need no date(1) with GNU-only formats. Its
# separator follows LC_NUMERIC, hence both.
now_us() {
    echo "${EPOCHREALTIME//[.,]/}"
}

seconds_since() {
    local d=$(($(now_us) - $1))
    printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000))
}

say() {
    printf 'roll: %s\n' "$*"
}

# corral VERB ARGS... on host I. Its stdout and stderr together are the step's message.
on_host() {
    local i=$1
    shift
    local target=${targets[i]}
    if [[ $via == local ]]; then
        if [[ $target == */* ]]; then
            "$corral" "$@" --control "$target"
        else
            "$corral" "$@" "$target"
        fi
    else
        "${via_cmd[@]}" "$target" "$corral" "$@" ${instance:+"$instance"}
    fi
}

# Sends one runtime API command to load balancer L and prints the answer. Bounded: a load balancer
# that hangs must not hang the roll with a host drained.
lb_query() {
    local l=$1 command=$2
    if [[ ${lb_kinds[l]} == socket ]]; then
        printf '%s\n' "$command" | timeout 5 socat -t 2 STDIO "UNIX-CONNECT:${lb_args[l]}"
    else
        printf '%s\n' "$command" | timeout 10 bash -c "${lb_args[l]}"
    fi
}

lb_name() {
    if [[ ${lb_kinds[$1]} == socket ]]; then
        echo "HAProxy at ${lb_args[$1]}"
    else
        echo "HAProxy via '${lb_args[$1]}'"
    fi
}

# Prints "OP_STATE ADMIN_STATE WEIGHT" of server S in load balancer L, from `show servers state`
# (columns found by their names in its header, which HAProxy versions extend). Exit 2: no such
# server or backend; 1: the load balancer did not answer.
lb_server_state() {
    local l=$1 s=$2 answer
    answer=$(lb_query "$l" "show servers state $backend") || return 1
    [[ -n $answer ]] || return 1
    awk -v srv="$s" '
        $1 == "#" { for (i = 2; i <= NF; i++) col[$i] = i - 1; next }
        NF > 3 && ("srv_name" in col) && $col["srv_name"] == srv {
            print $col["srv_op_state"], $col["srv_admin_state"], $col["srv_uweight"]
            found = 1
        }
        END { exit found ? 0 : 2 }' <<<"$answer"
}

# Ready for traffic: running (srv_op_state 2), no maintenance or drain flag, weight above 0. The
# admin flags (HAProxy's enum srv_admin): 0x01 forced, 0x02 inherited, 0x04 configured and 0x20
# resolver maintenance, 0x08 forced (the agent's, the CLI's) and 0x10 inherited drain; 0x40 is not
# a state (2.6: the FQDN was set at run time) and is left alone.
state_is_ready() {
    local op admin weight
    read -r op admin weight <<<"$1"
    [[ $op == 2 && $admin =~ ^[0-9]+$ && $((admin & 0x3f)) == 0 && ${weight:-0} -gt 0 ]]
}

describe_state() {
    local op admin weight
    read -r op admin weight <<<"$1"
    local ops=(DOWN STARTING UP STOPPING) what
    what=${ops[op]:-op_state=$op}
    ((admin & 0x18)) && what+=", drain"
    ((admin & 0x27)) && what+=", maintenance"
    echo "$what, weight $weight"
}

# Waits until every load balancer sees server S ready (WANT=in) or out of rotation (WANT=out), and
# prints the state each one reached; on timeout prints what each last saw instead.
wait_lbs() {
    local want=$1 s=$2 deadline=$(($(now_us) + lb_timeout * 1000000)) l st rc all seen
    local -a last=()
    while :; do
        all=1
        for l in "${!lb_kinds[@]}"; do
            rc=0
            st=$(lb_server_state "$l" "$s") || rc=$?
            case $rc in
                0) last[l]=$(describe_state "$st") ;;
                2) last[l]="no server '$s' in backend '$backend'" ;;
                *) last[l]="no answer" ;;
            esac
            if ((rc != 0)); then
                all=0
            elif [[ $want == in ]]; then
                state_is_ready "$st" || all=0
            else
                ! state_is_ready "$st" || all=0
            fi
        done
        if ((all)); then
            seen=$(printf '%s; ' "${last[@]}")
            echo "${seen%; }"
            return 0
        fi
        if (($(now_us) >= deadline)); then
            for l in "${!lb_kinds[@]}"; do
                echo "$(lb_name "$l"): $backend/$s: ${last[l]}"
            done
            return 1
        fi
        sleep 0.2
    done
}

stopped_at=
drained_index=
report_interrupt() {
    if [[ -n $drained_index ]]; then
        say "interrupted: ${servers[drained_index]} is left drained; 'corral undrain' on it puts it back"
    else
        say "interrupted between hosts: no host is left drained"
    fi
    exit 130
}
trap report_interrupt INT TERM

# Runs one step of host I, timed: prints "SERVER: STEP: ok in S s (corral's message)" or FAILED.
# The command's message is kept in step_out for the caller.
step_out=
run_step() {
    local i=$1 name=$2 t0 rc=0
    shift 2
    t0=$(now_us)
    step_out=$("$@" 2>&1) || rc=$?
    local msg=${step_out//$'\n'/; }
    if ((rc == 0)); then
        say "${servers[i]}: $name: ok in $(seconds_since "$t0") s${msg:+ ($msg)}"
    else
        say "${servers[i]}: $name: FAILED (exit $rc) after $(seconds_since "$t0") s${msg:+: $msg}"
    fi
    return "$rc"
}

deploy_host() {
    bash -c "$deploy" roll-deploy "${servers[$1]}" "${targets[$1]}"
}

# A host the roll gives up on: put it back unless told not to, then stop the roll.
give_back() {
    local i=$1 why=$2
    if ((keep_failed_drained)) && [[ $why == reload ]]; then
        stopped_at="stopped at ${servers[i]} ($why failed); it is left drained (--keep-failed-drained)"
    elif run_step "$i" "undrain" on_host "$i" undrain; then
        drained_index=
        if ((${#lb_kinds[@]} > 0)) && ! run_step "$i" "load balancers take it back" wait_lbs in "${servers[i]}"; then
            stopped_at="stopped at ${servers[i]} ($why failed); undrained, but a load balancer has not taken it back"
        else
            stopped_at="stopped at ${servers[i]} ($why failed); undrained, serving what it served before"
        fi
    elif [[ $why == drain ]]; then
        stopped_at="stopped at ${servers[i]} ($why failed); undrain failed too: check whether it is drained"
    else
        stopped_at="stopped at ${servers[i]} ($why failed); undrain failed too: it is still drained"
    fi
    local done_hosts=${servers[*]:0:i} rest=${servers[*]:i+1}
    say "FAILED: $stopped_at; rolled before it: ${done_hosts:-none}; not touched: ${rest:-none}"
    exit 1
}

roll_t0=$(now_us)

if ((${#lb_kinds[@]} > 0)); then
    for i in "${!servers[@]}"; do
        for l in "${!lb_kinds[@]}"; do
            rc=0
            st=$(lb_server_state "$l" "${servers[i]}") || rc=$?
            case $rc in
                0) ;;
                2) say "$(lb_name "$l"): no server '${servers[i]}' in backend '$backend'"; exit 1 ;;
                *) say "$(lb_name "$l"): no answer to 'show servers state $backend'"; exit 1 ;;
            esac
            if ! state_is_ready "$st"; then
                say "$(lb_name "$l"): $backend/${servers[i]} is not ready ($(describe_state "$st")):" \
                    "a serial roll takes out one host at a time; put it back or leave it out"
                exit 1
            fi
        done
    done
    say "${#servers[@]} hosts, all ready in ${#lb_kinds[@]} load balancer(s) (backend $backend)"
fi

for i in "${!servers[@]}"; do
    host_t0=$(now_us)
    say "${servers[i]}: [$((i + 1))/${#servers[@]}] rolling ${targets[i]}"
    drained_index=$i
    run_step "$i" "drain" on_host "$i" drain || give_back "$i" drain
    if ((${#lb_kinds[@]} > 0)); then
        run_step "$i" "load balancers take it out" wait_lbs out "${servers[i]}" || give_back "$i" drain
    else
        run_step "$i" "no load balancer to ask: waiting ${drain_grace}s" sleep "$drain_grace"
    fi
    run_step "$i" "drain --wait" on_host "$i" drain --wait --timeout "$drain_timeout" || give_back "$i" drain
    if [[ -n $deploy ]]; then
        run_step "$i" "deploy" deploy_host "$i" || give_back "$i" deploy
    fi
    run_step "$i" "reload --wait" on_host "$i" reload --wait || give_back "$i" reload
    if ! run_step "$i" "undrain" on_host "$i" undrain; then
        say "FAILED: stopped at ${servers[i]} (undrain failed): it is rolled but still drained"
        exit 1
    fi
    drained_index=
    if ((${#lb_kinds[@]} > 0)); then
        if ! run_step "$i" "load balancers take it back" wait_lbs in "${servers[i]}"; then
            say "FAILED: stopped at ${servers[i]}: rolled and undrained, but a load balancer has not taken it back"
            exit 1
        fi
    fi
    say "${servers[i]}: rolled in $(seconds_since "$host_t0") s"
done

say "done: ${#servers[@]} hosts rolled in $(seconds_since "$roll_t0") s"
