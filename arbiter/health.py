"""``GET /healthz``: liveness and readiness for load balancers and ``docker compose`` health checks.

Answers 200 ``{"status": "ok", "database": "ok"}`` when a trivial query succeeds, else 503 with
``"database": "error"``. It needs no authentication and touches no table, so it is cheap to poll.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("health check: the database did not answer: %s", exc)
        return JsonResponse({"status": "error", "database": "error"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
