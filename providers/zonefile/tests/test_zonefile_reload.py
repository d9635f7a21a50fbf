"""The reload command: run after a write, placeholders filled, failures explained."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from mxflip import Change, ProviderError, RRset
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings
from tests.support.bind import zone_text

ZONE = "example.test."
NEW = RRset.of(ZONE, 300, ["10 mx1.example.net."])


def provider_with(tmp_path: Path, command: list[str], **extra: object) -> ZoneFileProvider:
    (tmp_path / "example.test.zone").write_text(zone_text(ZONE))
    settings = ZoneFileSettings.model_validate(
        {"directory": str(tmp_path), "reload_command": command, **extra}
    )
    return ZoneFileProvider("files", settings)


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def test_reload_runs_after_the_write_with_placeholders(tmp_path: Path) -> None:
    record = tmp_path / "reload.json"
    # The command sees the file already written: it records its argv and the file's MX.
    code = (
        "import json, sys; "
        "text = open(sys.argv[2]).read(); "
        "json.dump({'argv': sys.argv[1:], 'written': 'mx1.example.net.' in text}, "
        f"open({str(record)!r}, 'w'))"
    )
    provider = provider_with(tmp_path, python(code, "{zone}", "{file}", "zone={zone}"))
    handle = provider.apply(ZONE, [Change(ZONE, None, NEW)])
    zone_file = str((tmp_path / "example.test.zone").resolve())
    assert json.loads(record.read_text()) == {
        "argv": ["example.test", zone_file, "zone=example.test"],
        "written": True,
    }
    assert handle.detail["file"] == zone_file


def test_reload_is_not_run_when_nothing_changed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    provider = provider_with(tmp_path, python(f"open({str(marker)!r}, 'w')"))
    provider.apply(ZONE, [])
    provider.apply(ZONE, [Change(ZONE, None, None)])
    assert not marker.exists()


def test_failing_reload_says_the_file_was_written(tmp_path: Path) -> None:
    code = (
        "import sys; "
        "sys.stderr.write('line one\\nrndc: connect failed: connection refused\\n'); "
        "sys.exit(1)"
    )
    provider = provider_with(tmp_path, python(code))
    with pytest.raises(ProviderError) as info:
        provider.apply(ZONE, [Change(ZONE, None, NEW)])
    message = str(info.value)
    assert "zone file" in message and "was written (serial 2)" in message
    assert "exit status 1" in message
    assert "rndc: connect failed: connection refused" in message
    assert "reload the zone by hand" in message
    assert provider.read(ZONE, [ZONE]) == {ZONE: NEW}


def test_reload_program_missing(tmp_path: Path) -> None:
    provider = provider_with(tmp_path, [str(tmp_path / "no-such-rndc"), "reload"])
    with pytest.raises(ProviderError, match="'no-such-rndc' failed: program not found"):
        provider.apply(ZONE, [Change(ZONE, None, NEW)])


def _gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting for init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


def test_reload_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 100 & echo $! > {pids}; echo $$ >> {pids}; sleep 100"
    provider = provider_with(tmp_path, ["sh", "-c", script], reload_timeout=1)
    with pytest.raises(ProviderError, match="did not finish within 1 s"):
        provider.apply(ZONE, [Change(ZONE, None, NEW)])
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in started), "the reload command left orphans running"


def test_reload_arguments_never_appear_in_messages_or_repr(tmp_path: Path) -> None:
    secret = "hmac-sha256:mxflip:c2VjcmV0LXRzaWcta2V5LXRoYXQtbXVzdC1ub3QtbGVhaw=="
    provider = provider_with(tmp_path, python("import sys; sys.exit(3)", "-y", secret))
    with pytest.raises(ProviderError) as info:
        provider.apply(ZONE, [Change(ZONE, None, NEW)])
    assert secret not in str(info.value)
    assert secret not in repr(info.value)
    assert secret not in repr(provider)
