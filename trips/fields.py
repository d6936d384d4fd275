"""Serializer fields shared by the API's inputs."""

from rest_framework import serializers


class TextField(serializers.CharField):
    """A JSON string. DRF's CharField also takes numbers (5 becomes "5"); here
    anything but a string is a 400, as the OpenAPI document says."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
