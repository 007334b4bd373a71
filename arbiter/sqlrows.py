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
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
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


def hot_cursor() -> Any:
    """A Django cursor for the hot statements: on Postgres, bound server-side and prepared once per connection.

    Django's own cursors bind parameters client-side (the SQL text is rebuilt with literals and planned
    anew on every call) and Django turns psycopg's prepared statements off. For the three statements
    every annotator request runs, this cursor binds parameters server-side and lets psycopg prepare the
    statement on its first execution on a connection, so Postgres parses and plans it once per
    connection rather than once per request. Only cursors made here prepare anything: psycopg's
    client-binding cursors, which the ORM and everything else use, ignore the connection's
    ``prepare_threshold``. Statements written for it must cast parameters whose type Postgres cannot
    infer (``%(x)s::smallint``). A transaction-mode pooler in front of Postgres needs prepared-statement
    support (PgBouncer >= 1.21, ``max_prepared_statements``).

    Elsewhere (SQLite) it is ``connection.cursor()``. The wrapper is Django's, so the query log,
    execute wrappers and ``CaptureQueriesContext`` see these statements like any other.
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    # Defined only under psycopg 3 (which requirements.txt pins), so the stubs do not know it.
    from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = 0
    with connection.wrap_database_errors:
        cursor = ServerBindingCursor(raw)
        connection.validate_thread_sharing()
        return _LoggedHotCursor(cursor, connection) if connection.queries_logged else connection.make_cursor(cursor)


class _LoggedHotCursor(CursorDebugWrapper):
    """Django's query log reads the SQL from the client-side query text, which a server-binding cursor has not:
    log the statement with its parameters rendered instead (DEBUG and tests only)."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        shown = connection.ops.compose_sql(sql, params) if params is not None else sql  # type: ignore[attr-defined]
        with self.debug_sql(shown, params):
            return CursorWrapper.execute(self, sql, params)
