/* SPDX-License-Identifier: MIT */
/* Instances by name: an instance's default name, where its control socket lives, and which instances a
 * directory holds. The daemon and the client share these rules, so `corral status NAME` finds what
 * `corral --name NAME` made.
 *
 * The control socket is $RUNTIME_DIRECTORY/control under systemd (the unit's RuntimeDirectory=corral/%i is
 * /run/corral/NAME), otherwise BASE/NAME/control, where BASE is /run/corral for root and
 * $XDG_RUNTIME_DIR/corral for other users. */
#pragma once

#include <stdbool.h>

/* The name when none is configured: the unit's instance when systemd started us as a service ("app" for
 * corral@app.service, "web" for web.service), else the worker command's file name, else "corral". */
char *instance_default_name(char *const *exec_start);

/* BASE for this user into *ret (allocated). -ENXIO: not root and XDG_RUNTIME_DIR is not set. */
int instance_base_dir(char **ret);

/* $RUNTIME_DIRECTORY/control (the first directory when there are several), or NULL when it is not set. */
char *instance_runtime_directory_control(void);

/* BASE/NAME/control. Allocated, NULL when out of memory. */
char *instance_control_path(const char *base, const char *name);

/* Makes BASE (0755 for root, so that a unit's RuntimeDirectory= below it stays reachable for its user; 0700
 * otherwise) and BASE/NAME (0700). An existing one must be a directory of ours (or root's, for BASE) that
 * nobody else may write to: -EPERM otherwise. *ret_created: BASE/NAME was made now. */
int instance_make_dir(const char *base, const char *name, bool *ret_created);

/* Removes BASE/NAME if it is empty (what instance_make_dir() made, at exit). */
void instance_remove_dir(const char *base, const char *name);

/* The names below BASE that hold a control socket, sorted, into *ret (a strv, possibly empty). A missing
 * BASE is no instance. */
int instance_list(const char *base, char ***ret);
