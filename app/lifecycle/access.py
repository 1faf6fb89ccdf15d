"""Who may see a run, and what an actor may do to it now: the one home of these rules.

Every door asks here — the API (which turns a refusal into its status), the dashboard (which shows
only the buttons that would work), the CLI (its dry runs, in-process work and ``--enqueue``) — and
the operations ask again under the run's lock, where the run's state is certain. Nothing here
knows HTTP: a refusal says what kind of no it is (``forbidden``, ``conflict`` or ``invalid``) and
why, in words and a short code.

Roles: an admin sees every run and may do everything to it; a member sees their own runs and may
do everything to them but hard-delete and purge (SPEC §7). The scheduler and the CLI act as the
``SYSTEM`` actor, which has an admin's rights: they are run by whoever runs the site.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.orm import Session

from app.config import DELETION_STRATEGIES
from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import LifecycleError, RunConflict
from app.lifecycle.retention import legal_hold_of
from app.lifecycle.runs import tier_from
from app.models import FINISHED_STATUSES, Job, JobAudit, LifecycleEvent

# What can be done to one run, in the product's words.
ACTIONS = ("archive", "restore", "download", "delete", "hard_delete", "undelete", "extend", "purge")
# What a legal hold stops (SPEC §9): every way a run's data could be destroyed.
HELD_BACK = ("delete", "hard_delete", "purge")


class Actor(Protocol):
    """Whoever asks: a logged-in user (``app.auth.users.Caller``), or the system."""

    @property
    def id(self) -> uuid.UUID | None: ...

    @property
    def is_admin(self) -> bool: ...


@dataclass(frozen=True)
class SystemActor:
    """The scheduler, the CLI and the operations under their locks: an admin's rights, no user id."""

    id: None = None
    is_admin: bool = True


SYSTEM = SystemActor()


class NotAllowed(LifecycleError):
    """This actor may not do this to this run now; ``kind`` says which kind of no, ``code`` names the rule."""

    kind = "conflict"
    default_code = "conflict"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class Forbidden(NotAllowed):
    """The actor's role does not allow it (a member hard-deleting, say), whatever the run's state."""

    kind = "forbidden"
    default_code = "forbidden"


class NotNow(NotAllowed, RunConflict):
    """The run's state does not allow it (a running run archived, a deleted one extended)."""

    kind = "conflict"


class BadAsk(NotAllowed):
    """The ask itself is malformed (an unknown deletion strategy)."""

    kind = "invalid"
    default_code = "bad_request"


# -- who may see a run -----------------------------------------------------------------------------


def owns(actor: Actor, owner: uuid.UUID | str | None) -> bool:
    """Whether ``actor`` may see what ``owner`` made (a run, a task): their own, or anything for an admin."""
    return actor.is_admin or (actor.id is not None and owner is not None and str(owner) == str(actor.id))


def may_see(actor: Actor, job: Any) -> bool:
    """Members see their own runs; admins (and the system) every run. ``job`` is a row or a ``Job``."""
    return owns(actor, job.created_by)


def visible(actor: Actor) -> ColumnElement[bool]:
    """SQL condition on ``jobs``: the runs ``actor`` may see."""
    if actor.is_admin:
        return true()
    return false() if actor.id is None else Job.created_by == actor.id  # an unowned run is an admin's


def visible_runs(actor: Actor, *columns: Any) -> Select:
    """A SELECT of the runs ``actor`` may see (whole ``Job`` rows unless ``columns`` are given)."""
    query = select(*columns) if columns else select(Job)
    return query if actor.is_admin else query.where(visible(actor))


def events_visible(actor: Actor) -> ColumnElement[bool]:
    """SQL condition on ``lifecycle_events``: the history of the runs ``actor`` may see.

    A purged or hard-deleted run's events are an admin's alone: its row (and so its owner) may be gone.
    """
    if actor.is_admin:
        return true()
    return LifecycleEvent.job_id.in_(select(Job.id).where(visible(actor)))


def audit_visible(actor: Actor) -> ColumnElement[bool]:
    """SQL condition on ``job_audit``: the deletions of ``actor``'s runs (the audit row keeps the owner)."""
    return true() if actor.is_admin else JobAudit.created_by == actor.id


def require_admin(actor: Actor, doing: str) -> None:
    """Refuse a member what covers the whole site (every user's runs, the disk): ``only admins {doing}``."""
    if not actor.is_admin:
        raise Forbidden(f"only admins {doing}")


# -- what may be done to a run -----------------------------------------------------------------------


def _tier(job: Any) -> str:
    """The run's tier (``tier_from``), with ``purged`` apart from ``deleted``: only its row and audit remain."""
    if job.purged_at is not None:
        return "purged"
    return tier_from(job.archived_at, job.deleted_at)


def _owner_or_admin(actor: Actor, job: Any, doing: str) -> None:
    if not may_see(actor, job):
        raise Forbidden(f"only admins {doing} others' runs")


def _finished(job: Any, then: str) -> None:
    if job.status not in FINISHED_STATUSES:
        raise NotNow(f"run {job.id} is {job.status}; {then}", "not_finished")


def _in_tier(job: Any, *tiers: str) -> None:
    tier = _tier(job)
    if tier not in tiers:
        raise NotNow(f"run {job.id} is {tier}; this needs a run that is {' or '.join(tiers)}", "wrong_tier")


def grace_ends(job: Any, grace_days: int) -> datetime | None:
    """When a run in the trash stops being undeletable (DELETE_GRACE_DAYS after its deletion), or None."""
    if job.deleted_at is None or job.purged_at is not None:
        return None
    return job.deleted_at + timedelta(days=grace_days)


def _grace_left(job: Any, now: datetime, grace_days: int) -> None:
    ends = grace_ends(job, grace_days)
    if ends is not None and now >= ends:
        raise NotNow(f"the grace period of run {job.id} ended at {ends:%Y-%m-%d %H:%M} UTC", "grace_ended")


def _check(actor: Actor, action: str, job: Any, now: datetime, grace_days: int, held: str | None) -> None:
    if action not in ACTIONS:
        raise ValueError(f"no action {action!r}")  # a programming error, not a refusal
    if action in ("hard_delete", "purge") and not actor.is_admin:
        raise Forbidden("only admins may hard-delete" if action == "hard_delete" else "only admins purge the trash")
    _owner_or_admin(actor, job, "act on")
    if held is not None and action in HELD_BACK:
        raise NotNow(
            f"run {job.id} is under the legal hold of retention policy '{held}': nothing it holds is deleted "
            "until an admin lifts the hold",
            "legal_hold",
        )
    if action == "archive":
        _in_tier(job, "active")
        _finished(job, "only finished runs are archived")
    elif action == "restore":
        _in_tier(job, "archived")
    elif action == "download":  # the archive file, or one member of it
        _in_tier(job, "archived")
    elif action == "delete":
        _in_tier(job, "active", "archived")
        _finished(job, "finish or cancel it before deleting it")
    elif action == "hard_delete":
        _finished(job, "finish or cancel it before deleting it")
    elif action == "undelete":
        if job.purged_at is not None:
            raise NotNow(f"run {job.id} was purged; only its audit remains", "purged")
        _in_tier(job, "deleted")
        _grace_left(job, now, grace_days)
    elif action == "extend":
        _in_tier(job, "active", "archived")
    elif action == "purge":
        _in_tier(job, "deleted")


def refusal(
    actor: Actor, action: str, job: Any, *, now: datetime, grace_days: int, held: str | None = None
) -> NotAllowed | None:
    """Why ``actor`` may not ``action`` this run now, or None when they may.

    ``job`` is a ``Job`` or a row with its columns; ``now`` and ``grace_days`` (DELETE_GRACE_DAYS)
    decide whether an undelete is still possible; ``held`` names the retention policy whose legal
    hold holds the run (``hold_on``), which refuses every deletion. A run the actor may not see is
    ``Forbidden``: doors that hide such runs answer "not found" before asking.
    """
    try:
        _check(actor, action, job, now, grace_days, held)
    except NotAllowed as error:
        return error
    return None


def require(actor: Actor, action: str, job: Any, *, now: datetime, grace_days: int, held: str | None = None) -> None:
    """Raise the refusal if ``actor`` may not ``action`` this run now."""
    if (error := refusal(actor, action, job, now=now, grace_days=grace_days, held=held)) is not None:
        raise error


def hold_on(session: Session, job: Any, action: str | None = None) -> str | None:
    """The retention policy whose legal hold holds the run, when ``action`` is one a hold stops
    (or, with no action, whatever is asked): what ``refusal``'s ``held`` wants."""
    return legal_hold_of(session, job) if action is None or action in HELD_BACK else None


def held_by(rules: Any, job: Any, action: str | None = None) -> str | None:
    """``hold_on`` from rules already loaded (``retention.cached_rules``): for a page of runs, no query each."""
    if action is not None and action not in HELD_BACK:
        return None
    holding = rules.decide(job)[1]
    return holding.name if holding is not None else None


def refusal_under_lock(lc: Lifecycle, action: str, job: Job) -> NotAllowed | None:
    """The refusal an operation finds under the run's lock, where the run's state is certain.

    The door checked the actor's role already; here the system asks, on the run as it is now.
    """
    held = hold_on(lc.session, job, action)
    return refusal(SYSTEM, action, job, now=lc.now(), grace_days=lc.settings.delete_grace_days, held=held)


def require_under_lock(lc: Lifecycle, action: str, job: Job) -> None:
    """Raise the refusal an operation finds under the run's lock (see ``refusal_under_lock``)."""
    if (error := refusal_under_lock(lc, action, job)) is not None:
        raise error


def deletion_action(actor: Actor, asked: str | None, configured: str) -> str:
    """The action a deletion is: ``delete`` (soft) or ``hard_delete``; only admins choose the strategy.

    ``asked`` is the strategy the caller named (None: DELETION_STRATEGY, ``configured``).
    """
    if asked is not None:
        if asked not in DELETION_STRATEGIES:
            raise BadAsk("strategy must be soft or hard")
        if not actor.is_admin:
            raise Forbidden("only admins choose the deletion strategy")
    strategy = asked or configured
    if strategy == "hard" and not actor.is_admin:
        raise Forbidden("only admins may hard-delete (DELETION_STRATEGY is hard)")
    return "hard_delete" if strategy == "hard" else "delete"


STRATEGY_OF = {"delete": "soft", "hard_delete": "hard"}


def possible_actions(
    actor: Actor, job: Any, *, now: datetime, grace_days: int, configured_strategy: str, held: str | None = None
) -> Mapping[str, bool]:
    """Which actions would be accepted now: what the dashboard shows as buttons.

    ``delete`` is true when some deletion the actor may ask for would be: the configured one, or for
    an admin either strategy (an admin may still hard-delete a run in the trash).
    """
    can = {action: refusal(actor, action, job, now=now, grace_days=grace_days, held=held) is None for action in ACTIONS}
    try:
        configured = deletion_action(actor, None, configured_strategy)
    except NotAllowed:
        configured = None
    can["delete"] = bool((configured and can[configured]) or (actor.is_admin and (can["delete"] or can["hard_delete"])))
    can["choose_strategy"] = actor.is_admin
    return can
