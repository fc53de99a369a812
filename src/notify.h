/* SPDX-License-Identifier: MIT */
/* The sd_notify protocol both ways: the private socket workers send READY=1 & co. to (in), and corral's
 * own messages to systemd (out). The only module that speaks sd_notify. */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "util.h"

/* Longest datagram accepted, like systemd's own notify socket; longer ones are dropped. */
#define NOTIFY_BUFFER_MAX 4096

/* One parsed datagram. status points into the buffer that was parsed. */
typedef struct NotifyMessage {
        bool ready;
        bool stopping;
        bool watchdog;
        bool recycle;
        bool reloading;
        const char *status; /* NULL when absent */
} NotifyMessage;

/* Parses "KEY=VALUE\n..." in place (newlines become NULs; buf must hold size+1 bytes). Unknown keys are
 * ignored as systemd does. Returns 0, or -EBADMSG for an embedded NUL or a line without '='. Pure. */
int notify_message_parse(char *buf, size_t size, NotifyMessage *ret);

typedef struct NotifySocket NotifySocket;

/* Called for every datagram; sender is what the kernel stamped it with (SCM_CREDENTIALS: pid, uid, gid),
 * NULL when it came without credentials or from a process this pid namespace cannot see (pid 0). m is NULL
 * for a datagram that was malformed, too long or without credentials: already counted as rejected.
 * Otherwise the receiver decides whether it counts and calls notify_socket_reject() if not. */
typedef void (*notify_handler_t)(NotifySocket *n, const struct ucred *sender, const NotifyMessage *m,
                                 void *userdata);

/* Creates an abstract AF_UNIX datagram socket with SO_PASSCRED, watched by the loop at priority. */
int notify_socket_new(sd_event *e, int64_t priority, notify_handler_t handler, void *userdata,
                      NotifySocket **ret);
NotifySocket *notify_socket_free(NotifySocket *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(NotifySocket *, notify_socket_free);
/* Serves a socket notify_socket_new() made, inherited across execve() by an upgrade: takes fd whatever
 * happens, -ENOTSOCK when it is not such a socket. */
int notify_socket_adopt(sd_event *e, int fd, int64_t priority, notify_handler_t handler, void *userdata,
                        NotifySocket **ret);
/* The socket, owned by n: for the upgrade to keep open across execve(). */
int notify_socket_fd(const NotifySocket *n);
/* The NOTIFY_SOCKET value for workers ("@corral/..."). */
const char *notify_socket_address(const NotifySocket *n);
/* Each datagram costs corral a system call, whoever sent it, and a sender pays as much to send it: a flood
 * could keep corral as busy as the flooders are. Past NOTIFY_REJECT_BURST rejected datagrams in a window the
 * socket is not read for the rest of it: the kernel queue (net.unix.max_dgram_qlen datagrams; SO_RCVBUF
 * does not raise it for AF_UNIX datagrams) fills, and the flooders wait in sendmsg() at their own cost. A
 * worker's datagram waits among theirs, typically for the rest of the window: blocked senders are woken one
 * per datagram read, in the order they began to wait. */
#define NOTIFY_REJECT_WINDOW_USEC (10 * USEC_PER_MSEC)
#define NOTIFY_REJECT_BURST 256

/* Counts a datagram that was not accepted, against the window's budget too; returns the total so far. */
uint64_t notify_socket_reject(NotifySocket *n);
uint64_t notify_socket_rejected(const NotifySocket *n);
/* Carries the count over an upgrade. */
void notify_socket_set_rejected(NotifySocket *n, uint64_t rejected);

/* Messages to systemd ($NOTIFY_SOCKET of corral itself); no-ops without one. They return what
 * sd_notify() returns. */
int notify_manager_ready(const char *status);
int notify_manager_status(const char *status);
int notify_manager_stopping(const char *status);
int notify_manager_reloading(const char *status);
int notify_manager_extend_timeout(usec_t usec);
int notify_manager_errno(int error);
