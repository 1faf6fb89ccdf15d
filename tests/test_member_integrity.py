"""Never serve wrong bytes: member reads and full downloads are checked against their SHA-256 as they stream."""

import base64
import hashlib
import random

import pytest
from sqlalchemy import select

from app.lifecycle import archival
from app.lifecycle.members import WHOLE_READ_MAX, ArchiveCorrupt
from app.models import Alert, Job

CODECS = ["gzip", "zstd"]
BIG = 6 * 1024 * 1024  # several STREAM_BLOCKs: a byte flipped mid-archive lands well past the first one


def noise(size: int, seed: int = 7) -> bytes:
    """Incompressible bytes, so each archive byte is a byte of the member and a flip mid-file lands in it."""
    return random.Random(seed).randbytes(size)


def words(size: int, seed: int = 7) -> bytes:
    """Text that compresses (entropy-coded), so a flip mid-file garbles the decoder's state instead."""
    rng = random.Random(seed)
    vocabulary = "book title price page fetched rating stock review author isbn".split()
    text = " ".join(f"{rng.choice(vocabulary)}{rng.randint(0, 9999)}" for _ in range(size // 8))
    return text.encode()[:size]


@pytest.fixture(params=CODECS)
def archiver(request, lc, lc_with):
    """A lifecycle archiving with each codec; the run is made and read through the test's app."""
    return lc if request.param == "gzip" else lc_with(ARCHIVE_COMPRESSION=request.param)


def archived_run(lc, archiver, make_run, files):
    job = make_run(files)
    archival.archive_run(archiver, job.id, actor="scheduler")
    lc.session.rollback()  # see the archiver's commit (SQLite keeps the old snapshot otherwise)
    job = lc.session.get(Job, job.id)
    assert job.archived_at is not None and job.compression == archiver.settings.archive_compression
    return job


def flip_middle_byte(lc, job) -> None:
    path = lc.store.path(job.archive_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def received(response) -> tuple[bytes, BaseException | None]:
    """What a client receives of a streamed body, and the error that cut it short (if any)."""
    body = bytearray()
    try:
        for chunk in response.response:
            body += chunk
    except Exception as error:  # the test client re-raises what the stream raised
        return bytes(body), error
    finally:
        response.close()
    return bytes(body), None


def corrupt_alerts(lc, job) -> list[Alert]:
    lc.session.rollback()
    alerts = lc.session.scalars(select(Alert).where(Alert.kind == "archive_corrupt", Alert.resolved_at.is_(None)))
    return [alert for alert in alerts if alert.data["subject"] == str(job.id)]


def assert_marked_corrupt(lc, job) -> None:
    alerts = corrupt_alerts(lc, job)
    assert len(alerts) == 1 and alerts[0].severity == "critical"
    assert alerts[0].data["archive"] == job.archive_path
    refreshed = lc.session.get(Job, job.id)
    lc.session.refresh(refreshed)
    assert refreshed.verify_outcome == "corrupt" and refreshed.last_verified_at is not None


def member_url(job, path: str) -> str:
    return f"/api/scraper/jobs/{job.id}/archive/files/{path}"


@pytest.mark.parametrize("content", [noise, words], ids=["noise", "text"])
def test_a_flipped_byte_in_a_small_member_answers_archive_corrupt_before_any_byte(
    admin, lc, archiver, make_run, content
):
    data = content(200_000)
    assert len(data) <= WHOLE_READ_MAX
    job = archived_run(lc, archiver, make_run, {"page.html": data})
    flip_middle_byte(lc, job)

    response = admin.get(member_url(job, "page.html"))

    assert response.status_code == 500 and response.is_json
    assert response.json["error"]["code"] == "archive_corrupt"
    assert "page.html" in response.json["error"]["message"]
    assert data[:64] not in response.data and "ETag" not in response.headers
    assert_marked_corrupt(lc, job)


def test_a_large_member_with_a_flipped_byte_never_gets_its_last_bytes(admin, lc, archiver, make_run):
    data = noise(BIG)
    job = archived_run(lc, archiver, make_run, {"big.bin": data})
    flip_middle_byte(lc, job)

    response = admin.get(member_url(job, "big.bin"))
    body, error = received(response)

    assert response.status_code == 200 and response.headers["Content-Length"] == str(BIG)  # headers went first
    assert isinstance(error, ArchiveCorrupt) and "big.bin" in str(error)
    assert 0 < len(body) < BIG and body[:1024] == data[:1024]  # the first chunk went before the check failed
    assert_marked_corrupt(lc, job)


def test_an_archive_that_is_not_compressed_at_all_is_answered_as_json_not_a_dropped_connection(
    admin, lc, archiver, make_run
):
    job = archived_run(lc, archiver, make_run, {"small.json": b'{"ok": true}', "big.bin": noise(3 * 1024 * 1024)})
    path = lc.store.path(job.archive_path)
    path.write_bytes(b"this was never an archive\n" * 200_000)

    for name in ("small.json", "big.bin"):  # a large member's first chunk is decoded before the response starts
        response = admin.get(member_url(job, name))
        assert response.status_code == 500 and response.is_json, name
        assert response.json["error"]["code"] == "archive_corrupt"
        assert "cannot be decoded" in response.json["error"]["message"]
    assert_marked_corrupt(lc, job)  # one open alert, refreshed by the second read


def test_a_good_archive_answers_the_exact_bytes_with_etag_and_repr_digest(admin, lc, archiver, make_run):
    files = {"results.json": words(5000), "screens/big.png": noise(BIG // 2)}
    job = archived_run(lc, archiver, make_run, files)

    for name, data in files.items():
        response = admin.get(member_url(job, name))
        body, error = received(response)
        digest = hashlib.sha256(data).digest()
        assert response.status_code == 200 and error is None and body == data, name
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["ETag"] == f'"{digest.hex()}"'
        assert response.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        cached = admin.get(member_url(job, name), headers={"If-None-Match": response.headers["ETag"]})
        assert cached.status_code == 304 and cached.data == b""
    assert corrupt_alerts(lc, job) == [] and lc.session.get(Job, job.id).verify_outcome is None


def test_member_paths_in_the_url_are_the_escaped_form(admin, lc, make_run):
    job = archived_run(lc, lc, make_run, {"logs/run.log": "ok\n"})
    assert admin.get(member_url(job, "logs/./run.log")).data == b"ok\n"  # canonicalised before the lookup
    lone = admin.get(member_url(job, "logs/a%5Cb.log"))  # a backslash is written "\\" in the escaped form
    assert lone.status_code == 400 and lone.json["error"]["code"] == "invalid_path"
    climbing = admin.get(member_url(job, "%5Cx2e%5Cx2e/run.log"))  # an escaped ".." climbs all the same
    assert climbing.status_code == 400 and climbing.json["error"]["code"] == "invalid_path"
    escaped_nul = admin.get(member_url(job, "logs/run%5Cx00.log"))
    assert escaped_nul.status_code == 400 and escaped_nul.json["error"]["code"] == "invalid_path"


def test_a_full_download_of_a_corrupted_archive_is_cut_short_and_alerts(admin, lc, archiver, make_run):
    job = archived_run(lc, archiver, make_run, {"big.bin": noise(BIG)})
    size = lc.store.size(job.archive_path)
    flip_middle_byte(lc, job)

    response = admin.get(f"/api/scraper/jobs/{job.id}/archive/download")
    body, error = received(response)

    assert response.status_code == 200 and response.headers["Content-Length"] == str(size)
    assert isinstance(error, ArchiveCorrupt) and "the archive file" in str(error)
    assert len(body) < size
    assert_marked_corrupt(lc, job)


def test_a_full_download_of_a_good_archive_is_complete_and_a_ranged_one_still_works(admin, lc, archiver, make_run):
    job = archived_run(lc, archiver, make_run, {"big.bin": noise(BIG // 2), "results.json": words(3000)})
    data = lc.store.path(job.archive_path).read_bytes()
    url = f"/api/scraper/jobs/{job.id}/archive/download"

    full = admin.get(url)
    body, error = received(full)
    assert full.status_code == 200 and error is None and body == data
    assert full.headers["ETag"] == f'"{job.archive_sha256}"' == f'"{hashlib.sha256(data).hexdigest()}"'

    # A ranged read cannot be checked against the whole file's digest: it is served as asked.
    start = len(data) // 3
    ranged = admin.get(url, headers={"Range": f"bytes={start}-{start + 99_999}"})
    assert ranged.status_code == 206 and ranged.data == data[start : start + 100_000]
    assert ranged.headers["Content-Range"] == f"bytes {start}-{start + 99_999}/{len(data)}"
    assert admin.get(url, headers={"If-None-Match": f'"{job.archive_sha256}"'}).status_code == 304
    assert corrupt_alerts(lc, job) == []


def test_a_truncated_archive_cuts_a_large_member_short_and_alerts(admin, lc, archiver, make_run):
    data = noise(BIG)
    job = archived_run(lc, archiver, make_run, {"big.bin": data})
    path = lc.store.path(job.archive_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])  # as a disk that filled up might leave it

    response = admin.get(member_url(job, "big.bin"))
    body, error = received(response)

    assert response.status_code == 200 and isinstance(error, ArchiveCorrupt)
    assert 0 < len(body) < BIG and body == data[: len(body)]  # the bytes before the cut are the right ones
    assert_marked_corrupt(lc, job)
