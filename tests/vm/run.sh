#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# VM tier: corral on a real cgroup v2 with the memory controller. The host has a hybrid cgroup layout
# whose memory controller is bound to v1, so memory.current, memory.max and a delegated memory
# controller only exist for real inside a VM: this boots Debian bookworm (systemd 252 as PID 1, pure
# cgroup2) under QEMU TCG, installs this build's corral and test worker as corral@vm.service
# (Delegate=yes) and runs tests/vm/job.sh in the guest. One line per check,
# `vm: <check>: PASS|FAIL|SKIPPED (<detail>)`, timings, then a summary line.
# Exit status: 0 every check passed (SKIPPED ones allowed), 1 a check failed or the VM did not run its
# job, 64 usage.
set -uo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: tests/vm/run.sh [OPTIONS] BUILD_DIR

BUILD_DIR is a corral build directory (holding corral, units/corral@.service and
tests/corral-test-worker). Needs root, qemu-system-x86_64, mmdebstrap and mkfs.ext4
(scripts/setup.sh --deps-only --vm installs them).

Options:
  --keep-logs DIR  copy the guest's console log, the job's output and its journal into DIR (and the
                   job folder's out/, where a job leaves files)
  --rebuild        rebuild the cached image even when it is up to date
  --job FILE       run FILE in the guest instead of tests/vm/job.sh (e.g. tests/vm/job-bench.sh)
  --with PATH      also copy PATH (a file or directory of the repository) into the job folder, at the
                   same relative path; repeatable
  -h, --help       show this help

Environment:
  CORRAL_VM_CACHE          image cache (default /var/cache/corral-vm)
  CORRAL_VM_MIRROR         Debian mirror (default http://deb.debian.org/debian)
  CORRAL_VM_TIMEOUT        seconds the VM may run, boot included (default 360)
  CORRAL_VM_TIMEOUT_SCALE  factor on the guest's own timeouts (default 1; they already allow for
                           TCG being 3-30x slower than the host)
  CORRAL_VM_SMP, CORRAL_VM_MEM  guest CPUs (default 2) and MiB of memory (default 1024)
  CORRAL_VM_ORPHANS        double-forks the podman-orphans check makes (default 10000)
  CORRAL_VM_EXTRA_PACKAGES more packages for the image, comma-separated (a separate image: use its own
                           CORRAL_VM_CACHE, since a build removes the cache's other images)
  CORRAL_VM_JOB_NAME=VALUE passed to the job as NAME=VALUE in job.env
EOF_USAGE
}

keep_logs=''
rebuild=0
build_dir=''
job_file=''
with_paths=()
while (($# > 0)); do
    case $1 in
        --keep-logs)
            keep_logs=${2:?--keep-logs needs a directory}
            shift 2
            ;;
        --rebuild)
            rebuild=1
            shift
            ;;
        --job)
            job_file=${2:?--job needs a file}
            shift 2
            ;;
        --with)
            with_paths+=("${2:?--with needs a path}")
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

VM_CACHE=${CORRAL_VM_CACHE:-/var/cache/corral-vm}
VM_MIRROR=${CORRAL_VM_MIRROR:-http://deb.debian.org/debian}
VM_TIMEOUT=${CORRAL_VM_TIMEOUT:-360}
VM_SCALE=${CORRAL_VM_TIMEOUT_SCALE:-1}
VM_SMP=${CORRAL_VM_SMP:-2}
VM_MEM=${CORRAL_VM_MEM:-1024}
VM_ORPHANS=${CORRAL_VM_ORPHANS:-10000}
# What the guest needs: systemd as PID 1 with udev (device units) and dbus (systemctl), a kernel, the
# libraries corral and the test worker link (libsystemd0 comes with systemd), curl and procps for the job;
# podman, crun (the OCI runtime), netavark (the network stack podman needs installed, though --network host
# uses none of it) and haproxy for the podman checks (job-podman.sh).
VM_PACKAGES=systemd,systemd-sysv,dbus,udev,kmod,linux-image-amd64,initramfs-tools,libinih1,curl,procps,podman,crun,netavark,haproxy
VM_PACKAGES+=${CORRAL_VM_EXTRA_PACKAGES:+,$CORRAL_VM_EXTRA_PACKAGES}
# The initramfs only has to find the root disk: virtio-pci, virtio-blk and ext4 (plus what they depend
# on). 9p for the job folder is loaded from the root fs later.
VM_INITRD_MODULES='virtio_pci virtio_blk ext4'

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
t_start=$SECONDS

vm_log() {
    printf 'vm: %s\n' "$*" >&2
}

die() {
    vm_log "error: $*"
    echo "vm: setup: FAIL ($*)"
    echo "vm: 0 passed, 1 failed, 0 skipped"
    exit 1
}

# ---- inputs ---------------------------------------------------------------------------------------
((EUID == 0)) || die "needs root (mmdebstrap --mode=root, the image cache)"
for tool in qemu-system-x86_64 mmdebstrap mkfs.ext4 flock sha256sum; do
    command -v "$tool" >/dev/null || die "'$tool' not found (scripts/setup.sh --deps-only --vm installs it)"
done
build_dir=$(cd "$build_dir" 2>/dev/null && pwd) || die "no build directory '$build_dir'"
corral_bin=$build_dir/corral
worker_bin=$build_dir/tests/corral-test-worker
for f in "$corral_bin" "$worker_bin"; do
    [[ -x $f ]] || die "'$f' is missing: build first (cmake --build $build_dir)"
done
service_unit=$build_dir/units/corral@.service
if [[ ! -f $service_unit ]]; then
    service_unit=$repo_root/units/corral@.service.in # unconfigured: job.sh substitutes @BINDIR@
fi
socket_unit=$repo_root/units/corral@.socket
job_file=${job_file:-$here/job.sh}
[[ -f $job_file ]] || die "no job script '$job_file'"
for p in "${with_paths[@]}"; do
    [[ -e $repo_root/$p ]] || die "--with '$p': no such path in $repo_root"
done

# ---- the image ------------------------------------------------------------------------------------
# build_image DEST: a bookworm rootfs (mmdebstrap minbase) turned into an ext4 image, with its kernel and
# a tiny initramfs beside it. Everything the guest runs per test comes in through the 9p job folder, so
# the image does not depend on the build and is built once.
build_image() {
    local dest=$1 root="$1/rootfs"
    mkdir -p "$root"
    # shellcheck disable=SC2016 # $1 in the hooks is mmdebstrap's argument (the rootfs)
    mmdebstrap --variant=minbase --mode=root --format=directory --include="$VM_PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d" && echo MODULES=list > "$1/etc/initramfs-tools/conf.d/corral-vm" && printf "%s\n" '"$VM_INITRD_MODULES"' > "$1/usr/share/initramfs-tools/modules.d/corral-vm"' \
        --customize-hook="$here/image-hook.sh \"\$1\"" \
        bookworm "$root" "$VM_MIRROR" || return 1
    local kernel initrd
    kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
    initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
    [[ -f $kernel && -f $initrd ]] || {
        vm_log "no kernel or initramfs in $root/boot"
        return 1
    }
    cp "$kernel" "$dest/vmlinuz" && cp "$initrd" "$dest/initrd.img" || return 1
    # Sparse: 2 GiB of address space, a few hundred MiB on disk.
    truncate -s 2G "$dest/rootfs.img" &&
        mkfs.ext4 -q -F -L corral-vm -E lazy_itable_init=0,lazy_journal_init=0 -d "$root" "$dest/rootfs.img" ||
        return 1
    rm -rf "$root"
}

# The cache key: the builder, its hook and its inputs. Any change rebuilds.
image_key() {
    {
        declare -f build_image
        cat "$here/image-hook.sh"
        printf '%s\n' "$VM_PACKAGES" "$VM_INITRD_MODULES" "$VM_MIRROR"
    } | sha256sum | cut -c1-16
}

mkdir -p "$VM_CACHE" || die "cannot create $VM_CACHE"
# One VM at a time on this machine, and one builder per cache: the whole run holds the lock.
exec 9>"$VM_CACHE/.lock"
if ! flock -n 9; then
    vm_log "waiting for another VM run to finish (lock $VM_CACHE/.lock)"
    flock 9 || die "could not lock $VM_CACHE/.lock"
fi

key=$(image_key)
image_dir=$VM_CACHE/bookworm-$key
t_image=$SECONDS
image_note=cached
if ((rebuild)) || [[ ! -f $image_dir/.complete ]]; then
    vm_log "image: building $image_dir (mmdebstrap bookworm + kernel, then mkfs.ext4; log in $VM_CACHE/build.log)"
    # Stale images from older keys go: each is a few hundred MiB.
    find "$VM_CACHE" -maxdepth 1 -name 'bookworm-*' -type d -exec rm -rf {} +
    tmp_image=$image_dir.tmp.$$
    rm -rf "$tmp_image"
    mkdir -p "$tmp_image"
    if ! build_image "$tmp_image" >"$VM_CACHE/build.log" 2>&1; then
        tail -n 40 "$VM_CACHE/build.log" >&2
        rm -rf "$tmp_image"
        die "building the image failed (see $VM_CACHE/build.log)"
    fi
    touch "$tmp_image/.complete"
    rm -rf "$image_dir"
    mv "$tmp_image" "$image_dir"
    image_note=built
fi
image_secs=$((SECONDS - t_image))
vm_log "image: $image_note in ${image_secs} s ($(du -sh --apparent-size "$image_dir/rootfs.img" | cut -f1) apparent, $(du -sh "$image_dir/rootfs.img" | cut -f1) on disk)"

# ---- the job folder (virtio-9p, mounted on /job in the guest) --------------------------------------
job_dir=$(mktemp -d "${TMPDIR:-/tmp}/corral-vm-job.XXXXXX") || die "mktemp failed"
qemu_pid=''
cleanup() {
    if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null
        sleep 1
        kill -9 "$qemu_pid" 2>/dev/null
        wait "$qemu_pid" 2>/dev/null
    fi
    rm -rf "$job_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! { cp "$corral_bin" "$job_dir/corral" &&
    cp "$worker_bin" "$job_dir/corral-test-worker" &&
    cp "$service_unit" "$job_dir/corral@.service" &&
    cp "$socket_unit" "$job_dir/corral@.socket" &&
    cp "$repo_root/src/message-ids.h" "$job_dir/message-ids.h" &&
    cp "$job_file" "$job_dir/job.sh" &&
    cp "$here/job-podman.sh" "$job_dir/"; }; then
    die "could not fill the job folder $job_dir"
fi
for p in "${with_paths[@]}"; do
    (cd "$repo_root" && cp -a --parents "$p" "$job_dir/") || die "could not copy '$p' into the job folder"
done
printf 'SCALE=%s\nORPHANS=%s\n' "$VM_SCALE" "$VM_ORPHANS" >"$job_dir/job.env"
# CORRAL_VM_JOB_NAME=VALUE: NAME=VALUE for the job.
while IFS='=' read -r -d '' name value; do
    [[ $name == CORRAL_VM_JOB_* ]] && printf '%s=%q\n' "${name#CORRAL_VM_JOB_}" "$value" >>"$job_dir/job.env"
done < <(env -0)

# ---- boot -------------------------------------------------------------------------------------------
console=$job_dir/console.log
# shellcheck disable=SC2054 # the commas are QEMU's option syntax
qemu=(qemu-system-x86_64
    -accel tcg,thread=multi -cpu max,la57=off,svm=off -smp "$VM_SMP" -m "$VM_MEM"
    -nodefaults -display none -no-reboot
    -serial "file:$console" -monitor none
    -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initrd.img"
    -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all panic=-1 quiet mitigations=off systemd.show_status=error"
    -drive "file=$image_dir/rootfs.img,format=raw,if=virtio,snapshot=on"
    -virtfs "local,path=$job_dir,mount_tag=job,security_model=none"
    -device virtio-rng-pci
    -nic none)
t_boot=$SECONDS
"${qemu[@]}" </dev/null >"$job_dir/qemu.log" 2>&1 &
qemu_pid=$!
vm_log "boot: qemu (pid $qemu_pid, TCG, ${VM_SMP} CPUs, ${VM_MEM} MiB) started"

boot_secs=''
timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
    if [[ -z $boot_secs && -f $job_dir/started ]]; then
        boot_secs=$((SECONDS - t_boot))
        vm_log "boot: guest up, job started after ${boot_secs} s"
    fi
    if ((SECONDS - t_boot > VM_TIMEOUT)); then
        vm_log "boot: the VM is still running after ${VM_TIMEOUT} s: killing it"
        timed_out=1
        kill "$qemu_pid" 2>/dev/null
        sleep 2
        kill -9 "$qemu_pid" 2>/dev/null
        break
    fi
    sleep 0.5
done
wait "$qemu_pid" 2>/dev/null
qemu_pid=''
vm_secs=$((SECONDS - t_boot))
[[ -n $boot_secs || ! -f $job_dir/started ]] || boot_secs=$vm_secs

# ---- results ----------------------------------------------------------------------------------------
if [[ -n $keep_logs ]]; then
    mkdir -p "$keep_logs" &&
        cp "$console" "$job_dir/qemu.log" "$keep_logs/" 2>/dev/null
    cp "$job_dir/job.log" "$job_dir/journal.txt" "$keep_logs/" 2>/dev/null
    [[ -d $job_dir/out ]] && cp -r "$job_dir/out" "$keep_logs/"
fi

passed=0 failed=0 skipped=0
if [[ -f $job_dir/job.log ]]; then
    # Progress and diagnostics the job printed, then its check lines.
    grep -v '^vm: [^:]*: \(PASS\|FAIL\|SKIPPED\) (' "$job_dir/job.log" | sed 's/^/  guest| /' >&2
    while IFS= read -r line; do
        echo "$line"
        case $line in
            *': PASS ('*) ((passed++)) ;;
            *': FAIL ('*) ((failed++)) ;;
            *': SKIPPED ('*) ((skipped++)) ;;
        esac
    done < <(grep '^vm: [^:]*: \(PASS\|FAIL\|SKIPPED\) (' "$job_dir/job.log")
fi
job_rc=$(cat "$job_dir/rc" 2>/dev/null || echo none)
if [[ ! -f $job_dir/started ]]; then
    echo "vm: boot: FAIL (the guest never started its job in ${vm_secs} s; console tail below)"
    ((failed++))
elif ((timed_out)) || [[ $job_rc == none ]]; then
    echo "vm: job: FAIL (the job did not finish: $( ((timed_out)) && echo "VM killed after ${VM_TIMEOUT} s" || echo 'no exit code'))"
    ((failed++))
elif [[ $job_rc != 0 ]] && ((failed == 0)); then
    echo "vm: job: FAIL (job.sh exited $job_rc without a failed check)"
    ((failed++))
fi
if ((failed)); then
    vm_log "console (last 40 lines):"
    tail -n 40 "$console" 2>/dev/null | sed 's/^/  console| /' >&2
    [[ -s $job_dir/qemu.log ]] && sed 's/^/  qemu| /' "$job_dir/qemu.log" >&2
fi

total_secs=$((SECONDS - t_start))
echo "vm: timings: image ${image_secs} s ($image_note), boot ${boot_secs:-n/a} s, VM ${vm_secs} s (boot + job + poweroff), total ${total_secs} s"
echo "vm: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
