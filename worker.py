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
from rq import Queue, Worker

from app import ConfigError, create_app
from app.extensions import db, redis_connection

QUEUES = ("agar",)


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


def run_worker(app, burst: bool = False) -> bool:  # type: ignore[no-untyped-def]
    connection = redis_connection(app)
    wait_for_redis(connection)
    AppWorker.flask_app = app
    queues = [Queue(name, connection=connection) for name in QUEUES]
    worker = AppWorker(queues, connection=connection)
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
        app = create_app()
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
