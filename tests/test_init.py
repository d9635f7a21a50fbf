"""``mxflip init`` against zone files (served by a loopback DNS server) and a real BIND9:
the written file validates (once the backup is filled in) and ``status`` shows every
domain on primary."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxflip.cli import cli
from mxflip.init import FoundDomain, InitResult, filter_of, kept_text
from mxflip.records import MX, RRset
from mxflip.render.init import init_toml
from mxflip.sandbox import LoopbackDNS, ZoneResponder
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer, zone_text

MIMECAST = ["10 eu-smtp-inbound-1.mimecast.com.", "20 eu-smtp-inbound-2.mimecast.com."]

ZONE_FILE = """\
$ORIGIN shop.test.
$TTL 3600
@        IN SOA ns1 hostmaster 1 3600 600 86400 60
@        IN NS  ns1
ns1      IN A   127.0.0.1
@        IN MX  10 eu-smtp-inbound-1.mimecast.com.
@        IN MX  20 eu-smtp-inbound-2.mimecast.com.
eu   900 IN MX  10 eu-smtp-inbound-1.mimecast.com.
eu   900 IN MX  20 eu-smtp-inbound-2.mimecast.com.
legacy   IN MX  5 mail.shop.test.
mail     IN A   127.0.0.1
www      IN A   127.0.0.1
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def zonefile_lab(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """shop.test as a zone file, served on loopback by the sandbox's DNS responder."""
    zone = tmp_path / "shop.test.zone"
    zone.write_text(ZONE_FILE)
    dns = LoopbackDNS(ZoneResponder(zone, "shop.test.")).start()
    yield zone, dns.port
    dns.stop()


def provider_only(folder: Path, table: str, defaults: str = "") -> Path:
    path = folder / "mxflip.toml"
    path.write_text(f"# my own comment stays\n{table}\n{defaults}")
    return path


def test_zonefile_init_validate_status(zonefile_lab: tuple[Path, int], tmp_path: Path) -> None:
    zone, port = zonefile_lab
    cfg = provider_only(
        tmp_path,
        f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n',
        f'[defaults]\nnameservers = ["127.0.0.1:{port}"]\n',
    )
    original = cfg.read_text()
    result = run("-c", str(cfg), "init", "--provider", "files", "--backup", "10 mail.{domain}")
    assert result.exit_code == 0, result.output
    assert "3 domains in 1 zone, 2 live MX sets (inbound filter: Mimecast)" in result.stderr
    assert (tmp_path / "mxflip.toml.bak").read_text() == original
    text = cfg.read_text()
    assert text.startswith(original.rstrip())
    assert "These hosts are Mimecast's, an inbound mail filter: this set is the proxy" in text
    doc = tomllib.loads(text)
    assert doc["sets"]["primary"] == [
        "10 eu-smtp-inbound-1.mimecast.com",
        "20 eu-smtp-inbound-2.mimecast.com",
    ]
    assert doc["sets"]["primary_2"] == ["5 mail.shop.test"]
    assert doc["domains"]["eu.shop.test"]["ttl"] == 900
    assert doc["domains"]["legacy.shop.test"]["primary"] == "primary_2"
    assert run("-c", str(cfg), "validate").exit_code == 0
    status = run("-c", str(cfg), "status", "--json")
    assert status.exit_code == 0, status.output
    domains = json.loads(status.stdout)["domains"]
    assert {d["domain"]: d["active"] for d in domains} == {
        "eu.shop.test": "primary",
        "legacy.shop.test": "primary",
        "shop.test": "primary",
    }


def test_placeholder_backup_is_refused_until_filled_in(
    zonefile_lab: tuple[Path, int], tmp_path: Path
) -> None:
    zone, _ = zonefile_lab
    cfg = provider_only(tmp_path, f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n')
    out = tmp_path / "new.toml"
    assert run("-c", str(cfg), "init", "--provider", "files", "-o", str(out)).exit_code == 0
    assert not (tmp_path / "mxflip.toml.bak").exists()
    refused = run("-c", str(out), "validate")
    assert refused.exit_code == 2
    assert "sets.backup[0]: is the placeholder mxflip init wrote: fill in your backup" in (
        refused.stderr
    )
    out.write_text(out.read_text().replace("fill-in-your-backup-mx.invalid", "mail.{domain}"))
    assert run("-c", str(out), "validate").exit_code == 0


@pytest.mark.parametrize(
    ("own", "source"),
    [
        ('[defaults]\nbackup = ["10 relay.{domain}"]\n', "[defaults] backup"),
        (
            '[sets]\ndirect = ["10 relay.{domain}"]\n[defaults]\nbackup = "direct"\n',
            "[sets] direct, which [defaults] backup names",
        ),
        ('[sets]\nbackup = ["10 relay.{domain}"]\n', "[sets] backup"),
    ],
)
def test_the_files_own_backup_set_is_kept(
    zonefile_lab: tuple[Path, int], tmp_path: Path, own: str, source: str
) -> None:
    zone, _ = zonefile_lab
    cfg = provider_only(tmp_path, f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n', own)
    assert run("-c", str(cfg), "init", "--provider", "files").exit_code == 0
    text = cfg.read_text()
    assert f"# From {source} ({{domain}} becomes each domain's name)." in text
    assert tomllib.loads(text)["sets"]["backup"] == ["10 relay.{domain}"]
    assert run("-c", str(cfg), "validate").exit_code == 0
    # Run again: the file's own sets survive, init's own are replaced, not doubled.
    assert run("-c", str(cfg), "init", "--provider", "files").exit_code == 0
    again = tomllib.loads(cfg.read_text())
    assert again["sets"]["backup"] == ["10 relay.{domain}"]
    if "direct" in own:
        assert again["sets"]["direct"] == ["10 relay.{domain}"]
    assert run("-c", str(cfg), "validate").exit_code == 0


def test_output_file_is_never_overwritten_without_force(
    zonefile_lab: tuple[Path, int], tmp_path: Path
) -> None:
    zone, _ = zonefile_lab
    cfg = provider_only(tmp_path, f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n')
    out = tmp_path / "taken.toml"
    out.write_text("mine\n")
    refused = run("-c", str(cfg), "init", "--provider", "files", "-o", str(out))
    assert refused.exit_code == 2
    assert refused.stderr == f"mxflip: error: {out} exists; pass --force to overwrite it\n"
    assert out.read_text() == "mine\n"
    forced = run("-c", str(cfg), "init", "--provider", "files", "-o", str(out), "--force")
    assert forced.exit_code == 0
    assert '[domains."shop.test"]' in out.read_text()


def test_dry_run_prints_and_writes_nothing(zonefile_lab: tuple[Path, int], tmp_path: Path) -> None:
    zone, _ = zonefile_lab
    cfg = provider_only(tmp_path, f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n')
    before = cfg.read_text()
    result = run(
        "-c", str(cfg), "init", "--provider", "files", "--dry-run", "--domain", "eu.shop.test"
    )
    assert result.exit_code == 0
    assert cfg.read_text() == before
    doc = tomllib.loads(result.stdout)
    assert list(doc["domains"]) == ["eu.shop.test"]


def test_rerun_keeps_the_placeholder_a_placeholder(
    zonefile_lab: tuple[Path, int], tmp_path: Path
) -> None:
    zone, _ = zonefile_lab
    cfg = provider_only(tmp_path, f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n')
    for _ in range(2):
        assert run("-c", str(cfg), "init", "--provider", "files").exit_code == 0
    assert "# FILL IN: the backup MX set" in cfg.read_text()
    assert run("-c", str(cfg), "validate").exit_code == 2


def test_rerun_replaces_its_own_part(zonefile_lab: tuple[Path, int], tmp_path: Path) -> None:
    zone, _ = zonefile_lab
    cfg = provider_only(tmp_path, f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n')
    for _ in range(2):
        assert (
            run("-c", str(cfg), "init", "--provider", "files", "--backup", "10 b.test").exit_code
            == 0
        )
    text = cfg.read_text()
    assert text.count("written by mxflip init") == 1
    assert run("-c", str(cfg), "validate").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "nope"], "--provider 'nope' is not configured"),
        (["--provider", "files", "--backup", "mail.example.com"], "is not 'PREFERENCE HOST'"),
        (["--provider", "files", "--domain", "elsewhere.test"], "is in none of the zones"),
        (["--provider", "files", "--domain", "www.shop.test"], "no usable MX records"),
    ],
)
def test_bad_input_is_one_line(
    zonefile_lab: tuple[Path, int], tmp_path: Path, args: list[str], message: str
) -> None:
    zone, _ = zonefile_lab
    cfg = provider_only(tmp_path, f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n')
    result = run("-c", str(cfg), "init", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


# ------------------------------------------------------------------ RFC 2136 (BIND9)


@pytest.fixture(scope="module")
def bind_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    records = "\n".join(
        [
            "@ 3600 IN MX 10 mx1.proxy.test.",
            "@ 3600 IN MX 20 mx2.proxy.test.",
            "lists 3600 IN MX 10 mx1.proxy.test.",
            "lists 3600 IN MX 20 mx2.proxy.test.",
            "o365 300 IN MX 0 corp-test.mail.protection.outlook.com.",
            "mail IN A 127.0.0.1",
        ]
    )
    server = BindServer(
        tmp_path_factory.mktemp("bind-init"), {"corp.test.": zone_text("corp.test.", records)}
    ).start()
    yield server
    server.stop()


def rfc2136_table(bind: BindServer) -> str:
    return (
        f'[providers.lab]\ntype = "rfc2136"\nserver = "{bind.address}"\n'
        f'tsig_key_file = "{bind.key_file}"\n'
    )


def init_corp(cfg: Path) -> Result:
    return run(
        "-c",
        str(cfg),
        "init",
        "--provider",
        "lab",
        "--zone",
        "corp.test",
        "--backup",
        "10 mail.corp.test",
    )


def test_rfc2136_init_by_axfr(bind_lab: BindServer, tmp_path: Path) -> None:
    cfg = provider_only(
        tmp_path, rfc2136_table(bind_lab), f'[defaults]\nnameservers = ["{bind_lab.address}"]\n'
    )
    result = init_corp(cfg)
    assert result.exit_code == 0, result.output
    text = cfg.read_text()
    assert "These hosts are Microsoft 365 EOP's, an inbound mail filter" in text
    doc = tomllib.loads(text)
    assert sorted(doc["domains"]) == ["corp.test", "lists.corp.test", "o365.corp.test"]
    assert doc["domains"]["o365.corp.test"]["ttl"] == 300
    status = run("-c", str(cfg), "status", "--json")
    assert status.exit_code == 0, status.output
    assert {d["active"] for d in json.loads(status.stdout)["domains"]} == {"primary"}


def test_rfc2136_without_zone_says_so_in_one_line(bind_lab: BindServer, tmp_path: Path) -> None:
    cfg = provider_only(tmp_path, rfc2136_table(bind_lab))
    result = run("-c", str(cfg), "init", "--provider", "lab")
    assert result.exit_code == 2
    assert result.stderr == (
        "mxflip: error: provider 'lab' (RFC2136Provider) cannot list its zones "
        "(name the zones with --zone (and the domains with --domain))\n"
    )


@pytest.fixture(scope="module")
def no_axfr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(
        tmp_path_factory.mktemp("bind-noaxfr"),
        {"closed.test.": zone_text("closed.test.", "@ 600 IN MX 10 mx.elsewhere.test.")},
        extra_options="  allow-transfer { none; };",
    ).start()
    yield server
    server.stop()


def test_rfc2136_without_axfr_reads_named_domains(no_axfr: BindServer, tmp_path: Path) -> None:
    cfg = provider_only(tmp_path, rfc2136_table(no_axfr))
    refused = run("-c", str(cfg), "init", "--provider", "lab", "--zone", "closed.test")
    assert refused.exit_code == 2
    assert "refuses zone transfers of closed.test." in refused.stderr
    result = run(
        "-c", str(cfg), "init", "--provider", "lab", "--domain", "closed.test", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "only the named domains were read" in result.stdout
    assert tomllib.loads(result.stdout)["domains"]["closed.test"]["ttl"] == 600


def test_rfc2136_written_config_plans_a_failover(bind_lab: BindServer, tmp_path: Path) -> None:
    """The written config is a working one: a failover target is planned against it."""
    cfg = provider_only(
        tmp_path,
        rfc2136_table(bind_lab),
        f'[defaults]\nnameservers = ["{bind_lab.address}"]\n\n'
        f'[probe]\nresolvers = ["{bind_lab.address}"]\n',  # lookups stay on loopback
    )
    init_corp(cfg)
    plan = run(
        "-c",
        str(cfg),
        "failover",
        "lists.corp.test",
        "--dry-run",
        "--skip-readiness",
        "--reason",
        "t",
    )
    assert plan.exit_code == 0, plan.output
    assert "10 mail.corp.test" in plan.stdout
    provider = RFC2136Provider.from_settings(
        "lab", RFC2136Settings(server=bind_lab.address, tsig_key_file=bind_lab.key_file)
    )
    assert provider.read("corp.test.", ["lists.corp.test."])["lists.corp.test."] == RRset.of(
        "lists.corp.test.", 3600, ["10 mx1.proxy.test.", "20 mx2.proxy.test."]
    )


# ------------------------------------------------------------------ pure parts


def test_filters_are_recognised() -> None:
    def of(*records: str) -> str | None:
        return filter_of(frozenset(MX.parse(r) for r in records))

    assert of(*MIMECAST) == "Mimecast"
    assert of("10 mx0a-001.pphosted.com", "10 mx0b-001.pphosted.com") == "Proofpoint"
    assert of("10 d123.ess.barracudanetworks.com") == "Barracuda"
    assert of("0 example-com.mail.protection.outlook.com") == "Microsoft 365 EOP"
    assert of("1 aspmx.l.google.com", "5 alt1.aspmx.l.google.com") == "Google"
    assert of("10 mail.example.com") is None
    assert of("10 aspmx.l.google.com", "20 mail.example.com") is None


def test_inline_sets_table_is_refused_not_written_broken(
    zonefile_lab: tuple[Path, int], tmp_path: Path
) -> None:
    zone, _ = zonefile_lab
    table = (
        'sets = { direct = ["10 a.test"] }\n'
        f'[providers.files]\ntype = "zonefile"\nfile = "{zone}"\n'
    )
    cfg = provider_only(tmp_path, table)
    before = cfg.read_text()
    result = run("-c", str(cfg), "init", "--provider", "files")
    assert result.exit_code == 2
    assert "cannot merge the new tables into" in result.stderr
    assert cfg.read_text() == before


def test_kept_text_drops_sets_domains_and_a_previous_init() -> None:
    text = (
        "[providers.a]\ntype = 'x'\n[sets]\np = []\n[domains.\"a.test\"]\nprimary = 'p'\n"
        "[probe]\nhelo = 'h.test'\n# ==== written by mxflip init from x\n[sets]\n"
    )
    assert kept_text(text) == "[providers.a]\ntype = 'x'\n[probe]\nhelo = 'h.test'\n"


_label = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_shared = st.builds(lambda a, b: f"{a}.{b}.test", _label, _label)
#: A host: shared by every domain, or the domain's own (``mail.<domain>``), templated later.
_host = st.one_of(_shared, st.builds(lambda a: ("own", a), _label))
_records = st.lists(st.tuples(st.integers(0, 65535), _host), min_size=1, max_size=4)


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(
    live=st.dictionaries(
        st.builds(lambda a, b: f"{a}.{b}.test.", _label, _label),
        st.tuples(_records, st.integers(1, 86400)),
        min_size=1,
        max_size=6,
    )
)
def test_rendered_config_parses_to_the_live_sets(
    live: dict[str, tuple[list[tuple[int, object]], int]],
) -> None:
    """Whatever the live sets, the written config describes exactly them: same records
    (after {domain} is put back), same TTL, and failover_ttl no longer than ttl."""
    from mxflip.config import ProviderConfig, _DomainTable, _parse_domain, _parse_sets
    from mxflip.init import _group
    from mxflip.provider import ProviderSettings

    rrsets = []
    for name, (records, ttl) in live.items():
        mxs: dict[str, MX] = {}
        for pref, host in records:
            text = f"{host[1]}.{name}" if isinstance(host, tuple) else str(host)
            mxs.setdefault(MX(pref, text).host, MX(pref, text))
        rrsets.append(RRset(name, ttl, frozenset(mxs.values())))
    sets, set_of = _group(rrsets)
    result = InitResult(
        provider=ProviderConfig("files", "zonefile", ProviderSettings()),
        source=Path("mxflip.toml"),
        kept_text="",
        zones=tuple(r.name for r in rrsets),
        sets=sets,
        domains=tuple(FoundDomain(r.name, r.name, r, set_of[r.name]) for r in rrsets),
        backup=("10 backup.{domain}",),
        skipped=(),
        read_by_name=False,
    )
    raw = tomllib.loads(init_toml(result))
    parsed_sets = _parse_sets(raw["sets"], "x")
    providers = {"files": result.provider}
    for rrset in rrsets:
        key = rrset.name.rstrip(".")
        parsed = _parse_domain(
            key, raw["domains"][key], _DomainTable(), parsed_sets, providers, "x"
        )
        assert parsed.primary == rrset.records
        assert parsed.ttl == rrset.ttl
        assert parsed.failover_ttl <= parsed.ttl


def test_sets_differing_only_by_the_domain_share_a_template() -> None:
    from mxflip.init import _group

    own = [
        RRset.of(f"{d}.", 3600, [f"10 mail.{d}.", "20 backup-mx.isp.test."])
        for d in ("a.test", "b.test")
    ]
    odd = RRset.of("c.test.", 3600, ["10 mail.c.test."])
    shared = [RRset.of(f"{d}.", 3600, MIMECAST) for d in ("d.test", "e.test", "f.test")]
    sets, set_of = _group([*own, odd, *shared])
    assert [(s.name, s.records, s.domains) for s in sets] == [
        (
            "primary",
            ("10 eu-smtp-inbound-1.mimecast.com", "20 eu-smtp-inbound-2.mimecast.com"),
            ("d.test.", "e.test.", "f.test."),
        ),
        ("primary_2", ("10 mail.{domain}", "20 backup-mx.isp.test"), ("a.test.", "b.test.")),
        ("primary_3", ("10 mail.c.test",), ("c.test.",)),
    ]
    assert set_of["b.test."] == "primary_2"
