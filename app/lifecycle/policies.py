"""Managing the retention policies: reading a policy from an ask, adding, changing, removing, and what
a change would do before it is saved.

Every change is written to ``policy_changes`` with its actor, reason and the policy before and after,
in the same transaction as the change. Only admins manage policies (``access.require_admin``;
the doors ask). What a policy means is in ``app.lifecycle.retention``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.lifecycle.errors import BadInput, RunConflict, RunNotFound
from app.lifecycle.policy import next_passes
from app.lifecycle.queries import reason_text, whole_number
from app.lifecycle.retention import Rule, Rules, forget_rules, load_rules
from app.models import FINISHED_STATUSES, PolicyChange, RetentionPolicy
from app.names import NameRefused, check_visible_name

MAX_NAME = 100
MAX_PATTERN = 255
MAX_DAYS = 36_500  # a hundred years: any honest retention fits
MAX_KEEP_LAST = 100_000
PRIORITIES = (-1000, 1000)
# The fields an ask may set, in the order SPEC §9 lists them.
FIELDS = (
    "name",
    "scraper_pattern",
    "statuses",
    "archive_after_days",
    "delete_after_days",
    "keep_last",
    "keep_after_access_days",
    "legal_hold",
    "priority",
)


class PolicyNotFound(RunNotFound):
    """No retention policy has that id."""


class PolicyNameTaken(RunConflict):
    """Another retention policy already has that name."""


def _text(raw: Any, field: str, limit: int) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise BadInput(f"{field} must be non-empty text")
    if len(raw) > limit:
        raise BadInput(f"{field} is at most {limit} characters")
    try:
        check_visible_name(raw, field)  # no control, bidi or zero-width characters: a name shows as itself
    except NameRefused as error:
        raise BadInput(str(error)) from None
    return raw.strip()


def _whole(raw: Any, field: str, low: int, high: int, *, nullable: bool = False) -> int | None:
    if raw is None and nullable:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        # A form sends text: "30" is a number; "", "none" or "never" are no number where one may be left out.
        text = raw.strip() if isinstance(raw, str) else ""
        number = whole_number(text.removeprefix("-"))
        if number is not None:
            raw = -number if text.startswith("-") else number
        elif nullable and isinstance(raw, str) and raw.strip().lower() in ("", "none", "never", "null"):
            return None
        else:
            raise BadInput(f"{field} must be a whole number" + (" or null" if nullable else ""))
    if not low <= raw <= high:
        raise BadInput(f"{field} must be between {low} and {high}")
    return raw


def _flag(raw: Any, field: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "1", "on", "yes", "false", "0", "off", "no", ""):
        return raw.strip().lower() in ("true", "1", "on", "yes")
    raise BadInput(f"{field} must be true or false")


def _statuses(raw: Any) -> list[str]:
    if isinstance(raw, str):  # "completed,failed" from a form or the command line
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(status, str) for status in raw):
        raise BadInput("statuses must be a list of statuses")
    unknown = sorted(set(raw) - set(FINISHED_STATUSES))
    if unknown:
        raise BadInput(f"statuses are finished ones ({', '.join(FINISHED_STATUSES)}), not {', '.join(unknown)}")
    return [status for status in FINISHED_STATUSES if status in raw]  # one order, each once


def read_fields(ask: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """The policy fields of an ask (the API's JSON, a form, the CLI), checked; a bad one is ``BadInput``.

    ``partial`` (a change) reads only the fields given; a new policy needs a name, a pattern and an
    archive age, and the others take their defaults.
    """
    unknown = sorted(set(ask) - set(FIELDS) - {"reason"})
    if unknown:
        raise BadInput(f"unknown policy fields: {', '.join(unknown)}")
    readers = {
        "name": lambda v: _text(v, "name", MAX_NAME),
        "scraper_pattern": lambda v: _text(v, "scraper_pattern", MAX_PATTERN),
        "statuses": _statuses,
        "archive_after_days": lambda v: _whole(v, "archive_after_days", 0, MAX_DAYS),
        "delete_after_days": lambda v: _whole(v, "delete_after_days", 1, MAX_DAYS, nullable=True),
        "keep_last": lambda v: _whole(v, "keep_last", 0, MAX_KEEP_LAST),
        "keep_after_access_days": lambda v: _whole(v, "keep_after_access_days", 1, MAX_DAYS, nullable=True),
        "legal_hold": lambda v: _flag(v, "legal_hold"),
        "priority": lambda v: _whole(v, "priority", *PRIORITIES),
    }
    fields = {name: readers[name](ask[name]) for name in FIELDS if name in ask}
    if not partial:
        missing = [name for name in ("name", "scraper_pattern", "archive_after_days") if name not in fields]
        if missing:
            raise BadInput(f"a new policy needs {', '.join(missing)}")
    return fields


def _checked(rule: Rule) -> Rule:
    """A policy as a whole: its delete age after its archive age."""
    if rule.delete_after_days is not None and rule.delete_after_days <= rule.archive_after_days:
        raise BadInput(
            f"delete_after_days ({rule.delete_after_days}) must be more than archive_after_days "
            f"({rule.archive_after_days}), or null to never delete"
        )
    return rule


# A new policy's defaults: it deletes only if it says when (delete_after_days left out is never),
# keeps no newest runs, holds nothing, priority 0.
_NEW = Rule(name="", scraper_pattern="*", delete_after_days=None)


def _with(rule: Rule, fields: Mapping[str, Any]) -> Rule:
    changes = {key: (tuple(value) if key == "statuses" else value) for key, value in fields.items()}
    return _checked(dataclasses.replace(rule, **changes))


def policy_values(policy: RetentionPolicy) -> dict[str, Any]:
    """A policy's fields as recorded in its change history."""
    return {name: getattr(policy, name) for name in FIELDS}


def get_policy(session: Session, policy_id: Any) -> RetentionPolicy:
    try:
        key = int(policy_id)
    except (TypeError, ValueError):
        raise BadInput("a policy id is a whole number") from None
    policy = session.get(RetentionPolicy, key) if 0 < key < 2**63 else None
    if policy is None:
        raise PolicyNotFound(f"no retention policy {policy_id}")
    return policy


def list_policies(session: Session) -> list[RetentionPolicy]:
    """Every policy, in order of precedence (highest priority first, then the oldest)."""
    query = select(RetentionPolicy).order_by(RetentionPolicy.priority.desc(), RetentionPolicy.id)
    return list(session.scalars(query))


def _name_free(session: Session, name: str, policy_id: int | None) -> None:
    other = session.scalar(select(RetentionPolicy).where(RetentionPolicy.name == name))
    if other is not None and other.id != policy_id:
        raise PolicyNameTaken(f"a retention policy named {name!r} exists already")


def _record(
    session: Session, policy: RetentionPolicy, action: str, actor: str, reason: str, now: datetime, before: Any
) -> None:
    after = None if action == "remove" else policy_values(policy)
    session.add(
        PolicyChange(
            policy_id=policy.id,
            policy_name=policy.name,
            action=action,
            actor=actor,
            reason=reason,
            changed_at=now,
            before=before,
            after=after,
        )
    )


def add_policy(
    session: Session, fields: Mapping[str, Any], *, actor: str, reason: Any, now: datetime
) -> RetentionPolicy:
    """Save a new policy (``read_fields`` of the ask) and record it; the caller commits."""
    why = reason_text(reason, required=True)
    rule = _with(_NEW, fields)
    _name_free(session, rule.name, None)
    values = {name: getattr(rule, name) for name in FIELDS}
    values["statuses"] = list(rule.statuses)
    policy = RetentionPolicy(**values, created_by=actor, created_at=now, updated_at=now, reason=why)
    session.add(policy)
    _flush_named(session, rule.name)  # its id, for the record
    _record(session, policy, "add", actor, why, now, None)
    forget_rules()
    return policy


def _flush_named(session: Session, name: str) -> None:
    """Flush, turning the name's unique constraint (two admins adding it at once) into ``PolicyNameTaken``."""
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise PolicyNameTaken(f"a retention policy named {name!r} exists already") from None


def set_policy(
    session: Session, policy: RetentionPolicy, fields: Mapping[str, Any], *, actor: str, reason: Any, now: datetime
) -> RetentionPolicy:
    """Change a policy (the fields given) and record it with the policy before; the caller commits."""
    why = reason_text(reason, required=True)
    rule = _with(Rule.of(policy), fields)
    _name_free(session, rule.name, policy.id)
    before = policy_values(policy)
    for name in fields:
        setattr(policy, name, list(rule.statuses) if name == "statuses" else getattr(rule, name))
    policy.updated_at, policy.reason = now, why
    _flush_named(session, rule.name)
    _record(session, policy, "set", actor, why, now, before)
    forget_rules()
    return policy


def remove_policy(session: Session, policy: RetentionPolicy, *, actor: str, reason: Any, now: datetime) -> None:
    """Remove a policy (its runs follow the next policy that matches, or the defaults) and record it."""
    why = reason_text(reason, required=True)
    _record(session, policy, "remove", actor, why, now, policy_values(policy))
    session.delete(policy)
    forget_rules()


def proposed_rules(
    session: Session,
    settings: Settings,
    fields: Mapping[str, Any] | None = None,
    *,
    policy: RetentionPolicy | None = None,
    remove: bool = False,
) -> Rules:
    """The rules as they would be with this change saved: a new policy (``fields``, no ``policy``),
    a change to ``policy``, or its removal. Nothing is written."""
    current = load_rules(session, settings)
    others = tuple(rule for rule in current.policies if policy is None or rule.id != policy.id)
    if remove:
        return dataclasses.replace(current, policies=others)
    if policy is None:
        fields = fields or {}
        changed = _with(_NEW, fields)
    else:
        changed = _with(Rule.of(policy), fields or {})
    return dataclasses.replace(current, policies=(*others, changed))


_PASS_FIGURES = ("archive_runs", "archive_bytes", "delete_runs", "delete_bytes")  # a scraper's, in next_passes


def preview(session: Session, settings: Settings, rules: Rules, now: datetime) -> dict[str, Any]:
    """What the next archival and cleanup passes would do under ``rules``, and how that differs from now."""
    after = next_passes(session, rules, now)
    before = next_passes(session, load_rules(session, settings), now)
    after["change"] = {
        step: {key: after[step][key] - before[step][key] for key in ("runs", "bytes")} for step in ("archive", "delete")
    }
    # Per scraper too, a scraper the change takes out of the passes included (its figures then 0).
    was = {entry["scraper"]: entry for entry in before["by_scraper"]}
    now_ = {entry["scraper"]: entry for entry in after["by_scraper"]}
    zero = dict.fromkeys(_PASS_FIGURES, 0)
    after["by_scraper"] = [
        {
            **(entry := now_.get(scraper, {"scraper": scraper, **zero})),
            "change": {key: entry[key] - was.get(scraper, zero)[key] for key in _PASS_FIGURES},
        }
        for scraper in sorted(was.keys() | now_.keys())
    ]
    return after
