"""Leasing tasks to annotators ("next task") and returning expired leases to the pool.

Concurrency design (see docs/ARCHITECTURE.md, "Leases"):

* The lease query picks tasks with ``FOR UPDATE SKIP LOCKED`` and, in the same statement, bumps
  the task row's ``leases_out``/``lease_horizon``. Every condition that decides whether a task is
  open lives on the task row itself, so Postgres' re-check of a row another transaction changed
  (EvalPlanQual) sees the other lease: two annotators can never both take the last slot.
* ``leases_out`` counts leases handed out since ``lease_horizon`` (the latest expiry among them);
  once the horizon has passed every lease is stale and the count is treated as 0. With overlap > 1 a
  partly expired set is counted conservatively until the periodic sweep (``assignments_expire_stale``)
  recomputes it: a task is sometimes held back a little longer, never over-assigned.
* On SQLite (the embedded demo) there is no row locking; its writers are serialised by
  ``BEGIN IMMEDIATE`` instead, which is equally safe at demo scale.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from labeling.models import Assignment, AssignmentStatus, Completion, Project, Task, TaskKind
from labeling.selectors.access import LABELERS, membership_get

MAX_PREFETCH = 10


@dataclass
class LeasedCompletion:
    id: int
    position: int
    text: str


@dataclass
class LeasedTask:
    task_id: int
    messages: list[dict[str, str]]
    completions: list[LeasedCompletion]
    expires_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


def display_order(*, task_id: int, user_id: int, n: int) -> list[int]:
    """The fixed, per-annotator shuffle of a task's completions (positions in display order).

    Stable across reloads (same annotator, same order) and independent between annotators, so
    position bias averages out over a task's judgments.
    """
    seed = int.from_bytes(hashlib.sha256(f"{task_id}:{user_id}".encode()).digest()[:8], "big")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def _adapt(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _lease_sql(*, gold: bool) -> str:
    task = Task._meta.db_table
    assignment = Assignment._meta.db_table
    pg = connection.vendor == "postgresql"
    lock = "FOR UPDATE OF t SKIP LOCKED" if pg else ""
    greatest = "GREATEST" if pg else "MAX"
    open_clause = (
        ""
        if gold
        else (
            "AND t.is_complete = %(false)s "
            "AND t.judgment_count + CASE WHEN t.lease_horizon > %(now)s THEN t.leases_out ELSE 0 END < %(overlap)s"
        )
    )
    # `= ANY(ARRAY(...))` makes Postgres look the picked ids up by primary key; with `IN (...)` it
    # chose a hash semi-join over a sequential scan of every task (32 ms instead of 2 ms at 100k tasks).
    picked, close = ("id = ANY(ARRAY(", "))") if pg else ("id IN (", ")")
    # LIMIT: the slots the annotator still needs, after the active leases they already hold.
    return f"""
        UPDATE {task} SET
            leases_out = CASE WHEN lease_horizon > %(now)s THEN leases_out + 1 ELSE 1 END,
            lease_horizon = CASE WHEN lease_horizon > %(expires)s THEN lease_horizon ELSE %(expires)s END
        WHERE {picked}
            SELECT t.id FROM {task} t
            WHERE t.project_id = %(project)s AND t.is_gold = %(gold)s {open_clause}
              AND NOT EXISTS (
                SELECT 1 FROM {assignment} a
                WHERE a.task_id = t.id AND a.annotator_id = %(user)s
                  AND (a.status IN ('submitted', 'skipped') OR (a.status = 'active' AND a.expires_at > %(now)s))
              )
            ORDER BY t.judgment_count, t.id
            LIMIT {greatest}(%(want)s - (
                SELECT COUNT(*) FROM {assignment} m
                WHERE m.annotator_id = %(user)s AND m.project_id = %(project)s
                  AND m.status = 'active' AND m.expires_at > %(now)s
            ), 0)
            {lock}
        {close}
        RETURNING id
    """


def _lease_new(*, project: Project, user_id: int, want: int, gold: bool, now: datetime, expires: datetime) -> list[int]:
    params = {
        "now": _adapt(now),
        "expires": _adapt(expires),
        "project": project.pk,
        "gold": gold,
        "false": False,
        "overlap": project.overlap,
        "user": user_id,
        "want": want,
    }
    with connection.cursor() as cursor:
        cursor.execute(_lease_sql(gold=gold), params)
        return [row[0] for row in cursor.fetchall()]


@transaction.atomic
def assignment_lease_next(
    *, user: User, project_id: int, count: int = 1, rng: random.Random | None = None
) -> list[LeasedTask]:
    """Lease tasks to ``user`` until they hold ``count`` (1..10) active leases; return those tasks.

    Tasks the user already leases come first (a reload never burns a new task). New tasks are the
    ones with the fewest judgments that still have room under the project's overlap and that the
    user has never judged or skipped; gold tasks are mixed in at the project's gold rate. Five
    queries in all: membership, lease, lease rows, payload (and one more when a gold task is drawn).
    """
    membership = membership_get(user=user, project_id=project_id, roles=LABELERS)
    project = membership.project
    count = max(1, min(int(count), MAX_PREFETCH))
    now = timezone.now()
    expires = now + timedelta(seconds=project.lease_seconds)
    rng = rng or random.Random()

    picked: list[int] = []
    if project.gold_rate > 0:
        n_gold = sum(1 for _ in range(count) if rng.random() < project.gold_rate)
        if n_gold:
            picked += _lease_new(project=project, user_id=user.pk, want=n_gold, gold=True, now=now, expires=expires)
    picked += _lease_new(
        project=project, user_id=user.pk, want=count - len(picked), gold=False, now=now, expires=expires
    )
    if picked:
        Assignment.objects.bulk_create(
            [
                Assignment(
                    project_id=project.pk,
                    task_id=task_id,
                    annotator_id=user.pk,
                    status=AssignmentStatus.ACTIVE,
                    leased_at=now,
                    expires_at=expires,
                    finished_at=None,
                    submission_key="",
                )
                for task_id in picked
            ],
            update_conflicts=True,
            unique_fields=["task", "annotator"],
            update_fields=["status", "leased_at", "expires_at", "finished_at", "submission_key"],
        )
    return leased_tasks_for_user(user_id=user.pk, project=project, now=now)[:count]


def leased_tasks_for_user(*, user_id: int, project: Project, now: datetime | None = None) -> list[LeasedTask]:
    """The user's active leases in the project with their payload, oldest first, in one query."""
    now = now or timezone.now()
    lease_filter = {
        "annotator_id": user_id,
        "project_id": project.pk,
        "status": AssignmentStatus.ACTIVE,
        "expires_at__gt": now,
    }
    if project.task_kind == TaskKind.DEMONSTRATION:
        rows = (
            Assignment.objects.filter(**lease_filter)
            .select_related("task__prompt")
            .order_by("leased_at", "task_id")[:MAX_PREFETCH]
        )
        return [
            LeasedTask(
                task_id=a.task_id,
                messages=a.task.prompt.messages,
                completions=[],
                expires_at=a.expires_at,
            )
            for a in rows
        ]
    completions = (
        Completion.objects.filter(**{f"task__assignments__{k}": v for k, v in lease_filter.items()})
        .select_related("task__prompt")
        .annotate(lease_expires=F("task__assignments__expires_at"), lease_at=F("task__assignments__leased_at"))
        .order_by("lease_at", "task_id", "position")
    )
    tasks: dict[int, LeasedTask] = {}
    by_task: dict[int, dict[int, LeasedCompletion]] = {}
    for c in completions:
        if c.task_id not in tasks:
            if len(tasks) == MAX_PREFETCH:
                break
            tasks[c.task_id] = LeasedTask(
                task_id=c.task_id,
                messages=c.task.prompt.messages,
                completions=[],
                expires_at=c.lease_expires,  # type: ignore[attr-defined]
            )
            by_task[c.task_id] = {}
        by_task[c.task_id][c.position] = LeasedCompletion(id=c.pk, position=c.position, text=c.text)
    for task_id, leased in tasks.items():
        positions = by_task[task_id]
        order = display_order(task_id=task_id, user_id=user_id, n=len(positions))
        leased.completions = [positions[p] for p in order if p in positions]
    return list(tasks.values())


@transaction.atomic
def assignments_expire_stale(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Mark leases past their expiry as expired and recompute their tasks' lease counters.

    Run every minute by Celery beat; safe to run concurrently (tasks locked with SKIP LOCKED).
    Returns the number of leases expired.
    """
    now = now or timezone.now()
    task_ids = list(
        Task.objects.select_for_update(skip_locked=True)
        .filter(
            pk__in=Assignment.objects.filter(status=AssignmentStatus.ACTIVE, expires_at__lte=now).values("task_id")[
                :batch
            ]
        )
        .values_list("pk", flat=True)
    )
    if not task_ids:
        return 0
    expired = Assignment.objects.filter(
        task_id__in=task_ids, status=AssignmentStatus.ACTIVE, expires_at__lte=now
    ).update(status=AssignmentStatus.EXPIRED, finished_at=now)
    live = {
        row["task_id"]: row
        for row in Assignment.objects.filter(task_id__in=task_ids, status=AssignmentStatus.ACTIVE, expires_at__gt=now)
        .values("task_id")
        .annotate(n=Count("id"), horizon=Max("expires_at"))
    }
    tasks = list(Task.objects.filter(pk__in=task_ids).only("pk", "leases_out", "lease_horizon"))
    for task in tasks:
        row = live.get(task.pk)
        task.leases_out = row["n"] if row else 0
        task.lease_horizon = row["horizon"] if row else None
    Task.objects.bulk_update(tasks, ["leases_out", "lease_horizon"])
    return expired
