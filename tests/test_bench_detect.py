"""Tests of scripts/bench_detect's plumbing (Python standard library only, ~10 s).

Run from tests/:  python3 -m unittest -v test_bench_detect   (ctest runs it as bench_detect)

scripts/bench_detect runs on tiny made-up NAB, MGAB and SKAB corpora (NAB_DIR, MGAB_DIR,
SKAB_DIR) with ANOMALYCTL pointing at a fake scorer: it flags every row whose value is at
least 100 and logs its arguments. The expected figures are worked out by hand from the
corpora below; the tests check them, the three final lines, the halves, the arguments
each benchmark's runs get, the `anomalous` column for SKAB, --quick and a failed run.
"""

import datetime
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "scripts", "bench_detect")
PY = "/usr/bin/python3"

FAKE = r'''#!/usr/bin/python3
# A stand-in for `anomalyctl score [ARGS...] FILE`: flag (and anomaly_score 0.9) where
# value >= 100; with FAKE_ANOMALOUS=1 an `anomalous` column carries that and flag is 0.
import csv, json, os, sys
args = sys.argv[1:]
assert args[0] == "score", args
path = args[-1]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({"args": args[1:-1], "file": path}) + "\n")
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in path:
    sys.stderr.write("fake: failing on purpose\n")
    sys.exit(3)
anom = os.environ.get("FAKE_ANOMALOUS") == "1"
out = sys.stdout
out.write("timestamp,value,anomaly_score,flag,predicted,error,warming_up%s\n"
          % (",anomalous" if anom else ""))
with open(path, newline="") as f:
    rows = list(csv.reader(f))[1:]
for t, v in rows:
    hit = float(v) >= 100
    out.write("%s,%s,%s,%d,0,0,0%s\n" % (t, v, "0.9" if hit else "0.1",
                                         hit and not anom, (",%d" % hit) if anom else ""))
'''

# ---------------------------------------------------------------------------------------
# The corpora. NAB: 100 rows a file (probation 15), value 100 on the spike rows.
#   catA/a1.csv (odd)  window [40, 49], spike 40: +1
#   catA/a2.csv (even) window [60, 69] missed (-fn), spikes 20 and 30 before it: 2 x -fp
#   catA/a3.csv (odd)  no window, spike 20: an FP before any window, -fp
#   catB/b1.csv (odd)  window [50, 59], spike 50: +1
NAB = {"catA/a1.csv": ([(40, 49)], [40]), "catA/a2.csv": ([(60, 69)], [20, 30]),
       "catA/a3.csv": ([], [20]), "catB/b1.csv": ([(50, 59)], [50])}
# MGAB: 300 rows, warm-up rows 0-9, window [100, 139]; spikes:
#   1.csv (odd)  5 (warm-up), 120: TP 1, FP 0, FN 0
#   2.csv (even) 200-201, 250: TP 0, FP 2, FN 1
#   3.csv (odd)  139-141: TP 1, FP 1 (140-141 outside)
MGAB = {"1.csv": [5, 120], "2.csv": [200, 201, 250], "3.csv": [139, 140, 141]}
# SKAB: name: (rows, anomaly rows, change points, {sensor: rows at 100})
#   valve1/0 (odd): the fault exactly: TP 10, TN 40; change points 410 and 420 at the
#     first rows of their windows [410, 419], [420, 449]: +2
#   valve1/1 (even): no fault, one flag at 415: FP 1, TN 29; change points 415 and 416,
#     FPs with no window before: 2 x -fp
#   valve2/0 (odd): fault 405-414 missed: FN 10, TN 10; window [405, 419] missed: -fn
#   other/1 (odd): fault 100-429 from the training part, flagged on 0-429: TP 30, TN 10;
#     the first test row (400) is an FP (window [100, 160] far behind: -fp); the fall at
#     430 is the first row of [430, 439]: +1
SKAB = {"valve1/0.csv": (450, range(410, 420), [410, 420], {"Current": range(410, 420)}),
        "valve1/1.csv": (430, [], [], {"Pressure": [415]}),
        "valve2/0.csv": (420, range(405, 415), [405], {}),
        "other/1.csv": (440, range(100, 430), [100, 430], {"Voltage": range(0, 430)})}
SENSORS = ("Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
           "Thermocouple", "Voltage", "Volume Flow RateRMS")
SKAB_PROTOCOL = ["--train-after", "400", "--train-every", "0"]

# The expected lines (halves: all).
# NAB all: 3 windows; standard raw 1 - 0.11 + 1 - 1 - 0.22 = 0.67: 100 (0.67 + 3) / 6
# = 61.17; low FP 1 - 0.22 + 1 - 1 - 0.44 = 0.34: 100 * 3.34 / 6 = 55.67; low FN
# 1 - 0.11 + 1 - 2 - 0.22 = -0.33: 100 * 5.67 / 9 = 63.00. MGAB all: TP 2, FP 3, FN 1: P 0.4, R 2/3, F1 0.5. SKAB all: TP 40, FP 1, FN 10,
# TN 89: F1 80/91 = 0.8791, FAR 1/90 = 1.11 %, MAR 10/50 = 20 %; change points, 4
# windows: standard 2 - 1 + 0.89 - 0.22 = 1.67: 100 * 5.67 / 8 = 70.88 (70.875);
# low FP 2 - 1 + 0.78 - 0.44 = 1.34: 66.75; low FN 2 - 2 + 0.89 - 0.22 = 0.67: 100 *
# 8.67 / 12 = 72.25.
LINES_ALL = [
    "bench_detect nab standard=61.17 low_fp=55.67 low_fn=63.00",
    "bench_detect mgab f1=0.5000 precision=0.4000 recall=0.6667 tp=2 fp=3 fn=1",
    "bench_detect skab f1=0.8791 far=1.11 mar=20.00 cpd_standard=70.88 cpd_low_fp=66.75 "
    "cpd_low_fn=72.25",
]
# The odd half. NAB: 2 windows, standard 1.89: 97.25; low FP 1.78: 94.50; low FN 1.89 of
# null -4, perfect 2: 98.17. MGAB: TP 2, FP 1, FN 0: P 2/3, R 1, F1 0.8. SKAB: TP 40, FP 0,
# FN 10, TN 60: F1 80/90, FAR 0, MAR 20; 4 windows: standard 1.89: 73.62 (73.625, rounded
# half to even by %.2f: 73.62); low FP 1.78: 72.25; low FN 0.89: 100 * 8.89 / 12 = 74.08.
LINES_ODD = [
    "bench_detect nab standard=97.25 low_fp=94.50 low_fn=98.17",
    "bench_detect mgab f1=0.8000 precision=0.6667 recall=1.0000 tp=2 fp=1 fn=0",
    "bench_detect skab f1=0.8889 far=0.00 mar=20.00 cpd_standard=73.62 cpd_low_fp=72.25 "
    "cpd_low_fn=74.08",
]


def nab_ts(i):
    return (datetime.datetime(2020, 1, 1) + datetime.timedelta(minutes=5 * i)).strftime(
        "%Y-%m-%d %H:%M:%S")


def skab_ts(i):
    return (datetime.datetime(2020, 3, 9, 10) + datetime.timedelta(seconds=i)).strftime(
        "%Y-%m-%d %H:%M:%S")


def make_corpora(root):
    labels = {}
    for name, (windows, spikes) in NAB.items():
        path = os.path.join(root, "nab", "data", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("timestamp,value\n")
            for i in range(100):
                f.write("%s,%d\n" % (nab_ts(i), 100 if i in spikes else i % 7))
        labels[name] = [[nab_ts(l) + ".000000", nab_ts(r) + ".000000"] for l, r in windows]
    os.makedirs(os.path.join(root, "nab", "labels"))
    with open(os.path.join(root, "nab", "labels", "combined_windows.json"), "w") as f:
        json.dump(labels, f)
    os.makedirs(os.path.join(root, "mgab"))
    for name, spikes in MGAB.items():
        with open(os.path.join(root, "mgab", name), "w") as f:
            f.write(",value,is_anomaly,is_ignored\n")
            for i in range(300):
                f.write("%d,%s,%d,%d\n" % (i, "100.0" if i in spikes else "0.5",
                                           100 <= i <= 139, i < 10))
    for name, (n, anom, cps, hot) in SKAB.items():
        path = os.path.join(root, "skab", "data", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("datetime;%s;anomaly;changepoint\n" % ";".join(SENSORS))
            for i in range(n):
                vals = ["100" if i in hot.get(s, ()) else "%.2f" % (1 + k)
                        for k, s in enumerate(SENSORS)]
                f.write("%s;%s;%.1f;%.1f\n" % (skab_ts(i), ";".join(vals), i in anom,
                                               i in cps))


class BenchDetect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bench_detect_test.")
        make_corpora(cls.tmp)
        cls.fake = os.path.join(cls.tmp, "fake_anomalyctl")
        with open(cls.fake, "w") as f:
            f.write(FAKE)
        os.chmod(cls.fake, os.stat(cls.fake).st_mode | stat.S_IXUSR)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def run_bench(self, *args, env_extra=None, expect=0):
        log = os.path.join(self.tmp, "fake.log")
        if os.path.exists(log):
            os.remove(log)
        out = os.path.join(self.tmp, "out")
        env = dict(os.environ, ANOMALYCTL=self.fake, FAKE_LOG=log,
                   NAB_DIR=os.path.join(self.tmp, "nab"),
                   MGAB_DIR=os.path.join(self.tmp, "mgab"),
                   SKAB_DIR=os.path.join(self.tmp, "skab"))
        env.pop("FAKE_ANOMALOUS", None)
        env.pop("FAKE_FAIL", None)
        env.update(env_extra or {})
        p = subprocess.run([SCRIPT, "--out", out, "--jobs", "2"] + list(args),
                           capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(p.returncode, expect, p.stdout + p.stderr)
        calls = []
        if os.path.exists(log):
            with open(log) as f:
                calls = [json.loads(line) for line in f]
        scores = None
        if expect == 0:
            with open(os.path.join(out, "scores.json")) as f:
                scores = json.load(f)
        return p, calls, scores

    def calls_of(self, calls, bench):
        return [c for c in calls if os.sep + bench + os.sep in c["file"]]

    def test_defaults(self):
        p, calls, sc = self.run_bench()
        lines = p.stdout.rstrip("\n").split("\n")
        self.assertEqual(lines[-3:], LINES_ALL)
        # every file ran, with no option, SKAB with its protocol only
        self.assertEqual(len(calls), 4 + 3 + 4 * 8)
        for c in self.calls_of(calls, "nab") + self.calls_of(calls, "mgab"):
            self.assertEqual(c["args"], [], c)
        skab = self.calls_of(calls, "skab")
        self.assertEqual(len(skab), 32)
        for c in skab:
            self.assertEqual(c["args"], SKAB_PROTOCOL, c)
        self.assertIn("no `anomalous` column", p.stdout)
        self.assertIn("(none: the defaults)", p.stdout)
        self.assertNotIn("QUICK", p.stdout)
        # the halves, from the one run
        self.assertAlmostEqual(sc["nab"]["flag"]["odd"]["standard"], 97.25, places=9)
        # the even half: -1 - 0.22 = -1.22 on flag (the flags as detections): 100 * (-1.22
        # + 1) / 2 = -11; NAB's sweep on anomaly_score prefers detecting nothing: 0
        self.assertAlmostEqual(sc["nab"]["flag"]["even"]["standard"], -11.0, places=9)
        self.assertEqual(sc["nab"]["anomaly_score"]["even"]["standard"], 0.0)
        self.assertEqual(sorted(sc["nab"]["flag"]["odd"]["names"]),
                         ["catA/a1.csv", "catA/a3.csv", "catB/b1.csv"])
        self.assertEqual(sc["mgab"]["odd"]["names"], ["1.csv", "3.csv"])
        self.assertEqual((sc["mgab"]["even"]["tp"], sc["mgab"]["even"]["fp"],
                          sc["mgab"]["even"]["fn"], sc["mgab"]["even"]["f1"]), (0, 2, 1, 0.0))
        self.assertEqual(sc["skab"]["odd"]["names"],
                         ["valve1/0.csv", "valve2/0.csv", "other/1.csv"])
        ev = sc["skab"]["even"]
        self.assertAlmostEqual(ev["outlier"]["far"], 100 / 30, places=9)
        self.assertIsNone(ev["cpd"]["standard"]["score"])     # no window in valve1/1
        self.assertAlmostEqual(sc["skab"]["all"]["cpd"]["standard"]["score"], 70.875,
                               places=9)
        # NAB on anomaly_score with NAB's sweep over all: it chooses 0.9, the flags
        self.assertAlmostEqual(sc["nab"]["anomaly_score"]["all"]["standard"], 61.1666667,
                               places=6)
        # raw outputs kept
        out = os.path.join(self.tmp, "out")
        for rel in ("nab/raw/catA/a1.csv", "mgab/raw/2.csv", "mgab/input/2.csv",
                    "skab/raw/other/1/Volume_Flow_RateRMS.csv", "run.txt", "summary.txt"):
            self.assertTrue(os.path.isfile(os.path.join(out, rel)), rel)

    def test_empty_args_after_dashes(self):
        p, calls, _ = self.run_bench("--")
        self.assertEqual(p.stdout.rstrip("\n").split("\n")[-3:], LINES_ALL)
        self.assertEqual({tuple(c["args"]) for c in calls}, {(), tuple(SKAB_PROTOCOL)})

    def test_detector_args_passed(self):
        p, calls, _ = self.run_bench("--", "--hidden", "8", "--cooldown", "3")
        det = ["--hidden", "8", "--cooldown", "3"]
        self.assertEqual(len(calls), 39)
        for c in calls:
            want = det + SKAB_PROTOCOL if os.sep + "skab" + os.sep in c["file"] else det
            self.assertEqual(c["args"], want, c)
        self.assertIn("--hidden 8 --cooldown 3", p.stdout)

    def test_half_odd(self):
        p, calls, sc = self.run_bench("--half", "odd")
        self.assertEqual(p.stdout.rstrip("\n").split("\n")[-3:], LINES_ODD)
        self.assertEqual(len(self.calls_of(calls, "nab")), 3)
        self.assertEqual(len(self.calls_of(calls, "mgab")), 2)
        self.assertEqual(len(self.calls_of(calls, "skab")), 3 * 8)
        self.assertNotIn("even", sc["mgab"])
        self.assertNotIn("all", sc["mgab"])

    def test_half_even(self):
        p, calls, _ = self.run_bench("--half", "even")
        self.assertEqual(len(calls), 1 + 1 + 8)
        lines = p.stdout.rstrip("\n").split("\n")[-3:]
        # NAB: -1.22 (standard), -1.44 (low FP), -2.22 of null -2, perfect 1 (low FN)
        self.assertEqual(lines[0], "bench_detect nab standard=-11.00 low_fp=-22.00 "
                                   "low_fn=-7.33")
        self.assertEqual(lines[1], "bench_detect mgab f1=0.0000 precision=0.0000 "
                                   "recall=0.0000 tp=0 fp=2 fn=1")
        self.assertEqual(lines[2], "bench_detect skab f1=0.0000 far=3.33 mar=0.00 "
                                   "cpd_standard=nan cpd_low_fp=nan cpd_low_fn=nan")

    def test_anomalous_column(self):
        # flag 0 everywhere, anomalous where the value is >= 100: NAB and MGAB (on flag)
        # find nothing, SKAB (on anomalous) scores as above
        p, _, sc = self.run_bench(env_extra={"FAKE_ANOMALOUS": "1"})
        lines = p.stdout.rstrip("\n").split("\n")[-3:]
        self.assertEqual(lines[0], "bench_detect nab standard=0.00 low_fp=0.00 low_fn=0.00")
        self.assertEqual(lines[1], "bench_detect mgab f1=0.0000 precision=0.0000 "
                                   "recall=0.0000 tp=0 fp=0 fn=3")
        self.assertEqual(lines[2], LINES_ALL[2])
        self.assertEqual(sc["skab"]["column"], "anomalous")
        self.assertIn("SKAB outliers on anomalous (8 sensors", p.stdout)

    def test_quick(self):
        # the first two files of each NAB category (a1, a2, b1) and SKAB folder (valve1/0,
        # valve1/1, valve2/0, other/1), MGAB 1.csv and 2.csv
        p, calls, sc = self.run_bench("--quick")
        self.assertIn("QUICK RUN", p.stdout)
        self.assertEqual(len(self.calls_of(calls, "nab")), 3)
        self.assertEqual(sorted(os.path.basename(c["file"])
                                for c in self.calls_of(calls, "mgab")), ["1.csv", "2.csv"])
        self.assertEqual(len(self.calls_of(calls, "skab")), 32)
        self.assertEqual(sc["mgab"]["all"]["tp"], 1)
        self.assertTrue(sc["run"]["quick"])

    def test_failed_run(self):
        p, _, _ = self.run_bench(env_extra={"FAKE_FAIL": "a2.csv"}, expect=1)
        self.assertIn("FAILED nab   catA/a2.csv", p.stdout)
        self.assertIn("failing on purpose", p.stdout)
        self.assertIn("1 of 39 detector runs failed", p.stderr)
        self.assertNotIn("bench_detect nab", p.stdout)

    def test_usage(self):
        p = subprocess.run([SCRIPT, "--half", "third"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--quick", p.stdout)


if __name__ == "__main__":
    unittest.main()
