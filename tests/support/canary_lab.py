"""A canary lab: proxy and backup relays delivering into a Maildir, a config pointing
the MX hosts at them, and a clock that tests move by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from mxflip.canary import Clock
from tests.support.configs import KEY_TEXT
from tests.support.ports import free_port
from tests.support.relay import Relay, RelayHandler

DOMAIN = "canary.example.test"
ADDRESS = f"canary@{DOMAIN}"


class FakeClock:
    """Wall time that moves only when something sleeps (or a test says so)."""

    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert 0 <= seconds <= 3600, seconds
        self.sleeps.append(seconds)
        self.t += seconds

    def clock(self) -> Clock:
        return self


@dataclass
class Lab:
    folder: Path
    maildir: Path
    proxy: Relay
    backup: Relay
    ca: trustme.CA
    state_file: Path
    extra_canary: list[str] = field(default_factory=list)

    def config(
        self,
        *,
        provider_server: str | None = None,
        key_file: Path | None = None,
        nameservers: str | None = None,
        canary: str | None = None,
        mx1: str | None = None,
        mx2: str | None = None,
        domains: str = "",
    ) -> Path:
        """Write mxflip.toml: mx1.proxy.test → the proxy relay, backup.relay.test → the
        backup relay, mx2.proxy.test → a closed port unless given."""
        if key_file is None:
            key_file = self.folder / "lab.key"
            key_file.write_text(KEY_TEXT)
            key_file.chmod(0o600)
        server = provider_server or f"127.0.0.1:{free_port()}"
        canary_table = canary or (
            f'mailbox = "maildir"\nmaildir = "{self.maildir}"\n'
            'warn_after = "15m"\nfail_after = "1h"\n'
        )
        text = f"""
[providers.lab]
type = "rfc2136"
server = "{server}"
tsig_key_file = "{key_file}"
timeout = 1

[probe]
timeout = 5
helo = "monitor.example.test"

[probe.connect]
"mx1.proxy.test" = "{mx1 or self.proxy.address}"
"mx2.proxy.test" = "{mx2 or f"127.0.0.1:{free_port()}"}"
"backup.relay.test" = "{self.backup.address}"

[canary]
{canary_table}
state_file = "{self.state_file}"
from = "mxflip@monitor.example.test"

[defaults]
provider = "lab"
zone = "example.test"
primary = ["10 mx1.proxy.test", "20 mx2.proxy.test"]
backup = ["10 backup.relay.test"]
{f"nameservers = {nameservers}" if nameservers else ""}

[domains."{DOMAIN}"]
canary_address = "{ADDRESS}"

[domains."plain.example.test"]
{domains}
"""
        path = self.folder / "mxflip.toml"
        path.write_text(text)
        return path


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


def make_lab(folder: Path, ca: trustme.CA, maildir: Path | None = None) -> Iterator[Lab]:
    folder.mkdir(parents=True, exist_ok=True)
    maildir = maildir or folder / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    proxy = Relay(RelayHandler(maildir), ca)
    backup = Relay(RelayHandler(maildir), ca)
    try:
        yield Lab(folder, maildir, proxy, backup, ca, folder / "state" / "canary.json")
    finally:
        proxy.stop()
        backup.stop()
