"""Files already hashed: a cached model checked once is not read again while it is unchanged.

A record is `<folder>/checked/<sha256>`, holding the resolved path, size, mtime and inode of
the file that hashed to it. A file changed since (other size, time or inode) is hashed again.
The record only saves a read: the copy into a volume is hashed again inside the helper
container and compared with the same digest, so a file altered behind the record's back is
still refused there.
"""

from __future__ import annotations

from pathlib import Path

from homelab.files import write_atomic

__all__ = ["mark_checked", "was_checked"]


def _identity(path: Path) -> str:
    real = path.resolve()
    st = real.stat()
    return f"{real}\n{st.st_size}\n{st.st_mtime_ns}\n{st.st_ino}\n"


def was_checked(folder: Path, sha256: str, path: Path) -> bool:
    """Whether `path` is, unchanged, the file that hashed to `sha256`."""
    try:
        return (folder / "checked" / sha256).read_text() == _identity(path)
    except (OSError, UnicodeDecodeError):
        return False


def mark_checked(folder: Path, sha256: str, path: Path) -> None:
    """Record that `path` hashed to `sha256` (atomically)."""
    (folder / "checked").mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "checked" / sha256, _identity(path).encode())
