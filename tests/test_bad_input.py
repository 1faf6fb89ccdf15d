"""Malformed ids, dates, bodies and limits get a JSON 4xx (a page on the dashboard) and change nothing."""

import re
import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db, settings
from app.lifecycle import archival, deletion
from app.models import Job, LifecycleEvent
from tests.test_web import Browser


def job_count():
    return db.session.scalar(select(func.count()).select_from(Job))


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert set(response.json) == {"error"}
    assert set(response.json["error"]) == {"code", "message"}
    assert response.json["error"]["message"]
    if code:
        assert response.json["error"]["code"] == code


@pytest.mark.parametrize("bad_id", ["42", "not-a-uuid", "8dafff366b15478a88fc19cdbbcfca5f", "..", "%00", "%2e%2e"])
@pytest.mark.parametrize("method", ["get", "patch"])
def test_malformed_ids(member, bad_id, method):
    kwargs = {"json": {"status": "running"}} if method == "patch" else {}
    assert_error(getattr(member, method)(f"/api/scraper/jobs/{bad_id}", **kwargs), 400, "invalid_id")


def test_a_path_instead_of_an_id_matches_no_route(member):
    assert_error(member.get("/api/scraper/jobs/..%2F..%2Fetc%2Fpasswd"), 404, "not_found")


def test_unknown_id_is_404(member):
    assert_error(member.get(f"/api/scraper/jobs/{uuid.uuid4()}"), 404, "not_found")
    assert_error(member.patch(f"/api/scraper/jobs/{uuid.uuid4()}", json={"status": "running"}), 404)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=",
        "offset=-1",
        "offset=x",
        "limit=99999999999999999999",
        "start_date=yesterday",
        "start_date=2025-13-01",
        "end_date=2025-02-30",
        "end_date=9999-12-31T23:59:59.999999-23:59",
        "start_date=0001-01-01T00:00:00%2B05:00",
        "status=done",
        "q=" + "x" * 201,
    ],
)
def test_malformed_list_parameters(member, query):
    assert_error(member.get(f"/api/scraper/jobs?{query}"), 400, "bad_request")


def test_far_dates_that_are_valid_are_accepted(member):
    assert member.get("/api/scraper/jobs?end_date=9999-12-30&start_date=0001-01-01").status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([], 400),
        ("a string", 400),
        ({}, 400),
        ({"name": "x"}, 400),
        ({"scraper": "x"}, 400),
        ({"name": "", "scraper": "s"}, 400),
        ({"name": 5, "scraper": "s"}, 400),
        ({"name": "n" * 256, "scraper": "s"}, 400),
        ({"name": "a\x00b", "scraper": "s"}, 400),
        ({"name": "n", "scraper": "s\x00"}, 400),
        ({"name": "n", "scraper": "s", "stats": [1, 2]}, 400),
        ({"name": "n", "scraper": "s", "id": "nope"}, 400),
        ({"name": "n", "scraper": "s", "id": 7}, 400),
        ({"name": "n", "scraper": "s", "colour": "red"}, 400),
    ],
)
def test_malformed_registration_bodies(member, body, status):
    assert_error(member.post("/api/scraper/jobs", json=body), status)
    assert job_count() == 0
    assert list(settings().jobs_path.iterdir()) == []


def test_registration_needs_json(member):
    assert_error(member.post("/api/scraper/jobs", data="name=x", content_type="text/plain"), 415)
    assert_error(member.post("/api/scraper/jobs", data="{not json", content_type="application/json"), 400)
    assert job_count() == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"status": "finished"}, 400),
        ({"status": "completed", "created_at": "last tuesday"}, 400),
        ({"status": "completed", "created_at": 1736778652}, 400),
        ({"status": "completed", "created_at": "2025-01-13T14:30:52Z", "completed_at": "2025-01-12T00:00:00Z"}, 422),
        ({"status": "running", "created_at": "2025-01-13T14:30:52Z", "started_at": "2025-01-13T14:00:00Z"}, 422),
        ({"status": "running", "completed_at": "2025-01-13T14:30:52Z"}, 422),
        ({"status": "completed", "created_at": "2999-01-01T00:00:00Z"}, 422),
        ({"started_at": "2025-01-13T14:30:52Z"}, 422),
        ({"created_at": "0999-01-01T00:00:00Z"}, 422),  # found by the schemathesis run
    ],
)
def test_bad_imports(admin, body, status):
    assert_error(admin.post("/api/scraper/jobs", json={"name": "n", "scraper": "s", **body}), status)
    assert job_count() == 0
    assert list(settings().jobs_path.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"status": "done"}, 400),
        ({"status": 3}, 400),
        ({"stats": "lots"}, 400),
        ({"owner": "me"}, 400),
        ([], 400),
    ],
)
def test_malformed_patches(member, body, status):
    run = member.post("/api/scraper/jobs", json={"name": "n", "scraper": "s"}).json
    assert_error(member.patch(f"/api/scraper/jobs/{run['id']}", json=body), status)
    assert db.session.get(Job, uuid.UUID(run["id"])).status == "pending"


def test_oversized_body_is_413(member):
    huge = {"name": "n", "scraper": "s", "stats": {"blob": "x" * (2 * 1024 * 1024)}}
    assert_error(member.post("/api/scraper/jobs", json=huge), 413)
    assert job_count() == 0


def test_unknown_api_path_and_method_answer_json(member):
    assert_error(member.get("/api/scraper/nowhere"), 404)
    assert_error(member.client.put("/api/scraper/jobs", headers=member.headers), 405)


# -- the ends of the calendar --------------------------------------------------------------------

DATED_LISTS = ["/api/scraper/jobs", "/api/scraper/jobs/archived", "/api/scraper/audit", "/api/scraper/events"]


@pytest.mark.parametrize("path", DATED_LISTS + ["/api/scraper/storage/trend"])
def test_a_range_ending_on_the_last_day_of_the_calendar_is_refused_and_says_why(admin, path):
    # An end date covers its whole day, so it stops where the next day starts: after 9999-12-31 there is none.
    for end in ("9999-12-31", "9999-12-31T23:59:59.999999"):
        response = admin.get(f"{path}?end_date={end}")
        assert_error(response, 400, "bad_request")
        assert "before 9999-12-31" in response.json["error"]["message"]


@pytest.mark.parametrize("path", DATED_LISTS)
def test_the_first_day_of_the_calendar_starts_a_range_that_finds_real_rows(admin, lc, make_run, path):
    make_run(owner=admin.user.id, days_ago=1)  # an active run
    job = make_run(owner=admin.user.id)
    archival.archive_run(lc, job.id, actor="ada")  # an archived run, with lifecycle events
    if path == "/api/scraper/audit":
        deletion.delete_run(lc, job.id, actor="ada", reason="r", strategy="soft")
    response = admin.get(f"{path}?start_date=0001-01-01&end_date=9999-12-30")
    assert response.status_code == 200, response.text
    assert response.json["total"] >= 1
    assert admin.get(f"{path}?end_date=0001-01-01").json["total"] == 0
    assert_error(admin.get(f"{path}?end_date=9999-12-31"), 400)


# -- nesting and NUL bytes -------------------------------------------------------------------------


def nested(levels: int) -> str:
    """JSON text of ``levels`` objects one inside the next (our own client's orjson writes at most 255)."""
    return '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize("levels", [32, 300, 600])
def test_stats_nested_past_32_levels_are_refused_and_nothing_is_stored(member, levels):
    body = '{"name": "n", "scraper": "s", "stats": ' + nested(levels) + "}"
    response = member.post("/api/scraper/jobs", data=body, content_type="application/json")
    assert_error(response, 400, "bad_request")
    assert "32 levels" in response.json["error"]["message"]
    assert job_count() == 0
    assert list(settings().jobs_path.iterdir()) == []


def test_stats_31_levels_deep_are_kept_and_read_back(member):
    body = '{"name": "n", "scraper": "s", "stats": ' + nested(31) + "}"
    created = member.post("/api/scraper/jobs", data=body, content_type="application/json")
    assert created.status_code == 201, created.text
    stats = db.session.get(Job, uuid.UUID(created.json["id"])).stats
    for _ in range(30):
        stats = stats["a"]
    assert stats == {"a": 1}


@pytest.mark.parametrize("levels", [33, 600])
def test_a_patch_with_stats_nested_past_32_levels_is_refused_and_keeps_the_old_stats(member, levels):
    run = member.post("/api/scraper/jobs", json={"name": "n", "scraper": "s", "stats": {"pages": 3}}).json
    response = member.patch(
        f"/api/scraper/jobs/{run['id']}", data='{"stats": ' + nested(levels) + "}", content_type="application/json"
    )
    assert_error(response, 400, "bad_request")
    db.session.expire_all()
    assert db.session.get(Job, uuid.UUID(run["id"])).stats == {"pages": 3}
    assert member.get(f"/api/scraper/jobs/{run['id']}").json["stats"] == {"pages": 3}


@pytest.mark.parametrize(
    "url",
    [
        "/api/scraper/jobs?q=a%00b",
        "/api/scraper/jobs?scraper=a%00b",
        "/api/scraper/jobs/archived?q=%00",
        "/api/scraper/audit?deleted_by=ada%00",
        "/api/scraper/events?actor=ada%00",
        "/api/scraper/events?action=archive&actor%00=ada",
    ],
)
def test_a_nul_byte_in_a_query_parameter_is_refused(admin, url):
    # PostgreSQL text cannot hold a NUL: psycopg refused the query and the caller got a 500.
    response = admin.get(url)
    assert_error(response, 400, "bad_request")
    assert "NUL" in response.json["error"]["message"]


@pytest.mark.parametrize(
    "stats",
    [{"a\x00": 1}, {"a": "b\x00"}, {"a": ["ok", "b\x00"]}, {"a": {"b": {"c\x00d": None}}}],
)
def test_a_nul_byte_in_stats_is_refused_on_registration_and_update(member, stats):
    response = member.post("/api/scraper/jobs", json={"name": "n", "scraper": "s", "stats": stats})
    assert_error(response, 400, "bad_request")
    assert "NUL" in response.json["error"]["message"]
    assert job_count() == 0
    run = member.post("/api/scraper/jobs", json={"name": "n", "scraper": "s", "stats": {"pages": 3}}).json
    assert_error(member.patch(f"/api/scraper/jobs/{run['id']}", json={"stats": stats}), 400, "bad_request")
    db.session.expire_all()
    assert db.session.get(Job, uuid.UUID(run["id"])).stats == {"pages": 3}


# -- the dashboard ---------------------------------------------------------------------------------


def reason_on_page(response) -> str:
    """The error a dashboard page shows (its ``role="alert"`` line)."""
    found = re.search(r'role="alert">([^<]+)<', response.text)
    assert found, response.text[:2000]
    return found.group(1)


@pytest.fixture
def dashboard(app, admin):
    browser = Browser(app.test_client())
    assert browser.login(admin.user.username).status_code == 302
    return browser


def test_an_archive_page_ending_on_the_last_day_of_the_calendar_is_a_400_page_that_says_why(
    dashboard, admin, lc, make_run
):
    job = make_run(owner=admin.user.id)
    archival.archive_run(lc, job.id, actor="ada")
    response = dashboard.get("/archive?to=9999-12-31")
    assert response.status_code == 400
    assert "9999-12-30" in reason_on_page(response)
    for query in ("from=0001-01-01&to=9999-12-30", "from=0001-01-01", "to=9999-12-30"):
        page = dashboard.get(f"/archive?{query}")
        assert page.status_code == 200 and str(job.id) in page.text
    assert dashboard.get("/archive?from=9999-12-31").status_code == 200
    assert str(job.id) not in dashboard.get("/archive?from=9999-12-31").text


@pytest.mark.parametrize(
    "url",
    ["/runs?q=a%00b", "/runs?tier=active&q=%00", "/archive?from=2025-01-01%00", "/audit?action=%00", "/runs/%00"],
)
def test_a_nul_byte_in_a_dashboard_query_is_a_400_page_that_says_why(dashboard, url):
    response = dashboard.get(url)
    assert response.status_code == 400
    assert "NUL" in reason_on_page(response)


def test_a_nul_byte_in_a_dashboard_form_is_a_400_page_and_changes_nothing(dashboard, admin, make_run):
    job = make_run(owner=admin.user.id)
    form = {"reason": "keep\x00it", "keep_forever": "yes"}
    for htmx in (False, True):
        response = dashboard.post(f"/runs/{job.id}/retention", data=form, htmx=htmx)
        assert response.status_code == 400
        assert "NUL" in reason_on_page(response)
    db.session.expire_all()
    assert db.session.get(Job, job.id).keep_forever is False
    assert (
        db.session.scalar(select(func.count()).select_from(LifecycleEvent).where(LifecycleEvent.action == "extend"))
        == 0
    )


def test_a_nul_byte_in_the_login_form_is_a_400_page(app):
    browser = Browser(app.test_client())
    browser.token = re.search(r'name="csrf-token" content="([^"]+)"', browser.get("/login").text).group(1)
    response = browser.post("/login", data={"username": "ada\x00", "password": "x"})
    assert response.status_code == 400
    assert "NUL" in reason_on_page(response)
