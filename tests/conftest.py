"""Shared fixtures. The suite runs on Postgres when DATABASE_URL points at it (CI always does)."""

from __future__ import annotations

import os

import pytest
from django.db import connection


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test marked postgres must not silently pass on SQLite: fail loudly if CI lacks Postgres.
    if os.environ.get("ARBITER_REQUIRE_POSTGRES") == "1" and not os.environ.get("DATABASE_URL", "").startswith(
        "postgres"
    ):
        raise pytest.UsageError("ARBITER_REQUIRE_POSTGRES=1 but DATABASE_URL is not a postgres:// URL")


@pytest.fixture
def on_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs Postgres (set DATABASE_URL=postgres://...)")


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACTS_ROOT = tmp_path / "artifacts"


@pytest.fixture(params=["one-statement", "general"])
def hot_path(request, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """Run a test on each implementation of next-task and submit.

    On Postgres the common next-task and submit are single statements (``leases._lease_next_postgres``,
    ``judgments._judgment_submit_one_statement``); the general path (every database, every case) is
    forced with the modules' ``PORTABLE_ONLY`` switch, so CI, which runs on Postgres, covers both.
    """
    from labeling.services import judgments, leases

    general = request.param == "general"
    monkeypatch.setattr(leases, "PORTABLE_ONLY", general)
    monkeypatch.setattr(judgments, "PORTABLE_ONLY", general)
    return str(request.param)
