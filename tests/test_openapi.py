"""``/openapi.json``: every route documented, a valid document, and a bounded fuzz run against it."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.lifecycle import archival


def test_every_api_route_is_in_the_document(app, client):
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = rule.rule.replace("<path:member_path>", "{member_path}")
        for name in rule.arguments:
            path = path.replace(f"<{name}>", f"{{{name}}}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = document["paths"][path][method.lower()]
            assert operation["summary"] and any(code.startswith("2") for code in operation["responses"])


def test_the_document_is_valid_openapi(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    assert len(list(schema.get_all_operations())) == sum(
        len(rule.methods - {"HEAD", "OPTIONS"}) for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
    )


@pytest.fixture
def seeded(lc, make_run, admin, redis_db):
    """Runs in every tier, so generated requests meet real rows as well as unknown ids."""
    for days in (1, 10, 40):
        job = make_run(days_ago=days, owner=admin.user.id)
        if days > 5:
            archival.archive_run(lc, job.id, actor="scheduler")


def test_fuzzing_finds_no_server_error_and_no_response_off_schema(app, admin, seeded):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations:
        # Derandomized: CI explores the same cases every run, so a failure there always reproduces.
        # (Run with derandomize=False and more examples to explore; it found the year-999 500.)
        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def fuzz(case):
            case.call_and_validate(headers=admin.headers, checks=checks)

        fuzz()
