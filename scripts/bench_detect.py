#!/usr/bin/python3
"""bench_detect.py - the detection suite: NAB, MGAB and SKAB with one detector configuration.

    scripts/bench_detect [--quick] [--half odd|even|all] [--jobs N] [--out DIR]
                         [-- DETECTOR-ARGS...]

Runs `anomalyctl score DETECTOR-ARGS FILE` over the three labelled benchmarks in ../shared
(no arguments after `--`, or no `--`: no detector options, the defaults), scores them with
the project's scorers and prints a table, then exactly these three lines:

  bench_detect nab standard=S low_fp=S low_fn=S
  bench_detect mgab f1=F precision=P recall=R tp=N fp=N fn=N
  bench_detect skab f1=F far=PCT mar=PCT cpd_standard=S cpd_low_fp=S cpd_low_fn=S

  - NAB (58 files): each file as it is, scored on the output's `flag` (0/1) with NAB v1.1's
    rules (scripts/nab_score.py's score_file and normalise), the flags being the
    detections: no threshold is chosen (NAB's sweep could only choose between the flags,
    nothing and everything, and would floor a bad run at 0, the null detector's score),
    so a score below 0 means the flags cost more than they find. The table also gives
    NAB on `anomaly_score` with NAB's threshold sweep, as scripts/nab scores it, for
    comparison (the figures of `OPENBLAS_NUM_THREADS=1 scripts/nab -- ARGS`).
  - MGAB (10 files of 100,000 values): each file as `timestamp,value` with the time step
    as seconds, scored on `flag` by scripts/mgab_score.py.
  - SKAB (the 34 labelled files): each of the 8 sensors of a file scored on its own with
    SKAB's protocol appended to the arguments (`--train-after 400 --train-every 0`: first
    training after the 400-row training part, none after it), the sensors' `anomalous`
    (when anomalyctl writes that column, else `flag`; the table says which) OR-fused per
    row, scored by scripts/skab_score.py: outliers on the pooled test rows (F1, FAR,
    MAR), change points with NAB's rules.

All the detector runs (58 + 10 + 34 x 8) go through one pool of --jobs processes
(default: the number of cores), biggest input first, each with OPENBLAS_NUM_THREADS=1
(as the daemon's systemd unit runs it; OpenBLAS's threads change the rounding, so the
figures would otherwise depend on the machine's core count). Halves: the odd half is the 1st,
3rd, 5th, ... file of each NAB category (sorted by name), of MGAB (1, 3, 5, 7, 9) and of
each SKAB folder (valve1, valve2, other, files in numeric order); the even half the
others. --half odd|even runs one half only; by default every file runs and the table
gives the odd half, the even half and all (each scored on its own: NAB chooses its
threshold per half); the three lines give --half's figures (all by default).

--quick: a smoke run on a subset, labelled QUICK in the table: the first two files of
each NAB category and SKAB folder, MGAB 1.csv and 2.csv cut to their first 50,000 rows.

Outputs (OUT: --out, default build/bench_detect/full, or build/bench_detect/quick):
OUT/run.txt (the run's parameters), OUT/summary.txt (the table and the three lines),
OUT/scores.json (every figure), OUT/<bench>/raw/... (anomalyctl's output per file, per
sensor for SKAB), OUT/<bench>/logs/... (its stderr), OUT/mgab/input, OUT/skab/input (the
`timestamp,value` files made from the benchmarks).

Environment: NAB_DIR, MGAB_DIR, SKAB_DIR (the benchmarks; default ../shared/{nab,mgab,
skab} beside the repository root); ANOMALYCTL (a scorer to run instead of building
build/release/daemon/anomalyctl: any program taking `score [ARGS...] FILE` and printing
anomalyctl's CSV), as for scripts/nab.

Exit status: 0 on success, 1 when a detector run fails or an output is refused (the
message says which), 2 on a usage error.
"""

import argparse
import concurrent.futures
import csv
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import mgab_score  # noqa: E402
import nab_score  # noqa: E402
import skab_score  # noqa: E402

#: SKAB's protocol, appended to the detector arguments for its runs.
SKAB_PROTOCOL = ["--train-after", str(skab_score.TRAIN), "--train-every", "0"]

#: --quick: files per NAB category and SKAB folder, MGAB files and rows.
QUICK_PER_GROUP = 2
QUICK_MGAB_FILES = 2
QUICK_MGAB_ROWS = 50000

HALVES = ("odd", "even", "all")

NAB_PROFILES = (("standard", "standard"), ("reward_low_FP_rate", "low_fp"),
                ("reward_low_FN_rate", "low_fn"))


class BenchError(Exception):
    """Something the suite cannot go on with; the message says what."""


def say(*a):
    print(*a, flush=True)


def shared_dir(env, name):
    d = os.environ.get(env) or os.path.join(os.path.dirname(ROOT), "shared", name)
    return os.path.abspath(d)


def half_of(position):
    """'odd' for the 1st, 3rd, ... (position 0, 2, ...), 'even' for the others."""
    return "odd" if position % 2 == 0 else "even"


# ---------------------------------------------------------------------------------------
# Selection


class Selected:
    """The files of one run: per benchmark, (name, half) pairs, and what they need."""

    def __init__(self):
        self.nab = []        # (DataFile, half)
        self.mgab = []       # (name, half)
        self.skab = []       # (name, half)
        self.mgab_rows = None   # --quick: cut MGAB files to this many rows
        self.mgab_len = {}      # name: rows run and scored
        self.halves = HALVES    # the halves reported: odd, even, all; or --half's


def select(nab_dir, mgab_dir, skab_dir, quick, half):
    sel = Selected()
    corpus = nab_score.load_corpus(nab_dir)
    pos = {}
    for df in corpus:                       # sorted by name: by category, then file
        k = pos.get(df.category, 0)
        pos[df.category] = k + 1
        if quick and k >= QUICK_PER_GROUP:
            continue
        sel.nab.append((df, half_of(k)))
    names = mgab_score.benchmark_files(mgab_dir)
    if quick:
        names = names[:QUICK_MGAB_FILES]
        sel.mgab_rows = QUICK_MGAB_ROWS
    sel.mgab = [(n, half_of(k)) for k, n in enumerate(names)]
    pos = {}
    for n in skab_score.benchmark_files(skab_dir):   # folder by folder, numeric order
        folder = n.split("/", 1)[0]
        k = pos.get(folder, 0)
        pos[folder] = k + 1
        if quick and k >= QUICK_PER_GROUP:
            continue
        sel.skab.append((n, half_of(k)))
    if half != "all":
        sel.halves = (half,)
        sel.nab = [x for x in sel.nab if x[1] == half]
        sel.mgab = [x for x in sel.mgab if x[1] == half]
        sel.skab = [x for x in sel.skab if x[1] == half]
    return sel


# ---------------------------------------------------------------------------------------
# Inputs and jobs


def write_csv(path, rows):
    """Write `timestamp,value` rows to path (atomically)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        f.write("timestamp,value\n")
        for t, v in rows:
            f.write("%s,%s\n" % (t, v))
    os.replace(tmp, path)


def mgab_input(mgab_dir, name, rows, dst):
    """MGAB's CSV as `timestamp,value`: the time step as seconds, the value as given; at
    most `rows` rows when given. Returns the number of rows written."""
    with open(os.path.join(mgab_dir, name), newline="") as f:
        r = csv.reader(f)
        header = [c.strip() for c in next(r)]
        try:
            vcol = header.index("value")
        except ValueError:
            raise BenchError("%s/%s: no value column" % (mgab_dir, name))
        out = []
        for row in r:
            if rows is not None and len(out) >= rows:
                break
            out.append((row[0].strip(), row[vcol].strip()))
    write_csv(dst, out)
    return len(out)


def skab_inputs(bench, dst_dir):
    """One `timestamp,value` file per sensor of a SKAB file."""
    for s in skab_score.SENSORS:
        write_csv(os.path.join(dst_dir, skab_score.sensor_file(s)),
                  zip(bench.timestamps, bench.sensors[s]))


class Job:
    __slots__ = ("bench", "name", "src", "dst", "log", "args", "size", "group")

    def __init__(self, bench, name, src, dst, log, args, group):
        self.bench, self.name, self.src, self.dst, self.log = bench, name, src, dst, log
        self.args, self.group = args, group
        self.size = os.path.getsize(src)


def run_jobs(ctl, jobs, n_parallel, env):
    """Run every job through one pool of n_parallel processes, biggest input first.
    Prints a line per NAB and MGAB file and per SKAB file (its 8 sensors). Returns the
    failed jobs with their exit status."""
    jobs = sorted(jobs, key=lambda j: -j.size)
    left = {}
    for j in jobs:
        left[j.group] = left.get(j.group, 0) + 1
    lock = threading.Lock()
    failed = []
    started = {}

    def one(j):
        os.makedirs(os.path.dirname(j.dst), exist_ok=True)
        os.makedirs(os.path.dirname(j.log), exist_ok=True)
        t0 = time.monotonic()
        with open(j.dst + ".tmp", "w") as out, open(j.log, "w") as err:
            rc = subprocess.call([ctl, "score"] + j.args + [j.src], stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, env=env)
        dt = time.monotonic() - t0
        with lock:
            if rc != 0:
                failed.append((j, rc))
                say("  FAILED %-5s %-48s exit %d (log %s)" % (j.bench, j.name, rc, j.log))
                return
            os.replace(j.dst + ".tmp", j.dst)
            started.setdefault(j.group, 0.0)
            started[j.group] += dt
            left[j.group] -= 1
            if left[j.group] == 0:
                say("  done   %-5s %-48s %7.1f s" % (j.bench, j.group, started[j.group]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=n_parallel) as pool:
        for f in [pool.submit(one, j) for j in jobs]:
            f.result()
    return failed


# ---------------------------------------------------------------------------------------
# Scoring


def nab_flags(files, scores):
    """NAB figures of 0/1 flags taken as the detections (no threshold to choose), per
    profile: nab_score.score_file at threshold 1 on every file, the raw scores summed,
    normalised by the scorable windows' null and perfect scores."""
    n_windows = sum(len(nab_score.scorable_windows(len(df.timestamps), df.windows))
                    for df in files)
    res = {"windows": n_windows, "profiles": {}}
    for long_name, _ in NAB_PROFILES:
        prof = nab_score.PROFILE[long_name]
        fs = [nab_score.score_file(scores[df.name], df.windows, 1.0, prof) for df in files]
        raw = sum(f.score for f in fs)
        res["profiles"][long_name] = {
            "threshold": 1.0, "raw": raw,
            "normalised": nab_score.normalise(raw, n_windows, prof),
            "tp": sum(f.tp for f in fs), "fn": sum(f.fn for f in fs),
            "fp": sum(f.fp for f in fs)}
    return res


def score_nab(sel, raw_dir):
    """NAB figures per half: on flag (the flags as detections) and on anomaly_score
    (NAB's threshold sweep, as scripts/nab)."""
    flag, cont = {}, {}
    for df, _ in sel.nab:
        path = os.path.join(raw_dir, df.name)
        flag[df.name] = nab_score.read_scores(path, df, "flag")
        cont[df.name] = nab_score.read_scores(path, df)
    out = {}
    for column, scores, how in (("flag", flag, nab_flags),
                                ("anomaly_score", cont, nab_score.evaluate)):
        out[column] = {}
        for h in sel.halves:
            files = [df for df, fh in sel.nab if h == "all" or fh == h]
            if not files:
                continue
            res = how(files, scores)
            fig = {"files": len(files), "windows": res["windows"],
                   "names": [df.name for df in files]}
            for long_name, short in NAB_PROFILES:
                p = res["profiles"][long_name]
                fig[short] = p["normalised"]
                fig[short + "_threshold"] = p["threshold"]
                fig[short + "_raw"] = p["raw"]
            s = res["profiles"]["standard"]
            fig.update(tp=s["tp"], fp=s["fp"], fn=s["fn"])
            out[column][h] = fig
    return out


def score_mgab(sel, mgab_dir, raw_dir):
    per = {}
    for name, _ in sel.mgab:
        b = mgab_score.read_benchmark(os.path.join(mgab_dir, name), sel.mgab_len[name])
        flags = mgab_score.read_flags(os.path.join(raw_dir, name), b, "flag")
        per[name] = mgab_score.score_flags(flags, b.anomaly, b.ignored)
    out = {}
    for h in sel.halves:
        names = [n for n, fh in sel.mgab if h == "all" or fh == h]
        if not names:
            continue
        t = mgab_score.totals(per[n] for n in names)
        out[h] = dict(t._asdict(), names=names)
    out["per_file"] = {n: c._asdict() for n, c in per.items()}
    return out


def score_skab(sel, benches, raw_dir):
    fused = {}
    columns = set()
    for name, _ in sel.skab:
        b = benches[name]
        preds = []
        for s in skab_score.SENSORS:
            path = os.path.join(raw_dir, name[:-4], skab_score.sensor_file(s))
            col = skab_score.choose_column(path)
            columns.add(col)
            preds.append(skab_score.read_prediction(path, b, col))
        fused[name] = skab_score.fuse(preds)
    if len(columns) > 1:
        raise BenchError("SKAB: some outputs have column anomalous, some not")
    out = {"column": columns.pop() if columns else "flag"}
    for h in sel.halves:
        names = [n for n, fh in sel.skab if h == "all" or fh == h]
        if not names:
            continue
        res = skab_score.evaluate([(benches[n], fused[n]) for n in names])
        res["names"] = names
        out[h] = res
    return out


# ---------------------------------------------------------------------------------------
# Report


def fmt(x, spec="%.2f"):
    return "nan" if x is None else spec % x


def table(res, quick, half):
    L = []
    q = "QUICK " if quick else ""
    halves = [h for h in HALVES if h in res["mgab"] or h in res["skab"]
              or h in res["nab"]["flag"]]
    if quick:
        L.append("== QUICK RUN: a subset (the first %d files of each NAB category and SKAB "
                 "folder, MGAB %d files cut to %d rows), not comparable with full runs"
                 % (QUICK_PER_GROUP, QUICK_MGAB_FILES, QUICK_MGAB_ROWS))
    L.append("== %sresults, halves %s (odd: the 1st, 3rd, ... file of each NAB category, "
             "MGAB, each SKAB folder)" % (q, "/".join(halves)))
    L.append("")
    for column, title in (("flag", "NAB on flag (NAB v1.1 rules, the flags as the "
                                   "detections; the line below)"),
                          ("anomaly_score", "NAB on anomaly_score (NAB's threshold sweep, "
                                            "as scripts/nab scores it; for comparison)")):
        L.append("%s%s" % (q, title))
        L.append("  %-5s %5s %7s %9s %7s %7s %5s %6s %5s"
                 % ("half", "files", "windows", "standard", "low_fp", "low_fn", "TP", "FP",
                    "FN"))
        for h in halves:
            f = res["nab"][column].get(h)
            if f:
                L.append("  %-5s %5d %7d %9s %7s %7s %5d %6d %5d"
                         % (h, f["files"], f["windows"], fmt(f["standard"]),
                            fmt(f["low_fp"]), fmt(f["low_fn"]), f["tp"], f["fp"], f["fn"]))
        L.append("  (TP, FN in windows, FP in rows, at the standard profile's threshold)")
        L.append("")
    L.append("%sMGAB on flag (TP: a window with a flag; FP: a run of flags outside windows "
             "and warm-up)" % q)
    L.append("  %-5s %5s %7s %5s %5s %5s %9s %7s %6s"
             % ("half", "files", "windows", "TP", "FP", "FN", "precision", "recall", "F1"))
    for h in halves:
        f = res["mgab"].get(h)
        if f:
            L.append("  %-5s %5d %7d %5d %5d %5d %9.4f %7.4f %6.4f"
                     % (h, f["files"], f["windows"], f["tp"], f["fp"], f["fn"],
                        f["precision"], f["recall"], f["f1"]))
    L.append("")
    col = res["skab"]["column"]
    why = ("" if col == "anomalous" else
           ": the outputs have no `anomalous` column")
    L.append("%sSKAB outliers on %s%s (8 sensors OR-fused, test rows pooled)" % (q, col, why))
    L.append("  %-5s %5s %9s %6s %6s %6s %6s %6s %7s %7s"
             % ("half", "files", "test_rows", "TP", "FP", "FN", "TN", "F1", "FAR%", "MAR%"))
    for h in halves:
        f = res["skab"].get(h)
        if f:
            o = f["outlier"]
            L.append("  %-5s %5d %9d %6d %6d %6d %6d %6.4f %7.2f %7.2f"
                     % (h, f["files_scored"], o["test_rows"], o["tp"], o["fp"], o["fn"],
                        o["tn"], o["f1"], o["far"], o["mar"]))
    L.append("%sSKAB change points (NAB rules, 60-s windows, training part as probation)" % q)
    L.append("  %-5s %5s %7s %8s %6s %9s %7s %7s"
             % ("half", "files", "windows", "detected", "FP", "standard", "low_fp", "low_fn"))
    for h in halves:
        f = res["skab"].get(h)
        if f:
            c = f["cpd"]
            L.append("  %-5s %5d %7d %8d %6d %9s %7s %7s"
                     % (h, f["files_scored"], c["windows"], c["standard"]["tp"],
                        c["standard"]["fp"], fmt(c["standard"]["score"]),
                        fmt(c["low_fp"]["score"]), fmt(c["low_fn"]["score"])))
    return L


def final_lines(res, half):
    n = res["nab"]["flag"][half]
    m = res["mgab"][half]
    s = res["skab"][half]
    o, c = s["outlier"], s["cpd"]
    return [
        "bench_detect nab standard=%s low_fp=%s low_fn=%s"
        % (fmt(n["standard"]), fmt(n["low_fp"]), fmt(n["low_fn"])),
        "bench_detect mgab f1=%.4f precision=%.4f recall=%.4f tp=%d fp=%d fn=%d"
        % (m["f1"], m["precision"], m["recall"], m["tp"], m["fp"], m["fn"]),
        "bench_detect skab f1=%.4f far=%.2f mar=%.2f cpd_standard=%s cpd_low_fp=%s "
        "cpd_low_fn=%s" % (o["f1"], o["far"], o["mar"], fmt(c["standard"]["score"]),
                           fmt(c["low_fp"]["score"]), fmt(c["low_fn"]["score"])),
    ]


# ---------------------------------------------------------------------------------------


def find_ctl(jobs):
    """$ANOMALYCTL (resolved as scripts/nab does), else build build/release's anomalyctl."""
    env = os.environ.get("ANOMALYCTL")
    if env:
        ctl = env if "/" in env else shutil.which(env)
        if not ctl:
            raise BenchError("ANOMALYCTL=%s: no such command" % env)
        ctl = os.path.abspath(ctl)
        if not (os.path.isfile(ctl) and os.access(ctl, os.X_OK)):
            raise BenchError("ANOMALYCTL=%s is not an executable" % env)
        return ctl
    say("== build (build/release, target anomalyctl)")
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    log = os.path.join(ROOT, "build", "bench_detect.configure.log")
    with open(log, "w") as f:
        rc = subprocess.call(["cmake", "-S", ".", "-B", "build/release",
                              "-DCMAKE_BUILD_TYPE=Release", "-DAD_SANITIZE=OFF"],
                             cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        with open(log) as f:
            sys.stdout.write(f.read())
        raise BenchError("cmake configure failed (%s)" % log)
    if subprocess.call(["cmake", "--build", "build/release", "-j", str(jobs), "--target",
                        "anomalyctl"], cwd=ROOT) != 0:
        raise BenchError("building anomalyctl failed")
    return os.path.join(ROOT, "build", "release", "daemon", "anomalyctl")


def revision():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode
        return rev + (" (uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    osname = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "%s, %s %s, %d cores" % (osname or platform.system(), platform.machine(), model,
                                    os.cpu_count() or 1)


def parse(argv):
    if "--" in argv:
        k = argv.index("--")
        argv, det = argv[:k], argv[k + 1:]
    else:
        det = []
    ap = argparse.ArgumentParser(prog="scripts/bench_detect",
                                 usage="scripts/bench_detect [--quick] [--half odd|even|all]"
                                       " [--jobs N] [--out DIR] [-- DETECTOR-ARGS...]",
                                 description=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run on a subset")
    ap.add_argument("--half", choices=HALVES, default="all",
                    help="run the odd or the even half only (default: all, figures for both)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                    help="parallel detector runs (default: the number of cores)")
    ap.add_argument("--out", default=None,
                    help="output directory (default build/bench_detect/full or .../quick)")
    a = ap.parse_args(argv)
    if a.jobs < 1:
        ap.error("--jobs wants a positive integer")
    a.det = det
    return a


def main(argv=None):
    a = parse(sys.argv[1:] if argv is None else argv)
    t0 = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    out = os.path.abspath(a.out or os.path.join(ROOT, "build", "bench_detect",
                                                "quick" if a.quick else "full"))
    nab_dir = shared_dir("NAB_DIR", "nab")
    mgab_dir = shared_dir("MGAB_DIR", "mgab")
    skab_dir = shared_dir("SKAB_DIR", "skab")
    try:
        ctl = find_ctl(a.jobs)
        t_build = time.monotonic()
        sel = select(nab_dir, mgab_dir, skab_dir, a.quick, a.half)
        if not (sel.nab and sel.mgab and sel.skab):
            raise BenchError("a benchmark has no file to run (NAB %d, MGAB %d, SKAB %d)"
                             % (len(sel.nab), len(sel.mgab), len(sel.skab)))
        det_text = " ".join(shlex.quote(x) for x in a.det) if a.det else "(none: the defaults)"
        run_txt = [
            "bench_detect %s%s, half %s" % ("QUICK " if a.quick else "", "run", a.half),
            "detector:  %s FILE" % " ".join(shlex.quote(x) for x in [ctl, "score"] + a.det),
            "args:      %s" % det_text,
            "skab adds: %s" % " ".join(SKAB_PROTOCOL),
            "revision:  %s" % revision(),
            "machine:   %s" % machine(),
            "started:   %s" % started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "jobs:      %d" % a.jobs,
            "nab:       %s (%d files)" % (nab_dir, len(sel.nab)),
            "mgab:      %s (%d files%s)" % (mgab_dir, len(sel.mgab),
                                          ", at most their first %d rows" % sel.mgab_rows
                                          if sel.mgab_rows else ""),
            "skab:      %s (%d files x 8 sensors)" % (skab_dir, len(sel.skab)),
            "out:       %s" % out,
        ]
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "run.txt"), "w") as f:
            f.write("\n".join(run_txt) + "\n")
        for line in run_txt:
            say(line)

        say("== inputs")
        jobs = []
        for df, _ in sel.nab:
            jobs.append(Job("nab", df.name, df.path, os.path.join(out, "nab", "raw", df.name),
                            os.path.join(out, "nab", "logs", df.name[:-4] + ".log"),
                            a.det, df.name))
        for name, _ in sel.mgab:
            src = os.path.join(out, "mgab", "input", name)
            sel.mgab_len[name] = mgab_input(mgab_dir, name, sel.mgab_rows, src)
            jobs.append(Job("mgab", name, src, os.path.join(out, "mgab", "raw", name),
                            os.path.join(out, "mgab", "logs", name[:-4] + ".log"),
                            a.det, name))
        benches = {}
        for name, _ in sel.skab:
            b = skab_score.read_benchmark(os.path.join(skab_dir, "data", name), name)
            benches[name] = b
            stem = name[:-4]
            skab_inputs(b, os.path.join(out, "skab", "input", stem))
            for s in skab_score.SENSORS:
                f = skab_score.sensor_file(s)
                jobs.append(Job("skab", "%s/%s" % (stem, f),
                                os.path.join(out, "skab", "input", stem, f),
                                os.path.join(out, "skab", "raw", stem, f),
                                os.path.join(out, "skab", "logs", stem, f[:-4] + ".log"),
                                a.det + SKAB_PROTOCOL, name))
        for j in jobs:      # no stale output may be scored
            for p in (j.dst, j.dst + ".tmp"):
                if os.path.exists(p):
                    os.remove(p)
        t_inputs = time.monotonic()

        say("== %d detector runs (NAB %d, MGAB %d, SKAB %d x 8), %d at a time, biggest first"
            % (len(jobs), len(sel.nab), len(sel.mgab), len(sel.skab), a.jobs))
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        failed = run_jobs(ctl, jobs, a.jobs, env)
        t_runs = time.monotonic()
        if failed:
            for j, rc in failed:
                say("--- %s %s: exit %d; end of %s:" % (j.bench, j.name, rc, j.log))
                try:
                    with open(j.log) as f:
                        sys.stdout.write("".join(f.readlines()[-5:]))
                except OSError:
                    pass
            raise BenchError("%d of %d detector runs failed" % (len(failed), len(jobs)))

        say("== scoring")
        res = {"nab": score_nab(sel, os.path.join(out, "nab", "raw")),
               "mgab": score_mgab(sel, mgab_dir, os.path.join(out, "mgab", "raw")),
               "skab": score_skab(sel, benches, os.path.join(out, "skab", "raw"))}
    except (BenchError, nab_score.NabError, mgab_score.MgabError,
            skab_score.SkabError) as e:
        print("scripts/bench_detect: %s" % e, file=sys.stderr)
        return 1
    t1 = time.monotonic()
    half = a.half
    lines = table(res, a.quick, half)
    lines.append("")
    lines.append("detector: %s" % run_txt[1].split(":", 1)[1].strip())
    lines.append("wall time: %.1f s (build %.1f s, inputs %.1f s, %d detector runs on %d "
                 "jobs %.1f s, scoring %.1f s)"
                 % (t1 - t0, t_build - t0, t_inputs - t_build, len(jobs), a.jobs,
                    t_runs - t_inputs, t1 - t_runs))
    lines += final_lines(res, half)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("\n".join(run_txt) + "\n\n" + text)
    res["run"] = {"quick": a.quick, "half": half, "args": a.det, "skab_protocol": SKAB_PROTOCOL,
                  "jobs": a.jobs, "wall_time": t1 - t0, "detector_runs_time": t_runs - t_inputs,
                  "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "revision": revision(),
                  "machine": machine()}
    with open(os.path.join(out, "scores.json"), "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
