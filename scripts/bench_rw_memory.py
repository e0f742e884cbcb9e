#!/usr/bin/python3
"""bench_rw_memory.py - memory per series for series created by Prometheus remote write.

Starts the release anomalyd with the built-in defaults (the detector a new user gets;
store enabled, as deployed), remote-writes N series (default 20000, node_exporter-like
labels) in requests of 1000 series with S samples each (default 20), sent again on 503
as Prometheus does, then reads VmRSS before and after and GET /api/v1/status's
"memory" (daemon/memstat.h): the bytes each part holds and per series.
  /usr/bin/python3 scripts/bench_rw_memory.py [--series N] [--samples S]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("AD_BUILD_DIR", os.path.join(ROOT, "build", "release"))
ANOMALYD = os.path.join(BUILD, "daemon", "anomalyd")
T0 = 1700000000000

sys.path.insert(0, os.path.join(ROOT, "tests"))
from rwbody import HEADERS, snappy, timeseries  # noqa: E402


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def http(port, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                 method="POST" if body else "GET",
                                 headers=HEADERS if body else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=20000)
    ap.add_argument("--samples", type=int, default=20, help="samples per series")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="anomalyd-rwmem-")
    cfg = os.path.join(tmp, "anomalyd.yaml")
    with open(cfg, "w") as f:
        f.write(f"""log_level: info
state_dir: {tmp}
max_series: {args.series + 1000}
listeners: []
http: {{address: 127.0.0.1, port: 0}}
events: {{address: "", unix: "", file: ""}}
""")
    log = os.path.join(tmp, "anomalyd.log")
    p = subprocess.Popen([ANOMALYD, "-c", cfg], stderr=open(log, "w"),
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    port = None
    while port is None:
        time.sleep(0.1)
        if p.poll() is not None:
            raise SystemExit("anomalyd exited:\n" + open(log).read())
        text = open(log).read()
        m = re.search(r"listening http tcp 127\.0\.0\.1:(\d+)", text)
        if m and "started" in text:
            port = int(m.group(1))
    time.sleep(0.5)
    base = rss(p.pid)
    t0 = time.time()
    deferred = 0
    for k in range(0, args.series, 1000):
        body = snappy(b"".join(
            timeseries({"__name__": "node_cpu_utilisation", "cpu": str(i % 64),
                        "instance": "host-%d:9100" % (i // 64), "job": "node", "mode": "idle"},
                       [(T0 + 15000 * j, 0.5 + 0.01 * ((i + j) % 7)) for j in range(args.samples)])
            for i in range(k, min(args.series, k + 1000))))
        while True:
            status, answer = http(port, "/api/v1/write", body)
            if status != 503:
                break
            deferred += 1
        if status != 204:
            raise SystemExit("remote write answered %d: %s" % (status, answer))
    took = time.time() - t0
    time.sleep(1)
    after = rss(p.pid)
    status, answer = http(port, "/api/v1/status")
    st = json.loads(answer)
    mem = st["memory"]
    n = st["series"]
    print("anomalyd %s: %d series by remote write, %d samples each, in %.1f s (%d requests "
          "deferred)" % (st["version"], n, args.samples, took, deferred))
    print("RSS %.1f MiB (%.1f MiB before): %.0f bytes per series" %
          (after / 2**20, base / 2**20, (after - base) / n))
    print("held per series: %.0f bytes: detectors %.0f, recent points %.0f, series struct "
          "and key %.0f, remote-write state %.0f" %
          (mem["bytes_per_series"], mem["detectors"] / n, mem["recent"] / n, mem["series"] / n,
           mem["remote_write"] / n))
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
