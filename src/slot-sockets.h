/* SPDX-License-Identifier: MIT */
/* Balance=reuseport: each slot's own listening sockets, one per socket of the group corral bound, in the
 * same SO_REUSEPORT groups. Slot 0 has the group's own sockets; another slot's are bound the first time a
 * worker of that slot starts and kept for every later worker of the slot (a replacement inherits the very
 * accept queue), until the slot is closed (scale-down). */
#pragma once

#include "sockets.h"

typedef struct SlotSockets SlotSockets;

/* group: the sockets bound with SO_REUSEPORT (socket_set_bind(..., true, ...)), and group_fds their fds in
 * order (slot 0's), both borrowed for the object's life. NULL on OOM. */
SlotSockets *slot_sockets_new(const SocketSet *group, const int *group_fds);
SlotSockets *slot_sockets_free(SlotSockets *s);

/* The slot's sockets in the group's order (group->n of them), bound now if the slot has none yet. Returns
 * 0 and the fds (owned by s, valid until the slot is closed), or -errno from binding. */
int slot_sockets_get(SlotSockets *s, unsigned slot, const int **ret);

/* How many slots may have sockets: one more than the highest slot bound so far. */
unsigned slot_sockets_n(const SlotSockets *s);

/* Loads and attaches the even steering (steer-bpf.h: the ready slots in turn, eBPF, needs CAP_BPF) for
 * slot_sockets_steer() to use from now on. Returns 1 when it also moves what waits in a slot's sockets to a
 * ready slot's as they close (steer_bpf_migrates()), 0 when it cannot, or -errno (then it steers with
 * classic BPF). */
int slot_sockets_even(SlotSockets *s);

/* Steers new connections to the ready slots: ready[k] (n entries) says whether slot k has a worker that
 * accepts. With the even steering, each new connection goes to the next ready slot in turn. Without it,
 * while some slots with sockets are not ready, a classic BPF program on the groups
 * (SO_ATTACH_REUSEPORT_CBPF, no privileges needed) picks one of the ready slots' sockets at random, so
 * that nothing new waits behind a worker that is starting or held back after crashes; with every slot
 * ready (or none) the kernel's hash decides, as without a program. Does nothing when the ready set is the
 * one already steered to. Returns 0 or -errno (the groups keep the program they had). */
int slot_sockets_steer(SlotSockets *s, const bool *ready, unsigned n);

/* The accept queues of the slot's sockets and their limits, into queued[i] and backlog[i] for each socket
 * i of the group (group->n of them). Returns 0, -ENOENT when the slot has no sockets, or -errno. */
int slot_sockets_queues(const SlotSockets *s, unsigned slot, uint32_t *queued, uint32_t *backlog);

/* The new connections the even steering handed to the slot's sockets so far, all together. Returns 0, or
 * -EOPNOTSUPP without the even steering (the kernel's hash and the classic program count nothing). */
int slot_sockets_connections(const SlotSockets *s, unsigned slot, uint64_t *ret);

/* Closes the slot's sockets (not slot 0's, which are the group's): connections still waiting in them move
 * to a ready slot's where the even steering migrates (slot_sockets_even() returned 1), or to another socket
 * of the group by hash with net.ipv4.tcp_migrate_req=1; otherwise the kernel resets them. */
void slot_sockets_close(SlotSockets *s, unsigned slot);
