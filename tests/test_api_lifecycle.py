"""The API's lifecycle endpoints: archived list, actions (202 + tasks), undelete, retention, tasks."""

import shutil
import uuid
from datetime import timedelta

import pytest
from rq import Queue

from app import tasks
from app.lifecycle import archival, deletion
from app.models import Job, LifecycleEvent
from tests.support import run_burst_worker


@pytest.fixture
def archived_run(lc, make_run, member):
    def factory(days_ago=10, owner=None, **kwargs):
        job = make_run(days_ago=days_ago, owner=(owner or member).user.id, **kwargs)
        archival.archive_run(lc, job.id, actor="scheduler")
        return archival.load_run(lc, job.id)

    return factory


def test_archived_list_filters_on_the_runs_start_and_pages(member, other_member, admin, archived_run, make_run):
    runs = [archived_run(days_ago=d) for d in (10, 12, 14)]
    archived_run(owner=other_member)
    make_run(days_ago=1, owner=member.user.id)  # active: not listed
    body = member.get("/api/scraper/jobs/archived").json
    assert [item["id"] for item in body["items"]] == [str(r.id) for r in runs]
    assert body["total"] == 3 and all(item["tier"] == "archived" for item in body["items"])
    assert admin.get("/api/scraper/jobs/archived").json["total"] == 4
    middle = runs[1].created_at
    ranged = member.get(f"/api/scraper/jobs/archived?start_date={middle.date()}&end_date={middle.date()}").json
    assert [item["id"] for item in ranged["items"]] == [str(runs[1].id)]
    paged = member.get("/api/scraper/jobs/archived?limit=1&offset=2").json
    assert [item["id"] for item in paged["items"]] == [str(runs[2].id)]
    assert member.get("/api/scraper/jobs/archived?end_date=nope").status_code == 400


def test_archive_now_answers_202_with_a_task_a_worker_then_runs(member, lc, make_run, redis_db, process_env):
    job = make_run(days_ago=0.1, owner=member.user.id)
    lc.session.commit()
    response = member.post(f"/api/scraper/jobs/{job.id}/archive", json={"reason": "needed cold"})
    assert response.status_code == 202
    task_id = response.json["task_id"]
    assert response.json == {"task_id": task_id, "status": "queued"}
    assert response.headers["Location"].endswith(f"/api/scraper/tasks/{task_id}")
    assert member.get(f"/api/scraper/tasks/{task_id}").json == {"task_id": task_id, "status": "queued", "progress": 0}
    run_burst_worker(process_env, timeout=120)
    done = member.get(f"/api/scraper/tasks/{task_id}").json
    assert done["status"] == "finished" and done["progress"] == 100
    assert done["result"] == {"job_id": str(job.id), "outcome": "succeeded"}
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).archived_at is not None
    event = lc.session.query(LifecycleEvent).filter_by(job_id=job.id).one()
    assert (event.actor, event.reason) == ("max", "needed cold")


def test_a_failed_task_reports_its_error(member, lc, make_run, redis_db, process_env):
    job = make_run(days_ago=10, owner=member.user.id)
    lc.session.commit()
    task_id = member.post(f"/api/scraper/jobs/{job.id}/archive").json["task_id"]
    archival.archive_run(lc, job.id, actor="scheduler")  # meanwhile archived, then its folder…
    deletion.delete_run(lc, job.id, actor="ada", reason="gone", strategy="hard")  # …and the run vanish
    run_burst_worker(process_env, timeout=120)
    body = member.get(f"/api/scraper/tasks/{task_id}").json
    assert body["status"] == "retrying"  # the first attempt failed; the next waits for its backoff
    assert "RunNotFound" in body["error"]


@pytest.mark.parametrize(("tier", "action"), [("archived", "archive"), ("active", "restore"), ("running", "archive")])
def test_actions_in_the_wrong_tier_are_409(member, archived_run, make_run, tier, action):
    job = (
        archived_run()
        if tier == "archived"
        else make_run(days_ago=1, owner=member.user.id, status="running" if tier == "running" else "completed")
    )
    response = member.post(f"/api/scraper/jobs/{job.id}/{action}")
    assert response.status_code == 409
    assert response.json["error"]["code"] in ("wrong_tier", "not_finished")


def test_restore_enqueues_for_archived_runs(member, archived_run, redis_db):
    job = archived_run()
    response = member.post(f"/api/scraper/jobs/{job.id}/restore")
    assert response.status_code == 202
    queued = Queue(tasks.QUEUE_NAME, connection=redis_db).fetch_job(response.json["task_id"])
    assert queued.func_name == "app.tasks.restore_job" and queued.args[:2] == (str(job.id), "max")


def test_delete_needs_a_reason_and_admins_alone_choose_hard(member, admin, archived_run, redis_db):
    job = archived_run()
    url = f"/api/scraper/jobs/{job.id}"
    assert member.delete(url, json={}).status_code == 400
    assert member.delete(url, json={"reason": ""}).status_code == 400
    assert member.delete(url, json={"reason": "x", "strategy": "hard"}).status_code == 403
    assert admin.delete(url, json={"reason": "x", "strategy": "shred"}).status_code == 400
    soft = member.delete(url, json={"reason": "not needed"})
    assert soft.status_code == 202
    queued = Queue(tasks.QUEUE_NAME, connection=redis_db).fetch_job(soft.json["task_id"])
    assert queued.args == (str(job.id), "max", "not needed", "soft")
    hard = admin.delete(url, json={"reason": "GDPR", "strategy": "hard"})
    assert hard.status_code == 202


def test_members_cannot_hard_delete_through_the_setting(make_app, redis_db, clock):
    app = make_app(DELETION_STRATEGY="hard")
    from app.auth.users import create_user
    from app.extensions import db

    with app.app_context():
        _user, _pw, token = create_user(db.session, "mia", "correct horse battery", admin=False)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        run = client.post("/api/scraper/jobs", json={"name": "n", "scraper": "s"}, headers=headers).json
        client.patch(f"/api/scraper/jobs/{run['id']}", json={"status": "completed"}, headers=headers)
        response = client.delete(f"/api/scraper/jobs/{run['id']}", json={"reason": "x"}, headers=headers)
        assert response.status_code == 403


def test_undelete_is_synchronous(member, lc, archived_run):
    job = archived_run()
    assert member.post(f"/api/scraper/jobs/{job.id}/undelete").status_code == 409
    deletion.delete_run(lc, job.id, actor="max", reason="oops")
    response = member.post(f"/api/scraper/jobs/{job.id}/undelete", json={"reason": "needed after all"})
    assert response.status_code == 200
    assert response.json["tier"] == "archived" and response.json["retain_until"] is not None


def test_retention(member, archived_run, clock):
    job = archived_run()
    url = f"/api/scraper/jobs/{job.id}/retention"
    until = (clock.now + timedelta(days=90)).isoformat()
    response = member.post(url, json={"retain_until": until, "reason": "quarterly audit"})
    assert response.status_code == 200 and response.json["retain_until"] is not None
    assert member.post(url, json={"keep_forever": True, "reason": "legal"}).json["keep_forever"] is True
    assert member.post(url, json={"keep_forever": True}).status_code == 400
    assert member.post(url, json={"reason": "x"}).status_code == 400
    assert member.post(url, json={"keep_forever": "yes", "reason": "x"}).status_code == 400
    assert member.post(url, json={"retain_until": "soon", "reason": "x"}).status_code == 400
    assert member.post(url, json={"retain_until": "2001-01-01T00:00:00Z", "reason": "x"}).status_code == 422


def test_tasks_bad_unknown_and_someone_elses(member, other_member, archived_run):
    assert member.get("/api/scraper/tasks/bad%20id!").status_code == 400
    assert member.get(f"/api/scraper/tasks/{uuid.uuid4()}").status_code == 404
    job = archived_run()
    task_id = member.post(f"/api/scraper/jobs/{job.id}/restore").json["task_id"]
    assert other_member.get(f"/api/scraper/tasks/{task_id}").status_code == 404


EMPTY_BODIES = {
    "no body": {},
    "empty body typed JSON": {"data": b"", "content_type": "application/json"},
    "JSON type, no length": {"headers": {"Content-Type": "application/json"}},
    "Content-Length 0": {"data": b"", "headers": {"Content-Type": "application/json", "Content-Length": "0"}},
    "empty object": {"json": {}},
}


@pytest.mark.parametrize("body", EMPTY_BODIES.values(), ids=EMPTY_BODIES.keys())
def test_archive_restore_and_undelete_accept_an_empty_body(member, lc, make_run, archived_run, redis_db, body):
    queue = Queue(tasks.QUEUE_NAME, connection=redis_db)
    active = make_run(days_ago=1, owner=member.user.id)
    archived = archived_run()
    deleted = archived_run()
    deletion.delete_run(lc, deleted.id, actor="max", reason="oops")

    archive = member.post(f"/api/scraper/jobs/{active.id}/archive", **body)
    assert archive.status_code == 202, archive.json
    assert queue.fetch_job(archive.json["task_id"]).args == (str(active.id), "max", None)
    restore = member.post(f"/api/scraper/jobs/{archived.id}/restore", **body)
    assert restore.status_code == 202, restore.json
    assert queue.fetch_job(restore.json["task_id"]).args == (str(archived.id), "max", None)
    undelete = member.post(f"/api/scraper/jobs/{deleted.id}/undelete", **body)
    assert undelete.status_code == 200, undelete.json
    assert undelete.json["tier"] == "archived" and undelete.json["deleted_at"] is None
    lc.session.expire_all()
    assert lc.session.get(Job, deleted.id).deleted_at is None
    # A body that is there must still be a JSON object with known fields.
    url = f"/api/scraper/jobs/{archived.id}/restore"
    assert member.post(url, data=b"[]", content_type="application/json").json["error"]["message"] == (
        "the body must be a JSON object"
    )
    assert member.post(url, data=b"reason=x", content_type="text/plain").status_code == 415
    assert member.post(url, json={"reason": "x", "force": True}).status_code == 400
    assert queue.count == 2  # the archive and the restore above, nothing more


def test_a_task_waiting_for_its_retry_shows_retrying_the_attempt_and_the_last_error(
    member, admin, lc, make_run, redis_db, process_env
):
    job = make_run(days_ago=10, owner=member.user.id)
    folder = lc.settings.jobs_path / f"{job.folder_name}_{job.id}"
    shutil.rmtree(folder)  # the run's folder is gone: archiving it fails
    lc.session.commit()
    task = tasks.enqueue(tasks.archive_job, str(job.id), "max", owner=str(member.user.id))
    assert admin.get(f"/api/scraper/tasks/{task.id}").json["status"] == "queued"
    run_burst_worker(process_env, timeout=120)  # the first attempt fails; RQ schedules the second in 30 s
    body = admin.get(f"/api/scraper/tasks/{task.id}").json
    assert body["status"] == "retrying", body
    # Attempts count from 1: the first failed, the second is next, of 1 + Retry(max=3) in all.
    assert (body["attempt"], body["max_attempts"], body["progress"]) == (2, 4, 0)
    assert str(job.id) in body["error"] and "missing" in body["error"], body["error"]  # the cause, in one line
    assert member.get(f"/api/scraper/tasks/{task.id}").json == body
    lc.session.expire_all()
    event = lc.session.query(LifecycleEvent).filter_by(job_id=job.id, action="archive").one()
    assert event.outcome == "failed" and lc.session.get(Job, job.id).archived_at is None
