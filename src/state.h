/* SPDX-License-Identifier: MIT */
/* PURE: the upgrade state format, the text one corral image hands the next across execve(). A header
 * line "corral-state MAJOR.MINOR", then records, one per line: a type and key=value fields, values
 * escaped so a record is always one line of printable ASCII; the last line is "end". A reader refuses a
 * major version it does not know and skips record types and keys it does not know (a minor version may
 * add them); a change older readers must not skip bumps the major. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#ifdef CORRAL_TEST_STATE_MAJOR
/* A deliberately different build for the upgrade tests (tests/CMakeLists.txt): another major version. */
#define STATE_VERSION_MAJOR ((unsigned) CORRAL_TEST_STATE_MAJOR)
#else
#define STATE_VERSION_MAJOR 1U
#endif
#define STATE_VERSION_MINOR 0U

/* A state larger than this is refused by the reader (and never written: 4,096 workers take ~1 MiB). */
#define STATE_SIZE_MAX (64U * 1024U * 1024U)

typedef struct StateWriter StateWriter;

/* A writer with the header written. NULL on OOM. */
StateWriter *state_writer_new(void);
StateWriter *state_writer_free(StateWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(StateWriter *, state_writer_free);

/* Starts a record: type is a bare word ([a-z0-9-]). The fields that follow belong to it. */
void state_record(StateWriter *w, const char *type);
/* key is a bare word; the value is written escaped. */
void state_put_u64(StateWriter *w, const char *key, uint64_t value);
void state_put_i64(StateWriter *w, const char *key, int64_t value);
void state_put_bool(StateWriter *w, const char *key, bool value);
void state_put_str(StateWriter *w, const char *key, const char *value);
/* Any bytes, e.g. a config file's text. */
void state_put_bytes(StateWriter *w, const char *key, const void *value, size_t size);

/* Ends the state ("end") and hands out the text, NUL-terminated (the size leaves it out). Returns 0, or
 * -ENOMEM when any step failed for lack of memory. */
int state_writer_finish(StateWriter *w, char **ret, size_t *ret_size);

typedef struct StateField {
        const char *key;
        char *value; /* unescaped, NUL-terminated (bytes values may hold NULs: see size) */
        size_t size;
} StateField;

typedef struct StateRecord {
        const char *type;
        StateField *fields;
        size_t n_fields;
        unsigned line;
} StateRecord;

typedef struct StateReader StateReader;

/* Parses a whole state. Returns 0 and the reader in *ret, -EPROTONOSUPPORT for a major version this
 * build does not read, -EBADMSG for a malformed one (no header, no "end", a bad line), -E2BIG over
 * STATE_SIZE_MAX, -ENOMEM; *ret_error (may be NULL) then says what is wrong, with the line. */
int state_reader_new(const char *text, size_t size, StateReader **ret, char **ret_error);
StateReader *state_reader_free(StateReader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(StateReader *, state_reader_free);

void state_reader_version(const StateReader *r, unsigned *ret_major, unsigned *ret_minor);
size_t state_reader_count(const StateReader *r);
/* The i-th record, in the order written. */
const StateRecord *state_reader_get(const StateReader *r, size_t i);

/* Field getters: 0, -ENOENT when the record has no such key, -EINVAL when the value is not of the
 * type, -ERANGE when it is over max. */
int state_get_u64(const StateRecord *rec, const char *key, uint64_t max, uint64_t *ret);
int state_get_unsigned(const StateRecord *rec, const char *key, unsigned *ret);
int state_get_i64(const StateRecord *rec, const char *key, int64_t *ret);
int state_get_bool(const StateRecord *rec, const char *key, bool *ret);
/* A text value without NULs; points into the reader. */
int state_get_str(const StateRecord *rec, const char *key, const char **ret);
/* Any bytes; points into the reader. */
int state_get_bytes(const StateRecord *rec, const char *key, const void **ret, size_t *ret_size);
