/* SPDX-License-Identifier: MIT */
/* corral-test-worker: a small single-threaded epoll HTTP/1.1 server that takes its sockets with
 * sd_listen_fds(), says READY=1, and can crash, exit, hang, leak a child or ignore SIGTERM on command,
 * so the integration tests can drive corral with a worker whose every move they control. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <systemd/sd-daemon.h>

#define IN_MAX 16384
#define IDLE_LINGER_MS 250

extern char **environ;

typedef enum SourceKind { SOURCE_LISTEN, SOURCE_CONN, SOURCE_SIGNAL, SOURCE_TIMER } SourceKind;

typedef struct Source {
        SourceKind kind;
        int fd;
} Source;

typedef struct Conn {
        Source source;
        struct Conn *prev, *next;
        char in[IN_MAX];
        size_t n_in;
        char *out;
        size_t n_out, out_done;
        bool close_after; /* close once the pending output is written */
        int64_t last_active_ms;
} Conn;

static struct {
        double ready_delay;
        int no_ready, crash_at_start, ignore_sigterm, spawn_child, notify_via_child, watchdog; /* getopt flags */
        int escaped_child;
        int exit_at_start;
        long drain_ms;
        const char *status;
        long log_lines, log_bytes, log_every_ms;
        int log_level_line;
} arg = { .exit_at_start = -1, .drain_ms = 5000, .log_bytes = 100 };

static const char *slot = "-", *generation = "-", *count = "-";
static char *env_snapshot, *fds_snapshot, *sigmask_snapshot, *cwd_snapshot, *argv_snapshot;
#define ELEMENTS(x) (sizeof(x) / sizeof((x)[0]))

static int epoll_fd = -1;
static void *leaked[64]; /* GET /leak/N */
static size_t n_leaked;
static Source listen_sources[64];
static size_t n_listen;
static Conn *conns;
static size_t n_conns;
static bool draining;
static int64_t drain_deadline_ms;

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(int code, const char *msg) {
        fprintf(stderr, "test-worker %s: %s\n", slot, msg);
        exit(code);
}

/* Appends to a malloc'ed string; the snapshots are small and taken once, so simplicity wins. */
static void strbuf_append(char **buf, const char *s) {
        size_t old = *buf ? strlen(*buf) : 0, add = strlen(s);
        char *p = realloc(*buf, old + add + 1);

        if (!p)
                die(1, "out of memory");
        memcpy(p + old, s, add + 1);
        *buf = p;
}

/* Everything the tests inspect is captured before this process changes anything itself: the environment
 * before sd_listen_fds(1) unsets LISTEN_*, the fds before it opens any, and the signal mask before it
 * blocks signals for the signalfd. The tests want to see what corral handed over, not what we did. */
static void take_snapshots(char **argv) {
        char line[512], cwd[4096];
        DIR *d;
        FILE *f;

        strbuf_append(&cwd_snapshot, getcwd(cwd, sizeof(cwd)) ?: "?");
        strbuf_append(&cwd_snapshot, "\n");
        for (char **a = argv; *a; a++) {
                strbuf_append(&argv_snapshot, *a);
                strbuf_append(&argv_snapshot, "\n");
        }

        for (char **e = environ; *e; e++) {
                strbuf_append(&env_snapshot, *e);
                strbuf_append(&env_snapshot, "\n");
        }
        strbuf_append(&env_snapshot, "");
        d = opendir("/proc/self/fd");
        if (!d)
                die(1, "cannot open /proc/self/fd");
        for (struct dirent *de; (de = readdir(d));) {
                char target[256];
                ssize_t l;

                if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
                        continue;
                l = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
                target[l < 0 ? 0 : l] = 0;
                strbuf_append(&fds_snapshot, de->d_name);
                strbuf_append(&fds_snapshot, " ");
                strbuf_append(&fds_snapshot, target);
                strbuf_append(&fds_snapshot, "\n");
        }
        closedir(d);

        f = fopen("/proc/self/status", "re");
        if (!f)
                die(1, "cannot open /proc/self/status");
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "SigBlk:", 7) == 0 || strncmp(line, "SigIgn:", 7) == 0)
                        strbuf_append(&sigmask_snapshot, line);
        fclose(f);
}

static void crash_now(void) {
        struct rlimit rl = {};
        sigset_t ss;

        (void) setrlimit(RLIMIT_CORE, &rl);
        signal(SIGSEGV, SIG_DFL);
        sigemptyset(&ss);
        sigaddset(&ss, SIGSEGV);
        sigprocmask(SIG_UNBLOCK, &ss, NULL);
        raise(SIGSEGV);
        _exit(139);
}

static void epoll_set(int op, Source *s, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.ptr = s };

        if (epoll_ctl(epoll_fd, op, s->fd, &ev) < 0 && op == EPOLL_CTL_ADD)
                die(1, "epoll_ctl(ADD) failed");
}

static void send_ready(void) {
        char msg[512];

        snprintf(msg, sizeof(msg), "READY=1%s%s", arg.status ? "\nSTATUS=" : "", arg.status ?: "");
        if (arg.notify_via_child) {
                pid_t pid = fork();

                if (pid < 0)
                        die(1, "fork failed");
                if (pid == 0) {
                        /* --notify-via-orphan: the helper double-forks first and notifies once it was
                         * re-parented, no longer below the worker but still in its cgroup. */
                        if (arg.notify_via_child == 2) {
                                pid_t worker = getppid();

                                if (fork() != 0)
                                        _exit(0);
                                for (int i = 0; i < 5000 && getppid() == worker; i++)
                                        (void) usleep(1000);
                        }
                        /* What "systemd-notify --ready" does as a user that cannot send in its parent's
                         * name: READY=1 in its own, then BARRIER=1, blocking until the receiver closed the
                         * barrier's fd, then exit at once (and the worker reaps it at once). */
                        int r = sd_notify(0, msg);

                        if (r <= 0)
                                fprintf(stderr, "test-worker %s: notify child: sd_notify() returned %d\n",
                                        slot, r);
                        r = sd_notify_barrier(0, 5 * 1000000ULL);
                        if (r < 0)
                                fprintf(stderr, "test-worker %s: notify child: sd_notify_barrier() returned %d\n",
                                        slot, r);
                        _exit(0);
                }
                fprintf(stderr, "test-worker %s: READY=1 sent by child %d\n", slot, (int) pid);
                return;
        }
        if (sd_notify(0, msg) <= 0)
                fprintf(stderr, "test-worker %s: sd_notify(READY=1) not delivered\n", slot);
}

/* A child left behind on purpose, bounded by an alarm so a failing test never leaks it for good. A plain
 * leftover stays in the worker's session and closes the listening sockets; an escaped one leaves the
 * session (setsid) and keeps them, as a daemonizing helper would: killing the worker's process group does
 * not reach it, only its cgroup does. */
static void spawn_child(bool escape) {
        pid_t pid = fork();

        if (pid < 0)
                die(1, "fork failed");
        if (pid == 0) {
                sigset_t ss;

                if (escape)
                        (void) setsid();
                else
                        for (size_t i = 0; i < n_listen; i++)
                                close(listen_sources[i].fd);
                close(epoll_fd);
                sigemptyset(&ss);
                sigprocmask(SIG_SETMASK, &ss, NULL);
                signal(SIGTERM, SIG_DFL);
                alarm(escape ? 30 : 60);
                for (;;)
                        pause();
        }
        fprintf(stderr, "test-worker %s: spawned %s child %d\n", slot, escape ? "escaped" : "leftover", (int) pid);
}

static void conn_close(Conn *c) {
        /* Deregister explicitly: a forked child (GET /spin) holds a copy of the fd, and epoll drops a
         * registration only when the last copy of the file closes; it would keep reporting this freed
         * connection otherwise. */
        (void) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->source.fd, NULL);
        close(c->source.fd);
        if (c->prev)
                c->prev->next = c->next;
        else
                conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        n_conns--;
        free(c->out);
        free(c);
}

static void conn_queue(Conn *c, const char *body, bool close_after) {
        size_t blen = strlen(body), hmax = 512;
        char *p = realloc(c->out, c->n_out + hmax + blen);
        int h;

        if (!p)
                die(1, "out of memory");
        c->out = p;
        h = snprintf(c->out + c->n_out, hmax,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: %s\r\n"
                     "X-Worker-Slot: %.64s\r\nX-Worker-Pid: %d\r\nX-Worker-Generation: %.64s\r\n\r\n",
                     blen, close_after ? "close" : "keep-alive", slot, (int) getpid(), generation);
        memcpy(c->out + c->n_out + h, body, blen);
        c->n_out += h + blen;
        if (close_after)
                c->close_after = true;
}

/* Writes what is pending. Returns false when the connection was closed. */
static bool conn_flush(Conn *c) {
        while (c->out_done < c->n_out) {
                ssize_t n = send(c->source.fd, c->out + c->out_done, c->n_out - c->out_done, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        epoll_set(EPOLL_CTL_MOD, &c->source, EPOLLIN | EPOLLOUT);
                        return true;
                }
                if (n < 0) {
                        conn_close(c);
                        return false;
                }
                c->out_done += n;
        }
        c->n_out = c->out_done = 0;
        epoll_set(EPOLL_CTL_MOD, &c->source, EPOLLIN);
        if (c->close_after) {
                conn_close(c);
                return false;
        }
        return true;
}

/* Copies the value of header NAME into BUF (empty if absent). */
static void header_get(const char *headers, const char *name, char *buf, size_t size) {
        size_t nl = strlen(name);

        buf[0] = 0;
        for (const char *l = headers; l && *l; l = strstr(l, "\r\n"), l = l ? l + 2 : NULL)
                if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
                        const char *v = l + nl + 1, *e = strstr(v, "\r\n");

                        snprintf(buf, size, "%.*s", (int) (e ? e - v : (long) strlen(v)), v);
                        return;
                }
}

_Noreturn static void hang(void) {
        sigset_t ss;

        /* Stop serving but stay killable: nothing blocked, SIGTERM default unless told to ignore it. */
        fprintf(stderr, "test-worker %s: hanging\n", slot);
        signal(SIGINT, SIG_DFL);
        if (!arg.ignore_sigterm)
                signal(SIGTERM, SIG_DFL);
        sigemptyset(&ss);
        sigprocmask(SIG_SETMASK, &ss, NULL);
        for (;;)
                pause();
}

/* Handles every complete request in the input buffer. Returns false when the connection was closed. */
static bool conn_process(Conn *c) {
        for (;;) {
                char *end = memmem(c->in, c->n_in, "\r\n\r\n", 4), method[16], path[256], version[16];
                char body[256], conn_hdr[128], clen_hdr[32], *headers;
                const char *resp = body;
                size_t used;
                long clen;
                bool close_after;

                if (!end && c->n_in >= IN_MAX - 1) {
                        conn_close(c); /* oversized header */
                        return false;
                }
                if (!end)
                        break;
                *end = 0;
                headers = strstr(c->in, "\r\n");
                headers = headers ? headers + 2 : end;
                if (sscanf(c->in, "%15s %255s %15s", method, path, version) != 3) {
                        conn_close(c);
                        return false;
                }
                header_get(headers, "Connection", conn_hdr, sizeof(conn_hdr));
                header_get(headers, "Content-Length", clen_hdr, sizeof(clen_hdr));
                clen = strtol(clen_hdr, NULL, 10);
                used = (size_t) (end + 4 - c->in) + (size_t) clen;
                if (clen < 0 || used >= IN_MAX - 1) {
                        conn_close(c);
                        return false;
                }
                if (used > c->n_in) {
                        *end = '\r';
                        break; /* wait for the body */
                }
                close_after = draining || strcasestr(conn_hdr, "close") ||
                              (strcmp(version, "HTTP/1.1") != 0 && !strcasestr(conn_hdr, "keep-alive"));

                if (strcmp(path, "/crash") == 0)
                        crash_now();
                if (strncmp(path, "/exit/", 6) == 0)
                        _exit((int) strtol(path + 6, NULL, 10));
                if (strcmp(path, "/hang") == 0)
                        hang();
                if (strncmp(path, "/leak/", 6) == 0 && n_leaked < ELEMENTS(leaked)) {
                        /* Allocated, touched and kept (reachable, so LeakSanitizer rightly does not call it a
                         * leak): the worker's memory grows by that much. */
                        size_t mib = (size_t) strtoul(path + 6, NULL, 10), bytes = mib << 20;
                        volatile char *leak = bytes > 0 && mib <= 4096 ? malloc(bytes) : NULL;
                        for (size_t k = 0; leak && k < bytes; k += 4096)
                                leak[k] = 1;
                        leaked[n_leaked++] = (void *) leak;
                }
                if (strcmp(path, "/spin") == 0 && fork() == 0) {
                        /* A runaway child in the worker's cgroup; the worker itself keeps serving. It ends
                         * by itself after 60 s so a failed test never leaves it spinning. It keeps none of
                         * the worker's sockets. */
                        time_t stop_at = time(NULL) + 60;
                        (void) close_range(3, ~0U, 0);
                        for (volatile unsigned long i = 0; time(NULL) < stop_at; i++)
                                ;
                        _exit(0);
                }
                if (strncmp(path, "/hog/", 5) == 0 && fork() == 0) {
                        /* A child in the worker's cgroup that grows by N MiB and holds it for 60 s: past
                         * the cgroup's memory.max it is what the OOM killer picks, the worker survives. */
                        size_t mib = (size_t) strtoul(path + 5, NULL, 10), bytes = mib << 20;
                        volatile char *hog = bytes > 0 && mib <= 4096 ? malloc(bytes) : NULL;
                        (void) close_range(3, ~0U, 0);
                        for (size_t k = 0; hog && k < bytes; k += 4096)
                                hog[k] = 1;
                        (void) sleep(60);
                        _exit(0);
                }
                if (strcmp(path, "/recycle") == 0)
                        (void) sd_notify(0, "RECYCLE=1"); /* answered like any request, from this pid */
                if (strcmp(path, "/env") == 0)
                        resp = env_snapshot;
                else if (strcmp(path, "/fds") == 0)
                        resp = fds_snapshot;
                else if (strcmp(path, "/sigmask") == 0)
                        resp = sigmask_snapshot;
                else if (strcmp(path, "/cwd") == 0)
                        resp = cwd_snapshot;
                else if (strcmp(path, "/argv") == 0)
                        resp = argv_snapshot;
                else
                        snprintf(body, sizeof(body), "slot=%s pid=%d generation=%s count=%s\n", slot,
                                 (int) getpid(), generation, count);
                conn_queue(c, resp, close_after);

                memmove(c->in, c->in + used, c->n_in - used);
                c->n_in -= used;
                if (close_after)
                        break;
        }
        return conn_flush(c);
}

static void conn_on_event(Conn *c, uint32_t events) {
        c->last_active_ms = now_ms();
        if (events & EPOLLOUT && !conn_flush(c))
                return;
        if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->close_after)
                return;
        for (;;) {
                ssize_t n = recv(c->source.fd, c->in + c->n_in, IN_MAX - 1 - c->n_in, 0);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        conn_close(c);
                        return;
                }
                c->n_in += n;
                if (!conn_process(c) || c->close_after)
                        return;
        }
}

static void listen_on_event(Source *s) {
        /* One accept per wakeup: every worker sharing the socket is woken, and taking one connection each
         * spreads the load instead of letting the first one awake empty the backlog. */
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        Conn *c;

        if (fd < 0)
                return; /* EAGAIN: another worker won; EMFILE etc.: the kernel keeps it queued */
        c = calloc(1, sizeof(Conn));
        if (!c)
                die(1, "out of memory");
        c->source = (Source) { .kind = SOURCE_CONN, .fd = fd };
        c->last_active_ms = now_ms();
        c->next = conns;
        if (conns)
                conns->prev = c;
        conns = c;
        n_conns++;
        epoll_set(EPOLL_CTL_ADD, &c->source, EPOLLIN);
}

static void drain_start(void) {
        if (draining)
                return;
        draining = true;
        drain_deadline_ms = now_ms() + arg.drain_ms;
        fprintf(stderr, "test-worker %s: draining %zu connections\n", slot, n_conns);
        for (size_t i = 0; i < n_listen; i++) {
                (void) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_sources[i].fd, NULL);
                close(listen_sources[i].fd);
        }
        n_listen = 0;
        for (Conn *c = conns; c; c = c->next)
                c->last_active_ms = now_ms();
}

/* While draining: idle keep-alive connections get a short grace in which a request still gets an answer
 * (with "Connection: close"), so a client that is about to reuse one does not see it vanish. */
static int drain_tick(void) {
        int64_t now = now_ms(), next = drain_deadline_ms;

        for (Conn *c = conns, *n; c; c = n) {
                n = c->next;
                if (c->n_in == 0 && c->n_out == 0) {
                        if (now - c->last_active_ms >= IDLE_LINGER_MS) {
                                conn_close(c);
                                continue;
                        }
                        if (c->last_active_ms + IDLE_LINGER_MS < next)
                                next = c->last_active_ms + IDLE_LINGER_MS;
                }
        }
        if (!conns || now >= drain_deadline_ms) {
                fprintf(stderr, "test-worker %s: drained, %zu connections left, exiting\n", slot, n_conns);
                exit(0);
        }
        return (int) (next > now ? next - now : 1);
}

/* --log-lines N: N lines of --log-bytes L (newline included) on stdout and on stderr, in turn, after READY=1:
 * all at once, or with --log-every MS one on each every MS ms (for ever when N is 0). A line is "LOG out|err SLOT PID SEQ " padded with
 * "SLOT.SEQ." over and over, so a reader can tell a whole line from a torn or mixed one. --log-level-line:
 * then "<3>LOG-PRIO SLOT PID" on stdout, for journald's level prefix. One write(2) per line, like a logger. */
static void write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return;
                p += k;
                n -= (size_t) k;
        }
}

static void log_line(int fd, long seq) {
        static char *buf;
        char pattern[64];
        int n, pn;

        if (!buf && !(buf = malloc((size_t) arg.log_bytes)))
                die(1, "out of memory");
        n = snprintf(buf, (size_t) arg.log_bytes, "LOG %s %s %d %ld ", fd == 1 ? "out" : "err", slot, (int) getpid(),
                     seq);
        pn = snprintf(pattern, sizeof pattern, "%s.%ld.", slot, seq);
        for (long i = n; i < arg.log_bytes - 1; i++)
                buf[i] = pattern[(i - n) % pn];
        buf[arg.log_bytes - 1] = '\n';
        write_all(fd, buf, (size_t) arg.log_bytes);
}

static long log_seq;

static void log_burst(long lines) {
        for (long i = 0; i < lines; i++, log_seq++) {
                log_line(STDOUT_FILENO, log_seq);
                log_line(STDERR_FILENO, log_seq);
        }
}

static void signal_on_event(Source *s) {
        struct signalfd_siginfo si;

        while (read(s->fd, &si, sizeof(si)) == sizeof(si)) {
                switch (si.ssi_signo) {
                case SIGTERM:
                case SIGINT:
                        drain_start();
                        break;
                case SIGCHLD:
                        while (waitpid(-1, NULL, WNOHANG) > 0)
                                ;
                        break;
                default:
                        fprintf(stderr, "worker %s got SIG%s\n", slot, sigabbrev_np(si.ssi_signo));
                }
        }
}

static void parse_args(int argc, char **argv) {
        static const struct option options[] = {
                { "ready-delay", required_argument, NULL, 'r' },
                { "no-ready", no_argument, &arg.no_ready, 1 },
                { "exit-at-start", required_argument, NULL, 'x' },
                { "crash-at-start", no_argument, &arg.crash_at_start, 1 },
                { "ignore-sigterm", no_argument, &arg.ignore_sigterm, 1 },
                { "spawn-child", no_argument, &arg.spawn_child, 1 },
                { "escaped-child", no_argument, &arg.escaped_child, 1 },
                { "drain-ms", required_argument, NULL, 'd' },
                { "status", required_argument, NULL, 's' },
                { "notify-via-child", no_argument, &arg.notify_via_child, 1 },
                { "notify-via-orphan", no_argument, &arg.notify_via_child, 2 },
                { "watchdog", no_argument, &arg.watchdog, 1 },
                { "log-lines", required_argument, NULL, 'L' },
                { "log-bytes", required_argument, NULL, 'B' },
                { "log-every", required_argument, NULL, 'E' },
                { "log-level-line", no_argument, &arg.log_level_line, 1 },
                {}
        };
        char *e = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                if (c == 'r') {
                        /* SECONDS, or MIN:MAX for a delay drawn uniformly per process. */
                        arg.ready_delay = strtod(optarg, &e);
                        if (e && *e == ':') {
                                double max = strtod(e + 1, &e);
                                srandom((unsigned) getpid());
                                if (max >= arg.ready_delay)
                                        arg.ready_delay += (max - arg.ready_delay) * ((double) random() / RAND_MAX);
                        }
                }
                else if (c == 'x')
                        arg.exit_at_start = (int) strtol(optarg, &e, 10);
                else if (c == 'd')
                        arg.drain_ms = strtol(optarg, &e, 10);
                else if (c == 's')
                        arg.status = optarg;
                else if (c == 'L')
                        arg.log_lines = strtol(optarg, &e, 10);
                else if (c == 'B')
                        arg.log_bytes = strtol(optarg, &e, 10);
                else if (c == 'E')
                        arg.log_every_ms = strtol(optarg, &e, 10);
                else if (c != 0)
                        die(64, "unknown option");
                if (e && *e)
                        die(64, "bad number in option");
        }
        if (optind < argc || !(arg.ready_delay >= 0 && arg.ready_delay < 86400) || arg.exit_at_start > 255 ||
            arg.drain_ms < 0 || arg.drain_ms > 3600000 || arg.log_lines < 0 || arg.log_bytes < 64 ||
            arg.log_bytes > (1L << 20) || arg.log_every_ms < 0)
                die(64, "bad arguments");
}

int main(int argc, char **argv) {
        struct rlimit rl;
        Source sig_source, timer_source = { .kind = SOURCE_TIMER, .fd = -1 };
        sigset_t mask;
        int n;

        slot = getenv("WORKER_INDEX") ?: "-";
        generation = getenv("WORKER_GENERATION") ?: "-";
        count = getenv("WORKER_COUNT") ?: "-";
        parse_args(argc, argv);

        if (arg.exit_at_start >= 0)
                _exit(arg.exit_at_start);
        if (arg.crash_at_start)
                crash_now();

        take_snapshots(argv);

        n = sd_listen_fds(1);
        if (n <= 0)
                die(2, n < 0 ? "sd_listen_fds() failed" : "no listening sockets passed (LISTEN_FDS/LISTEN_PID)");
        if ((size_t) n > sizeof(listen_sources) / sizeof(listen_sources[0]))
                die(2, "too many listening sockets");

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }

        epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd < 0)
                die(1, "epoll_create1 failed");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;

                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
                        die(2, "passed fd is not a listening stream socket");
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                listen_sources[n_listen] = (Source) { .kind = SOURCE_LISTEN, .fd = fd };
                epoll_set(EPOLL_CTL_ADD, &listen_sources[n_listen++], EPOLLIN);
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGUSR2);
        sigaddset(&mask, SIGWINCH);
        if (arg.ignore_sigterm)
                signal(SIGTERM, SIG_IGN);
        else
                sigaddset(&mask, SIGTERM);
        signal(SIGPIPE, SIG_IGN);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sig_source = (Source) { .kind = SOURCE_SIGNAL, .fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC) };
        if (sig_source.fd < 0)
                die(1, "signalfd failed");
        epoll_set(EPOLL_CTL_ADD, &sig_source, EPOLLIN);

        if (arg.spawn_child)
                spawn_child(false);
        if (arg.escaped_child)
                spawn_child(true);

        if (!arg.no_ready && arg.ready_delay <= 0)
                send_ready();
        else if (!arg.no_ready) {
                struct itimerspec its = {};

                its.it_value.tv_sec = (time_t) arg.ready_delay;
                its.it_value.tv_nsec = (long) ((arg.ready_delay - (double) its.it_value.tv_sec) * 1e9);
                if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
                        its.it_value.tv_nsec = 1;
                timer_source.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
                if (timer_source.fd < 0 || timerfd_settime(timer_source.fd, 0, &its, NULL) < 0)
                        die(1, "timerfd failed");
                epoll_set(EPOLL_CTL_ADD, &timer_source, EPOLLIN);
        }
        fprintf(stderr, "test-worker %s: pid %d serving %d sockets\n", slot, (int) getpid(), n);

        /* --watchdog: WATCHDOG=1 three times per WATCHDOG_USEC from this loop, so a hung loop (GET /hang)
         * stops pinging like a real hung server would. */
        int64_t watchdog_interval_ms = 0, watchdog_next_ms = 0;
        if (arg.watchdog && getenv("WATCHDOG_USEC"))
                watchdog_interval_ms = strtoll(getenv("WATCHDOG_USEC"), NULL, 10) / 3000;

        if (arg.log_every_ms == 0)
                log_burst(arg.log_lines);
        if (arg.log_level_line) {
                char prio[128];
                int l = snprintf(prio, sizeof prio, "<3>LOG-PRIO %s %d\n", slot, (int) getpid());
                write_all(STDOUT_FILENO, prio, (size_t) l);
        }
        int64_t log_next_ms = now_ms() + arg.log_every_ms;

        for (;;) {
                struct epoll_event events[64];
                int timeout = draining ? drain_tick() : -1, k;

                if (watchdog_interval_ms > 0) {
                        int64_t now = now_ms();
                        if (now >= watchdog_next_ms) {
                                (void) sd_notify(0, "WATCHDOG=1");
                                watchdog_next_ms = now + watchdog_interval_ms;
                        }
                        if (timeout < 0 || watchdog_next_ms - now < timeout)
                                timeout = (int) (watchdog_next_ms - now);
                }
                if (arg.log_every_ms > 0 && !draining && (arg.log_lines == 0 || log_seq < arg.log_lines)) {
                        int64_t now = now_ms();
                        if (now >= log_next_ms) {
                                log_burst(1);
                                log_next_ms = now + arg.log_every_ms;
                        }
                        if (timeout < 0 || log_next_ms - now < timeout)
                                timeout = (int) (log_next_ms - now);
                }

                k = epoll_wait(epoll_fd, events, 64, timeout);
                if (k < 0 && errno != EINTR)
                        die(1, "epoll_wait failed");
                for (int i = 0; i < k; i++) {
                        Source *s = events[i].data.ptr;

                        switch (s->kind) {
                        case SOURCE_LISTEN:
                                if (!draining)
                                        listen_on_event(s);
                                break;
                        case SOURCE_CONN:
                                conn_on_event((Conn *) s, events[i].events);
                                break;
                        case SOURCE_SIGNAL:
                                signal_on_event(s);
                                break;
                        case SOURCE_TIMER:
                                send_ready();
                                (void) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s->fd, NULL);
                                close(s->fd);
                                break;
                        }
                }
        }
}
