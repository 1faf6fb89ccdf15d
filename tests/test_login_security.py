"""Logging in, as an attacker would try it: redirects, revoked sessions, passwords, throttling, timing."""

import re
import statistics
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from app.auth.users import user_for_password
from app.config import ConfigError, load_settings
from app.extensions import db, redis_connection
from app.models import Base, User
from tests.test_web import PASSWORD, Browser, csrf_of

# -- redirects after logging in ----------------------------------------------------------------------

HOSTILE_NEXT = [  # raw query strings, as an attacker's link would carry them
    "//evil.com",
    "/%09/evil.com",
    "/%0A/x",
    "/%0D%0ASet-Cookie:%20x=1",
    "/%5Cevil.com",
    "/%5C%5Cevil.com",
    "https://evil.com",
    "https:/evil.com",
    "javascript:x",
    "%09//evil.com",
    "/%20/evil.com",
    "/%E2%80%AE/evil.com",  # a right-to-left override
    "evil.com",
    "/..//evil.com",
    "/%2e%2e//evil.com",
    "/runs/..//evil.com",
]


@pytest.fixture
def browse(app):
    return lambda: Browser(app.test_client())


def _login_with_next(browser, raw_next):
    browser.token = csrf_of(browser.get("/login"))
    data = {"username": "max", "password": PASSWORD, "csrf_token": browser.token}
    return browser.post(f"/login?next={raw_next}", data=data, token=False)


def test_login_follows_only_paths_of_this_site_after_normalising_next(browse, member, make_run):
    job = make_run(owner=member.user.id)
    for raw_next in HOSTILE_NEXT:
        browser = browse()
        response = _login_with_next(browser, raw_next)
        assert (response.status_code, response.headers.get("Location")) == (302, "/runs"), raw_next
        assert browser.get("/runs").status_code == 200  # logged in all the same
    for raw_next, target in [
        ("/runs%3Ftier%3Darchived", "/runs?tier=archived"),
        (f"/runs/{job.id}", f"/runs/{job.id}"),
        ("/archive%3Ffrom%3D2026-01-01%26to%3D2026-02-01", "/archive?from=2026-01-01&to=2026-02-01"),
    ]:
        response = _login_with_next(browse(), raw_next)
        assert (response.status_code, response.headers["Location"]) == (302, target)


# -- sessions end at logout --------------------------------------------------------------------------


def _epoch(user_id):
    db.session.commit()
    return db.session.scalar(select(User.session_epoch).where(User.id == user_id))


def test_a_copied_session_cookie_stops_working_after_logout(app, browse, member):
    browser = browse()
    assert browser.login("max").status_code == 302
    other_device = browse()
    assert other_device.login("max").status_code == 302
    copied = browser._client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/runs").status_code == 200
    assert thief.get("/api/scraper/jobs").status_code == 200

    assert browser.post("/logout").headers["Location"] == "/login"
    replay = app.test_client()
    replay.set_cookie("session", copied)
    replayed = replay.get("/runs")
    assert replayed.status_code == 302 and replayed.headers["Location"].startswith("/login")
    api = replay.get("/api/scraper/jobs")
    assert api.status_code == 401 and api.json["error"]["code"] == "unauthorized"
    # One epoch per user: every session of the user ends, the other device's too.
    assert other_device.get("/runs").headers["Location"].startswith("/login")
    assert browse().login("max").status_code == 302  # logging in again works
    assert _epoch(member.user.id) == 1


# -- changing a password -----------------------------------------------------------------------------


def test_set_password_command_changes_it_and_ends_the_users_sessions(runner, browse, member):
    browser = browse()
    assert browser.login("max").status_code == 302
    result = runner.invoke(args=["users", "set-password", "MAX", "--password", "a new long secret"])
    assert result.exit_code == 0, result.output
    assert "a new long secret" not in result.output
    assert _epoch(member.user.id) == 1
    assert user_for_password(db.session, "max", PASSWORD) is None
    assert user_for_password(db.session, "max", "a new long secret").id == member.user.id
    assert browser.get("/runs").headers["Location"].startswith("/login")

    prompted = runner.invoke(args=["users", "set-password", "max"], input="prompted secret\nprompted secret\n")
    assert prompted.exit_code == 0, prompted.output
    assert "prompted secret" not in prompted.output
    assert user_for_password(db.session, "max", "prompted secret") is not None

    before = db.session.scalar(select(User.password_hash).where(User.id == member.user.id))
    assert runner.invoke(args=["users", "set-password", "max", "--password", "short"]).exit_code == 1
    unknown = runner.invoke(args=["users", "set-password", "nobody", "--password", "long enough pass"])
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.output
    db.session.commit()
    assert db.session.scalar(select(User.password_hash).where(User.id == member.user.id)) == before


def test_the_first_admin_note_says_how_to_change_the_password(runner, app):
    result = runner.invoke(args=["users", "ensure-admin"])
    assert result.exit_code == 0
    assert "flask users set-password admin" in result.output and "users create" not in result.output
    note = (Path(app.instance_path) / "first-admin.txt").read_text()
    assert "flask users set-password admin" in note


def _all_rows_text():
    db.session.commit()
    with db.engine.connect() as connection:
        return "".join(str(connection.execute(table.select()).all()) for table in Base.metadata.sorted_tables)


def test_the_change_password_page_asks_for_the_current_one_and_records_nothing_secret(browse, member):
    browser = browse()
    assert browser.login("max").status_code == 302
    other_device = browse()
    assert other_device.login("max").status_code == 302
    page = browser.get("/runs")
    assert 'href="/password"' in page.text and ">Change password<" in page.text  # linked from the header
    form = browser.get("/password")
    assert form.status_code == 200
    for field in ("current_password", "new_password", "new_password_again"):
        assert f'<label for="{field}">' in form.text and f'id="{field}" name="{field}" type="password"' in form.text
    before = db.session.scalar(select(User.password_hash).where(User.id == member.user.id))

    change = {
        "current_password": PASSWORD,
        "new_password": "brand new secret",
        "new_password_again": "brand new secret",
    }
    assert browser.post("/password", data=change, token=False).status_code == 400  # no CSRF token
    wrong = browser.post("/password", data={**change, "current_password": "not it at all"})
    assert wrong.status_code == 403 and "current password is wrong" in wrong.text
    differ = browser.post("/password", data={**change, "new_password_again": "something else"})
    assert differ.status_code == 400 and "differ" in differ.text
    short = browser.post("/password", data={**change, "new_password": "short", "new_password_again": "short"})
    assert short.status_code == 400 and "at least 8 characters" in short.text
    assert db.session.scalar(select(User.password_hash).where(User.id == member.user.id)) == before

    done = browser.post("/password", data=change)
    assert done.status_code == 302 and done.headers["Location"] == "/runs"
    assert browser.get("/runs").status_code == 200  # this browser stays logged in
    assert other_device.get("/runs").headers["Location"].startswith("/login")
    assert user_for_password(db.session, "max", "brand new secret").id == member.user.id
    assert user_for_password(db.session, "max", PASSWORD) is None
    rows = _all_rows_text()
    assert "brand new secret" not in rows and PASSWORD not in rows


# -- the session cookie over HTTPS -------------------------------------------------------------------


def _login_cookie(app, headers=None, remote="127.0.0.1"):
    from flask import g

    g.pop("csrf_token", None)
    client = app.test_client()
    environ = {"REMOTE_ADDR": remote}
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login", environ_base=environ).text)[1]
    response = client.post(
        "/login",
        data={"username": "max", "password": PASSWORD, "csrf_token": token},
        headers=headers or {},
        environ_base=environ,
    )
    assert response.status_code == 302
    return next(value for name, value in response.headers.items() if name == "Set-Cookie" and "session=" in value)


def test_the_session_cookie_is_secure_when_a_trusted_proxy_says_https(make_app, redis_db):
    # Over HTTPS Flask-WTF also wants a same-site Referer, as a browser sends it.
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", "Referer": "https://localhost/login"}
    untrusted = make_app()
    with untrusted.app_context():
        from app.auth.users import create_user

        create_user(db.session, "max", PASSWORD, admin=False)
        assert "Secure" not in _login_cookie(untrusted, https)  # anyone can send the header
    counted = make_app(TRUSTED_PROXIES="1")
    with counted.app_context():
        assert "Secure" in _login_cookie(counted, https) and "HttpOnly" in _login_cookie(counted, https)
        assert "Secure" not in _login_cookie(counted, {"X-Forwarded-Proto": "http"})
    listed = make_app(TRUSTED_PROXIES="10.0.0.7, 10.0.0.8")
    with listed.app_context():
        assert "Secure" in _login_cookie(listed, https, remote="10.0.0.8")
        assert "Secure" not in _login_cookie(listed, https, remote="10.0.0.9")


def test_trusted_proxies_is_a_count_or_a_list_of_addresses(clean_env):
    assert load_settings({}).trusted_proxies == 0
    assert load_settings({"TRUSTED_PROXIES": "2"}).trusted_proxies == 2
    assert load_settings({"TRUSTED_PROXIES": "10.0.0.7,::1"}).trusted_proxies == ("10.0.0.7", "::1")
    for bad in ("proxy.example", "11", "10.0.0.7,nope", ",", "-1"):
        with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
            load_settings({"TRUSTED_PROXIES": bad})
    for name in ("LOGIN_FAILURES_PER_USER", "LOGIN_FAILURES_PER_ADDRESS", "LOGIN_FAILURE_WINDOW_SECONDS"):
        with pytest.raises(ConfigError, match=name):
            load_settings({name: "0"})


# -- throttling failures ------------------------------------------------------------------------------


def _attempt(client, username, password, remote="127.0.0.1", headers=None):
    from flask import g

    g.pop("csrf_token", None)
    db.session.commit()
    environ = {"REMOTE_ADDR": remote}
    page = client.get("/login", environ_base=environ)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    data = {"username": username, "password": password, "csrf_token": token}
    return client.post("/login", data=data, environ_base=environ, headers=headers or {})


def _counters(app):
    """The failure counters Flask-Limiter keeps in Redis for this app, by key."""
    connection = redis_connection(app)
    deployment = app.extensions["agar.throttle"]
    return {key.decode(): int(connection.get(key)) for key in connection.scan_iter(f"LIMITS:LIMITER/{deployment}/*")}


def test_rapid_wrong_passwords_are_refused_with_429_and_retry_after(app, client, redis_db, member, other_member):
    answers = [_attempt(client, "max", f"guess {n}") for n in range(25)]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * 10 + [429] * 15
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 900
    assert "Too many failed logins" in refused.text
    # The counters live in Redis, where every web process reads them: 10 failures for the name.
    counters = _counters(app)
    assert sorted(counters.values()) == [10, 10], counters  # one per username, one per address
    assert any("login" in key for key in counters)
    # The right password is refused too while the name is throttled; another user still logs in.
    assert _attempt(client, "max", PASSWORD).status_code == 429
    assert _attempt(client, "olga", PASSWORD).status_code == 302
    assert _attempt(client, "MAX ", "guess again").status_code == 429  # the same name, as the login reads it


def test_only_failures_count_and_the_refusal_ends_with_the_window(make_app, redis_db):
    app = make_app(LOGIN_FAILURES_PER_USER="3", LOGIN_FAILURES_PER_ADDRESS="3", LOGIN_FAILURE_WINDOW_SECONDS="2")
    with app.app_context():
        from app.auth.users import create_user

        create_user(db.session, "max", PASSWORD, admin=False)
        client = app.test_client()
        assert {_attempt(client, "max", PASSWORD).status_code for _ in range(12)} == {302}  # never throttled
        assert [_attempt(client, "max", "nope nope").status_code for _ in range(5)] == [401, 401, 401, 429, 429]
        time.sleep(2.2)
        assert _attempt(client, "max", PASSWORD).status_code == 302


def test_failures_are_counted_per_client_address_across_usernames(make_app, redis_db):
    app = make_app(LOGIN_FAILURES_PER_ADDRESS="5", TRUSTED_PROXIES="1")
    with app.app_context():
        from app.auth.users import create_user

        create_user(db.session, "max", PASSWORD, admin=False)
        client = app.test_client()
        guesser = {"X-Forwarded-For": "198.51.100.7"}
        tries = [_attempt(client, f"name{n}", "whatever", headers=guesser).status_code for n in range(7)]
        assert tries == [401] * 5 + [429] * 2
        assert _attempt(client, "max", PASSWORD, headers=guesser).status_code == 429
        # Behind the trusted proxy, another client's address is its own.
        assert _attempt(client, "max", PASSWORD, headers={"X-Forwarded-For": "198.51.100.8"}).status_code == 302


def test_bad_api_tokens_are_refused_with_429_after_fifty(app, client, redis_db, member):
    bad = {"Authorization": "Bearer agar_not-a-token"}
    answers = [client.get("/api/scraper/jobs", headers=bad) for _ in range(55)]
    assert [answer.status_code for answer in answers] == [401] * 50 + [429] * 5
    refused = answers[-1]
    assert refused.json["error"]["code"] == "too_many_requests" and 1 <= int(refused.headers["Retry-After"]) <= 900
    assert list(_counters(app).values()) == [50]
    # A good token from the same address (a scraper behind the same NAT) is never refused.
    assert client.get("/api/scraper/jobs", headers=member.headers).status_code == 200
    elsewhere = client.get("/api/scraper/jobs", headers=bad, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert elsewhere.status_code == 401  # another address has its own count


def test_an_ipv6_host_cannot_escape_the_throttle_by_changing_its_address(make_app, redis_db):
    app = make_app(LOGIN_FAILURES_PER_ADDRESS="3")
    client = app.test_client()
    bad = {"Authorization": "Bearer agar_not-a-token"}
    answers = [
        client.get("/api/scraper/jobs", headers=bad, environ_base={"REMOTE_ADDR": f"2001:db8::{n:x}"}).status_code
        for n in range(1, 7)
    ]
    assert answers == [401, 401, 401, 429, 429, 429]  # one /64, one count


# -- timing ------------------------------------------------------------------------------------------


def test_an_unknown_username_costs_as_much_as_a_wrong_password(make_app, redis_db):
    app = make_app(LOGIN_FAILURES_PER_USER="1000", LOGIN_FAILURES_PER_ADDRESS="1000")
    with app.app_context():
        from app.auth.users import create_user

        create_user(db.session, "max", PASSWORD, admin=False)
        client = app.test_client()
        _attempt(client, "warm-up", "x")  # the first unknown name makes the stand-in hash

        def timed(username):
            started = time.perf_counter()
            assert _attempt(client, username, "wrong password").status_code == 401
            return time.perf_counter() - started

        # Interleaved, so a noisy neighbour slows both kinds alike.
        known, unknown = [], []
        for n in range(10):
            known.append(timed("max"))
            unknown.append(timed(f"nobody-{n}"))
        ratio = statistics.median(unknown) / statistics.median(known)
        assert 0.5 < ratio < 2, (known, unknown)  # the same work: before, 2.8 ms against 118 ms
        assert db.session.execute(text("SELECT 1")).scalar() == 1


def test_too_many_wrong_current_passwords_are_refused_on_the_password_page(make_app, redis_db):
    app = make_app(LOGIN_FAILURES_PER_ADDRESS="2")
    with app.app_context():
        from app.auth.users import create_user

        create_user(db.session, "max", PASSWORD, admin=False)
        browser = Browser(app.test_client())
        assert browser.login("max").status_code == 302
        wrong = {
            "current_password": "not it",
            "new_password": "brand new secret",
            "new_password_again": "brand new secret",
        }
        answers = [browser.post("/password", data=wrong) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [403, 403, 429]
        assert "Too many wrong current passwords" in answers[-1].text and "Change password" in answers[-1].text
        assert int(answers[-1].headers["Retry-After"]) >= 1
