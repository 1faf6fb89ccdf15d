"""The deletion safety limit: how many runs one cleanup pass may delete before an admin confirms.

A clock that jumps ahead, or a retention policy typed with days for months, would have the
nightly cleanup delete far more than it ever does. So a pass deletes at most ``deletion_limit``
runs — ``DELETE_MAX_PER_PASS``, and ``DELETE_MAX_SHARE`` of the runs in the archived tier, rounded
down but never below one run (so a store of a handful of archives still ages out by itself) —
the oldest first, in the order the pass goes, and holds the rest. Holding opens a critical
``deletion_limit`` alert that says how many were due, the limit, and what to do. The held state
*is* that open alert: there is no table of its own.

While the alert is open, the cleanup waits: the passes after the one that held delete none of the
due runs (each refreshes the alert's figures), so a mistake is not carried out a limit's worth a
night while nobody looks. It ends in one of two ways:

- an admin's "Confirm deletions" (``confirm_deletions``: the storage page, the API, the CLI)
  records who and why in the alert's data and resolves it, so it stays in the alert history with
  its confirmation. The next whole cleanup pass then may delete the runs that were due when the
  admin confirmed plus its usual limit — everything due, unless still more came due since (a
  second mistake is held again, not waved through) — and marks the confirmation used
  (``used_at``): it counts for one pass;
- a whole pass that finds no more due than its limit resolves the alert by itself: the cause was
  cleared (a policy put right, the clock fixed), and it deletes as usual.

A pass over named runs (``job_ids``) is limited like any other, but neither waits, nor uses a
confirmation, nor clears the alert: it sees only part of what is due.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.lifecycle.alerts import raise_alert, resolve_alerts
from app.lifecycle.errors import RunConflict
from app.lifecycle.queries import reason_text
from app.lifecycle.runs import is_archived
from app.models import Alert, Job, count_rows

KIND = "deletion_limit"
SUBJECT = "cleanup"  # one held state for the site: the cleanup pass
CONFIRMATIONS_LOOKED_AT = 10  # the newest resolved alerts a pass looks at for an unused confirmation


class NothingHeld(RunConflict):
    """No cleanup pass is held by the deletion limit: there is nothing to confirm."""


def deletion_limit(max_per_pass: int, max_share: float, archived: int) -> int:
    """The most runs one pass may delete unconfirmed when ``archived`` runs are in the archived tier."""
    # Fraction(str(...)): 0.29 * 100 is 28.999999999999996 in floats, and must be 29.
    share = math.floor(Fraction(str(max_share)) * archived)
    return min(max_per_pass, max(1, share))


@dataclass(frozen=True)
class DeletionAllowance:
    """What one cleanup pass may delete: ``allowed`` of the ``due`` runs; ``held`` wait for an admin."""

    due: int
    archived: int
    limit: int
    released: int = 0  # the runs an admin's confirmation lets this pass delete beyond its limit
    confirmed_by: str | None = None
    waiting: bool = False  # an earlier pass held runs and no one has confirmed: delete none

    @property
    def allowed(self) -> int:
        return 0 if self.waiting else min(self.due, self.limit + self.released)

    @property
    def held(self) -> int:
        return self.due - self.allowed

    def as_dict(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "allowed": self.allowed,
            "held": self.held,
            "limit": self.limit,
            "archived": self.archived,
            "confirmed_by": self.confirmed_by,
            "waiting": self.waiting,
        }


def allow_deletions(
    session: Session, settings: Settings, due: Select, *, now: datetime, whole_pass: bool, dry_run: bool
) -> DeletionAllowance:
    """Decide how many of the ``due`` runs this pass may delete; unless a dry run, use the pending
    confirmation (a whole pass), open or refresh the alert when some are held, resolve it when none
    are (a whole pass), and commit."""
    due_count = count_rows(session, due)
    archived = session.scalar(select(func.count()).select_from(Job).where(is_archived())) or 0
    limit = deletion_limit(settings.delete_max_per_pass, settings.delete_max_share, archived)
    confirmation = pending_confirmation(session, lock=not dry_run) if whole_pass else None
    if confirmation is not None:
        data = confirmation.data or {}
        allowance = DeletionAllowance(
            due_count, archived, limit, released=int(data.get("due", 0)), confirmed_by=data.get("confirmed_by")
        )
    else:
        waiting = whole_pass and due_count > limit and held_alert(session) is not None
        allowance = DeletionAllowance(due_count, archived, limit, waiting=waiting)
    if dry_run:
        return allowance
    if confirmation is not None:
        used = {"used_at": now.isoformat(), "used_due": due_count, "used_allowed": allowance.allowed}
        confirmation.data = {**(confirmation.data or {}), **used}  # a new dict: the JSON column sees the change
    if allowance.held:
        raise_alert(
            session,
            KIND,
            "critical",
            held_message(allowance, settings),
            subject=SUBJECT,
            now=now,
            **allowance.as_dict(),
            max_per_pass=settings.delete_max_per_pass,
            max_share=settings.delete_max_share,
        )
    elif whole_pass:
        resolve_alerts(session, KIND, subject=SUBJECT, now=now)
    session.commit()
    return allowance


def held_message(allowance: DeletionAllowance, settings: Settings) -> str:
    """The alert's words: how many were due, the limit, and what to do."""
    if allowance.waiting:
        done = f"the cleanup pass holds all {allowance.held}: it waits for an admin since an earlier pass held them"
    else:
        confirmed = f" (with the confirmation of {allowance.confirmed_by})" if allowance.confirmed_by else ""
        done = f"the cleanup pass deletes the {allowance.allowed} oldest{confirmed} and holds {allowance.held}"
    return (
        f"{allowance.due} runs were due for deletion, more than the deletion limit allows: {done}. The limit is "
        f"{allowance.limit} run{'' if allowance.limit == 1 else 's'} a pass "
        f"(DELETE_MAX_PER_PASS={settings.delete_max_per_pass}, "
        f"DELETE_MAX_SHARE={settings.delete_max_share} of the {allowance.archived} archived runs). "
        "Check the retention policies and the server's clock; if these deletions are meant, an admin "
        "confirms them (Confirm deletions on the storage page, POST /api/scraper/lifecycle/confirm-deletions, "
        "or flask runs confirm-deletions --reason ...) and the next cleanup pass deletes them."
    )


def oldest_due(session: Session, due: Select, allowance: DeletionAllowance) -> Select:
    """The ``allowed`` oldest of the ``due`` runs, in the pass's order (``completed_at``, then id).

    Bounded by the last allowed run's key, not by a LIMIT: the pass pages through the query as it
    deletes, and a LIMIT would reach for the next due runs as the first ones leave the tier.
    """
    if allowance.allowed >= allowance.due:
        return due
    if allowance.allowed <= 0:
        return due.where(false())
    keys = due.with_only_columns(Job.completed_at, Job.id).order_by(Job.completed_at, Job.id)
    last_at, last_id = session.execute(keys.offset(allowance.allowed - 1).limit(1)).one()
    return due.where(or_(Job.completed_at < last_at, and_(Job.completed_at == last_at, Job.id <= last_id)))


def held_alert(session: Session, *, lock: bool = False) -> Alert | None:
    """The open ``deletion_limit`` alert of a held cleanup pass, or None."""
    query = select(Alert).where(Alert.kind == KIND, Alert.resolved_at.is_(None)).order_by(Alert.id.desc())
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return next((alert for alert in session.scalars(query) if (alert.data or {}).get("subject") == SUBJECT), None)


def pending_confirmation(session: Session, *, lock: bool = False) -> Alert | None:
    """The newest confirmation no pass has used yet, or None."""
    query = (
        select(Alert)
        .where(Alert.kind == KIND, Alert.resolved_at.is_not(None))
        .order_by(Alert.resolved_at.desc(), Alert.id.desc())
        .limit(CONFIRMATIONS_LOOKED_AT)
    )
    if lock:  # two passes at once (PostgreSQL): the second waits, then sees the confirmation used
        query = query.with_for_update().execution_options(populate_existing=True)
    for alert in session.scalars(query):
        data = alert.data or {}
        if data.get("confirmed_by") and not data.get("used_at"):
            return alert
    return None


def confirm_deletions(session: Session, *, actor: str, reason: object, now: datetime) -> Alert:
    """Release the held cleanup pass on an admin's word: record who and why, resolve the alert, commit.

    The caller has checked that ``actor`` is an admin. Raises ``BadInput`` without a reason and
    ``NothingHeld`` when no pass is held.
    """
    why = reason_text(reason, required=True)
    alert = held_alert(session, lock=True)
    if alert is None:
        raise NothingHeld("no cleanup pass is held by the deletion limit: there is nothing to confirm")
    alert.data = {**(alert.data or {}), "confirmed_by": actor, "reason": why, "confirmed_at": now.isoformat()}
    alert.message = f"{alert.message} Confirmed by {actor}: {why}"
    alert.resolved_at = now
    session.commit()
    return alert


def released_text(alert: Alert) -> str:
    """One line saying what a confirmation released, for the CLI and the dashboard."""
    data = alert.data or {}
    return (
        f"confirmed by {data.get('confirmed_by')}: the next cleanup pass may delete the {data.get('held')} held runs "
        f"({data.get('due')} were due when it last ran; the limit is {data.get('limit')} a pass)"
    )
