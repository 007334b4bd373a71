"""Export and snapshot endpoints, and the ``export``/``snapshot`` management commands."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.http import FileResponse, StreamingHttpResponse
from rest_framework.test import APIClient

from labeling.models import DatasetSnapshot
from tests.factories import make_user, token_for
from tests.labeling.test_export_formats import TRICKY, build_demonstration_project, build_preference_project

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def body(response) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(response.streaming_content)


@pytest.fixture
def prefs():  # type: ignore[no-untyped-def]
    return build_preference_project()


def test_export_streams_jsonl_as_an_attachment(prefs):
    project, users = prefs
    response = client_for(users["boss"]).get(f"/api/v1/projects/{project.pk}/export?format=trl&include_margin=true")
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="prefs-trl.jsonl"'
    rows = [json.loads(line) for line in body(response).decode().splitlines()]
    assert len(rows) == 7 and set(rows[0]) == {"prompt", "chosen", "rejected", "margin"}
    assert TRICKY in {r["chosen"] for r in rows}


def test_export_body_is_not_read_before_it_is_sent(prefs, django_assert_num_queries):
    project, users = prefs
    client = client_for(users["boss"])
    client.get(f"/api/v1/projects/{project.pk}/export?format=trl")  # warm up (content types, token)
    with django_assert_num_queries(2):  # the token and the membership: no export query before streaming
        response = client.get(f"/api/v1/projects/{project.pk}/export?format=trl")
    assert isinstance(response, StreamingHttpResponse)
    # then, as it is sent: one page of judgments and its completions; on Postgres the fast path's one streamed
    # statement, in a savepoint of the test's transaction
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 2):
        content = body(response)
    assert content.count(b"\n") == 7


def test_filters_apply_through_the_query_string(prefs):
    project, users = prefs
    client = client_for(users["boss"])
    url = f"/api/v1/projects/{project.pk}/export?format=judgments"
    only_bob = body(client.get(url + "&annotators=bob&exclude_gold=1"))
    assert {json.loads(line)["annotator"] for line in only_bob.splitlines()} == {"bob"}
    assert len(only_bob.splitlines()) == 2
    two = body(client.get(url + "&annotators=bob&annotators=ann&split=eval"))
    assert [json.loads(line)["external_id"] for line in two.splitlines()] == ["t2"]
    agreed = body(client.get(url + "&min_agreement=0.75"))
    assert {json.loads(line)["external_id"] for line in agreed.splitlines()} == {"t0", "g0"}


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("", 400, "format is required; choose one of trl, hh-rlhf"),
        ("format=xml", 400, "unknown format 'xml'; choose one of trl, hh-rlhf, openai-preference, openai-sft"),
        ("format=trl&colour=red", 400, "unknown query parameter(s) colour"),
        ("format=trl&ties=maybe", 400, "ties: must be one of drop, both, keep"),
        ("format=trl&min_agreement=2", 400, "min_agreement: must be a number within 0..1"),
        ("format=trl&date_from=last-week", 400, "date_from: must be an ISO date"),
        ("format=trl&split=train&split=eval", 400, "split given more than once"),
        ("format=trl&annotators=ghost", 400, "no user named 'ghost'"),
        ("format=openai-sft", 400, "openai-sft does not fit comparison data"),
        ("format=hh-rlhf&style=conversational", 400, "style: not an option of hh-rlhf"),
    ],
)
def test_bad_queries_get_400_naming_the_problem(prefs, query, status, says):
    project, users = prefs
    response = client_for(users["boss"]).get(f"/api/v1/projects/{project.pk}/export?{query}")
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert says in response.json()["message"]


def test_only_managers_export(prefs):
    project, users = prefs
    url = f"/api/v1/projects/{project.pk}/export?format=trl"
    assert client_for(users["vic"]).get(url).status_code == 403  # viewer
    assert client_for(users["ann"]).get(url).status_code == 403  # annotator
    assert client_for(make_user("outsider")).get(url).status_code == 404  # must not learn the project exists
    assert APIClient().get(url).status_code == 401
    staff = make_user("root", is_staff=True)
    assert client_for(staff).get(url).status_code == 200


def test_parquet_comes_from_a_temporary_file(prefs):
    import pyarrow.parquet as pq

    project, users = prefs
    response = client_for(users["boss"]).get(
        f"/api/v1/projects/{project.pk}/export?format=parquet&style=conversational"
    )
    assert response.status_code == 200 and isinstance(response, FileResponse)
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"] == 'attachment; filename="prefs-parquet.parquet"'
    table = pq.read_table(io.BytesIO(body(response)))
    assert table.num_rows == 7 and table.schema.field("prompt").type.value_type.num_fields == 2


def test_hf_dataset_comes_as_a_tar_that_load_from_disk_reads(prefs, tmp_path):
    import datasets

    project, users = prefs
    response = client_for(users["boss"]).get(f"/api/v1/projects/{project.pk}/export?format=hf-dataset")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-tar"
    assert response["Content-Disposition"] == 'attachment; filename="prefs-hf-dataset.tar"'
    with tarfile.open(fileobj=io.BytesIO(body(response))) as tar:
        tar.extractall(tmp_path, filter="data")
    dataset = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert dataset.num_rows == 7 and TRICKY in dataset["chosen"]


def test_csv_of_demonstrations_over_http():
    import pandas as pd

    project, texts = build_demonstration_project()
    from labeling.models import Membership

    boss = Membership.objects.get(project=project, role="manager").user
    response = client_for(boss).get(f"/api/v1/projects/{project.pk}/export?format=csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    frame = pd.read_csv(io.BytesIO(body(response)))
    assert set(frame["completion"]) == set(texts.values())


# --- snapshots ----------------------------------------------------------------------------------------


def test_snapshot_lifecycle_over_the_api(prefs):
    project, users = prefs
    boss = client_for(users["boss"])
    url = f"/api/v1/projects/{project.pk}/snapshots"
    created = boss.post(
        url,
        {"format": "trl", "name": "first", "options": {"style": "conversational"}, "filters": {"exclude_gold": True}},
        format="json",
    )
    assert created.status_code == 201, created.json()
    snap = created.json()
    assert snap["version"] == 1 and snap["row_count"] == 5 and snap["name"] == "first"
    assert snap["options"] == {"style": "conversational", "ties": "drop", "include_margin": False}
    assert snap["filters"] == {"exclude_gold": True}
    second = boss.post(url, {"format": "hh-rlhf"}, format="json").json()
    assert second["version"] == 2

    viewer = client_for(users["vic"])
    listed = viewer.get(url)
    assert listed.status_code == 200 and [s["version"] for s in listed.json()] == [2, 1]
    assert viewer.get(f"/api/v1/snapshots/{snap['id']}").json()["sha256"] == snap["sha256"]
    assert viewer.get(f"/api/v1/snapshots/{snap['id']}/download").status_code == 403
    assert viewer.post(url, {"format": "trl"}, format="json").status_code == 403
    assert client_for(users["ann"]).get(url).status_code == 403

    download = boss.get(f"/api/v1/snapshots/{snap['id']}/download")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="prefs-v1.jsonl"'
    data = body(download)
    assert hashlib.sha256(data).hexdigest() == snap["sha256"] == download["X-Checksum-SHA256"]
    assert len(data) == snap["size_bytes"] and data.count(b"\n") == 5


def test_snapshot_errors(prefs):
    project, users = prefs
    boss = client_for(users["boss"])
    url = f"/api/v1/projects/{project.pk}/snapshots"
    bad = boss.post(url, {"format": "yaml"}, format="json")
    assert bad.status_code == 400 and "choose one of trl" in bad.json()["message"]
    bad = boss.post(url, {"format": "trl", "filters": {"split": "test"}}, format="json")
    assert bad.status_code == 400 and "split: must be one of train, eval" in bad.json()["message"]
    bad = boss.post(url, {"format": "trl", "version": 9}, format="json")
    assert bad.status_code == 400 and "unknown field(s) version" in bad.json()["message"]
    assert not DatasetSnapshot.objects.exists()
    assert boss.get("/api/v1/snapshots/999999").status_code == 404
    snap = boss.post(url, {"format": "trl"}, format="json").json()
    assert client_for(make_user("outsider")).get(f"/api/v1/snapshots/{snap['id']}").json()["message"] == (
        f"snapshot {snap['id']} not found"
    )


# --- management commands -------------------------------------------------------------------------------


def test_export_command_writes_a_file(prefs, tmp_path):
    project, _ = prefs
    (tmp_path / "exports").mkdir()
    out = tmp_path / "exports" / "out.jsonl"
    err = io.StringIO()
    call_command("export", "--project", project.slug, "--format", "trl", "--out", str(out), "--ties", "keep",
                 "--annotator", "ann", stderr=err)  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and sum(r["tie"] for r in rows) == 1
    assert "exported 4 rows" in err.getvalue()
    assert [p.name for p in out.parent.iterdir()] == ["out.jsonl"]  # no temporary file left behind


def test_export_command_streams_to_stdout(prefs):
    project, _ = prefs
    out = io.StringIO()
    call_command("export", "--project", str(project.pk), "--format", "openai-preference", "--exclude-gold",
                 "--source", "human", stdout=out, stderr=io.StringIO())  # fmt: skip
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(rows) == 4 and all("preferred_output" in r for r in rows)


def test_export_command_errors(prefs, tmp_path):
    project, _ = prefs
    with pytest.raises(CommandError, match="no project with id or slug 'nope'"):
        call_command("export", "--project", "nope", "--format", "trl")
    with pytest.raises(CommandError, match=r"min_agreement: must be a number within 0\.\.1"):
        call_command("export", "--project", project.slug, "--format", "trl", "--min-agreement", "7")
    with pytest.raises(CommandError, match="binary"):
        call_command("export", "--project", project.slug, "--format", "parquet", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no such folder"):
        call_command("export", "--project", project.slug, "--format", "trl", "--out", str(tmp_path / "x" / "y"))


def test_snapshot_command(prefs):
    project, _ = prefs
    out = io.StringIO()
    call_command("snapshot", "--project", project.slug, "--format", "hh-rlhf", "--name", "cli", "--user", "boss",
                 "--split", "train", stdout=out)  # fmt: skip
    snapshot = DatasetSnapshot.objects.get()
    assert snapshot.name == "cli" and snapshot.created_by.username == "boss" and snapshot.filters == {"split": "train"}
    assert f"v1 (hh-rlhf), {snapshot.row_count} rows" in out.getvalue()
    listing = io.StringIO()
    call_command("snapshot", "--project", project.slug, "--list", stdout=listing)
    assert listing.getvalue().startswith(f"{snapshot.pk}\tv1\thh-rlhf")
    with pytest.raises(CommandError, match="--format is required"):
        call_command("snapshot", "--project", project.slug)


def test_export_command_writes_binary_formats_to_a_real_stdout(prefs, capsysbinary):
    import pyarrow.parquet as pq

    project, _ = prefs
    call_command("export", "--project", project.slug, "--format", "parquet", "--exclude-gold")
    captured = capsysbinary.readouterr()
    table = pq.read_table(io.BytesIO(captured.out))
    assert table.num_rows == 5 and not any(table.column("is_gold").to_pylist())  # 7 pairs, 2 of them on g0
    assert b"exported 5 rows (parquet)" in captured.err
