"""Reconcile repairs crash leftovers built by hand, leaves what it does not understand, and is idempotent."""

import shutil

from sqlalchemy import select

from app.lifecycle import archival, deletion, passes
from app.lifecycle.naming import find_run_folder, run_folder_path
from app.lifecycle.reconcile import reconcile
from app.models import Job
from tests.support import tree


def test_an_unrecorded_archive_whose_folder_is_gone_is_adopted(lc, make_run):
    job = make_run(days_ago=10)
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    original = tree(folder)
    archival.archive_run(lc, job.id, actor="t")
    # Forget the record, as if the commit had been lost, and the folder were gone too.
    row = lc.session.get(Job, job.id)
    key = row.archive_path
    for column in ("archived_at", "archive_path", "archive_size_bytes", "archive_sha256", "compression"):
        setattr(row, column, None)
    lc.session.commit()
    report = reconcile(lc)
    assert any("adopted" in line for line in report.repaired)
    row = archival.load_run(lc, job.id)
    assert row.archive_path == key and row.archive_sha256 == lc.store.sha256(key)
    archival.restore_run(lc, job.id, actor="t")
    assert tree(folder) == original


def test_a_recorded_archive_that_is_missing_makes_the_run_active_again(lc, make_run):
    job = make_run(days_ago=10)
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    original = tree(folder)
    backup = lc.settings.scraper_data_path / "backup"
    shutil.copytree(folder, backup, symlinks=True)
    archival.archive_run(lc, job.id, actor="t")
    shutil.copytree(backup, folder, symlinks=True)  # the folder is back (crash before its removal)…
    lc.store.remove(archival.load_run(lc, job.id).archive_path)  # …and the archive is lost
    reconcile(lc)
    row = archival.load_run(lc, job.id)
    assert row.archived_at is None and tree(folder) == original
    assert passes.archive_old_runs(lc).outcomes["succeeded"] == 1


def test_a_damaged_archive_never_costs_the_folder(lc, make_run):
    job = make_run(days_ago=10)
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    backup = lc.settings.scraper_data_path / "backup"
    shutil.copytree(folder, backup, symlinks=True)
    archival.archive_run(lc, job.id, actor="t")
    shutil.copytree(backup, folder, symlinks=True)
    path = lc.store.path(archival.load_run(lc, job.id).archive_path)
    path.write_bytes(path.read_bytes()[:-10])
    reconcile(lc)
    assert folder.is_dir() and archival.load_run(lc, job.id).archived_at is None


def test_folders_and_archives_of_unknown_runs_are_reported_not_removed(lc):
    import uuid

    stranger = run_folder_path(lc.settings.jobs_path, "20250101_000000", uuid.uuid4())
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    report = reconcile(lc)
    assert stranger.name in report.orphans and (stranger / "keep.txt").exists()


def test_leftovers_of_a_hard_delete_are_finished(lc, make_run):
    job = make_run(days_ago=10)
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    backup = lc.settings.scraper_data_path / "backup"
    shutil.copytree(folder, backup, symlinks=True)
    deletion.delete_run(lc, job.id, actor="ada", reason="r", strategy="hard")
    shutil.copytree(backup, folder, symlinks=True)  # as if the removal had not happened
    report = reconcile(lc)
    assert any("hard delete" in line for line in report.repaired)
    assert not folder.exists()


def test_reconcile_is_idempotent_on_a_healthy_store(lc, make_run):
    for days in (10, 20, 40):
        make_run(days_ago=days)
    passes.archive_old_runs(lc)
    before = sorted(lc.store.keys())
    for _ in range(2):
        report = reconcile(lc)
        assert report.repaired == [] and report.problems == [] and report.orphans == []
    assert sorted(lc.store.keys()) == before
    assert all(j.archived_at for j in lc.session.scalars(select(Job)))
