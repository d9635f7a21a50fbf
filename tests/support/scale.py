"""A lab for many domains in one zone: a private BIND9 serving N MX sets, and the mxflip
config for it through either adapter (``rfc2136`` over TSIG, or ``zonefile`` editing the
very file BIND serves and reloading it with ``rndc``). Shared by the scale tests and the
benchmarks in ``bench/``."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.support.bind import BindServer, zone_text

SCALE_ZONE = "scale.test."
PRIMARY = ["10 mx1.proxy.test.", "20 mx2.proxy.test."]
BACKUP = ["10 mail.direct.test."]
ADAPTERS = ("rfc2136", "zonefile")


def scale_names(count: int, zone: str = SCALE_ZONE) -> list[str]:
    return [f"d{i:05}.{zone}" for i in range(count)]


def scale_zone_text(names: list[str], records: list[str] = PRIMARY, ttl: int = 3600) -> str:
    """The zone with every name on ``records`` (MX targets outside the zone, so BIND's
    integrity checks need no address records)."""
    lines = "".join(f"{n} {ttl} IN MX {r}\n" for n in names for r in records)
    return zone_text(SCALE_ZONE, lines)


@dataclass
class ScaleLab:
    """BIND serving ``count`` domains on PRIMARY; :meth:`config` writes the mxflip config."""

    folder: Path
    count: int
    adapter: str = "rfc2136"
    bind: BindServer | None = None

    @property
    def names(self) -> list[str]:
        return scale_names(self.count)

    @property
    def zone_file(self) -> Path:
        assert self.bind is not None
        return self.bind.workdir / f"{SCALE_ZONE.rstrip('.')}.zone"

    def start(self) -> ScaleLab:
        if self.adapter == "zonefile" and shutil.which("rndc") is None:
            from tests.support.bind import unavailable

            unavailable("'rndc' is not installed")
        self.bind = BindServer(
            self.folder / "bind",
            {SCALE_ZONE: scale_zone_text(self.names)},
            allow_update=self.adapter == "rfc2136",
            rndc=self.adapter == "zonefile",
        ).start()
        return self

    def stop(self) -> None:
        if self.bind is not None:
            self.bind.stop()

    def config(self, *, journal: Path | None = None, extra: str = "") -> Path:
        """Write ``mxflip.toml`` for the lab; ``extra`` is appended to the provider table."""
        bind = self.bind
        assert bind is not None
        if self.adapter == "rfc2136":
            provider = (
                f'type = "rfc2136"\nserver = "{bind.address}"\ntsig_key_file = "{bind.key_file}"\n'
            )
        else:
            command = [*bind.rndc_command, "reload", "{zone}"]
            provider = (
                f'type = "zonefile"\nfile = "{self.zone_file}"\n'
                f"reload_command = {json.dumps(command)}\n"
            )
        text = (
            f"[providers.lab]\n{provider}{extra}\n"
            "[sets]\n"
            f"proxy = {json.dumps(PRIMARY)}\n"
            f"direct = {json.dumps(BACKUP)}\n\n"
            "[defaults]\n"
            'provider = "lab"\n'
            f'zone = "{SCALE_ZONE}"\n'
            'primary = "proxy"\n'
            'backup = "direct"\n'
            f'nameservers = ["{bind.address}"]\n\n'
            "[journal]\n"
            f'path = "{journal or self.folder / "journal.jsonl"}"\n\n'
        )
        text += "".join(f'[domains."{n.rstrip(".")}"]\n' for n in self.names)
        path = self.folder / "mxflip.toml"
        path.write_text(text)
        return path
