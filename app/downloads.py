"""A run's archive as an HTTP download, the same for the API and the dashboard."""

from __future__ import annotations

import base64
from typing import Any

from flask import send_file

from app.extensions import lifecycle
from app.lifecycle.naming import run_folder_name
from app.models import Job


def archive_download(job: Job) -> Any:
    """The archive file, streamed, with ETag and Repr-Digest (SHA-256), Range and If-None-Match."""
    path = lifecycle().store.path(job.archive_path)  # type: ignore[arg-type]
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
    return response
