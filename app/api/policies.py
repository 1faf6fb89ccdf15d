"""Retention policies over the API (SPEC §9), the next passes' preview, and runs' retention in words.

Everyone may read the policies (they explain their runs); only admins change them. ``?dry_run=1``
on POST, PATCH and DELETE answers what the change would do in the next passes and saves nothing.
The rules behind all of it are ``app.lifecycle.retention`` and ``app.lifecycle.policies``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import request, url_for
from sqlalchemy import select

from app.api import bp
from app.api.auth import current_user
from app.api.openapi import documented
from app.api.params import json_body, pagination
from app.api.schemas import job_json, page, policy_change_json, policy_json
from app.extensions import db, settings
from app.lifecycle import access, policies, retention
from app.lifecycle.policy import next_passes
from app.models import PolicyChange, utcnow


def runs_json(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Runs (ORM objects or rows of ``JOB_COLUMNS``) as the API writes them, with their retention in words."""
    grace = settings().delete_grace_days
    rules = retention.cached_rules(db.session, settings())
    words = retention.explain_runs(db.session, rules, rows, now=utcnow(), grace_days=grace)
    return [job_json(row, said) for row, said in zip(rows, words, strict=True)]


def run_json(job: Any) -> dict[str, Any]:
    return runs_json([job])[0]


def _dry_run() -> bool:
    return request.args.get("dry_run", "").lower() in ("1", "true", "yes")


def _actor() -> str:
    return current_user().username


def _admins_change() -> None:
    access.require_admin(current_user(), "change retention policies")


def _changed() -> None:
    db.session.commit()
    retention.forget_rules()  # read before the commit, the rules might have been remembered unchanged


FIELDS_AND_REASON = {*policies.FIELDS, "reason"}


@bp.get("/policies")
@documented(ok=(200, "Page[Policy]"), query=("limit", "offset"))
def list_policies() -> Any:
    """The retention policies, in order of precedence (highest priority first, then the oldest)."""
    limit, offset = pagination(request.args)
    rows = policies.list_policies(db.session)
    return page([policy_json(row) for row in rows[offset : offset + limit]], len(rows), limit, offset)


@bp.post("/policies")
@documented(ok=(201, "Policy"), query=("dry_run",), body="NewPolicy")
def add_policy() -> Any:
    """Add a retention policy, with a reason (admins) → 201; ``?dry_run=1`` → 200 with its effect, nothing saved."""
    _admins_change()
    body = json_body(FIELDS_AND_REASON)
    fields = policies.read_fields({k: v for k, v in body.items() if k != "reason"}, partial=False)
    if _dry_run():
        rules = policies.proposed_rules(db.session, settings(), fields)
        return policies.preview(db.session, settings(), rules, utcnow())
    policy = policies.add_policy(db.session, fields, actor=_actor(), reason=body.get("reason"), now=utcnow())
    _changed()
    return policy_json(policy), 201, {"Location": url_for("api.get_policy", policy_id=policy.id)}


@bp.get("/policies/<policy_id>")
@documented(ok=(200, "Policy"))
def get_policy(policy_id: str) -> Any:
    """One retention policy."""
    return policy_json(policies.get_policy(db.session, policy_id))


@bp.patch("/policies/<policy_id>")
@documented(ok=(200, "Policy"), query=("dry_run",), body="PolicyUpdate")
def set_policy(policy_id: str) -> Any:
    """Change a retention policy's fields, with a reason (admins); ``?dry_run=1`` → its effect, nothing saved."""
    _admins_change()
    policy = policies.get_policy(db.session, policy_id)
    body = json_body(FIELDS_AND_REASON)
    fields = policies.read_fields({k: v for k, v in body.items() if k != "reason"}, partial=True)
    if _dry_run():
        rules = policies.proposed_rules(db.session, settings(), fields, policy=policy)
        return policies.preview(db.session, settings(), rules, utcnow())
    policies.set_policy(db.session, policy, fields, actor=_actor(), reason=body.get("reason"), now=utcnow())
    _changed()
    return policy_json(policy)


@bp.delete("/policies/<policy_id>")
@documented(ok=(200, "Policy"), query=("dry_run",), body="Reason")
def remove_policy(policy_id: str) -> Any:
    """Remove a retention policy, with a reason (admins) → 200 with the policy removed; ``?dry_run=1`` → its effect."""
    _admins_change()
    policy = policies.get_policy(db.session, policy_id)
    body = json_body({"reason"}) if request.content_length else {}
    if _dry_run():
        rules = policies.proposed_rules(db.session, settings(), policy=policy, remove=True)
        return policies.preview(db.session, settings(), rules, utcnow())
    removed = policy_json(policy)
    policies.remove_policy(db.session, policy, actor=_actor(), reason=body.get("reason"), now=utcnow())
    _changed()
    return removed


@bp.get("/policies/changes")
@documented(ok=(200, "Page[PolicyChange]"), query=("limit", "offset"))
def policy_changes() -> Any:
    """Every change to the retention policies, newest first: who, when, why, the policy before and after."""
    limit, offset = pagination(request.args)
    query = select(PolicyChange).order_by(PolicyChange.changed_at.desc(), PolicyChange.id.desc())
    rows = db.session.scalars(query.limit(limit).offset(offset)).all()
    total = db.session.query(PolicyChange).count()
    return page([policy_change_json(row) for row in rows], total, limit, offset)


@bp.get("/lifecycle/preview")
@documented(ok=(200, "PolicyEffect"))
def lifecycle_preview() -> Any:
    """What the next archival and cleanup passes would take under the current policies: runs and bytes, per scraper."""
    access.require_admin(current_user(), "see the next passes: they cover every user's runs")
    return next_passes(db.session, retention.load_rules(db.session, settings()), utcnow())
