"""Many annotators at once on real Postgres: no over-assignment, no lost or doubled judgments."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from arbiter.errors import Conflict
from labeling.models import Assignment, Judgment, Task
from labeling.services.judgments import judgment_submit
from labeling.services.leases import assignment_lease_next
from tests.factories import add_member, make_project, make_user, seed_tasks

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hot_path")]

ANNOTATORS = 16
TASKS = 40
OVERLAP = 3


def _annotate(user_id: int, project_id: int, barrier: threading.Barrier, log: list) -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(pk=user_id)
    rng = random.Random(user_id)
    barrier.wait()
    try:
        with ThreadPoolExecutor(max_workers=2) as twin:
            while True:
                leased = assignment_lease_next(user=user, project_id=project_id, count=rng.choice([1, 2]))
                if not leased:
                    break
                task = leased[0]
                key = uuid.uuid4().hex
                verdict = {"ranking": rng.choice([[[0], [1]], [[1], [0]]]), "strength": 1}

                def send(task_id=task.task_id, key=key, verdict=verdict):
                    try:
                        return judgment_submit(
                            user=user, project_id=project_id, task_id=task_id, idempotency_key=key, **verdict
                        )
                    finally:
                        connections.close_all()

                # The same submission twice at once (a double click), then once more later (a retry).
                results = list(twin.map(lambda _: send(), range(2)))
                results.append(send())
                log.append((user_id, task.task_id, [(r.id, r.created) for r in results]))
    finally:
        connections.close_all()


def test_sixteen_annotators_with_duplicate_submissions(on_postgres):
    assert connection.vendor == "postgresql"
    project = make_project(overlap=OVERLAP, lease_seconds=300)
    seed_tasks(project, TASKS)
    users = [make_user(f"c{i}") for i in range(ANNOTATORS)]
    for u in users:
        add_member(project, u)
    barrier = threading.Barrier(ANNOTATORS)
    log: list = []
    errors: list = []

    def run(uid: int) -> None:
        try:
            _annotate(uid, project.pk, barrier, log)
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(u.pk,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:5]

    # Every submission resolved to exactly one judgment, created exactly once.
    for _uid, _task, results in log:
        ids = {r[0] for r in results}
        assert len(ids) == 1
        assert sum(1 for r in results if r[1]) == 1

    live = Judgment.objects.filter(project=project, is_live=True)
    per_task = Counter(live.values_list("task_id", flat=True))
    pairs = Counter(live.values_list("task_id", "annotator_id"))
    assert max(pairs.values()) == 1  # nobody judged a task twice
    assert len(log) == live.count() == TASKS * OVERLAP  # nothing lost, nothing doubled
    assert set(per_task.values()) == {OVERLAP}  # exactly overlap per task, never more
    for task in Task.objects.filter(project=project):
        assert task.judgment_count == per_task[task.pk] and task.is_complete
        assert task.leases_out == 0
    assert not Assignment.objects.filter(project=project, status="active").exists()


def test_racing_for_the_last_slot_only_one_wins(on_postgres):
    project = make_project(overlap=1)
    seed_tasks(project, 1)
    users = [make_user(f"r{i}") for i in range(16)]
    for u in users:
        add_member(project, u)
    barrier = threading.Barrier(len(users))
    got: list = []

    def grab(user):
        try:
            barrier.wait()
            got.append((user.pk, [t.task_id for t in assignment_lease_next(user=user, project_id=project.pk)]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=grab, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [uid for uid, tasks in got if tasks]
    assert len(got) == 16 and len(winners) == 1
    assert Assignment.objects.filter(status="active").count() == 1
    loser = next(u for u in users if u.pk != winners[0])
    task_id = Task.objects.get().pk
    with pytest.raises(Conflict):
        judgment_submit(
            user=loser, project_id=project.pk, task_id=task_id, idempotency_key="x", ranking=[[0], [1]], strength=1
        )
