"""Cross-process locks in Redis: one holder per run, and a bounded number of compressions.

A lock expires ``ttl`` seconds after its holder stops renewing it (a killed worker), so work
resumes after a crash with no manual clean-up. A holder renews from a background thread with
``extend(ttl, replace_ttl=True)``: a plain extend would add up and outlive a dead holder.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError
from redis.lock import Lock

from app.lifecycle.errors import LifecycleError

log = logging.getLogger("agar.locks")


class RunBusy(LifecycleError):
    """Another worker holds this run's lock."""


class LockLost(LifecycleError):
    """Our lock expired while we worked (the process stalled past the lock's lifetime)."""


class _Renewal:
    def __init__(self, lock: Lock, ttl: float):
        self.lock = lock
        self.ttl = ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="agar-lock-renewal")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.lock.extend(self.ttl, replace_ttl=True)
            except LockError:
                self.lost = True
                log.error("lost lock %s", self.lock.name)
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class RedisLocks:
    def __init__(self, redis: Redis, ttl: float = 60.0, prefix: str = "agar:lock"):
        self.redis = redis
        self.ttl = ttl
        self.prefix = prefix
        self._held: dict[str, _Renewal] = {}

    def _lock(self, name: str) -> Lock:
        return self.redis.lock(f"{self.prefix}:{name}", timeout=self.ttl, blocking=False, thread_local=False)

    @contextmanager
    def _holding(self, lock: Lock) -> Iterator[_Renewal]:
        renewal = _Renewal(lock, self.ttl)
        self._held[lock.name] = renewal
        try:
            yield renewal
        finally:
            renewal.stop()
            self._held.pop(lock.name, None)
            try:
                lock.release()
            except LockError:
                log.error("lock %s had expired before release", lock.name)

    @contextmanager
    def run(self, job_id: uuid.UUID) -> Iterator[None]:
        """Hold the run's lock, or raise ``RunBusy`` at once if another worker has it."""
        lock = self._lock(f"run:{job_id}")
        if not lock.acquire(token=uuid.uuid4().hex.encode()):
            raise RunBusy(f"run {job_id} is being worked on elsewhere")
        with self._holding(lock):
            yield

    def is_locked(self, job_id: uuid.UUID) -> bool:
        return bool(self.redis.exists(f"{self.prefix}:run:{job_id}"))

    def check_held(self) -> None:
        """Raise ``LockLost`` if any lock this process holds has expired."""
        for name, renewal in list(self._held.items()):
            if renewal.lost:
                raise LockLost(f"lock {name} expired while working")

    @contextmanager
    def compression_slot(self, slots: int, wait_seconds: float = 6 * 3600) -> Iterator[int]:
        """Hold one of ``slots`` compression slots shared by every worker (ARCHIVE_MAX_CONCURRENCY)."""
        deadline = time.monotonic() + wait_seconds
        while True:
            for index in range(slots):
                lock = self._lock(f"compress:{index}")
                if lock.acquire(token=uuid.uuid4().hex.encode()):
                    with self._holding(lock):
                        yield index
                    return
            if time.monotonic() > deadline:
                raise RunBusy(f"no compression slot free within {wait_seconds:.0f} s")
            time.sleep(0.2)
