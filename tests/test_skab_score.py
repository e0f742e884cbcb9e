"""Tests of scripts/skab_score.py, the SKAB scorer (Python standard library only).

Run from tests/:  python3 -m unittest -v test_skab_score   (ctest runs it as skab_score)

Hand-computed examples of the rules of ../shared/skab/README.md as skab_score.py reads
them: the OR of the sensors, outlier counts on test rows only, F1/FAR/MAR (and no
division by zero), predicted change points from the prediction's changes, 60-second
windows (cut before the next change point), NAB's scoring with the training part as
probation and the profiles' normalisation; then the command line on a small synthetic
benchmark with its refusals and, when the benchmark is there ($SKAB_DIR, else
../../shared/skab from this file), its shape.
"""

import contextlib
import datetime
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "scripts", "skab_score.py")

sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
_spec = importlib.util.spec_from_file_location("skab_score", SCRIPT)
ss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ss)
ns = ss.nab_score

STD = ns.PROFILE["standard"]
LOW_FP = ns.PROFILE["reward_low_FP_rate"]
LOW_FN = ns.PROFILE["reward_low_FN_rate"]


def bits(n, ones):
    b = [0] * n
    for i in ones:
        b[i] = 1
    return b


class TestFuse(unittest.TestCase):
    def test_or(self):
        self.assertEqual(ss.fuse([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]), [0, 1, 1, 0])
        self.assertEqual(ss.fuse([[1, 0]]), [1, 0])

    def test_refusals(self):
        with self.assertRaises(ValueError):
            ss.fuse([])
        with self.assertRaises(ValueError):
            ss.fuse([[0, 1], [0]])


class TestOutlier(unittest.TestCase):
    # 12 rows, training part 4 rows: test rows 4..11
    ANOM = [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    PRED = [1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0]

    def test_counts_test_rows_only(self):
        # 4: TN, 5: FP, 6: TP, 7: FN, 8: TP, 9: FP, 10, 11: TN; rows 0, 1 (predicted 1 in
        # the training part) do not count
        c = ss.outlier_counts(self.ANOM, self.PRED, train=4)
        self.assertEqual(c, ss.OutlierCounts(tp=2, fp=2, fn=1, tn=3))

    def test_metrics(self):
        # F1 = 2*2 / (2*2 + 2 + 1) = 4/7; FAR = 2 / (2 + 3) = 40 %; MAR = 1 / (1 + 2) = 33.3 %
        f1, far, mar = ss.outlier_metrics(ss.OutlierCounts(2, 2, 1, 3))
        self.assertAlmostEqual(f1, 4 / 7, places=15)
        self.assertAlmostEqual(far, 40.0, places=12)
        self.assertAlmostEqual(mar, 100 / 3, places=12)

    def test_no_alarm_at_all(self):
        # nothing predicted: F1 0, FAR 0, MAR 100
        c = ss.outlier_counts(self.ANOM, [0] * 12, train=4)
        self.assertEqual(c, ss.OutlierCounts(0, 0, 3, 5))
        self.assertEqual(ss.outlier_metrics(c), (0.0, 0.0, 100.0))

    def test_no_division_by_zero(self):
        self.assertEqual(ss.outlier_metrics(ss.OutlierCounts(0, 0, 0, 0)), (0.0, 0.0, 0.0))
        # no anomalous row, only false alarms: F1 0, FAR 100, MAR 0 (nothing to miss)
        self.assertEqual(ss.outlier_metrics(ss.OutlierCounts(0, 4, 0, 0)), (0.0, 100.0, 0.0))

    def test_file_shorter_than_the_training_part(self):
        self.assertEqual(ss.outlier_counts([1, 1], [1, 0], train=4), ss.OutlierCounts(0, 0, 0, 0))


class TestPredictedChangepoints(unittest.TestCase):
    def test_changes(self):
        # training rows 0..3 never; row 4 is its prediction (0); then |diff|: 5 (0->1),
        # 7 (1->0), 8 (0->1), 10 (1->0)
        pred = [1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0]
        self.assertEqual(ss.predicted_changepoints(pred, train=4),
                         [0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0])

    def test_first_test_row(self):
        # predicted 1 from the training part on: the first test row is a change point
        # (SKAB's notebooks: prediction_cp[0] = prediction[0]), whatever came before
        self.assertEqual(ss.predicted_changepoints([1, 1, 1, 1, 1, 0], train=3),
                         [0, 0, 0, 1, 0, 1])
        self.assertEqual(ss.predicted_changepoints([0, 0, 0, 0, 0], train=3), [0] * 5)
        self.assertEqual(ss.predicted_changepoints([1, 1], train=3), [0, 0])


class TestWindows(unittest.TestCase):
    def test_sixty_seconds_inclusive(self):
        # one row a second from 10:00:00; change point at row 1: rows 1..61 (t <= t1 + 60)
        t0 = datetime.datetime(2020, 3, 9, 10, 0, 0)
        times = [t0 + datetime.timedelta(seconds=i) for i in range(100)]
        self.assertEqual(ss.cp_windows(times, bits(100, [1])), [(1, 61)])
        # near the end: cut at the last row
        self.assertEqual(ss.cp_windows(times, bits(100, [80])), [(80, 99)])

    def test_by_time_not_rows(self):
        # rows 3 and 4 are 8 s apart: a 5-second window from row 2 (t = 2) holds rows
        # 2, 3 (t = 3) only
        times = [0, 1, 2, 3, 11, 12, 13, 14]
        self.assertEqual(ss.cp_windows(times, bits(8, [2]), seconds=5), [(2, 3)])

    def test_cut_before_the_next_change_point(self):
        times = list(range(20))
        # change points 5 and 8, 3-second windows: [5, 8] would overlap [8, 11]: cut to
        # [5, 7]
        self.assertEqual(ss.cp_windows(times, bits(20, [5, 8]), seconds=3),
                         [(5, 7), (8, 11)])
        # adjacent change points: a one-row window
        self.assertEqual(ss.cp_windows(times, bits(20, [5, 6]), seconds=3),
                         [(5, 5), (6, 9)])
        # far apart: untouched
        self.assertEqual(ss.cp_windows(times, bits(20, [2, 10]), seconds=3),
                         [(2, 5), (10, 13)])

    def test_none(self):
        self.assertEqual(ss.cp_windows(list(range(5)), [0] * 5), [])
        self.assertEqual(ss.cp_windows([], []), [])


class TestChangepointScore(unittest.TestCase):
    """30 rows, training part 10 rows, one window [12, 21] (w = 10)."""
    W = [(12, 21)]

    def pred(self, ones):
        return bits(30, ones)

    def test_rise_in_window_fall_after(self):
        # predicted 1 on rows 14..24: change points 14 (in the window) and 25 (after it).
        # 14: x = -(21 - 14 + 1)/10 = -0.8, sig(-0.8) = 2/(1 + e^-4) - 1 = 0.96402758;
        #     / sig(-1) = 0.97710684
        # 25: FP after [12, 21]: x = |21 - 25| / 9 = 0.4444, sig = 2/(1 + e^2.2222) - 1
        #     = 2/10.22781435 - 1 = -0.80445480; standard 0.11 * that = -0.08849003
        p = self.pred(range(14, 25))
        r = ss.cpd_file(p, self.W, STD, train=10)
        self.assertAlmostEqual(r.score, 0.9771068409 - 0.0884900280, places=9)
        self.assertEqual((r.tp, r.fn, r.fp), (1, 0, 1))
        # low FP: 0.22 * -0.80445480 = -0.17698006
        self.assertAlmostEqual(ss.cpd_file(p, self.W, LOW_FP, train=10).score,
                               0.9771068409 - 0.1769800561, places=9)

    def test_missed(self):
        r = ss.cpd_file(self.pred([]), self.W, STD, train=10)
        self.assertEqual((r.score, r.tp, r.fn, r.fp), (-1.0, 0, 1, 0))
        self.assertEqual(ss.cpd_file(self.pred([]), self.W, LOW_FN, train=10).score, -2.0)

    def test_first_row_of_the_window(self):
        # rise on row 12: the window's first row, exactly +1; the fall at 30 is past the end
        r = ss.cpd_file(self.pred(range(12, 30)), self.W, STD, train=10)
        self.assertEqual((r.score, r.tp, r.fn, r.fp), (1.0, 1, 0, 0))

    def test_training_part_is_probation(self):
        # predicted 1 on rows 2..5 only (training part): no change point is scored, the
        # window is missed: -1. And a window ending before row 10 neither counts nor costs.
        self.assertEqual(ss.cpd_file(self.pred(range(2, 6)), self.W, STD, train=10).score,
                         -1.0)
        r = ss.cpd_file(self.pred([]), [(3, 8)], STD, train=10)
        self.assertEqual((r.score, r.fn), (0.0, 0))

    def test_alarm_on_from_the_training_part(self):
        # predicted 1 on rows 0..10: the first test row (10) is a change point, an FP
        # before any window (-0.11); the fall at 11 is another (-0.11); window missed (-1)
        r = ss.cpd_file(self.pred(range(0, 11)), self.W, STD, train=10)
        self.assertAlmostEqual(r.score, -1.22, places=12)
        self.assertEqual((r.tp, r.fn, r.fp), (0, 1, 2))


def bench(name, n, anomaly, changepoint, t0=0):
    """A Bench with numeric times (seconds), for evaluate()."""
    return ss.Bench(name, [str(t0 + i) for i in range(n)], [t0 + i for i in range(n)],
                    bits(n, anomaly), bits(n, changepoint), {})


class TestEvaluate(unittest.TestCase):
    def test_two_files(self):
        # file a: 30 rows, anomaly 12..24, change points 12 and 25 (60-s windows cut:
        # [12, 24], [25, 29]); predicted 14..24. file b: 30 rows, no anomaly, predicted
        # row 15 only. Training part 10 rows.
        a = bench("x/a.csv", 30, range(12, 25), [12, 25])
        b = bench("x/b.csv", 30, [], [])
        res = ss.evaluate([(a, bits(30, range(14, 25))), (b, bits(30, [15]))], train=10)
        o = res["outlier"]
        # a: TP 11 (14..24), FN 2 (12, 13), FP 0, TN 20 - 13 = 7; b: FP 1, TN 19
        self.assertEqual((o["tp"], o["fp"], o["fn"], o["tn"], o["test_rows"]),
                         (11, 1, 2, 26, 40))
        self.assertAlmostEqual(o["f1"], 22 / 25, places=15)        # 22 / (22 + 1 + 2)
        self.assertAlmostEqual(o["far"], 100 / 27, places=12)      # 1 / (1 + 26)
        self.assertAlmostEqual(o["mar"], 200 / 13, places=12)      # 2 / (2 + 11)
        c = res["cpd"]
        self.assertEqual(c["windows"], 2)
        # a: rise at 14 in [12, 24] (w 13): x = -(24 - 14 + 1)/13, fall at 25 = the first
        # row of [25, 29]: +1. b: change points 15 and 16, FPs with no window before:
        # 2 * -0.11
        rise = ns.scaled_sigmoid(-11 / 13) / ns.MAX_TP
        raw = rise + 1.0 - 0.22
        self.assertAlmostEqual(c["standard"]["raw"], raw, places=12)
        self.assertAlmostEqual(c["standard"]["score"], 100 * (raw + 2) / 4, places=10)
        self.assertEqual((c["standard"]["tp"], c["standard"]["fn"], c["standard"]["fp"]),
                         (2, 0, 2))
        raw_fp = rise + 1.0 - 0.44
        self.assertAlmostEqual(c["low_fp"]["score"], 100 * (raw_fp + 2) / 4, places=10)
        self.assertAlmostEqual(c["low_fn"]["score"], 100 * (raw + 4) / 6, places=10)
        self.assertEqual(res["files"]["x/b.csv"]["cp_fp"], 2)

    def test_null_and_perfect_changepoints(self):
        a = bench("x/a.csv", 30, range(12, 25), [12, 25])
        res = ss.evaluate([(a, [0] * 30)], train=10)
        for short in ("standard", "low_fp", "low_fn"):
            self.assertEqual(res["cpd"][short]["score"], 0.0)
        # the labels themselves as the prediction: rises at 12, falls at 25: 100
        res = ss.evaluate([(a, a.anomaly)], train=10)
        for short in ("standard", "low_fp", "low_fn"):
            self.assertEqual(res["cpd"][short]["score"], 100.0)
        self.assertEqual(res["outlier"]["f1"], 1.0)

    def test_worse_than_nothing_is_negative(self):
        # predicted 1 on row 10 only: change points 10 and 11, two FPs before the window
        # [12, 29] (-0.22), which is missed (-1): raw -1.22, 100 * (-1.22 + 1) / 2 = -11
        a = bench("x/a.csv", 30, range(12, 25), [12])
        res = ss.evaluate([(a, bits(30, [10]))], train=10)
        self.assertAlmostEqual(res["cpd"]["standard"]["score"], -11.0, places=10)

    def test_no_windows(self):
        b = bench("x/b.csv", 30, [], [])
        res = ss.evaluate([(b, [0] * 30)], train=10)
        self.assertIsNone(res["cpd"]["standard"]["score"])
        self.assertEqual(res["outlier"]["f1"], 0.0)

    def test_empty(self):
        res = ss.evaluate([], train=10)
        self.assertEqual((res["files_scored"], res["outlier"]["f1"], res["cpd"]["windows"]),
                         (0, 0.0, 0))


# ---------------------------------------------------------------------------------------
# Files on disk and the command line (the real training part: 400 rows)

HEADER = ("datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;"
          "Thermocouple;Voltage;Volume Flow RateRMS;anomaly;changepoint")
T0 = datetime.datetime(2020, 3, 9, 10, 0, 0)


def ts(i):
    return (T0 + datetime.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")


def write_bench(path, n, anomaly, changepoint, crlf=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    a, c = bits(n, anomaly), bits(n, changepoint)
    with open(path, "w", newline="") as f:
        f.write(HEADER + ("\r\n" if crlf else "\n"))
        for i in range(n):
            f.write("%s;%s;%.1f;%.1f%s" % (ts(i), ";".join("%.3f" % (k + i / 1000)
                                                           for k in range(8)),
                                           a[i], c[i], "\r\n" if crlf else "\n"))


def write_output(path, n, ones, column="flag", ts_of=ts):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    b = bits(n, ones)
    with open(path, "w") as f:
        f.write("timestamp,value,anomaly_score,%s,predicted,error,warming_up\n" % column)
        for i in range(n):
            f.write("%s,1,0.5,%d,1,0,0\n" % (ts_of(i), b[i]))


# name: (rows, anomaly rows, change points)
SYN = {
    "valve1/0.csv": (450, range(410, 420), [410, 420]),
    "valve1/1.csv": (430, [], []),
    "valve2/0.csv": (420, range(405, 415), [405]),
    "other/1.csv": (440, range(100, 430), [100, 430]),   # fault from the training part
}


class SkabFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="skab_score_test.")
        self.skab = os.path.join(self.tmp, "skab")
        self.res = os.path.join(self.tmp, "res")
        for name, (n, anom, cps) in SYN.items():
            write_bench(os.path.join(self.skab, "data", name), n, anom, cps,
                        crlf=name.startswith("valve1"))
            for s in ss.SENSORS:
                write_output(self.out(name, s), n, [])
        # the anomaly-free run, never scored (no labels)
        os.makedirs(os.path.join(self.skab, "data", "anomaly-free"))
        with open(os.path.join(self.skab, "data", "anomaly-free", "anomaly-free.csv"),
                  "w") as f:
            f.write(HEADER.rsplit(";", 2)[0] + "\n")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def out(self, name, sensor):
        return os.path.join(self.res, name[:-4], ss.sensor_file(sensor))

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = ss.main([self.res, "--skab-dir", self.skab] + list(args))
        return rc, out.getvalue(), err.getvalue()

    def run_json(self, *args):
        jpath = os.path.join(self.tmp, "out.json")
        rc, out, err = self.run_main("--json", jpath, *args)
        self.assertEqual(rc, 0, err)
        with open(jpath) as f:
            return json.load(f), out


class TestCommandLine(SkabFiles):
    def test_file_order(self):
        self.assertEqual(ss.benchmark_files(self.skab),
                         ["valve1/0.csv", "valve1/1.csv", "valve2/0.csv", "other/1.csv"])
        self.assertEqual(ss.sensor_file("Volume Flow RateRMS"), "Volume_Flow_RateRMS.csv")

    def test_null_detector(self):
        doc, out = self.run_json()
        o = doc["outlier"]
        # test rows: 50 + 30 + 20 + 40 = 140; anomalous test rows 10 + 0 + 10 + 30 = 50
        self.assertEqual((o["tp"], o["fp"], o["fn"], o["tn"], o["test_rows"]),
                         (0, 0, 50, 90, 140))
        self.assertEqual((o["f1"], o["far"], o["mar"]), (0.0, 0.0, 100.0))
        # windows: 410, 420 (valve1/0), 405 (valve2/0), 430 (other/1; 100 is in the
        # training part)
        self.assertEqual(doc["cpd"]["windows"], 4)
        self.assertEqual(doc["cpd"]["standard"]["score"], 0.0)
        self.assertEqual(doc["column"], "flag")
        self.assertIn("on column flag", out)

    def test_sensors_fused(self):
        # valve1/0: Current flags 410..414, Pressure 412..419 -> 410..419, the anomaly
        # exactly; change points 410 and 420 are the windows' first rows
        write_output(self.out("valve1/0.csv", "Current"), 450, range(410, 415))
        write_output(self.out("valve1/0.csv", "Pressure"), 450, range(412, 420))
        # other/1: Voltage on from the training part to the end of the fault (429): the
        # first test row 400 is a change point, an FP (the training part's window
        # [100, 160] ends 240 rows before it: -0.11); the fall at 430 is the first row of
        # the window [430, 439] (+1)
        write_output(self.out("other/1.csv", "Voltage"), 440, range(0, 430))
        doc, _ = self.run_json()
        o = doc["outlier"]
        # TP 10 + 30, FN 10 (valve2/0), FP 0, TN 90
        self.assertEqual((o["tp"], o["fp"], o["fn"], o["tn"]), (40, 0, 10, 90))
        self.assertAlmostEqual(o["f1"], 80 / 90, places=12)
        self.assertAlmostEqual(o["mar"], 20.0, places=12)
        c = doc["cpd"]["standard"]
        # 3 windows at their first row (+3), valve2/0 missed (-1), one FP whose previous
        # window [100, 160] is 240 rows back (x > 3: -0.11): raw 1.89 of null -4, perfect 4
        self.assertEqual((c["tp"], c["fn"], c["fp"]), (3, 1, 1))
        self.assertAlmostEqual(c["raw"], 1.89, places=12)
        self.assertAlmostEqual(c["score"], 100 * 5.89 / 8, places=10)

    def test_anomalous_column_chosen(self):
        for name, (n, anom, cps) in SYN.items():
            for s in ss.SENSORS:
                write_output(self.out(name, s), n, anom if s == "Current" else [],
                             column="anomalous")
        doc, out = self.run_json()
        self.assertEqual(doc["column"], "anomalous")
        self.assertEqual(doc["outlier"]["f1"], 1.0)
        self.assertIn("on column anomalous", out)
        # forced onto flag: refused, these outputs have none
        rc, _, err = self.run_main("--column", "flag")
        self.assertEqual(rc, 1)
        self.assertIn("lacks a timestamp or flag column", err)

    def test_mixed_columns_refused(self):
        write_output(self.out("valve2/0.csv", "Current"), 420, [], column="anomalous")
        rc, _, err = self.run_main()
        self.assertEqual(rc, 1)
        self.assertIn("refusing to mix", err)

    def test_file_subset(self):
        write_output(self.out("valve2/0.csv", "Current"), 420, range(405, 415))
        doc, _ = self.run_json("--files", "valve2/0.csv")
        self.assertEqual(list(doc["files"]), ["valve2/0.csv"])
        self.assertEqual(doc["outlier"]["f1"], 1.0)

    def test_command_line(self):
        p = subprocess.run([sys.executable, SCRIPT, self.res, "--skab-dir", self.skab],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("outlier detection: F1 0.0000", p.stdout)
        env = dict(os.environ, SKAB_DIR=self.skab)
        p = subprocess.run([sys.executable, SCRIPT, self.res], capture_output=True,
                           text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)


class TestRefusals(SkabFiles):
    def assertRefused(self, *needles):
        rc, out, err = self.run_main()
        self.assertEqual(rc, 1, "not refused; stderr: %r" % err)
        self.assertEqual(out, "")
        for s in needles:
            self.assertIn(s, err)

    def test_missing_sensor(self):
        os.remove(self.out("valve2/0.csv", "Thermocouple"))
        self.assertRefused("Thermocouple.csv", "missing")

    def test_fewer_rows(self):
        write_output(self.out("valve2/0.csv", "Current"), 419, [])
        self.assertRefused("419 rows", "has 420")

    def test_wrong_timestamp(self):
        write_output(self.out("valve2/0.csv", "Current"), 420, [],
                     ts_of=lambda i: ts(i + (i == 9)))
        self.assertRefused("line 11", "2020-03-09 10:00:09")

    def test_unix_seconds_accepted(self):
        # the same instants as seconds since the epoch are the same timestamps
        epoch = datetime.datetime(1970, 1, 1)
        write_output(self.out("valve2/0.csv", "Current"), 420, [],
                     ts_of=lambda i: "%d" % (T0 + datetime.timedelta(seconds=i)
                                             - epoch).total_seconds())
        self.assertEqual(self.run_main()[0], 0)

    def test_prediction_not_a_bit(self):
        path = self.out("valve2/0.csv", "Current")
        with open(path) as f:
            text = f.read().replace(",1,0.5,0,", ",1,0.5,0.7,", 1)
        with open(path, "w") as f:
            f.write(text)
        self.assertRefused("line 2", "not 0 or 1")

    def test_datetimes_must_increase(self):
        path = os.path.join(self.skab, "data", "valve2", "0.csv")
        with open(path, "a") as f:
            f.write("%s;0;0;0;0;0;0;0;0;0;0\n" % ts(5))
        self.assertRefused("does not follow")


def skab_dir():
    return os.environ.get("SKAB_DIR") or os.path.join(HERE, "..", "..", "shared", "skab")


@unittest.skipUnless(os.path.isdir(os.path.join(skab_dir(), "data", "valve1")),
                     "no SKAB benchmark (set SKAB_DIR)")
class TestRealBenchmark(unittest.TestCase):
    def test_shape(self):
        names = ss.benchmark_files(skab_dir())
        self.assertEqual(len(names), 34)
        self.assertEqual(names[:3], ["valve1/0.csv", "valve1/1.csv", "valve1/2.csv"])
        self.assertEqual(names[-1], "other/14.csv")
        wins = test_rows = anomalous = 0
        for name in names:
            b = ss.read_benchmark(os.path.join(skab_dir(), "data", name), name)
            wins += len(ss.scorable(ss.cp_windows(b.times, b.changepoint)))
            test_rows += len(b.anomaly) - ss.TRAIN
            anomalous += sum(b.anomaly[ss.TRAIN:])
        # 129 change points, two of them (other/2.csv) in the training part
        self.assertEqual(wins, 127)
        self.assertEqual(test_rows, 23801)
        self.assertEqual(anomalous, 12771)


if __name__ == "__main__":
    unittest.main()
