# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers of tests/e2e/run.sh and tests/e2e/container.sh: the cached rootfs, one container (its own
# cgroups, its teardown), scenario results and small assertion/measurement utilities. Sourced, not run.

E2E_MIRROR=${CORRAL_E2E_MIRROR:-http://deb.debian.org/debian}
E2E_SECURITY_MIRROR=${CORRAL_E2E_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
E2E_BACKPORTS_MIRROR=${CORRAL_E2E_BACKPORTS_MIRROR:-$E2E_MIRROR}
# What the scenarios need inside: systemd as PID 1 (journald, systemctl), dbus for systemctl, the
# libraries corral and the test worker link (libsystemd0 comes with systemd), and a few tools for
# debugging a failed run. The load client and the measurements run on the host in the container's
# network namespace (nsenter -n), so the rootfs needs no python3.
E2E_PACKAGES=systemd,systemd-sysv,dbus,libinih1,curl,procps,iproute2
# The "entrypoint" flavour (tests/e2e/container.sh): no systemd, corral itself is PID 1. Only the
# libraries corral and the test worker link, and python3-minimal for the worker that double-forks.
E2E_ENTRYPOINT_PACKAGES=libsystemd0,libinih1,python3-minimal
# Bump to force a rebuild of every cached rootfs.
E2E_ROOTFS_FORMAT=1

e2e_log() { printf 'e2e: %s\n' "$*" >&2; }

# rootfs_packages FLAVOUR: what mmdebstrap includes for FLAVOUR (252, 254 or entrypoint).
rootfs_packages() {
    if [[ $1 == entrypoint ]]; then
        printf '%s\n' "$E2E_ENTRYPOINT_PACKAGES"
    else
        printf '%s\n' "$E2E_PACKAGES"
    fi
}

# rootfs_key FLAVOUR: what a cached rootfs was built from; a different key means rebuild.
rootfs_key() {
    printf 'format=%s flavour=%s packages=%s mirror=%s security=%s' "$E2E_ROOTFS_FORMAT" "$1" \
        "$(rootfs_packages "$1")" "$E2E_MIRROR" "$E2E_SECURITY_MIRROR"
    [[ $1 != 254 ]] || printf ' backports=%s' "$E2E_BACKPORTS_MIRROR"
    printf '\n'
}

# build_rootfs FLAVOUR DEST: FLAVOUR 252 is plain bookworm (+updates, security); 254 adds
# bookworm-backports and pins the systemd packages to it; entrypoint is plain bookworm without systemd.
# Builds next to DEST and renames, so an interrupted build never leaves a half rootfs behind a valid stamp.
build_rootfs() {
    local flavour=$1 dest=$2 tmp
    tmp="$dest.tmp.$$"
    rm -rf "$tmp"
    local mirrors=("$E2E_MIRROR"
        "deb $E2E_MIRROR bookworm-updates main"
        "deb $E2E_SECURITY_MIRROR bookworm-security main")
    local hooks=()
    if [[ $flavour == 254 ]]; then
        mirrors+=("deb $E2E_BACKPORTS_MIRROR bookworm-backports main")
        # Only the systemd family from backports; everything else stays bookworm.
        # shellcheck disable=SC2016 # $1 is the hook's argument, expanded by mmdebstrap's shell
        hooks+=(--setup-hook='mkdir -p "$1/etc/apt/preferences.d" && printf "%s\n" "Package: systemd systemd-* libsystemd* libudev* udev libnss-systemd libpam-systemd" "Pin: release n=bookworm-backports" "Pin-Priority: 990" > "$1/etc/apt/preferences.d/corral-e2e-backports"')
    fi
    # An empty machine-id makes systemd generate one at boot (nspawn passes one in anyway); no
    # documentation, no apt lists: smaller and faster.
    # shellcheck disable=SC2016 # as above
    if ! mmdebstrap --variant=minbase --mode=root --format=directory \
        --include="$(rootfs_packages "$flavour")" "${hooks[@]}" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -rf "$1/var/lib/apt/lists"/*; : > "$1/etc/machine-id"' \
        bookworm "$tmp" "${mirrors[@]}"; then
        rm -rf "$tmp"
        return 1
    fi
    rootfs_key "$flavour" >"$tmp/.corral-e2e-key"
    rm -rf "$dest"
    mv "$tmp" "$dest"
}

# ensure_rootfs FLAVOUR: prints the path of a cached rootfs, building it when missing or stale.
ensure_rootfs() {
    local flavour=$1 dest="$E2E_CACHE/bookworm-systemd$1"
    [[ $flavour != entrypoint ]] || dest=$E2E_CACHE/bookworm-entrypoint
    mkdir -p "$E2E_CACHE"
    (
        flock 9
        if [[ -f $dest/.corral-e2e-key && $(cat "$dest/.corral-e2e-key") == "$(rootfs_key "$flavour")" ]]; then
            e2e_log "rootfs $flavour: cached in $dest"
            exit 0
        fi
        e2e_log "rootfs $flavour: building in $dest (mmdebstrap)"
        local t0=$SECONDS
        build_rootfs "$flavour" "$dest" >"$E2E_CACHE/build-$flavour.log" 2>&1 || {
            tail -n 30 "$E2E_CACHE/build-$flavour.log" >&2
            exit 1
        }
        e2e_log "rootfs $flavour: built in $((SECONDS - t0)) s"
    ) 9>"$E2E_CACHE/.lock-$flavour" || return 1
    printf '%s\n' "$dest"
}

# ---- scenarios: results, checks, timing -----------------------------------------------------------
E2E_TAG=e2e # what each result line starts with
results=()  # "scenario=PASS|FAIL|SKIP"
n_fail=0 n_skip=0

result() { # SCENARIO PASS|FAIL|SKIP FIGURES
    printf '%s: %s: %s (%s)\n' "$E2E_TAG" "$1" "$2" "$3"
    results+=("$1=$2")
    case $2 in
        PASS) ;;
        SKIP) n_skip=$((n_skip + 1)) ;;
        *) n_fail=$((n_fail + 1)) ;;
    esac
}

# summary_exit TOTAL_SECONDS: the summary line, then exit 0 (all passed), 2 (none failed, some skipped)
# or 1.
summary_exit() {
    if ((n_fail == 0 && n_skip == 0 && ${#results[@]} > 0)); then
        printf '%s: summary: PASS (%d scenarios passed in %s s: %s)\n' "$E2E_TAG" "${#results[@]}" "$1" "${results[*]}"
        exit 0
    fi
    if ((n_fail == 0 && ${#results[@]} > n_skip)); then
        printf '%s: summary: INCOMPLETE (%d passed, %d skipped, none failed, in %s s: %s)\n' "$E2E_TAG" \
            $((${#results[@]} - n_skip)) "$n_skip" "$1" "${results[*]}"
        exit 2
    fi
    printf '%s: summary: FAIL (%d of %d failed in %s s: %s)\n' "$E2E_TAG" "$n_fail" "${#results[@]}" "$1" \
        "${results[*]}"
    exit 1
}

now_us() { echo "${EPOCHREALTIME/./}"; } # realtime in µs: the same clock inside the container
now() { now_us; }
elapsed() { # START_US: seconds since, with ms
    local d=$(($(now_us) - $1))
    printf '%d.%03d\n' $((d / 1000000)) $((d % 1000000 / 1000))
}

# Scenario bookkeeping: check WHAT CMD... records a failure (and says what) without stopping.
fails=() t_scenario=0
begin() {
    fails=()
    t_scenario=$(now)
}
check() {
    local what=$1
    shift
    if ! "$@"; then
        fails+=("$what")
        e2e_log "  check failed: $what"
    fi
}
finish() { # SCENARIO FIGURES
    local figures
    figures="$2; scenario $(elapsed "$t_scenario") s"
    ((${#fails[@]} == 0)) || figures+="; failed: $(IFS=';'; echo "${fails[*]}")"
    result "$1" "$( ((${#fails[@]} == 0)) && echo PASS || echo FAIL)" "$figures"
}

eq() { [[ $1 == "$2" ]] || { e2e_log "    expected '$2', got '$1'"; return 1; }; }

wait_until() { # SECONDS CMD...: polls CMD every 100 ms
    local end=$(($(now_us) + $1 * 1000000))
    shift
    while ! "$@" >/dev/null 2>&1; do
        (($(now_us) < end)) || return 1
        sleep 0.1
    done
}

# ---- one container at a time ---------------------------------------------------------------------
CT_NAME='' CT_PID='' CT_LEADER='' CT_DIR='' CT_BOOTED=''
CT_CGROUPS=()

# cgroup_mount ID CONTROLLERS: the host mount point of the hierarchy a /proc/self/cgroup line names.
cgroup_mount() {
    local id=$1 ctrls=$2 mnt type opts rest
    while read -r _ mnt type opts rest; do
        [[ $mnt == /sys/fs/cgroup* ]] || continue
        if [[ $id == 0 ]]; then
            [[ $type == cgroup2 ]] && { printf '%s\n' "$mnt"; return 0; }
        elif [[ $type == cgroup && ,$opts, == *,"${ctrls%%,*}",* ]]; then
            printf '%s\n' "$mnt"
            return 0
        fi
    done </proc/self/mounts
    return 1
}

# make_cgroups NAME: a child cgroup of this process's own cgroup in every hierarchy, recorded in
# CT_CGROUPS for the teardown. nspawn --keep-unit puts payload/ and supervisor/ below them.
make_cgroups() {
    local name=$1 id ctrls path mnt dir
    while IFS=: read -r id ctrls path; do
        mnt=$(cgroup_mount "$id" "$ctrls") || continue
        dir="$mnt${path%/}/$name"
        mkdir "$dir" || return 1
        CT_CGROUPS+=("$dir")
        if [[ -f $dir/cpuset.cpus ]]; then # v1 cpuset: an empty set refuses every process
            cat "$dir/../cpuset.cpus" >"$dir/cpuset.cpus"
            cat "$dir/../cpuset.mems" >"$dir/cpuset.mems"
        fi
    done </proc/self/cgroup
}

# alive PID: exists and is not a zombie.
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

wait_gone() { # PID SECONDS
    local end=$((SECONDS + $2))
    while alive "$1"; do
        ((SECONDS < end)) || return 1
        sleep 0.1
    done
}

# start_nspawn NAME NSPAWN_ARGS...: `systemd-nspawn --register=no --keep-unit -M NAME NSPAWN_ARGS...`,
# started from child cgroups of this process's own (make_cgroups), its output in $CT_DIR/console.log.
# Sets CT_NAME, CT_DIR, CT_PID (nspawn) and, once it exists, CT_LEADER (the container's PID 1).
start_nspawn() {
    CT_NAME=$1
    shift
    CT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/$CT_NAME.XXXXXX")
    make_cgroups "$CT_NAME" || {
        e2e_log "cannot create cgroups for the container"
        return 1
    }
    local cg
    (
        for cg in "${CT_CGROUPS[@]}"; do
            echo "$BASHPID" >"$cg/cgroup.procs" || exit 1
        done
        exec systemd-nspawn --register=no --keep-unit -M "$CT_NAME" "$@" \
            </dev/null >"$CT_DIR/console.log" 2>&1
    ) &
    CT_PID=$!
    local end=$((SECONDS + 30)) c
    while [[ -z $CT_LEADER ]]; do
        if ! alive "$CT_PID" || ((SECONDS >= end)); then
            e2e_log "container $CT_NAME did not start; console:"
            tail -n 30 "$CT_DIR/console.log" >&2
            return 1
        fi
        for c in $(pgrep -P "$CT_PID"); do
            if grep -qP '^NSpid:\t\d+\t1$' "/proc/$c/status" 2>/dev/null; then
                CT_LEADER=$c
            fi
        done
        [[ -n $CT_LEADER ]] || sleep 0.1
    done
}

# boot_container FLAVOUR ROOTFS BUILD_DIR SRC_DIR DEB_DIR: boots ROOTFS with systemd as PID 1 (a tmpfs
# overlay on top, so the cached tree is never written), the build and source trees and the directory of
# the built packages bound read-only at /opt/corral-build, /opt/corral-src and /opt/corral-debs. Sets
# CT_PID (nspawn) and CT_LEADER (its PID 1).
boot_container() {
    local flavour=$1 rootfs=$2 build=$3 src=$4 debs=$5
    CT_BOOTED=1
    start_nspawn "corral-e2e-$flavour-$$" --boot --private-network --volatile=overlay \
        --console=read-only -D "$rootfs" \
        --bind-ro="$build:/opt/corral-build" --bind-ro="$src:/opt/corral-src" \
        --bind-ro="$debs:/opt/corral-debs" \
        --setenv=SYSTEMD_LOG_COLOR=0 || return 1
    # systemctl needs PID 1's private socket, which exists a moment after the leader does.
    local state='' end=$((SECONDS + 90))
    while ((SECONDS < end)); do
        state=$(timeout 60 nsenter -t "$CT_LEADER" -a -- systemctl is-system-running --wait 2>&1) || true
        case $state in
            running | degraded | stopping | maintenance) break ;;
        esac
        sleep 0.2
    done
    if [[ $state != running && $state != degraded ]]; then
        e2e_log "container $CT_NAME: systemd did not finish booting (state '$state'); console:"
        tail -n 40 "$CT_DIR/console.log" >&2
        return 1
    fi
    [[ $state == running ]] || e2e_log "container $CT_NAME is '$state': $(ct systemctl --failed --plain --no-legend | tr '\n' ' ')"
}

# teardown_container: poweroff (a booted container), then SIGTERM and SIGKILL the nspawn this script
# started, kill what is left in its cgroups, remove them depth-first. Safe to call twice and from a trap.
teardown_container() {
    local rc=0
    if [[ -n $CT_PID ]]; then
        if alive "$CT_PID" && [[ -n $CT_LEADER && -n $CT_BOOTED ]]; then
            timeout 10 nsenter -t "$CT_LEADER" -a -- systemctl poweroff --no-block >/dev/null 2>&1 || true
            wait_gone "$CT_PID" 30 || e2e_log "container $CT_NAME: no poweroff within 30 s, sending SIGTERM"
        fi
        if alive "$CT_PID"; then
            kill -TERM "$CT_PID" 2>/dev/null || true
            wait_gone "$CT_PID" 10 || {
                e2e_log "container $CT_NAME: nspawn ignored SIGTERM, sending SIGKILL"
                kill -KILL "$CT_PID" 2>/dev/null || true
                rc=1
            }
        fi
        wait "$CT_PID" 2>/dev/null || true
    fi
    local cg i pids pass
    for ((i = ${#CT_CGROUPS[@]} - 1; i >= 0; i--)); do
        cg=${CT_CGROUPS[i]}
        [[ -d $cg ]] || continue
        for pass in 1 2 3 4 5 6 7 8 9 10; do
            pids=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
            [[ -n $pids ]] || break
            ((pass > 1)) || { e2e_log "killing processes left in $cg: ${pids//$'\n'/ }"; rc=1; }
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.2
        done
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
        if [[ -d $cg ]]; then
            e2e_log "could not remove cgroup $cg"
            rc=1
        fi
    done
    CT_CGROUPS=()
    if [[ -n $CT_NAME && -d /run/systemd/nspawn/propagate/$CT_NAME ]]; then
        rm -rf "/run/systemd/nspawn/propagate/$CT_NAME"
    fi
    if [[ -n $CT_DIR && -d $CT_DIR ]]; then
        [[ -z ${E2E_KEEP_LOGS:-} ]] || cp "$CT_DIR/console.log" "$E2E_KEEP_LOGS/console-$CT_NAME.log" 2>/dev/null || true
        rm -rf "$CT_DIR"
    fi
    CT_PID='' CT_LEADER='' CT_NAME='' CT_DIR='' CT_BOOTED=''
    return $rc
}

# ct CMD...: run CMD inside the container (every namespace, its root, a clean environment).
ct() {
    nsenter -t "$CT_LEADER" -a -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb "$@"
}

# ctnet CMD...: a host program in the container's network namespace only.
ctnet() { nsenter -t "$CT_LEADER" -n -- "$@"; }
