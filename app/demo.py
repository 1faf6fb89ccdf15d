"""Demo data for a fresh install: scraper runs spread over the past weeks, as a scraper writes them.

``flask demo seed`` (and ``make run`` on first start) writes run folders the way the platform's
scrapers do — JSON result pages, PNG screenshots, PDFs, logs — and registers each run with its real
start and end, in the past (``seed_demo``). The content makers are the benchmark's too
(``bench/archive.py``), so the demo mix is the mix whose compression is measured.

So that a fresh install's charts have a past, ``seed_history`` then gives the runs the life the
schedule would have given them: archived by the first archival pass after ARCHIVE_AFTER_DAYS (a
few failing once on a full disk and archived the next night), some restored by their owner for a
while, deleted by the first cleanup after DELETE_AFTER_DAYS, purged after DELETE_GRACE_DAYS. When
Redis answers (the runs' locks), the lifecycle's own operations do each step with the lifecycle's
clock set to its date, so the runs, archives, audit and events are what the scheduler would have
left, and its first passes have no backlog to catch up. Without Redis the events are only
described and the scheduler moves the runs on its first passes. A fresh install also gets hourly
storage snapshots whose bytes per tier follow from those dates. What the demo wrote is marked:
events carry ``details: {"demo": true}`` and a reason starting ``demo history``, snapshots
``demo = true``; the deletions' audit rows keep that reason.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.lifecycle import policies
from app.lifecycle.archival import archive_run, expire_restore, restore_run
from app.lifecycle.codecs import compressor
from app.lifecycle.context import Lifecycle
from app.lifecycle.deletion import delete_run, purge_run
from app.lifecycle.errors import LifecycleError
from app.lifecycle.naming import folder_name_for, run_folder_path
from app.lifecycle.runs import register_run
from app.lifecycle.streams import CountingWriter
from app.lifecycle.tarball import write_tar
from app.models import FINISHED_STATUSES, Job, JobAudit, LifecycleEvent, StorageSnapshot, User

WORDS = (
    "book title price stock rating category travel mystery fiction history poetry science music art "
    "available yes no star one two three four five description product upc tax reviews page next "
    "catalogue light in attic tipping velvet soumission sharp objects sapiens requiem red dream"
).split()

MAX_RUNS = 5000
MAX_DAYS = 3650
MAX_RUN_BYTES = 1 << 30


def record_pool(rng: random.Random, count: int = 20000) -> list[str]:
    """Product records as a books scraper extracts them, JSON-encoded."""
    return [
        json.dumps(
            {
                "id": i,
                "title": " ".join(rng.choices(WORDS, k=rng.randint(2, 6))).title(),
                "price": f"£{rng.randint(10, 60)}.{rng.randint(0, 99):02d}",
                "rating": rng.choice(["One", "Two", "Three", "Four", "Five"]),
                "in_stock": rng.random() > 0.2,
                "url": f"https://books.toscrape.com/catalogue/item_{rng.randint(1, 10**6)}/index.html",
                "description": " ".join(rng.choices(WORDS, k=rng.randint(10, 40))),
            }
        )
        for i in range(count)
    ]


def json_blob(rng: random.Random, size: int, pool: list[str]) -> bytes:
    """A result page of about ``size`` bytes: records drawn from ``pool``."""
    parts, total = ['{"items": ['], 0
    while total < size:
        record = rng.choice(pool)
        parts.append(record)
        parts.append(",")
        total += len(record) + 1
    parts.append("{}]}")
    return "".join(parts).encode()


def log_blob(rng: random.Random, size: int) -> bytes:
    """Crawler log lines, about ``size`` bytes of them."""
    lines, total = [], 0
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARNING", "ERROR"]
    while total < size:
        line = (
            f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z {rng.choice(levels)} [worker-{rng.randint(1, 8)}] "
            f"fetched https://books.toscrape.com/catalogue/page-{rng.randint(1, 5000)}.html "
            f"status={rng.choice([200, 200, 200, 301, 404, 500])} bytes={rng.randint(1000, 90000)} "
            f"ms={rng.randint(20, 4000)}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


PNG_WIDTH = 800  # pixels: a narrow page screenshot, RGB
_PNG_STRIDE = 1 + 3 * PNG_WIDTH  # a row: its filter byte (0, none), then its pixels
_WHITE = (255, 255, 255)
_HEADER = (47, 111, 94)
_FOOTER = (236, 239, 242)
_COVERS = (
    (196, 74, 58),
    (52, 101, 164),
    (238, 190, 80),
    (86, 140, 96),
    (120, 84, 160),
    (48, 52, 64),
    (225, 130, 60),
    (70, 160, 170),
)
_TILE, _GUTTER, _MARGIN = 165, 20, 40  # a product photo's width, the space between two, the page's margin
_PHOTO_BYTES_PER_PIXEL = 2.5  # a photo's pixel deflated, 16 levels of grain a channel (measured on these tiles)
_GRAIN: dict[int, bytes] = {}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _grain(low: int) -> bytes:
    """A table for ``bytes.translate`` taking a random byte to one of 16 levels from ``low``."""
    if low not in _GRAIN:
        _GRAIN[low] = bytes(low + (value & 15) for value in range(256))
    return _GRAIN[low]


def _text_row(
    rng: random.Random, colour: tuple[int, ...], x0: int = _MARGIN, x1: int = PNG_WIDTH - _MARGIN, background=_WHITE
) -> bytes:
    """A row through a line of text: its words as bars of ``colour`` between x0 and x1."""
    row = bytearray(bytes(background) * PNG_WIDTH)
    x = x0
    while x < x1 - 12:
        width = min(rng.randint(14, 64), x1 - x)
        row[3 * x : 3 * (x + width)] = bytes(colour) * width
        x += width + rng.randint(6, 9)
    return bytes(row)


def _photo_rows(rng: random.Random, count: int, height: int) -> list[bytes]:
    """The rows through a row of ``count`` product photos, each a grained gradient between two colours."""
    tiles = [rng.sample(_COVERS, 2) for _ in range(count)]
    rows = []
    for y in range(height):
        row = bytearray(bytes(_WHITE) * PNG_WIDTH)
        share = y / max(1, height - 1)
        noise = rng.randbytes(3 * _TILE * count)
        for index, (top, bottom) in enumerate(tiles):
            pixels = bytearray(noise[3 * _TILE * index : 3 * _TILE * (index + 1)])
            for channel in range(3):
                level = int(top[channel] + (bottom[channel] - top[channel]) * share)
                pixels[channel::3] = pixels[channel::3].translate(_grain(max(0, min(239, level - 8))))
            x0 = 3 * (_MARGIN + index * (_TILE + _GUTTER))
            row[x0 : x0 + 3 * _TILE] = pixels
        rows.append(bytes(row))
    return rows


def _caption_rows(rng: random.Random, count: int) -> list[bytes]:
    """The rows under a row of photos: each photo's title and price."""
    white, rows = bytes(_WHITE) * PNG_WIDTH, [bytes(_WHITE) * PNG_WIDTH] * 10
    for colour, longest in (((60, 66, 78), 130), (_HEADER, 50)):
        row = bytearray(white)
        for index in range(count):
            x0, width = _MARGIN + index * (_TILE + _GUTTER), rng.randint(longest // 2, longest)
            row[3 * x0 : 3 * (x0 + width)] = bytes(colour) * width
        rows += [bytes(row)] * 7 + [white] * 6
    return rows + [white] * 14


def _zlib_stream(segments: list[tuple[int, list[bytes]]]) -> bytes:
    """One zlib stream of the rows, each segment deflated on its own at its level (0: stored as is)."""
    out, check = [b"\x78\x01"], 1
    for level, rows in segments:
        data = b"".join(b"\x00" + row for row in rows)
        packer = zlib.compressobj(level, zlib.DEFLATED, -15)
        out.append(packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH))  # ends on a byte, the stream open
        check = zlib.adler32(data, check)
    out.append(b"\x03\x00" + struct.pack(">I", check))  # an empty last block, then the Adler-32 of all rows
    return b"".join(out)


def png_blob(rng: random.Random, size: int) -> bytes:
    """A real PNG of about ``size`` bytes that looks like a page screenshot: a header bar, a title,
    lines of text, a grid of product photos with their captions, a footer; 800 pixels wide.

    An archive saves 10-20 % on screenshots (the seed note), and so on this one: most of its bytes
    are its photos' grain, deflated as any PNG encoder does (nothing left for the archive to take),
    and about 15 % are rows of text stored undeflated, as a fast encoder leaves them (the archive
    takes nearly all of those). The photos grow with ``size``: 1 to 8 of them for 80-400 KB."""
    stored = max(1, int(size * 0.15) // _PNG_STRIDE)
    pixels = max(_TILE * 8, int((size * 0.85 - 600) / _PHOTO_BYTES_PER_PIXEL))
    photos = max(1, -(-pixels // (_TILE * 150)))
    height = max(8, min(220, pixels // (photos * _TILE)))
    white, bar = bytes(_WHITE) * PNG_WIDTH, bytes(_HEADER) * PNG_WIDTH
    logo = bytearray(_text_row(rng, (200, 226, 218), 420, PNG_WIDTH - _MARGIN, _HEADER))  # the site's menu
    logo[3 * _MARGIN : 3 * (_MARGIN + 150)] = bytes(_WHITE) * 150
    header = [bar] * 18 + [bytes(logo)] * 12 + [bar] * 18
    text = [white] * 20 + [_text_row(rng, (150, 160, 172), _MARGIN, 360)] * 7 + [white] * 16  # breadcrumbs
    text += [_text_row(rng, (33, 37, 45), _MARGIN, 520)] * 16 + [white] * 14  # the title
    for _ in range(max(3, -(-stored // 18))):  # paragraphs, at least as tall as the stored rows
        text += [_text_row(rng, (120, 128, 140))] * 7 + [white] * 11
    segments = [(6, header), (0, text[:stored]), (6, text[stored:] + [white] * 12)]
    for first in range(0, photos, 4):
        count = min(4, photos - first)
        segments += [(6, _photo_rows(rng, count, height)), (6, _caption_rows(rng, count))]
    footer = [bytes(_FOOTER) * PNG_WIDTH] * 12
    segments.append((6, [white] * 10 + footer + [_text_row(rng, (170, 176, 186), _MARGIN, 500, _FOOTER)] * 7 + footer))
    rows = sum(len(part) for _, part in segments)
    ihdr = struct.pack(">IIBBBBB", PNG_WIDTH, rows, 8, 2, 0, 0, 0)
    idat = _zlib_stream(segments)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def pdf_blob(rng: random.Random, size: int) -> bytes:
    """A real one-page PDF invoice of about ``size`` bytes: its text in a plain content stream (which
    compresses) and an embedded binary stream of scanned-looking bytes (which does not), about 10 %
    compressible as the seed note says. Offsets in its xref are exact, so viewers open it."""
    order, lines = rng.randint(10000, 99999), []
    total_cents = 0
    for number in range(1, 25):
        cents = rng.randint(100, 99999)
        total_cents += cents
        lines.append(
            f"BT /F1 11 Tf 72 {700 - 20 * number} Td (Item {number}: part {rng.randint(1000, 9999)}"
            f" .......... {cents // 100}.{cents % 100:02d} EUR) Tj ET"
        )
    content = "\n".join(
        [
            f"BT /F1 18 Tf 72 740 Td (Invoice for order {order}) Tj ET",
            *lines,
            f"BT /F1 12 Tf 72 180 Td (Total: {total_cents // 100}.{total_cents % 100:02d} EUR) Tj ET",
        ]
    ).encode()
    scan, left = [], max(0, size - len(content) - 600)
    while left > 0:  # scan lines: noise, every tenth a blank (white) one
        line = b"\xff" * 4096 if len(scan) % 10 == 9 else rng.randbytes(4096)
        scan.append(line[:left])
        left -= len(scan[-1])
    filler = b"".join(scan)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(filler) + filler + b"\nendstream",  # the scan, not drawn
    ]
    out, offsets = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass(frozen=True)
class Scraper:
    """One of the demo platform's scrapers: what it is called and what its runs hold."""

    name: str
    title: str
    screenshots: bool
    pdfs: bool


SCRAPERS = (
    Scraper("books-toscrape", "Book catalogue", screenshots=True, pdfs=False),
    Scraper("quotes-toscrape", "Quotes by author", screenshots=True, pdfs=False),
    Scraper("price-watch", "Competitor prices", screenshots=True, pdfs=True),
    Scraper("invoice-portal", "Supplier invoices", screenshots=False, pdfs=True),
)


def write_run_files(folder: Path, rng: random.Random, size: int, scraper: Scraper, pool: list[str]) -> dict[str, int]:
    """Fill ``folder`` with about ``size`` bytes of a run's output; return the run's stats.

    By bytes: about 30 % JSON result pages, 15 % logs, 40 % screenshots and 15 % PDFs (the shares
    of scrapers without screenshots or PDFs go to their result pages).
    """
    shares = {"screenshots": 0.40 if scraper.screenshots else 0.0, "pdfs": 0.15 if scraper.pdfs else 0.0, "logs": 0.15}
    shares["results"] = 1.0 - sum(shares.values())
    pages = max(1, int(size * shares["results"]) // 60_000)
    counts = {"pages": pages, "items": 0, "screenshots": 0, "pdfs": 0}
    for index in range(pages):
        page = json_blob(rng, max(1, int(size * shares["results"]) // pages), pool)
        _write(folder / "results" / f"page-{index + 1:05d}.json", page)
        counts["items"] += page.count(b'"id"')
    kinds = (("screenshots", "page-{:05d}.png", png_blob), ("pdfs", "document-{:04d}.pdf", pdf_blob))
    for kind, pattern, make in kinds:
        budget = int(size * shares[kind])
        while budget > 0:
            piece = min(budget, rng.randint(80_000, 400_000))
            counts[kind] += 1
            _write(folder / kind / pattern.format(counts[kind]), make(rng, piece))
            budget -= piece
    _write(folder / "logs" / "scraper.log", log_blob(rng, max(1, int(size * shares["logs"]))))
    _write(folder / "stats.json", json.dumps(counts).encode())
    return counts


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def seed_demo(
    session: Session,
    jobs_root: Path,
    *,
    runs: int,
    days: int,
    run_bytes: int,
    now: datetime,
    created_by: uuid.UUID | None,
    seed: int | None = None,
) -> list[Job]:
    """Write and register ``runs`` runs started over the ``days`` days before ``now``, oldest first.

    Most runs completed; some failed or were cancelled; the newest one is still running. Each run
    is written whole before it is registered, so an interrupted seed leaves no half-written run
    in the database (and removes the folder it was writing).
    """
    if not 1 <= runs <= MAX_RUNS:
        raise ValueError(f"runs must be between 1 and {MAX_RUNS}")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    if not 1024 <= run_bytes <= MAX_RUN_BYTES:
        raise ValueError(f"the size of a run must be between 1 KiB and {MAX_RUN_BYTES >> 20} MiB")
    rng = random.Random(seed)  # noqa: S311 (demo data, seeded to repeat; nothing secret comes of it)
    pool = record_pool(rng, 2000)
    starts = sorted(now - timedelta(seconds=rng.uniform(3600, days * 86400)) for _ in range(runs - 1))
    starts.append(now - timedelta(minutes=rng.uniform(5, 50)))  # the run still going
    made = []
    for number, created in enumerate(starts, start=1):
        scraper = rng.choice(SCRAPERS)
        newest = number == runs
        status = "running" if newest else rng.choices(["completed", "failed", "cancelled"], [90, 7, 3])[0]
        job_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        folder = run_folder_path(jobs_root, folder_name_for(created), job_id)
        try:
            stats = write_run_files(folder, rng, int(run_bytes * rng.uniform(0.5, 1.5)), scraper, pool)
            finished = None if newest else created + timedelta(minutes=rng.uniform(3, 50))
            made.append(
                register_run(
                    session,
                    jobs_root,
                    name=f"{scraper.title} {created:%Y-%m-%d %H:%M}",
                    scraper=scraper.name,
                    created_by=created_by,
                    job_id=job_id,
                    status=status,
                    created_at=created,
                    started_at=created,
                    completed_at=finished,
                    stats=stats,
                )
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return made


def has_ever_had_runs(session: Session) -> bool:
    """Whether this install has any run, or ever had one (deleted runs leave an audit row)."""
    return bool(session.scalar(select(func.count()).select_from(Job))) or bool(
        session.scalar(select(func.count()).select_from(JobAudit))
    )


# -- the history a fresh install's charts show ---------------------------------------------------------

DEMO = "demo history"  # every reason of a demo event starts so; its details say {"demo": true}
ARCHIVE_FAILURE_EVERY = 25  # one archived run in 25 fails once (a full disk) and is archived the next night
RESTORE_SHARE = 0.12  # archived runs whose owner restored a working copy for a while
DEMO_THROUGHPUT = 60 << 20  # bytes a second an archive or restore takes, for recorded events' durations
STEPS = ("archive_failed", "archived", "restored", "restore_expired", "deleted", "purged")  # a life, in order


@dataclass(frozen=True)
class DemoRun:
    """What the history needs of a demo run, read before anything moves it (a hard deletion removes its row)."""

    id: uuid.UUID
    status: str
    created_at: datetime
    completed_at: datetime | None
    size_bytes: int
    created_by: uuid.UUID | None
    folder_name: str

    @classmethod
    def of(cls, job: Job) -> DemoRun:
        return cls(
            job.id,
            job.status,
            job.created_at,
            job.completed_at,
            job.size_bytes or 0,
            job.created_by,
            job.folder_name or folder_name_for(job.created_at),
        )


@dataclass
class DemoLife:
    """When the schedule (and the run's owner) did what to one demo run, up to ``now`` (None: not yet)."""

    job: DemoRun
    size: int = 0  # the run folder's bytes (as archiving measured them, once archived)
    archive_bytes: int = 0
    archive_failed: datetime | None = None
    archived: datetime | None = None
    restored: datetime | None = None
    restore_expired: datetime | None = None  # None while restored: the working copy is still there
    deleted: datetime | None = None
    purged: datetime | None = None  # the end of a soft deletion's grace in the trash
    soft: bool = True  # deleted into the trash (DELETION_STRATEGY=soft); a hard deletion leaves no row


@dataclass(frozen=True)
class DemoHistory:
    events: int
    snapshots: int  # 0 when the install already had snapshots: its own history is kept as it is
    moved: bool  # the runs were moved along for real (archived, deleted...), not only described
    failed: int = 0  # steps that failed where they should not have (the run stays where it got to)


def archived_size(folder: Path, codec: str) -> int:
    """What archiving ``folder`` with ``codec`` would write: its tar stream compressed into a counter, kept nowhere."""
    with open(os.devnull, "wb") as nowhere:
        counter = CountingWriter(nowhere)  # type: ignore[arg-type]
        stream = compressor(counter, codec)  # type: ignore[arg-type]
        write_tar(folder, stream)
        stream.close()
    return counter.bytes_written


def _in_pass(cron: str, moment: datetime, rng: random.Random) -> datetime:
    """When the first pass after ``moment`` (cron in UTC, as the scheduler reads it) is done with a run:
    the pass's occurrence, and the run's place in it."""
    return croniter(cron, moment).get_next(datetime) + timedelta(seconds=rng.uniform(1, 90))


def demo_lives(
    runs: list[DemoRun], settings: Settings, *, now: datetime, rng: random.Random, live_restores: bool
) -> list[DemoLife]:
    """Each run's dates under the settings' schedule and ages, as the passes would have set them.

    A finished run is archived by the first archival pass (ARCHIVE_SCHEDULE) after it is
    ARCHIVE_AFTER_DAYS old (one in ARCHIVE_FAILURE_EVERY fails once and goes the next night),
    deleted by the first cleanup pass (CLEANUP_SCHEDULE) after DELETE_AFTER_DAYS
    (DELETION_STRATEGY), and purged by the first cleanup after DELETE_GRACE_DAYS in the trash.
    Some owners restore a working copy, which the archival pass after RESTORE_TTL_DAYS removes;
    with ``live_restores`` one restored lately may still be there. Only what happened before
    ``now`` is kept. Each date is the moment the change was recorded, a little into its pass.
    """
    archive, cleanup = settings.archive_schedule, settings.cleanup_schedule
    lives: list[DemoLife] = []
    archived_runs = 0
    for job in runs:
        life = DemoLife(job, size=job.size_bytes, soft=settings.deletion_strategy == "soft")
        lives.append(life)
        if job.status not in FINISHED_STATUSES or job.completed_at is None:
            continue
        attempt = _in_pass(archive, job.completed_at + timedelta(days=settings.archive_after_days), rng)
        if attempt >= now:
            continue
        archived, archived_runs = attempt, archived_runs + 1
        retry = _in_pass(archive, attempt, rng)
        if archived_runs % ARCHIVE_FAILURE_EVERY == ARCHIVE_FAILURE_EVERY // 2 and retry < now:
            life.archive_failed, archived = attempt, retry  # failed once, archived by the next pass
        life.archived = archived
        deleted = _in_pass(cleanup, max(job.completed_at + timedelta(days=settings.delete_after_days), archived), rng)
        life.deleted = deleted if deleted < now else None
        if rng.random() < RESTORE_SHARE:
            restored = archived + timedelta(hours=rng.uniform(6, 24 * settings.archive_after_days))
            expired = _in_pass(archive, restored + timedelta(days=settings.restore_ttl_days), rng)
            if expired < now and (life.deleted is None or expired <= life.deleted):
                life.restored, life.restore_expired = restored, expired
            elif live_restores and restored < now and life.deleted is None:
                life.restored = restored  # still there: the archival pass removes it when it expires
        if life.deleted is not None and life.soft:
            grace = timedelta(days=settings.delete_grace_days)
            purged = _in_pass(cleanup, life.deleted + grace, rng) if grace else life.deleted
            life.purged = purged if purged < now else None
    return lives


def _reasons(settings: Settings) -> dict[str, str]:
    """Why each step happened, in the words the passes use, marked as the demo's."""
    return {
        step: f"{DEMO}: {why}"
        for step, why in (
            ("archive", f"past its archive age (ARCHIVE_AFTER_DAYS={settings.archive_after_days})"),
            ("restore", "a working copy for analysis"),
            ("expire_restore", f"its working copy's RESTORE_TTL_DAYS={settings.restore_ttl_days} ran out"),
            ("delete", f"older than its delete age (DELETE_AFTER_DAYS={settings.delete_after_days})"),
            ("purge", "grace period over"),
        )
    }


DISK_FULL = "No space left on device (the next pass tries again)"


def _described(life: DemoLife, settings: Settings, owner: str) -> Iterator[LifecycleEvent]:
    """The events of a run's life, written as the operations would have recorded them (no run is touched)."""
    job, size, packed, why = life.job, life.size, life.archive_bytes, _reasons(settings)

    def event(action: str, at: datetime, before: int | None, after: int | None, **extra: Any) -> Any:
        took = timedelta(seconds=0.2 + max(before or 0, after or 0) / DEMO_THROUGHPUT)
        return LifecycleEvent(
            job_id=job.id,
            action=action,
            actor=extra.pop("actor", "scheduler"),
            reason=why[action],
            outcome=extra.pop("outcome", "succeeded"),
            started_at=at - took,  # ``at`` is when the change was recorded: the attempt's end
            finished_at=at,
            bytes_before=before,
            bytes_after=after,
            details={"demo": True},
            **extra,
        )

    if life.archive_failed is not None:
        yield event("archive", life.archive_failed, None, None, outcome="failed", error=f"OSError: {DISK_FULL}")
    if life.archived is not None:
        yield event("archive", life.archived, size, packed)
    if life.restored is not None and life.restore_expired is not None:  # described: only copies gone by now
        yield event("restore", life.restored, packed, size, actor=owner)
        yield event("expire_restore", life.restore_expired, size, 0)
    if life.deleted is not None:
        yield event("delete", life.deleted, packed, packed if life.soft else 0)
    if life.purged is not None:
        yield event("purge", life.purged, packed, 0)


def _lived(lc: Lifecycle, lives: list[DemoLife], settings: Settings, owners: dict[Any, str]) -> int:
    """Move the runs along their lives with the lifecycle's own operations, each at its date (the
    lifecycle's clock set to it), in the order they happened; return how many runs a step failed.

    A step that fails stops its run where it got to (its later steps are not tried).
    """
    dated = ((getattr(life, step), STEPS.index(step), step, life) for life in lives for step in STEPS)
    steps = sorted((item for item in dated if item[0] is not None), key=lambda item: item[:2])
    stopped: set[uuid.UUID] = set()
    clock, fault = lc.clock, lc.fault
    try:
        for moment, _order, step, life in steps:
            if life.job.id in stopped:
                continue
            lc.clock = lambda moment=moment: moment
            try:
                outcome = _step(lc, step, life, settings, owners.get(life.job.created_by, "demo"))
            except (LifecycleError, OSError):
                outcome = "failed"
            finally:
                lc.fault = fault
            if outcome != "succeeded":
                stopped.add(life.job.id)
    finally:
        lc.clock = clock
    return len(stopped)


def _step(lc: Lifecycle, step: str, life: DemoLife, settings: Settings, owner: str) -> str:
    """Do one step of a run's life now (the lifecycle's clock says when): the outcome, as recorded."""
    job_id, why = life.job.id, _reasons(settings)
    if step == "archive_failed":

        def disk_full(where: str) -> None:
            if where == "archive.written":
                raise OSError(errno.ENOSPC, DISK_FULL)

        lc.fault = disk_full
        try:
            archive_run(lc, job_id, actor="scheduler", reason=why["archive"])
        except OSError:
            return "succeeded"  # it failed as planned, recorded as a full disk is; the next pass archives it
        return "not failed"
    if step == "archived":
        return archive_run(lc, job_id, actor="scheduler", reason=why["archive"])
    if step == "restored":
        return restore_run(lc, job_id, actor=owner, reason=why["restore"])
    if step == "restore_expired":
        return expire_restore(lc, job_id, actor="scheduler", reason=why["expire_restore"])
    if step == "deleted":
        strategy = "soft" if life.soft else "hard"
        return delete_run(lc, job_id, actor="scheduler", reason=why["delete"], strategy=strategy)
    if lc.session.get(Job, job_id, populate_existing=True).purged_at is not None:  # type: ignore[union-attr]
        return "succeeded"  # DELETE_GRACE_DAYS=0: the deletion purged it at once
    return purge_run(lc, job_id, actor="scheduler", reason=why["purge"])


def _lives_from(runs: list[DemoRun], events: list[LifecycleEvent], soft: bool) -> list[DemoLife]:
    """Each run's life as its events tell it: when each change was recorded, and what it and its archive weigh."""
    lives = {job.id: DemoLife(job, size=job.size_bytes, soft=soft) for job in runs}
    steps = {"archive": "archived", "restore": "restored", "expire_restore": "restore_expired"}
    steps |= {"delete": "deleted", "purge": "purged"}
    for event in sorted(events, key=lambda event: (event.finished_at, event.id or 0)):
        life = lives.get(event.job_id)
        if life is None or event.outcome != "succeeded" or event.action not in steps:
            continue
        setattr(life, steps[event.action], event.finished_at)
        if event.action == "archive":
            life.size, life.archive_bytes = event.bytes_before or 0, event.bytes_after or 0
    return list(lives.values())


def _snapshots(lives: list[DemoLife], since: datetime, now: datetime, disk_path: Path) -> list[dict[str, Any]]:
    """Hourly snapshots from ``since`` to the hour before ``now``'s, each tier's runs and bytes as the
    lives have them at that hour (the figures' own definition of each tier: app.monitoring.figures)."""
    changes: list[tuple[datetime, str, int, int]] = []  # (when, tier, runs, bytes)
    for life in lives:
        job, size, packed = life.job, life.size, life.archive_bytes
        changes.append((job.created_at, "active", 1, 0))
        if job.completed_at is not None:
            changes.append((job.completed_at, "active", 0, size))
        for moment, moves in (
            (life.archived, (("active", -1, -size), ("archived", 1, packed))),
            (life.restored, (("restored", 1, size),)),
            (life.restore_expired if life.restored else None, (("restored", -1, -size),)),
            (life.deleted, (("archived", -1, -packed), *((("trash", 1, packed),) if life.soft else ()))),
            (life.purged, (("trash", -1, -packed), ("purged", 1, 0))),
        ):
            if moment is not None:
                changes.extend((moment, tier, runs, size_change) for tier, runs, size_change in moves)
        if life.deleted is not None and life.restored is not None and life.restore_expired is None:
            changes.append((life.deleted, "restored", -1, -size))  # a deletion takes the working copy along
    changes.sort(key=lambda change: change[0])
    usage = shutil.disk_usage(disk_path)
    on_disk_now = sum(life.job.size_bytes for life in lives)  # what the demo runs held when they were seeded
    used_before = usage.total - usage.free - on_disk_now  # what the disk holds besides them
    totals = {tier: [0, 0] for tier in ("active", "archived", "trash", "restored", "purged")}
    rows, applied = [], 0
    hour = since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    last = now.replace(minute=0, second=0, microsecond=0)  # this hour's snapshot is the scheduler's to take
    while hour < last:
        while applied < len(changes) and changes[applied][0] <= hour:
            _when, tier, runs, size_change = changes[applied]
            totals[tier][0] += runs
            totals[tier][1] += size_change
            applied += 1
        stored = sum(totals[tier][1] for tier in ("active", "archived", "trash", "restored"))
        rows.append(
            {
                "taken_at": hour,
                "active_bytes": totals["active"][1],
                "active_count": totals["active"][0],
                "archived_bytes": totals["archived"][1],
                "archived_count": totals["archived"][0],
                "trash_bytes": totals["trash"][1],
                "deleted_count": totals["trash"][0] + totals["purged"][0],
                "restored_bytes": totals["restored"][1],
                "restored_count": totals["restored"][0],
                "disk_total_bytes": usage.total,
                "disk_free_bytes": min(usage.total, max(0, usage.total - used_before - stored)),
                "demo": True,
            }
        )
        hour += timedelta(hours=1)
    return rows


def seed_history(
    session: Session,
    settings: Settings,
    runs: list[Job],
    *,
    days: int,
    now: datetime,
    seed: int | None = None,
    lc: Lifecycle | None = None,
) -> DemoHistory:
    """Give the demo runs the past the schedule would have given them, up to ``now``.

    With a lifecycle ``lc`` (Redis answers: the runs' locks), the runs are moved along for real by
    the lifecycle's operations, each at its date: they are archived, restored, deleted and purged
    as they would have been, with their archives, events and audit. Without one, their events are
    only described (written as the operations would have recorded them) and the scheduler moves
    the runs today. Either way the events are marked as the demo's (``details: {"demo": true}``,
    reasons starting ``demo history``), and if the install has no snapshots yet, the ``days`` days
    before ``now`` get hourly snapshots (``demo``) whose bytes per tier follow from those events.
    """
    rng = random.Random(None if seed is None else f"history-{seed}")  # noqa: S311 (demo data, as above)
    demo_runs = [DemoRun.of(job) for job in runs]
    lives = demo_lives(demo_runs, settings, now=now, rng=rng, live_restores=lc is not None)
    owner_ids = {job.created_by for job in demo_runs}
    owners = dict(session.execute(select(User.id, User.username).where(User.id.in_(owner_ids))).all())
    ids = [job.id for job in demo_runs]
    failed = 0
    if lc is not None:
        first = session.scalar(select(func.max(LifecycleEvent.id))) or 0
        failed = _lived(lc, lives, settings, owners)
        events = list(
            session.scalars(select(LifecycleEvent).where(LifecycleEvent.id > first, LifecycleEvent.job_id.in_(ids)))
        )
        for event in events:
            event.details = {**(event.details or {}), "demo": True}
    else:
        for life in lives:
            if life.archived is not None:
                folder = run_folder_path(settings.jobs_path, life.job.folder_name, life.job.id)
                life.archive_bytes = archived_size(folder, settings.archive_compression)
        events = [
            event for life in lives for event in _described(life, settings, owners.get(life.job.created_by, "demo"))
        ]
        session.add_all(events)
    session.flush()
    snapshots = []
    if session.scalar(select(func.count()).select_from(StorageSnapshot)) == 0:
        told = _lives_from(demo_runs, events, soft=settings.deletion_strategy == "soft")
        snapshots = _snapshots(told, now - timedelta(days=days), now, settings.scraper_data_path)
        if snapshots:
            session.execute(insert(StorageSnapshot), snapshots)
    session.commit()
    return DemoHistory(events=len(events), snapshots=len(snapshots), moved=lc is not None, failed=failed)


# The retention policies a fresh install shows (each reason says it is demo data): one per kind of rule.
DEMO_POLICIES = (
    {
        "name": "invoices for the auditors",
        "scraper_pattern": "invoice-*",
        "archive_after_days": 7,
        "delete_after_days": 365,
        "priority": 10,
        "reason": "demo: supplier invoices are kept a year for the yearly audit",
    },
    {
        "name": "latest book catalogues",
        "scraper_pattern": "books-*",
        "archive_after_days": 7,
        "delete_after_days": 30,
        "keep_last": 3,
        "keep_after_access_days": 14,
        "priority": 5,
        "reason": "demo: the catalogue team compares each run with the three before it",
    },
    {
        "name": "price dispute with acme",
        "scraper_pattern": "price-watch",
        "archive_after_days": 7,
        "delete_after_days": 30,
        "legal_hold": True,
        "reason": "demo: counsel asked to keep every price capture until the dispute is settled",
    },
)


def seed_policies(session: Session, *, actor: str, now: datetime) -> int:
    """Add the demo's retention policies that are not there yet (by name); how many were added."""
    taken = {policy.name for policy in policies.list_policies(session)}
    added = 0
    for entry in DEMO_POLICIES:
        if entry["name"] in taken:
            continue
        fields = {name: value for name, value in entry.items() if name != "reason"}
        policies.add_policy(
            session, policies.read_fields(fields, partial=False), actor=actor, reason=entry["reason"], now=now
        )
        added += 1
    session.commit()
    return added
