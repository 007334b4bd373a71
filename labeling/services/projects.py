"""Writes to projects and memberships."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from arbiter.errors import Conflict, NotFound, ValidationFailed
from labeling.models import Membership, Project, Role, TaskKind
from labeling.options import OptionsError, parse_label_options

_EDITABLE = ("name", "guidelines", "label_options", "overlap", "lease_seconds", "gold_rate")


def _check_numbers(*, overlap: int, lease_seconds: int, gold_rate: float) -> None:
    errors = {}
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 1 <= overlap <= 50:
        errors["overlap"] = "must be an integer within 1..50"
    if not isinstance(lease_seconds, int) or isinstance(lease_seconds, bool) or not 10 <= lease_seconds <= 86400:
        errors["lease_seconds"] = "must be an integer within 10..86400"
    if not isinstance(gold_rate, (int, float)) or isinstance(gold_rate, bool) or not 0 <= gold_rate <= 1:
        errors["gold_rate"] = "must be a number within 0..1"
    if errors:
        raise ValidationFailed("invalid project settings", details=errors)


@transaction.atomic
def project_create(
    *,
    name: str,
    created_by: User | None,
    task_kind: str = TaskKind.PAIRWISE,
    slug: str = "",
    guidelines: str = "",
    label_options: dict[str, Any] | None = None,
    overlap: int = 1,
    lease_seconds: int = 600,
    gold_rate: float = 0.0,
) -> Project:
    """Create a project; its creator becomes a manager."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("a project needs a name", details={"name": "required"})
    if task_kind not in TaskKind.values:
        raise ValidationFailed(f"task_kind must be one of {TaskKind.values}", details={"task_kind": task_kind})
    try:
        options = parse_label_options(label_options, task_kind=task_kind)
    except OptionsError as exc:
        raise ValidationFailed(f"invalid label options: {exc}", details={"label_options": exc.errors}) from None
    _check_numbers(overlap=overlap, lease_seconds=lease_seconds, gold_rate=gold_rate)
    slug = slugify(slug or name)[:100] or "project"
    if Project.objects.filter(slug=slug).exists():
        raise Conflict(f"a project with slug {slug!r} exists", details={"slug": slug})
    try:
        with transaction.atomic():
            project = Project.objects.create(
                name=name[:200],
                slug=slug,
                guidelines=guidelines,
                task_kind=task_kind,
                label_options=options.to_json(),
                overlap=overlap,
                lease_seconds=lease_seconds,
                gold_rate=float(gold_rate),
                created_by=created_by if created_by is not None and created_by.pk else None,
            )
    except IntegrityError:
        raise Conflict(f"a project with slug {slug!r} exists", details={"slug": slug}) from None
    if created_by is not None and created_by.pk:
        Membership.objects.create(project=project, user_id=created_by.pk, role=Role.MANAGER)
    return project


@transaction.atomic
def project_update(*, project: Project, **changes: Any) -> Project:
    """Change a project's settings. The task kind cannot change once tasks exist."""
    unknown = set(changes) - set(_EDITABLE) - {"task_kind"}
    if unknown:
        raise ValidationFailed(f"cannot change {sorted(unknown)}", details={k: "not editable" for k in unknown})
    project = Project.objects.select_for_update().get(pk=project.pk)
    if "task_kind" in changes and changes["task_kind"] != project.task_kind:
        if project.tasks.exists():
            raise Conflict("the task kind cannot change once the project has tasks")
        if changes["task_kind"] not in TaskKind.values:
            raise ValidationFailed(f"task_kind must be one of {TaskKind.values}")
        project.task_kind = changes["task_kind"]
    if "name" in changes:
        name = str(changes["name"] or "").strip()
        if not name:
            raise ValidationFailed("a project needs a name", details={"name": "required"})
        project.name = name[:200]
    if "guidelines" in changes:
        project.guidelines = str(changes["guidelines"] or "")
    options_raw = changes.get("label_options", project.label_options)
    try:
        options = parse_label_options(options_raw, task_kind=project.task_kind)
    except OptionsError as exc:
        raise ValidationFailed(f"invalid label options: {exc}", details={"label_options": exc.errors}) from None
    if project.tasks.exists() and options.completions_per_task < project.label_options.get("completions_per_task", 0):
        raise Conflict("completions_per_task cannot shrink once tasks exist")
    project.label_options = options.to_json()
    overlap = changes.get("overlap", project.overlap)
    lease_seconds = changes.get("lease_seconds", project.lease_seconds)
    gold_rate = changes.get("gold_rate", project.gold_rate)
    _check_numbers(overlap=overlap, lease_seconds=lease_seconds, gold_rate=gold_rate)
    if overlap != project.overlap:
        # Completion is relative to overlap: recompute it for every task in one statement.
        from django.db.models import Case, Value, When

        project.tasks.filter(is_gold=False).update(
            is_complete=Case(When(judgment_count__gte=overlap, then=Value(True)), default=Value(False))
        )
    project.overlap, project.lease_seconds, project.gold_rate = overlap, lease_seconds, float(gold_rate)
    project.save()
    return project


@transaction.atomic
def membership_set(*, project: Project, username: str, role: str) -> Membership:
    """Add a user to a project with a role, or change their role."""
    if role not in Role.values:
        raise ValidationFailed(f"role must be one of {Role.values}", details={"role": role})
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}", details={"username": username})
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def membership_remove(*, project: Project, username: str) -> None:
    deleted, _ = Membership.objects.filter(project=project, user__username=username).delete()
    if not deleted:
        raise NotFound(f"{username!r} is not a member of this project")
    if not Membership.objects.filter(project=project, role=Role.MANAGER).exists():
        raise Conflict("a project must keep at least one manager")
