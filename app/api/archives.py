"""Archived runs without restoring them: the archived list, downloads, member lists and member reads."""

from __future__ import annotations

import base64
import mimetypes
from typing import Any

from flask import Response, request, stream_with_context
from werkzeug.http import parse_range_header

from app.api import bp
from app.api.auth import current_user
from app.api.errors import ApiError
from app.api.jobs import require, used, visible_job
from app.api.listing import run_page
from app.api.openapi import documented
from app.api.params import dates, pagination
from app.api.schemas import member_json, page
from app.downloads import MEMBER_CSP, archive_download, attachment
from app.extensions import lifecycle
from app.lifecycle.members import (
    ArchiveCorrupt,
    InvalidMemberPath,
    MemberNotFound,
    NotAFile,
    find_member,
    member_page,
    read_member,
    read_member_range,
    require_archive,
)
from app.models import Job

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


def content_type(path: str) -> str:
    suffix = path[path.rfind(".") :].lower() if "." in path else ""
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def member_presentation(path: str) -> tuple[str, dict[str, str]]:
    """The type and headers a member is sent with: passive types inline, the rest as an opaque download."""
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": MEMBER_CSP}
    mimetype = content_type(path)
    if mimetype in PASSIVE_TYPES:
        return mimetype, {**headers, "Content-Disposition": "inline"}
    return "application/octet-stream", {**headers, "Content-Disposition": attachment(path)}


@bp.get("/jobs/archived")
@documented(ok=(200, "Page[Job]"), query=("limit", "offset", "cursor", "start_date", "end_date"))
def list_archived_jobs() -> Any:
    """Archived runs, newest first; ``start_date``/``end_date`` filter on the run's ``created_at``."""
    limit, offset = pagination(request.args)
    start, end = dates(request.args)
    return run_page(current_user(), "archived", limit, offset, start=start, end=end)


def archived_job(job_id: str) -> Job:
    job = visible_job(job_id)
    require("download", job)
    require_archive(lifecycle(), job)
    return job


@bp.get("/jobs/<job_id>/archive/download")
@documented(ok=(200, None), media="application/octet-stream")
def download_archive(job_id: str) -> Any:
    """The archive file, streamed, with ETag and Repr-Digest (SHA-256), Range and If-None-Match."""
    job = archived_job(job_id)
    used(job, "downloaded")
    return archive_download(job)


@bp.get("/jobs/<job_id>/archive/files")
@documented(ok=(200, "Page[Member]"), query=("limit", "offset"))
def list_archive_files(job_id: str) -> Any:
    """The archive's members from its stored manifest (paths relative to the run folder)."""
    job = archived_job(job_id)
    limit, offset = pagination(request.args, max_offset=None)  # one archive's members: bounded by nature
    rows, total = member_page(lifecycle(), job, limit, offset)
    return page([member_json(member) for member in rows], total, limit, offset)


@bp.get("/jobs/<job_id>/archive/files/<path:member_path>")
@documented(ok=(200, None), media="application/octet-stream")
def read_archive_file(job_id: str, member_path: str) -> Any:
    """Stream one file out of the archive without restoring the run; its bytes are checked as they go."""
    job = archived_job(job_id)
    lc = lifecycle()
    try:
        member = find_member(lc, job, member_path)
    except InvalidMemberPath as error:
        raise ApiError(400, str(error), "invalid_path") from None
    except MemberNotFound as error:
        raise ApiError(404, str(error)) from None
    except NotAFile as error:
        raise ApiError(409, str(error), "not_a_file") from None
    mimetype, shown = member_presentation(member.path)
    headers = {"Content-Length": str(member.size), "ETag": f'"{member.sha256}"', **shown}
    if member.sha256:
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(member.sha256)).decode()}:"
    if request.if_none_match and member.sha256 and request.if_none_match.contains(member.sha256):
        return Response(status=304, headers={"ETag": headers["ETag"]})
    headers["Accept-Ranges"] = "bytes"
    wanted = _one_range(
        member.size, member.sha256
    )  # a Range: one span of the member (several: the whole, RFC 9110 §14.2)
    used(job, "downloaded")
    try:
        if wanted is None:
            read = read_member(lc, job, member)
        else:
            start, end = wanted
            read = read_member_range(lc, job, member, start, end)
    except ArchiveCorrupt as error:
        # The stored bytes are wrong, not the request: a 500, with the alert already raised.
        raise ApiError(500, str(error), "archive_corrupt") from None
    if wanted is not None:
        headers.update({"Content-Length": str(end - start), "Content-Range": f"bytes {start}-{end - 1}/{member.size}"})
        headers.pop("Repr-Digest", None)  # the digest of the whole member: a part has none to send
        return Response(stream_with_context(read.chunks), status=206, mimetype=mimetype, headers=headers)
    # A larger member can still fail part-way: its stream then raises before its last chunk.
    return Response(stream_with_context(read.chunks), mimetype=mimetype, headers=headers)


def _one_range(size: int, sha256: str | None) -> tuple[int, int] | None:
    """The one byte range a ``Range:`` header asks of a member of ``size`` bytes, or None (no header,
    another unit, several ranges, or an ``If-Range`` that no longer holds: the whole member). A
    range past the end is answered 416, with the size."""
    header = request.headers.get("Range")
    if header is None:
        return None
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip().strip('"') != (sha256 or ""):
        return None  # the member is not the one the client has part of: the whole of it
    span = parsed.range_for_length(size)
    if span is None:
        raise ApiError(416, f"the range is outside the member's {size} bytes", "range_not_satisfiable")
    return span
