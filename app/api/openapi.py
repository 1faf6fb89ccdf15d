"""``/openapi.json``: the API described from the code itself, so the document cannot drift.

Paths, methods and path parameters come from Flask's URL map; summaries from the views'
docstrings; query parameters, bodies and the success response from ``@documented`` beside each
view. A test checks every API route is here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app

from app.models import EVENT_OUTCOMES, LIFECYCLE_ACTIONS, VERIFY_OUTCOMES

bp = Blueprint("openapi", __name__)

NULLABLE_STRING = {"type": "string", "nullable": True}
NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}
NULLABLE_INT = {"type": "integer", "nullable": True}
DATE_OR_TIME = {"type": "string", "description": "ISO 8601 date (a whole UTC day) or date-time"}

PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "default": 50, "description": "at most 500"},
    "offset": {
        "type": "integer",
        "minimum": 0,
        "default": 0,
        "description": "rows to skip: at most 10,000, but on an archive's member list",
    },
    "cursor": {
        "type": "string",
        "description": "the next_cursor of the page before: the page of runs after it (offset counts from there)",
    },
    "start_date": DATE_OR_TIME,
    "end_date": DATE_OR_TIME,
    "status": {"type": "string", "description": "comma-separated: pending, running, completed, failed, cancelled"},
    "q": {"type": "string", "maxLength": 200, "description": "text in name, scraper, folder name or id"},
    "scraper": {"type": "string"},
    "job_id": {"type": "string", "format": "uuid"},
    "strategy": {"type": "string", "enum": ["soft", "hard"]},
    "deleted_by": {"type": "string"},
    "action": {
        "type": "string",
        "enum": list(LIFECYCLE_ACTIONS),
    },
    "outcome": {"type": "string", "enum": list(EVENT_OUTCOMES)},
    "actor": {"type": "string"},
}

JOB = {
    "type": "object",
    "required": ["id", "name", "scraper", "status", "created_at", "folder_name", "tier", "restored"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "scraper": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"]},
        "created_by": {**NULLABLE_STRING, "format": "uuid"},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": NULLABLE_TIME,
        "completed_at": NULLABLE_TIME,
        "folder_name": NULLABLE_STRING,
        "stats": {"type": "object", "nullable": True},
        "size_bytes": NULLABLE_INT,
        "archived_at": NULLABLE_TIME,
        "archive_path": NULLABLE_STRING,
        "archive_size_bytes": NULLABLE_INT,
        "archive_sha256": NULLABLE_STRING,
        "compression": NULLABLE_STRING,
        "restored_at": NULLABLE_TIME,
        "restore_expires_at": NULLABLE_TIME,
        "retain_until": NULLABLE_TIME,
        "keep_forever": {"type": "boolean"},
        "deleted_at": NULLABLE_TIME,
        "deleted_by": NULLABLE_STRING,
        "deletion_reason": NULLABLE_STRING,
        "purged_at": NULLABLE_TIME,
        "last_verified_at": NULLABLE_TIME,
        "verify_outcome": {"type": "string", "nullable": True, "enum": [*VERIFY_OUTCOMES, None]},
        "tier": {"type": "string", "enum": ["active", "archived", "deleted"]},
        "restored": {"type": "boolean"},
    },
}
EVENT = {
    "type": "object",
    "required": ["id", "job_id", "action", "actor", "outcome", "started_at"],
    "properties": {
        "id": {"type": "integer"},
        "job_id": {"type": "string", "format": "uuid"},
        "action": PARAMETERS["action"],
        "actor": {"type": "string"},
        "reason": NULLABLE_STRING,
        "outcome": PARAMETERS["outcome"],
        "error": NULLABLE_STRING,
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": NULLABLE_TIME,
        "bytes_before": NULLABLE_INT,
        "bytes_after": NULLABLE_INT,
        "details": {"type": "object", "nullable": True},
    },
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Job": JOB,
    "JobWithHistory": {"allOf": [JOB, {"type": "object", "properties": {"events": {"type": "array", "items": EVENT}}}]},
    "Event": EVENT,
    "Accepted": {
        "type": "object",
        "required": ["task_id", "status"],
        "properties": {"task_id": {"type": "string"}, "status": {"type": "string", "enum": ["queued"]}},
    },
    "Task": {
        "type": "object",
        "required": ["task_id", "status", "progress"],
        "properties": {
            "task_id": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["queued", "started", "retrying", "finished", "superseded", "failed"],
                "description": "retrying: an attempt failed and the next waits; superseded: the run changed "
                "since the task was asked, so it did nothing",
            },
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "bytes_done": {"type": "integer", "description": "one archive or restore: bytes done so far"},
            "bytes_total": {"type": "integer"},
            "attempt": {"type": "integer", "description": "retrying: the attempt that comes next (1 is the first)"},
            "max_attempts": {"type": "integer"},
            "result": {},
            "error": {"type": "string"},
        },
    },
    "Member": {
        "type": "object",
        "required": ["path", "kind", "size"],
        "properties": {
            "path": {"type": "string"},
            "kind": {"type": "string", "enum": ["dir", "file", "symlink"]},
            "size": {"type": "integer"},
            "sha256": NULLABLE_STRING,
            "link_target": NULLABLE_STRING,
        },
    },
    "Audit": {"type": "object", "required": ["id", "job_id", "deleted_at"]},
    "Snapshot": {"type": "object", "required": ["taken_at"]},
    "Alert": {"type": "object", "required": ["id", "kind", "severity", "message", "created_at", "open"]},
    "StorageStats": {
        "type": "object",
        "required": ["as_of", "tiers", "compression", "archive_success_rate", "disk"],
    },
}
PAGED = {"Job", "Event", "Member", "Audit", "Snapshot", "Alert"}
BODIES: dict[str, dict[str, Any]] = {
    "NewJob": {
        "type": "object",
        "required": ["name", "scraper"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "scraper": {"type": "string", "minLength": 1, "maxLength": 255},
            "stats": {"type": "object"},
            "status": JOB["properties"]["status"],
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": "string", "format": "date-time"},
            "completed_at": {"type": "string", "format": "date-time"},
        },
    },
    "JobUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"status": JOB["properties"]["status"], "stats": {"type": "object"}},
    },
    "Reason": {"type": "object", "additionalProperties": False, "properties": {"reason": {"type": "string"}}},
    "Deletion": {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "minLength": 1}, "strategy": PARAMETERS["strategy"]},
    },
    "Retention": {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {
            "reason": {"type": "string", "minLength": 1},
            "retain_until": {"type": "string", "format": "date-time"},
            "keep_forever": {"type": "boolean"},
        },
    },
}
ERRORS = {
    "400": "malformed id, parameter or body",
    "401": "no or bad API token",
    "403": "not allowed for this user",
    "404": "no such run (or not yours)",
    "409": "not possible in the run's present tier or state",
    "413": "body too large",
    "415": "body is not JSON",
    "422": "well-formed but breaks a rule (timestamps out of order, …)",
    "429": "too many failed authentications from this address (see Retry-After)",
    "503": "Redis (the queue, the locks) is unavailable; retry later",
}


def documented(
    *, ok: tuple[int, str | None], query: tuple[str, ...] = (), body: str | None = None, media: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a view for the OpenAPI document: its success response, query parameters, body."""

    def attach(view: Callable[..., Any]) -> Callable[..., Any]:
        unknown = set(query) - PARAMETERS.keys()
        if unknown:
            raise ValueError(f"undocumented query parameters {unknown} on {view.__name__}")
        view.openapi = {"ok": ok, "query": query, "body": body, "media": media}  # type: ignore[attr-defined]
        return view

    return attach


def _response_schema(name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    if name.startswith("Page[") and name.endswith("]"):
        item = name[5:-1]
        return {
            "type": "object",
            "required": ["items", "total", "limit", "offset"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
                "total": {"type": "integer"},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
                "total_capped": {"type": "boolean", "description": "total is a lower bound"},
                "next_cursor": {
                    "type": "string",
                    "nullable": True,
                    "description": "run lists: pass as cursor for the next page; null when this page is not full",
                },
            },
        }
    return {"$ref": f"#/components/schemas/{name}"}


def build_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("api."):
            continue
        view = current_app.view_functions[rule.endpoint]
        meta = getattr(view, "openapi", None)
        if meta is None:
            raise LookupError(f"{rule.endpoint} has no @documented")
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        doc = (view.__doc__ or "").strip().splitlines()
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"} if name == "job_id" else {"type": "string"},
            }
            for name in sorted(rule.arguments)
        ] + [{"name": name, "in": "query", "required": False, "schema": PARAMETERS[name]} for name in meta["query"]]
        status, schema_name = meta["ok"]
        success: dict[str, Any] = {"description": "OK"}
        schema = _response_schema(schema_name)
        if schema is not None:
            success["content"] = {"application/json": {"schema": schema}}
        if meta["media"]:
            success["content"] = {meta["media"]: {"schema": {"type": "string", "format": "binary"}}}
        responses = {str(status): success}
        responses.update(
            {
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for code, text in ERRORS.items()
            }
        )
        if meta["media"]:
            responses["206"] = {"description": "the requested range"}
            responses["304"] = {"description": "not modified (If-None-Match)"}
            responses["416"] = {"description": "range not satisfiable"}
        if status == 202:
            responses["202"]["headers"] = {"Location": {"schema": {"type": "string"}}}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": rule.endpoint.removeprefix("api."),
                "summary": doc[0] if doc else rule.endpoint,
                "parameters": parameters,
                "responses": responses,
            }
            if meta["body"]:
                operation["requestBody"] = {
                    "required": meta["body"] not in ("Reason",),
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{meta['body']}"}}},
                }
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Agar Run Manager API",
            "version": "1.0.0",
            "description": "Runs of web scrapers through their life: active, archived, deleted.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**SCHEMAS, **BODIES},
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> Any:
    """The OpenAPI 3 document of the JSON API."""
    return build_document()
