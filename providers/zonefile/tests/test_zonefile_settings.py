"""Settings are checked when the config is loaded: paths exist, zone files parse."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mxflip import ConfigError
from mxflip.testing import load_config
from mxflip_zonefile import ZoneFileSettings
from tests.support.bind import zone_text

GOOD = zone_text("example.test.")


def settings(tmp_path: Path, **table: object) -> ZoneFileSettings:
    return ZoneFileSettings.model_validate(table, context={"base_dir": tmp_path})


def config_error(tmp_path: Path, provider_table: str) -> str:
    cfg = tmp_path / "mxflip.toml"
    cfg.write_text(
        f'[providers.files]\ntype = "zonefile"\n{provider_table}\n'
        '[domains."example.test"]\nprovider = "files"\n'
        'primary = ["10 mx1.example.net"]\nbackup = ["10 backup.example.org"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    return str(info.value)


def test_relative_file_is_relative_to_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "example.test.zone").write_text(GOOD)
    cfg = tmp_path / "mxflip.toml"
    cfg.write_text(
        '[providers.files]\ntype = "zonefile"\nfile = "zones/example.test.zone"\n'
        'reload_command = ["rndc", "reload", "{zone}"]\n'
        '[domains."example.test"]\nprovider = "files"\n'
        'primary = ["10 mx1.example.net"]\nbackup = ["10 backup.example.org"]\n'
    )
    loaded = load_config(cfg).providers["files"].settings
    assert isinstance(loaded, ZoneFileSettings)
    assert loaded.file == tmp_path / "zones" / "example.test.zone"
    assert loaded.reload_command == ["rndc", "reload", "{zone}"]


def test_syntax_error_names_config_key_zone_file_and_line(tmp_path: Path) -> None:
    bad = GOOD + "www IN AAAA not-an-address\n"
    (tmp_path / "example.test.zone").write_text(bad)
    message = config_error(tmp_path, 'file = "example.test.zone"')
    line = bad.splitlines().index("www IN AAAA not-an-address") + 1
    assert str(tmp_path / "mxflip.toml") in message
    assert "providers.files" in message
    assert f"zone file {tmp_path / 'example.test.zone'} line {line}:" in message


def test_missing_file(tmp_path: Path) -> None:
    message = config_error(tmp_path, 'file = "nope.zone"')
    assert f"zone file {tmp_path / 'nope.zone'} does not exist" in message


def test_missing_directory(tmp_path: Path) -> None:
    message = config_error(tmp_path, 'directory = "zones"')
    assert f"zone directory {tmp_path / 'zones'} does not exist" in message


def test_file_and_directory_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "example.test.zone").write_text(GOOD)
    with pytest.raises(ValidationError, match="not both"):
        settings(tmp_path, file="example.test.zone", directory=".")
    with pytest.raises(ValidationError, match="not neither"):
        settings(tmp_path)


def test_every_zone_file_in_the_directory_is_checked(tmp_path: Path) -> None:
    (tmp_path / "example.test.zone").write_text(GOOD)
    (tmp_path / "broken.test.zone").write_text(zone_text("broken.test.") + "x IN MX ten a.\n")
    (tmp_path / "notes.txt").write_text("not a zone, not matched by the pattern\n")
    with pytest.raises(ValidationError, match=r"broken\.test\.zone line \d+:"):
        settings(tmp_path, directory=".")
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "db.example.test").write_text(GOOD)
    assert settings(tmp_path, directory="ok", file_pattern="db.{zone}").pattern == "db.{zone}"


def test_file_without_origin_needs_zone(tmp_path: Path) -> None:
    no_origin = "\n".join(GOOD.splitlines()[1:]) + "\n"
    (tmp_path / "db.example").write_text(no_origin)
    with pytest.raises(ValidationError, match="add an \\$ORIGIN line, or set 'zone'"):
        settings(tmp_path, file="db.example")
    assert settings(tmp_path, file="db.example", zone="Example.Test").zone == "example.test."


def test_zone_must_match_the_file(tmp_path: Path) -> None:
    (tmp_path / "example.test.zone").write_text(GOOD)
    with pytest.raises(ValidationError, match=r"no SOA record at other\.test\."):
        settings(tmp_path, file="example.test.zone", zone="other.test")


def test_two_soa_records_are_refused(tmp_path: Path) -> None:
    (tmp_path / "example.test.zone").write_text(GOOD + "@ IN SOA ns2 hostmaster 2 1 1 1 1\n")
    with pytest.raises(
        ValidationError, match=r"line \d+: a second SOA record for @; a name has at most one"
    ):
        settings(tmp_path, file="example.test.zone")


def test_include_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "example.test.zone").write_text(GOOD + "$INCLUDE extra.zone\n")
    with pytest.raises(ValidationError, match=r"line \d+: zone file directive '\$INCLUDE'"):
        settings(tmp_path, file="example.test.zone")


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"reload_command": []}, "must name a program"),
        ({"reload_command": ["rndc", "reload", "{zonename}"]}, "unknown placeholder"),
        ({"file_pattern": "zone.db"}, "must contain {zone} once"),
        ({"file_pattern": "../{zone}"}, "inside 'directory'"),
        ({"reload_timeout": 0}, "greater than 0"),
        ({"typo": 1}, "Extra inputs"),
    ],
)
def test_bad_values(tmp_path: Path, table: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        settings(tmp_path, directory=".", **table)
