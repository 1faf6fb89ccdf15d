"""Registering runs, moving their status forward, reading and listing them (SPEC §7 shapes)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from app.extensions import db, settings
from app.lifecycle import deletion
from app.lifecycle.errors import RunConflict
from app.lifecycle.naming import folder_name_for
from app.lifecycle.runs import register_run
from app.models import Job, JobAudit, LifecycleEvent


def register(account, **body):
    body.setdefault("name", "books")
    body.setdefault("scraper", "books-toscrape")
    response = account.post("/api/scraper/jobs", json=body)
    assert response.status_code == 201, response.json
    return response.json


def test_register_creates_the_row_and_its_folder(member):
    run = register(member, name="Daily books", scraper="books-toscrape", stats={"pages": 0})
    job = db.session.get(Job, uuid.UUID(run["id"]))
    assert job.status == "pending"
    assert job.created_by == member.user.id
    assert job.folder_name == folder_name_for(job.created_at)
    folder = settings().jobs_path / f"{job.folder_name}_{job.id}"
    assert folder.is_dir()
    assert run["tier"] == "active" and run["restored"] is False
    assert run["folder_name"] == job.folder_name
    assert run["created_by"] == str(member.user.id)
    assert run["stats"] == {"pages": 0}
    assert run["created_at"].endswith("Z")


def test_register_answers_with_location(member):
    response = member.post("/api/scraper/jobs", json={"name": "n", "scraper": "s"})
    assert response.headers["Location"].endswith(f"/api/scraper/jobs/{response.json['id']}")


def test_register_takes_the_scrapers_own_id(member):
    job_id = str(uuid.uuid4())
    assert register(member, id=job_id)["id"] == job_id
    again = member.post("/api/scraper/jobs", json={"id": job_id, "name": "n", "scraper": "s"})
    assert again.status_code == 409
    assert again.json["error"]["code"] == "conflict"


def test_admin_imports_a_finished_run_with_its_history(admin):
    created = datetime(2025, 1, 13, 14, 30, 52, tzinfo=UTC)
    run = register(
        admin,
        status="completed",
        created_at="2025-01-13T14:30:52Z",
        started_at="2025-01-13T14:31:00+00:00",
        completed_at="2025-01-13T15:00:00",
    )
    assert run["status"] == "completed"
    assert run["folder_name"] == "20250113_143052"
    assert run["completed_at"] == "2025-01-13T15:00:00Z"
    assert run["size_bytes"] == 0
    job = db.session.get(Job, uuid.UUID(run["id"]))
    assert job.created_at == created
    assert (settings().jobs_path / f"20250113_143052_{job.id}").is_dir()


def test_import_measures_an_existing_folder(admin):
    job_id = uuid.uuid4()
    folder = settings().jobs_path / f"20250113_143052_{job_id}"
    (folder / "screens").mkdir(parents=True)
    (folder / "results.json").write_bytes(b"x" * 1000)
    (folder / "screens" / "a.png").write_bytes(b"y" * 24)
    run = register(admin, id=str(job_id), status="failed", created_at="2025-01-13T14:30:52Z")
    assert run["size_bytes"] == 1024
    assert (folder / "results.json").read_bytes() == b"x" * 1000


def test_status_moves_forward_and_stamps_times(member):
    run = register(member)
    url = f"/api/scraper/jobs/{run['id']}"
    running = member.patch(url, json={"status": "running", "stats": {"pages": 3}})
    assert running.status_code == 200
    assert running.json["status"] == "running" and running.json["started_at"] is not None
    assert running.json["completed_at"] is None
    folder = settings().jobs_path / f"{run['folder_name']}_{run['id']}"
    (folder / "results.json").write_text('{"items": []}')
    done = member.patch(url, json={"status": "completed", "stats": {"items": 0}})
    assert done.status_code == 200
    assert done.json["completed_at"] is not None
    assert done.json["stats"] == {"pages": 3, "items": 0}
    assert done.json["size_bytes"] == len('{"items": []}')


def test_pending_may_go_straight_to_a_finished_state(member):
    run = register(member)
    response = member.patch(f"/api/scraper/jobs/{run['id']}", json={"status": "cancelled"})
    assert response.status_code == 200
    assert response.json["started_at"] is not None and response.json["completed_at"] is not None


def test_status_never_moves_back(member):
    run = register(member)
    url = f"/api/scraper/jobs/{run['id']}"
    assert member.patch(url, json={"status": "running"}).status_code == 200
    back = member.patch(url, json={"status": "pending"})
    assert back.status_code == 409
    assert member.patch(url, json={"status": "failed"}).status_code == 200
    for later in ("completed", "cancelled", "running"):
        response = member.patch(url, json={"status": later})
        assert response.status_code == 409, later
    assert db.session.get(Job, uuid.UUID(run["id"])).status == "failed"


def test_same_status_again_is_harmless(member):
    run = register(member)
    url = f"/api/scraper/jobs/{run['id']}"
    member.patch(url, json={"status": "running"})
    again = member.patch(url, json={"status": "running", "stats": {"pages": 9}})
    assert again.status_code == 200 and again.json["stats"] == {"pages": 9}


def test_archived_or_deleted_runs_cannot_be_patched(member):
    run = register(member)
    job = db.session.get(Job, uuid.UUID(run["id"]))
    job.archived_at = datetime.now(UTC)
    db.session.commit()
    response = member.patch(f"/api/scraper/jobs/{run['id']}", json={"stats": {"a": 1}})
    assert response.status_code == 409
    assert "archived" in response.json["error"]["message"]


def test_get_one_run_shows_tier_and_history(member):
    run = register(member)
    job_id = uuid.UUID(run["id"])
    db.session.add(
        LifecycleEvent(job_id=job_id, action="archive", actor="scheduler", outcome="failed", error="disk full")
    )
    job = db.session.get(Job, job_id)
    job.archived_at = datetime.now(UTC)
    db.session.commit()
    response = member.get(f"/api/scraper/jobs/{run['id']}")
    assert response.status_code == 200
    assert response.json["tier"] == "archived"
    assert [(e["action"], e["outcome"], e["error"]) for e in response.json["events"]] == [
        ("archive", "failed", "disk full")
    ]


def test_list_shows_only_active_runs_newest_first(admin):
    older = register(admin, status="completed", created_at="2025-01-01T00:00:00Z")
    newer = register(admin)
    archived = register(admin, status="completed", created_at="2025-01-02T00:00:00Z")
    job = db.session.get(Job, uuid.UUID(archived["id"]))
    job.archived_at = datetime.now(UTC)
    db.session.commit()
    body = admin.get("/api/scraper/jobs").json
    assert [item["id"] for item in body["items"]] == [newer["id"], older["id"]]
    assert body["total"] == 2 and body["limit"] == 50 and body["offset"] == 0


def test_list_filters_and_pages(admin):
    for day in range(1, 6):
        register(admin, name=f"books day {day}", status="completed", created_at=f"2025-03-0{day}T12:00:00Z")
    register(admin, name="quotes", scraper="quotes-toscrape")
    get = admin.get
    assert get("/api/scraper/jobs?status=completed").json["total"] == 5
    assert get("/api/scraper/jobs?status=pending,running").json["total"] == 1
    assert get("/api/scraper/jobs?q=QUOTES").json["total"] == 1
    assert get("/api/scraper/jobs?scraper=quotes-toscrape").json["total"] == 1
    ranged = get("/api/scraper/jobs?start_date=2025-03-02&end_date=2025-03-04").json
    assert [item["name"] for item in ranged["items"]] == ["books day 4", "books day 3", "books day 2"]
    instant = get("/api/scraper/jobs?end_date=2025-03-02T12:00:00Z").json
    assert instant["total"] == 2
    paged = get("/api/scraper/jobs?status=completed&limit=2&offset=2").json
    assert [item["name"] for item in paged["items"]] == ["books day 3", "books day 2"]
    assert (paged["total"], paged["limit"], paged["offset"]) == (5, 2, 2)
    assert get("/api/scraper/jobs?limit=100000").json["limit"] == 500


def test_q_treats_wildcards_literally(admin):
    register(admin, name="100% done")
    register(admin, name="1000 done")
    assert admin.get("/api/scraper/jobs?q=100%25").json["total"] == 1
    assert admin.get("/api/scraper/jobs?q=0%20d_ne").json["total"] == 0


def test_finished_at_is_counted_from_completion(admin):
    now = datetime.now(UTC)
    run = register(admin, status="completed", created_at=(now - timedelta(days=9)).isoformat())
    job = db.session.get(Job, uuid.UUID(run["id"]))
    assert job.completed_at >= now - timedelta(seconds=5)


def test_a_hard_deleted_runs_id_cannot_be_registered_again(lc, make_run, admin, member):
    job = make_run(owner=admin.user.id, days_ago=40)
    job_id = job.id
    deletion.delete_run(lc, job_id, actor="ada", reason="private: customer asked", strategy="hard")
    assert lc.session.get(Job, job_id) is None

    for account in (member, admin):
        again = account.post("/api/scraper/jobs", json={"id": str(job_id), "name": "mine now", "scraper": "s"})
        assert again.status_code == 409, again.json
        assert again.json["error"]["code"] == "conflict"
        assert "deleted run" in again.json["error"]["message"]
    db.session.expire_all()
    assert db.session.get(Job, job_id) is None
    assert not list(settings().jobs_path.glob(f"*_{job_id}"))
    # The member reads neither the old history nor the deletion reason.
    assert member.get(f"/api/scraper/jobs/{job_id}").status_code == 404
    audit = member.get(f"/api/scraper/audit?job_id={job_id}").json
    assert "private: customer asked" not in str(audit)


def test_an_id_known_only_from_history_cannot_be_registered_again(lc, make_run):
    job = make_run(days_ago=40)
    job_id = job.id
    deletion.delete_run(lc, job_id, actor="ada", reason="gone", strategy="hard")
    lc.session.execute(delete(JobAudit).where(JobAudit.job_id == job_id))
    lc.session.commit()
    assert lc.session.scalar(select(LifecycleEvent.id).where(LifecycleEvent.job_id == job_id).limit(1))
    with pytest.raises(RunConflict, match="belonged to a deleted run"):
        register_run(lc.session, lc.settings.jobs_path, name="n", scraper="s", created_by=None, job_id=job_id)
    assert lc.session.get(Job, job_id) is None
