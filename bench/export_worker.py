"""Stream one export in a process of its own, so that its peak RSS is the export's alone.

Uses the same calls as the API's streaming response (``labeling.api.exports.ExportApi``):
``export_prepare(project=..., format=...)`` then ``export_stream(spec=...)``, writing every chunk to ``--out``
(``/dev/null`` by default). Samples RSS as the rows go by. Prints one JSON object as its last stdout line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import configure_env, peak_rss_mb_self, rss_mb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database-url", help="default: DATABASE_URL from the environment")
    p.add_argument("--project-id", type=int, required=True)
    p.add_argument("--format", default="trl")
    p.add_argument("--expected-rows", type=int, required=True, help="for the 10%%/50%%/100%% RSS samples")
    p.add_argument("--out", default="/dev/null")
    p.add_argument(
        "--mode",
        choices=["app", "app-python", "sql-reference"],
        default="app",
        help="app: the app's export_stream; sql-reference: TRL rows built by Postgres (a ceiling, not the app)",
    )
    args = p.parse_args()

    import os

    configure_env(args.database_url or os.environ["DATABASE_URL"])
    import django

    django.setup()
    from labeling.exports.formats import RowCounter
    from labeling.models import Project
    from labeling.selectors.exports import export_prepare, export_stream

    project = Project.objects.get(pk=args.project_id)
    if args.mode == "sql-reference":
        stream = _sql_reference_stream(project.pk)
        path = "bench reference SQL"
        counter = _LineCounter()
        function = "bench.export_worker._sql_reference_stream (json_build_object in Postgres; NOT the app's code)"
    else:
        spec = export_prepare(project=project, format=args.format)
        path = _path_used(spec, force_python=args.mode == "app-python")
        counter = RowCounter()
        stream = export_stream(spec=spec, counter=counter)
        function = "labeling.selectors.exports.export_stream (as ExportApi's StreamingHttpResponse)"
    rss_start = rss_mb()
    marks = [(10, args.expected_rows * 10 // 100), (50, args.expected_rows * 50 // 100)]
    curve_every = max(1, args.expected_rows // 20)  # a point every 5% for the JSON
    samples: list[dict[str, float | int]] = []
    curve: list[tuple[int, float]] = []
    next_curve = curve_every
    n_bytes = 0
    first_byte_s = None
    t0 = time.perf_counter()
    with open(args.out, "wb") as out:
        for chunk in stream:
            if isinstance(counter, _LineCounter):
                counter.count += chunk.count(b"\n")
            if first_byte_s is None:
                first_byte_s = time.perf_counter() - t0
            out.write(chunk)
            n_bytes += len(chunk)
            rows = counter.count
            while marks and rows >= marks[0][1]:
                pct, _ = marks.pop(0)
                samples.append({"pct": pct, "rows": rows, "rss_mib": round(rss_mb(), 1)})
            if rows >= next_curve:
                curve.append((rows, round(rss_mb(), 1)))
                next_curve += curve_every
    seconds = time.perf_counter() - t0
    samples.append({"pct": 100, "rows": counter.count, "rss_mib": round(rss_mb(), 1)})
    rss_values = [s["rss_mib"] for s in samples]
    # "Flat": the RSS at 100% is within 10% (or 16 MiB) of the RSS at 10%, so memory does not grow with rows.
    growth = float(rss_values[-1]) - float(rss_values[0])
    flat = growth <= max(16.0, 0.10 * float(rss_values[0]))
    result = {
        "format": args.format,
        "mode": args.mode,
        "path": path,
        "function": function,
        "out": args.out,
        "rows": counter.count,
        "bytes": n_bytes,
        "mib_per_s": round(n_bytes / 2**20 / seconds, 1),
        "seconds": round(seconds, 3),
        "first_byte_s": None if first_byte_s is None else round(first_byte_s, 3),
        "rows_per_s": round(counter.count / seconds, 1),
        "rss_start_mib": round(rss_start, 1),
        "rss_samples": samples,
        "rss_curve": curve,
        "rss_growth_10_to_100_mib": round(growth, 1),
        "memory_flat": flat,
        "peak_rss_mib": round(peak_rss_mb_self(), 1),
    }
    print(json.dumps(result))


def _path_used(spec: object, *, force_python: bool) -> str:
    """Which export path the app takes for ``spec``; with ``force_python`` switch its Postgres fast path off."""
    try:
        from labeling.selectors import exports_sql
    except ImportError:
        return "python (no fast path in this version)"
    if force_python:
        exports_sql.fast_path_supported = lambda spec: False  # type: ignore[assignment]
        return "python (fast path switched off by the benchmark)"
    return "postgres fast path (exports_sql)" if exports_sql.fast_path_supported(spec) else "python"


class _LineCounter:
    count = 0


# Only for the benchmark's reference figure: the simplest TRL case (pairwise, strict ranking, a single user
# message as the prompt, standard style), built entirely by Postgres and streamed through a server-side cursor.
_REFERENCE_SQL = """
    SELECT json_build_object('prompt', p.messages->0->>'content', 'chosen', cw.text, 'rejected', cl.text)::text
    FROM labeling_judgment j
    JOIN labeling_task t ON t.id = j.task_id
    JOIN labeling_prompt p ON p.id = t.prompt_id
    JOIN labeling_completion cw ON cw.task_id = t.id AND cw.position = (j.ranking->0->>0)::int
    JOIN labeling_completion cl ON cl.task_id = t.id AND cl.position = (j.ranking->1->>0)::int
    WHERE j.project_id = %s AND j.is_live AND j.action = 'label'
    ORDER BY j.id
"""


def _sql_reference_stream(project_id: int, batch: int = 5000) -> Iterator[bytes]:
    from django.db import connection, transaction

    with transaction.atomic():
        connection.ensure_connection()
        raw = connection.connection
        with raw.cursor(name="bench_reference_export") as cursor:
            cursor.itersize = batch
            cursor.execute(_REFERENCE_SQL, [project_id])
            while rows := cursor.fetchmany(batch):
                yield ("\n".join(row[0] for row in rows) + "\n").encode("utf-8")


if __name__ == "__main__":
    main()
