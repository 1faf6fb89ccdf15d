"""Malformed ids, dates, bodies and limits get a JSON 4xx and change nothing."""

import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db, settings
from app.models import Job


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
