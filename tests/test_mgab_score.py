"""Tests of scripts/mgab_score.py, the MGAB scorer (Python standard library only).

Run from tests/:  python3 -m unittest -v test_mgab_score   (ctest runs it as mgab_score)

Hand-computed examples of every rule of ../shared/mgab/README.md (TP/FN per window, FP
per run of flagged rows outside windows and outside the warm-up, totals summed before
the ratios), the edge cases (a run straddling a window's edge or the warm-up's end,
flags only in the warm-up, no flags, empty files), the command line on a small
synthetic benchmark with its refusals, and, when the benchmark is there ($MGAB_DIR,
else ../../shared/mgab from this file), its shape.
"""

import contextlib
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
SCRIPT = os.path.join(HERE, "..", "scripts", "mgab_score.py")

_spec = importlib.util.spec_from_file_location("mgab_score", SCRIPT)
ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ms)


def bits(n, ones):
    """n zeros with 1 at the rows in ones (ranges welcome)."""
    b = [0] * n
    for i in ones:
        b[i] = 1
    return b


# One 20-row file: warm-up rows 0-2, windows [5, 8] and [14, 16].
N = 20
ANOM = bits(N, list(range(5, 9)) + list(range(14, 17)))
IGN = bits(N, range(3))


def score(flag_rows, anomaly=ANOM, ignored=IGN):
    return ms.score_flags(bits(len(anomaly), flag_rows), anomaly, ignored)


class TestWindows(unittest.TestCase):
    def test_runs(self):
        self.assertEqual(ms.windows_of(ANOM), [(5, 8), (14, 16)])

    def test_at_the_edges(self):
        # a window on row 0 and one ending on the last row; two adjacent runs are one
        self.assertEqual(ms.windows_of([1, 1, 0, 0, 1]), [(0, 1), (4, 4)])
        self.assertEqual(ms.windows_of([1, 1, 1]), [(0, 2)])
        self.assertEqual(ms.windows_of([]), [])
        self.assertEqual(ms.windows_of([0, 0]), [])


class TestScoreFlags(unittest.TestCase):
    def test_every_rule_at_once(self):
        # flags 1 (warm-up: not an FP), 3-4-5 (3, 4 outside, 5 inside [5, 8]: TP and one
        # FP), 10-11 (one FP), 13 (FP), 17 (FP, right after [14, 16], which has no flag:
        # FN): TP 1, FP 4, FN 1, 8 flagged rows
        self.assertEqual(score([1, 3, 4, 5, 10, 11, 13, 17]), ms.Counts(1, 4, 1, 2, 8))

    def test_one_flag_per_window(self):
        self.assertEqual(score([8, 14]), ms.Counts(2, 0, 0, 2, 2))
        # several flags in one window still make one TP
        self.assertEqual(score([5, 6, 7, 8]), ms.Counts(1, 0, 1, 2, 4))

    def test_run_straddling_the_right_edge(self):
        # 7, 8 inside [5, 8], 9, 10 after it: TP, and one FP for 9-10
        self.assertEqual(score([7, 8, 9, 10]), ms.Counts(1, 1, 1, 2, 4))

    def test_run_straddling_the_left_edge(self):
        # 12, 13 before [14, 16], 14 inside: TP, one FP
        self.assertEqual(score([12, 13, 14]), ms.Counts(1, 1, 1, 2, 3))

    def test_run_across_a_whole_window(self):
        # 4..9: row 4 before [5, 8] and row 9 after it are flagged rows outside every
        # window but not consecutive such rows (the window's rows lie between): two FPs
        self.assertEqual(score(range(4, 10)), ms.Counts(1, 2, 1, 2, 6))

    def test_run_between_two_windows(self):
        # 9..13, all outside: one run, one FP
        self.assertEqual(score(range(9, 14)), ms.Counts(0, 1, 2, 2, 5))
        # 9..11 and 13: two runs
        self.assertEqual(score([9, 10, 11, 13]), ms.Counts(0, 2, 2, 2, 4))

    def test_flags_only_in_the_warm_up(self):
        self.assertEqual(score([0, 1, 2]), ms.Counts(0, 0, 2, 2, 3))

    def test_run_straddling_the_end_of_the_warm_up(self):
        # 1..4: 1, 2 ignored, 3, 4 one FP
        self.assertEqual(score([1, 2, 3, 4]), ms.Counts(0, 1, 2, 2, 4))

    def test_window_inside_the_warm_up_counts(self):
        # warm-up 0..5, window [3, 6]: a flag at 4 finds it (the warm-up only excuses FPs)
        anom, ign = bits(10, range(3, 7)), bits(10, range(6))
        self.assertEqual(score([4], anom, ign), ms.Counts(1, 0, 0, 1, 1))
        self.assertEqual(score([], anom, ign), ms.Counts(0, 0, 1, 1, 0))

    def test_no_flags(self):
        self.assertEqual(score([]), ms.Counts(0, 0, 2, 2, 0))

    def test_flag_on_the_last_row(self):
        self.assertEqual(score([19]), ms.Counts(0, 1, 2, 2, 1))

    def test_empty_file(self):
        self.assertEqual(ms.score_flags([], [], []), ms.Counts(0, 0, 0, 0, 0))

    def test_lengths_must_agree(self):
        with self.assertRaises(ValueError):
            ms.score_flags([0, 1], [0, 0, 0], [0, 0, 0])


class TestTotals(unittest.TestCase):
    def test_prf(self):
        # P = 3/4, R = 3/5, F1 = 2 * 0.45 / 1.35 = 2/3
        p, r, f1 = ms.prf(3, 1, 2)
        self.assertEqual((p, r), (0.75, 0.6))
        self.assertAlmostEqual(f1, 2 / 3, places=15)

    def test_no_division_by_zero(self):
        # nothing flagged, windows missed: P 0 (0/0), R 0, F1 0
        self.assertEqual(ms.prf(0, 0, 5), (0.0, 0.0, 0.0))
        # only false alarms
        self.assertEqual(ms.prf(0, 4, 0), (0.0, 0.0, 0.0))
        # nothing at all
        self.assertEqual(ms.prf(0, 0, 0), (0.0, 0.0, 0.0))
        t = ms.totals([])
        self.assertEqual((t.files, t.tp, t.fp, t.fn, t.f1), (0, 0, 0, 0, 0.0))

    def test_sums_before_ratios(self):
        # file A: TP 1, FP 0, FN 0 (F1 1); file B: TP 0, FP 3, FN 1 (F1 0). Totals TP 1,
        # FP 3, FN 1: P 1/4, R 1/2, F1 2 * 1/8 / (3/4) = 1/3 (the mean of F1s would be 1/2)
        t = ms.totals([ms.Counts(1, 0, 0, 1, 1), ms.Counts(0, 3, 1, 1, 7)])
        self.assertEqual((t.files, t.tp, t.fp, t.fn, t.windows), (2, 1, 3, 1, 2))
        self.assertEqual((t.precision, t.recall), (0.25, 0.5))
        self.assertAlmostEqual(t.f1, 1 / 3, places=15)


# ---------------------------------------------------------------------------------------
# Files on disk and the command line


def write_bench(path, anomaly, ignored):
    with open(path, "w") as f:
        f.write(",value,is_anomaly,is_ignored\n")
        for i, (a, g) in enumerate(zip(anomaly, ignored)):
            f.write("%d,%r,%d,%d\n" % (i, 0.5 + i / 1000, a, g))


def write_output(path, flags, steps=None, header="timestamp,value,anomaly_score,flag,"
                                                 "predicted,error,warming_up",
                 flag_text=None):
    with open(path, "w") as f:
        f.write(header + "\n")
        for i, fl in enumerate(flags):
            step = i if steps is None else steps[i]
            text = str(fl) if flag_text is None else flag_text(i, fl)
            f.write("%s,0.5,%s,%s,0.5,0,0\n" % (step, "0.9" if fl else "0.1", text))


class MgabFiles(unittest.TestCase):
    """A three-file benchmark and its outputs on disk."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mgab_score_test.")
        self.mgab = os.path.join(self.tmp, "mgab")
        self.res = os.path.join(self.tmp, "res")
        os.makedirs(self.mgab)
        os.makedirs(self.res)
        # 1.csv: the 20-row file above; 2.csv: 30 rows, warm-up 0-2, window [20, 24]
        self.anom2 = bits(30, range(20, 25))
        write_bench(os.path.join(self.mgab, "1.csv"), ANOM, IGN)
        write_bench(os.path.join(self.mgab, "2.csv"), self.anom2, bits(30, range(3)))
        # 10.csv sorts after 2.csv: an empty file (header only)
        write_bench(os.path.join(self.mgab, "10.csv"), [], [])
        write_output(os.path.join(self.res, "1.csv"), bits(N, [1, 3, 4, 5, 10, 11, 13, 17]))
        write_output(os.path.join(self.res, "2.csv"), bits(30, [10, 22, 23]))
        write_output(os.path.join(self.res, "10.csv"), [])

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = ms.main([self.res, "--mgab-dir", self.mgab] + list(args))
        return rc, out.getvalue(), err.getvalue()

    def run_json(self, *args):
        jpath = os.path.join(self.tmp, "out.json")
        rc, out, err = self.run_main("--json", jpath, *args)
        self.assertEqual(rc, 0, err)
        with open(jpath) as f:
            return json.load(f), out


class TestCommandLine(MgabFiles):
    def test_files_in_numeric_order(self):
        self.assertEqual(ms.benchmark_files(self.mgab), ["1.csv", "2.csv", "10.csv"])

    def test_totals(self):
        # 1.csv: TP 1, FP 4, FN 1; 2.csv: TP 1 (22, 23 in [20, 24]), FP 1 (row 10), FN 0;
        # 10.csv: nothing. Totals TP 2, FP 5, FN 1: P 2/7, R 2/3, F1 = 2 (4/21) / (20/21)
        # = 0.4
        doc, out = self.run_json()
        t = doc["totals"]
        self.assertEqual((t["files"], t["tp"], t["fp"], t["fn"], t["windows"]),
                         (3, 2, 5, 1, 3))
        self.assertAlmostEqual(t["precision"], 2 / 7, places=12)
        self.assertAlmostEqual(t["recall"], 2 / 3, places=12)
        self.assertAlmostEqual(t["f1"], 0.4, places=12)
        self.assertEqual(doc["files"]["2.csv"], {"tp": 1, "fp": 1, "fn": 0, "windows": 1,
                                                 "flagged": 3})
        self.assertIn("F1 0.4000", out)
        self.assertEqual(list(doc["files"]), ["1.csv", "2.csv", "10.csv"])

    def test_file_subset(self):
        doc, _ = self.run_json("--files", "2.csv")
        self.assertEqual((doc["totals"]["tp"], doc["totals"]["fp"]), (1, 1))
        self.assertEqual(list(doc["files"]), ["2.csv"])

    def test_rows_truncates_the_benchmark(self):
        # the first 22 rows of 2.csv: window [20, 21] (cut), found by the flag at 21
        write_output(os.path.join(self.res, "2.csv"), bits(22, [21]))
        doc, _ = self.run_json("--files", "2.csv", "--rows", "22")
        self.assertEqual(doc["files"]["2.csv"], {"tp": 1, "fp": 0, "fn": 0, "windows": 1,
                                                 "flagged": 1})
        # more rows than the file has: refused
        rc, _, err = self.run_main("--files", "2.csv", "--rows", "31")
        self.assertEqual(rc, 1)
        self.assertIn("fewer than the 31", err)

    def test_no_flags_at_all(self):
        for name, n in (("1.csv", N), ("2.csv", 30)):
            write_output(os.path.join(self.res, name), [0] * n)
        doc, out = self.run_json()
        t = doc["totals"]
        self.assertEqual((t["tp"], t["fp"], t["fn"], t["precision"], t["recall"], t["f1"]),
                         (0, 0, 3, 0.0, 0.0, 0.0))

    def test_other_column(self):
        # score another 0/1 column (anomalous): 1 on row 6 only of 1.csv
        write_output(os.path.join(self.res, "1.csv"), bits(N, [6]),
                     header="timestamp,value,anomaly_score,anomalous,predicted,error,"
                            "warming_up")
        doc, _ = self.run_json("--files", "1.csv", "--column", "anomalous")
        self.assertEqual(doc["files"]["1.csv"]["tp"], 1)
        self.assertEqual(doc["column"], "anomalous")

    def test_command_line(self):
        p = subprocess.run([sys.executable, SCRIPT, self.res, "--mgab-dir", self.mgab],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("TP 2, FP 5, FN 1", p.stdout)
        env = dict(os.environ, MGAB_DIR=self.mgab)
        p = subprocess.run([sys.executable, SCRIPT, self.res], capture_output=True,
                           text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)


class TestRefusals(MgabFiles):
    def assertRefused(self, *needles):
        rc, out, err = self.run_main()
        self.assertEqual(rc, 1, "not refused; stderr: %r" % err)
        self.assertEqual(out, "")
        for s in needles:
            self.assertIn(s, err)

    def test_missing_output(self):
        os.remove(os.path.join(self.res, "2.csv"))
        self.assertRefused("no output for 2.csv")

    def test_fewer_rows(self):
        write_output(os.path.join(self.res, "2.csv"), [0] * 29)
        self.assertRefused("29 rows", "has 30")

    def test_wrong_time_step(self):
        write_output(os.path.join(self.res, "2.csv"), [0] * 30,
                     steps=[i if i != 7 else 8 for i in range(30)])
        self.assertRefused("line 9", "time step '7'")

    def test_flag_not_a_bit(self):
        write_output(os.path.join(self.res, "2.csv"), [0] * 30,
                     flag_text=lambda i, fl: "2" if i == 4 else "0")
        self.assertRefused("line 6", "not 0 or 1")

    def test_no_flag_column(self):
        write_output(os.path.join(self.res, "2.csv"), [0] * 30,
                     header="timestamp,value,anomaly_score,alert,predicted,error,warming_up")
        self.assertRefused("lacks a timestamp or flag column")

    def test_empty_output_file(self):
        open(os.path.join(self.res, "10.csv"), "w").close()
        self.assertRefused("empty file")

    def test_bad_benchmark_label(self):
        with open(os.path.join(self.mgab, "2.csv"), "a") as f:
            f.write("30,0.5,0.5,0\n")
        self.assertRefused("is_anomaly '0.5' is not 0 or 1")

    def test_exit_status(self):
        os.remove(os.path.join(self.res, "1.csv"))
        p = subprocess.run([sys.executable, SCRIPT, self.res, "--mgab-dir", self.mgab],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("refused", p.stderr)


def mgab_dir():
    return os.environ.get("MGAB_DIR") or os.path.join(HERE, "..", "..", "shared", "mgab")


@unittest.skipUnless(os.path.isfile(os.path.join(mgab_dir(), "1.csv")),
                     "no MGAB benchmark (set MGAB_DIR)")
class TestRealBenchmark(unittest.TestCase):
    def test_shape(self):
        # ten files of 100,000 rows, ten windows of 401 rows each, 257 warm-up rows
        names = ms.benchmark_files(mgab_dir())
        self.assertEqual(names, ["%d.csv" % k for k in range(1, 11)])
        b = ms.read_benchmark(os.path.join(mgab_dir(), "1.csv"))
        self.assertEqual(len(b.steps), 100000)
        wins = ms.windows_of(b.anomaly)
        self.assertEqual(len(wins), 10)
        self.assertEqual({r - l + 1 for l, r in wins}, {401})
        self.assertEqual(sum(b.ignored), 257)
        self.assertEqual(b.steps[:2], ["0", "1"])
        # the null detector and a perfect one
        self.assertEqual(ms.score_flags([0] * 100000, b.anomaly, b.ignored),
                         ms.Counts(0, 0, 10, 10, 0))
        self.assertEqual(ms.score_flags(b.anomaly, b.anomaly, b.ignored),
                         ms.Counts(10, 0, 0, 10, 4010))


if __name__ == "__main__":
    unittest.main()
