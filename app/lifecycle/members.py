"""Reading a run's archive for a client - its member list, one member, or the whole file - never handing on wrong bytes.

Before any read: the archive must be in the store (``ArchiveMissing``), and a member is asked for
by its escaped path as a URL carries it, which must name a file of the manifest (``InvalidMemberPath``,
``MemberNotFound``, ``NotAFile``). Interfaces map these errors to their own way of saying no.

A member is read by decoding the archive from its start up to the member's offset in the tar
stream (the manifest keeps it, so a seekable index can make this instant later), then hashing
its bytes against the manifest's SHA-256 as they are read. A body whose bytes do not match never
completes:

- a member up to ``WHOLE_READ_MAX`` bytes is read and checked whole before its first byte is sent,
  so a mismatch is answered as an error instead of a body;
- a larger member is streamed, but its last chunk is held back until the digest is checked; on a
  mismatch, a decoder error or a short read the stream raises instead of yielding it, so the
  client never receives a complete body. Its first chunk is read before the response starts, so
  an archive that cannot be decoded at all (not gzip, say) is still answered as an error.

The whole archive file is streamed the same way, against the run's ``archive_sha256``. Each
failure opens the critical ``archive_corrupt`` alert and marks the run's ``verify_outcome``
corrupt (app.lifecycle.alerts) before ``ArchiveCorrupt`` is raised.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from app.lifecycle.alerts import mark_archive_corrupt
from app.lifecycle.codecs import CODEC_ERRORS, blocks_holding, decompressor
from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import LifecycleError, RunConflict
from app.lifecycle.naming import escape_name, native_name, run_folder_name, safe_member_path
from app.lifecycle.streams import STREAM_BLOCK, ForwardReader
from app.models import ArchiveIndex, ArchiveMember, Job, count_rows

# Read and checked whole before the first byte is sent; larger members are streamed with their
# last chunk held back. One STREAM_BLOCK: at most 1 MiB in memory per request, and a larger
# member always spans two chunks or more, so its first one goes out while the rest is checked.
WHOLE_READ_MAX = STREAM_BLOCK


class ArchiveCorrupt(Exception):
    """A run's archive gave bytes that do not match its record (checksum, decoder error, short read)."""


class ArchiveMissing(LifecycleError):
    """The run's archive file is not in the store where its record says."""


class InvalidMemberPath(LifecycleError):
    """The path asked for is malformed or climbs out of the run folder."""


class MemberNotFound(LifecycleError):
    """The archive's manifest has no member at that path."""


class NotAFile(LifecycleError):
    """The member is a directory or a link: it has no bytes of its own to read."""


@dataclass
class MemberRead:
    """One member ready to send: its size and recorded SHA-256, and its checked bytes."""

    size: int
    sha256: str
    chunks: Iterator[bytes]


def require_archive(lc: Lifecycle, job: Job) -> None:
    """Refuse a run whose archive file is not in the store (``ArchiveMissing``)."""
    if not job.archive_path or not lc.store.exists(job.archive_path):
        # A read changes nothing: a deletion or undelete may be moving the file this instant. The
        # verification pass, under the run's lock, is what records a missing archive and alerts.
        raise ArchiveMissing(
            f"the archive of run {job.id} is not in the store; `flask runs verify --job {job.id}` checks it"
            " and raises the alert if it is gone"
        )


def member_page(lc: Lifecycle, job: Job, limit: int, offset: int) -> tuple[list[ArchiveMember], int]:
    """A page of the archive's members from its stored manifest, in archive order, and how many there are."""
    query = select(ArchiveMember).where(ArchiveMember.job_id == job.id)
    total = count_rows(lc.session, query)
    rows = list(lc.session.scalars(query.order_by(ArchiveMember.id).limit(limit).offset(offset)))
    return rows, total


def find_member(lc: Lifecycle, job: Job, requested: str) -> ArchiveMember:
    """The file member at ``requested``, a path in its escaped form (app.lifecycle.naming), as a URL carries it."""
    try:
        # The request carries the escaped form; the manifest's row holds the canonical one.
        clean = escape_name(str(safe_member_path(native_name(requested))))
    except ValueError as error:
        raise InvalidMemberPath(str(error)) from None
    member = lc.session.scalar(select(ArchiveMember).where(ArchiveMember.job_id == job.id, ArchiveMember.path == clean))
    if member is None:
        raise MemberNotFound(f"no file {clean!r} in the archive of run {job.id}")
    if member.kind != "file" or member.offset is None:
        raise NotAFile(f"{clean!r} is a {member.kind}, not a file")
    return member


def archive_download_name(job: Job, path: Path) -> str:
    """The name a downloaded archive is saved under: the run folder's name and the archive's extension."""
    return f"{run_folder_name(job.folder_name, job.id)}{''.join(path.suffixes[-2:])}"


def _corrupt(lc: Lifecycle, job_id: uuid.UUID, detail: str, key: str | None = None) -> Exception:
    """Record the run's archive as corrupt (alert and verify_outcome), commit, and return the error to raise.

    If the run's record names another file than ``key``, the one read, the archive was moved or
    rewritten while it was read (make-seekable, a deletion): nothing is marked, the reader is told
    to read again (RunConflict).
    """
    # Loaded afresh: a streamed body runs after the request's session was closed, which detached
    # the run the view had loaded (the scoped session then hands out a new one).
    now_at = lc.session.scalar(select(Job.archive_path).where(Job.id == job_id))  # as committed now
    job = lc.session.get(Job, job_id)
    if job is not None and key is not None and now_at != key:
        return RunConflict(f"the archive of run {job_id} was moved while it was read ({detail}); read it again")
    if job is not None:  # a run deleted meanwhile has no record left to mark
        mark_archive_corrupt(lc.session, job, detail, now=lc.now())
        lc.session.commit()
    return ArchiveCorrupt(f"the archive of run {job_id} does not match its record: {detail}")


def _checked(
    lc: Lifecycle, job_id: uuid.UUID, pieces: Iterator[bytes], expected: str | None, what: str, key: str | None = None
) -> Iterator[bytes]:
    """Yield ``pieces`` while hashing them; the last one only once the SHA-256 matches ``expected``."""
    if not expected:
        raise _corrupt(lc, job_id, f"{what}: no SHA-256 is recorded, so its bytes cannot be checked")
    digest = hashlib.sha256()
    held: bytes | None = None
    try:
        for piece in pieces:
            digest.update(piece)
            if held is not None:
                yield held
            held = piece
    except OSError as error:
        if error.errno is not None:  # the disk (EIO, EACCES), not the archive's bytes
            raise
        raise _corrupt(lc, job_id, f"{what}: cannot be decoded ({error})", key) from error
    except CODEC_ERRORS as error:
        raise _corrupt(lc, job_id, f"{what}: cannot be decoded ({error})", key) from error
    if digest.hexdigest() != expected:
        raise _corrupt(lc, job_id, f"{what}: SHA-256 {digest.hexdigest()} instead of {expected}", key)
    if held is not None:
        yield held


def _member_pieces(raw: BinaryIO, codec: str, offset: int, size: int, *, drain: bool = False) -> Iterator[bytes]:
    """The member's bytes out of the archive stream, in blocks; the open file is closed when done.
    ``drain``: then decode ``raw`` to its end (its blocks' own checksums checked), yielding nothing more."""
    with raw:
        reader = ForwardReader(decompressor(raw, codec))
        if reader.seek(offset) != offset:
            raise EOFError(f"the archive ends before offset {offset}")
        remaining = size
        while remaining:
            piece = reader.read(min(remaining, STREAM_BLOCK))
            if not piece:
                raise EOFError(f"the archive ends {remaining} bytes before the member does")
            remaining -= len(piece)
            yield piece
        while drain and reader.read(STREAM_BLOCK):
            pass


def read_member(lc: Lifecycle, job: Job, member: ArchiveMember) -> MemberRead:
    """Open one file member of the run's archive for sending; ArchiveCorrupt if its bytes fail before the first.

    A seekable archive is read from the block holding the member's first byte to the block holding
    its last, no more: one ranged read of the store, located by the member's own row (or, for rows
    recorded before those columns, the archive's index). Others are read from their start.
    """
    if member.kind != "file" or member.offset is None:
        raise ValueError(f"{member.path!r} is a {member.kind}, not a file with recorded data")
    where = _blocks_of(lc, job, member)
    if where is not None:
        first, stop, block_start = where
        raw = lc.store.open_range(job.archive_path, first, stop)  # type: ignore[arg-type]
        offset = member.offset - block_start
    else:
        raw = lc.store.open(job.archive_path)  # type: ignore[arg-type]
        offset = member.offset
    pieces = _member_pieces(raw, job.compression or "gzip", offset, member.size)
    chunks = _checked(lc, job.id, pieces, member.sha256, f"member {member.path!r}", job.archive_path)
    if member.size <= WHOLE_READ_MAX:
        return MemberRead(member.size, member.sha256 or "", iter([b"".join(chunks)]))
    first = next(chunks)  # decoded before the response starts: a bad archive is still answered as an error
    return MemberRead(member.size, member.sha256 or "", _prepend(first, chunks))


def _blocks_of(lc: Lifecycle, job: Job, member: ArchiveMember) -> tuple[int, int | None, int] | None:
    """Where a member's blocks are (compressed start and stop, uncompressed start), None if the
    archive is sequential."""
    if member.block_start is not None and member.block_plain is not None:
        return member.block_start, member.block_stop, member.block_plain
    index = lc.session.get(ArchiveIndex, job.id)
    if index is None or index.codec != job.compression or member.offset is None:
        return None
    return blocks_holding(index.blocks, member.offset, member.offset + max(1, member.size))


def read_member_range(lc: Lifecycle, job: Job, member: ArchiveMember, start: int, end: int) -> MemberRead:
    """The bytes ``start``..``end`` (exclusive) of one file member, for a ``Range:`` request.

    A seekable archive is read from the block holding the first byte to the end of the block holding
    the last, every block decoded whole so its own checksum (gzip's CRC-32, zstd's frame checksum) is
    checked: the range is served from checked blocks, though the member's SHA-256 needs all of it.
    A member of up to WHOLE_READ_MAX bytes (one or two blocks) is read whole, checked against its
    SHA-256, and cut: as cheap, and no index to load. So is a member of an archive without an index.
    """
    index = None if member.size <= WHOLE_READ_MAX else lc.session.get(ArchiveIndex, job.id)
    if index is None or index.codec != job.compression or member.offset is None:
        whole = read_member(lc, job, member)
        return MemberRead(end - start, "", _cut(whole.chunks, start, end))
    first, stop, block_start = blocks_holding(index.blocks, member.offset + start, member.offset + max(end, start + 1))
    raw = lc.store.open_range(job.archive_path, first, stop)  # type: ignore[arg-type]
    pieces = _member_pieces(
        raw, job.compression or "gzip", member.offset + start - block_start, end - start, drain=True
    )
    chunks = _decoded(lc, job.id, pieces, f"member {member.path!r}", job.archive_path)  # type: ignore[arg-type]
    first_piece = next(chunks, b"")  # decoded before the response starts (a range in one piece: checked whole)
    return MemberRead(end - start, "", _prepend(first_piece, chunks))


def _decoded(lc: Lifecycle, job_id: uuid.UUID, pieces: Iterator[bytes], what: str, key: str) -> Iterator[bytes]:
    """``pieces``, the last held back until the stream has ended well: a codec's complaint (a bad
    checksum, a truncated block) raised as ArchiveCorrupt, so a body from a bad block never completes."""
    held: bytes | None = None
    try:
        for piece in pieces:
            if held is not None:
                yield held
            held = piece
    except OSError as error:
        if error.errno is not None:
            raise
        raise _corrupt(lc, job_id, f"{what}: cannot be decoded ({error})", key) from error
    except CODEC_ERRORS as error:
        raise _corrupt(lc, job_id, f"{what}: cannot be decoded ({error})", key) from error
    if held is not None:
        yield held


def _cut(chunks: Iterator[bytes], start: int, end: int) -> Iterator[bytes]:
    position = 0
    for chunk in chunks:
        low, high = max(start - position, 0), min(end - position, len(chunk))
        if low < high:
            yield chunk[low:high]
        position += len(chunk)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def read_archive_file(lc: Lifecycle, job: Job) -> Iterator[bytes]:
    """The run's archive file in blocks, the last one held back until the file matches ``archive_sha256``."""
    # Opened now, not when the body is first read: a missing file raises here, not mid-response.
    raw = lc.store.open(job.archive_path)  # type: ignore[arg-type]

    def pieces() -> Iterator[bytes]:
        with raw:
            while piece := raw.read(STREAM_BLOCK):
                yield piece

    return _checked(lc, job.id, pieces(), job.archive_sha256, "the archive file", job.archive_path)
