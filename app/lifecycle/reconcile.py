"""Repair every state a crash can leave, so work resumes with no manual clean-up. Idempotent.

The rule: the database records what was decided. Before a commit, the new copy is extra and
the old one is the truth; after it, the filesystem is brought to match the record. Nothing that
might be a run's only copy is removed without first checking the copy that stays.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select, update

from app.lifecycle.archival import RESTORE_SUFFIX, adopt_archive, folder_name_of, load_run
from app.lifecycle.context import Lifecycle
from app.lifecycle.deletion import remove_folder
from app.lifecycle.errors import RunNotFound
from app.lifecycle.events import attempt
from app.lifecycle.locks import RunBusy
from app.lifecycle.naming import find_run_folder, parse_run_folder
from app.lifecycle.store import PARTIAL_SUFFIX, StoreError
from app.models import ArchiveMember, Job, JobAudit


@dataclass
class ReconcileReport:
    repaired: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"repaired": self.repaired, "orphans": self.orphans, "busy": self.busy, "problems": self.problems}


def _job_id_of(name: str) -> uuid.UUID | None:
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    parsed = parse_run_folder(name)
    return parsed[1] if parsed else None


def _hard_deleted(lc: Lifecycle, job_id: uuid.UUID) -> bool:
    audit = select(JobAudit.id).where(JobAudit.job_id == job_id, JobAudit.strategy == "hard").limit(1)
    return lc.session.scalar(audit) is not None


def _archive_intact(lc: Lifecycle, job: Job) -> bool:
    key = job.archive_path
    return bool(key) and lc.store.exists(key) and lc.store.sha256(key) == job.archive_sha256  # type: ignore[arg-type]


def reconcile(lc: Lifecycle, *, actor: str = "reconcile") -> ReconcileReport:
    """Run every repair; return what was done and what needs a person."""
    report = ReconcileReport()
    _stale_partials(lc, report)
    for key in list(lc.store.keys()):
        _archive_file(lc, key, report, actor)
    _run_folders(lc, report, actor)
    return report


def _stale_partials(lc: Lifecycle, report: ReconcileReport) -> None:
    """A partial archive or restore whose run nobody holds is what a crash left: remove it."""
    candidates: list[tuple[Path, str]] = [(p, p.name[1 : -len(PARTIAL_SUFFIX)]) for p in lc.store.partials()]
    jobs_root = lc.settings.jobs_path
    for path in jobs_root.glob(f".*{RESTORE_SUFFIX}"):
        candidates.append((path, path.name[1 : -len(RESTORE_SUFFIX)]))
    for path, name in candidates:
        job_id = _job_id_of(name)
        if job_id is None:
            report.orphans.append(str(path))
            continue
        try:
            with lc.locks.run(job_id):
                if not path.exists():
                    continue  # its writer finished it meanwhile
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
                report.repaired.append(f"removed stale partial {path.name}")
        except RunBusy:
            report.busy.append(str(path))


def _archive_file(lc: Lifecycle, key: str, report: ReconcileReport, actor: str) -> None:
    job_id = _job_id_of(key.rsplit("/", 1)[-1])
    if job_id is None:
        report.orphans.append(key)
        return
    try:
        with lc.locks.run(job_id):
            if not lc.store.exists(key):
                return  # moved or removed by its holder before we had the lock
            try:
                job = load_run(lc, job_id)
            except RunNotFound:
                if _hard_deleted(lc, job_id):
                    lc.store.remove(key, secure=lc.settings.secure_delete)
                    report.repaired.append(f"finished the hard delete of {key}")
                else:
                    report.orphans.append(key)
                return
            _archive_file_of(lc, job, key, report, actor)
    except RunBusy:
        report.busy.append(key)


def _archive_file_of(lc: Lifecycle, job: Job, key: str, report: ReconcileReport, actor: str) -> None:
    recorded = job.archive_path
    if recorded == key:
        if job.purged_at is not None:
            lc.store.remove(key, secure=lc.settings.secure_delete)
            report.repaired.append(f"finished the purge of {key}")
        return
    if recorded is None:
        # Published but never recorded: the archival crashed between rename and commit. The run
        # folder is still the original; should it be gone, the archive is the only copy: adopt it.
        if find_run_folder(lc.settings.jobs_path, job.folder_name, job.id) is not None:
            lc.store.remove(key)
            report.repaired.append(f"removed unrecorded archive {key}; the run folder is still the original")
            return
        with attempt(lc, job.id, "archive", actor, "reconcile: adopt an unrecorded archive") as rec:
            adopt_archive(lc, job, key)
            rec.details["repair"] = f"adopted {key}"
            rec.succeed(bytes_after=job.archive_size_bytes)
            lc.session.commit()
        report.repaired.append(f"adopted unrecorded archive {key}")
        return
    if job.purged_at is not None:
        lc.store.remove(key, secure=lc.settings.secure_delete)
        report.repaired.append(f"removed {key} of a purged run")
        return
    if lc.store.exists(recorded):
        if _archive_intact(lc, job):
            lc.store.remove(key)
            report.repaired.append(f"removed leftover copy {key}; {recorded} is intact")
        else:
            report.problems.append(f"{recorded} does not match its checksum; kept {key}")
        return
    # The record points where the file is not: a move (trash, undelete) crashed before its commit.
    try:
        with attempt(lc, job.id, "delete" if recorded.startswith("trash/") else "undelete", actor, "reconcile") as rec:
            if lc.store.move(key, recorded, job.archive_sha256):  # type: ignore[arg-type]
                lc.store.remove(key)
            rec.details["repair"] = f"moved {key} back to {recorded}"
            rec.succeed()
            lc.session.commit()
        report.repaired.append(f"moved {key} back to {recorded}")
    except (StoreError, OSError) as error:
        report.problems.append(f"could not move {key} to {recorded}: {error}")


def _run_folders(lc: Lifecycle, report: ReconcileReport, actor: str) -> None:
    jobs_root = lc.settings.jobs_path
    for folder in sorted(jobs_root.iterdir()):
        parsed = parse_run_folder(folder.name)
        if parsed is None or not folder.is_dir() or folder.is_symlink():
            continue
        job_id = parsed[1]
        try:
            with lc.locks.run(job_id):
                if folder.is_dir():  # its holder may have archived it before we had the lock
                    _run_folder_of(lc, job_id, folder, report, actor)
        except RunBusy:
            report.busy.append(folder.name)


def _run_folder_of(lc: Lifecycle, job_id: uuid.UUID, folder: Path, report: ReconcileReport, actor: str) -> None:
    try:
        job = load_run(lc, job_id)
    except RunNotFound:
        if _hard_deleted(lc, job_id):
            remove_folder(folder, secure=lc.settings.secure_delete)
            report.repaired.append(f"finished the hard delete of {folder.name}")
        else:
            report.orphans.append(folder.name)
        return
    if job.archived_at is None:
        return  # an active run: its folder belongs there
    if job.restored_at is not None and job.deleted_at is None:
        return  # a live working copy
    # An archived, trashed or purged run whose folder is still here: archival or expiry crashed
    # before removing it, or a restore crashed before recording it.
    if job.purged_at is None and _archive_intact(lc, job):
        remove_folder(folder, secure=lc.settings.secure_delete and job.deleted_at is not None)
        report.repaired.append(f"removed {folder.name}: its archive {job.archive_path} is intact")
        return
    if job.deleted_at is None:
        # The record claims an archive that is missing or damaged, but the folder is here: make
        # the run active again so the next pass archives it afresh.
        with attempt(lc, job.id, "archive", actor, "reconcile: archive missing or damaged") as rec:
            lc.session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(
                    archived_at=None,
                    archive_path=None,
                    archive_size_bytes=None,
                    archive_sha256=None,
                    compression=None,
                    restored_at=None,
                    restore_expires_at=None,
                    folder_name=folder_name_of(job),
                )
            )
            lc.session.execute(delete(ArchiveMember).where(ArchiveMember.job_id == job.id))
            rec.details["repair"] = "archive missing or damaged; the run is active again"
            rec.succeed()
            lc.session.commit()
        report.repaired.append(f"{folder.name}: archive missing or damaged, run made active again")
        return
    report.problems.append(f"{folder.name}: deleted run with a folder but no intact archive; left in place")
