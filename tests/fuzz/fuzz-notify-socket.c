/* SPDX-License-Identifier: MIT */
/* Fuzzes the worker notify socket's receive path end to end: the input goes out as a real datagram, with
 * credentials and passed fds, to a real NotifySocket on an sd-event loop, and one loop iteration receives
 * it. Checks that the handler runs exactly once, with the message the parser alone makes of the bytes (or
 * none, counted as rejected), and that no passed fd is left open.
 *
 * Input: one control byte, then the payload.
 *   bits 0-4  how many /dev/null fds to pass (0-31; over 16 the datagram is refused, see RECEIVE_FDS_MAX)
 *   bit 5     also attach SCM_CREDENTIALS ourselves (the kernel adds them anyway: SO_PASSCRED)
 *   bit 6     pad the payload with 'x' to exactly NOTIFY_BUFFER_MAX bytes (the largest accepted)
 *   bit 7     pad it to NOTIFY_BUFFER_MAX + 1 bytes (the smallest rejected as too long) */

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "fuzz-util.h"
#include "notify.h"

#define FDS_MAX 31U
/* notify.c's control buffer holds 16 fds. The kernel truncates a datagram with more (MSG_CTRUNC, closing
 * those that did not fit) and the socket refuses it, as systemd's own notify socket does. */
#define RECEIVE_FDS_MAX 16U

typedef struct Seen {
        unsigned calls;
        pid_t pid;
        bool accepted;
        NotifyMessage message;
        char status[NOTIFY_BUFFER_MAX + 1];
} Seen;

static sd_event *event;
static NotifySocket *notify;
static int sender = -EBADF;
static Seen seen;

static void on_message(NotifySocket *n, const struct ucred *cred, const NotifyMessage *m, void *userdata) {
        Seen *s = userdata;

        s->calls++;
        s->pid = cred ? cred->pid : 0;
        s->accepted = m;
        if (!m)
                return;
        s->message = *m;
        /* m->status points into the socket's receive buffer, which is reused after the callback. */
        if (m->status)
                snprintf(s->status, sizeof s->status, "%s", m->status);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *address;
        size_t len;
        int r;

        /* One socket and loop for the whole run, as corral has: state that leaks from one datagram into
         * the next (a queued datagram, a stray fd) is part of what is tested. */
        r = sd_event_new(&event);
        fuzz_check(r >= 0, "sd_event_new: %d", r);
        r = notify_socket_new(event, 0, on_message, &seen, &notify);
        fuzz_check(r >= 0, "notify_socket_new: %d", r);
        /* The socket's pause after a burst of rejects is a CLOCK_MONOTONIC timer, and sd-event opens that
         * clock's timerfd with the first such source: open it now, or the one input that first exhausts the
         * reject budget counts it as a leaked fd (seen in CI: 12 fds open, 11 before). */
        r = sd_event_add_time(event, NULL, CLOCK_MONOTONIC, UINT64_MAX - 1, 0, NULL, NULL);
        fuzz_check(r >= 0, "sd_event_add_time: %d", r);

        address = notify_socket_address(notify);
        len = strlen(address);
        fuzz_check(address[0] == '@' && len < sizeof sa.sun_path, "unexpected address '%s'", address);
        memcpy(sa.sun_path, address, len);
        sa.sun_path[0] = 0;
        sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        fuzz_check(sender >= 0, "socket: %m");
        r = connect(sender, (struct sockaddr *) &sa,
                    (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len));
        fuzz_check(r >= 0, "connect: %m");
        return 0;
}

static void send_datagram(const char *payload, size_t size, const int *fds, size_t n_fds, bool credentials) {
        union {
                struct cmsghdr hdr;
                uint8_t buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * FDS_MAX)];
        } control = {};
        struct iovec iov = { (void *) payload, size };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        ssize_t n;

        if (credentials) {
                struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };

                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_CREDENTIALS;
                c->cmsg_len = CMSG_LEN(sizeof cred);
                memcpy(CMSG_DATA(c), &cred, sizeof cred);
                c = CMSG_NXTHDR(&mh, c);
        }
        if (n_fds > 0) {
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
                c = CMSG_NXTHDR(&mh, c);
        }
        mh.msg_controllen = c ? (size_t) ((uint8_t *) c - control.buf) : sizeof control;
        if (mh.msg_controllen == 0)
                mh.msg_control = NULL;

        n = sendmsg(sender, &mh, MSG_NOSIGNAL);
        fuzz_check(n == (ssize_t) size, "sendmsg of %zu bytes: %zd (%m)", size, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = { data, size };
        uint8_t flags = fuzz_take_u8(&in);
        size_t n_fds = flags & FDS_MAX, len = in.size;
        _cleanup_free_ char *payload = NULL, *copy = NULL;
        uint64_t rejected_before = notify_socket_rejected(notify);
        unsigned fds_before = fuzz_count_fds();
        NotifyMessage expected = {};
        bool accept;
        int fds[FDS_MAX];

        if (flags & 0x80)
                len = MAX(len, (size_t) NOTIFY_BUFFER_MAX + 1);
        else if (flags & 0x40)
                len = MAX(len, (size_t) NOTIFY_BUFFER_MAX);
        payload = malloc(len + 1);
        copy = malloc(len + 1);
        fuzz_check(payload && copy, "out of memory");
        memset(payload, 'x', len);
        if (in.size > 0)
                memcpy(payload, in.data, in.size);
        memcpy(copy, payload, len);

        /* What the socket must make of it: the parser's verdict on the same bytes, when they fit. */
        accept = len <= NOTIFY_BUFFER_MAX && n_fds <= RECEIVE_FDS_MAX &&
                notify_message_parse(copy, len, &expected) >= 0;

        for (size_t i = 0; i < n_fds; i++) {
                fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                fuzz_check(fds[i] >= 0, "open /dev/null: %m");
        }
        send_datagram(payload, len, fds, n_fds, flags & 0x20);
        /* Ours are closed at once: from now on only the datagram holds them, then the receiver. */
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);

        seen = (Seen){};
        for (unsigned i = 0; seen.calls == 0 && i < 4; i++) {
                int r = sd_event_run(event, USEC_PER_SEC);

                fuzz_check(r >= 0, "sd_event_run: %d", r);
        }

        fuzz_check(seen.calls == 1, "the handler ran %u times for one datagram", seen.calls);
        fuzz_check(seen.pid == getpid(), "sender pid %d, expected %d", (int) seen.pid, (int) getpid());
        fuzz_check(seen.accepted == accept, "accepted %d, the parser says %d", seen.accepted, accept);
        fuzz_check(notify_socket_rejected(notify) == rejected_before + !accept,
                   "rejected count %llu after %llu", (unsigned long long) notify_socket_rejected(notify),
                   (unsigned long long) rejected_before);
        if (accept) {
                const NotifyMessage *m = &seen.message;

                fuzz_check(m->ready == expected.ready && m->stopping == expected.stopping &&
                                   m->watchdog == expected.watchdog && m->recycle == expected.recycle &&
                                   m->reloading == expected.reloading,
                           "flags differ from the parser's");
                fuzz_check(!m->status == !expected.status, "STATUS= presence differs");
                fuzz_check(!expected.status || streq(seen.status, expected.status), "STATUS= differs");
        }
        fuzz_check(fuzz_count_fds() == fds_before, "%u fds open, %u before: a passed fd leaked",
                   fuzz_count_fds(), fds_before);
        return 0;
}
