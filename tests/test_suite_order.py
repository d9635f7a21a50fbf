"""How the suite starts: the ordering plugin names tests that exist (a renamed long test
would silently drop out of the ordering and end the run late again, see
tests/support/order.py), and the rewritten test modules are written ahead of the workers
(tests/support/rewritten.py)."""

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


def test_rewritten_byte_code_is_written_ahead_once(
    pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    from _pytest.assertion.rewrite import PYC_TAIL

    from tests.support.rewritten import write_ahead

    for name in ("tests/test_a.py", "tests/sub/test_b.py", "tests/support/order.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("def test_x():\n    assert 1 + 1 == 2\n")
    (tmp_path / "tests" / "helper.py").write_text("X = 1\n")  # not a test module
    assert write_ahead(pytestconfig, tmp_path) == 3
    written = sorted(p.name for p in tmp_path.rglob(f"*{PYC_TAIL}"))
    assert written == [f"order{PYC_TAIL}", f"test_a{PYC_TAIL}", f"test_b{PYC_TAIL}"]
    assert write_ahead(pytestconfig, tmp_path) == 0  # up to date: nothing to do
