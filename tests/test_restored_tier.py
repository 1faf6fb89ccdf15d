"""Restored working copies are a tier of their own: stats API, snapshots, /metrics, charts, OpenAPI."""

import json
import re
from datetime import timedelta

from app.lifecycle import archival
from app.lifecycle.disk import folder_size
from app.lifecycle.naming import run_folder_path
from app.lifecycle.runs import load_run
from app.models import StorageSnapshot
from app.monitoring.figures import storage_stats
from app.monitoring.snapshots import take_snapshot
from app.web import charts
from tests.test_metrics import samples
from tests.test_web import Browser

BIG = {f"screens/page-{i}.png": bytes(range(256)) * 4096 for i in range(3)}  # 3 MiB of working copy


def unescape(attribute):
    return json.loads(attribute.replace("&#34;", '"').replace("&amp;", "&"))


def test_a_restored_copy_counts_once_as_restored_everywhere_the_storage_is_shown(
    app, client, admin, member, lc, make_run, clock, redis_db
):
    active = make_run(days_ago=1, owner=member.user.id)
    restored = make_run(BIG, days_ago=10, owner=member.user.id)
    archival.archive_run(lc, restored.id, actor="t")
    assert archival.restore_run(lc, restored.id, actor="max") == "succeeded"
    job, active = load_run(lc, restored.id), load_run(lc, active.id)
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    copy = folder_size(folder)
    assert copy == job.size_bytes >= 3 << 20  # the working copy in jobs/ weighs what the run did

    # The stats API (the site's, from the cache /metrics and the storage page share; and a member's own).
    site = admin.get("/api/scraper/storage/stats").json
    assert site["tiers"]["restored"] == {"runs": 1, "bytes": copy}
    assert site["tiers"]["active"] == {"runs": 1, "bytes": active.size_bytes}  # not counted as active too
    assert site["tiers"]["archived"] == {"runs": 1, "bytes": job.archive_size_bytes}  # the archive stays
    assert member.get("/api/scraper/storage/stats").json["tiers"]["restored"] == {"runs": 1, "bytes": copy}

    # The hourly snapshot, and the trend API that serves it.
    snapshot, taken = take_snapshot(lc.session, lc.settings.scraper_data_path, clock.now)
    assert taken and (snapshot.restored_count, snapshot.restored_bytes) == (1, copy)
    assert snapshot.active_bytes == active.size_bytes and snapshot.demo is False
    item = admin.get("/api/scraper/storage/trend").json["items"][0]
    assert (item["restored_bytes"], item["restored_count"], item["demo"]) == (copy, 1, False)

    # /metrics: a tier label value "restored".
    found = samples(client.get("/metrics", headers=admin.headers).text)
    assert found['agar_runs{tier="restored"}'] == 1 and found['agar_stored_bytes{tier="restored"}'] == copy
    assert found['agar_stored_bytes{tier="active"}'] == active.size_bytes

    # The charts' data: the bar of now and the trend over time each have a Restored series.
    now_chart = json.loads(charts.tiers_now(site))["data"][0]
    assert now_chart["x"][-1] == "Restored" and now_chart["y"][-1] == round(copy / 1024**2, 2)
    take_snapshot(lc.session, lc.settings.scraper_data_path, clock.now + timedelta(hours=1))
    snapshots = lc.session.query(StorageSnapshot).order_by(StorageSnapshot.taken_at).all()
    trend = {trace["name"]: trace for trace in json.loads(charts.tiers_over_time(snapshots))["data"]}
    assert set(trend) == {"Active", "Archived", "Trash", "Restored"}
    assert trend["Restored"]["y"] == [round(copy / 1024**2, 2)] * 2

    # The storage page draws them and shows the tier's tile.
    browser = Browser(app.test_client())
    assert browser.login("ada").status_code == 302
    page = browser.get("/storage").text
    figures = dict(re.findall(r'id="chart-([a-z-]+)" class="plot" data-figure="([^"]+)"', page))
    assert unescape(figures["tiers-now"])["data"][0]["x"] == ["Active", "Archived", "Trash", "Restored"]
    assert "Restored" in {trace["name"] for trace in unescape(figures["trend"])["data"]}
    assert re.search(r"Restored copies</span><strong>3\.\d MB</strong><span class=\"sub\">1 working copy<", page)

    # Once the copy expires, it is gone from the figures.
    clock.advance(days=8)
    assert archival.expire_restore(lc, job.id, actor="scheduler") == "succeeded"
    after = storage_stats(lc.session, lc.settings.scraper_data_path)
    assert after["tiers"]["restored"] == {"runs": 0, "bytes": 0}
    assert after["tiers"]["archived"]["runs"] == 1 and after["tiers"]["active"]["runs"] == 1


def test_the_openapi_document_follows_the_restored_tier(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    snapshot = schemas["Snapshot"]
    for column in ("restored_bytes", "restored_count"):
        assert snapshot["properties"][column] == {"type": "integer"} and column in snapshot["required"]
    assert snapshot["properties"]["demo"] == {"type": "boolean"}
    tiers = schemas["StorageStats"]["properties"]["tiers"]
    assert tiers["required"] == ["active", "archived", "trash", "restored", "purged"]
    assert schemas["ScraperFigures"]["properties"]["tiers"]["required"] == ["active", "archived", "trash", "restored"]
