/* SPDX-License-Identifier: MIT */
/* Strict value parsers shared by the config file and the command line. Pure: no I/O, no logging.
 * Every parser returns 0 and writes *ret only on success, -EINVAL for malformed input and -ERANGE for
 * values out of range; nothing is accepted with trailing garbage. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util.h"

/* Unsigned decimal integer within [min, max]. No sign, no leading or trailing spaces. */
int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret);

/* Duration in systemd's style: "30s", "500ms", "1min 30s", "2h", "1d", "10us"; a bare number is seconds
 * (may have a fraction: "1.5"). Units: us usec, ms msec, s sec, m min, h hr, d day. */
int parse_usec(const char *s, usec_t *ret);

/* Size with binary suffixes: "512M", "1G", "64K", "1.5G"; a bare number is bytes. K M G T (base 1024),
 * optionally followed by "B" or "iB". */
int parse_size(const char *s, uint64_t *ret);

/* "yes/no/true/false/on/off/1/0". Returns 0 or 1 in *ret. */
int parse_boolean(const char *s, bool *ret);

/* Splits a command line into words: whitespace separated, "double" and 'single' quotes group, a
 * backslash escapes the next character in and outside double quotes. No variable expansion. Returns
 * -EINVAL for an unterminated quote or an empty command. */
int parse_command_line(const char *s, char ***ret);

/* A signal by name or number: "TERM", "SIGTERM", "15", "RTMIN+2", "SIGRTMAX-1" (realtime numbers are
 * glibc's, read at run time). Returns the signal or -EINVAL. The reverse is signal_to_string() (util.h). */
int signal_from_string(const char *s);

/* An instance name (`--name`, [Service] Name=): 1 to 64 of A-Z a-z 0-9 _ . @ : -, not starting with '.' or
 * '-'. It names a directory below /run/corral, a column of `corral list` and a journal identifier, so
 * nothing that a path, a shell word or a table would treat specially. Pure. */
#define INSTANCE_NAME_MAX 64
bool instance_name_is_valid(const char *s);

typedef enum ListenKind {
        LISTEN_TCP,
        LISTEN_UDP,
        LISTEN_UNIX_STREAM,
        _LISTEN_KIND_MAX,
        _LISTEN_KIND_INVALID = -EINVAL,
} ListenKind;

/* A parsed listen address (--listen, Listen=, [Health] Listen=); sockets.c binds it. Forms:
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

/* Parses one spec. Returns 0, or -EINVAL with *ret_reason (static string) saying what is wrong. */
int listen_spec_parse(const char *s, ListenSpec *ret, const char **ret_reason);
