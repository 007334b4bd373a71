"""arbiter/env.py: strict parsing of settings from the environment; every error names its variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from arbiter.env import env_bool, env_int, env_list, env_str, parse_database_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "url",
    ["mysql://user@db/arbiter", "redis://127.0.0.1:6379/0", "postgress://postgres@db/arbiter", "arbiter.sqlite3"],
)
def test_database_url_bad_scheme_names_the_variable(url):
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL=.*unsupported scheme"):
        parse_database_url("DATABASE_URL", url, base_dir=ROOT)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgres://postgres@127.0.0.1:5432/", "database name is missing"),
        ("postgres://postgres@127.0.0.1:port/arbiter", "port is not a number"),
        ("sqlite:///", "needs a file path"),
    ],
)
def test_database_url_incomplete_names_the_variable(url, problem):
    with pytest.raises(ImproperlyConfigured, match=rf"^DATABASE_URL=.*{problem}"):
        parse_database_url("DATABASE_URL", url, base_dir=ROOT)


def test_database_url_postgres_and_sqlite(tmp_path):
    pg = parse_database_url("DATABASE_URL", "postgres://u:p%40ss@db.local:6543/arbiter?sslmode=require", base_dir=ROOT)
    assert pg["ENGINE"] == "django.db.backends.postgresql"
    assert (pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "arbiter",
        "u",
        "p@ss",
        "db.local",
        "6543",
    )
    assert pg["OPTIONS"] == {"sslmode": "require"}
    relative = parse_database_url("DATABASE_URL", "sqlite:///var/db.sqlite3", base_dir=tmp_path)
    assert relative["ENGINE"] == "django.db.backends.sqlite3" and relative["NAME"] == str(tmp_path / "var/db.sqlite3")
    absolute = parse_database_url("DATABASE_URL", f"sqlite:///{tmp_path}/abs.sqlite3", base_dir=ROOT)
    assert absolute["NAME"] == str(tmp_path / "abs.sqlite3")


@pytest.mark.parametrize("value", ["abc", "1.5", "", "ten"])
def test_bad_int_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("ARBITER_INLINE_IMPORT_MAX_LINES", value)
    with pytest.raises(ImproperlyConfigured, match=r"^ARBITER_INLINE_IMPORT_MAX_LINES=.*not an integer"):
        env_int("ARBITER_INLINE_IMPORT_MAX_LINES", 2000, minimum=0)


def test_int_below_minimum_names_the_variable(monkeypatch):
    monkeypatch.setenv("ARBITER_MAX_UPLOAD_BYTES", "0")
    with pytest.raises(ImproperlyConfigured, match=r"^ARBITER_MAX_UPLOAD_BYTES=0 must be >= 1"):
        env_int("ARBITER_MAX_UPLOAD_BYTES", 10, minimum=1)


def test_int_default_and_value(monkeypatch):
    monkeypatch.delenv("ARBITER_TEST_INT", raising=False)
    assert env_int("ARBITER_TEST_INT", 7) == 7
    monkeypatch.setenv("ARBITER_TEST_INT", " 12 ")
    assert env_int("ARBITER_TEST_INT", 7) == 12


@pytest.mark.parametrize("value", ["maybe", "2", "tru", "enabled"])
def test_bad_bool_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("DJANGO_DEBUG", value)
    with pytest.raises(ImproperlyConfigured, match=r"^DJANGO_DEBUG=.*is not a boolean"):
        env_bool("DJANGO_DEBUG", False)


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("off", False)]
)
def test_bool_values(monkeypatch, value, expected):
    monkeypatch.setenv("DJANGO_DEBUG", value)
    assert env_bool("DJANGO_DEBUG", not expected) is expected


def test_required_str_and_list(monkeypatch):
    monkeypatch.delenv("ARBITER_TEST_REQUIRED", raising=False)
    with pytest.raises(ImproperlyConfigured, match=r"^ARBITER_TEST_REQUIRED must be set"):
        env_str("ARBITER_TEST_REQUIRED")
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", " a.example , ,b.example ")
    assert env_list("DJANGO_ALLOWED_HOSTS", []) == ["a.example", "b.example"]


# --- the real settings module, started in a fresh interpreter ------------------------------------


def _setup_django(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "ARBITER_"))}
    clean.update(
        {
            "DJANGO_SETTINGS_MODULE": "arbiter.settings",
            "ARBITER_VAR_DIR": str(tmp_path / "var"),
            "PYTHONPATH": str(ROOT),
        }
    )
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = _setup_django(tmp_path, DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr


def test_bad_values_stop_start_up_naming_the_variable(tmp_path):
    result = _setup_django(tmp_path, DJANGO_DEBUG="1", DATABASE_URL="mysql://db/arbiter")
    assert result.returncode != 0 and "DATABASE_URL='mysql://db/arbiter'" in result.stderr
    result = _setup_django(tmp_path, DJANGO_DEBUG="1", ARBITER_INLINE_IMPORT_MAX_LINES="lots")
    assert result.returncode != 0 and "ARBITER_INLINE_IMPORT_MAX_LINES='lots' is not an integer" in result.stderr
    result = _setup_django(tmp_path, DJANGO_DEBUG="sometimes")
    assert result.returncode != 0 and "DJANGO_DEBUG='sometimes' is not a boolean" in result.stderr


def test_debug_starts_without_secret_key(tmp_path):
    result = _setup_django(tmp_path, DJANGO_DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
