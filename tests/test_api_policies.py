"""Retention policies over the API (SPEC §9): managed by admins with reasons, dry runs that save
nothing, the next passes' preview, and every run's JSON saying which policy governs it and why."""

from sqlalchemy import select

from app.lifecycle import archival
from app.lifecycle.runs import load_run
from app.models import PolicyChange, RetentionPolicy

BOOKS = {"name": "books", "scraper_pattern": "books-*", "archive_after_days": 2, "reason": "books age fast"}


def test_admins_manage_policies_and_every_change_names_its_actor_and_reason(app, admin, member):
    assert member.post("/api/scraper/policies", json=BOOKS).status_code == 403
    created = admin.post("/api/scraper/policies", json=BOOKS)
    assert created.status_code == 201, created.json
    policy = created.json
    assert created.headers["Location"].endswith(f"/api/scraper/policies/{policy['id']}")
    assert (policy["statuses"], policy["delete_after_days"], policy["keep_last"], policy["legal_hold"]) == (
        [],
        None,
        0,
        False,
    )
    assert (policy["created_by"], policy["reason"]) == (admin.user.username, "books age fast")
    assert member.get("/api/scraper/policies").json["items"] == [policy]  # members read them: they explain runs
    url = f"/api/scraper/policies/{policy['id']}"
    assert member.patch(url, json={"keep_last": 3, "reason": "r"}).status_code == 403
    changed = admin.patch(url, json={"keep_last": 3, "statuses": ["completed"], "reason": "keep three"})
    assert changed.status_code == 200 and changed.json["keep_last"] == 3 and changed.json["statuses"] == ["completed"]
    assert admin.get(url).json == changed.json
    assert member.delete(url, json={"reason": "r"}).status_code == 403
    removed = admin.delete(url, json={"reason": "not needed"})
    assert removed.status_code == 200 and removed.json["name"] == "books"
    assert admin.get(url).status_code == 404
    history = admin.get("/api/scraper/policies/changes").json
    assert [(c["action"], c["actor"], c["reason"]) for c in history["items"]] == [
        ("remove", admin.user.username, "not needed"),
        ("set", admin.user.username, "keep three"),
        ("add", admin.user.username, "books age fast"),
    ]
    assert history["items"][1]["before"]["keep_last"] == 0 and history["items"][1]["after"]["keep_last"] == 3


def test_bad_asks_are_clear_4xx_and_change_nothing(app, admin):
    cases = [
        ({**BOOKS, "archive_after_days": "soon"}, 400, "whole number"),
        ({**BOOKS, "delete_after_days": 1}, 400, "more than archive_after_days"),
        ({**BOOKS, "statuses": 5}, 400, "list"),
        ({**BOOKS, "statuses": ["running"]}, 400, "finished"),
        ({**BOOKS, "reason": ""}, 400, "reason"),
        ({**BOOKS, "colour": "red"}, 400, "unknown field"),
        ({**BOOKS, "name": ["x"]}, 400, "non-empty text"),
        ({k: v for k, v in BOOKS.items() if k != "scraper_pattern"}, 400, "scraper_pattern"),
    ]
    for body, status, words in cases:
        response = admin.post("/api/scraper/policies", json=body)
        assert response.status_code == status and words in response.json["error"]["message"], (body, response.json)
    assert admin.post("/api/scraper/policies", json=BOOKS).status_code == 201
    taken = admin.post("/api/scraper/policies", json=BOOKS)
    assert taken.status_code == 409 and "exists already" in taken.json["error"]["message"]
    assert admin.get("/api/scraper/policies/abc").status_code == 400
    assert admin.get("/api/scraper/policies/99999").status_code == 404
    assert admin.get("/api/scraper/policies/99999999999999999999999").status_code == 404
    assert admin.get("/api/scraper/policies").json["total"] == 1


def test_a_dry_run_answers_the_effect_and_saves_nothing(app, admin, lc, make_run):
    for days in (3, 4):
        job = make_run(scraper="books-toscrape", days_ago=days)
        load_run(lc, job.id).size_bytes = 1000
    lc.session.commit()
    effect = admin.post("/api/scraper/policies?dry_run=1", json=BOOKS)
    assert effect.status_code == 200, effect.json
    assert effect.json["archive"] == {"runs": 2, "bytes": 2000}
    assert effect.json["change"]["archive"] == {"runs": 2, "bytes": 2000}
    figures = {"archive_runs": 2, "archive_bytes": 2000, "delete_runs": 0, "delete_bytes": 0}
    assert effect.json["by_scraper"] == [{"scraper": "books-toscrape", **figures, "change": figures}]
    assert lc.session.scalars(select(RetentionPolicy)).all() == []
    assert lc.session.scalars(select(PolicyChange)).all() == []
    policy = admin.post("/api/scraper/policies", json=BOOKS).json
    url = f"/api/scraper/policies/{policy['id']}"
    slower = admin.patch(url + "?dry_run=1", json={"archive_after_days": 30, "reason": "r"})
    assert slower.json["change"]["archive"] == {"runs": -2, "bytes": -2000}
    nothing = {"archive_runs": 0, "archive_bytes": 0, "delete_runs": 0, "delete_bytes": 0}
    assert slower.json["by_scraper"] == [  # the scraper the change takes out of the pass, with what it loses
        {"scraper": "books-toscrape", **nothing, "change": {**nothing, "archive_runs": -2, "archive_bytes": -2000}}
    ]
    assert admin.get(url).json["archive_after_days"] == 2  # unchanged
    gone = admin.delete(url + "?dry_run=1", json={"reason": "r"})
    assert gone.json["archive"] == {"runs": 0, "bytes": 0} and admin.get(url).status_code == 200
    preview = admin.get("/api/scraper/lifecycle/preview")
    assert preview.status_code == 200 and preview.json["archive"] == {"runs": 2, "bytes": 2000}


def test_the_preview_of_the_next_passes_is_for_admins(app, member):
    assert member.get("/api/scraper/lifecycle/preview").status_code == 403


def test_a_runs_json_names_its_policy_and_why_it_is_kept(app, admin, lc, make_run):
    older = make_run(scraper="books-toscrape", days_ago=20, owner=admin.user.id)
    newest = make_run(scraper="books-toscrape", days_ago=10, owner=admin.user.id)
    other = make_run(scraper="quotes", days_ago=1, owner=admin.user.id)
    admin.post("/api/scraper/policies", json={**BOOKS, "keep_last": 1})
    run = admin.get(f"/api/scraper/jobs/{newest.id}").json
    assert (run["policy"], run["retention_reason"]) == ("books", "kept: newest 1 of books-toscrape")
    listed = {item["id"]: item for item in admin.get("/api/scraper/jobs").json["items"]}
    assert listed[str(newest.id)]["retention_reason"] == "kept: newest 1 of books-toscrape"
    assert listed[str(older.id)]["retention_reason"] == "archived 2 days after it finished (policy 'books'): due now"
    assert listed[str(other.id)]["policy"] is None
    assert listed[str(other.id)]["retention_reason"].startswith(
        "archived 7 days after it finished (ARCHIVE_AFTER_DAYS)"
    )


def test_a_legal_hold_refuses_deletion_at_the_api_with_its_own_code(app, admin, lc, make_run):
    job = make_run(days_ago=40, owner=admin.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    lc.session.commit()
    hold = {"name": "litigation", "scraper_pattern": "*", "archive_after_days": 1, "legal_hold": True, "reason": "case"}
    assert admin.post("/api/scraper/policies", json=hold).status_code == 201
    refused = admin.delete(f"/api/scraper/jobs/{job.id}", json={"reason": "old", "strategy": "hard"})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "legal_hold"
    assert "litigation" in refused.json["error"]["message"]
    run = admin.get(f"/api/scraper/jobs/{job.id}").json
    assert run["retention_reason"].startswith("held: legal hold of policy 'litigation'")


def test_a_download_or_a_look_at_the_run_page_keeps_a_run_its_owner_uses(app, admin, member, lc, make_run):
    from app.lifecycle.policy import runs_due_for_cleanup
    from app.lifecycle.retention import load_rules
    from app.models import RunAccess

    job = make_run(days_ago=40, owner=member.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    lc.session.commit()
    body = {"name": "used", "scraper_pattern": "*", "archive_after_days": 1, "delete_after_days": 2}
    assert (
        admin.post("/api/scraper/policies", json={**body, "keep_after_access_days": 7, "reason": "r"}).status_code
        == 201
    )
    due = {j.id for j in lc.session.scalars(runs_due_for_cleanup(load_rules(lc.session, lc.settings), lc.now()))}
    assert due == {job.id}
    assert member.get(f"/api/scraper/jobs/{job.id}").status_code == 200  # reading its record is not a use
    assert lc.session.scalars(select(RunAccess)).all() == []
    assert member.get(f"/api/scraper/jobs/{job.id}/archive/download").status_code == 200
    run = member.get(f"/api/scraper/jobs/{job.id}").json
    assert run["retention_reason"] == "kept: downloaded today by its owner (kept 7 days after a use)"
    lc.session.expire_all()
    due = {j.id for j in lc.session.scalars(runs_due_for_cleanup(load_rules(lc.session, lc.settings), lc.now()))}
    assert due == set()
