"""Run folders as tar streams: write with a member manifest, verify by reading back, extract safely.

Members are named relative to the run folder (``results.json``, ``screens/home.png``). Symlinks
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
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from app.lifecycle.codecs import CODEC_ERRORS, STREAM_BLOCK, ForwardReader, TarSink
from app.lifecycle.naming import safe_member_path


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


@dataclass
class WriteResult:
    members: list[Member]
    warnings: list[str]
    tar_bytes: int = 0  # length and CRC-32 of the uncompressed tar stream, for the read-back check
    tar_crc: int = 0


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
                warnings.append(f"left out {relpath}: not a regular file, folder or link")
        stack.extend(reversed(subfolders))


def write_tar(root: Path, stream: BinaryIO, spans: list[tuple[int, int]] | None = None) -> WriteResult:
    """Write the run folder ``root`` as a tar stream into ``stream``; return its manifest.

    File members get no SHA-256 here: the read-back check hashes them from the archive itself,
    using ``spans``, to which each file's ``(data offset, size)`` is added before its bytes are
    written.
    """
    spans = spans if spans is not None else []
    members: list[Member] = []
    warnings: list[str] = []
    sink = TarSink(stream)
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, copybufsize=STREAM_BLOCK) as tar:
        for relpath, entry in _walk(root, warnings):
            info = entry.stat(follow_symlinks=False)
            tarinfo = tarfile.TarInfo(relpath)
            tarinfo.mtime = int(info.st_mtime)
            tarinfo.mode = stat.S_IMODE(info.st_mode)
            if entry.is_symlink():
                target = os.readlink(entry.path)
                if not _link_stays_inside(relpath, target):
                    warnings.append(f"left out link {relpath} -> {target}: it points outside the run")
                    continue
                tarinfo.type = tarfile.SYMTYPE
                tarinfo.linkname = target
                tar.addfile(tarinfo)
                members.append(Member(relpath, "symlink", link_target=target))
            elif entry.is_dir(follow_symlinks=False):
                tarinfo.type = tarfile.DIRTYPE
                tar.addfile(tarinfo)
                members.append(Member(relpath, "dir"))
            else:
                if hasattr(stream, "member"):  # the compressor may pick a level for this member's bytes
                    stream.member(relpath, info.st_size)
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb", buffering=0) as handle:
                    tarinfo.size = os.fstat(fd).st_size
                    header = tarinfo.tobuf(tar.format, tar.encoding, tar.errors)
                    data_offset = tar.offset + len(header)
                    spans.append((data_offset, tarinfo.size))
                    tar.addfile(tarinfo, handle)
                if tar.offset != data_offset + -(-tarinfo.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE:
                    raise RuntimeError(f"tar header of {relpath!r} was not the size foreseen")
                members.append(Member(relpath, "file", tarinfo.size, None, offset=data_offset))
    return WriteResult(members, warnings, sink.length, sink.crc)


def _kind(tarinfo: tarfile.TarInfo) -> str:
    if tarinfo.isdir():
        return "dir"
    if tarinfo.isreg():
        return "file"
    if tarinfo.issym():
        return "symlink"
    raise HostileArchive(f"{tarinfo.name!r} is a {tarinfo.type!r} entry; run archives hold none")


def _check_member(tarinfo: tarfile.TarInfo, expected: Member | None) -> None:
    if expected is None:
        raise HostileArchive(f"{tarinfo.name!r} is not in the archive's manifest")
    kind = _kind(tarinfo)
    if (tarinfo.name, kind) != (expected.path, expected.kind):
        raise ArchiveInvalid(f"found {kind} {tarinfo.name!r} where the manifest has {expected.kind} {expected.path!r}")
    if kind == "file" and tarinfo.size != expected.size:
        raise ArchiveInvalid(f"{tarinfo.name!r} is {tarinfo.size} bytes; the manifest says {expected.size}")
    if kind == "symlink" and tarinfo.linkname != expected.link_target:
        raise ArchiveInvalid(f"link {tarinfo.name!r} points to {tarinfo.linkname!r}, not {expected.link_target!r}")


def manifest_from_tar(stream: BinaryIO) -> list[Member]:
    """Read a tar stream through and return its manifest (for an archive found without a record)."""
    members: list[Member] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=STREAM_BLOCK) as tar:
            for tarinfo in tar:
                kind = _kind(tarinfo)
                if kind == "file":
                    source = tar.extractfile(tarinfo)
                    assert source is not None
                    digest = hashlib.sha256()
                    while chunk := source.read(STREAM_BLOCK):
                        digest.update(chunk)
                    members.append(
                        Member(tarinfo.name, kind, tarinfo.size, digest.hexdigest(), offset=tarinfo.offset_data)
                    )
                elif kind == "symlink":
                    members.append(Member(tarinfo.name, kind, link_target=tarinfo.linkname))
                else:
                    members.append(Member(tarinfo.name, kind))
    except (tarfile.TarError, *CODEC_ERRORS) as error:
        raise ArchiveInvalid(f"the archive cannot be read: {error}") from error
    return members


def extract_tar(stream: BinaryIO, dest: Path, manifest: list[Member], *, hash_files: bool = True) -> None:
    """Extract a tar stream into the empty folder ``dest``, refusing anything unsafe or unlisted.

    Every member passes tarfile's ``data`` filter (no absolute paths, no ``..``, no links
    leaving ``dest``, no devices) and must match the manifest, file contents by SHA-256.
    """
    expected = iter(manifest)
    links: set[str] = set()
    folders = {""}
    count = 0
    dest_text = str(dest)
    reader = ForwardReader(stream)
    try:
        with tarfile.open(fileobj=reader, mode="r:", copybufsize=STREAM_BLOCK) as tar:  # type: ignore[call-overload]
            for tarinfo in tar:
                member = next(expected, None)
                try:
                    safe = tarfile.data_filter(tarinfo, dest_text)
                except tarfile.FilterError as error:
                    raise HostileArchive(f"refused {tarinfo.name!r}: {error}") from error
                try:
                    normal = str(safe_member_path(tarinfo.name))
                except ValueError:
                    normal = None
                if normal != tarinfo.name or safe.name != tarinfo.name:
                    raise HostileArchive(f"refused {tarinfo.name!r}: not a plain relative path")
                _check_member(tarinfo, member)
                assert member is not None
                parts = PurePosixPath(safe.name).parts
                if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
                    raise HostileArchive(f"refused {tarinfo.name!r}: it lies beneath a link")
                parent = "/".join(parts[:-1])
                if parent not in folders:
                    raise ArchiveInvalid(f"{tarinfo.name!r} comes before its folder {parent!r}")
                target = dest.joinpath(*parts)
                if member.kind == "dir":
                    folders.add(safe.name)
                    target.mkdir(mode=0o700, exist_ok=True)
                    os.chmod(target, safe.mode if safe.mode is not None else 0o755, follow_symlinks=False)
                elif member.kind == "symlink":
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
    reader: ForwardReader, tarinfo: tarfile.TarInfo, target: Path, member: Member, mode: int | None, hash_file: bool
) -> None:
    # The member's bytes are read straight from the stream at their offset (tarfile then seeks
    # past the padding to the next header): no copies, unlike ``extractfile``.
    reader.seek(tarinfo.offset_data)
    digest = hashlib.sha256()
    remaining = tarinfo.size
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb", buffering=0) as out:
        while remaining:
            view = reader.read_view(min(remaining, STREAM_BLOCK))
            if not view:
                raise ArchiveInvalid(f"{member.path!r} is cut short")
            if hash_file:
                digest.update(view)
            remaining -= len(view)
            while view:
                view = view[out.write(view) :]
    if hash_file and digest.hexdigest() != member.sha256:
        raise ArchiveInvalid(f"{member.path!r} does not match its recorded SHA-256")
    os.chmod(target, mode if mode is not None else 0o644)
    os.utime(target, (tarinfo.mtime, tarinfo.mtime))
