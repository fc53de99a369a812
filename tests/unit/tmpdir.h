/* SPDX-License-Identifier: MIT */
/* A temporary directory per test, for socket paths and the files a test puts in their way: make_tmpdir() as
 * a criterion .init, remove_tmpdir() as its .fini; it removes what the test left there, one level deep. */
#pragma once

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[64];

static inline void make_tmpdir(void) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/corral-test-XXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
}

static inline void remove_tmpdir(void) {
        DIR *d = opendir(tmpdir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (unlinkat(dirfd(d), de->d_name, 0) < 0)
                        (void) unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
        closedir(d);
        (void) rmdir(tmpdir);
}
