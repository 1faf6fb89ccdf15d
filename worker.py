"""Background processes: ``python worker.py`` runs an RQ worker, ``python worker.py scheduler`` the scheduler.

The app is built once, before the worker forks a work horse per job; each job runs inside an
app context, and the horse drops the database connections it inherited from its parent.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from rq import Worker

from app import ConfigError, create_app
from app.extensions import db, redis_connection
from app.tasks import record_failed_attempt, repair_at_worker_start, task_queue

log = logging.getLogger("agar.worker")


def wait_for_redis(connection: Redis, seconds: float = 30.0) -> None:
    """Wait for Redis to answer (``make run`` may have just started it); fail loudly after that."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            connection.ping()
            return
        except RedisConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class AppWorker(Worker):
    """An RQ worker whose jobs run inside the Flask app's context."""

    flask_app = None

    def perform_job(self, job, queue):  # type: ignore[no-untyped-def]
        with self.flask_app.app_context():
            # The horse is a fork: connections pooled by the parent must not be shared with it.
            db.engine.dispose(close=False)
            try:
                return super().perform_job(job, queue)
            finally:
                db.session.remove()

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string=""):  # type: ignore[no-untyped-def]
        # Before RQ schedules the retry (which saves the job, meta included): /tasks/{id} shows the error.
        try:
            record_failed_attempt(job, exc_string)
        except RedisError as error:  # RQ's own handling below still runs (and says Redis is gone)
            log.error("task %s: could not record its failure: %s", job.id, error)
        return super().handle_job_failure(job, queue, started_job_registry=started_job_registry, exc_string=exc_string)


def run_worker(app, burst: bool = False) -> bool:  # type: ignore[no-untyped-def]
    connection = redis_connection(app)
    wait_for_redis(connection)
    AppWorker.flask_app = app
    with app.app_context():
        try:
            repairs = repair_at_worker_start()
        except Exception:  # a failed repair is logged loudly, and the worker still serves the queue
            log.exception("reconcile at worker start failed")
        else:
            log.info("at start: %s", {key: value for key, value in repairs.items() if value})
    worker = AppWorker([task_queue(connection)], connection=connection)
    return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def run_scheduler(app) -> None:  # type: ignore[no-untyped-def]
    from app.schedule import run_scheduler_loop

    connection = redis_connection(app)
    wait_for_redis(connection)
    run_scheduler_loop(app, connection)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", choices=("worker", "scheduler"), default="worker")
    parser.add_argument("--burst", action="store_true", help="worker: exit when the queues are empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        app = create_app(check_database=True)
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    if args.role == "scheduler":
        run_scheduler(app)
        return 0
    run_worker(app, burst=args.burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
