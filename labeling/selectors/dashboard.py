"""Read-side queries for the web pages: "my projects" with progress, and the project dashboard.

The dashboard loads the project's live human judgments once (task, annotator, ranking, time, day)
and computes everything from them in Python: per-annotator medians, agreement with consensus,
gold accuracy, Krippendorff's alpha over (task, pair) units, the label distribution. That is one
pass over a few columns; fine to a few hundred thousand judgments (see docs, "Dashboard").
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeling.agreement import Alpha, ConsensusScore, consensus_agreement, krippendorff_alpha_nominal, pair_units
from labeling.models import (
    Assignment,
    AssignmentStatus,
    Demonstration,
    GoldAnswer,
    Judgment,
    JudgmentAction,
    Membership,
    Project,
    Role,
    Source,
    Task,
    TaskKind,
)
from labeling.rankings import matches_gold
from labeling.services.leases import display_order

LABELERS = (Role.ANNOTATOR, Role.MANAGER)


# --- "my projects" ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MyProjectRow:
    project: Project
    role: str
    tasks: int
    complete_tasks: int
    done_judgments: int
    wanted_judgments: int
    my_done: int
    my_remaining: int  # open tasks this user has neither labelled nor skipped
    agreement: ConsensusScore | None

    @property
    def can_label(self) -> bool:
        return self.role in LABELERS

    @property
    def can_manage(self) -> bool:
        return self.role == Role.MANAGER

    @property
    def can_view_stats(self) -> bool:
        return self.role in (Role.MANAGER, Role.VIEWER)

    @property
    def percent_complete(self) -> int:
        return round(100 * self.done_judgments / self.wanted_judgments) if self.wanted_judgments else 0


def _task_counts(project: Project) -> dict[str, int]:
    counts = Task.objects.filter(project=project).aggregate(
        tasks=Count("id", filter=Q(is_gold=False)),
        gold=Count("id", filter=Q(is_gold=True)),
        complete=Count("id", filter=Q(is_gold=False, is_complete=True)),
        done=Sum("judgment_count", filter=Q(is_gold=False)),
    )
    counts["done"] = counts["done"] or 0
    return counts


def annotator_consensus_get(*, project: Project, user_id: int) -> ConsensusScore | None:
    """How often the user's pair outcomes match the other annotators' majority, on tasks the user judged."""
    if project.task_kind == TaskKind.DEMONSTRATION:
        return None
    live = Judgment.objects.filter(project=project, is_live=True, action=JudgmentAction.LABEL, annotator__isnull=False)
    mine = live.filter(annotator_id=user_id).values("task_id")
    rows = live.filter(task_id__in=mine).values_list("task_id", "annotator_id", "ranking")
    score = consensus_agreement(pair_units(rows)).get(user_id)
    return score if score is not None and score.units else None


def my_project_list(*, user: AbstractBaseUser) -> list[MyProjectRow]:
    """The user's projects (staff: every project, as manager) with their progress and the user's share."""
    if getattr(user, "is_staff", False):
        roles = dict(Membership.objects.filter(user_id=user.pk).values_list("project_id", "role"))
        pairs = [(p, roles.get(p.pk, Role.MANAGER)) for p in Project.objects.order_by("name", "id")]
    else:
        pairs = [
            (m.project, m.role)
            for m in Membership.objects.filter(user_id=user.pk).select_related("project").order_by("project__name")
        ]
    rows = []
    for project, role in pairs:
        counts = _task_counts(project)
        done_by_me = Exists(
            Assignment.objects.filter(
                task_id=OuterRef("pk"),
                annotator_id=user.pk,
                status__in=(AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED),
            )
        )
        remaining = 0
        my_done = 0
        agreement = None
        if role in LABELERS:
            remaining = (
                Task.objects.filter(project=project, is_gold=False, is_complete=False).filter(~done_by_me).count()
            )
            if project.task_kind == TaskKind.DEMONSTRATION:
                my_done = Demonstration.objects.filter(project=project, annotator_id=user.pk, is_live=True).count()
            else:
                my_done = Judgment.objects.filter(
                    project=project, annotator_id=user.pk, is_live=True, action=JudgmentAction.LABEL
                ).count()
            agreement = annotator_consensus_get(project=project, user_id=user.pk) if my_done else None
        rows.append(
            MyProjectRow(
                project=project,
                role=str(role),
                tasks=counts["tasks"],
                complete_tasks=counts["complete"],
                done_judgments=min(counts["done"], counts["tasks"] * project.overlap),
                wanted_judgments=counts["tasks"] * project.overlap,
                my_done=my_done,
                my_remaining=remaining,
                agreement=agreement,
            )
        )
    return rows


# --- the project dashboard --------------------------------------------------------------------


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int
    cumulative: int


@dataclass(frozen=True)
class LabelCount:
    label: str
    count: int
    share: float  # 0..1 of the group's total


@dataclass(frozen=True)
class AnnotatorRow:
    user_id: int
    username: str
    role: str
    judgments: int
    skips: int
    median_time_ms: int | None
    agreement: ConsensusScore | None
    gold_correct: int
    gold_total: int
    last_active: datetime | None

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_total if self.gold_total else None


@dataclass(frozen=True)
class ProjectDashboard:
    project: Project
    tasks: int
    gold_tasks: int
    complete_tasks: int
    done_judgments: int
    wanted_judgments: int
    human_judgments: int
    imported_judgments: int
    skips: int
    days: list[DayCount]
    last_24h: int
    last_7d: int
    active_annotators_7d: int
    median_time_ms: int | None
    annotators: list[AnnotatorRow]
    alpha: Alpha
    outcomes: list[LabelCount] = field(default_factory=list)
    strengths: list[LabelCount] = field(default_factory=list)
    flags: list[LabelCount] = field(default_factory=list)

    @property
    def percent_complete(self) -> int:
        return round(100 * self.done_judgments / self.wanted_judgments) if self.wanted_judgments else 0


@dataclass
class _Row:
    task_id: int
    annotator_id: int
    ranking: list[list[int]]
    all_bad: bool
    strength: int | None
    time_ms: int | None
    created_at: datetime
    is_gold: bool
    flags: list[str]


def _counts(counter: Counter[Any], labels: list[tuple[Any, str]] | None = None) -> list[LabelCount]:
    total = sum(counter.values())
    keys = labels or [(k, str(k)) for k in sorted(counter)]
    return [LabelCount(label=label, count=counter[k], share=counter[k] / total if total else 0.0) for k, label in keys]


def _median(values: list[int]) -> int | None:
    return round(statistics.median(values)) if values else None


def _daily(project: Project, *, model: type, today: date, days: int) -> list[DayCount]:
    live = model.objects.filter(project=project, is_live=True, task__is_gold=False)  # type: ignore[attr-defined]
    if model is Judgment:
        live = live.filter(action=JudgmentAction.LABEL)
    start = today - timedelta(days=days - 1)
    before = live.filter(created_at__date__lt=start).count()
    per_day = dict(
        live.filter(created_at__date__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    # From the first active day in the window, but at least a week, so a young project still draws a line.
    first = min([*per_day, today - timedelta(days=min(days, 7) - 1)])
    if before:
        first = start
    out: list[DayCount] = []
    running = before
    day = max(first, start)
    while day <= today:
        running += per_day.get(day, 0)
        out.append(DayCount(day=day, count=per_day.get(day, 0), cumulative=running))
        day += timedelta(days=1)
    return out


def _outcomes(project: Project, rows: list[_Row]) -> list[LabelCount]:
    """Verdicts in the annotators' display terms, which also shows position bias (left vs right)."""
    counter: Counter[str] = Counter()
    for row in rows:
        if row.all_bad:
            counter["all_bad"] += 1
            continue
        top = row.ranking[0] if row.ranking else []
        if len(top) > 1:
            counter["tie"] += 1
            continue
        shown = display_order(task_id=row.task_id, user_id=row.annotator_id, n=sum(len(t) for t in row.ranking))
        if top and top[0] in shown:
            counter[f"slot{shown.index(top[0])}"] += 1
    if project.task_kind == TaskKind.PAIRWISE:
        labels = [
            ("slot0", "A (shown left) better"),
            ("slot1", "B (shown right) better"),
            ("tie", "Tie"),
            ("all_bad", "Both bad"),
        ]
    else:
        k = max((sum(len(t) for t in r.ranking) for r in rows), default=0)
        labels = [(f"slot{i}", f"{chr(65 + i)} (shown {i + 1}.) ranked first") for i in range(k)]
        labels += [("tie", "Tie for first"), ("all_bad", "All bad")]
    return _counts(counter, labels)


def project_dashboard_get(*, project: Project, now: datetime | None = None, days: int = 30) -> ProjectDashboard:
    """Everything the project dashboard shows (see module docstring for how it is computed)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    counts = _task_counts(project)
    demo = project.task_kind == TaskKind.DEMONSTRATION
    model: type = Demonstration if demo else Judgment
    roles = dict(Membership.objects.filter(project=project).values_list("user_id", "role"))

    rows: list[_Row] = []
    if demo:
        for task_id, annotator_id, time_ms, created_at in Demonstration.objects.filter(
            project=project, is_live=True, annotator__isnull=False
        ).values_list("task_id", "annotator_id", "time_spent_ms", "created_at"):
            rows.append(_Row(task_id, annotator_id, [], False, None, time_ms, created_at, False, []))
        imported = 0
    else:
        qs = Judgment.objects.filter(project=project, is_live=True, action=JudgmentAction.LABEL)
        for values in qs.filter(annotator__isnull=False).values_list(
            "task_id",
            "annotator_id",
            "ranking",
            "all_bad",
            "strength",
            "time_spent_ms",
            "created_at",
            "task__is_gold",
            "flags",
        ):
            rows.append(_Row(*values))
        imported = qs.filter(source=Source.IMPORT).count()
    skips = Counter(
        Judgment.objects.filter(project=project, action=JudgmentAction.SKIP, annotator__isnull=False).values_list(
            "annotator_id", flat=True
        )
    )

    gold = dict(GoldAnswer.objects.filter(task__project=project).values_list("task_id", "ranking"))
    units = pair_units((r.task_id, r.annotator_id, r.ranking) for r in rows)
    consensus = consensus_agreement(units) if not demo else {}
    alpha = krippendorff_alpha_nominal([list(u.values()) for u in units]) if not demo else Alpha(None, 0, 0)

    by_annotator: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        by_annotator[row.annotator_id].append(row)
    # Everyone who labelled or skipped, and every annotator (even idle); idle managers are left out.
    annotator_ids = set(by_annotator) | set(skips) | {uid for uid, role in roles.items() if role == Role.ANNOTATOR}
    users = dict(get_user_model().objects.filter(pk__in=annotator_ids).values_list("pk", "username"))
    annotators = []
    for uid in annotator_ids:
        mine = by_annotator.get(uid, [])
        gold_rows = [r for r in mine if r.is_gold and r.task_id in gold]
        annotators.append(
            AnnotatorRow(
                user_id=uid,
                username=users.get(uid, f"user {uid}"),
                role=str(roles.get(uid, "former member")),
                judgments=len(mine),
                skips=skips.get(uid, 0),
                median_time_ms=_median([r.time_ms for r in mine if r.time_ms is not None]),
                agreement=consensus.get(uid),
                gold_correct=sum(1 for r in gold_rows if matches_gold(r.ranking, gold[r.task_id])),
                gold_total=len(gold_rows),
                last_active=max((r.created_at for r in mine), default=None),
            )
        )
    annotators.sort(key=lambda a: (-a.judgments, a.username))

    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    strengths = Counter(r.strength for r in rows if r.strength is not None)
    flags = Counter(f for r in rows for f in r.flags)
    return ProjectDashboard(
        project=project,
        tasks=counts["tasks"],
        gold_tasks=counts["gold"],
        complete_tasks=counts["complete"],
        done_judgments=min(counts["done"], counts["tasks"] * project.overlap),
        wanted_judgments=counts["tasks"] * project.overlap,
        human_judgments=len(rows),
        imported_judgments=imported,
        skips=sum(skips.values()),
        days=_daily(project, model=model, today=today, days=days),
        last_24h=sum(1 for r in rows if r.created_at >= day_ago),
        last_7d=sum(1 for r in rows if r.created_at >= week_ago),
        active_annotators_7d=len({r.annotator_id for r in rows if r.created_at >= week_ago}),
        median_time_ms=_median([r.time_ms for r in rows if r.time_ms is not None]),
        annotators=annotators,
        alpha=alpha,
        outcomes=[] if demo else _outcomes(project, rows),
        strengths=_counts(strengths),
        flags=_counts(flags),
    )
