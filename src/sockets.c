/* SPDX-License-Identifier: MIT */
/* The listening sockets: parsing --listen specs, binding them, or taking over the ones systemd passed.
 * Helpers only: errors go back as strings for the caller to log. */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "parse.h"
#include "sockets.h"

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

static bool name_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_' || c == '.';
}

static int parse_inet(const char *s, ListenSpec *spec, const char **ret_reason) {
        char host[INET6_ADDRSTRLEN + 1];
        bool bracketed = *s == '[';
        const char *colon, *port_str;
        unsigned port;
        size_t n;

        if (bracketed) {
                const char *close = strchr(s, ']');

                if (!close) {
                        *ret_reason = "missing ']' after IPv6 address";
                        return -EINVAL;
                }
                if (close[1] != ':') {
                        *ret_reason = "missing port";
                        return -EINVAL;
                }
                n = (size_t) (close - s - 1);
                port_str = close + 2;
                s++;
        } else {
                colon = strrchr(s, ':');
                if (!colon) {
                        *ret_reason = "missing port";
                        return -EINVAL;
                }
                n = (size_t) (colon - s);
                if (memchr(s, ':', n)) {
                        *ret_reason = "IPv6 addresses must be written in brackets, e.g. [::1]:8080";
                        return -EINVAL;
                }
                port_str = colon + 1;
        }

        if (n == 0) {
                *ret_reason = "missing address (use 0.0.0.0 or [::] for all addresses)";
                return -EINVAL;
        }
        if (n >= sizeof(host)) {
                *ret_reason = "invalid IP address";
                return -EINVAL;
        }
        memcpy(host, s, n);
        host[n] = 0;

        if (parse_unsigned(port_str, 0, 65535, &port) < 0) {
                *ret_reason = "invalid port, expected a number between 0 and 65535";
                return -EINVAL;
        }

        memset(&spec->addr, 0, sizeof(spec->addr));
        if (bracketed) {
                struct sockaddr_in6 *sa = (struct sockaddr_in6 *) &spec->addr;

                if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1) {
                        *ret_reason = "invalid IPv6 address";
                        return -EINVAL;
                }
                sa->sin6_family = AF_INET6;
                sa->sin6_port = htons((uint16_t) port);
                spec->addr_len = sizeof(*sa);
        } else {
                struct sockaddr_in *sa = (struct sockaddr_in *) &spec->addr;

                if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
                        *ret_reason = "invalid IPv4 address";
                        return -EINVAL;
                }
                sa->sin_family = AF_INET;
                sa->sin_port = htons((uint16_t) port);
                spec->addr_len = sizeof(*sa);
        }
        return 0;
}

static int parse_unix(const char *s, ListenSpec *spec, const char **ret_reason) {
        const char *colon = strrchr(s, ':');
        size_t n = strlen(s);

        /* A trailing ":0660" is a mode; a path may itself contain colons, so only 3 or 4 octal digits at the
         * very end count. */
        spec->mode = 0;
        if (colon && strlen(colon + 1) >= 3 && strlen(colon + 1) <= 4 &&
            strspn(colon + 1, "01234567") == strlen(colon + 1)) {
                unsigned mode = 0;

                for (const char *p = colon + 1; *p; p++)
                        mode = mode * 8 + (unsigned) (*p - '0');
                if (mode == 0 || mode > 0777) {
                        *ret_reason = "invalid mode, expected an octal mode between 0001 and 0777";
                        return -EINVAL;
                }
                spec->mode = mode;
                n = (size_t) (colon - s);
        }

        if (n == 0 || s[0] != '/') {
                *ret_reason = "UNIX socket path must be absolute";
                return -EINVAL;
        }
        if (n >= sizeof(spec->path) || n >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                *ret_reason = "UNIX socket path too long";
                return -EINVAL;
        }
        memcpy(spec->path, s, n);
        spec->path[n] = 0;
        return 0;
}

static const struct {
        const char *prefix;
        ListenKind kind;
} listen_prefixes[] = {
        { "tcp", LISTEN_TCP },
        { "udp", LISTEN_UDP },
        { "unix", LISTEN_UNIX_STREAM },
};

int listen_spec_parse(const char *s, ListenSpec *ret, const char **ret_reason) {
        ListenSpec spec = { .name = "listen" };
        const char *reason = NULL, *eq, *colon, *rest;
        int r;

        if (!ret_reason)
                ret_reason = &reason;
        if (isempty(s)) {
                *ret_reason = "empty address";
                return -EINVAL;
        }

        /* "NAME=" is a name only when '=' comes before any ':' — "unix:/a=b" is a path with '=' in it. */
        eq = strchr(s, '=');
        colon = strchr(s, ':');
        if (eq && (!colon || eq < colon) && !memchr(s, '[', (size_t) (eq - s))) {
                size_t n = (size_t) (eq - s);

                if (n == 0 || n >= sizeof(spec.name)) {
                        *ret_reason = "invalid name, expected 1 to 63 characters";
                        return -EINVAL;
                }
                for (size_t i = 0; i < n; i++)
                        if (!name_char_ok(s[i])) {
                                *ret_reason = "invalid name, expected letters, digits, '-', '_' or '.'";
                                return -EINVAL;
                        }
                memcpy(spec.name, s, n);
                spec.name[n] = 0;
                s = eq + 1;
        }

        /* The type prefix is the word before the first ':'. A word with letters beyond hex digits cannot
         * start an address, so "sctp:..." is an unknown type rather than an unbracketed IPv6 address. */
        colon = strchr(s, ':');
        rest = s;
        spec.kind = LISTEN_TCP;
        if (colon) {
                size_t n = (size_t) (colon - s);
                bool found = false;

                for (size_t i = 0; i < ELEMENTSOF(listen_prefixes); i++) {
                        const char *prefix = listen_prefixes[i].prefix;

                        if (strlen(prefix) == n && strncmp(s, prefix, n) == 0) {
                                spec.kind = listen_prefixes[i].kind;
                                rest = colon + 1;
                                found = true;
                        }
                }
                /* ...but "localhost:80" is a host name with a port, and gets the address error below. */
                if (!found && n > 0 && strspn(s, "abcdefghijklmnopqrstuvwxyz") == n &&
                    strspn(s, "abcdef") < n && colon[1 + strspn(colon + 1, "0123456789")] != 0) {
                        *ret_reason = "unknown socket type, expected 'tcp:', 'udp:' or 'unix:'";
                        return -EINVAL;
                }
        }

        if (spec.kind == LISTEN_UNIX_STREAM)
                r = parse_unix(rest, &spec, ret_reason);
        else
                r = parse_inet(rest, &spec, ret_reason);
        if (r < 0)
                return r;

        *ret = spec;
        return 0;
}

static void listen_socket_done(ListenSocket *l) {
        /* Unlink before close: once closed, another instance may bind the same path and we would remove
         * its socket. */
        if (l->unix_path)
                (void) unlink(l->unix_path);
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

/* A UNIX socket file left behind by a process that died without unlinking it would make bind() fail
 * with EADDRINUSE forever. Remove it only when nobody answers on it, so a second instance fails instead
 * of stealing the path. */
static int unix_remove_stale(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;

        /* Non-blocking, so a live listener with a full backlog answers EAGAIN instead of hanging us. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* The spec parser bounded the path; sa is zeroed, so the copy stays NUL-terminated. */
        memcpy(sa.sun_path, path, MIN(strlen(path), sizeof(sa.sun_path) - 1));
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) >= 0 || errno != ECONNREFUSED)
                return -EADDRINUSE;

        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int bind_one(const char *text, const ListenSpec *spec, ListenSocket *ret, char **ret_error) {
        _cleanup_free_ char *name = NULL, *unix_path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int family, type, one = 1, r;

        name = strdup(spec->name);
        if (!name)
                return -ENOMEM;

        family = spec->kind == LISTEN_UNIX_STREAM ? AF_UNIX : spec->addr.ss_family;
        type = spec->kind == LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM;
        fd = socket(family, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return set_error(ret_error, -errno, "Failed to create socket for", text);

        if (spec->kind == LISTEN_TCP && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return set_error(ret_error, -errno, "Failed to set SO_REUSEADDR on", text);
        /* Explicit, so "[::]:80" means IPv6 only whatever net.ipv6.bindv6only says, and "0.0.0.0:80" can be
         * listed next to it. */
        if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                return set_error(ret_error, -errno, "Failed to set IPV6_V6ONLY on", text);

        if (family == AF_UNIX) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                mode_t old_umask = 0;

                r = unix_remove_stale(spec->path);
                if (r < 0)
                        return set_error(ret_error, r, "Failed to bind", text);

                unix_path = strdup(spec->path);
                if (!unix_path)
                        return -ENOMEM;

                /* bind() creates the inode with 0777 & ~umask; setting the umask around it gives the
                 * requested mode from the start, with no window where a chmod() has not happened yet.
                 * corral is single-threaded, so changing the process umask briefly is safe. */
                if (spec->mode != 0)
                        old_umask = umask(~spec->mode & 0777);
                memcpy(sa.sun_path, spec->path, strlen(spec->path) + 1);
                r = bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? -errno : 0;
                if (spec->mode != 0)
                        (void) umask(old_umask);
                if (r < 0) {
                        unix_path = mfree_str(unix_path);
                        return set_error(ret_error, r, "Failed to bind", text);
                }
        } else if (bind(fd, (const struct sockaddr *) &spec->addr, spec->addr_len) < 0)
                return set_error(ret_error, -errno, "Failed to bind", text);

        if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                if (unix_path)
                        (void) unlink(unix_path);
                return set_error(ret_error, r, "Failed to listen on", text);
        }

        *ret = (ListenSocket){
                .fd = TAKE_FD(fd),
                .name = TAKE_PTR(name),
                .family = family,
                .type = type,
                .unix_path = TAKE_PTR(unix_path),
        };
        return 0;
}

int socket_set_bind(char *const *specs, SocketSet *ret, char **ret_error) {
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

                r = bind_one(specs[i], &spec, &l, ret_error);
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

int socket_set_take(SocketSet *s, const char *name, SocketSet *ret) {
        SocketSet taken = {};
        size_t k = 0;
        int r;

        for (size_t i = 0; i < s->n; i++) {
                if (!streq(s->sockets[i].name, name)) {
                        s->sockets[k++] = s->sockets[i];
                        continue;
                }
                r = socket_set_add(&taken, &s->sockets[i]);
                if (r < 0) {
                        /* Put back what was not moved yet, so nothing leaks and the set stays whole. */
                        for (size_t j = i; j < s->n; j++)
                                s->sockets[k++] = s->sockets[j];
                        s->n = k;
                        for (size_t j = 0; j < taken.n; j++)
                                (void) socket_set_add(s, &taken.sockets[j]);
                        free(taken.sockets);
                        return r;
                }
        }
        s->n = k;
        *ret = taken;
        return (int) taken.n;
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
