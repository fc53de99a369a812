/* SPDX-License-Identifier: MIT */
/* corral's entry point: the command line (built from the config key table), config load, socket intake,
 * the manager, and the exit code. The only place that exits. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "cmdline.h"
#include "config.h"
#include "instance.h"
#include "log.h"
#include "generation.h"
#include "manager.h"
#include "notify.h"
#include "parse.h"
#include "sockets.h"
#include "upgrade-state.h"
#include "unit-check.h"
#include "upgrade.h"

enum {
        ARG_VERSION = 0x100,
        ARG_LOG_LEVEL,
        ARG_LOG_FORMAT,
        ARG_CONTROL,
        ARG_PID_FILE,
        ARG_CGROUP_ROOT,
        ARG_UNIT,
        ARG_KEY_BASE = 0x200, /* + index into the config key table */
};

typedef struct Args {
        const char *config_path;
        const char *control_path;
        const char *pid_file;
        const char *cgroup_root;
        const char *unit; /* check: the service unit whose sockets to look at */
        ConfigArg *config_args;
        size_t n_config_args;
        char **command;
        char **argv; /* corral's own */
        bool exit_now;
} Args;

static void help(void) {
        const ConfigKeyInfo *keys;
        size_t n;

        keys = config_key_table(&n);
        printf("Usage: corral [OPTIONS] [--config FILE] [-- COMMAND [ARGS...]]\n"
               "       corral check [--unit UNIT] [OPTIONS] [--config FILE] [-- COMMAND [ARGS...]]\n"
               "       corral list\n"
               "       corral status [--json] [NAME]\n"
               "       corral reload [--wait] [NAME]\n"
               "       corral recycle SLOT [NAME]\n"
               "       corral drain [--wait] [NAME]\n"
               "       corral undrain [NAME]\n"
               "       corral upgrade [NAME]\n\n"
               "Runs COMMAND as a pool of workers sharing the listening sockets corral holds: from systemd\n"
               "socket activation (LISTEN_FDS), or bound by corral from --listen. The command comes after --\n"
               "or from ExecStart=.\n\n"
               "  -h --help                  Show this help\n"
               "     --version               Show the version\n"
               "  -c --config FILE           Read the configuration from FILE (INI)\n"
               "     --control PATH          Control socket (default: $RUNTIME_DIRECTORY/control under systemd,\n"
               "                             else /run/corral/NAME/control for root and\n"
               "                             $XDG_RUNTIME_DIR/corral/NAME/control for other users)\n"
               "     --pid-file PATH         Write corral's pid to PATH (atomically), remove it at exit\n"
               "     --cgroup-root PATH      cgroupfs for per-worker accounting (default: /sys/fs/cgroup);\n"
               "                             'none' accounts from /proc only\n"
               "     --log-level LEVEL       debug, info, notice, warning or err (default: info)\n"
               "     --log-format text|json  corral's lines on stderr outside the journal: plain, or one JSON\n"
               "                             object each (default: text)\n\n"
               "check validates what a start would (the configuration, ExecStart=, Count=) and prints one\n"
               "line; it starts nothing. With --unit UNIT it also asks systemd for the service's .socket\n"
               "units and checks them against the configuration (Balance=reuseport needs ReusePort=yes,\n"
               "TCP only, and corral as root). list shows the running instances. The other verbs talk to one\n"
               "instance: by NAME, by --control PATH, or the only one running; each waits at most\n"
               "--timeout DURATION (default 5s) for an answer. reload rolls every worker to a new generation\n"
               "after re-reading the configuration (like SIGHUP); with --wait it returns when the roll is\n"
               "over and fails when the roll failed. drain makes GET /health answer 503 (workers keep\n"
               "serving) until undrain. upgrade runs the binary corral was started from in corral's own pid,\n"
               "keeping every worker and socket, and waits until it took over or failed.\n\n"
               "Every configuration key has an option; options override the file:\n");
        for (size_t i = 0; i < n; i++) {
                char opt[64];

                snprintf(opt, sizeof opt, "%c%c --%s %s", keys[i].short_option ? '-' : ' ',
                         keys[i].short_option ? keys[i].short_option : ' ', keys[i].option, keys[i].metavar);
                printf("  %-40s [%s] %s=\n        %s\n", opt, keys[i].section, keys[i].key, keys[i].help);
        }
        printf("\nExit status: 0 stopped cleanly (check: valid), 1 startup failure, 64 usage error (an unknown\n"
               "option or verb), 70 internal error, 71 system error, 78 configuration error (a bad value in\n"
               "the file or an option). Clients: 0 ok, 1 failed or degraded, 3 corral not running, 4\n"
               "permission denied, 64 usage error, 75 no answer in time, 78 bad option value.\n");
}

/* Returns 0 to go on, or an exit code. */
static int parse_argv(int argc, char *argv[], Args *a) {
        static const struct option own[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, 'c' },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "log-format", required_argument, NULL, ARG_LOG_FORMAT },
                { "control", required_argument, NULL, ARG_CONTROL },
                { "pid-file", required_argument, NULL, ARG_PID_FILE },
                { "cgroup-root", required_argument, NULL, ARG_CGROUP_ROOT },
                { "unit", required_argument, NULL, ARG_UNIT },
        };
        const ConfigKeyInfo *keys;
        _cleanup_free_ struct option *options = NULL;
        char shortopts[64] = "+hc:";
        size_t n, k = 0;
        int c, r, bad;

        a->argv = argv;
        keys = config_key_table(&n);
        options = calloc(ELEMENTSOF(own) + n + 1, sizeof(struct option));
        a->config_args = calloc((size_t) argc + 1, sizeof(ConfigArg));
        if (!options || !a->config_args)
                return log_oom(), EXIT_OSERR;
        for (size_t i = 0; i < ELEMENTSOF(own); i++)
                options[k++] = own[i];
        for (size_t i = 0; i < n; i++) {
                options[k++] = (struct option) { keys[i].option, required_argument, NULL, ARG_KEY_BASE + (int) i };
                if (keys[i].short_option && strlen(shortopts) + 3 < sizeof shortopts) {
                        size_t l = strlen(shortopts);
                        shortopts[l] = keys[i].short_option;
                        shortopts[l + 1] = ':';
                        shortopts[l + 2] = 0;
                }
        }

        options[k] = (struct option) {};
        bad = cmdline_find_abbreviated(argc, argv, options, shortopts);
        if (bad > 0) {
                log_error("unknown option '%s'; see --help", argv[bad]);
                return EXIT_USAGE;
        }

        /* "+": stop at the first non-option, which must come after "--". */
        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc, argv, shortopts, options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        a->exit_now = true;
                        return 0;
                case ARG_VERSION:
                        printf("corral %s\n", CORRAL_VERSION);
                        a->exit_now = true;
                        return 0;
                case 'c':
                        a->config_path = optarg;
                        break;
                case ARG_CONTROL:
                        a->control_path = optarg;
                        break;
                case ARG_PID_FILE:
                        a->pid_file = optarg;
                        break;
                case ARG_CGROUP_ROOT:
                        a->cgroup_root = optarg;
                        break;
                case ARG_UNIT:
                        a->unit = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        r = log_level_from_string(optarg);
                        if (r < 0) {
                                log_error("--log-level: invalid value '%s' (expected debug, info, notice, warning or "
                                          "err)", optarg);
                                return EXIT_CONFIG;
                        }
                        log_set_max_level(r);
                        break;
                case ARG_LOG_FORMAT:
                        r = log_format_from_string(optarg);
                        if (r < 0) {
                                log_error("--log-format: invalid value '%s' (expected text or json)", optarg);
                                return EXIT_CONFIG;
                        }
                        log_set_format((LogFormat) r);
                        break;
                case '?':
                        if (optopt > 0 && optopt < ARG_VERSION && !strchr(shortopts, optopt))
                                log_error("unknown option '-%c'; see --help", optopt);
                        else if (optopt > 0 && optopt < ARG_VERSION)
                                log_error("option '-%c' needs a value", optopt);
                        else
                                log_error("option '%s' %s", argv[optind - 1],
                                          strchr(argv[optind - 1], '=') ? "takes no value" : "needs a value");
                        return EXIT_USAGE;
                default:
                        if (c >= ARG_KEY_BASE && (size_t) (c - ARG_KEY_BASE) < n) {
                                a->config_args[a->n_config_args++] =
                                        (ConfigArg) { keys[c - ARG_KEY_BASE].option, optarg };
                                break;
                        }
                        for (size_t i = 0; i < n; i++)
                                if (keys[i].short_option == c) {
                                        a->config_args[a->n_config_args++] = (ConfigArg) { keys[i].option, optarg };
                                        break;
                                }
                        break;
                }
        }

        if (optind < argc) {
                /* Only "--" starts the command: "corral top" is a typo of a verb, not a pool of top. */
                if (!streq(argv[optind - 1], "--")) {
                        log_error("unexpected argument '%s': the worker command goes after --, e.g. corral -- %s",
                                  argv[optind], argv[optind]);
                        return EXIT_USAGE;
                }
                a->command = argv + optind;
        }
        return 0;
}

/* Writes "PID\n" to a temporary file beside path and renames it over path, so a reader never sees a
 * partial file. */
static int write_pid_file(const char *path) {
        _cleanup_free_ char *tmp = strdup_printf("%s.XXXXXX", path);
        _cleanup_close_ int fd = -EBADF;
        char buf[32];
        int n;

        if (!tmp)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = snprintf(buf, sizeof buf, "%d\n", (int) getpid());
        if (write(fd, buf, (size_t) n) != n || fchmod(fd, 0644) < 0 || rename(tmp, path) < 0) {
                int r = errno > 0 ? -errno : -EIO;
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

static void log_socket(const ListenSocket *s) {
        char address[SOCKET_ADDRESS_MAX];

        if (listen_socket_address(s, address, sizeof address))
                log_info("listening on %s (%s)", address, s->name);
}

/* The config and the first generation: exit 64 when nothing names a command, 78 for a config error or a
 * command that cannot be run. Returns 0 or the exit code. */
static int load_generation(const Args *a, Generation **ret) {
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        /* Nothing that could name a command is a usage error; a file without ExecStart= a config error. */
        if (!a->config_path && !a->command) {
                bool exec_start = false;
                for (size_t i = 0; i < a->n_config_args; i++)
                        exec_start = exec_start || streq(a->config_args[i].option, "exec-start");
                if (!exec_start) {
                        log_error("No command: pass one after --, or use --exec-start or --config. See --help.");
                        return EXIT_USAGE;
                }
        }

        r = config_load(a->config_path, a->config_args, a->n_config_args, a->command, &config, &error);
        if (r >= 0)
                r = config_check_balance(config, &error);
        if (r < 0) {
                log_error("%s", error ?: "Failed to load the configuration");
                return EXIT_CONFIG;
        }
        r = generation_new(config, 1, ret, &error);
        if (r < 0) {
                log_error_errno(r, "%s", error ?: "ExecStart= cannot be run: %m");
                return EXIT_CONFIG;
        }
        TAKE_PTR(config);
        return 0;
}

/* Binds one address of corral's own endpoints into status, named name. Returns 0 or the exit code. */
static int bind_endpoint(const char *address, const char *name, const char *what, SocketSet *status) {
        _cleanup_free_ char *error = NULL;
        char *const specs[] = { (char *) address, NULL };
        SocketSet bound = {};
        int r;

        r = socket_set_bind(specs, false, &bound, &error);
        if (r < 0) {
                log_error("%s", error ?: what);
                return EXIT_FAILURE;
        }
        r = socket_set_take(&bound, NULL, name, status);
        socket_set_done(&bound);
        return r < 0 ? (log_oom(), EXIT_OSERR) : 0;
}

/* The workers' sockets, from systemd or bound from Listen=, and corral's own endpoints in status: the
 * health endpoint's (a passed socket named corral-status, or [Health] Listen=) and the agent-check's
 * (corral-agent, or [Health] AgentListen=), each named so. Everything is bound before anything is forked:
 * a busy port is exit 1. Returns 0 or the exit code. */
static int take_sockets(const Config *config, SocketSet *sockets, SocketSet *status) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = socket_set_from_systemd(sockets, &error);
        if (r < 0) {
                log_error("%s", error ?: "Failed to take the sockets passed by systemd");
                return EXIT_FAILURE;
        }
        if (r > 0) {
                /* The endpoints' sockets are corral's own: never handed to the workers. */
                if (socket_set_take(sockets, "corral-status", NULL, status) < 0 ||
                    socket_set_take(sockets, "corral-agent", NULL, status) < 0)
                        return log_oom(), EXIT_OSERR;
                if (config->listen && config->listen[0])
                        log_warning("systemd passed the sockets; ignoring Listen=");
                /* Per-slot sockets join the group of systemd's (slot 0 keeps systemd's own), which needs
                 * ReusePort=yes and the socket's owner. */
                for (size_t i = 0; i < sockets->n && config->balance == BALANCE_REUSEPORT; i++)
                        if (listen_socket_check_reuseport(&sockets->sockets[i], &error) < 0) {
                                log_error("%s", error ?: "Balance=reuseport cannot use the sockets systemd passed");
                                return EXIT_CONFIG;
                        }
        }
        if (sockets->n == 0) {
                if (!config->listen || !config->listen[0]) {
                        log_error("No sockets: pass --listen ADDRESS, set Listen= in [Socket], or start corral from "
                                  "a .socket unit");
                        return EXIT_FAILURE;
                }
                r = socket_set_bind(config->listen, config->balance == BALANCE_REUSEPORT, sockets, &error);
                if (r < 0) {
                        log_error("%s", error ?: "Failed to bind the sockets");
                        return EXIT_FAILURE;
                }
        }
        if (config->status_listen && !socket_set_find(status, "corral-status")) {
                r = bind_endpoint(config->status_listen, "corral-status", "Failed to bind the health endpoint",
                                  status);
                if (r != 0)
                        return r;
        }
        if (config->agent_listen && !socket_set_find(status, "corral-agent")) {
                r = bind_endpoint(config->agent_listen, "corral-agent", "Failed to bind the agent-check endpoint",
                                  status);
                if (r != 0)
                        return r;
        }
        for (size_t i = 0; i < sockets->n; i++)
                log_socket(&sockets->sockets[i]);
        for (size_t i = 0; i < status->n; i++)
                log_socket(&status->sockets[i]);
        return 0;
}

/* Raises the soft RLIMIT_NOFILE to the hard one, as systemd's own daemons do: corral keeps a few fds per
 * worker, and a thousand workers do not fit in the usual soft 1024. Workers get the old soft limit back
 * (spawn.c): programs that use select() break above 1024. Returns the soft limit to give the workers. */
static uint64_t raise_nofile_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 0;
        if (rl.rlim_cur < rl.rlim_max) {
                struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };

                if (setrlimit(RLIMIT_NOFILE, &raised) < 0)
                        log_debug_errno(errno, "Failed to raise the file descriptor limit to %llu: %m",
                                        (unsigned long long) rl.rlim_max);
        }
        return (uint64_t) rl.rlim_cur;
}

/* Count= against the file descriptors corral may open: exit 78 when the pool cannot fit. */
static int check_fd_limit(const Generation *g, const CgroupManager *cgroups) {
        _cleanup_free_ char *error = NULL;

        if (generation_check_fd_limit(g, usable_cpus(), cgroup_manager_fds_per_worker(cgroups), nofile_limit(),
                                      &error) < 0) {
                log_error("%s", error ?: "Count= needs more file descriptors than the limit allows");
                return EXIT_CONFIG;
        }
        return 0;
}

/* The accounting backend: cgroups where they are ours, /proc otherwise; never fatal. Before the sockets are
 * bound: the probe also kills what a SIGKILLed corral left in its cgroups, which may hold the very ports. */
static CgroupManager *setup_accounting(const Args *a) {
        const char *root = !a->cgroup_root ? "/sys/fs/cgroup" : streq(a->cgroup_root, "none") ? NULL : a->cgroup_root;
        _cleanup_free_ char *reason = NULL;
        CgroupManager *m = NULL;
        int r;

        if (root) {
                r = cgroup_manager_new(root, "/proc", 0, &m, &reason);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up worker accounting, using /proc: %m");
                else
                        log_info("accounting: %s", reason);
        }
        if (!m) {
                free(reason);
                reason = NULL;
                r = cgroup_manager_new(NULL, "/proc", 0, &m, &reason);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up /proc accounting, running without: %m");
                else if (!root)
                        log_info("accounting: %s", reason);
        }
        return m;
}

/* Where the control socket goes: --control, $RUNTIME_DIRECTORY/control under systemd, else the instance's
 * directory below /run/corral or $XDG_RUNTIME_DIR/corral, made now; none when there is no such place. */
typedef struct ControlPlace {
        char *path;     /* NULL: none */
        bool optional;  /* the default place: a failure there is a warning */
        char *base;     /* set when we made base/name, to remove it at exit */
        const char *name;
} ControlPlace;

static void control_place_done(ControlPlace *p) {
        if (p->base)
                instance_remove_dir(p->base, p->name);
        free(p->path);
        free(p->base);
}

static int place_control(const Args *a, const char *name, ControlPlace *ret) {
        _cleanup_free_ char *base = NULL;
        bool created;
        int r;

        ret->name = name;
        if (a->control_path) {
                ret->path = strdup(a->control_path);
                return ret->path ? 0 : -ENOMEM;
        }
        ret->path = instance_runtime_directory_control();
        if (ret->path)
                return 0;
        r = instance_base_dir(&base);
        if (r == -ENXIO) {
                log_notice("No control socket: XDG_RUNTIME_DIR is not set; pass --control PATH for one");
                return 0;
        }
        if (r < 0)
                return r;
        r = instance_make_dir(base, name, &created);
        if (r < 0) {
                log_warning_errno(r, "No control socket: cannot make '%s/%s' (0700, ours): %m", base, name);
                return 0;
        }
        ret->path = instance_control_path(base, name);
        if (!ret->path)
                return -ENOMEM;
        ret->optional = true;
        if (created)
                ret->base = TAKE_PTR(base);
        return 0;
}

/* What the manager is made with, from the command line and the control socket's place. */
static ManagerParams manager_params(const Args *a, const char *name, const ControlPlace *control,
                                    CgroupManager *cgroups, uint64_t nofile_soft) {
        return (ManagerParams) {
                .name = name,
                .argv = a->argv,
                .control_base = control->base,
                .config_path = a->config_path,
                .args = a->config_args,
                .n_args = a->n_config_args,
                .command = a->command,
                .control_path = control->path,
                .control_optional = control->optional,
                .cgroups = cgroups,
                .nofile_soft = nofile_soft,
        };
}

/* Runs m until the pool stopped, then frees it and the control socket's place. Returns the exit code. */
static int manager_run_to_end(Manager *m, const Args *a, const char *name, const char *how, ControlPlace *control) {
        int r;

        log_info("instance %s%s, control socket %s", name, how, control->path ?: "none");
        r = manager_run(m);
        if (a->pid_file)
                (void) unlink(a->pid_file);
        /* The control socket is unlinked with the manager, then its directory can go. */
        manager_free(m);
        control_place_done(control);
        return r;
}

/* The manager's life: set up, pid file, run. Returns the exit code. */
static int run_manager(const Args *a, Generation *generation, SocketSet *sockets, SocketSet *status,
                       CgroupManager *cgroups, uint64_t nofile_soft) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *name = NULL;
        ControlPlace control = {};
        int r;

        name = generation->config->name ? strdup(generation->config->name) :
                                          instance_default_name(generation->config->exec_start);
        if (!name || place_control(a, name, &control) < 0) {
                generation_unref(generation);
                cgroup_manager_free(cgroups);
                control_place_done(&control);
                return log_oom(), EXIT_OSERR;
        }
        ManagerParams params = manager_params(a, name, &control, cgroups, nofile_soft);
        params.status_socket = status;
        r = manager_new(&params, generation, sockets, &m);
        if (r < 0) {
                (void) notify_manager_errno(r);
                r = EXIT_FAILURE;
        } else if (a->pid_file && (r = write_pid_file(a->pid_file)) < 0) {
                log_error_errno(r, "Failed to write the pid file '%s': %m", a->pid_file);
                r = EXIT_FAILURE;
        } else
                return manager_run_to_end(TAKE_PTR(m), a, name, "", &control);
        m = manager_free(m);
        control_place_done(&control);
        return r;
}

/* check --unit: the problems a start of the unit would meet with its sockets (unit-check.h), each said on
 * stderr. Returns 0 with the sockets described in *ret_sockets, or the exit code. */
static int check_unit(const Args *a, const Config *c, char **ret_sockets) {
        _cleanup_(unit_info_freep) UnitInfo *u = NULL;
        _cleanup_strv_free_ char **problems = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = unit_query(a->unit, &u, &error);
        if (r == -ENOMEM)
                return log_oom(), EXIT_OSERR;
        if (r < 0) {
                log_error("%s", error ?: "Failed to ask systemd about the unit");
                return EXIT_FAILURE;
        }
        r = unit_check(u, c->listen && c->listen[0], c->balance == BALANCE_REUSEPORT, &problems);
        if (r < 0)
                return log_oom(), EXIT_OSERR;
        for (char **p = problems; p && *p; p++)
                log_error("%s", *p);
        if (r > 0)
                return EXIT_CONFIG;
        *ret_sockets = unit_describe_sockets(u);
        return *ret_sockets ? 0 : (log_oom(), EXIT_OSERR);
}

/* `corral check`: everything a start validates, without starting: the config, ExecStart=, Count= against
 * the fd limit, and with --unit the unit's sockets. One line on stdout; 0, or 1/64/78 as a start would
 * exit. */
static int run_check(int argc, char *argv[]) {
        _cleanup_(generation_unrefp) Generation *g = NULL;
        _cleanup_free_ ConfigArg *config_args = NULL;
        _cleanup_free_ char *name = NULL, *unit_sockets = NULL;
        const Config *c;
        Args a = {};
        int r;

        r = parse_argv(argc, argv, &a);
        config_args = a.config_args;
        if (r != 0 || a.exit_now)
                return r;
        r = load_generation(&a, &g);
        if (r != 0)
                return r;
        (void) raise_nofile_limit();
        r = check_fd_limit(g, NULL);
        if (r != 0)
                return r;
        c = g->config;
        if (a.unit) {
                r = check_unit(&a, c, &unit_sockets);
                if (r != 0)
                        return r;
        }
        name = c->name ? strdup(c->name) : instance_default_name(c->exec_start);
        if (!name)
                return log_oom(), EXIT_OSERR;
        printf("%s: ok: %s, %u workers of %s, ready by %s; sockets: ", c->path ?: "command line", name,
               config_worker_count(c, usable_cpus()), g->exec_path, ready_mode_to_string(c->ready_mode));
        if (!isempty(unit_sockets))
                printf("from %s: %s%s", a.unit, unit_sockets, c->listen && c->listen[0] ? "; else " : "");
        else if (!c->listen || !c->listen[0])
                fputs(a.unit ? "from systemd (no Listen=)" : "from systemd (no Listen=; --unit UNIT checks them)",
                      stdout);
        for (char **l = c->listen; l && *l; l++)
                printf("%s%s", l == c->listen ? "" : " ", *l);
        printf("; health: %s", c->status_listen ?: "none");
        if (c->agent_listen)
                printf("; agent: %s", c->agent_listen);
        if (c->balance != BALANCE_SHARED)
                printf("; balance: %s", balance_mode_to_string(c->balance));
        putchar('\n');
        return 0;
}

/* ---- an image started by an upgrade ---- */

/* The image before handed over a state this one cannot resume from: exec that binary again with the same
 * state and the reason, so it carries on and tells the clients. Returns only when that fails. */
static int go_back(int previous_fd, int state_fd, char **rest, const char *why) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *extra = NULL;
        int r;

        if (previous_fd < 0) {
                log_error("upgrade: cannot resume (%s), and there is no binary to go back to", why);
                return EXIT_FAILURE;
        }
        log_error("upgrade: cannot resume (%s): going back to the binary before", why);
        extra = strdup_printf(UPGRADE_FAILED_OPTION "%s", why);
        argv = extra ? upgrade_argv(rest[0], state_fd, -EBADF, false, extra, rest) : NULL;
        if (!argv)
                return log_oom(), EXIT_OSERR;
        r = upgrade_exec(NULL, previous_fd, argv);
        log_error_errno(r, "upgrade: going back to the binary before failed: %m");
        return EXIT_FAILURE;
}

/* The check mode: everything a resume would read, without taking anything. One line; 0 when fine. */
static int check_state(const Args *a, const UpgradeState *s) {
        for (size_t i = 0; i < s->n_generations; i++) {
                const UpgradeGeneration *g = &s->generations[i];
                _cleanup_(config_freep) Config *c = NULL;
                _cleanup_free_ char *error = NULL;

                if (config_load_text(g->config_path, g->config_text, g->config_size, a->config_args,
                                     a->n_config_args, a->command, &c, &error) < 0) {
                        log_error("generation %u does not load here: %s", g->number, error ?: "out of memory");
                        return EXIT_CONFIG;
                }
        }
        printf("corral %s resumes corral %s's state: %zu workers, %zu generations, %zu sockets\n", CORRAL_VERSION,
               s->writer_version, s->n_workers, s->n_generations, s->n_sockets);
        return 0;
}

static int resume(const Args *a, UpgradeState *s, int state_fd, const char *failure, bool *ret_fds_taken,
                  char **ret_reason) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_(config_freep) Config *first_config = NULL;
        _cleanup_free_ char *name = NULL;
        CgroupManager *cgroups;
        ControlPlace control = {};
        const Config *c;
        int r;

        *ret_fds_taken = false;
        /* The first generation's config names the instance, as it did at start. */
        c = NULL;
        for (size_t i = 0; i < s->n_generations && !c; i++)
                if (s->generations[i].number == s->first) {
                        _cleanup_free_ char *error = NULL;
                        if (config_load_text(s->generations[i].config_path, s->generations[i].config_text,
                                             s->generations[i].config_size, a->config_args, a->n_config_args,
                                             a->command, &first_config, &error) < 0) {
                                log_error("upgrade: the first generation does not load: %s", error ?: "out of memory");
                                return EXIT_CONFIG;
                        }
                        c = first_config;
                }
        if (!c)
                return EXIT_CONFIG;
        name = c->name ? strdup(c->name) : instance_default_name(c->exec_start);
        if (!name)
                return log_oom(), EXIT_OSERR;
        control.name = name;
        control.path = s->control_path ? strdup(s->control_path) : NULL;
        control.base = s->control_base ? strdup(s->control_base) : NULL;

        cgroups = setup_accounting(a);
        ManagerParams params = manager_params(a, name, &control, cgroups, s->nofile_soft);
        params.upgrade_failure = failure;
        r = manager_resume(&params, s, &m, ret_fds_taken, ret_reason);
        if (r < 0) {
                control_place_done(&control);
                return EXIT_FAILURE;
        }
        /* Taken in or no longer needed: the state, and the binary before (this image opened its own). */
        safe_close(state_fd);
        s->previous_exe_fd = safe_close(s->previous_exe_fd);
        return manager_run_to_end(TAKE_PTR(m), a, name, " resumed", &control);
}

/* argv[1] is UPGRADE_STATE_OPTION, or UPGRADE_CHECK_OPTION and then it; then perhaps
 * UPGRADE_FAILED_OPTION; then the arguments corral was first started with. */
static int run_upgraded(int argc, char *argv[]) {
        bool check = streq(argv[1], UPGRADE_CHECK_OPTION), fds_taken = false;
        _cleanup_(upgrade_state_done) UpgradeState s = {};
        _cleanup_free_ ConfigArg *config_args = NULL;
        _cleanup_free_ char **rest = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL, *reason = NULL;
        const char *v, *failure = NULL;
        int state_fd, previous_fd, i = check ? 2 : 1, n = 0, r;
        size_t size;
        Args a = {};

        if (i >= argc || !(v = startswith(argv[i], UPGRADE_STATE_OPTION)) ||
            upgrade_parse_state_option(v, &state_fd, &previous_fd) < 0) {
                log_error("%s: expected %sFD:FD", argv[1], UPGRADE_STATE_OPTION);
                return EXIT_USAGE;
        }
        i++;
        if (i < argc && (v = startswith(argv[i], UPGRADE_FAILED_OPTION))) {
                failure = v;
                i++;
        }
        rest = calloc((size_t) argc + 1, sizeof(char *));
        if (!rest)
                return log_oom(), EXIT_OSERR;
        rest[n++] = argv[0];
        for (; i < argc; i++)
                rest[n++] = argv[i];

        r = parse_argv(n, rest, &a);
        config_args = a.config_args;
        if (r != 0 || a.exit_now)
                return check || r != 0 ? (r ?: EXIT_USAGE) : go_back(previous_fd, state_fd, rest, "its arguments");

        r = upgrade_state_fd_read(state_fd, &text, &size);
        if (r >= 0)
                r = upgrade_state_read(text, size, &s, &error);
        if (r < 0) {
                if (!error) {
                        errno = -r;
                        error = strdup_printf("cannot read the state: %m");
                }
                if (check) {
                        log_error("%s", error ?: "cannot read the state");
                        return EXIT_FAILURE;
                }
                return go_back(previous_fd, state_fd, rest, error ?: "cannot read the state");
        }
        if (check)
                return check_state(&a, &s);

        r = resume(&a, &s, state_fd, failure, &fds_taken, &reason);
        if (r != 0 && !fds_taken && !failure)
                return go_back(previous_fd, state_fd, rest, reason ?: "it did not resume; see the log");
        return r;
}

static int run(int argc, char *argv[]) {
        _cleanup_(generation_unrefp) Generation *generation = NULL;
        _cleanup_(cgroup_manager_freep) CgroupManager *cgroups = NULL;
        uint64_t nofile_soft;
        _cleanup_free_ ConfigArg *config_args = NULL;
        _cleanup_(socket_set_done) SocketSet sockets = {}, status = {};
        Args a = {};
        int r;

        log_open();
        if (argc > 1 && (startswith(argv[1], UPGRADE_STATE_OPTION) || streq(argv[1], UPGRADE_CHECK_OPTION)))
                return run_upgraded(argc, argv);
        if (argc > 1 && client_is_verb(argv[1]))
                return client_run(argc, argv);
        if (argc > 1 && streq(argv[1], "check"))
                return run_check(argc - 1, argv + 1);
        if (argc > 1 && argv[1][0] != '-') {
                log_error("unknown verb '%s'; the verbs are %s, and a worker command goes after --", argv[1],
                          CORRAL_VERBS);
                return EXIT_USAGE;
        }

        r = parse_argv(argc, argv, &a);
        config_args = a.config_args;
        if (r != 0 || a.exit_now)
                return r;
        if (a.unit) {
                log_error("--unit is for corral check; a start takes its sockets from systemd as they are passed");
                return EXIT_USAGE;
        }
        r = load_generation(&a, &generation);
        if (r != 0)
                return r;
        nofile_soft = raise_nofile_limit();
        cgroups = setup_accounting(&a);
        r = check_fd_limit(generation, cgroups);
        if (r != 0)
                return r;
        r = take_sockets(generation->config, &sockets, &status);
        if (r != 0)
                return r;
        return run_manager(&a, TAKE_PTR(generation), &sockets, &status, TAKE_PTR(cgroups), nofile_soft);
}

int main(int argc, char *argv[]) {
        /* A log line to a stderr pipe whose reader went away must not kill the master. Workers get default
         * dispositions back in spawn.c. */
        (void) signal(SIGPIPE, SIG_IGN);
        return run(argc, argv);
}
