"""Model instances from hand-written SQL, for the few statements on the annotator's hot path.

The ORM spends most of a small request building and compiling SQL (41 % of the server's CPU on the
annotator loop, ``bench/README.md``). The hot statements are therefore written once as SQL strings,
and their rows become complete model instances here: every concrete column selected, the backend's
and the field's converters applied in the compiler's order, then ``Model.from_db``, exactly the
instance a queryset would have returned (JSON decoded, SQLite datetimes parsed, ``_state`` set).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, Generic, TypeVar

from django.db import connection, transaction
from django.db.models import Model

M = TypeVar("M", bound=Model)


class ModelColumns(Generic[M]):
    """Every concrete column of ``model`` under a table alias, and how to turn them back into an instance.

    Build one per (model, alias) at module level; the SQL fragment and converters are computed on first use,
    for the database in use (``connection.vendor``).
    """

    def __init__(self, model: type[M], alias: str) -> None:
        self.model = model
        self.alias = alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)

    @cached_property
    def select(self) -> str:
        """``alias."col1", alias."col2", ...`` in field order."""
        qn = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{qn(f.column)}" for f in self.fields)

    @cached_property
    def _converters(self) -> list[tuple[int, list[tuple[Callable[..., Any], Any]]]]:
        out = []
        for i, field in enumerate(self.fields):
            col = field.get_col(self.alias)
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                out.append((i, [(c, col) for c in found]))
        return out

    def build(self, row: Sequence[Any], offset: int = 0) -> M:
        """The instance held in ``row[offset : offset + width]``."""
        values = list(row[offset : offset + self.width])
        for i, converters in self._converters:
            for converter, col in converters:
                values[i] = converter(values[i], col, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


def statement_scope() -> contextlib.AbstractContextManager[Any]:
    """Where to run one self-contained write statement.

    In autocommit a single statement is already its own transaction: no ``BEGIN``/``COMMIT`` round trips.
    Inside a caller's transaction, a savepoint, so that a failing statement (say a unique violation the
    caller turns into a 409) leaves the caller's transaction usable, as ``@transaction.atomic`` would.
    """
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
