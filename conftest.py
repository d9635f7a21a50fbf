"""Fixtures shared by the core's and the adapters' tests (one ``pytest`` runs them all)."""

from __future__ import annotations

import compileall
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mxflip.testing.memory import MemoryStore
from tests.support import rewritten
from tests.support.bind import BindServer, zone_text
from tests.support.engine import start_engine_bind
from tests.support.knot import KnotServer
from tests.support.memory import fresh_store
from tests.support.pdns import PowerDNSServer

ROOT = Path(__file__).resolve().parent

# The longest tests start first (see the module).
pytest_plugins = ["tests.support.order"]

# With PYTHONDONTWRITEBYTECODE set (this machine sets it), no .pyc is ever written: every
# test worker compiled mxflip, the adapters and the (assertion-rewritten) tests from source,
# ~3 s of CPU each, and so did every `python -m mxflip` the tests start. An installed mxflip
# never pays that (pip compiles at install time), so the suite keeps byte code as a normal
# environment does: in __pycache__ (git ignores it), only ever a cache of the sources.
sys.dont_write_bytecode = False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, before any xdist worker starts
        for folder in ("mxflip", "providers", "tests"):
            compileall.compile_dir(ROOT / folder, quiet=1)
        rewritten.write_ahead(config, ROOT)  # and the test modules as pytest rewrites them


# pytest-xdist workers inherit COLUMNS=80 from their start-up; piped output in mxflip is
# deliberately wide unless COLUMNS is set, and the tests assert on that piped output.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

# BIND refuses an UPDATE that adds an MX pointing at an in-zone name without an address
# (check-integrity), as a real primary would; so in-zone backup hosts get A records.
EXAMPLE_TEST_HOSTS = "\n".join(
    f"mail.{label} IN A 127.0.0.1"
    for label in (
        "onprimary",
        "onbackup",
        "mixed",
        "partial",
        "unknown",
        "disagree",
        "absent",
        "dead",
        "resolved",
    )
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whatever uses the shared BIND9, Knot or PowerDNS is a real-server test, marked or not."""
    for item in items:
        if {"bind", "bind_key_file", "engine_bind", "knot", "pdns"} & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.real_server)


def _lab_zones() -> dict[str, str]:
    return {
        "example.test.": zone_text("example.test.", EXAMPLE_TEST_HOSTS),
        "contract.test.": zone_text("contract.test."),
    }


@pytest.fixture(scope="session")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    """A real BIND9 primary for ``example.test`` and ``contract.test``, updatable with a
    TSIG key (``bind.key_file``). Tests write only fresh names, or reset what they use."""
    server = BindServer(tmp_path_factory.mktemp("bind"), _lab_zones()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def engine_bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    """One BIND9 per test worker for the engine-level tests (zones engine.test and
    other.test, see ``start_engine_bind``). Those tests seed fresh names
    (``domain_names``) and read back only those, so the modules share one server instead of
    starting one each (~0.6 s per start)."""
    server = start_engine_bind(tmp_path_factory.mktemp("engine-bind"))
    yield server
    server.stop()


@pytest.fixture
def bind_key_file(bind: BindServer) -> Path:
    return bind.key_file


@pytest.fixture
def memory_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryStore]:
    """A fresh in-memory DNS store for pure core tests (type ``memory``, zone memory.test)."""
    yield from fresh_store(tmp_path, monkeypatch)


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C as Python sets it up at a terminal (KeyboardInterrupt) during the test,
    whatever this run inherited: a suite started in the background without job control
    has SIGINT ignored, and tests that press Ctrl-C would wait for nothing."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    """A real Knot DNS primary with the same zones and key rules as ``bind``."""
    server = KnotServer(tmp_path_factory.mktemp("knot"), _lab_zones()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerDNSServer]:
    """A real PowerDNS (gsqlite3) primary with the same zones and key rules as ``bind``."""
    server = PowerDNSServer(tmp_path_factory.mktemp("pdns"), _lab_zones()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every botocore session in a test worker shares one data loader.

    Each new botocore/boto3 session (one per ``S3Backend``, Route53 provider, admin client or
    in-process CLI command) otherwise re-reads and re-parses botocore's JSON data (endpoints,
    service models, the service listing): ~0.1-0.3 s of CPU per session, a large share of the
    moto-backed tests' time. The loader only caches read-only files from botocore's data
    directory, so sharing it changes no request and no result; a child process still
    builds its own, as a real command does.
    """
    try:
        import botocore.loaders
        import botocore.session
    except ImportError:  # the S3/Route53 tests fail or skip on their own (required.py)
        yield
        return
    original = botocore.session.create_loader
    loaders: dict[str | None, botocore.loaders.Loader] = {}

    def shared(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in loaders:
            loaders[search_path_string] = original(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = shared
    original_fresh = botocore.loaders.create_loader
    botocore.loaders.create_loader = _prefilled_loaders(original_fresh)
    yield
    botocore.loaders.create_loader = original_fresh
    botocore.session.create_loader = original


def _prefilled_loaders(create: Any) -> Any:
    """``botocore.loaders.create_loader`` for mxflip's lean S3 client
    (``mxflip.state.s3client.make_client``), which asks for a loader of its own so that
    it can keep what the loader read. Each call still gets a loader of its own, with
    its own cache, but that cache starts with what a stock S3 client build reads (parsed
    once per worker): the same data, so the client and the file it keeps are the same
    byte for byte, without re-parsing botocore's JSON (~0.1 s of CPU per backend).
    Loading the kept (trimmed) data into one loader changes no other loader's."""
    template: dict[Any, Any] = {}
    tried: list[bool] = []
    lock = threading.Lock()

    def create_loader(search_path_string: str | None = None) -> Any:
        with lock:
            if search_path_string is None and not tried:
                tried.append(True)
                import botocore.session

                session = botocore.session.Session()
                filler = create(search_path_string)
                session.register_component("data_loader", filler)
                session.create_client(
                    "s3",
                    region_name="us-east-1",
                    endpoint_url="http://127.0.0.1:9",
                    aws_access_key_id="unused",
                    aws_secret_access_key="unused",
                )
                # A private attribute (mxflip.state.s3client reads it too): a botocore
                # without it only loses the gain.
                cache = getattr(filler, "_cache", None)
                template.update(cache if isinstance(cache, dict) else {})
        loader = create(search_path_string)
        if search_path_string is None and template:  # botocore's own data only
            loader._cache = dict(template)
        return loader

    return create_loader
