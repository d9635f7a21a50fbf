"""``mxflip state migrate --to s3``: copy local state into the shared backend.

Journal records keep their order and get names derived from their place in the local file
and their content, created with ``If-None-Match: *``: a second run finds them there and
copies nothing twice; nothing already in the bucket is ever replaced. Documents (canary
state, watch state) are created only where the shared backend has none.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mxflip.config import Config
from mxflip.errors import UsageError
from mxflip.files import read_bytes
from mxflip.journal import JournalError, default_journal_path
from mxflip.state.base import PreconditionFailed, StateError, check_key, encode

#: The canary state's document key in a backend.
CANARY_KEY = "canary"


@dataclass
class MigrationReport:
    source: str
    target: str
    copied: int = 0
    present: int = 0
    unreadable: int = 0
    documents_copied: list[str] = field(default_factory=list)
    documents_kept: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "journal": {
                "copied": self.copied,
                "already_present": self.present,
                "unreadable_lines": self.unreadable,
            },
            "documents": {"copied": self.documents_copied, "kept": self.documents_kept},
        }

    def lines(self) -> list[str]:
        out = [
            f"Journal: {self.copied} record(s) copied to {self.target}, "
            f"{self.present} already there"
            + (f", {self.unreadable} unreadable line(s) skipped" if self.unreadable else "")
            + "."
        ]
        for key in self.documents_copied:
            out.append(f"Copied {key}.")
        for key in self.documents_kept:
            out.append(f"Kept the shared {key}: it exists there and is never overwritten.")
        out.append(f"The local files in {self.source} are unchanged.")
        return out


def migrate_to_shared(config: Config) -> MigrationReport:
    from mxflip.canary.state import state_file
    from mxflip.state import open_state
    from mxflip.state.s3 import S3Backend

    if config.state.backend != "s3":
        raise UsageError(
            'set [state] backend = "s3" (with bucket, prefix, region) in the config first',
            hint="migrate copies the local files into the backend [state] names",
        )
    journal_path = default_journal_path(config.journal.path)
    target = open_state(config)
    assert isinstance(target, S3Backend)
    report = MigrationReport(str(journal_path.parent), target.path)
    try:
        _copy_journal(journal_path, target, report)
        docs = journal_path.parent / "state"
        if docs.is_dir():
            for path in sorted(docs.rglob("*.json")):
                key = path.relative_to(docs).with_suffix("").as_posix()
                if key.startswith("leader/"):
                    continue  # a local watcher's lease means nothing in the bucket
                _copy_document(path, key, target, report)
        canary = state_file(config)
        if canary.exists():
            _copy_document(canary, CANARY_KEY, target, report)
        from mxflip.watch.store import WATCH_KEY, default_state_path

        watch = (config.watch.state_file if config.watch else None) or default_state_path(
            journal_path
        )
        if watch.exists():
            _copy_document(watch, WATCH_KEY, target, report)
    finally:
        target.close()
    return report


def _copy_journal(path: Path, target: Any, report: MigrationReport) -> None:
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise JournalError(f"cannot read the journal {path}: {exc.strerror or exc}") from None
    stamp = 0
    for index, raw in enumerate(data.split(b"\n")):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            ts = float(record["ts"])
            if not isinstance(record.get("op"), str) or not isinstance(record.get("type"), str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            report.unreadable += 1
            continue
        # Ordered as in the file even when timestamps repeat or step back.
        stamp = max(stamp + 1, int(ts * 1e9))
        digest = hashlib.sha256(encode(record)).hexdigest()[:12]
        key = f"{target.journal_prefix}{stamp:020d}-migrated-{index:08d}-{digest}.json"
        try:
            target.put_record(key, record)
        except PreconditionFailed:
            report.present += 1
            continue
        report.copied += 1


def _copy_document(path: Path, key: str, target: Any, report: MigrationReport) -> None:
    try:
        check_key(key)
        data = json.loads(read_bytes(path))
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot copy {path}: {exc}") from None
    if not isinstance(data, dict):
        raise StateError(f"cannot copy {path}: not a JSON object")
    try:
        target.put(key, data, version=None)
    except PreconditionFailed:
        report.documents_kept.append(key)
        return
    report.documents_copied.append(key)
