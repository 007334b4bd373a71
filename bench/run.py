"""Arbiter end-to-end benchmark: import, annotator loop over HTTP, SQL per request, streaming export.

    .venv/bin/python bench/run.py            # full run (100k tasks, 1M judgments exported; ~10 min)
    .venv/bin/python bench/run.py --quick    # smoke run with small sizes (~1-2 min)

Drops and recreates the Postgres database ``arbiter_bench`` (never the app's own database). See
bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    OUT_DIR,
    REPO,
    configure_env,
    database_url,
    fmt,
    postgres_pids,
    recreate_database,
    rss_mb,
    tree_pids,
)

TARGETS = {
    "import_tasks_per_s": 20_000,
    "annotations_per_s_at_8": 200,
    "p99_ms_at_8": 100,
    "queries_per_request": 5,
    "export_rows_per_s": 100_000,
}
LABEL_STUDIO = {
    "import_tasks_per_s": 2_650,
    "annotations_per_s_at_1": 6.4,
    "annotations_per_s_at_8": 9.7,
    "next_p50_ms_at_1": 78,
    "p99_ms_at_8": 730,
    "queries_next": 43,
    "queries_submit": 73,
    "export": "3,000 judgments in 5.7 s, not streamed (~530 rows/s)",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- phase 1: database, users, project ------------------------------------------------------


def setup(args: argparse.Namespace) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from labeling.models import Membership, Role
    from labeling.services.projects import project_create

    t0 = time.perf_counter()
    recreate_database(host=args.db_host, port=args.db_port, user=args.db_user, name=args.db_name)
    call_command("migrate", verbosity=0, interactive=False)
    migrate_s = time.perf_counter() - t0

    user_model = get_user_model()
    manager = user_model.objects.create(username="bench-manager", password=make_password(None), is_staff=False)
    project = project_create(name="Bench pairwise", created_by=manager, task_kind="pairwise", overlap=args.overlap)
    n_users = max(args.levels) + 1  # one spare annotator for the in-process query count
    users = user_model.objects.bulk_create(
        [user_model(username=f"annotator{i:03d}", password=make_password(None)) for i in range(n_users)]
    )
    tokens = Token.objects.bulk_create([Token(key=Token.generate_key(), user=u) for u in users])
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users])
    log(
        f"database {args.db_name} recreated and migrated in {migrate_s:.1f}s; project {project.pk} (overlap "
        f"{project.overlap}); {n_users} annotators with their own tokens"
    )
    return {"project": project, "manager": manager, "tokens": [t.key for t in tokens], "migrate_s": migrate_s}


# --- phase 2: import ------------------------------------------------------------------------


def phase_import(args: argparse.Namespace, project: Any, workdir: Path) -> dict[str, Any]:
    from django.db import connection

    from bench.datagen import write_jsonl
    from labeling.services.imports import tasks_import

    path = workdir / "tasks.jsonl"
    t0 = time.perf_counter()
    size = write_jsonl(path, args.tasks, prelabelled=False, seed=1)
    gen_s = time.perf_counter() - t0
    log(f"generated {args.tasks:,} pairwise tasks ({size / 2**20:.0f} MiB JSONL) in {gen_s:.1f}s")

    with path.open("rb") as fh:
        t0 = time.perf_counter()
        result = tasks_import(project=project, lines=fh)
        import_s = time.perf_counter() - t0
    rate = result.created_tasks / import_s
    log(
        f"tasks_import: {result.created_tasks:,} tasks in {import_s:.2f}s = {rate:,.0f} tasks/s "
        f"(target >= {TARGETS['import_tasks_per_s']:,}; Label Studio {LABEL_STUDIO['import_tasks_per_s']:,})"
    )
    # Breakdown: the parse + validate step alone (pure Python, no database), timed again on the same file.
    # Indicative only: an import that overlaps parsing with COPY does not add the two up.
    parse_s = None
    try:
        from labeling.importing import parse_lines

        with path.open("rb") as fh:
            t0 = time.perf_counter()
            parse_lines(fh, task_kind=project.task_kind, max_completions=2)
            parse_s = time.perf_counter() - t0
    except (ImportError, TypeError) as exc:  # the parser's API changed: skip the breakdown
        log(f"  (no parse-only breakdown: {exc!r})")
    if parse_s is not None:
        log(
            f"  parse + validate + content hash alone (timed again, no database): {parse_s:.2f}s "
            f"(= {parse_s / import_s:.0%} of the import's wall time); the rest (dedup lookup, COPY, commit) "
            f"~{import_s - parse_s:.2f}s if nothing overlaps"
        )
    analyze_s = None
    if not args.no_analyze:
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        analyze_s = time.perf_counter() - t0
        log(f"ANALYZE after the import: {analyze_s:.1f}s (what autovacuum would do shortly after a bulk load)")
    path.unlink()
    return {
        "tasks": result.created_tasks,
        "file_mib": round(size / 2**20, 1),
        "generate_s": round(gen_s, 2),
        "import_s": round(import_s, 2),
        "tasks_per_s": round(rate),
        "parse_only_s": None if parse_s is None else round(parse_s, 2),
        "analyze_s": None if analyze_s is None else round(analyze_s, 2),
        "result": result.to_json(),
    }


# --- phase 3: annotators over HTTP ----------------------------------------------------------


def _run_load(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    spec_path = workdir / "load-spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load", "--spec", str(spec_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout))


def phase_http(
    args: argparse.Namespace, env: dict[str, str], project_id: int, tokens: list[str], workdir: Path
) -> dict[str, Any]:
    from bench.cpu import CpuSampler
    from bench.server import Gunicorn, free_port

    server = Gunicorn(
        env=env, workers=args.workers, threads=args.threads, port=free_port(), log=OUT_DIR / "gunicorn.log"
    )
    log(f"gunicorn config: {' '.join(server.command[1:])}  (DJANGO_DEBUG=0, CONN_MAX_AGE=60 from DATABASE_URL)")
    server.start()
    levels: dict[str, list[dict[str, Any]]] = {}
    try:
        warm = _run_load(
            {
                "base_url": server.base_url,
                "project_id": project_id,
                "tokens": tokens[: max(args.levels)],
                "duration": args.warmup,
                "seed": 999,
            },
            workdir,
        )
        log(
            f"warm-up ({args.warmup:.0f}s at {max(args.levels)} annotators, not counted): "
            f"{warm['annotations_per_s']}/s, errors {warm['error_count']}"
        )
        for rep in range(args.repeat):
            for c in args.levels:
                sampler = CpuSampler(
                    {
                        "gunicorn": functools.partial(tree_pids, server.proc.pid),  # type: ignore[union-attr]
                        "postgres": functools.partial(postgres_pids, args.db_name),
                    }
                ).start()
                t0 = time.perf_counter()
                res = _run_load(
                    {
                        "base_url": server.base_url,
                        "project_id": project_id,
                        "tokens": tokens[:c],
                        "duration": args.duration,
                        "seed": rep * 100 + c,
                    },
                    workdir,
                )
                used = sampler.stop()
                wall = time.perf_counter() - t0  # the sampler's window: load generator start-up included
                loadgen_s = res.pop("loadgen_cpu_s")
                res["cpu"] = {
                    "gunicorn_cores": round(used["gunicorn"] / wall, 2),
                    "postgres_cores": round(used["postgres"] / wall, 2),
                    "loadgen_cores": round(loadgen_s / res["duration_s"], 2),
                    "machine_busy_cores": round(used["machine"] / wall, 2),
                }
                res["cpu"]["other_cores"] = round(
                    (used["machine"] - used["gunicorn"] - used["postgres"] - loadgen_s) / wall, 2
                )
                if res["annotations"]:
                    res["cpu"]["server_ms_per_annotation"] = round(used["gunicorn"] / res["annotations"] * 1000, 2)
                    res["cpu"]["postgres_ms_per_annotation"] = round(used["postgres"] / res["annotations"] * 1000, 2)
                levels.setdefault(str(c), []).append(res)
                n, s = res["next"], res["submit"]
                log(
                    f"run {rep + 1}/{args.repeat} {c:>2} annotators: {res['annotations_per_s']:>6}/s annotations "
                    f"| next p50/p95/p99 {n['p50_ms']}/{n['p95_ms']}/{n['p99_ms']} ms "
                    f"| submit p50/p95/p99 {s['p50_ms']}/{s['p95_ms']}/{s['p99_ms']} ms "
                    f"| errors {res['error_count']} {res['errors'] or ''} | cpu {res['cpu']}"
                )
                for sample in res["error_samples"]:
                    log(f"    error sample: {sample}")
        floor = [] if args.no_floor else [_floor(args, server, path) for path in ("/api/v1/projects/", "/healthz")]
        profile = _profile_server(args, server, project_id, tokens, workdir) if args.py_spy else None
    finally:
        server.stop()
    return {
        "config": {"workers": args.workers, "threads": args.threads, "command": " ".join(server.command[1:])},
        "warmup": warm,
        "levels": {c: _median_level(runs) for c, runs in levels.items()},
        "runs": levels,
        "py_spy": profile,
        "floor": floor,
    }


def _floor(args: argparse.Namespace, server: Any, path: str) -> dict[str, Any]:
    """The stack's floor: 8 clients on a request that does ~nothing (see bench/floor.py)."""
    from bench.cpu import CpuSampler

    sampler = CpuSampler({"gunicorn": functools.partial(tree_pids, server.proc.pid)}).start()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.floor", "--base-url", server.base_url, "--path", path, "--concurrency", "8",
         "--duration", str(args.floor_seconds)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    used = sampler.stop()
    wall = time.perf_counter() - t0
    res = dict(json.loads(proc.stdout))
    res["gunicorn_cpu_ms_per_request"] = round(used["gunicorn"] / max(res["requests"], 1) * 1000, 2)
    res["other_cores"] = round((used["machine"] - used["gunicorn"] - res.pop("loadgen_cpu_s")) / wall, 2)
    log(
        f"floor GET {path} at 8 clients: {res['requests_per_s']:,.0f} req/s, p50 {res['p50_ms']} ms, p99 "
        f"{res['p99_ms']} ms, {res['gunicorn_cpu_ms_per_request']} ms gunicorn CPU per request, statuses "
        f"{res['statuses']} (other processes + Postgres used {res['other_cores']} cores)"
    )
    return res


def _profile_server(
    args: argparse.Namespace, server: Any, project_id: int, tokens: list[str], workdir: Path
) -> dict[str, Any]:
    """An extra level at 8 annotators with py-spy sampling the workers (--gil): where the server's CPU goes."""
    from bench.pyspy import record, summarise

    raw = OUT_DIR / f"pyspy-gunicorn-{args.stamp}.txt"
    spy = record(args.py_spy, server.proc.pid, args.profile_seconds, raw)
    time.sleep(1.0)
    res = _run_load(
        {
            "base_url": server.base_url,
            "project_id": project_id,
            "tokens": tokens[:8],
            "duration": args.profile_seconds,
            "seed": 4242,
        },
        workdir,
    )
    spy.wait(timeout=args.profile_seconds + 60)
    summary = summarise(raw)
    summary["raw_file"] = str(raw)
    summary["annotations_per_s_while_profiled"] = res["annotations_per_s"]
    report = OUT_DIR / f"pyspy-gunicorn-{args.stamp}-summary.json"
    report.write_text(json.dumps(summary, indent=2))
    log(
        f"py-spy --gil on the gunicorn workers, 8 annotators for {args.profile_seconds:.0f}s (not counted; "
        f"{summary.get('samples', 0)} samples); share of Python CPU (inclusive) -> {report}"
    )
    for label, pct in (summary.get("buckets_pct") or {}).items():
        log(f"    {pct:5.1f}%  {label}")
    return summary


def _median_level(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over repeats of each figure (a single run is returned as is)."""
    if len(runs) == 1:
        return runs[0]

    def med(path: tuple[str, ...]) -> Any:
        values = []
        for r in runs:
            v: Any = r
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            if v is not None:
                values.append(v)
        return statistics.median(values) if values else None

    out: dict[str, Any] = {
        "concurrency": runs[0]["concurrency"],
        "repeats": len(runs),
        "annotations_per_s": med(("annotations_per_s",)),
        "requests_per_s": med(("requests_per_s",)),
        "error_count": sum(r["error_count"] for r in runs),
        "errors": {k: sum(r["errors"].get(k, 0) for r in runs) for r in runs for k in r["errors"]},
    }
    for ep in ("next", "submit"):
        out[ep] = {k: med((ep, k)) for k in ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms")}
    out["cpu"] = {k: med(("cpu", k)) for k in runs[0]["cpu"]}
    return out


# --- phase 4: SQL statements per request ----------------------------------------------------


def phase_queries(args: argparse.Namespace, project_id: int, token: str) -> dict[str, Any]:
    from bench.queries import count_queries, explain_lease, profile_requests

    result = count_queries(token=token, project_id=project_id, samples=args.query_samples)
    for ep in ("next", "submit"):
        r = result[ep]
        log(
            f"SQL per {ep} request ({r['samples']} samples): ORM queries median {r['median']}, max {r['max']} "
            f"(+{r['transaction_control_median']:.0f} BEGIN/COMMIT) (target <= {TARGETS['queries_per_request']}; "
            f"Label Studio {LABEL_STUDIO['queries_' + ep]}); every statement on the wire (libpq trace, incl. the "
            f"per-request health check): median {r['wire_median']}, max {r['wire_max']}; "
            f"in-process p50 {r['in_process_p50_ms']} ms"
        )
        for sql in r["wire_statements"]:
            log(f"    {sql}")
    stamp = args.stamp
    from django.contrib.auth import get_user_model

    from labeling.models import Project

    project = Project.objects.get(pk=project_id)
    user_id = get_user_model().objects.get(auth_token__key=token).pk
    result["lease_explain"] = explain_lease(project=project, user_id=user_id, out=OUT_DIR / f"lease-plan-{stamp}.txt")
    le = result["lease_explain"]
    log(
        f"lease UPDATE (EXPLAIN ANALYZE, rolled back, median of 5): {le['execution_ms_median']} ms execution + "
        f"{le['planning_ms_median']} ms planning; join {le['top_join']}; seq scans {le['seq_scans']} -> {le['file']}"
    )
    result["profile"] = profile_requests(
        token=token, project_id=project_id, pairs=args.profile_pairs, out=OUT_DIR / f"profile-requests-{stamp}.txt"
    )
    log(
        f"cProfile of {args.profile_pairs} in-process next+submit pairs: {result['profile']['ms_per_pair']} ms/pair "
        f"-> {result['profile']['file']}"
    )
    result["pg_stat_statements"] = _pg_stat_statements_note(args)
    return result


def _pg_stat_statements_note(args: argparse.Namespace) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        libs = cursor.fetchone()[0]
    if "pg_stat_statements" not in libs:
        return "not loaded (shared_preload_libraries is empty); cross-check skipped"
    return "loaded; see pg_stat_statements"  # pragma: no cover - not on the benchmark machine


# --- phase 5: export ------------------------------------------------------------------------


def phase_export(args: argparse.Namespace, manager: Any, workdir: Path) -> dict[str, Any]:
    from django.db import connection

    from bench.datagen import write_jsonl
    from labeling.models import Judgment
    from labeling.services.imports import tasks_import
    from labeling.services.projects import project_create

    project = project_create(name="Bench export", created_by=manager, task_kind="pairwise", overlap=1)
    path = workdir / "prelabelled.jsonl"
    t0 = time.perf_counter()
    size = write_jsonl(path, args.export_rows, prelabelled=True, seed=2)
    gen_s = time.perf_counter() - t0
    log(
        f"export set-up: generated {args.export_rows:,} pre-labelled chosen/rejected pairs "
        f"({size / 2**20:.0f} MiB) in {gen_s:.1f}s"
    )
    with path.open("rb") as fh:
        t0 = time.perf_counter()
        result = tasks_import(project=project, lines=fh)
        import_s = time.perf_counter() - t0
    path.unlink()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    judgments = Judgment.objects.filter(project=project).count()
    log(
        f"export set-up: tasks_import wrote {result.created_tasks:,} tasks + {result.imported_judgments:,} imported "
        f"judgments in {import_s:.1f}s ({result.created_tasks / import_s:,.0f} tasks/s) -- set-up through the real "
        f"import service (COPY), not raw SQL; {judgments:,} judgments in the project"
    )
    out_file = workdir / "export.jsonl" if args.export_to_file else Path(os.devnull)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.export_worker",
            "--project-id",
            str(project.pk),
            "--format",
            args.export_format,
            "--expected-rows",
            str(judgments),
            "--out",
            str(out_file),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"export worker failed:\n{proc.stderr[-4000:]}")
    res = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.export_to_file and out_file.exists():
        res["file_mib"] = round(out_file.stat().st_size / 2**20, 1)
        out_file.unlink()
    res.update(
        setup_generate_s=round(gen_s, 2),
        setup_import_s=round(import_s, 2),
        judgments=judgments,
        setup_import_tasks_per_s=round(result.created_tasks / import_s),
    )
    log(
        f"export ({res['format']}, via {res['function']}; path: {res.get('path')}): "
        f"{res['rows']:,} rows in {res['seconds']:.2f}s = "
        f"{res['rows_per_s']:,.0f} rows/s (target >= {TARGETS['export_rows_per_s']:,}); peak RSS "
        f"{res['peak_rss_mib']:.0f} MiB; RSS at start {res['rss_start_mib']:.0f} MiB"
    )
    for point in res["rss_samples"]:
        log(f"    RSS at {point['pct']:>3}% ({point['rows']:>9,} rows): {point['rss_mib']:.1f} MiB")
    if args.export_python_path:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.export_worker", "--project-id", str(project.pk), "--mode", "app-python",
             "--expected-rows", str(judgments), "--out", os.devnull],
            cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode == 0:
            py = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
            res["python_path"] = {k: py[k] for k in ("rows", "seconds", "rows_per_s", "peak_rss_mib", "rss_samples")}
            log(
                f"export through the pure-Python path (fast path switched off): {py['rows']:,} rows in "
                f"{py['seconds']:.1f}s = {py['rows_per_s']:,.0f} rows/s, peak RSS {py['peak_rss_mib']:.0f} MiB"
            )
        else:
            log(f"python-path export failed (ignored): {proc.stderr[-500:]}")
    if not args.no_sql_reference:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.export_worker", "--project-id", str(project.pk), "--mode", "sql-reference",
             "--expected-rows", str(judgments), "--out", os.devnull],
            cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode == 0:
            ref = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
            res["sql_reference"] = {k: ref[k] for k in ("rows", "seconds", "rows_per_s", "mib_per_s", "peak_rss_mib")}
            log(
                f"reference, NOT the app: the same TRL rows built by Postgres (json_build_object, server-side cursor): "
                f"{ref['rows']:,} rows in {ref['seconds']:.1f}s = {ref['rows_per_s']:,.0f} rows/s, peak RSS "
                f"{ref['peak_rss_mib']:.0f} MiB -- the ceiling of moving row building into SQL on this machine"
            )
        else:
            log(f"reference export failed (ignored): {proc.stderr[-500:]}")
    return res


# --- summary --------------------------------------------------------------------------------


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("MET" if ok else "NOT MET")


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    imp = results.get("import")
    if imp:
        rows.append(
            {
                "metric": "import tasks/s",
                "value": imp["tasks_per_s"],
                "target": ">= 20,000",
                "met": imp["tasks_per_s"] >= TARGETS["import_tasks_per_s"],
                "label_studio": "2,650",
            }
        )
    http = results.get("http")
    if http:
        for c, lvl in http["levels"].items():
            ann = lvl["annotations_per_s"]
            worst_p99 = max(lvl["next"]["p99_ms"] or 0, lvl["submit"]["p99_ms"] or 0)
            is8 = c == "8"
            ls = {"1": "6.4", "8": "9.7"}.get(c, "-")
            rows.append(
                {
                    "metric": f"annotations/s @ {c}",
                    "value": ann,
                    "target": ">= 200" if is8 else "",
                    "met": ann >= TARGETS["annotations_per_s_at_8"] if is8 else None,
                    "label_studio": ls,
                }
            )
            for ep in ("next", "submit"):
                e = lvl[ep]
                rows.append(
                    {
                        "metric": f"{ep} p50/p95/p99 ms @ {c}",
                        "value": f"{fmt(e['p50_ms'])}/{fmt(e['p95_ms'])}/{fmt(e['p99_ms'])}",
                        "target": "p99 < 100" if is8 else "",
                        "met": (e["p99_ms"] or 1e9) < TARGETS["p99_ms_at_8"] if is8 else None,
                        "label_studio": {("1", "next"): "p50 78", ("8", "next"): "p99 ~730"}.get((c, ep), "-"),
                    }
                )
            rows.append(
                {
                    "metric": f"errors @ {c}",
                    "value": lvl["error_count"],
                    "target": "0",
                    "met": lvl["error_count"] == 0 and worst_p99 >= 0,
                    "label_studio": "-",
                }
            )
            cpu = lvl["cpu"]
            if cpu.get("server_ms_per_annotation") is not None:
                cost = cpu["server_ms_per_annotation"] + cpu["postgres_ms_per_annotation"]
                rows.append(
                    {
                        "metric": f"  CPU ms/annotation @ {c} (gunicorn+pg)",
                        "value": f"{cpu['server_ms_per_annotation']:.1f}+{cpu['postgres_ms_per_annotation']:.1f}"
                        f" -> <= {2000 / cost:.0f}/s on 2 idle cores; other procs used {cpu['other_cores']:.2f} cores",
                        "target": "(info)",
                        "met": None,
                        "label_studio": "-",
                    }
                )
    q = results.get("queries")
    if q:
        for ep in ("next", "submit"):
            rows.append(
                {
                    "metric": f"SQL per {ep} (median/max)",
                    "value": f"{q[ep]['median']}/{q[ep]['max']}",
                    "target": "<= 5",
                    "met": q[ep]["max"] <= TARGETS["queries_per_request"],
                    "label_studio": str(LABEL_STUDIO["queries_" + ep]),
                }
            )
            rows.append(
                {
                    "metric": f"  {ep}: statements on the wire",
                    "value": f"{q[ep]['wire_median']} (ORM {q[ep]['median']} + BEGIN/COMMIT + health check)",
                    "target": "(info)",
                    "met": None,
                    "label_studio": "-",
                }
            )
    ex = results.get("export")
    if ex:
        rows.append(
            {
                "metric": f"export rows/s ({ex['rows']:,} rows)",
                "value": round(ex["rows_per_s"]),
                "target": ">= 100,000",
                "met": ex["rows_per_s"] >= TARGETS["export_rows_per_s"],
                "label_studio": "~530 (3,000 in 5.7 s)",
            }
        )
        rss = ", ".join(f"{p['pct']}%: {p['rss_mib']:.0f}" for p in ex["rss_samples"])
        rows.append(
            {
                "metric": "export RSS MiB (flat?)",
                "value": f"{rss}; peak {ex['peak_rss_mib']:.0f}",
                "target": "flat",
                "met": ex["memory_flat"],
                "label_studio": "-",
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = ("metric", "value", "target", "met", "label_studio")
    cells = [[fmt(r[h]) if h != "met" else _met(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print("\n" + line + "\n" + "-" * len(line))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def code_state() -> dict[str, Any]:
    """Which app code was measured: the commit, and the uncommitted changes to it (files + a hash of the diff)."""
    import hashlib

    def git(*cmd: str) -> str:
        out = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.rstrip("\n")  # not strip(): porcelain lines start with a meaningful space

    paths = ["labeling", "arbiter", "rewardmodel", "training", "frontend"]
    status = git("status", "--porcelain", "--", *paths).splitlines()
    modified = [line[3:] for line in status if not line.startswith("??")]
    untracked = [line[3:] for line in status if line.startswith("??")]
    diff = git("diff", "HEAD", "--", *paths)
    for name in untracked:  # untracked app files are part of what ran
        path = REPO / name
        if path.is_file():
            diff += path.read_text(errors="replace")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "modified_files": modified,
        "untracked_files": untracked,
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


def machine() -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        info["postgres"] = cursor.fetchone()[0].split(" on ")[0]
        for name in ("shared_buffers", "synchronous_commit", "max_connections"):
            cursor.execute(f"SHOW {name}")
            info[f"pg_{name}"] = cursor.fetchone()[0]
    return info


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes and short levels: a smoke run")
    p.add_argument("--db-host", default="127.0.0.1")
    p.add_argument("--db-port", type=int, default=5432)
    p.add_argument("--db-user", default="postgres")
    p.add_argument("--db-name", default="arbiter_bench", help="DROPPED and recreated")
    p.add_argument("--tasks", type=int, help="tasks to import (default 100,000; quick 5,000)")
    p.add_argument("--overlap", type=int, default=1, help="the project's overlap (judgments wanted per task)")
    p.add_argument("--no-analyze", action="store_true", help="skip ANALYZE after the import")
    p.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker (gthread)")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32], help="concurrent annotators per level")
    p.add_argument("--duration", type=float, help="seconds per level (default 20; quick 5)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before the levels (default 3; quick 2)")
    p.add_argument("--repeat", type=int, default=1, help="run every level this many times; report medians")
    p.add_argument("--query-samples", type=int, help="next+submit pairs for the SQL count (default 100; quick 20)")
    p.add_argument("--profile-pairs", type=int, help="next+submit pairs under cProfile (default 300; quick 50)")
    p.add_argument("--export-rows", type=int, help="judgments to export (default 1,000,000; quick 20,000)")
    p.add_argument("--export-format", default="trl")
    p.add_argument("--export-to-file", action="store_true", help="write the export to a temp file, not /dev/null")
    p.add_argument("--no-floor", action="store_true", help="skip the framework-floor requests (401, /healthz)")
    p.add_argument("--floor-seconds", type=float, default=6.0)
    p.add_argument("--py-spy", help="path to a py-spy binary: profile the workers during an extra 8-annotator level")
    p.add_argument("--profile-seconds", type=float, default=12.0, help="length of the py-spy level")
    p.add_argument(
        "--export-python-path",
        action="store_true",
        help="also export through the pure-Python path (the Postgres fast path switched off), for comparison",
    )
    p.add_argument(
        "--no-sql-reference",
        action="store_true",
        help="skip the reference export that builds the TRL JSON inside Postgres (not the app's code path)",
    )
    p.add_argument("--skip", nargs="*", default=[], choices=["http", "queries", "export"], help="phases to skip")
    args = p.parse_args(argv)
    q = args.quick
    args.tasks = args.tasks or (5_000 if q else 100_000)
    args.duration = args.duration or (5.0 if q else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if q else 3.0)
    args.query_samples = args.query_samples or (20 if q else 100)
    args.profile_pairs = args.profile_pairs or (50 if q else 300)
    args.export_rows = args.export_rows or (20_000 if q else 1_000_000)
    args.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_all = time.perf_counter()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    env = configure_env(database_url(args.db_host, args.db_port, args.db_user, args.db_name))
    import django

    django.setup()
    results: dict[str, Any] = {"started": args.stamp, "quick": args.quick, "argv": sys.argv[1:]}
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-") as tmp:
        workdir = Path(tmp)
        ctx = setup(args)
        results["machine"] = machine()
        results["code"] = code_state()
        log(f"machine: {results['machine']}")
        log(f"code: {results['code']}")
        project, tokens = ctx["project"], ctx["tokens"]
        results["import"] = phase_import(args, project, workdir)
        if "http" not in args.skip:
            results["http"] = phase_http(args, env, project.pk, tokens[:-1], workdir)
        if "queries" not in args.skip:
            results["queries"] = phase_queries(args, project.pk, tokens[-1])
        if "export" not in args.skip:
            results["export"] = phase_export(args, ctx["manager"], workdir)
    results["orchestrator_rss_mib"] = round(rss_mb(), 1)
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    results["targets"] = TARGETS
    results["label_studio_1_23"] = LABEL_STUDIO
    rows = summary(results)
    results["summary"] = rows
    print_table(rows)
    out = OUT_DIR / f"results-{args.stamp}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\ntotal {results['total_s']:.0f}s; results written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
