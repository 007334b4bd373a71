import random

import pytest

from labeling.models import Assignment, Judgment, Task
from labeling.services.judgments import judgment_submit
from labeling.services.leases import assignment_lease_next
from tests.factories import add_member, make_project, make_user, seed_tasks

pytestmark = pytest.mark.django_db


def test_lease_and_submit_roundtrip():
    project = make_project(overlap=1)
    seed_tasks(project, 5)
    ann = make_user("ann")
    add_member(project, ann)
    leased = assignment_lease_next(user=ann, project_id=project.pk, count=2, rng=random.Random(0))
    assert len(leased) == 2
    again = assignment_lease_next(user=ann, project_id=project.pk, count=2)
    assert [t.task_id for t in again] == [t.task_id for t in leased]
    t = leased[0]
    res = judgment_submit(
        user=ann, project_id=project.pk, task_id=t.task_id, idempotency_key="k1", ranking=[[1], [0]], strength=2
    )
    assert res.created
    res2 = judgment_submit(
        user=ann, project_id=project.pk, task_id=t.task_id, idempotency_key="k1", ranking=[[1], [0]], strength=2
    )
    assert not res2.created and res2.id == res.id
    assert Judgment.objects.count() == 1
    task = Task.objects.get(pk=t.task_id)
    assert task.is_complete and task.judgment_count == 1 and task.leases_out == 0
    assert Assignment.objects.get(task_id=t.task_id).status == "submitted"
