/* SPDX-License-Identifier: MIT */
/* The client verbs. The instance comes from --control PATH, a NAME (BASE/NAME/control, instance.h),
 * $RUNTIME_DIRECTORY (a unit's ExecReload=), or the only instance running under BASE. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "client.h"
#include "cmdline.h"
#include "control-client.h"
#include "config.h"
#include "instance.h"
#include "log.h"
#include "parse.h"

#define CLIENT_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* `drain --wait`: how long the connections may take to close unless --timeout says, and how often they are
 * counted meanwhile. */
#define DRAIN_WAIT_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define DRAIN_POLL_USEC (100 * USEC_PER_MSEC)

enum {
        ARG_CONTROL = 0x100,
        ARG_TIMEOUT,
        ARG_WAIT,
        ARG_JSON,
};

typedef struct ClientArgs {
        const char *verb;
        const char *control;
        const char *name;
        usec_t timeout;
        bool timeout_set;
        bool wait, json;
        unsigned slot;
} ClientArgs;

/* What one instance said to "summary". */
typedef struct Survey {
        char *name;
        char *path;
        int error;   /* 0: it answered, fields below; else control_client_call()'s error */
        char *line;  /* NAME\tPID\tSTATE\tREADY\tWANTED\tGENERATION */
} Survey;

static const char *const verbs[] = { "list", "status", "reload", "recycle", "drain", "undrain", "upgrade" };

bool client_is_verb(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(s, verbs[i]))
                        return true;
        return false;
}

static void usage(FILE *f) {
        fputs("Usage: corral list [--timeout DURATION]\n"
              "       corral status [--json] [NAME]\n"
              "       corral reload [--wait] [NAME]\n"
              "       corral recycle SLOT [NAME]\n"
              "       corral drain [--wait] [NAME]\n"
              "       corral undrain [NAME]\n"
              "       corral upgrade [--wait] [NAME]\n"
              "Every one takes --control PATH (instead of NAME) and --timeout DURATION (default 5s).\n"
              "drain --wait then waits until no TCP connection is open on the workers' addresses, at most\n"
              "--timeout (there 30s by default).\n"
              "corral --help shows everything.\n",
              f);
}

static int parse_client_argv(int argc, char *argv[], ClientArgs *a) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "control", required_argument, NULL, ARG_CONTROL },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "wait", no_argument, NULL, ARG_WAIT },
                { "json", no_argument, NULL, ARG_JSON },
                {},
        };
        int c, bad, positional;

        a->verb = argv[1];
        a->timeout = CLIENT_TIMEOUT_USEC;
        /* Past the verb: getopt sees argv + 1 as its whole command line. */
        bad = cmdline_find_abbreviated(argc - 1, argv + 1, options, "h");
        if (bad > 0) {
                log_error("%s: unknown option '%s'", a->verb, argv[bad + 1]);
                return EXIT_USAGE;
        }
        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc - 1, argv + 1, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        usage(stdout);
                        return -1;
                case ARG_CONTROL:
                        a->control = optarg;
                        break;
                case ARG_TIMEOUT:
                        if (parse_usec(optarg, &a->timeout) < 0 || a->timeout == 0 || a->timeout > USEC_PER_DAY) {
                                log_error("--timeout: invalid duration '%s' (expected e.g. 5s, 500ms; above 0, at "
                                          "most a day)", optarg);
                                return EXIT_CONFIG;
                        }
                        a->timeout_set = true;
                        break;
                case ARG_WAIT:
                        a->wait = true;
                        break;
                case ARG_JSON:
                        a->json = true;
                        break;
                default:
                        if (optopt > 0 && optopt < ARG_CONTROL)
                                log_error("%s: unknown option '-%c'", a->verb, optopt);
                        else
                                log_error("%s: option '%s' %s", a->verb, argv[optind],
                                          strchr(argv[optind], '=') ? "takes no value" : "needs a value");
                        usage(stderr);
                        return EXIT_USAGE;
                }

        if ((a->wait && !streq(a->verb, "reload") && !streq(a->verb, "upgrade") && !streq(a->verb, "drain")) ||
            (a->json && !streq(a->verb, "status"))) {
                log_error("%s: --wait goes with reload, drain and upgrade, --json with status", a->verb);
                return EXIT_USAGE;
        }
        positional = optind + 1;
        if (streq(a->verb, "recycle")) {
                if (positional >= argc || parse_unsigned(argv[positional], 0, COUNT_MAX - 1, &a->slot) < 0) {
                        log_error("usage: corral recycle SLOT [NAME], SLOT a number below %u", COUNT_MAX);
                        return EXIT_USAGE;
                }
                positional++;
        }
        if (positional < argc && !streq(a->verb, "list"))
                a->name = argv[positional++];
        if (positional < argc) {
                log_error("%s: unexpected argument '%s'", a->verb, argv[positional]);
                return EXIT_USAGE;
        }
        if (a->name && a->control) {
                log_error("%s: name an instance or pass --control, not both", a->verb);
                return EXIT_USAGE;
        }
        if (a->name && !instance_name_is_valid(a->name)) {
                log_error("%s: '%s' is not an instance name", a->verb, a->name);
                return EXIT_USAGE;
        }
        return 0;
}

static void survey_done(Survey *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(s[i].name);
                free(s[i].path);
                free(s[i].line);
        }
        free(s);
}

/* Asks every instance under base for its summary. Stale sockets are left out. */
static int survey(const char *base, usec_t timeout, Survey **ret, size_t *ret_n) {
        _cleanup_(strv_freep) char **names = NULL;
        Survey *s;
        size_t n = 0;
        int r;

        r = instance_list(base, &names);
        if (r < 0)
                return r;
        s = calloc(strv_length(names) + 1, sizeof(Survey));
        if (!s)
                return -ENOMEM;
        for (char **name = names; *name; name++) {
                _cleanup_free_ char *reply = NULL, *path = instance_control_path(base, *name);
                size_t size;

                if (!path) {
                        survey_done(s, n);
                        return -ENOMEM;
                }
                r = control_client_call(path, "summary", timeout, &reply, &size);
                if (r == -ECONNREFUSED || r == -ENOENT)
                        continue;
                s[n] = (Survey) { .name = strdup(*name), .path = TAKE_PTR(path), .error = r };
                if (r == 0 && startswith(reply, "ok\n"))
                        s[n].line = strndup(reply + 3, strcspn(reply + 3, "\n"));
                else if (r == 0)
                        s[n].error = -EBADMSG; /* an "error: " (refused, or too old to know "summary") */
                n++;
        }
        *ret = s;
        *ret_n = n;
        return 0;
}

static int run_list(const ClientArgs *a) {
        _cleanup_free_ char *base = NULL;
        Survey *s = NULL;
        size_t n = 0;
        int r, width = 4;

        r = instance_base_dir(&base);
        if (r == -ENXIO) {
                log_error("list: XDG_RUNTIME_DIR is not set, so there is no place to look for instances");
                return EXIT_NOT_RUNNING;
        }
        if (r >= 0)
                r = survey(base, a->timeout, &s, &n);
        if (r < 0) {
                log_error_errno(r, "list: cannot read '%s': %m", base ?: "?");
                return 1;
        }
        for (size_t i = 0; i < n; i++)
                width = MAX(width, (int) strlen(s[i].name));
        printf("%-*s %-8s %-12s %-9s %-10s %s\n", width, "NAME", "PID", "STATE", "READY", "GENERATION", "CONTROL");
        for (size_t i = 0; i < n; i++) {
                char pid[16] = "-", state[16] = "-", ready[32] = "-", generation[16] = "-";
                unsigned rd, wanted;

                if (s[i].line && sscanf(s[i].line, "%*[^\t]\t%15[^\t]\t%15[^\t]\t%u\t%u\t%15s", pid, state, &rd, &wanted,
                                        generation) == 5)
                        snprintf(ready, sizeof ready, "%u/%u", rd, wanted);
                else
                        snprintf(state, sizeof state, "%s",
                                 s[i].error == -ETIMEDOUT                         ? "unresponsive" :
                                 s[i].error == -EACCES || s[i].error == -EPERM ? "denied" :
                                                                                     "unknown");
                printf("%-*s %-8s %-12s %-9s %-10s %s\n", width, s[i].name, pid, state, ready, generation, s[i].path);
        }
        survey_done(s, n);
        return 0;
}

/* The control socket a verb without --control talks to, into *ret. Returns 0 or the exit code. */
static int find_control(const ClientArgs *a, char **ret) {
        _cleanup_free_ char *base = NULL;
        Survey *s = NULL;
        size_t n = 0;
        int r;

        if (!a->name) {
                /* A unit's ExecReload=: corral's own RUNTIME_DIRECTORY. */
                *ret = instance_runtime_directory_control();
                if (*ret)
                        return 0;
        }
        r = instance_base_dir(&base);
        if (r == -ENXIO) {
                log_error("%s: XDG_RUNTIME_DIR is not set: pass --control PATH", a->verb);
                return EXIT_USAGE;
        }
        if (r < 0)
                return log_oom(), EXIT_OSERR;
        if (a->name) {
                *ret = instance_control_path(base, a->name);
                return *ret ? 0 : (log_oom(), EXIT_OSERR);
        }
        r = survey(base, a->timeout, &s, &n);
        if (r < 0) {
                log_error_errno(r, "%s: cannot read '%s': %m", a->verb, base);
                return 1;
        }
        if (n == 1) {
                *ret = TAKE_PTR(s[0].path);
                survey_done(s, n);
                return 0;
        }
        if (n == 0)
                log_error("%s: no corral is running (no control socket below '%s'); name one, or pass --control "
                          "PATH", a->verb, base);
        else {
                _cleanup_free_ char *list = NULL;

                for (size_t i = 0; i < n; i++) {
                        char *l = strdup_printf("%s%s%s", list ?: "", i ? ", " : "", s[i].name);
                        free(list);
                        list = l;
                }
                log_error("%s: %zu instances are running (%s): name one, e.g. corral %s %s", a->verb, n,
                          list ?: "?", a->verb, s[0].name);
        }
        survey_done(s, n);
        return n == 0 ? EXIT_NOT_RUNNING : EXIT_USAGE;
}

/* `drain --wait`: drains, then counts the open connections until there are none and the load balancer that
 * was polling has heard of the drain (0), or the time is up (EXIT_TEMPFAIL, with the count). Between two
 * requests a balancer's connections may all be closed: a count of 0 before it polled means nothing. */
static int run_drain_wait(const ClientArgs *a, const char *path) {
        usec_t wait = a->timeout_set ? a->timeout : DRAIN_WAIT_TIMEOUT_USEC, start, now;
        char t[FORMAT_USEC_MAX];
        uint64_t n;
        bool unseen;
        int r;

        r = control_client_run(path, "drain", MIN(wait, CLIENT_TIMEOUT_USEC));
        if (r != 0)
                return r;
        start = now_usec(CLOCK_MONOTONIC);
        for (;;) {
                now = now_usec(CLOCK_MONOTONIC);
                r = control_client_count(path, "connections", MIN(CLIENT_TIMEOUT_USEC, MAX(start + wait - now,
                                                                                          DRAIN_POLL_USEC)), &n,
                                         &unseen);
                if (r != 0)
                        return r;
                now = now_usec(CLOCK_MONOTONIC);
                if (n == 0 && !unseen) {
                        printf("no connections open (after %.1fs)\n", (double) (now - start) / USEC_PER_SEC);
                        return 0;
                }
                if (now >= start + wait && n == 0) {
                        fprintf(stderr, "corral: drain: no load balancer polled since the drain within %s "
                                "(--timeout sets the wait); corral stays drained\n", format_usec(t, sizeof t, wait));
                        return EXIT_TEMPFAIL;
                }
                if (now >= start + wait) {
                        fprintf(stderr, "corral: drain: %" PRIu64 " connection%s still open after %s (--timeout "
                                "sets the wait); corral stays drained\n", n, n == 1 ? "" : "s",
                                format_usec(t, sizeof t, wait));
                        return EXIT_TEMPFAIL;
                }
                (void) usleep((useconds_t) MIN(DRAIN_POLL_USEC, start + wait - now));
        }
}

int client_run(int argc, char *argv[]) {
        _cleanup_free_ char *path = NULL, *request = NULL;
        ClientArgs a = {};
        int r;

        r = parse_client_argv(argc, argv, &a);
        if (r != 0)
                return r < 0 ? 0 : r;
        if (streq(a.verb, "list"))
                return run_list(&a);

        if (streq(a.verb, "recycle"))
                request = strdup_printf("recycle %u", a.slot);
        else if (streq(a.verb, "upgrade"))
                request = strdup("upgrade"); /* always answered when it is over: --wait is what it does */
        else
                request = strdup_printf("%s%s%s", a.verb, a.wait ? " --wait" : "", a.json ? " --json" : "");
        if (!request)
                return log_oom(), EXIT_OSERR;
        if (!a.control) {
                r = find_control(&a, &path);
                if (r != 0)
                        return r;
        }
        if (streq(a.verb, "drain") && a.wait)
                return run_drain_wait(&a, a.control ?: path);
        return control_client_run(a.control ?: path, request, a.timeout);
}
