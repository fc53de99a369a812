/* SPDX-License-Identifier: MIT */
/* The round-robin SK_REUSEPORT program, written as instructions (no compiler, no libbpf). Four maps: a
 * state {next, n}, the list of the n ready slots, and per group a socket array indexed by slot (a socket
 * can sit at one index of one array only, so each stays where it went in) and the count of connections
 * handed to each slot. Each new connection takes next++ % n with an atomic fetch-and-add, looks up that
 * ready slot, is handed to the slot's socket of its group by bpf_sk_select_reuseport() and, if that took,
 * counted. corral reads the counts from a read-only mapping of their map: no system call per read. */
#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "steer-bpf.h"
#include "util.h"

/* The state map's one entry: what the programs read and advance. */
typedef struct SteerState {
        uint32_t next; /* the connections handed out so far (wraps) */
        uint32_t n;    /* ready slots in the ready map: 0..n-1 */
} SteerState;

typedef struct SteerGroup {
        int sockets_fd; /* BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, indexed by slot */
        int counts_fd;  /* BPF_MAP_TYPE_ARRAY of uint64_t, indexed by slot, mappable */
        int prog_fd;
        const volatile uint64_t *counts; /* counts_fd mapped read-only; NULL: not mapped */
} SteerGroup;

/* The counts map's size, and its mapping's (a page multiple). */
#define COUNTS_SIZE ((size_t) STEER_BPF_SLOTS_MAX * sizeof(uint64_t))

struct SteerBpf {
        int state_fd; /* BPF_MAP_TYPE_ARRAY, one SteerState */
        int ready_fd; /* BPF_MAP_TYPE_ARRAY of slot numbers */
        unsigned n_ready;
        bool migrates; /* loaded as SELECT_OR_MIGRATE */
        SteerGroup *groups;
        size_t n_groups;
};

static int sys_bpf(int cmd, union bpf_attr *attr) {
        long r = syscall(__NR_bpf, cmd, attr, sizeof(*attr));

        return r < 0 ? -errno : (int) r;
}

static int map_create(uint32_t type, uint32_t value_size, uint32_t max_entries, uint32_t flags) {
        union bpf_attr a;

        memset(&a, 0, sizeof(a));
        a.map_type = type;
        a.map_flags = flags;
        a.key_size = sizeof(uint32_t);
        a.value_size = value_size;
        a.max_entries = max_entries;
        return sys_bpf(BPF_MAP_CREATE, &a);
}

static int map_update(int map_fd, uint32_t key, const void *value) {
        union bpf_attr a;

        memset(&a, 0, sizeof(a));
        a.map_fd = (uint32_t) map_fd;
        a.key = (uint64_t) (uintptr_t) &key;
        a.value = (uint64_t) (uintptr_t) value;
        a.flags = BPF_ANY;
        return sys_bpf(BPF_MAP_UPDATE_ELEM, &a);
}

/* Instruction constructors, named as in the kernel's filter.h (which is not a uapi header). */
#define INSN(c, d, s, o, i) ((struct bpf_insn) { .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV64_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD64_IMM(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define MOD32_REG(d, s) INSN(BPF_ALU | BPF_MOD | BPF_X, d, s, 0, 0)
#define ST_W(d, o, i) INSN(BPF_ST | BPF_MEM | BPF_W, d, 0, o, i)
#define STX_W(d, s, o) INSN(BPF_STX | BPF_MEM | BPF_W, d, s, o, 0)
#define LDX_W(d, s, o) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define LDX_DW(d, s, o) INSN(BPF_LDX | BPF_MEM | BPF_DW, d, s, o, 0)
#define FETCH_ADD_W(d, s, o) INSN(BPF_STX | BPF_ATOMIC | BPF_W, d, s, o, BPF_ADD | BPF_FETCH)
#define ADD_DW(d, s, o) INSN(BPF_STX | BPF_ATOMIC | BPF_DW, d, s, o, BPF_ADD)
#define JEQ_IMM(d, i, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define JNE_IMM(d, i, o) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define LD_MAP_FD(d, fd) INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), INSN(0, 0, 0, 0, 0)

/* migrate: the program for BPF_SK_REUSEPORT_SELECT_OR_MIGRATE, which leaves a connection that moves from a
 * closing socket uncounted (it was counted where it first went) by reading ctx->migrating_sk; a kernel
 * before 5.14 has no such field, and its verifier refuses the program (while it would load it with any
 * expected_attach_type: that alone proves nothing). Without migrate, instruction 30 zeroes r1 instead. */
static int prog_load(int state_fd, int ready_fd, int sockets_fd, int counts_fd, bool migrate) {
        /* Jumps count instructions after the jump (LD_MAP_FD is two); every "pass" below lands on the
         * MOV64_IMM(BPF_REG_0, SK_PASS) at index 40. */
        const struct bpf_insn insns[] = {
                MOV64_REG(BPF_REG_6, BPF_REG_1),              /*  0: r6 = ctx */
                ST_W(BPF_REG_10, -4, 0),                      /*  1: key = 0 */
                MOV64_REG(BPF_REG_2, BPF_REG_10),
                ADD64_IMM(BPF_REG_2, -4),
                LD_MAP_FD(BPF_REG_1, state_fd),               /*  4 */
                CALL(BPF_FUNC_map_lookup_elem),               /*  6: r0 = &state */
                JEQ_IMM(BPF_REG_0, 0, 32),                    /*  7: none: pass */
                LDX_W(BPF_REG_8, BPF_REG_0, 4),               /*  8: r8 = n */
                JEQ_IMM(BPF_REG_8, 0, 30),                    /*  9: no ready slot: the kernel's hash */
                MOV64_IMM(BPF_REG_7, 1),
                FETCH_ADD_W(BPF_REG_0, BPF_REG_7, 0),         /* 11: r7 = next++ */
                MOD32_REG(BPF_REG_7, BPF_REG_8),              /* 12: r7 = r7 % n */
                STX_W(BPF_REG_10, BPF_REG_7, -8),
                MOV64_REG(BPF_REG_2, BPF_REG_10),
                ADD64_IMM(BPF_REG_2, -8),
                LD_MAP_FD(BPF_REG_1, ready_fd),               /* 16 */
                CALL(BPF_FUNC_map_lookup_elem),               /* 18: r0 = &ready[r7] */
                JEQ_IMM(BPF_REG_0, 0, 20),                    /* 19: pass */
                LDX_W(BPF_REG_7, BPF_REG_0, 0),               /* 20: r7 = that slot */
                STX_W(BPF_REG_10, BPF_REG_7, -12),            /* 21: key = that slot */
                MOV64_REG(BPF_REG_1, BPF_REG_6),
                LD_MAP_FD(BPF_REG_2, sockets_fd),             /* 23 */
                MOV64_REG(BPF_REG_3, BPF_REG_10),
                ADD64_IMM(BPF_REG_3, -12),
                MOV64_IMM(BPF_REG_4, 0),
                CALL(BPF_FUNC_sk_select_reuseport),           /* 28: an error leaves the choice to the hash */
                JNE_IMM(BPF_REG_0, 0, 10),                    /* 29: not taken: pass, uncounted */
                migrate ? LDX_DW(BPF_REG_1, BPF_REG_6, (int16_t) offsetof(struct sk_reuseport_md, migrating_sk))
                        : MOV64_IMM(BPF_REG_1, 0),            /* 30: r1 = ctx->migrating_sk */
                JNE_IMM(BPF_REG_1, 0, 8),                     /* 31: moved from a closing socket: pass */
                MOV64_REG(BPF_REG_2, BPF_REG_10),
                ADD64_IMM(BPF_REG_2, -12),
                LD_MAP_FD(BPF_REG_1, counts_fd),              /* 34 */
                CALL(BPF_FUNC_map_lookup_elem),               /* 36: r0 = &counts[that slot] */
                JEQ_IMM(BPF_REG_0, 0, 2),                     /* 37: pass */
                MOV64_IMM(BPF_REG_1, 1),
                ADD_DW(BPF_REG_0, BPF_REG_1, 0),              /* 39: counts[that slot] += 1 */
                MOV64_IMM(BPF_REG_0, SK_PASS),                /* 40 */
                EXIT(),
        };
        union bpf_attr a;

        memset(&a, 0, sizeof(a));
        a.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
        a.expected_attach_type = migrate ? BPF_SK_REUSEPORT_SELECT_OR_MIGRATE : BPF_SK_REUSEPORT_SELECT;
        a.insns = (uint64_t) (uintptr_t) insns;
        a.insn_cnt = ELEMENTSOF(insns);
        a.license = (uint64_t) (uintptr_t) "Dual MIT/GPL";
        return sys_bpf(BPF_PROG_LOAD, &a);
}

/* As SELECT_OR_MIGRATE where the kernel has it (5.14): then, when a socket of the group closes, the kernel
 * runs the program for each connection waiting in it (accepted by the kernel, or still in the handshake)
 * and moves it to the socket chosen, whatever net.ipv4.tcp_migrate_req says; the closed socket is out of
 * its array by then, so the choice is a ready slot's (or the hash's). Else as SELECT: the verifier refuses
 * the migrating program (EACCES for the unknown field, EINVAL for the attach type). */
static int prog_load_migrating(SteerBpf *s, int sockets_fd, int counts_fd) {
        int r = s->migrates ? prog_load(s->state_fd, s->ready_fd, sockets_fd, counts_fd, true) : -EINVAL;

        if (r == -EINVAL || r == -EACCES) {
                s->migrates = false;
                r = prog_load(s->state_fd, s->ready_fd, sockets_fd, counts_fd, false);
        }
        return r;
}

bool steer_bpf_migrates(const SteerBpf *s) {
        return s->migrates;
}

int steer_bpf_new(size_t n_groups, SteerBpf **ret) {
        SteerBpf *s;
        int r;

        if (n_groups == 0 || n_groups > UINT32_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(SteerBpf));
        if (!s)
                return -ENOMEM;
        s->groups = calloc(n_groups, sizeof(SteerGroup));
        if (!s->groups) {
                free(s);
                return -ENOMEM;
        }
        s->n_groups = n_groups;
        s->migrates = true;
        for (size_t g = 0; g < n_groups; g++)
                s->groups[g] = (SteerGroup) { .sockets_fd = -EBADF, .counts_fd = -EBADF, .prog_fd = -EBADF };
        s->ready_fd = -EBADF;
        r = s->state_fd = map_create(BPF_MAP_TYPE_ARRAY, sizeof(SteerState), 1, 0);
        if (r >= 0)
                r = s->ready_fd = map_create(BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), STEER_BPF_SLOTS_MAX, 0);
        for (size_t g = 0; g < n_groups && r >= 0; g++) {
                SteerGroup *sg = &s->groups[g];

                r = sg->sockets_fd = map_create(BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, sizeof(uint64_t),
                                                STEER_BPF_SLOTS_MAX, 0);
                if (r >= 0)
                        r = sg->counts_fd = map_create(BPF_MAP_TYPE_ARRAY, sizeof(uint64_t), STEER_BPF_SLOTS_MAX,
                                                       BPF_F_MMAPABLE);
                if (r >= 0)
                        r = sg->prog_fd = prog_load_migrating(s, sg->sockets_fd, sg->counts_fd);
                if (r >= 0) {
                        void *p = mmap(NULL, COUNTS_SIZE, PROT_READ, MAP_SHARED, sg->counts_fd, 0);

                        if (p == MAP_FAILED)
                                r = -errno;
                        else
                                sg->counts = p;
                }
        }
        if (r < 0) {
                steer_bpf_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

SteerBpf *steer_bpf_free(SteerBpf *s) {
        if (!s)
                return NULL;
        for (size_t g = 0; g < s->n_groups; g++) {
                if (s->groups[g].counts)
                        (void) munmap((void *) s->groups[g].counts, COUNTS_SIZE);
                safe_close(s->groups[g].prog_fd);
                safe_close(s->groups[g].counts_fd);
                safe_close(s->groups[g].sockets_fd);
        }
        safe_close(s->ready_fd);
        safe_close(s->state_fd);
        free(s->groups);
        free(s);
        return NULL;
}

int steer_bpf_attach(SteerBpf *s, size_t group, int fd) {
        if (group >= s->n_groups)
                return -EINVAL;
        if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &s->groups[group].prog_fd, sizeof(int)) < 0)
                return -errno;
        return 0;
}

int steer_bpf_add(SteerBpf *s, size_t group, unsigned slot, int fd) {
        uint64_t value = (uint64_t) fd;
        int r;

        if (group >= s->n_groups || slot >= STEER_BPF_SLOTS_MAX)
                return -EINVAL;
        r = map_update(s->groups[group].sockets_fd, slot, &value);
        /* EBUSY: the socket sits in an array already, here (it stays put until it closes). */
        return r == -EBUSY ? 0 : r;
}

int steer_bpf_set_ready(SteerBpf *s, const unsigned *slots, unsigned n) {
        SteerState st = { .n = n };
        int r;

        if (n > STEER_BPF_SLOTS_MAX)
                return -EINVAL;
        /* Shrinking, n goes down first; growing, the slots go in first: the programs never read an entry
         * past what the list holds for them now. */
        if (n < s->n_ready) {
                r = map_update(s->state_fd, 0, &st);
                if (r < 0)
                        return r;
                s->n_ready = n;
        }
        for (unsigned i = 0; i < n; i++) {
                uint32_t slot = slots[i];

                r = map_update(s->ready_fd, i, &slot);
                if (r < 0)
                        return r;
        }
        if (n != s->n_ready) {
                r = map_update(s->state_fd, 0, &st);
                if (r < 0)
                        return r;
                s->n_ready = n;
        }
        return 0;
}

uint64_t steer_bpf_count(const SteerBpf *s, size_t group, unsigned slot) {
        if (group >= s->n_groups || slot >= STEER_BPF_SLOTS_MAX || !s->groups[group].counts)
                return 0;
        return s->groups[group].counts[slot];
}
