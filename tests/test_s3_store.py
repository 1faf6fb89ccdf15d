"""The S3 archive store against a real S3-compatible server (rclone serve s3) on loopback."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.lifecycle.s3store import MIN_PART_SIZE, S3ArchiveStore, S3Partial
from app.lifecycle.store import StoreError
from tests.s3server import S3Server

KEY = "archive/2025/01/20250113_143052_0000000000000000000000000042.tar.gz"
PART = MIN_PART_SIZE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3") / "buckets") as server:
        yield server


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[S3Server]:
    """A server of the test's own, for tests that stop it."""
    server = S3Server(tmp_path / "buckets")
    with server:
        yield server


def store_on(server: S3Server, *, secret_key: str | None = None, bucket: str | None = None) -> S3ArchiveStore:
    if bucket is None:
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        server.make_bucket(bucket)
    return S3ArchiveStore(bucket, "runs", server.client(secret_key=secret_key), part_size=PART)


@pytest.fixture
def store(s3_server: S3Server) -> S3ArchiveStore:
    """A store in a fresh bucket of the shared server, with S3's smallest part size."""
    return store_on(s3_server)


def pieces(total: int, seed: int = 1) -> Iterator[bytes]:
    """``total`` pseudo-random bytes in pieces of uneven size, never all in memory at once."""
    rng = random.Random(seed)
    while total > 0:
        size = min(total, rng.randint(100_000, 1_500_000))
        total -= size
        yield rng.randbytes(size)


def put_archive(store: S3ArchiveStore, key: str, data: bytes) -> str:
    with store.open_partial(key) as writer:
        writer.write(data)
    store.publish(key)
    assert writer.sha256 is not None
    return writer.sha256


def uploads(store: S3ArchiveStore) -> list[dict]:
    return store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


def bucket_objects(store: S3ArchiveStore) -> list[str]:
    return [item["Key"] for item in store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])]


# -- writing ------------------------------------------------------------------------------------------


def test_a_large_archive_uploads_part_by_part_and_reads_back_whole(store: S3ArchiveStore) -> None:
    total = 8 * PART + 12_345  # nine parts
    expected = hashlib.sha256()
    tracemalloc.start()
    try:
        with store.open_partial(KEY) as writer:
            for piece in pieces(total):
                expected.update(piece)
                writer.write(piece)
                del piece
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert writer.sha256 == expected.hexdigest()
    assert writer.size == total
    assert len(writer._parts) == 9
    assert writer.peak_buffered == PART  # never more than one part held
    assert peak < 2 * PART, f"{peak} bytes allocated at the peak while uploading {total}"
    assert not store.exists(KEY), "an unpublished partial is not the archive"

    store.publish(KEY)
    assert store.exists(KEY)
    assert store.size(KEY) == total
    assert store.sha256(KEY) == expected.hexdigest()
    read_back = hashlib.sha256()
    with store.open(KEY) as handle:
        while chunk := handle.read(1024 * 1024):
            read_back.update(chunk)
    assert read_back.hexdigest() == expected.hexdigest()
    assert list(store.partials()) == []
    assert bucket_objects(store) == [f"runs/{KEY}"]


def test_the_partial_is_a_temporary_object_until_published(store: S3ArchiveStore) -> None:
    with store.open_partial(KEY) as writer:
        writer.write(b"small archive")
    assert bucket_objects(store) == [f"runs/.partial/{KEY}"]
    assert [p.key for p in store.partials()] == [KEY]
    assert list(store.keys()) == []

    store.publish(KEY)
    assert bucket_objects(store) == [f"runs/{KEY}"]
    with store.open(KEY) as handle:
        assert handle.read() == b"small archive"


def test_an_empty_archive_is_still_one_part(store: S3ArchiveStore) -> None:
    with store.open_partial(KEY) as writer:
        pass
    store.publish(KEY)
    assert store.size(KEY) == 0
    assert writer.sha256 == hashlib.sha256(b"").hexdigest()


def test_a_write_that_fails_aborts_the_upload_and_leaves_nothing(store: S3ArchiveStore) -> None:
    with pytest.raises(RuntimeError, match="compression failed"):
        with store.open_partial(KEY) as writer:
            for piece in pieces(2 * PART + 10):
                writer.write(piece)
            raise RuntimeError("compression failed")
    assert writer.closed and writer.sha256 is None
    assert uploads(store) == []
    assert bucket_objects(store) == []
    assert list(store.partials()) == []
    with pytest.raises(StoreError, match="no partial archive"):
        store.publish(KEY)
    assert not store.exists(KEY)


def test_discard_partial_deletes_the_temporary_object_and_aborts_its_upload(store: S3ArchiveStore) -> None:
    with store.open_partial(KEY) as writer:
        writer.write(b"finished but not verified")
    unfinished = store.open_partial("trash/2025/01/other.tar.gz")
    unfinished.write(bytes(PART + 1))  # one part on the server, the upload still open
    assert len(uploads(store)) == 1

    store.discard_partial(KEY)
    store.discard_partial("trash/2025/01/other.tar.gz")
    store.discard_partial("archive/2025/01/never-written.tar.gz")  # nothing there: no error

    assert uploads(store) == []
    assert bucket_objects(store) == []
    assert not store.exists(KEY)


def test_a_new_write_replaces_a_stale_partial(store: S3ArchiveStore) -> None:
    with store.open_partial(KEY) as writer:
        writer.write(b"left by a crash")
    with store.open_partial(KEY) as writer:
        writer.write(b"the real archive")
    store.publish(KEY)
    with store.open(KEY) as handle:
        assert handle.read() == b"the real archive"


# -- reading ------------------------------------------------------------------------------------------


def test_a_ranged_read_asks_for_and_receives_only_its_bytes(store: S3ArchiveStore) -> None:
    data = b"".join(pieces(3 * PART + 999, seed=7))
    put_archive(store, KEY, data)
    sent_ranges: list[str | None] = []
    received: list[int] = []
    store.client.meta.events.register(
        "before-send.s3.GetObject",
        lambda request, **_: sent_ranges.append(request.headers.get("Range", b"").decode() or None),
    )
    store.client.meta.events.register(
        "after-call.s3.GetObject",
        lambda http_response, **_: received.append(int(http_response.headers["content-length"])),
    )

    for start, end in [(0, 1), (PART - 10, PART + 10), (2 * PART + 5, 3 * PART + 999), (len(data) - 1, None)]:
        sent_ranges.clear()
        received.clear()
        with store.open_range(KEY, start, end) as reader:
            got = reader.read()
        stop = len(data) if end is None else end
        assert got == data[start:stop]
        assert reader.bytes_read == reader.content_length == stop - start
        assert sent_ranges == [f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"]
        assert received == [stop - start]

    sent_ranges.clear()
    with store.open_range(KEY, 100, 100) as reader:
        assert reader.read() == b""
    assert sent_ranges == [], "an empty range needs no request"


def test_a_ranged_read_reads_in_pieces(store: S3ArchiveStore) -> None:
    data = bytes(range(256)) * 4096
    put_archive(store, KEY, data)
    with store.open_range(KEY, 1000, 500_000) as reader:
        first = reader.read(10)
        rest = reader.read()
        assert reader.read(10) == b""
    assert first + rest == data[1000:500_000]


def test_reads_of_a_missing_archive_fail_loudly(store: S3ArchiveStore) -> None:
    assert store.exists(KEY) is False
    with pytest.raises(StoreError, match="no archive at"):
        store.size(KEY)
    with pytest.raises(StoreError, match="no object for"):
        store.open(KEY)
    with pytest.raises(StoreError, match="no object for"):
        store.open_range(KEY, 0, 10)


def test_keys_outside_the_archive_and_trash_roots_are_refused(store: S3ArchiveStore) -> None:
    for key in ["runs/x.tar.gz", "archive/../trash/x.tar.gz", "archive/", "archive//etc/x"]:
        with pytest.raises(StoreError, match="archive key"):
            store.exists(key)
    assert store.object_key("archive/./2025//x.tar.gz") == "runs/archive/2025/x.tar.gz"


# -- moving and removing -----------------------------------------------------------------------------


def test_move_copies_verifies_and_leaves_the_source_for_the_caller(store: S3ArchiveStore) -> None:
    data = b"".join(pieces(PART + 4321, seed=3))
    sha = put_archive(store, KEY, data)
    target = KEY.replace("archive/", "trash/", 1)

    assert store.move(KEY, target, sha) is True
    assert store.sha256(target) == sha
    assert store.exists(KEY), "the source stays until the caller has recorded the move"
    assert list(store.partials()) == []

    store.remove(KEY)
    assert sorted(store.keys()) == [target]


def test_move_with_a_wrong_checksum_refuses_and_leaves_no_copy(store: S3ArchiveStore) -> None:
    sha = put_archive(store, KEY, b"archive bytes")
    target = KEY.replace("archive/", "trash/", 1)
    with pytest.raises(StoreError, match="does not match its recorded SHA-256"):
        store.move(KEY, target, "0" * 64)
    assert not store.exists(target)
    assert list(store.partials()) == []
    assert store.sha256(KEY) == sha


def test_move_of_a_missing_archive_fails(store: S3ArchiveStore) -> None:
    with pytest.raises(StoreError, match="not moved"):
        store.move(KEY, "trash/x.tar.gz", "0" * 64)


def test_remove_deletes_and_tolerates_a_missing_archive(store: S3ArchiveStore) -> None:
    put_archive(store, KEY, b"to be purged")
    put_archive(store, "trash/2025/01/b.tar.gz", b"to be purged securely")
    store.remove(KEY)
    store.remove("trash/2025/01/b.tar.gz", secure=True)
    store.remove(KEY)
    assert not store.exists(KEY)
    assert list(store.keys()) == []


def test_publish_refuses_a_copy_the_store_did_not_make_whole(store: S3ArchiveStore) -> None:
    """rclone answers a part copy (UploadPartCopy) with an empty part: a large publish must fail, not
    leave a truncated archive at the final key."""
    store.copy_object_limit = PART  # above this, publish copies part by part
    with store.open_partial(KEY) as writer:
        for piece in pieces(2 * PART):
            writer.write(piece)
    with pytest.raises(StoreError, match="the copy of .partial/archive"):
        store.publish(KEY)
    assert not store.exists(KEY)
    assert [p.key for p in store.partials() if p.upload_id is None] == [KEY], "the partial stays to retry"


# -- listing for reconcile ---------------------------------------------------------------------------


def test_keys_list_archives_and_trash_but_not_partials(store: S3ArchiveStore) -> None:
    put_archive(store, KEY, b"a")
    put_archive(store, "trash/2024/12/b.tar.gz", b"b")
    with store.open_partial("archive/2025/02/c.tar.gz") as writer:
        writer.write(b"c")
    # another application's object beside the prefix is not ours
    store.client.put_object(Bucket=store.bucket, Key="elsewhere/archive/d.tar.gz", Body=b"d")

    assert sorted(store.keys()) == [KEY, "trash/2024/12/b.tar.gz"]


def test_partials_find_temporary_objects_and_interrupted_uploads_and_abort_them(store: S3ArchiveStore) -> None:
    put_archive(store, KEY, b"published")
    with store.open_partial("archive/2025/02/left.tar.gz") as writer:
        writer.write(b"completed, never published")
    crashed = store.open_partial("trash/2025/02/crashed.tar.gz")
    for piece in pieces(PART + 10):
        crashed.write(piece)  # one part sent; the process "dies" without closing
    found = sorted(store.partials(), key=lambda p: p.key)

    assert [(p.key, p.upload_id is None) for p in found] == [
        ("archive/2025/02/left.tar.gz", True),
        ("trash/2025/02/crashed.tar.gz", False),
    ]
    interrupted = found[1]
    assert isinstance(interrupted, S3Partial)
    assert interrupted.upload_id == crashed.upload_id
    assert interrupted.name == "crashed.tar.gz"
    assert interrupted.initiated is not None

    for partial in found:
        store.abort_partial(partial)
    assert list(store.partials()) == []
    assert uploads(store) == []
    assert list(store.keys()) == [KEY]


# -- start-up check and faults ----------------------------------------------------------------------


def test_check_passes_on_a_writable_bucket_and_leaves_nothing(store: S3ArchiveStore) -> None:
    store.check()
    assert bucket_objects(store) == []


def test_check_names_wrong_credentials(s3_server: S3Server) -> None:
    store = store_on(s3_server, secret_key="not-the-secret")
    with pytest.raises(StoreError, match="refused the credentials") as raised:
        store.check()
    assert "\n" not in str(raised.value)


def test_check_names_a_missing_bucket(s3_server: S3Server) -> None:
    store = store_on(s3_server, bucket="no-such-bucket")
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        store.check()
    with pytest.raises(StoreError, match="does not exist"):
        store.open_partial(KEY)
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        store.exists(KEY)  # never False: a missing bucket is not a missing archive
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        store.open(KEY)


def test_check_names_an_unreachable_endpoint(own_server: S3Server) -> None:
    store = store_on(own_server)
    own_server.stop()
    with pytest.raises(StoreError, match="cannot reach the S3 endpoint"):
        store.check()


def test_a_stopped_server_is_an_error_not_a_missing_archive(own_server: S3Server) -> None:
    store = store_on(own_server)
    put_archive(store, KEY, b"archived")
    own_server.stop()
    for read in (
        lambda: store.exists(KEY),
        lambda: store.size(KEY),
        lambda: store.open(KEY),
        lambda: store.open_range(KEY, 0, 4),
        lambda: list(store.keys()),
        lambda: list(store.partials()),
    ):
        with pytest.raises(StoreError, match="cannot reach the S3 endpoint"):
            read()


def test_a_server_stopped_mid_upload_fails_the_write_and_publishes_nothing(own_server: S3Server) -> None:
    store = store_on(own_server)
    written = 0
    with pytest.raises(StoreError, match="cannot reach the S3 endpoint"):
        with store.open_partial(KEY) as writer:
            for piece in pieces(6 * PART):
                writer.write(piece)
                written += len(piece)
                if written > 2 * PART and own_server.process is not None:
                    own_server.stop()
    assert writer.sha256 is None
    assert len(writer._parts) >= 2, "parts had gone out before the server stopped"

    own_server.start()
    assert not store.exists(KEY)
    assert list(store.keys()) == []
    left = list(store.partials())
    assert all(p.upload_id is not None for p in left), "no temporary object was completed"
    for partial in left:  # rclone forgets unfinished uploads when it restarts; S3 keeps them for reconcile
        store.abort_partial(partial)
    assert list(store.partials()) == []
