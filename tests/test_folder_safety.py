"""No run folder is removed while it holds a byte its archive does not (issue 9, point 1).

Every path that removes a folder - archival, a soft delete of an active run, reconcile after a
killed archival, restore expiry - first compares it with the archive's manifest (path, kind,
size, SHA-256). Anything extra or different keeps the folder, records a failed event naming the
files, and opens an alert.
"""

import os

import pytest
from sqlalchemy import select

from app.lifecycle import archival, deletion
from app.lifecycle.errors import FolderKept
from app.lifecycle.naming import find_run_folder
from app.lifecycle.reconcile import reconcile
from app.lifecycle.runs import load_run
from app.models import Alert, LifecycleEvent
from tests.support import tree


class Killed(Exception):
    """Stands for the process dying at a step."""


def events(lc, job_id, action):
    return list(
        lc.session.scalars(
            select(LifecycleEvent)
            .where(LifecycleEvent.job_id == job_id, LifecycleEvent.action == action)
            .order_by(LifecycleEvent.id)
        )
    )


def open_alert(lc, job_id):
    alerts = [a for a in lc.session.scalars(select(Alert).where(Alert.resolved_at.is_(None))) if a.data]
    return next((a for a in alerts if a.data.get("subject") == str(job_id)), None)


def folder_of(lc, job):
    return find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)


def write_during(lc, step, write):
    """Make the operation call ``write()`` when it reaches ``step``, as a scraper still writing would."""
    lc.fault = lambda name: write() if name == step else None


def test_a_file_written_while_the_run_is_archived_keeps_the_folder(lc, make_run):
    job = make_run(days_ago=10)
    folder = folder_of(lc, job)
    write_during(lc, "archive.written", lambda: (folder / "LATE_FILE.txt").write_text("written after it was read"))
    with pytest.raises(FolderKept, match="LATE_FILE.txt"):
        archival.archive_run(lc, job.id, actor="scheduler")
    assert (folder / "LATE_FILE.txt").read_text() == "written after it was read"
    assert load_run(lc, job.id).archived_at is None
    assert list(lc.store.keys()) == [] and list(lc.store.partials()) == []
    [event] = events(lc, job.id, "archive")
    assert event.outcome == "failed" and "LATE_FILE.txt" in event.error
    assert any("LATE_FILE.txt" in line for line in event.details["files"])
    alert = open_alert(lc, job.id)
    assert alert is not None and alert.kind == "archive_failed" and "LATE_FILE.txt" in alert.message

    lc.fault = None  # the scraper is done: the next pass archives everything, and the alert resolves
    assert archival.archive_run(lc, job.id, actor="scheduler") == "succeeded"
    assert not folder.exists() and open_alert(lc, job.id) is None
    archival.restore_run(lc, job.id, actor="ada")
    assert (folder / "LATE_FILE.txt").read_text() == "written after it was read"


def test_a_file_rewritten_in_place_with_the_same_size_keeps_the_folder(lc, make_run):
    job = make_run({"results.json": '{"n": 1}'}, days_ago=10)
    folder = folder_of(lc, job)
    write_during(lc, "archive.fsynced", lambda: (folder / "results.json").write_text('{"n": 2}'))
    with pytest.raises(FolderKept, match="results.json"):
        archival.archive_run(lc, job.id, actor="scheduler")
    assert (folder / "results.json").read_text() == '{"n": 2}'
    assert load_run(lc, job.id).archived_at is None and list(lc.store.keys()) == []


def test_a_soft_delete_of_an_active_run_keeps_a_folder_written_to_meanwhile(lc, make_run):
    job = make_run(days_ago=10)
    folder = folder_of(lc, job)
    write_during(lc, "archive.written", lambda: (folder / "LATE_FILE.txt").write_text("late"))
    with pytest.raises(FolderKept):
        deletion.delete_run(lc, job.id, actor="ada", reason="not needed", strategy="soft")
    row = load_run(lc, job.id)
    assert row.deleted_at is None and row.archived_at is None and (folder / "LATE_FILE.txt").exists()
    assert list(lc.store.keys()) == []


def test_reconcile_after_a_killed_archival_keeps_a_folder_with_a_late_file(lc, make_run):
    """The issue's scenario: archive intact and recorded, folder not yet removed, then a late write."""
    job = make_run(days_ago=10)
    folder = folder_of(lc, job)

    def die(step):
        if step == "archive.committed":
            raise Killed

    lc.fault = die
    with pytest.raises(Killed):
        archival.archive_run(lc, job.id, actor="scheduler")
    lc.fault = None
    # Recorded, and the folder set aside for removal (a writer opening files by path now fails):
    # one that had it open still writes a late file into it.
    aside = archival.set_aside_path(folder)
    assert load_run(lc, job.id).archived_at is not None and aside.is_dir() and not folder.exists()
    (aside / "LATE_FILE.txt").write_text("written after the archive was made")
    before = tree(aside)

    report = reconcile(lc)
    assert tree(folder) == before
    assert any("LATE_FILE.txt" in line for line in report.problems)
    last = events(lc, job.id, "archive")[-1]
    assert last.outcome == "failed" and "LATE_FILE.txt" in last.error
    assert open_alert(lc, job.id) is not None

    (folder / "LATE_FILE.txt").unlink()  # a person moved it away: the folder now holds nothing more
    report = reconcile(lc)
    assert not folder.exists() and not report.problems


def test_reconcile_keeps_a_folder_whose_file_differs_from_the_archive(lc, make_run):
    job = make_run({"results.json": '{"n": 1}', "logs/run.log": "ok\n"}, days_ago=10)
    folder = folder_of(lc, job)
    lc.fault = lambda step: (_ for _ in ()).throw(Killed) if step == "archive.committed" else None
    with pytest.raises(Killed):
        archival.archive_run(lc, job.id, actor="scheduler")
    lc.fault = None
    archival.put_back(archival.set_aside_path(folder))  # as if the crash came before the rename
    (folder / "results.json").write_text('{"n": 9}')  # same size, other bytes: only the SHA-256 tells
    report = reconcile(lc)
    assert (folder / "results.json").read_text() == '{"n": 9}'
    assert any("results.json" in line for line in report.problems)


def test_restore_expiry_keeps_a_working_copy_that_gained_a_file(lc, make_run, clock):
    job = make_run(days_ago=10)
    archival.archive_run(lc, job.id, actor="scheduler")
    archival.restore_run(lc, job.id, actor="ada")
    folder = folder_of(lc, job)
    (folder / "analysis.ipynb").write_text("an analyst's notes")
    clock.advance(days=lc.settings.restore_ttl_days + 1)
    with pytest.raises(FolderKept, match="analysis.ipynb"):
        archival.expire_restore(lc, job.id, actor="scheduler")
    assert (folder / "analysis.ipynb").exists()
    assert load_run(lc, job.id).restored_at is not None  # still shown as a working copy
    last = events(lc, job.id, "expire_restore")[-1]
    assert last.outcome == "failed" and "analysis.ipynb" in last.error
    assert open_alert(lc, job.id) is not None

    (folder / "analysis.ipynb").unlink()
    assert archival.expire_restore(lc, job.id, actor="scheduler") == "succeeded"
    assert not folder.exists() and open_alert(lc, job.id) is None


def test_an_untouched_working_copy_expires(lc, make_run, clock):
    job = make_run(days_ago=10)
    archival.archive_run(lc, job.id, actor="scheduler")
    archival.restore_run(lc, job.id, actor="ada")
    assert archival.expire_restore(lc, job.id, actor="scheduler") == "succeeded"
    assert folder_of(lc, job) is None


def test_once_set_aside_for_removal_a_late_writer_fails_loudly_instead_of_losing_its_file(lc, make_run):
    """After the last comparison a file opened by its path cannot land in the folder about to go."""
    job = make_run(days_ago=10)
    folder = folder_of(lc, job)
    failures = []

    def late_write():
        try:
            (folder / "LATE_FILE.txt").write_text("very late")
        except FileNotFoundError as error:
            failures.append(error)

    write_during(lc, "archive.published", late_write)
    assert archival.archive_run(lc, job.id, actor="scheduler") == "succeeded"
    assert len(failures) == 1 and not folder.exists()


def test_a_writer_that_recreates_the_folder_while_it_is_set_aside_loses_nothing(lc, make_run):
    job = make_run(days_ago=10)
    folder = folder_of(lc, job)

    def recreate():
        folder.mkdir()
        (folder / "LATE_FILE.txt").write_text("a scraper that mkdir -p's its folder")

    write_during(lc, "archive.published", recreate)
    lc.fault, hook = (
        (lambda step: (_ for _ in ()).throw(Killed) if step == "archive.committed" else hook(step)),
        lc.fault,
    )
    with pytest.raises(Killed):
        archival.archive_run(lc, job.id, actor="scheduler")
    lc.fault = None
    report = reconcile(lc)
    assert (folder / "LATE_FILE.txt").exists() and archival.set_aside_path(folder).is_dir()
    assert any("both kept" in line for line in report.problems)


def test_a_soft_delete_keeps_a_working_copy_that_gained_a_file(lc, make_run):
    job = make_run(days_ago=40)
    archival.archive_run(lc, job.id, actor="scheduler")
    archival.restore_run(lc, job.id, actor="ada")
    folder = folder_of(lc, job)
    (folder / "notes.md").write_text("an analyst's notes")
    with pytest.raises(FolderKept, match="notes.md"):
        deletion.delete_run(lc, job.id, actor="ada", reason="done with it", strategy="soft")
    row = load_run(lc, job.id)
    assert row.deleted_at is None and row.archive_path.startswith("archive/") and (folder / "notes.md").exists()
    (folder / "notes.md").unlink()
    assert deletion.delete_run(lc, job.id, actor="ada", reason="done with it", strategy="soft") == "succeeded"
    assert folder_of(lc, job) is None and not archival.set_aside_path(folder).exists()


def test_restore_expiry_keeps_the_working_copy_when_the_archive_is_missing(lc, make_run):
    job = make_run(days_ago=10)
    archival.archive_run(lc, job.id, actor="scheduler")
    archival.restore_run(lc, job.id, actor="ada")
    folder = folder_of(lc, job)
    original = tree(folder)
    lc.store.remove(load_run(lc, job.id).archive_path)
    with pytest.raises(archival.ArchiveFailed, match="working copy stays"):
        archival.expire_restore(lc, job.id, actor="scheduler")
    assert tree(folder) == original and load_run(lc, job.id).restored_at is not None


def test_restore_expiry_keeps_the_working_copy_of_an_archive_found_corrupt(lc, make_run):
    job = make_run(days_ago=10)
    archival.archive_run(lc, job.id, actor="scheduler")
    archival.restore_run(lc, job.id, actor="ada")
    row = load_run(lc, job.id)
    row.verify_outcome = "corrupt"
    lc.session.commit()
    with pytest.raises(archival.ArchiveFailed):
        archival.expire_restore(lc, job.id, actor="scheduler")
    assert folder_of(lc, job) is not None


def test_a_same_size_rewrite_that_keeps_its_timestamps_is_still_caught(lc, make_run):
    """On a file system with coarse timestamps a rewrite can leave size, mtime and ctime as they were."""
    job = make_run({"results.json": '{"n": 1}'}, days_ago=10)
    folder = folder_of(lc, job)
    path = folder / "results.json"

    def rewrite_keeping_times():
        info = path.stat()
        path.write_text('{"n": 2}')
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    write_during(lc, "archive.fsynced", rewrite_keeping_times)
    with pytest.raises(FolderKept, match="results.json"):
        archival.archive_run(lc, job.id, actor="scheduler")


def test_a_link_left_out_of_the_archive_does_not_keep_the_folder(lc, make_run):
    """write_tar leaves out links that restore would refuse; the comparison uses the same rule."""
    job = make_run({"a.txt": "a"}, days_ago=10)
    folder = folder_of(lc, job)
    os.symlink("..", folder / "e")
    os.symlink("e", folder / "d")  # stays inside by its text, leaves the run through e
    assert archival.archive_run(lc, job.id, actor="scheduler") == "succeeded"
    assert not folder.exists()


def test_an_archival_pass_with_a_kept_working_copy_ends_failed(lc, make_run, clock):
    from app.lifecycle import passes

    job = make_run(days_ago=10)
    archival.archive_run(lc, job.id, actor="scheduler")
    archival.restore_run(lc, job.id, actor="ada")
    (folder_of(lc, job) / "analysis.ipynb").write_text("notes")
    clock.advance(days=lc.settings.restore_ttl_days + 1)
    report = passes.archive_old_runs(lc)
    assert report.failed == 1 and report.extra["restores_expired"] == 0
    assert any("analysis.ipynb" in error for error in report.errors)
