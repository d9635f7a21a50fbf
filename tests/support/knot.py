"""Run a real Knot DNS ``knotd`` on a loopback port for tests.

Like :mod:`tests.support.bind`: its own folder, config, zone files and a TSIG key; the key
may update every zone through an ACL. ``extra_key`` is a second key Knot knows but no ACL
allows (Knot then answers an UPDATE signed with it NOTAUTH/BADKEY). When ``knotd`` is
missing or will not start, tests fail under ``CI=true`` and are skipped elsewhere.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.dnsserver import LabDNSServer, new_secret, wait_ready
from tests.support.ports import free_port
from tests.support.required import find_binary, server_unavailable


@dataclass
class KnotServer(LabDNSServer):
    extra_key: str = "known-not-allowed"
    extra_secret: str = field(default_factory=new_secret)

    @property
    def extra_key_file(self) -> Path:
        return self.workdir / "extra.key"

    def start(self) -> KnotServer:
        knotd = find_binary("knotd", "/usr/sbin/knotd")
        if knotd is None:
            server_unavailable("Knot DNS", "'knotd' is not installed", "apt-get install knot")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_file.write_text(self.key_text())
        self.extra_key_file.write_text(self.key_text(self.extra_secret, self.extra_key))
        for zone, text in self.zones.items():
            (self.workdir / f"{zone.rstrip('.')}.zone").write_text(text)
        last = ""
        for _ in range(5):  # a port picked free can be taken before knotd binds it
            self.port = free_port()
            conf = self.workdir / "knot.conf"
            conf.write_text(self._conf())
            log = (self.workdir / "knot.log").open("wb")
            self.process = subprocess.Popen(
                [knotd, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
            if wait_ready(self.process, self.port, next(iter(self.zones)), timeout=15.0):
                return self
            last = (self.workdir / "knot.log").read_text(errors="replace")[-2000:]
            self.stop()
        server_unavailable("Knot DNS", f"knotd did not start; its log ends with:\n{last}", "")

    def _conf(self) -> str:
        zones = "\n".join(f"  - domain: {z.rstrip('.')}\n    acl: update" for z in self.zones)
        return (
            "server:\n"
            f"  listen: 127.0.0.1@{self.port}\n"
            f"  rundir: {self.workdir}\n"
            "log:\n  - target: stderr\n    any: info\n"
            "database:\n"
            f"  storage: {self.workdir}\n"
            "control:\n"
            f"  listen: {self.workdir}/knot.sock\n"
            "key:\n"
            f"  - id: {self.key_name}\n    algorithm: {self.algorithm}\n"
            f"    secret: {self.secret}\n"
            f"  - id: {self.extra_key}\n    algorithm: {self.algorithm}\n"
            f"    secret: {self.extra_secret}\n"
            "acl:\n"
            f"  - id: update\n    key: {self.key_name}\n    action: update\n"
            "template:\n"
            "  - id: default\n"
            f"    storage: {self.workdir}\n"
            '    file: "%s.zone"\n'
            "    zonefile-sync: -1\n"
            "    journal-content: changes\n"
            "    semantic-checks: on\n"
            "zone:\n" + zones + "\n"
        )
