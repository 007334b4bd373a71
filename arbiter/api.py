"""API plumbing shared by every app: one JSON error shape, never a 500 for bad input.

Every error body is ``{"message": str, "code": str, "details": any}``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from arbiter.errors import ApplicationError


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    details: Any
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "code": exc.code, "details": exc.details}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return Response(
            {"message": _first_message(details), "code": "invalid", "details": details},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        details = exc.detail
        message = _first_message(details)
        code = exc.get_codes() if not isinstance(exc.detail, (dict, list)) else "invalid"
        response.data = {"message": message, "code": code, "details": details}
    return response


def client_ip(request: Request) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))
