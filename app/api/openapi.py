"""``/openapi.json`` and ``/docs``: the API described from the code itself, so the document cannot drift.

Paths, methods and path parameters come from Flask's URL map; summaries from the views'
docstrings; the query parameters, body and success response of each view from ``@documented``
beside it. Response schemas come from the shapes the serializers write (``app.api.schemas``),
query parameters from the limits and value lists the parsers check, request bodies from the
columns they fill. Tests hold each body to the fields its view accepts and the enums to the
models' tuples. ``/docs`` is the same document as a page: server-rendered, no script, no CDN.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, g, render_template, session
from markupsafe import Markup

from app.api.schemas import ALERT, AUDIT, EVENT, JOB, MEMBER, POLICY, POLICY_CHANGE, SCRAPER, SNAPSHOT, column_schema
from app.auth.sessions import caller_of_session
from app.config import DELETION_STRATEGIES
from app.extensions import db
from app.lifecycle import policies
from app.lifecycle.events import SUPERSEDED
from app.lifecycle.queries import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, MAX_SEARCH
from app.models import EVENT_OUTCOMES, JOB_STATUSES, LIFECYCLE_ACTIONS, Job
from app.monitoring.figures import TIERS as STORAGE_TIERS
from app.monitoring.forecast import TIERS as FORECAST_TIERS

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
DATE_OR_TIME = {"type": "string", "description": "ISO 8601 date (a whole UTC day) or date-time"}

PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_LIMIT,
        "default": DEFAULT_LIMIT,
        "description": f"a larger limit is cut to {MAX_LIMIT}",
    },
    "offset": {
        "type": "integer",
        "minimum": 0,
        "default": 0,
        "description": f"rows to skip: at most {MAX_OFFSET:,} (deeper: a date range, or a run list's cursor), "
        "but on an archive's member list",
    },
    "cursor": {
        "type": "string",
        "description": "the next_cursor of the page before: the page of runs after it (offset counts from there)",
    },
    "start_date": DATE_OR_TIME,
    "end_date": DATE_OR_TIME,
    "status": {
        "type": "array",
        "items": {"type": "string", "enum": list(JOB_STATUSES)},
        "description": "comma-separated: runs in any of these statuses",
    },
    "q": {"type": "string", "maxLength": MAX_SEARCH, "description": "text in name, scraper, folder name or id"},
    "scraper": {"type": "string"},
    "job_id": {"type": "string", "format": "uuid"},
    "strategy": {"type": "string", "enum": list(DELETION_STRATEGIES)},
    "deleted_by": {"type": "string"},
    "action": {"type": "string", "enum": list(LIFECYCLE_ACTIONS)},
    "outcome": {"type": "string", "enum": list(EVENT_OUTCOMES)},
    "actor": {"type": "string"},
    "days": {"type": "integer", "minimum": 1, "maximum": 365, "default": 30},
    "dry_run": {
        "type": "string",
        "enum": ["1", "true", "0", "false"],
        "description": "1: answer what the change would do in the next passes (PolicyEffect, 200); save nothing",
    },
}


def _field(column: Any, *, enum: tuple[str, ...] | None = None, **rules: Any) -> dict[str, Any]:
    """A body field that fills ``column``: its type, length and values (never null), and further ``rules``."""
    return {**column_schema(column, enum=enum, nullable=False), **rules}


def _body(fields: dict[str, dict[str, Any]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": fields}
    if required:
        schema["required"] = list(required)
    return schema


_REASON = {"type": "string", "minLength": 1, "description": "why: kept in the run's history"}
_IMPORTING = "admins only: importing a finished run"
# A policy's fields as an ask sets them (app.lifecycle.policies.read_fields checks the same limits).
POLICY_FIELDS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "minLength": 1, "maxLength": policies.MAX_NAME},
    "scraper_pattern": {
        "type": "string",
        "minLength": 1,
        "maxLength": policies.MAX_PATTERN,
        "description": "glob: * any characters, ? one; case ignored",
    },
    "statuses": POLICY.schema()["properties"]["statuses"],
    "archive_after_days": {"type": "integer", "minimum": 0, "maximum": policies.MAX_DAYS},
    "delete_after_days": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": policies.MAX_DAYS,
        "description": "null: never deleted by the schedule (also when left out of a new policy)",
    },
    "keep_last": {"type": "integer", "minimum": 0, "maximum": policies.MAX_KEEP_LAST},
    "keep_after_access_days": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": policies.MAX_DAYS,
        "description": "a run opened, downloaded or restored by a person within this many days is not deleted",
    },
    "legal_hold": {"type": "boolean"},
    "priority": {"type": "integer", "minimum": policies.PRIORITIES[0], "maximum": policies.PRIORITIES[1]},
}
_RUNS_AND_BYTES = {
    "type": "object",
    "required": ["runs", "bytes"],
    "properties": {"runs": {"type": "integer"}, "bytes": {"type": "integer"}},
}
# The request bodies, by the columns they fill. Each names exactly the fields its view's
# json_body accepts: tests/test_openapi.py sends every body and compares.
BODIES: dict[str, dict[str, Any]] = {
    "NewJob": _body(
        {
            "id": _field(Job.id),
            "name": _field(Job.name, minLength=1),
            "scraper": _field(Job.scraper, minLength=1),
            "stats": _field(Job.stats),
            "status": _field(Job.status, enum=JOB_STATUSES, description=_IMPORTING),
            "created_at": _field(Job.created_at, description=_IMPORTING),
            "started_at": _field(Job.started_at, description=_IMPORTING),
            "completed_at": _field(Job.completed_at, description=_IMPORTING),
        },
        required=("name", "scraper"),
    ),
    "JobUpdate": _body(
        {"status": _field(Job.status, enum=JOB_STATUSES, description="forward only"), "stats": _field(Job.stats)}
    ),
    "Reason": _body({"reason": _REASON}),
    "Deletion": _body({"reason": _REASON, "strategy": PARAMETERS["strategy"]}, required=("reason",)),
    "NewPolicy": _body(
        {**POLICY_FIELDS, "reason": _REASON}, required=("name", "scraper_pattern", "archive_after_days", "reason")
    ),
    "PolicyUpdate": _body({**POLICY_FIELDS, "reason": _REASON}, required=("reason",)),
    "Retention": _body(
        {"reason": _REASON, "retain_until": _field(Job.retain_until), "keep_forever": _field(Job.keep_forever)},
        required=("reason",),
    ),
    "ConfirmDeletions": _body({"reason": {**_REASON, "description": "why: kept with the alert"}}, required=("reason",)),
}
OPTIONAL_BODIES = {"Reason"}  # no body at all is an empty one
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
    **{shape.name: shape.schema() for shape in (JOB, EVENT, AUDIT, SNAPSHOT, ALERT, MEMBER, POLICY, POLICY_CHANGE)},
    "JobWithHistory": {
        "allOf": [
            {"$ref": "#/components/schemas/Job"},
            {
                "type": "object",
                "required": ["events"],
                "properties": {
                    "events": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Event"},
                        "description": "newest first",
                    }
                },
            },
        ]
    },
    "StorageForecast": {
        "type": "object",
        "required": ["days", "alert_threshold_date"],
        "properties": {
            "days": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "date",
                        "active_bytes",
                        "archived_bytes",
                        "trash_bytes",
                        "restored_bytes",
                        "disk_used_percent",
                    ],
                    "properties": {
                        "date": {"type": "string", "format": "date"},
                        **{f"{tier}_bytes": {"type": "integer"} for tier in FORECAST_TIERS},
                        "disk_used_percent": {"type": ["number", "null"]},
                    },
                },
            },
            "alert_threshold_date": {
                "type": ["string", "null"],
                "format": "date",
                "description": "the first day the disk's use reaches STORAGE_ALERT_PERCENT; null: not within the days",
            },
        },
    },
    "PolicyEffect": {
        "type": "object",
        "required": ["archive", "delete", "by_scraper"],
        "description": "what the next archival and cleanup passes take (recorded sizes); a dry run adds the "
        "change from the policies in force",
        "properties": {
            "archive": _RUNS_AND_BYTES,
            "delete": _RUNS_AND_BYTES,
            "by_scraper": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "scraper": {"type": "string"},
                        **{
                            f"{step}_{what}": {"type": "integer"}
                            for step in ("archive", "delete")
                            for what in ("runs", "bytes")
                        },
                        "change": {
                            "type": "object",
                            "description": "a dry run's: each figure less the one under the policies in force",
                            "properties": {
                                f"{step}_{what}": {"type": "integer"}
                                for step in ("archive", "delete")
                                for what in ("runs", "bytes")
                            },
                        },
                    },
                },
            },
            "change": {"type": "object", "properties": {"archive": _RUNS_AND_BYTES, "delete": _RUNS_AND_BYTES}},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["task_id", "status"],
        "properties": {"task_id": {"type": "string"}, "status": {"type": "string", "enum": ["queued"]}},
    },
    # A task's state is RQ's, in Redis, not a table's: app.tasks.task_state writes it.
    "Task": {
        "type": "object",
        "required": ["task_id", "status", "progress"],
        "properties": {
            "task_id": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["queued", "started", "retrying", "finished", SUPERSEDED, "failed"],
                "description": f"retrying: an attempt failed and the next waits; {SUPERSEDED}: the run changed "
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
    # Figures summed by app.monitoring; their inner shape is described there.
    "StorageStats": {
        "type": "object",
        "required": ["as_of", "tiers", "compression", "archive_success_rate", "disk"],
        "properties": {
            "tiers": {
                "type": "object",
                "required": list(STORAGE_TIERS),
                "properties": dict.fromkeys(STORAGE_TIERS, _RUNS_AND_BYTES),
                "description": "runs and bytes per tier (restored: working copies of archived runs in jobs/, "
                "whose archives count as archived; purged: what their archives weighed)",
            }
        },
    },
    SCRAPER.name: SCRAPER.schema(),
    "ScraperStats": {
        "type": "object",
        "required": ["days", "since", "scrapers"],
        "properties": {
            "days": {"type": "integer", "description": "the window: this many UTC days, today included"},
            "since": {"type": "string", "format": "date", "description": "the window's first day"},
            "scrapers": {"type": "array", "items": {"$ref": f"#/components/schemas/{SCRAPER.name}"}},
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
        if body is not None and body not in BODIES:
            raise ValueError(f"no request body {body!r} in BODIES for {view.__name__}")
        shown = ok[1][5:-1] if ok[1] and ok[1].startswith("Page[") else ok[1]
        if shown is not None and shown not in SCHEMAS:
            raise ValueError(f"no schema {shown!r} in SCHEMAS for {view.__name__}")
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
                    "type": ["string", "null"],
                    "description": "run lists: pass as cursor for the next page; null when this page is not full",
                },
            },
        }
    return {"$ref": f"#/components/schemas/{name}"}


def _query_parameter(name: str) -> dict[str, Any]:
    schema = PARAMETERS[name]
    parameter = {"name": name, "in": "query", "required": False, "schema": schema}
    if schema["type"] == "array":  # one parameter, comma-separated: status=pending,running
        parameter.update(style="form", explode=False)
    return parameter


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
        ] + [_query_parameter(name) for name in meta["query"]]
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
                    "required": meta["body"] not in OPTIONAL_BODIES,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{meta['body']}"}}},
                }
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
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
    """The OpenAPI 3.1 document of the JSON API."""
    return build_document()


def schema_type(schema: dict[str, Any]) -> str:
    """A schema's type in a few words (``string (uuid) or null``, ``array of Job``) for the ``/docs`` page."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "allOf" in schema:
        return " + ".join(schema_type(part) if "$ref" in part else "events" for part in schema["allOf"])
    if "items" in schema.get("properties", {}):
        return f"page of {schema_type(schema['properties']['items']['items'])}"
    kinds = schema.get("type", "any JSON")
    words = []
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "array":
            words.append(f"array of {schema_type(schema.get('items', {}))}")
        elif kind != "null" and "format" in schema:
            words.append(f"{kind} ({schema['format']})")
        else:
            words.append(kind)
    return " or ".join(words)


def schema_named(schema: dict[str, Any]) -> str | None:
    """The component a schema stands for (itself, its items, its page's items), to link to on ``/docs``."""
    for inner in (schema, schema.get("items", {}), schema.get("properties", {}).get("items", {}).get("items", {})):
        if "$ref" in inner:
            return inner["$ref"].rsplit("/", 1)[-1]
    return None


def inline_code(text: str) -> Markup:
    """A docstring line for the page: ````name```` (reStructuredText) shown as code, the rest escaped."""
    parts = text.split("``")
    return Markup("").join(
        Markup("<code>%s</code>") % part if i % 2 else Markup.escape(part) for i, part in enumerate(parts)
    )


def schema_rules(schema: dict[str, Any]) -> list[str]:
    """What limits a value beyond its type: values, bounds, lengths, default."""
    schema = schema.get("items", schema) if schema.get("type") == "array" else schema
    rules = []
    if "enum" in schema:
        rules.append("one of " + ", ".join("null" if value is None else str(value) for value in schema["enum"]))
    for key, word in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("maxLength", "length ≤")):
        if key in schema:
            rules.append(f"{word} {schema[key]}")
    if "default" in schema:
        rules.append(f"default {schema['default']}")
    return rules


@bp.get("/docs")
def api_docs() -> Any:
    """The OpenAPI document as a page: readable without JavaScript, nothing fetched from elsewhere."""
    g.web_user = caller_of_session(session, db.session)  # a logged-in reader gets the dashboard's navigation
    return render_template(
        "api_docs.html",
        doc=build_document(),
        schema_type=schema_type,
        schema_named=schema_named,
        schema_rules=schema_rules,
        inline_code=inline_code,
    )
