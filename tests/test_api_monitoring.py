"""Audit, events, storage stats and trend, alerts: filters, visibility, bad input."""

from datetime import UTC, datetime, timedelta

import pytest

from app.lifecycle import archival, deletion
from app.models import Alert, StorageSnapshot


@pytest.fixture
def history(lc, make_run, member, other_member):
    mine = make_run(days_ago=40, owner=member.user.id)
    theirs = make_run(days_ago=40, owner=other_member.user.id)
    for job in (mine, theirs):
        archival.archive_run(lc, job.id, actor="scheduler")
    deletion.delete_run(lc, mine.id, actor="max", reason="tidy up")
    deletion.delete_run(lc, theirs.id, actor="ada", reason="GDPR", strategy="hard")
    return mine, theirs


def test_audit_shows_members_their_runs_and_admins_all(member, admin, history):
    mine, theirs = history
    own = member.get("/api/scraper/audit").json
    assert [(i["job_id"], i["strategy"], i["deletion_reason"]) for i in own["items"]] == [
        (str(mine.id), "soft", "tidy up")
    ]
    everything = admin.get("/api/scraper/audit").json
    assert everything["total"] == 2
    hard = admin.get("/api/scraper/audit?strategy=hard").json["items"]
    assert [(i["job_id"], i["deleted_by"]) for i in hard] == [(str(theirs.id), "ada")]
    assert admin.get(f"/api/scraper/audit?job_id={mine.id}").json["total"] == 1
    assert admin.get("/api/scraper/audit?deleted_by=max").json["total"] == 1


def test_events_filter_and_visibility(member, admin, history):
    mine, theirs = history
    mine_events = member.get("/api/scraper/events").json["items"]
    assert {e["job_id"] for e in mine_events} == {str(mine.id)}
    assert [e["action"] for e in mine_events] == ["delete", "archive"]
    assert admin.get("/api/scraper/events?action=archive&outcome=succeeded").json["total"] == 2
    assert admin.get(f"/api/scraper/events?job_id={theirs.id}").json["total"] == 2  # history outlives the run
    assert admin.get("/api/scraper/events?actor=ada").json["total"] == 1


@pytest.mark.parametrize(
    "query",
    [
        "/audit?strategy=shred",
        "/audit?job_id=42",
        "/audit?start_date=x",
        "/events?action=explode",
        "/events?outcome=maybe",
        "/events?limit=0",
        "/storage/trend?offset=-1",
        "/alerts?limit=abc",
    ],
)
def test_bad_filters_are_400(admin, query):
    response = admin.get(f"/api/scraper{query}")
    assert response.status_code == 400 and response.json["error"]["message"]


def test_storage_stats_add_up(admin, lc, make_run):
    runs = [make_run(days_ago=days) for days in (1, 2, 10, 12, 14, 16)]
    from app.lifecycle.archival import restore_run
    from app.lifecycle.deletion import delete_run, purge_run
    from app.lifecycle.passes import archive_old_runs
    from app.lifecycle.runs import load_run

    archive_old_runs(lc)
    delete_run(lc, runs[4].id, actor="t", reason="trash it", strategy="soft")
    delete_run(lc, runs[5].id, actor="t", reason="purge it", strategy="soft")
    purge_run(lc, runs[5].id, actor="t")
    restore_run(lc, runs[3].id, actor="t")  # a working copy: its own tier; its archive stays archived
    jobs = [load_run(lc, run.id) for run in runs]
    stats = admin.get("/api/scraper/storage/stats").json
    assert stats["tiers"] == {
        "active": {"runs": 2, "bytes": jobs[0].size_bytes + jobs[1].size_bytes},
        "archived": {"runs": 2, "bytes": jobs[2].archive_size_bytes + jobs[3].archive_size_bytes},
        "trash": {"runs": 1, "bytes": jobs[4].archive_size_bytes},
        "restored": {"runs": 1, "bytes": jobs[3].size_bytes},
        "purged": {"runs": 1, "bytes": jobs[5].archive_size_bytes},
    }
    compression = stats["compression"]
    assert compression["original_bytes"] > compression["archived_bytes"] > 0
    assert compression["saved_bytes"] == compression["original_bytes"] - compression["archived_bytes"]
    # Plain JSON numbers on every database (PostgreSQL sums BIGINT into NUMERIC).
    assert isinstance(compression["saved_ratio"], float) and isinstance(compression["original_bytes"], int)
    assert compression["original_bytes"] == jobs[2].size_bytes + jobs[3].size_bytes
    assert stats["archive_success_rate"] == {"days": 30, "succeeded": 4, "failed": 0, "rate": 1.0}
    assert stats["disk"]["total_bytes"] > stats["disk"]["free_bytes"] > 0


def test_storage_trend_is_a_time_series(admin, lc):
    now = datetime.now(UTC)
    for hours in (3, 2, 1):
        lc.session.add(StorageSnapshot(taken_at=now - timedelta(hours=hours), active_bytes=hours * 100))
    lc.session.commit()
    body = admin.get("/api/scraper/storage/trend").json
    assert [item["active_bytes"] for item in body["items"]] == [300, 200, 100]
    since = (now - timedelta(hours=2, minutes=30)).isoformat().replace("+00:00", "Z")
    assert admin.get(f"/api/scraper/storage/trend?start_date={since}").json["total"] == 2


def test_alerts_open_and_recent(admin, lc):
    now = datetime.now(UTC)
    lc.session.add_all(
        [
            Alert(kind="storage", severity="warning", message="disk 85 % full"),
            Alert(kind="archive", severity="error", message="3 runs failed", resolved_at=now - timedelta(days=1)),
            Alert(kind="archive", severity="error", message="old", resolved_at=now - timedelta(days=30)),
        ]
    )
    lc.session.commit()
    items = admin.get("/api/scraper/alerts").json["items"]
    assert {(a["message"], a["open"]) for a in items} == {("disk 85 % full", True), ("3 runs failed", False)}


def test_storage_stats_are_cached_for_a_short_while(admin, lc, make_run, redis_db):
    first = admin.get("/api/scraper/storage/stats").json
    make_run(days_ago=1)
    assert admin.get("/api/scraper/storage/stats").json == first  # shared, not recomputed
    from app.monitoring.figures import STATS_CACHE_KEY

    redis_db.delete(STATS_CACHE_KEY)  # nothing cached: the next request computes
    fresh = admin.get("/api/scraper/storage/stats").json
    assert fresh["tiers"]["active"]["runs"] == first["tiers"]["active"]["runs"] + 1
    assert fresh["as_of"] >= first["as_of"]


def test_stale_stats_are_answered_while_one_request_remakes_them(admin, lc, make_run, redis_db, monkeypatch):
    import time

    from app.monitoring import figures

    computed = []
    real_compute = figures.storage_stats
    monkeypatch.setattr(figures, "storage_stats", lambda *args: computed.append(1) or real_compute(*args))
    first = admin.get("/api/scraper/storage/stats").json
    make_run(days_ago=1)
    later = time.time() + figures.STATS_TTL + 1
    monkeypatch.setattr(figures, "_clock", lambda: later)  # the figures are now stale
    redis_db.set(figures.STATS_REFRESH_KEY, "1")  # another request is remaking them
    assert admin.get("/api/scraper/storage/stats").json == first  # answered at once, stale
    assert len(computed) == 1
    redis_db.delete(figures.STATS_REFRESH_KEY)  # nobody is: this request remakes them
    fresh = admin.get("/api/scraper/storage/stats").json
    assert fresh["tiers"]["active"]["runs"] == first["tiers"]["active"]["runs"] + 1
    assert len(computed) == 2 and not redis_db.exists(figures.STATS_REFRESH_KEY)
    assert admin.get("/api/scraper/storage/stats").json == fresh and len(computed) == 2  # fresh again


def test_event_counts_stop_at_the_cap(admin, lc, monkeypatch):
    import uuid

    from app.api import monitoring
    from app.models import LifecycleEvent

    monkeypatch.setattr(monitoring, "COUNT_CAP", 5)
    job_id = uuid.uuid4()
    lc.session.add_all([LifecycleEvent(job_id=job_id, action="archive", actor="t", outcome="failed") for _ in range(7)])
    lc.session.commit()
    body = admin.get("/api/scraper/events?limit=2").json
    assert (body["total"], body["total_capped"], len(body["items"])) == (5, True, 2)
    exact = admin.get("/api/scraper/events?outcome=succeeded").json
    assert exact["total"] == 0 and "total_capped" not in exact


def test_members_see_their_own_storage_figures_and_no_alerts(member, admin, lc, make_run):
    # The site's figures sum every user's runs, the disk and snapshots that have no owner.
    theirs = make_run({"a.txt": "x" * 1000}, days_ago=40, owner=admin.user.id)
    archival.archive_run(lc, theirs.id, actor="scheduler")
    own = make_run({"b.txt": "y" * 300}, days_ago=2, owner=member.user.id)
    lc.session.add(Alert(kind="disk_usage", severity="critical", message="disk /srv/agar 97 % full"))
    lc.session.commit()
    mine = member.get("/api/scraper/storage/stats").json
    assert mine["tiers"]["active"] == {"runs": 1, "bytes": archival.load_run(lc, own.id).size_bytes or 0}
    assert mine["tiers"]["archived"]["runs"] == 0 and mine["disk"] is None
    assert mine["archive_success_rate"]["succeeded"] == 0  # the admin's archival is not theirs
    site = admin.get("/api/scraper/storage/stats").json
    assert site["tiers"]["archived"]["runs"] == 1 and site["disk"]["total_bytes"] > 0
    assert site["archive_success_rate"]["succeeded"] == 1
    for path, what in (("/api/scraper/storage/trend", "storage figures"), ("/api/scraper/alerts", "alerts")):
        refused = member.get(path)
        assert refused.status_code == 403
        assert refused.json == {
            "error": {
                "code": "forbidden",
                "message": f"only admins see {what}: they cover every user's runs and the disk",
            }
        }
        assert admin.get(path).status_code == 200
    assert admin.get("/api/scraper/alerts").json["items"][0]["message"] == "disk /srv/agar 97 % full"


def test_the_storage_page_shows_members_their_runs_and_alerts_to_admins_only(app, member, admin, lc, make_run):
    from tests.test_web import Browser

    job = make_run(days_ago=40, owner=admin.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    lc.session.add(Alert(kind="disk_usage", severity="critical", message="disk /srv/agar 97 % full"))
    lc.session.commit()
    as_member = Browser(app.test_client())
    assert as_member.login("max").status_code == 302
    page = as_member.get("/storage")
    assert page.status_code == 200 and "of your runs" in page.text
    assert "/srv/agar" not in page.text and "% used" not in page.text and "Storage check" not in page.text
    assert '<span class="sub">Archived</span><strong>0 B</strong><span class="sub">0 runs</span>' in page.text
    runs = as_member.get("/runs").text
    assert "open alerts" not in runs
    as_admin = Browser(app.test_client())
    assert as_admin.login("ada").status_code == 302
    assert '<span class="count alarm" title="open alerts">1 alert</span>' in as_admin.get("/runs").text
    site = as_admin.get("/storage").text
    assert "disk /srv/agar 97 % full" in site and "% used" in site and '<span class="sub">1 runs</span>' in site
