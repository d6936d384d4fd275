"""Serializer fields shared by the API's inputs."""

from uuid import UUID

from rest_framework import serializers


class TextField(serializers.CharField):
    """A JSON string. DRF's CharField also takes numbers (5 becomes "5"); here
    anything but a string is a 400, as the OpenAPI document says."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class UUIDStringField(serializers.UUIDField):
    """A UUID as the API writes it: a string. DRF's UUIDField also takes
    integers (42, and true, become 00000000-...-002a and ...-0001), which
    would turn a malformed id into a well-formed one that names nothing."""

    def to_internal_value(self, data: object) -> UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class FlatListField(serializers.ListField):
    """A JSON list whose items' errors read as one list of messages
    (`{"tags": ["Item 2: ..."]}`), the shape every other field error has and
    the OpenAPI document promises, instead of DRF's `{"tags": {"1": [...]}}`."""

    def run_child_validation(self, data: list) -> list:
        try:
            return super().run_child_validation(data)
        except serializers.ValidationError as exc:
            messages = [
                f"Item {index + 1}: {message}"
                for index, errors in exc.detail.items()
                for message in errors
            ]
            raise serializers.ValidationError(messages) from None
