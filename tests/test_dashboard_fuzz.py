"""A bounded fuzz run over the dashboard's pages and forms: no answer is a 500, and every 4xx page says why.

The API's twin is the schemathesis run in test_openapi.py; the dashboard has no schema, so the
parameters each page and form reads are listed here, and hypothesis fills them with dates at the
ends of the calendar, huge and negative numbers, NUL and other control characters, and any text.
"""

import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.lifecycle import archival, deletion
from tests.test_web import Browser

TEXT_EDGES = [
    "\x00",
    "a\x00b",
    "%00",
    "\u202e",
    "\r\n",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "x" * 1001,
    "",
]
# isdigit() takes "²" and \d takes "٣": neither is a number here
NUMBER_EDGES = [
    "0",
    "-1",
    "1",
    "2",
    "201",
    "99999999999999999999",
    "1e9",
    "1.5",
    " 3",
    "²",
    "٣",
]
DATE_EDGES = ["0001-01-01", "9999-12-31", "9999-12-30", "2025-02-30", "2025-01-13T14:30:52Z", "20250113", "today"]
WORD_EDGES = ["yes", "no", "soft", "hard", "active", "archived", "deleted", "archive", "succeeded", "failed"]
ANY = st.one_of(st.sampled_from(TEXT_EDGES + NUMBER_EDGES + DATE_EDGES + WORD_EDGES), st.text(max_size=40))


# Per field: the edges of what it expects. Every edge is tried alone first (a sweep: the
# random run, which combines several fields, is often refused by the first bad one it meets).
EDGES = {
    "tier": WORD_EDGES + TEXT_EDGES,
    "q": TEXT_EDGES,
    "page": NUMBER_EDGES,
    "days": NUMBER_EDGES,
    "from": DATE_EDGES,
    "to": DATE_EDGES,
    "action": WORD_EDGES + TEXT_EDGES,
    "outcome": WORD_EDGES + TEXT_EDGES,
    "task": [*TEXT_EDGES, "0123456789abcdef"],
    "doing": TEXT_EDGES,
    "job": TEXT_EDGES,
    "reason": TEXT_EDGES,
    "confirm": WORD_EDGES,
    "strategy": WORD_EDGES,
    "keep_forever": WORD_EDGES,
    "retain_until": DATE_EDGES,
    "unknown": TEXT_EDGES,
    "row": WORD_EDGES + TEXT_EDGES,
    "show": ["head", "tail", *WORD_EDGES, *TEXT_EDGES],
    "job_id": [*TEXT_EDGES, "00000000-0000-4000-8000-000000000000"],
    "next": [*TEXT_EDGES, "//evil.com", "/%09/evil.com", "/..//x", "/runs?tier=archived"],
}


# What each page reads from its query string (and one name none of them knows).
PAGES = {
    "/runs": ["tier", "q", "page"],
    "/archive": ["from", "to", "page"],
    "/audit": ["action", "outcome", "page"],
    "/storage": ["page"],
    "/scrapers": ["days"],
    "/runs/{id}/row": ["tier", "task", "doing"],
    "/runs/{id}/files/logs/run.log": ["q", "show"],
    "/runs/{id}/files/results.json": ["q", "show"],
    "/runs/{id}/raw/screens/home.png": [],
    "/runs/bulk/{task}": ["tier"],
    "/storage/forecast": ["days"],
    "/runs/{id}": ["task", "doing"],
    "/tasks/{task}": ["job", "doing"],
    "/storage/check": ["page"],
    "/password": ["next"],
    "/login": ["next"],
}
# What each form sends; it is posted with the session's CSRF token, plain and as HTMX.
FORMS = {
    "archive": ["reason", "row"],
    "restore": ["reason", "row"],
    "delete": ["reason", "confirm", "strategy", "row"],
    "undelete": ["reason", "row"],
    "retention": ["reason", "keep_forever", "retain_until", "row"],
}


def fields(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """Some of the fields, each holding one of its edges or any text."""
    optional = {name: st.one_of(st.sampled_from(EDGES[name]), ANY) for name in [*names, "unknown"]}
    return st.fixed_dictionaries({}, optional=optional)


def one_edge_at_a_time(names: list[str]) -> list[dict[str, str]]:
    # Valid forms change the run (an undelete brings it back), so they come last.
    return [{name: edge} for name in [*names, "unknown"] for edge in EDGES[name]] + [{}]


def says_why(response) -> bool:
    """A 4xx page carries its reason: the dashboard's alert line, or Werkzeug's description (404, 405, CSRF)."""
    text = response.get_data(as_text=True)
    found = re.search(r'role="alert">([^<]+)<', text) or re.search(r"<p>([^<]+)</p>", text)
    return bool(found and found.group(1).strip())


def check(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code, response.get_data(as_text=True)[:800])
    if 400 <= response.status_code < 500:
        assert says_why(response), (what, response.status_code, response.get_data(as_text=True)[:800])


@pytest.fixture
def runs(lc, make_run, admin, redis_db):
    """A run of each tier, so generated requests meet real rows as well as unknown and malformed ids."""
    active = make_run(owner=admin.user.id, days_ago=1)
    archived = make_run(owner=admin.user.id)
    archival.archive_run(lc, archived.id, actor="ada")
    deleted = make_run(owner=admin.user.id)
    archival.archive_run(lc, deleted.id, actor="ada")
    deletion.delete_run(lc, deleted.id, actor="ada", reason="tidy", strategy="soft")
    return [str(active.id), str(archived.id), str(deleted.id)]


@pytest.fixture
def browser(app, admin):
    browser = Browser(app.test_client())
    assert browser.login(admin.user.username).status_code == 302
    return browser


def run_ids(runs):
    return st.one_of(st.sampled_from(runs), st.sampled_from(["42", "not-a-uuid", "%00", "..", ""]), st.uuids().map(str))


# Derandomized, as the API's: CI explores the same cases every run, so a failure there reproduces.
FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_fuzzing_a_dashboard_page_finds_no_server_error_and_no_silent_refusal(browser, runs, page):
    for query in one_edge_at_a_time(PAGES[page]):
        for job_id in runs:
            path = page.replace("{id}", job_id).replace("{task}", "0123456789abcdef")
            check(browser.get(path, query_string=query), (path, query))

    @given(
        query=fields(PAGES[page]), job_id=run_ids(runs), task=st.sampled_from(EDGES["task"]) | ANY, htmx=st.booleans()
    )
    @FUZZ
    def fuzz(query, job_id, task, htmx):
        path = page.replace("{id}", quote(job_id, safe="")).replace("{task}", quote(task, safe="") or "x")
        headers = {"HX-Request": "true"} if htmx else {}
        check(browser.get(path, query_string=query, headers=headers), (path, query))

    fuzz()


@pytest.mark.parametrize("action", sorted(FORMS))
def test_fuzzing_a_dashboard_form_finds_no_server_error_and_no_silent_refusal(browser, runs, action):
    for form in one_edge_at_a_time(FORMS[action]):
        for job_id in runs:
            check(browser.post(f"/runs/{job_id}/{action}", data=form), (action, form))

    @given(form=fields(FORMS[action]), job_id=run_ids(runs), htmx=st.booleans())
    @FUZZ
    def fuzz(form, job_id, htmx):
        path = f"/runs/{quote(job_id, safe='')}/{action}"
        check(browser.post(path, data=form, htmx=htmx), (path, form))

    fuzz()


def test_fuzzing_the_bulk_form_finds_no_server_error_and_no_silent_refusal(browser, runs):
    names = ["action", "job_id", "reason", "confirm", "strategy", "keep_forever", "retain_until", "tier"]
    for form in one_edge_at_a_time(names):
        check(browser.post("/runs/bulk", data={"job_id": runs, **form}), form)

    @given(form=fields(names), picked=st.lists(st.sampled_from(runs)), htmx=st.booleans())
    @FUZZ
    def fuzz(form, picked, htmx):
        check(browser.post("/runs/bulk", data={"job_id": picked, **form}, htmx=htmx), form)

    fuzz()
