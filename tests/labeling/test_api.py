"""The REST API: auth, roles, error shape, the annotator loop and its query budget."""

from __future__ import annotations

import io
import json
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from labeling.models import ImportJob, Judgment, Project, Task
from tests.factories import add_member, make_project, make_user, pairwise_lines, seed_tasks, token_for

pytestmark = pytest.mark.django_db


@contextmanager
def at_most_queries(n: int):
    """Count SQL statements, leaving out the SAVEPOINTs that only exist because tests run inside a transaction."""
    with CaptureQueriesContext(connection) as ctx:
        yield
    statements = [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert len(statements) <= n, f"{len(statements)} queries:\n" + "\n".join(s[:160] for s in statements)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


@pytest.fixture
def world():
    manager = make_user("boss")
    project = make_project(manager=manager, overlap=1)
    seed_tasks(project, 20)
    ann = make_user("ann")
    add_member(project, ann)
    return project, manager, ann


def test_token_login():
    make_user("tok")
    bad = APIClient().post("/api/v1/auth/token", {"username": "tok", "password": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "bad_credentials"
    good = APIClient().post("/api/v1/auth/token", {"username": "tok", "password": "pw-123456"}, format="json")
    assert good.status_code == 200 and len(good.json()["token"]) == 40


def test_token_authentication_refuses_unknown_tokens_and_inactive_users(world):
    project, _, ann = world
    url = f"/api/v1/projects/{project.pk}/progress"
    assert client_for(ann).get(url).status_code == 200
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    resp = stranger.get(url)
    assert resp.status_code == 401 and resp.json()["message"] == "Invalid token."
    ann.is_active = False
    ann.save(update_fields=["is_active"])
    resp = client_for(ann).get(url)
    assert resp.status_code == 401 and resp.json()["message"] == "User inactive or deleted."


def test_token_authentication_loads_the_whole_user():
    from arbiter.auth import FastTokenAuthentication

    user = make_user("whole", email="whole@example.org", first_name="Wh", is_staff=True)
    got, token = FastTokenAuthentication().authenticate_credentials(token_for(user))
    assert got == user and token.user is got and token.key == token_for(user)
    for field in type(user)._meta.concrete_fields:
        assert getattr(got, field.attname) == getattr(user, field.attname), field.name
    assert not got._state.adding and got._state.db == "default"


def test_unauthenticated_is_refused(world):
    project, _, _ = world
    resp = APIClient().post(f"/api/v1/projects/{project.pk}/next", {}, format="json")
    assert resp.status_code in (401, 403)
    assert set(resp.json()) == {"message", "code", "details"}


def test_annotator_loop_over_http(world):
    project, _, ann = world
    client = client_for(ann)
    client.post(f"/api/v1/projects/{project.pk}/next", {}, format="json")  # warm caches (content types etc.)
    # Postgres: token, membership, and one statement that does the work (leases.py, judgments.py).
    budget = 3 if connection.vendor == "postgresql" else 5
    with at_most_queries(budget):
        resp = client.post(f"/api/v1/projects/{project.pk}/next", {"count": 1}, format="json")
    task = resp.json()["tasks"][0]
    assert {c["position"] for c in task["completions"]} == {0, 1}
    assert "model" not in json.dumps(task["completions"])  # blind: no model names
    body = {"idempotency_key": "abc", "ranking": [[1], [0]], "strength": 2, "time_spent_ms": 1500}
    url = f"/api/v1/projects/{project.pk}/tasks/{task['task_id']}/judgments"
    with at_most_queries(budget):
        first = client.post(url, body, format="json")
    assert first.status_code == 201, first.json()
    replay = client.post(url, body, format="json")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    assert Judgment.objects.filter(annotator=ann).count() == 1
    # a new lease: the query budget holds when a new task is leased too
    with at_most_queries(budget):
        nxt = client.post(f"/api/v1/projects/{project.pk}/next", {"count": 3, "render": True}, format="json")
    tasks = nxt.json()["tasks"]
    assert len(tasks) == 3 and tasks[0]["task_id"] != task["task_id"]
    assert "<p>" in tasks[0]["completions"][0]["html"] or "<code>" in tasks[0]["completions"][0]["html"]


def test_bad_submission_is_a_400_with_a_message(world):
    project, _, ann = world
    client = client_for(ann)
    task = client.post(f"/api/v1/projects/{project.pk}/next", {}, format="json").json()["tasks"][0]
    url = f"/api/v1/projects/{project.pk}/tasks/{task['task_id']}/judgments"
    resp = client.post(url, {"idempotency_key": "z", "ranking": [[0], [0]], "strength": 1}, format="json")
    assert resp.status_code == 400
    assert "exactly once" in resp.json()["message"]
    missing = client.post(url, {"ranking": [[0], [1]]}, format="json")
    assert missing.status_code == 400 and "idempotency_key" in missing.json()["message"]
    garbage = client.post(url, "not json", content_type="application/json")
    assert garbage.status_code == 400


def test_roles(world):
    project, manager, ann = world
    viewer, stranger = make_user("viewer"), make_user("stranger")
    add_member(project, viewer, role="viewer")
    assert client_for(stranger).get(f"/api/v1/projects/{project.pk}/").status_code == 404
    assert client_for(viewer).post(f"/api/v1/projects/{project.pk}/next", {}, format="json").status_code == 403
    assert client_for(viewer).get(f"/api/v1/projects/{project.pk}/progress").status_code == 200
    assert client_for(ann).patch(f"/api/v1/projects/{project.pk}/", {"overlap": 2}, format="json").status_code == 403
    assert client_for(ann).get(f"/api/v1/projects/{project.pk}/members/").status_code == 403
    upload = io.BytesIO(b"\n".join(line.encode() for line in pairwise_lines(2, start=100)))
    assert client_for(ann).post(f"/api/v1/projects/{project.pk}/imports", {"file": upload}).status_code == 403
    assert [p["id"] for p in client_for(ann).get("/api/v1/projects/").json()] == [project.pk]
    assert client_for(stranger).get("/api/v1/projects/").json() == []
    assert (
        client_for(manager).patch(f"/api/v1/projects/{project.pk}/", {"overlap": 2}, format="json").status_code == 200
    )


def test_manager_creates_project_adds_member_and_imports():
    staff = make_user("staff", is_staff=True)
    client = client_for(staff)
    resp = client.post(
        "/api/v1/projects/",
        {"name": "HH", "task_kind": "pairwise", "label_options": {"criteria": ["helpfulness"]}, "overlap": 2},
        format="json",
    )
    assert resp.status_code == 201, resp.json()
    pid = resp.json()["id"]
    bad_opts = client.post("/api/v1/projects/", {"name": "X", "label_options": {"strength_min": 3}}, format="json")
    assert bad_opts.status_code == 400 and "strength" in bad_opts.json()["message"]
    make_user("newbie")
    assert (
        client.post(
            f"/api/v1/projects/{pid}/members/", {"username": "newbie", "role": "annotator"}, format="json"
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/v1/projects/{pid}/members/", {"username": "ghost", "role": "annotator"}, format="json"
        ).status_code
        == 404
    )
    bad = io.BytesIO(b'{"prompt": "q", "completions": ["a", "b"]}\n{broken\n')
    bad.name = "bad.jsonl"
    resp = client.post(f"/api/v1/projects/{pid}/imports", {"file": bad})
    assert resp.status_code == 400
    assert resp.json()["details"]["errors"] == [{"line": 2, "message": resp.json()["details"]["errors"][0]["message"]}]
    good = io.BytesIO("\n".join(pairwise_lines(4)).encode())
    good.name = "good.jsonl"
    resp = client.post(f"/api/v1/projects/{pid}/imports", {"file": good})
    assert resp.status_code == 201 and resp.json()["created_tasks"] == 4


def test_large_import_runs_as_a_job_with_progress(settings, django_capture_on_commit_callbacks):
    settings.ARBITER_INLINE_IMPORT_MAX_LINES = 3  # Celery runs eagerly in tests
    manager = make_user("boss2")
    project = make_project(manager=manager)
    upload = io.BytesIO("\n".join(pairwise_lines(10)).encode())
    upload.name = "big.jsonl"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        resp = client_for(manager).post(f"/api/v1/projects/{project.pk}/imports", {"file": upload})
    assert resp.status_code == 202 and len(callbacks) == 1
    job = client_for(manager).get(f"/api/v1/imports/{resp.json()['id']}").json()
    assert job["status"] == "succeeded" and job["created_tasks"] == 10 and job["processed_lines"] == 10
    assert Task.objects.filter(project=project).count() == 10
    assert ImportJob.objects.get().status == "succeeded"


def test_openapi_schema_and_docs_page(world):
    _, manager, _ = world
    client = client_for(manager)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/projects/{project_id}/next" in schema.content
    client.force_login(manager)
    assert client.get("/api/docs/").status_code == 200


def test_project_list_is_only_mine(world):
    project, _, ann = world
    other = make_project(manager=make_user("other-boss"), name="Other")
    ids = [p["id"] for p in client_for(ann).get("/api/v1/projects/").json()]
    assert project.pk in ids and other.pk not in ids
    assert Project.objects.count() == 2


def test_the_annotator_loop_statements_are_prepared_once_per_connection(world, on_postgres):
    """Postgres parses and plans the loop's four statements once per connection (arbiter.sqlrows.hot_cursor)."""
    project, _, ann = world
    client = client_for(ann)
    for i in range(3):
        task = client.post(f"/api/v1/projects/{project.pk}/next", {}, format="json").json()["tasks"][0]
        url = f"/api/v1/projects/{project.pk}/tasks/{task['task_id']}/judgments"
        body = {"idempotency_key": f"p{i}", "ranking": [[0], [1]], "strength": 2}
        assert client.post(url, body, format="json").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE from_sql = false")
        prepared = " ".join(" ".join(row[0].split()) for row in cursor.fetchall())
    assert 'FROM "authtoken_token" t JOIN "auth_user" u' in prepared  # the token
    assert 'FROM "labeling_membership" m JOIN "labeling_project" p' in prepared  # the membership
    assert "WITH picked AS ( UPDATE labeling_task" in prepared  # next
    assert "WITH lease AS ( SELECT a.id, a.task_id FROM labeling_assignment" in prepared  # submit
