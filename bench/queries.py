"""In-process measurements: SQL statements per request (CaptureQueriesContext) and a cProfile of the hot path.

Imported after ``django.setup()``. Requests go through DRF's APIClient with token auth, so they run the
full middleware + DRF + service stack against the same database as the HTTP phase.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient


def _client(token: str) -> APIClient:
    client = APIClient(SERVER_NAME="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _pair(client: APIClient, project_id: int, rng: random.Random) -> tuple[Any, Any]:
    r1 = client.post(f"/api/v1/projects/{project_id}/next", {"count": 1}, format="json")
    assert r1.status_code == 200, (r1.status_code, r1.content[:300])
    task_id = r1.json()["tasks"][0]["task_id"]
    body = {
        "idempotency_key": str(uuid.uuid4()),
        "ranking": [[1], [0]] if rng.random() < 0.5 else [[0], [1]],
        "strength": rng.randint(1, 3),
    }
    r2 = client.post(f"/api/v1/projects/{project_id}/tasks/{task_id}/judgments", body, format="json")
    assert r2.status_code == 201, (r2.status_code, r2.content[:300])
    return r1, r2


class WireTrace:
    """Counts the statements that really reach Postgres (libpq protocol trace of the raw psycopg connection).

    Unlike CaptureQueriesContext this also sees what Django sends outside its cursor wrapper, e.g. the
    ``SELECT 1`` of CONN_HEALTH_CHECKS.
    """

    def __init__(self) -> None:
        self.file = tempfile.NamedTemporaryFile(prefix="arbiter-bench-trace-", delete=False)  # noqa: SIM115
        self.pgconn: Any = None
        self.parsed: dict[str, str] = {}  # prepared statement name -> SQL, across traced requests

    def __enter__(self) -> WireTrace:
        connection.ensure_connection()
        self.file.seek(0)
        self.file.truncate()
        self.pgconn = connection.connection.pgconn
        self.pgconn.trace(self.file.fileno())
        return self

    def __exit__(self, *exc: object) -> None:
        self.pgconn.untrace()

    def statements(self) -> list[str]:
        text = Path(self.file.name).read_text(errors="replace")
        # A multi-line statement spans several trace lines; continuation lines carry no timestamp.
        lines: list[str] = []
        for line in text.splitlines():
            if lines and not line[:4].isdigit():
                lines[-1] += " " + line
            else:
                lines.append(line)
        # A statement is a simple-protocol Query, or an extended-protocol Bind (+ Execute) of a statement
        # Parsed earlier: the hot path's prepared statements are Parsed once per connection, then only
        # Bound and Executed, so counting Parse messages would miss them.
        out = []
        parsed: dict[str, str] = dict(self.parsed)
        for line in lines:
            parts = line.split("\t")
            if len(parts) < 5 or parts[1] != "F":
                continue
            kind, body = parts[3], parts[4].strip()
            if kind == "Query":
                out.append(" ".join(body.split()).strip('"'))
            elif kind == "Parse":
                name, _, sql = body.partition(" ")
                parsed[name.strip('"')] = " ".join(sql.split()).strip('"')
            elif kind == "Bind":
                statement = body.split(" ")[1].strip('"') if " " in body else ""
                out.append(parsed.get(statement, f"<prepared statement {statement or '(unnamed)'}>"))
        self.parsed = parsed
        return out

    def close(self) -> None:
        self.file.close()
        Path(self.file.name).unlink(missing_ok=True)


_TX = ("BEGIN", "COMMIT", "ROLLBACK")


def count_queries(*, token: str, project_id: int, samples: int) -> dict[str, Any]:
    """Run ``samples`` next+submit pairs, counting SQL per request two ways.

    * ``orm``: CaptureQueriesContext, without BEGIN/COMMIT (Django >= 4.2 logs those too; they are listed apart).
    * ``wire``: the libpq trace, every statement Postgres receives. Before each request ``close_old_connections()``
      runs, as Django's ``request_started`` signal does under gunicorn (the test client skips it), so the per-request
      ``SELECT 1`` health check of ``CONN_HEALTH_CHECKS`` shows up as it does in the server.
    """
    rng = random.Random(7)
    client = _client(token)
    orm: dict[str, list[int]] = {"next": [], "submit": []}
    tx: dict[str, list[int]] = {"next": [], "submit": []}
    wire: dict[str, list[int]] = {"next": [], "submit": []}
    times: dict[str, list[float]] = {"next": [], "submit": []}
    example: dict[str, list[str]] = {}
    example_wire: dict[str, list[str]] = {}
    trace = WireTrace()

    def request(endpoint: str, url: str, body: dict[str, Any]) -> Any:
        close_old_connections()
        with CaptureQueriesContext(connection) as captured, trace:
            t0 = time.perf_counter()
            response = client.post(url, body, format="json")
            times[endpoint].append(time.perf_counter() - t0)
        sqls = [q["sql"] for q in captured.captured_queries]
        orm[endpoint].append(sum(1 for q in sqls if q not in _TX))
        tx[endpoint].append(sum(1 for q in sqls if q in _TX))
        on_wire = trace.statements()
        wire[endpoint].append(len(on_wire))
        example[endpoint] = sqls  # the last request's statements (a warm connection)
        example_wire[endpoint] = on_wire
        return response

    try:
        for _ in range(samples):
            r1 = request("next", f"/api/v1/projects/{project_id}/next", {"count": 1})
            assert r1.status_code == 200, (r1.status_code, r1.content[:300])
            task_id = r1.json()["tasks"][0]["task_id"]
            body = {
                "idempotency_key": str(uuid.uuid4()),
                "ranking": [[1], [0]] if rng.random() < 0.5 else [[0], [1]],
                "strength": rng.randint(1, 3),
            }
            r2 = request("submit", f"/api/v1/projects/{project_id}/tasks/{task_id}/judgments", body)
            assert r2.status_code == 201, (r2.status_code, r2.content[:300])
    finally:
        trace.close()
    return {
        endpoint: {
            "samples": len(values),
            "median": statistics.median(values),
            "max": max(values),
            "min": min(values),
            "transaction_control_median": statistics.median(tx[endpoint]),
            "wire_median": statistics.median(wire[endpoint]),
            "wire_max": max(wire[endpoint]),
            "in_process_p50_ms": round(statistics.median(times[endpoint]) * 1000, 2),
            "statements": [_short(sql) for sql in example[endpoint]],
            "wire_statements": [_short(sql, 90) for sql in example_wire[endpoint]],
        }
        for endpoint, values in orm.items()
    }


def _short(sql: str, n: int = 160) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= n else sql[: n - 3] + "..."


def profile_requests(*, token: str, project_id: int, pairs: int, out: Path) -> dict[str, Any]:
    """cProfile ``pairs`` in-process next+submit pairs; write the stats to ``out``; return the top entries."""
    rng = random.Random(11)
    client = _client(token)
    _pair(client, project_id, rng)  # warm caches (URL resolver, serializers)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(pairs):
        _pair(client, project_id, rng)
    prof.disable()
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    out.write_text(f"# {pairs} next+submit pairs in process, {wall:.2f}s wall\n\n" + buf.getvalue())
    return {"pairs": pairs, "wall_s": round(wall, 3), "ms_per_pair": round(wall / pairs * 1000, 2), "file": str(out)}


def _walk(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def explain_lease(*, project: Any, user_id: int, out: Path, runs: int = 5) -> dict[str, Any]:
    """EXPLAIN ANALYZE the service's own lease statement (``leases._lease_sql``) for one user, rolled back.

    Reports the execution time and any sequential scan, which is what makes "next" cost grow with the table.
    """
    from datetime import timedelta

    from django.utils import timezone

    from labeling.services import leases

    sql = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + leases._lease_sql(gold=False)
    text_sql = "EXPLAIN (ANALYZE, BUFFERS) " + leases._lease_sql(gold=False)
    timings: list[float] = []
    planning: list[float] = []
    plan: dict[str, Any] = {}
    text = ""
    for i in range(runs):
        now = timezone.now()
        params = {
            "now": now,
            "expires": now + timedelta(seconds=project.lease_seconds),
            "project": project.pk,
            "gold": False,
            "false": False,
            "overlap": project.overlap,
            "user": user_id,
            "want": 1,
        }
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                plan = cursor.fetchone()[0][0]
                if i == 0:
                    cursor.execute(text_sql, params)
                    text = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True)
        timings.append(plan["Execution Time"])
        planning.append(plan["Planning Time"])
    out.write_text(leases._lease_sql(gold=False) + "\n\n" + text + "\n")
    seq = [
        {"relation": n.get("Relation Name"), "actual_rows": n.get("Actual Rows")}
        for n in _walk(plan["Plan"])
        if n.get("Node Type") == "Seq Scan"
    ]
    return {
        "execution_ms_median": round(statistics.median(timings), 3),
        "planning_ms_median": round(statistics.median(planning), 3),
        "top_join": next((n["Node Type"] for n in _walk(plan["Plan"]) if "Join" in n["Node Type"]), None),
        "seq_scans": seq,
        "file": str(out),
    }
