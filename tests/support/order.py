"""The suite's longest tests start first (a pytest plugin, registered by the root conftest).

With ``--dist worksteal`` the run ends when the last worker finishes, and a worker that
starts a long test late is the last one: the 2,000-domain scale test (7-12 s) used to
start about 10 s before the end while the other workers ran out of tests and waited. Run
first, the long tests overlap everything else, and the end of the run is made of short
tests that the workers steal from each other evenly. Only the order changes.
"""

from __future__ import annotations

import pytest

#: Tests of 4 s or more on the 2-core machine (``--durations``), longest first. A name
#: that no longer exists only drops out of the ordering.
LONGEST = (
    "tests/test_scale.py::test_2000_domains_fail_over_and_roll_back_in_parts",
    "tests/test_watch_shared.py::"
    "test_two_watchers_one_leader_takeover_after_sigkill_and_one_alert_per_change",
    "tests/test_properties.py::test_any_journal_lines_are_read_or_skipped_never_a_crash",
    "tests/test_scale.py::test_status_through_a_lossy_nameserver_reports_slow_not_unreachable",
    "tests/test_watch_shared.py::"
    "test_state_lives_in_the_bucket_and_approve_uses_the_shared_proposals",
    "tests/test_state_s3.py::test_two_processes_race_for_the_lock_exactly_one_wins",
)


@pytest.hookimpl(trylast=True)  # after pytest groups the tests by their fixtures
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(LONGEST)))  # stable
