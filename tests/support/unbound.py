"""DNSSEC for tests: sign a zone with BIND's tools and run a validating Unbound on a
loopback port in front of the authoritative test server.

Unbound trusts only the anchors given (no root key): names under a signed zone with an
anchor come back validated (AD), names of unsigned zones come back insecure (no AD).
When ``unbound`` or the signing tools are missing or will not start, tests fail under
``CI=true`` and are skipped elsewhere.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from tests.support.dnsserver import wait_ready
from tests.support.ports import free_port
from tests.support.required import find_binary, server_unavailable, stop_process


def unavailable(reason: str) -> NoReturn:
    server_unavailable("Unbound/DNSSEC tools", reason, "apt-get install unbound bind9-dnsutils")


def _run(args: Sequence[str], cwd: Path) -> str:
    done = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        unavailable(f"{Path(args[0]).name} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


@dataclass(frozen=True)
class SignedZone:
    text: str  # the signed zone file
    trust_anchor: str  # the KSK's DNSKEY record, for a validator


def sign_zone(folder: Path, zone: str, text: str) -> SignedZone:
    """Sign ``text`` (zone file of ``zone``) with a fresh ECDSA P-256 KSK and ZSK."""
    keygen = find_binary("dnssec-keygen", "/usr/bin/dnssec-keygen", "/usr/sbin/dnssec-keygen")
    signzone = find_binary(
        "dnssec-signzone", "/usr/bin/dnssec-signzone", "/usr/sbin/dnssec-signzone"
    )
    if keygen is None or signzone is None:
        unavailable("dnssec-keygen/dnssec-signzone are not installed")
    folder.mkdir(parents=True, exist_ok=True)
    origin = zone.rstrip(".")
    ksk = _run(
        [keygen, "-q", "-K", str(folder), "-a", "ECDSAP256SHA256", "-f", "KSK", origin], folder
    )
    _run([keygen, "-q", "-K", str(folder), "-a", "ECDSAP256SHA256", origin], folder)
    unsigned = folder / f"{origin}.zone"
    unsigned.write_text(text)
    _run(
        [
            signzone,
            "-q",
            "-S",
            "-K",
            str(folder),
            "-o",
            origin,
            "-f",
            f"{unsigned}.signed",
            str(unsigned),
        ],
        folder,
    )
    anchor = next(
        line
        for line in (folder / f"{ksk.strip()}.key").read_text().splitlines()
        if line and not line.startswith(";")
    )
    return SignedZone((folder / f"{unsigned}.signed").read_text(), anchor)


@dataclass
class UnboundServer:
    """A validating resolver: ``stubs`` maps zone → authoritative ``127.0.0.1:PORT``."""

    workdir: Path
    stubs: Mapping[str, str]
    trust_anchors: Sequence[str] = ()
    #: Keep answers for their TTL, as a real resolver does (off: every query goes through).
    cache: bool = False
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> UnboundServer:
        unbound = find_binary("unbound", "/usr/sbin/unbound")
        if unbound is None:
            unavailable("'unbound' is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        anchors = self.workdir / "anchors.key"
        anchors.write_text("\n".join(self.trust_anchors) + "\n")
        stubs = "".join(
            f'stub-zone:\n  name: "{zone.rstrip(".")}"\n  stub-addr: {addr.replace(":", "@")}\n'
            for zone, addr in self.stubs.items()
        )
        last = ""
        for _ in range(5):  # a port picked free can be taken before unbound binds it
            self.port = free_port()
            conf = self.workdir / "unbound.conf"
            conf.write_text(
                "server:\n"
                f"  interface: 127.0.0.1\n  port: {self.port}\n"
                '  username: ""\n  chroot: ""\n'
                f'  directory: "{self.workdir}"\n  pidfile: "{self.workdir}/unbound.pid"\n'
                '  use-syslog: no\n  logfile: ""\n  verbosity: 1\n'
                "  num-threads: 1\n  so-reuseport: no\n"
                "  do-not-query-localhost: no\n"
                "  access-control: 127.0.0.0/8 allow\n"
                # .test is a special-use name Unbound answers NXDOMAIN for unless told
                '  local-zone: "test." nodefault\n'
                '  module-config: "validator iterator"\n'
                "  val-permissive-mode: no\n  harden-dnssec-stripped: yes\n"
                f'  trust-anchor-file: "{anchors}"\n'
                + ("" if self.cache else "  cache-max-ttl: 0\n  cache-max-negative-ttl: 0\n")
                + "remote-control:\n  control-enable: no\n"
                + stubs
            )
            log = (self.workdir / "unbound.log").open("wb")
            self.process = subprocess.Popen(
                [unbound, "-d", "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            if wait_ready(self.process, self.port, next(iter(self.stubs)), timeout=15.0):
                return self
            last = (self.workdir / "unbound.log").read_text(errors="replace")[-2000:]
            self.stop()
        unavailable(f"unbound did not start; its log ends with:\n{last}")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
