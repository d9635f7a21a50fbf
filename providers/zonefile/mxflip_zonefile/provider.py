"""The zone-file provider: thin glue between mxflip's interface and a zone file on disk."""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dns.zone
from pydantic import Field, ValidationInfo, field_validator, model_validator

from mxflip import (
    AccessCheck,
    Change,
    ChangeHandle,
    LockBusy,
    Provider,
    ProviderError,
    ProviderSettings,
    RRset,
    Sleep,
    StaleExpectationError,
    ZoneMX,
    atomic_write,
    check_writable,
    locked,
    normalize_name,
    timed,
)
from mxflip_zonefile import _reload, _zonefile
from mxflip_zonefile._patch import edit_in_place
from mxflip_zonefile._zonefile import ZoneFileError

_log = logging.getLogger(__name__)

Today = Callable[[], datetime.date]

_FIX_HINT = "fix the file by hand (named-checkzone ZONE FILE reports the same problems)"


#: The zone file itself cannot carry the lock: it is replaced by a rename on every write,
#: and a lock on the old inode would not stop a writer that opened the new one. The
#: sidecar (``.NAME.mxflip-lock`` beside the zone file) is never replaced or removed.
LOCK_SUFFIX = ".mxflip-lock"


def lock_path(zone_file: Path) -> Path:
    """The sidecar lock file of ``zone_file``."""
    return zone_file.with_name(f".{zone_file.name}{LOCK_SUFFIX}")


def _utc_today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


class ZoneFileSettings(ProviderSettings):
    """``[providers.NAME]`` keys for ``type = "zonefile"``.

    Either ``file`` (one zone) or ``directory`` with ``file_pattern`` (one file per zone).
    Relative paths are relative to the config file's folder.
    """

    #: One zone file. It holds ``zone``, or the zone its first ``$ORIGIN`` names.
    file: Path | None = None
    #: The zone ``file`` holds; needed only when the file has no ``$ORIGIN`` line.
    zone: str | None = None
    #: A folder of zone files, one per zone, named by ``file_pattern``.
    directory: Path | None = None
    #: The file name of a zone inside ``directory``; ``{zone}`` is the zone without the
    #: trailing dot (default ``"{zone}.zone"``: ``example.com.zone``).
    file_pattern: str | None = None
    #: A command run after each write, as a list of arguments (no shell), with ``{zone}``
    #: and ``{file}`` replaced: ``["rndc", "reload", "{zone}"]``.
    reload_command: list[str] | None = None
    #: Seconds the reload command may take before it is killed.
    reload_timeout: float = Field(default=30.0, gt=0, le=600)
    #: Seconds to wait for another writer's lock on the zone file.
    lock_timeout: float = Field(default=30.0, gt=0, le=600)

    @field_validator("file", "directory")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        value = value.expanduser()
        return value if value.is_absolute() or base is None else Path(base) / value

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else normalize_name(value)

    @field_validator("file_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.count("{zone}") != 1:
            raise ValueError('must contain {zone} once, for example "{zone}.zone" or "db.{zone}"')
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError(
                "must be a file name inside 'directory' (no '/' at the start, no '..')"
            )
        return value

    @field_validator("reload_command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            _reload.check_command(value)
        return value

    @model_validator(mode="after")
    def _check_files(self) -> ZoneFileSettings:
        if (self.file is None) == (self.directory is None):
            raise ValueError(
                "set either 'file' (one zone file) or 'directory' (one file per zone), not "
                + ("both" if self.file is not None else "neither")
            )
        if self.file is not None:
            if self.file_pattern is not None:
                raise ValueError("'file_pattern' goes with 'directory', not with 'file'")
            with _as_value_error():
                _zonefile.check(self.file, self.zone)
        else:
            if self.zone is not None:
                raise ValueError("'zone' goes with 'file'; with 'directory' the file name says it")
            assert self.directory is not None
            _check_directory(self.directory, self.pattern)
        return self

    @property
    def pattern(self) -> str:
        """``file_pattern`` or its default."""
        return self.file_pattern or "{zone}.zone"


@contextmanager
def _as_value_error() -> Iterator[None]:
    # pydantic reports a ValueError as a config error on the provider's table.
    try:
        yield
    except ZoneFileError as exc:
        raise ValueError(str(exc)) from None


def _check_directory(directory: Path, pattern: str) -> None:
    """The folder is readable and every zone file in it that matches ``pattern`` parses."""
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise ValueError(f"zone directory {directory} {what}")
    head, _, tail = pattern.partition("{zone}")
    name_re = re.compile(re.escape(head) + "(?P<zone>[^/]+)" + re.escape(tail) + r"\Z")
    try:
        found = sorted(directory.glob(pattern.replace("{zone}", "*")))
    except OSError as exc:
        raise ValueError(f"cannot list zone directory {directory}: {exc.strerror}") from None
    for path in found:
        match = name_re.search(path.relative_to(directory).as_posix())
        if match is None or match["zone"].startswith(".") or not path.is_file():
            continue
        try:
            zone = normalize_name(match["zone"])
        except ValueError:
            continue  # not named like a zone: not one of ours
        with _as_value_error():
            _zonefile.check(path, zone)


class ZoneFileProvider(Provider):
    """Reads and writes MX RRsets in RFC 1035 zone files.

    A write happens under an exclusive lock: parse the file, check every expectation, edit
    the MX RRsets, bump the SOA serial, write the new text to a temporary file and rename
    it over the old one; then, outside the lock, run the reload command if one is set.
    The new text is the old one with only the MX lines and the serial changed (comments
    and layout stay), or, where that cannot be done safely, the zone rendered afresh by
    dnspython (comments and layout lost); ``ChangeHandle.detail["rewritten"]`` says which.
    """

    Settings = ZoneFileSettings

    def __init__(
        self,
        name: str,
        settings: ZoneFileSettings,
        *,
        sleep: Sleep | None = None,
        today: Today = _utc_today,
    ) -> None:
        super().__init__(name)
        self._settings = settings
        self._sleep = sleep
        self._today = today
        self._file_zone: str | None = settings.zone

    @classmethod
    def from_settings(cls, name: str, settings: ProviderSettings) -> ZoneFileProvider:
        assert isinstance(settings, ZoneFileSettings)
        return cls(name, settings)

    # ------------------------------------------------------------------ files

    def path_for(self, zone: str) -> Path:
        """The zone file that holds ``zone``; ProviderError when this provider has none."""
        zone = _zone_name(zone)
        settings = self._settings
        if settings.file is not None:
            if zone != self._zone_of_file():
                raise ProviderError(
                    f"provider {self.name!r} holds only zone {self._file_zone} "
                    f"(file {settings.file}), not {zone}",
                    hint="use a provider whose 'file' holds this zone, or 'directory' for many",
                )
            return settings.file
        assert settings.directory is not None
        path = settings.directory / settings.pattern.replace("{zone}", zone.rstrip("."))
        if not path.exists():
            raise ProviderError(
                f"there is no zone file for zone {zone}: {path} does not exist",
                hint="create the zone file, or check 'directory' and 'file_pattern'",
            )
        return path

    def _load(self, zone: str, path: Path) -> dns.zone.Zone:
        with _as_provider_error():
            return _zonefile.load(path, _zone_name(zone))

    # ------------------------------------------------------------------ interface

    def read(self, zone: str, names: Sequence[str]) -> dict[str, RRset | None]:
        """Read the zone file once and return each name's MX RRset. No lock is needed:
        writers replace the file by a rename, so a reader sees the old or the new one."""
        path = self.path_for(zone)
        origin = _zone_name(zone)
        text = self._read_text(path)
        quick = _zonefile.quick_read(text, origin)  # a plain file needs no dnspython parse
        if quick is not None:
            _refuse_outside(origin, names, path)
            return {name: quick.read_mx(name) for name in names}
        with _as_provider_error():
            parsed = _zonefile.parse(text, path, origin)
        _refuse_outside(parsed, names, path)
        with _as_provider_error():
            return {name: _zonefile.read_mx(parsed, name) for name in names}

    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        """Check every expectation and write all changes with one new serial, or nothing."""
        handle = ChangeHandle(provider=self.name, zone=zone, changes=tuple(changes))
        if not changes:
            return handle
        path = self.path_for(zone).resolve()  # a symlinked zone file is written where it lives
        try:
            with (
                # Read-only is enough for flock, so another user who may write the zone can
                # still take a lock file first created by someone else.
                locked(
                    lock_path(path),
                    wait=max(self._settings.lock_timeout, 1e-3),
                    writable=False,
                    sleep=self._sleep,
                ),
                timed(
                    _log,
                    "zone file write",
                    level=logging.INFO,
                    file=str(path),
                    changes=len(changes),
                ),
            ):
                written = self._write_locked(zone, path, changes)
        except LockBusy:
            raise ProviderError(
                f"zone file {path} stayed locked by another writer for "
                f"{self._settings.lock_timeout:g} s; nothing was changed",
                hint=f"another mxflip run may be writing it; wait, or see who holds "
                f"{lock_path(path)} (fuser or lsof)",
            ) from None
        except OSError as exc:
            raise ProviderError(
                f"cannot write zone file {path}: {exc.strerror or exc}; nothing was changed",
                hint=f"mxflip needs write access to the folder {path.parent}: it writes a "
                "temporary file and a lock file there and renames the new zone over the old",
            ) from None
        if written is None:
            return handle
        serial, rewritten = written
        self._reload(zone, path, serial)
        return ChangeHandle(
            provider=self.name,
            zone=zone,
            changes=tuple(changes),
            detail={"file": str(path), "serial": serial, "rewritten": rewritten},
        )

    def _write_locked(
        self, zone: str, path: Path, changes: Sequence[Change]
    ) -> tuple[int, bool] | None:
        """Check, edit and replace the file; (new serial, whether the zone was rewritten
        from scratch), or None when every change was a no-op."""
        text = self._read_text(path)
        with _as_provider_error():
            parsed, layout = _zonefile.parse_with_layout(text, path, _zone_name(zone))
        _refuse_outside(parsed, [c.name for c in changes], path)
        with _as_provider_error():
            stale = [c.name for c in changes if _zonefile.read_mx(parsed, c.name) != c.expected]
        if stale:
            raise StaleExpectationError(
                f"the MX records of {', '.join(n.rstrip('.') for n in stale)} in zone file "
                f"{path} differ from what the plan expected; nothing was changed"
            )
        pending = [c for c in changes if not c.is_noop]
        if not pending:
            return None
        with _as_provider_error():
            for change in pending:
                _zonefile.write_mx(parsed, change.name, change.new)
        old_serial = _zonefile.serial(parsed)
        new_serial = _zonefile.bump_serial(parsed, self._today())
        # Prefer an in-place edit that keeps comments and layout; it is checked to parse to
        # exactly the edited zone, else the whole zone is rendered afresh.
        new_text = edit_in_place(
            text, layout, parsed, path, [(c.name, c.new) for c in pending], old_serial, new_serial
        )
        rewritten = new_text is None
        if new_text is None:
            new_text = _zonefile.render(parsed)
        atomic_write(path, new_text.encode("utf-8"))
        return new_serial, rewritten

    @staticmethod
    def _read_text(path: Path) -> str:
        with _as_provider_error():
            return _zonefile.read_text(path)

    def _reload(self, zone: str, path: Path, serial: int) -> None:
        command = self._settings.reload_command
        if not command:
            return
        try:
            with timed(_log, "reload command", level=logging.INFO, program=command[0], zone=zone):
                _reload.run(
                    _reload.expand(command, _zone_name(zone), path),
                    timeout=self._settings.reload_timeout,
                )
        except _reload.ReloadError as exc:
            raise ProviderError(
                f"zone file {path} was written (serial {serial}), but the reload command "
                f"'{exc.program}' failed: {exc.detail}",
                hint="the name server serves the old records until the zone is reloaded; "
                "fix reload_command or reload the zone by hand (the file is already right)",
            ) from None

    def wait(self, handle: ChangeHandle, timeout: float) -> None:
        """Nothing to wait for: the file is the truth once it is renamed into place (and the
        reload command, if any, has returned)."""
        return None

    # ------------------------------------------------------------------ onboarding

    def list_zones(self) -> list[str]:
        """The zone of ``file``, or every zone file of ``directory`` that matches
        ``file_pattern``."""
        settings = self._settings
        if settings.file is not None:
            return [self._zone_of_file()]
        assert settings.directory is not None
        head, _, tail = settings.pattern.partition("{zone}")
        zones = []
        for path in settings.directory.glob(settings.pattern.replace("{zone}", "*")):
            bare = path.name[len(head) : len(path.name) - len(tail)]
            zones.append(_zone_name(bare))
        return sorted(zones)

    def _zone_of_file(self) -> str:
        assert self._settings.file is not None
        if self._file_zone is None:
            with _as_provider_error():
                self._file_zone = _zonefile.origin_of(self._settings.file)
        return self._file_zone

    def list_mx(self, zone: str) -> ZoneMX:
        """Every MX RRset of the zone file (one parse)."""
        zone = _zone_name(zone)
        parsed = self._load(zone, self.path_for(zone))
        with _as_provider_error():
            return ZoneMX(zone, tuple(_zonefile.all_mx(parsed)))

    def check_access(self, zone: str) -> list[AccessCheck]:
        """The file parses (read), and its folder lets this user create the temporary
        file and the lock a write needs (change): checked by creating and removing an
        empty temporary file there, which leaves the zone file untouched."""
        path = self.path_for(zone)
        self._load(zone, path)
        checks = [AccessCheck(zone, "read", True, f"zone file {path} parses")]
        folder = path.resolve().parent
        try:
            check_writable(folder)
        except OSError as exc:
            checks.append(
                AccessCheck(
                    zone,
                    "change",
                    False,
                    f"cannot create a file in {folder}: {exc.strerror or exc}",
                    hint=f"give this user write access to {folder} (mxflip writes a "
                    "temporary file and a lock there and renames the new zone over the old)",
                )
            )
        else:
            checks.append(AccessCheck(zone, "change", True, f"{folder} is writable"))
        return checks

    def nameservers(self, zone: str) -> list[str]:
        """The NS names at the zone's apex, as the zone file lists them."""
        path = self.path_for(zone)
        names = _zonefile.nameservers(self._load(zone, path))
        if not names:  # pragma: no cover - parsing already requires NS at the apex
            raise ProviderError(f"zone file {path} lists no NS records for zone {zone}")
        return names


def _zone_name(zone: str) -> str:
    try:
        return normalize_name(zone)
    except ValueError as exc:
        raise ProviderError(f"{zone!r} is not a zone name: {exc}") from None


def _refuse_outside(parsed: dns.zone.Zone | str, names: Sequence[str], path: Path) -> None:
    outside = _zonefile.names_outside(parsed, names)
    if outside:
        origin = parsed if isinstance(parsed, str) else parsed.origin
        raise ProviderError(
            f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not inside zone "
            f"{origin} (file {path})",
            hint="check the domain's 'zone' setting",
        )


@contextmanager
def _as_provider_error() -> Iterator[None]:
    try:
        yield
    except ZoneFileError as exc:
        raise ProviderError(str(exc), hint=_FIX_HINT) from None
