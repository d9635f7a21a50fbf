"""``status`` right after a failover of many domains reads each journal step once: the
switch readiness of N domains used to re-parse every step of the operation per domain
(N² parses: minutes at N = 2000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxflip.config import DomainConfig
from mxflip.engine import switch_readiness, switch_readiness_all
from mxflip.journal import Journal, JournalStep, OperationLog
from mxflip.observe import DomainStatus, ProfileMatch
from mxflip.records import MX, RRset

PRIMARY = frozenset({MX(10, "mx1.proxy.test."), MX(20, "mx2.proxy.test.")})
BACKUP = frozenset({MX(10, "mail.direct.test.")})


def test_each_step_is_parsed_once_for_every_domain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 1000
    domains = [
        DomainConfig(
            name=f"d{i}.scale.test.",
            provider="lab",
            zone="scale.test.",
            primary=PRIMARY,
            backup=BACKUP,
        )
        for i in range(count)
    ]
    journal = Journal(tmp_path / "journal.jsonl")
    t = 1_800_000_000.0
    log = OperationLog(journal, "20270115T080000Z-abcdef", lambda: t)
    steps = [
        {
            "domain": d.name,
            "zone": d.zone,
            "provider": d.provider,
            "before": {"name": d.name, "ttl": 3600, "records": ["10 mx1.proxy.test."]},
            "prelower": None,
            "after": {"name": d.name, "ttl": 60, "records": ["10 mail.direct.test."]},
        }
        for d in domains
    ]
    log.intent(
        kind="failover",
        target="backup",
        reason="test",
        command=[],
        plan_hash="x",
        steps=steps,
        options={},
    )
    log.phase("switch", "done")
    log.result("done")
    parsed: list[str] = []
    original = JournalStep.from_json

    def counting(data: dict[str, object]) -> JournalStep:
        parsed.append(str(data["domain"]))
        return original(data)

    monkeypatch.setattr(JournalStep, "from_json", staticmethod(counting))
    view = journal.read()
    live = {d.name: RRset(d.name, 60, BACKUP) for d in domains}
    statuses = [
        DomainStatus(d, live[d.name], None, ProfileMatch("backup"), (), ()) for d in domains
    ]
    flags = switch_readiness_all(statuses, view, t + 30)
    assert len(parsed) == count  # once per step, not once per step per domain
    assert view.unsettled() == [] and len(parsed) == count  # the same parse serves again
    # Switched 30 s ago from a 3600 s TTL: caches of the old set last another 3570 s.
    assert {(f.lowered_ttl, f.switch_ready, f.ready_at) for f in flags.values()} == {
        (True, False, t + 3600)
    }
    assert switch_readiness(statuses[7], view, t + 3601).switch_ready
