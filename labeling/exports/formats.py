"""Export formats: turn exported records into training-ready rows and write them incrementally. Plain Python.

Input is an iterator of *records*, plain dicts built by ``labeling.selectors.exports``:

* comparison records (one per live judgment): ``judgment_id, task_id, external_id, split, is_gold, messages,
  completions ({position: {"text", "model"}}), ranking, all_bad, strength, criteria, rationale, flags,
  time_spent_ms, annotator, source, created_at`` (``created_at`` an ISO string);
* demonstration records (one per live demonstration): ``demonstration_id, task_id, external_id, split, is_gold,
  messages, text, flags, time_spent_ms, annotator, source, created_at``.

A ranking of K completions gives all C(K,2) pairs (``labeling.rankings.ranking_pairs``); tied pairs follow the
``ties`` option: ``drop`` leaves them out, ``both`` writes the pair both ways, ``keep`` writes it once with
``"tie": true``. ``margin`` (option ``include_margin``) is the judgment's strength, 0.0 for a tie or when the
strength is unknown (imported judgments).

Text renderings ("standard" style): a prompt that is a single user message is its content; any other prompt (a
system message, several turns) is rendered as an Anthropic HH transcript ending in ``"\\n\\nAssistant: "``, with
system messages prepended before the first ``"\\n\\nHuman:"`` turn (as in Anthropic's text-completion format).

Nothing here holds more than one chunk of rows: JSONL and CSV are written row by row, Parquet one row group at a
time, the Hugging Face folder through ``datasets``' on-disk Arrow writer.

``PairLines`` and ``demonstration_line`` write the JSONL lines of the preference formats and openai-sft straight
from texts, without building the row dicts, for the Postgres fast path (``labeling.selectors.exports_sql``): the
same bytes as ``jsonl_chunks(format_rows(...))``, several times faster.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from labeling.rankings import ranking_pairs

COMPARISON = "comparison"
DEMONSTRATION = "demonstration"

FLUSH_BYTES = 1 << 16
ROW_GROUP_ROWS = 2000

_STYLE = ("standard", "conversational")
_TIES = ("drop", "both", "keep")
_BOOL = (False, True)
# Options that only make sense for preference (comparison) data.
_PREFERENCE_ONLY = {"ties", "include_margin"}


class FormatError(ValueError):
    """Bad format name or option. ``errors`` maps the offending field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {value}" for key, value in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class FormatSpec:
    name: str
    extension: str
    media_type: str
    kinds: tuple[str, ...]
    # True: written row by row to any stream (JSONL, CSV). False: needs a whole file (Parquet, HF folder as tar).
    streamable: bool
    # option name -> allowed values; the first is the default.
    options: Mapping[str, tuple[Any, ...]]
    description: str


_PAIR_OPTIONS = {"style": _STYLE, "ties": _TIES, "include_margin": _BOOL}
_JSONL = "application/x-ndjson"
_BOTH = (COMPARISON, DEMONSTRATION)


def _spec(name: str, extension: str, media_type: str, kinds: tuple[str, ...], streamable: bool,
          options: Mapping[str, tuple[Any, ...]], description: str) -> FormatSpec:  # fmt: skip
    return FormatSpec(name, extension, media_type, kinds, streamable, options, description)


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        _spec("trl", "jsonl", _JSONL, (COMPARISON,), True, _PAIR_OPTIONS,
              "TRL preference JSONL: prompt/chosen/rejected (RewardTrainer, DPOTrainer)"),
        _spec("hh-rlhf", "jsonl", _JSONL, (COMPARISON,), True, {"ties": _TIES, "include_margin": _BOOL},
              "Anthropic HH-RLHF JSONL: chosen/rejected transcripts"),
        _spec("openai-preference", "jsonl", _JSONL, (COMPARISON,), True, {"ties": ("drop", "both")},
              "OpenAI preference fine-tuning JSONL: input/preferred_output/non_preferred_output"),
        _spec("openai-sft", "jsonl", _JSONL, (DEMONSTRATION,), True, {},
              "OpenAI chat JSONL of demonstrations: messages"),
        _spec("judgments", "jsonl", _JSONL, _BOTH, True, {},
              "raw JSONL, one line per live judgment (or demonstration), for audit"),
        _spec("csv", "csv", "text/csv", _BOTH, True, {"style": ("standard",), "ties": _TIES, "include_margin": _BOOL},
              "CSV table of pairs (or demonstrations) with metadata columns"),
        _spec("parquet", "parquet", "application/vnd.apache.parquet", _BOTH, False, _PAIR_OPTIONS,
              "Parquet table of pairs (or demonstrations) with metadata columns"),
        _spec("hf-dataset", "tar", "application/x-tar", _BOTH, False, _PAIR_OPTIONS,
              "Hugging Face datasets save_to_disk folder (datasets.load_from_disk), packed as a tar"),
    )
}  # fmt: skip


def parse_bool(value: Any) -> bool | None:
    """``True``/``False`` from a bool or a string such as "true", "0", "yes"; None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
    return None


def format_get(name: Any) -> FormatSpec:
    spec = FORMATS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise FormatError({"format": f"unknown format {name!r}; choose one of {', '.join(FORMATS)}"})
    return spec


def formats_for_kind(kind: str) -> list[str]:
    return [name for name, spec in FORMATS.items() if kind in spec.kinds]


def options_parse(format_name: Any, raw: Mapping[str, Any] | None, *, kind: str) -> dict[str, Any]:
    """Check a format's options (strings from a query string are accepted) and fill in defaults."""
    spec = format_get(format_name)
    if kind not in spec.kinds:
        raise FormatError(
            {
                "format": f"{spec.name} does not fit {kind} data; formats for {kind} data: "
                f"{', '.join(formats_for_kind(kind))}"
            }
        )
    allowed = {k: v for k, v in spec.options.items() if kind == COMPARISON or k not in _PREFERENCE_ONLY}
    raw = dict(raw or {})
    errors: dict[str, str] = {}
    for key in raw:
        if key not in allowed:
            known = f"its options are {', '.join(allowed)}" if allowed else "it takes no options"
            errors[key] = f"not an option of {spec.name} for {kind} data ({known})"
    options: dict[str, Any] = {}
    for key, choices in allowed.items():
        value = raw.get(key, choices[0])
        if choices == _BOOL:
            parsed = parse_bool(value)
            if parsed is None:
                errors[key] = f"must be true or false, got {value!r}"
            value = parsed
        elif value not in choices:
            errors[key] = f"must be one of {', '.join(choices)} for {spec.name}, got {value!r}"
        options[key] = value
    if errors:
        raise FormatError(errors)
    return options


# --- text renderings ---------------------------------------------------------------------------


def hh_prompt(messages: list[dict[str, str]]) -> str:
    """The prompt as an HH transcript: system text first, then ``\\n\\nHuman:``/``\\n\\nAssistant:`` turns."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = "".join(
        f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}"
        for m in messages
        if m["role"] != "system"
    )
    return f"{system}{turns}\n\nAssistant: "


def prompt_text(messages: list[dict[str, str]]) -> str:
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return hh_prompt(messages)


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


# --- records -> rows -----------------------------------------------------------------------------


def preference_pairs(records: Iterable[Mapping[str, Any]], *, ties: str) -> Iterator[dict[str, Any]]:
    """One dict per (chosen, rejected) pair derived from each judgment's ranking, under the ties policy."""
    if ties not in _TIES:
        raise FormatError({"ties": f"must be one of {', '.join(_TIES)}, got {ties!r}"})
    for rec in records:
        for chosen, rejected, tie in ranking_lines(rec["ranking"], ties=ties):
            yield _pair(rec, chosen, rejected, tie=tie)


def ranking_lines(ranking: Any, *, ties: str) -> list[tuple[int, int, bool]]:
    """``(chosen, rejected, tie)`` for each row a ranking gives (``labeling.rankings.ranking_pairs``) under the
    ties policy: ``drop`` leaves tied pairs out, ``both`` writes them both ways, ``keep`` once."""
    lines = []
    for pair in ranking_pairs(ranking):
        if pair.tie and ties == "drop":
            continue
        lines.append((pair.winner, pair.loser, pair.tie))
        if pair.tie and ties == "both":
            lines.append((pair.loser, pair.winner, pair.tie))
    return lines


def _pair(rec: Mapping[str, Any], chosen: int, rejected: int, *, tie: bool) -> dict[str, Any]:
    completions = rec["completions"]
    for pos in (chosen, rejected):
        if pos not in completions:
            raise FormatError(
                {"ranking": f"judgment {rec['judgment_id']} ranks position {pos}, which task {rec['task_id']} lacks"}
            )
    strength = None if tie else rec["strength"]
    return {
        "messages": rec["messages"],
        "chosen": completions[chosen]["text"],
        "rejected": completions[rejected]["text"],
        "margin": float(strength) if strength is not None else 0.0,
        "tie": tie,
        "strength": strength,
        "all_bad": rec["all_bad"],
        "task_id": rec["task_id"],
        "judgment_id": rec["judgment_id"],
        "external_id": rec["external_id"],
        "split": rec["split"],
        "is_gold": rec["is_gold"],
        "chosen_position": chosen,
        "rejected_position": rejected,
        "chosen_model": completions[chosen]["model"],
        "rejected_model": completions[rejected]["model"],
        "annotator": rec["annotator"],
        "source": rec["source"],
        "created_at": rec["created_at"],
    }


def _extras(pair: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if options.get("include_margin"):
        extras["margin"] = pair["margin"]
    if options.get("ties") == "keep":
        extras["tie"] = pair["tie"]
    return extras


def _trl_row(pair: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    if options["style"] == "conversational":
        row = {
            "prompt": pair["messages"],
            "chosen": _assistant(pair["chosen"]),
            "rejected": _assistant(pair["rejected"]),
        }
    else:
        row = {"prompt": prompt_text(pair["messages"]), "chosen": pair["chosen"], "rejected": pair["rejected"]}
    return {**row, **_extras(pair, options)}


def _hh_row(pair: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    prompt = hh_prompt(pair["messages"])
    return {"chosen": prompt + pair["chosen"], "rejected": prompt + pair["rejected"], **_extras(pair, options)}


def _openai_preference_row(pair: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "input": {"messages": pair["messages"]},
        "preferred_output": _assistant(pair["chosen"]),
        "non_preferred_output": _assistant(pair["rejected"]),
    }


def _openai_sft_row(rec: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    return {"messages": [*rec["messages"], *_assistant(rec["text"])]}


def _judgment_row(rec: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "judgment_id", "task_id", "external_id", "split", "is_gold", "annotator", "source", "ranking", "all_bad",
        "strength", "criteria", "rationale", "flags", "time_spent_ms", "created_at",
    )  # fmt: skip
    return {key: rec[key] for key in keys}


def _demonstration_audit_row(rec: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "demonstration_id", "task_id", "external_id", "split", "is_gold", "annotator", "source", "text", "flags",
        "time_spent_ms", "created_at",
    )  # fmt: skip
    return {key: rec[key] for key in keys}


# Tabular formats: (column, type). "prompt"/"completion" become text or messages depending on the style.
_PAIR_COLUMNS = (
    ("prompt", "prompt"), ("chosen", "completion"), ("rejected", "completion"), ("margin", "float"),
    ("tie", "bool"), ("strength", "int"), ("all_bad", "bool"), ("task_id", "int"), ("judgment_id", "int"),
    ("external_id", "str"), ("split", "str"), ("is_gold", "bool"), ("chosen_position", "int"),
    ("rejected_position", "int"), ("chosen_model", "str"), ("rejected_model", "str"), ("annotator", "str"),
    ("source", "str"), ("created_at", "str"),
)  # fmt: skip
_DEMONSTRATION_COLUMNS = (
    ("prompt", "prompt"), ("completion", "completion"), ("task_id", "int"), ("demonstration_id", "int"),
    ("external_id", "str"), ("split", "str"), ("is_gold", "bool"), ("annotator", "str"), ("source", "str"),
    ("created_at", "str"),
)  # fmt: skip


def table_columns(*, kind: str, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The columns of a tabular export, with types ``str``, ``int``, ``float``, ``bool`` or ``messages``."""
    conversational = options.get("style") == "conversational"
    base = _PAIR_COLUMNS if kind == COMPARISON else _DEMONSTRATION_COLUMNS
    columns = []
    for name, kind_ in base:
        if name == "margin" and not options.get("include_margin"):
            continue
        if kind_ in ("prompt", "completion"):
            kind_ = "messages" if conversational else "str"
        columns.append((name, kind_))
    return columns


def _pair_table_row(pair: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    return {**pair, **_trl_row(pair, {"style": options.get("style", "standard")})}


def _demonstration_table_row(rec: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    conversational = options.get("style") == "conversational"
    return {
        **rec,
        "prompt": rec["messages"] if conversational else prompt_text(rec["messages"]),
        "completion": _assistant(rec["text"]) if conversational else rec["text"],
    }


def _project(rows: Iterable[Mapping[str, Any]], names: list[str]) -> Iterator[dict[str, Any]]:
    for row in rows:
        yield {name: row[name] for name in names}


_PAIR_BUILDERS = {"trl": _trl_row, "hh-rlhf": _hh_row, "openai-preference": _openai_preference_row}
_TABLES = ("csv", "parquet", "hf-dataset")


def format_rows(
    format_name: str, records: Iterable[Mapping[str, Any]], *, kind: str, options: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    """The output rows of a format, lazily: one record in, zero or more rows out."""
    spec = format_get(format_name)
    if kind not in spec.kinds:
        raise FormatError({"format": f"{spec.name} does not fit {kind} data"})
    if format_name == "judgments":
        audit = _judgment_row if kind == COMPARISON else _demonstration_audit_row
        return (audit(rec, options) for rec in records)
    if format_name in _TABLES:
        names = [name for name, _ in table_columns(kind=kind, options=options)]
        if kind == DEMONSTRATION:
            return _project((_demonstration_table_row(rec, options) for rec in records), names)
        pairs = preference_pairs(records, ties=options["ties"])
        return _project((_pair_table_row(pair, options) for pair in pairs), names)
    if kind == DEMONSTRATION:
        return (_openai_sft_row(rec, options) for rec in records)
    build = _PAIR_BUILDERS[format_name]
    return (build(pair, options) for pair in preference_pairs(records, ties=options["ties"]))


# --- writers -------------------------------------------------------------------------------------


class RowCounter:
    """Counts the rows that pass through ``wrap`` (the row count of a written export)."""

    def __init__(self) -> None:
        self.count = 0

    def wrap(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            self.count += 1
            yield row


def jsonl_chunks(rows: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"


# --- JSONL lines from texts (the Postgres fast path) ---------------------------------------------------------
#
# ``jsonl_chunks`` writes ``json.dumps(row, ensure_ascii=False, allow_nan=False)``: keys in the order the row
# builders above give them, ", " and ": " between items, strings escaped as ``\" \\ \b \f \n \r \t`` and any
# other control character as lowercase ``\u00XX``, everything else (non-ASCII, emoji, DEL, U+2028) as is. orjson
# escapes a string exactly so (tests compare every code point), ten times faster; the fixed parts of each line
# are spelled out below with json.dumps' separators. Only strings go through orjson: its compact separators and
# its own number formatting never reach the output.


def json_string(text: str) -> bytes:
    """``json.dumps(text, ensure_ascii=False).encode()``."""
    return orjson.dumps(text)


def messages_json(messages: list[dict[str, str]]) -> bytes:
    """``json.dumps(messages, ensure_ascii=False).encode()`` of normalised ``[{"role", "content"}]`` messages."""
    dumps = orjson.dumps
    items = [b'{"role": ' + dumps(m["role"]) + b', "content": ' + dumps(m["content"]) + b"}" for m in messages]
    return b"[" + b", ".join(items) + b"]"


_TRUE_FALSE = (b"false", b"true")


class PairLines:
    """The JSONL line of a (chosen, rejected) pair in ``trl``, ``hh-rlhf`` or ``openai-preference``: the bytes
    ``jsonl_chunks`` writes for the row ``_trl_row``/``_hh_row``/``_openai_preference_row`` build.

    ``prompt(messages)`` renders a judgment's prompt once (what the lines of all its pairs share); ``line(prompt,
    chosen, rejected, strength=..., tie=...)`` writes one line, with its newline.
    """

    def __init__(self, format_name: str, options: Mapping[str, Any]) -> None:
        if format_name not in _PAIR_BUILDERS:
            raise FormatError({"format": f"{format_name} is not a preference format"})
        self.format = format_name
        self.style = options.get("style", "standard") if format_name == "trl" else None
        # formats._extras: margin, then tie (openai-preference takes neither)
        self.margin = bool(options.get("include_margin")) and format_name != "openai-preference"
        self.tie = options.get("ties") == "keep" and format_name != "openai-preference"
        if self.style == "standard":
            self._open, self._mid, self._close = b'{"prompt": ', b', "chosen": ', b', "rejected": '
        elif self.style == "conversational":
            self._open = b'{"prompt": '
            self._mid = b', "chosen": [{"role": "assistant", "content": '
            self._close = b'}], "rejected": [{"role": "assistant", "content": '
        elif format_name == "openai-preference":
            self._open = b'{"input": {"messages": '
            self._mid = b'}, "preferred_output": [{"role": "assistant", "content": '
            self._close = b'}], "non_preferred_output": [{"role": "assistant", "content": '
        self._end = b"}]" if self.style == "conversational" or format_name == "openai-preference" else b""
        self._open = self._open if format_name != "hh-rlhf" else b""

    def prompt(self, messages: list[dict[str, str]]) -> Any:
        """What the lines of one judgment share: the JSON of its prompt (``hh-rlhf``: the transcript text, which
        each line joins to its completion before escaping)."""
        if self.format == "hh-rlhf":
            return hh_prompt(messages)
        if self.style == "standard":
            return orjson.dumps(prompt_text(messages))
        return messages_json(messages)

    def user_prompt(self, content: str) -> Any:
        """``prompt([{"role": "user", "content": content}])``, the common prompt, without building the list."""
        if self.format == "hh-rlhf":
            return "\n\nHuman: " + content + "\n\nAssistant: "
        if self.style == "standard":
            return orjson.dumps(content)
        return b'[{"role": "user", "content": ' + orjson.dumps(content) + b"}]"

    def line(self, prompt: Any, chosen: str, rejected: str, strength: int | None, tie: bool) -> bytes:
        """The line of one pair; ``strength`` is the judgment's (``margin``), ``tie`` whether the pair is tied."""
        dumps = orjson.dumps
        tail = self._end
        if self.margin:  # _pair: float(strength), 0.0 for a tie or no strength; json.dumps writes its repr()
            tail += b', "margin": ' + repr(float(strength) if strength is not None and not tie else 0.0).encode()
        if self.tie:
            tail += b', "tie": ' + _TRUE_FALSE[tie]
        if self.format == "hh-rlhf":
            return b"".join(
                (b'{"chosen": ', dumps(prompt + chosen), b', "rejected": ', dumps(prompt + rejected), tail, b"}\n")
            )
        return b"".join((self._open, prompt, self._mid, dumps(chosen), self._close, dumps(rejected), tail, b"}\n"))


def demonstration_line(messages: list[dict[str, str]], text: str) -> bytes:
    """The ``openai-sft`` line of a demonstration (``_openai_sft_row``), with its newline."""
    assistant = b'{"role": "assistant", "content": ' + orjson.dumps(text) + b"}"
    items = messages_json(messages)[1:-1]
    return b'{"messages": [' + items + (b", " if items else b"") + assistant + b"]}\n"


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        raise FormatError({"style": "csv holds text columns only; use style=standard"})
    return value


def csv_chunks(rows: Iterable[Mapping[str, Any]], columns: list[tuple[str, str]]) -> Iterator[bytes]:
    """RFC 4180 CSV (quoted fields keep newlines, commas and quotes), UTF-8, a header line first."""
    names = [name for name, _ in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(names)
    for row in rows:
        writer.writerow([_csv_value(row[name]) for name in names])
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # no rows: the header alone
        yield buffer.getvalue().encode("utf-8")


def batched_bytes(chunks: Iterator[bytes], *, flush_bytes: int = FLUSH_BYTES) -> Iterator[bytes]:
    """Join small chunks into pieces of about ``flush_bytes`` (fewer, larger writes to a socket or file)."""
    pending: list[bytes] = []
    size = 0
    try:
        for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= flush_bytes:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # a client that hangs up stops the database read at once


def arrow_schema(columns: list[tuple[str, str]]) -> Any:
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "messages": message}
    return pa.schema([(name, types[kind]) for name, kind in columns])


def _in_groups(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    group: list[dict[str, Any]] = []
    for row in rows:
        group.append(row)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def write_parquet(
    rows: Iterable[dict[str, Any]], out: BinaryIO | str | Path, *, columns: list[tuple[str, str]],
    row_group_rows: int = ROW_GROUP_ROWS,
) -> None:  # fmt: skip
    """Parquet, one row group per ``row_group_rows`` rows: only one group is ever in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    writer = pq.ParquetWriter(out, schema)
    try:
        for group in _in_groups(rows, row_group_rows):
            writer.write_table(pa.Table.from_pylist(group, schema=schema), row_group_size=row_group_rows)
    finally:
        writer.close()


def write_hf_dataset(
    rows: Iterable[dict[str, Any]], folder: Path, *, columns: list[tuple[str, str]], work_dir: Path
) -> None:
    """A ``datasets`` save_to_disk folder, built through datasets' on-disk Arrow writer (flat memory)."""
    import datasets
    from datasets.utils import logging as ds_logging

    features = datasets.Features.from_arrow_schema(arrow_schema(columns))
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    verbosity = ds_logging.get_verbosity()
    datasets.utils.disable_progress_bars()
    ds_logging.set_verbosity_error()
    try:
        # A generator is only called once, in this process; the fingerprint skips hashing it.
        source = iter(rows)

        def generate() -> Iterator[dict[str, Any]]:
            yield from source

        dataset = datasets.Dataset.from_generator(
            generate, features=features, cache_dir=str(work_dir / "cache"), fingerprint=uuid.uuid4().hex
        )
        dataset.save_to_disk(str(folder))
        del dataset
    finally:
        ds_logging.set_verbosity(verbosity)
        if bars_were_on:
            datasets.utils.enable_progress_bars()


def write_tar(folder: Path, out: BinaryIO, *, arcname: str = "dataset") -> None:
    """A plain tar of ``folder`` (written as a stream; fixed owners and times, names sorted)."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(folder, arcname=arcname, recursive=False, filter=clean)
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=f"{arcname}/{path.relative_to(folder).as_posix()}", recursive=False, filter=clean)


def stream_export(
    format_name: str, records: Iterable[Mapping[str, Any]], *, kind: str, options: Mapping[str, Any],
    counter: RowCounter | None = None, flush_bytes: int = FLUSH_BYTES,
) -> Iterator[bytes]:  # fmt: skip
    """The bytes of a streamable export (JSONL, CSV), produced lazily as the records are read."""
    spec = format_get(format_name)
    if not spec.streamable:
        raise FormatError({"format": f"{spec.name} is not written row by row; use write_export"})
    rows = format_rows(format_name, records, kind=kind, options=options)
    if counter is not None:
        rows = counter.wrap(rows)
    if spec.extension == "csv":
        chunks = csv_chunks(rows, table_columns(kind=kind, options=options))
    else:
        chunks = jsonl_chunks(rows)
    return batched_bytes(chunks, flush_bytes=flush_bytes)


def write_export(
    format_name: str, records: Iterable[Mapping[str, Any]], out: BinaryIO, *, kind: str,
    options: Mapping[str, Any], work_dir: Path | str | None = None,
) -> int:  # fmt: skip
    """Write any format to a binary file object; return the number of rows written.

    ``work_dir`` holds the scratch folder of the hf-dataset format (the system temp dir when None).
    """
    spec = format_get(format_name)
    counter = RowCounter()
    if spec.streamable:
        for chunk in stream_export(format_name, records, kind=kind, options=options, counter=counter):
            out.write(chunk)
        return counter.count
    rows = counter.wrap(format_rows(format_name, records, kind=kind, options=options))
    columns = table_columns(kind=kind, options=options)
    if spec.name == "parquet":
        write_parquet(rows, out, columns=columns)
    else:
        with tempfile.TemporaryDirectory(dir=work_dir, prefix="hf-export-") as tmp:
            folder = Path(tmp) / "dataset"
            write_hf_dataset(rows, folder, columns=columns, work_dir=Path(tmp))
            write_tar(folder, out)
    return counter.count
