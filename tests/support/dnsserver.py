"""What every test DNS server fixture shares: waiting until it answers on both transports."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from tests.support.required import stop_process


def wait_ready(
    process: subprocess.Popen[bytes] | None, port: int, zone: str, timeout: float
) -> bool:
    """True once the server answers ``zone SOA`` over UDP and TCP on 127.0.0.1:``port``
    (bounded by ``timeout``); False when it exits or the time is up.

    Both transports: a port free for UDP may be held by another process for TCP, and the
    server then serves UDP only while TCP queries reach a stranger."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            q = dns.message.make_query(zone, "SOA")
            r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
            t = dns.query.tcp(q, "127.0.0.1", port=port, timeout=0.5)
            if r.answer and t.answer:
                return True
        except (dns.exception.DNSException, OSError):
            pass
        time.sleep(0.05)
    return False


def new_secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class LabDNSServer:
    """What every authoritative test server has: a folder, zones (name → zone-file
    text), one TSIG key allowed to update them, a loopback port and a process."""

    workdir: Path
    zones: Mapping[str, str]
    key_name: str = "mxflip-test"
    algorithm: str = "hmac-sha256"
    port: int = 0
    secret: str = field(default_factory=new_secret)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def key_file(self) -> Path:
        return self.workdir / "tsig.key"

    def key_text(self, secret: str | None = None, name: str | None = None) -> str:
        """The key in BIND's key-file syntax (another ``secret`` or ``name`` for tests)."""
        return (
            f'key "{name or self.key_name}" {{\n\talgorithm {self.algorithm};\n'
            f'\tsecret "{secret or self.secret}";\n}};\n'
        )

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
