"""Index active leases on their own; drop the assignment indexes other indexes cover.

* ``assignment_active (annotator, project, expires_at) WHERE status = 'active'``: what every next-task asks
  (the user's live leases). The table grows by a row per judgment while the active rows stay a handful per
  annotator; with ``(status, expires_at)`` the planner read every active lease of every annotator.
* ``assignment_active_expiry (expires_at) WHERE status = 'active'`` replaces ``(status, expires_at)`` for the
  sweep of expired leases.
* The single-column indexes of ``Assignment.task`` and ``Assignment.annotator`` are covered by
  ``assignment_unique_task_annotator (task, annotator)`` and ``assignment_annotator_status (annotator, ...)``.
  Only the indexes are dropped (as in 0003): ``AlterField`` would re-create the foreign keys, re-checking
  every row under a lock.
"""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Index

COVERED = [("assignment", "task"), ("assignment", "annotator")]


def _fk_index_names(schema_editor: Any, model: Any, column: str) -> list[str]:
    meta_index_names = {index.name for index in model._meta.indexes}
    return schema_editor._constraint_names(model, [column], index=True, type_=Index.suffix, exclude=meta_index_names)


def drop_covered_indexes(apps: Any, schema_editor: Any) -> None:
    for model_name, field_name in COVERED:
        model = apps.get_model("labeling", model_name)
        for name in _fk_index_names(schema_editor, model, model._meta.get_field(field_name).column):
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_covered_indexes(apps: Any, schema_editor: Any) -> None:
    for model_name, field_name in COVERED:
        model = apps.get_model("labeling", model_name)
        field = model._meta.get_field(field_name)
        if not _fk_index_names(schema_editor, model, field.column):
            schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0003_fk_indexes_covered"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="assignment",
            name="assignment_status_expiry",
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_covered_indexes, create_covered_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="assignment",
                    name="annotator",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="assignments",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="assignment",
                    name="task",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="assignments",
                        to="labeling.task",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(
                condition=models.Q(("status", "active")),
                fields=["annotator", "project", "expires_at"],
                name="assignment_active",
            ),
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(
                condition=models.Q(("status", "active")), fields=["expires_at"], name="assignment_active_expiry"
            ),
        ),
    ]
