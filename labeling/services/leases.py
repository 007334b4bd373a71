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
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from arbiter.sqlrows import hot_cursor, statement_scope
from labeling.models import Assignment, AssignmentStatus, Completion, Project, Prompt, Task, TaskKind
from labeling.selectors.access import LABELERS, membership_get

MAX_PREFETCH = 10
# Tests set this to run the portable (SQLite) sequence on Postgres too, so both paths stay covered in CI.
PORTABLE_ONLY = False


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


def _lease_params(
    *, project: Project, user_id: int, want: int, gold: bool, now: datetime, expires: datetime
) -> dict[str, Any]:
    return {
        "now": _adapt(now),
        "expires": _adapt(expires),
        "project": project.pk,
        "gold": gold,
        "false": False,
        "overlap": project.overlap,
        "user": user_id,
        "want": want,
    }


def _lease_new(*, project: Project, user_id: int, want: int, gold: bool, now: datetime, expires: datetime) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            _lease_sql(gold=gold),
            _lease_params(project=project, user_id=user_id, want=want, gold=gold, now=now, expires=expires),
        )
        return [row[0] for row in cursor.fetchall()]


def _lease_and_record_sql(*, gold: bool) -> str:
    """Postgres: lease tasks and write (or renew) their assignment rows in one statement; ``fresh`` holds them."""
    assignment = Assignment._meta.db_table
    return f"""
        WITH picked AS ({_lease_sql(gold=gold)}),
        fresh AS (
            INSERT INTO {assignment}
                (project_id, task_id, annotator_id, status, leased_at, expires_at, finished_at, submission_key)
            SELECT %(project)s, picked.id, %(user)s, 'active', %(now)s::timestamptz, %(expires)s::timestamptz, NULL, ''
            FROM picked
            ON CONFLICT (task_id, annotator_id) DO UPDATE SET
                status = EXCLUDED.status, leased_at = EXCLUDED.leased_at, expires_at = EXCLUDED.expires_at,
                finished_at = NULL, submission_key = ''
            RETURNING task_id, leased_at, expires_at
        )"""


@cache
def _lease_and_fetch_sql() -> str:
    """Postgres: the whole "next task" in one statement (non-gold lease, assignment rows, payload).

    The statement's snapshot does not see the rows ``fresh`` inserts, so the leases the user already
    held are read from the table and the new ones from ``fresh`` (the two sets are disjoint: a renewed
    row was not an active lease before). One row per completion (one per task with none).
    """
    assignment = Assignment._meta.db_table
    task, prompt, completion = Task._meta.db_table, Prompt._meta.db_table, Completion._meta.db_table
    return f"""
        {_lease_and_record_sql(gold=False)},
        held AS (
            SELECT a.task_id, a.leased_at, a.expires_at FROM {assignment} a
            WHERE a.annotator_id = %(user)s AND a.project_id = %(project)s
              AND a.status = 'active' AND a.expires_at > %(now)s
            UNION ALL
            SELECT task_id, leased_at, expires_at FROM fresh
        ),
        top AS (SELECT * FROM held ORDER BY leased_at, task_id LIMIT %(count)s)
        SELECT top.task_id, top.expires_at, p.messages, c.id, c.position, c.text
        FROM top
        JOIN {task} t ON t.id = top.task_id
        JOIN {prompt} p ON p.id = t.prompt_id
        LEFT JOIN {completion} c ON c.task_id = top.task_id
        ORDER BY top.leased_at, top.task_id, c.position
    """


@cache
def _lease_gold_sql() -> str:
    return _lease_and_record_sql(gold=True) + " SELECT COUNT(*) FROM fresh"


def _lease_next_postgres(
    *, project: Project, user_id: int, count: int, n_gold: int, now: datetime, expires: datetime
) -> list[LeasedTask]:
    """One statement (two when a gold task is drawn, then in one transaction); see ``_lease_and_fetch_sql``."""
    with transaction.atomic() if n_gold else statement_scope(), hot_cursor() as cursor:
        if n_gold:
            params = _lease_params(project=project, user_id=user_id, want=n_gold, gold=True, now=now, expires=expires)
            cursor.execute(_lease_gold_sql(), params)
        params = _lease_params(project=project, user_id=user_id, want=count, gold=False, now=now, expires=expires)
        params["count"] = count
        cursor.execute(_lease_and_fetch_sql(), params)
        rows = cursor.fetchall()
    tasks: dict[int, LeasedTask] = {}
    by_task: dict[int, dict[int, LeasedCompletion]] = {}
    for task_id, expires_at, messages, completion_id, position, text in rows:
        if task_id not in tasks:
            tasks[task_id] = LeasedTask(
                task_id=task_id, messages=json.loads(messages), completions=[], expires_at=expires_at
            )
            by_task[task_id] = {}
        if completion_id is not None:
            by_task[task_id][position] = LeasedCompletion(id=completion_id, position=position, text=text)
    return _in_display_order(tasks, by_task, user_id=user_id)


def _in_display_order(
    tasks: dict[int, LeasedTask], by_task: dict[int, dict[int, LeasedCompletion]], *, user_id: int
) -> list[LeasedTask]:
    for task_id, leased in tasks.items():
        positions = by_task[task_id]
        if positions:
            order = display_order(task_id=task_id, user_id=user_id, n=len(positions))
            leased.completions = [positions[p] for p in order if p in positions]
    return list(tasks.values())


def assignment_lease_next(
    *, user: User, project_id: int, count: int = 1, rng: random.Random | None = None
) -> list[LeasedTask]:
    """Lease tasks to ``user`` until they hold ``count`` (1..10) active leases; return those tasks.

    Tasks the user already leases come first (a reload never burns a new task). New tasks are the
    ones with the fewest judgments that still have room under the project's overlap and that the
    user has never judged or skipped; gold tasks are mixed in at the project's gold rate. On Postgres
    that is two statements after authentication: the membership, then one statement that leases,
    records the assignments and reads the payload (plus one when a gold task is drawn). Elsewhere
    (SQLite, the embedded demo) the portable sequence in ``_lease_next_portable``.
    """
    membership = membership_get(user=user, project_id=project_id, roles=LABELERS)
    project = membership.project
    count = max(1, min(int(count), MAX_PREFETCH))
    now = timezone.now()
    expires = now + timedelta(seconds=project.lease_seconds)
    rng = rng or random.Random()
    n_gold = sum(1 for _ in range(count) if rng.random() < project.gold_rate) if project.gold_rate > 0 else 0
    if connection.vendor == "postgresql" and not PORTABLE_ONLY:
        return _lease_next_postgres(
            project=project, user_id=user.pk, count=count, n_gold=n_gold, now=now, expires=expires
        )
    return _lease_next_portable(project=project, user_id=user.pk, count=count, n_gold=n_gold, now=now, expires=expires)


@transaction.atomic
def _lease_next_portable(
    *, project: Project, user_id: int, count: int, n_gold: int, now: datetime, expires: datetime
) -> list[LeasedTask]:
    """Lease, record and read back in three steps: any database (the lease statement is portable SQL)."""
    picked: list[int] = []
    if n_gold:
        picked += _lease_new(project=project, user_id=user_id, want=n_gold, gold=True, now=now, expires=expires)
    picked += _lease_new(
        project=project, user_id=user_id, want=count - len(picked), gold=False, now=now, expires=expires
    )
    if picked:
        Assignment.objects.bulk_create(
            [
                Assignment(
                    project_id=project.pk,
                    task_id=task_id,
                    annotator_id=user_id,
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
    return leased_tasks_for_user(user_id=user_id, project=project, now=now)[:count]


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
    return _in_display_order(tasks, by_task, user_id=user_id)


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
