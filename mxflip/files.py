"""Files on disk, done one way: the state folder, atomic replacement, advisory locks.

Every state file mxflip writes (the journal, its lock, canary state, a zone file, a
node_exporter textfile) goes through here, so that each one is opened without following a
symlink, never inherited by a child process, never truncated when it is a lock, and
replaced only by a fsynced temporary file renamed over it (with the folder fsynced too).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mxflip.retry import Sleep, retrying

#: Suffix of the temporary file written beside the target before the rename.
TEMP_SUFFIX = ".mxflip-tmp"

#: Flags every state file is opened with: a planted symlink is refused (ELOOP), and a
#: reload command or other child never inherits the descriptor.
SAFE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


class LockBusy(Exception):
    """Another process holds the lock (after waiting, when a wait was asked for)."""


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user state folder: ``$XDG_STATE_HOME/mxflip`` (an absolute one only, as the
    XDG spec asks; a relative value is ignored), else the platform's default
    (``~/.local/state/mxflip`` on Linux). ``environ`` defaults to the process's."""
    env = (os.environ if environ is None else environ).get("XDG_STATE_HOME", "")
    if env and Path(env).is_absolute():
        return Path(env) / "mxflip"
    if env:  # relative: platformdirs would use it as it is, relative to the cwd
        return Path.home() / ".local" / "state" / "mxflip"
    import platformdirs

    return Path(platformdirs.user_state_dir("mxflip", appauthor=False))


def loose_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot hold private state (it is writable by every user: anyone
    could plant or swap the files mxflip trusts, as ssh says of a loose key file), or
    None when it can. A sticky bit does not help: another user may create the file
    first."""
    try:
        st = folder.stat()
    except OSError:
        return None  # a folder that does not exist is created private
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return f"{folder} is writable by every user (mode {mode:04o})"
    return None


def ensure_private_folder(folder: Path) -> None:
    """Create ``folder`` (mode 0700) when missing; raise ``PermissionError`` with the fix
    when it is writable by others. Raises ``OSError`` when it cannot be created."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    why = loose_folder(folder)
    if why is not None:
        raise PermissionError(f"{why}; run 'chmod o-w {folder}' or choose another folder")


def read_bytes(path: Path) -> bytes:
    """The content of ``path`` (not through a symlink). Raises ``OSError``."""
    fd = os.open(path, os.O_RDONLY | SAFE_FLAGS)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def append_synced(path: Path, data: bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Append ``data`` to ``path`` (created with ``mode``) and fsync it; a torn last line
    (a crash mid-write) gets a newline first so that it cannot swallow this one.
    ``fsync=False`` for a cache whose reader skips a torn line: a crash may lose it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | SAFE_FLAGS, mode)
    try:
        size = os.fstat(fd).st_size
        if size:
            rfd = os.open(path, os.O_RDONLY | SAFE_FLAGS)
            try:
                if os.pread(rfd, 1, size - 1) != b"\n":
                    data = b"\n" + data
            finally:
                os.close(rfd)
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Make ``data`` the content of ``path``: a temporary file in the same folder,
    fsynced, renamed over ``path``, then the folder fsynced.

    ``mode`` None keeps the old file's permission bits and owner (where we may set it;
    0644 for a new file), so that a name server that could read the old file can read the
    new one. On any failure the temporary file is removed and ``path`` is untouched.
    Raises ``OSError``.
    """
    try:
        old: os.stat_result | None = path.stat()
    except FileNotFoundError:
        old = None
    bits = mode if mode is not None else stat.S_IMODE(old.st_mode) if old else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), bits)
            if (
                old is not None
                and mode is None
                and (old.st_uid, old.st_gid)
                != (
                    os.geteuid(),
                    os.getegid(),
                )
            ):
                # Only root (or the owner, for the group) may do this; a file we cannot
                # give back to its owner is still readable through its mode bits.
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), old.st_uid, old.st_gid)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)


def check_writable(folder: Path) -> None:
    """Create a file in ``folder`` and remove it again; ``OSError`` when that fails.

    What ``doctor`` checks before a change: an existing lock or state file says nothing
    about whether a new one (a temporary file renamed over it) can be made there.
    """
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".mxflip-doctor-"):
        pass


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable. Some file systems (network, FUSE) refuse to
    fsync a folder; the rename has happened by then, so that is not an error."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # see above: the rename itself is done
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(
    path: Path,
    *,
    wait: float = 0.0,
    writable: bool = True,
    sleep: Sleep | None = None,
) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600/0644 when missing, never
    truncated, never through a symlink) and yield its descriptor.

    ``wait`` 0 refuses at once; otherwise waits with jittered backoff up to ``wait``
    seconds. Raises :class:`LockBusy` when another process holds it, ``OSError`` when
    the file cannot be opened. ``writable`` False opens it read-only (enough for flock,
    so another user who may not write the lock file can still take it).
    """
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CREAT | SAFE_FLAGS
    fd = os.open(path, flags, 0o600 if writable else 0o644)
    try:

        def take() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockBusy from None

        if wait <= 0:
            take()
        else:
            retry = retrying(
                lambda exc: isinstance(exc, LockBusy),
                attempts=10_000,
                max_wait=0.5,
                max_total=wait,
                sleep=sleep,
            )
            for attempt in retry:
                with attempt:
                    take()
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class JSONStateFile:
    """A private JSON document (canary state, watch state): read whole, written atomically
    (0600, in a private folder), read-modify-written under a lock file beside it.

    One home for what each such store used to repeat: every failure comes back through
    ``fail(message, hint)`` (the store's own error type), worded the same way for all.
    """

    def __init__(
        self,
        path: Path,
        *,
        what: str,
        fail: Callable[[str, str | None], Exception],
        setting: str,
        fresh: str,
        wait: float,
        holder: str,
    ) -> None:
        self.path = path
        #: What the document is, for messages: "canary state".
        self.what = what
        self.fail = fail
        #: The setting that moves the file ("[canary] state_file"), for the write hint.
        self.setting = setting
        #: What happens when a damaged file is moved aside.
        self.fresh = fresh
        #: How long ``updating`` waits for another holder, and who that usually is.
        self.wait = wait
        self.holder = holder

    def damaged(self, why: object) -> Exception:
        return self.fail(
            f"{self.what} {self.path} is damaged: {why}", f"move it aside; {self.fresh}"
        )

    def read(self) -> Any:
        """The decoded document, or None when the file does not exist yet."""
        try:
            text = read_bytes(self.path).decode("utf-8", "replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.fail(f"cannot read {self.what} {self.path}: {exc.strerror}", None) from None
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise self.damaged(exc) from None

    def write(self, doc: Any) -> None:
        try:
            ensure_private_folder(self.path.parent)
            atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o600)
        except OSError as exc:
            raise self.fail(
                f"cannot write {self.what} {self.path}: {exc.strerror or exc}",
                f"set {self.setting} to a writable place",
            ) from None

    @contextlib.contextmanager
    def updating(self) -> Iterator[None]:
        """Hold the document's lock (one read-modify-write at a time)."""
        try:
            ensure_private_folder(self.path.parent)
            lock = locked(self.path.with_name(self.path.name + ".lock"), wait=self.wait)
            lock.__enter__()
        except OSError as exc:
            raise self.fail(
                f"cannot lock {self.what} {self.path}: {exc.strerror or exc}", None
            ) from None
        except LockBusy:
            raise self.fail(
                f"{self.what} {self.path} stayed locked for {self.wait:g} s ({self.holder})", None
            ) from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)
