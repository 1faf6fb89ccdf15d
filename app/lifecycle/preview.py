"""Seeing a run's file without restoring it: where its bytes come from, what kind of file it is, and
a bounded view of it (issue 13).

An archived run's files are read out of its archive through the member read the API uses
(``members.read_member``: bytes checked against the manifest); an active run's from its folder,
refusing any path that climbs out of it or passes through a link. Every view reads a bounded
number of bytes — a JSON document up to JSON_MAX, a text's tail or search over at most TEXT_MAX,
a hex head of HEX_BYTES — so a 1 GB member never sits in memory. A larger log in a run folder
shows its real end (read from TAIL_BYTES before it); an archived one the end of its first TEXT_MAX,
said so on the page, as its bytes are checked in order from its start. The kind is decided by the bytes
(a PNG's signature, ``%PDF-``), never by the name alone: only images of four raster types and
PDFs are ever shown by the browser itself; HTML, SVG and the rest are text or a hex head.
"""

from __future__ import annotations

import json
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import RunConflict
from app.lifecycle.members import InvalidMemberPath, MemberNotFound, NotAFile, find_member, read_member
from app.lifecycle.naming import escape_name, find_run_folder, native_name, safe_member_path
from app.lifecycle.runs import tier_of
from app.models import Job

JSON_MAX = 1 << 20  # a JSON document folded up to 1 MB; larger ones shown as text
JSON_NODES = 5000  # values shown before "… and N more"
TEXT_MAX = 32 << 20  # a text's tail or search reads at most this much
TAIL_BYTES = 4 << 20  # a larger file one can seek in (an active run's): its tail read from its last bytes
LINES = 500  # lines shown: the tail, the head or the matches
HEX_BYTES = 4096
SNIFF_BYTES = 4096
FILES_LISTED = 200  # an active run's files on its page
FILES_COUNTED = 10_000  # counted beyond that, then "10,000+"
# The only types a browser shows itself: raster images by their signature, and PDFs.
IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
TEXT_SUFFIXES = {".json", ".jsonl", ".ndjson", ".log", ".txt", ".csv", ".tsv", ".md", ".xml", ".html", ".htm", ".svg"}


class NoFilesHere(RunConflict):
    """The run has no files to show: deleted, or its folder is gone."""


@dataclass
class Source:
    """One file of a run: its path (escaped form), size, a way to read its bytes from the start, and
    one from any offset when the file allows it (a run folder's; an archive's member is read in order)."""

    path: str
    size: int
    read: Callable[[], Iterator[bytes]]
    sha256: str | None = None  # known for an archived run's file (its manifest's)
    read_from: Callable[[int], Iterator[bytes]] | None = None


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def head(source: Source, limit: int) -> bytes:
    """The first ``limit`` bytes (fewer for a shorter file), the rest not read."""
    chunks, parts, total = source.read(), [], 0
    try:
        for chunk in chunks:
            parts.append(chunk[: limit - total])
            total += len(parts[-1])
            if total >= limit:
                break
    finally:
        _close(chunks)
    return b"".join(parts)


# -- where the bytes come from -------------------------------------------------------------------------


def source_of(lc: Lifecycle, job: Job, requested: str) -> Source:
    """The file at ``requested`` (escaped form, as a URL carries it) of an active or archived run."""
    tier = tier_of(job)
    if tier == "archived":
        member = find_member(lc, job, requested)
        return Source(member.path, member.size, lambda: read_member(lc, job, member).chunks, member.sha256)
    if tier == "active":
        return _folder_file(lc, job, requested)
    raise NoFilesHere(f"run {job.id} is deleted: its files are not shown (undelete it first)")


def _folder(lc: Lifecycle, job: Job) -> Path:
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    if folder is None:
        raise NoFilesHere(f"the folder of run {job.id} is not on disk")
    return folder


def _folder_file(lc: Lifecycle, job: Job, requested: str) -> Source:
    try:
        relative = safe_member_path(native_name(requested))
    except ValueError as error:
        raise InvalidMemberPath(str(error)) from None
    folder = _folder(lc, job)
    here = folder
    for part in relative.parts:  # no link on the way: a scraper's folder may hold links out of it
        here = here / part
        try:
            info = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            raise MemberNotFound(f"no file {escape_name(str(relative))!r} in run {job.id}") from None
        if stat.S_ISLNK(info.st_mode):
            raise NotAFile(f"{escape_name(str(relative))!r} is a link, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise NotAFile(f"{escape_name(str(relative))!r} is not a file")

    def read_from(offset: int) -> Iterator[bytes]:
        fd = os.open(here, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            handle.seek(offset)
            while piece := handle.read(1 << 16):
                yield piece

    return Source(escape_name(str(relative)), info.st_size, lambda: read_from(0), read_from=read_from)


def folder_files(lc: Lifecycle, job: Job) -> tuple[list[tuple[str, int]], int, bool]:
    """An active run's files (escaped paths, sizes) in name order, the first FILES_LISTED of them, and
    how many there are (counted up to FILES_COUNTED; True when there are more). Links are not followed."""
    folder = _folder(lc, job)
    found: list[tuple[str, int]] = []
    counted = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                continue
            counted += 1
            if len(found) < FILES_LISTED:
                found.append((escape_name(str(path.relative_to(folder))), info.st_size))
            if counted > FILES_COUNTED:
                return found, FILES_COUNTED, True
    return found, counted, False


# -- what it is ----------------------------------------------------------------------------------------


def kind_of(path: str, first: bytes) -> tuple[str, str]:
    """``(kind, media type)``: image, pdf, json, text or binary, by the first bytes (the name helps
    tell JSON and text apart only)."""
    for signature, media in IMAGE_SIGNATURES:
        if first.startswith(signature):
            return "image", media
    if first[:4] == b"RIFF" and first[8:12] == b"WEBP":
        return "image", "image/webp"
    if first.startswith(b"%PDF-"):
        return "pdf", "application/pdf"
    if not _looks_like_text(first):
        return "binary", "application/octet-stream"
    suffix = path[path.rfind(".") :].lower() if "." in path else ""
    stripped = first.lstrip()
    if suffix == ".json" or (suffix not in TEXT_SUFFIXES and stripped[:1] in (b"{", b"[")):
        return "json", "application/json"
    return "text", "text/plain"


def _looks_like_text(first: bytes) -> bool:
    if b"\x00" in first:
        return False
    sample = first.decode("utf-8", errors="ignore")
    if not first:
        return True
    controls = sum(1 for char in sample if ord(char) < 32 and char not in "\n\r\t\f")
    return len(sample) >= len(first) * 0.9 and controls <= len(sample) * 0.05


# -- the views -----------------------------------------------------------------------------------------


@dataclass
class JsonNode:
    """A value of a JSON document as the page folds it: a key (or index), and a scalar or children."""

    key: str | None
    kind: str  # object, array, string, number, bool, null
    text: str = ""  # a scalar, as JSON writes it
    children: list[JsonNode] = field(default_factory=list)
    more: int = 0  # children left out past JSON_NODES


def json_view(source: Source) -> tuple[JsonNode | None, str | None]:
    """The document as a tree to fold, or None and why not (too large, or not valid JSON)."""
    if source.size > JSON_MAX:
        return None, f"{source.size:,} bytes: too large to fold (up to {JSON_MAX:,}); shown as text"
    data = head(source, JSON_MAX)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return None, f"not valid JSON ({str(error)[:120]}); shown as text"
    budget = [JSON_NODES]
    return _node(None, value, budget), None


def _node(key: str | None, value: Any, budget: list[int]) -> JsonNode:
    budget[0] -= 1
    if isinstance(value, dict):
        node = JsonNode(key, "object")
        items = list(value.items())
    elif isinstance(value, list):
        node = JsonNode(key, "array")
        items = [(str(index), item) for index, item in enumerate(value)]
    else:
        kind = {bool: "bool", type(None): "null", str: "string"}.get(type(value), "number")
        return JsonNode(key, kind, json.dumps(value, ensure_ascii=False))
    for position, (child_key, child) in enumerate(items):
        if budget[0] <= 0:
            node.more = len(items) - position
            break
        node.children.append(_node(child_key, child, budget))
    return node


@dataclass
class TextView:
    """Lines of a text: its tail (the default), its head, or those containing a search."""

    lines: list[tuple[int | None, str]]  # (number, line); no numbers for a tail read from the file's end
    total: int  # lines read
    mode: str  # tail, head or search
    matches: int = 0
    cut: bool = False  # only the first TEXT_MAX bytes were read
    from_end: bool = False  # the tail was read from the file's last TAIL_BYTES (its lines not counted)


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    rest, read = b"", 0
    try:
        for chunk in chunks:
            read += len(chunk)
            rest += chunk
            *whole, rest = rest.split(b"\n")
            for line in whole:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")
            if read >= TEXT_MAX:
                rest = b""
                break
    finally:
        _close(chunks)
    if rest:
        yield rest.rstrip(b"\r").decode("utf-8", errors="replace")


def _tail_from_end(source: Source, read_from: Callable[[int], Iterator[bytes]]) -> TextView:
    """The last LINES lines of a file too large to read through, from its last TAIL_BYTES."""
    lines = _lines(read_from(source.size - TAIL_BYTES))
    next(lines, None)  # most likely the end of a line that started before
    kept = deque(((None, line[:2000]) for line in lines), maxlen=LINES)
    return TextView(list(kept), len(kept), "tail", from_end=True)


def text_view(source: Source, *, search: str = "", mode: str = "tail") -> TextView:
    """The text's last LINES lines (``tail``), first ones (``head``), or the first LINES lines containing
    ``search`` (any case), each with its number; at most TEXT_MAX bytes read."""
    needle = search.casefold()
    if mode == "tail" and not needle and source.size > TEXT_MAX and source.read_from is not None:
        return _tail_from_end(source, source.read_from)
    total, matches = 0, 0
    kept: deque[tuple[int | None, str]] = deque(maxlen=LINES if mode == "tail" and not needle else None)
    for number, line in enumerate(_lines(source.read()), start=1):
        total = number
        if needle:
            if needle in line.casefold():
                matches += 1
                if len(kept) < LINES:
                    kept.append((number, line[:2000]))
        elif mode == "head":
            if len(kept) < LINES:
                kept.append((number, line[:2000]))
        else:
            kept.append((number, line[:2000]))
    shown = "search" if needle else ("head" if mode == "head" else "tail")
    return TextView(list(kept), total, shown, matches, cut=source.size > TEXT_MAX)


def hex_view(source: Source) -> list[tuple[str, str, str]]:
    """The first HEX_BYTES as rows of 16: offset, hex, and the printable ASCII (others as dots)."""
    data = head(source, HEX_BYTES)
    rows = []
    for offset in range(0, len(data), 16):
        piece = data[offset : offset + 16]
        text = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in piece)
        rows.append((f"{offset:08x}", " ".join(f"{byte:02x}" for byte in piece), text))
    return rows
