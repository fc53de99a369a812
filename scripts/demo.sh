#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's "run it" command: sets up and builds corral, then runs a pool of test workers on
# 127.0.0.1 in the foreground. Ctrl-C stops it cleanly. PORT and COUNT override the defaults.
set -euo pipefail

port=${PORT:-8080}
count=${COUNT:-4}
build_dir=${CORRAL_BUILD_DIR:-build}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

scripts/setup.sh --build-dir "$build_dir"

for bin in "$build_dir/corral" "$build_dir/tests/corral-test-worker"; do
    if [[ ! -x $bin ]]; then
        echo "demo.sh: error: '$bin' was not built" >&2
        exit 1
    fi
done

cat <<BANNER

  corral: $count workers behind http://127.0.0.1:$port/

  In another terminal, run:
      curl http://127.0.0.1:$port/
  Each answer names the worker slot, pid and generation that served it.

  Press Ctrl-C to stop the pool.

BANNER

# exec, so that Ctrl-C and SIGTERM reach corral itself.
exec "$build_dir/corral" --listen "127.0.0.1:$port" --count "$count" -- "$build_dir/tests/corral-test-worker"
