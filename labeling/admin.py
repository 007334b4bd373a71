"""Django admin for the labeling models: a support tool for staff, read-mostly.

Judgments, demonstrations and snapshots are immutable records (corrections are new rows), so
their admin pages are read-only; projects and memberships are editable, but the normal way to
change them is the manager pages or the API, which go through the services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from labeling.models import (
    Assignment,
    Completion,
    DatasetSnapshot,
    Demonstration,
    GoldAnswer,
    ImportJob,
    Judgment,
    Membership,
    Project,
    Prompt,
    Task,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "slug", "task_kind", "overlap", "gold_rate", "created_at"]
    list_filter = ["task_kind"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at", "updated_at", "created_by"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "user", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user", "project"]


@admin.register(Prompt)
class PromptAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "external_id", "split", "created_at"]
    list_filter = ["split", "project"]
    search_fields = ["external_id"]


class CompletionInline(admin.TabularInline):
    model = Completion
    extra = 0
    fields = ("position", "model_name", "text")
    readonly_fields = ("position", "model_name", "text")
    can_delete = False


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "is_gold", "n_completions", "judgment_count", "is_complete", "leases_out"]
    list_filter = ["is_gold", "is_complete", "project"]
    inlines = [CompletionInline]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "task_id", "annotator", "status", "leased_at", "expires_at", "finished_at"]
    list_filter = ["status", "project"]
    search_fields = ["annotator__username"]


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "task_id", "annotator", "action", "source", "ranking", "is_live", "created_at"]
    list_filter = ["action", "source", "is_live", "project"]
    search_fields = ["annotator__username", "idempotency_key"]


@admin.register(Demonstration)
class DemonstrationAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "task_id", "annotator", "source", "is_live", "created_at"]
    list_filter = ["source", "is_live", "project"]
    search_fields = ["annotator__username", "idempotency_key"]


@admin.register(GoldAnswer)
class GoldAnswerAdmin(admin.ModelAdmin):
    list_display = ["id", "task_id", "ranking", "all_bad"]
    raw_id_fields = ["task"]


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "filename", "status", "processed_lines", "total_lines", "created_at"]
    list_filter = ["status", "project"]


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "version", "name", "format", "row_count", "sha256", "created_at"]
    list_filter = ["format", "project"]
