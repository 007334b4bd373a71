"""Shared helpers for the benchmark: environment, database (re)creation, process accounting."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
BENCH_SECRET = "bench-only-secret-key-not-for-production"


def database_url(host: str, port: int, user: str, name: str) -> str:
    return f"postgres://{user}@{host}:{port}/{name}"


def configure_env(db_url: str) -> dict[str, str]:
    """The environment the app runs under in the benchmark (server and in-process alike)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "arbiter.settings",
        "DATABASE_URL": db_url,
        "DJANGO_SECRET_KEY": BENCH_SECRET,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "ARBITER_VAR_DIR": str(OUT_DIR / "var"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return env


def recreate_database(*, host: str, port: int, user: str, name: str) -> None:
    """Drop and create ``name`` (connecting to the ``postgres`` maintenance database)."""
    import psycopg

    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def rss_mb(pid: int | None = None) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def peak_rss_mb_self() -> float:
    """This process's peak RSS since its exec (VmHWM). Not ru_maxrss: Linux carries that over from the forking
    parent across execve, so a child of a big orchestrator would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def postgres_pids(dbname: str | None = None) -> list[int]:
    """Postgres processes: with ``dbname``, only that database's backends plus the shared auxiliary
    processes (WAL writer, checkpointer, ...), so other databases' clients on a shared machine are left out."""
    pids = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] not in ("postgres", "postmaster"):
            continue
        title = " ".join(p.info["cmdline"] or [])
        is_backend = "(" in title and ")" in title  # "postgres: 15/main: user db 127.0.0.1(port) ..."
        if dbname is None or not is_backend or f" {dbname} " in title:
            pids.append(p.pid)
    return pids


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def tree_pids(pid: int) -> list[int]:
    try:
        proc = psutil.Process(pid)
        return [pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - t0


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
