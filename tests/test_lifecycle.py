"""The operation lifecycle: never stuck. The six ways an operation used to stay unsettled
when its zones were already where ``resume``/``rollback`` would take them ("Nothing to
do."), each ending with the operation settled, the reason journalled, and the next change
allowed; the journal's own order; ambiguous ID prefixes.

Each scenario runs a real failover against a private BIND9 with a fault injected (a
failpoint or a failing provider call), then drives the CLI as a responder would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from mxflip.config import load_config
from mxflip.engine import Engine
from mxflip.errors import MxflipError, ProviderError
from mxflip.journal import Journal
from mxflip.plan import PlanOptions
from mxflip.records import RRset
from tests.support.bind import BindServer
from tests.support.cli import inject, invoke
from tests.support.engine import (
    BACKUP,
    PRIMARY,
    Crash,
    Failpoints,
    FakeClock,
    FlakyProvider,
    domain_names,
    lab_provider,
    live,
    ready,
    seed,
)
from tests.test_engine_cli import write_config


@pytest.fixture(scope="module")
def lbind(engine_bind: BindServer) -> BindServer:
    # The worker's shared engine BIND9 (root conftest): this module's tests use fresh names.
    return engine_bind


@pytest.fixture(autouse=True)
def injected(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return inject(monkeypatch)


def run(path: Path, *args: str) -> Result:
    return invoke(["-c", str(path), *args])


def journal_at(path: Path) -> Journal:
    return Journal(path.parent / "state" / "journal.jsonl")


def failover_with_fault(
    bind: BindServer,
    path: Path,
    clock: FakeClock,
    *,
    failpoint: Failpoints | None = None,
    provider: FlakyProvider | None = None,
) -> None:
    """A failover (--now) of every configured domain with one fault injected."""
    config = load_config(path)
    engine = Engine(
        config,
        journal_at(path),
        clock=clock,
        readiness=ready,
        providers={"lab": provider or lab_provider(bind)},
        failpoint=failpoint,
        verify_timeout=10,
    )
    plan = asyncio.run(
        engine.plan_switch("failover", list(config.domains.values()), PlanOptions(now=True))
    )
    with contextlib.suppress(MxflipError, Crash, KeyboardInterrupt):
        asyncio.run(engine.execute(plan))
    engine.close()


def after(names: list[str]) -> dict[str, RRset | None]:
    return {n: RRset.of(n, 60, BACKUP) for n in names}


def assert_settled_and_next_allowed(
    bind: BindServer, path: Path, names: list[str], op_id: str, settle: str
) -> None:
    """``settle`` finds nothing to write, exits 0, settles ``op_id`` with a journalled
    reason, and the next change (a failback) is allowed."""
    result = run(path, settle, "--yes")
    assert result.exit_code == 0, result.output
    state = "before" if settle == "rollback" else "after"
    assert f"Nothing to do: every zone is already in operation {op_id}'s {state}-state." in (
        result.stdout
    )
    assert f"Operation {op_id} is settled (journalled as " in result.stdout
    view = journal_at(path).read()
    op = view.find(op_id)
    assert op is not None and op.notes, "the settle was not journalled"
    note = op.notes[-1]
    assert note["why"].startswith("nothing to do: every zone is already in")
    assert note["outcome"] == ("rolled-back" if settle == "rollback" else "done")
    settler = view.operations[-1]
    assert settler.kind == settle and settler.outcome == "noop"
    assert settler.intent["parent"] == op_id and note["by"] == settler.id
    assert view.unsettled() == []
    # The next change for any domain is allowed again (and does change DNS).
    on_backup = state == "after"
    nxt = run(path, "failback" if on_backup else "failover", "--all", "--yes", "--now")
    assert nxt.exit_code == 0, nxt.output
    expected = PRIMARY if on_backup else BACKUP
    assert live(bind, names) == {n: RRset.of(n, 60, expected) for n in names}


@pytest.fixture
def lab(lbind: BindServer, tmp_path: Path) -> tuple[Path, list[str]]:
    names = domain_names(2)
    seed(lbind, names)
    return write_config(tmp_path, lbind, names), names


def test_interrupted_during_verification_then_resume_has_nothing_to_do(
    lbind: BindServer, lab: tuple[Path, list[str]], injected: FakeClock
) -> None:
    # Ctrl-C while a lagging secondary is still polled: every zone is switched already.
    path, names = lab
    failover_with_fault(
        lbind, path, injected, failpoint=Failpoints("verify:before", KeyboardInterrupt())
    )
    (op,) = journal_at(path).read().operations
    assert op.outcome == "interrupted" and op.unsettled
    assert live(lbind, names) == after(names)
    assert_settled_and_next_allowed(lbind, path, names, op.id, "resume")


def test_killed_between_the_write_and_switch_done_then_resume(
    lbind: BindServer, lab: tuple[Path, list[str]], injected: FakeClock
) -> None:
    path, names = lab
    failover_with_fault(lbind, path, injected, failpoint=Failpoints("switch:served", Crash()))
    (op,) = journal_at(path).read().operations
    assert op.result is None and op.unsettled
    assert_settled_and_next_allowed(lbind, path, names, op.id, "resume")


def test_torn_result_line_then_resume(
    lbind: BindServer, lab: tuple[Path, list[str]], injected: FakeClock
) -> None:
    path, names = lab
    failover_with_fault(lbind, path, injected)
    journal = journal_at(path)
    data = journal.path.read_bytes()
    journal.path.write_bytes(data[: len(data) - 25])  # the result line torn by a crash
    (op,) = journal.read().operations
    assert op.outcome == "interrupted" and journal.read().skipped_lines == 1
    refused = run(path, "failback", "--all", "--yes", "--now")
    assert refused.exit_code == 3 and f"mxflip resume {op.id}" in refused.stderr
    assert_settled_and_next_allowed(lbind, path, names, op.id, "resume")


@pytest.mark.parametrize(
    "error",
    [
        "UPDATE refused: REFUSED",  # BIND refusing the UPDATE
        "Cloudflare: TTL must be between 60 and 86400 seconds",  # below the provider's minimum
        "the UPDATE for zone engine.test. is too big (65535 octets)",  # over ~470 domains
    ],
)
def test_refused_first_write_blocks_nothing_and_rollback_settles_it(
    lbind: BindServer, lab: tuple[Path, list[str]], injected: FakeClock, error: str
) -> None:
    path, names = lab
    seeded = live(lbind, names)

    class Refusing(FlakyProvider):
        def apply(self, zone: str, changes: object) -> object:  # type: ignore[override]
            raise ProviderError(error)

    failover_with_fault(lbind, path, injected, provider=Refusing(lab_provider(lbind)))
    (op,) = journal_at(path).read().operations
    assert op.outcome == "failed" and set(op.result["states"].values()) == {"before"}  # type: ignore[index]
    assert live(lbind, names) == seeded
    # Nothing was changed, so nothing is half-way: status does not warn, nothing refuses.
    assert journal_at(path).read().unsettled() == []
    dry = run(path, "failover", "--all", "--now", "--dry-run")
    assert dry.exit_code == 0 and "may have left zones half-way" not in dry.stderr
    # An explicit rollback of it has nothing to write, settles it and says why.
    assert_settled_and_next_allowed(lbind, path, names, op.id, "rollback")


def test_reload_failed_then_run_by_hand_then_resume(
    lbind: BindServer, lab: tuple[Path, list[str]], injected: FakeClock
) -> None:
    # The zone was written but the provider reported a failure (a zone-file reload that
    # failed and was then run by hand): every zone is in its after-state.
    path, names = lab
    flaky = FlakyProvider(lab_provider(lbind), fail_on=1, kinds=("apply",), land=True)
    failover_with_fault(lbind, path, injected, provider=flaky)
    (op,) = journal_at(path).read().operations
    assert op.outcome == "failed" and op.unsettled
    assert set(op.result["states"].values()) <= {"after", "before"}  # type: ignore[index]
    # The second zone's write was never attempted: finish it by hand too.
    seed(lbind, names, BACKUP, 60)
    assert_settled_and_next_allowed(lbind, path, names, op.id, "resume")


def test_settling_noop_in_json(
    lbind: BindServer, lab: tuple[Path, list[str]], injected: FakeClock
) -> None:
    import json

    path, _ = lab
    failover_with_fault(lbind, path, injected, failpoint=Failpoints("switch:served", Crash()))
    (op,) = journal_at(path).read().operations
    result = run(path, "resume", "--yes", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 0 and doc["operation"]["outcome"] == "noop"
    assert doc["operation"]["note"].startswith("nothing to do: every zone is already in")
    assert journal_at(path).read().find(op.id).outcome == "done"  # type: ignore[union-attr]


# ----------------------------------------------------------------------- journal order


def test_the_last_operation_is_the_last_in_the_journal_not_the_highest_id(
    lbind: BindServer, lab: tuple[Path, list[str]], injected: FakeClock
) -> None:
    path, names = lab
    assert run(path, "failover", "--all", "--yes", "--now").exit_code == 0
    assert run(path, "failback", "--all", "--yes", "--now").exit_code == 0
    journal = journal_at(path)
    # Same second, random suffixes: make the later operation's ID sort first.
    first, second = (op.id for op in journal.read().operations)
    text = journal.path.read_text()
    swapped = text.replace(first, "\0").replace(second, first[:-6] + "000000").replace("\0", first)
    journal.path.write_text(swapped)
    ops = journal.read().operations
    assert [o.kind for o in ops] == ["failover", "failback"]
    assert ops[1].id < ops[0].id
    result = run(path, "rollback", "--yes", "--json")
    assert result.exit_code == 0, result.output
    # The failback (the last one done) was undone: the backup set is live again.
    assert live(lbind, names) == after(names)
    history = run(path, "history", "--json")
    import json

    kinds = [o["kind"] for o in json.loads(history.stdout)["operations"]]
    assert kinds == ["rollback", "failback", "failover"]  # newest first, by journal order


def test_ambiguous_operation_prefix_is_refused_listing_the_candidates(
    lbind: BindServer, lab: tuple[Path, list[str]], injected: FakeClock
) -> None:
    path, names = lab
    assert run(path, "failover", "--all", "--yes", "--now").exit_code == 0
    assert run(path, "failback", "--all", "--yes", "--now").exit_code == 0
    ids = [op.id for op in journal_at(path).read().operations]
    before = live(lbind, names)
    result = run(path, "rollback", "20", "--yes")
    assert result.exit_code == 2
    assert f"operation ID prefix '20' is ambiguous: it matches {ids[0]}, {ids[1]}" in (
        result.stderr
    )
    assert live(lbind, names) == before
    unique = run(path, "rollback", ids[1], "--yes")
    assert unique.exit_code == 0, unique.output


# ------------------------------------------- item 3: nameservers, item 4: prepare


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback UDP and TCP port that never answers (a black-holed nameserver)."""
    import socket

    from tests.support.ports import free_port

    port = free_port()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(0)  # never accepted: connections hang, like a filtered port
    yield f"127.0.0.1:{port}"
    udp.close()
    tcp.close()


def test_unreachable_verification_nameserver_blocks_while_planning(
    lbind: BindServer, tmp_path: Path, blackhole: str, injected: FakeClock
) -> None:
    names = domain_names(2)
    seeded = seed(lbind, names)
    path = write_config(tmp_path, lbind, names)
    text = path.read_text().replace(
        f'nameservers = ["{lbind.address}"]', f'nameservers = ["{lbind.address}", "{blackhole}"]'
    )
    path.write_text(text)
    # The blackhole costs each command its --timeout (2 s by default): half a second is
    # plenty for the loopback BIND9 to answer.
    dry = run(path, "failover", "--all", "--dry-run", "--timeout", "0.5")
    assert dry.exit_code == 0
    assert f"verification nameserver {blackhole} does not answer" in dry.stdout
    real = run(path, "failover", "--all", "--yes", "--timeout", "0.5")
    assert real.exit_code == 3
    assert "refusing to apply the plan: " in real.stderr
    assert "[nameserver-unreachable]" in real.stderr
    # Refused before anything was written or waited for.
    assert live(lbind, names) == seeded and injected.slept == 0
    assert journal_at(path).read().operations == []
    # --force --reason accepts the risk (verification will still fail there later).
    config = load_config(path)
    engine = Engine(config, journal_at(path), clock=injected, readiness=ready, dns_timeout=0.5)
    forced = asyncio.run(
        engine.plan_switch(
            "failover", list(config.domains.values()), PlanOptions(force=True, reason="known")
        )
    )
    assert not forced.blockers and {f.code for _, f in forced.forced} == {"nameserver-unreachable"}
    engine.close()


def test_countdown_starts_once_every_nameserver_serves_the_lowered_ttl(
    lbind: BindServer, tmp_path: Path, injected: FakeClock
) -> None:
    from mxflip.dnsview import ServerAnswer
    from mxflip.rollout import Event, default_query

    names = domain_names(1)
    seeded = seed(lbind, names)
    path = write_config(tmp_path, lbind, names)
    config = load_config(path)
    lag = {"polls": 3}

    async def lagging(batch, recursive, timeout):  # type: ignore[no-untyped-def]
        answers = await default_query(batch, recursive, timeout)
        if lag["polls"] > 0:  # a secondary still serving the old TTL
            lag["polls"] -= 1
            return [
                [ServerAnswer(a.server, seeded[name], None, a.address) for a in got]
                for (_, name), got in zip(batch, answers, strict=True)
            ]
        return answers

    events: list[Event] = []
    engine = Engine(
        config,
        journal_at(path),
        clock=injected,
        readiness=ready,
        query=lagging,
        events=events.append,
    )
    plan = asyncio.run(engine.plan_switch("failover", list(config.domains.values()), PlanOptions()))
    result = asyncio.run(engine.execute(plan))
    assert result.outcome == "done"
    lagged = [e for e in events if e.kind == "pending" and e.phase == "prelower-wait"]
    assert len(lagged) == 1
    assert "still serving the old TTL" in lagged[0].message
    assert lagged[0].data["pending"] == [f"{names[0].rstrip('.')} at {lbind.address}"]
    # Three polls 2 s apart lagged, then the full old TTL was waited from there.
    countdown = sum(injected.sleeps[3:])
    assert injected.sleeps[:3] == [2.0, 2.0, 2.0]
    assert 3600 <= countdown <= 3600 + 60
    engine.close()


def test_prepare_is_never_blocked_by_the_live_hosts_health(
    lbind: BindServer, lab: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.engine import not_ready

    path, names = lab
    monkeypatch.setattr("mxflip.readiness.default_readiness", lambda config: not_ready)
    result = run(path, "prepare", "--yes")
    assert result.exit_code == 0, result.output
    assert live(lbind, names) == {n: RRset.of(n, 60, PRIMARY) for n in names}
    (op,) = journal_at(path).read().operations
    assert op.kind == "prepare" and op.outcome == "done"


# ----------------------------------------------------------------- item 5: SIGTERM


def test_sigterm_interrupts_like_ctrl_c_and_is_journalled(
    lbind: BindServer, lab: tuple[Path, list[str]]
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    path, _ = lab
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("MXFLIP_JOURNAL", None)
    # A planned failover waits out the old TTL (an hour): SIGTERM arrives during the wait.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mxflip",
            "-c",
            str(path),
            "failover",
            "--all",
            "--yes",
            "--skip-readiness",
            "--reason",
            "sigterm test",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    journal = journal_at(path)
    try:
        deadline = time.monotonic() + 60
        while True:
            ops = journal.read().operations if journal.path.exists() else []
            if ops and any(p.get("phase") == "prelower-wait" for p in ops[0].phases):
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "never reached the wait"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err.decode()
    assert "mxflip: interrupted" in err.decode()
    (op,) = journal.read().operations
    assert op.result is not None and op.result["outcome"] == "interrupted"
    assert set(op.result["states"].values()) == {"prelowered"}
