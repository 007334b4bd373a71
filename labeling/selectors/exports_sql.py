"""The Postgres fast path of the JSONL exports: Postgres reads the rows, Python writes the lines, both at once.

``labeling.selectors.exports.export_stream`` (and ``export_write`` for these formats) takes this path when
``fast_path_supported(spec)`` says yes and the database is Postgres; everything else (SQLite, CSV, Parquet, the
Hugging Face folder, ``min_agreement``) keeps the pure Python path: ORM records -> ``formats.format_rows`` ->
``formats.jsonl_chunks``.

One SQL statement reads the whole export: a row per live judgment (or demonstration), in id order, with its task
and prompt (filters applied in SQL). For trl, hh-rlhf and openai-preference the row holds the raw columns, ``id,
task_id, ranking, strength``, the prompt (``lone``: the content of a prompt that is one user message, else
``messages``: the jsonb as text) and the task's completions (``positions``, ``texts``: two arrays from one index
scan); for openai-sft the prompt and the demonstration's text. Python writes each line from them with
``formats.PairLines`` / ``formats.demonstration_line``: the pairs of a ranking from ``formats.ranking_lines`` (the
Python path's own rules, worked out once per distinct ranking), strings escaped by orjson into templates spelled
with json.dumps' separators. The ``judgments`` audit lines are still built by the SQL (jsonb columns, timestamps:
no per-row work worth moving) and passed through.

The statement is streamed (``psycopg.Cursor.stream``: libpq's chunked rows mode, binary results), not FETCHed
from a server-side cursor: Postgres keeps producing rows into the socket while Python writes the lines of the
previous ones, so the export uses two cores, and a streamed portal costs Postgres about a quarter less per row
than FETCH pages of the same query. Measured on 1M pairwise TRL rows: Postgres ~7.5 us/row, Python ~6.5 us/row,
where building the lines in SQL (the previous design) cost Postgres ~12 us/row while Python idled. Memory holds
one chunk of rows. The price: while the export streams, its connection serves nothing else (``_streamed_rows``).

Equivalence contract
--------------------
For every supported spec the bytes are exactly those of the Python path for the same snapshot, cut into the same
pieces (``formats.batched_bytes``' rule). Python writes ``json.dumps(row, ensure_ascii=False, allow_nan=False)``
with the default separators; this path reproduces that:

* lines written in Python (``formats.PairLines``, ``formats.demonstration_line``): keys in the order the row
  builders give them, ``", "``/``": "`` between items; strings through ``orjson.dumps(str)``, whose escaping is
  json.dumps' with ``ensure_ascii=False`` for every code point (a test checks them all); ``margin`` as
  ``repr(float(strength))``, ``0.0`` for a tie or no strength; ``tie`` as ``true``/``false``;
* prompts as ``selectors.exports._messages`` normalises them (``role``/``content`` read from each message,
  missing ones as ``""``, other keys dropped; the jsonb decoded with ``json.loads`` as Django does), rendered by
  ``formats.prompt_text`` / ``formats.hh_prompt`` themselves;
* lines written in SQL (``judgments``): string concatenation, never ``json_build_object`` (which writes ``" :
  "``) nor ``jsonb`` (which reorders keys); strings through ``to_json(text)`` (the same escaping); booleans
  ``true``/``false``, missing values ``null``; ``created_at`` as ``datetime.isoformat()`` of the UTC value Django
  reads (``USE_TZ``): microseconds only when not zero, then ``+00:00``; the raw jsonb columns (``ranking``,
  ``criteria``, ``flags``) as ``jsonb::text``, which is ``json.dumps(json.loads(...))`` of the same value (numbers
  are the exception in principle: jsonb keeps ``1.50``, Python writes ``1.5``; the services store only integers
  and strings there).

Data the app cannot write is refused rather than rendered differently: a message that is not an object, or whose
``role`` or ``content`` is not a JSON string (Python would write ``str(value)``, e.g. ``None``), stops the export
with a FormatError naming the judgment (or demonstration), as does a ranked position the task has no completion
for (the Python path's own error, same message).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, cast

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper

from labeling.exports import formats
from labeling.models import Completion, Demonstration, Judgment, Prompt, Task

if TYPE_CHECKING:  # exports imports this module
    from labeling.selectors.exports import ExportFilters, ExportSpec

# (format, kind) pairs written by SQL; the options each takes are all covered.
FAST_FORMATS = {
    ("trl", formats.COMPARISON),
    ("hh-rlhf", formats.COMPARISON),
    ("openai-preference", formats.COMPARISON),
    ("judgments", formats.COMPARISON),
    ("judgments", formats.DEMONSTRATION),
    ("openai-sft", formats.DEMONSTRATION),
}

# How many exports took this path in this process (tests and benchmarks read it).
stats = {"fast_exports": 0}


def fast_path_supported(spec: ExportSpec) -> bool:
    """True when this export can be written by Postgres byte for byte as the Python path writes it."""
    return (
        connection.vendor == "postgresql"
        and settings.USE_TZ
        and (spec.format, spec.kind) in FAST_FORMATS
        and spec.filters.min_agreement is None  # agreement is computed in Python (labeling.rankings)
    )


# --- SQL pieces --------------------------------------------------------------------------------------------


def _lit(text: str) -> str:
    """A SQL string literal (``%`` doubled: the statement is sent with parameters)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _json_text(expr: str) -> str:
    """A JSON string (or ``null``) of a text expression."""
    return f"coalesce(to_json({expr})::text, 'null')"


def _json_int(expr: str) -> str:
    return f"coalesce(({expr})::text, 'null')"


def _json_bool(expr: str) -> str:
    return f"CASE WHEN {expr} THEN 'true' ELSE 'false' END"


def _json_iso_utc(expr: str) -> str:
    """``datetime.isoformat()`` of an aware UTC datetime, as a JSON string."""
    with_us = _lit('YYYY-MM-DD"T"HH24:MI:SS.US')
    without = _lit('YYYY-MM-DD"T"HH24:MI:SS')
    return (
        f"'\"' || to_char(({expr}) AT TIME ZONE 'UTC', CASE WHEN date_trunc('second', {expr}) = {expr} "
        f"THEN {without} ELSE {with_us} END) || '+00:00\"'"
    )


def _object(*pairs: tuple[str, str]) -> str:
    """``{"key": value, ...}`` from (key, SQL expression of the value's JSON text)."""
    parts = []
    for i, (key, value) in enumerate(pairs):
        parts.append(_lit(("{" if i == 0 else ", ") + f'"{key}": '))
        parts.append(value)
    parts.append(_lit("}"))
    return " || ".join(parts)


def _user_table() -> str:
    return connection.ops.quote_name(get_user_model()._meta.db_table)


def _username() -> str:
    """The column behind ``annotator__username``, which the Python path reads and filters on."""
    return connection.ops.quote_name(get_user_model()._meta.get_field("username").column)


def _filters(alias: str, filters: ExportFilters) -> tuple[str, list[Any], str, list[Any]]:
    """selectors.exports._filtered as SQL: conditions on the record ``alias`` (judgment or demonstration), then
    conditions on its task ``t`` and prompt ``p``, each as ``" AND ..."`` with its parameters."""
    own: list[str] = []
    own_params: list[Any] = []
    lower, upper = filters.bounds()
    if lower is not None:
        own.append(f"{alias}.created_at >= %s")
        own_params.append(lower)
    if upper is not None:
        own.append(f"{alias}.created_at < %s")
        own_params.append(upper)
    if filters.annotators:
        own.append(f"{alias}.annotator_id IN (SELECT u.id FROM {_user_table()} u WHERE u.{_username()} = ANY(%s))")
        own_params.append(list(filters.annotators))
    if filters.source is not None:
        own.append(f"{alias}.source = %s")
        own_params.append(filters.source)
    task: list[str] = []
    task_params: list[Any] = []
    if filters.exclude_gold:
        task.append("NOT t.is_gold")
    if filters.split is not None:
        task.append("p.split = %s")
        task_params.append(filters.split)
    return "".join(f" AND {c}" for c in own), own_params, "".join(f" AND {c}" for c in task), task_params


def _query(spec: ExportSpec, row: str, task_columns: str, *, completions: bool = False) -> tuple[str, list[Any]]:
    """``SELECT <row> FROM`` the live records of the export, in id order, each with its task and prompt.

    The record is ``r``; the lateral ``tp`` holds ``task_columns`` (over task ``t`` and prompt ``p``, computed
    once per record, and filtered there); with ``completions``, the lateral ``cc`` holds the task's completions
    as two arrays, ``positions`` and ``texts`` (one index scan; NULL when it has none). The shape leaves the
    planner one plan, whatever its estimates: an ordered index scan of the records, a nested loop into
    primary-key lookups."""
    quote = connection.ops.quote_name
    demonstrations = spec.kind == formats.DEMONSTRATION
    table = quote((Demonstration if demonstrations else Judgment)._meta.db_table)
    own, own_params, task, task_params = _filters("r", spec.filters)
    live = "r.is_live" if demonstrations else "r.is_live AND r.action = 'label'"
    lateral = (
        f" CROSS JOIN LATERAL (SELECT array_agg(c.position) AS positions, array_agg(c.text) AS texts "
        f"FROM {quote(Completion._meta.db_table)} c WHERE c.task_id = r.task_id) cc"
        if completions
        else ""
    )
    sql = (
        f"SELECT {row} FROM {table} r CROSS JOIN LATERAL (SELECT {task_columns} "
        f"FROM {quote(Task._meta.db_table)} t JOIN {quote(Prompt._meta.db_table)} p ON p.id = t.prompt_id "
        f"WHERE t.id = r.task_id{task} OFFSET 0) tp{lateral} "
        f"WHERE r.project_id = %s AND {live}{own} ORDER BY r.id"
    )
    return sql, [*task_params, spec.project.pk, *own_params]


def _audit_sql(spec: ExportSpec) -> tuple[str, list[Any]]:
    """The ``judgments`` format: formats._judgment_row or formats._demonstration_audit_row, a line per record."""
    username = f"(SELECT u.{_username()} FROM {_user_table()} u WHERE u.id = r.annotator_id)"
    common = [
        ("task_id", "r.task_id::text"),
        ("external_id", _json_text("tp.external_id")),
        ("split", _json_text("tp.split")),
        ("is_gold", _json_bool("tp.is_gold")),
        ("annotator", _json_text(username)),
        ("source", _json_text("r.source")),
    ]
    if spec.kind == formats.DEMONSTRATION:
        keys = [("demonstration_id", "r.id::text"), *common, ("text", _json_text("r.text"))]
    else:
        keys = [
            ("judgment_id", "r.id::text"),
            *common,
            ("ranking", "r.ranking::text"),
            ("all_bad", _json_bool("r.all_bad")),
            ("strength", _json_int("r.strength")),
            ("criteria", "r.criteria::text"),
            ("rationale", _json_text("r.rationale")),
        ]
    keys += [
        ("flags", "r.flags::text"),
        ("time_spent_ms", _json_int("r.time_spent_ms")),
        ("created_at", _json_iso_utc("r.created_at")),
    ]
    return _query(spec, _object(*keys), "t.is_gold, p.external_id, p.split")


# The prompt as two columns: ``lone``, the content of the common prompt (one user message whose content is a
# string), read without expanding the array; otherwise ``messages``, the whole jsonb as text (what Django reads).
_LONE_USER = (
    "p.messages -> 1 IS NULL AND p.messages -> 0 ->> 'role' = 'user' "
    "AND jsonb_typeof(p.messages -> 0 -> 'content') = 'string'"
)
_PROMPT_COLUMNS = (
    f"CASE WHEN {_LONE_USER} THEN p.messages -> 0 ->> 'content' END AS lone, "
    f"CASE WHEN {_LONE_USER} THEN NULL ELSE p.messages::text END AS messages"
)


def _pairs_sql(spec: ExportSpec) -> tuple[str, list[Any]]:
    """trl, hh-rlhf and openai-preference: ``id, task_id, ranking, strength, lone, messages, positions, texts``."""
    row = "r.id, r.task_id, r.ranking::text, r.strength, tp.lone, tp.messages, cc.positions, cc.texts"
    return _query(spec, row, _PROMPT_COLUMNS, completions=True)


def _demonstrations_sql(spec: ExportSpec) -> tuple[str, list[Any]]:
    """openai-sft: ``id, task_id, lone, messages, text``."""
    return _query(spec, "r.id, r.task_id, tp.lone, tp.messages, r.text", _PROMPT_COLUMNS)


def export_sql(spec: ExportSpec) -> tuple[str, list[Any]]:
    """The query (and its parameters), a row per judgment (or demonstration) in export order: for ``judgments``
    one text column, the line; for the other formats the raw columns their lines are written from."""
    if not fast_path_supported(spec):
        raise ValueError(f"{spec.format} with these options is not written by this path")
    if spec.format == "judgments":
        return _audit_sql(spec)
    if spec.format == "openai-sft":
        return _demonstrations_sql(spec)
    return _pairs_sql(spec)


# --- Python: rows -> lines ---------------------------------------------------------------------------------


def _refused(what: str, record_id: int, task_id: int) -> formats.FormatError:
    return formats.FormatError(
        {"messages": f"{what} {record_id} (task {task_id}) has prompt messages whose role or content is not a string"}
    )


def _messages(raw: str | None, what: str, record_id: int, task_id: int) -> list[dict[str, str]]:
    """The prompt's messages (jsonb text) as ``selectors.exports._messages`` normalises them (``role``/
    ``content``, missing ones as ``""``, other keys dropped); a message that is not an object, or whose role or
    content is not a JSON string, is refused (the Python path would write ``str(value)``)."""
    decoded = json.loads(raw) if raw is not None else None  # Django decodes jsonb with json.loads too
    if decoded is None:
        return []
    if not isinstance(decoded, list):
        raise _refused(what, record_id, task_id)
    messages = []
    for message in decoded:
        if not isinstance(message, dict):
            raise _refused(what, record_id, task_id)
        role, content = message.get("role", ""), message.get("content", "")
        if not isinstance(role, str) or not isinstance(content, str):
            raise _refused(what, record_id, task_id)
        messages.append({"role": role, "content": content})
    return messages


@functools.lru_cache(maxsize=4096)
def _ranking_lines(ranking: str, ties: str) -> tuple[tuple[int, int, bool], ...]:
    """``formats.ranking_lines`` of a ranking as jsonb text (decoded as Django decodes it). A project has few
    distinct rankings, so each is worked out once."""
    return tuple(formats.ranking_lines(json.loads(ranking), ties=ties))


def _pair_lines(spec: ExportSpec) -> Callable[[list[Any]], tuple[list[bytes], int]]:
    """The lines of a page of ``_pairs_sql`` rows (and how many)."""
    lines = formats.PairLines(spec.format, spec.options)
    ties = spec.options["ties"]

    def page(rows: list[Any]) -> tuple[list[bytes], int]:
        out: list[bytes] = []
        for record_id, task_id, ranking, strength, lone, raw, positions, texts in rows:
            pairs = _ranking_lines(ranking, ties)
            if not pairs:
                continue
            completions = dict(zip(positions, texts, strict=True)) if positions else {}
            if lone is not None:
                prompt = lines.user_prompt(lone)
            else:
                prompt = lines.prompt(_messages(raw, "judgment", record_id, task_id))
            for chosen, rejected, tie in pairs:
                if chosen not in completions or rejected not in completions:  # formats._pair's own error
                    missing = chosen if chosen not in completions else rejected
                    raise formats.FormatError(
                        {"ranking": f"judgment {record_id} ranks position {missing}, which task {task_id} lacks"}
                    )
                out.append(lines.line(prompt, completions[chosen], completions[rejected], strength, tie))
        return out, len(out)

    return page


def _demonstration_lines(rows: list[Any]) -> tuple[list[bytes], int]:
    """The openai-sft lines of a page of ``_demonstrations_sql`` rows."""
    out = [
        formats.demonstration_line(
            [{"role": "user", "content": lone}] if lone is not None else _messages(raw, "demonstration", rid, tid), text
        )
        for rid, tid, lone, raw, text in rows
    ]
    return out, len(out)


def _audit_lines(rows: list[Any]) -> tuple[list[bytes], int]:
    """The judgments lines, written by Postgres."""
    return [(row[0] + "\n").encode() for row in rows], len(rows)


# --- streaming ---------------------------------------------------------------------------------------------


class ConnectionBusy(RuntimeError):
    """A query was sent on the connection while it streams an export."""


def _busy(*args: Any) -> Any:
    raise ConnectionBusy(
        "this database connection is streaming an export: read the export to its end or close it before running "
        "other queries on the connection"
    )


@contextlib.contextmanager
def _streamed_rows(sql: str, params: list[Any], *, chunk_size: int) -> Iterator[Iterator[Any]]:
    """The rows of one statement, read as Postgres sends them (``psycopg.Cursor.stream``, libpq's chunked rows
    mode): ``chunk_size`` rows per result, binary (text and arrays arrive as lengths and bytes: nothing to escape
    or unescape on either side). Postgres runs ahead of the reader as far as the socket's buffers go, so it
    computes the next rows while Python writes the last ones: the two halves of the work run on two cores.

    The statement runs on Django's connection (its transaction, its snapshot), logged as Django logs a query;
    database errors come out as Django's. Leaving the block before the last row cancels the statement and waits
    until the connection is idle again (its transaction is then aborted: the caller's savepoint or transaction
    ends it). While the rows stream the connection can serve nothing else (unlike a FETCH loop, which costs
    Postgres a quarter more per row here): a query sent through Django meanwhile raises ConnectionBusy rather
    than waiting forever on psycopg's connection lock."""
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor.connection
        size = chunk_size if psycopg.pq.version() >= 170000 else 1  # chunked rows need libpq 17
        logged = cursor.debug_sql(sql, params) if isinstance(cursor, CursorDebugWrapper) else contextlib.nullcontext()
        stream = cast(Generator[Any, None, None], psycopg.Cursor(raw).stream(sql, params, binary=True, size=size))
        with logged, contextlib.closing(stream) as rows, connection.execute_wrapper(_busy):
            yield rows


def stream_lines(
    spec: ExportSpec, *, chunk_size: int, flush_bytes: int, counter: formats.RowCounter | None = None
) -> Iterator[bytes]:
    """The export's bytes, ``chunk_size`` records at a time, in the pieces ``formats.batched_bytes`` cuts: whole
    lines, each piece ending at the first line end that brings it to ``flush_bytes`` or more.

    Runs its statement as ``_streamed_rows`` says: the caller provides the transaction (and its savepoint when
    it shares one), and keeps off the connection until the stream is exhausted or closed."""
    sql, params = export_sql(spec)
    if spec.format == "judgments":
        lines_of: Callable[[list[Any]], tuple[list[bytes], int]] = _audit_lines
    elif spec.format == "openai-sft":
        lines_of = _demonstration_lines
    else:
        lines_of = _pair_lines(spec)
    stats["fast_exports"] += 1
    pending: list[bytes] = []
    size = 0
    with _streamed_rows(sql, params, chunk_size=chunk_size) as rows:
        for page in _pages(rows, chunk_size):
            lines, count = lines_of(page)
            if not count:
                continue
            if counter is not None:
                counter.count += count
            data = b"".join(lines)
            start = 0
            while (end := data.find(b"\n", start + max(flush_bytes - size, 1) - 1)) != -1:
                pending.append(data[start : end + 1])
                yield b"".join(pending)
                pending, size, start = [], 0, end + 1
            if start < len(data):
                pending.append(data[start:])
                size += len(data) - start
    if pending:
        yield b"".join(pending)


def _pages(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` rows (the last one shorter)."""
    while page := list(itertools.islice(rows, size)):
        yield page
