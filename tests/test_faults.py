"""No data loss under faults: a failure at every step of every operation, then reconcile.

For each operation and each of its steps, the operation is stopped there - by an exception, and
by SIGKILL of a real process - then ``reconcile`` runs. Afterwards the run's data is intact
(its folder, or a recorded archive that restores to the same bytes), nothing is archived twice,
no partial file remains, and running the operation again finishes the job.
"""

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.lifecycle import archival, deletion, passes
from app.lifecycle.archival import RESTORE_SUFFIX
from app.lifecycle.errors import LifecycleError
from app.lifecycle.naming import find_run_folder
from app.lifecycle.reconcile import reconcile
from app.models import Job, JobAudit, LifecycleEvent
from tests.support import new_run, tree

ROOT = Path(__file__).resolve().parent.parent


class Injected(Exception):
    pass


def setup_active(lc, make_run, clock):
    return make_run(days_ago=40)


def setup_archived(lc, make_run, clock):
    job = make_run(days_ago=40)
    archival.archive_run(lc, job.id, actor="scheduler")
    return job


def setup_restored(lc, make_run, clock):
    job = setup_archived(lc, make_run, clock)
    archival.restore_run(lc, job.id, actor="ada")
    return job


def setup_trashed(lc, make_run, clock):
    job = setup_archived(lc, make_run, clock)
    deletion.delete_run(lc, job.id, actor="ada", reason="r", strategy="soft")
    return job


SCENARIOS = {
    # operation: (setup, steps, the state it ends in)
    "archive": (
        setup_active,
        ["archive.written", "archive.fsynced", "archive.verified", "archive.published", "archive.committed"],
        "archived",
    ),
    "restore": (setup_archived, ["restore.extracted", "restore.renamed"], "restored"),
    "expire_restore": (setup_restored, ["expire_restore.committed"], "archived"),
    "soft_delete": (setup_archived, ["delete.moved", "delete.committed"], "trashed"),
    "soft_delete_active": (
        setup_active,
        ["archive.written", "archive.fsynced", "archive.verified", "delete.archived", "delete.committed"],
        "trashed",
    ),
    "hard_delete": (setup_archived, ["delete.committed"], "gone"),
    "purge": (setup_trashed, ["purge.committed"], "purged"),
    "undelete": (setup_trashed, ["undelete.moved", "undelete.committed"], "archived"),
}
CASES = [(name, step) for name, (_s, steps, _e) in SCENARIOS.items() for step in steps]


def run_operation(lc, name, job_id):
    from tests.fault_runner import OPERATIONS

    return OPERATIONS["soft_delete" if name == "soft_delete_active" else name](lc, job_id)


def fresh(lc, job_id):
    lc.session.expire_all()
    return lc.session.get(Job, job_id)


def state_of(lc, job_id):
    job = fresh(lc, job_id)
    if job is None:
        return "gone"
    if job.purged_at is not None:
        return "purged"
    if job.deleted_at is not None:
        return "trashed"
    if job.archived_at is None:
        return "active"
    return "restored" if job.restored_at is not None else "archived"


def assert_intact(lc, job_id, original):
    """The run's data is whole, in exactly one place the record agrees with, and nothing is half-written."""
    assert list(lc.store.partials()) == []
    assert list(lc.settings.jobs_path.glob(f".*{RESTORE_SUFFIX}")) == []
    keys = [key for key in lc.store.keys() if str(job_id) in key]
    job = fresh(lc, job_id)
    state = state_of(lc, job_id)
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id) if job else None
    if state in ("gone", "purged"):
        assert keys == [] and folder is None
        if state == "gone":
            assert lc.session.scalar(select(JobAudit).where(JobAudit.job_id == job_id, JobAudit.strategy == "hard"))
        return state
    if state == "active":
        assert keys == [], "an active run has no archive"
        assert folder is not None and tree(folder) == original
        return state
    assert keys == [job.archive_path], "exactly one archive, where the record says"
    assert lc.store.sha256(job.archive_path) == job.archive_sha256
    if state == "restored":
        assert folder is not None and tree(folder) == original
    else:
        assert folder is None
    probe = lc.settings.scraper_data_path / "probe"
    probe.mkdir()
    archival.extract_verified(lc, job, probe)
    assert tree(probe) == original
    import shutil

    shutil.rmtree(probe)
    return state


def finish(lc, name, job_id, expected, clock):
    """Run the operation again (as the next pass or the user would) and check where the run ends."""
    if state_of(lc, job_id) != expected:
        try:
            run_operation(lc, name, job_id)
        except LifecycleError:
            pass
    assert state_of(lc, job_id) == expected


def prepare(lc, make_run, clock, name):
    setup, _steps, _expected = SCENARIOS[name]
    job = make_run(days_ago=40)  # used for the original tree only
    original = tree(find_run_folder(lc.settings.jobs_path, job.folder_name, job.id))
    deletion.delete_run(lc, job.id, actor="t", reason="scaffolding", strategy="hard")
    job = setup(lc, make_run, clock)
    return job.id, original


@pytest.mark.parametrize(("name", "step"), CASES)
def test_exception_at_each_step(lc, make_run, clock, name, step):
    job_id, original = prepare(lc, make_run, clock, name)

    def fault(at):
        if at == step:
            raise Injected(at)

    lc.fault = fault
    with pytest.raises(Injected):
        run_operation(lc, name, job_id)
    lc.fault = None
    failed = lc.session.scalar(
        select(LifecycleEvent).where(LifecycleEvent.job_id == job_id, LifecycleEvent.outcome == "failed")
    )
    assert failed is not None and "Injected" in failed.error
    reconcile(lc)
    assert_intact(lc, job_id, original)
    reconcile(lc)  # idempotent
    assert_intact(lc, job_id, original)
    finish(lc, name, job_id, SCENARIOS[name][2], clock)
    assert_intact(lc, job_id, original)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "step"), CASES)
def test_killed_process_at_each_step(lc, make_run, clock, name, step, process_env):
    job_id, original = prepare(lc, make_run, clock, name)
    env = process_env
    lc.session.commit()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fault_runner",
            "soft_delete" if name == "soft_delete_active" else name,
            str(job_id),
            step,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -9, result.stderr[-2000:]
    deadline = time.monotonic() + 10
    while lc.locks.is_locked(job_id):  # the dead holder's lock expires by itself
        assert time.monotonic() < deadline, "the killed worker's lock never expired"
        time.sleep(0.2)
    report = reconcile(lc)
    assert not report.busy
    assert_intact(lc, job_id, original)
    assert_attempt_recorded(lc, job_id, step)
    finish(lc, name, job_id, SCENARIOS[name][2], clock)
    assert_intact(lc, job_id, original)


def assert_attempt_recorded(lc, job_id, step):
    """The killed attempt is history, not a gap: failed ("interrupted") if it died before its commit."""
    from app.lifecycle.events import INTERRUPTED

    lc.session.expire_all()
    rows = list(lc.session.scalars(select(LifecycleEvent).where(LifecycleEvent.job_id == job_id)))
    assert not [row for row in rows if row.outcome == "started"]
    interrupted = [row for row in rows if row.outcome == "failed" and row.error == INTERRUPTED]
    if step.endswith(".committed"):
        assert not interrupted  # the work was recorded; only leftovers were repaired
    else:
        assert len(interrupted) == 1 and interrupted[0].finished_at is not None


def test_disk_full_while_archiving_keeps_the_folder_and_records_the_failure(lc, make_run, monkeypatch):
    from app.lifecycle import streams

    job = make_run()
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    original = tree(folder)
    real_write = streams.CountingWriter.write

    def full(self, data):
        if self.bytes_written + len(data) > 100:  # the disk has room for 100 bytes
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(streams.CountingWriter, "write", full)
    report = passes.archive_old_runs(lc)
    assert report.failed == 1
    event = lc.session.scalar(select(LifecycleEvent).where(LifecycleEvent.job_id == job.id))
    assert event.outcome == "failed" and "No space left" in event.error
    assert tree(folder) == original and list(lc.store.partials()) == [] and list(lc.store.keys()) == []
    monkeypatch.undo()
    assert passes.archive_old_runs(lc).outcomes["succeeded"] == 1  # retried on the next pass
    assert_intact(lc, job.id, original)


def test_disk_full_while_restoring_leaves_nothing_behind(lc, make_run, monkeypatch):
    from app.lifecycle import tarball

    job = setup_archived(lc, make_run, None)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tarball, "_extract_file", full)
    with pytest.raises(OSError, match="No space left"):
        archival.restore_run(lc, job.id, actor="ada")
    assert list(lc.settings.jobs_path.iterdir()) == []
    assert fresh(lc, job.id).restored_at is None
    event = lc.session.scalar(select(LifecycleEvent).where(LifecycleEvent.action == "restore"))
    assert event.outcome == "failed" and "No space left" in event.error


def test_permission_denied_on_the_archive_folder(lc, make_run, monkeypatch):
    from app.lifecycle.store import LocalArchiveStore

    job = make_run()
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    original = tree(folder)

    def denied(self, key):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.partial_path(key)))

    monkeypatch.setattr(LocalArchiveStore, "open_partial", denied)
    report = passes.archive_old_runs(lc)
    assert report.failed == 1 and "Permission denied" in report.errors[0]
    assert tree(folder) == original
    event = lc.session.scalar(select(LifecycleEvent).where(LifecycleEvent.job_id == job.id))
    assert event.outcome == "failed" and "Permission denied" in event.error


def test_permission_denied_on_the_trash_keeps_the_archive(lc, make_run, monkeypatch):
    job = setup_archived(lc, make_run, None)
    original_key = fresh(lc, job.id).archive_path

    def denied(source, target):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))

    monkeypatch.setattr("app.lifecycle.store.os.rename", denied)
    with pytest.raises(PermissionError):
        deletion.delete_run(lc, job.id, actor="ada", reason="r")
    monkeypatch.undo()
    job = fresh(lc, job.id)
    assert job.deleted_at is None and job.archive_path == original_key and lc.store.exists(original_key)


@pytest.fixture
def other_filesystem():
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        pytest.skip("no tmpfs at /dev/shm to stand for a second file system")
    import tempfile

    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder)


def test_trash_on_another_file_system_copies_verifies_then_removes(lc_with, clock, other_filesystem):
    lc = lc_with(ARCHIVE_BASE_PATH=str(other_filesystem / "archive"))
    job = new_run(lc, clock, {}, days_ago=39)
    (find_run_folder(lc.settings.jobs_path, job.folder_name, job.id) / "a.txt").write_text("data")
    archival.archive_run(lc, job.id, actor="t")
    key = fresh(lc, job.id).archive_path

    def fault(at):
        if at == "delete.moved":
            raise Injected(at)

    lc.fault = fault
    with pytest.raises(Injected):
        deletion.delete_run(lc, job.id, actor="ada", reason="r")
    lc.fault = None
    assert lc.store.exists(key) and lc.store.exists("trash/" + key.partition("/")[2])  # copied, not moved
    reconcile(lc)
    assert [k for k in lc.store.keys()] == [key]
    deletion.delete_run(lc, job.id, actor="ada", reason="r")
    deletion.undelete_run(lc, job.id, actor="ada")
    assert list(lc.store.keys()) == [key]
    archival.restore_run(lc, job.id, actor="ada")
    assert (find_run_folder(lc.settings.jobs_path, job.folder_name, job.id) / "a.txt").read_text() == "data"
