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
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update

from app.lifecycle.codecs import CODEC_ERRORS, HashingReader, HashingWriter, compressor, decompressor
from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import RunConflict, RunNotFound
from app.lifecycle.events import attempt
from app.lifecycle.naming import ARCHIVE_EXTENSIONS, archive_relpath, find_run_folder, folder_name_for, run_folder_name
from app.lifecycle.store import fsync_dir
from app.lifecycle.tarball import ArchiveInvalid, Member, extract_tar, manifest_from_tar, verify_tar, write_tar
from app.models import FINISHED_STATUSES, ArchiveMember, Job

RESTORE_SUFFIX = ".restore.partial"


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

    @property
    def content_bytes(self) -> int:
        return sum(member.size for member in self.members)


def load_run(lc: Lifecycle, job_id: uuid.UUID) -> Job:
    """Read the run fresh from the database (another worker may have changed it)."""
    job = lc.session.scalar(select(Job).where(Job.id == job_id).execution_options(populate_existing=True))
    if job is None:
        raise RunNotFound(f"no run {job_id}")
    return job


def folder_name_of(job: Job) -> str:
    """The run's folder name, derived from its start for legacy runs that lack one."""
    return job.folder_name or folder_name_for(job.created_at)


def archive_key(job: Job, root: str, codec: str) -> str:
    return f"{root}/{archive_relpath(folder_name_of(job), job.id, codec)}"


def manifest_of(lc: Lifecycle, job_id: uuid.UUID) -> list[Member]:
    rows = lc.session.scalars(select(ArchiveMember).where(ArchiveMember.job_id == job_id).order_by(ArchiveMember.id))
    return [Member(r.path, r.kind, r.size, r.sha256, r.link_target, r.offset) for r in rows]


def write_archive(lc: Lifecycle, folder: Path, key: str, codec: str) -> WrittenArchive:
    """Write, fsync, verify and publish the archive of ``folder`` at ``key``; nothing is left on failure."""
    store = lc.store
    try:
        with store.open_partial(key) as raw:
            hasher = HashingWriter(raw)
            stream = compressor(hasher, codec)
            written = write_tar(folder, stream)
            stream.close()
            raw.flush()
            lc.checkpoint("archive.written")
            os.fsync(raw.fileno())
        lc.checkpoint("archive.fsynced")
        with open(store.partial_path(key), "rb") as raw:
            reader = HashingReader(raw)
            stream = decompressor(reader, codec)
            verify_tar(stream, written.members)
            try:
                while stream.read(1024 * 1024):  # to the end, so the codec checks its own checksum
                    pass
                reader.drain()
            except CODEC_ERRORS as error:
                raise ArchiveInvalid(f"the archive cannot be read back: {error}") from error
        if reader.sha256.hexdigest() != hasher.sha256.hexdigest():
            raise ArchiveInvalid("the archive read back differs from the bytes written")
        lc.checkpoint("archive.verified")
        store.publish(key)
    except BaseException:
        store.discard_partial(key)
        raise
    return WrittenArchive(
        key, codec, hasher.sha256.hexdigest(), hasher.bytes_written, written.members, written.warnings
    )


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
    rows = [{"job_id": job.id, **member.as_dict()} for member in archive.members]
    if rows:
        lc.session.execute(insert(ArchiveMember), rows)


def archive_folder(lc: Lifecycle, job: Job, root: str) -> tuple[Path, WrittenArchive]:
    """Compress the run's folder into ``root`` (archive or trash), inside a compression slot."""
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    if folder is None:
        raise ArchiveFailed(f"the folder of run {job.id} is missing from {lc.settings.jobs_path}")
    codec = lc.settings.archive_compression
    with lc.locks.compression_slot(lc.settings.archive_max_concurrency):
        return folder, write_archive(lc, folder, archive_key(job, root, codec), codec)


def archive_run(
    lc: Lifecycle, job_id: uuid.UUID, *, actor: str, reason: str | None = None, manual: bool = False
) -> str:
    """Archive one finished run; return the outcome (succeeded or skipped)."""
    with attempt(lc, job_id, "archive", actor, reason) as record, lc.locks.run(job_id):
        job = load_run(lc, job_id)
        if job.deleted_at is not None:
            raise RunConflict(f"run {job_id} is deleted")
        if job.archived_at is not None:
            return record.skip("already archived")
        if job.status not in FINISHED_STATUSES:
            raise RunConflict(f"run {job_id} is {job.status}; only finished runs are archived")
        if not manual and (job.keep_forever or (job.retain_until and job.retain_until > lc.now())):
            return record.skip("protected by a retention override")
        folder, archive = archive_folder(lc, job, "archive")
        lc.checkpoint("archive.published")
        record_archive(lc, job, archive)
        if archive.warnings:
            record.details["warnings"] = archive.warnings
        outcome = record.succeed(bytes_before=archive.content_bytes, bytes_after=archive.size)
        lc.session.commit()
        lc.checkpoint("archive.committed")
        shutil.rmtree(folder)
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


def open_archive(lc: Lifecycle, job: Job) -> tuple[HashingReader, Any]:
    raw = lc.store.open(job.archive_path)  # type: ignore[arg-type]
    reader = HashingReader(raw)
    return reader, decompressor(reader, job.compression or "gzip")


def extract_verified(lc: Lifecycle, job: Job, dest: Path) -> None:
    """Extract the run's archive into the new folder ``dest``, checked against its record."""
    manifest = manifest_of(lc, job.id)
    reader, stream = open_archive(lc, job)
    try:
        extract_tar(stream, dest, manifest)
        while stream.read(1024 * 1024):
            pass
        reader.drain()
    except OSError as error:
        if error.errno is not None:  # the disk (ENOSPC, EACCES), not the archive
            raise
        raise ArchiveInvalid(f"the archive cannot be read: {error}") from error
    except CODEC_ERRORS as error:
        raise ArchiveInvalid(f"the archive cannot be read: {error}") from error
    finally:
        reader.source.close()
    if reader.sha256.hexdigest() != job.archive_sha256:
        raise ArchiveInvalid(f"archive {job.archive_path} does not match its recorded SHA-256")


def restore_run(lc: Lifecycle, job_id: uuid.UUID, *, actor: str, reason: str | None = None) -> str:
    """Extract a working copy of an archived run into ``jobs/``; the archive stays the source of truth."""
    with attempt(lc, job_id, "restore", actor, reason) as record, lc.locks.run(job_id):
        job = load_run(lc, job_id)
        if job.deleted_at is not None or job.archived_at is None:
            raise RunConflict(
                f"run {job_id} is {'deleted' if job.deleted_at else 'active'}; only archived runs restore"
            )
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
    """Remove a restored working copy (nothing is recompressed: the archive never left)."""
    with attempt(lc, job_id, "expire_restore", actor, reason) as record, lc.locks.run(job_id):
        job = load_run(lc, job_id)
        if job.restored_at is None:
            return record.skip("no working copy is restored")
        lc.session.execute(update(Job).where(Job.id == job.id).values(restored_at=None, restore_expires_at=None))
        outcome = record.succeed(bytes_before=job.size_bytes, bytes_after=0)
        lc.session.commit()
        lc.checkpoint("expire_restore.committed")
        folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
        if folder is not None:
            shutil.rmtree(folder)
        return outcome
