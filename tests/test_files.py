"""homelab.files: inputs are regular files read with a cap; outputs are replaced whole or not at all.

The failures are real ones: a FIFO, /dev/zero, a directory, a symlink, a tmpfs of 64 KiB that
fills up, a tmpfs remounted read-only (root writes anywhere else), /sys (which refuses root).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from homelab.errors import FileAccessError
from homelab.files import read_regular, write_atomic
from tests.fixtures.tmpfs import TINY_TMPFS_BYTES, read_only, tiny_tmpfs

OLD = b"old content, whole\n"


def leftovers(folder: Path) -> list[str]:
    """Temporary files write_atomic may have left beside its target."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "in.yaml"
    path.write_bytes(b"x" * 100)

    assert read_regular(path, limit_bytes=100) == b"x" * 100


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: os.mkfifo(p), "not a regular file (a pipe, socket or device", id="fifo"),
        pytest.param(lambda p: p.mkdir(), "is a directory, not a file", id="directory"),
        pytest.param(lambda p: None, "file not found", id="missing"),
        pytest.param(lambda p: p.write_bytes(b"x" * 101), "larger than 100 bytes", id="over-the-cap"),
    ],
)
def test_what_is_not_a_small_regular_file_is_refused_with_its_path(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "in.yaml"
    make(path)  # type: ignore[operator]

    with pytest.raises(FileAccessError) as caught:
        read_regular(path, limit_bytes=100)

    assert str(caught.value).startswith(f"{path}: ")
    assert message in caught.value.message


def test_a_device_that_never_ends_is_refused_without_reading_it() -> None:
    with pytest.raises(FileAccessError, match="not a regular file"):
        read_regular("/dev/zero", limit_bytes=100)


def test_a_file_is_replaced_with_its_mode_kept_and_nothing_left_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "out.yaml"
    path.write_bytes(OLD)
    path.chmod(0o600)

    write_atomic(path, b"new\n")

    assert path.read_bytes() == b"new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_a_new_file_is_readable_by_all(tmp_path: Path) -> None:
    write_atomic(tmp_path / "new.yaml", b"new\n")

    assert stat.S_IMODE((tmp_path / "new.yaml").stat().st_mode) == 0o644


def test_a_symlink_is_refused_unless_asked_and_then_its_target_is_written(tmp_path: Path) -> None:
    target = tmp_path / "real.yaml"
    target.write_bytes(OLD)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)

    with pytest.raises(FileAccessError, match="is a symlink; refusing to write through it"):
        write_atomic(link, b"new\n")
    assert target.read_bytes() == OLD and link.is_symlink()

    write_atomic(link, b"new\n", follow_symlinks=True)
    assert target.read_bytes() == b"new\n" and link.is_symlink()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        pytest.param("dir", "is a directory", id="directory"),
        pytest.param("missing/out.yaml", "does not exist", id="missing-folder"),
    ],
)
def test_an_output_that_cannot_be_a_file_is_refused(tmp_path: Path, where: str, message: str) -> None:
    (tmp_path / "dir").mkdir()

    with pytest.raises(FileAccessError, match=message):
        write_atomic(tmp_path / where, b"new\n")

    assert not (tmp_path / "missing").exists()


def test_a_folder_root_may_not_write_in_is_permission_denied() -> None:
    # /sys refuses new files even to root (tests run as root, so chmod cannot show this).
    with pytest.raises(FileAccessError) as caught:
        write_atomic("/sys/homelab-test.yaml", b"new\n")

    assert caught.value.message == "permission denied"


def test_a_read_only_folder_keeps_the_old_file(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "ro") as folder:
        path = folder / "out.yaml"
        path.write_bytes(OLD)
        read_only(folder)

        with pytest.raises(FileAccessError) as caught:
            write_atomic(path, b"new\n")

        assert str(caught.value).startswith(f"{path}: ")
        assert "read-only" in caught.value.message.lower()
        assert path.read_bytes() == OLD


def test_a_full_disk_leaves_the_old_file_whole_and_no_fragment(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "small") as folder:
        path = folder / "out.yaml"
        path.write_bytes(OLD)

        with pytest.raises(FileAccessError) as caught:
            write_atomic(path, b"y" * (2 * TINY_TMPFS_BYTES))

        assert caught.value.message == "no space left on the device"
        assert path.read_bytes() == OLD
        assert leftovers(folder) == []


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_device_or_fifo_is_never_replaced_by_a_file(tmp_path: Path, kind: str) -> None:
    # /dev/null itself would be the natural case; a node made here keeps the test off the host's.
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the same device as /dev/null

    with pytest.raises(FileAccessError, match="not a regular file"):
        write_atomic(path, b"new\n")

    assert not stat.S_ISREG(path.lstat().st_mode)


def test_a_symlink_loop_followed_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")

    with pytest.raises(FileAccessError, match="is a symlink that leads nowhere"):
        write_atomic(tmp_path / "a", b"new\n", follow_symlinks=True)


def test_a_long_legal_name_is_written_and_an_illegal_one_is_refused(tmp_path: Path) -> None:
    # The temporary name adds characters to the target's: a 255-character name must still work.
    longest = tmp_path / ("n" * 255)
    write_atomic(longest, b"new\n")
    assert longest.read_bytes() == b"new\n" and leftovers(tmp_path) == []

    with pytest.raises(FileAccessError, match="File name too long"):
        write_atomic(tmp_path / ("n" * 256), b"new\n")
