/* SPDX-License-Identifier: MIT */
/* The listening sockets corral holds for its whole life and hands to every worker: taken from systemd
 * (LISTEN_FDS) or bound from --listen specs. corral never accept()s on them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "unix-path.h"
#include "util.h"

typedef struct ListenSocket {
        int fd;          /* close-on-exec, owned */
        char *name;      /* LISTEN_FDNAMES entry */
        int family;      /* AF_INET, AF_INET6, AF_UNIX */
        int type;        /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
        char *unix_path; /* UNIX sockets we bound ourselves: unlinked by socket_set_done()... */
        UnixPathId unix_id; /* ...while the file there is still the one we bound */
} ListenSocket;

typedef struct SocketSet {
        ListenSocket *sockets;
        size_t n;
} SocketSet;

/* Takes the sockets systemd passed (sd_listen_fds_with_names), checks each is a socket of a supported
 * kind (sd_is_socket) and keeps it close-on-exec. Returns the number of sockets taken (0 when systemd
 * passed none), or a negative errno with *ret_error (allocated) naming the bad fd. */
int socket_set_from_systemd(SocketSet *ret, char **ret_error);

/* Binds and listens on every spec, in order; with reuseport (Balance=reuseport), the TCP ones with
 * SO_REUSEPORT (config_check_balance() has refused any other kind by then). Fails as a whole, closing whatever it opened, with
 * *ret_error (allocated) like "Failed to bind 127.0.0.1:8080: Address already in use". */
int socket_set_bind(char *const *specs, bool reuseport, SocketSet *ret, char **ret_error);

/* Balance=reuseport: one more listening socket in l's SO_REUSEPORT group (l bound with reuseport): same
 * family and address, its own accept queue. Returns 0 and the fd (close-on-exec, the caller's), or -errno
 * (-EPROTONOSUPPORT: l is not a TCP socket). */
int listen_socket_bind_sibling(const ListenSocket *l, int *ret_fd);

/* Balance=reuseport on a socket systemd passed: it must be TCP, have SO_REUSEPORT (ReusePort=yes in the
 * .socket unit), and belong to corral's own user, the only one the kernel lets join its group. Returns 0,
 * or -errno with *ret_error (allocated) saying which and what to do. */
int listen_socket_check_reuseport(const ListenSocket *l, char **ret_error);

/* Closes every socket and unlinks the UNIX socket paths this process bound. */
void socket_set_done(SocketSet *s);

/* Moves the sockets named name (every one: NULL) out of s to the end of *to, renamed to rename unless that
 * is NULL. Returns how many moved, or -ENOMEM with both sets as they were. */
int socket_set_take(SocketSet *s, const char *name, const char *rename, SocketSet *to);

/* The first socket of s named name, or NULL. */
const ListenSocket *socket_set_find(const SocketSet *s, const char *name);

/* "name1:name2:..." for LISTEN_FDNAMES; NULL on OOM. */
char *socket_set_names(const SocketSet *s);

/* The address s is bound to, written as a --listen spec names it: "127.0.0.1:8080", "[::1]:8080",
 * "udp:127.0.0.1:5353", "unix:/run/app.sock", "unix:@name" (abstract). Returns buf (at least
 * SOCKET_ADDRESS_MAX bytes), or NULL when getsockname() fails or the family is none of these. */
#define SOCKET_ADDRESS_MAX 128
const char *listen_socket_address(const ListenSocket *s, char *buf, size_t size);

/* The connections waiting in a TCP listener's accept queue and the queue's limit, as the kernel counts them
 * (TCP_INFO; ss -lnt's Recv-Q and Send-Q). Returns 0, -EOPNOTSUPP for anything but a TCP stream socket, or
 * -errno. */
int listen_socket_queue(const ListenSocket *s, uint32_t *ret_queued, uint32_t *ret_backlog);
/* The same for a TCP listener's fd (no check of its kind beyond the kernel's). */
int listen_fd_queue(int fd, uint32_t *ret_queued, uint32_t *ret_backlog);

/* "stream", "datagram" or "seqpacket". */
const char *listen_socket_type(const ListenSocket *s);
