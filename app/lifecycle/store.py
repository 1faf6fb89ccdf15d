"""Where archives live, behind a small interface (local disk now; S3-compatible storage later).

An archive is named by a *key*: its root (``archive`` or ``trash``) then its place, e.g.
``archive/2025/01/20250113_143052_<id>.tar.gz``. Keys, not paths, go into the database, so a
moved ``ARCHIVE_BASE_PATH`` or another backend does not invalidate them.

Every write is crash-safe: bytes go to ``.{name}.partial`` beside the final name, are fsynced,
and only then renamed into place, with the folder fsynced after.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.lifecycle.naming import safe_member_path
from app.lifecycle.streams import STREAM_BLOCK

ROOTS = ("archive", "trash")
PARTIAL_SUFFIX = ".partial"


class StoreError(Exception):
    """The store cannot do what was asked (bad key, missing file, failed copy)."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(STREAM_BLOCK):
        digest.update(chunk)
    return digest.hexdigest()


def overwrite(path: Path) -> None:
    """Overwrite a file's bytes with zeros and flush them (best effort on copy-on-write and SSDs)."""
    size = path.stat().st_size
    zeros = bytes(STREAM_BLOCK)
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        written = 0
        while written < size:
            written += os.write(fd, zeros[: min(STREAM_BLOCK, size - written)])
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalArchiveStore:
    """Archives as files under the archive root and the trash root."""

    def __init__(self, archive_root: Path, trash_root: Path):
        self.roots = {"archive": archive_root, "trash": trash_root}

    # -- keys and paths ------------------------------------------------------------------
    def path(self, key: str) -> Path:
        root, _, rest = key.partition("/")
        if root not in self.roots:
            raise StoreError(f"archive key {key!r} has no known root")
        try:
            relative = safe_member_path(rest)
        except ValueError:
            raise StoreError(f"archive key {key!r} is not a safe path") from None
        return self.roots[root].joinpath(*relative.parts)

    def partial_path(self, key: str) -> Path:
        final = self.path(key)
        return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")

    # -- reading -------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def open(self, key: str) -> BinaryIO:
        fd = os.open(self.path(key), os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")

    def open_range(self, key: str, start: int, end: int | None) -> BinaryIO:
        """The stored bytes ``start``..``end`` (exclusive; None: to the end) as a file to read: what a
        ranged GET answers from object storage, and the only part of the archive a member read touches."""
        handle = self.open(key)
        handle.seek(start)
        return RangeReader(handle, None if end is None else end - start)  # type: ignore[return-value]

    def sha256(self, key: str) -> str:
        with self.open(key) as handle:
            return file_sha256(handle)

    # -- writing -------------------------------------------------------------------------
    def open_partial(self, key: str) -> BinaryIO:
        """Open a fresh partial file for ``key`` (a stale one from a crash is replaced)."""
        partial = self.partial_path(key)
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        return os.fdopen(fd, "wb")

    def publish(self, key: str) -> None:
        """Atomically rename the (fsynced) partial to its final name and fsync the folder."""
        final = self.path(key)
        os.replace(self.partial_path(key), final)
        fsync_dir(final.parent)

    def discard_partial(self, key: str) -> None:
        self.partial_path(key).unlink(missing_ok=True)

    def remove(self, key: str, *, secure: bool = False) -> None:
        path = self.path(key)
        if not path.exists():
            return
        if secure:
            overwrite(path)
        path.unlink()
        fsync_dir(path.parent)

    def move(self, source: str, target: str, expected_sha256: str) -> bool:
        """Place ``source``'s archive at ``target``; return True if ``source`` still needs removing.

        On one file system this is an atomic rename (the source is gone at once). Across file
        systems the bytes are copied to a partial, fsynced, checked against ``expected_sha256``
        and renamed into place; the source stays until the caller has recorded the move.
        """
        source_path, target_path = self.path(source), self.path(target)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source_path, target_path)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
        else:
            fsync_dir(target_path.parent)
            fsync_dir(source_path.parent)
            return False
        digest = hashlib.sha256()
        with self.open(source) as src, self.open_partial(target) as dst:
            while chunk := src.read(STREAM_BLOCK):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if digest.hexdigest() != expected_sha256:
            self.discard_partial(target)
            raise StoreError(f"{source} does not match its recorded SHA-256; not moved")
        self.publish(target)
        return True

    # -- listing (for reconcile) -----------------------------------------------------------
    def keys(self) -> Iterator[str]:
        """Every final archive file, as keys."""
        for root_name, root in self.roots.items():
            for path in self._files(root):
                if not path.name.startswith("."):
                    yield f"{root_name}/{path.relative_to(root).as_posix()}"

    def partials(self) -> Iterator[Path]:
        for root in self.roots.values():
            for path in self._files(root):
                if path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX):
                    yield path

    @staticmethod
    def _files(root: Path) -> Iterator[Path]:
        if not root.is_dir():
            return
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                yield Path(folder) / name


class RangeReader(io.RawIOBase):
    """Reads at most ``length`` bytes of ``handle`` (None: all that is left), then says EOF; closes it."""

    def __init__(self, handle: BinaryIO, length: int | None):
        self.handle, self.left = handle, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        want = len(buffer) if self.left is None else min(len(buffer), self.left)
        if want <= 0:
            return 0
        data = self.handle.read(want)
        buffer[: len(data)] = data
        if self.left is not None:
            self.left -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.handle.close()
        super().close()
