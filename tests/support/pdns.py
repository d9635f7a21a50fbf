"""Run a real PowerDNS Authoritative ``pdns_server`` (gsqlite3 backend) on a loopback
port for tests.

Zones are loaded with ``pdnsutil``; the TSIG key may update every zone
(``TSIG-ALLOW-DNSUPDATE``) and DNS UPDATE is allowed from loopback. When the server or the
sqlite3 backend is missing or will not start, tests fail under ``CI=true`` and are skipped
elsewhere.
"""

from __future__ import annotations

import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests.support.dnsserver import LabDNSServer, wait_ready
from tests.support.ports import free_port
from tests.support.required import find_binary, server_unavailable

SCHEMA = Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql")
INSTALL = "apt-get install pdns-server pdns-backend-sqlite3"


def unavailable(reason: str) -> NoReturn:
    server_unavailable("PowerDNS", reason, INSTALL)


@dataclass
class PowerDNSServer(LabDNSServer):
    def _pdnsutil(self, *args: str) -> None:
        pdnsutil = find_binary("pdnsutil", "/usr/bin/pdnsutil")
        if pdnsutil is None:
            unavailable("'pdnsutil' is not installed")
        done = subprocess.run(
            [pdnsutil, f"--config-dir={self.workdir}", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            unavailable(f"pdnsutil {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")

    def start(self) -> PowerDNSServer:
        server = find_binary("pdns_server", "/usr/sbin/pdns_server")
        if server is None:
            unavailable("'pdns_server' is not installed")
        if not SCHEMA.exists():
            unavailable(f"the gsqlite3 schema {SCHEMA} is missing")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_file.write_text(self.key_text())
        db = self.workdir / "pdns.sqlite3"
        with sqlite3.connect(db) as conn:
            conn.executescript(SCHEMA.read_text())
        last = ""
        for attempt in range(5):  # a port picked free can be taken before pdns binds it
            self.port = free_port()
            (self.workdir / "pdns.conf").write_text(
                "launch=gsqlite3\n"
                f"gsqlite3-database={db}\n"
                "local-address=127.0.0.1\n"
                f"local-port={self.port}\n"
                f"socket-dir={self.workdir}\n"
                "dnsupdate=yes\n"
                "allow-dnsupdate-from=127.0.0.0/8\n"
                "guardian=no\ndaemon=no\nwrite-pid=no\ndisable-syslog=yes\n"
                "loglevel=4\n"
                "primary=yes\n"
                "zone-cache-refresh-interval=0\n"
                "cache-ttl=0\nnegquery-cache-ttl=0\nquery-cache-ttl=0\n"
            )
            if attempt == 0:
                self._load()
            log = (self.workdir / "pdns.log").open("wb")
            self.process = subprocess.Popen(
                [server, f"--config-dir={self.workdir}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            if wait_ready(self.process, self.port, next(iter(self.zones)), timeout=15.0):
                return self
            last = (self.workdir / "pdns.log").read_text(errors="replace")[-2000:]
            self.stop()
        unavailable(f"pdns_server did not start; its log ends with:\n{last}")

    def _load(self) -> None:
        self._pdnsutil("import-tsig-key", self.key_name, self.algorithm, self.secret)
        for zone, text in self.zones.items():
            path = self.workdir / f"{zone.rstrip('.')}.zone"
            path.write_text(text)
            self._pdnsutil("load-zone", zone.rstrip("."), str(path))
            self._pdnsutil("set-meta", zone.rstrip("."), "TSIG-ALLOW-DNSUPDATE", self.key_name)
