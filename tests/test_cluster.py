"""test_cluster.py - scale-out by series: three anomalyd instances on loopback behind
carbon-c-relay with consistent hashing (docs/SCALING.md).

What it shows, with the real binaries:
  - every series lands on exactly one instance, the one the relay's own test mode
    (carbon-c-relay -t) names; together they hold every series; the split is not
    degenerate;
  - an instance stopped (SIGTERM) and started again keeps its series' trained state
    through its store, the relay keeps its series for it meanwhile, and no series moves;
  - an instance killed with SIGKILL: what the relay does with its series' points while it
    is away (measured and printed; only what carbon-c-relay guarantees is asserted:
    nothing goes to another member);
  - anomalyctl status/series against the three addresses at once;
  - a fourth member added (relay reloaded with SIGHUP): only its share of the series
    moves, all of it to the new member, where those series start afresh.

The hash is fnv1a_ch with an explicit instance key per member (HOST:PORT=KEY) and no
`dynamic`: placement depends on the keys alone, so a member that restarts (even on
another port) keeps its series, and a member that is down has its points queued, not
sent elsewhere. The relay runs with -s (submission mode) so it adds no series of its own.

Skipped with a message when carbon-c-relay is not installed (scripts/setup installs it).
Python stdlib only.
"""
import collections
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from daemon_harness import Daemon, config_text, DETECTOR

RELAY = shutil.which("carbon-c-relay")
ANOMALYCTL = os.environ.get("ANOMALYCTL", "anomalyctl")
T0 = 1700000000
NSERIES = 300
NAMES = ("anomalyd-a", "anomalyd-b", "anomalyd-c")  # the relay's instance keys


def key(i):
    return "cluster.series.%03d" % i


def value(t, i):
    return 10 + 5 * math.sin(2 * math.pi * t / 50 + i)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


class Member:
    """One anomalyd of the cluster: its own directory, store, and ports kept across
    restarts (the relay's configuration names its Graphite port)."""

    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="anomalyd-cluster-%s-" % name)
        os.makedirs(os.path.join(self.tmp, "state"))
        self.graphite = 0
        self.http = 0
        self.d = None

    def config(self):
        cfg = config_text(self.tmp, defaults=DETECTOR,
                          extra="store:\n  path: %s/state/anomalyd.db\n"
                          "  checkpoint_interval: 1\n" % self.tmp)
        cfg = cfg.replace("{protocol: graphite, transport: tcp, address: 127.0.0.1, port: 0}",
                          "{protocol: graphite, transport: tcp, address: 127.0.0.1, port: %d}"
                          % self.graphite)
        return cfg.replace("http:\n  address: 127.0.0.1\n  port: 0",
                           "http:\n  address: 127.0.0.1\n  port: %d" % self.http)

    def start(self):
        self.d = Daemon(self.config(), tmp=self.tmp)
        self.d.start()
        self.graphite = self.d.port("graphite")
        self.http = self.d.port("http")

    def stop(self, sig=signal.SIGTERM):
        return self.d.stop(sig)

    def keys(self):
        status, body = self.d.json("/api/v1/series?match=*&limit=100000")
        assert status == 200, status
        assert body["total"] == len(body["series"]), body["total"]
        return {s["key"] for s in body["series"]}

    def status(self):
        status, body = self.d.json("/api/v1/status")
        assert status == 200, status
        return body

    def cleanup(self):
        if self.d:
            try:
                self.d.stop()
            except AssertionError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class Relay:
    """carbon-c-relay on a free loopback port in front of the members."""

    def __init__(self, members, tmp):
        self.members = members
        self.conf = os.path.join(tmp, "relay.conf")
        self.logpath = os.path.join(tmp, "relay.log")
        self.proc = None
        self.port = 0

    def config_text(self, port):
        lines = ["listen type linemode 127.0.0.1:%d proto tcp;" % port,
                 "cluster anomalyd fnv1a_ch replication 1"]
        lines += ["    127.0.0.1:%d=%s" % (m.graphite, m.name) for m in self.members]
        lines += ["    ;", "match * send to anomalyd stop;", ""]
        return "\n".join(lines)

    def start(self):
        for _ in range(5):  # the free port may be taken between the probe and the bind
            self.port = free_port()
            with open(self.conf, "w") as f:
                f.write(self.config_text(self.port))
            self.log = open(self.logpath, "ab")
            # -s: no statistics series of its own; -w 1: one worker; -q: its queue per
            # member (the default, written out because the test measures it).
            self.proc = subprocess.Popen([RELAY, "-f", self.conf, "-s", "-w", "1",
                                          "-q", "25000"], stdout=self.log,
                                         stderr=subprocess.STDOUT)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("carbon-c-relay did not start:\n" + self.text())

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def predict(self, keys):
        """{key: member name} as the relay's test mode (-t) routes them."""
        by_port = {"127.0.0.1:%d" % m.graphite: m.name for m in self.members}
        out = subprocess.run([RELAY, "-t", "-f", self.conf], capture_output=True, text=True,
                             input="".join("%s 1 %d\n" % (k, T0) for k in keys),
                             timeout=60).stdout
        routes = re.findall(r"-> (\S+)\n\s+fnv1a_ch\(anomalyd\)\n\s+(\S+)", out)
        return {k: by_port[a] for k, a in routes}


@unittest.skipIf(RELAY is None, "carbon-c-relay is not installed (scripts/setup installs "
                 "the Debian package); the cluster test needs it")
class Cluster(unittest.TestCase):
    """One cluster for the whole class; the tests run in order (names test_1..)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="anomalyd-cluster-")
        cls.members = [Member(n) for n in NAMES]
        cls.relay = None
        try:
            for m in cls.members:
                m.start()
            cls.relay = Relay(cls.members, cls.tmp)
            cls.relay.start()
        except Exception:
            cls.tearDownClass()
            raise
        cls.sock = None
        cls.t = 0  # the next timestamp offset every series gets
        cls.where = {}  # key -> member name, found in step 1
        cls.sent = collections.Counter()  # key -> points sent through the relay

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "sock", None):
            cls.sock.close()
        if cls.relay:
            cls.relay.stop()
        for m in cls.members:
            m.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # --- helpers ---

    @classmethod
    def send(cls, lines):
        """Sends through the relay on one long-lived connection, as a collector would."""
        if cls.sock is None:
            cls.sock = socket.create_connection(("127.0.0.1", cls.relay.port))
        cls.sock.sendall("".join(lines).encode())

    @classmethod
    def tick(cls, keys, n=1):
        """n more points for each of keys (one timestamp step each)."""
        idx = {key(i): i for i in range(NSERIES)}
        lines = ["%s %.6f %d\n" % (k, value(cls.t + s, idx[k]), T0 + cls.t + s)
                 for s in range(n) for k in keys]
        cls.t += n
        for k in keys:
            cls.sent[k] += n
        cls.send(lines)

    def member(self, name):
        return next(m for m in self.members if m.name == name)

    def placement(self):
        """{member name: set of keys} from each instance's API."""
        return {m.name: m.keys() for m in self.members}

    def assert_placement_unchanged(self):
        got = self.placement()
        for name, keys in got.items():
            want = {k for k, n in self.where.items() if n == name}
            self.assertEqual(keys - want, set(), "series moved onto %s" % name)
            self.assertEqual(want - keys, set(), "series missing from %s" % name)

    def samples(self, m):
        """{key: samples} of the cluster's series on member m."""
        _, body = m.d.json("/api/v1/series?match=cluster.*&limit=100000")
        return {s["key"]: s["samples"] for s in body["series"]}

    def wait_all_sent(self, members, timeout=60):
        """Waits until each of members holds every point sent for its series."""
        for m in members:
            mine = [k for k, n in self.where.items() if n == m.name]
            wait_for(lambda: all(self.samples(m).get(k, 0) >= self.sent[k] for k in mine),
                     timeout, "%s to receive every point sent" % m.name)

    def forget_lost(self, m):
        """Counts what member m has as what was sent for its series (after a loss that was
        measured and reported), so that later waits do not wait for it."""
        have = self.samples(m)
        for k, n in self.where.items():
            if n == m.name:
                self.assertLessEqual(have[k], self.sent[k], k)
                self.sent[k] = have[k]

    def wait_quiet(self, m, quiet=3, timeout=60):
        """Waits until member m has received nothing for `quiet` seconds; its Graphite
        sample count since it started."""
        last, since = -1, time.time()
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = m.status()["samples"]["graphite"]
            if got != last:
                last, since = got, time.time()
            elif time.time() - since > quiet:
                return got
            time.sleep(0.2)
        raise AssertionError("%s kept receiving for %d s" % (m.name, timeout))

    # --- the steps, in order ---

    def test_1_every_series_on_exactly_one_instance(self):
        keys = [key(i) for i in range(NSERIES)]
        self.tick(keys)
        wait_for(lambda: sum(len(m.keys()) for m in self.members) >= NSERIES, 60,
                 "all %d series to arrive" % NSERIES)
        time.sleep(0.5)  # nothing more should come
        got = self.placement()
        union = set().union(*got.values())
        self.assertEqual(union, set(keys))
        self.assertEqual(sum(len(v) for v in got.values()), NSERIES, "a series on two instances")
        split = {n: len(v) for n, v in got.items()}
        print("\nplacement of %d series: %s" % (NSERIES, split))
        for n, c in split.items():  # 98/101/101 with these keys; degenerate: 0 or 300
            self.assertGreaterEqual(c, NSERIES // 6, "degenerate split %s" % split)
        # exactly where the relay says it routes them
        predicted = self.relay.predict(keys)
        self.assertEqual(len(predicted), NSERIES)
        for n, v in got.items():
            self.assertEqual(v, {k for k, p in predicted.items() if p == n}, n)
        type(self).where = {k: n for n, v in got.items() for k in v}

    def trained_keys(self):
        """Eight series of each member, in key order."""
        out = []
        for m in self.members:
            out += sorted(k for k, n in self.where.items() if n == m.name)[:8]
        return out

    def test_2_restart_keeps_trained_state_and_placement(self):
        train = self.trained_keys()
        # 400 points each (DETECTOR trains after 300)
        for _ in range(8):
            self.tick(train, 50)
        self.wait_all_sent(self.members)
        for m in self.members:
            for k in train:
                if self.where[k] == m.name:
                    m.d.wait(lambda: (m.d.series(k) or {}).get("trainings", 0) >= 1,
                             timeout=180, what="%s trained on %s" % (k, m.name))
        self.assert_placement_unchanged()
        b = self.member("anomalyd-b")
        mine = sorted(k for k, n in self.where.items() if n == "anomalyd-b")
        b_train = [k for k in train if self.where[k] == "anomalyd-b"]
        before = {k: b.d.series(k) for k in b_train}
        port = b.graphite
        self.assertEqual(b.stop(), 0)  # SIGTERM: the final checkpoint writes every series
        # keep sending while it is away: its points wait in the relay's queue
        self.tick(list(self.where), 1)
        time.sleep(1)
        self.tick(list(self.where), 1)
        time.sleep(1)
        b.start()
        self.assertEqual(b.graphite, port)
        self.assertEqual(b.d.metric("anomalyd_store_restored_series"), len(mine))
        for k in b_train:
            s = b.d.series(k)
            self.assertIsNotNone(s, k)
            self.assertGreaterEqual(s["trainings"], before[k]["trainings"])
            self.assertGreaterEqual(s["trainings"], 1, k)
            self.assertFalse(s["warming_up"], "%s must come back trained" % k)
        received = self.wait_quiet(b)
        self.tick(list(self.where), 1)
        self.wait_all_sent([m for m in self.members if m is not b])
        wait_for(lambda: all(self.samples(b)[k] >= before[k]["samples"] + 1 for k in b_train),
                 60, "points after the restart")
        print("\nSIGTERM restart of anomalyd-b (%d series): %d of the %d points sent while "
              "it was down delivered after it came back" % (len(mine), received, 2 * len(mine)))
        self.wait_quiet(b)
        self.forget_lost(b)
        for k in b_train:  # the next points are scored by the restored network
            s = b.d.series(k)
            self.assertLessEqual(s["samples"], self.sent[k])
            self.assertFalse(s["recent"][-1]["warming_up"], k)
        self.assert_placement_unchanged()

    def test_3_sigkill_what_the_relay_does(self):
        c = self.member("anomalyd-c")
        mine = sorted(k for k, n in self.where.items() if n == "anomalyd-c")
        others = [m for m in self.members if m is not c]
        trained = [k for k in self.trained_keys() if self.where[k] == "anomalyd-c"]
        # quiesce: every point so far has arrived and is checkpointed (interval 1 s)
        self.wait_all_sent([c])
        time.sleep(2.5)
        stored = self.samples(c)
        c.stop(signal.SIGKILL)
        t_kill = time.time()
        # points while it is dead: one burst right away (the relay does not know yet),
        # two more after it had time to notice
        bursts = []
        for delay in (0.0, 2.0, 2.0):
            time.sleep(delay)
            self.tick(list(self.where), 1)
            bursts.append(round(time.time() - t_kill, 1))
        sent_while_down = 3 * len(mine)
        time.sleep(2)
        log_down = self.relay.text()
        c.start()
        received = self.wait_quiet(c)  # the relay reconnects by itself
        after = self.samples(c)
        print("\nSIGKILL of anomalyd-c (%d series): %d points sent while it was dead "
              "(bursts at %s s after the kill), %d delivered after its restart, %d lost"
              % (len(mine), sent_while_down, bursts, received, sent_while_down - received))
        for l in log_down.splitlines():
            if re.search(r"127\.0\.0\.1:\d+:|\(\)", l):
                print("  relay: " + l.strip())
        # What carbon-c-relay guarantees for a non-dynamic hash cluster: a member's
        # points never go to another member (they are queued for it, or dropped).
        self.assert_placement_unchanged()
        self.wait_all_sent(others)
        # It reconnects and delivers what it queued: the restored series go on from the
        # store's counts.
        self.assertGreater(received, 0, "the relay delivered nothing after the restart")
        self.assertLessEqual(received, sent_while_down)
        for k in mine:
            self.assertGreaterEqual(after[k], stored[k], k)
            self.assertLessEqual(after[k], stored[k] + 3, k)
        self.forget_lost(c)
        # the trained series came back trained from the checkpoint taken before the kill
        for k in trained:
            s = c.d.series(k)
            self.assertGreaterEqual(s["trainings"], 1, k)
            self.assertFalse(s["warming_up"], k)

    def test_4_anomalyctl_on_the_cluster(self):
        addrs = ",".join("127.0.0.1:%d" % m.http for m in self.members)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALYD_")}
        r = subprocess.run([ANOMALYCTL, "series", "--match", "cluster.*", "--limit", "100000",
                            "--http", addrs], capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = r.stdout.splitlines()
        self.assertEqual(rows[0].split()[:2], ["INSTANCE", "KEY"])
        by_http = {"127.0.0.1:%d" % m.http: m.name for m in self.members}
        seen = {}
        for l in rows[1:]:
            f = l.split()
            if len(f) > 2 and f[1].startswith("cluster."):
                seen[f[1]] = by_http[f[0]]
        self.assertEqual(seen, self.where)
        r = subprocess.run([ANOMALYCTL, "status", "--http", addrs], capture_output=True,
                           text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split()[:4], ["INSTANCE", "VERSION", "UPTIME", "SERIES"])
        per = {l.split()[0]: l for l in lines[1:4]}
        self.assertEqual(set(per), set(by_http))
        total = lines[4].split()
        self.assertEqual(total[:2], ["total", "3/3"])
        self.assertEqual(int(total[2]), NSERIES)
        k = self.trained_keys()[-1]
        r = subprocess.run([ANOMALYCTL, "series", "show", k, "--http", addrs],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("127.0.0.1:%d" % self.member(self.where[k]).http, r.stdout)


    def test_5_adding_a_member_moves_only_its_share(self):
        keys = [key(i) for i in range(NSERIES)]
        before = {m.name: self.samples(m) for m in self.members}
        d = Member("anomalyd-d")
        d.start()
        type(self).members = self.members + [d]
        self.relay.members = self.members
        with open(self.relay.conf, "w") as f:
            f.write(self.relay.config_text(self.relay.port))
        self.relay.proc.send_signal(signal.SIGHUP)  # carbon-c-relay reloads its config
        wait_for(lambda: "SIGHUP handler complete" in self.relay.text(), 20, "the reload")
        predicted = self.relay.predict(keys)
        moved = {k for k in keys if predicted[k] != self.where[k]}
        print("\nadding a fourth member moved %d of %d series" % (len(moved), NSERIES))
        # consistent hashing: only the new member's share moves, none between old members
        self.assertEqual({predicted[k] for k in moved}, {"anomalyd-d"})
        self.assertGreater(len(moved), NSERIES // 10)
        self.assertLess(len(moved), NSERIES // 2)
        self.tick(keys, 1)
        wait_for(lambda: d.keys() == moved, 60, "the moved series on anomalyd-d")
        for k in moved:  # they start afresh there
            wait_for(lambda: d.d.series(k)["samples"] == 1, 30, k)
            self.assertTrue(d.d.series(k)["warming_up"], k)
        # the others got their point where they were; the moved ones' old copies are no
        # longer fed (series_ttl evicts them)
        for m in self.members[:3]:
            mine = {k for k, n in self.where.items() if n == m.name}
            self.assertEqual(m.keys(), mine)
            wait_for(lambda: all(self.samples(m)[k] == before[m.name][k] + 1
                                 for k in mine - moved), 60, "%s fed" % m.name)
            now = self.samples(m)
            for k in mine & moved:
                self.assertEqual(now[k], before[m.name][k], k)
            self.assertEqual(m.d.metric("anomalyd_values_refused_total",
                                        reason="time_backwards"), 0, m.name)
        # anomalyctl finds the live copy and names the stale one
        k = sorted(moved)[0]
        addrs = ",".join("127.0.0.1:%d" % m.http for m in self.members)
        r = subprocess.run([ANOMALYCTL, "series", "show", k, "--http", addrs],
                           capture_output=True, text=True, timeout=60,
                           env={e: v for e, v in os.environ.items()
                                if not e.startswith("ANOMALYD_")})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("instance    127.0.0.1:%d\n" % d.http, r.stdout)
        self.assertIn("%s is also on 127.0.0.1:%d" % (k, self.member(self.where[k]).http),
                      r.stderr)


if __name__ == "__main__":
    unittest.main()
