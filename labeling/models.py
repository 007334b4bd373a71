"""The labeling data model: projects, prompts, tasks, completions, leases, judgments.

Models hold data and database constraints only; every rule lives in ``services.py`` (writes) and
``selectors.py`` (reads). See docs/ARCHITECTURE.md for the diagram.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class TaskKind(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise (A vs B)"
    RANKING = "ranking", "Ranking (K completions)"
    DEMONSTRATION = "demonstration", "Demonstration (write the ideal answer)"


class Role(models.TextChoices):
    MANAGER = "manager", "Manager"
    ANNOTATOR = "annotator", "Annotator"
    VIEWER = "viewer", "Viewer"


class Split(models.TextChoices):
    TRAIN = "train", "train"
    EVAL = "eval", "eval"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    task_kind = models.CharField(max_length=20, choices=TaskKind.choices, default=TaskKind.PAIRWISE)
    # Validated by labeling.options.LabelOptions (allow_tie, allow_both_bad, strength scale,
    # criteria, rationale_required, flags, completions_per_task).
    label_options = models.JSONField(default=dict)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per task.")
    lease_seconds = models.PositiveIntegerField(default=600)
    gold_rate = models.FloatField(default=0.0, help_text="Share of served tasks that are gold, 0..1.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_min_1"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_0_1"),
            models.CheckConstraint(condition=Q(lease_seconds__gte=10), name="project_lease_min_10s"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_project_user")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.project_id}:{self.role}"


class Prompt(models.Model):
    """A conversation so far: ``messages`` is a list of ``{"role", "content"}`` (multi-turn context)."""

    # No index of its own: prompt_project_extid starts with project (see the note on Task.project).
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts", db_index=False)
    messages = models.JSONField()
    external_id = models.CharField(max_length=200, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.TRAIN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "external_id"], name="prompt_project_extid")]

    def __str__(self) -> str:
        return f"prompt {self.pk} ({self.external_id or 'no id'})"


class Task(models.Model):
    """One prompt with its completions, to be judged ``project.overlap`` times.

    ``judgment_count``/``is_complete``/``leases_out``/``lease_horizon`` are kept by the services
    under a row lock; they live on the task row so the lease query's re-check under
    ``FOR UPDATE SKIP LOCKED`` sees them (see docs/ARCHITECTURE.md, "Leases").
    """

    # Foreign keys whose column leads a composite index or unique constraint of the table get no index of
    # their own (db_index=False): that index serves every lookup by the key, cascades and the foreign-key
    # checks included, and a bulk import does not pay for a redundant one per row.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks", db_index=False)
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tasks")
    content_hash = models.CharField(max_length=64)
    is_gold = models.BooleanField(default=False)
    n_completions = models.PositiveSmallIntegerField(default=2)
    judgment_count = models.PositiveIntegerField(default=0)
    is_complete = models.BooleanField(default=False)
    leases_out = models.PositiveIntegerField(default=0)
    lease_horizon = models.DateTimeField(null=True, blank=True)
    # Indexed only where set (task_import_job): NULL for every task imported inline.
    import_job = models.ForeignKey(
        "ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="task_unique_content_per_project"),
        ]
        indexes = [
            models.Index(fields=["project", "is_gold", "is_complete", "judgment_count", "id"], name="task_queue"),
            models.Index(fields=["import_job"], condition=Q(import_job__isnull=False), name="task_import_job"),
        ]

    def __str__(self) -> str:
        return f"task {self.pk}"


class Completion(models.Model):
    """A model's answer to a task's prompt. ``position`` is the canonical order (as imported)."""

    # No index of its own: completion_unique_position starts with task.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="completions", db_index=False)
    position = models.PositiveSmallIntegerField()
    text = models.TextField()
    model_name = models.CharField(max_length=200, blank=True, default="")
    # Set when a registered checkpoint generated this completion (generation back into tasks).
    # Indexed only where set (completion_checkpoint): imported completions have none.
    checkpoint = models.ForeignKey(
        "training.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="completions",
        db_index=False,
    )
    generation_params = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["task_id", "position"]
        constraints = [models.UniqueConstraint(fields=["task", "position"], name="completion_unique_position")]
        indexes = [
            models.Index(fields=["checkpoint"], condition=Q(checkpoint__isnull=False), name="completion_checkpoint")
        ]

    def __str__(self) -> str:
        return f"completion {self.task_id}.{self.position}"


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "active"
    SUBMITTED = "submitted", "submitted"
    SKIPPED = "skipped", "skipped"
    EXPIRED = "expired", "expired"


class Assignment(models.Model):
    """The lease of one task to one annotator. One row per (task, annotator), ever.

    A lease that expires goes back to the pool; if the same annotator is served the task
    again the row is re-activated.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    # No single-column indexes: assignment_unique_task_annotator leads with task and
    # assignment_annotator_status with annotator, and serve those lookups (see Meta).
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    status = models.CharField(max_length=12, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # The idempotency key of the submission that closed this lease: a replay is recognised
    # from the lease row alone, without a lookup.
    submission_key = models.CharField(max_length=80, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="assignment_unique_task_annotator"),
        ]
        indexes = [
            models.Index(fields=["annotator", "project", "status"], name="assignment_annotator_status"),
            # Active leases only (a few per annotator, while the table grows by one row per judgment): the
            # annotator's live leases on every next-task, and the sweep of expired ones.
            models.Index(
                fields=["annotator", "project", "expires_at"],
                condition=Q(status="active"),
                name="assignment_active",
            ),
            models.Index(fields=["expires_at"], condition=Q(status="active"), name="assignment_active_expiry"),
        ]

    def __str__(self) -> str:
        return f"lease of task {self.task_id} to user {self.annotator_id} ({self.status})"


class JudgmentAction(models.TextChoices):
    LABEL = "label", "label"
    SKIP = "skip", "skip"


class Source(models.TextChoices):
    HUMAN = "human", "human"
    IMPORT = "import", "import"


class Judgment(models.Model):
    """An annotator's verdict on a task. Immutable: a correction is a new row that supersedes this one.

    ``ranking`` lists tiers best-first; each tier is a list of completion *positions* (the task's
    canonical order, ``Completion.position``), so a tie is a tier of several (``[[0, 1]]`` in a
    pair). ``all_bad`` marks "both/all bad". ``criteria`` maps criterion name to
    ``{position: score}``.
    """

    # No index of its own: judgment_export starts with project.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judgments", db_index=False)
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="judgments"
    )
    assignment = models.ForeignKey(Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=8, choices=JudgmentAction.choices, default=JudgmentAction.LABEL)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.HUMAN)
    ranking = models.JSONField(default=list)
    all_bad = models.BooleanField(default=False)
    strength = models.SmallIntegerField(null=True, blank=True)
    criteria = models.JSONField(default=dict, blank=True)
    rationale = models.TextField(blank=True, default="")
    flags = models.JSONField(default=list, blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=80, blank=True, default="")
    is_live = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            # At most one live judgment per task and annotator: double submission is impossible.
            models.UniqueConstraint(
                fields=["task", "annotator"],
                condition=Q(is_live=True) & Q(annotator__isnull=False),
                name="judgment_one_live_per_task_annotator",
            ),
            models.UniqueConstraint(
                fields=["annotator", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="judgment_unique_idempotency_key",
            ),
        ]
        indexes = [models.Index(fields=["project", "is_live", "action", "id"], name="judgment_export")]

    def __str__(self) -> str:
        return f"judgment {self.pk} on task {self.task_id}"


class Demonstration(models.Model):
    """An ideal answer written by an annotator for a demonstration task (SFT data). Immutable like judgments."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="demonstrations")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="demonstrations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="demonstrations"
    )
    assignment = models.ForeignKey(Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.HUMAN)
    text = models.TextField()
    flags = models.JSONField(default=list, blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=80, blank=True, default="")
    is_live = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task", "annotator"],
                condition=Q(is_live=True) & Q(annotator__isnull=False),
                name="demonstration_one_live_per_task_annotator",
            ),
            models.UniqueConstraint(
                fields=["annotator", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="demonstration_unique_idempotency_key",
            ),
        ]
        indexes = [models.Index(fields=["project", "is_live", "id"], name="demonstration_export")]

    def __str__(self) -> str:
        return f"demonstration {self.pk} on task {self.task_id}"


class GoldAnswer(models.Model):
    """The known-correct verdict on a gold task, used to score annotators."""

    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="gold")
    ranking = models.JSONField()
    all_bad = models.BooleanField(default=False)
    note = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"gold answer for task {self.task_id}"


class JobStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class ImportJob(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    filename = models.CharField(max_length=255)
    file_path = models.CharField(max_length=500)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.PENDING)
    total_lines = models.PositiveIntegerField(default=0)
    processed_lines = models.PositiveIntegerField(default=0)
    created_tasks = models.PositiveIntegerField(default=0)
    duplicate_tasks = models.PositiveIntegerField(default=0)
    imported_judgments = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"import {self.pk} ({self.status})"


class DatasetSnapshot(models.Model):
    """An immutable, versioned export that training runs cite by id (and check by sha256)."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="snapshots")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True, default="")
    format = models.CharField(max_length=40)
    options = models.JSONField(default=dict, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    file_path = models.CharField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="snapshot_unique_version")]

    def __str__(self) -> str:
        return f"{self.project_id} v{self.version} ({self.format})"
