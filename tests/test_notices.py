"""Notices before deletion: one digest a day per owner, by a real SMTP server and a real webhook on
loopback, and the signed "keep 30 more days" link that works once, as the owner, and for nothing else."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from croniter import croniter
from flask import current_app, g
from sqlalchemy import func, select

from app.auth.users import create_user
from app.config import ConfigError, load_settings
from app.extensions import db
from app.lifecycle import archival
from app.lifecycle.notices import KeepRefused, keep_from_notice, keep_token, read_keep_link
from app.lifecycle.policies import add_policy
from app.models import Alert, DeletionNotice, Job, LifecycleEvent
from app.notices import send_notices_now
from app.schedule import scheduled_tasks, tick
from tests.support import new_run, run_burst_worker, webhook_listener

PUBLIC = "https://agar.example.com/base"
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [message for message in self.messages if message["To"] == address]


class SmtpServer:
    """A real SMTP server on loopback (aiosmtpd), started and stopped by the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = SmtpServer(free_port())
    yield server
    server.stop()


@pytest.fixture
def webhook():
    """A real HTTP listener on loopback, keeping the JSON bodies POSTed to it."""
    with webhook_listener() as server:
        yield server


@pytest.fixture
def site(lc_with, smtp, webhook):
    """A site that mails through the loopback SMTP server and posts to the loopback webhook."""
    return lc_with(
        SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
        MAIL_FROM="Agar <agar@example.com>",
        PUBLIC_URL=PUBLIC + "/",
        ALERT_WEBHOOK_URL=webhook.url,
    )


def user(name, email=None, admin=False):
    account, _password, _token = create_user(db.session, name, PASSWORD, admin=admin, email=email)
    return account


def archived_run(lc, clock, *, days_ago, owner, name, scraper="books-toscrape", **protection):
    job = new_run(
        lc, clock, {"results.json": '{"items": []}'}, days_ago=days_ago, name=name, scraper=scraper, owner=owner
    )
    archival.archive_run(lc, job.id, actor="scheduler")
    job = lc.session.get(Job, job.id)
    for column, value in protection.items():
        setattr(job, column, value)
    lc.session.commit()
    return job


def policy(lc, name, pattern, **fields):
    add_policy(
        lc.session,
        {"name": name, "scraper_pattern": pattern, "archive_after_days": 7, "delete_after_days": 30, **fields},
        actor="ada",
        reason="the test's rules",
        now=lc.now(),
    )
    lc.session.commit()


def next_cleanup(moment: datetime) -> datetime:
    return croniter("0 3 * * *", moment).get_next(datetime)


@pytest.fixture
def estate(site, clock):
    """Owners and runs around the three-day horizon (DELETE_AFTER_DAYS 30, DELETE_NOTICE_DAYS 3)."""
    lc = site
    max_, olga, nomail = user("max", "max@example.com"), user("olga", "olga@example.com"), user("nomail")
    policy(lc, "legal", "legal-*", legal_hold=True)
    policy(lc, "dailies", "daily-*", keep_last=1)
    runs = {
        "soon": archived_run(lc, clock, days_ago=28, owner=max_.id, name="soon"),
        "overdue": archived_run(lc, clock, days_ago=31, owner=max_.id, name="overdue"),
        "later": archived_run(lc, clock, days_ago=20, owner=max_.id, name="later"),
        "retained": archived_run(
            lc, clock, days_ago=29, owner=max_.id, name="retained", retain_until=clock.now + timedelta(days=10)
        ),
        "forever": archived_run(lc, clock, days_ago=29, owner=max_.id, name="forever", keep_forever=True),
        "quotes": archived_run(lc, clock, days_ago=29, owner=olga.id, name="quotes", scraper="quotes"),
        "held": archived_run(lc, clock, days_ago=35, owner=olga.id, name="held", scraper="legal-filings"),
        "daily-old": archived_run(lc, clock, days_ago=29.5, owner=olga.id, name="daily-old", scraper="daily-news"),
        "daily-new": archived_run(lc, clock, days_ago=29, owner=olga.id, name="daily-new", scraper="daily-news"),
        "nomail": archived_run(lc, clock, days_ago=29, owner=nomail.id, name="nomail"),
        "nobody": archived_run(lc, clock, days_ago=29, owner=None, name="nobody"),
    }
    return {"lc": lc, "runs": runs, "max": max_, "olga": olga, "nomail": nomail}


def text_of(message) -> str:
    return message.get_content().replace("\r\n", "\n")


def listed_folders(message) -> set[str]:
    return set(re.findall(r"^  folder:   (\S+)$", text_of(message), re.MULTILINE))


def folder(job) -> str:
    return f"{job.folder_name}_{job.id}"


def keep_links(message) -> dict[str, str]:
    """The keep link of each run in a digest, by run name."""
    text = text_of(message)
    return dict(re.findall(r"^\* (.+)$(?:\n  .*$)*?\n  keep 30 more days: (\S+)$", text, re.MULTILINE))


# -- the digest -------------------------------------------------------------------------------------


def test_each_owner_gets_one_digest_listing_exactly_the_runs_deleted_within_the_notice_days(
    estate, smtp, webhook, clock
):
    smtp.start()
    runs = estate["runs"]
    report = send_notices_now(clock=clock)

    assert sorted(m["To"] for m in smtp.inbox.messages) == ["max@example.com", "olga@example.com"]
    to_max, to_olga = smtp.inbox.to("max@example.com")[0], smtp.inbox.to("olga@example.com")[0]
    # keep_forever, a retain_until past the horizon, not yet due, a legal hold and keep_last are left out
    assert listed_folders(to_max) == {folder(runs["soon"]), folder(runs["overdue"])}
    assert listed_folders(to_olga) == {folder(runs["quotes"]), folder(runs["daily-old"])}
    assert to_max["From"] == "Agar <agar@example.com>" and to_max["Auto-Submitted"] == "auto-generated"
    assert to_max["Subject"].startswith("Agar: 2 of your runs will be deleted from ")
    text = text_of(to_max)
    # each run: name, scraper, folder, deletion moment (the first cleanup pass once due), size, links
    soon = runs["soon"]
    deletes = next_cleanup(soon.completed_at + timedelta(days=30))
    block = text[text.index("* soon") :]
    assert f"  scraper:  books-toscrape\n  folder:   {folder(soon)}\n" in block
    assert f"  deleted:  {deletes:%Y-%m-%d %H:%M} UTC\n" in block
    assert re.search(r"  size:     \d+ (B|KB) \(archived\)\n", block)
    assert f"  the run:  {PUBLIC}/runs/{soon.id}\n" in block
    overdue_block = text[text.index("* overdue") :]
    assert f"  deleted:  {next_cleanup(clock.now):%Y-%m-%d %H:%M} UTC\n" in overdue_block  # due now: the next pass
    links = keep_links(to_max)
    assert set(links) == {"soon", "overdue"} and all(link.startswith(f"{PUBLIC}/keep/") for link in links.values())

    # the webhook: one JSON POST per owner, in the alerts' envelope, with the same runs and absolute links
    by_owner = {body["data"]["owner"]["username"]: body for body in webhook.received}
    assert sorted(by_owner) == ["max", "nomail", "olga"] and len(webhook.received) == 3
    assert all(body["kind"] == "deletion_notice" and body["severity"] == "info" for body in webhook.received)
    posted = {run["name"]: run for run in by_owner["max"]["data"]["runs"]}
    assert set(posted) == {"soon", "overdue"}
    assert posted["soon"]["folder"] == folder(soon) and posted["soon"]["scraper"] == "books-toscrape"
    assert posted["soon"]["deletes_at"] == deletes.isoformat()
    assert posted["soon"]["size_bytes"] == soon.archive_size_bytes
    assert posted["soon"]["url"] == f"{PUBLIC}/runs/{soon.id}" and posted["soon"]["keep_url"].startswith(
        f"{PUBLIC}/keep/"
    )
    assert [run["name"] for run in by_owner["nomail"]["data"]["runs"]] == ["nomail"]
    assert by_owner["max"]["message"].startswith("2 runs of max will be deleted within 3 days")

    assert report.unowned == 1 and report.failed == [] and len(report.sent) == 5
    rows = db.session.scalars(select(DeletionNotice)).all()
    assert len(rows) == 2 * 2 + 2 * 2 + 1  # max and olga by mail and webhook, nomail by webhook
    soon_rows = [row for row in rows if row.job_id == soon.id]
    assert {(row.channel, row.recipient) for row in soon_rows} == {("email", "max@example.com"), ("webhook", "webhook")}
    assert all(
        row.deletes_at == deletes and row.used_at is None and row.owner_id == soon.created_by for row in soon_rows
    )


def test_no_second_digest_the_same_day_and_a_new_one_the_next_day(estate, smtp, webhook, clock, runner):
    smtp.start()
    send_notices_now(clock=clock)
    assert len(smtp.inbox.messages) == 2 and len(webhook.received) == 3
    again = send_notices_now(clock=clock)
    assert again.sent == [] and again.already_told == 9
    assert len(smtp.inbox.messages) == 2 and len(webhook.received) == 3
    clock.advance(days=1)
    send_notices_now(clock=clock)  # still due, not kept: told again, one digest each
    assert sorted(m["To"] for m in smtp.inbox.messages[2:]) == ["max@example.com", "olga@example.com"]
    assert len(webhook.received) == 6


def test_the_command_sends_and_says_to_whom(estate, smtp):
    smtp.start()
    result = current_app.test_cli_runner().invoke(args=["notices", "send"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "sent email to max@example.com (max): 2 run(s)" in lines
    assert "sent webhook to webhook (nomail): 1 run(s)" in lines
    assert "5 digest(s) sent; 0 run(s) already told today; 1 run(s) without an owner" in lines
    again = current_app.test_cli_runner().invoke(args=["notices", "send"])
    assert again.exit_code == 0 and "0 digest(s) sent; 9 run(s) already told today" in again.output
    assert len(smtp.inbox.messages) == 2


def test_owners_nobody_can_reach_are_named(lc_with, clock):
    lc = lc_with()  # no SMTP_URL, no webhook
    owner = user("max", "max@example.com")
    archived_run(lc, clock, days_ago=29, owner=owner.id, name="soon")
    report = send_notices_now(clock=clock)
    assert report.sent == [] and report.unreachable == ["max"]
    assert db.session.scalar(select(func.count()).select_from(DeletionNotice)) == 0


# -- when the mail server is down -----------------------------------------------------------------------


def test_a_dead_mail_server_opens_notice_failed_and_the_next_pass_sends_and_resolves_it(lc_with, smtp, clock):
    lc = lc_with(SMTP_URL=f"smtp://127.0.0.1:{smtp.port}", MAIL_FROM="agar@example.com", PUBLIC_URL=PUBLIC)
    owner = user("max", "max@example.com")
    job = archived_run(lc, clock, days_ago=29, owner=owner.id, name="soon")

    result = current_app.test_cli_runner().invoke(args=["notices", "send"])  # nobody listens on the port
    assert result.exit_code == 1 and "failed: email to max@example.com (max, 1 runs): " in result.output
    alert = db.session.scalars(select(Alert).where(Alert.kind == "notice_failed")).one()
    assert alert.resolved_at is None and alert.data["subject"] == "email"
    assert "could not be sent by mail (SMTP_URL)" in alert.message and "max@example.com" in alert.message
    assert db.session.scalar(select(func.count()).select_from(DeletionNotice)) == 0  # nothing counts as told

    from app import tasks

    with pytest.raises(tasks.NoticesUndelivered):  # the scheduled task fails loudly, so RQ tries again
        tasks.send_deletion_notices()

    smtp.start()
    report = send_notices_now(clock=clock)
    assert report.failed == [] and [m["To"] for m in smtp.inbox.messages] == ["max@example.com"]
    assert folder(job) in text_of(smtp.inbox.messages[0])
    db.session.refresh(alert)
    assert alert.resolved_at == clock.now
    assert db.session.scalars(select(DeletionNotice.channel)).all() == ["email"]


def test_the_scheduled_task_runs_on_a_real_worker_and_mails_the_digest(estate, smtp, process_env, clock):
    from app.tasks import enqueue

    smtp.start()
    settings = estate["lc"].settings
    env = {
        **process_env,
        "SMTP_URL": settings.smtp_url,
        "MAIL_FROM": settings.mail_from,
        "PUBLIC_URL": PUBLIC,
        "SCRAPER_DATA_PATH": str(settings.scraper_data_path),
    }
    db.session.commit()
    enqueue("app.tasks.send_deletion_notices", timeout="short")
    run_burst_worker(env)
    assert sorted(m["To"] for m in smtp.inbox.messages) == ["max@example.com", "olga@example.com"]
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(DeletionNotice)) == 4


# -- the keep link ---------------------------------------------------------------------------------------


class Visitor:
    """A browser that is not logged in: it gets each page's CSRF token and posts it back."""

    def __init__(self, client):
        self.client = client

    def request(self, method, path, **kwargs):
        g.pop("csrf_token", None)  # each request starts as in production (see tests/test_web.py)
        db.session.commit()
        return getattr(self.client, method)(path, **kwargs)

    def get(self, path):
        return self.request("get", path)

    def post(self, path, token):
        return self.request("post", path, data={"csrf_token": token} if token else {})


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def path_of(link: str) -> str:
    assert link.startswith(PUBLIC)
    return link[len(PUBLIC) :]


@pytest.fixture
def sent(estate, smtp, clock):
    smtp.start()
    send_notices_now(clock=clock)
    return {**estate, "links": keep_links(smtp.inbox.to("max@example.com")[0])}


def extensions(job):
    return db.session.scalars(
        select(LifecycleEvent).where(LifecycleEvent.job_id == job.id, LifecycleEvent.action == "extend")
    ).all()


def test_following_the_link_asks_first_then_keeps_the_run_once_as_its_owner(sent, webhook):
    job = sent["runs"]["soon"]
    visitor = Visitor(current_app.test_client())  # not logged in: the token is the authority
    page = visitor.get(path_of(sent["links"]["soon"]))
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Keep this run 30 more days?" in page.text and folder(job) in page.text and "max" in page.text
    assert '<button type="submit" class="primary">Keep 30 more days</button>' in page.text
    visitor.get(path_of(sent["links"]["soon"]))  # a mail scanner following it twice changes nothing
    db.session.refresh(job)
    assert job.retain_until is None and extensions(job) == []
    assert db.session.scalars(select(DeletionNotice.used_at).where(DeletionNotice.job_id == job.id)).all() == [
        None,
        None,
    ]

    refused = visitor.post(path_of(sent["links"]["soon"]), token=None)  # no CSRF token: nothing happens
    assert refused.status_code == 400
    db.session.refresh(job)
    assert job.retain_until is None

    kept = visitor.post(path_of(sent["links"]["soon"]), token=csrf_of(page))
    assert kept.status_code == 200 and "is kept until" in kept.text
    notice = db.session.scalars(
        select(DeletionNotice).where(DeletionNotice.job_id == job.id, DeletionNotice.channel == "email")
    ).one()
    db.session.refresh(job)
    assert job.retain_until == notice.deletes_at + timedelta(days=30)
    [event] = extensions(job)
    assert event.actor == "max" and event.outcome == "succeeded"
    assert event.reason.startswith("kept from the deletion notice of ")
    assert notice.used_at is not None

    again = visitor.post(path_of(sent["links"]["soon"]), token=csrf_of(page))
    assert again.status_code == 409 and "used already" in again.text
    webhook_copy = next(run for body in webhook.received for run in body["data"]["runs"] if run["id"] == str(job.id))
    copy = visitor.get(path_of(webhook_copy["keep_url"]))  # the same notice's other link is spent with it
    assert copy.status_code == 409
    db.session.refresh(job)
    assert job.retain_until == notice.deletes_at + timedelta(days=30) and len(extensions(job)) == 1


def test_the_run_page_shows_the_notice_sent(sent):
    job = sent["runs"]["soon"]
    visitor = Visitor(current_app.test_client())
    login = visitor.get("/login")
    visitor.client.post("/login", data={"username": "max", "password": PASSWORD, "csrf_token": csrf_of(login)})
    page = visitor.get(f"/runs/{job.id}")
    assert page.status_code == 200
    notices = page.text[page.text.index("<dt>Deletion notice</dt>") :]
    notices = notices[: notices.index("</dd>")]
    assert "to max &lt;max@example.com&gt; by email" in notices and "to the alert webhook, for max" in notices
    notice = db.session.scalars(select(DeletionNotice).where(DeletionNotice.job_id == job.id)).first()
    assert f"sent {notice.sent_at:%Y-%m-%d %H:%M} UTC" in notices
    assert f"deletion at {notice.deletes_at:%Y-%m-%d %H:%M} UTC" in notices
    later = visitor.get(f"/runs/{sent['runs']['later'].id}")
    assert "<dt>Deletion notice</dt>" not in later.text


def test_a_tampered_foreign_or_unknown_link_changes_nothing(sent):
    job = sent["runs"]["soon"]
    visitor = Visitor(current_app.test_client())
    link = path_of(sent["links"]["soon"])
    token = link.rsplit("/", 1)[1]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for path, status, words in (
        (f"/keep/{tampered}", 400, "not one Agar made"),
        (f"/keep/{token[:20]}", 400, "not one Agar made"),
        ("/keep/" + "x" * 2000, 400, "not one Agar made"),
    ):
        page = visitor.get(path)
        assert page.status_code == status and words in page.text, path
    notice = db.session.scalars(
        select(DeletionNotice).where(DeletionNotice.job_id == job.id, DeletionNotice.channel == "email")
    ).one()
    # signed by another site's key: not ours
    assert visitor.get(f"/keep/{keep_token('another-site', notice)}").status_code == 400
    # our key, but naming a run the notice was not about (olga's): refused
    other = sent["runs"]["quotes"]
    foreign = DeletionNotice(
        token_id=notice.token_id, job_id=other.id, owner_id=other.created_by, deletes_at=notice.deletes_at
    )
    page = visitor.get(f"/keep/{keep_token(current_app.config['SECRET_KEY'], foreign)}")
    assert page.status_code == 403
    assert visitor.post(f"/keep/{keep_token(current_app.config['SECRET_KEY'], foreign)}", token=None).status_code in (
        400,
        403,
    )
    # our key, a token id we never sent
    unknown = DeletionNotice(token_id="0" * 32, job_id=job.id, owner_id=job.created_by, deletes_at=notice.deletes_at)
    assert visitor.get(f"/keep/{keep_token(current_app.config['SECRET_KEY'], unknown)}").status_code == 404
    db.session.refresh(job)
    db.session.refresh(other)
    assert job.retain_until is None and other.retain_until is None and extensions(job) == extensions(other) == []


def test_a_link_expires_when_the_run_is_deleted(sent, clock):
    lc = sent["lc"]
    job = sent["runs"]["soon"]
    token = path_of(sent["links"]["soon"]).rsplit("/", 1)[1]
    key = current_app.config["SECRET_KEY"]
    notice = db.session.scalars(
        select(DeletionNotice).where(DeletionNotice.job_id == job.id, DeletionNotice.channel == "email")
    ).one()
    assert read_keep_link(lc, token, secret_key=key).keep_until == notice.deletes_at + timedelta(days=30)
    clock.now = notice.deletes_at
    with pytest.raises(KeepRefused) as refused:
        keep_from_notice(lc, token, secret_key=key)
    assert refused.value.kind == "expired"
    # through the page too: a notice whose deletion moment has passed
    notice.deletes_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    db.session.commit()
    page = Visitor(current_app.test_client()).get(f"/keep/{keep_token(key, notice)}")
    assert page.status_code == 410 and "This link expired at" in page.text
    db.session.refresh(job)
    assert job.retain_until is None and extensions(job) == [] and notice.used_at is None


def test_a_link_does_not_shorten_a_longer_retention_nor_keep_a_deleted_run(sent):
    lc, key = sent["lc"], current_app.config["SECRET_KEY"]
    soon, overdue = sent["runs"]["soon"], sent["runs"]["overdue"]
    soon.retain_until = datetime.now(UTC) + timedelta(days=90)  # extended by hand since the notice
    overdue.keep_forever = True
    db.session.commit()
    for job in (soon, overdue):
        token = path_of(sent["links"][job.name]).rsplit("/", 1)[1]
        with pytest.raises(KeepRefused) as refused:
            keep_from_notice(lc, token, secret_key=key)
        assert refused.value.kind == "conflict" and "already" in refused.value.message
    assert extensions(soon) == extensions(overdue) == []
    assert db.session.scalar(select(func.count()).where(DeletionNotice.used_at.is_not(None))) == 0


# -- settings, users, schedule ----------------------------------------------------------------------------


def test_notice_settings_are_checked_at_start_up():
    base = {"SMTP_URL": "smtp://mail.example.com:2525", "MAIL_FROM": "Agar <agar@example.com>"}
    settings = load_settings(base)
    assert (settings.delete_notice_days, settings.notice_schedule) == (3, "0 8 * * *")
    assert settings.public_url == "http://127.0.0.1:5000" and settings.smtp_url == base["SMTP_URL"]
    assert load_settings({"PUBLIC_URL": "https://agar.example.com/"}).public_url == "https://agar.example.com"
    assert load_settings({}).smtp_url is None and load_settings({}).mail_from is None
    assert load_settings({**base, "SMTP_URL": "smtps://agar:s%40cret@mail.example.com"}).smtp_url.startswith("smtps")
    for bad, names in (
        ({"SMTP_URL": "http://mail.example.com"}, "SMTP_URL"),
        ({"SMTP_URL": "smtp://mail.example.com:99999"}, "SMTP_URL"),
        ({"SMTP_URL": "smtp://"}, "SMTP_URL"),
        ({"SMTP_URL": "smtp://mail.example.com:25/path?x=1"}, "SMTP_URL"),
        ({"MAIL_FROM": None}, "MAIL_FROM"),
        ({"MAIL_FROM": "not an address"}, "MAIL_FROM"),
        ({"MAIL_FROM": "agar@example.com\r\nBcc: everyone@example.com"}, "MAIL_FROM"),
        ({"PUBLIC_URL": "agar.example.com"}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "ftp://agar.example.com"}, "PUBLIC_URL"),
        ({"DELETE_NOTICE_DAYS": "0"}, "DELETE_NOTICE_DAYS"),
        ({"DELETE_NOTICE_DAYS": "soon"}, "DELETE_NOTICE_DAYS"),
        ({"NOTICE_SCHEDULE": "every morning"}, "NOTICE_SCHEDULE"),
    ):
        env = {key: value for key, value in {**base, **bad}.items() if value is not None}
        with pytest.raises(ConfigError, match=names):
            load_settings(env)
    with pytest.raises(ConfigError) as hidden:
        load_settings({**base, "SMTP_URL": "ftp://agar:hunter22@mail.example.com"})
    assert "hunter22" not in str(hidden.value)


def test_the_notices_follow_notice_schedule(make_app, redis_db):
    tasks = {t.name: t for t in scheduled_tasks(load_settings({}))}
    assert tasks["notices"].cron == "0 8 * * *" and tasks["notices"].function == "app.tasks.send_deletion_notices"
    app = make_app(NOTICE_SCHEDULE="30 6 * * 1-5")
    task = {t.name: t for t in scheduled_tasks(app.extensions["agar.settings"])}["notices"]
    since, now = datetime(2025, 1, 10, 0, 0, tzinfo=UTC), datetime(2025, 1, 14, 0, 0, tzinfo=UTC)  # Friday to Tuesday
    assert tick(redis_db, [task], since, now) == ["sched-notices-20250110T0630", "sched-notices-20250113T0630"]


def test_users_get_an_email_address_checked_at_the_door(runner):
    result = runner.invoke(args=["users", "create", "max", "--email", "max@example.com"])
    assert result.exit_code == 0, result.output
    from app.models import User

    assert db.session.scalar(select(User.email).where(User.username == "max")) == "max@example.com"
    for bad in ("max", "max@", "max@example.com\nBcc: x@example.com", "a b@example.com", "x" * 250 + "@example.com"):
        refused = runner.invoke(args=["users", "create", "olga", "--email", bad])
        assert refused.exit_code != 0 and "email must be an email address" in refused.output, bad
    assert db.session.scalar(select(func.count()).where(User.username == "olga")) == 0
    assert runner.invoke(args=["users", "set-email", "max", "max@elsewhere.example"]).exit_code == 0
    assert db.session.scalar(select(User.email).where(User.username == "max")) == "max@elsewhere.example"
    assert runner.invoke(args=["users", "set-email", "max", "nope"]).exit_code != 0
    assert runner.invoke(args=["users", "set-email", "max", ""]).exit_code == 0
    assert db.session.scalar(select(User.email).where(User.username == "max")) is None
