"""The suite's ordering plugin names tests that exist: a renamed long test would silently
drop out of the ordering and end the run late again (see tests/support/order.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.order import LONGEST

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("nodeid", LONGEST)
def test_each_long_test_named_first_exists(nodeid: str) -> None:
    path, _, name = nodeid.partition("::")
    source = (ROOT / path).read_text()
    assert f"\ndef {name}(" in source, f"{nodeid} is gone: update tests/support/order.py"


def test_the_long_tests_sort_first_and_the_rest_keep_their_order() -> None:
    from tests.support.order import pytest_collection_modifyitems

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    items = [Item("tests/a.py::one"), Item(LONGEST[1]), Item("tests/b.py::two"), Item(LONGEST[0])]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        LONGEST[0],
        LONGEST[1],
        "tests/a.py::one",
        "tests/b.py::two",
    ]
