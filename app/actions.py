"""What a user may ask of a run, checked before the work is handed to RQ.

One set of rules for every door (the JSON API and the dashboard): a request that cannot succeed
is refused now, with a status and a reason, not turned into a failed task later. The lifecycle
core checks the run's state again under its lock when the task runs.
"""

from __future__ import annotations

from app.auth.users import Caller
from app.lifecycle import deletion
from app.lifecycle.errors import LifecycleError
from app.lifecycle.runs import tier_of
from app.models import FINISHED_STATUSES, Job


class Refused(LifecycleError):
    """The user may not do this to this run now: ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def require_tier(job: Job, *tiers: str) -> None:
    tier = tier_of(job)
    if tier not in tiers:
        raise Refused(409, f"run {job.id} is {tier}; this needs a run that is {' or '.join(tiers)}", "wrong_tier")


def check_archive(job: Job) -> None:
    """Archive now (a manual override of the age rule): an active, finished run."""
    require_tier(job, "active")
    if job.status not in FINISHED_STATUSES:
        raise Refused(409, f"run {job.id} is {job.status}; only finished runs are archived", "not_finished")


def check_restore(job: Job) -> None:
    """Restore a working copy: an archived run."""
    require_tier(job, "archived")


def check_undelete(job: Job) -> None:
    """Undelete: a soft-deleted run (the core checks the grace period)."""
    require_tier(job, "deleted")


def deletion_strategy(job: Job, user: Caller, asked: str | None, configured: str) -> str:
    """Return the strategy a deletion will use; only admins choose one, or hard-delete at all."""
    if asked is not None:
        if asked not in deletion.STRATEGIES:
            raise Refused(400, "strategy must be soft or hard")
        if not user.is_admin:
            raise Refused(403, "only admins choose the deletion strategy")
    strategy = asked or configured
    if strategy == "hard" and not user.is_admin:
        raise Refused(403, "only admins may hard-delete (DELETION_STRATEGY is hard)")
    if job.deleted_at is not None and strategy == "soft":
        raise Refused(409, f"run {job.id} is already deleted", "wrong_tier")
    if job.status not in FINISHED_STATUSES:
        raise Refused(409, f"run {job.id} is {job.status}; finish or cancel it first", "not_finished")
    return strategy


def check_retention(job: Job, user: Caller) -> None:
    """Members change the retention of their own runs; admins of any run."""
    if job.created_by != user.id and not user.is_admin:
        raise Refused(403, "only admins change the retention of others' runs")
