"""Flask extensions, created unbound here and bound to an app in ``create_app``."""

from __future__ import annotations

import sqlite3

from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from redis import Redis
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.config import Settings
from app.models import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()  # every form and HTMX post of the dashboard; the token API is exempt


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # Workers and the web app share one SQLite file: WAL lets readers go on while a worker
    # writes, and the busy timeout makes writers queue instead of failing at once.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def settings() -> Settings:
    """Return the validated settings of the current app."""
    return current_app.extensions["agar.settings"]


def redis_connection(app: Flask | None = None) -> Redis:
    """Return the app's Redis client (one per app; redis-py pools connections itself)."""
    app = app or current_app
    client = app.extensions.get("agar.redis")
    if client is None:
        url = app.extensions["agar.settings"].redis_url
        client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        app.extensions["agar.redis"] = client
    return client


def lifecycle(**options):  # type: ignore[no-untyped-def]
    """Return the lifecycle core bound to this app's session, settings and Redis."""
    from app.lifecycle.context import Lifecycle

    return Lifecycle.build(db.session, settings(), redis_connection(), **options)
