"""Folder names and archive paths (SPEC §2)."""

import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import PurePosixPath

import pytest

from app.lifecycle.naming import (
    BadJobId,
    archive_relpath,
    escape_name,
    find_run_folder,
    folder_name_for,
    native_name,
    parse_job_id,
    parse_run_folder,
    run_folder_name,
    run_folder_path,
    safe_member_path,
)

JOB = uuid.UUID("8dafff36-6b15-478a-88fc-19cdbbcfca5f")


def test_folder_name_is_the_utc_start():
    assert folder_name_for(datetime(2025, 1, 13, 14, 30, 52, 999, tzinfo=UTC)) == "20250113_143052"


def test_folder_name_converts_other_zones_to_utc():
    tokyo = timezone(timedelta(hours=9))
    assert folder_name_for(datetime(2025, 1, 14, 1, 0, 0, tzinfo=tokyo)) == "20250113_160000"


def test_folder_name_always_has_a_four_digit_year():
    assert folder_name_for(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "09990102_030405"


def test_folder_name_refuses_naive_times():
    with pytest.raises(ValueError):
        folder_name_for(datetime(2025, 1, 13, 14, 30, 52))


def test_run_folder_joins_name_and_id():
    assert run_folder_name("20250113_143052", JOB) == "20250113_143052_8dafff36-6b15-478a-88fc-19cdbbcfca5f"


def test_legacy_run_folder_is_the_bare_id():
    assert run_folder_name(None, JOB) == str(JOB)


@pytest.mark.parametrize("bad", ["2025-01-13", "../../etc", "20250113_1430", "20250113_143052/x"])
def test_run_folder_refuses_malformed_folder_names(bad):
    with pytest.raises(ValueError):
        run_folder_name(bad, JOB)


def test_archive_path_is_placed_by_the_runs_start():
    assert archive_relpath("20250113_143052", JOB, "gzip") == PurePosixPath(
        "2025/01/20250113_143052_8dafff36-6b15-478a-88fc-19cdbbcfca5f.tar.gz"
    )


@pytest.mark.parametrize(("codec", "ext"), [("bz2", "bz2"), ("xz", "xz"), ("zstd", "zst")])
def test_archive_extension_follows_the_codec(codec, ext):
    assert archive_relpath("20241231_235959", JOB, codec).name.endswith(f".tar.{ext}")
    assert archive_relpath("20241231_235959", JOB, codec).parts[:2] == ("2024", "12")


def test_archive_path_refuses_unknown_codec():
    with pytest.raises(ValueError):
        archive_relpath("20250113_143052", JOB, "rar")


def test_parse_run_folder_reads_both_forms():
    assert parse_run_folder(f"20250113_143052_{JOB}") == ("20250113_143052", JOB)
    assert parse_run_folder(str(JOB)) == (None, JOB)
    assert parse_run_folder("notes.txt") is None
    assert parse_run_folder(f"x_{JOB}") is None


def test_find_run_folder_prefers_the_named_folder_then_the_legacy_one(tmp_path):
    assert find_run_folder(tmp_path, "20250113_143052", JOB) is None
    legacy = tmp_path / str(JOB)
    legacy.mkdir()
    assert find_run_folder(tmp_path, "20250113_143052", JOB) == legacy
    named = run_folder_path(tmp_path, "20250113_143052", JOB)
    named.mkdir()
    assert find_run_folder(tmp_path, "20250113_143052", JOB) == named


def test_find_run_folder_ignores_symlinks(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / str(JOB)).symlink_to(target)
    assert find_run_folder(tmp_path, None, JOB) is None


@pytest.mark.parametrize("text", [str(JOB), str(JOB).upper(), f" {JOB} "])
def test_parse_job_id_accepts_canonical_uuids(text):
    assert parse_job_id(text) == JOB


@pytest.mark.parametrize(
    "text", ["", "42", "../etc/passwd", JOB.hex, "{" + str(JOB) + "}", str(JOB) + "x", "urn:uuid:" + str(JOB)]
)
def test_parse_job_id_refuses_everything_else(text):
    with pytest.raises(BadJobId):
        parse_job_id(text)


@pytest.mark.parametrize(
    ("raw", "clean"), [("a/b.json", "a/b.json"), ("./a//b", "a/b"), ("logs/run.log", "logs/run.log")]
)
def test_safe_member_path_normalises(raw, clean):
    assert str(safe_member_path(raw)) == clean


@pytest.mark.parametrize("raw", ["/etc/passwd", "../x", "a/../../x", "a/..", "", ".", "a\x00b"])
def test_safe_member_path_refuses_escapes(raw):
    with pytest.raises(ValueError):
        safe_member_path(raw)


def test_a_backslash_is_an_ordinary_character_of_a_posix_name():
    # Issue 9: refusing it made a run holding back\slash.txt archive but never restore.
    assert str(safe_member_path("a\\..\\b")) == "a\\..\\b"
    assert str(safe_member_path("dir/back\\slash.txt")) == "dir/back\\slash.txt"


NAMES = [
    "plain.txt",
    "back\\slash.txt",
    "new\nline.json",
    "-rf --no-preserve-root",
    "x" * 255,
    os.fsdecode(b"caf\xe9-latin1.html"),
    "tab\tand\rreturn",
    "a\\x41 literal",
    "\x7f\x01 controls",
    "ünïcode ✓.txt",
]


@pytest.mark.parametrize("native", NAMES)
def test_every_name_has_an_escaped_text_form_that_maps_back_to_its_bytes(native):
    escaped = escape_name(native)
    escaped.encode("utf-8")  # plain text for the database, JSON and pages
    assert "\n" not in escaped and "\x00" not in escaped
    assert native_name(escaped) == native
    assert os.fsencode(native_name(escaped)) == os.fsencode(native)


def test_names_that_need_no_escape_are_their_own_escaped_form():
    for name in ("results.json", "screens/home page.png", "ünïcode ✓.txt", "-rf"):
        assert escape_name(name) == name


def test_undecodable_bytes_show_as_hex_and_a_lone_backslash_is_malformed():
    assert escape_name(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    with pytest.raises(ValueError):
        native_name("a\\b")
