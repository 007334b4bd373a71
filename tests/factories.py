"""factory_boy factories and small builders shared by the tests."""

from __future__ import annotations

import json
from typing import Any

import factory
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from labeling.models import Membership, Project, Role
from labeling.services.imports import tasks_import
from labeling.services.projects import project_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-123456")


def make_user(username: str, **kwargs: Any):  # type: ignore[no-untyped-def]
    return UserFactory(username=username, **kwargs)


def token_for(user) -> str:  # type: ignore[no-untyped-def]
    return Token.objects.get_or_create(user=user)[0].key


def make_project(
    *, manager=None, task_kind: str = "pairwise", overlap: int = 1, gold_rate: float = 0.0, **kwargs: Any
) -> Project:  # type: ignore[no-untyped-def]
    manager = manager or make_user("manager")
    name = kwargs.pop("name", f"P-{Project.objects.count() + 1}")
    return project_create(
        name=name, created_by=manager, task_kind=task_kind, overlap=overlap, gold_rate=gold_rate, **kwargs
    )


def add_member(project: Project, user, role: str = Role.ANNOTATOR) -> Membership:  # type: ignore[no-untyped-def]
    return Membership.objects.create(project=project, user=user, role=role)


def pairwise_lines(n: int, *, start: int = 0, gold_every: int = 0) -> list[str]:
    lines = []
    for i in range(start, start + n):
        row: dict[str, Any] = {
            "id": f"t{i}",
            "prompt": f"Question {i}: how do I reverse a list in Python?",
            "completions": [
                {"text": f"Use `reversed()` (answer {i}).", "model": "m-a"},
                {"text": f"Use slicing `[::-1]` (answer {i}).", "model": "m-b"},
            ],
        }
        if gold_every and i % gold_every == 0:
            row["gold"] = {"ranking": [[1], [0]]}
        lines.append(json.dumps(row))
    return lines


def seed_tasks(project: Project, n: int, **kwargs: Any) -> None:
    tasks_import(project=project, lines=pairwise_lines(n, **kwargs))
