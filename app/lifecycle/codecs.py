"""Compression codecs for run archives: a compressor and a decompressor per codec, and what a bad stream raises.

gzip goes through ISA-L (python-isal): standard ``.tar.gz`` output, several times faster than
zlib, threaded like pigz. zstd goes through ``zstandard``, a frame per stretch of members at the
level their kind deserves (text at 3, already-compressed images and PDFs at zstd's fastest).
Every codec is a stream: nothing is ever held whole in memory. The byte-stream plumbing around
them (hashing, counting, pipelining, tar's readers and writers) is app.lifecycle.streams.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import zlib
from typing import BinaryIO

import zstandard
from isal import igzip, igzip_threaded
from isal.igzip_lib import IsalError

# Chosen by bench/archive.py: ISA-L level 2 keeps ≥95 % of gzip -6's ratio at ~10× its speed.
GZIP_LEVEL = 2
ZSTD_LEVEL = 3
# Members already compressed (images, PDFs, archives, video) go in frames of zstd's fast level:
# measured on the bench mix, PNG and PDF keep their ratio (1.17, 1.12) at 2-4x the speed of level 3.
ZSTD_PACKED_LEVEL = -5
PACKED_FRAME_MIN = 256 * 1024  # smaller packed members stay in the text frame they fall in
PACKED_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .webp .avif .heic .pdf .zip .gz .tgz .bz2 .xz .zst .7z .rar .br "
    ".mp4 .webm .mov .mkv .mp3 .ogg .woff .woff2 .docx .xlsx .pptx .odt .ods .epub".split()
)


# What a damaged or truncated compressed stream raises, whichever codec reads it.
CODEC_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, IsalError, zstandard.ZstdError)


def _spare_cores() -> int:
    """Cores left for gzip's compression threads: one core always reads the archive back to verify it."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _zstd_workers() -> int:
    """zstd's worker threads: one per core (none on one core, where they only add hand-overs).

    Measured on 2 cores (bench/archive.py, 1 GB, four interleaved rounds): two workers take a
    median 2.60 s against 2.93 s with zstd in the writing thread. The workers compress while the
    writing thread reads the next files, and the read-back threads fill the gaps.
    """
    cores = os.cpu_count() or 1
    return min(8, cores) if cores > 1 else 0


def compressor(raw: BinaryIO, codec: str) -> BinaryIO:
    """Return a writable stream compressing into ``raw``; close it to finish the stream."""
    if codec == "gzip":
        return igzip_threaded.open(raw, "wb", compresslevel=GZIP_LEVEL, threads=max(1, _spare_cores()))  # type: ignore[return-value]
    if codec == "bz2":
        return bz2.BZ2File(raw, "wb", compresslevel=9)  # type: ignore[return-value]
    if codec == "xz":
        return lzma.LZMAFile(raw, "wb", preset=6)  # type: ignore[return-value]
    if codec == "zstd":
        return ZstdFrames(raw)  # type: ignore[return-value]
    raise ValueError(f"unknown compression {codec!r}")


def is_packed(name: str) -> bool:
    """Whether a member's name says its bytes are compressed already."""
    dot = name.rfind(".")
    return dot > name.rfind("/") + 1 and name[dot:].lower() in PACKED_SUFFIXES


class ZstdFrames(io.RawIOBase):
    """zstd into ``raw``, a frame per stretch of members that want the same level.

    Text (JSON, logs, HTML) is compressed at ``ZSTD_LEVEL``; members already compressed at
    ``ZSTD_PACKED_LEVEL``, which keeps their (small) ratio at a fraction of the time. A zstd
    stream may hold any number of frames: ``zstd -d``, ``tar --zstd`` and our reader read them
    as one. The tar writer says which member comes next with ``member(name, size)``.
    """

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.level = ZSTD_LEVEL
        self._frame = None
        self._compressors: dict[int, zstandard.ZstdCompressor] = {}  # one per level, reused frame after frame
        self._threads = _zstd_workers()

    def writable(self) -> bool:
        return True

    def member(self, name: str, size: int) -> None:
        if is_packed(name):
            if size < PACKED_FRAME_MIN:
                # A small image stays in the frame at hand: a frame per file would cost each
                # HTML or JSON page the window that lets it compress against the ones before.
                return
            level = ZSTD_PACKED_LEVEL
        else:
            level = ZSTD_LEVEL
        if level != self.level:
            self._end_frame()
            self.level = level

    def _end_frame(self) -> None:
        if self._frame is not None:
            self._frame.close()  # ends the frame (checksum included); raw stays open
            self._frame = None

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        if self._frame is None:
            cctx = self._compressors.get(self.level)
            if cctx is None:
                cctx = zstandard.ZstdCompressor(level=self.level, threads=self._threads, write_checksum=True)
                self._compressors[self.level] = cctx
            self._frame = cctx.stream_writer(self.raw, closefd=False)
        self._frame.write(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            if self._frame is None:
                self.write(b"")  # an empty run still makes one (empty) frame
            self._end_frame()
        super().close()


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
