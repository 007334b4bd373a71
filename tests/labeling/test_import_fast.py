"""The fast import path: orjson decoding, streamed COPY on Postgres.

* the parser's orjson path reads every line exactly as the standard-library path does;
* the streamed COPY writer stores exactly the rows the ORM writer stores;
* a bad line late in a large file leaves nothing behind, even though earlier batches were written;
* a failure in the writer thread reaches the caller and rolls everything back;
* a job's progress shows outside the import's transaction.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import astuple
from typing import Any

import orjson
import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, transaction
from django.utils import timezone

from arbiter.errors import ValidationFailed
from labeling import importing
from labeling.importing import ImportFileError, LineParser, parse_lines
from labeling.models import Completion, GoldAnswer, ImportJob, Judgment, Prompt, Task
from labeling.services import imports
from labeling.services.imports import tasks_import
from tests.factories import make_project, make_user, pairwise_lines

BIG = 2**70  # beyond 64 bits: orjson reads it as a float, json as an int

VARIED: list[Any] = [
    {
        "id": "multi",
        "prompt": [
            {"role": "system", "content": "Be brief.\tTabs\\and backslashes\r\n"},
            {"role": "assistant", "content": "Earlier turn", "name": "bot"},
            {"role": "user", "content": "Ünïcödé ✓ 😀 \\N \\. and a \x1d separator"},
        ],
        "completions": [{"text": "tab\there", "model": "m\t1"}, {"content": "line\nbreak\\n", "model": "m2"}],
        "metadata": {"topic": "math", "nested": {"list": [1, 2.5, None, True, "ü"]}, "big": BIG},
        "split": "eval",
    },
    {"id": 17, "prompt": "Capital of France?", "chosen": "Paris", "rejected": {"text": "Lyon", "model": "m"}},
    {"prompt": "Which is better?", "chosen": {"text": "Ünï\\", "model": "x" * 250}, "rejected": "plain\r\nCRLF"},
    {"prompt": "Sky colour?", "completions": ["blue", "green"], "gold": {"ranking": [[0], [1]]}},
    {"prompt": "Tie?", "completions": ["a", "b"], "gold": {"ranking": [[0, 1]], "all_bad": True}},
    {"prompt": "Gold pair", "chosen": "yes", "rejected": "no", "gold": {"ranking": [1, 0]}},
    {"external_id": "ext-only", "prompt": "q \\ with a backslash", "completions": ["\\", "\\\\"], "metadata": {}},
    {"id": "floats", "prompt": "metadata with floats", "completions": ["1", "2"], "metadata": {"f": 0.1, "e": 1e-7}},
    {"id": BIG, "prompt": "a big integer id", "completions": ["3", "4"]},
]


def _lines(rows: list[Any]) -> list[str]:
    return [json.dumps(r, ensure_ascii=i % 2 == 0) for i, r in enumerate(rows)]


def _parse(lines: list[Any], **kwargs: Any) -> Any:
    try:
        records, duplicates = parse_lines(lines, task_kind=kwargs.get("task_kind", "pairwise"), max_completions=3)
    except ImportFileError as exc:
        return "errors", [(e.line, e.message) for e in exc.errors], exc.truncated
    return "ok", [astuple(r) for r in records], duplicates


def _std_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(raw: Any) -> Any:
        raise orjson.JSONDecodeError("forced", "", 0)

    monkeypatch.setattr(importing.orjson, "loads", refuse)


TRICKY_LINES: list[Any] = [
    *_lines(VARIED),
    "",
    "   \t",
    "\xa0",  # blank to str.strip(), not JSON whitespace
    b"\xef\xbb\xbf" + json.dumps({"prompt": "bom", "completions": ["a", "b"]}).encode(),
    b'{"prompt": "bad \xff utf-8", "completions": ["a", "b"]}',
    b'{"prompt": "encoded surrogate \xed\xa0\x80", "completions": ["a", "b"]}',
    '{"prompt": "lone \\ud800 surrogate", "completions": ["a", "b"]}',
    '{"prompt": "q", "completions": ["a", "b"], "metadata": {"x": NaN, "y": -Infinity}}',
    '{"prompt": "q2", "completions": ["a", "b"], "metadata": {"x": 1e400}}',
    '{"prompt": "q3", "completions": ["a", "b"], "split": ' + str(BIG) + "}",
    '{"prompt": [{"role": ' + str(BIG) + ', "content": "x"}], "completions": ["a", "b"]}',
    '{"prompt": "q4", "completions": ["a", "b"], "gold": {"ranking": [[' + str(BIG) + "], [0]]}}",
    '{"prompt": "q5", "completions": ["a", "b"], "id": 1.5}',
    '{"prompt": "dup", "prompt": "dup keys, last wins", "completions": ["a", "b"]}',
    '{"prompt": "q6", "completions": ["a", "b"],}',
    "{not json",
]


@pytest.mark.parametrize("cut", [len(VARIED), len(TRICKY_LINES)])
def test_orjson_path_reads_every_line_like_the_standard_library(cut, monkeypatch):
    lines = TRICKY_LINES[:cut]
    fast = _parse(lines)
    _std_only(monkeypatch)
    assert repr(fast) == repr(_parse(lines))  # repr: 2**70 == float(2**70) in Python


def test_values_orjson_would_change_come_from_the_standard_library():
    status, records, _ = _parse(_lines(VARIED))
    assert status == "ok"
    by_ext = {r[3]: r for r in records}
    assert by_ext["multi"][4]["big"] == BIG and isinstance(by_ext["multi"][4]["big"], int)
    assert by_ext["floats"][4] == {"f": 0.1, "e": 1e-7}
    assert str(BIG) in by_ext and "17" in by_ext  # integer ids, even beyond 64 bits, become strings
    status, errors, _ = _parse(
        ['{"prompt": "q", "completions": ["a", "b"], "split": ' + str(BIG) + "}", '{"prompt": "q", "completions": 5}']
    )
    assert errors == [(1, f"'split' must be 'train' or 'eval', got {BIG}"), (2, "'completions' must be a list")]
    (nan_record,) = parse_lines(['{"prompt": "q", "completions": ["a", "b"], "metadata": {"x": NaN}}'], **_PW)[0]
    assert math.isnan(nan_record.metadata["x"])


_PW = {"task_kind": "pairwise", "max_completions": 2}


def test_batches_stop_at_the_first_bad_line_but_every_error_is_listed():
    parser = LineParser(**_PW)
    lines = [*pairwise_lines(7), "{oops", *pairwise_lines(5, start=7), "[]", *pairwise_lines(2)]
    seen: list[int] = []
    with pytest.raises(ImportFileError) as info:
        for batch in parser.batches(lines, size=3):
            seen += [r.line for r in batch]
    assert seen == [1, 2, 3, 4, 5, 6]  # the 7th good line was still in the unfinished batch
    errors = [(e.line, e.message) for e in info.value.errors]
    assert errors == [
        (8, "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
        (14, "each line must be a JSON object"),
    ]
    assert parser.duplicates == 2


# --- Postgres: the streamed COPY writer -------------------------------------------------------


def _snapshot(project) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Everything the import stored for a project, keyed by content hash (ids and timestamps aside)."""
    out: dict[str, Any] = {}
    for task in Task.objects.filter(project=project).select_related("prompt"):
        p = task.prompt
        out[task.content_hash] = {
            "prompt": (p.messages, p.external_id, p.metadata, p.split),
            "task": (
                task.is_gold,
                task.n_completions,
                task.judgment_count,
                task.is_complete,
                task.leases_out,
                task.lease_horizon,
                task.import_job_id is not None,
            ),
            "completions": [
                (c.position, c.text, c.model_name, c.generation_params, c.checkpoint_id)
                for c in Completion.objects.filter(task=task).order_by("position")
            ],
            "judgments": [
                (
                    j.action,
                    j.source,
                    j.ranking,
                    j.all_bad,
                    j.strength,
                    j.criteria,
                    j.rationale,
                    j.flags,
                    j.time_spent_ms,
                    j.idempotency_key,
                    j.is_live,
                    j.annotator_id,
                    j.assignment_id,
                    j.supersedes_id,
                    j.project_id == project.pk,
                )
                for j in Judgment.objects.filter(task=task)
            ],
            "gold": [(g.ranking, g.all_bad, g.note) for g in GoldAnswer.objects.filter(task=task)],
        }
    return out


@pytest.fixture
def small_batches(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(imports, "STREAM_BATCH", 3)
    monkeypatch.setattr(imports, "STREAM_QUEUE", 2)


@pytest.mark.django_db
@pytest.mark.parametrize("threaded", [True, False])
@pytest.mark.parametrize("overlap", [1, 2])
def test_copy_writes_exactly_what_the_orm_writes(on_postgres, small_batches, monkeypatch, threaded, overlap):
    monkeypatch.setattr(imports, "STREAM_THREAD", threaded)
    lines = _lines(VARIED) + pairwise_lines(10) + pairwise_lines(3)  # 3 in-file duplicates
    snapshots = []
    for writer in ("orm", "copy"):
        project = make_project(overlap=overlap)
        job = ImportJob.objects.create(project=project, filename="f.jsonl", file_path="/dev/null")
        first = tasks_import(project=project, lines=lines[:12], job_id=job.pk, writer=writer)
        again = tasks_import(project=project, lines=lines, writer=writer)  # the first 12 are already there
        snapshots.append(((first, again), _snapshot(project)))
    (orm_results, orm_rows), (copy_results, copy_rows) = snapshots
    assert orm_results == copy_results
    assert orm_results[0].created_tasks == 12 and orm_results[1].duplicate_tasks == 12 + 3
    assert orm_results[1].created_tasks == len(VARIED) + 10 - 12
    assert orm_rows == copy_rows
    assert len(copy_rows) == len(VARIED) + 10
    assert sum(1 for row in copy_rows.values() if row["judgments"]) == 3
    assert sum(1 for row in copy_rows.values() if row["task"][3]) == (2 if overlap == 1 else 0)  # not the gold pair


def _table_counts() -> tuple[int, ...]:
    return (
        Prompt.objects.count(),
        Task.objects.count(),
        Completion.objects.count(),
        Judgment.objects.count(),
        GoldAnswer.objects.count(),
    )


@pytest.mark.django_db
def test_a_bad_line_late_in_a_large_file_leaves_nothing(on_postgres, monkeypatch):
    monkeypatch.setattr(imports, "STREAM_BATCH", 100)
    project = make_project()
    lines = pairwise_lines(2500, gold_every=7)
    lines += [json.dumps({"prompt": f"pair {i}", "chosen": "a", "rejected": "b"}) for i in range(300)]
    lines.insert(2700, json.dumps({"prompt": "q", "completions": ["only one"]}))
    lines.append("{truncated")
    with pytest.raises(ValidationFailed) as info:
        tasks_import(project=project, lines=lines)
    errors = info.value.details["errors"]
    assert [e["line"] for e in errors] == [2701, len(lines)]
    assert "exactly 2 completions, got 1" in errors[0]["message"]
    assert _table_counts() == (0, 0, 0, 0, 0)
    # The same file without the bad lines goes in whole.
    del lines[2700]
    lines.pop()
    result = tasks_import(project=project, lines=lines)
    assert (result.created_tasks, result.imported_judgments, result.gold_tasks) == (2800, 300, 358)
    assert _table_counts() == (2800, 2800, 5600, 300, 358)


@pytest.mark.django_db
@pytest.mark.parametrize("bad_line", [2, 23])
@pytest.mark.parametrize("threaded", [True, False])
def test_a_failure_while_writing_is_raised_and_rolls_everything_back(on_postgres, monkeypatch, threaded, bad_line):
    monkeypatch.setattr(imports, "STREAM_THREAD", threaded)
    monkeypatch.setattr(imports, "STREAM_BATCH", 5)
    project = make_project()
    lines = pairwise_lines(200)
    # Postgres text cannot hold NUL: the COPY of the batch holding the bad line fails on the server, and
    # that error (not "current transaction is aborted" from a later statement) reaches the caller.
    lines[bad_line - 1] = json.dumps({"prompt": "q", "completions": ["a", "nul \x00 inside"]})
    with pytest.raises(psycopg.DataError, match="0x00"):
        tasks_import(project=project, lines=lines)
    assert _table_counts() == (0, 0, 0, 0, 0)
    assert tasks_import(project=project, lines=pairwise_lines(4)).created_tasks == 4  # the connection still works


@pytest.mark.django_db(transaction=True)
def test_job_progress_shows_while_the_import_transaction_is_open(on_postgres, tmp_path):
    project = make_project(manager=make_user("progress-boss"))
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(pairwise_lines(25)) + "\n")
    job = ImportJob.objects.create(project=project, filename="tasks.jsonl", file_path=str(path), total_lines=25)
    observer = connections.create_connection(DEFAULT_DB_ALIAS)
    seen: list[int] = []
    try:
        with transaction.atomic():
            for number, _line in enumerate(imports._progress_lines(path, job.pk, every=10), start=1):
                if number in (11, 21):
                    with observer.cursor() as cursor:
                        cursor.execute("SELECT processed_lines FROM labeling_importjob WHERE id = %s", [job.pk])
                        seen.append(cursor.fetchone()[0])
    finally:
        observer.close()
    assert seen == [10, 20]


def test_the_first_batch_can_be_smaller():
    parser = LineParser(**_PW)
    sizes = [len(batch) for batch in parser.batches(pairwise_lines(12), size=5, first=2)]
    assert sizes == [2, 5, 5]


@pytest.mark.django_db
def test_copy_rows_get_the_import_time(on_postgres):
    # created_at goes over in COPY's binary format (microseconds since 2000-01-01 UTC).
    before = timezone.now()
    project = make_project()
    tasks_import(project=project, lines=pairwise_lines(3) + _lines(VARIED[1:2]), writer="copy")
    after = timezone.now()
    stamps = {
        *Prompt.objects.filter(project=project).values_list("created_at", flat=True),
        *Task.objects.filter(project=project).values_list("created_at", flat=True),
        *Judgment.objects.filter(project=project).values_list("created_at", flat=True),
    }
    assert len(stamps) == 1  # one timestamp for the whole import
    (stamp,) = stamps
    assert before <= stamp <= after


def _fk_mode(pgconn: psycopg.Connection[Any]) -> str:
    """'deferred' or 'immediate': how the prompt's foreign key is checked now in this connection's transaction."""
    with pgconn.cursor() as cursor:
        cursor.execute("SAVEPOINT fk_probe")
        # A dangling reference: an immediate constraint refuses it at once, a deferred one only at commit.
        try:
            cursor.execute(
                "INSERT INTO labeling_prompt (project_id, messages, external_id, metadata, split, created_at) "
                "VALUES (-1, '[]', 'probe', '{}', 'train', now())"
            )
        except psycopg.errors.ForeignKeyViolation:
            mode = "immediate"
        else:
            mode = "deferred"
        cursor.execute("ROLLBACK TO SAVEPOINT fk_probe")
    return mode


@pytest.mark.django_db
@pytest.mark.parametrize("threaded", [True, False])
def test_foreign_keys_are_checked_at_each_copy_then_deferred_again(on_postgres, monkeypatch, threaded):
    monkeypatch.setattr(imports, "STREAM_THREAD", threaded)
    project = make_project()
    connection.ensure_connection()
    assert _fk_mode(connection.connection) == "deferred"
    seen: list[str] = []
    copy_all = imports._CopyWriter._copy_all

    def watching(self, blocks):  # type: ignore[no-untyped-def]
        copy_all(self, blocks)
        seen.append(_fk_mode(self.pgconn))  # what the COPYs ran under, on the import's connection

    monkeypatch.setattr(imports._CopyWriter, "_copy_all", watching)
    result = tasks_import(project=project, lines=pairwise_lines(5), writer="copy")
    assert result.created_tasks == 5
    assert seen == ["immediate"]
    # The enclosing transaction (here the test's) is back to deferred checks afterwards.
    assert _fk_mode(connection.connection) == "deferred"


@pytest.mark.django_db
@pytest.mark.parametrize("threaded", [True, False])
def test_a_dangling_reference_fails_at_its_copy_and_nothing_is_written(on_postgres, monkeypatch, threaded):
    # The foreign keys stay enforced: a completion pointing at a task that does not exist (here forced by
    # corrupting the encoder's ids) is refused by Postgres at the end of that COPY, and everything rolls back.
    monkeypatch.setattr(imports, "STREAM_THREAD", threaded)
    monkeypatch.setattr(imports, "STREAM_BATCH", 4)
    monkeypatch.setattr(imports, "STREAM_FIRST_BATCH", 4)
    encode = imports._CopyWriter._encode
    calls = []

    def corrupt(self, records, ids):  # type: ignore[no-untyped-def]
        calls.append(len(records))
        blocks = encode(self, records, ids)
        if len(calls) == 2:  # the second batch: its completions point at task ids nobody has
            return [b for b in blocks if b[0] is not Task]
        return blocks

    monkeypatch.setattr(imports._CopyWriter, "_encode", corrupt)
    project = make_project()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        tasks_import(project=project, lines=pairwise_lines(12), writer="copy")
    assert _table_counts() == (0, 0, 0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_ids_come_from_a_second_connection_while_a_copy_runs(on_postgres, monkeypatch):
    # nextval is not transactional: while the worker holds the import's connection for a COPY, the next
    # batch's ids come from a second connection instead of waiting. Rows and links are the same.
    monkeypatch.setattr(imports, "STREAM_BATCH", 5)
    monkeypatch.setattr(imports, "STREAM_FIRST_BATCH", 5)
    copy_all = imports._CopyWriter._copy_all
    sides: list[Any] = []
    side = imports._CopyWriter._side

    def slow(self, blocks):  # type: ignore[no-untyped-def]
        time.sleep(0.2)  # the parser hands over the next batch meanwhile
        copy_all(self, blocks)

    def recording(self):  # type: ignore[no-untyped-def]
        conn = side(self)
        sides.append(conn)
        return conn

    monkeypatch.setattr(imports._CopyWriter, "_copy_all", slow)
    monkeypatch.setattr(imports._CopyWriter, "_side", recording)
    project = make_project()
    result = tasks_import(project=project, lines=pairwise_lines(20), writer="copy")
    assert result.created_tasks == 20
    assert sides and all(conn is sides[0] and conn.connection is None for conn in sides)  # used, then closed
    tasks = list(Task.objects.filter(project=project).select_related("prompt"))
    assert len({t.pk for t in tasks}) == len({t.prompt_id for t in tasks}) == 20
    assert all(t.prompt.external_id == f"t{i}" for i, t in enumerate(sorted(tasks, key=lambda t: t.pk)))
    assert Completion.objects.filter(task__project=project).count() == 40


@pytest.mark.django_db(transaction=True)
def test_without_a_second_connection_ids_come_from_the_import_connection(on_postgres, monkeypatch):
    monkeypatch.setattr(imports, "STREAM_BATCH", 5)
    monkeypatch.setattr(imports, "STREAM_FIRST_BATCH", 5)
    copy_all = imports._CopyWriter._copy_all

    def slow(self, blocks):  # type: ignore[no-untyped-def]
        time.sleep(0.1)
        copy_all(self, blocks)

    class Refused:
        def ensure_connection(self) -> None:
            raise OperationalError("too many clients already")

    monkeypatch.setattr(imports._CopyWriter, "_copy_all", slow)
    monkeypatch.setattr(imports.connections, "create_connection", lambda alias: Refused())
    project = make_project()
    assert tasks_import(project=project, lines=pairwise_lines(20), writer="copy").created_tasks == 20
    assert Task.objects.filter(project=project).count() == 20
