"""The README's RFC 2136 walkthrough, run as written: start the lab BIND9 with the
example's script, then ``mxflip status`` with the example's configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from mxflip.config import load_config
from tests.support.bind import named_binary, unavailable
from tests.support.ports import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


#: Every example that ships a configuration, by folder, and the provider type it uses.
EXAMPLE_CONFIGS = {
    "cloudflare": "cloudflare",
    "rfc2136": "rfc2136",
    "route53": "route53",
    "watch": "rfc2136",
}


def test_every_example_config_is_valid(tmp_path: Path) -> None:
    found = sorted(c.parent.name for c in EXAMPLES.glob("*/mxflip.toml"))
    assert found == sorted(EXAMPLE_CONFIGS)
    for name, provider_type in EXAMPLE_CONFIGS.items():
        folder = tmp_path / name
        shutil.copytree(EXAMPLES / name, folder)
        key = folder / "lab.key"
        if not key.exists():
            key.write_text('key "mxflip-lab" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n')
        config = load_config(folder / "mxflip.toml")
        assert config.domains, f"examples/{name} configures no domain"
        assert {p.type for p in config.providers.values()} == {provider_type}


@pytest.mark.real_server
def test_rfc2136_walkthrough(tmp_path: Path) -> None:
    if named_binary() is None:
        unavailable("'named' is not installed")
    lab = tmp_path / "rfc2136"
    shutil.copytree(EXAMPLES / "rfc2136", lab, ignore=shutil.ignore_patterns("lab.key"))
    port = free_port()
    config = lab / "mxflip.toml"
    config.write_text(config.read_text().replace("127.0.0.1:5300", f"127.0.0.1:{port}"))
    env = {**os.environ, "LAB_PORT": str(port), "LAB_DIR": str(tmp_path / "state")}
    named = subprocess.Popen(
        [str(lab / "start-lab.sh")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                q = dns.message.make_query("example.test", "SOA")
                if dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5).answer:
                    break
            except Exception:
                pass
            if named.poll() is not None or time.monotonic() > deadline:
                out = named.stdout.read().decode(errors="replace") if named.stdout else ""
                unavailable(f"start-lab.sh did not bring up named:\n{out[-2000:]}")
            time.sleep(0.1)
        assert (lab / "lab.key").read_text().startswith('key "mxflip-lab"')
        result = subprocess.run(
            ["mxflip", "-c", str(config), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert [(d["domain"], d["active"], d["consistent"]) for d in doc["domains"]] == [
            ("example.test", "primary", True),
            ("lists.example.test", "primary", True),
        ]
    finally:
        named.terminate()
        named.wait(timeout=10)


def test_watch_example_has_a_watch_table_and_no_secret(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "watch", tmp_path / "watch")
    (tmp_path / "watch" / "lab.key").write_text(
        'key "mxflip-lab" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n'
    )
    config = load_config(tmp_path / "watch" / "mxflip.toml")
    assert config.watch is not None and config.watch.notify_env == "MXFLIP_NOTIFY_URLS"
    assert config.watch.notify == ()  # the URLs (secrets) come from the environment
