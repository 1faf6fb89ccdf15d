"""The "keep 30 more days" link of a deletion notice: ``/keep/{token}``, followed with or without a login.

The signed token is the authority (``app.lifecycle.notices``): it keeps one run, once, as its owner.
A GET only shows what it would do (mail scanners and link previews follow links); the button on
that page POSTs, with the page's CSRF token, and the run is kept.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template

from app.extensions import lifecycle
from app.lifecycle import notices
from app.lifecycle.naming import run_folder_name
from app.web import bp, error_page

# How each refusal is answered: 410 for a link past its time, 409 for one spent or overtaken.
KEEP_REFUSAL_STATUS = {"invalid": 400, "forbidden": 403, "unknown": 404, "used": 409, "conflict": 409, "expired": 410}
# The token is a credential in the address: no cache keeps the page (Referrer-Policy keeps it on the site).
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def _page(template: str, offer: notices.KeepOffer, token: str) -> Any:
    job = offer.job
    body = render_template(
        template,
        offer=offer,
        token=token,
        folder=run_folder_name(job.folder_name, job.id),
        keep_days=notices.KEEP_DAYS,
    )
    return body, 200, PRIVATE


@bp.get("/keep/<token>")
def keep_run(token: str) -> Any:
    """What following the link would do, and the button that does it."""
    offer = notices.read_keep_link(lifecycle(), token, secret_key=current_app.config["SECRET_KEY"])
    return _page("keep.html", offer, token)


@bp.post("/keep/<token>")
def keep_run_now(token: str) -> Any:
    """Keep the run: its retention extended as its owner, the link spent."""
    offer = notices.keep_from_notice(lifecycle(), token, secret_key=current_app.config["SECRET_KEY"])
    return _page("kept.html", offer, token)


@bp.errorhandler(notices.KeepRefused)
def _keep_refused(error: notices.KeepRefused) -> Any:
    body, status = error_page(KEEP_REFUSAL_STATUS[error.kind], error.message)
    return body, status, PRIVATE
