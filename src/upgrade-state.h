/* SPDX-License-Identifier: MIT */
/* PURE: what corral hands its next image across execve(), as records of the state format (state.h):
 * the pool (its configs, generations, slots and worker records). Names, not numbers, for enums, so a
 * reordered enum never changes a state's meaning. */
#pragma once

#include "pool.h"
#include "state.h"

/* Records "pool", "pool-config" (target, stable), "slot" and "pool-worker". */
void upgrade_state_put_pool(StateWriter *w, const PoolImage *img);

/* Reads them back. Returns 0 and a filled image (free with pool_image_done()), -EBADMSG with an
 * allocated message in *ret_error (may be NULL) naming the record's line and what is wrong, or -ENOMEM.
 * Consistency between the records is pool_from_image()'s to check. */
int upgrade_state_get_pool(const StateReader *r, PoolImage *ret, char **ret_error);
