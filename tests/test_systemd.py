"""test_systemd.py - the real anomalyd speaking systemd's protocols: notifications on a
real datagram socket given as NOTIFY_SOCKET (READY, STATUS, WATCHDOG, RELOADING,
STOPPING), and socket activation (listening sockets passed with LISTEN_FDS, LISTEN_PID and
LISTEN_FDNAMES). Python stdlib only.
"""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from daemon_harness import ANOMALYD, Daemon, config_text


class Notify(unittest.TestCase):

    def test_ready_status_watchdog_reload_stopping(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "notify.sock")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(path)
            sock.settimeout(10)
            os.environ["NOTIFY_SOCKET"] = path
            os.environ["WATCHDOG_USEC"] = "400000"
            try:
                d = Daemon(config_text(tmp), tmp=tmp)
                d.start()
            finally:
                del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
            msgs = []

            def until(pred, what):
                deadline = time.time() + 10
                while time.time() < deadline:
                    m = sock.recv(4096).decode()
                    msgs.append(m)
                    if pred(m):
                        return m
                self.fail("no %s in %r" % (what, msgs))
            try:
                ready = until(lambda m: "READY=1" in m, "READY")
                self.assertIn("STATUS=", ready)
                self.assertRegex(ready, r"STATUS=\d+ series")
                until(lambda m: m.strip() == "WATCHDOG=1", "WATCHDOG")
                until(lambda m: m.startswith("STATUS="), "STATUS")
                d.proc.send_signal(signal.SIGHUP)
                rel = until(lambda m: "RELOADING=1" in m, "RELOADING")
                self.assertRegex(rel, r"MONOTONIC_USEC=\d+")
                until(lambda m: "READY=1" in m, "READY after reload")
                d.proc.send_signal(signal.SIGTERM)
                until(lambda m: "STOPPING=1" in m, "STOPPING")
                self.assertEqual(d.stop(), 0)
            finally:
                d.stop()
                sock.close()


class SocketActivation(unittest.TestCase):

    def test_listen_fds_by_name(self):
        with tempfile.TemporaryDirectory() as tmp:
            g = socket.socket()
            g.bind(("127.0.0.1", 0))
            g.listen(16)
            h = socket.socket()
            h.bind(("127.0.0.1", 0))
            h.listen(16)
            gport, hport = g.getsockname()[1], h.getsockname()[1]
            cfgp = os.path.join(tmp, "c.yaml")
            with open(cfgp, "w") as f:
                f.write("state_dir: %s\nlisteners:\n"
                        "  - {protocol: graphite, transport: tcp, address: 127.0.0.1, port: 2003}\n"
                        "http: {address: 127.0.0.1, port: 8080}\n"
                        "events: {port: 0, unix: '', file: ''}\n"
                        "store: {path: %s/s.db}\n" % (tmp, tmp))
            env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="graphite-tcp:http",
                       G=str(g.fileno()), H=str(h.fileno()))
            p = subprocess.Popen(
                ["sh", "-c", 'exec 3<&$G 4<&$H; export LISTEN_PID=$$; exec "$0" "$@"',
                 ANOMALYD, "-c", cfgp],
                pass_fds=(g.fileno(), h.fileno()), env=env, stderr=subprocess.PIPE, text=True)
            g.close()
            h.close()
            try:
                log = ""
                while "started" not in log:
                    line = p.stderr.readline()
                    self.assertTrue(line, "exited: " + log)
                    log += line
                self.assertIn("listening graphite tcp 127.0.0.1:%d (passed)" % gport, log)
                self.assertIn("listening http tcp 127.0.0.1:%d (passed)" % hport, log)
                s = socket.create_connection(("127.0.0.1", gport))
                s.sendall(b"act.a 1 1700000000\n")
                s.close()
                deadline = time.time() + 10
                while True:
                    try:
                        with urllib.request.urlopen(
                                "http://127.0.0.1:%d/api/v1/series/act.a" % hport, timeout=5) as r:
                            self.assertEqual(r.status, 200)
                            break
                    except urllib.error.HTTPError:
                        self.assertLess(time.time(), deadline, "act.a never arrived")
                        time.sleep(0.05)
            finally:
                p.send_signal(signal.SIGTERM)
                out = p.communicate(timeout=30)[1]
            self.assertEqual(p.returncode, 0, out)


if __name__ == "__main__":
    unittest.main()
