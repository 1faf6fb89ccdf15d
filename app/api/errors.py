"""One error shape for the API: ``{"error": {"code", "message"}}`` with an honest status."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from app.lifecycle.access import NotAllowed
from app.lifecycle.errors import BadInput, RuleViolation, RunConflict, RunNotFound
from app.lifecycle.locks import RunBusy
from app.lifecycle.members import ArchiveMissing
from app.lifecycle.naming import BadJobId

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


# The kinds of no the lifecycle's rules give (``app.lifecycle.access``), as HTTP says them.
REFUSAL_STATUS = {"invalid": 400, "forbidden": 403, "conflict": 409}

# Redis holds the task queue and the runs' locks: without it nothing can be queued or locked.
REDIS_DOWN = "the task queue and run locks (Redis) do not answer; try again shortly"


def busy_message(error: Exception) -> str:
    """What a caller hears when another worker holds the run's lock (the core's ``RunBusy``)."""
    return f"{error}: nothing was changed, try again when that work ends"


class ApiError(Exception):
    """Stop handling a request and answer with this status and message."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.headers = headers or {}


def error_response(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> Any:
    body = jsonify(error={"code": code or _CODES.get(status, "error"), "message": message})
    return body, status, headers or {}


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/openapi.json")


def register_error_handlers(app: Flask) -> None:
    """Answer API errors as JSON, and HTTP errors on API paths too (404 and 405 included)."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Any:
        return error_response(error.status, error.message, error.code, error.headers)

    @app.errorhandler(NotAllowed)
    def _not_allowed(error: NotAllowed) -> Any:
        return error_response(REFUSAL_STATUS[error.kind], error.message, error.code)

    @app.errorhandler(ArchiveMissing)
    def _archive_missing(error: ArchiveMissing) -> Any:
        return error_response(409, str(error), "archive_missing")

    @app.errorhandler(BadInput)
    def _bad_input(error: BadInput) -> Any:
        return error_response(400, str(error))

    @app.errorhandler(BadJobId)
    def _bad_id(error: BadJobId) -> Any:
        return error_response(400, str(error), "invalid_id")

    @app.errorhandler(RunNotFound)
    def _not_found(error: RunNotFound) -> Any:
        return error_response(404, str(error) or "no such run")

    @app.errorhandler(RunConflict)
    def _conflict(error: RunConflict) -> Any:
        return error_response(409, str(error))

    @app.errorhandler(RuleViolation)
    def _rule(error: RuleViolation) -> Any:
        return error_response(422, str(error))

    @app.errorhandler(RunBusy)
    def _busy(error: RunBusy) -> Any:
        return error_response(409, busy_message(error), "run_busy")

    @app.errorhandler(RedisError)
    def _redis_down(error: RedisError) -> Any:
        return error_response(503, REDIS_DOWN, "unavailable")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Any:
        if not _wants_json() or error.response is not None:  # one that carries its answer (a throttle's 429)
            return error
        headers = dict(error.get_headers())
        headers.pop("Content-Type", None)
        return error_response(error.code or 500, error.description or error.name, headers=headers)
