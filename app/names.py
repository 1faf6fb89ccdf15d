"""What a name shown to people may hold (run names, scraper names, usernames), and what an email address may be."""

from __future__ import annotations

import re
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


# An address the product mails (a user's email, MAIL_FROM): a dot-atom local part and a host name.
# Deliberately narrower than RFC 5322 (no quoted local parts, comments or display names): what a
# person types, and nothing that could end a mail header line.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def check_email_address(value: str, field: str) -> None:
    """Refuse ``value`` unless it is a plain email address (``name@example.com``, at most 254 characters)."""
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise NameRefused(f"{field} must be an email address such as name@example.com, got {value[:60]!r}")
