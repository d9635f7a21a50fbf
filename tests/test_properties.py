"""Property-based tests (Hypothesis): no config value and no journal line, however
malformed, yields a traceback or an ``internal error``; each is accepted or refused with
mxflip's own error."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from mxflip.config import parse_config
from mxflip.errors import MxflipError
from mxflip.journal import parse_journal
from mxflip.render import history_json, render_history
from tests.support.configs import GOOD, KEY_TEXT

# Scalars TOML can hold, with the awkward ones made likely: control characters, huge
# and non-finite numbers, names and addresses with tricks in them.
TRICKY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\n",
        "a\r\nDATA",
        "x\x00y",
        "\x1b[2J",
        "postmaster@{domain}",
        "pm@example.test>",
        "10 mx.example.test",
        "127.0.0.1:53",
        "[::1]:5300",
        "1h30m",
        "nan",
        "inf",
        "9" * 400,
        "ex\u00e4mple.test",
        "-1",
        "{zone}",
    ]
)
SCALARS = st.one_of(
    TRICKY_TEXT,
    st.text(max_size=30),
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
WHERE = st.sampled_from(
    [
        ("defaults", "ttl"),
        ("defaults", "failover_ttl"),
        ("defaults", "nameservers"),
        ("defaults", "probe_recipient"),
        ("defaults", "canary_address"),
        ("defaults", "primary"),
        ("providers", "lab", "server"),
        ("providers", "lab", "timeout"),
        ("providers", "lab", "tsig_key_name"),
        ("domains", "example.test", "zone"),
        ("domains", "example.test", "backup"),
        ("probe", "helo"),
        ("probe", "mail_from"),
        ("probe", "timeout"),
        ("probe", "connect"),
        ("probe", "resolvers"),
        ("probe", "slow_step"),
        ("canary", "fail_after"),
        ("canary", "warn_after"),
        ("canary", "from"),
        ("canary", "imap_folder"),
        ("journal", "path"),
        ("sets", "proxy"),
    ]
)


def _put(raw: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    table = raw
    for part in where[:-1]:
        table = table.setdefault(part, {})
    table[where[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(WHERE, VALUES), min_size=1, max_size=3))
def test_any_config_value_is_accepted_or_one_mxflip_error(
    tmp_path_factory: Any, edits: list[tuple[tuple[str, ...], Any]]
) -> None:
    folder: Path = tmp_path_factory.getbasetemp() / "prop-config"
    folder.mkdir(exist_ok=True)
    (folder / "lab.key").write_text(KEY_TEXT)
    (folder / "lab.key").chmod(0o600)
    raw = tomllib.loads(GOOD)
    for where, value in edits:
        if where[0] == "canary":
            raw.setdefault("canary", {"maildir": str(folder / "md")})
        _put(raw, where, value)
    try:
        config = parse_config(raw, path=folder / "mxflip.toml")
    except MxflipError as exc:
        text = str(exc)
        assert text and "\n" not in text and "\x1b" not in text
        return
    for d in config.domains.values():  # what was accepted holds nothing that bends a wire
        for value in (d.probe_recipient, d.canary_address, d.name):
            assert value is None or not any(c in value for c in "\r\n\x00")


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["intent", "phase", "result", "note", "op1", "10 mx.test.", "x.test."]),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "op",
                    "type",
                    "ts",
                    "steps",
                    "domain",
                    "zone",
                    "provider",
                    "before",
                    "after",
                    "prelower",
                    "name",
                    "ttl",
                    "records",
                    "outcome",
                    "states",
                    "phase",
                    "status",
                    "kind",
                    "parent",
                    "options",
                    "user",
                    "host",
                    "by",
                    "time",
                    "x",
                ]
            ),
            inner,
            max_size=8,
        )
    ),
    max_leaves=20,
)
RECORD = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["op1", "op2", 7, None]),
        "type": st.sampled_from(["intent", "phase", "result", "note", "other", 3]),
    },
    optional={
        "ts": JSON_SCALARS,
        "steps": JSON,
        "kind": JSON_SCALARS,
        "states": JSON,
        "outcome": JSON_SCALARS,
        "phase": JSON_SCALARS,
        "status": JSON_SCALARS,
        "options": JSON,
        "parent": JSON_SCALARS,
    },
)
LINE = st.one_of(
    RECORD.map(lambda r: json.dumps(r).encode()),
    JSON.map(lambda r: json.dumps(r).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"{", b"NaN", b'{"op":"op1","type":"intent","ts":Infinity}', b"\xff\xfe"]),
)


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(LINE, max_size=8))
def test_any_journal_lines_are_read_or_skipped_never_a_crash(lines: list[bytes]) -> None:
    view = parse_journal(b"\n".join(lines))
    assert view.skipped_lines == len(view.problems)
    for op in view.operations:
        # Everything the commands ask of an operation works on what was kept.
        _ = (op.kind, op.time, op.outcome, op.finished, op.unsettled, op.changed_anything)
        _ = (op.steps, op.phase_done_at("prelower"))
    view.unsettled()
    json.dumps(history_json(view, None))
    render_history(Console(file=io.StringIO(), width=120), view, None)
    for op in view.operations:
        assert view.find(op.id) is not None
