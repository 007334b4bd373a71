"""Dataset snapshots: immutable, versioned exports that training runs cite by id and check by sha256.

A snapshot's file is written to a temporary name next to its final place, measured (rows, bytes, sha256), and
only then registered: under a lock on the project row the next version is chosen, the row is created and the
file is hard-linked to ``ARTIFACTS_ROOT/snapshots/<project_id>/v<version>.<ext>``. A link never replaces an
existing file, so a snapshot file is never overwritten; it is also made read-only. The long export itself runs
outside the lock (imports and other snapshots of the project go on meanwhile).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max

from arbiter.errors import Conflict, ValidationFailed
from labeling.models import DatasetSnapshot, Project
from labeling.selectors.exports import ExportFilters, ExportSpec, export_prepare, export_write

SNAPSHOTS_DIR = "snapshots"
MAX_NAME = 200
_VERSION_FILE = re.compile(r"^v(\d+)\.")


def _folder(project_id: int) -> Path:
    return Path(settings.ARTIFACTS_ROOT) / SNAPSHOTS_DIR / str(project_id)


def _highest_version_on_disk(folder: Path) -> int:
    """Files left by a registration whose transaction failed after the link still hold their version."""
    versions = [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_FILE.match(p.name))]
    return max(versions, default=0)


def _digest(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
            size += len(block)
    return sha.hexdigest(), size


@transaction.atomic
def _snapshot_register(
    *, spec: ExportSpec, created_by: User | None, name: str, tmp: Path, rows: int, sha256: str, size: int
) -> DatasetSnapshot:
    project = spec.project
    Project.objects.select_for_update().filter(pk=project.pk).first()  # one registration per project at a time
    folder = tmp.parent
    in_db = DatasetSnapshot.objects.filter(project_id=project.pk).aggregate(v=Max("version"))["v"] or 0
    version = max(in_db, _highest_version_on_disk(folder)) + 1
    final = folder / f"v{version}.{spec.format_spec.extension}"
    snapshot = DatasetSnapshot.objects.create(
        project_id=project.pk,
        version=version,
        name=name,
        format=spec.format,
        options=spec.options,
        filters=spec.filters.to_json(),
        row_count=rows,
        sha256=sha256,
        size_bytes=size,
        file_path=final.relative_to(Path(settings.ARTIFACTS_ROOT)).as_posix(),
        created_by=created_by if created_by is not None and created_by.pk else None,
    )
    try:
        os.link(tmp, final)  # atomic, and fails rather than replace an existing file
    except FileExistsError:
        raise Conflict(f"snapshot file {final.name} already exists; it is never overwritten") from None
    return snapshot


def snapshot_create(
    *,
    project: Project,
    created_by: User | None,
    format: str,
    filters: Mapping[str, Any] | ExportFilters | None = None,
    options: Mapping[str, Any] | None = None,
    name: str = "",
) -> DatasetSnapshot:
    """Export the project's data to a new immutable snapshot (the next version) and record it.

    Format, options and filters are those of an export (``labeling.selectors.exports.export_prepare``); bad ones
    raise ValidationFailed before anything is written.
    """
    if not isinstance(name, str):
        raise ValidationFailed("name must be a string", details={"name": "must be a string"})
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ValidationFailed(f"name is longer than {MAX_NAME} characters", details={"name": "too long"})
    spec = export_prepare(project=project, format=format, options=options, filters=filters)
    folder = _folder(project.pk)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex}.{spec.format_spec.extension}"
    try:
        with tmp.open("wb") as out:
            rows = export_write(spec=spec, out=out)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o444)
        sha256, size = _digest(tmp)
        return _snapshot_register(
            spec=spec, created_by=created_by, name=name, tmp=tmp, rows=rows, sha256=sha256, size=size
        )
    finally:
        tmp.unlink(missing_ok=True)
