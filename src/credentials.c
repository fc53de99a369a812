/* SPDX-License-Identifier: MIT */
/* User= and Group= resolved to numbers before any fork: getpwnam() and getgrouplist() may take locks, open
 * files or ask NSS modules, none of which the child between fork and exec may do. */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

#include "credentials.h"
#include "parse.h"
#include "util.h"

/* A name, or a number that names an entry (a bare uid or gid without one is refused: it has no groups
 * to give, and a typo of a number would silently run workers as a nobody of its own). */
static struct passwd *lookup_user(const char *s) {
        unsigned n;

        if (parse_unsigned(s, 0, UINT32_MAX - 1, &n) >= 0)
                return getpwuid((uid_t) n);
        return getpwnam(s);
}

static struct group *lookup_group(const char *s) {
        unsigned n;

        if (parse_unsigned(s, 0, UINT32_MAX - 1, &n) >= 0)
                return getgrgid((gid_t) n);
        return getgrnam(s);
}

/* errno after a lookup that found nothing: "not there" is ESRCH whatever the NSS module said. */
static int lookup_failed(const char *key, const char *what, const char *value, char **ret_error) {
        int r = errno > 0 && errno != ENOENT && errno != ESRCH ? -errno : -ESRCH;

        if (ret_error)
                *ret_error = strdup_printf("%s: unknown %s '%s'", key, what, value);
        return r;
}

static int supplementary_groups(const char *name, gid_t gid, gid_t **ret, size_t *ret_n) {
        int n = 16;

        for (unsigned attempt = 0; attempt < 8; attempt++) {
                _cleanup_free_ gid_t *groups = malloc(sizeof(gid_t) * (size_t) n);
                int got = n;

                if (!groups)
                        return -ENOMEM;
                if (getgrouplist(name, gid, groups, &got) >= 0) {
                        *ret = TAKE_PTR(groups);
                        *ret_n = (size_t) got;
                        return 0;
                }
                /* got is the number needed; never trust it to grow the buffer less than twofold. */
                n = MAX(got, n * 2);
        }
        return -E2BIG;
}

int credentials_resolve(const char *user, const char *group, Credentials *ret, char **ret_error) {
        Credentials c = { .uid = geteuid(), .gid = getegid() };
        _cleanup_free_ char *name = NULL;
        struct passwd *pw;
        struct group *gr;
        int r;

        if (!user && !group) {
                *ret = c;
                return 0;
        }
        if (user) {
                errno = 0;
                pw = lookup_user(user);
                if (!pw)
                        return lookup_failed("User=", "user", user, ret_error);
                c.uid = pw->pw_uid;
                c.gid = pw->pw_gid;
                name = strdup(pw->pw_name);
                if (!name)
                        return -ENOMEM;
        }
        if (group) {
                errno = 0;
                gr = lookup_group(group);
                if (!gr)
                        return lookup_failed("Group=", "group", group, ret_error);
                c.gid = gr->gr_gid;
        }

        if (geteuid() != 0) {
                /* Without root there is nothing to switch to but what corral already is. */
                if (c.uid == geteuid() && c.gid == getegid())
                        return *ret = (Credentials) {}, 0;
                if (ret_error)
                        *ret_error = strdup_printf("%s: corral runs as uid %u, not root: it cannot start workers as "
                                                   "%s '%s' (drop the key, or run the whole service as that "
                                                   "user: User= in the unit)",
                                                   c.uid != geteuid() ? "User=" : "Group=", (unsigned) geteuid(),
                                                   c.uid != geteuid() ? "user" : "group",
                                                   c.uid != geteuid() ? user : group);
                return -EPERM;
        }

        if (name) {
                r = supplementary_groups(name, c.gid, &c.groups, &c.n_groups);
                if (r < 0) {
                        if (ret_error)
                                *ret_error = strdup_printf("User=: cannot list the groups of '%s'", name);
                        return r;
                }
        }
        c.set = true;
        *ret = c;
        return 0;
}

void credentials_done(Credentials *c) {
        if (!c)
                return;
        free(c->groups);
        *c = (Credentials) {};
}
