"""``make run`` finds Redis: REDIS_URL, else localhost, else a private redis-server, else says how."""

import pytest

from scripts.run import LOCAL_REDIS, NoRedis, choose_redis


def test_redis_url_is_used_when_it_answers():
    assert choose_redis({"REDIS_URL": "redis://cache:6379/2"}, reachable=lambda url: True) == (
        "redis://cache:6379/2",
        None,
    )


def test_a_dead_redis_url_stops_with_a_message():
    with pytest.raises(NoRedis, match="REDIS_URL is set to 'redis://nowhere:6379/0' but no Redis answers"):
        choose_redis({"REDIS_URL": "redis://nowhere:6379/0"}, reachable=lambda url: False)


def test_the_local_redis_is_used_when_it_answers():
    assert choose_redis({}, reachable=lambda url: url == LOCAL_REDIS) == (LOCAL_REDIS, None)


def test_a_private_redis_server_is_started_when_none_runs():
    url, command = choose_redis({}, reachable=lambda url: False, which=lambda name: "/usr/bin/redis-server")
    port = url.split(":")[2].split("/")[0]
    assert url == f"redis://127.0.0.1:{port}/0"
    assert command.startswith(f"redis-server --port {port} --bind 127.0.0.1")


def test_without_any_redis_it_says_exactly_how_to_get_one():
    with pytest.raises(NoRedis) as stop:
        choose_redis({}, reachable=lambda url: False, which=lambda name: None)
    assert "apt-get install redis-server" in str(stop.value.code) and "REDIS_URL" in str(stop.value.code)


def test_the_real_local_redis_answers():
    from scripts.run import answers
    from tests.conftest import TEST_REDIS_URL

    assert answers(TEST_REDIS_URL) and not answers("redis://127.0.0.1:1/0")
