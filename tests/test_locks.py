"""Per-run locks and compression slots in real Redis: exclusive, renewed while held, expiring when the holder dies."""

import subprocess
import sys
import time
import uuid

import pytest

from app.lifecycle.locks import RedisLocks, RunBusy
from tests.support import TEST_REDIS_URL


def test_a_run_lock_is_exclusive(redis_db):
    job_id = uuid.uuid4()
    one, two = RedisLocks(redis_db), RedisLocks(redis_db)
    with one.run(job_id):
        with pytest.raises(RunBusy):
            with two.run(job_id):
                pass
        with two.run(uuid.uuid4()):  # other runs are free
            pass
    with two.run(job_id):
        pass


def test_a_held_lock_is_renewed_past_its_ttl(redis_db):
    job_id = uuid.uuid4()
    locks = RedisLocks(redis_db, ttl=0.6)
    with locks.run(job_id):
        time.sleep(1.5)
        assert locks.is_locked(job_id)
        locks.check_held()
    assert not locks.is_locked(job_id)


def test_a_dead_holders_lock_expires_and_never_outlives_its_ttl(redis_db):
    job_id = uuid.uuid4()
    script = (
        "import os, signal, uuid, time; from redis import Redis; from app.lifecycle.locks import RedisLocks;"
        f"locks = RedisLocks(Redis.from_url('{TEST_REDIS_URL}'), ttl=1.5);"
        f"ctx = locks.run(uuid.UUID('{job_id}')); ctx.__enter__(); time.sleep(2); os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert redis_db.pttl(f"agar:lock:run:{job_id}") <= 1500  # renewal replaced the TTL, never added to it
    deadline = time.monotonic() + 3
    while RedisLocks(redis_db).is_locked(job_id):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with RedisLocks(redis_db).run(job_id):
        pass


def test_compression_slots_bound_concurrency(redis_db):
    locks = RedisLocks(redis_db)
    with locks.compression_slot(2) as first, locks.compression_slot(2) as second:
        assert {first, second} == {0, 1}
        with pytest.raises(RunBusy):
            with RedisLocks(redis_db).compression_slot(2, wait_seconds=0.3):
                pass
    with locks.compression_slot(2) as again:
        assert again == 0
