/* SPDX-License-Identifier: MIT */
/* Balance=reuseport's per-slot sockets: a table of fd arrays, bound lazily from the group's sockets. */

#include <stdlib.h>
#include <unistd.h>

#include "slot-sockets.h"

struct SlotSockets {
        const SocketSet *group;
        int **slots; /* slots[k]: group->n fds, or NULL (none bound; slot 0: the group's own) */
        unsigned n;  /* entries in slots */
        int *group_fds;
};

SlotSockets *slot_sockets_new(const SocketSet *group) {
        SlotSockets *s = calloc(1, sizeof(SlotSockets));

        if (!s)
                return NULL;
        s->group = group;
        s->group_fds = calloc(MAX(group->n, 1U), sizeof(int));
        if (!s->group_fds) {
                free(s);
                return NULL;
        }
        for (size_t i = 0; i < group->n; i++)
                s->group_fds[i] = group->sockets[i].fd;
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
}

SlotSockets *slot_sockets_free(SlotSockets *s) {
        if (!s)
                return NULL;
        for (unsigned k = 1; k < s->n; k++)
                slot_sockets_close(s, k);
        free(s->slots);
        free(s->group_fds);
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
        s->slots[slot] = fds;
        *ret = fds;
        return 0;
}
