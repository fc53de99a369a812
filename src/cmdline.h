/* SPDX-License-Identifier: MIT */
/* Command-line checks getopt does not make. Pure. */
#pragma once

#include <getopt.h>

/* getopt_long() takes any unambiguous prefix of a long option ("--check" for "--check-interval"): a typo
 * becomes another setting. Returns the index of the first argument before "--" that names a long option not
 * spelled out in options (terminated by an all-zero entry), or 0 when there is none. Option arguments (of
 * long options with has_arg == required_argument and of short options in shortopts with ':') are skipped,
 * whatever they look like. */
int cmdline_find_abbreviated(int argc, char *const argv[], const struct option *options, const char *shortopts);
