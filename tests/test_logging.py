"""Logging: -v/-vv on stderr, --log-format json, and never a secret.

The end-to-end cases point mxflip at hostile loopback servers: a Cloudflare API that
echoes the request's token back in its error, a dead RFC 2136 server and IMAP server
(with the TSIG secret and the IMAP password configured), and check the -vv output line by
line.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxflip.logs import JsonFormatter, configure, timed
from mxflip.sanitize import REDACTED, register_secret
from tests.support.cli import invoke
from tests.support.configs import write_config
from tests.support.ports import free_port

TOKEN = "cf-token-4f1d9a8b7c6e5d4c3b2a1f0e"
TSIG_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="  # the one in tests.support.configs
IMAP_PASSWORD = "imap-pass-9c8b7a6f5e4d"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures the root logger; put it back for the tests after this one."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


class _Echo(BaseHTTPRequestHandler):
    """Every request is refused with a Cloudflare error that repeats the credentials."""

    def _refuse(self) -> None:
        body = json.dumps(
            {
                "success": False,
                "errors": [
                    {"code": 9109, "message": f"Invalid token {self.headers.get('Authorization')}"}
                ],
                "messages": [],
                "result": None,
            }
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Echo)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/client/v4"
    server.shutdown()
    server.server_close()


def lab_config(tmp_path: Path, provider: str, *, extra: str = "") -> Path:
    """One domain on ``provider`` (a [providers.NAME] table), verified at a loopback port
    where nothing listens: every DNS query fails."""
    dead = free_port()
    name = re.search(r"\[providers\.(\w+)\]", provider)
    assert name is not None
    return write_config(
        tmp_path,
        f"""{provider}
[defaults]
provider = "{name.group(1)}"
ttl = 3600
failover_ttl = 60
nameservers = ["127.0.0.1:{dead}"]
primary = ["10 mx1.proxy.test"]
backup = ["10 mail.example.test"]

[domains."example.test"]
{extra}
[journal]
path = "journal.jsonl"
""",
    )


def cloudflare_config(tmp_path: Path, api: str) -> Path:
    provider = f"""
[providers.cf]
type = "cloudflare"
api_token_env = "LOGTEST_CF_TOKEN"
base_url = "{api}"
attempts = 1
"""
    return lab_config(tmp_path, provider)


@pytest.fixture
def cf_config(tmp_path: Path, echo_api: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Cloudflare configuration against the echoing API, its token in the environment."""
    monkeypatch.setenv("LOGTEST_CF_TOKEN", TOKEN)
    return cloudflare_config(tmp_path, echo_api)


def test_vv_shows_provider_calls_and_dns_queries_but_never_the_token(
    cf_config: Path,
) -> None:
    path = cf_config
    result = invoke(["-c", str(path), "-vv", "status", "--timeout", "0.2"])
    assert result.exit_code == 3, result.output
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    lines = result.stderr.splitlines()
    refused = [line for line in lines if "cloudflare request failed" in line]
    assert refused and all(REDACTED in line for line in refused), lines
    assert any(
        "mxflip.observe: provider read failed provider=cf zone=example.test." in x for x in lines
    )
    assert any(
        "mxflip.net.dns: dns query server=127.0.0.1#" in x and "rdtype=MX" in x for x in lines
    )


def test_json_log_lines_are_objects_with_the_promised_keys(
    cf_config: Path,
) -> None:
    path = cf_config
    args = ["-vv", "--log-format", "json", "status", "--json", "--timeout", "0.2"]
    result = invoke(["-c", str(path), *args])
    assert result.exit_code == 3
    json.loads(result.stdout)  # stdout keeps its one document
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records and TOKEN not in result.stderr
    for record in records:
        assert {"ts", "level", "logger", "msg"} <= record.keys()
        assert record["ts"].endswith("Z") and record["level"] in ("debug", "info", "warning")
    read = [r for r in records if r["msg"] == "provider read failed"]
    assert read and read[0]["provider"] == "cf" and read[0]["zone"] == "example.test."
    assert isinstance(read[0]["ms"], float) and REDACTED in read[0]["error"]


def test_without_v_nothing_but_warnings(
    cf_config: Path,
) -> None:
    path = cf_config
    result = invoke(["-c", str(path), "status", "--timeout", "0.2"])
    assert result.exit_code == 3
    assert "cloudflare request" not in result.stderr and "dns query" not in result.stderr


def test_v_shows_info_but_not_debug(
    cf_config: Path,
) -> None:
    path = cf_config
    result = invoke(["-c", str(path), "-v", "rollback", "--yes"])
    assert result.exit_code == 2, result.output
    assert "error: no operation to roll back" in result.stderr
    assert "lock taken" in result.stderr and " INFO mxflip.journal: " in result.stderr
    assert " DEBUG " not in result.stderr and TOKEN not in result.stderr


def dead_rfc2136(port: int) -> str:
    """An RFC 2136 provider (with the TSIG key of tests.support.configs) where nothing
    listens."""
    return f"""
[providers.lab]
type = "rfc2136"
server = "127.0.0.1:{port}"
tsig_key_file = "lab.key"
timeout = 0.2
"""


def test_tsig_secret_never_in_vv_output_of_a_failing_update_server(tmp_path: Path) -> None:
    path = lab_config(tmp_path, dead_rfc2136(free_port()))
    for fmt in ("text", "json"):
        result = invoke(["-c", str(path), "-vv", "--log-format", fmt, "status", "--timeout", "0.2"])
        assert result.exit_code == 3, result.output
        assert "dns query" in result.stderr and "failed" in result.stderr
        assert TSIG_SECRET not in result.stderr and TSIG_SECRET not in result.stdout


def test_imap_password_never_in_vv_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGTEST_IMAP_USER", "canary")
    monkeypatch.setenv("LOGTEST_IMAP_PASSWORD", IMAP_PASSWORD)
    dead = free_port()
    provider = dead_rfc2136(dead)
    canary = f"""canary_address = "canary@example.test"

[canary]
mailbox = "imap"
imap_host = "127.0.0.1"
imap_port = {dead}
imap_user_env = "LOGTEST_IMAP_USER"
imap_password_env = "LOGTEST_IMAP_PASSWORD"
state_file = "canary.json"
"""
    path = lab_config(tmp_path, provider, extra=canary)
    import io

    from mxflip.canary import CanaryError
    from mxflip.canary.mailbox import open_mailbox
    from mxflip.config import load_config

    out = io.StringIO()
    configure(2, "text", lambda: out)
    mailbox = open_mailbox(load_config(path))  # registers the password as a secret
    with pytest.raises(CanaryError, match="cannot reach IMAP server"):
        mailbox.find()
    logging.getLogger("mxflip.canary.mailbox").debug(f"as if echoed: {IMAP_PASSWORD}")
    assert IMAP_PASSWORD not in out.getvalue() and "as if echoed: [redacted]" in out.getvalue()


# ------------------------------------------------------------------ the filter itself


def _emit_all_ways(log: logging.Logger, secret: str) -> None:
    log.debug("plain %s", secret, extra={"field": f"x{secret}x", "many": [secret, 1]})
    log.info(f"inline {secret}")
    try:
        raise OSError(f"boom {secret}")
    except OSError:
        log.warning("with a traceback", exc_info=True)
    with pytest.raises(RuntimeError), timed(log, "call", zone="z"):
        raise RuntimeError(secret)


@settings(max_examples=40, deadline=None)
@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\\"),
        min_size=12,
        max_size=40,
    )
)
def test_a_registered_secret_never_reaches_the_log_output(secret: str) -> None:
    import io

    register_secret(secret)
    for fmt in ("text", "json"):
        out = io.StringIO()
        configure(2, fmt, lambda out=out: out)
        _emit_all_ways(logging.getLogger("mxflip.test"), secret)
        text = out.getvalue()
        assert secret not in text, text
        # JSON escapes some characters; its decoded lines must be clean too.
        if fmt == "json":
            for line in text.splitlines():
                assert secret not in json.dumps(json.loads(line), ensure_ascii=False)
        assert text.count(REDACTED) >= 5


def test_other_libraries_only_show_warnings_and_only_with_v() -> None:
    import io

    out = io.StringIO()
    configure(2, "text", lambda: out)
    logging.getLogger("botocore.endpoint").debug("request headers Authorization: x")
    logging.getLogger("mxflip_rfc2136._client").debug("adapter detail")
    logging.getLogger("asyncio").warning("a library warning")
    assert "Authorization" not in out.getvalue()
    assert "adapter detail" in out.getvalue() and "a library warning" in out.getvalue()
    quiet = io.StringIO()
    configure(0, "text", lambda: quiet)
    logging.getLogger("apprise").error("Unparseable URL nosuch://x")
    logging.getLogger("mxflip.watch").warning("a warning of ours")
    assert quiet.getvalue() == "a warning of ours\n"


def test_json_extra_fields_never_replace_the_promised_keys() -> None:
    record = logging.LogRecord("mxflip.x", logging.INFO, __file__, 1, "hello", None, None)
    record.level = "spoofed"
    record.zone = "example.test."
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "info" and doc["msg"] == "hello" and doc["zone"] == "example.test."
