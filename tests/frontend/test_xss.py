"""Untrusted text never runs: an XSS corpus imported as prompts and completions (and written into the
guidelines and the demonstration editor) is rendered by the label page while a trap waits for any
script to call it, and the rendered DOM is searched for anything that could run or fetch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labeling.services.imports import tasks_import
from tests.factories import add_member, make_project, make_user
from tests.frontend.conftest import XSS_TRAP, sign_in
from tests.frontend.test_browser import js_errors, wait_new_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EVIL = "evil.example"
SVG_ONLOAD_B64 = "PHN2ZyBvbmxvYWQ9Il9feHNzKCdkYXRhLXN2ZycpIj48L3N2Zz4="  # <svg onload="__xss('data-svg')"></svg>

PAYLOADS = [
    "<script>__xss('script')</script>",
    "<img src=x onerror=\"__xss('img')\">",
    "[click me](javascript:__xss('link'))",
    "[case](JaVaScRiPt:__xss('case'))",
    "[tab](jav&#x09;ascript:__xss('tab'))",
    "[entity](&#106;avascript:__xss('entity-link'))",
    "<a href=\"javascript:__xss('raw-a')\">raw anchor</a>",
    "<iframe src=\"javascript:__xss('iframe')\"></iframe>",
    "<iframe srcdoc=\"<script>parent.__xss('srcdoc')</script>\"></iframe>",
    "<svg onload=\"__xss('svg')\"><circle r=5 /></svg>",
    f"![remote](http://{EVIL}/x.png)",
    f"![data](data:image/svg+xml;base64,{SVG_ONLOAD_B64})",
    "[data link](data:text/html,<script>__xss('data-link')</script>)",
    "&lt;script&gt;__xss('entities')&lt;/script&gt; and &#60;img src=x onerror=__xss('numeric')&#62;",
    "<details open ontoggle=\"__xss('details')\">x</details>",
    "<body onload=\"__xss('body')\">",
    "<math><mi xlink:href=\"javascript:__xss('math')\">m</mi></math>",
    f"<style>@import 'http://{EVIL}/x.css'; body {{ background: url(http://{EVIL}/bg.png) }}</style>",
    "<object data=\"javascript:__xss('object')\"></object><embed src=\"javascript:__xss('embed')\">",
    "[ref link][r]\n\n[r]: javascript:__xss('ref')",
    f"<javascript:__xss('autolink')> and <http://{EVIL}/ok>",
    "```html\n<script>__xss('code')</script>\n```",
    "<div style=\"background:url(javascript:__xss('style'))\" onmouseover=\"__xss('hover')\">hover</div>",
    f'[title](http://{EVIL}/ "\\"><img src=x onerror=__xss(\'title\')>")',
    "<input autofocus onfocus=\"__xss('focus')\"><video><source onerror=\"__xss('video')\"></video>",
    "<form action=\"javascript:__xss('form')\"><button>go</button></form>",
    '<meta http-equiv="refresh" content="0;url=javascript:__xss(\'meta\')">',
]

FIND_DANGER = """
(selectors) => {
  const banned = new Set(['script', 'iframe', 'frame', 'object', 'embed', 'svg', 'math', 'img', 'style', 'link',
    'meta', 'base', 'form', 'input', 'button', 'video', 'audio', 'source', 'details', 'body', 'textarea', 'select']);
  const bad = [];
  for (const root of document.querySelectorAll(selectors)) {
    for (const el of root.querySelectorAll('*')) {
      const tag = el.tagName.toLowerCase();
      if (banned.has(tag)) bad.push('tag ' + tag);
      for (const attr of el.attributes) {
        const name = attr.name.toLowerCase();
        if (name.startsWith('on') || ['style', 'src', 'srcdoc', 'action', 'formaction', 'xlink:href'].includes(name)) {
          bad.push(tag + ' @' + name);
        }
        if (name === 'href') {
          const url = new URL(attr.value, location.href);
          if (!['http:', 'https:', 'mailto:'].includes(url.protocol)) bad.push('href ' + attr.value);
        }
      }
    }
  }
  return bad;
}
"""


def _install_trap(page: Any, fired: list[str], requests: list[str]) -> None:
    page.expose_function("__xssReport", lambda tag: fired.append(tag))
    page.add_init_script(XSS_TRAP)
    page.on("request", lambda req: requests.append(req.url) if EVIL in req.url else None)
    page.on("dialog", lambda dialog: (fired.append(f"dialog:{dialog.message}"), dialog.dismiss()))


def test_xss_corpus_never_executes_on_the_label_page(live_server, page, shot, db):
    manager = make_user("maria")
    project = make_project(manager=manager, name="XSS corpus", guidelines="\n\n".join(PAYLOADS))
    lines = []
    for i, payload in enumerate(PAYLOADS):
        lines.append(
            json.dumps(
                {
                    "id": f"x{i}",
                    "prompt": [
                        {"role": "system", "content": payload},
                        {"role": "user", "content": f"{payload}\n\nUser turn {i}"},
                        {"role": "assistant", "content": f"{payload} (assistant)"},
                        {"role": "user", "content": f"Again: {payload}"},
                    ],
                    "completions": [f"{payload}\n\nA{i}", f"B{i}: {payload}"],
                }
            )
        )
    tasks_import(project=project, lines=lines)
    ann = make_user("annie")
    add_member(project, ann)

    fired: list[str] = []
    requests: list[str] = []
    _install_trap(page, fired, requests)
    sign_in(page, live_server.url, "annie")
    page.goto(f"{live_server.url}/projects/{project.pk}/label")
    task_id = wait_new_task(page, None)
    page.keyboard.press("g")  # open the guidelines, which hold the whole corpus too
    # Positive controls: the trap and the DOM search do catch an unsanitized payload.
    page.evaluate(
        """() => document.body.insertAdjacentHTML('beforeend',
        '<div id="control"><img src=x onerror="__xss(\\'control\\')"><a href="javascript:void 0">x</a></div>')"""
    )
    page.wait_for_function("() => window.__xssCalls.length === 1")
    assert fired == ["control"]
    assert page.evaluate(FIND_DANGER, "#control") == ["tag img", "img @src", "img @onerror", "href javascript:void 0"]
    page.evaluate("() => { document.getElementById('control').remove(); window.__xssCalls.length = 0; }")
    fired.clear()
    seen = set()
    for n in range(len(PAYLOADS)):
        seen.add(task_id)
        page.locator(".completion-body").first.hover()
        page.wait_for_timeout(100)
        bad = page.evaluate(FIND_DANGER, "#messages, #completions, .guidelines-body")
        assert not bad, (task_id, bad)
        if n == 0:
            # Raw HTML is shown as text, not dropped: the annotator sees what the model wrote.
            assert "<script>__xss('script')</script>" in page.locator("#completions").inner_text()
            shot(page, "18-xss-corpus")
        if n < len(PAYLOADS) - 1:
            page.keyboard.press("s")  # skip to the next task
            task_id = wait_new_task(page, task_id)
    assert len(seen) == len(PAYLOADS)
    assert page.locator("#guidelines .highlight").count() >= 1  # the fenced code block, highlighted, inert
    assert fired == [] and page.evaluate("window.__xssCalls") == []
    assert requests == [], requests
    assert not js_errors(page), js_errors(page)


def test_xss_in_the_demonstration_preview_never_executes(live_server, page, db):
    manager = make_user("dora")
    project = make_project(manager=manager, name="Demo XSS", task_kind="demonstration")
    tasks_import(project=project, lines=[json.dumps({"prompt": PAYLOADS[0] + "\n\nWrite something."})])
    ann = make_user("dan")
    add_member(project, ann)
    fired: list[str] = []
    requests: list[str] = []
    _install_trap(page, fired, requests)
    sign_in(page, live_server.url, "dan")
    page.goto(f"{live_server.url}/projects/{project.pk}/label")
    wait_new_task(page, None)
    page.locator("#demo-text").fill("# Heading\n\n" + "\n\n".join(PAYLOADS))
    page.wait_for_selector("#demo-preview h1")
    page.locator("#demo-preview").hover()
    page.wait_for_timeout(200)
    assert page.evaluate(FIND_DANGER, "#demo-preview, #messages") == []
    assert fired == [] and page.evaluate("window.__xssCalls") == []
    assert requests == []
