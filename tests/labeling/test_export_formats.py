"""Export formats: each is loaded back by its real consumer (datasets, pandas, pyarrow, TRL's trainers).

The judgments come from the real services: leases + judgment_submit (with a correction and a skip), and the
import path for pre-labelled pairs. ``build_preference_project`` is shared with the API and snapshot tests.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import re
import tarfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from arbiter.errors import ValidationFailed
from labeling.exports import formats
from labeling.models import Judgment, Role, Task
from labeling.selectors.exports import export_prepare, export_records, export_rows, export_stream, export_write
from labeling.services.imports import tasks_import
from labeling.services.judgments import demonstration_submit, judgment_submit, task_skip
from labeling.services.leases import assignment_lease_next
from tests.factories import add_member, make_project, make_user

SYSTEM = "Be terse."
TRICKY = 'Line one, with a comma\nline two "quoted" — ünïcode, and a trailing\r\nCRLF'

# external id -> the task line
TASK_LINES = {
    "t0": {"prompt": 'Say hi to "Bob", please', "completions": [TRICKY, "Hi, Bob."]},
    "t1": {
        "prompt": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "completions": ["Paris.", "Lyon."],
    },
    "t2": {"prompt": "Pick a colour", "completions": ["Red.", "Blue."], "split": "eval"},
    "g0": {"prompt": "2 + 2?", "completions": ["5", "4"], "gold": {"ranking": [[1], [0]]}},
    "imp": {"prompt": "Imported question", "chosen": "Good answer.", "rejected": "Bad answer."},
}

# annotator -> external id -> verdict ("skip" skips the task)
VERDICTS: dict[str, dict[str, Any]] = {
    "ann": {
        "t0": {"ranking": [[0], [1]], "strength": 2},
        "t1": {"ranking": [[1], [0]], "strength": 3, "rationale": "Lyon is wrong", "flags": ["factual_error"]},
        "t2": {"ranking": [[0, 1]]},  # a tie
        "g0": {"ranking": [[1], [0]], "strength": 1},
        "imp": "skip",  # the imported pair keeps its single (imported) judgment
    },
    "bob": {
        "t0": {"ranking": [[0], [1]], "strength": 1},  # corrected below to strength 3
        "t1": {"ranking": [[0], [1]], "strength": 1},  # disagrees with ann
        "t2": "skip",
        "g0": {"ranking": [[1], [0]], "strength": 2},
        "imp": "skip",
    },
}


def task_ids(project) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {t.prompt.external_id: t.pk for t in Task.objects.filter(project=project).select_related("prompt")}


def judge(project, user, verdicts: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    """Lease tasks one by one through the real services and answer each as ``verdicts`` says."""
    by_id = {pk: ext for ext, pk in task_ids(project).items()}
    rng = random.Random(1)
    for _ in range(20):
        leased = assignment_lease_next(user=user, project_id=project.pk, count=1, rng=rng)
        if not leased:
            return
        task_id = leased[0].task_id
        verdict = verdicts[by_id[task_id]]
        key = f"{user.username}-{task_id}"
        if verdict == "skip":
            task_skip(user=user, project_id=project.pk, task_id=task_id, idempotency_key=key)
        else:
            judgment_submit(user=user, project_id=project.pk, task_id=task_id, idempotency_key=key, **verdict)
    raise AssertionError("the lease loop did not end")


def build_preference_project(slug: str = "prefs"):  # type: ignore[no-untyped-def]
    """A pairwise project, overlap 2, with live, superseded, skipped, tied, gold, eval and imported judgments."""
    manager = make_user("boss")
    project = make_project(manager=manager, overlap=2, gold_rate=1.0, slug=slug, name=slug)
    tasks_import(project=project, lines=[json.dumps({"id": ext, **line}) for ext, line in TASK_LINES.items()])
    users = {}
    for name, verdicts in VERDICTS.items():
        users[name] = make_user(name)
        add_member(project, users[name], Role.ANNOTATOR)
        judge(project, users[name], verdicts)
    t0 = task_ids(project)["t0"]
    correction = judgment_submit(
        user=users["bob"], project_id=project.pk, task_id=t0, idempotency_key="bob-fix", ranking=[[0], [1]], strength=3
    )
    assert correction.superseded_id is not None
    users["boss"] = manager
    users["vic"] = make_user("vic")
    add_member(project, users["vic"], Role.VIEWER)
    return project, users


def build_demonstration_project(slug: str = "demos"):  # type: ignore[no-untyped-def]
    manager = make_user("boss")
    project = make_project(manager=manager, task_kind="demonstration", slug=slug, name=slug)
    tasks_import(
        project=project,
        lines=[
            json.dumps({"id": "d0", "prompt": "Write a haiku about rain"}),
            json.dumps(
                {"id": "d1", "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]}
            ),
        ],
    )
    writer = make_user("ann")
    add_member(project, writer, Role.ANNOTATOR)
    texts = {"d0": "Rain on the tin roof,\nsoft drums", "d1": "Hello."}
    by_id = {pk: ext for ext, pk in task_ids(project).items()}
    for leased in assignment_lease_next(user=writer, project_id=project.pk, count=5):
        ext = by_id[leased.task_id]
        demonstration_submit(
            user=writer, project_id=project.pk, task_id=leased.task_id, idempotency_key=ext, text=texts[ext]
        )
    return project, texts


def write(project, fmt: str, path: Path, options=None, filters=None) -> int:  # type: ignore[no-untyped-def]
    spec = export_prepare(project=project, format=fmt, options=options, filters=filters)
    with path.open("wb") as out:
        return export_write(spec=spec, out=out)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def load_json_dataset(path: Path):  # type: ignore[no-untyped-def]
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(path.parent / "hf"))


# --- pure format code (no database) -----------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Q"}]


def _record(ranking, strength=None, **extra):  # type: ignore[no-untyped-def]
    return {
        "judgment_id": 7, "task_id": 3, "external_id": "x", "split": "train", "is_gold": False,
        "messages": MESSAGES, "completions": {0: {"text": "A", "model": "m0"}, 1: {"text": "B", "model": "m1"},
                                              2: {"text": "C", "model": "m2"}},
        "ranking": ranking, "all_bad": False, "strength": strength, "criteria": {}, "rationale": "", "flags": [],
        "time_spent_ms": None, "annotator": "ann", "source": "human", "created_at": "2024-01-01T00:00:00+00:00",
        **extra,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("ties", "expected"),
    [
        ("drop", [("C", "A", False), ("C", "B", False)]),
        ("both", [("C", "A", False), ("C", "B", False), ("A", "B", True), ("B", "A", True)]),
        ("keep", [("C", "A", False), ("C", "B", False), ("A", "B", True)]),
    ],
)
def test_a_ranking_of_three_gives_every_pair_and_ties_follow_the_policy(ties, expected):
    # C first, then A and B tied: C>A, C>B and the tie A=B.
    pairs = list(formats.preference_pairs([_record([[2], [0, 1]], strength=2)], ties=ties))
    assert sorted((p["chosen"], p["rejected"], p["tie"]) for p in pairs) == sorted(expected)
    assert all(p["margin"] == (0.0 if p["tie"] else 2.0) for p in pairs)
    rows = list(
        formats.format_rows(
            "trl",
            [_record([[2], [0, 1]], strength=2)],
            kind="comparison",
            options={"style": "standard", "ties": ties, "include_margin": True},
        )
    )
    assert len(rows) == len(expected)
    assert all(("tie" in row) == (ties == "keep") for row in rows)


@pytest.mark.parametrize(
    ("fmt", "options", "kind", "field", "message"),
    [
        ("jsonl", {}, "comparison", "format", "choose one of trl, hh-rlhf, openai-preference"),
        ("trl", {"ties": "sometimes"}, "comparison", "ties", "must be one of drop, both, keep"),
        ("trl", {"colour": "red"}, "comparison", "colour", "its options are style, ties, include_margin"),
        ("trl", {"include_margin": "maybe"}, "comparison", "include_margin", "must be true or false"),
        ("csv", {"style": "conversational"}, "comparison", "style", "must be one of standard for csv"),
        ("openai-preference", {"ties": "keep"}, "comparison", "ties", "must be one of drop, both"),
        ("openai-sft", {}, "comparison", "format", "formats for comparison data: trl"),
        ("trl", {}, "demonstration", "format", "formats for demonstration data: openai-sft"),
        ("parquet", {"ties": "drop"}, "demonstration", "ties", "not an option of parquet for demonstration data"),
    ],
)
def test_bad_formats_and_options_are_named(fmt, options, kind, field, message):
    with pytest.raises(formats.FormatError) as info:
        formats.options_parse(fmt, options, kind=kind)
    assert message in info.value.errors[field]


def test_options_from_strings_get_defaults():
    assert formats.options_parse("trl", {"include_margin": "1"}, kind="comparison") == {
        "style": "standard", "ties": "drop", "include_margin": True,
    }  # fmt: skip


def test_multi_turn_prompts_render_as_hh_transcripts_with_the_system_text_first():
    messages = [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye?"},
    ]
    assert formats.hh_prompt(messages) == "Sys.\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Bye?\n\nAssistant: "
    assert formats.prompt_text(messages) == formats.hh_prompt(messages)
    assert formats.prompt_text([{"role": "user", "content": "Only"}]) == "Only"


def test_a_ranked_position_missing_from_the_task_is_an_error_not_a_silent_row():
    record = _record([[3], [0]])
    with pytest.raises(formats.FormatError, match="ranks position 3"):
        list(formats.preference_pairs([record], ties="drop"))


def test_the_byte_stream_is_produced_before_the_records_are_all_read():
    consumed = []

    def records():  # type: ignore[no-untyped-def]
        for i in range(1000):
            consumed.append(i)
            yield _record([[0], [1]], strength=1, judgment_id=i)

    stream = formats.stream_export("trl", records(), kind="comparison",
                                   options={"style": "standard", "ties": "drop", "include_margin": False},
                                   flush_bytes=1)  # fmt: skip
    first = next(stream)
    assert json.loads(first) == {"prompt": "Q", "chosen": "A", "rejected": "B"}
    assert consumed == [0]
    stream.close()  # a hang-up closes the record generator too
    assert len(consumed) == 1


def test_parquet_is_written_in_row_groups(tmp_path):
    import pyarrow.parquet as pq

    columns = formats.table_columns(kind="comparison", options={"style": "conversational", "include_margin": True})
    rows = formats.format_rows(
        "parquet",
        [_record([[1], [0]], strength=3, judgment_id=i) for i in range(5)],
        kind="comparison",
        options={"style": "conversational", "ties": "drop", "include_margin": True},
    )
    path = tmp_path / "x.parquet"
    formats.write_parquet(rows, path, columns=columns, row_group_rows=2)
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 3
    table = parquet.read()
    assert table.num_rows == 5
    first = table.to_pylist()[0]
    assert first["prompt"] == MESSAGES
    assert first["chosen"] == [{"role": "assistant", "content": "B"}]
    assert first["margin"] == 3.0 and first["strength"] == 3 and first["chosen_position"] == 1


# --- exports read from the database ---------------------------------------------------------------


@pytest.mark.django_db
def test_only_live_label_judgments_are_exported_in_the_raw_judgments_format(tmp_path):
    project, _ = build_preference_project()
    path = tmp_path / "judgments.jsonl"
    n = write(project, "judgments", path)
    rows = read_jsonl(path)
    live = Judgment.objects.filter(project=project, is_live=True, action="label")
    assert n == len(rows) == live.count() == 8  # ann 4 (one a tie), bob 3 (one corrected), 1 imported
    exported = {r["judgment_id"] for r in rows}
    assert exported == set(live.values_list("id", flat=True))
    superseded = Judgment.objects.get(project=project, is_live=False, action="label")
    skips = set(Judgment.objects.filter(project=project, action="skip").values_list("id", flat=True))
    assert len(skips) == 3 and superseded.pk not in exported and not skips & exported
    ids = task_ids(project)
    bob_t0 = next(r for r in rows if r["annotator"] == "bob" and r["task_id"] == ids["t0"])
    assert bob_t0["strength"] == 3  # the correction, not the superseded verdict
    imported = next(r for r in rows if r["task_id"] == ids["imp"])
    assert imported["annotator"] is None and imported["source"] == "import"
    ann_t1 = next(r for r in rows if r["annotator"] == "ann" and r["task_id"] == ids["t1"])
    assert ann_t1["rationale"] == "Lyon is wrong" and ann_t1["flags"] == ["factual_error"]
    assert set(ann_t1) >= {"ranking", "criteria", "time_spent_ms", "created_at", "split", "is_gold", "external_id"}


@pytest.mark.django_db
def test_trl_standard_export_loads_with_datasets_and_keeps_text_intact(tmp_path):
    project, _ = build_preference_project()
    path = tmp_path / "trl.jsonl"
    n = write(project, "trl", path, options={"include_margin": True})
    dataset = load_json_dataset(path)
    assert dataset.num_rows == n == 7  # 8 live judgments, minus ann's tie on t2 (ties=drop)
    assert dataset.column_names == ["prompt", "chosen", "rejected", "margin"]
    rows = dataset.to_list()
    tricky = [r for r in rows if r["chosen"] == TRICKY]
    assert len(tricky) == 2 and tricky[0]["prompt"] == 'Say hi to "Bob", please'
    assert sorted(r["margin"] for r in tricky) == [2.0, 3.0]
    multi = next(r for r in rows if r["chosen"] == "Lyon.")
    assert multi["prompt"] == f"{SYSTEM}\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Capital of France?\n\nAssistant: "
    imported = next(r for r in rows if r["chosen"] == "Good answer.")
    assert imported["rejected"] == "Bad answer." and imported["margin"] == 0.0


@pytest.mark.django_db
def test_trl_conversational_export_with_ties_kept(tmp_path):
    project, _ = build_preference_project()
    path = tmp_path / "trl.jsonl"
    write(project, "trl", path, options={"style": "conversational", "ties": "keep"})
    rows = load_json_dataset(path).to_list()
    assert len(rows) == 8
    tie = [r for r in rows if r["tie"]]
    assert len(tie) == 1
    assert tie[0]["prompt"] == [{"role": "user", "content": "Pick a colour"}]
    assert {tie[0]["chosen"][0]["content"], tie[0]["rejected"][0]["content"]} == {"Red.", "Blue."}
    multi = next(r for r in rows if r["chosen"] == [{"role": "assistant", "content": "Paris."}])
    assert multi["prompt"][0] == {"role": "system", "content": SYSTEM} and len(multi["prompt"]) == 4


@pytest.mark.django_db
def test_ties_both_writes_each_tie_both_ways(tmp_path):
    project, _ = build_preference_project()
    path = tmp_path / "hh.jsonl"
    write(project, "hh-rlhf", path, options={"ties": "both"})
    rows = read_jsonl(path)
    assert len(rows) == 9
    red_blue = [r for r in rows if r["chosen"].startswith("\n\nHuman: Pick a colour")]
    assert sorted((r["chosen"].rsplit(" ", 1)[1], r["rejected"].rsplit(" ", 1)[1]) for r in red_blue) == [
        ("Blue.", "Red."),
        ("Red.", "Blue."),
    ]


@pytest.mark.django_db
def test_hh_rlhf_transcripts(tmp_path):
    project, _ = build_preference_project()
    path = tmp_path / "hh.jsonl"
    write(project, "hh-rlhf", path)
    dataset = load_json_dataset(path)
    assert dataset.column_names == ["chosen", "rejected"]
    turn = re.compile(r"\n\n(Human|Assistant): ")
    for row in dataset:
        for text in (row["chosen"], row["rejected"]):
            roles = turn.findall(text)
            assert roles[0] == "Human" and roles[-1] == "Assistant"
            assert all(a != b for a, b in itertools.pairwise(roles))  # turns alternate
            assert text.startswith("\n\nHuman: ") or text.startswith(SYSTEM + "\n\nHuman: ")
    multi = next(r for r in dataset if r["chosen"].endswith("Lyon."))
    assert (
        multi["chosen"]
        == f"{SYSTEM}\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Capital of France?\n\nAssistant: Lyon."
    )
    assert multi["rejected"].endswith("\n\nAssistant: Paris.")


@pytest.mark.django_db
def test_openai_preference_shape(tmp_path):
    project, _ = build_preference_project()
    path = tmp_path / "openai.jsonl"
    write(project, "openai-preference", path)
    rows = read_jsonl(path)
    assert len(rows) == 7
    for row in rows:
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        assert set(row["input"]) == {"messages"} and row["input"]["messages"][-1]["role"] == "user"
        for key in ("preferred_output", "non_preferred_output"):
            assert len(row[key]) == 1 and row[key][0]["role"] == "assistant" and row[key][0]["content"]
    assert load_json_dataset(path).num_rows == 7


@pytest.mark.django_db
def test_openai_sft_demonstrations(tmp_path):
    project, texts = build_demonstration_project()
    path = tmp_path / "sft.jsonl"
    assert write(project, "openai-sft", path) == 2
    rows = load_json_dataset(path).to_list()
    by_last = {r["messages"][-1]["content"]: r["messages"] for r in rows}
    assert by_last[texts["d0"]] == [
        {"role": "user", "content": "Write a haiku about rain"},
        {"role": "assistant", "content": texts["d0"]},
    ]
    assert by_last[texts["d1"]][0] == {"role": "system", "content": SYSTEM}


@pytest.mark.django_db
def test_csv_survives_newlines_commas_and_quotes(tmp_path):
    import pandas as pd

    project, _ = build_preference_project()
    path = tmp_path / "pairs.csv"
    n = write(project, "csv", path, options={"include_margin": True})
    frame = pd.read_csv(path, keep_default_na=False)
    assert len(frame) == n == 7
    assert list(frame.columns[:4]) == ["prompt", "chosen", "rejected", "margin"]
    assert TRICKY in set(frame["chosen"])
    assert 'Say hi to "Bob", please' in set(frame["prompt"])
    assert set(frame["annotator"]) == {"ann", "bob", ""}  # the imported pair has no annotator
    assert frame["is_gold"].dtype == bool


@pytest.mark.django_db
def test_csv_of_demonstrations(tmp_path):
    import pandas as pd

    project, texts = build_demonstration_project()
    path = tmp_path / "demos.csv"
    write(project, "csv", path)
    frame = pd.read_csv(path)
    assert set(frame["completion"]) == set(texts.values())
    assert list(frame.columns[:2]) == ["prompt", "completion"]


@pytest.mark.django_db
def test_parquet_export(tmp_path):
    import pyarrow.parquet as pq

    project, _ = build_preference_project()
    path = tmp_path / "pairs.parquet"
    n = write(project, "parquet", path, options={"style": "conversational"})
    table = pq.read_table(path)
    assert table.num_rows == n == 7
    row = next(r for r in table.to_pylist() if r["chosen"][0]["content"] == TRICKY)
    assert row["prompt"] == [{"role": "user", "content": 'Say hi to "Bob", please'}]
    assert row["chosen_position"] == 0 and row["split"] == "train" and row["source"] == "human"


@pytest.mark.django_db
def test_hf_dataset_folder_loads_with_load_from_disk(tmp_path):
    import datasets

    project, _ = build_preference_project()
    path = tmp_path / "pairs.tar"
    n = write(project, "hf-dataset", path, options={"style": "conversational", "include_margin": True})
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "out", filter="data")
    dataset = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))
    assert dataset.num_rows == n == 7
    assert {"prompt", "chosen", "rejected", "margin", "task_id", "annotator"} <= set(dataset.column_names)
    assert dataset[0]["prompt"][-1]["role"] == "user"


@pytest.mark.django_db
def test_an_empty_export_is_a_valid_empty_file(tmp_path):
    import pyarrow.parquet as pq

    project = make_project(slug="empty", name="empty")
    assert write(project, "trl", tmp_path / "e.jsonl") == 0
    assert (tmp_path / "e.jsonl").read_bytes() == b""
    assert write(project, "parquet", tmp_path / "e.parquet") == 0
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
    assert write(project, "csv", tmp_path / "e.csv") == 0
    assert (tmp_path / "e.csv").read_text().startswith("prompt,chosen,rejected")


# --- filters ---------------------------------------------------------------------------------------


def _pairs(project, **filters):  # type: ignore[no-untyped-def]
    spec = export_prepare(project=project, format="judgments", filters=filters)
    return [(r["annotator"], r["external_id"]) for r in export_rows(spec=spec)]


@pytest.mark.django_db
def test_filters():
    project, _ = build_preference_project()
    everything = _pairs(project)
    assert len(everything) == 8
    assert {a for a, _ in _pairs(project, annotators=["bob"])} == {"bob"}
    assert len(_pairs(project, annotators="ann,bob")) == 7
    assert all(ext != "g0" for _, ext in _pairs(project, exclude_gold="true"))
    assert _pairs(project, split="eval") == [("ann", "t2")]
    assert _pairs(project, source="import") == [(None, "imp")]
    # t0 and g0 are unanimous (1.0), t1 split (0.5); t2 and imp have one judgment each (unknown: left out)
    assert sorted({ext for _, ext in _pairs(project, min_agreement=0.9)}) == ["g0", "t0"]
    assert sorted({ext for _, ext in _pairs(project, min_agreement="0.5")}) == ["g0", "t0", "t1"]
    assert sorted({ext for _, ext in _pairs(project, min_agreement=0)}) == ["g0", "t0", "t1"]


@pytest.mark.django_db
def test_date_filters_bound_created_at():
    from datetime import UTC, datetime, timedelta

    project, _ = build_preference_project()
    old = datetime(2024, 3, 10, 15, 30, tzinfo=UTC)
    t1 = task_ids(project)["t1"]
    Judgment.objects.filter(task_id=t1).update(created_at=old)
    assert {e for _, e in _pairs(project, date_to="2024-03-10")} == {"t1"}  # a date includes the whole day
    assert _pairs(project, date_to="2024-03-09") == []
    assert {e for _, e in _pairs(project, date_from="2024-03-10", date_to="2024-03-10T15:30:00Z")} == {"t1"}
    assert _pairs(project, date_to="2024-03-10T15:29:59Z") == []
    assert "t1" not in {e for _, e in _pairs(project, date_from=(old + timedelta(days=1)).date().isoformat())}
    assert len(_pairs(project, date_from="2024-03-11")) == 6


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_to": "2024-02-30"}, "date_to"),
        ({"date_from": "2024-05-02", "date_to": "2024-05-01"}, "date_to"),
        ({"annotators": 5}, "annotators"),
        ({"exclude_gold": "perhaps"}, "exclude_gold"),
        ({"min_agreement": "1.5"}, "min_agreement"),
        ({"min_agreement": "high"}, "min_agreement"),
        ({"min_agreement": True}, "min_agreement"),
        ({"split": "test"}, "split"),
        ({"source": "robot"}, "source"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_filters_name_the_filter(filters, field):
    project = make_project(slug="f", name="f")
    with pytest.raises(ValidationFailed) as info:
        export_prepare(project=project, format="trl", filters=filters)
    assert field in info.value.details
    assert field in info.value.message


@pytest.mark.django_db
def test_unknown_annotator_and_impossible_combinations_are_refused():
    project, _ = build_preference_project()
    with pytest.raises(ValidationFailed, match="no user named 'nobody'"):
        export_prepare(project=project, format="trl", filters={"annotators": ["ann", "nobody"]})
    demos, _ = build_demonstration_project()
    with pytest.raises(ValidationFailed, match="min_agreement"):
        export_prepare(project=demos, format="openai-sft", filters={"min_agreement": 0.5})
    with pytest.raises(ValidationFailed, match="formats for demonstration data"):
        export_prepare(project=demos, format="trl")
    no_scale = make_project(slug="noscale", name="noscale", label_options={"strength_min": None, "strength_max": None})
    with pytest.raises(ValidationFailed, match="no strength scale"):
        export_prepare(project=no_scale, format="trl", options={"include_margin": True})


# --- constant memory: lazy, chunked reads ------------------------------------------------------------


@pytest.mark.django_db
def test_records_are_read_lazily_one_chunk_at_a_time():
    project, _ = build_preference_project()
    spec = export_prepare(project=project, format="trl")
    with CaptureQueriesContext(connection) as queries:
        records = export_records(spec=spec, chunk_size=2)
        assert len(queries) == 0  # nothing is read before the first record is asked for
        next(records)
        after_first = len(queries)
        assert after_first == 2  # one page of judgments (joined), one of their completions
        assert "LIMIT 2" in queries[0]["sql"]
        rest = list(records)
    assert len(rest) == 7
    assert len(queries) == 2 * 4 + 1  # 4 pages of 2 judgments, each with its completions, and the final empty page


@pytest.mark.django_db
def test_query_count_grows_per_chunk_not_per_row():
    project, _ = build_preference_project()
    tasks_import(
        project=project,
        lines=[json.dumps({"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"}) for i in range(60)],
    )
    spec = export_prepare(project=project, format="trl", filters={"min_agreement": 0})
    with CaptureQueriesContext(connection) as big_chunks:
        # Only t0, t1 and g0 have two judgments (a known agreement): 2 pairs each.
        assert len(list(export_rows(spec=spec, chunk_size=500))) == 6
    assert len(big_chunks) == 3  # judgments, completions, agreement: once for all 68 judgments
    spec = export_prepare(project=project, format="trl")
    with CaptureQueriesContext(connection) as small_chunks:
        assert len(list(export_rows(spec=spec, chunk_size=10))) == 67
    assert len(small_chunks) == 2 * 7  # 68 judgments in 7 pages of 10: two queries per page


@pytest.mark.django_db
def test_the_http_byte_stream_starts_before_the_database_is_read_through():
    project, _ = build_preference_project()
    spec = export_prepare(project=project, format="trl")
    with CaptureQueriesContext(connection) as queries:
        stream = export_stream(spec=spec, chunk_size=2, flush_bytes=1)
        try:
            first = next(stream)
            assert json.loads(first)["prompt"]
            if connection.vendor == "postgresql":  # the fast path: one streamed statement, logged when it ends
                assert [q["sql"].split()[0] for q in queries] == ["SAVEPOINT"]
            else:
                assert len(queries) == 2  # only the first page was read
        finally:
            stream.close()  # a stream is read to its end or closed: until then it holds the connection


# --- real consumers: TRL's trainers on a tiny model --------------------------------------------------

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A 2-layer Llama and a ByteLevel BPE tokenizer trained here on the test texts (no hub)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [json.dumps(line) for line in TASK_LINES.values()] + [TRICKY, SYSTEM, "Rain on the tin roof"] * 3
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>"],
    )  # fmt: skip
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _cpu_args(output_dir: Path) -> dict[str, Any]:
    return dict(
        output_dir=str(output_dir), use_cpu=True, bf16=False, report_to="none", max_steps=1,
        per_device_train_batch_size=2, max_length=128, save_strategy="no", logging_steps=1, seed=0,
        activation_checkpointing=False, dataloader_num_workers=0,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db
def test_trl_export_trains_a_reward_model_and_dpo_for_a_step(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    project, _ = build_preference_project()
    standard = tmp_path / "standard.jsonl"
    write(project, "trl", standard, options={"include_margin": True})
    conversational = tmp_path / "conversational.jsonl"
    write(project, "trl", conversational, options={"style": "conversational"})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    reward = RewardTrainer(
        model=AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1),
        args=RewardConfig(**_cpu_args(tmp_path / "rm")),
        train_dataset=load_json_dataset(standard),
        processing_class=tokenizer,
    )
    assert {"chosen_ids", "rejected_ids", "margin"} <= set(reward.train_dataset.column_names)
    assert reward.train_dataset.num_rows == 7  # no pair was dropped for length
    assert sorted(set(reward.train_dataset["margin"])) == [0.0, 1.0, 2.0, 3.0]
    result = reward.train()
    assert result.global_step == 1 and result.training_loss > 0

    dpo = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        ref_model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=DPOConfig(**_cpu_args(tmp_path / "dpo")),
        train_dataset=load_json_dataset(conversational),
        processing_class=tokenizer,
    )
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dpo.train_dataset.column_names)
    assert dpo.train_dataset.num_rows == 7
    prompts = [tokenizer.decode(ids) for ids in dpo.train_dataset["prompt_ids"]]
    assert any(p.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>") for p in prompts)  # the chat template ran
    assert dpo.train().global_step == 1


@pytest.mark.slow
@pytest.mark.django_db
def test_openai_sft_export_trains_sft_for_a_step(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    project, _ = build_demonstration_project()
    path = tmp_path / "sft.jsonl"
    write(project, "openai-sft", path)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=SFTConfig(**_cpu_args(tmp_path / "sft")),
        train_dataset=load_json_dataset(path),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    assert "input_ids" in trainer.train_dataset.column_names
    assert trainer.train_dataset.num_rows == 2
    assert trainer.train().global_step == 1


def test_tar_members_are_deterministic(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "b.txt").write_text("b")
    (folder / "a.txt").write_text("a")
    out = io.BytesIO()
    formats.write_tar(folder, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["dataset", "dataset/a.txt", "dataset/b.txt"]
    assert {(m.mtime, m.uid, m.uname) for m in members} == {(0, 0, "")}


# --- JSONL lines written from texts (the Postgres fast path's writer) ------------------------------------------

LINE_TEXTS = [
    'He said "hi" \\ C:\\path\\n\nnew\tline\r\n\x00\x01\x07\x08\x0b\x0c\x1b\x1f\x7f é 中文 🎉 👩‍💻 \u2028\u2029 \ufeff',
    "",
    "plain",
    "</script> {\"json\": [1, 2]} 'single'",
]
LINE_MESSAGES = [
    [{"role": "user", "content": LINE_TEXTS[0]}],
    [],
    [{"role": "system", "content": "S \u2028"}, {"role": "system", "content": 'two "'},
     {"role": "user", "content": "U"}, {"role": "assistant", "content": "A\\"},
     {"role": "user", "content": "again 🎉"}],
    [{"role": "user", "content": "u"}, {"role": "tool", "content": ""}, {"role": "system", "content": "late"}],
    [{"role": "assistant", "content": "only an assistant"}],
]  # fmt: skip


def test_json_string_escapes_every_code_point_as_json_dumps_does():
    for start in range(0, 0x110000, 0x800):
        block = "".join(chr(c) for c in range(start, start + 0x800) if not 0xD800 <= c < 0xE000)
        assert formats.json_string(block) == json.dumps(block, ensure_ascii=False).encode()
        for c in block[:64]:  # and alone, each escape on its own
            assert formats.json_string(c) == json.dumps(c, ensure_ascii=False).encode()
    for text in LINE_TEXTS:
        assert formats.json_string(text) == json.dumps(text, ensure_ascii=False).encode()


def _line_record(messages: list[dict[str, str]], ranking: list[list[int]], strength: int | None) -> dict[str, Any]:
    completions = {i: {"text": LINE_TEXTS[i % len(LINE_TEXTS)] + f" #{i}", "model": "m"} for i in range(3)}
    return {
        "judgment_id": 7, "task_id": 3, "external_id": "e", "split": "train", "is_gold": False, "messages": messages,
        "completions": completions, "ranking": ranking, "all_bad": False, "strength": strength, "criteria": {},
        "rationale": "", "flags": [], "time_spent_ms": None, "annotator": "ann", "source": "human",
        "created_at": "2024-01-01T00:00:00+00:00",
    }  # fmt: skip


def _jsonl(format_name: str, record: dict[str, Any], *, kind: str, options: dict[str, Any]) -> bytes:
    """What the Python path writes for one record."""
    return b"".join(formats.jsonl_chunks(formats.format_rows(format_name, [record], kind=kind, options=options)))


@pytest.mark.parametrize("format_name", ["trl", "hh-rlhf", "openai-preference"])
def test_pair_lines_are_the_bytes_of_jsonl_chunks(format_name):
    rankings = [[[0], [1]], [[1], [0]], [[0, 1]], [[2], [0, 1]], [[1], [2], [0]], [[0, 1, 2]]]
    spec_options = formats.FORMATS[format_name].options
    for values in itertools.product(*spec_options.values()):
        options = dict(zip(spec_options, values, strict=True))
        lines = formats.PairLines(format_name, options)
        for messages, ranking, strength in itertools.product(LINE_MESSAGES, rankings, [None, 2, -3, 0]):
            record = _line_record(messages, ranking, strength)
            expected = _jsonl(format_name, record, kind=formats.COMPARISON, options=options)
            if len(messages) == 1 and messages[0]["role"] == "user":  # the fast path's common prompt
                prompt = lines.user_prompt(messages[0]["content"])
                assert prompt == lines.prompt(messages)
            else:
                prompt = lines.prompt(messages)
            got = b"".join(
                lines.line(prompt, record["completions"][c]["text"], record["completions"][r]["text"], strength, tie)
                for c, r, tie in formats.ranking_lines(ranking, ties=options["ties"])
            )
            assert got == expected, (options, messages, ranking, strength)
            for line in got.splitlines():
                json.loads(line)


def test_demonstration_lines_are_the_bytes_of_jsonl_chunks():
    for messages, text in itertools.product(LINE_MESSAGES, LINE_TEXTS):
        record = {"messages": messages, "text": text}
        expected = _jsonl("openai-sft", record, kind=formats.DEMONSTRATION, options={})
        assert formats.demonstration_line(messages, text) == expected


def test_ranking_lines_follow_the_ties_policy():
    assert formats.ranking_lines([[2], [0, 1]], ties="drop") == [(2, 0, False), (2, 1, False)]
    assert formats.ranking_lines([[2], [0, 1]], ties="keep") == [(0, 1, True), (2, 0, False), (2, 1, False)]
    assert formats.ranking_lines([[2], [0, 1]], ties="both") == [(0, 1, True), (1, 0, True), (2, 0, False),
                                                                 (2, 1, False)]  # fmt: skip
    assert formats.ranking_lines([[0, 1]], ties="drop") == []
