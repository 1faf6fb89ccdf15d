"""Integrity checks of stored archives: verdicts, alerts, the byte budget, trash, the task, CLI, API, pages."""

import os
import random

import pytest
from rq import Queue
from rq.job import Job as RQJob
from sqlalchemy import insert, select, update

from app import tasks
from app.lifecycle import archival, deletion, passes
from app.lifecycle.verification import verify_archive, verify_archives
from app.models import Alert, ArchiveMember, Job, LifecycleEvent
from tests.support import run_burst_worker
from tests.test_web import Browser

BIG = 10**12  # a budget no test reaches


def archived_run(lc, make_run, **kwargs):
    job = make_run(**kwargs)
    archival.archive_run(lc, job.id, actor="test")
    return fresh(lc, job.id)


def fresh(lc, job_id):
    lc.session.expire_all()
    return lc.session.get(Job, job_id)


def flip_a_byte(lc, job):
    path = lc.store.path(job.archive_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def verify_events(lc, job_id):
    query = select(LifecycleEvent).where(LifecycleEvent.job_id == job_id, LifecycleEvent.action == "verify")
    return list(lc.session.scalars(query.order_by(LifecycleEvent.id)))


def open_corrupt_alerts(lc):
    query = select(Alert).where(Alert.kind == "archive_corrupt", Alert.resolved_at.is_(None))
    return list(lc.session.scalars(query))


@pytest.fixture
def cli(app, lc):
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=["runs", *args], catch_exceptions=False)


def test_a_good_archive_verifies_ok_without_writing_anything(lc, make_run, clock):
    job = archived_run(lc, make_run)
    before = sorted(p for p in lc.settings.scraper_data_path.rglob("*"))
    clock.advance(hours=2)
    verdict = verify_archive(lc, job.id, actor="ada")
    assert verdict.outcome == "ok" and verdict.bytes_read == job.archive_size_bytes and verdict.detail is None
    row = fresh(lc, job.id)
    assert (row.verify_outcome, row.last_verified_at) == ("ok", clock.now)
    [event] = verify_events(lc, job.id)
    assert (event.outcome, event.actor, event.bytes_before) == ("succeeded", "ada", job.archive_size_bytes)
    assert sorted(p for p in lc.settings.scraper_data_path.rglob("*")) == before  # nothing extracted
    assert open_corrupt_alerts(lc) == []


def test_a_flipped_byte_is_corrupt_with_a_critical_alert_and_the_cli_exits_1(cli, lc, make_run):
    job = archived_run(lc, make_run)
    flip_a_byte(lc, job)
    result = cli("verify", "--job", str(job.id))
    assert result.exit_code == 1
    assert f"{job.folder_name}_{job.id}\tcorrupt\t{job.archive_size_bytes}" in result.stdout
    assert "verified 1 archive, " in result.output and ": 1 corrupt" in result.output
    row = fresh(lc, job.id)
    assert row.verify_outcome == "corrupt" and row.last_verified_at is not None
    [alert] = open_corrupt_alerts(lc)
    assert alert.severity == "critical" and alert.data["job_id"] == str(job.id)
    assert alert.data["archive"] == job.archive_path
    [event] = verify_events(lc, job.id)
    assert event.outcome == "failed" and event.error.startswith("corrupt: ")
    assert lc.store.exists(job.archive_path)  # the evidence stays


def test_a_good_archive_makes_the_cli_exit_0_with_a_summary(cli, lc, make_run):
    job = archived_run(lc, make_run)
    result = cli("verify", "--job", str(job.id))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"{job.folder_name}_{job.id}\tok\t{job.archive_size_bytes}"]
    assert "verified 1 archive, " in result.output and ": 1 ok" in result.output
    assert fresh(lc, job.id).verify_outcome == "ok"


def test_a_missing_archive_is_missing_and_alerts(cli, lc, make_run):
    job = archived_run(lc, make_run)
    lc.store.path(job.archive_path).unlink()
    result = cli("verify")
    assert result.exit_code == 1 and ": 1 missing" in result.output
    row = fresh(lc, job.id)
    assert row.verify_outcome == "missing" and row.last_verified_at is not None
    [alert] = open_corrupt_alerts(lc)
    assert alert.severity == "critical" and "missing" in alert.message
    [event] = verify_events(lc, job.id)
    assert event.outcome == "failed" and event.error.startswith("missing: ")


def _change_sha256(lc, job_id, rows):
    row = next(r for r in rows if r.kind == "file")
    lc.session.execute(update(ArchiveMember).where(ArchiveMember.id == row.id).values(sha256="0" * 64))


def _change_size(lc, job_id, rows):
    row = next(r for r in rows if r.kind == "file")
    lc.session.execute(update(ArchiveMember).where(ArchiveMember.id == row.id).values(size=row.size + 1))


def _rename(lc, job_id, rows):
    row = next(r for r in rows if r.kind == "file")
    lc.session.execute(update(ArchiveMember).where(ArchiveMember.id == row.id).values(path="renamed.txt"))


def _change_link_target(lc, job_id, rows):
    row = next(r for r in rows if r.kind == "symlink")
    lc.session.execute(update(ArchiveMember).where(ArchiveMember.id == row.id).values(link_target="logs"))


def _drop_a_row(lc, job_id, rows):
    row = next(r for r in rows if r.kind == "file")
    lc.session.delete(lc.session.get(ArchiveMember, row.id))


def _add_a_row(lc, job_id, rows):
    lc.session.execute(insert(ArchiveMember).values(job_id=job_id, path="ghost.txt", kind="file", size=3))


@pytest.mark.parametrize(
    "tamper", [_change_sha256, _change_size, _rename, _change_link_target, _drop_a_row, _add_a_row]
)
def test_a_manifest_that_differs_from_the_archive_is_corrupt(lc, make_run, tamper):
    job = make_run()
    folder = lc.settings.jobs_path / f"{job.folder_name}_{job.id}"
    os.symlink("results.json", folder / "latest.json")
    archival.archive_run(lc, job.id, actor="test")
    rows = list(lc.session.scalars(select(ArchiveMember).where(ArchiveMember.job_id == job.id)))
    tamper(lc, job.id, rows)
    lc.session.commit()
    assert fresh(lc, job.id).archive_sha256 == lc.store.sha256(fresh(lc, job.id).archive_path)  # file intact
    verdict = verify_archive(lc, job.id, actor="test")
    assert verdict.outcome == "corrupt", verdict
    assert fresh(lc, job.id).verify_outcome == "corrupt"
    assert len(open_corrupt_alerts(lc)) == 1


def test_each_pass_stays_within_its_budget_never_verified_and_oldest_first(lc, make_run, clock):
    jobs = [make_run({"data.bin": random.randbytes(20_000)}) for _ in range(3)]
    archived = []
    for job in sorted(jobs, key=lambda job: job.id, reverse=True):  # archived against the order of their ids
        archival.archive_run(lc, job.id, actor="test")
        archived.append(job.id)
        clock.advance(minutes=5)
    sizes = {job_id: fresh(lc, job_id).archive_size_bytes for job_id in archived}
    budget = max(sizes.values()) + 1  # one archive fits, never two

    first = verify_archives(lc, actor="scheduler", max_bytes=budget)
    assert (first.outcomes["ok"], first.left, first.bytes_read) == (1, 2, sizes[archived[0]])
    assert [fresh(lc, job_id).verify_outcome for job_id in archived] == ["ok", None, None]

    order = []
    for _ in range(3):
        clock.advance(days=7)
        report = verify_archives(lc, actor="scheduler", max_bytes=budget)
        assert report.verified == 1
        [verified] = [job_id for job_id in archived if fresh(lc, job_id).last_verified_at == clock.now]
        order.append(verified)
    # The two never verified, oldest archive first, then the one checked longest ago: a cycle.
    assert order == [archived[1], archived[2], archived[0]]

    clock.advance(days=7)
    tiny = verify_archives(lc, actor="scheduler", max_bytes=1)  # still one: none is skipped forever
    assert tiny.verified == 1 and tiny.left == 2
    every = verify_archives(lc, actor="scheduler", max_bytes=1, all=True)
    assert every.verified == 2 and every.left == 0  # --all: the two not yet checked this time
    assert [fresh(lc, job_id).last_verified_at for job_id in archived] == [clock.now] * 3


def test_a_run_being_worked_on_is_left_for_the_next_pass(lc, make_run):
    job = archived_run(lc, make_run)
    with lc.locks.run(job.id):
        report = verify_archives(lc, actor="scheduler", max_bytes=BIG)
    assert (report.verified, report.busy, report.left) == (0, 1, 1)
    assert fresh(lc, job.id).last_verified_at is None
    assert verify_archives(lc, actor="scheduler", max_bytes=BIG).outcomes["ok"] == 1


def test_trash_copies_are_verified_and_purged_ones_are_not(lc, make_run):
    kept = archived_run(lc, make_run)
    trashed = archived_run(lc, make_run)
    deletion.delete_run(lc, trashed.id, actor="test", reason="duplicate", strategy="soft")
    active_trashed = make_run()  # archived straight into the trash by its deletion
    deletion.delete_run(lc, active_trashed.id, actor="test", reason="duplicate", strategy="soft")
    purged = archived_run(lc, make_run)
    deletion.delete_run(lc, purged.id, actor="test", reason="duplicate", strategy="soft")
    deletion.purge_run(lc, purged.id, actor="test")
    active = make_run()
    assert fresh(lc, trashed.id).archive_path.startswith("trash/")
    assert fresh(lc, active_trashed.id).archive_path.startswith("trash/")

    report = verify_archives(lc, actor="scheduler", max_bytes=BIG)
    assert (report.outcomes["ok"], report.left) == (3, 0)
    for job_id in (kept.id, trashed.id, active_trashed.id):
        assert fresh(lc, job_id).verify_outcome == "ok"
    for job_id in (purged.id, active.id):
        assert fresh(lc, job_id).last_verified_at is None and verify_events(lc, job_id) == []
    chosen = verify_archives(lc, actor="cli", max_bytes=BIG, job_ids=[active.id])
    assert chosen.verified == 0 and chosen.failed == 1 and "no stored archive" in chosen.errors[0]


def test_a_corrupt_trash_copy_is_not_purged_after_its_grace(lc, make_run, clock):
    good = archived_run(lc, make_run)
    bad = archived_run(lc, make_run)
    for job in (good, bad):
        deletion.delete_run(lc, job.id, actor="test", reason="duplicate", strategy="soft")
    good, bad = fresh(lc, good.id), fresh(lc, bad.id)
    flip_a_byte(lc, bad)
    verify_archives(lc, actor="scheduler", max_bytes=BIG)
    assert (fresh(lc, good.id).verify_outcome, fresh(lc, bad.id).verify_outcome) == ("ok", "corrupt")
    clock.advance(days=lc.settings.delete_grace_days + 1)
    report = passes.cleanup_old_runs(lc, actor="scheduler")
    assert report.extra["purged"] == 1 and report.failed == 0  # not due at all: no failed purge every night
    assert fresh(lc, good.id).purged_at is not None and not lc.store.exists(good.archive_path)
    row = fresh(lc, bad.id)
    assert row.purged_at is None and lc.store.exists(row.archive_path) and row.archive_path.startswith("trash/")
    purges = select(LifecycleEvent).where(LifecycleEvent.job_id == bad.id, LifecycleEvent.action == "purge")
    assert list(lc.session.scalars(purges)) == []


@pytest.mark.slow
def test_the_task_run_by_a_worker_records_the_verdicts(lc, make_run, redis_db, process_env):
    job = archived_run(lc, make_run)
    lc.session.commit()
    queue = Queue(tasks.QUEUE_NAME, connection=redis_db)
    rq_job = queue.enqueue(tasks.verify_archives, "scheduler")
    run_burst_worker(process_env)
    rq_job = RQJob.fetch(rq_job.id, connection=redis_db)
    assert rq_job.get_status() == "finished" and rq_job.meta["progress"] == 100
    assert rq_job.meta["result"]["ok"] == 1 and rq_job.meta["result"]["bytes_read"] == job.archive_size_bytes
    row = fresh(lc, job.id)
    assert row.verify_outcome == "ok" and row.last_verified_at is not None


@pytest.mark.slow
def test_a_mismatch_fails_the_task_once_without_a_retry(lc, make_run, redis_db, process_env):
    job = archived_run(lc, make_run)
    flip_a_byte(lc, job)
    lc.session.commit()
    rq_job = tasks.enqueue(tasks.verify_archives, "scheduler", [str(job.id)], timeout="batch")
    run_burst_worker(process_env)
    rq_job = RQJob.fetch(rq_job.id, connection=redis_db)
    assert rq_job.get_status() == "failed"  # not "scheduled" for a retry that would hide it
    assert "ArchivesMismatch: 1 corrupt and 0 missing" in rq_job.latest_result().exc_string
    assert rq_job.meta["result"]["corrupt"] == 1
    assert fresh(lc, job.id).verify_outcome == "corrupt"


def test_the_run_json_has_the_verification_fields(admin, lc, make_run, clock):
    job = archived_run(lc, make_run)
    body = admin.get(f"/api/scraper/jobs/{job.id}").json
    assert body["last_verified_at"] is None and body["verify_outcome"] is None
    verify_archive(lc, job.id, actor="test")
    body = admin.get(f"/api/scraper/jobs/{job.id}").json
    assert body["verify_outcome"] == "ok"
    assert body["last_verified_at"].replace("+00:00", "Z").startswith(clock.now.strftime("%Y-%m-%dT%H:%M:%S"))


def metric_samples(text):
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_metrics_count_archives_by_verdict_and_the_stalest_check(client, admin, lc, make_run, clock):
    clock.advance(days=-3)
    never = archived_run(lc, make_run)  # archived three days ago, never verified: the stalest
    clock.advance(days=3)
    good, bad, trashed = (archived_run(lc, make_run) for _ in range(3))
    deletion.delete_run(lc, trashed.id, actor="test", reason="duplicate", strategy="soft")
    flip_a_byte(lc, bad)
    for job in (good, bad, trashed):
        verify_archive(lc, job.id, actor="test")
    make_run()  # active: no archive, not counted
    found = metric_samples(client.get("/metrics", headers=admin.headers).text)
    assert found['agar_archives_verified{outcome="ok"}'] == 2
    assert found['agar_archives_verified{outcome="corrupt"}'] == 1
    assert found['agar_archives_verified{outcome="missing"}'] == 0
    assert found['agar_archives_verified{outcome="never"}'] == 1
    age = found["agar_archive_oldest_verification_age_seconds"]
    assert 3 * 86400 - 5 <= age <= 3 * 86400 + 120, age
    assert fresh(lc, never.id).last_verified_at is None


def test_the_run_page_shows_the_last_verification(app, member, lc, make_run):
    good = archived_run(lc, make_run, owner=member.user.id)
    bad = archived_run(lc, make_run, owner=member.user.id)
    browser = Browser(app.test_client())
    assert browser.login("max").status_code == 302
    assert "<dt>Last verified</dt><dd>not yet</dd>" in browser.get(f"/runs/{good.id}").text
    flip_a_byte(lc, bad)
    for job in (good, bad):
        verify_archive(lc, job.id, actor="test")
    page = browser.get(f"/runs/{good.id}").text
    assert "Last verified" in page and ">ok</span> the archive matches its record" in page
    page = browser.get(f"/runs/{bad.id}").text
    assert "⚠ corrupt</strong> the archive does not match its record" in page
    assert "not purged until it verifies again" in page


def test_an_archive_whose_check_keeps_failing_goes_to_the_back_of_the_queue(lc, make_run, clock, monkeypatch):
    from app.lifecycle import verification

    first = archived_run(lc, make_run, files={"a.txt": "first"})
    clock.advance(minutes=5)  # archived first: verified first
    second = archived_run(lc, make_run, files={"a.txt": "second"})
    first_sha256 = first.archive_sha256
    real = verification.extract_archive

    def broken_for_first(raw, codec, manifest, sha256, dest, *args, **kwargs):
        if sha256 == first_sha256:
            raise PermissionError(13, "Permission denied")  # a disk error: no verdict on the archive
        return real(raw, codec, manifest, sha256, dest, *args, **kwargs)

    monkeypatch.setattr(verification, "extract_archive", broken_for_first)
    one = max(fresh(lc, job.id).archive_size_bytes for job in (first, second))
    report = verify_archives(lc, actor="scheduler", max_bytes=one)
    assert report.failed == 1 and fresh(lc, first.id).verify_outcome is None
    clock.advance(days=7)
    report = verify_archives(lc, actor="scheduler", max_bytes=one)
    assert report.outcomes["ok"] == 1 and fresh(lc, second.id).verify_outcome == "ok"
