"""The Postgres fast path of the JSONL exports: Postgres writes every output line, Python only moves bytes.

``labeling.selectors.exports.export_stream`` (and ``export_write`` for these formats) takes this path when
``fast_path_supported(spec)`` says yes and the database is Postgres; everything else (SQLite, CSV, Parquet, the
Hugging Face folder, ``min_agreement``) keeps the pure Python path: ORM records -> ``formats.format_rows`` ->
``formats.jsonl_chunks``.

One SQL statement builds the whole export: a row per live judgment (or demonstration), in id order, holding
its lines (the pairs of a ranking in ``labeling.rankings.ranking_pairs`` order, "both ways" for ``ties=both``).
It is read through a server-side cursor on Django's own cursor: ``DECLARE ... NO SCROLL CURSOR FOR <query>``,
then ``FETCH FORWARD <chunk_size>`` until a short page. So memory holds one page, the first bytes leave after the
first page, every statement goes through Django's execute wrappers (and its query log), and the read sits in the
export's REPEATABLE READ transaction like the Python path's. (``COPY (<query>) TO STDOUT`` was measured too: no
faster on one core, slower at a million rows, as COPY's CSV quoting scans every byte.)

Equivalence contract
--------------------
For every supported spec the bytes are exactly those of the Python path for the same snapshot, cut into the same
pieces (``formats.batched_bytes``' rule). Python writes ``json.dumps(row, ensure_ascii=False, allow_nan=False)``
with the default separators; the SQL reproduces that:

* keys in the order ``formats`` builds them, with ``", "`` and ``": "`` between them (string concatenation,
  never ``json_build_object``, which writes ``" : "``, nor ``jsonb``, which reorders keys);
* strings through ``to_json(text)``, whose escaping is Python's with ``ensure_ascii=False``: ``\\" \\\\ \\b \\f
  \\n \\r \\t``, any other control character as lowercase ``\\u00XX``, everything else (non-ASCII, emoji, DEL,
  U+2028) as is;
* ``margin`` as ``<strength>.0`` (``float(strength)``; strength is a smallint), ``0.0`` for a tie or no strength;
  booleans ``true``/``false``, missing values ``null``; ``created_at`` as ``datetime.isoformat()`` of the UTC
  value Django reads (``USE_TZ``): microseconds only when not zero, then ``+00:00``;
* prompts as ``selectors.exports._messages`` normalises them (``role``/``content`` read from each message,
  missing ones as ``""``, other keys dropped), rendered as ``formats.prompt_text`` / ``formats.hh_prompt``;
* the raw jsonb columns of the ``judgments`` format (``ranking``, ``criteria``, ``flags``) as ``jsonb::text``,
  which is ``json.dumps(json.loads(...))`` of the same value: Django decodes jsonb in jsonb's own key order,
  and both write ``", "``/``": "``. Numbers are the exception in principle (jsonb keeps ``1.50``, Python writes
  ``1.5``); the services store only integers there (positions, criterion scores) and strings (flags);
* rankings as lists of tiers of integer positions (``validate_ranking``); the SQL reads a position with
  ``::int``, so a non-integer one (which no service writes) would be rounded where Python fails on it.

Data the app cannot write is refused rather than rendered differently: a message whose ``role`` or ``content``
is not a JSON string (Python would write ``str(value)``, e.g. ``None``) stops the export with a FormatError
naming the judgment, as does a ranked position the task has no completion for (the Python path's own error,
same message).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection

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

_cursor_ids = itertools.count(1)


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


_ASSISTANT_OPEN = '{"role": "assistant", "content": '
_ROLE_OPEN = '{"role": '
_CONTENT_KEY = ', "content": '
_MESSAGES_OPEN = '{"messages": '


def _assistant(text_json: str) -> str:
    """``[{"role": "assistant", "content": <text>}]`` (formats._assistant)."""
    return f"{_lit('[' + _ASSISTANT_OPEN)} || {text_json} || {_lit('}]')}"


# The messages of prompt ``p`` as ``selectors.exports._messages`` reads them: one row per message, in order, with
# ``role``/``content`` ("" when missing) and ``ok`` (false when the message is not an object or one of the two is
# not a JSON string: out of contract, see the module docstring). JSON null reads as no messages (``raw or []``).
_MESSAGES_FROM = (
    "FROM jsonb_array_elements(CASE jsonb_typeof(p.messages) WHEN 'array' THEN p.messages "
    "WHEN 'null' THEN '[]'::jsonb ELSE '[null]'::jsonb END) WITH ORDINALITY AS e(m, i) "
    "CROSS JOIN LATERAL (SELECT coalesce(e.m ->> 'role', '') AS role, coalesce(e.m ->> 'content', '') AS content, "
    "jsonb_typeof(e.m) = 'object' AND coalesce(jsonb_typeof(e.m -> 'role'), 'string') = 'string' "
    "AND coalesce(jsonb_typeof(e.m -> 'content'), 'string') = 'string' AS ok) AS v"
)


def _hh_aggregate() -> str:
    """formats.hh_prompt over the rows of _MESSAGES_FROM."""
    turn = f"{_lit(chr(10) * 2)} || CASE WHEN v.role = 'user' THEN 'Human' ELSE 'Assistant' END || ': ' || v.content"
    return (
        f"coalesce(string_agg(v.content, {_lit(chr(10) * 2)} ORDER BY e.i) FILTER (WHERE v.role = 'system'), '') || "
        f"coalesce(string_agg({turn}, '' ORDER BY e.i) FILTER (WHERE v.role <> 'system'), '') || "
        f"{_lit(chr(10) * 2 + 'Assistant: ')}"
    )


# The common prompt, a single user message with string content, is read without expanding the array.
_LONE_USER = (
    "p.messages -> 1 IS NULL AND p.messages -> 0 ->> 'role' = 'user' "
    "AND jsonb_typeof(p.messages -> 0 -> 'content') = 'string'"
)
_LONE_MESSAGE = (
    "p.messages -> 1 IS NULL AND jsonb_typeof(p.messages -> 0 -> 'role') = 'string' "
    "AND jsonb_typeof(p.messages -> 0 -> 'content') = 'string'"
)


def _hh_prompt() -> str:
    """formats.hh_prompt(messages) as text; NULL when a message is out of contract."""
    lone = f"{_lit(chr(10) * 2 + 'Human: ')} || (p.messages -> 0 ->> 'content') || {_lit(chr(10) * 2 + 'Assistant: ')}"
    general = f"(SELECT CASE WHEN bool_and(v.ok) IS NOT FALSE THEN {_hh_aggregate()} END {_MESSAGES_FROM})"
    return f"CASE WHEN {_LONE_USER} THEN {lone} ELSE {general} END"


def _prompt_text() -> str:
    """formats.prompt_text(messages) as text: a lone user message is its content, anything else a transcript."""
    return (
        f"CASE WHEN {_LONE_USER} THEN p.messages -> 0 ->> 'content' "
        "ELSE (SELECT CASE WHEN bool_and(v.ok) IS NOT FALSE THEN CASE WHEN count(*) = 1 AND min(v.role) = 'user' "
        f"THEN min(v.content) ELSE {_hh_aggregate()} END END {_MESSAGES_FROM}) END"
    )


def _message_items() -> str:
    """The JSON of each message, joined by ", " ("" for none); NULL when a message is out of contract."""

    def item(role: str, content: str) -> str:
        return (
            f"{_lit(_ROLE_OPEN)} || to_json({role})::text || {_lit(_CONTENT_KEY)} || to_json({content})::text || '}}'"
        )

    lone = item("p.messages -> 0 ->> 'role'", "p.messages -> 0 ->> 'content'")
    general = (
        f"(SELECT CASE WHEN bool_and(v.ok) IS NOT FALSE THEN coalesce(string_agg({item('v.role', 'v.content')}, ', ' "
        f"ORDER BY e.i), '') END {_MESSAGES_FROM})"
    )
    return f"CASE WHEN {_LONE_MESSAGE} THEN {lone} ELSE {general} END"


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


def _query(spec: ExportSpec, row: str, task_columns: str) -> tuple[str, list[Any]]:
    """``SELECT <row> FROM`` the live records of the export, in id order, each with its task and prompt.

    The record is ``r``; the lateral ``tp`` holds ``task_columns`` (over task ``t`` and prompt ``p``, computed
    once per record, and filtered there). The shape leaves the planner one plan, whatever its estimates: an
    ordered index scan of the records, a nested loop into two primary-key lookups."""
    quote = connection.ops.quote_name
    demonstrations = spec.kind == formats.DEMONSTRATION
    table = quote((Demonstration if demonstrations else Judgment)._meta.db_table)
    own, own_params, task, task_params = _filters("r", spec.filters)
    live = "r.is_live" if demonstrations else "r.is_live AND r.action = 'label'"
    sql = (
        f"SELECT {row} FROM {table} r CROSS JOIN LATERAL (SELECT {task_columns} "
        f"FROM {quote(Task._meta.db_table)} t JOIN {quote(Prompt._meta.db_table)} p ON p.id = t.prompt_id "
        f"WHERE t.id = r.task_id{task} OFFSET 0) tp "
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


def _openai_sft_sql(spec: ExportSpec) -> tuple[str, list[Any]]:
    """formats._openai_sft_row: the prompt's messages, then the demonstration as the assistant's answer."""
    line = (
        f"{_lit(_MESSAGES_OPEN + '[')} || tp.items || CASE WHEN tp.items = '' THEN '' ELSE ', ' END || "
        f"{_lit(_ASSISTANT_OPEN)} || to_json(r.text)::text || '}}]}}'"
    )
    refused = (
        "chr(1) || 'messages:demonstration ' || r.id || ' (task ' || r.task_id || "
        "') has prompt messages whose role or content is not a string'"
    )
    return _query(spec, f"coalesce({line}, {refused})", f"{_message_items()} AS items")


def _pairs(ties: str) -> str:
    """labeling.rankings.ranking_pairs of ``r.ranking`` under a ties policy (formats.preference_pairs), as rows
    ``a, b, flip, tie, chosen, rejected``.

    Positions are read tier by tier; a position listed twice keeps its last tier (as the ``tier_of`` dict does).
    Each pair ``a < b`` gives ``chosen``/``rejected``: the better tier first, a tie in position order, and for
    ``ties=both`` a second, ``flip``-ped row."""
    flips = "(VALUES (false), (true))" if ties == "both" else "(VALUES (false))"
    where = {"drop": "WHERE a.tier <> b.tier", "keep": "", "both": "WHERE NOT f.flip OR a.tier = b.tier"}[ties]
    return (
        "WITH pos AS (SELECT (e.value)::int AS pos, max(rk.ord) AS tier "
        "FROM jsonb_array_elements(r.ranking) WITH ORDINALITY AS rk(tier, ord) "
        "CROSS JOIN LATERAL jsonb_array_elements(rk.tier) AS e GROUP BY 1) "
        "SELECT a.pos AS a, b.pos AS b, f.flip, a.tier = b.tier AS tie, "
        "CASE WHEN f.flip THEN b.pos WHEN a.tier <= b.tier THEN a.pos ELSE b.pos END AS chosen, "
        "CASE WHEN f.flip THEN a.pos WHEN a.tier <= b.tier THEN b.pos ELSE a.pos END AS rejected "
        f"FROM pos a JOIN pos b ON a.pos < b.pos CROSS JOIN {flips} AS f(flip) {where}"
    )


def _extras(options: Mapping[str, Any], tie: str) -> list[tuple[str, str]]:
    """formats._extras: ``margin`` (include_margin), then ``tie`` (ties=keep)."""
    extras = []
    if options.get("include_margin"):
        margin = f"CASE WHEN {tie} OR r.strength IS NULL THEN '0.0' ELSE r.strength::text || '.0' END"
        extras.append(("margin", margin))
    if options.get("ties") == "keep":
        extras.append(("tie", _json_bool(tie)))
    return extras


def _pair_prompt(format_name: str, options: Mapping[str, Any]) -> str:
    """The judgment's prompt as the format's lines need it (computed once per judgment, as ``tp.prompt``)."""
    if format_name == "trl" and options["style"] == "standard":
        return f"to_json({_prompt_text()})::text"
    if format_name == "hh-rlhf":
        return _hh_prompt()  # text: each line escapes the transcript with its completion
    return f"'[' || {_message_items()} || ']'"  # conversational trl, openai-preference


def _pair_line(format_name: str, options: Mapping[str, Any], cw: str, cl: str, tie: str) -> str:
    """One pair's line: ``cw``/``cl`` are the chosen/rejected completion as JSON strings (for hh-rlhf their text),
    ``tie`` a boolean."""
    if format_name == "trl" and options["style"] == "standard":
        return _object(("prompt", "tp.prompt"), ("chosen", cw), ("rejected", cl), *_extras(options, tie))
    if format_name == "trl":
        keys = [("prompt", "tp.prompt"), ("chosen", _assistant(cw)), ("rejected", _assistant(cl))]
        return _object(*keys, *_extras(options, tie))
    if format_name == "hh-rlhf":  # here cw/cl are the completions' text, escaped with the transcript
        keys = [("chosen", f"to_json(tp.prompt || {cw})::text"), ("rejected", f"to_json(tp.prompt || {cl})::text")]
        return _object(*keys, *_extras(options, tie))
    # openai-preference (formats._openai_preference_row takes no extras)
    return _object(
        ("input", f"{_lit(_MESSAGES_OPEN)} || tp.prompt || '}}'"),
        ("preferred_output", _assistant(cw)),
        ("non_preferred_output", _assistant(cl)),
    )


def _pair_error(cw: str, cl: str, chosen: str, rejected: str) -> str:
    """Why a pair's line is NULL: formats._pair's error for a missing completion, or refused messages."""
    return (
        f"CASE WHEN {cw} IS NULL THEN 'ranking:judgment ' || r.id || ' ranks position ' || {chosen} || "
        "', which task ' || r.task_id || ' lacks' "
        f"WHEN {cl} IS NULL THEN 'ranking:judgment ' || r.id || ' ranks position ' || {rejected} || "
        "', which task ' || r.task_id || ' lacks' "
        "ELSE 'messages:judgment ' || r.id || ' (task ' || r.task_id || "
        "') has prompt messages whose role or content is not a string' END"
    )


def _pairs_sql(spec: ExportSpec) -> tuple[str, list[Any]]:
    """trl, hh-rlhf and openai-preference: a row per live judgment with the lines of its pairs.

    The rankings of two positions (``[[x], [y]]``, ``[[x, y]]``) are written directly; any other goes through
    ``_pairs`` (the general expansion, which covers them too but costs a few subqueries per judgment)."""
    options, ties = spec.options, spec.options["ties"]
    table = connection.ops.quote_name(Completion._meta.db_table)

    # hh-rlhf joins transcript and completion before escaping them; the other formats escape the completion alone.
    value = "c.text" if spec.format == "hh-rlhf" else "to_json(c.text)::text"

    def text(position: str) -> str:
        return f"(SELECT {value} FROM {table} c WHERE c.task_id = r.task_id AND c.position = {position})"

    def one(chosen: str, rejected: str, tie: str) -> str:
        line = _pair_line(spec.format, options, text(chosen), text(rejected), tie)
        return f"coalesce({line}, chr(1) || {_pair_error(text(chosen), text(rejected), chosen, rejected)})"

    # General: each pair's line, or NULL and why; the judgment's lines joined, or chr(1) and the first reason.
    line = _pair_line(spec.format, options, "pr.cw", "pr.cl", "pr.tie")
    error = _pair_error("pr.cw", "pr.cl", "pr.chosen", "pr.rejected")
    pairs = f"SELECT pr.*, {text('pr.chosen')} AS cw, {text('pr.rejected')} AS cl FROM ({_pairs(ties)}) pr OFFSET 0"
    general = (
        "(SELECT CASE WHEN bool_and(l.line IS NOT NULL) THEN string_agg(l.line, chr(10) ORDER BY l.a, l.b, l.flip) "
        "ELSE chr(1) || (array_agg(l.error ORDER BY l.a, l.b, l.flip) FILTER (WHERE l.line IS NULL))[1] END "
        f"FROM (SELECT pr.a, pr.b, pr.flip, {line} AS line, {error} AS error FROM ({pairs}) pr) l)"
    )
    first, second = "r.ranking -> 0 -> 0", "r.ranking -> 1 -> 0"
    x, y = f"({first})::int", f"({second})::int"
    strict = (
        f"r.ranking -> 2 IS NULL AND r.ranking -> 0 -> 1 IS NULL AND r.ranking -> 1 -> 1 IS NULL "
        f"AND jsonb_typeof({first}) = 'number' AND jsonb_typeof({second}) = 'number' AND {first} <> {second}"
    )
    # The rankings of a pairwise task first, compared whole (cheaper than taking them apart).
    cases = [f"WHEN r.ranking = '[[0], [1]]' THEN {one('0', '1', 'false')}"]
    cases.append(f"WHEN r.ranking = '[[1], [0]]' THEN {one('1', '0', 'false')}")
    if ties != "both":
        cases.append(f"WHEN r.ranking = '[[0, 1]]' THEN {'NULL' if ties == 'drop' else one('0', '1', 'true')}")
    cases.append(f"WHEN {strict} THEN {one(x, y, 'false')}")
    if ties != "both":
        tied = "r.ranking -> 0 -> 1"
        tie = (
            f"r.ranking -> 1 IS NULL AND r.ranking -> 0 -> 2 IS NULL AND jsonb_typeof({first}) = 'number' "
            f"AND jsonb_typeof({tied}) = 'number' AND {first} <> {tied}"
        )
        a, b = f"least({x}, ({tied})::int)", f"greatest({x}, ({tied})::int)"
        cases.append(f"WHEN {tie} THEN {'NULL' if ties == 'drop' else one(a, b, 'true')}")
    lines = f"CASE {' '.join(cases)} ELSE {general} END"
    return _query(spec, lines, f"{_pair_prompt(spec.format, options)} AS prompt")


def export_sql(spec: ExportSpec) -> tuple[str, list[Any]]:
    """The query (and its parameters): one text column, a row per judgment (or demonstration) in export order,
    holding its lines joined by newlines; NULL when it has none (a tie under ``ties=drop``); or, when it cannot be
    written, chr(1) then ``<field>:<why>``."""
    if not fast_path_supported(spec):
        raise ValueError(f"{spec.format} with these options is not written by SQL")
    if spec.format == "judgments":
        return _audit_sql(spec)
    if spec.format == "openai-sft":
        return _openai_sft_sql(spec)
    return _pairs_sql(spec)


# --- streaming ---------------------------------------------------------------------------------------------


def stream_lines(
    spec: ExportSpec, *, chunk_size: int, flush_bytes: int, counter: formats.RowCounter | None = None
) -> Iterator[bytes]:
    """The export's bytes, read ``chunk_size`` records per FETCH, in the pieces ``formats.batched_bytes`` cuts:
    whole lines, each piece ending at the first line end that brings it to ``flush_bytes`` or more.

    Must run inside a transaction (a cursor lives as long as its transaction): the caller opens it. A cursor
    read to its end is left to the transaction's end, which frees it; one abandoned half-way is closed."""
    sql, params = export_sql(spec)
    stats["fast_exports"] += 1
    name = f"arbiter_export_{next(_cursor_ids)}"
    done = False
    pending: list[bytes] = []
    size = 0
    with connection.cursor() as cursor:
        cursor.execute(f"DECLARE {name} NO SCROLL CURSOR FOR {sql}", params)
        try:
            while not done:
                cursor.execute(f"FETCH FORWARD {int(chunk_size)} FROM {name}")
                rows = cursor.fetchall()
                done = len(rows) < chunk_size
                text = "\n".join([row[0] for row in rows if row[0] is not None])
                if not text:
                    continue
                if "\x01" in text:  # JSON never holds a raw control character: a refusal, "\x01<field>:<why>"
                    field, _, message = text[text.index("\x01") + 1 :].split("\n", 1)[0].partition(":")
                    raise formats.FormatError({field: message})
                data = (text + "\n").encode("utf-8")
                if counter is not None:
                    counter.count += data.count(b"\n")
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
        finally:
            if not done and not connection.needs_rollback:
                with contextlib.suppress(DatabaseError):  # a failing transaction frees it as it ends
                    cursor.execute(f"CLOSE {name}")
