"""Errors raised by services and selectors; the API and pages turn them into 4xx responses."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A business-rule violation. ``status`` is the HTTP status the interfaces should use."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class ValidationFailed(ApplicationError):
    status = 400
    code = "invalid"


class PermissionDenied(ApplicationError):
    status = 403
    code = "permission_denied"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"
