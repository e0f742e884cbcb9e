"""test_hardening.py - what a hostile or careless world does to the real anomalyd (issue 15).

Descriptors: the daemon started under `prlimit --nofile=N:N` with many more clients than
N: refusals are logged (once) and counted, /healthz answers while clients hold every
descriptor the daemon lets them have, and new clients are served once they go; at start
the soft limit is raised when the hard limit allows, else a warning gives the numbers.

OwnOutput: a Prometheus that remote-writes everything to anomalyd and scrapes anomalyd
back, as a new user writes it first (no write_relabel_configs drop): anomalyd's own
families (anomaly_*, anomalous, anomalyd_*) are refused and counted by default, so the
series do not grow without bound; `prometheus.exclude_own: false` models them.

Flood: remote-write requests creating many new series at once: one request creates at
most a bounded number (503, retried as Prometheus retries), /healthz keeps answering
meanwhile, and max_series applies to remote-write series.

Run by ctest (ANOMALYD names the binary; prlimit is util-linux's; PROMETHEUS, default
/usr/bin/prometheus, for the real loop). Python stdlib only.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

import daemon_harness
from daemon_harness import Daemon, config_text
from rwbody import HEADERS, timeseries, write_request

PROMETHEUS = os.environ.get("PROMETHEUS") or "/usr/bin/prometheus"
T0 = 1700000000000  # ms

PRLIMIT = shutil.which("prlimit") or "/usr/bin/prlimit"


class Limited:
    """Runs the daemon under prlimit --nofile=soft:hard (the harness starts whatever
    daemon_harness.ANOMALYD names: a wrapper script for the time of the block)."""

    def __init__(self, tmp, soft, hard):
        self.path = os.path.join(tmp, "anomalyd-limited.sh")
        with open(self.path, "w") as f:
            f.write('#!/bin/sh\nexec %s --nofile=%d:%d -- "%s" "$@"\n'
                    % (PRLIMIT, soft, hard, daemon_harness.ANOMALYD))
        os.chmod(self.path, 0o755)

    def __enter__(self):
        self.saved = daemon_harness.ANOMALYD
        daemon_harness.ANOMALYD = self.path
        return self

    def __exit__(self, *exc):
        daemon_harness.ANOMALYD = self.saved


def nofile_soft(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def alive(sock):
    """Whether the daemon kept a connection (refused ones see the end of the stream)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


@unittest.skipUnless(os.path.exists(PRLIMIT), "prlimit (util-linux) is missing")
class Descriptors(unittest.TestCase):

    def samples(self, d, key):
        s = d.series(key)
        return s["samples"] if s else 0

    def test_out_of_descriptors(self):
        """600 clients against a limit of 200: refused, logged once, counted; /healthz
        answers meanwhile; served again once the clients go."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        socks = []
        try:
            with Limited(tmp, 200, 200), Daemon(config_text(tmp), tmp=tmp) as d:
                warn = d.wait_log(r"RLIMIT_NOFILE")
                self.assertRegex(warn, r"warn: .*\b200\b.*hard.*\b200\b")
                self.assertIn("max_connections", warn)
                port = d.port("graphite")
                for _ in range(600):
                    socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))

                def settled():
                    got = ((d.metric("anomalyd_connections_open") or 0) +
                           (d.metric("anomalyd_connections_refused_total",
                                     reason="fd_limit") or 0))
                    return got >= 600
                d.wait(settled, timeout=30, what="600 connections accepted or refused")
                t = time.time()
                status, body = d.json("/healthz")
                self.assertEqual(status, 200)
                self.assertLess(time.time() - t, 2.0)
                opened = d.metric("anomalyd_connections_open")
                self.assertGreater(opened, 100)
                self.assertLess(opened, 200)
                self.assertLessEqual(d.metric("anomalyd_fds_open"), 200)
                self.assertEqual(d.metric("anomalyd_fds_limit"), 200)
                d.wait_log(r"warn: out of file descriptors: refusing new stream connections")
                kept = [s for s in socks if alive(s)]
                self.assertEqual(len(kept), opened)
                for s in kept:
                    s.setblocking(True)
                    s.sendall(b"fd.kept 1\n")
                d.wait(lambda: self.samples(d, "fd.kept") == len(kept), timeout=30,
                       what="a line from every connection kept")
                for s in socks:
                    s.close()
                socks = []
                d.wait(lambda: d.metric("anomalyd_connections_open") == 0,
                       what="every connection closed")
                refused = d.metric("anomalyd_connections_refused_total", reason="fd_limit")
                for _ in range(50):
                    d.send_tcp("graphite", "fd.after 1\n")
                d.wait(lambda: self.samples(d, "fd.after") == 50, what="new clients served")
                self.assertEqual(d.metric("anomalyd_connections_refused_total",
                                          reason="fd_limit"), refused)
                self.assertEqual(len(re.findall(r"out of file descriptors", d.log())), 1,
                                 "logged once a minute, not per connection")
                code = d.stop()
                self.assertEqual(code, 0)
        finally:
            for s in socks:
                s.close()
            shutil.rmtree(tmp)

    def test_soft_limit_raised(self):
        """A soft limit below the need is raised when the hard limit allows."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Limited(tmp, 256, 4096), \
                 Daemon(config_text(tmp, top="max_connections: 500\n"), tmp=tmp) as d:
                line = d.wait_log(r"RLIMIT_NOFILE")
                m = re.search(r"info: .*raised from 256 to (\d+)", line)
                self.assertTrue(m, line)
                soft = int(m.group(1))
                self.assertGreater(soft, 1000)  # two sides of 500 connections and more
                self.assertLessEqual(soft, 4096)
                self.assertEqual(nofile_soft(d.proc.pid), soft)
                self.assertEqual(d.metric("anomalyd_fds_limit"), soft)
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(tmp)


def post(d, body):
    return d.http("/api/v1/write", method="POST", body=body, headers=dict(HEADERS))


def post_retrying(d, body, deadline=120):
    """Posts as Prometheus does: again after a 5xx (Retry-After), until another answer."""
    end = time.time() + deadline
    while True:
        status, headers, answer = post(d, body)
        if status < 500 or time.time() > end:
            return status, answer
        time.sleep(min(float(headers.get("Retry-After", "0.05")), 0.05))


def node_series(i, samples=1):
    return timeseries({"__name__": "node_cpu_utilisation", "cpu": str(i % 64),
                       "instance": "host-%d:9100" % (i // 64), "job": "node", "mode": "idle"},
                      [(T0 + 1000 * j, float(i + j)) for j in range(samples)])


def outcome(d, name):
    return d.metric("anomalyd_remote_write_samples_total", result=name) or 0


OWN = [({"__name__": "anomaly_score", "job": "node", "source_metric": "node_load1"}, 0.1),
       ({"__name__": "anomalous", "job": "node", "source_metric": "node_load1"}, 0),
       ({"__name__": "anomaly_value", "job": "node", "source_metric": "node_load1"}, 1.5),
       ({"__name__": "anomaly_predicted", "job": "node", "source_metric": "node_load1"}, 1.4),
       ({"__name__": "anomalyd_samples_total", "job": "anomalyd", "protocol": "graphite"}, 7),
       ({"__name__": "anomalyd_series_score", "job": "anomalyd", "series": "a.b"}, 0.2)]


class OwnOutput(unittest.TestCase):

    def test_own_output_refused_and_counted(self):
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Daemon(config_text(tmp), tmp=tmp) as d:
                body = write_request(*[timeseries(l, [(T0, v)]) for l, v in OWN] +
                                     [timeseries({"__name__": "anomaly_detector_up",
                                                  "job": "x"}, [(T0, 1)])])
                status, _, answer = post(d, body)
                self.assertEqual(status, 204, answer)
                self.assertEqual(outcome(d, "own_output"), len(OWN))
                self.assertEqual(d.metric("anomalyd_remote_write_series_dropped_total",
                                          reason="own_output"), len(OWN))
                status, listing = d.json("/api/v1/series")
                self.assertEqual([s["key"] for s in listing["series"]],
                                 ['anomaly_detector_up{job="x"}'])
                d.wait_log(r"warn: remote write carries anomalyd's own output")
                post(d, body)
                self.assertEqual(len(re.findall(r"own output", d.log())), 1)
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(tmp)

    def test_exclude_own_false_models_them(self):
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            cfg = config_text(tmp, extra="prometheus:\n  exclude_own: false\n")
            with Daemon(cfg, tmp=tmp) as d:
                status, _, answer = post(d, write_request(
                    *[timeseries(l, [(T0, v)]) for l, v in OWN]))
                self.assertEqual(status, 204, answer)
                self.assertEqual(outcome(d, "own_output"), 0)
                self.assertIsNotNone(d.series(
                    'anomaly_score{job="node",source_metric="node_load1"}'))
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(tmp)

    @unittest.skipUnless(os.access(PROMETHEUS, os.X_OK), "prometheus is missing "
                         "(scripts/setup installs it)")
    def test_real_prometheus_writing_everything_back(self):
        """The issue's loop: remote_write of everything, and a scrape of anomalyd with
        honor_labels. anomalyd must model Prometheus' metrics and none of its own, and
        the series must stop growing."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        prom = None
        try:
            with Daemon(config_text(tmp), tmp=tmp) as d:
                pport = free_port()
                with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
                    f.write(PLAIN_PROMETHEUS % (pport, d.port("http"), d.port("http")))
                prom = subprocess.Popen(
                    [PROMETHEUS, "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                     "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                     "--web.listen-address=127.0.0.1:%d" % pport],
                    stdout=subprocess.DEVNULL,
                    stderr=open(os.path.join(tmp, "prometheus.log"), "wb"))
                d.wait(lambda: outcome(d, "own_output") > 0, timeout=60,
                       what="anomalyd's own output coming back")
                d.wait(lambda: d.series('up{instance="127.0.0.1:%d",job="prometheus"}'
                                        % pport), timeout=30, what="Prometheus' own metrics")
                time.sleep(8)  # several scrape and remote-write rounds
                first = d.metric("anomalyd_series")
                time.sleep(8)
                second = d.metric("anomalyd_series")
                status, listing = d.json("/api/v1/series?match=anomal*&limit=10")
                self.assertEqual(listing["total"], 0, listing["series"])
                # Prometheus' own families are a few hundred and grow a little as it runs.
                self.assertLess(second, 2000)
                self.assertLess(second - first, 100)
                prom.terminate()
                prom.wait(30)
                prom = None
                self.assertEqual(d.stop(), 0)
        finally:
            if prom:
                prom.kill()
                prom.wait()
            shutil.rmtree(tmp)


PLAIN_PROMETHEUS = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:%d']}]
  - job_name: anomalyd
    honor_labels: true
    static_configs: [{targets: ['127.0.0.1:%d']}]
remote_write:
  - url: http://127.0.0.1:%d/api/v1/write
    queue_config: {batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


SMALL = """\
  cell: lstm
  hidden: 8
  history: 64
  train_after: 1000000
  window: 16
  features: []
  scorer_window: 64
  min_samples: 16
  seasonal_period: 0
"""


class Flood(unittest.TestCase):

    def test_new_series_per_request_bounded(self):
        """One request with 2500 new series creates at most 1000 of them and answers
        503; retried, it goes on where it stopped and is taken whole."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Daemon(config_text(tmp, defaults=SMALL), tmp=tmp) as d:
                body = write_request(*[node_series(i, 3) for i in range(2500)])
                status, headers, answer = post(d, body)
                self.assertEqual(status, 503, answer)
                self.assertIn("Retry-After", headers)
                self.assertEqual(d.metric("anomalyd_series"), 1000)
                self.assertEqual(outcome(d, "ingested"), 0)
                self.assertEqual(d.metric("anomalyd_remote_write_requests_total",
                                          result="deferred"), 1)
                # a deferred request counts as deferred only (promrw.h)
                self.assertEqual(d.metric("anomalyd_remote_write_decoded_bytes_total"), 0)
                self.assertEqual(post(d, body)[0], 503)
                self.assertEqual(d.metric("anomalyd_series"), 2000)
                status, _, answer = post(d, body)
                self.assertEqual(status, 204, answer)
                self.assertEqual(d.metric("anomalyd_series"), 2500)
                self.assertEqual(outcome(d, "ingested"), 2500 * 3)
                self.assertGreater(d.metric("anomalyd_remote_write_decoded_bytes_total"), 0)
                self.check_memory(d, 2500)
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(tmp)

    def check_memory(self, d, n):
        """/api/v1/status and /metrics say where the memory goes: the parts add up to the
        series' bytes, the remote-write state holds at least each key, RSS covers it."""
        status, st = d.json("/api/v1/status")
        mem = st["memory"]
        held = mem["detectors"] + mem["recent"] + mem["series"]
        self.assertEqual(held, st["series_bytes"])
        self.assertGreater(mem["remote_write"], n * len('node_cpu_utilisation{cpu="1"}'))
        self.assertAlmostEqual(mem["bytes_per_series"], (held + mem["remote_write"]) / n,
                               places=3)
        self.assertGreater(mem["rss"], held)
        for part in ("detectors", "recent", "series", "remote_write"):
            self.assertEqual(d.metric("anomalyd_memory_bytes", part=part), mem[part])
        self.assertGreater(d.metric("anomalyd_memory_bytes", part="rss"), held)

    def test_healthz_answers_under_a_flood(self):
        """Two senders, each one request of 16000 new series with the default detector
        (about 40 KB each, 1.3 GB in all): /healthz is probed every 50 ms throughout and
        must always answer, within 2 s (generous: the loop's longest pause is one
        request's share of new series; taking a whole request at once paused it for
        2.6 s here)."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            # no store: its final checkpoint of 32000 detectors is not what this measures
            cfg = config_text(tmp, extra="store:\n  enabled: false\n", defaults="  seed: 1\n")
            with Daemon(cfg, tmp=tmp) as d:
                bodies = [write_request(*[node_series(i) for i in range(k, k + 16000)])
                          for k in (0, 16000)]
                lat, errors, results = [], [], []
                done = threading.Event()

                def probe():
                    while not done.is_set():
                        t = time.time()
                        try:
                            status, _ = d.json("/healthz")
                            if status != 200:
                                errors.append(status)
                        except OSError as e:
                            errors.append(repr(e))
                        lat.append(time.time() - t)
                        time.sleep(0.05)

                def send(body):
                    results.append(post_retrying(d, body)[0])

                prober = threading.Thread(target=probe)
                prober.start()
                time.sleep(0.2)
                senders = [threading.Thread(target=send, args=(b,)) for b in bodies]
                for t in senders:
                    t.start()
                for t in senders:
                    t.join()
                time.sleep(0.2)
                done.set()
                prober.join()
                self.assertEqual(results, [204] * len(bodies))
                self.assertEqual(d.metric("anomalyd_series"), 32000)
                self.assertEqual(errors, [])
                print("\n/healthz under the flood: %d probes, max %.3f s, median %.3f s"
                      % (len(lat), max(lat), sorted(lat)[len(lat) // 2]))
                self.assertLess(max(lat), 2.0)
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(tmp)

    def test_series_listing_takes_the_smallest_keys(self):
        """GET /api/v1/series keeps only the `limit` smallest keys while it walks the
        table (no sort of every series): the same answer as sorting them all."""
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Daemon(config_text(tmp, defaults=SMALL), tmp=tmp) as d:
                names = ["api.%05d" % ((i * 7919) % 3000) for i in range(3000)]
                d.send_tcp("graphite", "".join("%s 1 1700000000\n" % n for n in names))
                d.wait(lambda: d.metric("anomalyd_series") == 3000, what="3000 series")
                for limit in (0, 1, 7, 1000, 5000):
                    status, body = d.json("/api/v1/series?limit=%d" % limit)
                    self.assertEqual(status, 200)
                    self.assertEqual(body["total"], 3000)
                    self.assertEqual([s["key"] for s in body["series"]],
                                     sorted(names)[:limit])
                status, body = d.json("/api/v1/series?match=api.02*&limit=3")
                self.assertEqual(body["total"], 1000)
                self.assertEqual([s["key"] for s in body["series"]],
                                 ["api.02000", "api.02001", "api.02002"])
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(tmp)

    def test_max_series_applies_to_remote_write(self):
        tmp = tempfile.mkdtemp(prefix="anomalyd-test-")
        try:
            with Daemon(config_text(tmp, defaults=SMALL, top="max_series: 50\n"),
                        tmp=tmp) as d:
                status, _, answer = post(d, write_request(*[node_series(i) for i in range(80)]))
                self.assertEqual(status, 400, answer)
                self.assertIn(b"30 of new series with max_series reached", answer)
                self.assertEqual(d.metric("anomalyd_series"), 50)
                self.assertEqual(outcome(d, "ingested"), 50)
                self.assertEqual(outcome(d, "series_table_full"), 30)
                self.assertEqual(d.stop(), 0)
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
