/* SPDX-License-Identifier: MIT */
/* The TCP connections of listening sockets, counted by the kernel (NETLINK_SOCK_DIAG, as ss(8) does):
 * `corral drain --wait` and /metrics' corral_connections. corral stays out of the data path. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Listening addresses one count looks at; those of more sockets are not counted. */
#define SOCK_DIAG_LISTENERS_MAX 64

/* Counts into *ret the connections, in this network namespace, whose local address is one of the TCP
 * listeners' among fds (other sockets are skipped): established, being set up (SYN_RECV) or half-closed by
 * the peer (CLOSE_WAIT), accepted or still queued; a wildcard listener's on any local address. Returns 0, or
 * -errno from the netlink socket (*ret 0). */
int sock_diag_count_connections(const int *fds, size_t n_fds, uint64_t *ret);

/* Pure, for the tests. The kernel's filter program that accepts a socket whose local port is one of ports
 * (host order), written into buf; returns its length, or 0 when it does not fit size (or n is 0). */
size_t sock_diag_port_filter(const uint16_t *ports, size_t n, void *buf, size_t size);
/* Whether a connection of family (AF_INET/AF_INET6) with local port (host order) and address addr (network
 * order, inet_diag's layout) belongs to the listener. */
bool sock_diag_addr_matches(const struct sockaddr_storage *listener, int family, uint16_t port,
                            const uint32_t addr[4]);
