"""The dashboard and "my projects" selectors, on a small project whose numbers are worked out by hand."""

from __future__ import annotations

import random

import pytest

from labeling.models import Project, Role
from labeling.selectors.dashboard import annotator_consensus_get, my_project_list, project_dashboard_get
from labeling.services.judgments import judgment_submit, task_skip
from labeling.services.leases import assignment_lease_next
from tests.factories import add_member, make_project, make_user, seed_tasks

pytestmark = pytest.mark.django_db

# t0 is gold (B better, i.e. [[1], [0]]); t1 and t2 are ordinary. Overlap 4, three annotators judge all three.
VERDICTS = {
    "u1": {"t0": ([[1], [0]], 2, 4000), "t1": ([[0], [1]], 1, 6000), "t2": ([[0, 1]], None, 8000)},
    "u2": {"t0": ([[1], [0]], 3, 5000), "t1": ([[0], [1]], 2, 5000), "t2": ([[0, 1]], None, 5000)},
    "u3": {"t0": ([[0], [1]], 1, 1000), "t1": ([[1], [0]], 3, 2000), "t2": ([[0, 1]], None, 3000)},
}


@pytest.fixture
def project():
    project = make_project(manager=make_user("boss"), overlap=4, gold_rate=1.0)  # gold first, then the rest
    seed_tasks(project, 3, gold_every=3)
    ids = {t.prompt.external_id: t.pk for t in project.tasks.select_related("prompt")}
    for name, verdicts in VERDICTS.items():
        user = make_user(name)
        add_member(project, user)
        leased = assignment_lease_next(user=user, project_id=project.pk, count=3, rng=random.Random(0))
        assert {t.task_id for t in leased} == set(ids.values())
        for ext, (ranking, strength, ms) in verdicts.items():
            judgment_submit(
                user=user,
                project_id=project.pk,
                task_id=ids[ext],
                idempotency_key=f"{name}-{ext}",
                ranking=ranking,
                strength=strength,
                time_spent_ms=ms,
                flags=["unsafe"] if name == "u3" else [],
            )
    u4 = make_user("u4")
    add_member(project, u4)
    Project.objects.filter(pk=project.pk).update(gold_rate=0.0)
    project.refresh_from_db()
    leased = assignment_lease_next(user=u4, project_id=project.pk, count=1, rng=random.Random(0))
    task_skip(user=u4, project_id=project.pk, task_id=leased[0].task_id, idempotency_key="skip-1")
    add_member(project, make_user("viewer"), Role.VIEWER)
    return project


def test_dashboard_numbers(project):
    d = project_dashboard_get(project=project)
    assert (d.tasks, d.gold_tasks, d.wanted_judgments, d.done_judgments) == (2, 1, 8, 6)
    assert d.percent_complete == 75 and d.human_judgments == 9 and d.skips == 1
    # Units: t0 (b, b, a), t1 (a, a, b), t2 (tie, tie, tie). o(a,a)=1, o(b,b)=1, o(a,b)=o(b,a)=2, o(tie,tie)=3;
    # n_a = n_b = n_tie = 3, n = 9: alpha = 1 - 8 * 4 / (2 * 27) = 11/27.
    assert d.alpha.value == pytest.approx(11 / 27) and d.alpha.units == 3
    rows = {a.username: a for a in d.annotators}
    assert set(rows) == {"u1", "u2", "u3", "u4"}  # the idle manager and the viewer are not listed
    # Leave-one-out consensus: u1 and u2 are only comparable on t2 (agree); u3 disagrees on t0 and t1.
    assert (rows["u1"].agreement.agree, rows["u1"].agreement.units) == (1, 1)
    assert (rows["u3"].agreement.agree, rows["u3"].agreement.units) == (1, 3)
    assert (rows["u1"].gold_correct, rows["u1"].gold_total) == (1, 1)
    assert (rows["u3"].gold_correct, rows["u3"].gold_total) == (0, 1) and rows["u3"].gold_accuracy == 0
    assert rows["u1"].median_time_ms == 6000 and rows["u3"].median_time_ms == 2000
    assert rows["u4"].judgments == 0 and rows["u4"].skips == 1 and rows["u4"].agreement is None
    assert d.median_time_ms == 5000
    outcomes = {o.label: o.count for o in d.outcomes}
    assert outcomes["Tie"] == 3 and outcomes["Both bad"] == 0
    assert outcomes["A (shown left) better"] + outcomes["B (shown right) better"] == 6
    assert {s.label: s.count for s in d.strengths} == {"1": 2, "2": 2, "3": 2}
    assert [(f.label, f.count) for f in d.flags] == [("unsafe", 3)]
    assert d.days[-1].cumulative == 6 and sum(day.count for day in d.days) == 6 and len(d.days) == 7
    assert d.last_24h == 9 and d.active_annotators_7d == 3


def test_my_projects_rows(project):
    u3 = project.memberships.get(user__username="u3").user
    u4 = project.memberships.get(user__username="u4").user
    viewer = project.memberships.get(user__username="viewer").user
    [row] = my_project_list(user=u3)
    assert row.my_done == 3 and row.my_remaining == 0 and row.can_label and not row.can_manage
    assert (row.agreement.agree, row.agreement.units) == (1, 3)
    [row4] = my_project_list(user=u4)
    assert row4.my_done == 0 and row4.my_remaining == 1 and row4.agreement is None  # skipped one, one left
    [rowv] = my_project_list(user=viewer)
    assert rowv.can_view_stats and not rowv.can_label and rowv.percent_complete == 75
    assert annotator_consensus_get(project=project, user_id=u4.pk) is None
    other = make_project(manager=make_user("x"), name="Other")
    assert other.pk not in [r.project.pk for r in my_project_list(user=u3)]
    staff = make_user("root", is_staff=True)
    assert {r.project.pk for r in my_project_list(user=staff)} == {project.pk, other.pk}
