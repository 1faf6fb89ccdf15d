"""Deletion notices as this site sends them: mail through SMTP_URL, JSON to the alert webhook, links on PUBLIC_URL.

What is due, who is told and what was sent is the lifecycle's (``app.lifecycle.notices``); here are
the two channels and the site's addresses. The RQ task ``send_deletion_notices`` and
``flask notices send`` both call ``send_notices_now``.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.request
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app

from app.config import Settings, SmtpServer, smtp_server
from app.extensions import lifecycle, settings
from app.lifecycle.notices import Channel, Digest, NoticeReport, send_deletion_notices
from app.models import User


def size_words(size: int | None) -> str:
    """A byte count as people read it (as the dashboard shows it)."""
    if size is None:
        return "size unknown"
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} B"


def _deleted_from(digest: Digest) -> str:
    first = min(run.deletes_at for run in digest.runs)
    return f"{first:%Y-%m-%d %H:%M} UTC"


def mail_text(digest: Digest, site: str) -> str:
    """The digest as a plain-text mail: every run with its facts and its two links."""
    count = len(digest.runs)
    lines = [
        f"Hello {digest.owner},",
        "",
        f"{count} of your runs will be deleted by Agar's cleanup within the next {digest.days} days."
        if count != 1
        else f"One of your runs will be deleted by Agar's cleanup within the next {digest.days} days.",
        f'To keep one {digest.keep_days} more days, open its "keep" link and confirm. A link works once,',
        "until the run's deletion; nothing changes if you do nothing.",
        "",
    ]
    for run in digest.runs:
        lines += [
            f"* {run.name}",
            f"  scraper:  {run.scraper or '(none)'}",
            f"  folder:   {run.folder}",
            f"  deleted:  {run.deletes_at:%Y-%m-%d %H:%M} UTC",
            f"  size:     {size_words(run.size_bytes)} (archived)",
            f"  keep {digest.keep_days} more days: {run.keep_url}",
            f"  the run:  {run.run_url}",
            "",
        ]
    lines += [
        "--",
        f"Agar Run Manager, {site}",
        "You get this digest because these runs are yours; each is listed once a day until it is kept or deleted.",
    ]
    return "\n".join(lines) + "\n"


def compose_mail(digest: Digest, sender: str, site: str) -> EmailMessage:
    """The digest as a mail to its recipient, from MAIL_FROM."""
    message = EmailMessage()
    count = len(digest.runs)
    what = f"{count} of your runs" if count != 1 else "1 of your runs"
    message["Subject"] = f"Agar: {what} will be deleted from {_deleted_from(digest)}"
    message["From"] = sender
    message["To"] = digest.recipient
    message["Date"] = format_datetime(digest.sent_at)
    message["Message-ID"] = make_msgid("agar-notice", domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    message.set_content(mail_text(digest, site))
    return message


class EmailChannel:
    """Mail each digest to the owner's address (owners without one are not told this way)."""

    name = "email"

    def __init__(self, server: SmtpServer, sender: str, site: str, timeout: float = 30.0):
        self.server, self.sender, self.site, self.timeout = server, sender, site, timeout

    def recipient(self, owner: User) -> str | None:
        return owner.email or None

    def send(self, digest: Digest) -> None:
        message = compose_mail(digest, self.sender, self.site)
        server = self.server
        if server.tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        with smtp:
            if server.username is not None:
                if not server.tls:  # a password never crosses the network in clear: STARTTLS or fail
                    smtp.starttls(context=ssl.create_default_context())
                smtp.login(server.username, server.password or "")
            smtp.send_message(message)


def webhook_body(digest: Digest) -> dict[str, Any]:
    """The digest as the alert webhook receives it: the alerts' envelope, kind ``deletion_notice``."""
    count = len(digest.runs)
    return {
        "kind": "deletion_notice",
        "severity": "info",
        "message": f"{count} run{'s' if count != 1 else ''} of {digest.owner} will be deleted within "
        f"{digest.days} days (from {_deleted_from(digest)})",
        "data": {
            "owner": {"id": str(digest.owner_id), "username": digest.owner},
            "keep_days": digest.keep_days,
            "runs": [
                {
                    "id": str(run.job_id),
                    "name": run.name,
                    "scraper": run.scraper,
                    "folder": run.folder,
                    "deletes_at": run.deletes_at.isoformat(),
                    "size_bytes": run.size_bytes,
                    "keep_url": run.keep_url,
                    "url": run.run_url,
                }
                for run in digest.runs
            ],
        },
        "created_at": digest.sent_at.isoformat(),
    }


class WebhookChannel:
    """POST each digest as JSON to ALERT_WEBHOOK_URL: one per owner, listing the owner and the runs."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0):
        self.url, self.timeout = url, timeout

    def recipient(self, owner: User) -> str | None:
        return "webhook"

    def send(self, digest: Digest) -> None:
        request = urllib.request.Request(  # noqa: S310 (http(s) checked at start-up)
            self.url,
            data=json.dumps(webhook_body(digest)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (http(s) checked at start-up)
            response.read()


def notice_channels(s: Settings) -> list[Channel]:
    """The channels the settings name: mail when SMTP_URL is set, the webhook when ALERT_WEBHOOK_URL is."""
    channels: list[Channel] = []
    if s.smtp_url is not None and s.mail_from is not None:
        channels.append(EmailChannel(smtp_server(s.smtp_url), s.mail_from, s.public_url))
    if s.alert_webhook_url is not None:
        channels.append(WebhookChannel(s.alert_webhook_url))
    return channels


class PublicLinks:
    """Absolute addresses of the site's pages on PUBLIC_URL, built from its routes outside any request."""

    def __init__(self, app: Flask, public_url: str):
        parts = urlsplit(public_url)
        self.adapter = app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)

    def keep(self, token: str) -> str:
        return self.adapter.build("web.keep_run", {"token": token}, force_external=True)

    def run(self, job_id: uuid.UUID) -> str:
        return self.adapter.build("web.run", {"job_id": str(job_id)}, force_external=True)


def send_notices_now(**lifecycle_options: Any) -> NoticeReport:
    """Send today's deletion notices from this app (its settings, secret key and routes)."""
    s = settings()
    return send_deletion_notices(
        lifecycle(**lifecycle_options),
        notice_channels(s),
        PublicLinks(current_app, s.public_url),
        secret_key=current_app.config["SECRET_KEY"],
    )
