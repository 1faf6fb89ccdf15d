"""Logging in and out, and changing one's password: the dashboard's doors into app.auth."""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from sqlalchemy import select

from app.auth.sessions import open_session
from app.auth.throttle import login_limits, password_change_limits
from app.auth.users import UserError, end_sessions, set_password, user_for_password
from app.extensions import db
from app.models import User
from app.web import bp, web_user


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site, or the runs.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so ``/\\t/evil.com`` went to
    ``//evil.com`` (another site) and a newline broke the Location header (a 500). Any control,
    format or space character refuses the target, as does anything naming a scheme or a host.
    """
    fallback = url_for("web.runs")
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    if any(unicodedata.category(char)[0] in "CZ" for char in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    # No dot segments nor empty ones, encoded or not: a browser resolves "/..//evil.com" to the
    # path "//evil.com", one step from another site's address. Our own links never have them.
    path = unquote(parts.path)
    if "//" in path or any(segment in (".", "..") for segment in path.split("/")):
        return fallback
    return target


@bp.route("/login", methods=["GET", "POST"])
@login_limits
def login() -> Any:
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        user = user_for_password(db.session, username, password) if username and password else None
        if user is not None:
            open_session(session, user)
            return redirect(safe_next(request.args.get("next")))
        error = "Wrong username or password."
    status = 401 if error else 200
    return render_template("login.html", error=error, next=request.args.get("next", "")), status


@bp.post("/logout")
def logout() -> Any:
    """End this session and every other of the same user (a copied cookie included)."""
    user = db.session.get(User, web_user().id)
    if user is not None:
        end_sessions(db.session, user)
    session.clear()
    return redirect(url_for("web.login"))


@bp.route("/password", methods=["GET", "POST"])
@password_change_limits
def password() -> Any:
    """Change one's own password: the current one, then the new one twice; other sessions end."""
    if request.method == "GET":
        return render_template("password.html", error=None)
    user = db.session.scalar(select(User).where(User.id == web_user().id))
    current = request.form.get("current_password", "")
    new, again = request.form.get("new_password", ""), request.form.get("new_password_again", "")
    if user is None or not current or user_for_password(db.session, user.username, current) is None:
        return render_template("password.html", error="The current password is wrong."), 403
    if new != again:
        return render_template("password.html", error="The two new passwords differ."), 400
    try:
        set_password(db.session, user, new)
    except UserError as error:
        return render_template("password.html", error=f"The new {error}."), 400
    open_session(session, user)  # this browser stays in; every other session of the user has ended
    flash("Password changed. Your other sessions have been logged out.")
    return redirect(url_for("web.runs"))
