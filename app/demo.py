"""Demo data for a fresh install: scraper runs spread over the past weeks, as a scraper writes them.

``flask demo seed`` (and ``make run`` on first start) writes run folders the way the platform's
scrapers do — JSON result pages, PNG screenshots, PDFs, logs — and registers each run with its real
start and end, in the past. Nothing else is faked: the scheduler's first passes archive the runs
older than ``ARCHIVE_AFTER_DAYS`` and delete those older than ``DELETE_AFTER_DAYS`` exactly as they
would in production. The content makers are the benchmark's too (``bench/archive.py``), so the
demo mix is the mix whose compression is measured.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.lifecycle.naming import folder_name_for, run_folder_path
from app.lifecycle.runs import register_run
from app.models import Job, JobAudit

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


def png_blob(rng: random.Random, size: int) -> bytes:
    """Deflated pixel data (incompressible) with rows of flat background, as in a page screenshot.

    The seed note puts screenshots at 10-20 % compressible; about 15 % of these rows are flat.
    """
    rows, total = [b"\x89PNG\r\n\x1a\n"], 8
    while total < size:
        row = bytes([rng.randint(240, 255)]) * 4096 if rng.random() < 0.15 else rng.randbytes(4096)
        rows.append(row)
        total += len(row)
    return b"".join(rows)[:size]


def pdf_blob(rng: random.Random, size: int) -> bytes:
    """Compressed streams (incompressible) around text objects: ~10 % compressible, as the seed note says."""
    text = b"BT /F1 12 Tf 72 712 Td (Invoice for order %d, total %d.%02d EUR) Tj ET\n"
    parts, total = [b"%PDF-1.7\n"], 9
    while total < size:
        if rng.random() < 0.12:
            part = b"".join(text % (rng.randint(1, 99999), rng.randint(1, 999), rng.randint(0, 99)) for _ in range(60))
        else:
            part = rng.randbytes(4096)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


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
