"""A run's archive as an HTTP download, the same for the API and the dashboard."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from flask import request, send_file, stream_with_context
from werkzeug.http import parse_range_header

from app.extensions import lifecycle
from app.lifecycle.members import archive_download_name, read_archive_file
from app.models import Job


def _ignore_unusable_range() -> None:
    """Drop a ``Range`` that is not one valid byte range: RFC 9110 §14.2 lets a server ignore it and send 200.

    Werkzeug answers 416 for a malformed header (``bytes=10-5``, ``bytes=abc``), another unit
    (``items=0-5``) or several ranges; 416 is for a valid range outside the file. Several ranges
    get the whole file rather than multipart/byteranges: one checked stream, one simple answer.
    """
    header = request.headers.get("Range")
    if header is None:
        return
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        del request.environ["HTTP_RANGE"]


def archive_download(job: Job) -> Any:
    """The archive file, streamed, with ETag and Repr-Digest (SHA-256), Range and If-None-Match.

    A full download is checked against ``archive_sha256`` as it streams and never completes if
    the file does not match (app.lifecycle.members). A ranged read cannot be checked whole - the
    client asked for a part - so a 206 is sent as send_file reads it; 304 and 416 carry no body.
    """
    _ignore_unusable_range()
    lc = lifecycle()
    path = lc.store.path(job.archive_path)  # type: ignore[arg-type]
    response = send_file(
        path,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=archive_download_name(job, path),
        conditional=True,
        etag=job.archive_sha256,
        max_age=0,
    )
    digest = base64.b64encode(bytes.fromhex(job.archive_sha256 or "")).decode()
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    # An attachment, and never taken for anything but the bytes it is, whatever they look like.
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.status_code == 200 and request.method != "HEAD":
        response.response.close()  # send_file's own reader of the file: replaced by the checked one
        response.response = stream_with_context(read_archive_file(lc, job))
    return response


# A run's file is read in a sandbox (no script, an opaque origin) with nothing to fetch, whatever it is.
MEMBER_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'none'"


def attachment(path: str) -> str:
    """A Content-Disposition saving the file under its own name: an ASCII fallback of safe characters
    only, and the exact name percent-encoded (RFC 6266)."""
    name = path.rsplit("/", 1)[-1]
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
