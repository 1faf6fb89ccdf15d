"""Who a browser session belongs to: the dashboard's login, also accepted by the JSON API."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

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
    session["epoch"] = user.session_epoch


def caller_of_session(session: Any, db_session: Session) -> Caller | None:
    """The logged-in user, or None; a session whose user is gone, changed password or logged out is cleared.

    The user's row is read on every request anyway, so checking its epoch costs nothing more: a
    logout raises it, and every cookie of that user (copied ones included) stops working at once.
    """
    raw = session.get("user_id")
    if not raw:
        return None
    try:
        user = db_session.get(User, uuid.UUID(raw))
    except ValueError:
        user = None
    if (
        user is not None
        and session.get("epoch") == user.session_epoch
        and session.get("password") == password_mark(user)
    ):
        return Caller.of(user)
    session.clear()
    return None


class SessionCookie(SecureCookieSessionInterface):
    """Flask's signed cookie, marked ``Secure`` whenever the request itself came over HTTPS.

    Behind a TLS-terminating proxy the app sees plain HTTP; with ``TRUSTED_PROXIES`` set,
    ``ProxyFix`` restores the scheme the browser used, so ``request.is_secure`` tells the truth.
    The same deployment still works over plain HTTP on a private network (no ``Secure`` there).
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


class _FromListedProxy:
    """Believe one proxy's forwarded headers only when the request came from one of its addresses."""

    def __init__(self, wsgi_app: Any, addresses: tuple[str, ...]) -> None:
        self.direct = wsgi_app
        self.forwarded = ProxyFix(wsgi_app, x_for=1, x_proto=1)
        self.addresses = frozenset(addresses)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REMOTE_ADDR") in self.addresses:
            return self.forwarded(environ, start_response)
        return self.direct(environ, start_response)


def trust_proxies(app: Flask, proxies: int | tuple[str, ...]) -> None:
    """Take the client's address and scheme from the trusted proxies' X-Forwarded-For/-Proto."""
    if isinstance(proxies, tuple):
        app.wsgi_app = _FromListedProxy(app.wsgi_app, proxies)  # type: ignore[method-assign]
    elif proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
