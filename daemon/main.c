/*
 * main.c - anomalyd's entry point: options, configuration, the loop. The only place that
 * exits.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "blas.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "http/api.h"
#include "state/statelock.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalyd [options]\n"
            "Streaming time-series anomaly detector: metrics in over Graphite, InfluxDB line\n"
            "protocol, StatsD and JSON lines; anomalies out as events, /metrics and an API.\n"
            "\n"
            "  -c, --config FILE        configuration (YAML); without it, the built-in\n"
            "                           defaults (the same as config/anomalyd.yaml)\n"
            "      --check-config FILE  check a configuration and exit (0 if valid)\n"
            "  -l, --log-level LEVEL    error, warn, info or debug (overrides the file)\n"
            "  -f, --foreground         stay in the foreground (the default and only mode:\n"
            "                           anomalyd never forks; systemd and shells both want it)\n"
            "  -h, --help               this help\n"
            "  -V, --version            print the version\n");
}

/* mkdir -p for the state directory. */
static int make_dirs(const char *path)
{
    char p[AD_PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(p))
        return n == 0 ? 0 : -1;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];

            p[i] = '\0';
            if (mkdir(p, 0750) < 0 && errno != EEXIST)
                return -1;
            p[i] = c;
        }
    }
    return 0;
}

/* One instance per state directory, and per store when it lives elsewhere
 * (statelock.h): fds[0..1] get the held lock files (-1: none). 0, or -1 logged. */
static int take_locks(const ad_config *cfg, int fds[2])
{
    char path[AD_PATH_MAX + 16], err[AD_PATH_MAX + 256];

    fds[0] = fds[1] = -1;
    if (ad_statelock_path(cfg->state_dir, path, sizeof(path)) < 0) {
        ad_log_error("cannot start: state_dir %s: path too long", cfg->state_dir);
        return -1;
    }
    if ((fds[0] = ad_statelock_take(path, err, sizeof(err))) < 0) {
        ad_log_error("cannot start: %s", err);
        return -1;
    }
    if (cfg->store_enabled && !(cfg->follow & AD_FOLLOW_STORE_PATH)) {
        snprintf(path, sizeof(path), "%s.lock", cfg->store_path);
        if ((fds[1] = ad_statelock_take(path, err, sizeof(err))) < 0) {
            ad_log_error("cannot start: store %s: %s", cfg->store_path, err);
            return -1;
        }
    }
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* The command line. */
typedef struct opts {
    const char *config_path;  /* -c, or NULL: the built-in defaults */
    const char *check_path;   /* --check-config, or NULL */
    int level;                /* -l's level, or -1 */
} opts;

/* Reads the options into o. Returns -1 to go on, else the exit code (--help, --version,
 * a usage error). */
static int parse_options(int argc, char **argv, opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'C'},
        {"log-level", required_argument, NULL, 'l'},
        {"foreground", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *level_name = NULL;
    int c;

    *o = (opts){NULL, NULL, -1};
    while ((c = getopt_long(argc, argv, "c:l:fhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 'C':
            o->check_path = optarg;
            break;
        case 'l':
            level_name = optarg;
            break;
        case 'f':
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("anomalyd %s\n", AD_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "anomalyd: unexpected argument '%s' (try --help)\n", argv[optind]);
        return 2;
    }
    if (level_name) {
        for (int i = AD_LOG_ERROR; i <= AD_LOG_DEBUG; i++)
            if (!strcmp(level_name, ad_log_level_name(i)))
                o->level = i;
        if (o->level < 0) {
            fprintf(stderr, "anomalyd: --log-level takes error, warn, info or debug, got '%s'\n",
                    level_name);
            return 2;
        }
    }
    return -1;
}

/* --check-config: the exit code. */
static int check_config(const char *path)
{
    char err[1024];
    ad_config cfg;

    if (ad_config_load(path, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    ad_config_free(&cfg);
    printf("%s: ok\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_path;
    char err[1024];
    int locks[2] = {-1, -1}; /* held until exit (statelock.h) */
    ad_config cfg;
    ad_daemon *d = NULL;
    uv_loop_t loop;
    opts op;
    int r, level, code;

    if ((code = parse_options(argc, argv, &op)) >= 0)
        return code;
    if (op.check_path)
        return check_config(op.check_path);
    config_path = op.config_path;
    level = op.level;
    if (config_path) {
        r = ad_config_load(config_path, &cfg, err, sizeof(err));
    } else {
        r = ad_config_defaults(&cfg);
        snprintf(err, sizeof(err), "out of memory");
    }
    if (r < 0) {
        fprintf(stderr, "anomalyd: %s\n", err);
        return 1;
    }
    ad_log_init(level >= 0 ? level : cfg.log_level);
    if (!config_path)
        ad_log_info("no --config given: running on the built-in defaults");

    /* Training jobs run on libuv's pool: enough threads for them, one BLAS thread each. */
    if (!getenv("UV_THREADPOOL_SIZE")) {
        char n[16];

        snprintf(n, sizeof(n), "%d", cfg.train_threads);
        setenv("UV_THREADPOOL_SIZE", n, 1);
    }
    ad_blas_set_threads(1);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error return, not a death */
    if (make_dirs(cfg.state_dir) < 0) {
        ad_log_error("cannot create the state directory %s: %s", cfg.state_dir,
                     strerror(errno));
        ad_config_free(&cfg);
        return 1;
    }

    if (take_locks(&cfg, locks) < 0) {
        for (int i = 0; i < 2; i++)
            if (locks[i] >= 0)
                close(locks[i]);
        ad_config_free(&cfg);
        return 1;
    }

    uv_loop_init(&loop);
    r = ad_daemon_start(&loop, &cfg, config_path, ad_api_handle, &d, err, sizeof(err));
    if (r < 0) {
        ad_log_error("cannot start: %s", err);
        if (d)
            ad_daemon_stop(d);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    code = r < 0 ? 1 : 0;
    ad_daemon_free(d);
    ad_config_free(&cfg); /* empty when the daemon took it */
    if (uv_loop_close(&loop) == UV_EBUSY) {
        /* Should not happen: every module closes its handles. Close what is left. */
        ad_log_warn("handles left open at exit");
        uv_walk(&loop, walk_close, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    for (int i = 0; i < 2; i++)
        if (locks[i] >= 0)
            close(locks[i]);
    if (code == 0)
        ad_log_info("stopped");
    return code;
}
