/* SPDX-License-Identifier: MIT */
/* The journal MESSAGE_IDs of corral's lifecycle events. Each one has an entry in contrib/corral.catalog;
 * tests/unit/test-catalog.c checks the two lists match. Never change an ID once released. */
#pragma once

#define MESSAGE_ID_POOL_READY "5bcdcd9e26d94ab691ec20b1e49cde00"
#define MESSAGE_ID_POOL_STOPPING "a96b53a7275b4d209914b3087ef123ca"
#define MESSAGE_ID_WORKER_STARTED "7d91c7b1a6d34bfcaa25f1d8dc983df0"
#define MESSAGE_ID_WORKER_READY "33076304177c45b999c355d346f8adb0"
#define MESSAGE_ID_WORKER_EXITED "c4c822e8eef74ab08a7e5117b01b6149"
#define MESSAGE_ID_WORKER_CRASHED "1bcd44d3a6ae4e6780c87b2e699c2c38"
#define MESSAGE_ID_WORKER_START_FAILED "5ec4244e8a4e4d70aefc65c675032fb8"
#define MESSAGE_ID_WORKER_THROTTLED "6d3af6a302c04784881cc1c9bbbf5a55"
#define MESSAGE_ID_WORKER_DISABLED "b7b5f0ccd2af4ebb8cdb0f13227f8b6d"
#define MESSAGE_ID_WORKER_KILLED "6e73f14f664f46f5b1ac1b17824723d8"
#define MESSAGE_ID_RELOAD_STARTED "0facac41c4154a6e8b9bf2adca54fe4b"
#define MESSAGE_ID_RELOAD_DONE "085fadcf9a09438a9fee2445cf2fec1a"
#define MESSAGE_ID_RELOAD_FAILED "e437e9b4d82e47b8ad0b5dedbd699408"
#define MESSAGE_ID_NOTIFY_REJECTED "912d573616a14a19800f05830883fd7b"
#define MESSAGE_ID_WORKER_WATCHDOG "555f3b33f5e2489fbc7ef5313217d6af"
#define MESSAGE_ID_SIGNAL_RELAYED "08fff8068bf141f09bca54d4cbfe1fd4"
