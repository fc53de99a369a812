/* SPDX-License-Identifier: MIT */
/* A service unit and its .socket units read from systemd over D-Bus (sd-bus): properties of the unit objects
 * that systemctl show reads, nothing else. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "unit-query.h"
#include "util.h"

#define SYSTEMD_DESTINATION "org.freedesktop.systemd1"
#define UNIT_INTERFACE "org.freedesktop.systemd1.Unit"
#define SERVICE_INTERFACE "org.freedesktop.systemd1.Service"
#define SOCKET_INTERFACE "org.freedesktop.systemd1.Socket"

/* The system bus; as root, systemd's own socket where no bus daemon runs (what systemctl does too). */
static int bus_open(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(ret);
        if (r >= 0 || geteuid() != 0)
                return r;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, "unix:path=/run/systemd/private");
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

/* The D-Bus error's own message where there is one, else errno's. */
static char *bus_error_message(const sd_bus_error *e, int r, const char *what) {
        return strdup_printf("%s: %s", what, sd_bus_error_is_set(e) && e->message ? e->message : strerror(-r));
}

/* Reading a unit's object loads its configuration if systemd has not (as systemctl show does). */
static int unit_path(const char *name, char **ret) {
        return sd_bus_path_encode("/org/freedesktop/systemd1/unit", name, ret);
}

static int read_listen(sd_bus *bus, const char *path, UnitSocket *s, sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *type, *address;
        int r;

        r = sd_bus_get_property(bus, SYSTEMD_DESTINATION, path, SOCKET_INTERFACE, "Listen", e, &reply,
                                "a(ss)");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ss)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(ss)", &type, &address)) > 0) {
                UnitListen *l = reallocarray(s->listen, s->n_listen + 1, sizeof(UnitListen));

                if (!l)
                        return -ENOMEM;
                s->listen = l;
                l[s->n_listen] = (UnitListen){ strdup(type), strdup(address) };
                if (!l[s->n_listen].type || !l[s->n_listen].address) {
                        free(l[s->n_listen].type);
                        free(l[s->n_listen].address);
                        return -ENOMEM;
                }
                s->n_listen++;
        }
        return r < 0 ? r : sd_bus_message_exit_container(reply);
}

static int read_socket(sd_bus *bus, const char *name, UnitSocket *s, char **ret_error) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r, reuse_port = 0;

        s->name = strdup(name);
        if (!s->name || unit_path(name, &path) < 0)
                return -ENOMEM;
        r = sd_bus_get_property_trivial(bus, SYSTEMD_DESTINATION, path, SOCKET_INTERFACE, "ReusePort", &e,
                                        'b', &reuse_port);
        if (r >= 0)
                r = sd_bus_get_property_string(bus, SYSTEMD_DESTINATION, path, SOCKET_INTERFACE,
                                               "FileDescriptorName", &e, &s->fd_name);
        if (r >= 0)
                r = read_listen(bus, path, s, &e);
        if (r < 0) {
                *ret_error = bus_error_message(&e, r, name);
                return r;
        }
        s->reuse_port = reuse_port;
        return 0;
}

int unit_query(const char *name, UnitInfo **ret, char **ret_error) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(unit_info_freep) UnitInfo *u = NULL;
        _cleanup_strv_free_ char **triggered_by = NULL;
        _cleanup_free_ char *path = NULL;
        int r, dynamic_user = 0;

        u = calloc(1, sizeof(UnitInfo));
        if (!u)
                return -ENOMEM;
        u->name = endswith(name, ".service") ? strdup(name) : strdup_printf("%s.service", name);
        if (!u->name || unit_path(u->name, &path) < 0)
                return -ENOMEM;
        r = bus_open(&bus);
        if (r < 0) {
                *ret_error = strdup_printf("%s: cannot reach systemd over D-Bus: %s", u->name, strerror(-r));
                return r;
        }
        r = sd_bus_get_property_string(bus, SYSTEMD_DESTINATION, path, UNIT_INTERFACE, "LoadState", &e,
                                       &u->load_state);
        if (r < 0) {
                *ret_error = bus_error_message(&e, r, u->name);
                return r;
        }
        if (!streq(u->load_state, "loaded")) {
                *ret = TAKE_PTR(u);
                return 0;
        }
        r = sd_bus_get_property_strv(bus, SYSTEMD_DESTINATION, path, UNIT_INTERFACE, "TriggeredBy", &e,
                                     &triggered_by);
        if (r >= 0)
                r = sd_bus_get_property_trivial(bus, SYSTEMD_DESTINATION, path, SERVICE_INTERFACE,
                                                "DynamicUser", &e, 'b', &dynamic_user);
        if (r >= 0)
                r = sd_bus_get_property_string(bus, SYSTEMD_DESTINATION, path, SERVICE_INTERFACE, "User", &e,
                                               &u->user);
        if (r < 0) {
                *ret_error = bus_error_message(&e, r, u->name);
                return r;
        }
        u->dynamic_user = dynamic_user;
        for (char **t = triggered_by; t && *t; t++) {
                UnitSocket *s;

                if (!endswith(*t, ".socket"))
                        continue;
                s = reallocarray(u->sockets, u->n_sockets + 1, sizeof(UnitSocket));
                if (!s)
                        return -ENOMEM;
                u->sockets = s;
                s[u->n_sockets] = (UnitSocket){};
                r = read_socket(bus, *t, &s[u->n_sockets++], ret_error);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(u);
        return 0;
}

UnitInfo *unit_info_free(UnitInfo *u) {
        if (!u)
                return NULL;
        for (size_t i = 0; i < u->n_sockets; i++) {
                for (size_t k = 0; k < u->sockets[i].n_listen; k++) {
                        free(u->sockets[i].listen[k].type);
                        free(u->sockets[i].listen[k].address);
                }
                free(u->sockets[i].listen);
                free(u->sockets[i].fd_name);
                free(u->sockets[i].name);
        }
        free(u->sockets);
        free(u->load_state);
        free(u->user);
        free(u->name);
        free(u);
        return NULL;
}
