"""``mxflip drill`` end to end: a real BIND9 (RFC 2136 adapter) holds the drill names,
loopback aiosmtpd servers with trustme certificates play the proxy and the direct host,
and the real SMTP readiness checks probe them. The engine's clock is a fake one.

Covered: a passing drill (two domains), a drill failing at readiness (nothing changed), at
verification (restored by the engine), at the post-switch probe (restored by a rollback),
a refusal when an earlier operation is unsettled, and the CLI's exit codes, JSON document
and JUnit XML (validated against the structure CI systems read).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from mxflip.config import Config, DomainConfig, load_config
from mxflip.drill import STEPS, Drill, DrillReport
from mxflip.journal import Journal
from mxflip.plan import ReadinessVerdict
from mxflip.readiness import default_readiness
from mxflip.records import RRset
from mxflip.render import drill_json, drill_junit
from tests.support.bind import BindServer, zone_text
from tests.support.cli import fake_runtime, invoke, use_runtime
from tests.support.engine import FailingQuery, FakeClock, fresh_label, live, seed
from tests.support.ports import free_port
from tests.support.smtplab import Handler, Lab, lab, make_certs  # noqa: F401  (lab: fixture)

pytestmark = pytest.mark.real_server

ZONE = "drill.test."
PRIMARY = ["10 mx1.proxy.drill.test.", "20 mx2.proxy.drill.test."]
BACKUP = ["10 mail.drill.test."]
HOSTS = ["mx1.proxy.drill.test", "mx2.proxy.drill.test", "mail.drill.test"]


@dataclass
class DrillLab:
    bind: BindServer
    ca_file: Path
    ports: dict[str, int]

    def config(
        self, folder: Path, names: Sequence[str], *, connect: Mapping[str, int] | None = None
    ) -> Path:
        """mxflip.toml for ``names``, probing the lab's SMTP servers through BIND."""
        ports = {**self.ports, **(connect or {})}
        hosts = ", ".join(f'"{h}" = "127.0.0.1:{p}"' for h, p in ports.items())
        text = f"""
[providers.lab]
type = "rfc2136"
server = "{self.bind.address}"
tsig_key_file = "{self.bind.key_file}"
timeout = 2

[defaults]
provider = "lab"
zone = "drill.test"
primary = {json.dumps(PRIMARY)}
backup = {json.dumps(BACKUP)}
ttl = 3600
failover_ttl = 60
nameservers = ["{self.bind.address}"]

[probe]
helo = "probe.drill.test"
mail_from = "probe@drill.test"
timeout = 5
resolvers = ["{self.bind.address}"]
ca_file = "{self.ca_file}"
connect = {{ {hosts} }}

[journal]
path = "state/journal.jsonl"
"""
        for n in names:
            text += f'\n[domains."{n.rstrip(".")}"]\n'
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "mxflip.toml"
        path.write_text(text)
        return path


@pytest.fixture(scope="module")
def dlab(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillLab]:  # noqa: F811
    folder = tmp_path_factory.mktemp("drill-lab")
    certs = make_certs(folder)
    tls = certs.server(*HOSTS)
    ports = {h: lab.smtp(Handler(local_suffix="drill.test"), tls=tls) for h in HOSTS}
    records = "\n".join(f"{h.removesuffix('.drill.test')} IN A 127.0.0.1" for h in HOSTS)
    bind = BindServer(folder / "bind", {ZONE: zone_text(ZONE, records)}).start()
    yield DrillLab(bind, certs.ca_file, ports)
    bind.stop()


def fresh(dlab: DrillLab, count: int = 1) -> tuple[list[str], dict[str, RRset]]:
    names = [f"{fresh_label('drill')}.{ZONE}" for _ in range(count)]
    return names, seed(dlab.bind, names, PRIMARY)


def drill(config: Config, **kw: Any) -> DrillReport:
    assert config.journal.path is not None
    kw.setdefault("readiness", default_readiness(config))
    kw.setdefault("clock", FakeClock())
    domains: list[DomainConfig] = list(config.domains.values())
    return Drill(config, domains, Journal(config.journal.path), **kw).run()


def statuses(report: DrillReport) -> list[list[tuple[str, str]]]:
    return [[(s.name, s.status) for s in d.steps] for d in report.domains]


def journal_ops(config: Config) -> list[tuple[str, str]]:
    assert config.journal.path is not None
    # Operations sort by id; the fake clock gives both the same second, so sort by kind.
    return sorted((o.kind, o.outcome) for o in Journal(config.journal.path).read().operations)


# ------------------------------------------------------------------------ the core


def test_passing_drill_switches_verifies_probes_and_puts_everything_back(
    dlab: DrillLab, tmp_path: Path
) -> None:
    names, seeded = fresh(dlab, 2)
    config = load_config(dlab.config(tmp_path, names))
    report = drill(config)
    assert report.passed and int(report.exit_code) == 0
    assert statuses(report) == [[(s, "pass") for s in STEPS]] * 2
    assert live(dlab.bind, names) == seeded  # records and TTL exactly as before
    assert journal_ops(config) == [("failover", "rolled-back"), ("rollback", "done")]
    assert [(o.kind, o.outcome) for o in report.operations] == [
        ("failover", "done"),
        ("rollback", "done"),
    ]
    first = report.domains[0]
    assert first.domain == names[0].rstrip(".")
    assert "backup set (mail.drill.test) ready" in (first.step("readiness") or _no()).message
    assert "live set (mail.drill.test) ready" in (first.step("probe") or _no()).message


def _no() -> Any:
    raise AssertionError("step missing")


def test_planned_drill_lowers_the_ttl_first_and_restores_it(dlab: DrillLab, tmp_path: Path) -> None:
    names, seeded = fresh(dlab)
    config = load_config(dlab.config(tmp_path, names))
    clock = FakeClock()
    report = drill(config, clock=clock, planned=True, reason="quarterly")
    assert report.passed and report.planned
    assert clock.slept >= 3600  # the old TTL was waited out, on the injected clock
    assert (report.domains[0].step("failover") or _no()).seconds >= 3600
    assert live(dlab.bind, names) == seeded  # TTL 3600 again, not the failover_ttl
    assert config.journal.path is not None
    ops = {o.kind: o for o in Journal(config.journal.path).read().operations}
    assert ops["failover"].intent["reason"] == "drill: quarterly"
    assert [p["phase"] for p in ops["failover"].phases if p["status"] == "done"][:2] == [
        "prelower",
        "prelower-wait",
    ]


def test_unready_backup_fails_at_readiness_and_changes_nothing(
    dlab: DrillLab, tmp_path: Path
) -> None:
    names, seeded = fresh(dlab)
    dead = free_port()  # nothing listens there: the direct host is down
    config = load_config(dlab.config(tmp_path, names, connect={"mail.drill.test": dead}))
    report = drill(config)
    assert not report.passed and int(report.exit_code) == 3
    assert statuses(report) == [
        [("status", "pass"), ("readiness", "fail")] + [(s, "skipped") for s in STEPS[2:]]
    ]
    message = (report.domains[0].step("readiness") or _no()).message
    assert message.startswith("backup set (mail.drill.test) not ready:")
    assert f"127.0.0.1:{dead}" in message
    assert live(dlab.bind, names) == seeded
    assert journal_ops(config) == [] and report.operations == ()


def test_failed_verification_is_restored(dlab: DrillLab, tmp_path: Path) -> None:
    names, seeded = fresh(dlab)
    config = load_config(dlab.config(tmp_path, names))
    query = FailingQuery()
    report = drill(config, query=query, verify_timeout=5.0)
    assert int(report.exit_code) == 3 and query.calls >= 1
    assert statuses(report) == [
        [
            ("status", "pass"),
            ("readiness", "pass"),
            ("failover", "pass"),
            ("verify-failover", "fail"),
            ("probe", "skipped"),
            ("failback", "skipped"),
            ("verify-failback", "skipped"),
            ("restore", "pass"),
            ("final-status", "pass"),
        ]
    ]
    assert "injected: no answer" in (report.domains[0].step("verify-failover") or _no()).message
    assert live(dlab.bind, names) == seeded
    assert journal_ops(config) == [("failover", "rolled-back")]


def test_failed_probe_after_the_switch_is_rolled_back(dlab: DrillLab, tmp_path: Path) -> None:
    names, seeded = fresh(dlab)
    config = load_config(dlab.config(tmp_path, names))
    real = default_readiness(config)
    assert real is not None
    calls: list[Mapping[str, RRset]] = []

    async def readiness_then_outage(
        domains: Sequence[DomainConfig], targets: Mapping[str, RRset]
    ) -> Mapping[str, ReadinessVerdict]:
        calls.append(targets)
        if len(calls) == 1:
            return await real(domains, targets)
        # The direct host went down between the readiness check and the switch.
        return {n: ReadinessVerdict("not-ready", ("connection refused",)) for n in targets}

    report = drill(config, readiness=readiness_then_outage)
    assert int(report.exit_code) == 3
    steps = dict(statuses(report)[0])
    assert steps["probe"] == "fail" and steps["restore"] == "pass"
    assert steps["failback"] == "skipped" and steps["final-status"] == "pass"
    assert len(calls) == 2  # the engine reused the readiness step's proof
    assert live(dlab.bind, names) == seeded
    assert journal_ops(config) == [("failover", "rolled-back"), ("rollback", "done")]


def test_unsettled_operation_stops_the_drill_before_any_change(
    dlab: DrillLab, tmp_path: Path
) -> None:
    names, seeded = fresh(dlab)
    config = load_config(dlab.config(tmp_path, names))
    assert config.journal.path is not None
    from mxflip.journal import OperationLog

    OperationLog(Journal(config.journal.path), "20270101T000000Z-abcdef", lambda: 1.0).intent(
        kind="failover",
        target="backup",
        reason=None,
        command=["mxflip", "failover"],
        plan_hash="x",
        steps=[
            {
                "domain": names[0],
                "zone": ZONE,
                "provider": "lab",
                "before": {"name": names[0], "ttl": 3600, "records": PRIMARY},
                "prelower": None,
                "after": {"name": names[0], "ttl": 60, "records": BACKUP},
            }
        ],
        options={},
    )
    report = drill(config)
    assert statuses(report)[0][0] == ("status", "fail")
    assert "mxflip rollback 20270101T000000Z-abcdef" in report.domains[0].steps[0].message
    assert live(dlab.bind, names) == seeded


def test_domain_not_on_primary_is_not_drilled(dlab: DrillLab, tmp_path: Path) -> None:
    names, _ = fresh(dlab)
    seed(dlab.bind, names, BACKUP)
    config = load_config(dlab.config(tmp_path, names))
    report = drill(config)
    assert statuses(report)[0][:2] == [("status", "fail"), ("readiness", "skipped")]
    assert "the live set is backup, not primary" in report.domains[0].steps[0].message
    assert journal_ops(config) == []


# ------------------------------------------------------------------------ the CLI


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    use_runtime(monkeypatch, fake_runtime(clock))
    monkeypatch.delenv("MXFLIP_JOURNAL", raising=False)
    return clock


def run(path: Path, *args: str) -> Result:
    return invoke(["-c", str(path), "drill", *args])


def check_junit(data: bytes, report_doc: dict[str, Any]) -> ET.Element:
    """The structure JUnit consumers (GitHub, GitLab, Jenkins) read, consistent with the
    JSON document of the same drill."""
    root = ET.fromstring(data)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        f"drill {d['domain']}" for d in report_doc["domains"]
    ]
    total = {"tests": 0, "failures": 0, "skipped": 0}
    for suite, domain in zip(suites, report_doc["domains"], strict=True):
        cases = suite.findall("testcase")
        assert [c.get("name") for c in cases] == [s["name"] for s in domain["steps"]]
        failures = [c for c in cases if c.find("failure") is not None]
        skipped = [c for c in cases if c.find("skipped") is not None]
        assert int(suite.get("tests", "-1")) == len(cases)
        assert int(suite.get("failures", "-1")) == len(failures)
        assert int(suite.get("skipped", "-1")) == len(skipped)
        assert suite.get("errors") == "0"
        for case, step in zip(cases, domain["steps"], strict=True):
            assert case.get("classname") == f"mxflip.drill.{domain['domain']}"
            assert float(case.get("time", "-1")) >= 0
            failure = case.find("failure")
            assert (failure is not None) == (step["status"] == "fail")
            if failure is not None:
                assert failure.get("message") and failure.text == step["message"]
            assert (case.find("skipped") is not None) == (step["status"] == "skipped")
        assert float(suite.get("time", "-1")) >= 0
        total["tests"] += len(cases)
        total["failures"] += len(failures)
        total["skipped"] += len(skipped)
    for key, value in total.items():
        assert int(root.get(key, "-1")) == value
    return root


def test_cli_passing_drill_exit_0_with_json_and_junit(
    dlab: DrillLab, tmp_path: Path, fake_clock: FakeClock
) -> None:
    names, seeded = fresh(dlab)
    path = dlab.config(tmp_path, names)
    junit = tmp_path / "reports" / "drill.xml"
    junit.parent.mkdir()
    result = run(path, "--json", "--junit", str(junit))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["command"] == "drill"
    assert doc["exit_code"] == 0 and doc["passed"] is True
    [domain] = doc["domains"]
    assert domain["domain"] == names[0].rstrip(".") and domain["passed"] is True
    assert [s["name"] for s in domain["steps"]] == list(STEPS)
    assert all(set(s) == {"name", "status", "seconds", "message"} for s in domain["steps"])
    assert [(o["kind"], o["outcome"]) for o in doc["operations"]] == [
        ("failover", "done"),
        ("rollback", "done"),
    ]
    root = check_junit(junit.read_bytes(), doc)
    assert root.get("tests") == "8" and root.get("failures") == "0"
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["step"] for e in events] == list(STEPS)
    assert live(dlab.bind, names) == seeded
    history = json.loads(invoke(["-c", str(path), "history", "--json"]).stdout)
    ops = {o["kind"]: o for o in history["operations"]}
    failover, rollback = ops["failover"], ops["rollback"]
    assert failover["reason"] == "drill" and failover["command"][:2] == ["mxflip", "drill"]
    assert rollback["parent"] == failover["id"]


def test_cli_failing_drill_exit_3_with_junit_failure(
    dlab: DrillLab, tmp_path: Path, fake_clock: FakeClock
) -> None:
    names, seeded = fresh(dlab)
    path = dlab.config(tmp_path, names, connect={"mail.drill.test": free_port()})
    junit = tmp_path / "drill.xml"
    result = run(path, "--junit", str(junit), "--reason", "weekly")
    assert result.exit_code == 3, result.output
    assert "✗ FAIL" in result.stdout and "Drill FAILED" in result.stdout
    assert f"{names[0].rstrip('.')}: readiness" in result.stdout
    doc = json.loads(run(path, "--json").stdout)
    assert doc["exit_code"] == 3 and doc["passed"] is False
    root = check_junit(junit.read_bytes(), doc)
    assert root.get("failures") == "1" and root.get("skipped") == str(len(STEPS) - 2)
    assert live(dlab.bind, names) == seeded


def test_cli_rich_report_and_secrets(dlab: DrillLab, tmp_path: Path, fake_clock: FakeClock) -> None:
    names, _ = fresh(dlab)
    path = dlab.config(tmp_path, names)
    junit = tmp_path / "drill.xml"
    result = run(path, "--junit", str(junit))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Drill: {names[0].rstrip('.')}" in out and "Drill passed: 1 domain" in out
    assert out.count("✓ pass") == len(STEPS)
    journal = (path.parent / "state" / "journal.jsonl").read_text()
    for text in (out, result.stderr, junit.read_text(), journal):
        assert dlab.bind.secret not in text


def test_cli_usage_errors(dlab: DrillLab, tmp_path: Path, fake_clock: FakeClock) -> None:
    names, _ = fresh(dlab)
    path = dlab.config(tmp_path, names)
    unknown = run(path, "nowhere.test")
    assert unknown.exit_code == 2 and "is not configured" in unknown.stderr
    sandbox = run(path, "--sandbox", names[0])
    assert sandbox.exit_code == 2 and "name no domains" in sandbox.stderr
    bad = run(path, "--junit", str(tmp_path / "missing" / "x.xml"))
    assert bad.exit_code == 2 and "cannot write the JUnit report" in bad.stderr


def test_json_and_junit_of_a_report_agree() -> None:
    from mxflip.drill import DomainDrill, StepResult

    report = DrillReport(
        (
            DomainDrill(
                "a.test",
                (
                    StepResult("status", "pass", 0.5, "primary"),
                    StepResult("readiness", "fail", 1.25, 'not ready: <bad> & "worse"'),
                    StepResult("failover", "skipped", 0.0, "not run"),
                ),
            ),
        ),
        (),
        100.0,
        102.0,
    )
    doc = drill_json(report)
    assert doc["exit_code"] == 3 and doc["domains"][0]["passed"] is False
    root = check_junit(drill_junit(report), doc)
    assert root.get("time") == "2.000"
    case = root.find("testsuite/testcase[@name='readiness']")
    assert case is not None and case.get("time") == "1.250"


@pytest.mark.parametrize("at", ["probe", "switch"])
def test_ctrl_c_after_the_switch_puts_the_drill_name_back(
    dlab: DrillLab, tmp_path: Path, at: str
) -> None:
    from tests.support.engine import Failpoints

    names, seeded = fresh(dlab)
    config = load_config(dlab.config(tmp_path, names))
    real = default_readiness(config)
    assert real is not None
    calls = []

    async def interrupted_probe(
        domains: Sequence[DomainConfig], targets: Mapping[str, RRset]
    ) -> Mapping[str, ReadinessVerdict]:
        calls.append(targets)
        if at == "probe" and len(calls) == 2:
            raise KeyboardInterrupt
        return await real(domains, targets)

    failpoint = Failpoints("switch:served" if at == "switch" else None, KeyboardInterrupt())
    clock = FakeClock()
    assert config.journal.path is not None
    d = Drill(
        config,
        list(config.domains.values()),
        Journal(config.journal.path),
        readiness=interrupted_probe,
        clock=clock,
    )
    d.engine.failpoint = failpoint
    report = d.run()
    steps = dict(statuses(report)[0])
    failed = "probe" if at == "probe" else "failover"
    assert steps[failed] == "fail"
    assert (report.domains[0].step(failed) or _no()).message == "interrupted (Ctrl-C)"
    assert steps["restore"] == "pass" and steps["final-status"] == "pass"
    assert int(report.exit_code) == 3
    assert live(dlab.bind, names) == seeded
    ops = dict(journal_ops(config))
    assert ops["failover"] in ("rolled-back",) and ops["rollback"] == "done"


def test_lock_held_by_another_operation_fails_the_drill_with_a_report(
    dlab: DrillLab, tmp_path: Path
) -> None:
    names, seeded = fresh(dlab)
    config = load_config(dlab.config(tmp_path, names))
    assert config.journal.path is not None
    # A lock held through another open file description behaves as another process.
    with Journal(config.journal.path).lock("mxflip failover --all"):
        report = drill(config)
    assert statuses(report)[0] == [("status", "fail")] + [(s, "skipped") for s in STEPS[1:]]
    assert "another mxflip operation is running" in report.domains[0].steps[0].message
    assert int(report.exit_code) == 3
    assert live(dlab.bind, names) == seeded
