#!/usr/bin/python3
"""mgab_score.py - score a detector's flags on MGAB, the Mackey-Glass anomaly benchmark.

    scripts/mgab_score.py RESULTS_DIR [--mgab-dir DIR] [--files 1.csv,3.csv,...]
                          [--rows N] [--column flag] [--json OUT]

RESULTS_DIR/<N>.csv is the detector's output for the benchmark file <N>.csv (anomalyctl
score's CSV: a header naming at least `timestamp` and the flag column, one row per
benchmark row, same order, the time step as the timestamp). The benchmark (DIR: --mgab-dir,
else $MGAB_DIR, else ../shared/mgab beside the repository root) has the header
`,value,is_anomaly,is_ignored`.

The scoring is the benchmark README's (../shared/mgab/README.md), per file:
  - an anomaly window is a run of consecutive rows with is_anomaly 1;
  - TP: a window with at least one flagged row; FN: a window with none;
  - FP: a flagged row outside every window and outside the ignored warm-up (is_ignored
    1), consecutive such rows counting once: each maximal run of them is one alarm.
    So a flagged run straddling a window's edge is a TP for the window and one FP for
    its part outside; one straddling the end of the warm-up is one FP for its part
    after it; flags inside the warm-up never count as FPs (they do count for a window,
    had the warm-up one).
Totals over the files (TP, FP, FN summed first), then precision = TP / (TP + FP),
recall = TP / (TP + FN), F1 their harmonic mean; each is 0 when its denominator is 0.
A row is flagged when its flag column is 1 (the column must hold 0 or 1).

--rows N scores the first N rows of each benchmark file only (the detector was run on
them: scripts/bench_detect --quick); a window cut at N still counts as a window.
Python 3 standard library only.

Importable: read_benchmark, read_flags, windows_of, score_flags, prf, totals,
score_files (used by scripts/bench_detect).

Exit status: 0 on success, 1 when a file is refused (the message says which and why),
2 on a usage error.
"""

import argparse
import csv
import json
import os
import sys
from collections import namedtuple


class MgabError(Exception):
    """A benchmark or results file is refused; the message says which and why."""


Bench = namedtuple("Bench", ["name", "steps", "anomaly", "ignored"])
"""One benchmark file: name "N.csv", its time steps (strings, column 1), is_anomaly and
is_ignored (bytearrays of 0/1)."""

Counts = namedtuple("Counts", ["tp", "fp", "fn", "windows", "flagged"])
"""One file's figures: windows detected, false alarms (runs), windows missed, windows,
flagged rows."""

Totals = namedtuple("Totals", ["files", "tp", "fp", "fn", "windows", "precision",
                               "recall", "f1"])


def default_mgab_dir():
    """$MGAB_DIR, else ../shared/mgab beside the repository root this script lives in."""
    env = os.environ.get("MGAB_DIR")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(root), "shared", "mgab")


def benchmark_files(mgab_dir):
    """The benchmark's data files (N.csv), in numeric order: 1.csv, 2.csv, ..., 10.csv."""
    try:
        names = [n for n in os.listdir(mgab_dir) if n.endswith(".csv")]
    except OSError as e:
        raise MgabError("%s: cannot list (is --mgab-dir / MGAB_DIR right?): %s"
                        % (mgab_dir, e.strerror or e))
    if not names:
        raise MgabError("%s: no .csv files" % mgab_dir)
    return sorted(names, key=lambda n: (len(n), n))


def _read_csv(path):
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise MgabError("%s: cannot read: %s" % (path, e.strerror or e))
    except (csv.Error, UnicodeDecodeError) as e:
        raise MgabError("%s: not a CSV file: %s" % (path, e))
    if not rows:
        raise MgabError("%s: empty file (no header)" % path)
    return [c.strip() for c in rows[0]], rows[1:]


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
    raise MgabError("%s: line %d: %s %r is not 0 or 1" % (path, line, name, text))


def read_benchmark(path, rows=None):
    """Read one benchmark file (its first `rows` rows when given). Returns a Bench."""
    header, body = _read_csv(path)
    try:
        acol = header.index("is_anomaly")
        icol = header.index("is_ignored")
    except ValueError:
        raise MgabError("%s: header %r lacks is_anomaly or is_ignored"
                        % (path, ",".join(header)))
    if rows is not None:
        if len(body) < rows:
            raise MgabError("%s: %d rows, fewer than the %d asked for"
                            % (path, len(body), rows))
        body = body[:rows]
    steps = []
    anomaly = bytearray(len(body))
    ignored = bytearray(len(body))
    ncol = max(acol, icol) + 1
    for i, r in enumerate(body):
        if len(r) < ncol:
            raise MgabError("%s: line %d has %d fields, expected at least %d"
                            % (path, i + 2, len(r), ncol))
        steps.append(r[0].strip())
        anomaly[i] = _bit(path, i + 2, "is_anomaly", r[acol])
        ignored[i] = _bit(path, i + 2, "is_ignored", r[icol])
    return Bench(os.path.basename(path), steps, anomaly, ignored)


def _same_step(a, b):
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def read_flags(path, bench, column="flag"):
    """Read a detector's output for a benchmark file and check it: same number of rows,
    the time steps as timestamps in the same order, the column 0 or 1. Returns a
    bytearray of the flags."""
    header, body = _read_csv(path)
    try:
        tcol = header.index("timestamp")
        fcol = header.index(column)
    except ValueError:
        raise MgabError("%s: header %r lacks a timestamp or %s column"
                        % (path, ",".join(header), column))
    if len(body) != len(bench.steps):
        raise MgabError("%s: %d rows, but the benchmark file %s has %d"
                        % (path, len(body), bench.name, len(bench.steps)))
    flags = bytearray(len(body))
    ncol = max(tcol, fcol) + 1
    for i, (r, step) in enumerate(zip(body, bench.steps)):
        if len(r) < ncol:
            raise MgabError("%s: line %d has %d fields, expected at least %d"
                            % (path, i + 2, len(r), ncol))
        if not _same_step(r[tcol].strip(), step):
            raise MgabError("%s: line %d: timestamp %r is not the benchmark's time step %r "
                            "(row %d of %s)" % (path, i + 2, r[tcol], step, i, bench.name))
        flags[i] = _bit(path, i + 2, column, r[fcol])
    return flags


def windows_of(anomaly):
    """The anomaly windows: (l, r) row pairs, inclusive, of each run of 1s."""
    out = []
    n = len(anomaly)
    i = 0
    while i < n:
        if anomaly[i]:
            j = i
            while j + 1 < n and anomaly[j + 1]:
                j += 1
            out.append((i, j))
            i = j + 1
        else:
            i += 1
    return out


def score_flags(flags, anomaly, ignored):
    """One file's Counts from its flags and labels (sequences of 0/1 of equal length)."""
    n = len(flags)
    if len(anomaly) != n or len(ignored) != n:
        raise ValueError("flags, anomaly and ignored differ in length: %d, %d, %d"
                         % (n, len(anomaly), len(ignored)))
    wins = windows_of(anomaly)
    tp = sum(1 for l, r in wins if any(flags[l:r + 1]))
    fp = 0
    in_run = False
    for i in range(n):
        false_alarm = flags[i] and not anomaly[i] and not ignored[i]
        if false_alarm and not in_run:
            fp += 1
        in_run = bool(false_alarm)
    return Counts(tp, fp, len(wins) - tp, len(wins), sum(1 for f in flags if f))


def prf(tp, fp, fn):
    """(precision, recall, F1), each 0.0 when its denominator is 0."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def totals(counts):
    """Totals of a sequence of Counts: sums first, then the ratios."""
    counts = list(counts)
    tp = sum(c.tp for c in counts)
    fp = sum(c.fp for c in counts)
    fn = sum(c.fn for c in counts)
    p, r, f1 = prf(tp, fp, fn)
    return Totals(len(counts), tp, fp, fn, sum(c.windows for c in counts), p, r, f1)


def score_files(pairs, column="flag", rows=None):
    """Score (benchmark path, output path) pairs. Returns ({name: Counts}, Totals)."""
    per = {}
    for bench_path, out_path in pairs:
        b = read_benchmark(bench_path, rows)
        per[b.name] = score_flags(read_flags(out_path, b, column), b.anomaly, b.ignored)
    return per, totals(per.values())


def format_report(per, tot, column="flag"):
    L = ["MGAB scores on column %s: %d files, %d windows" % (column, tot.files, tot.windows),
         "",
         "%-10s %8s %5s %5s %5s %8s" % ("file", "windows", "TP", "FP", "FN", "flagged")]
    for name, c in per.items():
        L.append("%-10s %8d %5d %5d %5d %8d" % (name, c.windows, c.tp, c.fp, c.fn, c.flagged))
    L.append("")
    L.append("totals: TP %d, FP %d, FN %d; precision %.4f, recall %.4f, F1 %.4f"
             % (tot.tp, tot.fp, tot.fn, tot.precision, tot.recall, tot.f1))
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mgab_score.py",
                                 description="Score a detector's flags on MGAB.")
    ap.add_argument("results_dir", metavar="RESULTS_DIR", help="holds <N>.csv outputs")
    ap.add_argument("--mgab-dir", metavar="DIR", default=None,
                    help="the benchmark (default: $MGAB_DIR, else ../shared/mgab beside "
                         "the repository root)")
    ap.add_argument("--files", metavar="LIST", default=None,
                    help="comma-separated benchmark files to score (default: all)")
    ap.add_argument("--rows", metavar="N", type=int, default=None,
                    help="score the first N rows of each file only")
    ap.add_argument("--column", default="flag", help="the output's flag column (flag)")
    ap.add_argument("--json", metavar="OUT", default=None,
                    help="also write the figures to OUT as JSON")
    args = ap.parse_args(argv)
    if args.rows is not None and args.rows < 0:
        ap.error("--rows wants a number >= 0")
    mgab_dir = args.mgab_dir or default_mgab_dir()
    try:
        names = (benchmark_files(mgab_dir) if args.files is None
                 else [n for n in args.files.split(",") if n])
        missing = [n for n in names
                   if not os.path.isfile(os.path.join(args.results_dir, n))]
        if missing:
            raise MgabError("%s: no output for %s" % (args.results_dir, ", ".join(missing)))
        per, tot = score_files([(os.path.join(mgab_dir, n), os.path.join(args.results_dir, n))
                                for n in names], args.column, args.rows)
    except MgabError as e:
        print("mgab_score.py: refused: %s" % e, file=sys.stderr)
        return 1
    sys.stdout.write(format_report(per, tot, args.column))
    if args.json:
        doc = {"column": args.column, "rows": args.rows,
               "files": {n: c._asdict() for n, c in per.items()}, "totals": tot._asdict()}
        try:
            with open(args.json, "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
        except OSError as e:
            print("mgab_score.py: cannot write %s: %s" % (args.json, e.strerror or e),
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
