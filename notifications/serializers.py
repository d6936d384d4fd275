"""Devices over REST: what a registration takes and what it answers."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from notifications import tokens
from notifications.models import Device

PUSH_SUBSCRIPTION = {
    "type": "object",
    "description": "A browser's PushSubscription (`subscription.toJSON()`).",
    "properties": {
        "endpoint": {"type": "string", "format": "uri", "maxLength": tokens.MAX_ENDPOINT_CHARS},
        "expirationTime": {"type": "integer", "nullable": True},
        "keys": {
            "type": "object",
            "properties": {
                "p256dh": {"type": "string", "description": "P-256 public key, base64url."},
                "auth": {"type": "string", "description": "16 bytes, base64url."},
            },
            "required": ["p256dh", "auth"],
        },
    },
    "required": ["endpoint", "keys"],
}


@extend_schema_field(
    {
        "oneOf": [
            {
                "type": "string",
                "minLength": 1,
                "maxLength": tokens.MAX_SUBSCRIPTION_CHARS,
                "description": "fcm: the registration token; apns: the device token "
                "(hex); webpush: the PushSubscription as a JSON string.",
            },
            PUSH_SUBSCRIPTION,
        ]
    }
)
class DeviceTokenField(serializers.Field):
    """A string, or (Web Push) the subscription object; checked against the
    platform in `DeviceCreateSerializer.validate`."""

    default_error_messages = {"invalid": "A token is a string, or a PushSubscription object."}

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, str) and 0 < len(data) <= tokens.MAX_SUBSCRIPTION_CHARS:
            return data
        if isinstance(data, dict):
            return data
        self.fail("invalid")

    def to_representation(self, value: object) -> object:
        return value


class DeviceCreateSerializer(serializers.Serializer):
    platform = serializers.ChoiceField(choices=Device.Platform.choices)
    token = DeviceTokenField()

    def validate(self, attrs: dict) -> dict:
        try:
            attrs["token"] = tokens.parse(attrs["platform"], attrs["token"])
        except tokens.TokenInvalid as exc:
            raise serializers.ValidationError({"token": [str(exc)]}) from None
        return attrs


class DeviceSerializer(serializers.ModelSerializer):
    """A registered device; the token is not echoed back."""

    class Meta:
        model = Device
        fields = ("id", "platform", "created", "updated")
        read_only_fields = fields
