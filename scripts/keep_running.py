"""Keep one process running: start it again when it exits, until we are told to stop.

``python scripts/keep_running.py --name worker -- python worker.py``

``make run`` starts the RQ worker and the scheduler through this, because honcho stops every
process as soon as one exits: a worker that died when Redis went away would otherwise take the
web app down with it, and nothing would work the queue again until someone noticed. Each exit is
logged with its code, and the next start waits a little longer (1 s, doubling up to 30 s; back to
1 s once a start has lasted a minute) so a process that cannot start does not spin.

SIGTERM and SIGINT stop the loop and are passed on to the process, once; then we wait for it to
exit and exit ourselves. The process runs in its own process group so that it gets each signal
exactly once, from us (honcho signals our whole group; an RQ worker takes a second SIGTERM as
"kill the job now"); once it has exited, whatever it left in that group is sent SIGTERM too.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STEADY_AFTER = 60.0  # a start that lasted this long was a success: the next delay is short again


def log(name: str, message: str) -> None:
    print(f"keep_running[{name}]: {message}", file=sys.stderr, flush=True)


def end_group(group: int) -> None:
    """Stop what the process left behind in its group (an RQ worker killed with -9 leaves its scheduler)."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass


def keep_running(command: list[str], name: str) -> int:
    """Run ``command`` again each time it exits, until SIGTERM or SIGINT; return 0 once stopped."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            log(name, f"passing {signal.Signals(signum).name} to pid {child.pid}")
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = FIRST_DELAY
    while not stopping.is_set():
        started = time.monotonic()
        child = subprocess.Popen(command, process_group=0)  # noqa: S603 (our own argv, from the Makefile; no shell)
        log(name, f"started pid {child.pid}: {' '.join(command)}")
        if stopping.is_set():  # the signal came while it was starting, before it could be passed on
            child.terminate()
        code = child.wait()
        end_group(child.pid)
        if stopping.is_set():
            log(name, f"pid {child.pid} stopped (code {code})")
            break
        lasted = time.monotonic() - started
        if lasted >= STEADY_AFTER:
            delay = FIRST_DELAY
        log(name, f"pid {child.pid} exited with code {code} after {lasted:.1f} s; restarting in {delay:g} s")
        stopping.wait(delay)
        delay = min(delay * 2, MAX_DELAY)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="how the log lines name the process (default: the command)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to keep running after --")
    return keep_running(command, args.name or command[-1])


if __name__ == "__main__":
    sys.exit(main())
