"""Who may do what: users, passwords, API tokens."""

from __future__ import annotations

from flask import Flask

from app.auth.sessions import SessionCookie, trust_proxies
from app.auth.throttle import init_throttle


def init_auth(app: Flask) -> None:
    """Believe the trusted proxies, mark the session cookie Secure over HTTPS, throttle failed logins."""
    trust_proxies(app, app.extensions["agar.settings"].trusted_proxies)
    app.session_interface = SessionCookie()
    init_throttle(app)
