"""What start-up loads (the figures are in bench/bench_startup.py): `mxflip providers`
and `mxflip validate` load no provider SDK and no rich, and adapter discovery agrees with
importlib.metadata."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from mxflip.entrypoints import ENTRY_POINT_GROUP, installed_providers
from mxflip.testing.memory import register_memory_provider

ROOT = Path(__file__).resolve().parents[1]
SDKS = ("boto3", "botocore", "cloudflare", "httpx", "pygments", "rich")
LAB_KEY = 'key "mxflip-lab" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n'


def loaded_by(*argv: str) -> tuple[list[str], str]:
    """Run the CLI in a fresh interpreter; the SDK packages it imported, and its stdout."""
    code = (
        "import io, sys, contextlib\n"
        "from mxflip.cli import main\n"
        f"sys.argv = ['mxflip', *{list(argv)!r}]\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n        main()\n    except SystemExit as exc:\n        code = exc.code\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r})\n"
        "print(repr((bad, code, out.getvalue())))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    bad, exit_code, stdout = eval(result.stdout.strip().splitlines()[-1])
    assert exit_code in (0, None), result.stderr + stdout
    return bad, stdout


def test_providers_loads_no_sdk_and_no_rich() -> None:
    bad, out = loaded_by("providers")
    assert bad == []
    assert "mxflip_route53:Route53Provider" in out
    bad, out = loaded_by("providers", "--json")
    assert bad == [] and json.loads(out)["command"] == "providers"


@pytest.mark.parametrize("example", ["rfc2136", "route53", "cloudflare"])
def test_validate_loads_no_sdk_and_no_rich(example: str, tmp_path: Path) -> None:
    folder = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, folder)
    (folder / "lab.key").write_text(LAB_KEY)
    bad, out = loaded_by("-c", str(folder / "mxflip.toml"), "validate")
    assert bad == []
    assert out.startswith(f"{folder / 'mxflip.toml'}: OK — ")


def test_discovery_agrees_with_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(register_memory_provider(tmp_path)))
    expected = {
        ep.name: (ep.value, ep.dist.name if ep.dist else None, ep.dist.version if ep.dist else None)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
    }
    found = {p.type: (p.target, p.distribution, p.version) for p in installed_providers().values()}
    assert found == expected
    assert "memory" in found and "rfc2136" in found
