#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the fuzz targets of a CORRAL_FUZZ build for a bounded time each, one after the other, each on a copy
# of its seed corpus in a temporary directory (the tree stays clean). Prints one line of figures per
# target; on a finding (crash, leak, timeout, out of memory, broken property) prints libFuzzer's report
# and the saved input's path, keeps that directory, and exits 1. What scripts/test.sh's fuzz tier runs.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: tests/fuzz/run.sh [-t SECONDS] BUILD_DIR [TARGET...] [-- LIBFUZZER_ARGS...]

Runs each fuzz target (default: all of them: notify-parse notify-socket http-request config parse
cgroup-parse) of BUILD_DIR (configured with -DCORRAL_FUZZ=ON) for SECONDS (default 30), with its
dictionary, -timeout=5 and -rss_limit_mb=2048. Arguments after "--" go to every libFuzzer run.

  -t, --time SECONDS  how long each target runs
  -h, --help          show this help
Exit status: 0 nothing found, 1 a finding (its input's path is printed), 64 usage error.
EOF_USAGE
}

seconds=30
build_dir=
targets=()
extra=()
while (($# > 0)); do
    case $1 in
        -t | --time)
            (($# >= 2)) || { usage >&2; exit 64; }
            seconds=$2
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            extra=("$@")
            break
            ;;
        -*)
            echo "run.sh: error: unknown option '$1'" >&2
            usage >&2
            exit 64
            ;;
        *)
            if [[ -z $build_dir ]]; then
                build_dir=$1
            else
                targets+=("$1")
            fi
            shift
            ;;
    esac
done
[[ -n $build_dir ]] || { usage >&2; exit 64; }
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: error: invalid time '$seconds'" >&2; exit 64; }

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
((${#targets[@]} > 0)) || targets=(notify-parse notify-socket http-request config parse cgroup-parse env-file state)

# The options that differ between targets: which dictionary, and a longer input limit where the limits
# under test lie beyond libFuzzer's default of 4096 bytes (the 8 KiB request head).
target_args() {
    case $1 in
        notify-parse | notify-socket) echo "-dict=$fuzz_dir/dict/notify.dict" ;;
        http-request) echo "-dict=$fuzz_dir/dict/http.dict -max_len=9000" ;;
        config) echo "-dict=$fuzz_dir/dict/config.dict" ;;
        parse) echo "-dict=$fuzz_dir/dict/parse.dict" ;;
        cgroup-parse) echo "-dict=$fuzz_dir/dict/cgroup.dict" ;;
        env-file) echo "-dict=$fuzz_dir/dict/config.dict" ;;
        state) echo "-dict=$fuzz_dir/dict/state.dict -max_len=8192" ;;
        *) return 1 ;;
    esac
}

# One line from libFuzzer's final report: the last status line and -print_final_stats's figures.
figures() {
    local log=$1 runs rate rss cov ft corp
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    read -r cov ft corp < <(grep -E '^#[0-9]+' "$log" | tail -n 1 |
        sed -E 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/') || true
    echo "${runs:-?} runs, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} inputs," \
        "peak rss ${rss:-?} MB"
}

failed=0
for t in "${targets[@]}"; do
    bin=$build_dir/tests/fuzz/fuzz-$t
    if ! args=$(target_args "$t"); then
        echo "run.sh: fuzz-$t: FAIL (no such target)"
        failed=1
        continue
    fi
    if [[ ! -x $bin ]]; then
        echo "run.sh: fuzz-$t: FAIL (no $bin: configure with -DCORRAL_FUZZ=ON -DCMAKE_C_COMPILER=clang)"
        failed=1
        continue
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/corral-fuzz-$t.XXXXXX")
    cp -R "$fuzz_dir/corpus/$t" "$work/corpus"
    rc=0
    # shellcheck disable=SC2086 # $args is a list of options
    timeout --kill-after=30 $((seconds + 120)) "$bin" "$work/corpus" -max_total_time="$seconds" -timeout=5 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" $args "${extra[@]}" \
        >"$work/log" 2>&1 || rc=$?
    if ((rc == 0)); then
        echo "run.sh: fuzz-$t: ok ($seconds s): $(figures "$work/log")"
        rm -rf "$work"
        continue
    fi

    failed=1
    echo "run.sh: fuzz-$t: FAIL (exit $rc); libFuzzer's report:"
    grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse|INITED)' "$work/log" | tail -n 60 | sed 's/^/    /'
    # The first line of the report says what went wrong; a long stack trace can push it out of the tail.
    grep -m 3 -E 'does not hold|ERROR: |runtime error' "$work/log" |
        sed "s/^/run.sh: fuzz-$t: finding: /" || true
    found=0
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
        [[ -e $a ]] || continue
        found=1
        echo "run.sh: fuzz-$t: input that fails: $a ($(stat -c %s "$a") bytes), base64:"
        head -c 4096 "$a" | base64 -w 100 | sed 's/^/    /'
        echo "run.sh: reproduce: $bin $a"
    done
    ((found)) || echo "run.sh: fuzz-$t: no input was saved; the log is $work/log"
done
exit "$failed"
