/* SPDX-License-Identifier: MIT */
/* A service unit and the .socket units that pass it its sockets, as systemd has them loaded, read over
 * D-Bus: what `corral check --unit` needs to tell, before a start, whether Balance=reuseport can work with
 * them (unit-check.h). Reads only; loads the units' configuration (LoadUnit) but starts nothing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* One Listen*= line of a .socket unit: systemd's type ("Stream", "Datagram", "SequentialPacket", "FIFO",
 * ...) and address ("127.0.0.1:8080", "[::]:8080", "/run/app.sock", "@abstract", ...). */
typedef struct UnitListen {
        char *type;
        char *address;
} UnitListen;

typedef struct UnitSocket {
        char *name;    /* "app.socket" */
        char *fd_name; /* FileDescriptorName=: "corral-status" and "corral-agent" are corral's own endpoints */
        bool reuse_port;
        UnitListen *listen;
        size_t n_listen;
} UnitSocket;

typedef struct UnitInfo {
        char *name;       /* "app.service" */
        char *load_state; /* "loaded", "not-found", "bad-setting", ... */
        bool dynamic_user;
        char *user;          /* User=, "" when unset */
        UnitSocket *sockets; /* the .socket units it is TriggeredBy */
        size_t n_sockets;
} UnitInfo;

/* Reads name (".service" is added to a name that does not end in it) and its sockets from systemd: the
 * system bus, or as root systemd's private socket when no bus daemon runs. Returns 0, or -errno with a
 * message in *ret_error naming what failed. */
int unit_query(const char *name, UnitInfo **ret, char **ret_error);

UnitInfo *unit_info_free(UnitInfo *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(UnitInfo *, unit_info_free);
