"""CPU accounting during a load level: which processes used the two cores.

Postgres backends come and go (Django's CONN_MAX_AGE=60 closes and reopens connections), and a process that
has exited can no longer be read, so the processes are sampled every ``interval`` seconds and each one's last
reading is kept: a backend that exits loses at most one interval of CPU time from the account.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil

from bench.common import machine_busy_seconds


def _read(pids: list[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[pid] = t.user + t.system
    return out


class CpuSampler:
    """Samples named groups of processes in a background thread; ``stop()`` returns CPU seconds per group."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]], interval: float = 0.5) -> None:
        self.groups = groups
        self.interval = interval
        self.first: dict[str, dict[int, float]] = {}
        self.last: dict[str, dict[int, float]] = {name: {} for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.machine0 = 0.0

    def _sample(self) -> None:
        for name, pids in self.groups.items():
            self.last[name].update(_read(pids()))

    def start(self) -> CpuSampler:
        self.first = {name: _read(pids()) for name, pids in self.groups.items()}
        self.last = {name: dict(values) for name, values in self.first.items()}
        self.machine0 = machine_busy_seconds()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        used = {
            name: sum(v - self.first[name].get(pid, 0.0) for pid, v in self.last[name].items()) for name in self.groups
        }
        used["machine"] = machine_busy_seconds() - self.machine0
        return used
