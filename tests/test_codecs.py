"""Codecs: zstd's frames per kind of member, packed members known by name, a worker per core."""

import io
import os

import pytest


def test_zstd_frames_make_a_valid_stream_even_when_empty():
    import zstandard

    from app.lifecycle.codecs import PACKED_FRAME_MIN, ZstdFrames

    raw = io.BytesIO()
    ZstdFrames(raw).close()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(raw.getvalue()) == b""

    def frames_of(members: list[tuple[str, bytes]]) -> list[bytes]:
        raw = io.BytesIO()
        frames = ZstdFrames(raw)
        for name, data in members:
            frames.member(name, len(data))
            frames.write(data)
        frames.close()
        contents, rest = [], raw.getvalue()
        while rest:
            frame = zstandard.ZstdDecompressor().decompressobj()
            contents.append(frame.decompress(rest))
            rest = frame.unused_data
        return contents

    big = os.urandom(PACKED_FRAME_MIN)
    assert frames_of([("a.json", b"{}" * 1000), ("b.png", big), ("c.PNG", b"z" * 10), ("d.log", b"l")]) == [
        b"{}" * 1000,
        big + b"z" * 10,  # the small image stays in the frame at hand
        b"l",
    ]
    # Pages each with a small screenshot: one frame, so every page compresses against the last.
    pages = [
        (f"p{i}/page.html", b"<html>" * 100) if i % 2 == 0 else (f"p{i}/shot.png", b"\x89PNG" * 9) for i in range(10)
    ]
    assert len(frames_of(pages)) == 1


@pytest.mark.parametrize(
    ("name", "packed"),
    [
        ("screens/home.png", True),
        ("docs/Invoice.PDF", True),
        ("dump.tar.gz", True),
        ("results/page-00001.json", False),
        ("logs/run.log", False),
        ("images.png/readme", False),
        (".png", False),
        ("noextension", False),
    ],
)
def test_packed_members_are_known_by_their_suffix(name, packed):
    from app.lifecycle.codecs import is_packed

    assert is_packed(name) is packed


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 2), (4, 4), (64, 8)])
def test_zstd_compresses_frames_in_a_worker_per_core_and_stays_one_valid_stream(monkeypatch, cores, workers):
    import threading

    import zstandard

    from app.lifecycle import codecs

    monkeypatch.setattr(codecs.os, "cpu_count", lambda: cores)
    assert codecs._zstd_workers() == workers
    made = []
    real = zstandard.ZstdCompressor

    def recording(**options):  # type: ignore[no-untyped-def]
        made.append((threading.current_thread().name, options.get("threads", 0)))
        return real(**options)

    monkeypatch.setattr(codecs.zstandard, "ZstdCompressor", recording)
    text = b"".join(b'{"id": %d, "title": "book %d"}\n' % (i, i % 97) for i in range(200_000))
    raw = io.BytesIO()
    frames = codecs.ZstdFrames(raw)
    assert (frames.pool._max_workers if frames.pool else 0) == workers
    frames.member("results.json", len(text))
    for start in range(0, len(text), 1 << 20):
        frames.write(text[start : start + (1 << 20)])
    frames.close()
    assert len(frames.blocks) > 1  # frames of BLOCK_MAX at most, each compressed whole
    assert all(threads == 0 for _thread, threads in made)  # one core per frame: the pool is the parallelism
    assert len(made) == len({thread for thread, _threads in made}) <= max(1, workers)  # one compressor per thread
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw.getvalue()), read_across_frames=True)
    assert reader.read() == text
