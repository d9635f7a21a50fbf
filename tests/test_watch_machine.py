"""The watch state machine on an injected clock (a plain number), the condition tracker,
path verdicts, and the ``[watch]`` table's validation (Hypothesis for open-ended values)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mxflip.canary.state import CanaryRecord
from mxflip.cli import cli
from mxflip.config import parse_config
from mxflip.errors import ConfigError
from mxflip.watch.alerts import Alert, Notifier, track
from mxflip.watch.config import WatchConfig
from mxflip.watch.machine import Signals, advance
from mxflip.watch.signals import path_verdicts
from mxflip.watch.store import DomainState, LocalWatchStore, Proposal, WatchState
from tests.support.configs import GOOD, write_config

D = "example.test"
FAILOVER = WatchConfig(on_primary_failing="failover", failing_rounds=2, cooldown=3600)


def run(settings: WatchConfig, signals: list[Signals], t0: float = 1e9, step: float = 300):
    s, out = DomainState(), []
    for i, sig in enumerate(signals):
        r = advance(s, sig, t0 + i * step, settings, domain=D)
        s = r.state
        out.append((s.state, [(w.kind, w.mode) for w in r.wants]))
    return out


OK = Signals("primary", "ok", "ok", backup_ready="ready")
LATE = Signals("primary", "late", "ok", backup_ready="ready")
FAIL = Signals("primary", "failing", "ok", backup_ready="ready")


def test_hysteresis_then_automatic_failover_after_failing_rounds() -> None:
    steps = run(FAILOVER, [OK, LATE, FAIL, FAIL, Signals("backup", None, "ok")])
    assert [s for s, _ in steps] == ["ok", "suspect", "failing", "failing", "switched"]
    assert steps[2][1] == [] and steps[3][1] == [("failover", "auto")]


def test_late_then_ok_recovers_without_action() -> None:
    assert run(FAILOVER, [LATE, OK]) == [("suspect", []), ("ok", [])]


def test_no_automatic_switch_without_backup_evidence() -> None:
    unproven = Signals("primary", "failing", None, backup_ready="ready")
    unready = Signals("primary", "failing", "ok", backup_ready="not-ready")
    for sig in (unproven, unready):
        steps = run(FAILOVER, [sig, sig, sig])
        assert all(w != ("failover", "auto") for _, ws in steps for w in ws)
        assert steps[-1][1] == [("failover", "propose")]


def test_both_paths_failing_never_switches() -> None:
    both = Signals("primary", "failing", "failing", backup_ready="ready")
    assert run(FAILOVER, [both] * 4) == [("suspect", [])] * 4


def test_max_auto_switches_per_window() -> None:
    s = DomainState(state="failing", failing_rounds=5)
    r = advance(s, FAIL, 1e9, FAILOVER, domain=D, auto_history=[1e9 - 60])
    assert [(w.kind, w.mode) for w in r.wants] == [("failover", "propose")]
    r = advance(s, FAIL, 1e9, FAILOVER, domain=D, auto_history=[1e9 - 90000])
    assert [(w.kind, w.mode) for w in r.wants] == [("failover", "auto")]


def test_failback_is_proposed_after_recovered_rounds_and_cooldown() -> None:
    cfg = WatchConfig(recovered_rounds=2, cooldown=900)
    back_ok = Signals("backup", "ok", "ok")
    steps = run(cfg, [Signals("backup", "failing", "ok"), back_ok, back_ok, back_ok, back_ok])
    assert [s for s, _ in steps] == [
        "switched",
        "recovering",
        "recovering",
        "recovering",
        "recovering",
    ]
    # Switched at t0; rounds every 300 s; cooldown 900 s: proposed from t0 + 900 on.
    assert [w for _, w in steps] == [
        [],
        [],
        [],
        [("failback", "propose")],
        [("failback", "propose")],
    ]


def test_a_failback_by_hand_returns_to_ok() -> None:
    steps = run(WatchConfig(), [Signals("backup", "ok", "ok"), OK])
    assert steps[-1] == ("ok", [])


def test_notify_and_propose_policies() -> None:
    assert run(WatchConfig(), [FAIL])[0][1] == [("failover", "notify")]
    assert run(WatchConfig(on_primary_failing="propose"), [FAIL])[0][1] == [("failover", "propose")]


def test_a_single_failing_host_is_a_drain_not_a_failover() -> None:
    sig = Signals("primary", "ok", "ok", failing_hosts=("mx2.example.test",))
    assert run(FAILOVER, [sig]) == [("ok", [("drain", "propose")])]


def test_drift_changes_nothing() -> None:
    assert run(FAILOVER, [Signals("unknown", "failing", "ok")] * 3) == [("ok", [])] * 3


@given(st.lists(st.sampled_from(["ok", "late", "failing", None]), max_size=30))
def test_never_auto_switches_without_failing_rounds_in_a_row(paths: list[str | None]) -> None:
    s = DomainState()
    streak = 0
    for i, p in enumerate(paths):
        r = advance(
            s, Signals("primary", p, "ok", backup_ready="ready"), 1e9 + i, FAILOVER, domain=D
        )
        streak = streak + 1 if p == "failing" else 0 if p in ("ok", "late") else streak
        if any(w.mode == "auto" for w in r.wants):
            assert streak >= FAILOVER.failing_rounds
        assert r.state.state in ("ok", "suspect", "failing")
        s = r.state


# ------------------------------------------------------------------ conditions


def test_track_raises_reminds_and_resolves_once() -> None:
    active = {"drift": ("warning", "drift: unknown")}
    c, a = track({}, active, 0, 3600, domain=D)
    assert [x.title for x in a] == [f"mxflip: {D}: drift: unknown"]
    c, a = track(c, active, 60, 3600, domain=D)
    assert a == []
    c, a = track(c, active, 3700, 3600, domain=D)
    assert [x.title for x in a] == [f"mxflip: reminder: {D}: drift: unknown"]
    c, a = track(c, {}, 3800, 3600, domain=D)
    assert [x.title for x in a] == [f"mxflip: resolved: {D}: drift: unknown"] and c == {}


def test_state_alert_once_per_state_change() -> None:
    c, a = track({}, {"state": ("failure", "failing: 1 round")}, 0, 3600, domain=D)
    c, b = track(c, {"state": ("failure", "failing: 2 rounds")}, 60, 3600, domain=D)
    c, d = track(c, {"state": ("warning", "switched: on backup")}, 120, 3600, domain=D)
    assert (len(a), len(b), len(d)) == (1, 0, 1)


def test_a_hung_channel_is_bounded_and_named_by_scheme_only() -> None:
    import threading

    gate = threading.Event()
    results = []

    def hang(url: str, alert: Alert, timeout: float) -> None:
        gate.wait(10)

    n = Notifier(["slack://secret-token/abc"], timeout=0.2, sender=hang, on_result=results.append)
    try:
        left = n.send([Alert("t", "b")])
    finally:
        gate.set()
        n.close()
    assert len(left) == 1
    assert results[0].channel == "slack://…" and "secret" not in str(results[0])


# ------------------------------------------------------------------ verdicts


def rec(token: str, path: str, status: str, t: float) -> CanaryRecord:
    return CanaryRecord(token, D, path, "live", "c@example.test", t, status=status)


def test_verdicts_per_host_and_path() -> None:
    records = [
        rec("a", "primary", "on_time", 1),
        rec("b", "primary", "missing", 2),
        rec("c", "primary", "on_time", 3),
        rec("d", "backup", "on_time", 3),
    ]
    tokens = {"a": "mx1.example.test", "b": "mx2.example.test", "c": "mx1.example.test"}
    v = path_verdicts(records, tokens, ["mx1.example.test.", "mx2.example.test."])
    assert (v.primary, v.backup, v.failing_hosts) == ("ok", "ok", ("mx2.example.test",))
    # A missing canary is not hidden by newer ones that are only late.
    records += [rec("e", "primary", "missing", 4), rec("f", "primary", "late", 5)]
    tokens |= {"e": "mx1.example.test", "f": "mx1.example.test"}
    v = path_verdicts(records, tokens, ["mx1.example.test.", "mx2.example.test."])
    assert v.primary == "failing" and v.failing_hosts == ()


# ------------------------------------------------------------------ config and store


def watch_table(body: str) -> str:
    return GOOD + "\n[watch]\n" + body + "\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('interval = "5x"', "watch.interval: '5x' is not a duration"),
        ('on_primary_failing = "panic"', "watch.on_primary_failing: Input should be"),
        ('notify = ["json://ok/x", "nosuch://x"]', "watch.notify[1]: Apprise cannot use"),
        ('notify_env = "SLACK URL"', "watch.notify_env: 'SLACK URL' is not an environment"),
        ('heartbeat_url = "ftp://x"', "watch.heartbeat_url: must be an http"),
        ("failing_rounds = 0", "watch.failing_rounds: Input should be greater"),
        ("colour = 1", "watch.colour: unknown key"),
    ],
)
def test_bad_watch_config_is_one_line_exit_2(tmp_path: Path, body: str, message: str) -> None:
    path = write_config(tmp_path, watch_table(body))
    result = CliRunner().invoke(cli, ["-c", str(path), "watch", "--once"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert message in line and "Traceback" not in line


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.text(max_size=12), st.integers(-5, 10**6), st.booleans(), st.floats()))
def test_any_interval_value_is_accepted_or_one_config_error(value: object) -> None:
    raw = tomllib.loads(GOOD)
    raw["watch"] = {"interval": value}
    try:
        config = parse_config(raw, path=Path("/nonexistent/mxflip.toml"))
    except ConfigError as exc:
        assert str(exc).startswith("/nonexistent/mxflip.toml: watch.interval:") or "lab.key" in str(
            exc
        )
    else:
        assert config.watch is not None and config.watch.interval > 0


def test_validate_warns_on_mail_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_URLS", "mailto://user:pw@example.test json://127.0.0.1:9/x")
    path = write_config(tmp_path, watch_table('notify_env = "MY_URLS"'))
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 0
    assert "mxflip: warning: watch.notify: mailto://… sends alerts by e-mail" in result.stderr
    assert "user:pw" not in result.output + result.stderr


def test_state_survives_a_restart(tmp_path: Path) -> None:
    store = LocalWatchStore(tmp_path / "watch.json")
    with store.update() as s:
        s.domain(D).state = "failing"
        s.proposals.append(Proposal("abcd1234", D, "failover", D, "h", 1.0, 2.0, "why"))
        s.series.append((1.0, D, "primary", 2.5, "on_time"))
    again = LocalWatchStore(tmp_path / "watch.json").load()
    assert again.domains[D].state == "failing" and again.proposals[0].id == "abcd1234"
    assert again.series == [(1.0, D, "primary", 2.5, "on_time")]
    assert (tmp_path / "watch.json").stat().st_mode & 0o077 == 0
    assert isinstance(again, WatchState)


@given(st.lists(st.sets(st.sampled_from(["drift", "state", "backup-readiness"])), max_size=25))
def test_one_raise_and_one_resolve_per_episode(rounds_active: list[set[str]]) -> None:
    conditions: dict = {}  # type: ignore[type-arg]
    raised = resolved = 0
    previous: set[str] = set()
    for i, keys in enumerate(rounds_active):
        active = {k: ("warning", f"{k}: x") for k in keys}
        conditions, alerts = track(conditions, active, float(i), 10**9, domain=D)
        raised += sum(1 for a in alerts if "resolved" not in a.title)
        resolved += sum(1 for a in alerts if "resolved" in a.title)
        assert len([a for a in alerts if "resolved" not in a.title]) == len(keys - previous)
        previous = keys
    assert raised - resolved == len(previous)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["mx1", "mx2"]),
            st.sampled_from(["on_time", "late", "missing", "send_failed", "pending"]),
        ),
        max_size=20,
    )
)
def test_path_verdict_follows_send_order(history: list[tuple[str, str]]) -> None:
    records = [rec(f"t{i}", "primary", status, float(i)) for i, (_, status) in enumerate(history)]
    tokens = {f"t{i}": f"{host}.example.test" for i, (host, _) in enumerate(history)}
    v = path_verdicts(records, tokens, ["mx1.example.test.", "mx2.example.test."])
    decided = [s for _, s in history if s != "pending"]
    after_ok = (
        decided[len(decided) - decided[::-1].index("on_time") :]
        if "on_time" in decided
        else decided
    )
    if not decided:
        assert v.primary is None
    elif {"missing", "send_failed"} & set(after_ok):
        assert v.primary == "failing" and v.failing_hosts == ()
    else:
        assert v.primary == ("late" if after_ok else "ok")
