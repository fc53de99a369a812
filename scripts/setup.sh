#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what corral needs on Debian 12 (only what is missing) and configures and builds it.
# Idempotent: a second run installs nothing and rebuilds only what changed.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/setup.sh [OPTIONS] [-- CMAKE_ARGS...]

Installs the missing build and test dependencies with apt-get (as root, or through sudo),
unpacks promtool into BUILD_DIR/tools (from the prometheus package's .deb, when no promtool is
installed), then configures and builds corral with CMake.

Options:
  -B, --build-dir DIR   build directory, relative to the repository root (default: build,
                        or $CORRAL_BUILD_DIR)
  -D VAR=VALUE          extra CMake cache entry, e.g. -D CORRAL_SANITIZE=ON (repeatable)
      --cmake-arg ARG   extra argument for the CMake configure step (repeatable)
      --deps-only       install dependencies, do not build
      --e2e             also install what the end-to-end tier needs (mmdebstrap,
                        systemd-container: tests/e2e/run.sh)
      --deb             also install what the package tier needs (debhelper, lintian:
                        scripts/deb.sh)
      --vm              also install what the VM tier needs (qemu-system-x86, qemu-utils,
                        mmdebstrap: tests/vm/run.sh)
      --fuzz            also install what the fuzz tier needs (clang, libclang-rt-14-dev, llvm:
                        tests/fuzz/)
      --stacks          also install the runtimes of contrib/examples' uvicorn, Go and Puma
                        examples (python3-uvicorn, golang-go, golang-github-coreos-go-systemd-dev,
                        puma: tests/integration/test_stacks.py)
      --fleet           also install what the fleet tier needs (haproxy, socat, ansible-core:
                        tests/integration/test_fleet.py, contrib/fleet/)
  -n, --dry-run         print what would be installed and run, change nothing
  -v, --verbose         show the full output of apt-get and the build
  -h, --help            show this help

Everything after "--" is passed to the CMake configure step too. $CORRAL_CMAKE_ARGS (split on
whitespace) is added before the command-line arguments.

Examples:
  scripts/setup.sh
  scripts/setup.sh --build-dir build-asan -- -DCORRAL_SANITIZE=ON
EOF
}

die() {
    echo "setup.sh: error: $*" >&2
    exit 1
}

info() {
    echo "setup.sh: $*"
}

# The packages the build, the unit tests and the integration tests need. systemd provides
# systemd-socket-activate, which the integration tests use.
# python3-jsonschema validates `corral status --json` against docs/status.schema.json.
PACKAGES=(build-essential cmake pkg-config scdoc libsystemd-dev libinih-dev libcriterion-dev python3 python3-prometheus-client python3-jsonschema python3-gunicorn nodejs curl systemd)
# `promtool check metrics` checks /metrics in the integration tests. Debian ships promtool only inside the
# prometheus package, a server with a web UI and a service (96 MB installed): its .deb (19 MB) is
# downloaded instead, and promtool alone is unpacked into the build directory (BUILD/tools/promtool).
PROMTOOL_PACKAGE=prometheus
# The end-to-end tier (tests/e2e/run.sh, only with --e2e): mmdebstrap builds the container's rootfs,
# systemd-container provides systemd-nspawn.
E2E_PACKAGES=(mmdebstrap systemd-container)
# The package tier (scripts/deb.sh, only with --deb): dpkg-buildpackage's debhelper (dh, the cmake
# buildsystem, dh_installsystemd) and lintian. 138 packages on top of the build packages (33 MB installed,
# perl modules mostly; about 20 MB of .debs): 13 s for apt-get install here, 10 MB of them downloaded (add
# the rest of the download on a fresh runner).
DEB_PACKAGES=(debhelper lintian)
# The VM tier (tests/vm/run.sh, only with --vm): QEMU boots a Debian image that mmdebstrap builds and
# mkfs.ext4 (e2fsprogs) packs.
VM_PACKAGES=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs)
# The fuzz tier (tests/fuzz/, only with --fuzz): clang with libFuzzer and the sanitizer runtimes
# (libclang-rt-14-dev, only recommended by clang), and llvm for llvm-symbolizer, which turns the
# addresses in a crash report into file:line.
FUZZ_PACKAGES=(clang libclang-rt-14-dev llvm)
# The stacks test (tests/integration/test_stacks.py, only with --stacks): uvicorn, Go with go-systemd, Puma.
# 25 packages, 88 MB of .debs (496 MB installed, golang-go most of it): 11 s for apt-get update + install
# here, where most .debs were already in apt's cache (add the download of ~82 MB on a fresh runner). The
# test takes ~60 s. Without the packages the test is reported as skipped, never as passed.
STACKS_PACKAGES=(python3-uvicorn golang-go golang-github-coreos-go-systemd-dev puma)
# The fleet tier (tests/integration/test_fleet.py, only with --fleet): a real HAProxy in front of three
# corrals, rolled by contrib/fleet/roll.sh and by contrib/fleet/roll.yml under ansible-playbook.
# haproxy (2.6; 2.0 MB .deb, 4 MB installed with liblua5.3-0 and libopentracing; its postinst starts a
# haproxy.service whose Debian config serves nothing but its admin socket, and the test runs an HAProxy of
# its own in the foreground); socat (0.4 MB, 1.5 MB installed), through which roll.sh and roll.yml read
# HAProxy's runtime API, as HAProxy's management guide does (bash cannot open a UNIX socket, nc -U is
# only in netcat-openbsd); ansible-core (2.14 with jinja2, netaddr and ieee-data: 3.8 MB of .debs, 25 MB
# installed), not `ansible` (17 MB of .debs, 259 MB installed), whose collections the playbook does
# not use. apt-get install took 5.3 s, 5.0 s and 8.4 s here, one at a time; the test takes ~22 s.
# Without them the test is reported as skipped, never as passed.
FLEET_PACKAGES=(haproxy socat ansible-core)

build_dir=${CORRAL_BUILD_DIR:-build}
cmake_args=()
if [[ -n ${CORRAL_CMAKE_ARGS:-} ]]; then
    read -r -a cmake_args <<<"$CORRAL_CMAKE_ARGS"
fi
deps_only=0
dry_run=0
verbose=0

while (($# > 0)); do
    case $1 in
        -B | --build-dir)
            (($# >= 2)) || die "$1 needs an argument"
            build_dir=$2
            shift 2
            ;;
        --build-dir=*)
            build_dir=${1#*=}
            shift
            ;;
        -D)
            (($# >= 2)) || die "$1 needs an argument"
            cmake_args+=("-D$2")
            shift 2
            ;;
        -D?*)
            cmake_args+=("$1")
            shift
            ;;
        --cmake-arg)
            (($# >= 2)) || die "$1 needs an argument"
            cmake_args+=("$2")
            shift 2
            ;;
        --cmake-arg=*)
            cmake_args+=("${1#*=}")
            shift
            ;;
        --deps-only)
            deps_only=1
            shift
            ;;
        --e2e)
            PACKAGES+=("${E2E_PACKAGES[@]}")
            shift
            ;;
        --deb)
            PACKAGES+=("${DEB_PACKAGES[@]}")
            shift
            ;;
        --vm)
            PACKAGES+=("${VM_PACKAGES[@]}")
            shift
            ;;
        --fuzz)
            PACKAGES+=("${FUZZ_PACKAGES[@]}")
            shift
            ;;
        --stacks)
            PACKAGES+=("${STACKS_PACKAGES[@]}")
            shift
            ;;
        --fleet)
            PACKAGES+=("${FLEET_PACKAGES[@]}")
            shift
            ;;
        -n | --dry-run)
            dry_run=1
            shift
            ;;
        -v | --verbose)
            verbose=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            cmake_args+=("$@")
            break
            ;;
        *)
            echo "setup.sh: error: unknown argument '$1'" >&2
            usage >&2
            exit 64
            ;;
    esac
done

[[ -n $build_dir ]] || die "the build directory must not be empty"

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

logdir=$(mktemp -d "${TMPDIR:-/tmp}/corral-setup.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

# Runs a step quietly: its output goes to a log that is printed in full only when the step fails
# (or always with --verbose). With --dry-run it only prints the command.
run_step() {
    local what=$1
    shift
    if ((dry_run)); then
        printf 'setup.sh: would run:'
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    if ((verbose)); then
        "$@" || die "$what failed (command: $*)"
        return 0
    fi
    local log
    log="$logdir/$(echo "$what" | tr -c 'A-Za-z0-9' '-').log"
    if ! "$@" >"$log" 2>&1; then
        echo "setup.sh: $what failed; its output:" >&2
        sed 's/^/    /' "$log" >&2
        die "$what failed (command: $*)"
    fi
    # Compiler warnings must stay visible even when the build succeeds.
    if grep -q 'warning:' "$log"; then
        echo "setup.sh: $what produced warnings:" >&2
        grep -E -A3 'warning:' "$log" | sed 's/^/    /' >&2
    fi
}

installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [[ $status == *" ok installed" ]]
}

install_dependencies() {
    command -v dpkg-query >/dev/null || die "dpkg-query not found: this script is for Debian 12"
    command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian 12"

    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        info "all dependencies are installed"
        return 0
    fi
    info "installing: ${missing[*]}"

    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "installing packages needs root: run as root or install sudo"
        sudo=(sudo)
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300)
    run_step "apt-get update" "${apt[@]}" update
    run_step "apt-get install" "${apt[@]}" install --no-install-recommends "${missing[@]}"

    if ((!dry_run)); then
        for pkg in "${missing[@]}"; do
            installed "$pkg" || die "package '$pkg' is still not installed after apt-get install"
        done
    fi
}

download_deb() {
    (cd "$1" && apt-get -q download "$2")
}

unpack_promtool() {
    dpkg-deb --fsys-tarfile "$1" | tar -x -O ./usr/bin/promtool >"$2.tmp"
    chmod 0755 "$2.tmp"
    mv "$2.tmp" "$2"
}

# Unpacks promtool into the build directory, unless it is there already or installed. No root needed.
fetch_promtool() {
    local tools=$build_dir/tools deb=$logdir/deb
    if [[ -x $tools/promtool ]] || command -v promtool >/dev/null; then
        return 0
    fi
    info "unpacking promtool from the $PROMTOOL_PACKAGE package into '$tools'"
    run_step "mkdir $tools" mkdir -p "$tools" "$deb"
    # _apt, which downloads for root, must be able to write there.
    run_step "chmod $deb" chmod 0777 "$deb"
    run_step "apt-get download $PROMTOOL_PACKAGE" download_deb "$deb" "$PROMTOOL_PACKAGE"
    if ((!dry_run)); then
        run_step "unpack promtool" unpack_promtool "$(echo "$deb"/*.deb)" "$tools/promtool"
    fi
}

build() {
    info "configuring and building in '$build_dir'${cmake_args[*]:+ (${cmake_args[*]})}"
    run_step "cmake configure" cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}"
    run_step "cmake build" cmake --build "$build_dir" -j"$(nproc)"
    ((dry_run)) || info "build in '$build_dir' done"
}

install_dependencies
fetch_promtool
((deps_only)) || build
