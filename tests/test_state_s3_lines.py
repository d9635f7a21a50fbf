"""The S3 backend keeps each record's journal line as written (its own writes, the lines of
its cache file) instead of serialising records again: the bytes it uses must be exactly
what serialising them would give, for any record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mxflip.state.base import encode
from mxflip.state.s3 import S3Backend, snapshot_body
from tests.support.moto_s3 import state_config

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
records = st.dictionaries(st.text(), values, max_size=6).map(
    lambda r: {**r, "op": "op1", "type": "phase"}
)
keys = st.text(min_size=1).map(lambda k: f"team/journal/{k}")


@given(st.lists(st.tuples(keys, records), min_size=1, max_size=5))
def test_the_snapshot_body_is_the_encoded_snapshot(pairs: list[tuple[str, dict[str, Any]]]) -> None:
    upto = pairs[-1][0]
    expected = encode({"format": 1, "upto": upto, "records": [[k, r] for k, r in pairs]})
    assert snapshot_body(upto, [(k, encode(r)) for k, r in pairs]) == expected


@given(st.lists(st.tuples(keys, records), min_size=1, max_size=5))
def test_cache_file_lines_give_each_record_as_encoded(
    tmp_path_factory: Any, pairs: list[tuple[str, dict[str, Any]]]
) -> None:
    home: Path = tmp_path_factory.mktemp("home")
    writer = S3Backend(state_config("http://127.0.0.1:9", "b"), home=home, client=object())
    writer._unsaved.update(dict(pairs))
    writer._save_cache()  # the cache file, as close() writes it
    reader = S3Backend(state_config("http://127.0.0.1:9", "b"), home=home, client=object())
    reader._load_disk_cache()
    for key, record in dict(pairs).items():
        assert reader._line(key) == encode(record)
        assert json.loads(reader._lines[key]) == record  # taken from the line, not re-made
