"""Submitting: validation against label options, idempotency, corrections, expired leases."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from arbiter.errors import Conflict, ValidationFailed
from labeling.models import Assignment, Demonstration, Judgment, Task
from labeling.rankings import Pair, ranking_pairs, task_agreement
from labeling.services.judgments import demonstration_submit, judgment_submit, task_skip
from labeling.services.leases import assignment_lease_next
from tests.factories import add_member, make_project, make_user, seed_tasks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hot_path")]

OPTIONS = {
    "allow_tie": False,
    "allow_both_bad": False,
    "strength_min": 1,
    "strength_max": 3,
    "criteria": [{"name": "helpfulness", "min": 1, "max": 5}, "harmlessness"],
    "rationale_required": True,
    "flags": ["unsafe"],
}


@pytest.fixture
def setup():
    project = make_project(label_options=OPTIONS)
    seed_tasks(project, 3)
    ann = make_user("ann")
    add_member(project, ann)
    task = assignment_lease_next(user=ann, project_id=project.pk, rng=random.Random(0))[0]
    return project, ann, task.task_id


def submit(project, ann, task_id, key="k1", **kw):
    verdict = {"ranking": [[1], [0]], "strength": 2, "rationale": "B is right", **kw}
    return judgment_submit(user=ann, project_id=project.pk, task_id=task_id, idempotency_key=key, **verdict)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ranking": [[0, 1]]}, "ties are not allowed"),
        ({"ranking": [[0]]}, "exactly once"),
        ({"ranking": [[0], [2]]}, "positions are 0..1"),
        ({"ranking": "A"}, "non-empty list of tiers"),
        ({"all_bad": True}, "'both bad' is not allowed"),
        ({"strength": None}, "strength is required"),
        ({"strength": 7}, "within 1..3"),
        ({"criteria": {"speed": {"0": 1}}}, "unknown criterion"),
        ({"criteria": {"helpfulness": {"0": 9}}}, "within 1..5"),
        ({"criteria": {"helpfulness": {"5": 1}}}, "out of range"),
        ({"rationale": "  "}, "rationale is required"),
        ({"flags": ["rude"]}, "flags must be a subset"),
        ({"time_spent_ms": -5}, "time_spent_ms"),
    ],
)
def test_verdict_is_validated_against_the_project_options(setup, change, message):
    project, ann, task_id = setup
    with pytest.raises(ValidationFailed, match=message):
        submit(project, ann, task_id, **change)
    assert Judgment.objects.count() == 0
    assert Task.objects.get(pk=task_id).judgment_count == 0


def test_both_bad_is_allowed_as_a_tie_even_where_ties_are_not():
    from labeling.options import parse_label_options
    from labeling.rankings import validate_verdict

    options = parse_label_options({"allow_tie": False, "allow_both_bad": True}, task_kind="pairwise")
    verdict = validate_verdict(
        options=options,
        n_completions=2,
        ranking=None,
        all_bad=True,
        strength=None,
        criteria=None,
        rationale="",
        flags=None,
    )
    assert verdict.ranking == [[0, 1]] and verdict.all_bad and verdict.strength is None


def test_a_full_verdict_is_stored(setup):
    project, ann, task_id = setup
    res = submit(
        project, ann, task_id, criteria={"helpfulness": {"0": 2, "1": 5}}, flags=["unsafe"], time_spent_ms=4200
    )
    j = Judgment.objects.get(pk=res.id)
    assert j.ranking == [[1], [0]] and j.strength == 2 and j.criteria == {"helpfulness": {"0": 2, "1": 5}}
    assert j.flags == ["unsafe"] and j.time_spent_ms == 4200 and j.rationale == "B is right" and j.is_live


def test_a_submit_writes_the_judgment_the_counters_and_the_lease(setup, hot_path):
    """The whole state a submit leaves, field by field; run on the one-statement and the general path."""
    project, ann, task_id = setup
    before = timezone.now()
    res = submit(project, ann, task_id, key="full", time_spent_ms=900, flags=["unsafe"])
    assert (res.kind, res.task_id, res.created, res.superseded_id) == ("judgment", task_id, True, None)
    j = Judgment.objects.get(pk=res.id)
    lease = Assignment.objects.get(task_id=task_id, annotator=ann)
    assert (j.project_id, j.task_id, j.annotator_id, j.assignment_id) == (project.pk, task_id, ann.pk, lease.pk)
    assert (j.action, j.source, j.all_bad, j.is_live, j.supersedes_id) == ("label", "human", False, True, None)
    assert (j.ranking, j.strength, j.criteria, j.flags) == ([[1], [0]], 2, {}, ["unsafe"])
    assert (j.rationale, j.time_spent_ms, j.idempotency_key) == ("B is right", 900, "full")
    assert before <= j.created_at <= timezone.now()
    assert (lease.status, lease.submission_key) == ("submitted", "full")
    assert before <= lease.finished_at <= timezone.now()
    task = Task.objects.get(pk=task_id)
    assert (task.judgment_count, task.is_complete, task.leases_out) == (1, True, 0)


def test_a_gold_task_counts_the_judgment_but_never_completes(hot_path):
    project = make_project(label_options={"allow_tie": True}, gold_rate=1.0, overlap=1)
    seed_tasks(project, 2, gold_every=1)
    ann = make_user("gilda")
    add_member(project, ann)
    task_id = assignment_lease_next(user=ann, project_id=project.pk, rng=random.Random(0))[0].task_id
    assert Task.objects.get(pk=task_id).is_gold
    judgment_submit(user=ann, project_id=project.pk, task_id=task_id, idempotency_key="g", ranking=[[0, 1]])
    task = Task.objects.get(pk=task_id)
    assert (task.judgment_count, task.is_complete, task.leases_out) == (1, False, 0)


def test_a_ranking_of_the_wrong_size_gets_the_general_error(setup, hot_path):
    """The one-statement path validates for the size the ranking names; the task's real size decides."""
    project, ann, task_id = setup
    with pytest.raises(ValidationFailed, match=r"positions are 0\.\.1"):
        submit(project, ann, task_id, ranking=[[2], [0], [1]])
    assert not Judgment.objects.exists() and Task.objects.get(pk=task_id).judgment_count == 0


def test_same_key_is_a_replay_and_writes_nothing(setup):
    project, ann, task_id = setup
    first = submit(project, ann, task_id)
    again = submit(project, ann, task_id, strength=3)  # even a different body: the key wins
    assert (again.id, again.created) == (first.id, False)
    assert Judgment.objects.count() == 1 and Task.objects.get(pk=task_id).judgment_count == 1


def test_a_new_key_on_a_submitted_task_is_a_correction_that_supersedes(setup):
    project, ann, task_id = setup
    first = submit(project, ann, task_id)
    fixed = submit(project, ann, task_id, key="k2", ranking=[[0], [1]])
    assert fixed.superseded_id == first.id
    old, new = Judgment.objects.get(pk=first.id), Judgment.objects.get(pk=fixed.id)
    assert not old.is_live and new.is_live and new.supersedes_id == old.id
    assert Task.objects.get(pk=task_id).judgment_count == 1


def test_a_key_used_on_another_task_is_refused(setup):
    project, ann, task_id = setup
    submit(project, ann, task_id)
    other = assignment_lease_next(user=ann, project_id=project.pk)[0].task_id
    with pytest.raises(Conflict) as info:
        submit(project, ann, other)
    assert info.value.code == "idempotency_key_reused"
    assert Task.objects.get(pk=other).judgment_count == 0


def test_database_forbids_two_live_judgments_per_task_and_annotator(setup):
    project, ann, task_id = setup
    submit(project, ann, task_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.create(project=project, task_id=task_id, annotator=ann, ranking=[[0], [1]])


def test_no_lease_means_no_judgment():
    project = make_project()
    seed_tasks(project, 2)
    ann, other = make_user("ann"), make_user("other")
    add_member(project, ann)
    add_member(project, other)
    task_id = assignment_lease_next(user=ann, project_id=project.pk)[0].task_id
    with pytest.raises(Conflict) as info:
        judgment_submit(
            user=other, project_id=project.pk, task_id=task_id, idempotency_key="x", ranking=[[0], [1]], strength=1
        )
    assert info.value.code == "no_lease"


def test_expired_lease_is_accepted_when_nobody_took_the_task(setup):
    project, ann, task_id = setup
    past = timezone.now() - timedelta(seconds=5)
    Assignment.objects.filter(task_id=task_id).update(expires_at=past)
    Task.objects.filter(pk=task_id).update(lease_horizon=past)
    assert submit(project, ann, task_id).created
    task = Task.objects.get(pk=task_id)
    assert task.judgment_count == 1 and task.leases_out == 0


def test_expired_lease_is_refused_when_someone_else_took_the_task(setup):
    project, ann, task_id = setup
    past = timezone.now() - timedelta(seconds=5)
    Assignment.objects.filter(task_id=task_id).update(expires_at=past)
    Task.objects.filter(pk=task_id).update(lease_horizon=past)
    Task.objects.exclude(pk=task_id).update(is_complete=True)  # only this task is left
    bob = make_user("bob")
    add_member(project, bob)
    assert assignment_lease_next(user=bob, project_id=project.pk)[0].task_id == task_id
    with pytest.raises(Conflict) as info:
        submit(project, ann, task_id)
    assert info.value.code == "lease_expired"


def test_skip_is_recorded_and_frees_the_slot(setup):
    project, ann, task_id = setup
    res = task_skip(user=ann, project_id=project.pk, task_id=task_id, idempotency_key="s1", reason="unclear")
    again = task_skip(user=ann, project_id=project.pk, task_id=task_id, idempotency_key="s1")
    assert again.id == res.id and not again.created
    task = Task.objects.get(pk=task_id)
    assert task.leases_out == 0 and task.judgment_count == 0
    assert Assignment.objects.get(task_id=task_id).status == "skipped"
    with pytest.raises(Conflict):
        submit(project, ann, task_id, key="late")


def test_demonstrations():
    project = make_project(task_kind="demonstration")
    from labeling.services.imports import tasks_import

    tasks_import(project=project, lines=['{"prompt": "Write a haiku about rain"}'])
    ann = make_user("writer")
    add_member(project, ann)
    leased = assignment_lease_next(user=ann, project_id=project.pk)[0]
    assert leased.completions == []
    with pytest.raises(ValidationFailed, match="empty"):
        demonstration_submit(user=ann, project_id=project.pk, task_id=leased.task_id, idempotency_key="d", text=" ")
    res = demonstration_submit(
        user=ann, project_id=project.pk, task_id=leased.task_id, idempotency_key="d", text="Soft rain on the roof"
    )
    assert Demonstration.objects.get(pk=res.id).text == "Soft rain on the roof"
    with pytest.raises(ValidationFailed, match="demonstration project"):
        judgment_submit(
            user=ann, project_id=project.pk, task_id=leased.task_id, idempotency_key="j", ranking=[[0]], strength=1
        )


def test_pairs_from_a_ranking_keep_ties():
    pairs = ranking_pairs([[2], [0, 3], [1]])
    assert len(pairs) == 6
    assert Pair(winner=2, loser=0, tie=False) in pairs and Pair(winner=0, loser=3, tie=True) in pairs
    assert Pair(winner=3, loser=1, tie=False) in pairs and Pair(winner=2, loser=1, tie=False) in pairs


def test_agreement():
    assert task_agreement([[[0], [1]]]) is None
    assert task_agreement([[[0], [1]], [[0], [1]]]) == 1.0
    assert task_agreement([[[0], [1]], [[1], [0]], [[0], [1]], [[0, 1]]]) == 0.5
