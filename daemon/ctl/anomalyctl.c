/*
 * anomalyctl.c - the command-line client: `anomalyctl score`, offline scoring of a CSV
 * through exactly the detector code the daemon runs (models/detector.h), here; the
 * commands that talk to a running daemon each in their module: tail (ctl_tail.h),
 * status and series (ctl_status.h, over ctl_http.h), replay (ctl_replay.h); csv.h reads
 * the rows score and replay take.
 *
 *   anomalyctl score [-c FILE [--series KEY]] [OPTIONS] [FILE|-]
 *
 * With no options the detector is the daemon's default one (the models' one defaults
 * table); -c applies a daemon configuration file's defaults: and, for --series KEY, the
 * rule the daemon would apply to KEY; options given as well override them.
 *
 * Input: CSV with a header line and rows `timestamp,value` (NAB's format). A timestamp is
 * `YYYY-MM-DD HH:MM:SS[.frac]` (UTC) or seconds since the epoch. Output (stdout): CSV
 * `timestamp,value,anomaly_score,flag,anomalous,predicted,error,warming_up` (flag: an
 * alert, once per incident; anomalous: the state, 1 while the anomaly lasts), one row per input row
 * in the same order; a row that cannot be scored (unparsable, NaN, infinite, out of
 * range, time going backwards) keeps its place with score 0 and empty prediction, and is
 * reported on stderr with its line number and reason. Progress goes to stderr every
 * 100000 rows. Exit status: 0, 1 on I/O or configuration errors, 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "config.h"
#include "ctl/csv.h"
#include "detector.h"
#include "ctl/ctl_gradflow.h"
#include "ctl/ctl_replay.h"
#include "ctl/ctl_status.h"
#include "ctl/ctl_tail.h"

#define MAX_LINE 4096
#define MAX_REPORTED 20

/* The features as the --features list. */
static const char *features_text(unsigned f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s%s", (f & AD_FEAT_TIME_OF_DAY) ? "tod," : "",
             (f & AD_FEAT_DAY_OF_WEEK) ? "dow," : "", (f & AD_FEAT_GAP) ? "gap," : "",
             f ? "" : "none");
    if (f)
        buf[strlen(buf) - 1] = '\0';
    return buf;
}

/* The help, with the defaults in parentheses as ad_detector_defaults gives them: the
 * daemon's own (detector_config.h), so no option means the daemon's detector. */
static void usage(FILE *f)
{
    ad_detector_config d;
    char feat[32];

    ad_detector_defaults(&d);
    fprintf(f,
            "usage: anomalyctl score [-c FILE [--series KEY]] [OPTIONS] [FILE|-]\n"
            "\n"
            "Scores a CSV of timestamp,value rows through the anomalyd detector and writes\n"
            "timestamp,value,anomaly_score,flag,anomalous,predicted,error,warming_up rows\n"
            "to stdout. With no options it runs exactly the daemon's default detector.\n"
            "\n"
            "  -c, --config FILE   a daemon configuration: its defaults: and, with --series,\n"
            "                      the rule matching KEY (as the daemon would); OPTIONS\n"
            "                      given too override it\n"
            "  --series KEY        the series key whose rule applies (with -c)\n"
            "model:\n"
            "  --model M           predict (next value) or seq2seq (reconstruction) (%s)\n"
            "  --s2s-window N      seq2seq: values per reconstructed window (%d)\n"
            "  --kind K            elman lstm peephole cifg gru gru_torch (%s)\n"
            "  --hidden N          hidden size (%d)\n"
            "  --layers N          stacked layers (%d)\n"
            "  --features LIST     comma list of tod,dow,gap, or none (%s)\n"
            "  --feature-span S    feed tod,dow only when the history at a training spans\n"
            "                      S seconds, 0 = always (%d)\n"
            "  --seed N            initialisation and shuffling seed (%llu)\n"
            "  --weights W         float32 float16 int8: how the network keeps its weights\n"
            "                      (the daemon's `weights`; float32)\n",
            d.model == AD_MODEL_SEQ2SEQ ? "seq2seq" : "predict", d.s2s_window,
            ad_cell_name(d.kind), d.hidden, d.layers, features_text(d.features, feat, sizeof(feat)),
            d.feature_span, (unsigned long long)d.seed);
    fprintf(f,
            "training:\n"
            "  --history N         samples kept for retraining (%d)\n"
            "  --train-after N     first training after N samples (%d)\n"
            "  --train-every N     then every N samples, 0 = never (%d)\n"
            "  --window N          BPTT window (%d)     --batch N    windows per batch (%d)\n"
            "  --stateful 0|1      stateful BPTT: batch streams in consecutive windows\n"
            "                      carrying the state, warmed over the history (%d)\n"
            "  --epochs N          at most N epochs (%d) --patience N early stopping (%d)\n"
            "  --lr X              Adam learning rate (%g)\n"
            "  --val-frac X        validation tail fraction (%g)\n"
            "  --input-clip X      clip normalised inputs to +-X (%g)\n"
            "  --clip X            gradient-norm clip in training, 0 = off (%g)\n"
            "  --forget-bias X     LSTM kinds' initial forget-gate bias (%g)\n"
            "  --prime N           samples re-read after a new network (%d)\n"
            "  --relearn N         flags in a row before values count as normal (%d)\n"
            "  --max-exclude X     exclude flagged values only below this recent rate (%g)\n",
            d.history, d.train_after, d.train_every, d.window, d.batch, d.stateful, d.epochs,
            d.patience,
            (double)d.lr, (double)d.val_frac, (double)d.input_clip, (double)d.clip,
            (double)d.forget_bias, d.prime, d.relearn,
            (double)d.max_exclude);
    fprintf(f,
            "  --cooldown N        damp the score for N samples after an alert (%d)\n"
            "  --range-tolerance X values beyond the range seen by X times it are anomalous (%g)\n"
            "  --range-window N    the range seen: the last ~N values, 0 = all (%d)\n"
            "  --asinh 0|1         normalise with asinh, for heavy-tailed series (%d)\n"
            "  --seasonal-period S second signal: the value against the median of the values\n"
            "                      1..P periods of S seconds ago, own scorer, 0 = off (%d)\n"
            "  --seasonal-periods P periods looked back, 1..8 (%d)\n"
            "  --seasonal-weight X the seasonal score's odds times X, (0, 1] (%g)\n"
            "  --warmup-naive 0|1  before the first training predict the previous value (%d)\n"
            "  --alert-penalty X   the likelihood and seasonal scores' odds lose X/5 per\n"
            "                      recent alert (likelihood: -log10 tail loses X), 0 = off (%g)\n"
            "  --alert-horizon N   recent: the alerts of roughly the last N samples (%d)\n",
            d.cooldown, (double)d.range_tolerance, d.range_window, d.asinh, d.seasonal_period,
            d.seasonal_periods, (double)d.seasonal_weight, d.warmup_naive,
            (double)d.alert_penalty, d.alert_horizon);
    fprintf(f,
            "scoring:\n"
            "  --scorer S          likelihood dynamic static (%s)\n"
            "  --threshold X       flag at score >= X (%g)\n"
            "  --scorer-window N   error history of the scorer (%d)\n"
            "  --short-window N    likelihood: errors averaged (%d)\n"
            "  --long-window N     likelihood: a second one averaging N errors, 0 = off (%d)\n"
            "  --min-samples N     scorer: score 0 until N errors seen (%d)\n"
            "  --k X               static: error scoring 0.5 (%g)\n"
            "  --min-sd X          likelihood: floor on the averaged errors' deviation (%g)\n"
            "  --error-bound X     likelihood: bound each |error| a to a/(a+X), 0 = off (%g)\n"
            "  --raw-k X           a well-predicted series' raw error (its signed moving\n"
            "                      mean) against X times its RMS on validation, 0 = off (%g)\n"
            "  --raw-rms X         raw-k applies below this validation RMS (%g)\n"
            "  --alpha X           dynamic: EWMA smoothing (%g)\n"
            "  --z-min X, --z-max X dynamic: smallest and largest z tried (%g, %g)\n"
            "  --prune X           dynamic: least excess over the largest normal error (%g)\n"
            "  --refit N           dynamic: samples between threshold re-fits (%d)\n"
            "  --incident-z X      the anomalous state lasts while the values' moving mean\n"
            "                      stays X spreads from the reference before the first hit,\n"
            "                      0 = only short-window samples after a hit (%g)\n"
            "  --incident-ref N    values before the hit forming the reference (%d)\n"
            "  --departure X       the anomalous state is also on while the values' moving\n"
            "                      mean is X times further from the mean of the values the\n"
            "                      network was trained on than it went over them (99th\n"
            "                      percentile), 0 = off (%g)\n"
            "  --quiet             no progress or per-row messages on stderr\n",
            ad_scorer_name(d.scorer.kind), (double)d.scorer.threshold, d.scorer.window,
            d.scorer.short_window, d.long_window, d.scorer.min_samples, (double)d.scorer.k,
            (double)d.scorer.min_sd, (double)d.scorer.error_bound, (double)d.raw_k,
            (double)d.raw_rms, (double)d.scorer.ewma_alpha, (double)d.scorer.z_min,
            (double)d.scorer.z_max, (double)d.scorer.prune, d.scorer.refit,
            (double)d.incident_z, d.incident_ref, (double)d.departure);
}

static int parse_features(const char *s, unsigned *out)
{
    char buf[128];
    *out = 0;
    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strcmp(tok, "tod"))
            *out |= AD_FEAT_TIME_OF_DAY;
        else if (!strcmp(tok, "dow"))
            *out |= AD_FEAT_DAY_OF_WEEK;
        else if (!strcmp(tok, "gap"))
            *out |= AD_FEAT_GAP;
        else if (strcmp(tok, "none"))
            return -1;
    }
    return 0;
}

/* Parses a number option; exits with a usage error if it is not one. */
static double num(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) {
        fprintf(stderr, "anomalyctl score: --%s needs a number, got '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

/* An integer option's value: a number (as num) that is a whole number within int's range;
 * anything else is a usage error (not cut to an integer or wrapped). */
static int inum(const char *opt, const char *s)
{
    const double v = num(opt, s);
    if (v != floor(v) || v < (double)INT_MIN || v > (double)INT_MAX) {
        fprintf(stderr, "anomalyctl score: --%s needs an integer, got '%s'\n", opt, s);
        exit(2);
    }
    return (int)v;
}

/* The seed: a whole number 0..2^64-1, read exactly (a double would round above 2^53), as
 * the configuration's seed is. */
static uint64_t seed_num(const char *opt, const char *s)
{
    uint64_t v;
    if (ad_config_parse_u64(s, &v) < 0) {
        fprintf(stderr, "anomalyctl score: --%s needs an integer 0..%llu, got '%s'\n", opt,
                (unsigned long long)UINT64_MAX, s);
        exit(2);
    }
    return v;
}

enum {
    O_KIND = 256, O_HIDDEN, O_LAYERS, O_FEATURES, O_SEED, O_HISTORY, O_TRAIN_AFTER,
    O_TRAIN_EVERY, O_WINDOW, O_BATCH, O_EPOCHS, O_PATIENCE, O_LR, O_VAL_FRAC, O_INPUT_CLIP,
    O_RELEARN, O_SCORER, O_THRESHOLD, O_SCORER_WINDOW, O_SHORT_WINDOW, O_MIN_SAMPLES, O_K,
    O_ALPHA, O_MAX_EXCLUDE, O_COOLDOWN, O_ASINH, O_MIN_SD, O_MODEL, O_S2S_WINDOW, O_RANGE, O_RANGE_WINDOW, O_ERROR_BOUND,
    O_SEASONAL_PERIOD, O_SEASONAL_PERIODS, O_SEASONAL_WEIGHT, O_WARMUP_NAIVE, O_ALERT_PENALTY,
    O_ALERT_HORIZON,
    O_LONG_WINDOW, O_FEATURE_SPAN, O_RAW_K, O_RAW_RMS, O_STATEFUL, O_INCIDENT_Z, O_INCIDENT_REF, O_DEPARTURE, O_CLIP, O_FORGET_BIAS, O_PRIME,
    O_Z_MIN, O_Z_MAX, O_PRUNE, O_REFIT, O_QUIET,
    O_WEIGHTS, O_CONFIG, O_SERIES, O_HELP
};

static const struct option long_opts[] = {
    {"kind", 1, 0, O_KIND},           {"hidden", 1, 0, O_HIDDEN},
    {"layers", 1, 0, O_LAYERS},       {"features", 1, 0, O_FEATURES},
    {"seed", 1, 0, O_SEED},           {"history", 1, 0, O_HISTORY},
    {"train-after", 1, 0, O_TRAIN_AFTER}, {"train-every", 1, 0, O_TRAIN_EVERY},
    {"window", 1, 0, O_WINDOW},       {"batch", 1, 0, O_BATCH},
    {"epochs", 1, 0, O_EPOCHS},       {"patience", 1, 0, O_PATIENCE},
    {"lr", 1, 0, O_LR},               {"val-frac", 1, 0, O_VAL_FRAC},
    {"input-clip", 1, 0, O_INPUT_CLIP}, {"relearn", 1, 0, O_RELEARN},
    {"scorer", 1, 0, O_SCORER},       {"threshold", 1, 0, O_THRESHOLD},
    {"scorer-window", 1, 0, O_SCORER_WINDOW}, {"short-window", 1, 0, O_SHORT_WINDOW},
    {"min-samples", 1, 0, O_MIN_SAMPLES}, {"k", 1, 0, O_K},
    {"alpha", 1, 0, O_ALPHA},         {"max-exclude", 1, 0, O_MAX_EXCLUDE},
    {"cooldown", 1, 0, O_COOLDOWN},   {"asinh", 1, 0, O_ASINH},
    {"min-sd", 1, 0, O_MIN_SD},       {"model", 1, 0, O_MODEL},
    {"s2s-window", 1, 0, O_S2S_WINDOW}, {"range-tolerance", 1, 0, O_RANGE},
    {"range-window", 1, 0, O_RANGE_WINDOW}, {"error-bound", 1, 0, O_ERROR_BOUND},
    {"seasonal-period", 1, 0, O_SEASONAL_PERIOD}, {"seasonal-periods", 1, 0, O_SEASONAL_PERIODS},
    {"seasonal-weight", 1, 0, O_SEASONAL_WEIGHT}, {"warmup-naive", 1, 0, O_WARMUP_NAIVE},
    {"alert-penalty", 1, 0, O_ALERT_PENALTY}, {"alert-horizon", 1, 0, O_ALERT_HORIZON},
    {"long-window", 1, 0, O_LONG_WINDOW},
    {"feature-span", 1, 0, O_FEATURE_SPAN}, {"raw-k", 1, 0, O_RAW_K}, {"raw-rms", 1, 0, O_RAW_RMS},
    {"stateful", 1, 0, O_STATEFUL}, {"incident-z", 1, 0, O_INCIDENT_Z},
    {"incident-ref", 1, 0, O_INCIDENT_REF}, {"departure", 1, 0, O_DEPARTURE},
    {"clip", 1, 0, O_CLIP},
    {"forget-bias", 1, 0, O_FORGET_BIAS}, {"prime", 1, 0, O_PRIME},
    {"z-min", 1, 0, O_Z_MIN},         {"z-max", 1, 0, O_Z_MAX},
    {"prune", 1, 0, O_PRUNE},         {"refit", 1, 0, O_REFIT},
    {"quiet", 0, 0, O_QUIET},         {"weights", 1, 0, O_WEIGHTS},
    {"config", 1, 0, O_CONFIG},       {"series", 1, 0, O_SERIES},
    {"help", 0, 0, O_HELP},           {0, 0, 0, 0}};

/* Applies one option to c; returns 0, or -1 for an unknown option. */
static int apply_option(int o, const char *arg, ad_detector_config *c, int *quiet)
{
    ad_scorer_config *s = &c->scorer;
    const char *name = NULL;
    for (const struct option *lo = long_opts; lo->name; lo++)
        if (lo->val == o)
            name = lo->name;
    switch (o) {
    case O_KIND: {
        int k = ad_cell_from_name(arg);
        if (k < 0) {
            fprintf(stderr, "anomalyctl score: unknown --kind '%s'\n", arg);
            exit(2);
        }
        c->kind = (ad_cell_kind)k;
        return 0;
    }
    case O_SCORER: {
        /* keep the scorer's own defaults for the new kind, then the shared settings */
        int k = ad_scorer_from_name(arg);
        if (k < 0) {
            fprintf(stderr, "anomalyctl score: unknown --scorer '%s'\n", arg);
            exit(2);
        }
        ad_scorer_config nc;
        ad_scorer_defaults(&nc, (ad_scorer_kind)k);
        nc.threshold = s->threshold;
        nc.window = s->window;
        nc.min_samples = s->min_samples;
        nc.min_sd = s->min_sd;
        nc.error_bound = s->error_bound;
        *s = nc;
        return 0;
    }
    case O_MODEL:
        if (!strcmp(arg, "predict")) {
            c->model = AD_MODEL_PREDICT;
        } else if (!strcmp(arg, "seq2seq")) {
            c->model = AD_MODEL_SEQ2SEQ;
        } else {
            fprintf(stderr, "anomalyctl score: --model takes predict or seq2seq, got '%s'\n",
                    arg);
            exit(2);
        }
        return 0;
    case O_FEATURES:
        if (parse_features(arg, &c->features)) {
            fprintf(stderr, "anomalyctl score: --features takes tod,dow,gap, got '%s'\n", arg);
            exit(2);
        }
        return 0;
    case O_QUIET:
        *quiet = 1;
        return 0;
    case O_HIDDEN: c->hidden = inum(name, arg); return 0;
    case O_LAYERS: c->layers = inum(name, arg); return 0;
    case O_SEED: c->seed = seed_num(name, arg); return 0;
    case O_HISTORY: c->history = inum(name, arg); return 0;
    case O_TRAIN_AFTER: c->train_after = inum(name, arg); return 0;
    case O_TRAIN_EVERY: c->train_every = inum(name, arg); return 0;
    case O_WINDOW: c->window = inum(name, arg); return 0;
    case O_BATCH: c->batch = inum(name, arg); return 0;
    case O_EPOCHS: c->epochs = inum(name, arg); return 0;
    case O_PATIENCE: c->patience = inum(name, arg); return 0;
    case O_LR: c->lr = (float)num(name, arg); return 0;
    case O_VAL_FRAC: c->val_frac = (float)num(name, arg); return 0;
    case O_INPUT_CLIP: c->input_clip = (float)num(name, arg); return 0;
    case O_RELEARN: c->relearn = inum(name, arg); return 0;
    case O_MAX_EXCLUDE: c->max_exclude = (float)num(name, arg); return 0;
    case O_COOLDOWN: c->cooldown = inum(name, arg); return 0;
    case O_ASINH: c->asinh = inum(name, arg); return 0;
    case O_MIN_SD: s->min_sd = (float)num(name, arg); return 0;
    case O_S2S_WINDOW: c->s2s_window = inum(name, arg); return 0;
    case O_RANGE: c->range_tolerance = (float)num(name, arg); return 0;
    case O_RANGE_WINDOW: c->range_window = inum(name, arg); return 0;
    case O_SEASONAL_PERIOD: c->seasonal_period = inum(name, arg); return 0;
    case O_SEASONAL_PERIODS: c->seasonal_periods = inum(name, arg); return 0;
    case O_SEASONAL_WEIGHT: c->seasonal_weight = (float)num(name, arg); return 0;
    case O_WARMUP_NAIVE: c->warmup_naive = inum(name, arg); return 0;
    case O_ALERT_PENALTY: c->alert_penalty = (float)num(name, arg); return 0;
    case O_ALERT_HORIZON: c->alert_horizon = inum(name, arg); return 0;
    case O_LONG_WINDOW: c->long_window = inum(name, arg); return 0;
    case O_FEATURE_SPAN: c->feature_span = inum(name, arg); return 0;
    case O_RAW_K: c->raw_k = (float)num(name, arg); return 0;
    case O_RAW_RMS: c->raw_rms = (float)num(name, arg); return 0;
    case O_STATEFUL: c->stateful = inum(name, arg); return 0;
    case O_INCIDENT_Z: c->incident_z = (float)num(name, arg); return 0;
    case O_INCIDENT_REF: c->incident_ref = inum(name, arg); return 0;
    case O_DEPARTURE: c->departure = (float)num(name, arg); return 0;
    case O_ERROR_BOUND: s->error_bound = (float)num(name, arg); return 0;
    case O_THRESHOLD: s->threshold = (float)num(name, arg); return 0;
    case O_SCORER_WINDOW: s->window = inum(name, arg); return 0;
    case O_SHORT_WINDOW: s->short_window = inum(name, arg); return 0;
    case O_MIN_SAMPLES: s->min_samples = inum(name, arg); return 0;
    case O_K: s->k = (float)num(name, arg); return 0;
    case O_ALPHA: s->ewma_alpha = (float)num(name, arg); return 0;
    case O_CLIP: c->clip = (float)num(name, arg); return 0;
    case O_FORGET_BIAS: c->forget_bias = (float)num(name, arg); return 0;
    case O_PRIME: c->prime = inum(name, arg); return 0;
    case O_Z_MIN: s->z_min = (float)num(name, arg); return 0;
    case O_Z_MAX: s->z_max = (float)num(name, arg); return 0;
    case O_PRUNE: s->prune = (float)num(name, arg); return 0;
    case O_REFIT: s->refit = inum(name, arg); return 0;
    default:
        return -1;
    }
}

static void print_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
}

/*
 * The detector settings of a daemon configuration file for one series: its defaults:,
 * or with a key the rule the daemon would apply to that key (ad_config_match), and its
 * weights. 0, or 1 (error reported) for a bad file or a key the file ignores.
 */
static int config_detector(const char *path, const char *key, ad_detector_config *out,
                           int *weights)
{
    const ad_detector_config *det = NULL;
    ad_config c;
    char err[1024];
    int ignore = 0, rule;

    if (ad_config_load(path, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyctl score: %s\n", err);
        return 1;
    }
    rule = key ? ad_config_match(&c, key, &det, &ignore) : -1;
    if (!det)
        det = &c.defaults;
    if (ignore) {
        fprintf(stderr, "anomalyctl score: %s: series[%d] ignores %s: nothing to score\n",
                path, rule, key);
        ad_config_free(&c);
        return 1;
    }
    if (rule >= 0 && c.rules[rule].shared)
        fprintf(stderr, "anomalyctl score: %s: series[%d] shares one network among the "
                "series it matches; here %s is scored with a network of its own\n",
                path, rule, key);
    *out = *det;
    *weights = c.weights;
    ad_config_free(&c);
    return 0;
}

/* -c FILE and --series KEY, found before the other options are applied over them. */
static int prescan_config(int argc, char **argv, const char **file, const char **key)
{
    int o;

    optind = 0; /* glibc: a full reinitialisation (the second pass does it again) */
    opterr = 0; /* the second pass reports bad options */
    while ((o = getopt_long(argc, argv, "hc:", long_opts, NULL)) != -1) {
        if (o == 'c' || o == O_CONFIG)
            *file = optarg;
        else if (o == O_SERIES)
            *key = optarg;
    }
    opterr = 1;
    if (*key && !*file) {
        fprintf(stderr, "anomalyctl score: --series needs -c FILE (the rules it selects)\n");
        return 2;
    }
    return 0;
}

/* What score counts for its summary line. */
typedef struct score_counts {
    unsigned long long rows, bad, refused, flagged;
} score_counts;

/* score's command line: the detector settings (the defaults, -c FILE's, the options over
 * them), the weights, --quiet and the input path. Returns -1 to go on, else the exit
 * status (0 after --help, 1 for a bad -c file, 2 on usage errors). */
static int score_args(int argc, char **argv, ad_detector_config *cfg, int *weights, int *quiet,
                      const char **path)
{
    const char *cfile = NULL, *ckey = NULL;
    int o, rc;

    if ((rc = prescan_config(argc, argv, &cfile, &ckey)))
        return rc;
    if (cfile && config_detector(cfile, ckey, cfg, weights))
        return 1;
    optind = 0;
    while ((o = getopt_long(argc, argv, "hc:", long_opts, NULL)) != -1) {
        if (o == O_HELP || o == 'h') {
            usage(stdout);
            return 0;
        }
        if (o == 'c' || o == O_CONFIG || o == O_SERIES)
            continue; /* applied above */
        if (o == O_WEIGHTS) {
            if ((*weights = ad_wtype_from_name(optarg)) < 0) {
                fprintf(stderr,
                        "anomalyctl score: --weights takes float32, float16 or int8, got '%s'\n",
                        optarg);
                return 2;
            }
            continue;
        }
        if (apply_option(o, optarg, cfg, quiet)) {
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc)
        *path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "anomalyctl score: one input file at most\n");
        return 2;
    }
    return -1;
}

/* Why a row cannot be scored (NULL: it can; *ts and *v then hold it); *ts_s and *v_s its
 * fields as written. */
static const char *score_parse(char *line, char **ts_s, char **v_s, double *ts, double *v)
{
    char *end;

    if (ad_csv_split2(line, ts_s, v_s))
        return "not two comma-separated fields";
    if (ad_csv_parse_time(*ts_s, ts))
        return "bad timestamp";
    errno = 0;
    *v = strtod(*v_s, &end);
    if (end == *v_s || *end)
        return "value is not a number";
    return NULL;
}

/* Scores every row of in, one output row each (see the top of this file); progress and
 * the rows refused on stderr unless quiet. */
static void score_rows(ad_detector *det, FILE *in, const char *path, int quiet, score_counts *n)
{
    unsigned long long lineno = 0, reported = 0;
    char line[MAX_LINE], err[256];

    while (fgets(line, sizeof(line), in)) {
        char *ts_s = (char *)"", *v_s = (char *)"";
        double ts = 0, v = 0;
        ad_result r;
        const char *why = NULL;
        size_t len = strlen(line);

        lineno++;
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') { /* giant line: skip the rest */
            int ch;
            while ((ch = fgetc(in)) != EOF && ch != '\n')
                ;
            why = "line too long";
        }
        if (lineno == 1 && !why && ad_csv_is_header(line))
            continue; /* header */
        if (!why && (line[0] == '\n' || line[0] == '\r' || line[0] == '\0'))
            continue; /* blank line */
        if (!why)
            why = score_parse(line, &ts_s, &v_s, &ts, &v);
        n->rows++;
        if (why) {
            n->bad++;
            if (!quiet && reported++ < MAX_REPORTED)
                fprintf(stderr, "anomalyctl score: %s:%llu: %s\n", path, lineno, why);
            printf("%s,,0,0,0,,,%d\n", ts_s, 0);
            continue;
        }
        ad_detector_stats before = *ad_detector_get_stats(det);
        if (ad_detector_observe(det, ts, v, &r) != 0) {
            const ad_detector_stats *now = ad_detector_get_stats(det);
            int reason = 0;
            for (int i = 0; i < AD_REFUSE_NREASONS; i++)
                if (now->refused[i] != before.refused[i])
                    reason = i;
            n->refused++;
            if (!quiet && reported++ < MAX_REPORTED)
                fprintf(stderr, "anomalyctl score: %s:%llu: value refused (%s)\n", path,
                        lineno, ad_refusal_name(reason));
            printf("%s,%s,0,0,0,,,%d\n", ts_s, v_s, now->trainings == 0);
            continue;
        }
        n->flagged += (unsigned long long)r.flagged;
        printf("%s,%s,%.9g,%d,%d,", ts_s, v_s, (double)r.score, r.flagged, r.anomalous);
        print_num(stdout, r.predicted);
        putchar(',');
        print_num(stdout, r.error);
        printf(",%d\n", r.warming_up);
        if (r.train_due && ad_detector_train(det, err, sizeof(err)) != 0 && !quiet)
            fprintf(stderr, "anomalyctl score: %s:%llu: training failed: %s\n", path, lineno,
                    err);
        if (!quiet && n->rows % 100000 == 0)
            fprintf(stderr, "anomalyctl score: %s: %llu rows\n", path, n->rows);
    }
}

static int cmd_score(int argc, char **argv)
{
    ad_detector_config cfg;
    ad_detector *det = NULL;
    const char *path = "-";
    FILE *in = stdin;
    char err[256];
    int quiet = 0, rc, weights = AD_W_F32;
    score_counts n = {0};

    ad_detector_defaults(&cfg);
    /* One BLAS thread, as the daemon trains (main.c): the sums' order, so the trained
     * weights and every score, are then the daemon's, whatever the machine's cores. */
    ad_blas_set_threads(1);
    if ((rc = score_args(argc, argv, &cfg, &weights, &quiet, &path)) >= 0)
        return rc;
    rc = 1;
    if (ad_detector_create(&cfg, &det, err, sizeof(err))) {
        fprintf(stderr, "anomalyctl score: bad configuration: %s\n", err);
        return 1;
    }
    if (ad_detector_set_weights(det, weights) != 0) {
        fprintf(stderr, "anomalyctl score: out of memory\n");
        goto out;
    }
    if (strcmp(path, "-") != 0) {
        in = fopen(path, "r");
        if (!in) {
            fprintf(stderr, "anomalyctl score: %s: %s\n", path, strerror(errno));
            goto out;
        }
    }

    printf("timestamp,value,anomaly_score,flag,anomalous,predicted,error,warming_up\n");
    score_rows(det, in, path, quiet, &n);
    if (ferror(in)) {
        fprintf(stderr, "anomalyctl score: %s: read error: %s\n", path, strerror(errno));
        goto out;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "anomalyctl score: write error: %s\n", strerror(errno));
        goto out;
    }
    if (!quiet) {
        const ad_detector_stats *s = ad_detector_get_stats(det);
        fprintf(stderr,
                "anomalyctl score: %s: %llu rows, %llu flagged, %llu unparsable, %llu refused, "
                "%llu trainings\n",
                path, n.rows, n.flagged, n.bad, n.refused, (unsigned long long)s->trainings);
    }
    rc = 0;
out:
    if (in && in != stdin)
        fclose(in);
    ad_detector_free(det);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: anomalyctl COMMAND [ARGS]\n\ncommands:\n"
                "  score     score a timestamp,value CSV offline (anomalyctl score --help)\n"
                "  tail      follow the daemon's anomaly events (anomalyctl tail --help)\n"
                "  status    what a running anomalyd is doing (anomalyctl status --help)\n"
                "  series    its series as a table; series show KEY: one, with sparklines\n"
                "  replay    send a timestamp,value CSV to a listener (anomalyctl replay --help)\n"
                "  gradflow  how far back each cell kind's gradient reaches (gradflow --help)\n"
                "\nstatus and series take --http HOST:PORT ($ANOMALYD_HTTP, 127.0.0.1:8080),\n"
                "or a comma-separated list of them to ask every instance of a cluster\n"
                "(docs/SCALING.md), and --token T ($ANOMALYD_TOKEN). Exit status: 0, 1 on\n"
                "runtime errors (the daemon not running; with several instances: none\n"
                "answered), 2 on usage errors.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "score"))
        return cmd_score(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tail"))
        return ad_ctl_tail(argc - 1, argv + 1);
    if (!strcmp(argv[1], "status"))
        return ad_ctl_status(argc - 1, argv + 1);
    if (!strcmp(argv[1], "series"))
        return ad_ctl_series(argc - 1, argv + 1);
    if (!strcmp(argv[1], "replay"))
        return ad_ctl_replay(argc - 1, argv + 1);
    if (!strcmp(argv[1], "gradflow"))
        return ad_ctl_gradflow(argc - 1, argv + 1);
    fprintf(stderr, "anomalyctl: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
