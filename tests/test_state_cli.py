"""Shared state through the CLI: two "machines" (two state homes, one bucket) see one
history and one lock, roll back each other's operations; ``unlock --force``;
``state migrate --to s3``; the ``[state]`` table; a bucket lost in the middle of an
operation; canary state in the bucket. Real BIND9 for DNS, moto's S3 on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from mxflip.config import load_config
from mxflip.engine import Engine
from mxflip.plan import PlanOptions
from mxflip.records import RRset
from mxflip.state import open_state
from mxflip.state.lease import Lease
from mxflip.state.s3 import PENDING_NAME, S3Backend
from tests.support.bind import BindServer
from tests.support.cli import inject, invoke
from tests.support.engine import (
    BACKUP,
    PRIMARY,
    FakeClock,
    domain_names,
    live,
    ready,
    seed,
)
from tests.support.moto_route53 import FAKE_SECRET_KEY
from tests.support.moto_s3 import (
    MotoServer,
    S3FaultProxy,
    moto_s3_fixture,  # noqa: F401  (the moto_s3 fixture)
    new_bucket,
    s3_environment,
)
from tests.test_engine_cli import write_config as engine_cli_config


@pytest.fixture(scope="module")
def sbind(engine_bind: BindServer) -> BindServer:
    # The worker's shared engine BIND9 (root conftest): this module's tests use fresh names.
    return engine_bind


@pytest.fixture(autouse=True)
def injected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeClock:
    clock = inject(monkeypatch)
    s3_environment(monkeypatch, tmp_path)
    return clock


def write_config(
    folder: Path, bind: BindServer, names: list[str], state: str, canary: str = ""
) -> Path:
    """The CLI tests' configuration (one per "machine" folder) plus these tables."""
    folder.mkdir(parents=True, exist_ok=True)
    return engine_cli_config(folder, bind, names, f"{state}\n{canary}")


def s3_table(url: str, bucket: str, lease: str = "2m") -> str:
    return f"""[state]
backend = "s3"
bucket = "{bucket}"
prefix = "team/mx"
region = "us-east-1"
endpoint_url = "{url}"
lease = "{lease}"
"""


def run(path: Path, *args: str) -> Result:
    return invoke(["-c", str(path), *args])


@pytest.fixture
def machines(
    sbind: BindServer, moto_s3: MotoServer, tmp_path: Path
) -> tuple[Path, Path, list[str], dict[str, RRset]]:
    names = domain_names(2)
    seeded = seed(sbind, names)
    bucket = new_bucket(moto_s3)
    table = s3_table(moto_s3.url, bucket)
    return (
        write_config(tmp_path / "alice", sbind, names, table),
        write_config(tmp_path / "bob", sbind, names, table),
        names,
        seeded,
    )


def test_two_machines_share_history_and_roll_back_each_other(
    sbind: BindServer, machines: tuple[Path, Path, list[str], dict[str, RRset]]
) -> None:
    alice, bob, names, seeded = machines
    done = run(alice, "failover", "--all", "--yes", "--now", "--reason", "incident 42")
    assert done.exit_code == 0, done.output
    assert live(sbind, names) == {n: RRset.of(n, 60, BACKUP) for n in names}
    assert not (alice.parent / "state" / "journal.jsonl").exists()  # no local journal

    seen = run(bob, "history", "--json")
    assert seen.exit_code == 0, seen.output
    (op,) = json.loads(seen.stdout)["operations"]
    assert op["kind"] == "failover" and op["outcome"] == "done" and op["reason"] == "incident 42"

    back = run(bob, "rollback", "--yes")
    assert back.exit_code == 0, back.output
    assert live(sbind, names) == seeded
    ops = json.loads(run(alice, "history", "--json").stdout)["operations"]
    by_kind = {o["kind"]: o["outcome"] for o in ops}
    assert by_kind == {"failover": "rolled-back", "rollback": "done"}


def test_one_lock_for_the_team(
    machines: tuple[Path, Path, list[str], dict[str, RRset]],
    sbind: BindServer,
    injected: FakeClock,
) -> None:
    alice, bob, names, seeded = machines
    backend = open_state(load_config(alice))
    # The commands judge the lease on the injected clock (the Runtime's), as this does.
    lease = Lease(backend, "lock", duration=120, clock=injected, command="mxflip x")
    lease.acquire()
    assert lease.info is not None
    refused = run(bob, "failover", "--all", "--yes", "--now")
    assert refused.exit_code == 3
    assert "another mxflip operation is running: pid " in refused.stderr
    assert f"mxflip unlock --force {lease.info.id} --reason TEXT" in refused.stderr
    assert live(sbind, names) == seeded

    no_force = run(bob, "unlock", lease.info.id, "--reason", "gone")
    assert no_force.exit_code == 2 and "pass --force" in no_force.stderr
    wrong = run(bob, "unlock", "--force", "0000", "--reason", "gone")
    assert wrong.exit_code == 2 and f"is {lease.info.id}, not 0000" in wrong.stderr
    removed = run(bob, "unlock", "--force", lease.info.id, "--reason", "alice's laptop died")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout.startswith(f"Removed lock {lease.info.id} (")
    ok = run(bob, "failover", "--all", "--yes", "--now")
    assert ok.exit_code == 0, ok.output


def test_an_expired_lease_is_taken_over_on_the_injected_clock(
    machines: tuple[Path, Path, list[str], dict[str, RRset]],
    sbind: BindServer,
    injected: FakeClock,
) -> None:
    """No sleeping: the Runtime's clock decides when a crashed holder's lease ran out."""
    alice, bob, names, seeded = machines
    lease = Lease(
        open_state(load_config(alice)), "lock", duration=120, clock=injected, command="mxflip x"
    )
    lease.acquire()
    injected.sleep(119)
    assert run(bob, "failover", "--all", "--yes", "--now").exit_code == 3
    assert live(sbind, names) == seeded
    injected.sleep(1)
    ok = run(bob, "failover", "--all", "--yes", "--now")
    assert ok.exit_code == 0, ok.output
    ops = json.loads(run(alice, "history", "--json").stdout)["operations"]
    assert [o["kind"] for o in ops] == ["failover"]


def test_the_local_lock_is_dated_by_the_injected_clock(tmp_path: Path, injected: FakeClock) -> None:
    from mxflip.journal import Journal, iso, lock_record

    journal = Journal(tmp_path / "journal.jsonl", clock=injected)
    with journal.lock("mxflip failover"):
        held = lock_record(journal.lock_path)
        assert held is not None and held["since"] == iso(injected.now())


def test_state_table_is_validated(tmp_path: Path, sbind: BindServer) -> None:
    names = domain_names(1)
    cases = {
        '[state]\nbackend = "s3"\n': 'state.bucket: backend = "s3" needs a bucket',
        '[state]\nbackend = "gcs"\n': "state.backend",
        '[state]\nlease = "soon"\n': "state.lease",
        '[state]\nlease = "2h"\n': "state.lease: must be between 1 second and 1 hour",
        '[state]\nbucket = "mxflip-state"\nbuckett = "y"\n': "state.buckett",
    }
    for table, message in cases.items():
        path = write_config(tmp_path / "c", sbind, names, table)
        result = run(path, "validate")
        assert result.exit_code == 2, (table, result.output)
        assert message in result.stderr, (table, result.stderr)
        assert "Traceback" not in result.output
    ok = write_config(tmp_path / "ok", sbind, names, s3_table("http://127.0.0.1:9", "bkt"))
    state = load_config(ok).state
    assert (state.backend, state.prefix, state.lease) == ("s3", "team/mx", 120.0)
    assert load_config(write_config(tmp_path / "d", sbind, names, "")).state.backend == "local"


def test_unreachable_bucket_is_one_line_exit_3(tmp_path: Path, sbind: BindServer) -> None:
    from tests.support.ports import free_port

    names = domain_names(1)
    seed(sbind, names)
    table = s3_table(f"http://127.0.0.1:{free_port()}", "mxflip-down")
    path = write_config(tmp_path / "m", sbind, names, table)
    for args in (("failover", "--all", "--yes", "--now"), ("history",)):
        result = run(path, *args)
        assert result.exit_code == 3, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mxflip: error: cannot reach http://")
        assert FAKE_SECRET_KEY not in result.output


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI builds its S3 backend with real retry waits; these tests never wait."""
    defaults = S3Backend.__init__.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "sleep", lambda seconds: None)


def test_migrate_copies_once_and_never_overwrites(
    sbind: BindServer, moto_s3: MotoServer, tmp_path: Path
) -> None:
    names = domain_names(2)
    seed(sbind, names)
    local = write_config(tmp_path / "m", sbind, names, "")
    assert run(local, "failover", "--all", "--yes", "--now").exit_code == 0
    assert run(local, "rollback", "--yes").exit_code == 0
    local_history = json.loads(run(local, "history", "--json").stdout)["operations"]
    canary_file = tmp_path / "m" / "canary.json"
    canary_file.write_text(json.dumps({"version": 1, "canaries": [], "paths": []}))

    bucket = new_bucket(moto_s3)
    canary = f'[canary]\nmaildir = "{tmp_path}"\nstate_file = "{canary_file}"\n'
    shared = write_config(tmp_path / "m", sbind, names, s3_table(moto_s3.url, bucket), canary)
    first = run(shared, "state", "migrate", "--to", "s3", "--json")
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["journal"]["copied"] > 0 and doc["journal"]["already_present"] == 0
    assert doc["documents"]["copied"] == ["canary"]
    again = json.loads(run(shared, "state", "migrate", "--to", "s3", "--json").stdout)
    assert again["journal"] == {
        "copied": 0,
        "already_present": doc["journal"]["copied"],
        "unreadable_lines": 0,
    }
    assert again["documents"] == {"copied": [], "kept": ["canary"]}
    shared_history = json.loads(run(shared, "history", "--json").stdout)["operations"]
    assert shared_history == local_history
    text = run(shared, "state", "migrate", "--to", "s3").stdout
    assert "it exists there and is never overwritten" in text

    refused = run(write_config(tmp_path / "n", sbind, names, ""), "state", "migrate", "--to", "s3")
    assert refused.exit_code == 2 and 'backend = "s3"' in refused.stderr


def test_bucket_lost_mid_operation_finishes_reports_and_next_command_settles(
    sbind: BindServer, moto_s3: MotoServer, tmp_path: Path
) -> None:
    """The intent reaches the bucket; then every write fails. The failover still finishes
    through the engine, the records are kept locally and the command exits 3 saying so;
    the next command (a rollback from the same machine) writes them first."""
    names = domain_names(2)
    seeded = seed(sbind, names)
    bucket = new_bucket(moto_s3)
    proxy = S3FaultProxy(moto_s3.port).start()
    try:
        path = write_config(tmp_path / "m", sbind, names, s3_table(proxy.url, bucket))
        config = load_config(path)
        backend = S3Backend(config.state, home=tmp_path / "m" / "state", sleep=lambda s: None)

        class CutAfterIntent:
            def __call__(self, name: str) -> None:
                if name == "intent":
                    proxy.inject("PutObject", 500, "InternalError", "down", times=1000)
                    proxy.inject("DeleteObject", 500, "InternalError", "down", times=1000)

        engine = Engine(
            config, backend, clock=FakeClock(), readiness=ready, failpoint=CutAfterIntent()
        )
        with backend.lock("mxflip failover --all"):
            plan = asyncio.run(
                engine.plan_switch("failover", list(config.domains.values()), PlanOptions())
            )
            result = asyncio.run(engine.execute(plan))
        engine.close()
        assert result.outcome == "done"
        assert live(sbind, names) == {n: RRset.of(n, 60, BACKUP) for n in names}
        assert any(PENDING_NAME in p for p in backend.problems)
        assert any("could not be released" in p for p in backend.problems)
        pending = (tmp_path / "m" / "state" / PENDING_NAME).read_text().splitlines()
        assert json.loads(pending[-1])["record"]["type"] == "result"

        proxy.reset()
        # The lock left behind expires by itself; a person who knows may remove it.
        lock = backend.get("lock")
        assert lock is not None
        assert run(path, "unlock", "--force", lock.data["id"], "--reason", "mine").exit_code == 0
        back = run(path, "rollback", "--yes")
        assert back.exit_code == 0, back.output
        assert live(sbind, names) == seeded
        assert not (tmp_path / "m" / "state" / PENDING_NAME).exists()
        ops = json.loads(run(path, "history", "--json").stdout)["operations"]
        assert {o["kind"]: o["outcome"] for o in ops} == {
            "failover": "rolled-back",
            "rollback": "done",
        }
    finally:
        proxy.stop()


def test_cli_reports_lost_records_with_exit_3(
    sbind: BindServer, moto_s3: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = domain_names(1)
    seed(sbind, names)
    bucket = new_bucket(moto_s3)
    proxy = S3FaultProxy(moto_s3.port).start()
    try:
        path = write_config(tmp_path / "m", sbind, names, s3_table(proxy.url, bucket))
        original = Engine.execute

        def cut(self: Engine, plan: Any, **kw: Any) -> Any:
            def failpoint(name: str) -> None:
                if name == "intent":
                    proxy.inject("PutObject", 500, "InternalError", "down", times=1000)

            self.failpoint = failpoint
            return original(self, plan, **kw)

        monkeypatch.setattr(Engine, "execute", cut)
        result = run(path, "failover", "--all", "--yes", "--now", "--json")
        assert result.exit_code == 3, result.output
        doc = json.loads(result.stdout)
        assert doc["operation"]["outcome"] == "done" and doc["exit_code"] == 3
        assert any(PENDING_NAME in p for p in doc["state_problems"])
        assert f"mxflip: error: {doc['state_problems'][0]}" in result.stderr
    finally:
        proxy.stop()


def test_canary_state_lives_in_the_bucket(moto_s3: MotoServer, tmp_path: Path) -> None:
    from mxflip.canary.state import CanaryRecord, CanaryState, SharedCanaryStore, canary_store
    from mxflip.config import parse_config

    bucket = new_bucket(moto_s3)
    raw: dict[str, Any] = {
        "providers": {"lab": {"type": "zonefile", "directory": str(tmp_path)}},
        "defaults": {"provider": "lab", "primary": PRIMARY, "backup": BACKUP},
        "domains": {"example.com": {"zone": "example.com"}},
        "canary": {"maildir": str(tmp_path)},
        "state": {
            "backend": "s3",
            "bucket": bucket,
            "region": "us-east-1",
            "endpoint_url": moto_s3.url,
        },
    }
    config = parse_config(raw, path=tmp_path / "mxflip.toml")
    store = canary_store(config)
    assert isinstance(store, SharedCanaryStore)
    with store.update() as state:
        state.records.append(CanaryRecord("tok", "example.com", "live", "live", "c@x", 1.0))
    other = canary_store(config)
    assert [r.token for r in other.load().records] == ["tok"]
    stale = canary_store(config)
    stale.load()
    with other.update() as state:
        state.records.clear()
    from mxflip.canary import CanaryError

    with pytest.raises(CanaryError, match="changed by another run"):
        stale.save(CanaryState())


def test_unlock_on_the_local_backend_explains(tmp_path: Path, sbind: BindServer) -> None:
    path = write_config(tmp_path / "m", sbind, domain_names(1), "")
    result = run(path, "unlock", "--force", "abc", "--reason", "x")
    assert result.exit_code == 2
    assert "the local lock needs no force: it is released when its holder process ends" in (
        result.stderr
    )
