"""Archive stream plumbing: hashing members by offset across any chunking, forward-only reads, the pipe."""

import hashlib
import io
import random

import pytest

from app.lifecycle.streams import ForwardReader, MemberHasher, Pipe


@pytest.mark.parametrize("seed", range(20))
def test_member_hasher_matches_direct_hashing_whatever_the_chunks(seed):
    rng = random.Random(seed)
    stream, spans, expected = bytearray(), [], []
    for _ in range(rng.randint(1, 12)):
        stream += rng.randbytes(rng.randint(0, 700))  # a header, padding
        body = rng.randbytes(rng.choice([0, 1, 511, 512, 4096, rng.randint(0, 20000)]))
        spans.append((len(stream), len(body)))
        expected.append(hashlib.sha256(body).hexdigest())
        stream += body
    stream += bytes(1024)
    hasher = MemberHasher(spans)
    view, at = memoryview(bytes(stream)), 0
    while at < len(view):
        step = rng.randint(1, 3000)
        hasher.feed(view[at : at + step])
        at += step
    assert hasher.digests == expected


def test_forward_reader_fills_reads_and_only_seeks_forward():
    class Trickle(io.RawIOBase):
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self.data.read(min(len(buffer), 7))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    reader = ForwardReader(Trickle(bytes(range(256)) * 4))
    assert reader.read(100) == bytes(range(100))
    assert reader.seek(300) == 300 and reader.tell() == 300
    assert reader.read(4) == bytes([44, 45, 46, 47])
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(10)
    assert len(reader.read(10_000)) == 1024 - 304


def test_pipe_consumes_in_order_and_raises_what_the_consumer_raised():
    seen: list[bytes] = []
    pipe = Pipe(seen.append, depth=2)
    for i in range(50):
        pipe.put(bytes([i]))
    pipe.close()
    assert seen == [bytes([i]) for i in range(50)]

    def failing(chunk: bytes) -> None:
        raise ValueError("hash failed")

    pipe = Pipe(failing)
    pipe.put(b"x")
    with pytest.raises(ValueError, match="hash failed"):
        for _ in range(100):  # the error surfaces at a later put, or at close
            pipe.put(b"y")
        pipe.close()
