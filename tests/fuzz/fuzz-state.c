/* SPDX-License-Identifier: MIT */
/* Fuzzes the upgrade state reader (state.c) and the pool's records on it (upgrade-state.c, pool.c's
 * pool_from_image()) with the input as a state's text. What the reader accepts is written out again
 * record by record and must read back to the same records; a pool accepted from it must give the same
 * image when written and read once more. */

#include "fuzz-util.h"
#include "pool.h"
#include "state.h"
#include "upgrade-state.h"

static char *rewrite(const StateReader *r, size_t *ret_size) {
        StateWriter *w = state_writer_new();
        char *text = NULL;

        fuzz_check(w, "out of memory");
        for (size_t i = 0; i < state_reader_count(r); i++) {
                const StateRecord *rec = state_reader_get(r, i);
                state_record(w, rec->type);
                for (size_t k = 0; k < rec->n_fields; k++)
                        state_put_bytes(w, rec->fields[k].key, rec->fields[k].value, rec->fields[k].size);
        }
        fuzz_check(state_writer_finish(w, &text, ret_size) == 0, "out of memory");
        state_writer_free(w);
        return text;
}

static void check_same_records(const StateReader *a, const StateReader *b) {
        fuzz_check(state_reader_count(a) == state_reader_count(b), "%zu records, then %zu",
                   state_reader_count(a), state_reader_count(b));
        for (size_t i = 0; i < state_reader_count(a); i++) {
                const StateRecord *x = state_reader_get(a, i), *y = state_reader_get(b, i);
                fuzz_check(streq(x->type, y->type) && x->n_fields == y->n_fields, "record %zu changed", i);
                for (size_t k = 0; k < x->n_fields; k++)
                        fuzz_check(streq(x->fields[k].key, y->fields[k].key) &&
                                           x->fields[k].size == y->fields[k].size &&
                                           memcmp(x->fields[k].value, y->fields[k].value, x->fields[k].size) == 0,
                                   "record %zu field %zu changed", i, k);
        }
}

static void check_pool(const StateReader *r) {
        PoolImage img, again;
        Pool *p = NULL;
        StateWriter *w;
        StateReader *r2 = NULL;
        char *text = NULL, *error = NULL;
        size_t size;

        if (upgrade_state_get_pool(r, &img, &error) < 0) {
                fuzz_check(error, "refused without a message");
                free(error);
                return;
        }
        if (pool_from_image(&img, &p, NULL) < 0) {
                pool_image_done(&img);
                return;
        }
        pool_image_done(&img);
        fuzz_check(pool_image(p, &img) == 0, "no image of an accepted pool");
        w = state_writer_new();
        fuzz_check(w, "out of memory");
        upgrade_state_put_pool(w, &img);
        fuzz_check(state_writer_finish(w, &text, &size) == 0, "out of memory");
        state_writer_free(w);
        fuzz_check(state_reader_new(text, size, &r2, &error) == 0, "its own state refused: %s", error);
        fuzz_check(upgrade_state_get_pool(r2, &again, &error) == 0, "its own pool refused: %s", error);
        fuzz_check(again.n_workers == img.n_workers && again.n_slots == img.n_slots &&
                           again.next_id == img.next_id && again.generation == img.generation,
                   "the pool changed on a second round");
        pool_image_done(&again);
        pool_image_done(&img);
        state_reader_free(r2);
        free(text);
        pool_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        StateReader *r = NULL, *r2 = NULL;
        char *error = NULL, *text;
        size_t n;

        if (state_reader_new((const char *) data, size, &r, &error) < 0) {
                fuzz_check(error, "refused without a message");
                free(error);
                return 0;
        }
        text = rewrite(r, &n);
        fuzz_check(state_reader_new(text, n, &r2, &error) == 0, "its own text refused: %s", error);
        check_same_records(r, r2);
        check_pool(r);
        state_reader_free(r2);
        state_reader_free(r);
        free(text);
        return 0;
}
