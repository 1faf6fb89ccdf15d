"""The periodic check's alerts under their SPEC §9 kinds: unusual deletions against the trailing
median, the site's archive_failed apart from each run's, and alerts of the retired kinds."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.lifecycle.alerts import raise_alert
from app.models import Alert, JobAudit, LifecycleEvent
from app.monitoring.alert_check import check_alerts, deletions_per_day, unusual_deletions_threshold

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # a Sunday noon, UTC
TODAY = datetime(2026, 3, 15, tzinfo=UTC)


def deleted_at(lc, *moments):
    for moment in moments:
        lc.session.add(JobAudit(job_id=uuid.uuid4(), deleted_at=moment, deleted_by="scheduler", strategy="soft"))
    lc.session.commit()


def history(lc, counts):
    """``counts[0]`` runs deleted 14 days before today, …, ``counts[13]`` yesterday (at 06:00 UTC)."""
    for back, count in zip(range(14, 0, -1), counts, strict=True):
        deleted_at(lc, *[TODAY - timedelta(days=back) + timedelta(hours=6)] * count)


def check(lc, now=NOW):
    return check_alerts(lc.session, lc.settings.scraper_data_path, 100, now)


def open_alerts(lc, kind):
    lc.session.expire_all()
    return list(lc.session.scalars(select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None))))


@pytest.mark.parametrize(
    ("previous", "threshold"),
    [
        ([0] * 14, 20),  # a quiet site: its first 20 deletions of a day are not unusual
        ([1] * 7 + [2] * 7, 21.5),  # median 1.5: the margin binds
        ([10] * 14, 30),  # median 10: 3x and +20 meet
        ([10] * 7 + [15] * 7, 37.5),  # median 12.5: 3x binds
        ([], 20),
    ],
)
def test_the_threshold_is_three_times_the_median_and_at_least_twenty_above_it(previous, threshold):
    assert unusual_deletions_threshold(previous) == threshold


def test_deletions_are_counted_by_utc_day_with_today_up_to_now(lc):
    history(lc, list(range(5, 19)))  # 5 … 18 a day: median (11 + 12) / 2 = 11.5
    deleted_at(
        lc,
        TODAY,  # midnight: today's
        TODAY - timedelta(microseconds=1),  # yesterday's last moment
        TODAY - timedelta(days=14, microseconds=1),  # 15 days ago: outside the window
        NOW + timedelta(minutes=1),  # after now: not yet
    )
    today, previous = deletions_per_day(lc.session, NOW)
    assert today == 1
    assert previous == [*range(5, 18), 18 + 1]


def test_a_day_far_above_the_trailing_median_opens_a_warning_that_the_next_day_resolves(lc):
    history(lc, list(range(5, 19)))  # median 11.5: unusual above max(34.5, 31.5) = 34.5
    deleted_at(lc, *[TODAY + timedelta(hours=1)] * 34)
    assert check(lc)["opened"] == []
    deleted_at(lc, TODAY + timedelta(hours=2))  # the 35th

    report = check(lc)

    assert report["opened"] == ["unusual_deletions"]
    [alert] = open_alerts(lc, "unusual_deletions")
    assert alert.severity == "warning" and alert.message == (
        "35 runs deleted today (UTC), far above the usual: the median of the 14 days before is 11.5 "
        "(unusual above 34.5); the audit says who deleted them and why"
    )
    assert alert.data | {"seen_at": None} == {
        "deleted_today": 35,
        "median": 11.5,
        "threshold": 34.5,
        "day": "2026-03-15",
        "subject": "all",
        "seen_at": None,
    }
    assert check(lc, NOW + timedelta(hours=1))["still_open"] == ["unusual_deletions"]
    tomorrow = check(lc, NOW + timedelta(days=1))  # a new day: 0 so far against a median of 12.5
    assert tomorrow["resolved"] == ["unusual_deletions"] and open_alerts(lc, "unusual_deletions") == []


def test_a_quiet_site_alerts_only_past_twenty_deletions_in_a_day(lc):
    deleted_at(lc, *[TODAY + timedelta(hours=3)] * 20)
    assert check(lc)["opened"] == []
    deleted_at(lc, TODAY + timedelta(hours=4))
    assert check(lc)["opened"] == ["unusual_deletions"]


def test_the_sites_archive_failed_alert_leaves_each_runs_alone(lc):
    run_id = str(uuid.uuid4())
    raise_alert(lc.session, "archive_failed", "warning", "kept a folder", subject=run_id, now=NOW, job_id=run_id)
    lc.session.add(
        LifecycleEvent(job_id=uuid.uuid4(), action="archive", actor="scheduler", outcome="failed", started_at=NOW)
    )
    lc.session.commit()
    assert check(lc)["opened"] == ["archive_failed"]  # the site's, beside the run's
    subjects = sorted(alert.data["subject"] for alert in open_alerts(lc, "archive_failed"))
    assert subjects == sorted(["all", run_id])

    report = check(lc, NOW + timedelta(hours=25))  # the failure left the 24-hour window

    assert report["resolved"] == ["archive_failed"]
    [left] = open_alerts(lc, "archive_failed")
    assert left.data["subject"] == run_id and left.message == "kept a folder"


def test_alerts_of_the_retired_kinds_are_resolved_and_opened_again_under_the_new(lc):
    lc.session.add_all(
        [
            Alert(kind="disk_full", severity="warning", message="old", data={"used_percent": 90}, created_at=NOW),
            Alert(kind="archive_failures", severity="warning", message="old", data={"failed_runs": 2}, created_at=NOW),
        ]
    )
    lc.session.commit()

    report = check_alerts(lc.session, lc.settings.scraper_data_path, 1, NOW)  # any disk in use is past 1 %

    assert sorted(report["resolved"]) == ["archive_failures", "disk_full"] and report["opened"] == ["disk"]
    assert open_alerts(lc, "disk_full") == open_alerts(lc, "archive_failures") == []
    assert [alert.data["subject"] for alert in open_alerts(lc, "disk")] == ["all"]
