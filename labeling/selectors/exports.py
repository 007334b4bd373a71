"""Read side of exports: parse filters, plan an export, stream its records from the database.

Records are read with keyset pagination (``id > last ORDER BY id LIMIT chunk``), so memory stays flat however
big the project is, and the number of queries grows per chunk, not per row: one for the chunk of judgments
(joined with task, prompt and annotator), one for the completions of the chunk's tasks, and one more for their
agreement when ``min_agreement`` is set. On Postgres, an export that is not already inside a transaction reads
every chunk from one REPEATABLE READ snapshot, so a correction made mid-export cannot show both the old and the
new verdict.

On Postgres, ``export_stream`` and ``export_write`` send the JSONL formats (trl, hh-rlhf, openai-preference,
openai-sft, judgments; not with ``min_agreement``) to ``labeling.selectors.exports_sql``: one SQL statement,
streamed, returns the raw columns of every record (for ``judgments``, its line) and Python writes the lines with
``formats.PairLines``/``formats.demonstration_line``, byte for byte the Python path's, while Postgres computes the
next rows. Records, rows, CSV, Parquet, the Hugging Face folder, ``min_agreement`` and SQLite keep the Python
path below.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from arbiter.errors import NotFound, ValidationFailed
from labeling.exports import formats
from labeling.models import (
    Completion,
    DatasetSnapshot,
    Demonstration,
    Judgment,
    JudgmentAction,
    Project,
    Source,
    Split,
    TaskKind,
)
from labeling.options import parse_label_options
from labeling.rankings import task_agreement
from labeling.selectors import exports_sql

CHUNK_SIZE = 500
FILTER_KEYS = ("date_from", "date_to", "annotators", "exclude_gold", "min_agreement", "split", "source")
MAX_ANNOTATORS = 1000


@dataclass(frozen=True)
class ExportFilters:
    """Which judgments (or demonstrations) an export takes. Dates bound ``created_at``; a plain date for
    ``date_to`` includes that whole day."""

    date_from: date | datetime | None = None
    date_to: date | datetime | None = None
    annotators: tuple[str, ...] = ()
    exclude_gold: bool = False
    min_agreement: float | None = None
    split: str | None = None
    source: str | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """``created_at >= lower`` and ``created_at < upper``."""
        tz = timezone.get_current_timezone()
        lower = upper = None
        if isinstance(self.date_from, datetime):
            lower = self.date_from
        elif isinstance(self.date_from, date):
            lower = datetime.combine(self.date_from, time.min, tzinfo=tz)
        if isinstance(self.date_to, datetime):
            upper = self.date_to + timedelta(microseconds=1)
        elif isinstance(self.date_to, date):
            upper = datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=tz)
        return lower, upper

    def to_json(self) -> dict[str, Any]:
        """The filters that are set, as JSON (what a snapshot records)."""
        data: dict[str, Any] = {}
        if self.date_from is not None:
            data["date_from"] = self.date_from.isoformat()
        if self.date_to is not None:
            data["date_to"] = self.date_to.isoformat()
        if self.annotators:
            data["annotators"] = list(self.annotators)
        if self.exclude_gold:
            data["exclude_gold"] = True
        for key in ("min_agreement", "split", "source"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


def _parse_when(value: Any) -> date | datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return value
    elif isinstance(value, str):
        text = value.strip()
        try:
            day = parse_date(text)
            if day is not None:
                return day
            moment = parse_datetime(text)  # type: ignore[assignment]
        except ValueError:
            return None
        if moment is None:
            return None
    else:
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        out: list[Any] = []
        for item in value:
            if not isinstance(item, str):
                return None
            out.extend(part.strip() for part in item.split(",") if part.strip())
        return out
    return None


def export_filters_parse(*, raw: Mapping[str, Any] | ExportFilters | None) -> ExportFilters:
    """Check filters given as JSON values or as strings (query string, command line); name every bad one.

    ``annotators`` is a list of usernames or a comma-separated string; booleans accept true/false/1/0/yes/no.
    """
    if isinstance(raw, ExportFilters):
        return raw
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValidationFailed("filters must be an object", details={"filters": "must be an object"})
    errors: dict[str, str] = {}
    for key in raw:
        if key not in FILTER_KEYS:
            errors[str(key)] = f"unknown filter; the filters are {', '.join(FILTER_KEYS)}"
    values: dict[str, Any] = {}
    for key in ("date_from", "date_to"):
        value = raw.get(key)
        if value in (None, ""):
            continue
        parsed = _parse_when(value)
        if parsed is None:
            errors[key] = f"must be an ISO date (2024-05-01) or date-time (2024-05-01T12:00:00Z), got {value!r}"
        else:
            values[key] = parsed
    if "date_from" in values and "date_to" in values:
        lower, upper = ExportFilters(date_from=values["date_from"], date_to=values["date_to"]).bounds()
        if lower is not None and upper is not None and lower >= upper:
            errors["date_to"] = "is before date_from"
    if raw.get("annotators") not in (None, "", [], ()):
        names = _as_list(raw["annotators"])
        if names is None or any(len(name) > 150 for name in names):
            errors["annotators"] = "must be a list of usernames (or a comma-separated string)"
        elif len(names) > MAX_ANNOTATORS:
            errors["annotators"] = f"at most {MAX_ANNOTATORS} usernames"
        else:
            values["annotators"] = tuple(sorted(set(names)))
    if raw.get("exclude_gold") not in (None, ""):
        flag = formats.parse_bool(raw["exclude_gold"])
        if flag is None:
            errors["exclude_gold"] = f"must be true or false, got {raw['exclude_gold']!r}"
        else:
            values["exclude_gold"] = flag
    if raw.get("min_agreement") not in (None, ""):
        value = raw["min_agreement"]
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not 0 <= number <= 1:
            errors["min_agreement"] = f"must be a number within 0..1, got {value!r}"
        else:
            values["min_agreement"] = number
    for key, choices in (("split", Split.values), ("source", Source.values)):
        value = raw.get(key)
        if value in (None, ""):
            continue
        if value not in choices:
            errors[key] = f"must be one of {', '.join(choices)}, got {value!r}"
        else:
            values[key] = value
    if errors:
        message = "invalid export filters: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        raise ValidationFailed(message, details=errors)
    return ExportFilters(**values)


@dataclass(frozen=True)
class ExportSpec:
    """A checked export: what to read (project, filters) and how to write it (format, options)."""

    project: Project
    format: str
    kind: str  # formats.COMPARISON or formats.DEMONSTRATION
    options: dict[str, Any]
    filters: ExportFilters = field(default_factory=ExportFilters)

    @property
    def format_spec(self) -> formats.FormatSpec:
        return formats.FORMATS[self.format]

    @property
    def filename(self) -> str:
        return f"{self.project.slug}-{self.format}.{self.format_spec.extension}"


def _kind(project: Project) -> str:
    return formats.DEMONSTRATION if project.task_kind == TaskKind.DEMONSTRATION else formats.COMPARISON


def export_prepare(
    *,
    project: Project,
    format: str,
    options: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any] | ExportFilters | None = None,
) -> ExportSpec:
    """Check format, options and filters against the project; raise ValidationFailed naming what is wrong."""
    kind = _kind(project)
    try:
        parsed_options = formats.options_parse(format, options, kind=kind)
    except formats.FormatError as exc:
        raise ValidationFailed(f"invalid export: {exc}", details=exc.errors) from None
    parsed_filters = export_filters_parse(raw=filters)
    if kind == formats.DEMONSTRATION and parsed_filters.min_agreement is not None:
        raise ValidationFailed(
            "min_agreement: demonstrations have no agreement score",
            details={"min_agreement": "not available for demonstration projects"},
        )
    if parsed_options.get("include_margin"):
        label_options = parse_label_options(project.label_options, task_kind=project.task_kind)
        if not label_options.has_strength:
            raise ValidationFailed(
                "include_margin: this project has no strength scale to take a margin from",
                details={"include_margin": "the project has no strength scale"},
            )
    if parsed_filters.annotators:
        known = set(
            get_user_model().objects.filter(username__in=parsed_filters.annotators).values_list("username", flat=True)
        )
        missing = [name for name in parsed_filters.annotators if name not in known]
        if missing:
            raise ValidationFailed(
                f"annotators: no user named {', '.join(repr(n) for n in missing)}",
                details={"annotators": f"unknown usernames {missing}"},
            )
    return ExportSpec(project=project, format=format, kind=kind, options=parsed_options, filters=parsed_filters)


# --- reading records ----------------------------------------------------------------------------


def _filtered(qs: QuerySet[Any], filters: ExportFilters) -> QuerySet[Any]:
    lower, upper = filters.bounds()
    if lower is not None:
        qs = qs.filter(created_at__gte=lower)
    if upper is not None:
        qs = qs.filter(created_at__lt=upper)
    if filters.annotators:
        qs = qs.filter(annotator__username__in=filters.annotators)
    if filters.exclude_gold:
        qs = qs.filter(task__is_gold=False)
    if filters.split is not None:
        qs = qs.filter(task__prompt__split=filters.split)
    if filters.source is not None:
        qs = qs.filter(source=filters.source)
    return qs


def _messages(raw: Any) -> list[dict[str, str]]:
    return [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in raw or []]


_COMMON_VALUES = (
    "id", "task_id", "source", "flags", "time_spent_ms", "created_at", "annotator__username", "task__is_gold",
    "task__prompt__messages", "task__prompt__external_id", "task__prompt__split",
)  # fmt: skip


def _common(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": row["task_id"],
        "external_id": row["task__prompt__external_id"],
        "split": row["task__prompt__split"],
        "is_gold": row["task__is_gold"],
        "messages": _messages(row["task__prompt__messages"]),
        "flags": row["flags"],
        "time_spent_ms": row["time_spent_ms"],
        "annotator": row["annotator__username"],
        "source": row["source"],
        "created_at": row["created_at"].isoformat(),
    }


def _chunks(qs: QuerySet[Any], chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    """Keyset pages of ``qs`` (a values() query) by id: one query per page, nothing held between pages."""
    last = 0
    while True:
        page = list(qs.filter(id__gt=last).order_by("id")[:chunk_size])
        if not page:
            return
        yield page
        if len(page) < chunk_size:
            return
        last = page[-1]["id"]


def _agreements(task_ids: set[int]) -> dict[int, float | None]:
    rankings: dict[int, list[Any]] = defaultdict(list)
    live = Judgment.objects.filter(task_id__in=task_ids, is_live=True, action=JudgmentAction.LABEL)
    for task_id, ranking in live.values_list("task_id", "ranking"):
        rankings[task_id].append(ranking)
    return {task_id: task_agreement(rankings.get(task_id, [])) for task_id in task_ids}


def _judgment_records(spec: ExportSpec, chunk_size: int) -> Iterator[dict[str, Any]]:
    qs = _filtered(
        Judgment.objects.filter(project_id=spec.project.pk, is_live=True, action=JudgmentAction.LABEL), spec.filters
    ).values(*_COMMON_VALUES, "ranking", "all_bad", "strength", "criteria", "rationale")
    threshold = spec.filters.min_agreement
    for page in _chunks(qs, chunk_size):
        task_ids = {row["task_id"] for row in page}
        agreement = _agreements(task_ids) if threshold is not None else {}
        completions: dict[int, dict[int, dict[str, str]]] = defaultdict(dict)
        for task_id, position, text, model in Completion.objects.filter(task_id__in=task_ids).values_list(
            "task_id", "position", "text", "model_name"
        ):
            completions[task_id][position] = {"text": text, "model": model}
        for row in page:
            if threshold is not None:
                score = agreement.get(row["task_id"])
                if score is None or score < threshold:
                    continue
            yield {
                "judgment_id": row["id"],
                **_common(row),
                "completions": completions[row["task_id"]],
                "ranking": row["ranking"],
                "all_bad": row["all_bad"],
                "strength": row["strength"],
                "criteria": row["criteria"],
                "rationale": row["rationale"],
            }


def _demonstration_records(spec: ExportSpec, chunk_size: int) -> Iterator[dict[str, Any]]:
    qs = _filtered(Demonstration.objects.filter(project_id=spec.project.pk, is_live=True), spec.filters).values(
        *_COMMON_VALUES, "text"
    )
    for page in _chunks(qs, chunk_size):
        for row in page:
            yield {"demonstration_id": row["id"], **_common(row), "text": row["text"]}


@contextmanager
def _consistent_read(*, no_jit: bool = False) -> Iterator[None]:
    """One REPEATABLE READ snapshot for every chunk, on Postgres, when not already inside a transaction.

    Inside a transaction (a caller's, or a test's) its isolation level cannot change; on SQLite a long read
    transaction would block writers, so there each chunk reads the latest data. ``no_jit`` turns Postgres' JIT
    off for this transaction only (``SET LOCAL``), when it is the export's own: the fast path's one statement
    covers the whole export, so its estimated cost always passes ``jit_above_cost``, and compiling its many
    expressions takes 1-2 s, about what JIT saves on a million-row export and far more than on a smaller one.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if no_jit:
                cursor.execute("SET LOCAL jit = off")
        yield


def export_records(*, spec: ExportSpec, chunk_size: int = CHUNK_SIZE) -> Iterator[dict[str, Any]]:
    """The export's records, lazily (nothing is read until the first one is asked for)."""
    if chunk_size < 1:
        raise ValidationFailed("chunk_size must be at least 1")
    read = _demonstration_records if spec.kind == formats.DEMONSTRATION else _judgment_records
    with _consistent_read():
        yield from read(spec, chunk_size)


def export_rows(*, spec: ExportSpec, chunk_size: int = CHUNK_SIZE) -> Iterator[dict[str, Any]]:
    """The rows the export's format writes (pairs, transcripts, ...), lazily."""
    return formats.format_rows(
        spec.format, export_records(spec=spec, chunk_size=chunk_size), kind=spec.kind, options=spec.options
    )


def export_stream(
    *,
    spec: ExportSpec,
    chunk_size: int = CHUNK_SIZE,
    flush_bytes: int = formats.FLUSH_BYTES,
    counter: formats.RowCounter | None = None,
) -> Iterator[bytes]:
    """The bytes of a streamable export (JSONL, CSV), read and encoded as they are sent.

    ``counter``, when given, counts the rows as they go by. On Postgres the JSONL formats take the fast path
    (``labeling.selectors.exports_sql``: the same bytes, one streamed statement read ``chunk_size`` records at a
    time; while it streams, the connection serves nothing else); the rest goes through the records and
    ``labeling.exports.formats``.
    """
    if exports_sql.fast_path_supported(spec):
        return _fast_stream(spec, chunk_size=chunk_size, flush_bytes=flush_bytes, counter=counter)
    return formats.stream_export(
        spec.format,
        export_records(spec=spec, chunk_size=chunk_size),
        kind=spec.kind,
        options=spec.options,
        counter=counter,
        flush_bytes=flush_bytes,
    )


def _fast_stream(
    spec: ExportSpec, *, chunk_size: int, flush_bytes: int, counter: formats.RowCounter | None
) -> Iterator[bytes]:
    """exports_sql.stream_lines in the export's consistent read; lazy like the Python path.

    Inside a caller's transaction the stream gets a savepoint: a stream closed half-way (a client hanging up)
    cancels its statement, which aborts the transaction up to that savepoint only."""
    if chunk_size < 1:
        raise ValidationFailed("chunk_size must be at least 1")
    read = transaction.atomic() if connection.in_atomic_block else _consistent_read(no_jit=True)
    with read:
        yield from exports_sql.stream_lines(spec, chunk_size=chunk_size, flush_bytes=flush_bytes, counter=counter)


def export_write(*, spec: ExportSpec, out: BinaryIO, chunk_size: int = CHUNK_SIZE) -> int:
    """Write the whole export (any format) to a binary file; return the number of rows written."""
    if exports_sql.fast_path_supported(spec):
        counter = formats.RowCounter()
        for chunk in _fast_stream(spec, chunk_size=chunk_size, flush_bytes=formats.FLUSH_BYTES, counter=counter):
            out.write(chunk)
        return counter.count
    scratch = Path(settings.ARTIFACTS_ROOT) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    return formats.write_export(
        spec.format,
        export_records(spec=spec, chunk_size=chunk_size),
        out,
        kind=spec.kind,
        options=spec.options,
        work_dir=scratch,
    )


# --- snapshots -------------------------------------------------------------------------------------


def snapshot_list(*, project: Project) -> QuerySet[DatasetSnapshot]:
    return DatasetSnapshot.objects.filter(project=project).order_by("-version")


def snapshot_get(*, snapshot_id: int) -> DatasetSnapshot:
    snapshot = DatasetSnapshot.objects.filter(pk=snapshot_id).first()
    if snapshot is None:
        raise NotFound(f"snapshot {snapshot_id} not found")
    return snapshot


def snapshot_file_path(*, snapshot: DatasetSnapshot) -> Path:
    """Where the snapshot's file lies. ``file_path`` is stored relative to ARTIFACTS_ROOT."""
    path = Path(snapshot.file_path)
    return path if path.is_absolute() else Path(settings.ARTIFACTS_ROOT) / path
