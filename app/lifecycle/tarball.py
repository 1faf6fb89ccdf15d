"""Run folders as tar streams: write with a member manifest, verify by reading back, extract safely.

Members are named relative to the run folder (``results.json``, ``screens/home.png``). A tar
member's name is the file's name as bytes (tar stores bytes; PAX marks non-UTF-8 names BINARY);
the manifest holds its escaped text form (``naming.escape_name``), so every name a file system
allows round-trips: backslashes, newlines, undecodable bytes, leading dashes, 255 bytes. Symlinks
are never followed: a link that stays inside the run is kept as a link, one that leaves it is
left out with a warning. Only directories, regular files and inside links are archived, and only
those are accepted back: anything else in an archive (hard links, devices, paths that climb out,
members the manifest does not list) makes the whole archive refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from app.lifecycle.codecs import CODEC_ERRORS
from app.lifecycle.naming import escape_name, safe_member_path
from app.lifecycle.store import file_sha256
from app.lifecycle.streams import STREAM_BLOCK, ForwardReader, TarSink

# Where a verification "extracts": nothing can exist beneath a device file, so the data filter's
# path checks stay lexical and nothing is ever written (extract_tar with dest=None).
VERIFY_ONLY_ROOT = os.path.join(os.devnull, "verify-only")


class ArchiveInvalid(Exception):
    """An archive does not match what was recorded for it (corrupt, truncated, or tampered)."""


class HostileArchive(ArchiveInvalid):
    """An archive holds something that must never be extracted (escaping path, device, …)."""


@dataclass(frozen=True)
class Member:
    """One entry of an archive's manifest."""

    path: str
    kind: str  # "dir", "file" or "symlink"
    size: int = 0
    sha256: str | None = None
    link_target: str | None = None
    offset: int | None = None  # where the member's data starts in the uncompressed tar stream

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Fingerprint = tuple[int, int, int, int, int]
# A file changed within this long of being read may keep its timestamps on a file system that
# keeps coarse ones (FAT 2 s, ext3 1 s, some network shares): git's "racy clean" problem. Such a
# file is hashed again however its fingerprint looks.
RACY_NS = 2_000_000_000


def fingerprint(info: os.stat_result) -> Fingerprint:
    """What says a file's bytes are unchanged since it was read: size, inode and mtime, and the
    ctime no writer can set back (any write, truncate or replace moves it)."""
    return (info.st_size, info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)


def _unchanged_since_read(info: os.stat_result, read: tuple[Fingerprint, int] | None) -> bool:
    """Whether a file is, by its fingerprint, as it was when read at ``read[1]`` (ns since the epoch)."""
    if read is None or read[0] != fingerprint(info):
        return False
    return max(info.st_mtime_ns, info.st_ctime_ns) < read[1] - RACY_NS


def archived_link(relpath: str, target: str, root: str) -> bool:
    """Whether a link is archived (kept as a link) or left out with a warning: one rule for writing
    the archive and for comparing a folder with it."""
    info = tarfile.TarInfo(relpath)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return _link_stays_inside(relpath, target) and refusal(info, root) is None


@dataclass
class WriteResult:
    members: list[Member]
    warnings: list[str]
    tar_bytes: int = 0  # length and CRC-32 of the uncompressed tar stream, for the read-back check
    tar_crc: int = 0
    # Each file member's fingerprint when it was opened: a folder is compared against its archive
    # before removal, and a file whose fingerprint still matches need not be read again.
    fingerprints: dict[str, tuple[Fingerprint, int]] = field(default_factory=dict)


def _link_stays_inside(relpath: str, target: str) -> bool:
    if os.path.isabs(target):
        return False
    joined = os.path.normpath(os.path.join(os.path.dirname(relpath), target))
    return joined != ".." and not joined.startswith("../") and not os.path.isabs(joined)


def _walk(root: Path, warnings: list[str]):  # type: ignore[no-untyped-def]
    """Yield ``(relpath, DirEntry)`` in a stable order, never following a link."""
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        subfolders = []
        for entry in entries:
            relpath = f"{prefix}{entry.name}"
            if entry.is_symlink():
                yield relpath, entry
            elif entry.is_dir(follow_symlinks=False):
                yield relpath, entry
                subfolders.append((relpath + "/", Path(entry.path)))
            elif entry.is_file(follow_symlinks=False):
                yield relpath, entry
            else:
                warnings.append(f"left out {escape_name(relpath)}: not a regular file, folder or link")
        stack.extend(reversed(subfolders))


def write_tar(
    root: Path,
    stream: BinaryIO,
    spans: list[tuple[int, int]] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> WriteResult:
    """Write the run folder ``root`` as a tar stream into ``stream``; return its manifest.

    File members get no SHA-256 here: the read-back check hashes them from the archive itself,
    using ``spans``, to which each file's ``(data offset, size)`` is added before its bytes are
    written.
    """
    spans = spans if spans is not None else []
    members: list[Member] = []
    warnings: list[str] = []
    fingerprints: dict[str, tuple[Fingerprint, int]] = {}
    sink = TarSink(stream, on_progress)
    root_text = str(root)
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, copybufsize=STREAM_BLOCK) as tar:
        for relpath, entry in _walk(root, warnings):
            name = escape_name(relpath)
            info = entry.stat(follow_symlinks=False)
            tarinfo = tarfile.TarInfo(relpath)
            tarinfo.mtime = int(info.st_mtime)
            tarinfo.mode = stat.S_IMODE(info.st_mode)
            if entry.is_symlink():
                target = os.readlink(entry.path)
                tarinfo.type = tarfile.SYMTYPE
                tarinfo.linkname = target
                if not archived_link(relpath, target, root_text):
                    warnings.append(f"left out link {name} -> {escape_name(target)}: it points outside the run")
                    continue
                tar.addfile(tarinfo)
                members.append(Member(name, "symlink", link_target=escape_name(target)))
                continue
            # What restore would refuse is never archived: the archive must restore as it stands.
            if why := refusal(tarinfo, root_text):
                raise HostileArchive(f"'{name}' could not be restored ({why}); the run is not archived")
            if entry.is_dir(follow_symlinks=False):
                tarinfo.type = tarfile.DIRTYPE
                tar.addfile(tarinfo)
                members.append(Member(name, "dir"))
            else:
                if hasattr(stream, "member"):  # the compressor may pick a level for this member's bytes
                    stream.member(relpath, info.st_size)
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb", buffering=0) as handle:
                    opened = os.fstat(fd)
                    fingerprints[name] = (fingerprint(opened), time.time_ns())
                    tarinfo.size = opened.st_size
                    header = tarinfo.tobuf(tar.format, tar.encoding, tar.errors)
                    data_offset = tar.offset + len(header)
                    spans.append((data_offset, tarinfo.size))
                    tar.addfile(tarinfo, handle)
                if tar.offset != data_offset + -(-tarinfo.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE:
                    raise RuntimeError(f"tar header of '{name}' was not the size foreseen")
                members.append(Member(name, "file", tarinfo.size, None, offset=data_offset))
    return WriteResult(members, warnings, sink.length, sink.crc, fingerprints)


def refusal(tarinfo: tarfile.TarInfo, dest: str) -> str | None:
    """Why restoring this member into ``dest`` would be refused, or None: one rule for writing and restoring.

    tarfile's ``data`` filter (no absolute path, no ``..``, no link leaving ``dest``, no device),
    and a name that is already plain (nothing for the filter or the normalisation to change).
    """
    try:
        safe = tarfile.data_filter(tarinfo, dest)
    except tarfile.FilterError as error:
        return str(error)
    try:
        normal = str(safe_member_path(tarinfo.name))
    except ValueError:
        normal = None
    if normal != tarinfo.name or safe.name != tarinfo.name:
        return "not a plain relative path"
    return None


def _kind(tarinfo: tarfile.TarInfo) -> str:
    if tarinfo.isdir():
        return "dir"
    if tarinfo.isreg():
        return "file"
    if tarinfo.issym():
        return "symlink"
    raise HostileArchive(f"'{escape_name(tarinfo.name)}' is a {tarinfo.type!r} entry; run archives hold none")


def _check_member(tarinfo: tarfile.TarInfo, expected: Member | None) -> None:
    name = escape_name(tarinfo.name)
    if expected is None:
        raise HostileArchive(f"'{name}' is not in the archive's manifest")
    kind = _kind(tarinfo)
    if (name, kind) != (expected.path, expected.kind):
        raise ArchiveInvalid(f"found {kind} '{name}' where the manifest has {expected.kind} '{expected.path}'")
    if kind == "file" and tarinfo.size != expected.size:
        raise ArchiveInvalid(f"'{name}' is {tarinfo.size} bytes; the manifest says {expected.size}")
    if kind == "symlink" and escape_name(tarinfo.linkname) != expected.link_target:
        raise ArchiveInvalid(f"link '{name}' points elsewhere than the manifest says ('{expected.link_target}')")


def manifest_from_tar(stream: BinaryIO) -> list[Member]:
    """Read a tar stream through and return its manifest (for an archive found without a record)."""
    members: list[Member] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=STREAM_BLOCK) as tar:
            for tarinfo in tar:
                kind = _kind(tarinfo)
                if kind == "file":
                    source = tar.extractfile(tarinfo)
                    assert source is not None  # noqa: S101 (for the type checker: a regular file always has a reader)
                    digest = hashlib.sha256()
                    while chunk := source.read(STREAM_BLOCK):
                        digest.update(chunk)
                    name = escape_name(tarinfo.name)
                    members.append(Member(name, kind, tarinfo.size, digest.hexdigest(), offset=tarinfo.offset_data))
                elif kind == "symlink":
                    members.append(Member(escape_name(tarinfo.name), kind, link_target=escape_name(tarinfo.linkname)))
                else:
                    members.append(Member(escape_name(tarinfo.name), kind))
    except (tarfile.TarError, *CODEC_ERRORS) as error:
        raise ArchiveInvalid(f"the archive cannot be read: {error}") from error
    return members


def extract_tar(
    stream: BinaryIO,
    dest: Path | None,
    manifest: list[Member],
    *,
    hash_files: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Extract a tar stream into the empty folder ``dest``, refusing anything unsafe or unlisted.

    Every member passes tarfile's ``data`` filter (no absolute paths, no ``..``, no links
    leaving ``dest``, no devices) and must match the manifest, file contents by SHA-256.
    With ``dest`` None every check is made the same way and nothing is written (verification).
    """
    expected = iter(manifest)
    links: set[str] = set()
    folders = {""}
    count = 0
    dest_text = str(dest) if dest is not None else VERIFY_ONLY_ROOT
    reader = ForwardReader(stream, on_progress)
    try:
        with tarfile.open(fileobj=reader, mode="r:", copybufsize=STREAM_BLOCK) as tar:  # type: ignore[call-overload]
            for tarinfo in tar:
                member = next(expected, None)
                if why := refusal(tarinfo, dest_text):
                    raise HostileArchive(f"refused '{escape_name(tarinfo.name)}': {why}")
                safe = tarfile.data_filter(tarinfo, dest_text)
                _check_member(tarinfo, member)
                assert member is not None  # noqa: S101 (for the type checker: _check_member refused None)
                parts = PurePosixPath(safe.name).parts
                if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
                    raise HostileArchive(f"refused '{escape_name(tarinfo.name)}': it lies beneath a link")
                parent = "/".join(parts[:-1])
                if parent not in folders:
                    raise ArchiveInvalid(f"'{escape_name(tarinfo.name)}' comes before its folder")
                target = dest.joinpath(*parts) if dest is not None else None
                if member.kind == "dir":
                    folders.add(safe.name)
                    if target is not None:
                        target.mkdir(mode=0o700, exist_ok=True)
                        os.chmod(target, safe.mode if safe.mode is not None else 0o755, follow_symlinks=False)
                elif member.kind == "symlink":
                    if target is not None:
                        os.symlink(safe.linkname, target)
                    links.add(safe.name)
                else:
                    _extract_file(reader, tarinfo, target, member, safe.mode, hash_files)
                count += 1
    except OSError as error:
        if error.errno is not None:  # the disk, not the archive (ENOSPC, EACCES): say so
            raise
        raise ArchiveInvalid(f"the archive cannot be read: {error}") from error
    except (tarfile.TarError, *CODEC_ERRORS) as error:
        raise ArchiveInvalid(f"the archive cannot be read: {error}") from error
    if count != len(manifest):
        raise ArchiveInvalid(f"the archive holds {count} members; the manifest lists {len(manifest)}")


def _extract_file(
    reader: ForwardReader,
    tarinfo: tarfile.TarInfo,
    target: Path | None,
    member: Member,
    mode: int | None,
    hash_file: bool,
) -> None:
    # The member's bytes are read straight from the stream at their offset (tarfile then seeks
    # past the padding to the next header): no copies, unlike ``extractfile``.
    reader.seek(tarinfo.offset_data)
    digest = hashlib.sha256()
    remaining = tarinfo.size
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600) if target else None
    with os.fdopen(fd, "wb", buffering=0) if fd is not None else nullcontext() as out:
        while remaining:
            view = reader.read_view(min(remaining, STREAM_BLOCK))
            if not view:
                raise ArchiveInvalid(f"'{member.path}' is cut short")
            if hash_file:
                digest.update(view)
            remaining -= len(view)
            while out is not None and view:
                view = view[out.write(view) :]
    if hash_file and digest.hexdigest() != member.sha256:
        raise ArchiveInvalid(f"'{member.path}' does not match its recorded SHA-256")
    if target is None:
        return
    os.chmod(target, mode if mode is not None else 0o644)
    os.utime(target, (tarinfo.mtime, tarinfo.mtime))


def _file_sha256(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        return file_sha256(handle)


def folder_differences(
    root: Path, manifest: list[Member], fingerprints: dict[str, tuple[Fingerprint, int]] | None = None
) -> list[str]:
    """What the folder ``root`` holds that its archive (``manifest``) does not: extra entries, and
    entries of another kind, size, link target or content. Empty when removing the folder loses nothing.

    A file whose fingerprint is the one taken when it was archived is unchanged; every other file
    is hashed and compared with its SHA-256. Entries the archive leaves out by design (links out of
    the run, sockets, devices: warned about when archived) and files the folder lost are not
    differences: the archive holds all there is.
    """
    expected = {member.path: member for member in manifest}
    fingerprints = fingerprints or {}
    differences: list[str] = []
    for relpath, entry in _walk(root, []):
        name = escape_name(relpath)
        member = expected.get(name)
        if entry.is_symlink():
            target = os.readlink(entry.path)
            if member is None and not archived_link(relpath, target, str(root)):
                continue
            kind = "symlink"
        else:
            kind = "dir" if entry.is_dir(follow_symlinks=False) else "file"
        if member is None:
            differences.append(f"{name} ({kind} not in the archive)")
        elif member.kind != kind:
            differences.append(f"{name} (a {kind} here, a {member.kind} in the archive)")
        elif kind == "symlink" and escape_name(target) != member.link_target:
            differences.append(f"{name} (link to {escape_name(target)}, {member.link_target} in the archive)")
        elif kind == "file":
            info = entry.stat(follow_symlinks=False)
            if info.st_size != member.size:
                differences.append(f"{name} ({info.st_size} bytes, {member.size} in the archive)")
            elif not _unchanged_since_read(info, fingerprints.get(name)) and _file_sha256(entry.path) != member.sha256:
                differences.append(f"{name} (content differs from the archive)")
    return differences
