"""``/healthz``: database, Redis, disk, live RQ workers and the scheduler heartbeat; 503 when one is down."""

from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue, Worker

from app.schedule import HEARTBEAT_KEY, beat, last_heartbeat, run_scheduler_loop
from app.tasks import QUEUE_NAME


@pytest.fixture
def live_worker(redis_db):
    """A registered RQ worker, as a running ``worker.py`` is (registered, not yet dead)."""
    worker = Worker([Queue(QUEUE_NAME, connection=redis_db)], connection=redis_db)
    worker.register_birth()
    yield worker
    worker.register_death()


@pytest.fixture
def everything_up(live_worker, redis_db):
    beat(redis_db)


def test_healthy(admin, everything_up):
    response = admin.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    checks = response.json["checks"]
    assert {name for name, check in checks.items() if check["ok"]} == {
        "database",
        "redis",
        "disk",
        "workers",
        "scheduler",
    }
    assert checks["disk"]["free_bytes"] > 0
    assert checks["workers"] == {"ok": True, "count": 1}
    heartbeat = datetime.fromisoformat(checks["scheduler"]["last_heartbeat"])
    assert abs((datetime.now(UTC) - heartbeat).total_seconds()) < 10


def test_no_live_worker_is_503(admin, redis_db, live_worker):
    beat(redis_db)
    live_worker.register_death()  # the worker stopped: registered once, no longer there
    response = admin.get("/healthz")
    assert response.status_code == 503 and response.json["status"] == "unavailable"
    assert response.json["checks"]["workers"] == {
        "ok": False,
        "count": 0,
        "error": "no live RQ worker on the 'agar' queue",
    }
    assert response.json["checks"]["scheduler"]["ok"] is True


def test_a_stale_scheduler_heartbeat_is_503(admin, redis_db, live_worker):
    stale = datetime.now(UTC) - timedelta(seconds=65)  # more than 3 polls of 20 s ago
    redis_db.set(HEARTBEAT_KEY, stale.isoformat())
    response = admin.get("/healthz")
    assert response.status_code == 503
    scheduler = response.json["checks"]["scheduler"]
    assert scheduler["ok"] is False and datetime.fromisoformat(scheduler["last_heartbeat"]) == stale
    assert scheduler["error"].startswith("no scheduler heartbeat for 6")
    assert response.json["checks"]["workers"]["ok"] is True


def test_no_scheduler_heartbeat_at_all_is_503(admin, redis_db, live_worker):
    response = admin.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["scheduler"] == {
        "ok": False,
        "last_heartbeat": None,
        "error": "no scheduler heartbeat",
    }


def test_the_scheduler_loop_beats_at_start_and_after_every_poll(app, admin, redis_db, live_worker):
    seen = []

    def should_stop():
        seen.append(last_heartbeat(redis_db))
        return len(seen) > 1  # one poll, then stop

    run_scheduler_loop(app, redis_db, poll_seconds=0.05, should_stop=should_stop)
    at_start, after_poll = seen[0], last_heartbeat(redis_db)
    assert at_start is not None and after_poll > at_start
    assert 0 < redis_db.ttl(HEARTBEAT_KEY) <= 24 * 3600
    response = admin.get("/healthz")
    assert response.status_code == 200
    assert datetime.fromisoformat(response.json["checks"]["scheduler"]["last_heartbeat"]) == after_poll


def test_redis_down_is_503(make_app, admin):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/healthz", headers=admin.headers)
    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["redis"]["ok"] is False and checks["database"]["ok"] is True
    assert checks["workers"] == checks["scheduler"] == {"ok": False, "error": "unknown: Redis does not answer"}


def test_missing_storage_is_503(app, client, tmp_path, everything_up):
    data = app.extensions["agar.settings"].scraper_data_path
    data.rename(tmp_path / "moved")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["disk"]["ok"] is False
    assert response.json["checks"]["workers"]["ok"] is True


def test_database_down_is_503(make_app, tmp_path):
    # Tests build apps without the start-up connection check (create_app(check_database=True) in
    # wsgi.py and worker.py), so this app stands for a database lost after the processes started.
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["database"]["ok"] is False


CHECK_NAMES = {"database", "redis", "disk", "workers", "scheduler"}


def test_anonymous_callers_see_check_names_and_ok_only_never_hosts_or_paths(make_app, client, member, tmp_path):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    root = app.extensions["agar.settings"].scraper_data_path
    root.rename(tmp_path / "moved")
    for headers in ({}, member.headers, {"Authorization": "Bearer not-a-token"}):
        response = app.test_client().get("/healthz", headers=headers)
        assert response.status_code == 503
        assert response.json == {
            "status": "unavailable",
            "checks": {
                "database": {"ok": True},
                "redis": {"ok": False},
                "disk": {"ok": False},
                "workers": {"ok": False},
                "scheduler": {"ok": False},
            },
        }
        text = response.get_data(as_text=True)
        assert "127.0.0.1" not in text and str(root) not in text and "Error" not in text


def test_an_admins_token_sees_the_errors(make_app, admin, tmp_path):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    root = app.extensions["agar.settings"].scraper_data_path
    root.rename(tmp_path / "moved")
    checks = app.test_client().get("/healthz", headers=admin.headers).json["checks"]
    assert "127.0.0.1:1" in checks["redis"]["error"]
    assert checks["disk"] == {"ok": False, "error": f"{root} does not exist"}


def test_a_healthy_answer_to_anyone_holds_no_figures(client, everything_up):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {name: {"ok": True} for name in CHECK_NAMES}}
