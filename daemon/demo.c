/*
 * demo.c - anomalyd-demo: what `scripts/run` starts until the daemon exists.
 *
 * Generates a seasonal series with noise and three injected anomalies (a spike, a dip,
 * a burst of noise), trains a network of the chosen kind on a clean prefix with BPTT,
 * then streams every value through ad_net_step, scoring each one by its prediction
 * error against a running mean and deviation of recent errors (a z-score squashed to
 * [0,1]). Prints flagged rows and whether each injected anomaly was caught.
 *
 * Usage: anomalyd-demo [kind] [hidden] [seed]   (kind: elman lstm peephole cifg gru
 * gru_torch; default lstm 16 1)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "optim.h"
#include "rng.h"
#include "train.h"

#define N         3000
#define NTRAIN    1200
#define THRESHOLD 0.95

static const struct {
    int at, len;
    const char *what;
} injected[] = {{1700, 1, "spike +3"}, {2150, 1, "dip -2.5"}, {2600, 12, "noise burst"}};

static void make_series(float *s, uint64_t seed)
{
    ad_rng r;
    ad_rng_seed(&r, seed);
    for (int t = 0; t < N; t++)
        s[t] = (float)(sin(2.0 * M_PI * t / 48.0) + 0.4 * sin(2.0 * M_PI * t / 11.0)) +
               0.05f * ad_rng_normal(&r);
    s[1700] += 3.0f;
    s[2150] -= 2.5f;
    for (int t = 2600; t < 2612; t++)
        s[t] += 0.8f * ad_rng_normal(&r);
}

int main(int argc, char **argv)
{
    const char *kname = argc > 1 ? argv[1] : "lstm";
    int kind = ad_cell_from_name(kname);
    int hidden = argc > 2 ? atoi(argv[2]) : 16;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    static float s[N];
    ad_net_config cfg;
    ad_net *net = NULL;
    ad_seq *ws = NULL;
    ad_optim *opt = NULL;
    ad_state *st = NULL;
    ad_train_opts o;
    char err[256];
    float loss = 0.0f, y = 0.0f;
    int rc = 1, flagged = 0;
    int caught[sizeof(injected) / sizeof(injected[0])] = {0};

    if (kind < 0) {
        fprintf(stderr, "anomalyd-demo: unknown cell kind '%s'\n", kname);
        return 2;
    }
    cfg = (ad_net_config){(ad_cell_kind)kind, 1, 1, hidden, 1};
    make_series(s, seed);
    if (ad_net_create(&cfg, seed, &net, err, sizeof(err)) || (ad_train_defaults(&o), 0) ||
        ad_seq_create(net, o.window, o.batch, &ws, err, sizeof(err))) {
        fprintf(stderr, "anomalyd-demo: %s\n", err);
        goto out;
    }
    opt = ad_optim_create(AD_OPTIM_ADAM, net->nparams, 0.01f);
    st = ad_state_create(net);
    if (!opt || !st) {
        fprintf(stderr, "anomalyd-demo: out of memory\n");
        goto out;
    }
    o.epochs = 15;
    o.stride = 8;
    printf("anomalyd-demo: %s network, H=%d, %zu parameters; training on %d clean samples\n", kname,
           hidden, net->nparams, NTRAIN);
    if (ad_train(net, opt, ws, s, s + 1, NTRAIN - 1, &o, &loss, err, sizeof(err))) {
        fprintf(stderr, "anomalyd-demo: %s\n", err);
        goto out;
    }
    printf("trained: final epoch MSE %.5f\n\n", loss);

    /* stream: score x[t] against the prediction made at t-1 */
    double mean = 0.0, var = 0.0;
    const double alpha = 0.01;
    int seen = 0;
    printf("%6s %9s %9s %9s %6s\n", "t", "value", "predicted", "error", "score");
    for (int t = 0; t < N; t++) {
        if (t > 0) {
            double e = fabs((double)s[t] - y);
            double sd = sqrt(var) + 1e-6;
            double z = seen > 50 ? (e - mean) / sd : 0.0;
            double score = z > 0 ? 1.0 - exp(-z * z / 18.0) : 0.0; /* z = 3 -> 0.39, 8 -> 0.97 */
            if (score >= THRESHOLD) {
                flagged++;
                printf("%6d %9.4f %9.4f %9.4f %6.3f  ANOMALY\n", t, s[t], y, e, score);
                for (size_t i = 0; i < sizeof(injected) / sizeof(injected[0]); i++)
                    if (t >= injected[i].at && t <= injected[i].at + injected[i].len + 1)
                        caught[i] = 1;
            } else { /* flagged values stay out of the error statistics */
                mean += alpha * (e - mean);
                var += alpha * ((e - mean) * (e - mean) - var);
                seen++;
            }
        }
        ad_net_step(net, st, &s[t], &y);
    }
    printf("\n%d of %d values flagged (threshold %.2f)\n", flagged, N - 1, THRESHOLD);
    for (size_t i = 0; i < sizeof(injected) / sizeof(injected[0]); i++)
        printf("injected %-12s at t=%d: %s\n", injected[i].what, injected[i].at,
               caught[i] ? "caught" : "MISSED");
    rc = 0;
out:
    ad_state_free(st);
    ad_optim_free(opt);
    ad_seq_free(ws);
    ad_net_free(net);
    return rc;
}
