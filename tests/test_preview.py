"""See any file without restoring (issue 13): a run's file previewed by what its bytes are — JSON
folded, text by its tail, head or a search, images and PDFs shown by the browser, anything else as a
hex head — from an archived run's archive or an active run's folder, never running what it holds."""

import json
import os
import random
import re
import struct
import zlib

import pytest

from app.demo import pdf_blob, png_blob
from app.lifecycle import archival, deletion, preview
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


def test_a_log_too_large_to_read_through_shows_its_real_end_from_a_run_folder(
    browse, member, lc, make_run, monkeypatch
):
    monkeypatch.setattr(preview, "TEXT_MAX", 16 << 10)  # LOG is 69 KB: "too large" here
    monkeypatch.setattr(preview, "TAIL_BYTES", 8 << 10)
    job = make_run({"logs/run.log": LOG}, days_ago=0.1, owner=member.user.id)
    browser = browse(member)
    tail = page_of(browser, job, "logs/run.log").text
    assert "The last " in tail and "read from the end of the file, its lines not counted" in tail
    assert "line 2000\n" in tail and "line 1700\n" not in tail  # the file's last lines: its last 8 KB hold ~230
    lines = re.findall(r'<span class="line"><span class="no" aria-hidden="true">([^<]*)</span>([^<]*)', tail)
    assert lines and all(number == "" for number, _ in lines)  # not counted: no numbers that would be wrong
    assert lines[0][1].startswith("2026-12-05T10:")  # the line cut by the read's start is left out
    searched = page_of(browser, job, "logs/run.log", q="error").text
    assert "Only the first" in searched  # a search still reads from the start, as far as it may


def test_an_archived_log_too_large_to_read_through_says_its_tail_is_not_the_files_end(
    browse, member, archived, monkeypatch
):
    monkeypatch.setattr(preview, "TEXT_MAX", 16 << 10)
    tail = page_of(browse(member), archived, "logs/run.log").text
    assert "not the end of the file" in tail and "The last 500 of 2,000 lines" not in tail
    assert "read from the end of the file" not in tail  # a member is read in order from its start


@pytest.mark.parametrize("size", [80_000, 400_000])
def test_the_demos_screenshots_and_invoices_are_real_files_that_compress_as_the_seed_note_says(size):
    png, pdf = png_blob(random.Random(size), size), pdf_blob(random.Random(size), size)
    assert 0.9 <= len(png) / size <= 1.1 and 0.9 <= len(pdf) / size <= 1.1
    assert 0.10 <= 1 - len(zlib.compress(png, 6)) / len(png) <= 0.20  # screenshots: 10-20 %
    assert 0.05 <= 1 - len(zlib.compress(pdf, 6)) / len(pdf) <= 0.15  # PDFs: 5-15 %
    chunks, at = {}, 8
    while at < len(png):  # every chunk whole, its CRC right
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        data = png[at + 8 : at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length : at + 12 + length])[0] == zlib.crc32(kind + data)
        chunks[kind], at = data, at + 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    rows = zlib.decompress(chunks[b"IDAT"])  # one valid zlib stream, its Adler-32 checked
    assert (width, depth, colour) == (800, 8, 2) and len(rows) == height * (1 + 3 * width) and height >= 300
    assert rows[1:4] == bytes((47, 111, 94))  # a page: the site's header bar on top, white below it
    assert rows[60 * (1 + 3 * width) + 1 : 60 * (1 + 3 * width) + 4] == b"\xff\xff\xff"
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    offsets = [int(entry[:10]) for entry in pdf[xref:].split(b"\n")[3:9]]
    assert [pdf[offset:].split(b"\n")[0] for offset in offsets] == [b"%d 0 obj" % n for n in range(1, 7)]
    assert b"(Invoice for order " in pdf
