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

from labeling.rankings import RankingError, validate_ranking

ROLES = ("system", "user", "assistant")
KNOWN_KEYS = {"prompt", "completions", "chosen", "rejected", "id", "external_id", "metadata", "split", "gold"}
MAX_TEXT = 200_000
MAX_ERRORS = 1000


@dataclass
class CompletionRecord:
    text: str
    model: str = ""


@dataclass
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
        if not raw.strip():
            raise ValueError("prompt is empty")
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise ValueError("prompt must be a string or a non-empty list of {role, content} messages")
    out = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict) or set(msg) - {"role", "content", "name"} or "role" not in msg:
            raise ValueError(f"prompt[{i}] must be an object with role and content")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise ValueError(f"prompt[{i}].role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"prompt[{i}].content must be a non-empty string")
        if len(content) > MAX_TEXT:
            raise ValueError(f"prompt[{i}].content is longer than {MAX_TEXT} characters")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise ValueError("the prompt's last message must be from the user")
    return out


def _completion(raw: Any, where: str) -> CompletionRecord:
    text: Any
    model: Any
    if isinstance(raw, str):
        text, model = raw, ""
    elif isinstance(raw, dict):
        extra = set(raw) - {"text", "model", "content"}
        if extra:
            raise ValueError(f"{where} has unknown keys {sorted(extra)}")
        text = raw.get("text", raw.get("content"))
        model = raw.get("model") or ""
        if not isinstance(model, str):
            raise ValueError(f"{where}.model must be a string")
    else:
        raise ValueError(f"{where} must be a string or an object with text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where} text is empty")
    if len(text) > MAX_TEXT:
        raise ValueError(f"{where} is longer than {MAX_TEXT} characters")
    return CompletionRecord(text=text, model=model[:200])


def content_hash(messages: list[dict[str, str]], completions: list[CompletionRecord]) -> str:
    """sha256 over the prompt messages and completion texts, with separators no text can contain
    unescaped (ASCII unit/record separators are escaped first). Same content, same hash."""
    h = hashlib.sha256()
    for m in messages:
        h.update(b"\x1dm")
        h.update(m["role"].encode())
        h.update(b"\x1f")
        h.update(_escape(m["content"]))
    for c in completions:
        h.update(b"\x1dc")
        h.update(_escape(c.text))
    return h.hexdigest()


def _escape(text: str) -> bytes:
    return text.encode("utf-8").replace(b"\\", b"\\\\").replace(b"\x1d", b"\\x1d").replace(b"\x1f", b"\\x1f")


def parse_record(obj: Any, *, line: int, task_kind: str, max_completions: int) -> TaskRecord:
    """Validate one decoded line; raise ValueError with a message naming the bad field."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    unknown = set(obj) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    if "prompt" not in obj:
        raise ValueError("missing 'prompt'")
    messages = _messages(obj["prompt"])
    has_pair = "chosen" in obj or "rejected" in obj
    preference = None
    if has_pair:
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
        completions = [_completion(c, f"completions[{i}]") for i, c in enumerate(raw)]
    if task_kind == "demonstration":
        if completions:
            raise ValueError("a demonstration project takes prompts only (no completions)")
    elif task_kind == "pairwise":
        if len(completions) != 2:
            raise ValueError(f"a pairwise task needs exactly 2 completions, got {len(completions)}")
    else:
        if not 2 <= len(completions) <= max_completions:
            raise ValueError(f"a ranking task needs 2..{max_completions} completions, got {len(completions)}")
    if len({c.text for c in completions}) != len(completions):
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
            gold = validate_ranking(g["ranking"], n_completions=len(completions))
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


def iter_lines(lines: Iterable[bytes | str]) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, f"\0bad utf-8 at byte {exc.start}"
                continue
        else:
            text = raw
        if text.strip():
            yield number, text


def parse_lines(lines: Iterable[bytes | str], *, task_kind: str, max_completions: int) -> tuple[list[TaskRecord], int]:
    """Parse every line; return (records, duplicates-within-file) or raise ImportFileError with all bad lines.

    Identical tasks (same prompt and completions) inside the file are kept once.
    """
    records: list[TaskRecord] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    duplicates = 0
    truncated = False
    for number, text in iter_lines(lines):
        if text.startswith("\0"):
            errors.append(LineError(number, f"not valid UTF-8 ({text[1:]})"))
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.append(LineError(number, f"invalid JSON: {exc.msg} at column {exc.colno}"))
        else:
            try:
                record = parse_record(obj, line=number, task_kind=task_kind, max_completions=max_completions)
            except ValueError as exc:
                errors.append(LineError(number, str(exc)))
            else:
                if record.content_hash in seen:
                    duplicates += 1
                else:
                    seen.add(record.content_hash)
                    if not errors:
                        records.append(record)
        if len(errors) >= MAX_ERRORS:
            truncated = True
            break
    if errors:
        raise ImportFileError(errors, truncated=truncated)
    if not records and not duplicates:
        raise ImportFileError([LineError(0, "the file has no tasks")])
    return records, duplicates
