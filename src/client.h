/* SPDX-License-Identifier: MIT */
/* The client verbs, `corral status|reload|recycle|drain|undrain|upgrade|list`: which instance they talk to, one
 * request each, the exit code. */
#pragma once

#include <stdbool.h>

/* Every verb, for messages: check is the daemon's (main.c), the rest are the client's. */
#define CORRAL_VERBS "check, list, status, reload, recycle, drain, undrain, upgrade"

bool client_is_verb(const char *s);

/* Runs argv[1], a verb client_is_verb() accepts. Returns the exit code. */
int client_run(int argc, char *argv[]);
