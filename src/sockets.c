/* SPDX-License-Identifier: MIT */
/* The listening sockets: binding --listen specs (parsed by listen_spec_parse() in parse.c), or taking
 * over the ones systemd passed. Helpers only: errors go back as strings for the caller to log. */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "parse.h"
#include "sockets.h"
#include "unix-path.h"

#define IN_SET(x, ...)                                                                                      \
        ({                                                                                                  \
                const int _set_[] = { __VA_ARGS__ };                                                        \
                bool _found_ = false;                                                                       \
                for (size_t _i_ = 0; _i_ < ELEMENTSOF(_set_); _i_++)                                        \
                        if (_set_[_i_] == (x))                                                              \
                                _found_ = true;                                                             \
                _found_;                                                                                    \
        })

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

static void listen_socket_done(ListenSocket *l) {
        /* Unlink before close: once closed, another instance may bind the same path and we would remove
         * its socket. And only while the file is still ours: someone may have replaced it meanwhile. */
        if (l->unix_path)
                (void) unix_path_unlink_own(l->unix_path, &l->unix_id);
        l->fd = safe_close(l->fd);
        l->name = mfree_str(l->name);
        l->unix_path = mfree_str(l->unix_path);
}

void socket_set_done(SocketSet *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++)
                listen_socket_done(&s->sockets[i]);
        free(s->sockets);
        s->sockets = NULL;
        s->n = 0;
}

static void socket_set_donep(SocketSet *s) {
        socket_set_done(s);
}

static int socket_set_add(SocketSet *s, ListenSocket *l) {
        ListenSocket *n;

        n = reallocarray(s->sockets, s->n + 1, sizeof(ListenSocket));
        if (!n)
                return -ENOMEM;
        s->sockets = n;
        s->sockets[s->n++] = *l;
        return 0;
}

/* Fills *ret_error with "<what> <text>: <strerror>" and returns r. */
static int set_error(char **ret_error, int r, const char *what, const char *text) {
        if (ret_error)
                *ret_error = strdup_printf("%s %s: %s", what, text, strerror(-r));
        return r;
}

/* SO_REUSEADDR on every TCP listener; SO_REUSEPORT too for Balance=reuseport, before bind(), so that the
 * slots' sockets can join the first one's group; IPV6_V6ONLY explicit, so "[::]:80" means IPv6 only whatever
 * net.ipv6.bindv6only says, and "0.0.0.0:80" can be listed next to it. Returns 0 or -errno, and what failed. */
static int tcp_options(int fd, int family, bool reuseport, const char **ret_what) {
        int one = 1;

        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return *ret_what = "Failed to set SO_REUSEADDR on", -errno;
        if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
                return *ret_what = "Failed to set SO_REUSEPORT on", -errno;
        if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                return *ret_what = "Failed to set IPV6_V6ONLY on", -errno;
        return 0;
}

static int bind_one(const char *text, const ListenSpec *spec, bool reuseport, ListenSocket *ret, char **ret_error) {
        _cleanup_free_ char *name = NULL, *unix_path = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *what = NULL;
        int family, type, one = 1, r;
        UnixPathId unix_id = {};

        name = strdup(spec->name);
        if (!name)
                return -ENOMEM;

        family = spec->kind == LISTEN_UNIX_STREAM ? AF_UNIX : spec->addr.ss_family;
        type = spec->kind == LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM;
        fd = socket(family, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return set_error(ret_error, -errno, "Failed to create socket for", text);

        if (spec->kind == LISTEN_TCP) {
                r = tcp_options(fd, family, reuseport, &what);
                if (r < 0)
                        return set_error(ret_error, r, what, text);
        } else if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                return set_error(ret_error, -errno, "Failed to set IPV6_V6ONLY on", text);

        if (family == AF_UNIX) {
                unix_path = strdup(spec->path);
                if (!unix_path)
                        return -ENOMEM;
                /* A stale socket file left by a process that died is replaced, a live one is not stolen. */
                r = unix_path_bind(fd, spec->path, spec->mode, &unix_id);
                if (r < 0)
                        return set_error(ret_error, r, "Failed to bind", text);
        } else if (bind(fd, (const struct sockaddr *) &spec->addr, spec->addr_len) < 0)
                return set_error(ret_error, -errno, "Failed to bind", text);

        if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                if (unix_path)
                        (void) unix_path_unlink_own(unix_path, &unix_id);
                return set_error(ret_error, r, "Failed to listen on", text);
        }

        *ret = (ListenSocket){
                .fd = TAKE_FD(fd),
                .name = TAKE_PTR(name),
                .family = family,
                .type = type,
                .unix_path = TAKE_PTR(unix_path),
                .unix_id = unix_id,
        };
        return 0;
}

int socket_set_bind(char *const *specs, bool reuseport, SocketSet *ret, char **ret_error) {
        _cleanup_(socket_set_donep) SocketSet set = {};
        int r;

        for (size_t i = 0; specs && specs[i]; i++) {
                const char *reason = NULL;
                ListenSpec spec;
                ListenSocket l;

                r = listen_spec_parse(specs[i], &spec, &reason);
                if (r < 0) {
                        if (ret_error)
                                *ret_error = strdup_printf("Invalid listen address '%s': %s", specs[i],
                                                           reason);
                        return r;
                }

                r = bind_one(specs[i], &spec, reuseport, &l, ret_error);
                if (r < 0)
                        return r;

                r = socket_set_add(&set, &l);
                if (r < 0) {
                        listen_socket_done(&l);
                        return r;
                }
        }

        *ret = set;
        set = (SocketSet){};
        return 0;
}

/* Why a passed fd is unusable, or NULL when it is fine. */
static const char *passed_fd_problem(int fd, int *ret_family, int *ret_type) {
        int family = AF_UNSPEC, type = 0;
        socklen_t len;

        if (sd_is_socket(fd, AF_UNSPEC, 0, -1) <= 0)
                return "is not a socket";

        len = sizeof(family);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0)
                return "cannot be queried for its address family";
        if (!IN_SET(family, AF_INET, AF_INET6, AF_UNIX))
                return "has an unsupported address family (expected IPv4, IPv6 or UNIX)";
        len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return "cannot be queried for its socket type";
        if (!IN_SET(type, SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET))
                return "has an unsupported socket type (expected stream, datagram or seqpacket)";

        /* Accept=yes in the .socket unit passes one connection, not a listener: no use to a pool. */
        if (type != SOCK_DGRAM && sd_is_socket(fd, family, type, 1) <= 0)
                return "is not a listening socket (Accept=yes is not supported)";

        *ret_family = family;
        *ret_type = type;
        return NULL;
}

int socket_set_from_systemd(SocketSet *ret, char **ret_error) {
        _cleanup_(socket_set_donep) SocketSet set = {};
        _cleanup_strv_free_ char **names = NULL;
        int n, r;

        /* unset_environment=1: each worker gets LISTEN_* built for it by spawn.c; ours, inherited by
         * accident, would name corral's pid and confuse sd_listen_fds() in grandchildren. */
        n = sd_listen_fds_with_names(1, &names);
        if (n < 0) {
                if (ret_error)
                        *ret_error = strdup_printf(
                                "Failed to parse the sockets passed by systemd "
                                "(LISTEN_FDS, LISTEN_FDNAMES): %s",
                                strerror(-n));
                return n;
        }

        /* Take ownership of all of them first, so a failure below closes every one. */
        for (int i = 0; i < n; i++) {
                ListenSocket l = {
                        .fd = SD_LISTEN_FDS_START + i,
                        .name = strdup(names && names[i] ? names[i] : "unknown"),
                };

                if (!l.name) {
                        safe_close(l.fd);
                        return -ENOMEM;
                }
                r = socket_set_add(&set, &l);
                if (r < 0) {
                        listen_socket_done(&l);
                        return r;
                }
        }

        for (size_t i = 0; i < set.n; i++) {
                ListenSocket *l = &set.sockets[i];
                const char *problem;

                problem = passed_fd_problem(l->fd, &l->family, &l->type);
                if (problem) {
                        if (ret_error)
                                *ret_error = strdup_printf("fd %i ('%s') passed by systemd %s", l->fd,
                                                           l->name, problem);
                        return -EINVAL;
                }
        }

        *ret = set;
        set = (SocketSet){};
        return n;
}

int socket_set_take(SocketSet *s, const char *name, const char *rename, SocketSet *to) {
        size_t n = 0, k = 0, n_to = to->n;
        ListenSocket *grown;

        for (size_t i = 0; i < s->n; i++)
                n += !name || streq(s->sockets[i].name, name);
        if (n == 0)
                return 0;
        grown = reallocarray(to->sockets, n_to + n, sizeof(ListenSocket));
        if (!grown)
                return -ENOMEM;
        to->sockets = grown;
        /* The new names first: then nothing below can fail. */
        for (size_t i = 0, j = 0; rename && i < s->n; i++) {
                if (name && !streq(s->sockets[i].name, name))
                        continue;
                grown[n_to + j] = (ListenSocket) { .name = strdup(rename) };
                if (!grown[n_to + j].name) {
                        while (j > 0)
                                free(grown[n_to + --j].name);
                        return -ENOMEM;
                }
                j++;
        }
        for (size_t i = 0, j = 0; i < s->n; i++) {
                ListenSocket *l = &s->sockets[i];

                if (name && !streq(l->name, name)) {
                        s->sockets[k++] = *l;
                        continue;
                }
                if (rename) {
                        free(l->name);
                        l->name = grown[n_to + j].name;
                }
                grown[n_to + j++] = *l;
        }
        s->n = k;
        to->n = n_to + n;
        return (int) n;
}

const ListenSocket *socket_set_find(const SocketSet *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->sockets[i].name, name))
                        return &s->sockets[i];
        return NULL;
}

char *socket_set_names(const SocketSet *s) {
        size_t len = 1;
        char *names, *p;

        for (size_t i = 0; i < s->n; i++)
                len += strlen(s->sockets[i].name) + 1;
        names = malloc(len);
        if (!names)
                return NULL;

        p = names;
        *p = 0;
        for (size_t i = 0; i < s->n; i++)
                p = stpcpy(stpcpy(p, i > 0 ? ":" : ""), s->sockets[i].name);
        return names;
}

const char *listen_socket_address(const ListenSocket *s, char *buf, size_t size) {
        const char *proto = s->type == SOCK_DGRAM && s->family != AF_UNIX ? "udp:" : "";
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char host[INET6_ADDRSTRLEN];

        if (getsockname(s->fd, (struct sockaddr *) &ss, &len) < 0)
                return NULL;
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;

                if (!inet_ntop(AF_INET, &in->sin_addr, host, sizeof host))
                        return NULL;
                snprintf(buf, size, "%s%s:%u", proto, host, ntohs(in->sin_port));
        } else if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;

                if (!inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host))
                        return NULL;
                snprintf(buf, size, "%s[%s]:%u", proto, host, ntohs(in6->sin6_port));
        } else if (ss.ss_family == AF_UNIX) {
                const struct sockaddr_un *un = (const struct sockaddr_un *) &ss;
                /* The path is not NUL-terminated when it fills sun_path; an abstract name starts with NUL. */
                int n = (int) (len - offsetof(struct sockaddr_un, sun_path));

                if (n > 0 && un->sun_path[0] == 0)
                        snprintf(buf, size, "unix:@%.*s", n - 1, un->sun_path + 1);
                else
                        snprintf(buf, size, "unix:%.*s", (int) strnlen(un->sun_path, (size_t) MAX(n, 0)),
                                 un->sun_path);
        } else
                return NULL;
        return buf;
}

const char *listen_socket_type(const ListenSocket *s) {
        return s->type == SOCK_DGRAM ? "datagram" : s->type == SOCK_SEQPACKET ? "seqpacket" : "stream";
}

int listen_socket_queue(const ListenSocket *s, uint32_t *ret_queued, uint32_t *ret_backlog) {
        if ((s->family != AF_INET && s->family != AF_INET6) || s->type != SOCK_STREAM)
                return -EOPNOTSUPP;
        return listen_fd_queue(s->fd, ret_queued, ret_backlog);
}

int listen_fd_queue(int fd, uint32_t *ret_queued, uint32_t *ret_backlog) {
        struct tcp_info info = {};
        socklen_t len = sizeof(info);

        /* On a listener, tcp_get_info() reports the accept queue in tcpi_unacked and its limit (the backlog
         * listen() was given, capped by somaxconn) in tcpi_sacked: what ss -lnt prints as Recv-Q and Send-Q. */
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0)
                return -errno;
        if (info.tcpi_state != TCP_LISTEN)
                return -ENOTCONN;
        *ret_queued = info.tcpi_unacked;
        *ret_backlog = info.tcpi_sacked;
        return 0;
}

int listen_socket_check_reuseport(const ListenSocket *l, char **ret_error) {
        char addr[SOCKET_ADDRESS_MAX];
        const char *a = listen_socket_address(l, addr, sizeof addr) ?: "?";
        int on = 0;
        socklen_t len = sizeof(on);
        struct stat st;

        if (l->type != SOCK_STREAM || (l->family != AF_INET && l->family != AF_INET6)) {
                *ret_error = strdup_printf("Balance=reuseport works with TCP sockets only, and systemd passed '%s' "
                                           "(%s), which is not one", l->name, a);
                return -EPROTONOSUPPORT;
        }
        if (getsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &on, &len) < 0 || fstat(l->fd, &st) < 0) {
                *ret_error = strdup_printf("Balance=reuseport: cannot inspect socket '%s' (%s): %s", l->name, a,
                                           strerror(errno));
                return -errno;
        }
        if (!on) {
                *ret_error = strdup_printf("Balance=reuseport needs ReusePort=yes in the .socket unit: systemd passed "
                                           "'%s' (%s) without SO_REUSEPORT",
                                           l->name, a);
                return -EINVAL;
        }
        /* The kernel lets a socket join a group only with the group's owner (its creator's fsuid). */
        if (st.st_uid != geteuid()) {
                *ret_error = strdup_printf("Balance=reuseport cannot join the SO_REUSEPORT group of '%s' (%s): the "
                                           "socket belongs to uid %u and corral runs as uid %u, and the kernel lets "
                                           "only its owner join (systemd binds .socket units as root: run corral as "
                                           "root with [Worker] User= for the workers, or use Balance=shared)",
                                           l->name, a, (unsigned) st.st_uid, (unsigned) geteuid());
                return -EPERM;
        }
        return 0;
}

int listen_socket_bind_sibling(const ListenSocket *l, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_storage addr;
        socklen_t len = sizeof(addr);
        const char *what;
        int r;

        if (l->type != SOCK_STREAM || (l->family != AF_INET && l->family != AF_INET6))
                return -EPROTONOSUPPORT;
        /* The address the first socket got: its port too, when the spec asked for any (":0"). */
        if (getsockname(l->fd, (struct sockaddr *) &addr, &len) < 0)
                return -errno;
        fd = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        r = tcp_options(fd, l->family, true, &what);
        if (r < 0)
                return r;
        if (bind(fd, (const struct sockaddr *) &addr, len) < 0 || listen(fd, SOMAXCONN) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

