"""daemon_harness.py - start the real anomalyd on loopback for the integration tests.

Every listener binds port 0 (or a Unix socket in a temporary directory); the daemon logs
"listening <what> <transport> <address>:<port>" for each, and the harness reads the
ports from there. Python standard library only.
"""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

ANOMALYD = os.environ.get("ANOMALYD", "anomalyd")

DETECTOR = """\
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
"""


def config_text(tmp, extra="", defaults=DETECTOR, top=""):
    """A configuration binding everything to port 0 / sockets under tmp, with the store
    under tmp too (unless extra has a store section of its own)."""
    if "store:" not in extra and "store:" not in top:
        extra = "store:\n  path: %s/state/anomalyd.db\n" % tmp + extra
    return f"""\
log_level: info
state_dir: {tmp}/state
{top}listeners:
  - {{protocol: graphite, transport: tcp, address: 127.0.0.1, port: 0}}
  - {{protocol: graphite, transport: udp, address: 127.0.0.1, port: 0}}
  - {{protocol: influx, transport: tcp, address: 127.0.0.1, port: 0, precision: s}}
  - {{protocol: influx, transport: udp, address: 127.0.0.1, port: 0, precision: ms}}
  - {{protocol: statsd, transport: udp, address: 127.0.0.1, port: 0}}
  - {{protocol: jsonl, transport: tcp, address: 127.0.0.1, port: 0}}
  - {{protocol: jsonl, transport: unix, path: {tmp}/jsonl.sock}}
statsd:
  flush_interval: 0.5
http:
  address: 127.0.0.1
  port: 0
events:
  address: 127.0.0.1
  port: 0
  unix: {tmp}/events.sock
  file: {tmp}/events.jsonl
  buffer: 65536
{extra}defaults:
{defaults}"""


LISTEN_RE = re.compile(r"listening (\w+) (tcp|udp|unix) (\S+)")


class Daemon:
    """One anomalyd process. Use as a context manager."""

    def __init__(self, config=None, args=(), tmp=None, cwd=None):
        self._tmpobj = None
        self.cwd = cwd  # the daemon's working directory (None: the test's)
        if tmp is None:
            self._tmpobj = tempfile.TemporaryDirectory(prefix="anomalyd-test-")
            tmp = self._tmpobj.name
        self.tmp = tmp
        self.config_path = os.path.join(tmp, "anomalyd.yaml")
        with open(self.config_path, "w") as f:
            f.write(config if config is not None else config_text(tmp))
        self.args = list(args)
        self.lines = []
        self.ports = {}  # ("graphite", "tcp") -> port; ("events", "tcp") -> port ...
        self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        if self._tmpobj:
            self._tmpobj.cleanup()

    def start(self, timeout=20):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        self.proc = subprocess.Popen([ANOMALYD, "-c", self.config_path] + self.args,
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                                     cwd=self.cwd)
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.time() + timeout
        with self._cv:
            while not any("started" in l for l in self.lines):
                if self.proc.poll() is not None:
                    raise RuntimeError("anomalyd exited %s:\n%s" % (self.proc.returncode,
                                                                    "".join(self.lines)))
                left = deadline - time.time()
                if left <= 0:
                    raise RuntimeError("anomalyd did not start:\n" + "".join(self.lines))
                self._cv.wait(left)
        for l in self.lines:
            m = LISTEN_RE.search(l)
            if m and m.group(2) != "unix":
                port = int(m.group(3).rsplit(":", 1)[1])
                self.ports.setdefault((m.group(1), m.group(2)), port)

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            with self._cv:
                self.lines.append(line)
                self._cv.notify_all()

    def log(self):
        with self._cv:
            return "".join(self.lines)

    def wait_log(self, pattern, timeout=10):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        with self._cv:
            while True:
                for l in self.lines:
                    if rx.search(l):
                        return l
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("no log line matching %r in:\n%s" % (pattern, "".join(self.lines)))
                self._cv.wait(left)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("anomalyd did not stop within %ds" % timeout)
        if self.proc:
            self._reader.join(5)
            self.proc.stderr.close()
        return self.proc.returncode if self.proc else None

    # --- clients ---

    def port(self, what, transport="tcp"):
        return self.ports[(what, transport)]

    def send_tcp(self, what, data, close=True):
        s = socket.create_connection(("127.0.0.1", self.port(what)))
        s.sendall(data if isinstance(data, bytes) else data.encode())
        if close:
            s.close()
            return None
        return s

    def send_udp(self, what, data):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(data if isinstance(data, bytes) else data.encode(),
                 ("127.0.0.1", self.port(what, "udp")))
        s.close()

    def send_unix(self, path, data):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(data if isinstance(data, bytes) else data.encode())
        s.close()

    def http(self, path, method="GET", body=None, headers=None):
        """(status, headers, body bytes)."""
        url = "http://127.0.0.1:%d%s" % (self.port("http"), path)
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, path, **kw):
        status, _, body = self.http(path, **kw)
        return status, json.loads(body) if body else None

    def metrics(self):
        status, _, body = self.http("/metrics")
        assert status == 200, status
        return body.decode()

    def metric(self, name, **labels):
        """The value of one sample of /metrics, or None."""
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            if "{" in key:
                n, _, rest = key.partition("{")
                got = ",".join(sorted(rest.rstrip("}").split(",")))
            else:
                n, got = key, ""
            if n == name and got == want:
                return float(value)
        return None

    def series(self, key):
        status, body = self.json("/api/v1/series/" + urllib.request.quote(key, safe=""))
        return body if status == 200 else None

    def wait(self, cond, timeout=15, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; log:\n%s" % (what, self.log()[-4000:]))
