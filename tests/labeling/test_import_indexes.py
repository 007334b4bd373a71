"""The foreign-key indexes the import no longer pays for (migration 0003) are covered by other indexes.

* every foreign key of a labeling table is the leading column of some index (a partial one only when its
  predicate is ``<column> IS NOT NULL``), so lookups by the key, cascades and Postgres' own foreign-key
  checks on delete still find an index;
* the single-column indexes the composite ones cover are gone;
* the queries that need them plan an index scan, with a parameter as Postgres' foreign-key checks do.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db

COVERED = {
    ("labeling_prompt", "project_id"): "prompt_project_extid",
    ("labeling_task", "project_id"): "task_unique_content_per_project",
    ("labeling_completion", "task_id"): "completion_unique_position",
    ("labeling_judgment", "project_id"): "judgment_export",
    ("labeling_task", "import_job_id"): "task_import_job",
    ("labeling_completion", "checkpoint_id"): "completion_checkpoint",
}


def _indexes(table: str) -> list[tuple[str, list[str], str | None]]:
    """(name, key columns, predicate or None) of each index of the table."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname,
                   array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n)
                         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.n),
                   pg_get_expr(x.indpred, x.indrelid)
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = %s::regclass
            """,
            [table],
        )
        return [(name, list(columns), predicate) for name, columns, predicate in cursor.fetchall()]


def _foreign_keys() -> list[tuple[str, str]]:
    out = []
    for model in apps.get_app_config("labeling").get_models():
        for field in model._meta.concrete_fields:
            if field.remote_field is not None and field.db_constraint:
                out.append((model._meta.db_table, field.column))
    return out


def test_every_foreign_key_leads_an_index(on_postgres):
    missing = []
    for table, column in _foreign_keys():
        leading = [
            (name, predicate)
            for name, columns, predicate in _indexes(table)
            if columns[0] == column and predicate in (None, f"({column} IS NOT NULL)")
        ]
        if not leading:
            missing.append(f"{table}.{column}")
    assert missing == []


def test_the_covered_single_column_indexes_are_gone(on_postgres):
    for (table, column), covering in COVERED.items():
        indexes = _indexes(table)
        assert [name for name, columns, _ in indexes if columns == [column] and name != covering] == []
        assert any(name == covering and columns[0] == column for name, columns, _ in indexes), covering


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("labeling_prompt", "project_id"),
        ("labeling_task", "project_id"),
        ("labeling_completion", "task_id"),
        ("labeling_judgment", "project_id"),
        ("labeling_task", "import_job_id"),
        ("labeling_completion", "checkpoint_id"),
    ],
)
def test_lookups_by_the_key_use_an_index(on_postgres, table, column):
    # The shape of Postgres' check when a referenced row is deleted (and of Django's cascade collector),
    # planned generically as a prepared statement is: the partial indexes must qualify for "= $1" too.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(
            f"PREPARE fk_lookup(bigint) AS SELECT 1 FROM ONLY {table} x WHERE $1 = {column} FOR KEY SHARE OF x"
        )
        try:
            cursor.execute("EXPLAIN EXECUTE fk_lookup(1)")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE fk_lookup")
    assert "Index" in plan and "Seq Scan" not in plan, plan
