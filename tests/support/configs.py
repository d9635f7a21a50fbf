"""Helpers to write mxflip.toml files for tests."""

from __future__ import annotations

from pathlib import Path

KEY_TEXT = (
    'key "k" {\n\talgorithm hmac-sha256;\n'
    '\tsecret "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==";\n};\n'
)

GOOD = """
[providers.lab]
type = "rfc2136"
server = "127.0.0.1:5300"
tsig_key_file = "lab.key"

[defaults]
ttl = 3600
failover_ttl = 60
nameservers = ["127.0.0.1:5300"]

[domains."example.test"]
provider = "lab"
primary = ["10 mx1.proxy.test", "20 mx2.proxy.test"]
backup = ["10 mail.example.test"]
"""


def write_config(folder: Path, text: str, *, key: str | None = KEY_TEXT) -> Path:
    """Write ``text`` as mxflip.toml (and a valid lab.key beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    if key is not None:
        (folder / "lab.key").write_text(key)
        (folder / "lab.key").chmod(0o600)  # as a key file should be (others may not read it)
    path = folder / "mxflip.toml"
    path.write_text(text)
    return path
