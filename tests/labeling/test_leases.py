"""Leasing: fewest judgments first, overlap, never twice to one annotator, expiry, gold mixing, blind order."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from arbiter.errors import NotFound, PermissionDenied
from labeling.models import Assignment, Task
from labeling.services.judgments import judgment_submit, task_skip
from labeling.services.leases import assignment_lease_next, assignments_expire_stale, display_order
from tests.factories import add_member, make_project, make_user, seed_tasks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hot_path")]


def lease(user, project, count=1, seed=0):
    return assignment_lease_next(user=user, project_id=project.pk, count=count, rng=random.Random(seed))


def judge(user, project, task_id, key=None):
    return judgment_submit(
        user=user,
        project_id=project.pk,
        task_id=task_id,
        idempotency_key=key or f"{user.pk}-{task_id}",
        ranking=[[0], [1]],
        strength=1,
    )


def annotators(project, n):
    users = [make_user(f"ann{i}") for i in range(n)]
    for u in users:
        add_member(project, u)
    return users


def test_fewest_judgments_first_and_overlap_respected():
    project = make_project(overlap=2)
    seed_tasks(project, 3)
    a, b, c = annotators(project, 3)
    ta = lease(a, project)[0].task_id
    judge(a, project, ta)
    # b gets a task with no judgments before the one a judged
    tb = lease(b, project)[0].task_id
    assert tb != ta
    judge(b, project, tb)
    tc = lease(c, project)[0].task_id
    assert tc not in (ta, tb)
    judge(c, project, tc)
    # Now every task has one judgment; a gets one it has not judged
    ta2 = lease(a, project)[0].task_id
    assert ta2 != ta
    judge(a, project, ta2)
    counts = dict(Task.objects.values_list("id", "judgment_count"))
    assert max(counts.values()) <= 2


def test_never_serves_a_task_the_annotator_judged_or_skipped():
    project = make_project(overlap=3)
    seed_tasks(project, 2)
    (a,) = annotators(project, 1)
    t1 = lease(a, project)[0].task_id
    judge(a, project, t1)
    t2 = lease(a, project)[0].task_id
    assert t2 != t1
    task_skip(user=a, project_id=project.pk, task_id=t2, idempotency_key="skip-1")
    assert lease(a, project) == []


def test_a_task_at_overlap_is_not_served_while_leased_and_returns_after_expiry():
    project = make_project(overlap=1, lease_seconds=60)
    seed_tasks(project, 1)
    a, b = annotators(project, 2)
    t = lease(a, project)[0].task_id
    assert lease(b, project) == []  # the only slot is leased to a
    Assignment.objects.filter(annotator=a).update(expires_at=timezone.now() - timedelta(seconds=1))
    Task.objects.filter(pk=t).update(lease_horizon=timezone.now() - timedelta(seconds=1))
    assert [x.task_id for x in lease(b, project)] == [t]  # expired lease went back to the pool


def test_sweep_recomputes_counters_for_partly_expired_leases():
    project = make_project(overlap=2, lease_seconds=60)
    seed_tasks(project, 1)
    a, b, c = annotators(project, 3)
    t = lease(a, project)[0].task_id
    assert lease(b, project)[0].task_id == t
    assert lease(c, project) == []
    Assignment.objects.filter(annotator=a).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignments_expire_stale() == 1
    task = Task.objects.get(pk=t)
    assert task.leases_out == 1
    assert Assignment.objects.get(annotator=a).status == "expired"
    assert lease(c, project)[0].task_id == t


def test_reload_returns_the_same_leases_and_prefetch_leases_more():
    project = make_project(overlap=1)
    seed_tasks(project, 10)
    (a,) = annotators(project, 1)
    first = [t.task_id for t in lease(a, project, count=3)]
    assert len(first) == 3
    assert [t.task_id for t in lease(a, project, count=3)] == first
    assert [t.task_id for t in lease(a, project, count=1)] == first[:1]
    assert Assignment.objects.filter(annotator=a, status="active").count() == 3
    five = [t.task_id for t in lease(a, project, count=5)]
    assert five[:3] == first and len(set(five)) == 5


def test_gold_tasks_are_mixed_in_at_the_gold_rate_and_ignore_overlap():
    project = make_project(overlap=1, gold_rate=0.3)
    seed_tasks(project, 200, gold_every=4)  # 50 gold, 150 regular
    a, b = annotators(project, 2)
    rng = random.Random(42)
    served = []
    for _ in range(100):
        t = assignment_lease_next(user=a, project_id=project.pk, rng=rng)[0]
        served.append(t.task_id)
        judge(a, project, t.task_id)
    gold_ids = set(Task.objects.filter(is_gold=True).values_list("id", flat=True))
    share = sum(1 for t in served if t in gold_ids) / len(served)
    assert 0.18 <= share <= 0.42
    # a gold task a judged is still served to b (gold is for everyone)
    first_gold = next(t for t in served if t in gold_ids)
    seen_b = set()
    for _ in range(60):
        t = assignment_lease_next(user=b, project_id=project.pk, rng=random.Random(1))[0]
        seen_b.add(t.task_id)
        judge(b, project, t.task_id)
        if t.task_id == first_gold:
            break
    gold_rows = Task.objects.filter(is_gold=True, judgment_count__gte=1)
    assert not gold_rows.filter(is_complete=True).exists()


def test_blind_payload_hides_models_and_others_and_shuffles_per_annotator():
    project = make_project(overlap=2)
    seed_tasks(project, 1)
    a, b = annotators(project, 2)
    ta = lease(a, project)[0]
    judgment_submit(
        user=a,
        project_id=project.pk,
        task_id=ta.task_id,
        idempotency_key="k",
        ranking=[[1], [0]],
        strength=3,
        rationale="secret reasoning",
    )
    tb = lease(b, project)[0]
    assert tb.task_id == ta.task_id
    payload = repr(tb)
    assert "secret reasoning" not in payload and "m-a" not in payload and "judgment" not in payload
    orders = {tuple(display_order(task_id=t, user_id=u, n=2)) for t in range(30) for u in range(5)}
    assert orders == {(0, 1), (1, 0)}  # both orders occur
    assert display_order(task_id=7, user_id=3, n=4) == display_order(task_id=7, user_id=3, n=4)


def test_roles_and_membership_are_checked():
    project = make_project()
    seed_tasks(project, 1)
    stranger, viewer = make_user("stranger"), make_user("viewer")
    add_member(project, viewer, role="viewer")
    with pytest.raises(NotFound):
        lease(stranger, project)
    with pytest.raises(PermissionDenied):
        lease(viewer, project)
