"""Storage figures in the database: the hourly snapshot, its CLI, and the per-day activity."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.lifecycle import archival, deletion
from app.models import StorageSnapshot
from app.monitoring import daily_activity, take_snapshot


def test_a_snapshot_records_each_tier_once_per_hour(lc, make_run, clock):
    kept = make_run(days_ago=1)
    archived = make_run(days_ago=10)
    archival.archive_run(lc, archived.id, actor="test")
    gone = make_run(days_ago=12)
    archival.archive_run(lc, gone.id, actor="test")
    deletion.delete_run(lc, gone.id, actor="test", reason="dup", strategy="soft")
    now = datetime(2026, 11, 28, 14, 5, tzinfo=UTC)
    snapshot, taken = take_snapshot(lc.session, lc.settings.scraper_data_path, now)
    lc.session.expire_all()
    runs = {job.id: job for job in (lc.session.get(type(kept), i) for i in (kept.id, archived.id, gone.id))}
    assert taken and snapshot.taken_at == now
    assert (snapshot.active_count, snapshot.active_bytes) == (1, runs[kept.id].size_bytes)
    assert (snapshot.archived_count, snapshot.archived_bytes) == (1, runs[archived.id].archive_size_bytes)
    assert snapshot.trash_bytes == runs[gone.id].archive_size_bytes and snapshot.deleted_count == 1
    assert 0 < snapshot.disk_free_bytes <= snapshot.disk_total_bytes
    again, taken_again = take_snapshot(lc.session, lc.settings.scraper_data_path, now + timedelta(minutes=50))
    assert not taken_again and again.id == snapshot.id
    _next, taken_next = take_snapshot(lc.session, lc.settings.scraper_data_path, now + timedelta(minutes=56))
    assert taken_next
    assert lc.session.scalar(select(func.count()).select_from(StorageSnapshot)) == 2


def test_storage_snapshot_command(runner, lc):
    first = runner.invoke(args=["storage", "snapshot"])
    assert first.exit_code == 0 and first.output.startswith("took snapshot")
    second = runner.invoke(args=["storage", "snapshot"])
    assert second.exit_code == 0 and second.output.startswith("this hour already has snapshot")


def test_daily_activity_groups_events_by_utc_day_in_the_database(lc, make_run, clock):
    now = datetime.now(UTC)
    first = make_run(days_ago=9)
    archival.archive_run(lc, first.id, actor="test")
    second = make_run(days_ago=9)
    archival.archive_run(lc, second.id, actor="test")
    deletion.delete_run(lc, second.id, actor="test", reason="dup", strategy="soft")
    days = daily_activity(lc.session, 30, now)
    assert len(days) == 30 and days[-1]["day"] == now.date() and days[0]["day"] == (now - timedelta(days=29)).date()
    today = days[-1]
    lc.session.expire_all()
    jobs = [lc.session.get(type(first), job.id) for job in (first, second)]
    assert today["archived"] == 2 and today["archive_failed"] == 0 and today["deleted"] == 1
    assert today["original_bytes"] == sum(job.size_bytes for job in jobs)
    assert today["archived_bytes"] == sum(job.archive_size_bytes for job in jobs)
    assert all(day["archived"] == 0 for day in days[:-1])
