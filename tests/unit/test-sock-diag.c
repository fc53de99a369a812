/* SPDX-License-Identifier: MIT */
/* Tests for sock-diag.c: the kernel counts real connections on 127.0.0.1 (and ::1 where there is IPv6);
 * the filter program and the address match are also checked alone. */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sock-diag.h"
#include "util.h"

TestSuite(sock_diag, .timeout = 20);

/* A listener on addr (family's loopback or wildcard), port 0; returns its fd and port. */
static int listener(int family, bool wildcard, uint16_t *ret_port) {
        struct sockaddr_storage sa = { .ss_family = (sa_family_t) family };
        socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        if (family == AF_INET)
                ((struct sockaddr_in *) &sa)->sin_addr.s_addr = htonl(wildcard ? INADDR_ANY : INADDR_LOOPBACK);
        else
                ((struct sockaddr_in6 *) &sa)->sin6_addr = wildcard ? in6addr_any : in6addr_loopback;
        if (bind(fd, (struct sockaddr *) &sa, len) < 0) {
                close(fd);
                return -errno;
        }
        cr_assert_eq(listen(fd, 64), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        *ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *) &sa)->sin_port :
                                              ((struct sockaddr_in6 *) &sa)->sin6_port);
        return fd;
}

static int client(int family, uint16_t port) {
        struct sockaddr_storage sa = { .ss_family = (sa_family_t) family };
        socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        if (family == AF_INET) {
                ((struct sockaddr_in *) &sa)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                ((struct sockaddr_in *) &sa)->sin_port = htons(port);
        } else {
                ((struct sockaddr_in6 *) &sa)->sin6_addr = in6addr_loopback;
                ((struct sockaddr_in6 *) &sa)->sin6_port = htons(port);
        }
        cr_assert_eq(connect(fd, (struct sockaddr *) &sa, len), 0, "connect: %m");
        return fd;
}

static uint64_t count(const int *fds, size_t n) {
        uint64_t c = 99;

        cr_assert_eq(sock_diag_count_connections(fds, n, &c), 0);
        return c;
}

/* The kernel moves a connection between states on its own time (a FIN in flight): wait for the count. */
static void expect_count(const int *fds, size_t n, uint64_t want) {
        uint64_t c = 0;

        for (int i = 0; i < 200; i++) {
                c = count(fds, n);
                if (c == want)
                        return;
                usleep(10000);
        }
        cr_assert_eq(c, want, "counted %llu, expected %llu", (unsigned long long) c, (unsigned long long) want);
}

Test(sock_diag, counts_queued_accepted_and_half_closed_connections_of_its_listeners_only) {
        uint16_t port, other_port;
        int l = listener(AF_INET, false, &port), other = listener(AF_INET, false, &other_port);
        int c[4], accepted, fds[] = { l };

        cr_assert_geq(l, 0);
        cr_assert_geq(other, 0);
        expect_count(fds, 1, 0);
        for (int i = 0; i < 3; i++)
                c[i] = client(AF_INET, port);
        /* Another listener's connection, and our clients' own ends (their local port is not ours). */
        c[3] = client(AF_INET, other_port);
        expect_count(fds, 1, 3);
        accepted = accept(l, NULL, NULL);
        cr_assert_geq(accepted, 0);
        expect_count(fds, 1, 3);
        /* The peer closes a queued one: CLOSE_WAIT, still owed an answer. */
        close(c[2]);
        expect_count(fds, 1, 3);
        /* The server closes the accepted one: nothing more to serve on it. */
        close(accepted);
        expect_count(fds, 1, 2);
        close(c[0]);
        close(c[1]);
        close(l); /* the queued ones die with their listener */
        close(c[3]);
        close(other);
}

Test(sock_diag, a_wildcard_dual_stack_listener_counts_ipv4_and_ipv6) {
        uint16_t port;
        int l = listener(AF_INET6, true, &port), c4, c6, fds[2];

        if (l < 0)
                cr_skip_test("no IPv6 here: %s", strerror(-l));
        fds[0] = l;
        c4 = client(AF_INET, port);
        c6 = client(AF_INET6, port);
        expect_count(fds, 1, 2);
        close(c4);
        close(c6);
        close(l);
}

Test(sock_diag, skips_what_is_not_a_tcp_socket_and_counts_nothing_for_none) {
        int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), d = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int fds[] = { u, d, -1 };

        cr_assert_eq(count(fds, 3), 0);
        cr_assert_eq(count(NULL, 0), 0);
        close(u);
        close(d);
}

Test(sock_diag, many_listeners_are_one_program_the_kernel_accepts) {
        uint16_t ports[40];
        int fds[40], c;

        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                fds[i] = listener(AF_INET, false, &ports[i]);
                cr_assert_geq(fds[i], 0);
        }
        /* The last port's test is 624 bytes into the program: beyond an 8-bit jump. */
        c = client(AF_INET, ports[39]);
        expect_count(fds, ELEMENTSOF(fds), 1);
        close(c);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
}

Test(sock_diag, filter_program_layout) {
        uint16_t ports[] = { 80, 8080, 443 };
        char buf[256];
        size_t len = sock_diag_port_filter(ports, 3, buf, sizeof buf);

        cr_assert_eq(len, 3 * 16);
        cr_assert_eq(sock_diag_port_filter(ports, 3, buf, 47), 0);
        cr_assert_eq(sock_diag_port_filter(ports, 0, buf, sizeof buf), 0);
}

Test(sock_diag, address_match) {
        struct sockaddr_storage l = {};
        struct sockaddr_in *sin = (struct sockaddr_in *) &l;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &l;
        uint32_t lo4[4] = { htonl(INADDR_LOOPBACK) }, other4[4] = { htonl(0x7f000002) };
        uint32_t mapped[4] = { 0, 0, htonl(0xffff), htonl(INADDR_LOOPBACK) }, lo6[4] = { 0, 0, 0, htonl(1) };

        sin->sin_family = AF_INET;
        sin->sin_port = htons(8080);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert(sock_diag_addr_matches(&l, AF_INET, 8080, lo4));
        cr_assert_not(sock_diag_addr_matches(&l, AF_INET, 8081, lo4));
        cr_assert_not(sock_diag_addr_matches(&l, AF_INET, 8080, other4));
        cr_assert_not(sock_diag_addr_matches(&l, AF_INET6, 8080, lo6));
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        cr_assert(sock_diag_addr_matches(&l, AF_INET, 8080, other4));

        l = (struct sockaddr_storage) {};
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(8080);
        sin6->sin6_addr = in6addr_loopback;
        cr_assert(sock_diag_addr_matches(&l, AF_INET6, 8080, lo6));
        cr_assert_not(sock_diag_addr_matches(&l, AF_INET6, 8080, mapped));
        cr_assert_not(sock_diag_addr_matches(&l, AF_INET, 8080, lo4));
        sin6->sin6_addr = in6addr_any;
        cr_assert(sock_diag_addr_matches(&l, AF_INET6, 8080, mapped));
}
