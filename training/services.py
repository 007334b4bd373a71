"""Registering checkpoints: local model directories that completions (and, next, runs) cite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from arbiter.errors import Conflict, NotFound, ValidationFailed
from training.models import Checkpoint, CheckpointKind


def _model_files(path: Path) -> dict[str, Any]:
    """What the directory holds: a full model (config.json + weights) or a PEFT adapter."""
    if (path / "adapter_config.json").is_file():
        return {"format": "peft-adapter", "config": json.loads((path / "adapter_config.json").read_text())}
    if not (path / "config.json").is_file():
        raise ValidationFailed(f"{path} has no config.json or adapter_config.json: not a model directory")
    weights = sorted(p.name for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not weights:
        raise ValidationFailed(f"{path} has a config.json but no *.safetensors or *.bin weights")
    config = json.loads((path / "config.json").read_text())
    return {"format": "transformers", "architectures": config.get("architectures", []), "weights": weights}


@transaction.atomic
def checkpoint_register(
    *, name: str, kind: str, path: str, base_name: str | None = None, created_by: User | None = None
) -> Checkpoint:
    """Register a local model directory under a unique name. Nothing is downloaded: the path must exist."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("a checkpoint needs a name")
    if kind not in CheckpointKind.values:
        raise ValidationFailed(f"kind must be one of {CheckpointKind.values}")
    directory = Path(path).expanduser().resolve()
    if not directory.is_dir():
        raise ValidationFailed(f"{directory} is not a directory")
    metadata = _model_files(directory)
    base = None
    if base_name:
        base = Checkpoint.objects.filter(name=base_name).first()
        if base is None:
            raise NotFound(f"no checkpoint named {base_name!r} to use as base")
    if Checkpoint.objects.filter(name=name).exists():
        raise Conflict(f"a checkpoint named {name!r} is already registered")
    return Checkpoint.objects.create(
        name=name, kind=kind, path=str(directory), base=base, metadata=metadata, created_by=created_by
    )
