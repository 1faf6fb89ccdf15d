"""One ``lifecycle_events`` row per attempt at an action on a run, whatever its outcome.

The row is written as ``started`` once the run's lock is held, and turned into the outcome in
the same transaction as the work's own record. A row still ``started`` whose run nobody holds is
an attempt a killed process left: reconcile records it as failed ("interrupted").
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import delete

from app.lifecycle.alerts import raise_alert
from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import FolderKept, RunNotFound
from app.lifecycle.locks import RunBusy
from app.models import Job, LifecycleEvent

SUPERSEDED = "superseded"
INTERRUPTED = "interrupted: the process doing it stopped before it finished"


def state_token(job: Job) -> str:
    """A short fingerprint of what the run is (tier, copies, protection): a task carries the one
    it was asked against, and does nothing if the run has changed since."""
    parts = (
        job.status,
        job.archived_at,
        job.archive_path,
        job.restored_at,
        job.deleted_at,
        job.purged_at,
        job.retain_until,
        job.keep_forever,
    )
    text = "|".join(
        "" if part is None else part.isoformat() if hasattr(part, "isoformat") else str(part) for part in parts
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Attempt:
    """The event being written for one attempt; operations fill in outcome, bytes and details."""

    def __init__(self, lc: Lifecycle, job_id: uuid.UUID, action: str, actor: str, reason: str | None):
        self.lc = lc
        self.details: dict[str, Any] = {}
        self.event = LifecycleEvent(
            job_id=job_id, action=action, actor=actor, reason=reason, outcome="started", started_at=lc.now()
        )
        self.added = False

    def begin(self) -> None:
        """Write the attempt as ``started`` (the run's lock is held), so a crash from here on is seen."""
        self.lc.session.add(self.event)
        self.lc.session.commit()

    def _finish(self, outcome: str) -> None:
        self.event.outcome = outcome
        self.event.finished_at = self.lc.now()
        self.event.details = self.details or None
        self.lc.session.add(self.event)
        self.added = True

    def succeed(self, *, bytes_before: int | None = None, bytes_after: int | None = None) -> str:
        """Mark the attempt a success; the operation's own commit writes it together with the work."""
        self.event.bytes_before = bytes_before
        self.event.bytes_after = bytes_after
        self._finish("succeeded")
        return "succeeded"

    def skip(self, why: str) -> str:
        self.event.error = why
        self._finish("skipped")
        self.lc.session.commit()
        return "skipped"

    def supersede(self, job: Job, expected: str | None) -> bool:
        """Whether the run changed since the request (``expected`` is its state token then): if so,
        record the attempt as skipped and let the operation return ``superseded`` without acting."""
        if expected is None or state_token(job) == expected:
            return False
        self.skip(f"{SUPERSEDED}: the run changed since this was asked")
        return True

    def fail(self, error: BaseException | str) -> None:
        """Record a failure the operation noticed itself (nothing raised); it commits."""
        self.event.error = error[:2000] if isinstance(error, str) else _error_text(error)
        self._finish("failed")
        self.lc.session.commit()


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


@contextmanager
def attempt(
    lc: Lifecycle,
    job_id: uuid.UUID,
    action: str,
    actor: str,
    reason: str | None = None,
    *,
    take_lock: bool = False,
) -> Iterator[Attempt]:
    """Record the attempt: success or skip as the operation says, failure when it raises (then re-raise).

    With ``take_lock`` the run's lock is taken first (a busy run is recorded as skipped); without
    it the caller already holds it.
    """
    record = Attempt(lc, job_id, action, actor, reason)
    try:
        with lc.locks.run(job_id) if take_lock else nullcontext():
            record.begin()
            yield record
    except RunNotFound:
        lc.session.rollback()
        if record.event.id is not None:  # no such run: no history to keep for it
            lc.session.execute(delete(LifecycleEvent).where(LifecycleEvent.id == record.event.id))
            lc.session.commit()
        raise
    except BaseException as error:
        lc.session.rollback()
        if isinstance(error, FolderKept):  # a person must see it: which files, and an alert
            record.details["files"] = error.differences[:100]
            raise_alert(lc.session, now=lc.now(), **error.alert)
        record.event.outcome = "skipped" if isinstance(error, RunBusy) else "failed"
        record.event.error = _error_text(error)
        record.event.finished_at = lc.now()
        record.event.details = record.details or None
        lc.session.add(record.event)
        lc.session.commit()
        raise
    else:
        if not record.added:
            record._finish("succeeded")
            lc.session.commit()
