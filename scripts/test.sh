#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's "test" command and what CI runs: installs and builds, then runs every test tier.
# Tiers: unit + integration tests (build/), the same under ASan/UBSan (build-asan/), the fuzz targets
# (build-fuzz/), the Debian package (build-deb/), end to end under a real systemd with that package
# installed, corral as a container's entrypoint, and cgroup v2 in a VM. Exits non-zero if anything failed.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: scripts/test.sh [--no-asan] [--no-fuzz] [--no-deb] [--no-e2e] [--no-container] [-- CTEST_ARGS...]

Installs missing dependencies (scripts/setup.sh), builds, and runs:
  1. unit + integration tests          in build/       (ctest; with the stacks' runtimes and the
                                       fleet tier's haproxy, socat, ansible-core: setup.sh --stacks
                                       --fleet, CORRAL_REQUIRE_STACKS=1 CORRAL_REQUIRE_FLEET=1)
  2. unit + integration under ASan/UBSan in build-asan/ (ctest, -DCORRAL_SANITIZE=ON; not the
                                       stacks test, whose apps ASan does not instrument)
  3. fuzzing                           each libFuzzer target of tests/fuzz/ for $CORRAL_FUZZ_SECONDS
                                       (default 30) in build-fuzz/ (clang, -DCORRAL_FUZZ=ON)
  4. the Debian package               scripts/deb.sh --lintian build-deb (dpkg-buildpackage -us
                                       -uc -b on a copy of the tree, then lintian)
  5. end to end under a real systemd   tests/e2e/run.sh build (systemd-nspawn containers booted
                                       from a Debian rootfs cached in $CORRAL_E2E_CACHE, default
                                       /var/cache/corral-e2e; needs root or sudo), with the
                                       package of tier 4 installed by apt
  6. corral as a container's PID 1     tests/e2e/container.sh build (corral as PID 1 of a
                                       systemd-nspawn container, behind HAProxy; rootfs cached
                                       there too; needs root or sudo)
  7. cgroup v2 in a QEMU VM            tests/vm/run.sh build (CORRAL_NO_VM=1 skips it)

Options:
  --no-asan   skip the ASan/UBSan tier (reported as skipped)
  --no-fuzz   skip the fuzz tier (reported as skipped)
  --no-deb    skip the package tier (reported as skipped; the e2e tier then builds the
              package itself)
  --no-e2e    skip the end-to-end tier (reported as skipped)
  --no-container  skip the container-entrypoint tier (reported as skipped)
  -h, --help  show this help
Arguments after "--" go to every ctest run, e.g. -- -R pool  or  -- -L unit
EOF_USAGE
}

run_asan=1
run_fuzz=1
run_deb=1
run_e2e=1
run_container=1
ctest_args=()
while (($# > 0)); do
    case $1 in
        --no-asan)
            run_asan=0
            shift
            ;;
        --no-fuzz)
            run_fuzz=0
            shift
            ;;
        --no-deb)
            run_deb=0
            shift
            ;;
        --no-e2e)
            run_e2e=0
            shift
            ;;
        --no-container)
            run_container=0
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            ctest_args=("$@")
            break
            ;;
        *)
            echo "test.sh: error: unknown argument '$1'" >&2
            usage >&2
            exit 64
            ;;
    esac
done

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

start=$SECONDS
summary=()
failed=0

# record NAME STATUS: STATUS is "ok", "FAILED", or a word saying why it did not run.
record() {
    summary+=("$1=$2")
    if [[ $2 == FAILED ]]; then
        failed=1
    fi
}

section() {
    printf '\n==== %s ====\n' "$*"
}

# build_and_test NAME BUILD_DIR [CMAKE_ARGS...]: builds through setup.sh and runs ctest there, with
# whatever environment the caller put in front.
build_and_test() {
    local name=$1 dir=$2
    shift 2

    section "$name: build ($dir)"
    # shellcheck disable=SC2086 # SETUP_FLAGS: words for setup.sh
    if ! scripts/setup.sh ${SETUP_FLAGS:-} --build-dir "$dir" -- "$@"; then
        record "$name-build" FAILED
        record "$name-tests" "not-run"
        return 0
    fi
    record "$name-build" ok

    section "$name: unit + integration tests ($dir)"
    # shellcheck disable=SC2086 # CTEST_EXTRA: words for ctest
    if ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2 ${CTEST_EXTRA:-} "${ctest_args[@]}"; then
        record "$name-tests" ok
    else
        record "$name-tests" FAILED
    fi
}

# tier_ready NAME WHAT SETUP_FLAGS...: whether a tier that runs the default build's binaries can run: that
# build passed, and `setup.sh --deps-only SETUP_FLAGS...` installed what it needs (WHAT, for the message).
# Otherwise records NAME as FAILED and returns 1.
tier_ready() {
    local name=$1 what=$2
    shift 2
    if [[ " ${summary[*]} " != *" default-build=ok "* ]]; then
        echo "test.sh: $name: FAIL (not run: the default build failed)"
        record "$name" FAILED
        return 1
    fi
    if ! scripts/setup.sh --deps-only "$@"; then
        echo "test.sh: $name: FAIL (could not install $what)"
        record "$name" FAILED
        return 1
    fi
}

# run_root_tier NAME KILL_AFTER SECONDS CMD...: CMD as root (through sudo when not root), SIGTERM after SECONDS
# and SIGKILL KILL_AFTER later; says PASS or FAIL with the time it took and records NAME.
run_root_tier() {
    local name=$1 kill_after=$2 limit=$3 sudo=() rc=0 t0=$SECONDS
    shift 3
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" timeout --kill-after="$kill_after" "$limit" "$@" || rc=$?
    if ((rc == 0)); then
        echo "test.sh: $name: PASS ($((SECONDS - t0)) s)"
        record "$name" ok
    else
        echo "test.sh: $name: FAIL (exit $rc) ($((SECONDS - t0)) s)"
        record "$name" FAILED
    fi
}

# The stacks test (uvicorn, Go, Puma) runs here only: setup.sh --stacks installs their runtimes, and a
# missing one fails the test instead of skipping it. The same for the fleet tier (HAProxy, ansible-core:
# setup.sh --fleet), which the ASan tier then runs too, with what this one installed.
tier_default() {
    SETUP_FLAGS="--stacks --fleet" CORRAL_REQUIRE_STACKS=1 CORRAL_REQUIRE_FLEET=1 build_and_test default build
}

tier_asan() {
    if ((!run_asan)); then
        record asan skipped
        return 0
    fi
    # Sanitized binaries run two to three times slower: the integration tests' waits are doubled (their
    # own bounds, like "killed within 3 s", scale with them; what they assert does not change).
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        CORRAL_TEST_TIMEOUT_SCALE=${CORRAL_TEST_TIMEOUT_SCALE:-2} CTEST_EXTRA="-E integration-stacks" \
        build_and_test asan build-asan -DCORRAL_SANITIZE=ON
}

# ---- FUZZ TIER -------------------------------------------------------------------------------------
# The libFuzzer targets of tests/fuzz/ (notify parser and socket, HTTP request parser, config, value
# parsers, cgroup and /proc parsers, environment files, the upgrade state) in their own clang build, the core
# instrumented for them. Each runs for $CORRAL_FUZZ_SECONDS (30) on a temporary copy of its seeds, one after
# the other: about 5 minutes with the build. A crash, leak, timeout or broken property fails the tier, and tests/fuzz/run.sh
# prints the input.
tier_fuzz() {
    if ((!run_fuzz)); then
        record fuzz skipped
        return 0
    fi
    section "fuzz: build (build-fuzz)"
    if ! scripts/setup.sh --fuzz --build-dir build-fuzz -- -DCMAKE_C_COMPILER=clang -DCORRAL_FUZZ=ON \
        -DCORRAL_TESTS=OFF; then
        record fuzz-build FAILED
        record fuzz not-run
        return 0
    fi
    record fuzz-build ok
    local seconds=${CORRAL_FUZZ_SECONDS:-30} t0=$SECONDS
    section "fuzz: every target for $seconds s"
    if tests/fuzz/run.sh --time "$seconds" build-fuzz; then
        echo "test.sh: fuzz: PASS ($((SECONDS - t0)) s)"
        record fuzz ok
    else
        echo "test.sh: fuzz: FAIL (see the findings above) ($((SECONDS - t0)) s)"
        record fuzz FAILED
    fi
}
# ----------------------------------------------------------------------------------------------------

# ---- PACKAGE TIER ----------------------------------------------------------------------------------
# The Debian package as a user builds it: dpkg-buildpackage -us -uc -b (debhelper, no tests at package
# build time: the other tiers run them) on a copy of the tree, checked by lintian (errors and warnings
# fail). About 10 s for the build and 3 s for lintian here, plus 13 s the first time for installing
# debhelper and lintian.
tier_deb() {
    if ((!run_deb)); then
        record deb skipped
        return 0
    fi
    section "deb: the Debian package (build-deb)"
    if ! scripts/setup.sh --deps-only --deb; then
        echo "test.sh: deb: FAIL (could not install debhelper/lintian)"
        record deb FAILED
        return 0
    fi
    local t0=$SECONDS
    rm -f build-deb/corral_*.deb
    if scripts/deb.sh --lintian build-deb; then
        echo "test.sh: deb: PASS ($((SECONDS - t0)) s)"
        record deb ok
    else
        echo "test.sh: deb: FAIL ($((SECONDS - t0)) s)"
        record deb FAILED
    fi
}
# ----------------------------------------------------------------------------------------------------

# ---- END-TO-END TIER ------------------------------------------------------------------------------
# corral under a real systemd: tests/e2e/run.sh boots systemd 252 (and 254 from bookworm-backports) as
# PID 1 in systemd-nspawn containers, installs the Debian package with apt-get, and drives socket
# activation, reload under load, a bad deploy, a crash, an upgrade of the package under load, restart,
# stop, removal and purge through systemctl and apt-get.
# Exit codes of run.sh: 0 every scenario passed, 2 none failed but some could not run (e.g.
# bookworm-backports unreachable: no systemd 254), anything else failed.
tier_e2e() {
    if ((!run_e2e)); then
        record e2e skipped
        return 0
    fi
    section "e2e: end to end under a real systemd (build)"
    # --stacks: the stack-go scenario builds contrib/examples/go on the host. --deb: run.sh builds the
    # newer package for the upgrade (and the package itself when the deb tier did not).
    tier_ready e2e mmdebstrap/systemd-container/debhelper --e2e --stacks --deb || return 0
    local sudo=() rc=0 t0=$SECONDS deb=()
    ((EUID == 0)) || sudo=(sudo)
    # The package the deb tier built and checked is the one installed.
    if [[ " ${summary[*]} " == *" deb=ok "* ]]; then
        deb=(--deb "$(echo build-deb/corral_*.deb)")
    fi
    # Bounded: on the deadline the whole run gets SIGTERM (its trap tears the containers down), and
    # SIGKILL a minute later if that hangs too.
    "${sudo[@]}" timeout --kill-after=60 900 env CORRAL_E2E_CACHE="${CORRAL_E2E_CACHE:-/var/cache/corral-e2e}" \
        ${CORRAL_E2E_MIRROR:+CORRAL_E2E_MIRROR="$CORRAL_E2E_MIRROR"} tests/e2e/run.sh "${deb[@]}" build || rc=$?
    case $rc in
        0)
            echo "test.sh: e2e: PASS ($((SECONDS - t0)) s)"
            record e2e ok
            ;;
        2)
            echo "test.sh: e2e: INCOMPLETE (nothing failed, but scenarios were skipped; see above) ($((SECONDS - t0)) s)"
            record e2e incomplete
            ;;
        *)
            echo "test.sh: e2e: FAIL (exit $rc) ($((SECONDS - t0)) s)"
            record e2e FAILED
            ;;
    esac
}
# ----------------------------------------------------------------------------------------------------

# ---- CONTAINER TIER --------------------------------------------------------------------------------
# corral as a container's entrypoint, under a real container runtime: tests/e2e/container.sh runs corral as
# PID 1 of systemd-nspawn containers (no --boot, no systemd inside; a small Debian rootfs cached next to the
# e2e tier's) behind a real HAProxy on the host, and checks a stop under load (SIGTERM to nspawn: /health
# 503 at once, zero failed requests, nspawn exits 0 within drain delay + stop timeout + 1 s), that nspawn
# passes corral's exit status on, the stop timeout bounding a stop, 10,000 orphans reaped with no zombie,
# and a crash loop that ends the container with exit 1. About 17 s here, plus ~35 s once for the rootfs.
tier_container() {
    if ((!run_container)); then
        record container skipped
        return 0
    fi
    section "container: corral as a container's entrypoint (build)"
    tier_ready container mmdebstrap/systemd-container/haproxy/socat --e2e --fleet || return 0
    # Bounded as the e2e tier is (its trap tears the containers down); the run itself takes seconds, the
    # rootfs build a minute at most.
    run_root_tier container 30 300 env CORRAL_E2E_CACHE="${CORRAL_E2E_CACHE:-/var/cache/corral-e2e}" \
        ${CORRAL_E2E_MIRROR:+CORRAL_E2E_MIRROR="$CORRAL_E2E_MIRROR"} tests/e2e/container.sh build
}
# ----------------------------------------------------------------------------------------------------

# ---- VM TIER ---------------------------------------------------------------------------------------
# corral on a real cgroup v2 with the memory controller, which only exists here inside a VM:
# tests/vm/run.sh boots Debian bookworm under QEMU TCG (image cached in $CORRAL_VM_CACHE, default
# /var/cache/corral-vm) and checks the delegated cgroup v2 backend: supervisor/ and worker leaves,
# memory.current, memory.max, recycling by memory, cgroup.kill. CORRAL_NO_VM=1 skips it.
tier_vm() {
    if [[ ${CORRAL_NO_VM:-0} == 1 ]]; then
        record vm skipped
        return 0
    fi
    section "vm: cgroup v2 with the memory controller, in a QEMU VM (build)"
    tier_ready vm qemu-system-x86/qemu-utils/mmdebstrap --vm || return 0
    # Bounded: run.sh kills its VM after CORRAL_VM_TIMEOUT (360 s); this also covers the image build.
    run_root_tier vm 60 900 env CORRAL_VM_CACHE="${CORRAL_VM_CACHE:-/var/cache/corral-vm}" \
        ${CORRAL_VM_MIRROR:+CORRAL_VM_MIRROR="$CORRAL_VM_MIRROR"} tests/vm/run.sh build
}
# ----------------------------------------------------------------------------------------------------

section "dependencies"
if ! scripts/setup.sh --deps-only; then
    echo "test.sh: FAILED: could not install the dependencies" >&2
    exit 1
fi

tier_default
tier_asan
tier_fuzz
tier_deb
tier_e2e
tier_container
tier_vm

elapsed=$((SECONDS - start))
verdict=PASSED
if ((failed)); then
    verdict=FAILED
fi
printf '\ntest.sh: %s: %s (%dm%02ds)\n' "$verdict" "${summary[*]}" $((elapsed / 60)) $((elapsed % 60))
exit "$failed"
