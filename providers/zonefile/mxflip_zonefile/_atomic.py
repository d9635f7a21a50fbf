"""Private: replace a file atomically, so a reader (or a crash) never sees half a file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

#: Suffix of the temporary file written beside the target before the rename.
TEMP_SUFFIX = ".mxflip-tmp"


def replace_atomically(path: Path, data: bytes) -> None:
    """Make ``data`` the content of ``path``: write a temporary file in the same folder,
    fsync it, rename it over ``path`` and fsync the folder.

    The new file keeps the old one's permission bits (and owner, where we may set it), so
    a name server that could read the old file can read the new one. On any failure the
    temporary file is removed and ``path`` is untouched. Raises ``OSError``.
    """
    old = path.stat()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), stat.S_IMODE(old.st_mode))
            if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
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
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk. Some file systems
    # (network, FUSE) refuse to fsync a directory; the rename has happened by then, so
    # failing here would report a written file as not written.
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself is done
    finally:
        os.close(fd)
