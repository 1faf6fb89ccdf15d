"""A request body over ``MAX_CONTENT_LENGTH`` is refused with 413, whether or not it states its length."""

from __future__ import annotations

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge


def refuse_oversized_chunked_body() -> None:
    """Read a chunked body up to the limit and answer 413 if more follows.

    A ``Content-Length`` over the limit is refused by Werkzeug before anything is read. A chunked
    body has no length: Werkzeug stops reading at the limit and hands the views the truncated
    bytes, which then fail as bad JSON (400) or parse as a shorter form. Reading it here, once,
    caches it for ``get_json`` and ``form``; one byte more from the server's stream tells a body
    of exactly the limit from a longer one.
    """
    if request.content_length is not None or "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    if "wsgi.input_terminated" not in request.environ:
        return  # Werkzeug hands such a body over as empty: nothing is read
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and len(request.get_data(cache=True)) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge(f"the request body is larger than {limit} bytes")
