"""Files read from and written for the user: regular files only, reads capped, writes atomic.

A FIFO given as an input blocks `open()` forever and `/dev/zero` never ends, so every input is
checked to be a regular file (without opening it first) and read up to a cap. An output is
written beside its target and renamed over it, so a full disk or a crash leaves the old file
whole, never a fragment; a symlink is refused rather than followed unless the caller allows it.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from homelab.errors import FileAccessError

__all__ = ["check_replaceable", "open_regular", "read_regular", "write_atomic"]


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "file not found"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.EISDIR:
        return "is a directory"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


def open_regular(path: str | Path, *, what: str = "file") -> BinaryIO:
    """Open `path` for binary reading after checking it is a regular file.

    Raises:
        FileAccessError: missing, unreadable, or not a regular file (a FIFO, device, directory).
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting, and the
        # type is checked on the open file itself, so a file swapped in between is caught too.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise FileAccessError(path, _reason(exc)) from None
    except ValueError:  # an embedded NUL byte
        raise FileAccessError(repr(str(path)), "a file name cannot hold a NUL byte") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise FileAccessError(path, f"is a directory, not a {what}")
        raise FileAccessError(path, f"not a regular file (a pipe, socket or device cannot be a {what})")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: str | Path, *, limit_bytes: int, what: str = "file") -> bytes:
    """The whole content of a regular file of at most `limit_bytes`.

    Raises:
        FileAccessError: as `open_regular`, or the file is larger than the cap.
    """
    with open_regular(path, what=what) as handle:
        data = handle.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise FileAccessError(path, f"larger than {limit_bytes:,} bytes; a {what} is never that big")
    return data


# The temporary file's name is the target's plus about 16 characters; the target's part is cut
# so that a legal name of up to 255 characters still leaves room for them.
_TEMP_PREFIX_CHARS = 200


def _replaceable(target: Path, follow_symlinks: bool) -> tuple[Path, int]:
    """The file `write_atomic` may replace (a followed symlink resolved), and the mode to give it.

    Raises:
        FileAccessError: a symlink not to be followed or a loop, a directory, a device or FIFO,
            a missing folder.
        OSError: the name cannot even be looked up (too long, say).
    """
    if target.is_symlink():
        if not follow_symlinks:
            raise FileAccessError(target, "is a symlink; refusing to write through it")
        try:
            target = target.resolve()
        except (OSError, RuntimeError) as exc:  # a loop: RuntimeError from 3.11's pathlib, OSError later
            raise FileAccessError(target, "is a symlink that leads nowhere (a loop)") from exc
    if target.is_dir():
        raise FileAccessError(target, "is a directory")
    if target.exists() and not target.is_file():
        # Renaming over /dev/null or a FIFO would replace the device itself with a file.
        raise FileAccessError(target, "not a regular file (a pipe, socket or device); refusing to replace it")
    if not target.parent.is_dir():
        raise FileAccessError(target, f"folder {target.parent} does not exist")
    return target, stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644


def check_replaceable(path: str | Path, *, follow_symlinks: bool = False) -> None:
    """Refuse now what `write_atomic` would refuse later, for a command that writes only after long work.

    Raises:
        FileAccessError: as `write_atomic` for a symlink, a directory, a device or FIFO, a
            missing folder, or a folder that is not writable.
    """
    try:
        target, _ = _replaceable(Path(path), follow_symlinks)
    except OSError as exc:
        raise FileAccessError(path, _reason(exc)) from None
    if not os.access(target.parent, os.W_OK):
        raise FileAccessError(target, f"folder {target.parent} is not writable")


def write_atomic(path: str | Path, data: bytes, *, follow_symlinks: bool = False) -> None:
    """Replace `path` with `data` all at once, keeping the old file's mode.

    The data goes to a temporary file in the same folder, is fsynced, then renamed over the
    target: readers see the old file or the new one, never a fragment.

    Raises:
        FileAccessError: the folder is missing or not writable, the target is a directory, a
            device or FIFO, a symlink (unless `follow_symlinks`), or the disk is full.
    """
    target = Path(path)
    try:
        target, mode = _replaceable(target, follow_symlinks)
        prefix = f".{target.name[:_TEMP_PREFIX_CHARS]}."
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")
    except OSError as exc:  # a name too long, a folder not writable, ...
        raise FileAccessError(target, _reason(exc)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise FileAccessError(target, _reason(exc)) from None
