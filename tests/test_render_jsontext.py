"""The ``--json`` writer gives exactly what ``json.dumps(document, indent=2)`` gives."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mxflip.render.jsontext import dumps_indented


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from([Colour.RED, Level.HIGH, math.nan, -math.inf, 'é\u2028\x00"\\'])
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(st.integers() | st.booleans() | st.none(), inner, max_size=3)
    ),
    max_leaves=30,
)


@given(documents)
def test_the_same_text_as_json_dumps_with_indent_2(document: Any) -> None:
    assert dumps_indented(document) == json.dumps(document, indent=2)


def test_what_json_refuses_is_refused_the_same_way() -> None:
    loop: list[Any] = []
    loop.append(loop)
    for bad in ({"when": object()}, {"x": loop}):
        try:
            json.dumps(bad, indent=2)
        except (TypeError, ValueError) as expected:
            try:
                dumps_indented(bad)
            except type(expected) as got:
                assert str(got) == str(expected)
            else:
                raise AssertionError("dumps_indented accepted what json.dumps refuses")
