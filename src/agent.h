/* SPDX-License-Identifier: MIT */
/* HAProxy's agent-check (its configuration manual, "agent-check"): HAProxy connects to the agent port every
 * agent-inter and reads one line ("up ready 75%", "drain", "down #why"); the server writes it and closes.
 * Bounded: AGENT_CONNECTIONS_MAX connections wait for HAProxy to close its side, the oldest closed for a
 * newcomer, none longer than AGENT_LINGER_USEC. */
#pragma once

#include <systemd/sd-event.h>

#include "util.h"

#define AGENT_CONNECTIONS_MAX 64
#define AGENT_LINGER_USEC (2 * USEC_PER_SEC)

typedef struct AgentServer AgentServer;

/* The line for a new connection, allocated (ended by "\n"); NULL closes it unanswered. Runs on the loop. */
typedef char *(*agent_answer_t)(AgentServer *s, void *userdata);

/* Serves listen_fd, a listening TCP socket (bound for [Health] AgentListen=, or passed by systemd as
 * "corral-agent"), which it owns whatever happens (fd_prepare_listener()). Returns 0, -EINVAL when
 * listen_fd is not a listening stream socket, or another negative errno. */
int agent_server_new(sd_event *e, int listen_fd, int64_t priority, agent_answer_t answer, void *userdata,
                     AgentServer **ret);
/* Closes the listening socket and every connection. */
AgentServer *agent_server_free(AgentServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentServer *, agent_server_free);

/* Connections answered so far. */
uint64_t agent_server_n_answered(const AgentServer *s);
