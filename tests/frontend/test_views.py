"""The pages answer 200 / 302 / 403 / 404 by role, exactly like the API's access rules."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.models import Judgment, Membership, Project, Role
from tests.factories import add_member, make_project, make_user, seed_tasks

pytestmark = pytest.mark.django_db

PROJECT_PAGES = ["label", "dashboard", "project-edit", "members", "import", "export"]
# Which roles may open which page (non-members always get 404).
ALLOWED = {
    "label": {Role.MANAGER, Role.ANNOTATOR},
    "dashboard": {Role.MANAGER, Role.VIEWER},
    "project-edit": {Role.MANAGER},
    "members": {Role.MANAGER},
    "import": {Role.MANAGER},
    "export": {Role.MANAGER},
}


@pytest.fixture
def world():
    manager = make_user("boss")
    project = make_project(manager=manager, name="Alpha", guidelines="# Be *kind*\n<script>alert(1)</script>")
    seed_tasks(project, 4)
    users = {"manager": manager, "outsider": make_user("outsider")}
    for role in (Role.ANNOTATOR, Role.VIEWER):
        users[role] = make_user(f"u-{role}")
        add_member(project, users[role], role)
    users[Role.MANAGER] = manager
    return project, users


@pytest.mark.parametrize("page", PROJECT_PAGES)
@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANNOTATOR, Role.VIEWER, "outsider"])
def test_project_pages_by_role(client, world, page, role):
    project, users = world
    client.force_login(users[role])
    response = client.get(reverse(page, args=[project.pk]))
    if role == "outsider":
        assert response.status_code == 404
    elif role in ALLOWED[page]:
        assert response.status_code == 200, response.content[:500]
    else:
        assert response.status_code == 403
        assert b"Not allowed" in response.content


@pytest.mark.parametrize("page", PROJECT_PAGES)
def test_anonymous_is_sent_to_sign_in(client, world, page):
    project, _ = world
    response = client.get(reverse(page, args=[project.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_missing_project_is_404(client, world):
    _, users = world
    client.force_login(users[Role.MANAGER])
    assert client.get(reverse("dashboard", args=[999999])).status_code == 404


def test_staff_act_as_managers(client, world):
    project, _ = world
    staff = make_user("root", is_staff=True)
    client.force_login(staff)
    for page in PROJECT_PAGES:
        assert client.get(reverse(page, args=[project.pk])).status_code == 200


def test_project_home_redirects_by_role(client, world):
    project, users = world
    client.force_login(users[Role.ANNOTATOR])
    assert client.get(reverse("project", args=[project.pk]))["Location"] == reverse("label", args=[project.pk])
    client.force_login(users[Role.VIEWER])
    assert client.get(reverse("project", args=[project.pk]))["Location"] == reverse("dashboard", args=[project.pk])


def test_home_lists_only_my_projects(client, world):
    project, users = world
    other = make_project(manager=make_user("someone"), name="Secret project")
    client.force_login(users[Role.ANNOTATOR])
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert b"Alpha" in response.content and b"Secret project" not in response.content
    assert b"Remaining for you" in response.content
    assert other.pk != project.pk


def test_label_page_renders_guidelines_sanitized(client, world):
    project, users = world
    client.force_login(users[Role.ANNOTATOR])
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert "<h1>Be <em>kind</em></h1>" in html
    assert "<script>alert(1)</script>" not in html
    assert 'data-key="1"' in html and 'data-key="s"' in html and 'data-key="Enter"' in html
    assert 'id="label-config"' in html


def test_manager_page_403_for_annotator_posting(client, world):
    project, users = world
    client.force_login(users[Role.ANNOTATOR])
    response = client.post(reverse("members", args=[project.pk]), {"username": "u-annotator", "role": "manager"})
    assert response.status_code == 403
    assert Membership.objects.get(project=project, user=users[Role.ANNOTATOR]).role == Role.ANNOTATOR


def test_manage_list_and_create_rules(client, world):
    _, users = world
    client.force_login(users[Role.ANNOTATOR])
    assert client.get(reverse("manage-projects")).status_code == 403
    assert client.get(reverse("project-create")).status_code == 403
    client.force_login(users[Role.MANAGER])
    assert client.get(reverse("manage-projects")).status_code == 200
    assert client.get(reverse("project-create")).status_code == 403  # not staff, no add_project permission


def test_create_project_through_the_service(client):
    staff = make_user("admin", is_staff=True)
    client.force_login(staff)
    data = {
        "name": "Helpful or not",
        "slug": "",
        "task_kind": "ranking",
        "guidelines": "Rank them.",
        "overlap": 3,
        "lease_seconds": 300,
        "gold_rate": 0.1,
        "allow_tie": "on",
        "strength_enabled": "on",
        "strength_min": 1,
        "strength_max": 5,
        "flags": "unsafe, off_topic",
        "completions_per_task": 4,
        "criteria-TOTAL_FORMS": 2,
        "criteria-INITIAL_FORMS": 0,
        "criteria-MIN_NUM_FORMS": 0,
        "criteria-MAX_NUM_FORMS": 20,
        "criteria-0-name": "helpfulness",
        "criteria-0-label": "Helpfulness",
        "criteria-0-min": 1,
        "criteria-0-max": 7,
        "criteria-1-name": "",
    }
    response = client.post(reverse("project-create"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    project = Project.objects.get(slug="helpful-or-not")
    assert project.task_kind == "ranking" and project.overlap == 3 and project.gold_rate == 0.1
    opts = project.label_options
    assert opts["allow_tie"] is True and opts["allow_both_bad"] is False
    assert (opts["strength_min"], opts["strength_max"]) == (1, 5)
    assert opts["flags"] == ["unsafe", "off_topic"] and opts["completions_per_task"] == 4
    assert opts["criteria"][0]["name"] == "helpfulness" and opts["criteria"][0]["max"] == 7
    assert Membership.objects.get(project=project, user=staff).role == Role.MANAGER


def test_edit_project_shows_service_errors(client, world):
    project, users = world
    client.force_login(users[Role.MANAGER])
    page = client.get(reverse("project-edit", args=[project.pk]))
    assert page.status_code == 200
    data = {
        "name": "Alpha 2",
        "task_kind": "pairwise",
        "guidelines": "x",
        "overlap": 2,
        "lease_seconds": 600,
        "gold_rate": 0,
        "strength_enabled": "on",
        "strength_min": 3,
        "strength_max": 1,
        "flags": "unsafe",
        "criteria-TOTAL_FORMS": 1,
        "criteria-INITIAL_FORMS": 0,
        "criteria-MIN_NUM_FORMS": 0,
        "criteria-MAX_NUM_FORMS": 20,
        "criteria-0-name": "",
    }
    response = client.post(reverse("project-edit", args=[project.pk]), data)
    assert response.status_code == 200
    assert "must be greater than strength_min" in response.content.decode()
    project.refresh_from_db()
    assert project.name == "Alpha"
    data["strength_min"], data["strength_max"] = 1, 4
    response = client.post(reverse("project-edit", args=[project.pk]), data)
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Alpha 2" and project.overlap == 2 and project.label_options["strength_max"] == 4


def test_members_add_change_remove(client, world):
    project, users = world
    client.force_login(users[Role.MANAGER])
    make_user("newbie")
    assert (
        client.post(reverse("members", args=[project.pk]), {"username": "newbie", "role": "annotator"}).status_code
        == 302
    )
    assert Membership.objects.get(project=project, user__username="newbie").role == "annotator"
    response = client.post(reverse("members", args=[project.pk]), {"username": "ghost", "role": "annotator"})
    assert response.status_code == 200 and "no user" in response.content.decode()
    client.post(reverse("member-remove", args=[project.pk, "newbie"]))
    assert not Membership.objects.filter(project=project, user__username="newbie").exists()
    # The last manager cannot be removed: the service refuses and the page says why.
    response = client.post(reverse("member-remove", args=[project.pk, "boss"]), follow=True)
    assert "at least one manager" in response.content.decode()
    assert Membership.objects.filter(project=project, user__username="boss", role="manager").exists()


def test_dashboard_shows_annotator_rows(client, world):
    project, users = world
    client.force_login(users[Role.VIEWER])
    response = client.get(reverse("dashboard", args=[project.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "u-annotator" in html and "<svg" in html and "Krippendorff" in html
    assert Judgment.objects.count() == 0


def test_export_page_builds_the_api_form(client, world):
    project, users = world
    client.force_login(users[Role.MANAGER])
    html = client.get(reverse("export", args=[project.pk])).content.decode()
    assert f'action="/api/v1/projects/{project.pk}/export"' in html
    names = ("format", "style", "ties", "include_margin", "date_from", "date_to", "annotators", "exclude_gold")
    for name in (*names, "min_agreement", "split", "source"):
        assert f'name="{name}"' in html
    # The names are exactly the export API's parameters.
    from labeling.api.exports import FILTER_KEYS, OPTION_KEYS

    assert set(names[1:4]) == set(OPTION_KEYS) and {*names[4:], "min_agreement", "split", "source"} == set(FILTER_KEYS)


def test_demonstration_label_page_has_an_editor_and_no_verdict_buttons(client):
    project = make_project(manager=make_user("boss"), task_kind="demonstration")
    client.force_login(project.memberships.get().user)
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    assert 'id="demo-text"' in html and 'id="demo-preview"' in html
    assert "data-strength" not in html and "data-choice" not in html and 'id="rationale"' not in html


def test_admin_lists_the_labeling_models(client, world):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    for model in ("project", "membership", "prompt", "task", "assignment", "judgment", "demonstration",
                  "goldanswer", "importjob", "datasetsnapshot"):  # fmt: skip
        assert client.get(f"/admin/labeling/{model}/").status_code == 200, model
    task = world[0].tasks.first()
    assert client.get(f"/admin/labeling/task/{task.pk}/change/").status_code == 200
