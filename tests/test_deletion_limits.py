"""The deletion safety limit: a cleanup pass deletes no more than the limit, holds the rest behind a
critical alert, and waits for an admin's "Confirm deletions" (dashboard, API, CLI)."""

import dataclasses
import re

import pytest
from sqlalchemy import select

from app.lifecycle import archival, deletion, passes
from app.lifecycle.deletion_limits import (
    NothingHeld,
    confirm_deletions,
    deletion_limit,
    held_alert,
    pending_confirmation,
)
from app.lifecycle.errors import BadInput
from app.models import Alert, Job


def archived_runs(lc, make_run, *days_ago, owner=None):
    runs = []
    for days in days_ago:
        job = make_run(days_ago=days, owner=owner)
        archival.archive_run(lc, job.id, actor="scheduler")
        runs.append(job.id)
    return runs


def limited(lc, per_pass, share):
    lc.settings = dataclasses.replace(lc.settings, delete_max_per_pass=per_pass, delete_max_share=share)


def deleted(lc, job_ids):
    lc.session.expire_all()
    return {job_id for job_id in job_ids if lc.session.get(Job, job_id).deleted_at is not None}


def alerts(lc):
    lc.session.expire_all()
    return list(lc.session.scalars(select(Alert).where(Alert.kind == "deletion_limit").order_by(Alert.id)))


@pytest.mark.parametrize(
    ("per_pass", "share", "archived", "limit"),
    [
        (1000, 0.2, 10_000, 1000),  # the count binds
        (1000, 0.2, 4_999, 999),  # the share binds: 999.8 rounded down
        (1000, 0.29, 100, 29),  # 0.29 * 100 is 28.999999999999996 in floats: counted exactly
        (1000, 0.2, 4, 1),  # a fifth of 4 is 0.8: never below one run
        (1000, 0.2, 0, 1),
        (5, 1.0, 100, 5),
    ],
)
def test_the_limit_is_the_smaller_of_the_count_and_the_share_never_below_one_run(per_pass, share, archived, limit):
    assert deletion_limit(per_pass, share, archived) == limit


def test_a_pass_over_the_limit_deletes_the_oldest_holds_the_rest_and_then_waits(lc, make_run, clock):
    due = archived_runs(lc, make_run, 36, 35, 34, 33, 32, 31)  # oldest first
    recent = archived_runs(lc, make_run, 10, 11)
    limited(lc, per_pass=3, share=0.5)  # 8 archived: half is 4, so the count (3) binds

    report = passes.cleanup_old_runs(lc)

    assert report.outcomes["succeeded"] == 3 and deleted(lc, due + recent) == set(due[:3])
    assert report.extra["deletion_limit"] == {
        "due": 6,
        "allowed": 3,
        "held": 3,
        "limit": 3,
        "archived": 8,
        "confirmed_by": None,
        "waiting": False,
    }
    [alert] = alerts(lc)
    assert alert.severity == "critical" and alert.resolved_at is None
    assert alert.message.startswith(
        "6 runs were due for deletion, more than the deletion limit allows: the cleanup pass deletes the 3 oldest "
        "and holds 3. The limit is 3 runs a pass (DELETE_MAX_PER_PASS=3, DELETE_MAX_SHARE=0.5 of the 8 archived runs)."
    )
    assert "Confirm deletions" in alert.message and "flask runs confirm-deletions" in alert.message
    assert alert.data["subject"] == "cleanup" and (alert.data["due"], alert.data["held"]) == (6, 3)

    clock.advance(days=1)  # the next night: 5 archived, 3 of them due, limit 2; nobody has confirmed
    dry = passes.cleanup_old_runs(lc, dry_run=True)
    assert dry.lines == [] and dry.extra["deletion_limit"]["waiting"] is True
    waiting = passes.cleanup_old_runs(lc)
    assert waiting.outcomes["succeeded"] == 0 and deleted(lc, due + recent) == set(due[:3])
    assert waiting.extra["deletion_limit"] == {
        "due": 3,
        "allowed": 0,
        "held": 3,
        "limit": 2,
        "archived": 5,
        "confirmed_by": None,
        "waiting": True,
    }
    [same] = alerts(lc)  # refreshed, not a second alert
    assert same.id == alert.id and same.resolved_at is None and "holds all 3: it waits for an admin" in same.message


def test_a_confirmation_lets_the_next_pass_delete_what_was_held_once(lc, make_run, clock):
    due = archived_runs(lc, make_run, 35, 34, 33, 32)
    limited(lc, per_pass=1, share=1.0)
    passes.cleanup_old_runs(lc)
    assert deleted(lc, due) == {due[0]}
    with pytest.raises(BadInput, match="a reason is required"):
        confirm_deletions(lc.session, actor="ada", reason="  ", now=clock.now)

    confirmed = confirm_deletions(lc.session, actor="ada", reason="the new policy is meant", now=clock.now)

    assert confirmed.resolved_at == clock.now and held_alert(lc.session) is None
    assert (confirmed.data["confirmed_by"], confirmed.data["reason"]) == ("ada", "the new policy is meant")
    assert confirmed.message.endswith("Confirmed by ada: the new policy is meant")
    with pytest.raises(NothingHeld):
        confirm_deletions(lc.session, actor="ada", reason="again", now=clock.now)
    dry = passes.cleanup_old_runs(lc, dry_run=True)
    assert len(dry.lines) == 3 and pending_confirmation(lc.session).id == confirmed.id  # a dry run uses nothing

    clock.advance(days=1)
    released = passes.cleanup_old_runs(lc)

    assert released.outcomes["succeeded"] == 3 and deleted(lc, due) == set(due)
    assert released.extra["deletion_limit"]["confirmed_by"] == "ada"
    [used] = alerts(lc)
    assert used.data["used_at"] == clock.now.isoformat() and pending_confirmation(lc.session) is None

    more = archived_runs(lc, make_run, 40, 41, 42)  # the confirmation counted once: these are held again
    report = passes.cleanup_old_runs(lc)
    assert report.outcomes["succeeded"] == 1 and report.extra["deletion_limit"]["held"] == 2
    assert len(deleted(lc, more)) == 1 and held_alert(lc.session) is not None


def test_a_confirmation_releases_what_was_due_and_holds_a_second_mistake(lc, make_run, clock):
    first = archived_runs(lc, make_run, 35, 34, 33)
    limited(lc, per_pass=1, share=1.0)
    passes.cleanup_old_runs(lc)  # 3 due: 1 deleted, 2 held
    confirm_deletions(lc.session, actor="ada", reason="meant", now=clock.now)
    second = archived_runs(lc, make_run, 50, 51, 52, 53)  # 6 due now; released: the 3 seen plus the limit of 1
    report = passes.cleanup_old_runs(lc)
    assert report.extra["deletion_limit"] == {
        "due": 6,
        "allowed": 4,
        "held": 2,
        "limit": 1,
        "archived": 6,
        "confirmed_by": "ada",
        "waiting": False,
    }
    assert deleted(lc, first + second) == set(second) | {first[0]}  # the oldest four: 53, 52, 51, 50 days
    held = held_alert(lc.session)
    assert held is not None and "(with the confirmation of ada) and holds 2" in held.message
    assert [alert.resolved_at is None for alert in alerts(lc)] == [False, True]


def test_a_whole_pass_within_the_limit_clears_the_alert_and_a_pass_over_named_runs_does_not(lc, make_run, clock):
    due = archived_runs(lc, make_run, 35, 34, 33)
    limited(lc, per_pass=1, share=1.0)
    passes.cleanup_old_runs(lc)  # 1 deleted, 2 held
    named = passes.cleanup_old_runs(lc, job_ids=[due[1]])  # one named run: within the limit, deleted
    assert named.outcomes["succeeded"] == 1 and named.extra["deletion_limit"]["waiting"] is False
    assert held_alert(lc.session) is not None  # it saw one run of those due: the alert stands
    deletion.extend_retention(lc, due[2], actor="ada", reason="the mistake, put right", keep_forever=True)
    report = passes.cleanup_old_runs(lc)
    assert report.extra["deletion_limit"]["due"] == 0 and held_alert(lc.session) is None
    [cleared] = alerts(lc)
    assert cleared.resolved_at == clock.now and cleared.data["confirmed_by"] is None  # cleared, not confirmed


# -- the doors --------------------------------------------------------------------------------------


def test_the_api_confirms_for_admins_with_a_reason_and_says_409_when_nothing_is_held(
    lc, make_run, admin, member, clock
):
    url = "/api/scraper/lifecycle/confirm-deletions"
    assert admin.post(url, json={"reason": "meant"}).status_code == 409
    archived_runs(lc, make_run, 35, 34, 33)
    limited(lc, per_pass=1, share=1.0)
    passes.cleanup_old_runs(lc)

    refused = member.post(url, json={"reason": "mine"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    for body in ({}, {"reason": ""}, None):
        answer = admin.post(url, json=body) if body is not None else admin.post(url)
        assert answer.status_code == 400 and answer.json["error"]["message"] == "say why: a reason is required"
    assert admin.post(url, json={"reason": "x", "force": True}).status_code == 400
    assert held_alert(lc.session) is not None  # nothing above changed it

    answer = admin.post(url, json={"reason": "the archive policy is meant"})

    assert answer.status_code == 200
    assert answer.json["kind"] == "deletion_limit" and answer.json["open"] is False
    assert answer.json["data"]["confirmed_by"] == "ada"
    assert answer.json["data"]["reason"] == "the archive policy is meant"
    history = admin.get("/api/scraper/alerts").json["items"]
    assert [(item["kind"], item["open"], item["data"]["confirmed_by"]) for item in history] == [
        ("deletion_limit", False, "ada")
    ]
    again = admin.post(url, json={"reason": "twice"})
    assert again.status_code == 409 and "nothing to confirm" in again.json["error"]["message"]


def test_the_cli_prints_the_limit_and_confirm_deletions_releases_the_held_runs(app, lc, make_run):
    runner = app.test_cli_runner()
    due = archived_runs(lc, make_run, 35, 34, 33)  # 3 archived, all due: a fifth is 0.6, so one a pass

    cleanup = runner.invoke(args=["runs", "cleanup"], catch_exceptions=False)

    assert cleanup.exit_code == 0
    assert "; 3 due, limit 1 a pass, 2 held until an admin confirms (flask runs confirm-deletions" in cleanup.stderr
    assert len(deleted(lc, due)) == 1
    missing = runner.invoke(args=["runs", "confirm-deletions"])
    assert missing.exit_code == 2 and "--reason" in missing.stderr

    confirm = runner.invoke(args=["runs", "confirm-deletions", "--reason", "the backlog is meant"])

    assert confirm.exit_code == 0
    [line] = confirm.stdout.splitlines()
    assert re.fullmatch(
        r"confirmed by cli:\S+: the next cleanup pass may delete the 2 held runs "
        r"\(3 were due when it last ran; the limit is 1 a pass\)",
        line,
    )
    again = runner.invoke(args=["runs", "cleanup"], catch_exceptions=False)
    assert re.search(r"; 2 due, limit 1 a pass \(confirmed by cli:\S+\)$", again.stderr.strip())
    assert deleted(lc, due) == set(due)
    nothing = runner.invoke(args=["runs", "confirm-deletions", "--reason", "again"])
    assert nothing.exit_code == 1 and "nothing to confirm" in nothing.stderr


def test_the_storage_page_offers_confirm_deletions_to_admins_while_a_pass_is_held(
    browse, lc, make_run, admin, member, clock
):
    button = re.compile(r'<button type="submit" class="danger">Confirm deletions</button>')
    url = "/storage/confirm-deletions"
    page = browse(admin)
    assert not button.search(page.get("/storage").text)
    archived_runs(lc, make_run, 35, 34, 33)
    passes.cleanup_old_runs(lc)  # default limits: one a pass of 3 archived runs

    shown = page.get("/storage").text
    assert button.search(shown) and '<label for="confirm-deletions-reason">Reason</label>' in shown
    assert "delete the 2 held runs (3 were due when it last ran)" in shown
    assert not button.search(browse(member).get("/storage").text)
    assert browse(member).post(url, {"reason": "mine"}).status_code == 403
    assert page.post(url, {"reason": "meant"}, token=False).status_code == 400  # no CSRF token
    blank = page.post(url, {"reason": " "}, htmx=True)
    assert blank.status_code == 400 and "a reason is required" in blank.text
    for hostile, why in (("a\x00b", "must not contain a NUL byte"), ("x" * 1001, "at most 1000 characters")):
        refused = page.post(url, {"reason": hostile})
        assert refused.status_code == 400 and why in refused.text
    assert held_alert(lc.session) is not None

    done = page.post(url, {"reason": "the policy is meant"}, htmx=True)

    assert done.status_code == 204 and done.headers["HX-Redirect"] == "/storage"
    after = page.get("/storage").text
    assert not button.search(after)
    assert "Deletions confirmed by ada: the next cleanup pass may delete the 2 held runs (3 were due" in after
    assert re.search(r"Deletions confirmed by ada on \d{4}-\d\d-\d\d \d\d:\d\d UTC \(the policy is meant\)", after)
    assert page.post(url, {"reason": "again"}).status_code == 409
    passes.cleanup_old_runs(lc)
    assert "Deletions confirmed by ada on" not in page.get("/storage").text  # used by that pass
