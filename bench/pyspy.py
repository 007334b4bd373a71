"""Sampling profile of the gunicorn workers under load (py-spy, optional), summarised by where CPU goes.

py-spy is not a project dependency; install it outside the venv, e.g.
``.venv/bin/python -m pip install --target /tmp/pyspy py-spy`` and pass ``--py-spy /tmp/pyspy/bin/py-spy``.
Recorded with ``--gil`` (only samples holding the GIL, i.e. Python CPU, not threads waiting on Postgres).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

# Share of samples (inclusive) whose stack holds any of these frames (function names as py-spy prints them).
BUCKETS: dict[str, tuple[str, ...]] = {
    "whole request (Django handler, middleware, DRF, view)": ("WSGIHandler.__call__",),
    "token auth (arbiter.auth, one statement)": ("FastTokenAuthentication.authenticate_credentials",),
    "membership_get (one statement)": ("membership_get",),
    "next: assignment_lease_next (all of it)": ("assignment_lease_next",),
    "next: _lease_next_postgres (the one statement)": ("_lease_next_postgres",),
    "next: general path (_lease_next_portable)": ("_lease_next_portable",),
    "submit: judgment_submit (all of it)": ("judgment_submit",),
    "submit: _judgment_submit_one_statement": ("_judgment_submit_one_statement",),
    "submit: general path (_judgment_submit)": ("_judgment_submit",),
    "ORM SQL compilation (*Compiler.as_sql)": (
        "SQLCompiler.as_sql", "SQLInsertCompiler.as_sql", "SQLUpdateCompiler.as_sql",
    ),
    "ORM query building (filter/select_related/annotate)": (
        "QuerySet.filter", "QuerySet.select_related", "QuerySet.annotate", "QuerySet.select_for_update",
    ),
    "model instances (Model.from_db)": ("Model.from_db",),
    "psycopg execute (send, wait, load rows)": ("Cursor.execute", "Cursor.fetchall", "Cursor.fetchmany"),
    "DRF input parsing + serializer validation": ("_parse",),
    "response rendering (JSONRenderer)": ("JSONRenderer.render",),
}  # fmt: skip


def record(py_spy: str, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    cmd = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking", "--rate", "200"]
    cmd += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(raw: Path, top: int = 40) -> dict[str, Any]:
    total = 0
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n_text = line.rstrip().rpartition(" ")
        if not n_text.isdigit():
            continue
        n = int(n_text)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        names = {f.split(" (")[0] for f in frames}
        for f in set(frames):
            inclusive[f] += n
        self_time[frames[-1]] += n
        for label, wanted in BUCKETS.items():
            if names.intersection(wanted):
                buckets[label] += n
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "buckets_pct": {label: round(100 * buckets[label] / total, 1) for label in BUCKETS},
        "top_inclusive_pct": [(k, round(100 * v / total, 1)) for k, v in inclusive.most_common(top)],
        "top_self_pct": [(k, round(100 * v / total, 1)) for k, v in self_time.most_common(25)],
    }
