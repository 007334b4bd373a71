"""The server dies mid-session and comes back: the queued judgment arrives exactly once.

This needs a real, separate server process (a thread in the test process cannot be killed), run
with ``manage.py runserver --noreload --insecure`` against the same test database, which
``transaction=True`` keeps committed and visible to it. Postgres only: an SQLite test database
lives in this process's memory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from labeling.models import Judgment
from tests.factories import add_member, make_project, make_user, seed_tasks
from tests.frontend.conftest import sign_in
from tests.frontend.test_browser import current_task, js_errors, wait_all_saved, wait_new_task

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, port: int, log: Path) -> None:
        db = connection.settings_dict
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        host, port_ = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port_}/{db['NAME']}",
            "DJANGO_SETTINGS_MODULE": "arbiter.settings_test",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", f"127.0.0.1:{self.port}"],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start in 30 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def server(on_postgres: None, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(_free_port(), tmp_path / "server.log")
    try:
        yield proc
    finally:
        proc.kill()  # before pytest-django flushes the tables


def test_server_killed_and_restarted_delivers_the_pending_judgment_once(server: Any, page: Any, shot: Any) -> None:
    manager = make_user("maria")
    project = make_project(manager=manager, name="Restart", guidelines="Judge.")
    seed_tasks(project, 8)
    ann = make_user("annie")
    add_member(project, ann)

    server.start()
    sign_in(page, server.url, "annie")
    page.goto(f"{server.url}/projects/{project.pk}/label")
    first = wait_new_task(page, None)
    page.keyboard.press("1")
    page.keyboard.press("w")
    page.keyboard.press("Enter")
    second = wait_new_task(page, first)
    wait_all_saved(page)
    page.wait_for_load_state("networkidle")  # the prefetch has landed
    assert Judgment.objects.filter(annotator=ann).count() == 1

    server.kill()
    page.keyboard.press("2")
    page.keyboard.press("e")
    page.keyboard.press("Enter")
    third = wait_new_task(page, second)  # served from the prefetched tasks while the server is down
    page.wait_for_function("() => document.querySelector('#queue-status').dataset.pending === '1'")
    page.wait_for_function("() => /pending \\(.*retrying/.test(document.querySelector('#queue-status').textContent)")
    shot(page, "16-server-down-pending")
    assert Judgment.objects.filter(annotator=ann, task_id=second).count() == 0

    time.sleep(2)  # let it fail a couple of times
    server.start()
    wait_all_saved(page, timeout=40_000)
    shot(page, "17-server-back-saved")
    rows = Judgment.objects.filter(annotator=ann, task_id=second)
    assert rows.count() == 1
    assert rows.get().strength == 3
    assert Judgment.objects.filter(annotator=ann).count() == 2
    assert current_task(page) == third
    # Connection errors while the server was down are expected; nothing else may have gone wrong.
    assert not [e for e in js_errors(page) if "ERR_CONNECTION_REFUSED" not in e and "Failed to fetch" not in e]
