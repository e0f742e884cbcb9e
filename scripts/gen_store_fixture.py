#!/usr/bin/python3
"""gen_store_fixture.py - a SQLite store written by a given anomalyd, kept as a fixture so
that every later binary is checked to restore it (issue 18: "a store written by today's
binary restores in the new one"; tests/test_store_fixture.py).

The committed tests/fixtures/store_3c3eb2e.sqlite and its manifest store_3c3eb2e.json were
written by anomalyd built from commit 3c3eb2e (the tree before issue 18's redesign, whose
store keeps each series' protocol as the enum's integer: graphite 0, influx 1, statsd 2,
jsonl 3, prometheus 4), with:

    /usr/bin/python3 scripts/gen_store_fixture.py --anomalyd /work/baseline/anomalyd

What it does, with the given binary:
1. starts it on CONFIG (every listener on port 0, the store in a temporary directory) and
   feeds a handful of series, one or more per protocol: Graphite over TCP, InfluxDB line
   protocol over TCP, StatsD over UDP, JSON lines over TCP, Prometheus remote write
   (POST /api/v1/write); most are trained (a network installed: train_every 0, so one
   training each), one under a per-series rule with other settings (a GRU), three in a
   shared family (its network is a row of its own), the StatsD one still warming up, one
   with an anomaly counted; then stops it with SIGTERM (the final checkpoint writes every
   series) and copies the store into the output directory as NAME.sqlite;
2. starts the same binary again on a copy of that file and records, in NAME.json, what it
   restored (per series: protocol, samples, trainings, warming up, anomalies, rule, model
   settings; the restore counters), then sends each series its next value over its own
   protocol and records the step (samples, warming up, prediction, score). The manifest
   also holds the configuration (with {tmp} for the temporary directory) and those next
   values, so the test needs nothing from this script.

Python stdlib only (tests/daemon_harness.py starts the daemon).
"""
import argparse
import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
import daemon_harness  # noqa: E402
from rwbody import HEADERS as RW_HEADERS, timeseries, write_request  # noqa: E402

T0 = 1700000000  # seconds
N = 400          # points per trained series (train_after 300 in the defaults)

CONFIG = """\
log_level: info
state_dir: {tmp}/state
listeners:
  - {{protocol: graphite, transport: tcp, address: 127.0.0.1, port: 0}}
  - {{protocol: influx, transport: tcp, address: 127.0.0.1, port: 0, precision: s}}
  - {{protocol: statsd, transport: udp, address: 127.0.0.1, port: 0}}
  - {{protocol: jsonl, transport: tcp, address: 127.0.0.1, port: 0}}
statsd:
  flush_interval: 0.2
http:
  address: 127.0.0.1
  port: 0
events:
  address: 127.0.0.1
  port: 0
store:
  path: {tmp}/state/anomalyd.db
  checkpoint_interval: 3600
defaults:
  cell: lstm
  hidden: 8
  history: 600
  train_after: 300
  train_every: 0
  window: 16
  batch: 8
  epochs: 8
  patience: 3
  features: []
  cooldown: 20
series:
  - match: 'fx.rule.*'
    cell: gru
    hidden: 6
    window: 12
    train_after: 250
    threshold: 0.995
    cooldown: 5
  - match: 'fx.fam.*'
    shared: true
    history: 64
    train_after: 64
    train_every: 0
    prime: 32
"""

GRAPHITE_KEY = "fx.graphite.a"
RULE_KEY = "fx.rule.b"
INFLUX_KEY = "fx_influx,host=a value"
JSONL_KEY = "fx.jsonl.c"
FAMILY_KEYS = ["fx.fam.0", "fx.fam.1", "fx.fam.2"]
STATSD_KEY = "fx.statsd.g"
PROM_KEY = 'fx_rw_gauge{job="fx"}'


def sine(t, phase=0.0):
    return 10 + 5 * math.sin(2 * math.pi * t / 50 + phase)


def write_request_of(labels, samples):
    """A remote-write body of one series: labels [(name, value)], samples [(ts_ms, v)]."""
    return write_request(timeseries(dict(labels), samples))


PROM_LABELS = [("__name__", "fx_rw_gauge"), ("job", "fx")]


# ---- sending, by the manifest's "via" ----

def send(d, via, data):
    """Sends data (text; hex of the body for prometheus) to the daemon d as via says."""
    if via in ("graphite", "influx", "jsonl"):
        d.send_tcp(via, data)
    elif via == "statsd":
        d.send_udp("statsd", data)
    elif via == "prometheus":
        for _ in range(100):  # a request making series may be deferred: retried
            status, _, body = d.http("/api/v1/write", method="POST",
                                     body=bytes.fromhex(data), headers=dict(RW_HEADERS))
            if status == 204:
                return
            time.sleep(0.1)
        raise RuntimeError("remote write refused: %s %r" % (status, body))
    else:
        raise ValueError(via)


def feed(d):
    """Phase 1: every series, over its protocol."""
    lines = "".join("%s %.6f %d\n" % (k, sine(t, i), T0 + t)
                    for t in range(N) for i, k in enumerate([GRAPHITE_KEY, RULE_KEY]))
    send(d, "graphite", lines)
    send(d, "influx", "".join("fx_influx,host=a value=%.6f %d\n" % (sine(t, 1.0), T0 + t)
                              for t in range(N)))
    send(d, "jsonl", "".join(json.dumps({"series": JSONL_KEY, "value": round(sine(t, 2.0), 6),
                                         "ts": T0 + t}) + "\n" for t in range(N)))
    send(d, "jsonl", "".join(json.dumps({"series": k, "value": round(sine(t, 0.5 * i), 6),
                                         "ts": T0 + t}) + "\n"
                             for t in range(120) for i, k in enumerate(FAMILY_KEYS)))
    for i in range(0, N, 100):
        body = write_request_of(PROM_LABELS, [(1000 * (T0 + t), sine(t, 3.0))
                                               for t in range(i, i + 100)])
        send(d, "prometheus", body.hex())
    for t in range(24):  # a few flushes' worth: the StatsD series stays warming up
        send(d, "statsd", "fx.statsd.g:%d|g\n" % (10 + t % 5))
        time.sleep(0.25)
    trained = [GRAPHITE_KEY, RULE_KEY, INFLUX_KEY, JSONL_KEY, PROM_KEY]
    for k in trained:
        d.wait(lambda: (d.series(k) or {}).get("trainings", 0) >= 1, timeout=300,
               what="%s trained" % k)
    for k in FAMILY_KEYS:
        d.wait(lambda: not (d.series(k) or {"warming_up": True})["warming_up"], timeout=300,
               what="%s joined its family" % k)
    # An anomaly counted (saved in the row): a spike in a trained series.
    send(d, "graphite", "%s 500 %d\n" % (GRAPHITE_KEY, T0 + N))
    d.wait(lambda: d.series(GRAPHITE_KEY)["samples"] == N + 1, what="the spike")
    d.wait(lambda: d.series(GRAPHITE_KEY)["anomalies"] >= 1, what="the spike flagged")


def next_values():
    """Phase 2: the value each series is sent after the restore: {key: (via, data)}."""
    t = N + 1
    return {
        GRAPHITE_KEY: ("graphite", "%s %.6f %d\n" % (GRAPHITE_KEY, sine(t), T0 + t)),
        RULE_KEY: ("graphite", "%s %.6f %d\n" % (RULE_KEY, sine(t, 1), T0 + t)),
        INFLUX_KEY: ("influx", "fx_influx,host=a value=%.6f %d\n" % (sine(t, 1.0), T0 + t)),
        JSONL_KEY: ("jsonl", json.dumps({"series": JSONL_KEY, "value": round(sine(t, 2.0), 6),
                                         "ts": T0 + t}) + "\n"),
        FAMILY_KEYS[1]: ("jsonl", json.dumps({"series": FAMILY_KEYS[1],
                                              "value": round(sine(120, 0.5), 6),
                                              "ts": T0 + 120}) + "\n"),
        STATSD_KEY: ("statsd", "fx.statsd.g:12|g\n"),
        PROM_KEY: ("prometheus", write_request_of(PROM_LABELS, [(1000 * (T0 + N),
                                                                  sine(N, 3.0))]).hex()),
    }


SERIES_FIELDS = ("key", "protocol", "samples", "anomalies", "warming_up", "trainings")
DETAIL_FIELDS = ("rule",)
MODEL_FIELDS = ("model", "cell", "hidden", "layers", "scorer", "threshold", "train_after",
                "train_every", "epochs")
SKIP_REASONS = ("damaged", "settings_changed", "ignored_or_full", "invalid_key")


def restored_state(d):
    """What a daemon restored: {"restored": n, "skipped": {...}, "families": n,
    "series": {key: {...}}}."""
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
        rec.update({f: one[f] for f in DETAIL_FIELDS})
        rec["model"] = {f: one["model"][f] for f in MODEL_FIELDS}
        out["series"][s["key"]] = rec
    return out


def step(d, key, via, data):
    """Sends key its next value and returns what the daemon made of it."""
    before = d.series(key)["samples"]
    send(d, via, data)
    d.wait(lambda: (d.series(key) or {}).get("samples") == before + 1, timeout=30,
           what="%s's next value" % key)
    s = d.series(key)
    last = s["recent"][-1]
    return {"samples": s["samples"], "warming_up": last["warming_up"],
            "predicted": last["predicted"], "score": last["score"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--anomalyd", required=True, help="the binary that writes the store")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "tests", "fixtures"))
    ap.add_argument("--name", default="store_3c3eb2e")
    ap.add_argument("--commit", default="3c3eb2e", help="the commit the binary was built from")
    a = ap.parse_args()
    daemon_harness.ANOMALYD = os.path.abspath(a.anomalyd)
    db_out = os.path.join(a.out, a.name + ".sqlite")

    with tempfile.TemporaryDirectory(prefix="anomalyd-fixture-") as tmp:
        os.makedirs(os.path.join(tmp, "state"))
        d = daemon_harness.Daemon(CONFIG.format(tmp=tmp), tmp=tmp)
        d.start()
        try:
            feed(d)
            written = restored_state(d)
        finally:
            code = d.stop(timeout=120)
        if code != 0:
            raise SystemExit("anomalyd exited %s:\n%s" % (code, d.log()[-3000:]))
        db = os.path.join(tmp, "state", "anomalyd.db")
        for suffix in ("-wal", "-journal"):
            if os.path.exists(db + suffix) and os.path.getsize(db + suffix) > 0:
                raise SystemExit("%s%s left behind after the stop" % (db, suffix))
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = sorted(r[0] for r in con.execute("SELECT key FROM series"))
        con.close()
        os.makedirs(a.out, exist_ok=True)
        shutil.copyfile(db, db_out)

    with tempfile.TemporaryDirectory(prefix="anomalyd-fixture-") as tmp:
        os.makedirs(os.path.join(tmp, "state"))
        shutil.copyfile(db_out, os.path.join(tmp, "state", "anomalyd.db"))
        d = daemon_harness.Daemon(CONFIG.format(tmp=tmp), tmp=tmp)
        d.start()
        try:
            restored = restored_state(d)
            nxt = {}
            for key, (via, data) in sorted(next_values().items()):
                nxt[key] = {"via": via, "data": data, "then": step(d, key, via, data)}
        finally:
            code = d.stop(timeout=120)
        if code != 0:
            raise SystemExit("anomalyd exited %s:\n%s" % (code, d.log()[-3000:]))

    for key, rec in written["series"].items():  # what was written is what came back
        got = restored["series"].get(key)
        if got is None or got["samples"] != rec["samples"] or \
                got["trainings"] != rec["trainings"]:
            raise SystemExit("the writer's own restore differs for %s: %r %r" % (key, rec, got))
    version = subprocess.run([a.anomalyd, "--version"], capture_output=True, text=True)
    manifest = {
        "about": "written by anomalyd built from commit %s (%s) with "
                 "scripts/gen_store_fixture.py; what that binary restored from it, and "
                 "its step on each series' next value" % (a.commit,
                                                          (version.stdout or "").strip()),
        "commit": a.commit,
        "config": CONFIG,
        "rows": rows,
        "restored": restored,
        "next": nxt,
    }
    with open(os.path.join(a.out, a.name + ".json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print("%s: %d bytes, %d rows (%s); %d series restored" % (
        db_out, os.path.getsize(db_out), len(rows), ", ".join(rows), restored["restored"]))


if __name__ == "__main__":
    main()
