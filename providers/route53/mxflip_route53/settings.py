"""The ``[providers.NAME]`` table for ``type = "route53"``.

Credentials are deliberately not settings: they come from the AWS credential chain
(environment, shared config and credentials files with profiles, SSO, container and
instance roles), so a configuration file never holds a secret.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from mxflip import ProviderSettings, normalize_name

#: Keys people paste from other tools; refused with a pointer to the credential chain.
_CREDENTIAL_KEYS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "access_key",
        "access_key_id",
        "secret_key",
        "secret_access_key",
        "session_token",
    }
)


def bare_zone_id(value: str) -> str:
    """``/hostedzone/Z123`` or ``Z123`` → ``Z123`` (Route53 answers with the long form)."""
    text = value.strip()
    if text.startswith("/hostedzone/"):
        text = text[len("/hostedzone/") :]
    if not text or not text.isalnum():
        raise ValueError(f"{value!r} is not a Route53 hosted zone id (like Z0123456789ABCDEFGHIJ)")
    return text.upper()


class Route53Settings(ProviderSettings):
    """Settings of a Route53 provider; every key is optional."""

    # Never echo what was typed into an error: a misplaced key could hold a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    #: A named profile of ~/.aws/config (SSO profiles included); default: the usual chain.
    profile: str | None = None
    #: Region for signing; Route53 is global, so this matters only with ``endpoint_url``.
    region: str | None = None
    #: Another endpoint (a VPC endpoint, a proxy, an emulator), ``http(s)://host[:port]``.
    endpoint_url: str | None = None
    #: Which hosted zone to use when several share a name (public and private views):
    #: one id, or a table mapping zone names to ids.
    hosted_zone_id: str | dict[str, str] | None = None
    #: Seconds allowed for connecting and for each answer.
    timeout: float = Field(default=15.0, gt=0, le=300)
    #: Attempts per API call when Route53 throttles, is busy or fails (5xx, network).
    max_attempts: int = Field(default=5, ge=1, le=20)
    #: Longest pause, in seconds, between two such attempts (full jitter below it).
    backoff_max: float = Field(default=10.0, gt=0, le=300)
    #: Upper bound, in seconds, on waiting for a change to become INSYNC.
    wait_timeout: float = Field(default=600.0, gt=0, le=3600)
    #: First and longest pause, in seconds, between two GetChange polls.
    poll_initial: float = Field(default=1.0, gt=0, le=60)
    poll_max: float = Field(default=15.0, gt=0, le=300)

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = sorted(k for k in data if isinstance(k, str) and k.lower() in _CREDENTIAL_KEYS)
            if found:
                raise ValueError(
                    f"AWS credentials ({', '.join(found)}) do not belong in the mxflip "
                    "configuration; remove them and use the AWS credential chain (environment, "
                    "~/.aws/credentials, a 'profile', SSO or an instance role)"
                )
        return data

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not an http(s):// URL")
        return value

    @field_validator("hosted_zone_id")
    @classmethod
    def _zone_ids(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        if value is None or isinstance(value, str):
            return None if value is None else bare_zone_id(value)
        return {normalize_name(zone): bare_zone_id(zid) for zone, zid in value.items()}

    @model_validator(mode="after")
    def _poll_bounds(self) -> Route53Settings:
        if self.poll_initial > self.poll_max:
            raise ValueError(f"poll_initial {self.poll_initial:g} is above poll_max")
        return self

    def pinned_zone_id(self, zone: str) -> tuple[str | None, bool]:
        """The configured hosted zone id for ``zone`` and whether it names this zone alone.

        A single id applies to whichever zone it belongs to (``False``); a table entry
        is for that zone only (``True``).
        """
        if isinstance(self.hosted_zone_id, dict):
            found = self.hosted_zone_id.get(zone)
            return found, found is not None
        return self.hosted_zone_id, False
