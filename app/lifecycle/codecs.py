"""Compression codecs for run archives: a compressor and a decompressor per codec, and what a bad stream raises.

gzip goes through ISA-L (python-isal): standard ``.tar.gz`` output, several times faster than
zlib, threaded like pigz. zstd goes through ``zstandard``, a frame per stretch of members at the
level their kind deserves (text at 3, already-compressed images and PDFs at zstd's fastest).
Every codec is a stream: nothing is ever held whole in memory. The byte-stream plumbing around
them (hashing, counting, pipelining, tar's readers and writers) is app.lifecycle.streams.
"""

from __future__ import annotations

import abc
import bisect
import bz2
import io
import lzma
import operator
import os
import struct
import threading
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import zstandard
from isal import igzip, isal_zlib
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
# its codec's block size, or mid-member past BLOCK_MAX. Concatenated they are still one standard .tar.gz or
# .tar.zst; their (compressed, uncompressed) offsets are the archive's block index, kept with its
# manifest, so a member read decompresses only the blocks holding it. bench/members.py chose the sizes.
GZIP_BLOCK_BYTES = 64 << 10
ZSTD_BLOCK_BYTES = 2 << 20
BLOCK_MAX = 4 << 20
BATCH_BYTES = 1 << 20
SEEKABLE = frozenset({"gzip", "zstd"})


class _Blocks(io.RawIOBase, abc.ABC):
    """A compressed stream in independent blocks, compressed in worker threads and written in order,
    their starts recorded in ``blocks`` as ``[compressed offset, uncompressed offset]`` (the first at 0, 0).

    The writing thread only gathers bytes. Blocks go to the worker threads in batches of about
    BATCH_BYTES (one hand-over for many small blocks), each block compressed whole and on its own by
    ``_compress`` (ISA-L and zstd release the GIL); at most ``depth`` batches are in flight.

    A block ends at a member's header once it holds ``block_bytes``, and before any member of
    ``alone_from`` bytes or more, so such a member starts its block and a read of it decodes nothing
    before it; never past BLOCK_MAX.
    """

    def __init__(self, raw: BinaryIO, threads: int, block_bytes: int, alone_from: int):
        self.raw = raw
        self.block_bytes, self.alone_from = block_bytes, alone_from
        self.blocks: list[list[int]] = []
        self.written = 0  # compressed bytes handed to raw
        self.taken = 0  # uncompressed bytes taken
        self.in_block = 0  # uncompressed bytes in the open block
        self.level = 0
        self.pending: list[bytes] = []
        self.batch: list[tuple[int, bytes, int]] = []  # (uncompressed start, bytes, level) of ended blocks
        self.batch_bytes = 0
        self.pool = ThreadPoolExecutor(threads) if threads > 0 else None
        self.queue: deque[tuple[list[int], Any]] = deque()
        self.depth = max(2, 2 * threads)
        # With workers, the file is written by a thread of its own, in order: the writing thread only
        # reads the run's files (writes into a busy page cache stall for seconds per gigabyte).
        self.writer = ThreadPoolExecutor(1) if threads > 0 else None
        self.writes: deque[Any] = deque()
        self.failed: BaseException | None = None  # the first error: the stream is broken for good
        self.write_failed = False

    def writable(self) -> bool:
        return True

    def member(self, name: str, size: int) -> None:
        """A member's tar header comes next: a block may end here."""
        if self.in_block >= self.block_bytes or (self.in_block and size >= self.alone_from):
            self._end_block()

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(data).cast("B")
        while view:
            piece = view[: BLOCK_MAX - self.in_block]  # a block never holds more than BLOCK_MAX
            self.pending.append(bytes(piece))
            self.taken += len(piece)
            self.in_block += len(piece)
            if self.in_block >= BLOCK_MAX:
                self._end_block()
            view = view[len(piece) :]
        return len(data)

    @abc.abstractmethod
    def _compress(self, chunk: bytes, level: int) -> bytes:
        """One block, whole and independent: decompressible without any other."""

    def _compress_batch(self, batch: list[tuple[int, bytes, int]]) -> list[bytes]:
        return [self._compress(chunk, level) for _start, chunk, level in batch]

    def _end_block(self) -> None:
        chunk = b"".join(self.pending)
        self.batch.append((self.taken - self.in_block, chunk, self.level))
        self.batch_bytes += len(chunk)
        self.pending.clear()
        self.in_block = 0
        if self.batch_bytes >= BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        starts = [start for start, _chunk, _level in batch]
        if self.pool is None:
            self._put(starts, self._compress_batch(batch))
            return
        self.queue.append((starts, self.pool.submit(self._compress_batch, batch)))
        while len(self.queue) > self.depth:
            self._drain_one()

    def _drain_one(self) -> None:
        starts, future = self.queue.popleft()
        try:
            self._put(starts, future.result())
        except BaseException as error:
            self.failed = self.failed or error
            raise

    def _put(self, starts: list[int], compressed: list[bytes]) -> None:
        for start, block in zip(starts, compressed, strict=True):
            self.blocks.append([self.written, start])
            self.written += len(block)
        if self.writer is None:
            self.raw.writelines(compressed)
            return
        self.writes.append(self.writer.submit(self._write_out, compressed))
        while len(self.writes) > self.depth:
            self.writes.popleft().result()  # a failed write raises here (and _drain_one remembers it)

    def _write_out(self, compressed: list[bytes]) -> None:
        """In the writer thread: write blocks in order; after a failed write, none after it."""
        if self.write_failed:
            return
        try:
            self.raw.writelines(compressed)
        except BaseException:
            self.write_failed = True
            raise

    def close(self) -> None:
        """Write the last blocks and wait for every write; after a failure, raise it again and write nothing."""
        if not self.closed:
            if self.failed is not None:
                self.abort()
                raise self.failed
            try:
                if self.pending or not (self.blocks or self.queue or self.batch):
                    self._end_block()  # the last block; an empty run still makes one (empty) block
                if self.batch:
                    self._submit()
                while self.queue:
                    self._drain_one()
                while self.writes:
                    self.writes.popleft().result()
            except BaseException as error:
                self.failed = self.failed or error
                self.abort()
                raise
            finally:
                self._stop_threads(cancel=False)
        super().close()

    def abort(self) -> None:
        """Give up: drop what is not written yet and stop the threads (the caller discards the file)."""
        self.pending.clear()
        self.batch.clear()
        self._stop_threads(cancel=True)
        self.queue.clear()
        self.writes.clear()
        super().close()

    def _stop_threads(self, *, cancel: bool) -> None:
        for pool in (self.pool, self.writer):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=cancel)


class GzipBlocks(_Blocks):
    """gzip as one gzip member per block (BGZF-style), deflated by ISA-L with its CRC in the same call.

    ISA-L's ``_ParallelCompress`` is what its own threaded writer uses: deflate and CRC-32 with the
    GIL released. Given no dictionary, each block is independent; the member is a gzip header, the
    block's deflate data, an empty final deflate block, and the CRC-32 and length.
    """

    def __init__(self, raw: BinaryIO, threads: int):
        super().__init__(raw, threads, GZIP_BLOCK_BYTES, alone_from=GZIP_BLOCK_BYTES)
        self.level = GZIP_LEVEL
        self._local = threading.local()

    def _compress(self, chunk: bytes, level: int) -> bytes:
        deflater = getattr(self._local, "deflater", None)
        if deflater is None:
            deflater = self._local.deflater = isal_zlib._ParallelCompress(
                buffersize=BLOCK_MAX + BLOCK_MAX // 10 + 500, level=level
            )
        deflated, crc = deflater.compress_and_crc(chunk, b"")
        return b"".join((_GZIP_HEADER, deflated, _DEFLATE_END, struct.pack("<II", crc, len(chunk) & 0xFFFFFFFF)))


# A gzip member's header (no name, no time, "unknown" system) and the empty final deflate block
# that ends a member's data after ISA-L's sync-flushed blocks, as igzip_threaded writes them.
_GZIP_HEADER = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, 0, 0, 0xFF)
_DEFLATE_END = isal_zlib.compress(b"", wbits=-15)


_plain = operator.itemgetter(1)  # a block's uncompressed offset


def blocks_holding(blocks: list[list[int]], start: int, end: int) -> tuple[int, int | None, int]:
    """For the uncompressed bytes ``start``..``end`` of a seekable archive: the compressed offsets to
    read from and up to (None: to its end), and the uncompressed offset the first of those blocks
    starts at. ``blocks`` is the archive's index, ``[compressed, uncompressed]`` ascending."""
    first = max(0, bisect.bisect_right(blocks, start, key=_plain) - 1)
    after = bisect.bisect_left(blocks, end, lo=first + 1, key=_plain)  # the first block starting at or past the end
    stop = blocks[after][0] if after < len(blocks) else None
    return blocks[first][0], stop, blocks[first][1]


def member_blocks(blocks: list[list[int]] | None, offset: int | None, size: int) -> dict[str, int | None]:
    """A member's ``block_start``, ``block_stop`` and ``block_plain`` (its manifest row's) from the
    archive's block index: what a read of it needs. All None without an index or data."""
    if not blocks or offset is None:
        return {"block_start": None, "block_stop": None, "block_plain": None}
    start, stop, plain = blocks_holding(blocks, offset, offset + max(1, size))
    return {"block_start": start, "block_stop": stop, "block_plain": plain}


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
        # Every member in a frame of its own would cost each JSON page the window of the ones before.
        super().__init__(raw, _zstd_workers(), ZSTD_BLOCK_BYTES, alone_from=BLOCK_MAX * 1024)
        self.level = ZSTD_LEVEL
        self._local = threading.local()

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
            if self.pending:
                self._end_block()
            self.level = level

    def _compress(self, chunk: bytes, level: int) -> bytes:
        compressors = getattr(self._local, "compressors", None)
        if compressors is None:
            compressors = self._local.compressors = {}
        cctx = compressors.get(level)
        if cctx is None:  # one per level and thread, reused frame after frame
            cctx = compressors[level] = zstandard.ZstdCompressor(level=level, write_checksum=True)
        return cctx.compress(chunk)


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
