"""test_service.py - the daemon as a service that forgets nothing: restore after a stop,
crash safety under SIGKILL, damaged rows, a full disk, reload on SIGHUP.

The real anomalyd on loopback (daemon_harness.py), its real SQLite file inspected with
Python's sqlite3 module. Python stdlib only.
"""
import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from daemon_harness import Daemon, config_text, DETECTOR

PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")

T0 = 1700000000


def sine(t, phase=0.0):
    return 10 + 5 * math.sin(2 * math.pi * t / 50 + phase)


def store_config(tmp, interval=1, extra_top="", defaults=DETECTOR):
    return config_text(tmp, top=extra_top, defaults=defaults,
                       extra="store:\n  path: %s/state/anomalyd.db\n  checkpoint_interval: %s\n"
                       % (tmp, interval))


def db_rows(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return {k: (fp, n) for k, fp, n in
                con.execute("SELECT key, fingerprint, length(blob) FROM series")}
    finally:
        con.close()


def integrity(path):
    con = sqlite3.connect(path, timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


class Tmp(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="anomalyd-svc-")
        os.makedirs(os.path.join(self.tmp, "state"))
        self.db = os.path.join(self.tmp, "state", "anomalyd.db")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def train(self, d, keys, n=400):
        lines = "".join("%s %.6f %d\n" % (k, sine(t, i), T0 + t)
                        for t in range(n) for i, k in enumerate(keys))
        d.send_tcp("graphite", lines)
        for k in keys:
            d.wait(lambda: (d.series(k) or {}).get("trainings", 0) >= 1, timeout=120,
                   what="%s trained" % k)


class Restore(Tmp):

    def test_stop_and_restart_resumes_trained(self):
        cfg = store_config(self.tmp, interval=60)
        with Daemon(cfg, tmp=self.tmp) as d:
            self.train(d, ["svc.a", "svc.b"])
            before = d.series("svc.a")
            self.assertEqual(d.stop(), 0)  # the final checkpoint writes them
        self.assertEqual(integrity(self.db), "ok")
        self.assertEqual(set(db_rows(self.db)), {"svc.a", "svc.b"})
        with Daemon(cfg, tmp=self.tmp) as d:
            after = d.series("svc.a")
            self.assertIsNotNone(after)
            self.assertFalse(after["warming_up"], "restored series must not warm up again")
            self.assertEqual(after["trainings"], before["trainings"])
            self.assertEqual(after["samples"], before["samples"])
            self.assertEqual(d.metric("anomalyd_store_restored_series"), 2)
            # It goes on from where it was: the next value is scored by the network.
            d.send_tcp("graphite", "svc.a %.6f %d\n" % (sine(400), T0 + 400))
            d.wait(lambda: d.series("svc.a")["samples"] == before["samples"] + 1, what="next")
            self.assertFalse(d.series("svc.a")["recent"][-1]["warming_up"])

    def test_checkpoint_in_small_batches(self):
        """store.batch_bytes bounds what one batch copies on the loop: a pass over many
        changed series goes out as a chain of batches and saves them all (here the one at
        stop: one series per batch)."""
        cfg = config_text(self.tmp, extra="store:\n  path: %s/state/anomalyd.db\n"
                          "  checkpoint_interval: 3600\n  batch_bytes: 1024\n" % self.tmp)
        keys = ["batch.%d" % i for i in range(6)]
        with Daemon(cfg, tmp=self.tmp) as d:
            self.train(d, keys)
            self.assertEqual(d.stop(), 0)
        self.assertEqual(set(db_rows(self.db)), set(keys))
        with Daemon(cfg, tmp=self.tmp) as d:
            self.assertEqual(d.metric("anomalyd_store_restored_series"), 6)
            for k in keys:
                self.assertFalse(d.series(k)["warming_up"], k)

    def test_damaged_row_is_skipped_and_retrains(self):
        cfg = store_config(self.tmp, interval=60)
        with Daemon(cfg, tmp=self.tmp) as d:
            self.train(d, ["dmg.a", "dmg.b"])
        con = sqlite3.connect(self.db)
        blob = bytearray(con.execute("SELECT blob FROM series WHERE key='dmg.a'").fetchone()[0])
        blob[len(blob) // 2] ^= 0x55
        con.execute("UPDATE series SET blob=? WHERE key='dmg.a'", (bytes(blob),))
        con.commit()
        con.close()
        with Daemon(cfg, tmp=self.tmp) as d:
            self.assertIsNone(d.series("dmg.a"))
            self.assertIsNotNone(d.series("dmg.b"))
            self.assertEqual(d.metric("anomalyd_store_restore_skipped", reason="damaged"), 1)
            d.wait_log(r"dmg\.a: its saved state is refused \(.*\)")

    def test_key_not_utf8_is_dropped_from_the_store(self):
        """A store written before keys had to be UTF-8 loads cleanly: the row is skipped,
        counted, logged (escaped) and deleted; /metrics stays valid."""
        cfg = store_config(self.tmp, interval=60)
        with Daemon(cfg, tmp=self.tmp) as d:
            self.train(d, ["u8.good"])
        con = sqlite3.connect(self.db)
        con.execute("INSERT INTO series SELECT CAST(X'75382e6261641b5bff' AS TEXT), blob, "
                    "fingerprint, protocol, created, last_seen, anomalies, saved FROM series "
                    "WHERE key='u8.good'")  # 'u8.bad' ESC '[' 0xff
        con.commit()
        self.assertEqual(con.execute("SELECT count(*) FROM series").fetchone()[0], 2)
        con.close()
        with Daemon(cfg, tmp=self.tmp) as d:
            self.assertEqual(d.metric("anomalyd_store_restore_skipped", reason="invalid_key"), 1)
            self.assertEqual(d.metric("anomalyd_store_restored_series"), 1)
            d.wait_log(r"series u8\.bad\\x1b\[\\xff: its key is not valid UTF-8")
            self.assertNotIn("\ufffd", d.log())
            self.assertNotIn("\x1b", d.log())
            status, _, body = d.http("/api/v1/series")
            self.assertEqual(status, 200)
            keys = [x["key"] for x in json.loads(body.decode("utf-8"))["series"]]
            self.assertEqual(keys, ["u8.good"])
            if PROMTOOL:
                p = subprocess.run([PROMTOOL, "check", "metrics"], input=d.metrics().encode(),
                                   capture_output=True)
                self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertEqual(set(db_rows(self.db)), {"u8.good"})

    def test_changed_settings_start_afresh(self):
        cfg = store_config(self.tmp, interval=60)
        with Daemon(cfg, tmp=self.tmp) as d:
            self.train(d, ["chg.a"])
        cfg2 = store_config(self.tmp, interval=60, defaults=DETECTOR.replace("hidden: 8", "hidden: 12"))
        with Daemon(cfg2, tmp=self.tmp) as d:
            self.assertIsNone(d.series("chg.a"))
            self.assertEqual(d.metric("anomalyd_store_restore_skipped", reason="settings_changed"), 1)

    def test_garbage_database_moved_aside(self):
        with open(self.db, "wb") as f:
            f.write(os.urandom(8192))
        with Daemon(store_config(self.tmp), tmp=self.tmp) as d:
            d.send_tcp("graphite", "g.a 1 %d\n" % T0)
            d.wait(lambda: d.series("g.a"), what="serving")
        self.assertTrue(any(n.startswith("anomalyd.db.bad-") for n in os.listdir(
            os.path.join(self.tmp, "state"))), os.listdir(os.path.join(self.tmp, "state")))
        self.assertEqual(integrity(self.db), "ok")


class CrashSafety(Tmp):
    """Steady load; SIGKILL at random moments, several times; each restart finds a sound
    store with every series checkpointed before the kill, trained ones still trained."""

    def test_sigkill_under_load(self):
        rnd = random.Random(int(os.environ.get("AD_TEST_SEED", "7")))
        cfg = store_config(self.tmp, interval=1)
        keys = ["crash.%d" % i for i in range(20)]
        t = 0
        for round_ in range(4):
            d = Daemon(cfg, tmp=self.tmp)
            d.start()
            if round_ > 0:
                self.assertEqual(d.metric("anomalyd_store_restore_skipped", reason="damaged"), 0)
                for k in saved:
                    s = d.series(k)
                    self.assertIsNotNone(s, "round %d: %s was saved, not restored" % (round_, k))
                    if k in trained_saved:
                        self.assertGreaterEqual(s["trainings"], 1, "%s lost its training" % k)
                        self.assertFalse(s["warming_up"])
            stop = threading.Event()
            sent = [t]

            def load():
                s = socket.create_connection(("127.0.0.1", d.port("graphite")))
                try:
                    while not stop.is_set():
                        tt = sent[0]
                        s.sendall("".join("%s %.6f %d\n" % (k, sine(tt, i), T0 + tt)
                                          for i, k in enumerate(keys)).encode())
                        sent[0] = tt + 1
                        time.sleep(0.002)
                except OSError:
                    pass
                finally:
                    s.close()
            th = threading.Thread(target=load)
            th.start()
            time.sleep(rnd.uniform(2.0, 5.0))
            # What the store holds now, and which series were trained long enough ago to
            # have been checkpointed trained (interval 1 s).
            trained_now = {k for k in keys if (d.series(k) or {}).get("trainings", 0) >= 1}
            time.sleep(2.5)
            saved = set(db_rows(self.db)) if os.path.exists(self.db) else set()
            trained_saved = trained_now & saved
            time.sleep(rnd.uniform(0, 0.5))
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            stop.set()
            th.join()
            d.stop()
            t = sent[0] + 1
            self.assertEqual(integrity(self.db), "ok", "round %d" % round_)
            con = sqlite3.connect(self.db)
            n, distinct = con.execute("SELECT count(*), count(DISTINCT key) FROM series").fetchone()
            con.close()
            self.assertEqual(n, distinct)
            self.assertTrue(set(db_rows(self.db)) >= saved)
        d = Daemon(cfg, tmp=self.tmp)
        d.start()
        try:
            for k in saved:
                self.assertIsNotNone(d.series(k))
            self.assertEqual(d.metric("anomalyd_store_restore_skipped", reason="damaged"), 0)
        finally:
            self.assertEqual(d.stop(), 0)


class FullDisk(Tmp):
    """The state directory on a tiny tmpfs: checkpoints fail (logged, counted) while
    detection goes on; once there is room, the next checkpoint succeeds."""

    def setUp(self):
        super().setUp()
        self.mnt = os.path.join(self.tmp, "state")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here (%s): needs root" % r.stderr.strip())

    def tearDown(self):
        subprocess.run(["umount", "-l", self.mnt])
        super().tearDown()

    def test_full_disk_is_counted_and_retried(self):
        big = DETECTOR.replace("hidden: 8", "hidden: 32").replace("history: 600", "history: 2000")
        cfg = store_config(self.tmp, interval=1, defaults=big)
        with Daemon(cfg, tmp=self.tmp) as d:
            lines = "".join("full.%d %.3f %d\n" % (i, sine(t, i), T0 + t)
                            for t in range(300) for i in range(40))
            d.send_tcp("graphite", lines)
            d.wait(lambda: (d.metric("anomalyd_store_checkpoints_total", result="failed") or 0) >= 1,
                   timeout=30, what="a failed checkpoint")
            d.wait_log(r"checkpoint of \d+ series failed: .*full")
            n = d.series("full.0")["samples"]
            d.send_tcp("graphite", "full.0 1 %d\n" % (T0 + 300))
            d.wait(lambda: d.series("full.0")["samples"] == n + 1, what="detection goes on")
            ok = d.metric("anomalyd_store_checkpoints_total", result="written") or 0
            subprocess.run(["mount", "-o", "remount,size=64m", self.mnt], check=True)
            d.wait(lambda: d.metric("anomalyd_store_checkpoints_total", result="written") > ok,
                   timeout=30, what="a checkpoint after room was made")
            self.assertEqual(d.stop(), 0)
        self.assertEqual(len(db_rows(self.db)), 40)


class SharedFamilies(Tmp):
    """A shared rule: one network for the family, trained on the members' pooled
    histories; members join without trainings of their own, hold far fewer bytes, and
    come back with the family after a restart."""

    def test_family_trains_once_members_join(self):
        rule = ("series:\n  - match: 'fam.*'\n    shared: true\n    history: 64\n"
                "    train_after: 64\n    train_every: 0\n    prime: 32\n")
        cfg = store_config(self.tmp, interval=60) + rule
        members = ["fam.%d" % i for i in range(8)]
        with Daemon(cfg, tmp=self.tmp) as d:
            lines = "".join("%s %.6f %d\n" % (k, sine(t, i), T0 + t)
                            for t in range(120) for i, k in enumerate(members))
            lines += "".join("own.a %.6f %d\n" % (sine(t), T0 + t) for t in range(400))
            d.send_tcp("graphite", lines)
            d.wait(lambda: all(not (d.series(k) or {"warming_up": True})["warming_up"]
                               for k in members), timeout=60, what="members joined")
            d.wait(lambda: (d.series("own.a") or {}).get("trainings", 0) >= 1, timeout=60,
                   what="own.a trained")
            self.assertEqual(d.metric("anomalyd_families"), 1)
            self.assertEqual(d.metric("anomalyd_family_members", family="fam.*"), 8)
            self.assertEqual(d.metric("anomalyd_family_trainings_total", family="fam.*"), 1)
            member_bytes = d.metric("anomalyd_series_bytes", series="fam.3")
            own_bytes = d.metric("anomalyd_series_bytes", series="own.a")
            net_bytes = d.metric("anomalyd_family_bytes", family="fam.*")
            self.assertGreater(net_bytes, 1000)
            # the member does not hold the network (and its history is shorter)
            self.assertLess(member_bytes, own_bytes - net_bytes, (member_bytes, own_bytes))
            # A late member joins after two windows of its own, without a training.
            d.send_tcp("graphite", "".join("fam.late %.6f %d\n" % (sine(t, 3.3), T0 + t)
                                           for t in range(40)))
            d.wait(lambda: not (d.series("fam.late") or {"warming_up": True})["warming_up"],
                   what="the late member joined")
            self.assertEqual(d.metric("anomalyd_family_trainings_total", family="fam.*"), 1)
            # A spike in one member is flagged by the shared network.
            d.send_tcp("graphite", "fam.2 %.6f %d\nfam.2 500 %d\n" % (sine(120, 2), T0 + 120,
                                                                        T0 + 121))
            d.wait(lambda: d.metric("anomalyd_series_anomalies_total", series="fam.2") == 1,
                   what="the spike flagged")
            # Members' steps that arrive in one read run as one batch (one matrix-matrix
            # product per layer): a round of every member in one write, with a spike in
            # fam.5 in the middle of it, raises exactly fam.5's event.
            b0 = d.metric("anomalyd_family_batched_steps_total", family="fam.*")
            m0 = d.metric("anomalyd_family_batched_members_total", family="fam.*")
            self.assertGreater(b0, 0)
            self.assertGreaterEqual(m0, b0)
            before = {k: d.metric("anomalyd_series_anomalies_total", series=k) or 0
                      for k in members}
            d.send_tcp("graphite", "".join(
                "%s %.6f %d\n" % (k, 500 if k == "fam.5" and t == 125 else sine(t, i), T0 + t)
                for t in range(122, 128) for i, k in enumerate(members) if k != "fam.2"))
            d.wait(lambda: d.series("fam.5")["samples"] == 126, what="the round parsed")
            d.wait(lambda: d.metric("anomalyd_series_anomalies_total", series="fam.5") ==
                   before["fam.5"] + 1, what="the spike in a batch flagged")
            for k in members:
                if k != "fam.5":
                    self.assertEqual(d.metric("anomalyd_series_anomalies_total", series=k) or 0,
                                     before[k], k)
            self.assertGreater(d.metric("anomalyd_family_batched_steps_total", family="fam.*"),
                               b0)
            self.assertGreaterEqual(
                d.metric("anomalyd_family_batched_members_total", family="fam.*"), m0 + 6 * 7)
            self.assertEqual(d.stop(), 0)
        rows = db_rows(self.db)
        self.assertIn("@family/fam.*", rows)
        with Daemon(cfg, tmp=self.tmp) as d:
            self.assertEqual(d.metric("anomalyd_store_restore_skipped", reason="damaged"), 0)
            for k in members + ["fam.late"]:
                s = d.series(k)
                self.assertIsNotNone(s, k)
                self.assertFalse(s["warming_up"], k)
            d.send_tcp("graphite", "fam.1 %.6f %d\n" % (sine(130, 1), T0 + 130))
            d.wait(lambda: d.series("fam.1")["samples"] == 127, what="goes on")
            self.assertFalse(d.series("fam.1")["recent"][-1]["warming_up"])


class Reload(Tmp):

    def test_sighup_reload(self):
        cfg = store_config(self.tmp, interval=60)
        d = Daemon(cfg, tmp=self.tmp)
        d.start()
        try:
            self.train(d, ["rl.a"])
            old_graphite = d.port("graphite")
            # A new JSON-lines Unix listener, the Graphite UDP one gone, a new rule for
            # another family; rl.a keeps its state.
            new = cfg.replace("  - {protocol: graphite, transport: udp, address: 127.0.0.1, port: 0}\n",
                              "  - {protocol: jsonl, transport: unix, path: %s/new.sock}\n" % self.tmp)
            new += "series:\n  - match: 'other.*'\n    hidden: 4\n"
            # The anomalous state's incident_z only says how long the state lasts: a series
            # keeps its state and takes the new value.
            self.assertEqual(d.series("rl.a")["model"]["incident_z"], 12)
            new = new.replace("defaults:\n", "defaults:\n  incident_z: 3\n")
            with open(d.config_path, "w") as f:
                f.write(new)
            d.proc.send_signal(signal.SIGHUP)
            d.wait(lambda: d.metric("anomalyd_reloads_total", result="applied") == 1,
                   what="reload applied")
            self.assertTrue(os.path.exists(os.path.join(self.tmp, "new.sock")))
            d.send_unix(os.path.join(self.tmp, "new.sock"), '{"series":"rl.u","value":1}\n')
            d.wait(lambda: d.series("rl.u"), what="the new listener serves")
            self.assertGreaterEqual(d.series("rl.a")["trainings"], 1, "state lost on reload")
            self.assertEqual(d.series("rl.a")["model"]["incident_z"], 3)
            s = socket.create_connection(("127.0.0.1", old_graphite))  # unchanged: same port
            s.close()
            # A bad file is refused and the running configuration stays.
            with open(d.config_path, "w") as f:
                f.write("max_series: -1\n")
            d.proc.send_signal(signal.SIGHUP)
            d.wait(lambda: d.metric("anomalyd_reloads_total", result="refused") == 1,
                   what="reload refused")
            d.wait_log(r"reload refused.*anomalyd.yaml:1:13")
            d.send_tcp("graphite", "rl.after 1 %d\n" % T0)
            d.wait(lambda: d.series("rl.after"), what="still serving")
        finally:
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
