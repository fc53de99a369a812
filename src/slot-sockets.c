/* SPDX-License-Identifier: MIT */
/* Balance=reuseport's per-slot sockets: a table of fd arrays, bound lazily from the group's sockets. */

#include <linux/filter.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "slot-sockets.h"
#include "steer-bpf.h"

struct SlotSockets {
        const SocketSet *group;
        int **slots; /* slots[k]: group->n fds, or NULL (none bound; slot 0: the group's own) */
        unsigned n;  /* entries in slots */
        const int *group_fds;
        /* The slots in the order of the kernel's array of the group's sockets, which a reuseport program's
         * return value indexes: a socket joins at the end when it listens, and the last one takes the
         * place of one that closes (net/core/sock_reuseport.c). */
        unsigned *order;
        unsigned n_order;
        bool *steered; /* the ready slots the attached program picks from (n_steered of them); NULL: none */
        unsigned n_steered;
        SteerBpf *even; /* the eBPF round robin, when it could be loaded (slot_sockets_even()) */
};

/* Longest program: two instructions per ready slot and three more, within BPF_MAXINSNS. */
#define STEER_SLOTS_MAX 2000U

SlotSockets *slot_sockets_new(const SocketSet *group, const int *group_fds) {
        SlotSockets *s = calloc(1, sizeof(SlotSockets));

        if (!s)
                return NULL;
        s->group = group;
        s->group_fds = group_fds;
        s->order = calloc(1, sizeof(unsigned)); /* slot 0: the group's first socket */
        if (!s->order) {
                free(s);
                return NULL;
        }
        s->n_order = 1;
        return s;
}

static void close_fds(int *fds, size_t n) {
        for (size_t i = 0; fds && i < n; i++)
                safe_close(fds[i]);
        free(fds);
}

void slot_sockets_close(SlotSockets *s, unsigned slot) {
        if (slot == 0 || slot >= s->n || !s->slots[slot])
                return;
        close_fds(s->slots[slot], s->group->n);
        s->slots[slot] = NULL;
        for (unsigned i = 0; i < s->n_order; i++)
                if (s->order[i] == slot) {
                        s->order[i] = s->order[--s->n_order];
                        break;
                }
}

SlotSockets *slot_sockets_free(SlotSockets *s) {
        if (!s)
                return NULL;
        for (unsigned k = 1; k < s->n; k++)
                slot_sockets_close(s, k);
        free(s->slots);
        free(s->order);
        free(s->steered);
        steer_bpf_free(s->even);
        free(s);
        return NULL;
}

unsigned slot_sockets_n(const SlotSockets *s) {
        return s->n;
}

int slot_sockets_get(SlotSockets *s, unsigned slot, const int **ret) {
        int *fds;
        int r;

        if (slot == 0) {
                *ret = s->group_fds;
                return 0;
        }
        if (slot >= s->n) {
                int **a = reallocarray(s->slots, slot + 1, sizeof(int *));

                if (!a)
                        return -ENOMEM;
                for (unsigned k = s->n; k <= slot; k++)
                        a[k] = NULL;
                s->slots = a;
                s->n = slot + 1;
        }
        if (s->slots[slot]) {
                *ret = s->slots[slot];
                return 0;
        }
        fds = calloc(MAX(s->group->n, 1U), sizeof(int));
        if (!fds)
                return -ENOMEM;
        for (size_t i = 0; i < s->group->n; i++)
                fds[i] = -EBADF;
        for (size_t i = 0; i < s->group->n; i++) {
                r = listen_socket_bind_sibling(&s->group->sockets[i], &fds[i]);
                if (r < 0) {
                        close_fds(fds, s->group->n);
                        return r;
                }
        }
        {
                unsigned *o = reallocarray(s->order, s->n_order + 1, sizeof(unsigned));

                if (!o) {
                        close_fds(fds, s->group->n);
                        return -ENOMEM;
                }
                s->order = o;
                s->order[s->n_order++] = slot;
        }
        s->slots[slot] = fds;
        *ret = fds;
        return 0;
}

int slot_sockets_even(SlotSockets *s) {
        int r;

        if (s->even)
                return 0;
        r = steer_bpf_new(s->group->n, &s->even);
        for (size_t i = 0; i < s->group->n && r >= 0; i++)
                r = steer_bpf_attach(s->even, i, s->group_fds[i]);
        if (r < 0) {
                s->even = steer_bpf_free(s->even);
                return r;
        }
        free(s->steered); /* steer again, with it */
        s->steered = NULL;
        return steer_bpf_migrates(s->even) ? 1 : 0;
}

/* The eBPF round robin over the ready slots, in slot order (beyond what it can steer: the kernel's hash). */
static int steer_even(SlotSockets *s, const bool *ready, unsigned n) {
        _cleanup_free_ unsigned *slots = calloc(MAX(n, 1U), sizeof(unsigned));
        unsigned m = 0;
        int r;

        if (!slots)
                return -ENOMEM;
        for (unsigned k = 0; k < n; k++) {
                if (!ready[k] || (k > 0 && (k >= s->n || !s->slots[k])))
                        continue;
                if (k >= STEER_BPF_SLOTS_MAX)
                        return steer_bpf_set_ready(s->even, NULL, 0);
                for (size_t i = 0; i < s->group->n; i++) {
                        r = steer_bpf_add(s->even, i, k, k == 0 ? s->group_fds[i] : s->slots[k][i]);
                        if (r < 0)
                                return r;
                }
                slots[m++] = k;
        }
        return steer_bpf_set_ready(s->even, slots, m);
}

/* Attaches prog (NULL: detaches) to every group: a program set on one member applies to the group. */
static int steer_attach(SlotSockets *s, const struct sock_fprog *prog) {
        int r = 0;

        for (size_t i = 0; i < s->group->n; i++) {
                int fd = s->group->sockets[i].fd, k;

                if (prog)
                        k = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, prog, sizeof(*prog));
                else {
                        int zero = 0;

                        k = setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof(zero));
                        if (k < 0 && errno == ENOENT) /* none attached */
                                k = 0;
                }
                if (k < 0 && r == 0)
                        r = -errno;
        }
        return r;
}

int slot_sockets_steer(SlotSockets *s, const bool *ready, unsigned n) {
        _cleanup_free_ struct sock_filter *f = NULL;
        _cleanup_free_ unsigned *idx = NULL;
        _cleanup_free_ bool *copy = NULL;
        unsigned r = 0, len = 0;
        int k;

        if (s->steered && s->n_steered == n && memcmp(s->steered, ready, n * sizeof(bool)) == 0)
                return 0;
        if (s->even) {
                copy = malloc(MAX(n, 1U) * sizeof(bool));
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, ready, n * sizeof(bool));
                k = steer_even(s, ready, n);
                goto done;
        }
        idx = calloc(MAX(s->n_order, 1U), sizeof(unsigned));
        copy = malloc(MAX(n, 1U) * sizeof(bool));
        f = calloc(2 * s->n_order + 3, sizeof(struct sock_filter));
        if (!idx || !copy || !f)
                return -ENOMEM;
        memcpy(copy, ready, n * sizeof(bool));

        for (unsigned i = 0; i < s->n_order; i++)
                if (s->order[i] < n && ready[s->order[i]])
                        idx[r++] = i;
        /* Every socket ready, or none (then all wait alike), or too many for one program: the kernel's own
         * choice by hash. */
        if (r == 0 || r == s->n_order || r > STEER_SLOTS_MAX)
                k = steer_attach(s, NULL);
        else {
                /* A = random % r; then the index in the group of the A-th ready slot's socket. */
                f[len++] = (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                         (uint32_t) (SKF_AD_OFF + SKF_AD_RANDOM));
                f[len++] = (struct sock_filter) BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, r);
                for (unsigned j = 0; j < r; j++) {
                        f[len++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, j, 0, 1);
                        f[len++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, idx[j]);
                }
                f[len++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, idx[0]);
                k = steer_attach(s, &(struct sock_fprog) { .len = (unsigned short) len, .filter = f });
        }
done:
        if (k < 0)
                return k; /* tried again with the next change, or the next call */
        free(s->steered);
        s->steered = TAKE_PTR(copy);
        s->n_steered = n;
        return 0;
}

/* The slot's fds (group->n of them), or NULL when it has none. */
static const int *slot_fds(const SlotSockets *s, unsigned slot) {
        return slot == 0 ? s->group_fds : slot < s->n ? s->slots[slot] : NULL;
}

int slot_sockets_queues(const SlotSockets *s, unsigned slot, uint32_t *queued, uint32_t *backlog) {
        const int *fds = slot_fds(s, slot);

        if (!fds)
                return -ENOENT;
        for (size_t i = 0; i < s->group->n; i++) {
                int r = listen_fd_queue(fds[i], &queued[i], &backlog[i]);

                if (r < 0)
                        return r;
        }
        return 0;
}

int slot_sockets_connections(const SlotSockets *s, unsigned slot, uint64_t *ret) {
        uint64_t sum = 0;

        if (!s->even)
                return -EOPNOTSUPP;
        for (size_t i = 0; i < s->group->n; i++)
                sum += steer_bpf_count(s->even, i, slot);
        *ret = sum;
        return 0;
}
