"""What a member uploaded never runs as the site, and every dashboard page forbids script it did not ship."""

import hashlib
import re
from pathlib import Path

import pytest

from app.lifecycle import archival
from tests.test_web import Browser

# Each of these, rendered on our origin, would run its script with the reader's session and CSRF token.
ATTACK = "<script>fetch('/runs').then(r => r.text()).then(t => alert(t))</script>"
ACTIVE = {
    "page.html": f"<html><body>{ATTACK}</body></html>",
    "img.svg": f'<svg xmlns="http://www.w3.org/2000/svg">{ATTACK}</svg>',
    "x.xhtml": f'<html xmlns="http://www.w3.org/1999/xhtml"><body>{ATTACK}</body></html>',
    "a.xml": f'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">{ATTACK}</html>',
    "s.js": "alert(document.cookie)",
    "deep/old.htm": ATTACK,
    "saved.mhtml": f"MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n{ATTACK}",
    "no-suffix": ATTACK,
}
PASSIVE = {
    "shot.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png"),
    "report.pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "application/pdf"),
    "results.json": (b'{"items": [1, 2, 3]}', "application/json"),
    "logs/run.log": (b"INFO fetched page\n" * 30, "text/plain"),
    # A passive name is no way in: nosniff keeps the browser to the type we send.
    "trick.png": (ATTACK.encode(), "image/png"),
}
PAGES = ("/runs", "/runs/{id}", "/archive", "/audit", "/storage")
TEMPLATES = Path(__file__).resolve().parent.parent / "app" / "templates"


@pytest.fixture
def hostile_run(lc, make_run, member):
    """A member's archived run holding files a browser would run, beside files it only shows."""
    files = {**ACTIVE, **{name: content for name, (content, _type) in PASSIVE.items()}}
    job = make_run(files, owner=member.user.id, name="Innocent looking run")
    archival.archive_run(lc, job.id, actor="scheduler")
    return archival.load_run(lc, job.id)


@pytest.fixture
def admin_browser(app, admin):
    browser = Browser(app.test_client())
    assert browser.login(admin.user.username).status_code == 302
    return browser


def policy(response) -> dict[str, str]:
    """The Content-Security-Policy header as ``{directive: sources}``."""
    directives = (part.strip().split(None, 1) for part in response.headers["Content-Security-Policy"].split(";"))
    return {parts[0]: parts[1] if len(parts) > 1 else "" for parts in directives if parts}


def member_url(job, path: str) -> str:
    return f"/api/scraper/jobs/{job.id}/archive/files/{path}"


@pytest.mark.parametrize("path", sorted(ACTIVE))
def test_a_file_a_browser_would_run_is_sent_as_an_opaque_download_in_a_sandbox(
    hostile_run, member, admin_browser, path
):
    run_page = admin_browser.get(f"/runs/{hostile_run.id}").text
    raw = f"/runs/{hostile_run.id}/raw/{path}"  # the dashboard's Download of the file
    assert f'href="{raw}"' in run_page and f'href="/runs/{hostile_run.id}/files/{path}"' in run_page
    # The owner by the API with a token, the admin by the API and by the dashboard, with its session.
    for reader, url in (
        (member, member_url(hostile_run, path)),
        (admin_browser, member_url(hostile_run, path)),
        (admin_browser, raw),
    ):
        response = reader.get(url)
        assert response.status_code == 200 and response.data == ACTIVE[path].encode()
        assert response.headers["ETag"] == f'"{hashlib.sha256(response.data).hexdigest()}"'
        assert response.mimetype == "application/octet-stream"
        assert not re.search(r"html|svg|xml|javascript|ecmascript|rfc822", response.headers["Content-Type"])
        name = path.rsplit("/", 1)[-1]
        assert response.headers["Content-Disposition"] == f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        csp = policy(response)
        assert "sandbox" in csp and csp["sandbox"] == "" and csp["default-src"] == "'none'"
        assert "script-src" not in csp and csp["frame-ancestors"] == "'none'"


@pytest.mark.parametrize("path", sorted(PASSIVE))
def test_a_file_a_browser_only_shows_opens_in_place_with_its_type_but_still_sandboxed(hostile_run, member, path):
    content, mimetype = PASSIVE[path]
    response = member.get(member_url(hostile_run, path))
    assert response.status_code == 200 and response.data == content
    assert response.mimetype == mimetype
    assert response.headers["Content-Disposition"] == "inline"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = policy(response)
    assert csp["sandbox"] == "" and csp["default-src"] == "'none'"


def test_an_odd_file_name_cannot_break_out_of_its_download_header(lc, make_run, member):
    name = 'a"; filename=evil.html; x=\u00e9t\u00e9 .svg'
    job = make_run({name: ATTACK}, owner=member.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    listed = member.get(f"/api/scraper/jobs/{job.id}/archive/files").json["items"]
    response = member.get(member_url(job, listed[0]["path"]))
    assert response.status_code == 200 and response.data == ATTACK.encode()
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="a__') and disposition.count('"') == 2
    assert "filename*=UTF-8''a%22%3B%20filename%3Devil.html%3B%20x%3D%C3%A9t%C3%A9%20.svg" in disposition


def test_the_whole_archive_downloads_as_an_attachment_the_browser_does_not_sniff(hostile_run, member):
    response = member.get(f"/api/scraper/jobs/{hostile_run.id}/archive/download")
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert hashlib.sha256(response.data).hexdigest() == hostile_run.archive_sha256


def test_every_dashboard_page_forbids_inline_script_framing_and_plugins(app, hostile_run, admin_browser):
    login = Browser(app.test_client()).get("/login")
    pages = [login] + [admin_browser.get(url.format(id=hostile_run.id)) for url in PAGES]
    for response in pages:
        assert response.status_code == 200 and response.mimetype == "text/html"
        csp = policy(response)
        assert csp["script-src"] == "'self'", response.request.path  # no 'unsafe-inline', no 'unsafe-eval'
        assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
        assert csp["base-uri"] == "'self'" and csp["form-action"] == "'self'" and csp["default-src"] == "'self'"
        assert "sandbox" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "storage-charts.js" in pages[-1].text and "<script>" not in pages[-1].text


def test_the_api_static_files_and_errors_carry_the_same_headers(client, member, admin_browser):
    for response in (
        member.get("/api/scraper/jobs"),
        member.get("/api/scraper/jobs/not-an-id"),
        client.get("/healthz"),
        client.get("/static/storage-charts.js"),
        admin_browser.get("/no/such/page"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert policy(response)["frame-ancestors"] == "'none'"
    assert member.get("/api/scraper/jobs").json["items"] == []


def test_no_template_holds_inline_script_or_event_handlers():
    found = []
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text()
        for match in re.finditer(r"<script\b([^>]*)>(.*?)</script\s*>", text, re.S | re.I):
            if "src=" not in match.group(1) or match.group(2).strip():
                found.append(f"{template.name}: inline <script>")
        for match in re.finditer(r"<[a-z][^>]*?\s(on[a-z]+|hx-on[:a-z-]*)\s*=", text, re.I):
            found.append(f"{template.name}: {match.group(1)}= attribute")
        if re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", text, re.I):
            found.append(f"{template.name}: javascript: URL")
    assert found == []
    assert len(list(TEMPLATES.glob("*.html"))) >= 10  # the scan reads the real templates
