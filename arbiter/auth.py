"""API token authentication in one statement written once.

DRF's ``TokenAuthentication`` is right about everything but its cost: it builds and compiles an ORM
query (``Token`` joined with ``User``) on every request, 15 % of the server's CPU on the annotator
loop (``bench/README.md``). This class keeps its behaviour (same header and parsing, same errors, the
same ``(user, token)`` pair, inactive users refused) and reads the token and its user with one SQL
string built once per process; ``arbiter.sqlrows`` turns the row into complete model instances.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from arbiter.sqlrows import ModelColumns, hot_cursor


@cache
def _plan(vendor: str) -> tuple[ModelColumns[Any], ModelColumns[Token], str]:
    user_model = get_user_model()
    users, tokens = ModelColumns(user_model, "u"), ModelColumns(Token, "t")
    qn = connection.ops.quote_name
    sql = (
        f"SELECT {users.select}, {tokens.select} FROM {qn(Token._meta.db_table)} t "
        f"JOIN {qn(user_model._meta.db_table)} u "
        f"ON u.{qn(user_model._meta.pk.column)} = t.{qn(Token._meta.get_field('user').column)} "
        f"WHERE t.{qn(Token._meta.pk.column)} = %s"
    )
    return users, tokens, sql


class FastTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``, read in one statement (see the module docstring)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        users, tokens, sql = _plan(connection.vendor)
        with hot_cursor() as cursor:
            cursor.execute(sql, [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = users.build(row)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token = tokens.build(row, users.width)
        token.user = user
        return user, token
