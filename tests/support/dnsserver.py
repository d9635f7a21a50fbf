"""What every test DNS server fixture shares: waiting until it answers on both transports."""

from __future__ import annotations

import subprocess
import time

import dns.exception
import dns.message
import dns.query


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
