"""test_hardening.py - what a hostile or careless world does to the real anomalyd (issue 15).

Descriptors: the daemon started under `prlimit --nofile=N:N` with many more clients than
N: refusals are logged (once) and counted, /healthz answers while clients hold every
descriptor the daemon lets them have, and new clients are served once they go; at start
the soft limit is raised when the hard limit allows, else a warning gives the numbers.

Run by ctest (ANOMALYD names the binary; prlimit is util-linux's). Python stdlib only.
"""
import os
import re
import shutil
import socket
import tempfile
import time
import unittest

import daemon_harness
from daemon_harness import Daemon, config_text

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


if __name__ == "__main__":
    unittest.main()
