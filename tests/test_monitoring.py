"""Storage figures in the database: the hourly snapshot, its CLI, and the per-day activity."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.lifecycle import archival, deletion
from app.models import StorageSnapshot
from app.monitoring.figures import daily_activity
from app.monitoring.snapshots import take_snapshot


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


def test_alerts_open_once_update_and_resolve_when_the_problem_is_gone(lc):
    import uuid

    from app.models import Alert, LifecycleEvent
    from app.monitoring.alert_check import check_alerts

    data = lc.settings.scraper_data_path
    now = datetime.now(UTC)
    assert check_alerts(lc.session, data, 100, now)["opened"] == []  # no disk is 100 % full here, nothing failed
    first = check_alerts(lc.session, data, 1, now)  # any disk in use is past 1 %
    assert first["opened"] == ["disk"]
    again = check_alerts(lc.session, data, 1, now + timedelta(minutes=15))
    assert again["opened"] == [] and again["still_open"] == ["disk"]
    lc.session.add(
        LifecycleEvent(job_id=uuid.uuid4(), action="archive", actor="scheduler", outcome="failed", started_at=now)
    )
    lc.session.commit()
    failing = check_alerts(lc.session, data, 100, now + timedelta(minutes=30))
    assert failing == {"opened": ["archive_failed"], "resolved": ["disk"], "still_open": [], "notify_failed": []}
    alerts = {a.kind: a for a in lc.session.scalars(select(Alert))}
    assert alerts["disk"].resolved_at is not None and alerts["archive_failed"].resolved_at is None
    assert alerts["archive_failed"].message == "1 run: the last archive attempt failed (in the last 24 hours)"
    later = check_alerts(lc.session, data, 100, now + timedelta(hours=25))  # the failure is a day old
    assert later["resolved"] == ["archive_failed"]
    assert lc.session.scalar(select(func.count()).select_from(Alert)) == 2


def test_the_archive_failure_alert_resolves_once_each_run_archived_after_failing(lc):
    import uuid

    from app.models import Alert, LifecycleEvent
    from app.monitoring.alert_check import check_alerts

    data, start = lc.settings.scraper_data_path, datetime.now(UTC)
    first, second = uuid.uuid4(), uuid.uuid4()

    def attempt(job_id, outcome, minutes):
        event = LifecycleEvent(
            job_id=job_id,
            action="archive",
            actor="scheduler",
            outcome=outcome,
            started_at=start + timedelta(minutes=minutes),
        )
        lc.session.add(event)
        lc.session.commit()

    def open_alert():
        return lc.session.scalars(
            select(Alert).where(Alert.kind == "archive_failed", Alert.resolved_at.is_(None))
        ).first()

    attempt(first, "failed", 0)
    attempt(first, "failed", 5)  # one run failing twice is one run in trouble
    assert check_alerts(lc.session, data, 100, start + timedelta(minutes=10))["opened"] == ["archive_failed"]
    assert open_alert().data == {"failed_runs": 1, "subject": "all"}  # the site's, not one run's
    attempt(second, "failed", 15)
    attempt(first, "skipped", 20)  # busy: says nothing about whether archiving works
    attempt(first, "succeeded", 25)
    attempt(second, "started", 30)  # under way: the failure stands until it ends
    report = check_alerts(lc.session, data, 100, start + timedelta(minutes=35))
    assert report["still_open"] == ["archive_failed"] and open_alert().data["failed_runs"] == 1
    assert open_alert().message == "1 run: the last archive attempt failed (in the last 24 hours)"
    attempt(second, "succeeded", 40)
    report = check_alerts(lc.session, data, 100, start + timedelta(minutes=45))  # an hour, not a day, later
    assert report["resolved"] == ["archive_failed"] and open_alert() is None
    resolved = lc.session.scalars(select(Alert).where(Alert.kind == "archive_failed")).one()
    assert resolved.resolved_at == start + timedelta(minutes=45)


def test_a_new_alert_is_posted_to_the_webhook_and_a_dead_webhook_is_reported(lc):
    from app.models import Alert
    from app.monitoring.alert_check import check_alerts, webhook_notifier
    from tests.support import webhook_listener

    with webhook_listener() as server:
        url, received = server.url, server.received
        report = check_alerts(lc.session, lc.settings.scraper_data_path, 1, datetime.now(UTC), webhook_notifier(url))
    assert report["opened"] == ["disk"] and report["notify_failed"] == []
    assert len(received) == 1 and received[0]["kind"] == "disk"
    assert received[0]["severity"] in ("warning", "critical")
    assert "% full (alert at 1 %)" in received[0]["message"]
    lc.session.query(Alert).delete()
    lc.session.commit()
    dead = webhook_notifier("http://127.0.0.1:9/nobody-listens", timeout=2)
    report = check_alerts(lc.session, lc.settings.scraper_data_path, 1, datetime.now(UTC), dead)
    assert report["opened"] == ["disk"] and report["notify_failed"][0].startswith("disk all: ")
    assert lc.session.scalar(select(func.count()).select_from(Alert).where(Alert.resolved_at.is_(None))) == 1


def test_alerts_check_command(runner, lc, monkeypatch):
    import dataclasses

    from app.cli import monitoring as cli

    for percent, opened in ((1, "opened: disk"), (100, "opened: none")):
        chosen = dataclasses.replace(lc.settings, storage_alert_percent=percent)
        monkeypatch.setattr(cli, "settings", lambda chosen=chosen: chosen)
        result = runner.invoke(args=["alerts", "check"])
        assert result.exit_code == 0 and result.output.splitlines()[0] == opened
    assert result.output.splitlines()[1:] == ["still open: none", "resolved: disk"]


def test_an_alert_raised_by_the_lifecycle_is_sent_once_by_the_next_check(lc, make_run):
    """An archive_corrupt alert is raised mid-request or mid-task; the alert check sends it to the webhook."""
    from app.lifecycle.alerts import mark_archive_corrupt
    from app.monitoring.alert_check import check_alerts

    job = make_run(days_ago=10)
    archival.archive_run(lc, job.id, actor="scheduler")
    mark_archive_corrupt(lc.session, archival.load_run(lc, job.id), "a flipped byte", now=lc.now())
    lc.session.commit()
    sent = []
    report = check_alerts(lc.session, lc.settings.scraper_data_path, 100, lc.now(), sent.append)
    assert [alert.kind for alert in sent] == ["archive_corrupt"] and report["notified"] == [f"archive_corrupt {job.id}"]
    mark_archive_corrupt(lc.session, archival.load_run(lc, job.id), "met again by a member read", now=lc.now())
    lc.session.commit()  # the same problem met again refreshes the open alert: it is not sent again
    check_alerts(lc.session, lc.settings.scraper_data_path, 100, lc.now(), sent.append)
    assert len(sent) == 1


def test_a_failed_send_of_a_raised_alert_is_tried_again(lc, make_run):
    from app.lifecycle.alerts import raise_alert
    from app.monitoring.alert_check import check_alerts

    raise_alert(lc.session, "archive_failed", "warning", "kept a folder", subject="run-1", now=lc.now())
    lc.session.commit()

    def down(alert):
        raise OSError("connection refused")

    report = check_alerts(lc.session, lc.settings.scraper_data_path, 100, lc.now(), down)
    assert report["notify_failed"] == ["archive_failed run-1: connection refused"]
    sent = []
    check_alerts(lc.session, lc.settings.scraper_data_path, 100, lc.now(), sent.append)
    assert len(sent) == 1
