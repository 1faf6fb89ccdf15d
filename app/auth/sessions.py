"""Who a browser session belongs to: the dashboard's login, also accepted by the JSON API."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.auth.users import Caller
from app.models import User


def password_mark(user: User) -> str:
    """A short mark of the user's password hash for the session cookie (readable by its holder, so
    a digest of the hash, not a piece of it): a new password ends the sessions opened before it."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def open_session(session: Any, user: User) -> None:
    """Log ``user`` in: a fresh session (nothing carried over from before the login)."""
    session.clear()
    session["user_id"] = str(user.id)
    session["password"] = password_mark(user)


def caller_of_session(session: Any, db_session: Session) -> Caller | None:
    """The logged-in user, or None; a session whose user is gone or changed password is cleared."""
    raw = session.get("user_id")
    if not raw:
        return None
    try:
        user = db_session.get(User, uuid.UUID(raw))
    except ValueError:
        user = None
    if user is not None and session.get("password") == password_mark(user):
        return Caller.of(user)
    session.clear()
    return None
