"""Run a real BIND9 ``named`` on a loopback port for tests.

Each server gets its own folder with its config, zone files and a TSIG key. It listens on
127.0.0.1 only. When ``named`` is missing or will not start, tests fail under ``CI=true``
and are skipped elsewhere (a developer machine without bind9).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests.support.dnsserver import LabDNSServer, wait_ready
from tests.support.ports import free_port
from tests.support.required import find_binary, server_unavailable

NAMED_CANDIDATES = ("named", "/usr/sbin/named")


def named_binary() -> str | None:
    return find_binary(*NAMED_CANDIDATES)


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (the server must be there), skip on a developer machine."""
    server_unavailable("BIND9", reason, "apt-get install bind9")


def zone_text(zone: str, records: str = "", ttl: int = 300) -> str:
    """A minimal zone file with SOA and NS, plus ``records`` (relative or absolute names)."""
    return (
        f"$ORIGIN {zone.rstrip('.')}.\n$TTL {ttl}\n"
        f"@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
        f"@ IN NS ns1\n"
        f"ns1 IN A 127.0.0.1\n"
        f"{records}\n"
    )


@dataclass
class BindServer(LabDNSServer):
    """One running ``named``; ``zones`` maps zone name → zone-file text."""

    allow_update: bool = True
    #: Accept ``rndc`` on a loopback control port (see :attr:`rndc_command`).
    rndc: bool = False
    control_port: int = 0
    #: More statements for the ``options`` block (``allow-transfer { none; };``).
    extra_options: str = ""

    @property
    def rndc_conf(self) -> Path:
        return self.workdir / "rndc.conf"

    @property
    def rndc_command(self) -> list[str]:
        """``rndc`` talking to this server (``reload {zone}`` is to be appended)."""
        return ["rndc", "-c", str(self.rndc_conf)]

    def _controls(self) -> str:
        if not self.rndc:
            return "controls { };\n"
        self.control_port = free_port()
        key = self.key_text(name="rndc-key")
        self.rndc_conf.write_text(
            key + 'options { default-key "rndc-key"; default-server 127.0.0.1; '
            f"default-port {self.control_port}; }};\n"
        )
        return (
            key + f"controls {{ inet 127.0.0.1 port {self.control_port} allow {{ 127.0.0.1; }} "
            'keys { "rndc-key"; }; };\n'
        )

    def start(self) -> BindServer:
        named = named_binary()
        if named is None:
            unavailable("'named' is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_file.write_text(self.key_text())
        self.key_file.chmod(0o640)  # named reads it as root here; others may not
        zone_blocks = []
        for zone, text in self.zones.items():
            fname = f"{zone.rstrip('.')}.zone"
            (self.workdir / fname).write_text(text)
            policy = (
                f"update-policy {{ grant {self.key_name} zonesub ANY; }};"
                if self.allow_update
                else "allow-update { none; };"
            )
            zone_blocks.append(
                f'zone "{zone.rstrip(".")}" {{ type primary; file "{fname}"; {policy} }};'
            )
        last_error = ""
        for _ in range(5):  # a port picked free can be taken before named binds it
            self.port = free_port()
            conf = self.workdir / "named.conf"
            conf.write_text(
                f'include "{self.key_file}";\n'
                "options {\n"
                f'  directory "{self.workdir}";\n'
                f'  pid-file "{self.workdir}/named.pid";\n'
                f'  session-keyfile "{self.workdir}/session.key";\n'
                f"  listen-on port {self.port} {{ 127.0.0.1; }};\n"
                "  listen-on-v6 { none; };\n"
                "  recursion no;\n  dnssec-validation no;\n  notify no;\n"
                "  minimal-responses yes;\n"
                f"{self.extra_options}\n"
                "};\n" + self._controls() + "\n".join(zone_blocks) + "\n"
            )
            log = (self.workdir / "named.log").open("wb")
            self.process = subprocess.Popen(
                [named, "-g", "-c", str(conf), "-n", "1", "-4"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            if self._wait_ready(timeout=15.0):
                return self
            last_error = (self.workdir / "named.log").read_text(errors="replace")[-2000:]
            self.stop()
        unavailable(f"named did not start; its log ends with:\n{last_error}")
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> bool:
        return wait_ready(self.process, self.port, next(iter(self.zones)), timeout)
