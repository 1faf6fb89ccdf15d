"""The dashboard's retention policies: everyone reads them in precedence order; admins add, edit and
remove them with a reason, previewing first what a change would do; bad input answers on the form."""

import html
import re

import pytest

from app.lifecycle import policies
from tests.support import policy_changes as changes
from tests.support import saved_policies as saved
from tests.support import sized_run

BOOKS = {
    "name": "books fast",
    "scraper_pattern": "books-*",
    "archive_after_days": "2",
    "delete_after_days": "",
    "keep_last": "0",
    "keep_after_access_days": "",
    "priority": "0",
    "reason": "books change fast",
}


def add(lc, **fields):
    policy = policies.add_policy(
        lc.session, policies.read_fields(fields, partial=False), actor="ada", reason="set up", now=lc.now()
    )
    lc.session.commit()
    return policy


def answer(page, prefix):
    """The text shown in a form's answer area (a preview or a refusal)."""
    found = re.search(rf'<div id="{prefix}-answer"[^>]*>(.*?)</div>', page.text, re.S)
    assert found, f"no {prefix}-answer in the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def test_everyone_reads_the_policies_in_precedence_order_and_only_admins_see_the_forms(browse, admin, member, lc):
    add(lc, name="everything", scraper_pattern="*", archive_after_days=5)
    add(lc, name="books held", scraper_pattern="books-*", archive_after_days=3, legal_hold=True, priority=10)
    add(lc, name="quotes", scraper_pattern="quotes", archive_after_days=1, keep_last=4, delete_after_days=9)
    for account in (member, admin):
        page = browse(account).get("/policies")
        assert page.status_code == 200
        assert 'href="/policies" aria-current="page">Policies<' in page.text
        names = [html.unescape(name) for name in re.findall(r"<td><strong>([^<]+)</strong>", page.text)]
        assert names == ["books held", "everything", "quotes"]  # priority 10 first, then the oldest
        assert "legal hold" in page.text and "newest 4" in page.text
        assert "deleted after 30 (the defaults)" in page.text
        assert "set up" in page.text and "added" in page.text  # the recent changes
    assert "Add policy" not in browse(member).get("/policies").text
    admin_page = browse(admin).get("/policies")
    assert "<summary>Add policy</summary>" in admin_page.text and ">Edit</a>" in admin_page.text
    assert ">Preview</button>" in admin_page.text and ">Save</button>" in admin_page.text


def test_an_admin_adds_a_policy_with_the_form_and_the_change_is_recorded(browse, admin, lc):
    browser = browse(admin)
    form = {**BOOKS, "statuses": ["failed", "completed"], "legal_hold": "yes", "keep_last": "3"}
    response = browser.post("/policies", data=form)
    assert response.status_code == 302 and response.headers["Location"] == "/policies"
    [policy] = saved(lc)
    assert (policy.name, policy.scraper_pattern, policy.statuses) == ("books fast", "books-*", ["completed", "failed"])
    assert (policy.archive_after_days, policy.delete_after_days, policy.keep_last) == (2, None, 3)
    assert (policy.legal_hold, policy.created_by, policy.reason) == (True, "ada", "books change fast")
    [change] = changes(lc)
    assert (change.action, change.actor, change.reason) == ("add", "ada", "books change fast")
    page = browser.get("/policies")
    assert "Added the policy &#39;books fast&#39;." in page.text
    assert "pattern books-*, statuses completed, failed, archive after 2 d, delete after never" in page.text
    htmx = browser.post("/policies", data={**BOOKS, "name": "second"}, htmx=True)
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/policies"
    assert [p.name for p in saved(lc)] == ["books fast", "second"]


def test_preview_shows_the_next_passes_per_scraper_and_the_change_and_saves_nothing(browse, admin, lc, make_run):
    sized_run(lc, make_run, 100 * 1024, scraper="books-toscrape", days_ago=3)
    sized_run(lc, make_run, 200 * 1024, scraper="books-toscrape", days_ago=4)
    sized_run(lc, make_run, 400 * 1024, scraper="quotes", days_ago=9)  # due under the defaults already
    browser = browse(admin)
    page = browser.post("/policies/preview", data=BOOKS)  # no JavaScript: the page, the form as sent
    assert page.status_code == 200 and "<details" in page.text and 'id="add" open' in page.text
    assert 'value="books fast"' in page.text and ">books change fast</textarea>" in page.text
    said = answer(page, "new")
    assert "Preview — nothing is saved." in said
    assert "the next passes would archive 3 runs (700 KB) and delete 0 runs (0 B)" in said
    assert "books-toscrape 2 runs · 300 KB 0 runs · 0 B archive +2 runs" in said  # each scraper's change too
    assert "quotes 1 run · 400 KB 0 runs · 0 B no change" in said
    assert "Change from now +2 runs · +300 KB no change" in said
    fragment = browser.post("/policies/preview", data=BOOKS, htmx=True)  # HTMX: the preview alone
    assert fragment.status_code == 200 and "<html" not in fragment.text and "Change from now" in fragment.text
    assert saved(lc) == [] and changes(lc) == []

    policy = add(lc, name="books fast", scraper_pattern="books-*", archive_after_days=2)
    slower = browser.post(f"/policies/{policy.id}/preview", data={**BOOKS, "archive_after_days": "30"})
    assert slower.status_code == 200 and 'value="30"' in slower.text
    assert "Change from now −2 runs · −300 KB no change" in answer(slower, "edit")
    assert "books-toscrape 0 runs · 0 B 0 runs · 0 B archive −2 runs" in answer(slower, "edit")
    removal = browser.post(f"/policies/{policy.id}/remove/preview", data={"reason": "x"}, htmx=True)
    assert "<html" not in removal.text and "−2 runs · −300 KB" in removal.text
    [policy] = saved(lc)
    assert policy.archive_after_days == 2 and len(changes(lc)) == 1


def test_an_admin_edits_then_removes_a_policy_with_a_reason(browse, admin, lc):
    policy = add(lc, name="books", scraper_pattern="books-*", archive_after_days=2, legal_hold=True, keep_last=3)
    browser = browse(admin)
    page = browser.get(f"/policies/{policy.id}")
    assert page.status_code == 200 and 'value="books-*"' in page.text
    assert re.search(r'name="legal_hold" value="yes"\s+checked', page.text)
    edit = {**BOOKS, "name": "books", "keep_last": "3", "priority": "7", "reason": "hold lifted"}  # hold unticked
    assert browser.post(f"/policies/{policy.id}", data=edit).headers["Location"] == "/policies"
    [policy] = saved(lc)
    assert (policy.legal_hold, policy.priority, policy.keep_last) == (False, 7, 3)
    change = changes(lc)[-1]
    assert (change.action, change.actor, change.reason) == ("set", "ada", "hold lifted")
    listed = browser.get("/policies").text
    assert "legal hold on → off; priority 0 → 7" in listed and "hold lifted" in listed

    no_reason = browser.post(f"/policies/{policy.id}/remove", data={"reason": " "})
    assert no_reason.status_code == 400 and answer(no_reason, "remove") == "say why: a reason is required"
    assert len(saved(lc)) == 1
    gone = browser.post(f"/policies/{policy.id}/remove", data={"reason": "books settled"}, htmx=True)
    assert gone.status_code == 204 and gone.headers["HX-Redirect"] == "/policies"
    assert saved(lc) == []
    change = changes(lc)[-1]
    assert (change.action, change.actor, change.reason, change.before["name"]) == (
        "remove",
        "ada",
        "books settled",
        "books",
    )
    assert browser.get(f"/policies/{policy.id}").status_code == 404


def test_members_cannot_change_policies_or_preview_changes(browse, member, lc):
    policy = add(lc, name="books", scraper_pattern="books-*", archive_after_days=2)
    browser = browse(member)
    for url in (
        "/policies",
        "/policies/preview",
        f"/policies/{policy.id}",
        f"/policies/{policy.id}/preview",
        f"/policies/{policy.id}/remove",
        f"/policies/{policy.id}/remove/preview",
    ):
        refused = browser.post(url, data={**BOOKS, "name": "mine"})
        assert refused.status_code == 403, url
        assert "only admins change retention policies" in refused.text
    assert browser.get(f"/policies/{policy.id}").status_code == 403
    [kept] = saved(lc)
    assert (kept.name, kept.archive_after_days) == ("books", 2) and len(changes(lc)) == 1


def test_every_change_needs_the_csrf_token(browse, admin, lc):
    browser = browse(admin)
    assert browser.post("/policies", data=BOOKS, token=False).status_code == 400
    assert browser.post("/policies/preview", data=BOOKS, token=False).status_code == 400
    assert saved(lc) == []


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"archive_after_days": "soon"}, "archive_after_days must be a whole number"),
        ({"archive_after_days": "\u00b2"}, "archive_after_days must be a whole number"),  # "²"
        ({"archive_after_days": "9", "delete_after_days": "4"}, "delete_after_days (4) must be more than"),
        ({"keep_last": "-1"}, "keep_last must be between 0 and 100000"),
        ({"name": "x" * 101}, "name is at most 100 characters"),
        ({"scraper_pattern": " "}, "scraper_pattern must be non-empty text"),
        ({"statuses": ["completed", "running"]}, "not running"),
        ({"reason": ""}, "say why: a reason is required"),
    ],
)
def test_bad_input_is_a_400_with_the_message_on_the_form(browse, admin, lc, changed, message):
    browser = browse(admin)
    page = browser.post("/policies", data={**BOOKS, **changed})
    assert page.status_code == 400
    assert message in answer(page, "new") and 'id="add" open' in page.text  # the form, open, as it was sent
    assert 'value="books-*"' in page.text or "scraper_pattern" in changed
    fragment = browser.post("/policies", data={**BOOKS, **changed}, htmx=True)
    assert fragment.status_code == 400 and message in html.unescape(fragment.text) and "<html" not in fragment.text
    if "reason" not in changed:
        assert browser.post("/policies/preview", data={**BOOKS, **changed}).status_code == 400
    assert saved(lc) == [] and changes(lc) == []


def test_a_taken_name_or_an_unknown_policy_is_said_plainly(browse, admin, lc):
    policy = add(lc, name="books fast", scraper_pattern="books-*", archive_after_days=2)
    other = add(lc, name="quotes", scraper_pattern="quotes", archive_after_days=2)
    browser = browse(admin)
    taken = browser.post("/policies", data=BOOKS)
    assert taken.status_code == 409 and "named 'books fast' exists already" in answer(taken, "new")
    renamed = browser.post(f"/policies/{other.id}", data={**BOOKS, "reason": "rename"})
    assert renamed.status_code == 409 and "exists already" in answer(renamed, "edit")
    assert browser.get("/policies/999999").status_code == 404
    assert "no retention policy 999999" in browser.post("/policies/999999", data=BOOKS).text
    assert browser.get("/policies/abc").status_code == 400
    assert [p.name for p in saved(lc)] == [policy.name, "quotes"] and len(changes(lc)) == 2


def test_hostile_values_in_any_field_are_a_4xx_that_says_why_never_a_500(browse, admin, lc):
    from tests.test_dashboard_fuzz import NUMBER_EDGES, TEXT_EDGES

    policy = add(lc, name="books", scraper_pattern="books-*", archive_after_days=2)
    browser = browse(admin)
    urls = ("/policies", "/policies/preview", f"/policies/{policy.id}", f"/policies/{policy.id}/preview")
    for field in (*policies.FIELDS, "reason"):
        for value in TEXT_EDGES + NUMBER_EDGES:
            for url in urls:
                response = browser.post(url, data={**BOOKS, "name": "other", field: value})
                assert response.status_code in (200, 302, 400, 409), (url, field, value, response.status_code)
                if response.status_code >= 400:
                    assert 'class="error" role="alert"' in response.text, (url, field, value)
