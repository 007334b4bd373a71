"""Parsing and validating JSONL task files. Plain Python (no Django).

Accepted line shapes (one JSON object per line):

* ``{"prompt": str | [messages], "completions": [str | {"text", "model"}, ...]}``
* ``{"prompt": ..., "chosen": str | {"text", "model"}, "rejected": ...}`` (a pre-labelled pair:
  stored as two completions plus an imported judgment)
* ``{"prompt": ...}`` alone, for demonstration projects.

Optional keys on every line: ``id`` (external id), ``metadata`` (object), ``split``
("train"/"eval"), ``gold`` (``{"ranking": [[...], ...], "all_bad": bool}``; marks a gold task).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from labeling.rankings import RankingError, validate_ranking

ROLES = ("system", "user", "assistant")
KNOWN_KEYS = {"prompt", "completions", "chosen", "rejected", "id", "external_id", "metadata", "split", "gold"}
MAX_TEXT = 200_000
MAX_ERRORS = 1000
BATCH_SIZE = 5000

_KNOWN_KEYS = frozenset(KNOWN_KEYS)
_MESSAGE_KEYS = frozenset(("role", "content", "name"))
_COMPLETION_KEYS = frozenset(("text", "model", "content"))


@dataclass(slots=True)
class CompletionRecord:
    text: str
    model: str = ""


@dataclass(slots=True)
class TaskRecord:
    line: int
    messages: list[dict[str, str]]
    completions: list[CompletionRecord]
    external_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    split: str = "train"
    # For a pre-labelled pair: the imported ranking over positions (chosen first).
    preference: list[list[int]] | None = None
    gold: list[list[int]] | None = None
    gold_all_bad: bool = False
    content_hash: str = ""


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


class ImportFileError(ValueError):
    """The file has bad lines; nothing was imported. ``errors`` lists each with its line number."""

    def __init__(self, errors: list[LineError], *, truncated: bool = False) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"line {first.line}: {first.message}{more}")
        self.errors = errors
        self.truncated = truncated


def _messages(raw: Any) -> list[dict[str, str]]:
    if isinstance(raw, str):
        if not raw or raw.isspace():  # = not raw.strip(), without copying the text
            raise ValueError("prompt is empty")
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise ValueError("prompt must be a string or a non-empty list of {role, content} messages")
    out = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict) or "role" not in msg or not msg.keys() <= _MESSAGE_KEYS:
            raise ValueError(f"prompt[{i}] must be an object with role and content")
        role, content = msg["role"], msg.get("content")
        if role not in ROLES:
            raise ValueError(f"prompt[{i}].role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str) or not content or content.isspace():
            raise ValueError(f"prompt[{i}].content must be a non-empty string")
        if len(content) > MAX_TEXT:
            raise ValueError(f"prompt[{i}].content is longer than {MAX_TEXT} characters")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise ValueError("the prompt's last message must be from the user")
    return out


def _completion(raw: Any, where: str | int) -> CompletionRecord:
    """``where`` names the completion in an error message: "chosen", "rejected" or i for completions[i]."""
    text: Any
    model: Any
    if isinstance(raw, str):
        text, model = raw, ""
    elif isinstance(raw, dict):
        if not raw.keys() <= _COMPLETION_KEYS:
            raise ValueError(f"{_where(where)} has unknown keys {sorted(set(raw) - _COMPLETION_KEYS)}")
        text = raw["text"] if "text" in raw else raw.get("content")
        model = raw.get("model") or ""
        if not isinstance(model, str):
            raise ValueError(f"{_where(where)}.model must be a string")
    else:
        raise ValueError(f"{_where(where)} must be a string or an object with text")
    if not isinstance(text, str) or not text or text.isspace():
        raise ValueError(f"{_where(where)} text is empty")
    if len(text) > MAX_TEXT:
        raise ValueError(f"{_where(where)} is longer than {MAX_TEXT} characters")
    return CompletionRecord(text=text, model=model[:200])


def _where(where: str | int) -> str:
    return where if isinstance(where, str) else f"completions[{where}]"


def content_hash(messages: list[dict[str, str]], completions: list[CompletionRecord]) -> str:
    """sha256 over the prompt messages and completion texts, with separators no text can contain
    unescaped (ASCII unit/record separators are escaped first). Same content, same hash."""
    parts: list[bytes] = []
    for m in messages:
        parts += (b"\x1dm", m["role"].encode(), b"\x1f", _escape(m["content"]))
    for c in completions:
        parts += (b"\x1dc", _escape(c.text))
    return hashlib.sha256(b"".join(parts)).hexdigest()


def _escape(text: str) -> bytes:
    return text.encode("utf-8").replace(b"\\", b"\\\\").replace(b"\x1d", b"\\x1d").replace(b"\x1f", b"\\x1f")


def parse_record(obj: Any, *, line: int, task_kind: str, max_completions: int) -> TaskRecord:
    """Validate one decoded line; raise ValueError with a message naming the bad field."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    if not obj.keys() <= _KNOWN_KEYS:
        raise ValueError(f"unknown keys {sorted(set(obj) - _KNOWN_KEYS)}")
    if "prompt" not in obj:
        raise ValueError("missing 'prompt'")
    messages = _messages(obj["prompt"])
    preference = None
    if "chosen" in obj or "rejected" in obj:
        if "completions" in obj:
            raise ValueError("use either 'completions' or 'chosen'/'rejected', not both")
        if "chosen" not in obj or "rejected" not in obj:
            raise ValueError("a pre-labelled pair needs both 'chosen' and 'rejected'")
        chosen = _completion(obj["chosen"], "chosen")
        rejected = _completion(obj["rejected"], "rejected")
        # Store the pair in an order derived from its content, so "chosen" is not always position 0.
        if hashlib.sha256((chosen.text + "\0" + rejected.text).encode()).digest()[0] & 1:
            completions, preference = [rejected, chosen], [[1], [0]]
        else:
            completions, preference = [chosen, rejected], [[0], [1]]
    else:
        raw = obj.get("completions", [])
        if not isinstance(raw, list):
            raise ValueError("'completions' must be a list")
        completions = [_completion(c, i) for i, c in enumerate(raw)]
    n = len(completions)
    if task_kind == "demonstration":
        if completions:
            raise ValueError("a demonstration project takes prompts only (no completions)")
    elif task_kind == "pairwise":
        if n != 2:
            raise ValueError(f"a pairwise task needs exactly 2 completions, got {n}")
    else:
        if not 2 <= n <= max_completions:
            raise ValueError(f"a ranking task needs 2..{max_completions} completions, got {n}")
    if n > 1 and len({c.text for c in completions}) != n:
        raise ValueError("two completions of this task have the same text")
    ext = obj.get("id", obj.get("external_id", ""))
    if isinstance(ext, int) and not isinstance(ext, bool):
        ext = str(ext)
    if not isinstance(ext, str) or len(ext) > 200:
        raise ValueError("'id' must be a string of at most 200 characters")
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    split = obj.get("split", "train")
    if split not in ("train", "eval"):
        raise ValueError(f"'split' must be 'train' or 'eval', got {split!r}")
    gold = None
    gold_all_bad = False
    if "gold" in obj:
        g = obj["gold"]
        if task_kind == "demonstration":
            raise ValueError("demonstration tasks cannot be gold")
        if not isinstance(g, dict) or "ranking" not in g:
            raise ValueError("'gold' must be an object with a 'ranking'")
        try:
            gold = validate_ranking(g["ranking"], n_completions=n)
        except RankingError as exc:
            raise ValueError(f"gold: {exc}") from None
        gold_all_bad = bool(g.get("all_bad", False))
    return TaskRecord(
        line=line,
        messages=messages,
        completions=completions,
        external_id=ext,
        metadata=metadata,
        split=split,
        preference=preference,
        gold=gold,
        gold_all_bad=gold_all_bad,
        content_hash=content_hash(messages, completions),
    )


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


class LineParser:
    """Parses and validates a JSONL file line by line, handing out the good records in batches.

    Every line is checked; the bad ones are collected in ``errors`` (at most ``MAX_ERRORS``) and, at
    the end, raised together as ``ImportFileError``. Once a line is bad no more records are handed
    out, so a caller that writes batches as they come must undo them when the error is raised (one
    transaction). Identical tasks (same prompt and completions) are kept once; ``duplicates`` counts
    the others.

    Lines are decoded with orjson first. Anything orjson rejects or may read differently from the
    standard library (invalid UTF-8, blank lines, NaN, integers beyond 64 bits, which orjson turns
    into floats, lone surrogates, ...), every line that fails validation, and every record whose
    metadata holds a float is decoded again with ``json`` and validated from that, so the records
    and the error messages are exactly those of the standard library.
    """

    def __init__(self, *, task_kind: str, max_completions: int) -> None:
        self.task_kind = task_kind
        self.max_completions = max_completions
        self.errors: list[LineError] = []
        self.duplicates = 0
        self.truncated = False
        self.records = 0  # distinct good records handed out
        self._seen: set[str] = set()

    def _slow(self, number: int, raw: bytes | str) -> TaskRecord | None:
        """The standard-library path: None for a blank line or a bad one (recorded in ``errors``)."""
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.errors.append(LineError(number, f"not valid UTF-8 (bad utf-8 at byte {exc.start})"))
                return None
        else:
            text = raw
        if not text.strip():
            return None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            self.errors.append(LineError(number, f"invalid JSON: {exc.msg} at column {exc.colno}"))
            return None
        try:
            return parse_record(obj, line=number, task_kind=self.task_kind, max_completions=self.max_completions)
        except ValueError as exc:
            self.errors.append(LineError(number, str(exc)))
            return None

    def batches(
        self, lines: Iterable[bytes | str], *, size: int = BATCH_SIZE, first: int | None = None
    ) -> Iterator[list[TaskRecord]]:
        """Yield the good, first-seen records in lists of up to ``size`` (the first list: up to ``first``, so a
        consumer can start on it sooner) while no line is bad; at the end raise ImportFileError if any line
        was bad, or if the file has no tasks."""
        errors = self.errors
        seen = self._seen
        task_kind = self.task_kind
        max_completions = self.max_completions
        loads = orjson.loads
        batch: list[TaskRecord] = []
        limit = size if first is None else first
        for number, raw in enumerate(lines, start=1):
            record: TaskRecord | None = None
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError:
                record = self._slow(number, raw)
            else:
                try:
                    record = parse_record(obj, line=number, task_kind=task_kind, max_completions=max_completions)
                except ValueError:
                    record = self._slow(number, raw)  # the exact message, from the standard library's values
                else:
                    if record.metadata and _has_float(record.metadata):
                        record = self._slow(number, raw)
            if record is not None:
                if record.content_hash in seen:
                    self.duplicates += 1
                else:
                    seen.add(record.content_hash)
                    if not errors:
                        batch.append(record)
                        if len(batch) >= limit:
                            self.records += len(batch)
                            yield batch
                            batch = []
                            limit = size
            if len(errors) >= MAX_ERRORS:
                self.truncated = True
                break
        if errors:
            raise ImportFileError(errors, truncated=self.truncated)
        if batch:
            self.records += len(batch)
            yield batch
        if not self.records and not self.duplicates:
            raise ImportFileError([LineError(0, "the file has no tasks")])


def parse_lines(lines: Iterable[bytes | str], *, task_kind: str, max_completions: int) -> tuple[list[TaskRecord], int]:
    """Parse every line; return (records, duplicates-within-file) or raise ImportFileError with all bad lines.

    Identical tasks (same prompt and completions) inside the file are kept once.
    """
    parser = LineParser(task_kind=task_kind, max_completions=max_completions)
    records: list[TaskRecord] = []
    for batch in parser.batches(lines):
        records += batch
    return records, parser.duplicates
