#!/usr/bin/python3
"""nab_plot.py - draw one NAB file as the detector saw it, to a PNG.

    scripts/nab_plot.py RAW_CSV OUT_PNG --name CATEGORY/FILE.csv [--nab-dir DIR]

RAW_CSV is `anomalyctl score` output for that file (timestamp, value, anomaly_score, flag,
predicted, error, warming_up; scripts/nab keeps it in build/nab/raw/). The picture: the
values and the network's predictions on the left axis, the anomaly score on a second axis
(0..1), the file's NAB label windows shaded, the probationary period greyed, flagged points
marked. Needs Debian's python3-matplotlib (apt-get install -y python3-matplotlib); run by
scripts/nab --plot.
"""

import argparse
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nab_score  # noqa: E402

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("nab_plot.py: needs matplotlib: apt-get install -y python3-matplotlib")


def _num(text):
    try:
        x = float(text)
    except ValueError:
        return math.nan
    return x if math.isfinite(x) else math.nan


def read_raw(path):
    """The anomalyctl output columns as lists: value, anomaly_score, flag, predicted
    (NaN where empty or not a number)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise nab_score.NabError("%s: empty" % path)
    header = [c.strip() for c in rows[0]]
    col = {name: header.index(name) for name in header}
    out = {}
    for name in ("value", "anomaly_score", "flag", "predicted", "warming_up"):
        k = col.get(name)
        out[name] = [(_num(r[k]) if k is not None and k < len(r) else math.nan)
                     for r in rows[1:]]
    return out


def plot(raw_path, df, png):
    cols = read_raw(raw_path)
    n = len(df.timestamps)
    if len(cols["value"]) != n:
        raise nab_score.NabError("%s: %d rows, the data file has %d"
                                 % (raw_path, len(cols["value"]), n))
    x = list(range(n))
    fig, ax = plt.subplots(figsize=(16, 6), dpi=100)
    ax.plot(x, cols["value"], lw=0.7, color="tab:blue", label="value")
    ax.plot(x, cols["predicted"], lw=0.7, color="tab:orange", alpha=0.8, label="predicted")
    flagged = [i for i in x if cols["flag"][i] == 1]
    ax.scatter(flagged, [cols["value"][i] for i in flagged], s=14, color="red", zorder=3,
               label="flagged (%d)" % len(flagged))
    p = nab_score.probation_length(n)
    ax.axvspan(0, p, color="0.85", alpha=0.6, lw=0, label="probationary (%d rows)" % p)
    for k, (l, r) in enumerate(df.windows):
        ax.axvspan(l, r, color="tab:green", alpha=0.18, lw=0,
                   label="NAB windows (%d)" % len(df.windows) if k == 0 else None)
    ax.set_xlim(0, max(n - 1, 1))
    ax.set_ylabel("value")
    ticks = [int(t) for t in (k * (n - 1) / 8 for k in range(9))]
    ax.set_xticks(ticks)
    ax.set_xticklabels([df.timestamps[t][:16] for t in ticks], rotation=20, ha="right",
                       fontsize=8)
    ax.set_xlabel("row (timestamp)")
    ax2 = ax.twinx()
    ax2.plot(x, cols["anomaly_score"], lw=0.6, color="tab:purple", alpha=0.6,
             label="anomaly score")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("anomaly score")
    ax.set_zorder(ax2.get_zorder() + 1)   # values and flags over the score curve
    ax.patch.set_visible(False)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8, framealpha=0.8)
    ax.set_title("%s: %d rows" % (df.name, n))
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="nab_plot.py", description=__doc__.split("\n")[0])
    ap.add_argument("raw", metavar="RAW_CSV")
    ap.add_argument("png", metavar="OUT_PNG")
    ap.add_argument("--name", required=True, metavar="CATEGORY/FILE.csv")
    ap.add_argument("--nab-dir", default=None, metavar="DIR")
    args = ap.parse_args(argv)
    try:
        corpus = nab_score.load_corpus(args.nab_dir or nab_score.default_nab_dir())
        match = [df for df in corpus if df.name == args.name]
        if not match:
            raise nab_score.NabError("%s: not a file of the corpus" % args.name)
        plot(args.raw, match[0], args.png)
    except nab_score.NabError as e:
        print("nab_plot.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
