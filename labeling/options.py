"""A project's label options, parsed and validated. Plain Python (no Django)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class OptionsError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Criterion:
    name: str
    label: str
    min: int = 1
    max: int = 5
    description: str = ""


@dataclass(frozen=True)
class LabelOptions:
    allow_tie: bool = True
    allow_both_bad: bool = True
    # Strength of preference: None disables the scale. Pairwise default -3..3 is centred on the tie.
    strength_min: int | None = 1
    strength_max: int | None = 3
    criteria: tuple[Criterion, ...] = field(default_factory=tuple)
    criteria_required: bool = False
    rationale_required: bool = False
    flags: tuple[str, ...] = ("unsafe", "factual_error", "prompt_problem")
    # Completions per task: 2 for pairwise; 2..8 for ranking; 0 for demonstrations.
    completions_per_task: int = 2

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["criteria"] = [asdict(c) for c in self.criteria]
        data["flags"] = list(self.flags)
        return data

    @property
    def has_strength(self) -> bool:
        return self.strength_min is not None and self.strength_max is not None


def _as_int(value: Any, key: str, errors: dict[str, str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors[key] = f"must be an integer, got {value!r}"
        return None
    return value


def parse_label_options(raw: dict[str, Any] | None, *, task_kind: str) -> LabelOptions:
    """Validate ``raw`` (the JSON a manager sent) into LabelOptions; raise OptionsError naming each bad key."""
    raw = dict(raw or {})
    errors: dict[str, str] = {}
    known = {f for f in LabelOptions.__dataclass_fields__}
    for key in raw:
        if key not in known:
            errors[key] = "unknown option"
    defaults = LabelOptions()
    values: dict[str, Any] = {}
    for key in ("allow_tie", "allow_both_bad", "rationale_required", "criteria_required"):
        value = raw.get(key, getattr(defaults, key))
        if not isinstance(value, bool):
            errors[key] = f"must be true or false, got {value!r}"
        values[key] = value
    smin, smax = raw.get("strength_min", defaults.strength_min), raw.get("strength_max", defaults.strength_max)
    if (smin is None) != (smax is None):
        errors["strength_min"] = "strength_min and strength_max are both set or both null"
    elif smin is not None:
        a, b = _as_int(smin, "strength_min", errors), _as_int(smax, "strength_max", errors)
        if a is not None and b is not None and a >= b:
            errors["strength_max"] = "must be greater than strength_min"
        if a is not None and b is not None and (b - a) > 20:
            errors["strength_max"] = "the strength scale may have at most 21 steps"
    values["strength_min"], values["strength_max"] = smin, smax

    criteria: list[Criterion] = []
    raw_criteria = raw.get("criteria", [])
    if not isinstance(raw_criteria, list):
        errors["criteria"] = "must be a list"
        raw_criteria = []
    seen: set[str] = set()
    for i, item in enumerate(raw_criteria):
        key = f"criteria[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            errors[key] = "must be an object with name, label, min, max"
            continue
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            errors[key] = "name must be lower_snake_case, 1-40 characters"
            continue
        if name in seen:
            errors[key] = f"duplicate criterion {name!r}"
            continue
        seen.add(name)
        cmin = _as_int(item.get("min", 1), f"{key}.min", errors)
        cmax = _as_int(item.get("max", 5), f"{key}.max", errors)
        if cmin is not None and cmax is not None and cmin >= cmax:
            errors[f"{key}.max"] = "must be greater than min"
            continue
        extra = set(item) - {"name", "label", "min", "max", "description"}
        if extra:
            errors[key] = f"unknown keys {sorted(extra)}"
            continue
        criteria.append(
            Criterion(
                name=name,
                label=str(item.get("label") or name.replace("_", " ").capitalize()),
                min=cmin or 1,
                max=cmax or 5,
                description=str(item.get("description", "")),
            )
        )
    values["criteria"] = tuple(criteria)

    flags = raw.get("flags", list(defaults.flags))
    if not isinstance(flags, list) or not all(isinstance(f, str) and _NAME.match(f) for f in flags):
        errors["flags"] = "must be a list of lower_snake_case names"
        flags = []
    values["flags"] = tuple(dict.fromkeys(flags))

    default_k = {"pairwise": 2, "ranking": 4, "demonstration": 0}.get(task_kind, 2)
    k = raw.get("completions_per_task", default_k)
    k_int = _as_int(k, "completions_per_task", errors)
    if k_int is not None:
        if task_kind == "pairwise" and k_int != 2:
            errors["completions_per_task"] = "a pairwise project has exactly 2 completions per task"
        elif task_kind == "ranking" and not 2 <= k_int <= 8:
            errors["completions_per_task"] = "a ranking project has 2 to 8 completions per task"
        elif task_kind == "demonstration" and k_int != 0:
            errors["completions_per_task"] = "a demonstration project has no completions"
    values["completions_per_task"] = k_int if k_int is not None else default_k
    if errors:
        raise OptionsError(errors)
    return LabelOptions(**values)
