"""Input parsing and output shapes for the labeling API. No business rules here: services own them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from labeling.models import DatasetSnapshot, ImportJob, Membership, Project, Role, TaskKind


class ProjectOut(serializers.ModelSerializer[Project]):
    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "slug",
            "guidelines",
            "task_kind",
            "label_options",
            "overlap",
            "lease_seconds",
            "gold_rate",
            "created_at",
            "updated_at",
        ]


class ProjectCreateIn(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100, required=False, default="")
    guidelines = serializers.CharField(required=False, allow_blank=True, default="")
    task_kind = serializers.ChoiceField(choices=TaskKind.choices, default=TaskKind.PAIRWISE)
    label_options = serializers.JSONField(required=False, default=dict)
    overlap = serializers.IntegerField(required=False, default=1)
    lease_seconds = serializers.IntegerField(required=False, default=600)
    gold_rate = serializers.FloatField(required=False, default=0.0)


class ProjectUpdateIn(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    guidelines = serializers.CharField(required=False, allow_blank=True)
    task_kind = serializers.ChoiceField(choices=TaskKind.choices, required=False)
    label_options = serializers.JSONField(required=False)
    overlap = serializers.IntegerField(required=False)
    lease_seconds = serializers.IntegerField(required=False)
    gold_rate = serializers.FloatField(required=False)


class MembershipOut(serializers.ModelSerializer[Membership]):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]


class MembershipIn(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class NextIn(serializers.Serializer[Any]):
    count = serializers.IntegerField(min_value=1, max_value=10, required=False, default=1)
    render = serializers.BooleanField(required=False, default=False)


class JudgmentIn(serializers.Serializer[Any]):
    idempotency_key = serializers.CharField(max_length=80)
    ranking = serializers.JSONField(required=False, default=None)
    all_bad = serializers.BooleanField(required=False, default=False)
    strength = serializers.IntegerField(required=False, allow_null=True, default=None)
    criteria = serializers.JSONField(required=False, default=dict)
    rationale = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    flags = serializers.ListField(child=serializers.CharField(max_length=40), required=False, default=list)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0)


class DemonstrationIn(serializers.Serializer[Any]):
    idempotency_key = serializers.CharField(max_length=80)
    text = serializers.CharField(trim_whitespace=False)
    flags = serializers.ListField(child=serializers.CharField(max_length=40), required=False, default=list)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0)


class SkipIn(serializers.Serializer[Any]):
    idempotency_key = serializers.CharField(max_length=80)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    flags = serializers.ListField(child=serializers.CharField(max_length=40), required=False, default=list)


class ImportJobOut(serializers.ModelSerializer[ImportJob]):
    class Meta:
        model = ImportJob
        fields = [
            "id",
            "project_id",
            "filename",
            "status",
            "total_lines",
            "processed_lines",
            "created_tasks",
            "duplicate_tasks",
            "imported_judgments",
            "errors",
            "message",
            "created_at",
            "started_at",
            "finished_at",
        ]


class SnapshotOut(serializers.ModelSerializer[DatasetSnapshot]):
    class Meta:
        model = DatasetSnapshot
        fields = [
            "id",
            "project_id",
            "version",
            "name",
            "format",
            "options",
            "filters",
            "row_count",
            "sha256",
            "size_bytes",
            "created_at",
        ]


class TokenIn(serializers.Serializer[Any]):
    username = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False)
