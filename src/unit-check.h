/* SPDX-License-Identifier: MIT */
/* What `corral check --unit` concludes from a service unit and its sockets as systemd has them
 * (unit-query.h), without starting anything: what a start would refuse, said before the start. */
#pragma once

#include <stdbool.h>

#include "unit-query.h"

/* The problems a start of u would meet, one message each, appended to *problems: a unit that is not
 * loaded; no .socket unit for the workers while the configuration has no Listen= (has_listen); and with
 * reuseport, what Balance=reuseport cannot work with among the workers' sockets (a socket without
 * ReusePort=yes, a Listen*= line that is not TCP, a service whose corral would not own systemd's sockets:
 * DynamicUser= or a User= other than root). Sockets named corral-status or corral-agent
 * (FileDescriptorName=) are corral's own endpoints and left out. Returns how many it found, or -ENOMEM. */
int unit_check(const UnitInfo *u, bool has_listen, bool reuseport, char ***problems);

/* The unit's sockets for check's one line: "app.socket (127.0.0.1:8080, ReusePort=yes)", an endpoint's
 * "app-status.socket (corral-status: 127.0.0.1:9100, ReusePort=no)"; NULL on OOM. */
char *unit_describe_sockets(const UnitInfo *u);
