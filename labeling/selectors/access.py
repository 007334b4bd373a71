"""Who may do what in which project. Every interface calls one of these before anything else."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import QuerySet

from arbiter.errors import NotFound, PermissionDenied
from arbiter.sqlrows import ModelColumns, hot_cursor
from labeling.models import Membership, Project, Role

LABELERS = (Role.ANNOTATOR, Role.MANAGER)
READERS = (Role.MANAGER, Role.VIEWER)
EVERYONE = (Role.MANAGER, Role.ANNOTATOR, Role.VIEWER)


def membership_get(*, user: User | AnonymousUser, project_id: int, roles: Iterable[str] = EVERYONE) -> Membership:
    """The user's membership in the project (with the project loaded), in one query.

    Raises NotFound when the user is not a member (a non-member must not learn the project exists)
    and PermissionDenied when the role is not among ``roles``. Staff users act as managers.
    """
    if not getattr(user, "is_authenticated", False):
        raise PermissionDenied("authentication required")
    assert user.pk is not None
    membership = _membership_with_project(project_id=project_id, user_id=user.pk)
    if membership is None:
        if getattr(user, "is_staff", False):
            project = Project.objects.filter(pk=project_id).first()
            if project is not None:
                return Membership(project=project, user_id=user.pk, role=Role.MANAGER)
        raise NotFound(f"project {project_id} not found")
    roles = tuple(roles)
    if membership.role not in roles:
        raise PermissionDenied(
            f"your role in this project is {membership.role}; this needs {' or '.join(str(r) for r in roles)}"
        )
    return membership


def project_list_for_user(*, user: User) -> QuerySet[Project]:
    if getattr(user, "is_staff", False):
        return Project.objects.all()
    return Project.objects.filter(memberships__user_id=user.pk).distinct()


_MEMBERSHIP = ModelColumns(Membership, "m")
_PROJECT = ModelColumns(Project, "p")


@cache
def _membership_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    return (
        f"SELECT {_MEMBERSHIP.select}, {_PROJECT.select} FROM {qn(Membership._meta.db_table)} m "
        f"JOIN {qn(Project._meta.db_table)} p ON p.id = m.project_id WHERE m.project_id = %s AND m.user_id = %s"
    )


def _membership_with_project(*, project_id: int, user_id: int) -> Membership | None:
    """``Membership.objects.select_related("project").filter(...).first()``, as one SQL string written once.

    Every API request runs this; the ORM spent more CPU compiling it than Postgres spends running it.
    """
    with hot_cursor() as cursor:
        cursor.execute(_membership_sql(connection.vendor), [project_id, user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    membership = _MEMBERSHIP.build(row)
    membership.project = _PROJECT.build(row, _MEMBERSHIP.width)
    return membership
