"""What every lifecycle operation works with: a session, the settings, the store, the locks, a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from sqlalchemy.orm import Session

from app.config import Settings
from app.lifecycle.locks import RedisLocks
from app.lifecycle.store import LocalArchiveStore
from app.models import utcnow


@dataclass
class Lifecycle:
    session: Session
    settings: Settings
    store: LocalArchiveStore
    locks: RedisLocks
    clock: Callable[[], datetime] = utcnow
    # Called at each step of each operation; tests inject faults (exceptions, a killed process).
    fault: Callable[[str], None] | None = None
    # Called with (bytes done, bytes in all) as an archive is written or restored: a task's progress.
    progress: Callable[[int, int], None] | None = None

    @classmethod
    def build(cls, session: Session, settings: Settings, redis: Redis, lock_ttl: float = 60.0, **options) -> Lifecycle:  # type: ignore[no-untyped-def]
        store = LocalArchiveStore(settings.archive_base_path, settings.trash_path)
        return cls(session, settings, store, RedisLocks(redis, ttl=lock_ttl), **options)

    def now(self) -> datetime:
        return self.clock()

    def checkpoint(self, step: str) -> None:
        """Mark a step boundary: stop if our lock was lost, and let tests inject a fault here."""
        self.locks.check_held()
        if self.fault is not None:
            self.fault(step)
