/* SPDX-License-Identifier: MIT */
/* Tests for `corral check --unit`'s conclusions (unit-check.c) from a unit as systemd describes it over
 * D-Bus; the D-Bus side is tested against a real systemd by the e2e tier (tests/e2e/run.sh, reuseport). */
#include <criterion/criterion.h>
#include <string.h>

#include "unit-check.h"

TestSuite(unit_check, .timeout = 10);

static UnitListen tcp = { "Stream", "127.0.0.1:8080" }, tcp6 = { "Stream", "[::]:8080" },
                  unix_path = { "Stream", "/run/corral-app.sock" }, abstract = { "Stream", "@app" },
                  udp = { "Datagram", "0.0.0.0:53" }, vsock = { "Stream", "vsock:2:80" };

static UnitInfo service(UnitSocket *sockets, size_t n) {
        return (UnitInfo){ .name = "corral@app.service",
                           .load_state = "loaded",
                           .user = "",
                           .sockets = sockets,
                           .n_sockets = n };
}

static int check(const UnitInfo *u, bool has_listen, bool reuseport, char ***problems) {
        *problems = NULL;
        return unit_check(u, has_listen, reuseport, problems);
}

Test(unit_check, reuseport_with_reuseport_tcp_sockets_and_root_is_fine) {
        UnitListen l[] = { tcp, tcp6 };
        UnitSocket s = { .name = "corral@app.socket", .reuse_port = true, .listen = l, .n_listen = 2 };
        UnitInfo u = service(&s, 1);
        char **p;

        cr_assert_eq(check(&u, false, true, &p), 0);
        cr_assert_null(p);
        u.user = "root";
        cr_assert_eq(check(&u, false, true, &p), 0);
}

Test(unit_check, shared_takes_any_socket) {
        UnitListen l[] = { unix_path, udp };
        UnitSocket s = { .name = "corral@app.socket", .reuse_port = false, .listen = l, .n_listen = 2 };
        UnitInfo u = service(&s, 1);
        char **p;

        u.dynamic_user = true;
        cr_assert_eq(check(&u, false, false, &p), 0);
}

Test(unit_check, reuseport_names_each_problem) {
        UnitListen l[] = { tcp, unix_path, abstract, udp, vsock };
        UnitSocket s = { .name = "corral@app.socket", .reuse_port = false, .listen = l, .n_listen = 5 };
        UnitInfo u = service(&s, 1);
        char **p;

        u.dynamic_user = true;
        cr_assert_eq(check(&u, false, true, &p), 6);
        cr_assert(strstr(p[0], "corral@app.socket: ReusePort=no") && strstr(p[0], "ReusePort=yes"), "%s",
                  p[0]);
        cr_assert(strstr(p[1], "ListenStream=/run/corral-app.sock") && strstr(p[1], "TCP sockets only"),
                  "%s", p[1]);
        cr_assert(strstr(p[2], "ListenStream=@app"), "%s", p[2]);
        cr_assert(strstr(p[3], "ListenDatagram=0.0.0.0:53"), "%s", p[3]);
        cr_assert(strstr(p[4], "ListenStream=vsock:2:80"), "%s", p[4]);
        cr_assert(strstr(p[5], "corral@app.service: DynamicUser=yes") && strstr(p[5], "owner"), "%s", p[5]);
        cr_assert_null(p[6]);
        strv_free(p);
}

Test(unit_check, reuseport_refuses_another_user) {
        UnitListen l[] = { tcp };
        UnitSocket s = { .name = "corral@app.socket", .reuse_port = true, .listen = l, .n_listen = 1 };
        UnitInfo u = service(&s, 1);
        char **p;

        u.user = "www-data";
        cr_assert_eq(check(&u, false, true, &p), 1);
        cr_assert(strstr(p[0], "User=www-data"), "%s", p[0]);
        strv_free(p);
        u.user = "0";
        cr_assert_eq(check(&u, false, true, &p), 0);
}

Test(unit_check, a_unit_systemd_has_not_loaded) {
        UnitInfo u = service(NULL, 0);
        char **p;

        u.load_state = "not-found";
        cr_assert_eq(check(&u, true, false, &p), 1);
        cr_assert(strstr(p[0], "corral@app.service: not loaded by systemd (LoadState=not-found)"), "%s", p[0]);
        strv_free(p);
}

Test(unit_check, no_socket_is_fine_only_with_listen) {
        UnitInfo u = service(NULL, 0);
        char **p;

        cr_assert_eq(check(&u, true, true, &p), 0);
        /* corral binds Listen= itself, as its own user: nobody else's socket to join. */
        u.user = "www-data";
        cr_assert_eq(check(&u, true, true, &p), 0);
        cr_assert_eq(check(&u, false, false, &p), 1);
        cr_assert(strstr(p[0], "no .socket unit") && strstr(p[0], "no Listen="), "%s", p[0]);
        strv_free(p);
}

/* A socket named corral-status or corral-agent is corral's own endpoint: neither a worker socket nor one
 * Balance=reuseport needs anything of. */
Test(unit_check, corrals_own_endpoints_are_left_out) {
        UnitListen l[] = { tcp }, h[] = { { "Stream", "127.0.0.1:9100" } }, un[] = { unix_path };
        UnitSocket s[] = {
                { .name = "app.socket", .reuse_port = true, .listen = l, .n_listen = 1 },
                { .name = "app-status.socket", .fd_name = "corral-status", .listen = h, .n_listen = 1 },
                { .name = "app-agent.socket", .fd_name = "corral-agent", .listen = un, .n_listen = 1 }
        };
        UnitInfo u = service(s, 3);
        char **p;
        char *d;

        cr_assert_eq(check(&u, false, true, &p), 0);
        d = unit_describe_sockets(&u);
        cr_assert_str_eq(d,
                         "app.socket (127.0.0.1:8080, ReusePort=yes) app-status.socket (corral-status: "
                         "127.0.0.1:9100, ReusePort=no) app-agent.socket (corral-agent: /run/corral-app.sock, "
                         "ReusePort=no)");
        free(d);
        /* Only endpoints: no socket for the workers. */
        u.sockets = s + 1;
        u.n_sockets = 2;
        cr_assert_eq(check(&u, false, false, &p), 1);
        cr_assert(strstr(p[0], "no .socket unit"), "%s", p[0]);
        strv_free(p);
}

Test(unit_check, describe_lists_sockets_addresses_and_reuseport) {
        UnitListen a[] = { tcp, tcp6 }, b[] = { unix_path };
        UnitSocket s[] = { { .name = "one.socket", .reuse_port = true, .listen = a, .n_listen = 2 },
                           { .name = "two.socket", .reuse_port = false, .listen = b, .n_listen = 1 } };
        UnitInfo u = service(s, 2);
        char *d = unit_describe_sockets(&u);

        cr_assert_str_eq(d,
                         "one.socket (127.0.0.1:8080, [::]:8080, ReusePort=yes) two.socket "
                         "(/run/corral-app.sock, ReusePort=no)");
        free(d);
        u.n_sockets = 0;
        d = unit_describe_sockets(&u);
        cr_assert_str_eq(d, "");
        free(d);
}
