/* SPDX-License-Identifier: MIT */
/* Instance names and the runtime directories their control sockets live in. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-login.h>

#include "instance.h"
#include "parse.h"
#include "util.h"

/* The instance of the service unit systemd started us as, or its name without ".service". INVOCATION_ID
 * says a service manager started us: a shell in a login session is in a unit too (session-1.scope), and a
 * program started from a service inherits its unit without being it. */
static char *unit_instance(void) {
        _cleanup_free_ char *unit = NULL;
        const char *at, *end;
        char *name;

        if (isempty(getenv("INVOCATION_ID")) || sd_pid_get_unit(0, &unit) < 0)
                return NULL;
        end = strrchr(unit, '.');
        if (!end || !streq(end, ".service"))
                return NULL;
        at = strchr(unit, '@');
        name = at && at + 1 < end ? strndup(at + 1, (size_t) (end - at - 1)) : strndup(unit, (size_t) (end - unit));
        /* An escaped instance ("a\x2db") is not a name we can use as is: fall back. */
        if (name && !instance_name_is_valid(name)) {
                free(name);
                return NULL;
        }
        return name;
}

char *instance_default_name(char *const *exec_start) {
        const char *base;
        char *name = unit_instance();

        if (name)
                return name;
        if (exec_start && exec_start[0]) {
                base = strrchr(exec_start[0], '/');
                base = base ? base + 1 : exec_start[0];
                if (instance_name_is_valid(base))
                        return strdup(base);
        }
        return strdup("corral");
}

int instance_base_dir(char **ret) {
        const char *xdg;

        if (geteuid() == 0)
                *ret = strdup("/run/corral");
        else {
                xdg = getenv("XDG_RUNTIME_DIR");
                if (isempty(xdg) || xdg[0] != '/')
                        return -ENXIO;
                *ret = strdup_printf("%s/corral", xdg);
        }
        return *ret ? 0 : -ENOMEM;
}

char *instance_runtime_directory_control(void) {
        const char *d = getenv("RUNTIME_DIRECTORY");

        if (isempty(d))
                return NULL;
        /* systemd separates several RuntimeDirectory= entries with ':'; use the first. */
        return strdup_printf("%.*s/control", (int) strcspn(d, ":"), d);
}

char *instance_control_path(const char *base, const char *name) {
        return strdup_printf("%s/%s/control", base, name);
}

/* mkdir, or check what is there: a directory, ours (or root's where root_ok), writable by nobody else. */
static int make_dir(int dirfd, const char *path, mode_t mode, bool root_ok, bool *ret_created) {
        struct stat st;

        *ret_created = false;
        if (mkdirat(dirfd, path, mode) == 0) {
                *ret_created = true;
                return 0;
        }
        if (errno != EEXIST)
                return -errno;
        if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if ((st.st_uid != geteuid() && !(root_ok && st.st_uid == 0)) || (st.st_mode & 0022))
                return -EPERM;
        return 0;
}

int instance_make_dir(const char *base, const char *name, bool *ret_created) {
        _cleanup_close_ int fd = -EBADF;
        bool created;
        int r;

        /* The umask must not narrow the modes asked for; the check below holds for what was there. */
        mode_t old = umask(0022);
        r = make_dir(AT_FDCWD, base, geteuid() == 0 ? 0755 : 0700, true, &created);
        if (r >= 0) {
                fd = open(base, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_RDONLY);
                r = fd < 0 ? -errno : make_dir(fd, name, 0700, false, ret_created);
        }
        umask(old);
        return r;
}

void instance_remove_dir(const char *base, const char *name) {
        _cleanup_free_ char *path = strdup_printf("%s/%s", base, name);

        if (path)
                (void) rmdir(path);
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int instance_list(const char *base, char ***ret) {
        _cleanup_(strv_freep) char **names = NULL;
        DIR *d;
        struct dirent *de;
        int r = 0;

        names = calloc(1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        d = opendir(base);
        if (!d) {
                if (errno != ENOENT)
                        return -errno;
                *ret = TAKE_PTR(names);
                return 0;
        }
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL;
                struct stat st;

                if (!instance_name_is_valid(de->d_name))
                        continue;
                path = instance_control_path(base, de->d_name);
                if (!path) {
                        r = -ENOMEM;
                        break;
                }
                if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
                        continue;
                r = strv_extend(&names, de->d_name);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0)
                return r;
        qsort(names, strv_length(names), sizeof(char *), compare_names);
        *ret = TAKE_PTR(names);
        return 0;
}
