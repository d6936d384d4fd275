"""HTTP errors outside DRF's views: JSON on API paths in every mode, and
request bodies refused by their size.

DRF answers `{"detail", "code"}` for what goes wrong inside an API view.
Everything else was Django's HTML: an unknown URL, a `Host` not in
ALLOWED_HOSTS, a crash, and with DEBUG on the debug page itself. An app
parses JSON, so on API paths (`/api/...`, `/healthz`) every error is
`{"detail", "code"}` with `application/json`, whatever DEBUG says; other
paths (the admin, media) keep Django's pages, whose DEBUG variant scrubs
credentials (taxi.debug_pages).

A body larger than the service ever reads is a 413 `too_large`, decided from
its announced length before any of it is read (here for any ASGI server;
taxi.server refuses it even earlier, before daphne buffers it).
"""

import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

logger = logging.getLogger(__name__)

# The protocol's codes (PROTOCOL.md, "Errors") for the statuses that reach
# this module; `too_large` and `server_error` are this module's own.
CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "invalid",
    413: "too_large",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}
# Response headers an error keeps when its body is replaced.
KEPT_HEADERS = ("Retry-After", "Allow", "WWW-Authenticate")


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path == "/healthz"


def error_response(status: int, detail: str | None = None) -> JsonResponse:
    """`{"detail", "code"}` for `status`, the protocol's error body."""
    if detail is None:
        try:
            detail = HTTPStatus(status).phrase + "."
        except ValueError:
            detail = "The request failed."
    return JsonResponse({"detail": detail, "code": CODES.get(status, "error")}, status=status)


def request_body_limit(content_type: str) -> int | None:
    """Most bytes a request body may carry, by its Content-Type: what Django
    reads into memory (DATA_UPLOAD_MAX_MEMORY_SIZE), plus one sign-up photo
    (PHOTO_MAX_BYTES) for multipart. None when the operator lifted Django's cap."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return None
    if content_type.strip().lower().startswith("multipart/"):
        limit += settings.PHOTO_MAX_BYTES
    return limit


def too_large(limit: int | None = None) -> JsonResponse:
    detail = "The request body is too large."
    if limit is not None:
        detail = f"The request body is too large; at most {limit} bytes are accepted here."
    return error_response(413, detail)


def announced_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH") or ""
    return int(raw) if raw.isdigit() else None


class ApiErrorMiddleware:
    """Outermost but for CORS (settings.MIDDLEWARE): refuses an announced
    body over the limit, turns RequestDataTooBig into 413, and gives API
    paths a JSON body for any error response that is not JSON already."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = request_body_limit(request.META.get("CONTENT_TYPE", ""))
        length = announced_length(request)
        if limit is not None and length is not None and length > limit:
            logger.info("http.body_too_large", extra={"path": request.path_info, "length": length})
            return too_large(limit)
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_api_path(request.path_info)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replacement = error_response(response.status_code)
            for header in KEPT_HEADERS:
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # Django reports a body over DATA_UPLOAD_MAX_MEMORY_SIZE (one sent
        # without Content-Length, or multipart fields over it) as a 400.
        if isinstance(exception, RequestDataTooBig):
            return too_large(request_body_limit(request.META.get("CONTENT_TYPE", "")))
        return None


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """taxi.urls' handler400, used when DEBUG is off (the middleware above
    turns the other error pages of API paths into JSON)."""
    if isinstance(exception, RequestDataTooBig):
        return too_large(request_body_limit(request.META.get("CONTENT_TYPE", "")))
    if is_api_path(request.path_info):
        return error_response(400)
    return defaults.bad_request(request, exception)
