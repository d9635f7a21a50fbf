"""Many domains in one zone on a real BIND9: RFC 2136 switches in several atomic parts,
a switch interrupted between parts is settled by resume or rollback, and status through a
nameserver that drops a share of the queries reports slow answers, never a false
"unreachable"."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import dns.query
import dns.rdatatype
import pytest

from mxflip.config import Config, parse_config
from mxflip.engine import Engine
from mxflip.journal import Journal
from mxflip.net.dns import DNSClient, Limits, make_question
from mxflip.plan import PlanOptions
from mxflip.provider import Change
from mxflip.records import RRset
from mxflip.status import gather_status
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from mxflip_rfc2136._client import RFC2136Client as UpdateClient
from tests.support.bind import BindServer
from tests.support.engine import Crash, FakeClock, ready
from tests.support.lossy import LossyProxy
from tests.support.ports import free_port
from tests.support.scale import BACKUP, PRIMARY, SCALE_ZONE, ScaleLab, scale_names

OPTS = PlanOptions(now=True, reason="scale test")


def served(bind: BindServer) -> dict[str, tuple[int, frozenset[str]]]:
    """Every MX RRset BIND serves in the zone, by one zone transfer (independent of mxflip)."""
    out: dict[str, tuple[int, frozenset[str]]] = {}
    for message in dns.query.xfr("127.0.0.1", SCALE_ZONE, port=bind.port, relativize=False):
        for rrset in message.answer:
            if rrset.rdtype == dns.rdatatype.MX:
                name = rrset.name.to_text()
                ttl, old = out.get(name, (rrset.ttl, frozenset()))
                out[name] = (ttl, old | {r.to_text() for r in rrset})
    return out


def config_for(
    lab: ScaleLab, tmp_path: Path, names: Sequence[str], nameserver: str | None = None
) -> Config:
    """The lab's config through the API; ``nameserver``: where verification asks (default:
    BIND itself)."""
    assert lab.bind is not None
    return parse_config(
        {
            "providers": {
                "lab": {
                    "type": "rfc2136",
                    "server": lab.bind.address,
                    "tsig_key_file": str(lab.bind.key_file),
                }
            },
            "sets": {"proxy": PRIMARY, "direct": BACKUP},
            "defaults": {
                "provider": "lab",
                "zone": SCALE_ZONE,
                "primary": "proxy",
                "backup": "direct",
                "nameservers": [nameserver or lab.bind.address],
            },
            "domains": {n.rstrip("."): {} for n in names},
            "journal": {"path": str(tmp_path / "journal.jsonl")},
        },
        path=tmp_path / "mxflip.toml",
    )


class CrashAfter(UpdateClient):
    """The UPDATE client of a process killed after its ``parts``-th UPDATE landed."""

    parts = 2
    sent = 0

    def update(self, zone: str, message: object) -> None:
        if self.sent == self.parts:
            raise Crash("killed between two parts")
        super().update(zone, message)
        self.sent += 1


def provider_for(
    bind: BindServer, *, max_update_bytes: int, crash: bool = False
) -> RFC2136Provider:
    settings = RFC2136Settings(
        server=bind.address, tsig_key_file=bind.key_file, max_update_bytes=max_update_bytes
    )
    if not crash:
        built = RFC2136Provider.from_settings("lab", settings)
        assert isinstance(built, RFC2136Provider)
        return built
    from mxflip.hostport import parse_hostport

    client = CrashAfter(parse_hostport(bind.address, 53), settings.key(), timeout=5.0)
    return RFC2136Provider("lab", client, max_update_bytes=max_update_bytes)


# ------------------------------------------------------------------ 2,000 domains


@pytest.fixture(scope="module")
def big_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleLab]:
    lab = ScaleLab(tmp_path_factory.mktemp("scale-2000"), 2000).start()
    yield lab
    lab.stop()


def test_2000_domains_fail_over_and_roll_back_in_parts(big_lab: ScaleLab, tmp_path: Path) -> None:
    assert big_lab.bind is not None
    config = config_for(big_lab, tmp_path, big_lab.names)
    journal = Journal(tmp_path / "journal.jsonl")
    engine = Engine(config, journal, clock=FakeClock(), readiness=ready)
    try:
        plan = asyncio.run(engine.plan_switch("failover", list(config.domains.values()), OPTS))
        notes = [f.message for f in plan.findings if f.code == "split-write"]
        assert len(notes) == 1 and "scale.test is switched in" in notes[0]
        parts = int(notes[0].split(" switched in ")[1].split()[0])
        assert parts > 1  # 2,000 domains do not fit in one 64 KiB UPDATE
        result = asyncio.run(engine.execute(plan))
        assert result.outcome == "done"
        live = served(big_lab.bind)
        assert len(live) == 2000
        assert set(live.values()) == {(60, frozenset(BACKUP))}

        rollback = asyncio.run(engine.plan_rollback(None, OPTS))
        assert asyncio.run(engine.execute(rollback)).outcome == "done"
        assert set(served(big_lab.bind).values()) == {(3600, frozenset(PRIMARY))}
    finally:
        engine.close()


# ------------------------------------------------------------------ interrupted between parts


@pytest.fixture
def small_lab(tmp_path: Path) -> Iterator[ScaleLab]:
    lab = ScaleLab(tmp_path / "lab", 90).start()
    yield lab
    lab.stop()


@pytest.mark.parametrize("settle", ["resume", "rollback"])
def test_switch_killed_between_parts_is_settled_per_part(
    small_lab: ScaleLab, tmp_path: Path, settle: str
) -> None:
    bind = small_lab.bind
    assert bind is not None
    names = small_lab.names
    config = config_for(small_lab, tmp_path, names)
    journal = Journal(tmp_path / "journal.jsonl")
    crashing = provider_for(bind, max_update_bytes=2048, crash=True)
    engine = Engine(
        config,
        journal,
        clock=FakeClock(),
        readiness=ready,
        providers={"lab": crashing},
    )
    plan = asyncio.run(engine.plan_switch("failover", list(config.domains.values()), OPTS))
    changes = [Change(s.name, s.before, s.after) for s in plan.changes]
    chunks = crashing._chunks(SCALE_ZONE, changes)
    assert len(chunks) >= 4
    with pytest.raises(Crash):
        asyncio.run(engine.execute(plan))

    # Killed after two parts: exactly the names of parts 1 and 2 are switched, every
    # other name is untouched (records and TTL).
    switched = {c.name for chunk in chunks[:2] for c in chunk}
    live = served(bind)
    for name in names:
        want = (60, frozenset(BACKUP)) if name in switched else (3600, frozenset(PRIMARY))
        assert live[name] == want, name
    assert journal.read().unsettled()[0].outcome == "interrupted"

    fresh = Engine(
        config,
        journal,
        clock=FakeClock(),
        readiness=ready,
        providers={"lab": provider_for(bind, max_update_bytes=2048)},
    )
    try:
        if settle == "resume":
            settled = asyncio.run(fresh.plan_resume(None, PlanOptions(reason="scale test")))
            goal = (60, frozenset(BACKUP))
        else:
            settled = asyncio.run(fresh.plan_rollback(None, PlanOptions(reason="scale test")))
            goal = (3600, frozenset(PRIMARY))
        assert not settled.blockers
        # Only the names still to move are written.
        moving = {s.name for s in settled.changes}
        assert moving == (set(names) - switched if settle == "resume" else switched)
        assert asyncio.run(fresh.execute(settled)).outcome == "done"
        assert set(served(bind).values()) == {goal}
        assert journal.read().unsettled() == []
    finally:
        fresh.close()


def test_a_change_too_big_for_one_update_is_refused_before_sending(
    small_lab: ScaleLab,
) -> None:
    assert small_lab.bind is not None
    provider = provider_for(small_lab.bind, max_update_bytes=1024)
    name = small_lab.names[0]
    big = RRset.of(name, 300, [f"{i} mx{i}.some-long-host-name.example.net." for i in range(40)])
    with pytest.raises(Exception) as info:
        provider.apply(SCALE_ZONE, [Change(name, RRset.of(name, 3600, PRIMARY), big)])
    message = str(info.value)
    assert "nothing was sent" in message and "max_update_bytes" in message
    assert "bad answer" not in message and "DNS server" not in message
    assert served(small_lab.bind)[name] == (3600, frozenset(PRIMARY))


# ------------------------------------------------------------------ lossy nameserver


def test_status_through_a_lossy_nameserver_reports_slow_not_unreachable(
    small_lab: ScaleLab, tmp_path: Path
) -> None:
    bind = small_lab.bind
    assert bind is not None
    proxy = LossyProxy(bind.port).start()
    try:
        config = config_for(small_lab, tmp_path, small_lab.names, proxy.address)
        report = gather_status(config, list(config.domains.values()), dns_timeout=7.0)
    finally:
        proxy.stop()
    assert proxy.dropped > 0
    answers = {s.domain.name: s.nameservers[0].answer for s in report.domains}
    assert all(a.error is None and not a.unreachable for a in answers.values())
    for name, answer in answers.items():
        # A dropped query is asked again; on a busy machine an undropped one may be too
        # (its answer came after the first try's timeout): slow, never unreachable.
        assert answer.tries >= proxy.drops_for(name) + 1, name
        assert answer.slow or proxy.drops_for(name) == 0
    assert int(report.exit_code) == 0
    slow_lines = [f for s in report.domains for f in s.findings if "slow" in f]
    assert len(slow_lines) == sum(a.slow for a in answers.values()) > 0


def test_a_silent_server_is_unreachable_and_given_up_on() -> None:
    """A bound port that never answers: every question is tried three times, then the
    server counts as down and the rest are not sent (bounded, not N x the budget)."""
    import socket

    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", port))

        async def ask_all() -> list[object]:
            client = DNSClient(0.35, Limits(per_server=4, give_up_after=4))
            return list(
                await asyncio.gather(
                    *(
                        client.ask(make_question(n, "MX", recursive=False), "127.0.0.1", port)
                        for n in scale_names(40)
                    )
                )
            )

        replies = asyncio.run(asyncio.wait_for(ask_all(), 30))
    assert all(r.unreachable and r.response is None for r in replies)
    asked = [r for r in replies if r.tries == 3]
    skipped = [r for r in replies if r.tries == 0]
    assert asked and skipped and len(asked) + len(skipped) == 40
    assert all("no answer to 3 tries within 0.35 s" in r.error for r in asked)
    assert all("not asked" in r.error for r in skipped)
