"""Key files read as BIND reads them: comments only outside strings, every algorithm
(hmac-md5 included) usable against a real server."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxflip import Change, RRset
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from mxflip_rfc2136.keyfile import ALGORITHMS, KeyFileError, parse_keys, read_key_file
from tests.support.bind import BindServer, zone_text

_B64 = st.binary(min_size=1, max_size=64).map(lambda b: base64.b64encode(b).decode())
_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}\.?", fullmatch=True)
_COMMENTS = st.sampled_from(
    ["", "# hash comment\n", "// slash comment\n", "/* block\n comment */", '/* "quoted" */']
)


def test_secret_with_double_slash_is_kept_whole(tmp_path: Path) -> None:
    secret = "ab//cd/+ef//gh0="  # valid base64 with two '//'
    path = tmp_path / "k.key"
    path.write_text(
        f'key "k" {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}"; // trailing\n}};\n'
    )
    key = read_key_file(path)
    assert key.secret == secret
    assert base64.b64decode(key.secret)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=_NAMES,
    algorithm=st.sampled_from(ALGORITHMS),
    secret=_B64,
    before=_COMMENTS,
    inside=_COMMENTS,
    after=_COMMENTS,
    upper=st.booleans(),
)
def test_generated_key_files_round_trip(
    name: str, algorithm: str, secret: str, before: str, inside: str, after: str, upper: bool
) -> None:
    alg = algorithm.upper() if upper else algorithm
    text = (
        f'{before}key "{name}" {{ {inside}algorithm {alg};\n'
        f'  secret "{secret}";{inside} }};{after}\n'
        # another statement BIND allows in the same file is skipped
        'server 192.0.2.1 { keys { "x"; }; };\n'
    )
    keys = parse_keys(text, Path("gen.key"))
    assert [(k.name, k.algorithm, k.secret) for k in keys] == [(name, algorithm, secret)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('key "k" { algorithm hmac-sha256; secret "abc', "never ends"),
        ('key "k" { algorithm hmac-sha256; secret "YWJj" }', "expected ';'"),
        ("/* open", "never ends"),
        ('key "k" { algorithm hmac-sha256; secret "not base64!"; };', "is not base64"),
    ],
)
def test_malformed_files_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=message) as info:
        read_key_file(path)
    assert "YWJj" not in str(info.value) and "not base64!" not in str(info.value)


def _keygen() -> str:
    found = shutil.which("tsig-keygen") or (
        "/usr/sbin/tsig-keygen" if Path("/usr/sbin/tsig-keygen").exists() else None
    )
    if found is None:
        pytest.skip("tsig-keygen (bind9-utils) is not installed")
    return found


def test_many_tsig_keygen_keys_load(tmp_path: Path) -> None:
    """Every key tsig-keygen writes loads with exactly its secret (about 1 % of base64
    secrets contain '//', which a comment-stripping regex cut)."""
    keygen = _keygen()

    def generate(name_and_alg: tuple[str, str]) -> str:
        name, alg = name_and_alg
        return subprocess.run(
            [keygen, "-a", alg, name], capture_output=True, text=True, check=True, timeout=10
        ).stdout

    jobs = [(f"k{i}-{alg}", alg) for i in range(50) for alg in ALGORITHMS]
    # Each run is mostly process start-up, not CPU: a few at a time (results in order).
    with ThreadPoolExecutor(max_workers=6) as pool:
        texts = list(pool.map(generate, jobs))
    text = "".join(texts)
    keys = parse_keys(text, tmp_path / "all.key")
    assert len(keys) == len(texts)
    for key, source in zip(keys, texts, strict=True):
        assert f'secret "{key.secret}";' in source
        assert f"algorithm {key.algorithm};" in source


@pytest.fixture(scope="module")
def md5_bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(
        tmp_path_factory.mktemp("md5-bind"),
        {"md5.test.": zone_text("md5.test.")},
        algorithm="hmac-md5",
    ).start()
    yield server
    server.stop()


@pytest.mark.real_server
def test_hmac_md5_key_reads_and_writes(md5_bind: BindServer) -> None:
    provider = RFC2136Provider.from_settings(
        "lab", RFC2136Settings(server=md5_bind.address, tsig_key_file=md5_bind.key_file)
    )
    rrset = RRset.of("md5.md5.test.", 300, ["10 mx.example.net."])
    provider.apply("md5.test.", [Change(rrset.name, None, rrset)])
    assert provider.read("md5.test.", [rrset.name]) == {rrset.name: rrset}
