"""``flask demo seed`` gives a fresh install's charts a past: the runs' lives on their dates, events and snapshots."""

import dataclasses
import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter
from sqlalchemy import func, select

from app.demo import DEMO, seed_demo, seed_history
from app.lifecycle import passes
from app.lifecycle.reconcile import reconcile
from app.models import Job, JobAudit, LifecycleEvent, StorageSnapshot
from app.monitoring.figures import storage_stats
from tests.test_web import Browser

TIERS = ("active", "archived", "trash", "restored")


def facts(jobs):
    """What the history reads of each run, taken before anything moves it (a hard deletion removes rows)."""
    return [(job.id, job.created_at, job.completed_at, job.size_bytes or 0) for job in jobs]


def replay(runs, events, moment, *, soft=True):
    """Each tier's runs and bytes at ``moment``, worked out from the runs' dates and their events alone."""
    totals = {tier: [0, 0] for tier in (*TIERS, "purged")}
    done = defaultdict(dict)
    for event in events:
        if event.outcome == "succeeded" and event.finished_at <= moment:
            done[event.job_id][event.action] = event
    for job_id, created_at, completed_at, size in runs:
        if created_at > moment:
            continue
        seen, size = done[job_id], size if completed_at and completed_at <= moment else 0
        packed = seen["archive"].bytes_after if "archive" in seen else 0
        if "purge" in seen:
            totals["purged"][0] += 1
        elif "delete" in seen:
            if soft:
                totals["trash"][0] += 1
                totals["trash"][1] += packed
        elif "archive" in seen:
            totals["archived"][0] += 1
            totals["archived"][1] += packed
            if "restore" in seen and "expire_restore" not in seen:
                totals["restored"][0] += 1
                totals["restored"][1] += size
        else:
            totals["active"][0] += 1
            totals["active"][1] += size
    return totals


@pytest.fixture(params=["moved", "described"])
def seeded(request, lc, admin):
    """40 demo runs of 45 days and their history: moved along for real (Redis answers), or only described.

    Seeded as of half past an hour, never in the minute or two a nightly pass (on the hour) takes.
    """
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(minutes=30)
    jobs = seed_demo(lc.session, lc.settings.jobs_path, runs=40, days=45, run_bytes=32 << 10, now=now,
                     created_by=admin.user.id, seed=11)  # fmt: skip
    runs = facts(jobs)
    moved = request.param == "moved"
    history = seed_history(lc.session, lc.settings, jobs, days=45, now=now, seed=11, lc=lc if moved else None)
    assert history.moved == moved and history.failed == 0
    return now, runs, history


def test_the_history_follows_from_the_runs_dates_and_is_marked_as_demo(lc, seeded):
    now, runs, history = seeded
    s = lc.settings
    events = lc.session.scalars(select(LifecycleEvent).order_by(LifecycleEvent.finished_at)).all()
    assert len(events) == history.events > 40  # archives, deletions, purges of 40 runs over 45 days
    assert all(e.details == {"demo": True} and e.reason.startswith(f"{DEMO}: ") for e in events)
    assert all(e.started_at <= e.finished_at < now for e in events)
    by_run = {run[0]: run for run in runs}
    actions = defaultdict(list)
    for event in events:
        actions[event.job_id].append((event.action, event.outcome))
        _id, _created, completed, size = by_run[event.job_id]
        assert completed is not None  # the running run has no history
        pass_at = event.finished_at.replace(minute=0, second=0, microsecond=0)  # a pass's runs take seconds
        if event.action == "archive":  # in the first archival pass after ARCHIVE_AFTER_DAYS (or the next: a retry)
            first = croniter(s.archive_schedule, completed + timedelta(days=s.archive_after_days)).get_next(datetime)
            assert pass_at in (first, croniter(s.archive_schedule, first).get_next(datetime))
            if event.outcome == "succeeded":
                assert event.bytes_before == size > event.bytes_after > 0
            else:
                assert "No space left on device" in event.error
        if event.action == "delete":  # in the first cleanup pass after DELETE_AFTER_DAYS
            due = completed + timedelta(days=s.delete_after_days)
            assert pass_at == croniter(s.cleanup_schedule, due).get_next(datetime)
    for steps in actions.values():  # a life in order: archived (maybe after a failure), then the rest
        succeeded = [action for action, outcome in steps if outcome == "succeeded"]
        assert succeeded[0] == "archive" and succeeded.count("archive") == 1
        assert succeeded == [a for a in ("archive", "restore", "expire_restore", "delete", "purge") if a in succeeded]
    counts = defaultdict(int)
    for steps in actions.values():
        for step in steps:
            counts[step] += 1
    assert counts["archive", "succeeded"] >= 25 and counts["delete", "succeeded"] >= 8 and counts["purge", "succeeded"]
    assert counts["archive", "failed"] >= 1 and counts["restore", "succeeded"] >= 1
    # The snapshots: hourly over the 45 days, marked, and each one the tiers the runs' events say.
    snapshots = lc.session.scalars(select(StorageSnapshot).order_by(StorageSnapshot.taken_at)).all()
    assert len(snapshots) == history.snapshots and 45 * 24 - 2 <= len(snapshots) <= 45 * 24
    assert all(snap.demo for snap in snapshots) and snapshots[-1].taken_at < now.replace(minute=0, second=0)
    assert all(b.taken_at - a.taken_at == timedelta(hours=1) for a, b in zip(snapshots, snapshots[1:], strict=False))
    for snap in snapshots:
        expected = replay(runs, events, snap.taken_at)
        found = {tier: [getattr(snap, f"{tier}_count", None), getattr(snap, f"{tier}_bytes")] for tier in TIERS}
        found["trash"][0] = snap.deleted_count - expected["purged"][0]
        assert found == {tier: expected[tier] for tier in TIERS}, snap.taken_at
        assert 0 <= snap.disk_free_bytes <= snap.disk_total_bytes
    for tier in ("archived", "trash", "restored"):
        assert max(getattr(snap, f"{tier}_bytes") for snap in snapshots) > 0, tier


def test_moved_runs_are_where_their_history_says_and_the_scheduler_has_no_backlog(lc, seeded, clock):
    now, runs, history = seeded
    if not history.moved:
        # Described only: nothing else is faked; the runs wait, all active, for the scheduler.
        assert lc.session.scalar(select(func.count()).select_from(JobAudit)) == 0
        assert lc.session.scalar(select(func.count()).where(Job.archived_at.is_not(None))) == 0
        return
    events = lc.session.scalars(select(LifecycleEvent).where(LifecycleEvent.outcome == "succeeded")).all()
    last = {(event.job_id, event.action): event.finished_at for event in events}
    for job in lc.session.scalars(select(Job).execution_options(populate_existing=True)):
        assert job.archived_at == last.get((job.id, "archive"))
        assert job.deleted_at == last.get((job.id, "delete")) and job.purged_at == last.get((job.id, "purge"))
        restored = (job.id, "restore") in last and (job.id, "expire_restore") not in last and not job.deleted_at
        assert (job.restored_at is not None) == restored
    audit = lc.session.scalars(select(JobAudit)).all()
    assert len(audit) == sum(action == "delete" for _id, action in last) and all(
        row.deletion_reason.startswith(DEMO) and row.deleted_by == "scheduler" for row in audit
    )
    # The storage figures now are what the history adds up to, and nothing was left half done.
    stats = storage_stats(lc.session, lc.settings.scraper_data_path)
    expected = replay(runs, events, now)
    assert {tier: [stats["tiers"][tier]["runs"], stats["tiers"][tier]["bytes"]] for tier in TIERS} == {
        tier: expected[tier] for tier in TIERS
    }
    report = reconcile(lc, repair=False, hash_archives=True)
    assert report.unrepaired == 0, report.as_dict()
    # The passes the scheduler catches up at start (the last nightly occurrences) find nothing left.
    s = lc.settings
    clock.now = croniter(s.archive_schedule, now).get_prev(datetime)
    assert passes.archive_old_runs(lc).outcomes == {"succeeded": 0, "failed": 0, "skipped": 0}
    clock.now = croniter(s.cleanup_schedule, now).get_prev(datetime)
    lc.settings = dataclasses.replace(s, delete_max_share=1.0)  # the limit is not what is tested here
    cleaned = passes.cleanup_old_runs(lc)
    assert cleaned.outcomes == {"succeeded": 0, "failed": 0, "skipped": 0} and cleaned.extra["purged"] == 0


def test_described_archives_weigh_what_the_real_archival_then_writes(lc, admin, clock):
    now = datetime.now(UTC).replace(microsecond=0)
    jobs = seed_demo(lc.session, lc.settings.jobs_path, runs=20, days=45, run_bytes=32 << 10, now=now,
                     created_by=admin.user.id, seed=2)  # fmt: skip
    seed_history(lc.session, lc.settings, jobs, days=45, now=now, seed=2)
    archived = select(LifecycleEvent).where(LifecycleEvent.action == "archive", LifecycleEvent.outcome == "succeeded")
    demo = {event.job_id: event.bytes_after for event in lc.session.scalars(archived)}
    assert len(demo) >= 10
    clock.now = now
    assert passes.archive_old_runs(lc).failed == 0
    lc.session.expire_all()
    real = {job.id: job.archive_size_bytes for job in lc.session.scalars(select(Job).where(Job.id.in_(demo)))}
    assert real == demo  # the same codec over the same folder: the compression savings chart is the real one


@pytest.mark.parametrize("moved", [True, False])
def test_a_hard_deletion_strategy_leaves_no_trash_in_the_history(lc, admin, moved):
    now = datetime.now(UTC)
    settings = dataclasses.replace(lc.settings, deletion_strategy="hard")
    jobs = seed_demo(lc.session, settings.jobs_path, runs=15, days=45, run_bytes=8 << 10, now=now, created_by=None,
                     seed=4)  # fmt: skip
    lc.settings = settings
    seed_history(lc.session, settings, jobs, days=45, now=now, seed=4, lc=lc if moved else None)
    actions = set(lc.session.scalars(select(LifecycleEvent.action).distinct()))
    assert "delete" in actions and "purge" not in actions
    assert lc.session.scalar(select(func.max(StorageSnapshot.trash_bytes))) == 0
    assert lc.session.scalar(select(func.max(StorageSnapshot.deleted_count))) == 0  # a hard-deleted run has no row
    deleted = lc.session.scalar(select(func.count()).where(LifecycleEvent.action == "delete"))
    assert lc.session.scalar(select(func.count()).select_from(Job)) == 15 - (deleted if moved else 0)


def charts_of(page):
    return {
        key: json.loads(value.replace("&#34;", '"').replace("&amp;", "&"))
        for key, value in re.findall(r'id="chart-([a-z-]+)" class="plot" data-figure="([^"]+)"', page)
    }


def test_first_start_gives_the_storage_page_charts_with_a_past(app, runner, admin, lc):
    result = runner.invoke(args=["demo", "seed", "--first-start", "--size", "16K", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert re.search(r"each step on its date: \d+ lifecycle events and 10\d\d hourly storage snapshots", result.output)
    browser = Browser(app.test_client())
    assert browser.login("ada").status_code == 302
    figures = charts_of(browser.get("/storage").text)
    assert set(figures) == {"tiers-now", "trend", "savings", "success", "deletions"}
    now_bars = dict(zip(figures["tiers-now"]["data"][0]["x"], figures["tiers-now"]["data"][0]["y"], strict=True))
    assert now_bars["Active"] > 0 and now_bars["Archived"] > 0 and now_bars["Trash"] > 0
    trend = {trace["name"]: trace["y"] for trace in figures["trend"]["data"]}
    assert 30 * 24 - 1 <= len(trend["Active"]) <= 30 * 24 and max(trend["Archived"]) > 0 and max(trend["Trash"]) > 0
    assert any(shape.get("type") == "rect" for shape in figures["trend"]["layout"]["shapes"])  # the demo, shaded
    assert "demo history" in json.dumps(figures["trend"]["layout"]["annotations"])
    assert sum(figures["savings"]["data"][1]["y"]) > 0 and sum(figures["deletions"]["data"][0]["y"]) > 0
    archives = figures["success"]["data"][0]["y"]
    assert sum(archives) > 10 and max(archives) <= 6  # spread over the nights they happened, no catch-up today
    # Seeding again adds runs and their past, but leaves the install's snapshots as they are.
    again = runner.invoke(args=["demo", "seed", "--runs", "3", "--size", "8K", "--seed", "8"])
    assert again.exit_code == 0 and "no storage snapshots (this install has its own)" in again.output
    assert lc.session.scalar(select(func.count()).select_from(StorageSnapshot).where(StorageSnapshot.demo)) >= 1000


def test_without_redis_the_past_is_described_and_the_runs_wait_for_the_scheduler(make_app, lc, admin):
    app = make_app(REDIS_URL="redis://127.0.0.1:9/0")  # nothing listens there
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["demo", "seed", "--runs", "12", "--size", "8K", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "Redis does not answer, so their past is only described" in result.output
    assert "`flask runs archive` and `flask runs cleanup` do it now" in result.output
    assert lc.session.scalar(select(func.count()).where(Job.archived_at.is_not(None))) == 0
    assert lc.session.scalar(select(func.count()).select_from(LifecycleEvent)) > 0
