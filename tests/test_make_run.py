"""``make run`` finds Redis: REDIS_URL, else localhost, else a private redis-server, else says how."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.run import LOCAL_REDIS, NoRedis, app_processes, choose_redis


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
    from tests.support import TEST_REDIS_URL

    assert answers(TEST_REDIS_URL) and not answers("redis://127.0.0.1:1/0")


# -- keeping the worker and the scheduler running ---------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
KEEP_RUNNING = [sys.executable, str(ROOT / "scripts" / "keep_running.py")]
# A child that notes its pid, and notes a SIGTERM before it exits.
CHILD = """
import os, signal, sys, time
log = sys.argv[1]
def note(text):
    with open(log, "a") as handle:
        handle.write(text + "\\n")
signal.signal(signal.SIGTERM, lambda *_: (note(f"SIGTERM {os.getpid()}"), sys.exit(0)))
note(f"started {os.getpid()}")
time.sleep(60)
"""


def wait_for(condition, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_make_run_starts_the_worker_and_the_scheduler_through_keep_running():
    processes = dict(app_processes("/py", "5000"))
    assert processes["worker"] == "/py scripts/keep_running.py --name worker -- /py worker.py"
    assert processes["scheduler"] == "/py scripts/keep_running.py --name scheduler -- /py worker.py scheduler"
    assert "keep_running" not in processes["web"]  # gunicorn's master keeps its own workers


def test_a_killed_process_is_started_again_and_sigterm_stops_both(tmp_path):
    notes, log = tmp_path / "notes", tmp_path / "log"
    with log.open("w") as stderr:
        supervisor = subprocess.Popen(
            [*KEEP_RUNNING, "--name", "tiny", "--", sys.executable, "-c", CHILD, str(notes)], stderr=stderr
        )
    try:
        first = int(wait_for(lambda: [n for n in lines(notes) if n.startswith("started")])[0].split()[1])
        os.kill(first, signal.SIGKILL)
        started = wait_for(lambda: [n for n in lines(notes) if n.startswith("started")][1:], seconds=5)
        second = int(started[0].split()[1])
        assert second != first and not gone(second)
        assert any(f"pid {first} exited with code -9" in line and "restarting in 1 s" in line for line in lines(log))
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=10) == 0
        wait_for(lambda: gone(second), seconds=5)
        # The child ran in its own process group: it got the SIGTERM once, passed on by the supervisor.
        assert lines(notes) == [f"started {first}", f"started {second}", f"SIGTERM {second}"]
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_a_process_that_keeps_failing_is_restarted_ever_more_slowly_and_stops_at_once(tmp_path):
    log = tmp_path / "log"
    with log.open("w") as stderr:
        supervisor = subprocess.Popen(
            [*KEEP_RUNNING, "--name", "broken", "--", sys.executable, "-c", "raise SystemExit(3)"], stderr=stderr
        )
    try:
        wait_for(lambda: sum("exited with code 3" in line for line in lines(log)) >= 2, seconds=10)
        delays = [line.rsplit("restarting in ", 1)[1] for line in lines(log) if "restarting in" in line]
        assert delays[:2] == ["1 s", "2 s"]
        assert all(line.startswith("keep_running[broken]: ") for line in lines(log))
        stopped_at = time.monotonic()
        supervisor.send_signal(signal.SIGINT)  # while it waits 2 s before the next start
        assert supervisor.wait(timeout=10) == 0 and time.monotonic() - stopped_at < 1.5
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_a_killed_rq_worker_is_replaced_by_a_new_one(process_env, redis_db, tmp_path):
    from rq import Queue, Worker

    queue = Queue("agar", connection=redis_db)
    with (tmp_path / "log").open("w") as output:
        supervisor = subprocess.Popen(
            [*KEEP_RUNNING, "--name", "worker", "--", sys.executable, "worker.py"],
            cwd=ROOT,
            env=process_env,
            stdout=output,
            stderr=output,
        )
    try:
        first = wait_for(lambda: Worker.all(queue=queue), seconds=30)[0]
        os.kill(first.pid, signal.SIGKILL)  # as when Redis is lost and the worker dies
        second = wait_for(lambda: [w for w in Worker.all(queue=queue) if w.name != first.name], seconds=30)[0]
        assert second.pid != first.pid and not gone(second.pid)
        # Stopped once it listens: a SIGTERM that lands while RQ is still starting up (it registers
        # before it installs its signal handlers) ends it without a goodbye, on a loaded machine.
        wait_for(lambda: Worker.find_by_key(second.key, connection=redis_db).get_state() == "idle", seconds=30)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        wait_for(lambda: gone(second.pid), seconds=10)
        assert second.name not in {w.name for w in Worker.all(queue=queue)}  # it stopped cleanly: unregistered
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        for worker in Worker.all(queue=queue):  # never leave a worker behind on the test Redis
            if not gone(worker.pid):
                os.kill(worker.pid, signal.SIGKILL)
