"""Read-side lists the manager pages show: recent import jobs, managed projects."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from labeling.models import ImportJob, Membership, Project, Role


def import_job_list(*, project: Project, limit: int = 20) -> list[ImportJob]:
    return list(ImportJob.objects.filter(project=project).order_by("-created_at", "-id")[:limit])


def managed_project_list(*, user: AbstractBaseUser) -> list[Project]:
    """Projects the user manages (staff: all of them)."""
    if getattr(user, "is_staff", False):
        return list(Project.objects.order_by("name", "id"))
    ids = Membership.objects.filter(user_id=user.pk, role=Role.MANAGER).values("project_id")
    return list(Project.objects.filter(pk__in=ids).order_by("name", "id"))
