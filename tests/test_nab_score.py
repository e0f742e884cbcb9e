"""Tests of scripts/nab_score.py, the NAB v1.1 scorer (Python standard library only).

Run from tests/:  python3 -m unittest -v test_nab_score   (ctest runs it as nab_score)

Hand-computed examples of every scoring rule, a cross-check of the O(N log N) threshold
sweep against brute force over every threshold on random small corpora, normalisation,
the command line on a small synthetic corpus (null detector 0, perfect detector 100,
refusals of malformed results files), and, when the NAB corpus is there ($NAB_DIR, else
../../shared/nab from this file), the same sanity checks on the real corpus plus a
windowed-Gaussian baseline that must reproduce NAB's published scores.
"""

import contextlib
import csv
import importlib.util
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "scripts", "nab_score.py")

_spec = importlib.util.spec_from_file_location("nab_score", SCRIPT)
ns = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ns)

STD = ns.PROFILE["standard"]          # tp 1, fp 0.11, fn 1
LOW_FP = ns.PROFILE["reward_low_FP_rate"]   # tp 1, fp 0.22, fn 1
LOW_FN = ns.PROFILE["reward_low_FN_rate"]   # tp 1, fp 0.11, fn 2

# sig(-1) = 2 / (1 + e^-5) - 1 = 2 / 1.006737947 - 1 = 0.98661430
SIG_M1 = 0.9866142981514305


def scores_with(n, hits, value=1.0):
    """n zero scores with `value` at the rows in hits."""
    s = [0.0] * n
    for i in hits:
        s[i] = value
    return s


class TestSigmoid(unittest.TestCase):
    def test_zero(self):
        # 2 / (1 + e^0) - 1 = 2/2 - 1 = 0
        self.assertEqual(ns.scaled_sigmoid(0.0), 0.0)

    def test_minus_one(self):
        # 2 / (1 + e^-5) - 1 = 2 / 1.0067379470 - 1 = 0.9866142982
        self.assertAlmostEqual(ns.scaled_sigmoid(-1.0), 0.98661429815, places=10)
        self.assertAlmostEqual(ns.MAX_TP, SIG_M1, places=15)

    def test_half(self):
        # 2 / (1 + e^-2.5) - 1 = 2 / 1.0820849986 - 1 = 0.8482836400
        self.assertAlmostEqual(ns.scaled_sigmoid(-0.5), 0.84828363996, places=10)

    def test_odd(self):
        # 2/(1+e^5x) - 1 is odd: sig(1) = -sig(-1) = -0.98661430
        self.assertAlmostEqual(ns.scaled_sigmoid(1.0), -0.98661429815, places=10)

    def test_beyond_three_is_minus_one(self):
        # at 3 itself: 2 / (1 + e^15) - 1 = -0.99999939, not yet the cap
        self.assertAlmostEqual(ns.scaled_sigmoid(3.0), -0.99999938820, places=10)
        self.assertNotEqual(ns.scaled_sigmoid(3.0), -1.0)
        self.assertEqual(ns.scaled_sigmoid(3.0000001), -1.0)
        self.assertEqual(ns.scaled_sigmoid(1e6), -1.0)   # and no overflow


class TestProbation(unittest.TestCase):
    def test_lengths(self):
        # min(floor(0.15 N), 750)
        self.assertEqual(ns.probation_length(100), 15)
        self.assertEqual(ns.probation_length(4032), 604)    # floor(604.8)
        self.assertEqual(ns.probation_length(5000), 750)
        self.assertEqual(ns.probation_length(22695), 750)
        self.assertEqual(ns.probation_length(6), 0)         # floor(0.9)


class TestScoreFile(unittest.TestCase):
    """One 100-row file: probation p = 15 rows, one window [40, 49] of width w = 10."""
    N = 100
    W = [(40, 49)]

    def score(self, hits, profile=STD, windows=None, threshold=0.5):
        s = scores_with(self.N, hits)
        return ns.score_file(s, self.W if windows is None else windows, threshold, profile)

    def test_first_row_earns_exactly_tp(self):
        # x = -(49 - 40 + 1)/10 = -1: tp * sig(-1)/sig(-1) = 1 exactly
        r = self.score([40])
        self.assertEqual(r.score, 1.0)
        self.assertEqual((r.tp, r.fn, r.fp), (1, 0, 0))

    def test_middle_of_window(self):
        # row 45: x = -(49 - 45 + 1)/10 = -0.5; sig(-0.5)/sig(-1) = 0.84828364/0.98661430
        # = 0.85979257
        self.assertAlmostEqual(self.score([45]).score, 0.85979256691, places=10)

    def test_last_row_of_window(self):
        # row 49: x = -(49 - 49 + 1)/10 = -0.1; sig(-0.1) = 2/(1 + e^-0.5) - 1
        # = 2/1.60653066 - 1 = 0.24491866; / 0.98661430 = 0.24824155
        self.assertAlmostEqual(self.score([49]).score, 0.24824154978, places=10)

    def test_tp_weight_scales(self):
        prof = ns.Profile("x", 2.0, 0.11, 1.0)
        # 2 * 0.85979257
        self.assertAlmostEqual(self.score([45], prof).score, 1.71958513382, places=10)

    def test_second_detection_earns_nothing(self):
        # rows 45 and 47: only 45 counts (0.85979257); 47 alone would be x = -0.3,
        # sig(-0.3)/sig(-1) = 0.63514895/0.98661430 = 0.64376622
        self.assertAlmostEqual(self.score([47]).score, 0.64376621500, places=10)
        r = self.score([45, 47])
        self.assertAlmostEqual(r.score, 0.85979256691, places=10)
        self.assertEqual((r.tp, r.fp), (1, 0))
        # the earliest counts, whatever the scores' order
        s = scores_with(self.N, [45], 0.6)
        s[47] = 0.9
        self.assertAlmostEqual(ns.score_file(s, self.W, 0.5, STD).score, 0.85979256691,
                               places=10)

    def test_missed_window_costs_fn(self):
        r = self.score([])
        self.assertEqual(r.score, -1.0)
        self.assertEqual((r.tp, r.fn, r.fp), (0, 1, 0))
        self.assertEqual(self.score([], LOW_FN).score, -2.0)

    def test_fp_after_window(self):
        # row 60 after [40, 49]: x = |49 - 60| / (10 - 1) = 11/9 = 1.2222;
        # sig = 2/(1 + e^6.1111) - 1 = 2/451.839 - 1 = -0.99557365; cost 0.11 * that
        # = -0.10951310; with the window detected at 40 (+1): 0.89048690
        r = self.score([40, 60])
        self.assertAlmostEqual(r.score, 0.89048689870, places=10)
        self.assertEqual((r.tp, r.fn, r.fp), (1, 0, 1))
        # fp weight 0.22 doubles the cost: 1 - 0.21902620
        self.assertAlmostEqual(self.score([40, 60], LOW_FP).score, 0.78097379739, places=10)

    def test_fp_right_after_window_is_cheap(self):
        # row 50: x = 1/9; sig = 2/(1 + e^0.5556) - 1 = 2/2.74290900 - 1 = -0.27084712;
        # cost 0.11 * -0.27084712 = -0.02979318; window missed -1: -1.02979318
        self.assertAlmostEqual(self.score([50]).score, -1.02979318304, places=10)

    def test_fp_far_after_window_costs_fp(self):
        # row 80: x = 31/9 = 3.44 > 3, sig = -1: cost -0.11; window missed: -1.11
        self.assertAlmostEqual(self.score([80]).score, -1.11, places=12)

    def test_fp_before_any_window_costs_fp(self):
        # row 20, no window before it: -0.11; window missed: -1.11
        r = self.score([20])
        self.assertAlmostEqual(r.score, -1.11, places=12)
        self.assertEqual(r.fp, 1)

    def test_every_fp_counts(self):
        # rows 20, 21, 22 before the window: 3 * -0.11, plus +1 for row 40
        r = self.score([20, 21, 22, 40])
        self.assertAlmostEqual(r.score, 1 - 0.33, places=12)
        self.assertEqual(r.fp, 3)

    def test_fp_uses_the_previous_window(self):
        # windows [20, 29] and [60, 69], detection at row 50: previous window is [20, 29]:
        # x = |29 - 50| / 9 = 2.3333, sig = 2/(1 + e^11.667) - 1 = 2/116619.9 - 1
        # = -0.99998285; cost -0.10999811; both windows missed: -2.10999811
        r = self.score([50], windows=[(20, 29), (60, 69)])
        self.assertAlmostEqual(r.score, -2 + 0.11 * ns.scaled_sigmoid(21 / 9), places=12)
        self.assertAlmostEqual(r.score, -2.10999811, places=8)
        # row 72, after [60, 69]: x = 3/9, sig = 2/(1 + e^1.6667) - 1 = 2/6.29449 - 1
        # = -0.68226179; cost -0.07504880; both missed: -2.07504880
        r = self.score([72], windows=[(20, 29), (60, 69)])
        self.assertAlmostEqual(r.score, -2.07504880, places=8)

    def test_probationary_period_is_ignored(self):
        # p = 15: a detection at row 14 is ignored (window missed: -1); at row 15 it is an
        # FP before any window (-0.11 more)
        self.assertEqual(self.score([0, 5, 14]).score, -1.0)
        self.assertAlmostEqual(self.score([15]).score, -1.11, places=12)

    def test_window_inside_probation_is_ignored(self):
        # window [2, 5] ends before p = 15: never missed, never counted; an FP at row 20
        # then follows it: x = |5 - 20| / 3 = 5 > 3, cost -0.11
        r = self.score([20], windows=[(2, 5)])
        self.assertAlmostEqual(r.score, -0.11, places=12)
        self.assertEqual((r.tp, r.fn, r.fp), (0, 0, 1))

    def test_probation_given(self):
        # probation 50 instead of 15: window [40, 49] ends before it, neither counts nor
        # costs; detections at 20 and 40 are ignored
        r = ns.score_file(scores_with(self.N, [20, 40]), self.W, 0.5, STD, probation=50)
        self.assertEqual((r.score, r.tp, r.fn, r.fp), (0.0, 0, 0, 0))
        # row 60 is scored: FP after [40, 49], x = 11/9: 0.11 * -0.99557365 = -0.10951310
        r = ns.score_file(scores_with(self.N, [60]), self.W, 0.5, STD, probation=50)
        self.assertAlmostEqual(r.score, -0.10951310130, places=10)
        self.assertEqual((r.tp, r.fn, r.fp), (0, 0, 1))
        # probation 0: row 5 is an FP before any window (-0.11), the window missed (-1);
        # with the default p = 15 row 5 is ignored
        r = ns.score_file(scores_with(self.N, [5]), self.W, 0.5, STD, probation=0)
        self.assertAlmostEqual(r.score, -1.11, places=12)
        self.assertEqual(self.score([5]).score, -1.0)

    def test_threshold_is_inclusive(self):
        s = scores_with(self.N, [40], 0.7)
        self.assertEqual(ns.score_file(s, self.W, 0.7, STD).score, 1.0)
        self.assertEqual(ns.score_file(s, self.W, 0.7000001, STD).score, -1.0)

    def test_bad_windows_refused(self):
        with self.assertRaises(ns.NabError):
            ns.score_file([0.0] * 10, [(5, 12)], 0.5, STD)
        with self.assertRaises(ns.NabError):
            ns.score_file([0.0] * 10, [(5, 7), (7, 8)], 0.5, STD)


def brute_force(files, profile):
    """Every candidate threshold (1.1 and each distinct score of a scored row), its corpus
    raw score by score_file(); and the best (highest threshold among the maxima)."""
    cands = {ns.NO_DETECTION}
    for scores, windows in files:
        cands.update(scores[ns.probation_length(len(scores)):])
    curve = [(th, sum(ns.score_file(s, w, th, profile).score for s, w in files))
             for th in sorted(cands, reverse=True)]
    top = max(raw for _, raw in curve)
    best = next((th, raw) for th, raw in curve if raw >= top - 1e-9 * max(1, abs(top)))
    return curve, best


def random_corpus(rng):
    files = []
    levels = [rng.choice([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]) for _ in range(rng.randint(1, 6))]
    for _ in range(rng.randint(1, 4)):
        n = rng.randint(1, 90)
        windows = []
        i = 0
        for _ in range(rng.randint(0, 3)):
            l = i + rng.randint(0, 25)
            r = l + rng.randint(0, 12)   # widths from 1
            if r >= n:
                break
            windows.append((l, r))
            i = r + 1
        if rng.random() < 0.5:
            scores = [rng.choice(levels) for _ in range(n)]
        else:
            scores = [round(rng.random(), 2) for _ in range(n)]
        files.append((scores, windows))
    return files


class TestSweep(unittest.TestCase):
    def test_matches_brute_force_on_random_corpora(self):
        rng = random.Random(20240611)
        for case in range(400):
            files = random_corpus(rng)
            sw = ns.sweep(files)
            for prof in ns.PROFILES:
                curve, (bth, braw) = brute_force(files, prof)
                msg = "case %d, %s, files %r" % (case, prof.name, files)
                self.assertEqual(sw.thresholds, [th for th, _ in curve], msg)
                for k, (th, raw) in enumerate(curve):
                    self.assertAlmostEqual(ns.raw_at(sw, k, prof), raw, places=9, msg=msg)
                th, raw = ns.best_threshold(sw, prof)
                self.assertEqual(th, bth, msg)
                self.assertAlmostEqual(raw, braw, places=9, msg=msg)

    def test_small_example_by_hand(self):
        # One file, 20 rows, p = 3, window [10, 14] (w = 5); scores: row 2 = 0.9 (probation,
        # no candidate), row 5 = 0.8 (FP before any window: -0.11), row 12 = 0.6
        # (x = -(14 - 12 + 1)/5 = -0.6: sig(-0.6) = 2/(1 + e^-3) - 1 = 2/1.04978707 - 1
        # = 0.90514825; / 0.98661430 = 0.91742868), row 10 = 0.3 (first row: 1), row 18 = 0.3 (FP after: x = 4/4 = 1,
        # 0.11 * -0.98661430 = -0.10852757).
        # th 1.1: -1 (missed); th 0.8: -1 - 0.11 = -1.11; th 0.6: 0.91742868 - 0.11
        # = 0.80742868; th 0.3: 1 - 0.11 - 0.10852757 = 0.78147243; th 0: every scored row
        # from 3: FPs at 3..9 (7 * -0.11 = -0.77) and at 15..19 (x = 1/4..5/4). Best: 0.6.
        s = [0.0] * 20
        s[2], s[5], s[12], s[10], s[18] = 0.9, 0.8, 0.6, 0.3, 0.3
        sw = ns.sweep([(s, [(10, 14)])])
        self.assertEqual(sw.thresholds, [1.1, 0.8, 0.6, 0.3, 0.0])
        raws = [ns.raw_at(sw, k, STD) for k in range(5)]
        self.assertAlmostEqual(raws[0], -1.0, places=12)
        self.assertAlmostEqual(raws[1], -1.11, places=12)
        self.assertAlmostEqual(raws[2], 0.80742868, places=8)
        self.assertAlmostEqual(raws[3], 0.78147243, places=8)
        tail = sum(0.11 * ns.scaled_sigmoid(abs(14 - i) / 4) for i in range(15, 20))
        self.assertAlmostEqual(raws[4], 1 - 0.77 + tail, places=12)
        self.assertEqual(ns.best_threshold(sw, STD), (0.6, raws[2]))
        self.assertEqual(sw.detected, [0, 0, 1, 1, 1])
        self.assertEqual(sw.fp, [0, 1, 1, 2, 7 + 5])

    def test_ties_go_to_the_higher_threshold(self):
        # rows 10 (0.9) and 11 (0.5) in window [10, 14]: at 0.5 the window's first detection
        # is still row 10, same score as at 0.9
        s = [0.0] * 20
        s[10], s[11] = 0.9, 0.5
        sw = ns.sweep([(s, [(10, 14)])])
        self.assertEqual(ns.best_threshold(sw, STD), (0.9, 1.0))

    def test_nothing_detected_is_a_candidate(self):
        # every scored row outside windows: the best is to detect nothing, 1.1
        s = [1.0] * 30
        sw = ns.sweep([(s, [])])
        self.assertEqual(ns.best_threshold(sw, STD), (1.1, 0.0))


class TestNormalise(unittest.TestCase):
    def test_null_and_perfect(self):
        for prof in ns.PROFILES:
            self.assertEqual(ns.normalise(-116 * prof.fn, 116, prof), 0.0)
            self.assertEqual(ns.normalise(116 * prof.tp, 116, prof), 100.0)

    def test_between(self):
        # standard, 10 windows: null -10, perfect 10: raw 0 -> 100 * 10/20 = 50
        self.assertEqual(ns.normalise(0.0, 10, STD), 50.0)
        # low FN: null -20, perfect 10: raw 0 -> 100 * 20/30 = 66.67; raw -25 -> -16.67
        self.assertAlmostEqual(ns.normalise(0.0, 10, LOW_FN), 200 / 3, places=12)
        self.assertAlmostEqual(ns.normalise(-25.0, 10, LOW_FN), -50 / 3, places=12)

    def test_no_window(self):
        self.assertIsNone(ns.normalise(-0.5, 0, STD))


# ---------------------------------------------------------------------------------------
# A small synthetic corpus on disk, and the command line

SYN_FILES = {
    # name: (rows, windows as row pairs)
    "catA/one.csv": (200, [(60, 69), (150, 164)]),
    "catA/two.csv": (120, [(80, 89)]),
    "catB/three.csv": (300, [(100, 119), (200, 209), (250, 259)]),
    "catC/quiet.csv": (90, []),
}


def syn_ts(i):
    # 5-minute steps from 2020-01-01 00:00:00
    return "2020-01-%02d %02d:%02d:00" % (1 + i // 288, (i // 12) % 24, (i % 12) * 5)


class SyntheticCorpus(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nab_score_test.")
        self.nab = os.path.join(self.tmp, "nab")
        self.res = os.path.join(self.tmp, "results")
        labels = {}
        for name, (n, windows) in SYN_FILES.items():
            path = os.path.join(self.nab, "data", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("timestamp,value\n")
                for i in range(n):
                    f.write("%s,%d\n" % (syn_ts(i), i % 7))
            # bounds written as NAB does, with a .ffffff suffix
            labels[name] = [[syn_ts(l) + ".000000", syn_ts(r) + ".000000"] for l, r in windows]
        os.makedirs(os.path.join(self.nab, "labels"))
        with open(os.path.join(self.nab, "labels", "combined_windows.json"), "w") as f:
            json.dump(labels, f)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def write_results(self, det, score_of, fmt="%r", ts=syn_ts, rows=None):
        """score_of(name, i, windows) -> score; writes results/<cat>/<det>_<file>."""
        for name, (n, windows) in SYN_FILES.items():
            cat, base = name.split("/")
            path = os.path.join(self.res, cat, "%s_%s" % (det, base))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("timestamp,value,anomaly_score,label\n")
                for i in range(n if rows is None else rows(name, n)):
                    f.write("%s,%d,%s,0\n" % (ts(i), i % 7, fmt % score_of(name, i, windows)))

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = ns.main([self.res, "--nab-dir", self.nab] + list(args))
        return rc, out.getvalue(), err.getvalue()

    def run_json(self, *args):
        jpath = os.path.join(self.tmp, "out.json")
        rc, out, err = self.run_main("--json", jpath, *args)
        self.assertEqual(rc, 0, err)
        with open(jpath) as f:
            return json.load(f), out


class TestSyntheticCorpus(SyntheticCorpus):
    def test_null_detector_scores_zero(self):
        # all scores 0: th 1.1 gives -6 * fn; th 0 detects every scored row: 6 windows at
        # their first row (+6) but ~600 FP rows at up to -0.11 each: far worse
        self.write_results("null", lambda name, i, w: 0.0)
        res, out = self.run_json()
        for prof in ns.PROFILES:
            p = res["profiles"][prof.name]
            self.assertEqual(p["normalised"], 0.0, prof.name)
            self.assertEqual(p["threshold"], 1.1)
            self.assertEqual(p["raw"], -6 * prof.fn)
        self.assertIn("standard", out)
        self.assertEqual(res["totals"], {"threshold": 1.1, "tp": 0, "fp": 0, "fn": 6,
                                         "windows": 6})

    def test_perfect_detector_scores_hundred(self):
        self.write_results("oracle", lambda name, i, w: 1.0 if any(i == l for l, _ in w) else 0.0)
        res, _ = self.run_json()
        for prof in ns.PROFILES:
            self.assertEqual(res["profiles"][prof.name]["normalised"], 100.0, prof.name)
            self.assertEqual(res["profiles"][prof.name]["threshold"], 1.0)
        self.assertEqual(res["categories"]["catA"]["normalised"], 100.0)
        self.assertEqual(res["categories"]["catA"]["tp"], 3)
        self.assertIsNone(res["categories"]["catC"]["normalised"])   # no window

    def test_figures_match_score_file(self):
        # detections: first row of catA/one's first window, the middle of catB's first
        # (row 110 of [100, 119]: x = -(119 - 110 + 1)/20 = -0.5), FP at row 100 of quiet
        # (before any window: -0.11). Standard: +1 + 0.85979257 - 0.11, and 4 of the 6
        # windows missed, -4: raw -2.25020743, score 100 * (raw + 6)/12 = 31.24827139
        hits = {("catA/one.csv", 60), ("catB/three.csv", 110), ("catC/quiet.csv", 80)}
        self.write_results("det", lambda name, i, w: 0.9 if (name, i) in hits else 0.1)
        res, out = self.run_json()
        p = res["profiles"]["standard"]
        self.assertEqual(p["threshold"], 0.9)
        self.assertAlmostEqual(p["raw"], -2.25020743, places=7)
        self.assertAlmostEqual(p["normalised"], 31.24827139, places=6)
        self.assertEqual((p["tp"], p["fp"], p["fn"]), (2, 1, 4))
        c = res["categories"]["catB"]
        # catB alone: 0.85979257 - 2 = -1.14020743; null -3, perfect 3: 30.99654282
        self.assertAlmostEqual(c["normalised"], 30.99654282, places=6)
        self.assertIn("TP 2/6 windows, FP 1 rows, FN 4 windows", out)

    def test_detector_inferred_or_chosen(self):
        self.write_results("aaa", lambda name, i, w: 0.0)
        res, out = self.run_json()
        self.assertIn("of aaa", out)
        self.write_results("bbb", lambda name, i, w: 0.0)
        rc, _, err = self.run_main()
        self.assertEqual(rc, 1)
        self.assertIn("--detector", err)
        res, out = self.run_json("--detector", "bbb")
        self.assertIn("of bbb", out)

    def test_timestamp_forms_accepted(self):
        # ISO 'T' separator and a .000000 fraction name the same instants
        self.write_results("iso", lambda name, i, w: 0.0,
                           ts=lambda i: syn_ts(i).replace(" ", "T") + ".000000")
        self.assertEqual(self.run_main()[0], 0)

    def test_command_line(self):
        # the script itself, as a program: exit 0, the table on stdout
        self.write_results("cli", lambda name, i, w: 0.0)
        p = subprocess.run([sys.executable, SCRIPT, self.res, "--nab-dir", self.nab],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("reward_low_FN_rate", p.stdout)
        self.assertIn("catB", p.stdout)
        # NAB_DIR in the environment stands for --nab-dir
        env = dict(os.environ, NAB_DIR=self.nab)
        p = subprocess.run([sys.executable, SCRIPT, self.res], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)


class TestRefusals(SyntheticCorpus):
    def assertRefused(self, *needles):
        rc, out, err = self.run_main("--detector", "bad")
        self.assertEqual(rc, 1, "not refused; stderr: %r" % err)
        self.assertEqual(out, "")
        for s in needles:
            self.assertIn(s, err)

    def test_missing_file(self):
        self.write_results("bad", lambda name, i, w: 0.0)
        os.remove(os.path.join(self.res, "catB", "bad_three.csv"))
        self.assertRefused("missing", "bad_three.csv")

    def test_no_results_at_all(self):
        os.makedirs(self.res)
        rc, _, err = self.run_main()
        self.assertEqual(rc, 1)
        self.assertIn("no results files", err)

    def test_fewer_rows(self):
        self.write_results("bad", lambda name, i, w: 0.0,
                           rows=lambda name, n: n - 1 if name == "catA/two.csv" else n)
        self.assertRefused("bad_two.csv", "119 rows", "120")

    def test_more_rows(self):
        self.write_results("bad", lambda name, i, w: 0.0,
                           rows=lambda name, n: n + 1 if name == "catA/two.csv" else n)
        self.assertRefused("bad_two.csv", "121 rows")

    def test_timestamp_mismatch(self):
        self.write_results("bad", lambda name, i, w: 0.0,
                           ts=lambda i: syn_ts(i if i != 42 else 43))
        self.assertRefused("timestamp", "line 44")

    def test_score_above_one(self):
        self.write_results("bad", lambda name, i, w: 1.5 if i == 7 else 0.0)
        self.assertRefused("outside [0, 1]", "line 9")

    def test_negative_score(self):
        self.write_results("bad", lambda name, i, w: -0.01 if i == 7 else 0.0)
        self.assertRefused("outside [0, 1]")

    def test_not_a_number(self):
        self.write_results("bad", lambda name, i, w: "abc" if i == 7 else "0", fmt="%s")
        self.assertRefused("not a number", "'abc'")

    def test_nan(self):
        self.write_results("bad", lambda name, i, w: "nan" if i == 7 else "0", fmt="%s")
        self.assertRefused("outside [0, 1]", "'nan'")

    def test_empty_score(self):
        self.write_results("bad", lambda name, i, w: "" if i == 7 else "0", fmt="%s")
        self.assertRefused("not a number")

    def test_no_score_column(self):
        self.write_results("bad", lambda name, i, w: 0.0)
        path = os.path.join(self.res, "catA", "bad_one.csv")
        with open(path) as f:
            text = f.read().replace("anomaly_score", "score", 1)
        with open(path, "w") as f:
            f.write(text)
        self.assertRefused("anomaly_score column")

    def test_command_line_exit_status(self):
        self.write_results("bad", lambda name, i, w: 2.0)
        p = subprocess.run([sys.executable, SCRIPT, self.res, "--nab-dir", self.nab],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("refused", p.stderr)


class TestConvert(SyntheticCorpus):
    def test_convert_raw_labels_windows(self):
        # anomalyctl-like output -> NAB results file with label 1 inside windows
        corpus = {df.name: df for df in ns.load_corpus(self.nab)}
        df = corpus["catA/two.csv"]
        raw = os.path.join(self.tmp, "raw.csv")
        with open(raw, "w") as f:
            f.write("timestamp,value,anomaly_score,flag,predicted,error,warming_up\n")
            for i, t in enumerate(df.timestamps):
                f.write("%s,%s,%r,0,1.0,0.5,%d\n" % (t, df.values[i], i / 1000, i < 20))
        dst = os.path.join(self.tmp, "det_two.csv")
        ns.convert_raw(raw, df, dst)
        with open(dst) as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[0], ["timestamp", "value", "anomaly_score", "label"])
        self.assertEqual(len(rows), 121)
        self.assertEqual([r[3] for r in rows[1:]].count("1"), 10)
        self.assertEqual((rows[80][3], rows[81][3], rows[90][3], rows[91][3]),
                         ("0", "1", "1", "0"))      # rows 79, 80, 89, 90
        self.assertEqual(float(rows[101][2]), 0.1)
        self.assertEqual(rows[1][0], df.timestamps[0])
        # another column read as the score: flag, 1 on row 7 only
        with open(raw, "w") as f:
            f.write("timestamp,value,anomaly_score,flag\n")
            for i, t in enumerate(df.timestamps):
                f.write("%s,%s,0.5,%d\n" % (t, df.values[i], i == 7))
        flags = ns.read_scores(raw, df, column="flag")
        self.assertEqual(flags.count(1.0), 1)
        self.assertEqual(flags[7], 1.0)
        self.assertEqual(ns.read_scores(raw, df)[7], 0.5)
        with self.assertRaisesRegex(ns.NabError, "lacks a timestamp or anomalous column"):
            ns.read_scores(raw, df, column="anomalous")
        # and it refuses what read_scores refuses
        with open(raw, "a") as f:
            f.write("2099-01-01 00:00:00,1,0.5,0,1,0,0\n")
        with self.assertRaises(ns.NabError):
            ns.convert_raw(raw, df, dst)


# ---------------------------------------------------------------------------------------
# The real corpus


def nab_dir():
    return os.environ.get("NAB_DIR") or os.path.join(HERE, "..", "..", "shared", "nab")


def windowed_gaussian(values, size=6400, step=100):
    """NAB's windowedGaussian baseline: score = 1 - Q(|z|), z against the mean and
    (population) standard deviation of up to `size` previous values; the window grows by
    one value per row until full, then slides by `step` values every `step` rows."""
    out = []
    win, buf = [], []
    mean, std = 0.0, 1.0
    k0, s1, s2 = None, 0.0, 0.0      # growing phase: running sums of (x - k0)
    for x in values:
        score = 0.0
        if win:
            z = abs(x - mean) / std
            score = 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))
        if len(win) < size:
            win.append(x)
            if k0 is None:
                k0 = x
            s1 += x - k0
            s2 += (x - k0) ** 2
            n = len(win)
            mean = k0 + s1 / n
            var = max(s2 / n - (s1 / n) ** 2, 0.0)
            std = math.sqrt(var) or 1e-6
        else:
            buf.append(x)
            if len(buf) == step:
                win = win[step:] + buf
                buf = []
                mean = math.fsum(win) / len(win)
                std = math.sqrt(math.fsum((v - mean) ** 2 for v in win) / len(win)) or 1e-6
        out.append(score)
    return out


@unittest.skipUnless(os.path.isfile(os.path.join(nab_dir(), "labels", "combined_windows.json")),
                     "no NAB corpus (set NAB_DIR)")
class TestRealCorpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.corpus = ns.load_corpus(nab_dir())

    def test_corpus_shape(self):
        self.assertEqual(len(self.corpus), 58)
        self.assertEqual(sum(len(df.timestamps) for df in self.corpus), 365558)
        self.assertEqual(sum(len(df.windows) for df in self.corpus), 116)

    def test_null_detector(self):
        res = ns.evaluate(self.corpus, {df.name: [0.0] * len(df.timestamps)
                                        for df in self.corpus})
        for prof in ns.PROFILES:
            self.assertEqual(res["profiles"][prof.name]["normalised"], 0.0)

    def test_perfect_detector(self):
        scores = {}
        for df in self.corpus:
            s = [0.0] * len(df.timestamps)
            for l, _ in df.windows:
                s[l] = 1.0
            scores[df.name] = s
        res = ns.evaluate(self.corpus, scores)
        for prof in ns.PROFILES:
            self.assertEqual(res["profiles"][prof.name]["normalised"], 100.0)
        self.assertEqual(res["totals"]["tp"], 116)

    def test_windowed_gaussian_reproduces_nab(self):
        # NAB's published windowedGaussian scores (results/final_results.json):
        # standard 39.649523496, reward_low_FP_rate 20.867985825, reward_low_FN_rate
        # 47.410027158. NAB's Python 2 wrote the scores with str(), 12 significant digits,
        # which rounds 1 - Q(z) to exactly 1.0 from z ~ 7.1 on: do the same.
        scores = {}
        for df in self.corpus:
            vals = [float(v) for v in df.values]
            scores[df.name] = [float("%.12g" % s) for s in windowed_gaussian(vals)]
        res = ns.evaluate(self.corpus, scores)
        p = res["profiles"]
        self.assertAlmostEqual(p["standard"]["normalised"], 39.649523496, places=6)
        self.assertAlmostEqual(p["reward_low_FP_rate"]["normalised"], 20.867985825, places=6)
        self.assertAlmostEqual(p["reward_low_FN_rate"]["normalised"], 47.410027158, places=6)
        self.assertEqual(p["standard"]["fp"], 409)       # NAB's score file: FP 409


if __name__ == "__main__":
    unittest.main()
