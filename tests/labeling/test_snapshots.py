"""Dataset snapshots: versioned, checksummed, immutable files; consistent reads on Postgres."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
import threading
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
from django.conf import settings
from django.db import connection

from arbiter.errors import ValidationFailed
from labeling.models import DatasetSnapshot, Judgment
from labeling.selectors.exports import export_prepare, export_records, snapshot_file_path
from labeling.services.judgments import judgment_submit
from labeling.services.snapshots import snapshot_create
from tests.labeling.test_export_formats import build_demonstration_project, build_preference_project, read_jsonl


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _folder(project) -> Path:  # type: ignore[no-untyped-def]
    return Path(settings.ARTIFACTS_ROOT) / "snapshots" / str(project.pk)


@pytest.mark.django_db
def test_a_snapshot_is_a_checksummed_read_only_file_with_the_next_version():
    project, users = build_preference_project()
    first = snapshot_create(
        project=project, created_by=users["boss"], format="trl", filters={"annotators": "bob"},
        options={"include_margin": "true"}, name="  bob only  ",
    )  # fmt: skip
    path = snapshot_file_path(snapshot=first)
    assert first.file_path == f"snapshots/{project.pk}/v1.jsonl"
    assert path == _folder(project) / "v1.jsonl"
    assert first.version == 1 and first.name == "bob only" and first.created_by == users["boss"]
    assert first.row_count == len(read_jsonl(path)) == 3
    assert first.sha256 == _sha(path) and first.size_bytes == path.stat().st_size
    assert first.options == {"style": "standard", "ties": "drop", "include_margin": True}
    assert first.filters == {"annotators": ["bob"]}
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)

    second = snapshot_create(project=project, created_by=None, format="judgments", filters={}, options={}, name="")
    assert second.version == 2 and second.created_by is None
    assert snapshot_file_path(snapshot=second).name == "v2.jsonl"
    assert _sha(path) == first.sha256  # the first file is untouched
    assert sorted(p.name for p in _folder(project).iterdir()) == ["v1.jsonl", "v2.jsonl"]  # no temp files left


@pytest.mark.django_db
def test_versions_are_per_project_and_never_reuse_a_file_on_disk():
    project, _ = build_preference_project()
    other, _ = build_demonstration_project()
    assert snapshot_create(project=other, created_by=None, format="openai-sft").version == 1
    snapshot_create(project=project, created_by=None, format="trl")
    # A file left by a registration whose transaction failed after the link: its version is taken.
    orphan = _folder(project) / "v2.jsonl"
    orphan.write_bytes(b"orphan\n")
    third = snapshot_create(project=project, created_by=None, format="trl")
    assert third.version == 3
    assert orphan.read_bytes() == b"orphan\n"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"format": "excel"}, "unknown format 'excel'"),
        ({"format": "trl", "options": {"ties": "never"}}, "ties: must be one of drop, both, keep"),
        ({"format": "trl", "filters": {"min_agreement": -1}}, "min_agreement: must be a number within 0..1"),
        ({"format": "trl", "name": "x" * 201}, "name is longer than 200 characters"),
    ],
)
def test_invalid_snapshots_write_nothing(kwargs, says):
    project, _ = build_preference_project()
    with pytest.raises(ValidationFailed, match=re.escape(says)):
        snapshot_create(project=project, created_by=None, **kwargs)
    assert not DatasetSnapshot.objects.exists()
    assert not _folder(project).exists() or not any(_folder(project).iterdir())


@pytest.mark.django_db
def test_binary_snapshots_parquet_and_hf_dataset(tmp_path):
    import datasets
    import pyarrow.parquet as pq

    project, _ = build_preference_project()
    parquet = snapshot_create(project=project, created_by=None, format="parquet", filters={"exclude_gold": True})
    assert parquet.file_path.endswith("/v1.parquet")
    assert pq.read_table(snapshot_file_path(snapshot=parquet)).num_rows == parquet.row_count == 5
    hf = snapshot_create(project=project, created_by=None, format="hf-dataset", options={"style": "conversational"})
    path = snapshot_file_path(snapshot=hf)
    assert path.name == "v2.tar" and hf.sha256 == _sha(path)
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path, filter="data")
    dataset = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert dataset.num_rows == hf.row_count == 7
    assert not list((Path(settings.ARTIFACTS_ROOT) / "tmp").iterdir())  # the scratch folder was cleaned up


# --- Postgres: concurrency and consistency (real transactions, other connections) -----------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_snapshots_get_distinct_versions(on_postgres):
    project, _ = build_preference_project()
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            results.append(snapshot_create(project=project, created_by=None, format="trl").version)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [1, 2, 3, 4]
    assert sorted(p.name for p in _folder(project).iterdir()) == [f"v{v}.jsonl" for v in (1, 2, 3, 4)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_export_reads_one_snapshot_even_when_a_verdict_is_corrected_mid_way(on_postgres):
    project, users = build_preference_project()
    spec = export_prepare(project=project, format="judgments")
    assert not connection.in_atomic_block  # so the export opens its own REPEATABLE READ transaction
    records = export_records(spec=spec, chunk_size=1)
    seen = []
    for record in records:
        seen.append(record)
        if record["annotator"] == "ann":
            break
    corrected = seen[-1]

    def correct() -> None:
        try:
            judgment_submit(
                user=users["ann"], project_id=project.pk, task_id=corrected["task_id"], idempotency_key="mid-export",
                ranking=corrected["ranking"][::-1], strength=1,
            )  # fmt: skip
        finally:
            connection.close()

    thread = threading.Thread(target=correct)
    thread.start()
    thread.join()
    seen.extend(records)
    assert not connection.in_atomic_block  # the read transaction ended with the export
    assert Judgment.objects.filter(idempotency_key="mid-export", is_live=True).count() == 1  # it was committed
    keys = [(r["annotator"], r["task_id"]) for r in seen if r["annotator"]]
    assert len(keys) == len(set(keys)) == 7  # the new verdict was not read after the old one
    assert len(seen) == 8
