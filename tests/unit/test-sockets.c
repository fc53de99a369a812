/* SPDX-License-Identifier: MIT */
/* Tests for sockets.c: real binds on 127.0.0.1 and in a temporary directory, and taking sockets from
 * LISTEN_FDS in a forked child that plays systemd's part. The spec parser is tested in test-parse.c. */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "sockets.h"
#include "tmpdir.h"

TestSuite(sockets, .timeout = 10);

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        cr_assert_not_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static uint16_t fd_port(int fd) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);

        cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        if (sa.ss_family == AF_INET6)
                return ntohs(((struct sockaddr_in6 *) &sa)->sin6_port);
        return ntohs(((struct sockaddr_in *) &sa)->sin_port);
}

Test(sockets, bind_tcp_loopback_port_zero) {
        char *const specs[] = { (char *) "127.0.0.1:0", NULL };
        _cleanup_free_ char *error = NULL, *names = NULL;
        SocketSet set = {};
        int accepting = 0, c;
        socklen_t len = sizeof(accepting);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

        cr_assert_eq(socket_set_bind(specs, false, &set, &error), 0, "%s", error);
        cr_assert_eq(set.n, 1);
        cr_assert_geq(set.sockets[0].fd, 0);
        cr_assert_eq(set.sockets[0].family, AF_INET);
        cr_assert_eq(set.sockets[0].type, SOCK_STREAM);
        cr_assert_str_eq(set.sockets[0].name, "listen");
        cr_assert_null(set.sockets[0].unix_path);
        cr_assert(fcntl(set.sockets[0].fd, F_GETFD) & FD_CLOEXEC);
        cr_assert_eq(getsockopt(set.sockets[0].fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len), 0);
        cr_assert_eq(accepting, 1);

        /* The kernel picked a port and queues a connection in the backlog without an accept(). */
        sa.sin_port = htons(fd_port(set.sockets[0].fd));
        cr_assert_neq(sa.sin_port, 0);
        c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(connect(c, (struct sockaddr *) &sa, sizeof(sa)), 0);
        close(c);

        names = socket_set_names(&set);
        cr_assert_str_eq(names, "listen");
        socket_set_done(&set);
        cr_assert_eq(set.n, 0);
        cr_assert_null(set.sockets);
}

Test(sockets, bind_several_in_order_with_names) {
        char *const specs[] = { (char *) "http=127.0.0.1:0", (char *) "dns=udp:127.0.0.1:0",
                                (char *) "tcp:127.0.0.1:0", NULL };
        _cleanup_free_ char *error = NULL, *names = NULL;
        SocketSet set = {};

        cr_assert_eq(socket_set_bind(specs, false, &set, &error), 0, "%s", error);
        cr_assert_eq(set.n, 3);
        cr_assert_eq(set.sockets[0].type, SOCK_STREAM);
        cr_assert_eq(set.sockets[1].type, SOCK_DGRAM);
        cr_assert_eq(set.sockets[2].type, SOCK_STREAM);
        names = socket_set_names(&set);
        cr_assert_str_eq(names, "http:dns:listen");
        socket_set_done(&set);
}

/* What `corral status` shows: each address as a --listen spec would name it, so it can be bound again. */
Test(sockets, addresses_read_back_in_listen_spec_syntax) {
        char dir[] = "/tmp/test-sockets-XXXXXX", path[64], address[SOCKET_ADDRESS_MAX];
        _cleanup_free_ char *error = NULL, *unix_spec = NULL, *tcp = NULL, *udp = NULL;
        SocketSet set = {};

        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/app.sock", dir);
        unix_spec = strdup_printf("unix:%s", path);
        cr_assert_eq(socket_set_bind((char *const[]){ (char *) "http=127.0.0.1:0", (char *) "dns=udp:127.0.0.1:0",
                                                      unix_spec, NULL },
                                     false, &set, &error),
                     0, "%s", error);
        tcp = strdup_printf("127.0.0.1:%u", fd_port(set.sockets[0].fd));
        udp = strdup_printf("udp:127.0.0.1:%u", fd_port(set.sockets[1].fd));
        cr_assert_str_eq(listen_socket_address(&set.sockets[0], address, sizeof address), tcp);
        cr_assert_str_eq(listen_socket_address(&set.sockets[1], address, sizeof address), udp);
        cr_assert_str_eq(listen_socket_address(&set.sockets[2], address, sizeof address), unix_spec);
        cr_assert_str_eq(listen_socket_type(&set.sockets[0]), "stream");
        cr_assert_str_eq(listen_socket_type(&set.sockets[1]), "datagram");
        cr_assert_str_eq(listen_socket_type(&set.sockets[2]), "stream");
        socket_set_done(&set);
        cr_assert_eq(rmdir(dir), 0);
}

/* systemd may pass an abstract socket, which a spec cannot bind: it reads back with "@". */
Test(sockets, abstract_address_reads_back_with_an_at) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "\0test-sockets-abstract" };
        ListenSocket l = { .family = AF_UNIX, .type = SOCK_SEQPACKET };
        char address[SOCKET_ADDRESS_MAX];

        l.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(l.fd, 0);
        cr_assert_eq(bind(l.fd, (struct sockaddr *) &sa,
                          offsetof(struct sockaddr_un, sun_path) + 1 + strlen("test-sockets-abstract")),
                     0);
        cr_assert_str_eq(listen_socket_address(&l, address, sizeof address), "unix:@test-sockets-abstract");
        cr_assert_str_eq(listen_socket_type(&l), "seqpacket");
        close(l.fd);
}

Test(sockets, bind_ipv6_loopback_is_v6only) {
        char *const specs[] = { (char *) "[::1]:0", NULL };
        _cleanup_free_ char *error = NULL;
        SocketSet set = {};
        int v6only = 0, fd;
        socklen_t len = sizeof(v6only);
        struct sockaddr_in6 probe = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

        /* Containers without IPv6 exist; this test only means something where ::1 can be bound. */
        fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &probe, sizeof(probe)) < 0)
                cr_skip_test("IPv6 loopback not available");
        close(fd);

        cr_assert_eq(socket_set_bind(specs, false, &set, &error), 0, "%s", error);
        cr_assert_eq(set.sockets[0].family, AF_INET6);
        cr_assert_eq(getsockopt(set.sockets[0].fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
        cr_assert_eq(v6only, 1);
        socket_set_done(&set);
}

Test(sockets, busy_port_fails_and_closes_everything) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        _cleanup_free_ char *error = NULL, *busy = NULL, *want = NULL;
        SocketSet set = { .n = 42 };
        int fd, before;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(fd, 1), 0);
        busy = strdup_printf("127.0.0.1:%u", fd_port(fd));

        before = count_fds();
        cr_assert_eq(socket_set_bind((char *const[]){ (char *) "127.0.0.1:0", busy, NULL }, false, &set, &error),
                     -EADDRINUSE);
        want = strdup_printf("Failed to bind %s: Address already in use", busy);
        cr_assert_str_eq(error, want);
        cr_assert_eq(set.n, 42, "output written on failure");
        cr_assert_eq(count_fds(), before, "sockets leaked on failure");
        close(fd);
}

Test(sockets, invalid_spec_is_reported_before_binding) {
        _cleanup_free_ char *error = NULL;
        SocketSet set = {};

        cr_assert_eq(socket_set_bind((char *const[]){ (char *) "127.0.0.1", NULL }, false, &set, &error), -EINVAL);
        cr_assert_str_eq(error, "Invalid listen address '127.0.0.1': missing port");
}

Test(sockets, empty_spec_list_binds_nothing) {
        SocketSet set = {};
        _cleanup_free_ char *names = NULL;

        cr_assert_eq(socket_set_bind(NULL, false, &set, NULL), 0);
        cr_assert_eq(set.n, 0);
        names = socket_set_names(&set);
        cr_assert_str_eq(names, "");
        socket_set_done(&set);
}

/* A bound UNIX socket at path; listening when listening is true, left behind as stale otherwise. */
static int unix_socket_at(const char *path, bool listening) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        if (!listening) {
                close(fd);
                return -EBADF;
        }
        cr_assert_eq(listen(fd, 1), 0);
        return fd;
}

Test(sockets, bind_unix_with_mode_and_unlink_on_done, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/app.sock", tmpdir);
        _cleanup_free_ char *spec = strdup_printf("app=unix:%s:0640", path);
        _cleanup_free_ char *error = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        SocketSet set = {};
        struct stat st;
        int c;

        cr_assert_eq(socket_set_bind((char *const[]){ spec, NULL }, false, &set, &error), 0, "%s", error);
        cr_assert_eq(set.n, 1);
        cr_assert_eq(set.sockets[0].family, AF_UNIX);
        cr_assert_eq(set.sockets[0].type, SOCK_STREAM);
        cr_assert_str_eq(set.sockets[0].unix_path, path);
        cr_assert_str_eq(set.sockets[0].name, "app");

        cr_assert_eq(stat(path, &st), 0);
        cr_assert(S_ISSOCK(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, 0640, "mode %o", st.st_mode & 07777);

        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(connect(c, (struct sockaddr *) &sa, sizeof(sa)), 0);
        close(c);

        socket_set_done(&set);
        cr_assert_eq(stat(path, &st), -1);
        cr_assert_eq(errno, ENOENT);
}

Test(sockets, done_leaves_a_path_someone_else_took_over, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/app.sock", tmpdir);
        _cleanup_free_ char *moved = strdup_printf("%s/moved.sock", tmpdir);
        _cleanup_free_ char *spec = strdup_printf("unix:%s", path);
        _cleanup_free_ char *error = NULL;
        SocketSet set = {};
        int fd;

        cr_assert_eq(socket_set_bind((char *const[]){ spec, NULL }, false, &set, &error), 0, "%s", error);
        cr_assert_eq(rename(path, moved), 0);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        socket_set_done(&set);
        cr_assert_eq(access(path, F_OK), 0, "someone else's file was unlinked");
}

Test(sockets, bind_unix_keeps_umask_when_no_mode, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/plain.sock", tmpdir);
        _cleanup_free_ char *spec = strdup_printf("unix:%s", path);
        _cleanup_free_ char *error = NULL;
        SocketSet set = {};
        mode_t old = umask(022);
        struct stat st;

        cr_assert_eq(socket_set_bind((char *const[]){ spec, NULL }, false, &set, &error), 0, "%s", error);
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0755, "mode %o", st.st_mode & 0777);
        cr_assert_eq(umask(old), 022, "umask not restored");
        socket_set_done(&set);
}

Test(sockets, stale_unix_socket_is_replaced, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/stale.sock", tmpdir);
        _cleanup_free_ char *spec = strdup_printf("unix:%s:0600", path);
        _cleanup_free_ char *error = NULL;
        SocketSet set = {};
        struct stat st;

        unix_socket_at(path, false);
        cr_assert_eq(stat(path, &st), 0, "no stale socket to replace");

        cr_assert_eq(socket_set_bind((char *const[]){ spec, NULL }, false, &set, &error), 0, "%s", error);
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600);
        socket_set_done(&set);
}

Test(sockets, live_unix_socket_is_not_stolen, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/live.sock", tmpdir);
        _cleanup_free_ char *spec = strdup_printf("unix:%s", path);
        _cleanup_free_ char *error = NULL, *want = NULL;
        SocketSet set = {};
        struct stat st;
        int fd;

        fd = unix_socket_at(path, true);
        cr_assert_eq(socket_set_bind((char *const[]){ spec, NULL }, false, &set, &error), -EADDRINUSE);
        want = strdup_printf("Failed to bind %s: Address already in use", spec);
        cr_assert_str_eq(error, want);
        cr_assert_eq(stat(path, &st), 0, "the live socket was removed");
        close(fd);
}

Test(sockets, unix_path_taken_by_a_file_is_an_error, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/file", tmpdir);
        _cleanup_free_ char *spec = strdup_printf("unix:%s", path);
        _cleanup_free_ char *error = NULL, *want = NULL;
        SocketSet set = {};
        int fd;

        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(socket_set_bind((char *const[]){ spec, NULL }, false, &set, &error), -EEXIST);
        want = strdup_printf("Failed to bind %s: File exists", spec);
        cr_assert_str_eq(error, want);
        cr_assert_eq(access(path, F_OK), 0, "the file was removed");
}

Test(sockets, later_failure_unlinks_earlier_unix_paths, .init = make_tmpdir, .fini = remove_tmpdir) {
        _cleanup_free_ char *path = strdup_printf("%s/first.sock", tmpdir);
        _cleanup_free_ char *spec = strdup_printf("unix:%s", path);
        _cleanup_free_ char *bad = strdup_printf("unix:%s/missing-dir/second.sock", tmpdir);
        _cleanup_free_ char *error = NULL, *want = NULL;
        SocketSet set = {};

        cr_assert_eq(socket_set_bind((char *const[]){ spec, bad, NULL }, false, &set, &error), -ENOENT);
        want = strdup_printf("Failed to bind %s: No such file or directory", bad);
        cr_assert_str_eq(error, want);
        cr_assert_eq(access(path, F_OK), -1, "the first socket was left behind");
}

/* Runs fn in a forked child and returns its exit status. The child owns fd 3 and the LISTEN_*
 * environment, which the criterion worker process must not lose. */
static int run_in_child(int (*fn)(void)) {
        int status = 0;
        pid_t pid;

        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
                _exit(fn());
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status), "child crashed");
        return WEXITSTATUS(status);
}

#define CHILD_CHECK(expr)                                                                                   \
        do {                                                                                                \
                if (!(expr)) {                                                                              \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);            \
                        return 1;                                                                           \
                }                                                                                           \
        } while (0)

/* Puts fd at SD_LISTEN_FDS_START and sets LISTEN_* the way systemd does for the current process. */
static int pass_as_systemd(int fd, const char *names) {
        char pid[32];

        if (dup2(fd, SD_LISTEN_FDS_START) < 0)
                return -errno;
        if (fd != SD_LISTEN_FDS_START)
                close(fd);
        snprintf(pid, sizeof(pid), "%i", (int) getpid());
        setenv("LISTEN_PID", pid, 1);
        setenv("LISTEN_FDS", "1", 1);
        if (names)
                setenv("LISTEN_FDNAMES", names, 1);
        else
                unsetenv("LISTEN_FDNAMES");
        return 0;
}

static int child_takes_listening_socket(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        char *error = NULL;
        SocketSet set = {};
        int fd;

        fd = socket(AF_INET, SOCK_STREAM, 0);
        CHILD_CHECK(fd >= 0);
        CHILD_CHECK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        CHILD_CHECK(listen(fd, 8) == 0);
        CHILD_CHECK(pass_as_systemd(fd, "http") == 0);

        CHILD_CHECK(socket_set_from_systemd(&set, &error) == 1);
        CHILD_CHECK(error == NULL);
        CHILD_CHECK(set.n == 1);
        CHILD_CHECK(set.sockets[0].fd == SD_LISTEN_FDS_START);
        CHILD_CHECK(streq(set.sockets[0].name, "http"));
        CHILD_CHECK(set.sockets[0].family == AF_INET);
        CHILD_CHECK(set.sockets[0].type == SOCK_STREAM);
        CHILD_CHECK(set.sockets[0].unix_path == NULL);
        CHILD_CHECK(fcntl(SD_LISTEN_FDS_START, F_GETFD) & FD_CLOEXEC);
        /* Our LISTEN_* must not leak into workers by inheritance. */
        CHILD_CHECK(!getenv("LISTEN_FDS") && !getenv("LISTEN_PID") && !getenv("LISTEN_FDNAMES"));

        socket_set_done(&set);
        CHILD_CHECK(fcntl(SD_LISTEN_FDS_START, F_GETFD) < 0);
        return 0;
}

Test(sockets, from_systemd_takes_passed_listening_socket) {
        cr_assert_eq(run_in_child(child_takes_listening_socket), 0);
}

static int child_default_name_and_udp(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        char *error = NULL;
        SocketSet set = {};
        int fd;

        fd = socket(AF_INET, SOCK_DGRAM, 0);
        CHILD_CHECK(fd >= 0);
        CHILD_CHECK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        CHILD_CHECK(pass_as_systemd(fd, NULL) == 0);

        CHILD_CHECK(socket_set_from_systemd(&set, &error) == 1);
        CHILD_CHECK(set.sockets[0].type == SOCK_DGRAM);
        CHILD_CHECK(streq(set.sockets[0].name, "unknown"));
        socket_set_done(&set);
        return 0;
}

Test(sockets, from_systemd_udp_and_default_name) {
        cr_assert_eq(run_in_child(child_default_name_and_udp), 0);
}

static int child_rejects_pipe(void) {
        char *error = NULL;
        SocketSet set = { .n = 42 };
        int p[2];

        CHILD_CHECK(pipe(p) == 0);
        CHILD_CHECK(pass_as_systemd(p[0], "in") == 0);

        CHILD_CHECK(socket_set_from_systemd(&set, &error) == -EINVAL);
        CHILD_CHECK(error && streq(error, "fd 3 ('in') passed by systemd is not a socket"));
        CHILD_CHECK(set.n == 42);
        free(error);
        return 0;
}

Test(sockets, from_systemd_rejects_a_non_socket) {
        cr_assert_eq(run_in_child(child_rejects_pipe), 0);
}

static int child_rejects_connection(void) {
        char *error = NULL;
        SocketSet set = {};
        int pair[2];

        /* What Accept=yes would pass: a connected stream socket. */
        CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
        CHILD_CHECK(pass_as_systemd(pair[0], "conn") == 0);

        CHILD_CHECK(socket_set_from_systemd(&set, &error) == -EINVAL);
        CHILD_CHECK(error &&
                    streq(error,
                          "fd 3 ('conn') passed by systemd is not a listening socket (Accept=yes is not "
                          "supported)"));
        free(error);
        return 0;
}

Test(sockets, from_systemd_rejects_a_connected_socket) {
        cr_assert_eq(run_in_child(child_rejects_connection), 0);
}

static int child_ignores_other_pid(void) {
        SocketSet set = { .n = 42 };
        int p[2];

        CHILD_CHECK(pipe(p) == 0);
        CHILD_CHECK(pass_as_systemd(p[0], NULL) == 0);
        /* LISTEN_PID names someone else: the fds are not for us. */
        setenv("LISTEN_PID", "1", 1);

        CHILD_CHECK(socket_set_from_systemd(&set, NULL) == 0);
        CHILD_CHECK(set.n == 0 && set.sockets == NULL);
        return 0;
}

Test(sockets, from_systemd_ignores_fds_for_another_pid) {
        cr_assert_eq(run_in_child(child_ignores_other_pid), 0);
}

Test(sockets, from_systemd_without_environment_takes_nothing) {
        SocketSet set = { .n = 42 };

        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        cr_assert_eq(socket_set_from_systemd(&set, NULL), 0);
        cr_assert_eq(set.n, 0);
        cr_assert_null(set.sockets);
}
