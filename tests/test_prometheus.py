"""test_prometheus.py - Prometheus remote write into the real anomalyd, and the whole loop
with Debian's real prometheus server (and prometheus-node-exporter when it runs here).

RemoteWrite: hand-built bodies (protobuf written field by field, snappy as literal-only
blocks: both Python stdlib) against POST /api/v1/write: keys, ordering, staleness,
rates, relabelling, every refusal's status and counter, the scraped-back exposition
through promtool. RealPrometheus: a prometheus server on loopback scraping itself,
anomalyd (and node_exporter) every second and remote-writing to anomalyd; anomalyd
must create series for Prometheus' own metrics, and Prometheus must store the
anomaly_score series it scrapes back. ConfigPrometheus: the files in config/prometheus/
(promtool check config / rules, the dashboard JSON). Skipped with a message when
/usr/bin/prometheus or promtool is missing.
"""
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from rwbody import HEADERS, metadata, snappy, timeseries, write_request
import urllib.parse
import urllib.request

from daemon_harness import Daemon, config_text

PROMETHEUS = os.environ.get("PROMETHEUS") or "/usr/bin/prometheus"
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
NODE_EXPORTER = os.environ.get("NODE_EXPORTER") or "/usr/bin/prometheus-node-exporter"
HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(os.path.dirname(HERE), "config", "prometheus")
STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
T0 = 1700000000000  # ms


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def promtool_check_metrics(test, text):
    if not PROMTOOL:
        return
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True)
    test.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())


PROM_SECTION = """\
prometheus:
  exclude: ['go_*', 'scrape_*{job=skipme}']
  rate: ['*_total']
  max_decoded: 4096
"""


class RemoteWrite(unittest.TestCase):
    """One anomalyd; hand-built remote-write bodies."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="anomalyd-prom-")
        cfg = config_text(cls.tmp.name, extra=PROM_SECTION).replace(
            "  port: 0\nevents:", "  port: 0\n  max_body: 8192\nevents:")
        cls.d = Daemon(cfg, tmp=cls.tmp.name)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        cls.tmp.cleanup()
        assert code == 0, "exit status %s" % code

    def post(self, body, headers=HEADERS):
        return self.d.http("/api/v1/write", method="POST", body=body, headers=dict(headers))

    def outcome(self, name):
        return self.d.metric("anomalyd_remote_write_samples_total", result=name) or 0

    def test_series_keys_and_scrape_back(self):
        ts = timeseries({"job": "api", "__name__": "rw_gauge", "instance": "h:1", "empty": ""},
                        [(T0 + 1000 * i, 10.0 + (i % 3)) for i in range(20)])
        status, _, body = self.post(write_request(ts))
        self.assertEqual(status, 204, body)
        key = 'rw_gauge{instance="h:1",job="api"}'
        s = self.d.series(key)
        self.assertIsNotNone(s, "no series %s" % key)
        self.assertEqual(s["samples"], 20)
        self.assertEqual(s["protocol"], "prometheus")
        self.assertEqual(s["recent"][-1]["ts"], (T0 + 19000) / 1000)
        text = self.d.metrics()
        self.assertIn('anomaly_score{instance="h:1",job="api",source_metric="rw_gauge"} ', text)
        self.assertIn('anomalous{instance="h:1",job="api",source_metric="rw_gauge"} 0', text)
        self.assertIn("# TYPE anomaly_score gauge", text)
        self.assertIn('anomalyd_samples_total{protocol="prometheus"}', text)
        promtool_check_metrics(self, text)

    def test_escaping_and_label_clash(self):
        ts = timeseries({"__name__": "rw_esc", "path": 'a"b\\c\nd', "source_metric": "x"},
                        [(T0, 1.0)])
        status, _, _ = self.post(write_request(ts))
        self.assertEqual(status, 204)
        # histogram and summary labels are renamed on the gauges (promtool's rule)
        status, _, _ = self.post(write_request(
            timeseries({"__name__": "rw_h_bucket", "le": "+Inf"}, [(T0, 1.0)]),
            timeseries({"__name__": "rw_s", "quantile": "0.5"}, [(T0, 1.0)])))
        self.assertEqual(status, 204)
        self.assertIsNotNone(self.d.series('rw_esc{path="a\\"b\\\\c\\nd",source_metric="x"}'))
        text = self.d.metrics()
        self.assertIn('anomaly_score{path="a\\"b\\\\c\\nd",exported_source_metric="x",'
                      'source_metric="rw_esc"}', text)
        self.assertIn('anomaly_score{exported_le="+Inf",source_metric="rw_h_bucket"}', text)
        self.assertIn('anomaly_score{exported_quantile="0.5",source_metric="rw_s"}', text)
        promtool_check_metrics(self, text)

    def test_out_of_order_and_duplicates(self):
        name = {"__name__": "rw_order"}
        self.assertEqual(self.post(write_request(timeseries(name, [(T0 + 5000, 1)])))[0], 204)
        before_dup = self.outcome("duplicate")
        # samples of one series out of order within a body are sorted first
        st, _, _ = self.post(write_request(timeseries(name, [(T0 + 7000, 3), (T0 + 6000, 2)])))
        self.assertEqual(st, 204)
        self.assertEqual(self.d.series("rw_order")["samples"], 3)
        # a resent batch: duplicates, no error
        st, _, _ = self.post(write_request(timeseries(name, [(T0 + 7000, 3)])))
        self.assertEqual(st, 204)
        self.assertEqual(self.outcome("duplicate"), before_dup + 1)
        # older than the last one: 400 (not retried), the rest of the body still taken
        before = self.outcome("out_of_order")
        st, _, body = self.post(write_request(timeseries(name, [(T0 + 1000, 9)]),
                                              timeseries({"__name__": "rw_order2"}, [(T0, 1)])))
        self.assertEqual(st, 400, body)
        self.assertIn("1 out of order", json.loads(body)["error"])
        self.assertEqual(self.outcome("out_of_order"), before + 1)
        self.assertIsNotNone(self.d.series("rw_order2"))
        self.assertEqual(self.d.series("rw_order")["samples"], 3)

    def test_staleness_and_nan(self):
        name = {"__name__": "rw_stale"}
        stale0, nonfin0 = self.outcome("stale"), self.outcome("non_finite")
        st, _, _ = self.post(write_request(timeseries(name, [
            (T0, 1), (T0 + 1000, STALE), (T0 + 2000, float("nan")), (T0 + 3000, float("inf")),
            (T0 + 4000, 2)])))
        self.assertEqual(st, 204)  # NaN quantiles are normal in Prometheus: no error
        self.assertEqual(self.outcome("stale"), stale0 + 1)
        self.assertEqual(self.outcome("non_finite"), nonfin0 + 2)
        s = self.d.series("rw_stale")
        self.assertEqual([p["value"] for p in s["recent"]], [1, 2])

    def test_counter_rates(self):
        name = {"__name__": "rw_requests_total", "code": "200"}
        key = 'rw_requests_total{code="200"}'
        primed0, reset0 = self.outcome("rate_primed"), self.outcome("counter_reset")
        vals = [(T0, 100), (T0 + 1000, 110), (T0 + 3000, 130), (T0 + 4000, STALE),
                (T0 + 5000, 200), (T0 + 6000, 205), (T0 + 7000, 3), (T0 + 9000, 13)]
        st, _, _ = self.post(write_request(timeseries(name, vals)))
        self.assertEqual(st, 204)
        s = self.d.series(key)
        self.assertEqual([p["value"] for p in s["recent"]], [10, 10, 5, 5])
        self.assertEqual(self.outcome("rate_primed"), primed0 + 2)  # first, after stale
        self.assertEqual(self.outcome("counter_reset"), reset0 + 1)
        # not matched by rate: ['*_total']: a metadata COUNTER stays raw here
        st, _, _ = self.post(write_request(metadata("rw_things", 1),
                                           timeseries({"__name__": "rw_things"},
                                                      [(T0, 5), (T0 + 1000, 6)])))
        self.assertEqual(st, 204)
        self.assertEqual([p["value"] for p in self.d.series("rw_things")["recent"]], [5, 6])

    def test_relabel_exclude(self):
        ex0 = self.outcome("excluded")
        st, _, _ = self.post(write_request(
            timeseries({"__name__": "go_goroutines"}, [(T0, 1)]),
            timeseries({"__name__": "scrape_samples_scraped", "job": "skipme"}, [(T0, 1)]),
            timeseries({"__name__": "scrape_samples_scraped", "job": "keep"}, [(T0, 1)])))
        self.assertEqual(st, 204)
        self.assertEqual(self.outcome("excluded"), ex0 + 2)
        self.assertIsNone(self.d.series("go_goroutines"))
        self.assertIsNotNone(self.d.series('scrape_samples_scraped{job="keep"}'))

    def test_bad_bodies(self):
        good = write_request(timeseries({"__name__": "rw_bad"}, [(T0, 1)]))

        def result(name):
            return self.d.metric("anomalyd_remote_write_requests_total", result=name) or 0

        cases = [
            (good, {"Content-Type": "application/x-protobuf"}, 415, "bad_encoding"),
            (good, dict(HEADERS, **{"Content-Encoding": "gzip"}), 415, "bad_encoding"),
            (good, dict(HEADERS, **{"Content-Type":
                                    "application/x-protobuf;proto=io.prometheus.write.v2.Request"}),
             415, "bad_content_type"),
            (b"\xff\xff\xff\xff\xff\xff not snappy", HEADERS, 400, "bad_snappy"),
            (snappy(b"\x0a\x05\x0a\x03"), HEADERS, 400, "bad_protobuf"),
            (snappy(b"hello world"), HEADERS, 400, "bad_protobuf"),
            (snappy(timeseries({"__name__": "rw_big", "pad": "x" * 4200}, [(T0, 1)])), HEADERS,
             413, "too_large"),  # over prometheus.max_decoded (4096)
        ]
        for body, headers, want, reason in cases:
            before = result(reason)
            st, _, resp = self.post(body, headers)
            self.assertEqual(st, want, (reason, resp))
            self.assertIn("error", json.loads(resp))
            self.assertEqual(result(reason), before + 1, reason)
        # over http.max_body (8192): the HTTP server answers 413 itself
        st, _, _ = self.post(b"\0" * 9000)
        self.assertEqual(st, 413)
        # unusable series: 400, counted, the rest taken
        bad0 = self.outcome("bad_series")
        st, _, _ = self.post(write_request(timeseries({"job": "no_name"}, [(T0, 1)]),
                                           timeseries({"__name__": "rw_ok_too"}, [(T0, 1)])))
        self.assertEqual(st, 400)
        self.assertEqual(self.outcome("bad_series"), bad0 + 1)
        self.assertIsNotNone(self.d.series("rw_ok_too"))
        # GET is not a write
        self.assertEqual(self.d.http("/api/v1/write")[0], 405)
        promtool_check_metrics(self, self.d.metrics())


class ListenerRefused(unittest.TestCase):
    def test_prometheus_is_not_a_listener(self):
        with tempfile.TemporaryDirectory(prefix="anomalyd-prom-") as tmp:
            cfg = config_text(tmp).replace(
                "listeners:\n", "listeners:\n  - {protocol: prometheus, transport: tcp, "
                "address: 127.0.0.1, port: 0}\n", 1)
            d = Daemon(cfg, tmp=tmp)
            with self.assertRaises(RuntimeError) as cm:
                d.start()
            d.stop()
            self.assertIn("prometheus is not a socket protocol", str(cm.exception))


# ---- the real thing ----

def prom_query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


class RealPrometheus(unittest.TestCase):
    """Debian's prometheus remote-writing to anomalyd and scraping it back."""

    @classmethod
    def setUpClass(cls):
        if not os.access(PROMETHEUS, os.X_OK):
            raise unittest.SkipTest("%s is missing (scripts/setup installs prometheus)"
                                    % PROMETHEUS)
        cls.tmp = tempfile.TemporaryDirectory(prefix="anomalyd-realprom-")
        tmp = cls.tmp.name
        cls.procs = []
        cls.d = Daemon(config_text(tmp, extra="prometheus:\n  include: ['prometheus_*', "
                                              "'up', 'node_*', 'scrape_*']\n"), tmp=tmp)
        cls.d.start()
        aport = cls.d.port("http")
        cls.node_port = None
        if os.access(NODE_EXPORTER, os.X_OK):
            port = free_port()
            p = subprocess.Popen([NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % port,
                                  "--collector.disable-defaults", "--collector.loadavg",
                                  "--collector.meminfo", "--collector.cpu", "--collector.time"],
                                 stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(tmp, "node.log"), "wb"))
            cls.procs.append(p)
            if cls.wait_http(port, "/metrics", p):
                cls.node_port = port
        cls.pport = free_port()
        node_job = ""
        if cls.node_port:
            node_job = """\
  - job_name: node
    static_configs: [{targets: ['127.0.0.1:%d']}]
""" % cls.node_port
        cfg = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:%d']}]
  - job_name: anomalyd
    honor_labels: true
    static_configs: [{targets: ['127.0.0.1:%d']}]
%sremote_write:
  - url: http://127.0.0.1:%d/api/v1/write
    remote_timeout: 5s
    queue_config: {batch_send_deadline: 1s, max_samples_per_send: 2000, min_backoff: 100ms,
                   max_backoff: 1s}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: 'anomaly_.*|anomalous|anomalyd_.*'
        action: drop
""" % (cls.pport, aport, node_job, aport)
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write(cfg)
        p = subprocess.Popen([PROMETHEUS, "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                              "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                              "--web.listen-address=127.0.0.1:%d" % cls.pport],
                             stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(tmp, "prometheus.log"), "wb"))
        cls.procs.append(p)
        if not cls.wait_http(cls.pport, "/-/ready", p, timeout=60):
            log = open(os.path.join(tmp, "prometheus.log")).read()[-3000:]
            cls.tearDownClass()
            raise AssertionError("prometheus did not become ready:\n" + log)

    @classmethod
    def tearDownClass(cls):
        for p in getattr(cls, "procs", []):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        cls.procs = []
        if getattr(cls, "d", None):
            code = cls.d.stop()
            cls.d = None
            assert code == 0, "anomalyd exit status %s" % code
        if getattr(cls, "tmp", None):
            cls.tmp.cleanup()
            cls.tmp = None

    @staticmethod
    def wait_http(port, path, proc, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2):
                    return True
            except OSError:
                time.sleep(0.2)
        return False

    def series_keys(self, match):
        st, body = self.d.json("/api/v1/series?" + urllib.parse.urlencode({"match": match}))
        self.assertEqual(st, 200)
        return [s["key"] for s in body["series"]]

    def test_1_prometheus_metrics_reach_anomalyd(self):
        keys = self.d.wait(lambda: self.series_keys("prometheus_*{*job=\"prometheus\"*}"),
                           timeout=60, what="series of Prometheus' own metrics")
        self.assertTrue(any(k.startswith("prometheus_") for k in keys), keys[:5])
        up = self.d.wait(lambda: self.d.series('up{instance="127.0.0.1:%d",job="prometheus"}'
                                               % self.pport),
                         timeout=30, what="Prometheus' up series")
        self.assertEqual(up["protocol"], "prometheus")
        # counters are modelled as rates (prometheus.rate defaults to every counter)
        st, _, _ = self.d.http("/metrics")
        self.assertEqual(st, 200)
        self.assertGreater(self.d.metric("anomalyd_remote_write_requests_total",
                                         result="ok") or 0, 0)
        self.assertGreater(self.d.metric("anomalyd_remote_write_samples_total",
                                         result="rate_primed") or 0, 0)
        # included: only the patterns given
        self.assertEqual(self.series_keys("go_*"), [])
        self.assertGreater(self.d.metric("anomalyd_remote_write_samples_total",
                                         result="excluded") or 0, 0)
        promtool_check_metrics(self, self.d.metrics())

    def test_2_prometheus_stores_anomaly_scores(self):
        def scores():
            try:
                return prom_query(self.pport, 'anomaly_score{job="prometheus"}')
            except OSError:
                return None

        res = self.d.wait(scores, timeout=60, what="anomaly_score series in Prometheus")
        names = {r["metric"].get("source_metric") for r in res}
        self.assertIn("up", names)
        for r in res:
            self.assertNotIn("exported_job", r["metric"])  # honor_labels kept job
        self.assertTrue(prom_query(self.pport, "anomalous"))
        up = prom_query(self.pport, 'up{job="anomalyd"}')
        self.assertEqual(up[0]["value"][1], "1")

    def test_3_node_exporter_feeds_through(self):
        if not self.node_port:
            self.skipTest("prometheus-node-exporter is missing or does not run here")
        keys = self.d.wait(lambda: self.series_keys("node_*"), timeout=60,
                           what="node_* series from node_exporter")
        self.assertTrue(any('job="node"' in k for k in keys), keys[:5])
        self.d.wait(lambda: prom_query(self.pport, 'anomaly_score{job="node"}'), timeout=60,
                    what="node series' anomaly scores in Prometheus")


class ConfigPrometheus(unittest.TestCase):
    """config/prometheus/: accepted by promtool, the dashboard valid JSON."""

    def test_rules(self):
        if not PROMTOOL:
            self.skipTest("promtool is missing (scripts/setup installs prometheus)")
        p = subprocess.run([PROMTOOL, "check", "rules",
                            os.path.join(CONFIG_DIR, "anomalyd-rules.yml")], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertIn("SUCCESS", p.stdout.decode())

    def test_config(self):
        if not PROMTOOL:
            self.skipTest("promtool is missing (scripts/setup installs prometheus)")
        with tempfile.TemporaryDirectory() as tmp:
            # the config names its rule file relative to itself: check a copy of both
            for f in ("prometheus.yml", "anomalyd-rules.yml"):
                shutil.copy(os.path.join(CONFIG_DIR, f), tmp)
            p = subprocess.run([PROMTOOL, "check", "config",
                                os.path.join(tmp, "prometheus.yml")], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_dashboard(self):
        with open(os.path.join(CONFIG_DIR, "grafana-dashboard.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        self.assertTrue(any("anomaly_score" in e for e in exprs))
        self.assertTrue(any("anomaly_predicted" in e for e in exprs))
        self.assertTrue(any("anomaly_value" in e for e in exprs))


if __name__ == "__main__":
    unittest.main()
