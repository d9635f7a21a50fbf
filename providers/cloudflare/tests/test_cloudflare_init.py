"""``mxflip init`` through the Cloudflare adapter, against the fake API: every zone the
token can read, the written file validates and ``status`` shows every domain primary."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare
from tests.support.ports import free_port


def test_init_reads_every_zone_of_the_token(
    fake: FakeCloudflare, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    fake.add_zone("other.test")
    for name, content in (
        ("example.test", "mx0a-001.pphosted.com"),
        ("drill.example.test", "mx0a-001.pphosted.com"),
        ("other.test", "aspmx.l.google.com"),
    ):
        zone = "other.test" if name == "other.test" else "example.test"
        fake.put_record(zone, name, content, 10, ttl=1 if name == "other.test" else 3600)
    cfg = tmp_path / "mxflip.toml"
    # status must ask loopback only, not the zone's (real) Cloudflare nameservers.
    cfg.write_text(
        f'[providers.cf]\ntype = "cloudflare"\nbase_url = "{fake.base_url}"\n\n'
        f'[defaults]\nnameservers = ["127.0.0.1:{free_port()}"]\n'
    )
    runner = CliRunner()
    result = runner.invoke(
        cli, ["-c", str(cfg), "init", "--provider", "cf", "--backup", "10 mail.{domain}"]
    )
    assert result.exit_code == 0, result.output
    text = cfg.read_text()
    assert token not in text
    assert "Proofpoint's, an inbound mail filter" in text
    assert "Google's, an inbound mail filter" in text
    doc = tomllib.loads(text)
    assert sorted(doc["domains"]) == ["drill.example.test", "example.test", "other.test"]
    assert doc["domains"]["other.test"]["ttl"] == 300  # automatic TTL, as served
    assert runner.invoke(cli, ["-c", str(cfg), "validate"]).exit_code == 0
    status = runner.invoke(cli, ["-c", str(cfg), "status", "--json", "--timeout", "0.2"])
    domains = json.loads(status.stdout)["domains"]
    assert {d["domain"]: (d["active"], d["provider_error"]) for d in domains} == {
        "drill.example.test": ("primary", None),
        "example.test": ("primary", None),
        "other.test": ("primary", None),
    }


def test_init_with_a_wrong_token_is_one_line(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "wrong-token")
    cfg = tmp_path / "mxflip.toml"
    cfg.write_text(f'[providers.cf]\ntype = "cloudflare"\nbase_url = "{fake.base_url}"\n')
    result = CliRunner().invoke(cli, ["-c", str(cfg), "init", "--provider", "cf"])
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1
    assert "Cloudflare does not accept the API token (list zones)" in result.stderr
    assert "wrong-token" not in result.stderr


def test_init_with_a_pinned_zone_id_reads_the_named_domain(
    fake: FakeCloudflare, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zone_id serves one zone and lists none: --domain names what to read."""
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    fake.put_record("example.test", "example.test", "aspmx.l.google.com", 1, 3600)
    cfg = tmp_path / "mxflip.toml"
    cfg.write_text(
        f'[providers.cf]\ntype = "cloudflare"\nbase_url = "{fake.base_url}"\n'
        f'zone_id = "{fake.zone_id("example.test")}"\n'
    )
    runner = CliRunner()
    refused = runner.invoke(cli, ["-c", str(cfg), "init", "--provider", "cf"])
    assert refused.exit_code == 2
    assert "pinned to one zone by zone_id (name that zone with --zone)" in refused.stderr
    result = runner.invoke(
        cli, ["-c", str(cfg), "init", "--provider", "cf", "--domain", "example.test", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    doc = tomllib.loads(result.stdout)
    assert doc["sets"]["primary"] == ["1 aspmx.l.google.com"]
    assert "(zones: example.test)" in result.stdout
