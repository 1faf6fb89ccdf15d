"""A run's file, seen without restoring the run: the preview page and the bytes it embeds.

A thin door into ``app.lifecycle.preview``: the same visibility and download rules as the run's
page and the API's member read. The page shows JSON folded, text by its tail (or head, or the lines
a search finds: a plain GET, swapped in place by HTMX as one types), images inline, PDFs in the
browser's viewer, anything else as a hex head — with a download. The raw bytes are sent inline only
for the kinds the bytes prove (raster images, PDFs), each under its own narrow CSP; everything else
goes as an opaque attachment, so a page a scraper saved never runs as this site.
"""

from __future__ import annotations

from typing import Any

from flask import Response, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue

from app.downloads import MEMBER_CSP, attachment
from app.extensions import lifecycle
from app.lifecycle import preview
from app.lifecycle.members import ArchiveCorrupt, InvalidMemberPath, MemberNotFound, NotAFile
from app.models import Job
from app.web import Refused, bp
from app.web.runs import require, used, visible_run

# The raw bytes of a kind the browser shows: nothing may run, nothing be fetched, framed by us alone.
IMAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
# Chromium's PDF viewer does not open in a sandboxed document; a PDF runs none of our scripts.
PDF_CSP = "default-src 'none'; object-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def _source(job_id: str, member: str) -> tuple[Job, preview.Source]:
    job = visible_run(job_id)
    if job.archived_at is not None and job.deleted_at is None:
        require("download", job)  # an archived run's files are read as its download is
    try:
        return job, preview.source_of(lifecycle(), job, member)
    except InvalidMemberPath as error:
        raise Refused(400, str(error)) from None
    except MemberNotFound as error:
        raise Refused(404, str(error)) from None
    except NotAFile as error:
        raise Refused(409, str(error)) from None


def _read(view: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return view(*args, **kwargs)
    except ArchiveCorrupt as error:  # refused loudly, never shown as good (the alert is raised)
        raise Refused(500, f"the archive is corrupt: {error}") from None


@bp.get("/runs/<job_id>/files/<path:member>")
def member_preview(job_id: str, member: str) -> ResponseReturnValue:
    job, source = _source(job_id, member)
    used(job, "opened")
    first = _read(preview.head, source, preview.SNIFF_BYTES)
    kind, media = preview.kind_of(source.path, first)
    tree = note = text = rows = None
    search = request.args.get("q", "")[:200]
    mode = request.args.get("show", "tail")
    if mode not in ("tail", "head"):
        raise Refused(400, "show must be tail or head")
    if kind == "json":
        tree, note = _read(preview.json_view, source)
    if kind == "text" or (kind == "json" and tree is None):
        text = _read(preview.text_view, source, search=search, mode=mode)
    if kind == "binary":
        rows = _read(preview.hex_view, source)
    template = "_member_lines.html" if request.headers.get("HX-Request") and text is not None else "member.html"
    response = Response(
        render_template(
            template,
            job=job,
            source=source,
            kind=kind,
            media=media,
            tree=tree,
            note=note,
            text=text,
            rows=rows,
            search=search,
            mode=mode,
            limits=preview,
        )
    )
    response.vary.add("HX-Request")
    return response


@bp.get("/runs/<job_id>/raw/<path:member>")
def member_raw(job_id: str, member: str) -> ResponseReturnValue:
    """The file's bytes: inline for the kinds its bytes prove (raster images, PDF), else a download."""
    job, source = _source(job_id, member)
    first = _read(preview.head, source, preview.SNIFF_BYTES)
    kind, media = preview.kind_of(source.path, first)
    if kind == "image":
        headers = {
            "Content-Disposition": "inline",
            "Content-Security-Policy": IMAGE_CSP,
            "X-Frame-Options": "SAMEORIGIN",
        }
    elif kind == "pdf":
        headers = {"Content-Disposition": "inline", "Content-Security-Policy": PDF_CSP, "X-Frame-Options": "SAMEORIGIN"}
    else:  # the API's rule for the rest: an opaque attachment under its own name, in a sandbox
        media = "application/octet-stream"
        headers = {"Content-Disposition": attachment(source.path), "Content-Security-Policy": MEMBER_CSP}
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Content-Length"] = str(source.size)
    if source.sha256:
        headers["ETag"] = f'"{source.sha256}"'
    used(job, "downloaded")
    chunks = _read(source.read)
    return Response(stream_with_context(chunks), mimetype=media, headers=headers)
