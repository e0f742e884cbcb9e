"""test_ctl.py - anomalyctl's daemon commands (status, series, series show) and the SVG
plot, against the real anomalyd on loopback.

Run by ctest with ANOMALYD and ANOMALYCTL naming the binaries. Python stdlib only.
"""
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

from daemon_harness import Daemon, config_text

ANOMALYCTL = os.environ.get("ANOMALYCTL", "anomalyctl")
T0 = 1700000000
SVG = "{http://www.w3.org/2000/svg}"


def ctl(*args, env=None, timeout=60):
    """(exit status, stdout, stderr) of anomalyctl with args; ANOMALYD_* unset unless given."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALYD_")}
    e.update(env or {})
    r = subprocess.run([ANOMALYCTL] + list(args), capture_output=True, text=True, env=e,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def free_port():
    """A loopback TCP port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wave(n, spike_at=None, t0=T0, step=60):
    """n (ts, value) rows of a sine, with one spike."""
    rows = []
    for i in range(n):
        v = math.sin(i / 10.0) * 5 + 10
        if i == spike_at:
            v += 60
        rows.append((t0 + step * i, v))
    return rows


class Commands(unittest.TestCase):
    """One daemon fed a trained, flagged series and a few others."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon()
        cls.d.start()
        cls.http = "127.0.0.1:%d" % cls.d.port("http")
        lines = "".join("ctl.wave %r %d\n" % (v, ts) for ts, v in wave(500, spike_at=420))
        lines += "ctl.flat 7 %d\nother.one 1 %d\nother.one 2 %d\n" % (T0, T0, T0 + 1)
        cls.d.send_tcp("graphite", lines)
        cls.d.wait(lambda: (cls.d.series("ctl.wave") or {}).get("samples") == 500,
                   what="500 samples of ctl.wave")
        cls.d.wait(lambda: (cls.d.series("other.one") or {}).get("samples") == 2,
                   what="other.one")
        cls.d.wait(lambda: (cls.d.series("ctl.wave") or {}).get("anomalies", 0) >= 1,
                   what="the spike flagged")

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        cls.d.__exit__(None, None, None)
        assert code == 0, "exit status %s" % code

    def run_ok(self, *args, env=None):
        code, out, err = ctl(*args, env=env)
        self.assertEqual(code, 0, "anomalyctl %s: %s" % (" ".join(args), err))
        return out

    def test_status(self):
        out = self.run_ok("status", "--http", self.http)
        self.assertRegex(out, r"^anomalyd \S+ at 127\.0\.0\.1:\d+, up \d+s\n")
        self.assertRegex(out, r"series +\d+ / 100000")
        self.assertRegex(out, r"samples +graphite (\d+), influx 0, statsd 0, jsonl 0, prometheus 0 \(total \1\)")
        self.assertRegex(out, r"anomalies +[1-9]")
        self.assertRegex(out, r"training +queued \d+, running \d+, installed [1-9]\d*, failed 0")
        self.assertRegex(out, r"events +published [1-9]\d*, dropped 0, subscribers 0")
        j = json.loads(self.run_ok("status", "--json", "--http", self.http))
        self.assertGreaterEqual(j["samples"]["graphite"], 503)
        self.assertGreaterEqual(j["series"], 3)
        # the environment names the daemon when --http does not
        self.assertIn("graphite ", self.run_ok("status", env={"ANOMALYD_HTTP": self.http}))

    def test_series_table(self):
        out = self.run_ok("series", "--match", "[co]*", "--http", self.http).splitlines()
        self.assertEqual(out[0].split(), ["KEY", "SAMPLES", "ANOMALIES", "VALUE", "PREDICTION",
                                          "SCORE", "STATE"])
        keys = [l.split()[0] for l in out[1:]]
        self.assertEqual(keys, ["ctl.flat", "ctl.wave", "other.one"])
        # aligned: each right-aligned number column ends where its header does
        for name, col in (("SAMPLES", 1), ("ANOMALIES", 2), ("SCORE", 5)):
            end = out[0].index(name) + len(name)
            for l in out[1:]:
                self.assertEqual(l[:end].split()[-1], l.split()[col], l)
                self.assertEqual(l[end], " ", l)
        row = dict((l.split()[0], l.split()) for l in out[1:])
        self.assertEqual(row["ctl.wave"][1], "500")
        self.assertGreaterEqual(int(row["ctl.wave"][2]), 1)
        self.assertEqual(row["ctl.flat"][1:4], ["1", "0", "7"])
        self.assertEqual(row["ctl.flat"][4], "-")  # no prediction yet
        self.assertIn(row["ctl.flat"][6], ("warming", "trained"))
        self.assertEqual(row["ctl.flat"][6], "warming")

    def test_series_match_and_limit(self):
        out = self.run_ok("series", "--match", "ctl.*", "--http", self.http).splitlines()
        self.assertEqual([l.split()[0] for l in out[1:]], ["ctl.flat", "ctl.wave"])
        out = self.run_ok("series", "--match", "[co]*", "--limit", "1", "--http",
                          self.http).splitlines()
        self.assertEqual(out[1].split()[0], "ctl.flat")
        self.assertIn("1 of 3 series", out[-1])
        out = self.run_ok("series", "--http", self.http).splitlines()
        self.assertGreaterEqual(len(out), 4)
        out = self.run_ok("series", "--match", "nothing*", "--http", self.http)
        self.assertIn("no series", out)
        self.assertEqual(ctl("series", "--limit", "-3", "--http", self.http)[0], 2)

    def test_series_show(self):
        out = self.run_ok("series", "show", "ctl.wave", "--width", "40", "--http", self.http)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("ctl.wave  (graphite, "), lines[0])
        self.assertRegex(out, r"counters +samples 500, anomalies [1-9]")
        self.assertRegex(out, r"model +lstm predict, hidden 8")
        i = next(k for k, l in enumerate(lines) if l.startswith("values"))
        self.assertRegex(lines[i], r"\(min [\d.]+, max [\d.]+\)")
        spark = lines[i + 1].strip()
        self.assertEqual(len(spark), 40)
        self.assertTrue(set(spark) <= set("▁▂▃▄▅▆▇█"), spark)
        self.assertIn("█", spark)  # the spike is the maximum
        marks = lines[i + 2]
        self.assertIn("^", marks)
        self.assertTrue(set(marks.strip()) <= set("^ "))
        # the mark sits under the spike's column
        self.assertEqual(spark.index("█"), marks.index("^") - 2)
        j = next(k for k, l in enumerate(lines) if l.startswith("scores"))
        self.assertEqual(len(lines[j + 1].strip()), 40)
        out = self.run_ok("series", "show", "ctl.wave", "--ascii", "--http", self.http)
        for l in out.splitlines():
            l.encode("ascii")  # nothing but ASCII
        self.assertIn("#", out)

    def test_series_show_unknown_and_usage(self):
        code, out, err = ctl("series", "show", "no.such", "--http", self.http)
        self.assertEqual(code, 1)
        self.assertIn("no such series", err)
        self.assertEqual(ctl("series", "show", "--http", self.http)[0], 2)
        self.assertEqual(ctl("series", "show", "a", "b", "--http", self.http)[0], 2)
        self.assertEqual(ctl("series", "show", "a", "--width", "0", "--http", self.http)[0], 2)
        self.assertEqual(ctl("status", "--bogus")[0], 2)

    def test_plot_svg(self):
        status, headers, body = self.d.http("/api/v1/series/ctl.wave/plot.svg")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "image/svg+xml")
        root = ET.fromstring(body)
        self.assertEqual(root.tag, SVG + "svg")
        self.assertEqual(root.find(SVG + "title").text, "ctl.wave")
        lines = [e for e in root.iter(SVG + "polyline") if e.get("class") == "values"]
        self.assertEqual(len(lines), 1)
        recent = self.d.series("ctl.wave")["recent"]
        self.assertEqual(len(lines[0].get("points").split()), len(recent))
        flags = [e for e in root.iter(SVG + "circle") if e.get("class") == "flag"]
        self.assertEqual(len(flags), sum(1 for p in recent if p["flagged"]))
        self.assertGreaterEqual(len(flags), 1)
        # predictions start after training: NaN ones are left out
        pred = [e for e in root.iter(SVG + "polyline") if e.get("class") == "predicted"]
        npred = sum(len(e.get("points").split()) for e in pred)
        self.assertEqual(npred, sum(1 for p in recent if p["predicted"] is not None))
        self.assertEqual(self.d.http("/api/v1/series/no.such/plot.svg")[0], 404)
        self.assertEqual(self.d.http("/api/v1/series/ctl.wave/plot.png")[0], 404)

    def test_plot_of_a_key_that_needs_escaping(self):
        key = "x.pl<o>t&\"q\";a=1"
        self.d.send_tcp("graphite", "%s 1 %d\n" % (key, T0))
        canonical = 'x.pl<o>t&"q";a=1'
        self.d.wait(lambda: self.d.series(canonical), what="the odd key")
        status, _, body = self.d.http("/api/v1/series/%s/plot.svg"
                                      % urllib.request.quote(canonical, safe=""))
        self.assertEqual(status, 200)
        root = ET.fromstring(body)
        self.assertEqual(root.find(SVG + "title").text, canonical)
        self.assertIn(b"&lt;o&gt;t&amp;&quot;q&quot;", body)
        out = self.run_ok("series", "show", canonical, "--http", self.http)
        self.assertTrue(out.startswith(canonical + "  ("))

    def test_series_key_wins_over_plot_suffix(self):
        self.d.send_tcp("graphite", "x.wave/plot.svg 5 %d\n" % T0)
        self.d.wait(lambda: self.d.series("x.wave/plot.svg"), what="the key ending in plot.svg")
        self.d.send_tcp("graphite", "x.wave 5 %d\n" % T0)
        self.d.wait(lambda: self.d.series("x.wave"), what="x.wave")
        status, headers, body = self.d.http("/api/v1/series/x.wave/plot.svg")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        self.assertEqual(json.loads(body)["key"], "x.wave/plot.svg")
        # and its own plot is one suffix further
        status, headers, _ = self.d.http("/api/v1/series/x.wave/plot.svg/plot.svg")
        self.assertEqual((status, headers["Content-Type"]), (200, "image/svg+xml"))


class Errors(unittest.TestCase):
    """No daemon, a bad address, a token."""

    def test_daemon_not_running(self):
        port = free_port()
        for args in (("status",), ("series",), ("series", "show", "x")):
            code, out, err = ctl(*args, "--http", "127.0.0.1:%d" % port)
            self.assertEqual(code, 1, err)
            self.assertIn("cannot connect to 127.0.0.1:%d" % port, err)
            self.assertIn("is anomalyd running?", err)
            self.assertIn("http.port", err)
        code, _, err = ctl("status", env={"ANOMALYD_HTTP": "127.0.0.1:%d" % port})
        self.assertEqual(code, 1)
        self.assertIn(":%d" % port, err)

    def test_bad_http_value(self):
        for bad in ("nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:99999",
                    "127.0.0.1:80x", "::1:8080", ":8080"):
            code, _, err = ctl("status", "--http", bad)
            self.assertEqual(code, 2, bad)
            self.assertIn("--http takes HOST:PORT", err)
        self.assertEqual(ctl("status", env={"ANOMALYD_HTTP": "nope"})[0], 2)

    def test_not_http(self):
        # something that is not an HTTP server: a clear error, exit 1
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        p = subprocess.Popen([ANOMALYCTL, "status", "--http", "127.0.0.1:%d" % port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(b"SSH-2.0-OpenSSH\r\n")
        c.close()
        srv.close()
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not an HTTP answer", err)

    def test_silent_server_times_out(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        try:
            code, _, err = ctl("status", "--http", "127.0.0.1:%d" % srv.getsockname()[1],
                               timeout=30)
        finally:
            srv.close()
        self.assertEqual(code, 1)
        self.assertIn("no answer within 5 s", err)

    def test_token(self):
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            cfg = config_text(tmp).replace("http:\n  address: 127.0.0.1\n",
                                           "http:\n  address: 127.0.0.1\n  token: s3cret\n")
            with Daemon(cfg, tmp=tmp) as d:
                http = "127.0.0.1:%d" % d.port("http")
                code, _, err = ctl("status", "--http", http)
                self.assertEqual(code, 1)
                self.assertIn("401", err)
                self.assertIn("--token", err)
                code, _, err = ctl("status", "--http", http, "--token", "wrong")
                self.assertEqual(code, 1)
                self.assertIn("refused", err)
                code, out, err = ctl("status", "--http", http, "--token", "s3cret")
                self.assertEqual(code, 0, err)
                self.assertIn("anomalyd ", out)
                code, out, err = ctl("series", "--http", http,
                                     env={"ANOMALYD_TOKEN": "s3cret"})
                self.assertEqual(code, 0, err)
                self.assertIn("KEY", out)
        finally:
            shutil.rmtree(tmp)


class Cluster(unittest.TestCase):
    """Several instances at once (--http A,B,C): two daemons and an address where nothing
    listens. The relay in front of a real cluster is test_cluster.py's."""

    @classmethod
    def setUpClass(cls):
        cls.ds = [Daemon(), Daemon()]
        for d in cls.ds:
            d.start()
        cls.https = ["127.0.0.1:%d" % d.port("http") for d in cls.ds]
        cls.dead = "127.0.0.1:%d" % free_port()
        a, b = cls.ds
        a.send_tcp("graphite", "cl.a1 1 %d\ncl.a2 2 %d\ncl.both 5 %d\n" % (T0, T0, T0))
        a.wait(lambda: a.series("cl.both"), what="cl.both on a")
        time.sleep(1.1)  # b sees cl.both after a did (last_seen is the receipt time)
        b.send_tcp("graphite", "cl.b1 3 %d\ncl.both 6 %d\ncl.both 7 %d\n"
                   % (T0, T0 + 60, T0 + 120))
        a.wait(lambda: a.series("cl.both"), what="cl.both on a")
        b.wait(lambda: (b.series("cl.both") or {}).get("samples") == 2, what="cl.both on b")

    @classmethod
    def tearDownClass(cls):
        for d in cls.ds:
            d.stop()
            d.__exit__(None, None, None)

    def test_status_per_instance_and_totals(self):
        addrs = ",".join(self.https + [self.dead])
        code, out, err = ctl("status", "--http", addrs)
        self.assertEqual(code, 0, err)  # some answered
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:4], ["INSTANCE", "VERSION", "UPTIME", "SERIES"])
        rows = {l.split()[0]: l for l in lines[1:]}
        for h in self.https:
            self.assertRegex(rows[h], r"^\S+ +\S+ +\d+s +\d+ +\d+ ")
        self.assertIn("unreachable: cannot connect to %s" % self.dead, rows[self.dead])
        self.assertIn("Connection refused", rows[self.dead])
        self.assertIn("cannot connect to %s" % self.dead, err)
        total = rows["total"].split()
        self.assertEqual(total[1], "2/3")
        want = sum(d.json("/api/v1/status")[1]["series"] for d in self.ds)
        self.assertEqual(int(total[2]), want)
        self.assertIn("1 of 3 instances did not answer", out)
        # the list in the environment, spaces allowed around the commas
        code, out, _ = ctl("status", env={"ANOMALYD_HTTP": " , ".join(self.https)})
        self.assertEqual(code, 0)
        self.assertIn("total 2/2", out)
        # none answered: 1
        code, out, err = ctl("status", "--http", self.dead + ",127.0.0.1:%d" % free_port())
        self.assertEqual(code, 1)
        self.assertIn("total 0/2", out)
        self.assertEqual(err.count("cannot connect"), 2)
        j = json.loads(ctl("status", "--json", "--http", addrs)[1])
        self.assertEqual(j["answered"], 2)
        self.assertEqual([i["address"] for i in j["instances"]], self.https + [self.dead])
        self.assertIn("series", j["instances"][0]["status"])
        self.assertIn("cannot connect", j["instances"][2]["error"])

    def test_series_merged(self):
        a, b = self.https
        code, out, err = ctl("series", "--match", "cl.*", "--http", ",".join([a, self.dead, b]))
        self.assertEqual(code, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["INSTANCE", "KEY", "SAMPLES", "ANOMALIES", "VALUE",
                                            "PREDICTION", "SCORE", "STATE"])
        rows = [l.split()[:3] for l in lines[1:] if l.startswith("127.")]
        self.assertEqual(rows, [[a, "cl.a1", "1"], [a, "cl.a2", "1"], [b, "cl.b1", "1"],
                                [a, "cl.both", "1"], [b, "cl.both", "2"]])
        self.assertIn("cannot connect to %s" % self.dead, err)
        self.assertIn("1 of 3 instances did not answer", out)
        # --limit applies to the merged table, the total is every instance's
        code, out, _ = ctl("series", "--match", "cl.*", "--limit", "2", "--http", a + "," + b)
        self.assertEqual(code, 0)
        self.assertEqual([l.split()[1] for l in out.splitlines()[1:3]], ["cl.a1", "cl.a2"])
        self.assertIn("(2 of 5 series; --limit shows more)", out)
        j = json.loads(ctl("series", "--json", "--match", "cl.*", "--http", a + "," + b)[1])
        self.assertEqual(j["total"], 5)
        self.assertEqual([(s["instance"], s["key"]) for s in j["series"]],
                         [(a, "cl.a1"), (a, "cl.a2"), (b, "cl.b1"), (a, "cl.both"),
                          (b, "cl.both")])
        self.assertEqual([i["address"] for i in j["instances"]], [a, b])
        # one address: the table without INSTANCE, as before
        out = ctl("series", "--match", "cl.*", "--http", a)[1]
        self.assertEqual(out.split()[0], "KEY")
        # none answered: 1
        code, _, err = ctl("series", "--http", self.dead + ",127.0.0.1:%d" % free_port())
        self.assertEqual(code, 1)
        self.assertEqual(err.count("cannot connect"), 2)

    def test_series_show_finds_the_instance(self):
        a, b = self.https
        code, out, err = ctl("series", "show", "cl.b1", "--http", ",".join([self.dead, a, b]))
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith("cl.b1  (graphite, "), out)
        self.assertIn("instance    %s\n" % b, out)
        self.assertIn("cannot connect to %s" % self.dead, err)
        j = json.loads(ctl("series", "show", "cl.a1", "--json", "--http", a + "," + b)[1])
        self.assertEqual((j["key"], j["instance"]), ("cl.a1", a))
        # on two instances (it moved): the one seen last, the other named
        code, out, err = ctl("series", "show", "cl.both", "--http", a + "," + b)
        self.assertEqual(code, 0, err)
        self.assertIn("instance    %s\n" % b, out)
        self.assertIn("cl.both is also on %s" % a, err)
        code, out, err = ctl("series", "show", "no.such", "--http", a + "," + b)
        self.assertEqual(code, 1)
        self.assertIn("no such series 'no.such' on any of the 2 instances", err)
        code, out, err = ctl("series", "show", "no.such", "--http", a + "," + self.dead)
        self.assertEqual(code, 1)
        self.assertIn("on the 1 of 2 instances that answered", err)
        self.assertIn("cannot connect to %s" % self.dead, err)

    def test_bad_lists(self):
        a = self.https[0]
        for bad, why in ((a + ",", "an empty address"), (",", "an empty address"),
                         (a + ",nonsense", "--http takes HOST:PORT"),
                         (a + "," + a, "names %s twice" % a)):
            code, _, err = ctl("series", "--http", bad)
            self.assertEqual(code, 2, bad)
            self.assertIn(why, err)
        self.assertEqual(ctl("status", env={"ANOMALYD_HTTP": a + ",,x:1"})[0], 2)


NAB_DATA = os.environ.get("AD_NAB_DATA", "/work/shared/nab/data")


class Replay(unittest.TestCase):
    """anomalyctl replay into each protocol's listener of one daemon."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon()
        cls.d.start()
        cls.tmp = tempfile.mkdtemp(prefix="anomalyctl-replay-")
        cls.small = os.path.join(cls.tmp, "small.csv")
        with open(cls.small, "w") as f:
            f.write("timestamp,value\n"
                    "2014-04-10 00:00:00,1.5\n"         # 2
                    "2014-04-10 00:05:00,2\n"           # 3
                    "garbage\n"                         # 4: one field
                    "2014-13-10 00:10:00,3\n"           # 5: month 13
                    "\n"                                # 6: blank, not an error
                    "1397088900,4e1\n"                  # 7: epoch seconds
                    "2014-04-10 00:20:00,not-a-number\n"  # 8
                    "2014-04-10 00:25:00,nan\n"         # 9
                    "2014-04-10T00:30:00,-7.25\r\n")   # 10: T and CRLF
        cls.good = [(1397088000, 1.5), (1397088300, 2.0), (1397088900, 40.0),
                    (1397089800, -7.25)]

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        cls.d.__exit__(None, None, None)
        shutil.rmtree(cls.tmp)
        assert code == 0, "exit status %s" % code

    def to(self, what, transport="tcp"):
        return "127.0.0.1:%d" % self.d.port(what, transport)

    def points(self, key, n):
        self.d.wait(lambda: (self.d.series(key) or {}).get("samples") == n,
                    what="%d samples of %s" % (n, key))
        return [(p["ts"], p["value"]) for p in self.d.series(key)["recent"]]

    def test_graphite_small_file_bad_rows_and_pacing(self):
        t = time.time()
        code, out, err = ctl("replay", self.small, "--to", self.to("graphite"), "--rate", "20")
        took = time.time() - t
        self.assertEqual(code, 0, err)
        self.assertIn("small.csv: 4 lines sent to %s (graphite over tcp)" % self.to("graphite"),
                      out)
        self.assertIn("4 bad rows skipped", out)
        for n, why in ((4, "not two comma-separated fields"), (5, "bad timestamp"),
                       (8, "value is not a number"), (9, "value is not finite")):
            self.assertIn("small.csv:%d: %s; skipped" % (n, why), err)
        self.assertNotIn(":6:", err)
        self.assertGreaterEqual(took, 3 / 20.0)  # 4 lines at 20/s: the last 0.15 s after the first
        self.assertEqual(self.points("small", 4), self.good)

    def test_influx_jsonl_and_udp(self):
        code, out, err = ctl("replay", self.small, "--to", self.to("influx"), "--protocol",
                             "influx", "--precision", "s", "--series", "re play,x",
                             "--as-fast-as-possible")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.points("re\\ play\\,x value", 4), self.good)  # escaped, as keys are
        code, out, err = ctl("replay", self.small, "--to", self.to("jsonl"), "--protocol",
                             "jsonl", "--series", "js\"on", "--as-fast-as-possible")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.points('js"on', 4), self.good)
        code, out, err = ctl("replay", self.small, "--to", self.to("graphite", "udp"), "--udp",
                             "--series", "over.udp", "--rate", "1000")
        self.assertEqual(code, 0, err)
        self.assertIn("(graphite over udp)", out)
        self.assertEqual(self.points("over.udp", 4), self.good)
        r = subprocess.run([ANOMALYCTL, "replay", "-", "--to", self.to("graphite"), "--series",
                            "from.stdin"], input="timestamp,value\n100,1\n101,2\n",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.points("from.stdin", 2), [(100, 1), (101, 2)])

    def test_nab_file_as_fast_as_possible(self):
        path = os.path.join(NAB_DATA, "artificialWithAnomaly", "art_daily_jumpsup.csv")
        if not os.path.exists(path):
            self.skipTest("no NAB data at %s" % NAB_DATA)
        with open(path) as f:
            rows = f.read().splitlines()[1:]
        code, out, err = ctl("replay", path, "--to", self.to("graphite"),
                             "--as-fast-as-possible")
        self.assertEqual(code, 0, err)
        self.assertEqual(err, "")
        self.assertIn("%d lines sent" % len(rows), out)
        pts = self.points("art_daily_jumpsup", len(rows))
        self.assertGreater(len(rows), 4000)
        last = rows[-1].split(",")
        self.assertEqual(pts[-1][1], float(last[1]))
        code, out, err = ctl("series", "show", "art_daily_jumpsup", "--http", self.to("http"))
        self.assertEqual(code, 0, err)
        self.assertIn("samples %d" % len(rows), out)

    def test_usage_and_runtime_errors(self):
        g = self.to("graphite")
        for args in ((self.small,), (self.small, "--to", "nowhere"),
                     (self.small, "--to", g, "--rate", "0"),
                     (self.small, "--to", g, "--rate", "5", "--as-fast-as-possible"),
                     (self.small, "--to", g, "--protocol", "smoke"),
                     (self.small, "--to", g, "--series", "has space"),
                     ("--to", g), (self.small, self.small, "--to", g)):
            code, _, err = ctl("replay", *args)
            self.assertEqual(code, 2, (args, err))
        code, _, err = ctl("replay", os.path.join(self.tmp, "missing.csv"), "--to", g)
        self.assertEqual(code, 1)
        self.assertIn("No such file", err)
        port = free_port()
        code, out, err = ctl("replay", self.small, "--to", "127.0.0.1:%d" % port)
        self.assertEqual(code, 1)
        self.assertIn("cannot connect to 127.0.0.1:%d: Connection refused" % port, err)
        self.assertIn("listeners", err)


if __name__ == "__main__":
    unittest.main()
