/* SPDX-License-Identifier: MIT */
/* Pausing an event source for a moment: what a listening socket's accept handler does when it runs out of
 * fds or memory, rather than spin on a socket that stays readable (httpd.c, agent.c). */
#pragma once

#include <systemd/sd-event.h>

#include "util.h"

/* Turns io off, and on again after usec by *retry, a timer made on first use (io's loop and priority,
 * described as description) and owned by the caller, who frees it before io. When the timer cannot be armed
 * io stays on: a spin is better than a socket never accepted on again. */
void event_source_pause(sd_event_source *io, sd_event_source **retry, usec_t usec, const char *description);
