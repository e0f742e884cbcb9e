#!/usr/bin/python3
"""bench_family.py - a million series in one shared family on one machine (issue #6).

Starts the release anomalyd with one `shared: true` rule over bench.* (small members:
history 64, window 16, scorer_window 32, no time features, no seasonal or long window,
recent 0), feeds N series (default 1,000,000) of noisy sines in Graphite over loopback
TCP with build/release/tests/bench_loadgen, waits for the family's first training and
for every member to join, then measures a phase: samples/s, the loop thread's CPU per
sample, RSS and bytes per series (GET /api/v1/status; /metrics?series=0).
  /usr/bin/python3 scripts/bench_family.py [--series N] [--rounds R]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("AD_BUILD_DIR", os.path.join(ROOT, "build", "release"))
ANOMALYD = os.path.join(BUILD, "daemon", "anomalyd")
LOADGEN = os.path.join(BUILD, "tests", "bench_loadgen")
RULE = """series:
  - match: "bench.*"
    shared: true
    history: 64
    window: 16
    batch: 16
    train_after: 32
    prime: 32
    features: []
    scorer_window: 32
    min_samples: 16
    seasonal_period: 0
    long_window: 0
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=10, help="rounds in the measured phase")
    args = ap.parse_args()
    n = args.series
    tmp = tempfile.mkdtemp(prefix="anomalyd-family-")
    cfg = os.path.join(tmp, "anomalyd.yaml")
    with open(cfg, "w") as f:
        f.write(f"""log_level: warn
state_dir: {tmp}
max_series: {n + 1000}
recent: 0
listeners:
  - {{protocol: graphite, transport: tcp, address: 127.0.0.1, port: 0}}
http: {{address: 127.0.0.1, port: 0}}
events: {{address: "", unix: "", file: {tmp}/events.jsonl}}
store: {{enabled: false}}
defaults: {{hidden: 32}}
{RULE}""")
    logf = open(os.path.join(tmp, "log"), "w+")
    p = subprocess.Popen([ANOMALYD, "-c", cfg, "-l", "info"], stderr=logf,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    while " started" not in open(logf.name).read():
        time.sleep(0.05)
    text = open(logf.name).read()
    gport = int(re.search(r"listening graphite tcp [\d.]+:(\d+)", text).group(1))
    hport = int(re.search(r"listening http tcp [\d.]+:(\d+)", text).group(1))

    def status():
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/status" % hport, timeout=300) as r:
            return json.loads(r.read())

    def loop_cpu():
        with open("/proc/%d/task/%d/schedstat" % (p.pid, p.pid)) as f:
            return int(f.read().split()[0]) * 1e-9

    def rss():
        with open("/proc/%d/status" % p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

    def send(rounds, round0):
        out = subprocess.run([LOADGEN, "--port", str(gport), "--series", str(n), "--rounds",
                              str(rounds), "--round0", str(round0)], stdout=subprocess.PIPE,
                             check=True).stdout.decode().strip().splitlines()[-1]
        return json.loads(out)

    def drain(want):
        while status()["samples"]["graphite"] < want:
            time.sleep(0.2)

    try:
        t0 = time.time()
        g = send(34, 0)
        print("# loadgen: %s (%.0f s)" % (g, time.time() - t0), flush=True)
        drain(34 * n)
        print("# %d series created and fed 34 rounds in %.0f s" % (n, time.time() - t0), flush=True)
        while status()["training"]["installed"] < 1:
            time.sleep(0.2)
        r = 34
        while True:
            st = status()
            if st["series_warming_up"] == 0:
                break
            send(1, r)
            r += 1
            drain(r * n)
        st = status()
        print("# the family trained (%d trainings) and every member joined by round %d, %.0f s"
              % (st["training"]["installed"], r, time.time() - t0), flush=True)
        s0, c0, w0 = st["samples"]["graphite"], loop_cpu(), time.time()
        send(args.rounds, r)
        drain(s0 + args.rounds * n)
        s1, c1, w1 = status()["samples"]["graphite"], loop_cpu(), time.time()
        st = status()
        got = s1 - s0
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics?series=0" % hport, timeout=300) as h:
            m = h.read().decode()
        fam_bytes = re.search(r'anomalyd_family_bytes\{family="bench\.\*"\} (\d+)', m)
        print("| series | samples/s (wall) | loop CPU ns/sample (= per core) | RSS | RSS/series | series_bytes/series | family network bytes | anomalies |")
        print("|---|---|---|---|---|---|---|---|")
        print("| %d | %.0fk | %.0f (%.0fk) | %.2f GiB | %.0f B | %.0f B | %s | %d |"
              % (n, got / (w1 - w0) / 1e3, 1e9 * (c1 - c0) / got, got / (c1 - c0) / 1e3,
                 rss() / 2**30, rss() / n, st["series_bytes"] / st["series"],
                 fam_bytes.group(1) if fam_bytes else "?", st["anomalies"]), flush=True)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(300)


if __name__ == "__main__":
    main()
