"""A run's archive as an HTTP download, the same for the API and the dashboard."""

from __future__ import annotations

import base64
from typing import Any

from flask import request, send_file, stream_with_context

from app.extensions import lifecycle
from app.lifecycle.members import read_archive_file
from app.lifecycle.naming import run_folder_name
from app.models import Job


def archive_download(job: Job) -> Any:
    """The archive file, streamed, with ETag and Repr-Digest (SHA-256), Range and If-None-Match.

    A full download is checked against ``archive_sha256`` as it streams and never completes if
    the file does not match (app.lifecycle.members). A ranged read cannot be checked whole - the
    client asked for a part - so a 206 is sent as send_file reads it; 304 and 416 carry no body.
    """
    lc = lifecycle()
    path = lc.store.path(job.archive_path)  # type: ignore[arg-type]
    name = f"{run_folder_name(job.folder_name, job.id)}{''.join(path.suffixes[-2:])}"
    response = send_file(
        path,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=name,
        conditional=True,
        etag=job.archive_sha256,
        max_age=0,
    )
    digest = base64.b64encode(bytes.fromhex(job.archive_sha256 or "")).decode()
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    if response.status_code == 200 and request.method != "HEAD":
        response.response.close()  # send_file's own reader of the file: replaced by the checked one
        response.response = stream_with_context(read_archive_file(lc, job))
    return response
