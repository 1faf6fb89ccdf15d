"""See any file without restoring (issue 13): a run's file previewed by what its bytes are — JSON
folded, text by its tail, head or a search, images and PDFs shown by the browser, anything else as a
hex head — from an archived run's archive or an active run's folder, never running what it holds."""

import json
import os
import random
import re

import pytest

from app.demo import pdf_blob, png_blob
from app.lifecycle import archival, deletion
from app.lifecycle.naming import run_folder_path

LOG = "".join(
    f"2026-12-05T10:{n // 60 % 60:02d}:{n % 60:02d}Z {'ERROR' if n % 100 == 0 else 'INFO'} line {n}\n"
    for n in range(1, 2001)
)
ITEMS = {
    "store": "books",
    "count": 2,
    "items": [{"title": "A <b>bold</b> book", "price": 12.5, "stock": None}, {"title": "B", "price": 3, "stock": True}],
}
rng = random.Random(5)
FILES = {
    "data/items.json": json.dumps(ITEMS),
    "logs/run.log": LOG,
    "screenshots/page-00001.png": png_blob(rng, 40_000),
    "pdfs/invoice.pdf": pdf_blob(rng, 30_000),
    "pages/evil.html": "<html><script>alert('xss')</script><p>hi</p></html>",
    "pages/evil.svg": '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "blobs/data.bin": bytes(range(256)) * 4,
    "pages/fake.png": "<script>alert('not an image')</script>",  # named .png, its bytes say text
}


@pytest.fixture
def archived(lc, make_run, member):
    job = make_run(FILES, days_ago=10, owner=member.user.id, name="a run with files")
    archival.archive_run(lc, job.id, actor="scheduler")
    return job


def page_of(browser, job, path, **params):
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return browser.get(f"/runs/{job.id}/files/{path}" + (f"?{query}" if query else ""))


def test_json_is_folded_with_its_values_escaped(browse, member, archived):
    page = page_of(browse(member), archived, "data/items.json")
    assert page.status_code == 200
    assert page.text.count('<details class="json"') == 4  # the document, items, and its two objects
    assert (
        '<span class="key">title</span>: <span class="value string">&#34;A &lt;b&gt;bold&lt;/b&gt; book&#34;</span>'
        in page.text
    )
    assert '<span class="value null">null</span>' in page.text and '<span class="value bool">true</span>' in page.text
    assert "{ 3 keys }" in page.text and "[ 2 items ]" in page.text
    assert "read from the archive, without restoring the run" in page.text


def test_a_log_opens_at_its_tail_and_finds_lines_without_loading_the_page_again(browse, member, archived):
    browser = browse(member)
    tail = page_of(browser, archived, "logs/run.log").text
    assert "The last 500 of 2,000 lines" in tail and "line 2000\n" in tail and "line 1500\n" not in tail
    assert 'data-tail="yes"' in tail  # scrolled to its end
    first = page_of(browser, archived, "logs/run.log", show="head").text
    assert "The first 500 of 2,000 lines" in first and "line 1\n" in first and "line 501\n" not in first
    found = page_of(browser, archived, "logs/run.log", q="error").text
    assert "20 lines of 2,000 contain “error”" in found and found.count("ERROR line") == 20
    fragment = browser.get(f"/runs/{archived.id}/files/logs/run.log?q=line%20777", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="lines">') and "<html" not in fragment.text
    assert "1 line of 2,000 contain" in fragment.text and "line 777\n" in fragment.text
    assert page_of(browser, archived, "logs/run.log", show="all").status_code == 400


def test_images_and_pdfs_are_shown_by_the_browser_under_their_own_narrow_policies(browse, member, archived):
    browser = browse(member)
    image_page = page_of(browser, archived, "screenshots/page-00001.png").text
    raw = f"/runs/{archived.id}/raw/screenshots/page-00001.png"
    assert f'<img class="member-image" src="{raw}"' in image_page
    image = browser.get(raw)
    assert (
        image.status_code == 200 and image.mimetype == "image/png" and image.data == FILES["screenshots/page-00001.png"]
    )
    assert image.headers["Content-Disposition"] == "inline" and "sandbox" in image.headers["Content-Security-Policy"]
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    pdf_page = page_of(browser, archived, "pdfs/invoice.pdf").text
    assert f'<iframe class="member-pdf" src="/runs/{archived.id}/raw/pdfs/invoice.pdf"' in pdf_page
    pdf = browser.get(f"/runs/{archived.id}/raw/pdfs/invoice.pdf")
    assert pdf.mimetype == "application/pdf" and pdf.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in pdf.headers["Content-Security-Policy"] and pdf.data.startswith(b"%PDF-1.7")


@pytest.mark.parametrize("path", ["pages/evil.html", "pages/evil.svg", "pages/fake.png"])
def test_markup_is_text_on_the_page_and_an_attachment_when_downloaded(browse, member, archived, path):
    browser = browse(member)
    page = page_of(browser, archived, path).text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page  # shown, escaped, never run
    raw = browser.get(f"/runs/{archived.id}/raw/{path}")
    assert raw.mimetype == "application/octet-stream" and raw.headers["Content-Disposition"].startswith("attachment;")
    assert raw.data == FILES[path].encode()


def test_anything_else_is_a_hex_head_with_a_download(browse, member, archived):
    page = page_of(browse(member), archived, "blobs/data.bin").text
    assert '<table class="hex">' in page and "<td>00000000</td><td>00 01 02 03" in page
    assert page.count("<tr><td>0000") == 64  # 1 KB: 64 rows of 16


def test_bad_paths_and_other_peoples_runs_are_clear_4xx(browse, member, other_member, lc, archived):
    browser = browse(member)
    for path, status in (
        ("../../etc/passwd", 400),
        ("data/%2e%2e/%2e%2e/x", 400),
        ("data/no-such.json", 404),
        ("data", 409),  # a directory
        ("data/items.json%00.png", 400),
    ):
        assert page_of(browser, archived, path).status_code == status, path
        assert browser.get(f"/runs/{archived.id}/raw/{path}").status_code == status, path
    assert page_of(browse(other_member), archived, "data/items.json").status_code == 404
    deletion.delete_run(lc, archived.id, actor="max", reason="gone", strategy="soft")
    gone = page_of(browser, archived, "data/items.json")
    assert gone.status_code == 409 and "deleted" in gone.text


def test_an_active_runs_files_are_listed_and_read_from_its_folder_never_through_a_link(
    browse, member, lc, make_run, tmp_path
):
    job = make_run({"logs/run.log": LOG, "data/items.json": json.dumps(ITEMS)}, days_ago=0.1, owner=member.user.id)
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's secret")
    os.symlink(secret, folder / "data" / "link.txt")
    os.symlink(tmp_path, folder / "outside")
    browser = browse(member)
    run_page = browser.get(f"/runs/{job.id}").text
    assert "Files in the run folder" in run_page and f'href="/runs/{job.id}/files/logs/run.log"' in run_page
    assert "link.txt" not in run_page  # links are not files of the run
    assert "The last 500 of 2,000 lines" in page_of(browser, job, "logs/run.log").text
    assert "read from the run folder" in page_of(browser, job, "data/items.json").text
    for path in ("data/link.txt", "outside/secret.txt"):
        refused = page_of(browser, job, path)
        assert refused.status_code == 409 and "link" in refused.text, path
        raw = browser.get(f"/runs/{job.id}/raw/{path}")
        assert raw.status_code == 409 and b"the server's secret" not in raw.data, path
        assert "the server&#39;s secret" not in refused.text


def test_a_json_too_large_to_fold_is_shown_as_text(browse, member, lc, make_run):
    big = json.dumps([{"n": n, "pad": "x" * 100} for n in range(12_000)])  # ~1.4 MB
    job = make_run({"big.json": big}, days_ago=0.1, owner=member.user.id)
    page = page_of(browse(member), job, "big.json").text
    assert "too large to fold" in page and '<div id="lines">' in page and '<details class="json"' not in page
    assert re.search(r"The last 1 of 1 lines|The last \d+ of", page)
