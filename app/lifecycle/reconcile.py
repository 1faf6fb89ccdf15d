"""Repair every state a crash can leave, so work resumes with no manual clean-up. Idempotent.

The rule: the database records what was decided. Before a commit, the new copy is extra and
the old one is the truth; after it, the filesystem is brought to match the record. Nothing that
might be a run's only copy is removed without first checking the copy that stays, and a run
folder only when its archive holds every byte of it.

``reconcile(lc, repair=False)`` is the read-only report: it takes no lock and changes nothing,
and lists what a repair would do and what needs a person.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select, update

from app.lifecycle.archival import (
    RESTORE_SUFFIX,
    SET_ASIDE_SUFFIX,
    adopt_archive,
    archive_intact,
    manifest_of,
    put_back,
    set_aside,
)
from app.lifecycle.context import Lifecycle
from app.lifecycle.disk import remove_folder
from app.lifecycle.errors import FolderKept, RunNotFound
from app.lifecycle.events import INTERRUPTED, attempt
from app.lifecycle.locks import RunBusy
from app.lifecycle.naming import find_run_folder, parse_run_folder
from app.lifecycle.runs import folder_name_of, load_run
from app.lifecycle.store import PARTIAL_SUFFIX, StoreError
from app.lifecycle.tarball import folder_differences
from app.models import ArchiveIndex, ArchiveMember, Job, JobAudit, LifecycleEvent


@dataclass
class ReconcileReport:
    """What was repaired (or, read-only, would be), and what is left for a person."""

    read_only: bool = False
    repaired: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def unrepaired(self) -> int:
        """Findings still standing after this pass: each makes ``flask runs reconcile`` exit 1."""
        return len(self.orphans) + len(self.busy) + len(self.problems) + (len(self.repaired) if self.read_only else 0)

    def as_dict(self) -> dict[str, list[str]]:
        return {"repaired": self.repaired, "orphans": self.orphans, "busy": self.busy, "problems": self.problems}


class _Pass:
    """One reconcile pass: holds each run's lock while it repairs it, or (read-only) only looks."""

    def __init__(self, lc: Lifecycle, actor: str, repair: bool, deep: bool):
        self.lc, self.actor, self.repair = lc, actor, repair
        self.deep = deep  # read archives and folders through (a repair always does before removing anything)
        self.report = ReconcileReport(read_only=not repair)

    def hold(self, job_id: uuid.UUID) -> AbstractContextManager[None]:
        """The run's lock while repairing; read-only, no lock, but a run being worked on is left alone."""
        if self.repair:
            return self.lc.locks.run(job_id)
        if self.lc.locks.is_locked(job_id):
            raise RunBusy(f"run {job_id} is being worked on")
        return nullcontext()

    def fix(self, would: str, done: str, action: Callable[[], object]) -> None:
        """Repair one thing (or, read-only, list it: ``would`` says what would be done)."""
        if not self.repair:
            self.report.repaired.append(would)
            return
        action()
        self.report.repaired.append(done)


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


def reconcile(
    lc: Lifecycle, *, actor: str = "reconcile", repair: bool = True, hash_archives: bool = False
) -> ReconcileReport:
    """Run every repair (or, with ``repair=False``, only list them); return what was found.

    ``hash_archives`` also reads every recorded archive through its SHA-256 (the report does; the
    passes leave that to the budgeted ``verify_archives``).
    """
    p = _Pass(lc, actor, repair, deep=repair or hash_archives)
    _interrupted_attempts(p)
    _stale_partials(p)
    _folders_set_aside(p)
    for key in list(lc.store.keys()):
        _archive_file(p, key)
    _run_folders(p)
    _recorded_archives(p, hash_archives)
    return p.report


def _interrupted_attempts(p: _Pass) -> None:
    """An attempt still ``started`` whose run nobody holds was cut short (kill -9, power): record it failed."""
    lc = p.lc
    rows = lc.session.execute(
        select(LifecycleEvent.id, LifecycleEvent.job_id, LifecycleEvent.action).where(
            LifecycleEvent.outcome == "started"
        )
    ).all()
    for event_id, job_id, action in rows:
        if not p.repair:
            if not lc.locks.is_locked(job_id):
                p.report.repaired.append(f"record the {action} of run {job_id} as interrupted")
            continue
        try:
            with lc.locks.run(job_id):
                finished = (
                    update(LifecycleEvent)
                    .where(LifecycleEvent.id == event_id, LifecycleEvent.outcome == "started")
                    .values(outcome="failed", error=INTERRUPTED, finished_at=lc.now())
                )
                if lc.session.execute(finished).rowcount:
                    p.report.repaired.append(f"recorded the {action} of run {job_id} as interrupted")
                lc.session.commit()
        except RunBusy:
            lc.session.rollback()  # its holder is alive and will record the outcome itself


def _stale_partials(p: _Pass) -> None:
    """A partial archive or restore whose run nobody holds is what a crash left: remove it."""
    lc = p.lc
    candidates: list[tuple[Path, str]] = [(path, path.name[1 : -len(PARTIAL_SUFFIX)]) for path in lc.store.partials()]
    jobs_root = lc.settings.jobs_path
    for path in jobs_root.glob(f".*{RESTORE_SUFFIX}"):
        candidates.append((path, path.name[1 : -len(RESTORE_SUFFIX)]))
    for path, name in candidates:
        job_id = _job_id_of(name)
        if job_id is None:
            p.report.orphans.append(str(path))
            continue
        try:
            with p.hold(job_id):
                if not path.exists():
                    continue  # its writer finished it meanwhile

                def remove(path: Path = path) -> None:
                    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

                p.fix(f"remove stale partial {path.name}", f"removed stale partial {path.name}", remove)
        except RunBusy:
            p.report.busy.append(str(path))


def _folders_set_aside(p: _Pass) -> None:
    """A run folder set aside for removal whose removal was never recorded: put it back, and let the
    rules for run folders decide again (a crash between the rename and the commit)."""
    lc = p.lc
    for aside in sorted(lc.settings.jobs_path.glob(f".*{SET_ASIDE_SUFFIX}")):
        name = aside.name[1 : -len(SET_ASIDE_SUFFIX)]
        parsed = parse_run_folder(name)
        if parsed is None:
            p.report.orphans.append(aside.name)
            continue
        try:
            with p.hold(parsed[1]):
                if not aside.exists():
                    continue
                if (lc.settings.jobs_path / name).exists():
                    p.report.problems.append(f"{aside.name}: set aside, and {name} exists again; both kept")
                    continue
                p.fix(
                    f"put {aside.name} back as {name}",
                    f"put {aside.name} back as {name}",
                    lambda aside=aside: put_back(aside),
                )
        except RunBusy:
            p.report.busy.append(aside.name)


def _archive_file(p: _Pass, key: str) -> None:
    lc = p.lc
    job_id = _job_id_of(key.rsplit("/", 1)[-1])
    if job_id is None:
        p.report.orphans.append(key)
        return
    try:
        with p.hold(job_id):
            if not lc.store.exists(key):
                return  # moved or removed by its holder before we had the lock
            try:
                job = load_run(lc, job_id)
            except RunNotFound:
                if _hard_deleted(lc, job_id):
                    p.fix(
                        f"finish the hard delete of {key}",
                        f"finished the hard delete of {key}",
                        lambda: lc.store.remove(key, secure=lc.settings.secure_delete),
                    )
                else:
                    p.report.orphans.append(key)
                return
            _archive_file_of(p, job, key)
    except RunBusy:
        p.report.busy.append(key)


def _archive_file_of(p: _Pass, job: Job, key: str) -> None:
    lc, actor = p.lc, p.actor
    recorded = job.archive_path
    secure = lc.settings.secure_delete
    if recorded == key:
        if job.purged_at is not None:
            p.fix(
                f"finish the purge of {key}: its run was purged",
                f"finished the purge of {key}",
                lambda: lc.store.remove(key, secure=secure),
            )
        return
    if recorded is None:
        # Published but never recorded: the archival crashed between rename and commit. The run
        # folder is still the original; should it be gone, the archive is the only copy: adopt it.
        if find_run_folder(lc.settings.jobs_path, job.folder_name, job.id) is not None:
            p.fix(
                f"remove unrecorded archive {key}; the run folder is still the original",
                f"removed unrecorded archive {key}; the run folder is still the original",
                lambda: lc.store.remove(key),
            )
            return

        def adopt() -> None:
            with attempt(lc, job.id, "archive", actor, "reconcile: adopt an unrecorded archive") as rec:
                adopt_archive(lc, job, key)
                rec.details["repair"] = f"adopted {key}"
                rec.succeed(bytes_after=job.archive_size_bytes)
                lc.session.commit()

        p.fix(f"adopt unrecorded archive {key}", f"adopted unrecorded archive {key}", adopt)
        return
    if job.purged_at is not None:
        p.fix(
            f"remove {key} of a purged run",
            f"removed {key} of a purged run",
            lambda: lc.store.remove(key, secure=secure),
        )
        return
    if lc.store.exists(recorded):
        if archive_intact(lc, job, deep=p.deep):
            p.fix(
                f"remove leftover copy {key}; {recorded} is intact",
                f"removed leftover copy {key}; {recorded} is intact",
                lambda: lc.store.remove(key),
            )
        else:
            p.report.problems.append(f"{recorded} does not match its checksum; kept {key}")
        return
    # The record points where the file is not: a move (trash, undelete) crashed before its commit.
    if not p.repair:
        p.report.repaired.append(f"move {key} back to {recorded}")
        return
    try:
        with attempt(lc, job.id, "delete" if recorded.startswith("trash/") else "undelete", actor, "reconcile") as rec:
            if lc.store.move(key, recorded, job.archive_sha256):  # type: ignore[arg-type]
                lc.store.remove(key)
            rec.details["repair"] = f"moved {key} back to {recorded}"
            rec.succeed()
            lc.session.commit()
        p.report.repaired.append(f"moved {key} back to {recorded}")
    except (StoreError, OSError) as error:
        p.report.problems.append(f"could not move {key} to {recorded}: {error}")


def _run_folders(p: _Pass) -> None:
    lc = p.lc
    for folder in sorted(lc.settings.jobs_path.iterdir()):
        parsed = parse_run_folder(folder.name)
        if parsed is None or not folder.is_dir() or folder.is_symlink():
            if not folder.name.startswith(".") or not folder.name.endswith((RESTORE_SUFFIX, SET_ASIDE_SUFFIX)):
                p.report.orphans.append(folder.name)
            continue
        job_id = parsed[1]
        try:
            with p.hold(job_id):
                if folder.is_dir():  # its holder may have archived it before we had the lock
                    _run_folder_of(p, job_id, folder)
        except RunBusy:
            p.report.busy.append(folder.name)


def _run_folder_of(p: _Pass, job_id: uuid.UUID, folder: Path) -> None:
    lc, actor = p.lc, p.actor
    try:
        job = load_run(lc, job_id)
    except RunNotFound:
        if _hard_deleted(lc, job_id):
            p.fix(
                f"finish the hard delete of {folder.name}",
                f"finished the hard delete of {folder.name}",
                lambda: remove_folder(folder, secure=lc.settings.secure_delete),
            )
        else:
            p.report.orphans.append(folder.name)
        return
    if job.archived_at is None:
        return  # an active run: its folder belongs there
    if job.restored_at is not None and job.deleted_at is None:
        return  # a live working copy
    # An archived, trashed or purged run whose folder is still here: archival or expiry crashed
    # before removing it, or a restore crashed before recording it.
    if job.purged_at is None and archive_intact(lc, job, deep=p.deep):
        _remove_archived_folder(p, job, folder)
        return
    if job.deleted_at is None:
        # The record claims an archive that is missing or damaged, but the folder is here: make
        # the run active again so the next pass archives it afresh.
        if not p.repair:
            p.report.repaired.append(f"make {folder.name} active again: its archive is missing or damaged")
            return
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
                    last_verified_at=None,
                    verify_outcome=None,
                )
            )
            lc.session.execute(delete(ArchiveMember).where(ArchiveMember.job_id == job.id))
            lc.session.execute(delete(ArchiveIndex).where(ArchiveIndex.job_id == job.id))
            rec.details["repair"] = "archive missing or damaged; the run is active again"
            rec.succeed()
            lc.session.commit()
        p.report.repaired.append(f"{folder.name}: archive missing or damaged, run made active again")
        return
    p.report.problems.append(f"{folder.name}: deleted run with a folder but no intact archive; left in place")


def _remove_archived_folder(p: _Pass, job: Job, folder: Path) -> None:
    """Remove the folder of a run whose archive is intact, only if the archive holds all of it."""
    lc = p.lc
    if not p.deep:
        p.report.repaired.append(f"remove {folder.name} if its archive {job.archive_path} holds all of it")
        return
    manifest = manifest_of(lc, job.id)
    if not p.repair:
        if differences := folder_differences(folder, manifest):
            p.report.problems.append(str(FolderKept(job.id, folder.name, differences)))
        else:
            p.report.repaired.append(f"remove {folder.name}: its archive {job.archive_path} holds all of it")
        return
    try:
        aside = set_aside(job, folder, manifest)
    except FolderKept as kept:
        p.report.problems.append(str(kept))
        with contextlib.suppress(FolderKept):  # recorded as a failed attempt, with its alert
            with attempt(lc, job.id, "archive", p.actor, "reconcile: remove the folder of an archived run"):
                raise kept from None
        return
    remove_folder(aside, secure=lc.settings.secure_delete and job.deleted_at is not None)
    p.report.repaired.append(f"removed {folder.name}: its archive {job.archive_path} is intact")


def _recorded_archives(p: _Pass, hash_archives: bool) -> None:
    """Every archive the database records is there, of its recorded size (and SHA-256, when asked)."""
    lc = p.lc
    rows = (
        select(Job.id, Job.archive_path, Job.archive_size_bytes, Job.archive_sha256, Job.folder_name)
        .where(Job.archive_path.is_not(None), Job.purged_at.is_(None))
        .order_by(Job.id)
        .execution_options(yield_per=1000)
    )
    for job_id, key, size, sha256, folder_name in lc.session.execute(rows):
        if lc.locks.is_locked(job_id):
            continue  # being moved or written now
        if not lc.store.exists(key):
            if find_run_folder(lc.settings.jobs_path, folder_name, job_id) is None:
                p.report.problems.append(f"run {job_id}: its archive {key} is missing")
        elif lc.store.size(key) != size:
            p.report.problems.append(f"run {job_id}: {key} is {lc.store.size(key)} bytes, recorded {size}")
        elif hash_archives and lc.store.sha256(key) != sha256:
            p.report.problems.append(f"run {job_id}: {key} does not match its recorded SHA-256")
