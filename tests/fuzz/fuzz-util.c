/* SPDX-License-Identifier: MIT */
/* Helpers shared by the fuzz targets (see fuzz-util.h). */

#include <dirent.h>
#include <string.h>

#include "fuzz-util.h"

char *fuzz_strndup(const uint8_t *data, size_t size) {
        char *s = strndup((const char *) data, size);

        fuzz_check(s, "out of memory");
        return s;
}

uint8_t fuzz_take_u8(FuzzInput *in) {
        uint8_t v = 0;

        if (in->size > 0) {
                v = in->data[0];
                in->data++;
                in->size--;
        }
        return v;
}

uint16_t fuzz_take_u16(FuzzInput *in) {
        uint16_t lo = fuzz_take_u8(in);

        return (uint16_t) (lo | fuzz_take_u8(in) << 8);
}

uint64_t fuzz_take_u64(FuzzInput *in) {
        uint64_t v = 0;

        for (unsigned i = 0; i < 8; i++)
                v |= (uint64_t) fuzz_take_u8(in) << (8 * i);
        return v;
}

unsigned fuzz_count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        fuzz_check(d, "cannot list /proc/self/fd");
        /* The directory's own fd is counted too, the same way every time. */
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}
