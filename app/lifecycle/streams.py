"""Byte-stream plumbing for archives, whatever the codec: hashing, counting, pipelining, tar's ends.

Readers and writers that pass bytes through while they SHA-256, CRC-32 or count them; a reader of
a file another thread is still writing; a decompressor in a thread of its own; a pipe that hands
chunks to a consumer thread; the per-member SHA-256 taken from a decoded tar stream; and the two
streams tarfile reads from and writes to. The codecs themselves are app.lifecycle.codecs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from isal.isal_zlib import crc32

from app.lifecycle.codecs import decompressor

# The block every stream here reads, writes and queues: memory stays flat whatever the archive's size.
STREAM_BLOCK = 1024 * 1024


class CountingWriter(io.RawIOBase):
    """Pass bytes through to a file while counting them (and with ``hashing``, SHA-256 hashing them).

    Closing it leaves the file open, so the caller can fsync before closing.
    """

    def __init__(self, target: BinaryIO, *, hashing: bool = False):
        self.target = target
        self.bytes_written = 0
        self.sha256 = hashlib.sha256() if hashing else None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(data)
        self.target.write(view)
        self.bytes_written += view.nbytes
        if self.sha256 is not None:
            self.sha256.update(view)
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


class FollowingReader(io.RawIOBase):
    """Read a file that another thread is still writing, until that writer calls ``finish``."""

    def __init__(self, path: Path):
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        self._finished = threading.Event()
        self._abandoned = False

    def readable(self) -> bool:
        return True

    def finish(self, abandon: bool = False) -> None:
        self._abandoned = abandon
        self._finished.set()

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        while True:
            if self._abandoned:
                raise EOFError("the writer gave up")
            count = self.file.readinto(buffer)
            if count:
                return count
            if self._finished.is_set():
                return self.file.readinto(buffer) or 0  # whatever landed just before finish()
            time.sleep(0.001)

    def close(self) -> None:
        self.file.close()
        super().close()


class PipelinedDecompressor(io.RawIOBase):
    """Decompress ``raw`` (and SHA-256 its compressed bytes) in a thread of its own.

    The consumer reads plain bytes while the next ones are being decompressed on the other core,
    as ``zstd -d | tar x`` would; at most ``depth`` blocks wait in between, so memory stays flat.
    ``sha256`` and ``compressed_bytes`` are final once the stream has been read to its end.
    """

    def __init__(self, raw: BinaryIO, codec: str, depth: int = 8, hasher: MemberHasher | None = None):
        self.hasher = hasher
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._done = False
        self.sha256 = ""
        self.compressed_bytes = 0
        self._thread = threading.Thread(target=self._produce, args=(raw, codec), daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, raw: BinaryIO, codec: str) -> None:
        # Members are hashed in a third thread: decoding, hashing and writing files share the cores.
        members: Pipe | None = None
        try:
            members = Pipe(self.hasher.feed) if self.hasher is not None else None
            reader = HashingReader(raw)
            stream = decompressor(reader, codec)
            while chunk := stream.read(STREAM_BLOCK):
                if members is not None:
                    members.put(chunk)
                elif self.hasher is not None:
                    self.hasher.feed(chunk)
                if not self._put(chunk):
                    return
            reader.drain()
            if members is not None:
                members, pipe = None, members
                pipe.close()  # every member hashed before the end is announced
            self.sha256 = reader.sha256.hexdigest()
            self.compressed_bytes = reader.bytes_read
            self._put(None)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(error)
        finally:
            if members is not None:
                with contextlib.suppress(BaseException):
                    members.close()

    def readable(self) -> bool:
        return True

    def read_view(self, limit: int) -> memoryview:
        """Return up to ``limit`` next bytes without copying them (empty at the end)."""
        if not self._pending:
            if self._done:
                return memoryview(b"")
            item = self._queue.get()
            if item is None or isinstance(item, BaseException):
                self._done = True
                if item is None:
                    return memoryview(b"")
                raise item
            self._pending = memoryview(item)
        view, self._pending = self._pending[:limit], self._pending[limit:]
        return view

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        view = self.read_view(len(buffer))
        buffer[: len(view)] = view
        return len(view)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        super().close()


class TarSink(io.RawIOBase):
    """Where tarfile writes: passes the tar stream on to the compressor, counting and CRC-32ing it.

    The read-back check decodes the archive and requires exactly these bytes (same length and
    CRC): the member list, sizes and contents then match the folder as it was read.
    """

    def __init__(self, target: BinaryIO, on_progress: Callable[[int], None] | None = None):
        self.target = target
        self.length = 0
        self.crc = 0
        self.on_progress = on_progress  # called with the bytes written so far (a task's progress)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(data)
        self.crc = crc32(view, self.crc)
        self.target.write(view)
        self.length += view.nbytes
        if self.on_progress is not None:
            self.on_progress(self.length)
        return view.nbytes

    def tell(self) -> int:
        return self.length


class ForwardReader(io.RawIOBase):
    """A stream that tarfile's plain ``r`` mode can read: ``tell`` and forward-only ``seek``.

    It lets tarfile hand member data straight to our buffers instead of re-buffering every byte
    as its stream mode (``r|``) does.
    """

    def __init__(self, source: BinaryIO, on_progress: Callable[[int], None] | None = None):
        self.source = source
        self.position = 0
        self.on_progress = on_progress  # called with the position reached (a task's progress)

    def _advanced(self, count: int) -> None:
        self.position += count
        if self.on_progress is not None and count:
            self.on_progress(self.position)

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self.position:
            raise io.UnsupportedOperation("a forward-only stream cannot seek back")
        while self.position < offset:
            chunk = self.source.read(min(offset - self.position, STREAM_BLOCK))
            if not chunk:
                break
            self._advanced(len(chunk))
        return self.position

    def read_view(self, limit: int) -> memoryview:
        """Return up to ``limit`` next bytes, without a copy when the source can give a view."""
        if hasattr(self.source, "read_view"):
            view = self.source.read_view(limit)
        else:
            view = memoryview(self.source.read(limit))
        self._advanced(len(view))
        return view

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        """Fill ``buffer`` completely unless the stream ends: tarfile treats a short read as the end."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            count = self.source.readinto(view[filled:]) or 0  # type: ignore[attr-defined]
            if count == 0:
                break
            filled += count
        self._advanced(filled)
        return filled


class Pipe:
    """Call ``consume(chunk)`` for each chunk put, in a thread of its own, at most ``depth`` behind.

    Hashing releases the GIL, so a second hashing thread runs on the other core while the first
    thread goes on decoding. ``close`` waits for the last chunk and raises what ``consume`` raised.
    """

    def __init__(self, consume, depth: int = 8):  # type: ignore[no-untyped-def]
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._consume(chunk)
                except BaseException as error:  # raised in the producer's thread by close()
                    self._error = error

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class MemberHasher:
    """SHA-256 of each file member, taken from a decoded tar stream by the members' data offsets.

    ``spans`` lists ``(offset, size)`` per file member in stream order; the writer may still be
    appending to it (each span is added before the member's bytes are written).
    """

    def __init__(self, spans: list[tuple[int, int]]):
        self.spans = spans
        self.digests: list[str] = []
        self._position = 0
        self._current = hashlib.sha256()

    def feed(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        start, end = self._position, self._position + len(view)
        while len(self.digests) < len(self.spans):
            offset, size = self.spans[len(self.digests)]
            if offset + size > end:
                if offset < end:
                    self._current.update(view[max(offset, start) - start :])
                break
            if offset + size > start:
                self._current.update(view[max(offset, start) - start : offset + size - start])
            self.digests.append(self._current.hexdigest())
            self._current = hashlib.sha256()
        self._position = end
