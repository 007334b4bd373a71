"""Submitting judgments, demonstrations and skips against a lease.

Every submit carries a client idempotency key: the same key returns the first result and writes
nothing; a different key on a task already submitted is a correction (a new row supersedes the
old). The hot path is five queries: auth, the locked lease (joined with task, project and the
membership check), the insert, and the two counter updates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from arbiter.errors import Conflict, NotFound, ValidationFailed
from arbiter.sqlrows import hot_cursor, statement_scope
from labeling.models import (
    Assignment,
    AssignmentStatus,
    Demonstration,
    Judgment,
    JudgmentAction,
    Project,
    Task,
    TaskKind,
)
from labeling.options import parse_label_options
from labeling.rankings import RankingError, validate_verdict
from labeling.selectors.access import LABELERS, membership_get

MAX_KEY = 80
# Tests set this to run the general (portable) path on Postgres too, so both paths stay covered in CI.
PORTABLE_ONLY = False
MAX_DEMONSTRATION = 100_000


@dataclass(frozen=True)
class SubmitResult:
    kind: str  # "judgment" | "demonstration" | "skip"
    id: int
    task_id: int
    created: bool
    superseded_id: int | None = None


def _check_key(key: str) -> str:
    key = (key or "").strip()
    if not key:
        raise ValidationFailed("an idempotency key is required", details={"idempotency_key": "required"})
    if len(key) > MAX_KEY:
        raise ValidationFailed(f"idempotency key longer than {MAX_KEY} characters")
    return key


def _locked_lease(*, user: User, project_id: int, task_id: int) -> Assignment:
    """The user's lease on the task, locked with its task row; checks membership in the same query."""
    qs = (
        Assignment.objects.select_related("task", "project")
        .select_for_update(of=("self", "task"))
        .filter(task_id=task_id, annotator_id=user.pk, project_id=project_id)
    )
    lease = qs.filter(project__memberships__user_id=user.pk, project__memberships__role__in=LABELERS).first()
    if lease is not None:
        return lease
    # Slow path, only on refusal: say precisely why.
    membership_get(user=user, project_id=project_id, roles=LABELERS)
    lease = qs.first()  # staff acting without a membership
    if lease is not None:
        return lease
    if not Task.objects.filter(pk=task_id, project_id=project_id).exists():
        raise NotFound(f"task {task_id} not found in project {project_id}")
    raise Conflict("you hold no lease on this task; ask for the next task first", code="no_lease")


def _effective_leases(task: Task, now: datetime) -> int:
    return task.leases_out if task.lease_horizon and task.lease_horizon > now else 0


def _claim(lease: Assignment, now: datetime) -> bool:
    """Check the lease may still be used. Returns whether it is counted in the task's leases_out."""
    task, project = lease.task, lease.project
    if lease.status == AssignmentStatus.ACTIVE and lease.expires_at > now:
        return True
    # Expired: still accepted if nobody else took the task in the meantime.
    if task.is_gold:
        return False
    if task.judgment_count + _effective_leases(task, now) >= project.overlap:
        raise Conflict(
            "your lease on this task expired and another annotator took it; your answer was not recorded",
            code="lease_expired",
        )
    return False


def _finish(*, lease: Assignment, now: datetime, counted: bool, status: str, key: str, labelled: bool) -> None:
    task, project = lease.task, lease.project
    updates: dict[str, Any] = {}
    live_leases = _effective_leases(task, now)
    if counted:
        updates["leases_out"] = max(live_leases - 1, 0)
    elif live_leases == 0 and task.leases_out:
        updates["leases_out"] = 0  # every lease on the task is stale: tidy the counter
    if labelled:
        updates["judgment_count"] = task.judgment_count + 1
        if not task.is_gold:
            updates["is_complete"] = task.judgment_count + 1 >= project.overlap
    if updates:
        Task.objects.filter(pk=task.pk).update(**updates)
    Assignment.objects.filter(pk=lease.pk).update(status=status, finished_at=now, submission_key=key)


def _replay(lease: Assignment, key: str) -> SubmitResult | None:
    if lease.status not in (AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED) or lease.submission_key != key:
        return None
    judgment = Judgment.objects.filter(annotator_id=lease.annotator_id, idempotency_key=key).first()
    if judgment is not None:
        kind = "skip" if judgment.action == JudgmentAction.SKIP else "judgment"
        return SubmitResult(kind=kind, id=judgment.pk, task_id=lease.task_id, created=False)
    demo = Demonstration.objects.filter(annotator_id=lease.annotator_id, idempotency_key=key).first()
    if demo is not None:
        return SubmitResult(kind="demonstration", id=demo.pk, task_id=lease.task_id, created=False)
    return None


def _key_conflict(*, user: User, key: str, task_id: int) -> Conflict:
    return Conflict(
        "this idempotency key was already used for a different submission",
        code="idempotency_key_reused",
        details={"idempotency_key": key, "task_id": task_id},
    )


def judgment_submit(
    *,
    user: User,
    project_id: int,
    task_id: int,
    idempotency_key: str,
    ranking: Any = None,
    all_bad: bool = False,
    strength: Any = None,
    criteria: Any = None,
    rationale: str = "",
    flags: Any = None,
    time_spent_ms: int | None = None,
) -> SubmitResult:
    """Record the user's verdict on a leased task (see module docstring for idempotency)."""
    key = _check_key(idempotency_key)
    verdict = dict(
        ranking=ranking,
        all_bad=all_bad,
        strength=strength,
        criteria=criteria,
        rationale=rationale,
        flags=flags,
        time_spent_ms=time_spent_ms,
    )
    try:
        if connection.vendor == "postgresql" and not PORTABLE_ONLY:
            done = _judgment_submit_one_statement(user=user, project_id=project_id, task_id=task_id, key=key, **verdict)
            if done is not None:
                return done
        return _judgment_submit(user=user, project_id=project_id, task_id=task_id, key=key, **verdict)
    except IntegrityError:
        raise _key_conflict(user=user, key=key, task_id=task_id) from None


def _positions_named(ranking: Any) -> int | None:
    """How many completions a ranking names (its size if it is well formed), or None if it cannot be told."""
    if not isinstance(ranking, list):
        return None
    n = 0
    for tier in ranking:
        if isinstance(tier, list):
            n += len(tier)
        elif isinstance(tier, int) and not isinstance(tier, bool):
            n += 1
        else:
            return None
    return n


@cache
def _submit_sql() -> str:
    """Postgres: the common submit (an active lease, a fresh key) in one statement.

    ``lease`` finds and locks the user's active, unexpired lease with its task row (as ``_locked_lease``
    does), only if the task has as many completions as the verdict was validated for; the judgment
    insert and the two counter updates then do what ``_judgment_submit`` + ``_finish`` do for that
    case, computed from the locked rows. No row in ``lease`` means this is not the common case
    (replay, correction, expired or missing lease, wrong size): nothing is written and the caller takes
    the general path, which also words every refusal.
    """
    assignment, task, judgment = Assignment._meta.db_table, Task._meta.db_table, Judgment._meta.db_table
    return f"""
        WITH lease AS (
            SELECT a.id, a.task_id FROM {assignment} a JOIN {task} t ON t.id = a.task_id
            WHERE a.task_id = %(task)s AND a.annotator_id = %(user)s AND a.project_id = %(project)s
              AND a.status = 'active' AND a.expires_at > %(now)s AND t.n_completions = %(n)s
            FOR UPDATE OF a, t
        ),
        created AS (
            INSERT INTO {judgment} (
                project_id, task_id, annotator_id, assignment_id, action, source, ranking, all_bad, strength,
                criteria, rationale, flags, time_spent_ms, idempotency_key, is_live, supersedes_id, created_at
            )
            SELECT %(project)s, lease.task_id, %(user)s, lease.id, 'label', 'human', %(ranking)s::jsonb,
                %(all_bad)s::boolean, %(strength)s::smallint, %(criteria)s::jsonb, %(rationale)s::text,
                %(flags)s::jsonb, %(time_spent_ms)s::integer, %(key)s::varchar, TRUE, NULL, %(now)s::timestamptz
            FROM lease
            RETURNING id
        ),
        counted AS (
            UPDATE {task} t SET
                leases_out = GREATEST(CASE WHEN t.lease_horizon > %(now)s THEN t.leases_out ELSE 0 END - 1, 0),
                judgment_count = t.judgment_count + 1,
                is_complete = CASE WHEN t.is_gold THEN t.is_complete ELSE t.judgment_count + 1 >= %(overlap)s END
            FROM lease WHERE t.id = lease.task_id
            RETURNING t.id
        ),
        finished AS (
            UPDATE {assignment} a SET status = 'submitted', finished_at = %(now)s, submission_key = %(key)s
            FROM lease WHERE a.id = lease.id
            RETURNING a.id
        )
        SELECT created.id, (SELECT COUNT(*) FROM counted), (SELECT COUNT(*) FROM finished) FROM created
    """


def _judgment_submit_one_statement(
    *, user: User, project_id: int, task_id: int, key: str, **verdict: Any
) -> SubmitResult | None:
    """The common case in two statements (membership, then ``_submit_sql``); None when it does not apply.

    Applies when the verdict is valid for the number of completions it names and the user holds an
    active lease on a task of that size. Anything else returns None having written nothing, and
    ``_judgment_submit`` decides (with the task's real size, so its errors are the same as ever).
    """
    n = _positions_named(verdict["ranking"])
    if n is None:
        return None
    membership = membership_get(user=user, project_id=project_id, roles=LABELERS)
    project = membership.project
    if project.task_kind == TaskKind.DEMONSTRATION:
        return None
    options = parse_label_options(project.label_options, task_kind=project.task_kind)
    time_spent = verdict.pop("time_spent_ms")
    try:
        time_spent_ms = _time_spent(time_spent)
        checked = validate_verdict(options=options, n_completions=n, **verdict)
    except (RankingError, ValidationFailed):
        return None
    params: dict[str, Any] = {
        "task": task_id,
        "user": user.pk,
        "project": project.pk,
        "now": timezone.now(),
        "n": n,
        "ranking": json.dumps(checked.ranking),
        "all_bad": checked.all_bad,
        "strength": checked.strength,
        "criteria": json.dumps(checked.criteria),
        "rationale": checked.rationale,
        "flags": json.dumps(checked.flags),
        "time_spent_ms": time_spent_ms,
        "key": key,
        "overlap": project.overlap,
    }
    with statement_scope(), hot_cursor() as cursor:
        cursor.execute(_submit_sql(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    judgment_id, tasks_updated, leases_updated = row
    assert tasks_updated == 1 and leases_updated == 1, (tasks_updated, leases_updated)
    return SubmitResult(kind="judgment", id=judgment_id, task_id=task_id, created=True)


def _time_spent(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed("time_spent_ms must be a non-negative integer")
    return min(value, 24 * 3600 * 1000)


@transaction.atomic
def _judgment_submit(*, user: User, project_id: int, task_id: int, key: str, **verdict: Any) -> SubmitResult:
    """Every case, on any database: replays, corrections, expired leases, refusals with their reasons."""
    lease = _locked_lease(user=user, project_id=project_id, task_id=task_id)
    replay = _replay(lease, key)
    if replay is not None:
        return replay
    project: Project = lease.project
    if project.task_kind == TaskKind.DEMONSTRATION:
        raise ValidationFailed("this is a demonstration project: submit a demonstration, not a ranking")
    time_spent_ms = _time_spent(verdict.pop("time_spent_ms"))
    options = parse_label_options(project.label_options, task_kind=project.task_kind)
    try:
        checked = validate_verdict(options=options, n_completions=lease.task.n_completions, **verdict)
    except RankingError as exc:
        raise ValidationFailed(str(exc), details={"verdict": str(exc)}) from None
    now = timezone.now()
    fields = dict(
        project_id=project.pk,
        task_id=task_id,
        annotator_id=user.pk,
        assignment_id=lease.pk,
        action=JudgmentAction.LABEL,
        ranking=checked.ranking,
        all_bad=checked.all_bad,
        strength=checked.strength,
        criteria=checked.criteria,
        rationale=checked.rationale,
        flags=checked.flags,
        time_spent_ms=time_spent_ms,
        idempotency_key=key,
    )
    if lease.status == AssignmentStatus.SUBMITTED:
        # A correction: the new judgment supersedes the live one; counts do not change.
        old = Judgment.objects.get(task_id=task_id, annotator_id=user.pk, is_live=True)
        Judgment.objects.filter(pk=old.pk).update(is_live=False)
        new = Judgment.objects.create(supersedes_id=old.pk, **fields)
        Assignment.objects.filter(pk=lease.pk).update(submission_key=key, finished_at=now)
        return SubmitResult(kind="judgment", id=new.pk, task_id=task_id, created=True, superseded_id=old.pk)
    if lease.status == AssignmentStatus.SKIPPED:
        raise Conflict("you skipped this task; it cannot be labelled now", code="skipped")
    counted = _claim(lease, now)
    judgment = Judgment.objects.create(**fields)
    _finish(lease=lease, now=now, counted=counted, status=AssignmentStatus.SUBMITTED, key=key, labelled=True)
    return SubmitResult(kind="judgment", id=judgment.pk, task_id=task_id, created=True)


def demonstration_submit(
    *,
    user: User,
    project_id: int,
    task_id: int,
    idempotency_key: str,
    text: str,
    flags: Any = None,
    time_spent_ms: int | None = None,
) -> SubmitResult:
    """Record the ideal answer the user wrote for a leased demonstration task."""
    key = _check_key(idempotency_key)
    try:
        return _demonstration_submit(
            user=user,
            project_id=project_id,
            task_id=task_id,
            key=key,
            text=text,
            flags=flags,
            time_spent_ms=time_spent_ms,
        )
    except IntegrityError:
        raise _key_conflict(user=user, key=key, task_id=task_id) from None


@transaction.atomic
def _demonstration_submit(
    *, user: User, project_id: int, task_id: int, key: str, text: str, flags: Any, time_spent_ms: Any
) -> SubmitResult:
    lease = _locked_lease(user=user, project_id=project_id, task_id=task_id)
    replay = _replay(lease, key)
    if replay is not None:
        return replay
    project = lease.project
    if project.task_kind != TaskKind.DEMONSTRATION:
        raise ValidationFailed("this project compares completions: submit a ranking, not a demonstration")
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise ValidationFailed("the demonstration is empty", details={"text": "required"})
    if len(text) > MAX_DEMONSTRATION:
        raise ValidationFailed(f"the demonstration is longer than {MAX_DEMONSTRATION} characters")
    options = parse_label_options(project.label_options, task_kind=project.task_kind)
    flags = flags or []
    if not isinstance(flags, list) or any(f not in options.flags for f in flags):
        raise ValidationFailed(f"flags must be a subset of {list(options.flags)}")
    now = timezone.now()
    fields = dict(
        project_id=project.pk,
        task_id=task_id,
        annotator_id=user.pk,
        assignment_id=lease.pk,
        text=text,
        flags=sorted(set(flags)),
        time_spent_ms=_time_spent(time_spent_ms),
        idempotency_key=key,
    )
    if lease.status == AssignmentStatus.SUBMITTED:
        old = Demonstration.objects.get(task_id=task_id, annotator_id=user.pk, is_live=True)
        Demonstration.objects.filter(pk=old.pk).update(is_live=False)
        new = Demonstration.objects.create(supersedes_id=old.pk, **fields)
        Assignment.objects.filter(pk=lease.pk).update(submission_key=key, finished_at=now)
        return SubmitResult(kind="demonstration", id=new.pk, task_id=task_id, created=True, superseded_id=old.pk)
    if lease.status == AssignmentStatus.SKIPPED:
        raise Conflict("you skipped this task; it cannot be answered now", code="skipped")
    counted = _claim(lease, now)
    demo = Demonstration.objects.create(**fields)
    _finish(lease=lease, now=now, counted=counted, status=AssignmentStatus.SUBMITTED, key=key, labelled=True)
    return SubmitResult(kind="demonstration", id=demo.pk, task_id=task_id, created=True)


def task_skip(
    *, user: User, project_id: int, task_id: int, idempotency_key: str, reason: str = "", flags: Any = None
) -> SubmitResult:
    """Give a leased task back without labelling it; it is recorded and never served to this user again."""
    key = _check_key(idempotency_key)
    try:
        return _task_skip(user=user, project_id=project_id, task_id=task_id, key=key, reason=reason, flags=flags)
    except IntegrityError:
        raise _key_conflict(user=user, key=key, task_id=task_id) from None


@transaction.atomic
def _task_skip(*, user: User, project_id: int, task_id: int, key: str, reason: str, flags: Any) -> SubmitResult:
    lease = _locked_lease(user=user, project_id=project_id, task_id=task_id)
    replay = _replay(lease, key)
    if replay is not None:
        return replay
    if lease.status in (AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED):
        raise Conflict(f"this task is already {lease.status}", code=str(lease.status))
    options = parse_label_options(lease.project.label_options, task_kind=lease.project.task_kind)
    flags = flags or []
    if not isinstance(flags, list) or any(f not in options.flags for f in flags):
        raise ValidationFailed(f"flags must be a subset of {list(options.flags)}")
    now = timezone.now()
    counted = lease.status == AssignmentStatus.ACTIVE and lease.expires_at > now
    skip = Judgment.objects.create(
        project_id=lease.project_id,
        task_id=task_id,
        annotator_id=user.pk,
        assignment_id=lease.pk,
        action=JudgmentAction.SKIP,
        ranking=[],
        rationale=(reason or "")[:2000],
        flags=sorted(set(flags)),
        idempotency_key=key,
        is_live=False,  # a skip is a record, not a verdict
    )
    _finish(lease=lease, now=now, counted=counted, status=AssignmentStatus.SKIPPED, key=key, labelled=False)
    return SubmitResult(kind="skip", id=skip.pk, task_id=task_id, created=True)
