"""What may be done to a run: one table, asked by every door (API, dashboard, CLI) and by the operations.

The table below is the rule as SPEC §7 states it, written out independently of
``app.lifecycle.access``; every tier × status × role × action is checked against it, then the
doors are checked to answer as the rules say.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from rq import Queue

from app import tasks
from app.lifecycle import access, archival, deletion
from app.lifecycle.access import SYSTEM, Forbidden, NotNow
from app.models import Job

TIERS = ("active", "archived", "deleted", "purged")
STATUSES = ("pending", "running", "completed", "failed", "cancelled")
FINISHED = {"completed", "failed", "cancelled"}
ROLES = ("admin", "owner", "other member", "system")
GRACE_DAYS = 7

# action: (tiers it applies to, whether the run must be finished, roles allowed)
EVERYONE_WHO_SEES = {"admin", "owner", "system"}
ADMINS = {"admin", "system"}
RULES = {
    "archive": ({"active"}, True, EVERYONE_WHO_SEES),
    "restore": ({"archived"}, False, EVERYONE_WHO_SEES),
    "download": ({"archived"}, False, EVERYONE_WHO_SEES),
    "delete": ({"active", "archived"}, True, EVERYONE_WHO_SEES),
    "hard_delete": (set(TIERS), True, ADMINS),
    "undelete": ({"deleted"}, False, EVERYONE_WHO_SEES),  # within the grace period
    "extend": ({"active", "archived"}, False, EVERYONE_WHO_SEES),
    "purge": ({"deleted"}, False, ADMINS),
}
OWNER, OTHER = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"


def expected(action: str, tier: str, status: str, role: str) -> bool:
    tiers, needs_finished, roles = RULES[action]
    return tier in tiers and (status in FINISHED or not needs_finished) and role in roles


def actor(role: str):
    if role == "system":
        return SYSTEM
    import uuid

    return SimpleNamespace(
        id=uuid.UUID(OTHER if role == "other member" else OWNER), is_admin=role == "admin", username=role
    )


def run_in(tier: str, status: str, now, *, deleted_days_ago: float = 1):
    import uuid

    return SimpleNamespace(
        id=uuid.uuid4(),
        created_by=uuid.UUID(OWNER),
        status=status,
        archived_at=now - timedelta(days=2) if tier != "active" else None,
        deleted_at=now - timedelta(days=deleted_days_ago) if tier in ("deleted", "purged") else None,
        purged_at=now if tier == "purged" else None,
        archive_path="archive/x.tar.gz" if tier != "active" else None,
    )


def test_every_tier_status_role_and_action_follows_the_table(clock):
    now = clock.now
    checked = 0
    for tier, status, role, action in itertools.product(TIERS, STATUSES, ROLES, access.ACTIONS):
        job = run_in(tier, status, now)
        refused = access.refusal(actor(role), action, job, now=now, grace_days=GRACE_DAYS)
        assert (refused is None) == expected(action, tier, status, role), (tier, status, role, action, refused)
        if refused is not None:
            # A role's no is forbidden whatever the state; a state's no is a conflict with the rule's code.
            wrong_role = role not in RULES[action][2]
            assert isinstance(refused, Forbidden if wrong_role else NotNow), (tier, status, role, action)
            assert refused.code in ("forbidden", "wrong_tier", "not_finished", "purged", "grace_ended")
        checked += 1
    assert checked == len(TIERS) * len(STATUSES) * len(ROLES) * len(access.ACTIONS) == 640


def test_an_undelete_is_refused_once_the_grace_period_ended(clock):
    job = run_in("deleted", "completed", clock.now, deleted_days_ago=GRACE_DAYS)
    refused = access.refusal(actor("owner"), "undelete", job, now=clock.now, grace_days=GRACE_DAYS)
    assert isinstance(refused, NotNow) and refused.code == "grace_ended"
    fresh = run_in("deleted", "completed", clock.now, deleted_days_ago=GRACE_DAYS - 0.01)
    assert access.refusal(actor("owner"), "undelete", fresh, now=clock.now, grace_days=GRACE_DAYS) is None


@pytest.mark.parametrize(
    ("role", "asked", "configured", "result"),
    [
        ("owner", None, "soft", "delete"),
        ("owner", None, "hard", Forbidden),
        ("owner", "soft", "soft", Forbidden),  # only admins choose
        ("admin", None, "hard", "hard_delete"),
        ("admin", "soft", "hard", "delete"),
        ("admin", "gentle", "soft", access.BadAsk),
        ("system", None, "soft", "delete"),
    ],
)
def test_a_deletion_is_soft_or_hard_as_the_role_and_setting_allow(role, asked, configured, result):
    if isinstance(result, str):
        assert access.deletion_action(actor(role), asked, configured) == result
    else:
        with pytest.raises(result):
            access.deletion_action(actor(role), asked, configured)


def test_an_admin_may_still_hard_delete_a_run_in_the_trash_and_the_buttons_say_so(clock):
    job = run_in("deleted", "completed", clock.now)
    options = {"now": clock.now, "grace_days": GRACE_DAYS, "configured_strategy": "soft"}
    assert access.possible_actions(actor("admin"), job, **options)["delete"] is True
    assert access.possible_actions(actor("owner"), job, **options)["delete"] is False
    hard_site = {**options, "configured_strategy": "hard"}
    assert (
        access.possible_actions(actor("owner"), run_in("active", "completed", clock.now), **hard_site)["delete"]
        is False
    )


# -- the doors ask the same rules ------------------------------------------------------------------


def _put_in(lc, job, tier: str) -> Job:
    """Move a registered run's row into ``tier`` (the doors refuse before touching any file)."""
    row = lc.session.get(Job, job.id)
    now = lc.now()
    if tier != "active":
        row.archived_at, row.archive_path, row.archive_sha256 = now - timedelta(days=2), "archive/x.tar.gz", "0" * 64
    if tier in ("deleted", "purged"):
        row.deleted_at, row.deleted_by, row.archive_path = now - timedelta(days=1), "test", "trash/x.tar.gz"
    if tier == "purged":
        row.purged_at = now
    lc.session.commit()
    return row


STATUS_OF_KIND = {"forbidden": 403, "conflict": 409, "invalid": 400}
API_CALLS = {
    "archive": ("post", "/archive", None),
    "restore": ("post", "/restore", None),
    "delete": ("delete", "", {"reason": "tidy"}),
    "hard_delete": ("delete", "", {"reason": "tidy", "strategy": "hard"}),
    "extend": ("post", "/retention", {"reason": "audit", "keep_forever": True}),
}


@pytest.mark.parametrize("tier", TIERS)
def test_the_api_answers_as_the_rules_say(lc, make_run, member, admin, other_member, redis_db, tier):
    for status in STATUSES:
        job = _put_in(lc, make_run(owner=member.user.id, status=status), tier)
        for role, account in (("owner", member), ("admin", admin), ("other member", other_member)):
            for action, (method, suffix, body) in API_CALLS.items():
                refused = access.refusal(account_actor(account), action, job, now=lc.now(), grace_days=7)
                if action == "hard_delete" and role == "owner":
                    refused = Forbidden("only admins choose the deletion strategy")
                response = getattr(account, method)(f"/api/scraper/jobs/{job.id}{suffix}", json=body)
                if role == "other member":
                    assert response.status_code == 404, (tier, status, action)  # not theirs to see
                elif refused is None:
                    assert response.status_code in (200, 202), (tier, status, role, action, response.json)
                else:
                    want = STATUS_OF_KIND[refused.kind]
                    assert response.status_code == want, (tier, status, role, action, response.json)
                lc.session.expire_all()
                if response.status_code == 200:  # extend changed the row: put it back as it was
                    row = lc.session.get(Job, job.id)
                    row.keep_forever = False
                    lc.session.commit()


def account_actor(account):
    return SimpleNamespace(id=account.user.id, is_admin=account.user.role == "admin")


BUTTONS = {
    "archive": "Archive now",
    "restore": "Restore",
    "download": "Download",
    "undelete": "Undelete",
    "extend": "Extend retention",
    "delete": "Delete",
}


@pytest.mark.parametrize("tier", TIERS)
def test_the_dashboard_shows_exactly_the_buttons_the_rules_allow(lc, make_run, member, admin, app, tier):
    from tests.test_web import Browser

    browsers = {}
    for account in (member, admin):
        browsers[account.user.username] = Browser(app.test_client())
        assert browsers[account.user.username].login(account.user.username).status_code == 302
    for status in STATUSES:
        job = _put_in(lc, make_run(owner=member.user.id, status=status), tier)
        for account in (member, admin):
            whole = browsers[account.user.username].get(f"/runs/{job.id}").text
            page = whole.split('aria-label="Actions"')[1].split("</section>")[0]  # not the files' Download links
            can = access.possible_actions(
                account_actor(account),
                job,
                now=lc.now(),
                grace_days=lc.settings.delete_grace_days,
                configured_strategy=lc.settings.deletion_strategy,
            )
            for action, label in BUTTONS.items():
                shown = re.search(rf">\s*{label}\s*</(button|a|summary)>", page) is not None
                assert shown == can[action], (tier, status, account.user.username, action)


@pytest.mark.parametrize("tier", TIERS)
def test_the_cli_asks_the_rules_in_every_mode(app, lc, make_run, redis_db, tier):
    runner = app.test_cli_runner()
    queue = Queue(tasks.QUEUE_NAME, connection=redis_db)
    for status in STATUSES:
        job = _put_in(lc, make_run(status=status), tier)
        for command, action in (("archive", "archive"), ("restore", "restore"), ("cleanup", "delete")):
            allowed = (
                access.refusal(SYSTEM, action, job, now=lc.now(), grace_days=lc.settings.delete_grace_days) is None
            )
            dry = runner.invoke(args=["runs", command, "--job", str(job.id), "--dry-run"])
            assert dry.exit_code == 0 and (f"_{job.id}\t" in dry.stdout) == allowed, (tier, status, command)
            queued_before = queue.count
            enqueued = runner.invoke(args=["runs", command, "--job", str(job.id), "--enqueue"])
            assert (enqueued.exit_code == 0) == allowed, (tier, status, command, enqueued.output)
            assert queue.count == queued_before + (1 if allowed else 0)
            if not allowed:
                assert "refused" in enqueued.output
                before = _tier_columns(lc, job)
                in_process = runner.invoke(args=["runs", command, "--job", str(job.id)])
                # In process the operation asks under the lock: refused, or skipped when already done.
                refused_there = in_process.exit_code == 1 and "refused" in in_process.output
                skipped = in_process.exit_code == 0 and ": skipped" in in_process.output
                assert refused_there or skipped, (tier, status, command, in_process.output)
                assert _tier_columns(lc, job) == before
            queue.empty()


def _tier_columns(lc, job):
    lc.session.expire_all()
    row = lc.session.get(Job, job.id)
    return row.archived_at, row.deleted_at, row.purged_at, row.restored_at


def test_the_cli_reruns_one_run_harmlessly(app, lc, make_run):
    runner = app.test_cli_runner()
    job = make_run()
    for command in ("archive", "cleanup"):
        first = runner.invoke(args=["runs", command, "--job", str(job.id)])
        again = runner.invoke(args=["runs", command, "--job", str(job.id)])
        assert first.exit_code == 0 and first.output.endswith(": succeeded\n"), first.output
        assert again.exit_code == 0 and again.output.endswith(": skipped\n"), again.output
    refused = runner.invoke(args=["runs", "archive", "--job", str(job.id), "--enqueue"])
    assert refused.exit_code == 1 and "refused" in refused.output  # a deleted run is not queued


def test_the_operations_ask_the_rules_again_under_the_lock(lc, make_run, clock):
    running = make_run(status="running")
    with pytest.raises(NotNow, match="only finished runs are archived"):
        archival.archive_run(lc, running.id, actor="test", manual=True)
    with pytest.raises(NotNow, match="needs a run that is archived"):
        archival.restore_run(lc, running.id, actor="test")
    with pytest.raises(NotNow, match="finish or cancel"):
        deletion.delete_run(lc, running.id, actor="test", reason="tidy", strategy="hard")
    done = make_run()
    deletion.delete_run(lc, done.id, actor="test", reason="tidy")
    with pytest.raises(NotNow, match="needs a run that is active or archived"):
        deletion.extend_retention(lc, done.id, actor="test", reason="keep", keep_forever=True)
    clock.advance(days=lc.settings.delete_grace_days, seconds=1)
    with pytest.raises(NotNow, match="grace period"):
        deletion.undelete_run(lc, done.id, actor="test")
