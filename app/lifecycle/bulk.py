"""Acting on several runs at once: the dashboard's bulk archive, restore, extend, delete and undelete.

Each run is acted on by the same operation as alone (``archival``, ``deletion``), one after another,
under its own lock and with its own event, so a bulk action is exactly the single actions it
stands for. One run failing or refused stops nothing: its outcome is recorded and the next run
goes on. The door checks the asker's rights per run before queueing (``refusals``); the run's
state token, taken then, makes an operation on a run that changed meanwhile do nothing
(``superseded``), as a single action's task does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.lifecycle import access
from app.lifecycle.archival import archive_run, restore_run
from app.lifecycle.context import Lifecycle
from app.lifecycle.deletion import delete_run, extend_retention, undelete_run
from app.lifecycle.errors import BadInput, LifecycleError
from app.lifecycle.events import SUPERSEDED
from app.models import Job

ACTIONS = ("archive", "restore", "extend", "delete", "undelete")
MAX_RUNS = 200  # runs in one ask: a few pages of the lists
# What each tier's list offers (the rules still decide per run).
OFFERED = {
    "active": ("archive", "extend", "delete"),
    "archived": ("restore", "extend", "delete"),
    "deleted": ("undelete", "delete"),
}
TITLES = {
    "archive": "Archive the selected runs",
    "restore": "Restore the selected runs",
    "extend": "Extend the selected runs' retention",
    "delete": "Delete the selected runs",
    "undelete": "Undelete the selected runs",
}
LABELS = {
    "archive": "Archive",
    "restore": "Restore",
    "extend": "Extend retention",
    "delete": "Delete",
    "undelete": "Undelete",
}


@dataclass(frozen=True)
class BulkAsk:
    """What to do to every selected run, as asked (checked by ``checked``)."""

    action: str
    reason: str | None = None
    strategy: str | None = None  # delete: soft or hard (admins); None: the configured one
    retain_until: datetime | None = None  # extend
    keep_forever: bool = False  # extend

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "strategy": self.strategy,
            "retain_until": self.retain_until.isoformat() if self.retain_until else None,
            "keep_forever": self.keep_forever,
        }

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> BulkAsk:
        until = values.get("retain_until")
        return cls(
            action=values["action"],
            reason=values.get("reason"),
            strategy=values.get("strategy"),
            retain_until=datetime.fromisoformat(until) if until else None,
            keep_forever=bool(values.get("keep_forever")),
        )


def checked(ask: BulkAsk, *, confirmed: bool) -> BulkAsk:
    """The ask, or a BadInput saying what is missing: the same needs as the single actions."""
    if ask.action not in ACTIONS:
        raise BadInput(f"action must be one of {', '.join(ACTIONS)}")
    if ask.action in ("extend", "delete") and not ask.reason:
        raise BadInput(f"say why: {LABELS[ask.action].lower()} needs a reason")
    if ask.action == "delete" and not confirmed:
        raise BadInput("confirm the deletion")
    if ask.action == "extend" and ask.retain_until is None and not ask.keep_forever:
        raise BadInput("choose a date to keep them until, or keep them forever")
    return ask


def run_ids(raw: Iterable[str]) -> list[uuid.UUID]:
    """The selected runs' ids, each once, in the order given; at least one and at most MAX_RUNS."""
    ids: list[uuid.UUID] = []
    for value in raw:
        try:
            job_id = uuid.UUID(str(value).strip())
        except ValueError:
            raise BadInput(f"{str(value)[:40]!r} is not a run id") from None
        if job_id not in ids:
            ids.append(job_id)
    if not ids:
        raise BadInput("select the runs to act on first")
    if len(ids) > MAX_RUNS:
        raise BadInput(f"at most {MAX_RUNS} runs at once ({len(ids)} selected)")
    return ids


def rule_action(ask: BulkAsk, actor: access.Actor, configured_strategy: str) -> str:
    """The action of ``app.lifecycle.access`` the ask is, for each run (a deletion: soft or hard)."""
    if ask.action == "delete":
        return access.deletion_action(actor, ask.strategy, configured_strategy)
    return ask.action


def _one(lc: Lifecycle, ask: BulkAsk, job_id: uuid.UUID, actor: str, expected_state: str | None) -> str:
    if ask.action == "archive":
        return archive_run(lc, job_id, actor=actor, reason=ask.reason, manual=True, expected_state=expected_state)
    if ask.action == "restore":
        return restore_run(lc, job_id, actor=actor, reason=ask.reason, expected_state=expected_state)
    if ask.action == "delete":
        return delete_run(
            lc, job_id, actor=actor, reason=ask.reason or "", strategy=ask.strategy, expected_state=expected_state
        )
    if ask.action == "extend":
        return extend_retention(
            lc,
            job_id,
            actor=actor,
            reason=ask.reason or "",
            retain_until=ask.retain_until,
            keep_forever=True if ask.keep_forever else None,
        )
    return undelete_run(lc, job_id, actor=actor, reason=ask.reason)


def act_on_runs(
    lc: Lifecycle,
    ask: BulkAsk,
    runs: list[tuple[uuid.UUID, str | None]],
    *,
    actor: str,
    on_run: Callable[[int, dict[str, Any]], None] = lambda index, state: None,
) -> list[dict[str, Any]]:
    """Do ``ask`` to each run (id, the state token it was asked against), one after another; each
    run's outcome — succeeded, skipped, superseded or failed, with the error — also as it comes
    (``on_run(index, state)``, ``working`` first)."""
    results = []
    for index, (job_id, expected) in enumerate(runs):
        on_run(index, {"status": "working"})
        try:
            outcome = _one(lc, ask, job_id, actor, expected)
            state: dict[str, Any] = {"status": outcome}
            if outcome == SUPERSEDED:
                state["error"] = "the run changed since it was asked: nothing done"
        except LifecycleError as error:
            lc.session.rollback()
            state = {"status": "failed", "error": str(error)}
        except Exception as error:  # noqa: BLE001 - one run's failure (a full disk) must not stop the others
            lc.session.rollback()
            state = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        result = {"job_id": str(job_id), **state}
        results.append(result)
        on_run(index, state)
    return results


def sort_out(
    session: Any,
    actor: access.Actor,
    ask: BulkAsk,
    ids: list[uuid.UUID],
    *,
    rules: Any,
    now: datetime,
    grace_days: int,
    configured_strategy: str,
) -> tuple[list[Any], list[dict[str, Any]]]:
    """The selected runs the actor may ``ask`` now, and the others with why not (a run they may not
    see is "no such run", as everywhere). Decided as the single actions decide, run by run."""
    found = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(ids)))}
    action = rule_action(ask, actor, configured_strategy)
    accepted, refused = [], []
    for job_id in ids:
        job = found.get(job_id)
        if job is None or not access.may_see(actor, job):
            refused.append({"job_id": str(job_id), "name": None, "status": "refused", "error": "no such run"})
            continue
        held = access.held_by(rules, job, action)
        error = access.refusal(actor, action, job, now=now, grace_days=grace_days, held=held)
        if error is None:
            accepted.append(job)
        else:
            refused.append({"job_id": str(job_id), "name": job.name, "status": "refused", "error": str(error)})
    return accepted, refused
