"""Where a run lives on disk: folder names and archive paths (SPEC §2), as pure functions."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

ARCHIVE_EXTENSIONS = {"gzip": "gz", "bz2": "bz2", "xz": "xz", "zstd": "zst"}

_FOLDER_NAME = re.compile(r"^\d{8}_\d{6}$")
_RUN_FOLDER = re.compile(
    r"^(?:(?P<folder_name>\d{8}_\d{6})_)?"
    r"(?P<job_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


class BadJobId(ValueError):
    """A string that is not a run's UUID."""


def parse_job_id(value: object) -> uuid.UUID:
    """Parse a run id, accepting only the canonical hyphenated UUID form."""
    if isinstance(value, uuid.UUID):
        return value
    text = str(value).strip().lower()
    try:
        job_id = uuid.UUID(text)
    except ValueError:
        raise BadJobId(f"not a valid run id: {str(value)[:80]!r}") from None
    if str(job_id) != text:
        raise BadJobId(f"not a valid run id: {str(value)[:80]!r}")
    return job_id


def folder_name_for(created_at: datetime) -> str:
    """Return ``YYYYMMDD_HHMMSS`` of a run's start, in UTC."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    moment = created_at.astimezone(UTC)
    # Not strftime: glibc writes year 999 as "999", and the name must always be YYYYMMDD_HHMMSS.
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}_{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    )


def run_folder_name(folder_name: str | None, job_id: uuid.UUID) -> str:
    """Return the run folder's name: ``{folder_name}_{job_id}``, or the bare id for legacy runs."""
    if folder_name is None:
        return str(job_id)
    if not _FOLDER_NAME.match(folder_name):
        raise ValueError(f"folder_name must look like YYYYMMDD_HHMMSS, got {folder_name!r}")
    return f"{folder_name}_{job_id}"


def parse_run_folder(name: str) -> tuple[str | None, uuid.UUID] | None:
    """Split a run folder (or archive stem) into ``(folder_name, job_id)``; None if it is not one."""
    match = _RUN_FOLDER.match(name)
    if match is None:
        return None
    return match.group("folder_name"), uuid.UUID(match.group("job_id"))


def run_folder_path(jobs_root: Path, folder_name: str | None, job_id: uuid.UUID) -> Path:
    """Return the path of a run's active folder under ``jobs/``."""
    return jobs_root / run_folder_name(folder_name, job_id)


def find_run_folder(jobs_root: Path, folder_name: str | None, job_id: uuid.UUID) -> Path | None:
    """Return the run's folder if it exists: the named one first, then a legacy bare-UUID one."""
    for candidate in (run_folder_path(jobs_root, folder_name, job_id), jobs_root / str(job_id)):
        if candidate.is_dir() and not candidate.is_symlink():
            return candidate
    return None


def archive_relpath(folder_name: str, job_id: uuid.UUID, compression: str) -> PurePosixPath:
    """Return ``{YYYY}/{MM}/{folder_name}_{job_id}.tar.{ext}``, placed by the run's start."""
    if compression not in ARCHIVE_EXTENSIONS:
        raise ValueError(f"unknown compression {compression!r}")
    name = run_folder_name(folder_name, job_id)
    return PurePosixPath(folder_name[0:4], folder_name[4:6], f"{name}.tar.{ARCHIVE_EXTENSIONS[compression]}")


def safe_member_path(member: str) -> PurePosixPath:
    """Normalise a path inside a run, refusing absolute paths and any that climb out of it.

    ``member`` is a name as the file system gives it (undecodable bytes as surrogates): a
    backslash or a newline is an ordinary character of a POSIX name, a NUL never is.
    """
    if "\x00" in member:
        raise ValueError(f"invalid path inside a run: {escape_name(member[:200])!r}")
    parts = [part for part in PurePosixPath(member).parts if part not in ("", ".")]
    if member.startswith("/") or not parts or ".." in parts:
        raise ValueError(f"invalid path inside a run: {escape_name(member[:200])!r}")
    return PurePosixPath(*parts)


# A file name is bytes; the database, JSON and pages need text. Names are kept in an escaped form
# that is plain UTF-8 and maps back to the very same bytes: a backslash is written "\\", control
# characters "\n", "\r", "\t" or "\xHH", and each byte that is not valid UTF-8 (a surrogate
# after os.fsdecode) "\xHH". Every other name - nearly all of them - is its own escaped form.
_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNNAMED = {value: key for key, value in _NAMED_ESCAPES.items()}
_NEEDS_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f\udc80-\udcff]")
_ESCAPE = re.compile(r"\\(\\|n|r|t|x[0-9a-fA-F]{2})|\\")


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def escape_name(native: str) -> str:
    """The escaped text form of a name as the file system gives it (see above)."""
    return _NEEDS_ESCAPE.sub(_escape_one, native)


def _unescape_one(match: re.Match[str]) -> str:
    token = match.group()
    if token == "\\":  # noqa: S105 (an escape sequence, not a password)
        raise ValueError("a lone backslash: write a backslash in a name as \\\\")
    if token in _UNNAMED:
        return _UNNAMED[token]
    code = int(token[2:], 16)
    return chr(0xDC00 + code) if code >= 0x80 else chr(code)


def native_name(escaped: str) -> str:
    """The name as the file system knows it, from its escaped form; ValueError if malformed."""
    if "\\" not in escaped:
        return escaped
    return _ESCAPE.sub(_unescape_one, escaped)
