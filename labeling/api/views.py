"""The labeling REST API (``/api/v1/``). Each view parses input, checks access and calls one service or selector."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arbiter.errors import NotFound, ValidationFailed
from arbiter.markdown import render_markdown
from labeling.api import serializers as s
from labeling.models import ImportJob, Role
from labeling.selectors.access import EVERYONE, membership_get, project_list_for_user
from labeling.selectors.projects import project_members, project_progress
from labeling.services import imports, judgments, leases, projects

MANAGERS = (Role.MANAGER,)


def _user(request: Request) -> User:
    """The signed-in user (every view here requires authentication)."""
    user = request.user
    assert isinstance(user, User), "IsAuthenticated guarantees a real user"
    return user


def _parse(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class TokenApi(APIView):
    """Exchange a username and password for an API token (``Authorization: Token <key>``)."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=s.TokenIn, responses=inline_serializer("TokenOut", {"token": serializers.CharField()}))
    def post(self, request: Request) -> Response:
        data = _parse(s.TokenIn, request.data)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            raise ValidationFailed("wrong username or password", code="bad_credentials")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class ProjectListApi(APIView):
    @extend_schema(responses=s.ProjectOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(s.ProjectOut(project_list_for_user(user=_user(request)).order_by("id"), many=True).data)

    @extend_schema(request=s.ProjectCreateIn, responses={201: s.ProjectOut})
    def post(self, request: Request) -> Response:
        if not request.user.is_staff and not request.user.has_perm("labeling.add_project"):
            from arbiter.errors import PermissionDenied

            raise PermissionDenied("only staff (or users with the add_project permission) can create projects")
        data = _parse(s.ProjectCreateIn, request.data)
        project = projects.project_create(created_by=_user(request), **data)
        return Response(s.ProjectOut(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(responses=s.ProjectOut)
    def get(self, request: Request, project_id: int) -> Response:
        membership = membership_get(user=_user(request), project_id=project_id, roles=EVERYONE)
        return Response(s.ProjectOut(membership.project).data)

    @extend_schema(request=s.ProjectUpdateIn, responses=s.ProjectOut)
    def patch(self, request: Request, project_id: int) -> Response:
        membership = membership_get(user=_user(request), project_id=project_id, roles=MANAGERS)
        data = _parse(s.ProjectUpdateIn, request.data)
        project = projects.project_update(project=membership.project, **data)
        return Response(s.ProjectOut(project).data)


class ProjectProgressApi(APIView):
    @extend_schema(responses=inline_serializer("ProgressOut", {"tasks": serializers.IntegerField()}))
    def get(self, request: Request, project_id: int) -> Response:
        membership = membership_get(user=_user(request), project_id=project_id, roles=EVERYONE)
        return Response(project_progress(project=membership.project, user=_user(request)).to_json())


class MemberListApi(APIView):
    @extend_schema(responses=s.MembershipOut(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        membership = membership_get(user=_user(request), project_id=project_id, roles=(Role.MANAGER, Role.VIEWER))
        return Response(s.MembershipOut(project_members(project=membership.project), many=True).data)

    @extend_schema(request=s.MembershipIn, responses={201: s.MembershipOut})
    def post(self, request: Request, project_id: int) -> Response:
        membership = membership_get(user=_user(request), project_id=project_id, roles=MANAGERS)
        data = _parse(s.MembershipIn, request.data)
        created = projects.membership_set(project=membership.project, username=data["username"], role=data["role"])
        return Response(s.MembershipOut(created).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int, username: str) -> Response:
        membership = membership_get(user=_user(request), project_id=project_id, roles=MANAGERS)
        with transaction.atomic():
            projects.membership_remove(project=membership.project, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _task_json(task: leases.LeasedTask, *, render: bool) -> dict[str, Any]:
    data = asdict(task)
    if render:
        for message in data["messages"]:
            message["html"] = render_markdown(message["content"])
        for completion in data["completions"]:
            completion["html"] = render_markdown(completion["text"])
    return data


class NextTaskApi(APIView):
    """Lease the next task(s). Tasks already leased to you come back first; ``count`` > 1 prefetches."""

    @extend_schema(
        request=s.NextIn,
        responses=inline_serializer("NextOut", {"tasks": serializers.ListField(child=serializers.DictField())}),
    )
    def post(self, request: Request, project_id: int) -> Response:
        data = _parse(s.NextIn, request.data)
        tasks = leases.assignment_lease_next(user=_user(request), project_id=project_id, count=data["count"])
        return Response({"tasks": [_task_json(t, render=data["render"]) for t in tasks]})


def _submit_response(result: judgments.SubmitResult) -> Response:
    return Response(asdict(result), status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


_SUBMIT_RESPONSES = {
    201: OpenApiResponse(description="recorded"),
    200: OpenApiResponse(description="replay of an earlier submission with the same idempotency key"),
    409: OpenApiResponse(description="lease expired and taken, no lease, key reused"),
}


class JudgmentSubmitApi(APIView):
    @extend_schema(request=s.JudgmentIn, responses=_SUBMIT_RESPONSES)
    def post(self, request: Request, project_id: int, task_id: int) -> Response:
        data = _parse(s.JudgmentIn, request.data)
        key = data.pop("idempotency_key")
        result = judgments.judgment_submit(
            user=_user(request), project_id=project_id, task_id=task_id, idempotency_key=key, **data
        )
        return _submit_response(result)


class DemonstrationSubmitApi(APIView):
    @extend_schema(request=s.DemonstrationIn, responses=_SUBMIT_RESPONSES)
    def post(self, request: Request, project_id: int, task_id: int) -> Response:
        data = _parse(s.DemonstrationIn, request.data)
        key = data.pop("idempotency_key")
        result = judgments.demonstration_submit(
            user=_user(request), project_id=project_id, task_id=task_id, idempotency_key=key, **data
        )
        return _submit_response(result)


class SkipApi(APIView):
    @extend_schema(request=s.SkipIn, responses=_SUBMIT_RESPONSES)
    def post(self, request: Request, project_id: int, task_id: int) -> Response:
        data = _parse(s.SkipIn, request.data)
        key = data.pop("idempotency_key")
        result = judgments.task_skip(
            user=_user(request), project_id=project_id, task_id=task_id, idempotency_key=key, **data
        )
        return _submit_response(result)


class ImportApi(APIView):
    """Upload a JSONL file (multipart field ``file``): small files import at once (201), large ones as a job (202)."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={"multipart/form-data": inline_serializer("ImportIn", {"file": serializers.FileField()})},
        responses={201: OpenApiResponse(description="imported"), 202: s.ImportJobOut, 400: OpenApiResponse()},
    )
    def post(self, request: Request, project_id: int) -> Response:
        membership = membership_get(user=_user(request), project_id=project_id, roles=MANAGERS)
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationFailed("attach the JSONL file as the multipart field 'file'", details={"file": "required"})
        path, total_lines = imports.upload_store(fileobj=upload)
        if total_lines <= settings.ARBITER_INLINE_IMPORT_MAX_LINES:
            try:
                with path.open("rb") as fh:
                    result = imports.tasks_import(project=membership.project, lines=fh)
            finally:
                path.unlink(missing_ok=True)
            return Response(result.to_json(), status=status.HTTP_201_CREATED)
        job = imports.import_job_create(
            project=membership.project,
            created_by=_user(request),
            filename=upload.name or "upload.jsonl",
            path=path,
            total_lines=total_lines,
        )
        return Response(s.ImportJobOut(job).data, status=status.HTTP_202_ACCEPTED)


class ImportJobApi(APIView):
    @extend_schema(responses=s.ImportJobOut)
    def get(self, request: Request, job_id: int) -> Response:
        job = ImportJob.objects.filter(pk=job_id).first()
        if job is None:
            raise NotFound(f"import job {job_id} not found")
        membership_get(user=_user(request), project_id=job.project_id, roles=MANAGERS)
        job.refresh_from_db()
        return Response(s.ImportJobOut(job).data)
