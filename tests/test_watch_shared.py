"""``mxflip watch`` over the shared state backend: the watch state is a document in the
bucket, two real watchers elect one leader (the other follows and takes over when the
leader is killed), exactly one of them alerts for a change, ``approve`` works against the
shared proposals, ``state migrate`` copies the watch state once. BIND9, relays, a loopback
``json://`` receiver and moto's S3 on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import Result

from mxflip.clock import SystemClock
from mxflip.config import load_config
from mxflip.state import open_state
from mxflip.state.lease import Leader
from mxflip.watch.store import (
    LocalWatchStore,
    Proposal,
    SharedWatchStore,
    WatchState,
    WatchStateConflict,
)
from tests.support.canary_lab import FakeClock, ca
from tests.support.cli import fake_runtime, invoke, use_runtime
from tests.support.moto_s3 import (
    MotoServer,
    child_environment,
    moto_s3_fixture,  # noqa: F401  (the moto_s3 fixture)
    new_bucket,
    s3_environment,
)
from tests.support.ports import free_port
from tests.support.watch_lab import WatchLab, lab

__all__ = ["ca", "lab"]
WATCH = (sys.executable, "-m", "mxflip")


def s3_table(url: str, bucket: str, lease: str = "2m") -> str:
    return (
        f'\n[state]\nbackend = "s3"\nbucket = "{bucket}"\nprefix = "team/mx"\n'
        f'region = "us-east-1"\nendpoint_url = "{url}"\nlease = "{lease}"\n'
    )


def shared_config(lab: WatchLab, moto: MotoServer, watch: str, lease: str = "2m") -> Path:
    path = lab.write(watch)
    path.write_text(path.read_text() + s3_table(moto.url, new_bucket(moto), lease))
    return path


def cli_(config: Path, *args: str) -> Result:
    return invoke(["-c", str(config), *args])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeClock:
    clock = FakeClock()
    use_runtime(monkeypatch, fake_runtime(clock))
    s3_environment(monkeypatch, tmp_path)
    return clock


def test_state_lives_in_the_bucket_and_approve_uses_the_shared_proposals(
    lab: WatchLab, moto_s3: MotoServer, fake: FakeClock
) -> None:
    path = shared_config(
        lab, moto_s3, 'interval = "60s"\non_primary_failing = "propose"\nproposal_ttl = "1h"'
    )
    first = cli_(path, "watch", "--once", "--json")
    doc = json.loads(first.stdout)
    assert (first.exit_code, doc["role"]) == (0, "leader"), first.output
    lab.proxy.handler.drop = lab.proxy2.handler.drop = True
    for _ in range(6):
        fake.t += 60
        result = cli_(path, "watch", "--once", "--json")
    (p,) = json.loads(result.stdout)["proposals"]
    # Nothing local: the state is the bucket's document.
    assert not (lab.folder / "state" / "watch.json").exists()
    backend = open_state(load_config(path))
    try:
        shared = SharedWatchStore(backend).load()
        assert shared.domains[lab.domain].state == "failing"
        assert [q.id for q in shared.proposals] == [p["id"]]
        listed = cli_(path, "proposals", "--json")
        assert json.loads(listed.stdout)["proposals"][0]["id"] == p["id"]
        # Another watcher leads: --once follows, reporting the leader's view and exit code.
        other = Leader(backend, duration=120.0, clock=fake)
        assert other.step()
        fake.t += 60
        follower = cli_(path, "watch", "--once", "--json")
        doc = json.loads(follower.stdout)
        assert (follower.exit_code, doc["role"]) == (1, "follower"), follower.output
        assert doc["leader"].startswith(f"pid {os.getpid()}, ")
        assert [d["state"] for d in doc["domains"]] == ["failing"]
        assert [q["id"] for q in doc["proposals"]] == [p["id"]]
        text = cli_(path, "watch", "--once")
        assert text.stdout.startswith("Follower: another watcher leads and acts (pid ")
        other.resign()
        approved = cli_(path, "approve", p["id"], "--json")
        assert approved.exit_code == 0, approved.output
        assert lab.served() == sorted(lab.backup_set)
        after = SharedWatchStore(backend).load().proposal(p["id"])
        assert after is not None and after.status == "approved" and after.operation
        # A writer that read before another saved is refused, never overwrites.
        a, b = SharedWatchStore(backend), SharedWatchStore(backend)
        a.load(), b.load()
        a.save(WatchState())
        with pytest.raises(WatchStateConflict):
            b.save(WatchState())
    finally:
        backend.close()


def test_migrate_copies_the_watch_state_once_and_never_overwrites(
    lab: WatchLab, moto_s3: MotoServer, fake: FakeClock
) -> None:
    path = shared_config(lab, moto_s3, 'interval = "60s"')
    local = LocalWatchStore(lab.folder / "state" / "watch.json")
    state = WatchState()
    state.domain(lab.domain).state = "suspect"
    state.proposals.append(
        Proposal("abcd1234", lab.domain, "failover", lab.domain, "h", 0.0, 4e9, "evidence")
    )
    local.save(state)
    lease = lab.folder / "state" / "state" / "leader" / "watch.json"
    lease.parent.mkdir(parents=True)
    lease.write_text('{"id": "x", "expires_ts": 4e9}')
    first = cli_(path, "state", "migrate", "--to", "s3", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["documents"]["copied"] == ["watch"]
    backend = open_state(load_config(path))
    try:
        store = SharedWatchStore(backend)
        copied = store.load()
        assert copied.domains[lab.domain].state == "suspect"
        assert [p.id for p in copied.proposals] == ["abcd1234"]
        copied.domains[lab.domain].state = "failing"
        store.save(copied)
        again = json.loads(cli_(path, "state", "migrate", "--to", "s3", "--json").stdout)
        assert again["documents"] == {"copied": [], "kept": ["watch"]}
        assert SharedWatchStore(backend).load().domains[lab.domain].state == "failing"
    finally:
        backend.close()
    listed = cli_(path, "proposals", "--json")
    assert listed.exit_code == 1, listed.output
    assert json.loads(listed.stdout)["proposals"][0]["id"] == "abcd1234"


# ------------------------------------------------------------------ two real watchers


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def _wait(condition, what: str, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds * 10)):  # bounded
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _leads(port: int) -> bool:
    return "mxflip_watch_leader 1.0" in _metrics(port)


def _follows(port: int) -> bool:
    return "mxflip_watch_leader 0.0" in _metrics(port)


def _rounds(port: int) -> float:
    """The watcher's completed rounds (its ``mxflip_watch_rounds_total``; -1: no answer)."""
    for line in _metrics(port).splitlines():
        if line.startswith("mxflip_watch_rounds_total "):
            return float(line.split()[1])
    return -1.0


def _wait_rounds(port: int, more: int, what: str) -> None:
    """Wait (bounded) until the watcher at ``port`` completed ``more`` rounds after now:
    whatever those rounds would send has been sent (a round delivers before it ends)."""
    start = _rounds(port)
    assert start >= 0, f"no metrics from the watcher on port {port}"
    _wait(lambda: _rounds(port) >= start + more, what, seconds=30)


def test_two_watchers_one_leader_takeover_after_sigkill_and_one_alert_per_change(
    lab: WatchLab, moto_s3: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_environment(monkeypatch, tmp_path)
    # The shortest lease the configuration allows (1 s) and a round every half second:
    # the take-over and the rounds asserted below come that much sooner.
    path = shared_config(
        lab, moto_s3, f'interval = "0.5s"\nnotify = ["{lab.receiver.url()}"]', lease="1s"
    )
    env = {
        **child_environment(tmp_path),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            procs.append(
                subprocess.Popen(
                    [*WATCH, "-c", str(path), "watch", "--listen", f"127.0.0.1:{port}"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=env,
                )
            )
        _wait(lambda: all(_metrics(p) for p in ports), "both watchers' first rounds")
        _wait(lambda: _leads(ports[0]) != _leads(ports[1]), "exactly one leader")
        first = 0 if _leads(ports[0]) else 1
        other = 1 - first
        # The other watcher's gauge can lag its own round on a busy machine: wait, bounded.
        _wait(lambda: _follows(ports[other]), "the other watcher to follow")
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[other]}/", timeout=2) as r:
            assert "Follower" in r.read().decode()

        drift = f"mxflip: {lab.domain}: drift: the MX set at the provider"

        def titles(prefix: str) -> list[str]:
            return [a["title"] for a in lab.receiver.alerts() if a["title"].startswith(prefix)]

        lab.set_mx(["10 mail.elsewhere.test."])
        _wait(lambda: titles(drift), "the drift alert")

        # The leader saves what it told people at the end of its round, after sending:
        # killed in between, the next leader sends the alert again (at least once, on
        # purpose: never a lost alert). Kill it once the sent condition is stored.
        def recorded() -> bool:
            backend = open_state(load_config(path))
            try:
                d = SharedWatchStore(backend).load().domains.get(lab.domain)
            finally:
                backend.close()
            return d is not None and "drift" in d.conditions

        _wait(recorded, "the leader to store the sent drift alert")
        procs[first].send_signal(signal.SIGKILL)
        procs[first].wait(timeout=10)
        killed_at = time.time()
        backend = open_state(load_config(path))
        try:
            leader = Leader(backend, duration=1.0, clock=SystemClock())

            def taken() -> bool:
                holder = leader.holder()
                return holder is not None and holder.pid == procs[other].pid

            _wait(taken, "the follower to take over the lease", seconds=30)
            holder = leader.holder()
        finally:
            backend.close()
        # The lease says when the follower took it: within two lease periods (1 s each).
        assert holder is not None and holder.since - killed_at < 2 * 1.0
        _wait(lambda: _leads(ports[other]), "the new leader's first round", seconds=30)
        # Three rounds of the new leader (one, then two more): it knows the condition was
        # already sent, so none of them sends it again.
        _wait_rounds(ports[other], 1, "a round of the new leader")
        _wait_rounds(ports[other], 2, "two more rounds of the new leader")
        assert len(titles(drift)) == 1, titles("mxflip:")

        lab.set_mx(lab.primary)
        resolved = f"mxflip: resolved: {lab.domain}: drift:"
        _wait(lambda: titles(resolved), "the drift to be resolved")
        # Two more rounds after the resolution was sent: it is sent once.
        _wait_rounds(ports[other], 2, "two rounds after the resolution")
        assert len(titles(resolved)) == 1, titles("mxflip:")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
    err = procs[other].stderr.read().decode() if procs[other].stderr else ""
    assert "following:" in err and "leading:" in err, err[-2000:]
    assert os.environ.get("AWS_SECRET_ACCESS_KEY", "\0") not in err
