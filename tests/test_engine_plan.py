"""Planning is pure: the same observations give the same plan and hash; safety findings."""

from __future__ import annotations

import pytest

from mxflip.config import Config, parse_config
from mxflip.journal import JournalStep
from mxflip.observe import DomainStatus, match_profile
from mxflip.plan import PlanOptions, ReadinessVerdict, plan_rollback, plan_switch
from mxflip.records import RRset
from tests.support.engine import BACKUP, PRIMARY


@pytest.fixture
def config(tmp_path) -> Config:  # type: ignore[no-untyped-def]
    (tmp_path / "k.key").write_text(
        'key "k" {\n\talgorithm hmac-sha256;\n\tsecret "c2VjcmV0LXNlY3JldC1zZWNyZXQ=";\n};\n'
    )
    return parse_config(
        {
            "providers": {
                "lab": {"type": "rfc2136", "server": "127.0.0.1:1", "tsig_key_file": "k.key"}
            },
            "defaults": {"provider": "lab", "primary": PRIMARY, "backup": BACKUP},
            "domains": {"a.test": {}, "b.test": {}},
        },
        path=tmp_path / "mxflip.toml",
    )


def status(
    config: Config, name: str, rrset: RRset | None, error: str | None = None
) -> DomainStatus:
    d = config.domains[name]
    return DomainStatus(d, rrset, error, match_profile(rrset, d), (), ())


def ready_all(names: list[str]) -> dict[str, ReadinessVerdict]:
    return {n: ReadinessVerdict("ready") for n in names}


def test_same_situation_same_hash_whatever_the_order(config: Config) -> None:
    a = status(config, "a.test.", RRset.of("a.test.", 3600, PRIMARY))
    b = status(config, "b.test.", RRset.of("b.test.", 3600, PRIMARY))
    verdicts = ready_all(["a.test.", "b.test."])
    one = plan_switch("failover", [a, b], "backup", PlanOptions(reason="x"), verdicts)
    two = plan_switch("failover", [b, a], "backup", PlanOptions(reason="y"), verdicts)
    assert one.hash == two.hash
    # What would be written differs: the hash differs.
    c = status(config, "a.test.", RRset.of("a.test.", 1800, PRIMARY))
    three = plan_switch("failover", [c, b], "backup", PlanOptions(), verdicts)
    assert three.hash != one.hash
    assert [p.seconds for p in three.phases if p.name == "prelower-wait"] == [3600]
    restore = plan_switch("failover", [a, b], "backup", PlanOptions(restore_ttl_after=60), verdicts)
    assert restore.hash != one.hash


def test_findings(config: Config) -> None:
    unreadable = status(config, "a.test.", None, "timed out")
    mixed = status(config, "b.test.", RRset.of("b.test.", 3600, ["10 mx1.proxy.test.", *BACKUP]))
    plan = plan_switch(
        "failover",
        [unreadable, mixed],
        "backup",
        PlanOptions(force=True, reason="r"),
        {"b.test.": ReadinessVerdict("degraded", ("slow banner",))},
    )
    codes = {(d, f.code, f.severity) for d, f in plan.all_findings}
    assert ("a.test", "provider-unreadable", "block") in codes
    assert ("b.test", "unexpected-live", "block") in codes
    assert ("b.test", "target-degraded", "warn") in codes
    # --force overrides the mixed set, never an unreadable provider.
    assert [f.code for _, f in plan.blockers] == ["provider-unreadable"]
    assert {f.code for _, f in plan.forced} == {"unexpected-live", "readiness-unknown"}


def test_address_literal_and_alias_targets(config: Config) -> None:
    from mxflip.plan import _target_findings

    s = status(config, "a.test.", RRset.of("a.test.", 3600, PRIMARY))
    bad = RRset.of("a.test.", 60, ["10 192.0.2", "20 mail.a.test"])
    codes = [f.code for f in _target_findings(s, bad, {"mail.a.test.": "x.test."})]
    assert codes == ["address-literal", "cname-target"]


def test_rollback_from_any_state_of_the_operation(config: Config) -> None:
    before = RRset.of("a.test.", 3600, PRIMARY)
    rec = JournalStep(
        "a.test.", "a.test.", "lab", before, before.with_ttl(60), RRset.of("a.test.", 60, BACKUP)
    )
    for live in (before, before.with_ttl(60), rec.after, RRset.of("a.test.", 3600, BACKUP)):
        plan = plan_rollback("op", [rec], [status(config, "a.test.", live)], PlanOptions())
        assert not plan.blockers
        assert plan.steps[0].after == before
    other = RRset.of("a.test.", 3600, ["10 else.test."])
    plan = plan_rollback("op", [rec], [status(config, "a.test.", other)], PlanOptions())
    assert [f.code for _, f in plan.blockers] == ["changed-since"]
