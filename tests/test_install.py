"""The install rules and the systemd units, as a distribution would use them (Python
stdlib only).

The build under test (AD_BUILD_DIR) is installed into a staging directory with DESTDIR
and its files are looked for where its prefix puts them: /usr/local/{sbin,bin,etc} and
/usr/local/lib/systemd/system for the default prefix. A second, fresh tree is configured
with the prefix distributions use (/usr) and only its "config" and "systemd" components
are installed (no build needed): /etc/anomalyd/anomalyd.yaml, the units in pkg-config
systemd's unit directory, ExecStart=/usr/sbin/anomalyd. Each staging directory is then
the --root of `systemd-analyze verify` (with a copy of the host's unit directory, for
sysinit.target and friends, and of /bin/kill, for ExecReload=), which must accept every
unit without a word, and of `systemd-analyze security --offline`, which must rate the
service 1.5 or better.

Environment (tests/CMakeLists.txt): AD_BUILD_DIR, AD_SOURCE_DIR, AD_CMAKE, AD_GENERATOR,
AD_HAVE_ANOMALYD (1 when the anomalyd binary is built and installed).
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

BUILD = os.environ.get("AD_BUILD_DIR", "")
SOURCE = os.environ.get("AD_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CMAKE = os.environ.get("AD_CMAKE", "cmake")
GENERATOR = os.environ.get("AD_GENERATOR", "")
HAVE_ANOMALYD = os.environ.get("AD_HAVE_ANOMALYD", "0") == "1"
ANALYZE = shutil.which("systemd-analyze")

# name -> (directive, address): one socket unit per name (FileDescriptorName= names every
# socket of its unit), for the default listeners of config/anomalyd.yaml.
SOCKETS = {
    "graphite-tcp": ("ListenStream", "127.0.0.1:2003"),
    "graphite-udp": ("ListenDatagram", "127.0.0.1:2003"),
    "influx-tcp": ("ListenStream", "127.0.0.1:8094"),
    "statsd-udp": ("ListenDatagram", "127.0.0.1:8125"),
    "jsonl-tcp": ("ListenStream", "127.0.0.1:8095"),
    "http": ("ListenStream", "127.0.0.1:8080"),
    "events-tcp": ("ListenStream", "127.0.0.1:8096"),
}
# Settings anomalyd.service must keep (docs/SYSTEMD.md says why).
HARDENING = [
    "NotifyAccess=main", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
    "WatchdogSec=30s", "TimeoutStopSec=30s", "DynamicUser=yes", "ProtectSystem=strict",
    "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "NoNewPrivileges=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service",
    "SystemCallFilter=setpriority",
    "SystemCallArchitectures=native", "MemoryMax=4G", "LimitNOFILE=65536",
    "Environment=OPENBLAS_NUM_THREADS=1", "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes", "ProtectControlGroups=yes", "RestrictNamespaces=yes",
    "LockPersonality=yes", "RestrictRealtime=yes", "MemoryDenyWriteExecute=yes",
    "CapabilityBoundingSet=",
]
UNITS = (["anomalyd.service", "anomalyd-sockets.target"]
         + ["anomalyd-%s.socket" % n for n in SOCKETS])


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, **kw)


def cache_value(build, key):
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"%s:[A-Z]+=(.*)$" % re.escape(key), line.rstrip("\n"))
            if m:
                return m.group(1)
    return None


def system_unitdir():
    """pkg-config systemd's unit directory, as a distribution installs to."""
    r = run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"])
    d = r.stdout.strip() if r.returncode == 0 else ""
    return d or "/usr/lib/systemd/system"


def unit_settings(path):
    """[(section, key, value)] of a unit file, in order."""
    out, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.append((section, k, v))
    return out


def default_listeners(yaml_path):
    """(protocol, transport, address, port) of the listeners in anomalyd.yaml: a small
    reader for that file's `listeners:` block only."""
    out, cur, inside = [], None, False
    with open(yaml_path) as f:
        for line in f:
            line = line.split("#", 1)[0].rstrip()
            if not line:
                continue
            if not line.startswith(" "):
                inside = line.startswith("listeners:")
                continue
            if not inside:
                continue
            m = re.match(r"\s*(-\s+)?(\w+):\s*(\S+)", line)
            if not m:
                continue
            if m.group(1):
                cur = {}
                out.append(cur)
            cur[m.group(2)] = m.group(3)
    return [(d["protocol"], d["transport"], d.get("address", "127.0.0.1"),
             d.get("port")) for d in out]


def section(yaml_path, name):
    """The scalar keys of a top-level map of anomalyd.yaml."""
    out, inside = {}, False
    with open(yaml_path) as f:
        for line in f:
            line = line.split("#", 1)[0].rstrip()
            if not line:
                continue
            if not line.startswith(" "):
                inside = line == name + ":"
                continue
            m = re.match(r"\s+(\w+):\s*(\S+)", line)
            if inside and m:
                out[m.group(1)] = m.group(2)
    return out


class Install(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test_install.")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers ----

    def install(self, build, destdir, components=None):
        env = dict(os.environ, DESTDIR=destdir)
        for comp in components or [None]:
            cmd = [CMAKE, "--install", build] + (["--component", comp] if comp else [])
            r = run(cmd, env=env)
            self.assertEqual(r.returncode, 0, r.stdout)

    def assert_file(self, root, path, executable=False):
        full = root + path
        self.assertTrue(os.path.isfile(full), "%s not installed (at %s)" % (path, full))
        if executable:
            self.assertTrue(os.access(full, os.X_OK), "%s not executable" % path)
        return full

    def check_units(self, root, unitdir, sbindir, sysconfdir):
        for u in UNITS:
            self.assert_file(root, os.path.join(unitdir, u))
        svc = unit_settings(root + os.path.join(unitdir, "anomalyd.service"))
        got = {(s, k): v for s, k, v in svc}
        self.assertEqual(got[("Service", "ExecStart")], "%s/anomalyd -c %s/anomalyd/anomalyd.yaml"
                         % (sbindir, sysconfdir))
        self.assertNotIn("@", got[("Service", "ExecStart")], "template not configured")
        self.assertEqual(got[("Service", "Type")], "notify")
        self.assertEqual(got[("Service", "WorkingDirectory")], "%S/anomalyd")
        self.assertEqual(got[("Service", "StateDirectory")], "anomalyd")
        self.assertNotIn(("Service", "Sockets"), got, "the socket units must stay optional")
        for kv in HARDENING:
            k, _, v = kv.partition("=")
            self.assertIn(("Service", k, v), svc, "anomalyd.service lacks " + kv)
        for name, (directive, address) in SOCKETS.items():
            sock = unit_settings(root + os.path.join(unitdir, "anomalyd-%s.socket" % name))
            listens = [(k, v) for s, k, v in sock if s == "Socket" and k.startswith("Listen")]
            self.assertEqual(listens, [(directive, address)], name)
            self.assertIn(("Socket", "FileDescriptorName", name), sock)
            self.assertIn(("Socket", "Service", "anomalyd.service"), sock)
        target = unit_settings(root + os.path.join(unitdir, "anomalyd-sockets.target"))
        also = [v for s, k, v in target if k == "Also"]
        self.assertEqual(sorted(" ".join(also).split()),
                         sorted("anomalyd-%s.socket" % n for n in SOCKETS))

    def verify(self, root, sbindir):
        """systemd-analyze verify with the staging directory as the root."""
        if not ANALYZE:
            self.skipTest("systemd-analyze is not installed: units not verified")
        host_units = next(d for d in ("/lib/systemd/system", "/usr/lib/systemd/system")
                          if os.path.exists(os.path.join(d, "sysinit.target")))
        for d in ("lib/systemd/system", "usr/lib/systemd/system"):
            if not os.path.isdir(os.path.join(root, d)):
                shutil.copytree(host_units, os.path.join(root, d), symlinks=True)
        os.makedirs(os.path.join(root, "bin"), exist_ok=True)
        shutil.copy("/bin/kill", os.path.join(root, "bin", "kill"))
        daemon = root + os.path.join(sbindir, "anomalyd")
        if not os.path.exists(daemon):
            # the daemon is not built yet (or this tree only installed components):
            # a stand-in, so that verify still checks every line of the units
            os.makedirs(os.path.dirname(daemon), exist_ok=True)
            with open(daemon, "w") as f:
                f.write("#!/bin/sh\nexit 1\n")
            os.chmod(daemon, 0o755)
        r = run([ANALYZE, "verify", "--man=no", "--root=" + root] + UNITS)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(r.stdout.strip(), "", "systemd-analyze verify complained")
        r = run([ANALYZE, "security", "--offline=yes", "--root=" + root, "--threshold=15",
                 "anomalyd.service"])
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        self.assertEqual(r.returncode, 0, "exposure above 1.5: " + last)
        print(last)

    # ---- the tests ----

    def test_build_installs_where_its_prefix_says(self):
        self.assertTrue(BUILD, "AD_BUILD_DIR is not set")
        prefix = cache_value(BUILD, "CMAKE_INSTALL_PREFIX")
        if prefix == "/usr":
            sysconf, unitdir = "/etc", system_unitdir()
        else:
            sysconf, unitdir = prefix + "/etc", prefix + "/lib/systemd/system"
        sbindir = prefix + "/sbin"
        root = os.path.join(self.tmp, "root")
        self.install(BUILD, root)
        self.assert_file(root, prefix + "/bin/anomalyctl", executable=True)
        if HAVE_ANOMALYD:
            self.assert_file(root, sbindir + "/anomalyd", executable=True)
        else:
            print("anomalyd is not built in this tree (daemon incomplete): its install "
                  "is not checked")
        yaml = self.assert_file(root, sysconf + "/anomalyd/anomalyd.yaml")
        with open(yaml) as a, open(os.path.join(SOURCE, "config", "anomalyd.yaml")) as b:
            self.assertEqual(a.read(), b.read())
        self.check_units(root, unitdir, sbindir, sysconf)
        if ANALYZE:
            r = run([ANALYZE, "unit-paths"])
            self.assertIn(unitdir, r.stdout.split(), "systemd does not look in " + unitdir)
        self.verify(root, sbindir)

    def test_distribution_prefix_usr(self):
        build = os.path.join(self.tmp, "build")
        cmd = [CMAKE, "-S", SOURCE, "-B", build, "-DCMAKE_INSTALL_PREFIX=/usr",
               "-DBUILD_TESTING=OFF", "-DCMAKE_BUILD_TYPE=Release"]
        if GENERATOR:
            cmd += ["-G", GENERATOR]
        r = run(cmd)
        self.assertEqual(r.returncode, 0, r.stdout)
        root = os.path.join(self.tmp, "root")
        self.install(build, root, ["config", "systemd"])
        self.assert_file(root, "/etc/anomalyd/anomalyd.yaml")
        self.assertFalse(os.path.exists(root + "/usr/etc"), "configuration under /usr/etc")
        self.check_units(root, system_unitdir(), "/usr/sbin", "/etc")
        self.verify(root, "/usr/sbin")

    def test_socket_units_match_default_listeners(self):
        yaml = os.path.join(SOURCE, "config", "anomalyd.yaml")
        want = {}
        for proto, transport, address, port in default_listeners(yaml):
            if transport == "unix":
                continue  # a relative path: the daemon binds it in its state directory
            want["%s-%s" % (proto, transport)] = (
                "ListenStream" if transport == "tcp" else "ListenDatagram",
                "%s:%s" % (address, port))
        self.assertGreaterEqual(len(want), 5, "could not read the listeners")
        http, events = section(yaml, "http"), section(yaml, "events")
        want["http"] = ("ListenStream", "%s:%s" % (http["address"], http["port"]))
        want["events-tcp"] = ("ListenStream", "%s:%s" % (events["address"], events["port"]))
        self.assertEqual(want, SOCKETS)
        for name, (directive, address) in SOCKETS.items():
            sock = unit_settings(os.path.join(SOURCE, "config", "anomalyd-%s.socket" % name))
            self.assertIn(("Socket", directive, address), sock)


if __name__ == "__main__":
    unittest.main()
