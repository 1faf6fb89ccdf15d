"""What keeps the API fast at a million runs (issue 4), each shown to do what it claims.

- the token → user lookup is remembered a few seconds, and forgotten at once on rotation;
- a page that is not full needs no count; large totals are remembered a few seconds; small
  ones are always counted afresh; each per caller and filters;
- a count stops at a cap: above it ``total`` is a lower bound marked ``total_capped``;
- deep pages: offsets stop at 10,000; ``next_cursor`` pages on through the index, with no gap
  and no repeat, whatever the page size;
- reads run in autocommit (no transaction around them); a pooled connection that died while
  idle is replaced before use;
- responses go through orjson: the same JSON shapes as before;
- the run, audit and events lists build their statements once per shape of listing (admin or
  member, which filters are given), the member's id bound at execution: a member still sees only
  their own rows; a call with a valid token skips the throttle's evaluation (it is exempt anyway).
"""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, event, text

from app import db_session
from app.api import listing
from app.auth import users
from app.auth.users import Caller, rotate_token
from app.extensions import db
from app.json_provider import OrjsonProvider
from app.ttl_cache import TTLCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    """Each test starts with empty caches of its own, on a clock it moves by hand."""
    clock = FakeClock()
    monkeypatch.setattr(users, "TOKENS", TTLCache(ttl=5.0, size=1024, clock=clock))
    monkeypatch.setattr(listing, "TOTALS", TTLCache(ttl=5.0, size=4096, clock=clock))
    return clock


@contextmanager
def statements(app):
    """The SQL the app sends while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def register(account, count: int, **body) -> list[dict]:
    runs = []
    for i in range(count):
        response = account.post("/api/scraper/jobs", json={"name": f"run {i}", "scraper": "books", **body})
        assert response.status_code == 201, response.json
        runs.append(response.json)
    return runs


def _counts(seen: list[str]) -> list[str]:
    return [s for s in seen if re.search(r"count\(", s, re.IGNORECASE)]


def _user_lookups(seen: list[str]) -> list[str]:
    return [s for s in seen if re.search(r"FROM users", s)]


# -- the token cache ---------------------------------------------------------------------------------


def test_a_valid_token_is_looked_up_once_while_remembered(app, member, fresh_caches):
    with statements(app) as seen:
        for _ in range(3):
            assert member.get("/api/scraper/jobs").status_code == 200
    assert len(_user_lookups(seen)) == 1
    fresh_caches.now += users.TOKENS.ttl + 0.1  # a few seconds later: looked up again
    with statements(app) as seen:
        assert member.get("/api/scraper/jobs").status_code == 200
    assert len(_user_lookups(seen)) == 1


def test_unknown_tokens_always_reach_the_database(app, client):
    with statements(app) as seen:
        for _ in range(2):
            response = client.get("/api/scraper/jobs", headers={"Authorization": "Bearer agar_nope"})
            assert response.status_code == 401
    assert len(_user_lookups(seen)) == 2


def test_rotating_a_token_stops_the_old_one_at_once(app, member):
    assert member.get("/api/scraper/jobs").status_code == 200  # now remembered
    old = member.token
    member.token = rotate_token(db.session, member.user)
    assert member.get("/api/scraper/jobs").status_code == 200
    stale = member.client.get("/api/scraper/jobs", headers={"Authorization": f"Bearer {old}"})
    assert stale.status_code == 401


def test_the_cache_forgets_the_oldest_when_full_and_each_entry_after_its_ttl():
    clock = FakeClock()
    cache = TTLCache(ttl=5, size=2, clock=clock)
    callers = [Caller(uuid.uuid4(), f"u{i}", "member") for i in range(3)]
    for i, caller in enumerate(callers):
        cache.put(f"d{i}", caller)
    assert cache.get("d0") is None and cache.get("d1") == callers[1] and cache.get("d2") == callers[2]
    clock.now += 5
    assert cache.get("d2") is None


# -- totals ------------------------------------------------------------------------------------------


def test_a_page_that_is_not_full_needs_no_count(app, member):
    register(member, 3)
    with statements(app) as seen:
        body = member.get("/api/scraper/jobs?limit=10").json
    assert body["total"] == 3 and len(body["items"]) == 3
    assert _counts(seen) == []
    with statements(app) as seen:
        body = member.get("/api/scraper/jobs?limit=2&offset=2").json  # the last, partial page
    assert body["total"] == 3 and _counts(seen) == []


def test_small_totals_are_counted_afresh(app, member):
    register(member, 3)
    assert member.get("/api/scraper/jobs?limit=2").json["total"] == 3
    register(member, 1)
    with statements(app) as seen:
        assert member.get("/api/scraper/jobs?limit=2").json["total"] == 4
    assert len(_counts(seen)) == 1


def test_large_totals_are_remembered_for_a_few_seconds(app, member, monkeypatch, fresh_caches):
    monkeypatch.setattr(listing, "LARGE_TOTAL", 3)
    register(member, 4)
    assert member.get("/api/scraper/jobs?limit=2").json["total"] == 4
    register(member, 1)
    with statements(app) as seen:
        body = member.get("/api/scraper/jobs?limit=2&offset=2").json  # another page, same listing
    assert body["total"] == 4 and _counts(seen) == []  # remembered: at most ttl seconds old
    fresh_caches.now += listing.TOTALS.ttl
    assert member.get("/api/scraper/jobs?limit=2").json["total"] == 5


def test_totals_are_remembered_per_caller_and_filters(app, member, other_member, admin, monkeypatch):
    monkeypatch.setattr(listing, "LARGE_TOTAL", 1)
    register(member, 3)
    register(other_member, 2, scraper="quotes")
    assert member.get("/api/scraper/jobs?limit=1").json["total"] == 3
    assert other_member.get("/api/scraper/jobs?limit=1").json["total"] == 2
    assert admin.get("/api/scraper/jobs?limit=1").json["total"] == 5
    assert admin.get("/api/scraper/jobs?limit=1&scraper=quotes").json["total"] == 2


def test_a_total_at_the_cap_is_exact_and_unmarked(app, member, monkeypatch):
    monkeypatch.setattr(listing, "TOTAL_CAP", 3)
    register(member, 3)
    body = member.get("/api/scraper/jobs?limit=2").json
    assert body["total"] == 3 and "total_capped" not in body


def test_a_total_above_the_cap_is_a_marked_lower_bound_from_a_bounded_count(app, member, monkeypatch):
    monkeypatch.setattr(listing, "TOTAL_CAP", 3)
    register(member, 5)
    with statements(app) as seen:
        body = member.get("/api/scraper/jobs?limit=2").json
    assert (body["total"], body["total_capped"]) == (3, True)  # at least 3 of the 5
    assert len(_counts(seen)) == 1 and re.search(r"LIMIT", _counts(seen)[0], re.IGNORECASE)
    deeper = member.get("/api/scraper/jobs?limit=1&offset=3").json  # the rows seen count too
    assert (deeper["total"], deeper["total_capped"]) == (4, True)


def test_a_page_that_is_not_full_gives_an_exact_total_past_the_cap_without_counting(app, member, monkeypatch):
    monkeypatch.setattr(listing, "TOTAL_CAP", 3)
    register(member, 5)
    with statements(app) as seen:
        body = member.get("/api/scraper/jobs?limit=10").json
    assert body["total"] == 5 and "total_capped" not in body and _counts(seen) == []
    last = member.get("/api/scraper/jobs?limit=2&offset=4").json
    assert last["total"] == 5 and "total_capped" not in last


def test_the_cap_applies_to_each_filter_set(app, admin, monkeypatch):
    monkeypatch.setattr(listing, "TOTAL_CAP", 3)
    register(admin, 5, scraper="books")
    register(admin, 2, scraper="quotes")
    everything = admin.get("/api/scraper/jobs?limit=1").json
    quotes = admin.get("/api/scraper/jobs?limit=1&scraper=quotes").json
    books = admin.get("/api/scraper/jobs?limit=1&scraper=books").json
    assert (everything["total"], everything.get("total_capped")) == (3, True)
    assert (quotes["total"], quotes.get("total_capped")) == (2, None)
    assert (books["total"], books.get("total_capped")) == (3, True)


def test_a_page_at_a_cursor_counts_its_list_up_to_the_cap(app, member, monkeypatch):
    monkeypatch.setattr(listing, "TOTAL_CAP", 3)
    register(member, 5)
    first = member.get("/api/scraper/jobs?limit=2").json
    after = member.get(f"/api/scraper/jobs?limit=2&cursor={first['next_cursor']}").json
    assert len(after["items"]) == 2 and (after["total"], after["total_capped"]) == (3, True)
    monkeypatch.setattr(listing, "TOTAL_CAP", 10)  # small totals are never remembered: counted again
    exact = member.get(f"/api/scraper/jobs?limit=2&cursor={first['next_cursor']}").json
    assert exact["total"] == 5 and "total_capped" not in exact


def test_the_archived_list_caps_its_total_too(admin, lc, make_run, monkeypatch):
    from app.lifecycle import archival

    monkeypatch.setattr(listing, "TOTAL_CAP", 2)
    for _ in range(3):
        archival.archive_run(lc, make_run(owner=admin.user.id).id, actor="t")
    body = admin.get("/api/scraper/jobs/archived?limit=1").json
    assert (body["total"], body["total_capped"]) == (2, True)
    assert admin.get("/api/scraper/jobs/archived?limit=3").json["total"] == 3


def test_the_audit_and_events_lists_count_only_when_their_page_is_full(app, admin, lc):
    from app.models import JobAudit, LifecycleEvent, utcnow

    job_id = uuid.uuid4()
    lc.session.add_all([LifecycleEvent(job_id=job_id, action="archive", actor="t", outcome="failed") for _ in range(3)])
    lc.session.add_all([JobAudit(job_id=uuid.uuid4(), deleted_at=utcnow(), strategy="soft") for _ in range(3)])
    lc.session.commit()
    for path in ("/api/scraper/events", "/api/scraper/audit"):
        with statements(app) as seen:
            body = admin.get(f"{path}?limit=10").json
        assert body["total"] == 3 and _counts(seen) == [], path
        with statements(app) as seen:
            body = admin.get(f"{path}?limit=2").json
        assert body["total"] == 3 and len(_counts(seen)) == 1, path


# -- deep pages --------------------------------------------------------------------------------------


def test_offsets_stop_at_ten_thousand_but_on_an_archives_members(member, lc, make_run):
    assert member.get("/api/scraper/jobs?offset=10000").status_code == 200
    response = member.get("/api/scraper/jobs?offset=10001")
    assert response.status_code == 400
    assert "next_cursor" in response.json["error"]["message"]
    assert member.get("/api/scraper/jobs/archived?offset=10001").status_code == 400
    assert member.get("/api/scraper/events?offset=10001").status_code == 400
    from app.lifecycle import archival

    job = make_run(owner=member.user.id)
    archival.archive_run(lc, job.id, actor="t")
    deep = member.get(f"/api/scraper/jobs/{job.id}/archive/files?offset=20000")
    assert deep.status_code == 200 and deep.json["items"] == []


def test_totals_depend_on_the_order_of_repeated_filters(app, admin, monkeypatch):
    monkeypatch.setattr(listing, "LARGE_TOTAL", 1)
    register(admin, 3, scraper="books")
    register(admin, 2, scraper="quotes")
    first = admin.get("/api/scraper/jobs?limit=1&scraper=books&scraper=quotes").json["total"]
    other = admin.get("/api/scraper/jobs?limit=1&scraper=quotes&scraper=books").json["total"]
    assert (first, other) == (3, 2)  # the first value filters: each order has its own total


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_next_cursor_walks_every_run_once(admin, limit):
    created = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ids = []
    for i in range(7):  # three runs share a created_at: the id breaks the tie
        at = created - timedelta(minutes=i // 3)
        run = admin.post(
            "/api/scraper/jobs",
            json={"name": f"r{i}", "scraper": "s", "status": "running", "created_at": at.isoformat()},
        ).json
        ids.append(run["id"])
    seen, url = [], f"/api/scraper/jobs?limit={limit}"
    for _page in range(8):
        body = admin.get(url).json
        assert body["total"] == 7
        seen += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        url = f"/api/scraper/jobs?limit={limit}&cursor={body['next_cursor']}"
    else:
        pytest.fail("next_cursor never ended")
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    listed = admin.get("/api/scraper/jobs?limit=7").json["items"]
    assert seen == [item["id"] for item in listed]  # the same order as one big page


def test_a_full_last_page_ends_with_an_empty_one(member):
    register(member, 2)
    body = member.get("/api/scraper/jobs?limit=2").json
    assert body["next_cursor"] is not None
    after = member.get(f"/api/scraper/jobs?limit=2&cursor={body['next_cursor']}").json
    assert after["items"] == [] and after["next_cursor"] is None and after["total"] == 2


# -- statements built once per shape of listing ----------------------------------------------------


@pytest.fixture
def built(monkeypatch):
    """The run lists' statements start unbuilt; returns how often ``runs_in_tier`` is asked for one."""
    monkeypatch.setattr(listing, "_SHAPES", {})
    calls: list[str] = []
    original = listing.queries.runs_in_tier

    def counted(actor, tier, **filters):  # type: ignore[no-untyped-def]
        calls.append(tier)
        return original(actor, tier, **filters)

    monkeypatch.setattr(listing.queries, "runs_in_tier", counted)
    return calls


def test_a_run_list_builds_its_statement_once_per_shape(member, other_member, admin, built):
    register(member, 2)
    for account in (member, other_member, member):
        assert account.get("/api/scraper/jobs?limit=1").status_code == 200
    assert built == ["active"]  # one member shape, whoever the member is
    admin.get("/api/scraper/jobs?limit=1")
    admin.get("/api/scraper/jobs?limit=5&status=pending")
    admin.get("/api/scraper/jobs?limit=7&status=running")  # the same shape: one status, another value
    assert built == ["active", "active", "active"]
    admin.get("/api/scraper/jobs?q=run")  # a text search is built for its request
    admin.get("/api/scraper/jobs?q=run")
    assert len(built) == 5


FILTERED = [
    "",
    "status=pending",
    "status=pending,running,pending",
    "scraper=books",
    "start_date=2000-01-01",
    "end_date=2999-01-01",
    "start_date=2000-01-01&end_date=2999-01-01&scraper=books&status=pending",
    "offset=1",
]


@pytest.mark.parametrize("filters", FILTERED)
def test_a_member_sees_only_their_runs_through_a_shared_statement(member, other_member, admin, built, filters):
    mine = {run["id"] for run in register(member, 3)}
    theirs = {run["id"] for run in register(other_member, 2)}
    everyone = mine | theirs
    skipped = 1 if "offset" in filters else 0
    for account, expected in ((member, mine), (other_member, theirs), (admin, everyone), (member, mine)):
        body = account.get(f"/api/scraper/jobs?limit=50&{filters}").json
        ids = {item["id"] for item in body["items"]}
        assert ids <= expected and len(ids) == len(expected) - skipped
        assert body["total"] == len(expected)
        first = account.get(f"/api/scraper/jobs?limit=1&{filters}").json  # and on by cursor
        after = account.get(f"/api/scraper/jobs?limit=50&cursor={first['next_cursor']}&{filters}").json
        assert {item["id"] for item in first["items"] + after["items"]} <= expected


def test_the_archived_list_shares_its_statements_but_not_its_runs(member, other_member, lc, make_run, built):
    from app.lifecycle import archival

    mine = make_run(owner=member.user.id)
    theirs = make_run(owner=other_member.user.id)
    for run in (mine, theirs):
        archival.archive_run(lc, run.id, actor="t")
    assert [item["id"] for item in member.get("/api/scraper/jobs/archived").json["items"]] == [str(mine.id)]
    assert [item["id"] for item in other_member.get("/api/scraper/jobs/archived").json["items"]] == [str(theirs.id)]
    assert built == ["archived"]


@pytest.mark.parametrize("filters", ["", "start_date=2000-01-01&end_date=2999-01-01", "offset=0&limit=5"])
def test_the_audit_and_events_share_statements_but_not_rows(member, other_member, admin, lc, make_run, built, filters):
    from app.lifecycle import archival, deletion

    mine = make_run(days_ago=40, owner=member.user.id)
    theirs = make_run(days_ago=40, owner=other_member.user.id)
    for job, who in ((mine, "max"), (theirs, "olga")):
        archival.archive_run(lc, job.id, actor="scheduler")
        deletion.delete_run(lc, job.id, actor=who, reason="tidy up")
    for path in ("/api/scraper/audit", "/api/scraper/events"):
        for account, expected in ((member, {mine.id}), (other_member, {theirs.id}), (admin, {mine.id, theirs.id})):
            body = account.get(f"{path}?{filters}").json
            assert {item["job_id"] for item in body["items"]} == {str(job_id) for job_id in expected}, path
            one = account.get(f"{path}?job_id={mine.id}&{filters}").json["items"]  # a run's own history
            assert {item["job_id"] for item in one} == (set() if account is other_member else {str(mine.id)}), path
    assert len(listing._SHAPES) == 8  # audit and events, member and admin, with and without job_id


def test_a_bad_filter_value_is_refused_and_never_kept_as_a_shape(admin, built):
    assert admin.get("/api/scraper/audit?strategy=hard").status_code == 200
    assert admin.get("/api/scraper/events?action=archive&outcome=failed").status_code == 200
    for bad in (
        "/api/scraper/audit?strategy=shred",
        "/api/scraper/events?action=explode",
        "/api/scraper/events?outcome=maybe",
    ):
        assert admin.get(bad).status_code == 400
    assert set(listing._SHAPES) == {
        ("audit", True, False, "hard", False, False),
        ("events", True, False, "archive", "failed", False, False),
    }


def test_a_call_with_a_valid_token_skips_the_throttles_evaluation(app, client, member, monkeypatch):
    from app.auth.throttle import limiter

    resolved: list[str] = []
    original = limiter.limit_manager.resolve_limits

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        resolved.append("resolved")
        return original(*args, **kwargs)

    monkeypatch.setattr(limiter.limit_manager, "resolve_limits", spy)
    assert member.get("/api/scraper/jobs").status_code == 200
    assert resolved == []  # exempt anyway: not even worked out
    assert client.get("/api/scraper/jobs", headers={"Authorization": "Bearer agar_nope"}).status_code == 401
    assert resolved == ["resolved"]  # a failing call is still counted


def _cursor(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "%%%",
        "bm90IGEgY3Vyc29y",
        _cursor("2026-11-01T12:00:00|not-a-uuid"),
        _cursor("2026-11-01T12:00:00|8c9b99a7-e5a5-42ec-98ce-bb0d821ae60e"),  # no zone
        _cursor("9999-12-31T23:59:59-14:00|8c9b99a7-e5a5-42ec-98ce-bb0d821ae60e"),  # beyond year 9999 in UTC
        _cursor("0001-01-01T00:00+14:00|8c9b99a7-e5a5-42ec-98ce-bb0d821ae60e"),  # before year 1 in UTC
        "A" * 300,
        "MjAyNi0xMS0wMXw",
    ],
)
def test_cursors_not_written_by_the_api_are_400(member, cursor):
    response = member.get(f"/api/scraper/jobs?cursor={cursor}")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"
    assert member.get(f"/api/scraper/jobs/archived?cursor={cursor}").status_code == 400


# -- the connection ----------------------------------------------------------------------------------


def _autocommit(dbapi_connection) -> bool:  # type: ignore[no-untyped-def]
    if hasattr(dbapi_connection, "pgconn"):  # psycopg
        return bool(dbapi_connection.autocommit)
    return dbapi_connection.isolation_level is None  # sqlite3: no implicit transactions


def test_api_reads_run_in_autocommit_and_writes_in_a_transaction(app, member):
    modes: list[tuple[str, bool]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        modes.append((statement.split()[0].upper(), _autocommit(conn.connection.dbapi_connection)))

    db.session.commit()  # the test's own session holds no connection
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert member.get("/api/scraper/jobs").status_code == 200
        reads = list(modes)
        modes.clear()
        register(member, 1)
        writes = list(modes)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert reads and all(auto for _verb, auto in reads)
    assert any(verb == "INSERT" for verb, _auto in writes)
    assert not any(auto for verb, auto in writes if verb == "INSERT")


@pytest.fixture
def pings(app, monkeypatch):
    """Count the pings of pooled connections."""
    calls: list[object] = []
    dialect = db.engine.dialect
    real = dialect.do_ping

    def counting(dbapi_connection):  # type: ignore[no-untyped-def]
        calls.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting)
    return calls


def test_connections_in_use_a_moment_ago_are_not_pinged(app, member, pings):
    for _ in range(3):
        assert member.get("/api/scraper/jobs").status_code == 200
    assert pings == []


def test_a_connection_idle_for_a_while_is_pinged_first(app, member, pings, monkeypatch):
    assert member.get("/api/scraper/jobs").status_code == 200
    monkeypatch.setattr(db_session, "IDLE_PING_SECONDS", 0.0)
    assert member.get("/api/scraper/jobs").status_code == 200
    assert len(pings) >= 1


def test_a_connection_that_died_while_idle_is_replaced(app, pings, monkeypatch):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a SQLite connection cannot die while idle; the PostgreSQL pass covers this")
    db.session.remove()
    with db.engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    killer = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with killer.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()
    monkeypatch.setattr(db_session, "IDLE_PING_SECONDS", 0.0)
    with db.engine.connect() as connection:  # pinged, found dead, replaced before use
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    assert pings


def test_postgresql_sessions_speak_utc(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no zone; UTCDateTime tags its values as UTC")
    with db.engine.connect() as connection:
        assert connection.execute(text("SHOW TimeZone")).scalar() == "UTC"
        moment = connection.execute(text("SELECT now()")).scalar()
    assert moment.tzinfo is UTC


# -- JSON --------------------------------------------------------------------------------------------


def test_orjson_writes_the_apis_forms(app):
    provider = OrjsonProvider(app)
    moment = datetime(2026, 11, 28, 18, 10, 5, 120000, tzinfo=UTC)
    job_id = uuid.UUID("8c9b99a7-e5a5-42ec-98ce-bb0d821ae60e")
    body = provider.dumps({"at": moment, "id": job_id, "sum": Decimal(12), "ratio": Decimal("0.5")})
    assert body == (
        '{"at":"2026-11-28T18:10:05.120000Z","id":"8c9b99a7-e5a5-42ec-98ce-bb0d821ae60e","sum":12,"ratio":0.5}'
    )
    with pytest.raises(TypeError):
        provider.dumps({"x": object()})
    assert provider.loads(b'{"a": [1]}') == {"a": [1]}
