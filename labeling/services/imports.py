"""Importing JSONL task files: validate every line, then write everything or nothing, in bulk.

On Postgres rows go in with COPY (ids reserved from the sequences first); elsewhere with
``bulk_create``. Large files run as a Celery job (``ImportJob``) with progress; small ones inline.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from arbiter.errors import ValidationFailed
from labeling.importing import ImportFileError, TaskRecord, parse_lines
from labeling.models import (
    Completion,
    GoldAnswer,
    ImportJob,
    JobStatus,
    Judgment,
    JudgmentAction,
    Project,
    Prompt,
    Source,
    Task,
)
from labeling.options import parse_label_options

BATCH = 5000


@dataclass(frozen=True)
class ImportResult:
    created_tasks: int
    duplicate_tasks: int
    imported_judgments: int
    gold_tasks: int

    def to_json(self) -> dict[str, int]:
        return {
            "created_tasks": self.created_tasks,
            "duplicate_tasks": self.duplicate_tasks,
            "imported_judgments": self.imported_judgments,
            "gold_tasks": self.gold_tasks,
        }


def _file_error(exc: ImportFileError) -> ValidationFailed:
    details = {"errors": [e.to_json() for e in exc.errors], "truncated": exc.truncated}
    return ValidationFailed(f"nothing was imported: {exc}", details=details, code="import_invalid")


def _reserve_ids(model: type, n: int) -> list[int]:
    table = model._meta.db_table  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, n])
        return [row[0] for row in cursor.fetchall()]


def _copy(model: type, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
    table = model._meta.db_table  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _write_copy(*, project: Project, records: list[TaskRecord], job_id: int | None) -> None:
    now = timezone.now()
    n = len(records)
    prompt_ids = _reserve_ids(Prompt, n)
    task_ids = _reserve_ids(Task, n)
    _copy(
        Prompt,
        ["id", "project_id", "messages", "external_id", "metadata", "split", "created_at"],
        (
            (
                pid,
                project.pk,
                json.dumps(r.messages),
                r.external_id,
                json.dumps(r.metadata) if r.metadata else "{}",
                r.split,
                now,
            )
            for pid, r in zip(prompt_ids, records, strict=True)
        ),
    )
    _copy(
        Task,
        [
            "id",
            "project_id",
            "prompt_id",
            "content_hash",
            "is_gold",
            "n_completions",
            "judgment_count",
            "is_complete",
            "leases_out",
            "import_job_id",
            "created_at",
        ],
        (
            (
                tid,
                project.pk,
                pid,
                r.content_hash,
                r.gold is not None,
                len(r.completions),
                1 if r.preference else 0,
                bool(r.preference) and r.gold is None and project.overlap <= 1,
                0,
                job_id,
                now,
            )
            for tid, pid, r in zip(task_ids, prompt_ids, records, strict=True)
        ),
    )
    _copy(
        Completion,
        ["task_id", "position", "text", "model_name", "generation_params"],
        (
            (tid, pos, c.text, c.model, "{}")
            for tid, r in zip(task_ids, records, strict=True)
            for pos, c in enumerate(r.completions)
        ),
    )
    _copy(
        Judgment,
        [
            "project_id",
            "task_id",
            "action",
            "source",
            "ranking",
            "all_bad",
            "criteria",
            "rationale",
            "flags",
            "idempotency_key",
            "is_live",
            "created_at",
        ],
        (
            (
                project.pk,
                tid,
                JudgmentAction.LABEL,
                Source.IMPORT,
                json.dumps(r.preference),
                False,
                "{}",
                "",
                "[]",
                "",
                True,
                now,
            )
            for tid, r in zip(task_ids, records, strict=True)
            if r.preference
        ),
    )
    _copy(
        GoldAnswer,
        ["task_id", "ranking", "all_bad", "note"],
        (
            (tid, json.dumps(r.gold), r.gold_all_bad, "")
            for tid, r in zip(task_ids, records, strict=True)
            if r.gold is not None
        ),
    )


def _write_orm(*, project: Project, records: list[TaskRecord], job_id: int | None) -> None:
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(
                    project=project, messages=r.messages, external_id=r.external_id, metadata=r.metadata, split=r.split
                )
                for r in chunk
            ]
        )
        tasks = Task.objects.bulk_create(
            [
                Task(
                    project=project,
                    prompt=p,
                    content_hash=r.content_hash,
                    is_gold=r.gold is not None,
                    n_completions=len(r.completions),
                    judgment_count=1 if r.preference else 0,
                    is_complete=bool(r.preference) and r.gold is None and project.overlap <= 1,
                    import_job_id=job_id,
                )
                for p, r in zip(prompts, chunk, strict=True)
            ]
        )
        Completion.objects.bulk_create(
            [
                Completion(task=t, position=pos, text=c.text, model_name=c.model)
                for t, r in zip(tasks, chunk, strict=True)
                for pos, c in enumerate(r.completions)
            ]
        )
        Judgment.objects.bulk_create(
            [
                Judgment(
                    project=project, task=t, action=JudgmentAction.LABEL, source=Source.IMPORT, ranking=r.preference
                )
                for t, r in zip(tasks, chunk, strict=True)
                if r.preference
            ]
        )
        GoldAnswer.objects.bulk_create(
            [
                GoldAnswer(task=t, ranking=r.gold, all_bad=r.gold_all_bad)
                for t, r in zip(tasks, chunk, strict=True)
                if r.gold is not None
            ]
        )


def _existing_hashes(project: Project, hashes: list[str]) -> set[str]:
    if not Task.objects.filter(project=project).exists():
        return set()  # a first import: nothing to compare against
    if connection.vendor == "postgresql":
        # One array parameter instead of thousands of bound values.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT content_hash FROM {Task._meta.db_table} WHERE project_id = %s AND content_hash = ANY(%s)",
                [project.pk, hashes],
            )
            return {row[0] for row in cursor.fetchall()}
    found: set[str] = set()
    for start in range(0, len(hashes), BATCH):
        found.update(
            Task.objects.filter(project=project, content_hash__in=hashes[start : start + BATCH]).values_list(
                "content_hash", flat=True
            )
        )
    return found


@transaction.atomic
def _write(
    *, project: Project, records: list[TaskRecord], in_file_duplicates: int, job_id: int | None, writer: str | None
) -> ImportResult:
    # One import per project at a time: the content-hash check and the insert must not interleave.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    existing = _existing_hashes(project, [r.content_hash for r in records])
    fresh = [r for r in records if r.content_hash not in existing]
    if fresh:
        use = writer or ("copy" if connection.vendor == "postgresql" else "orm")
        (_write_copy if use == "copy" else _write_orm)(project=project, records=fresh, job_id=job_id)
    return ImportResult(
        created_tasks=len(fresh),
        duplicate_tasks=in_file_duplicates + len(records) - len(fresh),
        imported_judgments=sum(1 for r in fresh if r.preference),
        gold_tasks=sum(1 for r in fresh if r.gold is not None),
    )


def tasks_import(
    *, project: Project, lines: Iterable[bytes | str], job_id: int | None = None, writer: str | None = None
) -> ImportResult:
    """Validate every line of a JSONL file and import all of it, or nothing (ValidationFailed lists bad lines)."""
    options = parse_label_options(project.label_options, task_kind=project.task_kind)
    try:
        records, duplicates = parse_lines(
            lines, task_kind=project.task_kind, max_completions=max(options.completions_per_task, 2)
        )
    except ImportFileError as exc:
        raise _file_error(exc) from None
    return _write(project=project, records=records, in_file_duplicates=duplicates, job_id=job_id, writer=writer)


# --- jobs -----------------------------------------------------------------------------------


def _imports_dir() -> Path:
    path = Path(settings.ARTIFACTS_ROOT) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_store(*, fileobj: BinaryIO) -> tuple[Path, int]:
    """Copy an upload to the artifacts folder; return its path and its number of lines."""
    path = _imports_dir() / f"{uuid.uuid4().hex}.jsonl"
    lines = 0
    size = 0
    last = b""
    with path.open("wb") as out:
        while chunk := fileobj.read(1 << 20):
            size += len(chunk)
            if size > settings.ARBITER_MAX_UPLOAD_BYTES:
                out.close()
                path.unlink(missing_ok=True)
                raise ValidationFailed(f"the file is larger than {settings.ARBITER_MAX_UPLOAD_BYTES} bytes")
            lines += chunk.count(b"\n")
            last = chunk
            out.write(chunk)
    if size and not last.endswith(b"\n"):
        lines += 1  # a last line without a newline
    return path, lines


@transaction.atomic
def import_job_create(
    *, project: Project, created_by: User | None, filename: str, path: Path, total_lines: int
) -> ImportJob:
    """Record an import to run in the background and enqueue it once this transaction commits."""
    from labeling.tasks import import_job_run_task

    job = ImportJob.objects.create(
        project=project,
        created_by=created_by if created_by is not None and created_by.pk else None,
        filename=filename[:255],
        file_path=str(path),
        total_lines=total_lines,
    )
    transaction.on_commit(lambda: import_job_run_task.delay(job.pk))
    return job


def _progress_lines(path: Path, job_id: int, every: int = 10_000) -> Iterator[bytes]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if number % every == 0:
                now = timezone.now()
                ImportJob.objects.filter(pk=job_id).update(processed_lines=number, heartbeat_at=now)
            yield line


def import_job_run(*, job_id: int) -> ImportJob:
    """Run a pending import job. Idempotent: a job that is not pending is left alone (acks_late redelivery)."""
    now = timezone.now()
    claimed = ImportJob.objects.filter(pk=job_id, status=JobStatus.PENDING).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    if not claimed:
        return job
    path = Path(job.file_path)
    try:
        result = tasks_import(project=job.project, lines=_progress_lines(path, job.pk), job_id=job.pk)
    except ValidationFailed as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED,
            message=exc.message,
            errors=(exc.details or {}).get("errors", []),
            finished_at=timezone.now(),
        )
    except Exception as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, message=f"import crashed: {exc!r}"[:2000], finished_at=timezone.now()
        )
        raise
    else:
        ImportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.SUCCEEDED,
            processed_lines=job.total_lines,
            created_tasks=result.created_tasks,
            duplicate_tasks=result.duplicate_tasks,
            imported_judgments=result.imported_judgments,
            message=f"imported {result.created_tasks} tasks",
            finished_at=timezone.now(),
        )
    job.refresh_from_db()
    return job
