"""How the app uses its database connections: as few round trips as a request needs.

- Reads (GET, HEAD) run in autocommit: no BEGIN before the first query and no COMMIT or
  ROLLBACK after the last. psycopg also forgets its prepared statements on every ROLLBACK,
  which is how a request's transaction would otherwise end; in autocommit they stay, so the
  API's repeated queries are planned once per connection.
- A pooled connection is pinged only when it sat idle for ``IDLE_PING_SECONDS`` (a database
  restart is then noticed before use) rather than on every checkout: under load, connections
  are never idle that long, and a busy API saves a round trip per request.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session

IDLE_PING_SECONDS = 1.0


def read_in_autocommit(session: Session) -> None:
    """Have ``session`` run its queries in autocommit, unless it is already using a connection."""
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def utc_sessions(engine: Engine) -> None:
    """PostgreSQL sessions in UTC: timestamps arrive as UTC datetimes, with nothing left to convert."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def set_utc(dbapi_connection: Any, record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute("SET TIME ZONE 'UTC'")
        finally:
            dbapi_connection.autocommit = autocommit


def ping_when_idle(engine: Engine) -> None:
    """Ping connections idle for a while on checkout; a dead one is replaced before use."""

    @event.listens_for(engine, "checkin")
    def note_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return  # fresh from connect, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"pooled connection is gone: {error}") from error
