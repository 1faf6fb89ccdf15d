"""What a name shown to people may hold: run names, scraper names and usernames."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# Control (Cc: C0, DEL, C1), format (Cf: bidi overrides and isolates U+202A-U+202E, U+2066-U+2069,
# zero-width U+200B-U+200D, U+2060, U+FEFF, marks), lone surrogates (Cs) and line or paragraph
# separators: each can make a name display as something it is not, or break a log line.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class NameRefused(ValueError):
    """A name holds a character that does not show as itself."""


def check_visible_name(value: str, field: str) -> None:
    """Refuse ``value`` if it holds a control, bidi, zero-width or other invisible formatting character."""
    for position, character in enumerate(value):
        if unicodedata.category(character) in _HIDDEN_CATEGORIES:
            raise NameRefused(
                f"{field} must not contain control, bidi or zero-width characters "
                f"(U+{ord(character):04X} at position {position})"
            )


def field_with_nul(fields: Iterable[tuple[str, str]]) -> str | None:
    """The (printable) name of the first field whose name or value holds a NUL byte, or None.

    PostgreSQL text cannot hold one (psycopg raises): every door refuses it with its own 400.
    """
    for name, value in fields:
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "")[:40]
    return None
