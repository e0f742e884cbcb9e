"""test_store_fixture.py - a store written by an older anomalyd restores in this one
(issue 18: "a store written by today's binary restores in the new one").

tests/fixtures/store_3c3eb2e.sqlite was written by anomalyd built from commit 3c3eb2e
(before the redesign: its rows keep the protocol as the enum's integer) with
scripts/gen_store_fixture.py; store_3c3eb2e.json beside it holds the configuration it was
written with, what that binary restored from it, and its step on each series' next value.
This test starts the anomalyd under test ($ANOMALYD) on a copy of the file with the same
configuration and checks that it restores the same: every series (count, keys, protocol,
samples seen, trainings, warming up, anomalies, rule, model settings), the family, no
row skipped; that each series scores its next value as the old binary did (a trained one
without warming up again, the same prediction and score within TOLERANCE); and that the
store it writes back restores again. $STORE_FIXTURE names another fixture (NAME.sqlite
beside NAME.json). Damaged copies of the fixture show that the checks can fail.

Python stdlib only.
"""
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

from daemon_harness import Daemon

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.environ.get("STORE_FIXTURE") or os.path.join(HERE, "fixtures",
                                                          "store_3c3eb2e.sqlite")
# The built-in defaults the fixture was written with (3c3eb2e) where they have changed
# since and its configuration leaves them to the defaults: an operator who keeps a store's
# series across such an upgrade states them (a changed setting starts a series afresh).
DEFAULTS_THEN = "  lr: 0.01\n  raw_k: 2\n  alert_horizon: 2000\n"
RW_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}
SERIES_FIELDS = ("key", "protocol", "samples", "anomalies", "warming_up", "trainings")
SKIP_REASONS = ("damaged", "settings_changed", "ignored_or_full", "invalid_key")
# A prediction or score may differ by this much (relative, at least absolute) from the
# old binary's: the same arithmetic, perhaps built with other flags (the ASan build).
TOLERANCE = 1e-4


def load_manifest(fixture=FIXTURE):
    with open(os.path.splitext(fixture)[0] + ".json") as f:
        return json.load(f)


def send(d, via, data):
    """Sends data (text; for prometheus the request body in hex) as via says."""
    if via in ("graphite", "influx", "jsonl"):
        d.send_tcp(via, data)
    elif via == "statsd":
        d.send_udp("statsd", data)
    elif via == "prometheus":
        status, _, body = d.http("/api/v1/write", method="POST", body=bytes.fromhex(data),
                                 headers=dict(RW_HEADERS))
        assert status == 204, (status, body)
    else:
        raise ValueError(via)


def restored_state(d):
    """What the daemon d holds: restore counters and, per series, what the manifest
    records (the same questions scripts/gen_store_fixture.py asked the old binary)."""
    status, body = d.json("/api/v1/series?limit=100000")
    assert status == 200, status
    out = {"restored": d.metric("anomalyd_store_restored_series"),
           "skipped": {r: d.metric("anomalyd_store_restore_skipped", reason=r)
                       for r in SKIP_REASONS},
           "families": d.metric("anomalyd_families"),
           "total": body["total"], "series": {}}
    for s in body["series"]:
        one = d.series(s["key"])
        rec = {f: s[f] for f in SERIES_FIELDS}
        rec["rule"] = one["rule"]
        rec["model"] = dict(one["model"])
        out["series"][s["key"]] = rec
    return out


def compare_series(want, got):
    """Problems (strings) between two {key: record} maps of restored series."""
    problems = []
    for key in sorted(set(want) | set(got)):
        if key not in got:
            problems.append("%s: not restored" % key)
            continue
        if key not in want:
            problems.append("%s: restored, but not in the fixture" % key)
            continue
        w, g = want[key], got[key]
        for f in sorted(w):
            if f == "model":
                for m in sorted(w[f]):
                    if g[f].get(m) != w[f][m]:
                        problems.append("%s: model.%s %r, expected %r" % (key, m, g[f].get(m),
                                                                          w[f][m]))
            elif g.get(f) != w[f]:
                problems.append("%s: %s %r, expected %r" % (key, f, g.get(f), w[f]))
    return problems


def compare_restore(want, got):
    """Problems between the manifest's "restored" and restored_state()."""
    problems = []
    for f in ("restored", "total", "families"):
        if got[f] != want[f]:
            problems.append("%s %r, expected %r" % (f, got[f], want[f]))
    for r, n in sorted(want["skipped"].items()):
        if got["skipped"].get(r) != n:
            problems.append("skipped{reason=%s} %r, expected %r" % (r, got["skipped"].get(r), n))
    return problems + compare_series(want["series"], got["series"])


def close(a, b):
    if a is None or b is None:
        return a is b
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


def step(d, key, via, data, timeout=30):
    """Sends key its next value; what the daemon made of it, or None if it never came."""
    before = (d.series(key) or {}).get("samples")
    if before is None:
        return None
    send(d, via, data)
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = d.series(key)
        if s and s["samples"] == before + 1:
            last = s["recent"][-1]
            return {"samples": s["samples"], "warming_up": last["warming_up"],
                    "predicted": last["predicted"], "score": last["score"]}
        time.sleep(0.05)
    return None


def compare_steps(d, nexts):
    """Sends each series its next value; problems against the manifest's "next"."""
    problems = []
    for key, n in sorted(nexts.items()):
        got, want = step(d, key, n["via"], n["data"]), n["then"]
        if got is None:
            problems.append("%s: its next value was not taken" % key)
            continue
        for f in ("samples", "warming_up"):
            if got[f] != want[f]:
                problems.append("%s: after the next value %s %r, expected %r"
                                % (key, f, got[f], want[f]))
        for f in ("predicted", "score"):
            if not close(got[f], want[f]):
                problems.append("%s: next value's %s %r, expected %r" % (key, f, got[f],
                                                                        want[f]))
    return problems


class Fixture(unittest.TestCase):

    def setUp(self):
        self.manifest = load_manifest()
        self.tmp = tempfile.mkdtemp(prefix="anomalyd-fixture-")
        os.makedirs(os.path.join(self.tmp, "state"))
        self.db = os.path.join(self.tmp, "state", "anomalyd.db")
        shutil.copyfile(FIXTURE, self.db)
        self.cfg = self.manifest["config"].format(tmp=self.tmp).replace(
            "defaults:\n", "defaults:\n" + DEFAULTS_THEN, 1)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def problems(self):
        """Starts the daemon on self.db: the problems of its restore and next steps."""
        with Daemon(self.cfg, tmp=self.tmp) as d:
            got = restored_state(d)
            problems = compare_restore(self.manifest["restored"], got)
            problems += compare_steps(d, self.manifest["next"])
            self.assertEqual(d.stop(), 0)
        return problems


class Restore(Fixture):

    def test_fixture_is_what_the_manifest_says(self):
        # (a copy: SQLite leaves -shm and -wal files beside a WAL database it opens)
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True)
        try:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            rows = sorted(r[0] for r in con.execute("SELECT key FROM series"))
        finally:
            con.close()
        self.assertEqual(rows, self.manifest["rows"])
        want = self.manifest["restored"]
        self.assertEqual(want["restored"], len(want["series"]))
        self.assertLess(os.path.getsize(FIXTURE), 1 << 20)
        # What the fixture must cover to be worth keeping: every protocol, trained and
        # warming series, a shared family, a rule, an anomaly counted.
        series = want["series"].values()
        self.assertEqual({s["protocol"] for s in series},
                         {"graphite", "influx", "statsd", "jsonl", "prometheus"})
        self.assertTrue(any(s["trainings"] for s in series))
        self.assertTrue(any(s["warming_up"] for s in series))
        self.assertTrue(any(s["rule"] >= 0 for s in series))
        self.assertTrue(any(s["anomalies"] for s in series))
        self.assertGreaterEqual(want["families"], 1)

    def test_every_series_restored_and_goes_on(self):
        with Daemon(self.cfg, tmp=self.tmp) as d:
            got = restored_state(d)
            problems = compare_restore(self.manifest["restored"], got)
            self.assertEqual(problems, [], "\n".join(problems) + "\n" + d.log()[-3000:])
            problems = compare_steps(d, self.manifest["next"])
            self.assertEqual(problems, [], "\n".join(problems))
            for key, n in self.manifest["next"].items():
                if not n["then"]["warming_up"]:
                    self.assertFalse(got["series"][key]["warming_up"], key)
            after = restored_state(d)["series"]
            self.assertEqual(d.stop(), 0)
        # What this binary writes back restores again, the same.
        con = sqlite3.connect(self.db)
        try:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            self.assertEqual(sorted(r[0] for r in con.execute("SELECT key FROM series")),
                             self.manifest["rows"])
        finally:
            con.close()
        with Daemon(self.cfg, tmp=self.tmp) as d:
            again = restored_state(d)
            self.assertEqual(again["restored"], self.manifest["restored"]["restored"])
            self.assertEqual(again["skipped"], self.manifest["restored"]["skipped"])
            problems = compare_series(after, again["series"])
            self.assertEqual(problems, [], "\n".join(problems))
            self.assertEqual(d.stop(), 0)


class CanFail(Fixture):
    """The checks above find a store that does not restore as the fixture did."""

    def damage(self, sql, *args):
        con = sqlite3.connect(self.db)
        con.execute(sql, args)
        con.commit()
        con.close()

    def test_damaged_rows_are_caught(self):
        con = sqlite3.connect(self.db)
        blob = bytearray(con.execute("SELECT blob FROM series WHERE key='fx.rule.b'")
                         .fetchone()[0])
        con.close()
        blob[len(blob) // 2] ^= 0x55
        self.damage("UPDATE series SET blob=? WHERE key='fx.rule.b'", bytes(blob))
        self.damage("UPDATE series SET protocol=0 WHERE key='fx.jsonl.c'")
        self.damage("UPDATE series SET anomalies=anomalies+1 WHERE key='fx.graphite.a'")
        self.damage("DELETE FROM series WHERE key='fx.statsd.g'")
        problems = self.problems()
        text = "\n".join(problems)
        for want in ("fx.rule.b: not restored", "fx.jsonl.c: protocol 'graphite'",
                     "fx.graphite.a: anomalies 2", "fx.statsd.g: not restored",
                     "restored 7", "skipped{reason=damaged} 1"):
            self.assertIn(want, text)

    def test_a_different_step_is_caught(self):
        self.manifest = json.loads(json.dumps(self.manifest))
        nxt = self.manifest["next"]
        key = next(k for k, n in sorted(nxt.items()) if not n["then"]["warming_up"])
        nxt[key]["then"]["predicted"] *= 1 + 10 * TOLERANCE
        problems = self.problems()
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("%s: next value's predicted" % key, problems[0])


if __name__ == "__main__":
    unittest.main()
