"""A watch lab: BIND9 serving a fresh domain, an inbound proxy relay and a direct backup
relay (certificates for their MX names from a private CA) delivering into a Maildir, a
loopback HTTP receiver for alerts and heartbeats, and a config tying them together."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from mxflip.config import Config, load_config
from mxflip.provider import Change
from mxflip.records import RRset
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer
from tests.support.receiver import Receiver
from tests.support.relay import Relay, RelayHandler

_counter = itertools.count()


@dataclass
class WatchLab:
    folder: Path
    bind: BindServer
    domain: str
    maildir: Path
    proxy: Relay
    proxy2: Relay
    backup: Relay
    receiver: Receiver

    @property
    def primary(self) -> list[str]:
        return [f"10 mx1.{self.domain}.", f"20 mx2.{self.domain}."]

    @property
    def backup_set(self) -> list[str]:
        return [f"10 direct.{self.domain}."]

    def add_addresses(self) -> None:
        """A records for the MX hosts (in the zone, so the probe can resolve them)."""
        import dns.query
        import dns.tsigkeyring
        import dns.update

        text = self.bind.key_file.read_text()
        secret = text.split('secret "')[1].split('"')[0]
        keyring = dns.tsigkeyring.from_text({self.bind.key_name: secret})
        update = dns.update.UpdateMessage(
            "example.test.", keyring=keyring, keyalgorithm="hmac-sha256"
        )
        for label in ("mx1", "mx2", "direct"):
            update.replace(f"{label}.{self.domain}.", 300, "A", "127.0.0.1")
        host, port = self.bind.address.split(":")
        dns.query.tcp(update, host, port=int(port), timeout=5)

    def set_mx(self, records: list[str], ttl: int = 300) -> None:
        provider = RFC2136Provider.from_settings(
            "lab", RFC2136Settings(server=self.bind.address, tsig_key_file=self.bind.key_file)
        )
        name = f"{self.domain}."
        live = provider.read("example.test.", [name])
        provider.apply("example.test.", [Change(name, live[name], RRset.of(name, ttl, records))])

    def served(self) -> list[str]:
        provider = RFC2136Provider.from_settings(
            "lab", RFC2136Settings(server=self.bind.address, tsig_key_file=self.bind.key_file)
        )
        name = f"{self.domain}."
        rrset = provider.read("example.test.", [name])[name]
        return sorted(rrset.strings()) if rrset else []

    def write(self, watch: str = "", canary: str = "", mailbox: str | None = None) -> Path:
        """mxflip.toml; ``mailbox`` replaces the Maildir lines of ``[canary]`` (IMAP)."""
        box = mailbox or f'mailbox = "maildir"\nmaildir = "{self.maildir}"'
        ca_file = self.folder / "ca.pem"
        path = self.folder / "mxflip.toml"
        path.write_text(
            f"""
[providers.lab]
type = "rfc2136"
server = "{self.bind.address}"
tsig_key_file = "{self.bind.key_file}"
timeout = 2

[probe]
timeout = 5
helo = "monitor.example.test"
mail_from = "monitor@example.test"
resolvers = ["{self.bind.address}"]
ca_file = "{ca_file}"

[probe.connect]
"mx1.{self.domain}" = "{self.proxy.address}"
"mx2.{self.domain}" = "{self.proxy2.address}"
"direct.{self.domain}" = "{self.backup.address}"

[canary]
{box}
warn_after = "2m"
fail_after = "4m"
state_file = "{self.folder / "state" / "canary.json"}"
from = "mxflip@monitor.example.test"
{canary}

[journal]
path = "{self.folder / "state" / "journal.jsonl"}"

[watch]
{watch}

[defaults]
provider = "lab"
zone = "example.test"
ttl = 300
failover_ttl = 60
nameservers = ["{self.bind.address}"]
primary = {self.primary!r}
backup = {self.backup_set!r}

[domains."{self.domain}"]
canary_address = "canary@{self.domain}"
""".replace("'", '"')
        )
        return path

    def config(self, watch: str = "", canary: str = "", mailbox: str | None = None) -> Config:
        return load_config(self.write(watch, canary, mailbox))


def make_watch_lab(
    folder: Path, bind: BindServer, ca: trustme.CA, maildir: Path | None = None
) -> Iterator[WatchLab]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(ca.cert_pem.bytes())
    maildir = maildir or folder / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    domain = f"w{os.getpid()}-{next(_counter)}.example.test"
    names = tuple(f"{h}.{domain}" for h in ("mx1", "mx2", "direct"))
    proxy = Relay(RelayHandler(maildir), ca, names=names)
    proxy2 = Relay(RelayHandler(maildir), ca, names=names)
    backup = Relay(RelayHandler(maildir), ca, names=names)
    receiver = Receiver()
    lab = WatchLab(folder, bind, domain, maildir, proxy, proxy2, backup, receiver)
    lab.add_addresses()
    lab.set_mx(lab.primary)
    try:
        yield lab
    finally:
        proxy.stop()
        proxy2.stop()
        backup.stop()
        receiver.stop()


@pytest.fixture
def lab(tmp_path: Path, bind: BindServer, ca: trustme.CA) -> Iterator[WatchLab]:
    """A fresh watch lab (import it, with ``ca``, into the test module)."""
    yield from make_watch_lab(tmp_path, bind, ca)


def rounds(watcher: Any, clock: Any, n: int, step: float = 60.0) -> list[Any]:
    """Run ``n`` rounds, moving the fake clock ``step`` seconds after each."""
    out = []
    for _ in range(n):
        out.append(asyncio.run(watcher.round()))
        clock.t += step
    return out


def hold(lab: WatchLab) -> None:
    """From now on the proxy takes mail and never delivers it."""
    lab.proxy.handler.drop = lab.proxy2.handler.drop = True
