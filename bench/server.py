"""Starting and stopping gunicorn for the HTTP phase."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from bench.common import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    def __init__(self, *, env: dict[str, str], workers: int, threads: int, port: int, log: Path) -> None:
        self.env = {**os.environ, **env}
        self.workers, self.threads, self.port, self.log = workers, threads, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        exe = str(REPO / ".venv" / "bin" / "gunicorn")
        cmd = [exe, "arbiter.wsgi", "-w", str(self.workers), "--threads", str(self.threads)]
        return [*cmd, "-b", f"127.0.0.1:{self.port}", "--log-level", "warning", "--timeout", "60"]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log}")
            try:
                r = httpx.get(f"{self.base_url}/api/v1/projects/", timeout=2.0)
                if r.status_code in (401, 403):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
