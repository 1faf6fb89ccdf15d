"""Archive a run, restore a working copy of it, and expire that copy — each crash-safe.

Archiving follows the safety protocol of SPEC §3: take the run's lock → stream the folder into a
``.partial`` file while hashing → fsync → verify by reading it back → atomic rename → fsync the
folder → commit the record and manifest → remove the run folder. A crash at any point leaves
either the folder (the next pass archives it again) or a verified archive with its record (the
next reconcile removes the folder): never neither.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from isal.isal_zlib import crc32
from sqlalchemy import delete, insert, select, update

from app.lifecycle.access import require_under_lock
from app.lifecycle.alerts import resolve_alerts
from app.lifecycle.codecs import CODEC_ERRORS, compressor, decompressor, member_blocks
from app.lifecycle.context import Lifecycle
from app.lifecycle.disk import folder_size
from app.lifecycle.errors import FolderKept, RunConflict
from app.lifecycle.events import SUPERSEDED, attempt
from app.lifecycle.naming import ARCHIVE_EXTENSIONS, archive_relpath, find_run_folder, run_folder_name
from app.lifecycle.runs import folder_name_of, load_run
from app.lifecycle.store import fsync_dir
from app.lifecycle.streams import (
    STREAM_BLOCK,
    CountingWriter,
    FollowingReader,
    HashingReader,
    MemberHasher,
    Pipe,
    PipelinedDecompressor,
)
from app.lifecycle.tarball import (
    ArchiveInvalid,
    Fingerprint,
    Member,
    extract_tar,
    folder_differences,
    manifest_from_tar,
    write_tar,
)
from app.models import ArchiveIndex, ArchiveMember, Job

RESTORE_SUFFIX = ".restore.partial"
SET_ASIDE_SUFFIX = ".removing"


class ArchiveFailed(Exception):
    """An archive could not be written or verified; the run folder is untouched."""


@dataclass
class WrittenArchive:
    key: str
    codec: str
    sha256: str
    size: int
    members: list[Member]
    warnings: list[str]
    fingerprints: dict[str, tuple[Fingerprint, int]] = field(default_factory=dict)
    blocks: list[list[int]] | None = None  # the block index of a seekable archive (codecs.SEEKABLE)

    @property
    def content_bytes(self) -> int:
        return sum(member.size for member in self.members)


def archive_key(job: Job, root: str, codec: str) -> str:
    return f"{root}/{archive_relpath(folder_name_of(job), job.id, codec)}"


def manifest_of(lc: Lifecycle, job_id: uuid.UUID) -> list[Member]:
    rows = lc.session.scalars(select(ArchiveMember).where(ArchiveMember.job_id == job_id).order_by(ArchiveMember.id))
    return [Member(r.path, r.kind, r.size, r.sha256, r.link_target, r.offset) for r in rows]


class ReadBack:
    """Verify an archive by reading the file back, in a thread that follows it as it is written.

    It decodes every byte that lands in the file to the end (so the codec checks its own
    checksum), measures and CRCs the decoded tar stream, and hashes the file itself: so the
    checksum recorded is that of the bytes on disk, not of what we meant to write.
    """

    def __init__(self, path: Path, codec: str):
        self.follower = FollowingReader(path)
        self.spans: list[tuple[int, int]] = []  # filled by write_tar as it goes
        self.hasher = MemberHasher(self.spans)
        self.sha256 = ""
        self.size = 0
        self.tar_bytes = 0
        self.tar_crc = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(codec,), daemon=True)
        self.thread.start()

    def _run(self, codec: str) -> None:
        members: Pipe | None = None
        try:
            members = Pipe(self.hasher.feed)  # members are hashed on the other core while this one decodes
            reader = HashingReader(self.follower)  # type: ignore[arg-type]
            stream = decompressor(reader, codec)
            while chunk := stream.read(STREAM_BLOCK):
                self.tar_crc = crc32(chunk, self.tar_crc)
                self.tar_bytes += len(chunk)
                members.put(chunk)
            reader.drain()
            self.sha256, self.size = reader.sha256.hexdigest(), reader.bytes_read
        except BaseException as error:  # raised in the writer's thread by finish()
            self.error = error
        finally:
            try:
                if members is not None:
                    members.close()
            except BaseException as error:
                self.error = self.error or error

    def finish(self, *, abandon: bool = False) -> None:
        self.follower.finish(abandon=abandon)
        self.thread.join()
        self.follower.close()
        if not abandon and self.error is not None:
            raise ArchiveInvalid(f"the archive cannot be read back: {self.error}") from self.error


def _bytes_progress(lc: Lifecycle, total_of: Callable[[], int]) -> Callable[[int], None] | None:
    """A callback reporting bytes done of ``total_of()`` to the lifecycle's progress (None without one)."""
    report = lc.progress
    if report is None:
        return None
    total = total_of()  # only measured when someone watches
    return lambda done: report(min(done, total), total)


def write_archive(lc: Lifecycle, folder: Path, key: str, codec: str) -> WrittenArchive:
    """Write, fsync, verify and publish the archive of ``folder`` at ``key``; nothing is left on failure."""
    store = lc.store
    readback: ReadBack | None = None
    stream = None
    try:
        with store.open_partial(key) as raw:
            readback = ReadBack(store.partial_path(key), codec)
            counter = CountingWriter(raw)
            stream = compressor(counter, codec)
            written = write_tar(folder, stream, readback.spans, _bytes_progress(lc, lambda: folder_size(folder)))
            stream.close()
            blocks = getattr(stream, "blocks", None)
            raw.flush()
            lc.checkpoint("archive.written")
            os.fsync(raw.fileno())
        lc.checkpoint("archive.fsynced")
        readback.finish()
        check, readback = readback, None
        if check.size != counter.bytes_written:
            raise ArchiveInvalid(f"read back {check.size} bytes of the {counter.bytes_written} written")
        if (check.tar_bytes, check.tar_crc) != (written.tar_bytes, written.tar_crc):
            raise ArchiveInvalid("the archive does not decode to the tar stream that was written")
        digests = iter(check.hasher.digests)
        members = [replace(m, sha256=next(digests)) if m.kind == "file" else m for m in written.members]
        lc.checkpoint("archive.verified")
        store.publish(key)
    except BaseException:
        abandon(stream)
        if readback is not None:
            readback.finish(abandon=True)
        store.discard_partial(key)
        raise
    return WrittenArchive(
        key, codec, check.sha256, counter.bytes_written, members, written.warnings, written.fingerprints, blocks
    )


def abandon(stream: Any) -> None:
    """Stop a compressor given up on (its threads, its unwritten blocks); closed ones are left alone."""
    if stream is not None and not stream.closed and hasattr(stream, "abort"):
        stream.abort()


def record_archive(lc: Lifecycle, job: Job, archive: WrittenArchive, **extra: Any) -> None:
    """Add the archive's record and manifest to the session, guarded against a concurrent change."""
    now = lc.now()
    values = {
        "archived_at": now,
        "archive_path": archive.key,
        "archive_size_bytes": archive.size,
        "archive_sha256": archive.sha256,
        "compression": archive.codec,
        "folder_name": folder_name_of(job),
        "size_bytes": archive.content_bytes,
        **extra,
    }
    guarded = update(Job).where(Job.id == job.id, Job.archived_at.is_(None), Job.deleted_at.is_(None))
    if lc.session.execute(guarded.values(**values)).rowcount != 1:
        raise RunConflict(f"run {job.id} changed while it was being archived")
    lc.session.execute(delete(ArchiveMember).where(ArchiveMember.job_id == job.id))
    rows = [
        {"job_id": job.id, **member.as_dict(), **member_blocks(archive.blocks, member.offset, member.size)}
        for member in archive.members
    ]
    if rows:
        lc.session.execute(insert(ArchiveMember), rows)
    record_index(lc.session, job.id, archive.codec, archive.blocks)


def record_index(session: Any, job_id: uuid.UUID, codec: str, blocks: list[list[int]] | None) -> None:
    """Keep (or, with no blocks, forget) the block index of the run's archive."""
    session.execute(delete(ArchiveIndex).where(ArchiveIndex.job_id == job_id))
    if blocks:
        session.add(ArchiveIndex(job_id=job_id, codec=codec, blocks=blocks))


def archive_folder(lc: Lifecycle, job: Job, root: str) -> tuple[Path, WrittenArchive]:
    """Compress the run's folder into ``root`` (archive or trash), inside a compression slot."""
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    if folder is None:
        raise ArchiveFailed(f"the folder of run {job.id} is missing from {lc.settings.jobs_path}")
    codec = lc.settings.archive_compression
    with lc.locks.compression_slot(lc.settings.archive_max_concurrency):
        return folder, write_archive(lc, folder, archive_key(job, root, codec), codec)


def set_aside_path(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}{SET_ASIDE_SUFFIX}")


@contextmanager
def until_recorded(aside: Path | None) -> Iterator[None]:
    """Put a folder set aside back if the change it was set aside for fails before its commit."""
    try:
        yield
    except BaseException:
        if aside is not None and aside.exists():
            put_back(aside)
        raise


def put_back(aside: Path) -> Path:
    """Return a folder set aside to its place in jobs/ (the work that set it aside did not happen)."""
    folder = aside.with_name(aside.name[1 : -len(SET_ASIDE_SUFFIX)])
    os.rename(aside, folder)
    return folder


def set_aside(
    job: Job, folder: Path, manifest: list[Member], fingerprints: dict[str, tuple[Fingerprint, int]] | None = None
) -> Path:
    """Move a run folder out of its place and check that its archive holds every byte of it.

    The rename comes first: from then on a writer that opens a file by its path fails loudly
    instead of writing into a folder about to go, and the comparison sees the folder's last state.
    If it holds anything its archive does not (``tarball.folder_differences``) it is put back and
    ``FolderKept`` raised. The caller records its change, then removes the folder set aside;
    reconcile puts back one a crash left aside.
    """
    aside = set_aside_path(folder)
    if aside.exists():  # an earlier removal left one, and the folder was made again: a person merges them
        raise FolderKept(job.id, folder.name, [f"{aside.name} is there too: a copy set aside before"])
    os.rename(folder, aside)
    differences = folder_differences(aside, manifest, fingerprints)
    if differences:
        try:
            put_back(aside)
        except OSError as error:  # the name was taken meanwhile: both stay, for a person to merge
            differences.append(f"(left at {aside.name}: {folder.name} could not be put back: {error.strerror})")
        raise FolderKept(job.id, folder.name, differences)
    return aside


def set_aside_or_discard(lc: Lifecycle, job: Job, folder: Path, archive: WrittenArchive) -> Path:
    """Set the archived folder aside; if it changed while it was read, remove the (incomplete) archive.

    Files whose fingerprint is the one taken as they were read are not read again.
    """
    try:
        return set_aside(job, folder, archive.members, archive.fingerprints)
    except FolderKept:
        lc.store.remove(archive.key)  # never recorded: the run stays active, the next pass archives it afresh
        raise


def archive_run(
    lc: Lifecycle,
    job_id: uuid.UUID,
    *,
    actor: str,
    reason: str | None = None,
    manual: bool = False,
    expected_state: str | None = None,
) -> str:
    """Archive one finished run; return the outcome (succeeded, skipped or superseded)."""
    with attempt(lc, job_id, "archive", actor, reason, take_lock=True) as record:
        job = load_run(lc, job_id)
        if record.supersede(job, expected_state):
            return SUPERSEDED
        if job.archived_at is not None and job.deleted_at is None:
            return record.skip("already archived")
        require_under_lock(lc, "archive", job)
        if not manual and (job.keep_forever or (job.retain_until and job.retain_until > lc.now())):
            return record.skip("protected by a retention override")
        folder, archive = archive_folder(lc, job, "archive")
        aside = set_aside_or_discard(lc, job, folder, archive)
        with until_recorded(aside):
            lc.checkpoint("archive.published")
            record_archive(lc, job, archive)
            if archive.warnings:
                record.details["warnings"] = archive.warnings
            resolve_alerts(lc.session, "archive_failed", subject=str(job_id), now=lc.now())
            outcome = record.succeed(bytes_before=archive.content_bytes, bytes_after=archive.size)
            lc.session.commit()
        lc.checkpoint("archive.committed")
        shutil.rmtree(aside)
        return outcome


def adopt_archive(lc: Lifecycle, job: Job, key: str) -> None:
    """Record an archive found on disk without a record (its run folder gone): read it through first."""
    codec = next(c for c, ext in ARCHIVE_EXTENSIONS.items() if key.endswith(f".tar.{ext}"))
    with lc.store.open(key) as raw:
        reader = HashingReader(raw)
        stream = decompressor(reader, codec)
        members = manifest_from_tar(stream)
        while stream.read(1024 * 1024):
            pass
        reader.drain()
    archive = WrittenArchive(key, codec, reader.sha256.hexdigest(), reader.bytes_read, members, [])
    extra = {"deleted_at": lc.now(), "deleted_by": "reconcile"} if key.startswith("trash/") else {}
    record_archive(lc, job, archive, **extra)


def extract_archive(
    raw: BinaryIO,
    codec: str,
    manifest: list[Member],
    sha256: str | None,
    dest: Path | None,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Extract an archive stream into the new folder ``dest``, checked against its manifest and checksum.

    With ``dest`` None the same checks run and nothing is written: a verification.
    """
    files = [m for m in manifest if m.kind == "file"]
    by_offset = all(m.offset is not None for m in files)
    hasher = MemberHasher([(m.offset, m.size) for m in files]) if by_offset else None  # type: ignore[misc]
    # With data offsets the decompressing thread hashes each file, so the two cores share the work.
    stream = PipelinedDecompressor(raw, codec, hasher=hasher)
    try:
        extract_tar(stream, dest, manifest, hash_files=not by_offset, on_progress=on_progress)  # type: ignore[arg-type]
        while stream.read(1024 * 1024):
            pass
    except OSError as error:
        if error.errno is not None:  # the disk (ENOSPC, EACCES), not the archive
            raise
        raise ArchiveInvalid(f"the archive cannot be read: {error}") from error
    except CODEC_ERRORS as error:
        raise ArchiveInvalid(f"the archive cannot be read: {error}") from error
    finally:
        stream.close()
    if stream.sha256 != sha256:
        raise ArchiveInvalid("the archive does not match its recorded SHA-256")
    if hasher is not None:
        for member, digest in zip(files, hasher.digests + [None] * len(files), strict=False):
            if digest != member.sha256:
                raise ArchiveInvalid(f"{member.path!r} does not match its recorded SHA-256")


def extract_verified(lc: Lifecycle, job: Job, dest: Path) -> None:
    """Extract the run's archive into the new folder ``dest``, checked against its record."""
    with lc.store.open(job.archive_path) as raw:  # type: ignore[arg-type]
        manifest = manifest_of(lc, job.id)
        progress = _bytes_progress(lc, lambda: sum(member.size for member in manifest))
        extract_archive(raw, job.compression or "gzip", manifest, job.archive_sha256, dest, progress)


def restore_run(
    lc: Lifecycle, job_id: uuid.UUID, *, actor: str, reason: str | None = None, expected_state: str | None = None
) -> str:
    """Extract a working copy of an archived run into ``jobs/``; the archive stays the source of truth."""
    with attempt(lc, job_id, "restore", actor, reason, take_lock=True) as record:
        job = load_run(lc, job_id)
        if record.supersede(job, expected_state):
            return SUPERSEDED
        require_under_lock(lc, "restore", job)
        jobs_root = lc.settings.jobs_path
        target = jobs_root / run_folder_name(folder_name_of(job), job.id)
        if job.restored_at is not None and target.is_dir():
            return record.skip("a working copy is already restored")
        if target.exists():
            raise RunConflict(f"{target.name} already exists in jobs/; run `flask runs reconcile`")
        temp = jobs_root / f".{target.name}{RESTORE_SUFFIX}"
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir()
        try:
            extract_verified(lc, job, temp)
            lc.checkpoint("restore.extracted")
            os.rename(temp, target)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        fsync_dir(jobs_root)
        lc.checkpoint("restore.renamed")
        now = lc.now()
        guarded = update(Job).where(Job.id == job.id, Job.archived_at.is_not(None), Job.deleted_at.is_(None))
        lc.session.execute(
            guarded.values(restored_at=now, restore_expires_at=now + timedelta(days=lc.settings.restore_ttl_days))
        )
        outcome = record.succeed(bytes_before=job.archive_size_bytes, bytes_after=job.size_bytes)
        lc.session.commit()
        return outcome


def expire_restore(lc: Lifecycle, job_id: uuid.UUID, *, actor: str, reason: str | None = None) -> str:
    """Remove a restored working copy (nothing is recompressed: the archive never left).

    Only while the archive is there as recorded and not found corrupt: the working copy may be the
    last good copy. A working copy holding anything its archive does not (a file added or changed
    during the analysis) is kept, and the failure recorded and alerted (``FolderKept``).
    """
    with attempt(lc, job_id, "expire_restore", actor, reason, take_lock=True) as record:
        job = load_run(lc, job_id)
        if job.restored_at is None:
            return record.skip("no working copy is restored")
        if not archive_present(lc, job):
            raise ArchiveFailed(
                f"the archive of run {job_id} is missing, of the wrong size or found corrupt: its working copy stays"
            )
        folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
        aside = set_aside(job, folder, manifest_of(lc, job.id)) if folder is not None else None
        with until_recorded(aside):
            lc.checkpoint("expire_restore.set_aside")
            lc.session.execute(update(Job).where(Job.id == job.id).values(restored_at=None, restore_expires_at=None))
            resolve_alerts(lc.session, "archive_failed", subject=str(job_id), now=lc.now())
            outcome = record.succeed(bytes_before=job.size_bytes, bytes_after=0)
            lc.session.commit()
        lc.checkpoint("expire_restore.committed")
        if aside is not None:
            shutil.rmtree(aside)
        return outcome


def archive_intact(lc: Lifecycle, job: Job, *, deep: bool = True) -> bool:
    """The run's archive is there as recorded: its SHA-256 read through, or (not ``deep``) its size."""
    key = job.archive_path
    if not key or not lc.store.exists(key):
        return False
    if not deep:
        return lc.store.size(key) == job.archive_size_bytes
    return lc.store.sha256(key) == job.archive_sha256


def archive_present(lc: Lifecycle, job: Job) -> bool:
    """The run's archive is in the store at its recorded size, and no check found it corrupt or missing."""
    return job.verify_outcome not in ("corrupt", "missing") and archive_intact(lc, job, deep=False)
