"""The Postgres fast path of the JSONL exports (``labeling.selectors.exports_sql``) writes the Python path's bytes.

Every supported format x option x filter combination is exported both ways from the same varied data (pairwise
and K=3 ranking projects, demonstrations; ties, all-bad, corrections and skips, gold and eval tasks, imported
judgments without annotator or strength, multi-turn prompts with system messages, text full of quotes,
backslashes, control characters, non-ASCII and emoji) and the bytes must be equal.
"""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.db.models import JSONField, Value
from django.test.utils import CaptureQueriesContext

from labeling.exports import formats
from labeling.models import Completion, Demonstration, Judgment, Prompt, Role
from labeling.selectors import exports_sql
from labeling.selectors.exports import export_prepare, export_records, export_stream, export_write
from labeling.services.imports import tasks_import
from labeling.services.judgments import demonstration_submit, judgment_submit
from labeling.services.leases import assignment_lease_next
from tests.factories import add_member, make_project, make_user
from tests.labeling.test_export_formats import judge, task_ids

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Everything JSON escapes, and everything it must leave alone (ensure_ascii=False): no NUL (Postgres text has none).
NASTY = (
    'He said "hi" \\ and C:\\path\\n (not a newline)\nnew line\ttab\r\nCRLF \x01\x07\x08\x0b\x0c\x1b\x1f\x7f '
    "é ü ß Ω 中文 русский عربى 🎉 👩‍💻 \u2028\u2029 \ufeff </script> 'single' {\"json\": [1, 2]}"
)

PAIR_TASKS: dict[str, dict[str, Any]] = {
    "nasty": {"prompt": NASTY, "completions": [{"text": "A: " + NASTY, "model": "m-ä"}, "B: \\\\ \\n \t ✓"]},
    "multi": {
        "prompt": [
            {"role": "system", "content": "System one."},
            {"role": "system", "content": 'System "two"\nwith a newline'},
            {"role": "user", "content": "Hi ✋"},
            {"role": "assistant", "content": "Hello\\there"},
            {"role": "user", "content": "Q\t2? 🎉"},
        ],
        "completions": ["Paris.\u2028", "Lyon \x02"],
    },
    "late-system": {
        "prompt": [
            {"role": "user", "content": "First"},
            {"role": "assistant", "content": "Ok"},
            {"role": "system", "content": "A late system message"},
            {"role": "user", "content": "Second"},
        ],
        "completions": ["one", "two"],
    },
    "named": {"prompt": [{"role": "user", "content": "With a name", "name": "alice"}], "completions": ["x", "y"]},
    "ev": {"prompt": "An eval question", "completions": ["eval a", "eval b"], "split": "eval"},
    "g0": {"prompt": "2 + 2?", "completions": ["5", "4"], "gold": {"ranking": [[1], [0]]}},
    "imp": {"prompt": 'Imported "q"', "chosen": "Good ✓", "rejected": "Bad ✗"},
    "imp-ev": {
        "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "U \x03"}],
        "chosen": {"text": "C", "model": "gpt"},
        "rejected": "R",
        "split": "eval",
    },
}

PAIR_VERDICTS: dict[str, dict[str, Any]] = {
    "ann": {
        "nasty": {
            "ranking": [[0], [1]],
            "strength": 2,
            "rationale": NASTY,
            "flags": ["unsafe"],
            "criteria": {"helpful": {"0": 5, "1": 1}},
            "time_spent_ms": 4321,
        },
        "multi": {"ranking": [[1], [0]], "strength": -2, "flags": ["factual_error", "unsafe"]},
        "late-system": {"ranking": [[0, 1]]},
        "named": {"ranking": [[0, 1]], "all_bad": True},
        "ev": {"ranking": [[1], [0]], "strength": 0},
        "g0": {"ranking": [[1], [0]], "strength": 1},
        "imp": "skip",
        "imp-ev": "skip",
    },
    "bob": {
        "nasty": {"ranking": [[1], [0]], "strength": 1},  # corrected below
        "multi": {"ranking": [[0, 1]], "all_bad": True},
        "late-system": {"ranking": [[1], [0]], "strength": 2, "rationale": "tab\there"},
        "named": "skip",
        "ev": {"ranking": [[0, 1]]},
        "g0": {"ranking": [[0], [1]], "strength": 2},
        "imp": {"ranking": [[0], [1]], "strength": -1},
        "imp-ev": "skip",
    },
    "zoë": {
        "nasty": "skip",
        "multi": {"ranking": [[0], [1]], "strength": 2},
        "late-system": "skip",
        "named": {"ranking": [[1], [0]], "strength": -2},
        "ev": {"ranking": [[0], [1]], "strength": 1},
        "g0": {"ranking": [[1], [0]], "strength": 2},
        "imp": "skip",
        "imp-ev": {"ranking": [[1], [0]], "strength": 2},
    },
}

RANK_TASKS: dict[str, dict[str, Any]] = {
    "r-nasty": {"prompt": NASTY, "completions": ["first " + NASTY, "second \\", {"text": "third 🎉", "model": "m3"}]},
    "r-multi": {
        "prompt": [{"role": "system", "content": "Rank."}, {"role": "user", "content": "Go"}],
        "completions": ["c0", "c1", "c2"],
    },
    "r-ev": {"prompt": "Eval ranking", "completions": ["e0", "e1", "e2"], "split": "eval"},
    "r-gold": {"prompt": "Gold ranking", "completions": ["g0", "g1", "g2"], "gold": {"ranking": [[2], [1], [0]]}},
}

RANK_VERDICTS: dict[str, dict[str, Any]] = {
    "ann": {
        "r-nasty": {"ranking": [[2], [0, 1]], "strength": 2},
        "r-multi": {"ranking": [[0], [1], [2]], "strength": 1, "rationale": NASTY},
        "r-ev": {"ranking": [[0, 1, 2]], "all_bad": True},
        "r-gold": {"ranking": [[2], [1], [0]], "strength": 3},
    },
    "bob": {
        "r-nasty": {"ranking": [[1, 2], [0]], "strength": 1},
        "r-multi": {"ranking": [[2], [0], [1]], "strength": 3},
        "r-ev": "skip",
        "r-gold": {"ranking": [[0], [1, 2]], "strength": 2},
    },
    "zoë": {
        "r-nasty": {"ranking": [[0], [2], [1]], "strength": 1},
        "r-multi": "skip",
        "r-ev": "skip",
        "r-gold": "skip",
    },
}

OLD = datetime(2024, 3, 10, 15, 30, tzinfo=UTC)  # no microseconds: isoformat() leaves them out
OLDER = datetime(2023, 12, 31, 23, 59, 59, 123, tzinfo=UTC)  # microseconds 000123

FILTERS: list[dict[str, Any]] = [
    {},
    {"date_from": "2024-01-01"},
    {"date_to": "2024-03-10"},
    {"date_from": "2024-03-10T15:30:00Z", "date_to": "2024-03-10T15:30:00Z"},
    {"annotators": ["ann"]},
    {"annotators": "ann,bob"},
    {"exclude_gold": True},
    {"split": "eval"},
    {"split": "train"},
    {"source": "import"},
    {"source": "human"},
    {"exclude_gold": True, "split": "train", "annotators": ["bob", "zoë"], "date_from": "2024-01-01"},
]


def _users(project, names):  # type: ignore[no-untyped-def]
    users = {}
    for name in names:
        users[name] = make_user(name)
        add_member(project, users[name], Role.ANNOTATOR)
    return users


def _date_some(model, project) -> None:  # type: ignore[no-untyped-def]
    """Give two records fixed dates, so the date filters split the data."""
    ids = list(model.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    model.objects.filter(pk=ids[0]).update(created_at=OLD)
    model.objects.filter(pk=ids[-1]).update(created_at=OLDER)


def build_pairwise():  # type: ignore[no-untyped-def]
    project = make_project(
        slug="fp-pairs", name="fp-pairs", overlap=3, gold_rate=1.0,
        label_options={"strength_min": -2, "strength_max": 2, "criteria": [{"name": "helpful"}]},
    )  # fmt: skip
    tasks_import(project=project, lines=[json.dumps({"id": ext, **line}) for ext, line in PAIR_TASKS.items()])
    users = _users(project, PAIR_VERDICTS)
    for name, verdicts in PAIR_VERDICTS.items():
        judge(project, users[name], verdicts)
    ids = task_ids(project)
    fix = judgment_submit(user=users["bob"], project_id=project.pk, task_id=ids["nasty"], idempotency_key="bob-fix",
                          ranking=[[0], [1]], strength=-1, rationale="corrected \\ again")  # fmt: skip
    assert fix.superseded_id is not None
    # Messages as stored by hand (not by the importer): an extra key and a missing content are normalised.
    Prompt.objects.filter(tasks__id=ids["late-system"]).update(
        messages=[{"role": "user", "content": "First", "name": "n"}, {"role": "assistant"},
                  {"role": "system", "content": "A late system message"}, {"role": "user", "content": "Second"}]
    )  # fmt: skip
    Prompt.objects.filter(tasks__id=ids["named"]).update(messages=[{"role": "user", "content": "Hi", "name": "al"}])
    Prompt.objects.filter(tasks__id=ids["g0"]).update(messages=[{"role": "system", "content": "Only a system turn"}])
    Prompt.objects.filter(tasks__id=ids["imp-ev"]).update(messages=[])
    Prompt.objects.filter(tasks__id=ids["ev"]).update(external_id='ev "ë" \\ \t\x05')
    _date_some(Judgment, project)
    return project


def build_ranking():  # type: ignore[no-untyped-def]
    project = make_project(
        slug="fp-rank", name="fp-rank", task_kind="ranking", overlap=3, gold_rate=1.0,
        label_options={"completions_per_task": 3},
    )  # fmt: skip
    tasks_import(project=project, lines=[json.dumps({"id": ext, **line}) for ext, line in RANK_TASKS.items()])
    users = _users(project, RANK_VERDICTS)
    for name, verdicts in RANK_VERDICTS.items():
        judge(project, users[name], verdicts)
    ids = task_ids(project)
    judgment_submit(user=users["ann"], project_id=project.pk, task_id=ids["r-multi"], idempotency_key="ann-fix",
                    ranking=[[1], [2], [0]], strength=2)  # fmt: skip
    # Rankings the services would refuse but the exports still read: partial, a repeated position (its last
    # tier counts), and a two-position tie that is not [[0, 1]].
    for ranking, strength in (([[2], [0]], 1), ([[2, 1]], None), ([[1], [0, 2], [1]], 3)):
        Judgment.objects.create(project=project, task_id=ids["r-ev"], ranking=ranking, strength=strength,
                                source="import", rationale="by hand")  # fmt: skip
    Prompt.objects.filter(tasks__id=ids["r-ev"]).update(messages=Value(None, JSONField()))  # JSON null: no messages
    _date_some(Judgment, project)
    return project


def build_demonstrations():  # type: ignore[no-untyped-def]
    project = make_project(slug="fp-demos", name="fp-demos", task_kind="demonstration", overlap=2)
    lines = [
        {"id": "d-nasty", "prompt": NASTY},
        {"id": "d-multi", "prompt": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]},
        {"id": "d-ev", "prompt": "Eval prompt", "split": "eval"},
    ]
    tasks_import(project=project, lines=[json.dumps(line) for line in lines])
    make_user("zoë")  # named by a filter; wrote nothing here
    by_id = {pk: ext for ext, pk in task_ids(project).items()}
    for user in _users(project, ["ann", "bob"]).values():
        for leased in assignment_lease_next(user=user, project_id=project.pk, count=5):
            ext = by_id[leased.task_id]
            demonstration_submit(user=user, project_id=project.pk, task_id=leased.task_id,
                                 idempotency_key=f"{user.username}-{ext}", text=f"{user.username}: {NASTY} {ext}",
                                 flags=["unsafe"] if ext == "d-ev" else [], time_spent_ms=1234)  # fmt: skip
        if user.username == "bob":  # a correction: the first answer is superseded
            task_id = task_ids(project)["d-multi"]
            demonstration_submit(user=user, project_id=project.pk, task_id=task_id, idempotency_key="bob-fix",
                                 text="Hello.\tCorrected")  # fmt: skip
    Prompt.objects.filter(tasks__project=project, external_id="d-ev").update(messages=[])  # only the answer is left
    _date_some(Demonstration, project)
    return project


def python_bytes(spec: Any, *, chunk_size: int = 500, flush_bytes: int = formats.FLUSH_BYTES) -> bytes:
    records = export_records(spec=spec, chunk_size=chunk_size)
    return b"".join(
        formats.stream_export(spec.format, records, kind=spec.kind, options=spec.options, flush_bytes=flush_bytes)
    )


def fast_bytes(spec: Any) -> bytes:
    before = exports_sql.stats["fast_exports"]
    data = b"".join(export_stream(spec=spec))
    assert exports_sql.stats["fast_exports"] == before + 1, "the export did not take the fast path"
    return data


def option_sets(format_name: str, kind: str) -> list[dict[str, Any]]:
    """Every combination of the format's options (for demonstrations, without the preference-only ones)."""
    spec_options = formats.FORMATS[format_name].options
    keys = [k for k in spec_options if kind == formats.COMPARISON or k not in ("ties", "include_margin")]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(spec_options[k] for k in keys))]


def assert_same_everywhere(project, format_names: tuple[str, ...]) -> dict[tuple[str, str, str], int]:  # type: ignore[no-untyped-def]
    """Export every format x options x filters both ways; return the line counts (all combinations equal)."""
    counts = {}
    mismatches = []
    for format_name in format_names:
        for options, filters in itertools.product(option_sets(format_name, _kind(project)), FILTERS):
            spec = export_prepare(project=project, format=format_name, options=options, filters=filters)
            assert exports_sql.fast_path_supported(spec)
            fast, slow = fast_bytes(spec), python_bytes(spec)
            if fast != slow:
                mismatches.append((format_name, options, filters, _first_difference(fast, slow)))
            counts[(format_name, json.dumps(options), json.dumps(filters))] = slow.count(b"\n")
    assert not mismatches, mismatches[:3]
    return counts


def _kind(project) -> str:  # type: ignore[no-untyped-def]
    return formats.DEMONSTRATION if project.task_kind == "demonstration" else formats.COMPARISON


def _first_difference(fast: bytes, slow: bytes) -> tuple[bytes, bytes]:
    for a, b in itertools.zip_longest(fast.splitlines(), slow.splitlines(), fillvalue=b""):
        if a != b:
            return a[:400], b[:400]
    return b"", b""


# --- byte for byte -----------------------------------------------------------------------------------


def test_pairwise_exports_are_the_python_bytes_for_every_format_option_and_filter(on_postgres):
    project = build_pairwise()
    counts = assert_same_everywhere(project, ("trl", "hh-rlhf", "openai-preference", "judgments"))
    everything = counts[("judgments", "{}", "{}")]
    assert everything == Judgment.objects.filter(project=project, is_live=True, action="label").count() == 19
    assert len(set(counts.values())) > 5  # the filters and options really select different rows
    # 4 of the 19 are ties: ties=keep adds them once, ties=both twice
    drop = counts[("trl", json.dumps({"style": "standard", "ties": "drop", "include_margin": False}), "{}")]
    keep = counts[("trl", json.dumps({"style": "standard", "ties": "keep", "include_margin": False}), "{}")]
    both = counts[("trl", json.dumps({"style": "standard", "ties": "both", "include_margin": False}), "{}")]
    assert (drop, keep, both) == (15, 19, 23)


def test_ranking_exports_are_the_python_bytes_for_every_format_option_and_filter(on_postgres):
    project = build_ranking()
    counts = assert_same_everywhere(project, ("trl", "hh-rlhf", "openai-preference", "judgments"))
    assert counts[("judgments", "{}", "{}")] == 11
    keep = counts[("trl", json.dumps({"style": "conversational", "ties": "keep", "include_margin": True}), "{}")]
    assert keep == 3 * 8 + 1 + 1 + 3  # 8 full rankings of 3, the two partial ones, the repeated position


def test_demonstration_exports_are_the_python_bytes_for_every_filter(on_postgres):
    project = build_demonstrations()
    counts = assert_same_everywhere(project, ("openai-sft", "judgments"))
    assert counts[("openai-sft", "{}", "{}")] == counts[("judgments", "{}", "{}")] == 6


def test_pieces_and_row_counts_are_those_of_the_python_path(on_postgres):
    project = build_ranking()
    spec = export_prepare(project=project, format="trl", options={"ties": "both", "include_margin": True})
    for chunk_size, flush_bytes in ((1, 1), (2, 1), (3, 700), (500, 2000), (500, formats.FLUSH_BYTES)):
        fast_counter, slow_counter = formats.RowCounter(), formats.RowCounter()
        fast = list(export_stream(spec=spec, chunk_size=chunk_size, flush_bytes=flush_bytes, counter=fast_counter))
        records = export_records(spec=spec, chunk_size=chunk_size)
        slow = list(formats.stream_export(spec.format, records, kind=spec.kind, options=spec.options,
                                          counter=slow_counter, flush_bytes=flush_bytes))  # fmt: skip
        assert fast == slow  # the same pieces, not only the same bytes
        assert fast_counter.count == slow_counter.count == b"".join(slow).count(b"\n") > 0


def test_export_write_takes_the_fast_path_and_counts_rows(on_postgres, tmp_path):
    project = build_pairwise()
    spec = export_prepare(project=project, format="hh-rlhf", options={"ties": "keep", "include_margin": True})
    before = exports_sql.stats["fast_exports"]
    path = tmp_path / "out.jsonl"
    with path.open("wb") as out:
        rows = export_write(spec=spec, out=out)
    assert exports_sql.stats["fast_exports"] == before + 1
    assert path.read_bytes() == python_bytes(spec)
    assert rows == path.read_bytes().count(b"\n") == 19


# --- the dispatcher ------------------------------------------------------------------------------------


def test_the_dispatcher_sends_supported_exports_to_one_sql_statement(on_postgres):
    project = build_pairwise()
    spec = export_prepare(project=project, format="trl", options={"style": "conversational"})
    with CaptureQueriesContext(connection) as queries:
        stream = export_stream(spec=spec, chunk_size=5)
        assert len(queries) == 0  # lazy: nothing is read before the first piece is asked for
        data = b"".join(stream)
    statements = [q["sql"].split(None, 1)[0] for q in queries]
    # one streamed statement reads every record (in a savepoint of the test's transaction), never one per page
    assert statements == ["SAVEPOINT", "SELECT", "RELEASE"]
    assert "ORDER BY r.id" in queries[1]["sql"]
    assert data == python_bytes(spec)


@pytest.mark.parametrize(
    ("format_name", "filters"),
    [
        ("csv", {}),
        ("parquet", {}),
        ("hf-dataset", {}),
        ("trl", {"min_agreement": 0.5}),
        ("judgments", {"min_agreement": 0}),
    ],
)
def test_formats_and_filters_sql_does_not_cover_keep_the_python_path(on_postgres, format_name, filters):
    project = build_pairwise()
    spec = export_prepare(project=project, format=format_name, filters=filters)
    assert not exports_sql.fast_path_supported(spec)
    if spec.format_spec.streamable:
        before = exports_sql.stats["fast_exports"]
        with CaptureQueriesContext(connection) as queries:
            data = b"".join(export_stream(spec=spec))
        assert exports_sql.stats["fast_exports"] == before
        assert not any(q["sql"].startswith("DECLARE") for q in queries)
        assert data == python_bytes(spec)


# --- errors and refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "external_id", "position"),
    [(build_ranking, "r-multi", 1), (build_pairwise, "multi", 0), (build_pairwise, "late-system", 1)],
)
def test_a_ranked_position_without_its_completion_fails_as_in_python(on_postgres, build, external_id, position):
    project = build()
    Completion.objects.filter(task__prompt__external_id=external_id, position=position).delete()
    for format_name, ties in (("trl", "drop"), ("trl", "keep"), ("hh-rlhf", "both"), ("openai-preference", "drop")):
        spec = export_prepare(project=project, format=format_name, options={"ties": ties})
        with pytest.raises(formats.FormatError) as fast:
            fast_bytes(spec)
        with pytest.raises(formats.FormatError) as slow:
            python_bytes(spec)
        assert fast.value.errors == slow.value.errors
        assert f"ranks position {position}, which task" in fast.value.errors["ranking"]


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": None}],
        [{"role": "system", "content": "S"}, {"role": 3, "content": "U"}],
        ["a bare string"],
        {"role": "user", "content": "an object, not a list"},
    ],
)
@pytest.mark.parametrize("format_name", ["trl", "hh-rlhf", "openai-preference"])
def test_messages_the_importer_cannot_write_are_refused_not_rendered_differently(on_postgres, messages, format_name):
    project = build_pairwise()
    Prompt.objects.filter(tasks__project=project, external_id="named").update(messages=messages)
    ties = "both" if format_name == "openai-preference" else "keep"  # the tie of "named" is written too
    spec = export_prepare(project=project, format=format_name, options={"ties": ties})
    with pytest.raises(formats.FormatError) as info:
        fast_bytes(spec)
    assert "role or content is not a string" in info.value.errors["messages"]
    if format_name == "trl" and messages == [{"role": "user", "content": None}]:
        assert b'"prompt": "None"' in python_bytes(spec)  # what the Python path makes of it


def test_demonstration_messages_the_importer_cannot_write_are_refused(on_postgres):
    project = build_demonstrations()
    Prompt.objects.filter(tasks__project=project, external_id="d-multi").update(messages=[{"content": 1}])
    spec = export_prepare(project=project, format="openai-sft")
    with pytest.raises(formats.FormatError) as info:
        fast_bytes(spec)
    assert info.value.errors["messages"].startswith("demonstration ")


# --- transactions and cursors ------------------------------------------------------------------------------


def _connection_idle_in_transaction() -> bool:
    """No statement running on the connection, its transaction open and healthy (not aborted)."""
    return bool(connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS)


@pytest.mark.parametrize("format_name", ["judgments", "trl"])
def test_an_abandoned_stream_cancels_its_statement_and_frees_the_connection(on_postgres, format_name):
    project = build_pairwise()
    spec = export_prepare(project=project, format=format_name)
    stream = export_stream(spec=spec, chunk_size=1, flush_bytes=1)
    first = next(stream)
    assert json.loads(first)
    # the connection is streaming: a query sent meanwhile fails at once instead of waiting forever
    with pytest.raises(exports_sql.ConnectionBusy):
        Judgment.objects.count()
    stream.close()  # a client hanging up
    assert _connection_idle_in_transaction()
    # the test's own transaction is intact (the stream had a savepoint) and the connection serves queries again
    assert Judgment.objects.filter(project=project, is_live=True, action="label").count() == 19
    assert b"".join(export_stream(spec=spec)) == python_bytes(spec)


def test_a_format_error_mid_stream_leaves_the_connection_usable(on_postgres):
    project = build_pairwise()
    Completion.objects.filter(task__prompt__external_id="late-system", position=1).delete()
    spec = export_prepare(project=project, format="trl", options={"ties": "keep"})
    with pytest.raises(formats.FormatError):
        for _ in export_stream(spec=spec, chunk_size=1, flush_bytes=1):
            pass
    assert _connection_idle_in_transaction()
    assert Judgment.objects.filter(project=project).exists()


@pytest.mark.django_db(transaction=True)
def test_the_fast_path_reads_one_snapshot_in_its_own_transaction_without_jit(on_postgres):
    project = build_pairwise()
    spec = export_prepare(project=project, format="judgments")
    expected = python_bytes(spec)
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        jit_before = cursor.fetchone()[0]
    assert not connection.in_atomic_block
    queries = CaptureQueriesContext(connection)
    queries.__enter__()
    stream = export_stream(spec=spec, chunk_size=1, flush_bytes=1)
    pieces = [next(stream)]
    assert connection.in_atomic_block  # the export's own REPEATABLE READ transaction
    first = json.loads(pieces[0])
    corrected = next(r for r in map(json.loads, expected.splitlines()) if r["annotator"] == "zoë")
    user = corrected["annotator"]

    def correct() -> None:
        try:
            judgment_submit(user=make_user(user), project_id=project.pk, task_id=corrected["task_id"],
                            idempotency_key="mid-export", ranking=corrected["ranking"][::-1], strength=1)  # fmt: skip
        finally:
            connection.close()

    thread = threading.Thread(target=correct)
    thread.start()
    thread.join()
    pieces.extend(stream)
    queries.__exit__(None, None, None)
    assert not connection.in_atomic_block
    sql = [q["sql"] for q in queries]
    # one read-only REPEATABLE READ transaction, JIT off for it only, one statement
    assert sql[:3] == ["BEGIN", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", "SET LOCAL jit = off"]
    assert sql[3].startswith("SELECT ") and sql[3].endswith("ORDER BY r.id") and sql[4:] == ["COMMIT"]
    assert Judgment.objects.filter(idempotency_key="mid-export", is_live=True).count() == 1  # it was committed
    assert b"".join(pieces) == expected  # the snapshot of the first FETCH, not the correction
    assert first["judgment_id"] == json.loads(expected.splitlines()[0])["judgment_id"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == jit_before
