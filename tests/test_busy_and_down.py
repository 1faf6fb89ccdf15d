"""A busy run answers 409 "run busy" and a Redis that does not answer 503, never a 500, and neither changes the run."""

import re

import pytest
from sqlalchemy import select

from app.auth.sessions import open_session
from app.extensions import db
from app.lifecycle import archival, deletion
from app.models import Job, LifecycleEvent
from tests.test_web import Browser, csrf_of

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json and set(response.json) == {"error"}
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


def reason_on_page(response) -> str:
    found = re.search(r'role="alert">([^<]+)<', response.text)
    assert found, response.text[:2000]
    return found.group(1)


def fresh(job_id) -> Job:
    db.session.expire_all()
    return db.session.get(Job, job_id)


@pytest.fixture
def dashboard(app, admin):
    browser = Browser(app.test_client())
    assert browser.login(admin.user.username).status_code == 302
    return browser


@pytest.fixture
def soft_deleted(lc, make_run, admin):
    job = make_run(owner=admin.user.id)
    archival.archive_run(lc, job.id, actor="ada")
    deletion.delete_run(lc, job.id, actor="ada", reason="tidy", strategy="soft")
    return fresh(job.id)


# -- a run someone else is working on -------------------------------------------------------------


def test_an_undelete_while_the_run_is_locked_answers_409_run_busy_and_a_later_one_succeeds(lc, admin, soft_deleted):
    trash = lc.settings.scraper_data_path / soft_deleted.archive_path
    with lc.locks.run(soft_deleted.id):  # another undelete (or the cleanup pass) at work on it
        response = admin.post(f"/api/scraper/jobs/{soft_deleted.id}/undelete")
        assert_error(response, 409, "run_busy")
        assert "worked on" in response.json["error"]["message"]
    assert fresh(soft_deleted.id).deleted_at is not None and trash.is_file()
    skipped = db.session.scalars(select(LifecycleEvent).where(LifecycleEvent.action == "undelete")).all()
    assert [event.outcome for event in skipped] == ["skipped"]
    again = admin.post(f"/api/scraper/jobs/{soft_deleted.id}/undelete")
    assert again.status_code == 200 and again.json["tier"] == "archived"
    assert fresh(soft_deleted.id).deleted_at is None and not trash.exists()


def test_a_dashboard_undelete_while_the_run_is_locked_is_a_409_page(lc, dashboard, soft_deleted):
    with lc.locks.run(soft_deleted.id):
        for htmx in (False, True):
            response = dashboard.post(f"/runs/{soft_deleted.id}/undelete", data={"reason": "oops"}, htmx=htmx)
            assert response.status_code == 409
            assert "worked on elsewhere" in reason_on_page(response)
    assert fresh(soft_deleted.id).deleted_at is not None


def test_a_retention_change_while_the_run_is_locked_answers_409_in_the_api_and_the_dashboard(
    lc, admin, dashboard, make_run
):
    job = make_run(owner=admin.user.id, days_ago=1)
    with lc.locks.run(job.id):
        response = admin.post(f"/api/scraper/jobs/{job.id}/retention", json={"reason": "audit", "keep_forever": True})
        assert_error(response, 409, "run_busy")
        page = dashboard.post(f"/runs/{job.id}/retention", data={"reason": "audit", "keep_forever": "yes"})
        assert page.status_code == 409 and "worked on elsewhere" in reason_on_page(page)
    assert fresh(job.id).keep_forever is False


# -- Redis does not answer ------------------------------------------------------------------------


@pytest.fixture
def runs_in_every_tier(lc, make_run, admin, soft_deleted):
    active = make_run(owner=admin.user.id, days_ago=1)
    archived = make_run(owner=admin.user.id)
    archival.archive_run(lc, archived.id, actor="ada")
    return {"active": fresh(active.id), "archived": fresh(archived.id), "deleted": soft_deleted}


def snapshot(job_id) -> dict:
    job = fresh(job_id)
    return {
        column: getattr(job, column)
        for column in ("archived_at", "archive_path", "restored_at", "deleted_at", "retain_until", "keep_forever")
    }


def test_api_actions_answer_503_when_redis_is_down_and_change_nothing(make_app, admin, runs_in_every_tier):
    runs = runs_in_every_tier
    before = {tier: snapshot(job.id) for tier, job in runs.items()}
    down = make_app(REDIS_URL=UNREACHABLE_REDIS).test_client()
    calls = [
        ("post", f"/api/scraper/jobs/{runs['active'].id}/archive", None),
        ("post", f"/api/scraper/jobs/{runs['archived'].id}/restore", None),
        ("delete", f"/api/scraper/jobs/{runs['archived'].id}", {"reason": "tidy"}),
        ("post", f"/api/scraper/jobs/{runs['active'].id}/retention", {"reason": "audit", "keep_forever": True}),
        ("post", f"/api/scraper/jobs/{runs['deleted'].id}/undelete", None),
        ("get", "/api/scraper/tasks/0123456789abcdef", None),
    ]
    for method, url, body in calls:
        response = getattr(down, method)(url, headers=admin.headers, json=body)
        assert_error(response, 503, "unavailable")
        assert "Redis" in response.json["error"]["message"]
    assert {tier: snapshot(job.id) for tier, job in runs.items()} == before


def test_dashboard_actions_are_a_503_page_when_redis_is_down_and_change_nothing(make_app, admin, runs_in_every_tier):
    runs = runs_in_every_tier
    before = {tier: snapshot(job.id) for tier, job in runs.items()}
    browser = Browser(make_app(REDIS_URL=UNREACHABLE_REDIS).test_client())
    with browser._client.session_transaction() as session:
        open_session(session, admin.user)
    browser.token = csrf_of(browser.get(f"/runs/{runs['active'].id}"))
    posts = [
        (f"/runs/{runs['active'].id}/archive", {}),
        (f"/runs/{runs['archived'].id}/restore", {}),
        (f"/runs/{runs['archived'].id}/delete", {"reason": "tidy", "confirm": "yes"}),
        (f"/runs/{runs['active'].id}/retention", {"reason": "audit", "keep_forever": "yes"}),
        (f"/runs/{runs['deleted'].id}/undelete", {}),
    ]
    for url, form in posts:
        for htmx in (False, True):
            response = browser.post(url, data=form, htmx=htmx)
            assert response.status_code == 503, (url, response.text[:500])
            assert "Redis" in reason_on_page(response)
    for url in ("/tasks/0123456789abcdef?job=" + str(runs["active"].id), f"/runs/{runs['active'].id}?task=abc"):
        response = browser.get(url)
        assert response.status_code == 503 and "Redis" in reason_on_page(response)
    assert {tier: snapshot(job.id) for tier, job in runs.items()} == before


def test_api_reads_and_logins_keep_working_while_redis_is_down(make_app, admin, runs_in_every_tier):
    """The token and login throttles count in Redis; without it they count in the process, and reads go on."""
    down = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    headers = {"Authorization": f"Bearer {admin.token}"}
    listing = down.get("/api/scraper/jobs", headers=headers)
    assert listing.status_code == 200 and listing.json["total"] >= 1
    assert down.get("/api/scraper/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
