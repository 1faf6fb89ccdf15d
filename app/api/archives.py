"""Archived runs without restoring them: the archived list, downloads, member lists and member reads."""

from __future__ import annotations

import base64
import mimetypes
import re
from typing import Any
from urllib.parse import quote

from flask import Response, request, stream_with_context
from sqlalchemy import select

from app.actions import require_tier
from app.api import bp
from app.api.auth import current_user
from app.api.errors import ApiError
from app.api.jobs import visible_job
from app.api.listing import run_page
from app.api.openapi import documented
from app.api.params import in_date_range, pagination
from app.api.schemas import page
from app.downloads import archive_download
from app.extensions import db, lifecycle
from app.lifecycle.members import ArchiveCorrupt, read_member
from app.lifecycle.naming import escape_name, native_name, safe_member_path
from app.lifecycle.runs import is_archived, runs_visible_to
from app.models import ArchiveMember, Job, count_rows

# What scrapers write that the standard table does not name.
_EXTRA_TYPES = {".log": "text/plain", ".jsonl": "application/x-ndjson", ".ndjson": "application/x-ndjson"}


# Types a browser shows but never runs: these open in place. Anything else a member archived (HTML,
# SVG, XHTML, XML, JavaScript, MHTML, types no one listed) could run as this site if rendered here.
PASSIVE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/json",
        "application/x-ndjson",
    }
)
# Even a passive type is read in a sandbox (no script, an opaque origin) with nothing to fetch.
MEMBER_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'none'"


def content_type(path: str) -> str:
    suffix = path[path.rfind(".") :].lower() if "." in path else ""
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def member_presentation(path: str) -> tuple[str, dict[str, str]]:
    """The type and headers a member is sent with: passive types inline, the rest as an opaque download."""
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": MEMBER_CSP}
    mimetype = content_type(path)
    if mimetype in PASSIVE_TYPES:
        return mimetype, {**headers, "Content-Disposition": "inline"}
    name = path.rsplit("/", 1)[-1]
    # An ASCII fallback of safe characters only, and the exact name percent-encoded (RFC 6266).
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    return "application/octet-stream", {**headers, "Content-Disposition": disposition}


@bp.get("/jobs/archived")
@documented(ok=(200, "Page[Job]"), query=("limit", "offset", "cursor", "start_date", "end_date"))
def list_archived_jobs() -> Any:
    """Archived runs, newest first; ``start_date``/``end_date`` filter on the run's ``created_at``."""
    limit, offset = pagination(request.args)
    user = current_user()
    query = runs_visible_to(user.id, user.is_admin).where(is_archived())
    return run_page(in_date_range(query, Job.created_at, request.args), limit, offset)


def archived_job(job_id: str) -> Job:
    job = visible_job(job_id)
    require_tier(job, "archived")
    if not job.archive_path or not lifecycle().store.exists(job.archive_path):
        raise ApiError(409, f"the archive of run {job.id} is missing; an alert has been raised", "archive_missing")
    return job


@bp.get("/jobs/<job_id>/archive/download")
@documented(ok=(200, None), media="application/octet-stream")
def download_archive(job_id: str) -> Any:
    """The archive file, streamed, with ETag and Repr-Digest (SHA-256), Range and If-None-Match."""
    return archive_download(archived_job(job_id))


def _member_json(member: ArchiveMember) -> dict[str, Any]:
    return {
        "path": member.path,
        "kind": member.kind,
        "size": member.size,
        "sha256": member.sha256,
        "link_target": member.link_target,
    }


@bp.get("/jobs/<job_id>/archive/files")
@documented(ok=(200, "Page[Member]"), query=("limit", "offset"))
def list_archive_files(job_id: str) -> Any:
    """The archive's members from its stored manifest (paths relative to the run folder)."""
    job = archived_job(job_id)
    limit, offset = pagination(request.args, max_offset=None)  # one archive's members: bounded by nature
    query = select(ArchiveMember).where(ArchiveMember.job_id == job.id)
    total = count_rows(db.session, query)
    rows = db.session.scalars(query.order_by(ArchiveMember.id).limit(limit).offset(offset))
    return page([_member_json(member) for member in rows], total, limit, offset)


@bp.get("/jobs/<job_id>/archive/files/<path:member_path>")
@documented(ok=(200, None), media="application/octet-stream")
def read_archive_file(job_id: str, member_path: str) -> Any:
    """Stream one file out of the archive without restoring the run; its bytes are checked as they go."""
    job = archived_job(job_id)
    try:
        # The URL carries the escaped form (app.lifecycle.naming); the row holds the canonical one.
        clean = escape_name(str(safe_member_path(native_name(member_path))))
    except ValueError as error:
        raise ApiError(400, str(error), "invalid_path") from None
    member = db.session.scalar(select(ArchiveMember).where(ArchiveMember.job_id == job.id, ArchiveMember.path == clean))
    if member is None:
        raise ApiError(404, f"no file {clean!r} in the archive of run {job.id}")
    if member.kind != "file" or member.offset is None:
        raise ApiError(409, f"{clean!r} is a {member.kind}, not a file", "not_a_file")
    mimetype, shown = member_presentation(clean)
    headers = {"Content-Length": str(member.size), "ETag": f'"{member.sha256}"', **shown}
    if member.sha256:
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(member.sha256)).decode()}:"
    if request.if_none_match and member.sha256 and request.if_none_match.contains(member.sha256):
        return Response(status=304, headers={"ETag": headers["ETag"]})
    try:
        read = read_member(lifecycle(), job, member)
    except ArchiveCorrupt as error:
        # The stored bytes are wrong, not the request: a 500, with the alert already raised.
        raise ApiError(500, str(error), "archive_corrupt") from None
    # A larger member can still fail part-way: its stream then raises before its last chunk.
    return Response(stream_with_context(read.chunks), mimetype=mimetype, headers=headers)
