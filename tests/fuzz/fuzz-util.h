/* SPDX-License-Identifier: MIT */
/* What the fuzz targets share: the property check that aborts (so libFuzzer keeps the input), taking
 * the input apart, and counting open fds. Each target is one fuzz-<name>.c that defines
 * LLVMFuzzerTestOneInput(). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken property is a finding like a crash: say which one, then abort, which libFuzzer reports as a
 * deadly signal and saves the input for. */
#define fuzz_check(expr, ...)                                                                               \
        do {                                                                                                \
                if (!(expr)) {                                                                              \
                        fprintf(stderr, "%s:%d: '%s' does not hold: ", __FILE__, __LINE__, #expr);          \
                        fprintf(stderr, __VA_ARGS__);                                                       \
                        fputc('\n', stderr);                                                                \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

/* The input as a C string (a copy, cut at the first NUL if it has one); aborts when out of memory. */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* The input read front to back, for targets whose input is a few control bytes then a payload. A take
 * past the end gives zeros, so every input is usable, however short. */
typedef struct FuzzInput {
        const uint8_t *data;
        size_t size;
} FuzzInput;

uint8_t fuzz_take_u8(FuzzInput *in);
uint16_t fuzz_take_u16(FuzzInput *in);
uint64_t fuzz_take_u64(FuzzInput *in);

/* Entries in /proc/self/fd: compared before and after a run to catch a leaked fd. */
unsigned fuzz_count_fds(void);
