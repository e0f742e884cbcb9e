#!/usr/bin/python3
"""nab_score.py - score NAB-format results files with the NAB v1.1 scorer.

    scripts/nab_score.py RESULTS_DIR [--nab-dir DIR] [--detector NAME] [--json OUT]

RESULTS_DIR holds one results file per data file, laid out as NAB does:
RESULTS_DIR/<category>/<detector>_<file>.csv, with a header naming at least `timestamp` and
`anomaly_score` (NAB writes `timestamp,value,anomaly_score,label`) and the same rows in the
same order as the data file. The label column is ignored: windows come from
labels/combined_windows.json of the corpus (DIR: --nab-dir, else $NAB_DIR, else
../shared/nab beside the repository root).

The scoring is NAB v1.1's, as the corpus README specifies it (see score_file() for the
rules). For each profile one global threshold is chosen over every distinct score of the
scored rows, plus 1.1 ("detect nothing"), by a single O(N log N) sweep (sweep()); the raw
score is normalised so that the null detector scores 0 and the perfect detector 100.
Python 3 standard library only: this runs where numpy does not.

Importable: scaled_sigmoid, probation_length, score_file, sweep, best_threshold,
normalise, load_corpus, load_results, evaluate, convert_raw (used by scripts/nab).

Exit status: 0 on success, 1 when a results file or the corpus is refused (the message
says which and why), 2 on a usage error.
"""

import argparse
import csv
import datetime
import json
import math
import os
import sys
from collections import namedtuple

Profile = namedtuple("Profile", ["name", "tp", "fp", "fn"])

#: The three NAB v1.1 profiles: (tp, fp, fn) weights.
PROFILES = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)
PROFILE = {p.name: p for p in PROFILES}

#: The threshold that detects nothing (every score is <= 1).
NO_DETECTION = 1.1

#: Two thresholds whose raw scores differ by less than this are a tie (the running sums of
#: the sweep and a from-scratch sum round differently); ties go to the higher threshold,
#: as NAB's stable sort of the threshold list does.
TIE_TOLERANCE = 1e-9

FileScore = namedtuple("FileScore", ["score", "tp", "fn", "fp"])
"""One file at one threshold: raw score, windows detected, windows missed, false positives."""


class NabError(Exception):
    """A results file or the corpus is refused; the message says which and why."""


# ---------------------------------------------------------------------------------------
# The scoring rules


def scaled_sigmoid(x):
    """NAB's scaled sigmoid: 2 / (1 + exp(5x)) - 1, and -1 for x > 3.

    sig(-1) = 0.98661 (earliest detection in a window), sig(0) = 0, sig(x) -> -1 as x grows.
    """
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n):
    """Rows at the start of an n-row file that are never scored: min(floor(0.15 n), 750)."""
    return min(math.floor(0.15 * n), 750)


def tp_reward(l, r, i):
    """Unit reward (tp weight 1) of a first detection at row i of window [l, r]."""
    w = r - l + 1
    return scaled_sigmoid(-(r - i + 1) / w) / MAX_TP


def fp_unit_cost(prev, i):
    """Unit cost (fp weight 1, a number in [-1, 0]) of a false positive at row i.

    prev is the most recent window (l', r') ending before i, or None: then -1. Otherwise
    sig(|r' - i| / (w' - 1)), w' = r' - l' + 1. A window of width 1 would divide by zero
    in NAB; here it counts as infinitely far, -1 (the corpus has no such window).
    """
    if prev is None:
        return -1.0
    l, r = prev
    if r == l:
        return -1.0
    return scaled_sigmoid(abs(r - i) / (r - l))


def check_windows(n, windows, what="file"):
    """Raise NabError unless windows are (l, r) row pairs, 0 <= l <= r < n, in order,
    not overlapping."""
    prev_r = -1
    for l, r in windows:
        if not (0 <= l <= r < n):
            raise NabError("%s: window rows [%d, %d] outside 0..%d" % (what, l, r, n - 1))
        if l <= prev_r:
            raise NabError("%s: window [%d, %d] overlaps or precedes the one before it"
                           % (what, l, r))
        prev_r = r


def scorable_windows(n, windows):
    """The windows that count: those ending at or after the probationary period.

    (The corpus drops windows inside the probationary period already; NAB ignores any
    that remain, since none of their rows is scored.)"""
    p = probation_length(n)
    return [(l, r) for l, r in windows if r >= p]


def score_file(scores, windows, threshold, profile, probation=None):
    """Score one file at one threshold, literally as NAB v1.1 does, row by row.

    scores: the anomaly scores, one per row; windows: (l, r) row indices, inclusive,
    sorted, not overlapping; profile: a Profile (or anything with .tp, .fp, .fn).
    Rows i < p are ignored, p = probation_length(len(scores)) unless `probation` gives
    it (scripts/skab_score.py: SKAB's 400-row training part), and windows ending
    before p neither count nor cost. Row i is a detection when
    scores[i] >= threshold. Within a window only the first detection counts, earning
    tp * sig(-(r - i + 1) / w) / sig(-1); a window without one costs -fn; a detection
    outside every window costs fp * fp_unit_cost(previous window, i).
    Returns a FileScore(score, tp, fn, fp) with tp/fn counted in windows, fp in rows.
    """
    n = len(scores)
    check_windows(n, windows)
    p = probation_length(n) if probation is None else probation
    total = 0.0
    tp = fn = fp = 0
    nxt = 0          # index of the next window to enter
    cur = None       # the window row i is in
    prev = None      # the most recent window that ended before row i
    found = False    # cur already has its detection
    for i in range(n):
        if cur is None and nxt < len(windows) and windows[nxt][0] == i:
            cur = windows[nxt]
            nxt += 1
            found = False
        if i >= p and scores[i] >= threshold:
            if cur is not None:
                if not found:
                    found = True
                    tp += 1
                    total += profile.tp * tp_reward(cur[0], cur[1], i)
            else:
                fp += 1
                total += profile.fp * fp_unit_cost(prev, i)
        if cur is not None and cur[1] == i:
            if not found and cur[1] >= p:
                fn += 1
                total -= profile.fn
            prev = cur
            cur = None
    return FileScore(total, tp, fn, fp)


def normalise(raw, n_windows, profile):
    """100 * (raw - null) / (perfect - null): null = -n_windows * fn (nothing detected),
    perfect = n_windows * tp (every window detected at its first row). None when the
    corpus has no window (null == perfect)."""
    null = -n_windows * profile.fn
    perfect = n_windows * profile.tp
    if perfect == null:
        return None
    return 100.0 * (raw - null) / (perfect - null)


# ---------------------------------------------------------------------------------------
# The threshold sweep

Sweep = namedtuple("Sweep", ["thresholds", "reward", "detected", "fp_cost", "fp",
                             "n_windows"])
"""The corpus at every candidate threshold, in decreasing threshold order.

thresholds[k]: 1.1, then every distinct score of the scored rows, decreasing;
reward[k]: sum of the unit rewards of the detected windows' first detections;
detected[k]: windows detected; fp_cost[k]: sum of unit FP costs (<= 0); fp[k]: FP rows;
n_windows: the scorable windows. A profile's raw score at k is
tp * reward + fp * fp_cost - fn * (n_windows - detected) (raw_at()).
"""


def raw_at(sw, k, profile):
    """The corpus raw score of sweep sw at its k-th threshold under profile."""
    return (profile.tp * sw.reward[k] + profile.fp * sw.fp_cost[k]
            - profile.fn * (sw.n_windows - sw.detected[k]))


def sweep(files):
    """Raw-score components at every candidate threshold of a corpus, in O(N log N).

    files: a sequence of (scores, windows) as score_file() takes them. The scored rows of
    every file are sorted by score, descending, and added a group of equal scores at a
    time; each window keeps its earliest detection so far (its reward is the largest, the
    reward decreasing along the window), the false-positive costs add up. One sweep
    serves every profile, since the weights only scale its components. Returns a Sweep.
    """
    sc = []      # score of each scored row
    wid = []     # its window number in the corpus, or -1 outside every window
    unit = []    # in a window: unit reward if first; outside: unit FP cost
    pos = []     # row index (orders detections inside a window)
    n_windows = 0
    for scores, windows in files:
        n = len(scores)
        check_windows(n, windows)
        p = probation_length(n)
        prev = None
        i = p
        # Windows ending before p still set `prev` for the FPs after them.
        for l, r in windows:
            if r < p:
                prev = (l, r)
        for l, r in scorable_windows(n, windows):
            while i < l:
                sc.append(scores[i]); wid.append(-1)
                unit.append(fp_unit_cost(prev, i)); pos.append(i)
                i += 1
            w = n_windows
            n_windows += 1
            while i <= r:
                sc.append(scores[i]); wid.append(w)
                unit.append(tp_reward(l, r, i)); pos.append(i)
                i += 1
            prev = (l, r)
        while i < n:
            sc.append(scores[i]); wid.append(-1)
            unit.append(fp_unit_cost(prev, i)); pos.append(i)
            i += 1

    order = sorted(range(len(sc)), key=sc.__getitem__, reverse=True)
    first = [-1] * n_windows   # row position of each window's earliest detection so far
    first_unit = [0.0] * n_windows
    reward = fp_cost = 0.0
    detected = fp = 0
    out = Sweep([NO_DETECTION], [0.0], [0], [0.0], [0], n_windows)
    j, total = 0, len(order)
    while j < total:
        s = sc[order[j]]
        while j < total and sc[order[j]] == s:
            k = order[j]
            w = wid[k]
            if w < 0:
                fp += 1
                fp_cost += unit[k]
            elif first[w] < 0:
                first[w] = pos[k]
                first_unit[w] = unit[k]
                detected += 1
                reward += unit[k]
            elif pos[k] < first[w]:
                reward += unit[k] - first_unit[w]
                first[w] = pos[k]
                first_unit[w] = unit[k]
            j += 1
        out.thresholds.append(s)
        out.reward.append(reward)
        out.detected.append(detected)
        out.fp_cost.append(fp_cost)
        out.fp.append(fp)
    return out


def best_threshold(sw, profile):
    """The threshold of sweep sw that maximises the profile's raw score, and that score.

    Ties (within TIE_TOLERANCE) go to the highest threshold. Returns (threshold, raw)."""
    raws = [raw_at(sw, k, profile) for k in range(len(sw.thresholds))]
    top = max(raws)
    for k, raw in enumerate(raws):
        if raw >= top - TIE_TOLERANCE * max(1.0, abs(top)):
            return sw.thresholds[k], raw
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------
# Reading the corpus and the results

DataFile = namedtuple("DataFile", ["name", "category", "base", "path", "timestamps",
                                   "values", "windows"])
"""One corpus file: name "category/file.csv", its rows' timestamp and value strings, its
windows as (l, r) row indices."""


def default_nab_dir():
    """$NAB_DIR, else ../shared/nab beside the repository root this script lives in."""
    env = os.environ.get("NAB_DIR")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(root), "shared", "nab")


def _parse_ts(s):
    """A timestamp string as a naive UTC datetime (ISO form, or Unix seconds), or None."""
    s = s.strip()
    try:
        t = datetime.datetime.fromisoformat(s)
        if t.tzinfo is not None:
            t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return t
    except ValueError:
        pass
    try:
        x = float(s)
        if not math.isfinite(x):
            return None
        return datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=x)
    except (ValueError, OverflowError):
        return None


def same_timestamp(a, b):
    """True when two timestamp strings name the same instant: equal strings, or equal once
    parsed (a ".ffffff" fraction, a "T" separator or Unix seconds are all accepted)."""
    if a == b:
        return True
    ta, tb = _parse_ts(a), _parse_ts(b)
    return ta is not None and ta == tb


def _read_csv(path):
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise NabError("%s: cannot read: %s" % (path, e.strerror or e))
    except (csv.Error, UnicodeDecodeError) as e:
        raise NabError("%s: not a CSV file: %s" % (path, e))
    if not rows:
        raise NabError("%s: empty file (no header)" % path)
    return [c.strip() for c in rows[0]], rows[1:]


def _bound_row(df_name, ts, index, bound):
    """The row index of a window bound (first row with that timestamp)."""
    if bound in index:
        return index[bound]
    if "." in bound:
        head, frac = bound.rsplit(".", 1)
        if frac.strip("0") == "" and head in index:
            return index[head]
    t = _parse_ts(bound)
    if t is not None:
        for i, s in enumerate(ts):
            if _parse_ts(s) == t:
                return i
    raise NabError("%s: window bound %r is not a timestamp of the data file" % (df_name, bound))


def load_corpus(nab_dir):
    """Read every data file named in labels/combined_windows.json, with its windows
    mapped to row indices. Returns a list of DataFile sorted by name."""
    wpath = os.path.join(nab_dir, "labels", "combined_windows.json")
    try:
        with open(wpath) as f:
            labels = json.load(f)
    except OSError as e:
        raise NabError("%s: cannot read (is --nab-dir / NAB_DIR right?): %s"
                       % (wpath, e.strerror or e))
    except ValueError as e:
        raise NabError("%s: not JSON: %s" % (wpath, e))
    corpus = []
    for name in sorted(labels):
        path = os.path.join(nab_dir, "data", name)
        header, rows = _read_csv(path)
        if header[:2] != ["timestamp", "value"]:
            raise NabError("%s: header is %r, expected timestamp,value" % (path, header))
        ts = [r[0].strip() for r in rows]
        vals = [r[1].strip() if len(r) > 1 else "" for r in rows]
        index = {}
        for i, s in enumerate(ts):
            index.setdefault(s, i)
        windows = []
        for bounds in labels[name]:
            l = _bound_row(name, ts, index, bounds[0])
            r = _bound_row(name, ts, index, bounds[1])
            windows.append((l, r))
        check_windows(len(ts), windows, name)
        cat, base = name.split("/", 1)
        corpus.append(DataFile(name, cat, base, path, ts, vals, windows))
    if not corpus:
        raise NabError("%s: names no data file" % wpath)
    return corpus


def find_detector(results_dir, corpus):
    """The one detector name with results files in results_dir (<cat>/<det>_<file>)."""
    names = set()
    for df in corpus:
        d = os.path.join(results_dir, df.category)
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        suffix = "_" + df.base
        names.update(e[:-len(suffix)] for e in entries
                     if e.endswith(suffix) and len(e) > len(suffix))
    if not names:
        raise NabError("%s: no results files (<category>/<detector>_<file>.csv) found"
                       % results_dir)
    if len(names) > 1:
        raise NabError("%s: results of several detectors (%s): choose one with --detector"
                       % (results_dir, ", ".join(sorted(names))))
    return names.pop()


def results_path(results_dir, detector, df):
    return os.path.join(results_dir, df.category, "%s_%s" % (detector, df.base))


def read_scores(path, df, column="anomaly_score"):
    """Read one results file and check it against its data file: same number of rows,
    same timestamps in the same order, every anomaly_score a number in [0, 1].
    Returns the scores as floats. `column` names another column to read as the score
    (scripts/bench_detect scores anomalyctl's 0/1 `flag`)."""
    header, rows = _read_csv(path)
    try:
        tcol = header.index("timestamp")
        scol = header.index(column)
    except ValueError:
        raise NabError("%s: header %r lacks a timestamp or %s column"
                       % (path, ",".join(header), column))
    if len(rows) != len(df.timestamps):
        raise NabError("%s: %d rows, but the data file %s has %d"
                       % (path, len(rows), df.name, len(df.timestamps)))
    scores = []
    ncol = max(tcol, scol) + 1
    for i, (row, ts) in enumerate(zip(rows, df.timestamps)):
        if len(row) < ncol:
            raise NabError("%s: line %d has %d fields, expected at least %d"
                           % (path, i + 2, len(row), ncol))
        if not same_timestamp(row[tcol].strip(), ts):
            raise NabError("%s: line %d: timestamp %r does not match the data file's %r "
                           "(row %d of %s)" % (path, i + 2, row[tcol], ts, i, df.name))
        text = row[scol]
        try:
            s = float(text)
        except ValueError:
            raise NabError("%s: line %d: %s %r is not a number"
                           % (path, i + 2, column, text))
        if not (0.0 <= s <= 1.0):  # also refuses NaN
            raise NabError("%s: line %d: %s %r is outside [0, 1]"
                           % (path, i + 2, column, text))
        scores.append(s)
    return scores


def load_results(results_dir, corpus, detector):
    """Every file's scores, {name: [float]}; refuses missing or malformed files (all the
    missing ones are named at once)."""
    missing = [results_path(results_dir, detector, df) for df in corpus
               if not os.path.isfile(results_path(results_dir, detector, df))]
    if missing:
        more = "" if len(missing) <= 10 else " (and %d more)" % (len(missing) - 10)
        raise NabError("%d of %d results files missing for detector %r: %s%s"
                       % (len(missing), len(corpus), detector, ", ".join(missing[:10]), more))
    return {df.name: read_scores(results_path(results_dir, detector, df), df)
            for df in corpus}


# ---------------------------------------------------------------------------------------
# Evaluation and report


def evaluate(corpus, scores):
    """All figures for a corpus (list of DataFile) and its scores ({name: [float]}).

    Returns a dict: "profiles" {name: threshold, raw, normalised, null, perfect, tp, fn,
    fp}, "categories" and "files" at the standard threshold, "totals". The sweep picks
    the thresholds; the figures reported are then recomputed file by file with
    score_file(), and must agree with the sweep."""
    files = [(scores[df.name], df.windows) for df in corpus]
    sw = sweep(files)
    n_windows = sw.n_windows
    out = {"files_scored": len(corpus), "rows": sum(len(df.timestamps) for df in corpus),
           "windows": n_windows, "profiles": {}, "categories": {}, "files": {}}
    per_file_std = None
    for prof in PROFILES:
        th, raw_sweep = best_threshold(sw, prof)
        fs = [score_file(s, w, th, prof) for s, w in files]
        raw = math.fsum(f.score for f in fs)
        if abs(raw - raw_sweep) > 1e-6 * max(1.0, abs(raw)):
            raise AssertionError("sweep and file-by-file scores disagree for %s at %r: "
                                 "%r vs %r" % (prof.name, th, raw_sweep, raw))
        out["profiles"][prof.name] = {
            "threshold": th, "raw": raw, "normalised": normalise(raw, n_windows, prof),
            "null": -n_windows * prof.fn, "perfect": n_windows * prof.tp,
            "weights": {"tp": prof.tp, "fp": prof.fp, "fn": prof.fn},
            "tp": sum(f.tp for f in fs), "fn": sum(f.fn for f in fs),
            "fp": sum(f.fp for f in fs)}
        if prof.name == "standard":
            per_file_std = fs
    std = PROFILE["standard"]
    cats = {}
    for df, fsc in zip(corpus, per_file_std):
        nw = len(scorable_windows(len(df.timestamps), df.windows))
        out["files"][df.name] = {"raw": fsc.score, "windows": nw, "tp": fsc.tp,
                                 "fn": fsc.fn, "fp": fsc.fp}
        c = cats.setdefault(df.category, {"files": 0, "rows": 0, "windows": 0, "parts": [],
                                          "tp": 0, "fn": 0, "fp": 0})
        c["files"] += 1
        c["rows"] += len(df.timestamps)
        c["windows"] += nw
        c["parts"].append(fsc.score)
        c["tp"] += fsc.tp
        c["fn"] += fsc.fn
        c["fp"] += fsc.fp
    for name, c in sorted(cats.items()):
        c["raw"] = math.fsum(c.pop("parts"))
        c["normalised"] = normalise(c["raw"], c["windows"], std)
        out["categories"][name] = c
    s = out["profiles"]["standard"]
    out["totals"] = {"threshold": s["threshold"], "tp": s["tp"], "fp": s["fp"],
                     "fn": s["fn"], "windows": n_windows}
    return out


def _fmt_norm(x):
    return "n/a" if x is None else "%.2f" % x


def format_report(res, detector=None):
    """The human-readable tables of evaluate()'s result."""
    L = []
    L.append("NAB v1.1 scores%s: %d files, %d rows, %d windows"
             % (" of " + detector if detector else "", res["files_scored"], res["rows"],
                res["windows"]))
    L.append("")
    L.append("%-20s %-14s %10s %10s %5s %6s %5s"
             % ("profile", "threshold", "raw", "score", "TP", "FP", "FN"))
    for name, p in res["profiles"].items():
        L.append("%-20s %-14.12g %10.3f %10s %5d %6d %5d"
                 % (name, p["threshold"], p["raw"], _fmt_norm(p["normalised"]),
                    p["tp"], p["fp"], p["fn"]))
    L.append("(score = 100 * (raw - null) / (perfect - null); TP, FN in windows, FP in rows)")
    L.append("")
    th = res["profiles"]["standard"]["threshold"]
    L.append("per category, at the standard threshold %.12g:" % th)
    L.append("%-22s %5s %8s %10s %6s %5s %10s %8s"
             % ("category", "files", "rows", "TP/windows", "FP", "FN", "raw", "score"))
    for name, c in res["categories"].items():
        L.append("%-22s %5d %8d %10s %6d %5d %10.3f %8s"
                 % (name, c["files"], c["rows"], "%d/%d" % (c["tp"], c["windows"]),
                    c["fp"], c["fn"], c["raw"], _fmt_norm(c["normalised"])))
    L.append("(a category's score: its raw standard score normalised by its own null and "
             "perfect scores)")
    L.append("")
    t = res["totals"]
    L.append("totals at the standard threshold: TP %d/%d windows, FP %d rows, FN %d windows"
             % (t["tp"], t["windows"], t["fp"], t["fn"]))
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------------------
# Conversion of anomalyctl output (used by scripts/nab)


def convert_raw(raw_path, df, out_path):
    """Turn one `anomalyctl score` output (CSV with timestamp, value, anomaly_score, ...)
    into a NAB results file timestamp,value,anomaly_score,label (label 1 inside a window),
    after the same checks as read_scores(). The data file's timestamps and values are
    written."""
    scores = read_scores(raw_path, df)
    inside = bytearray(len(scores))
    for l, r in df.windows:
        inside[l:r + 1] = b"\x01" * (r - l + 1)
    tmp = out_path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score", "label"])
        for t, v, s, lab in zip(df.timestamps, df.values, scores, inside):
            w.writerow([t, v, repr(s), lab])
    os.replace(tmp, out_path)


def convert_all(raw_dir, out_dir, nab_dir, detector):
    """convert_raw() for every corpus file: raw_dir/<cat>/<file>.csv ->
    out_dir/<cat>/<detector>_<file>.csv."""
    corpus = load_corpus(nab_dir)
    for df in corpus:
        raw = os.path.join(raw_dir, df.name)
        if not os.path.isfile(raw):
            raise NabError("%s: missing (its scorer run failed?)" % raw)
        dst = results_path(out_dir, detector, df)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        convert_raw(raw, df, dst)


# ---------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="nab_score.py",
        description="Score NAB-format results files (NAB v1.1 scoring, three profiles).")
    ap.add_argument("results_dir", metavar="RESULTS_DIR",
                    help="holds <category>/<detector>_<file>.csv")
    ap.add_argument("--nab-dir", metavar="DIR", default=None,
                    help="the NAB corpus (default: $NAB_DIR, else ../shared/nab beside "
                         "the repository root)")
    ap.add_argument("--detector", metavar="NAME", default=None,
                    help="detector name in the file names (default: the only one present)")
    ap.add_argument("--json", metavar="OUT", default=None,
                    help="also write the figures to OUT as JSON")
    args = ap.parse_args(argv)
    nab_dir = args.nab_dir or default_nab_dir()
    try:
        if not os.path.isdir(args.results_dir):
            raise NabError("%s: not a directory" % args.results_dir)
        corpus = load_corpus(nab_dir)
        detector = args.detector or find_detector(args.results_dir, corpus)
        scores = load_results(args.results_dir, corpus, detector)
    except NabError as e:
        print("nab_score.py: refused: %s" % e, file=sys.stderr)
        return 1
    res = evaluate(corpus, scores)
    res["detector"] = detector
    res["nab_dir"] = os.path.abspath(nab_dir)
    res["results_dir"] = os.path.abspath(args.results_dir)
    sys.stdout.write(format_report(res, detector))
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
                f.write("\n")
        except OSError as e:
            print("nab_score.py: cannot write %s: %s" % (args.json, e.strerror or e),
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
