"""``mxflip doctor``'s provider checks through the Cloudflare adapter, against the fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxflip.doctor import check_config, check_providers, run_doctor
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare


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
    report = run_doctor(str(config(tmp_path, fake)), checks=[check_config, check_providers])
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
    report = run_doctor(str(config(tmp_path, fake)), checks=[check_config, check_providers])
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
    report = run_doctor(str(config(tmp_path, fake)), checks=[check_config, check_providers])
    change = report.results[-1]
    assert (change.title, change.status) == ("provider cf: change records in example.test", "fail")
    assert change.fix is not None and "Zone:DNS:Edit" in change.fix


def test_missing_token_variable_fails_with_the_fix(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    report = run_doctor(str(config(tmp_path, fake)), checks=[check_config, check_providers])
    (provider,) = [r for r in report.results if r.check == "provider"]
    assert provider.status == "fail"
    assert "holds no Cloudflare API token" in provider.detail
    assert provider.fix is not None and "export CLOUDFLARE_API_TOKEN" in provider.fix
