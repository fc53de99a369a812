/* SPDX-License-Identifier: MIT */
/* Counting the TCP connections of listening sockets with the kernel's socket diagnostics (NETLINK_SOCK_DIAG,
 * what ss(8) reads): one dump per address family, filtered in the kernel by local port. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sock-diag.h"

/* The kernel's TCP states (include/net/tcp_states.h), as idiag_states bits. */
enum {
        TCP_STATE_ESTABLISHED = 1,
        TCP_STATE_SYN_RECV = 3,
        TCP_STATE_CLOSE_WAIT = 8,
};

/* A server still owes an answer in these: a handshake done or under way (in the accept queue or accepted),
 * or a peer that sent its last request and half-closed. Once the server closed (FIN_WAIT*, LAST_ACK,
 * TIME_WAIT) nothing is left to serve. */
#define COUNTED_STATES \
        ((1U << TCP_STATE_ESTABLISHED) | (1U << TCP_STATE_SYN_RECV) | (1U << TCP_STATE_CLOSE_WAIT))

/* One "source port is P" test of the filter program, and the jump to its end that a match takes. */
typedef struct PortCond {
        struct inet_diag_bc_op test;
        struct inet_diag_hostcond cond; /* AF_UNSPEC, prefix 0: the port alone */
        struct inet_diag_bc_op accept;
} PortCond;

size_t sock_diag_port_filter(const uint16_t *ports, size_t n, void *buf, size_t size) {
        size_t len = n * sizeof(PortCond);
        PortCond *c = buf;

        if (n == 0 || size < len || len > UINT16_MAX)
                return 0;
        /* "port 1 or port 2 or ...". The program accepts when a jump lands exactly on its end and rejects when
         * one goes past it. A test's "yes" is 8 bits, so a match goes to the JMP right after it, whose 16-bit
         * "no" (a JMP always takes it) reaches the end; a miss skips that JMP to the next test, the last one 4
         * bytes past the end. The kernel's audit walks every op by "yes": the JMP's is the next test. */
        for (size_t i = 0; i < n; i++) {
                size_t at = i * sizeof(PortCond), accept_at = at + offsetof(PortCond, accept);

                c[i] = (PortCond) {
                        .test = {
                                .code = INET_DIAG_BC_S_COND,
                                .yes = (unsigned char) offsetof(PortCond, accept),
                                .no = (unsigned short) (sizeof(PortCond) + (i + 1 == n ? 4 : 0)),
                        },
                        .cond = { .family = AF_UNSPEC, .prefix_len = 0, .port = ports[i] },
                        .accept = {
                                .code = INET_DIAG_BC_JMP,
                                .yes = sizeof(struct inet_diag_bc_op),
                                .no = (unsigned short) (len - accept_at),
                        },
                };
        }
        return len;
}

bool sock_diag_addr_matches(const struct sockaddr_storage *listener, int family, uint16_t port,
                            const uint32_t addr[4]) {
        if (listener->ss_family == AF_INET) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *) listener;
                uint32_t local;

                if (ntohs(sin->sin_port) != port)
                        return false;
                if (family == AF_INET)
                        local = addr[0];
                else if (family == AF_INET6 && addr[0] == 0 && addr[1] == 0 && addr[2] == htonl(0xffff))
                        local = addr[3]; /* can only be another listener's: an IPv4 one accepts IPv4 */
                else
                        return false;
                return sin->sin_addr.s_addr == htonl(INADDR_ANY) || sin->sin_addr.s_addr == local;
        }
        if (listener->ss_family == AF_INET6) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) listener;

                if (ntohs(sin6->sin6_port) != port || family != AF_INET6)
                        return false;
                /* A dual-stack [::] listener's IPv4 connections come in the AF_INET6 dump, v4-mapped. */
                return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) || memcmp(&sin6->sin6_addr, addr, 16) == 0;
        }
        return false;
}

/* Counts the connections of one family's dump that belong to one of the listeners. */
static int count_family(int nl, int family, const struct sockaddr_storage *listeners, size_t n,
                        const uint16_t *ports, size_t n_ports, uint64_t *count) {
        struct {
                struct nlmsghdr nlh;
                struct inet_diag_req_v2 req;
                struct nlattr attr;
                PortCond filter[SOCK_DIAG_LISTENERS_MAX];
        } msg = {};
        size_t filter_len = sock_diag_port_filter(ports, n_ports, msg.filter, sizeof msg.filter);
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        /* 8 KiB aligned, as netlink messages want, and about 40 sockets per read. */
        _Alignas(struct nlmsghdr) char buf[8192];

        msg.attr = (struct nlattr) { .nla_type = INET_DIAG_REQ_BYTECODE, .nla_len = NLA_HDRLEN + filter_len };
        msg.nlh = (struct nlmsghdr) {
                .nlmsg_len = NLMSG_LENGTH(sizeof msg.req) + NLA_HDRLEN + filter_len,
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                .nlmsg_seq = (uint32_t) family,
        };
        msg.req = (struct inet_diag_req_v2) {
                .sdiag_family = (uint8_t) family,
                .sdiag_protocol = IPPROTO_TCP,
                .idiag_states = COUNTED_STATES,
        };
        if (sendto(nl, &msg, msg.nlh.nlmsg_len, 0, (struct sockaddr *) &kernel, sizeof kernel) < 0)
                return -errno;
        for (;;) {
                ssize_t k = recv(nl, buf, sizeof buf, 0);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EPROTO;
                for (struct nlmsghdr *h = (struct nlmsghdr *) buf; NLMSG_OK(h, (size_t) k); h = NLMSG_NEXT(h, k)) {
                        const struct inet_diag_msg *d;

                        if (h->nlmsg_seq != (uint32_t) family)
                                continue;
                        if (h->nlmsg_type == NLMSG_DONE)
                                return 0;
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(h);

                                return h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error < 0 ? e->error : -EPROTO;
                        }
                        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof *d))
                                continue;
                        d = NLMSG_DATA(h);
                        for (size_t i = 0; i < n; i++)
                                if (sock_diag_addr_matches(&listeners[i], d->idiag_family, ntohs(d->id.idiag_sport),
                                                           d->id.idiag_src)) {
                                        (*count)++;
                                        break;
                                }
                }
        }
}

int sock_diag_count_connections(const int *fds, size_t n_fds, uint64_t *ret) {
        struct sockaddr_storage listeners[SOCK_DIAG_LISTENERS_MAX];
        uint16_t ports[SOCK_DIAG_LISTENERS_MAX];
        size_t n = 0, n_ports = 0;
        bool want[2] = {}; /* AF_INET, AF_INET6 dumps */
        uint64_t count = 0;
        int nl, r = 0;

        for (size_t i = 0; i < n_fds && n < SOCK_DIAG_LISTENERS_MAX; i++) {
                socklen_t len = sizeof listeners[n];
                int type = 0, protocol = 0;
                socklen_t optlen = sizeof type;
                uint16_t port;
                bool seen = false;

                if (getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &optlen) < 0 || type != SOCK_STREAM)
                        continue;
                optlen = sizeof protocol;
                if (getsockopt(fds[i], SOL_SOCKET, SO_PROTOCOL, &protocol, &optlen) < 0 || protocol != IPPROTO_TCP)
                        continue;
                if (getsockname(fds[i], (struct sockaddr *) &listeners[n], &len) < 0)
                        continue;
                if (listeners[n].ss_family == AF_INET) {
                        port = ntohs(((struct sockaddr_in *) &listeners[n])->sin_port);
                        want[0] = true;
                } else if (listeners[n].ss_family == AF_INET6) {
                        port = ntohs(((struct sockaddr_in6 *) &listeners[n])->sin6_port);
                        want[1] = true;
                } else
                        continue;
                for (size_t j = 0; j < n_ports; j++)
                        seen = seen || ports[j] == port;
                if (!seen)
                        ports[n_ports++] = port;
                n++;
        }
        *ret = 0;
        if (n == 0)
                return 0;
        nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (nl < 0)
                return -errno;
        /* An IPv4 listener's connections come in the IPv4 dump only; an IPv6 one's in the IPv6 dump only,
         * v4-mapped ones included. */
        if (want[0])
                r = count_family(nl, AF_INET, listeners, n, ports, n_ports, &count);
        if (r >= 0 && want[1])
                r = count_family(nl, AF_INET6, listeners, n, ports, n_ports, &count);
        close(nl);
        if (r < 0)
                return r;
        *ret = count;
        return 0;
}
