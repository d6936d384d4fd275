"""REST error bodies: `{"detail", "code"}` for everything but field validation."""

import logging
import math

from django.core.exceptions import PermissionDenied
from django.http import Http404
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from trips.errors import DomainError, Unavailable

logger = logging.getLogger(__name__)

# DRF's own codes, renamed to the protocol's vocabulary.
_CODES = {
    "not_authenticated": "not_authenticated",
    "authentication_failed": "not_authenticated",
    "token_not_valid": "not_authenticated",
    "user_not_found": "not_authenticated",
    "user_inactive": "not_authenticated",
    "no_active_account": "not_authenticated",
    "permission_denied": "forbidden",
    "not_found": "not_found",
    "throttled": "rate_limited",
    "parse_error": "invalid",
    "unsupported_media_type": "invalid",
    "method_not_allowed": "invalid",
    "not_acceptable": "invalid",
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RedisError | BrokerError):
        # Redis (cache, throttles, presence, broker) is down or restarting:
        # the client should retry, and nothing half-done was committed.
        logger.warning("api.backend_unavailable", extra={"error": type(exc).__name__})
        exc = Unavailable()
    if isinstance(exc, DomainError):
        response = Response({"detail": exc.detail, "code": exc.code}, status=exc.http_status)
        retry_after_s = getattr(exc, "retry_after_s", None)
        if retry_after_s is not None:
            response["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        # Field errors keep DRF's `{field: [messages]}` shape; a bare list or
        # string becomes the protocol's `{"detail", "code"}`.
        if not isinstance(response.data, dict):
            response.data = {"detail": _first_message(response.data), "code": "invalid"}
        return response
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "invalid"
        detail = _first_message(response.data.get("detail", exc.detail))
        response.data = {"detail": detail, "code": _CODES.get(code, code)}
        if response.status_code == status.HTTP_401_UNAUTHORIZED:
            response.data["code"] = "not_authenticated"
    return response


def _first_message(value: object) -> str:
    if isinstance(value, list | tuple):
        return _first_message(value[0]) if value else ""
    if isinstance(value, dict):
        return _first_message(next(iter(value.values()), ""))
    return str(value)
