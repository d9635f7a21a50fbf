"""Load ``mxflip.toml`` into immutable, validated models.

Every problem becomes one :class:`~mxflip.errors.ConfigError` naming the file, the key
path (``domains."example.test".primary[1]``) and what is wrong.

Sharing MX sets between many domains, three ways (they combine):

* any domain key may be set under ``[defaults]``;
* ``[sets]`` names a list once (``proxy = ["10 mx1.proxy.test"]``) and a profile may name
  it (``primary = "proxy"``);
* ``{domain}`` in a host name is replaced by the domain (``backup = ["10 mail.{domain}"]``).
"""

from __future__ import annotations

import functools
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from mxflip.duration import parse_duration
from mxflip.entrypoints import skip_pydantic_plugin_scan
from mxflip.errors import ConfigError
from mxflip.hostport import HostPort, parse_hostport
from mxflip.provider import Provider, ProviderSettings, load_provider_class
from mxflip.records import MX, normalize_name

if TYPE_CHECKING:
    from mxflip.watch.config import WatchConfig

CONFIG_ENV = "MXFLIP_CONFIG"
DEFAULT_CONFIG_NAME = "mxflip.toml"
PROFILES = ("primary", "backup")
_TOP_LEVEL = (
    *("providers", "defaults", "sets", "domains", "probe", "journal", "canary", "state"),
    "watch",
)
_MAX_TTL = 2**31 - 1
#: The backup record ``mxflip init`` writes when not told one; refused until replaced.
PLACEHOLDER_BACKUP = "10 fill-in-your-backup-mx.invalid"


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ProviderConfig:
    """One ``[providers.NAME]`` table: its adapter type and validated settings."""

    name: str
    type: str
    settings: ProviderSettings


@dataclass(frozen=True)
class DomainConfig:
    """Everything mxflip knows about one domain, with defaults applied."""

    name: str  # absolute, trailing dot
    provider: str
    zone: str  # absolute, trailing dot
    primary: frozenset[MX]
    backup: frozenset[MX]
    ttl: int = 3600
    failover_ttl: int = 60
    #: Where to verify; empty means "the zone's NS records, as the provider reports them".
    nameservers: tuple[HostPort, ...] = ()
    resolvers: tuple[HostPort, ...] = ()
    probe_recipient: str | None = None
    #: Where delivery canaries are sent (``mxflip canary``); None: no canary for this domain.
    canary_address: str | None = None

    @property
    def display(self) -> str:
        return self.name.rstrip(".")

    def profile(self, name: str) -> frozenset[MX]:
        if name == "primary":
            return self.primary
        if name == "backup":
            return self.backup
        raise KeyError(name)


@dataclass(frozen=True)
class ProbeConfig:
    """The ``[probe]`` table: how SMTP readiness probes identify, connect and judge."""

    #: EHLO name; None means this machine's FQDN.
    helo: str | None = None
    #: Envelope sender; None means ``postmaster@<helo>`` (never the null sender).
    mail_from: str | None = None
    #: Seconds each step (connect, banner, every command) may take.
    timeout: float = 30.0
    #: Host → where to connect instead (curl's ``--connect-to``); several targets are
    #: probed as several addresses of that host.
    connect: Mapping[str, tuple[HostPort, ...]] = field(default_factory=dict)
    #: Resolvers for MX, A/AAAA, TLSA and ``_mta-sts`` lookups; empty means the system's.
    resolvers: tuple[HostPort, ...] = ()
    #: CA bundle to trust for SMTP and MTA-STS certificates; None means the system store.
    ca_file: Path | None = None
    check_catch_all: bool = False
    relay_test_recipient: str | None = None
    #: At most this many SMTP connections at once, across all hosts and domains.
    concurrency: int = 100
    #: Where to fetch the MTA-STS policy; ``{domain}`` is replaced.
    mta_sts_url: str = "https://mta-sts.{domain}/.well-known/mta-sts.txt"
    #: A step slower than this many seconds is a warning.
    slow_step: float = 10.0
    #: A certificate expiring within this many days is a warning.
    expiry_warning_days: int = 14
    #: Longest polite pause before retrying a RCPT answered with 4xx (greylisting).
    rcpt_retry_wait: float = 5.0


@dataclass(frozen=True)
class JournalConfig:
    """The ``[journal]`` table: where operations are recorded (None: the default place)."""

    path: Path | None = None


@dataclass(frozen=True)
class StateConfig:
    """The ``[state]`` table: where the journal, the lock, canary and watch state live."""

    backend: str = "local"  # "local" (files in the state folder) or "s3" (shared)
    bucket: str | None = None
    prefix: str = "mxflip"
    region: str | None = None
    endpoint_url: str | None = None
    #: How long a shared lock or leader lease lasts unless its holder renews it.
    lease: float = 120.0


@dataclass(frozen=True)
class CanaryConfig:
    """The ``[canary]`` table: where canaries are found and when they count as late."""

    mailbox: str = "maildir"  # "imap" or "maildir"
    imap_host: str | None = None
    imap_port: int = 993
    imap_user_env: str = "MXFLIP_CANARY_IMAP_USER"
    imap_password_env: str = "MXFLIP_CANARY_IMAP_PASSWORD"
    imap_folder: str = "INBOX"
    maildir: Path | None = None
    warn_after: float = 15 * 60.0
    fail_after: float = 60 * 60.0
    #: How long typical senders keep retrying before they bounce (status warns against it).
    retry_window: float = 4 * 86400.0
    delete_after_check: bool = True
    mail_from: str | None = None
    #: None: ``canary.json`` in the state folder (``$XDG_STATE_HOME/mxflip``).
    state_file: Path | None = None
    #: CA bundle for the IMAP server's certificate (default: the system's CAs).
    ca_file: Path | None = None
    poll_interval: float = 10.0


@dataclass(frozen=True)
class Config:
    """A loaded configuration. ``path`` is None only for configs built in code."""

    path: Path | None
    providers: Mapping[str, ProviderConfig]
    domains: Mapping[str, DomainConfig]
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    #: None when the file has no ``[canary]`` table.
    canary: CanaryConfig | None = None
    state: StateConfig = field(default_factory=StateConfig)
    #: None when the file has no ``[watch]`` table (``mxflip watch`` uses the defaults).
    watch: WatchConfig | None = None

    def select(self, names: Sequence[str]) -> list[DomainConfig]:
        """The named domains in the given order, or every domain when ``names`` is empty."""
        from mxflip.errors import UsageError

        if not names:
            return list(self.domains.values())
        chosen = []
        for raw in names:
            try:
                key = normalize_name(raw)
            except ValueError as exc:
                raise UsageError(f"{raw!r} is not a domain name: {exc}") from None
            if key not in self.domains:
                where = f" in {self.path}" if self.path else ""
                raise UsageError(f"domain {raw!r} is not configured{where}")
            chosen.append(self.domains[key])
        return chosen


# ----------------------------------------------------------------- validation models


def _check_server_list(value: list[str], default_port: int) -> tuple[HostPort, ...]:
    return tuple(parse_hostport(v, default_port) for v in value)


def _check_server(value: str) -> str:
    parse_hostport(value, 53)
    return value


#: A ``host[:port]`` string, checked item by item so errors name the list index.
ServerAddress = Annotated[str, AfterValidator(_check_server)]


# Every model defers building its validator to its first use (``defer_build``): a file
# without [canary], [state] or [watch] never pays for theirs at start-up.


class _DomainTable(BaseModel):
    """One ``[domains.X]`` or the ``[defaults]`` table: every key optional here."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    provider: str | None = None
    zone: str | None = None
    primary: list[str] | str | None = None
    backup: list[str] | str | None = None
    ttl: int | None = Field(default=None, ge=1, le=_MAX_TTL)
    failover_ttl: int | None = Field(default=None, ge=1, le=_MAX_TTL)
    nameservers: list[ServerAddress] | None = None
    resolvers: list[ServerAddress] | None = None
    probe_recipient: str | None = None
    canary_address: str | None = None

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else normalize_name(value)

    @field_validator("probe_recipient", "canary_address")
    @classmethod
    def _recipient(cls, value: str | None) -> str | None:
        if value is not None:
            # Checked as it will be sent, with {domain} standing for a real name.
            _check_probe_address(value.replace("{domain}", "example.com"))
        return value


def _check_probe_address(value: str) -> str:
    """An address that goes on the wire in ``MAIL FROM:<…>`` / ``RCPT TO:<…>``: one
    ``@``, a host name after it, and nothing that could end or bend the command."""
    local, at, domain = value.rpartition("@")
    if (
        not at
        or not local
        or not domain
        or "@" in local
        or any(c in value for c in '<>()[]\\,;:" \t')
        or _CONTROL.search(value)
    ):
        raise ValueError(f"{value!r} is not an address like postmaster@example.com")
    normalize_name(domain)
    return value


def _duration(value: object) -> object:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_duration(value)
    return value


_Duration = Annotated[float, BeforeValidator(_duration)]


def _check_address(value: str | None) -> str | None:
    if value is not None:
        try:
            _check_probe_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an address like canary@example.com") from None
    return value


class _JournalTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    path: str | None = Field(default=None, min_length=1)


class _CanaryTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True, populate_by_name=False)

    mailbox: Literal["imap", "maildir"] = "maildir"
    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_user_env: str = "MXFLIP_CANARY_IMAP_USER"
    imap_password_env: str = "MXFLIP_CANARY_IMAP_PASSWORD"
    imap_folder: str = "INBOX"
    maildir: str | None = None
    warn_after: _Duration = 15 * 60.0
    fail_after: _Duration = 60 * 60.0
    retry_window: _Duration = 4 * 86400.0
    delete_after_check: bool = True
    mail_from: str | None = Field(default=None, alias="from")
    state_file: str | None = None
    ca_file: str | None = None
    poll_interval: _Duration = 10.0

    @field_validator("imap_user_env", "imap_password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not value or not value.replace("_", "a").isalnum() or value[0].isdigit():
            raise ValueError(
                f"{value!r} is not an environment variable name (it names the variable "
                "holding the secret, not the secret itself)"
            )
        return value

    @field_validator("mail_from")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        return _check_address(value)


class _ProbeTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    helo: str | None = None
    mail_from: str | None = None
    timeout: float = Field(default=30.0, gt=0, le=600)
    # Factories written as lambdas: pydantic reads each factory's signature, and for a
    # builtin (``dict``, ``list``) that means tokenizing its text signature — ~5 ms of
    # every command's start-up for the first one.
    connect: dict[str, str | list[str]] = Field(default_factory=lambda: {})
    resolvers: list[str] = Field(default_factory=lambda: [])
    ca_file: str | None = None
    check_catch_all: bool = False
    relay_test_recipient: str | None = None
    concurrency: int = Field(default=100, ge=1, le=10000)
    mta_sts_url: str = "https://mta-sts.{domain}/.well-known/mta-sts.txt"
    slow_step: float = Field(default=10.0, gt=0)
    expiry_warning_days: int = Field(default=14, ge=0, le=3650)
    rcpt_retry_wait: float = Field(default=5.0, ge=0, le=600)

    @field_validator("helo")
    @classmethod
    def _helo(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = normalize_name(value).rstrip(".")
        if "." not in name:
            raise ValueError(f"{value!r} is not a fully qualified name like probe.example.com")
        return name

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str | None) -> str | None:
        if value is not None and value.strip() in ("", "<>"):
            raise ValueError("the null sender is not allowed; give a real address")
        return None if value is None else _check_probe_address(value)

    @field_validator("relay_test_recipient")
    @classmethod
    def _relay(cls, value: str | None) -> str | None:
        return None if value is None else _check_probe_address(value)

    @field_validator("connect")
    @classmethod
    def _connect(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for host, target in value.items():
            normalize_name(host)
            targets = [target] if isinstance(target, str) else target
            if not targets:
                raise ValueError(f"{host}: give at least one host:port to connect to")
            for one in targets:
                try:
                    parse_hostport(one, 25)
                except ValueError as exc:
                    raise ValueError(f"{host}: {exc}") from None
        return value

    @field_validator("resolvers")
    @classmethod
    def _resolvers(cls, value: list[str]) -> list[str]:
        for one in value:
            if not parse_hostport(one, 53).is_ip:
                raise ValueError(f"{one!r}: a resolver must be an IP address (with :port)")
        return value

    @field_validator("mta_sts_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"{value!r} must be an https:// URL (RFC 8461 requires HTTPS)")
        return value


# ------------------------------------------------------------------------ loading


def find_config(explicit: str | os.PathLike[str] | None) -> Path:
    """``-c/--config``, then ``$MXFLIP_CONFIG``, then ``./mxflip.toml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path(DEFAULT_CONFIG_NAME)


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Find, read and validate the configuration file."""
    path = find_config(explicit)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            "configuration file not found",
            path=str(path),
            hint="pass -c FILE, set MXFLIP_CONFIG, or create ./mxflip.toml "
            "(see examples/ for a starting point)",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", path=str(path)) from None
    return parse_config(raw, path=path)


#: No setting needs a number this large; beyond it, arithmetic on it could overflow.
_MAX_NUMBER = 2**53
#: Characters no setting may hold: each one could end a line in a wire protocol (SMTP,
#: IMAP, a zone file) or forge one on a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_values(value: Any, where: str, parts: tuple[str | int, ...]) -> None:
    """Refuse, anywhere in the file, what no setting may hold: control characters (CR,
    LF, NUL, …), NaN and infinities, and numbers too large for any setting."""

    def fail(message: str) -> NoReturn:
        raise ConfigError(message, path=where, key=_key(*parts) if parts else None)

    if isinstance(value, Mapping):
        for k, v in value.items():
            if _CONTROL.search(str(k)):
                fail(f"the key {str(k)!r} holds a control character (CR, LF, NUL, …)")
            _check_values(v, where, (*parts, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_values(v, where, (*parts, i))
    elif isinstance(value, str):
        if _CONTROL.search(value):
            fail("holds a control character (CR, LF, NUL, …); no setting may")
    elif isinstance(value, float):
        if not math.isfinite(value):
            fail(f"{value} is not a usable number")
        if abs(value) > _MAX_NUMBER:
            fail("is far too large for any setting")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_NUMBER:
        fail("is far too large for any setting")


@functools.lru_cache(maxsize=64)
def _adapter(type_name: str) -> type[Provider]:
    # Once per parse, not once per domain: finding the installed adapters scans sys.path,
    # and 5,000 domains made that most of `status`'s time.
    return load_provider_class(type_name)


def parse_config(raw: Mapping[str, Any], *, path: Path | None = None) -> Config:
    """Validate an already-parsed TOML document. ``path`` is used in messages and to
    resolve relative file names (key files) against the config file's folder."""
    where = str(path) if path is not None else "<config>"
    base_dir = path.resolve().parent if path is not None else Path.cwd()
    _adapter.cache_clear()  # adapters installed since the last parse are seen
    skip_pydantic_plugin_scan()  # before the first model is built: start-up

    for key in raw:
        if key not in _TOP_LEVEL:
            raise ConfigError(
                f"unknown section (expected one of: {', '.join(_TOP_LEVEL)})",
                path=where,
                key=key,
            )
    _check_values(raw, where, ())
    providers = _parse_providers(_table(raw, "providers", where), where, base_dir)
    sets = _parse_sets(_table(raw, "sets", where), where)
    defaults = _validate(_DomainTable, _table(raw, "defaults", where), where, "defaults")
    domains_raw = _table(raw, "domains", where)
    if not domains_raw:
        raise ConfigError(
            "no domains configured",
            path=where,
            key="domains",
            hint='add a [domains."example.com"] table',
        )
    domains: dict[str, DomainConfig] = {}
    for name, table in domains_raw.items():
        domain = _parse_domain(name, table, defaults, sets, providers, where)
        if domain.name in domains:
            raise ConfigError("domain is configured twice", path=where, key=_key("domains", name))
        domains[domain.name] = domain
    probe = _parse_probe(_table(raw, "probe", where), where, base_dir)
    journal = _validate_or_defaults(_JournalTable, _table(raw, "journal", where), where, "journal")
    journal_path = None
    if journal.path is not None:
        # Relative to the config file, like key files, so a config folder is self-contained.
        journal_path = base_dir / Path(journal.path).expanduser()
    canary = _parse_canary(raw, where, base_dir)
    watch = None
    if "watch" in raw:  # a file without [watch] does not load its models (start-up)
        from mxflip.watch.config import parse_watch  # here: watch.config builds on this

        watch = parse_watch(raw, where, base_dir)
    return Config(
        path=path,
        providers=providers,
        domains=domains,
        probe=probe,
        journal=JournalConfig(path=journal_path),
        canary=canary,
        state=_parse_state(_table(raw, "state", where), where),
        watch=watch,
    )


def _table(raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"must be a table, not {_kind(value)}", path=where, key=key)
    return value


def _kind(value: object) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _key(*parts: object) -> str:
    """Render a key path the way a person would write it in TOML."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            bare = text.replace("_", "").replace("-", "").isalnum()
            seg = text if bare else f'"{text}"'
            out += f".{seg}" if out else seg
    return out


def _validate(
    model: type[BaseModel],
    table: Mapping[str, Any],
    where: str,
    *prefix: object,
    context: dict[str, Any] | None = None,
) -> Any:
    try:
        return model.model_validate(table, context=context)
    except ValidationError as exc:
        raise _config_error(exc, where, prefix) from None


def _validate_or_defaults(
    model: type[BaseModel], table: Mapping[str, Any], where: str, *prefix: object
) -> Any:
    """``_validate`` for a table whose keys all have valid defaults: an empty or absent
    table is the defaults, without building the model's validator (``defer_build``: a
    few ms of start-up per model, paid only for the tables a file has)."""
    if not table:
        return model.model_construct()
    return _validate(model, table, where, *prefix)


def _config_error(exc: ValidationError, where: str, prefix: Sequence[object]) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    loc = [p for p in first["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)]
    msg = first["msg"]
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required key is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        msg = f"{msg} (got {_kind(first.get('input'))})"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(msg, path=where, key=_key(*prefix, *loc))


# pydantic puts the union member it tried into the location; people never wrote those.
_UNION_TAGS = {"list[str]", "str", "int", "float", "bool"}


def _parse_providers(
    table: Mapping[str, Any], where: str, base_dir: Path
) -> dict[str, ProviderConfig]:
    providers: dict[str, ProviderConfig] = {}
    for name, body in table.items():
        key = _key("providers", name)
        if not isinstance(body, dict):
            raise ConfigError(f"must be a table, not {_kind(body)}", path=where, key=key)
        body = dict(body)
        type_name = body.pop("type", None)
        if type_name is None:
            raise ConfigError(
                "required key is missing",
                path=where,
                key=f"{key}.type",
                hint='for example type = "rfc2136"',
            )
        if not isinstance(type_name, str):
            raise ConfigError(
                f"must be a string, not {_kind(type_name)}", path=where, key=f"{key}.type"
            )
        try:
            cls = load_provider_class(type_name)
        except ConfigError as exc:
            raise ConfigError(exc.message, path=where, key=f"{key}.type", hint=exc.hint) from None
        settings = _validate(
            cls.Settings,
            body,
            where,
            "providers",
            name,
            context={"base_dir": base_dir, "provider": name},
        )
        providers[name] = ProviderConfig(name=name, type=type_name, settings=settings)
        _register_env_secrets(settings)
    return providers


#: Environment variables that hold credentials whatever the config says (boto3 reads them).
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CLOUDFLARE_API_TOKEN")


def _register_env_secrets(settings: Any) -> None:
    """Every secret a setting points at (``*_env`` names a variable holding a token or
    password) is redacted from whatever this process shows or stores."""
    from mxflip.sanitize import register_secret

    names = list(_SECRET_ENV)
    for key, value in vars(settings).items():
        # A user name is not a secret (and redacting it would blank out ordinary words).
        secret = any(word in key for word in ("password", "token", "secret", "key"))
        if key.endswith("_env") and secret and isinstance(value, str):
            names.append(value)
    for env in names:
        register_secret(os.environ.get(env))


def _parse_sets(table: Mapping[str, Any], where: str) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    for name, value in table.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                'must be a list of MX records such as ["10 mx1.example.com"]',
                path=where,
                key=_key("sets", name),
            )
        sets[name] = value
    return sets


def _parse_domain(
    name: str,
    table: Any,
    defaults: _DomainTable,
    sets: Mapping[str, list[str]],
    providers: Mapping[str, ProviderConfig],
    where: str,
) -> DomainConfig:
    key = _key("domains", name)
    try:
        domain = normalize_name(name)
    except ValueError as exc:
        raise ConfigError(f"invalid domain name: {exc}", path=where, key=key) from None
    if not isinstance(table, dict):
        raise ConfigError(f"must be a table, not {_kind(table)}", path=where, key=key)
    if table and all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(
            "looks like a dotted domain name written without quotes",
            path=where,
            key=key,
            hint=f'write [domains."{name}.{next(iter(table))}"] with the name in quotes',
        )
    own = _validate(_DomainTable, table, where, "domains", name)
    merged = {
        f: getattr(own, f) if getattr(own, f) is not None else getattr(defaults, f)
        for f in _DomainTable.model_fields
    }

    def origin(field_name: str) -> str:
        return key if getattr(own, field_name) is not None else "defaults"

    provider = merged["provider"]
    if provider is None:
        raise ConfigError(
            "required key is missing (set it here or under [defaults])",
            path=where,
            key=f"{key}.provider",
        )
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none are configured"
        raise ConfigError(
            f"unknown provider {provider!r} (configured providers: {known})",
            path=where,
            key=f"{origin('provider')}.provider",
        )
    zone = merged["zone"] or domain
    if domain != zone and not domain.endswith("." + zone):
        raise ConfigError(
            f"domain {domain.rstrip('.')} is not inside zone {zone.rstrip('.')}",
            path=where,
            key=f"{origin('zone')}.zone",
        )
    profiles: dict[str, frozenset[MX]] = {}
    for profile in PROFILES:
        value = merged[profile]
        pkey = f"{origin(profile)}.{profile}"
        if value is None:
            raise ConfigError(
                "required key is missing (set it here or under [defaults])",
                path=where,
                key=f"{key}.{profile}",
            )
        profiles[profile] = _parse_profile(value, domain, sets, where, pkey)
    if profiles["primary"] == profiles["backup"]:
        raise ConfigError(
            "primary and backup are the same MX set; a failover would change nothing",
            path=where,
            key=f"{key}.backup",
        )
    ttl = merged["ttl"] if merged["ttl"] is not None else 3600
    failover_ttl = merged["failover_ttl"] if merged["failover_ttl"] is not None else 60
    if failover_ttl > ttl:
        raise ConfigError(
            f"failover_ttl {failover_ttl} is longer than ttl {ttl}; it must be the short one",
            path=where,
            key=f"{origin('failover_ttl')}.failover_ttl",
        )
    adapter = _adapter(providers[provider].type)
    for field_name, value in (("ttl", ttl), ("failover_ttl", failover_ttl)):
        problem = adapter.check_ttl(providers[provider].settings, value)
        if problem is not None:
            raise ConfigError(
                f"{field_name} {value}: {problem}",
                path=where,
                key=f"{origin(field_name)}.{field_name}",
            )
    return DomainConfig(
        name=domain,
        provider=provider,
        zone=zone,
        primary=profiles["primary"],
        backup=profiles["backup"],
        ttl=ttl,
        failover_ttl=failover_ttl,
        nameservers=_check_server_list(merged["nameservers"] or [], 53),
        resolvers=_check_server_list(merged["resolvers"] or [], 53),
        probe_recipient=(
            merged["probe_recipient"].replace("{domain}", domain.rstrip("."))
            if merged["probe_recipient"]
            else None
        ),
        canary_address=(
            merged["canary_address"].replace("{domain}", domain.rstrip("."))
            if merged["canary_address"]
            else None
        ),
    )


def _parse_profile(
    value: list[str] | str, domain: str, sets: Mapping[str, list[str]], where: str, key: str
) -> frozenset[MX]:
    if isinstance(value, str):
        if value not in sets:
            known = ", ".join(sorted(sets)) or "no [sets] are defined"
            raise ConfigError(
                f"names MX set {value!r}, which is not defined under [sets] ({known})",
                path=where,
                key=key,
            )
        key = _key("sets", value)
        value = sets[value]
    if not value:
        raise ConfigError("must list at least one MX record", path=where, key=key)
    records: dict[str, MX] = {}
    for i, text in enumerate(value):
        try:
            mx = MX.parse(text.replace("{domain}", domain.rstrip(".")))
        except ValueError as exc:
            raise ConfigError(str(exc), path=where, key=f"{key}[{i}]") from None
        if mx.host in records:
            raise ConfigError(f"host {mx.host} is listed twice", path=where, key=f"{key}[{i}]")
        if str(mx) == str(MX.parse(PLACEHOLDER_BACKUP)):
            raise ConfigError(
                "is the placeholder mxflip init wrote: fill in your backup MX records "
                '(your own server, for example ["10 mail.{domain}"])',
                path=where,
                key=f"{key}[{i}]",
            )
        records[mx.host] = mx
    return frozenset(records.values())


def _parse_probe(table: Mapping[str, Any], where: str, base_dir: Path) -> ProbeConfig:
    probe = _validate(_ProbeTable, table, where, "probe")
    ca_file = None
    if probe.ca_file is not None:
        ca_file = base_dir / Path(probe.ca_file).expanduser()
        if not ca_file.is_file():
            raise ConfigError(
                f"CA file {str(ca_file)!r} does not exist",
                path=where,
                key="probe.ca_file",
                hint="give a PEM bundle, relative to the config file's folder",
            )
    connect = {
        normalize_name(h): tuple(
            parse_hostport(t, 25) for t in ([targets] if isinstance(targets, str) else targets)
        )
        for h, targets in probe.connect.items()
    }
    return ProbeConfig(
        helo=probe.helo,
        mail_from=probe.mail_from,
        timeout=probe.timeout,
        connect=connect,
        resolvers=_check_server_list(probe.resolvers, 53),
        ca_file=ca_file,
        check_catch_all=probe.check_catch_all,
        relay_test_recipient=probe.relay_test_recipient,
        concurrency=probe.concurrency,
        mta_sts_url=probe.mta_sts_url,
        slow_step=probe.slow_step,
        expiry_warning_days=probe.expiry_warning_days,
        rcpt_retry_wait=probe.rcpt_retry_wait,
    )


def _parse_canary(raw: Mapping[str, Any], where: str, base_dir: Path) -> CanaryConfig | None:
    if "canary" not in raw:
        return None
    table = _table(raw, "canary", where)
    canary: _CanaryTable = _validate(_CanaryTable, table, where, "canary")
    if canary.mailbox == "imap" and not canary.imap_host:
        raise ConfigError(
            'required key is missing (mailbox = "imap")', path=where, key="canary.imap_host"
        )
    if canary.mailbox == "maildir" and not canary.maildir:
        raise ConfigError(
            'required key is missing (mailbox = "maildir")',
            path=where,
            key="canary.maildir",
            hint='set maildir = "/path/to/Maildir", or mailbox = "imap" with imap_host',
        )
    if canary.fail_after <= canary.warn_after:
        raise ConfigError("must be longer than warn_after", path=where, key="canary.fail_after")

    def resolve(value: str | None) -> Path | None:
        return None if value is None else base_dir / Path(value).expanduser()

    ca_file = resolve(canary.ca_file)
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"CA file {ca_file} not found", path=where, key="canary.ca_file")
    _register_env_secrets(canary)
    return CanaryConfig(
        mailbox=canary.mailbox,
        imap_host=canary.imap_host,
        imap_port=canary.imap_port,
        imap_user_env=canary.imap_user_env,
        imap_password_env=canary.imap_password_env,
        imap_folder=canary.imap_folder,
        maildir=resolve(canary.maildir),
        warn_after=canary.warn_after,
        fail_after=canary.fail_after,
        retry_window=canary.retry_window,
        delete_after_check=canary.delete_after_check,
        mail_from=canary.mail_from,
        state_file=resolve(canary.state_file),
        ca_file=ca_file,
        poll_interval=canary.poll_interval,
    )


class _StateTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    backend: Literal["local", "s3"] = "local"
    bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
    prefix: str = Field(default="mxflip", pattern=r"^[A-Za-z0-9._/\-]*$", max_length=200)
    region: str | None = Field(default=None, pattern=r"^[a-z0-9\-]{2,40}$")
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    lease: _Duration = 120.0


def _parse_state(table: dict[str, Any], where: str) -> StateConfig:
    state = _validate_or_defaults(_StateTable, table, where, "state")
    if state.backend == "s3" and state.bucket is None:
        raise ConfigError(
            'backend = "s3" needs a bucket',
            path=where,
            key="state.bucket",
            hint='add bucket = "my-team-mxflip-state" to [state]',
        )
    if state.lease < 1 or state.lease > 3600:
        raise ConfigError("must be between 1 second and 1 hour", path=where, key="state.lease")
    return StateConfig(
        backend=state.backend,
        bucket=state.bucket,
        prefix=state.prefix.strip("/"),
        region=state.region,
        endpoint_url=state.endpoint_url,
        lease=state.lease,
    )
