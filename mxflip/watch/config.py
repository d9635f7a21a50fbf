"""The ``[watch]`` table: how often rounds run, what a failing primary path leads to, and
where alerts go.

Notification URLs may hold secrets (a Slack token is part of its URL), so they may come
from an environment variable the file names (``notify_env``); the file never needs to hold
them, and nothing mxflip writes ever shows more of a URL than its scheme.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from mxflip.config import _Duration, _validate
from mxflip.errors import ConfigError

#: Apprise schemes that deliver by e-mail: the path being watched may be the broken one.
EMAIL_SCHEMES = ("mailto", "mailtos", "email", "sendgrid", "ses", "mailgun", "sparkpost")


@dataclass(frozen=True)
class WatchConfig:
    """The validated ``[watch]`` table (durations in seconds)."""

    interval: float = 300.0
    on_primary_failing: str = "notify"
    failing_rounds: int = 2
    recovered_rounds: int = 3
    max_auto_switches: int = 1
    auto_window: float = 86400.0
    cooldown: float = 3600.0
    proposal_ttl: float = 3600.0
    notify: tuple[str, ...] = ()
    #: Name of an environment variable holding more URLs (whitespace or comma separated).
    notify_env: str | None = None
    remind_every: float = 3600.0
    heartbeat_url: str | None = None
    heartbeat_url_env: str | None = None
    #: Canary through every live MX host each round (default: one host per round, in turn).
    canary_every_host: bool = False
    #: Switch with ``--now`` (no TTL pre-lowering wait while mail is being lost).
    failover_now: bool = True
    #: Seconds a notification or heartbeat request may take.
    timeout: float = 10.0
    #: The journal lock held longer than this is an alert.
    lock_warn_after: float = 1800.0
    #: None: ``watch.json`` beside the journal.
    state_file: Path | None = None

    def notify_urls(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The configured URLs plus those in ``notify_env`` (read now, so a reload or a
        restart picks up a rotated secret)."""
        env = os.environ if environ is None else environ
        urls = list(self.notify)
        if self.notify_env:
            urls += [u for u in env.get(self.notify_env, "").replace(",", " ").split() if u]
        return urls

    def heartbeat(self, environ: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if environ is None else environ
        if self.heartbeat_url_env and env.get(self.heartbeat_url_env):
            return env[self.heartbeat_url_env].strip()
        return self.heartbeat_url


def _env_name(value: str | None) -> str | None:
    if value is not None and (
        not value or not value.replace("_", "a").isalnum() or value[0].isdigit()
    ):
        raise ValueError(
            f"{value!r} is not an environment variable name (it names the variable holding "
            "the URLs, not the URLs themselves)"
        )
    return value


def _check_url(url: str) -> str:
    problem = apprise_problem(url)
    if problem:
        raise ValueError(problem)
    return url


#: One Apprise URL, checked item by item so that errors name the list index.
_NotifyURL = Annotated[str, AfterValidator(_check_url)]


class _WatchTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    interval: _Duration = 300.0
    on_primary_failing: Literal["notify", "propose", "failover"] = "notify"
    failing_rounds: int = Field(default=2, ge=1, le=1000)
    recovered_rounds: int = Field(default=3, ge=1, le=1000)
    max_auto_switches: int = Field(default=1, ge=0, le=1000)
    auto_window: _Duration = 86400.0
    cooldown: _Duration = 3600.0
    proposal_ttl: _Duration = 3600.0
    notify: list[_NotifyURL] = Field(default_factory=lambda: [])  # see config._ProbeTable
    notify_env: str | None = None
    remind_every: _Duration = 3600.0
    heartbeat_url: str | None = None
    heartbeat_url_env: str | None = None
    canary_every_host: bool = False
    failover_now: bool = True
    timeout: _Duration = 10.0
    lock_warn_after: _Duration = 1800.0
    state_file: str | None = Field(default=None, min_length=1)

    @field_validator("notify_env", "heartbeat_url_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


def scheme(url: str) -> str:
    """What may be shown of a notification URL: its scheme (the rest may be a secret)."""
    head, sep, _ = url.partition("://")
    return f"{head.lower()}://…" if sep else "?"


def apprise_problem(url: str) -> str | None:
    """None when Apprise can use ``url``; else a sentence that never repeats the URL."""
    if "://" not in url:
        return "not a notification URL (expected something like slack://… or json://…)"
    import apprise

    try:
        ok = apprise.Apprise.instantiate(url) is not None
    except Exception:  # Apprise plugins raise anything on malformed input
        ok = False
    if not ok:
        return f"Apprise cannot use this {scheme(url)} URL (unknown scheme or malformed)"
    return None


def parse_watch(raw: Mapping[str, Any], where: str, base_dir: Path) -> WatchConfig | None:
    """Validate ``[watch]``; None when the file has none (watch then uses the defaults)."""
    if "watch" not in raw:
        return None
    table = raw["watch"]
    if not isinstance(table, dict):
        raise ConfigError("must be a table", path=where, key="watch")
    w: _WatchTable = _validate(_WatchTable, table, where, "watch")
    for key in ("auto_window", "cooldown", "proposal_ttl", "remind_every"):
        if getattr(w, key) < 1:
            raise ConfigError("must be at least 1s", path=where, key=f"watch.{key}")
    fields = w.model_dump(exclude={"notify", "state_file"})
    state_file = None if w.state_file is None else base_dir / Path(w.state_file).expanduser()
    return WatchConfig(**fields, notify=tuple(w.notify), state_file=state_file)


def watch_warnings(
    watch: WatchConfig | None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """What ``mxflip validate`` warns about: e-mail channels, URLs from the environment
    that Apprise cannot use, and a watcher with no channel at all."""
    if watch is None:
        return []
    out: list[str] = []
    urls = watch.notify_urls(environ)
    for url in urls:
        if url.partition("://")[0].lower() in EMAIL_SCHEMES:
            out.append(
                f"watch.notify: {scheme(url)} sends alerts by e-mail; the mail path being "
                "watched may be the broken one (add a chat or paging channel)"
            )
    for url in urls[len(watch.notify) :]:
        problem = apprise_problem(url)
        if problem:
            out.append(f"watch.notify_env ({watch.notify_env}): {problem}")
    if watch.notify_env and not urls[len(watch.notify) :]:
        out.append(f"watch.notify_env: ${watch.notify_env} is not set or empty")
    if not urls:
        out.append("watch: no notification channel (notify); alerts only go to the log")
    return out


def check_env_urls(watch: WatchConfig, environ: Mapping[str, str] | None = None) -> None:
    """Refuse (exit 2, one line) a URL from ``notify_env`` that Apprise cannot use."""
    for url in watch.notify_urls(environ)[len(watch.notify) :]:
        problem = apprise_problem(url)
        if problem:
            raise ConfigError(problem, key=f"watch.notify_env (${watch.notify_env})")
