"""OpenAPI generation: every operation documents the errors it can answer with.

drf-spectacular documents what a view declares. The errors DRF answers on its
own, before a view's code runs, follow from how the view is configured, so
they are derived here instead of repeated (and forgotten) on every view:

    400  the call takes a body or query parameters (field errors, or `invalid`
         for a body that does not parse)
    401  the call needs a login (`not_authenticated`)
    403  the call needs a role (a permission beyond a login), or it is an unsafe
         method that a session cookie may make, which needs the CSRF token
    415  the call takes a body, which must come in a content type it reads
    429  the call is throttled (`rate_limited`, with Retry-After)

What a view declares itself always wins; errors only its own logic knows of
(404, 409) stay declared on the view.

Text fields say what DRF's text fields refuse besides length, in a `pattern`:
a NUL character anywhere, and (when surrounding whitespace is trimmed and
blank is not allowed) text with nothing but whitespace. Otherwise " " or
"a\\x00" would read as valid to a client and be refused.
"""

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated

FIELD_ERRORS = {
    "type": "object",
    "description": "Field errors: `{field: [messages]}`.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail", "code"],
}
BAD_REQUEST = OpenApiResponse(
    response={
        "oneOf": [FIELD_ERRORS, {**ERROR, "description": "A malformed body, header or parameter."}]
    },
    description="Invalid input: field errors, or `invalid` for a malformed body or parameter.",
)
RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds to wait before trying again.",
    }
}


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ERROR, description=description)


NO_NUL = r"^[^\x00]*$"
NO_NUL_NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"


class AutoSchema(openapi.AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        text = isinstance(field, serializers.CharField)
        if direction == "request" and text and "pattern" not in schema:
            not_blank = field.trim_whitespace and not field.allow_blank
            schema["pattern"] = NO_NUL_NOT_BLANK if not_blank else NO_NUL
        return schema

    def _map_basic_serializer(self, serializer, direction):
        # A read-only field is listed as required unless it says it may be
        # absent (`openapi_optional`): the rider's PIN, say.
        schema = super()._map_basic_serializer(serializer, direction)
        optional = {
            name
            for name, field in serializer.fields.items()
            if getattr(field, "openapi_optional", False)
        }
        if optional and "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in optional]
            if not schema["required"]:
                del schema["required"]
        return schema

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, response in self._implied_errors(operation).items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code)
                if code == "429":
                    responses[code]["headers"] = RETRY_AFTER
        return operation

    def _implied_errors(self, operation: dict) -> dict[str, OpenApiResponse]:
        view = self.view
        permissions = view.get_permissions()
        authenticators = view.get_authenticators()
        needs_login = bool(authenticators) and not all(isinstance(p, AllowAny) for p in permissions)
        # A tuple, not `IsAuthenticated | AllowAny`: DRF overloads `|` on
        # permission classes to compose them.
        plain = (IsAuthenticated, AllowAny)
        needs_role = any(not isinstance(p, plain) for p in permissions)
        csrf = self.method not in SAFE_METHODS and any(
            isinstance(a, SessionAuthentication) for a in authenticators
        )
        takes_body = "requestBody" in operation
        takes_query = any(p.get("in") == "query" for p in operation.get("parameters", []))

        implied: dict[str, OpenApiResponse] = {}
        if takes_body or takes_query:
            implied["400"] = BAD_REQUEST
        if needs_login:
            implied["401"] = _error("`not_authenticated`: no valid token or session.")
            if needs_role or csrf:
                implied["403"] = _error(
                    "`forbidden`: not the caller's role, or a session call without its CSRF token."
                )
        if takes_body:
            implied["415"] = _error("`invalid`: a body in a content type this call does not read.")
        if view.get_throttles():
            implied["429"] = _error("`rate_limited`: too many calls; see Retry-After.")
        return implied
