#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's "run it" command: sets up and builds corral, then runs a pool of test workers on 127.0.0.1
# in the foreground (Ctrl-C stops it), or, with --tour, runs the headline unattended (scripts/tour.py).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/demo.sh [--tour] [--no-setup]

Without --tour: runs COUNT test workers behind http://127.0.0.1:PORT/ in the foreground as the
corral instance "demo", with /health and /metrics on 127.0.0.1:STATUS_PORT, and prints the
commands to try from another terminal. Ctrl-C stops it. corral replaces this script (exec), so
the pid in the banner is this script's pid.

--tour: runs the headline unattended instead and exits: under a keep-alive load on 127.0.0.1,
steady serving, a rolling reload, a SIGKILLed worker and a bad deploy that is rolled back, each
with its requests sent, failed and time taken; then corral is stopped with SIGTERM. Exit status
0 only if no request failed and every step ended as it should (about 10 seconds). It uses its own
temporary directory, free ports and instance name, so it can run beside the demo. Needs no root.

Options:
  --tour        run the unattended tour (scripts/tour.py) instead of the foreground demo
  --no-setup    do not run scripts/setup.sh (no apt-get, no build): use the binaries already
                built in the build directory (what the tests do)
  -h, --help    show this help

Environment:
  CORRAL_BUILD_DIR  build directory (default: build), holds corral and tests/corral-test-worker
  PORT              the workers' port (default: 8080; the demo only)
  STATUS_PORT       the health and metrics port (default: 8081; the demo only)
  COUNT             workers: N, auto or auto-K (default: 4; the demo only)

Exit status: 0 (the tour held, or the demo was stopped cleanly), 1 (a tour step failed, or the
build is missing), 64 (a bad argument); the demo's other codes are corral's (corral --help).
EOF
}

tour=0
setup=1
while (($# > 0)); do
    case $1 in
        --tour) tour=1 ;;
        --no-setup) setup=0 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "demo.sh: error: unknown argument '$1' (see scripts/demo.sh --help)" >&2
            exit 64
            ;;
    esac
    shift
done

port=${PORT:-8080}
status_port=${STATUS_PORT:-8081}
count=${COUNT:-4}
build_dir=${CORRAL_BUILD_DIR:-build}
caller_dir=$PWD

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

if ((setup)); then
    scripts/setup.sh --build-dir "$build_dir"
fi

corral=$build_dir/corral
worker=$build_dir/tests/corral-test-worker
for bin in "$corral" "$worker"; do
    if [[ ! -x $bin ]]; then
        echo "demo.sh: error: '$bin' was not built (run scripts/setup.sh, or drop --no-setup)" >&2
        exit 1
    fi
done

if ((tour)); then
    exec python3 scripts/tour.py --corral "$corral" --worker "$worker"
fi

# How the banner's commands name corral: plain "corral" when that is this build on PATH, else its path
# as seen from where demo.sh was started.
corral_abs=$(cd "$(dirname "$corral")" && pwd)/corral
if [[ $(command -v corral || true) -ef $corral_abs ]]; then
    corral_cmd=corral
elif [[ $caller_dir == "$repo_root" ]]; then
    corral_cmd=$corral
else
    corral_cmd=$corral_abs
fi

# The instance "demo" has a default control socket: /run/corral/demo/control as root,
# $XDG_RUNTIME_DIR/corral/demo/control otherwise; without XDG_RUNTIME_DIR it needs --control.
control_args=()
if ((EUID != 0)) && [[ -z ${XDG_RUNTIME_DIR:-} ]]; then
    control_dir=$(mktemp -d -t corral-demo.XXXXXX)
    control_args=(--control "$control_dir/control")
    corral_cmd+=" --control $control_dir/control"
fi

try() {
    printf '      %-36s # %s\n' "$1" "$2"
}
echo
echo "  corral (pid $$): $count workers behind http://127.0.0.1:$port/, health on http://127.0.0.1:$status_port/health"
echo
echo "  In another terminal, try:"
try "curl http://127.0.0.1:$port/" "each answer names the worker slot, pid and generation"
try "$corral_cmd status" "corral and its workers (the PID column)"
try "$corral_cmd reload --wait" "a rolling restart to a new generation, start-first"
try "kill -9 PID" "PID of a worker from 'status': a new one takes its"
try "" "slot; 'status' again shows it (RESTARTS, LAST EXIT)"
if ((${#control_args[@]} == 0)); then
    echo "  With more than one corral running, name this one: '$corral_cmd status demo'."
fi
echo "  Unattended, with figures: scripts/demo.sh --tour"
echo
echo "  Press Ctrl-C to stop the pool."
echo

# exec, so that Ctrl-C and SIGTERM reach corral itself.
exec "$corral" --name demo "${control_args[@]}" --listen "127.0.0.1:$port" --status-listen "127.0.0.1:$status_port" \
    --count "$count" -- "$worker"
