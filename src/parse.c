/* SPDX-License-Identifier: MIT */
/* Strict parsers for numbers, durations, sizes, booleans, command lines, signal names and listen
 * addresses. Hand-written digit loops instead of strtoul(), which accepts signs, leading spaces and
 * silently wraps "-1". */

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <strings.h>
#include <sys/un.h>

#include "parse.h"

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* Parses a run of decimal digits at *p into *ret, advancing *p. -EINVAL when there are none, -ERANGE when
 * the value does not fit in 64 bits. */
static int parse_digits(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (!is_digit(*s))
                return -EINVAL;
        for (; is_digit(*s); s++) {
                uint64_t digit = (uint64_t) (*s - '0');

                if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, digit, &v))
                        return -ERANGE;
        }
        *p = s;
        *ret = v;
        return 0;
}

int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret) {
        uint64_t v;
        int r;

        if (!s)
                return -EINVAL;
        r = parse_digits(&s, &v);
        if (r < 0)
                return r;
        if (*s != 0)
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

/* "1.25" times unit, truncated to whole units of the base (us or bytes). Advances *p past the number;
 * ret_has_fraction may be NULL. */
static int parse_scaled(const char **p, uint64_t unit, bool *ret_has_fraction, uint64_t *ret) {
        const char *s = *p;
        uint64_t whole, total, frac = 0, div = 1;
        bool has_fraction = false;
        int r;

        r = parse_digits(&s, &whole);
        if (r < 0)
                return r;
        if (*s == '.') {
                s++;
                if (!is_digit(*s))
                        return -EINVAL;
                has_fraction = true;
                /* Digits past 10^18 cannot change the result in a 64-bit base; skip them. */
                for (; is_digit(*s); s++)
                        if (div < UINT64_C(1000000000000000000)) {
                                frac = frac * 10 + (uint64_t) (*s - '0');
                                div *= 10;
                        }
        }

        if (__builtin_mul_overflow(whole, unit, &total))
                return -ERANGE;
        if (frac > 0) {
                /* frac/div < 1, so frac * unit / div < unit; 128 bits keep the product from overflowing. */
                unsigned __int128 f = (unsigned __int128) frac * unit / div;

                if (__builtin_add_overflow(total, (uint64_t) f, &total))
                        return -ERANGE;
        }

        *p = s;
        if (ret_has_fraction)
                *ret_has_fraction = has_fraction;
        *ret = total;
        return 0;
}

static const struct {
        const char *suffix;
        usec_t usec;
} time_units[] = {
        /* Longest first, so "msec" is not read as "m" followed by garbage. */
        { "seconds", USEC_PER_SEC },
        { "second", USEC_PER_SEC },
        { "minutes", USEC_PER_MINUTE },
        { "minute", USEC_PER_MINUTE },
        { "hours", USEC_PER_HOUR },
        { "hour", USEC_PER_HOUR },
        { "days", USEC_PER_DAY },
        { "usec", 1 },
        { "msec", USEC_PER_MSEC },
        { "sec", USEC_PER_SEC },
        { "min", USEC_PER_MINUTE },
        { "day", USEC_PER_DAY },
        { "us", 1 },
        { "ms", USEC_PER_MSEC },
        { "hr", USEC_PER_HOUR },
        { "s", USEC_PER_SEC },
        { "m", USEC_PER_MINUTE },
        { "h", USEC_PER_HOUR },
        { "d", USEC_PER_DAY },
};

/* Matches a unit at p that is not followed by more letters. Returns its length, 0 for none. */
static size_t match_time_unit(const char *p, usec_t *ret_usec) {
        for (size_t i = 0; i < ELEMENTSOF(time_units); i++) {
                size_t n = strlen(time_units[i].suffix);

                if (strncmp(p, time_units[i].suffix, n) == 0 && !isalpha((unsigned char) p[n])) {
                        *ret_usec = time_units[i].usec;
                        return n;
                }
        }
        return 0;
}

int parse_usec(const char *s, usec_t *ret) {
        usec_t total = 0;
        bool first = true;

        if (isempty(s))
                return -EINVAL;

        for (;;) {
                const char *end_of_number, *q;
                usec_t unit = 0, v;
                size_t n;
                int r;

                /* Find the unit first: it decides how a fraction scales. */
                for (end_of_number = s; is_digit(*end_of_number) || *end_of_number == '.'; end_of_number++)
                        ;
                for (q = end_of_number; *q == ' ' || *q == '\t'; q++)
                        ;
                n = match_time_unit(q, &unit);
                if (n == 0) {
                        /* A bare number is seconds, but only on its own: "1min 30" is a typo, not 90s. */
                        if (!first || *end_of_number != 0)
                                return -EINVAL;
                        unit = USEC_PER_SEC;
                }

                r = parse_scaled(&s, unit, NULL, &v);
                if (r < 0)
                        return r;
                if (s != end_of_number)
                        return -EINVAL;
                if (__builtin_add_overflow(total, v, &total))
                        return -ERANGE;

                s = q + n;
                if (*s == 0)
                        break;
                while (*s == ' ' || *s == '\t')
                        s++;
                if (*s == 0)
                        return -EINVAL; /* trailing whitespace */
                first = false;
        }

        if (total == USEC_INFINITY)
                return -ERANGE;
        *ret = total;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const char prefixes[] = "KMGTPE";
        const char *end_of_number, *q, *p;
        uint64_t factor = 1, v;
        bool has_fraction;
        int r;

        if (isempty(s))
                return -EINVAL;

        for (end_of_number = s; is_digit(*end_of_number) || *end_of_number == '.'; end_of_number++)
                ;
        q = end_of_number;
        if (*q != 0 && (p = strchr(prefixes, *q))) {
                for (size_t i = 0; i <= (size_t) (p - prefixes); i++)
                        factor *= 1024;
                q++;
                if (streq(q, "iB"))
                        q += 2;
        }
        if (streq(q, "B"))
                q++;
        if (*q != 0)
                return -EINVAL;

        r = parse_scaled(&s, factor, &has_fraction, &v);
        if (r < 0)
                return r;
        if (s != end_of_number)
                return -EINVAL;
        /* "1.5" bytes means nothing; a fraction needs a unit it is a fraction of. */
        if (has_fraction && factor == 1)
                return -EINVAL;

        *ret = v;
        return 0;
}

int parse_boolean(const char *s, bool *ret) {
        static const char *const yes[] = { "1", "yes", "true", "on" };
        static const char *const no[] = { "0", "no", "false", "off" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

int parse_command_line(const char *s, char ***ret) {
        _cleanup_strv_free_ char **words = NULL;
        _cleanup_free_ char *word = NULL;
        size_t len;

        if (!s)
                return -EINVAL;

        /* A word is never longer than the input, so one buffer of that size serves every word. */
        len = strlen(s);
        word = malloc(len + 1);
        if (!word)
                return -ENOMEM;

        for (;;) {
                bool in_word = false;
                char quote = 0;
                size_t n = 0;
                int r;

                while (*s == ' ' || *s == '\t' || *s == '\n')
                        s++;
                if (*s == 0)
                        break;

                for (; *s; s++) {
                        if (quote == '\'') {
                                if (*s == '\'')
                                        quote = 0;
                                else
                                        word[n++] = *s;
                        } else if (*s == '\\') {
                                if (s[1] == 0)
                                        return -EINVAL; /* a trailing backslash escapes nothing */
                                word[n++] = *++s;
                        } else if (quote == '"') {
                                if (*s == '"')
                                        quote = 0;
                                else
                                        word[n++] = *s;
                        } else if (*s == '"' || *s == '\'')
                                quote = *s;
                        else if (*s == ' ' || *s == '\t' || *s == '\n')
                                break;
                        else
                                word[n++] = *s;
                        in_word = true;
                }
                if (quote != 0)
                        return -EINVAL;
                if (!in_word)
                        break;

                word[n] = 0;
                r = strv_extend(&words, word);
                if (r < 0)
                        return r;
        }

        if (strv_length(words) == 0)
                return -EINVAL;

        *ret = TAKE_PTR(words);
        return 0;
}

int signal_from_string(const char *s) {
        const char *p;
        unsigned n;

        if (isempty(s))
                return -EINVAL;

        /* A bare number is taken as is, as long as the kernel knows it: realtime signals included. */
        if (parse_unsigned(s, 1, _NSIG - 1, &n) >= 0)
                return (int) n;

        p = startswith(s, "SIG") ?: s;
        for (int sig = 1; sig < _NSIG; sig++)
                if (streq_ptr(p, signal_to_string(sig)))
                        return sig;

        /* SIGRTMIN is a glibc runtime value (it reserves the first few for itself), hence not in util.c's
         * table of names. */
        if (streq(p, "RTMIN"))
                return SIGRTMIN;
        if (streq(p, "RTMAX"))
                return SIGRTMAX;
        if ((s = startswith(p, "RTMIN+")) && parse_unsigned(s, 1, SIGRTMAX - SIGRTMIN, &n) >= 0)
                return SIGRTMIN + (int) n;
        if ((s = startswith(p, "RTMAX-")) && parse_unsigned(s, 1, SIGRTMAX - SIGRTMIN, &n) >= 0)
                return SIGRTMAX - (int) n;

        return -EINVAL;
}

static bool name_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_' || c == '.';
}

static int listen_spec_parse_inet(const char *s, ListenSpec *spec, const char **ret_reason) {
        char host[INET6_ADDRSTRLEN + 1];
        bool bracketed = *s == '[';
        const char *colon, *port_str;
        unsigned port;
        size_t n;

        if (bracketed) {
                const char *close = strchr(s, ']');

                if (!close) {
                        *ret_reason = "missing ']' after IPv6 address";
                        return -EINVAL;
                }
                if (close[1] != ':') {
                        *ret_reason = "missing port";
                        return -EINVAL;
                }
                n = (size_t) (close - s - 1);
                port_str = close + 2;
                s++;
        } else {
                colon = strrchr(s, ':');
                if (!colon) {
                        *ret_reason = "missing port";
                        return -EINVAL;
                }
                n = (size_t) (colon - s);
                if (memchr(s, ':', n)) {
                        *ret_reason = "IPv6 addresses must be written in brackets, e.g. [::1]:8080";
                        return -EINVAL;
                }
                port_str = colon + 1;
        }

        if (n == 0) {
                *ret_reason = "missing address (use 0.0.0.0 or [::] for all addresses)";
                return -EINVAL;
        }
        if (n >= sizeof(host)) {
                *ret_reason = "invalid IP address";
                return -EINVAL;
        }
        memcpy(host, s, n);
        host[n] = 0;

        if (parse_unsigned(port_str, 0, 65535, &port) < 0) {
                *ret_reason = "invalid port, expected a number between 0 and 65535";
                return -EINVAL;
        }

        memset(&spec->addr, 0, sizeof(spec->addr));
        if (bracketed) {
                struct sockaddr_in6 *sa = (struct sockaddr_in6 *) &spec->addr;

                if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1) {
                        *ret_reason = "invalid IPv6 address";
                        return -EINVAL;
                }
                sa->sin6_family = AF_INET6;
                sa->sin6_port = htons((uint16_t) port);
                spec->addr_len = sizeof(*sa);
        } else {
                struct sockaddr_in *sa = (struct sockaddr_in *) &spec->addr;

                if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
                        *ret_reason = "invalid IPv4 address";
                        return -EINVAL;
                }
                sa->sin_family = AF_INET;
                sa->sin_port = htons((uint16_t) port);
                spec->addr_len = sizeof(*sa);
        }
        return 0;
}

static int listen_spec_parse_unix(const char *s, ListenSpec *spec, const char **ret_reason) {
        const char *colon = strrchr(s, ':');
        size_t n = strlen(s);

        /* A trailing ":0660" is a mode; a path may itself contain colons, so only 3 or 4 octal digits at the
         * very end count. */
        spec->mode = 0;
        if (colon && strlen(colon + 1) >= 3 && strlen(colon + 1) <= 4 &&
            strspn(colon + 1, "01234567") == strlen(colon + 1)) {
                unsigned mode = 0;

                for (const char *p = colon + 1; *p; p++)
                        mode = mode * 8 + (unsigned) (*p - '0');
                if (mode == 0 || mode > 0777) {
                        *ret_reason = "invalid mode, expected an octal mode between 0001 and 0777";
                        return -EINVAL;
                }
                spec->mode = mode;
                n = (size_t) (colon - s);
        }

        if (n == 0 || s[0] != '/') {
                *ret_reason = "UNIX socket path must be absolute";
                return -EINVAL;
        }
        if (n >= sizeof(spec->path) || n >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                *ret_reason = "UNIX socket path too long";
                return -EINVAL;
        }
        memcpy(spec->path, s, n);
        spec->path[n] = 0;
        return 0;
}

static const struct {
        const char *prefix;
        ListenKind kind;
} listen_prefixes[] = {
        { "tcp", LISTEN_TCP },
        { "udp", LISTEN_UDP },
        { "unix", LISTEN_UNIX_STREAM },
};

int listen_spec_parse(const char *s, ListenSpec *ret, const char **ret_reason) {
        ListenSpec spec = { .name = "listen" };
        const char *reason = NULL, *eq, *colon, *rest;
        int r;

        if (!ret_reason)
                ret_reason = &reason;
        if (isempty(s)) {
                *ret_reason = "empty address";
                return -EINVAL;
        }

        /* "NAME=" is a name only when '=' comes before any ':' — "unix:/a=b" is a path with '=' in it. */
        eq = strchr(s, '=');
        colon = strchr(s, ':');
        if (eq && (!colon || eq < colon) && !memchr(s, '[', (size_t) (eq - s))) {
                size_t n = (size_t) (eq - s);

                if (n == 0 || n >= sizeof(spec.name)) {
                        *ret_reason = "invalid name, expected 1 to 63 characters";
                        return -EINVAL;
                }
                for (size_t i = 0; i < n; i++)
                        if (!name_char_ok(s[i])) {
                                *ret_reason = "invalid name, expected letters, digits, '-', '_' or '.'";
                                return -EINVAL;
                        }
                memcpy(spec.name, s, n);
                spec.name[n] = 0;
                s = eq + 1;
        }

        /* The type prefix is the word before the first ':'. A word with letters beyond hex digits cannot
         * start an address, so "sctp:..." is an unknown type rather than an unbracketed IPv6 address. */
        colon = strchr(s, ':');
        rest = s;
        spec.kind = LISTEN_TCP;
        if (colon) {
                size_t n = (size_t) (colon - s);
                bool found = false;

                for (size_t i = 0; i < ELEMENTSOF(listen_prefixes); i++) {
                        const char *prefix = listen_prefixes[i].prefix;

                        if (strlen(prefix) == n && strncmp(s, prefix, n) == 0) {
                                spec.kind = listen_prefixes[i].kind;
                                rest = colon + 1;
                                found = true;
                        }
                }
                /* ...but "localhost:80" is a host name with a port, and gets the address error below. */
                if (!found && n > 0 && strspn(s, "abcdefghijklmnopqrstuvwxyz") == n &&
                    strspn(s, "abcdef") < n && colon[1 + strspn(colon + 1, "0123456789")] != 0) {
                        *ret_reason = "unknown socket type, expected 'tcp:', 'udp:' or 'unix:'";
                        return -EINVAL;
                }
        }

        if (spec.kind == LISTEN_UNIX_STREAM)
                r = listen_spec_parse_unix(rest, &spec, ret_reason);
        else
                r = listen_spec_parse_inet(rest, &spec, ret_reason);
        if (r < 0)
                return r;

        *ret = spec;
        return 0;
}

bool instance_name_is_valid(const char *s) {
        size_t n = 0;

        if (!s || !*s || *s == '.' || *s == '-')
                return false;
        for (; s[n]; n++)
                if (!(s[n] >= 'a' && s[n] <= 'z') && !(s[n] >= 'A' && s[n] <= 'Z') && !(s[n] >= '0' && s[n] <= '9') &&
                    !strchr("_.@:-", s[n]))
                        return false;
        return n <= INSTANCE_NAME_MAX;
}
