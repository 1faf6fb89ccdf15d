"""One ``lifecycle_events`` row per attempt at an action on a run, whatever its outcome."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import RunNotFound
from app.lifecycle.locks import RunBusy
from app.models import LifecycleEvent


class Attempt:
    """The event being written for one attempt; operations fill in outcome, bytes and details."""

    def __init__(self, lc: Lifecycle, job_id: uuid.UUID, action: str, actor: str, reason: str | None):
        self.lc = lc
        self.details: dict[str, Any] = {}
        self.event = LifecycleEvent(
            job_id=job_id, action=action, actor=actor, reason=reason, outcome="succeeded", started_at=lc.now()
        )
        self.added = False

    def _add(self) -> None:
        self.event.finished_at = self.lc.now()
        self.event.details = self.details or None
        self.lc.session.add(self.event)
        self.added = True

    def succeed(self, *, bytes_before: int | None = None, bytes_after: int | None = None) -> str:
        """Add the success event to the session; the operation's own commit writes both together."""
        self.event.bytes_before = bytes_before
        self.event.bytes_after = bytes_after
        self._add()
        return "succeeded"

    def skip(self, why: str) -> str:
        self.event.outcome = "skipped"
        self.event.error = why
        self._add()
        self.lc.session.commit()
        return "skipped"


@contextmanager
def attempt(lc: Lifecycle, job_id: uuid.UUID, action: str, actor: str, reason: str | None = None) -> Iterator[Attempt]:
    """Record the attempt: success or skip as the operation says, failure when it raises (then re-raise)."""
    record = Attempt(lc, job_id, action, actor, reason)
    try:
        yield record
    except RunNotFound:
        lc.session.rollback()
        raise
    except BaseException as error:
        lc.session.rollback()
        record.event.outcome = "skipped" if isinstance(error, RunBusy) else "failed"
        record.event.error = f"{type(error).__name__}: {error}"[:2000]
        record._add()
        lc.session.commit()
        raise
    else:
        if not record.added:
            record._add()
            lc.session.commit()
