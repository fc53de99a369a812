/* SPDX-License-Identifier: MIT */
/* The listening sockets corral holds for its whole life and hands to every worker: taken from systemd
 * (LISTEN_FDS) or bound from --listen specs. corral never accept()s on them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "util.h"

typedef enum ListenKind {
        LISTEN_TCP,
        LISTEN_UDP,
        LISTEN_UNIX_STREAM,
        _LISTEN_KIND_MAX,
        _LISTEN_KIND_INVALID = -EINVAL,
} ListenKind;

/* A parsed --listen spec. Forms:
 *   127.0.0.1:8080   [::1]:8080   tcp:127.0.0.1:8080     TCP, IPv4 or IPv6 (literal addresses only)
 *   udp:127.0.0.1:5353   udp:[::1]:5353                   UDP
 *   unix:/run/app.sock   unix:/run/app.sock:0660          UNIX stream socket, optional octal mode
 * An optional "NAME=" prefix (e.g. "http=127.0.0.1:8080") sets the name passed in LISTEN_FDNAMES;
 * the default name is "listen". */
typedef struct ListenSpec {
        ListenKind kind;
        char name[64];
        struct sockaddr_storage addr; /* TCP/UDP: sockaddr_in or sockaddr_in6, port set */
        socklen_t addr_len;
        char path[108];                /* UNIX: the path */
        unsigned mode;                 /* UNIX: file mode, 0 = leave as umask gives */
} ListenSpec;

/* Parses one spec. Pure. Returns 0, or -EINVAL with *ret_reason (static string) saying what is wrong. */
int listen_spec_parse(const char *s, ListenSpec *ret, const char **ret_reason);

typedef struct ListenSocket {
        int fd;          /* close-on-exec, owned */
        char *name;      /* LISTEN_FDNAMES entry */
        int family;      /* AF_INET, AF_INET6, AF_UNIX */
        int type;        /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
        char *unix_path; /* UNIX sockets we bound ourselves: unlinked by socket_set_done() */
} ListenSocket;

typedef struct SocketSet {
        ListenSocket *sockets;
        size_t n;
} SocketSet;

/* Takes the sockets systemd passed (sd_listen_fds_with_names), checks each is a socket of a supported
 * kind (sd_is_socket) and keeps it close-on-exec. Returns the number of sockets taken (0 when systemd
 * passed none), or a negative errno with *ret_error (allocated) naming the bad fd. */
int socket_set_from_systemd(SocketSet *ret, char **ret_error);

/* Binds and listens on every spec, in order. Fails as a whole, closing whatever it opened, with
 * *ret_error (allocated) like "Failed to bind 127.0.0.1:8080: Address already in use". */
int socket_set_bind(char *const *specs, SocketSet *ret, char **ret_error);

/* Closes every socket and unlinks the UNIX socket paths this process bound. */
void socket_set_done(SocketSet *s);

/* Moves the sockets named name out of s into *ret (a new set, possibly empty). Returns how many moved, or
 * -ENOMEM with s unchanged. */
int socket_set_take(SocketSet *s, const char *name, SocketSet *ret);

/* "name1:name2:..." for LISTEN_FDNAMES; NULL on OOM. */
char *socket_set_names(const SocketSet *s);
