"""``/healthz``: are the database, Redis, the run storage, an RQ worker and the scheduler there? 503 when not.

Anyone sees which checks pass; only an admin's API token sees their details and errors.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request
from rq import Worker
from sqlalchemy import text

from app.auth.users import bearer_caller
from app.extensions import db, redis_connection, settings
from app.schedule import HEARTBEAT_MISSED_POLLS, POLL_SECONDS, last_heartbeat
from app.tasks import QUEUE_NAME, task_queue

bp = Blueprint("health", __name__)


def _check_database() -> dict[str, Any]:
    db.session.execute(text("SELECT 1"))
    return {"ok": True}


def _check_redis() -> dict[str, Any]:
    redis_connection().ping()
    return {"ok": True}


def _check_workers() -> dict[str, Any]:
    # Worker.all lists the workers whose registration has not expired: a killed worker drops out
    # within RQ's worker TTL (7 minutes), one that stopped cleanly at once.
    count = len(Worker.all(queue=task_queue(redis_connection())))
    if count == 0:
        return {"ok": False, "count": 0, "error": f"no live RQ worker on the {QUEUE_NAME!r} queue"}
    return {"ok": True, "count": count}


def _check_scheduler() -> dict[str, Any]:
    last = last_heartbeat(redis_connection())
    if last is None:
        return {"ok": False, "last_heartbeat": None, "error": "no scheduler heartbeat"}
    age = (datetime.now(UTC) - last).total_seconds()
    if age > HEARTBEAT_MISSED_POLLS * POLL_SECONDS:
        error = f"no scheduler heartbeat for {age:.0f} s (it beats every {POLL_SECONDS:.0f} s)"
        return {"ok": False, "last_heartbeat": last, "error": error}
    return {"ok": True, "last_heartbeat": last}


def _check_disk() -> dict[str, Any]:
    root = settings().scraper_data_path
    if not root.is_dir():
        return {"ok": False, "error": f"{root} does not exist"}
    if not os.access(root, os.W_OK | os.X_OK):
        return {"ok": False, "error": f"{root} is not writable"}
    usage = shutil.disk_usage(root)
    return {"ok": True, "total_bytes": usage.total, "free_bytes": usage.free}


CHECKS = (
    ("database", _check_database),
    ("redis", _check_redis),
    ("disk", _check_disk),
    ("workers", _check_workers),
    ("scheduler", _check_scheduler),
)


@bp.get("/healthz")
def healthz() -> Any:
    checks: dict[str, Any] = {}
    for name, check in CHECKS:
        if name in ("workers", "scheduler") and not checks["redis"]["ok"]:
            # Both are read from Redis: say so rather than wait for its timeout twice more.
            checks[name] = {"ok": False, "error": "unknown: Redis does not answer"}
            continue
        try:
            checks[name] = check()
        except Exception as error:  # a health check reports every failure instead of raising
            checks[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    if not checks["database"]["ok"]:
        db.session.rollback()
    healthy = all(check["ok"] for check in checks.values())
    if not (checks["database"]["ok"] and _admin_asks()):
        # An error names hosts, ports and paths (a Redis URL, the storage root): anonymous callers,
        # load balancers among them, need only which check failed.
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return {"status": "ok" if healthy else "unavailable", "checks": checks}, 200 if healthy else 503


def _admin_asks() -> bool:
    """Tell whether the request carries an admin's API token: only an admin sees the checks' details."""
    caller = bearer_caller(db.session, request.headers.get("Authorization"))
    return caller is not None and caller.is_admin
