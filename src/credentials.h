/* SPDX-License-Identifier: MIT */
/* [Worker] User= and Group=: the uid, gid and supplementary groups the workers of a generation run as,
 * resolved once when the generation is made, so the child between fork and exec only has to apply them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct Credentials {
        bool set;       /* false: the workers keep corral's own credentials */
        uid_t uid;
        gid_t gid;
        gid_t *groups;  /* supplementary groups (owned), the user's from the group database */
        size_t n_groups;
} Credentials;

/* Resolves user and group (names or numbers; either may be NULL) through the user and group databases.
 * User= alone: that user's primary group and supplementary groups. Group= too: that group as the primary
 * one, the user's supplementary groups. Group= alone: that group, no supplementary groups, corral's uid.
 * When corral is not root, only its own uid and gid can be asked for (nothing to change then).
 * Returns 0 and *ret (released with credentials_done()), or -ESRCH for an unknown user or group, -EPERM
 * when corral cannot switch to them, another negative errno; *ret_error (may be NULL) receives an
 * allocated message naming the key and the value. */
int credentials_resolve(const char *user, const char *group, Credentials *ret, char **ret_error);

/* Frees what c holds and clears it. Accepts NULL. */
void credentials_done(Credentials *c);
