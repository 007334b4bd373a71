"""arbiter.sqlrows: rows of hand-written SQL become the same instances the ORM returns."""

from __future__ import annotations

import pytest
from django.db import connection

from arbiter.sqlrows import ModelColumns
from labeling.models import Project
from tests.factories import make_project

pytestmark = pytest.mark.django_db


def test_a_row_becomes_the_instance_the_orm_returns():
    made = make_project(label_options={"allow_tie": True, "criteria": ["honesty"]}, overlap=3)
    columns = ModelColumns(Project, "p")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 7, {columns.select} FROM {Project._meta.db_table} p WHERE p.id = %s", [made.pk])
        row = cursor.fetchone()
    built = columns.build(row, offset=1)
    orm = Project.objects.get(pk=made.pk)
    for field in Project._meta.concrete_fields:
        assert getattr(built, field.attname) == getattr(orm, field.attname), field.name
    assert isinstance(built.label_options, dict)  # JSON decoded, as the ORM does
    assert built.created_at.tzinfo is not None  # datetimes converted (SQLite stores text)
    assert not built._state.adding and built._state.db == "default"
