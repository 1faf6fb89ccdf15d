"""``/metrics``: Prometheus text with the figures of the tables, the disk and the queue."""

import re
from decimal import Decimal

import pytest
from redis import Redis

from app import tasks
from app.lifecycle import archival, deletion
from app.models import Alert


def samples(text):
    found = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = re.fullmatch(r"([a-z_]+)(\{[^}]*\})? (\S+)", line)
        assert match, f"not an exposition line: {line!r}"
        found[match[1] + (match[2] or "")] = float(match[3])
    return found


def test_metrics_expose_tiers_events_alerts_disk_and_the_queue(client, admin, lc, make_run, redis_db):
    active = make_run(days_ago=1)
    archived = make_run(days_ago=10)
    archival.archive_run(lc, archived.id, actor="test")
    trashed = make_run(days_ago=12)
    archival.archive_run(lc, trashed.id, actor="test")
    deletion.delete_run(lc, trashed.id, actor="test", reason="dup", strategy="soft")
    lc.session.add(Alert(kind="disk", severity="warning", message="x"))
    lc.session.commit()
    tasks.enqueue(tasks.archive_job, str(active.id), "test")
    response = client.get("/metrics", headers=admin.headers)
    assert response.status_code == 200 and response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE agar_lifecycle_events_total counter" in response.text
    found = samples(response.text)
    lc.session.expire_all()
    jobs = {job.id: lc.session.get(type(active), job.id) for job in (active, archived, trashed)}
    assert found['agar_runs{tier="active"}'] == 1 and found['agar_runs{tier="archived"}'] == 1
    assert found['agar_runs{tier="trash"}'] == 1 and found['agar_runs{tier="purged"}'] == 0
    assert found['agar_stored_bytes{tier="active"}'] == jobs[active.id].size_bytes
    assert found['agar_stored_bytes{tier="archived"}'] == jobs[archived.id].archive_size_bytes
    assert found['agar_lifecycle_events_total{action="archive",outcome="succeeded"}'] == 2
    assert found['agar_lifecycle_events_total{action="delete",outcome="succeeded"}'] == 1
    assert found['agar_alerts_open{kind="disk",severity="warning"}'] == 1
    assert found["agar_redis_up"] == 1 and found['agar_tasks{queue="agar",state="queued"}'] == 1
    assert 0 < found["agar_disk_free_bytes"] <= found["agar_disk_total_bytes"]
    assert client.post("/metrics", headers=admin.headers).status_code == 405


def test_metrics_say_redis_is_down_instead_of_failing(client, admin, lc, monkeypatch):
    from app.monitoring import metrics

    monkeypatch.setattr(metrics, "redis_connection", lambda: Redis(port=9, socket_connect_timeout=0.5))
    response = client.get("/metrics", headers=admin.headers)
    assert response.status_code == 200
    found = samples(response.text)
    assert found["agar_redis_up"] == 0 and not any(key.startswith("agar_tasks") for key in found)


@pytest.mark.parametrize("size", [477_690_001, 4_776_912_345, 9_007_199_254_740_991])
def test_byte_figures_are_written_with_every_digit(client, admin, lc, make_run, redis_db, size):
    """Beyond 32 bits and with many significant digits (up to 2**53 - 1): the text parses back exactly."""
    big = make_run(days_ago=1)
    big.size_bytes = size
    lc.session.commit()
    text = client.get("/metrics", headers=admin.headers).text
    written = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert Decimal(written['agar_stored_bytes{tier="active"}']) == size  # e.g. 4.77690001e+08, not 4.7769e+08
    assert Decimal(written['agar_runs{tier="active"}']) == 1


def test_metrics_are_for_an_admins_token_only(client, admin, member):
    """They sum every user's runs, the disk and the alerts (issue 10, point 7)."""
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert "agar_runs" not in anonymous.text
    assert client.get("/metrics", headers=member.headers).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer agar_wrong"}).status_code == 401
    assert client.get("/metrics", headers=admin.headers).status_code == 200


def test_metrics_show_the_storage_figures_the_api_and_the_storage_page_share(app, admin, lc, make_run, redis_db):
    """One cache of the site's figures (30 s): the API, the storage page and /metrics agree, and a
    scrape does not recount every run when the figures are fresh."""
    from app.monitoring.figures import STATS_CACHE_KEY
    from tests.test_web import Browser

    make_run(days_ago=1)
    assert client_stats(admin)["tiers"]["active"]["runs"] == 1  # counted, and cached
    make_run(days_ago=1)
    make_run(days_ago=2)
    assert samples(admin.get("/metrics").text)['agar_runs{tier="active"}'] == 1  # the cached figures
    browser = Browser(app.test_client())
    browser.login("ada")
    assert active_runs_on_the_storage_page(browser.get("/storage").text) == 1
    redis_db.delete(STATS_CACHE_KEY)  # the figures expire: the next door to ask recounts, for all
    assert samples(admin.get("/metrics").text)['agar_runs{tier="active"}'] == 3
    assert active_runs_on_the_storage_page(browser.get("/storage").text) == 3
    assert client_stats(admin)["tiers"]["active"]["runs"] == 3


def client_stats(account):
    return account.get("/api/scraper/storage/stats").json


def active_runs_on_the_storage_page(page):
    return int(re.search(r'<span class="sub">Active</span><strong>[^<]*</strong><span class="sub">(\d+) runs', page)[1])
