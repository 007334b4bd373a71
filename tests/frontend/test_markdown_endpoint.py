"""The markdown preview endpoint: signed-in only, POST only, CSRF-checked, size-limited, sanitized."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from frontend.views import PREVIEW_MAX_CHARS
from tests.factories import make_user

pytestmark = pytest.mark.django_db
URL = "/render"


@pytest.fixture
def user_client(client):
    client.force_login(make_user("writer"))
    return client


def post(client, text, **extra):
    return client.post(URL, data=json.dumps({"text": text}), content_type="application/json", **extra)


def test_url_name():
    assert reverse("markdown-preview") == URL


def test_renders_and_sanitizes(user_client):
    payload = (
        "# Title\n\n**bold** <script>alert(1)</script> <img src=x onerror=alert(2)>\n\n"
        "[x](javascript:alert(3)) ![r](http://evil.example/x.png)\n\n```python\nprint('hi')\n```"
    )
    response = post(user_client, payload)
    assert response.status_code == 200
    html = response.json()["html"]
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html  # raw HTML is shown as text
    assert "[x](javascript:alert(3))" in html  # a javascript: link is not made a link
    assert '<pre class="highlight"><code>' in html and '<span class="nb">print</span>' in html


def test_form_encoded_body_works_too(user_client):
    response = user_client.post(URL, {"text": "*hi*"})
    assert response.json()["html"] == "<p><em>hi</em></p>\n"


def test_requires_sign_in_and_post(client, user_client):
    assert post(Client(), "x").status_code == 403
    assert user_client.get(URL).status_code == 405


def test_csrf_is_enforced():
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("writer"))
    assert post(client, "x").status_code == 403
    client.get(reverse("home"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert post(client, "x", HTTP_X_CSRFTOKEN=token).status_code == 200


def test_size_limit(user_client):
    assert post(user_client, "a" * PREVIEW_MAX_CHARS).status_code == 200
    response = post(user_client, "a" * (PREVIEW_MAX_CHARS + 1))
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    huge = user_client.post(URL, data=b"x" * (5 * PREVIEW_MAX_CHARS), content_type="application/json")
    assert huge.status_code == 413


def test_bad_input(user_client):
    assert user_client.post(URL, data=b"{nope", content_type="application/json").status_code == 400
    assert post(user_client, 42).status_code == 400
