#!/usr/bin/python3
"""bench_ingest.py - the end-to-end benchmark's driver (scripts/bench_ingest builds and
runs it): the real anomalyd on loopback, fed by tests/bench_loadgen over Graphite TCP.

For each N in --series: a fresh daemon (temporary directory, listeners on port 0, the
events file there, the store disabled) with the benchmark configuration (BENCH_DEFAULTS
below: LSTM H=32, train_after and history lowered so every series trains once in a
short warm-up; training.threads and training.cpu_budget left at their defaults); a
warm-up (train_after + 2 rounds, then one more round whenever the training queue is
empty, until every series has a trained network); then --repeat measured phases of
--seconds each, with spikes injected into --inject series in the middle 60% of each
phase. Per phase it prints:

  - sps: anomalyd_samples_total delta / wall time from the phase's start until the
    daemon has taken every sample sent (the generator sends as fast as TCP lets it);
  - p50/p99 receipt-to-score latency, interpolated in the anomalyd_ingest_latency_seconds
    bucket deltas (as Prometheus' histogram_quantile does);
  - CPU: the daemon's (all threads) and its loop thread's (/proc/<pid>/task/<pid>/
    schedstat) CPU time over the phase, the loop thread's CPU ns per sample and the rate
    that gives (cpu_sps: what one core would sustain, insensitive to being descheduled),
    the generator's CPU;
  - helper_share: the share of samples whose detector ran on the score helper thread
    (anomalyd_scored_samples_total; the loop thread ran the rest);
  - RSS (VmRSS) and RSS per series, the mean of anomalyd_series_bytes;
  - injected spikes reported (matched by series and timestamp in the events file), and
    the other alerts raised during the phase.
Then the PyTorch per-stream peer (scripts/bench_torch.py --peer) for the same N (at most
--torch-max streams) and the ratios. A summary table at the end (Markdown).
"""
import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("AD_BUILD_DIR", os.path.join(ROOT, "build", "release"))
ANOMALYD = os.path.join(BUILD, "daemon", "anomalyd")
LOADGEN = os.path.join(BUILD, "tests", "bench_loadgen")

TRAIN_AFTER, HISTORY = 128, 256
BENCH_DEFAULTS = f"""\
  cell: lstm
  hidden: 32
  train_after: {TRAIN_AFTER}
  history: {HISTORY}
"""
STATED = (f"defaults: cell lstm, hidden 32, train_after {TRAIN_AFTER} (default 750), "
          f"history {HISTORY} (default 2500); all else default: features [tod, dow] (D=5), "
          f"train_every 2000, window 64, batch 16, epochs 60, patience 8, likelihood scorer, "
          f"recent 256; training.threads 1, training.cpu_budget 1.0, training.nice 10, training.queue 10000 "
          f"(defaults); store disabled; events to a file")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


WEIGHTS = "float32"  # --weights (--fp16: float16): the daemon's weights
SCORE_THREADS = 0  # --score-threads: the daemon's score_threads (0: its default)
RECENT = 256  # --recent: the daemon's recent (points per series kept for the API)


class Daemon:
    def __init__(self, tmp, nseries):
        self.tmp = tmp
        self.events = os.path.join(tmp, "events.jsonl")
        cfg = os.path.join(tmp, "anomalyd.yaml")
        with open(cfg, "w") as f:
            f.write(f"""\
log_level: info
state_dir: {tmp}/state
max_series: {max(100000, nseries)}
weights: {WEIGHTS}
score_threads: {SCORE_THREADS}
recent: {RECENT}
listeners:
  - {{protocol: graphite, transport: tcp, address: 127.0.0.1, port: 0}}
http:
  address: 127.0.0.1
  port: 0
events:
  address: ""
  unix: ""
  file: {self.events}
store:
  enabled: false
defaults:
{BENCH_DEFAULTS}""")
        self.logf = open(os.path.join(tmp, "anomalyd.log"), "w+")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        self.proc = subprocess.Popen([ANOMALYD, "-c", cfg], stdout=subprocess.DEVNULL,
                                     stderr=self.logf, env=env)
        self.pid = self.proc.pid
        deadline = time.time() + 20
        while True:
            text = open(self.logf.name).read()
            if " started" in text:
                break
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("anomalyd did not start:\n" + text)
            time.sleep(0.05)
        self.graphite = int(re.search(r"listening graphite tcp [\d.]+:(\d+)", text).group(1))
        self.http = int(re.search(r"listening http tcp [\d.]+:(\d+)", text).group(1))
        self.started_line = [l for l in text.splitlines() if " started" in l][0]

    def get(self, path, timeout=120):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http, path),
                                    timeout=timeout) as r:
            return r.read()

    def status(self):
        return json.loads(self.get("/api/v1/status"))

    def metrics(self):
        """(daemon-wide samples {name{labels}: value}, series bytes sum, series count)."""
        out, bsum, bn = {}, 0.0, 0
        for line in self.get("/metrics").decode().splitlines():
            if not line or line[0] == "#":
                continue
            key, _, val = line.rpartition(" ")
            if key.startswith("anomalyd_series_bytes{"):
                bsum += float(val)
                bn += 1
            elif 'series="' not in key:
                out[key] = float(val)
        return out, bsum, bn

    def cpu(self):
        """(process CPU s, loop thread CPU s, RSS bytes)."""
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        proc_cpu = (int(fields[11]) + int(fields[12])) / tick
        try:
            with open("/proc/%d/task/%d/schedstat" % (self.pid, self.pid)) as f:
                loop_cpu = int(f.read().split()[0]) * 1e-9
        except OSError:
            with open("/proc/%d/task/%d/stat" % (self.pid, self.pid)) as f:
                fl = f.read().rsplit(")", 1)[1].split()
            loop_cpu = (int(fl[11]) + int(fl[12])) / tick
        rss = 0
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        return proc_cpu, loop_cpu, rss

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def loadgen(d, nseries, args, extra):
    cmd = [LOADGEN, "--port", str(d.graphite), "--series", str(nseries),
           "--conns", str(args.conns)] + [str(x) for x in extra]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, check=True)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    res["cpu"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return res


def samples(st):
    return st["samples"]["graphite"]


def lat_quantile(m0, m1, q):
    """q-quantile of the latency histogram's deltas, in seconds (inf past the last bound)."""
    rx = re.compile(r'anomalyd_ingest_latency_seconds_bucket\{le="([^"]+)"\}')
    b = []
    for k, v in m1.items():
        mm = rx.fullmatch(k)
        if mm:
            b.append((float(mm.group(1)), v - m0.get(k, 0.0)))
    b.sort()
    total = b[-1][1] if b else 0
    if total <= 0:
        return float("nan")
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in b:
        if c >= rank:
            if le == float("inf"):
                return float("inf")
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1)
        prev_le, prev_c = le, c
    return float("inf")


def events_since(path, ts_min):
    ev = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("ts", 0) >= ts_min:
                    ev.append(e)
    except OSError:
        pass
    return ev


def warm_up(d, n, args):
    t0 = time.time()
    r = loadgen(d, n, args, ["--rounds", TRAIN_AFTER + 2, "--round0", 0])
    rounds = r["round_end"]
    deadline = time.time() + 120 + n * 0.02
    last_log = 0
    while True:
        st = d.status()
        tr = st["training"]
        if samples(st) >= n * rounds and tr["installed"] >= n and tr["queued"] == 0 \
                and tr["running"] == 0:
            break
        if time.time() > deadline:
            raise RuntimeError("warm-up did not finish: %s" % st)
        if samples(st) >= n * rounds and tr["queued"] == 0 and tr["running"] == 0:
            # untrained series left out of a full queue ask again with their next sample
            rounds = loadgen(d, n, args, ["--rounds", 1, "--round0", rounds])["round_end"]
        if time.time() - last_log > 10:
            log("  warm-up: %d s, %d rounds, trainings installed %d of %d, queued %d"
                % (time.time() - t0, rounds, tr["installed"], n, tr["queued"]))
            last_log = time.time()
        time.sleep(0.2)
    _, bsum, bn = d.metrics()
    tr = d.status()["training"]
    return rounds, time.time() - t0, tr


def measure(d, n, args, round0, phase):
    inj_file = os.path.join(d.tmp, "injected-%d.jsonl" % phase)
    st0 = d.status()
    m0, _, _ = d.metrics()
    c0 = d.cpu()
    ts_min = 1700000000.0 + round0
    t0 = time.time()
    extra = ["--round0", round0, "--seconds", args.seconds]
    if args.rate > 0:
        extra += ["--rate", args.rate, "--chunk", args.chunk]
    if args.inject > 0:
        extra += ["--inject", args.inject, "--inject-offset", 1 + phase * 7, "--inject-at-from", 0.2 * args.seconds,
                  "--inject-at-to", 0.8 * args.seconds, "--inject-file", inj_file]
    g = loadgen(d, n, args, extra)
    want = samples(st0) + g["samples"]
    while True:
        st = d.status()
        if samples(st) >= want:
            break
        if time.time() - t0 > args.seconds + 300:
            raise RuntimeError("the daemon did not take every sample: %d of %d"
                               % (samples(st) - samples(st0), g["samples"]))
        time.sleep(0.01)
    t1 = time.time()
    c1 = d.cpu()
    m1, bsum, bn = d.metrics()
    st1 = d.status()
    wall = t1 - t0
    got = samples(st1) - samples(st0)
    time.sleep(0.5)  # the events file is written as events come; let the sink flush
    inj = []
    if os.path.exists(inj_file):
        with open(inj_file) as f:
            inj = [json.loads(l) for l in f if l.strip()]
    ev = events_since(d.events, ts_min)
    flagged = {(e["series"], round(e["ts"], 3)) for e in ev}
    found = sum(1 for i in inj if (i["series"], round(i["ts"], 3)) in flagged)
    injected = {(i["series"], round(i["ts"], 3)) for i in inj}
    other = sum(1 for e in ev if (e["series"], round(e["ts"], 3)) not in injected)
    tr0, tr1 = st0["training"], st1["training"]
    key = 'anomalyd_training_jobs_total{result="installed"}'
    res = {
        "series": n, "phase": phase, "wall_s": wall, "samples": got,
        "sps": got / wall,
        "p50_us": 1e6 * lat_quantile(m0, m1, 0.50),
        "p99_us": 1e6 * lat_quantile(m0, m1, 0.99),
        "p999_us": 1e6 * lat_quantile(m0, m1, 0.999),
        "cpu_cores": (c1[0] - c0[0]) / wall,
        "loop_cpu_cores": (c1[1] - c0[1]) / wall,
        "loop_ns_per_sample": 1e9 * (c1[1] - c0[1]) / got if got else float("nan"),
        "cpu_sps": got / (c1[1] - c0[1]) if c1[1] > c0[1] else float("nan"),
        "train_cpu_s": tr1["cpu_seconds"] - tr0["cpu_seconds"],
        "trainings": m1.get(key, 0) - m0.get(key, 0),
        "train_queue_end": tr1["queued"],
        "train_dropped": m1.get("anomalyd_training_dropped_total", 0)
        - m0.get("anomalyd_training_dropped_total", 0),
        "gen_cpu_cores": g["cpu"] / wall,
        "gen_sps": g["rate"],
        "rss": c1[2], "rss_per_series": c1[2] / n,
        "series_bytes": bsum / bn if bn else float("nan"),
        "injected": len(inj), "reported": found, "other_alerts": other,
        "round_end": g["round_end"],
    }
    sc = ['anomalyd_scored_samples_total{thread="%s"}' % t for t in ("loop", "helper")]
    dsc = [m1.get(k, 0) - m0.get(k, 0) for k in sc]
    res["helper_share"] = dsc[1] / sum(dsc) if sum(dsc) else float("nan")
    return res


def fmt_rate(x):
    return "%.2fM" % (x / 1e6) if x >= 1e6 else "%.0fk" % (x / 1e3)


def memory_only(d, n, args, rss0):
    """--memory-only: the warm-up's rounds sent (every series created and holding a full
    history), without waiting for the trainings (which allocate nothing that stays: a
    job's memory is freed when it is installed); RSS and series bytes then."""
    t0 = time.time()
    rounds = loadgen(d, n, args, ["--rounds", TRAIN_AFTER + 2 + 256, "--round0", 0])["round_end"]
    while samples(d.status()) < n * rounds:
        time.sleep(0.2)
    _, bsum, bn = d.metrics()
    rss = d.cpu()[2]
    tr = d.status()["training"]
    print("memory N=%d rounds=%d rss_mib=%.1f rss_per_series=%.0f series_bytes=%.0f "
          "rss_base_mib=%.1f trainings_installed=%d wall_s=%.0f"
          % (n, rounds, rss / 2**20, (rss - rss0) / n, bsum / max(1, bn), rss0 / 2**20,
             tr["installed"], time.time() - t0), flush=True)
    return [{"rss": rss, "series_bytes": bsum / max(1, bn)}]


def run_one(n, args):
    tmp = tempfile.mkdtemp(prefix="anomalyd-bench-")
    d = Daemon(tmp, n)
    try:
        rss0 = d.cpu()[2]
        log("N=%d: %s (%s)" % (n, d.started_line.split("info: ", 1)[-1], tmp))
        if args.memory_only:
            return memory_only(d, n, args, rss0)
        rounds, wsec, tr = warm_up(d, n, args)
        print("# N=%d warm-up: %d rounds, %.0f s, %d trainings installed, training CPU %.1f s "
              "(%.1f ms per training)" % (n, rounds, wsec, tr["installed"], tr["cpu_seconds"],
                                          1e3 * tr["cpu_seconds"] / max(1, tr["installed"])),
              flush=True)
        adv = args.advance if args.advance >= 0 else (
            TRAIN_AFTER + 2000 - 60 if n <= 10000 and not args.quick else 0)
        if adv > rounds:
            t0 = time.time()
            rounds = loadgen(d, n, args, ["--rounds", adv - rounds, "--round0", rounds])["round_end"]
            print("# N=%d advanced to round %d in %.0f s so the measured phases see the "
                  "retraining due at round %d (train_every 2000)"
                  % (n, rounds, time.time() - t0, TRAIN_AFTER + 2000), flush=True)
        out = []
        for ph in range(args.repeat):
            r = measure(d, n, args, rounds, ph)
            r["rss_base"] = rss0
            rounds = r["round_end"]
            out.append(r)
            print("ad N=%d phase=%d sps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
                  "cpu_cores=%.2f loop_cpu_cores=%.2f loop_ns_per_sample=%.0f cpu_sps=%.0f "
                  "helper_share=%.2f trainings=%d train_cpu_s=%.1f train_queue_end=%d gen_cpu_cores=%.2f "
                  "rss_mib=%.1f rss_per_series=%.0f series_bytes=%.0f "
                  "injected=%d reported=%d other_alerts=%d wall_s=%.1f"
                  % (n, ph, r["sps"], r["p50_us"], r["p99_us"], r["p999_us"], r["cpu_cores"],
                     r["loop_cpu_cores"], r["loop_ns_per_sample"], r["cpu_sps"],
                     r["helper_share"], r["trainings"], r["train_cpu_s"], r["train_queue_end"],
                     r["gen_cpu_cores"], r["rss"] / 2**20, r["rss_per_series"],
                     r["series_bytes"], r["injected"], r["reported"], r["other_alerts"],
                     r["wall_s"]), flush=True)
    finally:
        d.stop()
    if not args.keep:
        subprocess.run(["rm", "-rf", tmp])
    return out


def torch_peer(n, args):
    m = min(n, args.torch_max)
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "bench_torch.py"),
                        "--peer", str(m), "--peer-seconds", str(args.torch_seconds)],
                       stdout=subprocess.PIPE, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    line = [l for l in p.stdout.decode().splitlines() if l.startswith("torch-peer")][0]
    print(line, flush=True)
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


def med(rs, k):
    return statistics.median(r[k] for r in rs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", default="1000,10000,100000")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--inject", type=int, default=10)
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0,
                    help="total samples/s the generator paces itself to (0: as fast as taken)")
    ap.add_argument("--chunk", type=int, default=16384,
                    help="bytes per generator write() when paced (--rate)")
    ap.add_argument("--advance", type=int, default=-1,
                    help="send rounds up to this one before measuring (default: just before "
                         "the retraining due at train_after + 2000 for N <= 10k, none for "
                         "larger N or --quick)")
    ap.add_argument("--torch-max", type=int, default=100000)
    ap.add_argument("--torch-seconds", type=float, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--weights", choices=("float32", "float16", "int8"), default=None,
                    help="the daemon's weights: how own networks keep their weights "
                         "(float32 by default)")
    ap.add_argument("--fp16", action="store_true",
                    help="the old spelling of --weights float16")
    ap.add_argument("--score-threads", type=int, default=0,
                    help="the daemon's score_threads: 1, 2, or 0 (its default: 2 here)")
    ap.add_argument("--recent", type=int, default=256,
                    help="the daemon's recent: points per series kept for the API (256)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--memory-only", action="store_true",
                    help="per N: send TRAIN_AFTER + 258 rounds (histories full), print RSS, "
                         "RSS per series and the mean series_bytes, skip the warm-up's wait "
                         "for every training and the measured phases")
    ap.add_argument("--quick", action="store_true",
                    help="1k and 10k series, 2 phases of 5 s, a shorter peer")
    args = ap.parse_args()
    global WEIGHTS, SCORE_THREADS, RECENT
    if args.fp16 and args.weights not in (None, "float16"):
        ap.error("--fp16 is --weights float16, not --weights %s" % args.weights)
    WEIGHTS = "float16" if args.fp16 else args.weights or "float32"
    SCORE_THREADS = args.score_threads
    RECENT = args.recent
    if args.quick:
        if args.series == ap.get_default("series"):
            args.series = "1000,10000"
        args.seconds, args.repeat, args.torch_seconds = 5, 2, 1
    ns = [int(float(x.replace("k", "e3"))) for x in args.series.split(",")]
    print("# anomalyd end-to-end: Graphite over loopback TCP (%d connection%s, %s), %s"
          % (args.conns, "" if args.conns == 1 else "s",
             "paced to %g samples/s in %d-byte writes" % (args.rate, args.chunk) if args.rate
             else "as fast as the daemon takes them", STATED + "; weights: " + WEIGHTS +
             "; score_threads: %s" % (SCORE_THREADS or "0 (default: 2 here)") +
             ("; recent: %d" % RECENT if RECENT != 256 else "")), flush=True)
    rows = []
    for n in ns:
        rs = run_one(n, args)
        if args.memory_only:
            continue
        tp = None if args.no_torch else torch_peer(n, args)
        if tp:
            print("ratio N=%d sps_speedup=%.1fx cpu_sps_speedup=%.1fx bytes_ratio=%.2f "
                  "(torch bytes per stream / anomalyd series_bytes; torch at %d streams)"
                  % (n, med(rs, "sps") / tp["sps"], med(rs, "cpu_sps") / tp["sps"],
                     tp["bytes_per_stream"] / med(rs, "series_bytes"), tp["streams"]),
                  flush=True)
        rows.append((n, rs, tp))
    if args.memory_only:
        return
    print("\n# medians of %d phases of %g s each" % (args.repeat, args.seconds))
    print("| series | samples/s | loop CPU ns/sample (cpu_sps) | p50 | p99 | daemon CPU cores | "
          "trainings / training CPU s | RSS | RSS/series | series_bytes | anomalies reported | "
          "other alerts | PyTorch peer samples/s | speedup | PyTorch bytes/stream |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, rs, tp in rows:
        print("| %d | %s | %.0f (%s) | %.0f us | %.0f us | %.2f | %.0f / %.1f | %.0f MiB | %.1f KiB | "
              "%.1f KiB | %d/%d | %d | %s | %s | %s |"
              % (n, fmt_rate(med(rs, "sps")), med(rs, "loop_ns_per_sample"),
                 fmt_rate(med(rs, "cpu_sps")), med(rs, "p50_us"), med(rs, "p99_us"),
                 med(rs, "cpu_cores"), med(rs, "trainings"), med(rs, "train_cpu_s"),
                 rs[-1]["rss"] / 2**20, rs[-1]["rss_per_series"] / 1024,
                 rs[-1]["series_bytes"] / 1024, sum(r["reported"] for r in rs),
                 sum(r["injected"] for r in rs), sum(r["other_alerts"] for r in rs),
                 fmt_rate(tp["sps"]) if tp else "-",
                 "%.0fx" % (med(rs, "sps") / tp["sps"]) if tp else "-",
                 "%.1f KiB" % (tp["bytes_per_stream"] / 1024) if tp else "-"))
    missed = sum(r["injected"] - r["reported"] for _, rs, _ in rows for r in rs)
    print("# injected anomalies not reported: %d" % missed)


if __name__ == "__main__":
    main()
