"""Importing JSONL task files: validate every line, then write everything or nothing, in bulk.

On Postgres the file is parsed and written at once, in one transaction: each batch of parsed tasks
goes in with COPY (ids reserved from the sequences first) from a worker thread while the next batch is
parsed, and a bad line anywhere rolls everything back. Elsewhere the whole file is parsed first, then
written with ``bulk_create``. Large files run as a Celery job (``ImportJob``) with progress; small
ones inline.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from arbiter.errors import ValidationFailed
from labeling.importing import ImportFileError, LineParser, TaskRecord
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


# --- Postgres: COPY, streamed while the file is parsed ----------------------------------------

PROMPT_COLUMNS = ("id", "project_id", "messages", "external_id", "metadata", "split", "created_at")
TASK_COLUMNS = (
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
)
COMPLETION_COLUMNS = ("task_id", "position", "text", "model_name", "generation_params")
JUDGMENT_COLUMNS = (
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
)
GOLD_COLUMNS = ("task_id", "ranking", "all_bad", "note")
# Batches the parser hands to the writer thread, and how many may wait for it (memory stays bounded).
STREAM_BATCH = 5000
STREAM_FIRST_BATCH = 500  # a small first batch: the server starts sooner
STREAM_QUEUE = 4
STREAM_THREAD = True  # False: write each batch before parsing the next (no overlap)


# COPY's binary format: a signature, then per row a field count and each field as (length, bytes), -1 = NULL;
# a trailer ends the data. Integers big-endian; bool one byte; text UTF-8 (the connection's client encoding:
# Django sets UTF8); jsonb a version byte (1) then the JSON text; timestamptz microseconds since 2000-01-01
# UTC. Postgres then parses no text for numbers, flags and timestamps and unescapes nothing, and the encoder
# escapes nothing: one ``pack`` per row plus the encoded strings.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_LEN = struct.Struct(">i").pack
_JSONB_HEAD = struct.Struct(">iB").pack  # length (the version byte included), version 1
_EMPTY_OBJECT = _JSONB_HEAD(3, 1) + b"{}"
_EMPTY_LIST = _JSONB_HEAD(3, 1) + b"[]"
_EMPTY_TEXT = _LEN(0)
_NULL = _LEN(-1)
# prompt: 7 fields; id, project_id, then the length of messages and jsonb's version byte
_PROMPT_HEAD = struct.Struct(">hiqiqiB").pack
# task: 11 fields, all fixed-size but import_job_id (two layouts: NULL or a value)
_TASK_ROW = struct.Struct(">hiqiqiqi64si?ihiii?iiiiq").pack
_TASK_ROW_JOB = struct.Struct(">hiqiqiqi64si?ihiii?iiiqiq").pack
# completion: 5 fields; task_id, position, then the length of the text
_COMPLETION_HEAD = struct.Struct(">hiqihi").pack
# judgment: 12 fields; project_id, task_id, then action, source, ranking ...
_JUDGMENT_HEAD = struct.Struct(">hiqiq").pack
# gold answer: 4 fields; task_id, then ranking, all_bad, note
_GOLD_HEAD = struct.Struct(">hiq").pack
_GOLD_TAIL = {flag: struct.pack(">i?", 1, flag) + _EMPTY_TEXT for flag in (False, True)}


def _text(value: str) -> bytes:
    data = value.encode()
    return _LEN(len(data)) + data


def _jsonb(data: bytes) -> bytes:
    return _JSONB_HEAD(len(data) + 1, 1) + data


def _metadata(value: dict[str, Any]) -> bytes:
    # json.dumps, as the ORM writes it: it keeps integers beyond 64 bits exact (orjson cannot write them).
    return _jsonb(json.dumps(value).encode()) if value else _EMPTY_OBJECT


_Block = tuple[type, tuple[str, ...], bytes]  # a model, the columns, the rows in COPY's binary format


@dataclass
class _Counts:
    created: int = 0
    existing: int = 0
    judgments: int = 0
    gold: int = 0


class _CopyWriter:
    """Writes batches of parsed records with COPY, on the import's connection and in its transaction.

    With ``threaded`` a worker thread runs the COPYs while the caller parses the next batch, so the
    server ingests rows (heap, indexes, WAL, the foreign-key queue) on another core meanwhile. The
    caller must not use the connection between ``__enter__`` and ``__exit__``: ``__exit__`` waits for
    the worker, so the transaction is committed or rolled back only once it is done. A failure in the
    worker is raised in the caller's thread (at the next ``put`` or at ``__exit__``). Batches still
    queued are skipped once ``stop()`` is true (a bad line was found: everything will be rolled back)
    or the caller failed.
    """

    def __init__(
        self,
        *,
        project: Project,
        job_id: int | None,
        check_existing: bool,
        threaded: bool,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.pgconn = connection.connection  # the psycopg connection, inside the import's transaction
        self.project_pk = project.pk
        self.complete_when_labelled = project.overlap <= 1
        self.job_id = job_id
        # created_at of every row: one timestamp, in microseconds since Postgres' epoch
        self.created_us = (timezone.now() - _PG_EPOCH) // timedelta(microseconds=1)
        created = struct.pack(">iq", 8, self.created_us)
        self.prompt_tails: dict[str, bytes] = {}  # split, created_at
        self.model_tails: dict[str, bytes] = {}  # model_name, generation_params
        # action, source | ranking | all_bad, criteria, rationale, flags, idempotency_key, is_live, created_at
        self.judgment_middle = _text(JudgmentAction.LABEL.value) + _text(Source.IMPORT.value)
        self.judgment_tail = (
            struct.pack(">i?", 1, False)
            + _EMPTY_OBJECT
            + _EMPTY_TEXT
            + _EMPTY_LIST
            + _EMPTY_TEXT
            + struct.pack(">i?", 1, True)
            + created
        )
        self._created = created
        self.check_existing = check_existing
        self.counts = _Counts()
        self.threaded = threaded
        self.stop = stop
        self.aborted = False
        self.executor: ThreadPoolExecutor | None = None
        self.pending: deque[Future[None]] = deque()
        self.side: BaseDatabaseWrapper | None = None  # for ids while the worker runs a COPY (_reserve_ids)
        self.side_failed = False
        with self.pgconn.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, 'id'), pg_get_serial_sequence(%s, 'id')",
                [Prompt._meta.db_table, Task._meta.db_table],
            )
            row = cursor.fetchone()
            assert row is not None
            self.prompt_seq, self.task_seq = row
            # The foreign keys of the tables written (Django makes them DEFERRABLE INITIALLY DEFERRED).
            cursor.execute(
                "SELECT format('%%I.%%I', n.nspname, c.conname) FROM pg_constraint c "
                "JOIN pg_namespace n ON n.oid = c.connamespace "
                "WHERE c.contype = 'f' AND c.condeferrable AND c.conrelid = ANY(%s::regclass[]) ORDER BY 1",
                [[m._meta.db_table for m in (Prompt, Task, Completion, Judgment, GoldAnswer)]],
            )
            self.foreign_keys = ", ".join(row[0] for row in cursor.fetchall())

    def __enter__(self) -> _CopyWriter:
        self._set_foreign_keys("IMMEDIATE")
        if self.threaded:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tasks-import-copy")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self.executor is not None:
            try:
                if exc_type is None:
                    while self.pending:
                        self.pending.popleft().result()  # a failure in the worker is raised here
            finally:
                self.aborted = True  # whatever is still queued is not written: the transaction rolls back
                for future in self.pending:
                    future.cancel()
                self.executor.shutdown(wait=True)
                if self.side is not None:
                    self.side.close()
        if exc_type is None:
            # Back to deferred for the rest of an enclosing transaction. On an error the rollback (of the
            # transaction, or of the savepoint of a nested atomic block) restores it.
            self._set_foreign_keys("DEFERRED")

    def _set_foreign_keys(self, mode: str) -> None:
        """Check the foreign keys of the rows written at the end of each COPY (IMMEDIATE) rather than at commit.

        The checks are the same, row by row, but they run while the next batch is parsed instead of all at
        once after the last one, and the queue of pending checks no longer grows with the file. Parents are
        written before their children in each batch, so every check finds its row."""
        if self.foreign_keys:
            with self.pgconn.cursor() as cursor:
                cursor.execute(f"SET CONSTRAINTS {self.foreign_keys} {mode}")

    def put(self, records: list[TaskRecord]) -> None:
        """Drop the tasks the project already has, reserve ids and encode the rows here, in the caller's
        thread; hand the COPYs to the worker (or run them now, unthreaded)."""
        try:
            records, ids = self._prepare(records)
        except Exception:
            self._raise_worker_failure()  # a failed COPY aborts the transaction: report that, not the echo
            raise
        if not records:
            return
        blocks = self._encode(records, ids)
        counts = self.counts
        counts.created += len(records)
        counts.judgments += sum(1 for r in records if r.preference)
        counts.gold += sum(1 for r in records if r.gold is not None)
        if self.executor is None:
            self._copy_all(blocks)
            return
        pending = self.pending
        while pending and (len(pending) >= STREAM_QUEUE or pending[0].done()):
            pending.popleft().result()  # waits while STREAM_QUEUE batches are queued; raises a failure
        pending.append(self.executor.submit(self._copy_all, blocks))

    def _prompt_tail(self, split: str) -> bytes:
        tail = self.prompt_tails[split] = _text(split) + self._created
        return tail

    def _raise_worker_failure(self) -> None:
        for future in self.pending:
            exc = future.exception()
            if exc is not None:
                raise exc

    def _prepare(self, records: list[TaskRecord]) -> tuple[list[TaskRecord], list[tuple[int, int]]]:
        """The records the project does not have yet, and a (prompt id, task id) reserved for each."""
        with self.pgconn.cursor() as cursor:
            # A short statement: psycopg's connection lock slots it between two of the worker's COPYs.
            if self.check_existing:
                cursor.execute(
                    f"SELECT content_hash FROM {Task._meta.db_table} WHERE project_id = %s AND content_hash = ANY(%s)",
                    [self.project_pk, [r.content_hash for r in records]],
                )
                existing = {row[0] for row in cursor.fetchall()}
                if existing:
                    self.counts.existing += len(existing)
                    records = [r for r in records if r.content_hash not in existing]
                    if not records:
                        return [], []
        return records, self._reserve_ids(len(records))

    def _reserve_ids(self, n: int) -> list[tuple[int, int]]:
        """n (prompt id, task id) pairs from the sequences.

        nextval is not transactional, so while the worker is busy with COPY on the import's connection the
        ids come from a second connection (opened once, in autocommit) instead of waiting for the COPY to
        end: the server keeps ingesting while this batch is encoded. The ids are the same either way, and
        burnt alike if the import rolls back."""
        sql = "SELECT nextval(%s), nextval(%s) FROM generate_series(1, %s)"
        args = [self.prompt_seq, self.task_seq, n]
        side = self._side() if any(not future.done() for future in self.pending) else None
        if side is not None:
            with side.cursor() as cursor:
                cursor.execute(sql, args)
                return cursor.fetchall()
        with self.pgconn.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def _side(self) -> BaseDatabaseWrapper | None:
        """The second connection, opened on first use; None if it cannot be opened (too many connections,
        say): then the ids come from the import's connection, after the COPY under way."""
        if self.side is None and not self.side_failed:
            side = connections.create_connection(DEFAULT_DB_ALIAS)
            try:
                side.ensure_connection()
            except DatabaseError:
                self.side_failed = True
                return None
            self.side = side
        return self.side

    def _copy_all(self, blocks: list[_Block]) -> None:
        if self.aborted or self.stop():
            return
        try:
            with self.pgconn.cursor() as cursor:
                for model, columns, data in blocks:
                    table = model._meta.db_table  # type: ignore[attr-defined]
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)") as copy:
                        copy.write(data)
        except BaseException:
            self.aborted = True  # the transaction is lost: skip the batches still queued
            raise

    def _encode(self, records: list[TaskRecord], ids: list[tuple[int, int]]) -> list[_Block]:
        """(model, columns, rows in COPY's binary format) for each table that gets rows, parents first."""
        project, job, created = self.project_pk, self.job_id, self.created_us
        complete_when_labelled = self.complete_when_labelled
        prompt_tails = self.prompt_tails
        model_tails = self.model_tails
        dumps = orjson.dumps
        prompts: list[bytes] = [_COPY_SIGNATURE]
        tasks: list[bytes] = [_COPY_SIGNATURE]
        completions: list[bytes] = [_COPY_SIGNATURE]
        judgments: list[bytes] = [_COPY_SIGNATURE]
        gold: list[bytes] = [_COPY_SIGNATURE]
        add_prompt, add_task, add_completion = prompts.extend, tasks.append, completions.extend
        for (pid, tid), r in zip(ids, records, strict=True):
            # Validated {role, content} strings without lone surrogates (the content hash encodes them): orjson
            # writes the same JSON value as json.dumps, faster.
            messages = dumps(r.messages)
            add_prompt(
                (
                    _PROMPT_HEAD(7, 8, pid, 8, project, len(messages) + 1, 1),
                    messages,
                    _text(r.external_id),
                    _metadata(r.metadata) if r.metadata else _EMPTY_OBJECT,
                    prompt_tails.get(r.split) or self._prompt_tail(r.split),
                )
            )
            is_gold = r.gold is not None
            labelled = r.preference is not None
            complete = labelled and not is_gold and complete_when_labelled
            n = len(r.completions)
            content_hash = r.content_hash.encode()
            if job is None:
                add_task(
                    _TASK_ROW(11, 8, tid, 8, project, 8, pid, 64, content_hash, 1, is_gold, 2, n, 4, labelled, 1,
                              complete, 4, 0, -1, 8, created)
                )  # fmt: skip
            else:
                add_task(
                    _TASK_ROW_JOB(11, 8, tid, 8, project, 8, pid, 64, content_hash, 1, is_gold, 2, n, 4, labelled, 1,
                                  complete, 4, 0, 8, job, 8, created)
                )  # fmt: skip
            for pos, c in enumerate(r.completions):
                text = c.text.encode()
                model = model_tails.get(c.model)
                if model is None:
                    model = model_tails[c.model] = _text(c.model) + _EMPTY_OBJECT  # model_name, generation_params
                add_completion((_COMPLETION_HEAD(5, 8, tid, 2, pos, len(text)), text, model))
            if labelled:
                judgments += (_JUDGMENT_HEAD(12, 8, project, 8, tid), self.judgment_middle, _jsonb(dumps(r.preference)),
                              self.judgment_tail)  # fmt: skip
            if is_gold:
                gold += (_GOLD_HEAD(4, 8, tid), _jsonb(dumps(r.gold)), _GOLD_TAIL[r.gold_all_bad])
        tables = [
            (Prompt, PROMPT_COLUMNS, prompts),
            (Task, TASK_COLUMNS, tasks),
            (Completion, COMPLETION_COLUMNS, completions),
            (Judgment, JUDGMENT_COLUMNS, judgments),
            (GoldAnswer, GOLD_COLUMNS, gold),
        ]
        return [(model, columns, b"".join(rows) + _COPY_TRAILER) for model, columns, rows in tables if len(rows) > 1]


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


def _lock_project(project: Project) -> None:
    # One import per project at a time: the content-hash check and the insert must not interleave.
    # FOR NO KEY UPDATE still serialises imports but does not block annotators' inserts that
    # reference the project (judgments, leases) through their foreign keys.
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()


@transaction.atomic
def _write(*, project: Project, records: list[TaskRecord], in_file_duplicates: int, job_id: int | None) -> ImportResult:
    _lock_project(project)
    existing = _existing_hashes(project, [r.content_hash for r in records])
    fresh = [r for r in records if r.content_hash not in existing]
    if fresh:
        _write_orm(project=project, records=fresh, job_id=job_id)
    return ImportResult(
        created_tasks=len(fresh),
        duplicate_tasks=in_file_duplicates + len(records) - len(fresh),
        imported_judgments=sum(1 for r in fresh if r.preference),
        gold_tasks=sum(1 for r in fresh if r.gold is not None),
    )


@transaction.atomic
def _import_copy(
    *, project: Project, parser: LineParser, lines: Iterable[bytes | str], job_id: int | None
) -> ImportResult:
    """Parse and COPY at once, in one transaction: batches go to the database while later lines are
    still being parsed. A bad line anywhere raises ImportFileError at the end, which rolls it all back."""
    _lock_project(project)
    check_existing = Task.objects.filter(project=project).exists()
    with _CopyWriter(
        project=project,
        job_id=job_id,
        check_existing=check_existing,
        threaded=STREAM_THREAD,
        stop=lambda: bool(parser.errors),
    ) as writer:
        for records in parser.batches(lines, size=STREAM_BATCH, first=STREAM_FIRST_BATCH):
            writer.put(records)
    counts = writer.counts
    return ImportResult(
        created_tasks=counts.created,
        duplicate_tasks=parser.duplicates + counts.existing,
        imported_judgments=counts.judgments,
        gold_tasks=counts.gold,
    )


def tasks_import(
    *, project: Project, lines: Iterable[bytes | str], job_id: int | None = None, writer: str | None = None
) -> ImportResult:
    """Validate every line of a JSONL file and import all of it, or nothing (ValidationFailed lists bad lines).

    ``writer``: "copy" (Postgres only; the default there) or "orm" (``bulk_create``; the default elsewhere).
    """
    options = parse_label_options(project.label_options, task_kind=project.task_kind)
    parser = LineParser(task_kind=project.task_kind, max_completions=max(options.completions_per_task, 2))
    use = writer or ("copy" if connection.vendor == "postgresql" else "orm")
    try:
        if use == "copy":
            return _import_copy(project=project, parser=parser, lines=lines, job_id=job_id)
        records: list[TaskRecord] = []
        for batch in parser.batches(lines):
            records += batch
    except ImportFileError as exc:
        raise _file_error(exc) from None
    return _write(project=project, records=records, in_file_duplicates=parser.duplicates, job_id=job_id)


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
    """The file's lines, recording the job's progress every ``every`` lines.

    On Postgres the lines are read inside the import's transaction (batches are written as they are
    parsed), so the progress goes through a connection of its own, in autocommit, to be seen at once.
    """
    own = connections.create_connection(DEFAULT_DB_ALIAS) if connection.vendor == "postgresql" else None
    try:
        with path.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                if number % every == 0:
                    now = timezone.now()
                    if own is None:
                        ImportJob.objects.filter(pk=job_id).update(processed_lines=number, heartbeat_at=now)
                    else:
                        with own.cursor() as cursor:
                            cursor.execute(
                                f"UPDATE {ImportJob._meta.db_table} SET processed_lines = %s, heartbeat_at = %s "
                                "WHERE id = %s",
                                [number, now, job_id],
                            )
                yield line
    finally:
        if own is not None:
            own.close()


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
