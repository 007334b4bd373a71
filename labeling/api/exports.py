"""Export and dataset-snapshot endpoints (included under ``/api/v1/``).

* ``GET projects/<id>/export?format=...`` streams an export (JSONL, CSV row by row; Parquet and the Hugging Face
  folder, packed as a tar, from a temporary file). Managers only.
* ``GET projects/<id>/snapshots`` lists snapshots (managers, viewers); ``POST`` creates one (managers).
* ``GET snapshots/<id>`` (managers, viewers); ``GET snapshots/<id>/download`` (managers).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.http import FileResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arbiter.errors import NotFound, ValidationFailed
from labeling.api.serializers import SnapshotOut
from labeling.exports.formats import FORMATS
from labeling.models import DatasetSnapshot, Membership, Role
from labeling.selectors.access import membership_get
from labeling.selectors.exports import (
    FILTER_KEYS,
    ExportSpec,
    export_prepare,
    export_stream,
    export_write,
    snapshot_file_path,
    snapshot_get,
    snapshot_list,
)
from labeling.services.snapshots import snapshot_create

MANAGERS = (Role.MANAGER,)
READERS = (Role.MANAGER, Role.VIEWER)
OPTION_KEYS = tuple(dict.fromkeys(key for spec in FORMATS.values() for key in spec.options))
MULTI_VALUED = ("annotators",)


class _FirstRenderer(DefaultContentNegotiation):
    """Errors are always JSON; and ``?format=`` names an export format here, not a DRF renderer."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type


def _export_params(request: Request) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Split the query string into format, options and filters; refuse unknown or repeated parameters."""
    params = request.query_params
    allowed = ("format", *OPTION_KEYS, *FILTER_KEYS)
    unknown = [key for key in params if key not in allowed]
    if unknown:
        raise ValidationFailed(
            f"unknown query parameter(s) {', '.join(unknown)}; the parameters are {', '.join(allowed)}",
            details={key: "unknown parameter" for key in unknown},
        )
    repeated = [key for key in params if key not in MULTI_VALUED and len(params.getlist(key)) > 1]
    if repeated:
        raise ValidationFailed(
            f"query parameter(s) {', '.join(repeated)} given more than once",
            details={key: "given more than once" for key in repeated},
        )
    format_name = params.get("format", "")
    if not format_name:
        raise ValidationFailed(
            f"format is required; choose one of {', '.join(FORMATS)}", details={"format": "required"}
        )
    options = {key: params[key] for key in OPTION_KEYS if key in params}
    filters: dict[str, Any] = {key: params[key] for key in FILTER_KEYS if key in params}
    if "annotators" in params:
        filters["annotators"] = params.getlist("annotators")
    return format_name, options, filters


def _content_type(spec: ExportSpec) -> str:
    media_type = spec.format_spec.media_type
    return f"{media_type}; charset=utf-8" if spec.format_spec.streamable else media_type


def _scratch_file() -> Any:
    folder = Path(settings.ARTIFACTS_ROOT) / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryFile(dir=folder)  # gone once the response closes it


_EXPORT_PARAMETERS = [
    OpenApiParameter("format", str, required=True, enum=list(FORMATS), description="export format"),
    OpenApiParameter("style", str, enum=["standard", "conversational"], description="trl, parquet, hf-dataset"),
    OpenApiParameter("ties", str, enum=["drop", "both", "keep"], description="tied pairs (preference formats)"),
    OpenApiParameter("include_margin", bool, description="add a margin column from the strength"),
    OpenApiParameter("date_from", OpenApiTypes.DATETIME, description="judged at or after (ISO date or date-time)"),
    OpenApiParameter("date_to", OpenApiTypes.DATETIME, description="judged at or before; a date includes the day"),
    OpenApiParameter("annotators", str, many=True, description="usernames (repeat or comma-separate)"),
    OpenApiParameter("exclude_gold", bool),
    OpenApiParameter("min_agreement", float, description="0..1; tasks with < 2 judgments are left out"),
    OpenApiParameter("split", str, enum=["train", "eval"]),
    OpenApiParameter("source", str, enum=["human", "import"]),
]


class ExportApi(APIView):
    """Download the project's labelled data in a training format, streamed as it is read."""

    content_negotiation_class = _FirstRenderer

    @extend_schema(
        parameters=_EXPORT_PARAMETERS,
        responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="the export file"), 400: OpenApiResponse()},
    )
    def get(self, request: Request, project_id: int) -> HttpResponseBase:
        membership = membership_get(user=request.user, project_id=project_id, roles=MANAGERS)
        format_name, options, filters = _export_params(request)
        spec = export_prepare(project=membership.project, format=format_name, options=options, filters=filters)
        response: HttpResponseBase
        if spec.format_spec.streamable:
            response = StreamingHttpResponse(export_stream(spec=spec), content_type=_content_type(spec))
            response["X-Accel-Buffering"] = "no"  # let a proxy pass the stream on as it comes
        else:
            scratch = _scratch_file()
            try:
                export_write(spec=spec, out=scratch)
                scratch.seek(0)
            except BaseException:
                scratch.close()
                raise
            response = FileResponse(scratch, content_type=_content_type(spec))
        response["Content-Disposition"] = f'attachment; filename="{spec.filename}"'
        return response


class SnapshotCreateIn(serializers.Serializer[Any]):
    format = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    options = serializers.DictField(required=False, default=dict)
    filters = serializers.DictField(required=False, default=dict)


def _snapshot_json(snapshot: DatasetSnapshot) -> dict[str, Any]:
    return dict(SnapshotOut(snapshot).data)


class SnapshotListApi(APIView):
    content_negotiation_class = _FirstRenderer

    @extend_schema(responses=SnapshotOut(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        membership = membership_get(user=request.user, project_id=project_id, roles=READERS)
        return Response([_snapshot_json(s) for s in snapshot_list(project=membership.project)])

    @extend_schema(request=SnapshotCreateIn, responses={201: SnapshotOut, 400: OpenApiResponse()})
    def post(self, request: Request, project_id: int) -> Response:
        membership = membership_get(user=request.user, project_id=project_id, roles=MANAGERS)
        if not isinstance(request.data, dict):
            raise ValidationFailed("send a JSON object {format, name, options, filters}")
        unknown = sorted(set(request.data) - set(SnapshotCreateIn().fields))
        if unknown:
            raise ValidationFailed(
                f"unknown field(s) {', '.join(unknown)}; the fields are format, name, options, filters",
                details={key: "unknown field" for key in unknown},
            )
        user = request.user
        assert isinstance(user, User), "IsAuthenticated guarantees a real user"
        body = SnapshotCreateIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        snapshot = snapshot_create(
            project=membership.project,
            created_by=user,
            format=data["format"],
            options=data["options"],
            filters=data["filters"],
            name=data["name"],
        )
        return Response(_snapshot_json(snapshot), status=status.HTTP_201_CREATED)


def _snapshot_for(request: Request, snapshot_id: int, roles: tuple[str, ...]) -> tuple[DatasetSnapshot, Membership]:
    snapshot = snapshot_get(snapshot_id=snapshot_id)
    try:
        membership = membership_get(user=request.user, project_id=snapshot.project_id, roles=roles)
    except NotFound:
        raise NotFound(f"snapshot {snapshot_id} not found") from None  # a non-member learns nothing
    return snapshot, membership


class SnapshotDetailApi(APIView):
    content_negotiation_class = _FirstRenderer

    @extend_schema(responses=SnapshotOut)
    def get(self, request: Request, snapshot_id: int) -> Response:
        return Response(_snapshot_json(_snapshot_for(request, snapshot_id, READERS)[0]))


class SnapshotDownloadApi(APIView):
    content_negotiation_class = _FirstRenderer

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="the snapshot file")})
    def get(self, request: Request, snapshot_id: int) -> HttpResponseBase:
        snapshot, membership = _snapshot_for(request, snapshot_id, MANAGERS)
        file_path = snapshot_file_path(snapshot=snapshot)
        if not file_path.is_file():
            raise NotFound(f"the file of snapshot {snapshot_id} is missing from the artifacts store")
        spec = FORMATS.get(snapshot.format)
        media_type = spec.media_type if spec is not None else "application/octet-stream"
        response = FileResponse(
            file_path.open("rb"),
            content_type=media_type,
            as_attachment=True,
            filename=f"{membership.project.slug}-v{snapshot.version}{''.join(file_path.suffixes)}",
        )
        response["ETag"] = f'"{snapshot.sha256}"'
        response["X-Checksum-SHA256"] = snapshot.sha256
        return response


urlpatterns = [
    path("projects/<int:project_id>/export", ExportApi.as_view(), name="api-export"),
    path("projects/<int:project_id>/snapshots", SnapshotListApi.as_view(), name="api-snapshots"),
    path("snapshots/<int:snapshot_id>", SnapshotDetailApi.as_view(), name="api-snapshot"),
    path("snapshots/<int:snapshot_id>/download", SnapshotDownloadApi.as_view(), name="api-snapshot-download"),
]
