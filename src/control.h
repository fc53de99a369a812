/* SPDX-License-Identifier: MIT */
/* The control socket (AF_UNIX SOCK_SEQPACKET, mode 0600, peer checked with SO_PEERCRED) and its client,
 * behind `corral reload [--wait]`, `corral status [--json]`, `corral recycle SLOT`, `corral drain|undrain`.
 * A request is one message of text. A reply is text in one or more messages of at most CONTROL_MESSAGE_MAX
 * bytes, ended by a NUL byte (text never holds one), so a client knows it has all of it; it starts with
 * "ok", "degraded" or "error: ", and may hold "warning: " lines after the first. Before the reply, a held
 * connection (`reload --wait`) gets a keepalive, a message of the single byte CONTROL_KEEPALIVE, every
 * 0.4 s. The client is control-client.c. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "unix-path.h"
#include "util.h"

typedef enum ControlCommand {
        CONTROL_RELOAD,      /* start a reload, answer at once */
        CONTROL_RELOAD_WAIT, /* start a reload, answer when it ended */
        CONTROL_STATUS,
        CONTROL_STATUS_JSON,
        CONTROL_RECYCLE, /* argument: slot */
        CONTROL_DRAIN,   /* /health answers 503 from now on; workers untouched */
        CONTROL_UNDRAIN,
        CONTROL_SUMMARY, /* one line for `corral list` */
        CONTROL_UPGRADE, /* exec the binary anew in place; answered by the new image */
        CONTROL_CONNECTIONS, /* "ok: N": connections open on the workers' TCP addresses (`drain --wait`) */
        _CONTROL_COMMAND_MAX,
        _CONTROL_COMMAND_INVALID = -EINVAL,
} ControlCommand;

/* Longest request; longest message of a reply (smaller where the socket's send buffer is); longest reply the
 * client takes. */
#define CONTROL_REQUEST_MAX 256
#define CONTROL_MESSAGE_MAX (32 * 1024)
#define CONTROL_REPLY_SIZE_MAX (64 * 1024 * 1024)
/* ASCII SYN, "synchronous idle": never the first byte of a reply. */
#define CONTROL_KEEPALIVE '\026'

/* Parses a request ("reload", "reload --wait", "status", "status --json", "recycle 3", "drain",
 * "undrain", "summary", "connections"): exactly that text, the slot in decimal as status prints it (no sign, no leading zero), below
 * 100000. Pure. Returns the command and the numeric argument in *ret_arg, or -EINVAL. */
ControlCommand control_parse_request(const char *s, unsigned *ret_arg);

typedef struct ControlServer ControlServer;
typedef struct ControlConnection ControlConnection;

/* Handles a request. Reply with control_reply() or hold the connection (control_hold); one the handler did
 * neither with is answered with a generic error. */
typedef void (*control_handler_t)(ControlServer *s, ControlConnection *c, ControlCommand cmd, unsigned arg,
                                  void *userdata);

/* Binds path, mode 0600, and serves it from the loop. Only a stale socket file at path is replaced:
 * -EADDRINUSE when a live socket is there (another corral, running or stopped, or any other live socket),
 * -EEXIST when something else is (a file, a directory, a symlink). Never waits. The server logs, throttled,
 * when it cannot accept for lack of fds: a condition nobody else sees. */
int control_server_new(sd_event *e, const char *path, int64_t priority, control_handler_t handler,
                       void *userdata, ControlServer **ret);
/* Serves a listening socket control_server_new() bound at path, inherited across execve() by an upgrade;
 * path_id is what it was bound as (control_server_fd()). Takes fd whatever happens; -ENOTSOCK when it is
 * not a listening SOCK_SEQPACKET socket. */
int control_server_adopt(sd_event *e, int fd, const char *path, const UnixPathId *path_id, int64_t priority,
                         control_handler_t handler, void *userdata, ControlServer **ret);
/* Takes fd, a connection whose request was handled by the image before an upgrade, as a held waiter:
 * control_server_finish_waiters() answers it. */
int control_server_adopt_waiter(ControlServer *s, int fd);
/* The listening socket (owned by s) and the file it is bound as. */
int control_server_fd(const ControlServer *s, UnixPathId *ret_path_id);
/* Connections being read or answered (not held): what an exec would cut short. */
unsigned control_server_n_busy(const ControlServer *s);
/* The sockets of the held connections (owned by s) in an allocated array. Returns 0 or -ENOMEM. */
int control_server_waiter_fds(const ControlServer *s, int **ret, size_t *ret_n);
/* A connection's socket, owned by c. */
int control_connection_fd(const ControlConnection *c);
/* Closes every connection and unlinks the socket path, if it is still the socket bound there. */
ControlServer *control_server_free(ControlServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ControlServer *, control_server_free);

/* Sends text (copied if needed) as the reply, from the loop as the client reads it, then closes the
 * connection; c is not to be used after. */
void control_reply(ControlConnection *c, const char *text);
/* Keeps the connection open as a waiter for control_server_finish_waiters(). */
void control_hold(ControlConnection *c);
/* Replies text to every held connection and closes them. */
void control_server_finish_waiters(ControlServer *s, const char *text);
