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


def main() -> int:
    env = dict(os.environ)
    python = sys.executable
    processes: list[tuple[str, str]] = []

    if env.get("REDIS_URL"):
        if not answers(env["REDIS_URL"]):
            print(f"REDIS_URL is set to {env['REDIS_URL']!r} but no Redis answers there.", file=sys.stderr)
            return 1
        print(f"Using Redis at REDIS_URL={env['REDIS_URL']}")
    elif answers(LOCAL_REDIS):
        env["REDIS_URL"] = LOCAL_REDIS
        print(f"Using the Redis on localhost: {LOCAL_REDIS}")
    elif shutil.which("redis-server"):
        port = free_port()
        data = ROOT / "instance" / "redis"
        data.mkdir(parents=True, exist_ok=True)
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        processes.append(
            ("redis", f"redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir {data}")
        )
        print(f"No Redis running: starting a private redis-server on port {port}")
    else:
        print(NO_REDIS, file=sys.stderr)
        return 1

    port = env.get("PORT", "5000")
    processes += [
        ("web", f"{python} -m gunicorn --workers 2 --bind 127.0.0.1:{port} --access-logfile - wsgi:app"),
        ("worker", f"{python} worker.py"),
        ("scheduler", f"{python} worker.py scheduler"),
    ]
    manager = Manager()
    for name, command in processes:
        manager.add_process(name, command, env=env, cwd=str(ROOT))
    print(f"Agar Run Manager: http://127.0.0.1:{port}/  (Ctrl-C stops everything)")
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
