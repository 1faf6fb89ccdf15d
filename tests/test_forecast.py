"""The storage forecast (issue 12, SPEC §9): each tier's bytes and the disk's use for the next days,
checked on known data sets with exact arithmetic."""

import dataclasses
from datetime import date, timedelta

from sqlalchemy import select

from app.lifecycle import retention
from app.lifecycle.runs import load_run
from app.models import Job
from app.monitoring.forecast import forecast
from tests.support import sized_run


def shaped(lc, make_run, clock, *, days_ago, size, archived=None, deleted_days_ago=None, restored_for=None):
    """A run finished ``days_ago`` with recorded sizes and tier stamps (no files moved: only the figures count)."""
    job = load_run(lc, make_run(days_ago=days_ago).id)
    job.size_bytes = size
    if archived is not None:
        job.archived_at, job.archive_path, job.archive_size_bytes = clock.now, "archive/x.tar.gz", archived
    if deleted_days_ago is not None:
        job.deleted_at = clock.now - timedelta(days=deleted_days_ago)
    if restored_for is not None:
        job.restored_at, job.restore_expires_at = clock.now, clock.now + timedelta(days=restored_for)
    lc.session.commit()
    return job


def project(lc, clock, days, *, total, used, **settings):
    rules = retention.load_rules(lc.session, lc.settings)
    current = dataclasses.replace(lc.settings, **settings)
    return forecast(lc.session, current, rules, now=clock.now, days=days, disk_total=total, disk_used=used)


def test_every_tier_moves_as_the_rules_say_and_new_runs_arrive_at_the_recent_rate(lc, make_run, clock):
    shaped(lc, make_run, clock, days_ago=5, size=1000)  # archived on day 2 (7 days), ratio 1/4
    shaped(lc, make_run, clock, days_ago=28, size=4000, archived=1000)  # deleted on day 2 (30), purged on day 9
    shaped(lc, make_run, clock, days_ago=35, size=2000, archived=500, deleted_days_ago=3)  # purged on day 4
    shaped(lc, make_run, clock, days_ago=10, size=2000, archived=500, restored_for=3)  # its copy goes on day 3
    # Runs of the last 14 days: 1000 + 2000 bytes, so 3000/14 bytes a day arrive, archived 7 days on at 1/4.
    result = project(lc, clock, 10, total=10_000, used=5_000)
    arrive = 3000 / 14
    expected_active = [1000 + arrive, *(arrive * d for d in range(2, 8)), *(arrive * 7 for _ in range(3))]
    expected_archived = [
        1500,
        750,
        750,
        750,
        750,
        750,
        750,
        750 + arrive / 4,
        750 + 2 * arrive / 4,
        750 + 3 * arrive / 4,
    ]
    expected_trash = [500, 1500, 1500, 1000, 1000, 1000, 1000, 1000, 0, 0]
    expected_restored = [2000, 2000] + [0] * 8
    days = result["days"]
    assert [d["date"] for d in days] == [(clock.now.date() + timedelta(days=n)).isoformat() for n in range(1, 11)]
    assert [d["active_bytes"] for d in days] == [round(v) for v in expected_active]
    assert [d["archived_bytes"] for d in days] == [round(v) for v in expected_archived]
    assert [d["trash_bytes"] for d in days] == expected_trash
    assert [d["restored_bytes"] for d in days] == expected_restored
    totals = [
        a + b + c + e
        for a, b, c, e in zip(expected_active, expected_archived, expected_trash, expected_restored, strict=True)
    ]
    assert [d["disk_used_percent"] for d in days] == [round(100 * t / 10_000, 2) for t in totals]
    assert result["alert_threshold_date"] is None  # 52 % at most, under the default 80 %


def test_the_alert_date_is_the_first_day_the_disk_reaches_the_threshold(lc, make_run, clock):
    shaped(lc, make_run, clock, days_ago=1, size=1400)  # 1400/14 = 100 bytes a day arrive; nothing shrinks (ratio 1)
    result = project(lc, clock, 10, total=10_000, used=1_400, storage_alert_percent=20)
    assert [d["disk_used_percent"] for d in result["days"]] == [15.0 + n for n in range(10)]
    assert result["alert_threshold_date"] == (clock.now.date() + timedelta(days=6)).isoformat()
    assert project(lc, clock, 5, total=10_000, used=1_400, storage_alert_percent=20)["alert_threshold_date"] is None


def test_policies_keep_last_holds_and_a_hard_strategy_change_the_forecast(lc, make_run, clock):
    from app.lifecycle import policies

    shaped(lc, make_run, clock, days_ago=40, size=4000, archived=1000)  # 40 days: deleted on day 1
    fields = {"name": "hold", "scraper_pattern": "*", "archive_after_days": 7, "legal_hold": True}
    held = project(lc, clock, 3, total=10_000, used=1_000, deletion_strategy="hard")
    assert [d["archived_bytes"] for d in held["days"]] == [0, 0, 0]  # hard: gone on day 1, no trash
    assert [d["trash_bytes"] for d in held["days"]] == [0, 0, 0]
    policies.add_policy(lc.session, policies.read_fields(fields, partial=False), actor="ada", reason="r", now=clock.now)
    lc.session.commit()
    held = project(lc, clock, 3, total=10_000, used=1_000, deletion_strategy="hard")
    assert [d["archived_bytes"] for d in held["days"]] == [1000, 1000, 1000]  # the hold keeps it


def test_the_forecast_api_checks_days_and_is_for_admins(app, admin, member):
    assert member.get("/api/scraper/storage/forecast").status_code == 403
    for bad in ("0", "366", "abc", "-1", "1.5", "%C2%B2", "%D9%A3"):  # ², an Arabic-Indic 3
        response = admin.get(f"/api/scraper/storage/forecast?days={bad}")
        assert response.status_code == 400 and "days" in response.json["error"]["message"], bad
    body = admin.get("/api/scraper/storage/forecast").json
    assert len(body["days"]) == 30 and set(body) == {"days", "alert_threshold_date"}
    assert set(body["days"][0]) == {
        "date",
        "active_bytes",
        "archived_bytes",
        "trash_bytes",
        "restored_bytes",
        "disk_used_percent",
    }
    assert len(admin.get("/api/scraper/storage/forecast?days=365").json["days"]) == 365


def test_the_storage_page_shows_the_forecast_the_next_passes_and_the_policies_in_force(
    app, lc, make_run, admin, member, monkeypatch
):
    import json
    import re

    from app.lifecycle import policies
    from app.web import reports
    from tests.test_web import Browser

    policies.add_policy(
        lc.session,
        policies.read_fields(
            {"name": "books", "scraper_pattern": "books-*", "archive_after_days": 7, "keep_last": 3}, partial=False
        ),
        actor="ada",
        reason="the last three are read",
        now=lc.now(),
    )
    lc.session.commit()
    sized_run(lc, make_run, 3 * 1024**2, days_ago=10, scraper="quotes")  # due: the next archival pass takes it
    sized_run(lc, make_run, 1024**2, days_ago=10)  # books-toscrape: one of its newest 3, kept

    def browser(account):
        opened = Browser(app.test_client())
        assert opened.login(account.user.username).status_code == 302
        return opened

    ada, max_ = browser(admin), browser(member)
    never = dataclasses.replace(lc.settings, storage_alert_percent=100)  # a disk never full: the line not crossed
    monkeypatch.setattr(reports, "settings", lambda: never)
    page = ada.get("/storage").text
    assert 'hx-get="/storage/forecast" hx-trigger="load"' in page  # the forecast loads after the page
    retention_card = page.split('id="retention-title"')[1].split("</section>")[0]
    assert "books-*" in retention_card and "newest 3" in retention_card and "1 policy" in retention_card
    assert f"archived {lc.settings.archive_after_days} days after they finish" in retention_card

    fragment = ada.get("/storage/forecast", headers={"HX-Request": "true"}).text
    assert "<html" not in fragment and 'id="forecast"' in fragment
    assert "The next archival pass would archive 1 run (3.0 MB)" in fragment
    figure = json.loads(
        re.search(r'id="chart-forecast" class="plot" data-figure="([^"]+)"', fragment)
        .group(1)
        .replace("&#34;", '"')
        .replace("&amp;", "&")
    )
    api = ada.get("/api/scraper/storage/forecast?days=30").json
    traces = {trace["name"]: trace for trace in figure["data"]}
    assert set(traces) == {"Active", "Archived", "Trash", "Restored", "Disk used (%)"}
    assert traces["Active"]["x"] == [day["date"] for day in api["days"]]
    assert traces["Active"]["y"] == [round(day["active_bytes"] / 1024**2, 2) for day in api["days"]]
    assert traces["Disk used (%)"]["y"] == [day["disk_used_percent"] for day in api["days"]]
    assert figure["layout"]["title"]["text"] == "Forecast: the disk stays under 100 % for 30 days"
    assert "The disk stays under 100 % (the alert line) for the next 30 days" in fragment
    assert fragment.count("<tr") - fragment.count("<thead") >= 30  # a row per day

    # A disk that fills: the day it crosses the alert line, said and drawn (the API's day, on the same disk).
    from app.monitoring import forecast as forecast_module

    small_disk = {"total_bytes": 100 * 1024**2, "free_bytes": 50 * 1024**2, "used_percent": 50.0}
    monkeypatch.setattr(forecast_module, "disk_figures", lambda path: small_disk)
    monkeypatch.setattr(reports, "disk_figures", lambda path: small_disk)
    low = dataclasses.replace(lc.settings, storage_alert_percent=51)
    monkeypatch.setattr(reports, "settings", lambda: low)
    monkeypatch.setattr("app.api.monitoring.settings", lambda: low)
    crossing = ada.get("/api/scraper/storage/forecast?days=90").json["alert_threshold_date"]
    assert crossing is not None
    fragment = ada.get("/storage/forecast?days=90", headers={"HX-Request": "true"}).text
    in_days = (date.fromisoformat(crossing) - lc.now().date()).days
    assert f"reaches 51 % (the alert line) on <strong>{crossing}</strong>, in {in_days} day" in fragment
    assert f"the disk reaches 51 % on {crossing}" in fragment and 'aria-current="true">90 days' in fragment
    assert '<tr class="crossing"><td>' + crossing in fragment
    # Already past the line: said so, not "reaches it tomorrow".
    monkeypatch.setattr(reports, "settings", lambda: dataclasses.replace(lc.settings, storage_alert_percent=40))
    fragment = ada.get("/storage/forecast", headers={"HX-Request": "true"}).text
    assert "The disk is already past 40 % (the alert line): 50 % used today" in fragment
    assert "<title>Storage forecast" in ada.get("/storage/forecast").text  # without JavaScript: a page of its own
    assert ada.get("/storage/forecast?days=%C2%B2").status_code == 400

    # A member sees the retention in force, not the site's forecast.
    page = max_.get("/storage").text
    assert "books-*" in page and "/storage/forecast" not in page
    assert max_.get("/storage/forecast").status_code == 403


def test_a_run_used_lately_is_deleted_no_sooner_than_its_policy_keeps_it_after_the_use(lc, make_run, clock):
    from app.lifecycle import policies
    from app.lifecycle.accesses import record_access

    used = shaped(lc, make_run, clock, days_ago=40, size=4000, archived=1000)  # 40 days: due, deleted on day 1
    shaped(lc, make_run, clock, days_ago=40, size=4000, archived=500)  # not used: deleted on day 1
    fields = {"name": "read", "scraper_pattern": "*", "archive_after_days": 7, "delete_after_days": 30}
    policies.add_policy(
        lc.session,
        policies.read_fields({**fields, "keep_after_access_days": 5}, partial=False),
        actor="ada",
        reason="r",
        now=clock.now,
    )
    lc.session.commit()
    record_access(lc.session, used, "downloaded", by="max", by_id=None, now=clock.now - timedelta(days=2))
    lc.session.commit()
    result = project(lc, clock, 6, total=100_000, used=10_000, deletion_strategy="hard")
    # Downloaded two days ago, kept while used within 5 days (the cleanup's rule): deleted on day 4, the
    # other on day 1.
    assert [d["archived_bytes"] for d in result["days"]] == [1000, 1000, 1000, 0, 0, 0]
    rules = retention.load_rules(lc.session, lc.settings)
    for day, kept in ((3, True), (4, False)):  # the cleanup agrees, day by day
        later = clock.now + timedelta(days=day)
        found = lc.session.scalar(select(Job.id).where(Job.id == used.id, retention.kept_by_use(rules, later)))
        assert (found is not None) is kept, day
