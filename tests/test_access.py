"""Who may call what: anonymous / member / another member / admin, for every route so far."""

import uuid

import pytest

from app.extensions import db
from app.models import Job

ROUTES = [
    ("get", "/api/scraper/jobs", None),
    ("post", "/api/scraper/jobs", {"name": "n", "scraper": "s"}),
    ("get", "/api/scraper/jobs/{id}", None),
    ("patch", "/api/scraper/jobs/{id}", {"stats": {"seen": 1}}),
]


@pytest.fixture
def owned_run(member):
    return member.post("/api/scraper/jobs", json={"name": "owned", "scraper": "s"}).json


def call(client, method, url, body, headers=None):
    kwargs = {"headers": headers or {}}
    if body is not None:
        kwargs["json"] = body
    return getattr(client, method)(url, **kwargs)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YWRhOnB3"}, {"Authorization": "Bearer "}],
)
def test_anonymous_and_bad_tokens_get_401(client, owned_run, method, path, body, headers):
    response = call(client, method, path.format(id=owned_run["id"]), body, headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_owner_may_use_every_route(member, owned_run, method, path, body):
    response = call(member.client, method, path.format(id=owned_run["id"]), body, member.headers)
    assert response.status_code in (200, 201)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_admin_may_use_every_route_on_anyones_run(admin, owned_run, method, path, body):
    response = call(admin.client, method, path.format(id=owned_run["id"]), body, admin.headers)
    assert response.status_code in (200, 201)


@pytest.mark.parametrize(("method", "path", "body"), [r for r in ROUTES if "{id}" in r[1]])
def test_another_member_cannot_see_or_touch_the_run(other_member, owned_run, method, path, body):
    response = call(other_member.client, method, path.format(id=owned_run["id"]), body, other_member.headers)
    assert response.status_code == 404
    assert db.session.get(Job, uuid.UUID(owned_run["id"])).stats is None


def test_lists_show_members_their_own_runs_and_admins_all(member, other_member, admin, owned_run):
    other_member.post("/api/scraper/jobs", json={"name": "theirs", "scraper": "s"})
    assert [r["name"] for r in member.get("/api/scraper/jobs").json["items"]] == ["owned"]
    assert [r["name"] for r in other_member.get("/api/scraper/jobs").json["items"]] == ["theirs"]
    assert sorted(r["name"] for r in admin.get("/api/scraper/jobs").json["items"]) == ["owned", "theirs"]


@pytest.mark.parametrize("field", ["status", "created_at", "started_at", "completed_at"])
def test_only_admins_import_runs(member, field):
    value = "completed" if field == "status" else "2025-01-13T14:30:52Z"
    response = member.post("/api/scraper/jobs", json={"name": "n", "scraper": "s", field: value})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_a_rotated_token_stops_working(member, runner):
    assert member.get("/api/scraper/jobs").status_code == 200
    result = runner.invoke(args=["users", "rotate-token", "max"])
    assert result.exit_code == 0
    assert member.get("/api/scraper/jobs").status_code == 401
    new = result.output.strip().splitlines()[-1]
    assert member.client.get("/api/scraper/jobs", headers={"Authorization": f"Bearer {new}"}).status_code == 200
