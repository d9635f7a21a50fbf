"""Free loopback ports for test servers.

A port the kernel hands out as "free" (bind to port 0) comes from the ephemeral range
(32768-60999 on Linux), the same range every outgoing connection and every DNS query's
fresh UDP socket takes its source port from; between our probe and the server's own bind,
another xdist worker's query or server could take it (a pdns test once got another
worker's server: TSIG NOTAUTH). So each worker picks from its own block *below* the
ephemeral range, which nothing allocates on its own, walking it from a random point and
checking that both TCP and UDP are free.
"""

from __future__ import annotations

import os
import random
import socket

#: Blocks of ports per xdist worker, below Linux's default ephemeral range.
_FIRST = 20000
_BLOCK = 1500
_BLOCKS = 8

_next: dict[str, int] = {}


def _block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = worker.removeprefix("gw")
    n = int(digits) if digits.isdigit() else 0
    start = _FIRST + (n % _BLOCKS) * _BLOCK
    return range(start, start + _BLOCK)


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        try:
            tcp.bind((host, port))
        except OSError:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``host`` (DNS servers listen on both), from
    this worker's block; never the same one twice in a row within a process."""
    block = _block()
    # A random start: a child process of this worker (a server it spawns, a benchmark)
    # walks the same block from elsewhere.
    offset = _next.get(host, random.randrange(len(block)))
    for i in range(len(block)):
        port = block[(offset + i) % len(block)]
        if _free(host, port):
            _next[host] = (offset + i + 1) % len(block)
            return port
    raise RuntimeError(f"no free TCP+UDP port on {host} in {block.start}-{block.stop - 1}")
