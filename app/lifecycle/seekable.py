"""Rewriting an archive written before seekable blocks (issue 14) as a seekable one, byte for byte the same tar.

Archives written before gzip and zstd were written in blocks are one compressed stream: a member
read decodes them from their start. ``make_seekable`` re-compresses such an archive's tar stream,
unchanged, into independent blocks, so every offset and SHA-256 of its manifest stays true; it
adds the block index and each member's blocks.

The same safety as an archival: the old archive is read and checked against its SHA-256 as it is
copied; the new one is published under a key of its own (the ``seekable/`` folder beside the old
one), read back whole and checked against the manifest member by member; only then is the run's
record switched to it, and the old file removed after the commit. A crash at any step leaves the
recorded archive intact: an unrecorded new file is a leftover copy that reconcile removes.
"""

from __future__ import annotations

import os
import tarfile
import uuid
from typing import BinaryIO

from sqlalchemy import ColumnElement, and_, or_, select, update

from app.lifecycle.archival import abandon, extract_archive, manifest_of, record_index
from app.lifecycle.codecs import CODEC_ERRORS, SEEKABLE, compressor, decompressor, member_blocks
from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import RunConflict
from app.lifecycle.events import attempt
from app.lifecycle.runs import load_run
from app.lifecycle.streams import STREAM_BLOCK, CountingWriter, HashingReader
from app.lifecycle.tarball import ArchiveInvalid, Member
from app.models import ArchiveIndex, ArchiveMember, Job

REWRITTEN = "seekable"  # the folder, beside the original, a rewritten archive is published in


def rewritten_key(key: str) -> str:
    """Where the rewrite of ``key`` goes: its ``seekable/`` folder (back out of it for a second rewrite)."""
    head, _, name = key.rpartition("/")
    parent, _, last = head.rpartition("/")
    return f"{parent}/{name}" if last == REWRITTEN else f"{head}/{REWRITTEN}/{name}"


def needs_rewrite(lc: Lifecycle, job: Job) -> str | None:
    """Why the run's archive is not rewritten (None: it is due)."""
    if job.archive_path is None or job.archived_at is None or job.purged_at is not None:
        return "no stored archive"
    if job.deleted_at is not None:
        return "in the trash (purged in time; not worth rewriting)"
    if job.verify_outcome == "corrupt":
        return "its archive failed verification; restore or repair it first"
    if job.compression not in SEEKABLE:
        return f"{job.compression} archives stay sequential"
    if lc.session.get(ArchiveIndex, job.id) is not None:
        return "already seekable"
    return None


def rewrite_due() -> ColumnElement[bool]:
    """``needs_rewrite`` as SQL, for the pass that finds the runs: the same rule, kept beside it."""
    indexed = select(ArchiveIndex.job_id).where(ArchiveIndex.job_id == Job.id).exists()
    return and_(
        Job.archive_path.is_not(None),
        Job.archived_at.is_not(None),
        Job.purged_at.is_(None),
        Job.deleted_at.is_(None),
        or_(Job.verify_outcome.is_(None), Job.verify_outcome != "corrupt"),
        Job.compression.in_(sorted(SEEKABLE)),
        ~indexed,
    )


def make_seekable(lc: Lifecycle, job_id: uuid.UUID, *, actor: str) -> str:
    """Rewrite one run's sequential gzip or zstd archive as seekable blocks; the outcome."""
    with attempt(lc, job_id, "migrate", actor, "rewrite the archive as seekable blocks", take_lock=True) as record:
        job = load_run(lc, job_id)
        why = needs_rewrite(lc, job)
        if why == "no stored archive":
            raise RunConflict(f"run {job_id} has no stored archive to rewrite")
        if why is not None:
            return record.skip(why)
        old, codec, before = job.archive_path, job.compression, job.archive_size_bytes
        new = rewritten_key(old)  # type: ignore[arg-type]
        manifest = manifest_of(lc, job.id)
        try:
            with lc.locks.compression_slot(lc.settings.archive_max_concurrency):
                blocks, size, sha256 = _recompress(lc, job, old, new, codec, manifest)  # type: ignore[arg-type]
            lc.checkpoint("rewrite.published")
            if lc.store.size(new) != size:
                raise ArchiveInvalid(f"{new} holds {lc.store.size(new)} bytes; {size} were written")
            with lc.store.open(new) as raw:  # the file as stored, read back whole: its SHA-256 and every member's
                extract_archive(raw, codec, manifest, sha256, None)  # type: ignore[arg-type]
            lc.checkpoint("rewrite.verified")  # the run's lock still ours after the read-back
        except BaseException:
            lc.store.remove(new)
            raise
        guarded = update(Job).where(Job.id == job.id, Job.archive_path == old, Job.purged_at.is_(None))
        values = {"archive_path": new, "archive_sha256": sha256, "archive_size_bytes": size}
        if lc.session.execute(guarded.values(**values)).rowcount != 1:
            lc.store.remove(new)
            raise RunConflict(f"run {job_id} changed while its archive was rewritten")
        rows = lc.session.execute(
            select(ArchiveMember.id, ArchiveMember.offset, ArchiveMember.size).where(
                ArchiveMember.job_id == job.id, ArchiveMember.kind == "file"
            )
        ).all()
        if rows:
            lc.session.execute(
                update(ArchiveMember),
                [{"id": row.id, **member_blocks(blocks, row.offset, row.size)} for row in rows],
            )
        record_index(lc.session, job.id, codec, blocks)  # type: ignore[arg-type]
        record.details.update({"from": old, "to": new, "blocks": len(blocks)})
        outcome = record.succeed(bytes_before=before, bytes_after=size)
        lc.session.commit()
        lc.checkpoint("rewrite.committed")
        lc.store.remove(old)  # type: ignore[arg-type]
        return outcome


def _recompress(
    lc: Lifecycle, job: Job, old: str, new: str, codec: str, manifest: list[Member]
) -> tuple[list, int, str]:
    """Copy the tar stream of ``old`` into blocks at ``new`` (published); its block index, size and SHA-256."""
    cuts = _member_starts(manifest)
    stream = None
    with lc.store.open(old) as raw:
        source = HashingReader(raw)
        plain = decompressor(source, codec)
        try:
            with lc.store.open_partial(new) as target:
                counter = CountingWriter(target, hashing=True)
                stream = compressor(counter, codec)
                _copy_cutting(plain, stream, cuts)
                stream.close()
                blocks = stream.blocks  # type: ignore[attr-defined]
                target.flush()
                os.fsync(target.fileno())
            source.drain()
        except CODEC_ERRORS as error:
            abandon(stream)
            lc.store.discard_partial(new)
            raise ArchiveInvalid(f"the archive {old} cannot be decoded: {error}") from error
        except BaseException:
            abandon(stream)
            lc.store.discard_partial(new)
            raise
    if source.sha256.hexdigest() != job.archive_sha256:
        lc.store.discard_partial(new)
        raise ArchiveInvalid(f"the archive {old} does not match its recorded SHA-256; not rewritten")
    lc.store.publish(new)
    return blocks, counter.bytes_written, counter.sha256.hexdigest()  # type: ignore[union-attr]


def _member_starts(manifest: list[Member]) -> list[tuple[int, str, int]]:
    """Where in the tar stream each file member's header may start — the padded end of the file
    member before it — with its name and size: where ``member()`` is told a member comes next."""
    starts, end = [], 0
    for member in manifest:
        if member.kind != "file" or member.offset is None:
            continue
        starts.append((end, member.path, member.size))
        end = member.offset + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    return starts


def _copy_cutting(plain: BinaryIO, stream: BinaryIO, cuts: list[tuple[int, str, int]]) -> None:
    position, at = 0, 0
    while True:
        chunk = plain.read(STREAM_BLOCK)
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            while at < len(cuts) and cuts[at][0] <= position:
                stream.member(cuts[at][1], cuts[at][2])  # type: ignore[attr-defined]
                at += 1
            room = cuts[at][0] - position if at < len(cuts) else len(view)
            piece = view[: max(1, room)]
            stream.write(piece)
            position += len(piece)
            view = view[len(piece) :]
