"""``make run``: find (or start) Redis, then run the web app, an RQ worker and the scheduler together.

Redis, in order: ``REDIS_URL`` when set; else a Redis answering on localhost:6379; else a private
``redis-server`` started for this session on a free port; else stop and say how to get one.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from honcho.manager import Manager
from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
NO_REDIS = """\
No Redis server could be found or started, and Agar Run Manager needs one for its background work.
Do one of these, then run `make run` again:
  - Debian/Ubuntu:  sudo apt-get install redis-server      (it then listens on localhost:6379)
  - macOS:          brew install redis && brew services start redis
  - elsewhere:      export REDIS_URL=redis://HOST:6379/0   (any reachable Redis 6+)
"""


def answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (RedisError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class NoRedis(SystemExit):
    """No Redis can be found or started; the message says how to get one."""


def choose_redis(env: dict[str, str], *, which=shutil.which, reachable=answers) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    """Return the Redis URL to use and, when we must start our own, the command that starts it."""
    if env.get("REDIS_URL"):
        if not reachable(env["REDIS_URL"]):
            raise NoRedis(f"REDIS_URL is set to {env['REDIS_URL']!r} but no Redis answers there.")
        return env["REDIS_URL"], None
    if reachable(LOCAL_REDIS):
        return LOCAL_REDIS, None
    if which("redis-server"):
        port = free_port()
        data = ROOT / "instance" / "redis"
        data.mkdir(parents=True, exist_ok=True)
        command = f"redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir {data}"
        return f"redis://127.0.0.1:{port}/0", command
    raise NoRedis(NO_REDIS)


def app_processes(python: str, port: str) -> list[tuple[str, str]]:
    """The web app, an RQ worker and the scheduler; the last two are started again when they exit."""
    # honcho stops everything when one process exits: a worker lost with Redis must come back alone.
    keep = f"{python} scripts/keep_running.py --name"
    return [
        ("web", f"{python} -m gunicorn --workers 2 --bind 127.0.0.1:{port} --access-logfile - wsgi:app"),
        ("worker", f"{keep} worker -- {python} worker.py"),
        ("scheduler", f"{keep} scheduler -- {python} worker.py scheduler"),
    ]


def main() -> int:
    env = dict(os.environ)
    python = sys.executable
    processes: list[tuple[str, str]] = []
    try:
        env["REDIS_URL"], redis_command = choose_redis(env)
    except NoRedis as error:
        print(error.code, file=sys.stderr)
        return 1
    if redis_command:
        processes.append(("redis", redis_command))
        print(f"No Redis running: starting a private redis-server at {env['REDIS_URL']}")
    else:
        print(f"Using Redis at {env['REDIS_URL']}")

    port = env.get("PORT", "5000")
    processes += app_processes(python, port)
    manager = Manager()
    for name, command in processes:
        manager.add_process(name, command, env=env, cwd=str(ROOT))
    print(f"Agar Run Manager: http://127.0.0.1:{port}/  (Ctrl-C stops everything)")
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
