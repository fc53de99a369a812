#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# mmdebstrap --customize-hook of tests/vm/run.sh, run on the host with the guest's rootfs as $1: the
# unit that runs the job from the 9p folder and powers off, and what makes the guest boot fast and quiet
# (no gettys, no first-boot prompts, a kernel without the drivers a VM never loads).
set -euo pipefail
root=${1:?usage: image-hook.sh ROOTFS}

printf 'corral-vm\n' >"$root/etc/hostname"
# A fixed machine-id: no first-boot logic (the disk is a throw-away snapshot at every boot anyway).
printf '%s\n' 5c0a1c2b3d4e4f5a8b9c0d1e2f3a4b5c >"$root/etc/machine-id"
printf '/dev/vda / ext4 rw,noatime 0 1\n' >"$root/etc/fstab"

# The job: mount the 9p folder, say "started" (the host times the boot with it), run job.sh with its
# output in job.log, write its exit status to rc, power off. FailureAction= powers off on any failure.
install -d "$root/usr/local/sbin" "$root/job"
cat >"$root/usr/local/sbin/corral-vm-job" <<'EOF'
#!/bin/bash
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 job /job || {
    echo "corral-vm-job: cannot mount the 9p job folder" >/dev/ttyS0
    exit 1
}
date +%s.%N >/job/started
bash /job/job.sh >/job/job.log 2>&1
echo $? >/job/rc.tmp
journalctl -b --no-pager -o short-monotonic >/job/journal.txt 2>&1
mv /job/rc.tmp /job/rc
sync
EOF
chmod 0755 "$root/usr/local/sbin/corral-vm-job"
cat >"$root/etc/systemd/system/corral-vm-job.service" <<'EOF'
[Unit]
Description=corral VM test job (tests/vm/job.sh from the 9p folder)
After=multi-user.target
FailureAction=poweroff-force
SuccessAction=poweroff

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/corral-vm-job
TimeoutStartSec=infinity
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
EOF
install -d "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/corral-vm-job.service "$root/etc/systemd/system/multi-user.target.wants/"

# Nothing waits for a login, a network, a clock or first-boot answers; no daemon the job starts itself
# (haproxy) or never uses (podman's API and timers, which would also create podman's database with the
# default storage driver before the job configures vfs) runs at boot.
for unit in getty.target serial-getty@ttyS0.service getty@tty1.service systemd-firstboot.service \
    systemd-networkd-wait-online.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer fstrim.timer man-db.timer haproxy.service podman.socket podman.service podman-auto-update.timer \
    podman-auto-update.service podman-restart.service podman-clean-transient.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# A smaller kernel module tree: faster mkfs and a smaller image. The VM has virtio disks, 9p and a
# serial console only.
for kdir in "$root"/lib/modules/*; do
    [[ -d $kdir/kernel ]] || continue
    rm -rf "$kdir"/kernel/drivers/{gpu,media,net/wireless,net/ethernet,infiniband,staging,bluetooth,iio,isdn,scsi,usb,hid,input,video,platform,md,nvme,mmc,hwmon,mfd,power,thunderbolt,target,edac,misc,net/can} \
        "$kdir"/kernel/{sound,net/wireless,net/mac80211,net/bluetooth}
    chroot "$root" depmod -a "$(basename "$kdir")"
done
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
