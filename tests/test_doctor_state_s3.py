"""``mxflip doctor``'s state check with ``[state] backend = "s3"``, on moto's S3 server
(loopback): the shared journal reads and the shared lock is taken; a missing bucket names
its fix."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mxflip.doctor import check_config, check_state, run_doctor
from tests.support.configs import GOOD, write_config
from tests.support.moto_route53 import MotoServer
from tests.support.moto_s3 import moto_s3_fixture, new_bucket, s3_environment  # noqa: F401


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s3_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("MXFLIP_JOURNAL", str(tmp_path / "state" / "journal.jsonl"))


def config(folder: Path, url: str, bucket: str) -> Path:
    return write_config(
        folder,
        GOOD + f'\n[state]\nbackend = "s3"\nbucket = "{bucket}"\nprefix = "team"\n'
        f'region = "us-east-1"\nendpoint_url = "{url}"\n',
    )


def test_shared_state_is_read_and_locked(moto_s3: MotoServer, tmp_path: Path) -> None:
    bucket = new_bucket(moto_s3)
    report = asyncio.run(
        run_doctor(str(config(tmp_path, moto_s3.url, bucket)), checks=[check_config, check_state])
    )
    (state,) = [r for r in report.results if r.check == "state"]
    assert (state.title, state.status) == (f"shared state s3://{bucket}/team", "ok")


def test_missing_bucket_fails_with_a_fix(moto_s3: MotoServer, tmp_path: Path) -> None:
    report = asyncio.run(
        run_doctor(
            str(config(tmp_path, moto_s3.url, "mxflip-no-such-bucket")),
            checks=[check_config, check_state],
        )
    )
    (state,) = [r for r in report.results if r.check == "state"]
    assert state.status == "fail"
    assert state.fix
    assert report.exit_code == 3
