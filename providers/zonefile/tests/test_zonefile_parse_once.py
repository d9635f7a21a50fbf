"""One command parses a zone file once: validation, reads, the NS lookup and the zone's
name share one parse of the same text; a write parses only the text it wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxflip import Change, RRset
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings, _zonefile

ZONE = "once.test."


def test_a_failover_parses_the_file_once_and_the_edit_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "".join(f"d{i} 3600 IN MX 10 mx1.proxy.test.\n" for i in range(50))
    path = tmp_path / "once.test.zone"
    path.write_text(
        f"$ORIGIN {ZONE}\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
        f"@ IN NS ns1\nns1 IN A 127.0.0.1\n{body}"
    )
    parses: list[str] = []
    real = _zonefile._parse_with_layout

    def counting(text: str, where: Path, origin: str | None) -> object:
        parses.append(text)
        return real(text, where, origin)

    monkeypatch.setattr(_zonefile, "_parse_with_layout", counting)
    settings = ZoneFileSettings(file=path)  # a plain file: checked by the quick read
    provider = ZoneFileProvider("files", settings)
    names = [f"d{i}.{ZONE}" for i in range(50)]
    before = provider.read(ZONE, names)  # the quick read again (shared), no parse
    assert parses == []
    assert provider.nameservers(ZONE) == ["ns1.once.test"]
    assert len(parses) == 1
    after = RRset.of(names[0], 60, ["10 mail.direct.test."])
    provider.apply(ZONE, [Change(names[0], before[names[0]], after)])
    assert len(parses) == 2  # the written text, parsed once to prove the edit
    assert provider.read(ZONE, names)[names[0]] == after  # and that parse is reused
    assert provider.read(ZONE, names[1:2])[names[1]] == before[names[1]]
    assert len(parses) == 2


def test_origin_of_reads_the_leading_origin_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "z.zone"
    path.write_text("; a comment\n$TTL 60\n$ORIGIN Example.TEST.\n@ IN SOA broken\n")
    assert _zonefile.origin_of(path) == "example.test."
    path.write_text("@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n")
    with pytest.raises(_zonefile.ZoneFileError, match="does not say which zone"):
        _zonefile.origin_of(path)
