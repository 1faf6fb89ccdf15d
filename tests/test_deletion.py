"""Soft and hard deletion, trash and purge, undelete, retention overrides, secure delete."""

import os
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.lifecycle import archival, deletion, passes
from app.lifecycle.errors import RuleViolation, RunConflict
from app.lifecycle.naming import run_folder_path
from app.models import Job, JobAudit, LifecycleEvent
from tests.support import new_run, tree


def archived_run(lc, make_run, **kwargs):
    job = make_run(**kwargs)
    archival.archive_run(lc, job.id, actor="scheduler")
    return archival.load_run(lc, job.id)


def audits(lc, job_id):
    return list(lc.session.scalars(select(JobAudit).where(JobAudit.job_id == job_id)))


def test_soft_delete_moves_the_archive_to_the_trash_and_audits(lc, make_run, clock):
    job = archived_run(lc, make_run)
    archive_key = job.archive_path
    assert deletion.delete_run(lc, job.id, actor="ada", reason="customer asked") == "succeeded"
    job = archival.load_run(lc, job.id)
    assert job.archive_path == "trash/" + archive_key.partition("/")[2]
    assert lc.store.exists(job.archive_path) and not lc.store.exists(archive_key)
    assert (job.deleted_at, job.deleted_by, job.deletion_reason) == (clock.now, "ada", "customer asked")
    [audit] = audits(lc, job.id)
    assert (audit.strategy, audit.deleted_by, audit.deletion_reason) == ("soft", "ada", "customer asked")
    assert audit.job_name == job.name and audit.folder_name == job.folder_name
    assert audit.archived_at == job.archived_at and audit.deleted_at == clock.now


def test_undelete_within_grace_brings_it_back_protected(lc, make_run, clock):
    job = archived_run(lc, make_run, days_ago=40)
    deletion.delete_run(lc, job.id, actor="scheduler", reason="old")
    clock.advance(days=3)
    assert deletion.undelete_run(lc, job.id, actor="ada", reason="still needed") == "succeeded"
    job = archival.load_run(lc, job.id)
    assert job.deleted_at is None and job.archive_path.startswith("archive/")
    assert lc.store.exists(job.archive_path)
    assert job.retain_until == clock.now + timedelta(days=7)
    assert len(audits(lc, job.id)) == 1  # the audit row stays
    # The next cleanup does not delete it again at once…
    assert passes.cleanup_old_runs(lc).outcomes["succeeded"] == 0
    # …but does once the protection has run out.
    clock.advance(days=8)
    assert passes.cleanup_old_runs(lc).outcomes["succeeded"] == 1


def test_undelete_after_the_grace_period_is_refused(lc, make_run, clock):
    job = archived_run(lc, make_run)
    deletion.delete_run(lc, job.id, actor="ada", reason="r")
    clock.advance(days=7)
    with pytest.raises(RunConflict, match="grace period"):
        deletion.undelete_run(lc, job.id, actor="ada")


def test_cleanup_deletes_old_archived_runs_then_purges_after_grace(lc, make_run, clock):
    old = archived_run(lc, make_run, days_ago=31)
    recent = archived_run(lc, make_run, days_ago=29)
    report = passes.cleanup_old_runs(lc)
    assert report.outcomes["succeeded"] == 1
    old_row = archival.load_run(lc, old.id)
    assert old_row.deleted_by == "scheduler" and "DELETE_AFTER_DAYS" in old_row.deletion_reason
    assert archival.load_run(lc, recent.id).deleted_at is None
    trash_key = old_row.archive_path
    clock.advance(days=7, seconds=1)
    report = passes.cleanup_old_runs(lc)
    assert report.extra["purged"] == 1
    old_row = archival.load_run(lc, old.id)
    assert old_row.purged_at == clock.now and not lc.store.exists(trash_key)
    [audit] = audits(lc, old.id)
    assert audit.bytes_freed == old_row.archive_size_bytes
    actions = [e.action for e in lc.session.scalars(select(LifecycleEvent).where(LifecycleEvent.job_id == old.id))]
    assert actions == ["archive", "delete", "purge"]
    with pytest.raises(RunConflict, match="purged"):
        deletion.undelete_run(lc, old.id, actor="ada")


def test_cleanup_never_deletes_a_run_without_an_archive(lc, make_run):
    job = make_run(days_ago=90)
    report = passes.cleanup_old_runs(lc)
    assert report.outcomes == {"succeeded": 0, "failed": 0, "skipped": 0}
    assert archival.load_run(lc, job.id).deleted_at is None
    assert run_folder_path(lc.settings.jobs_path, job.folder_name, job.id).is_dir()


def test_cleanup_respects_retention_overrides(lc, make_run, clock):
    kept = archived_run(lc, make_run, days_ago=60)
    deletion.extend_retention(lc, kept.id, actor="ada", reason="legal hold", keep_forever=True)
    retained = archived_run(lc, make_run, days_ago=60)
    deletion.extend_retention(lc, retained.id, actor="ada", reason="audit", retain_until=clock.now + timedelta(days=10))
    assert passes.cleanup_old_runs(lc).outcomes["succeeded"] == 0
    event = lc.session.scalar(select(LifecycleEvent).where(LifecycleEvent.action == "extend"))
    assert (event.actor, event.reason, event.details["keep_forever"]) == ("ada", "legal hold", True)
    clock.advance(days=11)
    assert passes.cleanup_old_runs(lc).outcomes["succeeded"] == 1


def test_retention_needs_a_reason_and_a_future_date(lc, make_run, clock):
    job = make_run()
    with pytest.raises(RuleViolation):
        deletion.extend_retention(lc, job.id, actor="ada", reason="", keep_forever=True)
    with pytest.raises(RuleViolation):
        deletion.extend_retention(lc, job.id, actor="ada", reason="x", retain_until=clock.now - timedelta(days=1))


def test_grace_zero_purges_at_once(lc_with, clock):
    lc = lc_with(DELETE_GRACE_DAYS=0)
    job = new_run(lc, clock, {}, days_ago=39)
    archival.archive_run(lc, job.id, actor="t")
    deletion.delete_run(lc, job.id, actor="ada", reason="now")
    job = archival.load_run(lc, job.id)
    assert job.purged_at is not None
    assert list(lc.store.keys()) == []


def test_soft_deleting_an_active_run_archives_it_into_the_trash(lc, make_run):
    job = make_run(days_ago=1)
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    original = tree(folder)
    deletion.delete_run(lc, job.id, actor="ada", reason="bad data")
    job = archival.load_run(lc, job.id)
    assert job.archive_path.startswith("trash/") and not folder.exists()
    assert job.deleted_at is not None and job.archived_at is not None
    deletion.undelete_run(lc, job.id, actor="ada")
    archival.restore_run(lc, job.id, actor="ada")
    assert tree(folder) == original


def test_unfinished_runs_cannot_be_deleted(lc, make_run):
    job = make_run(status="running")
    with pytest.raises(RunConflict):
        deletion.delete_run(lc, job.id, actor="ada", reason="x")
    with pytest.raises(RuleViolation):
        deletion.delete_run(lc, job.id, actor="ada", reason=" ")


@pytest.mark.parametrize("tier", ["active", "archived", "restored", "trashed"])
def test_hard_delete_removes_everything_but_the_audit_and_history(lc, make_run, tier):
    job = make_run(days_ago=40)
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    if tier != "active":
        archival.archive_run(lc, job.id, actor="scheduler")
    if tier == "restored":
        archival.restore_run(lc, job.id, actor="ada")
    if tier == "trashed":
        deletion.delete_run(lc, job.id, actor="ada", reason="first soft")
    job_id = job.id
    assert deletion.delete_run(lc, job_id, actor="ada", reason="GDPR request", strategy="hard") == "succeeded"
    assert lc.session.get(Job, job_id) is None
    assert list(lc.store.keys()) == [] and not folder.exists()
    hard = [a for a in audits(lc, job_id) if a.strategy == "hard"]
    assert len(hard) == 1 and hard[0].deleted_by == "ada" and hard[0].deletion_reason == "GDPR request"
    assert hard[0].bytes_freed > 0
    history = list(lc.session.scalars(select(LifecycleEvent).where(LifecycleEvent.job_id == job_id)))
    assert history[-1].action == "delete" and history[-1].outcome == "succeeded"


def test_hard_strategy_from_the_setting(lc_with, clock):
    lc = lc_with(DELETION_STRATEGY="hard")
    job = new_run(lc, clock, {}, days_ago=39)
    archival.archive_run(lc, job.id, actor="t")
    passes.cleanup_old_runs(lc)
    assert lc.session.get(Job, job.id) is None
    assert lc.session.scalar(select(JobAudit.strategy)) == "hard"


def test_secure_delete_overwrites_before_unlinking(lc_with, clock, tmp_path):
    lc = lc_with(SECURE_DELETE="true")
    job = new_run(lc, clock, {}, days_ago=39)
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    (folder / "secret.json").write_bytes(b"card 4111-1111" * 100)
    # A second name for the same inode shows what happened to the bytes after the unlink.
    witness = tmp_path / "witness"
    os.link(folder / "secret.json", witness)
    deletion.delete_run(lc, job.id, actor="ada", reason="sensitive", strategy="hard")
    assert not folder.exists()
    assert witness.read_bytes() == bytes(len(b"card 4111-1111" * 100))


def test_unknown_run_is_not_found(lc):
    from app.lifecycle.errors import RunNotFound

    with pytest.raises(RunNotFound):
        deletion.delete_run(lc, uuid.uuid4(), actor="ada", reason="x")
    assert lc.session.scalar(select(LifecycleEvent)) is None
