"""Import: every error case names its line, nothing is half-written, duplicates are dropped."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from arbiter.errors import ValidationFailed
from labeling.models import Completion, GoldAnswer, Judgment, Prompt, Task
from labeling.services.imports import tasks_import
from tests.factories import make_project, pairwise_lines

pytestmark = pytest.mark.django_db

GOOD = json.dumps({"prompt": "Say hi", "completions": ["hi", "hello"]})


def _errors(project, lines):
    with pytest.raises(ValidationFailed) as info:
        tasks_import(project=project, lines=lines)
    return {e["line"]: e["message"] for e in info.value.details["errors"]}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "each line must be a JSON object"),
        (json.dumps({"completions": ["a", "b"]}), "missing 'prompt'"),
        (json.dumps({"prompt": "", "completions": ["a", "b"]}), "prompt is empty"),
        (json.dumps({"prompt": "q", "completions": ["a"]}), "exactly 2 completions, got 1"),
        (json.dumps({"prompt": "q", "completions": ["a", "a"]}), "same text"),
        (json.dumps({"prompt": "q", "completions": ["a", ""]}), "completions[1] text is empty"),
        (json.dumps({"prompt": "q", "completions": ["a", 5]}), "completions[1] must be a string or an object"),
        (json.dumps({"prompt": "q", "chosen": "a"}), "needs both 'chosen' and 'rejected'"),
        (json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "completions": ["a", "b"]}), "not both"),
        (json.dumps({"prompt": [{"role": "bot", "content": "x"}], "completions": ["a", "b"]}), "role must be one of"),
        (
            json.dumps(
                {
                    "prompt": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
                    "completions": ["a", "b"],
                }
            ),
            "last message must be from the user",
        ),
        (json.dumps({"prompt": "q", "completions": ["a", "b"], "split": "test"}), "'split' must be"),
        (json.dumps({"prompt": "q", "completions": ["a", "b"], "colour": 1}), "unknown keys ['colour']"),
        (json.dumps({"prompt": "q", "completions": ["a", "b"], "gold": {"ranking": [[0]]}}), "gold: ranking must"),
        (json.dumps({"prompt": "q", "completions": ["a", "b"], "metadata": [1]}), "'metadata' must be an object"),
    ],
)
def test_each_bad_line_is_reported_with_its_number_and_nothing_is_written(line, message):
    project = make_project()
    errors = _errors(project, [GOOD, line, json.dumps({"prompt": "other", "completions": ["x", "y"]})])
    assert list(errors) == [2]
    assert message in errors[2]
    assert Task.objects.count() == Prompt.objects.count() == Completion.objects.count() == 0


def test_all_bad_lines_are_listed_not_just_the_first():
    project = make_project()
    errors = _errors(project, ["{", GOOD, "", "[]", json.dumps({"prompt": "q"})])
    assert sorted(errors) == [1, 4, 5]  # the blank line 3 is ignored, line numbers stay true


def test_bad_utf8_is_reported():
    project = make_project()
    errors = _errors(project, [GOOD.encode(), b'{"prompt": "\xff\xfe"}\n'])
    assert "not valid UTF-8" in errors[2]


def test_empty_file_is_an_error():
    project = make_project()
    with pytest.raises(ValidationFailed, match="no tasks"):
        tasks_import(project=project, lines=["", "  "])


@pytest.mark.parametrize("writer", ["orm", "copy"])
def test_import_writes_prompts_tasks_completions_judgments_and_gold(writer, request):
    if writer == "copy":
        request.getfixturevalue("on_postgres")
    project = make_project()
    lines = [
        json.dumps(
            {
                "id": "x1",
                "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
                "completions": [{"text": "4", "model": "m1"}, {"text": "5", "model": "m2"}],
                "metadata": {"topic": "math"},
                "split": "eval",
            }
        ),
        json.dumps({"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"}),
        json.dumps({"prompt": "Sky colour?", "completions": ["blue", "green"], "gold": {"ranking": [[0], [1]]}}),
    ]
    result = tasks_import(project=project, lines=lines, writer=writer)
    assert (result.created_tasks, result.imported_judgments, result.gold_tasks) == (3, 1, 1)
    first = Task.objects.get(prompt__external_id="x1")
    assert first.prompt.messages[0] == {"role": "system", "content": "Be brief."}
    assert first.prompt.split == "eval" and first.prompt.metadata == {"topic": "math"}
    assert [(c.position, c.text, c.model_name) for c in first.completions.all()] == [(0, "4", "m1"), (1, "5", "m2")]
    pair = Task.objects.get(prompt__messages__0__content="Capital of France?")
    judgment = Judgment.objects.get(task=pair)
    texts = {c.position: c.text for c in pair.completions.all()}
    assert texts[judgment.ranking[0][0]] == "Paris" and texts[judgment.ranking[1][0]] == "Lyon"
    assert judgment.source == "import" and judgment.annotator_id is None
    assert pair.judgment_count == 1 and pair.is_complete  # overlap 1: a seeded pair is already labelled
    gold = Task.objects.get(is_gold=True)
    assert GoldAnswer.objects.get(task=gold).ranking == [[0], [1]]


def test_duplicates_inside_the_file_and_against_the_project_are_skipped():
    project = make_project()
    first = tasks_import(project=project, lines=pairwise_lines(5) + pairwise_lines(2))
    assert (first.created_tasks, first.duplicate_tasks) == (5, 2)
    again = tasks_import(project=project, lines=pairwise_lines(7))
    assert (again.created_tasks, again.duplicate_tasks) == (2, 5)
    assert Task.objects.filter(project=project).count() == 7


def test_ranking_project_takes_2_to_k_completions():
    project = make_project(task_kind="ranking", label_options={"completions_per_task": 3})
    ok = json.dumps({"prompt": "q", "completions": ["a", "b", "c"]})
    too_many = json.dumps({"prompt": "q2", "completions": ["a", "b", "c", "d"]})
    assert _errors(project, [ok, too_many]) == {2: "a ranking task needs 2..3 completions, got 4"}
    assert tasks_import(project=project, lines=[ok]).created_tasks == 1
    assert Task.objects.get().n_completions == 3


def test_demonstration_project_takes_prompts_only():
    project = make_project(task_kind="demonstration")
    errors = _errors(project, [json.dumps({"prompt": "q"}), json.dumps({"prompt": "q2", "completions": ["a", "b"]})])
    assert "prompts only" in errors[2]


def test_import_command_reports_lines_and_imports(tmp_path, capsys):
    project = make_project()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(GOOD + "\n{oops\n")
    with pytest.raises(CommandError, match="nothing was imported: 1 bad line"):
        call_command("import_tasks", str(bad), project=project.slug)
    assert "bad.jsonl:2: invalid JSON" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(pairwise_lines(3)) + "\n")
    out = io.StringIO()
    call_command("import_tasks", str(good), project=str(project.pk), stdout=out)
    assert "imported 3 tasks" in out.getvalue()
    with pytest.raises(CommandError, match="no project"):
        call_command("import_tasks", str(good), project="nope")
