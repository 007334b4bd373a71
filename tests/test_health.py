"""arbiter/health.py: ``/healthz`` answers 200 when the database does, 503 when it does not."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError
from django.test import RequestFactory

from arbiter import health


@pytest.mark.django_db
def test_healthz_ok():
    response = health.healthz(RequestFactory().get("/healthz"))
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_503_when_the_database_fails(monkeypatch):
    def broken_cursor():  # type: ignore[no-untyped-def]
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = health.healthz(RequestFactory().get("/healthz"))
    assert response.status_code == 503
    assert json.loads(response.content) == {"status": "error", "database": "error"}


def test_healthz_only_answers_safe_methods():
    assert health.healthz(RequestFactory().post("/healthz")).status_code == 405
