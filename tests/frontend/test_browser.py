"""End-to-end: a real Chromium drives the pages against a live server and a real Postgres/SQLite DB.

Covers: sign-in, keyboard-only labelling (10 pairwise + 3 ranking tasks), drag-and-drop ranking,
a demonstration with live preview, a reload and a lost response that must not lose or double a
judgment, the manager pages (create, import with progress and line errors, members, export,
dashboard), and an annotator refused a manager page.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from labeling.models import Demonstration, Judgment, JudgmentAction, Project, Role, Task
from labeling.services.imports import tasks_import
from labeling.services.judgments import judgment_submit
from labeling.services.leases import assignment_lease_next, display_order
from tests.factories import add_member, make_project, make_user, seed_tasks
from tests.frontend.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GUIDELINES = """# How to judge

Prefer the response that is **correct**, then the one that is *clear*.

```python
def reverse(xs):
    return xs[::-1]
```
"""


def js_errors(page: Any) -> list[str]:
    """Uncaught exceptions and console errors, minus the browser's own 'failed to load' notes for 4xx/5xx."""
    return [e for e in page.errors if "Failed to load resource" not in e]


def current_task(page: Any) -> int:
    return int(page.locator("#task").get_attribute("data-task-id"))


def wait_new_task(page: Any, previous: int | None) -> int:
    page.wait_for_function(
        "prev => { const t = document.querySelector('#task');"
        " return t && !t.hidden && t.dataset.taskId && Number(t.dataset.taskId) !== prev; }",
        arg=previous or -1,
    )
    page.wait_for_timeout(350)  # the page ignores a submit within 300 ms of a task appearing (double press)
    return current_task(page)


def wait_all_saved(page: Any, timeout: float = 15_000) -> None:
    page.wait_for_function(
        "() => { const s = document.querySelector('#queue-status');"
        " return s.dataset.pending === '0' && s.dataset.failed === '0'; }",
        timeout=timeout,
    )


def focused(page: Any) -> str:
    return page.evaluate(
        "() => { const el = document.activeElement;"
        " return el ? (el.dataset.choice || el.dataset.index || el.id || el.tagName) : ''; }"
    )


def ranking_lines(n: int, k: int = 4) -> list[str]:
    return [
        json.dumps(
            {
                "id": f"r{i}",
                "prompt": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": f"Name a prime number, attempt {i}."},
                    {"role": "assistant", "content": "Which range?"},
                    {"role": "user", "content": "Below 20."},
                ],
                "completions": [f"Answer {j} to {i}: {[2, 3, 5, 7, 11, 13, 17, 19][j]}" for j in range(k)],
            }
        )
        for i in range(n)
    ]


def expected_positions(task_id: int, user_id: int, display_tiers: list[list[int]], n: int) -> list[list[int]]:
    order = display_order(task_id=task_id, user_id=user_id, n=n)
    return [sorted(order[i] for i in tier) for tier in display_tiers]


@pytest.fixture
def labelling_world(db: Any) -> dict[str, Any]:
    manager = make_user("maria")
    pairwise = make_project(manager=manager, name="Pairs", guidelines=GUIDELINES)
    seed_tasks(pairwise, 14)
    ranking = make_project(
        manager=manager,
        name="Ranks",
        task_kind="ranking",
        label_options={
            "completions_per_task": 4,
            "criteria": [{"name": "accuracy", "label": "Accuracy", "min": 1, "max": 5}],
        },
    )
    tasks_import(project=ranking, lines=ranking_lines(6))
    ann = make_user("annie")
    add_member(pairwise, ann)
    add_member(ranking, ann)
    return {"manager": manager, "pairwise": pairwise, "ranking": ranking, "ann": ann}


def test_sign_in_and_label_by_keyboard_only(live_server, page, shot, labelling_world):
    w = labelling_world
    url = live_server.url
    page.goto(f"{url}/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    shot(page, "01-sign-in")
    sign_in(page, url, "annie")
    assert page.get_by_role("heading", name="My projects").is_visible()
    assert page.get_by_text("Pairs").first.is_visible() and page.get_by_text("Ranks").first.is_visible()
    shot(page, "02-my-projects")

    # --- 10 pairwise tasks, keyboard only --------------------------------------------------
    page.goto(f"{url}/projects/{w['pairwise'].pk}/label")
    task_id = wait_new_task(page, None)
    assert focused(page) == "a"  # focus starts on the first control
    page.keyboard.press("g")  # guidelines open with G
    assert page.locator("#guidelines").evaluate("d => d.open")
    assert page.locator("#guidelines .highlight").count() == 1  # server-side Pygments
    shot(page, "03-pairwise-label")
    page.keyboard.press("g")
    expected: dict[int, tuple[list[list[int]], int]] = {}
    seen = []
    for i in range(10):
        seen.append(task_id)
        choice = "1" if i % 3 else "2"
        page.keyboard.press("Enter")  # nothing chosen yet: refused with a message, nothing queued
        assert "Choose A or B" in page.locator("#form-error").inner_text()
        page.keyboard.press(choice)
        page.keyboard.press("e" if i % 2 else "w")
        if i == 4:
            page.locator("#rationale").focus()
            page.keyboard.type("B explains slicing; A is vague.")
            page.keyboard.press("Escape")  # leave the field; single keys work again
            page.keyboard.press("w")
        a, b = (c.position for c in _display(task_id, w["ann"].pk, 2))
        winner, loser = (a, b) if choice == "1" else (b, a)
        expected[task_id] = ([[winner], [loser]], 3 if i % 2 else 2)
        if i == 3:
            shot(page, "04-pairwise-chosen")
        page.keyboard.press("Enter")
        task_id = wait_new_task(page, task_id)
        assert focused(page) == "a"  # focus never lost: the new task's first control
    wait_all_saved(page)
    assert page.locator("#session-count").inner_text() == "10"
    rows = Judgment.objects.filter(annotator=w["ann"], project=w["pairwise"], action=JudgmentAction.LABEL)
    assert rows.count() == 10
    for j in rows:
        ranking, strength = expected[j.task_id]
        assert j.ranking == ranking and j.strength == strength and j.is_live
        assert j.time_spent_ms is not None and j.time_spent_ms > 0
        assert len(j.idempotency_key) == 36
    assert rows.get(task_id=seen[4]).rationale == "B explains slicing; A is vague."
    assert len(set(seen)) == 10

    # --- 3 ranking tasks, keyboard only ----------------------------------------------------
    page.goto(f"{url}/projects/{w['ranking'].pk}/label")
    task_id = wait_new_task(page, None)
    ann_id = w["ann"].pk
    plans = [
        # (keys, display tiers after them)
        (["Alt+ArrowDown"], [[1], [0], [2], [3]]),
        (["Alt+ArrowDown", "t"], [[1, 0], [2], [3]]),
        (["ArrowDown"] * 3 + ["Alt+ArrowUp"] * 3 + ["ArrowDown", "ArrowDown", "t"], [[3], [0, 1], [2]]),
    ]
    for n, (keys, tiers) in enumerate(plans):
        assert focused(page) == "0"  # the first response has the focus
        for key in keys:
            page.keyboard.press(key)
        if n == 1:
            shot(page, "05-ranking-tied")
            assert page.locator(".tier.tied").count() == 1
        page.keyboard.press("w")
        page.keyboard.press("Enter")
        expected_rank = expected_positions(task_id, ann_id, tiers, 4)
        done = task_id
        task_id = wait_new_task(page, task_id)
        wait_all_saved(page)
        j = Judgment.objects.get(annotator=w["ann"], task_id=done)
        assert j.ranking == expected_rank, (n, j.ranking, expected_rank)
        assert j.strength == 2
    assert not js_errors(page), js_errors(page)


def _display(task_id: int, user_id: int, n: int) -> list[Any]:
    task = Task.objects.get(pk=task_id)
    by_position = {c.position: c for c in task.completions.all()}
    return [by_position[p] for p in display_order(task_id=task_id, user_id=user_id, n=n)]


def test_drag_and_drop_reorders_a_ranking(live_server, page, shot, labelling_world):
    w = labelling_world
    sign_in(page, live_server.url, "annie")
    # Tall enough that every response is on screen: a drag that scrolls the page is flaky in headless Chromium.
    page.set_viewport_size({"width": 1360, "height": 1800})
    page.goto(f"{live_server.url}/projects/{w['ranking'].pk}/label")
    task_id = wait_new_task(page, None)
    # D to the top (drop on the upper edge of A), then C onto the middle of B (a tie).
    page.locator('.rank-item[data-index="3"] .rank-head').drag_to(
        page.locator('.rank-item[data-index="0"]'), target_position={"x": 60, "y": 4}
    )
    order = page.eval_on_selector_all(".rank-item", "els => els.map(e => Number(e.dataset.index))")
    assert order == [3, 0, 1, 2]
    box = page.locator('.rank-item[data-index="1"]').bounding_box()
    page.locator('.rank-item[data-index="2"] .rank-head').drag_to(
        page.locator('.rank-item[data-index="1"]'), target_position={"x": 60, "y": box["height"] / 2}
    )
    assert page.locator(".tier.tied").count() == 1
    page.locator('select[data-criterion="accuracy"]').first.select_option("4")
    shot(page, "06-ranking-dragged")
    page.get_by_role("button", name=re.compile("^1")).first.click()  # strength 1, by mouse this time
    page.get_by_role("button", name=re.compile("^Submit")).click()
    wait_new_task(page, task_id)
    wait_all_saved(page)
    j = Judgment.objects.get(annotator=w["ann"], task_id=task_id)
    assert j.ranking == expected_positions(task_id, w["ann"].pk, [[3], [0], [1, 2]], 4)
    assert j.strength == 1
    top_position = display_order(task_id=task_id, user_id=w["ann"].pk, n=4)[3]
    assert j.criteria == {"accuracy": {str(top_position): 4}}
    assert not js_errors(page), js_errors(page)


def test_a_lost_response_and_a_reload_never_lose_or_double_a_judgment(live_server, page, shot, labelling_world):
    w = labelling_world
    url = live_server.url
    sign_in(page, url, "annie")
    page.goto(f"{url}/projects/{w['pairwise'].pk}/label")
    first = wait_new_task(page, None)

    # 1. The server records the judgment but the response is lost: the page retries with the same key.
    calls = {"n": 0}

    def lose_first_response(route: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            route.fetch()  # the request reaches the server and is recorded...
            route.abort("connectionreset")  # ...but the browser never sees the answer
        else:
            route.continue_()

    page.route("**/judgments", lose_first_response)
    page.keyboard.press("1")
    page.keyboard.press("q")
    page.keyboard.press("Enter")
    second = wait_new_task(page, first)  # the next task shows at once, whatever the network does
    wait_all_saved(page, timeout=20_000)
    assert calls["n"] >= 2
    assert Judgment.objects.filter(annotator=w["ann"], task_id=first).count() == 1
    page.unroute("**/judgments")

    # 2. The network is down when submitting; the annotator reloads; the queue is re-sent on load.
    page.route("**/judgments", lambda route: route.abort("internetdisconnected"))
    page.keyboard.press("2")
    page.keyboard.press("w")
    page.keyboard.press("Enter")
    wait_new_task(page, second)
    page.wait_for_function("() => document.querySelector('#queue-status').dataset.pending === '1'")
    assert "pending" in page.locator("#queue-status").inner_text()
    shot(page, "07-pending-submission")
    stored = page.evaluate(
        "() => JSON.parse(localStorage.getItem(Object.keys(localStorage).find(k => k.startsWith('arbiter:queue'))))"
    )
    assert len(stored) == 1 and stored[0]["taskId"] == second
    assert Judgment.objects.filter(annotator=w["ann"], task_id=second).count() == 0
    page.unroute("**/judgments")
    page.reload()
    wait_new_task(page, None)
    wait_all_saved(page)
    j = Judgment.objects.get(annotator=w["ann"], task_id=second)
    assert j.idempotency_key == stored[0]["key"] and j.ranking[0] == [_display(second, w["ann"].pk, 2)[1].position]
    # The reloaded page does not serve the task whose answer was still queued.
    third = current_task(page)
    assert third not in (first, second)
    assert Judgment.objects.filter(annotator=w["ann"]).count() == 2

    # 3. A refusal the page cannot fix by itself (400) is shown as failed, with Retry and Discard.
    page.route(
        "**/judgments",
        lambda route: route.fulfill(
            status=400, content_type="application/json", body='{"message": "bad verdict", "code": "invalid"}'
        ),
    )
    page.keyboard.press("1")
    page.keyboard.press("e")
    page.keyboard.press("Enter")
    wait_new_task(page, third)
    page.wait_for_selector("#queue-problems:not([hidden])")
    assert "bad verdict" in page.locator("#queue-problem-list").inner_text()
    assert page.locator("#queue-status").get_attribute("data-failed") == "1"
    retry = page.get_by_role("button", name="Retry")
    retry.focus()
    page.wait_for_timeout(1500)  # the status refreshes every second; the focus must survive it
    assert page.evaluate("document.activeElement.textContent") == "Retry"
    page.unroute("**/judgments")
    page.keyboard.press("Enter")  # Enter on a focused ordinary button activates it
    wait_all_saved(page)
    assert Judgment.objects.filter(annotator=w["ann"], task_id=third).count() == 1
    assert not [e for e in js_errors(page) if "ERR_" not in e and "Failed to fetch" not in e]


def test_expired_and_taken_lease_is_dropped_with_a_message(live_server, page, labelling_world):
    w = labelling_world
    project = w["pairwise"]
    sign_in(page, live_server.url, "annie")
    page.goto(f"{live_server.url}/projects/{project.pk}/label")
    task_id = wait_new_task(page, None)
    page.wait_for_load_state("networkidle")  # the prefetch is done
    # Meanwhile the lease runs out and another annotator takes and finishes the task.
    from django.utils import timezone

    from labeling.models import Assignment

    Assignment.objects.filter(task_id=task_id, annotator=w["ann"]).update(expires_at=timezone.now())
    Task.objects.filter(pk=task_id).update(leases_out=0, lease_horizon=None)
    other = make_user("otto")
    add_member(project, other)
    Task.objects.exclude(pk=task_id).update(judgment_count=1, is_complete=True)
    leased = assignment_lease_next(user=other, project_id=project.pk, rng=random.Random(1))
    assert [t.task_id for t in leased] == [task_id]
    judgment_submit(
        user=other, project_id=project.pk, task_id=task_id, idempotency_key="o1", ranking=[[0], [1]], strength=1
    )
    page.keyboard.press("1")
    page.keyboard.press("q")
    page.keyboard.press("Enter")
    page.wait_for_selector("#flash:not([hidden])")
    assert "another annotator took it" in page.locator("#flash").inner_text()
    wait_all_saved(page)
    assert not Judgment.objects.filter(annotator=w["ann"], task_id=task_id).exists()


def test_demonstration_editor_previews_through_the_server(live_server, page, shot, db):
    manager = make_user("dora")
    project = make_project(manager=manager, name="Write answers", task_kind="demonstration")
    tasks_import(project=project, lines=[json.dumps({"prompt": f"Explain recursion, version {i}"}) for i in range(3)])
    ann = make_user("dan")
    add_member(project, ann)
    sign_in(page, live_server.url, "dan")
    page.goto(f"{live_server.url}/projects/{project.pk}/label")
    task_id = wait_new_task(page, None)
    assert focused(page) == "demo-text"
    page.keyboard.type(
        "A function that **calls itself**.\n\n```python\ndef f(n):\n    return f(n - 1)\n```\n\n"
        "<img src=x onerror=alert(1)>"
    )
    page.wait_for_selector("#demo-preview strong")
    page.wait_for_selector("#demo-preview .highlight")
    assert page.locator("#demo-preview img").count() == 0
    shot(page, "08-demonstration-preview")
    page.keyboard.press("Control+Enter")
    wait_new_task(page, task_id)
    wait_all_saved(page)
    demo = Demonstration.objects.get(annotator=ann, task_id=task_id)
    assert demo.text.startswith("A function that **calls itself**.") and demo.time_spent_ms > 0
    # Skip by key from outside the editor.
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    page.wait_for_function("() => document.querySelector('#queue-status').dataset.pending === '0'")
    wait_all_saved(page)
    assert Judgment.objects.filter(annotator=ann, action=JudgmentAction.SKIP).count() == 1
    assert not js_errors(page), js_errors(page)


def test_manager_pages(live_server, page, shot, settings, db):
    settings.ARBITER_INLINE_IMPORT_MAX_LINES = 5  # the 12-line file below runs as a background job
    boss = make_user("boss")
    boss.user_permissions.add(Permission.objects.get(codename="add_project"))
    make_user("annie")
    url = live_server.url
    sign_in(page, url, "boss")
    page.goto(f"{url}/manage/new")
    page.get_by_label("Name", exact=True).fill("Helpfulness round 1")
    page.get_by_label("Guidelines (Markdown)").fill("## Rules\n\n1. Prefer **correct** answers\n2. Then `concise` ones")
    page.wait_for_selector("#guidelines-preview h2")
    page.get_by_label("Overlap").fill("2")
    page.get_by_label("Criterion 1 Name").fill("helpfulness")
    page.get_by_label("Criterion 1 Label").fill("Helpfulness")
    shot(page, "09-project-create")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r"/import$"))
    project = Project.objects.get(name="Helpfulness round 1")
    assert project.overlap == 2 and project.label_options["criteria"][0]["name"] == "helpfulness"

    # A bad file: nothing imported, each bad line listed with its number.
    bad = "\n".join(
        [
            json.dumps({"prompt": "ok", "completions": ["a", "b"]}),
            "{not json",
            json.dumps({"prompt": "one completion", "completions": ["a"]}),
        ]
    )
    page.set_input_files(
        "#import-file", files=[{"name": "bad.jsonl", "mimeType": "application/jsonl", "buffer": bad.encode()}]
    )
    page.get_by_role("button", name="Import").click()
    page.wait_for_selector("#import-errors:not([hidden])")
    errors = page.locator("#import-error-list li").all_inner_texts()
    assert errors[0].startswith("Line 2: invalid JSON") and errors[1].startswith("Line 3:")
    shot(page, "10-import-errors")
    assert Task.objects.filter(project=project).count() == 0

    # A good file large enough to run as a job: the page polls it to the end.
    good = "\n".join(
        json.dumps({"prompt": f"Question {i}?", "completions": [f"yes {i}", f"no {i}"]}) for i in range(12)
    )
    page.set_input_files(
        "#import-file", files=[{"name": "good.jsonl", "mimeType": "application/jsonl", "buffer": good.encode()}]
    )
    page.get_by_role("button", name="Import").click()
    page.wait_for_function("() => document.querySelector('#import-phase').textContent === 'Done'")
    assert "Imported 12 new tasks" in page.locator("#import-status").inner_text()
    assert page.locator("#import-bar").evaluate("b => b.value === b.max")
    assert page.locator("#import-errors").is_hidden()
    shot(page, "11-import-done")
    assert Task.objects.filter(project=project).count() == 12

    page.goto(f"{url}/projects/{project.pk}/members")
    page.get_by_label("Username").fill("annie")
    page.get_by_label("Role", exact=True).select_option("annotator")
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=annie is now annotator")
    shot(page, "12-members")

    page.goto(f"{url}/projects/{project.pk}/export")
    page.get_by_label("Format").select_option("trl")
    page.get_by_label("Split").select_option("eval")
    page.get_by_label("From").fill("2025-01-01")
    built = page.locator("#export-url").inner_text()
    assert f"/api/v1/projects/{project.pk}/export?format=trl" in built and "split=eval" in built
    assert "date_from=2025-01-01" in built and "exclude_gold=on" in built and "style=standard" in built
    page.get_by_label("Format").select_option("openai-preference")  # takes only `ties`, as drop or both
    built = page.locator("#export-url").inner_text()
    assert "style=" not in built and "include_margin=" not in built and "ties=drop" in built
    assert page.locator('#id_ties option[value="keep"]').is_disabled()
    page.get_by_label("Format").select_option("trl")
    page.get_by_label("Split").select_option("")
    with page.expect_download() as download:  # the form downloads straight from the export API
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename.endswith(".jsonl")
    assert download.value.failure() is None
    page.get_by_label("Name (optional)").fill("first freeze")
    page.get_by_role("button", name="Create snapshot").click()
    page.wait_for_selector("#snapshot-table")  # the page reloads with the new snapshot listed
    assert "first freeze" in page.locator("#snapshot-table").inner_text()
    shot(page, "13-export")
    assert not js_errors(page), js_errors(page)


def test_dashboard_with_agreement_and_gold(live_server, page, shot, db):
    boss = make_user("boss")
    project = make_project(manager=boss, name="Dashboard demo", overlap=3, gold_rate=0.0)
    seed_tasks(project, 12, gold_every=4)  # tasks t0, t4, t8 are gold (B better)
    anns = [make_user(n) for n in ("ana", "ben", "cho")]
    for a in anns:
        add_member(project, a)
    viewer = make_user("vic")
    add_member(project, viewer, Role.VIEWER)
    Project.objects.filter(pk=project.pk).update(gold_rate=0.5)
    rng = random.Random(7)
    for n, ann in enumerate(anns):
        for _ in range(6):
            for task in assignment_lease_next(user=ann, project_id=project.pk, count=3, rng=rng):
                if Judgment.objects.filter(annotator=ann, task_id=task.task_id).exists():
                    continue
                better = 1 if rng.random() < (0.9 - 0.25 * n) else 0
                judgment_submit(
                    user=ann,
                    project_id=project.pk,
                    task_id=task.task_id,
                    idempotency_key=f"{ann.username}-{task.task_id}",
                    ranking=[[better], [1 - better]],
                    strength=rng.choice([1, 2, 3]),
                    flags=["unsafe"] if rng.random() < 0.1 else [],
                    time_spent_ms=rng.randint(4000, 30000),
                )
    sign_in(page, live_server.url, "vic")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard")
    assert page.locator("#alpha").inner_text().startswith("α = ")
    rows = page.locator("#annotator-table tbody tr")
    assert rows.count() == 3
    assert page.locator("svg.chart").count() >= 3
    shot(page, "14-dashboard")
    # A viewer cannot label or manage.
    assert page.goto(f"{live_server.url}/projects/{project.pk}/label").status == 403
    assert page.goto(f"{live_server.url}/projects/{project.pk}/settings").status == 403


def test_annotator_cannot_open_manager_pages(live_server, page, shot, labelling_world):
    w = labelling_world
    sign_in(page, live_server.url, "annie")
    pid = w["pairwise"].pk
    for path in ("settings", "members", "import", "export", "dashboard"):
        response = page.goto(f"{live_server.url}/projects/{pid}/{path}")
        assert response.status == 403, path
        assert page.get_by_role("heading", name="Not allowed").is_visible()
    shot(page, "15-annotator-forbidden")
    assert page.goto(f"{live_server.url}/manage/new").status == 403


HIDE = """(hidden) => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_double_click_hidden_tab_and_narrow_screen(live_server, page, shot, labelling_world):
    w = labelling_world
    sign_in(page, live_server.url, "annie")
    page.goto(f"{live_server.url}/projects/{w['pairwise'].pk}/label")
    first = wait_new_task(page, None)
    # A double click on Submit records one judgment and does not submit the next task.
    page.keyboard.press("2")
    page.keyboard.press("q")
    page.locator("#submit").dblclick()
    second = wait_new_task(page, first)
    wait_all_saved(page)
    assert Judgment.objects.filter(annotator=w["ann"]).count() == 1
    assert page.locator('[data-choice][aria-pressed="true"]').count() == 0  # the new task starts blank

    # Time on task stops while the tab is hidden.
    page.evaluate(HIDE, True)
    page.wait_for_timeout(2500)
    page.evaluate(HIDE, False)
    page.keyboard.press("1")
    page.keyboard.press("q")
    page.keyboard.press("Enter")
    wait_new_task(page, second)
    wait_all_saved(page)
    spent = Judgment.objects.get(annotator=w["ann"], task_id=second).time_spent_ms
    assert 300 <= spent < 1500, spent

    # On a narrow screen the two responses stack.
    page.set_viewport_size({"width": 640, "height": 900})
    a, b = page.locator(".completion").all()
    assert a.bounding_box()["x"] == b.bounding_box()["x"] and a.bounding_box()["y"] < b.bounding_box()["y"]
    shot(page, "19-pairwise-narrow")
    assert not js_errors(page), js_errors(page)
