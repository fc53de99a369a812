/* SPDX-License-Identifier: MIT */
/* `corral check --unit`'s conclusions from what systemd says of a unit: no system call here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "unit-check.h"

/* The directive a Listen entry came from, for messages: systemd's types are the directives' suffixes. */
static const char *listen_directive(const char *type) {
        static const struct {
                const char *type, *directive;
        } table[] = {
                { "Stream", "ListenStream" },
                { "Datagram", "ListenDatagram" },
                { "SequentialPacket", "ListenSequentialPacket" },
                { "FIFO", "ListenFIFO" },
                { "Special", "ListenSpecial" },
                { "Netlink", "ListenNetlink" },
                { "MessageQueue", "ListenMessageQueue" },
                { "USBFunction", "ListenUSBFunction" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(type, table[i].type))
                        return table[i].directive;
        return type;
}

/* A stream socket on an IP address: systemd writes a UNIX path as it is, an abstract one with '@', VSOCK
 * with "vsock:". */
static bool listen_is_tcp(const UnitListen *l) {
        return streq(l->type, "Stream") && l->address[0] != '/' && l->address[0] != '@' &&
                !startswith(l->address, "vsock:");
}

/* A socket corral keeps for itself (main.c, take_sockets()): the health or agent-check endpoint. */
static bool socket_is_endpoint(const UnitSocket *s) {
        return streq_ptr(s->fd_name, "corral-status") || streq_ptr(s->fd_name, "corral-agent");
}

static size_t worker_sockets(const UnitInfo *u) {
        size_t n = 0;

        for (size_t i = 0; i < u->n_sockets; i++)
                n += !socket_is_endpoint(&u->sockets[i]);
        return n;
}

static int add(char ***problems, char *message) {
        return message ? strv_consume(problems, message) : -ENOMEM;
}

static int check_reuseport(const UnitInfo *u, char ***problems) {
        int n = 0, r;

        for (size_t i = 0; i < u->n_sockets; i++) {
                const UnitSocket *s = &u->sockets[i];

                if (socket_is_endpoint(s))
                        continue;
                if (!s->reuse_port) {
                        r = add(problems,
                                strdup_printf("%s: ReusePort=no: Balance=reuseport joins the SO_REUSEPORT "
                                              "group of systemd's socket, which needs ReusePort=yes "
                                              "(systemctl edit %s, then restart the socket)",
                                              s->name, s->name));
                        if (r < 0)
                                return r;
                        n++;
                }
                for (size_t k = 0; k < s->n_listen; k++) {
                        if (listen_is_tcp(&s->listen[k]))
                                continue;
                        r = add(problems,
                                strdup_printf("%s: %s=%s: Balance=reuseport works with TCP sockets only",
                                              s->name, listen_directive(s->listen[k].type),
                                              s->listen[k].address));
                        if (r < 0)
                                return r;
                        n++;
                }
        }
        /* The kernel lets only a socket's owner join its group, and systemd binds as root (sockets corral
         * binds itself from Listen= are its own). */
        if (worker_sockets(u) > 0 &&
            (u->dynamic_user || (!isempty(u->user) && !streq(u->user, "root") && !streq(u->user, "0")))) {
                r = add(problems,
                        strdup_printf("%s: %s%s: corral would not run as root, which owns systemd's "
                                      "sockets, and the kernel lets only a socket's owner join its "
                                      "SO_REUSEPORT group: run corral as root with [Worker] User= for the "
                                      "workers (contrib/reuseport.conf), or use Balance=shared",
                                      u->name, u->dynamic_user ? "DynamicUser=yes" : "User=",
                                      u->dynamic_user ? "" : u->user));
                if (r < 0)
                        return r;
                n++;
        }
        return n;
}

int unit_check(const UnitInfo *u, bool has_listen, bool reuseport, char ***problems) {
        int r;

        if (!streq_ptr(u->load_state, "loaded")) {
                r = add(problems,
                        strdup_printf("%s: not loaded by systemd (LoadState=%s)", u->name,
                                      u->load_state ?: "unknown"));
                return r < 0 ? r : 1;
        }
        if (worker_sockets(u) == 0 && !has_listen) {
                r = add(problems,
                        strdup_printf("%s: no .socket unit passes its workers sockets, and the "
                                      "configuration has no Listen=: a start would have no socket to "
                                      "serve",
                                      u->name));
                return r < 0 ? r : 1;
        }
        return reuseport ? check_reuseport(u, problems) : 0;
}

char *unit_describe_sockets(const UnitInfo *u) {
        _cleanup_free_ char *s = strdup("");

        for (size_t i = 0; s && i < u->n_sockets; i++) {
                const UnitSocket *k = &u->sockets[i];
                char *t = strdup_printf("%s%s%s (%s", s, i > 0 ? " " : "", k->name,
                                        socket_is_endpoint(k) ? k->fd_name : "");

                free(s);
                s = t;
                for (size_t j = 0; s && j < k->n_listen; j++) {
                        t = strdup_printf("%s%s%s, ", s, socket_is_endpoint(k) && j == 0 ? ": " : "",
                                          k->listen[j].address);
                        free(s);
                        s = t;
                }
                if (s) {
                        t = strdup_printf("%sReusePort=%s)", s, k->reuse_port ? "yes" : "no");
                        free(s);
                        s = t;
                }
        }
        return TAKE_PTR(s);
}
