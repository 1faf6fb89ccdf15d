"""``flask runs reconcile --report`` lists every inconsistency and changes nothing (issue 9, point 7).

Before, a removed archive and a stray folder gave "0 problems". Now the report (and the admins'
storage check page) lists records whose archive is missing or of the wrong size or hash, archive
files with no record, folders with no run, leftover ``.partial`` files, trash files of purged runs
and interrupted attempts; and ``reconcile`` exits non-zero while anything is left unrepaired.
"""

import uuid

import pytest
from sqlalchemy import select

from app.lifecycle import archival, deletion
from app.lifecycle.naming import run_folder_path
from app.models import Job, LifecycleEvent
from tests.support import tree


@pytest.fixture
def cli(app, lc):
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=["runs", "reconcile", *args], catch_exceptions=False)


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def messy_store(lc, make_run):
    """One of each thing reconcile must see; returns what to look for in the report."""
    runs = {}
    for label in ("missing", "short", "flipped", "purged"):
        job = make_run(days_ago=40)
        archival.archive_run(lc, job.id, actor="scheduler")
        runs[label] = archival.load_run(lc, job.id)
    lc.store.path(runs["missing"].archive_path).unlink()
    short = lc.store.path(runs["short"].archive_path)
    short.write_bytes(short.read_bytes()[:-7])
    flip_a_byte(lc.store.path(runs["flipped"].archive_path))
    trash_copy = lc.store.path(runs["purged"].archive_path).read_bytes()
    deletion.delete_run(lc, runs["purged"].id, actor="ada", reason="old", strategy="soft")
    deletion.purge_run(lc, runs["purged"].id, actor="scheduler")
    purged_key = archival.load_run(lc, runs["purged"].id).archive_path
    lc.store.path(purged_key).write_bytes(trash_copy)  # a purge that never removed its file

    unknown = uuid.uuid4()
    stray_archive = lc.settings.archive_base_path / "2025" / "01" / f"20250101_000000_{unknown}.tar.gz"
    stray_archive.parent.mkdir(parents=True, exist_ok=True)
    stray_archive.write_bytes(b"not ours")
    stray_folder = run_folder_path(lc.settings.jobs_path, "20250102_000000", uuid.uuid4())
    stray_folder.mkdir()
    (stray_folder / "keep.txt").write_text("whose?")
    active = make_run(days_ago=1)
    partial = lc.store.partial_path(archival.archive_key(active, "archive", "gzip"))
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half an archive")
    lc.session.add(
        LifecycleEvent(job_id=active.id, action="archive", actor="scheduler", outcome="started", started_at=lc.now())
    )
    lc.session.commit()
    return {
        "missing": str(runs["missing"].id),
        "short": str(runs["short"].id),
        "flipped": str(runs["flipped"].id),
        "purged": purged_key,
        "stray archive": stray_archive.name,
        "stray folder": stray_folder.name,
        "partial": partial.name,
        "interrupted": str(active.id),
    }


def snapshot(lc):
    files = tree(lc.settings.scraper_data_path)
    rows = [
        (j.id, j.archived_at, j.archive_path, j.deleted_at, j.purged_at, j.verify_outcome)
        for j in lc.session.scalars(select(Job).order_by(Job.id))
    ]
    events = [
        (e.id, e.outcome, e.error) for e in lc.session.scalars(select(LifecycleEvent).order_by(LifecycleEvent.id))
    ]
    return files, rows, events


def test_the_report_lists_every_inconsistency_and_changes_nothing(cli, lc, make_run):
    expected = messy_store(lc, make_run)
    before = snapshot(lc)
    result = cli("--report")
    assert result.exit_code == 1
    out = result.output
    lines = out.splitlines()

    def line_with(*words):
        return next((line for line in lines if all(word in line for word in words)), None)

    assert line_with("problem", expected["missing"], "missing")
    assert line_with("problem", expected["short"], "bytes")
    assert line_with("problem", expected["flipped"], "SHA-256")
    assert line_with("would repair", expected["purged"], "purged")
    assert line_with("orphan", expected["stray archive"])
    assert line_with("orphan", expected["stray folder"])
    assert line_with("would repair", expected["partial"])
    assert line_with("would repair", expected["interrupted"], "interrupted")
    assert "nothing changed" in out
    lc.session.expire_all()
    assert snapshot(lc) == before
    assert list(lc.locks.redis.scan_iter("agar:lock:*")) == []  # not even a lock taken


def test_the_report_leaves_a_run_being_worked_on_alone(cli, lc, make_run):
    job = make_run(days_ago=40)
    archival.archive_run(lc, job.id, actor="scheduler")
    archival.restore_run(lc, job.id, actor="ada")
    lc.session.execute(Job.__table__.update().where(Job.id == job.id).values(restored_at=None))
    lc.session.commit()  # its folder is one a repair would remove, but a worker holds the run
    with lc.locks.run(job.id):
        out = cli("--report").output
    assert f"busy: {job.folder_name}_{job.id}" in out and "would repair" not in out


def test_a_sizes_only_report_does_not_read_archives_through(cli, lc, make_run):
    expected = messy_store(lc, make_run)
    out = cli("--report", "--no-hash").output
    assert expected["flipped"] not in out and expected["short"] in out


def test_reconcile_repairs_what_it_can_and_exits_1_for_what_is_left(cli, lc, make_run):
    expected = messy_store(lc, make_run)
    result = cli()
    assert result.exit_code == 1
    assert expected["stray folder"] in result.output and expected["missing"] in result.output
    assert not list(lc.store.partials())
    lc.session.expire_all()
    started = lc.session.scalars(select(LifecycleEvent).where(LifecycleEvent.outcome == "started")).all()
    assert started == []


def test_a_healthy_store_reports_nothing_and_exits_0(cli, lc, make_run):
    for days in (10, 40):
        job = make_run(days_ago=days)
        archival.archive_run(lc, job.id, actor="scheduler")
    result = cli("--report")
    assert result.exit_code == 0, result.output
    assert "0 to repair, 0 orphans, 0 busy, 0 problems" in result.output
    assert cli().exit_code == 0


def test_a_busy_run_counts_as_unrepaired(cli, lc, make_run):
    job = make_run(days_ago=40)
    archival.archive_run(lc, job.id, actor="scheduler")
    archival.restore_run(lc, job.id, actor="ada")
    lc.session.execute(Job.__table__.update().where(Job.id == job.id).values(restored_at=None))
    lc.session.commit()  # a folder reconcile must remove: its run is held by a worker
    with lc.locks.run(job.id):
        result = cli()
    assert result.exit_code == 1 and "busy" in result.output


def test_admins_see_the_storage_check_and_members_do_not(app, lc, make_run, admin, member):
    from tests.test_web import Browser

    expected = messy_store(lc, make_run)
    browser = Browser(app.test_client())
    browser.login("ada")
    storage = browser.get("/storage").get_data(as_text=True)
    assert 'href="/storage/check"' in storage
    page = browser.get("/storage/check")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for key in ("missing", "short", "stray folder", "partial"):
        assert expected[key] in text
    other = Browser(app.test_client())
    other.login("max")
    assert other.get("/storage/check").status_code == 403
