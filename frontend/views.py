"""The annotator and manager pages. Thin: parse input, check the role, call one service or selector.

Writes from the label page go through the JSON API (``/api/v1/``) from the page's JS module, so the
pages and the API share one code path; the manager forms here call the same services the API calls.
"""

from __future__ import annotations

import json
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from arbiter.errors import ApplicationError, NotFound, PermissionDenied, ValidationFailed
from arbiter.markdown import render_markdown
from frontend import forms
from labeling.models import Membership, Role, TaskKind
from labeling.options import parse_label_options
from labeling.selectors.access import EVERYONE, membership_get
from labeling.selectors.dashboard import my_project_list, project_dashboard_get
from labeling.selectors.exports import snapshot_list
from labeling.selectors.listings import import_job_list, managed_project_list
from labeling.selectors.projects import project_members
from labeling.services import projects as project_services

LABELERS = (Role.ANNOTATOR, Role.MANAGER)
READERS = (Role.MANAGER, Role.VIEWER)
MANAGERS = (Role.MANAGER,)

# Markdown preview: the most text one request may ask to render (characters, and bytes on the wire).
PREVIEW_MAX_CHARS = 100_000
PREVIEW_MAX_BYTES = 4 * PREVIEW_MAX_CHARS + 1024
# Keys for the strength buttons, in order ('t' is the ranking page's tie key, 's' skip, 'g' guidelines).
STRENGTH_KEYS = "qweryuiop"


def _member(request: HttpRequest, project_id: int, roles: tuple[str, ...]) -> Membership:
    """membership_get, with the service errors turned into Django's 404/403 (rendered by 404.html/403.html)."""
    try:
        return membership_get(user=request.user, project_id=project_id, roles=roles)
    except NotFound as exc:
        raise Http404(exc.message) from None
    except PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None


def _user(request: HttpRequest) -> User:
    """The signed-in user (every page but the preview endpoint is behind login_required)."""
    return cast(User, request.user)


def _can_create_projects(request: HttpRequest) -> bool:
    # The same rule as the API's project creation.
    return bool(request.user.is_staff or request.user.has_perm("labeling.add_project"))


def _form_errors(form: Any, exc: ApplicationError) -> None:
    """Put a service error on the form: its message at the top, label-option errors on their fields."""
    details = exc.details if isinstance(exc.details, dict) else {}
    message = exc.message
    if isinstance(exc, ValidationFailed):
        extra = [f"{k}: {v}" for k, v in details.items() if k != "label_options" and isinstance(v, str)]
        if extra and not message.startswith("invalid label options"):
            message = f"{message} ({'; '.join(extra)})"
    form.add_error(None, message)
    nested = details.get("label_options")
    for key, text in (nested if isinstance(nested, dict) else {}).items():
        if key in form.fields and isinstance(text, str):
            form.add_error(key, text)


# --- annotators -------------------------------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    rows = my_project_list(user=_user(request))
    return render(
        request,
        "frontend/home.html",
        {"rows": rows, "can_create": _can_create_projects(request), "manages_any": any(r.can_manage for r in rows)},
    )


@login_required
@require_GET
def project_home(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _member(request, project_id, EVERYONE)
    name = "label" if membership.role in LABELERS else "dashboard"
    return redirect(name, project_id=project_id)


@login_required
@require_GET
def label(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _member(request, project_id, LABELERS)
    project = membership.project
    options = parse_label_options(project.label_options, task_kind=project.task_kind)
    strength: list[dict[str, Any]] = []
    if options.has_strength and project.task_kind != TaskKind.DEMONSTRATION:
        assert options.strength_min is not None and options.strength_max is not None
        values = list(range(options.strength_min, options.strength_max + 1))
        for i, value in enumerate(values):
            hint = ""
            if options.strength_min >= 0 and len(values) > 1:
                hint = "slightly" if i == 0 else "much" if i == len(values) - 1 else ""
            strength.append({"value": value, "key": STRENGTH_KEYS[i] if i < len(STRENGTH_KEYS) else "", "hint": hint})
    api = f"/api/v1/projects/{project.pk}"
    config = {
        "projectId": project.pk,
        "userId": request.user.pk,
        "taskKind": project.task_kind,
        "options": options.to_json(),
        "prefetch": 3,
        "urls": {
            "next": f"{api}/next",
            "task": f"{api}/tasks/",
            "render": reverse("markdown-preview"),
            "home": reverse("home"),
        },
    }
    return render(
        request,
        "frontend/label.html",
        {
            "project": project,
            "membership": membership,
            "options": options,
            "strength": strength,
            "config": config,
            "is_pairwise": project.task_kind == TaskKind.PAIRWISE,
            "is_ranking": project.task_kind == TaskKind.RANKING,
            "is_demonstration": project.task_kind == TaskKind.DEMONSTRATION,
        },
    )


@require_POST
def markdown_preview(request: HttpRequest) -> JsonResponse:
    """Render markdown for a live preview with the one sanitizing renderer. POST, CSRF-checked, size-limited."""
    if not request.user.is_authenticated:
        return JsonResponse({"message": "authentication required", "code": "not_authenticated"}, status=403)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > PREVIEW_MAX_BYTES:
        return JsonResponse({"message": "the text is too long to preview", "code": "too_large"}, status=413)
    text: Any
    if request.content_type == "application/json":
        try:
            text = json.loads(request.body or b"{}").get("text", "")
        except (ValueError, AttributeError):
            return JsonResponse({"message": 'send JSON like {"text": "..."}', "code": "invalid"}, status=400)
    else:
        text = request.POST.get("text", "")
    if not isinstance(text, str):
        return JsonResponse({"message": "text must be a string", "code": "invalid"}, status=400)
    if len(text) > PREVIEW_MAX_CHARS:
        return JsonResponse({"message": "the text is too long to preview", "code": "too_large"}, status=413)
    return JsonResponse({"html": render_markdown(text)})


# --- viewers and managers ---------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _member(request, project_id, READERS)
    data = project_dashboard_get(project=membership.project)
    return render(
        request, "frontend/dashboard.html", {"project": membership.project, "membership": membership, "d": data}
    )


@login_required
@require_GET
def manage_projects(request: HttpRequest) -> HttpResponse:
    projects = managed_project_list(user=_user(request))
    if not projects and not _can_create_projects(request):
        raise DjangoPermissionDenied("you manage no project")
    return render(
        request, "frontend/manage_projects.html", {"projects": projects, "can_create": _can_create_projects(request)}
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    if not _can_create_projects(request):
        raise DjangoPermissionDenied("only staff (or users with the add_project permission) can create projects")
    form = forms.ProjectForm(request.POST or None, creating=True)
    criteria = forms.CriterionFormSet(request.POST or None, prefix="criteria")
    if request.method == "POST" and form.is_valid() and criteria.is_valid():
        try:
            project = project_services.project_create(created_by=_user(request), **form.service_kwargs(criteria))
        except ApplicationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created. Next: import tasks and add members.")
            return redirect("import", project_id=project.pk)
    return render(request, "frontend/project_form.html", {"form": form, "criteria": criteria, "creating": True})


@login_required
@require_http_methods(["GET", "POST"])
def project_edit(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _member(request, project_id, MANAGERS)
    project = membership.project
    if request.method == "POST":
        form = forms.ProjectForm(request.POST, creating=False)
        criteria = forms.CriterionFormSet(request.POST, prefix="criteria")
        if form.is_valid() and criteria.is_valid():
            try:
                project_services.project_update(project=project, **form.service_kwargs(criteria))
            except ApplicationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, "Project settings saved.")
                return redirect("project-edit", project_id=project.pk)
    else:
        form = forms.ProjectForm(initial=forms.project_initial(project), creating=False)
        criteria = forms.CriterionFormSet(initial=project.label_options.get("criteria", []), prefix="criteria")
    return render(
        request,
        "frontend/project_form.html",
        {"form": form, "criteria": criteria, "creating": False, "project": project, "membership": membership},
    )


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _member(request, project_id, MANAGERS)
    project = membership.project
    form = forms.MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project_services.membership_set(
                project=project, username=form.cleaned_data["username"], role=form.cleaned_data["role"]
            )
        except ApplicationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"{form.cleaned_data['username']} is now {form.cleaned_data['role']}.")
            return redirect("members", project_id=project.pk)
    return render(
        request,
        "frontend/members.html",
        {
            "project": project,
            "membership": membership,
            "members": project_members(project=project),
            "form": form,
            "roles": Role.choices,
        },
    )


@login_required
@require_POST
def member_remove(request: HttpRequest, project_id: int, username: str) -> HttpResponseRedirect:
    membership = _member(request, project_id, MANAGERS)
    try:
        project_services.membership_remove(project=membership.project, username=username)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{username} was removed from the project.")
    return redirect("members", project_id=project_id)


@login_required
@require_GET
def import_page(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _member(request, project_id, MANAGERS)
    project = membership.project
    config = {
        "upload": f"/api/v1/projects/{project.pk}/imports",
        "job": "/api/v1/imports/",
        "maxBytes": settings.ARBITER_MAX_UPLOAD_BYTES,
    }
    return render(
        request,
        "frontend/import.html",
        {"project": project, "membership": membership, "jobs": import_job_list(project=project), "config": config},
    )


@login_required
@require_GET
def export_page(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _member(request, project_id, MANAGERS)
    project = membership.project
    form = forms.ExportForm(request.GET or None, task_kind=project.task_kind)
    config = {
        "export": f"/api/v1/projects/{project.pk}/export",
        "snapshots": f"/api/v1/projects/{project.pk}/snapshots",
        "formatOptions": forms.export_format_options(project.task_kind),
    }
    return render(
        request,
        "frontend/export.html",
        {
            "project": project,
            "membership": membership,
            "form": form,
            "snapshots": snapshot_list(project=project)[:100],
            "config": config,
        },
    )
