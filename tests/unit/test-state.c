/* SPDX-License-Identifier: MIT */
/* Tests for the upgrade state format (state.c): every value round-trips whatever its bytes, versions
 * are checked, a malformed state is refused with its line, getters check types and bounds. */

#include <criterion/criterion.h>
#include <stdio.h>

#include "state.h"

TestSuite(state, .timeout = 10);

static StateReader *read_text(const char *text, int expected, char **ret_error) {
        StateReader *r = NULL;
        char *error = NULL;
        int k = state_reader_new(text, strlen(text), &r, &error);

        cr_assert_eq(k, expected, "state_reader_new() = %d (%s) for:\n%s", k, error ?: "-", text);
        if (k < 0)
                cr_assert_not_null(error, "no message for a refused state");
        if (ret_error)
                *ret_error = error;
        else
                free(error);
        return r;
}

Test(state, values_round_trip) {
        _cleanup_(state_writer_freep) StateWriter *w = state_writer_new();
        _cleanup_(state_reader_freep) StateReader *r = NULL;
        _cleanup_free_ char *text = NULL;
        unsigned char all[256];
        const char *s;
        const void *b;
        size_t size, n;
        uint64_t u;
        int64_t i;
        bool flag;

        for (unsigned k = 0; k < 256; k++)
                all[k] = (unsigned char) k;
        cr_assert_not_null(w);
        state_record(w, "first");
        state_put_u64(w, "zero", 0);
        state_put_u64(w, "max", UINT64_MAX);
        state_put_i64(w, "min", INT64_MIN);
        state_put_i64(w, "minus-one", -1);
        state_put_bool(w, "yes", true);
        state_put_str(w, "text", "a b=c\\d \"e\"\n\tf");
        state_put_str(w, "empty", "");
        state_record(w, "second");
        state_put_bytes(w, "all", all, sizeof(all));
        cr_assert_eq(state_writer_finish(w, &text, &size), 0);
        cr_assert_eq(strlen(text), size);

        /* Three records and the header, each one line of printable ASCII. */
        n = 0;
        for (size_t k = 0; k < size; k++) {
                n += text[k] == '\n';
                cr_assert(text[k] == '\n' || (text[k] >= ' ' && text[k] < 0x7f), "byte %zu is 0x%02x", k,
                          (unsigned char) text[k]);
        }
        cr_assert_eq(n, 4);

        r = read_text(text, 0, NULL);
        cr_assert_eq(state_reader_count(r), 2);
        const StateRecord *first = state_reader_get(r, 0), *second = state_reader_get(r, 1);
        cr_assert_null(state_reader_get(r, 2));
        cr_assert_str_eq(first->type, "first");
        cr_assert_eq(first->line, 2);
        cr_assert_eq(state_get_u64(first, "zero", 0, &u), 0);
        cr_assert_eq(u, 0);
        cr_assert_eq(state_get_u64(first, "max", UINT64_MAX, &u), 0);
        cr_assert_eq(u, UINT64_MAX);
        cr_assert_eq(state_get_i64(first, "min", &i), 0);
        cr_assert_eq(i, INT64_MIN);
        cr_assert_eq(state_get_i64(first, "minus-one", &i), 0);
        cr_assert_eq(i, -1);
        cr_assert_eq(state_get_bool(first, "yes", &flag), 0);
        cr_assert(flag);
        cr_assert_eq(state_get_str(first, "text", &s), 0);
        cr_assert_str_eq(s, "a b=c\\d \"e\"\n\tf");
        cr_assert_eq(state_get_str(first, "empty", &s), 0);
        cr_assert_str_eq(s, "");
        cr_assert_str_eq(second->type, "second");
        cr_assert_eq(state_get_bytes(second, "all", &b, &size), 0);
        cr_assert_eq(size, sizeof(all));
        cr_assert_arr_eq(b, all, sizeof(all));
        /* A value with a NUL is bytes, not text. */
        cr_assert_eq(state_get_str(second, "all", &s), -EINVAL);
}

Test(state, getters_check_presence_type_and_bounds) {
        _cleanup_(state_reader_freep) StateReader *r = read_text(
                "corral-state 1.0\n"
                "r lead=01 empty= word=abc big=18446744073709551616 seven=7 neg=-0 low=-9223372036854775809 "
                "two=2\nend\n",
                0, NULL);
        const StateRecord *rec = state_reader_get(r, 0);
        uint64_t u;
        int64_t i;
        unsigned n;
        bool b;

        cr_assert_eq(state_get_u64(rec, "missing", UINT64_MAX, &u), -ENOENT);
        cr_assert_eq(state_get_u64(rec, "lead", UINT64_MAX, &u), -EINVAL);
        cr_assert_eq(state_get_u64(rec, "empty", UINT64_MAX, &u), -EINVAL);
        cr_assert_eq(state_get_u64(rec, "word", UINT64_MAX, &u), -EINVAL);
        cr_assert_eq(state_get_u64(rec, "big", UINT64_MAX, &u), -ERANGE);
        cr_assert_eq(state_get_u64(rec, "seven", 6, &u), -ERANGE);
        cr_assert_eq(state_get_unsigned(rec, "seven", &n), 0);
        cr_assert_eq(n, 7);
        cr_assert_eq(state_get_i64(rec, "neg", &i), -EINVAL);
        cr_assert_eq(state_get_i64(rec, "low", &i), -ERANGE);
        cr_assert_eq(state_get_bool(rec, "two", &b), -EINVAL);
        cr_assert_eq(state_get_bool(rec, "missing", &b), -ENOENT);
}

Test(state, a_newer_minor_is_read_and_what_it_adds_is_skippable) {
        _cleanup_(state_reader_freep) StateReader *r =
                read_text("corral-state 1.9\nnew-kind future=1\nknown a=1 later=x\nend\n", 0, NULL);
        unsigned major, minor;
        uint64_t u;

        state_reader_version(r, &major, &minor);
        cr_assert_eq(major, 1);
        cr_assert_eq(minor, 9);
        cr_assert_eq(state_reader_count(r), 2);
        cr_assert_eq(state_get_u64(state_reader_get(r, 1), "a", UINT64_MAX, &u), 0);
}

Test(state, another_major_is_refused_and_named) {
        _cleanup_free_ char *error = NULL;

        read_text("corral-state 2.0\nend\n", -EPROTONOSUPPORT, &error);
        cr_assert(strstr(error, "format 2.0"), "%s", error);
        cr_assert(strstr(error, "reads 1.x"), "%s", error);
}

Test(state, malformed_states_are_refused_with_the_line) {
        static const struct {
                const char *text;
                const char *says;
        } cases[] = {
                { "", "cut short" },
                { "corral-state 1.0\nend", "cut short" },
                { "corral-state 1.0\nr a=1\n", "no 'end'" },
                { "corral-state 1.0\nend\nr a=1\n", "line 3: something after 'end'" },
                { "corral-statue 1.0\nend\n", "line 1: not a corral state" },
                { "corral-state 1\nend\n", "line 1" },
                { "corral-state +1.0\nend\n", "line 1" },
                { "corral-state 1.0x\nend\n", "line 1" },
                { "corral-state 1. 0\nend\n", "line 1" },
                { "corral-state 1.-1\nend\n", "line 1" },
                { "corral-state 01.0\nend\n", "line 1" },
                { "corral-state 1.0\nR a=1\nend\n", "line 2: a record must start with its type" },
                { "corral-state 1.0\n a=1\nend\n", "line 2: a record must start" },
                { "corral-state 1.0\nr a\nend\n", "line 2: a field must be key=value" },
                { "corral-state 1.0\nr a=1  b=2\nend\n", "line 2: a field must be key=value" },
                { "corral-state 1.0\nr a=1 \nend\n", "line 2: a field must be key=value" },
                { "corral-state 1.0\nr A=1\nend\n", "line 2: a field must be key=value" },
                { "corral-state 1.0\nr a=1 a=2\nend\n", "line 2: a key appears twice" },
                { "corral-state 1.0\nr a=\\x4\nend\n", "line 2: a bad escape" },
                { "corral-state 1.0\nr a=\\n\nend\n", "line 2: a bad escape" },
                { "corral-state 1.0\nr a=\\xZZ\nend\n", "line 2: a bad escape" },
                { "corral-state 1.0\nr a=\\\nend\n", "line 2: a bad escape" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *error = NULL;
                read_text(cases[i].text, -EBADMSG, &error);
                cr_assert(strstr(error, cases[i].says), "case %zu: '%s' does not say '%s'", i, error,
                          cases[i].says);
        }
}

Test(state, a_nul_byte_or_a_huge_state_is_refused) {
        StateReader *r = NULL;
        char *error = NULL;

        cr_assert_eq(state_reader_new("corral-state 1.0\n\0end\n", 22, &r, &error), -EBADMSG);
        cr_assert(strstr(error, "NUL"), "%s", error);
        free(error);
        error = NULL;
        cr_assert_eq(state_reader_new("", (size_t) STATE_SIZE_MAX + 1, &r, &error), -E2BIG);
        free(error);
        cr_assert_null(r);
}

Test(state, a_writer_with_no_records_makes_a_readable_empty_state) {
        _cleanup_(state_writer_freep) StateWriter *w = state_writer_new();
        _cleanup_(state_reader_freep) StateReader *r = NULL;
        _cleanup_free_ char *text = NULL;
        char expected[64];
        size_t size;

        cr_assert_eq(state_writer_finish(w, &text, &size), 0);
        snprintf(expected, sizeof(expected), "corral-state %u.%u\nend\n", STATE_VERSION_MAJOR,
                 STATE_VERSION_MINOR);
        cr_assert_str_eq(text, expected);
        r = read_text(text, 0, NULL);
        cr_assert_eq(state_reader_count(r), 0);
}
