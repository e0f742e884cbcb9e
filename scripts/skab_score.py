#!/usr/bin/python3
"""skab_score.py - score a detector on SKAB, the Skoltech Anomaly Benchmark (v0.9).

    scripts/skab_score.py RESULTS_DIR [--skab-dir DIR] [--files valve1/0.csv,...]
                          [--column auto|anomalous|flag] [--json OUT]

RESULTS_DIR/<folder>/<N>/<sensor>.csv is the detector's output (anomalyctl score's CSV)
for one sensor column of the benchmark file data/<folder>/<N>.csv, <sensor> the column's
name with spaces as underscores (Accelerometer1RMS, ..., Volume_Flow_RateRMS): one row
per benchmark row, same order, the benchmark's datetime as the timestamp. The benchmark
(DIR: --skab-dir, else $SKAB_DIR, else ../shared/skab beside the repository root) is read
from DIR/data/. The scored files are the 34 experiments of valve1/, valve2/ and other/;
data/anomaly-free/ has no labels and is not scored (as in SKAB's own notebooks).

The rules are the benchmark README's (../shared/skab/README.md):
  - per file the first TRAIN = 400 rows are the training part, the rest the test part;
    only test rows are scored;
  - a row's prediction is the OR of the eight sensors' outputs (a row is anomalous when
    any sensor is), from column `anomalous` when the outputs have it, else `flag`
    (--column: auto, the default, chooses so; the figures say which);
  - outlier detection: every test row of every file, pooled, a binary prediction
    against `anomaly`: F1 = 2TP / (2TP + FP + FN), FAR = FP / (FP + TN) in %, MAR =
    FN / (FN + TP) in % (each 0 when its denominator is 0);
  - changepoint detection, NAB's rules (scripts/nab_score.py's score_file and
    normalise, profiles standard, low FP, low FN):
      * the predicted change points are where the fused prediction changes, as SKAB's
        notebooks take them (|diff| of the prediction): test row i > TRAIN is one when
        its prediction differs from row i-1's, the first test row when its prediction is 1;
      * a window per true change point (`changepoint` 1), from its row to the last row
        within 60 seconds after it (datetime t_cp <= t <= t_cp + 60 s), cut short before
        the next true change point's row: NAB's windows may not overlap, and every change
        point keeps its own window (SKAB's own evaluation counts each one; merging
        would make the count hang on a second of jitter, the change points of a fault's
        transition being about 60 s apart);
      * the training part is NAB's probationary period (rows < TRAIN never detect;
        windows ending before TRAIN neither count nor cost); no other probation;
      * the predictions are binary, so there is no threshold to optimise: the change
        points are the detections (NAB's sweep would only choose between them and
        detecting nothing or everything);
      * raw scores summed over the files, normalised once: 100 * (raw - null) /
        (perfect - null), null = -windows * fn weight, perfect = windows * tp weight;
        a score below 0 is worse than detecting nothing.
Python 3 standard library only.

Importable: read_benchmark, read_prediction, fuse, outlier_counts, outlier_metrics,
cp_windows, predicted_changepoints, cpd_file, evaluate (used by scripts/bench_detect).

Exit status: 0 on success, 1 when a file is refused (the message says which and why),
2 on a usage error.
"""

import argparse
import csv
import datetime
import json
import os
import sys
from collections import namedtuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nab_score  # noqa: E402  (the NAB rules: score_file, normalise, PROFILES)

#: The training part: the first TRAIN rows of each file.
TRAIN = 400

#: Changepoint windows reach this many seconds to the right of each true change point.
WINDOW_SECONDS = 60

#: The eight sensor columns, in the files' order.
SENSORS = ("Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
           "Thermocouple", "Voltage", "Volume Flow RateRMS")

#: The folders of the 34 experiments (data/anomaly-free/ is unlabelled).
FOLDERS = ("valve1", "valve2", "other")

#: The changepoint figures' names for nab_score's three profiles.
CPD_NAMES = (("standard", "standard"), ("reward_low_FP_rate", "low_fp"),
             ("reward_low_FN_rate", "low_fn"))


class SkabError(Exception):
    """A benchmark or results file is refused; the message says which and why."""


Bench = namedtuple("Bench", ["name", "timestamps", "times", "anomaly", "changepoint",
                             "sensors"])
"""One benchmark file: name "folder/N.csv", datetime strings and their parsed datetimes,
`anomaly` and `changepoint` (lists of 0/1), and {sensor: [value strings]}."""

OutlierCounts = namedtuple("OutlierCounts", ["tp", "fp", "fn", "tn"])


def sensor_file(sensor):
    """The results file name of a sensor column: spaces as underscores, .csv."""
    return sensor.replace(" ", "_") + ".csv"


def default_skab_dir():
    """$SKAB_DIR, else ../shared/skab beside the repository root this script lives in."""
    env = os.environ.get("SKAB_DIR")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(root), "shared", "skab")


def benchmark_files(skab_dir):
    """The experiments' files, "folder/N.csv", folder by folder (valve1, valve2, other),
    each in numeric order (0.csv, 1.csv, 2.csv, ..., 10.csv)."""
    out = []
    for folder in FOLDERS:
        d = os.path.join(skab_dir, "data", folder)
        try:
            names = [n for n in os.listdir(d) if n.endswith(".csv")]
        except OSError as e:
            raise SkabError("%s: cannot list (is --skab-dir / SKAB_DIR right?): %s"
                            % (d, e.strerror or e))
        out += ["%s/%s" % (folder, n) for n in sorted(names, key=_numeric_key)]
    if not out:
        raise SkabError("%s: no data files" % skab_dir)
    return out


def _numeric_key(name):
    stem = name[:-4] if name.endswith(".csv") else name
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def _parse_time(path, line, text):
    try:
        t = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise SkabError("%s: line %d: datetime %r is not YYYY-MM-DD hh:mm:ss"
                        % (path, line, text))
    if t.tzinfo is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return t


def _bit(path, line, name, text):
    t = text.strip()
    try:
        x = float(t)
    except ValueError:
        x = None
    if x == 0.0:
        return 0
    if x == 1.0:
        return 1
    raise SkabError("%s: line %d: %s %r is not 0 or 1" % (path, line, name, text))


def _read_rows(path, delimiter):
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f, delimiter=delimiter))
    except OSError as e:
        raise SkabError("%s: cannot read: %s" % (path, e.strerror or e))
    except (csv.Error, UnicodeDecodeError) as e:
        raise SkabError("%s: not a CSV file: %s" % (path, e))
    if not rows:
        raise SkabError("%s: empty file (no header)" % path)
    return [c.strip() for c in rows[0]], rows[1:]


def read_benchmark(path, name=None):
    """Read one `;`-separated benchmark file. Returns a Bench; refuses a file whose
    datetimes do not increase."""
    header, body = _read_rows(path, ";")
    need = ("datetime",) + SENSORS + ("anomaly", "changepoint")
    missing = [c for c in need if c not in header]
    if missing:
        raise SkabError("%s: header lacks %s" % (path, ", ".join(missing)))
    col = {c: header.index(c) for c in need}
    ncol = max(col.values()) + 1
    ts, times, anomaly, cp = [], [], [], []
    sensors = {s: [] for s in SENSORS}
    for i, r in enumerate(body):
        line = i + 2
        if len(r) < ncol:
            raise SkabError("%s: line %d has %d fields, expected at least %d"
                            % (path, line, len(r), ncol))
        text = r[col["datetime"]].strip()
        t = _parse_time(path, line, text)
        if times and t <= times[-1]:
            raise SkabError("%s: line %d: datetime %s does not follow %s"
                            % (path, line, text, ts[-1]))
        ts.append(text)
        times.append(t)
        anomaly.append(_bit(path, line, "anomaly", r[col["anomaly"]]))
        cp.append(_bit(path, line, "changepoint", r[col["changepoint"]]))
        for s in SENSORS:
            sensors[s].append(r[col[s]].strip())
    return Bench(name or os.path.basename(path), ts, times, anomaly, cp, sensors)


def output_columns(path):
    """The header of a detector output file, as a list of names."""
    return _read_rows(path, ",")[0]


def choose_column(path, column="auto"):
    """`anomalous` if column is auto and the output has it, else `flag`; or column."""
    if column != "auto":
        return column
    return "anomalous" if "anomalous" in output_columns(path) else "flag"


def read_prediction(path, bench, column):
    """Read one sensor's output for a benchmark file and check it: same number of rows,
    the benchmark's datetimes in the same order, the column 0 or 1. Returns a list of
    0/1."""
    header, body = _read_rows(path, ",")
    try:
        tcol = header.index("timestamp")
        pcol = header.index(column)
    except ValueError:
        raise SkabError("%s: header %r lacks a timestamp or %s column"
                        % (path, ",".join(header), column))
    if len(body) != len(bench.timestamps):
        raise SkabError("%s: %d rows, but the benchmark file %s has %d"
                        % (path, len(body), bench.name, len(bench.timestamps)))
    out = []
    ncol = max(tcol, pcol) + 1
    for i, (r, text) in enumerate(zip(body, bench.timestamps)):
        if len(r) < ncol:
            raise SkabError("%s: line %d has %d fields, expected at least %d"
                            % (path, i + 2, len(r), ncol))
        got = r[tcol].strip()
        if not nab_score.same_timestamp(got, text):
            raise SkabError("%s: line %d: timestamp %r is not the benchmark's %r "
                            "(row %d of %s)" % (path, i + 2, got, text, i, bench.name))
        out.append(_bit(path, i + 2, column, r[pcol]))
    return out


def fuse(predictions):
    """The row-wise OR of equally long 0/1 sequences (at least one)."""
    predictions = list(predictions)
    if not predictions:
        raise ValueError("fuse: no predictions")
    n = len(predictions[0])
    if any(len(p) != n for p in predictions):
        raise ValueError("fuse: predictions of different lengths")
    return [1 if any(p[i] for p in predictions) else 0 for i in range(n)]


def outlier_counts(anomaly, prediction, train=TRAIN):
    """TP, FP, FN, TN of a file's test rows (rows >= train)."""
    if len(anomaly) != len(prediction):
        raise ValueError("outlier_counts: %d labels, %d predictions"
                         % (len(anomaly), len(prediction)))
    tp = fp = fn = tn = 0
    for a, p in zip(anomaly[train:], prediction[train:]):
        if a and p:
            tp += 1
        elif p:
            fp += 1
        elif a:
            fn += 1
        else:
            tn += 1
    return OutlierCounts(tp, fp, fn, tn)


def outlier_metrics(c):
    """(F1, FAR %, MAR %) of OutlierCounts c; each 0 when its denominator is 0."""
    d = 2 * c.tp + c.fp + c.fn
    f1 = 2 * c.tp / d if d else 0.0
    far = 100.0 * c.fp / (c.fp + c.tn) if c.fp + c.tn else 0.0
    mar = 100.0 * c.fn / (c.fn + c.tp) if c.fn + c.tp else 0.0
    return f1, far, mar


def cp_windows(times, changepoint, seconds=WINDOW_SECONDS):
    """The changepoint windows as (l, r) row pairs, one per true change point: from its
    row to the last row at most `seconds` after it, cut short before the next true
    change point's row (NAB's windows never overlap). times must increase (datetimes,
    or numbers of seconds)."""
    cps = [i for i in range(len(times)) if changepoint[i]]
    wins = []
    n = len(times)
    for k, i in enumerate(cps):
        end = times[i] + (datetime.timedelta(seconds=seconds)
                          if isinstance(times[i], datetime.datetime) else seconds)
        stop = cps[k + 1] - 1 if k + 1 < len(cps) else n - 1
        r = i
        while r < stop and times[r + 1] <= end:
            r += 1
        wins.append((i, r))
    return wins


def predicted_changepoints(prediction, train=TRAIN):
    """The predicted change points (0/1 per row): 0 on the training part; the first test
    row is its prediction; a later row is 1 when its prediction differs from the row
    before it."""
    n = len(prediction)
    out = [0] * n
    for i in range(train, n):
        if i == train:
            out[i] = 1 if prediction[i] else 0
        else:
            out[i] = 1 if bool(prediction[i]) != bool(prediction[i - 1]) else 0
    return out


def cpd_file(prediction, windows, profile, train=TRAIN):
    """One file's NAB FileScore for the change points of `prediction`."""
    cps = [float(x) for x in predicted_changepoints(prediction, train)]
    return nab_score.score_file(cps, windows, 0.5, profile, probation=train)


def scorable(windows, train=TRAIN):
    """The windows that count: those ending at or after the training part."""
    return [(l, r) for l, r in windows if r >= train]


def evaluate(files, train=TRAIN):
    """All figures for a list of (Bench, fused prediction).

    Returns a dict: "outlier" {tp, fp, fn, tn, f1, far, mar, test_rows}, "cpd" {standard,
    low_fp, low_fn: {raw, score, tp, fn, fp}, windows}, "files" {name: per-file
    counts}."""
    oc = OutlierCounts(0, 0, 0, 0)
    per = {}
    raws = {short: [] for _, short in CPD_NAMES}
    cpd_counts = {short: [0, 0, 0] for _, short in CPD_NAMES}
    n_windows = 0
    for bench, pred in files:
        c = outlier_counts(bench.anomaly, pred, train)
        oc = OutlierCounts(*(a + b for a, b in zip(oc, c)))
        wins = cp_windows(bench.times, bench.changepoint)
        nw = len(scorable(wins, train))
        n_windows += nw
        entry = {"test_rows": max(0, len(pred) - train), "tp": c.tp, "fp": c.fp,
                 "fn": c.fn, "tn": c.tn, "cp_windows": nw}
        for long_name, short in CPD_NAMES:
            fs = cpd_file(pred, wins, nab_score.PROFILE[long_name], train)
            raws[short].append(fs.score)
            for k, v in enumerate((fs.tp, fs.fn, fs.fp)):
                cpd_counts[short][k] += v
            if short == "standard":
                entry.update({"cp_raw": fs.score, "cp_tp": fs.tp, "cp_fn": fs.fn,
                              "cp_fp": fs.fp})
        per[bench.name] = entry
    f1, far, mar = outlier_metrics(oc)
    out = {"files_scored": len(per), "outlier": dict(oc._asdict(), f1=f1, far=far, mar=mar,
                                                     test_rows=sum(e["test_rows"]
                                                                   for e in per.values())),
           "cpd": {"windows": n_windows}, "files": per}
    for long_name, short in CPD_NAMES:
        raw = sum(raws[short])
        tp, fn, fp = cpd_counts[short]
        out["cpd"][short] = {"raw": raw, "tp": tp, "fn": fn, "fp": fp,
                             "score": nab_score.normalise(raw, n_windows,
                                                          nab_score.PROFILE[long_name])}
    return out


def load(results_dir, skab_dir, names, column="auto"):
    """Read the benchmark files `names` ("folder/N.csv") and their eight outputs each;
    returns ([(Bench, fused prediction)], the column read)."""
    files = []
    used = set()
    for name in names:
        bench = read_benchmark(os.path.join(skab_dir, "data", name), name)
        preds = []
        for s in SENSORS:
            path = os.path.join(results_dir, name[:-4], sensor_file(s))
            if not os.path.isfile(path):
                raise SkabError("%s: missing (the output for %s, sensor %s)"
                                % (path, name, s))
            col = choose_column(path, column)
            used.add(col)
            preds.append(read_prediction(path, bench, col))
        files.append((bench, fuse(preds)))
    if len(used) > 1:
        raise SkabError("%s: some outputs have column anomalous, some not: refusing to mix "
                        "(give --column)" % results_dir)
    return files, (used.pop() if used else column)


def format_report(res, column):
    o, c = res["outlier"], res["cpd"]
    L = ["SKAB scores on column %s (8 sensors OR-fused): %d files, %d test rows, "
         "%d changepoint windows" % (column, res["files_scored"], o["test_rows"],
                                     c["windows"]),
         "",
         "%-14s %6s %6s %6s %6s %4s %5s %8s" % ("file", "TP", "FP", "FN", "TN", "cpW",
                                                  "cpTP", "cpFP")]
    for name, e in res["files"].items():
        L.append("%-14s %6d %6d %6d %6d %4d %5d %8d" % (name, e["tp"], e["fp"], e["fn"],
                                                          e["tn"], e["cp_windows"],
                                                          e["cp_tp"], e["cp_fp"]))
    L.append("")
    L.append("outlier detection: F1 %.4f, FAR %.2f %%, MAR %.2f %% (TP %d, FP %d, FN %d, "
             "TN %d)" % (o["f1"], o["far"], o["mar"], o["tp"], o["fp"], o["fn"], o["tn"]))

    def fmt(x):
        return "n/a" if x is None else "%.2f" % x
    L.append("changepoint detection (NAB): standard %s, low FP %s, low FN %s (windows "
             "detected %d of %d, FP %d)" % (fmt(c["standard"]["score"]),
                                            fmt(c["low_fp"]["score"]),
                                            fmt(c["low_fn"]["score"]), c["standard"]["tp"],
                                            c["windows"], c["standard"]["fp"]))
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="skab_score.py",
                                 description="Score a detector on SKAB (outliers and "
                                             "changepoints).")
    ap.add_argument("results_dir", metavar="RESULTS_DIR",
                    help="holds <folder>/<N>/<sensor>.csv outputs")
    ap.add_argument("--skab-dir", metavar="DIR", default=None,
                    help="the benchmark (default: $SKAB_DIR, else ../shared/skab beside "
                         "the repository root)")
    ap.add_argument("--files", metavar="LIST", default=None,
                    help="comma-separated files to score, e.g. valve1/0.csv (default: all 34)")
    ap.add_argument("--column", default="auto", choices=("auto", "anomalous", "flag"),
                    help="the outputs' column to fuse (auto: anomalous if present, else flag)")
    ap.add_argument("--json", metavar="OUT", default=None,
                    help="also write the figures to OUT as JSON")
    args = ap.parse_args(argv)
    skab_dir = args.skab_dir or default_skab_dir()
    try:
        names = (benchmark_files(skab_dir) if args.files is None
                 else [n for n in args.files.split(",") if n])
        files, column = load(args.results_dir, skab_dir, names, args.column)
    except SkabError as e:
        print("skab_score.py: refused: %s" % e, file=sys.stderr)
        return 1
    res = evaluate(files)
    res["column"] = column
    sys.stdout.write(format_report(res, column))
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
                f.write("\n")
        except OSError as e:
            print("skab_score.py: cannot write %s: %s" % (args.json, e.strerror or e),
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
