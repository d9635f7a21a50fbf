"""``mxflip init`` and ``mxflip doctor`` through the Cloudflare adapter, against the fake
Cloudflare API on loopback (the real SDK talks HTTP to it): every zone the token can read,
the written file validates and ``status`` shows every domain primary; doctor's provider
checks name the fix for a wrong token, a read-only token and a missing variable.

These drive the core (the CLI, doctor), so they live with the core's tests: adapters'
own tests import only the public API."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from mxflip.doctor import check_config, check_providers, run_doctor
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare, fake, token
from tests.support.ports import free_port

__all__ = ["fake", "token"]  # the fake API's fixtures


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


def config(tmp_path: Path, fake: FakeCloudflare) -> Path:
    path = tmp_path / "mxflip.toml"
    path.write_text(
        f'[providers.cf]\ntype = "cloudflare"\nbase_url = "{fake.base_url}"\n\n'
        '[domains."example.test"]\nprovider = "cf"\nprimary = ["10 a.example.net"]\n'
        'backup = ["10 b.example.net"]\n'
    )
    return path


def test_good_token_reads_and_may_change(
    fake: FakeCloudflare, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    report = asyncio.run(
        run_doctor(str(config(tmp_path, fake)), checks=[check_config, check_providers])
    )
    assert [(r.title, r.status) for r in report.results] == [
        ("configuration", "ok"),
        ("provider cf: read in example.test", "ok"),
        ("provider cf: change records in example.test", "ok"),
    ]
    assert report.exit_code == 0
    assert not [r for r in fake.requests if r.method == "POST" and "batch" not in r.path]


def test_wrong_token_fails_with_the_fix(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "cf-wrong-token")
    report = asyncio.run(
        run_doctor(str(config(tmp_path, fake)), checks=[check_config, check_providers])
    )
    (provider,) = [r for r in report.results if r.check == "provider"]
    assert provider.status == "fail"
    assert provider.title == "provider cf: reach example.test"
    assert "does not accept the API token" in provider.detail
    assert provider.fix is not None and "copied whole" in provider.fix
    assert "cf-wrong-token" not in repr(report)
    assert report.exit_code == 3


def test_token_without_edit_fails_the_change_check(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_token("read-only", frozenset({"zone:read", "dns:read"}))
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "read-only")
    report = asyncio.run(
        run_doctor(str(config(tmp_path, fake)), checks=[check_config, check_providers])
    )
    change = report.results[-1]
    assert (change.title, change.status) == ("provider cf: change records in example.test", "fail")
    assert change.fix is not None and "Zone:DNS:Edit" in change.fix


def test_missing_token_variable_fails_with_the_fix(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    report = asyncio.run(
        run_doctor(str(config(tmp_path, fake)), checks=[check_config, check_providers])
    )
    (provider,) = [r for r in report.results if r.check == "provider"]
    assert provider.status == "fail"
    assert "holds no Cloudflare API token" in provider.detail
    assert provider.fix is not None and "export CLOUDFLARE_API_TOKEN" in provider.fix
