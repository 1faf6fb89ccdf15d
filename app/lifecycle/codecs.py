"""Compression codecs for run archives, as streams: nothing is ever held whole in memory.

gzip goes through ISA-L (python-isal): standard ``.tar.gz`` output, several times faster than
zlib, threaded like pigz. zstd goes through ``zstandard`` with its own worker threads.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import zlib
from typing import BinaryIO

import zstandard
from isal import igzip, igzip_threaded
from isal.igzip_lib import IsalError

CODECS = ("gzip", "bz2", "xz", "zstd")
# Chosen by bench/archive.py: ISA-L level 2 keeps ≥95 % of gzip -6's ratio at ~10× its speed.
GZIP_LEVEL = 2
ZSTD_LEVEL = 3
STREAM_BLOCK = 1024 * 1024


# What a damaged or truncated compressed stream raises, whichever codec reads it.
CODEC_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, IsalError, zstandard.ZstdError)


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class HashingWriter(io.RawIOBase):
    """Pass bytes through to a file while counting and SHA-256 hashing them.

    Closing it leaves the file open, so the caller can fsync before closing.
    """

    def __init__(self, target: BinaryIO):
        self.target = target
        self.sha256 = hashlib.sha256()
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(data)
        self.target.write(view)
        self.sha256.update(view)
        self.bytes_written += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self.target.flush()

    def close(self) -> None:
        self.flush()
        super().close()


class HashingReader(io.RawIOBase):
    """Read bytes from a file while SHA-256 hashing them."""

    def __init__(self, source: BinaryIO):
        self.source = source
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        count = self.source.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            view = memoryview(buffer)[:count]
            self.sha256.update(view)
            self.bytes_read += count
        return count or 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        self.bytes_read += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever the decompressor left unread: trailers, padding."""
        while self.read(STREAM_BLOCK):
            pass


def compressor(raw: BinaryIO, codec: str) -> BinaryIO:
    """Return a writable stream compressing into ``raw``; close it to finish the stream."""
    if codec == "gzip":
        return igzip_threaded.open(raw, "wb", compresslevel=GZIP_LEVEL, threads=_threads())  # type: ignore[return-value]
    if codec == "bz2":
        return bz2.BZ2File(raw, "wb", compresslevel=9)  # type: ignore[return-value]
    if codec == "xz":
        return lzma.LZMAFile(raw, "wb", preset=6)  # type: ignore[return-value]
    if codec == "zstd":
        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1, write_checksum=True)
        return cctx.stream_writer(raw, closefd=False)  # type: ignore[return-value]
    raise ValueError(f"unknown compression {codec!r}")


def decompressor(raw: BinaryIO, codec: str) -> BinaryIO:
    """Return a readable stream of the decompressed bytes of ``raw`` (checksums verified)."""
    if codec == "gzip":
        return igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if codec == "bz2":
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    if codec == "xz":
        return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]
    if codec == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=False, read_across_frames=True)  # type: ignore[return-value]
    raise ValueError(f"unknown compression {codec!r}")
