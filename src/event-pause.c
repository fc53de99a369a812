/* SPDX-License-Identifier: MIT */
#include "event-pause.h"

static int on_retry(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) sd_event_source_set_enabled(userdata, SD_EVENT_ON);
        return 0;
}

void event_source_pause(sd_event_source *io, sd_event_source **retry, usec_t usec, const char *description) {
        int64_t priority = 0;

        if (!*retry) {
                if (sd_event_add_time_relative(sd_event_source_get_event(io), retry, CLOCK_MONOTONIC, usec, 0,
                                               on_retry, io) < 0)
                        return;
                (void) sd_event_source_get_priority(io, &priority);
                (void) sd_event_source_set_priority(*retry, priority);
                (void) sd_event_source_set_description(*retry, description);
        } else if (sd_event_source_set_time_relative(*retry, usec) < 0 ||
                   sd_event_source_set_enabled(*retry, SD_EVENT_ONESHOT) < 0)
                return;
        (void) sd_event_source_set_enabled(io, SD_EVENT_OFF);
}
