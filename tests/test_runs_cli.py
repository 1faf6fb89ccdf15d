"""``flask runs``: in-process work, dry runs, one-run actions, enqueueing, status, and bad input."""

import re
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import select

from app import tasks
from app.lifecycle import archival
from app.lifecycle.naming import find_run_folder
from app.models import Job, LifecycleEvent


@pytest.fixture
def cli(app, lc):
    runner = app.test_cli_runner()

    def invoke(*args):
        return runner.invoke(args=["runs", *args], catch_exceptions=False)

    return invoke


def test_archive_dry_run_lists_runs_and_bytes_and_changes_nothing(cli, lc, make_run):
    due = make_run({"a.txt": "x" * 123}, days_ago=9)
    make_run(days_ago=2)
    result = cli("archive", "--dry-run")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "\t" in line]
    assert lines == [f"{due.folder_name}_{due.id}\t123"]
    assert lc.session.get(Job, due.id).archived_at is None
    assert lc.session.scalar(select(LifecycleEvent)) is None


def test_archive_runs_in_process(cli, lc, make_run):
    due = make_run(days_ago=9)
    result = cli("archive")
    assert result.exit_code == 0
    assert "1 succeeded" in result.output
    lc.session.expire_all()
    assert lc.session.get(Job, due.id).archived_at is not None


def test_archive_before_overrides_the_age_rule(cli, lc, make_run, clock):
    recent = make_run(days_ago=2)
    result = cli("archive", "--before", (clock.now - timedelta(days=1)).date().isoformat())
    assert result.exit_code == 0
    lc.session.expire_all()
    assert lc.session.get(Job, recent.id).archived_at is not None


def test_archive_one_run_now(cli, lc, make_run):
    job = make_run(days_ago=0.01)
    assert cli("archive", "--job", str(job.id), "--dry-run").stdout.startswith(f"{job.folder_name}_{job.id}\t")
    result = cli("archive", "--job", str(job.id))
    assert result.exit_code == 0 and "succeeded" in result.stdout
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).archived_at is not None


def test_restore_cleanup_and_status(cli, lc, make_run):
    job = make_run(days_ago=40)
    cli("archive")
    assert cli("restore", "--job", str(job.id)).exit_code == 0
    assert find_run_folder(lc.settings.jobs_path, job.folder_name, job.id) is not None
    status = cli("status").stdout
    assert re.search(r"archived\s+1\s+\d+", status) and re.search(r"restored\s+1", status)
    assert "due for cleanup: 1" in status
    dry = cli("cleanup", "--dry-run")
    assert f"{job.folder_name}_{job.id}\t" in dry.stdout
    assert cli("cleanup").exit_code == 0
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).deleted_by.startswith("cli:")
    assert re.search(r"trash\s+1", cli("status").stdout)


def test_enqueue_hands_the_work_to_rq(cli, redis_db):
    result = cli("archive", "--enqueue")
    assert result.exit_code == 0
    task_id = result.stdout.split()[-1]
    job = Queue(tasks.QUEUE_NAME, connection=redis_db).fetch_job(task_id)
    assert job.func_name == "app.tasks.archive_old_runs"


def test_reconcile_reports(cli, lc, make_run):
    job = make_run(days_ago=40)
    cli("archive")
    partial = lc.store.partial_path(lc.session.get(Job, job.id).archive_path)
    partial.write_bytes(b"half")
    result = cli("reconcile")
    assert result.exit_code == 0 and "removed stale partial" in result.stdout
    assert not partial.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("archive", "--job", "not-a-uuid"),
        ("archive", "--before", "yesterday"),
        ("cleanup", "--before", "2025-13-01"),
        ("restore", "--job", "../../etc"),
        ("restore",),
    ],
)
def test_bad_input_is_a_usage_error(cli, args):
    result = cli(*args)
    assert result.exit_code == 2


def test_unknown_run_is_a_clear_error(cli):
    result = cli("restore", "--job", "8dafff36-6b15-478a-88fc-19cdbbcfca5f")
    assert result.exit_code == 1 and "no run" in result.output


def test_restore_of_an_active_run_fails_cleanly(cli, make_run):
    job = make_run(days_ago=1)
    result = cli("restore", "--job", str(job.id))
    assert result.exit_code == 1 and "this needs a run that is archived" in result.output


def test_migrate_folders_fills_names_and_renames_legacy_folders(cli, lc, make_run):
    job = make_run({"a.txt": "legacy"})
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    folder.rename(lc.settings.jobs_path / str(job.id))
    expected = job.folder_name
    lc.session.get(Job, job.id).folder_name = None
    lc.session.commit()
    assert f"{job.id}" in cli("migrate-folders", "--dry-run").stdout
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).folder_name is None
    assert cli("migrate-folders").exit_code == 0
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).folder_name == expected
    assert (lc.settings.jobs_path / str(job.id)).is_dir()
    assert cli("migrate-folders", "--rename").exit_code == 0
    assert (lc.settings.jobs_path / f"{expected}_{job.id}" / "a.txt").read_text() == "legacy"
    assert not (lc.settings.jobs_path / str(job.id)).exists()
    events = [e.details for e in lc.session.scalars(select(LifecycleEvent).where(LifecycleEvent.action == "migrate"))]
    assert {"folder_name": expected} in events and any("renamed" in (e or {}) for e in events)
    assert archival.load_run(lc, job.id).folder_name == expected
