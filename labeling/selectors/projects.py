"""Read-side queries about projects: progress and counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Q

from labeling.models import Judgment, JudgmentAction, Membership, Project, Task


@dataclass(frozen=True)
class ProjectProgress:
    tasks: int
    gold_tasks: int
    complete_tasks: int
    judgments: int
    wanted_judgments: int
    my_judgments: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def project_progress(*, project: Project, user: User | None = None) -> ProjectProgress:
    counts = Task.objects.filter(project=project).aggregate(
        tasks=Count("id", filter=Q(is_gold=False)),
        gold=Count("id", filter=Q(is_gold=True)),
        complete=Count("id", filter=Q(is_gold=False, is_complete=True)),
    )
    judgments = Judgment.objects.filter(project=project, is_live=True, action=JudgmentAction.LABEL)
    mine = judgments.filter(annotator_id=user.pk).count() if user is not None else 0
    return ProjectProgress(
        tasks=counts["tasks"],
        gold_tasks=counts["gold"],
        complete_tasks=counts["complete"],
        judgments=judgments.filter(task__is_gold=False).count(),
        wanted_judgments=counts["tasks"] * project.overlap,
        my_judgments=mine,
    )


def project_members(*, project: Project) -> list[Membership]:
    return list(Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username"))
