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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import zstandard
from isal import igzip
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


# Seekable archives (issue 14): gzip and zstd are written as independently decompressible blocks —
# gzip members (as BGZF), zstd frames — each starting at a member's tar header once the block holds
# BLOCK_BYTES, or mid-member past BLOCK_MAX. Concatenated they are still one standard .tar.gz or
# .tar.zst; their (compressed, uncompressed) offsets are the archive's block index, kept with its
# manifest, so a member read decompresses only the blocks holding it. bench/members.py chose the sizes.
BLOCK_BYTES = 1 << 20
BLOCK_MAX = 4 << 20
SEEKABLE = frozenset({"gzip", "zstd"})


class _Blocks(io.RawIOBase):
    """A compressed stream in independent blocks, their starts recorded in ``blocks`` as
    ``[compressed offset, uncompressed offset]`` (the first at 0, 0)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.blocks: list[list[int]] = []
        self.written = 0  # compressed bytes handed to raw
        self.taken = 0  # uncompressed bytes taken
        self.in_block = 0  # uncompressed bytes in the open block

    def writable(self) -> bool:
        return True

    def member(self, name: str, size: int) -> None:
        """A member's tar header comes next: a block may end here."""
        if self.in_block >= BLOCK_BYTES:
            self._end_block()

    def _end_block(self) -> None:
        raise NotImplementedError


class GzipBlocks(_Blocks):
    """gzip as one member per block (BGZF-style), compressed by ISA-L in worker threads, in order."""

    def __init__(self, raw: BinaryIO, threads: int):
        super().__init__(raw)
        self.pending = bytearray()
        self.pool = ThreadPoolExecutor(threads) if threads > 0 else None
        self.queue: deque[tuple[int, Any]] = deque()
        self.depth = max(2, 2 * threads)

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        self.pending += data
        self.taken += len(data)
        self.in_block += len(data)
        if self.in_block >= BLOCK_MAX:
            self._end_block()
        return len(data)

    def _end_block(self) -> None:
        start = self.taken - len(self.pending)
        chunk = bytes(self.pending)
        self.pending.clear()
        self.in_block = 0
        if self.pool is None:
            self._put(start, igzip.compress(chunk, GZIP_LEVEL))
            return
        self.queue.append((start, self.pool.submit(igzip.compress, chunk, GZIP_LEVEL)))
        while len(self.queue) > self.depth:
            self._drain_one()

    def _drain_one(self) -> None:
        start, future = self.queue.popleft()
        self._put(start, future.result())

    def _put(self, start: int, compressed: bytes) -> None:
        self.blocks.append([self.written, start])
        self.raw.write(compressed)
        self.written += len(compressed)

    def close(self) -> None:
        if not self.closed:
            try:
                if self.pending or not self.blocks and not self.queue:
                    self._end_block()  # the last block; an empty run still makes one (empty) member
                while self.queue:
                    self._drain_one()
            finally:
                if self.pool is not None:
                    self.pool.shutdown(wait=True)
        super().close()


def compressor(raw: BinaryIO, codec: str) -> BinaryIO:
    """Return a writable stream compressing into ``raw``; close it to finish the stream. gzip and
    zstd streams are seekable (see SEEKABLE): their ``blocks`` are the block index."""
    if codec == "gzip":
        return GzipBlocks(raw, _spare_cores())  # type: ignore[return-value]
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


class ZstdFrames(_Blocks):
    """zstd into ``raw``, a frame per block, each at the level its members want.

    Text (JSON, logs, HTML) is compressed at ``ZSTD_LEVEL``; members already compressed at
    ``ZSTD_PACKED_LEVEL``, which keeps their (small) ratio at a fraction of the time. A frame ends
    where the level changes and where a block ends (``_Blocks``). A zstd stream may hold any number
    of frames: ``zstd -d``, ``tar --zstd`` and our reader read them as one. The tar writer says
    which member comes next with ``member(name, size)``.
    """

    def __init__(self, raw: BinaryIO):
        super().__init__(raw)
        self.level = ZSTD_LEVEL
        self._frame = None
        self._compressors: dict[int, zstandard.ZstdCompressor] = {}  # one per level, reused frame after frame
        self._threads = _zstd_workers()
        self._counted = _CountingRaw(raw)

    def member(self, name: str, size: int) -> None:
        super().member(name, size)
        if is_packed(name):
            if size < PACKED_FRAME_MIN:
                # A small image stays in the frame at hand: a frame per file would cost each
                # HTML or JSON page the window that lets it compress against the ones before.
                return
            level = ZSTD_PACKED_LEVEL
        else:
            level = ZSTD_LEVEL
        if level != self.level:
            self._end_block()
            self.level = level

    def _end_block(self) -> None:
        if self._frame is not None:
            self._frame.close()  # ends the frame (checksum included); raw stays open
            self._frame = None
        self.in_block = 0

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        if self._frame is None:
            cctx = self._compressors.get(self.level)
            if cctx is None:
                cctx = zstandard.ZstdCompressor(level=self.level, threads=self._threads, write_checksum=True)
                self._compressors[self.level] = cctx
            self.blocks.append([self._counted.count, self.taken])
            self._frame = cctx.stream_writer(self._counted, closefd=False)
        self._frame.write(data)
        self.taken += len(data)
        self.in_block += len(data)
        if self.in_block >= BLOCK_MAX:
            self._end_block()
        return len(data)

    def close(self) -> None:
        if not self.closed:
            if self._frame is None and not self.blocks:
                self.write(b"")  # an empty run still makes one (empty) frame
            self._end_block()
        super().close()


class _CountingRaw(io.RawIOBase):
    """Counts the compressed bytes a zstd frame writer hands to the archive (where each frame starts)."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.count = raw, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        self.raw.write(data)
        self.count += len(data)
        return len(data)


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
