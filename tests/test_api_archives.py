"""Reading archives without restoring: downloads (ETag, Repr-Digest, Range, If-None-Match) and members."""

import base64
import hashlib

import pytest

from app.lifecycle import archival


@pytest.fixture
def archived(lc, make_run, member):
    job = make_run(
        {
            "results.json": '{"items": [1, 2, 3]}',
            "screens/home.png": bytes(range(256)) * 10,
            "logs/run.log": "ok\n" * 999,
        },
        owner=member.user.id,
    )
    archival.archive_run(lc, job.id, actor="scheduler")
    return archival.load_run(lc, job.id)


def test_download_streams_the_archive_with_its_checksum(member, lc, archived):
    response = member.get(f"/api/scraper/jobs/{archived.id}/archive/download")
    data = lc.store.path(archived.archive_path).read_bytes()
    assert response.status_code == 200 and response.data == data
    assert response.headers["ETag"] == f'"{archived.archive_sha256}"'
    assert response.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert f"{archived.folder_name}_{archived.id}.tar.gz" in response.headers["Content-Disposition"]


def test_download_ranges_and_conditionals(member, lc, archived):
    url = f"/api/scraper/jobs/{archived.id}/archive/download"
    data = lc.store.path(archived.archive_path).read_bytes()
    partial = member.get(url, headers={"Range": "bytes=10-19"})
    assert partial.status_code == 206 and partial.data == data[10:20]
    assert partial.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    unchanged = member.get(url, headers={"If-None-Match": f'"{archived.archive_sha256}"'})
    assert unchanged.status_code == 304 and unchanged.data == b""
    bad = member.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert bad.status_code == 416


def test_download_of_an_active_run_is_409(member, make_run):
    job = make_run(days_ago=1, owner=member.user.id)
    assert member.get(f"/api/scraper/jobs/{job.id}/archive/download").status_code == 409


def test_members_are_listed_from_the_manifest(member, archived):
    body = member.get(f"/api/scraper/jobs/{archived.id}/archive/files").json
    paths = {item["path"]: item for item in body["items"]}
    assert set(paths) == {"results.json", "screens", "screens/home.png", "logs", "logs/run.log"}
    assert paths["results.json"]["sha256"] == hashlib.sha256(b'{"items": [1, 2, 3]}').hexdigest()
    assert body["total"] == 5


def test_one_member_is_streamed_out_with_its_type(member, archived):
    response = member.get(f"/api/scraper/jobs/{archived.id}/archive/files/screens/home.png")
    assert response.status_code == 200 and response.data == bytes(range(256)) * 10
    assert response.mimetype == "image/png"
    assert response.headers["ETag"] == f'"{hashlib.sha256(response.data).hexdigest()}"'
    log = member.get(f"/api/scraper/jobs/{archived.id}/archive/files/logs/run.log")
    assert log.data == b"ok\n" * 999 and log.mimetype.startswith("text/")
    etag = response.headers["ETag"]
    again = member.get(
        f"/api/scraper/jobs/{archived.id}/archive/files/screens/home.png", headers={"If-None-Match": etag}
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("path", "status"),
    [("nope.txt", 404), ("screens", 409), ("screens/../results.json", 400), ("/etc/passwd", 404), ("a%00b", 400)],
)
def test_member_paths_outside_or_unknown_are_refused(member, archived, path, status):
    response = member.get(f"/api/scraper/jobs/{archived.id}/archive/files/{path}")
    assert response.status_code == status
    assert response.is_json


def test_other_members_cannot_read_the_archive(other_member, archived):
    for suffix in ("download", "files", "files/results.json"):
        assert other_member.get(f"/api/scraper/jobs/{archived.id}/archive/{suffix}").status_code == 404
