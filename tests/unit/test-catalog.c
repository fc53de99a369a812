/* SPDX-License-Identifier: MIT */
/* The MESSAGE_IDs in src/message-ids.h and the entries of contrib/corral.catalog match both ways. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "message-ids.h"
#include "util.h"

TestSuite(catalog, .timeout = 10);

static const char *const ids[] = {
        MESSAGE_ID_POOL_READY,         MESSAGE_ID_POOL_STOPPING,    MESSAGE_ID_WORKER_STARTED,
        MESSAGE_ID_WORKER_READY,       MESSAGE_ID_WORKER_EXITED,    MESSAGE_ID_WORKER_CRASHED,
        MESSAGE_ID_WORKER_START_FAILED, MESSAGE_ID_WORKER_THROTTLED, MESSAGE_ID_WORKER_DISABLED,
        MESSAGE_ID_WORKER_KILLED,      MESSAGE_ID_RELOAD_STARTED,   MESSAGE_ID_RELOAD_DONE,
        MESSAGE_ID_RELOAD_FAILED,      MESSAGE_ID_NOTIFY_REJECTED,  MESSAGE_ID_WORKER_WATCHDOG,
        MESSAGE_ID_SIGNAL_RELAYED,     MESSAGE_ID_WORKER_RECYCLED,  MESSAGE_ID_UPGRADE_STARTED,
        MESSAGE_ID_UPGRADE_DONE,       MESSAGE_ID_UPGRADE_FAILED,   MESSAGE_ID_WORKER_OUTPUT_DROPPED,
};

/* Collects the 32-hex-digit IDs that follow prefix at the start of a line. */
static size_t collect(const char *path, const char *prefix, char out[][33], size_t max) {
        char line[512];
        size_t n = 0;
        FILE *f = fopen(path, "re");

        cr_assert_not_null(f, "cannot open %s", path);
        while (fgets(line, sizeof line, f)) {
                const char *p = strstr(line, prefix);
                char id[33];

                if (!p || (p != line && strncmp(prefix, "--", 2) == 0))
                        continue;
                if (sscanf(p + strlen(prefix), " \"%32[0-9a-f]\"", id) == 1 ||
                    sscanf(p + strlen(prefix), " %32[0-9a-f]", id) == 1) {
                        cr_assert_eq(strlen(id), 32, "short id in %s: %s", path, id);
                        cr_assert_lt(n, max);
                        memcpy(out[n++], id, 33);
                }
        }
        fclose(f);
        return n;
}

static bool contains(char list[][33], size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (streq(list[i], id))
                        return true;
        return false;
}

Test(catalog, every_header_id_has_an_entry) {
        char entries[64][33];
        size_t n = collect(CORRAL_SOURCE_DIR "/contrib/corral.catalog", "-- ", entries, 64);

        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                cr_expect(contains(entries, n, ids[i]), "%s has no catalog entry", ids[i]);
}

Test(catalog, every_entry_is_a_header_id) {
        char entries[64][33];
        size_t n = collect(CORRAL_SOURCE_DIR "/contrib/corral.catalog", "-- ", entries, 64);

        cr_assert_gt(n, 0);
        for (size_t i = 0; i < n; i++) {
                bool found = false;
                for (size_t j = 0; j < ELEMENTSOF(ids); j++)
                        found = found || streq(entries[i], ids[j]);
                cr_expect(found, "catalog entry %s is not in message-ids.h", entries[i]);
        }
}

Test(catalog, header_list_is_complete_and_unique) {
        char defined[64][33], line[512];
        size_t n = 0;
        FILE *f = fopen(CORRAL_SOURCE_DIR "/src/message-ids.h", "re");

        /* Every #define in the header, so an ID added there but not to this test is caught too. */
        cr_assert_not_null(f);
        while (fgets(line, sizeof line, f)) {
                char name[128], id[33];
                if (sscanf(line, "#define %127s \"%32[0-9a-f]\"", name, id) == 2 && n < 64)
                        memcpy(defined[n++], id, 33);
        }
        fclose(f);
        cr_assert_eq(n, ELEMENTSOF(ids), "message-ids.h defines %zu ids, the test knows %zu", n, ELEMENTSOF(ids));
        for (size_t i = 0; i < n; i++)
                for (size_t j = i + 1; j < n; j++)
                        cr_expect(!streq(defined[i], defined[j]), "duplicate id %s", defined[i]);
}
