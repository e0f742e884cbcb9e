"""test_daemon.py - the real anomalyd on loopback, driven by a real client per protocol.

Run by ctest (ANOMALYD, PROMTOOL and COLLECTD name the binaries). Python stdlib only.
"""
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import unittest

from daemon_harness import ANOMALYD, Daemon, config_text, DETECTOR

ANOMALYCTL = os.environ.get("ANOMALYCTL", "anomalyctl")
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
COLLECTD = os.environ.get("COLLECTD") or shutil.which("collectd") or "/usr/sbin/collectd"
T0 = 1700000000


class Protocols(unittest.TestCase):
    """One daemon; each protocol's real client; bad input of every kind."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon()
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        cls.d.__exit__(None, None, None)
        assert code == 0, "exit status %s" % code

    def samples(self, key):
        s = self.d.series(key)
        return s["samples"] if s else 0

    def test_graphite_tcp_split_lines(self):
        # One line split over three sends, then two in one send, the last without newline.
        s = self.d.send_tcp("graphite", "gt.a 1 %d\ngt." % T0, close=False)
        time.sleep(0.05)
        s.sendall(b"a 2 ")
        time.sleep(0.05)
        s.sendall(b"%d\ngt.a 3 %d\r\ngt.a 4 %d" % (T0 + 1, T0 + 2, T0 + 3))
        s.close()
        self.d.wait(lambda: self.samples("gt.a") == 4, what="4 samples of gt.a")
        pts = self.d.series("gt.a")["recent"]
        self.assertEqual([p["value"] for p in pts], [1, 2, 3, 4])
        self.assertEqual([p["ts"] for p in pts], [T0, T0 + 1, T0 + 2, T0 + 3])

    def test_one_read_many_series_in_order(self):
        # One send of 2000 lines over 7 new series in random order (3 of them with keys
        # near the longest allowed, so the daemon's batch of parsed keys fills before its
        # count does; a new key seen again a few lines later is the same new series):
        # every value reaches its own series, in order, none lost or doubled.
        keys = ["bt.%d" % i for i in range(4)] + ["bt.long%d.%s" % (i, "x" * 1000)
                                                   for i in range(3)]
        lines, want, rnd = [], {k: [] for k in keys}, random.Random(7)
        for t in range(2000):
            k = keys[rnd.randrange(len(keys))]
            want[k].append(t)
            lines.append("%s %d %d\n" % (k, t, T0 + t))
        self.d.send_tcp("graphite", "".join(lines))
        for k in keys:
            self.d.wait(lambda: self.samples(k) == len(want[k]), what="samples of " + k[:12])
            pts = self.d.series(k)["recent"]
            self.assertEqual([p["value"] for p in pts], want[k][-len(pts):], k[:12])
            self.assertEqual([p["ts"] for p in pts], [T0 + t for t in want[k][-len(pts):]])

    def test_bulk_send_ends_with_partial_line(self):
        # A client writes far more than one read at once and closes: the daemon reads on
        # while the last read's samples are scored (the listener's read-ahead) and sees
        # the end there; every line arrives, in order, and the last one without its
        # newline too (a clean end). The same over a Unix socket (JSON lines).
        n = 6000
        scored = lambda: sum(self.d.metric("anomalyd_scored_samples_total", thread=t)
                             for t in ("loop", "helper"))
        before = scored()
        body = "".join("bulk.%d %d %d\n" % (t % 3, t, T0 + t) for t in range(n))
        self.assertGreater(len(body), 30 * 4096)
        self.d.send_tcp("graphite", body + "bulk.tail 7 %d" % T0)
        self.d.wait(lambda: self.samples("bulk.tail") == 1, what="the unterminated last line")
        for k in range(3):
            self.d.wait(lambda: self.samples("bulk.%d" % k) == n // 3, what="bulk.%d" % k)
            pts = self.d.series("bulk.%d" % k)["recent"]
            want = list(range(k, n, 3))[-len(pts):]
            self.assertEqual([p["value"] for p in pts], want)
        self.assertEqual(scored() - before, n + 1)  # each on one thread or the other
        # All of it waiting before the daemon reads (stopped meanwhile), 16 whole reads:
        # the end comes to a read-ahead, right after a full read.
        body = "".join("bulks %d %d\n" % (t, T0 + t) for t in range(2500))
        body += "\n" * (16 * 4096 - len(body) - len("bulks.tail 1 %d" % T0))  # blank lines
        body += "bulks.tail 1 %d" % T0
        self.assertEqual(len(body), 16 * 4096)
        self.d.proc.send_signal(signal.SIGSTOP)
        try:
            self.d.send_tcp("graphite", body)
        finally:
            self.d.proc.send_signal(signal.SIGCONT)
        self.d.wait(lambda: self.samples("bulks.tail") == 1, what="the last line, at the end")
        self.assertEqual(self.samples("bulks"), 2500)
        body = "".join(json.dumps({"name": "bulku", "value": t, "ts": T0 + t}) + "\n"
                       for t in range(3000))
        self.d.send_unix(os.path.join(self.d.tmp, "jsonl.sock"),
                         body + json.dumps({"name": "bulku.tail", "value": 1}))
        self.d.wait(lambda: self.samples("bulku.tail") == 1, what="unix: the last line")
        self.d.wait(lambda: self.samples("bulku") == 3000, what="unix: every line")
        pts = self.d.series("bulku")["recent"]
        self.assertEqual([p["value"] for p in pts], list(range(3000))[-len(pts):])

    def test_graphite_tagged_and_udp(self):
        self.d.send_udp("graphite", "gu.b;z=1;a=2 5 %d\ngu.b;a=2;z=1 6 %d\n" % (T0, T0 + 1))
        self.d.wait(lambda: self.samples("gu.b;a=2;z=1") == 2, what="tagged UDP series")

    def test_udp_datagram_larger_than_a_stream_read(self):
        # Stream reads are small (4 KiB, for latency); a datagram must still arrive
        # whole: 600 lines in one 13 KB datagram.
        body = "".join("gu.big %d %d\n" % (i, T0 + i) for i in range(600))
        self.assertGreater(len(body), 12000)
        self.d.send_udp("graphite", body)
        self.d.wait(lambda: self.samples("gu.big") == 600, what="600 samples of gu.big")

    def test_influx_tcp_and_http_write(self):
        self.d.send_tcp("influx", "cpu,host=h1,dc=eu user=1.5,sys=2i,ok=t,note=\"x\" %d\n" % T0)
        self.d.wait(lambda: self.samples("cpu,dc=eu,host=h1 user") == 1, what="influx user")
        self.assertEqual(self.samples("cpu,dc=eu,host=h1 sys"), 1)
        self.assertEqual(self.samples("cpu,dc=eu,host=h1 ok"), 1)
        self.assertIsNone(self.d.series("cpu,dc=eu,host=h1 note"))
        body = "mem,host=h1 used=10 %d\nmem,host=h1 used=11 %d\n" % (T0 * 1000, (T0 + 1) * 1000)
        status, _, _ = self.d.http("/write?precision=ms", "POST", body.encode())
        self.assertEqual(status, 204)
        s = self.d.series("mem,host=h1 used")
        self.assertEqual(s["samples"], 2)
        self.assertEqual(s["recent"][1]["ts"], T0 + 1)
        status, _, err = self.d.http("/write", "POST", b"mem,host=h1 used=oops\n")
        self.assertEqual(status, 400)
        self.assertIn(b"line 1", err)
        status, _, _ = self.d.http("/write?precision=fortnights", "POST", b"m v=1\n")
        self.assertEqual(status, 400)
        # UDP, milliseconds: several lines in one datagram, an escaped space in a tag.
        self.d.send_udp("influx", "disk,path=/a\\ b free=1u %d\ndisk,path=/a\\ b free=2u %d\n"
                        % (T0 * 1000, T0 * 1000 + 500))
        self.d.wait(lambda: self.samples("disk,path=/a\\ b free") == 2, what="influx udp")
        self.assertEqual(self.d.series("disk,path=/a\\ b free")["recent"][1]["ts"], T0 + 0.5)

    def test_statsd_aggregation(self):
        self.d.send_udp("statsd", "req:1|c\nreq:2|c|@0.5\nlat:10|ms\nlat:20|ms|#route:a\n")
        self.d.send_udp("statsd", "lat:30|ms\ngauge.x:5|g\ngauge.x:+2|g\n")
        self.d.wait(lambda: self.samples("req") >= 1, what="statsd counter flush")
        pts = self.d.series("req")["recent"]
        self.assertEqual(pts[0]["value"], 5)  # 1 + 2 / 0.5
        self.d.wait(lambda: self.samples("lat") >= 1, what="statsd timer flush")
        self.assertEqual(self.d.series("lat")["recent"][0]["value"], 20)  # mean of 10, 30
        self.assertEqual(self.d.series("lat;route=a")["recent"][0]["value"], 20)
        self.assertEqual(self.d.series("gauge.x")["recent"][0]["value"], 7)

    def test_jsonl_tcp_and_unix(self):
        self.d.send_tcp("jsonl", json.dumps({"series": "js.a", "value": 1, "ts": T0,
                                             "tags": {"k": "v"}}) + "\n")
        self.d.send_unix(os.path.join(self.d.tmp, "jsonl.sock"),
                         json.dumps({"name": "js.u", "value": 2.5}) + "\n")
        self.d.wait(lambda: self.samples("js.a;k=v") == 1, what="jsonl tcp")
        self.d.wait(lambda: self.samples("js.u") == 1, what="jsonl unix")

    def test_bad_input_is_counted_and_service_goes_on(self):
        before = self.d.metric("anomalyd_parse_errors_total", protocol="graphite",
                               reason="line_too_long") or 0
        s = socket.create_connection(("127.0.0.1", self.d.port("graphite")))
        s.sendall(b"\x00 garbage\n")                    # syntax (bad UTF-8: Hardening)
        s.sendall(b"bad.nan nan %d\n" % T0)              # non finite
        s.sendall(b"bad.val 12abc %d\n" % T0)            # bad value
        s.sendall(b"x" * (70 * 1024) + b" 1 1\n")        # over max_line (64 KiB)
        s.sendall(b"bad.after 1 %d\n" % T0)              # the connection goes on
        s.close()
        self.d.wait(lambda: self.samples("bad.after") == 1, what="line after the bad ones")
        m = lambda r: self.d.metric("anomalyd_parse_errors_total", protocol="graphite", reason=r)
        self.assertGreaterEqual(m("syntax"), 1)
        self.assertGreaterEqual(m("non_finite"), 1)
        self.assertGreaterEqual(m("bad_value"), 1)
        self.assertEqual(m("line_too_long"), before + 1)
        # A client that vanishes mid-line (reset): its half line is lost and counted; the
        # others are served.
        s = socket.create_connection(("127.0.0.1", self.d.port("graphite")))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.sendall(b"half.line 1")
        time.sleep(0.1)
        s.close()  # RST
        self.d.send_tcp("graphite", "after.reset 1 %d\n" % T0)
        self.d.wait(lambda: self.samples("after.reset") == 1, what="service after a reset")
        self.d.wait(lambda: self.d.metric("anomalyd_lines_truncated_total") >= 1,
                    what="truncated line counted")
        self.assertIsNone(self.d.series("half.line"))
        # Timestamps going backwards are refused by the detector, counted.
        self.d.send_tcp("graphite", "back.ts 1 %d\nback.ts 2 %d\n" % (T0 + 10, T0))
        self.d.wait(lambda: self.d.metric("anomalyd_values_refused_total",
                                          reason="time_backwards") >= 1,
                    what="backwards refused")
        # Other protocols' garbage.
        self.d.send_udp("statsd", "nocolon\nx:1|zz\n")
        self.d.send_tcp("jsonl", "{not json\n[1,2]\n")
        self.d.send_tcp("influx", "m,=x v=1\n")
        self.d.wait(lambda: (self.d.metric("anomalyd_parse_errors_total", protocol="jsonl",
                                           reason="syntax") or 0) >= 2, what="jsonl errors")
        self.d.wait(lambda: sum(self.d.metric("anomalyd_parse_errors_total", protocol="statsd",
                                              reason=r) or 0
                                for r in ("syntax", "bad_type")) >= 2, what="statsd errors")
        self.assertEqual(self.d.json("/healthz")[0], 200)

    def test_many_connections(self):
        socks = []
        for i in range(1500):
            socks.append(socket.create_connection(("127.0.0.1", self.d.port("graphite"))))
        self.d.wait(lambda: self.d.metric("anomalyd_connections_open") >= 1500,
                    what="1500 connections open")
        for s in socks:
            s.sendall(b"conn.many 1\n")  # no timestamp: stamped on receipt, in order
        for s in socks:
            s.close()
        self.d.wait(lambda: self.samples("conn.many") == 1500, timeout=30,
                    what="a line from each of 1500 connections")

    def test_metrics_pass_promtool(self):
        if not PROMTOOL:
            self.skipTest("promtool not installed (scripts/setup installs prometheus)")
        self.d.send_tcp("graphite", 'weird."quoted\\name 1 %d\n' % T0)
        text = self.d.metrics()
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertIn('anomalyd_samples_total{protocol="graphite"}', text)
        self.assertIn('anomalyd_series_score{series="weird.\\"quoted\\\\name"}', text)
        # Without the per-series families: the daemon's own figures, still valid.
        status, _, body = self.d.http("/metrics?series=0")
        self.assertEqual(status, 200)
        self.assertIn("anomalyd_samples_total", body.decode())
        self.assertNotIn("anomalyd_series_score{", body.decode())
        # the daemon's own counters all stay, remote write's included
        self.assertIn('anomalyd_remote_write_requests_total{result=', body.decode())
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_api(self):
        self.d.send_tcp("graphite", "api.one 1 %d\napi.two 2 %d\n" % (T0, T0))
        self.d.wait(lambda: self.samples("api.two") == 1, what="api series")
        status, body = self.d.json("/api/v1/series?match=api.*")
        self.assertEqual(status, 200)
        self.assertEqual([s["key"] for s in body["series"]], ["api.one", "api.two"])
        status, body = self.d.json("/api/v1/series/nope")
        self.assertEqual(status, 404)
        status, body = self.d.json("/api/v1/status")
        self.assertEqual(status, 200)
        self.assertGreater(body["series"], 0)
        self.assertEqual(self.d.http("/nope")[0], 404)
        self.assertEqual(self.d.http("/metrics", "POST", b"")[0], 405)


def sine(t):
    return 10 + 5 * math.sin(2 * math.pi * t / 50)


class Detection(unittest.TestCase):
    """A learnt signal, then a spike: the event reaches the subscribers, the file,
    /metrics and the API."""

    def test_spike_event_everywhere(self):
        with Daemon() as d:
            tcp = socket.create_connection(("127.0.0.1", d.port("events")))
            uni = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            uni.connect(os.path.join(d.tmp, "events.sock"))
            tail = subprocess.Popen([ANOMALYCTL, "tail", "--address",
                                     "127.0.0.1:%d" % d.port("events"), "--count", "1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            d.wait(lambda: d.metric("anomalyd_event_subscribers") == 3, what="3 subscribers")
            lines = "".join("sig.a %.6f %d\n" % (sine(t), T0 + t) for t in range(400))
            d.send_tcp("graphite", lines)
            d.wait(lambda: (d.series("sig.a") or {}).get("trainings", 0) >= 1, timeout=60,
                   what="a training installed")
            self.assertEqual(d.metric("anomalyd_anomalies_total"), 0,
                             "a clean sine raised alerts")
            d.send_tcp("graphite", "".join("sig.a %.6f %d\n" % (sine(t), T0 + t)
                                           for t in range(400, 420)))
            d.send_tcp("graphite", "sig.a 100 %d\n" % (T0 + 420))
            for sock in (tcp, uni):
                sock.settimeout(10)
                buf = b""
                while b"\n" not in buf:
                    chunk = sock.recv(4096)
                    self.assertTrue(chunk, "subscriber closed")
                    buf += chunk
                ev = json.loads(buf.split(b"\n")[0])
                self.assertEqual(ev["series"], "sig.a")
                self.assertEqual(ev["value"], 100)
                self.assertEqual(ev["ts"], T0 + 420)
                for k in ("predicted", "error", "score", "threshold", "scorer", "model"):
                    self.assertIn(k, ev)
                self.assertGreaterEqual(ev["score"], ev["threshold"])
            out, errs = tail.communicate(timeout=10)
            self.assertEqual(tail.returncode, 0, errs)
            self.assertRegex(out, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  sig.a  value 100  ")
            with open(os.path.join(d.tmp, "events.jsonl")) as f:
                self.assertEqual(json.loads(f.readline())["series"], "sig.a")
            self.assertEqual(d.metric("anomalyd_series_anomalies_total", series="sig.a"), 1)
            status, body = d.json("/api/v1/anomalies?since=%d" % (T0 + 400))
            self.assertEqual([a["series"] for a in body["anomalies"]], ["sig.a"])
            status, body = d.json("/api/v1/anomalies?since=%d" % (T0 + 420))
            self.assertEqual(body["anomalies"], [])
            # SIGHUP reopens the file after rotation.
            os.rename(os.path.join(d.tmp, "events.jsonl"), os.path.join(d.tmp, "events.1"))
            d.proc.send_signal(signal.SIGHUP)
            d.wait_log("reopening")
            # Past the alert cooldown (20 samples), another spike.
            d.send_tcp("graphite", "".join("sig.a %.6f %d\n" % (sine(t), T0 + t)
                                           for t in range(421, 460)))
            d.send_tcp("graphite", "sig.a -100 %d\n" % (T0 + 460))
            d.wait(lambda: os.path.exists(os.path.join(d.tmp, "events.jsonl")) and
                   os.path.getsize(os.path.join(d.tmp, "events.jsonl")) > 0, what="new file")
            tcp.close()
            uni.close()
            self.assertEqual(d.stop(), 0)


class Limits(unittest.TestCase):

    def test_max_series_flood(self):
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Daemon(config_text(tmp, top="max_series: 50\n"), tmp=tmp) as d:
                d.send_tcp("graphite", "old.one 1 %d\n" % T0)
                d.wait(lambda: d.series("old.one"), what="old.one")
                d.send_tcp("graphite", "".join("flood.%d 1 %d\n" % (i, T0) for i in range(200)))
                d.wait(lambda: d.metric("anomalyd_series_refused_total") >= 151,
                       what="refusals counted")
                self.assertEqual(d.metric("anomalyd_series"), 50)
                d.send_tcp("graphite", "old.one 2 %d\n" % (T0 + 1))
                d.wait(lambda: d.series("old.one")["samples"] == 2, what="old series goes on")
        finally:
            shutil.rmtree(tmp)

    def test_recent_zero(self):
        """recent: 0 keeps no points for the API (the smallest series): the series, its
        plot and /metrics still answer."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Daemon(config_text(tmp, top="recent: 0\n"), tmp=tmp) as d:
                d.send_tcp("graphite", "r0.a 1 %d\nr0.a 2 %d\n" % (T0, T0 + 1))
                d.wait(lambda: (d.series("r0.a") or {}).get("samples") == 2, what="r0.a")
                self.assertEqual(d.series("r0.a")["recent"], [])
                status, _, body = d.http("/api/v1/series/r0.a/plot.svg")
                self.assertEqual(status, 200)
                self.assertIn(b"<svg", body)
                self.assertEqual(d.metric("anomalyd_series_samples_total", series="r0.a"), 2)
        finally:
            shutil.rmtree(tmp)

    def test_fp16_weights(self):
        """fp16: true: series step with fp16 weights (and hold only those: fewer bytes),
        learn and flag as usual."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Daemon(config_text(tmp, top="fp16: true\n"), tmp=tmp) as d:
                d.send_tcp("graphite", "".join("h.a %.6f %d\n" % (sine(t), T0 + t)
                                               for t in range(420)))
                d.wait(lambda: (d.series("h.a") or {}).get("trainings", 0) >= 1, timeout=60,
                       what="trained")
                fp16_bytes = d.metric("anomalyd_series_bytes", series="h.a")
                d.send_tcp("graphite", "h.a 100 %d\n" % (T0 + 420))
                d.wait(lambda: d.metric("anomalyd_series_anomalies_total", series="h.a") == 1,
                       what="the spike flagged")
            with Daemon(config_text(tmp), tmp=tmp) as d:
                d.send_tcp("graphite", "h.a 1 %d\n" % T0)
                d.wait(lambda: d.series("h.a"), what="h.a")
                # H=8, D=1: 329 float parameters (1316 bytes) against an 832-byte fp16
                # block (halves of [Wx | Wh] with slack, b and the head as floats)
                fp32_bytes = d.metric("anomalyd_series_bytes", series="h.a")
                self.assertLess(fp16_bytes, fp32_bytes)
                self.assertGreaterEqual(fp32_bytes - fp16_bytes, 400)
        finally:
            shutil.rmtree(tmp)

    def test_int8_weights(self):
        """weights: int8: series step with int8 weights (and hold only those: fewer bytes
        than float16's), learn and flag as usual; restored under weights: float16 (the
        store holds floats), then reloaded to int8: the bytes follow each storage."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Daemon(config_text(tmp, top="weights: int8\n"), tmp=tmp) as d:
                self.assertIn("weights int8,", d.log())  # the start line says so
                d.send_tcp("graphite", "".join("h.a %.6f %d\n" % (sine(t), T0 + t)
                                               for t in range(420)))
                d.wait(lambda: (d.series("h.a") or {}).get("trainings", 0) >= 1, timeout=60,
                       what="trained")
                int8_bytes = d.metric("anomalyd_series_bytes", series="h.a")
                d.send_tcp("graphite", "h.a 100 %d\n" % (T0 + 420))
                d.wait(lambda: d.metric("anomalyd_series_anomalies_total", series="h.a") == 1,
                       what="the spike flagged")
            with Daemon(config_text(tmp, top="weights: float16\n"), tmp=tmp) as d:
                d.wait(lambda: d.series("h.a"), what="h.a restored")
                # H=8, D=1: the fp16 block is 832 bytes (halves of [Wx | Wh] with slack,
                # b and the head as floats), the int8 one 640 (bytes of [Wx | Wh] with
                # slack, the rows' scales, b and the head)
                fp16_bytes = d.metric("anomalyd_series_bytes", series="h.a")
                self.assertEqual(fp16_bytes - int8_bytes, 832 - 640)
                with open(d.config_path, "w") as f:
                    f.write(config_text(tmp, top="weights: int8\n"))
                d.proc.send_signal(signal.SIGHUP)
                d.wait_log("reloaded")
                self.assertEqual(d.metric("anomalyd_series_bytes", series="h.a"), int8_bytes)
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(tmp)

    def test_rules_ignore_and_eviction(self):
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            rules = ("series:\n  - match: 'noise.*'\n    ignore: true\n"
                     "  - match: 'big.*'\n    hidden: 24\n    cell: gru\n")
            with Daemon(config_text(tmp, top="series_ttl: 1\n") + rules, tmp=tmp) as d:
                d.send_tcp("graphite", "noise.a 1 %d\nbig.a 1 %d\nother.a 1 %d\n" % (T0, T0, T0))
                d.wait(lambda: d.series("other.a"), what="other.a")
                self.assertIsNone(d.series("noise.a"))
                self.assertEqual(d.metric("anomalyd_ignored_samples_total"), 1)
                big = d.series("big.a")["model"]
                self.assertEqual((big["hidden"], big["cell"]), (24, "gru"))
                other = d.series("other.a")["model"]
                self.assertEqual((other["hidden"], other["cell"]), (8, "lstm"))
                # Idle for more than series_ttl (1 s): evicted, counted, and a new sample
                # starts the series afresh.
                d.wait(lambda: d.metric("anomalyd_series") == 0, timeout=10, what="eviction")
                self.assertEqual(d.metric("anomalyd_series_evicted_total"), 2)
                d.send_tcp("graphite", "big.a 2 %d\n" % (T0 + 1))
                d.wait(lambda: d.series("big.a"), what="big.a again")
                self.assertEqual(d.series("big.a")["samples"], 1)
        finally:
            shutil.rmtree(tmp)

    def test_token_protects_api(self):
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            cfg = config_text(tmp).replace("http:\n  address: 127.0.0.1\n",
                                           "http:\n  address: 127.0.0.1\n  token: s3cret\n")
            with Daemon(cfg, tmp=tmp) as d:
                self.assertEqual(d.http("/api/v1/status")[0], 401)
                self.assertEqual(d.http("/api/v1/status", headers={
                    "Authorization": "Bearer wrong"})[0], 401)
                self.assertEqual(d.http("/api/v1/status", headers={
                    "Authorization": "Bearer s3cret"})[0], 200)
                self.assertEqual(d.http("/write", "POST", b"m v=1\n")[0], 401)
                self.assertEqual(d.http("/metrics")[0], 200)
                self.assertEqual(d.http("/healthz")[0], 200)
        finally:
            shutil.rmtree(tmp)

    def test_sigterm_delivers_partial_line_and_exits_0(self):
        with Daemon() as d:
            s = d.send_tcp("graphite", "part.line 1 %d\npart.line 2" % T0, close=False)
            d.wait(lambda: d.series("part.line"), what="first line")
            self.assertEqual(d.stop(), 0)
            s.close()
            self.assertIn("stopped", d.log())


class CommandLine(unittest.TestCase):

    def run_ad(self, *args):
        return subprocess.run([ANOMALYD] + list(args), capture_output=True, text=True)

    def test_help_version(self):
        p = self.run_ad("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--config", p.stdout)
        p = self.run_ad("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"anomalyd \d+\.\d+")
        self.assertEqual(self.run_ad("--bogus").returncode, 2)

    def test_journal_priority_prefixes(self):
        """Under systemd (JOURNAL_STREAM names stderr) lines carry <N> priorities."""
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "c.yaml")
            with open(cfg, "w") as f:
                f.write("state_dir: %s\nlisteners: []\nhttp: {port: 0}\n"
                        "events: {port: 0, unix: '', file: ''}\n" % tmp)
            r2, w2 = os.pipe()
            st = os.fstat(w2)
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
            p = subprocess.Popen([ANOMALYD, "-c", cfg], stderr=w2, env=env)
            os.close(w2)
            f = os.fdopen(r2)
            first = f.readline()
            while "started" not in first and first:
                first = f.readline()
            p.send_signal(signal.SIGTERM)
            rest = f.read()
            f.close()
            self.assertEqual(p.wait(10), 0)
        self.assertRegex(first, r"^<6>")
        self.assertNotRegex(first, r"^<6>\d{4}-")  # journald stamps lines itself
        self.assertIn("<6>stopped", rest)

    def test_tail_without_daemon(self):
        p = subprocess.run([ANOMALYCTL, "tail", "--address", "127.0.0.1:1"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is anomalyd running", p.stderr)

    def test_check_config(self):
        with tempfile.TemporaryDirectory() as tmp:
            good = os.path.join(tmp, "good.yaml")
            bad = os.path.join(tmp, "bad.yaml")
            with open(good, "w") as f:
                f.write("max_series: 10\n")
            with open(bad, "w") as f:
                f.write("max_series: 10\nhttp:\n  port: 70000\n")
            p = self.run_ad("--check-config", good)
            self.assertEqual(p.returncode, 0, p.stderr)
            p = self.run_ad("--check-config", bad)
            self.assertEqual(p.returncode, 1)
            self.assertIn(bad + ":3:9:", p.stderr)
            p = self.run_ad("-c", bad)
            self.assertEqual(p.returncode, 1)
            self.assertIn(bad + ":3:9:", p.stderr)

    def test_port_in_use(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "c.yaml")
            with open(cfg, "w") as f:
                f.write("state_dir: %s\nlisteners:\n  - {protocol: graphite, transport: tcp, "
                        "address: 127.0.0.1, port: %d}\nhttp: {port: 0}\n"
                        "events: {port: 0, unix: '', file: ''}\n" % (tmp, port))
            p = subprocess.run([ANOMALYD, "-c", cfg], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 1)
            self.assertIn("address already in use", p.stderr)
        blocker.close()


class StateDir(unittest.TestCase):
    """state_dir moves the paths under it that the file does not give."""

    def test_store_and_events_follow_state_dir(self):
        with tempfile.TemporaryDirectory(prefix="anomalyd-test-") as tmp:
            state = os.path.join(tmp, "state")
            cwd = os.path.join(tmp, "cwd")
            os.makedirs(os.path.join(cwd, "var"))  # where the fixed ./var defaults went
            cfg = ("state_dir: %s\n"
                   "listeners:\n"
                   "  - {protocol: graphite, transport: tcp, address: 127.0.0.1, port: 0}\n"
                   "http: {port: 0}\n"
                   "events: {port: 0}\n"
                   "defaults:\n%s" % (state, DETECTOR))
            d = Daemon(config=cfg, tmp=tmp, cwd=cwd)
            try:
                d.start()
                d.wait_log(r"listening events unix %s$" % re.escape(state + "/events.sock"))
                d.send_tcp("graphite", "statedir.m 1 %d\n" % T0)
                d.wait(lambda: d.series("statedir.m"), what="the series")
                self.assertEqual(d.stop(), 0, d.log())
            finally:
                d.stop()
            db = os.path.join(state, "anomalyd.db")
            self.assertTrue(os.path.isfile(db), d.log())
            self.assertEqual(os.listdir(os.path.join(cwd, "var")), [])
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            try:
                keys = [k for (k,) in con.execute("SELECT key FROM series")]
            finally:
                con.close()
            self.assertEqual(keys, ["statedir.m"])
            self.assertTrue(os.path.isfile(os.path.join(state, "events.jsonl")))

    def test_reload_keeps_the_running_state_dir(self):
        """A reload naming another state_dir changes nothing until a restart: the paths
        that follow it stay in the running one."""
        with tempfile.TemporaryDirectory(prefix="anomalyd-test-") as tmp:
            first, second = os.path.join(tmp, "first"), os.path.join(tmp, "second")
            cfg = ("state_dir: %s\n"
                   "listeners: []\n"
                   "http: {port: 0}\n"
                   "events: {port: 0}\n")
            with Daemon(config=cfg % first, tmp=tmp) as d:
                with open(d.config_path, "w") as f:
                    f.write(cfg % second)
                d.proc.send_signal(signal.SIGHUP)
                d.wait(lambda: d.metric("anomalyd_reloads_total", result="applied") == 1,
                       what="reload applied")
                d.wait_log(r"reload: state_dir .*take effect at the next restart")
                self.assertNotIn("reload: events", d.log())
                self.assertNotIn(second, d.log())
                self.assertFalse(os.path.exists(second))
                self.assertTrue(os.path.exists(os.path.join(first, "events.sock")))
                self.assertEqual(d.stop(), 0, d.log())


def small_config(tmp, listeners="", events="events: {port: 0, unix: '', file: ''}\n"):
    return ("state_dir: %s\nlisteners:\n%s"
            "  - {protocol: graphite, transport: tcp, address: 127.0.0.1, port: 0}\n"
            "http: {port: 0}\n%s" % (tmp, listeners, events))


class Hardening(unittest.TestCase):
    """What a hostile or careless world did to the daemon (issue 15), made impossible."""

    def run_ad(self, *args, timeout=30):
        return subprocess.run([ANOMALYD] + list(args), capture_output=True, timeout=timeout)

    def test_invalid_utf8_refused_at_every_door(self):
        with Daemon() as d:
            bad = b"\xff"
            d.send_tcp("graphite", b"u8.graphite" + bad + b" 1 %d\n" % T0)
            d.send_udp("graphite", b"u8.gudp" + bad + b" 1 %d\n" % T0)
            d.send_tcp("influx", b"u8,host=a" + bad + b" v=1 %d\n" % T0)
            d.send_tcp("jsonl", b'{"series":"u8.j' + bad + b'","value":1}\n')
            d.send_unix(os.path.join(d.tmp, "jsonl.sock"),
                        b'{"series":"u8.ju\xc3(","value":1}\n')
            d.send_udp("statsd", b"u8.s" + bad + b":1|g\n")
            status, _, _ = d.http("/write?precision=s", "POST",
                                  b"u8w,host=\xed\xa0\x80 v=1 %d\n" % T0)  # a surrogate
            # Valid UTF-8, control bytes included, is accepted.
            d.send_tcp("graphite", "u8.caf\u00e9 1 %d\nu8.esc\x1b[31mred 2 %d\n" % (T0, T0))
            d.wait(lambda: d.series("u8.esc\x1b[31mred"), what="the valid keys")
            m = lambda p: d.metric("anomalyd_parse_errors_total", protocol=p,
                                   reason="invalid_utf8") or 0
            d.wait(lambda: (m("graphite"), m("influx"), m("jsonl"), m("statsd")) == (2, 2, 2, 1),
                   what="every door's refusal counted")
            status, _, body = d.http("/api/v1/series?match=u8*")
            self.assertEqual(status, 200)
            keys = sorted(x["key"] for x in json.loads(body.decode("utf-8"))["series"])
            self.assertEqual(keys, ["u8.caf\u00e9", "u8.esc\x1b[31mred"])
            text = d.metrics()  # str: decoding as strict UTF-8 succeeded
            if PROMTOOL:
                p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                                   capture_output=True)
                self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
            # Logged with the bytes escaped: no raw byte of a client reaches the log.
            # (a warning a minute per protocol: the TCP or the UDP line, whichever came first)
            d.wait_log(r'graphite: refused a line \(invalid_utf8\): "u8\.g(raphite|udp)\\xff 1')
            log = d.log()
            self.assertNotIn("\ufffd", log)  # the harness decodes with errors=replace
            self.assertNotIn("\x1b", log)
            # anomalyctl prints the key escaped, never a live escape sequence.
            p = subprocess.run([ANOMALYCTL, "series", "--match", "u8*", "--http",
                                "127.0.0.1:%d" % d.port("http")], capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(b"u8.esc\\x1b[31mred", p.stdout)
            self.assertNotIn(b"\x1b", p.stdout)
            self.assertIn("u8.caf\u00e9".encode(), p.stdout)
            p = subprocess.run([ANOMALYCTL, "series", "show", "u8.esc\x1b[31mred", "--http",
                                "127.0.0.1:%d" % d.port("http")], capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn(b"\x1b", p.stdout)
            self.assertTrue(p.stdout.startswith(b"u8.esc\\x1b[31mred"), p.stdout[:80])

    def test_unix_path_on_a_file_is_refused_and_the_file_kept(self):
        with tempfile.TemporaryDirectory(prefix="anomalyd-test-") as tmp:
            precious = os.path.join(tmp, "precious.txt")
            with open(precious, "w") as f:
                f.write("keep me")
            cfg = os.path.join(tmp, "c.yaml")
            with open(cfg, "w") as f:
                f.write(small_config(tmp, "  - {protocol: jsonl, transport: unix, path: %s}\n"
                                     % precious))
            for args in (["--check-config", cfg], ["-c", cfg]):
                p = self.run_ad(*args)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(cfg.encode() + b":3:46: listeners[0].path: unix socket path %s: a "
                              b"regular file is there" % precious.encode(), p.stderr)
                with open(precious) as f:
                    self.assertEqual(f.read(), "keep me")
            # The store's own path: refused before anything is created or deleted.
            db = os.path.join(tmp, "anomalyd.db")
            with open(cfg, "w") as f:
                f.write(small_config(tmp, "  - {protocol: jsonl, transport: unix, path: %s}\n"
                                     % db))
            p = self.run_ad("--check-config", cfg)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"listeners[0].path: %s is also store.path" % db.encode(), p.stderr)
            # Longer than sun_path.
            long = os.path.join(tmp, "s" * 120 + ".sock")
            with open(cfg, "w") as f:
                f.write(small_config(tmp, "  - {protocol: jsonl, transport: unix, path: %s}\n"
                                     % long))
            p = self.run_ad("--check-config", cfg)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"at most 107 fit a socket address (sun_path)", p.stderr)
            # events.unix on a file, following state_dir: the same rule.
            os.makedirs(os.path.join(tmp, "st"))
            with open(os.path.join(tmp, "st", "events.sock"), "w") as f:
                f.write("not a socket")
            with open(cfg, "w") as f:
                f.write(small_config(os.path.join(tmp, "st"), events="events: {port: 0}\n"))
            p = self.run_ad("--check-config", cfg)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b":1:12: events.unix: unix socket path", p.stderr)

    def test_unix_path_stale_socket_replaced_live_one_refused(self):
        with tempfile.TemporaryDirectory(prefix="anomalyd-test-") as tmp:
            path = os.path.join(tmp, "j.sock")
            stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stale.bind(path)
            stale.close()  # the file stays, nobody listens: stale
            cfg = small_config(tmp, "  - {protocol: jsonl, transport: unix, path: %s}\n" % path)
            with Daemon(config=cfg, tmp=tmp) as d:
                d.send_unix(path, '{"series":"via.unix","value":1}\n')
                d.wait(lambda: d.series("via.unix"), what="a line through the new socket")
            self.assertFalse(os.path.exists(path))  # removed at stop: it was ours
            live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            live.bind(path)
            live.listen()
            p = self.run_ad("-c", os.path.join(tmp, "anomalyd.yaml"))
            live.close()
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"another process listens on it", p.stderr)
            self.assertTrue(os.path.exists(path))

    def test_one_instance_per_state_dir(self):
        with Daemon() as first:
            pid = first.proc.pid
            p = self.run_ad("-c", first.config_path)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"another anomalyd (pid %d) holds %s/state/anomalyd.lock"
                          % (pid, first.tmp.encode()), p.stderr)
            # The first one's sockets and store are untouched: it goes on serving.
            self.assertTrue(os.path.exists(os.path.join(first.tmp, "jsonl.sock")))
            first.send_unix(os.path.join(first.tmp, "jsonl.sock"),
                            '{"series":"still.first","value":1}\n')
            first.wait(lambda: first.series("still.first"), what="the first still serving")
            with open(os.path.join(first.tmp, "state", "anomalyd.lock")) as f:
                self.assertEqual(int(f.read()), pid)
            self.assertEqual(first.stop(), 0)
            # Stopped: the lock went with it, and the next one starts.
            with open(first.config_path) as f:
                second = Daemon(config=f.read(), tmp=first.tmp)
            second.start()
            self.assertEqual(second.stop(), 0)


class OneDetector(unittest.TestCase):
    """The daemon's default detector and `anomalyctl score` with no options are one
    detector: the same series through both gives the same scores, alerts and states."""

    def test_daemon_and_score_agree(self):
        rnd = random.Random(5)
        rows = []
        for t in range(1300):
            v = 10 + 5 * math.sin(2 * math.pi * t / 60) + rnd.gauss(0, 0.3)
            if 1100 <= t < 1130:
                v += 8  # a level shift: alerts once, anomalous while it lasts
            rows.append((T0 + 60 * t, "%.6f" % v))
        with tempfile.TemporaryDirectory(prefix="anomalyd-test-") as tmp:
            csv_path = os.path.join(tmp, "s.csv")
            with open(csv_path, "w") as f:
                f.write("timestamp,value\n")
                f.writelines("%d,%s\n" % r for r in rows)
            p = subprocess.run([ANOMALYCTL, "score", "--quiet", csv_path], capture_output=True,
                               text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.splitlines()
            self.assertEqual(lines[0], "timestamp,value,anomaly_score,flag,anomalous,predicted,"
                                       "error,warming_up")
            offline = [dict(zip(lines[0].split(","), l.split(","))) for l in lines[1:]]
            # The row after which the first training was installed offline.
            first = next(i for i, r in enumerate(offline) if r["warming_up"] == "0")
            self.assertGreater(sum(int(r["flag"]) for r in offline), 0)
            cfg = small_config(tmp) + "recent: 2000\n"  # no defaults: the daemon's own
            with Daemon(config=cfg, tmp=tmp) as d:
                # Up to the sample whose training is due, then wait for its install, so the
                # daemon's training (off the loop) lands where anomalyctl's (inline) does.
                d.send_tcp("graphite", "".join("one.s %s %d\n" % (v, ts) for ts, v in rows[:first]))
                d.wait(lambda: (d.series("one.s") or {}).get("trainings", 0) >= 1, timeout=120,
                       what="the first training installed")
                d.send_tcp("graphite", "".join("one.s %s %d\n" % (v, ts) for ts, v in rows[first:]))
                d.wait(lambda: (d.series("one.s") or {}).get("samples", 0) == len(rows),
                       what="every sample")
                live = d.series("one.s")["recent"]
                self.assertEqual(d.metric("anomalyd_series_anomalous", series="one.s"),
                                 float(offline[-1]["anomalous"]))
        self.assertEqual(len(live), len(offline))
        for i, (a, b) in enumerate(zip(live, offline)):
            self.assertEqual(a["ts"], int(b["timestamp"]), i)
            self.assertAlmostEqual(a["score"], float(b["anomaly_score"]), places=5, msg=i)
            self.assertEqual(int(a["flagged"]), int(b["flag"]), i)
            self.assertEqual(int(a["anomalous"]), int(b["anomalous"]), i)
            self.assertEqual(int(a["warming_up"]), int(b["warming_up"]), i)
        self.assertGreater(sum(int(b["anomalous"]) for b in offline),
                           sum(int(b["flag"]) for b in offline))


class Collectd(unittest.TestCase):
    """collectd's write_graphite plugin pointed at the daemon."""

    def test_collectd_write_graphite(self):
        if not os.path.exists(COLLECTD):
            self.skipTest("collectd not installed (scripts/setup installs collectd-core)")
        with Daemon() as d:
            conf = os.path.join(d.tmp, "collectd.conf")
            with open(conf, "w") as f:
                f.write("""Hostname "testhost"
FQDNLookup false
Interval 1
BaseDir "%s"
PIDFile "%s/collectd.pid"
PluginDir "/usr/lib/collectd"
LoadPlugin load
LoadPlugin memory
LoadPlugin cpu
LoadPlugin write_graphite
<Plugin write_graphite>
  <Node "anomalyd">
    Host "127.0.0.1"
    Port "%d"
    Protocol "tcp"
    Prefix "collectd."
    StoreRates true
  </Node>
</Plugin>
""" % (d.tmp, d.tmp, d.port("graphite")))
            c = subprocess.Popen([COLLECTD, "-f", "-C", conf], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
            try:
                def found():
                    st, body = d.json("/api/v1/series?match=collectd.testhost.*")
                    keys = [s["key"] for s in body["series"]]
                    return keys if any("load" in k for k in keys) else None
                keys = d.wait(found, timeout=60, what="collectd series")
                self.assertTrue(any(k.startswith("collectd.testhost.memory") for k in keys),
                                keys)
            finally:
                c.terminate()
                out = c.communicate(timeout=10)[0]
            self.assertEqual(sum(d.metric("anomalyd_parse_errors_total", protocol="graphite",
                                          reason=r) or 0
                                 for r in ("syntax", "bad_value")), 0,
                             out.decode(errors="replace"))


if __name__ == "__main__":
    unittest.main()
