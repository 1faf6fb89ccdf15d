"""The dashboard's retention policies: everyone reads them (they explain their runs); admins add,
change and remove them, and see first what a change would do in the next passes.

A thin door into ``app.lifecycle.policies``: the form is read there as the API's JSON is, every
change is recorded with the admin and a reason, and "Preview" answers ``policies.preview`` of the
proposed rules without saving. HTMX shows a preview or a refusal in place; without JavaScript the
page comes back with the form as it was sent and the answer in it.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.extensions import db, settings
from app.lifecycle import access, policies
from app.lifecycle.errors import BadInput
from app.models import FINISHED_STATUSES, PolicyChange, RetentionPolicy, utcnow
from app.web import bp, error_page, web_user

CHANGES_SHOWN = 20
# What a form may be refused for, and the status it is answered with, the form shown again.
FORM_REFUSALS = {BadInput: 400, policies.PolicyNameTaken: 409}
DAYS = {"archive_after_days", "delete_after_days", "keep_after_access_days"}
LABELS = {
    "name": "name",
    "scraper_pattern": "pattern",
    "statuses": "statuses",
    "archive_after_days": "archive after",
    "delete_after_days": "delete after",
    "keep_last": "keep last",
    "keep_after_access_days": "keep after access",
    "legal_hold": "legal hold",
    "priority": "priority",
}


@bp.errorhandler(policies.PolicyNotFound)
def _no_policy(error: policies.PolicyNotFound) -> Any:
    return error_page(404, str(error))


def shown(name: str, value: Any) -> str:
    """A policy field as the pages say it."""
    if name == "statuses":
        return ", ".join(value or ()) or "all finished"
    if name in DAYS:
        return "never" if value is None else f"{value} d"
    if name == "legal_hold":
        return "on" if value else "off"
    return str(value)


def what_changed(change: PolicyChange) -> str:
    """A recorded change in words: the fields a change moved, or the policy added or removed."""
    if change.action == "set" and change.before and change.after:
        moved = [name for name in policies.FIELDS if change.before.get(name) != change.after.get(name)]
        return (
            "; ".join(
                f"{LABELS[name]} {shown(name, change.before.get(name))} → {shown(name, change.after.get(name))}"
                for name in moved
            )
            or "nothing"
        )
    values = change.after if change.action == "add" else change.before
    return ", ".join(f"{LABELS[name]} {shown(name, values.get(name))}" for name in policies.FIELDS[1:] if values)


def _changes(policy_id: int | None = None) -> list[PolicyChange]:
    query = select(PolicyChange).order_by(PolicyChange.changed_at.desc(), PolicyChange.id.desc())
    if policy_id is not None:
        query = query.where(PolicyChange.policy_id == policy_id)
    return list(db.session.scalars(query.limit(CHANGES_SHOWN)))


def _admins_change() -> None:
    access.require_admin(web_user(), "change retention policies")


def _ask() -> dict[str, Any]:
    """The policy fields of the posted form: every field, as text (an unticked legal hold is off)."""
    ask = {name: request.form.get(name, "") for name in policies.FIELDS}
    ask["statuses"] = ",".join(request.form.getlist("statuses"))
    return ask


def _sent() -> dict[str, Any]:
    """The form as it was sent, to show it again."""
    values: dict[str, Any] = {name: request.form.get(name, "") for name in policies.FIELDS}
    values["statuses"] = request.form.getlist("statuses")
    values["legal_hold"] = bool(request.form.get("legal_hold"))
    values["reason"] = request.form.get("reason", "")
    return values


def _values_of(policy: RetentionPolicy) -> dict[str, Any]:
    values = policies.policy_values(policy)
    return {name: "" if value is None else value for name, value in values.items()} | {"reason": ""}


def _new_values() -> dict[str, Any]:
    s = settings()
    return {
        "name": "",
        "scraper_pattern": "",
        "statuses": [],
        "archive_after_days": s.archive_after_days,
        "delete_after_days": s.delete_after_days,
        "keep_last": 0,
        "keep_after_access_days": "",
        "legal_hold": False,
        "priority": 0,
        "reason": "",
    }


def _list_page(form: dict[str, Any] | None = None, status: int = 200) -> Any:
    """The policies in precedence order, the form to add one, and the recent changes."""
    user = web_user()
    s = settings()
    return (
        render_template(
            "policies.html",
            policies=policies.list_policies(db.session),
            changes=[(change, what_changed(change)) for change in _changes()],
            defaults=(s.archive_after_days, s.delete_after_days),
            is_admin=user.is_admin,
            form={"values": _new_values(), **(form or {})},
            statuses=FINISHED_STATUSES,
            shown=shown,
        ),
        status,
    )


def _policy_page(
    policy: RetentionPolicy, edit: dict[str, Any] | None = None, remove: dict[str, Any] | None = None, status: int = 200
) -> Any:
    """One policy: the form to change it, its removal, its history."""
    return (
        render_template(
            "policy.html",
            policy=policy,
            edit={"values": _values_of(policy), **(edit or {})},
            remove=remove or {"values": {"reason": ""}},
            changes=[(change, what_changed(change)) for change in _changes(policy.id)],
            statuses=FINISHED_STATUSES,
        ),
        status,
    )


def _answer(full_page: Any, *, effect: dict[str, Any] | None = None, error: Exception | None = None) -> Any:
    """A preview or a refusal: in place for HTMX, else the whole page with the form as it was sent."""
    status = next((code for kind, code in FORM_REFUSALS.items() if isinstance(error, kind)), 200)
    if request.headers.get("HX-Request"):
        if error is not None:
            return render_template("_error.html", message=str(error)), status
        return render_template("_policy_preview.html", effect=effect)
    return full_page({"values": _sent(), "effect": effect, "error": str(error) if error else None}, status)


def _saved(message: str, url: str) -> Any:
    db.session.commit()
    flash(message)
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url}
    return redirect(url)


@bp.get("/policies")
def policies_page() -> Any:
    return _list_page()


@bp.post("/policies/preview")
def preview_new_policy() -> Any:
    """What adding the policy in the form would do in the next passes; nothing is saved."""
    _admins_change()
    try:
        fields = policies.read_fields(_ask(), partial=False)
        rules = policies.proposed_rules(db.session, settings(), fields)
    except tuple(FORM_REFUSALS) as error:
        return _answer(_list_page, error=error)
    return _answer(_list_page, effect=policies.preview(db.session, settings(), rules, utcnow()))


@bp.post("/policies")
def add_policy() -> Any:
    _admins_change()
    try:
        fields = policies.read_fields(_ask(), partial=False)
        policy = policies.add_policy(
            db.session, fields, actor=web_user().username, reason=request.form.get("reason"), now=utcnow()
        )
    except tuple(FORM_REFUSALS) as error:
        db.session.rollback()
        return _answer(_list_page, error=error)
    return _saved(f"Added the policy {policy.name!r}.", url_for("web.policies_page"))


@bp.get("/policies/<policy_id>")
def policy_page(policy_id: str) -> Any:
    _admins_change()
    return _policy_page(policies.get_policy(db.session, policy_id))


@bp.post("/policies/<policy_id>/preview")
def preview_policy_change(policy_id: str) -> Any:
    """What the change in the form would do in the next passes; nothing is saved."""
    _admins_change()
    policy = policies.get_policy(db.session, policy_id)

    def page(edit: dict[str, Any], status: int) -> Any:
        return _policy_page(policy, edit=edit, status=status)

    try:
        fields = policies.read_fields(_ask(), partial=True)
        rules = policies.proposed_rules(db.session, settings(), fields, policy=policy)
    except tuple(FORM_REFUSALS) as error:
        return _answer(page, error=error)
    return _answer(page, effect=policies.preview(db.session, settings(), rules, utcnow()))


@bp.post("/policies/<policy_id>")
def set_policy(policy_id: str) -> Any:
    _admins_change()
    policy = policies.get_policy(db.session, policy_id)
    try:
        fields = policies.read_fields(_ask(), partial=True)
        policies.set_policy(
            db.session, policy, fields, actor=web_user().username, reason=request.form.get("reason"), now=utcnow()
        )
    except tuple(FORM_REFUSALS) as error:
        db.session.rollback()
        return _answer(lambda edit, status: _policy_page(policy, edit=edit, status=status), error=error)
    return _saved(f"Changed the policy {policy.name!r}.", url_for("web.policies_page"))


@bp.post("/policies/<policy_id>/remove/preview")
def preview_policy_removal(policy_id: str) -> Any:
    """What removing the policy would do in the next passes; nothing is saved."""
    _admins_change()
    policy = policies.get_policy(db.session, policy_id)
    rules = policies.proposed_rules(db.session, settings(), policy=policy, remove=True)
    effect = policies.preview(db.session, settings(), rules, utcnow())
    return _answer(lambda remove, status: _policy_page(policy, remove=remove, status=status), effect=effect)


@bp.post("/policies/<policy_id>/remove")
def remove_policy(policy_id: str) -> Any:
    _admins_change()
    policy = policies.get_policy(db.session, policy_id)
    name = policy.name
    try:
        policies.remove_policy(
            db.session, policy, actor=web_user().username, reason=request.form.get("reason"), now=utcnow()
        )
    except tuple(FORM_REFUSALS) as error:
        db.session.rollback()
        return _answer(lambda remove, status: _policy_page(policy, remove=remove, status=status), error=error)
    return _saved(f"Removed the policy {name!r}.", url_for("web.policies_page"))
