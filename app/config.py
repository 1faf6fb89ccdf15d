"""Settings of the product, read from the environment (SPEC §5) and checked before start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from croniter import croniter
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.names import NameRefused, check_email_address, check_visible_name

COMPRESSIONS = ("gzip", "bz2", "xz", "zstd")
DELETION_STRATEGIES = ("soft", "hard")
# What one (weekly) verification pass may read. Verifying ran at ~230 MB/s of archive on 2 cores
# (gzip and zstd alike; half JSON, half incompressible files; warm cache), so 50 GiB takes ~4
# minutes of CPU, ~9 from a 100 MB/s disk: a short, cheap pass even on a small machine. Up to
# 50 GiB of archives are all re-checked every week, 500 GiB every ten weeks; larger stores raise it.
VERIFY_MAX_BYTES_DEFAULT = 50 * 1024**3


class ConfigError(ValueError):
    """A setting is invalid; the message names the variable and what it must be."""


@dataclass(frozen=True)
class Settings:
    """Every lifecycle and deployment setting, validated."""

    scraper_data_path: Path
    archive_base_path: Path
    archive_after_days: int
    delete_after_days: int
    archive_compression: str
    deletion_strategy: str
    delete_grace_days: int
    # The deletion safety limit (app.lifecycle.deletion_limits): what one cleanup pass may delete
    # before an admin confirms, in runs and as a share of the archived runs.
    delete_max_per_pass: int
    delete_max_share: float
    restore_ttl_days: int
    secure_delete: bool
    archive_schedule: str
    cleanup_schedule: str
    snapshot_schedule: str
    alerts_schedule: str
    verify_schedule: str
    verify_max_bytes_per_run: int
    archive_batch_size: int
    archive_max_concurrency: int
    storage_alert_percent: int
    alert_webhook_url: str | None
    database_url: str | None
    redis_url: str
    # The proxies in front of the web app whose X-Forwarded-For/-Proto are believed: how many
    # (each one appends itself), or the addresses of the one proxy in front; 0 believes none.
    trusted_proxies: int | tuple[str, ...]
    # Failed logins (and failed API tokens, per address) refused with 429 once this many fail
    # within the window; only failures count, so logging in successfully never throttles.
    login_failures_per_user: int
    login_failures_per_address: int
    login_failure_window_seconds: int
    # Notices before deletion (SPEC §9): the daily digest to the owners of the runs the cleanup will
    # delete within delete_notice_days, by mail (SMTP_URL, from MAIL_FROM) and the alert webhook,
    # with links built on public_url.
    delete_notice_days: int
    notice_schedule: str
    smtp_url: str | None
    mail_from: str | None
    public_url: str

    @property
    def jobs_path(self) -> Path:
        return self.scraper_data_path / "jobs"

    @property
    def trash_path(self) -> Path:
        return self.scraper_data_path / "trash"


def _text(env: Mapping[str, Any], name: str, default: str | None) -> str | None:
    value = env.get(name)
    if value is None or str(value).strip() == "":
        return default
    return str(value).strip()


def _int(env: Mapping[str, Any], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = _text(env, name, str(default))
    try:
        value = int(raw)  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name} must be {bound}, got {value}")
    return value


def _bool(env: Mapping[str, Any], name: str, default: bool) -> bool:
    raw = _text(env, name, None)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, Any], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _text(env, name, default)
    value = raw.lower()  # type: ignore[union-attr]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _share(env: Mapping[str, Any], name: str, default: float) -> float:
    raw = _text(env, name, str(default))
    try:
        value = float(raw)  # type: ignore[arg-type]
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:  # also refuses nan and inf
        raise ConfigError(f"{name} must be a fraction above 0 and at most 1 (0.2 is a fifth), got {raw!r}")
    return value


def _cron(env: Mapping[str, Any], name: str, default: str) -> str:
    raw = _text(env, name, default)
    if not croniter.is_valid(raw) or len(raw.split()) != 5:  # type: ignore[union-attr]
        raise ConfigError(f"{name} must be a five-field cron expression such as '0 2 * * *', got {raw!r}")
    return raw  # type: ignore[return-value]


def _trusted_proxies(env: Mapping[str, Any]) -> int | tuple[str, ...]:
    raw = _text(env, "TRUSTED_PROXIES", "0")
    if raw.isdigit():  # type: ignore[union-attr]
        return _int(env, "TRUSTED_PROXIES", 0, minimum=0, maximum=10)
    addresses = tuple(part.strip() for part in raw.split(",") if part.strip())  # type: ignore[union-attr]
    try:
        if not addresses:
            raise ValueError("no address")
        return tuple(str(ipaddress.ip_address(address)) for address in addresses)
    except ValueError:
        raise ConfigError(
            f"TRUSTED_PROXIES must be a number of proxies (0-10) or a comma-separated list of IP addresses, got {raw!r}"
        ) from None


def masked_url(url: str) -> str:
    """The URL with its password replaced by ``***``, fit for a message or a log."""
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", url)


def _database_url(env: Mapping[str, Any]) -> str | None:
    raw = _text(env, "DATABASE_URL", None)
    if raw is None:
        return None
    try:
        backend, _, driver = make_url(raw).drivername.partition("+")
    except (ArgumentError, ValueError):
        backend = driver = None
    # The drivers we install: pysqlite (the stdlib) and psycopg 3; any other would fail on import.
    if (backend, driver) not in SUPPORTED_DATABASES:
        raise ConfigError(f"DATABASE_URL must be a sqlite:// or postgresql:// (psycopg) URL, got {masked_url(raw)!r}")
    return raw


SUPPORTED_DATABASES = {  # (backend, driver) as the URL names them; "" is the default driver
    ("sqlite", ""),
    ("sqlite", "pysqlite"),
    ("postgresql", ""),  # app.database_uri makes it psycopg 3, the driver we install
    ("postgres", ""),
    ("postgresql", "psycopg"),
}


@dataclass(frozen=True)
class SmtpServer:
    """Where the notices are mailed: ``smtp://`` (plain, STARTTLS when it logs in) or ``smtps://`` (TLS)."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None


def smtp_server(url: str) -> SmtpServer:
    """SMTP_URL read: ``smtp://host[:port]`` or ``smtps://[user:pass@]host[:port]``; ConfigError if malformed."""
    problem = f"SMTP_URL must be smtp://host:port or smtps://user:password@host:port, got {masked_url(url)!r}"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(problem) from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ConfigError(problem)
    tls = parts.scheme == "smtps"
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpServer(tls, parts.hostname, port or (465 if tls else 25), username, password)


# "address" or "Name <address>"; the name without the characters that would need quoting in a header.
_MAIL_FROM = re.compile(r'(?:(?P<name>[^<>"(),.:;@\[\]\\]*?) *<(?P<address>[^<>]+)>|(?P<bare>[^<>" ]+))')


def _mail_from(env: Mapping[str, Any], smtp_url: str | None) -> str | None:
    raw = _text(env, "MAIL_FROM", None)
    if raw is None:
        if smtp_url is not None:
            raise ConfigError("MAIL_FROM must be set when SMTP_URL is: the address the notices come from")
        return None
    form = _MAIL_FROM.fullmatch(raw)
    try:
        check_visible_name(raw, "MAIL_FROM")  # no line break: it becomes a mail header
        if form is None:
            raise NameRefused("not an address")
        check_email_address(form["address"] or form["bare"], "MAIL_FROM")
    except NameRefused:
        raise ConfigError(
            f"MAIL_FROM must be an address, or a name and an address such as 'Agar <agar@example.com>', got {raw!r}"
        ) from None
    return raw


def _public_url(env: Mapping[str, Any]) -> str:
    raw = _text(env, "PUBLIC_URL", "http://127.0.0.1:5000")
    parts = urlsplit(raw)  # type: ignore[arg-type]
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"PUBLIC_URL must be the site's http(s) address, like https://agar.example.com, got {raw!r}")
    return raw.rstrip("/")  # type: ignore[union-attr]


def load_settings(env: Mapping[str, Any] | None = None) -> Settings:
    """Read and validate the settings from ``env`` (the process environment by default)."""
    env = os.environ if env is None else env
    data_path = Path(_text(env, "SCRAPER_DATA_PATH", "./scraper_data")).expanduser().absolute()  # type: ignore[arg-type]
    archive_raw = _text(env, "ARCHIVE_BASE_PATH", None)
    archive_path = Path(archive_raw).expanduser().absolute() if archive_raw else data_path / "archive"

    archive_after = _int(env, "ARCHIVE_AFTER_DAYS", 7, minimum=0)
    delete_after = _int(env, "DELETE_AFTER_DAYS", 30, minimum=1)
    if delete_after <= archive_after:
        raise ConfigError(f"DELETE_AFTER_DAYS ({delete_after}) must exceed ARCHIVE_AFTER_DAYS ({archive_after})")

    webhook = _text(env, "ALERT_WEBHOOK_URL", None)
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise ConfigError(f"ALERT_WEBHOOK_URL must be an http(s) URL, got {webhook!r}")
    redis_url = _text(env, "REDIS_URL", "redis://127.0.0.1:6379/0")
    smtp_url = _text(env, "SMTP_URL", None)
    if smtp_url is not None:
        smtp_server(smtp_url)  # refuses a malformed one now, not at the first notice
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):  # type: ignore[union-attr]
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {redis_url!r}")

    return Settings(
        scraper_data_path=data_path,
        archive_base_path=archive_path,
        archive_after_days=archive_after,
        delete_after_days=delete_after,
        archive_compression=_choice(env, "ARCHIVE_COMPRESSION", "gzip", COMPRESSIONS),
        deletion_strategy=_choice(env, "DELETION_STRATEGY", "soft", DELETION_STRATEGIES),
        delete_grace_days=_int(env, "DELETE_GRACE_DAYS", 7, minimum=0),
        delete_max_per_pass=_int(env, "DELETE_MAX_PER_PASS", 1000, minimum=1),
        delete_max_share=_share(env, "DELETE_MAX_SHARE", 0.2),
        restore_ttl_days=_int(env, "RESTORE_TTL_DAYS", 7, minimum=1),
        secure_delete=_bool(env, "SECURE_DELETE", False),
        archive_schedule=_cron(env, "ARCHIVE_SCHEDULE", "0 2 * * *"),
        cleanup_schedule=_cron(env, "CLEANUP_SCHEDULE", "0 3 * * *"),
        snapshot_schedule=_cron(env, "SNAPSHOT_SCHEDULE", "0 * * * *"),
        alerts_schedule=_cron(env, "ALERTS_SCHEDULE", "*/15 * * * *"),
        verify_schedule=_cron(env, "VERIFY_SCHEDULE", "0 4 * * 0"),
        verify_max_bytes_per_run=_int(env, "VERIFY_MAX_BYTES_PER_RUN", VERIFY_MAX_BYTES_DEFAULT, minimum=1),
        archive_batch_size=_int(env, "ARCHIVE_BATCH_SIZE", 100, minimum=1, maximum=10_000),
        archive_max_concurrency=_int(env, "ARCHIVE_MAX_CONCURRENCY", 2, minimum=1, maximum=256),
        storage_alert_percent=_int(env, "STORAGE_ALERT_PERCENT", 80, minimum=1, maximum=100),
        alert_webhook_url=webhook,
        database_url=_database_url(env),
        redis_url=redis_url,  # type: ignore[arg-type]
        trusted_proxies=_trusted_proxies(env),
        login_failures_per_user=_int(env, "LOGIN_FAILURES_PER_USER", 10, minimum=1, maximum=10_000),
        login_failures_per_address=_int(env, "LOGIN_FAILURES_PER_ADDRESS", 50, minimum=1, maximum=100_000),
        login_failure_window_seconds=_int(env, "LOGIN_FAILURE_WINDOW_SECONDS", 900, minimum=1, maximum=86_400),
        delete_notice_days=_int(env, "DELETE_NOTICE_DAYS", 3, minimum=1, maximum=365),
        notice_schedule=_cron(env, "NOTICE_SCHEDULE", "0 8 * * *"),
        smtp_url=smtp_url,
        mail_from=_mail_from(env, smtp_url),
        public_url=_public_url(env),
    )
