"""Drop the single-column indexes of foreign keys whose column leads another index of the same table,
and index two nullable foreign keys only where they are set.

Covered (the other index serves lookups by the key, cascades and foreign-key checks alike):

* ``Prompt.project``     by ``prompt_project_extid (project_id, external_id)``
* ``Task.project``       by ``task_unique_content_per_project (project_id, content_hash)`` and ``task_queue``
* ``Completion.task``    by ``completion_unique_position (task_id, position)``
* ``Judgment.project``   by ``judgment_export (project_id, is_live, action, id)``

Partial (``WHERE ... IS NOT NULL``): ``Task.import_job`` (NULL for inline imports) and ``Completion.checkpoint``
(NULL for imported completions). Lookups by a value (``= x``, ``IN (...)``, the foreign-key checks when an
import job or a checkpoint is deleted) imply ``IS NOT NULL``, so they still use the index.

Only the indexes change. ``AlterField`` would also drop and re-create each foreign-key constraint (re-checking
every row under a lock), so the field change is recorded in the state and the database only loses the index,
found the way Django's own ``AlterField`` finds it.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Index

FIELDS = [
    ("completion", "checkpoint"),
    ("completion", "task"),
    ("judgment", "project"),
    ("prompt", "project"),
    ("task", "import_job"),
    ("task", "project"),
]


def _fk_index_names(schema_editor: Any, model: Any, column: str) -> list[str]:
    meta_index_names = {index.name for index in model._meta.indexes}
    return schema_editor._constraint_names(model, [column], index=True, type_=Index.suffix, exclude=meta_index_names)


def drop_fk_indexes(apps: Any, schema_editor: Any) -> None:
    for model_name, field_name in FIELDS:
        model = apps.get_model("labeling", model_name)
        column = model._meta.get_field(field_name).column
        for name in _fk_index_names(schema_editor, model, column):
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_fk_indexes(apps: Any, schema_editor: Any) -> None:
    for model_name, field_name in FIELDS:
        model = apps.get_model("labeling", model_name)
        field = model._meta.get_field(field_name)
        if not _fk_index_names(schema_editor, model, field.column):
            schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0002_demonstration_export_index"),
        ("training", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_fk_indexes, create_fk_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="completion",
                    name="checkpoint",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="completions",
                        to="training.checkpoint",
                    ),
                ),
                migrations.AlterField(
                    model_name="completion",
                    name="task",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="completions",
                        to="labeling.task",
                    ),
                ),
                migrations.AlterField(
                    model_name="judgment",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="judgments",
                        to="labeling.project",
                    ),
                ),
                migrations.AlterField(
                    model_name="prompt",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="prompts",
                        to="labeling.project",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="import_job",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="labeling.importjob",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tasks",
                        to="labeling.project",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="completion",
            index=models.Index(
                condition=models.Q(("checkpoint__isnull", False)), fields=["checkpoint"], name="completion_checkpoint"
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("import_job__isnull", False)), fields=["import_job"], name="task_import_job"
            ),
        ),
    ]
