from django.contrib import admin

from training.models import Checkpoint


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "kind", "path", "base", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "path"]
    readonly_fields = ["metadata", "created_at"]
