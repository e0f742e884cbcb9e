"""test_anomalyctl.py - `anomalyctl score` as a user runs it: the real binary on real files.

Every bad input gets a clear message on stderr and loses nothing: the output keeps one
row per input row, in order. Run by ctest as
    python3 -m unittest -v test_anomalyctl   (ANOMALYCTL=path/to/anomalyctl)
Python standard library only.
"""

import csv
import io
import math
import os
import re
import subprocess
import tempfile
import unittest

BIN = os.environ.get("ANOMALYCTL", "")
HEADER = "timestamp,value,anomaly_score,flag,anomalous,predicted,error,warming_up"


def run(args, stdin=None):
    p = subprocess.run([BIN] + args, input=stdin, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def sine_csv(n, start=1_600_000_000, step=300, spike_at=None):
    lines = ["timestamp,value"]
    for t in range(n):
        v = math.sin(2 * math.pi * t / 48) + 0.05 * math.sin(7.3 * t)
        if t == spike_at:
            v += 6.0
        lines.append(f"{start + step * t},{v:.6f}")
    return "\n".join(lines) + "\n"


@unittest.skipUnless(BIN and os.access(BIN, os.X_OK), "ANOMALYCTL not set to the binary")
class ScoreCLI(unittest.TestCase):
    def test_one_row_per_input_row_and_spike_flagged(self):
        rc, out, err = run(["score", "--train-after", "300", "--cooldown", "50", "-"],
                           sine_csv(1500, spike_at=1200))
        self.assertEqual(rc, 0, err)
        rows = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(out.splitlines()[0], HEADER)
        self.assertEqual(len(rows), 1500)
        flagged = [i for i, r in enumerate(rows) if r["flag"] == "1"]
        self.assertIn(1200, flagged, f"flags at {flagged}")
        for r in rows:
            s = float(r["anomaly_score"])
            self.assertTrue(0.0 <= s <= 1.0)
        self.assertEqual(rows[-1]["warming_up"], "0")
        self.assertIn("1500 rows", err)
        self.assertIn("trainings", err)

    def test_nab_timestamps(self):
        data = "timestamp,value\n" + "".join(
            f"2014-07-01 {h:02d}:{m:02d}:00,{10 + (h * 60 + m) % 7}\n"
            for h in range(24) for m in range(0, 60, 5))
        rc, out, err = run(["score", "-"], data)
        self.assertEqual(rc, 0, err)
        rows = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(len(rows), 288)
        self.assertEqual(rows[5]["timestamp"], "2014-07-01 00:25:00")

    def test_bad_rows_are_reported_and_keep_their_place(self):
        good = sine_csv(60).splitlines()[1:]
        bad = [
            "not a row",                      # 1 field
            "1600000100,abc",                 # not a number
            "1600000100,nan",                 # refused: nan
            "1600000100,inf",                 # refused: inf
            "1600000100,-inf",                # refused: inf
            "1600000100,1e31",                # refused: out of range
            "2014-13-01 00:00:00,1",          # bad month
            "1,2,3",                          # three fields
            "1599999000,1.0",                 # time going backwards
            "1600000100," + "9" * 5000,       # a giant line
            "",                               # blank: skipped, no row
        ]
        lines = ["timestamp,value"] + good[:30] + bad + good[30:]
        data = "\r\n".join(lines)  # CRLF, and no newline at the very end (truncated file)
        rc, out, err = run(["score", "-"], data)
        self.assertEqual(rc, 0, err)
        rows = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(len(rows), 60 + len(bad) - 1)  # every row but the blank line
        # line numbers count the header: the first bad row is line 32
        for line, word in [(32, "not two comma-separated"), (33, "value is not a number"),
                           (34, "value refused (nan)"), (35, "value refused (inf)"),
                           (36, "value refused (inf)"), (37, "value refused (out_of_range)"),
                           (38, "bad timestamp"), (39, "not two comma-separated"),
                           (40, "value refused (time_backwards)"), (41, "line too long")]:
            self.assertIn(f"-:{line}: {word}", err)
        for k in range(30, 40):  # the bad rows score 0, unflagged
            self.assertEqual(rows[k]["anomaly_score"], "0", rows[k])
            self.assertEqual(rows[k]["flag"], "0")
        # the last good row survived the damage, with its value intact
        self.assertEqual(rows[-1]["value"], good[-1].split(",")[1])
        self.assertIn("unparsable", err)

    def test_file_and_stdin_agree(self):
        data = sine_csv(700)
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write(data)
            path = f.name
        try:
            rc1, out1, _ = run(["score", "--quiet", path])
            rc2, out2, _ = run(["score", "--quiet", "-"], data)
        finally:
            os.unlink(path)
        self.assertEqual((rc1, rc2), (0, 0))
        self.assertEqual(out1, out2)

    def test_weights(self):
        """--weights float16 | int8: the same rows and flags as float32 (the warm-up, before
        the first training, bit for bit: the network is not used yet), predictions close
        after it; an unknown value is a usage error."""
        data = sine_csv(1500, spike_at=1200)
        # H=16: at the default H=32 a network trained on 300 values is far from converged
        # (its predictions 0.2 short of the sine's peaks) and the packed runs, which start
        # from rounded initial weights, end elsewhere (0.29 apart); this is about storage
        base = ["score", "--quiet", "--train-after", "300", "--cooldown", "50", "--hidden", "16"]
        rows = {}
        for w in ("float32", "float16", "int8"):
            rc, out, err = run(base + ["--weights", w, "-"], data)
            self.assertEqual(rc, 0, err)
            rows[w] = list(csv.DictReader(io.StringIO(out)))
            self.assertEqual(len(rows[w]), 1500)
            self.assertIn(1200, [i for i, r in enumerate(rows[w]) if r["flag"] == "1"], w)
        for w in ("float16", "int8"):
            self.assertEqual(rows[w][:300], rows["float32"][:300], w)
            worst = max(abs(float(a["predicted"]) - float(b["predicted"]))
                        for a, b in zip(rows[w][300:], rows["float32"][300:]))
            self.assertLess(worst, 0.1, w)  # values of amplitude 1
            self.assertNotEqual(rows[w], rows["float32"], w + ": the weights were not used")
        rc, _, err = run(["score", "--weights", "int4", "-"], "")
        self.assertEqual(rc, 2)
        self.assertIn("--weights takes float32, float16 or int8, got 'int4'", err)

    def test_every_detector_key_has_an_option(self):
        """Each detector key a daemon configuration takes (the valid keys anomalyctl's own
        -c reading lists) is an option of `anomalyctl score` with the same name (dashes for
        underscores; the key `cell` is --kind), so what -c can set the command line can."""
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("defaults: {zzzzzz: 1}\n")
            path = f.name
        try:
            rc, _, err = run(["score", "-c", path, "-"], "")
        finally:
            os.unlink(path)
        self.assertEqual(rc, 1, err)
        m = re.search(r"valid keys: ([a-z0-9_, ]+)\)", err)
        self.assertIsNotNone(m, err)
        keys = [k.strip() for k in m.group(1).split(",")]
        self.assertIn("incident_z", keys)
        self.assertIn("departure", keys)
        rc, out, err = run(["score", "--help"])
        text = out + err
        alias = {"cell": "kind"}
        missing = [k for k in keys
                   if not re.search(r"--%s\b" % re.escape(alias.get(k, k).replace("_", "-")), text)]
        self.assertEqual(missing, [])

    def test_config_file_and_series_rule(self):
        """-c applies a daemon configuration: its defaults:, and with --series the rule
        the daemon would pick for that key; options given too override it."""
        data = sine_csv(900, spike_at=800)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "a.yaml")
            with open(cfg, "w") as f:
                f.write("defaults:\n  hidden: 6\n  train_after: 300\n  features: []\n"
                        "series:\n  - {match: 'db.*', cell: gru, hidden: 5}\n"
                        "  - match: 'noise.*'\n    ignore: true\n")
            opts = ["--hidden", "6", "--train-after", "300", "--features", "none"]
            base = run(["score", "--quiet"] + opts + ["-"], data)
            self.assertEqual(base[0], 0, base[2])
            # defaults: alone, with or without a key no rule matches
            for extra in ([], ["--series", "web.cpu"]):
                rc, out, err = run(["score", "--quiet", "-c", cfg] + extra + ["-"], data)
                self.assertEqual((rc, out), (0, base[1]), err)
            # the rule for db.*: on top of defaults:
            want = run(["score", "--quiet"] + opts + ["--kind", "gru", "--hidden", "5", "-"],
                       data)
            rc, out, err = run(["score", "--quiet", "--config", cfg, "--series", "db.load",
                                "-"], data)
            self.assertEqual((rc, out), (0, want[1]), err)
            self.assertNotEqual(out, base[1])
            # an option given too wins over the file
            want = run(["score", "--quiet"] + opts + ["--kind", "gru", "--hidden", "7", "-"],
                       data)
            rc, out, err = run(["score", "--quiet", "-c", cfg, "--series", "db.load",
                                "--hidden", "7", "-"], data)
            self.assertEqual((rc, out), (0, want[1]), err)
            # a key the file ignores, a bad file, --series without -c
            rc, out, err = run(["score", "-c", cfg, "--series", "noise.x", "-"], data)
            self.assertEqual(rc, 1)
            self.assertIn("ignores noise.x", err)
            with open(cfg, "w") as f:
                f.write("defaults:\n  hidden: lots\n")
            rc, out, err = run(["score", "-c", cfg, "-"], data)
            self.assertEqual(rc, 1)
            self.assertIn(cfg + ":2:11:", err)
            rc, out, err = run(["score", "--series", "db.load", "-"], data)
            self.assertEqual(rc, 2)
            self.assertIn("--series needs -c FILE", err)

    def test_no_options_is_the_daemons_default_detector(self):
        """The help's defaults are the daemon's (config/anomalyd.yaml documents the same)."""
        rc, out, err = run(["score", "--help"])
        self.assertEqual(rc, 0)
        for opt, val in (("--train-after N", "750"), ("--cooldown N", "30"),
                         ("--features LIST", "tod,dow"), ("--seasonal-period S", None)):
            line = next(l for l in out.splitlines() if l.strip().startswith(opt))
            if val:
                self.assertTrue(line.rstrip().endswith("(%s)" % val), line)

    def test_quiet_is_quiet(self):
        rc, _, err = run(["score", "--quiet", "-"], "timestamp,value\nx\n1,nan\n")
        self.assertEqual(rc, 0)
        self.assertEqual(err, "")

    def test_usage_and_config_errors(self):
        rc, out, _ = run(["score", "--help"])
        self.assertEqual(rc, 0)
        self.assertIn("--scorer", out)
        rc, _, err = run(["score", "--kind", "transformer", "-"], "")
        self.assertEqual(rc, 2)
        self.assertIn("unknown --kind 'transformer'", err)
        rc, _, err = run(["score", "--hidden", "abc", "-"], "")
        self.assertEqual(rc, 2)
        self.assertIn("--hidden needs a number", err)
        rc, _, err = run(["score", "--hidden", "0", "-"], "")
        self.assertEqual(rc, 1)
        self.assertIn("bad configuration: hidden size", err)
        # an integer option takes integers only, within range (not cut or wrapped)
        for opt, bad in (("--hidden", "2.5"), ("--hidden", "1e12"),
                         ("--alert-horizon", "3e9"), ("--cooldown", "-1e10"),
                         ("--seed", "-1"), ("--seed", "1.5"), ("--seed", "1e30")):
            rc, _, err = run(["score", opt, bad, "-"], "")
            self.assertEqual(rc, 2, (opt, bad, err))
            self.assertIn("%s needs an integer" % opt, err)
        rc, out, err = run(["score", "--quiet", "--seed", "18446744073709551615",
                            "--alert-horizon", "1e4", "-"], "1,1\n")
        self.assertEqual(rc, 0, err)
        # a short window beyond 3 x int (bounded for the likelihood scorer only) once
        # crashed the departure reference at the first training
        rows = "".join("%d,%g\n" % (t, (t * 7) % 11) for t in range(300))
        rc, out, err = run(["score", "--quiet", "--scorer", "static", "--short-window",
                            "800000000", "--hidden", "4", "--epochs", "2", "--train-after",
                            "200", "--history", "300", "--window", "16", "-"], rows)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.splitlines()), 301)
        rc, _, err = run(["score", "--departure", "-1", "-"], "")
        self.assertEqual(rc, 1)
        self.assertIn("departure must be 0..1e+06, got -1", err)
        rc, _, err = run(["score", "--window", "64", "--history", "100", "-"], "")
        self.assertEqual(rc, 1)
        self.assertIn("history", err)
        rc, _, err = run(["score", "/nonexistent/file.csv"])
        self.assertEqual(rc, 1)
        self.assertIn("/nonexistent/file.csv: No such file", err)
        rc, _, err = run(["frobnicate"])
        self.assertEqual(rc, 2)
        self.assertIn("unknown command", err)
        rc, _, _ = run([])
        self.assertEqual(rc, 2)


if __name__ == "__main__":
    unittest.main()
