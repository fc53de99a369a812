/* SPDX-License-Identifier: MIT */
/* Balance=reuseport's even steering: an eBPF SK_REUSEPORT program per SO_REUSEPORT group that hands new
 * connections to the ready slots' sockets in turn (round robin).
 * Loading eBPF needs CAP_BPF (root); without it, slot-sockets.c steers with a classic BPF program, which
 * keeps no state and cannot place connections evenly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct SteerBpf SteerBpf;

/* Slots the programs can steer to: 0..STEER_BPF_SLOTS_MAX-1. */
#define STEER_BPF_SLOTS_MAX 4096U

/* Loads one program for each of n_groups groups, with their maps. Returns 0 and the object in *ret, or
 * -errno (-EPERM without the privilege; -EINVAL or another error from a kernel without what it needs). */
int steer_bpf_new(size_t n_groups, SteerBpf **ret);
SteerBpf *steer_bpf_free(SteerBpf *s);

/* Attaches group's program to the group fd belongs to (SO_ATTACH_REUSEPORT_EBPF): it replaces any program
 * there. Returns 0 or -errno. */
int steer_bpf_attach(SteerBpf *s, size_t group, int fd);

/* Puts slot's socket of group (fd) where the group's program finds it (once: a socket stays there until
 * it closes, when the kernel takes it out). slot is below STEER_BPF_SLOTS_MAX. Returns 0 or -errno. */
int steer_bpf_add(SteerBpf *s, size_t group, unsigned slot, int fd);

/* The programs hand new connections to slots[0..n) in turn from now on (n at most STEER_BPF_SLOTS_MAX; 0:
 * the kernel's hash decides, as without a program). Each slot's sockets must have been added. Returns 0 or
 * -errno (the programs keep what they had). */
int steer_bpf_set_ready(SteerBpf *s, const unsigned *slots, unsigned n);

/* The new connections group's program handed to slot's socket so far (they only grow; a slot keeps its
 * count across its workers, as it keeps its socket). */
uint64_t steer_bpf_count(const SteerBpf *s, size_t group, unsigned slot);

/* Whether the programs also place what waits in a socket of the group when it closes (Linux 5.14:
 * BPF_SK_REUSEPORT_SELECT_OR_MIGRATE): a slot closed at a scale-down hands its queue to a ready slot. */
bool steer_bpf_migrates(const SteerBpf *s);
