"""`GET /healthz`: is this process able to reach the database and Redis."""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from taxi.infra.redis import get_redis

logger = logging.getLogger(__name__)


def _check_db() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ok"
        logger.warning("health.db_failed", extra={"error": type(exc).__name__})
        return "error"
    return "ok"


def _check_redis() -> str:
    try:
        get_redis().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ok"
        logger.warning("health.redis_failed", extra={"error": type(exc).__name__})
        return "error"
    return "ok"


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    parts = {"db": _check_db(), "redis": _check_redis()}
    healthy = all(value == "ok" for value in parts.values())
    body = {"status": "ok" if healthy else "error", **parts}
    return JsonResponse(body, status=200 if healthy else 503)
