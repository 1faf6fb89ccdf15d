"""Guessing passwords and tokens is slow: failed attempts are counted in Redis and refused with 429.

Flask-Limiter keeps the counters in Redis (``storage_uri`` is ``REDIS_URL``), so every web process
shares them. Its ``deduct_when`` counts a request only once its answer is known: a limit checks the
counter before the view runs and adds to it only when the answer is a failure (401; 403 for a wrong
current password), so a user who logs in — however often — is never throttled. Refused attempts
are answered before any password is hashed, which also caps the CPU a guesser can spend.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, make_response, render_template, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

from app.config import Settings

log = logging.getLogger("agar.auth")


def _address_block() -> str:
    """The client's address as a throttle keys it: an IPv4 address, or an IPv6 address's /64.

    One IPv6 host is handed a whole /64: keyed on the full address, it could guess without end.
    """
    address = get_remote_address()  # ProxyFix puts the client's address there
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 host a.b.c.d
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


limiter = Limiter(
    key_func=lambda: _deployment_key(_address_block()),
    headers_enabled=False,  # Retry-After is set on the 429 alone: no extra Redis call on every answer
    strategy="fixed-window",
)


def _settings() -> Settings:
    return current_app.extensions["agar.settings"]


def _per_user() -> str:
    s = _settings()
    return f"{s.login_failures_per_user} per {s.login_failure_window_seconds} seconds"


def _per_address() -> str:
    s = _settings()
    return f"{s.login_failures_per_address} per {s.login_failure_window_seconds} seconds"


def _deployment_key(value: str) -> str:
    """Key a counter to this deployment: empty (so not counted) when there is nothing to key on.

    One deployment is one instance folder (its SQLite file, its secret key): the web processes
    started from it share counters; another deployment (or test) on the same Redis does not. The
    key says so itself, as Flask-Limiter keeps the first app's RATELIMIT_KEY_PREFIX for good.
    """
    return f"{current_app.extensions['agar.throttle']}/{value}" if value else ""


def _username_key() -> str:
    """The username tried, as the login matches it (any case)."""
    username = request.form.get("username", "").strip().lower()
    return _deployment_key(hashlib.sha256(username.encode()).hexdigest()[:32] if username else "")


def _failed(*statuses: int) -> Callable[[Response], bool]:
    return lambda response: response.status_code in statuses


def _retry_after(limit: RequestLimit) -> int:
    wait = max(1, int(limit.reset_at - time.time()))
    log.warning("throttled %s %s from %s for %d s", request.method, request.path, _address_block(), wait)
    return wait


def _login_refused(limit: RequestLimit) -> Response:
    wait = _retry_after(limit)
    message = f"Too many failed logins. Try again in {-(-wait // 60)} minute{'s' if wait > 60 else ''}."
    response = make_response(render_template("login.html", error=message, next=request.args.get("next", "")), 429)
    response.headers["Retry-After"] = str(wait)
    return response


def _token_refused(limit: RequestLimit) -> Response:
    """The API's 429, in its JSON error shape (a Response: Flask-Limiter sends it as it is)."""
    from app.api.errors import error_response  # the API imports this module: import its errors when needed

    wait = _retry_after(limit)
    message = f"too many failed authentications from this address; retry in {wait} s"
    return make_response(error_response(429, message, headers={"Retry-After": str(wait)}))


def login_limits(view: Any) -> Any:
    """Throttle a login form's failures (401) per username tried and per client address."""
    view = limiter.limit(
        _per_user, key_func=_username_key, methods=["POST"], deduct_when=_failed(401), on_breach=_login_refused
    )(view)
    return limiter.limit(_per_address, methods=["POST"], deduct_when=_failed(401), on_breach=_login_refused)(view)


def password_change_limits(view: Any) -> Any:
    """Throttle wrong current passwords (403) on the change-password form per client address."""
    return limiter.limit(_per_address, methods=["POST"], deduct_when=_failed(403), on_breach=_password_refused)(view)


def _password_refused(limit: RequestLimit) -> Response:
    wait = _retry_after(limit)
    message = f"Too many wrong current passwords. Try again in {-(-wait // 60)} minute{'s' if wait > 60 else ''}."
    response = make_response(render_template("password.html", error=message), 429)
    response.headers["Retry-After"] = str(wait)
    return response


def token_limits(blueprint: Any, authenticated: Callable[[], bool]) -> None:
    """Throttle the API's failed authentications (401: a bad or missing token) per client address.

    A call that ``authenticated`` is never refused: junk from an address shared with honest
    scrapers (a NAT, a proxy) locks out the guessing, not the scrapers.
    """
    limiter.limit(_per_address, deduct_when=_failed(401), on_breach=_token_refused, exempt_when=authenticated)(
        blueprint
    )

    @limiter.request_filter
    def authenticated_call() -> bool:
        """Skip Flask-Limiter's evaluation of a blueprint call that ``authenticated``: its one limit
        exempts it anyway, and resolving the limits first cost ~0.1 ms of every API call."""
        return request.blueprint == blueprint.name and authenticated()


def init_throttle(app: Flask) -> None:
    """Keep the counters in the app's Redis, apart from any other deployment sharing that Redis."""
    settings: Settings = app.extensions["agar.settings"]
    # Flask-Limiter keeps its storage on the one Limiter: each init_app replaces it, so one app per
    # process (as gunicorn, the CLI and the worker run) is what it supports; tests build theirs in turn.
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings.redis_url)
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 2, "socket_timeout": 10})
    # Redis down must not take every API read down with it: the counters go on in this process's
    # memory until Redis answers again (Flask-Limiter checks it now and then, not on every request).
    # Other errors are not swallowed: a throttle that fails quietly would be no throttle at all.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.extensions["agar.throttle"] = "agar-" + hashlib.sha256(app.instance_path.encode()).hexdigest()[:12]
    limiter.init_app(app)
    # A new app starts on its own storage: Flask-Limiter keeps "storage down" on the one Limiter
    # and init_app does not clear it (only a test process builds apps on several Redis servers).
    limiter._storage_dead = False
